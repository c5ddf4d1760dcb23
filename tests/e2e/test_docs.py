"""test_docs.py: the documentation stays true to the programs: both man pages pass
`mandoc -T lint` without warnings; the README's option table for local mounts names
every flechefs option `flechefs --help` lists; the server page's SQLite examples use
absolute four-slash URLs (three slashes make the path relative to the working
directory); the help lists each option once.
"""

import os
import re
import shutil
import sys

import common

T = common.Checks("docs")
SOURCE = os.environ.get("FLECHEFS_SOURCE") or os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__))))


def read(*parts):
    with open(os.path.join(SOURCE, *parts), encoding="utf-8") as f:
        return f.read()


def test_mandoc_lint():
    if not shutil.which("mandoc"):
        common.skip_or_fail("mandoc is not installed (Debian package mandoc)")
    for page in ("flechefs.1", "flechefs-server.1"):
        r = common.run(["mandoc", "-T", "lint", "-W", "warning",
                        os.path.join(SOURCE, "man", page)])
        T.equal(r.stdout.decode() + r.stderr.decode(), "", "mandoc -T lint %s" % page)


def test_help_and_readme():
    r = common.run([common.binary("flechefs"), "--help"])
    text = r.stdout.decode()
    for opt in ("-h", "-V", "-d", "-f", "-s"):
        n = len(re.findall(r"^\s+%s\b" % re.escape(opt), text, re.M))
        T.equal(n, 1, "--help lists %s once" % opt)
    block = text.split("flechefs options:", 1)[1].split("\n\n", 1)[0]
    readme = read("README.md")
    local = readme.split("### Mount a local cache", 1)[1].split("###", 1)[0]
    for name in sorted(set(re.findall(r"-o ([a-z_]+)", block))):
        T.check("`-o %s" % name in local, "README's local option table has -o %s" % name)


def test_server_page_urls():
    page = read("man", "flechefs-server.1")
    examples = page.split(".SH EXAMPLES", 1)[1]
    urls = re.findall(r"sqlite:/+\S*", examples)
    T.check(urls, "the examples show a sqlite URL")
    # the examples name absolute paths (a relative one would depend on the directory
    # the reader runs it from)
    for url in urls:
        T.check(url.startswith("sqlite:////"), "example URL is absolute: %s" % url)


def main():
    T.run(test_help_and_readme)
    T.run(test_server_page_urls)
    T.run(test_mandoc_lint)
    return T.report()


if __name__ == "__main__":
    sys.exit(main())

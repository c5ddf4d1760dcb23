/*
 * test_ssh_opts.c: unit tests of fusefs/sshopts.c and sshconfig.c, linked without
 * FUSE, libssh2 or a network:
 * the SSH options (consumed, not ours, bad values), the remote/local decision on
 * the source, the splitting of "[user@]host:[path]" (IPv6 addresses in brackets,
 * as sshfs writes them), the remote command line (quoting of data, setup, workdir,
 * paths relative to the login directory, --read-only), and the reading of `ssh -G`
 * output (%-tokens and ~ in identity files, lists of known_hosts files, proxy
 * settings).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sshopts.h"
#include "sshconfig.h"
#include "check.h"

static void test_options(void)
{
	struct fsd_ssh_options o;
	fsd_ssh_options_init(&o);
	CHECK(fsd_ssh_opt(&o, "port", "2222") == 1 && o.port == 2222);
	CHECK(fsd_ssh_opt(&o, "port", "0") == -1);
	CHECK(fsd_ssh_opt(&o, "port", "65536") == -1);
	CHECK(fsd_ssh_opt(&o, "port", "22x") == -1);
	CHECK(fsd_ssh_opt(&o, "Port", "22") == 1 && o.port == 22);
	CHECK(fsd_ssh_opt(&o, "IdentityFile", "/k1") == 1);
	CHECK(fsd_ssh_opt(&o, "identityfile", "~/k2") == 1);
	CHECK(o.n_identity_files == 2 && strcmp(o.identity_files[1], "~/k2") == 0);
	CHECK(fsd_ssh_opt(&o, "StrictHostKeyChecking", "accept-new") == 1 &&
	      o.strict == FSD_SSH_STRICT_ACCEPT_NEW);
	CHECK(fsd_ssh_opt(&o, "StrictHostKeyChecking", "no") == 1 && o.strict == FSD_SSH_STRICT_NO);
	CHECK(fsd_ssh_opt(&o, "StrictHostKeyChecking", "yes") == 1 &&
	      o.strict == FSD_SSH_STRICT_YES);
	CHECK(fsd_ssh_opt(&o, "StrictHostKeyChecking", "maybe") == -1);
	CHECK(fsd_ssh_opt(&o, "ConnectTimeout", "7") == 1 && o.connect_timeout == 7);
	CHECK(fsd_ssh_opt(&o, "ConnectTimeout", "-1") == -1);
	CHECK(fsd_ssh_opt(&o, "ServerAliveInterval", "0") == 1 && o.keepalive_interval == -1);
	CHECK(fsd_ssh_opt(&o, "setup", "module load x") == 1);
	CHECK(fsd_ssh_opt(&o, "setup", "source 'v e'/bin/activate") == 1 && o.n_setup == 2);
	CHECK(fsd_ssh_opt(&o, "Setup", "x") == 0); /* ours are exact */
	CHECK(fsd_ssh_opt(&o, "ssh_window", "8M") == 1 && o.window == 8u << 20);
	CHECK(fsd_ssh_opt(&o, "ssh_window", "16MiB") == 1 && o.window == 16u << 20);
	CHECK(fsd_ssh_opt(&o, "ssh_window", "256M") == 1 && o.window == 256u << 20);
	CHECK(fsd_ssh_opt(&o, "ssh_window", "257M") == -1);
	CHECK(fsd_ssh_opt(&o, "ssh_window", "1G") == -1);
	CHECK(fsd_ssh_opt(&o, "ssh_window", "1k") == -1);
	CHECK(fsd_ssh_opt(&o, "ssh_window", "-5") == -1);
	CHECK(fsd_ssh_opt(&o, "server", NULL) == -1);
	CHECK(fsd_ssh_opt(&o, "server", "") == -1);
	CHECK(fsd_ssh_opt(&o, "allow_other", NULL) == 0);
	CHECK(fsd_ssh_opt(&o, "timeout", "5") == 0); /* the daemon's, not ours */
	CHECK(fsd_ssh_opt(&o, "ro", NULL) == 0);
	CHECK(fsd_ssh_help()[0] != '\0');
	fsd_ssh_options_release(&o);
	CHECK(o.n_setup == 0 && o.identity_files == NULL);
}

static void test_is_remote(void)
{
	CHECK(fsd_ssh_is_remote("host:"));
	CHECK(fsd_ssh_is_remote("host:cache"));
	CHECK(fsd_ssh_is_remote("user@host:/abs/cache"));
	CHECK(fsd_ssh_is_remote("[::1]:cache"));
	CHECK(fsd_ssh_is_remote("user@[::1]:/abs/cache"));
	CHECK(fsd_ssh_is_remote("[2001:db8::17]:"));
	CHECK(!fsd_ssh_is_remote("/local/a:b"));
	CHECK(!fsd_ssh_is_remote("./a:b"));
	CHECK(!fsd_ssh_is_remote("cache"));
	CHECK(!fsd_ssh_is_remote(":cache"));
}

/* Parses source and checks the three parts ("-" for a NULL user); want_rc < 0: fails. */
static void check_source(const char *source, int want_rc, const char *want_user,
                         const char *want_host, const char *want_path)
{
	char *user = (char *)"x", *host = (char *)"x", *path = (char *)"x";
	int rc = fsd_ssh_parse_source(source, &user, &host, &path);
	if (rc != want_rc) {
		fprintf(stderr, "%s:%d: '%s': rc %d, want %d\n", __FILE__, __LINE__, source, rc,
		        want_rc);
		failures++;
	}
	if (want_rc < 0) {
		CHECK(user == NULL && host == NULL && path == NULL);
	} else {
		if (strcmp(want_user, "-") == 0)
			CHECK(user == NULL);
		else
			CHECK_STR(user, want_user);
		CHECK_STR(host, want_host);
		CHECK_STR(path, want_path);
	}
	if (rc == 0) {
		free(user);
		free(host);
		free(path);
	}
}

static void test_parse_source(void)
{
	check_source("host:", 0, "-", "host", "");
	check_source("host:cache", 0, "-", "host", "cache");
	check_source("alice@cluster.example.org:/data/cache", 0, "alice", "cluster.example.org",
	             "/data/cache");
	check_source("a@b@host:p", 0, "a@b", "host", "p");   /* the last '@' ends the user */
	check_source("host:a:b@c", 0, "-", "host", "a:b@c"); /* the path keeps ':' and '@' */
	check_source("host:[x]", 0, "-", "host", "[x]");
	/* IPv6 addresses in brackets, as sshfs and scp write them */
	check_source("[::1]:cache", 0, "-", "::1", "cache");
	check_source("[::1]:", 0, "-", "::1", "");
	check_source("user@[::1]:/abs/cache", 0, "user", "::1", "/abs/cache");
	check_source("u@[2001:db8::17]:c:v1@x", 0, "u", "2001:db8::17", "c:v1@x");
	check_source("[fe80::1%eth0]:c", 0, "-", "fe80::1%eth0", "c");
	check_source("a@b@[::1]:p", 0, "a@b", "::1", "p");
	check_source("[host.example.org]:p", 0, "-", "host.example.org", "p");
	check_source("[127.0.0.1]:p", 0, "-", "127.0.0.1", "p");
	/* malformed */
	check_source("host", -EINVAL, NULL, NULL, NULL);
	check_source(":path", -EINVAL, NULL, NULL, NULL);
	check_source("@host:x", -EINVAL, NULL, NULL, NULL);
	check_source("user@:x", -EINVAL, NULL, NULL, NULL);
	check_source("[::1:x", -EINVAL, NULL, NULL, NULL);   /* unclosed */
	check_source("[::1]x:y", -EINVAL, NULL, NULL, NULL); /* ']' not followed by ':' */
	check_source("[::1]", -EINVAL, NULL, NULL, NULL);    /* no path separator */
	check_source("[::1]/x:y", -EINVAL, NULL, NULL, NULL);
	check_source("[]:x", -EINVAL, NULL, NULL, NULL);     /* empty host */
	check_source("@[::1]:x", -EINVAL, NULL, NULL, NULL); /* empty user */
	check_source("user@[::1:x", -EINVAL, NULL, NULL, NULL);
	check_source("[a@b]:x", -EINVAL, NULL, NULL, NULL); /* '@' inside the brackets */
	check_source("h[x]:y", -EINVAL, NULL, NULL, NULL);  /* brackets inside a name */
	check_source("host]:y", -EINVAL, NULL, NULL, NULL);
}

static void test_remote_command(void)
{
	struct fsd_ssh_options o;
	fsd_ssh_options_init(&o);
	char *c = fsd_ssh_remote_command(&o, "cache", 0);
	CHECK_STR(c, "exec flechefs-server --serve --root 'cache'");
	free(c);
	c = fsd_ssh_remote_command(&o, "", 1);
	CHECK_STR(c, "exec flechefs-server --serve --root '.' --read-only");
	free(c);
	c = fsd_ssh_remote_command(&o, "/data/it's here", 0);
	CHECK_STR(c, "exec flechefs-server --serve --root '/data/it'\\''s here'");
	free(c);
	c = fsd_ssh_remote_command(&o, "~/c; rm -rf /", 0);
	CHECK_STR(c, "exec flechefs-server --serve --root \"$HOME\"/'c; rm -rf /'");
	free(c);

	fsd_ssh_opt(&o, "workdir", "proj dir");
	fsd_ssh_opt(&o, "setup", "module load py");
	fsd_ssh_opt(&o, "setup", "source venv/bin/activate");
	fsd_ssh_opt(&o, "server", "/opt/flechefs/bin/flechefs-server --max-frame 1048576");
	c = fsd_ssh_remote_command(&o, "cache", 0);
	CHECK_STR(c, "cd 'proj dir' && module load py && source venv/bin/activate && exec "
	             "/opt/flechefs/bin/flechefs-server --max-frame 1048576 --serve --root "
	             "\"$HOME\"/'cache'");
	free(c);
	c = fsd_ssh_remote_command(&o, "", 0);
	CHECK(c && strstr(c, "--root \"$HOME\"") && !strstr(c, "\"$HOME\"/"));
	free(c);
	c = fsd_ssh_remote_command(&o, "/abs", 0);
	CHECK(c && strstr(c, "--root '/abs'"));
	free(c);
	fsd_ssh_options_release(&o);

	/* -o cache=NAME: fleche.toml's cache, from PATH when there is one */
	fsd_ssh_options_init(&o);
	CHECK(fsd_ssh_opt(&o, "cache", "my cache") == 1);
	c = fsd_ssh_remote_command(&o, "", 0);
	CHECK_STR(c, "exec flechefs-server --serve --cache 'my cache'");
	free(c);
	c = fsd_ssh_remote_command(&o, "~/proj", 1);
	CHECK_STR(c, "exec flechefs-server --serve --config-from \"$HOME\"/'proj' --cache 'my cache' "
	             "--read-only");
	free(c);
	fsd_ssh_opt(&o, "workdir", "w");
	c = fsd_ssh_remote_command(&o, "", 0);
	CHECK_STR(c, "cd 'w' && exec flechefs-server --serve --cache 'my cache'");
	free(c);
	fsd_ssh_options_release(&o);
}

static void test_config_parse(void)
{
	struct fsd_ssh_config sc;
	const char *text = "user alice\n"
	                   "hostname cluster.example.org\n"
	                   "port 2200\n"
	                   "identityfile ~/.ssh/id_%h_%r\n"
	                   "identityfile /keys/%p/%%x\n"
	                   "userknownhostsfile /u/kh1 /u/kh2\n"
	                   "globalknownhostsfile /etc/ssh/ssh_known_hosts none\n"
	                   "stricthostkeychecking accept-new\n"
	                   "connecttimeout none\n"
	                   "serveraliveinterval 15\n"
	                   "proxyjump gateway\n";
	setenv("HOME", "/home/test", 1);
	fsd_ssh_config_init(&sc);
	CHECK(fsd_ssh_config_parse(&sc, text, strlen(text)) == 0);
	CHECK(sc.found);
	CHECK_STR(sc.user, "alice");
	CHECK_STR(sc.hostname, "cluster.example.org");
	CHECK(sc.port == 2200);
	CHECK(sc.n_identity_files == 2);
	if (sc.n_identity_files == 2) {
		CHECK_STR(sc.identity_files[0], "/home/test/.ssh/id_cluster.example.org_alice");
		CHECK_STR(sc.identity_files[1], "/keys/2200/%x");
	}
	CHECK(sc.n_known_hosts_files == 2);
	CHECK(sc.n_global_known_hosts == 1);
	CHECK_STR(sc.strict, "accept-new");
	CHECK(sc.connect_timeout == 0);
	CHECK(sc.keepalive_interval == 15);
	CHECK_STR(sc.proxy, "proxyjump gateway");
	fsd_ssh_config_release(&sc);

	char *e = fsd_ssh_expand_home("~");
	CHECK_STR(e, "/home/test");
	free(e);
	e = fsd_ssh_expand_home("~user/x");
	CHECK_STR(e, "~user/x");
	free(e);
}

int main(void)
{
	test_options();
	test_is_remote();
	test_parse_source();
	test_remote_command();
	test_config_parse();
	return check_report("test_ssh_opts");
}

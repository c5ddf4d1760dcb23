/*
 * pypath.c: file paths handled as Python's pathlib and os.path handle them, so that a
 * path fleche builds from its configuration comes out the same here: see pypath.h.
 */
#include "pypath.h"

#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* symbolic links followed while resolving one path before it counts as a loop */
#define MAX_LINKS 40

char *pyp_format(const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	return s;
}

/* PurePosixPath(p) as a string: no empty or "." parts; "//" kept at the start only. */
char *pyp_norm(const char *p)
{
	size_t n = strlen(p);
	char *out = malloc(n + 2), *o = out;
	const char *s = p;

	if (!out)
		return NULL;
	if (s[0] == '/') {
		*o++ = '/';
		if (s[1] == '/' && s[2] != '/')
			*o++ = '/';
	}
	while (*s) {
		while (*s == '/')
			s++;
		const char *e = s;
		while (*e && *e != '/')
			e++;
		size_t len = (size_t)(e - s);
		if (len > 0 && !(len == 1 && s[0] == '.')) {
			if (o > out && o[-1] != '/')
				*o++ = '/';
			memcpy(o, s, len);
			o += len;
		}
		s = e;
	}
	if (o == out)
		*o++ = '.';
	*o = '\0';
	return out;
}

/* base / rel, normalised. */
char *pyp_join(const char *base, const char *rel)
{
	char *joined, *out;

	if (rel[0] == '/')
		return pyp_norm(rel);
	joined = pyp_format("%s/%s", base, rel);
	if (!joined)
		return NULL;
	out = pyp_norm(joined);
	free(joined);
	return out;
}

/*
 * os.path.expanduser: "~" and "~/..." from $HOME (else the password database),
 * "~user/..." from the password database. *out is a copy of p when p has no '~' in
 * front. 0, or -1 when the home directory cannot be determined.
 */
int pyp_expanduser(const char *p, char **out)
{
	const char *slash, *home = NULL;
	struct passwd *pw;
	char user[256], *h;
	size_t hl;

	*out = NULL;
	if (p[0] != '~') {
		*out = strdup(p);
		return *out ? 0 : -1;
	}
	slash = strchr(p, '/');
	if (!slash)
		slash = p + strlen(p);
	if (slash == p + 1) {
		home = getenv("HOME");
		if (!home) {
			pw = getpwuid(getuid());
			if (!pw)
				return -1;
			home = pw->pw_dir;
		}
	} else {
		if ((size_t)(slash - p - 1) >= sizeof(user))
			return -1;
		memcpy(user, p + 1, (size_t)(slash - p - 1));
		user[slash - p - 1] = '\0';
		pw = getpwnam(user);
		if (!pw)
			return -1;
		home = pw->pw_dir;
	}
	hl = strlen(home);
	while (hl > 0 && home[hl - 1] == '/')
		hl--;
	h = pyp_format("%.*s%s", (int)hl, home, slash);
	if (!h)
		return -1;
	if (h[0] == '\0') {
		free(h);
		h = strdup("/");
	}
	*out = h;
	return *out ? 0 : -1;
}

/*
 * os.path.realpath(p, strict=False) of an absolute, normalised p: each existing
 * component that is a symbolic link is replaced by its target, ".." goes up from
 * what was resolved so far, components that do not exist are kept as written.
 * NULL when out of memory or on a loop of links.
 */
char *pyp_resolve(const char *p)
{
	char *path = strdup("/"), *rest = strdup(p), *next;
	unsigned links = 0;

	if (!path || !rest)
		goto fail;
	for (;;) {
		char *r = rest;
		while (*r == '/')
			r++;
		if (!*r)
			break;
		char *e = strchr(r, '/');
		size_t len = e ? (size_t)(e - r) : strlen(r);
		char name[NAME_MAX + 1];
		if (len > NAME_MAX) {
			/* cannot exist: kept as written, like every later part */
			next = pyp_format("%s%s%s", path, strcmp(path, "/") ? "/" : "", r);
			free(path);
			path = next ? pyp_norm(next) : NULL;
			free(next);
			break;
		}
		memcpy(name, r, len);
		name[len] = '\0';
		next = strdup(e ? e : "");
		if (!next)
			goto fail;
		free(rest);
		rest = next;
		if (strcmp(name, ".") == 0)
			continue;
		if (strcmp(name, "..") == 0) {
			char *slash = strrchr(path, '/');
			if (slash == path)
				path[1] = '\0';
			else if (slash)
				*slash = '\0';
			continue;
		}
		char *candidate = pyp_format("%s%s%s", path, strcmp(path, "/") ? "/" : "", name);
		struct stat st;
		if (!candidate)
			goto fail;
		if (lstat(candidate, &st) != 0 || !S_ISLNK(st.st_mode)) {
			free(path);
			path = candidate;
			continue;
		}
		if (++links > MAX_LINKS) {
			free(candidate);
			goto fail;
		}
		char target[PATH_MAX];
		ssize_t n = readlink(candidate, target, sizeof(target) - 1);
		free(candidate);
		if (n < 0)
			goto fail;
		target[n] = '\0';
		next = pyp_format("%s/%s", target, rest);
		if (!next)
			goto fail;
		free(rest);
		rest = next;
		if (target[0] == '/')
			strcpy(path, "/");
	}
	free(rest);
	return path;
fail:
	free(path);
	free(rest);
	return NULL;
}

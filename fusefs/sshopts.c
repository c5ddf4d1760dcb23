/*
 * sshopts.c: the SSH options of the command line, the remote source and the remote
 * command line with its shell quoting (sshopts.h). Pure string code: no network,
 * no FUSE, no libssh2, so the unit tests link it alone.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "rpc.h"
#include "sshopts.h"

/* ---------------------------------------------------------------- options */

void fsd_ssh_options_init(struct fsd_ssh_options *o)
{
	memset(o, 0, sizeof(*o));
}

void fsd_ssh_strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void fsd_ssh_options_release(struct fsd_ssh_options *o)
{
	free(o->user);
	fsd_ssh_strv_free(o->identity_files, o->n_identity_files);
	free(o->known_hosts_file);
	free(o->server);
	free(o->cache);
	fsd_ssh_strv_free(o->setup, o->n_setup);
	free(o->workdir);
	free(o->ssh_command);
	free(o->ciphers);
	free(o->ssh_config);
	fsd_ssh_options_init(o);
}

static int set_str(char **dst, const char *v)
{
	char *s = strdup(v);
	if (!s)
		return -ENOMEM;
	free(*dst);
	*dst = s;
	return 0;
}

int fsd_ssh_strv_push(char ***v, size_t *n, const char *s)
{
	char *copy = strdup(s);
	char **nv = copy ? realloc(*v, (*n + 1) * sizeof(*nv)) : NULL;
	if (!nv) {
		free(copy);
		return -ENOMEM;
	}
	nv[(*n)++] = copy;
	*v = nv;
	return 0;
}

static int parse_long(const char *v, long min, long max, long *out)
{
	char *end = NULL;
	errno = 0;
	long x = strtol(v, &end, 10);
	if (errno || end == v || *end || x < min || x > max)
		return -1;
	*out = x;
	return 0;
}

int fsd_ssh_opt(struct fsd_ssh_options *o, const char *key, const char *value)
{
	static const char *const ours[] = {"port",
	                                   "user",
	                                   "identityfile",
	                                   "userknownhostsfile",
	                                   "stricthostkeychecking",
	                                   "connecttimeout",
	                                   "serveraliveinterval",
	                                   "serveralivecountmax",
	                                   "ciphers",
	                                   NULL};
	static const char *const ours_exact[] = {
	    "server", "setup", "workdir", "ssh_command", "ssh_window", "ssh_config", "cache", NULL};
	int known = 0, rc = 0;
	long n = 0;

	for (size_t i = 0; ours[i]; i++)
		if (!strcasecmp(key, ours[i]))
			known = 1;
	for (size_t i = 0; ours_exact[i]; i++)
		if (!strcmp(key, ours_exact[i]))
			known = 1;
	if (!known)
		return 0;
	if (!value || (!*value && strcmp(key, "setup") != 0)) {
		fprintf(stderr, "flechefs: option '%s' needs a value\n", key);
		return -1;
	}
	if (!strcasecmp(key, "port")) {
		if (parse_long(value, 1, 65535, &n))
			goto bad;
		o->port = (int)n;
	} else if (!strcasecmp(key, "user")) {
		rc = set_str(&o->user, value);
	} else if (!strcasecmp(key, "identityfile")) {
		rc = fsd_ssh_strv_push(&o->identity_files, &o->n_identity_files, value);
	} else if (!strcasecmp(key, "userknownhostsfile")) {
		rc = set_str(&o->known_hosts_file, value);
	} else if (!strcasecmp(key, "stricthostkeychecking")) {
		if (!strcasecmp(value, "yes") || !strcasecmp(value, "true") ||
		    !strcasecmp(value, "ask"))
			o->strict = FSD_SSH_STRICT_YES;
		else if (!strcasecmp(value, "accept-new"))
			o->strict = FSD_SSH_STRICT_ACCEPT_NEW;
		else if (!strcasecmp(value, "no") || !strcasecmp(value, "false") ||
		         !strcasecmp(value, "off"))
			o->strict = FSD_SSH_STRICT_NO;
		else
			goto bad;
	} else if (!strcasecmp(key, "connecttimeout")) {
		if (parse_long(value, 1, 3600, &n))
			goto bad;
		o->connect_timeout = (int)n;
	} else if (!strcasecmp(key, "serveraliveinterval")) {
		if (parse_long(value, 0, 3600, &n))
			goto bad;
		o->keepalive_interval = n ? (int)n : -1;
	} else if (!strcasecmp(key, "serveralivecountmax")) {
		if (parse_long(value, 1, 1000, &n))
			goto bad;
		o->keepalive_count = (int)n;
	} else if (!strcasecmp(key, "ciphers")) {
		rc = set_str(&o->ciphers, value);
	} else if (!strcmp(key, "server")) {
		rc = set_str(&o->server, value);
	} else if (!strcmp(key, "cache")) {
		rc = set_str(&o->cache, value);
	} else if (!strcmp(key, "setup")) {
		if (*value)
			rc = fsd_ssh_strv_push(&o->setup, &o->n_setup, value);
	} else if (!strcmp(key, "workdir")) {
		rc = set_str(&o->workdir, value);
	} else if (!strcmp(key, "ssh_command")) {
		rc = set_str(&o->ssh_command, value);
	} else if (!strcmp(key, "ssh_window")) {
		uint64_t w = 0;
		if (rpc_parse_size(value, 256u << 20, &w) || (w && w < 65536))
			goto bad;
		o->window = (size_t)w;
	} else if (!strcmp(key, "ssh_config")) {
		rc = set_str(&o->ssh_config, value);
	}
	if (rc) {
		fprintf(stderr, "flechefs: out of memory\n");
		return -1;
	}
	return 1;
bad:
	fprintf(stderr, "flechefs: bad value '%s' for option '%s'\n", value, key);
	return -1;
}

const char *fsd_ssh_help(void)
{
	return "SSH options (source [user@]host:[path]):\n"
	       "    -p PORT, -o port=N     the SSH port\n"
	       "    -o User=NAME           the remote user\n"
	       "    -o IdentityFile=FILE   a private key to try (repeatable)\n"
	       "    -o UserKnownHostsFile=FILE   known hosts (default ~/.ssh/known_hosts)\n"
	       "    -o StrictHostKeyChecking=yes|accept-new|no   unknown host keys "
	       "(default yes)\n"
	       "    -o ConnectTimeout=S    TCP connect and handshake bound (default 30)\n"
	       "    -o ServerAliveInterval=S, -o ServerAliveCountMax=N   keepalives "
	       "(default 10, 3)\n"
	       "    -o Ciphers=LIST        cipher preference (libssh2 names)\n"
	       "    -o server=CMD          the remote server (default flechefs-server)\n"
	       "    -o setup=CMD           run before the server (repeatable, joined with &&)\n"
	       "    -o workdir=DIR         cd there first\n"
	       "    -o ssh_command=CMD     use the system ssh client, e.g. \"ssh -J jump host\"\n"
	       "    -o ssh_config=FILE     ssh configuration for ssh -G (none: do not read)\n"
	       "    -o ssh_window=BYTES    fixed channel receive window (default adaptive)\n";
}

int fsd_ssh_is_remote(const char *source)
{
	const char *colon = strchr(source, ':');
	const char *slash = strchr(source, '/');
	if (!colon || colon == source)
		return 0;
	return !slash || colon < slash;
}

/* ---------------------------------------------------------------- quoting */

/* Appends s single-quoted for a POSIX shell. */
static int quote_into(char **out, size_t *len, size_t *cap, const char *s)
{
	size_t need = *len + 4 * strlen(s) + 3;
	if (need > *cap) {
		size_t ncap = need * 2;
		char *n = realloc(*out, ncap);
		if (!n)
			return -ENOMEM;
		*out = n;
		*cap = ncap;
	}
	char *p = *out + *len;
	*p++ = '\'';
	for (; *s; s++) {
		if (*s == '\'') {
			memcpy(p, "'\\''", 4);
			p += 4;
		} else {
			*p++ = *s;
		}
	}
	*p++ = '\'';
	*p = '\0';
	*len = (size_t)(p - *out);
	return 0;
}

static int append(char **out, size_t *len, size_t *cap, const char *s)
{
	size_t sl = strlen(s);
	if (*len + sl + 1 > *cap) {
		size_t ncap = (*len + sl + 1) * 2;
		char *n = realloc(*out, ncap);
		if (!n)
			return -ENOMEM;
		*out = n;
		*cap = ncap;
	}
	memcpy(*out + *len, s, sl + 1);
	*len += sl;
	return 0;
}

char *fsd_ssh_quote(const char *s)
{
	char *out = NULL;
	size_t len = 0, cap = 0;
	if (append(&out, &len, &cap, "") || quote_into(&out, &len, &cap, s)) {
		free(out);
		return NULL;
	}
	return out;
}

/* PATH on the remote command line: relative to the login directory (see ssh.h). */
static int append_path(char **out, size_t *len, size_t *cap, const struct fsd_ssh_options *o,
                       const char *p)
{
	int rc = 0;
	if (p[0] == '~' && (p[1] == '/' || !p[1])) {
		rc = append(out, len, cap, "\"$HOME\"");
		if (rc == 0 && p[1] && p[2])
			rc = append(out, len, cap, "/");
		if (rc == 0 && p[1] && p[2])
			rc = quote_into(out, len, cap, p + 2);
	} else if (p[0] == '/') {
		rc = quote_into(out, len, cap, p);
	} else if (o->workdir) {
		rc = append(out, len, cap, "\"$HOME\"");
		if (rc == 0 && *p)
			rc = append(out, len, cap, "/");
		if (rc == 0 && *p)
			rc = quote_into(out, len, cap, p);
	} else {
		rc = quote_into(out, len, cap, *p ? p : ".");
	}
	return rc;
}

char *fsd_ssh_remote_command(const struct fsd_ssh_options *o, const char *path, int read_only)
{
	char *out = NULL;
	size_t len = 0, cap = 0;
	const char *p = path ? path : "";
	int rc = append(&out, &len, &cap, "");
	if (rc == 0 && o->workdir) {
		rc = append(&out, &len, &cap, "cd ");
		if (rc == 0)
			rc = quote_into(&out, &len, &cap, o->workdir);
		if (rc == 0)
			rc = append(&out, &len, &cap, " && ");
	}
	for (size_t i = 0; rc == 0 && i < o->n_setup; i++) {
		rc = append(&out, &len, &cap, o->setup[i]);
		if (rc == 0)
			rc = append(&out, &len, &cap, " && ");
	}
	if (rc == 0)
		rc = append(&out, &len, &cap, "exec ");
	if (rc == 0)
		rc = append(&out, &len, &cap, o->server ? o->server : "flechefs-server");
	if (rc == 0 && !o->cache) {
		rc = append(&out, &len, &cap, " --serve --root ");
		if (rc == 0)
			rc = append_path(&out, &len, &cap, o, p);
	} else if (rc == 0) {
		/* fleche.toml's cache, looked for from PATH (else where the server starts) */
		rc = append(&out, &len, &cap, " --serve");
		if (rc == 0 && *p)
			rc = append(&out, &len, &cap, " --config-from ");
		if (rc == 0 && *p)
			rc = append_path(&out, &len, &cap, o, p);
		if (rc == 0)
			rc = append(&out, &len, &cap, " --cache ");
		if (rc == 0)
			rc = quote_into(&out, &len, &cap, o->cache);
	}
	if (rc == 0 && read_only)
		rc = append(&out, &len, &cap, " --read-only");
	if (rc) {
		free(out);
		return NULL;
	}
	return out;
}

/* ---------------------------------------------------------------- sources */

int fsd_ssh_parse_source(const char *source, char **user, char **host, char **path)
{
	const char *colon = strchr(source, ':');
	const char *lb = strchr(source, '[');
	const char *at = NULL, *h, *he, *sep;

	*user = *host = *path = NULL;
	if (!colon || colon == source)
		return -EINVAL;
	if (lb && lb < colon && (lb == source || lb[-1] == '@')) {
		/* [host]: the colons of an IPv6 address are inside the brackets */
		const char *rb = strchr(lb, ']');
		if (!rb || rb[1] != ':')
			return -EINVAL;
		at = lb > source ? lb - 1 : NULL;
		h = lb + 1;
		he = rb;
		sep = rb + 1;
	} else {
		for (const char *p = source; p < colon; p++)
			if (*p == '@')
				at = p;
		h = at ? at + 1 : source;
		he = sep = colon;
	}
	if (he == h || (at && at == source))
		return -EINVAL;
	for (const char *p = h; p < he; p++)
		if (*p == '[' || *p == ']' || *p == '@')
			return -EINVAL;
	*host = strndup(h, (size_t)(he - h));
	*user = at ? strndup(source, (size_t)(at - source)) : NULL;
	*path = strdup(sep + 1);
	if (!*host || !*path || (at && !*user)) {
		free(*user);
		free(*host);
		free(*path);
		*user = *host = *path = NULL;
		return -ENOMEM;
	}
	return 0;
}

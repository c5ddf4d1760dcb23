/*
 * ssh.h: flechefs over SSH. Parses the SSH options of the command line, resolves
 * the host through `ssh -G` (~/.ssh/config), and makes a connector (transport.h)
 * whose connect() starts `flechefs-server --serve` on the remote host, either in one
 * exec channel of a libssh2 session (the default: one TCP connection per mount, host
 * key checked against known_hosts before authenticating) or through the system ssh
 * client when -o ssh_command is given.
 *
 * How main.c uses it:
 *
 *	struct fsd_ssh_options so;
 *	fsd_ssh_options_init(&so);
 *	for each "-o key=value" (split at commas as FUSE does) and for "-p N"
 *	(as fsd_ssh_opt(&so, "port", N)):
 *		r = fsd_ssh_opt(&so, key, value);   1: consumed, 0: not ours, -1: bad
 *	if (fsd_ssh_is_remote(source)) {
 *		c = fsd_ssh_connector_new(source, &so, read_only, err, sizeof(err));
 *		if (!c) { fprintf(stderr, "flechefs: %s\n", err); exit 1; }
 *		rc = c->connect(c, 1, &t, err, sizeof(err));   prompts happen here
 *		... hello, mount, daemonize; later reconnects with
 *		if (c->can_reconnect(c)) c->connect(c, 0, &t, err, sizeof(err));
 *		c->free(c);
 *	}
 *	fsd_ssh_options_release(&so);   (the connector keeps its own copy)
 *
 * Threads and fork: fsd_ssh_connector_new runs `ssh -G` (a child process) and starts
 * no thread; connect() starts none either. The libssh2 transport's I/O thread starts
 * at the first read or write. So the process may fork (fuse_daemonize) after
 * connect() and before the first read/write; a transport that has been read or
 * written must not be used across a fork (its I/O thread would stay in the parent).
 * main.c forks before connecting, which is simplest.
 *
 * Logging: lines of the remote standard error and connection events go to the
 * function set with fsd_ssh_set_log (default: fsd_log of log.h, level info).
 */
#ifndef FLECHEFS_FUSEFS_SSH_H
#define FLECHEFS_FUSEFS_SSH_H

#include <stddef.h>

#include "transport.h"

enum fsd_ssh_strict {
	FSD_SSH_STRICT_UNSET = 0,  /* take ssh -G's value, else YES */
	FSD_SSH_STRICT_YES,        /* unknown host: refuse */
	FSD_SSH_STRICT_ACCEPT_NEW, /* unknown host: add to known_hosts */
	FSD_SSH_STRICT_NO,         /* unknown host: accept, do not record */
};

struct fsd_ssh_options {
	int port;              /* 0: unset (ssh -G, else 22) */
	char *user;            /* -o User=NAME; NULL: from the source, ssh -G, $USER */
	char **identity_files; /* -o IdentityFile=FILE, repeatable, in order */
	size_t n_identity_files;
	char *known_hosts_file; /* -o UserKnownHostsFile=FILE; NULL: ssh -G or ~/.ssh/known_hosts */
	enum fsd_ssh_strict strict; /* -o StrictHostKeyChecking=yes|accept-new|no */
	int connect_timeout;        /* -o ConnectTimeout=S; 0: unset (ssh -G, else 30) */
	char *server;               /* -o server=CMD; default "flechefs-server" */
	char *cache; /* -o cache=NAME: fleche.toml's cache NAME instead of --root PATH */
	char **setup;               /* -o setup=CMD, repeatable, joined with && */
	size_t n_setup;
	char *workdir;          /* -o workdir=DIR: cd there first */
	char *ssh_command;      /* -o ssh_command="ssh -J jump host": system ssh */
	int keepalive_interval; /* -o ServerAliveInterval=S; 0: default 10 s, -1: off */
	int keepalive_count;    /* -o ServerAliveCountMax=N; 0: default 3 */
	size_t window;          /* -o ssh_window=BYTES: fixed receive window; 0: adaptive */
	char *ciphers;          /* -o Ciphers=LIST: libssh2 cipher preference, e.g. aes128-ctr */
	char *ssh_config;       /* -o ssh_config=FILE (ssh -F FILE -G), "none": no ssh -G */
};

void fsd_ssh_options_init(struct fsd_ssh_options *o);
void fsd_ssh_options_release(struct fsd_ssh_options *o);

/*
 * Takes one option. Keys (OpenSSH's are case-insensitive, as in ssh_config):
 * port, User, IdentityFile, UserKnownHostsFile, StrictHostKeyChecking, ConnectTimeout,
 * ServerAliveInterval, ServerAliveCountMax, Ciphers, server, setup, workdir,
 * ssh_command, ssh_window, ssh_config, cache (which the local server uses too).
 * Returns 1 when consumed, 0 when key is not an SSH option, -1 when the value is bad
 * (a message on standard error).
 */
int fsd_ssh_opt(struct fsd_ssh_options *o, const char *key, const char *value);

/* The lines of --help for these options (a static string). */
const char *fsd_ssh_help(void);

/*
 * Nonzero when source names a remote cache: "[user@]host:[path]", a colon before
 * any slash (as sshfs and scp decide). "./a:b" and "/x:y" are local.
 */
int fsd_ssh_is_remote(const char *source);

/*
 * Splits a remote source "[user@]host:[path]", where host may be in brackets, as
 * an IPv6 address must be: "[::1]:path", "user@[::1]:path" (as sshfs and scp
 * accept it). The user is what comes before the last '@' ahead of the host; the
 * path is everything after the colon, possibly empty. Returns 0 with *host
 * (without the brackets), *user (NULL when not given) and *path, all three owned by
 * the caller; -EINVAL for a malformed source (no host, an empty user, an unclosed
 * bracket, anything but ':' after ']'), -ENOMEM; on failure all three are NULL.
 */
int fsd_ssh_parse_source(const char *source, char **user, char **host, char **path);

/*
 * Makes the connector for source "[user@]host:[path]" ("[user@][v6addr]:[path]" for
 * IPv6). Copies what it needs from o. Resolves the host with `ssh -G` here (not in
 * connect), unless ssh_command is set. read_only adds --read-only to the server's
 * command line. Returns NULL with a message in err on a bad source. The connector's
 * connect() runs
 *	cd WORKDIR && SETUP1 && SETUP2 && exec SERVER --serve --root PATH [--read-only]
 * or, with -o cache=NAME, `exec SERVER --serve [--config-from PATH] --cache NAME`
 * (fleche.toml's cache as `python -m fleche remote --serve --cache NAME` finds it;
 * from PATH when one is given, else from the directory the server starts in)
 * (WORKDIR, PATH and NAME shell-quoted, SETUP and SERVER as given), through libssh2 or as
 *	sh -c 'exec <ssh_command> <the remote command, quoted once more>'
 * (exec: the transport's SIGTERM at shutdown reaches ssh itself, not a shell)
 * through fsd_transport_spawn. Caller frees with c->free(c).
 */
struct fsd_connector *fsd_ssh_connector_new(const char *source, const struct fsd_ssh_options *o,
                                            int read_only, char *err, size_t errlen);

/* Where log lines go (the remote stderr, reconnects, warnings); NULL: fsd_log. */
void fsd_ssh_set_log(void (*log)(const char *line));

/*
 * The remote command line connect() runs (as above), for logs and tests. PATH is
 * relative to the login directory as the issue says: with a workdir, a relative PATH
 * becomes "$HOME"/PATH and an empty one "$HOME"; without, an empty PATH is ".". Returns a
 * string the caller frees, or NULL on OOM.
 */
char *fsd_ssh_remote_command(const struct fsd_ssh_options *o, const char *path, int read_only);

#endif

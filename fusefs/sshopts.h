/*
 * sshopts.h: the string side of flechefs over SSH, with no network, FUSE or libssh2:
 * the SSH options of the command line, the remote source "[user@]host:[path]", the
 * remote command line and its shell quoting. ssh.h makes connectors from them.
 */
#ifndef FLECHEFS_FUSEFS_SSHOPTS_H
#define FLECHEFS_FUSEFS_SSHOPTS_H

#include <stddef.h>

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
 * The remote command line the connector's connect() runs (ssh.h), for logs and tests. PATH is
 * relative to the login directory: with a workdir, a relative PATH
 * becomes "$HOME"/PATH and an empty one "$HOME"; without, an empty PATH is ".". Returns a
 * string the caller frees, or NULL on OOM.
 */
char *fsd_ssh_remote_command(const struct fsd_ssh_options *o, const char *path, int read_only);

/* s single-quoted for a POSIX shell; the caller frees; NULL on OOM. */
char *fsd_ssh_quote(const char *s);

/* Appends a copy of s to the string vector *v of *n; 0 or -ENOMEM (*v unchanged). */
int fsd_ssh_strv_push(char ***v, size_t *n, const char *s);

/* Frees the n strings of v and v itself; v may be NULL. */
void fsd_ssh_strv_free(char **v, size_t n);

#endif

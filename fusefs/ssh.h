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

#include "sshopts.h"
#include "transport.h"

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

#endif

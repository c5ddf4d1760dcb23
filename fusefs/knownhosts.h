/*
 * knownhosts.h: the host key check of the libssh2 transport, done after the key
 * exchange and before any authentication, against OpenSSH known_hosts files (plain
 * and hashed entries, "[host]:port" for ports other than 22).
 */
#ifndef FLECHEFS_FUSEFS_KNOWNHOSTS_H
#define FLECHEFS_FUSEFS_KNOWNHOSTS_H

#include <stddef.h>

#include <libssh2.h>

#include "ssh.h"

struct fsd_knownhosts_files {
	char *const *read; /* every file to look in (missing files are skipped) */
	size_t n_read;
	const char *write; /* where accept-new adds a key (created with its directory) */
};

/*
 * The host key algorithms for the handshake, those this host has keys for in the
 * files first, then the rest in OpenSSH's order, so that a host known by its
 * ED25519 key is not reported unknown because libssh2 preferred ECDSA. Caller frees;
 * NULL on OOM.
 */
char *fsd_knownhosts_prefs(LIBSSH2_SESSION *s, const char *host, int port,
                           const struct fsd_knownhosts_files *f);

/*
 * Checks the session's host key. Known and equal: 0. Unknown: with strict YES,
 * -EPERM and a message naming the key type, its SHA256 fingerprint and the option
 * that accepts it; with ACCEPT_NEW the key is appended to f->write and 0; with NO,
 * 0 and a warning through log. A different key for the host: -EPERM, always, with a
 * loud message. log may be NULL.
 */
int fsd_knownhosts_check(LIBSSH2_SESSION *s, const char *host, int port,
                         const struct fsd_knownhosts_files *f, enum fsd_ssh_strict strict,
                         void (*log)(const char *line), char *err, size_t errlen);

/* "ED25519 key fingerprint SHA256:..." of the session's host key into buf. */
void fsd_knownhosts_fingerprint(LIBSSH2_SESSION *s, char *buf, size_t len);

#endif

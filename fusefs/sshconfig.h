/*
 * sshconfig.h: what OpenSSH's client configuration says about a host. Runs
 * `ssh [-F FILE] -G [-p PORT] [user@]host` (OpenSSH's own resolution of ~/.ssh/config,
 * Include, Match and wildcards included) and keeps the settings the libssh2 transport
 * uses. Where ssh is not installed the result is empty and the caller uses defaults.
 */
#ifndef FLECHEFS_FUSEFS_SSHCONFIG_H
#define FLECHEFS_FUSEFS_SSHCONFIG_H

#include <stddef.h>

struct fsd_ssh_config {
	int found;             /* 1 when ssh -G ran and answered */
	char *hostname;        /* HostName; NULL: not said */
	char *user;            /* User */
	int port;              /* Port; 0: not said */
	char **identity_files; /* IdentityFile, ~ and %-tokens expanded, in order */
	size_t n_identity_files;
	char **known_hosts_files; /* UserKnownHostsFile entries (first is written to) */
	size_t n_known_hosts_files;
	char **global_known_hosts; /* GlobalKnownHostsFile entries (read only) */
	size_t n_global_known_hosts;
	char *strict;           /* StrictHostKeyChecking as printed: yes, no, ask, accept-new... */
	int connect_timeout;    /* ConnectTimeout seconds; 0: none */
	int keepalive_interval; /* ServerAliveInterval; 0: not said or off */
	int keepalive_count;    /* ServerAliveCountMax; 0: not said */
	char *proxy;            /* "proxyjump X" or "proxycommand X" when set: libssh2 cannot */
};

void fsd_ssh_config_init(struct fsd_ssh_config *sc);
void fsd_ssh_config_release(struct fsd_ssh_config *sc);

/*
 * Fills sc from `ssh -G`. config_file: NULL for the user's default, else passed as -F.
 * user may be NULL; port 0 means not given. Returns 0 (also when ssh is missing:
 * sc->found stays 0), or -errno with a message in err when ssh rejects the
 * configuration or out of memory. Bounded: ssh -G is killed after 10 s.
 */
int fsd_ssh_config_resolve(struct fsd_ssh_config *sc, const char *config_file, const char *user,
                           const char *host, int port, char *err, size_t errlen);

/*
 * Parses the text ssh -G printed (exposed for tests); the printed hostname, user and
 * port expand %h, %r and %p in identity files. Returns 0 or -ENOMEM.
 */
int fsd_ssh_config_parse(struct fsd_ssh_config *sc, const char *text, size_t len);

/* "~/x" -> "$HOME/x" (password database home when HOME is unset). Caller frees. */
char *fsd_ssh_expand_home(const char *path);

#endif

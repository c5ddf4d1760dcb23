/*
 * sshconfig.c: asks the OpenSSH client how it would connect to a host. `ssh -G`
 * prints every setting after reading the whole configuration (Include, Match,
 * wildcards), one "keyword value" line each with keywords in lower case; we keep the
 * few that a libssh2 connection needs. ssh -G opens no connection; it still runs
 * under a 10 s bound and its output is capped at 256 KiB.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "sshconfig.h"

#define SSHCONFIG_MAX_OUTPUT (256 * 1024)
#define SSHCONFIG_TIMEOUT_MS 10000

void fsd_ssh_config_init(struct fsd_ssh_config *sc)
{
	memset(sc, 0, sizeof(*sc));
}

static void free_list(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void fsd_ssh_config_release(struct fsd_ssh_config *sc)
{
	free(sc->hostname);
	free(sc->user);
	free_list(sc->identity_files, sc->n_identity_files);
	free_list(sc->known_hosts_files, sc->n_known_hosts_files);
	free_list(sc->global_known_hosts, sc->n_global_known_hosts);
	free(sc->strict);
	free(sc->proxy);
	fsd_ssh_config_init(sc);
}

static const char *home_dir(void)
{
	const char *home = getenv("HOME");
	if (home && *home)
		return home;
	struct passwd *pw = getpwuid(getuid());
	return pw && pw->pw_dir ? pw->pw_dir : "/";
}

char *fsd_ssh_expand_home(const char *path)
{
	char *out = NULL;
	if (path[0] == '~' && (path[1] == '/' || path[1] == '\0')) {
		if (asprintf(&out, "%s%s", home_dir(), path + 1) < 0)
			return NULL;
		return out;
	}
	return strdup(path);
}

static int push(char ***v, size_t *n, char *s)
{
	if (!s)
		return -ENOMEM;
	char **nv = realloc(*v, (*n + 1) * sizeof(*nv));
	if (!nv) {
		free(s);
		return -ENOMEM;
	}
	nv[(*n)++] = s;
	*v = nv;
	return 0;
}

/* Expands ~ and the tokens ssh_config(5) allows in IdentityFile. */
static char *expand_identity(const struct fsd_ssh_config *sc, const char *in)
{
	char *home = fsd_ssh_expand_home(in);
	if (!home)
		return NULL;
	size_t cap = strlen(home) + 1;
	char *out = malloc(cap);
	size_t len = 0;
	int rc = out ? 0 : -1;
	for (const char *p = home; rc == 0 && *p; p++) {
		const char *add = NULL;
		char portbuf[16], one[2] = {*p, 0};
		if (*p == '%' && p[1]) {
			p++;
			switch (*p) {
			case 'd':
				add = home_dir();
				break;
			case 'h':
				add = sc->hostname ? sc->hostname : "";
				break;
			case 'r':
				add = sc->user ? sc->user : "";
				break;
			case 'u': {
				struct passwd *pw = getpwuid(getuid());
				add = pw ? pw->pw_name : "";
				break;
			}
			case 'p':
				snprintf(portbuf, sizeof(portbuf), "%d", sc->port ? sc->port : 22);
				add = portbuf;
				break;
			case '%':
				add = "%";
				break;
			default:
				one[0] = *p;
				add = one;
				break;
			}
		} else {
			add = one;
		}
		size_t al = strlen(add);
		if (len + al + 1 > cap) {
			size_t ncap = (len + al + 1) * 2;
			char *n = realloc(out, ncap);
			if (!n) {
				rc = -1;
				break;
			}
			out = n;
			cap = ncap;
		}
		memcpy(out + len, add, al);
		len += al;
		out[len] = '\0';
	}
	free(home);
	if (rc) {
		free(out);
		return NULL;
	}
	return out;
}

/* Splits a space-separated list of files into v (expanding ~). */
static int push_words(char ***v, size_t *n, const char *value)
{
	char *copy = strdup(value), *save = NULL;
	if (!copy)
		return -ENOMEM;
	int rc = 0;
	for (char *w = strtok_r(copy, " \t", &save); w && rc == 0; w = strtok_r(NULL, " \t", &save))
		if (strcmp(w, "none") != 0)
			rc = push(v, n, fsd_ssh_expand_home(w));
	free(copy);
	return rc;
}

int fsd_ssh_config_parse(struct fsd_ssh_config *sc, const char *text, size_t len)
{
	/* First pass for hostname, user and port (identity files expand them). */
	char **idents = NULL;
	size_t n_idents = 0;
	int rc = 0;
	const char *p = text, *end = text + len;
	while (p < end && rc == 0) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		const char *sp = memchr(p, ' ', (size_t)(le - p));
		if (sp) {
			size_t kl = (size_t)(sp - p);
			char *val = strndup(sp + 1, (size_t)(le - sp - 1));
			if (!val) {
				rc = -ENOMEM;
				break;
			}
			if (kl == 8 && !memcmp(p, "hostname", 8)) {
				free(sc->hostname);
				sc->hostname = val, val = NULL;
			} else if (kl == 4 && !memcmp(p, "user", 4)) {
				free(sc->user);
				sc->user = val, val = NULL;
			} else if (kl == 4 && !memcmp(p, "port", 4)) {
				sc->port = atoi(val);
			} else if (kl == 12 && !memcmp(p, "identityfile", 12)) {
				rc = push(&idents, &n_idents, val), val = NULL;
			} else if (kl == 18 && !memcmp(p, "userknownhostsfile", 18)) {
				rc = push_words(&sc->known_hosts_files, &sc->n_known_hosts_files,
				                val);
			} else if (kl == 20 && !memcmp(p, "globalknownhostsfile", 20)) {
				rc = push_words(&sc->global_known_hosts, &sc->n_global_known_hosts,
				                val);
			} else if (kl == 21 && !memcmp(p, "stricthostkeychecking", 21)) {
				free(sc->strict);
				sc->strict = val, val = NULL;
			} else if (kl == 14 && !memcmp(p, "connecttimeout", 14)) {
				sc->connect_timeout = atoi(val); /* "none" -> 0 */
			} else if (kl == 19 && !memcmp(p, "serveraliveinterval", 19)) {
				sc->keepalive_interval = atoi(val);
			} else if (kl == 19 && !memcmp(p, "serveralivecountmax", 19)) {
				sc->keepalive_count = atoi(val);
			} else if ((kl == 9 && !memcmp(p, "proxyjump", 9)) ||
			           (kl == 12 && !memcmp(p, "proxycommand", 12))) {
				if (strcmp(val, "none") != 0 && !sc->proxy) {
					if (asprintf(&sc->proxy, "%.*s %s", (int)kl, p, val) < 0) {
						sc->proxy = NULL;
						rc = -ENOMEM;
					}
				}
			}
			free(val);
		}
		p = nl ? nl + 1 : end;
	}
	for (size_t i = 0; i < n_idents && rc == 0; i++)
		rc = push(&sc->identity_files, &sc->n_identity_files,
		          expand_identity(sc, idents[i]));
	free_list(idents, n_idents);
	if (rc == 0)
		sc->found = 1;
	return rc;
}

int fsd_ssh_config_resolve(struct fsd_ssh_config *sc, const char *config_file, const char *user,
                           const char *host, int port, char *err, size_t errlen)
{
	char *argv[12], portbuf[16], *target = NULL, *out = NULL;
	size_t n = 0, len = 0;
	int pfd[2] = {-1, -1}, efd[2] = {-1, -1}, rc = 0;
	pid_t pid = -1;
	char errtext[512] = "";
	size_t errtext_len = 0;

	if (user) {
		if (asprintf(&target, "%s@%s", user, host) < 0) {
			target = NULL;
			rc = -ENOMEM;
			goto out;
		}
	} else if (!(target = strdup(host))) {
		rc = -ENOMEM;
		goto out;
	}
	argv[n++] = "ssh";
	if (config_file) {
		argv[n++] = "-F";
		argv[n++] = (char *)config_file;
	}
	argv[n++] = "-G";
	if (port) {
		snprintf(portbuf, sizeof(portbuf), "%d", port);
		argv[n++] = "-p";
		argv[n++] = portbuf;
	}
	argv[n++] = "--";
	argv[n++] = target;
	argv[n] = NULL;

	if (pipe2(pfd, O_CLOEXEC) < 0 || pipe2(efd, O_CLOEXEC) < 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot run 'ssh -G': %s", strerror(errno));
		goto out;
	}
	pid = fork();
	if (pid < 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot run 'ssh -G': %s", strerror(errno));
		goto out;
	}
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDONLY);
		if (devnull >= 0)
			dup2(devnull, 0);
		dup2(pfd[1], 1);
		dup2(efd[1], 2);
		execvp("ssh", argv);
		_exit(errno == ENOENT ? 127 : 126);
	}
	close(pfd[1]);
	close(efd[1]);
	pfd[1] = efd[1] = -1;

	int64_t deadline = fsd_now_ms() + SSHCONFIG_TIMEOUT_MS;
	size_t cap = 0;
	int open_fds = 2;
	while (open_fds > 0) {
		struct pollfd fds[2] = {{pfd[0], POLLIN, 0}, {efd[0], POLLIN, 0}};
		int64_t left = deadline - fsd_now_ms();
		if (left <= 0) {
			kill(pid, SIGKILL);
			rc = -ETIMEDOUT;
			snprintf(err, errlen, "'ssh -G %s' did not answer within 10 s", target);
			goto out;
		}
		int pr = poll(fds, 2, (int)left);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr < 0) {
			rc = -errno;
			goto out;
		}
		if (fds[0].fd >= 0 && fds[0].revents) {
			if (cap - len < 4096) {
				if (cap >= SSHCONFIG_MAX_OUTPUT) {
					kill(pid, SIGKILL);
					rc = -EFBIG;
					snprintf(err, errlen, "'ssh -G' printed more than 256 KiB");
					goto out;
				}
				size_t ncap = cap ? cap * 2 : 16384;
				char *nb = realloc(out, ncap + 1);
				if (!nb) {
					rc = -ENOMEM;
					goto out;
				}
				out = nb;
				cap = ncap;
			}
			ssize_t r = read(pfd[0], out + len, cap - len);
			if (r > 0) {
				len += (size_t)r;
			} else if (r == 0 || errno != EINTR) {
				close(pfd[0]);
				pfd[0] = -1;
				open_fds--;
			}
		}
		if (efd[0] >= 0 && fds[1].revents) {
			char tmp[512];
			ssize_t r = read(efd[0], tmp, sizeof(tmp));
			if (r > 0) {
				size_t room = sizeof(errtext) - 1 - errtext_len;
				size_t take = (size_t)r < room ? (size_t)r : room;
				memcpy(errtext + errtext_len, tmp, take);
				errtext_len += take;
				errtext[errtext_len] = '\0';
			} else if (r == 0 || errno != EINTR) {
				close(efd[0]);
				efd[0] = -1;
				open_fds--;
			}
		}
	}
	int status = 0;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	pid = -1;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
		rc = 0; /* no OpenSSH client: defaults */
		goto out;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		/* keep only the first line of what ssh said */
		char *nl = strchr(errtext, '\n');
		if (nl)
			*nl = '\0';
		snprintf(err, errlen, "ssh configuration for '%s' rejected: %s", target,
		         errtext[0] ? errtext : "ssh -G failed");
		rc = -EINVAL;
		goto out;
	}
	rc = fsd_ssh_config_parse(sc, out ? out : "", len);
	if (rc)
		snprintf(err, errlen, "out of memory reading the ssh configuration");
out:
	if (pid > 0) {
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	for (int i = 0; i < 2; i++) {
		if (pfd[i] >= 0)
			close(pfd[i]);
		if (efd[i] >= 0)
			close(efd[i]);
	}
	free(out);
	free(target);
	return rc;
}

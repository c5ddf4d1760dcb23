/*
 * ssh.c: the SSH connector (ssh.h), the two ways of reaching a remote
 * flechefs-server: an exec channel of a libssh2 session (one TCP connection, one
 * session, one channel per mount) or the system ssh client (-o ssh_command, run by
 * fsd_transport_spawn).
 *
 * The libssh2 connector resolves the host once (ssh -G, sshconfig.h); each connect()
 * opens a TCP connection, checks the host key against known_hosts before anything
 * else (knownhosts.h), authenticates (sshauth.c), measures the round trip that sizes
 * the first receive window, and starts the server in an exec channel. The transport
 * it returns runs on its own I/O thread (sshio.c, whose invariants are numbered).
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <libssh2.h>

#include "clock.h"
#include "knownhosts.h"
#include "sshconfig.h"
#include "sshtransport.h"

/* ---------------------------------------------------------------- connect */

static int tcp_connect(const char *host, int port, int timeout_s, char *err, size_t errlen)
{
	struct addrinfo hints = {0}, *res = NULL;
	char portbuf[16];
	int fd = -1, last = 0;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_family = AF_UNSPEC;
	snprintf(portbuf, sizeof(portbuf), "%d", port);
	int g = getaddrinfo(host, portbuf, &hints, &res);
	if (g) {
		snprintf(err, errlen, "cannot resolve '%s': %s", host, gai_strerror(g));
		return -EHOSTUNREACH;
	}
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
		            ai->ai_protocol);
		if (fd < 0) {
			last = errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		if (errno == EINPROGRESS) {
			struct pollfd p = {fd, POLLOUT, 0};
			int pr;
			while ((pr = poll(&p, 1, timeout_s * 1000)) < 0 && errno == EINTR)
				;
			int soerr = 0;
			socklen_t sl = sizeof(soerr);
			if (pr == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 &&
			    soerr == 0)
				break;
			last = pr == 0 ? ETIMEDOUT : soerr ? soerr : errno;
		} else {
			last = errno;
		}
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		snprintf(err, errlen, "cannot connect to '%s' port %d: %s", host, port,
		         strerror(last ? last : ECONNREFUSED));
		return -(last ? last : ECONNREFUSED);
	}
	int fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static pthread_once_t ssh_init_once = PTHREAD_ONCE_INIT;
static int ssh_init_rc;

static void ssh_global_init(void)
{
	ssh_init_rc = libssh2_init(0);
}

static int libssh2_connect(struct ssh_connector *c, int interactive, struct fsd_transport **out,
                           char *err, size_t errlen)
{
	struct ssh_transport *t = NULL;
	int rc = 0;
	char *prefs = NULL;

	pthread_once(&ssh_init_once, ssh_global_init);
	if (ssh_init_rc) {
		snprintf(err, errlen, "cannot initialise libssh2");
		return -EIO;
	}
	t = fsd_ssh_transport_new(c, interactive, err, errlen);
	if (!t)
		return -ENOMEM;
	t->sock = tcp_connect(c->host, c->port, c->connect_timeout, err, errlen);
	if (t->sock < 0) {
		rc = t->sock;
		goto out;
	}
	t->session = libssh2_session_init_ex(NULL, NULL, NULL, t);
	if (!t->session) {
		snprintf(err, errlen, "out of memory");
		rc = -ENOMEM;
		goto out;
	}
	libssh2_session_callback_set(t->session, LIBSSH2_CALLBACK_RECV, (void *)fsd_ssh_recv_cb);
	libssh2_session_set_blocking(t->session, 1);
	libssh2_session_set_timeout(t->session, (long)c->connect_timeout * 1000);
	struct fsd_knownhosts_files kf = {c->known_read, c->n_known_read, c->known_write};
	prefs = fsd_knownhosts_prefs(t->session, c->host, c->port, &kf);
	if (prefs)
		libssh2_session_method_pref(t->session, LIBSSH2_METHOD_HOSTKEY, prefs);
	if (c->ciphers &&
	    (libssh2_session_method_pref(t->session, LIBSSH2_METHOD_CRYPT_CS, c->ciphers) ||
	     libssh2_session_method_pref(t->session, LIBSSH2_METHOD_CRYPT_SC, c->ciphers))) {
		snprintf(err, errlen, "no cipher of '%s' is supported by libssh2", c->ciphers);
		rc = -EINVAL;
		goto out;
	}
	if (libssh2_session_handshake(t->session, t->sock)) {
		snprintf(err, errlen, "ssh handshake with %s failed: %s", t->peer,
		         fsd_ssh_errmsg(t->session));
		rc = -EPROTO;
		goto out;
	}
	rc = fsd_knownhosts_check(t->session, c->host, c->port, &kf, c->strict, fsd_ssh_log_line,
	                          err, errlen);
	if (rc)
		goto out;
	rc = fsd_ssh_authenticate(t, c, err, errlen);
	if (rc)
		goto out;

	size_t window = c->window ? c->window : SSH_WINDOW_MIN;
	int64_t t0 = fsd_now_us();
	t->channel =
	    libssh2_channel_open_ex(t->session, "session", sizeof("session") - 1, (unsigned)window,
	                            LIBSSH2_CHANNEL_PACKET_DEFAULT, NULL, 0);
	if (!t->channel) {
		snprintf(err, errlen, "cannot open a channel on %s: %s", t->peer,
		         fsd_ssh_errmsg(t->session));
		rc = -EIO;
		goto out;
	}
	double sample = (double)(fsd_now_us() - t0) / 1e6;
	if (sample < t->rtt_s || t->rtt_s <= 0)
		t->rtt_s = sample;
	/*
	 * Two more round trips to measure: "env" requests, which the session process
	 * answers at once (accepted or denied, either will do). Authentication and
	 * channel open include work on the server, seconds of it on a busy machine.
	 * The first window is what 100 MB/s needs over the smallest RTT seen (a power
	 * of two, 2 to 32 MiB); the I/O thread grows it from the rate it then sees.
	 */
	for (int i = 0; i < 2; i++) {
		t0 = fsd_now_us();
		int r = libssh2_channel_setenv(t->channel, "FLECHEFS_RTT_PROBE", "1");
		sample = (double)(fsd_now_us() - t0) / 1e6;
		if (r != 0 && r != LIBSSH2_ERROR_CHANNEL_REQUEST_DENIED)
			break;
		if (sample < t->rtt_s)
			t->rtt_s = sample;
	}
	if (!c->window) {
		while (window < SSH_WINDOW_MAX && (double)window < t->rtt_s * 100e6)
			window *= 2;
	}
	t->window_target = window;
	t->window_fixed = c->window != 0;
	/* the channel was opened with c->window or SSH_WINDOW_MIN: see adjust_window */
	t->read_max = (c->window ? c->window : SSH_WINDOW_MIN) / 8;
	if (t->read_max > SSH_READ_CHUNK)
		t->read_max = SSH_READ_CHUNK;
	if (libssh2_channel_exec(t->channel, c->remote_cmd)) {
		snprintf(err, errlen, "cannot run the server on %s: %s", t->peer,
		         fsd_ssh_errmsg(t->session));
		rc = -EIO;
		goto out;
	}
	t->keepalive_interval = c->keepalive_interval;
	t->keepalive_count = c->keepalive_count;
	fsd_ssh_logf("connected to %s (rtt %.2f ms, window %zu KiB%s)", t->peer, t->rtt_s * 1e3,
	             window >> 10, t->window_fixed ? ", fixed" : "");
	t->interactive = 0; /* no prompt after connect */
	*out = &t->base;
	t = NULL;
out:
	free(prefs);
	if (t)
		fsd_ssh_transport_destroy(t);
	return rc;
}

static int sc_connect(struct fsd_connector *base, int interactive, struct fsd_transport **out,
                      char *err, size_t errlen)
{
	struct ssh_connector *c = (struct ssh_connector *)base;
	if (c->spawn_cmd) {
		char *argv[] = {"sh", "-c", c->spawn_cmd, NULL};
		return fsd_transport_spawn(argv, out, err, errlen);
	}
	return libssh2_connect(c, interactive, out, err, errlen);
}

static int sc_can_reconnect(struct fsd_connector *base)
{
	struct ssh_connector *c = (struct ssh_connector *)base;
	/* the system ssh prompts on /dev/tty only, which a daemon no longer has */
	if (c->spawn_cmd || c->reconnect_ok)
		return 1;
	fsd_ssh_logf("the connection to %s@%s needed a person to authenticate (passphrase, "
	             "keyboard-interactive or password), so flechefs does not reconnect by "
	             "itself: unmount (fusermount3 -u MOUNTPOINT) and mount again, or use a key "
	             "in ssh-agent",
	             c->user ? c->user : "?", c->host ? c->host : "?");
	return 0;
}

static void sc_free(struct fsd_connector *base)
{
	struct ssh_connector *c = (struct ssh_connector *)base;
	if (!c)
		return;
	free(c->source_host);
	free(c->host);
	free(c->user);
	free(c->remote_cmd);
	free(c->spawn_cmd);
	fsd_ssh_strv_free(c->identity_files, c->n_identity_files);
	fsd_ssh_strv_free(c->known_read, c->n_known_read);
	free(c->known_write);
	free(c->ciphers);
	free(c);
}

static char *local_user(void)
{
	struct passwd *pw = getpwuid(getuid());
	if (pw && pw->pw_name)
		return strdup(pw->pw_name);
	const char *u = getenv("USER");
	return strdup(u ? u : "root");
}

struct fsd_connector *fsd_ssh_connector_new(const char *source, const struct fsd_ssh_options *o,
                                            int read_only, char *err, size_t errlen)
{
	struct ssh_connector *c = calloc(1, sizeof(*c));
	struct fsd_ssh_config sc;
	char *user = NULL, *path = NULL;
	int rc = 0;

	fsd_ssh_config_init(&sc);
	if (!c)
		goto oom;
	c->base.connect = sc_connect;
	c->base.can_reconnect = sc_can_reconnect;
	c->base.free = sc_free;
	rc = fsd_ssh_parse_source(source, &user, &c->source_host, &path);
	if (rc == -ENOMEM)
		goto oom;
	if (rc) {
		snprintf(err, errlen,
		         "bad remote source '%s': expected [user@]host:[path] (an IPv6 address "
		         "in brackets: [user@][::1]:[path])",
		         source);
		goto fail;
	}
	c->remote_cmd = fsd_ssh_remote_command(o, path, read_only);
	if (!c->remote_cmd)
		goto oom;

	if (o->ssh_command) {
		char *q = fsd_ssh_quote(c->remote_cmd);
		if (!q || asprintf(&c->spawn_cmd, "exec %s %s", o->ssh_command, q) < 0) {
			c->spawn_cmd = NULL;
			free(q);
			goto oom;
		}
		free(q);
		goto done;
	}

	if (!user && o->user && !(user = strdup(o->user)))
		goto oom;
	if (!o->ssh_config || strcmp(o->ssh_config, "none") != 0) {
		rc = fsd_ssh_config_resolve(&sc, o->ssh_config, user, c->source_host, o->port, err,
		                            errlen);
		if (rc)
			goto fail;
	}
	if (sc.proxy) {
		/* libssh2 cannot hop: hand the host to the system client, which can */
		char *q = fsd_ssh_quote(c->remote_cmd), *qh = fsd_ssh_quote(c->source_host);
		char *qf = o->ssh_config ? fsd_ssh_quote(o->ssh_config) : strdup("");
		char *qu = user ? fsd_ssh_quote(user) : strdup("");
		char portbuf[32] = "";
		if (o->port)
			snprintf(portbuf, sizeof(portbuf), " -p %d", o->port);
		if (q && qh && qf && qu &&
		    asprintf(&c->spawn_cmd, "exec ssh%s%s%s%s%s -- %s %s",
		             o->ssh_config ? " -F " : "", qf, portbuf, user ? " -l " : "", qu, qh,
		             q) < 0)
			c->spawn_cmd = NULL;
		free(q);
		free(qh);
		free(qf);
		free(qu);
		if (!c->spawn_cmd)
			goto oom;
		fsd_ssh_logf("the ssh configuration of '%s' sets %s, which libssh2 cannot do; "
		             "using the system ssh client",
		             c->source_host, sc.proxy);
		goto done;
	}

	c->host = strdup(sc.hostname ? sc.hostname : c->source_host);
	c->user = user ? strdup(user) : sc.user ? strdup(sc.user) : local_user();
	c->port = o->port ? o->port : sc.port ? sc.port : 22;
	if (!c->host || !c->user)
		goto oom;
	for (size_t i = 0; i < o->n_identity_files; i++) {
		char *e = fsd_ssh_expand_home(o->identity_files[i]);
		if (!e || fsd_ssh_strv_push(&c->identity_files, &c->n_identity_files, e)) {
			free(e);
			goto oom;
		}
		free(e);
	}
	c->n_given_identity_files = c->n_identity_files;
	if (sc.found) {
		for (size_t i = 0; i < sc.n_identity_files; i++)
			if (fsd_ssh_strv_push(&c->identity_files, &c->n_identity_files,
			             sc.identity_files[i]))
				goto oom;
	} else if (o->n_identity_files == 0) {
		static const char *const defaults[] = {"~/.ssh/id_ed25519", "~/.ssh/id_ecdsa",
		                                       "~/.ssh/id_rsa"};
		for (size_t i = 0; i < 3; i++) {
			char *e = fsd_ssh_expand_home(defaults[i]);
			if (!e || fsd_ssh_strv_push(&c->identity_files, &c->n_identity_files, e)) {
				free(e);
				goto oom;
			}
			free(e);
		}
	}
	if (o->known_hosts_file) {
		c->known_write = fsd_ssh_expand_home(o->known_hosts_file);
		if (!c->known_write ||
		    fsd_ssh_strv_push(&c->known_read, &c->n_known_read, c->known_write))
			goto oom;
	} else if (sc.n_known_hosts_files) {
		c->known_write = strdup(sc.known_hosts_files[0]);
		if (!c->known_write)
			goto oom;
		for (size_t i = 0; i < sc.n_known_hosts_files; i++)
			if (fsd_ssh_strv_push(&c->known_read, &c->n_known_read,
			                      sc.known_hosts_files[i]))
				goto oom;
	} else {
		c->known_write = fsd_ssh_expand_home("~/.ssh/known_hosts");
		if (!c->known_write ||
		    fsd_ssh_strv_push(&c->known_read, &c->n_known_read, c->known_write))
			goto oom;
	}
	for (size_t i = 0; i < sc.n_global_known_hosts; i++)
		if (fsd_ssh_strv_push(&c->known_read, &c->n_known_read,
		                      sc.global_known_hosts[i]))
			goto oom;
	if (!sc.found &&
	    fsd_ssh_strv_push(&c->known_read, &c->n_known_read, "/etc/ssh/ssh_known_hosts"))
		goto oom;

	c->strict = o->strict;
	if (c->strict == FSD_SSH_STRICT_UNSET && sc.strict) {
		if (!strcmp(sc.strict, "accept-new"))
			c->strict = FSD_SSH_STRICT_ACCEPT_NEW;
		else if (!strcmp(sc.strict, "false") || !strcmp(sc.strict, "no") ||
		         !strcmp(sc.strict, "off"))
			c->strict = FSD_SSH_STRICT_NO;
	}
	if (c->strict == FSD_SSH_STRICT_UNSET)
		c->strict = FSD_SSH_STRICT_YES;
	c->connect_timeout = o->connect_timeout       ? o->connect_timeout
	                     : sc.connect_timeout > 0 ? sc.connect_timeout
	                                              : SSH_DEFAULT_TIMEOUT;
	c->keepalive_interval = o->keepalive_interval       ? o->keepalive_interval
	                        : sc.keepalive_interval > 0 ? sc.keepalive_interval
	                                                    : SSH_DEFAULT_KEEPALIVE;
	c->keepalive_count = o->keepalive_count       ? o->keepalive_count
	                     : sc.keepalive_count > 0 ? sc.keepalive_count
	                                              : SSH_DEFAULT_KEEPALIVE_COUNT;
	c->window = o->window;
	if (o->ciphers && !(c->ciphers = strdup(o->ciphers)))
		goto oom;
done:
	free(user);
	free(path);
	fsd_ssh_config_release(&sc);
	return &c->base;
oom:
	snprintf(err, errlen, "out of memory");
fail:
	free(user);
	free(path);
	fsd_ssh_config_release(&sc);
	sc_free(c ? &c->base : NULL);
	return NULL;
}

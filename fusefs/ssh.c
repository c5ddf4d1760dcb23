/*
 * ssh.c: the SSH options, the remote command line, and the two ways of reaching a
 * remote flechefs-server: an exec channel of a libssh2 session (one TCP connection,
 * one session, one channel per mount) or the system ssh client (-o ssh_command, run
 * by fsd_transport_spawn).
 *
 * The libssh2 transport. A libssh2 session is not thread-safe, so after connect()
 * exactly one thread, the I/O thread, calls libssh2 (non-blocking, poll on the
 * socket). It moves bytes between the channel and two bounded byte rings shared with
 * the callers:
 *
 *   channel stdout --I/O thread--> rx ring --read()--> conn's reader thread
 *   write() callers --> tx ring --I/O thread--> channel stdin
 *   channel stderr --I/O thread--> the log, the last lines kept for describe_exit
 *
 * Invariants:
 *  1. Only the I/O thread touches the session and channel once it has started;
 *     before it starts (between connect and the first read/write/shutdown) only the
 *     connecting thread does. The thread starts lazily, so a fork in between
 *     (fuse_daemonize) keeps a working transport in the child.
 *  2. rx.len and tx.len change under mu only. The I/O thread fills the free part of
 *     rx and drains the used part of tx without holding mu (single producer, single
 *     consumer per ring): the other side only ever grows the region it may touch.
 *  3. state goes RUNNING -> ENDED (stream over: the remote closed stdout and its
 *     exit status is in, or the link failed) and never back; read() returns what is
 *     left in rx, then 0 (clean end) or rx_err. shutdown sets stop, wakes everyone,
 *     and makes every later call fail with -ESHUTDOWN.
 *  4. The receive window: libssh2 tops the window up to the size it was opened with;
 *     the I/O thread grows its own target from what the link shows (round-trip time
 *     measured on the "none" authentication and channel-open exchanges, which also
 *     sizes the first window, then the rate delivered per 100 ms): while the
 *     delivered rate times the RTT is a tenth of the window or more, the window is
 *     what limits, and it doubles, up to 32 MiB (never while rx filled up: then the
 *     reader limits). We send the window adjusts ourselves, before every channel
 *     read, so that libssh2's own top-up never starts (adjust_window says why).
 *     libssh2 1.10 reads the socket dry into its packet list before it copies out
 *     one buffer, which on a fast link piles up the whole window (what makes big
 *     windows slow on loopback): the socket read callback hands libssh2 no more
 *     bytes per channel read than that read takes out (64 KiB), and 32 KiB per
 *     other call, then says EAGAIN.
 *  5. Keepalives: any byte from the server counts as life; after an interval of
 *     silence a ping goes out (an "env" channel request, which sshd answers);
 *     count + 1 intervals of silence end the stream with -ETIMEDOUT.
 *  6. A packet libssh2 could send only in part belongs to the call that started it
 *     (send_pending): until that call finishes it, the I/O thread sends and reads
 *     nothing else (packet_half_sent says why).
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <libssh2.h>
#include <openssl/evp.h>

#include "knownhosts.h"
#include "log.h"
#include "ssh.h"
#include "sshconfig.h"

#define SSH_RX_RING                 (4u << 20)
#define SSH_TX_RING                 (4u << 20)
#define SSH_WINDOW_MIN              (2u << 20)
#define SSH_WINDOW_MAX              (32u << 20)
#define SSH_SIDE_BUDGET             (32u << 10)
#define SSH_READ_CHUNK              (64u << 10)
#define SSH_STDERR_KEEP             2048
#define SSH_DEFAULT_TIMEOUT         30
#define SSH_DEFAULT_KEEPALIVE       10
#define SSH_DEFAULT_KEEPALIVE_COUNT 3
#define SSH_EXIT_WAIT_MS            3000

/* ---------------------------------------------------------------- logging */

static void (*ssh_log_fn)(const char *line);

void fsd_ssh_set_log(void (*log)(const char *line))
{
	ssh_log_fn = log;
}

static void ssh_log_line(const char *line)
{
	if (ssh_log_fn)
		ssh_log_fn(line);
	else
		fsd_log(FSD_LOG_INFO, "%s", line);
}

__attribute__((format(printf, 1, 2))) static void ssh_logf(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	ssh_log_line(buf);
}

/* ---------------------------------------------------------------- options */

void fsd_ssh_options_init(struct fsd_ssh_options *o)
{
	memset(o, 0, sizeof(*o));
}

static void free_strv(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void fsd_ssh_options_release(struct fsd_ssh_options *o)
{
	free(o->user);
	free_strv(o->identity_files, o->n_identity_files);
	free(o->known_hosts_file);
	free(o->server);
	free(o->cache);
	free_strv(o->setup, o->n_setup);
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

static int push_str(char ***v, size_t *n, const char *s)
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

static int parse_size(const char *v, size_t *out)
{
	char *end = NULL;
	errno = 0;
	unsigned long long x = strtoull(v, &end, 10);
	if (errno || end == v || v[0] == '-')
		return -1;
	unsigned long long mul = 1;
	if (*end == 'k' || *end == 'K')
		mul = 1024, end++;
	else if (*end == 'm' || *end == 'M')
		mul = 1024 * 1024, end++;
	if (*end || x > (1ull << 30) / mul)
		return -1;
	*out = (size_t)(x * mul);
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
		rc = push_str(&o->identity_files, &o->n_identity_files, value);
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
			rc = push_str(&o->setup, &o->n_setup, value);
	} else if (!strcmp(key, "workdir")) {
		rc = set_str(&o->workdir, value);
	} else if (!strcmp(key, "ssh_command")) {
		rc = set_str(&o->ssh_command, value);
	} else if (!strcmp(key, "ssh_window")) {
		size_t w = 0;
		if (parse_size(value, &w) || (w && (w < 65536 || w > (256u << 20))))
			goto bad;
		o->window = w;
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

static char *quote(const char *s)
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

/* ---------------------------------------------------------------- time */

static int64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---------------------------------------------------------------- connector */

struct ssh_connector {
	struct fsd_connector base;
	char *source_host; /* as written in the source (maybe an alias) */
	char *host;        /* where to connect (HostName) */
	char *user;
	int port;
	char *remote_cmd;
	char *spawn_cmd;       /* non-NULL: run through sh -c (ssh_command) */
	char **identity_files; /* expanded, in order */
	size_t n_identity_files;
	size_t n_given_identity_files; /* the first ones, from -o IdentityFile */
	char **known_read;
	size_t n_known_read;
	char *known_write;
	enum fsd_ssh_strict strict;
	int connect_timeout;
	int keepalive_interval; /* -1: off */
	int keepalive_count;
	size_t window; /* 0: adaptive */
	char *ciphers;
	int reconnect_ok; /* the last authentication needed no person */
};

/* ---------------------------------------------------------------- transport */

enum ssh_state { SSH_RUNNING, SSH_ENDED };

/* The I/O thread's libssh2 call whose packet met EAGAIN half-sent (packet_half_sent). */
enum ssh_send { SSH_SEND_NONE, SSH_SEND_WRITE, SSH_SEND_ADJUST, SSH_SEND_PING, SSH_SEND_READ };

struct ssh_ring {
	unsigned char *buf;
	size_t cap, head, len;
};

struct ssh_transport {
	struct fsd_transport base;
	struct ssh_connector *c; /* borrowed during connect only */
	int keepalive_interval;  /* seconds; -1: off (copied from the connector) */
	int keepalive_count;
	char peer[300]; /* user@host:port, for messages */
	int sock;
	LIBSSH2_SESSION *session;
	LIBSSH2_CHANNEL *channel;
	int interactive; /* prompts allowed (during connect) */
	int prompted;    /* answers a person typed (passphrase, password, kbd-interactive) */

	pthread_mutex_t mu;
	pthread_cond_t cond; /* rx data, tx space, state changes */
	int wake[2];         /* pipe: wakes the I/O thread */
	int started, stop;
	pthread_t thread;
	enum ssh_state state;
	int rx_err; /* 0: clean end, else -errno */
	struct ssh_ring rx, tx;
	int rx_waiting_space; /* the I/O thread waits for rx room */
	int readers_waiting;  /* callers asleep in read() */
	uint64_t tx_seq;      /* counts write() calls: the I/O thread sees new data */
	int io_polling;       /* the I/O thread sleeps in poll: wake it through the pipe */
	int writers_waiting;  /* callers asleep in write() */

	/* I/O thread only */
	int64_t last_recv_us;
	uint64_t recv_bytes;
	size_t recv_budget; /* bytes the recv callback may still hand to libssh2 */
	int budget_on;      /* the I/O thread runs: recv_budget applies */
	size_t window_target;
	int window_fixed;
	double rtt_s;
	unsigned long adjust_amount; /* a window adjust that met EAGAIN, to finish */
	enum ssh_send send_pending;  /* whose packet is half-sent (packet_half_sent) */
	int ping_inflight;           /* a ping (step 4 of io_thread) waits for its answer */
	size_t read_max;             /* bytes per channel read (adjust_window says why) */
	int64_t ping_sent_us;
	int rx_was_full; /* rx filled up in this rate interval: the reader limits */
	int64_t rate_t0;
	uint64_t rate_b0;

	/* the remote's standard error: a partial line and the last lines */
	char err_line[512];
	size_t err_line_len;
	char err_tail[SSH_STDERR_KEEP];
	size_t err_tail_len;
	int exit_status; /* -1: unknown */
	char exit_signal[32];
	char end_reason[700]; /* why the link ended, when it did not end cleanly */
};

static struct ssh_transport *ssh_of(struct fsd_transport *t)
{
	return (struct ssh_transport *)t;
}

static void wake_io(struct ssh_transport *t)
{
	char b = 1;
	if (t->wake[1] >= 0)
		(void)!write(t->wake[1], &b, 1);
}

/* Keeps the last whole lines of the remote's stderr, oldest dropped first. */
static void keep_err_line(struct ssh_transport *t, const char *line)
{
	size_t l = strlen(line);
	if (l + 1 > sizeof(t->err_tail) / 2)
		l = sizeof(t->err_tail) / 2 - 1;
	while (t->err_tail_len + l + 1 > sizeof(t->err_tail)) {
		char *nl = memchr(t->err_tail, '\n', t->err_tail_len);
		size_t drop = nl ? (size_t)(nl - t->err_tail) + 1 : t->err_tail_len;
		memmove(t->err_tail, t->err_tail + drop, t->err_tail_len - drop);
		t->err_tail_len -= drop;
	}
	memcpy(t->err_tail + t->err_tail_len, line, l);
	t->err_tail_len += l;
	t->err_tail[t->err_tail_len++] = '\n';
}

static void stderr_bytes(struct ssh_transport *t, const char *p, size_t n, int flush)
{
	for (size_t i = 0; i <= n; i++) {
		int end = i == n;
		if (end && !flush)
			break;
		if (end || p[i] == '\n' || t->err_line_len == sizeof(t->err_line) - 1) {
			if (end && t->err_line_len == 0)
				break;
			t->err_line[t->err_line_len] = '\0';
			if (t->err_line_len && t->err_line[t->err_line_len - 1] == '\r')
				t->err_line[t->err_line_len - 1] = '\0';
			fsd_log_relay(FSD_LOG_WARN, t->peer, t->err_line);
			pthread_mutex_lock(&t->mu);
			keep_err_line(t, t->err_line);
			pthread_mutex_unlock(&t->mu);
			t->err_line_len = 0;
			if (end || p[i] == '\n')
				continue;
		}
		t->err_line[t->err_line_len++] = p[i];
	}
}

static LIBSSH2_RECV_FUNC(ssh_recv_cb)
{
	struct ssh_transport *t = *abstract;
	if (t->budget_on && t->recv_budget == 0)
		return -EAGAIN;
	size_t want = length;
	if (t->budget_on && want > t->recv_budget)
		want = t->recv_budget;
	ssize_t r = recv(socket, buffer, want, flags);
	if (r < 0)
		return -errno;
	if (r > 0) {
		/*
		 * sshd sets TCP_NODELAY only for sessions with a terminal, so its small
		 * answers wait (Nagle) for our ACK of the previous one, which delayed ACK
		 * holds back up to 40 ms: acknowledge at once instead. Linux clears the
		 * flag by itself, hence after every read.
		 */
		int one = 1;
		setsockopt(socket, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
		t->last_recv_us = now_us();
		t->recv_bytes += (uint64_t)r;
		if (t->budget_on)
			t->recv_budget -= (size_t)r;
	}
	return r;
}

static const char *ssh_errmsg(LIBSSH2_SESSION *s)
{
	char *msg = NULL;
	libssh2_session_last_error(s, &msg, NULL, 0);
	return msg && *msg ? msg : "unknown error";
}

/* Ends the stream (I/O thread): err 0 is a clean end. */
static void set_ended(struct ssh_transport *t, int err, const char *why)
{
	pthread_mutex_lock(&t->mu);
	if (t->state != SSH_ENDED) {
		t->state = SSH_ENDED;
		t->rx_err = err;
		if (why && !t->end_reason[0])
			snprintf(t->end_reason, sizeof(t->end_reason), "%s", why);
	}
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->mu);
}

static int socket_error(struct ssh_transport *t, int rc, const char *what)
{
	char why[700];
	snprintf(why, sizeof(why), "connection to %s lost (%s): %s", t->peer, what,
	         ssh_errmsg(t->session));
	ssh_log_line(why);
	set_ended(t, rc == LIBSSH2_ERROR_TIMEOUT ? -ETIMEDOUT : -ECONNRESET, why);
	return -1;
}

/* After the remote closed stdout: wait (bounded) for the exit status. */
static void finish_exit(struct ssh_transport *t)
{
	int64_t deadline = now_us() + SSH_EXIT_WAIT_MS * 1000LL;
	char buf[4096];
	int closed = 0;
	for (;;) {
		ssize_t n;
		t->recv_budget = SSH_SIDE_BUDGET;
		while ((n = libssh2_channel_read_stderr(t->channel, buf, sizeof(buf))) > 0)
			stderr_bytes(t, buf, (size_t)n, 0);
		t->recv_budget = SSH_SIDE_BUDGET;
		int rc = libssh2_channel_wait_closed(t->channel);
		if (rc == 0) {
			closed = 1;
			break;
		}
		if (rc != LIBSSH2_ERROR_EAGAIN)
			break;
		int64_t left = deadline - now_us();
		if (left <= 0 || t->stop)
			break;
		/* POLLIN only: nothing here would finish a half-sent packet */
		struct pollfd pfd = {t->sock, POLLIN, 0};
		poll(&pfd, 1, (int)(left / 1000) + 1);
	}
	stderr_bytes(t, "", 0, 1);
	char *sig = NULL;
	size_t siglen = 0;
	libssh2_channel_get_exit_signal(t->channel, &sig, &siglen, NULL, NULL, NULL, NULL);
	pthread_mutex_lock(&t->mu);
	if (sig)
		snprintf(t->exit_signal, sizeof(t->exit_signal), "%.*s", (int)siglen, sig);
	else if (closed)
		t->exit_status = libssh2_channel_get_exit_status(t->channel);
	pthread_mutex_unlock(&t->mu);
	free(sig);
	set_ended(t, 0, closed ? NULL : "the server closed its output");
}

/*
 * libssh2 1.10 encrypts a packet before it sends it: when the socket takes only part
 * of it (EAGAIN with the outbound direction blocked), the rest stays in the session
 * and libssh2 refuses every other packet (LIBSSH2_ERROR_BAD_USE, which would end
 * the link) until the same call, with the same arguments, sends it whole. So the
 * I/O thread records which of its calls owns a half-sent packet and, while one does,
 * retries that call first and makes no other that may send: no other write, window
 * adjust or ping, and no channel read either (reading may answer the server,
 * a key re-exchange for one). Called after an EAGAIN from a call that sends.
 */
static int packet_half_sent(struct ssh_transport *t)
{
	return (libssh2_session_block_directions(t->session) & LIBSSH2_SESSION_BLOCK_OUTBOUND) != 0;
}

/*
 * The window logic of invariant 4, called before every libssh2 call that reads
 * channel data (never while another call's packet is half-sent). libssh2 1.10's
 * channel read tops the window up by itself when it falls below 3/4 of the size the
 * channel was opened with plus the read's buffer length, sharing one non-blocking
 * adjust state with receive_window_adjust2: two adjusts interleaved would leave
 * libssh2's idea of the window apart from the server's (and libssh2 truncates data
 * beyond it). So we adjust first and earlier: below 7/8 of our target, which is at
 * least the opening size W, with reads of at most W/8 (read_max, 64 KiB at most),
 * so that 7/8 W >= 3/4 W + the read's length and libssh2's own top-up never starts;
 * and an adjust that met EAGAIN is retried with the same amount before anything
 * else is sent or read (send_pending). Returns 0, 1 (the adjust is half-sent) or -1
 * (ended).
 */
static int adjust_window(struct ssh_transport *t)
{
	int64_t now = now_us();
	if (!t->adjust_amount && !t->window_fixed && now - t->rate_t0 >= 100000) {
		double dt = (double)(now - t->rate_t0) / 1e6;
		double rate = (double)(t->recv_bytes - t->rate_b0) / dt;
		if (!t->rx_was_full && rate * t->rtt_s * 10 >= (double)t->window_target &&
		    t->window_target < SSH_WINDOW_MAX) {
			t->window_target *= 2;
			if (t->window_target > SSH_WINDOW_MAX)
				t->window_target = SSH_WINDOW_MAX;
			ssh_logf("%s: receive window %zu KiB (rtt %.1f ms, %.1f MB/s)", t->peer,
			         t->window_target >> 10, t->rtt_s * 1e3, rate / 1e6);
		}
		t->rate_t0 = now;
		t->rate_b0 = t->recv_bytes;
		t->rx_was_full = 0;
	}
	if (!t->adjust_amount) {
		unsigned long avail = libssh2_channel_window_read_ex(t->channel, NULL, NULL);
		if (avail + t->window_target / 8 >= t->window_target)
			return 0;
		t->adjust_amount = (unsigned long)t->window_target - avail;
	}
	unsigned int w = 0;
	t->recv_budget = SSH_SIDE_BUDGET;
	int rc = libssh2_channel_receive_window_adjust2(t->channel, t->adjust_amount, 0, &w);
	if (rc == LIBSSH2_ERROR_EAGAIN) {
		t->send_pending = SSH_SEND_ADJUST;
		return 1;
	}
	t->send_pending = SSH_SEND_NONE;
	t->adjust_amount = 0;
	if (rc < 0)
		return socket_error(t, rc, "window adjust");
	return 0;
}

/* Makes n more bytes of rx visible to the reader (I/O thread, invariant 2). */
static void publish_rx(struct ssh_transport *t, size_t n)
{
	if (!n)
		return;
	pthread_mutex_lock(&t->mu);
	t->rx.len += n;
	if (t->readers_waiting)
		pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->mu);
}

/* Nonzero when the socket has room for a small packet (a ping). */
static int socket_writable(int sock)
{
	struct pollfd p = {sock, POLLOUT, 0};
	return poll(&p, 1, 0) == 1 && (p.revents & POLLOUT);
}

static void *io_thread(void *arg)
{
	struct ssh_transport *t = arg;

	t->last_recv_us = now_us();
	t->rate_t0 = now_us();
	t->rate_b0 = t->recv_bytes;
	t->budget_on = 1;
	for (;;) {
		pthread_mutex_lock(&t->mu);
		int stop = t->stop;
		size_t tx_len = t->tx.len, tx_head = t->tx.head;
		size_t rx_free = t->rx.cap - t->rx.len;
		size_t rx_tail = (t->rx.head + t->rx.len) % t->rx.cap;
		uint64_t seq = t->tx_seq;
		t->rx_waiting_space = rx_free == 0;
		pthread_mutex_unlock(&t->mu);
		if (stop)
			break;

		/* 0. a window adjust that met EAGAIN goes out before anything else */
		if (t->send_pending == SSH_SEND_ADJUST && adjust_window(t) < 0)
			goto out;

		/* 1. requests to the server (first, or only, a half-sent write) */
		while (tx_len > 0 &&
		       (t->send_pending == SSH_SEND_NONE || t->send_pending == SSH_SEND_WRITE)) {
			size_t chunk = t->tx.cap - tx_head;
			if (chunk > tx_len)
				chunk = tx_len;
			t->recv_budget = SSH_SIDE_BUDGET;
			ssize_t n = libssh2_channel_write(t->channel,
			                                  (const char *)t->tx.buf + tx_head, chunk);
			if (n == LIBSSH2_ERROR_EAGAIN) {
				/* else the server's window is full: nothing is half-sent */
				t->send_pending =
				    packet_half_sent(t) ? SSH_SEND_WRITE : SSH_SEND_NONE;
				break;
			}
			t->send_pending = SSH_SEND_NONE;
			if (n < 0) {
				socket_error(t, (int)n, "write");
				goto out;
			}
			pthread_mutex_lock(&t->mu);
			t->tx.head = (t->tx.head + (size_t)n) % t->tx.cap;
			t->tx.len -= (size_t)n;
			tx_len = t->tx.len;
			tx_head = t->tx.head;
			if (t->writers_waiting)
				pthread_cond_broadcast(&t->cond);
			pthread_mutex_unlock(&t->mu);
		}

		/* 2. answers from the server into rx, the window adjusted before each read */
		if (rx_free == 0)
			t->rx_was_full = 1;
		/*
		 * Bytes land in rx's free region unpublished and are published (rx.len,
		 * a wake-up only when the reader sleeps) per 256 KiB and when libssh2
		 * has no more: fewer locks and context switches than one per packet.
		 */
		int eof = 0;
		size_t unpublished = 0;
		while (rx_free > unpublished &&
		       (t->send_pending == SSH_SEND_NONE || t->send_pending == SSH_SEND_READ)) {
			int a = t->send_pending == SSH_SEND_NONE ? adjust_window(t) : 0;
			if (a < 0) {
				publish_rx(t, unpublished);
				goto out;
			}
			if (a)
				break;
			size_t at = (rx_tail + unpublished) % t->rx.cap;
			size_t chunk = t->rx.cap - at;
			if (chunk > rx_free - unpublished)
				chunk = rx_free - unpublished;
			if (chunk > t->read_max)
				chunk = t->read_max;
			t->recv_budget = chunk; /* in = out: libssh2's queue stays short */
			ssize_t n = libssh2_channel_read(t->channel, (char *)t->rx.buf + at, chunk);
			/* a reply of libssh2's own (a key re-exchange, an answer to the
			 * server's request) that met EAGAIN: the next read finishes it */
			t->send_pending = packet_half_sent(t) ? SSH_SEND_READ : SSH_SEND_NONE;
			if (n == LIBSSH2_ERROR_EAGAIN)
				break;
			if (n < 0) {
				publish_rx(t, unpublished);
				socket_error(t, (int)n, "read");
				goto out;
			}
			if (n == 0) {
				eof = libssh2_channel_eof(t->channel);
				break;
			}
			unpublished += (size_t)n;
			if (unpublished >= 4 * SSH_READ_CHUNK) {
				publish_rx(t, unpublished);
				unpublished = 0;
				pthread_mutex_lock(&t->mu);
				rx_free = t->rx.cap - t->rx.len;
				rx_tail = (t->rx.head + t->rx.len) % t->rx.cap;
				pthread_mutex_unlock(&t->mu);
			}
		}
		publish_rx(t, unpublished);

		/* 3. the server's standard error (a channel read too: window first) */
		if (t->send_pending == SSH_SEND_NONE && adjust_window(t) < 0)
			goto out;
		if (t->send_pending == SSH_SEND_NONE) {
			char buf[4096];
			ssize_t n;
			t->recv_budget = SSH_SIDE_BUDGET;
			while ((n = libssh2_channel_read_stderr(t->channel, buf, sizeof(buf))) > 0)
				stderr_bytes(t, buf, (size_t)n, 0);
			t->send_pending = packet_half_sent(t) ? SSH_SEND_READ : SSH_SEND_NONE;
			if (n < 0 && n != LIBSSH2_ERROR_EAGAIN) {
				socket_error(t, (int)n, "read");
				goto out;
			}
		}
		/* libssh2_channel_eof is true only once no stdout data is left queued */
		if (eof || libssh2_channel_eof(t->channel)) {
			finish_exit(t);
			goto out;
		}

		/*
		 * 4. a silent link. After an interval without a byte from the server, a
		 * ping: an "env" request on the channel, which sshd refuses once the
		 * command runs, and whose answer libssh2 hands back to the call that
		 * asked. (libssh2's keepalive@ global requests would do, but it keeps
		 * their answers in its packet list for the session's life, where every
		 * channel read walks past them: 8,640 more a day at the default interval.)
		 * Started only when nothing is half-sent and the socket has room, so
		 * that it goes out whole. count + 1 intervals of silence end the link.
		 */
		int64_t now = now_us();
		int timeout_ms = 1000;
		if (t->keepalive_interval > 0) {
			int64_t interval = (int64_t)t->keepalive_interval * 1000000;
			if (!t->ping_inflight && t->send_pending == SSH_SEND_NONE &&
			    now - t->last_recv_us >= interval &&
			    now - t->ping_sent_us >= interval && socket_writable(t->sock)) {
				t->ping_inflight = 1;
				t->ping_sent_us = now;
			}
			if (t->ping_inflight && (t->send_pending == SSH_SEND_NONE ||
			                         t->send_pending == SSH_SEND_PING)) {
				t->recv_budget = SSH_SIDE_BUDGET;
				int rc = libssh2_channel_setenv_ex(t->channel, "FLECHEFS_PING", 13,
				                                   "1", 1);
				if (rc == LIBSSH2_ERROR_EAGAIN) {
					t->send_pending =
					    packet_half_sent(t) ? SSH_SEND_PING : SSH_SEND_NONE;
				} else {
					t->send_pending = SSH_SEND_NONE;
					t->ping_inflight = 0;
					if (rc && rc != LIBSSH2_ERROR_CHANNEL_REQUEST_DENIED) {
						socket_error(t, rc, "keepalive");
						goto out;
					}
				}
			}
			int64_t silent = interval * (t->keepalive_count + 1);
			if (now - t->last_recv_us > silent) {
				char why[700];
				snprintf(why, sizeof(why),
				         "connection to %s lost: no answer to keepalives for %d s",
				         t->peer, t->keepalive_interval * (t->keepalive_count + 1));
				ssh_log_line(why);
				set_ended(t, -ETIMEDOUT, why);
				goto out;
			}
		}

		/* 5. wait for the socket or a caller */
		struct pollfd pfd[2] = {{t->sock, 0, 0}, {t->wake[0], POLLIN, 0}};
		int dirs = libssh2_session_block_directions(t->session);
		/*
		 * Channel data that libssh2 already took off the socket (a write, the
		 * stderr read or a ping reads whole packets into its queue) leaves
		 * the socket quiet: polling it would sleep the whole timeout (1 s) while
		 * an answer waits in the queue. Seen once in a listing; so look first.
		 * (Not libssh2_poll_channel_read: a 1-byte global request reply in the
		 * queue, as keepalive@ requests get, makes it return an error, i.e.
		 * "true".)
		 * Only when nothing is half-sent, so that this never spins.
		 */
		unsigned long queued = 0;
		if (t->send_pending == SSH_SEND_NONE)
			libssh2_channel_window_read_ex(t->channel, &queued, NULL);
		pthread_mutex_lock(&t->mu);
		int rx_room = t->rx.len < t->rx.cap;
		/*
		 * rx filled up in step 2 (it is never full at the top of the loop but
		 * when the reader left it so): the reader must wake us when it takes
		 * bytes out, or we would sleep the whole timeout with rx drained.
		 */
		t->rx_waiting_space = !rx_room;
		int new_tx = t->tx_seq != seq && (t->send_pending == SSH_SEND_NONE ||
		                                  t->send_pending == SSH_SEND_WRITE);
		if (new_tx || t->stop || (queued && rx_room)) {
			pthread_mutex_unlock(&t->mu);
			continue; /* a request came in, or data waits in libssh2: no sleep */
		}
		t->io_polling = 1;
		pthread_mutex_unlock(&t->mu);
		if (t->send_pending != SSH_SEND_NONE) {
			/* a half-sent packet (or a key exchange under it): only its way */
			pfd[0].events = (dirs & LIBSSH2_SESSION_BLOCK_INBOUND ? POLLIN : 0) |
			                (dirs & LIBSSH2_SESSION_BLOCK_OUTBOUND ? POLLOUT : 0);
		} else {
			/*
			 * rx full: leave the socket alone (the server runs out of window,
			 * TCP pushes back), unless a write waits for the server's window
			 * adjust. A full rx is the reader's doing, not a silent link.
			 */
			if (rx_room || (tx_len > 0 && (dirs & LIBSSH2_SESSION_BLOCK_INBOUND)))
				pfd[0].events |= POLLIN;
			if (dirs & LIBSSH2_SESSION_BLOCK_OUTBOUND)
				pfd[0].events |= POLLOUT;
		}
		if (!rx_room)
			t->last_recv_us = now_us();
		int pr = poll(pfd, 2, timeout_ms);
		pthread_mutex_lock(&t->mu);
		t->io_polling = 0;
		pthread_mutex_unlock(&t->mu);
		if (pr > 0 && (pfd[1].revents & POLLIN)) {
			char drain[64];
			while (read(t->wake[0], drain, sizeof(drain)) > 0)
				;
		}
	}
out:
	t->budget_on = 0;
	return NULL;
}

/* Starts the I/O thread on first use (invariant 1); called with mu held. */
static int ensure_started(struct ssh_transport *t)
{
	if (t->started)
		return 0;
	if (t->stop)
		return -ESHUTDOWN;
	libssh2_session_set_blocking(t->session, 0);
	t->started = 1;
	if (pthread_create(&t->thread, NULL, io_thread, t) != 0) {
		t->started = 0;
		t->state = SSH_ENDED;
		t->rx_err = -EAGAIN;
		return -EAGAIN;
	}
	return 0;
}

static ssize_t ssh_read(struct fsd_transport *base, void *buf, size_t len)
{
	struct ssh_transport *t = ssh_of(base);
	ssize_t rc;
	pthread_mutex_lock(&t->mu);
	rc = ensure_started(t);
	if (rc < 0)
		goto out;
	while (!t->stop && t->rx.len == 0 && t->state == SSH_RUNNING) {
		t->readers_waiting++;
		pthread_cond_wait(&t->cond, &t->mu);
		t->readers_waiting--;
	}
	if (t->stop) {
		rc = -ESHUTDOWN;
		goto out;
	}
	if (t->rx.len == 0) {
		rc = t->rx_err;
		goto out;
	}
	size_t n = 0;
	while (n < len && t->rx.len > 0) {
		size_t chunk = t->rx.cap - t->rx.head;
		if (chunk > t->rx.len)
			chunk = t->rx.len;
		if (chunk > len - n)
			chunk = len - n;
		memcpy((char *)buf + n, t->rx.buf + t->rx.head, chunk);
		t->rx.head = (t->rx.head + chunk) % t->rx.cap;
		t->rx.len -= chunk;
		n += chunk;
	}
	if (t->rx_waiting_space) {
		t->rx_waiting_space = 0;
		wake_io(t);
	}
	rc = (ssize_t)n;
out:
	pthread_mutex_unlock(&t->mu);
	return rc;
}

static int ssh_write(struct fsd_transport *base, const void *buf, size_t len)
{
	struct ssh_transport *t = ssh_of(base);
	const char *p = buf;
	int rc;
	pthread_mutex_lock(&t->mu);
	rc = ensure_started(t);
	while (rc == 0 && len > 0) {
		while (!t->stop && t->state == SSH_RUNNING && t->tx.len == t->tx.cap) {
			t->writers_waiting++;
			pthread_cond_wait(&t->cond, &t->mu);
			t->writers_waiting--;
		}
		if (t->stop) {
			rc = -ESHUTDOWN;
			break;
		}
		if (t->state != SSH_RUNNING) {
			rc = t->rx_err ? t->rx_err : -EPIPE;
			break;
		}
		size_t tail = (t->tx.head + t->tx.len) % t->tx.cap;
		size_t chunk = t->tx.cap - t->tx.len;
		if (chunk > t->tx.cap - tail)
			chunk = t->tx.cap - tail;
		if (chunk > len)
			chunk = len;
		memcpy(t->tx.buf + tail, p, chunk);
		t->tx.len += chunk;
		p += chunk;
		len -= chunk;
		t->tx_seq++;
		if (t->io_polling)
			wake_io(t);
	}
	pthread_mutex_unlock(&t->mu);
	return rc;
}

static void ssh_shutdown(struct fsd_transport *base)
{
	struct ssh_transport *t = ssh_of(base);
	pthread_mutex_lock(&t->mu);
	t->stop = 1;
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->mu);
	wake_io(t);
}

static size_t ssh_describe_exit(struct fsd_transport *base, char *buf, size_t len)
{
	struct ssh_transport *t = ssh_of(base);
	if (!len)
		return 0;
	pthread_mutex_lock(&t->mu);
	/* the last lines, joined with "; " */
	char tail[2 * SSH_STDERR_KEEP + 1];
	size_t tl = 0;
	for (size_t i = 0; i < t->err_tail_len; i++) {
		if (t->err_tail[i] != '\n') {
			tail[tl++] = t->err_tail[i];
		} else if (i + 1 < t->err_tail_len) {
			tail[tl++] = ';';
			tail[tl++] = ' ';
		}
	}
	tail[tl] = '\0';
	int n;
	if (t->exit_signal[0])
		n = snprintf(buf, len, "killed by signal %s%s%s", t->exit_signal, tl ? ": " : "",
		             tail);
	else if (t->exit_status == 127)
		/* the shell's "command not found" */
		n = snprintf(buf, len,
		             "exited with status 127, no such command there: install "
		             "flechefs-server on that host or name it with -o server=PATH%s%s",
		             tl ? ": " : "", tail);
	else if (t->exit_status >= 0)
		n = snprintf(buf, len, "exited with status %d%s%s", t->exit_status, tl ? ": " : "",
		             tail);
	else if (t->end_reason[0])
		n = snprintf(buf, len, "%s%s%s", t->end_reason, tl ? ": " : "", tail);
	else
		n = tl ? snprintf(buf, len, "%s", tail) : 0;
	pthread_mutex_unlock(&t->mu);
	if (n < 0)
		return 0;
	return (size_t)n < len ? (size_t)n : len - 1;
}

static void ssh_transport_destroy(struct ssh_transport *t)
{
	if (t->channel) {
		libssh2_session_set_blocking(t->session, 1);
		libssh2_session_set_timeout(t->session, 1000);
		libssh2_channel_free(t->channel);
	}
	if (t->session) {
		libssh2_session_set_blocking(t->session, 1);
		libssh2_session_set_timeout(t->session, 1000);
		if (t->state == SSH_RUNNING || !t->rx_err)
			libssh2_session_disconnect(t->session, "flechefs unmounted");
		libssh2_session_free(t->session);
	}
	if (t->sock >= 0)
		close(t->sock);
	for (int i = 0; i < 2; i++)
		if (t->wake[i] >= 0)
			close(t->wake[i]);
	free(t->rx.buf);
	free(t->tx.buf);
	pthread_cond_destroy(&t->cond);
	pthread_mutex_destroy(&t->mu);
	free(t);
}

static void ssh_free(struct fsd_transport *base)
{
	struct ssh_transport *t = ssh_of(base);
	if (!t)
		return;
	ssh_shutdown(base);
	if (t->started)
		pthread_join(t->thread, NULL);
	ssh_transport_destroy(t);
}

static const struct fsd_transport_ops ssh_ops = {
    .read = ssh_read,
    .write = ssh_write,
    .shutdown = ssh_shutdown,
    .describe_exit = ssh_describe_exit,
    .free = ssh_free,
};

/* ---------------------------------------------------------------- prompts */

/*
 * The signals tty_prompt catches: those that end the program (Ctrl-C, a hangup,
 * kill, Ctrl-\) and those that stop the job (Ctrl-Z, a background job using the
 * terminal). prompt_caught[i] is set when prompt_sigs[i] arrived.
 */
static const int prompt_sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP, SIGTTIN, SIGTTOU};
enum { PROMPT_NSIGS = sizeof(prompt_sigs) / sizeof(prompt_sigs[0]) };
static volatile sig_atomic_t prompt_caught[PROMPT_NSIGS];

static void prompt_on_signal(int sig)
{
	for (size_t i = 0; i < PROMPT_NSIGS; i++)
		if (prompt_sigs[i] == sig)
			prompt_caught[i] = 1;
}

static int prompt_caught_any(void)
{
	for (size_t i = 0; i < PROMPT_NSIGS; i++)
		if (prompt_caught[i])
			return 1;
	return 0;
}

/*
 * Reads one line from the terminal into buf (truncated to len - 1 bytes); returns 0,
 * or -1 at end of input, on an error, or when one of the signals in `caught` has
 * arrived (prompt_caught says which). No signal is missed between the check and the
 * wait: they are blocked for the check, and ppoll() unblocks them atomically while
 * it waits. read() follows POLLIN only (in ICANON mode: a whole line is there), so it
 * does not block either; it runs with the signals unblocked, for a background job's
 * SIGTTIN to be caught rather than turned into EIO.
 */
static int prompt_read(int fd, const sigset_t *caught, char *buf, size_t len)
{
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	size_t n = 0;
	int rc = -1;
	for (;;) {
		sigset_t orig;
		pthread_sigmask(SIG_BLOCK, caught, &orig);
		if (prompt_caught_any()) {
			pthread_sigmask(SIG_SETMASK, &orig, NULL);
			break;
		}
		int ready = ppoll(&pfd, 1, NULL, &orig);
		pthread_sigmask(SIG_SETMASK, &orig, NULL);
		if (ready < 0 && errno == EINTR)
			continue;
		if (ready < 0 || !(pfd.revents & POLLIN))
			break; /* POLLHUP, POLLERR: the terminal is gone */
		char ch;
		ssize_t r = read(fd, &ch, 1);
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (r <= 0)
			break;
		if (ch == '\n' || ch == '\r') {
			rc = 0;
			break;
		}
		if (n + 1 < len)
			buf[n++] = ch;
	}
	buf[n] = '\0';
	return rc;
}

/*
 * Asks on the terminal; returns 0 with the answer in buf, or -1 (no terminal, end
 * of input). Only called during connect, before the daemon has other threads.
 * Signals, as OpenBSD's readpassphrase(3) treats them:
 *  - SIGINT, SIGTERM, SIGHUP, SIGQUIT are caught while the prompt is up; the
 *    terminal's modes and the old handlers are put back, and the signal is raised
 *    again, so it acts as it would have (usually: the program ends) and the shell
 *    never gets back a terminal that does not echo;
 *  - SIGTSTP, SIGTTIN, SIGTTOU (Ctrl-Z; a prompt in a background job) the same way,
 *    so the job stops with the terminal echoing; when it is continued, the prompt
 *    starts over and what was typed before is discarded;
 *  - a signal whose disposition is SIG_IGN (SIGHUP under nohup) gets no handler: it
 *    stays ignored and does not end the prompt.
 */
static int tty_prompt(const char *prompt, int echo, char *buf, size_t len)
{
	struct sigaction sa, saved[PROMPT_NSIGS];
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = prompt_on_signal; /* no SA_RESTART: a wait returns EINTR */
	sigemptyset(&sa.sa_mask);
	int rc, again;
	do {
		int fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
		if (fd < 0)
			return -1;
		sigset_t caught, orig;
		sigemptyset(&caught);
		for (size_t i = 0; i < PROMPT_NSIGS; i++) {
			prompt_caught[i] = 0;
			sigaction(prompt_sigs[i], NULL, &saved[i]);
			if (!(saved[i].sa_flags & SA_SIGINFO) && saved[i].sa_handler == SIG_IGN)
				continue;
			sigaddset(&caught, prompt_sigs[i]);
			sigaction(prompt_sigs[i], &sa, NULL);
		}
		struct termios old, quiet;
		int restore = 0;
		if (!echo && tcgetattr(fd, &old) == 0) {
			quiet = old;
			quiet.c_lflag &= (tcflag_t) ~(ECHO | ECHONL);
			quiet.c_lflag |= ICANON;
			/* in a background job: SIGTTOU, caught, and EINTR here */
			restore = tcsetattr(fd, TCSAFLUSH, &quiet) == 0;
		}
		if (!prompt_caught_any())
			(void)!write(fd, prompt, strlen(prompt));
		rc = prompt_read(fd, &caught, buf, len);
		/* blocked from here on: SIGTTOU cannot keep the modes from going back */
		pthread_sigmask(SIG_BLOCK, &caught, &orig);
		if (restore) {
			tcsetattr(fd, TCSAFLUSH, &old);
			(void)!write(fd, "\n", 1);
		}
		close(fd);
		again = 0;
		for (size_t i = 0; i < PROMPT_NSIGS; i++) {
			if (!sigismember(&caught, prompt_sigs[i]))
				continue;
			sigaction(prompt_sigs[i], &saved[i], NULL);
			if (prompt_caught[i]) {
				raise(prompt_sigs[i]); /* pending until the mask goes back */
				again |= prompt_sigs[i] == SIGTSTP || prompt_sigs[i] == SIGTTIN ||
				         prompt_sigs[i] == SIGTTOU;
			}
		}
		if (rc || again)
			explicit_bzero(buf, len);
		/* what was raised acts here: the program ends, or the job stops until SIGCONT */
		pthread_sigmask(SIG_SETMASK, &orig, NULL);
	} while (again);
	return rc;
}

/* Nonzero when there is a terminal to prompt on (what tty_prompt opens). */
static int have_tty(void)
{
	int fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	close(fd);
	return 1;
}

static LIBSSH2_USERAUTH_KBDINT_RESPONSE_FUNC(kbd_callback)
{
	struct ssh_transport *t = *abstract;
	int fd = open("/dev/tty", O_WRONLY | O_NOCTTY | O_CLOEXEC);
	if (fd >= 0) {
		if (name_len > 0) {
			(void)!write(fd, name, (size_t)name_len);
			(void)!write(fd, "\n", 1);
		}
		if (instruction_len > 0) {
			(void)!write(fd, instruction, (size_t)instruction_len);
			(void)!write(fd, "\n", 1);
		}
		close(fd);
	}
	for (int i = 0; i < num_prompts; i++) {
		char prompt[512], answer[512];
		snprintf(prompt, sizeof(prompt), "%.*s", (int)prompts[i].length,
		         (const char *)prompts[i].text);
		responses[i].text = NULL;
		responses[i].length = 0;
		if (!t->interactive || tty_prompt(prompt, prompts[i].echo, answer, sizeof(answer)))
			continue;
		t->prompted++;
		responses[i].text = strdup(answer);
		responses[i].length = responses[i].text ? (unsigned int)strlen(answer) : 0;
		explicit_bzero(answer, sizeof(answer));
	}
}

/* ---------------------------------------------------------------- authentication */

/* Nonzero when the private key file is protected by a passphrase. */
static int key_is_encrypted(const char *path)
{
	char head[8192];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, head, sizeof(head) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	head[n] = '\0';
	if (strstr(head, "ENCRYPTED"))
		return 1; /* PEM: Proc-Type: 4,ENCRYPTED or BEGIN ENCRYPTED PRIVATE KEY */
	const char *begin = strstr(head, "-----BEGIN OPENSSH PRIVATE KEY-----");
	if (!begin)
		return 0;
	/* openssh-key-v1\0, then string ciphername: base64 of the first lines */
	const char *p = strchr(begin, '\n');
	if (!p)
		return 0;
	char b64[256];
	size_t bl = 0;
	for (p++; *p && bl < 128; p++)
		if (*p != '\n' && *p != '\r')
			b64[bl++] = *p;
	bl -= bl % 4;
	b64[bl] = '\0';
	unsigned char raw[200];
	int rl = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)bl);
	if (rl < 15 + 4 || memcmp(raw, "openssh-key-v1", 15) != 0)
		return 0;
	uint32_t cl =
	    (uint32_t)raw[15] << 24 | (uint32_t)raw[16] << 16 | (uint32_t)raw[17] << 8 | raw[18];
	if (cl > (uint32_t)rl - 19)
		return 0;
	return !(cl == 4 && memcmp(raw + 19, "none", 4) == 0);
}

static void tried_add(char *tried, size_t len, const char *what)
{
	size_t l = strlen(tried);
	snprintf(tried + l, len - l, "%s%s", l ? ", " : "", what);
}

static int authenticate(struct ssh_transport *t, struct ssh_connector *c, char *err, size_t errlen)
{
	LIBSSH2_SESSION *s = t->session;
	const char *user = c->user;
	unsigned ulen = (unsigned)strlen(user);
	char tried[1024] = "";
	char unreadable[1024] = ""; /* identity files given but not readable */
	int no_person = 0; /* succeeded without a person (agent or plain key) */

	/* one round trip, the "none" attempt (invariant 4): an RTT estimate */
	int64_t t0 = now_us();
	char *list = libssh2_userauth_list(s, user, ulen);
	t->rtt_s = (double)(now_us() - t0) / 1e6;
	if (!list) {
		if (libssh2_userauth_authenticated(s))
			goto ok;
		snprintf(err, errlen, "cannot authenticate to %s: %s", t->peer, ssh_errmsg(s));
		return -EACCES;
	}
	char methods[256];
	snprintf(methods, sizeof(methods), "%s", list);

	if (strstr(methods, "publickey")) {
		const char *sock = getenv("SSH_AUTH_SOCK");
		LIBSSH2_AGENT *agent = sock && *sock ? libssh2_agent_init(s) : NULL;
		if (agent && libssh2_agent_connect(agent) == 0) {
			tried_add(tried, sizeof(tried), "ssh-agent");
			if (libssh2_agent_list_identities(agent) == 0) {
				struct libssh2_agent_publickey *id = NULL, *prev = NULL;
				while (libssh2_agent_get_identity(agent, &id, prev) == 0) {
					if (libssh2_agent_userauth(agent, user, id) == 0) {
						libssh2_agent_disconnect(agent);
						libssh2_agent_free(agent);
						no_person = 1;
						goto ok;
					}
					prev = id;
				}
			}
			libssh2_agent_disconnect(agent);
		}
		if (agent)
			libssh2_agent_free(agent);

		for (size_t i = 0; i < c->n_identity_files; i++) {
			const char *f = c->identity_files[i];
			if (access(f, R_OK) != 0) {
				size_t l = strlen(unreadable);
				if (i < c->n_given_identity_files)
					snprintf(unreadable + l, sizeof(unreadable) - l,
					         "; cannot read identity file '%s': %s", f,
					         strerror(errno));
				continue;
			}
			tried_add(tried, sizeof(tried), f);
			if (!key_is_encrypted(f)) {
				if (libssh2_userauth_publickey_fromfile_ex(s, user, ulen, NULL, f,
				                                           NULL) == 0) {
					no_person = 1;
					goto ok;
				}
				continue;
			}
			int asked = 0;
			for (int attempt = 0; t->interactive && attempt < 3; attempt++) {
				char prompt[600], pass[512];
				snprintf(prompt, sizeof(prompt),
				         "Enter passphrase for key '%s': ", f);
				if (tty_prompt(prompt, 0, pass, sizeof(pass)))
					break;
				t->prompted++;
				asked = 1;
				int rc = libssh2_userauth_publickey_fromfile_ex(s, user, ulen, NULL,
				                                                f, pass);
				explicit_bzero(pass, sizeof(pass));
				if (rc == 0)
					goto ok;
				if (rc != LIBSSH2_ERROR_FILE)
					break; /* decrypted, but the server refused the key */
			}
			if (!asked) {
				size_t l = strlen(tried);
				snprintf(tried + l, sizeof(tried) - l,
				         " (needs a passphrase, and no terminal to ask)");
			}
		}
	}
	/*
	 * A key can be only the first of several factors (sshd's AuthenticationMethods
	 * "publickey,keyboard-interactive"): after that partial success the server
	 * accepts methods it did not list at first. Ask again.
	 */
	if (tried[0]) {
		list = libssh2_userauth_list(s, user, ulen);
		if (!list && libssh2_userauth_authenticated(s))
			goto ok;
		if (list)
			snprintf(methods, sizeof(methods), "%s", list);
	}
	int kbd = strstr(methods, "keyboard-interactive") != NULL;
	int password = strstr(methods, "password") != NULL;
	char no_tty[160] = "";
	if ((kbd || password) && !(t->interactive && have_tty())) {
		/* an empty answer would only count as a failed login on the server */
		snprintf(no_tty, sizeof(no_tty), "; %s a terminal to ask on, and there is none",
		         !password ? "keyboard-interactive needs"
		         : !kbd    ? "password needs"
		                   : "keyboard-interactive and password need");
		kbd = password = 0;
	}
	if (kbd) {
		tried_add(tried, sizeof(tried), "keyboard-interactive");
		for (int attempt = 0; attempt < 3; attempt++) {
			int before = t->prompted;
			if (libssh2_userauth_keyboard_interactive_ex(s, user, ulen, kbd_callback) ==
			    0)
				goto ok;
			if (before == t->prompted)
				break; /* nobody answered: asking again would not help */
		}
	}
	if (password) {
		tried_add(tried, sizeof(tried), "password");
		for (int attempt = 0; attempt < 3; attempt++) {
			char prompt[400], pass[512];
			snprintf(prompt, sizeof(prompt), "%s@%s's password: ", user, c->host);
			if (tty_prompt(prompt, 0, pass, sizeof(pass)))
				break;
			t->prompted++;
			int rc = libssh2_userauth_password_ex(s, user, ulen, pass,
			                                      (unsigned)strlen(pass), NULL);
			explicit_bzero(pass, sizeof(pass));
			if (rc == 0)
				goto ok;
		}
	}
	snprintf(err, errlen, "permission denied for %s@%s: tried %s%s%s (the server accepts %s)",
	         user, c->host,
	         tried[0]                   ? tried
	         : no_tty[0] || unreadable[0] ? "nothing"
	                                      : "nothing (no key, no agent, no terminal)",
	         unreadable, no_tty, methods);
	return -EACCES;
ok:
	c->reconnect_ok = no_person && !t->prompted;
	return 0;
}

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
	t = calloc(1, sizeof(*t));
	if (!t) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	t->base.ops = &ssh_ops;
	t->base.name = "libssh2";
	t->c = c;
	t->sock = -1;
	t->wake[0] = t->wake[1] = -1;
	t->exit_status = -1;
	t->interactive = interactive;
	pthread_mutex_init(&t->mu, NULL);
	pthread_cond_init(&t->cond, NULL);
	if (strchr(c->host, ':')) /* an IPv6 address: user@[::1]:22 */
		snprintf(t->peer, sizeof(t->peer), "%s@[%s]:%d", c->user, c->host, c->port);
	else
		snprintf(t->peer, sizeof(t->peer), "%s@%s:%d", c->user, c->host, c->port);
	t->rx.cap = SSH_RX_RING;
	t->tx.cap = SSH_TX_RING;
	t->rx.buf = malloc(t->rx.cap);
	t->tx.buf = malloc(t->tx.cap);
	if (!t->rx.buf || !t->tx.buf || pipe2(t->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
		snprintf(err, errlen, "out of memory");
		rc = -ENOMEM;
		goto out;
	}

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
	libssh2_session_callback_set(t->session, LIBSSH2_CALLBACK_RECV, (void *)ssh_recv_cb);
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
		         ssh_errmsg(t->session));
		rc = -EPROTO;
		goto out;
	}
	rc = fsd_knownhosts_check(t->session, c->host, c->port, &kf, c->strict, ssh_log_line, err,
	                          errlen);
	if (rc)
		goto out;
	rc = authenticate(t, c, err, errlen);
	if (rc)
		goto out;

	size_t window = c->window ? c->window : SSH_WINDOW_MIN;
	int64_t t0 = now_us();
	t->channel =
	    libssh2_channel_open_ex(t->session, "session", sizeof("session") - 1, (unsigned)window,
	                            LIBSSH2_CHANNEL_PACKET_DEFAULT, NULL, 0);
	if (!t->channel) {
		snprintf(err, errlen, "cannot open a channel on %s: %s", t->peer,
		         ssh_errmsg(t->session));
		rc = -EIO;
		goto out;
	}
	double sample = (double)(now_us() - t0) / 1e6;
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
		t0 = now_us();
		int r = libssh2_channel_setenv(t->channel, "FLECHEFS_RTT_PROBE", "1");
		sample = (double)(now_us() - t0) / 1e6;
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
		         ssh_errmsg(t->session));
		rc = -EIO;
		goto out;
	}
	t->keepalive_interval = c->keepalive_interval;
	t->keepalive_count = c->keepalive_count;
	ssh_logf("connected to %s (rtt %.2f ms, window %zu KiB%s)", t->peer, t->rtt_s * 1e3,
	         window >> 10, t->window_fixed ? ", fixed" : "");
	t->interactive = 0; /* no prompt after connect */
	*out = &t->base;
	t = NULL;
out:
	free(prefs);
	if (t)
		ssh_transport_destroy(t);
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
	ssh_logf("the connection to %s@%s needed a person to authenticate (passphrase, "
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
	free_strv(c->identity_files, c->n_identity_files);
	free_strv(c->known_read, c->n_known_read);
	free(c->known_write);
	free(c->ciphers);
	free(c);
}

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
		char *q = quote(c->remote_cmd);
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
		char *q = quote(c->remote_cmd), *qh = quote(c->source_host);
		char *qf = o->ssh_config ? quote(o->ssh_config) : strdup("");
		char *qu = user ? quote(user) : strdup("");
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
		ssh_logf("the ssh configuration of '%s' sets %s, which libssh2 cannot do; using "
		         "the system ssh client",
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
		if (!e || push_str(&c->identity_files, &c->n_identity_files, e)) {
			free(e);
			goto oom;
		}
		free(e);
	}
	c->n_given_identity_files = c->n_identity_files;
	if (sc.found) {
		for (size_t i = 0; i < sc.n_identity_files; i++)
			if (push_str(&c->identity_files, &c->n_identity_files,
			             sc.identity_files[i]))
				goto oom;
	} else if (o->n_identity_files == 0) {
		static const char *const defaults[] = {"~/.ssh/id_ed25519", "~/.ssh/id_ecdsa",
		                                       "~/.ssh/id_rsa"};
		for (size_t i = 0; i < 3; i++) {
			char *e = fsd_ssh_expand_home(defaults[i]);
			if (!e || push_str(&c->identity_files, &c->n_identity_files, e)) {
				free(e);
				goto oom;
			}
			free(e);
		}
	}
	if (o->known_hosts_file) {
		c->known_write = fsd_ssh_expand_home(o->known_hosts_file);
		if (!c->known_write || push_str(&c->known_read, &c->n_known_read, c->known_write))
			goto oom;
	} else if (sc.n_known_hosts_files) {
		c->known_write = strdup(sc.known_hosts_files[0]);
		if (!c->known_write)
			goto oom;
		for (size_t i = 0; i < sc.n_known_hosts_files; i++)
			if (push_str(&c->known_read, &c->n_known_read, sc.known_hosts_files[i]))
				goto oom;
	} else {
		c->known_write = fsd_ssh_expand_home("~/.ssh/known_hosts");
		if (!c->known_write || push_str(&c->known_read, &c->n_known_read, c->known_write))
			goto oom;
	}
	for (size_t i = 0; i < sc.n_global_known_hosts; i++)
		if (push_str(&c->known_read, &c->n_known_read, sc.global_known_hosts[i]))
			goto oom;
	if (!sc.found && push_str(&c->known_read, &c->n_known_read, "/etc/ssh/ssh_known_hosts"))
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

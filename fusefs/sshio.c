/*
 * sshio.c: the libssh2 transport's I/O thread and the transport operations
 * (transport.h) the connection reads and writes through, and the log the SSH code
 * writes to; ssh.c connects it.
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
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <libssh2.h>

#include "clock.h"
#include "log.h"
#include "sshtransport.h"

/* ---------------------------------------------------------------- logging */

static void (*ssh_log_fn)(const char *line);

void fsd_ssh_set_log(void (*log)(const char *line))
{
	ssh_log_fn = log;
}

void fsd_ssh_log_line(const char *line)
{
	if (ssh_log_fn)
		ssh_log_fn(line);
	else
		fsd_log(FSD_LOG_INFO, "%s", line);
}

void fsd_ssh_logf(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	fsd_ssh_log_line(buf);
}

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

LIBSSH2_RECV_FUNC(fsd_ssh_recv_cb)
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
		t->last_recv_us = fsd_now_us();
		t->recv_bytes += (uint64_t)r;
		if (t->budget_on)
			t->recv_budget -= (size_t)r;
	}
	return r;
}

const char *fsd_ssh_errmsg(LIBSSH2_SESSION *s)
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
	         fsd_ssh_errmsg(t->session));
	fsd_ssh_log_line(why);
	set_ended(t, rc == LIBSSH2_ERROR_TIMEOUT ? -ETIMEDOUT : -ECONNRESET, why);
	return -1;
}

/* After the remote closed stdout: wait (bounded) for the exit status. */
static void finish_exit(struct ssh_transport *t)
{
	int64_t deadline = fsd_now_us() + SSH_EXIT_WAIT_MS * 1000LL;
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
		int64_t left = deadline - fsd_now_us();
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
	int64_t now = fsd_now_us();
	if (!t->adjust_amount && !t->window_fixed && now - t->rate_t0 >= 100000) {
		double dt = (double)(now - t->rate_t0) / 1e6;
		double rate = (double)(t->recv_bytes - t->rate_b0) / dt;
		if (!t->rx_was_full && rate * t->rtt_s * 10 >= (double)t->window_target &&
		    t->window_target < SSH_WINDOW_MAX) {
			t->window_target *= 2;
			if (t->window_target > SSH_WINDOW_MAX)
				t->window_target = SSH_WINDOW_MAX;
			fsd_ssh_logf("%s: receive window %zu KiB (rtt %.1f ms, %.1f MB/s)", t->peer,
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

	t->last_recv_us = fsd_now_us();
	t->rate_t0 = fsd_now_us();
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
		int64_t now = fsd_now_us();
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
				fsd_ssh_log_line(why);
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
			t->last_recv_us = fsd_now_us();
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

void fsd_ssh_transport_destroy(struct ssh_transport *t)
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
	fsd_ssh_transport_destroy(t);
}

static const struct fsd_transport_ops ssh_ops = {
    .read = ssh_read,
    .write = ssh_write,
    .shutdown = ssh_shutdown,
    .describe_exit = ssh_describe_exit,
    .free = ssh_free,
};

struct ssh_transport *fsd_ssh_transport_new(struct ssh_connector *c, int interactive, char *err,
                                            size_t errlen)
{
	struct ssh_transport *t;

	t = calloc(1, sizeof(*t));
	if (!t) {
		snprintf(err, errlen, "out of memory");
		return NULL;
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
		fsd_ssh_transport_destroy(t);
		return NULL;
	}
	return t;
}

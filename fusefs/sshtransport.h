/*
 * sshtransport.h: the libssh2 transport's state, shared by its three parts: ssh.c
 * (the connector: resolving, TCP, handshake, channel setup), sshauth.c (prompts and
 * authentication) and sshio.c (the I/O thread, and the transport's read/write).
 * Nothing outside these three includes it; the numbered invariants are at the top
 * of sshio.c.
 */
#ifndef FLECHEFS_FUSEFS_SSHTRANSPORT_H
#define FLECHEFS_FUSEFS_SSHTRANSPORT_H

#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>

#include <libssh2.h>

#include "ssh.h"

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

/* The libssh2 connector (ssh.c): what connect() needs, resolved once. */
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

/*
 * A transport for connector c (borrowed until connect returns), not yet connected:
 * rings, wake pipe and lock made, sock -1. Returns NULL with a message in err on
 * OOM. Freed with fsd_ssh_transport_destroy until its I/O thread starts, then
 * through base.ops->free.
 */
struct ssh_transport *fsd_ssh_transport_new(struct ssh_connector *c, int interactive, char *err,
                                            size_t errlen);

/* Frees t and closes its session, channel and socket; its I/O thread must not run. */
void fsd_ssh_transport_destroy(struct ssh_transport *t);

/* libssh2's socket read callback (the session's abstract is the transport). */
LIBSSH2_RECV_FUNC(fsd_ssh_recv_cb);

/* libssh2's last error message on s, never NULL (borrowed from the session). */
const char *fsd_ssh_errmsg(LIBSSH2_SESSION *s);

/*
 * Authenticates t's session as c->user: agent, keys, then (when t->interactive and a
 * terminal is there) passphrases, keyboard-interactive and password. Sets
 * c->reconnect_ok. Returns 0, or -EACCES with a message in err.
 */
int fsd_ssh_authenticate(struct ssh_transport *t, struct ssh_connector *c, char *err,
                         size_t errlen);

/* Writes one line to the log set with fsd_ssh_set_log. */
void fsd_ssh_log_line(const char *line);

/* As fsd_ssh_log_line, formatted (truncated to 1 KiB). */
__attribute__((format(printf, 1, 2))) void fsd_ssh_logf(const char *fmt, ...);

#endif

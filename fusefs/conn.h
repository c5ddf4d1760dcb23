/*
 * conn.h: the client end of the flechefs protocol (rpc/PROTOCOL.md) over one
 * transport (transport.h). Requests are asynchronous: fsd_conn_send sends one and
 * returns; its completion runs later, exactly once, with the answer, the server's
 * error, a deadline's ETIMEDOUT or the connection's loss. Many requests are in
 * flight on the one channel, matched by msgid. A synchronous form serves startup and
 * the handlers that need several answers in a row.
 *
 * Threads: one reader thread per connection reads frames and runs completions;
 * senders write under a lock; a timer thread fails requests past their deadline.
 * A completion must not wait for another answer (it runs on the reader thread) and
 * must not send a request (a write could block while the server waits for us to read).
 *
 * Reconnection: the connection is made by a connector. When the transport ends,
 * every pending request fails at once with EIO; if the connector can reconnect
 * without a person, the reader thread reconnects with backoff (and says hello
 * again) while new requests fail with EIO; otherwise the connection is down for good
 * and on_down is called once.
 */
#ifndef FLECHEFS_FUSEFS_CONN_H
#define FLECHEFS_FUSEFS_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "msg.h"
#include "transport.h"

struct fsd_conn;

/* What the server said in hello. */
struct fsd_server_info {
	int protocol;
	char program[64];
	char version[64];
	char hostname[256];
	bool read_only;
	uint32_t max_frame;
	uint32_t max_read;
	uint32_t page_default;
	uint32_t page_max;
	char calls_type[16]; /* "files", "sql" or "" */
	unsigned views;      /* the views hello lists: bit 1u << enum rpc_view (proto.h) */
	char root[1024];
	/* what the cache's layout says exists (older servers do not say) */
	bool presence_known;
	bool calls_present;  /* its call directory or database */
	bool values_present; /* its value directory */
	bool fleche_toml;    /* a fleche.toml in the root */
};

struct fsd_conn_options {
	int timeout;             /* seconds before a request fails with ETIMEDOUT (0: 30) */
	size_t max_inflight;     /* bytes of load_value answers outstanding (0: 64 MiB) */
	const char *client_name; /* for hello, e.g. "flechefs 0.1.0" */
	/* Called once, from the reader thread, when the connection is lost for good
	 * (the connector cannot reconnect, or fsd_conn_close ran). why: a sentence. */
	void (*on_down)(void *ctx, const char *why);
	void *ctx;
};

/* The outcome of a request, as a completion sees it. Everything is borrowed for
 * the duration of the completion only. */
struct fsd_reply {
	int err;                            /* 0, or the positive errno for the kernel */
	const msgpack_object *result;       /* the result (nil on error) */
	const struct rpc_error_info *error; /* the server's error map, NULL when the
	                                       failure is local (EIO, ETIMEDOUT) */
	const char *message;                /* why it failed ("" on success) */
	const void *payload;                /* the whole response frame payload */
	size_t payload_len;
	/* Only for fsd_conn_send_data: when in_pipe is set, the result is a bin of
	 * data_len bytes that are waiting in the pipe data_fd instead of in memory
	 * (result and payload are then nil / NULL). The completion should move them on
	 * (e.g. fuse_reply_data with FUSE_BUF_IS_FD); what it leaves is discarded. */
	bool in_pipe;
	int data_fd;
	size_t data_len;
};

typedef void (*fsd_done_fn)(void *ctx, const struct fsd_reply *r);

/*
 * Makes a connection object using connector (borrowed; it must outlive the
 * connection). Nothing is connected yet. Returns NULL when out of memory.
 */
struct fsd_conn *fsd_conn_new(struct fsd_connector *connector, const struct fsd_conn_options *o);

/*
 * Connects (connector->connect with `interactive`), says hello and checks the
 * answer, then starts the reader and timer threads. Returns 0, or -errno with a
 * message in err: the transport's failure, "the server's output is not a flechefs
 * frame: ..." followed by the transport's describe_exit, or a protocol mismatch
 * naming both versions.
 */
int fsd_conn_start(struct fsd_conn *c, int interactive, char *err, size_t errlen);

/* What hello answered (valid after a successful fsd_conn_start). */
const struct fsd_server_info *fsd_conn_server(struct fsd_conn *c);

/*
 * A request: pack writes the whole message [0, msgid, method, params] for the msgid
 * the connection assigns (proto.h's rpc_pack_* through client.h's typed stubs);
 * name is the method's name, for messages. weight is the number of answer bytes to
 * reserve against max_inflight (0 for everything but load_value): the send waits
 * while the cap is reached (never on the reader thread).
 */
struct fsd_request {
	const char *name;
	int (*pack)(msgpack_packer *pk, uint32_t msgid, const void *args);
	const void *args; /* borrowed until the send returns */
	size_t weight;
};

/*
 * Sends req. done(ctx, reply) runs exactly once: possibly before this returns
 * (failure to send), from the reader thread (answer, loss of the connection) or from
 * the timer thread (deadline).
 */
void fsd_conn_send(struct fsd_conn *c, const struct fsd_request *req, fsd_done_fn done,
                   void *ctx);

/*
 * As fsd_conn_send, for a request whose result is a bin (load_value): when the
 * connection may splice (fsd_conn_set_splice) and the transport is a pipe, a large
 * result reaches the completion in a pipe (reply->in_pipe) rather than in memory.
 */
void fsd_conn_send_data(struct fsd_conn *c, const struct fsd_request *req, fsd_done_fn done,
                        void *ctx);

/*
 * Lets bin results of fsd_conn_send_data of up to max bytes be handed over in a pipe
 * (when the kernel side can take spliced replies). Returns the largest size that will
 * be spliced (at most max; less when pipes cannot be made that large without the
 * privilege to go over /proc/sys/fs/pipe-max-size, but at least max / 2), or -errno:
 * results then stay in memory.
 */
long fsd_conn_set_splice(struct fsd_conn *c, size_t max);

/*
 * One deadline for an operation that needs several requests in a row (a lookup in
 * digests/: expand, then where the key lives; rmdir: load, then evict): requests
 * this thread sends between fsd_conn_op_begin and fsd_conn_op_end fail by the
 * deadline set at begin (now + timeout) rather than each by its own, so the process
 * waiting on the operation is answered within one timeout. A request sent after
 * that deadline fails at once with ETIMEDOUT. Per thread; no nesting.
 */
void fsd_conn_op_begin(struct fsd_conn *c);
void fsd_conn_op_end(void);

/* A synchronous answer: owns a copy of the response. */
struct fsd_result {
	int err;                      /* 0 or the positive errno */
	char message[512];            /* "" on success */
	struct rpc_error_info *error; /* the server's error map, or NULL */
	void *payload;
	size_t payload_len;
	msgpack_zone zone;
	const msgpack_object *result; /* valid until fsd_result_release; never NULL */
	bool undecoded; /* an answer came, and did not decode as its method's (client.h) */
};

/*
 * As fsd_conn_send, waiting for the answer (must not run on the reader thread).
 * Returns 0 or -err; r is filled either way and must be released.
 */
int fsd_conn_send_sync(struct fsd_conn *c, const struct fsd_request *req, struct fsd_result *r);
void fsd_result_release(struct fsd_result *r);

/*
 * Waits (at most timeout_ms) until what the server wrote to its standard error
 * before its last answer is in the log, where the transport can tell (the local
 * pipe); returns at once otherwise.
 */
void fsd_conn_settle_log(struct fsd_conn *c, int timeout_ms);

/* Nonzero while a transport is up. */
int fsd_conn_is_up(struct fsd_conn *c);

/*
 * Ends the connection: pending requests fail with EIO, no reconnection happens,
 * threads are joined and the transport freed. Safe to call more than once.
 */
void fsd_conn_close(struct fsd_conn *c);
/* Closes (if needed) and frees. NULL is a no-op. */
void fsd_conn_free(struct fsd_conn *c);

/* A connector for a local child process (fsd_transport_spawn of argv, copied);
 * it cannot reconnect: when the local server dies, the mount ends. */
struct fsd_connector *fsd_spawn_connector_new(char *const argv[]);

#endif

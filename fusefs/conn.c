/*
 * conn.c: the client end of the flechefs protocol (conn.h): the table of requests
 * in flight, the reader thread that completes them, the timer thread that enforces
 * deadlines, and reconnection through the connector.
 *
 * State machine (c->state, under c->lock):
 *
 *	IDLE --fsd_conn_start ok--> UP --transport ends--> DOWN
 *	DOWN --connector can reconnect, connect + hello ok--> UP
 *	DOWN --cannot reconnect, or closing--> DEAD (on_down called once, unless closing)
 *
 * Invariants:
 *  1. A request is in the table from just before its frame is written until exactly
 *     one of: its answer is read, its deadline passes, the transport ends. Whoever
 *     takes it out of the table (under c->lock) runs its completion, outside the lock.
 *  2. c->inflight is the sum of the weights of the requests in the table.
 *  3. Requests are only sent while the state is UP; in any other state they fail at
 *     once with EIO and the reason of the last loss (c->why). While the connection
 *     is stalled (8) they fail at once with ETIMEDOUT, unsent.
 *  4. c->t is set and cleared under c->wlock, which every writer holds while it
 *     writes; the reader thread is the only one that reads c->t, and the only one
 *     that replaces it (after taking c->wlock).
 *  5. Completions run on the reader or timer thread (or the sender's on failure to
 *     send) and never send or wait.
 *  6. Splicing (fsd_conn_set_splice): c->spipe is empty whenever the reader is not
 *     inside a completion of a spliced answer. Only the reader thread reads and
 *     writes it; a bin is spliced only when it fits in half the pipe's slots (so the
 *     splice cannot stall on a full pipe) and at most CONN_HEAD_READ transport bytes
 *     wait in c->rbuf (they are written to c->spipe first). While splicing is on,
 *     conn_read_fn reads ahead at most CONN_HEAD_READ bytes, so that a frame's bin is
 *     still in the transport's pipe when its head is parsed.
 *  7. A writer sets c->writing (and the deadline of its request) under c->lock before
 *     it writes to c->t and clears it after, both while it holds c->wlock, so the
 *     transport cannot be freed while c->writing names it. A write still blocked at
 *     that deadline (a server that stopped reading its requests) makes the timer
 *     thread shut the transport down, under c->lock: the write fails, the reader sees
 *     the end, and the connection is lost rather than the writer (and every sender
 *     behind it on c->wlock) blocked for good.
 *  8. Stall: requests are numbered in the order they enter the table (p->seq), and
 *     c->answered_seq is the highest number answered. When a request passes its
 *     deadline after waiting the whole timeout (not an operation's shorter one),
 *     and nothing that entered after it has been answered (answered_seq < its seq:
 *     the server took nothing behind it) or no frame has come from the server for
 *     half the timeout (c->heard_ms: it answered some behind it, out of order, and
 *     then went silent), the connection is stalled
 *     (c->stalled, under c->lock): the timer fails every request in the table at
 *     once, and new requests fail at once, unsent, until any frame arrives from the
 *     server (the reader clears c->stalled) or a new transport is up. So a system
 *     call waits for one deadline at most, not for one per request the kernel sends
 *     after the previous one failed (read-ahead, then the reader's own read). While
 *     stalled, one probe at a time (c->probing: a contains of "", which the server
 *     answers without touching the cache) is sent by the first failed sender, after
 *     its own completion and only when no other writer holds c->wlock, so that a
 *     server that lost one request, or runs again, is noticed. A request slower
 *     than the deadline does not stall a server that answers others.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "buf.h"
#include "conn.h"
#include "frame.h"
#include "log.h"
#include "msg.h"
#include "proto.h"
#include "rpc.h"

#define CONN_BUCKETS          1024
#define CONN_DEFAULT_TIMEOUT  30
#define CONN_DEFAULT_INFLIGHT (64u * 1024 * 1024)
#define CONN_RBUF             (256 * 1024)
#define CONN_BACKOFF_MAX      30

enum conn_state { CONN_IDLE, CONN_UP, CONN_DOWN, CONN_DEAD };

struct pending {
	struct pending *next;
	int data; /* fsd_conn_send_data: its bin may be handed over in a pipe */
	uint32_t msgid;
	uint64_t seq;     /* the order it entered the table (invariant 8) */
	uint64_t sent_ms; /* when it was made */
	uint64_t deadline_ms;
	size_t weight;
	fsd_done_fn done;
	void *ctx;
};

struct fsd_conn {
	struct fsd_connector *connector;
	struct fsd_conn_options opt;
	struct fsd_server_info info;

	pthread_mutex_t lock; /* state, table, inflight, why, closing */
	pthread_cond_t space; /* inflight went down, or the state changed */
	pthread_cond_t tick;  /* wakes the timer and the reconnect backoff */
	enum conn_state state;
	int closing;
	struct pending *bucket[CONN_BUCKETS];
	size_t npending;
	uint32_t next_msgid;
	size_t inflight;
	char why[512];
	/* invariant 8 */
	uint64_t next_seq, answered_seq;
	uint64_t heard_ms; /* when the last frame came, or the transport came up */
	int stalled, probing;

	pthread_mutex_t wlock; /* c->t for writers */
	struct fsd_transport *t;
	/* the write in progress (under c->lock; invariant 7) */
	struct fsd_transport *writing;
	uint64_t writing_deadline_ms;

	pthread_t reader, timer;
	int reader_started, timer_started;

	/* reader side only */
	char *rbuf;
	size_t rpos, rlen;
	struct fsd_transport *rt; /* the transport being read (== c->t while up) */
	int exact;                /* read only what is asked for (splicing is on) */

	/* splicing: set once by fsd_conn_set_splice, then read by the reader only */
	int spipe[2];
	size_t splice_max;
	atomic_int splice_on;
};

/* Smaller bins are copied: splicing them costs more than it saves. */
#define CONN_SPLICE_MIN (16 * 1024)
/* A frame's length and the longest head of a data answer, [1, u32 msgid, nil, bin32]:
 * what one small read takes while splicing. Every pipe operation waits for the
 * server's writes to the pipe, so a frame costs one read and one splice. */
#define CONN_HEAD_READ (RPC_FRAME_HEADER + 13)

static const msgpack_object conn_nil = {.type = MSGPACK_OBJECT_NIL};

/* The deadline of the operation this thread is in (fsd_conn_op_begin), or 0. */
static _Thread_local uint64_t op_deadline_ms;

void fsd_conn_op_begin(struct fsd_conn *c)
{
	op_deadline_ms = fsd_now_ms() + (uint64_t)c->opt.timeout * 1000;
}

void fsd_conn_op_end(void)
{
	op_deadline_ms = 0;
}

static void abs_time(struct timespec *ts, uint64_t ms_from_now)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += (time_t)(ms_from_now / 1000);
	ts->tv_nsec += (long)(ms_from_now % 1000) * 1000000;
	if (ts->tv_nsec >= 1000000000) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000;
	}
}

static void complete_local(fsd_done_fn done, void *ctx, int err, const char *message)
{
	struct fsd_reply r = {
	    .err = err,
	    .result = &conn_nil,
	    .error = NULL,
	    .message = message ? message : "",
	};
	done(ctx, &r);
}

/* --- the table (caller holds c->lock) --- */

static void table_add(struct fsd_conn *c, struct pending *p)
{
	struct pending **b = &c->bucket[p->msgid % CONN_BUCKETS];
	p->next = *b;
	*b = p;
	c->npending++;
	c->inflight += p->weight;
}

static struct pending *table_take(struct fsd_conn *c, uint32_t msgid)
{
	for (struct pending **pp = &c->bucket[msgid % CONN_BUCKETS]; *pp; pp = &(*pp)->next) {
		struct pending *p = *pp;
		if (p->msgid == msgid) {
			*pp = p->next;
			c->npending--;
			c->inflight -= p->weight;
			if (p->weight)
				pthread_cond_broadcast(&c->space);
			return p;
		}
	}
	return NULL;
}

/* Takes every request out of the table (or only the overdue ones when now != 0). */
static struct pending *table_take_all(struct fsd_conn *c, uint64_t now)
{
	struct pending *list = NULL;
	for (size_t i = 0; i < CONN_BUCKETS; i++) {
		for (struct pending **pp = &c->bucket[i]; *pp;) {
			struct pending *p = *pp;
			if (now && p->deadline_ms > now) {
				pp = &p->next;
				continue;
			}
			*pp = p->next;
			c->npending--;
			c->inflight -= p->weight;
			p->next = list;
			list = p;
		}
	}
	pthread_cond_broadcast(&c->space);
	return list;
}

static void fail_list(struct pending *list, int err, const char *message)
{
	while (list) {
		struct pending *p = list;
		list = p->next;
		complete_local(p->done, p->ctx, err, message);
		free(p);
	}
}

/* A frame from the server, answering p (NULL: a late answer). Caller holds c->lock.
 * Invariant 8: the server answers again, and took everything up to p. */
static void conn_heard(struct fsd_conn *c, const struct pending *p)
{
	c->stalled = 0;
	c->heard_ms = fsd_now_ms();
	if (p && p->seq > c->answered_seq)
		c->answered_seq = p->seq;
}

/* --- reading --- */

static ssize_t conn_read_fn(void *ctx, void *buf, size_t len)
{
	struct fsd_conn *c = ctx;
	if (c->rpos == c->rlen) {
		/* Large reads bypass the buffer: values stream straight into the frame. While
		 * splicing, small reads take at most a frame's length and the longest head
		 * (CONN_HEAD_READ): a bin is then still (almost) all in the pipe. */
		if (len >= CONN_RBUF / 2 || (c->exact && len >= CONN_HEAD_READ))
			return c->rt->ops->read(c->rt, buf, len);
		ssize_t n = c->rt->ops->read(c->rt, c->rbuf, c->exact ? CONN_HEAD_READ : CONN_RBUF);
		if (n <= 0)
			return n;
		c->rpos = 0;
		c->rlen = (size_t)n;
	}
	size_t n = c->rlen - c->rpos;
	if (n > len)
		n = len;
	memcpy(buf, c->rbuf + c->rpos, n);
	c->rpos += n;
	return (ssize_t)n;
}

/* --- sending --- */

static void conn_send(struct fsd_conn *c, const struct fsd_request *req, int flags,
                      fsd_done_fn done, void *ctx);

/* The probe of a stalled connection: contains(""), which any server answers at once. */
static int pack_probe(msgpack_packer *pk, uint32_t msgid, const void *args)
{
	(void)args;
	return rpc_pack_contains(pk, msgid, "");
}

/* The probe's completion (invariant 8): another probe may go out. */
static void probe_done(void *ctx, const struct fsd_reply *r)
{
	struct fsd_conn *c = ctx;
	pthread_mutex_lock(&c->lock);
	c->probing = 0;
	pthread_mutex_unlock(&c->lock);
}

/* conn_send's flags */
#define CONN_DATA  1 /* fsd_conn_send_data */
#define CONN_PROBE 2 /* the probe of a stalled connection: sent all the same */

static void conn_send(struct fsd_conn *c, const struct fsd_request *req, int flags,
                      fsd_done_fn done, void *ctx)
{
	size_t weight = req->weight;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	struct pending *p = NULL;
	char why[512];
	int rc;

	msgpack_sbuffer_init(&sb);
	p = calloc(1, sizeof(*p));
	if (!p) {
		complete_local(done, ctx, ENOMEM, "out of memory");
		goto out;
	}
	p->done = done;
	p->ctx = ctx;
	p->weight = weight;
	p->data = (flags & CONN_DATA) != 0;
	uint64_t now = fsd_now_ms();
	p->sent_ms = now;
	p->deadline_ms = now + (uint64_t)c->opt.timeout * 1000;
	if (op_deadline_ms && op_deadline_ms < p->deadline_ms && !(flags & CONN_PROBE)) {
		if (op_deadline_ms <= now) {
			complete_local(done, ctx, ETIMEDOUT,
			               "the operation's deadline passed before this request");
			goto out;
		}
		p->deadline_ms = op_deadline_ms;
	}
	uint64_t deadline_ms = p->deadline_ms; /* p belongs to the table once added */

	pthread_mutex_lock(&c->lock);
	p->msgid = c->next_msgid++;
	if (weight && !(c->reader_started && pthread_equal(pthread_self(), c->reader))) {
		struct timespec ts;
		abs_time(&ts, deadline_ms - now);
		while (c->state == CONN_UP && !c->stalled && c->inflight &&
		       c->inflight + weight > c->opt.max_inflight) {
			if (pthread_cond_timedwait(&c->space, &c->lock, &ts) == ETIMEDOUT)
				break;
		}
		if (c->state == CONN_UP && c->inflight &&
		    c->inflight + weight > c->opt.max_inflight) {
			pthread_mutex_unlock(&c->lock);
			complete_local(done, ctx, ETIMEDOUT,
			               "no room for the request before its deadline");
			goto out;
		}
	}
	if (c->state != CONN_UP) {
		snprintf(why, sizeof(why), "%s", c->why[0] ? c->why : "not connected");
		pthread_mutex_unlock(&c->lock);
		complete_local(done, ctx, EIO, why);
		goto out;
	}
	if (c->stalled && !(flags & CONN_PROBE)) {
		int probe = !c->probing;
		c->probing = 1;
		pthread_mutex_unlock(&c->lock);
		snprintf(why, sizeof(why),
		         "the server has answered nothing for %d s: requests fail at once until "
		         "it answers again",
		         c->opt.timeout);
		complete_local(done, ctx, ETIMEDOUT, why);
		if (probe) {
			struct fsd_request probe_req = {rpc_method_name(RPC_M_CONTAINS), pack_probe,
			                                NULL, 0};
			conn_send(c, &probe_req, CONN_PROBE, probe_done, c);
		}
		goto out;
	}
	p->seq = ++c->next_seq;
	uint32_t msgid = p->msgid;
	table_add(c, p);
	pthread_mutex_unlock(&c->lock);

	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	rc = rpc_frame_begin(&sb);
	if (!rc)
		rc = req->pack(&pk, msgid, req->args);
	if (!rc)
		rc = rpc_frame_end(&sb,
		                   c->info.max_frame ? c->info.max_frame : RPC_MAX_FRAME_DEFAULT);
	/* A probe does not wait for another writer (one blocked on a server that reads
	 * nothing): a later sender probes again. */
	if (!rc && (flags & CONN_PROBE) && pthread_mutex_trylock(&c->wlock) != 0)
		rc = -EBUSY;
	else if (!rc && !(flags & CONN_PROBE))
		pthread_mutex_lock(&c->wlock);
	if (!rc) {
		struct fsd_transport *t = c->t;
		if (t) {
			pthread_mutex_lock(&c->lock);
			c->writing = t;
			c->writing_deadline_ms = deadline_ms;
			pthread_mutex_unlock(&c->lock);
			rc = t->ops->write(t, sb.data, sb.size);
			pthread_mutex_lock(&c->lock);
			c->writing = NULL;
			pthread_mutex_unlock(&c->lock);
		} else {
			rc = -EPIPE;
		}
		pthread_mutex_unlock(&c->wlock);
	}
	if (rc) {
		/* Not sent: fail it unless the reader or timer took it already. */
		pthread_mutex_lock(&c->lock);
		struct pending *mine = table_take(c, msgid);
		pthread_mutex_unlock(&c->lock);
		if (mine) {
			snprintf(why, sizeof(why), "cannot send '%s': %s", req->name,
			         strerror(-rc));
			complete_local(done, ctx, rc == -EMSGSIZE ? EMSGSIZE : EIO, why);
			free(mine);
		}
	}
	p = NULL; /* owned by the table, or freed above */
out:
	free(p);
	msgpack_sbuffer_destroy(&sb);
}

void fsd_conn_send(struct fsd_conn *c, const struct fsd_request *req, fsd_done_fn done,
                   void *ctx)
{
	conn_send(c, req, 0, done, ctx);
}

void fsd_conn_send_data(struct fsd_conn *c, const struct fsd_request *req, fsd_done_fn done,
                        void *ctx)
{
	conn_send(c, req, CONN_DATA, done, ctx);
}

/* --- synchronous calls --- */

struct sync_wait {
	pthread_mutex_t m;
	pthread_cond_t cv;
	int finished;
	struct fsd_result *r;
};

static void sync_done(void *ctx, const struct fsd_reply *rep)
{
	struct sync_wait *w = ctx;
	struct fsd_result *r = w->r;

	r->err = rep->err;
	snprintf(r->message, sizeof(r->message), "%s", rep->message ? rep->message : "");
	if (rep->error) {
		r->error = malloc(sizeof(*r->error));
		if (r->error)
			memcpy(r->error, rep->error, sizeof(*r->error));
	}
	if (!rep->err && rep->payload) {
		r->payload = malloc(rep->payload_len ? rep->payload_len : 1);
		if (r->payload) {
			/* Decoded again by the waiting thread, into its own zone. */
			memcpy(r->payload, rep->payload, rep->payload_len);
			r->payload_len = rep->payload_len;
		} else {
			r->err = ENOMEM;
			snprintf(r->message, sizeof(r->message), "out of memory");
		}
	}
	pthread_mutex_lock(&w->m);
	w->finished = 1;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->m);
}

int fsd_conn_send_sync(struct fsd_conn *c, const struct fsd_request *req, struct fsd_result *r)
{
	struct sync_wait w;

	memset(r, 0, sizeof(*r));
	msgpack_zone_init(&r->zone, 4096);
	r->result = &conn_nil;
	pthread_mutex_init(&w.m, NULL);
	pthread_cond_init(&w.cv, NULL);
	w.finished = 0;
	w.r = r;
	conn_send(c, req, 0, sync_done, &w);
	pthread_mutex_lock(&w.m);
	while (!w.finished)
		pthread_cond_wait(&w.cv, &w.m);
	pthread_mutex_unlock(&w.m);
	pthread_cond_destroy(&w.cv);
	pthread_mutex_destroy(&w.m);

	if (!r->err && r->payload) {
		struct rpc_response resp;
		char err[256];
		if (rpc_response_decode(r->payload, r->payload_len, &r->zone, &resp, err,
		                        sizeof(err)) == 0) {
			r->result = resp.result;
		} else {
			r->err = EIO;
			snprintf(r->message, sizeof(r->message), "%s", err);
		}
	}
	return r->err ? -r->err : 0;
}

void fsd_result_release(struct fsd_result *r)
{
	if (!r)
		return;
	msgpack_zone_destroy(&r->zone);
	free(r->payload);
	free(r->error);
	r->payload = NULL;
	r->error = NULL;
	r->result = &conn_nil;
}

/* --- hello --- */

static void copy_str(char *dst, size_t dstlen, const char *s, size_t n)
{
	snprintf(dst, dstlen, "%.*s", (int)n, s);
}

static void append_exit(struct fsd_transport *t, char *err, size_t errlen)
{
	char tail[1024];
	size_t n = t->ops->describe_exit ? t->ops->describe_exit(t, tail, sizeof(tail)) : 0;
	size_t used = strlen(err);
	/* Truncation is fine here: the start of the reason is the useful part. */
	if (n && used + 3 < errlen)
		snprintf(err + used, errlen - used, " (%.*s)", (int)(errlen - used - 3), tail);
}

/* Shuts a transport down when hello is not answered within the timeout (no reader
 * or timer thread runs yet to end the wait). */
struct hello_watch {
	pthread_mutex_t m;
	pthread_cond_t cv;
	int done, fired, timeout;
	struct fsd_transport *t;
};

static void *hello_watch_main(void *arg)
{
	struct hello_watch *w = arg;
	struct timespec ts;
	abs_time(&ts, (uint64_t)w->timeout * 1000);
	pthread_mutex_lock(&w->m);
	while (!w->done && pthread_cond_timedwait(&w->cv, &w->m, &ts) != ETIMEDOUT)
		;
	if (!w->done) {
		w->fired = 1;
		w->t->ops->shutdown(w->t);
	}
	pthread_mutex_unlock(&w->m);
	return NULL;
}

/*
 * Says hello on a fresh transport t and reads the answer directly (no reader thread
 * yet), within the timeout. Fills c->info. Returns 0 or -errno with a message in err.
 */
static int conn_handshake(struct fsd_conn *c, struct fsd_transport *t, char *err, size_t errlen)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	struct rpc_buf frame = RPC_BUF_INIT(RPC_MAX_FRAME_DEFAULT);
	msgpack_zone zone;
	struct rpc_response resp;
	struct fsd_server_info info;
	char ferr[256];
	int rc;

	msgpack_sbuffer_init(&sb);
	msgpack_zone_init(&zone, 4096);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	rc = rpc_frame_begin(&sb);
	if (!rc)
		rc = rpc_pack_hello(&pk, 0, RPC_PROTOCOL_VERSION,
		                    c->opt.client_name ? c->opt.client_name : "flechefs");
	if (!rc)
		rc = rpc_frame_end(&sb, RPC_MAX_FRAME_DEFAULT);
	if (rc) {
		snprintf(err, errlen, "cannot encode hello: %s", strerror(-rc));
		goto out;
	}
	/* A failed write is reported only if nothing can be read: a program that
	 * printed text and exited is better described by what it printed. */
	struct hello_watch w = {.timeout = c->opt.timeout, .t = t};
	pthread_t wth;
	pthread_condattr_t ca;
	pthread_mutex_init(&w.m, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w.cv, &ca);
	pthread_condattr_destroy(&ca);
	int watching = pthread_create(&wth, NULL, hello_watch_main, &w) == 0;
	int wrc = t->ops->write(t, sb.data, sb.size);
	c->rt = t;
	c->rpos = c->rlen = 0;
	rc = rpc_frame_read(conn_read_fn, c, RPC_MAX_FRAME_DEFAULT, &frame, ferr, sizeof(ferr));
	if (watching) {
		pthread_mutex_lock(&w.m);
		w.done = 1;
		pthread_cond_signal(&w.cv);
		pthread_mutex_unlock(&w.m);
		pthread_join(wth, NULL);
	}
	pthread_cond_destroy(&w.cv);
	pthread_mutex_destroy(&w.m);
	if (w.fired) {
		snprintf(err, errlen, "the server did not answer hello within %d s",
		         c->opt.timeout);
		append_exit(t, err, errlen);
		rc = -ETIMEDOUT;
		goto out;
	}
	if (rc == 1 && wrc) {
		snprintf(err, errlen, "cannot send hello to the server: %s", strerror(-wrc));
		append_exit(t, err, errlen);
		rc = wrc;
		goto out;
	}
	if (rc == 1) {
		snprintf(err, errlen, "the server closed the connection before answering hello");
		append_exit(t, err, errlen);
		rc = -EPIPE;
		goto out;
	}
	if (rc < 0) {
		snprintf(err, errlen, "%s", ferr);
		append_exit(t, err, errlen);
		goto out;
	}
	rc = rpc_response_decode(frame.data, frame.len, &zone, &resp, ferr, sizeof(ferr));
	if (rc < 0 || resp.msgid != 0) {
		char shown[32];
		rpc_frame_describe((const uint8_t *)frame.data, frame.len < 4 ? frame.len : 4,
		                   shown, sizeof(shown));
		snprintf(err, errlen,
		         "the server's output is not a flechefs frame: a frame of %zu bytes that "
		         "is not an answer to hello (it starts with %s)",
		         frame.len, shown);
		append_exit(t, err, errlen);
		rc = -EPROTO;
		goto out;
	}
	if (resp.error) {
		struct rpc_error_info *ei = malloc(sizeof(*ei));
		if (!ei) {
			rc = -ENOMEM;
			snprintf(err, errlen, "out of memory");
			goto out;
		}
		rpc_error_decode(resp.error, ei);
		if (ei->code == RPC_E_VERSION)
			snprintf(err, errlen, "the server refused protocol %d: %s",
			         RPC_PROTOCOL_VERSION, ei->message);
		else
			snprintf(err, errlen, "the server refused hello: %s (%s)", ei->message,
			         ei->name);
		rc = -(ei->err_no > 0 ? ei->err_no : EPROTO);
		free(ei);
		goto out;
	}
	memset(&info, 0, sizeof(info));
	struct rpc_hello h;
	if (rpc_decode_hello(resp.result, &h, err, errlen) < 0) {
		rc = -EPROTO;
		goto out;
	}
	if (h.protocol < RPC_PROTOCOL_MIN || h.protocol > RPC_PROTOCOL_VERSION) {
		snprintf(err, errlen,
		         "the server speaks protocol %lld and this flechefs protocol %d: they "
		         "cannot talk",
		         (long long)h.protocol, RPC_PROTOCOL_VERSION);
		rc = -EPROTO;
		goto out;
	}
	info.protocol = (int)h.protocol;
	copy_str(info.program, sizeof(info.program), h.program, h.program_len);
	copy_str(info.version, sizeof(info.version), h.version, h.version_len);
	copy_str(info.hostname, sizeof(info.hostname), h.hostname, h.hostname_len);
	info.read_only = h.read_only;
	info.max_frame = h.max_frame ? h.max_frame : RPC_MAX_FRAME_DEFAULT;
	if (info.max_frame < RPC_MAX_FRAME_MIN)
		info.max_frame = RPC_MAX_FRAME_MIN;
	info.max_read = h.max_read ? h.max_read : info.max_frame - RPC_RESPONSE_OVERHEAD;
	if (info.max_read > info.max_frame - RPC_RESPONSE_OVERHEAD)
		info.max_read = info.max_frame - RPC_RESPONSE_OVERHEAD;
	info.page_default = h.page_default ? h.page_default : RPC_PAGE_DEFAULT;
	info.page_max = h.page_max ? h.page_max : RPC_PAGE_MAX;
	info.views = h.views;
	copy_str(info.root, sizeof(info.root), h.root, h.root_len);
	copy_str(info.calls_type, sizeof(info.calls_type), h.calls_type, h.calls_type_len);
	info.presence_known = h.presence_known;
	info.calls_present = h.calls_present;
	info.values_present = h.values_present;
	info.fleche_toml = h.fleche_toml;
	if (strcmp(info.program, "flechefs-server") != 0)
		fsd_log(FSD_LOG_WARN, "the server calls itself '%s', not 'flechefs-server'",
		        info.program);
	if (strcmp(info.version, FLECHEFS_VERSION) != 0)
		fsd_log(FSD_LOG_WARN, "the server is version %s and this flechefs %s",
		        info.version[0] ? info.version : "(unknown)", FLECHEFS_VERSION);
	fsd_log(FSD_LOG_DEBUG,
	        "server %s %s on '%s': protocol %d, %s, calls in %s, max_read %u, page_max %u",
	        info.program, info.version, info.hostname, info.protocol,
	        info.read_only ? "read-only" : "read-write", info.calls_type, info.max_read,
	        info.page_max);
	c->info = info;
	rc = 0;
out:
	msgpack_zone_destroy(&zone);
	rpc_buf_release(&frame);
	msgpack_sbuffer_destroy(&sb);
	return rc;
}

/* --- the reader thread --- */

/*
 * Handles one frame: completes its request, which is `taken` when the caller took it
 * out of the table already (it must then be the frame's msgid). Returns 0, or
 * -EPROTO (the session is broken) with why set.
 */
static int conn_dispatch(struct fsd_conn *c, struct rpc_buf *frame, msgpack_zone *zone,
                         struct pending *taken, char *why, size_t whylen)
{
	struct rpc_response resp;
	char err[256];
	int rc = rpc_response_decode(frame->data, frame->len, zone, &resp, err, sizeof(err));
	if (rc < 0) {
		snprintf(why, whylen, "malformed answer from the server: %s", err);
		if (taken) {
			complete_local(taken->done, taken->ctx, EIO, why);
			free(taken);
		}
		return -EPROTO;
	}
	struct pending *p = taken;
	pthread_mutex_lock(&c->lock);
	if (!p)
		p = table_take(c, resp.msgid);
	conn_heard(c, p);
	pthread_mutex_unlock(&c->lock);
	if (!p) {
		/* Its deadline passed: the completion ran already. */
		fsd_log(FSD_LOG_DEBUG, "late answer to request %u ignored", resp.msgid);
		return 0;
	}
	struct fsd_reply r = {
	    .err = 0,
	    .result = resp.result,
	    .error = NULL,
	    .message = "",
	    .payload = frame->data,
	    .payload_len = frame->len,
	};
	struct rpc_error_info *ei = NULL;
	if (resp.error) {
		ei = malloc(sizeof(*ei));
		if (ei) {
			rpc_error_decode(resp.error, ei);
			/* The kernel takes no error of 512 or more in a reply (the request
			 * would never complete): an untrusted server's number is kept within. */
			r.err = ei->err_no > 0 && ei->err_no < 512 ? ei->err_no : EIO;
			r.error = ei;
			r.message = ei->message;
		} else {
			r.err = EIO;
			r.message = "out of memory decoding an error";
		}
		r.result = &conn_nil;
	}
	p->done(p->ctx, &r);
	free(ei);
	free(p);
	return 0;
}

/* --- splicing --- */

/* Reads exactly len bytes through conn_read_fn: 0, 1 at end of file before the first
 * byte, -EPIPE at end of file after it, or -errno. */
static int conn_read_full(struct fsd_conn *c, void *buf, size_t len)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = conn_read_fn(c, (char *)buf + got, len - got);
		if (n < 0)
			return (int)n;
		if (n == 0)
			return got ? -EPIPE : 1;
		got += (size_t)n;
	}
	return 0;
}

/*
 * Moves *len bytes from the transport's pipe `in` into c->spipe without copying them
 * (*len counts down what is left). Returns 0, -EPIPE at end of file, -ENOSPC when
 * c->spipe is full (the bytes moved so far stay there), -ETIMEDOUT when the server
 * sent nothing until deadline_ms (0: no deadline), or -errno.
 */
static int conn_splice_in(struct fsd_conn *c, int in, size_t *len, uint64_t deadline_ms)
{
	while (*len) {
		ssize_t k = splice(in, NULL, c->spipe[1], NULL, *len, SPLICE_F_NONBLOCK);
		if (k > 0) {
			*len -= (size_t)k;
			continue;
		}
		if (k == 0)
			return -EPIPE;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return -errno;
		/* Either nothing to read yet, or no room: wait for input, then look. */
		int wait = -1;
		if (deadline_ms) {
			uint64_t now = fsd_now_ms();
			if (now >= deadline_ms)
				return -ETIMEDOUT;
			wait = deadline_ms - now > 60000 ? 60000 : (int)(deadline_ms - now);
		}
		struct pollfd pin = {.fd = in, .events = POLLIN};
		int pr = poll(&pin, 1, wait);
		if (pr < 0 && errno != EINTR)
			return -errno;
		if (pr == 0)
			continue; /* the deadline is checked above */
		struct pollfd pout = {.fd = c->spipe[1], .events = POLLOUT};
		if (poll(&pout, 1, 0) == 0)
			return -ENOSPC;
	}
	return 0;
}

/* Empties c->spipe (what a completion left there), into c->rbuf (which is unused). */
static void conn_splice_drain(struct fsd_conn *c)
{
	int left = 0;
	while (ioctl(c->spipe[0], FIONREAD, &left) == 0 && left > 0) {
		ssize_t n = read(c->spipe[0], c->rbuf, CONN_RBUF);
		if (n <= 0 && errno != EINTR)
			break;
	}
	c->rpos = c->rlen = 0;
}

/* The msgid of a data answer's head [1, msgid, nil, bin32 len]: the number of bytes
 * of the msgid's encoding at head[2] (0 when it is not a uint). */
/*
 * Reads one frame while splicing is on, from the pipe `in`. A data answer to an
 * fsd_conn_send_data request, with a bin of a size that can be spliced, is handed to
 * its completion in c->spipe (returns 2); any other frame is read into `frame` as
 * rpc_frame_read does (returns 0, 1 at a clean end of file, or a negative code with a
 * message in err). A data answer whose bin cannot be spliced after all (the pipe is
 * full) is read back into `frame` and *taken is set to its request, for conn_dispatch.
 */
static int conn_read_frame_spliced(struct fsd_conn *c, int in, struct rpc_buf *frame,
                                   struct pending **taken, char *err, size_t errlen)
{
	uint8_t hdr[RPC_FRAME_HEADER], head[RPC_BIN_HEAD_MAX];
	uint32_t n;
	size_t got = 0;
	int back = 0; /* part of the frame waits in c->spipe */

	*taken = NULL;
	err[0] = 0;
	int r = conn_read_full(c, hdr, sizeof(hdr));
	r = rpc_frame_header_check(r, hdr, c->info.max_frame, &n, err, errlen);
	if (r != 0)
		return r;
	/* The head: [1, msgid, nil, bin32 len], 9 to 13 bytes (conn_read_fn reads at most
	 * CONN_HEAD_READ bytes ahead, which then wait in c->rbuf). */
	got = n < 3 ? n : 3;
	r = conn_read_full(c, head, got);
	size_t hlen = got == 3 ? rpc_bin_head_length(head) : 0;
	if (!r && hlen && n >= hlen) {
		r = conn_read_full(c, head + got, hlen - got);
		if (!r)
			got = hlen;
	}
	if (r) {
		snprintf(err, errlen, "truncated frame: %s",
		         r < 0 && r != -EPIPE ? strerror(-r) : "end of file inside a frame");
		return r < 0 && r != -EPIPE ? r : -EPROTO;
	}
	uint32_t msgid, blen;
	if (hlen && got == hlen && rpc_bin_head_parse(head, hlen, &msgid, &blen) == 0) {
		struct pending *p = NULL;
		if ((uint64_t)hlen + blen == n && blen >= CONN_SPLICE_MIN &&
		    blen <= c->splice_max && c->rlen - c->rpos <= CONN_HEAD_READ) {
			pthread_mutex_lock(&c->lock);
			for (p = c->bucket[msgid % CONN_BUCKETS]; p && p->msgid != msgid;
			     p = p->next)
				;
			p = p && p->data ? table_take(c, msgid) : NULL;
			if (p)
				conn_heard(c, p);
			pthread_mutex_unlock(&c->lock);
		}
		if (p) {
			/* The few bytes of the bin read with the head go first. */
			size_t ahead = c->rlen - c->rpos;
			r = 0;
			if (ahead) {
				ssize_t k = write(c->spipe[1], c->rbuf + c->rpos, ahead);
				r = k == (ssize_t)ahead ? 0 : k < 0 ? -errno : -ENOSPC;
				c->rpos = c->rlen = 0;
			}
			size_t left = blen - ahead;
			if (!r)
				r = conn_splice_in(c, in, &left, p->deadline_ms);
			if (r == -ETIMEDOUT) {
				/* The server stopped in the middle of the bytes: the request
				 * is out of the table, so the timer cannot fail it; fail it
				 * here at its deadline, then take the rest of the frame as
				 * the reader takes any frame (waiting as long as it takes). */
				snprintf(err, errlen, "no answer from the server within %d s",
				         c->opt.timeout);
				fsd_log(FSD_LOG_WARN, "%s", err);
				complete_local(p->done, p->ctx, ETIMEDOUT, err);
				free(p);
				p = NULL;
				r = conn_splice_in(c, in, &left, 0);
				if (!r) {
					conn_splice_drain(c);
					return 2;
				}
			}
			if (p && !r) {
				struct fsd_reply rep = {
				    .err = 0,
				    .result = &conn_nil,
				    .message = "",
				    .in_pipe = true,
				    .data_fd = c->spipe[0],
				    .data_len = blen,
				};
				p->done(p->ctx, &rep);
				free(p);
				conn_splice_drain(c);
				return 2;
			}
			if (r != -ENOSPC) {
				snprintf(err, errlen, "truncated frame: %s",
				         r == -EPIPE ? "end of file inside a frame" : strerror(-r));
				if (p)
					complete_local(p->done, p->ctx, EIO, err);
				free(p);
				conn_splice_drain(c);
				return r == -EPIPE ? -EPROTO : r;
			}
			/* No room after all: take back what was moved, read the rest below
			 * (an answer whose request timed out meanwhile is then ignored). */
			*taken = p;
			back = 1;
		}
	}
	frame->max = frame->max < n ? n : frame->max;
	rpc_buf_reset(frame);
	if (rpc_buf_reserve(frame, n)) {
		snprintf(err, errlen, "cannot allocate a frame of %u bytes", n);
		r = -ENOMEM;
		goto fail;
	}
	memcpy(frame->data, head, got);
	while (back && got < n) {
		int left = 0;
		if (ioctl(c->spipe[0], FIONREAD, &left) < 0 || left <= 0)
			break;
		ssize_t k = read(c->spipe[0], frame->data + got,
		                 (size_t)left < n - got ? (size_t)left : n - got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	r = conn_read_full(c, frame->data + got, n - got);
	if (r) {
		snprintf(err, errlen, "truncated frame: %s",
		         r < 0 && r != -EPIPE ? strerror(-r) : "end of file inside a frame");
		r = r < 0 && r != -EPIPE ? r : -EPROTO;
		goto fail;
	}
	frame->len = n;
	frame->data[n] = 0;
	return 0;
fail:
	if (*taken) {
		complete_local((*taken)->done, (*taken)->ctx, EIO, err);
		free(*taken);
		*taken = NULL;
	}
	if (back)
		conn_splice_drain(c);
	return r;
}

long fsd_conn_set_splice(struct fsd_conn *c, size_t max)
{
	if (atomic_load(&c->splice_on))
		return (long)c->splice_max;
	if (c->spipe[0] < 0 && pipe2(c->spipe, O_CLOEXEC) < 0)
		return -errno;
	/* Twice the bytes: a bin straddles partly filled pages of the transport's pipe,
	 * each of which takes a slot of its own. */
	int got = -1;
	for (size_t want = 2 * max; got < 0 && want >= 2 * CONN_SPLICE_MIN; want /= 2)
		got = fcntl(c->spipe[0], F_SETPIPE_SZ, (int)want);
	if (got < 0)
		got = fcntl(c->spipe[0], F_GETPIPE_SZ);
	if (got < 0)
		return -errno;
	c->splice_max = (size_t)got / 2;
	if (c->splice_max < CONN_SPLICE_MIN || c->splice_max < max / 2)
		return -ENOSPC;
	if (c->splice_max > max)
		c->splice_max = max;
	atomic_store(&c->splice_on, 1);
	fsd_log(FSD_LOG_DEBUG, "values of %zu to %zu bytes are spliced", (size_t)CONN_SPLICE_MIN,
	        c->splice_max);
	return (long)c->splice_max;
}

static void conn_set_down(struct fsd_conn *c, const char *why)
{
	struct fsd_transport *t;

	pthread_mutex_lock(&c->lock);
	c->state = CONN_DOWN;
	snprintf(c->why, sizeof(c->why), "%s", why);
	struct pending *list = table_take_all(c, 0);
	pthread_mutex_unlock(&c->lock);
	fail_list(list, EIO, why);

	pthread_mutex_lock(&c->wlock);
	t = c->t;
	c->t = NULL;
	pthread_mutex_unlock(&c->wlock);
	if (t)
		t->ops->free(t);
	c->rt = NULL;
}

static void *reader_main(void *arg)
{
	struct fsd_conn *c = arg;
	struct rpc_buf frame = RPC_BUF_INIT(RPC_MAX_FRAME_DEFAULT);
	msgpack_zone zone;
	char err[256], why[1024];
	unsigned backoff = 1;

	msgpack_zone_init(&zone, 64 * 1024);
	for (;;) {
		/* UP: read answers until the transport ends. */
		for (;;) {
			struct pending *taken = NULL;
			int in = c->rt->ops->read_pipe ? c->rt->ops->read_pipe(c->rt) : -1;
			c->exact = in >= 0 && atomic_load(&c->splice_on);
			int rc = c->exact ? conn_read_frame_spliced(c, in, &frame, &taken, err,
			                                            sizeof(err))
			                  : rpc_frame_read(conn_read_fn, c, c->info.max_frame,
			                                   &frame, err, sizeof(err));
			if (rc == 2)
				continue; /* handed over in the pipe */
			if (rc == 1) {
				snprintf(why, sizeof(why), "the server closed the connection");
				break;
			}
			if (rc < 0) {
				snprintf(why, sizeof(why), "%s", err);
				break;
			}
			rc = conn_dispatch(c, &frame, &zone, taken, why, sizeof(why));
			if (taken)
				conn_splice_drain(c);
			msgpack_zone_clear(&zone);
			if (rc < 0)
				break;
			/* Keep big frame buffers from lingering after a large value. */
			if (frame.cap > 4 * 1024 * 1024)
				rpc_buf_release(&frame);
		}
		pthread_mutex_lock(&c->lock);
		int closing = c->closing;
		pthread_mutex_unlock(&c->lock);
		if (!closing) {
			c->rt->ops->shutdown(c->rt);
			append_exit(c->rt, why, sizeof(why));
			fsd_log(FSD_LOG_ERR, "connection to the server lost: %s", why);
		} else {
			snprintf(why, sizeof(why), "the mount is closing");
		}
		conn_set_down(c, why);

		/* DOWN: reconnect when a person is not needed. */
		int up = 0;
		while (!up) {
			pthread_mutex_lock(&c->lock);
			closing = c->closing;
			pthread_mutex_unlock(&c->lock);
			if (closing || !c->connector->can_reconnect ||
			    !c->connector->can_reconnect(c->connector))
				break;
			struct timespec ts;
			abs_time(&ts, backoff * 1000ull);
			pthread_mutex_lock(&c->lock);
			while (!c->closing &&
			       pthread_cond_timedwait(&c->tick, &c->lock, &ts) != ETIMEDOUT)
				;
			closing = c->closing;
			pthread_mutex_unlock(&c->lock);
			if (closing)
				break;
			backoff = backoff * 2 > CONN_BACKOFF_MAX ? CONN_BACKOFF_MAX : backoff * 2;
			struct fsd_transport *t = NULL;
			if (c->connector->connect(c->connector, 0, &t, err, sizeof(err)) < 0) {
				fsd_log(FSD_LOG_WARN, "reconnecting failed: %s", err);
				continue;
			}
			if (conn_handshake(c, t, why, sizeof(why)) < 0) {
				fsd_log(FSD_LOG_WARN, "reconnecting failed: %s", why);
				t->ops->shutdown(t);
				t->ops->free(t);
				c->rt = NULL;
				continue;
			}
			pthread_mutex_lock(&c->wlock);
			c->t = t;
			pthread_mutex_unlock(&c->wlock);
			pthread_mutex_lock(&c->lock);
			c->state = c->closing ? CONN_DOWN : CONN_UP;
			up = c->state == CONN_UP;
			c->why[0] = 0;
			c->stalled = 0;
			c->heard_ms = fsd_now_ms();
			pthread_cond_broadcast(&c->space);
			pthread_mutex_unlock(&c->lock);
			if (!up) {
				conn_set_down(c, "the mount is closing");
				break;
			}
			backoff = 1;
			fsd_log(FSD_LOG_INFO, "reconnected to the server");
		}
		if (!up)
			break;
	}
	pthread_mutex_lock(&c->lock);
	c->state = CONN_DEAD;
	int closing = c->closing;
	pthread_mutex_unlock(&c->lock);
	if (!closing && c->opt.on_down)
		c->opt.on_down(c->opt.ctx, c->why);
	msgpack_zone_destroy(&zone);
	rpc_buf_release(&frame);
	return NULL;
}

/* --- the timer thread --- */

static void *timer_main(void *arg)
{
	struct fsd_conn *c = arg;
	char msg[128];

	snprintf(msg, sizeof(msg), "no answer from the server within %d s", c->opt.timeout);
	pthread_mutex_lock(&c->lock);
	while (!c->closing) {
		struct timespec ts;
		abs_time(&ts, 250);
		pthread_cond_timedwait(&c->tick, &c->lock, &ts);
		if (c->closing)
			break;
		if (c->writing && (uint64_t)fsd_now_ms() > c->writing_deadline_ms) {
			/* invariant 7: the transport lives while c->writing names it */
			fsd_log(FSD_LOG_WARN,
			        "the server has taken no request for %d s: "
			        "dropping the connection",
			        c->opt.timeout);
			c->writing->ops->shutdown(c->writing);
			c->writing = NULL;
		}
		uint64_t now = fsd_now_ms();
		struct pending *list = c->npending ? table_take_all(c, now) : NULL;
		int stall = 0;
		for (struct pending *p = list; p && !c->stalled && !stall; p = p->next)
			stall = now - p->sent_ms >= (uint64_t)c->opt.timeout * 1000 &&
			        (p->seq > c->answered_seq ||
			         now - c->heard_ms >= (uint64_t)c->opt.timeout * 1000 / 2);
		if (stall) {
			/* invariant 8: nothing behind it was answered; what waits behind it
			 * fails now rather than each at its own deadline */
			c->stalled = 1;
			struct pending **end = &list;
			while (*end)
				end = &(*end)->next;
			*end = table_take_all(c, 0);
		}
		if (list) {
			pthread_mutex_unlock(&c->lock);
			fsd_log(FSD_LOG_WARN, "%s", msg);
			if (stall)
				fsd_log(FSD_LOG_WARN,
				        "the server took no request behind it: requests fail at once "
				        "until it answers again");
			fail_list(list, ETIMEDOUT, msg);
			pthread_mutex_lock(&c->lock);
		}
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

/* --- life cycle --- */

struct fsd_conn *fsd_conn_new(struct fsd_connector *connector, const struct fsd_conn_options *o)
{
	struct fsd_conn *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->rbuf = malloc(CONN_RBUF);
	if (!c->rbuf) {
		free(c);
		return NULL;
	}
	c->connector = connector;
	if (o)
		c->opt = *o;
	if (c->opt.timeout <= 0)
		c->opt.timeout = CONN_DEFAULT_TIMEOUT;
	if (!c->opt.max_inflight)
		c->opt.max_inflight = CONN_DEFAULT_INFLIGHT;
	pthread_mutex_init(&c->lock, NULL);
	pthread_mutex_init(&c->wlock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->space, &ca);
	pthread_cond_init(&c->tick, &ca);
	pthread_condattr_destroy(&ca);
	c->state = CONN_IDLE;
	c->next_msgid = 1;
	c->spipe[0] = c->spipe[1] = -1;
	return c;
}

int fsd_conn_start(struct fsd_conn *c, int interactive, char *err, size_t errlen)
{
	struct fsd_transport *t = NULL;
	int rc = c->connector->connect(c->connector, interactive, &t, err, errlen);
	if (rc < 0)
		return rc;
	rc = conn_handshake(c, t, err, errlen);
	if (rc < 0) {
		t->ops->shutdown(t);
		t->ops->free(t);
		c->rt = NULL;
		return rc;
	}
	c->t = t;
	c->state = CONN_UP;
	c->heard_ms = fsd_now_ms();
	if (pthread_create(&c->reader, NULL, reader_main, c) != 0) {
		snprintf(err, errlen, "cannot start the reader thread");
		goto fail;
	}
	c->reader_started = 1;
	if (pthread_create(&c->timer, NULL, timer_main, c) != 0) {
		snprintf(err, errlen, "cannot start the timer thread");
		goto fail;
	}
	c->timer_started = 1;
	return 0;
fail:
	fsd_conn_close(c);
	return -EAGAIN;
}

const struct fsd_server_info *fsd_conn_server(struct fsd_conn *c)
{
	return &c->info;
}

void fsd_conn_settle_log(struct fsd_conn *c, int timeout_ms)
{
	pthread_mutex_lock(&c->wlock);
	if (c->t && c->t->ops->settle_log)
		c->t->ops->settle_log(c->t, timeout_ms);
	pthread_mutex_unlock(&c->wlock);
}

int fsd_conn_is_up(struct fsd_conn *c)
{
	pthread_mutex_lock(&c->lock);
	int up = c->state == CONN_UP;
	pthread_mutex_unlock(&c->lock);
	return up;
}

void fsd_conn_close(struct fsd_conn *c)
{
	pthread_mutex_lock(&c->lock);
	c->closing = 1;
	pthread_cond_broadcast(&c->tick);
	pthread_cond_broadcast(&c->space);
	pthread_mutex_unlock(&c->lock);
	pthread_mutex_lock(&c->wlock);
	if (c->t)
		c->t->ops->shutdown(c->t);
	pthread_mutex_unlock(&c->wlock);
	if (c->reader_started) {
		pthread_join(c->reader, NULL);
		c->reader_started = 0;
	}
	if (c->timer_started) {
		pthread_join(c->timer, NULL);
		c->timer_started = 0;
	}
	if (c->t) /* never started a reader */
		conn_set_down(c, "the mount is closing");
	pthread_mutex_lock(&c->lock);
	c->state = CONN_DEAD;
	pthread_mutex_unlock(&c->lock);
}

void fsd_conn_free(struct fsd_conn *c)
{
	if (!c)
		return;
	fsd_conn_close(c);
	pthread_cond_destroy(&c->space);
	pthread_cond_destroy(&c->tick);
	pthread_mutex_destroy(&c->lock);
	pthread_mutex_destroy(&c->wlock);
	for (int i = 0; i < 2; i++)
		if (c->spipe[i] >= 0)
			close(c->spipe[i]);
	free(c->rbuf);
	free(c);
}

/* --- the local connector --- */

struct spawn_connector {
	struct fsd_connector base;
	char **argv;
};

static int spawn_connect(struct fsd_connector *base, int interactive, struct fsd_transport **out,
                         char *err, size_t errlen)
{
	struct spawn_connector *s = (struct spawn_connector *)base;
	return fsd_transport_spawn(s->argv, out, err, errlen);
}

static int spawn_can_reconnect(struct fsd_connector *base)
{
	return 0;
}

static void spawn_connector_free(struct fsd_connector *base)
{
	struct spawn_connector *s = (struct spawn_connector *)base;
	if (!s)
		return;
	for (size_t i = 0; s->argv && s->argv[i]; i++)
		free(s->argv[i]);
	free(s->argv);
	free(s);
}

struct fsd_connector *fsd_spawn_connector_new(char *const argv[])
{
	size_t n = 0;
	while (argv[n])
		n++;
	struct spawn_connector *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->argv = calloc(n + 1, sizeof(char *));
	if (!s->argv)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		s->argv[i] = strdup(argv[i]);
		if (!s->argv[i])
			goto fail;
	}
	s->base.connect = spawn_connect;
	s->base.can_reconnect = spawn_can_reconnect;
	s->base.free = spawn_connector_free;
	return &s->base;
fail:
	spawn_connector_free(&s->base);
	return NULL;
}

/*
 * serve.c: flechefs-server's loop over its two file descriptors (srv_serve): one
 * reader, a pool of worker threads that answer requests (dispatch.c), and one writer
 * at a time that writes whole response frames, each as soon as it is ready, so that
 * one slow request (inflating a large gzip value, a query over many records, a
 * database kept busy by a writer) does not hold up the others. Responses may
 * therefore leave in another order than their requests came (PROTOCOL.md section 2).
 *
 * Invariants:
 *   1. The reader (the thread that called srv_serve) only reads frames, checks that
 *      each can be answered (a readable msgid; otherwise the session ends, as
 *      PROTOCOL.md section 2 says) and queues it. Until hello has succeeded it
 *      answers requests itself, in order, so that hello-first holds without a race;
 *      from then on every request is answered by a worker.
 *   2. Bounded memory: at most SRV_MAX_IN_FLIGHT requests are read and not yet
 *      answered, and at most SRV_MAX_QUEUED_BYTES of their frames wait in the queue
 *      (the reader stops reading until there is room, plus the one frame it is
 *      reading); at most SRV_WORKERS_MAX workers each hold one answer (at most
 *      max_frame bytes); answers waiting to be written take at most
 *      max(SRV_OUT_QUEUED_MAX, max_frame) bytes besides the ones being written
 *      (workers wait for room).
 *   3. Whole frames: the output fd is written by one thread at a time (the one that
 *      set `writing`), always whole frames; a zero-copy answer's value bytes follow
 *      its frame head in the same writev, and its value stays open until written.
 *      A worker that finds the writer busy leaves its frame in `pending`, which the
 *      writer writes before it lets go (so every answer is written without waiting
 *      for more input, and answers that are ready together go in one write).
 *   4. Workers are started when a request is queued and no worker is idle, up to
 *      SRV_WORKERS_MAX, and live until the session ends; srv_serve joins them all
 *      after the queue is drained: every request read before the end of input (or
 *      before a malformed frame) is answered.
 *   5. A write error ends the session: later answers are dropped, the reader stops
 *      at its next frame.
 */
#include "dispatch.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "buf.h"
#include "frame.h"
#include "msg.h"

/* Threads answering requests at once. */
#define SRV_WORKERS_MAX 16
/* Requests read and not yet answered. */
#define SRV_MAX_IN_FLIGHT 256
/* Bytes of request frames waiting for a worker. */
#define SRV_MAX_QUEUED_BYTES (64u * 1024 * 1024)
/* Bytes of answers waiting for the writer (beyond one frame of any size). */
#define SRV_OUT_QUEUED_MAX (4u * 1024 * 1024)
/* A worker lets go of its answer buffer after an answer larger than this. */
#define SRV_KEEP_BUFFER (2u * 1024 * 1024)
/* Read requests from the input fd in chunks of this size. */
#define SRV_READ_CHUNK (256u * 1024)
/* Pipe buffer size asked for on pipes (the kernel may give less). */
#define SRV_PIPE_SIZE (1024 * 1024)

/* A request waiting for a worker: its frame's payload. */
struct job {
	struct job *next;
	size_t len;
	uint8_t msg[];
};

struct pool {
	struct srv_session *s;

	/* the queue (lock) */
	pthread_mutex_t lock;
	pthread_cond_t work; /* a job was queued, or stopping */
	pthread_cond_t room; /* a request was answered, or fatal */
	struct job *head, *tail;
	size_t queued;        /* jobs in the queue */
	size_t queued_bytes;  /* their payload bytes */
	size_t in_flight;     /* read and not yet answered (queued or running) */
	size_t idle;          /* workers waiting for a job */
	size_t nthreads;
	pthread_t threads[SRV_WORKERS_MAX];
	bool stopping;
	bool fatal; /* the session ends: a write error or an answer that could not be packed */

	/* the output (out_lock): invariant 3 */
	pthread_mutex_t out_lock;
	pthread_cond_t out_cv; /* writing became false, or pending shrank */
	int out_fd;
	bool writing;
	msgpack_sbuffer pending;  /* whole frames waiting for the writer */
	msgpack_sbuffer writebuf; /* the writer's: frames being written */
	int write_errno;          /* first write error, 0 while none */
};

/* Writes iov[0..n) whole; 0 or -errno. */
static int write_all(int fd, struct iovec *iov, int n)
{
	while (n > 0) {
		ssize_t w = writev(fd, iov, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		while (n > 0 && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (char *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	return 0;
}

/*
 * Writes data[0..len) and then tail[0..tail_len) as the writer: out_lock held on
 * entry and on return, released meanwhile; p->writing is set by the caller.
 */
static void write_locked(struct pool *p, const void *data, size_t len, const uint8_t *tail,
                         size_t tail_len)
{
	struct iovec iov[2] = {
	    {.iov_base = (void *)data, .iov_len = len},
	    {.iov_base = (void *)tail, .iov_len = tail_len},
	};
	int r = 0;

	if (p->write_errno)
		return; /* invariant 5: drop */
	pthread_mutex_unlock(&p->out_lock);
	r = write_all(p->out_fd, iov, tail_len ? 2 : 1);
	pthread_mutex_lock(&p->out_lock);
	if (r < 0 && !p->write_errno)
		p->write_errno = -r;
}

/* Writes what is pending until nothing is, unless another thread is the writer. */
static void drain_pending_locked(struct pool *p)
{
	while (!p->writing && p->pending.size > 0) {
		msgpack_sbuffer t = p->writebuf;
		p->writebuf = p->pending;
		p->pending = t;
		p->writing = true;
		pthread_cond_broadcast(&p->out_cv); /* pending is empty: room */
		write_locked(p, p->writebuf.data, p->writebuf.size, NULL, 0);
		msgpack_sbuffer_clear(&p->writebuf);
		if (p->writebuf.alloc > SRV_OUT_QUEUED_MAX + SRV_KEEP_BUFFER) {
			free(p->writebuf.data);
			p->writebuf.data = NULL;
			p->writebuf.alloc = 0;
		}
		p->writing = false;
		pthread_cond_broadcast(&p->out_cv);
	}
}

/*
 * Sends one answer: the whole frames in out, then (zero copy) tail[0..tail_len), which
 * stays valid until this returns. Returns 0, or -1 once the output has failed.
 */
static int send_answer(struct pool *p, const msgpack_sbuffer *out, const uint8_t *tail,
                       size_t tail_len)
{
	int ret;

	pthread_mutex_lock(&p->out_lock);
	if (!tail_len && !p->writing && p->pending.size == 0) {
		/* nothing else waits: write straight from the worker's buffer */
		p->writing = true;
		write_locked(p, out->data, out->size, NULL, 0);
		p->writing = false;
		pthread_cond_broadcast(&p->out_cv);
	} else if (!tail_len) {
		/* invariant 2: wait for room unless the queue is empty */
		while (p->pending.size > 0 && p->pending.size + out->size > SRV_OUT_QUEUED_MAX &&
		       !p->write_errno)
			pthread_cond_wait(&p->out_cv, &p->out_lock);
		if (!p->write_errno && msgpack_sbuffer_write(&p->pending, out->data, out->size) != 0)
			p->write_errno = ENOMEM;
	} else {
		/* the value's bytes go out from where they are: become the writer */
		while (p->writing)
			pthread_cond_wait(&p->out_cv, &p->out_lock);
		p->writing = true;
		if (p->pending.size > 0) {
			msgpack_sbuffer t = p->writebuf;
			p->writebuf = p->pending;
			p->pending = t;
			pthread_cond_broadcast(&p->out_cv);
			write_locked(p, p->writebuf.data, p->writebuf.size, NULL, 0);
			msgpack_sbuffer_clear(&p->writebuf);
		}
		write_locked(p, out->data, out->size, tail, tail_len);
		p->writing = false;
		pthread_cond_broadcast(&p->out_cv);
	}
	drain_pending_locked(p);
	ret = p->write_errno ? -1 : 0;
	pthread_mutex_unlock(&p->out_lock);
	return ret;
}

/* Marks the session as ending (invariant 5); the reader notices at its next frame. */
static void set_fatal(struct pool *p)
{
	pthread_mutex_lock(&p->lock);
	p->fatal = true;
	pthread_cond_broadcast(&p->room);
	pthread_mutex_unlock(&p->lock);
}

/* Answers one request through w and sends the answer; false when the session ends. */
static bool answer_one(struct pool *p, struct srv_worker *w, msgpack_sbuffer *out,
                       const void *msg, size_t len)
{
	char err[512] = "";
	const uint8_t *tail;
	size_t tail_len;
	int r, sent;

	msgpack_sbuffer_clear(out);
	r = srv_worker_handle(p->s, w, msg, len, out, err, sizeof(err));
	tail = srv_worker_tail(w, &tail_len);
	sent = out->size || tail_len ? send_answer(p, out, tail, tail_len) : 0;
	srv_worker_tail_done(w);
	if (out->alloc > SRV_KEEP_BUFFER) {
		free(out->data);
		out->data = NULL;
		out->alloc = 0;
		out->size = 0;
	}
	if (r < 0)
		fprintf(stderr, "flechefs-server: ending the session: %s\n", err);
	return r == 0 && sent == 0;
}

static void *worker_main(void *arg)
{
	struct pool *p = arg;
	struct srv_worker *w = srv_worker_new();
	msgpack_sbuffer out;

	msgpack_sbuffer_init(&out);
	pthread_mutex_lock(&p->lock);
	for (;;) {
		struct job *j;

		while (!p->head && !p->stopping) {
			p->idle++;
			pthread_cond_wait(&p->work, &p->lock);
			p->idle--;
		}
		if (!p->head)
			break; /* stopping, and the queue is drained */
		j = p->head;
		p->head = j->next;
		if (!p->head)
			p->tail = NULL;
		p->queued--;
		p->queued_bytes -= j->len;
		pthread_mutex_unlock(&p->lock);

		bool ok;
		if (w) {
			ok = answer_one(p, w, &out, j->msg, j->len);
		} else {
			fprintf(stderr, "flechefs-server: ending the session: %s\n",
			        strerror(ENOMEM));
			ok = false;
		}
		free(j);
		if (!ok)
			set_fatal(p);

		pthread_mutex_lock(&p->lock);
		p->in_flight--;
		pthread_cond_signal(&p->room);
	}
	pthread_mutex_unlock(&p->lock);
	msgpack_sbuffer_destroy(&out);
	srv_worker_free(w);
	return NULL;
}

/* Queues msg[0..len) for a worker, starting one if none is idle (invariant 4). */
static int enqueue(struct pool *p, const void *msg, size_t len)
{
	struct job *j = malloc(sizeof(*j) + len);
	int r = 0;

	if (!j)
		return -ENOMEM;
	j->next = NULL;
	j->len = len;
	memcpy(j->msg, msg, len);
	pthread_mutex_lock(&p->lock);
	if (p->tail)
		p->tail->next = j;
	else
		p->head = j;
	p->tail = j;
	p->queued++;
	p->queued_bytes += len;
	p->in_flight++;
	if (p->queued > p->idle && p->nthreads < SRV_WORKERS_MAX) {
		r = -pthread_create(&p->threads[p->nthreads], NULL, worker_main, p);
		if (r == 0)
			p->nthreads++;
		else if (p->nthreads > 0)
			r = 0; /* the workers there are will get to it */
	}
	if (r == 0)
		pthread_cond_signal(&p->work);
	pthread_mutex_unlock(&p->lock);
	return r;
}

/* Waits until there is room for one more request (invariant 2); false when fatal. */
static bool wait_room(struct pool *p)
{
	bool ok;

	pthread_mutex_lock(&p->lock);
	while (!p->fatal &&
	       (p->in_flight >= SRV_MAX_IN_FLIGHT || p->queued_bytes >= SRV_MAX_QUEUED_BYTES))
		pthread_cond_wait(&p->room, &p->lock);
	ok = !p->fatal;
	pthread_mutex_unlock(&p->lock);
	return ok;
}

/* Lets the workers drain the queue and joins them. */
static void pool_stop(struct pool *p)
{
	pthread_mutex_lock(&p->lock);
	p->stopping = true;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->lock);
	for (size_t i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	p->nthreads = 0;
	/* left only when no worker could be started: unanswerable, as the session ends */
	while (p->head) {
		struct job *j = p->head;
		p->head = j->next;
		free(j);
	}
	p->tail = NULL;
}

/* ---- the reader ---- */

struct input {
	int fd;
	char *buf;
	size_t pos, len;
};

static ssize_t read_some(int fd, void *buf, size_t len)
{
	for (;;) {
		ssize_t n = read(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		return n < 0 ? -errno : n;
	}
}

/* rpc_read_fn: serves bytes already read, else reads the next chunk. */
static ssize_t input_read(void *ctx, void *buf, size_t len)
{
	struct input *in = ctx;
	ssize_t n;

	if (in->pos == in->len) {
		in->pos = in->len = 0;
		if (len >= SRV_READ_CHUNK)
			return read_some(in->fd, buf, len); /* large payloads: no copy */
		n = read_some(in->fd, in->buf, SRV_READ_CHUNK);
		if (n <= 0)
			return n;
		in->len = (size_t)n;
	}
	n = (ssize_t)(in->len - in->pos < len ? in->len - in->pos : len);
	memcpy(buf, in->buf + in->pos, (size_t)n);
	in->pos += (size_t)n;
	return n;
}

static void grow_pipe(int fd)
{
	struct stat st;
	if (fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode))
		(void)fcntl(fd, F_SETPIPE_SZ, SRV_PIPE_SIZE);
}

/* True when msg[0..len) can be answered (a readable msgid); else a message in err. */
static bool answerable(msgpack_zone *zone, const void *msg, size_t len, char *err, size_t errlen)
{
	struct rpc_request req;
	bool have_msgid = false;
	char derr[256] = "";

	msgpack_zone_clear(zone);
	if (rpc_request_decode(msg, len, zone, &req, &have_msgid, derr, sizeof(derr)) == 0 ||
	    have_msgid)
		return true;
	snprintf(err, errlen, "malformed message: %s", derr[0] ? derr : "not a request");
	return false;
}

int srv_serve(struct srv_cache *cache, const struct srv_serve_options *opt, int in_fd, int out_fd)
{
	struct pool p;
	struct input in = {.fd = in_fd};
	struct srv_worker *own = NULL;
	msgpack_sbuffer out;
	msgpack_zone zone;
	bool zone_ok;
	struct rpc_buf frame;
	char err[512];
	int ret = -1, r;

	memset(&p, 0, sizeof(p));
	pthread_mutex_init(&p.lock, NULL);
	pthread_cond_init(&p.work, NULL);
	pthread_cond_init(&p.room, NULL);
	pthread_mutex_init(&p.out_lock, NULL);
	pthread_cond_init(&p.out_cv, NULL);
	p.out_fd = out_fd;
	msgpack_sbuffer_init(&p.pending);
	msgpack_sbuffer_init(&p.writebuf);
	msgpack_sbuffer_init(&out);
	zone_ok = msgpack_zone_init(&zone, 64 * 1024);
	p.s = srv_session_new(cache, opt);
	rpc_buf_init(&frame, p.s ? srv_session_max_frame(p.s) : 0);
	in.buf = malloc(SRV_READ_CHUNK);
	own = srv_worker_new();
	if (!p.s || !in.buf || !own || !zone_ok) {
		fprintf(stderr, "flechefs-server: cannot start a session: %s\n", strerror(ENOMEM));
		goto out;
	}
	grow_pipe(out_fd);
	grow_pipe(in_fd);

	for (;;) {
		if (!wait_room(&p))
			break; /* a worker said why */
		err[0] = '\0';
		r = rpc_frame_read(input_read, &in, srv_session_max_frame(p.s), &frame, err,
		                   sizeof(err));
		if (r == 1) {
			ret = 0;
			break;
		}
		if (r < 0) {
			if (r == -EIO || r == -EBADF || (!err[0] && r != -EPROTO))
				fprintf(stderr, "flechefs-server: cannot read standard input: %s\n",
				        err[0] ? err : strerror(-r));
			else
				fprintf(stderr, "flechefs-server: ending the session: %s\n",
				        err[0] ? err : strerror(-r));
			break;
		}
		if (!answerable(&zone, frame.data, frame.len, err, sizeof(err))) {
			fprintf(stderr, "flechefs-server: ending the session: %s\n", err);
			break;
		}
		if (!srv_session_ready(p.s)) {
			/* invariant 1: before hello, in order, here */
			if (!answer_one(&p, own, &out, frame.data, frame.len))
				break;
			continue;
		}
		r = enqueue(&p, frame.data, frame.len);
		if (r < 0) {
			fprintf(stderr, "flechefs-server: ending the session: cannot queue a "
			                "request: %s\n",
			        strerror(-r));
			break;
		}
	}
	/* invariant 4: every request read is answered before the session ends */
	pool_stop(&p);
	if (p.fatal || p.write_errno)
		ret = -1;
	if (p.write_errno)
		fprintf(stderr, "flechefs-server: cannot write to standard output: %s\n",
		        strerror(p.write_errno));
out:
	pool_stop(&p);
	rpc_buf_release(&frame);
	msgpack_sbuffer_destroy(&out);
	msgpack_sbuffer_destroy(&p.pending);
	msgpack_sbuffer_destroy(&p.writebuf);
	if (zone_ok)
		msgpack_zone_destroy(&zone);
	free(in.buf);
	srv_worker_free(own);
	srv_session_free(p.s);
	pthread_cond_destroy(&p.out_cv);
	pthread_mutex_destroy(&p.out_lock);
	pthread_cond_destroy(&p.room);
	pthread_cond_destroy(&p.work);
	pthread_mutex_destroy(&p.lock);
	return ret;
}

/*
 * dispatch.h: the request side of flechefs-server. A session reads request frames,
 * looks each method up in a handler table, checks its parameters, asks the cache
 * (cache.h) and packs the answer as a response frame (PROTOCOL.md sections 2 to 6).
 * srv_serve (serve.c) runs a whole session over two file descriptors, answering on
 * worker threads; srv_session_handle answers one frame payload without any I/O (for
 * tests and fuzzing).
 */
#ifndef FLECHEFS_SERVER_DISPATCH_H
#define FLECHEFS_SERVER_DISPATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "cache.h"

struct srv_serve_options {
	uint32_t max_frame; /* largest frame read or written; 0: RPC_MAX_FRAME_DEFAULT */
	/*
	 * The cache's configuration as resolved from fleche.toml (flecheconfig.h's
	 * fcfg_pack: one msgpack map), answered as hello's and info's "config" field;
	 * NULL when the cache was given by paths. Borrowed: it must outlive the session.
	 */
	const void *config;
	size_t config_len;
};

struct srv_session;

/*
 * A session answering requests about cache (borrowed: it must outlive the session).
 * Returns NULL when out of memory or when opt->max_frame is outside
 * [RPC_MAX_FRAME_MIN, RPC_MAX_FRAME_LIMIT]. Caller frees with srv_session_free.
 */
struct srv_session *srv_session_new(struct srv_cache *cache, const struct srv_serve_options *opt);
void srv_session_free(struct srv_session *s);

/*
 * Handles one frame payload msg[0..len): appends at most one response frame to out.
 * Returns 0 when the session goes on, or -EPROTO when the message cannot be answered
 * (no readable msgid) and the session must end (a message in err), or -ENOMEM when
 * even an error response could not be packed. One thread at a time per session (it
 * answers through the session's own worker).
 */
int srv_session_handle(struct srv_session *s, const void *msg, size_t len, msgpack_sbuffer *out,
                       char *err, size_t errlen);

/* The session's frame limit (bytes). */
uint32_t srv_session_max_frame(const struct srv_session *s);
/* True once hello has succeeded (it never becomes false again). */
bool srv_session_ready(const struct srv_session *s);

/*
 * A worker: what one thread needs to answer requests of a session, so that several
 * threads may answer requests of one session at once, each through its own worker.
 * Workers from srv_worker_new answer large load_value ranges with zero copy: after
 * srv_worker_handle, srv_worker_tail gives bytes that follow the response frame's
 * packed part (its last bytes, a bin header), borrowed until srv_worker_tail_done,
 * which must be called before the worker handles its next request.
 * srv_worker_new returns NULL when out of memory; caller frees with srv_worker_free.
 */
struct srv_worker;
struct srv_worker *srv_worker_new(void);
void srv_worker_free(struct srv_worker *w);
/* As srv_session_handle, through worker w. */
int srv_worker_handle(struct srv_session *s, struct srv_worker *w, const void *msg, size_t len,
                      msgpack_sbuffer *out, char *err, size_t errlen);
/* The zero-copy bytes of the last answer (NULL and *len 0 when none). */
const uint8_t *srv_worker_tail(const struct srv_worker *w, size_t *len);
void srv_worker_tail_done(struct srv_worker *w);

/*
 * Serves one session: reads frames from in_fd and writes responses to out_fd until
 * end of file (serve.c has the design: a reader, up to SRV_WORKERS_MAX workers, whole
 * frames written one writer at a time, each answer as soon as it is ready).
 * Diagnostics go to stderr with the prefix "flechefs-server: ". Returns 0 after a
 * clean end of file, or -1 when the session ended on an error (malformed frame,
 * unanswerable message, I/O error).
 */
int srv_serve(struct srv_cache *cache, const struct srv_serve_options *opt, int in_fd, int out_fd);

#endif

/*
 * client.h: the daemon's typed calls of the flechefs protocol, one per method it
 * sends (rpc/PROTOCOL.md section 5), over a connection (conn.h). The parameters are
 * C types the compiler checks; the synchronous calls also decode their result with
 * proto.h's decoder for it. A result that does not decode fails the call like a lost
 * answer (r->err EIO, r->error NULL, the reason in r->message) with r->undecoded set.
 *
 * Every synchronous call fills r (released by the caller with fsd_result_release,
 * success or not) and returns 0 or -r->err; it must not run on the reader thread.
 * Every asynchronous call runs done exactly once, as fsd_conn_send says.
 */
#ifndef FLECHEFS_FUSEFS_CLIENT_H
#define FLECHEFS_FUSEFS_CLIENT_H

#include <stdbool.h>
#include <stdint.h>

#include "conn.h"
#include "proto.h"

/* info() into *info. */
int fsd_rpc_info(struct fsd_conn *c, struct fsd_result *r, struct rpc_info *info);

/* load(key): the record map, for fsd_record_build (callrec.h), in r->result. */
int fsd_rpc_load(struct fsd_conn *c, const char *key, struct fsd_result *r);

/* list_record(key) into *l, which points into r->result (valid until r is released). */
int fsd_rpc_list_record(struct fsd_conn *c, const char *key, struct fsd_result *r,
                        struct rpc_list_record *l);
void fsd_rpc_list_record_async(struct fsd_conn *c, const char *key, fsd_done_fn done, void *ctx);

/* load_many(keys[0..n), values), 1 <= n <= RPC_LOAD_MANY_MAX, decoded into *lm
 * (borrowed from r): its entries are load's record maps or error maps. */
int fsd_rpc_load_many(struct fsd_conn *c, const char (*keys)[RPC_KEY_LEN + 1], size_t n,
                      bool values, struct fsd_result *r, struct rpc_load_many *lm);

/* stat_value(key, view) into *st. */
int fsd_rpc_stat_value(struct fsd_conn *c, const char *key, enum rpc_view view,
                       struct fsd_result *r, struct rpc_stat_value *st);
void fsd_rpc_stat_value_async(struct fsd_conn *c, const char *key, enum rpc_view view,
                              fsd_done_fn done, void *ctx);

/* load_value(key, offset, length, view): the bin in r->result. */
int fsd_rpc_load_value(struct fsd_conn *c, const char *key, uint64_t offset, uint64_t length,
                       enum rpc_view view, struct fsd_result *r);
/* The same, answered possibly in a pipe (fsd_conn_send_data); length is reserved. */
void fsd_rpc_load_value_data(struct fsd_conn *c, const char *key, uint64_t offset,
                             uint64_t length, enum rpc_view view, fsd_done_fn done, void *ctx);

/* contains(key), asynchronously (decode the reply with rpc_decode_contains). */
void fsd_rpc_contains_async(struct fsd_conn *c, const char *key, fsd_done_fn done, void *ctx);

/* expand(prefix) into out. */
int fsd_rpc_expand(struct fsd_conn *c, const char *prefix, struct fsd_result *r,
                   char out[RPC_KEY_LEN + 1]);

/* evict(key). */
int fsd_rpc_evict(struct fsd_conn *c, const char *key, struct fsd_result *r);

/* list(kind, after, limit, detail) into *page (borrowed from r). limit 0: page_default. */
int fsd_rpc_list(struct fsd_conn *c, enum rpc_kind kind, const char *after, uint32_t limit,
                 bool detail, struct fsd_result *r, struct rpc_page *page);
void fsd_rpc_list_async(struct fsd_conn *c, enum rpc_kind kind, const char *after,
                        uint32_t limit, bool detail, fsd_done_fn done, void *ctx);

/* query({"name": name}, after, limit, detail) into *page (borrowed from r). */
int fsd_rpc_query_name(struct fsd_conn *c, const char *name, const char *after, uint32_t limit,
                       bool detail, struct fsd_result *r, struct rpc_page *page);

/* query(template, after, limit, detail): tmpl[0..len) one packed msgpack map. */
int fsd_rpc_query_template(struct fsd_conn *c, const void *tmpl, size_t len, const char *after,
                           uint32_t limit, bool detail, struct fsd_result *r,
                           struct rpc_page *page);

/* names(after, limit) into *page (borrowed from r). */
int fsd_rpc_names(struct fsd_conn *c, const char *after, uint32_t limit, struct fsd_result *r,
                  struct rpc_names_page *page);

#endif

/*
 * client.c: the typed calls of client.h. Each method has an argument struct and a
 * packer that hands it to proto.h's encoder; the connection (conn.h) assigns the
 * msgid and sends.
 */
#include "client.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

struct key_args {
	enum rpc_method method;
	const char *key;
};

static int pack_key(msgpack_packer *pk, uint32_t msgid, const void *args)
{
	const struct key_args *a = args;
	switch (a->method) {
	case RPC_M_LOAD:
		return rpc_pack_load(pk, msgid, a->key);
	case RPC_M_CONTAINS:
		return rpc_pack_contains(pk, msgid, a->key);
	case RPC_M_EXPAND:
		return rpc_pack_expand(pk, msgid, a->key);
	case RPC_M_EVICT:
		return rpc_pack_evict(pk, msgid, a->key);
	case RPC_M_LIST_RECORD:
		return rpc_pack_list_record(pk, msgid, a->key);
	default:
		return -EINVAL;
	}
}

struct value_args {
	const char *key;
	enum rpc_view view;
	bool range; /* load_value: offset and length */
	uint64_t offset, length;
};

static int pack_value(msgpack_packer *pk, uint32_t msgid, const void *args)
{
	const struct value_args *a = args;
	if (a->range)
		return rpc_pack_load_value(pk, msgid, a->key, a->offset, a->length, a->view);
	return rpc_pack_stat_value(pk, msgid, a->key, a->view);
}

struct page_args {
	enum rpc_method method; /* list, query or names */
	enum rpc_kind kind;
	const char *name;  /* query by name */
	const void *tmpl;  /* query by a packed template (when not NULL) */
	size_t tmpl_len;
	const char *after;
	uint32_t limit;
	bool detail;
};

static int pack_page(msgpack_packer *pk, uint32_t msgid, const void *args)
{
	const struct page_args *a = args;
	switch (a->method) {
	case RPC_M_LIST:
		return rpc_pack_list(pk, msgid, a->kind, a->after, a->limit, a->detail);
	case RPC_M_QUERY:
		if (a->tmpl)
			return rpc_pack_query(pk, msgid, a->tmpl, a->tmpl_len, a->after, a->limit,
			                      a->detail);
		return rpc_pack_query_name(pk, msgid, a->name, a->after, a->limit, a->detail);
	case RPC_M_NAMES:
		return rpc_pack_names(pk, msgid, a->after, a->limit);
	default:
		return -EINVAL;
	}
}

/* Fails a call whose result did not decode (the reason in r->message already). */
static int undecodable(struct fsd_result *r)
{
	r->err = EIO;
	r->undecoded = true;
	return -EIO;
}

static int send_key(struct fsd_conn *c, enum rpc_method m, const char *key, struct fsd_result *r)
{
	struct key_args a = {m, key};
	struct fsd_request req = {rpc_method_name(m), pack_key, &a, 0};
	return fsd_conn_send_sync(c, &req, r);
}

static int pack_info(msgpack_packer *pk, uint32_t msgid, const void *args)
{
	(void)args;
	return rpc_pack_info(pk, msgid);
}

int fsd_rpc_info(struct fsd_conn *c, struct fsd_result *r, struct rpc_info *info)
{
	struct fsd_request req = {rpc_method_name(RPC_M_INFO), pack_info, NULL, 0};
	int rc = fsd_conn_send_sync(c, &req, r);
	if (rc == 0 && rpc_decode_info(r->result, info, r->message, sizeof(r->message)))
		return undecodable(r);
	return rc;
}

int fsd_rpc_load(struct fsd_conn *c, const char *key, struct fsd_result *r)
{
	return send_key(c, RPC_M_LOAD, key, r);
}

int fsd_rpc_list_record(struct fsd_conn *c, const char *key, struct fsd_result *r,
                        struct rpc_list_record *l)
{
	int rc = send_key(c, RPC_M_LIST_RECORD, key, r);
	if (rc == 0 && rpc_decode_list_record(r->result, l, r->message, sizeof(r->message)))
		return undecodable(r);
	return rc;
}

void fsd_rpc_list_record_async(struct fsd_conn *c, const char *key, fsd_done_fn done, void *ctx)
{
	struct key_args a = {RPC_M_LIST_RECORD, key};
	struct fsd_request req = {rpc_method_name(RPC_M_LIST_RECORD), pack_key, &a, 0};
	fsd_conn_send(c, &req, done, ctx);
}

struct many_args {
	const char (*keys)[RPC_KEY_LEN + 1];
	size_t n;
	bool values;
};

static int pack_many(msgpack_packer *pk, uint32_t msgid, const void *args)
{
	const struct many_args *a = args;
	return rpc_pack_load_many(pk, msgid, a->keys, a->n, a->values);
}

int fsd_rpc_load_many(struct fsd_conn *c, const char (*keys)[RPC_KEY_LEN + 1], size_t n,
                      bool values, struct fsd_result *r, struct rpc_load_many *lm)
{
	struct many_args a = {keys, n, values};
	struct fsd_request req = {rpc_method_name(RPC_M_LOAD_MANY), pack_many, &a, 0};
	int rc = fsd_conn_send_sync(c, &req, r);
	if (rc == 0 && rpc_decode_load_many(r->result, n, lm, r->message, sizeof(r->message)))
		return undecodable(r);
	return rc;
}

int fsd_rpc_stat_value(struct fsd_conn *c, const char *key, enum rpc_view view,
                       struct fsd_result *r, struct rpc_stat_value *st)
{
	struct value_args a = {.key = key, .view = view};
	struct fsd_request req = {rpc_method_name(RPC_M_STAT_VALUE), pack_value, &a, 0};
	int rc = fsd_conn_send_sync(c, &req, r);
	if (rc == 0 && rpc_decode_stat_value(r->result, st, r->message, sizeof(r->message)))
		return undecodable(r);
	return rc;
}

void fsd_rpc_stat_value_async(struct fsd_conn *c, const char *key, enum rpc_view view,
                              fsd_done_fn done, void *ctx)
{
	struct value_args a = {.key = key, .view = view};
	struct fsd_request req = {rpc_method_name(RPC_M_STAT_VALUE), pack_value, &a, 0};
	fsd_conn_send(c, &req, done, ctx);
}

int fsd_rpc_load_value(struct fsd_conn *c, const char *key, uint64_t offset, uint64_t length,
                       enum rpc_view view, struct fsd_result *r)
{
	struct value_args a = {key, view, true, offset, length};
	struct fsd_request req = {rpc_method_name(RPC_M_LOAD_VALUE), pack_value, &a,
	                          (size_t)length};
	return fsd_conn_send_sync(c, &req, r);
}

void fsd_rpc_load_value_data(struct fsd_conn *c, const char *key, uint64_t offset,
                             uint64_t length, enum rpc_view view, fsd_done_fn done, void *ctx)
{
	struct value_args a = {key, view, true, offset, length};
	struct fsd_request req = {rpc_method_name(RPC_M_LOAD_VALUE), pack_value, &a,
	                          (size_t)length};
	fsd_conn_send_data(c, &req, done, ctx);
}

void fsd_rpc_contains_async(struct fsd_conn *c, const char *key, fsd_done_fn done, void *ctx)
{
	struct key_args a = {RPC_M_CONTAINS, key};
	struct fsd_request req = {rpc_method_name(RPC_M_CONTAINS), pack_key, &a, 0};
	fsd_conn_send(c, &req, done, ctx);
}

int fsd_rpc_expand(struct fsd_conn *c, const char *prefix, struct fsd_result *r,
                   char out[RPC_KEY_LEN + 1])
{
	int rc = send_key(c, RPC_M_EXPAND, prefix, r);
	if (rc == 0 && rpc_decode_key(r->result, out, r->message, sizeof(r->message)))
		return undecodable(r);
	return rc;
}

int fsd_rpc_evict(struct fsd_conn *c, const char *key, struct fsd_result *r)
{
	return send_key(c, RPC_M_EVICT, key, r);
}

static int send_page(struct fsd_conn *c, const struct page_args *a, struct fsd_result *r,
                     struct rpc_page *page)
{
	struct fsd_request req = {rpc_method_name(a->method), pack_page, a, 0};
	int rc = fsd_conn_send_sync(c, &req, r);
	if (rc == 0 && rpc_decode_page(r->result, page, r->message, sizeof(r->message)))
		return undecodable(r);
	return rc;
}

int fsd_rpc_list(struct fsd_conn *c, enum rpc_kind kind, const char *after, uint32_t limit,
                 bool detail, struct fsd_result *r, struct rpc_page *page)
{
	struct page_args a = {.method = RPC_M_LIST,
	                      .kind = kind,
	                      .after = after,
	                      .limit = limit,
	                      .detail = detail};
	return send_page(c, &a, r, page);
}

void fsd_rpc_list_async(struct fsd_conn *c, enum rpc_kind kind, const char *after,
                        uint32_t limit, bool detail, fsd_done_fn done, void *ctx)
{
	struct page_args a = {.method = RPC_M_LIST,
	                      .kind = kind,
	                      .after = after,
	                      .limit = limit,
	                      .detail = detail};
	struct fsd_request req = {rpc_method_name(RPC_M_LIST), pack_page, &a, 0};
	fsd_conn_send(c, &req, done, ctx);
}

int fsd_rpc_query_name(struct fsd_conn *c, const char *name, const char *after, uint32_t limit,
                       bool detail, struct fsd_result *r, struct rpc_page *page)
{
	struct page_args a = {.method = RPC_M_QUERY,
	                      .name = name,
	                      .after = after,
	                      .limit = limit,
	                      .detail = detail};
	return send_page(c, &a, r, page);
}

int fsd_rpc_query_template(struct fsd_conn *c, const void *tmpl, size_t len, const char *after,
                           uint32_t limit, bool detail, struct fsd_result *r,
                           struct rpc_page *page)
{
	struct page_args a = {.method = RPC_M_QUERY,
	                      .tmpl = tmpl,
	                      .tmpl_len = len,
	                      .after = after,
	                      .limit = limit,
	                      .detail = detail};
	return send_page(c, &a, r, page);
}

int fsd_rpc_names(struct fsd_conn *c, const char *after, uint32_t limit, struct fsd_result *r,
                  struct rpc_names_page *page)
{
	struct page_args a = {.method = RPC_M_NAMES, .after = after, .limit = limit};
	struct fsd_request req = {rpc_method_name(RPC_M_NAMES), pack_page, &a, 0};
	int rc = fsd_conn_send_sync(c, &req, r);
	if (rc == 0 && rpc_decode_names(r->result, page, r->message, sizeof(r->message)))
		return undecodable(r);
	return rc;
}

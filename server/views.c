/*
 * views.c: renders a value in the views json, npy, txt and bin (views.h, PROTOCOL.md
 * section 6) for dispatch.c. The value's pickle is parsed (pickle.h) with limits
 * sized for views; npy, txt and bin are served as segments that point into the stored
 * stream (an NPY header built here, then the array's bytes where the pickle holds
 * them), so a large array or blob is never copied; json is rendered by view_json.c into
 * memory, resolving destructured references through the cache, and kept in a small
 * cache so that a view read in ranges is rendered once.
 *
 * Invariants:
 *   1. A rendering owns its parsed document (and, for json, a reference on its cache
 *      entry) through out->priv until dispatch calls out->release; the segments point
 *      into the value's stream, the document's arena or the entry, all alive until
 *      then.
 *   2. Rendered json is kept in the cache object's text cache (textcache.h), keyed by
 *      the values directory and the key, with the stored file's size and mtime, so a
 *      value replaced on disk is rendered again.
 *   3. Resolving references opens values through cache.h, one srv_value_open per
 *      reference; the bytes of the referenced pickles are counted against
 *      SRV_VIEW_REF_BYTES for one rendering.
 */
#include "views.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_writer.h"
#include "npy.h"
#include "pathlist.h"
#include "pyclass.h"
#include "pystd.h"
#include "proto.h"
#include "rpc.h"
#include "textcache.h"

/* Parse limits for views: larger than pickle.h's defaults, still bounded. */
#define VIEW_MAX_NODES (4u * 1000 * 1000)
#define VIEW_MAX_MEMO  (4u * 1000 * 1000)
#define VIEW_MAX_DEPTH 10000u
#define VIEW_MAX_ARENA (256u * 1024 * 1024)

static void view_limits(struct pk_limits *lim)
{
	pk_limits_default(lim);
	lim->max_nodes = VIEW_MAX_NODES;
	lim->max_memo = VIEW_MAX_MEMO;
	lim->max_depth = VIEW_MAX_DEPTH;
	lim->max_arena = VIEW_MAX_ARENA;
}

/* Parses a value's stream; a failure is reported for the view and key given. */
static int view_parse(const uint8_t *bytes, size_t len, const char *key, const char *view,
                      struct pk_doc **doc, struct srv_error *err)
{
	struct pk_limits lim;
	char why[256] = "";
	size_t end;
	int rc;

	view_limits(&lim);
	rc = pk_parse(bytes, len, &lim, doc, &end, why, sizeof(why));
	if (rc == 0)
		return 0;
	*doc = NULL;
	if (rc == -E2BIG)
		return srv_fail(err, RPC_E_EFBIG, "the value '%s' is too large for the %s view: %s",
		                key, view, why);
	if (rc == -ENOMEM)
		return srv_fail(err, RPC_E_ENOMEM, "out of memory decoding the value '%s'", key);
	return srv_fail(err, RPC_E_CORRUPT, "cannot decode the value '%s' for the %s view: %s", key,
	                view, why[0] ? why : "malformed pickle");
}

int srv_view_raw(const struct pk_node *root, bool text, const struct pk_str **out,
                 struct srv_error *err)
{
	char type[160];

	if (root && text && root->kind == PK_STR) {
		*out = &root->u.str;
		return 0;
	}
	if (root && !text && (root->kind == PK_BYTES || root->kind == PK_BYTEARRAY)) {
		*out = &root->u.str;
		return 0;
	}
	srv_pyclass_type_name(root, type, sizeof(type));
	return srv_fail(err, RPC_E_ENOTSUP, "the %s view is for %s values, not %s",
	                rpc_view_name(text ? RPC_VIEW_TXT : RPC_VIEW_BIN),
	                text ? "str (and datetime, Decimal, UUID, path and other standard)"
	                     : "bytes and bytearray",
	                type);
}

/* ------------------------------------------------------------------------------ */
/* Resolving references through the cache */

struct resolved {
	struct srv_value *value;
	struct pk_doc *doc;
};

struct resolver_ctx {
	struct srv_cache *cache;
	const char *root_key;
	uint64_t bytes; /* of referenced pickles read so far */
};

static int resolve_open(void *ctx, const char *key, const struct pk_node **root, void **token,
                        struct srv_error *err)
{
	struct resolver_ctx *rc = ctx;
	struct resolved *r;
	struct srv_error e;

	r = calloc(1, sizeof(*r));
	if (!r)
		return srv_fail(err, RPC_E_ENOMEM, "out of memory resolving '%s'", key);
	memset(&e, 0, sizeof(e));
	if (srv_value_open(rc->cache, key, RPC_KEY_LEN, &r->value, &e) < 0) {
		free(r);
		if (e.code == RPC_E_ENOENT)
			return srv_fail(err, RPC_E_ENOENT,
			                "part '%s' of the destructured value '%s' is missing from "
			                "the cache",
			                key, rc->root_key);
		*err = e;
		return -1;
	}
	rc->bytes += srv_value_size(r->value);
	if (rc->bytes > SRV_VIEW_REF_BYTES) {
		srv_value_close(r->value);
		free(r);
		return srv_fail(err, RPC_E_EFBIG,
		                "the parts of the destructured value '%s' are larger than the "
		                "limit of %u MiB",
		                rc->root_key, SRV_VIEW_REF_BYTES >> 20);
	}
	if (view_parse(srv_value_bytes(r->value), (size_t)srv_value_size(r->value), key,
	               rpc_view_name(RPC_VIEW_JSON), &r->doc, err) < 0 ||
	    srv_value_check(r->value, err) < 0) { /* file truncated while parsed */
		pk_doc_free(r->doc);
		srv_value_close(r->value);
		free(r);
		return -1;
	}
	*root = pk_doc_root(r->doc);
	*token = r;
	return 0;
}

static int resolve_child(void *ctx, const char *key, enum srv_pathrec_kind *kind,
                         uint64_t *size, struct srv_error *err)
{
	struct resolver_ctx *rc = ctx;
	double mtime;

	if (srv_pathlist_child(rc->cache, key, kind, size, &mtime, NULL, 0, err) < 0) {
		if (err->code == RPC_E_ENOENT)
			srv_fail(err, RPC_E_ENOENT,
			         "part '%s' of the destructured value '%s' is missing from the cache",
			         key, rc->root_key);
		return -1;
	}
	return 0;
}

static void resolve_close(void *ctx, void *token)
{
	struct resolved *r = token;
	(void)ctx;
	if (!r)
		return;
	pk_doc_free(r->doc);
	srv_value_close(r->value);
	free(r);
}

/* ------------------------------------------------------------------------------ */
/* Renderings */

/* What a rendering keeps alive until dispatch releases it. */
struct rendering {
	struct pk_doc *doc;
	struct srv_textcache *texts; /* the cache object's, holding entry */
	struct srv_text *entry;
	struct rpc_buf header;
};

static void rendering_release(void *priv)
{
	struct rendering *r = priv;
	if (!r)
		return;
	pk_doc_free(r->doc);
	srv_textcache_unref(r->texts, r->entry);
	rpc_buf_release(&r->header);
	free(r);
}

static int render_json(struct srv_cache *cache, struct srv_value *value, struct rendering *r,
                       struct srv_rendered *out, struct srv_error *err)
{
	const char *key = srv_value_key(value);
	struct srv_layout l;
	struct rpc_buf text = RPC_BUF_INIT(SRV_VIEW_JSON_MAX);
	struct resolver_ctx rctx = {cache, key, 0};
	struct srv_view_resolver res = {resolve_open, resolve_close, &rctx, resolve_child};
	struct srv_text *e = NULL;
	char *id = NULL, *data;
	size_t len;
	int rc = -1;

	srv_cache_layout(cache, &l);
	if (asprintf(&id, "%s/%s", l.values_path ? l.values_path : "", key) < 0) {
		id = NULL;
		srv_fail(err, RPC_E_ENOMEM, "out of memory");
		goto out;
	}
	r->texts = srv_cache_texts(cache);
	e = srv_textcache_get(r->texts, id, srv_value_size(value), srv_value_mtime(value));
	if (!e) {
		if (view_parse(srv_value_bytes(value), (size_t)srv_value_size(value), key,
		               rpc_view_name(RPC_VIEW_JSON), &r->doc, err) < 0)
			goto out;
		if (srv_view_json(pk_doc_root(r->doc), key, &res, &text, err) < 0)
			goto out;
		pk_doc_free(r->doc);
		r->doc = NULL;
		data = rpc_buf_detach(&text, &len);
		if (data)
			e = srv_textcache_put(r->texts, id, srv_value_size(value),
			                      srv_value_mtime(value), data, len);
		if (!e) {
			srv_fail(err, RPC_E_ENOMEM, "out of memory");
			goto out;
		}
	}
	r->entry = e;
	out->nseg = 1;
	out->seg[0].bytes = (const uint8_t *)e->data;
	out->seg[0].len = e->len;
	out->size = e->len;
	rc = 0;
out:
	free(id);
	rpc_buf_release(&text);
	return rc;
}

/*
 * The txt view of a value that is not a str: str() of the standard library's types
 * (pystd.h) and of a member of an enum pickled by value whose name is known
 * ("Color.RED", for an enum.Enum or enum.Flag; other enums print otherwise). Returns
 * 1 with the text in out, 0 when the view does not apply, or a negative errno.
 */
static int view_str(const struct pk_node *root, struct rpc_buf *out)
{
	const struct pk_node *name, *value;
	struct srv_pyclass c;
	const char *dot;
	size_t skip;
	int rc = srv_pystd_str(root, out);

	if (rc != 0)
		return rc;
	if (!srv_pyclass_enum_member(root, &c, &name, &value) || !name ||
	    !(srv_pyclass_has_base(&c, "enum", "Enum") || srv_pyclass_has_base(&c, "enum", "Flag")))
		return 0;
	/* the class's own name: the last part of its qualified name */
	dot = memrchr(c.qualname.ptr, '.', c.qualname.len);
	skip = dot ? (size_t)(dot + 1 - c.qualname.ptr) : 0;
	if ((rc = rpc_buf_add(out, c.qualname.ptr + skip, c.qualname.len - skip)) < 0 ||
	    (rc = rpc_buf_addc(out, '.')) < 0 ||
	    (rc = rpc_buf_add(out, name->u.str.ptr, name->u.str.len)) < 0)
		return rc;
	return 1;
}

/*
 * The txt or bin view: the str's or bytes' own bytes, inside the stored stream; for
 * txt, str() of a standard type (view_str) in memory.
 */
static int render_raw(struct srv_value *value, enum rpc_view view, struct rendering *r,
                      struct srv_rendered *out, struct srv_error *err)
{
	const char *key = srv_value_key(value), *name = rpc_view_name(view);
	const struct pk_node *root;
	const struct pk_str *s;
	int rc;

	if (view_parse(srv_value_bytes(value), (size_t)srv_value_size(value), key, name, &r->doc,
	               err) < 0)
		return -1;
	root = pk_doc_root(r->doc);
	if (view == RPC_VIEW_TXT && root->kind != PK_STR) {
		rc = view_str(root, &r->header);
		if (rc < 0)
			return srv_fail(err, RPC_E_ENOMEM, "out of memory");
		if (rc == 1) {
			out->nseg = 1;
			out->seg[0].bytes = (const uint8_t *)r->header.data;
			out->seg[0].len = r->header.len;
			out->size = r->header.len;
			return 0;
		}
	}
	if (srv_view_raw(root, view == RPC_VIEW_TXT, &s, err) < 0) {
		char why[sizeof(err->message)];
		snprintf(why, sizeof(why), "%s", err->message);
		return srv_fail(err, err->code, "the value '%s' has no %s view: %s", key, name,
		                why);
	}
	out->nseg = 1;
	out->seg[0].bytes = (const uint8_t *)s->ptr;
	out->seg[0].len = s->len;
	out->size = s->len;
	return 0;
}

/* The npy view: an NPY header built here, then the array's bytes in the stream. */
static int render_npy(struct srv_value *value, struct rendering *r, struct srv_rendered *out,
                      struct srv_error *err)
{
	const char *key = srv_value_key(value);
	const struct pk_node *root;
	struct srv_ndarray a;
	char type[160];
	int rc;

	if (view_parse(srv_value_bytes(value), (size_t)srv_value_size(value), key,
	               rpc_view_name(RPC_VIEW_NPY), &r->doc, err) < 0)
		return -1;
	root = pk_doc_root(r->doc);
	rc = srv_npy_recognise(root, true, &a, err);
	if (rc < 0) {
		char why[sizeof(err->message)];
		snprintf(why, sizeof(why), "%s", err->message);
		return srv_fail(err, err->code, "the value '%s' has no npy view: %s", key, why);
	}
	if (rc == 0) {
		srv_pyclass_type_name(root, type, sizeof(type));
		return srv_fail(err, RPC_E_ENOTSUP,
		                "the npy view is for numpy arrays, and the value '%s' is a %s", key,
		                type);
	}
	if (srv_npy_header(&a, &r->header) != 0)
		return srv_fail(err, RPC_E_ENOMEM, "out of memory");
	out->nseg = 2;
	out->seg[0].bytes = (const uint8_t *)r->header.data;
	out->seg[0].len = r->header.len;
	out->seg[1].bytes = a.data;
	out->seg[1].len = a.count * a.itemsize;
	out->size = out->seg[0].len + out->seg[1].len;
	return 0;
}

int srv_view_render(struct srv_cache *cache, struct srv_value *value, enum rpc_view view,
                    struct srv_rendered *out, struct srv_error *err)
{
	struct rendering *r;

	memset(out, 0, sizeof(*out));
	if (view == RPC_VIEW_PICKLE || (unsigned)view >= RPC_VIEW__COUNT)
		return srv_fail(err, RPC_E_ENOTSUP, "this server does not render the view '%s'",
		                rpc_view_name(view));
	r = calloc(1, sizeof(*r));
	if (!r)
		return srv_fail(err, RPC_E_ENOMEM, "out of memory");
	rpc_buf_init(&r->header, 1u << 20);
	out->release = rendering_release;
	out->priv = r;
	switch (view) {
	case RPC_VIEW_JSON:
		return render_json(cache, value, r, out, err);
	case RPC_VIEW_NPY:
		return render_npy(value, r, out, err);
	case RPC_VIEW_TXT:
	case RPC_VIEW_BIN:
		return render_raw(value, view, r, out, err);
	case RPC_VIEW_PICKLE: /* the stored stream: dispatch serves it unrendered */
	case RPC_VIEW__COUNT:
		break;
	}
	return srv_fail(err, RPC_E_ENOTSUP, "this server does not render the view '%s'",
	                rpc_view_name(view));
}

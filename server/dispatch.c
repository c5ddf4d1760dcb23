/*
 * dispatch.c: flechefs-server's handler table and the answering of one request.
 * Every request is looked up by method name in rpc/proto.h's RPC_METHODS, which says
 * how many parameters a method takes, whether it writes to the cache and whether it
 * may come before hello, so that these are enforced in one place (answer());
 * handlers[] gives each its function (sftp-server style).
 * Each handler checks its parameters' types (keys and prefixes with
 * rpc_key_prefix_valid before anything else), asks the cache (cache.h) and packs its
 * result straight into the output buffer behind a response head; on failure the
 * partial result is cut off and an error response is packed instead. The loop over
 * file descriptors and the worker threads are serve.c's.
 *
 * Invariants:
 *   1. Every request that decodes (or whose msgid is readable) is answered exactly
 *      once; a frame or message without a readable msgid is not answered and the
 *      caller ends the session (PROTOCOL.md section 2).
 *   2. Until hello has succeeded, every other request is EPROTO. hello_done goes
 *      from false to true once and never back.
 *   3. An answer is one complete response frame of at most max_frame bytes (a
 *      larger answer becomes EMSGSIZE).
 *   4. Threads: a session is shared by the threads that answer its requests; what
 *      changes while it runs (hello_done) is atomic, everything else is set by
 *      srv_session_new. Each thread answers through its own srv_worker (the decoded
 *      request's memory, a value held for zero copy). The cache serialises what
 *      must be (cache.h).
 *   5. Under srv_serve (workers from srv_worker_new), a load_value range of
 *      SRV_ZERO_COPY_MIN bytes or more is not copied: its frame ends with the bin
 *      header in the output buffer, and the bytes are written straight from the
 *      value, which the worker holds open until srv_worker_tail_done.
 *
 * State of a session: NEW --hello ok--> READY; a VERSION or EINVAL answer to hello
 * leaves it NEW.
 */
#include "dispatch.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "frame.h"
#include "msg.h"
#include "pathlist.h"
#include "proto.h"
#include "record.h"
#include "rpc.h"
#include "save.h"
#include "views.h"

/* load_value ranges at least this large are written from the value, not copied. */
#define SRV_ZERO_COPY_MIN (128u * 1024)

/*
 * The views this server renders are those of rpc/proto.h's RPC_VIEWS, in its order
 * (hello lists them so): "pickle" is the stored stream, every other view is rendered
 * by views.c's srv_view_render. A view is added with one line in RPC_VIEWS and its
 * case in srv_view_render.
 */

/* An open value rendered in a view (view_open, view_close). */
struct view_value {
	struct srv_value *value;
	struct srv_rendered r;
	double mtime;
	const char *key;
	enum rpc_view view;
};

/*
 * What one thread needs to answer requests: the decoded request's memory and, under
 * srv_serve, the value held open for a zero-copy answer. A session is shared by its
 * workers; a worker answers one request at a time.
 */
struct srv_worker {
	msgpack_zone zone;
	/*
	 * Zero copy (srv_serve only): a large load_value answer ends with a bin header
	 * in the output buffer and its bytes are written from the value itself (tail),
	 * which stays open (held) until srv_worker_tail_done.
	 */
	bool zero_copy;
	struct view_value held;
	const uint8_t *tail;
	size_t tail_len;
};

struct srv_session {
	struct srv_cache *cache;
	uint32_t max_frame;
	uint32_t max_read;
	bool read_only;
	/* set once by a successful hello, never cleared; read by every worker */
	atomic_bool hello_done;
	const void *config; /* srv_serve_options.config */
	size_t config_len;
	/* the worker of srv_session_handle (no zero copy) */
	struct srv_worker own;
};

/* One request being answered. */
struct call {
	struct srv_worker *w;
	const char *method;
	const msgpack_object *params; /* an array */
	uint32_t nparams;
	msgpack_packer *pk;
	msgpack_sbuffer *out;
	struct srv_error err;
	/* zero copy: bytes that follow what was packed (load_value) */
	const uint8_t *tail;
	size_t tail_len;
};

/* A method's handler: checks its parameters' types, packs its result (0) or fills
 * c->err (-1). Names, parameter counts and flags are rpc/proto.h's RPC_METHODS. */
typedef int (*handler_fn)(struct srv_session *s, struct call *c);

/* Fills c->err for a failed pack (the sbuffer could not grow). */
static int pack_failed(struct call *c)
{
	return srv_fail(&c->err, RPC_E_ENOMEM, "out of memory answering %s", c->method);
}

#define PACK(c, expr)                                                                              \
	do {                                                                                       \
		if ((expr) != 0)                                                                   \
			return pack_failed(c);                                                     \
	} while (0)

static const msgpack_object *param(const struct call *c, uint32_t i)
{
	return i < c->nparams ? &c->params->via.array.ptr[i] : NULL;
}

static bool param_absent(const struct call *c, uint32_t i)
{
	return rpc_obj_is_nil(param(c, i));
}

static int bad_type(struct call *c, uint32_t i, const char *name, const char *want)
{
	return srv_fail(&c->err, RPC_E_EINVAL, "parameter %u (%s) of %s must be %s", i + 1, name,
	                c->method, want);
}

/* Parameter i as a str (not NUL-terminated). */
static int param_str(struct call *c, uint32_t i, const char *name, const char **s, size_t *len)
{
	if (rpc_obj_str(param(c, i), s, len) != 0)
		return bad_type(c, i, name, "a str");
	return 0;
}

/* Parameter i as a key (full) or a prefix (4 to 64 lowercase hex). */
static int param_key(struct call *c, uint32_t i, const char *name, bool full, const char **s,
                     size_t *len)
{
	char q[256];
	if (param_str(c, i, name, s, len) < 0)
		return -1;
	if (full ? !rpc_key_valid(*s, *len) : !rpc_key_prefix_valid(*s, *len))
		return srv_fail(&c->err, RPC_E_EINVAL, "malformed %s '%s' in %s: %s", name,
		                srv_quote(q, sizeof(q), *s, *len), c->method,
		                full ? "a key is 64 lowercase hex characters"
		                     : "a key or prefix is 4 to 64 lowercase hex characters");
	return 0;
}

/* Optional parameter i as a full key copied to out (NUL-terminated); "" when nil. */
static int param_after_key(struct call *c, uint32_t i, char out[RPC_KEY_LEN + 1])
{
	const char *s;
	size_t len;
	out[0] = '\0';
	if (param_absent(c, i))
		return 0;
	if (param_key(c, i, "after", true, &s, &len) < 0)
		return -1;
	memcpy(out, s, len);
	out[len] = '\0';
	return 0;
}

/* Optional limit: nil is the default page, 0 or negative EINVAL, larger cut to max. */
static int param_limit(struct call *c, uint32_t i, size_t *limit)
{
	const msgpack_object *o = param(c, i);
	uint64_t v;
	*limit = RPC_PAGE_DEFAULT;
	if (rpc_obj_is_nil(o))
		return 0;
	if (rpc_obj_uint(o, &v) != 0 || v == 0)
		return bad_type(c, i, "limit", "a positive int or nil");
	*limit = v > RPC_PAGE_MAX ? RPC_PAGE_MAX : (size_t)v;
	return 0;
}

static int param_opt_bool(struct call *c, uint32_t i, const char *name, bool *v)
{
	*v = false;
	if (param_absent(c, i))
		return 0;
	if (rpc_obj_bool(param(c, i), v) != 0)
		return bad_type(c, i, name, "a bool or nil");
	return 0;
}

/* -------------------------------------------------------------------------------- */
/* Values and their views. A view turns a value into the bytes stat_value and
 * load_value serve; "pickle" is the stored stream itself. */

/* The view parameter: nil means "pickle"; a str must name a view of RPC_VIEWS. */
static int param_view(struct call *c, uint32_t i, enum rpc_view *view)
{
	const char *s;
	size_t len;
	char q[256];
	*view = RPC_VIEW_PICKLE;
	if (param_absent(c, i))
		return 0;
	if (param_str(c, i, "view", &s, &len) < 0)
		return -1;
	*view = rpc_view_lookup(s, len);
	if (*view != RPC_VIEW__COUNT)
		return 0;
	return srv_fail(&c->err, RPC_E_ENOTSUP, "this server does not render the view '%s'",
	                srv_quote(q, sizeof(q), s, len));
}

/* Opens a value and renders it in a view. Release with view_close. */
static int view_open(struct srv_session *s, const char *key, size_t len, enum rpc_view view,
                     struct view_value *vv, struct srv_error *err)
{
	memset(vv, 0, sizeof(*vv));
	vv->view = view;
	if (srv_value_open(s->cache, key, len, &vv->value, err) < 0)
		return -1;
	vv->mtime = srv_value_mtime(vv->value);
	vv->key = srv_value_key(vv->value);
	if (view == RPC_VIEW_PICKLE) {
		vv->r.size = srv_value_size(vv->value);
		vv->r.nseg = 1;
		vv->r.seg[0].bytes = srv_value_bytes(vv->value);
		vv->r.seg[0].len = vv->r.size;
		return 0;
	}
	if (srv_view_render(s->cache, vv->value, view, &vv->r, err) < 0) {
		if (vv->r.release)
			vv->r.release(vv->r.priv);
		srv_value_close(vv->value);
		memset(vv, 0, sizeof(*vv));
		return -1;
	}
	if (vv->r.nseg > SRV_VIEW_MAX_SEGMENTS)
		vv->r.nseg = SRV_VIEW_MAX_SEGMENTS;
	return 0;
}

static void view_close(struct view_value *vv)
{
	if (vv->r.release)
		vv->r.release(vv->r.priv);
	if (vv->value)
		srv_value_close(vv->value);
	memset(vv, 0, sizeof(*vv));
}

/* Copies n bytes of the rendered view from offset into the packer (one copy). */
static int pack_view_range(msgpack_packer *pk, const struct srv_rendered *r, uint64_t offset,
                           uint64_t n)
{
	for (size_t i = 0; i < r->nseg && n > 0; i++) {
		const struct srv_view_segment *sg = &r->seg[i];
		if (offset >= sg->len) {
			offset -= sg->len;
			continue;
		}
		uint64_t take = sg->len - offset < n ? sg->len - offset : n;
		if (msgpack_pack_bin_body(pk, sg->bytes + offset, (size_t)take) != 0)
			return -1;
		n -= take;
		offset = 0;
	}
	return n == 0 ? 0 : -1;
}

/* After copying n bytes of the rendered view from offset: lets go of the value's
 * pages they were read from (cache.h, srv_value_drop_pages). */
static void drop_view_range(const struct view_value *vv, uint64_t offset, uint64_t n)
{
	for (size_t i = 0; i < vv->r.nseg && n > 0; i++) {
		const struct srv_view_segment *sg = &vv->r.seg[i];
		if (offset >= sg->len) {
			offset -= sg->len;
			continue;
		}
		uint64_t take = sg->len - offset < n ? sg->len - offset : n;
		srv_value_drop_pages(vv->value, sg->bytes + offset, (size_t)take);
		n -= take;
		offset = 0;
	}
}

/* -------------------------------------------------------------------------------- */
/* Results */

static int pack_bool(msgpack_packer *pk, bool b)
{
	return b ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
}

/* An answer of one boolean field: {field: b}. */
static int pack_bool_answer(struct call *c, enum rpc_field field, bool b)
{
	PACK(c, msgpack_pack_map(c->pk, 1));
	PACK(c, rpc_pack_field(c->pk, field));
	PACK(c, pack_bool(c->pk, b));
	return 0;
}

static int pack_layout_fields(msgpack_packer *pk, const struct srv_layout *l)
{
	int r = 0;
	r |= rpc_pack_field(pk, RPC_F_ROOT);
	r |= rpc_pack_str(pk, l->root);
	r |= rpc_pack_field(pk, RPC_F_CALLS);
	r |= msgpack_pack_map(pk, l->calls_url ? 5 : 4);
	r |= rpc_pack_field(pk, RPC_F_TYPE);
	r |= rpc_pack_str(pk, l->calls_type);
	r |= rpc_pack_field(pk, RPC_F_PATH);
	r |= rpc_pack_str(pk, l->calls_path);
	if (l->calls_url) {
		r |= rpc_pack_field(pk, RPC_F_URL);
		r |= rpc_pack_str(pk, l->calls_url);
	}
	r |= rpc_pack_field(pk, RPC_F_PRESENT);
	r |= pack_bool(pk, l->calls_present);
	r |= rpc_pack_field(pk, RPC_F_COMPRESS);
	r |= pack_bool(pk, l->compress_calls);
	r |= rpc_pack_field(pk, RPC_F_VALUES);
	r |= msgpack_pack_map(pk, 5);
	r |= rpc_pack_field(pk, RPC_F_TYPE);
	r |= rpc_pack_str(pk, l->values_type);
	r |= rpc_pack_field(pk, RPC_F_PATH);
	r |= rpc_pack_str(pk, l->values_path);
	r |= rpc_pack_field(pk, RPC_F_PRESENT);
	r |= pack_bool(pk, l->values_present);
	r |= rpc_pack_field(pk, RPC_F_COMPRESS);
	r |= pack_bool(pk, l->compress_values);
	r |= rpc_pack_field(pk, RPC_F_SERIALIZER);
	r |= rpc_pack_str(pk, l->serializer);
	r |= rpc_pack_field(pk, RPC_F_SIGNED);
	r |= pack_bool(pk, l->key_count > 0);
	r |= rpc_pack_field(pk, RPC_F_KEY_COUNT);
	r |= msgpack_pack_uint64(pk, l->key_count);
	r |= rpc_pack_field(pk, RPC_F_FLECHE_TOML);
	r |= pack_bool(pk, l->fleche_toml);
	return r ? -1 : 0;
}
#define LAYOUT_FIELDS 6

/* The "config" field of hello and info, when the cache came from fleche.toml. */
static int pack_config_field(struct srv_session *s, struct call *c)
{
	int r = 0;

	if (!s->config)
		return 0;
	r |= rpc_pack_field(c->pk, RPC_F_CONFIG);
	r |= msgpack_sbuffer_write(c->out, s->config, s->config_len);
	return r;
}

static int do_hello(struct srv_session *s, struct call *c)
{
	int64_t proto;
	const char *name;
	size_t name_len;
	struct srv_layout l;
	char host[256] = "";
	char *cwd = NULL;
	msgpack_packer *pk = c->pk;
	int r = 0;

	if (rpc_obj_int(param(c, 0), &proto) != 0)
		return bad_type(c, 0, "client_protocol", "an int");
	if (param_str(c, 1, "client_name", &name, &name_len) < 0)
		return -1;
	if (proto < RPC_PROTOCOL_MIN || proto > RPC_PROTOCOL_VERSION)
		return srv_fail(&c->err, RPC_E_VERSION,
		                "the client speaks protocol version %" PRId64
		                " but this server speaks versions %d to %d",
		                proto, RPC_PROTOCOL_MIN, RPC_PROTOCOL_VERSION);
	srv_cache_layout(s->cache, &l);
	if (gethostname(host, sizeof(host) - 1) != 0)
		host[0] = '\0';
	host[sizeof(host) - 1] = '\0';
	cwd = getcwd(NULL, 0);

	r |= msgpack_pack_map(pk, 13 + (s->config ? 1 : 0));
	r |= pack_config_field(s, c);
	r |= rpc_pack_field(pk, RPC_F_PROTOCOL);
	r |= msgpack_pack_int(pk, RPC_PROTOCOL_VERSION);
	r |= rpc_pack_field(pk, RPC_F_PROGRAM);
	r |= rpc_pack_str(pk, "flechefs-server");
	r |= rpc_pack_field(pk, RPC_F_VERSION);
	r |= rpc_pack_str(pk, FLECHEFS_VERSION);
	r |= rpc_pack_field(pk, RPC_F_READ_ONLY);
	r |= pack_bool(pk, s->read_only);
	r |= rpc_pack_field(pk, RPC_F_LAYOUT);
	r |= msgpack_pack_map(pk, LAYOUT_FIELDS);
	r |= pack_layout_fields(pk, &l);
	r |= rpc_pack_field(pk, RPC_F_HOSTNAME);
	r |= rpc_pack_str(pk, host);
	r |= rpc_pack_field(pk, RPC_F_PID);
	r |= msgpack_pack_int64(pk, (int64_t)getpid());
	r |= rpc_pack_field(pk, RPC_F_CWD);
	r |= rpc_pack_str(pk, cwd ? cwd : "");
	r |= rpc_pack_field(pk, RPC_F_MAX_FRAME);
	r |= msgpack_pack_uint32(pk, s->max_frame);
	r |= rpc_pack_field(pk, RPC_F_MAX_READ);
	r |= msgpack_pack_uint32(pk, s->max_read);
	r |= rpc_pack_field(pk, RPC_F_PAGE_DEFAULT);
	r |= msgpack_pack_uint32(pk, RPC_PAGE_DEFAULT);
	r |= rpc_pack_field(pk, RPC_F_PAGE_MAX);
	r |= msgpack_pack_uint32(pk, RPC_PAGE_MAX);
	r |= rpc_pack_field(pk, RPC_F_VIEWS);
	r |= msgpack_pack_array(pk, (uint32_t)RPC_VIEW__COUNT);
	for (int v = 0; v < RPC_VIEW__COUNT; v++)
		r |= rpc_pack_str(pk, rpc_view_name((enum rpc_view)v));
	free(cwd);
	if (r)
		return pack_failed(c);
	atomic_store(&s->hello_done, true);
	return 0;
}

static int do_info(struct srv_session *s, struct call *c)
{
	struct srv_layout l;
	uint64_t ncalls = 0, nvalues = 0, size = 0;
	msgpack_packer *pk = c->pk;
	int r = 0;

	if (srv_count(s->cache, &ncalls, &nvalues, &c->err) < 0 ||
	    srv_cache_size(s->cache, &size, &c->err) < 0)
		return -1;
	srv_cache_layout(s->cache, &l);
	r |= msgpack_pack_map(pk, LAYOUT_FIELDS + 4 + (s->config ? 1 : 0));
	r |= pack_config_field(s, c);
	r |= pack_layout_fields(pk, &l);
	r |= rpc_pack_field(pk, RPC_F_CALL_COUNT);
	r |= msgpack_pack_uint64(pk, ncalls);
	r |= rpc_pack_field(pk, RPC_F_VALUE_COUNT);
	r |= msgpack_pack_uint64(pk, nvalues);
	r |= rpc_pack_field(pk, RPC_F_SIZE);
	r |= msgpack_pack_uint64(pk, size);
	r |= rpc_pack_field(pk, RPC_F_READ_ONLY);
	r |= pack_bool(pk, s->read_only);
	return r ? pack_failed(c) : 0;
}

/* A page of keys as list's and query's result map. */
static int pack_page(struct call *c, const struct srv_page *page, enum srv_kind kind, bool detail)
{
	msgpack_packer *pk = c->pk;
	int r = 0;

	r |= msgpack_pack_map(pk, !detail ? 2 : kind == SRV_VALUES ? 4 : 5);
	r |= rpc_pack_field(pk, RPC_F_KEYS);
	r |= msgpack_pack_array(pk, (uint32_t)page->n);
	for (size_t i = 0; i < page->n; i++)
		r |= rpc_pack_strn(pk, page->entries[i].key, RPC_KEY_LEN);
	r |= rpc_pack_field(pk, RPC_F_COMPLETE);
	r |= pack_bool(pk, page->complete);
	if (detail) {
		r |= rpc_pack_field(pk, RPC_F_MTIME);
		r |= msgpack_pack_array(pk, (uint32_t)page->n);
		for (size_t i = 0; i < page->n; i++)
			r |= msgpack_pack_double(pk, page->entries[i].mtime);
		if (kind == SRV_VALUES) {
			r |= rpc_pack_field(pk, RPC_F_SIZE);
			r |= msgpack_pack_array(pk, (uint32_t)page->n);
			for (size_t i = 0; i < page->n; i++) {
				if (page->entries[i].size < 0)
					r |= msgpack_pack_nil(pk);
				else
					r |= msgpack_pack_int64(pk, page->entries[i].size);
			}
		} else {
			r |= rpc_pack_field(pk, RPC_F_NAME);
			r |= msgpack_pack_array(pk, (uint32_t)page->n);
			for (size_t i = 0; i < page->n; i++)
				r |= rpc_pack_str(pk, page->entries[i].name);
			r |= rpc_pack_field(pk, RPC_F_STAMP);
			r |= msgpack_pack_array(pk, (uint32_t)page->n);
			for (size_t i = 0; i < page->n; i++) {
				if (page->entries[i].stamp)
					r |= msgpack_pack_uint64(pk, page->entries[i].stamp);
				else
					r |= msgpack_pack_nil(pk);
			}
		}
	}
	return r ? pack_failed(c) : 0;
}

static int do_list(struct srv_session *s, struct call *c)
{
	const char *kind_s;
	size_t kind_len;
	enum srv_kind kind;
	char after[RPC_KEY_LEN + 1];
	size_t limit;
	bool detail;
	struct srv_page page = {0};
	int ret;

	if (param_str(c, 0, "kind", &kind_s, &kind_len) < 0)
		return -1;
	if (kind_len == strlen(rpc_field_name(RPC_F_CALLS)) &&
	    memcmp(kind_s, rpc_field_name(RPC_F_CALLS), kind_len) == 0)
		kind = SRV_CALLS;
	else if (kind_len == strlen(rpc_field_name(RPC_F_VALUES)) &&
	         memcmp(kind_s, rpc_field_name(RPC_F_VALUES), kind_len) == 0)
		kind = SRV_VALUES;
	else
		return bad_type(c, 0, "kind", "\"calls\" or \"values\"");
	if (param_after_key(c, 1, after) < 0 || param_limit(c, 2, &limit) < 0 ||
	    param_opt_bool(c, 3, "detail", &detail) < 0)
		return -1;
	if (srv_list(s->cache, kind, after[0] ? after : NULL, limit, detail, &page, &c->err) < 0)
		return -1;
	if (page.n > limit)
		page.n = limit; /* never more than the limit, whatever the storage did */
	ret = pack_page(c, &page, kind, detail);
	srv_page_release(&page);
	return ret;
}

/*
 * Loads the record of key[0..len) into *rec (released by the caller on success),
 * its metadata checked to nest no deeper than a load answer can carry. 0, or -1 with
 * err filled.
 */
static int load_record(struct srv_session *s, const char *key, size_t len, struct srv_record *rec,
                       struct srv_error *err)
{
	char q[256];

	memset(rec, 0, sizeof(*rec));
	if (srv_load(s->cache, key, len, rec, err) < 0)
		return -1;
	/* every store keeps its metadata within SRV_META_MAX_DEPTH (record.h); checked
	 * again here because a message nested deeper must never be sent */
	if (!rec->metadata_error && rec->metadata && rec->metadata_len &&
	    rpc_msgpack_check(rec->metadata, rec->metadata_len, SRV_META_MAX_DEPTH, NULL, 0) != 0 &&
	    srv_record_meta_fail(rec,
	                         "the metadata of call '%s' nests deeper than the %d levels a "
	                         "load answer can carry",
	                         srv_quote(q, sizeof(q), rec->key, strlen(rec->key)),
	                         SRV_META_VALUE_DEPTH) != 0) {
		srv_record_release(rec);
		return srv_fail(err, RPC_E_ENOMEM, "out of memory loading '%s'",
		                srv_quote(q, sizeof(q), key, len));
	}
	return 0;
}

/* Packs load's result map of rec into out (through pk, a packer of out). 0 or nonzero. */
static int pack_record(msgpack_packer *pk, msgpack_sbuffer *out, const struct srv_record *rec)
{
	int r = 0;

	r |= msgpack_pack_map(pk, 11);
	r |= rpc_pack_field(pk, RPC_F_KEY);
	r |= rpc_pack_str(pk, rec->key);
	r |= rpc_pack_field(pk, RPC_F_NAME);
	r |= rpc_pack_str(pk, rec->name ? rec->name : "");
	r |= rpc_pack_field(pk, RPC_F_MODULE);
	r |= rpc_pack_str(pk, rec->module);
	r |= rpc_pack_field(pk, RPC_F_VERSION);
	switch (rec->version_kind) {
	case SRV_VERSION_STR:
		r |= rpc_pack_str(pk, rec->version_str);
		break;
	case SRV_VERSION_INT:
		r |= msgpack_pack_int64(pk, rec->version_int);
		break;
	default:
		r |= msgpack_pack_nil(pk);
		break;
	}
	r |= rpc_pack_field(pk, RPC_F_CODE_DIGEST);
	r |= rpc_pack_str(pk, rec->code_digest);
	r |= rpc_pack_field(pk, RPC_F_ARGUMENTS);
	r |= msgpack_pack_array(pk, (uint32_t)rec->narguments);
	for (size_t i = 0; i < rec->narguments; i++) {
		r |= msgpack_pack_array(pk, 2);
		r |= rpc_pack_str(pk, rec->arguments[i].name ? rec->arguments[i].name : "");
		r |= rpc_pack_str(pk, rec->arguments[i].value);
	}
	r |= rpc_pack_field(pk, RPC_F_RESULT);
	r |= rpc_pack_str(pk, rec->has_result ? rec->result : NULL);
	r |= rpc_pack_field(pk, RPC_F_METADATA);
	if (rec->metadata && rec->metadata_len)
		/* already msgpack: one copy into the response */
		r |= msgpack_sbuffer_write(out, rec->metadata, rec->metadata_len);
	else
		r |= msgpack_pack_map(pk, 0);
	r |= rpc_pack_field(pk, RPC_F_METADATA_ERROR);
	if (rec->metadata_error)
		r |= rpc_pack_error_map(pk, RPC_E_CORRUPT, rec->metadata_error, NULL, 0, 0);
	else
		r |= msgpack_pack_nil(pk);
	r |= rpc_pack_field(pk, RPC_F_MTIME);
	r |= msgpack_pack_double(pk, rec->mtime);
	r |= rpc_pack_field(pk, RPC_F_STAMP);
	r |= msgpack_pack_uint64(pk, rec->stamp);
	return r;
}

static int do_load(struct srv_session *s, struct call *c)
{
	const char *key;
	size_t len;
	struct srv_record rec;
	int r;

	if (param_key(c, 0, "key", false, &key, &len) < 0)
		return -1;
	if (load_record(s, key, len, &rec, &c->err) < 0)
		return -1;
	r = pack_record(c->pk, c->out, &rec);
	srv_record_release(&rec);
	return r ? pack_failed(c) : 0;
}

/* Packs e as an error map (with its candidates when AMBIGUOUS). */
static int pack_error_map(msgpack_packer *pk, const struct srv_error *e)
{
	enum rpc_error code = e->code;
	const char *cand[SRV_MAX_CANDIDATES];
	size_t n = 0;

	if (code <= RPC_OK || code >= RPC_E__COUNT)
		code = RPC_E_EIO;
	if (code == RPC_E_AMBIGUOUS) {
		n = e->ncandidates < SRV_MAX_CANDIDATES ? e->ncandidates : SRV_MAX_CANDIDATES;
		for (size_t i = 0; i < n; i++)
			cand[i] = e->candidates[i];
	}
	return rpc_pack_error_map(pk, code, e->message[0] ? e->message : NULL, cand, n,
	                          code == RPC_E_AMBIGUOUS ? e->needed : 0);
}

/* A server error that says, for the value's life, that a view does not apply (and,
 * with CORRUPT and EINVAL, that a value is no folder record list_record lists). */
static bool definitive_refusal(enum rpc_error code, bool folder)
{
	return code == RPC_E_ENOTSUP || code == RPC_E_EFBIG || code == RPC_E_ELOOP ||
	       (folder && (code == RPC_E_EINVAL || code == RPC_E_CORRUPT));
}

/*
 * Packs what load_many's values map says of value key (PROTOCOL.md): the views that
 * apply with their sizes, as stat_value would answer them, those that do not for
 * good, and whether list_record lists it. What cannot be found out now (the value
 * is missing or unreadable) is left out, for the client to ask about. 0 or nonzero.
 */
static int pack_value_info(struct srv_session *s, msgpack_packer *pk, const char *key)
{
	struct srv_value *v = NULL;
	struct srv_error err;
	struct srv_pathlist l;
	uint64_t size[RPC_VIEW__COUNT] = {0};
	uint8_t state[RPC_VIEW__COUNT] = {0};
	uint32_t napply = 0, nrefuse = 0;
	int folder = -1, r = 0;

	memset(&err, 0, sizeof(err));
	if (srv_value_open(s->cache, key, RPC_KEY_LEN, &v, &err) == 0) {
		for (int view = 0; view < RPC_VIEW__COUNT; view++) {
			struct srv_rendered out;
			if (view == RPC_VIEW_PICKLE)
				continue;
			memset(&out, 0, sizeof(out));
			memset(&err, 0, sizeof(err));
			if (srv_view_render(s->cache, v, (enum rpc_view)view, &out, &err) == 0) {
				state[view] = RPC_VIEW_APPLIES;
				size[view] = out.size;
				napply++;
			} else if (definitive_refusal(err.code, false)) {
				state[view] = RPC_VIEW_REFUSED;
				nrefuse++;
			}
			if (out.release)
				out.release(out.priv);
		}
		srv_value_close(v);
	}
	memset(&err, 0, sizeof(err));
	if (srv_pathlist_load(s->cache, key, RPC_KEY_LEN, &l, &err) == 0)
		folder = 1;
	else if (definitive_refusal(err.code, true))
		folder = 0;
	srv_pathlist_release(&l);

	r |= rpc_pack_str(pk, key);
	r |= msgpack_pack_map(pk, 3);
	r |= rpc_pack_field(pk, RPC_F_VIEWS);
	r |= msgpack_pack_map(pk, napply);
	for (int view = 0; view < RPC_VIEW__COUNT; view++)
		if (state[view] == RPC_VIEW_APPLIES) {
			r |= rpc_pack_str(pk, rpc_view_name((enum rpc_view)view));
			r |= msgpack_pack_uint64(pk, size[view]);
		}
	r |= rpc_pack_field(pk, RPC_F_NO_VIEWS);
	r |= msgpack_pack_array(pk, nrefuse);
	for (int view = 0; view < RPC_VIEW__COUNT; view++)
		if (state[view] == RPC_VIEW_REFUSED)
			r |= rpc_pack_str(pk, rpc_view_name((enum rpc_view)view));
	r |= rpc_pack_field(pk, RPC_F_FOLDER);
	r |= folder < 0 ? msgpack_pack_nil(pk)
	                : folder ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
	return r;
}

/* The value keys a load_many answer has described (one result per record). */
#define LOAD_MANY_VALUES RPC_LOAD_MANY_MAX
struct value_set {
	char copies[LOAD_MANY_VALUES][RPC_KEY_LEN + 1];
	size_t n;
};

/* Adds key to set: true when it is new and there was room. */
static bool value_set_add(struct value_set *set, const char *key)
{
	if (!key || !key[0] || set->n == LOAD_MANY_VALUES)
		return false;
	for (size_t k = 0; k < set->n; k++)
		if (strcmp(set->copies[k], key) == 0)
			return false;
	memcpy(set->copies[set->n], key, RPC_KEY_LEN + 1);
	set->n++;
	return true;
}

/* Packs the value info of rec's result unless set has described it already into pk;
 * *count grows by their number. Only results: a walk of call folders lists its
 * result's views, and every value described costs opening it cold. 0 or nonzero. */
static int pack_record_values(struct srv_session *s, msgpack_packer *pk,
                              const struct srv_record *rec, struct value_set *set,
                              uint32_t *count)
{
	int r = 0;
	if (rec->has_result && value_set_add(set, rec->result)) {
		r |= pack_value_info(s, pk, rec->result);
		(*count)++;
	}
	return r;
}

/*
 * load_many(keys, values): load of each key, the records and errors in two parallel
 * arrays, and with values what is known of the values they name. Entries are packed
 * one at a time into buffers of their own and appended while the answer stays
 * within the frame (less RPC_RESPONSE_OVERHEAD for the head and the headers of the
 * arrays and maps); the first that would not fit ends the answer, which then holds
 * the entries before it (PROTOCOL.md: the client asks again for the rest), or, when
 * it is the first, an EMSGSIZE error in its place.
 */
static int do_load_many(struct srv_session *s, struct call *c)
{
	const msgpack_object *keys = param(c, 0);
	msgpack_sbuffer recs, errs, vals, one, vone;
	msgpack_packer rpk, epk, opk, vpk;
	uint32_t n = 0, nkeys, nvals = 0;
	size_t budget = s->max_frame - RPC_RESPONSE_OVERHEAD;
	struct value_set *set = NULL;
	bool values;
	int ret = -1;
	char q[256];

	if (!keys || keys->type != MSGPACK_OBJECT_ARRAY || keys->via.array.size == 0 ||
	    keys->via.array.size > RPC_LOAD_MANY_MAX)
		return srv_fail(&c->err, RPC_E_EINVAL,
		                "parameter 1 (keys) of %s must be an array of 1 to %u keys", c->method,
		                RPC_LOAD_MANY_MAX);
	nkeys = keys->via.array.size;
	for (uint32_t i = 0; i < nkeys; i++)
		if (keys->via.array.ptr[i].type != MSGPACK_OBJECT_STR)
			return srv_fail(&c->err, RPC_E_EINVAL, "key %u of %s is not a str", i + 1,
			                c->method);
	if (param_opt_bool(c, 1, "values", &values) < 0)
		return -1;
	if (values && !(set = calloc(1, sizeof(*set))))
		return pack_failed(c);
	msgpack_sbuffer_init(&recs);
	msgpack_sbuffer_init(&errs);
	msgpack_sbuffer_init(&vals);
	msgpack_sbuffer_init(&one);
	msgpack_sbuffer_init(&vone);
	msgpack_packer_init(&rpk, &recs, msgpack_sbuffer_write);
	msgpack_packer_init(&epk, &errs, msgpack_sbuffer_write);
	msgpack_packer_init(&opk, &one, msgpack_sbuffer_write);
	msgpack_packer_init(&vpk, &vone, msgpack_sbuffer_write);
	for (; n < nkeys; n++) {
		const char *key;
		size_t len;
		struct srv_record rec;
		struct srv_error err;
		bool loaded = false;
		uint32_t nv = 0;
		int r = 0;

		memset(&err, 0, sizeof(err));
		rpc_obj_str(&keys->via.array.ptr[n], &key, &len);
		one.size = vone.size = 0;
		if (!rpc_key_prefix_valid(key, len))
			srv_fail(&err, RPC_E_EINVAL, "malformed key '%s' in %s: %s",
			         srv_quote(q, sizeof(q), key, len), c->method,
			         "a key or prefix is 4 to 64 lowercase hex characters");
		else if (load_record(s, key, len, &rec, &err) == 0)
			loaded = true;
		if (loaded) {
			r = pack_record(&opk, &one, &rec);
			if (!r && set)
				r = pack_record_values(s, &vpk, &rec, set, &nv);
			srv_record_release(&rec);
		} else {
			r = pack_error_map(&opk, &err);
		}
		if (r)
			goto oom;
		/* each entry also takes one byte (nil) in the other array */
		if (recs.size + errs.size + vals.size + one.size + vone.size + 2 > budget) {
			if (n > 0)
				break;
			srv_fail(&err, RPC_E_EMSGSIZE,
			         "the record '%s' is larger than the frame limit of %u bytes",
			         srv_quote(q, sizeof(q), key, len), s->max_frame);
			one.size = vone.size = 0;
			nv = 0;
			loaded = false;
			if (pack_error_map(&opk, &err))
				goto oom;
		}
		if (msgpack_sbuffer_write(loaded ? &recs : &errs, one.data, one.size) ||
		    (loaded ? msgpack_pack_nil(&epk) : msgpack_pack_nil(&rpk)) ||
		    msgpack_sbuffer_write(&vals, vone.data, vone.size))
			goto oom;
		nvals += nv;
	}
	if (msgpack_pack_map(c->pk, set ? 3 : 2) || rpc_pack_field(c->pk, RPC_F_RECORDS) ||
	    msgpack_pack_array(c->pk, n) || msgpack_sbuffer_write(c->out, recs.data, recs.size) ||
	    rpc_pack_field(c->pk, RPC_F_ERRORS) || msgpack_pack_array(c->pk, n) ||
	    msgpack_sbuffer_write(c->out, errs.data, errs.size))
		goto oom;
	if (set && (rpc_pack_field(c->pk, RPC_F_VALUES) || msgpack_pack_map(c->pk, nvals) ||
	            msgpack_sbuffer_write(c->out, vals.data, vals.size)))
		goto oom;
	ret = 0;
	goto out;
oom:
	ret = pack_failed(c);
out:
	msgpack_sbuffer_destroy(&recs);
	msgpack_sbuffer_destroy(&errs);
	msgpack_sbuffer_destroy(&vals);
	msgpack_sbuffer_destroy(&one);
	msgpack_sbuffer_destroy(&vone);
	free(set);
	return ret;
}

static int do_stat_value(struct srv_session *s, struct call *c)
{
	const char *key;
	enum rpc_view view;
	size_t len;
	struct view_value vv;
	msgpack_packer *pk = c->pk;
	int r = 0;

	if (param_key(c, 0, "key", false, &key, &len) < 0 || param_view(c, 1, &view) < 0)
		return -1;
	if (view_open(s, key, len, view, &vv, &c->err) < 0)
		return -1;
	r |= msgpack_pack_map(pk, 4);
	r |= rpc_pack_field(pk, RPC_F_KEY);
	r |= rpc_pack_str(pk, vv.key);
	r |= rpc_pack_field(pk, RPC_F_SIZE);
	r |= msgpack_pack_uint64(pk, vv.r.size);
	r |= rpc_pack_field(pk, RPC_F_MTIME);
	r |= msgpack_pack_double(pk, vv.mtime);
	r |= rpc_pack_field(pk, RPC_F_VIEW);
	r |= rpc_pack_str(pk, rpc_view_name(vv.view));
	view_close(&vv);
	return r ? pack_failed(c) : 0;
}

/* Makes room for n more bytes in the sbuffer, so that the bytes are copied once. */
static int sbuffer_reserve(msgpack_sbuffer *sb, size_t n)
{
	if (sb->alloc - sb->size >= n)
		return 0;
	if (n > SIZE_MAX - sb->size)
		return -1;
	size_t want = sb->size + n;
	char *p = realloc(sb->data, want);
	if (!p)
		return -1;
	sb->data = p;
	sb->alloc = want;
	return 0;
}

static int do_load_value(struct srv_session *s, struct call *c)
{
	const char *key;
	enum rpc_view view;
	size_t len;
	uint64_t offset, length, n = 0;
	struct view_value vv;
	int r = 0;

	if (param_key(c, 0, "key", false, &key, &len) < 0)
		return -1;
	if (rpc_obj_uint(param(c, 1), &offset) != 0)
		return bad_type(c, 1, "offset", "a non-negative int");
	if (rpc_obj_uint(param(c, 2), &length) != 0)
		return bad_type(c, 2, "length", "a non-negative int");
	if (param_view(c, 3, &view) < 0)
		return -1;
	if (view_open(s, key, len, view, &vv, &c->err) < 0)
		return -1;
	if (length > s->max_read)
		length = s->max_read;
	if (offset < vv.r.size)
		n = vv.r.size - offset < length ? vv.r.size - offset : length;
	if (c->w->zero_copy && n >= SRV_ZERO_COPY_MIN && !c->w->tail_len) {
		/* within one segment: the bytes follow the frame straight from the value */
		uint64_t o = offset;
		for (size_t i = 0; i < vv.r.nseg; i++) {
			if (o >= vv.r.seg[i].len) {
				o -= vv.r.seg[i].len;
				continue;
			}
			if (vv.r.seg[i].len - o < n)
				break;
			/* writev from a value file cut short fails (EFAULT), ending the
			 * session: refuse this request instead */
			if (srv_value_check_file(vv.value, &c->err) < 0) {
				view_close(&vv);
				return -1;
			}
			if (msgpack_pack_bin(c->pk, (size_t)n) != 0) {
				view_close(&vv);
				return pack_failed(c);
			}
			c->tail = vv.r.seg[i].bytes + o;
			c->tail_len = (size_t)n;
			c->w->held = vv;
			return 0;
		}
	}
	if (sbuffer_reserve(c->out, (size_t)n + 8) != 0) {
		view_close(&vv);
		return pack_failed(c);
	}
	r |= msgpack_pack_bin(c->pk, (size_t)n);
	r |= pack_view_range(c->pk, &vv.r, offset, n);
	/* bytes read from a value file truncated under us read as zeros: refuse them */
	if (r == 0 && srv_value_check(vv.value, &c->err) < 0) {
		view_close(&vv);
		return -1;
	}
	drop_view_range(&vv, offset, n);
	view_close(&vv);
	return r ? pack_failed(c) : 0;
}

static int do_contains(struct srv_session *s, struct call *c)
{
	const char *key;
	size_t len;
	bool found = false;

	if (param_str(c, 0, "key", &key, &len) < 0)
		return -1;
	/* anything that is not a well-formed prefix is simply not stored */
	if (rpc_key_prefix_valid(key, len) && srv_contains(s->cache, key, len, &found, &c->err) < 0)
		return -1;
	PACK(c, pack_bool(c->pk, found));
	return 0;
}

static int do_expand(struct srv_session *s, struct call *c)
{
	const char *key;
	size_t len;
	char full[RPC_KEY_LEN + 1];

	if (param_key(c, 0, "prefix", false, &key, &len) < 0)
		return -1;
	if (srv_expand(s->cache, key, len, full, &c->err) < 0)
		return -1;
	PACK(c, rpc_pack_strn(c->pk, full, strnlen(full, RPC_KEY_LEN)));
	return 0;
}

static int do_shrink(struct srv_session *s, struct call *c)
{
	const char *key;
	size_t len;
	char out[RPC_KEY_LEN + 1];
	char q[256];

	if (param_key(c, 0, "key", false, &key, &len) < 0)
		return -1;
	if (len != RPC_KEY_LEN)
		return srv_fail(&c->err, RPC_E_ENOENT,
		                "'%s' is not a full key: shrink needs one of 64 characters",
		                srv_quote(q, sizeof(q), key, len));
	if (srv_shrink(s->cache, key, len, out, &c->err) < 0)
		return -1;
	PACK(c, rpc_pack_strn(c->pk, out, strnlen(out, RPC_KEY_LEN)));
	return 0;
}

static int do_evict(struct srv_session *s, struct call *c)
{
	const char *key;
	size_t len;

	if (param_key(c, 0, "key", false, &key, &len) < 0)
		return -1;
	if (srv_evict(s->cache, key, len, &c->err) < 0)
		return -1;
	PACK(c, msgpack_pack_nil(c->pk));
	return 0;
}

/* put_value(key, offset, data, final): save.h's srv_put_value. */
static int do_put_value(struct srv_session *s, struct call *c)
{
	const char *key;
	const void *data;
	size_t len, dlen;
	uint64_t off;
	bool final, exists = false;

	if (param_key(c, 0, "key", true, &key, &len) < 0)
		return -1;
	if (rpc_obj_uint(param(c, 1), &off) != 0)
		return bad_type(c, 1, "offset", "an int >= 0");
	if (rpc_obj_bin(param(c, 2), &data, &dlen) != 0)
		return bad_type(c, 2, "data", "a bin");
	if (rpc_obj_bool(param(c, 3), &final) != 0)
		return bad_type(c, 3, "final", "a bool");
	if (srv_put_value(s->cache, key, len, off, data, dlen, final, &exists, &c->err) < 0)
		return -1;
	return pack_bool_answer(c, RPC_F_EXISTS, exists);
}

/* save(call, record): save.h's srv_save_call. */
static int do_save(struct srv_session *s, struct call *c)
{
	const msgpack_object *call = param(c, 0), *rec = param(c, 1);
	const void *data = NULL;
	size_t dlen = 0;
	bool existed = false;

	if (!call || call->type != MSGPACK_OBJECT_MAP)
		return bad_type(c, 0, "call", "a map");
	if (!rpc_obj_is_nil(rec) && rpc_obj_bin(rec, &data, &dlen) != 0)
		return bad_type(c, 1, "record", "a bin or nil");
	if (srv_save_call(s->cache, call, data, dlen, &existed, &c->err) < 0)
		return -1;
	return pack_bool_answer(c, RPC_F_EXISTED, existed);
}

/* Checks a query template's shape; the cache matches it. */
static int check_template(struct call *c, const msgpack_object *t)
{
	char q[256];
	if (t->type != MSGPACK_OBJECT_MAP)
		return bad_type(c, 0, "template", "a map");
	for (uint32_t i = 0; i < t->via.map.size; i++) {
		const msgpack_object *k = &t->via.map.ptr[i].key;
		const msgpack_object *v = &t->via.map.ptr[i].val;
		const char *ks;
		size_t kl;
		if (rpc_obj_str(k, &ks, &kl) != 0)
			return srv_fail(&c->err, RPC_E_EINVAL,
			                "the query template's fields must be str");
		if (rpc_obj_is_field(k, RPC_F_NAME)) {
			if (v->type != MSGPACK_OBJECT_STR)
				return srv_fail(&c->err, RPC_E_EINVAL,
				                "template field 'name' must be a str");
		} else if (rpc_obj_is_field(k, RPC_F_MODULE)) {
			if (v->type != MSGPACK_OBJECT_STR && v->type != MSGPACK_OBJECT_NIL)
				return srv_fail(&c->err, RPC_E_EINVAL,
				                "template field 'module' must be a str or nil");
		} else if (rpc_obj_is_field(k, RPC_F_VERSION)) {
			if (v->type != MSGPACK_OBJECT_STR && v->type != MSGPACK_OBJECT_NIL &&
			    v->type != MSGPACK_OBJECT_POSITIVE_INTEGER &&
			    v->type != MSGPACK_OBJECT_NEGATIVE_INTEGER)
				return srv_fail(
				    &c->err, RPC_E_EINVAL,
				    "template field 'version' must be a str, int or nil");
		} else if (rpc_obj_is_field(k, RPC_F_ARGUMENTS)) {
			if (v->type != MSGPACK_OBJECT_MAP)
				return srv_fail(&c->err, RPC_E_EINVAL,
				                "template field 'arguments' must be a map");
			for (uint32_t j = 0; j < v->via.map.size; j++) {
				const char *as;
				size_t al;
				if (rpc_obj_str(&v->via.map.ptr[j].key, &as, &al) != 0)
					return srv_fail(&c->err, RPC_E_EINVAL,
					                "argument names in a template must be str");
				if (rpc_obj_str(&v->via.map.ptr[j].val, &as, &al) != 0 ||
				    !rpc_key_valid(as, al))
					return srv_fail(
					    &c->err, RPC_E_EINVAL,
					    "argument values in a template must be keys "
					    "(64 lowercase hex characters)");
			}
		} else if (rpc_obj_is_field(k, RPC_F_METADATA)) {
			if (v->type != MSGPACK_OBJECT_MAP)
				return srv_fail(&c->err, RPC_E_EINVAL,
				                "template field 'metadata' must be a map");
			for (uint32_t j = 0; j < v->via.map.size; j++) {
				if (v->via.map.ptr[j].key.type != MSGPACK_OBJECT_STR ||
				    v->via.map.ptr[j].val.type != MSGPACK_OBJECT_MAP)
					return srv_fail(&c->err, RPC_E_EINVAL,
					                "template metadata must map block names "
					                "(str) to maps");
				const msgpack_object *blk = &v->via.map.ptr[j].val;
				for (uint32_t m = 0; m < blk->via.map.size; m++)
					if (blk->via.map.ptr[m].key.type != MSGPACK_OBJECT_STR)
						return srv_fail(&c->err, RPC_E_EINVAL,
						                "template metadata keys must "
						                "be str");
			}
		} else {
			return srv_fail(&c->err, RPC_E_EINVAL, "unknown query template field '%s'",
			                srv_quote(q, sizeof(q), ks, kl));
		}
	}
	return 0;
}

static int do_query(struct srv_session *s, struct call *c)
{
	char after[RPC_KEY_LEN + 1];
	size_t limit;
	bool detail;
	struct srv_page page = {0};
	int ret;

	if (check_template(c, param(c, 0)) < 0 || param_after_key(c, 1, after) < 0 ||
	    param_limit(c, 2, &limit) < 0 || param_opt_bool(c, 3, "detail", &detail) < 0)
		return -1;
	if (srv_query(s->cache, param(c, 0), after[0] ? after : NULL, limit, detail, &page,
	              &c->err) < 0)
		return -1;
	if (page.n > limit)
		page.n = limit;
	ret = pack_page(c, &page, SRV_CALLS, detail);
	srv_page_release(&page);
	return ret;
}

static int do_names(struct srv_session *s, struct call *c)
{
	const char *after_s = NULL;
	size_t after_len = 0;
	char *after = NULL;
	size_t limit;
	struct srv_names names = {0};
	msgpack_packer *pk = c->pk;
	int r = 0;

	if (!param_absent(c, 0)) {
		if (param_str(c, 0, "after", &after_s, &after_len) < 0)
			return -1;
		if (memchr(after_s, '\0', after_len))
			return srv_fail(&c->err, RPC_E_EINVAL, "a name holds no NUL character");
		after = msgpack_zone_malloc(&c->w->zone, after_len + 1);
		if (!after)
			return pack_failed(c);
		memcpy(after, after_s, after_len);
		after[after_len] = '\0';
	}
	if (param_limit(c, 1, &limit) < 0)
		return -1;
	if (srv_names(s->cache, after, limit, &names, &c->err) < 0)
		return -1;
	size_t n = names.n < limit ? names.n : limit;
	r |= msgpack_pack_map(pk, 2);
	r |= rpc_pack_field(pk, RPC_F_NAMES);
	r |= msgpack_pack_array(pk, (uint32_t)n);
	for (size_t i = 0; i < n; i++)
		r |= rpc_pack_str(pk, names.names[i] ? names.names[i] : "");
	r |= rpc_pack_field(pk, RPC_F_COMPLETE);
	r |= pack_bool(pk, names.n <= limit && names.complete);
	srv_names_release(&names);
	return r ? pack_failed(c) : 0;
}

/* The kind of a record or entry as list_record answers it. */
static const char *pathrec_kind_name(enum srv_pathrec_kind kind)
{
	return rpc_field_name(kind == SRV_PATHREC_DIR ? RPC_F_DIRECTORY : RPC_F_FILE);
}

static int do_list_record(struct srv_session *s, struct call *c)
{
	const char *key;
	size_t len;
	struct srv_pathlist l;
	msgpack_packer *pk = c->pk;
	uint32_t n;
	int r = 0;

	if (param_key(c, 0, "key", false, &key, &len) < 0)
		return -1;
	if (srv_pathlist_load(s->cache, key, len, &l, &c->err) < 0) {
		srv_pathlist_release(&l);
		return -1;
	}
	n = (uint32_t)l.n;
	r |= msgpack_pack_map(pk, 8);
	r |= rpc_pack_field(pk, RPC_F_KEY);
	r |= rpc_pack_str(pk, l.key);
	r |= rpc_pack_field(pk, RPC_F_KIND);
	r |= rpc_pack_str(pk, pathrec_kind_name(l.kind));
	r |= rpc_pack_field(pk, RPC_F_RECORD_MTIME);
	r |= msgpack_pack_double(pk, l.mtime);
	r |= rpc_pack_field(pk, RPC_F_NAMES);
	r |= msgpack_pack_array(pk, n);
	for (size_t i = 0; i < l.n; i++)
		r |= rpc_pack_str(pk, l.entries[i].name);
	r |= rpc_pack_field(pk, RPC_F_KINDS);
	r |= msgpack_pack_array(pk, n);
	for (size_t i = 0; i < l.n; i++)
		r |= rpc_pack_str(pk, pathrec_kind_name(l.entries[i].kind));
	r |= rpc_pack_field(pk, RPC_F_KEYS);
	r |= msgpack_pack_array(pk, n);
	for (size_t i = 0; i < l.n; i++)
		r |= rpc_pack_str(pk, l.entries[i].key);
	r |= rpc_pack_field(pk, RPC_F_SIZE);
	r |= msgpack_pack_array(pk, n);
	for (size_t i = 0; i < l.n; i++)
		r |= msgpack_pack_uint64(pk, l.entries[i].size);
	r |= rpc_pack_field(pk, RPC_F_MTIME);
	r |= msgpack_pack_array(pk, n);
	for (size_t i = 0; i < l.n; i++)
		r |= msgpack_pack_double(pk, l.entries[i].mtime);
	srv_pathlist_release(&l);
	return r ? pack_failed(c) : 0;
}

/* The handler of every method of RPC_METHODS; one without is ENOSYS. */
static const handler_fn handlers[RPC_M__COUNT] = {
    [RPC_M_HELLO] = do_hello,
    [RPC_M_INFO] = do_info,
    [RPC_M_LIST] = do_list,
    [RPC_M_LOAD] = do_load,
    [RPC_M_STAT_VALUE] = do_stat_value,
    [RPC_M_LOAD_VALUE] = do_load_value,
    [RPC_M_CONTAINS] = do_contains,
    [RPC_M_EXPAND] = do_expand,
    [RPC_M_SHRINK] = do_shrink,
    [RPC_M_EVICT] = do_evict,
    [RPC_M_QUERY] = do_query,
    [RPC_M_NAMES] = do_names,
    [RPC_M_PUT_VALUE] = do_put_value,
    [RPC_M_SAVE] = do_save,
    [RPC_M_LIST_RECORD] = do_list_record,
    [RPC_M_LOAD_MANY] = do_load_many,
};

/* -------------------------------------------------------------------------------- */
/* Sessions */

static int worker_init(struct srv_worker *w)
{
	memset(w, 0, sizeof(*w));
	return msgpack_zone_init(&w->zone, 64 * 1024) ? 0 : -ENOMEM;
}

static void worker_release(struct srv_worker *w)
{
	view_close(&w->held);
	msgpack_zone_destroy(&w->zone);
}

struct srv_worker *srv_worker_new(void)
{
	struct srv_worker *w = malloc(sizeof(*w));

	if (w && worker_init(w) != 0) {
		free(w);
		return NULL;
	}
	if (w)
		w->zero_copy = true;
	return w;
}

void srv_worker_free(struct srv_worker *w)
{
	if (!w)
		return;
	worker_release(w);
	free(w);
}

const uint8_t *srv_worker_tail(const struct srv_worker *w, size_t *len)
{
	*len = w->tail_len;
	return w->tail_len ? w->tail : NULL;
}

void srv_worker_tail_done(struct srv_worker *w)
{
	if (w->tail_len && w->held.value) /* written: not kept resident (cache.h) */
		srv_value_drop_pages(w->held.value, w->tail, w->tail_len);
	w->tail = NULL;
	w->tail_len = 0;
	view_close(&w->held);
}

struct srv_session *srv_session_new(struct srv_cache *cache, const struct srv_serve_options *opt)
{
	struct srv_session *s;
	struct srv_layout l;
	uint32_t max = opt && opt->max_frame ? opt->max_frame : RPC_MAX_FRAME_DEFAULT;

	if (max < RPC_MAX_FRAME_MIN || max > RPC_MAX_FRAME_LIMIT)
		return NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	if (worker_init(&s->own) != 0) {
		free(s);
		return NULL;
	}
	s->cache = cache;
	s->max_frame = max;
	s->max_read = max - RPC_RESPONSE_OVERHEAD;
	atomic_init(&s->hello_done, false);
	s->config = opt ? opt->config : NULL;
	s->config_len = opt ? opt->config_len : 0;
	srv_cache_layout(cache, &l);
	s->read_only = l.read_only;
	return s;
}

uint32_t srv_session_max_frame(const struct srv_session *s)
{
	return s->max_frame;
}

bool srv_session_ready(const struct srv_session *s)
{
	return atomic_load(&s->hello_done);
}

void srv_session_free(struct srv_session *s)
{
	if (!s)
		return;
	worker_release(&s->own);
	free(s);
}

/* Packs the error in c->err as the whole response to msgid. */
static int pack_error(msgpack_packer *pk, uint32_t msgid, const struct srv_error *e)
{
	enum rpc_error code = e->code;
	const char *msg = e->message[0] ? e->message : NULL;

	if (code <= RPC_OK || code >= RPC_E__COUNT)
		code = RPC_E_EIO;
	if (code == RPC_E_AMBIGUOUS) {
		const char *cand[SRV_MAX_CANDIDATES];
		size_t n =
		    e->ncandidates < SRV_MAX_CANDIDATES ? e->ncandidates : SRV_MAX_CANDIDATES;
		for (size_t i = 0; i < n; i++)
			cand[i] = e->candidates[i];
		return rpc_pack_response_ambiguous(pk, msgid, msg, cand, n, e->needed);
	}
	return rpc_pack_response_error(pk, msgid, code, msg);
}

/* Runs the handler of req and leaves one complete response frame at the end of out. */
static int answer(struct srv_session *s, struct srv_worker *w, const struct rpc_request *req,
                  msgpack_sbuffer *out)
{
	msgpack_packer pk;
	size_t start, body;
	const struct rpc_method_info *h;
	handler_fn fn;
	enum rpc_method m;
	struct call c;
	char q[256];
	int r = -1;

	msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
	if (rpc_frame_begin_at(out, &start) != 0)
		return -ENOMEM;
	body = start + RPC_FRAME_HEADER;

	memset(&c, 0, sizeof(c));
	c.w = w;
	c.params = req->params;
	c.nparams = req->params->via.array.size;
	c.pk = &pk;
	c.out = out;
	m = rpc_method_lookup(req->method, req->method_len);
	h = rpc_method_info(m);
	fn = h ? handlers[m] : NULL;
	c.method = h ? h->name : "?";
	if (!atomic_load(&s->hello_done) && !(h && (h->flags & RPC_METHOD_BEFORE_HELLO))) {
		srv_fail(&c.err, RPC_E_EPROTO, "the first request must be hello, not '%s'",
		         srv_quote(q, sizeof(q), req->method, req->method_len));
	} else if (!fn) {
		srv_fail(&c.err, RPC_E_ENOSYS, "unknown method '%s'",
		         srv_quote(q, sizeof(q), req->method, req->method_len));
	} else if (c.nparams < h->min_params || c.nparams > h->max_params) {
		if (h->min_params == h->max_params)
			srv_fail(&c.err, RPC_E_EINVAL, "%s takes %u parameter%s, not %u", h->name,
			         h->min_params, h->min_params == 1 ? "" : "s", c.nparams);
		else
			srv_fail(&c.err, RPC_E_EINVAL, "%s takes %u to %u parameters, not %u",
			         h->name, h->min_params, h->max_params, c.nparams);
	} else if ((h->flags & RPC_METHOD_WRITES) && s->read_only) {
		srv_fail(&c.err, RPC_E_EROFS, "the cache is served read-only: %s is refused",
		         h->name);
	} else if (rpc_pack_response_ok_head(&pk, req->msgid) != 0) {
		pack_failed(&c);
	} else {
		r = fn(s, &c);
	}
	if (r == 0) {
		/* the handler packed a result: close the frame */
		int fr;
		if (c.tail_len) {
			size_t n = out->size - body + c.tail_len;
			fr = n <= s->max_frame ? 0 : -EMSGSIZE;
			if (fr == 0) {
				rpc_frame_put_header((uint8_t *)out->data + start, (uint32_t)n);
				w->tail = c.tail;
				w->tail_len = c.tail_len;
				return 0;
			}
			view_close(&w->held);
		} else {
			fr = rpc_frame_end_at(out, start, s->max_frame);
			if (fr == 0)
				return 0;
		}
		if (fr == -EMSGSIZE)
			srv_fail(&c.err, RPC_E_EMSGSIZE,
			         "the answer to %s is larger than the frame limit of %u bytes",
			         c.method, s->max_frame);
		else
			pack_failed(&c);
	}
	/* cut off whatever was packed and answer the error instead */
	out->size = body;
	if (pack_error(&pk, req->msgid, &c.err) != 0 ||
	    rpc_frame_end_at(out, start, s->max_frame) != 0) {
		out->size = start;
		return -ENOMEM;
	}
	return 0;
}

int srv_worker_handle(struct srv_session *s, struct srv_worker *w, const void *msg, size_t len,
                      msgpack_sbuffer *out, char *err, size_t errlen)
{
	struct rpc_request req;
	bool have_msgid = false;
	char derr[256] = "";
	int r;

	memset(&req, 0, sizeof(req));
	msgpack_zone_clear(&w->zone);
	r = rpc_request_decode(msg, len, &w->zone, &req, &have_msgid, derr, sizeof(derr));
	if (r == 0) {
		r = answer(s, w, &req, out);
		if (r < 0 && err && errlen)
			snprintf(err, errlen, "out of memory answering request %" PRIu32,
			         req.msgid);
		return r;
	}
	if (!have_msgid) {
		if (err && errlen)
			snprintf(err, errlen, "malformed message: %s",
			         derr[0] ? derr : "not a request");
		return -EPROTO;
	}
	/* a msgid is readable: answer it and go on */
	size_t start;
	msgpack_packer pk;
	msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
	if (rpc_frame_begin_at(out, &start) != 0)
		goto nomem;
	if (r == -ENOMEM)
		r = rpc_pack_response_error(&pk, req.msgid, RPC_E_ENOMEM, NULL);
	else
		r = rpc_pack_response_errorf(&pk, req.msgid, RPC_E_EPROTO,
		                             "not a valid request: %s",
		                             derr[0] ? derr : "malformed");
	if (r != 0 || rpc_frame_end_at(out, start, s->max_frame) != 0) {
		out->size = start;
		goto nomem;
	}
	return 0;
nomem:
	if (err && errlen)
		snprintf(err, errlen, "out of memory answering request %" PRIu32, req.msgid);
	return -ENOMEM;
}

int srv_session_handle(struct srv_session *s, const void *msg, size_t len, msgpack_sbuffer *out,
                       char *err, size_t errlen)
{
	return srv_worker_handle(s, &s->own, msg, len, out, err, errlen);
}

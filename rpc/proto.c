/*
 * proto.c: the method, view and field tables of proto.h, generated from their
 * X-macros, and the typed request encoders and result decoders.
 */
#include "proto.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "msg.h"

static const struct rpc_method_info rpc_methods[RPC_M__COUNT] = {
#define RPC_METHOD_ROW(id, nm, min, max, fl) [RPC_M_##id] = {nm, min, max, fl},
    RPC_METHODS(RPC_METHOD_ROW)
#undef RPC_METHOD_ROW
};

static const char *const rpc_views[RPC_VIEW__COUNT] = {
#define RPC_VIEW_ROW(id, nm) [RPC_VIEW_##id] = nm,
    RPC_VIEWS(RPC_VIEW_ROW)
#undef RPC_VIEW_ROW
};

static const char *const rpc_fields[RPC_F__COUNT] = {
#define RPC_FIELD_ROW(id, nm) [RPC_F_##id] = nm,
    RPC_FIELDS(RPC_FIELD_ROW)
#undef RPC_FIELD_ROW
};

const struct rpc_method_info *rpc_method_info(enum rpc_method m)
{
	return (unsigned)m < RPC_M__COUNT ? &rpc_methods[m] : NULL;
}

const char *rpc_method_name(enum rpc_method m)
{
	return (unsigned)m < RPC_M__COUNT ? rpc_methods[m].name : "?";
}

/* Index of s[0..len) in names[0..n), or n. */
static unsigned lookup(const char *const *names, size_t stride, unsigned n, const char *s,
                       size_t len)
{
	for (unsigned i = 0; i < n; i++) {
		const char *name = *(const char *const *)((const char *)names + i * stride);
		if (strlen(name) == len && memcmp(name, s, len) == 0)
			return i;
	}
	return n;
}

enum rpc_method rpc_method_lookup(const char *s, size_t len)
{
	return (enum rpc_method)lookup(&rpc_methods[0].name, sizeof(rpc_methods[0]), RPC_M__COUNT,
	                               s, len);
}

const char *rpc_view_name(enum rpc_view v)
{
	return (unsigned)v < RPC_VIEW__COUNT ? rpc_views[v] : "?";
}

enum rpc_view rpc_view_lookup(const char *s, size_t len)
{
	return (enum rpc_view)lookup(rpc_views, sizeof(rpc_views[0]), RPC_VIEW__COUNT, s, len);
}

const char *rpc_field_name(enum rpc_field f)
{
	return (unsigned)f < RPC_F__COUNT ? rpc_fields[f] : "?";
}

int rpc_pack_field(msgpack_packer *pk, enum rpc_field f)
{
	return rpc_pack_str(pk, rpc_field_name(f));
}

const msgpack_object *rpc_map_field(const msgpack_object *map, enum rpc_field f)
{
	return rpc_map_get(map, rpc_field_name(f));
}

bool rpc_obj_is_field(const msgpack_object *o, enum rpc_field f)
{
	return rpc_obj_str_eq(o, rpc_field_name(f));
}

/* ---------------------------------------------------------------- requests */

#define TRY(expr)                                                                                  \
	do {                                                                                       \
		if ((expr) != 0)                                                                   \
			return -ENOMEM;                                                            \
	} while (0)

static int head(msgpack_packer *pk, uint32_t msgid, enum rpc_method m, uint32_t nparams)
{
	return rpc_pack_request_head(pk, msgid, rpc_method_name(m), nparams);
}

static int pack_limit(msgpack_packer *pk, uint32_t limit)
{
	return limit ? msgpack_pack_uint32(pk, limit) : msgpack_pack_nil(pk);
}

static int pack_view(msgpack_packer *pk, enum rpc_view view)
{
	if (view == RPC_VIEW_PICKLE)
		return msgpack_pack_nil(pk);
	return rpc_pack_str(pk, rpc_view_name(view));
}

static int pack_bool(msgpack_packer *pk, bool b)
{
	return b ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
}

/* A request whose one parameter is a key or prefix. */
static int pack_key_request(msgpack_packer *pk, uint32_t msgid, enum rpc_method m, const char *key)
{
	TRY(head(pk, msgid, m, 1));
	TRY(rpc_pack_str(pk, key));
	return 0;
}

int rpc_pack_hello(msgpack_packer *pk, uint32_t msgid, int protocol, const char *client_name)
{
	TRY(head(pk, msgid, RPC_M_HELLO, 2));
	TRY(msgpack_pack_int(pk, protocol));
	TRY(rpc_pack_str(pk, client_name));
	return 0;
}

int rpc_pack_info(msgpack_packer *pk, uint32_t msgid)
{
	return head(pk, msgid, RPC_M_INFO, 0) ? -ENOMEM : 0;
}

int rpc_pack_list(msgpack_packer *pk, uint32_t msgid, enum rpc_kind kind, const char *after,
                  uint32_t limit, bool detail)
{
	TRY(head(pk, msgid, RPC_M_LIST, 4));
	TRY(rpc_pack_field(pk, kind == RPC_KIND_CALLS ? RPC_F_CALLS : RPC_F_VALUES));
	TRY(rpc_pack_str(pk, after));
	TRY(pack_limit(pk, limit));
	TRY(pack_bool(pk, detail));
	return 0;
}

int rpc_pack_load(msgpack_packer *pk, uint32_t msgid, const char *key)
{
	return pack_key_request(pk, msgid, RPC_M_LOAD, key);
}

int rpc_pack_stat_value(msgpack_packer *pk, uint32_t msgid, const char *key, enum rpc_view view)
{
	TRY(head(pk, msgid, RPC_M_STAT_VALUE, 2));
	TRY(rpc_pack_str(pk, key));
	TRY(pack_view(pk, view));
	return 0;
}

int rpc_pack_load_value(msgpack_packer *pk, uint32_t msgid, const char *key, uint64_t offset,
                        uint64_t length, enum rpc_view view)
{
	TRY(head(pk, msgid, RPC_M_LOAD_VALUE, 4));
	TRY(rpc_pack_str(pk, key));
	TRY(msgpack_pack_uint64(pk, offset));
	TRY(msgpack_pack_uint64(pk, length));
	TRY(pack_view(pk, view));
	return 0;
}

int rpc_pack_contains(msgpack_packer *pk, uint32_t msgid, const char *key)
{
	return pack_key_request(pk, msgid, RPC_M_CONTAINS, key);
}

int rpc_pack_expand(msgpack_packer *pk, uint32_t msgid, const char *prefix)
{
	return pack_key_request(pk, msgid, RPC_M_EXPAND, prefix);
}

int rpc_pack_shrink(msgpack_packer *pk, uint32_t msgid, const char *key)
{
	return pack_key_request(pk, msgid, RPC_M_SHRINK, key);
}

int rpc_pack_evict(msgpack_packer *pk, uint32_t msgid, const char *key)
{
	return pack_key_request(pk, msgid, RPC_M_EVICT, key);
}

int rpc_pack_query_name(msgpack_packer *pk, uint32_t msgid, const char *name, const char *after,
                        uint32_t limit, bool detail)
{
	TRY(head(pk, msgid, RPC_M_QUERY, 4));
	TRY(msgpack_pack_map(pk, 1));
	TRY(rpc_pack_field(pk, RPC_F_NAME));
	TRY(rpc_pack_str(pk, name));
	TRY(rpc_pack_str(pk, after));
	TRY(pack_limit(pk, limit));
	TRY(pack_bool(pk, detail));
	return 0;
}

int rpc_pack_query(msgpack_packer *pk, uint32_t msgid, const void *tmpl, size_t len,
                   const char *after, uint32_t limit, bool detail)
{
	TRY(head(pk, msgid, RPC_M_QUERY, 4));
	TRY(pk->callback(pk->data, tmpl, len));
	TRY(rpc_pack_str(pk, after));
	TRY(pack_limit(pk, limit));
	TRY(pack_bool(pk, detail));
	return 0;
}

int rpc_pack_names(msgpack_packer *pk, uint32_t msgid, const char *after, uint32_t limit)
{
	TRY(head(pk, msgid, RPC_M_NAMES, 2));
	TRY(rpc_pack_str(pk, after));
	TRY(pack_limit(pk, limit));
	return 0;
}

int rpc_pack_put_value(msgpack_packer *pk, uint32_t msgid, const char *key, uint64_t offset,
                       const void *data, size_t len, bool final)
{
	TRY(head(pk, msgid, RPC_M_PUT_VALUE, 4));
	TRY(rpc_pack_str(pk, key));
	TRY(msgpack_pack_uint64(pk, offset));
	TRY(rpc_pack_bin(pk, data, len));
	TRY(pack_bool(pk, final));
	return 0;
}

int rpc_pack_save(msgpack_packer *pk, uint32_t msgid, const void *call, size_t call_len,
                  const void *record, size_t record_len)
{
	TRY(head(pk, msgid, RPC_M_SAVE, 2));
	TRY(pk->callback(pk->data, call, call_len));
	if (record)
		TRY(rpc_pack_bin(pk, record, record_len));
	else
		TRY(msgpack_pack_nil(pk));
	return 0;
}

int rpc_pack_list_record(msgpack_packer *pk, uint32_t msgid, const char *key)
{
	return pack_key_request(pk, msgid, RPC_M_LIST_RECORD, key);
}

int rpc_pack_load_many(msgpack_packer *pk, uint32_t msgid, const char (*keys)[RPC_KEY_LEN + 1],
                       size_t n, bool values)
{
	if (n == 0 || n > RPC_LOAD_MANY_MAX)
		return -EINVAL;
	TRY(head(pk, msgid, RPC_M_LOAD_MANY, values ? 2 : 1));
	TRY(msgpack_pack_array(pk, (uint32_t)n));
	for (size_t i = 0; i < n; i++)
		TRY(rpc_pack_str(pk, keys[i]));
	if (values)
		TRY(msgpack_pack_true(pk));
	return 0;
}

/* ---------------------------------------------------------------- results */

__attribute__((format(printf, 3, 4))) static int bad(char *err, size_t errlen, const char *fmt,
                                                     ...)
{
	if (err && errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EPROTO;
}

static void field_str(const msgpack_object *map, enum rpc_field f, const char **s, size_t *len)
{
	*s = "";
	*len = 0;
	rpc_obj_str(rpc_map_field(map, f), s, len);
}

static uint32_t field_u32(const msgpack_object *map, enum rpc_field f)
{
	uint64_t v;
	if (rpc_obj_uint(rpc_map_field(map, f), &v) == 0 && v <= UINT32_MAX)
		return (uint32_t)v;
	return 0;
}

int rpc_decode_hello(const msgpack_object *result, struct rpc_hello *out, char *err,
                     size_t errlen)
{
	memset(out, 0, sizeof(*out));
	if (!result || result->type != MSGPACK_OBJECT_MAP ||
	    rpc_obj_int(rpc_map_field(result, RPC_F_PROTOCOL), &out->protocol))
		return bad(err, errlen, "the server's answer to hello has no protocol version");
	field_str(result, RPC_F_PROGRAM, &out->program, &out->program_len);
	field_str(result, RPC_F_VERSION, &out->version, &out->version_len);
	field_str(result, RPC_F_HOSTNAME, &out->hostname, &out->hostname_len);
	rpc_obj_bool(rpc_map_field(result, RPC_F_READ_ONLY), &out->read_only);
	out->max_frame = field_u32(result, RPC_F_MAX_FRAME);
	out->max_read = field_u32(result, RPC_F_MAX_READ);
	out->page_default = field_u32(result, RPC_F_PAGE_DEFAULT);
	out->page_max = field_u32(result, RPC_F_PAGE_MAX);
	out->views = 1u << RPC_VIEW_PICKLE; /* always */
	const msgpack_object *vl = rpc_map_field(result, RPC_F_VIEWS);
	for (uint32_t k = 0; vl && vl->type == MSGPACK_OBJECT_ARRAY && k < vl->via.array.size;
	     k++) {
		const char *vs;
		size_t vn;
		enum rpc_view v;
		if (rpc_obj_str(&vl->via.array.ptr[k], &vs, &vn) == 0 &&
		    (v = rpc_view_lookup(vs, vn)) != RPC_VIEW__COUNT)
			out->views |= 1u << v;
	}
	const msgpack_object *layout = rpc_map_field(result, RPC_F_LAYOUT);
	field_str(layout, RPC_F_ROOT, &out->root, &out->root_len);
	field_str(rpc_map_field(layout, RPC_F_CALLS), RPC_F_TYPE, &out->calls_type,
	          &out->calls_type_len);
	out->presence_known =
	    rpc_obj_bool(rpc_map_field(rpc_map_field(layout, RPC_F_CALLS), RPC_F_PRESENT),
	                 &out->calls_present) == 0 &&
	    rpc_obj_bool(rpc_map_field(rpc_map_field(layout, RPC_F_VALUES), RPC_F_PRESENT),
	                 &out->values_present) == 0;
	if (rpc_obj_bool(rpc_map_field(layout, RPC_F_FLECHE_TOML), &out->fleche_toml) != 0)
		out->fleche_toml = false;
	return 0;
}

int rpc_decode_stat_value(const msgpack_object *result, struct rpc_stat_value *out, char *err,
                          size_t errlen)
{
	const char *k;
	size_t kl;
	uint64_t size;

	memset(out, 0, sizeof(*out));
	if (!result || result->type != MSGPACK_OBJECT_MAP)
		return bad(err, errlen, "the answer to stat_value is not a map");
	if (rpc_obj_uint(rpc_map_field(result, RPC_F_SIZE), &size) || size > INT64_MAX)
		return bad(err, errlen, "the answer to stat_value has no size");
	if (rpc_obj_str(rpc_map_field(result, RPC_F_KEY), &k, &kl) == 0) {
		if (!rpc_key_valid(k, kl))
			return bad(err, errlen, "the answer to stat_value has a bad key");
		memcpy(out->key, k, RPC_KEY_LEN);
	}
	out->size = size;
	rpc_obj_double(rpc_map_field(result, RPC_F_MTIME), &out->mtime);
	return 0;
}

/* An optional detail array of a page: an array of n elements, else NULL. */
static void detail_array(const msgpack_object *result, enum rpc_field f, uint32_t n,
                         const msgpack_object **out)
{
	const msgpack_object *a = rpc_map_field(result, f);
	*out = a && a->type == MSGPACK_OBJECT_ARRAY && a->via.array.size == n ? a : NULL;
}

int rpc_decode_page(const msgpack_object *result, struct rpc_page *out, char *err, size_t errlen)
{
	const msgpack_object *keys;

	memset(out, 0, sizeof(*out));
	if (!result || result->type != MSGPACK_OBJECT_MAP)
		return bad(err, errlen, "a page is not a map");
	keys = rpc_map_field(result, RPC_F_KEYS);
	if (!keys || keys->type != MSGPACK_OBJECT_ARRAY ||
	    rpc_obj_bool(rpc_map_field(result, RPC_F_COMPLETE), &out->complete))
		return bad(err, errlen, "a page has no keys or no complete flag");
	out->keys = keys;
	out->n = keys->via.array.size;
	for (uint32_t i = 0; i < out->n; i++)
		if (keys->via.array.ptr[i].type != MSGPACK_OBJECT_STR)
			return bad(err, errlen, "entry %u of a page is not a str", i);
	detail_array(result, RPC_F_MTIME, out->n, &out->mtime);
	detail_array(result, RPC_F_SIZE, out->n, &out->size);
	detail_array(result, RPC_F_NAME, out->n, &out->name);
	detail_array(result, RPC_F_STAMP, out->n, &out->stamp);
	return 0;
}

void rpc_page_entry(const struct rpc_page *page, uint32_t i, struct rpc_page_entry *out)
{
	int64_t size;

	memset(out, 0, sizeof(*out));
	rpc_obj_str(&page->keys->via.array.ptr[i], &out->key, &out->key_len);
	out->is_key = rpc_key_valid(out->key, out->key_len);
	if (page->mtime)
		rpc_obj_double(&page->mtime->via.array.ptr[i], &out->mtime);
	out->size = -1;
	if (page->size && rpc_obj_int(&page->size->via.array.ptr[i], &size) == 0 && size >= 0)
		out->size = size;
	if (page->name &&
	    rpc_obj_str(&page->name->via.array.ptr[i], &out->name, &out->name_len) != 0)
		out->name = NULL;
	if (page->stamp && rpc_obj_uint(&page->stamp->via.array.ptr[i], &out->stamp) != 0)
		out->stamp = 0;
}

int rpc_decode_names(const msgpack_object *result, struct rpc_names_page *out, char *err,
                     size_t errlen)
{
	const msgpack_object *names;

	memset(out, 0, sizeof(*out));
	if (!result || result->type != MSGPACK_OBJECT_MAP)
		return bad(err, errlen, "a page of names is not a map");
	names = rpc_map_field(result, RPC_F_NAMES);
	if (!names || names->type != MSGPACK_OBJECT_ARRAY ||
	    rpc_obj_bool(rpc_map_field(result, RPC_F_COMPLETE), &out->complete))
		return bad(err, errlen, "a page of names has no names or no complete flag");
	for (uint32_t i = 0; i < names->via.array.size; i++)
		if (names->via.array.ptr[i].type != MSGPACK_OBJECT_STR)
			return bad(err, errlen, "entry %u of a page of names is not a str", i);
	out->names = names;
	out->n = names->via.array.size;
	return 0;
}

/* The kind of a record or entry as list_record names it: 1 for a folder, 0 for a file,
 * -1 for anything else. */
static int record_kind(const msgpack_object *o)
{
	if (rpc_obj_is_field(o, RPC_F_DIRECTORY))
		return 1;
	return rpc_obj_is_field(o, RPC_F_FILE) ? 0 : -1;
}

/* The items of list_record's array field f, of n items (the first one read sets n). */
static const msgpack_object *record_array(const msgpack_object *result, enum rpc_field f,
                                          uint32_t *n, bool *ok)
{
	const msgpack_object *a = rpc_map_field(result, f);

	if (!a || a->type != MSGPACK_OBJECT_ARRAY) {
		*ok = false;
		return NULL;
	}
	if (*n == UINT32_MAX)
		*n = a->via.array.size;
	if (a->via.array.size != *n)
		*ok = false;
	return a->via.array.ptr;
}

/* Entry i of l: 0, or -1 when it is malformed. */
static int record_entry(const struct rpc_list_record *l, uint32_t i,
                        struct rpc_list_record_entry *out)
{
	const char *k;
	size_t kl;
	int kind = record_kind(&l->kinds[i]);

	memset(out, 0, sizeof(*out));
	if (kind < 0 || rpc_obj_str(&l->names[i], &out->name, &out->name_len) ||
	    rpc_file_name_refused(out->name, out->name_len) ||
	    rpc_obj_str(&l->keys[i], &k, &kl) || !rpc_key_valid(k, kl) ||
	    rpc_obj_uint(&l->size[i], &out->size) || out->size > INT64_MAX ||
	    rpc_obj_double(&l->mtimes[i], &out->mtime))
		return -1;
	out->is_dir = kind == 1;
	memcpy(out->key, k, RPC_KEY_LEN);
	return 0;
}

int rpc_decode_list_record(const msgpack_object *result, struct rpc_list_record *out, char *err,
                           size_t errlen)
{
	struct rpc_list_record_entry e;
	const char *k;
	size_t kl;
	int kind;
	bool ok = true;

	memset(out, 0, sizeof(*out));
	if (!result || result->type != MSGPACK_OBJECT_MAP)
		return bad(err, errlen, "the answer to list_record is not a map");
	kind = record_kind(rpc_map_field(result, RPC_F_KIND));
	if (kind < 0 || rpc_obj_str(rpc_map_field(result, RPC_F_KEY), &k, &kl) ||
	    !rpc_key_valid(k, kl))
		return bad(err, errlen, "the answer to list_record has no kind or no full key");
	memcpy(out->key, k, RPC_KEY_LEN);
	out->is_dir = kind == 1;
	rpc_obj_double(rpc_map_field(result, RPC_F_RECORD_MTIME), &out->mtime);
	out->n = UINT32_MAX;
	out->names = record_array(result, RPC_F_NAMES, &out->n, &ok);
	out->kinds = record_array(result, RPC_F_KINDS, &out->n, &ok);
	out->keys = record_array(result, RPC_F_KEYS, &out->n, &ok);
	out->size = record_array(result, RPC_F_SIZE, &out->n, &ok);
	out->mtimes = record_array(result, RPC_F_MTIME, &out->n, &ok);
	if (!ok) {
		memset(out, 0, sizeof(*out));
		return bad(err, errlen, "the answer to list_record has no parallel arrays");
	}
	for (uint32_t i = 0; i < out->n; i++)
		if (record_entry(out, i, &e) < 0) {
			memset(out, 0, sizeof(*out));
			return bad(err, errlen, "entry %u of the answer to list_record is malformed",
			           i);
		}
	return 0;
}

void rpc_list_record_entry(const struct rpc_list_record *l, uint32_t i,
                           struct rpc_list_record_entry *out)
{
	record_entry(l, i, out);
}

void rpc_names_entry(const struct rpc_names_page *page, uint32_t i, const char **s, size_t *len)
{
	rpc_obj_str(&page->names->via.array.ptr[i], s, len);
}

int rpc_decode_info(const msgpack_object *result, struct rpc_info *out, char *err,
                    size_t errlen)
{
	memset(out, 0, sizeof(*out));
	if (!result || result->type != MSGPACK_OBJECT_MAP)
		return bad(err, errlen, "the answer to info is not a map");
	if (rpc_obj_uint(rpc_map_field(result, RPC_F_CALL_COUNT), &out->call_count) != 0)
		out->call_count = 0;
	if (rpc_obj_uint(rpc_map_field(result, RPC_F_VALUE_COUNT), &out->value_count) != 0)
		out->value_count = 0;
	out->size_known = rpc_obj_uint(rpc_map_field(result, RPC_F_SIZE), &out->size) == 0;
	return 0;
}

int rpc_decode_key(const msgpack_object *result, char out[RPC_KEY_LEN + 1], char *err,
                   size_t errlen)
{
	const char *k;
	size_t kl;
	out[0] = '\0';
	if (rpc_obj_str(result, &k, &kl) || !rpc_key_prefix_valid(k, kl))
		return bad(err, errlen, "the answer is not a key");
	memcpy(out, k, kl);
	out[kl] = '\0';
	return 0;
}

int rpc_decode_load_many(const msgpack_object *result, size_t asked, struct rpc_load_many *out,
                         char *err, size_t errlen)
{
	const msgpack_object *recs, *errs;

	memset(out, 0, sizeof(*out));
	if (!result || result->type != MSGPACK_OBJECT_MAP)
		return bad(err, errlen, "the answer to load_many is not a map");
	recs = rpc_map_field(result, RPC_F_RECORDS);
	errs = rpc_map_field(result, RPC_F_ERRORS);
	if (!recs || !errs || recs->type != MSGPACK_OBJECT_ARRAY ||
	    errs->type != MSGPACK_OBJECT_ARRAY)
		return bad(err, errlen, "the answer to load_many has no records or errors array");
	if (recs->via.array.size != errs->via.array.size)
		return bad(err, errlen, "load_many answered %u records but %u errors",
		           recs->via.array.size, errs->via.array.size);
	if (recs->via.array.size > asked)
		return bad(err, errlen, "load_many answered %u entries for %zu keys",
		           recs->via.array.size, asked);
	for (uint32_t i = 0; i < recs->via.array.size; i++) {
		msgpack_object_type r = recs->via.array.ptr[i].type, e = errs->via.array.ptr[i].type;
		if (!((r == MSGPACK_OBJECT_MAP && e == MSGPACK_OBJECT_NIL) ||
		      (r == MSGPACK_OBJECT_NIL && e == MSGPACK_OBJECT_MAP)))
			return bad(err, errlen,
			           "entry %u of load_many's answer is not one record or one error", i);
	}
	out->records = recs;
	out->errors = errs;
	out->n = recs->via.array.size;
	out->values = rpc_map_field(result, RPC_F_VALUES);
	if (out->values && out->values->type != MSGPACK_OBJECT_MAP)
		out->values = NULL;
	out->nvalues = out->values ? out->values->via.map.size : 0;
	return 0;
}

/* Sets the views named in o (an array of view names) to state; -EPROTO when o is
 * not an array of str. */
static int view_names(const msgpack_object *o, struct rpc_value_info *out)
{
	if (o->type != MSGPACK_OBJECT_ARRAY)
		return -EPROTO;
	for (uint32_t k = 0; k < o->via.array.size; k++) {
		const char *s;
		size_t len;
		if (rpc_obj_str(&o->via.array.ptr[k], &s, &len))
			return -EPROTO;
		enum rpc_view v = rpc_view_lookup(s, len);
		if (v != RPC_VIEW__COUNT && v != RPC_VIEW_PICKLE)
			out->state[v] = RPC_VIEW_REFUSED;
	}
	return 0;
}

int rpc_load_many_value(const struct rpc_load_many *lm, uint32_t i, struct rpc_value_info *out)
{
	const msgpack_object_kv *kv = &lm->values->via.map.ptr[i];
	const msgpack_object *views, *no, *folder;
	const char *s;
	size_t len;
	bool b;

	memset(out, 0, sizeof(*out));
	out->folder = -1;
	if (rpc_obj_str(&kv->key, &s, &len) || !rpc_key_valid(s, len) ||
	    kv->val.type != MSGPACK_OBJECT_MAP)
		return -EPROTO;
	memcpy(out->key, s, RPC_KEY_LEN);
	views = rpc_map_field(&kv->val, RPC_F_VIEWS);
	if (views) {
		if (views->type != MSGPACK_OBJECT_MAP)
			return -EPROTO;
		for (uint32_t k = 0; k < views->via.map.size; k++) {
			const msgpack_object_kv *e = &views->via.map.ptr[k];
			uint64_t size;
			if (rpc_obj_str(&e->key, &s, &len) || rpc_obj_uint(&e->val, &size))
				return -EPROTO;
			enum rpc_view v = rpc_view_lookup(s, len);
			if (v == RPC_VIEW__COUNT || v == RPC_VIEW_PICKLE)
				continue;
			out->state[v] = RPC_VIEW_APPLIES;
			out->size[v] = size;
		}
	}
	no = rpc_map_field(&kv->val, RPC_F_NO_VIEWS);
	if (no && view_names(no, out))
		return -EPROTO;
	folder = rpc_map_field(&kv->val, RPC_F_FOLDER);
	if (folder && !rpc_obj_is_nil(folder)) {
		if (rpc_obj_bool(folder, &b))
			return -EPROTO;
		out->folder = b;
	}
	return 0;
}

void rpc_load_many_entry(const struct rpc_load_many *lm, uint32_t i,
                         const msgpack_object **record, const msgpack_object **error)
{
	const msgpack_object *r = &lm->records->via.array.ptr[i];
	*record = r->type == MSGPACK_OBJECT_MAP ? r : NULL;
	*error = *record ? NULL : &lm->errors->via.array.ptr[i];
}

int rpc_decode_contains(const msgpack_object *result, bool *found, char *err, size_t errlen)
{
	if (rpc_obj_bool(result, found))
		return bad(err, errlen, "the answer to contains is not a bool");
	return 0;
}

/* ---------------------------------------------------------------- response heads */

/* Bytes of the msgid that starts with byte b (a positive fixint, u8, u16 or u32). */
static size_t msgid_len(uint8_t b)
{
	if (b <= 0x7f)
		return 1;
	return b == 0xcc ? 2 : b == 0xcd ? 3 : b == 0xce ? 5 : 0;
}

static uint32_t be_uint(const uint8_t *p, size_t n)
{
	uint32_t v = 0;
	for (size_t i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

size_t rpc_bin_head_length(const uint8_t first[3])
{
	/* fixarray of 4, the response type 1, a msgid */
	size_t idlen = first[0] == 0x94 && first[1] == RPC_RESPONSE ? msgid_len(first[2]) : 0;
	return idlen ? 2 + idlen + 1 + 5 : 0; /* + nil + bin32 header */
}

int rpc_bin_head_parse(const uint8_t *head, size_t len, uint32_t *msgid, uint32_t *bin_len)
{
	size_t hlen = len >= 3 ? rpc_bin_head_length(head) : 0;
	if (!hlen || len != hlen)
		return -EPROTO;
	size_t idlen = hlen - 8;
	if (head[2 + idlen] != 0xc0 || head[3 + idlen] != 0xc6)
		return -EPROTO;
	*msgid = idlen == 1 ? head[2] : be_uint(head + 3, idlen - 1);
	*bin_len = be_uint(head + 4 + idlen, 4);
	return 0;
}

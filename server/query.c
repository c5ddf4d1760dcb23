/*
 * query.c: query templates (PROTOCOL.md) checked and matched against records.
 */
#include "query.h"

#include "record.h"

#include <math.h>
#include <string.h>

static bool str_is(const msgpack_object *o, const char *s)
{
	size_t n = strlen(s);

	return o->type == MSGPACK_OBJECT_STR && o->via.str.size == n &&
	       memcmp(o->via.str.ptr, s, n) == 0;
}

static bool str_eq(const msgpack_object *o, const char *s)
{
	return s && str_is(o, s);
}

static const msgpack_object *map_get(const msgpack_object *m, const char *k, size_t klen)
{
	if (m->type != MSGPACK_OBJECT_MAP)
		return NULL;
	for (uint32_t i = 0; i < m->via.map.size; i++) {
		const msgpack_object *key = &m->via.map.ptr[i].key;

		if (key->type == MSGPACK_OBJECT_STR && key->via.str.size == klen &&
		    memcmp(key->via.str.ptr, k, klen) == 0)
			return &m->via.map.ptr[i].val;
	}
	return NULL;
}

int srv_query_check(const msgpack_object *t, struct srv_error *err)
{
	if (t->type != MSGPACK_OBJECT_MAP)
		return srv_fail(err, RPC_E_EINVAL, "the query template is not a map");
	for (uint32_t i = 0; i < t->via.map.size; i++) {
		const msgpack_object *k = &t->via.map.ptr[i].key, *v = &t->via.map.ptr[i].val;
		bool ok;

		if (str_is(k, "name")) {
			ok = v->type == MSGPACK_OBJECT_STR;
		} else if (str_is(k, "module")) {
			ok = v->type == MSGPACK_OBJECT_STR || v->type == MSGPACK_OBJECT_NIL;
		} else if (str_is(k, "version")) {
			ok = v->type == MSGPACK_OBJECT_STR || v->type == MSGPACK_OBJECT_NIL ||
			     v->type == MSGPACK_OBJECT_POSITIVE_INTEGER ||
			     v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER;
		} else if (str_is(k, "arguments")) {
			ok = v->type == MSGPACK_OBJECT_MAP;
			for (uint32_t j = 0; ok && j < v->via.map.size; j++)
				ok = v->via.map.ptr[j].key.type == MSGPACK_OBJECT_STR &&
				     v->via.map.ptr[j].val.type == MSGPACK_OBJECT_STR;
		} else if (str_is(k, "metadata")) {
			ok = v->type == MSGPACK_OBJECT_MAP;
			for (uint32_t j = 0; ok && j < v->via.map.size; j++)
				ok = v->via.map.ptr[j].key.type == MSGPACK_OBJECT_STR &&
				     v->via.map.ptr[j].val.type == MSGPACK_OBJECT_MAP;
		} else {
			if (k->type == MSGPACK_OBJECT_STR)
				return srv_fail(err, RPC_E_EINVAL,
				                "unknown query template field '%.*s'",
				                (int)(k->via.str.size > 64 ? 64 : k->via.str.size),
				                k->via.str.ptr);
			return srv_fail(err, RPC_E_EINVAL,
			                "a query template field is not a string");
		}
		if (!ok)
			return srv_fail(err, RPC_E_EINVAL,
			                "query template field '%.*s' has the wrong type",
			                (int)k->via.str.size, k->via.str.ptr);
	}
	return 0;
}

const char *srv_query_name(const msgpack_object *t, size_t *len)
{
	const msgpack_object *v = map_get(t, "name", 4);

	if (!v || v->type != MSGPACK_OBJECT_STR)
		return NULL;
	*len = v->via.str.size;
	return v->via.str.ptr;
}

static bool is_num(const msgpack_object *o)
{
	return o->type == MSGPACK_OBJECT_POSITIVE_INTEGER ||
	       o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER || o->type == MSGPACK_OBJECT_FLOAT32 ||
	       o->type == MSGPACK_OBJECT_FLOAT64;
}

static bool is_int(const msgpack_object *o)
{
	return o->type == MSGPACK_OBJECT_POSITIVE_INTEGER ||
	       o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER;
}

/* An integer against a float: equal when the float is that exact integer. */
static bool int_float_equal(const msgpack_object *i, double f)
{
	if (!isfinite(f) || f != floor(f))
		return false;
	if (i->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
		return f >= 0 && f < 18446744073709551616.0 && (uint64_t)f == i->via.u64;
	return f < 0 && f >= -9223372036854775808.0 && (int64_t)f == i->via.i64;
}

static bool num_equal(const msgpack_object *a, const msgpack_object *b)
{
	if (is_int(a) && is_int(b))
		return a->type == b->type && a->via.u64 == b->via.u64;
	if (is_int(a))
		return int_float_equal(a, b->via.f64);
	if (is_int(b))
		return int_float_equal(b, a->via.f64);
	return a->via.f64 == b->via.f64;
}

bool srv_msgpack_equal(const msgpack_object *a, const msgpack_object *b, unsigned depth)
{
	if (depth > 64)
		return false;
	if (is_num(a) && is_num(b))
		return num_equal(a, b);
	if (a->type != b->type)
		return false;
	switch (a->type) {
	case MSGPACK_OBJECT_NIL:
		return true;
	case MSGPACK_OBJECT_BOOLEAN:
		return a->via.boolean == b->via.boolean;
	case MSGPACK_OBJECT_STR:
	case MSGPACK_OBJECT_BIN:
		return a->via.str.size == b->via.str.size &&
		       memcmp(a->via.str.ptr, b->via.str.ptr, a->via.str.size) == 0;
	case MSGPACK_OBJECT_ARRAY:
		if (a->via.array.size != b->via.array.size)
			return false;
		for (uint32_t i = 0; i < a->via.array.size; i++)
			if (!srv_msgpack_equal(&a->via.array.ptr[i], &b->via.array.ptr[i],
			                       depth + 1))
				return false;
		return true;
	case MSGPACK_OBJECT_MAP:
		if (a->via.map.size != b->via.map.size)
			return false;
		for (uint32_t i = 0; i < a->via.map.size; i++) {
			const msgpack_object_kv *kv = &a->via.map.ptr[i];
			bool found = false;

			for (uint32_t j = 0; !found && j < b->via.map.size; j++)
				if (srv_msgpack_equal(&kv->key, &b->via.map.ptr[j].key, depth + 1))
					found = srv_msgpack_equal(&kv->val, &b->via.map.ptr[j].val,
					                          depth + 1);
			if (!found)
				return false;
		}
		return true;
	default:
		return false;
	}
}

static bool match_metadata(const msgpack_object *want, const struct srv_record *rec)
{
	msgpack_zone zone;
	msgpack_object root;
	bool ok = false;

	if (want->via.map.size == 0)
		return true;
	msgpack_zone_init(&zone, 4096);
	if (!rec->metadata || srv_meta_unpack(rec->metadata, rec->metadata_len, &zone, &root) != 0)
		goto out;
	for (uint32_t i = 0; i < want->via.map.size; i++) {
		const msgpack_object *bk = &want->via.map.ptr[i].key,
		                     *bv = &want->via.map.ptr[i].val;
		const msgpack_object *have = map_get(&root, bk->via.str.ptr, bk->via.str.size);

		if (!have || have->type != MSGPACK_OBJECT_MAP)
			goto out;
		for (uint32_t j = 0; j < bv->via.map.size; j++) {
			const msgpack_object *fk = &bv->via.map.ptr[j].key;
			const msgpack_object *fv = &bv->via.map.ptr[j].val, *hv;

			if (fk->type != MSGPACK_OBJECT_STR)
				goto out;
			hv = map_get(have, fk->via.str.ptr, fk->via.str.size);
			if (!hv || !srv_msgpack_equal(fv, hv, 0))
				goto out;
		}
	}
	ok = true;
out:
	msgpack_zone_destroy(&zone);
	return ok;
}

bool srv_query_match(const msgpack_object *t, const struct srv_record *rec)
{
	for (uint32_t i = 0; i < t->via.map.size; i++) {
		const msgpack_object *k = &t->via.map.ptr[i].key, *v = &t->via.map.ptr[i].val;

		if (str_is(k, "name")) {
			if (!str_eq(v, rec->name))
				return false;
		} else if (str_is(k, "module")) {
			if (v->type == MSGPACK_OBJECT_NIL ? rec->module != NULL
			                                  : !str_eq(v, rec->module))
				return false;
		} else if (str_is(k, "version")) {
			switch (v->type) {
			case MSGPACK_OBJECT_NIL:
				if (rec->version_kind != SRV_VERSION_NONE)
					return false;
				break;
			case MSGPACK_OBJECT_STR:
				if (rec->version_kind != SRV_VERSION_STR ||
				    !str_eq(v, rec->version_str))
					return false;
				break;
			case MSGPACK_OBJECT_POSITIVE_INTEGER:
				if (rec->version_kind != SRV_VERSION_INT || rec->version_int < 0 ||
				    (uint64_t)rec->version_int != v->via.u64)
					return false;
				break;
			case MSGPACK_OBJECT_NEGATIVE_INTEGER:
				if (rec->version_kind != SRV_VERSION_INT ||
				    rec->version_int != v->via.i64)
					return false;
				break;
			default:
				return false;
			}
		} else if (str_is(k, "arguments")) {
			for (uint32_t j = 0; j < v->via.map.size; j++) {
				const msgpack_object *an = &v->via.map.ptr[j].key;
				const msgpack_object *av = &v->via.map.ptr[j].val;
				bool found = false;

				for (size_t a = 0; !found && a < rec->narguments; a++)
					found = str_eq(an, rec->arguments[a].name) &&
					        str_eq(av, rec->arguments[a].value);
				if (!found)
					return false;
			}
		} else if (str_is(k, "metadata")) {
			if (!match_metadata(v, rec))
				return false;
		}
	}
	return true;
}

int srv_query_offer(struct srv_page *page, size_t limit, const msgpack_object *tmpl,
		    const char *key, struct srv_record *rec, bool detail)
{
	struct srv_entry *e;

	if (!srv_query_match(tmpl, rec)) {
		srv_record_release(rec);
		return 0;
	}
	if (page->n == limit) {
		srv_record_release(rec);
		page->complete = false;
		return 1;
	}
	e = &page->entries[page->n++];
	memcpy(e->key, key, RPC_KEY_LEN + 1);
	e->size = -1;
	if (detail) {
		e->mtime = rec->mtime;
		e->stamp = rec->stamp;
		e->name = rec->name;
		rec->name = NULL;
	}
	srv_record_release(rec);
	return 0;
}

/*
 * record.c: fleche call records (pickled DigestedCall/Call objects) to struct
 * srv_record, and pickle nodes to msgpack metadata values. See record.h.
 */
#include "record.h"

#include "msg.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool is_call(const struct pk_node *root)
{
	return root && root->kind == PK_OBJECT &&
	       (pk_is_class(root, "fleche.call", "DigestedCall") ||
	        pk_is_class(root, "fleche.call", "Call"));
}

/* A field of the call's state: a dict, or a (dict, slots-dict) tuple. */
static const struct pk_node *field(const struct pk_node *root, const char *name)
{
	const struct pk_node *st = root->u.obj.state, *v;

	if (!st)
		return root->u.obj.kwargs ? pk_dict_get(root->u.obj.kwargs, name) : NULL;
	if (st->kind == PK_DICT)
		return pk_dict_get(st, name);
	if (st->kind == PK_TUPLE && st->u.seq.n == 2) {
		for (size_t i = 0; i < 2; i++)
			if (st->u.seq.items[i] && (v = pk_dict_get(st->u.seq.items[i], name)))
				return v;
	}
	return NULL;
}

/* A str or Digest node's text; NULL otherwise. */
static const char *text_of(const struct pk_node *n, size_t *len)
{
	const char *d;

	if (!n)
		return NULL;
	if (n->kind == PK_STR) {
		*len = n->u.str.len;
		return n->u.str.ptr;
	}
	d = pk_digest(n, len);
	return d;
}

static bool number_of(const struct pk_node *n, double *out)
{
	if (!n)
		return false;
	if (n->kind == PK_FLOAT) {
		*out = n->u.f;
		return true;
	}
	if (n->kind == PK_INT) {
		*out = (double)n->u.i;
		return true;
	}
	return false;
}

int srv_record_summary(const struct pk_node *root, const char **name, size_t *namelen,
                       double *timestop, int *has_timestop)
{
	const struct pk_node *n, *meta, *rt;

	*has_timestop = 0;
	if (!is_call(root))
		return -1;
	n = field(root, "name");
	if (!n || n->kind != PK_STR)
		return -1;
	*name = n->u.str.ptr;
	*namelen = n->u.str.len;
	meta = field(root, "metadata");
	rt = meta ? pk_dict_get(meta, "runtime") : NULL;
	/* a timestop that is not a finite number is no time: load falls back too */
	if (rt && number_of(pk_dict_get(rt, "timestop"), timestop) && isfinite(*timestop))
		*has_timestop = 1;
	return 0;
}

static int pack_str(msgpack_packer *pk, const char *s, size_t n)
{
	return msgpack_pack_str(pk, n) || msgpack_pack_str_body(pk, s, n);
}

static int pack_object(msgpack_packer *pk, const char *module, const char *name)
{
	size_t m = module ? strlen(module) : 0, q = name ? strlen(name) : 0;

	if (msgpack_pack_map(pk, 1) || pack_str(pk, "$object", 7) ||
	    msgpack_pack_str(pk, m + (m ? 1 : 0) + q))
		return -1;
	if (m && (msgpack_pack_str_body(pk, module, m) || msgpack_pack_str_body(pk, ".", 1)))
		return -1;
	return msgpack_pack_str_body(pk, name ? name : "", q);
}

/* The class of a value metadata has no form for, packed as {"$object": ...}. */
static const char *builtin_name(enum pk_kind k)
{
	switch (k) {
	case PK_COMPLEX:
		return "complex";
	case PK_SET:
		return "set";
	case PK_FROZENSET:
		return "frozenset";
	default:
		return "object";
	}
}

/* True when node packs as a msgpack container (an array, or a map: the tags too). */
static bool packs_container(const struct pk_node *node)
{
	switch (node->kind) {
	case PK_NONE:
	case PK_BOOL:
	case PK_INT:
	case PK_FLOAT:
	case PK_STR:
	case PK_BYTES:
	case PK_BYTEARRAY:
		return false;
	case PK_OBJECT:
		return !pk_digest(node, NULL);
	default:
		return true;
	}
}

int srv_record_pack_node(msgpack_packer *pk, const struct pk_node *node, unsigned depth,
                         size_t *budget)
{
	const msgpack_sbuffer *sb = pk->data;
	const char *d;
	size_t dl;
	int rc;

	if (*budget == 0 || sb->size > SRV_META_MAX_BYTES)
		return -EFBIG;
	(*budget)--;
	if (!node)
		return msgpack_pack_nil(pk) ? -ENOMEM : 0;
	if (depth >= SRV_META_MAX_DEPTH && packs_container(node))
		return -EOVERFLOW;
	switch (node->kind) {
	case PK_NONE:
		rc = msgpack_pack_nil(pk);
		break;
	case PK_BOOL:
		rc = node->u.b ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
		break;
	case PK_INT:
		rc = msgpack_pack_int64(pk, node->u.i);
		break;
	case PK_BIGINT:
		rc = msgpack_pack_map(pk, 1) || pack_str(pk, "$int", 4) ||
		     pack_str(pk, node->u.big.ptr, node->u.big.len);
		break;
	case PK_FLOAT:
		rc = msgpack_pack_double(pk, node->u.f);
		break;
	case PK_STR:
		rc = pack_str(pk, node->u.str.ptr, node->u.str.len);
		break;
	case PK_BYTES:
	case PK_BYTEARRAY:
		rc = msgpack_pack_bin(pk, node->u.str.len) ||
		     msgpack_pack_bin_body(pk, node->u.str.ptr, node->u.str.len);
		break;
	case PK_TUPLE:
	case PK_LIST:
		if (node->u.seq.n > UINT32_MAX)
			return -EFBIG;
		if (msgpack_pack_array(pk, node->u.seq.n))
			return -ENOMEM;
		for (size_t i = 0; i < node->u.seq.n; i++)
			if ((rc = srv_record_pack_node(pk, node->u.seq.items[i], depth + 1, budget)))
				return rc;
		return 0;
	case PK_DICT:
		if (node->u.dict.n > UINT32_MAX)
			return -EFBIG;
		if (msgpack_pack_map(pk, node->u.dict.n))
			return -ENOMEM;
		for (size_t i = 0; i < node->u.dict.n; i++)
			if ((rc = srv_record_pack_node(pk, node->u.dict.keys[i], depth + 1, budget)) ||
			    (rc = srv_record_pack_node(pk, node->u.dict.values[i], depth + 1, budget)))
				return rc;
		return 0;
	case PK_GLOBAL:
		rc = pack_object(pk, node->u.global.module, node->u.global.name);
		break;
	case PK_OBJECT:
		d = pk_digest(node, &dl);
		rc = d ? pack_str(pk, d, dl)
		       : pack_object(pk, node->u.obj.cls.module, node->u.obj.cls.name);
		break;
	default:
		rc = pack_object(pk, "builtins", builtin_name(node->kind));
		break;
	}
	return rc ? -ENOMEM : 0;
}

int srv_record_meta_fail(struct srv_record *rec, const char *fmt, ...)
{
	char *meta = malloc(1), *why = NULL;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&why, fmt, ap);
	va_end(ap);
	if (!meta || n < 0) {
		free(meta);
		if (n >= 0)
			free(why);
		return -1;
	}
	meta[0] = (char)0x80; /* an empty fixmap */
	free(rec->metadata);
	free(rec->metadata_error);
	rec->metadata = meta;
	rec->metadata_len = 1;
	rec->metadata_error = why;
	return 0;
}

static int corrupt(struct srv_record *rec, struct srv_error *err, const char *path,
                   const char *what)
{
	srv_record_release(rec);
	return srv_fail(err, RPC_E_CORRUPT, "call record '%s' %s", path, what);
}

int srv_record_from_pickle(const struct pk_node *root, const char *key, const char *path,
                           struct srv_record *rec, struct srv_error *err)
{
	const struct pk_node *n, *args, *meta;
	const char *t;
	size_t tl, budget = SRV_META_MAX_NODES;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	double ts;
	int prc;

	memset(rec, 0, sizeof(*rec));
	snprintf(rec->key, sizeof(rec->key), "%s", key);
	if (!is_call(root))
		return corrupt(rec, err, path, "is not a fleche.call.DigestedCall");
	n = field(root, "name");
	if (!n || n->kind != PK_STR)
		return corrupt(rec, err, path, "has no name");
	if (!(rec->name = srv_memdupz(n->u.str.ptr, n->u.str.len)))
		goto oom;
	n = field(root, "module");
	if (n && n->kind == PK_STR && !(rec->module = srv_memdupz(n->u.str.ptr, n->u.str.len)))
		goto oom;
	n = field(root, "version");
	if (!n || n->kind == PK_NONE) {
		rec->version_kind = SRV_VERSION_NONE;
	} else if (n->kind == PK_INT || n->kind == PK_BOOL) {
		rec->version_kind = SRV_VERSION_INT;
		rec->version_int = n->kind == PK_INT ? n->u.i : n->u.b;
	} else if (n->kind == PK_STR || n->kind == PK_BIGINT) {
		const struct pk_str *vs = n->kind == PK_STR ? &n->u.str : &n->u.big;

		rec->version_kind = SRV_VERSION_STR;
		if (!(rec->version_str = srv_memdupz(vs->ptr, vs->len)))
			goto oom;
	} else {
		return corrupt(rec, err, path, "has a version that is not a str, int or None");
	}
	t = text_of(field(root, "code_digest"), &tl);
	if (t && !(rec->code_digest = srv_memdupz(t, tl)))
		goto oom;

	args = field(root, "arguments");
	if (args && args->kind == PK_DICT && args->u.dict.n > 0) {
		rec->arguments = calloc(args->u.dict.n, sizeof(*rec->arguments));
		if (!rec->arguments)
			goto oom;
		for (size_t i = 0; i < args->u.dict.n; i++) {
			const struct pk_node *k = args->u.dict.keys[i];
			struct srv_argument *a = &rec->arguments[i];

			if (!k || k->kind != PK_STR)
				return corrupt(rec, err, path,
				               "has an argument name that is not a str");
			t = text_of(args->u.dict.values[i], &tl);
			if (!t || !rpc_key_valid(t, tl))
				return corrupt(rec, err, path,
				               "has an argument that is not a digest");
			if (!(a->name = srv_memdupz(k->u.str.ptr, k->u.str.len)))
				goto oom;
			memcpy(a->value, t, RPC_KEY_LEN);
			a->value[RPC_KEY_LEN] = '\0';
			rec->narguments++;
		}
	} else if (args && args->kind != PK_DICT) {
		return corrupt(rec, err, path, "has arguments that are not a dict");
	}

	n = field(root, "result");
	if (n && n->kind != PK_NONE) {
		t = text_of(n, &tl);
		if (!t || !rpc_key_valid(t, tl))
			return corrupt(rec, err, path, "has a result that is not a digest");
		memcpy(rec->result, t, RPC_KEY_LEN);
		rec->has_result = true;
	}

	meta = field(root, "metadata");
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	if (!meta || meta->kind != PK_DICT)
		prc = msgpack_pack_map(&pk, 0) ? -ENOMEM : 0;
	else
		prc = srv_record_pack_node(&pk, meta, 0, &budget);
	if (prc == -ENOMEM) {
		msgpack_sbuffer_destroy(&sb);
		goto oom;
	}
	if (prc == 0) {
		rec->metadata_len = sb.size;
		rec->metadata = msgpack_sbuffer_release(&sb);
		msgpack_sbuffer_destroy(&sb);
		if (!rec->metadata)
			goto oom;
	} else {
		msgpack_sbuffer_destroy(&sb);
		if ((prc == -EOVERFLOW
		         ? srv_record_meta_fail(rec,
		                                "the metadata of call record '%s' nests deeper "
		                                "than the %d levels a load answer can carry",
		                                path, SRV_META_VALUE_DEPTH)
		         : srv_record_meta_fail(rec,
		                                "the metadata of call record '%s' is larger than "
		                                "can be served (%u objects, %u bytes)",
		                                path, SRV_META_MAX_NODES, SRV_META_MAX_BYTES)) != 0)
			goto oom;
	}
	rec->mtime = NAN;
	if (meta) {
		const struct pk_node *rt = pk_dict_get(meta, "runtime");

		if (rt && number_of(pk_dict_get(rt, "timestop"), &ts) && isfinite(ts))
			rec->mtime = ts;
	}
	return 0;
oom:
	srv_record_release(rec);
	return srv_fail(err, RPC_E_ENOMEM, "out of memory loading '%s'", path);
}

int srv_meta_unpack(const char *buf, size_t len, msgpack_zone *zone, msgpack_object *out)
{
	/* msgpack-c's own unpacker stops at 32 nested containers; metadata may be deeper */
	return rpc_msgpack_unpack(buf, len, RPC_MSGPACK_DEPTH_LIMIT, zone, out, NULL, 0) == 0 ? 0
	                                                                                      : -1;
}

int srv_record_meta_number(const char *meta, size_t len, const char *block, const char *field_name,
                           double *out)
{
	msgpack_zone zone;
	msgpack_object root;
	int rc = -1;

	msgpack_zone_init(&zone, 4096);
	if (srv_meta_unpack(meta, len, &zone, &root) != 0 || root.type != MSGPACK_OBJECT_MAP)
		goto out;
	for (uint32_t i = 0; i < root.via.map.size; i++) {
		const msgpack_object_kv *kv = &root.via.map.ptr[i];

		if (kv->key.type != MSGPACK_OBJECT_STR || kv->key.via.str.size != strlen(block) ||
		    memcmp(kv->key.via.str.ptr, block, kv->key.via.str.size) != 0 ||
		    kv->val.type != MSGPACK_OBJECT_MAP)
			continue;
		for (uint32_t j = 0; j < kv->val.via.map.size; j++) {
			const msgpack_object_kv *f = &kv->val.via.map.ptr[j];

			if (f->key.type != MSGPACK_OBJECT_STR ||
			    f->key.via.str.size != strlen(field_name) ||
			    memcmp(f->key.via.str.ptr, field_name, f->key.via.str.size) != 0)
				continue;
			if (f->val.type == MSGPACK_OBJECT_FLOAT64 ||
			    f->val.type == MSGPACK_OBJECT_FLOAT32) {
				*out = f->val.via.f64;
				rc = 0;
			} else if (f->val.type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
				*out = (double)f->val.via.u64;
				rc = 0;
			} else if (f->val.type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
				*out = (double)f->val.via.i64;
				rc = 0;
			}
			goto out;
		}
	}
out:
	msgpack_zone_destroy(&zone);
	return rc;
}

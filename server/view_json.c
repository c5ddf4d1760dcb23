/*
 * view_json.c: the json view's emitter (views.h, srv_view_json). It walks a pickle tree
 * (pickle.h) and writes the JSON mapping of PROTOCOL.md section 6: plain JSON where
 * JSON can say it, one-key "$" tags where it cannot, fleche's destructured wrappers
 * (fleche.storage.destructuring.Digested*) replaced by the values they stand for,
 * following every fleche.digest.Digest in a wrapper's slots through the resolver;
 * classes and functions pickled by value named as if importable, and instances of
 * dataclasses, attrs classes, namedtuples and enums as what they are (pyclass.h);
 * the standard library's value types (datetime, Decimal, UUID, paths, collections'
 * containers, range, slice; pystd.h) as tags holding their text or parts.
 * The text is indented by two spaces per level, as Python's json.dumps(indent=2)
 * writes it (call.json's style), except that the innermost dimension of an array's
 * data and the contents of scalar tags stay on one line.
 *
 * Why not jansson (or json-c, cJSON): the text is streamed from the pickle tree
 * into a capped buffer, integers may have any number of digits (jansson stops at
 * int64), floats must be the shortest form that reads back (jansson prints %.17g)
 * and non-finite floats are tags; rpc/json_writer.c's writers already do all of this.
 *
 * Invariants:
 *   1. The walk is bounded: at most SRV_VIEW_JSON_DEPTH containers are open at once
 *      (the pickle graph may be deeper or cyclic); a container met again on its own
 *      path is ELOOP; references nest at most SRV_VIEW_REF_DEPTH deep and at most
 *      SRV_VIEW_REF_COUNT are followed; a reference to a key on its own path is ELOOP.
 *   2. Output only grows through the rpc_buf, whose cap (SRV_VIEW_JSON_MAX) turns a
 *      view that would be too large into EFBIG.
 *   3. Every failure fills err and returns -1 at once; the buffer then holds a
 *      partial document that the caller discards.
 */
#include "views.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_writer.h"
#include "npy.h"
#include "pathrec.h"
#include "pyclass.h"
#include "pystd.h"
#include "rpc.h"

/* Open addressing set of the containers on the current path (at most
 * SRV_VIEW_JSON_DEPTH of them), so that checking a container for a cycle is O(1). */
#define VJ_SET 2048

struct vj {
	const struct pk_node *set[VJ_SET];
	struct rpc_buf *b;
	const struct srv_view_resolver *res;
	struct srv_error *err;
	const char *root_key;
	unsigned depth;                                      /* containers open */
	const struct pk_node *path[SRV_VIEW_JSON_DEPTH + 1]; /* NULL for tags and dimensions */
	char keys[SRV_VIEW_REF_DEPTH + 1][RPC_KEY_LEN + 1];  /* references being followed */
	size_t nkeys;
	size_t nrefs;
	struct srv_error scratch; /* for errors that are not reported (4 KiB: not on the stack) */
};

static int vj_node(struct vj *j, const struct pk_node *n);

static int vj_buf(struct vj *j, int rc)
{
	if (rc == -EMSGSIZE)
		return srv_fail(j->err, RPC_E_EFBIG,
		                "the json view of '%s' is larger than the limit of %zu MiB",
		                j->root_key, j->b->max >> 20);
	return srv_fail(j->err, RPC_E_ENOMEM, "out of memory rendering the json view of '%s'",
	                j->root_key);
}

#define PUT(j, expr)                                                                               \
	do {                                                                                       \
		int rc_ = (expr);                                                                  \
		if (rc_)                                                                           \
			return vj_buf((j), rc_);                                                   \
	} while (0)

/* A newline and the indentation of the current depth. */
static int vj_nl(struct vj *j)
{
	size_t n = 1 + 2 * (size_t)j->depth;
	PUT(j, rpc_buf_reserve(j->b, n));
	j->b->data[j->b->len] = '\n';
	memset(j->b->data + j->b->len + 1, ' ', n - 1);
	j->b->len += n;
	j->b->data[j->b->len] = '\0';
	return 0;
}

static size_t set_slot(const struct pk_node *n)
{
	uintptr_t h = (uintptr_t)n;
	h ^= h >> 17;
	h *= (uintptr_t)0x9e3779b97f4a7c15ull;
	return (size_t)(h >> 7) & (VJ_SET - 1);
}

/* Adds n to the path set: false when it is already there (a cycle). */
static bool set_add(struct vj *j, const struct pk_node *n)
{
	size_t i = set_slot(n);
	while (j->set[i]) {
		if (j->set[i] == n)
			return false;
		i = (i + 1) & (VJ_SET - 1);
	}
	j->set[i] = n;
	return true;
}

/* Removes n (present) by shifting back the entries of its probe run. */
static void set_del(struct vj *j, const struct pk_node *n)
{
	size_t i = set_slot(n), k;
	while (j->set[i] != n)
		i = (i + 1) & (VJ_SET - 1);
	j->set[i] = NULL;
	for (k = (i + 1) & (VJ_SET - 1); j->set[k]; k = (k + 1) & (VJ_SET - 1)) {
		size_t home = set_slot(j->set[k]);
		/* move k back to the hole i unless its home lies cyclically in (i, k] */
		if ((i <= k) ? (home <= i || home > k) : (home <= i && home > k)) {
			j->set[i] = j->set[k];
			j->set[k] = NULL;
			i = k;
		}
	}
}

/* Opens a container; node (NULL for tags and array dimensions) is checked for cycles. */
static int vj_begin(struct vj *j, const struct pk_node *node, char open)
{
	if (j->depth >= SRV_VIEW_JSON_DEPTH)
		return srv_fail(j->err, RPC_E_EFBIG,
		                "the value '%s' nests deeper than %d levels, the json view's limit",
		                j->root_key, SRV_VIEW_JSON_DEPTH);
	if (node && !set_add(j, node))
		return srv_fail(j->err, RPC_E_ELOOP,
		                "the value '%s' contains itself: a container holds itself, which "
		                "JSON cannot show",
		                j->root_key);
	j->path[j->depth++] = node;
	PUT(j, rpc_buf_addc(j->b, open));
	return 0;
}

/* Before item i of a multi-line container. */
static int vj_item(struct vj *j, size_t i)
{
	if (i)
		PUT(j, rpc_buf_addc(j->b, ','));
	return vj_nl(j);
}

static int vj_end(struct vj *j, size_t n, char close)
{
	j->depth--;
	if (j->path[j->depth])
		set_del(j, j->path[j->depth]);
	if (n && vj_nl(j) < 0)
		return -1;
	PUT(j, rpc_buf_addc(j->b, close));
	return 0;
}

static bool wtf8_surrogate(const uint8_t *p)
{
	return p[0] == 0xed && p[1] >= 0xa0 && p[1] <= 0xbf && p[2] >= 0x80 && p[2] <= 0xbf;
}

/*
 * A str as a JSON string. The pickle reader keeps a lone surrogate as its 3-byte
 * WTF-8 form (ED A0..BF 80..BF), which PROTOCOL.md 6.1 shows as one U+FFFD;
 * rpc_json_string, which replaces each maximal ill-formed subpart of raw bytes as
 * Python's decode does, would write three. Same length: copied only when needed.
 */
static int json_str(struct rpc_buf *b, const char *s, size_t len)
{
	const uint8_t *p = (const uint8_t *)s;
	size_t i = 0;
	char *t;
	int rc;

	while (i + 2 < len && !wtf8_surrogate(p + i))
		i++;
	if (i + 2 >= len)
		return rpc_json_string(b, s, len);
	t = malloc(len);
	if (!t)
		return -ENOMEM;
	memcpy(t, s, len);
	for (; i + 2 < len; i++) {
		if (wtf8_surrogate(p + i)) {
			memcpy(t + i, "\xef\xbf\xbd", 3);
			i += 2;
		}
	}
	rc = rpc_json_string(b, t, len);
	free(t);
	return rc;
}

/* "key": (a str key of an object) */
static int vj_key(struct vj *j, const char *s, size_t len)
{
	PUT(j, json_str(j->b, s, len));
	PUT(j, rpc_buf_add(j->b, ": ", 2));
	return 0;
}

/* Opens {"$tag": and leaves the value to the caller; close with vj_end(j, 1, '}'). */
static int vj_tag(struct vj *j, const char *tag)
{
	if (vj_begin(j, NULL, '{') < 0 || vj_item(j, 0) < 0)
		return -1;
	return vj_key(j, tag, strlen(tag));
}

/* module + "." + qualname as one JSON string (just qualname when module is empty) */
static int vj_qualified(struct vj *j, const struct pk_str *module, const struct pk_str *qual)
{
	struct rpc_buf t = RPC_BUF_INIT(64 * 1024);
	int rc = rpc_buf_add(&t, module->ptr, module->len);

	if (rc == 0 && module->len)
		rc = rpc_buf_addc(&t, '.');
	if (rc == 0)
		rc = rpc_buf_add(&t, qual->ptr, qual->len);
	if (rc == 0)
		rc = json_str(j->b, t.data ? t.data : "", t.len);
	rpc_buf_release(&t);
	PUT(j, rc);
	return 0;
}

static int vj_global_name(struct vj *j, const struct pk_global *g)
{
	struct pk_str m = {g->module, strlen(g->module), SIZE_MAX};
	struct pk_str q = {g->name, strlen(g->name), SIZE_MAX};
	return vj_qualified(j, &m, &q);
}

/* {"$global": "module.qualname"} on one line: a class or function */
static int vj_class_name(struct vj *j, const struct srv_pyclass *c)
{
	PUT(j, rpc_buf_adds(j->b, "{\"$global\": "));
	if (vj_qualified(j, &c->module, &c->qualname) < 0)
		return -1;
	PUT(j, rpc_buf_addc(j->b, '}'));
	return 0;
}

/* ------------------------------------------------------------------------------ */
/* numpy */

static uint64_t nd_load(const uint8_t *p, size_t n, char order)
{
	uint64_t v = 0;
	if (order == '>') {
		for (size_t i = 0; i < n; i++)
			v = v << 8 | p[i];
	} else {
		for (size_t i = n; i-- > 0;)
			v = v << 8 | p[i];
	}
	return v;
}

static double half_to_double(uint16_t h)
{
	int e = (h >> 10) & 0x1f;
	double m = h & 0x3ff;
	double v;
	if (e == 0)
		v = ldexp(m, -24);
	else if (e == 31)
		v = m ? NAN : INFINITY;
	else
		v = ldexp(m + 1024, e - 25);
	return (h & 0x8000) ? -v : v;
}

static double nd_float(const uint8_t *p, size_t n, char order)
{
	uint64_t v = nd_load(p, n, order);
	if (n == 2)
		return half_to_double((uint16_t)v);
	if (n == 4) {
		uint32_t u = (uint32_t)v;
		float f;
		memcpy(&f, &u, sizeof(f));
		return f;
	}
	double d;
	memcpy(&d, &v, sizeof(d));
	return d;
}

static bool nd_decodable(const struct srv_ndarray *a)
{
	switch (a->kind) {
	case 'b':
	case 'i':
	case 'u':
	case 'S':
	case 'U':
		return true;
	case 'f':
		return a->itemsize <= 8;
	case 'c':
		return a->itemsize <= 16;
	default:
		return false;
	}
}

/* Appends code point cp as UTF-8 (U+FFFD for surrogates and values out of range). */
static int put_utf8(struct rpc_buf *b, uint32_t cp)
{
	char u[4];
	size_t n;
	if ((cp >= 0xd800 && cp < 0xe000) || cp > 0x10ffff)
		cp = 0xfffd;
	if (cp < 0x80) {
		u[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = (char)(0xc0 | cp >> 6);
		u[1] = (char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		u[0] = (char)(0xe0 | cp >> 12);
		u[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		u[2] = (char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		u[0] = (char)(0xf0 | cp >> 18);
		u[1] = (char)(0x80 | (cp >> 12 & 0x3f));
		u[2] = (char)(0x80 | (cp >> 6 & 0x3f));
		u[3] = (char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	return rpc_buf_add(b, u, n);
}

/* One element at p, as the Python value numpy would give (item()). */
static int nd_elem(struct vj *j, const struct srv_ndarray *a, const uint8_t *p)
{
	size_t n = a->itemsize;
	char o = a->byteorder;

	switch (a->kind) {
	case 'b':
		PUT(j, rpc_buf_adds(j->b, p[0] ? "true" : "false"));
		return 0;
	case 'i': {
		uint64_t v = nd_load(p, n, o);
		if (n < 8 && (v >> (8 * n - 1) & 1))
			v |= ~(uint64_t)0 << (8 * n); /* sign-extend */
		PUT(j, rpc_json_int(j->b, (int64_t)v));
		return 0;
	}
	case 'u':
		PUT(j, rpc_json_uint(j->b, nd_load(p, n, o)));
		return 0;
	case 'f':
		PUT(j, rpc_json_double(j->b, nd_float(p, n, o)));
		return 0;
	case 'c':
		PUT(j, rpc_buf_adds(j->b, "{\"$complex\": ["));
		PUT(j, rpc_json_double(j->b, nd_float(p, n / 2, o)));
		PUT(j, rpc_buf_add(j->b, ", ", 2));
		PUT(j, rpc_json_double(j->b, nd_float(p + n / 2, n / 2, o)));
		PUT(j, rpc_buf_adds(j->b, "]}"));
		return 0;
	case 'S':
		while (n > 0 && p[n - 1] == 0)
			n--;
		PUT(j, rpc_json_bytes_base64(j->b, p, n));
		return 0;
	case 'U': {
		struct rpc_buf t = RPC_BUF_INIT(SRV_VIEW_JSON_MAX);
		int rc = 0;
		n /= 4;
		while (n > 0 && nd_load(p + 4 * (n - 1), 4, o) == 0)
			n--;
		for (size_t i = 0; rc == 0 && i < n; i++)
			rc = put_utf8(&t, (uint32_t)nd_load(p + 4 * i, 4, o));
		if (rc == 0)
			rc = rpc_json_string(j->b, t.data ? t.data : "", t.len);
		rpc_buf_release(&t);
		PUT(j, rc);
		return 0;
	}
	default:
		return srv_fail(j->err, RPC_E_ENOTSUP, "cannot render dtype '%s'", a->descr);
	}
}

/* The data of dimension dim starting at p, as nested arrays. */
static int nd_dim(struct vj *j, const struct srv_ndarray *a, const uint64_t *stride, size_t dim,
                  const uint8_t *p)
{
	uint64_t n = a->shape[dim];

	if (dim + 1 == a->ndim) {
		/* the innermost dimension on one line */
		PUT(j, rpc_buf_addc(j->b, '['));
		for (uint64_t i = 0; i < n; i++) {
			if (i)
				PUT(j, rpc_buf_add(j->b, ", ", 2));
			if (nd_elem(j, a, p + i * stride[dim]) < 0)
				return -1;
		}
		PUT(j, rpc_buf_addc(j->b, ']'));
		return 0;
	}
	if (vj_begin(j, NULL, '[') < 0)
		return -1;
	for (uint64_t i = 0; i < n; i++)
		if (vj_item(j, (size_t)i) < 0 ||
		    nd_dim(j, a, stride, dim + 1, p + i * stride[dim]) < 0)
			return -1;
	return vj_end(j, (size_t)n, ']');
}

static int vj_ndarray(struct vj *j, const struct srv_ndarray *a)
{
	uint64_t stride[SRV_NPY_MAX_DIMS];
	uint64_t s = a->itemsize;

	if (a->scalar && nd_decodable(a))
		return nd_elem(j, a, a->data);
	if (a->count > SRV_VIEW_NDARRAY_JSON_MAX)
		return srv_fail(
		    j->err, RPC_E_EFBIG,
		    "the value '%s' holds a numpy array of %llu elements: the json view "
		    "renders arrays of at most %u elements (the npy view serves any size)",
		    j->root_key, (unsigned long long)a->count, SRV_VIEW_NDARRAY_JSON_MAX);
	if (vj_tag(j, "$ndarray") < 0 || vj_begin(j, NULL, '{') < 0)
		return -1;
	if (vj_item(j, 0) < 0 || vj_key(j, "dtype", 5) < 0)
		return -1;
	PUT(j, rpc_json_string(j->b, a->descr, strlen(a->descr)));
	if (vj_item(j, 1) < 0 || vj_key(j, "shape", 5) < 0)
		return -1;
	PUT(j, rpc_buf_addc(j->b, '['));
	for (size_t d = 0; d < a->ndim; d++) {
		if (d)
			PUT(j, rpc_buf_add(j->b, ", ", 2));
		PUT(j, rpc_json_uint(j->b, a->shape[d]));
	}
	PUT(j, rpc_buf_addc(j->b, ']'));
	if (vj_item(j, 2) < 0 || vj_key(j, "data", 4) < 0)
		return -1;
	if (!nd_decodable(a)) {
		/* raw bytes in the stored order, said by fortran_order */
		PUT(j, rpc_json_bytes_base64(j->b, a->data, (size_t)(a->count * a->itemsize)));
		if (vj_item(j, 3) < 0 || vj_key(j, "fortran_order", 13) < 0)
			return -1;
		PUT(j, rpc_buf_adds(j->b, a->fortran ? "true" : "false"));
		return vj_end(j, 4, '}') < 0 ? -1 : vj_end(j, 1, '}');
	}
	if (a->ndim == 0) {
		if (nd_elem(j, a, a->data) < 0)
			return -1;
	} else {
		/* strides of the stored order; the text is in index (C) order */
		if (a->fortran) {
			for (size_t d = 0; d < a->ndim; d++) {
				stride[d] = s;
				s *= a->shape[d] ? a->shape[d] : 1;
			}
		} else {
			for (size_t d = a->ndim; d-- > 0;) {
				stride[d] = s;
				s *= a->shape[d] ? a->shape[d] : 1;
			}
		}
		if (nd_dim(j, a, stride, 0, a->data) < 0)
			return -1;
	}
	return vj_end(j, 3, '}') < 0 ? -1 : vj_end(j, 1, '}');
}

/* ------------------------------------------------------------------------------ */
/* Destructured values */

/*
 * Follows a reference to the value key (len bytes): opens it through the resolver,
 * with key on the path of references, and calls render on its root.
 */
typedef int vj_render_fn(struct vj *j, const struct pk_node *root, const char *key,
                         const void *arg);

static int vj_follow(struct vj *j, const char *key, size_t len, vj_render_fn *render,
                     const void *arg)
{
	char k[RPC_KEY_LEN + 1];
	const struct pk_node *root = NULL;
	void *token = NULL;
	int rc;

	if (!rpc_key_valid(key, len))
		return srv_fail(j->err, RPC_E_CORRUPT,
		                "a reference inside the destructured value '%s' is not a value key",
		                j->root_key);
	memcpy(k, key, RPC_KEY_LEN);
	k[RPC_KEY_LEN] = '\0';
	for (size_t i = 0; i < j->nkeys; i++)
		if (strcmp(j->keys[i], k) == 0)
			return srv_fail(
			    j->err, RPC_E_ELOOP,
			    "the value '%s' refers to itself: '%s' is a part of itself",
			    j->root_key, k);
	if (j->nkeys >= SRV_VIEW_REF_DEPTH)
		return srv_fail(
		    j->err, RPC_E_EFBIG,
		    "the destructured value '%s' nests references deeper than %d levels",
		    j->root_key, SRV_VIEW_REF_DEPTH);
	if (++j->nrefs > SRV_VIEW_REF_COUNT)
		return srv_fail(j->err, RPC_E_EFBIG,
		                "the destructured value '%s' has more than %u parts", j->root_key,
		                SRV_VIEW_REF_COUNT);
	if (!j->res || !j->res->open)
		return srv_fail(j->err, RPC_E_ENOENT,
		                "part '%s' of the destructured value '%s' is missing", k,
		                j->root_key);
	if (j->res->open(j->res->ctx, k, &root, &token, j->err) < 0)
		return -1;
	memcpy(j->keys[j->nkeys++], k, sizeof(k));
	rc = render(j, root, k, arg);
	j->nkeys--;
	if (j->res->close)
		j->res->close(j->res->ctx, token);
	return rc;
}

static int vj_render_node(struct vj *j, const struct pk_node *root, const char *key,
                          const void *arg)
{
	(void)key;
	(void)arg;
	return vj_node(j, root);
}

/* Follows a reference to the value key (len bytes) and renders that value here. */
static int vj_ref(struct vj *j, const char *key, size_t len)
{
	return vj_follow(j, key, len, vj_render_node, NULL);
}

/* A slot of a wrapper: a Digest reference or an inline value. */
static int vj_slot(struct vj *j, const struct pk_node *n)
{
	size_t len;
	const char *d = pk_digest(n, &len);
	return d ? vj_ref(j, d, len) : vj_node(j, n);
}

/* ------------------------------------------------------------------------------ */
/* Stored files and folders (pathrec.h) */

/* {"$file": {"name": ..., "content": key, "size": size}}, e naming the file. */
static int vj_file_sized(struct vj *j, const struct srv_pathrec_entry *e, const char *key,
                         uint64_t size)
{
	if (vj_tag(j, "$file") < 0 || vj_begin(j, NULL, '{') < 0 || vj_item(j, 0) < 0 ||
	    vj_key(j, "name", 4) < 0)
		return -1;
	PUT(j, json_str(j->b, e->name, e->name_len));
	if (vj_item(j, 1) < 0 || vj_key(j, "content", 7) < 0)
		return -1;
	PUT(j, rpc_json_string(j->b, key, RPC_KEY_LEN));
	if (vj_item(j, 2) < 0 || vj_key(j, "size", 4) < 0)
		return -1;
	PUT(j, rpc_json_int(j->b, (int64_t)size));
	if (vj_end(j, 3, '}') < 0)
		return -1;
	return vj_end(j, 1, '}');
}

/* The $file of the content value whose root is root, arg the entry that names it. */
static int vj_file(struct vj *j, const struct pk_node *root, const char *key, const void *arg)
{
	const struct srv_pathrec_entry *e = arg;

	if (root->kind != PK_BYTES && root->kind != PK_BYTEARRAY)
		return srv_fail(j->err, RPC_E_CORRUPT,
		                "the content '%s' of the stored file '%.*s' in '%s' is a %s, not "
		                "bytes",
		                key, (int)(e->name_len > 255 ? 255 : e->name_len), e->name,
		                j->root_key, pk_kind_name(root->kind));
	return vj_file_sized(j, e, key, root->u.str.len);
}

static int vj_directory(struct vj *j, const struct pk_node *n, const char *key);

/* A folder's child: the bytes of a file or another folder record. */
static int vj_dir_child(struct vj *j, const struct pk_node *root, const char *key,
                        const void *arg)
{
	if (srv_pathrec_kind_of(root) == SRV_PATHREC_DIR)
		return vj_directory(j, root, key);
	return vj_file(j, root, key, arg);
}

/*
 * The file or folder (when folders is true) a record names with e: a file's size is
 * asked of the resolver's child when it has one (its bytes neither read nor counted
 * against SRV_VIEW_REF_BYTES), anything else followed and rendered as a folder, or
 * refused by vj_file.
 */
static int vj_record_child(struct vj *j, const struct srv_pathrec_entry *e, bool folders)
{
	vj_render_fn *render = folders ? vj_dir_child : vj_file;
	enum srv_pathrec_kind kind;
	uint64_t size;

	if (!j->res || !j->res->child)
		return vj_follow(j, e->key, RPC_KEY_LEN, render, e);
	if (++j->nrefs > SRV_VIEW_REF_COUNT)
		return srv_fail(j->err, RPC_E_EFBIG,
		                "the destructured value '%s' has more than %u parts", j->root_key,
		                SRV_VIEW_REF_COUNT);
	if (j->res->child(j->res->ctx, e->key, &kind, &size, j->err) < 0)
		return -1;
	if (kind == SRV_PATHREC_FILE)
		return vj_file_sized(j, e, e->key, size);
	return vj_follow(j, e->key, RPC_KEY_LEN, render, e);
}

/* {"$directory": {child name: $file or $directory, ...}}, the children followed by
 * their keys: a folder that contains itself is ELOOP, one nested deeper than
 * SRV_PATHREC_DEPTH records EFBIG. */
static int vj_directory(struct vj *j, const struct pk_node *n, const char *key)
{
	const struct pk_node *contents;
	struct srv_pathrec_entry e;
	long count;

	if (j->nkeys > SRV_PATHREC_DEPTH)
		return srv_fail(j->err, RPC_E_EFBIG,
		                "the stored folder '%s' nests folders deeper than %d levels",
		                j->root_key, SRV_PATHREC_DEPTH);
	count = srv_pathrec_dir(n, key, &contents, j->err);
	if (count < 0 || vj_tag(j, "$directory") < 0 || vj_begin(j, n, '{') < 0)
		return -1;
	for (size_t i = 0; i < (size_t)count; i++)
		if (srv_pathrec_child(contents, i, key, &e, j->err) < 0 || vj_item(j, i) < 0 ||
		    vj_key(j, e.name, e.name_len) < 0 || vj_record_child(j, &e, true) < 0)
			return -1;
	if (vj_end(j, (size_t)count, '}') < 0)
		return -1;
	return vj_end(j, 1, '}');
}

/* A FileBlob or DirectoryBlob node found in the tree. */
static int vj_pathrec(struct vj *j, const struct pk_node *n)
{
	struct srv_pathrec_entry e;

	if (srv_pathrec_kind_of(n) == SRV_PATHREC_DIR)
		return vj_directory(j, n, j->nkeys ? j->keys[j->nkeys - 1] : j->root_key);
	if (srv_pathrec_file(n, j->root_key, &e, j->err) < 0)
		return -1;
	return vj_record_child(j, &e, false);
}

/* ------------------------------------------------------------------------------ */
/* Containers */

static int vj_seq(struct vj *j, const struct pk_node *n, bool slots)
{
	if (vj_begin(j, n, '[') < 0)
		return -1;
	for (size_t i = 0; i < n->u.seq.n; i++)
		if (vj_item(j, i) < 0 ||
		    (slots ? vj_slot(j, n->u.seq.items[i]) : vj_node(j, n->u.seq.items[i])) < 0)
			return -1;
	return vj_end(j, n->u.seq.n, ']');
}

/* True when every key of the dict node is a str not starting with '$'. */
static bool plain_keys(const struct pk_node *d)
{
	for (size_t i = 0; i < d->u.dict.n; i++) {
		const struct pk_node *k = d->u.dict.keys[i];
		if (k->kind != PK_STR || (k->u.str.len > 0 && k->u.str.ptr[0] == '$'))
			return false;
	}
	return true;
}

/* A dict: an object when every key is a str not starting with '$', else $dict. */
static int vj_dict(struct vj *j, const struct pk_node *n, bool slots)
{
	const struct pk_dict *d = &n->u.dict;
	int (*val)(struct vj *, const struct pk_node *) = slots ? vj_slot : vj_node;

	if (plain_keys(n)) {
		if (vj_begin(j, n, '{') < 0)
			return -1;
		for (size_t i = 0; i < d->n; i++) {
			const struct pk_str *k = &d->keys[i]->u.str;
			if (vj_item(j, i) < 0 || vj_key(j, k->ptr, k->len) < 0 ||
			    val(j, d->values[i]) < 0)
				return -1;
		}
		return vj_end(j, d->n, '}');
	}
	if (vj_tag(j, "$dict") < 0 || vj_begin(j, n, '[') < 0)
		return -1;
	for (size_t i = 0; i < d->n; i++) {
		if (vj_item(j, i) < 0 || vj_begin(j, NULL, '[') < 0 || vj_item(j, 0) < 0 ||
		    val(j, d->keys[i]) < 0 || vj_item(j, 1) < 0 || val(j, d->values[i]) < 0 ||
		    vj_end(j, 2, ']') < 0)
			return -1;
	}
	if (vj_end(j, d->n, ']') < 0)
		return -1;
	return vj_end(j, 1, '}');
}

static bool is_wrapper(const struct pk_node *n, const char *name)
{
	return n->kind == PK_OBJECT && pk_is_class(n, "fleche.storage.destructuring", name);
}

static int vj_wrapper_bad(struct vj *j, const char *what)
{
	return srv_fail(j->err, RPC_E_CORRUPT,
	                "a fleche.storage.destructuring.%s inside '%s' has no valid state", what,
	                j->root_key);
}

/* {"$object": name, "args": ..., "kwargs": ..., "state": ..., "items": ...,
 * "dictitems": ...} with the fields that are present. */
static int vj_object(struct vj *j, const struct pk_node *n)
{
	const struct pk_object *o = &n->u.obj;
	const struct pk_node *state = o->state;
	const struct pk_global *name = &o->cls;
	const struct pk_node *args = o->args;
	struct srv_pyclass c;
	size_t i = 0;

	/* copyreg._reconstructor(cls, base, state): how protocols 0 and 1 make objects */
	if (pk_is_class(n, "copyreg", "_reconstructor") && args && args->kind == PK_TUPLE &&
	    args->u.seq.n == 3 && args->u.seq.items[0]->kind == PK_GLOBAL) {
		name = &args->u.seq.items[0]->u.global;
		args = NULL;
	}
	if (vj_begin(j, n, '{') < 0 || vj_item(j, i++) < 0 || vj_key(j, "$object", 7) < 0)
		return -1;
	if (name->module[0] || name->name[0]) {
		if (vj_global_name(j, name) < 0)
			return -1;
	} else if (srv_pyclass_of(o->callable, &c)) {
		/* an instance of a class pickled by value, named as if it were importable */
		if (vj_qualified(j, &c.module, &c.qualname) < 0)
			return -1;
	} else {
		PUT(j, rpc_buf_adds(j->b, "null"));
		if (o->callable && (vj_item(j, i++) < 0 || vj_key(j, "callable", 8) < 0 ||
		                    vj_node(j, o->callable) < 0))
			return -1;
	}
	if (args && args->kind == PK_TUPLE && args->u.seq.n > 0 &&
	    (vj_item(j, i++) < 0 || vj_key(j, "args", 4) < 0 || vj_node(j, args) < 0))
		return -1;
	if (o->kwargs &&
	    (vj_item(j, i++) < 0 || vj_key(j, "kwargs", 6) < 0 || vj_node(j, o->kwargs) < 0))
		return -1;
	if (state && (vj_item(j, i++) < 0 || vj_key(j, "state", 5) < 0 || vj_node(j, state) < 0))
		return -1;
	if (o->listitems &&
	    (vj_item(j, i++) < 0 || vj_key(j, "items", 5) < 0 || vj_node(j, o->listitems) < 0))
		return -1;
	if (o->dictitems &&
	    (vj_item(j, i++) < 0 || vj_key(j, "dictitems", 9) < 0 || vj_node(j, o->dictitems) < 0))
		return -1;
	return vj_end(j, i, '}');
}

/* ------------------------------------------------------------------------------ */
/* Records, enums and the standard library's types */

/*
 * The dicts that hold an instance's fields: its state is a dict (__dict__, or what
 * __getstate__ returns), or (dict or None, dict of slots) for a class with slots.
 * False when the state is neither or a field name is not a plain str.
 */
static bool field_dicts(const struct pk_node *st, const struct pk_node *parts[2])
{
	parts[0] = parts[1] = NULL;
	if (!st)
		return false;
	if (st->kind == PK_DICT) {
		parts[0] = st;
	} else if (st->kind == PK_TUPLE && st->u.seq.n == 2 &&
	           (st->u.seq.items[0]->kind == PK_NONE || st->u.seq.items[0]->kind == PK_DICT) &&
	           st->u.seq.items[1]->kind == PK_DICT) {
		if (st->u.seq.items[0]->kind == PK_DICT)
			parts[0] = st->u.seq.items[0];
		parts[1] = st->u.seq.items[1];
	} else {
		return false;
	}
	return (!parts[0] || plain_keys(parts[0])) && (!parts[1] || plain_keys(parts[1]));
}

/* {"$tag": "module.qualname", "fields": {name: value, ...}} from field_dicts' parts;
 * slots: the values may be Digest references (a destructured record). */
static int vj_record(struct vj *j, const char *tag, const struct srv_pyclass *c,
                     const struct pk_node *owner, const struct pk_node *const parts[2],
                     bool slots)
{
	size_t k = 0;

	if (vj_begin(j, owner, '{') < 0 || vj_item(j, 0) < 0 || vj_key(j, tag, strlen(tag)) < 0 ||
	    vj_qualified(j, &c->module, &c->qualname) < 0 || vj_item(j, 1) < 0 ||
	    vj_key(j, "fields", 6) < 0 || vj_begin(j, NULL, '{') < 0)
		return -1;
	for (size_t p = 0; p < 2; p++) {
		if (!parts[p])
			continue;
		for (size_t i = 0; i < parts[p]->u.dict.n; i++) {
			const struct pk_str *key = &parts[p]->u.dict.keys[i]->u.str;
			const struct pk_node *v = parts[p]->u.dict.values[i];
			if (vj_item(j, k++) < 0 || vj_key(j, key->ptr, key->len) < 0 ||
			    (slots ? vj_slot(j, v) : vj_node(j, v)) < 0)
				return -1;
		}
	}
	if (vj_end(j, k, '}') < 0)
		return -1;
	return vj_end(j, 2, '}');
}

/* A namedtuple made from its fields' values: {"$namedtuple": name, "fields": {...}} */
static int vj_namedtuple(struct vj *j, const struct pk_node *n, const struct srv_pyclass *c)
{
	const struct pk_node *args = n->u.obj.args;

	if (vj_begin(j, n, '{') < 0 || vj_item(j, 0) < 0 || vj_key(j, "$namedtuple", 11) < 0 ||
	    vj_qualified(j, &c->module, &c->qualname) < 0 || vj_item(j, 1) < 0 ||
	    vj_key(j, "fields", 6) < 0 || vj_begin(j, NULL, '{') < 0)
		return -1;
	for (size_t i = 0; i < args->u.seq.n; i++) {
		const struct pk_str *key = &c->fields->u.seq.items[i]->u.str;
		if (vj_item(j, i) < 0 || vj_key(j, key->ptr, key->len) < 0 ||
		    vj_node(j, args->u.seq.items[i]) < 0)
			return -1;
	}
	if (vj_end(j, args->u.seq.n, '}') < 0)
		return -1;
	return vj_end(j, 2, '}');
}

/* {"$enum": "module.qualname", "name": ..., "value": ...}, the parts that are known */
static int vj_enum(struct vj *j, const struct pk_node *n, const struct srv_pyclass *c,
                   const struct pk_node *name, const struct pk_node *value)
{
	size_t i = 0;

	if (vj_begin(j, n, '{') < 0 || vj_item(j, i++) < 0 || vj_key(j, "$enum", 5) < 0 ||
	    vj_qualified(j, &c->module, &c->qualname) < 0)
		return -1;
	if (name && (vj_item(j, i++) < 0 || vj_key(j, "name", 4) < 0 || vj_node(j, name) < 0))
		return -1;
	if (value && (vj_item(j, i++) < 0 || vj_key(j, "value", 5) < 0 || vj_node(j, value) < 0))
		return -1;
	return vj_end(j, i, '}');
}

/* {"$tag": <value>} or {"$tag": <value>, "key": <extra>}; a NULL v is [] */
static int vj_wrap(struct vj *j, const char *tag, const struct pk_node *v, const char *key,
                   const struct pk_node *extra)
{
	if (vj_tag(j, tag) < 0)
		return -1;
	if (!v)
		PUT(j, rpc_buf_add(j->b, "[]", 2));
	else if (vj_node(j, v) < 0)
		return -1;
	if (key && (vj_item(j, 1) < 0 || vj_key(j, key, strlen(key)) < 0 || vj_node(j, extra) < 0))
		return -1;
	return vj_end(j, key ? 2 : 1, '}');
}

/*
 * Instances of classes pickled by value (dataclasses, attrs classes, namedtuples,
 * enum members) and the standard library's value types. Returns 1 when n was
 * rendered, 0 when it is none of them (nothing written), -1 on error.
 */
static int vj_known_object(struct vj *j, const struct pk_node *n)
{
	const struct pk_object *o = &n->u.obj;
	const struct pk_node *parts[2], *name, *value, *zone;
	const struct pk_node *args = o->args;
	size_t na = args && args->kind == PK_TUPLE ? args->u.seq.n : 0;
	struct srv_pyclass c;
	struct rpc_buf text = RPC_BUF_INIT(SRV_VIEW_JSON_MAX);
	const char *tag;
	long long d, s, us, r[3];
	int rc;

	if (srv_pyclass_of(n, &c) && c.by_value)
		return vj_class_name(j, &c) < 0 ? -1 : 1;
	if (srv_pyclass_enum_member(n, &c, &name, &value))
		return vj_enum(j, n, &c, name, value) < 0 ? -1 : 1;
	if (srv_pyclass_of(o->callable, &c)) {
		if (c.kind == SRV_PYCLASS_DATACLASS && na == 0 && field_dicts(o->state, parts))
			return vj_record(j, "$dataclass", &c, n, parts, false) < 0 ? -1 : 1;
		if (c.kind == SRV_PYCLASS_NAMEDTUPLE && na == c.fields->u.seq.n && !o->state)
			return vj_namedtuple(j, n, &c) < 0 ? -1 : 1;
	}
	rc = srv_pystd_text(n, &tag, &text, &zone);
	if (rc == 1) {
		PUT(j, rpc_buf_addf(j->b, "{\"%s\": ", tag));
		rc = json_str(j->b, text.data, text.len);
		rpc_buf_release(&text);
		PUT(j, rc);
		if (zone) {
			PUT(j, rpc_buf_adds(j->b, ", \"tz\": "));
			PUT(j, json_str(j->b, zone->u.str.ptr, zone->u.str.len));
		}
		PUT(j, rpc_buf_addc(j->b, '}'));
		return 1;
	}
	rpc_buf_release(&text);
	if (rc < 0)
		return vj_buf(j, rc);
	if (srv_pystd_timedelta(n, &d, &s, &us)) {
		PUT(j, rpc_buf_addf(j->b, "{\"$timedelta\": [%lld, %lld, %lld]}", d, s, us));
		return 1;
	}
	if (srv_pystd_range(n, r)) {
		if (vj_tag(j, "$range") < 0 || vj_begin(j, NULL, '[') < 0)
			return -1;
		for (size_t i = 0; i < 3; i++) {
			if (vj_item(j, i) < 0)
				return -1;
			PUT(j, rpc_json_int(j->b, r[i]));
		}
		return vj_end(j, 3, ']') < 0 || vj_end(j, 1, '}') < 0 ? -1 : 1;
	}
	if (pk_is_class(n, "builtins", "slice") && na == 3 && !o->state)
		return vj_wrap(j, "$slice", args, NULL, NULL) < 0 ? -1 : 1;
	if (pk_is_class(n, "collections", "Counter") && na == 1 &&
	    args->u.seq.items[0]->kind == PK_DICT && !o->state && !o->dictitems)
		return vj_wrap(j, "$counter", args->u.seq.items[0], NULL, NULL) < 0 ? -1 : 1;
	if (pk_is_class(n, "collections", "deque") && na <= 2 && !o->state && !o->dictitems) {
		/* deque(iterable, maxlen), or deque() / deque((), maxlen) + APPENDS */
		const struct pk_node *init = na >= 1 ? args->u.seq.items[0] : NULL;
		const struct pk_node *maxlen = na == 2 ? args->u.seq.items[1] : NULL;
		if (maxlen && maxlen->kind == PK_NONE)
			maxlen = NULL;
		if ((!init || ((init->kind == PK_LIST || init->kind == PK_TUPLE) &&
		               (init->u.seq.n == 0 || !o->listitems))) &&
		    (!maxlen || maxlen->kind == PK_INT))
			return vj_wrap(j, "$deque", o->listitems ? o->listitems : init,
			               maxlen ? "maxlen" : NULL, maxlen) < 0
			           ? -1
			           : 1;
	}
	return 0;
}

static int vj_any_object(struct vj *j, const struct pk_node *n)
{
	const char *dig;
	size_t len;
	struct srv_ndarray a;
	struct srv_pyclass c;
	const struct pk_node *items, *cls, *fields, *parts[2];
	int rc;

	dig = pk_digest(n, &len);
	if (dig) {
		/* a Digest outside a wrapper's slots is just the str it is */
		PUT(j, rpc_json_string(j->b, dig, len));
		return 0;
	}
	if (srv_pathrec_kind_of(n) != SRV_PATHREC_NONE)
		return vj_pathrec(j, n);
	if (is_wrapper(n, "DigestedIterable")) {
		items = pk_dict_get(n->u.obj.state, "items");
		if (!items || (items->kind != PK_LIST && items->kind != PK_TUPLE))
			return vj_wrapper_bad(j, "DigestedIterable");
		return vj_seq(j, items, true);
	}
	if (is_wrapper(n, "DigestedDict")) {
		items = pk_dict_get(n->u.obj.state, "items");
		if (!items || items->kind != PK_DICT)
			return vj_wrapper_bad(j, "DigestedDict");
		return vj_dict(j, items, true);
	}
	if (is_wrapper(n, "DigestedDataclass") || is_wrapper(n, "DigestedAttrs") ||
	    is_wrapper(n, "DigestedFields")) {
		/* the class named by reference or pickled by value */
		cls = pk_dict_get(n->u.obj.state, "cls");
		fields = pk_dict_get(n->u.obj.state, "fields");
		if (!srv_pyclass_of(cls, &c) || !fields || !field_dicts(fields, parts) || parts[1])
			return vj_wrapper_bad(j, "DigestedDataclass");
		return vj_record(j, "$dataclass", &c, n, parts, true);
	}
	/* numpy arrays and scalars; one we cannot decode is shown as the object it is */
	if (srv_npy_recognise(n, true, &a, &j->scratch) == 1)
		return vj_ndarray(j, &a);
	rc = vj_known_object(j, n);
	if (rc != 0)
		return rc < 0 ? -1 : 0;
	return vj_object(j, n);
}

static int vj_node(struct vj *j, const struct pk_node *n)
{
	char tmp[80];
	struct srv_pyclass c;

	switch (n->kind) {
	case PK_NONE:
		PUT(j, rpc_buf_add(j->b, "null", 4));
		return 0;
	case PK_BOOL:
		PUT(j, rpc_buf_adds(j->b, n->u.b ? "true" : "false"));
		return 0;
	case PK_INT:
		PUT(j, rpc_json_int(j->b, n->u.i));
		return 0;
	case PK_BIGINT: {
		const struct pk_str *s = &n->u.big;
		bool ok = s->len > 0;
		for (size_t i = 0; i < s->len && ok; i++)
			ok = (s->ptr[i] >= '0' && s->ptr[i] <= '9') || (i == 0 && s->ptr[i] == '-');
		if (!ok || (s->len == 1 && s->ptr[0] == '-'))
			return srv_fail(j->err, RPC_E_CORRUPT, "a malformed int inside '%s'",
			                j->root_key);
		PUT(j, rpc_buf_add(j->b, s->ptr, s->len));
		return 0;
	}
	case PK_FLOAT:
		PUT(j, rpc_json_double(j->b, n->u.f));
		return 0;
	case PK_COMPLEX:
		PUT(j, rpc_buf_adds(j->b, "{\"$complex\": ["));
		PUT(j, rpc_json_double(j->b, n->u.cplx.re));
		PUT(j, rpc_buf_add(j->b, ", ", 2));
		PUT(j, rpc_json_double(j->b, n->u.cplx.im));
		PUT(j, rpc_buf_adds(j->b, "]}"));
		return 0;
	case PK_STR:
		/* at least its bytes and quotes: a string too long fails before any work */
		if (n->u.str.len > j->b->max - j->b->len)
			return vj_buf(j, -EMSGSIZE);
		PUT(j, json_str(j->b, n->u.str.ptr, n->u.str.len));
		return 0;
	case PK_BYTES:
	case PK_BYTEARRAY:
		if (n->u.str.len / 3 * 4 > j->b->max - j->b->len)
			return vj_buf(j, -EMSGSIZE);
		PUT(j, rpc_json_bytes_base64(j->b, n->u.str.ptr, n->u.str.len));
		return 0;
	case PK_TUPLE:
	case PK_LIST:
		return vj_seq(j, n, false);
	case PK_SET:
	case PK_FROZENSET:
		if (vj_tag(j, "$set") < 0 || vj_seq(j, n, false) < 0)
			return -1;
		return vj_end(j, 1, '}');
	case PK_DICT:
		if (n->u.dict.cls && strcmp(n->u.dict.cls, "collections.OrderedDict") == 0) {
			if (vj_tag(j, "$ordereddict") < 0 || vj_dict(j, n, false) < 0)
				return -1;
			return vj_end(j, 1, '}');
		}
		if (n->u.dict.cls && strcmp(n->u.dict.cls, "collections.defaultdict") == 0) {
			if (vj_tag(j, "$defaultdict") < 0 || vj_dict(j, n, false) < 0)
				return -1;
			if (n->u.dict.factory &&
			    (vj_item(j, 1) < 0 || vj_key(j, "default_factory", 15) < 0 ||
			     vj_node(j, n->u.dict.factory) < 0))
				return -1;
			return vj_end(j, n->u.dict.factory ? 2 : 1, '}');
		}
		return vj_dict(j, n, false);
	case PK_GLOBAL:
		srv_pyclass_of(n, &c); /* always true for a global */
		return vj_class_name(j, &c);
	case PK_OBJECT:
		return vj_any_object(j, n);
	}
	snprintf(tmp, sizeof(tmp), "%d", (int)n->kind);
	return srv_fail(j->err, RPC_E_CORRUPT, "a node of unknown kind %s inside '%s'", tmp,
	                j->root_key);
}

int srv_view_json(const struct pk_node *root, const char *key, const struct srv_view_resolver *res,
                  struct rpc_buf *out, struct srv_error *err)
{
	struct vj *j;
	int rc;

	j = calloc(1, sizeof(*j));
	if (!j)
		return srv_fail(err, RPC_E_ENOMEM, "out of memory rendering a json view");
	j->b = out;
	j->res = res;
	j->err = err;
	j->root_key = key ? key : "?";
	if (key && rpc_key_valid(key, strlen(key)))
		memcpy(j->keys[j->nkeys++], key, RPC_KEY_LEN + 1);
	rc = vj_node(j, root);
	if (rc == 0) {
		rc = rpc_buf_addc(out, '\n');
		if (rc)
			rc = vj_buf(j, rc);
	}
	free(j);
	return rc;
}

/*
 * msg.c: validation and decoding of untrusted msgpack, and the request, response
 * and error-map encoders and decoders of msg.h.
 *
 * Invariants of the validator (rpc_msgpack_check):
 *  1. It reads each byte once, allocates nothing, and uses a fixed stack of
 *     RPC_MSGPACK_DEPTH_LIMIT + 1 counters.
 *  2. "owed" is the number of objects the open containers still need. When a
 *     container declares n elements (2n for a map), owed + n must not exceed the
 *     bytes left, since every object takes at least one byte. Hence the number of
 *     objects in an accepted buffer is at most its length, and the builder's
 *     allocations are bounded by len * sizeof(msgpack_object).
 *  3. The builder (rpc_msgpack_unpack) runs only on accepted bytes and walks them
 *     with the same header parser, so it cannot meet anything the validator did not.
 */
#include "msg.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define RPC_ERR(...)                                                                               \
	do {                                                                                       \
		if (err && errlen)                                                                 \
			snprintf(err, errlen, __VA_ARGS__);                                        \
	} while (0)

/* One msgpack header, parsed. */
struct mp_head {
	msgpack_object_type type;
	size_t hlen;    /* header bytes */
	size_t plen;    /* payload bytes after the header (str, bin, ext) */
	uint32_t count; /* array elements or map pairs */
	union {
		bool b;
		uint64_t u;
		int64_t i;
		double f;
	} v;
};

enum { MP_OK = 0, MP_TRUNCATED = -1, MP_RESERVED = -2, MP_EXT = -3 };

static uint64_t mp_be(const uint8_t *p, size_t n)
{
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

static void mp_int(struct mp_head *h, int64_t i)
{
	if (i >= 0) {
		h->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
		h->v.u = (uint64_t)i;
	} else {
		h->type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
		h->v.i = i;
	}
}

/* Parses the header at p (left bytes available); payloads are not checked here. */
static int mp_head_parse(const uint8_t *p, size_t left, struct mp_head *h)
{
	uint8_t c;
	size_t extra = 0; /* bytes after the type byte */

	if (left < 1)
		return MP_TRUNCATED;
	c = p[0];
	memset(h, 0, sizeof(*h));
	h->hlen = 1;
	if (c <= 0x7f) {
		h->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
		h->v.u = c;
		return MP_OK;
	}
	if (c >= 0xe0) {
		h->type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
		h->v.i = (int8_t)c;
		return MP_OK;
	}
	if (c <= 0x8f) {
		h->type = MSGPACK_OBJECT_MAP;
		h->count = c & 0x0f;
		return MP_OK;
	}
	if (c <= 0x9f) {
		h->type = MSGPACK_OBJECT_ARRAY;
		h->count = c & 0x0f;
		return MP_OK;
	}
	if (c <= 0xbf) {
		h->type = MSGPACK_OBJECT_STR;
		h->plen = c & 0x1f;
		return MP_OK;
	}
	switch (c) {
	case 0xc0:
		h->type = MSGPACK_OBJECT_NIL;
		return MP_OK;
	case 0xc1:
		return MP_RESERVED;
	case 0xc2:
	case 0xc3:
		h->type = MSGPACK_OBJECT_BOOLEAN;
		h->v.b = c == 0xc3;
		return MP_OK;
	case 0xc7:
	case 0xc8:
	case 0xc9:
	case 0xd4:
	case 0xd5:
	case 0xd6:
	case 0xd7:
	case 0xd8:
		return MP_EXT;
	case 0xc4:
	case 0xd9:
		extra = 1;
		break;
	case 0xc5:
	case 0xda:
	case 0xdc:
	case 0xde:
		extra = 2;
		break;
	case 0xc6:
	case 0xdb:
	case 0xdd:
	case 0xdf:
		extra = 4;
		break;
	case 0xca:
		extra = 4;
		break;
	case 0xcb:
		extra = 8;
		break;
	case 0xcc:
	case 0xd0:
		extra = 1;
		break;
	case 0xcd:
	case 0xd1:
		extra = 2;
		break;
	case 0xce:
	case 0xd2:
		extra = 4;
		break;
	case 0xcf:
	case 0xd3:
		extra = 8;
		break;
	default:
		return MP_RESERVED; /* unreachable: every byte is covered above */
	}
	if (left - 1 < extra)
		return MP_TRUNCATED;
	h->hlen = 1 + extra;
	uint64_t v = mp_be(p + 1, extra);
	switch (c) {
	case 0xc4:
	case 0xc5:
	case 0xc6:
		h->type = MSGPACK_OBJECT_BIN;
		h->plen = (size_t)v;
		break;
	case 0xd9:
	case 0xda:
	case 0xdb:
		h->type = MSGPACK_OBJECT_STR;
		h->plen = (size_t)v;
		break;
	case 0xdc:
	case 0xdd:
		h->type = MSGPACK_OBJECT_ARRAY;
		h->count = (uint32_t)v;
		break;
	case 0xde:
	case 0xdf:
		h->type = MSGPACK_OBJECT_MAP;
		h->count = (uint32_t)v;
		break;
	case 0xca: {
		uint32_t bits = (uint32_t)v;
		float f;
		memcpy(&f, &bits, sizeof(f));
		h->type = MSGPACK_OBJECT_FLOAT32;
		h->v.f = f;
		break;
	}
	case 0xcb:
		memcpy(&h->v.f, &v, sizeof(double));
		h->type = MSGPACK_OBJECT_FLOAT64;
		break;
	case 0xcc:
	case 0xcd:
	case 0xce:
	case 0xcf:
		h->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
		h->v.u = v;
		break;
	case 0xd0:
		mp_int(h, (int8_t)v);
		break;
	case 0xd1:
		mp_int(h, (int16_t)v);
		break;
	case 0xd2:
		mp_int(h, (int32_t)v);
		break;
	case 0xd3: {
		int64_t i;
		memcpy(&i, &v, sizeof(i));
		mp_int(h, i);
		break;
	}
	}
	return MP_OK;
}

static const char *mp_kind_name(msgpack_object_type t)
{
	return t == MSGPACK_OBJECT_MAP ? "map" : "array";
}

int rpc_msgpack_check(const void *buf, size_t len, unsigned max_depth, char *err, size_t errlen)
{
	const uint8_t *p = buf;
	uint64_t stack[RPC_MSGPACK_DEPTH_LIMIT + 1];
	unsigned top = 0;
	size_t off = 0;
	uint64_t owed = 1;
	struct mp_head h;

	if (max_depth > RPC_MSGPACK_DEPTH_LIMIT)
		max_depth = RPC_MSGPACK_DEPTH_LIMIT;
	if (len == 0) {
		RPC_ERR("malformed msgpack: no bytes");
		return -EPROTO;
	}
	stack[0] = 1;
	for (;;) {
		while (top > 0 && stack[top] == 0)
			top--;
		if (stack[top] == 0)
			break;
		stack[top]--;
		owed--;
		switch (mp_head_parse(p + off, len - off, &h)) {
		case MP_TRUNCATED:
			RPC_ERR("malformed msgpack: truncated at byte %zu of %zu", off, len);
			return -EPROTO;
		case MP_RESERVED:
			RPC_ERR("malformed msgpack: reserved byte 0x%02x at byte %zu", p[off], off);
			return -EPROTO;
		case MP_EXT:
			RPC_ERR("malformed msgpack: ext type (0x%02x) at byte %zu is not allowed",
			        p[off], off);
			return -EPROTO;
		}
		size_t at = off;
		off += h.hlen;
		size_t left = len - off;
		if (h.type == MSGPACK_OBJECT_STR || h.type == MSGPACK_OBJECT_BIN) {
			if (h.plen > left) {
				RPC_ERR("malformed msgpack: %s at byte %zu declares %zu bytes but "
				        "only %zu are left",
				        h.type == MSGPACK_OBJECT_STR ? "str" : "bin", at, h.plen,
				        left);
				return -EPROTO;
			}
			off += h.plen;
		} else if (h.type == MSGPACK_OBJECT_ARRAY || h.type == MSGPACK_OBJECT_MAP) {
			uint64_t n = h.type == MSGPACK_OBJECT_MAP ? 2 * (uint64_t)h.count : h.count;
			if (top + 1 > max_depth) {
				RPC_ERR(
				    "malformed msgpack: containers nested deeper than %u at byte "
				    "%zu",
				    max_depth, at);
				return -EPROTO;
			}
			if (n > left || owed + n > left) {
				RPC_ERR("malformed msgpack: %s at byte %zu declares %u %s but only "
				        "%zu bytes are left",
				        mp_kind_name(h.type), at, h.count,
				        h.type == MSGPACK_OBJECT_MAP ? "entries" : "elements",
				        left);
				return -EPROTO;
			}
			if (n > 0) {
				stack[++top] = n;
				owed += n;
			}
		}
	}
	if (off != len) {
		RPC_ERR("malformed msgpack: %zu bytes after the object", len - off);
		return -EPROTO;
	}
	return 0;
}

/* A container being filled by the builder. */
struct mp_build {
	msgpack_object *elems; /* array */
	msgpack_object_kv *kv; /* map */
	uint64_t n, i;         /* slots (2 per map pair) and the next one */
};

int rpc_msgpack_unpack(const void *buf, size_t len, unsigned max_depth, msgpack_zone *zone,
                       msgpack_object *out, char *err, size_t errlen)
{
	const uint8_t *p = buf;
	struct mp_build stack[RPC_MSGPACK_DEPTH_LIMIT + 1];
	unsigned top = 0;
	size_t off = 0;
	int r;

	r = rpc_msgpack_check(buf, len, max_depth, err, errlen);
	if (r < 0)
		return r;
	memset(out, 0, sizeof(*out));
	stack[0] = (struct mp_build){.elems = out, .n = 1, .i = 0};
	for (;;) {
		struct mp_build *f;
		msgpack_object *dst;
		struct mp_head h;

		while (top > 0 && stack[top].i == stack[top].n)
			top--;
		f = &stack[top];
		if (f->i == f->n)
			break;
		if (f->kv)
			dst = f->i % 2 == 0 ? &f->kv[f->i / 2].key : &f->kv[f->i / 2].val;
		else
			dst = &f->elems[f->i];
		f->i++;
		if (mp_head_parse(p + off, len - off, &h) != MP_OK) {
			RPC_ERR("malformed msgpack at byte %zu", off); /* cannot happen: checked */
			return -EPROTO;
		}
		off += h.hlen;
		dst->type = h.type;
		switch (h.type) {
		case MSGPACK_OBJECT_NIL:
			break;
		case MSGPACK_OBJECT_BOOLEAN:
			dst->via.boolean = h.v.b;
			break;
		case MSGPACK_OBJECT_POSITIVE_INTEGER:
			dst->via.u64 = h.v.u;
			break;
		case MSGPACK_OBJECT_NEGATIVE_INTEGER:
			dst->via.i64 = h.v.i;
			break;
		case MSGPACK_OBJECT_FLOAT32:
		case MSGPACK_OBJECT_FLOAT64:
			dst->via.f64 = h.v.f;
			break;
		case MSGPACK_OBJECT_STR:
			dst->via.str.ptr = (const char *)p + off;
			dst->via.str.size = (uint32_t)h.plen;
			off += h.plen;
			break;
		case MSGPACK_OBJECT_BIN:
			dst->via.bin.ptr = (const char *)p + off;
			dst->via.bin.size = (uint32_t)h.plen;
			off += h.plen;
			break;
		case MSGPACK_OBJECT_ARRAY:
		case MSGPACK_OBJECT_MAP: {
			bool map = h.type == MSGPACK_OBJECT_MAP;
			size_t each = map ? sizeof(msgpack_object_kv) : sizeof(msgpack_object);
			void *mem = NULL;

			if (h.count > 0) {
				if (h.count > SIZE_MAX / each)
					return -ENOMEM;
				mem = msgpack_zone_malloc(zone, h.count * each);
				if (!mem) {
					RPC_ERR("out of memory decoding a message of %zu bytes",
					        len);
					return -ENOMEM;
				}
			}
			if (map) {
				dst->via.map.size = h.count;
				dst->via.map.ptr = mem;
			} else {
				dst->via.array.size = h.count;
				dst->via.array.ptr = mem;
			}
			if (h.count > 0) {
				top++;
				stack[top] = (struct mp_build){
				    .elems = map ? NULL : mem,
				    .kv = map ? mem : NULL,
				    .n = map ? 2 * (uint64_t)h.count : h.count,
				    .i = 0,
				};
			}
			break;
		}
		default:
			RPC_ERR("malformed msgpack at byte %zu", off);
			return -EPROTO;
		}
	}
	return 0;
}

static const char *rpc_type_name(const msgpack_object *o)
{
	switch (o->type) {
	case MSGPACK_OBJECT_NIL:
		return "nil";
	case MSGPACK_OBJECT_BOOLEAN:
		return "bool";
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		return "int";
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		return "float";
	case MSGPACK_OBJECT_STR:
		return "str";
	case MSGPACK_OBJECT_BIN:
		return "bin";
	case MSGPACK_OBJECT_ARRAY:
		return "array";
	case MSGPACK_OBJECT_MAP:
		return "map";
	default:
		return "ext";
	}
}

/* True when o is an unsigned integer below 2^32; stores it. */
static bool rpc_obj_u32(const msgpack_object *o, uint32_t *v)
{
	if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 > UINT32_MAX)
		return false;
	*v = (uint32_t)o->via.u64;
	return true;
}

int rpc_request_decode(const void *buf, size_t len, msgpack_zone *zone, struct rpc_request *req,
                       bool *have_msgid, char *err, size_t errlen)
{
	msgpack_object *obj, *e;
	bool dummy;
	int r;

	if (!have_msgid)
		have_msgid = &dummy;
	*have_msgid = false;
	memset(req, 0, sizeof(*req));
	obj = msgpack_zone_malloc(zone, sizeof(*obj));
	if (!obj) {
		RPC_ERR("out of memory decoding a request");
		return -ENOMEM;
	}
	r = rpc_msgpack_unpack(buf, len, RPC_MAX_DEPTH, zone, obj, err, errlen);
	if (r < 0)
		return r;
	if (obj->type != MSGPACK_OBJECT_ARRAY) {
		RPC_ERR("not a request: a %s instead of an array", rpc_type_name(obj));
		return -EPROTO;
	}
	e = obj->via.array.ptr;
	if (obj->via.array.size >= 2 && rpc_obj_u32(&e[1], &req->msgid))
		*have_msgid = true;
	if (obj->via.array.size != 4) {
		RPC_ERR("not a request: an array of %u elements instead of 4", obj->via.array.size);
		return -EPROTO;
	}
	if (e[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER || e[0].via.u64 != RPC_REQUEST) {
		RPC_ERR("not a request: the message type is not 0");
		return -EPROTO;
	}
	if (!*have_msgid) {
		RPC_ERR("not a request: the msgid is not an unsigned integer below 2^32");
		return -EPROTO;
	}
	if (e[2].type != MSGPACK_OBJECT_STR) {
		RPC_ERR("not a request: the method is a %s instead of a str", rpc_type_name(&e[2]));
		return -EPROTO;
	}
	if (e[3].type != MSGPACK_OBJECT_ARRAY) {
		RPC_ERR("not a request: the params are a %s instead of an array",
		        rpc_type_name(&e[3]));
		return -EPROTO;
	}
	req->method = e[2].via.str.ptr;
	req->method_len = e[2].via.str.size;
	req->params = &e[3];
	return 0;
}

int rpc_response_decode(const void *buf, size_t len, msgpack_zone *zone, struct rpc_response *resp,
                        char *err, size_t errlen)
{
	msgpack_object *obj, *e;
	int r;

	memset(resp, 0, sizeof(*resp));
	obj = msgpack_zone_malloc(zone, sizeof(*obj));
	if (!obj) {
		RPC_ERR("out of memory decoding a response");
		return -ENOMEM;
	}
	r = rpc_msgpack_unpack(buf, len, RPC_MAX_DEPTH, zone, obj, err, errlen);
	if (r < 0)
		return r;
	if (obj->type != MSGPACK_OBJECT_ARRAY || obj->via.array.size != 4) {
		RPC_ERR("not a response: a %s instead of an array of 4", rpc_type_name(obj));
		return -EPROTO;
	}
	e = obj->via.array.ptr;
	if (e[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER || e[0].via.u64 != RPC_RESPONSE) {
		RPC_ERR("not a response: the message type is not 1");
		return -EPROTO;
	}
	if (!rpc_obj_u32(&e[1], &resp->msgid)) {
		RPC_ERR("not a response: the msgid is not an unsigned integer below 2^32");
		return -EPROTO;
	}
	if (e[2].type != MSGPACK_OBJECT_NIL && e[2].type != MSGPACK_OBJECT_MAP) {
		RPC_ERR("not a response: the error is a %s instead of nil or a map",
		        rpc_type_name(&e[2]));
		return -EPROTO;
	}
	resp->error = e[2].type == MSGPACK_OBJECT_NIL ? NULL : &e[2];
	resp->result = &e[3];
	return 0;
}

#define RPC_PK(call)                                                                               \
	do {                                                                                       \
		if ((call) != 0)                                                                   \
			return -ENOMEM;                                                            \
	} while (0)

int rpc_pack_str(msgpack_packer *pk, const char *s)
{
	if (!s)
		return msgpack_pack_nil(pk) ? -ENOMEM : 0;
	return rpc_pack_strn(pk, s, strlen(s));
}

int rpc_pack_strn(msgpack_packer *pk, const char *s, size_t n)
{
	if (n > UINT32_MAX)
		return -EMSGSIZE;
	RPC_PK(msgpack_pack_str(pk, n));
	RPC_PK(msgpack_pack_str_body(pk, s, n));
	return 0;
}

int rpc_pack_bin(msgpack_packer *pk, const void *p, size_t n)
{
	if (n > UINT32_MAX)
		return -EMSGSIZE;
	RPC_PK(msgpack_pack_bin(pk, n));
	RPC_PK(msgpack_pack_bin_body(pk, p, n));
	return 0;
}

int rpc_pack_request_head(msgpack_packer *pk, uint32_t msgid, const char *method, uint32_t nparams)
{
	RPC_PK(msgpack_pack_array(pk, 4));
	RPC_PK(msgpack_pack_uint32(pk, RPC_REQUEST));
	RPC_PK(msgpack_pack_uint32(pk, msgid));
	RPC_PK(rpc_pack_str(pk, method));
	RPC_PK(msgpack_pack_array(pk, nparams));
	return 0;
}

int rpc_pack_response_ok_head(msgpack_packer *pk, uint32_t msgid)
{
	RPC_PK(msgpack_pack_array(pk, 4));
	RPC_PK(msgpack_pack_uint32(pk, RPC_RESPONSE));
	RPC_PK(msgpack_pack_uint32(pk, msgid));
	RPC_PK(msgpack_pack_nil(pk));
	return 0;
}

int rpc_pack_response_ok_nil(msgpack_packer *pk, uint32_t msgid)
{
	RPC_PK(rpc_pack_response_ok_head(pk, msgid));
	RPC_PK(msgpack_pack_nil(pk));
	return 0;
}

int rpc_pack_error_map(msgpack_packer *pk, enum rpc_error code, const char *message,
                       const char *const *candidates, size_t ncandidates, unsigned needed)
{
	bool ambiguous;

	if (code <= RPC_OK || code >= RPC_E__COUNT)
		code = RPC_E_EIO;
	if (!message)
		message = rpc_error_message(code);
	ambiguous = code == RPC_E_AMBIGUOUS;
	if (ncandidates > RPC_MAX_CANDIDATES)
		ncandidates = RPC_MAX_CANDIDATES;
	if (!candidates)
		ncandidates = 0;
	RPC_PK(msgpack_pack_map(pk, ambiguous ? 5 : 3));
	RPC_PK(rpc_pack_str(pk, "errno"));
	RPC_PK(msgpack_pack_int(pk, rpc_error_errno(code)));
	RPC_PK(rpc_pack_str(pk, "name"));
	RPC_PK(rpc_pack_str(pk, rpc_error_name(code)));
	RPC_PK(rpc_pack_str(pk, "message"));
	RPC_PK(rpc_pack_str(pk, message));
	if (ambiguous) {
		RPC_PK(rpc_pack_str(pk, "candidates"));
		RPC_PK(msgpack_pack_array(pk, (uint32_t)ncandidates));
		for (size_t i = 0; i < ncandidates; i++)
			RPC_PK(rpc_pack_str(pk, candidates[i] ? candidates[i] : ""));
		RPC_PK(rpc_pack_str(pk, "needed"));
		RPC_PK(msgpack_pack_unsigned_int(pk, needed));
	}
	return 0;
}

int rpc_pack_response_error(msgpack_packer *pk, uint32_t msgid, enum rpc_error code,
                            const char *message)
{
	RPC_PK(msgpack_pack_array(pk, 4));
	RPC_PK(msgpack_pack_uint32(pk, RPC_RESPONSE));
	RPC_PK(msgpack_pack_uint32(pk, msgid));
	RPC_PK(rpc_pack_error_map(pk, code, message, NULL, 0, 0));
	RPC_PK(msgpack_pack_nil(pk));
	return 0;
}

int rpc_pack_response_errorf(msgpack_packer *pk, uint32_t msgid, enum rpc_error code,
                             const char *fmt, ...)
{
	char message[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	return rpc_pack_response_error(pk, msgid, code, message);
}

int rpc_pack_response_ambiguous(msgpack_packer *pk, uint32_t msgid, const char *message,
                                const char *const *candidates, size_t ncandidates, unsigned needed)
{
	RPC_PK(msgpack_pack_array(pk, 4));
	RPC_PK(msgpack_pack_uint32(pk, RPC_RESPONSE));
	RPC_PK(msgpack_pack_uint32(pk, msgid));
	RPC_PK(rpc_pack_error_map(pk, RPC_E_AMBIGUOUS, message, candidates, ncandidates, needed));
	RPC_PK(msgpack_pack_nil(pk));
	return 0;
}

/* Copies a str object into a fixed array, truncating; "" when o is not a str. */
static void rpc_copy_str(const msgpack_object *o, char *dst, size_t cap)
{
	const char *s;
	size_t n;

	dst[0] = '\0';
	if (rpc_obj_str(o, &s, &n) < 0)
		return;
	if (n >= cap)
		n = cap - 1;
	memcpy(dst, s, n);
	dst[n] = '\0';
}

void rpc_error_decode(const msgpack_object *err, struct rpc_error_info *out)
{
	const msgpack_object *o;
	int64_t en;
	uint64_t needed;
	const char *s;
	size_t n;

	memset(out, 0, sizeof(*out));
	out->code = RPC_E__COUNT;
	out->err_no = EIO;
	if (!err || err->type != MSGPACK_OBJECT_MAP)
		return;
	rpc_copy_str(rpc_map_get(err, "name"), out->name, sizeof(out->name));
	rpc_copy_str(rpc_map_get(err, "message"), out->message, sizeof(out->message));
	if (rpc_obj_str(rpc_map_get(err, "name"), &s, &n) == 0)
		out->code = rpc_error_from_name(s, n);
	if (out->code != RPC_E__COUNT)
		out->err_no = rpc_error_errno(out->code);
	if (rpc_obj_int(rpc_map_get(err, "errno"), &en) == 0 && en > 0 && en < 4096)
		out->err_no = (int)en;
	o = rpc_map_get(err, "candidates");
	if (o && o->type == MSGPACK_OBJECT_ARRAY) {
		for (uint32_t i = 0; i < o->via.array.size; i++) {
			if (out->ncandidates == RPC_MAX_CANDIDATES)
				break;
			if (rpc_obj_str(&o->via.array.ptr[i], &s, &n) < 0 || n > RPC_KEY_LEN)
				continue;
			memcpy(out->candidates[out->ncandidates], s, n);
			out->candidates[out->ncandidates][n] = '\0';
			out->ncandidates++;
		}
	}
	if (rpc_obj_uint(rpc_map_get(err, "needed"), &needed) == 0)
		out->needed = needed > UINT_MAX ? UINT_MAX : (unsigned)needed;
}

int rpc_obj_str(const msgpack_object *o, const char **s, size_t *len)
{
	if (!o || o->type != MSGPACK_OBJECT_STR)
		return -EINVAL;
	*s = o->via.str.ptr;
	*len = o->via.str.size;
	return 0;
}

int rpc_obj_bin(const msgpack_object *o, const void **p, size_t *len)
{
	if (!o || o->type != MSGPACK_OBJECT_BIN)
		return -EINVAL;
	*p = o->via.bin.ptr;
	*len = o->via.bin.size;
	return 0;
}

int rpc_obj_uint(const msgpack_object *o, uint64_t *v)
{
	if (!o || o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return -EINVAL;
	*v = o->via.u64;
	return 0;
}

int rpc_obj_int(const msgpack_object *o, int64_t *v)
{
	if (!o)
		return -EINVAL;
	if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= INT64_MAX) {
		*v = (int64_t)o->via.u64;
		return 0;
	}
	if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
		*v = o->via.i64;
		return 0;
	}
	return -EINVAL;
}

int rpc_obj_double(const msgpack_object *o, double *v)
{
	if (!o)
		return -EINVAL;
	switch (o->type) {
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		*v = o->via.f64;
		return 0;
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		*v = (double)o->via.u64;
		return 0;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		*v = (double)o->via.i64;
		return 0;
	default:
		return -EINVAL;
	}
}

int rpc_obj_bool(const msgpack_object *o, bool *v)
{
	if (!o || o->type != MSGPACK_OBJECT_BOOLEAN)
		return -EINVAL;
	*v = o->via.boolean;
	return 0;
}

bool rpc_obj_is_nil(const msgpack_object *o)
{
	return !o || o->type == MSGPACK_OBJECT_NIL;
}

bool rpc_obj_str_eq(const msgpack_object *o, const char *s)
{
	size_t n = strlen(s);

	return o && o->type == MSGPACK_OBJECT_STR && o->via.str.size == n &&
	       memcmp(o->via.str.ptr, s, n) == 0;
}

const msgpack_object *rpc_map_get(const msgpack_object *map, const char *key)
{
	if (!map || map->type != MSGPACK_OBJECT_MAP)
		return NULL;
	for (uint32_t i = 0; i < map->via.map.size; i++)
		if (rpc_obj_str_eq(&map->via.map.ptr[i].key, key))
			return &map->via.map.ptr[i].val;
	return NULL;
}

const msgpack_object *rpc_array_get(const msgpack_object *array, size_t i)
{
	if (!array || array->type != MSGPACK_OBJECT_ARRAY || i >= array->via.array.size)
		return NULL;
	return &array->via.array.ptr[i];
}

/*
 * json_writer.c: the JSON writer of json_writer.h. Floats are printed in their shortest
 * round-trip form (as Python's repr), strings are sanitised to valid UTF-8, and
 * msgpack trees are rendered recursively with the depth checked before every
 * descent, so the C stack holds at most max_depth + 4 frames of rpc_json_value.
 */
#include "json_writer.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RPC_TRY(call)                                                                              \
	do {                                                                                       \
		int rpc_try_r = (call);                                                            \
		if (rpc_try_r < 0)                                                                 \
			return rpc_try_r;                                                          \
	} while (0)

/*
 * The fast path of rpc_format_double, without printf: when |d| is m / 10^k as IEEE
 * division rounds it (which is what strtod of "m e-k" gives), for an integer m below
 * 10^15 and k <= 8, then m's digits are the shortest that read back to d (the DBL_DIG
 * argument in rpc_format_double: at most one decimal of 15 or fewer digits reads back
 * to a given double). Sets the digits (trailing zeros stripped) and the decimal
 * exponent of the first one; false when d is not of that form.
 */
static bool rpc_short_decimal(double d, char *digits, size_t *nd, int *exp10)
{
	static const double pow10[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8};
	double a = fabs(d);

	if (!(a < 1e15) || fpclassify(d) == FP_SUBNORMAL)
		return false;
	for (int k = 0; k < (int)(sizeof(pow10) / sizeof(pow10[0])); k++) {
		double x = a * pow10[k];
		if (!(x < 1e15))
			return false;
		uint64_t m = (uint64_t)(x + 0.5);
		if ((double)m / pow10[k] != a)
			continue;
		char t[24];
		size_t n = 0;
		do {
			t[n++] = (char)('0' + m % 10);
			m /= 10;
		} while (m);
		for (size_t i = 0; i < n; i++)
			digits[i] = t[n - 1 - i];
		*exp10 = (int)n - 1 - k;
		while (n > 1 && digits[n - 1] == '0')
			n--;
		digits[n] = '\0';
		*nd = n;
		return true;
	}
	return false;
}

size_t rpc_format_double(char out[RPC_DOUBLE_CHARS], double d)
{
	char tmp[40], digits[24];
	size_t nd = 0, o = 0;
	int exp10, prec;
	const char *e;

	if (isnan(d))
		return (size_t)snprintf(out, RPC_DOUBLE_CHARS, "nan");
	if (isinf(d))
		return (size_t)snprintf(out, RPC_DOUBLE_CHARS, "%s", d < 0 ? "-inf" : "inf");
	/*
	 * The fewest significant digits that read back to d. Any decimal of at most 15
	 * (DBL_DIG) digits survives a round trip through a double, so when some p <= 15
	 * digits read back to d, d rounded to 15 digits is those digits padded with zeros
	 * (stripped below): 15, then 16, then 17 digits need at most three tries instead
	 * of seventeen, and give what trying 1, 2, ... 17 in turn would. Subnormal
	 * numbers have fewer bits than that argument needs: they try every precision.
	 */
	if (!rpc_short_decimal(d, digits, &nd, &exp10)) {
		for (prec = fpclassify(d) == FP_SUBNORMAL ? 1 : 15; prec <= 17; prec++) {
			snprintf(tmp, sizeof(tmp), "%.*e", prec - 1, d);
			if (prec == 17 || strtod(tmp, NULL) == d)
				break;
		}
		/* tmp is [-]D[<radix>DDD]e(+|-)XX: the digits, whatever the radix char */
		e = strchr(tmp, 'e');
		if (!e) /* cannot happen */
			return (size_t)snprintf(out, RPC_DOUBLE_CHARS, "%s", tmp);
		for (const char *p = tmp; p < e; p++)
			if (*p >= '0' && *p <= '9' && nd < sizeof(digits) - 1)
				digits[nd++] = *p;
		while (nd > 1 && digits[nd - 1] == '0')
			nd--;
		digits[nd] = '\0';
		exp10 = atoi(e + 1);
	}
	if (signbit(d))
		out[o++] = '-';
	if (exp10 >= -4 && exp10 < 16) {
		if (exp10 >= 0) {
			for (int i = 0; i <= exp10; i++)
				out[o++] = (size_t)i < nd ? digits[i] : '0';
			out[o++] = '.';
			if ((size_t)exp10 + 1 < nd) {
				for (size_t i = (size_t)exp10 + 1; i < nd; i++)
					out[o++] = digits[i];
			} else {
				out[o++] = '0';
			}
		} else {
			out[o++] = '0';
			out[o++] = '.';
			for (int i = 0; i < -exp10 - 1; i++)
				out[o++] = '0';
			for (size_t i = 0; i < nd; i++)
				out[o++] = digits[i];
		}
		out[o] = '\0';
	} else {
		out[o++] = digits[0];
		if (nd > 1) {
			out[o++] = '.';
			for (size_t i = 1; i < nd; i++)
				out[o++] = digits[i];
		}
		o += (size_t)snprintf(out + o, RPC_DOUBLE_CHARS - o, "e%c%02d",
		                      exp10 < 0 ? '-' : '+', exp10 < 0 ? -exp10 : exp10);
	}
	return o;
}

int rpc_json_double(struct rpc_buf *b, double d)
{
	char s[RPC_DOUBLE_CHARS];
	size_t n = rpc_format_double(s, d);

	if (!isfinite(d))
		return rpc_buf_addf(b, "{\"$float\": \"%s\"}", s);
	return rpc_buf_add(b, s, n);
}

/* The decimal digits of v, after a '-' when neg, without printf (a hot path of the
 * json view). */
static int rpc_json_digits(struct rpc_buf *b, uint64_t v, bool neg)
{
	char s[24];
	size_t i = sizeof(s);

	do {
		s[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	if (neg)
		s[--i] = '-';
	return rpc_buf_add(b, s + i, sizeof(s) - i);
}

int rpc_json_int(struct rpc_buf *b, int64_t v)
{
	/* INT64_MIN's magnitude does not fit in int64_t: negate as unsigned */
	if (v < 0)
		return rpc_json_digits(b, 0 - (uint64_t)v, true);
	return rpc_json_digits(b, (uint64_t)v, false);
}

int rpc_json_uint(struct rpc_buf *b, uint64_t v)
{
	return rpc_json_digits(b, v, false);
}

/*
 * Length of the well-formed UTF-8 sequence at s (1 to 4), or 0 when the bytes do
 * not start one; *bad then gets the length of the maximal ill-formed subpart to
 * replace with one U+FFFD (Unicode 15, section 3.9, "U+FFFD substitution of maximal
 * subparts", as Python and browsers do).
 */
static size_t rpc_utf8_seq(const uint8_t *s, size_t left, size_t *bad)
{
	uint8_t c = s[0], lo = 0x80, hi = 0xbf;
	size_t need, i;

	*bad = 1;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		need = 2;
	else if (c >= 0xe0 && c <= 0xef) {
		need = 3;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		need = 4;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
	} else {
		return 0;
	}
	for (i = 1; i < need; i++) {
		if (i >= left || s[i] < lo || s[i] > hi) {
			*bad = i;
			return 0;
		}
		lo = 0x80;
		hi = 0xbf;
	}
	return need;
}

/* The code point of a well-formed UTF-8 sequence of n bytes (rpc_utf8_seq's). */
static uint32_t rpc_utf8_decode(const uint8_t *s, size_t n)
{
	static const uint8_t lead_mask[5] = {0, 0x7f, 0x1f, 0x0f, 0x07};
	uint32_t cp = s[0] & lead_mask[n];

	for (size_t i = 1; i < n; i++)
		cp = cp << 6 | (s[i] & 0x3f);
	return cp;
}

/* \uXXXX of one UTF-16 unit, lower-case hex as Python's json module writes it. */
static int rpc_json_u16(struct rpc_buf *b, uint32_t unit)
{
	char u[12];

	snprintf(u, sizeof(u), "\\u%04x", (unsigned)(unit & 0xffff));
	return rpc_buf_adds(b, u);
}

/* A code point as ASCII escapes: one \uXXXX, or a surrogate pair beyond the BMP. */
static int rpc_json_escape_cp(struct rpc_buf *b, uint32_t cp)
{
	if (cp < 0x10000)
		return rpc_json_u16(b, cp);
	cp -= 0x10000;
	RPC_TRY(rpc_json_u16(b, 0xd800 | cp >> 10));
	return rpc_json_u16(b, 0xdc00 | (cp & 0x3ff));
}

/*
 * The JSON string of s; ascii: every byte written is ASCII, what is not printable
 * ASCII (DEL and beyond) escaped as Python's json.dumps(ensure_ascii=True) does.
 */
static int rpc_json_str(struct rpc_buf *b, const char *s, size_t len, bool ascii)
{
	const uint8_t *p = (const uint8_t *)s;
	size_t i = 0, run = 0; /* bytes [i - run, i) are pending plain text */

	RPC_TRY(rpc_buf_addc(b, '"'));
	while (i < len) {
		uint8_t c = p[i];
		const char *esc = NULL;
		char u[8];
		size_t n, bad = 1;

		if (c >= 0x20 && c != '"' && c != '\\' && c < (ascii ? 0x7f : 0x80)) {
			i++;
			run++;
			continue;
		}
		if (c >= 0x80) {
			n = rpc_utf8_seq(p + i, len - i, &bad);
			if (n && !ascii) {
				i += n;
				run += n;
				continue;
			}
			if (n) {
				if (run)
					RPC_TRY(rpc_buf_add(b, p + i - run, run));
				run = 0;
				RPC_TRY(rpc_json_escape_cp(b, rpc_utf8_decode(p + i, n)));
				i += n;
				continue;
			}
		}
		if (run)
			RPC_TRY(rpc_buf_add(b, p + i - run, run));
		run = 0;
		switch (c) {
		case '"':
			esc = "\\\"";
			break;
		case '\\':
			esc = "\\\\";
			break;
		case '\n':
			esc = "\\n";
			break;
		case '\r':
			esc = "\\r";
			break;
		case '\t':
			esc = "\\t";
			break;
		case '\b':
			esc = "\\b";
			break;
		case '\f':
			esc = "\\f";
			break;
		default:
			if (c < 0x20 || c == 0x7f) { /* 0x7f: ascii only */
				snprintf(u, sizeof(u), "\\u%04x", c);
				esc = u;
			}
		}
		if (esc) {
			RPC_TRY(rpc_buf_adds(b, esc));
			i++;
		} else {
			if (ascii)
				RPC_TRY(rpc_json_u16(b, 0xfffd));
			else
				RPC_TRY(rpc_buf_add(b, "\xef\xbf\xbd", 3)); /* U+FFFD */
			i += bad;
		}
	}
	if (run)
		RPC_TRY(rpc_buf_add(b, p + i - run, run));
	return rpc_buf_addc(b, '"');
}

int rpc_json_string(struct rpc_buf *b, const char *s, size_t len)
{
	return rpc_json_str(b, s, len, false);
}

int rpc_json_string_ascii(struct rpc_buf *b, const char *s, size_t len)
{
	return rpc_json_str(b, s, len, true);
}

int rpc_base64(struct rpc_buf *b, const void *data, size_t n)
{
	static const char tab[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const uint8_t *p = data;
	size_t i, o;

	if (n / 3 > (SIZE_MAX - 4) / 4)
		return -EMSGSIZE;
	RPC_TRY(rpc_buf_reserve(b, (n + 2) / 3 * 4));
	o = b->len;
	for (i = 0; i + 3 <= n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		b->data[o++] = tab[v >> 18];
		b->data[o++] = tab[(v >> 12) & 63];
		b->data[o++] = tab[(v >> 6) & 63];
		b->data[o++] = tab[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)p[i] << 16;
		b->data[o++] = tab[v >> 18];
		b->data[o++] = tab[(v >> 12) & 63];
		b->data[o++] = '=';
		b->data[o++] = '=';
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
		b->data[o++] = tab[v >> 18];
		b->data[o++] = tab[(v >> 12) & 63];
		b->data[o++] = tab[(v >> 6) & 63];
		b->data[o++] = '=';
	}
	b->len = o;
	b->data[o] = '\0';
	return 0;
}

int rpc_json_bytes_base64(struct rpc_buf *b, const void *p, size_t n)
{
	RPC_TRY(rpc_buf_adds(b, "{\"$bytes\": \""));
	RPC_TRY(rpc_base64(b, p, n));
	return rpc_buf_adds(b, "\"}");
}

struct rpc_json_ctx {
	struct rpc_buf *b;
	unsigned max_depth;
	int indent;
};

/* A newline and the indentation of level, or the item separator on one line. */
static int rpc_json_sep(struct rpc_json_ctx *c, unsigned level, bool first)
{
	if (!first)
		RPC_TRY(rpc_buf_addc(c->b, ','));
	if (c->indent > 0) {
		RPC_TRY(rpc_buf_addc(c->b, '\n'));
		for (unsigned i = 0; i < level * (unsigned)c->indent; i++)
			RPC_TRY(rpc_buf_addc(c->b, ' '));
	} else if (c->indent == 0 && !first) {
		RPC_TRY(rpc_buf_addc(c->b, ' '));
	}
	return 0;
}

static int rpc_json_colon(struct rpc_json_ctx *c)
{
	return rpc_buf_adds(c->b, c->indent >= 0 ? ": " : ":");
}

/* True when a map must be written as {"$dict": ...}: a non-str key, or a tag look-alike. */
static bool rpc_json_map_needs_dict(const msgpack_object *o)
{
	const msgpack_object_map *m = &o->via.map;

	for (uint32_t i = 0; i < m->size; i++)
		if (m->ptr[i].key.type != MSGPACK_OBJECT_STR)
			return true;
	if (m->size == 1) {
		const msgpack_object *k = &m->ptr[0].key;
		static const char *const tags[] = {"$bytes", "$float", "$dict"};
		for (size_t t = 0; t < sizeof(tags) / sizeof(tags[0]); t++) {
			size_t n = strlen(tags[t]);
			if (k->via.str.size == n && memcmp(k->via.str.ptr, tags[t], n) == 0)
				return true;
		}
	}
	return false;
}

static int rpc_json_value(struct rpc_json_ctx *c, const msgpack_object *o, unsigned level);
static int rpc_json_close(struct rpc_json_ctx *c, unsigned level, bool empty, char close);

/*
 * Writes the start of a tag object, {"$name": " , up to its string value. A tag stands
 * for one scalar, so it stays on one line even in indented output, as the value views
 * write it: {"$float": "nan"}.
 */
static int rpc_json_tag_begin(struct rpc_json_ctx *c, unsigned level, const char *name)
{
	RPC_TRY(rpc_buf_addc(c->b, '{'));
	RPC_TRY(rpc_json_string(c->b, name, strlen(name)));
	RPC_TRY(rpc_json_colon(c));
	return rpc_buf_addc(c->b, '"');
}

static int rpc_json_tag_end(struct rpc_json_ctx *c, unsigned level)
{
	return rpc_buf_adds(c->b, "\"}");
}

static int rpc_json_float(struct rpc_json_ctx *c, double d, unsigned level)
{
	char s[RPC_DOUBLE_CHARS];
	size_t n = rpc_format_double(s, d);

	if (isfinite(d))
		return rpc_buf_add(c->b, s, n);
	RPC_TRY(rpc_json_tag_begin(c, level, "$float"));
	RPC_TRY(rpc_buf_add(c->b, s, n));
	return rpc_json_tag_end(c, level);
}

static int rpc_json_bin(struct rpc_json_ctx *c, const void *p, size_t n, unsigned level)
{
	RPC_TRY(rpc_json_tag_begin(c, level, "$bytes"));
	RPC_TRY(rpc_base64(c->b, p, n));
	return rpc_json_tag_end(c, level);
}

static int rpc_json_close(struct rpc_json_ctx *c, unsigned level, bool empty, char close)
{
	if (!empty && c->indent > 0)
		RPC_TRY(rpc_json_sep(c, level, true));
	return rpc_buf_addc(c->b, close);
}

static int rpc_json_dict(struct rpc_json_ctx *c, const msgpack_object *o, unsigned level)
{
	const msgpack_object_map *m = &o->via.map;

	/* {"$dict": [[k, v], ...]} takes two more levels than the map itself. */
	if (level + 2 > c->max_depth)
		return -EINVAL;
	RPC_TRY(rpc_buf_addc(c->b, '{'));
	RPC_TRY(rpc_json_sep(c, level + 1, true));
	RPC_TRY(rpc_json_string(c->b, "$dict", 5));
	RPC_TRY(rpc_json_colon(c));
	RPC_TRY(rpc_buf_addc(c->b, '['));
	for (uint32_t i = 0; i < m->size; i++) {
		RPC_TRY(rpc_json_sep(c, level + 2, i == 0));
		RPC_TRY(rpc_buf_addc(c->b, '['));
		RPC_TRY(rpc_json_sep(c, level + 3, true));
		RPC_TRY(rpc_json_value(c, &m->ptr[i].key, level + 3));
		RPC_TRY(rpc_json_sep(c, level + 3, false));
		RPC_TRY(rpc_json_value(c, &m->ptr[i].val, level + 3));
		RPC_TRY(rpc_json_close(c, level + 2, false, ']'));
	}
	RPC_TRY(rpc_json_close(c, level + 1, m->size == 0, ']'));
	return rpc_json_close(c, level, false, '}');
}

static int rpc_json_value(struct rpc_json_ctx *c, const msgpack_object *o, unsigned level)
{
	switch (o->type) {
	case MSGPACK_OBJECT_NIL:
		return rpc_buf_adds(c->b, "null");
	case MSGPACK_OBJECT_BOOLEAN:
		return rpc_buf_adds(c->b, o->via.boolean ? "true" : "false");
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		return rpc_json_uint(c->b, o->via.u64);
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		return rpc_json_int(c->b, o->via.i64);
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		return rpc_json_float(c, o->via.f64, level);
	case MSGPACK_OBJECT_STR:
		return rpc_json_string(c->b, o->via.str.ptr, o->via.str.size);
	case MSGPACK_OBJECT_BIN:
		return rpc_json_bin(c, o->via.bin.ptr, o->via.bin.size, level);
	case MSGPACK_OBJECT_ARRAY: {
		const msgpack_object_array *a = &o->via.array;
		if (level + 1 > c->max_depth)
			return -EINVAL;
		RPC_TRY(rpc_buf_addc(c->b, '['));
		for (uint32_t i = 0; i < a->size; i++) {
			RPC_TRY(rpc_json_sep(c, level + 1, i == 0));
			RPC_TRY(rpc_json_value(c, &a->ptr[i], level + 1));
		}
		return rpc_json_close(c, level, a->size == 0, ']');
	}
	case MSGPACK_OBJECT_MAP: {
		const msgpack_object_map *m = &o->via.map;
		if (level + 1 > c->max_depth)
			return -EINVAL;
		if (rpc_json_map_needs_dict(o))
			return rpc_json_dict(c, o, level);
		RPC_TRY(rpc_buf_addc(c->b, '{'));
		for (uint32_t i = 0; i < m->size; i++) {
			RPC_TRY(rpc_json_sep(c, level + 1, i == 0));
			RPC_TRY(rpc_json_value(c, &m->ptr[i].key, level + 1));
			RPC_TRY(rpc_json_colon(c));
			RPC_TRY(rpc_json_value(c, &m->ptr[i].val, level + 1));
		}
		return rpc_json_close(c, level, m->size == 0, '}');
	}
	default:
		return -EINVAL;
	}
}

int rpc_json_msgpack(struct rpc_buf *b, const msgpack_object *o, unsigned max_depth, int indent)
{
	struct rpc_json_ctx c = {b, max_depth, indent};

	return rpc_json_value(&c, o, 0);
}

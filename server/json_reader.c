/*
 * json_reader.c: JSON (plus NaN/Infinity/-Infinity) to msgpack, recursive descent with a
 * depth limit. A container's element count is found by a validating dry run over it
 * before its msgpack header is written, so the cost is O(depth * size), bounded by
 * SRV_SJSON_MAX_DEPTH.
 */
#include "json_reader.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ctx {
	const char *s;
	size_t len, pos;
	msgpack_packer *pk;
	char *why;
	size_t whylen;
	unsigned depth, max_depth;
	/* srv_sjson_number: the last number parsed */
	double num;
	bool num_ok;
};

static int fail(struct ctx *c, const char *what)
{
	if (c->why && c->whylen)
		snprintf(c->why, c->whylen, "%s at offset %zu", what, c->pos);
	return -1;
}

static void skip_ws(struct ctx *c)
{
	while (c->pos < c->len && (c->s[c->pos] == ' ' || c->s[c->pos] == '\t' ||
	                           c->s[c->pos] == '\n' || c->s[c->pos] == '\r'))
		c->pos++;
}

static bool literal(struct ctx *c, const char *word)
{
	size_t n = strlen(word);

	if (c->len - c->pos >= n && memcmp(c->s + c->pos, word, n) == 0) {
		c->pos += n;
		return true;
	}
	return false;
}

static int hex4(struct ctx *c, unsigned *out)
{
	unsigned v = 0;

	if (c->len - c->pos < 4)
		return fail(c, "truncated \\u escape");
	for (int i = 0; i < 4; i++) {
		char ch = c->s[c->pos++];

		v <<= 4;
		if (ch >= '0' && ch <= '9')
			v |= (unsigned)(ch - '0');
		else if (ch >= 'a' && ch <= 'f')
			v |= (unsigned)(ch - 'a' + 10);
		else if (ch >= 'A' && ch <= 'F')
			v |= (unsigned)(ch - 'A' + 10);
		else
			return fail(c, "bad \\u escape");
	}
	*out = v;
	return 0;
}

static size_t put_utf8(char *o, unsigned cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xc0 | cp >> 6);
		o[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xe0 | cp >> 12);
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		o[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | cp >> 18);
	o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	o[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/*
 * Parses a string at c->pos (on the opening quote). When out is not NULL, stores a
 * malloc'd decoded copy (the decoded text is never longer than the JSON text).
 */
static int parse_string(struct ctx *c, char **out, size_t *outlen)
{
	size_t start = ++c->pos, n = 0;
	char *buf = NULL;

	/* find the end first, to size the buffer */
	while (c->pos < c->len && c->s[c->pos] != '"') {
		if ((unsigned char)c->s[c->pos] < 0x20)
			return fail(c, "control character in string");
		if (c->s[c->pos] == '\\')
			c->pos++;
		c->pos++;
	}
	if (c->pos >= c->len)
		return fail(c, "unterminated string");
	if (out) {
		buf = malloc(c->pos - start + 1);
		if (!buf)
			return fail(c, "out of memory");
	}
	c->pos = start;
	while (c->s[c->pos] != '"') {
		char ch = c->s[c->pos++];
		unsigned cp, lo;

		if (ch != '\\') {
			if (buf)
				buf[n] = ch;
			n++;
			continue;
		}
		ch = c->s[c->pos++];
		switch (ch) {
		case '"':
		case '\\':
		case '/':
			break;
		case 'b':
			ch = '\b';
			break;
		case 'f':
			ch = '\f';
			break;
		case 'n':
			ch = '\n';
			break;
		case 'r':
			ch = '\r';
			break;
		case 't':
			ch = '\t';
			break;
		case 'u':
			if (hex4(c, &cp) != 0)
				goto bad;
			if (cp >= 0xd800 && cp < 0xdc00 && c->len - c->pos >= 6 &&
			    c->s[c->pos] == '\\' && c->s[c->pos + 1] == 'u') {
				size_t save = c->pos;

				c->pos += 2;
				if (hex4(c, &lo) != 0)
					goto bad;
				if (lo >= 0xdc00 && lo < 0xe000)
					cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
				else
					c->pos = save; /* lone surrogate: kept as WTF-8 */
			}
			if (buf)
				n += put_utf8(buf + n, cp);
			else
				n += 4;
			continue;
		default:
			fail(c, "bad escape in string");
			goto bad;
		}
		if (buf)
			buf[n] = ch;
		n++;
	}
	c->pos++;
	if (out) {
		buf[n] = '\0';
		*out = buf;
		*outlen = n;
	}
	return 0;
bad:
	free(buf);
	return -1;
}

static int pack_str(msgpack_packer *pk, const char *s, size_t n)
{
	return msgpack_pack_str(pk, n) || msgpack_pack_str_body(pk, s, n);
}

static int parse_number(struct ctx *c, bool emit)
{
	size_t start = c->pos;
	bool neg = false, isfloat = false;
	char small[64], *tmp = small;
	double d;
	int rc = 0;

	if (c->s[c->pos] == '-') {
		neg = true;
		c->pos++;
		if (literal(c, "Infinity")) {
			c->num = -INFINITY;
			c->num_ok = true;
			return emit ? (msgpack_pack_double(c->pk, -INFINITY) ? fail(c, "pack") : 0)
			            : 0;
		}
	}
	if (c->pos >= c->len || c->s[c->pos] < '0' || c->s[c->pos] > '9')
		return fail(c, "bad number");
	if (c->s[c->pos] == '0')
		c->pos++;
	else
		while (c->pos < c->len && c->s[c->pos] >= '0' && c->s[c->pos] <= '9')
			c->pos++;
	if (c->pos < c->len && c->s[c->pos] == '.') {
		isfloat = true;
		c->pos++;
		if (c->pos >= c->len || c->s[c->pos] < '0' || c->s[c->pos] > '9')
			return fail(c, "bad number");
		while (c->pos < c->len && c->s[c->pos] >= '0' && c->s[c->pos] <= '9')
			c->pos++;
	}
	if (c->pos < c->len && (c->s[c->pos] == 'e' || c->s[c->pos] == 'E')) {
		isfloat = true;
		c->pos++;
		if (c->pos < c->len && (c->s[c->pos] == '+' || c->s[c->pos] == '-'))
			c->pos++;
		if (c->pos >= c->len || c->s[c->pos] < '0' || c->s[c->pos] > '9')
			return fail(c, "bad number");
		while (c->pos < c->len && c->s[c->pos] >= '0' && c->s[c->pos] <= '9')
			c->pos++;
	}
	if (c->pos - start >= sizeof(small)) {
		tmp = malloc(c->pos - start + 1);
		if (!tmp)
			return fail(c, "out of memory");
	}
	memcpy(tmp, c->s + start, c->pos - start);
	tmp[c->pos - start] = '\0';
	d = strtod(tmp, NULL);
	c->num = d;
	c->num_ok = true;
	if (!emit)
		goto out;
	if (isfloat) {
		rc = msgpack_pack_double(c->pk, d);
	} else {
		/* integer: exact when it fits in int64 */
		const char *digits = tmp + neg;
		size_t nd = strlen(digits);
		uint64_t v = 0;
		bool fits = nd <= 19;

		for (size_t i = 0; fits && i < nd; i++) {
			unsigned dg = (unsigned)(digits[i] - '0');

			if (v > (UINT64_MAX - dg) / 10)
				fits = false;
			else
				v = v * 10 + dg;
		}
		if (fits && !neg && v <= (uint64_t)INT64_MAX)
			rc = msgpack_pack_int64(c->pk, (int64_t)v);
		else if (fits && neg && v <= (uint64_t)INT64_MAX + 1)
			rc = msgpack_pack_int64(c->pk, v == (uint64_t)INT64_MAX + 1 ? INT64_MIN
			                                                            : -(int64_t)v);
		else
			rc = msgpack_pack_map(c->pk, 1) || pack_str(c->pk, "$int", 4) ||
			     pack_str(c->pk, tmp, strlen(tmp));
	}
out:
	if (tmp != small)
		free(tmp);
	return rc ? fail(c, "out of memory") : 0;
}

static int parse_value(struct ctx *c, bool emit);

/* Parses an array or object at c->pos; counts elements into *count. */
static int parse_container(struct ctx *c, bool emit, size_t *count)
{
	bool obj = c->s[c->pos] == '{';
	char close = obj ? '}' : ']';
	size_t n = 0;

	if (++c->depth > c->max_depth) {
		if (c->why && c->whylen)
			snprintf(c->why, c->whylen, "nesting deeper than %u levels at offset %zu",
			         c->max_depth, c->pos);
		return -1;
	}
	c->pos++;
	skip_ws(c);
	if (c->pos < c->len && c->s[c->pos] == close) {
		c->pos++;
		goto done;
	}
	for (;;) {
		skip_ws(c);
		if (obj) {
			char *key = NULL;
			size_t klen = 0;

			if (c->pos >= c->len || c->s[c->pos] != '"')
				return fail(c, "expected a string key");
			if (parse_string(c, emit ? &key : NULL, &klen) != 0)
				return -1;
			if (emit && pack_str(c->pk, key, klen)) {
				free(key);
				return fail(c, "out of memory");
			}
			free(key);
			skip_ws(c);
			if (c->pos >= c->len || c->s[c->pos] != ':')
				return fail(c, "expected ':'");
			c->pos++;
		}
		if (parse_value(c, emit) != 0)
			return -1;
		n++;
		skip_ws(c);
		if (c->pos < c->len && c->s[c->pos] == ',') {
			c->pos++;
			continue;
		}
		if (c->pos < c->len && c->s[c->pos] == close) {
			c->pos++;
			break;
		}
		return fail(c, obj ? "expected ',' or '}'" : "expected ',' or ']'");
	}
done:
	c->depth--;
	*count = n;
	return 0;
}

static int parse_value(struct ctx *c, bool emit)
{
	int rc = 0;

	skip_ws(c);
	if (c->pos >= c->len)
		return fail(c, "unexpected end of JSON");
	switch (c->s[c->pos]) {
	case '{':
	case '[': {
		size_t start = c->pos, n;
		bool obj = c->s[c->pos] == '{';

		if (!emit)
			return parse_container(c, false, &n);
		if (parse_container(c, false, &n) != 0)
			return -1;
		if (n > UINT32_MAX)
			return fail(c, "container too large");
		rc = obj ? msgpack_pack_map(c->pk, n) : msgpack_pack_array(c->pk, n);
		if (rc)
			return fail(c, "out of memory");
		c->pos = start;
		return parse_container(c, true, &n);
	}
	case '"': {
		char *s = NULL;
		size_t n = 0;

		if (parse_string(c, emit ? &s : NULL, &n) != 0)
			return -1;
		if (emit)
			rc = pack_str(c->pk, s, n);
		free(s);
		break;
	}
	case 't':
		if (!literal(c, "true"))
			return fail(c, "bad literal");
		if (emit)
			rc = msgpack_pack_true(c->pk);
		break;
	case 'f':
		if (!literal(c, "false"))
			return fail(c, "bad literal");
		if (emit)
			rc = msgpack_pack_false(c->pk);
		break;
	case 'n':
		if (!literal(c, "null"))
			return fail(c, "bad literal");
		if (emit)
			rc = msgpack_pack_nil(c->pk);
		break;
	case 'N':
		if (!literal(c, "NaN"))
			return fail(c, "bad literal");
		c->num = NAN;
		c->num_ok = true;
		if (emit)
			rc = msgpack_pack_double(c->pk, NAN);
		break;
	case 'I':
		if (!literal(c, "Infinity"))
			return fail(c, "bad literal");
		c->num = INFINITY;
		c->num_ok = true;
		if (emit)
			rc = msgpack_pack_double(c->pk, INFINITY);
		break;
	default:
		return parse_number(c, emit);
	}
	return rc ? fail(c, "out of memory") : 0;
}

int srv_sjson_pack(const char *text, size_t len, msgpack_packer *pk, char *why, size_t whylen)
{
	struct ctx c = {.s = text,
	                .len = len,
	                .pk = pk,
	                .why = why,
	                .whylen = whylen,
	                .max_depth = SRV_SJSON_MAX_DEPTH};

	if (len > SRV_SJSON_MAX_INPUT)
		return fail(&c, "JSON text too large");
	if (parse_value(&c, true) != 0)
		return -1;
	skip_ws(&c);
	if (c.pos != c.len)
		return fail(&c, "trailing characters after JSON");
	return 0;
}

int srv_sjson_check(const char *text, size_t len, unsigned max_depth, char *why, size_t whylen)
{
	struct ctx c = {
	    .s = text, .len = len, .why = why, .whylen = whylen, .max_depth = max_depth};

	if (parse_value(&c, false) != 0)
		return -1;
	skip_ws(&c);
	if (c.pos != c.len)
		return fail(&c, "trailing characters after JSON");
	return 0;
}

static bool is_ws(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r';
}

/*
 * The fast path of srv_sjson_number, for the text json.dumps writes: one pass over
 * the bytes that only tracks strings and nesting (no allocation, no decoding), finds
 * `key` among the top-level object's keys and reads its number with strtod. Returns
 * true only when it is sure (a plain, unescaped key whose value is a decimal number
 * followed by a delimiter); anything else (escapes in the key, NaN/Infinity, the key
 * absent, odd input) returns false and the full parser decides.
 */
static bool number_fast(const char *s, size_t len, const char *key, size_t klen, double *out)
{
	char buf[64], *end;
	size_t i = 0, start, stop, n0;
	unsigned depth = 0;
	bool want_key = false, esc;
	double d;

	while (i < len) {
		char ch = s[i];

		if (ch == '"') {
			start = ++i;
			esc = false;
			while (i < len && s[i] != '"') {
				if (s[i] == '\\') {
					esc = true;
					i++;
				}
				i++;
			}
			if (i >= len)
				return false;
			stop = i++;
			if (depth != 1 || !want_key)
				continue;
			want_key = false;
			while (i < len && is_ws(s[i]))
				i++;
			if (i >= len || s[i] != ':')
				return false;
			i++;
			if (esc || stop - start != klen || memcmp(s + start, key, klen) != 0)
				continue;
			while (i < len && is_ws(s[i]))
				i++;
			n0 = i;
			if (i < len && s[i] == '-')
				i++;
			if (i >= len || s[i] < '0' || s[i] > '9')
				return false;
			while (i < len &&
			       ((s[i] >= '0' && s[i] <= '9') || s[i] == '.' || s[i] == 'e' ||
			        s[i] == 'E' || s[i] == '+' || s[i] == '-'))
				i++;
			if (i >= len || i - n0 >= sizeof(buf) ||
			    !(is_ws(s[i]) || s[i] == ',' || s[i] == '}'))
				return false;
			memcpy(buf, s + n0, i - n0);
			buf[i - n0] = '\0';
			d = strtod(buf, &end);
			if (*end != '\0')
				return false;
			*out = d;
			return true;
		}
		if (ch == '{' || ch == '[') {
			if (depth == 0 && ch == '[')
				return false;
			depth++;
			want_key = ch == '{' && depth == 1;
		} else if (ch == '}' || ch == ']') {
			if (depth <= 1)
				return false; /* the top-level object ended: not found */
			depth--;
		} else if (ch == ',' && depth == 1) {
			want_key = true;
		} else if (depth == 0 && !is_ws(ch)) {
			return false;
		}
		i++;
	}
	return false;
}

int srv_sjson_number(const char *text, size_t len, const char *key, double *out)
{
	struct ctx c = {.s = text, .len = len, .max_depth = SRV_SJSON_MAX_DEPTH};
	size_t klen = strlen(key);

	if (len > SRV_SJSON_MAX_INPUT)
		return -1;
	if (number_fast(text, len, key, klen, out))
		return 0;
	skip_ws(&c);
	if (c.pos >= c.len || c.s[c.pos] != '{')
		return -1;
	c.pos++;
	c.depth = 1;
	for (;;) {
		char *k = NULL;
		size_t kn = 0;
		bool match;

		skip_ws(&c);
		if (c.pos >= c.len || c.s[c.pos] != '"')
			return -1;
		if (parse_string(&c, &k, &kn) != 0)
			return -1;
		match = kn == klen && memcmp(k, key, klen) == 0;
		free(k);
		skip_ws(&c);
		if (c.pos >= c.len || c.s[c.pos] != ':')
			return -1;
		c.pos++;
		c.num_ok = false;
		skip_ws(&c);
		if (match) {
			char ch = c.pos < c.len ? c.s[c.pos] : 0;

			if (ch != '-' && ch != 'N' && ch != 'I' && !(ch >= '0' && ch <= '9'))
				return -1;
			if (parse_value(&c, false) != 0 || !c.num_ok)
				return -1;
			*out = c.num;
			return 0;
		}
		if (parse_value(&c, false) != 0)
			return -1;
		skip_ws(&c);
		if (c.pos < c.len && c.s[c.pos] == ',') {
			c.pos++;
			continue;
		}
		return -1;
	}
}

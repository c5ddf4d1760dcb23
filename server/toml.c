/*
 * toml.c: the TOML 1.0 reader of toml.h, a recursive-descent parser over the input
 * bytes. The grammar follows the specification's ABNF; the rules on redefinition are
 * kept with flags on each table and array:
 *
 *   T_HEADER   the table was defined by a [header] (or is an element of [[array]]):
 *              a second [header] for it is an error, and so are dotted keys
 *              reaching into it from another table's section;
 *   T_DOTTED   created by a dotted key (a.b = 1 creates table a): a [header] naming
 *              it is an error, a [header] below it (a.c.d) is not;
 *   T_FROZEN   an inline table or an array written as a value: nothing may be added
 *              to it, by header or dotted key;
 *   T_AOT      an array created by [[header]], the only kind [[header]] appends to;
 *   none       a table created as an intermediate of a [header] (a for [a.b]): a
 *              later [a] defines it.
 *
 * Nesting depth is counted from the root for every table created or entered, so the
 * recursion of toml_free and of the printers is bounded (toml.h, invariant 1).
 */
#include "toml.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc.h"

enum {
	T_HEADER = 1,
	T_DOTTED = 2,
	T_FROZEN = 4,
	T_AOT = 8,
};

/* tables with more entries than this get a hash index */
#define INDEX_FROM 8
/* parts of one dotted key */
#define MAX_KEY_PARTS TOML_MAX_DEPTH

struct parser {
	const char *s;
	size_t len, pos;
	struct toml_error *err;
	bool failed;
	struct toml_value *root, *current; /* current: the table of the last header */
	unsigned current_depth;
};

struct key {
	char *bytes;
	size_t len;
	size_t pos; /* where the key starts, for messages */
};

struct keypath {
	struct key parts[MAX_KEY_PARTS];
	size_t n;
};

const char *toml_kind_name(enum toml_kind kind)
{
	static const char *const names[] = {
	    [TOML_TABLE] = "table",
	    [TOML_ARRAY] = "array",
	    [TOML_STRING] = "string",
	    [TOML_INTEGER] = "integer",
	    [TOML_FLOAT] = "float",
	    [TOML_BOOL] = "bool",
	    [TOML_DATETIME] = "datetime",
	    [TOML_DATETIME_LOCAL] = "datetime-local",
	    [TOML_DATE_LOCAL] = "date-local",
	    [TOML_TIME_LOCAL] = "time-local",
	};
	return (unsigned)kind < sizeof(names) / sizeof(names[0]) ? names[kind] : "value";
}

/* ---- errors ---- */

/* Sets the error at byte offset pos (line and column computed from the text). */
static int __attribute__((format(printf, 3, 4)))
fail_at(struct parser *p, size_t pos, const char *fmt, ...)
{
	va_list ap;
	unsigned line = 1, column = 1;

	if (p->failed)
		return -1;
	p->failed = true;
	if (pos > p->len)
		pos = p->len;
	for (size_t i = 0; i < pos; i++) {
		if (p->s[i] == '\n') {
			line++;
			column = 1;
		} else if (((unsigned char)p->s[i] & 0xC0) != 0x80) {
			column++;
		}
	}
	p->err->line = line;
	p->err->column = column;
	va_start(ap, fmt);
	vsnprintf(p->err->message, sizeof(p->err->message), fmt, ap);
	va_end(ap);
	return -1;
}

#define fail(p, ...) fail_at((p), (p)->pos, __VA_ARGS__)

static int oom(struct parser *p)
{
	return fail(p, "out of memory");
}

/* ---- values and tables ---- */

static struct toml_value *new_value(struct parser *p, enum toml_kind kind, size_t pos)
{
	struct toml_value *v = calloc(1, sizeof(*v));

	if (!v) {
		oom(p);
		return NULL;
	}
	v->kind = kind;
	/* line and column are filled in only when asked for: compute lazily below */
	v->line = 0;
	v->column = (unsigned)(pos > UINT32_MAX ? UINT32_MAX : pos); /* byte offset for now */
	return v;
}

void toml_free(struct toml_value *v)
{
	if (!v)
		return;
	switch (v->kind) {
	case TOML_TABLE:
		for (size_t i = 0; i < v->u.table.n; i++) {
			free(v->u.table.entries[i].key);
			toml_free(v->u.table.entries[i].value);
		}
		free(v->u.table.entries);
		free(v->u.table.index);
		break;
	case TOML_ARRAY:
		for (size_t i = 0; i < v->u.array.n; i++)
			toml_free(v->u.array.items[i]);
		free(v->u.array.items);
		break;
	case TOML_STRING:
	case TOML_DATETIME:
	case TOML_DATETIME_LOCAL:
	case TOML_DATE_LOCAL:
	case TOML_TIME_LOCAL:
		free(v->u.str.bytes);
		break;
	default:
		break;
	}
	free(v);
}

static uint32_t hash_key(const char *k, size_t len)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)k[i]) * 16777619u;
	return h;
}

/* (Re)builds the index with room for twice the entries; 0 or -1 (out of memory). */
static int reindex(struct toml_value *t)
{
	size_t cap = 16;
	uint32_t *index;

	while (cap < t->u.table.n * 2 + 2)
		cap *= 2;
	index = malloc(cap * sizeof(*index));
	if (!index)
		return -1;
	for (size_t i = 0; i < cap; i++)
		index[i] = UINT32_MAX;
	for (size_t i = 0; i < t->u.table.n; i++) {
		const struct toml_entry *e = &t->u.table.entries[i];
		size_t slot = hash_key(e->key, e->keylen) & (cap - 1);
		while (index[slot] != UINT32_MAX)
			slot = (slot + 1) & (cap - 1);
		index[slot] = (uint32_t)i;
	}
	free(t->u.table.index);
	t->u.table.index = index;
	t->u.table.index_cap = cap;
	return 0;
}

static struct toml_value *lookup(const struct toml_value *t, const char *key, size_t len)
{
	if (!t->u.table.index) {
		for (size_t i = 0; i < t->u.table.n; i++) {
			const struct toml_entry *e = &t->u.table.entries[i];
			if (e->keylen == len && memcmp(e->key, key, len) == 0)
				return e->value;
		}
		return NULL;
	}
	size_t cap = t->u.table.index_cap, slot = hash_key(key, len) & (cap - 1);
	while (t->u.table.index[slot] != UINT32_MAX) {
		const struct toml_entry *e = &t->u.table.entries[t->u.table.index[slot]];
		if (e->keylen == len && memcmp(e->key, key, len) == 0)
			return e->value;
		slot = (slot + 1) & (cap - 1);
	}
	return NULL;
}

const struct toml_value *toml_get(const struct toml_value *table, const char *key)
{
	if (!table || table->kind != TOML_TABLE)
		return NULL;
	return lookup(table, key, strlen(key));
}

/* Adds key -> v to table t (the key not there yet); takes v. 0 or -1. */
static int table_add(struct parser *p, struct toml_value *t, const struct key *k,
		     struct toml_value *v)
{
	struct toml_entry *e;

	if (t->u.table.n == t->u.table.cap) {
		size_t cap = t->u.table.cap ? t->u.table.cap * 2 : 4;
		e = realloc(t->u.table.entries, cap * sizeof(*e));
		if (!e)
			goto nomem;
		t->u.table.entries = e;
		t->u.table.cap = cap;
	}
	e = &t->u.table.entries[t->u.table.n];
	e->key = malloc(k->len + 1);
	if (!e->key)
		goto nomem;
	memcpy(e->key, k->bytes, k->len);
	e->key[k->len] = '\0';
	e->keylen = k->len;
	e->value = v;
	t->u.table.n++;
	if (t->u.table.n > INDEX_FROM) {
		if (!t->u.table.index || t->u.table.n * 2 > t->u.table.index_cap) {
			if (reindex(t) < 0)
				goto nomem_added;
		} else {
			size_t cap = t->u.table.index_cap;
			size_t slot = hash_key(e->key, e->keylen) & (cap - 1);
			while (t->u.table.index[slot] != UINT32_MAX)
				slot = (slot + 1) & (cap - 1);
			t->u.table.index[slot] = (uint32_t)(t->u.table.n - 1);
		}
	}
	return 0;
nomem_added:
	/* the entry is in the table and owned by it now */
	return oom(p);
nomem:
	toml_free(v);
	return oom(p);
}

static int array_add(struct parser *p, struct toml_value *a, struct toml_value *v)
{
	if (a->u.array.n == a->u.array.cap) {
		size_t cap = a->u.array.cap ? a->u.array.cap * 2 : 4;
		struct toml_value **items = realloc(a->u.array.items, cap * sizeof(*items));
		if (!items) {
			toml_free(v);
			return oom(p);
		}
		a->u.array.items = items;
		a->u.array.cap = cap;
	}
	a->u.array.items[a->u.array.n++] = v;
	return 0;
}

/* ---- characters ---- */

static int peek(const struct parser *p, size_t ahead)
{
	return p->pos + ahead < p->len ? (unsigned char)p->s[p->pos + ahead] : -1;
}

static bool at(const struct parser *p, const char *lit)
{
	size_t n = strlen(lit);
	return p->len - p->pos >= n && memcmp(p->s + p->pos, lit, n) == 0;
}

static void skip_ws(struct parser *p)
{
	while (p->pos < p->len && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t'))
		p->pos++;
}

/* A control character TOML allows nowhere (tab and newlines are handled apart). */
static bool is_control(int c)
{
	return (c >= 0 && c < 0x20 && c != '\t') || c == 0x7F;
}

/* Length of the valid UTF-8 sequence at s[0..n), or 0 (overlong, surrogate, ...). */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	unsigned c = s[0];
	size_t len;
	uint32_t cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		len = 2, cp = c & 0x1F;
	else if (c >= 0xE0 && c <= 0xEF)
		len = 3, cp = c & 0x0F;
	else if (c >= 0xF0 && c <= 0xF4)
		len = 4, cp = c & 0x07;
	else
		return 0;
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3F);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
	    (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return len;
}

/* The document must be UTF-8 throughout: checked once, before parsing. */
static int check_utf8(struct parser *p)
{
	const unsigned char *s = (const unsigned char *)p->s;
	size_t i = 0;

	while (i < p->len) {
		size_t n = utf8_len(s + i, p->len - i);
		if (n == 0)
			return fail_at(p, i, "invalid UTF-8");
		i += n;
	}
	return 0;
}

/* At a newline (LF or CRLF): consumes it and returns true. A lone CR is an error. */
static int eat_newline(struct parser *p)
{
	if (peek(p, 0) == '\n') {
		p->pos++;
		return 1;
	}
	if (peek(p, 0) == '\r') {
		if (peek(p, 1) == '\n') {
			p->pos += 2;
			return 1;
		}
		return fail(p, "carriage return not followed by a line feed");
	}
	return 0;
}

/* At '#': skips the comment up to (not including) the newline. */
static int skip_comment(struct parser *p)
{
	if (peek(p, 0) != '#')
		return 0;
	while (p->pos < p->len) {
		int c = peek(p, 0);
		if (c == '\n' || (c == '\r' && peek(p, 1) == '\n'))
			break;
		if (is_control(c))
			return fail(p, "control character U+%04X in a comment", (unsigned)c);
		p->pos++;
	}
	return 0;
}

/* Whitespace, comments and newlines (inside arrays). */
static int skip_ws_comments_newlines(struct parser *p)
{
	for (;;) {
		skip_ws(p);
		if (skip_comment(p) < 0)
			return -1;
		int r = eat_newline(p);
		if (r < 0)
			return -1;
		if (r == 0)
			return 0;
	}
}

/* After an expression: whitespace, an optional comment, then a newline or the end. */
static int end_of_line(struct parser *p)
{
	skip_ws(p);
	if (skip_comment(p) < 0)
		return -1;
	if (p->pos >= p->len)
		return 0;
	int r = eat_newline(p);
	if (r < 0)
		return -1;
	if (r == 0)
		return fail(p, "expected the end of the line, found '%c'", p->s[p->pos]);
	return 0;
}

/* ---- strings ---- */

struct sbuf {
	char *b;
	size_t len, cap;
};

static int sbuf_add(struct parser *p, struct sbuf *sb, const char *s, size_t n)
{
	if (sb->len + n + 1 > sb->cap) {
		size_t cap = sb->cap ? sb->cap : 32;
		while (cap < sb->len + n + 1)
			cap *= 2;
		char *b = realloc(sb->b, cap);
		if (!b)
			return oom(p);
		sb->b = b;
		sb->cap = cap;
	}
	memcpy(sb->b + sb->len, s, n);
	sb->len += n;
	sb->b[sb->len] = '\0';
	return 0;
}

static int sbuf_codepoint(struct parser *p, struct sbuf *sb, uint32_t cp)
{
	char u[4];
	size_t n;

	if (cp < 0x80) {
		u[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = (char)(0xC0 | cp >> 6);
		u[1] = (char)(0x80 | (cp & 0x3F));
		n = 2;
	} else if (cp < 0x10000) {
		u[0] = (char)(0xE0 | cp >> 12);
		u[1] = (char)(0x80 | (cp >> 6 & 0x3F));
		u[2] = (char)(0x80 | (cp & 0x3F));
		n = 3;
	} else {
		u[0] = (char)(0xF0 | cp >> 18);
		u[1] = (char)(0x80 | (cp >> 12 & 0x3F));
		u[2] = (char)(0x80 | (cp >> 6 & 0x3F));
		u[3] = (char)(0x80 | (cp & 0x3F));
		n = 4;
	}
	return sbuf_add(p, sb, u, n);
}

/* At the character after '\' in a basic string: appends the escaped character. */
static int read_escape(struct parser *p, struct sbuf *sb)
{
	int c = peek(p, 0);
	const char *simple = NULL;

	switch (c) {
	case 'b':
		simple = "\b";
		break;
	case 't':
		simple = "\t";
		break;
	case 'n':
		simple = "\n";
		break;
	case 'f':
		simple = "\f";
		break;
	case 'r':
		simple = "\r";
		break;
	case '"':
		simple = "\"";
		break;
	case '\\':
		simple = "\\";
		break;
	case 'u':
	case 'U': {
		size_t n = c == 'u' ? 4 : 8;
		uint32_t cp = 0;
		for (size_t i = 1; i <= n; i++) {
			int h = rpc_hex_digit(peek(p, i));
			if (h < 0)
				return fail(p, "'\\%c' needs %zu hexadecimal digits", c, n);
			cp = cp << 4 | (uint32_t)h;
		}
		if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return fail(p, "'\\%c' escape of U+%X, which is not a Unicode scalar value",
			            c, (unsigned)cp);
		p->pos += 1 + n;
		return sbuf_codepoint(p, sb, cp);
	}
	default:
		if (c < 0x20 || c == 0x7F)
			return fail(p, "invalid escape sequence");
		return fail(p, "invalid escape sequence '\\%c'", c);
	}
	p->pos++;
	return sbuf_add(p, sb, simple, 1);
}

/* One character of string content (not a quote or backslash): copies it. */
static int string_char(struct parser *p, struct sbuf *sb, bool multiline)
{
	int c = peek(p, 0);

	if (multiline && (c == '\n' || c == '\r')) {
		if (eat_newline(p) <= 0)
			return -1;
		return sbuf_add(p, sb, "\n", 1);
	}
	if (is_control(c))
		return fail(p, "control character U+%04X in a string", (unsigned)c);
	size_t n = utf8_len((const unsigned char *)p->s + p->pos, p->len - p->pos);
	if (sbuf_add(p, sb, p->s + p->pos, n) < 0)
		return -1;
	p->pos += n;
	return 0;
}

/*
 * At the opening quote(s) of any of the four kinds of string: reads it into *out
 * (NUL-terminated, length in *outlen; caller frees). keys_only refuses the
 * multi-line kinds (keys are single-line strings).
 */
static int read_string(struct parser *p, char **out, size_t *outlen, bool key)
{
	struct sbuf sb = {0};
	char q = p->s[p->pos];
	bool literal = q == '\'';
	bool multiline = at(p, literal ? "'''" : "\"\"\"");
	size_t start = p->pos;

	if (multiline && key)
		return fail(p, "a multi-line string cannot be a key");
	if (sbuf_add(p, &sb, "", 0) < 0)
		return -1;
	p->pos += multiline ? 3 : 1;
	if (multiline) {
		int r = eat_newline(p); /* a newline right after the quotes is trimmed */
		if (r < 0)
			goto fail;
	}
	for (;;) {
		int c = peek(p, 0);
		if (c < 0) {
			fail_at(p, start, "unterminated string");
			goto fail;
		}
		if (c == q) {
			if (!multiline) {
				p->pos++;
				break;
			}
			size_t n = 0;
			while (peek(p, n) == q)
				n++;
			if (n >= 3) {
				if (n > 5) {
					fail_at(p, p->pos + 5, "too many quotes at the end of a string");
					goto fail;
				}
				/* up to two quotes right before the closing three are content */
				if (sbuf_add(p, &sb, p->s + p->pos, n - 3) < 0)
					goto fail;
				p->pos += n;
				break;
			}
			if (sbuf_add(p, &sb, p->s + p->pos, n) < 0)
				goto fail;
			p->pos += n;
			continue;
		}
		if (c == '\\' && !literal) {
			p->pos++;
			if (multiline) {
				/* a line-ending backslash trims all whitespace and newlines after it */
				size_t save = p->pos;
				skip_ws(p);
				int r = eat_newline(p);
				if (r < 0)
					goto fail;
				if (r > 0) {
					for (;;) {
						skip_ws(p);
						r = eat_newline(p);
						if (r < 0)
							goto fail;
						if (r == 0)
							break;
					}
					continue;
				}
				p->pos = save;
			}
			if (read_escape(p, &sb) < 0)
				goto fail;
			continue;
		}
		if (!multiline && (c == '\n' || c == '\r')) {
			fail(p, "newline in a single-line string");
			goto fail;
		}
		if (string_char(p, &sb, multiline) < 0)
			goto fail;
	}
	*out = sb.b;
	*outlen = sb.len;
	return 0;
fail:
	free(sb.b);
	return -1;
}

/* ---- keys ---- */

static bool is_bare_key_char(int c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-';
}

static void keypath_release(struct keypath *kp)
{
	for (size_t i = 0; i < kp->n; i++)
		free(kp->parts[i].bytes);
	kp->n = 0;
}

/* A dotted key: simple keys separated by '.' (whitespace around the dots allowed). */
static int read_key(struct parser *p, struct keypath *kp)
{
	kp->n = 0;
	for (;;) {
		struct key *k;
		int c = peek(p, 0);

		if (kp->n == MAX_KEY_PARTS)
			return fail(p, "a dotted key of more than %d parts", MAX_KEY_PARTS);
		k = &kp->parts[kp->n];
		k->pos = p->pos;
		if (c == '"' || c == '\'') {
			if (read_string(p, &k->bytes, &k->len, true) < 0)
				return -1;
		} else if (is_bare_key_char(c)) {
			size_t start = p->pos;
			while (is_bare_key_char(peek(p, 0)))
				p->pos++;
			k->len = p->pos - start;
			k->bytes = malloc(k->len + 1);
			if (!k->bytes)
				return oom(p);
			memcpy(k->bytes, p->s + start, k->len);
			k->bytes[k->len] = '\0';
		} else if (c < 0 || c == '\n' || c == '\r') {
			return fail(p, "expected a key");
		} else {
			return fail(p, "expected a key, found '%c'", c);
		}
		kp->n++;
		skip_ws(p);
		if (peek(p, 0) != '.')
			return 0;
		p->pos++;
		skip_ws(p);
	}
}

/* ---- numbers, dates and times ---- */

static bool is_digit(int c)
{
	return c >= '0' && c <= '9';
}

/*
 * Digits of a base with single underscores between digits, from s[0..n): copies
 * them without the underscores into buf (capacity cap). Returns the number of
 * digits, or -1 when malformed.
 */
static long digits(const char *s, size_t n, int base, char *buf, size_t cap)
{
	size_t out = 0;

	if (n == 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '_') {
			if (i == 0 || i + 1 == n || s[i - 1] == '_')
				return -1;
			continue;
		}
		int d = rpc_hex_digit((unsigned char)s[i]);
		if (d < 0 || d >= base)
			return -1;
		if (out + 1 >= cap)
			return -2;
		buf[out++] = s[i];
	}
	buf[out] = '\0';
	return (long)out;
}

static int two(const char *s)
{
	if (!is_digit(s[0]) || !is_digit(s[1]))
		return -1;
	return (s[0] - '0') * 10 + (s[1] - '0');
}

static int days_in_month(int year, int month)
{
	static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
	return month == 2 && leap ? 29 : days[month - 1];
}

/* "YYYY-MM-DD" at s (n bytes available): 10, or -1. */
static int parse_date(const char *s, size_t n)
{
	if (n < 10 || s[4] != '-' || s[7] != '-')
		return -1;
	for (int i = 0; i < 4; i++)
		if (!is_digit(s[i]))
			return -1;
	int year = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
	int month = two(s + 5), day = two(s + 8);
	if (month < 1 || month > 12 || day < 1 || day > days_in_month(year, month))
		return -1;
	return 10;
}

/* "HH:MM:SS[.fraction]" at s: its length, or -1. */
static int parse_time(const char *s, size_t n)
{
	size_t i = 8;

	if (n < 8 || s[2] != ':' || s[5] != ':')
		return -1;
	int h = two(s), m = two(s + 3), sec = two(s + 6);
	if (h < 0 || h > 23 || m < 0 || m > 59 || sec < 0 || sec > 60)
		return -1;
	if (i < n && s[i] == '.') {
		i++;
		size_t start = i;
		while (i < n && is_digit(s[i]))
			i++;
		if (i == start)
			return -1;
	}
	return (int)i;
}

/* "Z", "z" or "+HH:MM"/"-HH:MM" at s: its length, or -1. */
static int parse_offset(const char *s, size_t n)
{
	if (n >= 1 && (s[0] == 'Z' || s[0] == 'z'))
		return 1;
	if (n >= 6 && (s[0] == '+' || s[0] == '-') && s[3] == ':') {
		int h = two(s + 1), m = two(s + 4);
		if (h >= 0 && h <= 23 && m >= 0 && m <= 59)
			return 6;
	}
	return -1;
}

/* The end of the token of a scalar that is not a string, starting at s[i]. */
static size_t token_end_at(const char *s, size_t len, size_t i)
{
	while (i < len) {
		char c = s[i];
		if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ',' || c == ']' ||
		    c == '}' || c == '#')
			break;
		i++;
	}
	return i;
}

static size_t token_end(const struct parser *p)
{
	return token_end_at(p->s, p->len, p->pos);
}

static int set_text(struct parser *p, struct toml_value *v, const char *s, size_t n)
{
	v->u.str.bytes = malloc(n + 1);
	if (!v->u.str.bytes)
		return oom(p);
	memcpy(v->u.str.bytes, s, n);
	v->u.str.bytes[n] = '\0';
	v->u.str.len = n;
	/* RFC 3339 form: 'T' between date and time, upper-case 'Z' */
	if (n > 10 && v->kind != TOML_TIME_LOCAL)
		v->u.str.bytes[10] = 'T';
	if (v->kind == TOML_DATETIME && v->u.str.bytes[n - 1] == 'z')
		v->u.str.bytes[n - 1] = 'Z';
	return 0;
}

/* A date, time or date-time starting at p->pos; *v set. 0 or -1. */
static int read_datetime(struct parser *p, struct toml_value *v)
{
	const char *s = p->s + p->pos;
	size_t avail = p->len - p->pos, end = token_end(p) - p->pos;
	int n;

	if (avail >= 3 && is_digit(s[0]) && is_digit(s[1]) && s[2] == ':') {
		n = parse_time(s, end);
		if (n < 0 || (size_t)n != end)
			return fail(p, "malformed local time");
		v->kind = TOML_TIME_LOCAL;
		p->pos += (size_t)n;
		return set_text(p, v, s, (size_t)n);
	}
	if (parse_date(s, end) < 0)
		return fail(p, "malformed date");
	size_t i = 10;
	/* the time may follow a 'T', a 't' or one space (then the token continues) */
	if (end == 10 && avail > 11 && s[10] == ' ' && is_digit(s[11]))
		end = token_end_at(p->s, p->len, p->pos + 11) - p->pos;
	if (i == end) {
		v->kind = TOML_DATE_LOCAL;
		p->pos += i;
		return set_text(p, v, s, i);
	}
	if (s[i] != 'T' && s[i] != 't' && s[i] != ' ')
		return fail_at(p, p->pos + i, "malformed date-time");
	i++;
	n = parse_time(s + i, end - i);
	if (n < 0)
		return fail_at(p, p->pos + i, "malformed time in a date-time");
	i += (size_t)n;
	if (i == end) {
		v->kind = TOML_DATETIME_LOCAL;
		p->pos += i;
		return set_text(p, v, s, i);
	}
	n = parse_offset(s + i, end - i);
	if (n < 0 || i + (size_t)n != end)
		return fail_at(p, p->pos + i, "malformed time offset in a date-time");
	i += (size_t)n;
	v->kind = TOML_DATETIME;
	p->pos += i;
	return set_text(p, v, s, i);
}

/* An integer or float token s[0..n) (not a date). */
static int read_number(struct parser *p, struct toml_value *v, const char *s, size_t n)
{
	char buf[512];
	size_t i = 0;
	bool neg = false;

	if (n > 0 && (s[0] == '+' || s[0] == '-')) {
		neg = s[0] == '-';
		i = 1;
	}
	if (n - i == 3 && (memcmp(s + i, "inf", 3) == 0 || memcmp(s + i, "nan", 3) == 0)) {
		v->kind = TOML_FLOAT;
		v->u.number = s[i] == 'i' ? INFINITY : NAN;
		if (neg)
			v->u.number = -v->u.number;
		return 0;
	}
	if (i == 0 && n > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'o' || s[1] == 'b')) {
		int base = s[1] == 'x' ? 16 : s[1] == 'o' ? 8 : 2;
		long nd = digits(s + 2, n - 2, base, buf, sizeof(buf));
		if (nd < 0)
			return fail(p, "malformed integer");
		errno = 0;
		unsigned long long u = strtoull(buf, NULL, base);
		if (errno || u > INT64_MAX)
			return fail(p, "integer out of range");
		v->kind = TOML_INTEGER;
		v->u.integer = (int64_t)u;
		return 0;
	}
	/* decimal: integer part, optional fraction, optional exponent */
	size_t int_start = i;
	while (i < n && (is_digit(s[i]) || s[i] == '_'))
		i++;
	size_t int_end = i, frac_start = 0, frac_end = 0, exp_start = 0;
	bool is_float = false;
	if (i < n && s[i] == '.') {
		is_float = true;
		frac_start = ++i;
		while (i < n && (is_digit(s[i]) || s[i] == '_'))
			i++;
		frac_end = i;
	}
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		is_float = true;
		exp_start = ++i;
		if (i < n && (s[i] == '+' || s[i] == '-'))
			i++;
		while (i < n && (is_digit(s[i]) || s[i] == '_'))
			i++;
	}
	if (i != n || int_end == int_start)
		return fail(p, "malformed number");
	/* the integer part: no leading zeros */
	if (s[int_start] == '0' && int_end - int_start > 1)
		return fail(p, "leading zero in a number");
	/* rebuild without underscores, checking each digit group */
	char num[512];
	size_t o = 0;
	if (neg)
		num[o++] = '-';
	long nd = digits(s + int_start, int_end - int_start, 10, num + o, sizeof(num) - o);
	if (nd < 0)
		return fail(p, nd == -2 ? "number too long" : "malformed number");
	o += (size_t)nd;
	if (frac_start) {
		num[o++] = '.';
		nd = digits(s + frac_start, frac_end - frac_start, 10, num + o, sizeof(num) - o);
		if (nd < 0)
			return fail(p, nd == -2 ? "number too long" : "malformed fraction");
		o += (size_t)nd;
	}
	if (exp_start) {
		size_t e = exp_start;
		num[o++] = 'e';
		if (e < n && (s[e] == '+' || s[e] == '-'))
			num[o++] = s[e++];
		if (o + 2 >= sizeof(num))
			return fail(p, "number too long");
		nd = digits(s + e, n - e, 10, num + o, sizeof(num) - o);
		if (nd < 0)
			return fail(p, nd == -2 ? "number too long" : "malformed exponent");
		o += (size_t)nd;
	}
	num[o] = '\0';
	errno = 0;
	if (is_float) {
		v->kind = TOML_FLOAT;
		v->u.number = strtod(num, NULL);
		/* overflow to infinity is an error; underflow to zero is not */
		if (errno == ERANGE && isinf(v->u.number))
			return fail(p, "float out of range");
		return 0;
	}
	long long ll = strtoll(num, NULL, 10);
	if (errno == ERANGE)
		return fail(p, "integer out of range");
	v->kind = TOML_INTEGER;
	v->u.integer = ll;
	return 0;
}

/* ---- values ---- */

static int read_value(struct parser *p, struct toml_value **out, unsigned depth);
static int read_inline_table(struct parser *p, struct toml_value *t, unsigned depth);

static int read_array(struct parser *p, struct toml_value *a, unsigned depth)
{
	p->pos++; /* '[' */
	for (;;) {
		struct toml_value *item;
		if (skip_ws_comments_newlines(p) < 0)
			return -1;
		if (peek(p, 0) == ']') {
			p->pos++;
			return 0;
		}
		if (read_value(p, &item, depth + 1) < 0)
			return -1;
		if (array_add(p, a, item) < 0)
			return -1;
		if (skip_ws_comments_newlines(p) < 0)
			return -1;
		if (peek(p, 0) == ',') {
			p->pos++;
			continue;
		}
		if (peek(p, 0) == ']') {
			p->pos++;
			return 0;
		}
		return fail(p, p->pos < p->len ? "expected ',' or ']' in an array"
		                               : "unterminated array");
	}
}

static int read_value(struct parser *p, struct toml_value **out, unsigned depth)
{
	int c = peek(p, 0);
	size_t start = p->pos;
	struct toml_value *v;

	*out = NULL;
	if (depth > TOML_MAX_DEPTH)
		return fail(p, "nested deeper than %d levels", TOML_MAX_DEPTH);
	if (c < 0 || c == '\n' || c == '\r' || c == '#')
		return fail(p, "expected a value");
	v = new_value(p, TOML_STRING, start);
	if (!v)
		return -1;
	if (c == '"' || c == '\'') {
		if (read_string(p, &v->u.str.bytes, &v->u.str.len, false) < 0)
			goto fail;
	} else if (c == '[') {
		v->kind = TOML_ARRAY;
		v->flags = T_FROZEN;
		if (read_array(p, v, depth) < 0)
			goto fail;
	} else if (c == '{') {
		v->kind = TOML_TABLE;
		if (read_inline_table(p, v, depth) < 0)
			goto fail;
		v->flags = T_FROZEN;
	} else {
		size_t end = token_end(p);
		const char *s = p->s + p->pos;
		size_t n = end - p->pos;
		if (n == 0 || !strchr("0123456789+-intf", c)) {
			if (c > 0x20 && c < 0x7F)
				fail(p, "expected a value, found '%c'", c);
			else
				fail(p, "expected a value");
			goto fail;
		}
		if ((n == 4 && memcmp(s, "true", 4) == 0) || (n == 5 && memcmp(s, "false", 5) == 0)) {
			v->kind = TOML_BOOL;
			v->u.boolean = n == 4;
			p->pos = end;
		} else if (is_digit(c) && ((n >= 5 && is_digit(s[1]) && is_digit(s[2]) &&
		                             is_digit(s[3]) && s[4] == '-') ||
		                            (n >= 3 && is_digit(s[1]) && s[2] == ':'))) {
			if (read_datetime(p, v) < 0)
				goto fail;
		} else {
			if (read_number(p, v, s, n) < 0)
				goto fail;
			p->pos = end;
		}
	}
	*out = v;
	return 0;
fail:
	toml_free(v);
	return -1;
}

/* Where a value's byte offset (kept in column by new_value) becomes line:column. */
static void set_positions(const char *s, size_t len, struct toml_value *v)
{
	/*
	 * One pass over the text turns the byte offsets of every value into lines and
	 * columns; the offsets are visited in document order by an explicit stack of
	 * (value, next child) pairs bounded by the nesting depth.
	 */
	struct frame {
		struct toml_value *v;
		size_t next;
	} stack[TOML_MAX_DEPTH * 2 + 8];
	size_t sp = 0;
	/* offsets are not visited in increasing order (tables gather keys from many
	 * places), so each is computed with a line index: starts of lines, binary search */
	size_t nlines = 1;
	for (size_t i = 0; i < len; i++)
		nlines += s[i] == '\n';
	size_t *starts = malloc(nlines * sizeof(*starts));
	if (!starts)
		return; /* positions stay 0: "unknown" */
	size_t l = 0;
	starts[l++] = 0;
	for (size_t i = 0; i < len; i++)
		if (s[i] == '\n')
			starts[l++] = i + 1;

	stack[sp++] = (struct frame){v, 0};
	while (sp) {
		struct frame *f = &stack[sp - 1];
		if (f->next == 0) {
			size_t off = f->v->column, lo = 0, hi = nlines;
			while (hi - lo > 1) {
				size_t mid = (lo + hi) / 2;
				if (starts[mid] <= off)
					lo = mid;
				else
					hi = mid;
			}
			unsigned col = 1;
			for (size_t i = starts[lo]; i < off && i < len; i++)
				col += ((unsigned char)s[i] & 0xC0) != 0x80;
			f->v->line = (unsigned)lo + 1;
			f->v->column = col;
		}
		struct toml_value *child = NULL;
		if (f->v->kind == TOML_TABLE && f->next < f->v->u.table.n)
			child = f->v->u.table.entries[f->next].value;
		else if (f->v->kind == TOML_ARRAY && f->next < f->v->u.array.n)
			child = f->v->u.array.items[f->next];
		f->next++;
		if (!child) {
			sp--;
			continue;
		}
		if (sp < sizeof(stack) / sizeof(stack[0]))
			stack[sp++] = (struct frame){child, 0};
	}
	free(starts);
}

/* ---- tables ---- */

/*
 * Sets key path kp = value v in table t (whose depth is depth), creating the tables
 * of the dotted key's leading parts. Takes v (freed on error).
 */
static int assign(struct parser *p, struct toml_value *t, unsigned depth, struct keypath *kp,
		  struct toml_value *v)
{
	for (size_t i = 0; i + 1 < kp->n; i++) {
		const struct key *k = &kp->parts[i];
		struct toml_value *child = lookup(t, k->bytes, k->len);
		if (++depth > TOML_MAX_DEPTH) {
			toml_free(v);
			return fail_at(p, k->pos, "nested deeper than %d levels", TOML_MAX_DEPTH);
		}
		if (!child) {
			child = new_value(p, TOML_TABLE, k->pos);
			if (!child) {
				toml_free(v);
				return -1;
			}
			child->flags = T_DOTTED;
			if (table_add(p, t, k, child) < 0) {
				toml_free(v);
				return -1;
			}
		} else if (child->kind != TOML_TABLE || !(child->flags & T_DOTTED) ||
		           (child->flags & T_FROZEN)) {
			toml_free(v);
			return fail_at(p, k->pos, "cannot add keys to '%s': it is already defined as %s",
			               k->bytes,
			               child->kind == TOML_TABLE ? "a table" : "a value");
		}
		t = child;
	}
	const struct key *last = &kp->parts[kp->n - 1];
	if (lookup(t, last->bytes, last->len)) {
		toml_free(v);
		return fail_at(p, last->pos, "duplicate key '%s'", last->bytes);
	}
	return table_add(p, t, last, v);
}

/* key = value, into table t at depth. */
static int read_keyval(struct parser *p, struct toml_value *t, unsigned depth)
{
	struct keypath kp;
	struct toml_value *v;
	int ret = -1;

	if (read_key(p, &kp) < 0)
		goto out;
	if (peek(p, 0) != '=') {
		fail(p, "expected '=' after a key");
		goto out;
	}
	p->pos++;
	skip_ws(p);
	if (read_value(p, &v, depth + (unsigned)kp.n) < 0)
		goto out;
	ret = assign(p, t, depth, &kp, v);
out:
	keypath_release(&kp);
	return ret;
}

static int read_inline_table(struct parser *p, struct toml_value *t, unsigned depth)
{
	p->pos++; /* '{' */
	skip_ws(p);
	if (peek(p, 0) == '}') {
		p->pos++;
		return 0;
	}
	for (;;) {
		skip_ws(p);
		if (read_keyval(p, t, depth) < 0)
			return -1;
		skip_ws(p);
		if (peek(p, 0) == ',') {
			p->pos++;
			skip_ws(p);
			if (peek(p, 0) == '}')
				return fail(p, "trailing comma in an inline table");
			continue;
		}
		if (peek(p, 0) == '}') {
			p->pos++;
			return 0;
		}
		if (peek(p, 0) == '\n' || peek(p, 0) == '\r')
			return fail(p, "newline in an inline table");
		return fail(p, p->pos < p->len ? "expected ',' or '}' in an inline table"
		                               : "unterminated inline table");
	}
}

/* [key] or [[key]]: makes the named table the current one. */
static int read_header(struct parser *p)
{
	bool aot = at(p, "[[");
	struct keypath kp;
	struct toml_value *t = p->root;
	size_t start = p->pos;
	int ret = -1;

	p->pos += aot ? 2 : 1;
	skip_ws(p);
	if (read_key(p, &kp) < 0)
		goto out;
	if (!at(p, aot ? "]]" : "]")) {
		fail(p, aot ? "expected ']]' after a table name" : "expected ']' after a table name");
		goto out;
	}
	p->pos += aot ? 2 : 1;
	if ((int)kp.n > TOML_MAX_DEPTH) {
		fail_at(p, start, "nested deeper than %d levels", TOML_MAX_DEPTH);
		goto out;
	}
	for (size_t i = 0; i + 1 < kp.n; i++) {
		const struct key *k = &kp.parts[i];
		struct toml_value *child = lookup(t, k->bytes, k->len);
		if (!child) {
			child = new_value(p, TOML_TABLE, start);
			if (!child || table_add(p, t, k, child) < 0)
				goto out;
		} else if (child->kind == TOML_ARRAY && (child->flags & T_AOT)) {
			child = child->u.array.items[child->u.array.n - 1];
		} else if (child->kind != TOML_TABLE || (child->flags & T_FROZEN)) {
			fail_at(p, k->pos, "cannot define a table under '%s': it is already %s",
			        k->bytes,
			        child->kind == TOML_TABLE ? "an inline table" : "a value");
			goto out;
		}
		t = child;
	}
	const struct key *last = &kp.parts[kp.n - 1];
	struct toml_value *existing = lookup(t, last->bytes, last->len);
	if (aot) {
		struct toml_value *elem = new_value(p, TOML_TABLE, start);
		if (!elem)
			goto out;
		elem->flags = T_HEADER;
		if (!existing) {
			existing = new_value(p, TOML_ARRAY, start);
			if (!existing) {
				toml_free(elem);
				goto out;
			}
			existing->flags = T_AOT;
			if (table_add(p, t, last, existing) < 0) {
				toml_free(elem);
				goto out;
			}
		} else if (existing->kind != TOML_ARRAY || !(existing->flags & T_AOT)) {
			toml_free(elem);
			fail_at(p, last->pos, "cannot define '%s' as an array of tables: it is already %s",
			        last->bytes,
			        existing->kind == TOML_ARRAY ? "a static array" :
			        existing->kind == TOML_TABLE ? "a table" : "a value");
			goto out;
		}
		if (array_add(p, existing, elem) < 0)
			goto out;
		t = elem;
	} else {
		if (!existing) {
			existing = new_value(p, TOML_TABLE, start);
			if (!existing || table_add(p, t, last, existing) < 0)
				goto out;
		} else if (existing->kind != TOML_TABLE ||
		           (existing->flags & (T_HEADER | T_DOTTED | T_FROZEN))) {
			fail_at(p, last->pos, "table '%s' is already defined", last->bytes);
			goto out;
		} else {
			existing->column = (unsigned)start; /* the header is where it is defined */
		}
		existing->flags |= T_HEADER;
		t = existing;
	}
	p->current = t;
	p->current_depth = (unsigned)kp.n;
	ret = 0;
out:
	keypath_release(&kp);
	return ret;
}

int toml_parse(const char *text, size_t len, struct toml_value **out, struct toml_error *err)
{
	struct parser p = {.s = text, .len = len, .err = err};

	*out = NULL;
	memset(err, 0, sizeof(*err));
	if (len > TOML_MAX_INPUT) {
		err->line = 1;
		err->column = 1;
		snprintf(err->message, sizeof(err->message), "larger than %u bytes",
		         TOML_MAX_INPUT);
		return -1;
	}
	if (check_utf8(&p) < 0)
		return -1;
	p.root = new_value(&p, TOML_TABLE, 0);
	if (!p.root)
		return -1;
	p.current = p.root;
	while (p.pos < p.len) {
		skip_ws(&p);
		int c = peek(&p, 0);
		if (c == '[') {
			if (read_header(&p) < 0)
				goto fail;
		} else if (c != '#' && c != '\n' && c != '\r' && c >= 0) {
			if (read_keyval(&p, p.current, p.current_depth) < 0)
				goto fail;
		}
		if (end_of_line(&p) < 0)
			goto fail;
	}
	set_positions(text, len, p.root);
	*out = p.root;
	return 0;
fail:
	toml_free(p.root);
	return -1;
}

/*
 * toml.h: a strict reader of TOML 1.0 (https://toml.io/en/v1.0.0) for fleche.toml
 * files: the whole language (four kinds of strings with their escapes, integers in
 * four bases with underscores, floats, booleans, the four kinds of date and time,
 * arrays, inline tables, dotted keys, tables and arrays of tables, with the
 * specification's rules on redefinition). Anything the specification does not allow
 * is an error with the line and column where reading stopped; nothing is guessed.
 *
 * Invariants:
 *   1. Input larger than TOML_MAX_INPUT, or nesting deeper than TOML_MAX_DEPTH
 *      (tables, arrays and inline tables together, counted from the root), is an
 *      error, so that memory and recursion are bounded by the input's size.
 *   2. A document is one tree owned by its root: toml_free(root) frees everything.
 *   3. Every string (values and keys) is valid UTF-8 with its length kept (a string
 *      may hold U+0000 through an escape) and a NUL after its last byte.
 *   4. Looking a key up in a table costs O(1) on average (tables of more than a few
 *      keys keep a hash index), so no input makes the reader quadratic.
 */
#ifndef FLECHEFS_SERVER_TOML_H
#define FLECHEFS_SERVER_TOML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TOML_MAX_INPUT (4u * 1024 * 1024)
#define TOML_MAX_DEPTH 100

enum toml_kind {
	TOML_TABLE,
	TOML_ARRAY,
	TOML_STRING,
	TOML_INTEGER,
	TOML_FLOAT,
	TOML_BOOL,
	TOML_DATETIME,       /* offset date-time, e.g. 1979-05-27T07:32:00Z */
	TOML_DATETIME_LOCAL, /* 1979-05-27T07:32:00 */
	TOML_DATE_LOCAL,     /* 1979-05-27 */
	TOML_TIME_LOCAL,     /* 07:32:00 */
};

struct toml_value;

struct toml_entry {
	char *key; /* NUL-terminated; keylen bytes (a key may hold U+0000) */
	size_t keylen;
	struct toml_value *value;
};

struct toml_value {
	enum toml_kind kind;
	unsigned line, column; /* where the value (or the table's first header) starts */
	unsigned flags;        /* the reader's bookkeeping of how a table was defined */
	union {
		/* TOML_STRING, and the date-time kinds as text in RFC 3339 form ('T'
		 * between date and time, upper-case 'Z') */
		struct {
			char *bytes;
			size_t len;
		} str;
		int64_t integer;
		double number;
		bool boolean;
		struct {
			struct toml_value **items;
			size_t n, cap;
		} array;
		struct {
			struct toml_entry *entries; /* in the order the keys were defined */
			size_t n, cap;
			uint32_t *index; /* hash index of entries (NULL for small tables) */
			size_t index_cap;
		} table;
	} u;
};

struct toml_error {
	unsigned line, column; /* 1-based; column counts characters, not bytes */
	char message[200];
};

/*
 * Parses text[0..len) as one TOML document. Returns 0 with *out the root table
 * (caller frees with toml_free), or -1 with err filled and *out NULL.
 */
int toml_parse(const char *text, size_t len, struct toml_value **out, struct toml_error *err);

/* Frees a tree from toml_parse; NULL is a no-op. */
void toml_free(struct toml_value *v);

/* The value under key (a NUL-free key) in table, or NULL. Borrowed from the tree. */
const struct toml_value *toml_get(const struct toml_value *table, const char *key);

/* The kind's name, as toml-test spells it: "table", "integer", "bool", "datetime-local"... */
const char *toml_kind_name(enum toml_kind kind);

#endif

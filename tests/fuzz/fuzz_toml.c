/*
 * fuzz_toml: libFuzzer harness of the TOML reader (server/toml.c). Each input is
 * parsed; a success is walked whole (recursively: the reader bounds the depth),
 * touching every key and string byte and the NUL after it, so that ASan sees any
 * string shorter than its recorded length, and checks that every key can be found
 * again with toml_get (when it holds no NUL) and that lines and columns are set.
 */
#include "toml.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static unsigned touch(const char *s, size_t len)
{
	unsigned h = 0;
	for (size_t i = 0; i <= len; i++)
		h = h * 31 + (unsigned char)s[i];
	if (s[len] != '\0')
		abort();
	return h;
}

static unsigned walk(const struct toml_value *v, unsigned depth)
{
	unsigned h = 0;

	if (depth > TOML_MAX_DEPTH + 2 || v->line == 0 || v->column == 0)
		abort();
	switch (v->kind) {
	case TOML_TABLE:
		for (size_t i = 0; i < v->u.table.n; i++) {
			const struct toml_entry *e = &v->u.table.entries[i];
			h += touch(e->key, e->keylen);
			if (strlen(e->key) == e->keylen && toml_get(v, e->key) != e->value)
				abort();
			h += walk(e->value, depth + 1);
		}
		break;
	case TOML_ARRAY:
		for (size_t i = 0; i < v->u.array.n; i++)
			h += walk(v->u.array.items[i], depth + 1);
		break;
	case TOML_INTEGER:
	case TOML_FLOAT:
	case TOML_BOOL:
		break;
	default:
		h += touch(v->u.str.bytes, v->u.str.len);
	}
	return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct toml_value *root;
	struct toml_error err;
	volatile unsigned sink;

	if (toml_parse((const char *)data, size, &root, &err) == 0) {
		sink = walk(root, 0);
		(void)sink;
		toml_free(root);
	} else if (err.line == 0 || err.column == 0 || err.message[0] == '\0') {
		abort();
	}
	return 0;
}

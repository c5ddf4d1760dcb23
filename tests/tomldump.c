/*
 * tomldump: the decoder toml-test runs against the TOML reader (server/toml.c). It
 * reads one document on standard input and prints toml-test's tagged JSON form of it
 * ({"type": "integer", "value": "42"} for each scalar, objects for tables, arrays for
 * arrays) on standard output, or the error as "line:column: message" on standard
 * error with exit status 1.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "toml.h"

static void print_string(const char *s, size_t len)
{
	putchar('"');
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20 || c == 0x7F)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static void print_value(const struct toml_value *v)
{
	char num[64];

	switch (v->kind) {
	case TOML_TABLE:
		putchar('{');
		for (size_t i = 0; i < v->u.table.n; i++) {
			if (i)
				putchar(',');
			print_string(v->u.table.entries[i].key, v->u.table.entries[i].keylen);
			putchar(':');
			print_value(v->u.table.entries[i].value);
		}
		putchar('}');
		return;
	case TOML_ARRAY:
		putchar('[');
		for (size_t i = 0; i < v->u.array.n; i++) {
			if (i)
				putchar(',');
			print_value(v->u.array.items[i]);
		}
		putchar(']');
		return;
	case TOML_INTEGER:
		snprintf(num, sizeof(num), "%lld", (long long)v->u.integer);
		break;
	case TOML_FLOAT:
		if (isnan(v->u.number))
			snprintf(num, sizeof(num), "nan");
		else if (isinf(v->u.number))
			snprintf(num, sizeof(num), v->u.number > 0 ? "inf" : "-inf");
		else
			snprintf(num, sizeof(num), "%.17g", v->u.number);
		break;
	case TOML_BOOL:
		snprintf(num, sizeof(num), "%s", v->u.boolean ? "true" : "false");
		break;
	default:
		printf("{\"type\":\"%s\",\"value\":", toml_kind_name(v->kind));
		print_string(v->u.str.bytes, v->u.str.len);
		putchar('}');
		return;
	}
	printf("{\"type\":\"%s\",\"value\":\"%s\"}", toml_kind_name(v->kind), num);
}

int main(void)
{
	size_t cap = 1 << 16, len = 0, n;
	char *buf = malloc(cap);
	struct toml_value *root;
	struct toml_error err;

	if (!buf)
		return 2;
	while ((n = fread(buf + len, 1, cap - len, stdin)) > 0) {
		len += n;
		if (len == cap) {
			if (cap > TOML_MAX_INPUT) {
				fprintf(stderr, "tomldump: input too large\n");
				return 1;
			}
			char *b = realloc(buf, cap * 2);
			if (!b)
				return 2;
			buf = b;
			cap *= 2;
		}
	}
	if (toml_parse(buf, len, &root, &err) < 0) {
		fprintf(stderr, "%u:%u: %s\n", err.line, err.column, err.message);
		free(buf);
		return 1;
	}
	print_value(root);
	putchar('\n');
	toml_free(root);
	free(buf);
	return 0;
}

/*
 * test_toml: unit tests of the TOML reader (server/toml.c) that toml-test does not
 * make: where errors are reported (line and column), documents that end in the
 * middle of a token, the size and depth limits, and lookups in large tables.
 */
#include "toml.h"

#include <stdlib.h>
#include <string.h>

#include "check.h"

/* Parses text; returns the root, or NULL with err filled. */
static struct toml_value *parse(const char *text, struct toml_error *err)
{
	struct toml_value *root = NULL;

	if (toml_parse(text, strlen(text), &root, err) < 0)
		return NULL;
	return root;
}

static void expect_error(const char *text, unsigned line, unsigned column, const char *part)
{
	struct toml_error err;
	struct toml_value *root = parse(text, &err);

	CHECK(root == NULL, "'%s' parsed", text);
	toml_free(root);
	CHECK(err.line == line && err.column == column, "'%s': error at %u:%u, wanted %u:%u (%s)",
	      text, err.line, err.column, line, column, err.message);
	CHECK(strstr(err.message, part) != NULL, "'%s': message '%s' lacks '%s'", text,
	      err.message, part);
}

static void test_errors(void)
{
	expect_error("a = 1\nb = 2\na = 3\n", 3, 1, "duplicate key 'a'");
	expect_error("[x]\nk = \"é\\q\"\n", 2, 8, "invalid escape");
	expect_error("a = [1,\n  2,,]\n", 2, 5, "expected a value");
	expect_error("[t]\n[t]\n", 2, 2, "already defined");
	expect_error("a = {b = 1}\na.c = 2\n", 2, 1, "cannot add keys");
	expect_error("a = 1 b = 2\n", 1, 7, "end of the line");
	expect_error("s = \"open\n", 1, 10, "newline in a single-line string");
	expect_error("a = \x01\n", 1, 5, "expected a value");
	expect_error("a = \"\xff\"\n", 1, 6, "invalid UTF-8");
	expect_error("a = 0x8000000000000000\n", 1, 5, "out of range");
	expect_error("d = 2023-02-29\n", 1, 5, "malformed date");
}

/* A document may end in the middle of any token: the reader must not read past it. */
static void test_truncated(void)
{
	static const char *const docs[] = {"a = 3e", "a = 3e+", "a = 1.", "a = 0x", "a = \"",
	                                   "a = '''x''", "a = [1,", "a = {b =", "[a", "[[a]",
	                                   "a = 1979-05-27T", "a = 07:32:", "a.", "a = tr",
	                                   "a = \"\\u00", "a = \"\"\"\\"};
	for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
		size_t len = strlen(docs[i]);
		/* an exact-size heap copy, so that ASan sees a read past the end */
		char *copy = malloc(len);
		struct toml_value *root = NULL;
		struct toml_error err;
		memcpy(copy, docs[i], len);
		CHECK(toml_parse(copy, len, &root, &err) < 0, "'%s' parsed", docs[i]);
		CHECK(err.line == 1 && err.column >= 1, "'%s': no position", docs[i]);
		toml_free(root);
		free(copy);
	}
}

static void test_limits(void)
{
	struct toml_error err;
	size_t depth = TOML_MAX_DEPTH + 5;
	char *deep = malloc(depth * 2 + 8);
	size_t n = 0;

	n += (size_t)sprintf(deep, "a = ");
	for (size_t i = 0; i < depth; i++)
		deep[n++] = '[';
	for (size_t i = 0; i < depth; i++)
		deep[n++] = ']';
	deep[n] = '\0';
	CHECK(parse(deep, &err) == NULL && strstr(err.message, "nested deeper"),
	      "deep arrays: %s", err.message);
	free(deep);

	struct toml_value *root = NULL;
	char *big = calloc(1, TOML_MAX_INPUT + 2);
	memset(big, '#', TOML_MAX_INPUT + 1);
	CHECK(toml_parse(big, TOML_MAX_INPUT + 1, &root, &err) < 0 && strstr(err.message, "larger"),
	      "oversized input: %s", err.message);
	free(big);
}

static void test_lookup(void)
{
	struct toml_error err;
	size_t cap = 20000 * 24;
	char *text = malloc(cap), key[32];
	size_t n = 0;

	for (int i = 0; i < 20000; i++)
		n += (size_t)snprintf(text + n, cap - n, "k%d = %d\n", i, i);
	struct toml_value *root = parse(text, &err);
	CHECK(root != NULL, "20000 keys: %s", err.message);
	for (int i = 0; root && i < 20000; i += 997) {
		snprintf(key, sizeof(key), "k%d", i);
		const struct toml_value *v = toml_get(root, key);
		CHECK(v && v->kind == TOML_INTEGER && v->u.integer == i, "%s", key);
		CHECK(v && v->line == (unsigned)i + 1 && v->column == (unsigned)strlen(key) + 4,
		      "%s at %u:%u", key, v ? v->line : 0, v ? v->column : 0);
	}
	CHECK(toml_get(root, "k20000") == NULL, "absent key found");
	toml_free(root);
	free(text);
}

int main(void)
{
	test_errors();
	test_truncated();
	test_limits();
	test_lookup();
	return check_report("test_toml");
}

/*
 * pkdump: a debug tool for the pickle reader (server/pickle.c). It parses one pickle
 * from a file (or stdin) and prints the tree in a canonical, tagged JSON form that the
 * end-to-end tests compare with Python's own view of the value:
 *
 *   None/bool/int      null, true/false, a JSON number (any size, exact digits)
 *   float              {"$float": "%.17g"} ("nan", "inf", "-inf")
 *   complex            {"$complex": [re, im]} with re, im as for $float
 *   str                a JSON string (non-ASCII as \uXXXX escapes)
 *   bytes, bytearray   {"$bytes": "<hex>", "offset": N|null}, same with "$bytearray"
 *   tuple, list        {"$tuple": [...]}, [...]
 *   set, frozenset     {"$set": [...]}, {"$frozenset": [...]}
 *   dict               {"$dict": [[k, v], ...]} plus "cls" for dict subclasses
 *   global             {"$global": "module", "name": "qualname"}
 *   object             {"$object": "module", "name": "qualname", "args": ...,
 *                       and when present "callable", "kwargs", "state", "listitems",
 *                       "dictitems", "digest" (pk_digest)}
 *   a cycle            {"$cycle": N}: the node N levels up the current path
 *
 * Usage: pkdump [--find-end] [--bench N] [--limits NODES,MEMO,DEPTH,ARENA] FILE|-
 * The output is {"end": N, "root": ...}. The walk is bounded: nesting deeper than
 * PKD_MAX_DEPTH, more than PKD_MAX_OUT nodes printed (shared nodes print each time,
 * so a few hundred bytes of shared dicts reach it) or more than PKD_MAX_WORK steps
 * of looking for cycles up the current path is an error. Exit status: 0, 1 for a
 * parse error or a walk past those bounds (message on stderr), 2 usage.
 */
#include "pickle.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PKD_MAX_DEPTH 2000
#define PKD_MAX_OUT   10000000u
#define PKD_MAX_WORK  1000000000u

struct pkd {
	FILE *out;
	const struct pk_node *path[PKD_MAX_DEPTH];
	size_t depth;
	size_t printed;
	size_t work; /* path entries compared so far */
};

static int pkd_node(struct pkd *d, const struct pk_node *n);

static void pkd_float(FILE *out, double v)
{
	if (isnan(v))
		fputs("\"nan\"", out);
	else if (isinf(v))
		fputs(v > 0 ? "\"inf\"" : "\"-inf\"", out);
	else
		fprintf(out, "\"%.17g\"", v);
}

/* A JSON string from (WTF-)UTF-8, every non-ASCII code point as \uXXXX. */
static void pkd_string(FILE *out, const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0;

	fputc('"', out);
	while (i < n) {
		unsigned c = u[i];
		uint32_t cp;
		size_t k;
		if (c < 0x80) {
			if (c == '"' || c == '\\')
				fprintf(out, "\\%c", c);
			else if (c < 0x20 || c == 0x7f)
				fprintf(out, "\\u%04x", c);
			else
				fputc((int)c, out);
			i++;
			continue;
		}
		if (c >= 0xf0) {
			k = 3;
			cp = c & 0x07;
		} else if (c >= 0xe0) {
			k = 2;
			cp = c & 0x0f;
		} else {
			k = 1;
			cp = c & 0x1f;
		}
		if (n - i - 1 < k) {
			fprintf(out, "\\u%04x", c);
			i++;
			continue;
		}
		for (size_t j = 1; j <= k; j++)
			cp = cp << 6 | (u[i + j] & 0x3f);
		i += k + 1;
		if (cp >= 0x10000) {
			cp -= 0x10000;
			fprintf(out, "\\u%04x\\u%04x", 0xd800 + (cp >> 10), 0xdc00 + (cp & 0x3ff));
		} else {
			fprintf(out, "\\u%04x", cp);
		}
	}
	fputc('"', out);
}

static void pkd_hex(FILE *out, const struct pk_str *s)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *u = (const unsigned char *)s->ptr;

	fputc('"', out);
	for (size_t i = 0; i < s->len; i++) {
		fputc(hex[u[i] >> 4], out);
		fputc(hex[u[i] & 15], out);
	}
	fputc('"', out);
	if (s->offset == SIZE_MAX)
		fputs(", \"offset\": null", out);
	else
		fprintf(out, ", \"offset\": %zu", s->offset);
}

static int pkd_items(struct pkd *d, struct pk_node *const *items, size_t n)
{
	int rc = 0;

	fputc('[', d->out);
	for (size_t i = 0; i < n && rc == 0; i++) {
		if (i)
			fputs(", ", d->out);
		rc = pkd_node(d, items[i]);
	}
	fputc(']', d->out);
	return rc;
}

static int pkd_field(struct pkd *d, const char *name, const struct pk_node *n)
{
	if (!n)
		return 0;
	fprintf(d->out, ", \"%s\": ", name);
	return pkd_node(d, n);
}

static int pkd_body(struct pkd *d, const struct pk_node *n)
{
	int rc = 0;
	const char *dig;
	size_t dlen;

	switch (n->kind) {
	case PK_NONE:
		fputs("null", d->out);
		break;
	case PK_BOOL:
		fputs(n->u.b ? "true" : "false", d->out);
		break;
	case PK_INT:
		fprintf(d->out, "%" PRId64, n->u.i);
		break;
	case PK_BIGINT:
		fwrite(n->u.big.ptr, 1, n->u.big.len, d->out);
		break;
	case PK_FLOAT:
		fputs("{\"$float\": ", d->out);
		pkd_float(d->out, n->u.f);
		fputc('}', d->out);
		break;
	case PK_COMPLEX:
		fputs("{\"$complex\": [", d->out);
		pkd_float(d->out, n->u.cplx.re);
		fputs(", ", d->out);
		pkd_float(d->out, n->u.cplx.im);
		fputs("]}", d->out);
		break;
	case PK_STR:
		pkd_string(d->out, n->u.str.ptr, n->u.str.len);
		break;
	case PK_BYTES:
	case PK_BYTEARRAY:
		fprintf(d->out, "{\"$%s\": ", n->kind == PK_BYTES ? "bytes" : "bytearray");
		pkd_hex(d->out, &n->u.str);
		fputc('}', d->out);
		break;
	case PK_LIST:
		rc = pkd_items(d, n->u.seq.items, n->u.seq.n);
		break;
	case PK_TUPLE:
	case PK_SET:
	case PK_FROZENSET:
		fprintf(d->out, "{\"$%s\": ",
		        n->kind == PK_TUPLE ? "tuple"
		        : n->kind == PK_SET ? "set"
		                            : "frozenset");
		rc = pkd_items(d, n->u.seq.items, n->u.seq.n);
		fputc('}', d->out);
		break;
	case PK_DICT:
		fputs("{\"$dict\": [", d->out);
		for (size_t i = 0; i < n->u.dict.n && rc == 0; i++) {
			fputs(i ? ", [" : "[", d->out);
			rc = pkd_node(d, n->u.dict.keys[i]);
			fputs(", ", d->out);
			if (rc == 0)
				rc = pkd_node(d, n->u.dict.values[i]);
			fputc(']', d->out);
		}
		fputc(']', d->out);
		if (n->u.dict.cls) {
			fputs(", \"cls\": ", d->out);
			pkd_string(d->out, n->u.dict.cls, strlen(n->u.dict.cls));
		}
		fputc('}', d->out);
		break;
	case PK_GLOBAL:
		fputs("{\"$global\": ", d->out);
		pkd_string(d->out, n->u.global.module, strlen(n->u.global.module));
		fputs(", \"name\": ", d->out);
		pkd_string(d->out, n->u.global.name, strlen(n->u.global.name));
		fputc('}', d->out);
		break;
	case PK_OBJECT:
		fputs("{\"$object\": ", d->out);
		pkd_string(d->out, n->u.obj.cls.module, strlen(n->u.obj.cls.module));
		fputs(", \"name\": ", d->out);
		pkd_string(d->out, n->u.obj.cls.name, strlen(n->u.obj.cls.name));
		if ((dig = pk_digest(n, &dlen))) {
			fputs(", \"digest\": ", d->out);
			pkd_string(d->out, dig, dlen);
		}
		if (n->u.obj.callable && n->u.obj.callable->kind != PK_GLOBAL)
			rc = pkd_field(d, "callable", n->u.obj.callable);
		if (rc == 0)
			rc = pkd_field(d, "args", n->u.obj.args);
		if (rc == 0)
			rc = pkd_field(d, "kwargs", n->u.obj.kwargs);
		if (rc == 0)
			rc = pkd_field(d, "state", n->u.obj.state);
		if (rc == 0)
			rc = pkd_field(d, "listitems", n->u.obj.listitems);
		if (rc == 0)
			rc = pkd_field(d, "dictitems", n->u.obj.dictitems);
		fputc('}', d->out);
		break;
	}
	return rc;
}

/* Bounded by PKD_MAX_DEPTH (recursion), PKD_MAX_OUT (output size) and PKD_MAX_WORK
 * (the cycle check's scans of the path). */
static int pkd_node(struct pkd *d, const struct pk_node *n)
{
	int rc;

	if (++d->printed > PKD_MAX_OUT) {
		fprintf(stderr, "pkdump: more than %u nodes to print\n", PKD_MAX_OUT);
		return -1;
	}
	d->work += d->depth;
	if (d->work > PKD_MAX_WORK) {
		fprintf(stderr, "pkdump: more than %u steps looking for cycles\n", PKD_MAX_WORK);
		return -1;
	}
	for (size_t i = d->depth; i-- > 0;) {
		if (d->path[i] == n) {
			fprintf(d->out, "{\"$cycle\": %zu}", d->depth - i);
			return 0;
		}
	}
	if (d->depth >= PKD_MAX_DEPTH) {
		fprintf(stderr, "pkdump: nesting deeper than %d\n", PKD_MAX_DEPTH);
		return -1;
	}
	d->path[d->depth++] = n;
	rc = pkd_body(d, n);
	d->depth--;
	return rc;
}

static int pkd_read(const char *path, uint8_t **buf, size_t *len)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	size_t cap = 1 << 16, n = 0, r;
	uint8_t *b = NULL, *nb;

	if (!f) {
		fprintf(stderr, "pkdump: cannot open '%s': %s\n", path, strerror(errno));
		return -1;
	}
	for (;;) {
		if (!b || n == cap) {
			if (b)
				cap *= 2;
			if (!(nb = realloc(b, cap))) {
				free(b);
				if (f != stdin)
					fclose(f);
				return -1;
			}
			b = nb;
		}
		r = fread(b + n, 1, cap - n, f);
		n += r;
		if (r == 0)
			break;
	}
	if (f != stdin)
		fclose(f);
	*buf = b;
	*len = n;
	return 0;
}

int main(int argc, char **argv)
{
	struct pk_limits lim;
	struct pk_doc *doc = NULL;
	struct pkd *d = NULL;
	uint8_t *buf = NULL;
	size_t len = 0, end = 0;
	long bench = 0;
	bool find_end = false;
	char err[256];
	int i, rc, status = 1;

	pk_limits_default(&lim);
	for (i = 1; i < argc - 1; i++) {
		if (strcmp(argv[i], "--find-end") == 0) {
			find_end = true;
		} else if (strcmp(argv[i], "--bench") == 0 && i + 1 < argc - 1) {
			bench = strtol(argv[++i], NULL, 10);
		} else if (strcmp(argv[i], "--limits") == 0 && i + 1 < argc - 1) {
			if (sscanf(argv[++i], "%zu,%zu,%zu,%zu", &lim.max_nodes, &lim.max_memo,
			           &lim.max_depth, &lim.max_arena) != 4)
				goto usage;
		} else {
			goto usage;
		}
	}
	if (i != argc - 1)
		goto usage;
	if (pkd_read(argv[i], &buf, &len) < 0)
		goto out;
	if (find_end) {
		rc = pk_find_end(buf, len, &end);
		if (rc < 0) {
			fprintf(stderr, "pkdump: no end found: %s\n", strerror(-rc));
			goto out;
		}
		printf("%zu\n", end);
		status = 0;
		goto out;
	}
	if (bench > 0) {
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		for (long k = 0; k < bench; k++) {
			rc = pk_parse(buf, len, &lim, &doc, &end, err, sizeof(err));
			pk_doc_free(doc);
			doc = NULL;
			if (rc < 0) {
				fprintf(stderr, "pkdump: %s\n", err);
				goto out;
			}
		}
		clock_gettime(CLOCK_MONOTONIC, &t1);
		double us =
		    ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) /
		    1e3 / (double)bench;
		printf("%zu bytes: %.3f us per parse (%.1f MB/s)\n", len, us, (double)len / us);
		status = 0;
		goto out;
	}
	rc = pk_parse(buf, len, &lim, &doc, &end, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "pkdump: %s\n", err);
		goto out;
	}
	if (!(d = calloc(1, sizeof(*d))))
		goto out;
	d->out = stdout;
	printf("{\"end\": %zu, \"root\": ", end);
	if (pkd_node(d, pk_doc_root(doc)) < 0)
		goto out;
	printf("}\n");
	status = fflush(stdout) == 0 ? 0 : 1;
	goto out;
usage:
	fprintf(stderr, "usage: pkdump [--find-end] [--bench N] "
	                "[--limits NODES,MEMO,DEPTH,ARENA] FILE|-\n");
	status = 2;
out:
	free(d);
	pk_doc_free(doc);
	free(buf);
	return status;
}

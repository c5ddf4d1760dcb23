/*
 * fuzz_pickle: libFuzzer harness of the pickle reader (server/pickle.c). Each input
 * is parsed under small limits; a success must agree with pk_find_end on where the
 * pickle ends, and the whole graph is walked (an explicit stack with a visit budget,
 * so cycles and sharing cannot make it hang) touching every string byte, so that
 * ASan sees any pointer that leaves the input or the arena.
 */
#include "pickle.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define WALK_BUDGET 200000

static unsigned touch(const struct pk_str *s)
{
	unsigned h = 0;
	for (size_t i = 0; i < s->len; i++)
		h = h * 31 + (unsigned char)s->ptr[i];
	return h;
}

static void walk(const struct pk_node *root)
{
	static const struct pk_node *stack[WALK_BUDGET];
	size_t sp = 0, visits = 0;
	volatile unsigned sink = 0;

	stack[sp++] = root;
	while (sp && visits++ < WALK_BUDGET) {
		const struct pk_node *n = stack[--sp];
		size_t len;
#define PUSH(x)                                                                                    \
	do {                                                                                       \
		if ((x) && sp < WALK_BUDGET)                                                       \
			stack[sp++] = (x);                                                         \
	} while (0)
		switch (n->kind) {
		case PK_BIGINT:
			sink += touch(&n->u.big);
			break;
		case PK_STR:
		case PK_BYTES:
		case PK_BYTEARRAY:
			sink += touch(&n->u.str);
			break;
		case PK_TUPLE:
		case PK_LIST:
		case PK_SET:
		case PK_FROZENSET:
			for (size_t i = 0; i < n->u.seq.n; i++)
				PUSH(n->u.seq.items[i]);
			break;
		case PK_DICT:
			for (size_t i = 0; i < n->u.dict.n; i++) {
				PUSH(n->u.dict.keys[i]);
				PUSH(n->u.dict.values[i]);
			}
			if (n->u.dict.cls)
				sink += (unsigned)strlen(n->u.dict.cls);
			(void)pk_dict_get(n, "name");
			break;
		case PK_GLOBAL:
			sink += (unsigned)strlen(n->u.global.module) +
			        (unsigned)strlen(n->u.global.name);
			break;
		case PK_OBJECT:
			sink += (unsigned)strlen(n->u.obj.cls.module) +
			        (unsigned)strlen(n->u.obj.cls.name);
			if (pk_digest(n, &len))
				sink += (unsigned)len;
			PUSH(n->u.obj.callable);
			PUSH(n->u.obj.args);
			PUSH(n->u.obj.kwargs);
			PUSH(n->u.obj.state);
			PUSH(n->u.obj.listitems);
			PUSH(n->u.obj.dictitems);
			break;
		default:
			break;
		}
#undef PUSH
	}
	(void)sink;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pk_limits lim;
	struct pk_doc *doc = NULL;
	size_t end = 0, end2 = 0;
	char err[256];
	int rc;

	pk_limits_default(&lim);
	lim.max_nodes = 100000;
	lim.max_memo = 10000;
	lim.max_depth = 1000;
	lim.max_arena = 16 << 20;
	rc = pk_parse(data, size, &lim, &doc, &end, err, sizeof(err));
	if (rc == 0) {
		if (!doc || end > size || pk_find_end(data, size, &end2) != 0 || end2 != end)
			abort();
		walk(pk_doc_root(doc));
	} else if (doc || !err[0] || !strstr(err, "offset")) {
		fprintf(stderr, "bad failure report: %d '%s'\n", rc, err);
		abort();
	}
	pk_doc_free(doc);
	return 0;
}

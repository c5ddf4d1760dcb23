/*
 * fuzz_pickle: libFuzzer harness of the pickle reader (server/pickle.c). Each input
 * is parsed under small limits; a success must agree with pk_find_end on where the
 * pickle ends, and the whole graph is walked visiting each node once (pk_walk.h:
 * shared nodes and cycles cost one visit, so the walk is linear in the graph the
 * limits allow) touching every string byte, so that ASan sees any pointer that leaves
 * the input or the arena.
 */
#include "pickle.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../unit/pk_walk.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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
		struct pk_walk w;
		volatile unsigned sink;

		if (pk_walk_graph(pk_doc_root(doc), lim.max_nodes, &w) == -1)
			abort(); /* more nodes than the limit lets the reader make */
		sink = w.sink;
		(void)sink;
	} else if (doc || !err[0] || !strstr(err, "offset")) {
		fprintf(stderr, "bad failure report: %d '%s'\n", rc, err);
		abort();
	}
	pk_doc_free(doc);
	return 0;
}

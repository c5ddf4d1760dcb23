/*
 * pk_walk.h: visits every node of a parsed pickle graph exactly once, for the tests
 * and the fuzz harnesses of the pickle reader. A pickle may share one node many times
 * (DUP, memo GET) and may hold cycles, so a walk that follows every reference can take
 * time exponential in the input; this one keeps a set of the nodes seen, so its work
 * is one visit per node and one step per reference, which the reader's node and
 * arena limits bound. Each visit touches every byte of the node's strings, so that
 * ASan sees a pointer that leaves the input or the arena.
 */
#ifndef FLECHEFS_TESTS_PK_WALK_H
#define FLECHEFS_TESTS_PK_WALK_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pickle.h"

struct pk_walk {
	size_t nodes; /* distinct nodes visited */
	size_t edges; /* references followed (children looked at, seen or not) */
	unsigned sink; /* a hash of every byte touched */
};

struct pk_walk_state {
	const struct pk_node **seen; /* open addressing, NULL for empty */
	size_t mask;
	const struct pk_node **stack;
	size_t sp, cap;
};

/* Marks n seen; 1 when it was new. The set never fills: it holds 2 * cap slots. */
static inline int pk_walk_mark(struct pk_walk_state *s, const struct pk_node *n)
{
	size_t h = (size_t)(((uintptr_t)n >> 3) * 0x9e3779b97f4a7c15ull) & s->mask;

	while (s->seen[h]) {
		if (s->seen[h] == n)
			return 0;
		h = (h + 1) & s->mask;
	}
	s->seen[h] = n;
	return 1;
}

/* Pushes a child not seen before; -1 when more than cap distinct nodes turn up. */
static inline int pk_walk_push(struct pk_walk_state *s, struct pk_walk *w, const struct pk_node *n)
{
	if (!n)
		return 0;
	w->edges++;
	if (!pk_walk_mark(s, n))
		return 0;
	if (s->sp == s->cap)
		return -1;
	s->stack[s->sp++] = n;
	return 0;
}

static inline unsigned pk_walk_touch(const struct pk_str *str)
{
	unsigned h = 0;
	for (size_t i = 0; i < str->len; i++)
		h = h * 31 + (unsigned char)str->ptr[i];
	return h;
}

/*
 * Walks the graph from root, expecting at most max_nodes distinct nodes (the limit
 * the document was parsed with; the doc's shared None, True and False come on top).
 * Returns 0 with the counts in *w, -1 when there are more nodes than that, or -2
 * when out of memory.
 */
static inline int pk_walk_graph(const struct pk_node *root, size_t max_nodes, struct pk_walk *w)
{
	struct pk_walk_state s = {0};
	size_t slots = 16, len;
	int rc = 0;

	memset(w, 0, sizeof(*w));
	s.cap = max_nodes + 3;
	while (slots < 2 * s.cap)
		slots *= 2;
	s.mask = slots - 1;
	s.seen = calloc(slots, sizeof(*s.seen));
	s.stack = malloc(s.cap * sizeof(*s.stack));
	if (!s.seen || !s.stack) {
		rc = -2;
		goto out;
	}
	if (root) {
		pk_walk_mark(&s, root);
		s.stack[s.sp++] = root;
	}
	while (s.sp) {
		const struct pk_node *n = s.stack[--s.sp];

		w->nodes++;
		switch (n->kind) {
		case PK_BIGINT:
			w->sink += pk_walk_touch(&n->u.big);
			break;
		case PK_STR:
		case PK_BYTES:
		case PK_BYTEARRAY:
			w->sink += pk_walk_touch(&n->u.str);
			break;
		case PK_TUPLE:
		case PK_LIST:
		case PK_SET:
		case PK_FROZENSET:
			for (size_t i = 0; i < n->u.seq.n && rc == 0; i++)
				rc = pk_walk_push(&s, w, n->u.seq.items[i]);
			break;
		case PK_DICT:
			for (size_t i = 0; i < n->u.dict.n && rc == 0; i++)
				if ((rc = pk_walk_push(&s, w, n->u.dict.keys[i])) == 0)
					rc = pk_walk_push(&s, w, n->u.dict.values[i]);
			if (n->u.dict.cls)
				w->sink += (unsigned)strlen(n->u.dict.cls);
			w->sink += pk_dict_get(n, "name") != NULL;
			break;
		case PK_GLOBAL:
			w->sink += (unsigned)strlen(n->u.global.module) +
			           (unsigned)strlen(n->u.global.name);
			break;
		case PK_OBJECT: {
			w->sink += (unsigned)strlen(n->u.obj.cls.module) +
			           (unsigned)strlen(n->u.obj.cls.name);
			if (pk_digest(n, &len))
				w->sink += (unsigned)len;
			const struct pk_node *parts[] = {n->u.obj.callable,  n->u.obj.args,
			                                 n->u.obj.kwargs,    n->u.obj.state,
			                                 n->u.obj.listitems, n->u.obj.dictitems};
			for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]) && rc == 0; i++)
				rc = pk_walk_push(&s, w, parts[i]);
			break;
		}
		default:
			break;
		}
		if (rc < 0)
			goto out;
	}
out:
	free(s.seen);
	free(s.stack);
	return rc;
}

#endif

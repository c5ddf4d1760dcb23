/*
 * pickle.h: a safe reader of Python pickle streams (protocols 0 to 5). It never
 * executes anything: it runs the pickle machine over the opcodes and builds a tree
 * (a graph, as memo references may share or cycle) of pk_node values. Classes it
 * knows become typed nodes; every other global becomes an opaque PK_OBJECT that
 * names its class and keeps its arguments and state.
 *
 * Invariants:
 *   1. Every node belongs to the pk_doc that made it; pk_doc_free frees them all.
 *   2. Strings and bytes point into the input buffer when the stream holds them
 *      verbatim (BINUNICODE, BINBYTES, BYTEARRAY8, ...), else into the doc's arena:
 *      the input buffer must outlive the doc.
 *   3. No allocation is larger than what the input can justify: lengths are checked
 *      against the bytes left before use, and limits cap nodes, memo and depth.
 *   4. The graph may contain cycles (a list appended to itself): consumers walk it
 *      with a depth limit or a visited set.
 *   5. None, True and False are shared nodes of the doc: compare kinds, not pointers.
 */
#ifndef FLECHEFS_PICKLE_H
#define FLECHEFS_PICKLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum pk_kind {
	PK_NONE,
	PK_BOOL,      /* u.b */
	PK_INT,       /* u.i: fits in int64 */
	PK_BIGINT,    /* u.big: decimal digits with optional leading '-' */
	PK_FLOAT,     /* u.f */
	PK_COMPLEX,   /* u.cplx: builtins.complex(re, im) */
	PK_STR,       /* u.str: UTF-8 (surrogates kept as WTF-8) */
	PK_BYTES,     /* u.str: raw bytes (bytes, and _codecs.encode(s, 'latin1')) */
	PK_BYTEARRAY, /* u.str: raw bytes */
	PK_TUPLE,     /* u.seq */
	PK_LIST,      /* u.seq */
	PK_SET,       /* u.seq */
	PK_FROZENSET, /* u.seq */
	PK_DICT,      /* u.dict: also dict subclasses collections.defaultdict/OrderedDict,
		       * with u.dict.cls naming the class ("collections.defaultdict") or NULL */
	PK_GLOBAL,    /* u.global: a class or function named by GLOBAL/STACK_GLOBAL */
	PK_OBJECT,    /* u.obj: anything built from a global by REDUCE/NEWOBJ/NEWOBJ_EX/
		       * INST/OBJ, then maybe BUILD, APPEND(S), SETITEM(S) */
};

struct pk_node;

struct pk_str {
	const char *ptr; /* not NUL-terminated; may contain NULs; never NULL (an empty
			  * string points at "") */
	size_t len;
	/* Offset of ptr's first byte in the input buffer, or SIZE_MAX when the bytes
	 * live in the arena (decoded from protocol 0 text). Lets a caller serve a large
	 * buffer in ranges straight from the stored file. */
	size_t offset;
};

struct pk_seq {
	struct pk_node **items;
	size_t n;
};

struct pk_dict {
	struct pk_node **keys;
	struct pk_node **values;
	size_t n;
	const char *cls; /* NULL for a plain dict */
	/* a defaultdict's default_factory as pickled (None included), else NULL */
	const struct pk_node *factory;
};

struct pk_global {
	const char *module; /* NUL-terminated, in the arena */
	const char *name;   /* qualified name, NUL-terminated */
};

struct pk_object {
	struct pk_global cls; /* the callable or class; "" and "" when the callable is not
			       * a global (then see callable) */
	struct pk_node *callable; /* the node called: the PK_GLOBAL of cls, or a computed
				   * callable (e.g. the result of another REDUCE) */
	struct pk_node *args; /* PK_TUPLE (REDUCE/NEWOBJ args), never NULL */
	struct pk_node *kwargs;   /* PK_DICT from NEWOBJ_EX, or NULL */
	struct pk_node *state;    /* from BUILD, or NULL */
	struct pk_node *listitems; /* PK_LIST of APPEND(S) onto the object, or NULL */
	struct pk_node *dictitems; /* PK_DICT of SETITEM(S) onto the object, or NULL */
};

struct pk_node {
	enum pk_kind kind;
	union {
		bool b;
		int64_t i;
		double f;
		struct {
			double re, im;
		} cplx;
		struct pk_str big; /* decimal digits */
		struct pk_str str;
		struct pk_seq seq;
		struct pk_dict dict;
		struct pk_global global;
		struct pk_object obj;
	} u;
};

struct pk_limits {
	size_t max_nodes; /* total nodes (default 1,000,000) */
	size_t max_memo;  /* memo entries (default 1,000,000) */
	size_t max_depth; /* open MARKs, i.e. nesting (default 10,000); the value stack
			   * is capped by max(max_nodes, max_depth), as every entry is a
			   * node reference */
	size_t max_arena; /* bytes of decoded text and arrays (default 64 MiB) */
};

/* The defaults above. */
void pk_limits_default(struct pk_limits *lim);

struct pk_doc; /* opaque: owns the nodes */

/*
 * Parses one pickle from buf[0..len). On success stores the document in *out and
 * the offset just past the STOP opcode in *end (bytes after it, e.g. an HMAC
 * signature, are not read) and returns 0. On failure returns a negative value and
 * writes a lower-case, one-line reason to err (e.g. "truncated pickle at offset 12",
 * "unknown opcode 0xff at offset 40"): -EBADMSG for malformed input, -E2BIG when a
 * limit is hit, -ENOMEM when memory runs out. lim may be NULL for the defaults.
 */
int pk_parse(const uint8_t *buf, size_t len, const struct pk_limits *lim, struct pk_doc **out,
	     size_t *end, char *err, size_t errlen);

/*
 * Only finds where the pickle in buf[0..len) ends (just past STOP), walking the
 * opcodes without building anything. Returns 0 and sets *end, or -EBADMSG.
 */
int pk_find_end(const uint8_t *buf, size_t len, size_t *end);

/* The root object of a parsed document; borrowed, valid until pk_doc_free. */
const struct pk_node *pk_doc_root(const struct pk_doc *doc);

/* The Python type name of a kind ("list", "dict", ...); a static string, "?" when unknown. */
const char *pk_kind_name(enum pk_kind kind);

/* Frees the document and all its nodes; pk_doc_free(NULL) does nothing. */
void pk_doc_free(struct pk_doc *doc);

/* True when node is an object or global whose class is module.name. */
bool pk_is_class(const struct pk_node *node, const char *module, const char *name);

/*
 * When node is a fleche.digest.Digest (NEWOBJ/REDUCE of the class with a one-string
 * tuple), returns its string (borrowed) and sets *len; else NULL.
 */
const char *pk_digest(const struct pk_node *node, size_t *len);

/* Looks a str key up in a PK_DICT node; NULL when absent or not a dict. */
const struct pk_node *pk_dict_get(const struct pk_node *dict, const char *key);

#endif

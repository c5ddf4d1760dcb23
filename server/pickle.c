/*
 * pickle.c: the safe pickle reader declared in pickle.h. It runs the pickle
 * machine of protocols 0 to 5 over the input (an explicit value stack, a mark stack
 * and a memo, exactly as CPython's Modules/_pickle.c keeps them) and builds a graph of
 * pk_node values in a chunked bump arena instead of calling anything. A few callables
 * that stand for plain values (builtins.set, _codecs.encode, collections.defaultdict,
 * copyreg._reconstructor, ...) are folded into typed nodes; every other call becomes a
 * PK_OBJECT that keeps its callable, arguments and state.
 *
 * Invariants:
 *   1. Nothing the input says is trusted: every operand length is compared with the
 *      bytes left before it is used, every growth of the stack, the marks, the memo,
 *      the node count and the arena is checked against struct pk_limits first, and
 *      every failure leaves a one-line reason with the opcode's offset.
 *   2. The machine never consumes below the current mark (the "fence"), as CPython.
 *   3. The parser is a loop over opcodes; nothing here recurses on the input's
 *      nesting. Big integers are converted to decimal with a quadratic loop, so their
 *      size and the document's total conversion work are capped (PK_LONG_MAX_BYTES,
 *      PK_BIGWORK_MAX); a known call that scans an operand and then does not apply
 *      charges the bytes scanned to max_arena (pk_charge). Everything else is linear.
 *   4. Every node is a struct pk_inode (the public node plus the capacity of its item
 *      arrays); a node's kind never changes once made. Item arrays grow by doubling
 *      inside the arena; the abandoned copies count against max_arena.
 *   5. Strings and bytes held verbatim by the stream point into the input buffer and
 *      keep their offset; decoded ones live in the arena with offset SIZE_MAX.
 */
#include "rpc.h"
#include "pickle.h"

#include <errno.h>
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* LONG1/LONG4 operands longer than this are refused: the decimal conversion is
 * quadratic (16 KiB of bytes is about 39,000 digits and 25 ms), and Python itself
 * refuses to print ints of more than 4,300 digits by default. */
#define PK_LONG_MAX_BYTES 16384
/* The conversions of one document together may cost this many limb operations, about
 * 0.1 s: a 16 KiB integer costs 2^24, so four fit; ints of up to 32 bytes cost at most
 * 64 each, so a million of them fit. */
#define PK_BIGWORK_MAX   ((uint64_t)1 << 26)
#define PK_CHUNK_FIRST   8192
#define PK_CHUNK_MAX     (1u << 20)
#define PK_ALIGN         8
#define PK_HIGHEST_PROTO 5

/* ---------------------------------------------------------------- opcodes */

enum pk_arg {
	A_BAD = 0, /* unknown opcode */
	A_NONE,
	A_U1,
	A_U2,
	A_U4,
	A_U8,
	A_LINE,  /* text up to '\n' */
	A_LINE2, /* two lines: module and name */
	A_LEN1,  /* 1-byte length, then data */
	A_LEN4,  /* 4-byte unsigned length, then data */
	A_SLEN4, /* 4-byte signed length, then data */
	A_LEN8,  /* 8-byte length, then data */
	A_FRAME, /* 8-byte length of the frame that follows: the bytes are not consumed */
};

enum {
	OP_MARK = '(',
	OP_STOP = '.',
	OP_POP = '0',
	OP_POP_MARK = '1',
	OP_DUP = '2',
	OP_FLOAT = 'F',
	OP_INT = 'I',
	OP_BININT = 'J',
	OP_BININT1 = 'K',
	OP_LONG = 'L',
	OP_BININT2 = 'M',
	OP_NONE = 'N',
	OP_PERSID = 'P',
	OP_BINPERSID = 'Q',
	OP_REDUCE = 'R',
	OP_STRING = 'S',
	OP_BINSTRING = 'T',
	OP_SHORT_BINSTRING = 'U',
	OP_UNICODE = 'V',
	OP_BINUNICODE = 'X',
	OP_APPEND = 'a',
	OP_BUILD = 'b',
	OP_GLOBAL = 'c',
	OP_DICT = 'd',
	OP_EMPTY_DICT = '}',
	OP_APPENDS = 'e',
	OP_GET = 'g',
	OP_BINGET = 'h',
	OP_INST = 'i',
	OP_LONG_BINGET = 'j',
	OP_LIST = 'l',
	OP_EMPTY_LIST = ']',
	OP_OBJ = 'o',
	OP_PUT = 'p',
	OP_BINPUT = 'q',
	OP_LONG_BINPUT = 'r',
	OP_SETITEM = 's',
	OP_TUPLE = 't',
	OP_EMPTY_TUPLE = ')',
	OP_SETITEMS = 'u',
	OP_BINFLOAT = 'G',
	OP_PROTO = 0x80,
	OP_NEWOBJ = 0x81,
	OP_EXT1 = 0x82,
	OP_EXT2 = 0x83,
	OP_EXT4 = 0x84,
	OP_TUPLE1 = 0x85,
	OP_TUPLE2 = 0x86,
	OP_TUPLE3 = 0x87,
	OP_NEWTRUE = 0x88,
	OP_NEWFALSE = 0x89,
	OP_LONG1 = 0x8a,
	OP_LONG4 = 0x8b,
	OP_BINBYTES = 'B',
	OP_SHORT_BINBYTES = 'C',
	OP_SHORT_BINUNICODE = 0x8c,
	OP_BINUNICODE8 = 0x8d,
	OP_BINBYTES8 = 0x8e,
	OP_EMPTY_SET = 0x8f,
	OP_ADDITEMS = 0x90,
	OP_FROZENSET = 0x91,
	OP_NEWOBJ_EX = 0x92,
	OP_STACK_GLOBAL = 0x93,
	OP_MEMOIZE = 0x94,
	OP_FRAME = 0x95,
	OP_BYTEARRAY8 = 0x96,
	OP_NEXT_BUFFER = 0x97,
	OP_READONLY_BUFFER = 0x98,
};

struct pk_opinfo {
	const char *name;
	unsigned char arg; /* enum pk_arg */
};

static const struct pk_opinfo pk_ops[256] = {
    [OP_MARK] = {"MARK", A_NONE},
    [OP_STOP] = {"STOP", A_NONE},
    [OP_POP] = {"POP", A_NONE},
    [OP_POP_MARK] = {"POP_MARK", A_NONE},
    [OP_DUP] = {"DUP", A_NONE},
    [OP_FLOAT] = {"FLOAT", A_LINE},
    [OP_INT] = {"INT", A_LINE},
    [OP_BININT] = {"BININT", A_U4},
    [OP_BININT1] = {"BININT1", A_U1},
    [OP_LONG] = {"LONG", A_LINE},
    [OP_BININT2] = {"BININT2", A_U2},
    [OP_NONE] = {"NONE", A_NONE},
    [OP_PERSID] = {"PERSID", A_LINE},
    [OP_BINPERSID] = {"BINPERSID", A_NONE},
    [OP_REDUCE] = {"REDUCE", A_NONE},
    [OP_STRING] = {"STRING", A_LINE},
    [OP_BINSTRING] = {"BINSTRING", A_SLEN4},
    [OP_SHORT_BINSTRING] = {"SHORT_BINSTRING", A_LEN1},
    [OP_UNICODE] = {"UNICODE", A_LINE},
    [OP_BINUNICODE] = {"BINUNICODE", A_LEN4},
    [OP_APPEND] = {"APPEND", A_NONE},
    [OP_BUILD] = {"BUILD", A_NONE},
    [OP_GLOBAL] = {"GLOBAL", A_LINE2},
    [OP_DICT] = {"DICT", A_NONE},
    [OP_EMPTY_DICT] = {"EMPTY_DICT", A_NONE},
    [OP_APPENDS] = {"APPENDS", A_NONE},
    [OP_GET] = {"GET", A_LINE},
    [OP_BINGET] = {"BINGET", A_U1},
    [OP_INST] = {"INST", A_LINE2},
    [OP_LONG_BINGET] = {"LONG_BINGET", A_U4},
    [OP_LIST] = {"LIST", A_NONE},
    [OP_EMPTY_LIST] = {"EMPTY_LIST", A_NONE},
    [OP_OBJ] = {"OBJ", A_NONE},
    [OP_PUT] = {"PUT", A_LINE},
    [OP_BINPUT] = {"BINPUT", A_U1},
    [OP_LONG_BINPUT] = {"LONG_BINPUT", A_U4},
    [OP_SETITEM] = {"SETITEM", A_NONE},
    [OP_TUPLE] = {"TUPLE", A_NONE},
    [OP_EMPTY_TUPLE] = {"EMPTY_TUPLE", A_NONE},
    [OP_SETITEMS] = {"SETITEMS", A_NONE},
    [OP_BINFLOAT] = {"BINFLOAT", A_U8},
    [OP_PROTO] = {"PROTO", A_U1},
    [OP_NEWOBJ] = {"NEWOBJ", A_NONE},
    [OP_EXT1] = {"EXT1", A_U1},
    [OP_EXT2] = {"EXT2", A_U2},
    [OP_EXT4] = {"EXT4", A_U4},
    [OP_TUPLE1] = {"TUPLE1", A_NONE},
    [OP_TUPLE2] = {"TUPLE2", A_NONE},
    [OP_TUPLE3] = {"TUPLE3", A_NONE},
    [OP_NEWTRUE] = {"NEWTRUE", A_NONE},
    [OP_NEWFALSE] = {"NEWFALSE", A_NONE},
    [OP_LONG1] = {"LONG1", A_LEN1},
    [OP_LONG4] = {"LONG4", A_SLEN4},
    [OP_BINBYTES] = {"BINBYTES", A_LEN4},
    [OP_SHORT_BINBYTES] = {"SHORT_BINBYTES", A_LEN1},
    [OP_SHORT_BINUNICODE] = {"SHORT_BINUNICODE", A_LEN1},
    [OP_BINUNICODE8] = {"BINUNICODE8", A_LEN8},
    [OP_BINBYTES8] = {"BINBYTES8", A_LEN8},
    [OP_EMPTY_SET] = {"EMPTY_SET", A_NONE},
    [OP_ADDITEMS] = {"ADDITEMS", A_NONE},
    [OP_FROZENSET] = {"FROZENSET", A_NONE},
    [OP_NEWOBJ_EX] = {"NEWOBJ_EX", A_NONE},
    [OP_STACK_GLOBAL] = {"STACK_GLOBAL", A_NONE},
    [OP_MEMOIZE] = {"MEMOIZE", A_NONE},
    [OP_FRAME] = {"FRAME", A_FRAME},
    [OP_BYTEARRAY8] = {"BYTEARRAY8", A_LEN8},
    [OP_NEXT_BUFFER] = {"NEXT_BUFFER", A_NONE},
    [OP_READONLY_BUFFER] = {"READONLY_BUFFER", A_NONE},
};

/* One decoded operand: the integer of A_U*, the data of A_LINE/A_LEN*, the second
 * line of A_LINE2. */
struct pk_operand {
	uint64_t u;
	const uint8_t *data;
	size_t len;
	const uint8_t *data2;
	size_t len2;
};

static uint64_t pk_le(const uint8_t *p, size_t n)
{
	uint64_t v = 0;
	for (size_t i = n; i-- > 0;)
		v = v << 8 | p[i];
	return v;
}

/*
 * Decodes the operand of the opcode at buf[*pos] (already known valid) and moves
 * *pos past it. Returns 0, or -1 when the input ends first, or -2 for a negative
 * signed length.
 */
static int pk_operand_read(const uint8_t *buf, size_t len, size_t *pos, unsigned arg,
                           struct pk_operand *o)
{
	size_t p = *pos, left = len - p;
	const uint8_t *nl;
	uint64_t n;

	memset(o, 0, sizeof(*o));
	switch (arg) {
	case A_NONE:
		break;
	case A_U1:
	case A_U2:
	case A_U4:
	case A_U8: {
		size_t w = arg == A_U1 ? 1 : arg == A_U2 ? 2 : arg == A_U4 ? 4 : 8;
		if (left < w)
			return -1;
		o->u = pk_le(buf + p, w);
		p += w;
		break;
	}
	case A_FRAME:
		/* as CPython's _pickle: a frame longer than the data left is truncated
		 * input (a length of 2^63 or more is its OverflowError) */
		if (left < 8 || pk_le(buf + p, 8) > left - 8)
			return -1;
		o->u = pk_le(buf + p, 8);
		p += 8;
		break;
	case A_LINE:
	case A_LINE2:
		nl = memchr(buf + p, '\n', left);
		if (!nl)
			return -1;
		o->data = buf + p;
		o->len = (size_t)(nl - (buf + p));
		p += o->len + 1;
		if (arg == A_LINE2) {
			left = len - p;
			nl = memchr(buf + p, '\n', left);
			if (!nl)
				return -1;
			o->data2 = buf + p;
			o->len2 = (size_t)(nl - (buf + p));
			p += o->len2 + 1;
		}
		break;
	case A_LEN1:
	case A_LEN4:
	case A_SLEN4:
	case A_LEN8: {
		size_t w = arg == A_LEN1 ? 1 : arg == A_LEN8 ? 8 : 4;
		if (left < w)
			return -1;
		n = pk_le(buf + p, w);
		if (arg == A_SLEN4 && (n & 0x80000000u))
			return -2;
		p += w;
		left -= w;
		if (n > left)
			return -1;
		o->u = n;
		o->data = buf + p;
		o->len = (size_t)n;
		p += (size_t)n;
		break;
	}
	default:
		return -1;
	}
	*pos = p;
	return 0;
}

int pk_find_end(const uint8_t *buf, size_t len, size_t *end)
{
	size_t pos = 0;
	struct pk_operand o;

	while (pos < len) {
		unsigned op = buf[pos];
		unsigned arg = pk_ops[op].arg;
		if (arg == A_BAD)
			return -EBADMSG;
		pos++;
		if (pk_operand_read(buf, len, &pos, arg, &o) < 0)
			return -EBADMSG;
		if (op == OP_STOP) {
			*end = pos;
			return 0;
		}
	}
	return -EBADMSG;
}

/* ---------------------------------------------------------------- arena and doc */

struct pk_chunk {
	struct pk_chunk *next;
	size_t size, used;
	/* data follows, PK_ALIGN-aligned */
};

#define PK_CHUNK_HDR (((sizeof(struct pk_chunk) + PK_ALIGN - 1) / PK_ALIGN) * PK_ALIGN)

struct pk_inode {
	struct pk_node n; /* first: a struct pk_node * is a struct pk_inode * */
	size_t cap;       /* capacity of u.seq.items, or of u.dict.keys and values */
};

struct pk_doc {
	struct pk_chunk *chunks;
	size_t next_chunk;
	size_t arena_used; /* bytes counted against max_arena */
	size_t max_arena;
	size_t nodes, max_nodes;
	struct pk_node *root;
	struct pk_inode none, yes, no; /* shared, never mutated */
};

static void *pk_arena_raw(struct pk_doc *d, size_t n)
{
	struct pk_chunk *c = d->chunks;
	void *r;

	n = (n + PK_ALIGN - 1) & ~(size_t)(PK_ALIGN - 1);
	if (!c || c->size - c->used < n) {
		size_t size = d->next_chunk;
		if (n > size / 4) {
			/* a big block gets a chunk of its own, behind the current one so
			 * that the current chunk's free space stays usable */
			if (n > SIZE_MAX - PK_CHUNK_HDR)
				return NULL;
			struct pk_chunk *big = malloc(PK_CHUNK_HDR + n);
			if (!big)
				return NULL;
			big->size = n;
			big->used = n;
			if (c) {
				big->next = c->next;
				c->next = big;
			} else {
				big->next = NULL;
				d->chunks = big;
			}
			return (char *)big + PK_CHUNK_HDR;
		}
		c = malloc(PK_CHUNK_HDR + size);
		if (!c)
			return NULL;
		c->size = size;
		c->used = 0;
		c->next = d->chunks;
		d->chunks = c;
		if (d->next_chunk < PK_CHUNK_MAX)
			d->next_chunk *= 2;
	}
	r = (char *)c + PK_CHUNK_HDR + c->used;
	c->used += n;
	return r;
}

void pk_doc_free(struct pk_doc *doc)
{
	struct pk_chunk *c, *next;

	if (!doc)
		return;
	for (c = doc->chunks; c; c = next) {
		next = c->next;
		free(c);
	}
	free(doc);
}

const struct pk_node *pk_doc_root(const struct pk_doc *doc)
{
	return doc ? doc->root : NULL;
}

void pk_limits_default(struct pk_limits *lim)
{
	lim->max_nodes = 1000000;
	lim->max_memo = 1000000;
	lim->max_depth = 10000;
	lim->max_arena = (size_t)64 << 20;
}

/* ---------------------------------------------------------------- parser state */

struct pk_parser {
	struct pk_doc *doc;
	const uint8_t *buf;
	size_t len;
	size_t pos;    /* next byte to read */
	size_t op_pos; /* offset of the opcode being run, for messages */
	unsigned op;
	struct pk_limits lim;
	struct pk_node **stack;
	size_t sp, stack_cap, max_stack;
	size_t *marks;
	size_t nmarks, marks_cap;
	struct pk_node **memo;
	size_t memo_cap, memo_count;
	uint64_t bigwork; /* limb operations spent converting big integers */
	char *err;
	size_t errlen;
};

__attribute__((format(printf, 3, 4))) static int pk_fail(struct pk_parser *p, int code,
                                                         const char *fmt, ...)
{
	va_list ap;

	if (p->err && p->errlen) {
		va_start(ap, fmt);
		vsnprintf(p->err, p->errlen, fmt, ap);
		va_end(ap);
	}
	return code;
}

static int pk_oom(struct pk_parser *p)
{
	return pk_fail(p, -ENOMEM, "out of memory at offset %zu", p->op_pos);
}

static const char *pk_opname(unsigned op)
{
	return pk_ops[op].name ? pk_ops[op].name : "?";
}

const char *pk_kind_name(enum pk_kind k)
{
	static const char *const names[] = {
	    [PK_NONE] = "None",
	    [PK_BOOL] = "bool",
	    [PK_INT] = "int",
	    [PK_BIGINT] = "int",
	    [PK_FLOAT] = "float",
	    [PK_COMPLEX] = "complex",
	    [PK_STR] = "str",
	    [PK_BYTES] = "bytes",
	    [PK_BYTEARRAY] = "bytearray",
	    [PK_TUPLE] = "tuple",
	    [PK_LIST] = "list",
	    [PK_SET] = "set",
	    [PK_FROZENSET] = "frozenset",
	    [PK_DICT] = "dict",
	    [PK_GLOBAL] = "global",
	    [PK_OBJECT] = "object",
	};
	return (unsigned)k < sizeof(names) / sizeof(names[0]) ? names[k] : "?";
}

/* Arena bytes for text and arrays, counted against max_arena. */
static void *pk_alloc(struct pk_parser *p, size_t n, int *rc)
{
	struct pk_doc *d = p->doc;
	void *r;

	if (n > d->max_arena || d->arena_used > d->max_arena - n) {
		*rc = pk_fail(p, -E2BIG, "pickle needs more than %zu bytes of memory at offset %zu",
		              d->max_arena, p->op_pos);
		return NULL;
	}
	r = pk_arena_raw(d, n ? n : 1);
	if (!r) {
		*rc = pk_oom(p);
		return NULL;
	}
	d->arena_used += n;
	return r;
}

/*
 * Counts the bytes a known call scanned before it turned out not to apply (and stays
 * opaque) against max_arena, so that repeating such a call on one big operand, a few
 * bytes each time, cannot cost quadratic time.
 */
static int pk_charge(struct pk_parser *p, size_t n)
{
	struct pk_doc *d = p->doc;

	if (n > d->max_arena || d->arena_used > d->max_arena - n)
		return pk_fail(p, -E2BIG,
		               "pickle needs more than %zu bytes of memory at offset %zu",
		               d->max_arena, p->op_pos);
	d->arena_used += n;
	return 0;
}

static struct pk_node *pk_new(struct pk_parser *p, enum pk_kind kind, int *rc)
{
	struct pk_doc *d = p->doc;
	struct pk_inode *in;

	if (d->nodes >= d->max_nodes) {
		*rc = pk_fail(p, -E2BIG, "pickle has more than %zu nodes at offset %zu",
		              d->max_nodes, p->op_pos);
		return NULL;
	}
	in = pk_arena_raw(d, sizeof(*in));
	if (!in) {
		*rc = pk_oom(p);
		return NULL;
	}
	d->nodes++;
	memset(in, 0, sizeof(*in));
	in->n.kind = kind;
	if (kind == PK_STR || kind == PK_BYTES || kind == PK_BYTEARRAY || kind == PK_BIGINT) {
		in->n.u.str.ptr = ""; /* never NULL, even when empty */
		in->n.u.str.offset = SIZE_MAX;
	}
	return &in->n;
}

static int pk_push(struct pk_parser *p, struct pk_node *n)
{
	if (p->sp == p->stack_cap) {
		size_t cap = p->stack_cap ? p->stack_cap * 2 : 64;
		struct pk_node **s;
		if (p->sp >= p->max_stack)
			return pk_fail(p, -E2BIG, "pickle stack deeper than %zu at offset %zu",
			               p->max_stack, p->op_pos);
		if (cap > p->max_stack)
			cap = p->max_stack;
		s = realloc(p->stack, cap * sizeof(*s));
		if (!s)
			return pk_oom(p);
		p->stack = s;
		p->stack_cap = cap;
	}
	p->stack[p->sp++] = n;
	return 0;
}

static size_t pk_fence(const struct pk_parser *p)
{
	return p->nmarks ? p->marks[p->nmarks - 1] : 0;
}

/* Requires n items above the fence. */
static int pk_need(struct pk_parser *p, size_t n)
{
	if (p->sp - pk_fence(p) < n)
		return pk_fail(p, -EBADMSG, "stack underflow at offset %zu (%s)", p->op_pos,
		               pk_opname(p->op));
	return 0;
}

static int pk_pop_mark(struct pk_parser *p, size_t *k)
{
	if (!p->nmarks)
		return pk_fail(p, -EBADMSG, "%s without MARK at offset %zu", pk_opname(p->op),
		               p->op_pos);
	*k = p->marks[--p->nmarks];
	return 0;
}

/* ---------------------------------------------------------------- containers */

static int pk_seq_reserve(struct pk_parser *p, struct pk_node *n, size_t extra)
{
	struct pk_inode *in = (struct pk_inode *)n;
	size_t have = n->u.seq.n, cap;
	struct pk_node **items;
	int rc = 0;

	if (extra <= in->cap - have)
		return 0;
	if (extra > SIZE_MAX / sizeof(*items) - have)
		return pk_fail(p, -E2BIG, "container too large at offset %zu", p->op_pos);
	cap = in->cap ? in->cap * 2 : 4;
	if (cap < have + extra)
		cap = have + extra;
	if (cap > SIZE_MAX / sizeof(*items))
		cap = have + extra;
	items = pk_alloc(p, cap * sizeof(*items), &rc);
	if (!items)
		return rc;
	if (have)
		memcpy(items, n->u.seq.items, have * sizeof(*items));
	n->u.seq.items = items;
	in->cap = cap;
	return 0;
}

static int pk_seq_add(struct pk_parser *p, struct pk_node *n, struct pk_node *const *src,
                      size_t count)
{
	int rc = pk_seq_reserve(p, n, count);
	if (rc < 0)
		return rc;
	if (count)
		memcpy(n->u.seq.items + n->u.seq.n, src, count * sizeof(*src));
	n->u.seq.n += count;
	return 0;
}

static int pk_dict_reserve(struct pk_parser *p, struct pk_node *n, size_t extra)
{
	struct pk_inode *in = (struct pk_inode *)n;
	size_t have = n->u.dict.n, cap;
	struct pk_node **k, **v;
	int rc = 0;

	if (extra <= in->cap - have)
		return 0;
	if (extra > SIZE_MAX / (2 * sizeof(*k)) - have)
		return pk_fail(p, -E2BIG, "container too large at offset %zu", p->op_pos);
	cap = in->cap ? in->cap * 2 : 4;
	if (cap < have + extra)
		cap = have + extra;
	if (cap > SIZE_MAX / (2 * sizeof(*k)))
		cap = have + extra;
	k = pk_alloc(p, 2 * cap * sizeof(*k), &rc);
	if (!k)
		return rc;
	v = k + cap;
	if (have) {
		memcpy(k, n->u.dict.keys, have * sizeof(*k));
		memcpy(v, n->u.dict.values, have * sizeof(*v));
	}
	n->u.dict.keys = k;
	n->u.dict.values = v;
	in->cap = cap;
	return 0;
}

/* Adds count key/value pairs from src (k0, v0, k1, v1, ...). */
static int pk_dict_add(struct pk_parser *p, struct pk_node *n, struct pk_node *const *src,
                       size_t count)
{
	int rc = pk_dict_reserve(p, n, count);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < count; i++) {
		n->u.dict.keys[n->u.dict.n] = src[2 * i];
		n->u.dict.values[n->u.dict.n] = src[2 * i + 1];
		n->u.dict.n++;
	}
	return 0;
}

static int pk_dict_merge(struct pk_parser *p, struct pk_node *dst, const struct pk_node *src)
{
	/* src may be dst itself (a dict BUILT with itself as state): copy the n pairs it
	 * had, read after the reserve, which may have moved them */
	size_t n = src->u.dict.n;
	int rc = pk_dict_reserve(p, dst, n);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < n; i++) {
		dst->u.dict.keys[dst->u.dict.n] = src->u.dict.keys[i];
		dst->u.dict.values[dst->u.dict.n] = src->u.dict.values[i];
		dst->u.dict.n++;
	}
	return 0;
}

static struct pk_node *pk_new_seq(struct pk_parser *p, enum pk_kind kind,
                                  struct pk_node *const *items, size_t n, int *rc)
{
	struct pk_node *node = pk_new(p, kind, rc);
	if (!node)
		return NULL;
	if (n && (*rc = pk_seq_add(p, node, items, n)) < 0)
		return NULL;
	return node;
}

/* ---------------------------------------------------------------- text helpers */

static bool pk_is_space(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

/* Checks UTF-8, accepting encoded surrogates (Python writes str with surrogatepass). */
static bool pk_utf8_valid(const uint8_t *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		uint8_t c = s[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		size_t k;
		uint32_t cp, min;
		if (c >= 0xc2 && c <= 0xdf) {
			k = 1;
			cp = c & 0x1f;
			min = 0x80;
		} else if (c >= 0xe0 && c <= 0xef) {
			k = 2;
			cp = c & 0x0f;
			min = 0x800;
		} else if (c >= 0xf0 && c <= 0xf4) {
			k = 3;
			cp = c & 0x07;
			min = 0x10000;
		} else {
			return false;
		}
		if (n - i - 1 < k)
			return false;
		for (size_t j = 1; j <= k; j++) {
			if ((s[i + j] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + j] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff)
			return false;
		i += k + 1;
	}
	return true;
}

/* Writes code point cp as UTF-8 (surrogates as three bytes); returns the length. */
static size_t pk_utf8_put(uint8_t *o, uint32_t cp)
{
	if (cp < 0x80) {
		o[0] = (uint8_t)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (uint8_t)(0xc0 | cp >> 6);
		o[1] = (uint8_t)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (uint8_t)(0xe0 | cp >> 12);
		o[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
		o[2] = (uint8_t)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (uint8_t)(0xf0 | cp >> 18);
	o[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
	o[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
	o[3] = (uint8_t)(0x80 | (cp & 0x3f));
	return 4;
}

static struct pk_node *pk_new_verbatim(struct pk_parser *p, enum pk_kind kind, const uint8_t *s,
                                       size_t n, int *rc)
{
	struct pk_node *node = pk_new(p, kind, rc);
	if (!node)
		return NULL;
	node->u.str.ptr = (const char *)s;
	node->u.str.len = n;
	node->u.str.offset = (size_t)(s - p->buf);
	return node;
}

/* UNICODE: raw-unicode-escape text (latin-1 bytes, \uXXXX and \UXXXXXXXX escapes
 * when preceded by an odd number of backslashes) into UTF-8. */
static struct pk_node *pk_raw_unicode(struct pk_parser *p, const uint8_t *s, size_t n, int *rc)
{
	struct pk_node *node;
	uint8_t *o;
	size_t w = 0, i = 0;

	if (n > (SIZE_MAX - 1) / 2) {
		*rc = pk_fail(p, -E2BIG, "string too long at offset %zu", p->op_pos);
		return NULL;
	}
	if (!(o = pk_alloc(p, 2 * n, rc)))
		return NULL;
	while (i < n) {
		if (s[i] != '\\') {
			w += pk_utf8_put(o + w, s[i++]);
			continue;
		}
		size_t bs = i;
		while (i < n && s[i] == '\\')
			i++;
		size_t nbs = i - bs;
		if ((nbs & 1) == 0 || i >= n || (s[i] != 'u' && s[i] != 'U')) {
			memset(o + w, '\\', nbs);
			w += nbs;
			continue;
		}
		memset(o + w, '\\', nbs - 1);
		w += nbs - 1;
		size_t digits = s[i] == 'u' ? 4 : 8;
		uint32_t cp = 0;
		i++;
		if (n - i < digits) {
			*rc = pk_fail(p, -EBADMSG, "truncated \\uXXXX escape at offset %zu",
			              p->op_pos);
			return NULL;
		}
		for (size_t j = 0; j < digits; j++) {
			int h = rpc_hex_digit(s[i + j]);
			if (h < 0 || cp > 0x10ffff) {
				*rc =
				    pk_fail(p, -EBADMSG, "bad \\u escape at offset %zu", p->op_pos);
				return NULL;
			}
			cp = cp << 4 | (uint32_t)h;
		}
		if (cp > 0x10ffff) {
			*rc = pk_fail(p, -EBADMSG, "\\U escape out of range at offset %zu",
			              p->op_pos);
			return NULL;
		}
		i += digits;
		w += pk_utf8_put(o + w, cp);
	}
	if (!(node = pk_new(p, PK_STR, rc)))
		return NULL;
	node->u.str.ptr = (const char *)o;
	node->u.str.len = w;
	return node;
}

/* STRING: a quoted Python 2 str repr, decoded as codecs.escape_decode does. ASCII
 * text becomes PK_STR (Python 3 loads it with encoding 'ASCII'), other bytes PK_BYTES. */
static struct pk_node *pk_quoted_string(struct pk_parser *p, const uint8_t *s, size_t n, int *rc)
{
	struct pk_node *node;
	uint8_t *o;
	size_t w = 0, i;
	bool ascii = true;

	while (n && pk_is_space(s[n - 1])) /* Python 2 wrote "'...'\r" on Windows */
		n--;
	if (n < 2 || s[0] != s[n - 1] || (s[0] != '\'' && s[0] != '"')) {
		*rc = pk_fail(p, -EBADMSG,
		              "the STRING opcode argument must be quoted at offset %zu", p->op_pos);
		return NULL;
	}
	s++;
	n -= 2;
	if (!(o = pk_alloc(p, n, rc)))
		return NULL;
	for (i = 0; i < n;) {
		uint8_t c = s[i++];
		if (c != '\\') {
			o[w++] = c;
			continue;
		}
		if (i >= n) {
			*rc =
			    pk_fail(p, -EBADMSG, "trailing \\ in string at offset %zu", p->op_pos);
			return NULL;
		}
		c = s[i++];
		switch (c) {
		case '\n':
			break;
		case '\\':
		case '\'':
		case '"':
			o[w++] = c;
			break;
		case 'a':
			o[w++] = 7;
			break;
		case 'b':
			o[w++] = 8;
			break;
		case 'f':
			o[w++] = 12;
			break;
		case 'n':
			o[w++] = 10;
			break;
		case 'r':
			o[w++] = 13;
			break;
		case 't':
			o[w++] = 9;
			break;
		case 'v':
			o[w++] = 11;
			break;
		case 'x': {
			int h1 = i < n ? rpc_hex_digit(s[i]) : -1;
			int h2 = i + 1 < n ? rpc_hex_digit(s[i + 1]) : -1;
			if (h1 < 0 || h2 < 0) {
				*rc = pk_fail(p, -EBADMSG, "invalid \\x escape at offset %zu",
				              p->op_pos);
				return NULL;
			}
			o[w++] = (uint8_t)(h1 << 4 | h2);
			i += 2;
			break;
		}
		default:
			if (c >= '0' && c <= '7') {
				unsigned v = c - '0';
				for (int k = 0; k < 2 && i < n && s[i] >= '0' && s[i] <= '7'; k++)
					v = v * 8 + (unsigned)(s[i++] - '0');
				o[w++] = (uint8_t)v;
			} else {
				o[w++] = '\\';
				o[w++] = c;
			}
			break;
		}
	}
	for (i = 0; i < w; i++)
		if (o[i] >= 0x80)
			ascii = false;
	if (!(node = pk_new(p, ascii ? PK_STR : PK_BYTES, rc)))
		return NULL;
	node->u.str.ptr = (const char *)o;
	node->u.str.len = w;
	return node;
}

/*
 * Decimal text of INT and LONG (optional sign, digits, surrounding blanks; LONG's
 * trailing 'L' is removed by the caller) into PK_INT, or PK_BIGINT beyond int64.
 */
static struct pk_node *pk_decimal(struct pk_parser *p, const uint8_t *s, size_t n, int *rc)
{
	struct pk_node *node;
	bool neg = false;
	uint64_t v = 0;
	bool big = false;
	size_t i;

	while (n && pk_is_space(s[n - 1]))
		n--;
	while (n && pk_is_space(*s)) {
		s++;
		n--;
	}
	if (n && (*s == '-' || *s == '+')) {
		neg = *s == '-';
		s++;
		n--;
	}
	if (!n)
		goto bad;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			goto bad;
		unsigned d = s[i] - '0';
		if (v > (UINT64_MAX - d) / 10)
			big = true;
		else
			v = v * 10 + d;
	}
	if (!big && (neg ? v <= (uint64_t)INT64_MAX + 1 : v <= (uint64_t)INT64_MAX)) {
		if (!(node = pk_new(p, PK_INT, rc)))
			return NULL;
		node->u.i = neg ? (int64_t)(0 - v) : (int64_t)v;
		return node;
	}
	while (n > 1 && *s == '0') {
		s++;
		n--;
	}
	char *o = pk_alloc(p, n + 1, rc);
	if (!o)
		return NULL;
	size_t w = 0;
	if (neg)
		o[w++] = '-';
	memcpy(o + w, s, n);
	w += n;
	if (!(node = pk_new(p, PK_BIGINT, rc)))
		return NULL;
	node->u.big.ptr = o;
	node->u.big.len = w;
	return node;
bad:
	*rc = pk_fail(p, -EBADMSG, "bad integer text at offset %zu", p->op_pos);
	return NULL;
}

/* LONG1/LONG4: little-endian two's complement of n bytes. */
static struct pk_node *pk_long_bytes(struct pk_parser *p, const uint8_t *s, size_t n, int *rc)
{
	struct pk_node *node;
	bool neg;
	uint32_t *limbs = NULL;
	char *o;
	size_t nl, w, i;

	/* drop redundant sign bytes */
	while (n > 1 &&
	       ((s[n - 1] == 0 && !(s[n - 2] & 0x80)) || (s[n - 1] == 0xff && (s[n - 2] & 0x80))))
		n--;
	if (n <= 8) {
		uint64_t v = n ? pk_le(s, n) : 0;
		if (n && n < 8 && (s[n - 1] & 0x80))
			v |= ~(uint64_t)0 << (8 * n);
		if (!(node = pk_new(p, PK_INT, rc)))
			return NULL;
		node->u.i = (int64_t)v;
		return node;
	}
	if (n > PK_LONG_MAX_BYTES) {
		*rc =
		    pk_fail(p, -E2BIG, "integer of %zu bytes exceeds the limit of %d at offset %zu",
		            n, PK_LONG_MAX_BYTES, p->op_pos);
		return NULL;
	}
	neg = s[n - 1] & 0x80;
	nl = (n + 3) / 4;
	p->bigwork += (uint64_t)nl * nl;
	if (p->bigwork > PK_BIGWORK_MAX) {
		*rc = pk_fail(p, -E2BIG, "too many big integer digits to convert at offset %zu",
		              p->op_pos);
		return NULL;
	}
	limbs = calloc(nl, sizeof(*limbs));
	if (!limbs) {
		*rc = pk_oom(p);
		return NULL;
	}
	for (i = 0; i < n; i++)
		limbs[i / 4] |= (uint32_t)s[i] << (8 * (i % 4));
	if (neg) {
		/* sign-extend the top limb, then negate (two's complement) */
		for (i = n; i < nl * 4; i++)
			limbs[i / 4] |= (uint32_t)0xff << (8 * (i % 4));
		uint64_t carry = 1;
		for (i = 0; i < nl; i++) {
			uint64_t t = (uint64_t)(uint32_t)~limbs[i] + carry;
			limbs[i] = (uint32_t)t;
			carry = t >> 32;
		}
	}
	/* at most 2.41 decimal digits per byte */
	size_t cap = n * 3 + 2;
	o = pk_alloc(p, cap, rc);
	if (!o) {
		free(limbs);
		return NULL;
	}
	/* collect 9-digit groups, least significant first, at the end of o */
	w = cap;
	size_t top = nl;
	while (top && !limbs[top - 1])
		top--;
	while (top) {
		uint64_t rem = 0;
		for (i = top; i-- > 0;) {
			uint64_t cur = rem << 32 | limbs[i];
			limbs[i] = (uint32_t)(cur / 1000000000u);
			rem = cur % 1000000000u;
		}
		while (top && !limbs[top - 1])
			top--;
		for (int k = 0; k < 9; k++) {
			o[--w] = (char)('0' + rem % 10);
			rem /= 10;
			if (!top && !rem)
				break;
		}
	}
	free(limbs);
	if (neg)
		o[--w] = '-';
	if (!(node = pk_new(p, PK_BIGINT, rc)))
		return NULL;
	node->u.big.ptr = o + w;
	node->u.big.len = cap - w;
	return node;
}

static pthread_once_t pk_locale_once = PTHREAD_ONCE_INIT;
static locale_t pk_c_locale;

static void pk_locale_init(void)
{
	pk_c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
}

/* FLOAT: Python's float() text, read in the C locale. */
static struct pk_node *pk_float_text(struct pk_parser *p, const uint8_t *s, size_t n, int *rc)
{
	char local[128], *t = local, *end;
	struct pk_node *node;
	double v;

	pthread_once(&pk_locale_once, pk_locale_init);
	if (!pk_c_locale) {
		*rc = pk_oom(p);
		return NULL;
	}
	while (n && pk_is_space(s[n - 1]))
		n--;
	while (n && pk_is_space(*s)) {
		s++;
		n--;
	}
	if (!n || memchr(s, 0, n))
		goto bad;
	if (n >= sizeof(local) && !(t = malloc(n + 1))) {
		*rc = pk_oom(p);
		return NULL;
	}
	memcpy(t, s, n);
	t[n] = 0;
	v = strtod_l(t, &end, pk_c_locale);
	bool ok = end == t + n;
	if (t != local)
		free(t);
	if (!ok)
		goto bad;
	if (!(node = pk_new(p, PK_FLOAT, rc)))
		return NULL;
	node->u.f = v;
	return node;
bad:
	*rc = pk_fail(p, -EBADMSG, "bad float text at offset %zu", p->op_pos);
	return NULL;
}

/* Parses the decimal index of GET/PUT text operands. */
static int pk_text_index(struct pk_parser *p, const uint8_t *s, size_t n, uint64_t *out)
{
	uint64_t v = 0;

	while (n && pk_is_space(s[n - 1]))
		n--;
	if (!n)
		goto bad;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9' || v > (UINT64_MAX - 9) / 10)
			goto bad;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*out = v;
	return 0;
bad:
	return pk_fail(p, -EBADMSG, "bad memo index at offset %zu (%s)", p->op_pos,
	               pk_opname(p->op));
}

/* ---------------------------------------------------------------- memo */

static int pk_memo_put(struct pk_parser *p, uint64_t idx, struct pk_node *n)
{
	if (idx >= p->lim.max_memo)
		return pk_fail(p, -E2BIG, "memo index %llu beyond the limit of %zu at offset %zu",
		               (unsigned long long)idx, p->lim.max_memo, p->op_pos);
	if (idx >= p->memo_cap) {
		size_t cap = p->memo_cap ? p->memo_cap : 64;
		while (cap <= idx && cap < SIZE_MAX / 4)
			cap *= 2;
		if (cap > p->lim.max_memo)
			cap = p->lim.max_memo;
		if (cap > SIZE_MAX / sizeof(struct pk_node *))
			return pk_oom(p);
		struct pk_node **m = realloc(p->memo, cap * sizeof(*m));
		if (!m)
			return pk_oom(p);
		memset(m + p->memo_cap, 0, (cap - p->memo_cap) * sizeof(*m));
		p->memo = m;
		p->memo_cap = cap;
	}
	if (!p->memo[idx])
		p->memo_count++;
	p->memo[idx] = n;
	return 0;
}

static int pk_memo_get(struct pk_parser *p, uint64_t idx)
{
	if (idx >= p->memo_cap || !p->memo[idx])
		return pk_fail(p, -EBADMSG, "memo key %llu not found at offset %zu",
		               (unsigned long long)idx, p->op_pos);
	return pk_push(p, p->memo[idx]);
}

/* ---------------------------------------------------------------- globals and calls */

static bool pk_streq(const struct pk_node *n, const char *s)
{
	size_t l = strlen(s);
	return n && n->kind == PK_STR && n->u.str.len == l && memcmp(n->u.str.ptr, s, l) == 0;
}

static char *pk_cstr(struct pk_parser *p, const uint8_t *s, size_t n, int *rc)
{
	char *o;

	if (memchr(s, 0, n)) {
		*rc = pk_fail(p, -EBADMSG, "NUL in global name at offset %zu", p->op_pos);
		return NULL;
	}
	if (!(o = pk_alloc(p, n + 1, rc)))
		return NULL;
	memcpy(o, s, n);
	o[n] = 0;
	return o;
}

/* Python 2 names that Python 3 reads under another name (Lib/_compat_pickle.py, the
 * part fleche's values can meet). */
static const struct {
	const char *mod2, *name2, *mod3, *name3;
} pk_compat_names[] = {
    {"__builtin__", "xrange", "builtins", "range"},
    {"__builtin__", "unicode", "builtins", "str"},
    {"__builtin__", "basestring", "builtins", "str"},
    {"__builtin__", "long", "builtins", "int"},
    {"__builtin__", "unichr", "builtins", "chr"},
    {"__builtin__", "reduce", "functools", "reduce"},
    {"__builtin__", "intern", "sys", "intern"},
    {"UserDict", "UserDict", "collections", "UserDict"},
};

static const struct {
	const char *mod2, *mod3;
} pk_compat_modules[] = {
    {"__builtin__", "builtins"}, {"copy_reg", "copyreg"},     {"exceptions", "builtins"},
    {"Queue", "queue"},          {"UserList", "collections"}, {"UserString", "collections"},
};

static struct pk_node *pk_new_global(struct pk_parser *p, const uint8_t *mod, size_t ml,
                                     const uint8_t *name, size_t nl, int *rc)
{
	struct pk_node *node;
	const char *m3 = NULL, *n3 = NULL;
	size_t i;

	for (i = 0; i < sizeof(pk_compat_names) / sizeof(pk_compat_names[0]); i++) {
		if (strlen(pk_compat_names[i].mod2) == ml &&
		    memcmp(pk_compat_names[i].mod2, mod, ml) == 0 &&
		    strlen(pk_compat_names[i].name2) == nl &&
		    memcmp(pk_compat_names[i].name2, name, nl) == 0) {
			m3 = pk_compat_names[i].mod3;
			n3 = pk_compat_names[i].name3;
		}
	}
	for (i = 0; !m3 && i < sizeof(pk_compat_modules) / sizeof(pk_compat_modules[0]); i++)
		if (strlen(pk_compat_modules[i].mod2) == ml &&
		    memcmp(pk_compat_modules[i].mod2, mod, ml) == 0)
			m3 = pk_compat_modules[i].mod3;
	if (!(node = pk_new(p, PK_GLOBAL, rc)))
		return NULL;
	node->u.global.module = m3 ? m3 : pk_cstr(p, mod, ml, rc);
	node->u.global.name = n3 ? n3 : pk_cstr(p, name, nl, rc);
	if (!node->u.global.module || !node->u.global.name)
		return NULL;
	return node;
}

static bool pk_global_is(const struct pk_node *g, const char *module, const char *name)
{
	return g && g->kind == PK_GLOBAL && strcmp(g->u.global.module, module) == 0 &&
	       strcmp(g->u.global.name, name) == 0;
}

static bool pk_is_seq(const struct pk_node *n)
{
	return n && (n->kind == PK_TUPLE || n->kind == PK_LIST || n->kind == PK_SET ||
	             n->kind == PK_FROZENSET);
}

static bool pk_is_bytes(const struct pk_node *n)
{
	return n && (n->kind == PK_BYTES || n->kind == PK_BYTEARRAY);
}

static bool pk_is_number(const struct pk_node *n, double *v)
{
	if (!n)
		return false;
	switch (n->kind) {
	case PK_BOOL:
		*v = n->u.b;
		return true;
	case PK_INT:
		*v = (double)n->u.i;
		return true;
	case PK_FLOAT:
		*v = n->u.f;
		return true;
	default:
		return false;
	}
}

static bool pk_latin1_name(const struct pk_node *n)
{
	return pk_streq(n, "latin1") || pk_streq(n, "latin-1") || pk_streq(n, "latin_1") ||
	       pk_streq(n, "iso-8859-1") || pk_streq(n, "iso8859-1");
}

static bool pk_utf8_name(const struct pk_node *n)
{
	return pk_streq(n, "utf-8") || pk_streq(n, "utf8") || pk_streq(n, "utf_8");
}

/*
 * str (UTF-8) to bytes: with latin-1, every code point must be below 256 and the
 * bytes are decoded into the arena; with UTF-8 the bytes are the str's own. Returns
 * NULL with *rc == 0 when the text does not fit the codec (the call stays opaque).
 */
static struct pk_node *pk_encode(struct pk_parser *p, enum pk_kind kind, const struct pk_node *s,
                                 bool latin1, int *rc)
{
	struct pk_node *node;
	const uint8_t *in = (const uint8_t *)s->u.str.ptr;
	size_t n = s->u.str.len, w = 0, i;
	uint8_t *o;

	*rc = 0;
	if (latin1) {
		/* only U+0000..U+00FF: ASCII, or 0xc2/0xc3 and a continuation byte */
		for (i = 0; i < n; i++) {
			if (in[i] < 0x80)
				continue;
			if ((in[i] != 0xc2 && in[i] != 0xc3) || i + 1 >= n ||
			    (in[i + 1] & 0xc0) != 0x80) {
				*rc = pk_charge(p, i);
				return NULL;
			}
			i++;
		}
	}
	if (!(node = pk_new(p, kind, rc)))
		return NULL;
	if (!latin1) {
		node->u.str = s->u.str;
		return node;
	}
	if (!(o = pk_alloc(p, n, rc)))
		return NULL;
	for (i = 0; i < n;) {
		if (in[i] < 0x80) {
			o[w++] = in[i++];
		} else {
			o[w++] = (uint8_t)((in[i] & 0x03) << 6 | (in[i + 1] & 0x3f));
			i += 2;
		}
	}
	node->u.str.ptr = (const char *)o;
	node->u.str.len = w;
	node->u.str.offset = SIZE_MAX;
	return node;
}

/* Copies the items of a tuple/list/set of pairs into dict d; false when not pairs. */
static int pk_dict_from_pairs(struct pk_parser *p, struct pk_node *d, const struct pk_node *seq,
                              bool *ok)
{
	int rc;

	*ok = false;
	for (size_t i = 0; i < seq->u.seq.n; i++) {
		const struct pk_node *it = seq->u.seq.items[i];
		if (!(it->kind == PK_TUPLE || it->kind == PK_LIST) || it->u.seq.n != 2)
			return pk_charge(p, i * sizeof(*d->u.dict.keys));
	}
	if ((rc = pk_dict_reserve(p, d, seq->u.seq.n)) < 0)
		return rc;
	for (size_t i = 0; i < seq->u.seq.n; i++) {
		const struct pk_node *it = seq->u.seq.items[i];
		d->u.dict.keys[d->u.dict.n] = it->u.seq.items[0];
		d->u.dict.values[d->u.dict.n] = it->u.seq.items[1];
		d->u.dict.n++;
	}
	*ok = true;
	return 0;
}

/*
 * The known callables that stand for plain values. Returns the typed node, or NULL
 * with *rc == 0 when the call is not one of them (the caller then makes a PK_OBJECT),
 * or NULL with *rc < 0 on error.
 */
static struct pk_node *pk_known_call(struct pk_parser *p, const struct pk_node *fn,
                                     const struct pk_node *args, int *rc)
{
	const char *m = fn->u.global.module, *name = fn->u.global.name;
	size_t na = args->u.seq.n;
	struct pk_node *const *a = args->u.seq.items;
	struct pk_node *node;
	double re = 0, im = 0;
	bool ok;

	*rc = 0;
	if (strcmp(m, "builtins") == 0) {
		enum pk_kind k = PK_NONE;
		if (strcmp(name, "set") == 0)
			k = PK_SET;
		else if (strcmp(name, "frozenset") == 0)
			k = PK_FROZENSET;
		else if (strcmp(name, "list") == 0)
			k = PK_LIST;
		else if (strcmp(name, "tuple") == 0)
			k = PK_TUPLE;
		if (k != PK_NONE) {
			if (na == 0)
				return pk_new(p, k, rc);
			if (na == 1 && pk_is_seq(a[0]))
				return pk_new_seq(p, k, a[0]->u.seq.items, a[0]->u.seq.n, rc);
			return NULL;
		}
		if (strcmp(name, "dict") == 0) {
			if (na > 1)
				return NULL;
			if (na == 1 && a[0]->kind != PK_DICT && !pk_is_seq(a[0]))
				return NULL;
			if (!(node = pk_new(p, PK_DICT, rc)))
				return NULL;
			if (na == 0)
				return node;
			if (a[0]->kind == PK_DICT) {
				*rc = pk_dict_merge(p, node, a[0]);
				return *rc < 0 ? NULL : node;
			}
			if ((*rc = pk_dict_from_pairs(p, node, a[0], &ok)) < 0 || !ok)
				return NULL;
			return node;
		}
		if (strcmp(name, "bytearray") == 0 || strcmp(name, "bytes") == 0) {
			k = name[4] == 'a' ? PK_BYTEARRAY : PK_BYTES;
			if (na == 0)
				return pk_new(p, k, rc);
			if (na == 1 && pk_is_bytes(a[0])) {
				if (!(node = pk_new(p, k, rc)))
					return NULL;
				node->u.str = a[0]->u.str;
				return node;
			}
			if (na == 2 && a[0]->kind == PK_STR && pk_latin1_name(a[1]))
				return pk_encode(p, k, a[0], true, rc);
			if (na == 2 && a[0]->kind == PK_STR && pk_utf8_name(a[1]))
				return pk_encode(p, k, a[0], false, rc);
			return NULL;
		}
		if (strcmp(name, "complex") == 0) {
			if (na < 1 || na > 2 || !pk_is_number(a[0], &re) ||
			    (na == 2 && !pk_is_number(a[1], &im)))
				return NULL;
			if (!(node = pk_new(p, PK_COMPLEX, rc)))
				return NULL;
			node->u.cplx.re = re;
			node->u.cplx.im = im;
			return node;
		}
		return NULL;
	}
	if (strcmp(m, "_codecs") == 0 && strcmp(name, "encode") == 0) {
		if (na == 2 && a[0]->kind == PK_STR && pk_latin1_name(a[1]))
			return pk_encode(p, PK_BYTES, a[0], true, rc);
		if ((na == 1 || (na == 2 && pk_utf8_name(a[1]))) && a[0]->kind == PK_STR)
			return pk_encode(p, PK_BYTES, a[0], false, rc);
		return NULL;
	}
	if (strcmp(m, "collections") == 0 &&
	    (strcmp(name, "defaultdict") == 0 || strcmp(name, "OrderedDict") == 0)) {
		bool dd = name[0] == 'd';
		const struct pk_node *init = NULL;
		if (dd ? na > 2 : na > 1)
			return NULL;
		if (na == (dd ? 2u : 1u)) {
			init = a[na - 1];
			if (init->kind != PK_DICT && !pk_is_seq(init))
				return NULL;
		}
		if (!(node = pk_new(p, PK_DICT, rc)))
			return NULL;
		node->u.dict.cls = dd ? "collections.defaultdict" : "collections.OrderedDict";
		if (!init)
			return node;
		if (init->kind == PK_DICT) {
			*rc = pk_dict_merge(p, node, init);
			return *rc < 0 ? NULL : node;
		}
		if ((*rc = pk_dict_from_pairs(p, node, init, &ok)) < 0 || !ok)
			return NULL;
		return node;
	}
	return NULL;
}

static struct pk_node *pk_make_object(struct pk_parser *p, struct pk_node *callable,
                                      struct pk_node *args, struct pk_node *kwargs, int *rc)
{
	struct pk_node *node = pk_new(p, PK_OBJECT, rc);

	if (!node)
		return NULL;
	if (callable->kind == PK_GLOBAL) {
		node->u.obj.cls = callable->u.global;
	} else {
		node->u.obj.cls.module = "";
		node->u.obj.cls.name = "";
	}
	node->u.obj.callable = callable;
	node->u.obj.args = args;
	node->u.obj.kwargs = kwargs;
	return node;
}

/* REDUCE, NEWOBJ, INST and OBJ: callable(*args, **kwargs). */
static int pk_call(struct pk_parser *p, struct pk_node *callable, struct pk_node *args,
                   struct pk_node *kwargs)
{
	struct pk_node *node = NULL;
	int rc = 0;

	if (args->kind != PK_TUPLE)
		return pk_fail(p, -EBADMSG, "%s arguments are a %s, not a tuple, at offset %zu",
		               pk_opname(p->op), pk_kind_name(args->kind), p->op_pos);
	if (kwargs && kwargs->kind != PK_DICT)
		return pk_fail(p, -EBADMSG, "NEWOBJ_EX keyword arguments are a %s at offset %zu",
		               pk_kind_name(kwargs->kind), p->op_pos);
	if (callable->kind == PK_GLOBAL && !kwargs) {
		const char *m = callable->u.global.module, *name = callable->u.global.name;
		size_t na = args->u.seq.n;
		struct pk_node *const *a = args->u.seq.items;
		if (strcmp(m, "copyreg") == 0 && strcmp(name, "_reconstructor") == 0 && na == 3 &&
		    a[0]->kind == PK_GLOBAL) {
			/* _reconstructor(cls, object, None) is cls's bare instance; another base
			 * keeps (base, state) as the arguments */
			struct pk_node *rest;
			if (pk_global_is(a[1], "builtins", "object") && a[2]->kind == PK_NONE)
				rest = pk_new(p, PK_TUPLE, &rc);
			else
				rest = pk_new_seq(p, PK_TUPLE, a + 1, 2, &rc);
			if (!rest || !(node = pk_make_object(p, a[0], rest, NULL, &rc)))
				return rc;
			return pk_push(p, node);
		}
		if (strcmp(m, "copyreg") == 0 && strcmp(name, "__newobj__") == 0 && na >= 1 &&
		    a[0]->kind == PK_GLOBAL) {
			struct pk_node *rest = pk_new_seq(p, PK_TUPLE, a + 1, na - 1, &rc);
			if (!rest || !(node = pk_make_object(p, a[0], rest, NULL, &rc)))
				return rc;
			return pk_push(p, node);
		}
		if (strcmp(m, "copyreg") == 0 && strcmp(name, "__newobj_ex__") == 0 && na == 3 &&
		    a[0]->kind == PK_GLOBAL && a[1]->kind == PK_TUPLE && a[2]->kind == PK_DICT) {
			if (!(node = pk_make_object(p, a[0], a[1], a[2], &rc)))
				return rc;
			return pk_push(p, node);
		}
		node = pk_known_call(p, callable, args, &rc);
		if (rc < 0)
			return rc;
	}
	if (!node && !(node = pk_make_object(p, callable, args, kwargs, &rc)))
		return rc;
	return pk_push(p, node);
}

/* APPEND(S)/ADDITEMS onto a list, set or object; SETITEM(S) onto a dict or object. */
static int pk_extend(struct pk_parser *p, struct pk_node *target, struct pk_node *const *items,
                     size_t n, bool pairs)
{
	int rc = 0;
	enum pk_kind want = pairs ? PK_DICT : (p->op == OP_ADDITEMS ? PK_SET : PK_LIST);

	if (target->kind == PK_OBJECT) {
		struct pk_node **slot = pairs ? &target->u.obj.dictitems : &target->u.obj.listitems;
		if (!*slot && !(*slot = pk_new(p, pairs ? PK_DICT : PK_LIST, &rc)))
			return rc;
		target = *slot;
	} else if (target->kind != want) {
		return pk_fail(p, -EBADMSG, "%s onto a %s at offset %zu", pk_opname(p->op),
		               pk_kind_name(target->kind), p->op_pos);
	}
	return pairs ? pk_dict_add(p, target, items, n) : pk_seq_add(p, target, items, n);
}

static int pk_build(struct pk_parser *p, struct pk_node *inst, struct pk_node *state)
{
	if (inst->kind == PK_OBJECT) {
		inst->u.obj.state = state;
		return 0;
	}
	if (state->kind == PK_NONE)
		return 0;
	if (inst->kind == PK_DICT && state->kind == PK_DICT)
		return pk_dict_merge(p, inst, state);
	return pk_fail(p, -EBADMSG, "BUILD of a %s with a %s state at offset %zu",
	               pk_kind_name(inst->kind), pk_kind_name(state->kind), p->op_pos);
}

/* ---------------------------------------------------------------- the machine */

static int pk_step(struct pk_parser *p, const struct pk_operand *o, bool *stop)
{
	struct pk_node *node = NULL, *a, *b;
	size_t k;
	int rc = 0;

	switch (p->op) {
	case OP_PROTO:
		if (o->u > PK_HIGHEST_PROTO)
			return pk_fail(p, -EBADMSG, "unsupported pickle protocol %u at offset %zu",
			               (unsigned)o->u, p->op_pos);
		return 0;
	case OP_FRAME:
	case OP_READONLY_BUFFER:
		if (p->op == OP_READONLY_BUFFER)
			return pk_need(p, 1);
		return 0;
	case OP_STOP:
		if ((rc = pk_need(p, 1)) < 0)
			return rc;
		p->doc->root = p->stack[--p->sp];
		*stop = true;
		return 0;
	case OP_MARK:
		if (p->nmarks >= p->lim.max_depth)
			return pk_fail(p, -E2BIG, "more than %zu nested MARKs at offset %zu",
			               p->lim.max_depth, p->op_pos);
		if (p->nmarks == p->marks_cap) {
			size_t cap = p->marks_cap ? p->marks_cap * 2 : 32;
			if (cap > p->lim.max_depth)
				cap = p->lim.max_depth;
			size_t *m = realloc(p->marks, cap * sizeof(*m));
			if (!m)
				return pk_oom(p);
			p->marks = m;
			p->marks_cap = cap;
		}
		p->marks[p->nmarks++] = p->sp;
		return 0;
	case OP_POP:
		if (p->sp > pk_fence(p)) {
			p->sp--;
			return 0;
		}
		if ((rc = pk_pop_mark(p, &k)) < 0)
			return pk_fail(p, -EBADMSG, "stack underflow at offset %zu (POP)",
			               p->op_pos);
		return 0;
	case OP_POP_MARK:
		if ((rc = pk_pop_mark(p, &k)) < 0)
			return rc;
		p->sp = k;
		return 0;
	case OP_DUP:
		if ((rc = pk_need(p, 1)) < 0)
			return rc;
		return pk_push(p, p->stack[p->sp - 1]);

	/* scalars */
	case OP_NONE:
		return pk_push(p, &p->doc->none.n);
	case OP_NEWTRUE:
		return pk_push(p, &p->doc->yes.n);
	case OP_NEWFALSE:
		return pk_push(p, &p->doc->no.n);
	case OP_INT:
		if (o->len == 2 && o->data[0] == '0' && (o->data[1] == '0' || o->data[1] == '1'))
			return pk_push(p, o->data[1] == '1' ? &p->doc->yes.n : &p->doc->no.n);
		node = pk_decimal(p, o->data, o->len, &rc);
		break;
	case OP_LONG: {
		size_t n = o->len;
		if (n && o->data[n - 1] == 'L')
			n--;
		node = pk_decimal(p, o->data, n, &rc);
		break;
	}
	case OP_BININT:
	case OP_BININT1:
	case OP_BININT2:
		if ((node = pk_new(p, PK_INT, &rc)))
			node->u.i =
			    p->op == OP_BININT ? (int64_t)(int32_t)(uint32_t)o->u : (int64_t)o->u;
		break;
	case OP_LONG1:
	case OP_LONG4:
		node = pk_long_bytes(p, o->data, o->len, &rc);
		break;
	case OP_FLOAT:
		node = pk_float_text(p, o->data, o->len, &rc);
		break;
	case OP_BINFLOAT: {
		/* big-endian IEEE 754 double; pk_le read it little-endian */
		uint64_t be = 0, v = o->u;
		for (int i = 0; i < 8; i++) {
			be = be << 8 | (v & 0xff);
			v >>= 8;
		}
		if ((node = pk_new(p, PK_FLOAT, &rc)))
			memcpy(&node->u.f, &be, sizeof(be));
		break;
	}

	/* text and bytes */
	case OP_BINUNICODE:
	case OP_SHORT_BINUNICODE:
	case OP_BINUNICODE8:
		if (!pk_utf8_valid(o->data, o->len))
			return pk_fail(p, -EBADMSG, "invalid UTF-8 in %s at offset %zu",
			               pk_opname(p->op), p->op_pos);
		node = pk_new_verbatim(p, PK_STR, o->data, o->len, &rc);
		break;
	case OP_UNICODE:
		node = pk_raw_unicode(p, o->data, o->len, &rc);
		break;
	case OP_STRING:
		node = pk_quoted_string(p, o->data, o->len, &rc);
		break;
	case OP_BINSTRING:
	case OP_SHORT_BINSTRING: {
		/* Python 2 str: ASCII loads as str (encoding 'ASCII'), the rest as bytes */
		bool ascii = true;
		for (size_t i = 0; i < o->len && ascii; i++)
			ascii = o->data[i] < 0x80;
		node = pk_new_verbatim(p, ascii ? PK_STR : PK_BYTES, o->data, o->len, &rc);
		break;
	}
	case OP_BINBYTES:
	case OP_SHORT_BINBYTES:
	case OP_BINBYTES8:
		node = pk_new_verbatim(p, PK_BYTES, o->data, o->len, &rc);
		break;
	case OP_BYTEARRAY8:
		node = pk_new_verbatim(p, PK_BYTEARRAY, o->data, o->len, &rc);
		break;
	case OP_NEXT_BUFFER:
		return pk_fail(
		    p, -EBADMSG,
		    "out-of-band buffer at offset %zu is not in the stream (NEXT_BUFFER)",
		    p->op_pos);
	case OP_PERSID:
	case OP_BINPERSID:
		return pk_fail(p, -EBADMSG, "persistent id at offset %zu is not supported (%s)",
		               p->op_pos, pk_opname(p->op));

	/* containers */
	case OP_EMPTY_LIST:
		node = pk_new(p, PK_LIST, &rc);
		break;
	case OP_EMPTY_TUPLE:
		node = pk_new(p, PK_TUPLE, &rc);
		break;
	case OP_EMPTY_DICT:
		node = pk_new(p, PK_DICT, &rc);
		break;
	case OP_EMPTY_SET:
		node = pk_new(p, PK_SET, &rc);
		break;
	case OP_TUPLE1:
	case OP_TUPLE2:
	case OP_TUPLE3:
		k = (size_t)(p->op - OP_TUPLE1 + 1);
		if ((rc = pk_need(p, k)) < 0)
			return rc;
		node = pk_new_seq(p, PK_TUPLE, p->stack + p->sp - k, k, &rc);
		if (node)
			p->sp -= k;
		break;
	case OP_TUPLE:
	case OP_LIST:
	case OP_FROZENSET:
		if ((rc = pk_pop_mark(p, &k)) < 0)
			return rc;
		node = pk_new_seq(p,
		                  p->op == OP_TUPLE  ? PK_TUPLE
		                  : p->op == OP_LIST ? PK_LIST
		                                     : PK_FROZENSET,
		                  p->stack + k, p->sp - k, &rc);
		p->sp = k;
		break;
	case OP_DICT:
		if ((rc = pk_pop_mark(p, &k)) < 0)
			return rc;
		if ((p->sp - k) % 2)
			return pk_fail(p, -EBADMSG, "odd number of items for DICT at offset %zu",
			               p->op_pos);
		if ((node = pk_new(p, PK_DICT, &rc)) &&
		    (rc = pk_dict_add(p, node, p->stack + k, (p->sp - k) / 2)) < 0)
			return rc;
		p->sp = k;
		break;
	case OP_APPEND:
		if ((rc = pk_need(p, 2)) < 0)
			return rc;
		rc = pk_extend(p, p->stack[p->sp - 2], p->stack + p->sp - 1, 1, false);
		p->sp--;
		return rc;
	case OP_SETITEM:
		if ((rc = pk_need(p, 3)) < 0)
			return rc;
		rc = pk_extend(p, p->stack[p->sp - 3], p->stack + p->sp - 2, 1, true);
		p->sp -= 2;
		return rc;
	case OP_APPENDS:
	case OP_ADDITEMS:
	case OP_SETITEMS: {
		bool pairs = p->op == OP_SETITEMS;
		if ((rc = pk_pop_mark(p, &k)) < 0)
			return rc;
		if (k == 0 || k <= pk_fence(p))
			return pk_fail(p, -EBADMSG, "stack underflow at offset %zu (%s)", p->op_pos,
			               pk_opname(p->op));
		if (pairs && (p->sp - k) % 2)
			return pk_fail(p, -EBADMSG,
			               "odd number of items for SETITEMS at offset %zu", p->op_pos);
		rc = pk_extend(p, p->stack[k - 1], p->stack + k,
		               pairs ? (p->sp - k) / 2 : p->sp - k, pairs);
		p->sp = k;
		return rc;
	}

	/* memo */
	case OP_PUT:
	case OP_BINPUT:
	case OP_LONG_BINPUT: {
		uint64_t idx = o->u;
		if (p->op == OP_PUT && (rc = pk_text_index(p, o->data, o->len, &idx)) < 0)
			return rc;
		if ((rc = pk_need(p, 1)) < 0)
			return rc;
		return pk_memo_put(p, idx, p->stack[p->sp - 1]);
	}
	case OP_MEMOIZE:
		if ((rc = pk_need(p, 1)) < 0)
			return rc;
		return pk_memo_put(p, p->memo_count, p->stack[p->sp - 1]);
	case OP_GET:
	case OP_BINGET:
	case OP_LONG_BINGET: {
		uint64_t idx = o->u;
		if (p->op == OP_GET && (rc = pk_text_index(p, o->data, o->len, &idx)) < 0)
			return rc;
		return pk_memo_get(p, idx);
	}

	/* globals and objects */
	case OP_GLOBAL:
		node = pk_new_global(p, o->data, o->len, o->data2, o->len2, &rc);
		break;
	case OP_STACK_GLOBAL:
		if ((rc = pk_need(p, 2)) < 0)
			return rc;
		a = p->stack[p->sp - 2];
		b = p->stack[p->sp - 1];
		if (a->kind != PK_STR || b->kind != PK_STR)
			return pk_fail(p, -EBADMSG, "STACK_GLOBAL requires str at offset %zu",
			               p->op_pos);
		node = pk_new_global(p, (const uint8_t *)a->u.str.ptr, a->u.str.len,
		                     (const uint8_t *)b->u.str.ptr, b->u.str.len, &rc);
		if (node)
			p->sp -= 2;
		break;
	case OP_EXT1:
	case OP_EXT2:
	case OP_EXT4: {
		/* the extension registry is the unpickling process's: keep the code opaque */
		char code[24];
		int l = snprintf(code, sizeof(code), "%llu", (unsigned long long)o->u);
		node = pk_new_global(p, (const uint8_t *)"copyreg._extension_registry", 27,
		                     (const uint8_t *)code, (size_t)l, &rc);
		break;
	}
	case OP_REDUCE:
	case OP_NEWOBJ:
		if ((rc = pk_need(p, 2)) < 0)
			return rc;
		a = p->stack[p->sp - 2];
		b = p->stack[p->sp - 1];
		p->sp -= 2;
		return pk_call(p, a, b, NULL);
	case OP_NEWOBJ_EX:
		if ((rc = pk_need(p, 3)) < 0)
			return rc;
		p->sp -= 3;
		return pk_call(p, p->stack[p->sp], p->stack[p->sp + 1], p->stack[p->sp + 2]);
	case OP_INST:
		if ((rc = pk_pop_mark(p, &k)) < 0)
			return rc;
		if (!(a = pk_new_global(p, o->data, o->len, o->data2, o->len2, &rc)) ||
		    !(b = pk_new_seq(p, PK_TUPLE, p->stack + k, p->sp - k, &rc)))
			return rc;
		p->sp = k;
		return pk_call(p, a, b, NULL);
	case OP_OBJ:
		if ((rc = pk_pop_mark(p, &k)) < 0)
			return rc;
		if (p->sp - k < 1)
			return pk_fail(p, -EBADMSG, "stack underflow at offset %zu (OBJ)",
			               p->op_pos);
		a = p->stack[k];
		if (!(b = pk_new_seq(p, PK_TUPLE, p->stack + k + 1, p->sp - k - 1, &rc)))
			return rc;
		p->sp = k;
		return pk_call(p, a, b, NULL);
	case OP_BUILD:
		if ((rc = pk_need(p, 2)) < 0)
			return rc;
		rc = pk_build(p, p->stack[p->sp - 2], p->stack[p->sp - 1]);
		p->sp--;
		return rc;
	default:
		return pk_fail(p, -EBADMSG, "unknown opcode 0x%02x at offset %zu", p->op,
		               p->op_pos);
	}
	if (!node)
		return rc;
	return pk_push(p, node);
}

int pk_parse(const uint8_t *buf, size_t len, const struct pk_limits *lim, struct pk_doc **out,
             size_t *end, char *err, size_t errlen)
{
	struct pk_parser p;
	struct pk_operand o;
	struct pk_doc *doc;
	bool stop = false;
	int rc = 0;

	memset(&p, 0, sizeof(p));
	p.buf = buf;
	p.len = len;
	p.err = err;
	p.errlen = errlen;
	if (err && errlen)
		err[0] = 0;
	if (lim)
		p.lim = *lim;
	else
		pk_limits_default(&p.lim);
	/* every stack entry is a node reference: the node limit bounds the stack too */
	p.max_stack = p.lim.max_nodes > p.lim.max_depth ? p.lim.max_nodes : p.lim.max_depth;
	*out = NULL;
	doc = calloc(1, sizeof(*doc));
	if (!doc)
		return pk_fail(&p, -ENOMEM, "out of memory");
	doc->next_chunk = PK_CHUNK_FIRST;
	doc->max_arena = p.lim.max_arena;
	doc->max_nodes = p.lim.max_nodes;
	doc->none.n.kind = PK_NONE;
	doc->yes.n.kind = PK_BOOL;
	doc->yes.n.u.b = true;
	doc->no.n.kind = PK_BOOL;
	doc->no.n.u.b = false;
	p.doc = doc;
	p.stack_cap = p.max_stack < 64 ? p.max_stack : 64;
	p.stack = malloc((p.stack_cap ? p.stack_cap : 1) * sizeof(*p.stack));
	if (!p.stack) {
		rc = pk_oom(&p);
		goto out;
	}

	while (!stop) {
		if (p.pos >= len) {
			rc = pk_fail(&p, -EBADMSG, "truncated pickle at offset %zu (no STOP)",
			             p.pos);
			goto out;
		}
		p.op_pos = p.pos;
		p.op = buf[p.pos++];
		unsigned arg = pk_ops[p.op].arg;
		if (arg == A_BAD) {
			rc = pk_fail(&p, -EBADMSG, "unknown opcode 0x%02x at offset %zu", p.op,
			             p.op_pos);
			goto out;
		}
		int r = pk_operand_read(buf, len, &p.pos, arg, &o);
		if (r == -2) {
			rc = pk_fail(&p, -EBADMSG, "negative length for %s at offset %zu",
			             pk_opname(p.op), p.op_pos);
			goto out;
		}
		if (r < 0) {
			rc = pk_fail(&p, -EBADMSG, "truncated pickle at offset %zu (%s)", p.op_pos,
			             pk_opname(p.op));
			goto out;
		}
		if ((rc = pk_step(&p, &o, &stop)) < 0)
			goto out;
	}
	if (end)
		*end = p.pos;
	*out = doc;
	doc = NULL;
out:
	free(p.stack);
	free(p.marks);
	free(p.memo);
	pk_doc_free(doc);
	return rc;
}

/* ---------------------------------------------------------------- queries */

bool pk_is_class(const struct pk_node *node, const char *module, const char *name)
{
	const struct pk_global *g;

	if (!node)
		return false;
	if (node->kind == PK_OBJECT)
		g = &node->u.obj.cls;
	else if (node->kind == PK_GLOBAL)
		g = &node->u.global;
	else
		return false;
	return strcmp(g->module, module) == 0 && strcmp(g->name, name) == 0;
}

const char *pk_digest(const struct pk_node *node, size_t *len)
{
	const struct pk_node *args, *s;

	if (!pk_is_class(node, "fleche.digest", "Digest") || node->kind != PK_OBJECT)
		return NULL;
	args = node->u.obj.args;
	if (!args || args->kind != PK_TUPLE || args->u.seq.n != 1 || node->u.obj.kwargs)
		return NULL;
	s = args->u.seq.items[0];
	if (s->kind != PK_STR)
		return NULL;
	if (len)
		*len = s->u.str.len;
	return s->u.str.ptr;
}

const struct pk_node *pk_dict_get(const struct pk_node *dict, const char *key)
{
	if (!dict || dict->kind != PK_DICT)
		return NULL;
	/* the last of repeated keys wins, as in a Python dict */
	for (size_t i = dict->u.dict.n; i-- > 0;)
		if (pk_streq(dict->u.dict.keys[i], key))
			return dict->u.dict.values[i];
	return NULL;
}

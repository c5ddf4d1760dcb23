/*
 * test_pickle: unit tests of the safe pickle reader (server/pickle.c): every file of
 * the real fleche caches in the fixtures (gzip undone with zlib, HMAC trailers cut
 * at pk_find_end), hand-written streams for the opcodes and classes the reader folds
 * into typed nodes, and hostile input: truncation at every byte, unknown opcodes,
 * huge declared lengths, deep nesting, memo and stack misuse, limits; and every seed
 * of the pickle fuzz corpus walked once per node (pk_walk.h).
 */
#include "pickle.h"
#include "check.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <zlib.h>

#include "pk_walk.h"

/* A string literal as (bytes, length), NULs included. */
#define LIT(s) (const uint8_t *)(s), sizeof(s) - 1

static char err[256];

static struct pk_doc *parse_ok_at(const uint8_t *buf, size_t len, int line)
{
	struct pk_doc *doc = NULL;
	size_t end = 0;
	int rc = pk_parse(buf, len, NULL, &doc, &end, err, sizeof(err));

	checks++;
	if (rc < 0 || end != len) {
		failures++;
		fprintf(stderr, "%s:%d: parse failed (%d, end %zu of %zu): %s\n", __FILE__, line,
		        rc, end, len, err);
		pk_doc_free(doc);
		return NULL;
	}
	return doc;
}
#define parse_ok(...) parse_ok_at(__VA_ARGS__, __LINE__)

/* Expects failure code want and a message naming an offset. */
static void parse_bad_at(const uint8_t *buf, size_t len, const struct pk_limits *lim, int want,
                         int line)
{
	struct pk_doc *doc = NULL;
	size_t end = 0;
	int rc = pk_parse(buf, len, lim, &doc, &end, err, sizeof(err));

	checks++;
	if (rc != want || doc || !strstr(err, "offset")) {
		failures++;
		fprintf(stderr, "%s:%d: expected error %d, got %d (%s)\n", __FILE__, line, want, rc,
		        err);
	}
	pk_doc_free(doc);
}
/* two levels, so that LIT() expands into its two arguments first */
#define parse_bad(...)                  parse_bad_x(__VA_ARGS__)
#define parse_bad_x(buf, len, want)     parse_bad_at(buf, len, NULL, want, __LINE__)
#define parse_bad_lim(buf, len, lim, w) parse_bad_at(buf, len, lim, w, __LINE__)

static bool str_is(const struct pk_node *n, enum pk_kind kind, const char *s, size_t len)
{
	return n && n->kind == kind && n->u.str.len == len && memcmp(n->u.str.ptr, s, len) == 0;
}

static bool big_is(const struct pk_node *n, const char *digits)
{
	return n && n->kind == PK_BIGINT && n->u.big.len == strlen(digits) &&
	       memcmp(n->u.big.ptr, digits, n->u.big.len) == 0;
}

static const struct pk_node *root_of(struct pk_doc *doc)
{
	return doc ? pk_doc_root(doc) : NULL;
}

/* ---------------------------------------------------------------- scalars */

static void test_scalars(void)
{
	struct pk_doc *d;
	const struct pk_node *r;

	d = parse_ok(LIT("I01\n."));
	r = root_of(d);
	CHECK(r && r->kind == PK_BOOL && r->u.b);
	pk_doc_free(d);
	d = parse_ok(LIT("I00\n."));
	r = root_of(d);
	CHECK(r && r->kind == PK_BOOL && !r->u.b);
	pk_doc_free(d);
	d = parse_ok(LIT("I-42\n."));
	r = root_of(d);
	CHECK(r && r->kind == PK_INT && r->u.i == -42);
	pk_doc_free(d);
	d = parse_ok(LIT("I9223372036854775808\n."));
	CHECK(big_is(root_of(d), "9223372036854775808"));
	pk_doc_free(d);
	d = parse_ok(LIT("L-9223372036854775808L\n."));
	r = root_of(d);
	CHECK(r && r->kind == PK_INT && r->u.i == INT64_MIN);
	pk_doc_free(d);
	d = parse_ok(LIT("L-000123456789012345678901234567890L\n."));
	CHECK(big_is(root_of(d), "-123456789012345678901234567890"));
	pk_doc_free(d);
	parse_bad(LIT("I12a\n."), -EBADMSG);
	parse_bad(LIT("L\n."), -EBADMSG);

	/* binary ints */
	d = parse_ok(LIT("\x80\x02J\xff\xff\xff\xff."));
	r = root_of(d);
	CHECK(r && r->kind == PK_INT && r->u.i == -1);
	pk_doc_free(d);
	d = parse_ok(LIT("\x80\x02M\xff\xff."));
	r = root_of(d);
	CHECK(r && r->kind == PK_INT && r->u.i == 65535);
	pk_doc_free(d);
	d = parse_ok(LIT("\x80\x02\x8a\x08\xff\xff\xff\xff\xff\xff\xff\x7f."));
	r = root_of(d);
	CHECK(r && r->kind == PK_INT && r->u.i == INT64_MAX);
	pk_doc_free(d);
	d = parse_ok(LIT("\x80\x02\x8a\x00."));
	r = root_of(d);
	CHECK(r && r->kind == PK_INT && r->u.i == 0);
	pk_doc_free(d);
	d = parse_ok(LIT("\x80\x02\x8a\x01\xff."));
	r = root_of(d);
	CHECK(r && r->kind == PK_INT && r->u.i == -1);
	pk_doc_free(d);
	/* the vectors below are what Python's pickle writes for these ints */
	d = parse_ok(LIT("\x80\x02\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x01."));
	CHECK(big_is(root_of(d), "18446744073709551616"));
	pk_doc_free(d);
	d = parse_ok(LIT("\x80\x02\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\xff."));
	CHECK(big_is(root_of(d), "-18446744073709551616"));
	pk_doc_free(d);
	d = parse_ok(LIT("\x80\x02\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x80."));
	CHECK(big_is(root_of(d), "-2361183241434822606848"));
	pk_doc_free(d);
	d = parse_ok(LIT("\x80\x02\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x80\x00."));
	CHECK(big_is(root_of(d), "9223372036854775808"));
	pk_doc_free(d);
	d = parse_ok(LIT("\x80\x02\x8a\x09\xff\xff\xff\xff\xff\xff\xff\x7f\xff."));
	CHECK(big_is(root_of(d), "-9223372036854775809"));
	pk_doc_free(d);
	d = parse_ok(LIT("\x80\x02\x8a\x11\x07\x00\x00\x00\x00\x61\xf5\xb9\xab\xbf\xa4\x5c\xc3\xf1"
	                 "\x29\x63\x1d."));
	CHECK(big_is(root_of(d), "10000000000000000000000000000000000000007"));
	pk_doc_free(d);
	d = parse_ok(LIT("\x80\x02\x8a\x10\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
	                 "\x00\x80."));
	CHECK(big_is(root_of(d), "-170141183460469231731687303715884105728"));
	pk_doc_free(d);
	/* non-minimal encodings of small values still give PK_INT */
	d = parse_ok(LIT("\x80\x02\x8a\x0a\x05\x00\x00\x00\x00\x00\x00\x00\x00\x00."));
	r = root_of(d);
	CHECK(r && r->kind == PK_INT && r->u.i == 5);
	pk_doc_free(d);
	parse_bad(LIT("\x80\x02\x8b\xff\xff\xff\xff."), -EBADMSG); /* negative LONG4 length */

	/* floats */
	d = parse_ok(LIT("F1.5\n."));
	r = root_of(d);
	CHECK(r && r->kind == PK_FLOAT && r->u.f == 1.5);
	pk_doc_free(d);
	d = parse_ok(LIT("F-0.0\n."));
	r = root_of(d);
	CHECK(r && r->kind == PK_FLOAT && r->u.f == 0 && signbit(r->u.f));
	pk_doc_free(d);
	d = parse_ok(LIT("Fnan\n."));
	r = root_of(d);
	CHECK(r && r->kind == PK_FLOAT && isnan(r->u.f));
	pk_doc_free(d);
	d = parse_ok(LIT("F-inf\n."));
	r = root_of(d);
	CHECK(r && r->kind == PK_FLOAT && isinf(r->u.f) && r->u.f < 0);
	pk_doc_free(d);
	d = parse_ok(LIT("F0.1\n."));
	r = root_of(d);
	CHECK(r && r->kind == PK_FLOAT && r->u.f == 0.1);
	pk_doc_free(d);
	parse_bad(LIT("F1,5\n."), -EBADMSG);
	parse_bad(LIT("F\n."), -EBADMSG);
	d = parse_ok(LIT("\x80\x02G?\xf8\x00\x00\x00\x00\x00\x00."));
	r = root_of(d);
	CHECK(r && r->kind == PK_FLOAT && r->u.f == 1.5);
	pk_doc_free(d);
	d = parse_ok(LIT("\x80\x02N\x88\x89\x87."));
	r = root_of(d);
	CHECK(r && r->kind == PK_TUPLE && r->u.seq.n == 3 && r->u.seq.items[0]->kind == PK_NONE &&
	      r->u.seq.items[1]->u.b && !r->u.seq.items[2]->u.b);
	pk_doc_free(d);
}

/* ---------------------------------------------------------------- text and bytes */

static void test_text(void)
{
	struct pk_doc *d;
	const struct pk_node *r;
	static const uint8_t bin[] = "\x80\x04X\x03\x00\x00\x00\xe2\x82\xac.";

	d = parse_ok(bin, sizeof(bin) - 1);
	r = root_of(d);
	CHECK(str_is(r, PK_STR, "\xe2\x82\xac", 3));
	CHECK(r && r->u.str.offset == 7 && r->u.str.ptr == (const char *)bin + 7);
	pk_doc_free(d);
	parse_bad(LIT("\x80\x04\x8c\x02\xc3\x28."), -EBADMSG); /* invalid UTF-8 */
	parse_bad(LIT("\x80\x04\x8c\x02\xc0\x80."), -EBADMSG); /* overlong */
	/* Python writes lone surrogates with surrogatepass: kept as three bytes */
	d = parse_ok(LIT("\x80\x04\x8c\x03\xed\xa0\x80."));
	CHECK(str_is(root_of(d), PK_STR, "\xed\xa0\x80", 3));
	pk_doc_free(d);

	/* protocol 0 UNICODE: raw-unicode-escape */
	d = parse_ok(LIT("V\\u20ac\\u000a\xe9\\U0001f600\n."));
	CHECK(str_is(root_of(d), PK_STR, "\xe2\x82\xac\n\xc3\xa9\xf0\x9f\x98\x80", 10));
	pk_doc_free(d);
	d = parse_ok(LIT("V\\\\u0041\\x\n.")); /* an even run of backslashes is literal */
	CHECK(str_is(root_of(d), PK_STR, "\\\\u0041\\x", 9));
	pk_doc_free(d);
	parse_bad(LIT("V\\u12\n."), -EBADMSG);
	parse_bad(LIT("V\\U00110000\n."), -EBADMSG);

	/* protocol 0 STRING: a quoted repr */
	d = parse_ok(LIT("S'a\\x41\\n\\'\\101\\q'\n."));
	CHECK(str_is(root_of(d), PK_STR, "aA\n'A\\q", 7));
	pk_doc_free(d);
	d = parse_ok(LIT("S\"\\xff\"\n."));
	CHECK(str_is(root_of(d), PK_BYTES, "\xff", 1));
	pk_doc_free(d);
	parse_bad(LIT("S'abc\n."), -EBADMSG);
	parse_bad(LIT("S'\\x4'\n."), -EBADMSG);
	parse_bad(LIT("S'\\'\n."), -EBADMSG);
	d = parse_ok(LIT("U\x03"
	                 "abc."));
	CHECK(str_is(root_of(d), PK_STR, "abc", 3));
	pk_doc_free(d);
	d = parse_ok(LIT("T\x01\x00\x00\x00\x80."));
	CHECK(str_is(root_of(d), PK_BYTES, "\x80", 1));
	pk_doc_free(d);
	parse_bad(LIT("T\xff\xff\xff\xff."), -EBADMSG);

	/* bytes of each protocol */
	d = parse_ok(LIT("\x80\x03"
	                 "C\x02\x00\x01."));
	r = root_of(d);
	CHECK(str_is(r, PK_BYTES, "\x00\x01", 2) && r->u.str.offset == 4);
	pk_doc_free(d);
	d = parse_ok(LIT("\x80\x04\x8e\x01\x00\x00\x00\x00\x00\x00\x00z."));
	CHECK(str_is(root_of(d), PK_BYTES, "z", 1));
	pk_doc_free(d);
	d = parse_ok(LIT("\x80\x05\x96\x01\x00\x00\x00\x00\x00\x00\x00z\x98."));
	r = root_of(d);
	CHECK(str_is(r, PK_BYTEARRAY, "z", 1) && r->u.str.offset == 11);
	pk_doc_free(d);
	/* protocol 2 bytes: _codecs.encode(str, 'latin1') */
	d = parse_ok(LIT("\x80\x02"
	                 "c_codecs\nencode\nq\x00X\x04\x00\x00\x00"
	                 "ab\xc3\xbfq\x01X\x06"
	                 "\x00\x00\x00latin1q\x02\x86q\x03Rq\x04."));
	r = root_of(d);
	CHECK(str_is(r, PK_BYTES, "ab\xff", 3) && r->u.str.offset == SIZE_MAX);
	pk_doc_free(d);
	/* a code point above 255 cannot be latin-1: the call stays opaque */
	d = parse_ok(LIT("c_codecs\nencode\n(V\\u20ac\nVlatin1\ntR."));
	CHECK(pk_is_class(root_of(d), "_codecs", "encode"));
	pk_doc_free(d);
	d = parse_ok(LIT("c__builtin__\nbytearray\n(c_codecs\nencode\n(V\xff\nVlatin1\ntRtR."));
	CHECK(str_is(root_of(d), PK_BYTEARRAY, "\xff", 1));
	pk_doc_free(d);
	d = parse_ok(LIT("c__builtin__\nbytes\n(tR."));
	CHECK(str_is(root_of(d), PK_BYTES, "", 0));
	pk_doc_free(d);
}

/* ---------------------------------------------------------------- containers, classes */

static void test_containers(void)
{
	struct pk_doc *d;
	const struct pk_node *r, *v;

	/* set from a protocol 0 REDUCE of __builtin__.set */
	d = parse_ok(LIT("c__builtin__\nset\n((I1\nI2\nltR."));
	r = root_of(d);
	CHECK(r && r->kind == PK_SET && r->u.seq.n == 2 && r->u.seq.items[1]->u.i == 2);
	pk_doc_free(d);
	d = parse_ok(LIT("\x80\x04\x8f(K\x01K\x02\x90(K\x03\x91\x86."));
	r = root_of(d);
	CHECK(r && r->kind == PK_TUPLE && r->u.seq.items[0]->kind == PK_SET &&
	      r->u.seq.items[0]->u.seq.n == 2 && r->u.seq.items[1]->kind == PK_FROZENSET);
	pk_doc_free(d);
	d = parse_ok(LIT("c__builtin__\ncomplex\n(F1.0\nF-2.5\ntR."));
	r = root_of(d);
	CHECK(r && r->kind == PK_COMPLEX && r->u.cplx.re == 1.0 && r->u.cplx.im == -2.5);
	pk_doc_free(d);
	/* dict, DICT, SETITEM, SETITEMS, BUILD merging into a dict */
	d = parse_ok(LIT("(S'a'\nI1\ndp0\nS'b'\nI2\nsg0\n(dS'c'\nI3\nsb."));
	r = root_of(d);
	CHECK(r && r->kind == PK_DICT && r->u.dict.n == 3 && !r->u.dict.cls);
	v = pk_dict_get(r, "c");
	CHECK(v && v->kind == PK_INT && v->u.i == 3);
	CHECK(!pk_dict_get(r, "z"));
	pk_doc_free(d);
	/* defaultdict and OrderedDict keep their class; SETITEMS fill them */
	d = parse_ok(LIT("\x80\x02"
	                 "ccollections\nOrderedDict\nq\x00)Rq\x01X\x01\x00\x00\x00"
	                 "aK\x01s."));
	r = root_of(d);
	CHECK(r && r->kind == PK_DICT && r->u.dict.cls &&
	      strcmp(r->u.dict.cls, "collections.OrderedDict") == 0 && r->u.dict.n == 1);
	pk_doc_free(d);
	d = parse_ok(
	    LIT("ccollections\ndefaultdict\np0\n(c__builtin__\nlist\np1\ntp2\nRp3\nVa\np4\nI1\n"
	        "s."));
	r = root_of(d);
	CHECK(r && r->kind == PK_DICT && r->u.dict.cls &&
	      strcmp(r->u.dict.cls, "collections.defaultdict") == 0 && pk_dict_get(r, "a"));
	/* ... and a defaultdict its default_factory */
	CHECK(r && r->u.dict.factory && pk_is_class(r->u.dict.factory, "builtins", "list"));
	pk_doc_free(d);
	/* dill names a builtin type by its name: the type itself */
	d = parse_ok(LIT("\x80\x04" "cdill._dill\n_load_type\nX\x09\x00\x00\x00"
	                 "bytearray\x85R"
	                 "C\x02" "hi\x85R."));
	r = root_of(d);
	CHECK(r && r->kind == PK_BYTEARRAY && r->u.str.len == 2);
	pk_doc_free(d);
	/* cloudpickle's _class_setstate(cls, state) is cls's BUILD; it returns None */
	d = parse_ok(LIT("\x80\x04" "cmod\nskeleton\n)Rq\x00"
	                 "ccloudpickle.cloudpickle\n_class_setstate\nh\x00}N\x86\x86R0."));
	r = root_of(d);
	CHECK(r && r->kind == PK_OBJECT && r->u.obj.state && r->u.obj.state->kind == PK_TUPLE);
	pk_doc_free(d);
	/* self-reference: a list appended to itself */
	d = parse_ok(LIT("\x80\x02]q\x00h\x00"
	                 "a."));
	r = root_of(d);
	CHECK(r && r->kind == PK_LIST && r->u.seq.n == 1 && r->u.seq.items[0] == r);
	pk_doc_free(d);
	/* DUP, POP, POP_MARK */
	d = parse_ok(LIT("\x80\x02K\x01\x32\x86(K\x02\x31K\x03\x30."));
	r = root_of(d);
	CHECK(r && r->kind == PK_TUPLE && r->u.seq.n == 2 &&
	      r->u.seq.items[0] == r->u.seq.items[1]);
	pk_doc_free(d);
	/* a dict BUILT with itself as the state (found by the fuzzer) */
	d = parse_ok(LIT("}(K\x01K\x02u2b."));
	r = root_of(d);
	CHECK(r && r->kind == PK_DICT && r->u.dict.n == 2 && r->u.dict.values[1]->u.i == 2);
	pk_doc_free(d);
	d = parse_ok(LIT("K\x07(0.")); /* POP with nothing above the mark pops the mark */
	r = root_of(d);
	CHECK(r && r->kind == PK_INT && r->u.i == 7);
	pk_doc_free(d);
}

static void test_objects(void)
{
	struct pk_doc *d;
	const struct pk_node *r;
	size_t len;
	const char *s;

	/* copyreg._reconstructor(cls, object, None) + BUILD */
	d = parse_ok(LIT("ccopy_reg\n_reconstructor\n(c__main__\nP\nc__builtin__\nobject\nNtR"
	                 "(dS'x'\nI1\nsb."));
	r = root_of(d);
	CHECK(pk_is_class(r, "__main__", "P") && r->kind == PK_OBJECT);
	CHECK(r && r->u.obj.args->kind == PK_TUPLE && r->u.obj.args->u.seq.n == 0);
	CHECK(r && pk_dict_get(r->u.obj.state, "x"));
	pk_doc_free(d);
	/* INST and OBJ */
	d = parse_ok(LIT("(I1\ni__main__\nC\n."));
	r = root_of(d);
	CHECK(pk_is_class(r, "__main__", "C") && r->u.obj.args->u.seq.n == 1);
	pk_doc_free(d);
	d = parse_ok(LIT("\x80\x01(c__main__\nC\nK\x02o."));
	r = root_of(d);
	CHECK(pk_is_class(r, "__main__", "C") && r->u.obj.args->u.seq.items[0]->u.i == 2);
	pk_doc_free(d);
	/* NEWOBJ_EX keeps kwargs; a second BUILD replaces the state; APPENDS and SETITEMS
	 * onto an object fill listitems and dictitems */
	d = parse_ok(LIT("\x80\x04\x8c\x01m\x8c\x01"
	                 "C\x93)}\x92K\x01"
	                 "bK\x02"
	                 "b(K\x03"
	                 "e(K\x04K\x05u."));
	r = root_of(d);
	CHECK(pk_is_class(r, "m", "C") && r->u.obj.kwargs && r->u.obj.kwargs->kind == PK_DICT);
	CHECK(r && r->u.obj.state && r->u.obj.state->u.i == 2);
	CHECK(r && r->u.obj.listitems && r->u.obj.listitems->u.seq.n == 1);
	CHECK(r && r->u.obj.dictitems && r->u.obj.dictitems->u.dict.n == 1);
	pk_doc_free(d);
	/* a computed callable: REDUCE of a REDUCE result */
	d = parse_ok(LIT("\x80\x02"
	                 "cbuiltins\ngetattr\nK\x01X\x04\x00\x00\x00real\x86R)R."));
	r = root_of(d);
	CHECK(r && r->kind == PK_OBJECT && r->u.obj.cls.module[0] == 0 && r->u.obj.callable &&
	      pk_is_class(r->u.obj.callable, "builtins", "getattr"));
	pk_doc_free(d);
	/* Digest: NEWOBJ of fleche.digest.Digest with a one-str tuple */
	d = parse_ok(LIT("\x80\x04\x8c\x0d"
	                 "fleche.digest\x8c\x06"
	                 "Digest\x93\x8c\x04"
	                 "abcd\x85\x81."));
	s = pk_digest(root_of(d), &len);
	CHECK(s && len == 4 && memcmp(s, "abcd", 4) == 0);
	pk_doc_free(d);
	d = parse_ok(LIT("\x80\x04\x8c\x0d"
	                 "fleche.digest\x8c\x06"
	                 "Digest\x93K\x01\x85\x81."));
	CHECK(!pk_digest(root_of(d), &len));
	pk_doc_free(d);
	/* extension codes are opaque globals */
	d = parse_ok(LIT("\x80\x02\x82\x05."));
	r = root_of(d);
	CHECK(r && r->kind == PK_GLOBAL && strcmp(r->u.global.name, "5") == 0);
	pk_doc_free(d);
	/* __builtin__ names map to builtins */
	d = parse_ok(LIT("c__builtin__\nxrange\n."));
	CHECK(pk_is_class(root_of(d), "builtins", "range"));
	pk_doc_free(d);
}

/* ---------------------------------------------------------------- hostile input */

static void test_hostile(void)
{
	struct pk_limits lim;
	struct pk_doc *d;
	uint8_t *buf;
	size_t n, end;

	parse_bad(LIT(""), -EBADMSG);
	parse_bad(LIT("\xff."), -EBADMSG);
	parse_bad(LIT("\x80\x06N."), -EBADMSG);                                    /* protocol 6 */
	parse_bad(LIT("N"), -EBADMSG);                                             /* no STOP */
	parse_bad(LIT("\x80\x04\x8e\x00\x00\x00\x00\x00\x00\x00\x10."), -EBADMSG); /* 2^60 */
	parse_bad(LIT("\x80\x04\x8e\xff\xff\xff\xff\xff\xff\xff\xff."), -EBADMSG);
	parse_bad(LIT("X\xff\xff\xff\xff."), -EBADMSG);
	parse_bad(LIT("\x80\x05\x96\xf0\xff\xff\xff\xff\xff\xff\x7f."), -EBADMSG);
	parse_bad(LIT("Vabc"), -EBADMSG);                      /* no newline */
	parse_bad(LIT("\x80\x02h\x05."), -EBADMSG);            /* memo unset */
	parse_bad(LIT("\x80\x02Nq\x01h\x00."), -EBADMSG);      /* memo unset */
	parse_bad(LIT("\x80\x02Nr\xff\xff\xff\xff."), -E2BIG); /* memo index beyond limit */
	parse_bad(LIT("Np-1\n."), -EBADMSG);
	parse_bad(LIT("."), -EBADMSG);              /* empty stack at STOP */
	parse_bad(LIT("(."), -EBADMSG);             /* nothing above the mark */
	parse_bad(LIT("a."), -EBADMSG);             /* APPEND underflow */
	parse_bad(LIT("0."), -EBADMSG);             /* POP underflow */
	parse_bad(LIT("1."), -EBADMSG);             /* POP_MARK without MARK */
	parse_bad(LIT("t."), -EBADMSG);             /* TUPLE without MARK */
	parse_bad(LIT("\x80\x02N\x86."), -EBADMSG); /* TUPLE2 underflow */
	parse_bad(LIT("]N(N\x86."), -EBADMSG);      /* TUPLE2 may not cross the mark */
	parse_bad(LIT("R."), -EBADMSG);
	parse_bad(LIT("(e."), -EBADMSG); /* APPENDS with nothing under the mark */
	parse_bad(LIT("}(K\x01K\x02"
	              "e."),
	          -EBADMSG);                        /* APPENDS onto a dict */
	parse_bad(LIT("](K\x01K\x02u."), -EBADMSG); /* SETITEMS onto a list */
	parse_bad(LIT("}(K\x01u."), -EBADMSG);      /* odd SETITEMS */
	parse_bad(LIT("NK\x01s."), -EBADMSG);       /* SETITEM underflow */
	parse_bad(LIT("NNK\x01s."), -EBADMSG);      /* SETITEM onto None */
	parse_bad(LIT("N]R."), -EBADMSG);           /* REDUCE args not a tuple */
	parse_bad(LIT("]K\x01"
	              "b."),
	          -EBADMSG);                       /* BUILD of a list */
	parse_bad(LIT("NN\x93."), -EBADMSG);       /* STACK_GLOBAL of non-str */
	/* a FRAME longer than the data left is truncated input, as CPython's pickle.loads
	 * says ("pickle data was truncated"; 2^63 bytes or more is its OverflowError) */
	parse_bad(LIT("\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x80N."), -EBADMSG);
	parse_bad(LIT("\x80\x04\x95\xff\xff\xff\xff\xff\xff\xff\xffN."), -EBADMSG);
	parse_bad(LIT("\x80\x04\x95\x03\x00\x00\x00\x00\x00\x00\x00N."), -EBADMSG);
	CHECK(strstr(err, "truncated") && strstr(err, "FRAME"));
	CHECK(pk_find_end(LIT("\x80\x04\x95\x03\x00\x00\x00\x00\x00\x00\x00N."), &end) ==
	      -EBADMSG);
	d = parse_ok(LIT("\x80\x04\x95\x02\x00\x00\x00\x00\x00\x00\x00N."));
	CHECK(d && root_of(d)->kind == PK_NONE);
	pk_doc_free(d);
	parse_bad(LIT("Pabc\n."), -EBADMSG);       /* persistent id */
	parse_bad(LIT("\x80\x05\x97."), -EBADMSG); /* out-of-band buffer */
	parse_bad(LIT("\x80\x05\x98."), -EBADMSG); /* READONLY_BUFFER underflow */
	parse_bad(LIT("c__main__\nA\x00"
	              "B\n."),
	          -EBADMSG);

	/* a million MARKs */
	n = 1000000;
	buf = malloc(n + 1);
	CHECK(buf != NULL);
	if (!buf)
		return;
	memset(buf, '(', n);
	buf[n] = '.';
	parse_bad(buf, n + 1, -E2BIG);
	CHECK(pk_find_end(buf, n + 1, &end) == 0 && end == n + 1);
	free(buf);

	/* 400,000 nested lists: EMPTY_LIST x N, APPEND x N-1; fine for the parser (no
	 * recursion), refused under a smaller node limit */
	n = 400000;
	buf = malloc(2 * n);
	CHECK(buf != NULL);
	if (!buf)
		return;
	memset(buf, ']', n);
	memset(buf + n, 'a', n - 1);
	buf[2 * n - 1] = '.';
	d = parse_ok(buf, 2 * n);
	if (d) {
		size_t depth = 0;
		const struct pk_node *r = pk_doc_root(d);
		while (r && r->kind == PK_LIST && r->u.seq.n == 1) {
			r = r->u.seq.items[0];
			depth++;
		}
		CHECK(depth == n - 1 && r && r->kind == PK_LIST && r->u.seq.n == 0);
	}
	pk_doc_free(d);
	pk_limits_default(&lim);
	lim.max_nodes = 1000;
	parse_bad_lim(buf, 2 * n, &lim, -E2BIG);
	free(buf);

	/* arena limit: a decoded protocol 0 string larger than the arena */
	n = 100000;
	buf = malloc(n + 3);
	CHECK(buf != NULL);
	if (!buf)
		return;
	buf[0] = 'V';
	memset(buf + 1, 'x', n);
	buf[n + 1] = '\n';
	buf[n + 2] = '.';
	pk_limits_default(&lim);
	lim.max_arena = 50000;
	parse_bad_lim(buf, n + 3, &lim, -E2BIG);
	d = parse_ok(buf, n + 3);
	CHECK(d && pk_doc_root(d)->u.str.len == n);
	pk_doc_free(d);
	free(buf);

	/* LONG4 beyond the cap; at the cap it converts quickly */
	n = 16385;
	buf = calloc(1, n + 7);
	CHECK(buf != NULL);
	if (!buf)
		return;
	buf[0] = 0x80;
	buf[1] = 2;
	buf[2] = 0x8b;
	buf[3] = (uint8_t)(n & 0xff);
	buf[4] = (uint8_t)(n >> 8);
	buf[7 + n - 1] = '.';
	buf[7 + n - 2] = 0x7f; /* top byte: positive, not redundant */
	parse_bad(buf, n + 7, -E2BIG);
	n = 16384;
	buf[3] = (uint8_t)(n & 0xff);
	buf[4] = (uint8_t)(n >> 8);
	memset(buf + 7, 0xff, n);
	buf[7 + n - 1] = 0x7f;
	buf[7 + n] = '.';
	clock_t t0 = clock();
	d = parse_ok(buf, n + 8);
	double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
	printf("LONG4 of %zu bytes: %zu digits in %.3f s\n", n, d ? pk_doc_root(d)->u.big.len : 0,
	       secs);
	CHECK(d && pk_doc_root(d)->kind == PK_BIGINT && pk_doc_root(d)->u.big.len == 39457);
	CHECK(secs < 2.0);
	pk_doc_free(d);
	free(buf);
}

/* Work that does not allocate is budgeted too: no quadratic time from small input. */
static void test_budgets(void)
{
	size_t n = 100000, reps = 2000, len = 0;
	uint8_t *buf = malloc(64 + n + reps * 7 + 17 * (16384 + 6));
	static const uint8_t head[] = "\x80\x02"
	                              "c_codecs\nencode\nq\x00X";

	CHECK(buf != NULL);
	if (!buf)
		return;
	/* _codecs.encode(<100 kB str ending in a euro sign>, 'latin1') repeated: each
	 * call scans the str and stays opaque */
	memcpy(buf, head, sizeof(head) - 1);
	len = sizeof(head) - 1;
	buf[len++] = (uint8_t)(n & 0xff);
	buf[len++] = (uint8_t)((n >> 8) & 0xff);
	buf[len++] = (uint8_t)(n >> 16);
	buf[len++] = 0;
	memset(buf + len, 'x', n - 3);
	memcpy(buf + len + n - 3, "\xe2\x82\xac", 3);
	len += n;
	memcpy(buf + len, "X\x06\x00\x00\x00latin1\x86q\x01", 14);
	len += 14;
	for (size_t i = 0; i < reps; i++) {
		memcpy(buf + len, "h\x00h\x01R0", 6);
		len += 6;
	}
	buf[len++] = 'N';
	buf[len++] = '.';
	parse_bad(buf, len, -E2BIG);
	/* a single call is fine, and opaque */
	memcpy(buf + sizeof(head) - 1 + 4 + n + 14, "h\x00h\x01R.", 6);
	struct pk_doc *d = parse_ok(buf, sizeof(head) - 1 + 4 + n + 14 + 6);
	CHECK(d && pk_is_class(pk_doc_root(d), "_codecs", "encode"));
	pk_doc_free(d);

	/* five 16 KiB integers exceed the conversion budget */
	len = 0;
	buf[len++] = 0x80;
	buf[len++] = 2;
	for (int i = 0; i < 5; i++) {
		buf[len++] = 0x8b;
		buf[len++] = 0;
		buf[len++] = 0x40;
		buf[len++] = 0;
		buf[len++] = 0;
		memset(buf + len, 0x11, 16384);
		len += 16384;
		buf[len++] = '0';
	}
	buf[len++] = 'N';
	buf[len++] = '.';
	parse_bad(buf, len, -E2BIG);
	free(buf);
}

/* Every prefix of a valid pickle is a clean error, for both pk_parse and pk_find_end. */
static void check_truncations(const uint8_t *buf, size_t len, const char *what)
{
	size_t end, bad = 0;
	struct pk_doc *d;

	for (size_t k = 0; k < len; k++) {
		int rc = pk_parse(buf, k, NULL, &d, &end, err, sizeof(err));
		if (rc != -EBADMSG || d || !strstr(err, "offset"))
			bad++;
		pk_doc_free(d);
		if (pk_find_end(buf, k, &end) != -EBADMSG)
			bad++;
	}
	if (bad)
		fprintf(stderr, "%s: %zu truncations not refused\n", what, bad);
	CHECK(bad == 0);
}

/* ---------------------------------------------------------------- fixtures */

static const char *fixtures_dir(void)
{
	static char path[4096];
	const char *e = getenv("FLECHEFS_FIXTURES");
	struct stat st;

	if (e && stat(e, &st) == 0 && S_ISDIR(st.st_mode))
		return e;
	e = getenv("FLECHEFS_SOURCE");
	if (e) {
		snprintf(path, sizeof(path), "%s/tests/fixtures/real-cache", e);
		if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
			return path;
	}
	return NULL;
}

static int read_file(const char *path, uint8_t **out, size_t *len)
{
	FILE *f = fopen(path, "rb");
	long size;
	uint8_t *b;

	if (!f)
		return -1;
	if (fseek(f, 0, SEEK_END) < 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) < 0 ||
	    !(b = malloc((size_t)size + 1))) {
		fclose(f);
		return -1;
	}
	if (fread(b, 1, (size_t)size, f) != (size_t)size) {
		free(b);
		fclose(f);
		return -1;
	}
	fclose(f);
	*out = b;
	*len = (size_t)size;
	return 0;
}

static int gunzip(const uint8_t *in, size_t len, uint8_t **out, size_t *outlen)
{
	z_stream z;
	size_t cap = len * 4 + 1024, n = 0;
	uint8_t *b = malloc(cap), *nb;
	int rc;

	if (!b)
		return -1;
	memset(&z, 0, sizeof(z));
	if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) {
		free(b);
		return -1;
	}
	z.next_in = (Bytef *)in;
	z.avail_in = (uInt)len;
	do {
		if (n == cap) {
			cap *= 2;
			if (!(nb = realloc(b, cap))) {
				rc = Z_MEM_ERROR;
				break;
			}
			b = nb;
		}
		z.next_out = b + n;
		z.avail_out = (uInt)(cap - n);
		rc = inflate(&z, Z_NO_FLUSH);
		n = cap - z.avail_out;
	} while (rc == Z_OK);
	inflateEnd(&z);
	if (rc != Z_STREAM_END) {
		free(b);
		return -1;
	}
	*out = b;
	*outlen = n;
	return 0;
}

static bool is_hex64(const char *s, size_t len)
{
	if (len != 64)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

static bool value_exists(const char *cachedir, const char *key, size_t len)
{
	char path[4096];
	struct stat st;

	snprintf(path, sizeof(path), "%s/values/%.*s", cachedir, (int)len, key);
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* A call record: a DigestedCall whose digests name value files of the same cache. */
static void check_call_record(const struct pk_node *r, const char *cachedir, const char *file)
{
	const struct pk_node *state, *args, *res, *meta, *name, *rt;
	const char *s;
	size_t len;
	int before = failures;

	CHECK(pk_is_class(r, "fleche.call", "DigestedCall") ||
	      pk_is_class(r, "fleche.call", "Call"));
	if (!r || r->kind != PK_OBJECT)
		return;
	state = r->u.obj.state;
	name = pk_dict_get(state, "name");
	CHECK(name && name->kind == PK_STR && name->u.str.len > 0);
	args = pk_dict_get(state, "arguments");
	CHECK(args && args->kind == PK_DICT);
	for (size_t i = 0; args && args->kind == PK_DICT && i < args->u.dict.n; i++) {
		s = pk_digest(args->u.dict.values[i], &len);
		CHECK(args->u.dict.keys[i]->kind == PK_STR);
		CHECK(s && is_hex64(s, len) && value_exists(cachedir, s, len));
	}
	res = pk_dict_get(state, "result");
	CHECK(res && (res->kind == PK_NONE || ((s = pk_digest(res, &len)) && is_hex64(s, len) &&
	                                       value_exists(cachedir, s, len))));
	meta = pk_dict_get(state, "metadata");
	CHECK(meta && meta->kind == PK_DICT);
	rt = pk_dict_get(pk_dict_get(meta, "runtime"), "timestop");
	CHECK(rt && rt->kind == PK_FLOAT && rt->u.f > 1e9);
	if (failures != before)
		fprintf(stderr, "  (in %s)\n", file);
}

static int test_fixtures(void)
{
	static const char *caches[] = {"files", "gzip", "signed", "pickle_sql"};
	static const char *kinds[] = {"calls", "values"};
	const char *root = fixtures_dir();
	size_t nfiles = 0, ncalls = 0, ntrunc = 0;
	struct pk_doc *d = NULL;

	if (!root)
		return -1;
	for (size_t c = 0; c < 4; c++) {
		char cachedir[4096];
		snprintf(cachedir, sizeof(cachedir), "%s/%s", root, caches[c]);
		for (size_t k = 0; k < 2; k++) {
			char dirpath[4200];
			DIR *dir;
			struct dirent *de;
			snprintf(dirpath, sizeof(dirpath), "%s/%s", cachedir, kinds[k]);
			if (!(dir = opendir(dirpath)))
				continue;
			while ((de = readdir(dir))) {
				char path[4500];
				uint8_t *raw = NULL, *plain = NULL, *pk;
				size_t rawlen, len, end = 0, end2 = 0;
				if (de->d_name[0] == '.' || strstr(de->d_name, ".lock"))
					continue;
				snprintf(path, sizeof(path), "%s/%s", dirpath, de->d_name);
				if (read_file(path, &raw, &rawlen) < 0) {
					CHECK(!"cannot read a fixture file");
					continue;
				}
				pk = raw;
				len = rawlen;
				if (rawlen >= 2 && raw[0] == 0x1f && raw[1] == 0x8b) {
					CHECK(gunzip(raw, rawlen, &plain, &len) == 0);
					pk = plain;
				}
				if (pk && pk_find_end(pk, len, &end) == 0) {
					/* nothing after the pickle, or a 64-hex HMAC trailer */
					CHECK(end == len ||
					      (strcmp(caches[c], "signed") == 0 &&
					       is_hex64((const char *)pk + end, len - end)));
					int rc =
					    pk_parse(pk, len, NULL, &d, &end2, err, sizeof(err));
					CHECK(rc == 0 && end2 == end);
					if (rc < 0)
						fprintf(stderr, "%s: %s\n", path, err);
					if (rc == 0 && k == 0) {
						check_call_record(pk_doc_root(d), cachedir, path);
						ncalls++;
					}
					pk_doc_free(d);
					d = NULL;
					if (end < 4096) {
						check_truncations(pk, end, path);
						ntrunc++;
					}
				} else {
					CHECK(!"no pickle end in a fixture file");
					fprintf(stderr, "  %s\n", path);
				}
				nfiles++;
				free(plain);
				free(raw);
			}
			closedir(dir);
		}
	}
	printf("fixtures: %zu files parsed, %zu call records checked, %zu truncated at every "
	       "byte\n",
	       nfiles, ncalls, ntrunc);
	CHECK(nfiles > 100 && ncalls > 20);
	return 0;
}

/* Parsing a ~700-byte call record takes microseconds. */
static void test_speed(void)
{
	const char *root = fixtures_dir();
	char path[4096];
	uint8_t *raw;
	size_t len, end;
	struct pk_doc *d;
	struct timespec t0, t1;
	int iters = 20000;

	if (!root)
		return;
	snprintf(path, sizeof(path),
	         "%s/files/calls/320624223f2a154d69a2371b2e4c07ffce316432dbd30cee6f0aead068082569",
	         root);
	if (read_file(path, &raw, &len) < 0)
		return;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < iters; i++) {
		if (pk_parse(raw, len, NULL, &d, &end, err, sizeof(err)) < 0) {
			CHECK(!"speed parse failed");
			break;
		}
		pk_doc_free(d);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double us =
	    ((double)(t1.tv_sec - t0.tv_sec) * 1e6 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e3) /
	    iters;
	printf("a %zu-byte call record parses in %.2f us\n", len, us);
	CHECK(us < 500); /* generous: sanitizer builds are slower */
	free(raw);
}

/*
 * Every seed of the pickle fuzz corpus parses under the harness's limits and its graph
 * walks in one visit per node. One seed shares dicts into one another so that a walk
 * following every reference would take 2^n steps: the walk must visit at most as many
 * nodes as the reader may make.
 */
static void test_corpus_walk(void)
{
	const char *src = getenv("FLECHEFS_SOURCE");
	char dir[4096], path[4400];
	struct dirent *e;
	bool dag_seen = false;
	DIR *d;

	snprintf(dir, sizeof(dir), "%s/tests/fuzz/corpus-pickle", src ? src : ".");
	d = opendir(dir);
	CHECK(d != NULL);
	if (!d)
		return;
	while ((e = readdir(d))) {
		struct pk_limits lim;
		struct pk_doc *doc = NULL;
		struct pk_walk w = {0};
		uint8_t *buf;
		size_t len, end;
		int rc;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (read_file(path, &buf, &len) != 0)
			continue;
		/* the limits of tests/fuzz/fuzz_pickle.c */
		pk_limits_default(&lim);
		lim.max_nodes = 100000;
		lim.max_memo = 10000;
		lim.max_depth = 1000;
		lim.max_arena = 16 << 20;
		if (pk_parse(buf, len, &lim, &doc, &end, err, sizeof(err)) == 0) {
			rc = pk_walk_graph(pk_doc_root(doc), lim.max_nodes, &w);
			checks++;
			if (rc != 0 || w.nodes == 0 || w.nodes > lim.max_nodes + 3) {
				failures++;
				fprintf(stderr, "walk of %s: %d, %zu nodes, %zu references\n",
				        e->d_name, rc, w.nodes, w.edges);
			}
			if (strcmp(e->d_name, "regress-shared-dag") == 0) {
				dag_seen = true;
				printf("%s: %zu nodes, %zu references, walked once each\n",
				       e->d_name, w.nodes, w.edges);
			}
		}
		pk_doc_free(doc);
		free(buf);
	}
	closedir(d);
	CHECK(dag_seen);
}

int main(void)
{
	test_scalars();
	test_text();
	test_containers();
	test_objects();
	test_hostile();
	test_budgets();
	test_corpus_walk();
	if (test_fixtures() < 0) {
		if (getenv("CI") && strcmp(getenv("CI"), "true") == 0) {
			fprintf(stderr, "fixtures missing and CI=true\n");
			return 1;
		}
		printf("fixtures not found: fixture checks skipped\n");
	}
	test_speed();
	return check_report("test_pickle");
}

/*
 * test_views.c: unit tests of the value views (server/views.c, view_json.c, npy.c), run
 * in the sanitizer build too (the end-to-end tests in tests/e2e/test_views_*.py are
 * not): the json emitter on pickles made by Python (every tag of PROTOCOL.md section
 * 6.1, text compared with the specified form), a value that contains itself, the
 * NPY header of a Fortran-order array compared with the bytes numpy.save wrote for
 * it, and srv_view_render on a copy of the fixture's "files" cache: a destructured
 * dict resolved through the cache, an npy view whose data points into the stored
 * stream (no copy), a json view found again in the json cache, and ENOTSUP; the
 * json and txt views of standard types and of classes pickled by value, including
 * malformed forms that must stay plain objects.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache.h"
#include "npy.h"
#include "pickle.h"
#include "pystd.h"
#include "views.h"
#include "check.h"
#include "pk_parse_test.h"

/* Pickles written by Python 3.11 (tests/e2e/test_views_generated.py checks the same
 * mapping against Python on many more values):
 *   PK_MIXED      pickle.dumps({'a': [1, 2.5, None, True], 'b': (1,), 'big': -10**30,
 *                 'n': float('nan'), 's': {3}, 'c': 1-2j, 'by': b'hi', 'e': []}, 2)
 *   PK_DICT_TAGS  pickle.dumps({3: 'x', '$k': 1.0}, 4)
 *   PK_SELF       l = []; l.append(l); pickle.dumps(l, 2)
 *   PK_FORTRAN    pickle.dumps(np.asfortranarray(np.arange(6, dtype='<i2')
 *                 .reshape(2, 3)), 4)
 */
static const char PK_MIXED[] =
    "\x80\x02\x7d\x71\x00\x28\x58\x01\x00\x00\x00\x61\x71\x01\x5d\x71\x02\x28\x4b\x01\x47\x40"
    "\x04\x00\x00\x00\x00\x00\x00\x4e\x88\x65\x58\x01\x00\x00\x00\x62\x71\x03\x4b\x01\x85\x71"
    "\x04\x58\x03\x00\x00\x00\x62\x69\x67\x71\x05\x8a\x0d\x00\x00\x00\xc0\x15\x12\x8b\xb9\x2f"
    "\x63\xd3\x60\xf3\x58\x01\x00\x00\x00\x6e\x71\x06\x47\x7f\xf8\x00\x00\x00\x00\x00\x00\x58"
    "\x01\x00\x00\x00\x73\x71\x07\x63\x5f\x5f\x62\x75\x69\x6c\x74\x69\x6e\x5f\x5f\x0a\x73\x65"
    "\x74\x0a\x71\x08\x5d\x71\x09\x4b\x03\x61\x85\x71\x0a\x52\x71\x0b\x58\x01\x00\x00\x00\x63"
    "\x71\x0c\x63\x5f\x5f\x62\x75\x69\x6c\x74\x69\x6e\x5f\x5f\x0a\x63\x6f\x6d\x70\x6c\x65\x78"
    "\x0a\x71\x0d\x47\x3f\xf0\x00\x00\x00\x00\x00\x00\x47\xc0\x00\x00\x00\x00\x00\x00\x00\x86"
    "\x71\x0e\x52\x71\x0f\x58\x02\x00\x00\x00\x62\x79\x71\x10\x63\x5f\x63\x6f\x64\x65\x63\x73"
    "\x0a\x65\x6e\x63\x6f\x64\x65\x0a\x71\x11\x58\x02\x00\x00\x00\x68\x69\x71\x12\x58\x06\x00"
    "\x00\x00\x6c\x61\x74\x69\x6e\x31\x71\x13\x86\x71\x14\x52\x71\x15\x58\x01\x00\x00\x00\x65"
    "\x71\x16\x5d\x71\x17\x75\x2e";

static const char PK_DICT_TAGS[] =
    "\x80\x04\x95\x19\x00\x00\x00\x00\x00\x00\x00\x7d\x94\x28\x4b\x03\x8c\x01\x78\x94\x8c\x02"
    "\x24\x6b\x94\x47\x3f\xf0\x00\x00\x00\x00\x00\x00\x75\x2e";

/* pickle.dumps('a\ud800b\udfff', protocol=4): lone surrogates, stored surrogatepass */
static const char PK_SURROGATES[] = "\x80\x04\x95\x0c\x00\x00\x00\x00\x00\x00\x00\x8c\x08"
                                    "a\xed\xa0\x80"
                                    "b\xed\xbf\xbf\x94.";

static const char PK_SELF[] = "\x80\x02\x5d\x71\x00\x68\x00\x61\x2e";

static const char PK_FORTRAN[] =
    "\x80\x04\x95\x96\x00\x00\x00\x00\x00\x00\x00\x8c\x15\x6e\x75\x6d\x70\x79\x2e\x63\x6f\x72"
    "\x65\x2e\x6d\x75\x6c\x74\x69\x61\x72\x72\x61\x79\x94\x8c\x0c\x5f\x72\x65\x63\x6f\x6e\x73"
    "\x74\x72\x75\x63\x74\x94\x93\x94\x8c\x05\x6e\x75\x6d\x70\x79\x94\x8c\x07\x6e\x64\x61\x72"
    "\x72\x61\x79\x94\x93\x94\x4b\x00\x85\x94\x43\x01\x62\x94\x87\x94\x52\x94\x28\x4b\x01\x4b"
    "\x02\x4b\x03\x86\x94\x68\x03\x8c\x05\x64\x74\x79\x70\x65\x94\x93\x94\x8c\x02\x69\x32\x94"
    "\x89\x88\x87\x94\x52\x94\x28\x4b\x03\x8c\x01\x3c\x94\x4e\x4e\x4e\x4a\xff\xff\xff\xff\x4a"
    "\xff\xff\xff\xff\x4b\x00\x74\x94\x62\x88\x43\x0c\x00\x00\x03\x00\x01\x00\x04\x00\x02\x00"
    "\x05\x00\x94\x74\x94\x62\x2e";

/* numpy.save of the PK_FORTRAN array: its header (128 bytes) and data. */
static const char NPY_FORTRAN[] =
    "\x93NUMPY\x01\x00v\x00{'descr': '<i2', 'fortran_order': True, 'shape': (2, 3), }"
    "                                                           \n"
    "\x00\x00\x03\x00\x01\x00\x04\x00\x02\x00\x05\x00";

/* Pickles assembled opcode by opcode (the forms Python, cloudpickle and dill write,
 * and malformed variants of them):
 *   PK_DT_BAD_MONTH         datetime.datetime(b'...') with month 13
 *   PK_DT_AWARE             datetime(2024, 1, 2, 3, 4, 5, 7, timezone(timedelta(0, 19788)))
 *   PK_UUID_TOO_BIG         a uuid.UUID whose int state is 2**128
 *   PK_RANGE_TEXT           dill._dill._eval_repr('range(1, 2); x')
 *   PK_SETSTATE_NOT_OBJECT  cloudpickle's _class_setstate(1, ({},)): not a class, so
 *                           the call stays the object it is
 *   PK_BYVALUE_DATACLASS    a cloudpickle skeleton class with __dataclass_fields__ and
 *                           an instance with the state {'x': 1}
 *   PK_BYVALUE_FUNCTION     a cloudpickle _make_function whose state names it
 *                           __main__.outer.<locals>.f
 *   PK_BYREF_ENUM           getattr(mod.Color, 'RED'), as pickle writes enum members
 *   PK_DT_ZONE              pickle.dumps(datetime(2024, 1, 2, 3, 4, 5,
 *                           tzinfo=zoneinfo.ZoneInfo('Europe/Berlin')), 4)
 *   PK_BYREF_PRIVATE        getattr(mod.Color, '_private'): not read as a member
 */
static const char PK_DT_BAD_MONTH[] =
    "\x80\x04\x63\x64\x61\x74\x65\x74\x69\x6d\x65\x0a\x64\x61\x74\x65\x74\x69\x6d\x65"
    "\x0a\x43\x0a\x07\xe8\x0d\x01\x00\x00\x00\x00\x00\x00\x85\x52\x2e";
static const char PK_DT_AWARE[] =
    "\x80\x04\x63\x64\x61\x74\x65\x74\x69\x6d\x65\x0a\x64\x61\x74\x65\x74\x69\x6d\x65"
    "\x0a\x28\x43\x0a\x07\xe8\x01\x02\x03\x04\x05\x00\x00\x07\x63\x64\x61\x74\x65\x74"
    "\x69\x6d\x65\x0a\x74\x69\x6d\x65\x7a\x6f\x6e\x65\x0a\x63\x64\x61\x74\x65\x74\x69"
    "\x6d\x65\x0a\x74\x69\x6d\x65\x64\x65\x6c\x74\x61\x0a\x4b\x00\x4d\x4c\x4d\x4b\x00"
    "\x87\x52\x85\x52\x74\x52\x2e";
static const char PK_UUID_TOO_BIG[] =
    "\x80\x04\x63\x63\x6f\x70\x79\x72\x65\x67\x0a\x5f\x5f\x6e\x65\x77\x6f\x62\x6a\x5f"
    "\x5f\x0a\x63\x75\x75\x69\x64\x0a\x55\x55\x49\x44\x0a\x85\x52\x7d\x58\x03\x00\x00"
    "\x00\x69\x6e\x74\x8a\x11\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
    "\x00\x00\x01\x73\x62\x2e";
static const char PK_RANGE_TEXT[] =
    "\x80\x04\x63\x64\x69\x6c\x6c\x2e\x5f\x64\x69\x6c\x6c\x0a\x5f\x65\x76\x61\x6c\x5f"
    "\x72\x65\x70\x72\x0a\x58\x0e\x00\x00\x00\x72\x61\x6e\x67\x65\x28\x31\x2c\x20\x32"
    "\x29\x3b\x20\x78\x85\x52\x2e";
static const char PK_SETSTATE_NOT_OBJECT[] =
    "\x80\x04\x63\x63\x6c\x6f\x75\x64\x70\x69\x63\x6b\x6c\x65\x2e\x63\x6c\x6f\x75\x64"
    "\x70\x69\x63\x6b\x6c\x65\x0a\x5f\x63\x6c\x61\x73\x73\x5f\x73\x65\x74\x73\x74\x61"
    "\x74\x65\x0a\x4b\x01\x7d\x85\x86\x52\x2e";
static const char PK_BYVALUE_DATACLASS[] =
    "\x80\x04\x63\x63\x6c\x6f\x75\x64\x70\x69\x63\x6b\x6c\x65\x2e\x63\x6c\x6f\x75\x64"
    "\x70\x69\x63\x6b\x6c\x65\x0a\x5f\x6d\x61\x6b\x65\x5f\x73\x6b\x65\x6c\x65\x74\x6f"
    "\x6e\x5f\x63\x6c\x61\x73\x73\x0a\x28\x63\x62\x75\x69\x6c\x74\x69\x6e\x73\x0a\x74"
    "\x79\x70\x65\x0a\x58\x01\x00\x00\x00\x50\x63\x62\x75\x69\x6c\x74\x69\x6e\x73\x0a"
    "\x6f\x62\x6a\x65\x63\x74\x0a\x85\x7d\x58\x0a\x00\x00\x00\x5f\x5f\x6d\x6f\x64\x75"
    "\x6c\x65\x5f\x5f\x58\x08\x00\x00\x00\x5f\x5f\x6d\x61\x69\x6e\x5f\x5f\x73\x58\x02"
    "\x00\x00\x00\x69\x64\x4e\x74\x52\x71\x00\x63\x63\x6c\x6f\x75\x64\x70\x69\x63\x6b"
    "\x6c\x65\x2e\x63\x6c\x6f\x75\x64\x70\x69\x63\x6b\x6c\x65\x0a\x5f\x63\x6c\x61\x73"
    "\x73\x5f\x73\x65\x74\x73\x74\x61\x74\x65\x0a\x68\x00\x7d\x58\x14\x00\x00\x00\x5f"
    "\x5f\x64\x61\x74\x61\x63\x6c\x61\x73\x73\x5f\x66\x69\x65\x6c\x64\x73\x5f\x5f\x7d"
    "\x73\x7d\x86\x86\x52\x30\x29\x81\x7d\x58\x01\x00\x00\x00\x78\x4b\x01\x73\x62\x2e";
static const char PK_BYVALUE_FUNCTION[] =
    "\x80\x04\x63\x63\x6c\x6f\x75\x64\x70\x69\x63\x6b\x6c\x65\x2e\x63\x6c\x6f\x75\x64"
    "\x70\x69\x63\x6b\x6c\x65\x0a\x5f\x6d\x61\x6b\x65\x5f\x66\x75\x6e\x63\x74\x69\x6f"
    "\x6e\x0a\x28\x4e\x7d\x58\x01\x00\x00\x00\x66\x4e\x4e\x74\x52\x71\x00\x63\x63\x6c"
    "\x6f\x75\x64\x70\x69\x63\x6b\x6c\x65\x2e\x63\x6c\x6f\x75\x64\x70\x69\x63\x6b\x6c"
    "\x65\x0a\x5f\x66\x75\x6e\x63\x74\x69\x6f\x6e\x5f\x73\x65\x74\x73\x74\x61\x74\x65"
    "\x0a\x68\x00\x7d\x7d\x58\x0c\x00\x00\x00\x5f\x5f\x71\x75\x61\x6c\x6e\x61\x6d\x65"
    "\x5f\x5f\x58\x10\x00\x00\x00\x6f\x75\x74\x65\x72\x2e\x3c\x6c\x6f\x63\x61\x6c\x73"
    "\x3e\x2e\x66\x73\x58\x0a\x00\x00\x00\x5f\x5f\x6d\x6f\x64\x75\x6c\x65\x5f\x5f\x58"
    "\x08\x00\x00\x00\x5f\x5f\x6d\x61\x69\x6e\x5f\x5f\x73\x86\x86\x52\x30\x2e";
static const char PK_BYREF_ENUM[] =
    "\x80\x04\x63\x62\x75\x69\x6c\x74\x69\x6e\x73\x0a\x67\x65\x74\x61\x74\x74\x72\x0a"
    "\x63\x6d\x6f\x64\x0a\x43\x6f\x6c\x6f\x72\x0a\x58\x03\x00\x00\x00\x52\x45\x44\x86"
    "\x52\x2e";

static const char PK_DT_ZONE[] =
    "\x80\x04\x95\x7f\x00\x00\x00\x00\x00\x00\x00\x8c\x08\x64\x61\x74\x65\x74\x69\x6d"
    "\x65\x94\x8c\x08\x64\x61\x74\x65\x74\x69\x6d\x65\x94\x93\x94\x43\x0a\x07\xe8\x01"
    "\x02\x03\x04\x05\x00\x00\x00\x94\x8c\x08\x62\x75\x69\x6c\x74\x69\x6e\x73\x94\x8c"
    "\x07\x67\x65\x74\x61\x74\x74\x72\x94\x93\x94\x8c\x08\x7a\x6f\x6e\x65\x69\x6e\x66"
    "\x6f\x94\x8c\x08\x5a\x6f\x6e\x65\x49\x6e\x66\x6f\x94\x93\x94\x8c\x09\x5f\x75\x6e"
    "\x70\x69\x63\x6b\x6c\x65\x94\x86\x94\x52\x94\x8c\x0d\x45\x75\x72\x6f\x70\x65\x2f"
    "\x42\x65\x72\x6c\x69\x6e\x94\x4b\x01\x86\x94\x52\x94\x86\x94\x52\x94\x2e";
static const char PK_BYREF_PRIVATE[] =
    "\x80\x04\x63\x62\x75\x69\x6c\x74\x69\x6e\x73\x0a\x67\x65\x74\x61\x74\x74\x72\x0a"
    "\x63\x6d\x6f\x64\x0a\x43\x6f\x6c\x6f\x72\x0a\x58\x08\x00\x00\x00\x5f\x70\x72\x69"
    "\x76\x61\x74\x65\x86\x52\x2e";

/* Renders a pickle's json view; returns the error code (0 on success), text in out. */
static int json_of(const char *p, size_t len, struct rpc_buf *out, struct srv_error *err)
{
	return json_with(p, len, NULL, NULL, out, err);
}

static void test_json(void)
{
	struct rpc_buf b = RPC_BUF_INIT(1 << 20);
	struct srv_error err;
	const char *want_mixed = "{\n"
	                         "  \"a\": [\n"
	                         "    1,\n"
	                         "    2.5,\n"
	                         "    null,\n"
	                         "    true\n"
	                         "  ],\n"
	                         "  \"b\": [\n"
	                         "    1\n"
	                         "  ],\n"
	                         "  \"big\": -1000000000000000000000000000000,\n"
	                         "  \"n\": {\"$float\": \"nan\"},\n"
	                         "  \"s\": {\n"
	                         "    \"$set\": [\n"
	                         "      3\n"
	                         "    ]\n"
	                         "  },\n"
	                         "  \"c\": {\"$complex\": [1.0, -2.0]},\n"
	                         "  \"by\": {\"$bytes\": \"aGk=\"},\n"
	                         "  \"e\": []\n"
	                         "}\n";
	const char *want_tags = "{\n"
	                        "  \"$dict\": [\n"
	                        "    [\n"
	                        "      3,\n"
	                        "      \"x\"\n"
	                        "    ],\n"
	                        "    [\n"
	                        "      \"$k\",\n"
	                        "      1.0\n"
	                        "    ]\n"
	                        "  ]\n"
	                        "}\n";

	CHECK(json_of(PK_MIXED, sizeof(PK_MIXED) - 1, &b, &err) == 0, "mixed: %s", err.message);
	CHECK(b.data && strcmp(b.data, want_mixed) == 0, "mixed: got\n%s", b.data ? b.data : "");
	CHECK(json_of(PK_DICT_TAGS, sizeof(PK_DICT_TAGS) - 1, &b, &err) == 0, "tags: %s",
	      err.message);
	CHECK(b.data && strcmp(b.data, want_tags) == 0, "tags: got\n%s", b.data ? b.data : "");
	/* PROTOCOL.md 6.1: a lone surrogate becomes U+FFFD (one, not one per byte) */
	CHECK(json_of(PK_SURROGATES, sizeof(PK_SURROGATES) - 1, &b, &err) == 0, "surrogates: %s",
	      err.message);
	CHECK(b.data && strcmp(b.data, "\"a\xef\xbf\xbd"
	                               "b\xef\xbf\xbd\"\n") == 0,
	      "a lone surrogate is one U+FFFD: got %s", b.data ? b.data : "");
	CHECK(json_of(PK_SELF, sizeof(PK_SELF) - 1, &b, &err) == RPC_E_ELOOP,
	      "a list holding itself is ELOOP (%d: %s)", err.code, err.message);
	/* a cap smaller than the text is EFBIG, not a crash or a cut document */
	struct rpc_buf small = RPC_BUF_INIT(40);
	CHECK(json_of(PK_MIXED, sizeof(PK_MIXED) - 1, &small, &err) == RPC_E_EFBIG,
	      "over the cap is EFBIG (%d)", err.code);
	rpc_buf_release(&small);
	rpc_buf_release(&b);
}

static void test_npy(void)
{
	struct pk_doc *doc = parse(PK_FORTRAN, sizeof(PK_FORTRAN) - 1);
	struct srv_ndarray a;
	struct srv_error err;
	struct rpc_buf h = RPC_BUF_INIT(1 << 20);
	struct rpc_buf b = RPC_BUF_INIT(1 << 20);

	if (!doc) {
		failures++;
		return;
	}
	CHECK(srv_npy_recognise(pk_doc_root(doc), true, &a, &err) == 1, "an array: %s",
	      err.message);
	CHECK(a.fortran && a.ndim == 2 && a.count == 6 && a.itemsize == 2, "its shape and order");
	CHECK(srv_npy_header(&a, &h) == 0, "header");
	CHECK(h.len == 128 && memcmp(h.data, NPY_FORTRAN, 128) == 0, "header as numpy writes it");
	CHECK(a.data_offset != SIZE_MAX && memcmp(a.data, NPY_FORTRAN + 128, 12) == 0 &&
	          (const char *)a.data == PK_FORTRAN + a.data_offset,
	      "data in the pickle, in its order");
	/* json: index order, whatever the memory order */
	CHECK(srv_view_json(pk_doc_root(doc), NULL, NULL, &b, &err) == 0, "json: %s", err.message);
	CHECK(b.data && strstr(b.data, "\"data\": [\n      [0, 1, 2],\n      [3, 4, 5]\n    ]"),
	      "json data in index order:\n%s", b.data ? b.data : "");
	CHECK(b.data && strstr(b.data, "\"dtype\": \"<i2\"") && strstr(b.data, "\"shape\": [2, 3]"),
	      "json dtype and shape");
	rpc_buf_release(&h);
	rpc_buf_release(&b);
	pk_doc_free(doc);
}

static void test_render(const char *fixtures)
{
	char tmp[] = "/tmp/flechefs-test-views-XXXXXX", cmd[1024];
	struct srv_config cfg;
	struct srv_cache *cache = NULL;
	struct srv_value *v = NULL;
	struct srv_rendered r, r2;
	struct srv_error err;
	const char *dict = "7e644cf127da63d6ff542b0eb0f8fc4fb6c7e49fbb0ebe7467186d3c050d0771";
	const char *arr = "63903d296e3bd06997a0b46782de0df700a6f6636823d3cd8dcc800c08a36657";
	const char *want =
	    "{\n  \"depth\": 3,\n  \"tree\": [\n    [\n      0,\n      [\n        0,\n"
	    "        0\n      ]\n    ],\n    [\n      1,\n      [\n        10,\n"
	    "        100\n      ]\n    ],\n    [\n      2,\n      [\n        20,\n"
	    "        200\n      ]\n    ]\n  ],\n  \"label\": [\n    \"leaf\",\n"
	    "    3\n  ]\n}\n";

	if (!mkdtemp(tmp)) {
		CHECK(0, "mkdtemp");
		return;
	}
	snprintf(cmd, sizeof(cmd), "cp -r '%s/files/values' '%s/files/calls' '%s'/", fixtures,
	         fixtures, tmp);
	CHECK(system(cmd) == 0, "copy the fixture");
	memset(&cfg, 0, sizeof(cfg));
	cfg.root = tmp;
	cfg.read_only = true;
	if (srv_cache_open(&cfg, &cache, &err) != 0) {
		CHECK(0, "open the cache: %s", err.message);
		goto out;
	}
	/* a destructured dict, resolved through the cache (EXPECTED.json's json field) */
	CHECK(srv_value_open(cache, dict, 64, &v, &err) == 0, "open: %s", err.message);
	if (v) {
		CHECK(srv_view_render(cache, v, RPC_VIEW_JSON, &r, &err) == 0, "json: %s", err.message);
		CHECK(r.nseg == 1 && r.size == strlen(want) &&
		          memcmp(r.seg[0].bytes, want, strlen(want)) == 0,
		      "the destructured dict whole: %.*s", (int)r.seg[0].len,
		      (const char *)r.seg[0].bytes);
		CHECK(srv_view_render(cache, v, RPC_VIEW_JSON, &r2, &err) == 0, "json again");
		CHECK(r2.seg[0].bytes == r.seg[0].bytes,
		      "the second rendering comes from the cache");
		r2.release(r2.priv);
		r.release(r.priv);
		CHECK(srv_view_render(cache, v, RPC_VIEW_NPY, &r, &err) < 0 && err.code == RPC_E_ENOTSUP,
		      "no npy view of a dict (%d: %s)", err.code, err.message);
		if (r.release)
			r.release(r.priv);
		srv_value_close(v);
		v = NULL;
	}
	/* an array: the data segment points into the stored stream */
	CHECK(srv_value_open(cache, arr, 64, &v, &err) == 0, "open: %s", err.message);
	if (v) {
		const uint8_t *base = srv_value_bytes(v);
		CHECK(srv_view_render(cache, v, RPC_VIEW_NPY, &r, &err) == 0, "npy: %s", err.message);
		CHECK(r.nseg == 2 && r.seg[0].len == 128 && r.seg[1].len == 24 && r.size == 152,
		      "npy segments");
		CHECK(r.seg[1].bytes >= base && r.seg[1].bytes + 24 <= base + srv_value_size(v),
		      "the data is served from the stored stream");
		r.release(r.priv);
		CHECK(srv_view_render(cache, v, RPC_VIEW_TXT, &r, &err) < 0 && err.code == RPC_E_ENOTSUP,
		      "no txt view of an array");
		if (r.release)
			r.release(r.priv);
		srv_value_close(v);
	}
out:
	srv_cache_free(cache);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
	if (system(cmd) != 0)
		printf("cannot remove '%s'\n", tmp);
}

/* The json and txt views of the standard types and of classes pickled by value. */
static void test_known(void)
{
	static const struct {
		const char *name, *pickle;
		size_t len;
		const char *json; /* the whole text, or a part of it when part is true */
		bool part;
		const char *txt; /* NULL when the txt view does not apply */
	} cases[] = {
#define CASE(p, json, part, txt) {#p, p, sizeof(p) - 1, json, part, txt}
	    CASE(PK_DT_BAD_MONTH, "\"$object\": \"datetime.datetime\"", true, NULL),
	    CASE(PK_DT_AWARE, "{\"$datetime\": \"2024-01-02T03:04:05.000007+05:29:48\"}\n", false,
	         "2024-01-02 03:04:05.000007+05:29:48"),
	    CASE(PK_UUID_TOO_BIG, "\"$object\": \"uuid.UUID\"", true, NULL),
	    CASE(PK_RANGE_TEXT, "\"$object\": \"dill._dill._eval_repr\"", true, NULL),
	    CASE(PK_SETSTATE_NOT_OBJECT, "\"$object\": \"cloudpickle.cloudpickle._class_setstate\"",
	         true, NULL),
	    CASE(PK_BYVALUE_DATACLASS,
	         "{\n  \"$dataclass\": \"__main__.P\",\n  \"fields\": {\n    \"x\": 1\n  }\n}\n",
	         false, NULL),
	    CASE(PK_BYVALUE_FUNCTION, "{\"$global\": \"__main__.outer.<locals>.f\"}\n", false, NULL),
	    CASE(PK_BYREF_ENUM, "{\n  \"$enum\": \"mod.Color\",\n  \"name\": \"RED\"\n}\n", false,
	         NULL),
	    CASE(PK_DT_ZONE, "{\"$datetime\": \"2024-01-02T03:04:05\", \"tz\": \"Europe/Berlin\"}\n",
	         false, NULL),
	    CASE(PK_BYREF_PRIVATE, "\"$object\": \"builtins.getattr\"", true, NULL),
#undef CASE
	};
	struct rpc_buf b = RPC_BUF_INIT(1 << 20), t = RPC_BUF_INIT(1 << 20);
	struct srv_error err;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct pk_doc *doc;
		int rc = json_of(cases[i].pickle, cases[i].len, &b, &err);
		const char *got = b.data ? b.data : "";
		CHECK(rc == 0, "%s: json: %s", cases[i].name, err.message);
		CHECK(cases[i].part ? strstr(got, cases[i].json) != NULL : strcmp(got, cases[i].json) == 0,
		      "%s: json: got\n%s", cases[i].name, got);
		doc = parse(cases[i].pickle, cases[i].len);
		rpc_buf_reset(&t);
		rc = doc ? srv_pystd_str(pk_doc_root(doc), &t) : -1;
		if (cases[i].txt)
			CHECK(rc == 1 && t.data && strcmp(t.data, cases[i].txt) == 0, "%s: str: %s",
			      cases[i].name, t.data ? t.data : "(none)");
		else
			CHECK(rc == 0, "%s: no str", cases[i].name);
		pk_doc_free(doc);
	}
	rpc_buf_release(&b);
	rpc_buf_release(&t);
}

int main(void)
{
	const char *fixtures = getenv("FLECHEFS_FIXTURES");
	const char *ci = getenv("CI");
	char path[1024];

	test_json();
	test_npy();
	test_known();
	snprintf(path, sizeof(path), "%s/EXPECTED.json", fixtures ? fixtures : "");
	if (fixtures && access(path, R_OK) == 0) {
		test_render(fixtures);
	} else if (ci && strcmp(ci, "true") == 0) {
		printf("FAIL: no fixtures (FLECHEFS_FIXTURES)\n");
		failures++;
	} else {
		printf("fixtures not found (FLECHEFS_FIXTURES): the render tests are skipped\n");
	}
	return check_report("test_views");
}

/*
 * test_rpc_json.c: unit tests of rpc/json_writer.c: shortest round-trip floats (checked
 * against Python's repr for a table of values and by round trip for random bit
 * patterns), integers, string escaping and UTF-8 sanitising, base64, and the
 * rendering of msgpack trees (tags, $dict, indentation, depth and size limits).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_writer.h"
#include "msg.h"
#define CHECK_STOP_AT_FIRST
#include "check.h"

/* repr() of these doubles, printed by CPython 3.11. */
static const struct {
	double d;
	const char *repr;
} python_repr[] = {
    {0x1.2000000000000p+3, "9.0"},
    {0x1.999999999999ap-4, "0.1"},
    {-0x0.0p+0, "-0.0"},
    {0x1.7e43c8800759cp+996, "1e+300"},
    {0x0.0000000000001p-1022, "5e-324"},
    {0x1.4000000000000p+1, "2.5"},
    {0x1.ac1cea3ffbcdfp+30, "1795635855.9959028"},
    {0x1.9000000000000p+6, "100.0"},
    {0x1.1c37937e08000p+53, "1e+16"},
    {0x1.c6bf526340000p+49, "1000000000000000.0"},
    {0x1.b69b4ba630f35p+56, "1.2345678901234568e+17"},
    {0x1.a36e2eb1c432dp-14, "0.0001"},
    {0x1.4f8b588e368f1p-17, "1e-05"},
    {0x1.421f5f40d8376p-23, "1.5e-07"},
    {-0x1.0000000000000p-1022, "-2.2250738585072014e-308"},
    {0x1.fffffffffffffp+1023, "1.7976931348623157e+308"},
    {0x1.921fb54442d18p+1, "3.141592653589793"},
    {0x1.5555555555555p-2, "0.3333333333333333"},
    {0x1.5555555555555p-1, "0.6666666666666666"},
    {0x1.3333333333333p-2, "0.3"},
    {0x1.0f0cf064dd592p+73, "1e+22"},
    {0x1.56e1fc2f8f359p-997, "1e-300"},
    {0x1.81cd6c8b43958p+13, "12345.678"},
    {-0x1.0000000000000p+0, "-1.0"},
    {0x1.1666666666666p+2, "4.35"},
    {0x1.3333333333334p-2, "0.30000000000000004"},
    {0x1.0000000000000p+53, "9007199254740992.0"},
    {0x1.a36e2eb1c432dp-14, "0.0001"},
    {0x1.1c37937e08000p+53, "1e+16"},
    {0x1.52d02c7e14af6p+76, "1e+23"},
    {0x1.4d8399f767c45p+23, "10928588.983213553"},
    {0x1.8fbbcbde5c099p+445, "1.4186613525849614e+134"},
    {-0x1.11fdecb91ce37p-243, "-7.571968556055867e-74"},
    {-0x1.d4330f1446beap+375, "-1.4074705188261364e+113"},
    {-0x1.b8c9ebd69fe29p-401, "-3.3339745473042614e-121"},
    {-0x1.0b125ec1d7da0p-900, "-1.2342180766211395e-271"},
    {-0x1.10dff076ce2efp+371, "-5.126864004244935e+111"},
    {-0x1.5387777330bdbp+107, "-2.1520217579844227e+32"},
    {0x1.1ea36f17fd374p-3, "0.1399601630397701"},
    {0x1.64138a6233255p-811, "1.01853664031722e-244"},
    {0x1.7688de6a16a3bp-381, "2.9704598186234577e-115"},
    {0x1.dd97f1cfb10f6p+499, "3.0534183338726823e+150"},
    {-0x1.271007814e8a2p+486, "-2.3027782228163463e+146"},
    {0x1.959ce3f1f65a8p+536, "3.56409621163656e+161"},
    {0x1.afe878b33e968p-606, "6.352929017207453e-183"},
    {0x1.4235992edcf45p-2, "0.3146575865605324"},
    {-0x1.edb20035b7399p-77, "-1.2761724801771812e-23"},
    {0x1.c966c377b9aa2p+648, "2.0868668176225336e+195"},
    {0x1.c82b1478c281dp-278, "3.66898827745704e-84"},
    {-0x1.1cc9dea959c21p+482, "-1.389122273370197e+145"},
};

static void test_doubles(void)
{
	char s[RPC_DOUBLE_CHARS];
	struct rpc_buf b;
	uint64_t x = 88172645463325252ull;

	for (size_t i = 0; i < sizeof(python_repr) / sizeof(python_repr[0]); i++) {
		rpc_format_double(s, python_repr[i].d);
		CHECK_STR(s, python_repr[i].repr);
	}
	rpc_buf_init(&b, 1000);
	CHECK_EQ(rpc_json_double(&b, 1795635855.9959028), 0);
	CHECK_STR(b.data, "1795635855.9959028");
	rpc_buf_reset(&b);
	CHECK_EQ(rpc_json_double(&b, NAN), 0);
	CHECK_STR(b.data, "{\"$float\": \"nan\"}");
	rpc_buf_reset(&b);
	CHECK_EQ(rpc_json_double(&b, INFINITY), 0);
	CHECK_STR(b.data, "{\"$float\": \"inf\"}");
	rpc_buf_reset(&b);
	CHECK_EQ(rpc_json_double(&b, -INFINITY), 0);
	CHECK_STR(b.data, "{\"$float\": \"-inf\"}");
	rpc_buf_reset(&b);
	CHECK_EQ(rpc_json_double(&b, -0.0), 0);
	CHECK_STR(b.data, "-0.0");
	rpc_buf_reset(&b);
	CHECK_EQ(rpc_json_double(&b, 9.0), 0);
	CHECK_STR(b.data, "9.0");
	rpc_buf_release(&b);

	/* Random bit patterns: reads back exactly, looks like a float, no shorter form. */
	for (int i = 0; i < 200000; i++) {
		double d;
		size_t n;
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(&d, &x, sizeof(d));
		if (i % 3 == 0)
			d = (double)(int64_t)(x >> (x % 64)) / 1000.0;
		n = rpc_format_double(s, d);
		CHECK(n > 0 && n < RPC_DOUBLE_CHARS && strlen(s) == n);
		if (isnan(d)) {
			CHECK_STR(s, "nan");
			continue;
		}
		if (isinf(d))
			continue;
		CHECK(strtod(s, NULL) == d);
		CHECK(signbit(strtod(s, NULL)) == signbit(d));
		CHECK(strchr(s, '.') || strchr(s, 'e'));
		/* Shortest: %.(k-1)e with k one fewer significant digit never reads back. */
		{
			char t[40];
			int sig = 0, started = 0, trailing = 0;
			for (const char *p = s; *p && *p != 'e'; p++) {
				if (*p < '0' || *p > '9')
					continue;
				if (*p != '0')
					started = 1;
				if (started) {
					sig++;
					trailing = *p == '0' ? trailing + 1 : 0;
				}
			}
			sig -= trailing;
			if (sig > 1) {
				snprintf(t, sizeof(t), "%.*e", sig - 2, d);
				CHECK(strtod(t, NULL) != d);
			}
		}
	}
}

static void test_ints(void)
{
	struct rpc_buf b;

	rpc_buf_init(&b, 1000);
	CHECK_EQ(rpc_json_int(&b, INT64_MIN), 0);
	CHECK_EQ(rpc_buf_addc(&b, ' '), 0);
	CHECK_EQ(rpc_json_uint(&b, UINT64_MAX), 0);
	CHECK_EQ(rpc_buf_addc(&b, ' '), 0);
	CHECK_EQ(rpc_json_int(&b, 0), 0);
	CHECK_STR(b.data, "-9223372036854775808 18446744073709551615 0");
	rpc_buf_release(&b);
}

/* JSON of s[0..len). */
/* The text `write` makes of s, in b (reset first). */
static const char *json_with(struct rpc_buf *b,
                             int (*write)(struct rpc_buf *, const char *, size_t),
                             const char *s, size_t len)
{
	rpc_buf_reset(b);
	CHECK_EQ(write(b, s, len), 0);
	return b->data;
}

static const char *json_str(struct rpc_buf *b, const char *s, size_t len)
{
	return json_with(b, rpc_json_string, s, len);
}

static void test_strings(void)
{
	struct rpc_buf b;

	rpc_buf_init(&b, 10000);
	CHECK_STR(json_str(&b, "", 0), "\"\"");
	CHECK_STR(json_str(&b, "plain text", 10), "\"plain text\"");
	CHECK_STR(json_str(&b, "a\"b\\c/d", 7), "\"a\\\"b\\\\c/d\"");
	CHECK_STR(json_str(&b, "\n\r\t\b\f", 5), "\"\\n\\r\\t\\b\\f\"");
	CHECK_STR(json_str(&b, "\x01\x1f\x7f", 3), "\"\\u0001\\u001f\x7f\"");
	CHECK_STR(json_str(&b, "a\0b", 3), "\"a\\u0000b\"");
	/* Valid UTF-8 passes: é, €, U+10FFFF, 😀. */
	CHECK_STR(json_str(&b, "\xc3\xa9\xe2\x82\xac\xf4\x8f\xbf\xbf\xf0\x9f\x98\x80", 13),
	          "\"\xc3\xa9\xe2\x82\xac\xf4\x8f\xbf\xbf\xf0\x9f\x98\x80\"");
	/* Invalid bytes become U+FFFD, one per maximal subpart (as Python's "replace"). */
	CHECK_STR(json_str(&b, "\xff", 1), "\"\xef\xbf\xbd\"");
	CHECK_STR(json_str(&b, "a\x80z", 3), "\"a\xef\xbf\xbdz\"");
	CHECK_STR(json_str(&b, "\xe2\x82", 2), "\"\xef\xbf\xbd\"");
	CHECK_STR(json_str(&b, "\xe2\x82z", 3), "\"\xef\xbf\xbdz\"");
	CHECK_STR(json_str(&b, "\xc0\xaf", 2), "\"\xef\xbf\xbd\xef\xbf\xbd\"");
	CHECK_STR(json_str(&b, "\xed\xa0\x80", 3), "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"");
	CHECK_STR(json_str(&b, "\xf4\x90\x80\x80", 4),
	          "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"");
	CHECK_STR(json_str(&b, "\xf0\x9f\x98", 3), "\"\xef\xbf\xbd\"");
	CHECK_STR(json_str(&b, "\xf0\x9f\x98\"", 4), "\"\xef\xbf\xbd\\\"\"");
	/* Output is valid UTF-8 for every 2-byte input. */
	for (int i = 0; i < 65536; i++) {
		char in[2] = {(char)(i >> 8), (char)i};
		const char *out = json_str(&b, in, 2);
		CHECK(out[0] == '"' && out[strlen(out) - 1] == '"');
		for (size_t k = 0; out[k]; k++)
			CHECK((uint8_t)out[k] >= 0x20);
	}
	/* The cap is honoured. */
	{
		struct rpc_buf small;
		rpc_buf_init(&small, 5);
		CHECK_EQ(rpc_json_string(&small, "abcdef", 6), -EMSGSIZE);
		rpc_buf_release(&small);
	}
	rpc_buf_release(&b);
}

static const char *json_ascii(struct rpc_buf *b, const char *s, size_t len)
{
	return json_with(b, rpc_json_string_ascii, s, len);
}

/* Expected texts are those of Python's json.dumps (ensure_ascii=True) of the same str. */
static void test_strings_ascii(void)
{
	struct rpc_buf b;

	rpc_buf_init(&b, 10000);
	CHECK_STR(json_ascii(&b, "plain text", 10), "\"plain text\"");
	CHECK_STR(json_ascii(&b, "a\"b\\c/d\n\x01", 9), "\"a\\\"b\\\\c/d\\n\\u0001\"");
	CHECK_STR(json_ascii(&b, "~\x7f", 2), "\"~\\u007f\"");
	/* é, U+00E9 */
	CHECK_STR(json_ascii(&b, "caf\xc3\xa9", 5), "\"caf\\u00e9\"");
	/* 日本, U+65E5 U+672C */
	CHECK_STR(json_ascii(&b, "\xe6\x97\xa5\xe6\x9c\xac", 6), "\"\\u65e5\\u672c\"");
	/* U+1F600 beyond the BMP: a surrogate pair */
	CHECK_STR(json_ascii(&b, "\xf0\x9f\x98\x80!", 5), "\"\\ud83d\\ude00!\"");
	/* U+FFFF, the last of the BMP, and U+10FFFF, the last code point */
	CHECK_STR(json_ascii(&b, "\xef\xbf\xbf\xf4\x8f\xbf\xbf", 7),
	          "\"\\uffff\\udbff\\udfff\"");
	/* invalid UTF-8: a stray continuation byte, a truncated sequence */
	CHECK_STR(json_ascii(&b, "a\x80" "b\xe6\x97", 5), "\"a\\ufffdb\\ufffd\"");
	rpc_buf_release(&b);
}

static void test_base64(void)
{
	static const char *const vec[][2] = {{"", ""},
	                                     {"f", "Zg=="},
	                                     {"fo", "Zm8="},
	                                     {"foo", "Zm9v"},
	                                     {"foob", "Zm9vYg=="},
	                                     {"fooba", "Zm9vYmE="},
	                                     {"foobar", "Zm9vYmFy"}};
	struct rpc_buf b;

	rpc_buf_init(&b, 1000);
	for (size_t i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
		rpc_buf_reset(&b);
		CHECK_EQ(rpc_base64(&b, vec[i][0], strlen(vec[i][0])), 0);
		CHECK_STR(b.data, vec[i][1]);
	}
	rpc_buf_reset(&b);
	CHECK_EQ(rpc_json_bytes_base64(&b, "\xff\x00\xfe", 3), 0);
	CHECK_STR(b.data, "{\"$bytes\": \"/wD+\"}");
	rpc_buf_release(&b);
}

/* Renders packed msgpack bytes as JSON into b. */
static int render(struct rpc_buf *b, const msgpack_sbuffer *sb, unsigned depth, int indent)
{
	msgpack_zone z;
	msgpack_object o;
	int r;

	msgpack_zone_init(&z, 1024);
	CHECK_EQ(rpc_msgpack_unpack(sb->data, sb->size, RPC_MAX_DEPTH, &z, &o, NULL, 0), 0);
	rpc_buf_reset(b);
	r = rpc_json_msgpack(b, &o, depth, indent);
	msgpack_zone_destroy(&z);
	return r;
}

static void test_msgpack(void)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	struct rpc_buf b;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	rpc_buf_init(&b, 100000);

	/* Expected texts are Python's json.dumps of the same data (indent None, separators
	 * (",", ":"), indent 2). {"a": [1, 2.5, null, true, -3], "b": {}, "c": [], "d": bin, "e":
	 * "x\n", "f": nan} */
	msgpack_pack_map(&pk, 6);
	rpc_pack_str(&pk, "a");
	msgpack_pack_array(&pk, 5);
	msgpack_pack_int(&pk, 1);
	msgpack_pack_double(&pk, 2.5);
	msgpack_pack_nil(&pk);
	msgpack_pack_true(&pk);
	msgpack_pack_int(&pk, -3);
	rpc_pack_str(&pk, "b");
	msgpack_pack_map(&pk, 0);
	rpc_pack_str(&pk, "c");
	msgpack_pack_array(&pk, 0);
	rpc_pack_str(&pk, "d");
	rpc_pack_bin(&pk, "hi", 2);
	rpc_pack_str(&pk, "e");
	rpc_pack_str(&pk, "x\n");
	rpc_pack_str(&pk, "f");
	msgpack_pack_float(&pk, NAN);
	CHECK_EQ(render(&b, &sb, 10, 0), 0);
	CHECK_STR(b.data, "{\"a\": [1, 2.5, null, true, -3], \"b\": {}, \"c\": [], "
	                  "\"d\": {\"$bytes\": \"aGk=\"}, \"e\": \"x\\n\", "
	                  "\"f\": {\"$float\": \"nan\"}}");
	CHECK_EQ(render(&b, &sb, 10, -1), 0);
	CHECK_STR(b.data, "{\"a\":[1,2.5,null,true,-3],\"b\":{},\"c\":[],"
	                  "\"d\":{\"$bytes\":\"aGk=\"},\"e\":\"x\\n\","
	                  "\"f\":{\"$float\":\"nan\"}}");
	CHECK_EQ(render(&b, &sb, 10, 2), 0);
	CHECK_STR(b.data, "{\n"
	                  "  \"a\": [\n"
	                  "    1,\n"
	                  "    2.5,\n"
	                  "    null,\n"
	                  "    true,\n"
	                  "    -3\n"
	                  "  ],\n"
	                  "  \"b\": {},\n"
	                  "  \"c\": [],\n"
	                  "  \"d\": {\"$bytes\": \"aGk=\"},\n"
	                  "  \"e\": \"x\\n\",\n"
	                  "  \"f\": {\"$float\": \"nan\"}\n"
	                  "}");
	/* Depth: the map and its array need 2 levels. */
	CHECK_EQ(render(&b, &sb, 2, 0), 0);
	CHECK_EQ(render(&b, &sb, 1, 0), -EINVAL);
	/* Size cap. */
	{
		struct rpc_buf small;
		msgpack_zone z;
		msgpack_object o;
		rpc_buf_init(&small, 20);
		msgpack_zone_init(&z, 1024);
		CHECK_EQ(rpc_msgpack_unpack(sb.data, sb.size, RPC_MAX_DEPTH, &z, &o, NULL, 0), 0);
		CHECK_EQ(rpc_json_msgpack(&small, &o, 10, 0), -EMSGSIZE);
		CHECK(small.len <= 20);
		msgpack_zone_destroy(&z);
		rpc_buf_release(&small);
	}

	/* Non-str keys and tag look-alikes become $dict; the server's tags pass. */
	msgpack_sbuffer_clear(&sb);
	msgpack_pack_array(&pk, 5);
	msgpack_pack_map(&pk, 2);
	msgpack_pack_int(&pk, 1);
	rpc_pack_str(&pk, "one");
	rpc_pack_str(&pk, "k");
	msgpack_pack_nil(&pk);
	msgpack_pack_map(&pk, 1);
	rpc_pack_str(&pk, "$float");
	rpc_pack_str(&pk, "nan");
	msgpack_pack_map(&pk, 1);
	rpc_pack_str(&pk, "$int");
	rpc_pack_str(&pk, "123456789012345678901234567890");
	msgpack_pack_map(&pk, 1);
	rpc_pack_str(&pk, "$object");
	rpc_pack_str(&pk, "collections.OrderedDict");
	msgpack_pack_map(&pk, 1);
	msgpack_pack_array(&pk, 1);
	msgpack_pack_double(&pk, 1e300);
	msgpack_pack_uint64(&pk, UINT64_MAX);
	CHECK_EQ(render(&b, &sb, 10, 0), 0);
	CHECK_STR(b.data, "[{\"$dict\": [[1, \"one\"], [\"k\", null]]}, "
	                  "{\"$dict\": [[\"$float\", \"nan\"]]}, "
	                  "{\"$int\": \"123456789012345678901234567890\"}, "
	                  "{\"$object\": \"collections.OrderedDict\"}, "
	                  "{\"$dict\": [[[1e+300], 18446744073709551615]]}]");
	CHECK_EQ(render(&b, &sb, 10, 1), 0);
	CHECK_STR(b.data, "[\n"
	                  " {\n"
	                  "  \"$dict\": [\n"
	                  "   [\n"
	                  "    1,\n"
	                  "    \"one\"\n"
	                  "   ],\n"
	                  "   [\n"
	                  "    \"k\",\n"
	                  "    null\n"
	                  "   ]\n"
	                  "  ]\n"
	                  " },\n"
	                  " {\n"
	                  "  \"$dict\": [\n"
	                  "   [\n"
	                  "    \"$float\",\n"
	                  "    \"nan\"\n"
	                  "   ]\n"
	                  "  ]\n"
	                  " },\n"
	                  " {\n"
	                  "  \"$int\": \"123456789012345678901234567890\"\n"
	                  " },\n"
	                  " {\n"
	                  "  \"$object\": \"collections.OrderedDict\"\n"
	                  " },\n"
	                  " {\n"
	                  "  \"$dict\": [\n"
	                  "   [\n"
	                  "    [\n"
	                  "     1e+300\n"
	                  "    ],\n"
	                  "    18446744073709551615\n"
	                  "   ]\n"
	                  "  ]\n"
	                  " }\n"
	                  "]");

	/* An ext object (never produced by our decoder) is refused. */
	{
		msgpack_object ext;
		memset(&ext, 0, sizeof(ext));
		ext.type = MSGPACK_OBJECT_EXT;
		rpc_buf_reset(&b);
		CHECK_EQ(rpc_json_msgpack(&b, &ext, 10, 0), -EINVAL);
	}
	/* Deep nesting is bounded by max_depth. */
	{
		static uint8_t deep[64];
		msgpack_zone z;
		msgpack_object o;
		memset(deep, 0x91, sizeof(deep));
		deep[sizeof(deep) - 1] = 0xc0;
		msgpack_zone_init(&z, 1024);
		CHECK_EQ(rpc_msgpack_unpack(deep, sizeof(deep), RPC_MAX_DEPTH, &z, &o, NULL, 0), 0);
		rpc_buf_reset(&b);
		CHECK_EQ(rpc_json_msgpack(&b, &o, 63, 0), 0);
		CHECK_EQ(b.len, 63 * 2 + 4);
		rpc_buf_reset(&b);
		CHECK_EQ(rpc_json_msgpack(&b, &o, 62, 0), -EINVAL);
		msgpack_zone_destroy(&z);
	}
	rpc_buf_release(&b);
	msgpack_sbuffer_destroy(&sb);
}

int main(void)
{
	test_doubles();
	test_ints();
	test_strings();
	test_strings_ascii();
	test_base64();
	test_msgpack();
	return check_report("test_rpc_json");
}

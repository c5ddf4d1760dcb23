/*
 * test_cache_parts.c: the storage layer's parts on their own: the NaN-tolerant JSON
 * reader (sjson), the key index helpers, the HMAC trailer logic and msgpack
 * equality of query matching.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>
#include <openssl/hmac.h>

#include "filecodec.h"
#include "keyindex.h"
#include "query.h"
#include "sjson.h"

static int failures, checks;

#define CHECK(cond, ...)                                                                           \
	do {                                                                                       \
		checks++;                                                                          \
		if (!(cond)) {                                                                     \
			failures++;                                                                \
			printf("FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                     \
			printf(__VA_ARGS__);                                                       \
			printf("\n");                                                              \
		}                                                                                  \
	} while (0)

/* Parses json into u (sb keeps the bytes); returns the sjson result. */
static int parse(const char *json, msgpack_sbuffer *sb, msgpack_unpacked *u, char *why)
{
	msgpack_packer pk;
	size_t off = 0;

	msgpack_sbuffer_init(sb);
	msgpack_unpacked_init(u);
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	if (srv_sjson_pack(json, strlen(json), &pk, why, 128) != 0)
		return -1;
	if (msgpack_unpack_next(u, sb->data, sb->size, &off) != MSGPACK_UNPACK_SUCCESS ||
	    off != sb->size)
		return -2;
	return 0;
}

static void done(msgpack_sbuffer *sb, msgpack_unpacked *u)
{
	msgpack_unpacked_destroy(u);
	msgpack_sbuffer_destroy(sb);
}

static void test_sjson(void)
{
	msgpack_sbuffer sb;
	msgpack_unpacked u;
	char why[128];
	const msgpack_object *a;
	static const char *const bad[] = {
	    "",         "{",     "[1,]",     "{\"a\" 1}", "nul", "01", "1.",   "-",         "\"abc",
	    "\"a\\x\"", "[1] 2", "{'a': 1}", "\"\x01\"",  "nan", "+1", "[NaN", "\"\\u12\"",
	};
	char deep[200];

	CHECK(parse("{\"t\": 1795635855.9959648, \"n\": NaN, \"p\": Infinity, \"m\": -Infinity,"
	            " \"i\": 3, \"f\": 3.0, \"e\": 1e3, \"big\": 123456789012345678901234567890,"
	            " \"neg\": -9223372036854775808, \"s\": \"\\u00e9\\ud83d\\ude00\\n\","
	            " \"l\": [true, false, null, []], \"o\": {}}",
	            &sb, &u, why) == 0,
	      "parse: %s", why);
	CHECK(u.data.type == MSGPACK_OBJECT_MAP && u.data.via.map.size == 12, "map of 12");
	if (u.data.type == MSGPACK_OBJECT_MAP && u.data.via.map.size == 12) {
		a = &u.data.via.map.ptr[0].val;
		CHECK(a->type == MSGPACK_OBJECT_FLOAT64 && a->via.f64 == 1795635855.9959648,
		      "float");
		a = &u.data.via.map.ptr[1].val;
		CHECK(a->type == MSGPACK_OBJECT_FLOAT64 && isnan(a->via.f64), "NaN");
		a = &u.data.via.map.ptr[2].val;
		CHECK(a->type == MSGPACK_OBJECT_FLOAT64 && isinf(a->via.f64) && a->via.f64 > 0,
		      "inf");
		a = &u.data.via.map.ptr[3].val;
		CHECK(a->type == MSGPACK_OBJECT_FLOAT64 && isinf(a->via.f64) && a->via.f64 < 0,
		      "-inf");
		a = &u.data.via.map.ptr[4].val;
		CHECK(a->type == MSGPACK_OBJECT_POSITIVE_INTEGER && a->via.u64 == 3, "int");
		a = &u.data.via.map.ptr[5].val;
		CHECK(a->type == MSGPACK_OBJECT_FLOAT64 && a->via.f64 == 3.0, "3.0 stays a float");
		a = &u.data.via.map.ptr[6].val;
		CHECK(a->type == MSGPACK_OBJECT_FLOAT64 && a->via.f64 == 1000.0, "1e3 is a float");
		a = &u.data.via.map.ptr[7].val;
		CHECK(a->type == MSGPACK_OBJECT_MAP && a->via.map.size == 1 &&
		          a->via.map.ptr[0].val.type == MSGPACK_OBJECT_STR &&
		          a->via.map.ptr[0].val.via.str.size == 30 &&
		          memcmp(a->via.map.ptr[0].key.via.str.ptr, "$int", 4) == 0,
		      "big int");
		a = &u.data.via.map.ptr[8].val;
		CHECK(a->type == MSGPACK_OBJECT_NEGATIVE_INTEGER && a->via.i64 == INT64_MIN,
		      "int64 min");
		a = &u.data.via.map.ptr[9].val;
		CHECK(a->type == MSGPACK_OBJECT_STR && a->via.str.size == 7 &&
		          memcmp(a->via.str.ptr, "\xc3\xa9\xf0\x9f\x98\x80\n", 7) == 0,
		      "escapes");
		a = &u.data.via.map.ptr[10].val;
		CHECK(a->type == MSGPACK_OBJECT_ARRAY && a->via.array.size == 4 &&
		          a->via.array.ptr[0].type == MSGPACK_OBJECT_BOOLEAN &&
		          a->via.array.ptr[2].type == MSGPACK_OBJECT_NIL &&
		          a->via.array.ptr[3].type == MSGPACK_OBJECT_ARRAY,
		      "list");
	}
	done(&sb, &u);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK(parse(bad[i], &sb, &u, why) == -1, "'%s' is not JSON", bad[i]);
		done(&sb, &u);
	}
	/* too deep */
	memset(deep, '[', sizeof(deep) - 1);
	deep[sizeof(deep) - 1] = '\0';
	CHECK(parse(deep, &sb, &u, why) == -1 && strstr(why, "deep"), "depth limit: %s", why);
	done(&sb, &u);
	{
		double d = 0;
		const char *rt = "{\"timestart\": 1.5, \"x\": {\"timestop\": 9}, \"timestop\": NaN,"
		                 " \"b\": 2}";

		CHECK(srv_sjson_number(rt, strlen(rt), "timestart", &d) == 0 && d == 1.5, "number");
		CHECK(srv_sjson_number(rt, strlen(rt), "timestop", &d) == 0 && isnan(d),
		      "top-level only");
		CHECK(srv_sjson_number(rt, strlen(rt), "missing", &d) != 0, "missing");
		CHECK(srv_sjson_number("{\"a\": \"1\"}", 10, "a", &d) != 0, "not a number");
	}
}

static void test_keys(void)
{
	const char *a = "7b09a7b869d14056f06d1d6f8ce370879b7d2444c8f5b462338813a8340c3d6d";
	const char *b = "7b09a87a43034c00b61c19a0651fe18cdde95dc9a3aca08c0f26d063f8bd8727";
	uint8_t ka[32], kb[32];
	char hex[65];

	srv_key_from_hex(a, ka);
	srv_key_from_hex(b, kb);
	srv_key_to_hex(ka, hex);
	CHECK(strcmp(hex, a) == 0, "round trip");
	CHECK(srv_key_common(ka, kb) == 5, "common %u", srv_key_common(ka, kb));
	CHECK(srv_key_common(ka, ka) == 64, "common self");
}

static void test_trailer(void)
{
	const uint8_t key[] = "secret";
	const char *pickle = "\x80\x04K\x01.";
	uint8_t buf[128], md[32];
	unsigned mdlen;
	size_t n = strlen(pickle), payload = 0;
	struct srv_hmac_key k = {(uint8_t *)key, 6};
	struct srv_sign sign = {&k, 1}, none = {NULL, 0};
	struct srv_error err;

	memcpy(buf, pickle, n);
	HMAC(EVP_sha256(), key, 6, buf, n, md, &mdlen);
	for (unsigned i = 0; i < mdlen; i++)
		sprintf((char *)buf + n + 2 * i, "%02x", md[i]);
	CHECK(srv_codec_has_trailer(buf, n + 64), "trailer");
	CHECK(!srv_codec_has_trailer(buf, n), "no trailer");
	CHECK(srv_codec_unsign(buf, n + 64, "f", &sign, &payload, &err) == 0 && payload == n,
	      "verifies");
	CHECK(srv_codec_unsign(buf, n + 64, "f", &none, &payload, &err) == 0 && payload == n,
	      "no key: stripped");
	CHECK(srv_codec_unsign(buf, n, "f", &none, &payload, &err) == 0 && payload == n,
	      "no key, plain");
	CHECK(srv_codec_unsign(buf, n, "f", &sign, &payload, &err) != 0 &&
	          err.code == RPC_E_EBADMSG,
	      "missing signature");
	buf[2] ^= 1;
	CHECK(srv_codec_unsign(buf, n + 64, "f", &sign, &payload, &err) != 0 &&
	          err.code == RPC_E_EBADMSG,
	      "altered");
}

static void test_equal(void)
{
	msgpack_sbuffer s1, s2;
	msgpack_unpacked u1, u2;
	char why[128];
	static const char *const eq[][2] = {
	    {"2", "2.0"},       {"[1, {\"a\": -3}]", "[1.0, {\"a\": -3.0}]"},
	    {"\"x\"", "\"x\""}, {"{\"a\": 1, \"b\": 2}", "{\"b\": 2, \"a\": 1}"},
	    {"null", "null"},
	};
	static const char *const ne[][2] = {
	    {"2", "\"2\""},
	    {"2", "2.5"},
	    {"NaN", "NaN"},
	    {"true", "1"},
	    {"[1]", "[1, 2]"},
	    {"{\"a\": 1}", "{\"a\": 1, \"b\": 2}"},
	    {"-1", "18446744073709551615"},
	};

	for (size_t i = 0; i < sizeof(eq) / sizeof(eq[0]); i++) {
		CHECK(parse(eq[i][0], &s1, &u1, why) == 0 && parse(eq[i][1], &s2, &u2, why) == 0 &&
		          srv_msgpack_equal(&u1.data, &u2.data, 0),
		      "%s == %s", eq[i][0], eq[i][1]);
		done(&s1, &u1);
		done(&s2, &u2);
	}
	for (size_t i = 0; i < sizeof(ne) / sizeof(ne[0]); i++) {
		CHECK(parse(ne[i][0], &s1, &u1, why) == 0 && parse(ne[i][1], &s2, &u2, why) == 0 &&
		          !srv_msgpack_equal(&u1.data, &u2.data, 0),
		      "%s != %s", ne[i][0], ne[i][1]);
		done(&s1, &u1);
		done(&s2, &u2);
	}
}

int main(void)
{
	test_sjson();
	test_keys();
	test_trailer();
	test_equal();
	printf("%s: %d checks, %d failure(s)\n", failures ? "FAIL" : "ok", checks, failures);
	return failures ? 1 : 0;
}

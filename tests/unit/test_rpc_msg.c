/*
 * test_rpc_msg.c: unit tests of rpc/rpc.c, buf.c, frame.c and msg.c: the error
 * table, capped buffers, frames (every truncation, oversize lengths, text where a
 * frame should be), the msgpack validator and builder (count and depth bombs,
 * garbage, agreement with msgpack-c), and the round trip of every message kind.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "frame.h"
#include "msg.h"
#include "rpc.h"
#define CHECK_STOP_AT_FIRST
#include "check.h"
#include "obj_same.h"

/* A reader over memory, handing out at most chunk bytes per call. */
struct mem_reader {
	const uint8_t *p;
	size_t len, off, chunk;
	int fail_at; /* return -EIO once off reaches this (-1: never) */
};

static ssize_t mem_read(void *ctx, void *buf, size_t len)
{
	struct mem_reader *m = ctx;
	size_t n = m->len - m->off;

	if (m->fail_at >= 0 && m->off >= (size_t)m->fail_at)
		return -EIO;
	if (n > len)
		n = len;
	if (m->chunk && n > m->chunk)
		n = m->chunk;
	memcpy(buf, m->p + m->off, n);
	m->off += n;
	return (ssize_t)n;
}

static void test_error_table(void)
{
	CHECK(strcmp(rpc_error_name(RPC_E_ENOENT), "ENOENT") == 0);
	CHECK(strcmp(rpc_error_name(RPC_E_AMBIGUOUS), "AMBIGUOUS") == 0);
	CHECK(strcmp(rpc_error_name(RPC_E__COUNT), "UNKNOWN") == 0);
	CHECK(strcmp(rpc_error_name((enum rpc_error) - 3), "UNKNOWN") == 0);
	CHECK_EQ(rpc_error_errno(RPC_E_AMBIGUOUS), ENOENT);
	CHECK_EQ(rpc_error_errno(RPC_E_CORRUPT), EIO);
	CHECK_EQ(rpc_error_errno(RPC_E_VERSION), EPROTO);
	CHECK_EQ(rpc_error_errno(RPC_E_ENOTSUP), 95);
	CHECK_EQ(rpc_error_errno(RPC_E__COUNT), EIO);
	CHECK(strcmp(rpc_error_message(RPC_E_EROFS), "the cache is served read-only") == 0);
	for (int e = RPC_OK + 1; e < RPC_E__COUNT; e++) {
		const char *n = rpc_error_name((enum rpc_error)e);
		CHECK_EQ(rpc_error_from_name(n, strlen(n)), e);
		CHECK(rpc_error_errno((enum rpc_error)e) > 0);
	}
	CHECK_EQ(rpc_error_from_name("ENOENTX", 7), RPC_E__COUNT);
	CHECK_EQ(rpc_error_from_name("ENOENTX", 6), RPC_E_ENOENT);
	CHECK_EQ(rpc_error_from_name("OK", 2), RPC_E__COUNT);
	CHECK_EQ(rpc_error_from_name(NULL, 0), RPC_E__COUNT);
	CHECK_EQ(rpc_error_from_errno(ENOENT), RPC_E_ENOENT);
	CHECK_EQ(rpc_error_from_errno(-EROFS), RPC_E_EROFS);
	CHECK_EQ(rpc_error_from_errno(EIO), RPC_E_EIO);
	CHECK_EQ(rpc_error_from_errno(EPROTO), RPC_E_EPROTO);
	CHECK_EQ(rpc_error_from_errno(EOPNOTSUPP), RPC_E_ENOTSUP);
	CHECK_EQ(rpc_error_from_errno(EXDEV), RPC_E_EIO);
	/* unlink in a sticky directory, or of an immutable file: may not remove it */
	CHECK_EQ(rpc_error_from_errno(EPERM), RPC_E_EACCES);

	const char *key = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
	CHECK(rpc_key_valid(key, 64));
	CHECK(!rpc_key_valid(key, 63));
	CHECK(rpc_key_prefix_valid(key, 4));
	CHECK(rpc_key_prefix_valid(key, 64));
	CHECK(!rpc_key_prefix_valid(key, 3));
	CHECK(!rpc_key_prefix_valid(key, 65));
	CHECK(!rpc_key_prefix_valid("ABCD", 4));
	CHECK(!rpc_key_prefix_valid("ab/d", 4));
	CHECK(!rpc_key_prefix_valid("abcg", 4));
	CHECK(!rpc_key_prefix_valid(NULL, 4));
}

static void test_buf(void)
{
	struct rpc_buf b;
	char big[1000];
	size_t len;
	char *s;

	rpc_buf_init(&b, 10);
	CHECK(b.data == NULL);
	CHECK_EQ(rpc_buf_adds(&b, "hello"), 0);
	CHECK_EQ(rpc_buf_addc(&b, ' '), 0);
	CHECK_EQ(rpc_buf_addf(&b, "%d", 123), 0);
	CHECK_EQ(b.len, 9);
	CHECK(strcmp(b.data, "hello 123") == 0);
	CHECK_EQ(rpc_buf_adds(&b, "ab"), -EMSGSIZE);
	CHECK_EQ(b.len, 9);
	CHECK(strcmp(b.data, "hello 123") == 0);
	CHECK_EQ(rpc_buf_addf(&b, "%s", "ab"), -EMSGSIZE);
	CHECK_EQ(rpc_buf_add(&b, "a", SIZE_MAX), -EMSGSIZE);
	CHECK_EQ(rpc_buf_addc(&b, '!'), 0);
	CHECK_EQ(b.len, 10);
	CHECK(b.cap <= 11);
	rpc_buf_reset(&b);
	CHECK_EQ(b.len, 0);
	CHECK(strcmp(b.data, "") == 0);
	rpc_buf_release(&b);
	CHECK(b.data == NULL);

	rpc_buf_init(&b, 100000);
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	for (int i = 0; i < 50; i++)
		CHECK_EQ(rpc_buf_addf(&b, "%s%d", big, i), 0);
	CHECK_EQ(b.len, 50 * 999 + 10 + 40 * 2);
	CHECK(memcmp(b.data + 999, "0x", 2) == 0);
	s = rpc_buf_detach(&b, &len);
	CHECK(s != NULL);
	CHECK_EQ(len, 50 * 999 + 90);
	CHECK_EQ(strlen(s), len);
	CHECK(b.data == NULL && b.len == 0);
	free(s);
	s = rpc_buf_detach(&b, &len);
	CHECK(s != NULL && s[0] == '\0' && len == 0);
	free(s);
	rpc_buf_release(&b);
}

static void test_frame_header(void)
{
	uint8_t h[4];
	uint32_t n;

	rpc_frame_put_header(h, 0x01020304);
	CHECK(h[0] == 1 && h[1] == 2 && h[2] == 3 && h[3] == 4);
	CHECK_EQ(rpc_frame_length(h, 0x01020304, &n), 0);
	CHECK_EQ(n, 0x01020304);
	CHECK_EQ(rpc_frame_length(h, 0x01020303, &n), -EMSGSIZE);
	rpc_frame_put_header(h, 0);
	CHECK_EQ(rpc_frame_length(h, 100, &n), -EPROTO);
	rpc_frame_put_header(h, UINT32_MAX);
	CHECK_EQ(rpc_frame_length(h, UINT32_MAX, &n), 0);
	CHECK_EQ(n, UINT32_MAX);
}

/* Packs a request with varied params into sb as one frame. */
static void pack_sample_request(msgpack_sbuffer *sb, uint32_t msgid)
{
	msgpack_packer pk;

	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	CHECK_EQ(rpc_frame_begin(sb), 0);
	CHECK_EQ(rpc_pack_request_head(&pk, msgid, "load_value", 4), 0);
	CHECK_EQ(rpc_pack_str(&pk, "abcd"), 0);
	CHECK_EQ(msgpack_pack_uint64(&pk, 1ull << 40), 0);
	CHECK_EQ(msgpack_pack_int64(&pk, -5), 0);
	CHECK_EQ(rpc_pack_str(&pk, NULL), 0);
	CHECK_EQ(rpc_frame_end(sb, RPC_MAX_FRAME_DEFAULT), 0);
}

static void test_frame_read(void)
{
	msgpack_sbuffer sb;
	struct rpc_buf out;
	struct mem_reader m;
	char err[256];
	int r;

	msgpack_sbuffer_init(&sb);
	pack_sample_request(&sb, 7);
	rpc_buf_init(&out, 0);

	/* Whole, in chunks of every size. */
	for (size_t chunk = 0; chunk <= 5; chunk++) {
		m = (struct mem_reader){(uint8_t *)sb.data, sb.size, 0, chunk, -1};
		CHECK_EQ(
		    rpc_frame_read(mem_read, &m, RPC_MAX_FRAME_DEFAULT, &out, err, sizeof(err)), 0);
		CHECK_EQ(out.len, sb.size - 4);
		CHECK(memcmp(out.data, sb.data + 4, out.len) == 0);
		CHECK_EQ(
		    rpc_frame_read(mem_read, &m, RPC_MAX_FRAME_DEFAULT, &out, err, sizeof(err)), 1);
	}
	/* Every truncation: a clean EOF only before the first byte. */
	for (size_t cut = 0; cut < sb.size; cut++) {
		m = (struct mem_reader){(uint8_t *)sb.data, cut, 0, 3, -1};
		r = rpc_frame_read(mem_read, &m, RPC_MAX_FRAME_DEFAULT, &out, err, sizeof(err));
		if (cut == 0) {
			CHECK_EQ(r, 1);
		} else {
			CHECK_EQ(r, -EPROTO);
			CHECK(strstr(err, "truncated frame") != NULL);
		}
	}
	/* The reader's own error. */
	m = (struct mem_reader){(uint8_t *)sb.data, sb.size, 0, 2, 6};
	CHECK_EQ(rpc_frame_read(mem_read, &m, RPC_MAX_FRAME_DEFAULT, &out, err, sizeof(err)), -EIO);
	CHECK(strstr(err, "cannot read") != NULL);

	/* Two frames back to back through the _at writers. */
	{
		msgpack_sbuffer two;
		msgpack_packer pk;
		size_t s1, s2;

		msgpack_sbuffer_init(&two);
		msgpack_packer_init(&pk, &two, msgpack_sbuffer_write);
		CHECK_EQ(rpc_frame_begin_at(&two, &s1), 0);
		CHECK_EQ(rpc_pack_response_ok_nil(&pk, 1), 0);
		CHECK_EQ(rpc_frame_end_at(&two, s1, 100), 0);
		CHECK_EQ(rpc_frame_begin_at(&two, &s2), 0);
		CHECK_EQ(s2, two.size - 4);
		CHECK_EQ(rpc_frame_end_at(&two, s2, 100), -EPROTO);
		CHECK_EQ(rpc_pack_response_ok_nil(&pk, 2), 0);
		CHECK_EQ(rpc_frame_end_at(&two, s2, 4), -EMSGSIZE);
		CHECK_EQ(rpc_frame_end_at(&two, s2, 100), 0);
		m = (struct mem_reader){(uint8_t *)two.data, two.size, 0, 0, -1};
		for (uint32_t id = 1; id <= 2; id++) {
			msgpack_zone z;
			struct rpc_response resp;
			msgpack_zone_init(&z, 256);
			CHECK_EQ(rpc_frame_read(mem_read, &m, 100, &out, err, sizeof(err)), 0);
			CHECK_EQ(
			    rpc_response_decode(out.data, out.len, &z, &resp, err, sizeof(err)), 0);
			CHECK_EQ(resp.msgid, id);
			CHECK(resp.error == NULL);
			CHECK(rpc_obj_is_nil(resp.result));
			msgpack_zone_destroy(&z);
		}
		CHECK_EQ(rpc_frame_read(mem_read, &m, 100, &out, err, sizeof(err)), 1);
		msgpack_sbuffer_destroy(&two);
	}

	/* Zero length. */
	{
		static const uint8_t zero[4] = {0, 0, 0, 0};
		m = (struct mem_reader){zero, 4, 0, 0, -1};
		CHECK_EQ(rpc_frame_read(mem_read, &m, 100, &out, err, sizeof(err)), -EPROTO);
		CHECK(strstr(err, "length 0") != NULL);
	}
	rpc_buf_release(&out);

	/* Oversize lengths are refused before any allocation. */
	{
		static const uint8_t huge[] = {0xff, 0xff, 0xff, 0xff, 1, 2, 3};
		static const uint8_t text[] = "Welcome to host\n";
		static const uint8_t bin[] = {0x7f, 0x00, 0x01, 0x02, 1};
		struct rpc_buf o2;

		rpc_buf_init(&o2, 0);
		m = (struct mem_reader){huge, sizeof(huge), 0, 0, -1};
		CHECK_EQ(rpc_frame_read(mem_read, &m, 1 << 20, &o2, err, sizeof(err)), -EMSGSIZE);
		CHECK(o2.data == NULL && o2.cap == 0);
		CHECK_EQ(m.off, 4);
		CHECK(strstr(err, "larger than the limit") != NULL);
		CHECK(strstr(err, "\\xff\\xff") != NULL);

		m = (struct mem_reader){text, sizeof(text) - 1, 0, 0, -1};
		CHECK_EQ(rpc_frame_read(mem_read, &m, RPC_MAX_FRAME_DEFAULT, &o2, err, sizeof(err)),
		         -EMSGSIZE);
		CHECK(o2.data == NULL);
		CHECK(strcmp(err, "the peer's output is not a flechefs frame: it starts with "
		                  "\"Welc\"") == 0);

		m = (struct mem_reader){bin, sizeof(bin), 0, 0, -1};
		CHECK_EQ(rpc_frame_read(mem_read, &m, RPC_MAX_FRAME_DEFAULT, &o2, err, sizeof(err)),
		         -EMSGSIZE);
		CHECK(strstr(err, "\"\\x7f\\x00\\x01\\x02\"") != NULL);
		rpc_buf_release(&o2);
	}
	{
		char d[32];
		static const uint8_t t[4] = {'a', '\n', '"', 0x80};
		rpc_frame_describe(t, 4, d, sizeof(d));
		CHECK(strcmp(d, "\"a\\n\\\"\\x80\"") == 0);
		rpc_frame_describe(t, 4, d, 4);
		CHECK_EQ(strlen(d), 3);
	}
	msgpack_sbuffer_destroy(&sb);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
	/* xorshift64* */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ull;
}

/* Packs a random object, at most depth levels of containers. */
static void pack_random(msgpack_packer *pk, int depth)
{
	static const char text[] = "abcdefghijklmnopqrstuvwxyz0123456789 \"\\\n\xc3\xa9";
	int kind = (int)(rng() % (depth > 0 ? 12 : 9));
	uint64_t v = rng();
	uint32_t n;

	switch (kind) {
	case 0:
		msgpack_pack_nil(pk);
		break;
	case 1:
		v & 1 ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
		break;
	case 2:
		msgpack_pack_uint64(pk, v >> (v % 64));
		break;
	case 3:
		msgpack_pack_int64(pk, -(int64_t)(v >> (1 + v % 63)));
		break;
	case 4: {
		double d;
		memcpy(&d, &v, sizeof(d));
		msgpack_pack_double(pk, d);
		break;
	}
	case 5:
		msgpack_pack_float(pk, (float)(int64_t)v / 1e9f);
		break;
	case 6:
		n = (uint32_t)(rng() % 40);
		msgpack_pack_str(pk, n);
		for (uint32_t i = 0; i < n; i++)
			msgpack_pack_str_body(pk, &text[rng() % (sizeof(text) - 1)], 1);
		break;
	case 7:
		n = (uint32_t)(rng() % 300);
		msgpack_pack_bin(pk, n);
		for (uint32_t i = 0; i < n; i++) {
			char c = (char)rng();
			msgpack_pack_bin_body(pk, &c, 1);
		}
		break;
	case 8:
		msgpack_pack_int32(pk, (int32_t)v);
		break;
	case 9:
	case 10:
		n = (uint32_t)(rng() % 20);
		msgpack_pack_array(pk, n);
		for (uint32_t i = 0; i < n; i++)
			pack_random(pk, depth - 1);
		break;
	default:
		n = (uint32_t)(rng() % 20);
		msgpack_pack_map(pk, n);
		for (uint32_t i = 0; i < n; i++) {
			pack_random(pk, 0);
			pack_random(pk, depth - 1);
		}
		break;
	}
}

static void test_validator_random(void)
{
	char err[256];

	for (int iter = 0; iter < 2000; iter++) {
		msgpack_sbuffer sb;
		msgpack_packer pk;
		msgpack_zone z1, z2;
		msgpack_object mine, theirs;
		size_t off = 0;

		msgpack_sbuffer_init(&sb);
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		pack_random(&pk, 6);
		msgpack_zone_init(&z1, 1024);
		msgpack_zone_init(&z2, 1024);
		CHECK_EQ(rpc_msgpack_unpack(sb.data, sb.size, RPC_MAX_DEPTH, &z1, &mine, err,
		                            sizeof(err)),
		         0);
		CHECK_EQ(msgpack_unpack(sb.data, sb.size, &off, &z2, &theirs),
		         MSGPACK_UNPACK_SUCCESS);
		CHECK(obj_same(&mine, &theirs));
		/* Every truncation and one extra byte fail. */
		for (size_t cut = 0; cut < sb.size; cut += 1 + sb.size / 64)
			CHECK_EQ(rpc_msgpack_check(sb.data, cut, RPC_MAX_DEPTH, NULL, 0), -EPROTO);
		msgpack_sbuffer_write(&sb, "\xc0", 1);
		CHECK_EQ(rpc_msgpack_check(sb.data, sb.size, RPC_MAX_DEPTH, err, sizeof(err)),
		         -EPROTO);
		CHECK(strstr(err, "1 bytes after") != NULL);
		msgpack_zone_destroy(&z1);
		msgpack_zone_destroy(&z2);
		msgpack_sbuffer_destroy(&sb);
	}
}

static void test_validator_bombs(void)
{
	char err[256];
	msgpack_zone z;
	msgpack_object o;

	/* An array declaring 2^32-1 elements in 10 bytes. */
	static const uint8_t count_bomb[10] = {0xdd, 0xff, 0xff, 0xff, 0xff,
	                                       0xc0, 0xc0, 0xc0, 0xc0, 0xc0};
	CHECK_EQ(rpc_msgpack_check(count_bomb, sizeof(count_bomb), RPC_MAX_DEPTH, err, sizeof(err)),
	         -EPROTO);
	CHECK(strstr(err, "declares 4294967295 elements") != NULL);
	msgpack_zone_init(&z, 64);
	CHECK_EQ(rpc_msgpack_unpack(count_bomb, sizeof(count_bomb), RPC_MAX_DEPTH, &z, &o, err,
	                            sizeof(err)),
	         -EPROTO);
	msgpack_zone_destroy(&z);

	/* Maps need two bytes per entry; nested counts add up. */
	static const uint8_t map_bomb[] = {0x83, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0};
	CHECK_EQ(rpc_msgpack_check(map_bomb, sizeof(map_bomb), RPC_MAX_DEPTH, NULL, 0), -EPROTO);
	static const uint8_t map_ok[] = {0x83, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0};
	CHECK_EQ(rpc_msgpack_check(map_ok, sizeof(map_ok), RPC_MAX_DEPTH, NULL, 0), 0);
	static const uint8_t nested[] = {0x92, 0x93, 0xc0, 0xc0, 0xc0};
	CHECK_EQ(rpc_msgpack_check(nested, sizeof(nested), RPC_MAX_DEPTH, err, sizeof(err)),
	         -EPROTO);
	static const uint8_t str_bomb[] = {0xdb, 0x7f, 0xff, 0xff, 0xff, 'a'};
	CHECK_EQ(rpc_msgpack_check(str_bomb, sizeof(str_bomb), RPC_MAX_DEPTH, err, sizeof(err)),
	         -EPROTO);
	CHECK(strstr(err, "str at byte 0") != NULL);

	/* Depth: 64 nested arrays pass (deeper than msgpack-c's own limit of 32), 65 fail. */
	uint8_t deep[200];
	for (int d = 1; d <= 66; d++) {
		memset(deep, 0x91, (size_t)d);
		deep[d] = 0x01;
		msgpack_zone_init(&z, 64);
		int r = rpc_msgpack_unpack(deep, (size_t)d + 1, RPC_MAX_DEPTH, &z, &o, err,
		                           sizeof(err));
		if (d <= RPC_MAX_DEPTH) {
			CHECK_EQ(r, 0);
			const msgpack_object *p = &o;
			for (int i = 0; i < d; i++) {
				CHECK(p->type == MSGPACK_OBJECT_ARRAY && p->via.array.size == 1);
				p = p->via.array.ptr;
			}
			CHECK(p->type == MSGPACK_OBJECT_POSITIVE_INTEGER && p->via.u64 == 1);
		} else {
			CHECK_EQ(r, -EPROTO);
			CHECK(strstr(err, "nested deeper than 64") != NULL);
		}
		msgpack_zone_destroy(&z);
	}
	/* Empty containers count for depth too; a large depth bomb fails fast. */
	memset(deep, 0x91, sizeof(deep));
	deep[sizeof(deep) - 1] = 0x90;
	CHECK_EQ(rpc_msgpack_check(deep, sizeof(deep), RPC_MAX_DEPTH, NULL, 0), -EPROTO);
	CHECK_EQ(rpc_msgpack_check(deep, sizeof(deep), 1000, NULL, 0), 0);
	{
		static uint8_t huge_deep[100000];
		memset(huge_deep, 0x91, sizeof(huge_deep));
		huge_deep[sizeof(huge_deep) - 1] = 0xc0;
		CHECK_EQ(rpc_msgpack_check(huge_deep, sizeof(huge_deep), 100000, NULL, 0), -EPROTO);
	}

	/* Ext types, the reserved byte, empty input. */
	static const uint8_t ext[] = {0xd4, 0x01, 0x00};
	CHECK_EQ(rpc_msgpack_check(ext, sizeof(ext), RPC_MAX_DEPTH, err, sizeof(err)), -EPROTO);
	CHECK(strstr(err, "ext") != NULL);
	static const uint8_t ext_in_array[] = {0x91, 0xc7, 0x00, 0x05};
	CHECK_EQ(rpc_msgpack_check(ext_in_array, sizeof(ext_in_array), RPC_MAX_DEPTH, NULL, 0),
	         -EPROTO);
	static const uint8_t reserved[] = {0xc1};
	CHECK_EQ(rpc_msgpack_check(reserved, 1, RPC_MAX_DEPTH, err, sizeof(err)), -EPROTO);
	CHECK(strstr(err, "0xc1") != NULL);
	CHECK_EQ(rpc_msgpack_check("", 0, RPC_MAX_DEPTH, NULL, 0), -EPROTO);
	/* Two objects are not one. */
	CHECK_EQ(rpc_msgpack_check("\x01\x02", 2, RPC_MAX_DEPTH, NULL, 0), -EPROTO);
}

static void test_garbage(void)
{
	uint8_t buf[64];
	char err[256];
	int accepted = 0;

	for (int iter = 0; iter < 200000; iter++) {
		size_t len = 1 + rng() % sizeof(buf);
		msgpack_zone z;
		msgpack_object o;
		struct rpc_request req;
		struct rpc_response resp;
		bool have;

		for (size_t i = 0; i < len; i++)
			buf[i] = (uint8_t)rng();
		/* Bias towards containers so that deeper paths are exercised. */
		if (iter % 2)
			buf[0] = (uint8_t)(0x94);
		msgpack_zone_init(&z, 256);
		int r = rpc_msgpack_unpack(buf, len, RPC_MAX_DEPTH, &z, &o, err, sizeof(err));
		CHECK(r == 0 || r == -EPROTO);
		if (r == 0) {
			msgpack_zone z2;
			msgpack_object o2;
			size_t off = 0;
			accepted++;
			msgpack_zone_init(&z2, 256);
			CHECK_EQ(msgpack_unpack((const char *)buf, len, &off, &z2, &o2),
			         MSGPACK_UNPACK_SUCCESS);
			CHECK(obj_same(&o, &o2));
			msgpack_zone_destroy(&z2);
		}
		r = rpc_request_decode(buf, len, &z, &req, &have, err, sizeof(err));
		CHECK(r == 0 || r == -EPROTO);
		r = rpc_response_decode(buf, len, &z, &resp, err, sizeof(err));
		CHECK(r == 0 || r == -EPROTO);
		if (r == 0) {
			struct rpc_error_info info;
			rpc_error_decode(resp.error, &info);
			CHECK(info.err_no > 0);
		}
		msgpack_zone_destroy(&z);
	}
	CHECK(accepted > 100);
}

static void test_request_round_trip(void)
{
	msgpack_sbuffer sb;
	struct rpc_request req;
	msgpack_zone z;
	char err[256];
	bool have;
	const char *s;
	size_t n;
	uint64_t u;
	int64_t i;

	msgpack_sbuffer_init(&sb);
	pack_sample_request(&sb, 4000000000u);
	msgpack_zone_init(&z, 256);
	CHECK_EQ(rpc_request_decode(sb.data + 4, sb.size - 4, &z, &req, &have, err, sizeof(err)),
	         0);
	CHECK(have);
	CHECK_EQ(req.msgid, 4000000000u);
	CHECK(req.method_len == 10 && memcmp(req.method, "load_value", 10) == 0);
	CHECK_EQ(req.params->via.array.size, 4);
	CHECK_EQ(rpc_obj_str(rpc_array_get(req.params, 0), &s, &n), 0);
	CHECK(n == 4 && memcmp(s, "abcd", 4) == 0);
	CHECK_EQ(rpc_obj_uint(rpc_array_get(req.params, 1), &u), 0);
	CHECK_EQ(u, 1ull << 40);
	CHECK_EQ(rpc_obj_int(rpc_array_get(req.params, 2), &i), 0);
	CHECK_EQ(i, -5);
	CHECK_EQ(rpc_obj_uint(rpc_array_get(req.params, 2), &u), -EINVAL);
	CHECK(rpc_obj_is_nil(rpc_array_get(req.params, 3)));
	CHECK(rpc_obj_is_nil(rpc_array_get(req.params, 4)));
	CHECK(rpc_array_get(req.params, 4) == NULL);
	CHECK_EQ(rpc_obj_str(rpc_array_get(req.params, 4), &s, &n), -EINVAL);

	/* Every truncation of the message fails cleanly, without a msgid. */
	for (size_t cut = 0; cut < sb.size - 4; cut++) {
		CHECK_EQ(rpc_request_decode(sb.data + 4, cut, &z, &req, &have, err, sizeof(err)),
		         -EPROTO);
		CHECK(!have);
		CHECK(err[0] != '\0');
	}
	msgpack_zone_destroy(&z);
	msgpack_sbuffer_destroy(&sb);

	/* Well-formed but not a request: the msgid is readable or not. */
	static const struct {
		const char *bytes;
		size_t len;
		bool have;
		uint32_t msgid;
		const char *msg;
	} bad[] = {
	    {"\x94\x00\x07\x05\x90", 5, true, 7, "method"},
	    {"\x94\x00\x07\xa1x\xc0", 6, true, 7, "params"},
	    {"\x93\x00\x07\xa1x", 5, true, 7, "3 elements"},
	    {"\x94\x01\x07\xa1x\x90", 6, true, 7, "type is not 0"},
	    {"\x94\x00\xff\xa1x\x90", 6, false, 0, "msgid"},
	    {"\x94\x00\xcf\x00\x00\x00\x01\x00\x00\x00\x00\xa1x\x90", 14, false, 0, "msgid"},
	    {"\x94\x00\xce\xff\xff\xff\xff\xa1x\x90", 10, true, 0xffffffffu, NULL},
	    {"\x81\x00\x07", 3, false, 0, "map"},
	    {"\x07", 1, false, 0, "int"},
	    {"\x91\x00", 2, false, 0, "1 elements"},
	};
	for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
		msgpack_zone_init(&z, 256);
		int r =
		    rpc_request_decode(bad[k].bytes, bad[k].len, &z, &req, &have, err, sizeof(err));
		if (!bad[k].msg) {
			CHECK_EQ(r, 0);
		} else {
			CHECK_EQ(r, -EPROTO);
			if (!strstr(err, bad[k].msg))
				fprintf(stderr, "case %zu: %s\n", k, err);
			CHECK(strstr(err, bad[k].msg) != NULL);
		}
		CHECK_EQ(have, bad[k].have);
		if (have)
			CHECK_EQ(req.msgid, bad[k].msgid);
		msgpack_zone_destroy(&z);
	}
	/* have_msgid may be NULL. */
	msgpack_zone_init(&z, 256);
	CHECK_EQ(rpc_request_decode("\x07", 1, &z, &req, NULL, NULL, 0), -EPROTO);
	msgpack_zone_destroy(&z);
}

static void test_response_round_trip(void)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	struct rpc_response resp;
	struct rpc_error_info info;
	msgpack_zone z;
	char err[256];
	const void *p;
	size_t n;
	bool b;
	double d;
	const char *cands[70];
	char keys[70][65];

	/* An ok response with a map result. */
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	CHECK_EQ(rpc_pack_response_ok_head(&pk, 42), 0);
	msgpack_pack_map(&pk, 3);
	rpc_pack_str(&pk, "read_only");
	msgpack_pack_true(&pk);
	rpc_pack_str(&pk, "mtime");
	msgpack_pack_double(&pk, 1795635855.9959028);
	rpc_pack_strn(&pk, "data\0x", 6);
	rpc_pack_bin(&pk, "\x00\x01\x02", 3);
	msgpack_zone_init(&z, 256);
	CHECK_EQ(rpc_response_decode(sb.data, sb.size, &z, &resp, err, sizeof(err)), 0);
	CHECK_EQ(resp.msgid, 42);
	CHECK(resp.error == NULL);
	CHECK_EQ(rpc_obj_bool(rpc_map_get(resp.result, "read_only"), &b), 0);
	CHECK(b);
	CHECK_EQ(rpc_obj_double(rpc_map_get(resp.result, "mtime"), &d), 0);
	CHECK(d == 1795635855.9959028);
	CHECK(rpc_map_get(resp.result, "data") == NULL);
	CHECK(rpc_map_get(resp.result, "missing") == NULL);
	CHECK(rpc_map_get(NULL, "missing") == NULL);
	CHECK_EQ(rpc_obj_bin(&resp.result->via.map.ptr[2].val, &p, &n), 0);
	CHECK(n == 3 && memcmp(p, "\x00\x01\x02", 3) == 0);
	for (size_t cut = 0; cut < sb.size; cut++)
		CHECK_EQ(rpc_response_decode(sb.data, cut, &z, &resp, err, sizeof(err)), -EPROTO);
	/* A request is not a response. */
	msgpack_sbuffer_clear(&sb);
	rpc_pack_request_head(&pk, 1, "hello", 0);
	CHECK_EQ(rpc_response_decode(sb.data, sb.size, &z, &resp, err, sizeof(err)), -EPROTO);
	CHECK(strstr(err, "not a response") != NULL);
	msgpack_zone_destroy(&z);

	/* Every error of the table round-trips, with the default or a given message. */
	for (int e = RPC_OK + 1; e < RPC_E__COUNT; e++) {
		msgpack_sbuffer_clear(&sb);
		if (e % 2)
			CHECK_EQ(rpc_pack_response_error(&pk, (uint32_t)e, (enum rpc_error)e, NULL),
			         0);
		else
			CHECK_EQ(rpc_pack_response_errorf(&pk, (uint32_t)e, (enum rpc_error)e,
			                                  "no such key '%s'", "abcd"),
			         0);
		msgpack_zone_init(&z, 256);
		CHECK_EQ(rpc_response_decode(sb.data, sb.size, &z, &resp, err, sizeof(err)), 0);
		CHECK_EQ(resp.msgid, e);
		CHECK(resp.error != NULL);
		CHECK(rpc_obj_is_nil(resp.result));
		rpc_error_decode(resp.error, &info);
		CHECK_EQ(info.code, e);
		CHECK_EQ(info.err_no, rpc_error_errno((enum rpc_error)e));
		CHECK(strcmp(info.name, rpc_error_name((enum rpc_error)e)) == 0);
		CHECK(strcmp(info.message, e % 2 ? rpc_error_message((enum rpc_error)e)
		                                 : "no such key 'abcd'") == 0);
		CHECK_EQ(info.ncandidates, 0);
		msgpack_zone_destroy(&z);
	}
	/* An out-of-table code is packed as EIO. */
	msgpack_sbuffer_clear(&sb);
	CHECK_EQ(rpc_pack_response_error(&pk, 1, RPC_E__COUNT, "x"), 0);
	msgpack_zone_init(&z, 256);
	CHECK_EQ(rpc_response_decode(sb.data, sb.size, &z, &resp, err, sizeof(err)), 0);
	rpc_error_decode(resp.error, &info);
	CHECK_EQ(info.code, RPC_E_EIO);
	msgpack_zone_destroy(&z);

	/* AMBIGUOUS with candidates: at most 64 are sent. */
	for (int k = 0; k < 70; k++) {
		snprintf(keys[k], sizeof(keys[k]), "abcd%060d", k);
		cands[k] = keys[k];
	}
	msgpack_sbuffer_clear(&sb);
	CHECK_EQ(
	    rpc_pack_response_ambiguous(&pk, 9, "prefix 'abcd' matches 70 keys", cands, 70, 62), 0);
	msgpack_zone_init(&z, 256);
	CHECK_EQ(rpc_response_decode(sb.data, sb.size, &z, &resp, err, sizeof(err)), 0);
	rpc_error_decode(resp.error, &info);
	CHECK_EQ(info.code, RPC_E_AMBIGUOUS);
	CHECK_EQ(info.err_no, ENOENT);
	CHECK_EQ(info.ncandidates, 64);
	CHECK_EQ(info.needed, 62);
	CHECK(strcmp(info.candidates[0], keys[0]) == 0);
	CHECK(strcmp(info.candidates[63], keys[63]) == 0);
	CHECK(strcmp(info.message, "prefix 'abcd' matches 70 keys") == 0);
	msgpack_zone_destroy(&z);
	msgpack_sbuffer_destroy(&sb);
}

/* Decodes an error map written as raw msgpack bytes. */
static void decode_error_bytes(const char *bytes, size_t len, struct rpc_error_info *info)
{
	msgpack_zone z;
	msgpack_object o;

	msgpack_zone_init(&z, 256);
	char err[256] = "";
	int r = rpc_msgpack_unpack(bytes, len, RPC_MAX_DEPTH, &z, &o, err, sizeof(err));
	if (r < 0)
		fprintf(stderr, "%s\n", err);
	CHECK_EQ(r, 0);
	rpc_error_decode(&o, info);
	msgpack_zone_destroy(&z);
}

static void test_error_decode_odd(void)
{
	struct rpc_error_info info;

	rpc_error_decode(NULL, &info);
	CHECK_EQ(info.code, RPC_E__COUNT);
	CHECK_EQ(info.err_no, EIO);
	/* {} */
	decode_error_bytes("\x80", 1, &info);
	CHECK_EQ(info.code, RPC_E__COUNT);
	CHECK_EQ(info.err_no, EIO);
	CHECK(info.name[0] == '\0' && info.message[0] == '\0');
	/* {"name": "ESTALE2", "errno": 116, "extra": [1]} */
	decode_error_bytes("\x83\xa4name\xa7"
	                   "ESTALE2\xa5"
	                   "errno\x74\xa5"
	                   "extra\x91\x01",
	                   29, &info);
	CHECK_EQ(info.code, RPC_E__COUNT);
	CHECK_EQ(info.err_no, 116);
	CHECK(strcmp(info.name, "ESTALE2") == 0);
	/* {"name": 5, "errno": "x", "message": nil} */
	decode_error_bytes("\x83\xa4name\x05\xa5"
	                   "errno\xa1x\xa7message\xc0",
	                   24, &info);
	CHECK_EQ(info.code, RPC_E__COUNT);
	CHECK_EQ(info.err_no, EIO);
	/* {"name": "EROFS", "errno": -1} keeps the table's errno */
	decode_error_bytes("\x82\xa4name\xa5"
	                   "EROFS\xa5"
	                   "errno\xff",
	                   19, &info);
	CHECK_EQ(info.code, RPC_E_EROFS);
	CHECK_EQ(info.err_no, EROFS);
	/* {"candidates": ["ab", 3, "<65 chars>"], "needed": -2} */
	{
		char m[120];
		size_t n = 0;
		memcpy(m + n,
		       "\x82\xaa"
		       "candidates\x93\xa2"
		       "ab\x03\xd9\x41",
		       19);
		n += 19;
		memset(m + n, 'a', 65);
		n += 65;
		memcpy(m + n, "\xa6needed\xfe", 8);
		n += 8;
		decode_error_bytes(m, n, &info);
		CHECK_EQ(info.ncandidates, 1);
		CHECK(strcmp(info.candidates[0], "ab") == 0);
		CHECK_EQ(info.needed, 0);
	}
	/* A long message is truncated, not overflowed. */
	{
		static char m[700];
		m[0] = (char)0x81;
		memcpy(m + 1, "\xa7message\xda\x02\x58", 11);
		memset(m + 12, 'm', 600);
		decode_error_bytes(m, 612, &info);
		CHECK_EQ(strlen(info.message), sizeof(info.message) - 1);
	}
	/* Not a map. */
	decode_error_bytes("\x92\x01\x02", 3, &info);
	CHECK_EQ(info.err_no, EIO);
}

int main(void)
{
	test_error_table();
	test_buf();
	test_frame_header();
	test_frame_read();
	test_validator_bombs();
	test_validator_random();
	test_garbage();
	test_request_round_trip();
	test_response_round_trip();
	test_error_decode_odd();
	return check_report("test_rpc_msg");
}

/*
 * test_cache_parts.c: the storage layer's parts on their own: the NaN-tolerant JSON
 * reader (sjson), the key index helpers, the HMAC trailer logic, msgpack
 * equality of query matching, values whose mapped file is truncated under them
 * (a clean CORRUPT error, not SIGBUS), and inputs the fuzz harnesses found, kept in
 * tests/fuzz/corpus-*.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <msgpack.h>
#include <openssl/hmac.h>

#include "cache.h"
#include "filecodec.h"
#include "keyindex.h"
#include "msg.h"
#include "pickle.h"
#include "query.h"
#include "json_reader.h"
#include "record.h"
#include "views.h"
#include "check.h"

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
	/* the deepest JSON a metadata block may hold, a big integer innermost, fills a
	 * metadata map (the block at its level 2) to exactly SRV_META_MAX_DEPTH */
	for (int d = SRV_SJSON_MAX_DEPTH; d <= SRV_SJSON_MAX_DEPTH + 1; d++) {
		char text[2 * SRV_SJSON_MAX_DEPTH + 64];
		msgpack_packer pk;
		int n = 0, rc;

		for (int i = 0; i < d; i++)
			text[n++] = '[';
		n += snprintf(text + n, sizeof(text) - (size_t)n, "123456789012345678901234567890");
		for (int i = 0; i < d; i++)
			text[n++] = ']';
		msgpack_sbuffer_init(&sb);
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		rc = msgpack_pack_map(&pk, 1) || rpc_pack_str(&pk, "b") ? -2
		     : srv_sjson_pack(text, (size_t)n, &pk, why, sizeof(why));
		if (d == SRV_SJSON_MAX_DEPTH)
			CHECK(rc == 0 &&
			          rpc_msgpack_check(sb.data, sb.size, SRV_META_MAX_DEPTH, NULL, 0) == 0 &&
			          rpc_msgpack_check(sb.data, sb.size, SRV_META_MAX_DEPTH - 1, NULL, 0) != 0,
			      "%d levels of JSON fill the metadata map to its limit: %s", d, why);
		else
			CHECK(rc == -1 && strstr(why, "deep"), "%d levels are refused: %s", d, why);
		msgpack_sbuffer_destroy(&sb);
	}
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
	{
		/* the one-pass scan and the full parser agree (json.dumps output and odd cases) */
		static const struct {
			const char *text;
			int rc;
			double want;
		} cases[] = {
		    {"{\"timestart\": 1767225600.0, \"cputime\": 0.00045000000000000004, "
		     "\"timestop\": 1767225600.0005, \"walltime\": 0.0005}",
		     0, 1767225600.0005},
		    {"{\"a\": \"\\\"timestop\\\": 9\", \"timestop\": 4}", 0, 4},
		    {"{\"a\": [{\"timestop\": 9}], \"b\": {\"c\": {}}, \"timestop\": -2.5e-3}", 0,
		     -2.5e-3},
		    {"{\"time\\u0073top\": 3}", 0, 3},
		    {"{\"timestop\": 12345678901234567890123}", 0, 12345678901234567890123.0},
		    {"{\"timestop\":7}", 0, 7},
		    {"  {\n\"timestop\" :\t-0 }", 0, 0},
		    {"{\"timestop\": -Infinity}", 0, -INFINITY},
		    {"{\"timestop\": \"1\"}", -1, 0},
		    {"{\"x\": 1}", -1, 0},
		    {"[{\"timestop\": 1}]", -1, 0},
		    {"{\"timestop\"", -1, 0},
		};

		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
			double d = -1;
			int rc =
			    srv_sjson_number(cases[i].text, strlen(cases[i].text), "timestop", &d);

			CHECK(rc == cases[i].rc && (rc != 0 || d == cases[i].want),
			      "timestop of %s: rc %d, %.17g", cases[i].text, rc, d);
		}
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

static int write_file(const char *path, const uint8_t *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = write(fd, data, len);
	close(fd);
	return n == (ssize_t)len ? 0 : -1;
}

/*
 * A value is mapped, then its file is truncated by "someone else": reads past the
 * new end are CORRUPT errors naming the file (the SIGBUS guard), never a crash.
 */
static void test_value_sigbus(void)
{
	static const char k1[] = "11111111111111111111111111111111"
	                         "11111111111111111111111111111111";
	static const char k2[] = "22222222222222222222222222222222"
	                         "22222222222222222222222222222222";
	enum { LEN = 64 * 1024 };
	char dir[256], sub[300], p1[400], p2[400], cmd[300];
	uint8_t *data = malloc(LEN), *buf = malloc(LEN);
	struct srv_config cfg = {0};
	struct srv_cache *c = NULL;
	struct srv_value *v = NULL, *w = NULL;
	struct srv_error err = {0};
	volatile uint8_t sink = 0;
	pid_t pid;
	int status = 0;

	snprintf(dir, sizeof(dir), "%s/flechefs-test-sigbus-XXXXXX",
	         getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!data || !buf || !mkdtemp(dir)) {
		CHECK(0, "setup: %s", strerror(errno));
		goto out;
	}
	for (size_t i = 0; i < LEN; i++)
		data[i] = (uint8_t)(i * 7 + 1);
	snprintf(sub, sizeof(sub), "%s/calls", dir);
	CHECK(mkdir(sub, 0755) == 0, "mkdir calls");
	snprintf(sub, sizeof(sub), "%s/values", dir);
	CHECK(mkdir(sub, 0755) == 0, "mkdir values");
	snprintf(p1, sizeof(p1), "%s/%s", sub, k1);
	snprintf(p2, sizeof(p2), "%s/%s", sub, k2);
	CHECK(write_file(p1, data, LEN) == 0 && write_file(p2, data, LEN) == 0, "write values");
	cfg.root = dir;
	cfg.read_only = true;
	if (srv_cache_open(&cfg, &c, &err) != 0) {
		CHECK(0, "open: %s", err.message);
		goto out;
	}
	if (srv_value_open(c, k1, 64, &v, &err) != 0 || srv_value_open(c, k2, 64, &w, &err) != 0) {
		CHECK(0, "value open: %s", err.message);
		goto out;
	}
	CHECK(srv_value_size(v) == LEN, "size");
	CHECK(srv_value_copy(v, 0, buf, LEN, &err) == 0 && memcmp(buf, data, LEN) == 0,
	      "whole copy: %s", err.message);
	CHECK(srv_value_copy(v, LEN - 10, buf, 11, &err) == -1 && err.code == RPC_E_EINVAL,
	      "range past the end is EINVAL");
	CHECK(srv_value_check(v, &err) == 0 && srv_value_check_file(v, &err) == 0,
	      "intact value checks");

	/* someone else truncates both files to one page */
	CHECK(truncate(p1, 4096) == 0 && truncate(p2, 4096) == 0, "truncate");
	CHECK(srv_value_copy(v, 0, buf, 4096, &err) == 0 && memcmp(buf, data, 4096) == 0,
	      "the bytes the file still has: %s", err.message);
	memset(&err, 0, sizeof(err));
	CHECK(srv_value_copy(v, 8192, buf, 4096, &err) == -1 && err.code == RPC_E_CORRUPT &&
	          strstr(err.message, p1),
	      "a read past the new end is CORRUPT naming the file: %d %s", err.code, err.message);
	CHECK(srv_value_copy(v, 0, buf, 16, &err) == -1 && err.code == RPC_E_CORRUPT,
	      "a damaged value stays damaged");
	/* without reading: srv_value_check sees the truncation (fstat) */
	memset(&err, 0, sizeof(err));
	CHECK(srv_value_check(w, &err) == 0, "nothing read yet: no damage seen");
	CHECK(srv_value_check_file(w, &err) == -1 && err.code == RPC_E_CORRUPT &&
	          strstr(err.message, p2),
	      "check of a truncated value: %s", err.message);
	/* reading the bytes directly (as a parser does) yields zeros, then check fails */
	sink = srv_value_bytes(w)[LEN - 1];
	CHECK(sink == 0, "a missing page reads as zeros");
	CHECK(srv_value_check(w, &err) == -1 && err.code == RPC_E_CORRUPT, "check after a read");
	srv_value_close(v);
	srv_value_close(w);
	v = w = NULL;
	/* reopened: the file as it is now */
	CHECK(srv_value_open(c, k1, 64, &v, &err) == 0 && srv_value_size(v) == 4096 &&
	          srv_value_copy(v, 0, buf, 4096, &err) == 0 && memcmp(buf, data, 4096) == 0 &&
	          srv_value_check_file(v, &err) == 0,
	      "reopened after truncation: %s", err.message);

	/* a SIGBUS outside every guarded mapping still ends the process */
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		if (null >= 0)
			dup2(null, 2); /* quiet a sanitizer's report of it */
		raise(SIGBUS);
		_exit(0);
	}
	CHECK(pid > 0 && waitpid(pid, &status, 0) == pid &&
	          !(WIFEXITED(status) && WEXITSTATUS(status) == 0),
	      "an unguarded SIGBUS is not swallowed (status %d)", status);
out:
	srv_value_close(v);
	srv_value_close(w);
	srv_cache_free(c);
	if (dir[0] && strstr(dir, "flechefs-test-sigbus-")) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			printf("cannot remove %s\n", dir);
	}
	free(data);
	free(buf);
}

/* The bytes of tests/fuzz/<name> (malloc'd), or NULL when the source tree is not found. */
static uint8_t *corpus_file(const char *name, size_t *len)
{
	const char *src = getenv("FLECHEFS_SOURCE");
	char path[4096];
	struct stat st;
	uint8_t *buf;
	FILE *f;

	snprintf(path, sizeof(path), "%s/tests/fuzz/%s", src ? src : ".", name);
	if (stat(path, &st) != 0 || !(f = fopen(path, "rb")))
		return NULL;
	buf = malloc((size_t)st.st_size + 1);
	*len = buf ? fread(buf, 1, (size_t)st.st_size, f) : 0;
	fclose(f);
	return buf;
}

/*
 * A 409-byte pickle of dicts shared and nested into one another (DUP, BUILD): 2^n
 * paths through a few hundred nodes, with cycles. Every server walk of it ends at
 * once with an error: record packing meets the cycle at the depth limit, the json
 * view refuses the cycle.
 */
static void test_regress_shared_dag(void)
{
	size_t len = 0, end, budget = SRV_META_MAX_NODES;
	uint8_t *buf = corpus_file("corpus-pickle/regress-shared-dag", &len);
	struct pk_doc *doc = NULL;
	struct rpc_buf out = RPC_BUF_INIT(1u << 20);
	struct srv_error err = {0};
	msgpack_sbuffer sb;
	msgpack_packer pk;
	char why[256];
	int rc;

	CHECK(buf != NULL, "corpus-pickle/regress-shared-dag found (FLECHEFS_SOURCE)");
	if (!buf)
		return;
	CHECK(pk_parse(buf, len, NULL, &doc, &end, why, sizeof(why)) == 0, "parses: %s", why);
	if (doc) {
		msgpack_sbuffer_init(&sb);
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		rc = srv_record_pack_node(&pk, pk_doc_root(doc), 0, &budget);
		CHECK(rc == -EOVERFLOW && SRV_META_MAX_NODES - budget < 10000,
		      "packed as metadata: too deep after %zu nodes (%d)",
		      (size_t)(SRV_META_MAX_NODES - budget), rc);
		msgpack_sbuffer_destroy(&sb);
		CHECK(srv_view_json(pk_doc_root(doc), NULL, NULL, &out, &err) == -1 &&
		          err.code == RPC_E_ELOOP,
		      "json view: %s", err.message);
	}
	rpc_buf_release(&out);
	pk_doc_free(doc);
	free(buf);
}

/*
 * A call record file whose metadata nests tuples 68 deep (the first byte picks the
 * fuzz harness's record-file path): read as the server reads it, the record comes
 * whole with its metadata refused, not cut.
 */
static void test_regress_deep_metadata(void)
{
	size_t len = 0, end;
	uint8_t *buf = corpus_file("corpus-cache/regress-deep-metadata", &len);
	struct pk_doc *doc = NULL;
	struct srv_blob blob = {0};
	struct srv_record rec;
	struct srv_error err = {0};
	struct stat st;
	char path[] = "/tmp/flechefs-test-record-XXXXXX", why[256];
	int fd = mkstemp(path);

	CHECK(buf != NULL && len > 1 && fd >= 0, "corpus-cache/regress-deep-metadata found");
	if (!buf || len < 2 || fd < 0)
		goto out;
	/* a regular file: stored files are never read through a link like /proc/self/fd */
	CHECK(write(fd, buf + 1, len - 1) == (ssize_t)(len - 1), "write");
	CHECK(srv_codec_read_record(path, NULL, SRV_RECORD_MAX, &blob, &st, &err) == 0,
	      "read: %s", err.message);
	if (pk_parse(blob.data, blob.len, NULL, &doc, &end, why, sizeof(why)) != 0) {
		CHECK(0, "parse: %s", why);
		goto out;
	}
	if (srv_record_from_pickle(pk_doc_root(doc), "k", "regress", &rec, &err) != 0) {
		CHECK(0, "record: %s", err.message);
		goto out;
	}
	CHECK(rec.metadata_error && strstr(rec.metadata_error, "nests deeper than"),
	      "metadata refused: %s", rec.metadata_error ? rec.metadata_error : "(not refused)");
	CHECK(rec.metadata_len == 1 && (unsigned char)rec.metadata[0] == 0x80,
	      "metadata is an empty map");
	/* (the fuzzer renamed its result field: a record without a result) */
	CHECK(rec.name && strcmp(rec.name, "greet") == 0 && rec.narguments == 3 &&
	          strcmp(rec.arguments[2].name, "shout") == 0 && !rec.has_result,
	      "the rest of the record is whole");
	srv_record_release(&rec);
out:
	pk_doc_free(doc);
	srv_blob_release(&blob);
	if (fd >= 0) {
		close(fd);
		unlink(path);
	}
	free(buf);
}

int main(void)
{
	test_sjson();
	test_keys();
	test_trailer();
	test_equal();
	test_value_sigbus();
	test_regress_shared_dag();
	test_regress_deep_metadata();
	return check_report("test_cache_parts");
}

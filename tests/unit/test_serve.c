/*
 * test_serve.c: srv_serve (server/serve.c) over a pair of pipes, with many requests
 * in flight at once, so that its reader, workers and writer run together (under the
 * AddressSanitizer build too): every request is answered exactly once, in whole
 * frames, with the right bytes (large load_value ranges, written with zero copy, and
 * small ones); requests before hello are EPROTO in order; eight stat_values of one
 * 5 MiB gzip value at once (inflated to a temporary file, once) all give its size;
 * a request whose msgid is readable but which is not a request is EPROTO and the
 * session goes on; end of input after the last request still gets every answer, and
 * srv_serve returns 0. A message without a readable msgid ends the session (-1)
 * after the requests before it were answered.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <msgpack.h>
#include <zlib.h>

#include "buf.h"
#include "cache.h"
#include "check.h"
#include "dispatch.h"
#include "frame.h"
#include "msg.h"

#define BIG_SIZE   (3u * 1024 * 1024) /* a plain value read in ranges */
#define GZ_SIZE    (5u * 1024 * 1024) /* a gzip value larger than the in-memory copy */
#define RANGE      (256u * 1024)      /* zero copy from SRV_ZERO_COPY_MIN (128 KiB) */
#define NSMALL     64
#define NROUNDS    6
#define MAX_ANSWER 4096

static char root[] = "/tmp/flechefs-test-serve-XXXXXX";
static char big_key[RPC_KEY_LEN + 1], gz_key[RPC_KEY_LEN + 1];
static char small_key[NSMALL][RPC_KEY_LEN + 1];

static uint8_t big_byte(uint64_t i)
{
	return (uint8_t)(i * 2654435761u >> 13);
}

static void make_key(char *out, unsigned n)
{
	for (unsigned i = 0; i < RPC_KEY_LEN; i++)
		out[i] = "0123456789abcdef"[(n * 7 + i * 13 + (n >> (i % 8))) & 15];
	out[0] = "0123456789abcdef"[n & 15];
	out[1] = "0123456789abcdef"[(n >> 4) & 15];
	out[RPC_KEY_LEN] = '\0';
}

static int write_file(const char *key, const void *p, size_t n)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/values/%s", root, key);
	f = fopen(path, "wb");
	if (!f || fwrite(p, 1, n, f) != n) {
		if (f)
			fclose(f);
		return -1;
	}
	return fclose(f);
}

static int make_cache(void)
{
	char dir[4096];
	uint8_t *buf = malloc(GZ_SIZE > BIG_SIZE ? GZ_SIZE : BIG_SIZE);
	uLongf zlen;
	uint8_t *z;
	int rc = -1;

	if (!buf || !mkdtemp(root))
		goto out;
	snprintf(dir, sizeof(dir), "%s/calls", root);
	mkdir(dir, 0700);
	snprintf(dir, sizeof(dir), "%s/values", root);
	mkdir(dir, 0700);
	for (uint64_t i = 0; i < BIG_SIZE; i++)
		buf[i] = big_byte(i);
	make_key(big_key, 1000);
	if (write_file(big_key, buf, BIG_SIZE) != 0)
		goto out;
	for (unsigned k = 0; k < NSMALL; k++) {
		uint8_t v[3] = {0x80, 0x04, (uint8_t)k};
		make_key(small_key[k], k);
		if (write_file(small_key[k], v, sizeof(v)) != 0)
			goto out;
	}
	/* a gzip stream (zlib's gzip wrapper through deflateInit2) of GZ_SIZE bytes */
	memset(buf, 'g', GZ_SIZE);
	zlen = compressBound(GZ_SIZE) + 64;
	z = malloc(zlen);
	if (!z)
		goto out;
	z_stream zs = {0};
	if (deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
		free(z);
		goto out;
	}
	zs.next_in = buf;
	zs.avail_in = GZ_SIZE;
	zs.next_out = z;
	zs.avail_out = (uInt)zlen;
	deflate(&zs, Z_FINISH);
	make_key(gz_key, 2000);
	rc = write_file(gz_key, z, zs.total_out);
	deflateEnd(&zs);
	free(z);
out:
	free(buf);
	return rc;
}

/* ---- the client side ---- */

struct session {
	struct srv_cache *cache;
	int to_server[2], from_server[2];
	int result;
};

static void *serve_thread(void *arg)
{
	struct session *s = arg;
	struct srv_serve_options opt = {0};

	s->result = srv_serve(s->cache, &opt, s->to_server[0], s->from_server[1]);
	close(s->from_server[1]);
	return NULL;
}

/* What each request expects. */
enum want { W_HELLO, W_EPROTO, W_SIZE, W_BYTES, W_FALSE, W_NONE };

struct expect {
	enum want want;
	uint64_t size;   /* W_SIZE */
	uint64_t offset; /* W_BYTES: of the big value */
	uint64_t len;
	int answered;
};

struct plan {
	msgpack_sbuffer sb;
	struct expect *e;
	uint32_t n, cap;
};

/* Starts request id = p->n, expecting e; the caller packs the parameters and ends it. */
static msgpack_packer *plan_add(struct plan *p, const char *method, uint32_t nparams,
                                struct expect e, size_t *start, msgpack_packer *pk)
{
	if (p->n == p->cap) {
		p->cap = p->cap ? 2 * p->cap : 256;
		p->e = realloc(p->e, p->cap * sizeof(*p->e));
	}
	p->e[p->n] = e;
	msgpack_packer_init(pk, &p->sb, msgpack_sbuffer_write);
	rpc_frame_begin_at(&p->sb, start);
	rpc_pack_request_head(pk, p->n, method, nparams);
	p->n++;
	return pk;
}

static void plan_end(struct plan *p, size_t start)
{
	rpc_frame_end_at(&p->sb, start, RPC_MAX_FRAME_DEFAULT);
}

static void add_stat(struct plan *p, const char *key, uint64_t size)
{
	msgpack_packer pk;
	size_t start;
	plan_add(p, "stat_value", 1, (struct expect){.want = W_SIZE, .size = size}, &start, &pk);
	rpc_pack_str(&pk, key);
	plan_end(p, start);
}

static void add_load(struct plan *p, uint64_t off, uint64_t len)
{
	msgpack_packer pk;
	size_t start;
	plan_add(p, "load_value", 3, (struct expect){.want = W_BYTES, .offset = off, .len = len},
	         &start, &pk);
	rpc_pack_str(&pk, big_key);
	msgpack_pack_uint64(&pk, off);
	msgpack_pack_uint64(&pk, len);
	plan_end(p, start);
}

static void add_hello(struct plan *p)
{
	msgpack_packer pk;
	size_t start;
	plan_add(p, "hello", 2, (struct expect){.want = W_HELLO}, &start, &pk);
	msgpack_pack_int(&pk, RPC_PROTOCOL_VERSION);
	rpc_pack_str(&pk, "test_serve");
	plan_end(p, start);
}

static void add_contains(struct plan *p, const char *key)
{
	msgpack_packer pk;
	size_t start;
	plan_add(p, "contains", 1, (struct expect){.want = W_FALSE}, &start, &pk);
	rpc_pack_str(&pk, key);
	plan_end(p, start);
}

/* A request array with a readable msgid and a method that is not a str: EPROTO. */
static void add_not_a_request(struct plan *p)
{
	msgpack_packer pk;
	size_t start;
	if (p->n == p->cap) {
		p->cap = p->cap ? 2 * p->cap : 256;
		p->e = realloc(p->e, p->cap * sizeof(*p->e));
	}
	p->e[p->n] = (struct expect){.want = W_EPROTO};
	msgpack_packer_init(&pk, &p->sb, msgpack_sbuffer_write);
	rpc_frame_begin_at(&p->sb, &start);
	msgpack_pack_array(&pk, 4);
	msgpack_pack_int(&pk, RPC_REQUEST);
	msgpack_pack_uint32(&pk, p->n);
	msgpack_pack_int(&pk, 42);
	msgpack_pack_array(&pk, 0);
	plan_end(p, start);
	p->n++;
}

struct writer {
	int fd;
	const char *data;
	size_t len;
};

static void *write_thread(void *arg)
{
	struct writer *w = arg;
	size_t off = 0;

	while (off < w->len) {
		ssize_t n = write(w->fd, w->data + off, w->len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	close(w->fd);
	return NULL;
}

struct reader {
	int fd;
	uint8_t buf[65536];
	size_t pos, len;
};

static ssize_t read_fn(void *ctx, void *buf, size_t len)
{
	struct reader *r = ctx;
	if (r->pos == r->len) {
		ssize_t n;
		do
			n = read(r->fd, r->buf, sizeof(r->buf));
		while (n < 0 && errno == EINTR);
		if (n <= 0)
			return n < 0 ? -errno : 0;
		r->pos = 0;
		r->len = (size_t)n;
	}
	size_t n = r->len - r->pos < len ? r->len - r->pos : len;
	memcpy(buf, r->buf + r->pos, n);
	r->pos += n;
	return (ssize_t)n;
}

static void check_answer(struct plan *p, const struct rpc_response *resp)
{
	struct expect *e;
	struct rpc_error_info info = {0};
	uint64_t size = 0;
	bool yes = false;
	const void *bytes;
	size_t n;

	CHECK(resp->msgid < p->n, "msgid %u of %u", resp->msgid, p->n);
	if (resp->msgid >= p->n)
		return;
	e = &p->e[resp->msgid];
	CHECK(e->answered == 0, "request %u answered twice", resp->msgid);
	e->answered++;
	if (resp->error)
		rpc_error_decode(resp->error, &info);
	switch (e->want) {
	case W_EPROTO:
		CHECK(resp->error && strcmp(info.name, "EPROTO") == 0, "request %u: not EPROTO",
		      resp->msgid);
		break;
	case W_HELLO:
		CHECK(!resp->error, "hello failed: %s", info.message);
		break;
	case W_SIZE:
		CHECK(!resp->error &&
		          rpc_obj_uint(rpc_map_get(resp->result, "size"), &size) == 0 &&
		          size == e->size,
		      "stat_value %u: %s size %llu, want %llu", resp->msgid,
		      resp->error ? info.message : "", (unsigned long long)size,
		      (unsigned long long)e->size);
		break;
	case W_FALSE:
		CHECK(!resp->error && rpc_obj_bool(resp->result, &yes) == 0 && !yes,
		      "contains %u", resp->msgid);
		break;
	case W_NONE:
		CHECK(0, "request %u, after the session ended, was answered", resp->msgid);
		break;
	case W_BYTES: {
		bool same = !resp->error && rpc_obj_bin(resp->result, &bytes, &n) == 0 &&
		            n == e->len;
		for (size_t i = 0; same && i < n; i++)
			same = ((const uint8_t *)bytes)[i] == big_byte(e->offset + i);
		CHECK(same, "load_value %u at %llu: %s", resp->msgid,
		      (unsigned long long)e->offset, resp->error ? info.message : "wrong bytes");
		break;
	}
	}
}

/* Runs one session fed with p's requests; returns srv_serve's result. */
static int run_session(struct srv_cache *cache, struct plan *p)
{
	struct session s = {.cache = cache};
	struct writer w;
	struct reader *r = calloc(1, sizeof(*r));
	struct rpc_buf frame;
	msgpack_zone zone;
	pthread_t st, wt;
	char err[256];

	if (!r || pipe(s.to_server) || pipe(s.from_server)) {
		CHECK(0, "cannot make pipes");
		return -2;
	}
	rpc_buf_init(&frame, RPC_MAX_FRAME_DEFAULT);
	msgpack_zone_init(&zone, 4096);
	w = (struct writer){.fd = s.to_server[1], .data = p->sb.data, .len = p->sb.size};
	pthread_create(&st, NULL, serve_thread, &s);
	pthread_create(&wt, NULL, write_thread, &w);
	r->fd = s.from_server[0];
	for (;;) {
		struct rpc_response resp;
		int rc = rpc_frame_read(read_fn, r, RPC_MAX_FRAME_DEFAULT, &frame, err, sizeof(err));
		if (rc == 1)
			break;
		CHECK(rc == 0, "reading an answer: %s", err);
		if (rc != 0)
			break;
		msgpack_zone_clear(&zone);
		rc = rpc_response_decode(frame.data, frame.len, &zone, &resp, err, sizeof(err));
		CHECK(rc == 0, "a malformed answer: %s", err);
		if (rc == 0)
			check_answer(p, &resp);
	}
	pthread_join(wt, NULL);
	pthread_join(st, NULL);
	close(s.to_server[0]);
	close(s.from_server[0]);
	rpc_buf_release(&frame);
	msgpack_zone_destroy(&zone);
	free(r);
	return s.result;
}

static void test_many_in_flight(struct srv_cache *cache)
{
	struct plan p = {0};
	uint32_t unanswered = 0;

	msgpack_sbuffer_init(&p.sb);
	add_stat(&p, small_key[0], 3); /* before hello: EPROTO */
	p.e[p.n - 1].want = W_EPROTO;
	add_hello(&p);
	for (unsigned i = 0; i < 8; i++)
		add_stat(&p, gz_key, GZ_SIZE); /* one inflation for all */
	for (unsigned round = 0; round < NROUNDS; round++) {
		for (uint64_t off = 0; off < BIG_SIZE; off += RANGE)
			add_load(&p, off, RANGE);
		for (unsigned k = 0; k < NSMALL; k++) {
			add_stat(&p, small_key[k], 3);
			add_load(&p, round * 1000 + k, 100);
		}
		add_not_a_request(&p);
		add_contains(&p, "abcd"); /* the cache holds no call */
	}
	int rc = run_session(cache, &p);
	CHECK(rc == 0, "srv_serve after a clean end of input: %d", rc);
	for (uint32_t i = 0; i < p.n; i++)
		unanswered += p.e[i].answered == 0;
	CHECK(unanswered == 0, "%u of %u requests unanswered", unanswered, p.n);
	msgpack_sbuffer_destroy(&p.sb);
	free(p.e);
}

/* A frame with no readable msgid ends the session once the requests before it are
 * answered; the requests after it are not. */
static void test_unanswerable(struct srv_cache *cache)
{
	struct plan p = {0};
	msgpack_packer pk;
	size_t start;
	uint32_t unanswered = 0, before;

	msgpack_sbuffer_init(&p.sb);
	add_hello(&p);
	for (unsigned k = 0; k < NSMALL; k++)
		add_stat(&p, small_key[k], 3);
	add_stat(&p, gz_key, GZ_SIZE);
	before = p.n;
	msgpack_packer_init(&pk, &p.sb, msgpack_sbuffer_write);
	rpc_frame_begin_at(&p.sb, &start);
	msgpack_pack_int(&pk, 5); /* not an array: no msgid */
	plan_end(&p, start);
	for (unsigned k = 0; k < NSMALL; k++) {
		add_stat(&p, small_key[k], 3);
		p.e[p.n - 1].want = W_NONE;
	}
	int rc = run_session(cache, &p);
	CHECK(rc == -1, "srv_serve after a frame with no msgid: %d", rc);
	for (uint32_t i = 0; i < before; i++)
		unanswered += p.e[i].answered == 0;
	CHECK(unanswered == 0, "%u of the %u requests before it unanswered", unanswered, before);
	msgpack_sbuffer_destroy(&p.sb);
	free(p.e);
}

int main(void)
{
	struct srv_config cfg = {0};
	struct srv_cache *cache = NULL;
	struct srv_error err = {0};
	char cmd[4200];

	if (make_cache() != 0) {
		printf("cannot make the test cache in '%s'\n", root);
		return 1;
	}
	cfg.root = root;
	cfg.read_only = true;
	if (srv_cache_open(&cfg, &cache, &err) != 0) {
		printf("cannot open the cache: %s\n", err.message);
		return 1;
	}
	test_many_in_flight(cache);
	test_unanswerable(cache);
	srv_cache_free(cache);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	if (system(cmd) != 0)
		printf("cannot remove '%s'\n", root);
	return check_report("test_serve");
}

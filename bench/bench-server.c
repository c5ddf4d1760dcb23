/*
 * bench-server.c: measures flechefs-server over a pipe pair against its targets, and
 * prints each figure next to its target: pipelined contains per second (target
 * 50,000/s), listing 100,000 SQL calls (target under 1 s) and streaming a page-cached
 * 1 GiB value with load_value (target 1 GB/s). The cache is generated in a temporary
 * directory by bench-server-mkcache.py (SQLite call storage with FORMAT.md's schema,
 * one large value file) and removed afterwards. Run by hand, not by ctest:
 *
 *   bench-server [--server PATH] [--calls N] [--value-mib M] [--contains N]
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <msgpack.h>

#include "buf.h"
#include "frame.h"
#include "msg.h"
#include "rpc.h"

#ifndef BENCH_SOURCE_DIR
#define BENCH_SOURCE_DIR "."
#endif
#ifndef BENCH_SERVER
#define BENCH_SERVER "flechefs-server"
#endif

struct conn {
	pid_t pid;
	int to, from; /* our ends: write requests, read responses */
	struct rpc_buf frame;
	msgpack_zone zone;
	uint32_t next_id;
	/* read buffer */
	char *rbuf;
	size_t rpos, rlen;
};

/* The generated cache, removed at exit whatever happens. */
static char bench_root[] = "/tmp/flechefs-bench-XXXXXX";
static bool bench_root_made;

static void remove_root(void)
{
	char cmd[256];
	if (!bench_root_made)
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", bench_root);
	if (system(cmd) != 0)
		fprintf(stderr, "bench-server: cannot remove '%s'\n", bench_root);
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;
	fputs("bench-server: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

#define RBUF_SIZE (1024 * 1024)

static ssize_t conn_read(void *ctx, void *buf, size_t len)
{
	struct conn *c = ctx;
	if (c->rpos == c->rlen) {
		ssize_t n;
		if (len >= RBUF_SIZE) {
			do
				n = read(c->from, buf, len);
			while (n < 0 && errno == EINTR);
			return n < 0 ? -errno : n;
		}
		do
			n = read(c->from, c->rbuf, RBUF_SIZE);
		while (n < 0 && errno == EINTR);
		if (n <= 0)
			return n < 0 ? -errno : 0;
		c->rpos = 0;
		c->rlen = (size_t)n;
	}
	size_t n = c->rlen - c->rpos < len ? c->rlen - c->rpos : len;
	memcpy(buf, c->rbuf + c->rpos, n);
	c->rpos += n;
	return (ssize_t)n;
}

static void write_all(int fd, const void *p, size_t n)
{
	const char *s = p;
	while (n) {
		ssize_t w = write(fd, s, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			die("cannot write to the server: %s", strerror(errno));
		s += w;
		n -= (size_t)w;
	}
}

static void conn_start(struct conn *c, const char *server, const char *root)
{
	int in[2], out[2];
	memset(c, 0, sizeof(*c));
	if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC))
		die("pipe: %s", strerror(errno));
	c->pid = fork();
	if (c->pid < 0)
		die("fork: %s", strerror(errno));
	if (c->pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		execl(server, server, "--serve", "--root", root, (char *)NULL);
		fprintf(stderr, "bench-server: cannot run '%s': %s\n", server, strerror(errno));
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	c->to = in[1];
	c->from = out[0];
	fcntl(c->to, F_SETPIPE_SZ, 1024 * 1024);
	fcntl(c->from, F_SETPIPE_SZ, 1024 * 1024);
	rpc_buf_init(&c->frame, RPC_MAX_FRAME_DEFAULT);
	msgpack_zone_init(&c->zone, 64 * 1024);
	c->rbuf = malloc(RBUF_SIZE);
	c->next_id = 1;
	if (!c->rbuf)
		die("out of memory");
}

static void conn_stop(struct conn *c)
{
	int status;
	close(c->to);
	close(c->from);
	waitpid(c->pid, &status, 0);
	rpc_buf_release(&c->frame);
	msgpack_zone_destroy(&c->zone);
	free(c->rbuf);
}

/* Appends one request frame [0, id, method, params...] to sb; params packed by caller. */
static void begin_request(msgpack_sbuffer *sb, msgpack_packer *pk, size_t *start, uint32_t id,
                          const char *method, uint32_t nparams)
{
	if (rpc_frame_begin_at(sb, start) || rpc_pack_request_head(pk, id, method, nparams))
		die("out of memory");
}

static void end_request(msgpack_sbuffer *sb, size_t start)
{
	if (rpc_frame_end_at(sb, start, RPC_MAX_FRAME_DEFAULT))
		die("cannot frame a request");
}

/*
 * Reads one response to one of the requests [lo, hi) (answers may come in any order,
 * PROTOCOL.md section 2); checks that it is not an error. Its msgid goes to *id.
 */
static const msgpack_object *read_response_in(struct conn *c, uint32_t lo, uint32_t hi,
                                              uint32_t *id)
{
	char err[256];
	struct rpc_response resp;
	int r = rpc_frame_read(conn_read, c, RPC_MAX_FRAME_DEFAULT, &c->frame, err, sizeof(err));
	if (r == 1)
		die("the server closed the connection");
	if (r < 0)
		die("cannot read a response: %s", err);
	msgpack_zone_clear(&c->zone);
	if (rpc_response_decode(c->frame.data, c->frame.len, &c->zone, &resp, err, sizeof(err)))
		die("malformed response: %s", err);
	if (resp.msgid - lo >= hi - lo)
		die("response %" PRIu32 " where %" PRIu32 " to %" PRIu32 " were expected",
		    resp.msgid, lo, hi - 1);
	if (resp.error) {
		struct rpc_error_info info;
		rpc_error_decode(resp.error, &info);
		die("request %" PRIu32 " failed: %s: %s", resp.msgid, info.name, info.message);
	}
	*id = resp.msgid;
	return resp.result;
}

/* Reads the response to want_id, the one request in flight. */
static const msgpack_object *read_response(struct conn *c, uint32_t want_id)
{
	uint32_t id;
	return read_response_in(c, want_id, want_id + 1, &id);
}

static void send_sb(struct conn *c, msgpack_sbuffer *sb)
{
	write_all(c->to, sb->data, sb->size);
	msgpack_sbuffer_clear(sb);
}

static void hello(struct conn *c)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	size_t start;
	uint32_t id = c->next_id++;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	begin_request(&sb, &pk, &start, id, "hello", 2);
	msgpack_pack_int(&pk, RPC_PROTOCOL_VERSION);
	rpc_pack_str(&pk, "bench-server");
	end_request(&sb, start);
	send_sb(c, &sb);
	read_response(c, id);
	msgpack_sbuffer_destroy(&sb);
}

/* list(calls) page by page: returns all keys (caller frees) and their count. */
static char *list_all(struct conn *c, size_t *count, double *seconds)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	size_t n = 0, cap = 0, start;
	char *keys = NULL;
	char after[RPC_KEY_LEN + 1] = "";
	double t0 = now();

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	for (;;) {
		uint32_t id = c->next_id++;
		begin_request(&sb, &pk, &start, id, "list", 3);
		rpc_pack_str(&pk, "calls");
		if (after[0])
			rpc_pack_strn(&pk, after, RPC_KEY_LEN);
		else
			msgpack_pack_nil(&pk);
		msgpack_pack_uint32(&pk, RPC_PAGE_MAX);
		end_request(&sb, start);
		send_sb(c, &sb);
		const msgpack_object *res = read_response(c, id);
		const msgpack_object *k = rpc_map_get(res, "keys");
		bool complete = false;
		if (!k || k->type != MSGPACK_OBJECT_ARRAY ||
		    rpc_obj_bool(rpc_map_get(res, "complete"), &complete))
			die("list: malformed result");
		for (uint32_t i = 0; i < k->via.array.size; i++) {
			const char *s;
			size_t len;
			if (rpc_obj_str(&k->via.array.ptr[i], &s, &len) || len != RPC_KEY_LEN)
				die("list: malformed key");
			if (n && memcmp(keys + (n - 1) * RPC_KEY_LEN, s, RPC_KEY_LEN) >= 0)
				die("list: keys not ascending");
			if (n == cap) {
				cap = cap ? 2 * cap : 16384;
				keys = realloc(keys, cap * RPC_KEY_LEN);
				if (!keys)
					die("out of memory");
			}
			memcpy(keys + n * RPC_KEY_LEN, s, RPC_KEY_LEN);
			n++;
		}
		if (complete || k->via.array.size == 0)
			break;
		memcpy(after, keys + (n - 1) * RPC_KEY_LEN, RPC_KEY_LEN);
	}
	*seconds = now() - t0;
	*count = n;
	msgpack_sbuffer_destroy(&sb);
	return keys;
}

struct contains_job {
	struct conn *c;
	const char *keys;
	size_t nkeys, nrequests;
	uint32_t first_id;
};

static void *contains_writer(void *arg)
{
	struct contains_job *j = arg;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	size_t start;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	for (size_t i = 0; i < j->nrequests; i++) {
		begin_request(&sb, &pk, &start, j->first_id + (uint32_t)i, "contains", 1);
		rpc_pack_strn(&pk, j->keys + (i % j->nkeys) * RPC_KEY_LEN, RPC_KEY_LEN);
		end_request(&sb, start);
		if (sb.size >= 64 * 1024)
			send_sb(j->c, &sb);
	}
	send_sb(j->c, &sb);
	msgpack_sbuffer_destroy(&sb);
	return NULL;
}

static double bench_contains(struct conn *c, const char *keys, size_t nkeys, size_t nrequests)
{
	struct contains_job j = {c, keys, nkeys, nrequests, c->next_id};
	pthread_t t;
	double t0 = now();
	uint8_t *seen = calloc(nrequests, 1);
	if (!seen)
		die("out of memory");
	c->next_id += (uint32_t)nrequests;
	if (pthread_create(&t, NULL, contains_writer, &j))
		die("cannot start a thread");
	for (size_t i = 0; i < nrequests; i++) {
		bool found = false;
		uint32_t id;
		const msgpack_object *res =
		    read_response_in(c, j.first_id, j.first_id + (uint32_t)nrequests, &id);
		if (seen[id - j.first_id]++)
			die("contains: request %" PRIu32 " answered twice", id);
		if (rpc_obj_bool(res, &found) || !found)
			die("contains: a listed key is not contained");
	}
	free(seen);
	double dt = now() - t0;
	pthread_join(t, NULL);
	return (double)nrequests / dt;
}

static double bench_load_value(struct conn *c, const char *key, const char *path, uint64_t *total)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	size_t start;
	uint64_t size = 0, max_read = RPC_MAX_FRAME_DEFAULT - RPC_RESPONSE_OVERHEAD;
	uint32_t id;
	char *chunk = malloc(1 << 20);
	int fd;

	/* bring the file into the page cache first */
	if (!chunk || (fd = open(path, O_RDONLY)) < 0)
		die("cannot open '%s': %s", path, strerror(errno));
	while (read(fd, chunk, 1 << 20) > 0)
		;
	close(fd);
	free(chunk);

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	id = c->next_id++;
	begin_request(&sb, &pk, &start, id, "stat_value", 1);
	rpc_pack_str(&pk, key);
	end_request(&sb, start);
	send_sb(c, &sb);
	if (rpc_obj_uint(rpc_map_get(read_response(c, id), "size"), &size))
		die("stat_value: malformed result");

	double t0 = now();
	uint64_t sent = 0, got = 0;
	uint32_t first = c->next_id, next_read = first;
	const unsigned depth = 2; /* requests in flight */
	while (got < size) {
		while (sent < size && c->next_id - next_read < depth) {
			begin_request(&sb, &pk, &start, c->next_id++, "load_value", 3);
			rpc_pack_str(&pk, key);
			msgpack_pack_uint64(&pk, sent);
			msgpack_pack_uint64(&pk, max_read);
			end_request(&sb, start);
			sent += size - sent < max_read ? size - sent : max_read;
		}
		send_sb(c, &sb);
		uint32_t got_id;
		const msgpack_object *res = read_response_in(c, first, c->next_id, &got_id);
		next_read++; /* one fewer in flight, whichever it was */
		const void *p;
		size_t n;
		if (rpc_obj_bin(res, &p, &n) || n == 0)
			die("load_value: malformed result");
		got += n;
	}
	double dt = now() - t0;
	msgpack_sbuffer_destroy(&sb);
	*total = got;
	return (double)got / dt;
}

int main(int argc, char **argv)
{
	const char *server = BENCH_SERVER;
	unsigned ncalls = 100000, mib = 1024;
	size_t ncontains = 200000;
	char *root = bench_root;
	char cmd[8192], key[RPC_KEY_LEN + 2] = "", path[8192];
	struct conn c;
	int opt;
	static const struct option longopts[] = {
	    {"server", required_argument, NULL, 's'},
	    {"calls", required_argument, NULL, 'n'},
	    {"value-mib", required_argument, NULL, 'm'},
	    {"contains", required_argument, NULL, 'c'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};

	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case 's':
			server = optarg;
			break;
		case 'n':
			ncalls = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'm':
			mib = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'c':
			ncontains = strtoul(optarg, NULL, 10);
			break;
		default:
			printf("usage: bench-server [--server PATH] [--calls N] [--value-mib M] "
			       "[--contains N]\n");
			return opt == 'h' ? 0 : 2;
		}
	}
	if (!ncalls || !mib || !ncontains)
		die("counts must be positive");
	signal(SIGPIPE, SIG_IGN);
	if (!mkdtemp(root))
		die("mkdtemp: %s", strerror(errno));
	bench_root_made = true;
	atexit(remove_root);

	printf("generating %u SQL calls and a %u MiB value in %s ...\n", ncalls, mib, root);
	fflush(stdout);
	snprintf(cmd, sizeof(cmd), "/usr/bin/python3 '%s/bench-server-mkcache.py' '%s' %u %u",
	         BENCH_SOURCE_DIR, root, ncalls, mib);
	FILE *p = popen(cmd, "r");
	if (!p || !fgets(key, sizeof(key), p) || pclose(p) != 0)
		die("cannot generate the cache with: %s", cmd);
	key[strcspn(key, "\n")] = '\0';
	snprintf(path, sizeof(path), "%s/values/%s", root, key);

	conn_start(&c, server, root);
	hello(&c);

	size_t nkeys;
	double list_s;
	char *keys = list_all(&c, &nkeys, &list_s);
	if (nkeys != ncalls)
		die("list answered %zu keys, not %u", nkeys, ncalls);
	double contains_rate = bench_contains(&c, keys, nkeys, ncontains);
	uint64_t total;
	double rate = bench_load_value(&c, key, path, &total);

	printf("\n%-44s %16s %16s\n", "measure", "measured", "target");
	printf("%-44s %14.0f/s %16s\n", "pipelined contains (SQL calls)", contains_rate,
	       ">= 50000/s");
	snprintf(cmd, sizeof(cmd), "list %u SQL calls (pages of %u)", ncalls, RPC_PAGE_MAX);
	printf("%-44s %15.3fs %16s\n", cmd, list_s, ncalls == 100000 ? "< 1 s" : "(100000: < 1 s)");
	printf("%-44s %12.2f GB/s %16s\n", "load_value, page-cached value", rate / 1e9,
	       ">= 1 GB/s");
	printf("(list: %zu keys; load_value: %" PRIu64 " bytes)\n", nkeys, total);

	free(keys);
	conn_stop(&c);
	return 0;
}

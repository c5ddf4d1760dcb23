/*
 * test_fsd_conn.c: unit tests of the daemon's connection (fusefs/conn.c) against a
 * scripted server on a socketpair, and of the inode table (fusefs/inode.c): hello
 * and its failures, answers out of order matched by msgid, a request past its
 * deadline, the server's death failing every pending request at once, stable
 * inode numbers, and bins handed over in a pipe (splicing) for sizes around the
 * page and pipe boundaries, msgids of every width, and completions that leave bytes;
 * the cache of record listings (fusefs/recdir.c): a listing asked once and shared, a
 * definitive refusal kept and a failure not, listings beyond the budget dropped least
 * recently used first while a reference held stays good.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "conn.h"
#include "frame.h"
#include "inode.h"
#include "recdir.h"
#include "msg.h"
#include "views.h"
#include "check.h"

/* --- a transport on one end of a socketpair --- */

struct sp_transport {
	struct fsd_transport base;
	int fd;
};

static ssize_t sp_read(struct fsd_transport *t, void *buf, size_t len)
{
	ssize_t n = read(((struct sp_transport *)t)->fd, buf, len);
	return n < 0 ? -errno : n;
}

static int sp_write(struct fsd_transport *t, const void *buf, size_t len)
{
	const char *p = buf;
	while (len) {
		ssize_t n = write(((struct sp_transport *)t)->fd, p, len);
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static void sp_shutdown(struct fsd_transport *t)
{
	shutdown(((struct sp_transport *)t)->fd, SHUT_RDWR);
}

static size_t sp_describe(struct fsd_transport *t, char *buf, size_t len)
{
	return (size_t)snprintf(buf, len, "test server gone");
}

static void sp_free(struct fsd_transport *t)
{
	close(((struct sp_transport *)t)->fd);
	free(t);
}

static int sp_read_pipe(struct fsd_transport *t)
{
	return ((struct sp_transport *)t)->fd;
}

static const struct fsd_transport_ops sp_ops = {
    .read = sp_read,
    .write = sp_write,
    .shutdown = sp_shutdown,
    .describe_exit = sp_describe,
    .free = sp_free,
    .read_pipe = sp_read_pipe,
};

/* The bytes of a "blob" of n bytes. */
static uint8_t blob_byte(size_t n, size_t i)
{
	return (uint8_t)(i * 7 + n + i / 4096);
}

/* The connector hands out one prepared fd. */
struct sp_connector {
	struct fsd_connector base;
	int fd;
};

static int sp_connect(struct fsd_connector *c, int interactive, struct fsd_transport **out,
                      char *err, size_t errlen)
{
	struct sp_transport *t = calloc(1, sizeof(*t));
	t->base.ops = &sp_ops;
	t->base.name = "test";
	t->fd = ((struct sp_connector *)c)->fd;
	*out = &t->base;
	return 0;
}

static int sp_no_reconnect(struct fsd_connector *c)
{
	return 0;
}

/* --- the scripted server --- */

enum script { S_NORMAL, S_TEXT, S_OLD_PROTOCOL };

struct server {
	int fd;
	enum script script;
	pthread_t th;
};

static ssize_t fd_read(void *ctx, void *buf, size_t len)
{
	ssize_t n = read(*(int *)ctx, buf, len);
	return n < 0 ? -errno : n;
}

static void send_frame(int fd, msgpack_sbuffer *sb)
{
	rpc_frame_end(sb, RPC_MAX_FRAME_DEFAULT);
	if (write(fd, sb->data, sb->size) != (ssize_t)sb->size)
		perror("write");
	msgpack_sbuffer_clear(sb);
	rpc_frame_begin(sb);
}

static atomic_int stat_requests, list_record_requests;

/* Entries and name length of the listings of keys starting with 'c' (about 2.4 MiB of
 * the recdir cache's budget each) and 'd' (more than a quarter of it). */
#define C_ENTRIES 7000
#define D_ENTRIES 40000
#define BIG_NAME  240

/* list_record of key k: 'a' a folder of "f.txt" and "sub", 'c' and 'd' listings of
 * C_ENTRIES and D_ENTRIES files, 'b' ENOTSUP, anything else EIO. */
static void answer_list_record(msgpack_packer *pk, uint32_t msgid, const char *k, size_t kl)
{
	static const char *fields[] = {"names", "kinds", "keys", "size", "mtime"};
	uint32_t n = k[0] == 'a' ? 2 : k[0] == 'c' ? C_ENTRIES : D_ENTRIES;
	char name[BIG_NAME + 1];

	if (kl != 64 || k[0] == 'b' || (k[0] != 'a' && k[0] != 'c' && k[0] != 'd')) {
		rpc_pack_response_error(pk, msgid, kl && k[0] == 'b' ? RPC_E_ENOTSUP : RPC_E_EIO,
		                        kl && k[0] == 'b' ? "not a record" : "disk on fire");
		return;
	}
	rpc_pack_response_ok_head(pk, msgid);
	msgpack_pack_map(pk, 8);
	rpc_pack_str(pk, "key");
	msgpack_pack_str(pk, kl);
	msgpack_pack_str_body(pk, k, kl);
	rpc_pack_str(pk, "kind");
	rpc_pack_str(pk, "directory");
	rpc_pack_str(pk, "record_mtime");
	msgpack_pack_double(pk, 5.0);
	for (int f = 0; f < 5; f++) {
		rpc_pack_str(pk, fields[f]);
		msgpack_pack_array(pk, n);
		for (uint32_t i = 0; i < n; i++) {
			if (f == 0 && k[0] == 'a') {
				rpc_pack_str(pk, i ? "sub" : "f.txt");
			} else if (f == 0) {
				memset(name, 'x', BIG_NAME);
				snprintf(name, 12, "%u-", i);
				name[strlen(name)] = 'x';
				name[BIG_NAME] = 0;
				rpc_pack_str(pk, name);
			} else if (f == 1) {
				rpc_pack_str(pk, k[0] == 'a' && i ? "directory" : "file");
			} else if (f == 2) {
				msgpack_pack_str(pk, kl);
				msgpack_pack_str_body(pk, k, kl);
			} else if (f == 3) {
				msgpack_pack_uint64(pk, k[0] == 'a' && i ? 0 : 42);
			} else {
				msgpack_pack_double(pk, 1.0 + i);
			}
		}
	}
}

/*
 * Answers hello, then: "echo" answers its first parameter, but held back until the
 * next "flush" (so answers go out in reverse order); "never" is not answered;
 * "contains" answers false; "die" closes the connection.
 */
static void *server_main(void *arg)
{
	struct server *s = arg;
	struct rpc_buf frame = RPC_BUF_INIT(RPC_MAX_FRAME_DEFAULT);
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_zone zone;
	uint32_t held[16];
	int64_t heldv[16];
	int nheld = 0;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_zone_init(&zone, 4096);
	rpc_frame_begin(&sb);
	for (;;) {
		struct rpc_request req;
		if (rpc_frame_read(fd_read, &s->fd, RPC_MAX_FRAME_DEFAULT, &frame, NULL, 0) != 0)
			break;
		if (rpc_request_decode(frame.data, frame.len, &zone, &req, NULL, NULL, 0))
			break;
		if (req.method_len == 5 && memcmp(req.method, "hello", 5) == 0) {
			if (s->script == S_TEXT) {
				const char *t = "Welcome to the cluster!\n";
				if (write(s->fd, t, strlen(t)) < 0)
					perror("write");
				break;
			}
			rpc_pack_response_ok_head(&pk, req.msgid);
			msgpack_pack_map(&pk, 5);
			rpc_pack_str(&pk, "protocol");
			msgpack_pack_int(&pk, s->script == S_OLD_PROTOCOL ? 99 : 1);
			rpc_pack_str(&pk, "program");
			rpc_pack_str(&pk, "flechefs-server");
			rpc_pack_str(&pk, "version");
			rpc_pack_str(&pk, FLECHEFS_VERSION);
			rpc_pack_str(&pk, "read_only");
			msgpack_pack_false(&pk);
			rpc_pack_str(&pk, "views");
			msgpack_pack_array(&pk, 5);
			rpc_pack_str(&pk, "pickle");
			rpc_pack_str(&pk, "json");
			rpc_pack_str(&pk, "npy");
			rpc_pack_str(&pk, "txt");
			rpc_pack_str(&pk, "xml"); /* unknown to the client: ignored */
			send_frame(s->fd, &sb);
		} else if (req.method_len == 10 && memcmp(req.method, "stat_value", 10) == 0) {
			/* Keys starting with 'a': every view applies, sized 10 + the view's
			 * name length; 'b': only json, the others ENOTSUP or EFBIG; 'e': EIO. */
			const char *k = "", *v = "";
			size_t kl = 0, vl = 0;
			rpc_obj_str(rpc_array_get(req.params, 0), &k, &kl);
			rpc_obj_str(rpc_array_get(req.params, 1), &v, &vl);
			atomic_fetch_add(&stat_requests, 1);
			if (kl && k[0] == 'e')
				rpc_pack_response_error(&pk, req.msgid, RPC_E_EIO, "disk on fire");
			else if (kl && k[0] == 'b' && !(vl == 4 && memcmp(v, "json", 4) == 0))
				rpc_pack_response_error(&pk, req.msgid,
				                        vl == 3 && v[0] == 'n' ? RPC_E_EFBIG
				                                               : RPC_E_ENOTSUP,
				                        "no such view here");
			else {
				rpc_pack_response_ok_head(&pk, req.msgid);
				msgpack_pack_map(&pk, 1);
				rpc_pack_str(&pk, "size");
				msgpack_pack_uint64(&pk, 10 + vl);
			}
			send_frame(s->fd, &sb);
		} else if (req.method_len == 11 && memcmp(req.method, "list_record", 11) == 0) {
			const char *k = "";
			size_t kl = 0;
			rpc_obj_str(rpc_array_get(req.params, 0), &k, &kl);
			atomic_fetch_add(&list_record_requests, 1);
			answer_list_record(&pk, req.msgid, k, kl);
			send_frame(s->fd, &sb);
		} else if (req.method_len == 4 && memcmp(req.method, "echo", 4) == 0) {
			int64_t v = 0;
			rpc_obj_int(rpc_array_get(req.params, 0), &v);
			if (nheld < 16) {
				held[nheld] = req.msgid;
				heldv[nheld++] = v;
			}
		} else if (req.method_len == 5 && memcmp(req.method, "flush", 5) == 0) {
			while (nheld > 0) {
				nheld--;
				rpc_pack_response_ok_head(&pk, held[nheld]);
				msgpack_pack_int64(&pk, heldv[nheld]);
				send_frame(s->fd, &sb);
			}
			rpc_pack_response_error(&pk, req.msgid, RPC_E_AMBIGUOUS, "flushed");
			send_frame(s->fd, &sb);
		} else if (req.method_len == 4 && memcmp(req.method, "blob", 4) == 0) {
			/* A bin of n bytes, always as bin32 like the server's load_value. */
			uint64_t n = 0;
			rpc_obj_uint(rpc_array_get(req.params, 0), &n);
			rpc_pack_response_ok_head(&pk, req.msgid);
			uint8_t h[5] = {0xc6, (uint8_t)(n >> 24), (uint8_t)(n >> 16),
			                (uint8_t)(n >> 8), (uint8_t)n};
			msgpack_sbuffer_write(&sb, (const char *)h, 5);
			for (uint64_t i = 0; i < n; i++) {
				char b = (char)blob_byte(n, i);
				msgpack_sbuffer_write(&sb, &b, 1);
			}
			send_frame(s->fd, &sb);
		} else if (req.method_len == 8 && memcmp(req.method, "contains", 8) == 0) {
			/* the probe of a stalled connection */
			rpc_pack_response_ok_head(&pk, req.msgid);
			msgpack_pack_false(&pk);
			send_frame(s->fd, &sb);
		} else if (req.method_len == 3 && memcmp(req.method, "die", 3) == 0) {
			break;
		}
		msgpack_zone_clear(&zone);
	}
	close(s->fd);
	msgpack_zone_destroy(&zone);
	msgpack_sbuffer_destroy(&sb);
	rpc_buf_release(&frame);
	return NULL;
}

static struct fsd_conn *start(struct server *s, enum script script, int timeout,
                              struct sp_connector *conn_, int *rc, char *err, size_t errlen,
                              void (*on_down)(void *, const char *), void *ctx)
{
	int sv[2];
	socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
	s->fd = sv[1];
	s->script = script;
	pthread_create(&s->th, NULL, server_main, s);
	conn_->base.connect = sp_connect;
	conn_->base.can_reconnect = sp_no_reconnect;
	conn_->fd = sv[0];
	struct fsd_conn_options o = {
	    .timeout = timeout, .client_name = "test", .on_down = on_down, .ctx = ctx};
	struct fsd_conn *c = fsd_conn_new(&conn_->base, &o);
	*rc = fsd_conn_start(c, 0, err, errlen);
	return c;
}

/* --- async completions --- */

struct outcome {
	atomic_int done;
	int err;
	int64_t value;
	char name[32];
};

static void record(void *ctx, const struct fsd_reply *r)
{
	struct outcome *o = ctx;
	o->err = r->err;
	rpc_obj_int(r->result, &o->value);
	if (r->error)
		snprintf(o->name, sizeof(o->name), "%s", r->error->name);
	atomic_store(&o->done, 1);
}

static int wait_done(struct outcome *o, int ms)
{
	for (int k = 0; k < ms / 10 && !atomic_load(&o->done); k++) {
		struct timespec d = {0, 10 * 1000 * 1000};
		nanosleep(&d, NULL);
	}
	return atomic_load(&o->done);
}

static atomic_int downs;

static void count_down(void *ctx, const char *why)
{
	atomic_fetch_add(&downs, 1);
}

/* --- requests to the scripted server: a method and at most one unsigned parameter --- */

struct test_call {
	const char *method;
	int nparams;
	uint64_t arg;
};

static int pack_test_call(msgpack_packer *pk, uint32_t msgid, const void *args)
{
	const struct test_call *t = args;
	if (rpc_pack_request_head(pk, msgid, t->method, (uint32_t)t->nparams))
		return -ENOMEM;
	return t->nparams && msgpack_pack_uint64(pk, t->arg) ? -ENOMEM : 0;
}

/* Sends method (with arg when nparams is 1); data: fsd_conn_send_data. */
static void call(struct fsd_conn *c, const char *method, size_t weight, fsd_done_fn done,
                 void *ctx, int nparams, uint64_t arg, int data)
{
	struct test_call t = {method, nparams, arg};
	struct fsd_request req = {method, pack_test_call, &t, weight};
	if (data)
		fsd_conn_send_data(c, &req, done, ctx);
	else
		fsd_conn_send(c, &req, done, ctx);
}

static int call_sync(struct fsd_conn *c, const char *method, struct fsd_result *r)
{
	struct test_call t = {method, 0, 0};
	struct fsd_request req = {method, pack_test_call, &t, 0};
	return fsd_conn_send_sync(c, &req, r);
}

static void test_out_of_order(void)
{
	struct server s;
	struct sp_connector sc;
	char err[512];
	int rc;
	struct fsd_conn *c = start(&s, S_NORMAL, 30, &sc, &rc, err, sizeof(err), count_down, NULL);
	CHECK(rc == 0, "hello failed: %s", err);
	CHECK(fsd_conn_server(c)->protocol == 1, "protocol");
	struct outcome o[5];
	memset(o, 0, sizeof(o));
	for (int k = 0; k < 5; k++)
		call(c, "echo", 0, record, &o[k], 1, (uint64_t)(100 + k), 0);
	struct fsd_result r;
	rc = call_sync(c, "flush", &r);
	CHECK(rc == -ENOENT && r.error && strcmp(r.error->name, "AMBIGUOUS") == 0,
	      "flush answered AMBIGUOUS (%d)", rc);
	fsd_result_release(&r);
	for (int k = 0; k < 5; k++) {
		CHECK(wait_done(&o[k], 2000), "echo %d completed", k);
		CHECK(o[k].err == 0 && o[k].value == 100 + k, "echo %d got %lld (err %d)", k,
		      (long long)o[k].value, o[k].err);
	}
	fsd_conn_free(c);
	pthread_join(s.th, NULL);
	CHECK(atomic_load(&downs) == 0, "no on_down when closing");
}

/* Sends "flush" until it is answered (the fake server answers it AMBIGUOUS: -ENOENT)
 * rather than failed unsent (-ETIMEDOUT): the stall's probe was answered. */
static int stall_end(struct fsd_conn *c)
{
	struct fsd_result fr;
	int rc = -ETIMEDOUT;
	for (int k = 0; k < 100 && rc == -ETIMEDOUT; k++) {
		usleep(10000);
		rc = call_sync(c, "flush", &fr);
		fsd_result_release(&fr);
	}
	return rc;
}

/* A request is not answered while one sent after it is, and then the server says
 * nothing more (stopped while its workers answered out of order): at the first one's
 * deadline the connection is stalled all the same, since nothing was heard for half
 * the timeout, so that a request sent then (the kernel's read after its read-ahead
 * failed) fails at once instead of waiting a deadline of its own. */
static void test_silence_after_answers_behind(void)
{
	struct server s;
	struct sp_connector sc;
	char err[512];
	int rc;
	struct fsd_conn *c = start(&s, S_NORMAL, 1, &sc, &rc, err, sizeof(err), NULL, NULL);
	CHECK(rc == 0, "hello failed: %s", err);
	struct outcome never, answered, behind;
	memset(&never, 0, sizeof(never));
	memset(&answered, 0, sizeof(answered));
	memset(&behind, 0, sizeof(behind));
	call(c, "never", 0, record, &never, 0, 0, 0);
	call(c, "contains", 0, record, &answered, 0, 0, 0);
	CHECK(wait_done(&answered, 2000) && answered.err == 0,
	      "the request behind the unanswered one is answered (%d)", answered.err);
	CHECK(wait_done(&never, 5000) && never.err == ETIMEDOUT,
	      "the unanswered request fails at its deadline (%d)", never.err);
	call(c, "echo", 0, record, &behind, 1, (uint64_t)3, 0);
	CHECK(wait_done(&behind, 100) && behind.err == ETIMEDOUT,
	      "after a silence of half the timeout a request fails at once (%d)", behind.err);
	/* the probe's answer ends the stall; the server is then idle when closed */
	CHECK((rc = stall_end(c)) == -ENOENT, "the probe's answer ends the stall (%d)", rc);
	fsd_conn_free(c);
	pthread_join(s.th, NULL);
}

static void test_deadline_and_death(void)
{
	struct server s;
	struct sp_connector sc;
	char err[512];
	int rc;
	atomic_store(&downs, 0);
	struct fsd_conn *c = start(&s, S_NORMAL, 1, &sc, &rc, err, sizeof(err), count_down, NULL);
	CHECK(rc == 0, "hello failed: %s", err);
	struct outcome late, pending;
	memset(&late, 0, sizeof(late));
	memset(&pending, 0, sizeof(pending));
	time_t t0 = time(NULL);
	call(c, "never", 0, record, &late, 0, 0, 0);
	CHECK(wait_done(&late, 5000), "deadline completes the request");
	CHECK(late.err == ETIMEDOUT, "deadline gives ETIMEDOUT (%d)", late.err);
	CHECK(time(NULL) - t0 <= 3, "within the deadline");
	/* Nothing sent after "never" was answered: the connection is stalled, and a
	 * request fails at once, unsent; the probe it sends is answered, and then
	 * requests are sent again. */
	struct outcome behind;
	memset(&behind, 0, sizeof(behind));
	call(c, "echo", 0, record, &behind, 1, (uint64_t)3, 0);
	CHECK(wait_done(&behind, 100) && behind.err == ETIMEDOUT,
	      "a request behind an unanswered one fails at once (%d)", behind.err);
	CHECK((rc = stall_end(c)) == -ENOENT, "the probe's answer ends the stall (%d)", rc);
	call(c, "echo", 0, record, &pending, 1, (uint64_t)7, 0);
	struct outcome dead;
	memset(&dead, 0, sizeof(dead));
	call(c, "die", 0, record, &dead, 0, 0, 0);
	CHECK(wait_done(&pending, 3000), "pending request fails when the server dies");
	CHECK(pending.err == EIO, "EIO on death (%d)", pending.err);
	for (int k = 0; k < 100 && atomic_load(&downs) == 0; k++)
		usleep(10000);
	CHECK(atomic_load(&downs) == 1, "on_down called once");
	struct outcome after;
	memset(&after, 0, sizeof(after));
	call(c, "echo", 0, record, &after, 1, (uint64_t)1, 0);
	CHECK(wait_done(&after, 100) && after.err == EIO, "a request after death fails at once");
	fsd_conn_free(c);
	pthread_join(s.th, NULL);
}

static void test_hello_failures(void)
{
	struct server s;
	struct sp_connector sc;
	char err[512];
	int rc;
	struct fsd_conn *c = start(&s, S_TEXT, 5, &sc, &rc, err, sizeof(err), NULL, NULL);
	CHECK(rc < 0 && strstr(err, "not a flechefs frame") && strstr(err, "Welc"),
	      "text instead of a frame: %s", err);
	fsd_conn_free(c);
	pthread_join(s.th, NULL);
	c = start(&s, S_OLD_PROTOCOL, 5, &sc, &rc, err, sizeof(err), NULL, NULL);
	CHECK(rc < 0 && strstr(err, "99") && strstr(err, "protocol 1"), "version mismatch: %s",
	      err);
	fsd_conn_free(c);
	pthread_join(s.th, NULL);
}

static void test_inodes(void)
{
	struct fsd_itable t;
	CHECK(fsd_itable_init(&t) == 0, "itable init");
	/* Numbers derive from paths only: the same on every run and every machine. */
	CHECK(fsd_path_hash("calls") == fsd_path_hash("calls"), "hash deterministic");
	CHECK(fsd_path_hash("calls") != fsd_path_hash("values"), "hash differs");
	fsd_itable_lock(&t);
	struct fsd_inode *calls = fsd_itable_child(&t, t.root, "calls", FSD_CALLS, NULL, NULL, 1);
	struct fsd_inode *k = fsd_itable_child(&t, calls, "abcd", FSD_LINK, NULL, "x", 2);
	CHECK(calls && calls->ino == fsd_path_hash("calls"), "calls number");
	CHECK(k && k->ino == fsd_path_hash("calls/abcd") && strcmp(k->path, "calls/abcd") == 0,
	      "child path and number");
	struct fsd_inode *again = fsd_itable_child(&t, calls, "abcd", FSD_LINK, NULL, "x", 1);
	CHECK(again == k && k->nlookup == 3, "same inode, lookups added");
	uint64_t ino = k->ino;
	fsd_itable_forget(&t, ino, 2);
	fsd_itable_unlock(&t);
	CHECK(fsd_itable_get(&t, ino) == k, "still there with one lookup");
	fsd_itable_lock(&t);
	fsd_itable_forget(&t, ino, 1);
	fsd_itable_unlock(&t);
	CHECK(fsd_itable_get(&t, ino) == NULL, "freed at zero");
	CHECK(fsd_itable_get(&t, 1) == t.root, "root is 1");
	fsd_itable_release(&t);
}

/* View names, and the view cache against the scripted server's stat_value. */
static void test_views(void)
{
	size_t stem;
	CHECK(fsd_view_split("abcd.json", &stem) == RPC_VIEW_JSON && stem == 4, "split .json");
	CHECK(fsd_view_split("result.npy", &stem) == RPC_VIEW_NPY && stem == 6, "split .npy");
	CHECK(fsd_view_split("abcd", &stem) == RPC_VIEW_PICKLE && stem == 4, "no extension");
	CHECK(fsd_view_split("abcd.pickle", &stem) == 0 && stem == 11, ".pickle is no view");
	CHECK(fsd_view_split("abcd.xml", &stem) == 0 && stem == 8, "unknown extension");
	CHECK(fsd_view_split(".json", &stem) == 0 && stem == 5, "empty stem");
	CHECK(fsd_view_split("a.json.txt", &stem) == RPC_VIEW_TXT && stem == 6, "last dot");

	struct server s;
	struct sp_connector cn;
	char err[256];
	int rc;
	struct fsd_conn *c = start(&s, S_NORMAL, 5, &cn, &rc, err, sizeof(err), NULL, NULL);
	CHECK(rc == 0, "hello failed: %s", err);
	unsigned want = 1u | 1u << RPC_VIEW_JSON | 1u << RPC_VIEW_NPY | 1u << RPC_VIEW_TXT;
	CHECK(fsd_conn_server(c)->views == want, "views from hello: %#x",
	      fsd_conn_server(c)->views);
	struct fsd_viewcache vc;
	CHECK(fsd_viewcache_init(&vc, c) == 0, "viewcache init");
	char keys[3][65];
	memset(keys, 0, sizeof(keys));
	memset(keys[0], 'a', 64);
	memset(keys[1], 'b', 64);
	memset(keys[2], 'e', 64);
	struct fsd_viewinfo vi[3];
	atomic_store(&stat_requests, 0);
	CHECK(fsd_viewcache_get(&vc, keys, 3, vi) == 0, "viewcache get");
	CHECK(atomic_load(&stat_requests) == 9, "3 offered views of 3 keys asked at once (%d)",
	      atomic_load(&stat_requests));
	CHECK(vi[0].state[RPC_VIEW_JSON] == FSD_VS_YES && vi[0].size[RPC_VIEW_JSON] == 14 &&
	          vi[0].state[RPC_VIEW_NPY] == FSD_VS_YES && vi[0].size[RPC_VIEW_NPY] == 13 &&
	          vi[0].state[RPC_VIEW_BIN] == FSD_VS_UNKNOWN,
	      "key a: json, npy, txt; bin is not offered");
	CHECK(vi[1].state[RPC_VIEW_JSON] == FSD_VS_YES && vi[1].state[RPC_VIEW_NPY] == FSD_VS_NO &&
	          vi[1].state[RPC_VIEW_TXT] == FSD_VS_NO,
	      "key b: json only (EFBIG and ENOTSUP are definitive)");
	CHECK(vi[2].state[RPC_VIEW_JSON] == FSD_VS_UNKNOWN, "key e: EIO leaves it unknown");
	CHECK(fsd_viewcache_get(&vc, keys, 3, vi) == 0, "viewcache get again");
	CHECK(atomic_load(&stat_requests) == 12, "only the unknown key is asked again (%d)",
	      atomic_load(&stat_requests));
	CHECK(vi[1].state[RPC_VIEW_JSON] == FSD_VS_YES && vi[1].size[RPC_VIEW_JSON] == 14,
	      "cached answers kept");
	fsd_viewcache_release(&vc);
	fsd_conn_free(c);
	pthread_join(s.th, NULL);
}

/* A key of 64 hex digits: kind, then n in hex, then zeros. */
static void make_key(char key[65], char kind, unsigned n)
{
	memset(key, '0', 64);
	key[64] = 0;
	key[0] = kind;
	char hex[9];
	snprintf(hex, sizeof(hex), "%08x", n);
	memcpy(key + 1, hex, 8);
}

static void test_recdirs(void)
{
	struct server s;
	struct sp_connector cn;
	struct fsd_recdirs rd;
	struct fsd_recdir *d, *d2, *first_c;
	char err[256], why[600], key[65];
	int rc;
	struct fsd_conn *c = start(&s, S_NORMAL, 5, &cn, &rc, err, sizeof(err), NULL, NULL);

	CHECK(rc == 0, "hello failed: %s", err);
	CHECK(fsd_recdirs_init(&rd, c) == 0, "recdirs init");
	atomic_store(&list_record_requests, 0);

	/* a listing: asked once, then shared */
	make_key(key, 'a', 0);
	CHECK(fsd_recdirs_get(&rd, key, &d, why, sizeof(why)) == 0, "a listing: %s", why);
	CHECK(d && d->n == 2 && d->mtime == 5.0 && !strcmp(d->entries[0].name, "f.txt") &&
	          !d->entries[0].is_dir && d->entries[0].size == 42 && d->entries[1].is_dir &&
	          fsd_recdir_find(d, "sub") == 1 && fsd_recdir_find(d, "x") == -1,
	      "the listing as answered");
	CHECK(fsd_recdirs_get(&rd, key, &d2, why, sizeof(why)) == 0 && d2 == d &&
	          atomic_load(&list_record_requests) == 1,
	      "a listing is asked once (%d)", atomic_load(&list_record_requests));
	fsd_recdir_unref(d2);
	fsd_recdir_unref(d);

	/* ENOTSUP is kept, EIO is not, a string that is no key is never sent */
	make_key(key, 'b', 0);
	CHECK(fsd_recdirs_get(&rd, key, &d, why, sizeof(why)) == -ENOTSUP && !d &&
	          strstr(why, "not a record"),
	      "not a record: %s", why);
	CHECK(fsd_recdirs_get(&rd, key, &d, why, sizeof(why)) == -ENOTSUP &&
	          strstr(why, "not a record") && atomic_load(&list_record_requests) == 2,
	      "a refusal is kept with its reason (%d)", atomic_load(&list_record_requests));
	make_key(key, 'e', 0);
	CHECK(fsd_recdirs_get(&rd, key, &d, why, sizeof(why)) == -EIO, "EIO");
	CHECK(fsd_recdirs_get(&rd, key, &d, why, sizeof(why)) == -EIO &&
	          atomic_load(&list_record_requests) == 4,
	      "EIO is asked again (%d)", atomic_load(&list_record_requests));
	CHECK(fsd_recdirs_get(&rd, "abc", &d, why, sizeof(why)) == -EINVAL &&
	          atomic_load(&list_record_requests) == 4,
	      "no key: %s", why);

	/* a listing over a quarter of the budget is served, not kept */
	make_key(key, 'd', 0);
	CHECK(fsd_recdirs_get(&rd, key, &d, why, sizeof(why)) == 0 && d->n == D_ENTRIES &&
	          d->bytes > FSD_RECDIR_CACHE_BYTES / 4,
	      "a large listing: %s", why);
	fsd_recdir_unref(d);
	CHECK(fsd_recdirs_get(&rd, key, &d, why, sizeof(why)) == 0 &&
	          atomic_load(&list_record_requests) == 6,
	      "a large listing is asked again (%d)", atomic_load(&list_record_requests));
	fsd_recdir_unref(d);

	/* listings beyond the budget: the least recently used dropped, a reference held
	 * to one of them still good */
	make_key(key, 'c', 0);
	CHECK(fsd_recdirs_get(&rd, key, &first_c, why, sizeof(why)) == 0, "c0: %s", why);
	unsigned nc = FSD_RECDIR_CACHE_BYTES / first_c->bytes + 2;
	for (unsigned k = 1; k < nc; k++) {
		make_key(key, 'c', k);
		CHECK(fsd_recdirs_get(&rd, key, &d, why, sizeof(why)) == 0, "c%u: %s", k, why);
		fsd_recdir_unref(d);
		CHECK(rd.bytes <= FSD_RECDIR_CACHE_BYTES, "within the budget after c%u: %zu", k,
		      rd.bytes);
	}
	int before = atomic_load(&list_record_requests);
	make_key(key, 'c', nc - 1);
	CHECK(fsd_recdirs_get(&rd, key, &d, why, sizeof(why)) == 0 &&
	          atomic_load(&list_record_requests) == before,
	      "the last listing is kept");
	fsd_recdir_unref(d);
	make_key(key, 'c', 0);
	CHECK(fsd_recdirs_get(&rd, key, &d, why, sizeof(why)) == 0 && d != first_c &&
	          atomic_load(&list_record_requests) == before + 1,
	      "the least recently used listing was dropped");
	fsd_recdir_unref(d);
	CHECK(first_c->n == C_ENTRIES && fsd_recdir_find(first_c, "6999-") == -1 &&
	          fsd_recdir_find(first_c, first_c->entries[C_ENTRIES - 1].name) == C_ENTRIES - 1,
	      "a dropped listing stays readable while referenced");
	fsd_recdir_unref(first_c);

	fsd_recdirs_release(&rd);
	fsd_conn_free(c);
	pthread_join(s.th, NULL);
}

/* --- splicing --- */

struct blob_outcome {
	atomic_int done;
	int err;
	size_t want; /* the blob's size */
	int partial; /* read only part of a piped answer */
	int in_pipe;
	int ok; /* every byte as sent */
};

static void blob_done(void *ctx, const struct fsd_reply *r)
{
	struct blob_outcome *o = ctx;
	o->err = r->err;
	if (!r->err && r->in_pipe) {
		o->in_pipe = 1;
		size_t n = o->partial ? r->data_len / 2 : r->data_len, got = 0;
		uint8_t *b = malloc(n + 1);
		while (b && got < n) {
			ssize_t k = read(r->data_fd, b + got, n - got);
			if (k <= 0)
				break;
			got += (size_t)k;
		}
		o->ok = b && got == n && r->data_len == o->want;
		for (size_t i = 0; o->ok && i < n; i++)
			o->ok = b[i] == blob_byte(o->want, i);
		free(b);
	} else if (!r->err) {
		const void *p;
		size_t n;
		o->ok = rpc_obj_bin(r->result, &p, &n) == 0 && n == o->want;
		for (size_t i = 0; o->ok && i < n; i++)
			o->ok = ((const uint8_t *)p)[i] == blob_byte(n, i);
	}
	atomic_store(&o->done, 1);
}

static int blob_wait(struct blob_outcome *o)
{
	for (int k = 0; k < 500 && !atomic_load(&o->done); k++) {
		struct timespec d = {0, 10 * 1000 * 1000};
		nanosleep(&d, NULL);
	}
	return atomic_load(&o->done);
}

static void test_splice(void)
{
	struct server s;
	struct sp_connector sc;
	char err[512];
	int rc;
	struct fsd_conn *c = start(&s, S_NORMAL, 30, &sc, &rc, err, sizeof(err), NULL, NULL);
	CHECK(rc == 0, "hello failed: %s", err);
	long max = fsd_conn_set_splice(c, 1024 * 1024);
	CHECK(max >= 64 * 1024 && max <= 1024 * 1024, "splicing on (%ld)", max);
	size_t m = max > 0 ? (size_t)max : 65536;
	size_t sizes[] = {0,        1,     4095,  4096,  4097,     16383,
	                  16384,    16385, 65535, 65536, 65537,    131072,
	                  m - 4097, m - 1, m,     m + 1, m + 4096, 1024 * 1024};
	enum { NS = sizeof(sizes) / sizeof(sizes[0]) };
	static struct blob_outcome o[2 * NS + 2];
	memset(o, 0, sizeof(o));
	/* The reader, already waiting in a buffered read, turns exact after one answer:
	 * until then bytes read ahead into its buffer are not spliced. */
	struct blob_outcome first = {.want = 100};
	call(c, "blob", 100, blob_done, &first, 1, (uint64_t)100, 1);
	CHECK(blob_wait(&first) && first.ok, "a first blob");
	/* All in flight at once; every second one leaves half its bytes in the pipe. */
	for (size_t k = 0; k < NS; k++) {
		for (int part = 0; part < 2; part++) {
			struct blob_outcome *x = &o[2 * k + part];
			x->want = sizes[k];
			x->partial = part;
			call(c, "blob", sizes[k], blob_done, x, 1, (uint64_t)sizes[k], 1);
		}
	}
	/* A plain call is never spliced. */
	o[2 * NS].want = 200000;
	call(c, "blob", 200000, blob_done, &o[2 * NS], 1, (uint64_t)200000, 0);
	for (size_t k = 0; k < 2 * NS + 1; k++) {
		CHECK(blob_wait(&o[k]), "blob %zu answered", o[k].want);
		CHECK(o[k].err == 0 && o[k].ok, "blob of %zu bytes (partial %d) read back (err %d)",
		      o[k].want, o[k].partial, o[k].err);
		int expect = o[k].want >= 16384 && o[k].want <= m && k < 2 * NS;
		CHECK(o[k].in_pipe == expect, "blob of %zu bytes %s in a pipe", o[k].want,
		      expect ? "handed over" : "not handed over");
	}
	/* msgids of two and three bytes (above 255 and 65535 would take too long). */
	struct blob_outcome small;
	for (int k = 0; k < 300; k++) {
		memset(&small, 0, sizeof(small));
		small.want = 3;
		call(c, "blob", 3, blob_done, &small, 1, (uint64_t)3, 1);
		blob_wait(&small);
	}
	CHECK(small.ok, "small blobs");
	memset(&o[2 * NS + 1], 0, sizeof(o[0]));
	o[2 * NS + 1].want = 300000 < m ? 300000 : m;
	call(c, "blob", o[2 * NS + 1].want, blob_done, &o[2 * NS + 1], 1,
	     (uint64_t)o[2 * NS + 1].want, 1);
	CHECK(blob_wait(&o[2 * NS + 1]) && o[2 * NS + 1].ok && o[2 * NS + 1].in_pipe,
	      "a spliced blob after msgid 300");
	fsd_conn_free(c);
	pthread_join(s.th, NULL);
}

int main(void)
{
	test_out_of_order();
	test_deadline_and_death();
	test_silence_after_answers_behind();
	test_hello_failures();
	test_inodes();
	test_views();
	test_recdirs();
	test_splice();
	return check_report("test_fsd_conn");
}

/*
 * fuzz_dispatch.c: libFuzzer harness of flechefs-server's request handling. Each
 * input is a sequence of frame payloads (2-byte big-endian length, then the
 * payload) answered by one session, as srv_serve would, against a small cache built
 * at start-up in a temporary directory (a value file and a call directory, served
 * read-only so that nothing is ever removed). The session starts with a hello when
 * the input's first byte is odd, so that the handlers behind hello are reached.
 * Checks: no crash, no leak, and every answer is one well-formed frame no larger
 * than the frame limit.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <msgpack.h>

#include "cache.h"
#include "dispatch.h"
#include "frame.h"
#include "msg.h"
#include "rpc.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct srv_cache *cache;
static char root[] = "/tmp/flechefs-fuzz-dispatch-XXXXXX";

static void remove_root(void)
{
	char p[256];
	snprintf(p, sizeof(p), "%s/values/%s", root,
	         "0c55ce113e97ef4f8899beb58e9aaffa3fffc56c6b4626a4e97a64694229069d");
	unlink(p);
	snprintf(p, sizeof(p), "%s/values", root);
	rmdir(p);
	snprintf(p, sizeof(p), "%s/calls", root);
	rmdir(p);
	rmdir(root);
	srv_cache_free(cache);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const uint8_t value[] = {0x80, 0x05, 0x4b, 0xc8, 0x2e}; /* pickle of 200 */
	struct srv_config cfg;
	struct srv_error err;
	char p[256];
	int fd;

	(void)argc;
	(void)argv;
	if (!mkdtemp(root))
		abort();
	snprintf(p, sizeof(p), "%s/calls", root);
	if (mkdir(p, 0700) != 0)
		abort();
	snprintf(p, sizeof(p), "%s/values", root);
	if (mkdir(p, 0700) != 0)
		abort();
	snprintf(p, sizeof(p), "%s/values/%s", root,
	         "0c55ce113e97ef4f8899beb58e9aaffa3fffc56c6b4626a4e97a64694229069d");
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, value, sizeof(value)) != (ssize_t)sizeof(value))
		abort();
	close(fd);
	memset(&cfg, 0, sizeof(cfg));
	cfg.root = root;
	cfg.read_only = true;
	memset(&err, 0, sizeof(err));
	if (srv_cache_open(&cfg, &cache, &err) != 0) {
		fprintf(stderr, "fuzz_dispatch: %s\n", err.message);
		abort();
	}
	atexit(remove_root);
	return 0;
}

/* Every answer in sb must be a frame holding one valid response. */
static void check_answers(const msgpack_sbuffer *sb, uint32_t max)
{
	size_t off = 0;
	msgpack_zone zone;

	msgpack_zone_init(&zone, 4096);
	while (off < sb->size) {
		uint32_t n;
		struct rpc_response resp;
		if (sb->size - off < RPC_FRAME_HEADER ||
		    rpc_frame_length((const uint8_t *)sb->data + off, max, &n) != 0 ||
		    sb->size - off - RPC_FRAME_HEADER < n)
			abort();
		msgpack_zone_clear(&zone);
		if (rpc_response_decode(sb->data + off + RPC_FRAME_HEADER, n, &zone, &resp, NULL,
		                        0) != 0)
			abort();
		off += RPC_FRAME_HEADER + n;
	}
	msgpack_zone_destroy(&zone);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct srv_serve_options opt = {.max_frame = RPC_MAX_FRAME_MIN};
	struct srv_session *s = srv_session_new(cache, &opt);
	msgpack_sbuffer out;
	char err[256];

	if (!s)
		return 0;
	msgpack_sbuffer_init(&out);
	if (size > 0 && (data[0] & 1)) {
		static const uint8_t hello[] = {0x94, 0x00, 0x00, 0xa5, 'h',  'e', 'l',
		                                'l',  'o',  0x92, 0x01, 0xa1, 'f'};
		if (srv_session_handle(s, hello, sizeof(hello), &out, err, sizeof(err)) != 0)
			abort();
	}
	if (size > 0) {
		data++;
		size--;
	}
	while (size >= 2) {
		size_t n = (size_t)data[0] << 8 | data[1];
		data += 2;
		size -= 2;
		if (n > size)
			n = size;
		if (srv_session_handle(s, data, n, &out, err, sizeof(err)) != 0)
			break; /* the session would end here */
		data += n;
		size -= n;
	}
	check_answers(&out, opt.max_frame);
	msgpack_sbuffer_destroy(&out);
	srv_session_free(s);
	return 0;
}

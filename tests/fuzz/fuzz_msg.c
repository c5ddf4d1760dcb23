/*
 * fuzz_msg.c: libFuzzer harness for everything in rpc/ that reads bytes from the
 * peer: the frame reader (through a chunking callback), the msgpack validator and
 * builder, the request and response decoders, the error-map decoder and the JSON
 * renderer. Whatever the validator accepts must also be accepted by msgpack-c's
 * own unpacker (when within its 32-level nesting limit) and give the same tree.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "frame.h"
#include "json_writer.h"
#include "msg.h"
#include "../unit/obj_same.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fuzz_reader {
	const uint8_t *p;
	size_t len, off, chunk;
};

static ssize_t fuzz_read(void *ctx, void *buf, size_t len)
{
	struct fuzz_reader *r = ctx;
	size_t n = r->len - r->off;

	if (n > len)
		n = len;
	if (n > r->chunk)
		n = r->chunk;
	memcpy(buf, r->p + r->off, n);
	r->off += n;
	return (ssize_t)n;
}

static void fuzz_payload(const uint8_t *p, size_t n)
{
	char err[256];
	msgpack_zone z;
	msgpack_object o;
	struct rpc_request req;
	struct rpc_response resp;
	struct rpc_error_info info;
	struct rpc_buf json;
	bool have;

	if (!msgpack_zone_init(&z, 1024))
		return;
	if (rpc_msgpack_unpack(p, n, RPC_MAX_DEPTH, &z, &o, err, sizeof(err)) == 0) {
		msgpack_zone z2;
		msgpack_object o2;
		size_t off = 0;

		/* msgpack-c fails only for nesting beyond its 32 levels. */
		if (msgpack_zone_init(&z2, 1024)) {
			msgpack_unpack_return r =
			    msgpack_unpack((const char *)p, n, &off, &z2, &o2);
			if (r == MSGPACK_UNPACK_SUCCESS && !obj_same(&o, &o2))
				abort();
			if (r != MSGPACK_UNPACK_SUCCESS && r != MSGPACK_UNPACK_NOMEM_ERROR)
				abort();
			msgpack_zone_destroy(&z2);
		}
		rpc_buf_init(&json, 1 << 20);
		for (int indent = -1; indent <= 2; indent++) {
			rpc_buf_reset(&json);
			(void)rpc_json_msgpack(&json, &o, RPC_MAX_DEPTH, indent);
		}
		rpc_buf_release(&json);
		rpc_error_decode(&o, &info);
		if (info.ncandidates > RPC_MAX_CANDIDATES)
			abort();
	}
	if (rpc_request_decode(p, n, &z, &req, &have, err, sizeof(err)) == 0) {
		if (!have || req.params->type != MSGPACK_OBJECT_ARRAY)
			abort();
	}
	if (rpc_response_decode(p, n, &z, &resp, err, sizeof(err)) == 0) {
		rpc_error_decode(resp.error, &info);
		if (info.err_no <= 0)
			abort();
	}
	msgpack_zone_destroy(&z);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_reader rd = {data, size, 0, 1 + (size % 7)};
	struct rpc_buf frame;
	char err[256];
	int r;

	/* The input as a stream of frames (limit 64 KiB), then as one bare payload. */
	rpc_buf_init(&frame, 0);
	while ((r = rpc_frame_read(fuzz_read, &rd, 65536, &frame, err, sizeof(err))) == 0) {
		if (frame.len == 0 || frame.len > 65536)
			abort();
		fuzz_payload((const uint8_t *)frame.data, frame.len);
	}
	if (r < 0 && err[0] == '\0')
		abort();
	rpc_buf_release(&frame);
	fuzz_payload(data, size);
	return 0;
}

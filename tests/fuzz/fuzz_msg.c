/*
 * fuzz_msg.c: libFuzzer harness for everything in rpc/ that reads bytes from the
 * peer: the frame reader (through a chunking callback), the msgpack validator and
 * builder, the request and response decoders, the error-map decoder, every result
 * decoder of proto.h, the bin response head a splicing reader parses (checked
 * against the full response decoder), and the JSON renderer. Whatever the validator accepts must also be accepted by msgpack-c's
 * own unpacker (when within its 32-level nesting limit) and give the same tree.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "frame.h"
#include "json_writer.h"
#include "msg.h"
#include "proto.h"
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

/* Every result decoder on one object; what they accept must be what they promise. */
static void fuzz_results(const msgpack_object *o)
{
	struct rpc_hello h;
	struct rpc_stat_value st;
	struct rpc_page page;
	struct rpc_page_entry e;
	struct rpc_names_page names;
	struct rpc_list_record rec;
	struct rpc_list_record_entry re;
	char key[RPC_KEY_LEN + 1], err[128];
	bool found;

	if (rpc_decode_hello(o, &h, err, sizeof(err)) == 0 && !(h.views & 1u))
		abort();
	if (rpc_decode_stat_value(o, &st, err, sizeof(err)) == 0 &&
	    (st.size > INT64_MAX || (st.key[0] && !rpc_key_valid(st.key, strlen(st.key)))))
		abort();
	if (rpc_decode_page(o, &page, err, sizeof(err)) == 0)
		for (uint32_t i = 0; i < page.n; i++) {
			rpc_page_entry(&page, i, &e);
			if (!e.key || (e.is_key && e.key_len != RPC_KEY_LEN) || e.size < -1)
				abort();
		}
	if (rpc_decode_names(o, &names, err, sizeof(err)) == 0)
		for (uint32_t i = 0; i < names.n; i++) {
			const char *s;
			size_t len;
			rpc_names_entry(&names, i, &s, &len);
		}
	if (rpc_decode_key(o, key, err, sizeof(err)) == 0 &&
	    !rpc_key_prefix_valid(key, strlen(key)))
		abort();
	(void)rpc_decode_contains(o, &found, err, sizeof(err));
	if (rpc_decode_list_record(o, &rec, err, sizeof(err)) == 0) {
		if (!rpc_key_valid(rec.key, strlen(rec.key)))
			abort();
		for (uint32_t i = 0; i < rec.n; i++) {
			rpc_list_record_entry(&rec, i, &re);
			if (!re.name || rpc_file_name_refused(re.name, re.name_len) ||
			    !rpc_key_valid(re.key, strlen(re.key)) || re.size > INT64_MAX)
				abort();
		}
	}
}

/*
 * The bin head a splicing reader parses from the start of a response: when it
 * parses, the whole payload (when the bin's bytes are all there) must decode as that
 * response, with a bin of that length as its result.
 */
static void fuzz_bin_head(const uint8_t *p, size_t n)
{
	uint32_t msgid, blen;
	size_t hl = n >= 3 ? rpc_bin_head_length(p) : 0;
	if (hl && (hl < 9 || hl > RPC_BIN_HEAD_MAX))
		abort();
	if (!hl || n < hl || rpc_bin_head_parse(p, hl, &msgid, &blen) != 0)
		return;
	if (n != hl + (size_t)blen)
		return;
	msgpack_zone z;
	struct rpc_response resp;
	char err[128];
	const void *bin;
	size_t len;
	msgpack_zone_init(&z, 1024);
	if (rpc_response_decode(p, n, &z, &resp, err, sizeof(err)) != 0 || resp.msgid != msgid ||
	    resp.error || rpc_obj_bin(resp.result, &bin, &len) != 0 || len != blen)
		abort();
	msgpack_zone_destroy(&z);
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
		fuzz_results(resp.result);
	}
	/* the input as a str written by rpc_json_string_ascii: ASCII only, quoted */
	rpc_buf_init(&json, 1 << 20);
	if (rpc_json_string_ascii(&json, (const char *)p, n) == 0) {
		if (json.len < 2 || json.data[0] != '"' || json.data[json.len - 1] != '"')
			abort();
		for (size_t i = 0; i < json.len; i++)
			if ((unsigned char)json.data[i] < 0x20 || (unsigned char)json.data[i] >= 0x7f)
				abort();
	}
	rpc_buf_release(&json);
	fuzz_bin_head(p, n);
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

/*
 * frame.c: reading and writing the frames of PROTOCOL.md section 1. Reading
 * checks the declared length against the limit before allocating, and allocates
 * the payload exactly once (out->data never grows past the declared length).
 */
#include "frame.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void rpc_frame_put_header(uint8_t hdr[RPC_FRAME_HEADER], uint32_t n)
{
	hdr[0] = (uint8_t)(n >> 24);
	hdr[1] = (uint8_t)(n >> 16);
	hdr[2] = (uint8_t)(n >> 8);
	hdr[3] = (uint8_t)n;
}

int rpc_frame_length(const uint8_t hdr[RPC_FRAME_HEADER], uint32_t max, uint32_t *n)
{
	*n = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
	if (*n == 0)
		return -EPROTO;
	if (*n > max)
		return -EMSGSIZE;
	return 0;
}

void rpc_frame_describe(const uint8_t *bytes, size_t n, char *out, size_t outlen)
{
	size_t o = 0;

	if (outlen == 0)
		return;
#define RPC_PUT(c)                                                                                 \
	do {                                                                                       \
		if (o + 1 < outlen)                                                                \
			out[o++] = (c);                                                            \
	} while (0)
	RPC_PUT('"');
	for (size_t i = 0; i < n; i++) {
		uint8_t c = bytes[i];
		char esc[8];
		const char *e = NULL;

		switch (c) {
		case '\n':
			e = "\\n";
			break;
		case '\r':
			e = "\\r";
			break;
		case '\t':
			e = "\\t";
			break;
		case '"':
			e = "\\\"";
			break;
		case '\\':
			e = "\\\\";
			break;
		default:
			if (c < 0x20 || c >= 0x7f) {
				snprintf(esc, sizeof(esc), "\\x%02x", c);
				e = esc;
			}
		}
		if (e) {
			for (; *e; e++)
				RPC_PUT(*e);
		} else {
			RPC_PUT((char)c);
		}
	}
	RPC_PUT('"');
#undef RPC_PUT
	out[o] = '\0';
}

/* True when the bytes look like text a shell or login script printed. */
static int rpc_frame_looks_textual(const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!(b[i] >= 0x20 && b[i] < 0x7f) && b[i] != '\n' && b[i] != '\r' && b[i] != '\t')
			return 0;
	return 1;
}

/* Reads exactly len bytes: 0, 1 on EOF before the first byte, -EPIPE on EOF after. */
static int rpc_frame_read_full(rpc_read_fn fn, void *ctx, void *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t r = fn(ctx, (char *)buf + got, len - got);
		if (r < 0)
			return (int)r;
		if (r == 0)
			return got == 0 ? 1 : -EPIPE;
		if ((size_t)r > len - got)
			return -EIO; /* a broken callback */
		got += (size_t)r;
	}
	return 0;
}

/*
 * Makes room for exactly n payload bytes plus the NUL in an emptied buffer,
 * allocating exactly that much when the buffer is smaller (rpc_buf_reserve would
 * round up to a power of two), and raising out->max to n when below.
 */
static int rpc_frame_make_room(struct rpc_buf *out, uint32_t n)
{
	char *p;

	if (out->max < n)
		out->max = n;
	if (out->cap >= (size_t)n + 1)
		return 0;
	p = realloc(out->data, (size_t)n + 1);
	if (!p)
		return -ENOMEM;
	out->data = p;
	out->cap = (size_t)n + 1;
	out->len = 0;
	out->data[0] = '\0';
	return 0;
}

#define RPC_ERR(...)                                                                               \
	do {                                                                                       \
		if (err && errlen)                                                                 \
			snprintf(err, errlen, __VA_ARGS__);                                        \
	} while (0)

int rpc_frame_header_check(int read_rc, const uint8_t hdr[RPC_FRAME_HEADER], uint32_t max,
                           uint32_t *n, char *err, size_t errlen)
{
	char shown[24];
	int r = read_rc;

	if (r == 1)
		return 1;
	if (r == -EPIPE) {
		RPC_ERR("truncated frame: end of file inside the 4-byte length");
		return -EPROTO;
	}
	if (r < 0) {
		RPC_ERR("cannot read a frame: %s", strerror(-r));
		return r;
	}
	r = rpc_frame_length(hdr, max, n);
	if (r == -EMSGSIZE) {
		rpc_frame_describe(hdr, RPC_FRAME_HEADER, shown, sizeof(shown));
		if (rpc_frame_looks_textual(hdr, RPC_FRAME_HEADER))
			RPC_ERR("the peer's output is not a flechefs frame: it starts with %s",
			        shown);
		else
			RPC_ERR("frame of %u bytes is larger than the limit of %u bytes (it "
			        "starts with %s)",
			        *n, max, shown);
		return r;
	}
	if (r < 0) {
		RPC_ERR("frame of length 0");
		return r;
	}
	return 0;
}

int rpc_frame_read(rpc_read_fn fn, void *ctx, uint32_t max, struct rpc_buf *out, char *err,
                   size_t errlen)
{
	uint8_t hdr[RPC_FRAME_HEADER];
	uint32_t n;
	int r;

	if (err && errlen)
		err[0] = '\0';
	rpc_buf_reset(out);
	r = rpc_frame_read_full(fn, ctx, hdr, sizeof(hdr));
	r = rpc_frame_header_check(r, hdr, max, &n, err, errlen);
	if (r != 0)
		return r;
	r = rpc_frame_make_room(out, n);
	if (r < 0) {
		RPC_ERR("cannot allocate a frame of %u bytes: %s", n, strerror(-r));
		return r;
	}
	r = rpc_frame_read_full(fn, ctx, out->data, n);
	if (r == 1 || r == -EPIPE) {
		RPC_ERR("truncated frame: end of file after %s of %u bytes",
		        r == 1 ? "none" : "some", n);
		return -EPROTO;
	}
	if (r < 0) {
		RPC_ERR("cannot read a frame: %s", strerror(-r));
		return r;
	}
	out->len = n;
	out->data[n] = '\0';
	return 0;
}

int rpc_frame_begin_at(msgpack_sbuffer *sb, size_t *start)
{
	static const char zero[RPC_FRAME_HEADER];

	*start = sb->size;
	if (msgpack_sbuffer_write(sb, zero, sizeof(zero)) != 0)
		return -ENOMEM;
	return 0;
}

int rpc_frame_end_at(msgpack_sbuffer *sb, size_t start, uint32_t max)
{
	size_t n;

	if (sb->size < start + RPC_FRAME_HEADER)
		return -EINVAL;
	n = sb->size - start - RPC_FRAME_HEADER;
	if (n == 0)
		return -EPROTO;
	if (n > max)
		return -EMSGSIZE;
	rpc_frame_put_header((uint8_t *)sb->data + start, (uint32_t)n);
	return 0;
}

int rpc_frame_begin(msgpack_sbuffer *sb)
{
	size_t start;

	return rpc_frame_begin_at(sb, &start);
}

int rpc_frame_end(msgpack_sbuffer *sb, uint32_t max)
{
	return rpc_frame_end_at(sb, 0, max);
}

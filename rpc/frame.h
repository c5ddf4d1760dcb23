/*
 * frame.h: the frames of the flechefs protocol (PROTOCOL.md section 1): a 4-byte
 * big-endian length N, then N bytes holding one msgpack object. Reading goes
 * through a callback so that the same code serves fds, SSH channels and tests; the
 * length is checked against the limit before anything is allocated for the payload.
 */
#ifndef FLECHEFS_RPC_FRAME_H
#define FLECHEFS_RPC_FRAME_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <msgpack.h>

#include "buf.h"
#include "rpc.h"

/* Writes n as the 4-byte big-endian header. */
void rpc_frame_put_header(uint8_t hdr[RPC_FRAME_HEADER], uint32_t n);
/*
 * Reads a header into *n: 0, -EPROTO when the length is 0, -EMSGSIZE when it is
 * above max (*n is set in every case).
 */
int rpc_frame_length(const uint8_t hdr[RPC_FRAME_HEADER], uint32_t max, uint32_t *n);

/*
 * Judges the 4 header bytes a reader got: read_rc is how reading them went (0 read,
 * 1 clean end of file before them, -EPIPE end of file among them, or -errno).
 * Returns 0 with the payload length in *n, 1 at a clean end, or rpc_frame_read's
 * negative codes with its messages in err (when not NULL).
 */
int rpc_frame_header_check(int read_rc, const uint8_t hdr[RPC_FRAME_HEADER], uint32_t max,
                           uint32_t *n, char *err, size_t errlen);

/*
 * Reads up to len bytes into buf: returns the number read (> 0), 0 at end of file,
 * or -errno (-EINTR and -EAGAIN are treated as errors: retry inside the callback).
 */
typedef ssize_t (*rpc_read_fn)(void *ctx, void *buf, size_t len);

/*
 * Reads exactly one frame and leaves its payload in out->data[0..out->len) (out is
 * reset first, and its max raised to the frame's length when below; its memory is
 * kept for the next frame; data[len] is a NUL). Returns 0 with a frame, 1 on a clean end of file
 * before any byte of a frame, or a negative code with a message in err (when err is not NULL):
 *   -EMSGSIZE  the length is above max; when the 4 bytes look like text the message
 *              says "the peer's output is not a flechefs frame: it starts with
 *              \"Welc\"" (non-printable bytes are shown as \xNN);
 *   -EPROTO    a length of 0, or end of file inside a frame ("truncated frame");
 *   -ENOMEM    no memory for the payload;
 *   others     the callback's error.
 * Allocates only after checking the declared length, and then exactly the length
 * plus one byte (when out's memory is too small).
 */
int rpc_frame_read(rpc_read_fn fn, void *ctx, uint32_t max, struct rpc_buf *out, char *err,
                   size_t errlen);

/*
 * Describes 4 header bytes for a person: "\"Welc\"" with C escapes for bytes that
 * are not printable ASCII. Writes a NUL-terminated string to out (outlen >= 20 holds
 * any header). Used by rpc_frame_read and by clients that check a first response.
 */
void rpc_frame_describe(const uint8_t *bytes, size_t n, char *out, size_t outlen);

/*
 * Writing a frame into a msgpack_sbuffer. The simple form, one frame per sbuffer:
 * clear the sbuffer, rpc_frame_begin(sb) appends the 4 placeholder header bytes
 * (0 or -ENOMEM), pack the message with a packer writing to sb, then
 * rpc_frame_end(sb, max) fills in the length of everything after the first 4 bytes
 * (0; -EPROTO when nothing was packed; -EMSGSIZE when the payload is above max, the
 * sbuffer then holds a frame that must not be sent).
 *
 * The _at forms write several frames one after another into the same sbuffer:
 * rpc_frame_begin_at stores the offset of the header in *start, rpc_frame_end_at
 * fills in that header. On -EMSGSIZE the caller may truncate sb->size back to start.
 */
int rpc_frame_begin(msgpack_sbuffer *sb);
int rpc_frame_end(msgpack_sbuffer *sb, uint32_t max);
int rpc_frame_begin_at(msgpack_sbuffer *sb, size_t *start);
int rpc_frame_end_at(msgpack_sbuffer *sb, size_t start, uint32_t max);

#endif

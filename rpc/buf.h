/*
 * buf.h: a growable byte buffer with a hard size cap, used for frames read from
 * the peer and for JSON text. Every buffer is created with a maximum, so that no
 * input can make it grow without bound (curl's dynbuf is the model).
 *
 * Invariants: len <= cap; len <= max; data is NULL when cap is 0, otherwise
 * data[len] is always a NUL byte (cap > len), so the contents can be printed as a
 * C string when they hold no NUL. A failed add leaves the buffer unchanged.
 */
#ifndef FLECHEFS_RPC_BUF_H
#define FLECHEFS_RPC_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct rpc_buf {
	char *data;
	size_t len, cap, max;
};

#define RPC_BUF_INIT(m)                                                                            \
	{                                                                                          \
		NULL, 0, 0, (m)                                                                    \
	}

/* Makes an empty buffer that will never hold more than max bytes. Allocates nothing. */
void rpc_buf_init(struct rpc_buf *b, size_t max);
/* Frees the contents; the buffer is empty again (same max) and may be reused. */
void rpc_buf_release(struct rpc_buf *b);
/* Empties the buffer, keeping its memory. */
void rpc_buf_reset(struct rpc_buf *b);
/* Makes room for n more bytes without adding them: 0, -ENOMEM or -EMSGSIZE. */
int rpc_buf_reserve(struct rpc_buf *b, size_t n);
/* Appends n bytes: 0, -ENOMEM, or -EMSGSIZE when len would pass max. */
int rpc_buf_add(struct rpc_buf *b, const void *p, size_t n);
/* Appends one byte; as rpc_buf_add. */
int rpc_buf_addc(struct rpc_buf *b, char c);
/* Appends a C string (without its NUL); as rpc_buf_add. */
int rpc_buf_adds(struct rpc_buf *b, const char *s);
/* Appends printf output; as rpc_buf_add (-EINVAL on a formatting error). */
int rpc_buf_addf(struct rpc_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int rpc_buf_vaddf(struct rpc_buf *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
/*
 * Takes the contents out: returns a NUL-terminated malloc'd string the caller frees
 * (never NULL unless out of memory: an empty buffer gives ""), stores its length in
 * *len when len is not NULL, and leaves the buffer empty.
 */
char *rpc_buf_detach(struct rpc_buf *b, size_t *len);

#endif

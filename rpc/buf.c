/*
 * buf.c: the capped growable buffer of buf.h. Growth doubles the capacity, never
 * beyond max + 1 (the +1 is the NUL kept after the contents).
 */
#include "buf.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void rpc_buf_init(struct rpc_buf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
}

void rpc_buf_release(struct rpc_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

void rpc_buf_reset(struct rpc_buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

int rpc_buf_reserve(struct rpc_buf *b, size_t n)
{
	size_t need, ncap;
	char *p;

	if (n > b->max || b->len > b->max - n)
		return -EMSGSIZE;
	need = b->len + n + 1;
	if (need <= b->cap)
		return 0;
	ncap = b->cap ? b->cap : 64;
	while (ncap < need)
		ncap = ncap > SIZE_MAX / 2 ? need : ncap * 2;
	if (b->max < SIZE_MAX && ncap > b->max + 1)
		ncap = b->max + 1;
	p = realloc(b->data, ncap);
	if (!p)
		return -ENOMEM;
	b->data = p;
	b->cap = ncap;
	b->data[b->len] = '\0';
	return 0;
}

int rpc_buf_add(struct rpc_buf *b, const void *p, size_t n)
{
	int r = rpc_buf_reserve(b, n);
	if (r < 0)
		return r;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int rpc_buf_addc(struct rpc_buf *b, char c)
{
	return rpc_buf_add(b, &c, 1);
}

int rpc_buf_adds(struct rpc_buf *b, const char *s)
{
	return rpc_buf_add(b, s, strlen(s));
}

int rpc_buf_vaddf(struct rpc_buf *b, const char *fmt, va_list ap)
{
	char small[256];
	va_list ap2;
	int n, r;

	va_copy(ap2, ap);
	n = vsnprintf(small, sizeof(small), fmt, ap2);
	va_end(ap2);
	if (n < 0)
		return -EINVAL;
	if ((size_t)n < sizeof(small))
		return rpc_buf_add(b, small, (size_t)n);
	r = rpc_buf_reserve(b, (size_t)n);
	if (r < 0)
		return r;
	if (vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap) != n) {
		b->data[b->len] = '\0';
		return -EINVAL;
	}
	b->len += (size_t)n;
	return 0;
}

int rpc_buf_addf(struct rpc_buf *b, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = rpc_buf_vaddf(b, fmt, ap);
	va_end(ap);
	return r;
}

char *rpc_buf_detach(struct rpc_buf *b, size_t *len)
{
	char *p = b->data;

	if (!p) {
		p = malloc(1);
		if (!p)
			return NULL;
		p[0] = '\0';
	}
	if (len)
		*len = b->len;
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	return p;
}

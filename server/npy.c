/*
 * npy.c: recognises numpy arrays and scalars in a pickle tree and writes the NPY
 * header for them (npy.h). Every part of the pickled array is checked before it is
 * believed: the dtype's code and state, the shape (at most SRV_NPY_MAX_DIMS
 * non-negative ints whose product times the item size must not overflow) and the
 * length of the raw data, which must be exactly count * itemsize.
 */
#include "npy.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static bool npy_is(const struct pk_node *n, const char *name, const char *mod1, const char *mod2)
{
	return pk_is_class(n, mod1, name) || pk_is_class(n, mod2, name);
}

static bool host_little_endian(void)
{
	const uint16_t one = 1;
	return *(const uint8_t *)&one == 1;
}

static const struct pk_node *tuple_item(const struct pk_node *t, size_t i)
{
	if (!t || t->kind != PK_TUPLE || i >= t->u.seq.n)
		return NULL;
	return t->u.seq.items[i];
}

/* Fills kind, itemsize, byteorder and descr from a numpy.dtype node. */
static int npy_dtype(const struct pk_node *dt, struct srv_ndarray *a, struct srv_error *err)
{
	const struct pk_node *code, *state, *endian, *elsize;
	const char *c;
	size_t clen, i;
	uint64_t n = 0;
	bool digits = false;

	if (!dt || !pk_is_class(dt, "numpy", "dtype") || dt->kind != PK_OBJECT)
		return srv_fail(err, RPC_E_CORRUPT, "the array's dtype is not a numpy.dtype");
	code = tuple_item(dt->u.obj.args, 0);
	if (!code || code->kind != PK_STR || code->u.str.len == 0 || code->u.str.len > 12)
		return srv_fail(err, RPC_E_CORRUPT, "the array's dtype has no valid type code");
	c = code->u.str.ptr;
	clen = code->u.str.len;
	state = dt->u.obj.state;
	if (!state || state->kind != PK_TUPLE || state->u.seq.n < 8)
		return srv_fail(err, RPC_E_CORRUPT, "the array's dtype '%.*s' has no valid state",
		                (int)clen, c);
	/* (version, endian, subarray, names, fields, elsize, alignment, flags[, meta]) */
	if (state->u.seq.items[2]->kind != PK_NONE)
		return srv_fail(err, RPC_E_ENOTSUP, "arrays of subarray dtypes have no npy view");
	if (state->u.seq.items[3]->kind != PK_NONE || state->u.seq.items[4]->kind != PK_NONE)
		return srv_fail(
		    err, RPC_E_ENOTSUP,
		    "arrays of structured dtypes (with fields) are not served in this view");
	endian = state->u.seq.items[1];
	if (endian->kind != PK_STR || endian->u.str.len != 1 ||
	    !strchr("<>|=", endian->u.str.ptr[0]))
		return srv_fail(err, RPC_E_CORRUPT, "the array's dtype has no valid byte order");
	a->byteorder = endian->u.str.ptr[0];
	if (a->byteorder == '=')
		a->byteorder = host_little_endian() ? '<' : '>';
	elsize = state->u.seq.items[5];

	a->kind = c[0];
	for (i = 1; i < clen; i++) {
		if (c[i] < '0' || c[i] > '9')
			break;
		if (n > 100000000)
			return srv_fail(err, RPC_E_CORRUPT, "the array's dtype code is too large");
		n = n * 10 + (uint64_t)(c[i] - '0');
		digits = true;
	}
	if (i != clen)
		goto unsupported; /* e.g. "M8[s]" or a name numpy does not pickle */
	switch (a->kind) {
	case 'b':
		if (n != 1)
			goto bad;
		break;
	case 'i':
	case 'u':
		if (n != 1 && n != 2 && n != 4 && n != 8)
			goto bad;
		break;
	case 'f':
		if (n != 2 && n != 4 && n != 8 && n != 16 && n != 12)
			goto bad;
		break;
	case 'c':
		if (n != 8 && n != 16 && n != 32 && n != 24)
			goto bad;
		break;
	case 'S':
	case 'V':
	case 'U':
		if (!digits) {
			if (elsize->kind != PK_INT || elsize->u.i < 0)
				goto bad;
			n = (uint64_t)elsize->u.i;
			if (a->kind == 'U') {
				if (n % 4)
					goto bad;
				n /= 4;
			}
		}
		break;
	case 'O':
		return srv_fail(
		    err, RPC_E_ENOTSUP,
		    "object arrays (dtype 'O') hold Python objects, not data: no npy view");
	default:
		goto unsupported;
	}
	a->itemsize = a->kind == 'U' ? (size_t)n * 4 : (size_t)n;
	if (a->itemsize == 1 && a->kind != 'U')
		a->byteorder = '|';
	if (a->kind == 'S' || a->kind == 'V')
		a->byteorder = '|';
	snprintf(a->descr, sizeof(a->descr), "%c%c%" PRIu64, a->byteorder, a->kind, n);
	return 0;
bad:
	return srv_fail(err, RPC_E_CORRUPT, "the array's dtype code '%.*s' is not valid", (int)clen,
	                c);
unsupported:
	return srv_fail(err, RPC_E_ENOTSUP, "arrays of dtype '%.*s' are not served in this view",
	                (int)clen, c);
}

/* Fills ndim, shape and count from a tuple of ints. */
static int npy_shape(const struct pk_node *shape, struct srv_ndarray *a, struct srv_error *err)
{
	uint64_t count = 1;

	if (!shape || shape->kind != PK_TUPLE)
		return srv_fail(err, RPC_E_CORRUPT, "the array's shape is not a tuple");
	if (shape->u.seq.n > SRV_NPY_MAX_DIMS)
		return srv_fail(err, RPC_E_CORRUPT, "the array has %zu dimensions (at most %d)",
		                shape->u.seq.n, SRV_NPY_MAX_DIMS);
	a->ndim = shape->u.seq.n;
	for (size_t i = 0; i < a->ndim; i++) {
		const struct pk_node *d = shape->u.seq.items[i];
		if (d->kind != PK_INT || d->u.i < 0)
			return srv_fail(err, RPC_E_CORRUPT,
			                "the array's shape holds something other than a size");
		a->shape[i] = (uint64_t)d->u.i;
		if (a->shape[i] && count > UINT64_MAX / a->shape[i])
			return srv_fail(err, RPC_E_CORRUPT, "the array's shape is too large");
		count *= a->shape[i];
	}
	a->count = count;
	return 0;
}

/* Checks that raw holds exactly the array's data and points a->data at it. */
static int npy_data(const struct pk_node *raw, struct srv_ndarray *a, struct srv_error *err)
{
	if (!raw || (raw->kind != PK_BYTES && raw->kind != PK_BYTEARRAY)) {
		if (raw && raw->kind == PK_LIST)
			return srv_fail(err, RPC_E_ENOTSUP,
			                "object arrays hold Python objects, not data: no npy view");
		return srv_fail(err, RPC_E_CORRUPT, "the array's data is not a bytes object");
	}
	if (a->itemsize && a->count > UINT64_MAX / a->itemsize)
		return srv_fail(err, RPC_E_CORRUPT, "the array's shape is too large");
	if ((uint64_t)raw->u.str.len != a->count * a->itemsize)
		return srv_fail(
		    err, RPC_E_CORRUPT,
		    "the array's data is %zu bytes but its shape and dtype '%s' need %" PRIu64,
		    raw->u.str.len, a->descr, a->count * a->itemsize);
	a->data = (const uint8_t *)raw->u.str.ptr;
	a->data_offset = raw->u.str.offset;
	return 0;
}

int srv_npy_recognise(const struct pk_node *node, bool scalars, struct srv_ndarray *a,
                      struct srv_error *err)
{
	struct srv_ndarray t;
	const struct pk_node *args, *order, *st;

	if (!node || node->kind != PK_OBJECT)
		return 0;
	memset(&t, 0, sizeof(t));
	args = node->u.obj.args;
	if (npy_is(node, "_frombuffer", "numpy.core.numeric", "numpy._core.numeric")) {
		/* _frombuffer(buffer, dtype, shape, order) */
		if (!args || args->kind != PK_TUPLE || args->u.seq.n != 4)
			return srv_fail(err, RPC_E_CORRUPT, "numpy _frombuffer takes 4 arguments");
		order = args->u.seq.items[3];
		if (order->kind != PK_STR || order->u.str.len != 1 ||
		    (order->u.str.ptr[0] != 'C' && order->u.str.ptr[0] != 'F'))
			return srv_fail(err, RPC_E_CORRUPT, "the array's order is not 'C' or 'F'");
		t.fortran = order->u.str.ptr[0] == 'F';
		if (npy_dtype(args->u.seq.items[1], &t, err) < 0 ||
		    npy_shape(args->u.seq.items[2], &t, err) < 0 ||
		    npy_data(args->u.seq.items[0], &t, err) < 0)
			return -1;
	} else if (npy_is(node, "_reconstruct", "numpy.core.multiarray",
	                  "numpy._core.multiarray") ||
	           (pk_is_class(node, "dill._dill", "_create_array") && args &&
	            args->kind == PK_TUPLE && args->u.seq.n >= 3 &&
	            npy_is(args->u.seq.items[0], "_reconstruct", "numpy.core.multiarray",
	                   "numpy._core.multiarray") &&
	            args->u.seq.items[0]->kind == PK_GLOBAL &&
	            (args->u.seq.n == 3 || args->u.seq.items[3]->kind == PK_NONE))) {
		/* _reconstruct(numpy.ndarray, (0,), b'b') + BUILD (version, shape, dtype,
		 * is_fortran, raw), or dill's _create_array(_reconstruct, (numpy.ndarray,
		 * (0,), b'b'), state, None), which does the same */
		const struct pk_node *cls;
		st = node->u.obj.state;
		if (pk_is_class(node, "dill._dill", "_create_array")) {
			st = args->u.seq.items[2];
			args = args->u.seq.items[1];
		}
		cls = tuple_item(args, 0);
		if (!cls || !pk_is_class(cls, "numpy", "ndarray") || cls->kind != PK_GLOBAL)
			return 0; /* a subclass (matrix, masked array): just an object */
		if (!st || st->kind != PK_TUPLE || st->u.seq.n != 5)
			return srv_fail(err, RPC_E_CORRUPT,
			                "the array's pickled state is not valid");
		if (st->u.seq.items[3]->kind != PK_BOOL)
			return srv_fail(err, RPC_E_CORRUPT, "the array's order flag is not a bool");
		t.fortran = st->u.seq.items[3]->u.b;
		if (npy_dtype(st->u.seq.items[2], &t, err) < 0 ||
		    npy_shape(st->u.seq.items[1], &t, err) < 0 ||
		    npy_data(st->u.seq.items[4], &t, err) < 0)
			return -1;
	} else if (scalars &&
	           npy_is(node, "scalar", "numpy.core.multiarray", "numpy._core.multiarray")) {
		/* scalar(dtype, raw) */
		if (!args || args->kind != PK_TUPLE || args->u.seq.n != 2)
			return srv_fail(err, RPC_E_CORRUPT, "numpy scalar takes 2 arguments");
		t.scalar = true;
		t.count = 1;
		if (npy_dtype(args->u.seq.items[0], &t, err) < 0 ||
		    npy_data(args->u.seq.items[1], &t, err) < 0)
			return -1;
	} else {
		return 0;
	}
	if (t.ndim <= 1)
		t.fortran = false; /* numpy writes 'fortran_order': False for these */
	*a = t;
	return 1;
}

static int put_u16(struct rpc_buf *b, uint32_t v)
{
	char le[2] = {(char)(v & 0xff), (char)(v >> 8 & 0xff)};
	return rpc_buf_add(b, le, 2);
}

static int put_u32(struct rpc_buf *b, uint32_t v)
{
	char le[4] = {(char)(v & 0xff), (char)(v >> 8 & 0xff), (char)(v >> 16 & 0xff),
	              (char)(v >> 24 & 0xff)};
	return rpc_buf_add(b, le, 4);
}

int srv_npy_header(const struct srv_ndarray *a, struct rpc_buf *out)
{
	/* numpy.lib.format: GROWTH_AXIS_MAX_DIGITS and ARRAY_ALIGN */
	enum { GROWTH = 21, ALIGN = 64, MAGIC = 8 };
	struct rpc_buf h = RPC_BUF_INIT(1u << 20);
	char num[24];
	size_t hlen, padlen, prefix;
	int rc;

	rc = rpc_buf_addf(&h, "{'descr': '%s', 'fortran_order': %s, 'shape': (", a->descr,
	                  a->fortran ? "True" : "False");
	for (size_t i = 0; rc == 0 && i < a->ndim; i++)
		rc = rpc_buf_addf(&h, "%s%" PRIu64, i ? ", " : "", a->shape[i]);
	if (rc == 0)
		rc = rpc_buf_adds(&h, a->ndim == 1 ? ",), }" : "), }");
	if (rc == 0 && a->ndim > 0) {
		/* spare room so that the header can be rewritten when the array grows */
		int n =
		    snprintf(num, sizeof(num), "%" PRIu64, a->shape[a->fortran ? a->ndim - 1 : 0]);
		for (int i = n; rc == 0 && i < GROWTH; i++)
			rc = rpc_buf_addc(&h, ' ');
	}
	if (rc)
		goto out;
	hlen = h.len + 1; /* the final newline */
	prefix = MAGIC + 2;
	padlen = ALIGN - (prefix + hlen) % ALIGN;
	if (hlen + padlen > 65535) {
		prefix = MAGIC + 4;
		padlen = ALIGN - (prefix + hlen) % ALIGN;
	}
	rc = rpc_buf_add(out, "\x93NUMPY", 6);
	if (rc == 0)
		rc = rpc_buf_add(out, prefix == MAGIC + 2 ? "\x01\x00" : "\x02\x00", 2);
	if (rc == 0)
		rc = prefix == MAGIC + 2 ? put_u16(out, (uint32_t)(hlen + padlen))
		                         : put_u32(out, (uint32_t)(hlen + padlen));
	if (rc == 0)
		rc = rpc_buf_add(out, h.data, h.len);
	for (size_t i = 0; rc == 0 && i < padlen; i++)
		rc = rpc_buf_addc(out, ' ');
	if (rc == 0)
		rc = rpc_buf_addc(out, '\n');
out:
	rpc_buf_release(&h);
	return rc;
}

/*
 * npy.h: numpy arrays and scalars found in a pickle tree (pickle.h), and the NPY file
 * header (numpy.lib.format) that serves them as `.npy`. numpy pickles an array as
 * `numpy.core.numeric._frombuffer(buffer, dtype, shape, order)` (protocol 5) or as
 * `numpy.core.multiarray._reconstruct(numpy.ndarray, (0,), b'b')` + BUILD
 * `(version, shape, dtype, is_fortran, raw_bytes)` (protocols 2 to 4); numpy 2 writes
 * `numpy._core` for `numpy.core`. A dtype is `numpy.dtype(code, False, True)` + BUILD
 * `(version, byteorder, subarray, names, fields, elsize, alignment, flags[, metadata])`;
 * a scalar is `numpy.core.multiarray.scalar(dtype, raw_bytes)`.
 *
 * Only plain dtypes are understood: bool, signed and unsigned ints, floats, complex,
 * bytes (S), unicode (U) and raw void (V) without fields. Object arrays, structured and
 * subarray dtypes and datetimes are ENOTSUP. Nothing is copied: data points into the
 * pickle (or the parse's arena), so the document must outlive the array.
 */
#ifndef FLECHEFS_SERVER_NPY_H
#define FLECHEFS_SERVER_NPY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "base.h"
#include "pickle.h"

/* numpy 2's NPY_MAXDIMS; numpy 1 allows 32. */
#define SRV_NPY_MAX_DIMS 64

struct srv_ndarray {
	char descr[24];  /* the NPY descr, e.g. "<f8", "|b1", "<U5" */
	char kind;       /* 'b', 'i', 'u', 'f', 'c', 'S', 'U' or 'V' */
	char byteorder;  /* '<', '>' or '|' ('=' already replaced by the host's) */
	size_t itemsize; /* bytes per element */
	size_t ndim;     /* 0 for a scalar or a 0-d array */
	uint64_t shape[SRV_NPY_MAX_DIMS];
	bool fortran;        /* data in Fortran (column-major) order */
	bool scalar;         /* a numpy scalar (np.float64(1.0)), not an array */
	uint64_t count;      /* elements: the product of shape */
	const uint8_t *data; /* count * itemsize bytes, borrowed from the document */
	size_t data_offset;  /* offset of data in the pickle stream, or SIZE_MAX */
};

/*
 * Recognises node as a numpy array (or, with scalars true, also a numpy scalar).
 * Returns 1 and fills *a; 0 when node is not one (a is untouched); -1 with err
 * filled when it is one that cannot be served: ENOTSUP for object, structured,
 * subarray and datetime dtypes, CORRUPT when the parts do not agree (data length,
 * shape, dtype code). The messages name what was found, not the value's key.
 */
int srv_npy_recognise(const struct pk_node *node, bool scalars, struct srv_ndarray *a,
                      struct srv_error *err);

/*
 * Appends the NPY header of a (magic, version, little-endian header length, the
 * header dict padded with spaces and a newline to a multiple of 64 bytes) exactly as
 * numpy.lib.format.write_array writes it: version 1.0, or 2.0 when the header does
 * not fit in 65535 bytes. The array's data follows it unchanged. Returns 0 or the
 * buffer's error.
 */
int srv_npy_header(const struct srv_ndarray *a, struct rpc_buf *out);

#endif

/*
 * json_reader.h: a small strict JSON reader that turns the JSON text Python's json.dumps
 * wrote (SQL metadata, the version column) into msgpack. It is strict JSON plus the
 * bare tokens NaN, Infinity and -Infinity that Python writes for non-finite floats.
 * Integers that do not fit in int64 become {"$int": "<digits>"}; numbers written
 * with a fraction or exponent stay floats ("3.0" is a float).
 *
 * Invariants: nesting deeper than SRV_SJSON_MAX_DEPTH or input larger than
 * SRV_SJSON_MAX_INPUT is refused; nothing is allocated beyond what the msgpack
 * buffer needs for the output (which is never larger than a few times the input).
 */
#ifndef FLECHEFS_SERVER_JSON_READER_H
#define FLECHEFS_SERVER_JSON_READER_H

#include <stddef.h>

#include <msgpack.h>

#include "rpc.h"

/* A metadata block's JSON starts at level 2 of the metadata map, which nests at most
 * RPC_MAX_DEPTH - 2 deep (record.h), and a big integer's {"$int": ...} adds a level. */
#define SRV_SJSON_MAX_DEPTH (RPC_MAX_DEPTH - 4)
#define SRV_SJSON_MAX_INPUT (64u * 1024 * 1024)

/*
 * Parses text[0..len) (one JSON value, whitespace around it allowed) and packs it.
 * Returns 0, or -1 with a lower-case reason in why.
 */
int srv_sjson_pack(const char *text, size_t len, msgpack_packer *pk, char *why, size_t whylen);

/*
 * Checks that text[0..len) is one JSON value as srv_sjson_pack reads it, nesting at
 * most max_depth containers, in one pass that builds nothing. Returns 0, or -1 with
 * a lower-case reason in why.
 */
int srv_sjson_check(const char *text, size_t len, unsigned max_depth, char *why, size_t whylen);

/*
 * Looks the number stored under `key` in the top-level JSON object text[0..len) up
 * without building anything. Returns 0 and sets *out when found and numeric, else -1.
 * A one-pass scan answers json.dumps output (the usual case) without allocating; the
 * full parser decides whenever that scan is unsure.
 */
int srv_sjson_number(const char *text, size_t len, const char *key, double *out);

#endif

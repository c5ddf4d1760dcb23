/*
 * json_writer.h: a JSON writer into an rpc_buf, used by the daemon for call.json and by
 * the server for the json value view. Output is UTF-8 per RFC 8259 and, for the
 * same data, is byte for byte what Python prints with json.dumps(obj,
 * ensure_ascii=False) (indent 0), with separators=(",", ":") (indent -1) or with
 * indent=N (indent N > 0), floats included, except that a tag ({"$float": "nan"},
 * {"$bytes": "..."}) always stays on one line, as in the server's json view
 * (tests/unit/test_rpc_pyjson.c checks this against Python).
 *
 * Why not jansson: it prints reals with %.17g (0.1 becomes 0.10000000000000001)
 * rather than the shortest form that reads back to the same double, it has no
 * integers beyond int64, and it refuses NaN and the infinities, which fleche
 * metadata may hold.
 *
 * Values JSON cannot hold are written as one-key objects ("tags"):
 *   {"$float": "nan"} / {"$float": "inf"} / {"$float": "-inf"}   non-finite floats
 *   {"$bytes": "<base64>"}                                          msgpack bin
 *   {"$dict": [[key, value], ...]}                                  a map with a non-str
 *                                                                   key, or a map that would
 *                                                                   read as one of these tags
 * The server's own tags {"$int": "<digits>"} and {"$object": "<name>"} (PROTOCOL.md
 * section 3) are ordinary str-keyed maps and pass through as objects.
 *
 * Every function returns 0, or -ENOMEM / -EMSGSIZE from the buffer (the buffer may
 * then hold a partial document), or -EINVAL where stated.
 */
#ifndef FLECHEFS_RPC_JSON_WRITER_H
#define FLECHEFS_RPC_JSON_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "buf.h"

/* Enough room for any double written by rpc_format_double, with its NUL. */
#define RPC_DOUBLE_CHARS 32

/*
 * Writes the shortest decimal that reads back (strtod) to exactly d, in the form of
 * Python's repr(float): positional with at least one digit after '.' when the
 * decimal exponent is in [-4, 16), else d.ddde+XX ("9.0", "0.1", "-0.0", "1e+300",
 * "5e-324", "1795635855.9959028"); "nan", "inf", "-inf" for the others. Returns the
 * length. Independent of the locale's decimal point.
 */
size_t rpc_format_double(char out[RPC_DOUBLE_CHARS], double d);

/* A JSON string: quotes, escapes (", \, control chars), invalid UTF-8 -> U+FFFD. */
int rpc_json_string(struct rpc_buf *b, const char *s, size_t len);
/*
 * The same in ASCII, as Python's json.dumps writes a str (ensure_ascii): DEL and
 * every code point beyond as lower-case \uXXXX, surrogate pairs beyond the BMP;
 * invalid UTF-8 -> \ufffd.
 */
int rpc_json_string_ascii(struct rpc_buf *b, const char *s, size_t len);
/* rpc_format_double for finite d; {"$float": "nan"|"inf"|"-inf"} otherwise. */
int rpc_json_double(struct rpc_buf *b, double d);
int rpc_json_int(struct rpc_buf *b, int64_t v);
int rpc_json_uint(struct rpc_buf *b, uint64_t v);
/* Standard base64 with padding, without quotes. */
int rpc_base64(struct rpc_buf *b, const void *p, size_t n);
/* {"$bytes": "<base64>"} */
int rpc_json_bytes_base64(struct rpc_buf *b, const void *p, size_t n);

/*
 * Renders a msgpack object as JSON: nil -> null, bool, ints, float 32/64 via
 * rpc_json_double, str (UTF-8 sanitised), bin -> {"$bytes": ...}, array, map with
 * only str keys -> object (keys in their order), other maps -> {"$dict": [[k, v],
 * ...]}. indent 0: one line with ", " and ": " separators; indent > 0: one item per
 * line indented by that many spaces per level (as Python's json.dumps(indent=N); tags
 * stay on one line);
 * indent < 0: no spaces at all. Returns -EINVAL for an ext object or nesting deeper
 * than max_depth (the buffer then holds a partial document).
 */
int rpc_json_msgpack(struct rpc_buf *b, const msgpack_object *o, unsigned max_depth, int indent);

#endif

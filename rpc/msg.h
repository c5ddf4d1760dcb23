/*
 * msg.h: the messages of the flechefs protocol (PROTOCOL.md section 2): a
 * validator for untrusted msgpack, a decoder that builds msgpack-c objects only
 * after the validator accepted the bytes, request/response decoders and encoders,
 * error maps, and small accessors for msgpack_object.
 *
 * Why our own validator and builder: msgpack-c's unpacker allocates
 * count * sizeof(msgpack_object) from a container's declared count before it
 * has seen the elements (a 6-byte array header can ask for 100 GB), and its C
 * unpacker stops at 32 nested containers where the protocol allows 64.
 * rpc_msgpack_unpack checks everything first, then builds the same msgpack_object
 * tree msgpack_unpack would, allocating from a caller's msgpack_zone; objects
 * are usable with every msgpack-c function (msgpack_object_print, the packer...).
 *
 * Ownership: decoded objects, strings and bins are borrowed: they point into the
 * input bytes and into the zone, and live as long as both do.
 */
#ifndef FLECHEFS_RPC_MSG_H
#define FLECHEFS_RPC_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "rpc.h"

/* The deepest max_depth the validator supports (its stack is a fixed array). */
#define RPC_MSGPACK_DEPTH_LIMIT 256

/*
 * Validates untrusted bytes without allocating: 0 when buf[0..len) is exactly one
 * well-formed msgpack object, else -EPROTO with a message in err (when not NULL).
 * Rejects: truncation, trailing bytes, the reserved byte 0xc1, ext types, containers
 * nested deeper than max_depth (capped at RPC_MSGPACK_DEPTH_LIMIT), and any array or
 * map whose declared count, added to the elements still owed by the enclosing
 * containers, exceeds the bytes left (each element takes at least one byte). So the
 * total number of objects in an accepted buffer is at most len.
 */
int rpc_msgpack_check(const void *buf, size_t len, unsigned max_depth, char *err, size_t errlen);

/*
 * Checks buf as rpc_msgpack_check does, then builds the object tree in zone (at most
 * len * sizeof(msgpack_object) bytes) into *out. Returns 0, -EPROTO (malformed, with
 * a message) or -ENOMEM. Objects borrow from buf and zone.
 */
int rpc_msgpack_unpack(const void *buf, size_t len, unsigned max_depth, msgpack_zone *zone,
                       msgpack_object *out, char *err, size_t errlen);

/* A decoded request [0, msgid, method, params]; method is not NUL-terminated. */
struct rpc_request {
	uint32_t msgid;
	const char *method;
	size_t method_len;
	const msgpack_object *params; /* always an array */
};

/*
 * Decodes one request frame payload (checked with RPC_MAX_DEPTH first). Returns 0,
 * -EPROTO with a message, or -ENOMEM. *have_msgid (may be NULL) tells, also on
 * failure, whether a msgid could be read (an unsigned integer below 2^32 at index 1
 * of an array), so that the server can answer EPROTO to it instead of ending the
 * session (PROTOCOL.md "Malformed input"); req->msgid holds it then.
 */
int rpc_request_decode(const void *buf, size_t len, msgpack_zone *zone, struct rpc_request *req,
                       bool *have_msgid, char *err, size_t errlen);

/* A decoded response [1, msgid, error, result]. */
struct rpc_response {
	uint32_t msgid;
	const msgpack_object *error;  /* NULL when nil, else a map */
	const msgpack_object *result; /* never NULL: a nil object when absent */
};

/*
 * Decodes one response frame payload. Returns 0, -EPROTO with a message (not an
 * array of 4 starting with 1, msgid not a u32, error neither nil nor a map), or
 * -ENOMEM.
 */
int rpc_response_decode(const void *buf, size_t len, msgpack_zone *zone, struct rpc_response *resp,
                        char *err, size_t errlen);

/*
 * Encoders. Each returns 0 or -ENOMEM (the packer's write callback failed); the
 * packer is any msgpack_packer (usually on a msgpack_sbuffer after rpc_frame_begin).
 */
/* Packs [0, msgid, method, and the header of an nparams array: pack the params next. */
int rpc_pack_request_head(msgpack_packer *pk, uint32_t msgid, const char *method, uint32_t nparams);
/* Packs [1, msgid, nil, and nothing more: pack exactly one result object next. */
int rpc_pack_response_ok_head(msgpack_packer *pk, uint32_t msgid);
/* Packs a whole response [1, msgid, nil, nil]. */
int rpc_pack_response_ok_nil(msgpack_packer *pk, uint32_t msgid);
/*
 * Packs a whole error response [1, msgid, {errno, name, message}, nil]. message NULL
 * means the table's default message. code must be an entry of the table (RPC_E_...);
 * anything else is packed as EIO.
 */
int rpc_pack_response_error(msgpack_packer *pk, uint32_t msgid, enum rpc_error code,
                            const char *message);
/* As rpc_pack_response_error with a printf message. */
int rpc_pack_response_errorf(msgpack_packer *pk, uint32_t msgid, enum rpc_error code,
                             const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/*
 * Packs an AMBIGUOUS error response with candidates (ncandidates strings, at most 64
 * are sent; each should be a 64-character key) and needed (characters that make the
 * prefix unique).
 */
int rpc_pack_response_ambiguous(msgpack_packer *pk, uint32_t msgid, const char *message,
                                const char *const *candidates, size_t ncandidates, unsigned needed);
/* Packs only the error map (for callers composing their own response). */
int rpc_pack_error_map(msgpack_packer *pk, enum rpc_error code, const char *message,
                       const char *const *candidates, size_t ncandidates, unsigned needed);

/* An error map, decoded. */
#define RPC_MAX_CANDIDATES 64
struct rpc_error_info {
	enum rpc_error code; /* RPC_E__COUNT when the name is unknown or missing */
	int err_no;          /* the map's errno when positive, else the table's, else EIO */
	char name[32];       /* "" when missing; truncated if longer */
	char message[512];   /* "" when missing; truncated if longer */
	size_t ncandidates;
	char candidates[RPC_MAX_CANDIDATES][RPC_KEY_LEN + 1];
	unsigned needed;
};

/*
 * Decodes an error map, tolerating missing fields, wrong types and unknown fields:
 * never fails. A known name gives its code (err_no then is the map's errno when it
 * is a positive int, else the table's); an unknown or missing name gives
 * RPC_E__COUNT with err_no from the map, or EIO. Candidates that are not strings of
 * at most 64 characters are skipped. err may be NULL or not a map (then: EIO).
 */
void rpc_error_decode(const msgpack_object *err, struct rpc_error_info *out);

/*
 * Accessors. Each takes a possibly NULL object and returns 0 when it has the type
 * asked for (storing the value), else -EINVAL leaving the outputs unchanged.
 */
/* str only (not bin); *s is not NUL-terminated. */
int rpc_obj_str(const msgpack_object *o, const char **s, size_t *len);
/* bin only. */
int rpc_obj_bin(const msgpack_object *o, const void **p, size_t *len);
/* a non-negative integer. */
int rpc_obj_uint(const msgpack_object *o, uint64_t *v);
/* an integer in the int64 range. */
int rpc_obj_int(const msgpack_object *o, int64_t *v);
/* a float 32 or 64, or an integer (converted). */
int rpc_obj_double(const msgpack_object *o, double *v);
int rpc_obj_bool(const msgpack_object *o, bool *v);
/* True when o is NULL or nil (an absent optional parameter). */
bool rpc_obj_is_nil(const msgpack_object *o);
/* True when o is a str equal to the C string s. */
bool rpc_obj_str_eq(const msgpack_object *o, const char *s);
/* The value of the first str key equal to key in a map; NULL when absent or not a map. */
const msgpack_object *rpc_map_get(const msgpack_object *map, const char *key);
/* Element i of an array (e.g. params); NULL when out of range or not an array. */
const msgpack_object *rpc_array_get(const msgpack_object *array, size_t i);

/* Pack a C string / n bytes as a msgpack str (NULL s packs nil); a bin. 0 or -ENOMEM. */
int rpc_pack_str(msgpack_packer *pk, const char *s);
int rpc_pack_strn(msgpack_packer *pk, const char *s, size_t n);
int rpc_pack_bin(msgpack_packer *pk, const void *p, size_t n);

#endif

/*
 * rpc.h: the constants of the flechefs wire protocol, shared by flechefs-server
 * and the flechefs daemon: protocol version, limits, message types and the error
 * table (the methods, views and field names are proto.h's tables). rpc/PROTOCOL.md is the specification in prose; this header
 * and that file must say the same thing.
 */
#ifndef FLECHEFS_RPC_H
#define FLECHEFS_RPC_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#define RPC_PROTOCOL_VERSION 1
/* Oldest protocol version this build can still speak. */
#define RPC_PROTOCOL_MIN 1

/* A frame: 4-byte big-endian length N, then N bytes holding one msgpack object. */
#define RPC_FRAME_HEADER      4
#define RPC_MAX_FRAME_DEFAULT (16u * 1024 * 1024)
#define RPC_MAX_FRAME_MIN     (64u * 1024)
#define RPC_MAX_FRAME_LIMIT   (1024u * 1024 * 1024)
/* Bytes reserved in a load_value response for everything but the data. */
#define RPC_RESPONSE_OVERHEAD 256u
/* Deepest nesting of msgpack containers accepted in a message. */
#define RPC_MAX_DEPTH 64

/* list and query page sizes: nil limit means the default; larger limits are cut. */
#define RPC_PAGE_DEFAULT 1000u
#define RPC_PAGE_MAX     10000u
/* The most keys one load_many asks for. */
#define RPC_LOAD_MANY_MAX 256u

/* Keys: 64 lowercase hex characters; prefixes 4 to 64 of them. */
#define RPC_KEY_LEN        64
#define RPC_PREFIX_MIN     4

/* msgpack-RPC message types. */
#define RPC_REQUEST  0
#define RPC_RESPONSE 1

/*
 * The error table: name on the wire, Linux errno the daemon returns to the
 * kernel, and the default message. Append only: names are part of the protocol.
 */
#define RPC_ERRORS(X)                                                                      \
	X(ENOENT, ENOENT, "no such key in the cache")                                      \
	X(AMBIGUOUS, ENOENT, "the prefix matches more than one key")                       \
	X(EINVAL, EINVAL, "invalid argument")                                              \
	X(EROFS, EROFS, "the cache is served read-only")                                   \
	X(EBADMSG, EBADMSG, "the file's HMAC signature is missing or wrong")               \
	X(CORRUPT, EIO, "the stored file cannot be decoded")                               \
	X(EIO, EIO, "input/output error reading the cache")                                \
	X(EACCES, EACCES, "permission denied")                                             \
	X(ENOSYS, ENOSYS, "unknown method")                                                \
	X(EPROTO, EPROTO, "malformed message")                                             \
	X(VERSION, EPROTO, "client and server protocol versions cannot talk")              \
	X(EMSGSIZE, EMSGSIZE, "the message is larger than the frame limit")                \
	X(ENOMEM, ENOMEM, "out of memory")                                                 \
	X(ENOTSUP, ENOTSUP, "this view does not apply to the value")                       \
	X(EFBIG, EFBIG, "the value is larger than the limit for this view")                \
	X(ELOOP, ELOOP, "the value refers to itself")                                      \
	X(ETIMEDOUT, ETIMEDOUT, "no answer before the deadline")                           \
	X(EEXIST, EEXIST, "a different call is stored under the key")                      \
	X(ENOSPC, ENOSPC, "no space left on the cache's device")

enum rpc_error {
	RPC_OK = 0,
#define RPC_ERROR_ENUM(name, err, msg) RPC_E_##name,
	RPC_ERRORS(RPC_ERROR_ENUM)
#undef RPC_ERROR_ENUM
	RPC_E__COUNT
};

/* Name of an error ("ENOENT", "AMBIGUOUS"); "UNKNOWN" outside the table. */
const char *rpc_error_name(enum rpc_error e);
/* The errno the daemon returns for it; EIO outside the table. */
int rpc_error_errno(enum rpc_error e);
/* The default message; a static string. */
const char *rpc_error_message(enum rpc_error e);
/* Looks a wire name up; returns RPC_E__COUNT when unknown. */
enum rpc_error rpc_error_from_name(const char *name, size_t len);
/* Maps a positive errno to the closest table entry (EIO when none). */
enum rpc_error rpc_error_from_errno(int err);

/* The value of one hex digit (either case), or -1 when c is not one. */
int rpc_hex_digit(int c);

/* True when s[0..len) is 4 to 64 lowercase hex characters. */
int rpc_key_prefix_valid(const char *s, size_t len);
/* True when s[0..len) is a full key: exactly 64 lowercase hex characters. */
int rpc_key_valid(const char *s, size_t len);
/* A hash of a key (or of the first 16 hex digits of a longer string of them) for hash
 * tables: keys are SHA-256 digests, so those digits are spread enough. */
uint64_t rpc_key_hash(const char *key);

/*
 * Parses a size given on a command line: decimal BYTES with an optional K, M or G
 * suffix (powers of 1024; "16M", "16MiB" and "16MB" alike). Returns 0 with *out, or
 * -1 when s is not such a size or it is larger than max. Both programs read every
 * size option with it.
 */
int rpc_parse_size(const char *s, uint64_t max, uint64_t *out);


/* The longest file name either program accepts from the cache (Linux's NAME_MAX). */
#define RPC_NAME_MAX 255

/*
 * Whether name (len bytes, from the cache) can name a file in a folder: NULL when it
 * can, else a static phrase saying why not ("is empty", "is '.' or '..'", "contains
 * '/'", "contains a NUL byte", "is longer than 255 bytes").
 */
const char *rpc_file_name_refused(const char *name, size_t len);

#endif

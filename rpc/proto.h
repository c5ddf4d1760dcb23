/*
 * proto.h: the vocabulary of the flechefs protocol in one place (PROTOCOL.md
 * sections 5 and 6), and the typed encoders and decoders both programs use.
 *
 * Three X-macro tables, in the style of rpc.h's RPC_ERRORS, hold every name that
 * crosses the wire: RPC_METHODS (name, parameter counts, whether the method writes,
 * whether it may precede hello), RPC_VIEWS (the value views) and RPC_FIELDS (the
 * keys of result maps and of the query template, and list's kinds). No C file
 * writes one of these names as a literal: a method or a view is added with one
 * line in its table, plus its handler (server/dispatch.c) and, for a view, its
 * renderer (server/views.c).
 *
 * Requests: one rpc_pack_<method> per method packs the whole message
 * [0, msgid, method, params]. Results: one decoder per result map (hello, stat_value,
 * a page of list or query, a page of names, a key); each checks the types and ranges
 * PROTOCOL.md gives, so both sides and every caller read a result the same way.
 * Encoders return 0 or -ENOMEM; decoders 0 or -EPROTO (with a message in err when it
 * is not NULL). Decoded strings are borrowed from the msgpack object.
 */
#ifndef FLECHEFS_RPC_PROTO_H
#define FLECHEFS_RPC_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "rpc.h"

/* Method flags. */
#define RPC_METHOD_WRITES       1u /* refused with EROFS on a read-only server */
#define RPC_METHOD_BEFORE_HELLO 2u /* allowed as the first request */

/* The methods: C name, wire name, fewest and most parameters, flags. */
#define RPC_METHODS(X)                                                                             \
	X(HELLO, "hello", 2, 2, RPC_METHOD_BEFORE_HELLO)                                           \
	X(INFO, "info", 0, 0, 0)                                                                   \
	X(LIST, "list", 1, 4, 0)                                                                   \
	X(LOAD, "load", 1, 1, 0)                                                                   \
	X(STAT_VALUE, "stat_value", 1, 2, 0)                                                       \
	X(LOAD_VALUE, "load_value", 3, 4, 0)                                                       \
	X(CONTAINS, "contains", 1, 1, 0)                                                           \
	X(EXPAND, "expand", 1, 1, 0)                                                               \
	X(SHRINK, "shrink", 1, 1, 0)                                                               \
	X(EVICT, "evict", 1, 1, RPC_METHOD_WRITES)                                                 \
	X(QUERY, "query", 1, 4, 0)                                                                 \
	X(NAMES, "names", 0, 2, 0)                                                                 \
	X(PUT_VALUE, "put_value", 4, 4, RPC_METHOD_WRITES)                                         \
	X(SAVE, "save", 2, 2, RPC_METHOD_WRITES)                                                   \
	X(LIST_RECORD, "list_record", 1, 1, 0)                                                     \
	X(LOAD_MANY, "load_many", 1, 2, 0)

enum rpc_method {
#define RPC_METHOD_ENUM(id, name, min, max, flags) RPC_M_##id,
	RPC_METHODS(RPC_METHOD_ENUM)
#undef RPC_METHOD_ENUM
	RPC_M__COUNT
};

struct rpc_method_info {
	const char *name;
	uint32_t min_params, max_params;
	unsigned flags;
};

/* The table entry of m; NULL outside the table. */
const struct rpc_method_info *rpc_method_info(enum rpc_method m);
/* The wire name of m ("?" outside the table). */
const char *rpc_method_name(enum rpc_method m);
/* The method named s[0..len); RPC_M__COUNT when unknown. */
enum rpc_method rpc_method_lookup(const char *s, size_t len);

/* The value views (section 6): C name, wire name (also the mount's file extension). */
#define RPC_VIEWS(X)                                                                               \
	X(PICKLE, "pickle")                                                                        \
	X(JSON, "json")                                                                            \
	X(NPY, "npy")                                                                              \
	X(TXT, "txt")                                                                              \
	X(BIN, "bin")

enum rpc_view {
#define RPC_VIEW_ENUM(id, name) RPC_VIEW_##id,
	RPC_VIEWS(RPC_VIEW_ENUM)
#undef RPC_VIEW_ENUM
	RPC_VIEW__COUNT
};

/* The wire name of v ("?" outside the table). */
const char *rpc_view_name(enum rpc_view v);
/* The view named s[0..len); RPC_VIEW__COUNT when unknown. */
enum rpc_view rpc_view_lookup(const char *s, size_t len);

/* The names inside results and parameters: C name, wire name. */
#define RPC_FIELDS(X)                                                                              \
	X(ARGUMENTS, "arguments")                                                                  \
	X(CALL_COUNT, "call_count")                                                                \
	X(CALLS, "calls")                                                                          \
	X(CODE_DIGEST, "code_digest")                                                              \
	X(COMPLETE, "complete")                                                                    \
	X(COMPRESS, "compress")                                                                    \
	X(CONFIG, "config")                                                                        \
	X(CWD, "cwd")                                                                              \
	X(DIRECTORY, "directory")                                                                  \
	X(ERRORS, "errors")                                                                        \
	X(FILE, "file")                                                                            \
	X(EXISTED, "existed")                                                                      \
	X(EXISTS, "exists")                                                                        \
	X(FLECHE_TOML, "fleche_toml")                                                              \
	X(FOLDER, "folder")                                                                        \
	X(HOSTNAME, "hostname")                                                                    \
	X(KEY, "key")                                                                              \
	X(KEY_COUNT, "key_count")                                                                  \
	X(KEYS, "keys")                                                                            \
	X(KIND, "kind")                                                                            \
	X(KINDS, "kinds")                                                                          \
	X(LAYOUT, "layout")                                                                        \
	X(MAX_FRAME, "max_frame")                                                                  \
	X(MAX_READ, "max_read")                                                                    \
	X(METADATA, "metadata")                                                                    \
	X(METADATA_ERROR, "metadata_error")                                                        \
	X(MODULE, "module")                                                                        \
	X(MTIME, "mtime")                                                                          \
	X(NAME, "name")                                                                            \
	X(NAMES, "names")                                                                          \
	X(NO_VIEWS, "no_views")                                                                    \
	X(PAGE_DEFAULT, "page_default")                                                            \
	X(PAGE_MAX, "page_max")                                                                    \
	X(PATH, "path")                                                                            \
	X(PID, "pid")                                                                              \
	X(PRESENT, "present")                                                                      \
	X(PROGRAM, "program")                                                                      \
	X(PROTOCOL, "protocol")                                                                    \
	X(RECORD_MTIME, "record_mtime")                                                            \
	X(READ_ONLY, "read_only")                                                                  \
	X(RECORDS, "records")                                                                      \
	X(RESULT, "result")                                                                        \
	X(ROOT, "root")                                                                            \
	X(SERIALIZER, "serializer")                                                                \
	X(SIGNED, "signed")                                                                        \
	X(SIZE, "size")                                                                            \
	X(STAMP, "stamp")                                                                          \
	X(TYPE, "type")                                                                            \
	X(URL, "url")                                                                              \
	X(VALUE_COUNT, "value_count")                                                              \
	X(VALUES, "values")                                                                        \
	X(VERSION, "version")                                                                      \
	X(VIEW, "view")                                                                            \
	X(VIEWS, "views")

enum rpc_field {
#define RPC_FIELD_ENUM(id, name) RPC_F_##id,
	RPC_FIELDS(RPC_FIELD_ENUM)
#undef RPC_FIELD_ENUM
	RPC_F__COUNT
};

/* The wire name of f ("?" outside the table). */
const char *rpc_field_name(enum rpc_field f);
/* Packs the name of f as a str; 0 or -ENOMEM. */
int rpc_pack_field(msgpack_packer *pk, enum rpc_field f);
/* The value of field f in map (NULL when absent or map is not a map). */
const msgpack_object *rpc_map_field(const msgpack_object *map, enum rpc_field f);
/* True when o is a str naming f. */
bool rpc_obj_is_field(const msgpack_object *o, enum rpc_field f);

/* list's kinds, named by the fields "calls" and "values". */
enum rpc_kind { RPC_KIND_CALLS, RPC_KIND_VALUES };

/* ---------------------------------------------------------------- requests */

/*
 * Each packs [0, msgid, name, params]. A NULL string packs nil; limit 0 packs nil
 * (the server's page_default); view RPC_VIEW_PICKLE packs nil (the stored stream).
 */
int rpc_pack_hello(msgpack_packer *pk, uint32_t msgid, int protocol, const char *client_name);
int rpc_pack_info(msgpack_packer *pk, uint32_t msgid);
int rpc_pack_list(msgpack_packer *pk, uint32_t msgid, enum rpc_kind kind, const char *after,
                  uint32_t limit, bool detail);
int rpc_pack_load(msgpack_packer *pk, uint32_t msgid, const char *key);
int rpc_pack_stat_value(msgpack_packer *pk, uint32_t msgid, const char *key, enum rpc_view view);
int rpc_pack_load_value(msgpack_packer *pk, uint32_t msgid, const char *key, uint64_t offset,
                        uint64_t length, enum rpc_view view);
int rpc_pack_contains(msgpack_packer *pk, uint32_t msgid, const char *key);
int rpc_pack_expand(msgpack_packer *pk, uint32_t msgid, const char *prefix);
int rpc_pack_shrink(msgpack_packer *pk, uint32_t msgid, const char *key);
int rpc_pack_evict(msgpack_packer *pk, uint32_t msgid, const char *key);
/* query with the template {"name": name}, the only one the daemon sends. */
int rpc_pack_query_name(msgpack_packer *pk, uint32_t msgid, const char *name, const char *after,
                        uint32_t limit, bool detail);
/* query with a template the caller packed: tmpl[0..len) is one msgpack map. */
int rpc_pack_query(msgpack_packer *pk, uint32_t msgid, const void *tmpl, size_t len,
                   const char *after, uint32_t limit, bool detail);
int rpc_pack_names(msgpack_packer *pk, uint32_t msgid, const char *after, uint32_t limit);
int rpc_pack_put_value(msgpack_packer *pk, uint32_t msgid, const char *key, uint64_t offset,
                       const void *data, size_t len, bool final);
/* save with the call map the caller packed (call[0..call_len), one msgpack map) and the
 * record's stored form (NULL: nil, for SQL call storage). */
int rpc_pack_save(msgpack_packer *pk, uint32_t msgid, const void *call, size_t call_len,
                  const void *record, size_t record_len);
int rpc_pack_list_record(msgpack_packer *pk, uint32_t msgid, const char *key);
/* load_many of keys[0..n): n from 1 to RPC_LOAD_MANY_MAX (else -EINVAL); values asks
 * for what is known of the values the records name. */
int rpc_pack_load_many(msgpack_packer *pk, uint32_t msgid, const char (*keys)[RPC_KEY_LEN + 1],
                       size_t n, bool values);

/* ---------------------------------------------------------------- results */

/* hello's result (section 5); absent or out-of-range numbers are 0, strings "". */
struct rpc_hello {
	int64_t protocol;
	const char *program, *version, *hostname, *root, *calls_type;
	size_t program_len, version_len, hostname_len, root_len, calls_type_len;
	bool read_only;
	uint32_t max_frame, max_read, page_default, page_max;
	unsigned views; /* bit 1u << enum rpc_view for each view listed; unknown names skipped */
	/* what the layout says exists (presence_known false: an older server did not say) */
	bool presence_known, calls_present, values_present;
	bool fleche_toml; /* a fleche.toml in the root */
};
int rpc_decode_hello(const msgpack_object *result, struct rpc_hello *out, char *err,
                     size_t errlen);

/*
 * stat_value's result: the exact size of the view (required), the full key ("" when
 * absent; a str that is not a key is -EPROTO), the file's mtime.
 */
struct rpc_stat_value {
	char key[RPC_KEY_LEN + 1];
	uint64_t size;
	double mtime; /* 0 when absent */
};
int rpc_decode_stat_value(const msgpack_object *result, struct rpc_stat_value *out, char *err,
                          size_t errlen);

/*
 * A page of list or query: keys must be an array of str and complete a bool (else
 * -EPROTO); a detail array that is not an array parallel to keys is ignored. Read
 * its entries with rpc_page_entry: an entry that is not a key is reported as such,
 * for the caller to skip (the page's last entry still tells where the next starts).
 */
struct rpc_page {
	const msgpack_object *keys;
	const msgpack_object *mtime, *size, *name, *stamp; /* NULL when absent */
	uint32_t n;
	bool complete;
};
int rpc_decode_page(const msgpack_object *result, struct rpc_page *out, char *err, size_t errlen);

struct rpc_page_entry {
	const char *key; /* not NUL-terminated */
	size_t key_len;
	bool is_key;     /* key is RPC_KEY_LEN lowercase hex characters */
	double mtime;    /* 0 when unknown */
	int64_t size;    /* -1 when unknown */
	const char *name; /* NULL when unknown; not NUL-terminated */
	size_t name_len;
	uint64_t stamp; /* calls: the record's stamp, 0 when unknown */
};
/* Entry i < page->n. */
void rpc_page_entry(const struct rpc_page *page, uint32_t i, struct rpc_page_entry *out);

/* A page of names: names is an array of str, complete a bool. */
struct rpc_names_page {
	const msgpack_object *names;
	uint32_t n;
	bool complete;
};
int rpc_decode_names(const msgpack_object *result, struct rpc_names_page *out, char *err,
                     size_t errlen);
/* Name i < page->n (not NUL-terminated). */
void rpc_names_entry(const struct rpc_names_page *page, uint32_t i, const char **s, size_t *len);

/* info's counts (absent: 0) and the cache's disk size (size_known false when absent). */
struct rpc_info {
	uint64_t call_count, value_count, size;
	bool size_known;
};
int rpc_decode_info(const msgpack_object *result, struct rpc_info *out, char *err,
                    size_t errlen);

/* The result of expand or shrink: a key or prefix of 4 to 64 lowercase hex characters. */
int rpc_decode_key(const msgpack_object *result, char out[RPC_KEY_LEN + 1], char *err,
                   size_t errlen);

/*
 * load_many's result (PROTOCOL.md): records and errors, arrays of the same length n,
 * at most `asked` (the keys sent); entry i answers key i: exactly one of the two is
 * not nil, a record a map (for fsd_record_build), an error an error map. Anything
 * else is -EPROTO. Read the entries with rpc_load_many_entry.
 */
struct rpc_load_many {
	const msgpack_object *records, *errors;
	uint32_t n;
	const msgpack_object *values; /* the values map, NULL when absent or not a map */
	uint32_t nvalues;
};
int rpc_decode_load_many(const msgpack_object *result, size_t asked, struct rpc_load_many *out,
                         char *err, size_t errlen);
/* Entry i < lm->n: *record the record map, or NULL and *error the error map. */
void rpc_load_many_entry(const struct rpc_load_many *lm, uint32_t i,
                         const msgpack_object **record, const msgpack_object **error);

/* What load_many's values map says of one value (PROTOCOL.md). */
enum rpc_view_state { RPC_VIEW_UNKNOWN, RPC_VIEW_APPLIES, RPC_VIEW_REFUSED };
struct rpc_value_info {
	char key[RPC_KEY_LEN + 1];
	uint8_t state[RPC_VIEW__COUNT]; /* enum rpc_view_state of each view; pickle unused */
	uint64_t size[RPC_VIEW__COUNT]; /* RPC_VIEW_APPLIES: the view's exact size */
	int folder;                     /* 1 a stored file or folder record, 0 not, -1 unknown */
};
/* Entry i < lm->nvalues of the values map: 0, or -EPROTO when it is malformed (a key
 * that is not a key, an info that is not a map); views it does not know are skipped. */
int rpc_load_many_value(const struct rpc_load_many *lm, uint32_t i, struct rpc_value_info *out);

/* contains's result: a bool. */
int rpc_decode_contains(const msgpack_object *result, bool *found, char *err, size_t errlen);

/*
 * list_record's result (section 5): the record's kind ("file" or "directory"), its
 * full key and mtime (record_mtime; 0 when absent), and entries in parallel arrays
 * of one length, each with a name that can be a file name (rpc_file_name_refused),
 * a kind, a full key, a size and an mtime. Anything else is -EPROTO, err saying
 * what: the whole answer is checked here, so rpc_list_record_entry cannot fail.
 * Points into result (borrowed for result's life).
 */
struct rpc_list_record {
	char key[RPC_KEY_LEN + 1];
	bool is_dir;
	double mtime;
	const msgpack_object *names, *kinds, *keys, *size, *mtimes; /* the arrays' items */
	uint32_t n;
};
int rpc_decode_list_record(const msgpack_object *result, struct rpc_list_record *out, char *err,
                           size_t errlen);

struct rpc_list_record_entry {
	const char *name; /* not NUL-terminated; a checked file name (no NUL, no '/') */
	size_t name_len;
	bool is_dir;      /* key is a folder record, else the file's content value */
	char key[RPC_KEY_LEN + 1];
	uint64_t size;    /* a file's bytes (at most INT64_MAX); 0 for a folder */
	double mtime;     /* of the entry's value file */
};
/* Entry i < l->n of a decoded answer. */
void rpc_list_record_entry(const struct rpc_list_record *l, uint32_t i,
                           struct rpc_list_record_entry *out);

/* ---------------------------------------------------------------- response heads */

/*
 * The head of a response whose result is a bin32, as a data answer starts:
 * [1, msgid, nil, bin32 LEN]. rpc_bin_head_length tells from its first 3 bytes how
 * long the head is (9 to 13 bytes), or 0 when they cannot start one.
 * rpc_bin_head_parse reads a whole head of that length: 0 with *msgid and *bin_len,
 * or -EPROTO when the bytes are not such a head. Pure functions of the bytes: a
 * reader uses them to pass a large bin on without decoding the frame.
 */
#define RPC_BIN_HEAD_MAX 13
size_t rpc_bin_head_length(const uint8_t first[3]);
int rpc_bin_head_parse(const uint8_t *head, size_t len, uint32_t *msgid, uint32_t *bin_len);

#endif

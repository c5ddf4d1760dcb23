/*
 * cache.h: a fleche cache as the server sees it: call storage (record files or a
 * SQLite database) and value storage (value files), with fleche's semantics for
 * prefixes, contains, expand, shrink and evict. Everything here is independent of
 * the wire: dispatch.c turns these results into msgpack.
 *
 * Invariants:
 *   1. No path or SQL statement is built from a string that rpc_key_prefix_valid
 *      has not accepted.
 *   2. Nothing is ever written to the cache except by srv_evict and by save.h's
 *      put_value and save, and all refuse on a read-only cache.
 *   3. Files whose names start with '.' or end in ".lock", and names that are not
 *      64 lowercase hex characters, are invisible: never listed, never matched.
 *   4. A signed file is served only after its HMAC was checked (when keys are
 *      configured); a file whose signature is missing or wrong is EBADMSG.
 *
 * Errors: every function returns 0 on success or -1 on failure, and on failure
 * fills *err (code from rpc.h's table and a message naming the key or file).
 *
 * Threads: a srv_cache may be shared by threads. It serialises call storage
 * operations with one internal mutex and value storage operations with another
 * (cache.c invariant 1), except SQL scans (query, names, counting), which run on
 * SQLite connections of their own; a value is decoded (gunzip) with neither held,
 * once however many threads open it at once. Every srv_value must be closed before srv_cache_free.
 *
 * Details: srv_list/srv_query/srv_names answer
 * EINVAL for limit 0 and cut limits above RPC_PAGE_MAX; srv_contains answers
 * *found = false with 0 for malformed input; srv_shrink of a valid prefix shorter
 * than 64 is ENOENT; srv_record.mtime is always set (timestop, else the file's or
 * database's mtime); a detail entry's name is NULL when a record cannot be read;
 * a detail entry's stamp is that load answers, or 0 (SQL listings, which would have
 * to read every record whole).
 * Opening a SQLite cache creates -shm/-wal files beside the database (as every
 * SQLite reader of a WAL database does), removed at srv_cache_free or
 * srv_cache_quit when they were not there before (store_sql.h invariant 6): tests
 * copy the fixtures first all the same.
 */
#ifndef FLECHEFS_SERVER_CACHE_H
#define FLECHEFS_SERVER_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "base.h"
#include "filecodec.h"
#include "rpc.h"

#define SRV_MAX_HMAC_KEYS 16
#define SRV_STACK_MAX     16

struct srv_config {
	const char *root;   /* template layout root, or NULL */
	const char *calls;  /* a directory, or "sqlite:///PATH"; NULL: found under root */
	const char *values; /* a directory; NULL: root/values */
	bool read_only;
	/* How fleche writes this cache (what save.c writes as): the value serializer
	 * ("pickle", "cloudpickle", "dill"; NULL when not known) and whether values and
	 * call records are gzip-compressed. */
	const char *serializer;
	bool compress_values, compress_calls;
	uint64_t gunzip_max; /* the most a gzip value may inflate to; 0: the default */
	struct srv_hmac_key keys[SRV_MAX_HMAC_KEYS]; /* borrowed; first signs, any verifies */
	size_t nkeys;
};

struct srv_cache; /* opaque */

/*
 * Opens the cache described by cfg (detecting the template layout under cfg->root:
 * root/calls.db if it exists, else root/calls/; values in root/values/). Fails
 * (returns -1, message in err) when a storage cannot be opened. Caller frees with
 * srv_cache_free. cfg's strings and keys are copied.
 */
int srv_cache_open(const struct srv_config *cfg, struct srv_cache **out, struct srv_error *err);
void srv_cache_free(struct srv_cache *cache);
/*
 * Ends the use of the cache from any thread, as the process is about to end: waits
 * (at most a second) for the operation in progress and closes the call storage, so
 * that SQLite removes the files it made (store_sql.h invariant 6). The cache must not
 * be used afterwards (an operation that tries waits for good) nor freed; the caller
 * ends the process.
 */
void srv_cache_quit(struct srv_cache *cache);

/*
 * Joins caches opened with srv_cache_open into one that reads through them in order,
 * as fleche's CacheStack does (stack.h says how each operation combines the layers).
 * Takes the n (2 to SRV_STACK_MAX) layers, also on failure. The stack's layout and
 * read_only are its first layer's. Caller frees with srv_cache_free.
 */
int srv_cache_stack(struct srv_cache **layers, size_t n, struct srv_cache **out,
		    struct srv_error *err);

/* The layout for hello/info (secrets left out). Strings borrowed from the cache. */
struct srv_layout {
	const char *root;        /* absolute or NULL */
	const char *calls_type;  /* "files" or "sql" */
	const char *calls_path;  /* absolute directory or database file */
	const char *calls_url;   /* sql: "sqlite:///..." with any password as "***"; else NULL */
	const char *values_type; /* "files" */
	const char *values_path; /* absolute */
	bool read_only;
	size_t key_count;
	const char *serializer; /* srv_config's, or NULL when not known */
	bool compress_values, compress_calls;
	/* What exists right now: fleche makes its storage on first use, so a root
	 * holding neither is not (yet) a cache; a fleche.toml in the root marks a
	 * fleche project's directory, whose caches live where the file says. */
	bool calls_present;  /* the call directory or database file exists */
	bool values_present; /* the value directory exists */
	bool fleche_toml;    /* root/fleche.toml exists */
};
void srv_cache_layout(const struct srv_cache *cache, struct srv_layout *out);

/* The cache's store of rendered json views (textcache.h), borrowed for its life. */
struct srv_textcache *srv_cache_texts(struct srv_cache *cache);

/* The cache saves go to: a stack's first layer, else the cache itself. */
struct srv_cache *srv_cache_save_layer(struct srv_cache *cache);
/* The key that signs what is saved (the first configured), or NULL; borrowed. */
const struct srv_hmac_key *srv_cache_signing_key(const struct srv_cache *cache);

/* Counts call records and value files (may scan). */
int srv_count(struct srv_cache *cache, uint64_t *calls, uint64_t *values, struct srv_error *err);

/*
 * The disk space the cache's files take, in bytes (allocated blocks): the call
 * records (or the database file and its WAL) and the value files (key-named regular
 * files). Reads both directories and stats every file, without holding the cache's
 * lock; a file that vanished meanwhile counts nothing.
 */
int srv_cache_size(struct srv_cache *cache, uint64_t *bytes, struct srv_error *err);

/*
 * Keys of one kind strictly after `after` (NULL: from the start), ascending, at most
 * limit of them. Caller releases page.
 */
int srv_list(struct srv_cache *cache, enum srv_kind kind, const char *after, size_t limit,
	     bool detail, struct srv_page *page, struct srv_error *err);

/* Loads a call record by full key or unique call prefix. Caller releases rec. */
int srv_load(struct srv_cache *cache, const char *key, size_t len, struct srv_record *rec,
	     struct srv_error *err);

/* contains: *found true for a stored call key or a prefix unique among calls. */
int srv_contains(struct srv_cache *cache, const char *key, size_t len, bool *found,
		 struct srv_error *err);
/* expand: out receives the full key (65 bytes with NUL). */
int srv_expand(struct srv_cache *cache, const char *prefix, size_t len, char *out,
	       struct srv_error *err);
/* shrink: out receives the shortest unique prefix (65 bytes with NUL). */
int srv_shrink(struct srv_cache *cache, const char *key, size_t len, char *out,
	       struct srv_error *err);
/* evict: removes one call record; see PROTOCOL.md. */
int srv_evict(struct srv_cache *cache, const char *key, size_t len, struct srv_error *err);

/*
 * query: call keys whose record matches template (a msgpack map as PROTOCOL.md's
 * query describes; already checked to be a map), after/limit/detail as srv_list.
 */
int srv_query(struct srv_cache *cache, const msgpack_object *template, const char *after,
	      size_t limit, bool detail, struct srv_page *page, struct srv_error *err);

/* Distinct function names strictly after `after` (NULL: start), at most limit. */
int srv_names(struct srv_cache *cache, const char *after, size_t limit, struct srv_names *out,
	      struct srv_error *err);

/*
 * Open values are kept for the next request in a small LRU; of the decompressed copies
 * of gzip values (large ones are temporary files) it keeps at most this many bytes
 * besides the most recent value.
 */
#define SRV_VALUE_LRU_COPIES (512ull * 1024 * 1024)

/*
 * An open value: its pickle stream (after gunzip and signature check) as one
 * contiguous read-only byte range. Values are opened by full key or unique value
 * prefix. The cache may keep recently opened values (bounded) so that reading a large
 * value in ranges does not reopen or re-verify it each time.
 */
struct srv_value;
int srv_value_open(struct srv_cache *cache, const char *key, size_t len, struct srv_value **out,
		   struct srv_error *err);
const char *srv_value_key(const struct srv_value *v);
uint64_t srv_value_size(const struct srv_value *v);
double srv_value_mtime(const struct srv_value *v);
/*
 * The whole pickle stream; borrowed until srv_value_close. The bytes may be mapped
 * from the value file: if someone truncates that file (or the disk fails a read),
 * reading them does not crash the server but yields zeros from there on, so whoever
 * reads them directly must call srv_value_check after reading (srv_value_copy does).
 */
const uint8_t *srv_value_bytes(const struct srv_value *v);
/*
 * Copies len bytes of the pickle stream from offset off into dst. Returns 0, or -1
 * with err filled: EINVAL for a range outside the value, CORRUPT (naming the file)
 * when the file was truncated or could not be read while mapped.
 */
int srv_value_copy(struct srv_value *v, uint64_t off, void *dst, size_t len,
		   struct srv_error *err);
/*
 * After reading srv_value_bytes directly: 0 when every byte read so far was the
 * file's, else -1 with err filled (CORRUPT naming the file). No system call.
 */
int srv_value_check(struct srv_value *v, struct srv_error *err);
/*
 * Before handing srv_value_bytes to write(2) (which fails with EFAULT on a page the
 * file no longer has, instead of raising SIGBUS): srv_value_check, and also 0 only
 * when the file still holds every mapped byte. Costs an fstat when the value is
 * mapped from its file.
 */
int srv_value_check_file(struct srv_value *v, struct srv_error *err);
/*
 * After serving bytes p[0..len) of srv_value_bytes (or of a view rendered from them):
 * lets go of the memory they were mapped in when they are mapped from a file, so that
 * a value read whole in ranges is never resident whole in this process; a later read
 * maps them in again. No effect on bytes held otherwise.
 */
void srv_value_drop_pages(struct srv_value *v, const uint8_t *p, size_t len);
void srv_value_close(struct srv_value *v);

#endif

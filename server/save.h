/*
 * save.h: the server's only writes besides evict: a value uploaded in chunks
 * (put_value) and a call record (save), stored as fleche stores them, into the layer
 * saves go to (a stack's first).
 *
 * Invariants:
 *   1. Nothing is ever visible under a key that is not complete: bytes go to a
 *      temporary file whose name starts with ".flechefs-" (invisible to fleche and to
 *      this server's listings) and are given the key's name by link(2), which never
 *      replaces an existing file: a key is never overwritten.
 *   2. A value is stored only once its bytes are one complete pickle the server's
 *      reader accepts (structure only; nothing is executed); a record only when it
 *      parses to exactly the call the client described and every value the call
 *      names is stored.
 *   3. What is stored is what fleche would write: the pickle, then the HMAC trailer
 *      of the first key when the cache is signed, all gzip-compressed when the
 *      storage is configured to compress.
 *   4. A server killed at any point leaves at most temporary files, which the next
 *      server in the cache removes once they are a day old (srv_save_sweep).
 *
 * Errors: 0 on success, -1 with *err filled (cache.h).
 */
#ifndef FLECHEFS_SERVER_SAVE_H
#define FLECHEFS_SERVER_SAVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "cache.h"

/* The most bytes one value may have (its temporary file is refused beyond). */
#define SRV_PUT_MAX (64ull << 30)

/*
 * Writes data[0..len) at offset off of key's upload (off 0 starts it afresh). When
 * the value is already stored, *exists is set and nothing is written (the client
 * stops). With final, the upload must end at off + len: its bytes are checked,
 * signed and compressed as configured and stored under key (invariants 1 to 3).
 * Chunks other than the final one may arrive in any order; the final one must come
 * after all of them have been answered.
 */
int srv_put_value(struct srv_cache *cache, const char *key, size_t keylen, uint64_t off,
                  const void *data, size_t len, bool final, bool *exists,
                  struct srv_error *err);

/*
 * Stores the call record `record` (its stored form, as fleche pickles a DigestedCall)
 * under call's key, after checking that it parses to exactly `call` (a map of key,
 * name, module, version, code_digest, arguments, result, metadata as load answers
 * them) and that the values it names are stored. A record already stored with the
 * same fields is success (*existed set); with other fields it is EEXIST.
 */
int srv_save_call(struct srv_cache *cache, const msgpack_object *call, const void *record,
                  size_t reclen, bool *existed, struct srv_error *err);

/*
 * save_sql.c: inserts the record `call` (checked by srv_save_call) under key into the
 * SQL call storage at path, in one transaction. *inserted false (and 0) when the key
 * is stored already, which the caller then compares.
 */
int srv_save_sql(const char *path, const msgpack_object *call, const char *key, bool *inserted,
                 struct srv_error *err);

/* Removes this cache's temporary files of saves older than a day (invariant 4). */
void srv_save_sweep(struct srv_cache *cache);

#endif

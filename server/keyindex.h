/*
 * keyindex.h: the sorted key snapshot of one storage directory, and a bounded
 * identity cache of per-file facts (record summaries, value sizes).
 *
 * A key index holds the names of a flat directory that are keys (64 lowercase hex
 * characters) as 32-byte binary digests, sorted, so that a million keys cost 32 MB
 * and every list/prefix question is a binary search. It is rebuilt when the
 * directory's mtime (or identity) changes, and also whenever the snapshot was taken
 * less than a second after that mtime ("racy git": a file created in the same clock
 * tick as the last scan would not change the mtime we saw).
 *
 * Invariants:
 *   1. keys[0..n) is strictly ascending (memcmp order = hex string order).
 *   2. Only names accepted by rpc_key_valid ever enter the index, so names starting
 *      with '.' or ending in ".lock" never do.
 *   3. The identity cache never holds more than SRV_IDCACHE_MAX entries: when full it
 *      is emptied and refilled; an entry is only used when the file's dev, ino,
 *      size and mtime are those it was stored with.
 */
#ifndef FLECHEFS_SERVER_KEYINDEX_H
#define FLECHEFS_SERVER_KEYINDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

#include "base.h"

#define SRV_KEY_BYTES 32
/* Refuse to index directories with more keys than this (memory bound: 2 GiB). */
#define SRV_KEYINDEX_MAX (64u * 1024 * 1024)
#define SRV_IDCACHE_MAX  (1u << 21)

/* Hex <-> binary for full keys. srv_key_from_hex expects 64 valid hex characters. */
void srv_key_from_hex(const char *hex, uint8_t out[SRV_KEY_BYTES]);
void srv_key_to_hex(const uint8_t key[SRV_KEY_BYTES], char out[RPC_KEY_LEN + 1]);
/* Number of leading hex characters two binary keys share (0..64). */
unsigned srv_key_common(const uint8_t *a, const uint8_t *b);

/*
 * The length of the shortest unique prefix of a key that shares `common` leading hex
 * characters with its closest neighbour: common + 1, at least RPC_PREFIX_MIN and at
 * most RPC_KEY_LEN.
 */
unsigned srv_prefix_need(unsigned common);

struct srv_keyindex {
	char *dir;
	uint8_t *keys; /* n * SRV_KEY_BYTES */
	size_t n, cap;
	bool loaded;
	dev_t dev;
	ino_t ino;
	struct timespec mtime; /* of the directory when scanned */
	struct timespec taken; /* CLOCK_REALTIME when scanned */
};

/* dir is copied. */
int srv_keyindex_init(struct srv_keyindex *ki, const char *dir);
void srv_keyindex_release(struct srv_keyindex *ki);
/* Rescans when the directory changed (a missing directory is an empty index). */
int srv_keyindex_refresh(struct srv_keyindex *ki, struct srv_error *err);
/* Index of the first key strictly greater than after (NULL: 0). */
size_t srv_keyindex_after(const struct srv_keyindex *ki, const uint8_t *after);
/* Keys starting with the hex prefix p[0..len): indexes [*lo, *hi). */
void srv_keyindex_range(const struct srv_keyindex *ki, const char *p, size_t len, size_t *lo,
                        size_t *hi);
static inline const uint8_t *srv_keyindex_key(const struct srv_keyindex *ki, size_t i)
{
	return ki->keys + i * SRV_KEY_BYTES;
}
/* Shortest prefix (>= 4) of keys[i] unique in the index. */
unsigned srv_keyindex_shrink(const struct srv_keyindex *ki, size_t i);
bool srv_keyindex_find(const struct srv_keyindex *ki, const uint8_t *key, size_t *pos);

/* The identity cache. */
struct srv_idcache_entry {
	uint8_t key[SRV_KEY_BYTES];
	bool used;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
	double t;   /* summaries: the record's mtime */
	int64_t n;  /* values: byte size */
	char *name; /* summaries: function name or NULL */
};

struct srv_idcache {
	struct srv_idcache_entry *slots;
	size_t cap, count;
};

void srv_idcache_release(struct srv_idcache *c);
/* The entry for key when st matches its identity, else NULL. Borrowed. */
struct srv_idcache_entry *srv_idcache_get(struct srv_idcache *c, const uint8_t *key,
                                          const struct stat *st);
/* Stores (replaces) the entry for key; name is copied. Failing to store is silent. */
void srv_idcache_put(struct srv_idcache *c, const uint8_t *key, const struct stat *st, double t,
                     int64_t n, const char *name);

#endif

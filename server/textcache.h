/*
 * textcache.h: a bounded LRU cache of rendered texts (the json view's), each keyed by
 * an id and the size and mtime of the stored file it was rendered from, so that a
 * file replaced on disk is rendered again. The cache object (cache.h) owns one.
 *
 * Invariants:
 *   1. The linked entries are at most SRV_TEXTCACHE_ENTRIES and cost at most
 *      SRV_TEXTCACHE_BYTES together, an entry's cost being its text, its id and the
 *      entry itself; besides them the cache keeps the most recent entry costing
 *      more than that.
 *   2. An entry in use is never freed: eviction only unlinks it (dropping the
 *      cache's reference) and the last srv_textcache_unref frees it.
 *   3. One mutex guards the list, the counts and every entry's reference count.
 *   4. A linked entry is found through a hash of its id, at a cost that does not
 *      grow with the count (a walk of the tree renders the json of every value).
 */
#ifndef FLECHEFS_SERVER_TEXTCACHE_H
#define FLECHEFS_SERVER_TEXTCACHE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The budget of linked entries of a cache (invariant 1). */
#define SRV_TEXTCACHE_BYTES   (32u * 1024 * 1024)
#define SRV_TEXTCACHE_ENTRIES 65536u
/* Hash buckets of the linked entries (invariant 4). */
#define SRV_TEXTCACHE_BUCKETS 8192u

struct srv_text {
	const char *data; /* the text: read-only while a reference is held */
	size_t len;
	/* private to textcache.c */
	char *id;
	uint64_t hash; /* of id */
	size_t cost;   /* invariant 1 */
	uint64_t size;
	double mtime;
	struct srv_text *prev, *next; /* LRU list, most recent first */
	struct srv_text *hnext;       /* the next linked entry in its bucket */
	unsigned refs;                /* holders, plus one while linked or big */
	bool linked;
};

struct srv_textcache {
	pthread_mutex_t lock;
	struct srv_text *head, *tail;
	struct srv_text *bucket[SRV_TEXTCACHE_BUCKETS];
	size_t bytes;        /* the cost of linked entries */
	size_t count;        /* linked entries */
	struct srv_text *big; /* the most recent entry larger than the budget */
};

void srv_textcache_init(struct srv_textcache *tc);
/* Drops every entry (those still referenced are freed by their last unref). */
void srv_textcache_clear(struct srv_textcache *tc);
/* Clears tc and frees its lock; no entry may be referenced any more. */
void srv_textcache_release(struct srv_textcache *tc);

/*
 * The text of id rendered from a file of this size and mtime: a reference the caller
 * gives back with srv_textcache_unref, or NULL (an entry for an older file is
 * dropped).
 */
struct srv_text *srv_textcache_get(struct srv_textcache *tc, const char *id, uint64_t size,
                                   double mtime);

/*
 * Adds data[0..len) (malloc'd, taken) as the text of id (copied) for a file of this
 * size and mtime. Returns a reference for the caller, or NULL out of memory (data
 * freed).
 */
struct srv_text *srv_textcache_put(struct srv_textcache *tc, const char *id, uint64_t size,
                                   double mtime, char *data, size_t len);

/* Gives back a reference from get or put; t may be NULL. */
void srv_textcache_unref(struct srv_textcache *tc, struct srv_text *t);

#endif

/*
 * prefetch.h: call records ahead of a walk. When call folders are opened in the
 * order of the fresh listing of calls/ (two neighbours one after the other, as find,
 * du, grep -r and file managers do), threads of the prefetcher load the records of
 * the entries that follow with load_many, a batch at a time, into a bounded store
 * from which opening a call folder takes its record (node.c, fsd_fs_ensure_record).
 * With each batch they learn which views the results have and whether
 * they are stored file or folder records (views.h), so that listing a call folder
 * costs no round trip either.
 *
 * Invariants:
 *  1. A stored record is served only while it is current: until cache_timeout after
 *     the load_many that read it was sent (inode.h invariant 5); an older one is
 *     dropped when met. A record is served once (taken out of the store); the inode
 *     then holds it as any record it loaded itself.
 *  2. At most FSD_PREFETCH_KEPT records are stored (the oldest dropped first), no
 *     entry more than FSD_PREFETCH_AHEAD beyond the furthest one opened is fetched,
 *     and at most FSD_PREFETCH_THREADS threads each have one load_many of at most
 *     FSD_PREFETCH_BATCH keys (and then its view questions) in flight.
 *  3. No request is sent and no listing waited for with the prefetcher's lock held;
 *     its lock is taken before a listing's, never after.
 *  4. The threads are the workers' (workers.h). Each ends when the walked listing
 *     has no entry left to fetch, when nothing was opened for FSD_PREFETCH_IDLE_MS,
 *     or at fsd_prefetch_stop; an opening that finds none running starts them again.
 *  5. An eviction through the mount takes the call's record out of the store
 *     (fsd_prefetch_forget).
 *  6. A walk goes in the listing's order, or in the order of the entries' inode
 *     numbers (GNU find and du read a directory of more than 10,000 entries in that
 *     order): the order two neighbouring openings follow is the one read ahead in.
 */
#ifndef FLECHEFS_FUSEFS_PREFETCH_H
#define FLECHEFS_FUSEFS_PREFETCH_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "conn.h"
#include "inode.h"
#include "listing.h"
#include "views.h"
#include "workers.h"

#define FSD_PREFETCH_BATCH   128  /* keys per load_many (at most RPC_LOAD_MANY_MAX) */
#define FSD_PREFETCH_THREADS 4
#define FSD_PREFETCH_AHEAD   1024 /* entries fetched beyond the furthest opened */
#define FSD_PREFETCH_KEPT    2048 /* records stored */
#define FSD_PREFETCH_IDLE_MS 2000

struct fsd_prefetch_entry;
struct fsd_walk_order;

struct fsd_prefetch {
	struct fsd_conn *conn;           /* borrowed */
	struct fsd_listings *lists;      /* borrowed: the listing of calls/ */
	struct fsd_viewcache *views;     /* borrowed: filled ahead too */
	struct fsd_workers *workers;     /* borrowed: runs the threads */
	uint64_t cache_timeout_ms;
	pthread_mutex_t lock;
	pthread_cond_t cv;
	/* the walk, under lock */
	struct fsd_listing *walk;     /* the listing walked (a reference), or NULL */
	struct fsd_walk_order *order; /* the order it is walked in (a reference); NULL: its own */
	size_t next;                  /* the next position of the walk to fetch */
	size_t reached;               /* one past the furthest position of the walk opened */
	struct fsd_walk_order *by_ino; /* missed_in's entries by inode number, or NULL */
	const struct fsd_listing *missed_in; /* compared only: where last_miss is */
	long last_miss;               /* the entry last opened without the store, -1 */
	uint64_t last_open_ms;        /* when a call folder was last opened */
	size_t end;                   /* where walk was found to end: SIZE_MAX until then */
	unsigned threads;             /* running */
	int stopping;
	/* the store, under lock: a hash table, and a list from the oldest */
	struct fsd_prefetch_entry **bucket;
	size_t nbuckets, count;
	struct fsd_prefetch_entry *oldest, *newest;
	/* what happened, for the log at debug level and the tests */
	uint64_t served, missed, fetched;
};

/* All borrowed; they must outlive the prefetcher. Returns 0 or -ENOMEM. */
int fsd_prefetch_init(struct fsd_prefetch *pf, struct fsd_conn *conn, struct fsd_listings *lists,
                      struct fsd_viewcache *views, struct fsd_workers *workers,
                      double cache_timeout);
/* Makes every thread end soon and starts no more (then join the workers). */
void fsd_prefetch_stop(struct fsd_prefetch *pf);
/* Frees the store; every thread must have ended (the workers joined). */
void fsd_prefetch_release(struct fsd_prefetch *pf);

/*
 * The record of call key when the store holds a current one: returns it (one
 * reference, the caller's) and in *loaded_ms when its load was sent (clock.h ms).
 * Else NULL: the caller loads it itself, and the miss tells where the walk is (it
 * may start the threads). Never waits for the server.
 */
struct fsd_record *fsd_prefetch_take(struct fsd_prefetch *pf, const char *key,
                                     uint64_t *loaded_ms);

/* Drops the stored record of key, if any (it was evicted). */
void fsd_prefetch_forget(struct fsd_prefetch *pf, const char *key);

#endif

/*
 * listing.h: the directory listings of the mount (calls/, values/, by-name/ and
 * by-name/<function>/), fetched from the server page by page and cached for
 * cache_timeout seconds. A listing is filled by a thread of its own while readers
 * already read its first pages, so that a large directory's later pages arrive
 * while ls is busy with the first ones.
 *
 * Invariants:
 *  1. Entries of a listing never change once appended; its count only grows, under
 *     its lock, until it is done (complete, or failed with an errno).
 *  2. Listings are reference counted: the cache holds one, every open directory
 *     one, the filling thread one.
 *  3. Lock order: the cache's lock, then a listing's.
 */
#ifndef FLECHEFS_FUSEFS_LISTING_H
#define FLECHEFS_FUSEFS_LISTING_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "conn.h"

struct fsd_listing;

/* The cached listings of calls/, values/ and by-name/. */
struct fsd_listings {
	struct fsd_conn *conn;
	uint32_t page;        /* keys asked for per page */
	double cache_timeout; /* seconds a listing is reused */
	pthread_mutex_t lock;
	struct fsd_listing *calls, *values, *names;
	struct fsd_workers *workers; /* borrowed: runs the threads that fill listings */
};

/* One entry, copied out of a listing. */
struct fsd_list_item {
	char name[256];      /* the key, or the function name for by-name/ */
	double mtime;        /* 0 when unknown */
	int64_t size;        /* values: the size, -1 when unknown */
	uint64_t stamp;      /* calls: the record's stamp (PROTOCOL.md), 0 when unknown */
	uint64_t fetched_ms; /* CLOCK_MONOTONIC: when the listing's first page was asked
	                        for (what it says was current then) */
};

/* workers (borrowed) runs the filling threads; the owner joins them (workers.h). */
void fsd_listings_init(struct fsd_listings *ls, struct fsd_conn *conn,
                       struct fsd_workers *workers, uint32_t page, double cache_timeout);
/* Drops the cache; every filling thread must have been joined. */
void fsd_listings_release(struct fsd_listings *ls);

/*
 * The listing of kind "calls", "values" or "names" (by-name/), from the cache or
 * started afresh; waits for its first page. Returns 0 and *out (a reference), or
 * -errno when the first page fails.
 */
int fsd_listings_get(struct fsd_listings *ls, const char *kind, struct fsd_listing **out);

/* The calls of one function (query {name: func}), fetched whole, not cached. */
int fsd_listing_query(struct fsd_listings *ls, const char *func, struct fsd_listing **out);

/* The calls a query template (one msgpack map, copied) matches, fetched whole, not
 * cached; what names it in log lines. */
int fsd_listing_template(struct fsd_listings *ls, const char *tmpl, size_t len, const char *what,
                         struct fsd_listing **out);

/*
 * Looks a full key up in the fresh cached listing of kind ("calls" or "values"):
 * its index (and its entry in *it), or -1 when absent or when no fresh listing exists.
 */
long fsd_listings_find(struct fsd_listings *ls, const char *kind, const char *key,
                       struct fsd_list_item *it);

/* The fresh cached listing of kind (a reference), or NULL when there is none. */
struct fsd_listing *fsd_listings_fresh(struct fsd_listings *ls, const char *kind);
/* The cached listing of kind however old (a reference: what it says is not current,
 * but its order is the order a walk of it goes in), or NULL. */
struct fsd_listing *fsd_listings_latest(struct fsd_listings *ls, const char *kind);
/* The index of a full key among the entries of l appended so far (and its entry in
 * *it when not NULL), or -1. */
long fsd_listing_find(struct fsd_listing *l, const char *key, struct fsd_list_item *it);

/* Forgets the cached listing of kind (after an eviction). */
void fsd_listings_drop(struct fsd_listings *ls, const char *kind);

/*
 * Copies entry k into it, waiting for its page. Returns 0, 1 past the end, or
 * -errno when fetching failed before entry k.
 */
int fsd_listing_item(struct fsd_listing *l, size_t k, struct fsd_list_item *it);

/* One more reference to l (NULL: NULL). */
struct fsd_listing *fsd_listing_ref(struct fsd_listing *l);
void fsd_listing_unref(struct fsd_listing *l);

#endif

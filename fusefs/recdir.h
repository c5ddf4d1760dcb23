/*
 * recdir.h: the folders of stored file and folder records in the mount
 * (values/<key>.d/, calls/<key>/result.d, arguments/<param>.d): one level of a
 * record as the server's list_record answers it (PROTOCOL.md section 5, decoded and
 * checked by proto.h, since names become file names), kept in a cache so that
 * listing a call folder again, or looking up each file of a record folder, costs no
 * request.
 *
 * Invariants:
 *  1. A value never changes for its key, so a listing, and a definitive refusal
 *     (the value is no record, ENOTSUP; or one that cannot be shown: EINVAL, ELOOP,
 *     CORRUPT, EFBIG), is kept for the mount's life while the cache has room:
 *     listings of at most FSD_RECDIR_CACHE_BYTES in all (counted by
 *     fsd_recdir_bytes) and at most FSD_RECDIR_CACHE_MAX answers, the least recently
 *     used dropped first; a listing larger than a quarter of the budget is not kept.
 *     Anything else (a connection failure, a missing value, a bad signature, an
 *     answer that breaks the protocol) is not kept and is asked again next time.
 *  2. A listing is immutable once made and shared by reference: the cache holds one
 *     reference, each caller of fsd_recdirs_get another, dropped with
 *     fsd_recdir_unref; it is freed with its last reference, whether or not the
 *     cache still holds it.
 *  3. The cache's lock is never held while a request is sent or waited for; two
 *     threads missing the same key may both ask, and the first answer kept wins.
 */
#ifndef FLECHEFS_FUSEFS_RECDIR_H
#define FLECHEFS_FUSEFS_RECDIR_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "conn.h"

/* How many folders deep the mount follows records below values/<key>.d (ELOOP beyond:
 * only a crafted cache makes folders refer to each other in a ring). */
#define FSD_RECDIR_DEPTH 32

/* The cache's budget (invariant 1). */
#define FSD_RECDIR_CACHE_BYTES (32u << 20)
#define FSD_RECDIR_CACHE_MAX   65536u

struct fsd_recdir_entry {
	char *name;           /* checked: a file name */
	int is_dir;           /* a folder (key: its record) or a file (key: its content) */
	char key[65];
	uint64_t size;        /* a file's bytes */
	double mtime;         /* of the entry's value file */
};

/* One record's listing (invariant 2: read-only once returned). */
struct fsd_recdir {
	struct fsd_recdir_entry *entries;
	size_t n;
	double mtime; /* of the record's value file; 0 when the server did not say */
	size_t bytes; /* what it costs the cache's budget */
	unsigned refs;
};

struct fsd_recdir_slot;

struct fsd_recdirs {
	struct fsd_conn *conn;
	pthread_mutex_t lock;
	struct fsd_recdir_slot **bucket;
	size_t nbuckets, count, bytes;
	struct fsd_recdir_slot *newest, *oldest; /* in order of use */
};

int fsd_recdirs_init(struct fsd_recdirs *rc, struct fsd_conn *conn);
void fsd_recdirs_release(struct fsd_recdirs *rc);

/*
 * The listing of the record key (a full value key): from the cache, else asked of
 * the server with list_record (EINVAL for a key that is not one). Returns 0 with *out
 * a reference the caller drops with fsd_recdir_unref, or -errno (*out NULL) with why
 * (whylen bytes) saying why: the server's errno (ENOTSUP: not a record; EINVAL: a
 * name no file can have; ELOOP; ...) and message, or EIO for an answer that breaks
 * the protocol. Must not run on the connection's reader thread.
 */
int fsd_recdirs_get(struct fsd_recdirs *rc, const char *key, struct fsd_recdir **out,
                    char *why, size_t whylen);
/* Drops a reference from fsd_recdirs_get; NULL is a no-op. */
void fsd_recdir_unref(struct fsd_recdir *d);

/* Index of name in d, or -1. */
long fsd_recdir_find(const struct fsd_recdir *d, const char *name);

#endif

/*
 * views.h: the value views of the mount (rpc/PROTOCOL.md section 6):
 * values/<key>.json, .npy, .txt and .bin next to values/<key> (the pickle), and
 * the names calls/<key>/result.<ext> and arguments/<param>.<ext> (the views and
 * their names are proto.h's enum rpc_view; a view's file extension is its name).
 * This module splits names at their extension and keeps a cache of which views apply to a
 * value key (with their exact sizes), filled with stat_value requests sent all at
 * once, so that listing a call directory costs one round of answers, not one round
 * trip per view and value.
 *
 * Invariants:
 *  1. A value never changes for its key, so a definitive answer (the view applies
 *     with a size; or it does not apply: ENOTSUP, EFBIG, ELOOP) is kept for the
 *     mount's life, up to FSD_VIEWCACHE_MAX keys (then the cache starts afresh).
 *     Anything else (a connection failure, a missing value, a bad signature) is not
 *     kept and is asked again next time.
 *  2. The cache's lock is never held while a request is sent or a completion waited
 *     for; completions (reader thread) take the lock of their batch, or the cache's
 *     own for fsd_viewcache_put_folder, and nothing else.
 */
#ifndef FLECHEFS_FUSEFS_VIEWS_H
#define FLECHEFS_FUSEFS_VIEWS_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "conn.h"
#include "proto.h"

/* The derived views (every one but pickle), as a bit mask of 1u << view. */
#define FSD_VIEWS_DERIVED (((1u << RPC_VIEW__COUNT) - 1) & ~(1u << RPC_VIEW_PICKLE))

/*
 * When name is "<stem>.<ext>" with ext a derived view's extension and a stem of at
 * least one character: returns the view and sets *stem_len. Otherwise returns 0
 * (RPC_VIEW_PICKLE) with *stem_len the whole length.
 */
int fsd_view_split(const char *name, size_t *stem_len);

/* What is known of one value's views. */
enum fsd_view_state {
	FSD_VS_UNKNOWN, /* not asked, or no definitive answer */
	FSD_VS_YES,     /* applies; size[view] is exact */
	FSD_VS_NO,      /* does not apply (ENOTSUP, EFBIG, ELOOP) */
};

struct fsd_viewinfo {
	uint8_t state[RPC_VIEW__COUNT];
	uint64_t size[RPC_VIEW__COUNT];
	/* whether the value is a stored file or folder record shown as <key>.d
	 * (list_record): FSD_VS_*, kept under the same rule as the views */
	uint8_t folder;
};

#define FSD_VIEWCACHE_MAX 32768

struct fsd_viewcache_entry;

struct fsd_viewcache {
	struct fsd_conn *conn;
	pthread_mutex_t lock;
	struct fsd_viewcache_entry **bucket;
	size_t nbuckets, count;
};

int fsd_viewcache_init(struct fsd_viewcache *vc, struct fsd_conn *conn);
void fsd_viewcache_release(struct fsd_viewcache *vc);

/*
 * Fills out[k] for the value key keys[k] (k < n), for the derived views the server
 * offers (hello's views): from the cache, else by asking stat_value for every
 * missing (key, view) pair at once and waiting for the answers. Must not run on the
 * connection's reader thread. Returns 0 (views that could not be found out stay
 * FSD_VS_UNKNOWN) or -ENOMEM.
 */
int fsd_viewcache_get(struct fsd_viewcache *vc, char (*keys)[65], size_t n,
                      struct fsd_viewinfo *out);

/* Records a definitive answer learnt elsewhere (a lookup in values/). */
void fsd_viewcache_put(struct fsd_viewcache *vc, const char *key, int view, int state,
                       uint64_t size);

/* What is known of whether key is a stored file or folder record (FSD_VS_*). */
int fsd_viewcache_folder(struct fsd_viewcache *vc, const char *key);
/* Records a definitive answer of list_record for key (FSD_VS_YES or FSD_VS_NO). */
void fsd_viewcache_put_folder(struct fsd_viewcache *vc, const char *key, int state);

/*
 * Whether a server error answered for a derived view means "this view does not
 * exist for the value" for good (ENOTSUP, EFBIG, ELOOP).
 */
int fsd_view_error_definitive(const struct rpc_error_info *e);

#endif

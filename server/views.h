/*
 * views.h: the value views of PROTOCOL.md section 6: json, npy, txt and
 * bin, rendered from the pickle tree of a value (pickle.h). srv_view_render is the
 * renderer dispatch.c calls for every view but "pickle"; the functions below it are
 * the pure parts (no cache, no I/O) that the fuzz harness and tests drive directly.
 *
 * Limits (all documented in PROTOCOL.md section 6):
 *   - a json view is at most SRV_VIEW_JSON_MAX bytes, nests at most
 *     SRV_VIEW_JSON_DEPTH containers deep, and renders numpy arrays of at most
 *     SRV_VIEW_NDARRAY_JSON_MAX elements; beyond that it is EFBIG;
 *   - destructured references are followed at most SRV_VIEW_REF_DEPTH deep and read
 *     at most SRV_VIEW_REF_BYTES of referenced pickles in one rendering (EFBIG); a
 *     reference to a value on its own path is ELOOP, a missing part ENOENT;
 *   - rendered json is kept in the cache object's text cache (textcache.h: at most
 *     SRV_TEXTCACHE_BYTES, LRU, plus the most recent rendering larger than that), so
 *     that reading a view in ranges renders it once.
 */
#ifndef FLECHEFS_SERVER_VIEWS_H
#define FLECHEFS_SERVER_VIEWS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "cache.h"
#include "pathrec.h"
#include "pickle.h"
#include "proto.h"

#define SRV_VIEW_JSON_MAX         (256u * 1024 * 1024)
#define SRV_VIEW_JSON_DEPTH       500
#define SRV_VIEW_NDARRAY_JSON_MAX 1000000u
#define SRV_VIEW_REF_DEPTH        64
#define SRV_VIEW_REF_BYTES        (256u * 1024 * 1024)
#define SRV_VIEW_REF_COUNT        1000000u

/*
 * Value views (PROTOCOL.md section 6). A view turns a value's pickle stream into the
 * bytes stat_value and load_value serve, as up to SRV_VIEW_MAX_SEGMENTS contiguous
 * segments (for example an NPY header built in memory followed by the array's data
 * inside the stored stream), so that large views are served in ranges without a
 * whole copy. The "pickle" view is the stored stream itself and needs no renderer.
 */
#define SRV_VIEW_MAX_SEGMENTS 4

struct srv_view_segment {
	const uint8_t *bytes;
	uint64_t len;
};

struct srv_rendered {
	uint64_t size; /* the sum of the segments' lengths */
	size_t nseg;
	struct srv_view_segment seg[SRV_VIEW_MAX_SEGMENTS];
	/* called once when the answer is packed (may be NULL); priv is the renderer's */
	void (*release)(void *priv);
	void *priv;
};

/*
 * Renders the open value (its pickle stream is srv_value_bytes(value), borrowed
 * until the answer is packed) in the view named view; segments may point into the
 * stream or into memory owned through priv. Returns 0, or -1 with err filled
 * (ENOTSUP when the view does not apply to this value, EFBIG, ELOOP, ENOENT for a
 * missing part, CORRUPT).
 */
typedef int (*srv_view_render_fn)(struct srv_cache *cache, struct srv_value *value,
                                  enum rpc_view view, struct srv_rendered *out,
                                  struct srv_error *err);

/*
 * The srv_view_render_fn for the views "json", "npy", "txt" and "bin":
 * parses the value's pickle, resolves destructured references through cache (json
 * only: the other views never apply to a container) and fills out. Returns 0, or -1
 * with err filled: ENOTSUP (the view does not apply), EFBIG, ELOOP, ENOENT (a missing
 * part), CORRUPT (a pickle that cannot be decoded), ENOMEM.
 */
int srv_view_render(struct srv_cache *cache, struct srv_value *value, enum rpc_view view,
                    struct srv_rendered *out, struct srv_error *err);


/*
 * How the json emitter follows a fleche.digest.Digest reference of a destructured
 * value: open finds the value of key (64 lowercase hex, already checked) and returns
 * its parsed root in *root and a token for close, or -1 with err filled (ENOENT for a
 * missing part, EFBIG when over a budget, CORRUPT). The root stays valid until close.
 * A NULL resolver makes every reference ENOENT.
 */
struct srv_view_resolver {
	int (*open)(void *ctx, const char *key, const struct pk_node **root, void **token,
	            struct srv_error *err);
	void (*close)(void *ctx, void *token);
	void *ctx;
	/*
	 * Optional: what the value key is as a child of a stored file or folder record
	 * (srv_pathlist_child): SRV_PATHREC_FILE with its size, told without reading the
	 * bytes or counting them against the budget of values read, so that a record of
	 * large files has a json view; anything else is then followed with open. NULL:
	 * every child is followed with open. Returns 0, or -1 with err filled as open.
	 */
	int (*child)(void *ctx, const char *key, enum srv_pathrec_kind *kind, uint64_t *size,
	             struct srv_error *err);
};

/*
 * Appends the json view of the value whose tree is root and whose key is key (NULL
 * when unknown; used to detect a reference back to it and in messages). Returns 0
 * or -1 with err filled; out then holds a partial document.
 */
int srv_view_json(const struct pk_node *root, const char *key, const struct srv_view_resolver *res,
                  struct rpc_buf *out, struct srv_error *err);

/*
 * The bytes of the txt view (root a str) or bin view (bytes or bytearray) as a
 * string of the document (pointing into the pickle when verbatim). Returns 0, or -1
 * with err filled (ENOTSUP naming the value's type). The txt view of the standard
 * types (pystd.h) and enum members is rendered by srv_view_render, not here.
 */
int srv_view_raw(const struct pk_node *root, bool text, const struct pk_str **out,
                 struct srv_error *err);

#endif

/*
 * record.h: builds a struct srv_record from what storage holds: a parsed pickle
 * of fleche.call.DigestedCall / fleche.call.Call (file storage), or the columns and
 * rows of the SQL tables (store_sql.c fills the fields and uses the helpers here).
 * Metadata becomes one msgpack map as PROTOCOL.md section 3 says.
 *
 * Invariants:
 *   1. The msgpack written for metadata is one map nested at most SRV_META_MAX_DEPTH
 *      deep, of at most SRV_META_MAX_BYTES, packed visiting at most
 *      SRV_META_MAX_NODES nodes (shared pickle references cannot blow it up): so a
 *      load response that carries it stays within the wire's nesting limit.
 *   2. Metadata beyond those limits is never cut: the record comes out with an empty
 *      metadata map and metadata_error saying why, the rest of the call whole.
 *   3. Anything else wrong with a record fails the call (CORRUPT) and the record is
 *      released.
 */
#ifndef FLECHEFS_SERVER_RECORD_H
#define FLECHEFS_SERVER_RECORD_H

#include <stddef.h>

#include <msgpack.h>

#include "base.h"
#include "pickle.h"

/* The metadata map sits at depth 3 of a load response (the response, its result
 * map, the map itself): it may nest this deep for the message to stay within
 * RPC_MAX_DEPTH. A metadata value inside a block may so nest 60 deep. */
#define SRV_META_MAX_DEPTH (RPC_MAX_DEPTH - 2)
/* The same for a value inside a block (what messages and documents call the limit). */
#define SRV_META_VALUE_DEPTH (SRV_META_MAX_DEPTH - 2)
#define SRV_META_MAX_BYTES (8u * 1024 * 1024)
#define SRV_META_MAX_NODES 1000000u

/*
 * Fills rec from the pickle root of a call record stored under key (path names the
 * file in messages). On failure rec is released and err says why (CORRUPT, ENOMEM).
 */
int srv_record_from_pickle(const struct pk_node *root, const char *key, const char *path,
                           struct srv_record *rec, struct srv_error *err);

/*
 * Cheap summary of a parsed call record: its name (borrowed from the doc, not
 * NUL-terminated) and metadata.runtime.timestop. Returns 0 when the root is a call.
 */
int srv_record_summary(const struct pk_node *root, const char **name, size_t *namelen,
                       double *timestop, int *has_timestop);

/*
 * Packs a pickle node as a metadata value whose containers start at nesting level
 * depth + 1 (0 for the metadata map itself), taking one from *budget per node visited.
 * Returns 0; -EOVERFLOW when a container would nest deeper than SRV_META_MAX_DEPTH;
 * -EFBIG when the budget runs out or the output passes SRV_META_MAX_BYTES; -ENOMEM
 * when the packer cannot write. What was packed before a failure is garbage.
 */
int srv_record_pack_node(msgpack_packer *pk, const struct pk_node *node, unsigned depth,
                         size_t *budget);

/*
 * Sets rec's metadata to an empty map and rec->metadata_error to the printf message
 * (a record whose metadata cannot be served, invariant 2). Returns 0, or -1 when out
 * of memory (rec untouched but for what it already held).
 */
int srv_record_meta_fail(struct srv_record *rec, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Looks metadata[block][field] up in a msgpack metadata map; 0 and *out when numeric. */
int srv_record_meta_number(const char *meta, size_t len, const char *block, const char *field,
                           double *out);

/*
 * Decodes a metadata buffer (one msgpack object) into *out, allocating from zone;
 * unlike msgpack_unpack it accepts the nesting metadata may have (beyond 32).
 */
int srv_meta_unpack(const char *buf, size_t len, msgpack_zone *zone, msgpack_object *out);

#endif

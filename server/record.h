/*
 * record.h: builds a struct srv_record from what storage holds: a parsed pickle
 * of fleche.call.DigestedCall / fleche.call.Call (file storage), or the columns and
 * rows of the SQL tables (store_sql.c fills the fields and uses the helpers here).
 * Metadata becomes one msgpack map as PROTOCOL.md section 3 says.
 *
 * Invariants: the msgpack written for metadata never nests deeper than
 * SRV_META_MAX_DEPTH and never exceeds SRV_META_MAX_BYTES / SRV_META_MAX_NODES
 * (shared pickle references cannot blow it up); a record either comes out whole or
 * the call fails (CORRUPT) and the record is released.
 */
#ifndef FLECHEFS_SERVER_RECORD_H
#define FLECHEFS_SERVER_RECORD_H

#include <stddef.h>

#include <msgpack.h>

#include "cache.h"
#include "pickle.h"

#define SRV_META_MAX_DEPTH 40
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

/* Packs a pickle node as a metadata value (bounded as the invariants say). */
int srv_record_pack_node(msgpack_packer *pk, const struct pk_node *node, unsigned depth,
                         size_t *budget);

/* Looks metadata[block][field] up in a msgpack metadata map; 0 and *out when numeric. */
int srv_record_meta_number(const char *meta, size_t len, const char *block, const char *field,
                           double *out);

/*
 * Decodes a metadata buffer (one msgpack object) into *out, allocating from zone;
 * unlike msgpack_unpack it accepts the nesting metadata may have (beyond 32).
 */
int srv_meta_unpack(const char *buf, size_t len, msgpack_zone *zone, msgpack_object *out);

/* A malloc'd NUL-terminated copy of s[0..n); NULL when out of memory. */
char *srv_strndup(const char *s, size_t n);

#endif

/*
 * querydir.h: the read-only query/ tree. A directory below query/ is a query whose
 * path is the template, one condition `field=value` per level:
 *
 *   query/name=train/metadata.tags.experiment=baseline/arguments.lr=4d58/
 *
 * lists the keys of the matching calls as symlinks into calls/. Fields:
 *
 *   name=S, module=S              equal to the string S
 *   version=V                     an int when V is an integer, else the str V
 *                                 ("1.0"; a JSON string such as "2" for the str 2)
 *   arguments.PARAM=PREFIX        the argument's value key: a full key, or a prefix of
 *                                 4 or more hex characters unique among all keys
 *   metadata.BLOCK.KEY=V          the metadata entry equals V: a JSON scalar (number,
 *                                 true, false, null, "quoted string"), else the string V
 *
 * A name that is no such field is not there (ENOENT). A known field with a value
 * that cannot be used (a prefix that matches no key or several, bad JSON, a field
 * given twice) is a directory that lists nothing, and the log says why (EINVAL as
 * FUSE can show it).
 */
#ifndef FLECHEFS_FUSEFS_QUERYDIR_H
#define FLECHEFS_FUSEFS_QUERYDIR_H

#include <msgpack.h>
#include <stddef.h>

#include "conn.h"

/* Longest path of a query directory inside the mount ("query/..."). */
#define FSD_QUERY_PATH_MAX 512
/* Most conditions in one query directory path. */
#define FSD_QUERY_CONDS_MAX 16

/* 1 when name ("field=value") names a field of the query tree, else 0. */
int fsd_query_cond_known(const char *name);

/*
 * Packs the template of the conditions in conds (the components of a query
 * directory's path after "query/", separated by '/') into sb (initialised by the
 * caller), resolving argument key prefixes through the server. Returns 0; -EINVAL
 * with the reason in why (the directory then lists nothing); or -errno when the
 * server could not answer.
 */
int fsd_query_template(struct fsd_conn *c, const char *conds, msgpack_sbuffer *sb, char *why,
                       size_t whylen);

#endif

/*
 * query.h: matching call records against a query template (PROTOCOL.md, query):
 * name, module, version, arguments and metadata, all given fields must match;
 * numbers in metadata compare by value (2 equals 2.0), an int never equals a str.
 */
#ifndef FLECHEFS_SERVER_QUERY_H
#define FLECHEFS_SERVER_QUERY_H

#include <stdbool.h>

#include <msgpack.h>

#include "base.h"

/* Checks the template's shape: a map of known fields with the right types (EINVAL). */
int srv_query_check(const msgpack_object *tmpl, struct srv_error *err);

/* The template's "name" when it gives one (borrowed, not NUL-terminated), else NULL. */
const char *srv_query_name(const msgpack_object *tmpl, size_t *len);

/* True when rec matches the (checked) template. */
bool srv_query_match(const msgpack_object *tmpl, const struct srv_record *rec);

/*
 * Offers a loaded record to a query page: when rec matches tmpl it is added (key,
 * and mtime and name when detail). Takes rec (releases it). Returns 1 when the page
 * already held limit entries (the page is marked incomplete and the caller stops),
 * else 0. page->entries must have room for limit entries.
 */
int srv_query_offer(struct srv_page *page, size_t limit, const msgpack_object *tmpl,
		    const char *key, struct srv_record *rec, bool detail);

/* Deep equality of two msgpack values with numbers compared by value. */
bool srv_msgpack_equal(const msgpack_object *a, const msgpack_object *b, unsigned depth);

#endif

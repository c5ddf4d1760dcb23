/*
 * query.h: matching call records against a query template (PROTOCOL.md, query):
 * name, module, version, arguments and metadata, all given fields must match;
 * numbers in metadata compare by value (2 equals 2.0), an int never equals a str.
 */
#ifndef FLECHEFS_SERVER_QUERY_H
#define FLECHEFS_SERVER_QUERY_H

#include <stdbool.h>

#include <msgpack.h>

#include "cache.h"

/* Checks the template's shape: a map of known fields with the right types (EINVAL). */
int srv_query_check(const msgpack_object *tmpl, struct srv_error *err);

/* The template's "name" when it gives one (borrowed, not NUL-terminated), else NULL. */
const char *srv_query_name(const msgpack_object *tmpl, size_t *len);

/* True when rec matches the (checked) template. */
bool srv_query_match(const msgpack_object *tmpl, const struct srv_record *rec);

/* Deep equality of two msgpack values with numbers compared by value. */
bool srv_msgpack_equal(const msgpack_object *a, const msgpack_object *b, unsigned depth);

#endif

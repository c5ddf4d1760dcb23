/*
 * pystd.h: values of the Python standard library's common types found in a pickle
 * tree (pickle.h), read from the arguments their pickles carry, never by running
 * anything: datetime, date, time (with a fixed-offset datetime.timezone, a
 * zoneinfo.ZoneInfo, or none), timedelta, Decimal, Fraction, UUID and pathlib paths as
 * text; range and slice;
 * and str() of those, as Python prints them, for the txt view.
 */
#ifndef FLECHEFS_SERVER_PYSTD_H
#define FLECHEFS_SERVER_PYSTD_H

#include <stdbool.h>

#include "buf.h"
#include "pickle.h"

/*
 * When node is a datetime, date or time (ISO 8601 as isoformat() writes it, with the
 * UTC offset when aware), a Decimal (its str), a Fraction ("3/4", or "2" for a whole
 * number, as str() writes it), a UUID (8-4-4-4-12 lowercase hex) or a pathlib path
 * (its str), sets *tag to its json tag ("$datetime", ...) and appends the text to
 * out; returns 1. A datetime or time whose tzinfo is a zoneinfo.ZoneInfo (whose
 * offset needs the zone's data) is written without an offset and *zone set to the
 * zone's key (a str node); else *zone is NULL. Returns 0 when node is none of those
 * (out untouched) and a negative errno of the buffer when appending fails.
 */
int srv_pystd_text(const struct pk_node *node, const char **tag, struct rpc_buf *out,
                   const struct pk_node **zone);

/*
 * When node is a timedelta (days, seconds, microseconds as ints in their ranges),
 * stores them and returns true.
 */
bool srv_pystd_timedelta(const struct pk_node *node, long long *days, long long *seconds,
                         long long *microseconds);

/*
 * When node is a range, stores start, stop and step and returns true: range(start,
 * stop, step) of three ints (as pickle writes it), or dill's _eval_repr of the text
 * "range(start, stop[, step])" with ints of at most 18 digits (read as text, never
 * evaluated).
 */
bool srv_pystd_range(const struct pk_node *node, long long r[3]);

/*
 * Appends str(node) for the types of srv_pystd_text (a datetime with a space between
 * date and time), timedelta ("1 day, 0:00:01"), range ("range(0, 5)") and slice of
 * ints and None ("slice(1, None, None)"); returns 1, 0 when node is none of those,
 * or a negative errno of the buffer.
 */
int srv_pystd_str(const struct pk_node *node, struct rpc_buf *out);

#endif

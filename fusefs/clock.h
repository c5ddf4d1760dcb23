/*
 * clock.h: the daemon's one clock for deadlines, timeouts and rates: the monotonic
 * clock, which no change of the wall clock moves.
 */
#ifndef FLECHEFS_FUSEFS_CLOCK_H
#define FLECHEFS_FUSEFS_CLOCK_H

#include <stdint.h>

/* Milliseconds on the monotonic clock (from an unspecified start, never negative). */
int64_t fsd_now_ms(void);

/* Microseconds on the same clock. */
int64_t fsd_now_us(void);

#endif

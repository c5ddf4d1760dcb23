/*
 * clock.c: the monotonic clock of clock.h.
 */
#include <time.h>

#include "clock.h"

int64_t fsd_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t fsd_now_ms(void)
{
	return fsd_now_us() / 1000;
}

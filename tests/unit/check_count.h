/*
 * check_count.h: assertions for unit tests that run every check and report at the
 * end (the cache and view tests): CHECK(cond, fmt, ...) counts the check, and on
 * failure counts it in `failures` and prints "FAIL file:line: cond: message". The
 * test ends with `failures ? 1 : 0`.
 */
#ifndef FLECHEFS_TESTS_CHECK_COUNT_H
#define FLECHEFS_TESTS_CHECK_COUNT_H

#include <stdio.h>

static int failures, checks;

#define CHECK(cond, ...)                                                                           \
	do {                                                                                       \
		checks++;                                                                          \
		if (!(cond)) {                                                                     \
			failures++;                                                                \
			printf("FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                     \
			printf(__VA_ARGS__);                                                       \
			printf("\n");                                                              \
		}                                                                                  \
	} while (0)

#endif

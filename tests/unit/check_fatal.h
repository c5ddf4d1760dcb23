/*
 * check_fatal.h: assertions for unit tests that stop at the first failure (the rpc
 * tests, whose later checks build on earlier ones): CHECK, CHECK_EQ (as long long)
 * and CHECK_STR print file:line and what differed, then exit 1. `checks` counts them
 * for the test's closing line.
 */
#ifndef FLECHEFS_TESTS_CHECK_FATAL_H
#define FLECHEFS_TESTS_CHECK_FATAL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int checks;

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		checks++;                                                                          \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);   \
			exit(1);                                                                   \
		}                                                                                  \
	} while (0)

#define CHECK_EQ(a, b)                                                                             \
	do {                                                                                       \
		long long check_a = (long long)(a), check_b = (long long)(b);                      \
		checks++;                                                                          \
		if (check_a != check_b) {                                                          \
			fprintf(stderr, "%s:%d: check failed: %s == %s (%lld != %lld)\n",          \
			        __FILE__, __LINE__, #a, #b, check_a, check_b);                     \
			exit(1);                                                                   \
		}                                                                                  \
	} while (0)

#define CHECK_STR(got, want)                                                                       \
	do {                                                                                       \
		const char *check_g = (got), *check_w = (want);                                    \
		checks++;                                                                          \
		if (strcmp(check_g, check_w) != 0) {                                               \
			fprintf(stderr, "%s:%d: got '%s', want '%s'\n", __FILE__, __LINE__,        \
			        check_g, check_w);                                                 \
			exit(1);                                                                   \
		}                                                                                  \
	} while (0)

#endif

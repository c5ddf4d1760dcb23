/*
 * check.h: the assertions of the C unit tests. Every check is counted in `checks`;
 * a failed one is counted in `failures` and prints
 *	FAIL file:line: condition: message
 * on standard error (the message, printf-style, is optional). A test whose later
 * checks build on earlier ones defines CHECK_STOP_AT_FIRST before including this
 * file: the first failure then exits 1. main ends with `return check_report(NAME);`.
 */
#ifndef FLECHEFS_TESTS_CHECK_H
#define FLECHEFS_TESTS_CHECK_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures, checks;

/* Reports a failed check; fmt starts with a space (the message, maybe empty). */
__attribute__((format(printf, 4, 5), unused)) static void check_failed(const char *file, int line,
                                                                      const char *cond,
                                                                      const char *fmt, ...)
{
	va_list ap;
	failures++;
	fprintf(stderr, "FAIL %s:%d: %s:", file, line, cond);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
#ifdef CHECK_STOP_AT_FIRST
	exit(1);
#endif
}

#define CHECK(cond, ...)                                                                           \
	do {                                                                                       \
		checks++;                                                                          \
		if (!(cond))                                                                       \
			check_failed(__FILE__, __LINE__, #cond, " " __VA_ARGS__);                  \
	} while (0)

#define CHECK_EQ(a, b)                                                                             \
	do {                                                                                       \
		long long check_a = (long long)(a), check_b = (long long)(b);                      \
		checks++;                                                                          \
		if (check_a != check_b)                                                            \
			check_failed(__FILE__, __LINE__, #a " == " #b, " %lld != %lld", check_a,  \
			             check_b);                                                     \
	} while (0)

/* got may be NULL (a failure); want may not. */
#define CHECK_STR(got, want)                                                                       \
	do {                                                                                       \
		const char *check_g = (got), *check_w = (want);                                    \
		checks++;                                                                          \
		if (!check_g || strcmp(check_g, check_w) != 0)                                     \
			check_failed(__FILE__, __LINE__, #got, " got '%s', want '%s'",             \
			             check_g ? check_g : "(null)", check_w);                       \
	} while (0)

/* Prints the closing line of test `name`; returns its exit status. */
__attribute__((unused)) static int check_report(const char *name)
{
	if (failures)
		fprintf(stderr, "%s: %d of %d checks failed\n", name, failures, checks);
	else
		printf("%s: %d checks passed\n", name, checks);
	return failures ? 1 : 0;
}

#endif

/*
 * test_textcache.c: the json view's text cache (server/textcache.c) stays within its
 * bounds when it holds many small texts, as a walk of every call leaves it: at most
 * SRV_TEXTCACHE_ENTRIES entries (the oldest go first), each entry's own overhead
 * counted in SRV_TEXTCACHE_BYTES; every linked text is found again, and a text
 * rendered again for the same id replaces the older one.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "textcache.h"
#include "check.h"

static char *text(const char *s)
{
	char *p = strdup(s);
	if (!p)
		abort();
	return p;
}

static void put(struct srv_textcache *tc, const char *id, const char *s)
{
	srv_textcache_unref(tc, srv_textcache_put(tc, id, 1, 1.0, text(s), strlen(s)));
}

static int present(struct srv_textcache *tc, const char *id)
{
	struct srv_text *t = srv_textcache_get(tc, id, 1, 1.0);
	srv_textcache_unref(tc, t);
	return t != NULL;
}

int main(void)
{
	struct srv_textcache tc;
	char id[64];
	size_t n = SRV_TEXTCACHE_ENTRIES + 10;

	srv_textcache_init(&tc);
	for (size_t k = 0; k < n; k++) {
		snprintf(id, sizeof(id), "values/%zu", k);
		put(&tc, id, "1");
	}
	CHECK(tc.count == SRV_TEXTCACHE_ENTRIES, "%zu entries linked", tc.count);
	CHECK(!present(&tc, "values/0"), "the oldest text is gone");
	CHECK(!present(&tc, "values/9"), "the tenth oldest is gone");
	CHECK(present(&tc, "values/10"), "the oldest text kept is found");
	snprintf(id, sizeof(id), "values/%zu", n - 1);
	CHECK(present(&tc, id), "the newest text is found");
	CHECK(tc.bytes <= SRV_TEXTCACHE_BYTES &&
	          tc.bytes >= tc.count * (sizeof(struct srv_text) + strlen("values/0")),
	      "the cost counts each entry's overhead: %zu bytes", tc.bytes);

	/* the same id again: one entry, the newer text */
	put(&tc, "values/10", "22");
	struct srv_text *t = srv_textcache_get(&tc, "values/10", 1, 1.0);
	CHECK(t && t->len == 2 && memcmp(t->data, "22", 2) == 0, "the newer text");
	srv_textcache_unref(&tc, t);
	CHECK(tc.count == SRV_TEXTCACHE_ENTRIES, "still %zu entries", tc.count);

	srv_textcache_release(&tc);
	return check_report("test_textcache");
}

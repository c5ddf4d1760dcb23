/*
 * stack.c: the reads of a stack of caches (stack.h) on top of each layer's own
 * srv_* functions.
 *
 * Invariants:
 *   1. A page of the stack holds the `limit` smallest keys after `after` of the union
 *      of the layers: each layer is asked for its `limit` smallest, which include the
 *      union's; it is complete only when every layer's page was and nothing was cut.
 *   2. A key found in several layers is reported once, with the first layer's details.
 *   3. A miss (ENOENT) in a layer moves on to the next; any other error ends the
 *      operation with that error, as fleche lets anything but a KeyError through.
 */
#include "stack.h"

#include <stdlib.h>
#include <string.h>

/* One entry of a layer's page, for the merge. */
struct ref {
	struct srv_entry *entry;
	size_t layer;
};

static int cmp_ref(const void *a, const void *b)
{
	const struct ref *x = a, *y = b;
	int c = strcmp(x->entry->key, y->entry->key);

	if (c)
		return c;
	return x->layer < y->layer ? -1 : x->layer > y->layer;
}

/* Merges the layers' pages into out (taking their names). */
static int merge_pages(struct srv_page *pages, size_t n, size_t limit, struct srv_page *out,
		       struct srv_error *err)
{
	size_t total = 0, k = 0;
	bool complete = true;
	struct ref *refs;

	for (size_t i = 0; i < n; i++) {
		total += pages[i].n;
		complete = complete && pages[i].complete;
	}
	refs = calloc(total ? total : 1, sizeof(*refs));
	out->entries = calloc(total ? total : 1, sizeof(*out->entries));
	if (!refs || !out->entries) {
		free(refs);
		free(out->entries);
		out->entries = NULL;
		return srv_fail(err, RPC_E_ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < pages[i].n; j++)
			refs[k++] = (struct ref){&pages[i].entries[j], i};
	qsort(refs, total, sizeof(*refs), cmp_ref);
	out->n = 0;
	for (size_t i = 0; i < total; i++) {
		if (out->n && strcmp(out->entries[out->n - 1].key, refs[i].entry->key) == 0)
			continue;
		if (out->n == limit) {
			complete = false;
			break;
		}
		out->entries[out->n] = *refs[i].entry;
		refs[i].entry->name = NULL; /* moved */
		out->n++;
	}
	out->complete = complete;
	free(refs);
	return 0;
}

typedef int (*page_fn)(struct srv_cache *c, const void *arg, const char *after, size_t limit,
		       bool detail, struct srv_page *page, struct srv_error *err);

static int paged(const struct srv_stack *s, page_fn fn, const void *arg, const char *after,
		 size_t limit, bool detail, struct srv_page *out, struct srv_error *err)
{
	struct srv_page pages[SRV_STACK_MAX];
	size_t got = 0;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	memset(pages, 0, sizeof(pages));
	if (limit > RPC_PAGE_MAX)
		limit = RPC_PAGE_MAX;
	for (; got < s->n; got++)
		if (fn(s->layers[got], arg, after, limit, detail, &pages[got], err) < 0)
			goto out;
	rc = merge_pages(pages, s->n, limit, out, err);
out:
	for (size_t i = 0; i < got; i++)
		srv_page_release(&pages[i]);
	return rc;
}

static int list_one(struct srv_cache *c, const void *arg, const char *after, size_t limit,
		    bool detail, struct srv_page *page, struct srv_error *err)
{
	return srv_layer_list(c, *(const enum srv_kind *)arg, after, limit, detail, page, err);
}

static int query_one(struct srv_cache *c, const void *arg, const char *after, size_t limit,
		     bool detail, struct srv_page *page, struct srv_error *err)
{
	return srv_layer_query(c, arg, after, limit, detail, page, err);
}

int srv_stack_list(const struct srv_stack *s, enum srv_kind kind, const char *after,
		   size_t limit, bool detail, struct srv_page *page, struct srv_error *err)
{
	return paged(s, list_one, &kind, after, limit, detail, page, err);
}

int srv_stack_query(const struct srv_stack *s, const msgpack_object *tmpl, const char *after,
		    size_t limit, bool detail, struct srv_page *page, struct srv_error *err)
{
	return paged(s, query_one, tmpl, after, limit, detail, page, err);
}

/* The size of the union of the layers' keys of one kind, walked page by page. */
static int count_kind(const struct srv_stack *s, enum srv_kind kind, uint64_t *n,
		      struct srv_error *err)
{
	char after[RPC_KEY_LEN + 1];
	bool started = false;

	*n = 0;
	for (;;) {
		struct srv_page page;
		bool done;
		if (srv_stack_list(s, kind, started ? after : NULL, RPC_PAGE_MAX, false, &page,
		                   err) < 0)
			return -1;
		*n += page.n;
		if (page.n) {
			memcpy(after, page.entries[page.n - 1].key, RPC_KEY_LEN + 1);
			started = true;
		}
		done = page.complete || page.n == 0;
		srv_page_release(&page);
		if (done)
			return 0;
	}
}

int srv_stack_count(const struct srv_stack *s, uint64_t *calls, uint64_t *values,
		    struct srv_error *err)
{
	if (count_kind(s, SRV_CALLS, calls, err) < 0)
		return -1;
	return count_kind(s, SRV_VALUES, values, err);
}

int srv_stack_size(const struct srv_stack *s, uint64_t *bytes, struct srv_error *err)
{
	*bytes = 0;
	for (size_t i = 0; i < s->n; i++) {
		uint64_t b;
		if (srv_layer_size(s->layers[i], &b, err) < 0)
			return -1;
		*bytes += b;
	}
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int srv_stack_names(const struct srv_stack *s, const char *after, size_t limit,
		    struct srv_names *out, struct srv_error *err)
{
	struct srv_names parts[SRV_STACK_MAX];
	size_t got = 0, total = 0, k = 0;
	bool complete = true;
	char **all = NULL;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	memset(parts, 0, sizeof(parts));
	if (limit > RPC_PAGE_MAX)
		limit = RPC_PAGE_MAX;
	for (; got < s->n; got++) {
		if (srv_layer_names(s->layers[got], after, limit, &parts[got], err) < 0)
			goto out;
		total += parts[got].n;
		complete = complete && parts[got].complete;
	}
	all = calloc(total ? total : 1, sizeof(*all));
	out->names = calloc(total ? total : 1, sizeof(*out->names));
	if (!all || !out->names) {
		srv_fail(err, RPC_E_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < s->n; i++)
		for (size_t j = 0; j < parts[i].n; j++)
			all[k++] = parts[i].names[j];
	qsort(all, total, sizeof(*all), cmp_str);
	for (size_t i = 0; i < total; i++) {
		if (out->n && strcmp(out->names[out->n - 1], all[i]) == 0)
			continue;
		if (out->n == limit) {
			complete = false;
			break;
		}
		out->names[out->n] = strdup(all[i]);
		if (!out->names[out->n]) {
			srv_fail(err, RPC_E_ENOMEM, "out of memory");
			goto out;
		}
		out->n++;
	}
	out->complete = complete;
	rc = 0;
out:
	if (rc < 0)
		srv_names_release(out);
	free(all);
	for (size_t i = 0; i < got; i++)
		srv_names_release(&parts[i]);
	return rc;
}

int srv_stack_load(const struct srv_stack *s, const char *key, size_t len, struct srv_record *rec,
		   struct srv_error *err)
{
	for (size_t i = 0; i < s->n; i++) {
		if (srv_layer_load(s->layers[i], key, len, rec, err) == 0)
			return 0;
		if (err->code != RPC_E_ENOENT)
			return -1;
	}
	return srv_fail(err, RPC_E_ENOENT, "no call '%.*s' in any of the %zu layers", (int)len,
	                key, s->n);
}

int srv_stack_contains(const struct srv_stack *s, const char *key, size_t len, bool *found,
		       struct srv_error *err)
{
	*found = false;
	for (size_t i = 0; i < s->n && !*found; i++)
		if (srv_layer_contains(s->layers[i], key, len, found, err) < 0)
			return -1;
	return 0;
}

static int cmp_key(const void *a, const void *b)
{
	return strcmp(a, b);
}

int srv_stack_expand(const struct srv_stack *s, const char *prefix, size_t len, char *out,
		     struct srv_error *err)
{
	char keys[SRV_STACK_MAX][RPC_KEY_LEN + 1];
	size_t n = 0;

	for (size_t i = 0; i < s->n && i < SRV_STACK_MAX; i++) {
		if (srv_layer_expand(s->layers[i], prefix, len, keys[n], err) < 0) {
			if (err->code != RPC_E_ENOENT)
				return -1;
			continue;
		}
		bool seen = false;
		for (size_t j = 0; j < n && !seen; j++)
			seen = strcmp(keys[j], keys[n]) == 0;
		if (!seen)
			n++;
	}
	if (n == 0)
		return srv_fail(err, RPC_E_ENOENT, "no key starts with '%.*s'", (int)len, prefix);
	if (n > 1) {
		qsort(keys, n, sizeof(keys[0]), cmp_key);
		unsigned need = 0;
		for (size_t i = 1; i < n; i++) {
			unsigned cmn = 0;
			while (cmn < RPC_KEY_LEN && keys[i - 1][cmn] == keys[i][cmn])
				cmn++;
			if (cmn + 1 > need)
				need = cmn + 1;
		}
		srv_fail(err, RPC_E_AMBIGUOUS,
		         "prefix '%.*s' is ambiguous among the layers' keys: it matches %zu; need "
		         "at least %u characters",
		         (int)len, prefix, n, need);
		err->needed = need;
		for (size_t i = 0; i < n; i++)
			memcpy(err->candidates[i], keys[i], RPC_KEY_LEN + 1);
		err->ncandidates = n;
		return -1;
	}
	memcpy(out, keys[0], RPC_KEY_LEN + 1);
	return 0;
}

int srv_stack_shrink(const struct srv_stack *s, const char *key, size_t len, char *out,
		     struct srv_error *err)
{
	char best[RPC_KEY_LEN + 1] = "", mine[RPC_KEY_LEN + 1];

	for (size_t i = 0; i < s->n; i++) {
		if (srv_layer_shrink(s->layers[i], key, len, mine, err) < 0) {
			if (err->code != RPC_E_ENOENT)
				return -1;
			continue;
		}
		if (strlen(mine) > strlen(best))
			memcpy(best, mine, sizeof(best));
	}
	if (!best[0])
		return srv_fail(err, RPC_E_ENOENT, "no key '%.*s' in any layer", (int)len, key);
	memcpy(out, best, sizeof(best));
	return 0;
}

int srv_stack_evict(const struct srv_stack *s, const char *key, size_t len,
		    struct srv_error *err)
{
	struct srv_error first;
	bool evicted = false, missed = false;

	memset(&first, 0, sizeof(first));
	for (size_t i = 0; i < s->n; i++) {
		if (srv_layer_evict(s->layers[i], key, len, err) == 0) {
			evicted = true;
			continue;
		}
		/* fleche's stack passes over layers that refuse or lack the call */
		if (err->code != RPC_E_ENOENT && err->code != RPC_E_EROFS)
			return -1;
		if (!missed)
			first = *err;
		missed = true;
	}
	if (evicted)
		return 0;
	*err = first;
	return -1;
}

int srv_stack_value_open(const struct srv_stack *s, const char *key, size_t len,
			 struct srv_value **out, struct srv_error *err)
{
	for (size_t i = 0; i < s->n; i++) {
		if (srv_layer_value_open(s->layers[i], key, len, out, err) == 0)
			return 0;
		if (err->code != RPC_E_ENOENT)
			return -1;
	}
	return srv_fail(err, RPC_E_ENOENT, "no value '%.*s' in any of the %zu layers", (int)len,
	                key, s->n);
}

/* ---- the cache API (cache.h): a stack, or one layer ---- */

int srv_count(struct srv_cache *c, uint64_t *calls, uint64_t *values, struct srv_error *err)
{
	const struct srv_stack *s = srv_cache_stack_of(c);

	if (s)
		return srv_stack_count(s, calls, values, err);
	return srv_layer_count(c, calls, values, err);
}

int srv_cache_size(struct srv_cache *c, uint64_t *bytes, struct srv_error *err)
{
	const struct srv_stack *s = srv_cache_stack_of(c);

	if (s)
		return srv_stack_size(s, bytes, err);
	return srv_layer_size(c, bytes, err);
}

int srv_load(struct srv_cache *c, const char *key, size_t len, struct srv_record *rec,
             struct srv_error *err)
{
	const struct srv_stack *s = srv_cache_stack_of(c);

	if (s)
		return srv_stack_load(s, key, len, rec, err);
	return srv_layer_load(c, key, len, rec, err);
}

int srv_contains(struct srv_cache *c, const char *key, size_t len, bool *found,
                 struct srv_error *err)
{
	const struct srv_stack *s = srv_cache_stack_of(c);

	if (s)
		return srv_stack_contains(s, key, len, found, err);
	return srv_layer_contains(c, key, len, found, err);
}

int srv_expand(struct srv_cache *c, const char *prefix, size_t len, char *out,
               struct srv_error *err)
{
	const struct srv_stack *s = srv_cache_stack_of(c);

	if (s)
		return srv_stack_expand(s, prefix, len, out, err);
	return srv_layer_expand(c, prefix, len, out, err);
}

int srv_shrink(struct srv_cache *c, const char *key, size_t len, char *out, struct srv_error *err)
{
	const struct srv_stack *s = srv_cache_stack_of(c);

	if (s)
		return srv_stack_shrink(s, key, len, out, err);
	return srv_layer_shrink(c, key, len, out, err);
}

int srv_evict(struct srv_cache *c, const char *key, size_t len, struct srv_error *err)
{
	const struct srv_stack *s = srv_cache_stack_of(c);

	if (s)
		return srv_stack_evict(s, key, len, err);
	return srv_layer_evict(c, key, len, err);
}

int srv_list(struct srv_cache *c, enum srv_kind kind, const char *after, size_t limit, bool detail,
             struct srv_page *page, struct srv_error *err)
{
	const struct srv_stack *s = srv_cache_stack_of(c);

	if (s)
		return srv_stack_list(s, kind, after, limit, detail, page, err);
	return srv_layer_list(c, kind, after, limit, detail, page, err);
}

int srv_query(struct srv_cache *c, const msgpack_object *tmpl, const char *after, size_t limit,
              bool detail, struct srv_page *page, struct srv_error *err)
{
	const struct srv_stack *s = srv_cache_stack_of(c);

	if (s)
		return srv_stack_query(s, tmpl, after, limit, detail, page, err);
	return srv_layer_query(c, tmpl, after, limit, detail, page, err);
}

int srv_names(struct srv_cache *c, const char *after, size_t limit, struct srv_names *out,
              struct srv_error *err)
{
	const struct srv_stack *s = srv_cache_stack_of(c);

	if (s)
		return srv_stack_names(s, after, limit, out, err);
	return srv_layer_names(c, after, limit, out, err);
}

int srv_value_open(struct srv_cache *c, const char *key, size_t len, struct srv_value **out,
                   struct srv_error *err)
{
	const struct srv_stack *s = srv_cache_stack_of(c);

	if (s)
		return srv_stack_value_open(s, key, len, out, err);
	return srv_layer_value_open(c, key, len, out, err);
}

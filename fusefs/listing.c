/*
 * listing.c: the directory listings (listing.h): pages of list, names and query
 * answers appended by a filling thread while readers wait for the entries they need.
 */
#include <errno.h>
#include <stdatomic.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "listing.h"
#include "log.h"
#include "msg.h"
#include "client.h"
#include "rpc.h"
#include "workers.h"

static struct fsd_listing **slot_of(struct fsd_listings *ls, const char *kind);
static struct fsd_listing *listing_ref(struct fsd_listing *l);

/*
 * A listing of calls/, values/, by-name/ or by-name/<f>/, filled page by page. A
 * producer (a thread of its own for the cached listings) appends pages under m
 * and signals cv; readers copy entries out under m and wait for the entry they
 * need until done. Entries never change once appended; n only grows.
 */
struct fsd_listing {
	atomic_int refs;
	uint64_t fetched_ms; /* when the first page was asked for */
	pthread_mutex_t m;
	pthread_cond_t cv;
	int done; /* every page is in, or fetching failed */
	int err;  /* positive errno when fetching failed */
	size_t n, cap;
	char (*keys)[RPC_KEY_LEN + 1]; /* calls, values, function entries; NULL for names */
	char **strs;      /* names (function names) */
	double *mtime;
	int64_t *size;   /* -1: unknown */
	uint64_t *stamp; /* 0: unknown */
	/* what to fetch */
	struct fsd_listings *ls;
	char kind[8]; /* "calls", "values", "names", or "" for a query */
	char *func;   /* a query: the function name (by-name/), or what tmpl is for logs */
	char *tmpl;   /* a query/ directory's template (msgpack), or NULL */
	size_t tmpl_len;
};

void fsd_listing_unref(struct fsd_listing *l)
{
	if (!l || atomic_fetch_sub_explicit(&l->refs, 1, memory_order_acq_rel) != 1)
		return;
	for (size_t i = 0; l->strs && i < l->n; i++)
		free(l->strs[i]);
	free(l->strs);
	free(l->keys);
	free(l->mtime);
	free(l->size);
	free(l->stamp);
	free(l->func);
	free(l->tmpl);
	pthread_cond_destroy(&l->cv);
	pthread_mutex_destroy(&l->m);
	free(l);
}

struct fsd_listing *fsd_listing_ref(struct fsd_listing *l)
{
	return listing_ref(l);
}

static struct fsd_listing *listing_ref(struct fsd_listing *l)
{
	if (l)
		atomic_fetch_add_explicit(&l->refs, 1, memory_order_relaxed);
	return l;
}

static int listing_grow(struct fsd_listing *l, size_t more, int names)
{
	if (l->n + more <= l->cap)
		return 0;
	size_t cap = l->cap ? l->cap : 1024;
	while (cap < l->n + more)
		cap *= 2;
	if (names) {
		char **s = realloc(l->strs, cap * sizeof(*s));
		if (!s)
			return -ENOMEM;
		l->strs = s;
	} else {
		char(*k)[RPC_KEY_LEN + 1] = realloc(l->keys, cap * sizeof(*k));
		if (!k)
			return -ENOMEM;
		l->keys = k;
		double *m = realloc(l->mtime, cap * sizeof(*m));
		if (!m)
			return -ENOMEM;
		l->mtime = m;
		int64_t *z = realloc(l->size, cap * sizeof(*z));
		if (!z)
			return -ENOMEM;
		l->size = z;
		uint64_t *st = realloc(l->stamp, cap * sizeof(*st));
		if (!st)
			return -ENOMEM;
		l->stamp = st;
	}
	l->cap = cap;
	return 0;
}

/* Appends one page of a list/query/names answer. Sets *complete and *last. */
/* Keeps the usable names of a page of names (a file name: no '/', NUL, "." or ".."). */
static int listing_add_names(struct fsd_listing *l, const struct rpc_names_page *pg,
                             const char **last, size_t *lastlen)
{
	if (listing_grow(l, pg->n, 1))
		return -ENOMEM;
	*last = NULL;
	for (uint32_t i = 0; i < pg->n; i++) {
		const char *s;
		size_t n;
		rpc_names_entry(pg, i, &s, &n);
		*last = s;
		*lastlen = n;
		if (!n || memchr(s, '/', n) || memchr(s, 0, n) || n > 255 ||
		    (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
			continue;
		l->strs[l->n] = strndup(s, n);
		if (!l->strs[l->n])
			return -ENOMEM;
		l->n++;
	}
	return 0;
}

/* Keeps the keys of a page of list or query, with their detail. */
static int listing_add_keys(struct fsd_listing *l, const struct rpc_page *pg, const char **last,
                            size_t *lastlen)
{
	if (listing_grow(l, pg->n, 0))
		return -ENOMEM;
	*last = NULL;
	for (uint32_t i = 0; i < pg->n; i++) {
		struct rpc_page_entry e;
		rpc_page_entry(pg, i, &e);
		*last = e.key;
		*lastlen = e.key_len;
		if (!e.is_key)
			continue;
		memcpy(l->keys[l->n], e.key, RPC_KEY_LEN);
		l->keys[l->n][RPC_KEY_LEN] = 0;
		l->mtime[l->n] = e.mtime;
		l->size[l->n] = e.size;
		l->stamp[l->n] = e.stamp;
		l->n++;
	}
	return 0;
}

static struct fsd_listing *listing_new(struct fsd_listings *ls, const char *kind, const char *func)
{
	struct fsd_listing *l = calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	if (func && !(l->func = strdup(func))) {
		free(l);
		return NULL;
	}
	l->refs = 1;
	l->ls = ls;
	snprintf(l->kind, sizeof(l->kind), "%s", kind ? kind : "");
	pthread_mutex_init(&l->m, NULL);
	pthread_cond_init(&l->cv, NULL);
	l->fetched_ms = fsd_now_ms();
	return l;
}

/* Fetches every page into l (list, names or query); marks it done. Returns 0 or
 * -errno. */
static int listing_fill(struct fsd_listing *l)
{
	struct fsd_listings *ls = l->ls;
	char after[300] = "";
	int names = strcmp(l->kind, "names") == 0;
	const char *what = l->func ? l->func : l->kind;
	int rc = 0, complete = 0;

	while (!complete) {
		struct fsd_result r;
		const char *a = after[0] ? after : NULL;
		struct rpc_page pg;
		struct rpc_names_page npg;
		if (names)
			rc = fsd_rpc_names(ls->conn, a, ls->page, &r, &npg);
		else if (l->tmpl)
			rc = fsd_rpc_query_template(ls->conn, l->tmpl, l->tmpl_len, a, ls->page,
			                            true, &r, &pg);
		else if (l->func)
			rc = fsd_rpc_query_name(ls->conn, l->func, a, ls->page, true, &r, &pg);
		else
			rc = fsd_rpc_list(ls->conn,
			                  strcmp(l->kind, "calls") == 0 ? RPC_KIND_CALLS
			                                                : RPC_KIND_VALUES,
			                  a, ls->page, true, &r, &pg);
		if (rc) {
			fsd_log(FSD_LOG_WARN, "cannot list %s: %s", what, r.message);
			rc = -(r.err == ETIMEDOUT ? EIO : r.err);
			fsd_result_release(&r);
			break;
		}
		const char *last = NULL;
		size_t lastlen = 0;
		pthread_mutex_lock(&l->m);
		size_t before = l->n;
		complete = names ? npg.complete : pg.complete;
		rc = names ? listing_add_names(l, &npg, &last, &lastlen)
		           : listing_add_keys(l, &pg, &last, &lastlen);
		if (!rc && !complete && (!last || lastlen >= sizeof(after)))
			rc = -EPROTO; /* an incomplete empty page: would loop forever */
		/* Pages ascend: a page ending at or before the previous one (a server that
		 * ignores `after`) would be asked for again and again, without end. */
		size_t alen = strlen(after);
		if (!rc && !complete && alen &&
		    (memcmp(last, after, lastlen < alen ? lastlen : alen) < 0 ||
		     (memcmp(last, after, lastlen < alen ? lastlen : alen) == 0 &&
		      lastlen <= alen)))
			rc = -EPROTO;
		if (!rc && last)
			snprintf(after, sizeof(after), "%.*s", (int)lastlen, last);
		if (l->n != before)
			pthread_cond_broadcast(&l->cv);
		pthread_mutex_unlock(&l->m);
		fsd_result_release(&r);
		if (rc) {
			fsd_log(FSD_LOG_WARN, "bad answer listing %s", what);
			rc = rc == -ENOMEM ? -ENOMEM : -EIO;
			break;
		}
	}
	pthread_mutex_lock(&l->m);
	l->done = 1;
	l->err = -rc;
	pthread_cond_broadcast(&l->cv);
	pthread_mutex_unlock(&l->m);
	return rc;
}

/* A worker (workers.h) filling listing l; owns one reference. */
static void listing_main(void *arg)
{
	struct fsd_listing *l = arg;
	listing_fill(l);
	fsd_listing_unref(l);
}

/* Fills the new query listing l whole; *out, or the reference dropped. */
static int query_fill(struct fsd_listing *l, struct fsd_listing **out)
{
	int rc = listing_fill(l);
	if (rc) {
		fsd_listing_unref(l);
		return rc;
	}
	*out = l;
	return 0;
}

int fsd_listing_query(struct fsd_listings *ls, const char *func, struct fsd_listing **out)
{
	struct fsd_listing *l = listing_new(ls, NULL, func);
	if (!l)
		return -ENOMEM;
	return query_fill(l, out);
}

int fsd_listing_template(struct fsd_listings *ls, const char *tmpl, size_t len, const char *what,
                         struct fsd_listing **out)
{
	struct fsd_listing *l = listing_new(ls, NULL, what);
	if (!l)
		return -ENOMEM;
	if (!(l->tmpl = malloc(len ? len : 1))) {
		fsd_listing_unref(l);
		return -ENOMEM;
	}
	memcpy(l->tmpl, tmpl, len);
	l->tmpl_len = len;
	return query_fill(l, out);
}

static int listing_fresh(struct fsd_listings *ls, struct fsd_listing *l)
{
	if (!l)
		return 0;
	pthread_mutex_lock(&l->m);
	int failed = l->err != 0;
	pthread_mutex_unlock(&l->m);
	return !failed && fsd_now_ms() - l->fetched_ms < (uint64_t)(ls->cache_timeout * 1000);
}

/*
 * The cached listing of calls/values/names: one reference. A stale one is replaced
 * by a new listing that a thread fills while readers already read its first pages,
 * so that a large directory's pages arrive while ls is busy with the first ones.
 * Waits for the first page; returns -errno when that fails.
 */
int fsd_listings_get(struct fsd_listings *ls, const char *kind, struct fsd_listing **out)
{
	struct fsd_listing **slot = slot_of(ls, kind);
	struct fsd_listing *l;
	pthread_mutex_lock(&ls->lock);
	if (listing_fresh(ls, *slot)) {
		l = listing_ref(*slot);
	} else {
		l = listing_new(ls, kind, NULL);
		if (!l) {
			pthread_mutex_unlock(&ls->lock);
			return -ENOMEM;
		}
		fsd_listing_unref(*slot);
		*slot = listing_ref(l);
		listing_ref(l); /* the producer's */
		if (fsd_workers_start(ls->workers, listing_main, l) != 0) {
			pthread_mutex_unlock(&ls->lock);
			listing_fill(l);
			fsd_listing_unref(l);
			pthread_mutex_lock(&ls->lock);
		}
	}
	pthread_mutex_unlock(&ls->lock);
	pthread_mutex_lock(&l->m);
	while (!l->done && l->n == 0)
		pthread_cond_wait(&l->cv, &l->m);
	int err = l->n == 0 ? l->err : 0;
	pthread_mutex_unlock(&l->m);
	if (err) {
		fsd_listing_unref(l);
		return -err;
	}
	*out = l;
	return 0;
}

/* Copies entry k (< l->n) into it. Caller holds l->m. */
static void item_copy(const struct fsd_listing *l, size_t k, struct fsd_list_item *it)
{
	if (l->keys) {
		memcpy(it->name, l->keys[k], 65);
		it->mtime = l->mtime[k];
		it->size = l->size[k];
		it->stamp = l->stamp[k];
	} else {
		snprintf(it->name, sizeof(it->name), "%s", l->strs[k]);
		it->mtime = 0;
		it->size = -1;
		it->stamp = 0;
	}
	it->fetched_ms = l->fetched_ms;
}

/*
 * Copies entry k of a listing into it, waiting for its page. Returns 0, 1 past the
 * end, or -errno when fetching failed before entry k.
 */
int fsd_listing_item(struct fsd_listing *l, size_t k, struct fsd_list_item *it)
{
	int rc;
	pthread_mutex_lock(&l->m);
	while (!l->done && l->n <= k)
		pthread_cond_wait(&l->cv, &l->m);
	if (k < l->n) {
		item_copy(l, k, it);
		rc = 0;
	} else {
		rc = l->err ? -l->err : 1;
	}
	pthread_mutex_unlock(&l->m);
	return rc;
}

static struct fsd_listing **slot_of(struct fsd_listings *ls, const char *kind)
{
	return strcmp(kind, "calls") == 0    ? &ls->calls
	       : strcmp(kind, "values") == 0 ? &ls->values
	                                     : &ls->names;
}

struct fsd_listing *fsd_listings_fresh(struct fsd_listings *ls, const char *kind)
{
	struct fsd_listing **slot = slot_of(ls, kind);
	pthread_mutex_lock(&ls->lock);
	struct fsd_listing *l = listing_fresh(ls, *slot) ? listing_ref(*slot) : NULL;
	pthread_mutex_unlock(&ls->lock);
	return l;
}

struct fsd_listing *fsd_listings_latest(struct fsd_listings *ls, const char *kind)
{
	struct fsd_listing **slot = slot_of(ls, kind);
	pthread_mutex_lock(&ls->lock);
	struct fsd_listing *l = listing_ref(*slot);
	pthread_mutex_unlock(&ls->lock);
	return l;
}

long fsd_listing_find(struct fsd_listing *l, const char *key, struct fsd_list_item *it)
{
	long found = -1;
	pthread_mutex_lock(&l->m);
	if (l->keys) {
		size_t lo = 0, hi = l->n;
		while (lo < hi) {
			size_t mid = (lo + hi) / 2;
			int c = strcmp(l->keys[mid], key);
			if (c == 0) {
				found = (long)mid;
				if (it)
					item_copy(l, mid, it);
				break;
			}
			if (c < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
	}
	pthread_mutex_unlock(&l->m);
	return found;
}

long fsd_listings_find(struct fsd_listings *ls, const char *kind, const char *key,
                       struct fsd_list_item *it)
{
	struct fsd_listing *l = fsd_listings_fresh(ls, kind);
	if (!l)
		return -1;
	long found = fsd_listing_find(l, key, it);
	fsd_listing_unref(l);
	return found;
}

void fsd_listings_init(struct fsd_listings *ls, struct fsd_conn *conn,
                       struct fsd_workers *workers, uint32_t page, double cache_timeout)
{
	memset(ls, 0, sizeof(*ls));
	ls->conn = conn;
	ls->workers = workers;
	ls->page = page ? page : RPC_PAGE_MAX;
	ls->cache_timeout = cache_timeout;
	pthread_mutex_init(&ls->lock, NULL);
}

void fsd_listings_release(struct fsd_listings *ls)
{
	fsd_listing_unref(ls->calls);
	fsd_listing_unref(ls->values);
	fsd_listing_unref(ls->names);
	ls->calls = ls->values = ls->names = NULL;
	pthread_mutex_destroy(&ls->lock);
}

void fsd_listings_drop(struct fsd_listings *ls, const char *kind)
{
	struct fsd_listing **slot = slot_of(ls, kind);
	pthread_mutex_lock(&ls->lock);
	fsd_listing_unref(*slot);
	*slot = NULL;
	pthread_mutex_unlock(&ls->lock);
}

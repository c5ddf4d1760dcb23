/*
 * prefetch.c: records ahead of a walk (prefetch.h). The store is a chained hash
 * table keyed by the call key with a list from the oldest entry; threads claim the
 * next FSD_PREFETCH_BATCH entries of the walked listing under the lock, then load
 * them, learn their values' views and folder links, and store them, without it.
 */
#include "prefetch.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "callrec.h"
#include "client.h"
#include "clock.h"
#include "log.h"
#include "rpc.h"

/* Keys whose views one fsd_viewcache_get asks for at once. */
#define PREFETCH_VIEW_KEYS 64

/* An order of a listing's entries: at[p] is the entry at position p, pos[i] the
 * position of entry i; immutable, reference counted. */
struct fsd_walk_order {
	atomic_int refs;
	uint32_t n;
	uint32_t *at, *pos;
};

static struct fsd_walk_order *order_ref(struct fsd_walk_order *o)
{
	if (o)
		atomic_fetch_add(&o->refs, 1);
	return o;
}

static void order_unref(struct fsd_walk_order *o)
{
	if (!o || atomic_fetch_sub(&o->refs, 1) != 1)
		return;
	free(o->at);
	free(o->pos);
	free(o);
}

struct ino_entry {
	uint64_t ino;
	uint32_t index;
};

static int by_ino(const void *a, const void *b)
{
	const struct ino_entry *x = a, *y = b;
	if (x->ino != y->ino)
		return x->ino < y->ino ? -1 : 1;
	return x->index < y->index ? -1 : x->index > y->index;
}

/* The entries of l (waiting for all of them) in the order of their inode numbers
 * (inode.h: the hash of "calls/<key>"); NULL when out of memory or too many. */
static struct fsd_walk_order *inode_order(struct fsd_listing *l)
{
	struct ino_entry *v = NULL;
	struct fsd_walk_order *o = NULL;
	size_t n = 0, cap = 0;
	struct fsd_list_item it;
	char path[300];

	for (size_t k = 0; fsd_listing_item(l, k, &it) == 0 && k < UINT32_MAX; k++) {
		if (n == cap) {
			cap = cap ? cap * 2 : 4096;
			struct ino_entry *nv = realloc(v, cap * sizeof(*v));
			if (!nv)
				goto fail;
			v = nv;
		}
		snprintf(path, sizeof(path), "calls/%s", it.name);
		v[n].ino = fsd_path_hash(path);
		v[n].index = (uint32_t)k;
		n++;
	}
	qsort(v, n, sizeof(*v), by_ino);
	o = calloc(1, sizeof(*o));
	if (!o || !(o->at = calloc(n ? n : 1, sizeof(*o->at))) ||
	    !(o->pos = calloc(n ? n : 1, sizeof(*o->pos))))
		goto fail;
	atomic_init(&o->refs, 1);
	o->n = (uint32_t)n;
	for (size_t p = 0; p < n; p++) {
		o->at[p] = v[p].index;
		o->pos[v[p].index] = (uint32_t)p;
	}
	free(v);
	return o;
fail:
	free(v);
	if (o) {
		free(o->at);
		free(o->pos);
		free(o);
	}
	return NULL;
}

/* The position of listing entry i in order o (the listing's own when NULL), or
 * SIZE_MAX when o does not hold it. */
static size_t walk_pos(const struct fsd_walk_order *o, size_t i)
{
	if (!o)
		return i;
	return i < o->n ? o->pos[i] : SIZE_MAX;
}

struct fsd_prefetch_entry {
	struct fsd_record *rec;
	uint64_t loaded_ms; /* when the load_many that read it was sent */
	size_t index;       /* in the listing it was fetched from */
	const struct fsd_listing *from; /* compared only */
	struct fsd_prefetch_entry *hnext, *older, *newer;
};

static size_t key_hash(const char *key)
{
	/* keys are SHA-256 digests: their first 16 hex digits are spread enough */
	uint64_t h = 0;
	for (int k = 0; k < 16 && key[k]; k++)
		h = h * 16 + (uint64_t)rpc_hex_digit((unsigned char)key[k]);
	return (size_t)h;
}

int fsd_prefetch_init(struct fsd_prefetch *pf, struct fsd_conn *conn, struct fsd_listings *lists,
                      struct fsd_viewcache *views, struct fsd_workers *workers,
                      double cache_timeout)
{
	memset(pf, 0, sizeof(*pf));
	pf->conn = conn;
	pf->lists = lists;
	pf->views = views;
	pf->workers = workers;
	pf->cache_timeout_ms = (uint64_t)(cache_timeout * 1000);
	pf->last_miss = -1;
	pf->end = SIZE_MAX;
	pf->nbuckets = FSD_PREFETCH_KEPT;
	pf->bucket = calloc(pf->nbuckets, sizeof(*pf->bucket));
	if (!pf->bucket)
		return -ENOMEM;
	pthread_mutex_init(&pf->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&pf->cv, &ca);
	pthread_condattr_destroy(&ca);
	return 0;
}

/* Takes e out of the table and the list (lock held); the caller owns it. */
static void unlink_entry(struct fsd_prefetch *pf, struct fsd_prefetch_entry *e)
{
	struct fsd_prefetch_entry **p = &pf->bucket[key_hash(e->rec->key) % pf->nbuckets];
	while (*p != e)
		p = &(*p)->hnext;
	*p = e->hnext;
	if (e->older)
		e->older->newer = e->newer;
	else
		pf->oldest = e->newer;
	if (e->newer)
		e->newer->older = e->older;
	else
		pf->newest = e->older;
	pf->count--;
}

static void free_entry(struct fsd_prefetch_entry *e)
{
	if (!e)
		return;
	fsd_record_unref(e->rec);
	free(e);
}

static struct fsd_prefetch_entry *find_locked(struct fsd_prefetch *pf, const char *key)
{
	for (struct fsd_prefetch_entry *e = pf->bucket[key_hash(key) % pf->nbuckets]; e;
	     e = e->hnext)
		if (strcmp(e->rec->key, key) == 0)
			return e;
	return NULL;
}

void fsd_prefetch_stop(struct fsd_prefetch *pf)
{
	pthread_mutex_lock(&pf->lock);
	pf->stopping = 1;
	pthread_cond_broadcast(&pf->cv);
	pthread_mutex_unlock(&pf->lock);
}

void fsd_prefetch_release(struct fsd_prefetch *pf)
{
	if (!pf->bucket)
		return;
	while (pf->oldest) {
		struct fsd_prefetch_entry *e = pf->oldest;
		unlink_entry(pf, e);
		free_entry(e);
	}
	if (pf->fetched)
		fsd_log(FSD_LOG_INFO,
		        "prefetch: %llu records fetched ahead, %llu served, %llu opened without one",
		        (unsigned long long)pf->fetched, (unsigned long long)pf->served,
		        (unsigned long long)pf->missed);
	fsd_listing_unref(pf->walk);
	order_unref(pf->order);
	order_unref(pf->by_ino);
	free(pf->bucket);
	pf->bucket = NULL;
	pthread_cond_destroy(&pf->cv);
	pthread_mutex_destroy(&pf->lock);
}

/* Stores rec (a reference, given), dropping the oldest beyond FSD_PREFETCH_KEPT and
 * any older record of the same key. Lock held. */
static void store_locked(struct fsd_prefetch *pf, struct fsd_record *rec, uint64_t loaded_ms,
                         const struct fsd_listing *from, size_t index)
{
	struct fsd_prefetch_entry *e = find_locked(pf, rec->key);
	if (e) {
		unlink_entry(pf, e);
		free_entry(e);
	}
	e = calloc(1, sizeof(*e));
	if (!e) {
		fsd_record_unref(rec);
		return;
	}
	while (pf->count >= FSD_PREFETCH_KEPT) {
		struct fsd_prefetch_entry *old = pf->oldest;
		unlink_entry(pf, old);
		free_entry(old);
	}
	e->rec = rec;
	e->loaded_ms = loaded_ms;
	e->from = from;
	e->index = index;
	size_t b = key_hash(rec->key) % pf->nbuckets;
	e->hnext = pf->bucket[b];
	pf->bucket[b] = e;
	e->older = pf->newest;
	if (pf->newest)
		pf->newest->newer = e;
	else
		pf->oldest = e;
	pf->newest = e;
	pf->count++;
	pf->fetched++;
}

/* One list_record question of a batch: whether a value is a folder record. */
struct countdown {
	pthread_mutex_t m;
	pthread_cond_t cv;
	size_t remaining;
};

struct folder_question {
	struct countdown *cd;
	struct fsd_viewcache *views;
	char key[RPC_KEY_LEN + 1];
};

static void folder_done(void *ctx, const struct fsd_reply *r)
{
	struct folder_question *q = ctx;
	struct countdown *cd = q->cd;
	/* only "not a record" is kept from here: a record is checked whole when its
	 * call folder is listed (node.c, fsd_fs_recdir_link) */
	if (r->err && r->error &&
	    (r->error->code == RPC_E_ENOTSUP || r->error->code == RPC_E_EINVAL ||
	     r->error->code == RPC_E_ELOOP || r->error->code == RPC_E_CORRUPT ||
	     r->error->code == RPC_E_EFBIG))
		fsd_viewcache_put_folder(q->views, q->key, FSD_VS_NO);
	pthread_mutex_lock(&cd->m);
	cd->remaining--;
	pthread_cond_broadcast(&cd->cv);
	pthread_mutex_unlock(&cd->m);
	free(q);
}

/* Learns the views and folder links of the values keys[0..n) (not known yet). */
static void learn_values(struct fsd_prefetch *pf, char (*keys)[RPC_KEY_LEN + 1], size_t n)
{
	struct fsd_viewinfo *vi = calloc(PREFETCH_VIEW_KEYS, sizeof(*vi));
	struct countdown cd = {.remaining = 0};

	if (!vi)
		return;
	for (size_t k = 0; k < n; k += PREFETCH_VIEW_KEYS)
		fsd_viewcache_get(pf->views, keys + k,
		                  n - k < PREFETCH_VIEW_KEYS ? n - k : PREFETCH_VIEW_KEYS, vi);
	free(vi);
	pthread_mutex_init(&cd.m, NULL);
	pthread_cond_init(&cd.cv, NULL);
	for (size_t k = 0; k < n; k++) {
		if (fsd_viewcache_folder(pf->views, keys[k]) != FSD_VS_UNKNOWN)
			continue;
		struct folder_question *q = calloc(1, sizeof(*q));
		if (!q)
			break;
		q->cd = &cd;
		q->views = pf->views;
		memcpy(q->key, keys[k], sizeof(q->key));
		pthread_mutex_lock(&cd.m);
		cd.remaining++;
		pthread_mutex_unlock(&cd.m);
		fsd_rpc_list_record_async(pf->conn, q->key, folder_done, q);
	}
	pthread_mutex_lock(&cd.m);
	while (cd.remaining)
		pthread_cond_wait(&cd.cv, &cd.m);
	pthread_mutex_unlock(&cd.m);
	pthread_cond_destroy(&cd.cv);
	pthread_mutex_destroy(&cd.m);
}

/* Keeps what load_many said of a value in the view cache (all of it definitive). */
static void learnt_value(struct fsd_prefetch *pf, const struct rpc_value_info *vi)
{
	for (int v = 0; v < RPC_VIEW__COUNT; v++)
		if (v != RPC_VIEW_PICKLE && vi->state[v] != RPC_VIEW_UNKNOWN)
			fsd_viewcache_put(pf->views, vi->key, v,
			                  vi->state[v] == RPC_VIEW_APPLIES ? FSD_VS_YES : FSD_VS_NO,
			                  vi->size[v]);
	if (vi->folder >= 0)
		fsd_viewcache_put_folder(pf->views, vi->key, vi->folder ? FSD_VS_YES : FSD_VS_NO);
}

/* Adds key to the value keys to learn about, unless it is there already. */
static void add_value(char (*vkeys)[RPC_KEY_LEN + 1], size_t *nv, size_t cap, const char *key)
{
	if (!key[0] || *nv >= cap)
		return;
	for (size_t k = 0; k < *nv; k++)
		if (strcmp(vkeys[k], key) == 0)
			return;
	memcpy(vkeys[(*nv)++], key, RPC_KEY_LEN + 1);
}

/*
 * Loads keys[0..n) (entries idx[] of l) with load_many, as many requests as the
 * frame limit makes it take, and stores the records; then learns what the answers
 * did not say of their results' views and folder links.
 */
static void fetch(struct fsd_prefetch *pf, char (*keys)[RPC_KEY_LEN + 1], const size_t *idx,
                  size_t n, const struct fsd_listing *l)
{
	size_t cap = n, nv = 0;
	char(*vkeys)[RPC_KEY_LEN + 1] = calloc(cap ? cap : 1, sizeof(*vkeys));

	for (size_t done = 0; done < n;) {
		struct fsd_result r;
		struct rpc_load_many lm;
		uint64_t sent = (uint64_t)fsd_now_ms();
		int rc = fsd_rpc_load_many(pf->conn, keys + done, n - done, true, &r, &lm);
		if (rc || lm.n == 0) {
			fsd_log(FSD_LOG_DEBUG, "prefetch: load_many of %zu keys: %s", n - done,
			        rc ? r.message : "no entry answered");
			fsd_result_release(&r);
			break;
		}
		for (uint32_t k = 0; k < lm.n; k++) {
			const msgpack_object *record, *error;
			struct fsd_record *rec = NULL;
			rpc_load_many_entry(&lm, k, &record, &error);
			/* an error is left for the opening of the folder to meet and tell */
			if (!record || fsd_record_build(record, &rec) != 0)
				continue;
			if (vkeys)
				add_value(vkeys, &nv, cap, rec->result);
			pthread_mutex_lock(&pf->lock);
			store_locked(pf, rec, sent, l, idx[done + k]);
			pthread_mutex_unlock(&pf->lock);
		}
		for (uint32_t k = 0; k < lm.nvalues; k++) {
			struct rpc_value_info vi;
			if (rpc_load_many_value(&lm, k, &vi) == 0)
				learnt_value(pf, &vi);
		}
		done += lm.n;
		fsd_result_release(&r);
	}
	if (vkeys)
		learn_values(pf, vkeys, nv);
	free(vkeys);
}

/* Drops the records past cache_timeout (invariant 1), from the oldest. Lock held. */
static void drop_stale_locked(struct fsd_prefetch *pf, uint64_t now)
{
	while (pf->oldest && now >= pf->oldest->loaded_ms + pf->cache_timeout_ms) {
		struct fsd_prefetch_entry *e = pf->oldest;
		unlink_entry(pf, e);
		free_entry(e);
	}
}

static void prefetch_thread(void *arg)
{
	struct fsd_prefetch *pf = arg;
	char(*keys)[RPC_KEY_LEN + 1] = calloc(FSD_PREFETCH_BATCH, sizeof(*keys));
	size_t *idx = calloc(FSD_PREFETCH_BATCH, sizeof(*idx));

	pthread_mutex_lock(&pf->lock);
	while (keys && idx && !pf->stopping && pf->walk && pf->next < pf->end) {
		uint64_t now = (uint64_t)fsd_now_ms();
		if (now - pf->last_open_ms > FSD_PREFETCH_IDLE_MS)
			break;
		drop_stale_locked(pf, now);
		if (pf->next >= pf->reached + FSD_PREFETCH_AHEAD ||
		    (pf->count >= FSD_PREFETCH_BATCH &&
		     now - pf->oldest->loaded_ms > pf->cache_timeout_ms / 2)) {
			/* far enough ahead, or further than the walk goes in cache_timeout / 2
			 * (records kept longer would be stale when it comes) */
			struct timespec ts;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			ts.tv_nsec += 100 * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&pf->cv, &pf->lock, &ts);
			continue;
		}
		struct fsd_listing *l = fsd_listing_ref(pf->walk);
		struct fsd_walk_order *o = order_ref(pf->order);
		size_t from = pf->next, n = 0, k;
		int rc = 0;
		pf->next += FSD_PREFETCH_BATCH;
		pthread_mutex_unlock(&pf->lock);
		for (k = from; k < from + FSD_PREFETCH_BATCH; k++) {
			struct fsd_list_item it;
			rc = o && k >= o->n ? 1 : fsd_listing_item(l, o ? o->at[k] : k, &it);
			if (rc) /* fsd_listing_item waits for its page */
				break;
			if (!rpc_key_valid(it.name, strlen(it.name)))
				continue;
			pthread_mutex_lock(&pf->lock);
			int have = find_locked(pf, it.name) != NULL;
			pthread_mutex_unlock(&pf->lock);
			if (have)
				continue;
			memcpy(keys[n], it.name, RPC_KEY_LEN + 1);
			idx[n++] = k;
		}
		if (n)
			fetch(pf, keys, idx, n, l);
		pthread_mutex_lock(&pf->lock);
		if (rc && pf->walk == l && pf->order == o)
			pf->end = k; /* the end of the listing: nothing beyond to claim */
		fsd_listing_unref(l);
		order_unref(o);
		if (rc)
			break;
	}
	pf->threads--;
	pthread_cond_broadcast(&pf->cv);
	pthread_mutex_unlock(&pf->lock);
	free(keys);
	free(idx);
}

/* Starts threads up to FSD_PREFETCH_THREADS while a walk is on (lock not held). */
static void start_threads(struct fsd_prefetch *pf)
{
	for (;;) {
		pthread_mutex_lock(&pf->lock);
		/* a thread each for the batches there are to fetch (invariant 2) */
		size_t batches = 0;
		if (pf->walk && pf->next < pf->end && pf->next < pf->reached + FSD_PREFETCH_AHEAD)
			batches = (pf->reached + FSD_PREFETCH_AHEAD - pf->next + FSD_PREFETCH_BATCH - 1) /
			          FSD_PREFETCH_BATCH;
		int more = !pf->stopping && pf->threads < FSD_PREFETCH_THREADS && pf->threads < batches;
		if (more)
			pf->threads++;
		pthread_mutex_unlock(&pf->lock);
		if (!more)
			return;
		if (fsd_workers_start(pf->workers, prefetch_thread, pf) != 0) {
			pthread_mutex_lock(&pf->lock);
			pf->threads--;
			pthread_mutex_unlock(&pf->lock);
			return;
		}
	}
}

struct fsd_record *fsd_prefetch_take(struct fsd_prefetch *pf, const char *key,
                                     uint64_t *loaded_ms)
{
	uint64_t now = (uint64_t)fsd_now_ms();
	struct fsd_record *rec = NULL;
	int start = 0;

	pthread_mutex_lock(&pf->lock);
	pf->last_open_ms = now;
	struct fsd_prefetch_entry *e = find_locked(pf, key);
	if (e) {
		unlink_entry(pf, e);
		if (now < e->loaded_ms + pf->cache_timeout_ms) { /* invariant 1 */
			rec = e->rec;
			e->rec = NULL;
			*loaded_ms = e->loaded_ms;
			pf->served++;
			if (e->from == pf->walk && e->index + 1 > pf->reached)
				pf->reached = e->index + 1;
			pthread_cond_broadcast(&pf->cv);
			start = pf->threads < FSD_PREFETCH_THREADS && pf->next < pf->end;
		}
		free_entry(e);
	}
	pthread_mutex_unlock(&pf->lock);
	if (rec) {
		if (start)
			start_threads(pf);
		return rec;
	}

	/* A miss: where is it in the listing of calls/, or in the one walked? Either may
	 * be older than cache_timeout (a walk starts after reading a long listing, and
	 * lasts): it still tells what comes next, and load_many what is current. */
	struct fsd_listing *l = fsd_listings_latest(pf->lists, "calls");
	long i = l ? fsd_listing_find(l, key, NULL) : -1;
	if (i < 0) {
		fsd_listing_unref(l);
		pthread_mutex_lock(&pf->lock);
		l = fsd_listing_ref(pf->walk);
		pthread_mutex_unlock(&pf->lock);
		i = l ? fsd_listing_find(l, key, NULL) : -1;
	}
	pthread_mutex_lock(&pf->lock);
	pf->missed++;
	if (i >= 0 && l != pf->walk && l == pf->missed_in && pf->last_miss >= 0 &&
	    i != pf->last_miss + 1 && !pf->by_ino) {
		/* not the listing's neighbour: perhaps the inode order's (invariant 6) */
		pthread_mutex_unlock(&pf->lock);
		struct fsd_walk_order *o = inode_order(l);
		pthread_mutex_lock(&pf->lock);
		if (!pf->by_ino && pf->missed_in == l)
			pf->by_ino = o;
		else
			order_unref(o);
	}
	size_t p = i >= 0 && l == pf->walk ? walk_pos(pf->order, (size_t)i) : SIZE_MAX;
	if (p != SIZE_MAX && p + 1 < pf->reached) {
		/* the walk starts again (a second find): fetch again from here (what is
		 * still stored is skipped) */
		pf->next = pf->reached = p + 1;
		pf->end = SIZE_MAX;
	} else if (p != SIZE_MAX) {
		/* the walk went past what was fetched: go on from here */
		pf->reached = p + 1;
		if (pf->next < pf->reached)
			pf->next = pf->reached;
	} else if (i >= 0 && l == pf->missed_in) {
		size_t q = walk_pos(pf->by_ino, (size_t)i),
		       last = walk_pos(pf->by_ino, (size_t)pf->last_miss);
		int in_listing = i == pf->last_miss + 1;
		if (in_listing || (pf->by_ino && q != SIZE_MAX && last != SIZE_MAX && q == last + 1)) {
			/* two neighbours opened one after the other: a walk */
			fsd_listing_unref(pf->walk);
			pf->walk = fsd_listing_ref(l);
			order_unref(pf->order);
			pf->order = in_listing ? NULL : order_ref(pf->by_ino);
			pf->next = pf->reached = (in_listing ? (size_t)i : q) + 1;
			pf->end = SIZE_MAX;
		}
	}
	if (i >= 0) {
		if (l != pf->missed_in) {
			order_unref(pf->by_ino);
			pf->by_ino = NULL;
		}
		pf->missed_in = l;
		pf->last_miss = i;
		pthread_cond_broadcast(&pf->cv);
	}
	pthread_mutex_unlock(&pf->lock);
	fsd_listing_unref(l);
	start_threads(pf);
	return NULL;
}

void fsd_prefetch_forget(struct fsd_prefetch *pf, const char *key)
{
	pthread_mutex_lock(&pf->lock);
	struct fsd_prefetch_entry *e = find_locked(pf, key);
	if (e)
		unlink_entry(pf, e);
	pthread_mutex_unlock(&pf->lock);
	free_entry(e);
}

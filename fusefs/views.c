/*
 * views.c: view file names and the cache of which views apply to a value (views.h).
 * The cache is a chained hash table keyed by the value key; a batch of stat_value
 * requests is answered into a struct batch on the asking thread's stack, which
 * waits until every completion has run (each runs exactly once, conn.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "log.h"
#include "msg.h"
#include "rpc.h"
#include "views.h"

int fsd_view_split(const char *name, size_t *stem_len)
{
	size_t n = strlen(name);
	const char *dot = strrchr(name, '.');
	*stem_len = n;
	if (!dot || dot == name)
		return RPC_VIEW_PICKLE;
	enum rpc_view v = rpc_view_lookup(dot + 1, n - (size_t)(dot + 1 - name));
	if (v == RPC_VIEW__COUNT || v == RPC_VIEW_PICKLE)
		return RPC_VIEW_PICKLE;
	*stem_len = (size_t)(dot - name);
	return v;
}

int fsd_view_error_definitive(const struct rpc_error_info *e)
{
	return e && (e->code == RPC_E_ENOTSUP || e->code == RPC_E_EFBIG || e->code == RPC_E_ELOOP);
}

/* --- the cache --- */

struct fsd_viewcache_entry {
	char key[RPC_KEY_LEN + 1];
	struct fsd_viewinfo info;
	struct fsd_viewcache_entry *next;
};

int fsd_viewcache_init(struct fsd_viewcache *vc, struct fsd_conn *conn)
{
	memset(vc, 0, sizeof(*vc));
	vc->conn = conn;
	vc->nbuckets = 4096;
	vc->bucket = calloc(vc->nbuckets, sizeof(*vc->bucket));
	if (!vc->bucket)
		return -ENOMEM;
	pthread_mutex_init(&vc->lock, NULL);
	return 0;
}

static void clear_locked(struct fsd_viewcache *vc)
{
	for (size_t b = 0; b < vc->nbuckets; b++) {
		struct fsd_viewcache_entry *e = vc->bucket[b];
		while (e) {
			struct fsd_viewcache_entry *next = e->next;
			free(e);
			e = next;
		}
		vc->bucket[b] = NULL;
	}
	vc->count = 0;
}

void fsd_viewcache_release(struct fsd_viewcache *vc)
{
	if (!vc->bucket)
		return;
	clear_locked(vc);
	free(vc->bucket);
	vc->bucket = NULL;
	pthread_mutex_destroy(&vc->lock);
}

static struct fsd_viewcache_entry *find_locked(struct fsd_viewcache *vc, const char *key)
{
	for (struct fsd_viewcache_entry *e = vc->bucket[rpc_key_hash(key) % vc->nbuckets]; e;
	     e = e->next)
		if (strcmp(e->key, key) == 0)
			return e;
	return NULL;
}

/* The entry for key, created when absent (the cache starts afresh when full). */
static struct fsd_viewcache_entry *entry_locked(struct fsd_viewcache *vc, const char *key)
{
	struct fsd_viewcache_entry *e = find_locked(vc, key);
	if (e)
		return e;
	if (vc->count >= FSD_VIEWCACHE_MAX)
		clear_locked(vc);
	e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	memcpy(e->key, key, RPC_KEY_LEN);
	e->key[RPC_KEY_LEN] = 0;
	size_t b = rpc_key_hash(key) % vc->nbuckets;
	e->next = vc->bucket[b];
	vc->bucket[b] = e;
	vc->count++;
	return e;
}

void fsd_viewcache_put(struct fsd_viewcache *vc, const char *key, int view, int state,
                       uint64_t size)
{
	if (view <= RPC_VIEW_PICKLE || view >= RPC_VIEW__COUNT || state == FSD_VS_UNKNOWN ||
	    !rpc_key_valid(key, strlen(key)))
		return;
	pthread_mutex_lock(&vc->lock);
	struct fsd_viewcache_entry *e = entry_locked(vc, key);
	if (e) {
		e->info.state[view] = (uint8_t)state;
		e->info.size[view] = size;
	}
	pthread_mutex_unlock(&vc->lock);
}

int fsd_viewcache_folder(struct fsd_viewcache *vc, const char *key)
{
	int state = FSD_VS_UNKNOWN;
	pthread_mutex_lock(&vc->lock);
	struct fsd_viewcache_entry *e = find_locked(vc, key);
	if (e)
		state = e->info.folder;
	pthread_mutex_unlock(&vc->lock);
	return state;
}

void fsd_viewcache_put_folder(struct fsd_viewcache *vc, const char *key, int state)
{
	if (state == FSD_VS_UNKNOWN || !rpc_key_valid(key, strlen(key)))
		return;
	pthread_mutex_lock(&vc->lock);
	struct fsd_viewcache_entry *e = entry_locked(vc, key);
	if (e)
		e->info.folder = (uint8_t)state;
	pthread_mutex_unlock(&vc->lock);
}

/* Answers being gathered for one fsd_viewcache_get. */
struct batch {
	pthread_mutex_t m;
	pthread_cond_t cv;
	size_t remaining;
	struct fsd_viewinfo *out;
	char (*keys)[RPC_KEY_LEN + 1];
};

/* One (key, view) question of a batch. */
struct question {
	struct batch *b;
	size_t k;
	int view;
};

static void stat_done(void *ctx, const struct fsd_reply *r)
{
	struct question *q = ctx;
	struct batch *b = q->b;
	uint64_t size = 0;
	int state = FSD_VS_UNKNOWN;
	struct rpc_stat_value st;
	if (r->err == 0) {
		if (rpc_decode_stat_value(r->result, &st, NULL, 0) == 0) {
			state = FSD_VS_YES;
			size = st.size;
		}
	} else if (fsd_view_error_definitive(r->error)) {
		state = FSD_VS_NO;
		fsd_log(FSD_LOG_DEBUG, "value %.12s has no %s view: %s", b->keys[q->k],
		        rpc_view_name(q->view), r->message);
	} else {
		fsd_log(r->err == ENOENT ? FSD_LOG_DEBUG : FSD_LOG_WARN,
		        "cannot find out the %s view of value %s: %s", rpc_view_name(q->view),
		        b->keys[q->k], r->message[0] ? r->message : strerror(r->err));
	}
	pthread_mutex_lock(&b->m);
	b->out[q->k].state[q->view] = (uint8_t)state;
	b->out[q->k].size[q->view] = size;
	b->remaining--;
	pthread_cond_broadcast(&b->cv);
	pthread_mutex_unlock(&b->m);
	free(q);
}

int fsd_viewcache_get(struct fsd_viewcache *vc, char (*keys)[RPC_KEY_LEN + 1], size_t n,
                      struct fsd_viewinfo *out)
{
	unsigned offered = fsd_conn_server(vc->conn)->views & FSD_VIEWS_DERIVED;
	size_t missing = 0;

	memset(out, 0, n * sizeof(*out));
	pthread_mutex_lock(&vc->lock);
	for (size_t k = 0; k < n; k++) {
		struct fsd_viewcache_entry *e = find_locked(vc, keys[k]);
		if (e)
			out[k] = e->info;
		for (int v = 1; v < RPC_VIEW__COUNT; v++)
			if ((offered & (1u << v)) && out[k].state[v] == FSD_VS_UNKNOWN)
				missing++;
	}
	pthread_mutex_unlock(&vc->lock);
	if (!missing)
		return 0;

	struct batch b = {.out = out, .keys = keys};
	pthread_mutex_init(&b.m, NULL);
	pthread_cond_init(&b.cv, NULL);
	int rc = 0;
	for (size_t k = 0; k < n; k++)
		for (int v = 1; v < RPC_VIEW__COUNT; v++) {
			if (!(offered & (1u << v)) || out[k].state[v] != FSD_VS_UNKNOWN)
				continue;
			struct question *q = malloc(sizeof(*q));
			if (!q) {
				rc = -ENOMEM;
				continue;
			}
			q->b = &b;
			q->k = k;
			q->view = v;
			pthread_mutex_lock(&b.m);
			b.remaining++;
			pthread_mutex_unlock(&b.m);
			fsd_rpc_stat_value_async(vc->conn, keys[k], (enum rpc_view)v, stat_done, q);
		}
	pthread_mutex_lock(&b.m);
	while (b.remaining)
		pthread_cond_wait(&b.cv, &b.m);
	pthread_mutex_unlock(&b.m);
	pthread_cond_destroy(&b.cv);
	pthread_mutex_destroy(&b.m);

	/* Keep what is definitive (invariant 1). */
	pthread_mutex_lock(&vc->lock);
	for (size_t k = 0; k < n; k++) {
		int known = 0;
		for (int v = 1; v < RPC_VIEW__COUNT; v++)
			known |= out[k].state[v] != FSD_VS_UNKNOWN;
		if (!known)
			continue;
		struct fsd_viewcache_entry *e = entry_locked(vc, keys[k]);
		if (!e)
			break;
		for (int v = 1; v < RPC_VIEW__COUNT; v++)
			if (out[k].state[v] != FSD_VS_UNKNOWN) {
				e->info.state[v] = out[k].state[v];
				e->info.size[v] = out[k].size[v];
			}
	}
	pthread_mutex_unlock(&vc->lock);
	return rc;
}

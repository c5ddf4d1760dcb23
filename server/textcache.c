/*
 * textcache.c: the LRU cache of rendered texts of textcache.h.
 */
#include "textcache.h"

#include <stdlib.h>
#include <string.h>

/* Lock held. */
static void text_unref(struct srv_text *e)
{
	if (e && --e->refs == 0) {
		free(e->id);
		free((char *)e->data);
		free(e);
	}
}

static uint64_t id_hash(const char *id)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	for (; *id; id++)
		h = (h ^ (unsigned char)*id) * 1099511628211ull;
	return h;
}

/* Lock held. */
static void unlink_text(struct srv_textcache *tc, struct srv_text *e)
{
	struct srv_text **pp = &tc->bucket[e->hash % SRV_TEXTCACHE_BUCKETS];

	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	e->hnext = NULL;
	if (e->prev)
		e->prev->next = e->next;
	else
		tc->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		tc->tail = e->prev;
	e->prev = e->next = NULL;
	e->linked = false;
	tc->bytes -= e->cost;
	tc->count--;
	text_unref(e);
}

void srv_textcache_init(struct srv_textcache *tc)
{
	memset(tc, 0, sizeof(*tc));
	pthread_mutex_init(&tc->lock, NULL);
}

void srv_textcache_clear(struct srv_textcache *tc)
{
	pthread_mutex_lock(&tc->lock);
	while (tc->head)
		unlink_text(tc, tc->head);
	text_unref(tc->big);
	tc->big = NULL;
	pthread_mutex_unlock(&tc->lock);
}

void srv_textcache_release(struct srv_textcache *tc)
{
	srv_textcache_clear(tc);
	pthread_mutex_destroy(&tc->lock);
}

struct srv_text *srv_textcache_get(struct srv_textcache *tc, const char *id, uint64_t size,
                                   double mtime)
{
	struct srv_text *e, *found = NULL;
	uint64_t h = id_hash(id);

	pthread_mutex_lock(&tc->lock);
	if (tc->big && strcmp(tc->big->id, id) == 0) {
		if (tc->big->size == size && tc->big->mtime == mtime) {
			tc->big->refs++;
			found = tc->big;
			goto out;
		}
		text_unref(tc->big);
		tc->big = NULL;
	}
	for (e = tc->bucket[h % SRV_TEXTCACHE_BUCKETS]; e; e = e->hnext) {
		if (e->hash != h || strcmp(e->id, id) != 0)
			continue;
		if (e->size != size || e->mtime != mtime) {
			unlink_text(tc, e);
			goto out;
		}
		if (e != tc->head) {
			/* move to the front */
			e->prev->next = e->next;
			if (e->next)
				e->next->prev = e->prev;
			else
				tc->tail = e->prev;
			e->prev = NULL;
			e->next = tc->head;
			tc->head->prev = e;
			tc->head = e;
		}
		e->refs++;
		found = e;
		goto out;
	}
out:
	pthread_mutex_unlock(&tc->lock);
	return found;
}

struct srv_text *srv_textcache_put(struct srv_textcache *tc, const char *id, uint64_t size,
                                   double mtime, char *data, size_t len)
{
	struct srv_text *e = calloc(1, sizeof(*e));
	char *idc = strdup(id);

	if (!e || !idc) {
		free(e);
		free(idc);
		free(data);
		return NULL;
	}
	e->id = idc;
	e->hash = id_hash(idc);
	e->cost = len + strlen(idc) + 1 + sizeof(*e);
	e->size = size;
	e->mtime = mtime;
	e->data = data;
	e->len = len;
	e->refs = 2; /* the caller's and the cache's */
	pthread_mutex_lock(&tc->lock);
	/* one entry per id: a rendering that raced with this one gives way */
	for (struct srv_text *o = tc->bucket[e->hash % SRV_TEXTCACHE_BUCKETS]; o; o = o->hnext)
		if (o->hash == e->hash && strcmp(o->id, idc) == 0) {
			unlink_text(tc, o);
			break;
		}
	if (e->cost > SRV_TEXTCACHE_BYTES) {
		text_unref(tc->big);
		tc->big = e;
	} else {
		struct srv_text **b = &tc->bucket[e->hash % SRV_TEXTCACHE_BUCKETS];

		while (tc->tail && (tc->bytes + e->cost > SRV_TEXTCACHE_BYTES ||
		                    tc->count >= SRV_TEXTCACHE_ENTRIES))
			unlink_text(tc, tc->tail);
		e->next = tc->head;
		if (tc->head)
			tc->head->prev = e;
		tc->head = e;
		if (!tc->tail)
			tc->tail = e;
		e->hnext = *b;
		*b = e;
		e->linked = true;
		tc->bytes += e->cost;
		tc->count++;
	}
	pthread_mutex_unlock(&tc->lock);
	return e;
}

void srv_textcache_unref(struct srv_textcache *tc, struct srv_text *t)
{
	if (!t)
		return;
	pthread_mutex_lock(&tc->lock);
	text_unref(t);
	pthread_mutex_unlock(&tc->lock);
}

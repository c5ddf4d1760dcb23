/*
 * recdir.c: the listings of stored file and folder records (recdir.h), asked with
 * list_record (decoded by proto.h) and kept in a chained hash table keyed by the
 * record's key, with a list in order of use from which the least recently used
 * answers are dropped when the budget is reached.
 */
#include "recdir.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "rpc.h"

/* One kept answer: a listing, or a definitive refusal (err, why). */
struct fsd_recdir_slot {
	char key[RPC_KEY_LEN + 1];
	struct fsd_recdir *d; /* NULL for a refusal */
	int err;              /* a refusal's positive errno */
	char *why;            /* a refusal's reason */
	size_t bytes;         /* counted against FSD_RECDIR_CACHE_BYTES */
	struct fsd_recdir_slot *next;           /* in its bucket */
	struct fsd_recdir_slot *newer, *older; /* in order of use */
};

/* What a listing or a refusal costs the budget besides its own bytes. */
#define SLOT_COST 128

static void recdir_free(struct fsd_recdir *d)
{
	for (size_t k = 0; k < d->n; k++)
		free(d->entries[k].name);
	free(d->entries);
	free(d);
}

void fsd_recdir_unref(struct fsd_recdir *d)
{
	if (d && __atomic_sub_fetch(&d->refs, 1, __ATOMIC_ACQ_REL) == 0)
		recdir_free(d);
}

long fsd_recdir_find(const struct fsd_recdir *d, const char *name)
{
	for (size_t k = 0; k < d->n; k++)
		if (strcmp(d->entries[k].name, name) == 0)
			return (long)k;
	return -1;
}

/* --- the cache --- */

int fsd_recdirs_init(struct fsd_recdirs *rc, struct fsd_conn *conn)
{
	memset(rc, 0, sizeof(*rc));
	rc->conn = conn;
	rc->nbuckets = 4096;
	rc->bucket = calloc(rc->nbuckets, sizeof(*rc->bucket));
	if (!rc->bucket)
		return -ENOMEM;
	pthread_mutex_init(&rc->lock, NULL);
	return 0;
}

static struct fsd_recdir_slot **bucket_of(struct fsd_recdirs *rc, const char *key)
{
	return &rc->bucket[rpc_key_hash(key) % rc->nbuckets];
}

static void use_unlink(struct fsd_recdirs *rc, struct fsd_recdir_slot *s)
{
	if (s->newer)
		s->newer->older = s->older;
	else
		rc->newest = s->older;
	if (s->older)
		s->older->newer = s->newer;
	else
		rc->oldest = s->newer;
	s->newer = s->older = NULL;
}

static void use_push(struct fsd_recdirs *rc, struct fsd_recdir_slot *s)
{
	s->older = rc->newest;
	s->newer = NULL;
	if (rc->newest)
		rc->newest->newer = s;
	rc->newest = s;
	if (!rc->oldest)
		rc->oldest = s;
}

static void slot_drop_locked(struct fsd_recdirs *rc, struct fsd_recdir_slot *s)
{
	struct fsd_recdir_slot **pp = bucket_of(rc, s->key);

	while (*pp != s)
		pp = &(*pp)->next;
	*pp = s->next;
	use_unlink(rc, s);
	rc->count--;
	rc->bytes -= s->bytes;
	fsd_recdir_unref(s->d);
	free(s->why);
	free(s);
}

void fsd_recdirs_release(struct fsd_recdirs *rc)
{
	if (!rc->bucket)
		return;
	while (rc->oldest)
		slot_drop_locked(rc, rc->oldest);
	free(rc->bucket);
	rc->bucket = NULL;
	pthread_mutex_destroy(&rc->lock);
}

static struct fsd_recdir_slot *find_locked(struct fsd_recdirs *rc, const char *key)
{
	for (struct fsd_recdir_slot *s = *bucket_of(rc, key); s; s = s->next)
		if (strcmp(s->key, key) == 0)
			return s;
	return NULL;
}

/* Keeps s (its listing or refusal filled) unless key is kept already or s is over a
 * quarter of the budget; frees s when it is not kept. */
static void keep(struct fsd_recdirs *rc, const char *key, struct fsd_recdir_slot *s)
{
	pthread_mutex_lock(&rc->lock);
	if (s->bytes > FSD_RECDIR_CACHE_BYTES / 4 || find_locked(rc, key)) {
		pthread_mutex_unlock(&rc->lock);
		fsd_recdir_unref(s->d);
		free(s->why);
		free(s);
		return;
	}
	while (rc->oldest &&
	       (rc->bytes + s->bytes > FSD_RECDIR_CACHE_BYTES || rc->count >= FSD_RECDIR_CACHE_MAX))
		slot_drop_locked(rc, rc->oldest);
	memcpy(s->key, key, RPC_KEY_LEN);
	s->key[RPC_KEY_LEN] = '\0';
	s->next = *bucket_of(rc, key);
	*bucket_of(rc, key) = s;
	use_push(rc, s);
	rc->count++;
	rc->bytes += s->bytes;
	pthread_mutex_unlock(&rc->lock);
}

/* A listing made from a decoded answer, with one reference, or NULL (ENOMEM). */
static struct fsd_recdir *recdir_new(const struct rpc_list_record *l)
{
	struct fsd_recdir *d = calloc(1, sizeof(*d));
	struct rpc_list_record_entry re;

	if (!d || !(d->entries = calloc(l->n ? l->n : 1, sizeof(*d->entries)))) {
		free(d);
		return NULL;
	}
	d->refs = 1;
	d->mtime = l->mtime;
	d->bytes = SLOT_COST + sizeof(*d);
	for (uint32_t k = 0; k < l->n; k++) {
		struct fsd_recdir_entry *e = &d->entries[k];
		rpc_list_record_entry(l, k, &re);
		e->name = strndup(re.name, re.name_len);
		if (!e->name) {
			recdir_free(d);
			return NULL;
		}
		d->n = k + 1;
		e->is_dir = re.is_dir;
		memcpy(e->key, re.key, sizeof(e->key));
		e->size = re.size;
		e->mtime = re.mtime;
		d->bytes += sizeof(*e) + re.name_len + 1;
	}
	return d;
}

/* Whether the server's refusal holds for the value's life (invariant 1). */
static int refusal_definitive(const struct fsd_result *r)
{
	int code = r->error ? r->error->code : 0;
	return code == RPC_E_ENOTSUP || code == RPC_E_EINVAL || code == RPC_E_ELOOP ||
	       code == RPC_E_CORRUPT || code == RPC_E_EFBIG;
}

int fsd_recdirs_get(struct fsd_recdirs *rc, const char *key, struct fsd_recdir **out,
                    char *why, size_t whylen)
{
	struct fsd_recdir_slot *s;
	struct rpc_list_record l;
	struct fsd_result r;
	int status = 0;

	*out = NULL;
	why[0] = '\0';
	if (!rpc_key_valid(key, strlen(key))) {
		snprintf(why, whylen, "'%s' is not a value key", key);
		return -EINVAL;
	}
	pthread_mutex_lock(&rc->lock);
	s = find_locked(rc, key);
	if (s) {
		use_unlink(rc, s);
		use_push(rc, s);
		if (s->d) {
			__atomic_add_fetch(&s->d->refs, 1, __ATOMIC_ACQ_REL);
			*out = s->d;
		} else {
			snprintf(why, whylen, "%s", s->why);
			status = -s->err;
		}
		pthread_mutex_unlock(&rc->lock);
		return status;
	}
	pthread_mutex_unlock(&rc->lock);

	status = fsd_rpc_list_record(rc->conn, key, &r, &l);
	s = calloc(1, sizeof(*s));
	if (status) {
		int e = r.err ? r.err : EIO;
		snprintf(why, whylen, "%s", r.message[0] ? r.message : strerror(e));
		if (s && refusal_definitive(&r) && (s->why = strdup(why))) {
			s->err = e;
			s->bytes = SLOT_COST + strlen(why);
			keep(rc, key, s);
		} else {
			free(s);
		}
		fsd_result_release(&r);
		return -e;
	}
	*out = recdir_new(&l);
	fsd_result_release(&r);
	if (!*out) {
		free(s);
		snprintf(why, whylen, "out of memory listing '%s'", key);
		return -ENOMEM;
	}
	if (s) {
		__atomic_add_fetch(&(*out)->refs, 1, __ATOMIC_ACQ_REL); /* the cache's */
		s->d = *out;
		s->bytes = (*out)->bytes;
		keep(rc, key, s);
	}
	return 0;
}

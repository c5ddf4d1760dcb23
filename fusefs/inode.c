/*
 * inode.c: the inode table (inode.h): a chained hash table keyed by inode number,
 * with numbers derived from paths so that they survive remounts.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inode.h"

#define ITABLE_MIN_BUCKETS 4096

uint64_t fsd_path_hash(const char *path)
{
	/* FNV-1a, then the splitmix64 finaliser to spread the bits. */
	uint64_t h = 0xcbf29ce484222325ull;
	for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
		h ^= *p;
		h *= 0x100000001b3ull;
	}
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ull;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebull;
	h ^= h >> 31;
	return h;
}

struct fsd_record *fsd_record_ref(struct fsd_record *r)
{
	if (r)
		atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed);
	return r;
}

static void files_free(struct fsd_record_file *f, size_t n)
{
	for (size_t i = 0; f && i < n; i++) {
		free(f[i].name);
		free(f[i].data);
	}
	free(f);
}

void fsd_record_unref(struct fsd_record *r)
{
	if (!r || atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) != 1)
		return;
	files_free(r->files, r->nfiles);
	files_free(r->meta, r->nmeta);
	for (size_t i = 0; i < r->nargs; i++)
		free(r->args[i].name);
	free(r->args);
	free(r->meta_error);
	free(r);
}

static void inode_free(struct fsd_inode *i)
{
	if (!i)
		return;
	fsd_record_unref(i->rec);
	free(i->cands);
	free(i->target);
	free(i->path);
	free(i);
}

int fsd_itable_init(struct fsd_itable *t)
{
	memset(t, 0, sizeof(*t));
	pthread_mutex_init(&t->lock, NULL);
	t->nbuckets = ITABLE_MIN_BUCKETS;
	t->bucket = calloc(t->nbuckets, sizeof(*t->bucket));
	t->root = calloc(1, sizeof(*t->root));
	if (!t->bucket || !t->root)
		goto fail;
	t->root->path = strdup("");
	if (!t->root->path)
		goto fail;
	t->root->name = t->root->path;
	t->root->ino = 1;
	t->root->kind = FSD_ROOT;
	t->root->permanent = 1;
	t->bucket[1 % t->nbuckets] = t->root;
	t->count = 1;
	return 0;
fail:
	free(t->bucket);
	inode_free(t->root);
	pthread_mutex_destroy(&t->lock);
	return -ENOMEM;
}

void fsd_itable_release(struct fsd_itable *t)
{
	for (size_t b = 0; t->bucket && b < t->nbuckets; b++) {
		struct fsd_inode *i = t->bucket[b];
		while (i) {
			struct fsd_inode *next = i->hnext;
			inode_free(i);
			i = next;
		}
	}
	free(t->bucket);
	t->bucket = NULL;
	pthread_mutex_destroy(&t->lock);
}

void fsd_itable_lock(struct fsd_itable *t)
{
	pthread_mutex_lock(&t->lock);
}

void fsd_itable_unlock(struct fsd_itable *t)
{
	pthread_mutex_unlock(&t->lock);
}

static struct fsd_inode *find_locked(struct fsd_itable *t, uint64_t ino)
{
	for (struct fsd_inode *i = t->bucket[ino % t->nbuckets]; i; i = i->hnext)
		if (i->ino == ino)
			return i;
	return NULL;
}

struct fsd_inode *fsd_itable_get(struct fsd_itable *t, uint64_t ino)
{
	pthread_mutex_lock(&t->lock);
	struct fsd_inode *i = find_locked(t, ino);
	pthread_mutex_unlock(&t->lock);
	return i;
}

struct fsd_inode *fsd_itable_get_locked(struct fsd_itable *t, uint64_t ino)
{
	return find_locked(t, ino);
}

/* The number of path's inode, or of the free slot it would take (invariant 2). */
static uint64_t path_slot(struct fsd_itable *t, const char *path, struct fsd_inode **found)
{
	uint64_t ino = fsd_path_hash(path);
	for (;; ino++) {
		if (ino <= 1)
			continue;
		struct fsd_inode *i = find_locked(t, ino);
		if (!i || strcmp(i->path, path) == 0) {
			*found = i;
			return ino;
		}
	}
}

struct fsd_inode *fsd_itable_find_path(struct fsd_itable *t, const char *path)
{
	struct fsd_inode *i;
	if (!*path)
		return t->root;
	path_slot(t, path, &i);
	return i;
}

static void grow(struct fsd_itable *t)
{
	size_t n = t->nbuckets * 2;
	struct fsd_inode **nb = calloc(n, sizeof(*nb));
	if (!nb)
		return; /* longer chains, still correct */
	for (size_t b = 0; b < t->nbuckets; b++) {
		struct fsd_inode *i = t->bucket[b];
		while (i) {
			struct fsd_inode *next = i->hnext;
			i->hnext = nb[i->ino % n];
			nb[i->ino % n] = i;
			i = next;
		}
	}
	free(t->bucket);
	t->bucket = nb;
	t->nbuckets = n;
}

struct fsd_inode *fsd_itable_child(struct fsd_itable *t, struct fsd_inode *parent, const char *name,
                                   enum fsd_kind kind, const char *key, const char *target,
                                   uint64_t lookups)
{
	size_t plen = strlen(parent->path), nlen = strlen(name);
	char *path = malloc(plen + nlen + 2);
	if (!path)
		return NULL;
	if (plen) {
		memcpy(path, parent->path, plen);
		path[plen] = '/';
		memcpy(path + plen + 1, name, nlen + 1);
	} else {
		memcpy(path, name, nlen + 1);
	}
	struct fsd_inode *i;
	uint64_t ino = path_slot(t, path, &i);
	if (i) {
		free(path);
		i->nlookup += lookups;
		return i;
	}
	i = calloc(1, sizeof(*i));
	if (!i) {
		free(path);
		return NULL;
	}
	i->path = path;
	i->name = plen ? path + plen + 1 : path;
	i->ino = ino;
	i->kind = kind;
	if (key)
		snprintf(i->key, sizeof(i->key), "%s", key);
	if (target) {
		i->target = strdup(target);
		if (!i->target) {
			inode_free(i);
			return NULL;
		}
	}
	i->nlookup = lookups;
	if (t->count >= t->nbuckets)
		grow(t);
	i->hnext = t->bucket[ino % t->nbuckets];
	t->bucket[ino % t->nbuckets] = i;
	t->count++;
	return i;
}

void fsd_itable_forget(struct fsd_itable *t, uint64_t ino, uint64_t n)
{
	struct fsd_inode **pp = &t->bucket[ino % t->nbuckets];
	for (; *pp; pp = &(*pp)->hnext) {
		struct fsd_inode *i = *pp;
		if (i->ino != ino)
			continue;
		i->nlookup = i->nlookup > n ? i->nlookup - n : 0;
		if (i->nlookup == 0 && !i->permanent) {
			*pp = i->hnext;
			t->count--;
			inode_free(i);
		}
		return;
	}
}

void fsd_itable_each(struct fsd_itable *t, enum fsd_kind kind,
                     void (*fn)(struct fsd_inode *ino, void *ctx), void *ctx)
{
	for (size_t b = 0; b < t->nbuckets; b++)
		for (struct fsd_inode *i = t->bucket[b]; i; i = i->hnext)
			if (i->kind == kind)
				fn(i, ctx);
}

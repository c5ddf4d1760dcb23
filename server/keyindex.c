/*
 * keyindex.c: sorted snapshots of storage directories (binary keys, binary
 * search) and the bounded identity cache; see keyindex.h for the invariants.
 */
#include "rpc.h"
#include "keyindex.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

void srv_key_from_hex(const char *hex, uint8_t out[SRV_KEY_BYTES])
{
	for (size_t i = 0; i < SRV_KEY_BYTES; i++)
		out[i] = (uint8_t)(rpc_hex_digit(hex[2 * i]) << 4 | rpc_hex_digit(hex[2 * i + 1]));
}

void srv_key_to_hex(const uint8_t key[SRV_KEY_BYTES], char out[RPC_KEY_LEN + 1])
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < SRV_KEY_BYTES; i++) {
		out[2 * i] = digits[key[i] >> 4];
		out[2 * i + 1] = digits[key[i] & 15];
	}
	out[RPC_KEY_LEN] = '\0';
}

unsigned srv_key_common(const uint8_t *a, const uint8_t *b)
{
	unsigned i = 0;

	while (i < SRV_KEY_BYTES && a[i] == b[i])
		i++;
	if (i == SRV_KEY_BYTES)
		return RPC_KEY_LEN;
	return 2 * i + ((a[i] >> 4) == (b[i] >> 4));
}

int srv_keyindex_init(struct srv_keyindex *ki, const char *dir)
{
	memset(ki, 0, sizeof(*ki));
	ki->dir = strdup(dir);
	return ki->dir ? 0 : -1;
}

void srv_keyindex_release(struct srv_keyindex *ki)
{
	free(ki->dir);
	free(ki->keys);
	memset(ki, 0, sizeof(*ki));
}

static int cmp_key(const void *a, const void *b)
{
	return memcmp(a, b, SRV_KEY_BYTES);
}

static bool ts_equal(struct timespec a, struct timespec b)
{
	return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

static int scan(struct srv_keyindex *ki, struct srv_error *err)
{
	DIR *d = opendir(ki->dir);
	struct dirent *de;
	size_t n = 0;

	if (!d) {
		if (errno == ENOENT || errno == ENOTDIR) {
			ki->n = 0;
			return 0;
		}
		return srv_fail(err, rpc_error_from_errno(errno), "cannot open directory '%s': %s",
		                ki->dir, strerror(errno));
	}
	for (;;) {
		errno = 0;
		de = readdir(d);
		if (!de)
			break;
		if (strlen(de->d_name) != RPC_KEY_LEN || !rpc_key_valid(de->d_name, RPC_KEY_LEN))
			continue;
		if (n == ki->cap) {
			size_t ncap = ki->cap ? ki->cap * 2 : 1024;
			uint8_t *nk;

			if (ncap > SRV_KEYINDEX_MAX) {
				closedir(d);
				return srv_fail(err, RPC_E_ENOMEM,
				                "directory '%s' holds more than %u keys", ki->dir,
				                SRV_KEYINDEX_MAX);
			}
			nk = realloc(ki->keys, ncap * SRV_KEY_BYTES);
			if (!nk) {
				closedir(d);
				return srv_fail(err, RPC_E_ENOMEM, "out of memory indexing '%s'",
				                ki->dir);
			}
			ki->keys = nk;
			ki->cap = ncap;
		}
		srv_key_from_hex(de->d_name, ki->keys + n * SRV_KEY_BYTES);
		n++;
	}
	if (errno) {
		int e = errno;

		closedir(d);
		return srv_fail(err, rpc_error_from_errno(e), "cannot read directory '%s': %s",
		                ki->dir, strerror(e));
	}
	closedir(d);
	if (n > 1)
		qsort(ki->keys, n, SRV_KEY_BYTES, cmp_key);
	ki->n = n;
	return 0;
}

int srv_keyindex_refresh(struct srv_keyindex *ki, struct srv_error *err)
{
	struct stat st;
	struct timespec now;
	bool racy;

	if (stat(ki->dir, &st) != 0) {
		if (errno != ENOENT && errno != ENOTDIR)
			return srv_fail(err, rpc_error_from_errno(errno), "cannot stat '%s': %s",
			                ki->dir, strerror(errno));
		/* A missing directory is an empty storage; look again next time. */
		ki->n = 0;
		ki->loaded = false;
		return 0;
	}
	/* The snapshot is stale if the directory changed, or if it was taken within a
	 * second of the mtime it saw (a later change in the same tick keeps the mtime). */
	racy = ki->taken.tv_sec - st.st_mtim.tv_sec <= 1;
	if (ki->loaded && !racy && st.st_dev == ki->dev && st.st_ino == ki->ino &&
	    ts_equal(st.st_mtim, ki->mtime))
		return 0;
	clock_gettime(CLOCK_REALTIME, &now);
	if (scan(ki, err) != 0) {
		ki->loaded = false;
		return -1;
	}
	ki->loaded = true;
	ki->dev = st.st_dev;
	ki->ino = st.st_ino;
	ki->mtime = st.st_mtim;
	ki->taken = now;
	return 0;
}

size_t srv_keyindex_after(const struct srv_keyindex *ki, const uint8_t *after)
{
	size_t lo = 0, hi = ki->n;

	if (!after)
		return 0;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (memcmp(srv_keyindex_key(ki, mid), after, SRV_KEY_BYTES) <= 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

bool srv_keyindex_find(const struct srv_keyindex *ki, const uint8_t *key, size_t *pos)
{
	size_t lo = 0, hi = ki->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = memcmp(srv_keyindex_key(ki, mid), key, SRV_KEY_BYTES);

		if (c == 0) {
			if (pos)
				*pos = mid;
			return true;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

/* Compares the first len hex digits of key with p: <0, 0 or >0. */
static int prefix_cmp(const uint8_t *key, const char *p, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		int k = (i & 1) ? key[i / 2] & 15 : key[i / 2] >> 4;
		int v = rpc_hex_digit(p[i]);

		if (k != v)
			return k < v ? -1 : 1;
	}
	return 0;
}

void srv_keyindex_range(const struct srv_keyindex *ki, const char *p, size_t len, size_t *plo,
                        size_t *phi)
{
	size_t lo = 0, hi = ki->n;

	while (lo < hi) { /* first with cmp >= 0 */
		size_t mid = lo + (hi - lo) / 2;

		if (prefix_cmp(srv_keyindex_key(ki, mid), p, len) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*plo = lo;
	hi = ki->n;
	while (lo < hi) { /* first with cmp > 0 */
		size_t mid = lo + (hi - lo) / 2;

		if (prefix_cmp(srv_keyindex_key(ki, mid), p, len) <= 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*phi = lo;
}

unsigned srv_keyindex_shrink(const struct srv_keyindex *ki, size_t i)
{
	unsigned need = 0, c;

	if (i > 0) {
		c = srv_key_common(srv_keyindex_key(ki, i - 1), srv_keyindex_key(ki, i));
		if (c > need)
			need = c;
	}
	if (i + 1 < ki->n) {
		c = srv_key_common(srv_keyindex_key(ki, i + 1), srv_keyindex_key(ki, i));
		if (c > need)
			need = c;
	}
	return srv_prefix_need(need);
}

/* ---- identity cache ---- */

static void clear_slots(struct srv_idcache *c)
{
	for (size_t i = 0; i < c->cap; i++)
		free(c->slots[i].name);
	free(c->slots);
	c->slots = NULL;
	c->cap = c->count = 0;
}

void srv_idcache_release(struct srv_idcache *c)
{
	clear_slots(c);
}

static size_t slot_of(const struct srv_idcache *c, const uint8_t *key)
{
	uint64_t h;

	memcpy(&h, key, sizeof(h)); /* keys are digests: already uniform */
	return (size_t)(h & (c->cap - 1));
}

static struct srv_idcache_entry *lookup(struct srv_idcache *c, const uint8_t *key)
{
	size_t i;

	if (!c->cap)
		return NULL;
	for (i = slot_of(c, key);; i = (i + 1) & (c->cap - 1)) {
		if (!c->slots[i].used)
			return &c->slots[i];
		if (memcmp(c->slots[i].key, key, SRV_KEY_BYTES) == 0)
			return &c->slots[i];
	}
}

struct srv_idcache_entry *srv_idcache_get(struct srv_idcache *c, const uint8_t *key,
                                          const struct stat *st)
{
	struct srv_idcache_entry *e = lookup(c, key);

	if (!e || !e->used || e->dev != st->st_dev || e->ino != st->st_ino ||
	    e->size != st->st_size || !ts_equal(e->mtime, st->st_mtim))
		return NULL;
	return e;
}

static int grow(struct srv_idcache *c)
{
	struct srv_idcache old = *c;
	size_t ncap = c->cap ? c->cap * 2 : 1024;

	if (c->count >= SRV_IDCACHE_MAX) {
		clear_slots(c);
		ncap = 1024;
		old.slots = NULL;
		old.cap = 0;
	}
	c->slots = calloc(ncap, sizeof(*c->slots));
	if (!c->slots) {
		*c = old;
		return -1;
	}
	c->cap = ncap;
	c->count = 0;
	for (size_t i = 0; i < old.cap; i++) {
		if (old.slots[i].used) {
			*lookup(c, old.slots[i].key) = old.slots[i];
			c->count++;
		}
	}
	free(old.slots);
	return 0;
}

void srv_idcache_put(struct srv_idcache *c, const uint8_t *key, const struct stat *st, double t,
                     int64_t n, const char *name)
{
	struct srv_idcache_entry *e;
	char *copy = NULL;

	if ((c->count + 1) * 2 > c->cap && grow(c) != 0)
		return;
	if (name && !(copy = strdup(name)))
		return;
	e = lookup(c, key);
	if (e->used) {
		free(e->name);
	} else {
		memcpy(e->key, key, SRV_KEY_BYTES);
		e->used = true;
		c->count++;
	}
	e->dev = st->st_dev;
	e->ino = st->st_ino;
	e->size = st->st_size;
	e->mtime = st->st_mtim;
	e->t = t;
	e->n = n;
	e->name = copy;
}

unsigned srv_prefix_need(unsigned common)
{
	unsigned need = common + 1;

	if (need < RPC_PREFIX_MIN)
		need = RPC_PREFIX_MIN;
	if (need > RPC_KEY_LEN)
		need = RPC_KEY_LEN;
	return need;
}

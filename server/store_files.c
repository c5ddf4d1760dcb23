/*
 * store_files.c: file storage for call records and values (see store_files.h).
 */
#include "store_files.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "pickle.h"
#include "query.h"
#include "record.h"

static double ts_of(const struct stat *st)
{
	return (double)st->st_mtim.tv_sec + st->st_mtim.tv_nsec / 1e9;
}

int srv_fstore_init(struct srv_fstore *fs, const char *dir, enum srv_kind kind,
                    const struct srv_sign *sign, struct srv_error *err)
{
	memset(fs, 0, sizeof(*fs));
	fs->kind = kind;
	fs->sign = sign;
	fs->dir = strdup(dir);
	if (!fs->dir || srv_keyindex_init(&fs->index, dir) != 0) {
		free(fs->dir);
		fs->dir = NULL;
		return srv_fail(err, RPC_E_ENOMEM, "out of memory");
	}
	return 0;
}

void srv_fstore_release(struct srv_fstore *fs)
{
	srv_keyindex_release(&fs->index);
	srv_idcache_release(&fs->info);
	free(fs->dir);
	memset(fs, 0, sizeof(*fs));
}

int srv_fstore_path(const struct srv_fstore *fs, const char *key, char *buf, size_t n,
                    struct srv_error *err)
{
	if ((size_t)snprintf(buf, n, "%s/%.64s", fs->dir, key) >= n)
		return srv_fail(err, RPC_E_EINVAL, "path of '%s' in '%s' is too long", key,
		                fs->dir);
	return 0;
}

int srv_fstore_stat(struct srv_fstore *fs, const char *key, struct stat *st, bool *found,
                    struct srv_error *err)
{
	char path[PATH_MAX];

	if (srv_fstore_path(fs, key, path, sizeof(path), err) != 0)
		return -1;
	if (stat(path, st) != 0) {
		if (errno == ENOENT || errno == ENOTDIR) {
			*found = false;
			return 0;
		}
		return srv_fail(err, rpc_error_from_errno(errno), "cannot stat '%s': %s", path,
		                strerror(errno));
	}
	*found = S_ISREG(st->st_mode);
	return 0;
}

/* Reads and parses the record file; *doc and *blob are the caller's to free. */
static int parse_file(struct srv_fstore *fs, const char *path, struct srv_blob *blob,
                      struct pk_doc **doc, struct stat *st, struct srv_error *err)
{
	char why[160];
	size_t end;
	int rc;

	*doc = NULL;
	if (srv_codec_read_record(path, fs->sign, blob, st, err) != 0)
		return -1;
	rc = pk_parse(blob->data, blob->len, NULL, doc, &end, why, sizeof(why));
	if (rc != 0) {
		srv_blob_release(blob);
		return srv_fail(err, rc == -ENOMEM ? RPC_E_ENOMEM : RPC_E_CORRUPT,
		                "cannot read call record '%s': %s", path, why);
	}
	return 0;
}

int srv_fstore_load(struct srv_fstore *fs, const char *key, struct srv_record *rec,
                    struct srv_error *err)
{
	char path[PATH_MAX];
	struct srv_blob blob = {0};
	struct pk_doc *doc = NULL;
	struct stat st;
	int rc;

	memset(rec, 0, sizeof(*rec));
	if (srv_fstore_path(fs, key, path, sizeof(path), err) != 0)
		return -1;
	if (parse_file(fs, path, &blob, &doc, &st, err) != 0) {
		if (err->code == RPC_E_ENOENT)
			srv_fail(err, RPC_E_ENOENT, "no call '%s' in the cache", key);
		return -1;
	}
	rc = srv_record_from_pickle(pk_doc_root(doc), key, path, rec, err);
	if (rc == 0 && isnan(rec->mtime))
		rec->mtime = ts_of(&st);
	pk_doc_free(doc);
	srv_blob_release(&blob);
	return rc;
}

int srv_fstore_unlink(struct srv_fstore *fs, const char *key, struct srv_error *err)
{
	char path[PATH_MAX];

	if (srv_fstore_path(fs, key, path, sizeof(path), err) != 0)
		return -1;
	if (unlink(path) != 0 && errno != ENOENT)
		return srv_fail(err, rpc_error_from_errno(errno), "cannot remove '%s': %s", path,
		                strerror(errno));
	return 0;
}

/*
 * Name (malloc'd, may be NULL) and mtime of a record, from the identity cache or by
 * parsing it. Returns 1 when the file has vanished, 0 otherwise, -1 on hard errors.
 */
static int summary(struct srv_fstore *fs, const uint8_t *bkey, const char *key, char **name,
                   double *mtime, struct srv_error *err)
{
	char path[PATH_MAX];
	struct srv_idcache_entry *e;
	struct srv_blob blob = {0};
	struct pk_doc *doc = NULL;
	struct stat st;
	const char *nm = NULL;
	size_t nl = 0;
	double ts = 0;
	int has_ts = 0;
	struct srv_error ignored;

	*name = NULL;
	if (srv_fstore_path(fs, key, path, sizeof(path), err) != 0)
		return -1;
	if (stat(path, &st) != 0)
		return 1;
	e = srv_idcache_get(&fs->info, bkey, &st);
	if (e) {
		*mtime = e->t;
		if (e->name && !(*name = strdup(e->name)))
			return srv_fail(err, RPC_E_ENOMEM, "out of memory");
		return 0;
	}
	*mtime = ts_of(&st);
	if (parse_file(fs, path, &blob, &doc, &st, &ignored) == 0) {
		if (srv_record_summary(pk_doc_root(doc), &nm, &nl, &ts, &has_ts) == 0) {
			*name = srv_strndup(nm, nl);
			if (has_ts)
				*mtime = ts;
		}
		pk_doc_free(doc);
		srv_blob_release(&blob);
	} else if (ignored.code == RPC_E_ENOENT) {
		return 1;
	} else if (ignored.code == RPC_E_ENOMEM) {
		return srv_fail(err, RPC_E_ENOMEM, "%s", ignored.message);
	}
	srv_idcache_put(&fs->info, bkey, &st, *mtime, 0, *name);
	return 0;
}

/*
 * Read-ahead for summaries. A detailed listing of calls reads every record file not in
 * the identity cache; read one at a time from a cold disk, each waits for its own I/O.
 * Before summarising index position i, the records up to i + PREFETCH_WINDOW (not
 * beyond end) that the identity cache cannot answer are opened, given to the kernel
 * with POSIX_FADV_WILLNEED (asynchronous read-ahead into the page cache, of at most
 * PREFETCH_BYTES each, so that the page cache used ahead stays bounded) and closed
 * again, so many reads are in flight while the earlier records are parsed in order.
 * The window is refilled in batches of at least half of it once half is consumed:
 * measured on a cold disk, that keeps the stats of the next batch from queueing
 * behind the reads of the current one, as a window sliding by one record does.
 * So that records already in the page cache cost nothing more, one record in every
 * PREFETCH_PROBE is probed with a read that must not wait (RWF_NOWAIT): when its bytes
 * are cached, or the identity cache knows it, the records up to the next probe are
 * taken as cached too and skipped.
 * Invariants: at most one descriptor is open at a time; nothing is written; a file
 * that vanishes, is not a regular file or fails to open is simply skipped (summary()
 * then decides what it is); positions below ahead have been offered already.
 */
#define PREFETCH_WINDOW 1024
#define PREFETCH_PROBE  64
#define PREFETCH_BYTES  16384

struct prefetch {
	size_t ahead; /* next position to offer */
	size_t probe; /* next position from which to probe */
	size_t skip;  /* positions below this are taken as cached */
};

/* True when the first byte of fd is in the page cache (false when unknown). */
static bool page_cached(int fd)
{
	char c;
	struct iovec v = {.iov_base = &c, .iov_len = 1};

	return preadv2(fd, &v, 1, 0, RWF_NOWAIT) == 1;
}

static void prefetch(struct srv_fstore *fs, size_t i, size_t end, struct prefetch *pf)
{
	size_t stop = i + PREFETCH_WINDOW < end ? i + PREFETCH_WINDOW : end;

	if (pf->ahead < i)
		pf->ahead = i;
	if (pf->ahead >= stop || pf->ahead - i > PREFETCH_WINDOW / 2)
		return; /* offer in batches of at least half a window */
	for (; pf->ahead < stop; pf->ahead++) {
		size_t pos = pf->ahead;
		const uint8_t *bk = srv_keyindex_key(&fs->index, pos);
		char key[RPC_KEY_LEN + 1], path[PATH_MAX];
		struct srv_error ignored;
		struct stat st;
		bool probe;
		int fd;

		if (pos < pf->skip)
			continue;
		srv_key_to_hex(bk, key);
		if (srv_fstore_path(fs, key, path, sizeof(path), &ignored) != 0)
			continue;
		if (stat(path, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0 ||
		    (uint64_t)st.st_size > SRV_RECORD_MAX)
			continue;
		probe = pos >= pf->probe;
		if (probe)
			pf->probe = pos + PREFETCH_PROBE;
		if (srv_idcache_get(&fs->info, bk, &st)) {
			if (probe) /* listed before: its neighbours likely were too */
				pf->skip = pos + PREFETCH_PROBE;
			continue;
		}
		/* O_NONBLOCK: a FIFO put there since the stat must not block the server */
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
		if (fd < 0)
			continue;
		if (probe && page_cached(fd))
			pf->skip = pos + PREFETCH_PROBE;
		else
			(void)posix_fadvise(fd, 0, PREFETCH_BYTES, POSIX_FADV_WILLNEED);
		close(fd);
	}
}

/* Size and mtime of a value file; 1 when it has vanished. */
static int value_info(struct srv_fstore *fs, const uint8_t *bkey, const char *key, int64_t *size,
                      double *mtime, struct srv_error *err)
{
	char path[PATH_MAX];
	struct srv_idcache_entry *e;
	struct stat st;
	uint64_t n;
	int fd;
	struct srv_error ignored;

	if (srv_fstore_path(fs, key, path, sizeof(path), err) != 0)
		return -1;
	/* O_NONBLOCK: a FIFO named like a key must not block the server in open */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		if (errno == ENOENT)
			return 1;
		*size = -1;
		*mtime = 0;
		return 0;
	}
	if (fstat(fd, &st) != 0) {
		close(fd);
		*size = -1;
		*mtime = 0;
		return 0;
	}
	*mtime = ts_of(&st);
	if (!S_ISREG(st.st_mode)) {
		*size = -1; /* not a value file: it fails to read */
		close(fd);
		return 0;
	}
	e = srv_idcache_get(&fs->info, bkey, &st);
	if (e) {
		*size = e->n;
	} else {
		*size = srv_codec_value_size(fd, path, &st, &n, &ignored) == 0 ? (int64_t)n : -1;
		srv_idcache_put(&fs->info, bkey, &st, 0, *size, NULL);
	}
	close(fd);
	return 0;
}

/*
 * Begins a page of at most limit entries of keys after `after` (NULL: from the
 * start): refreshes the index, allocates the entries and sets *start to the first
 * index position to consider. `doing` names the request for the error message.
 */
static int page_start(struct srv_fstore *fs, const char *after, size_t limit,
                      struct srv_page *page, size_t *start, const char *doing,
                      struct srv_error *err)
{
	uint8_t a[SRV_KEY_BYTES];

	memset(page, 0, sizeof(*page));
	if (srv_keyindex_refresh(&fs->index, err) != 0)
		return -1;
	if (after)
		srv_key_from_hex(after, a);
	page->entries = calloc(limit ? limit : 1, sizeof(*page->entries));
	if (!page->entries)
		return srv_fail(err, RPC_E_ENOMEM, "out of memory %s '%s'", doing, fs->dir);
	*start = srv_keyindex_after(&fs->index, after ? a : NULL);
	return 0;
}

int srv_fstore_list(struct srv_fstore *fs, const char *after, size_t limit, bool detail,
                    struct srv_page *page, struct srv_error *err)
{
	struct prefetch pf = {0};
	size_t i, end;

	if (page_start(fs, after, limit, page, &i, "listing", err) != 0)
		return -1;
	end = fs->index.n - i > limit ? i + limit : fs->index.n;
	for (; i < fs->index.n && page->n < limit; i++) {
		const uint8_t *bk = srv_keyindex_key(&fs->index, i);
		struct srv_entry *e = &page->entries[page->n];
		int rc = 0;

		srv_key_to_hex(bk, e->key);
		e->size = -1;
		if (detail) {
			if (fs->kind == SRV_CALLS) {
				/* entries that vanished are replaced from beyond end */
				prefetch(fs, i, end > i ? end : fs->index.n, &pf);
				rc = summary(fs, bk, e->key, &e->name, &e->mtime, err);
			} else {
				rc = value_info(fs, bk, e->key, &e->size, &e->mtime, err);
			}
			if (rc < 0) {
				srv_page_release(page);
				return -1;
			}
			if (rc == 1)
				continue; /* vanished since the scan */
		}
		page->n++;
	}
	page->complete = i >= fs->index.n;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int srv_fstore_names(struct srv_fstore *fs, const char *after, size_t limit, struct srv_names *out,
                     struct srv_error *err)
{
	char **all = NULL;
	struct prefetch pf = {0};
	size_t n = 0, i, j;
	int ret = -1;

	memset(out, 0, sizeof(*out));
	if (srv_keyindex_refresh(&fs->index, err) != 0)
		return -1;
	if (fs->index.n) {
		all = calloc(fs->index.n, sizeof(*all));
		if (!all)
			return srv_fail(err, RPC_E_ENOMEM, "out of memory listing names");
	}
	for (i = 0; i < fs->index.n; i++) {
		const uint8_t *bk = srv_keyindex_key(&fs->index, i);
		char key[RPC_KEY_LEN + 1], *name = NULL;
		double t;
		int rc;

		srv_key_to_hex(bk, key);
		prefetch(fs, i, fs->index.n, &pf);
		rc = summary(fs, bk, key, &name, &t, err);
		if (rc < 0)
			goto out;
		if (name)
			all[n++] = name;
	}
	if (n > 1)
		qsort(all, n, sizeof(*all), cmp_str);
	out->names = calloc(limit ? limit : 1, sizeof(*out->names));
	if (!out->names) {
		srv_fail(err, RPC_E_ENOMEM, "out of memory listing names");
		goto out;
	}
	out->complete = true;
	for (i = 0; i < n; i = j) {
		for (j = i + 1; j < n && strcmp(all[j], all[i]) == 0; j++)
			;
		if (after && strcmp(all[i], after) <= 0)
			continue;
		if (out->n == limit) {
			out->complete = false;
			break;
		}
		out->names[out->n++] = all[i];
		all[i] = NULL;
	}
	ret = 0;
out:
	for (i = 0; i < n; i++)
		free(all[i]);
	free(all);
	if (ret != 0)
		srv_names_release(out);
	return ret;
}

int srv_fstore_query(struct srv_fstore *fs, const msgpack_object *tmpl, const char *after,
                     size_t limit, bool detail, struct srv_page *page, struct srv_error *err)
{
	struct prefetch pf = {0};
	size_t nlen = 0, i;
	const char *want = srv_query_name(tmpl, &nlen);

	if (page_start(fs, after, limit, page, &i, "querying", err) != 0)
		return -1;
	page->complete = true;
	for (; i < fs->index.n; i++) {
		const uint8_t *bk = srv_keyindex_key(&fs->index, i);
		char key[RPC_KEY_LEN + 1];
		struct srv_record rec;

		srv_key_to_hex(bk, key);
		if (want) {
			/* prefilter on the cached summary's name */
			char *name = NULL;
			double t;
			bool same;
			int rc;

			prefetch(fs, i, fs->index.n, &pf);
			rc = summary(fs, bk, key, &name, &t, err);

			if (rc < 0) {
				srv_page_release(page);
				return -1;
			}
			same = name && strlen(name) == nlen && memcmp(name, want, nlen) == 0;
			free(name);
			if (rc == 1 || !same)
				continue;
		}
		if (srv_fstore_load(fs, key, &rec, err) != 0) {
			if (err->code == RPC_E_ENOMEM) {
				srv_page_release(page);
				return -1;
			}
			continue; /* vanished, unreadable or unsigned: not a match */
		}
		if (srv_query_offer(page, limit, tmpl, key, &rec, detail))
			break;
	}
	return 0;
}

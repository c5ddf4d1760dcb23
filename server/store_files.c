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
#include <pthread.h>
#include <stdatomic.h>
#include <sys/uio.h>
#include <unistd.h>

#include "pickle.h"
#include "query.h"
#include "record.h"

static double ts_of(const struct stat *st)
{
	return (double)st->st_mtim.tv_sec + st->st_mtim.tv_nsec / 1e9;
}

/* A record file's stamp (srv_record.stamp): its identity. A rewrite by temporary file
 * and rename gives a new inode, a rewrite in place a new mtime and ctime. */
static uint64_t file_stamp(const struct stat *st)
{
	const int64_t id[] = {
	    (int64_t)st->st_dev,          (int64_t)st->st_ino,          (int64_t)st->st_size,
	    (int64_t)st->st_mtim.tv_sec,  (int64_t)st->st_mtim.tv_nsec, (int64_t)st->st_ctim.tv_sec,
	    (int64_t)st->st_ctim.tv_nsec,
	};
	uint64_t h = srv_hash64(SRV_HASH64_INIT, id, sizeof(id));

	return h ? h : 1;
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
	if (lstat(path, st) != 0) {
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

/*
 * Reads and parses the record file, of at most max bytes (see srv_codec_read_record);
 * *doc and *blob are the caller's to free.
 */
static int parse_file(struct srv_fstore *fs, const char *path, uint64_t max, struct srv_blob *blob,
                      struct pk_doc **doc, struct stat *st, struct srv_error *err)
{
	char why[160];
	size_t end;
	int rc;

	*doc = NULL;
	if (srv_codec_read_record(path, fs->sign, max, blob, st, err) != 0)
		return -1;
	rc = pk_parse(blob->data, blob->len, NULL, doc, &end, why, sizeof(why));
	if (rc != 0) {
		srv_blob_release(blob);
		return srv_fail(err, rc == -ENOMEM ? RPC_E_ENOMEM : RPC_E_CORRUPT,
		                "cannot read call record '%s': %s", path, why);
	}
	return 0;
}

int srv_fstore_open(struct srv_fstore *fs, const char *key, char path[PATH_MAX], struct stat *st,
                    struct srv_error *err)
{
	if (srv_fstore_path(fs, key, path, PATH_MAX, err) != 0)
		return -1;
	return srv_codec_open(path, st, err);
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
	if (parse_file(fs, path, SRV_RECORD_MAX, &blob, &doc, &st, err) != 0) {
		if (err->code == RPC_E_ENOENT)
			srv_fail(err, RPC_E_ENOENT, "no call '%s' in the cache", key);
		return -1;
	}
	rc = srv_record_from_pickle(pk_doc_root(doc), key, path, rec, err);
	if (rc == 0 && isnan(rec->mtime))
		rec->mtime = ts_of(&st);
	if (rc == 0)
		rec->stamp = file_stamp(&st);
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
 * Record summaries (name and mtime), many at a time.
 *
 * A detailed listing of calls, `names` and a `query` by name need the summary of every
 * record the identity cache cannot answer: a stat, an open, a read and a parse each.
 * Done one at a time from a cold disk, each waits for its own I/O; on a network
 * filesystem (NFS, Lustre, GPFS: where clusters keep caches) even the open and stat
 * are round trips. So a batch of index positions is split into chunks of SUM_CHUNK
 * that up to SUM_THREADS threads (the caller's included) claim in order, and before
 * summarising chunk c a thread makes sure that the chunks up to c + SUM_AHEAD have
 * been offered to the kernel for read-ahead (beyond a large batch too, as far as it
 * is long and at most SUM_AHEAD chunks, where the next batch or the next page of a
 * listing will start): each record is opened, given
 * POSIX_FADV_WILLNEED for at most SUM_READAHEAD bytes (asynchronous read-ahead, so
 * that the page cache used ahead stays bounded) and closed, so many reads are in
 * flight while earlier records are parsed. Records already in the page cache cost
 * nothing more: the first record of a chunk is probed with a read that must not wait
 * (RWF_NOWAIT); when its bytes are cached, or the identity cache knows it, the chunk
 * is taken as cached and not offered.
 *
 * Invariants: the identity cache is only read while threads run, and only the calling
 * thread writes to it, after they have all been joined; each thread holds at most one
 * descriptor at a time, and records larger than SUM_RECORD_SHARED (on disk or
 * decompressed) are read by one thread at a time; nothing is written to the cache
 * directory; a file that vanishes is SUM_GONE, one that cannot be read or parsed is
 * summarised from its stat alone (no name, its file mtime); the only errors are
 * running out of memory and a path too long.
 */
#define SUM_THREADS      8
#define SUM_CHUNK        64
#define SUM_AHEAD        16
#define SUM_READAHEAD    16384
#define SUM_RECORD_SHARED (1024u * 1024)
#define SUM_MIN_PARALLEL (2 * SUM_CHUNK)
/* Positions summarised at once where a request needs all of them (bounds memory). */
#define SUM_BATCH        4096

enum sum_state { SUM_OK, SUM_GONE, SUM_FRESH };

struct sum_out {
	char *name;   /* malloc'd, NULL when unknown */
	double mtime;
	struct stat st; /* SUM_FRESH: the file parsed, for the identity cache */
	enum sum_state state;
};

struct sum_job {
	struct srv_fstore *fs;
	size_t lo, n, chunks; /* positions lo .. lo + n of the index */
	size_t ra_n, ra_chunks; /* read ahead up to lo + ra_n (>= n: into the next batch) */
	struct sum_out *out;  /* n */
	atomic_size_t next;    /* the next chunk to summarise */
	atomic_size_t offered; /* the next chunk to read ahead */
	atomic_bool failed;
	pthread_mutex_t big;   /* held while a record larger than SUM_RECORD_SHARED is read */
	pthread_mutex_t m;     /* guards err */
	struct srv_error err;  /* the first failure */
};

static void sum_fail(struct sum_job *j, const struct srv_error *e)
{
	pthread_mutex_lock(&j->m);
	if (!atomic_load(&j->failed)) {
		j->err = *e;
		atomic_store(&j->failed, true);
	}
	pthread_mutex_unlock(&j->m);
}

/* True when the first byte of fd is in the page cache (false when unknown). */
static bool page_cached(int fd)
{
	char c;
	struct iovec v = {.iov_base = &c, .iov_len = 1};

	return preadv2(fd, &v, 1, 0, RWF_NOWAIT) == 1;
}

/* Offers the records of chunk c to the kernel's read-ahead (see above). */
static void sum_readahead(struct sum_job *j, size_t c)
{
	size_t first = c * SUM_CHUNK;
	size_t last = first + SUM_CHUNK < j->ra_n ? first + SUM_CHUNK : j->ra_n;
	bool probed = false;

	for (size_t k = first; k < last; k++) {
		const uint8_t *bk = srv_keyindex_key(&j->fs->index, j->lo + k);
		char key[RPC_KEY_LEN + 1], path[PATH_MAX];
		struct srv_error ignored;
		struct stat st;
		int fd;

		srv_key_to_hex(bk, key);
		if (srv_fstore_path(j->fs, key, path, sizeof(path), &ignored) != 0)
			continue;
		if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0 ||
		    (uint64_t)st.st_size > SRV_RECORD_MAX)
			continue;
		if (srv_idcache_get(&j->fs->info, bk, &st)) {
			if (!probed)
				return; /* listed before: its neighbours likely were too */
			continue;
		}
		/* O_NONBLOCK, O_NOFOLLOW: what was put there since the lstat (a FIFO, a
		 * symbolic link) must neither block the server nor be followed */
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW);
		if (fd < 0)
			continue;
		if (!probed && page_cached(fd)) {
			close(fd);
			return;
		}
		probed = true;
		(void)posix_fadvise(fd, 0, SUM_READAHEAD, POSIX_FADV_WILLNEED);
		close(fd);
	}
}

/* Reads the record at path (at most max bytes) into o's name and mtime. */
static int sum_parse(struct srv_fstore *fs, const char *path, uint64_t max, struct sum_out *o,
                     struct srv_error *err)
{
	struct srv_blob blob = {0};
	struct pk_doc *doc = NULL;
	const char *nm = NULL;
	size_t nl = 0;
	double ts = 0;
	int has_ts = 0;

	if (parse_file(fs, path, max, &blob, &doc, &o->st, err) != 0)
		return -1;
	if (srv_record_summary(pk_doc_root(doc), &nm, &nl, &ts, &has_ts) == 0) {
		o->name = srv_memdupz(nm, nl);
		if (has_ts)
			o->mtime = ts;
	}
	pk_doc_free(doc);
	srv_blob_release(&blob);
	return 0;
}

/* The summary of position lo + k into out[k]. */
static void sum_one(struct sum_job *j, size_t k)
{
	struct srv_fstore *fs = j->fs;
	const uint8_t *bk = srv_keyindex_key(&fs->index, j->lo + k);
	struct sum_out *o = &j->out[k];
	char key[RPC_KEY_LEN + 1], path[PATH_MAX];
	struct srv_idcache_entry *e;
	struct srv_error err;
	int rc;

	o->state = SUM_GONE;
	srv_key_to_hex(bk, key);
	if (srv_fstore_path(fs, key, path, sizeof(path), &err) != 0) {
		sum_fail(j, &err);
		return;
	}
	if (lstat(path, &o->st) != 0)
		return;
	e = srv_idcache_get(&fs->info, bk, &o->st);
	if (e) {
		o->mtime = e->t;
		if (e->name && !(o->name = strdup(e->name))) {
			srv_fail(&err, RPC_E_ENOMEM, "out of memory");
			sum_fail(j, &err);
			return;
		}
		o->state = SUM_OK;
		return;
	}
	o->mtime = ts_of(&o->st);
	/* Records of up to SUM_RECORD_SHARED bytes (read and decompressed) are parsed by
	 * every thread at once, a larger one by one thread at a time: memory stays near
	 * that of one thread, not SUM_THREADS records of SRV_RECORD_MAX. */
	rc = sum_parse(fs, path, SUM_RECORD_SHARED, o, &err);
	if (rc != 0 && err.code == RPC_E_EFBIG) {
		pthread_mutex_lock(&j->big);
		rc = sum_parse(fs, path, SRV_RECORD_MAX, o, &err);
		pthread_mutex_unlock(&j->big);
	}
	if (rc != 0 && err.code == RPC_E_ENOENT)
		return;
	if (rc != 0 && err.code == RPC_E_ENOMEM) {
		sum_fail(j, &err);
		return;
	}
	o->state = SUM_FRESH;
}

static void *sum_worker(void *arg)
{
	struct sum_job *j = arg;

	for (;;) {
		size_t c = atomic_fetch_add(&j->next, 1), o;

		if (c >= j->chunks || atomic_load(&j->failed))
			return NULL;
		while ((o = atomic_load(&j->offered)) < j->ra_chunks && o <= c + SUM_AHEAD)
			if (atomic_compare_exchange_weak(&j->offered, &o, o + 1))
				sum_readahead(j, o);
		for (size_t k = c * SUM_CHUNK; k < j->n && k < (c + 1) * SUM_CHUNK; k++)
			sum_one(j, k);
	}
}

static void sum_release(struct sum_out *out, size_t n)
{
	for (size_t k = 0; k < n; k++)
		free(out[k].name);
	free(out);
}

/*
 * The summaries of index positions lo .. lo + n into *out (n entries, the caller's to
 * free with sum_release; SUM_GONE entries have vanished). Returns 0 or -1 with err.
 */
static int summaries(struct srv_fstore *fs, size_t lo, size_t n, struct sum_out **out,
                     struct srv_error *err)
{
	struct sum_job j = {.fs = fs, .lo = lo, .n = n};
	pthread_t tid[SUM_THREADS - 1];
	size_t started = 0, ahead;

	*out = NULL;
	if (!n)
		return 0;
	if (!(j.out = calloc(n, sizeof(*j.out))))
		return srv_fail(err, RPC_E_ENOMEM, "out of memory summarising '%s'", fs->dir);
	j.chunks = (n + SUM_CHUNK - 1) / SUM_CHUNK;
	/* The next batch (the next page of a listing) most likely starts where this one
	 * ends: its first records are read ahead too, so that it does not start cold;
	 * as many as this batch has, at most SUM_AHEAD chunks, none after a small batch
	 * (a lookup's, which will not continue). */
	ahead = n < SUM_MIN_PARALLEL ? 0 : n < SUM_AHEAD * SUM_CHUNK ? n : SUM_AHEAD * SUM_CHUNK;
	j.ra_n = fs->index.n - lo - n > ahead ? n + ahead : fs->index.n - lo;
	j.ra_chunks = (j.ra_n + SUM_CHUNK - 1) / SUM_CHUNK;
	atomic_init(&j.next, 0);
	atomic_init(&j.offered, 0);
	atomic_init(&j.failed, false);
	pthread_mutex_init(&j.m, NULL);
	pthread_mutex_init(&j.big, NULL);
	/* a thread that cannot be started leaves its share to the others */
	while (n >= SUM_MIN_PARALLEL && started < SUM_THREADS - 1 && started + 1 < j.chunks &&
	       pthread_create(&tid[started], NULL, sum_worker, &j) == 0)
		started++;
	sum_worker(&j);
	for (size_t t = 0; t < started; t++)
		pthread_join(tid[t], NULL);
	pthread_mutex_destroy(&j.m);
	pthread_mutex_destroy(&j.big);
	if (atomic_load(&j.failed)) {
		*err = j.err;
		sum_release(j.out, n);
		return -1;
	}
	for (size_t k = 0; k < n; k++) {
		struct sum_out *o = &j.out[k];

		if (o->state == SUM_FRESH) {
			srv_idcache_put(&fs->info, srv_keyindex_key(&fs->index, lo + k), &o->st,
			                o->mtime, 0, o->name);
			o->state = SUM_OK;
		}
	}
	*out = j.out;
	return 0;
}

/* Size (-1: unknown, see srv_codec_value_size) and mtime of a value file; 1 when it has
 * vanished. */
static int value_info(struct srv_fstore *fs, const uint8_t *bkey, const char *key, int64_t *size,
                      double *mtime, struct srv_error *err)
{
	char path[PATH_MAX];
	struct srv_idcache_entry *e;
	struct stat st;
	uint64_t n;
	int fd;
	struct srv_error why;

	fd = srv_fstore_open(fs, key, path, &st, &why);
	if (fd < 0) {
		if (why.code == RPC_E_ENOENT)
			return 1;
		if (why.code == RPC_E_EINVAL) /* the path is too long */
			return srv_fail(err, why.code, "%s", why.message);
		/* not a value file (a symbolic link, a directory...): listed, and it
		 * fails to read */
		*size = -1;
		*mtime = 0;
		return 0;
	}
	*mtime = ts_of(&st);
	e = srv_idcache_get(&fs->info, bkey, &st);
	if (e) {
		*size = e->n;
	} else {
		/* -1 too for a large compressed value: the client asks stat_value */
		*size = srv_codec_value_size(fd, path, &st, &n, &why) == 0 ? (int64_t)n : -1;
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

/* Appends the records of positions i .. i + n that have not vanished to the page. */
static int list_summaries(struct srv_fstore *fs, size_t i, size_t n, struct srv_page *page,
                          struct srv_error *err)
{
	struct sum_out *sum;

	if (summaries(fs, i, n, &sum, err) != 0)
		return -1;
	for (size_t k = 0; k < n; k++) {
		struct srv_entry *e = &page->entries[page->n];

		if (sum[k].state == SUM_GONE)
			continue; /* vanished since the scan */
		srv_key_to_hex(srv_keyindex_key(&fs->index, i + k), e->key);
		e->size = -1;
		e->mtime = sum[k].mtime;
		e->stamp = file_stamp(&sum[k].st);
		e->name = sum[k].name;
		sum[k].name = NULL;
		page->n++;
	}
	sum_release(sum, n);
	return 0;
}

int srv_fstore_list(struct srv_fstore *fs, const char *after, size_t limit, bool detail,
                    struct srv_page *page, struct srv_error *err)
{
	size_t i;

	if (page_start(fs, after, limit, page, &i, "listing", err) != 0)
		return -1;
	if (detail && fs->kind == SRV_CALLS) {
		/* entries that vanished are replaced from beyond the first batch */
		while (i < fs->index.n && page->n < limit) {
			size_t n = limit - page->n < fs->index.n - i ? limit - page->n
			                                              : fs->index.n - i;

			if (list_summaries(fs, i, n, page, err) != 0) {
				srv_page_release(page);
				return -1;
			}
			i += n;
		}
		page->complete = i >= fs->index.n;
		return 0;
	}
	for (; i < fs->index.n && page->n < limit; i++) {
		const uint8_t *bk = srv_keyindex_key(&fs->index, i);
		struct srv_entry *e = &page->entries[page->n];

		srv_key_to_hex(bk, e->key);
		e->size = -1;
		if (detail) {
			int rc = value_info(fs, bk, e->key, &e->size, &e->mtime, err);

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
	for (i = 0; i < fs->index.n; i += j) {
		struct sum_out *sum;

		j = fs->index.n - i < SUM_BATCH ? fs->index.n - i : SUM_BATCH;
		if (summaries(fs, i, j, &sum, err) != 0)
			goto out;
		for (size_t k = 0; k < j; k++) {
			if (sum[k].state != SUM_GONE && sum[k].name) {
				all[n++] = sum[k].name;
				sum[k].name = NULL;
			}
		}
		sum_release(sum, j);
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
	size_t nlen = 0, i, batch = 0, grow = SUM_MIN_PARALLEL;
	const char *want = srv_query_name(tmpl, &nlen);
	bool full = false;

	if (page_start(fs, after, limit, page, &i, "querying", err) != 0)
		return -1;
	page->complete = true;
	for (; i < fs->index.n && !full; i += batch) {
		struct sum_out *sum = NULL;

		/* With a name, prefilter a batch at a time on the records' summaries: small
		 * first (a lookup wants one match, often near), doubling up to SUM_BATCH. */
		batch = !want ? 1 : fs->index.n - i < grow ? fs->index.n - i : grow;
		if (grow < SUM_BATCH)
			grow *= 2;
		if (want && summaries(fs, i, batch, &sum, err) != 0) {
			srv_page_release(page);
			return -1;
		}
		for (size_t k = 0; k < batch && !full; k++) {
			char key[RPC_KEY_LEN + 1];
			struct srv_record rec;

			if (sum && (sum[k].state == SUM_GONE || !sum[k].name ||
			            strlen(sum[k].name) != nlen || memcmp(sum[k].name, want, nlen) != 0))
				continue;
			srv_key_to_hex(srv_keyindex_key(&fs->index, i + k), key);
			if (srv_fstore_load(fs, key, &rec, err) != 0) {
				if (err->code == RPC_E_ENOMEM) {
					if (sum)
						sum_release(sum, batch);
					srv_page_release(page);
					return -1;
				}
				continue; /* vanished, unreadable or unsigned: not a match */
			}
			full = srv_query_offer(page, limit, tmpl, key, &rec, detail);
		}
		if (sum)
			sum_release(sum, batch);
	}
	return 0;
}

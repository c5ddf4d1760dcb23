/*
 * cache.c: the storage contract of cache.h on top of the call storage (record
 * files, store_files.c, or SQLite, store_sql.c) and the value files: layout
 * detection, fleche's prefix semantics (contains, expand, shrink, evict) and the
 * small LRU of open values.
 *
 * Invariants:
 *   1. Threads: the cache may be used from several threads at once. Two mutexes
 *      serialise what is not thread-safe below: calls_lock guards the call storage
 *      (c->calls, or c->db, a SQLite connection), values_lock the value storage
 *      (c->values: its key index and summaries), the LRU, the list of values being
 *      opened and every srv_value's reference count. A function that needs both
 *      takes calls_lock first. Neither is held while a value is decompressed
 *      (invariant 4), so a slow value holds up no other request. With SQL, the scans
 *      (query, names, counting calls) run on connections of their own, up to
 *      SRV_SQL_SCANS of them, opened when first needed and each used by one thread
 *      at a time (scan_lock), so that they hold up neither each other nor the short
 *      lookups on c->db; a slow operation on record files (a query reading many
 *      records) or on c->db (SQLite waiting up to SRV_SQL_BUSY_MS for a writer)
 *      holds up other call storage operations only.
 *   2. Keys and prefixes are checked with rpc_key_prefix_valid/rpc_key_valid before
 *      any path or SQL statement sees them.
 *   3. An open value is reference counted: the LRU holds one reference, every
 *      srv_value_open one more; bytes stay mapped until the last is dropped. The LRU
 *      holds at most SRV_VALUE_LRU values, and beyond the most recent one at most
 *      SRV_VALUE_LRU_COPIES bytes of decompressed copies (so that stat of many large
 *      compressed values does not keep them all in memory), each keyed by key and
 *      file identity (dev, ino, size, mtime), so a replaced file is never served
 *      from the LRU.
 *   4. A value is decoded (gunzip, signature check) with no lock held, once: the
 *      first srv_value_open of a key and file identity puts an opening on
 *      c->openings, and any srv_value_open of the same while it runs waits for it
 *      (on c->opened) and shares its result, so that a large compressed value is
 *      inflated once however many requests ask for it at once.
 *   5. A value found to inflate beyond c->gunzip_max (EFBIG) is remembered, by key
 *      and file identity, among the last SRV_VALUE_REFUSED such values: asking for
 *      it again is EFBIG at once, without inflating it again.
 */
#include "cache.h"
#include "textcache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "filecodec.h"
#include "keyindex.h"
#include "query.h"
#include "record.h"
#include "stack.h"
#include "store_files.h"
#include "store_sql.h"

#define SRV_VALUE_LRU 8
/* SQLite connections for scans (invariant 1). */
#define SRV_SQL_SCANS 3
/* Values remembered as inflating beyond the limit (invariant 5). */
#define SRV_VALUE_REFUSED 8

struct srv_value {
	struct srv_cache *cache;
	unsigned refs;
	char key[RPC_KEY_LEN + 1];
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
	double mtime_f;
	struct srv_blob blob;
	char *path;             /* the value file, for messages */
	int fd;                 /* the value file, open while blob maps it (srv_value_check) */
	struct srv_value *next; /* LRU order, most recent first */
	bool cached;
};

/* A value being decoded with no lock held (invariant 4). */
struct opening {
	struct opening *next;
	char key[RPC_KEY_LEN + 1];
	struct stat st;        /* the file's identity (same_file) */
	unsigned refs;         /* the opener and every waiter */
	unsigned waiters;
	bool done;
	struct srv_value *v;   /* the result: one reference per waiter; NULL on failure */
	struct srv_error err;  /* the failure */
};

/* A value refused as too large once inflated (invariant 5). */
struct refused {
	char key[RPC_KEY_LEN + 1]; /* "" when unused */
	struct stat st;
	struct srv_error err;
};

struct srv_cache {
	pthread_mutex_t calls_lock;  /* invariant 1 */
	pthread_mutex_t values_lock; /* invariant 1 */
	pthread_cond_t opened;       /* an opening is done */
	struct opening *openings;
	pthread_mutex_t scan_lock; /* invariant 1: the scan connections' states */
	pthread_cond_t scan_free;
	struct srv_sqlstore scan[SRV_SQL_SCANS];
	bool scan_open[SRV_SQL_SCANS], scan_busy[SRV_SQL_SCANS];
	struct refused refused[SRV_VALUE_REFUSED]; /* values_lock */
	size_t refused_next;
	char *root, *calls_path, *calls_url, *values_path;
	bool sql, read_only;
	char serializer[16]; /* "" when not known */
	bool compress_values, compress_calls;
	uint64_t gunzip_max; /* the most a gzip value may inflate to */
	struct srv_hmac_key keys[SRV_MAX_HMAC_KEYS];
	size_t nkeys;
	struct srv_sign sign;
	struct srv_fstore calls;
	struct srv_sqlstore db;
	struct srv_fstore values;
	struct srv_value *lru;
	struct srv_stack stack; /* layers of a stack (stack.n > 0): everything else unused */
	struct srv_textcache texts; /* rendered json views (views.c) */
};

/* A list of full keys (candidates of a prefix), ascending. */
struct keylist {
	char (*k)[RPC_KEY_LEN + 1];
	size_t n, total;
};

static const char *kind_name(enum srv_kind kind)
{
	return kind == SRV_CALLS ? "call" : "value";
}

/* ---- opening ---- */

static char *absolute(const char *path)
{
	char buf[PATH_MAX], *r, *out;
	size_t n;

	r = realpath(path, NULL);
	if (r)
		return r;
	if (path[0] == '/')
		return strdup(path);
	if (!getcwd(buf, sizeof(buf)))
		return NULL;
	n = strlen(buf) + strlen(path) + 2;
	out = malloc(n);
	if (out)
		snprintf(out, n, "%s/%s", buf, path);
	return out;
}

static char *join(const char *a, const char *b)
{
	size_t n = strlen(a) + strlen(b) + 2;
	char *out = malloc(n);

	if (out)
		snprintf(out, n, "%s/%s", a, b);
	return out;
}

/*
 * path made absolute with its directory part resolved (symbolic links allowed there)
 * and its last component kept as it is, so that the file itself can be opened
 * without following a symbolic link (store_sql.h invariant 5).
 */
static char *absolute_entry(const char *path)
{
	const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path;
	char *dir, *absdir, *out;

	if (!*base)
		return absolute(path); /* a trailing slash: not a file */
	dir = !slash ? strdup(".")
	      : slash == path ? strdup("/")
	                      : srv_memdupz(path, (size_t)(slash - path));
	absdir = dir ? absolute(dir) : NULL;
	out = absdir ? join(strcmp(absdir, "/") == 0 ? "" : absdir, base) : NULL;
	free(dir);
	free(absdir);
	return out;
}

static bool is_file(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* The URL with anything between "://" and '@' (a password) replaced by "***". */
static bool is_dir(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static char *redact_url(const char *url)
{
	const char *s = strstr(url, "://"), *at, *slash;
	char *out;
	size_t n;

	if (!s)
		return strdup(url);
	s += 3;
	at = strchr(s, '@');
	slash = strchr(s, '/');
	if (!at || (slash && slash < at))
		return strdup(url);
	n = (size_t)(s - url) + 3 + strlen(at) + 1;
	out = malloc(n);
	if (out)
		snprintf(out, n, "%.*s***%s", (int)(s - url), url, at);
	return out;
}

/* The database path of "sqlite:///PATH" (relative to the cwd; 4 slashes: absolute). */
static char *sqlite_path(const char *url, struct srv_error *err)
{
	const char *p = url + strlen("sqlite:///");
	size_t n = strcspn(p, "?");
	char *rel, *abs;

	if (n == 0) {
		srv_fail(err, RPC_E_EINVAL, "'%s' names no database file", url);
		return NULL;
	}
	rel = srv_memdupz(p, n);
	if (!rel) {
		srv_fail(err, RPC_E_ENOMEM, "out of memory");
		return NULL;
	}
	abs = absolute_entry(rel);
	free(rel);
	if (!abs)
		srv_fail(err, RPC_E_ENOMEM, "out of memory");
	return abs;
}

static int resolve_layout(struct srv_cache *c, const struct srv_config *cfg, struct srv_error *err)
{
	struct stat st;
	char *db;

	if (cfg->root) {
		if (stat(cfg->root, &st) != 0)
			return srv_fail(err, rpc_error_from_errno(errno),
			                "cannot open cache root '%s': %s", cfg->root,
			                strerror(errno));
		if (!S_ISDIR(st.st_mode))
			return srv_fail(err, RPC_E_EINVAL, "cache root '%s' is not a directory",
			                cfg->root);
		if (!(c->root = absolute(cfg->root)))
			return srv_fail(err, RPC_E_ENOMEM, "out of memory");
	}
	if (cfg->calls) {
		if (strncmp(cfg->calls, "sqlite:", 7) == 0) {
			if (strncmp(cfg->calls, "sqlite:///", 10) != 0)
				return srv_fail(err, RPC_E_EINVAL,
				                "'%s' is not a sqlite:///PATH database URL",
				                cfg->calls);
			c->sql = true;
			if (!(c->calls_path = sqlite_path(cfg->calls, err)))
				return -1;
			c->calls_url = redact_url(cfg->calls);
		} else {
			/* an explicit directory must exist (a typo must not serve an empty
			 * cache); a regular file there is taken as a SQLite database */
			if (stat(cfg->calls, &st) != 0)
				return srv_fail(err, rpc_error_from_errno(errno),
				                "cannot open call storage '%s': %s", cfg->calls,
				                strerror(errno));
			c->sql = S_ISREG(st.st_mode);
			c->calls_path = c->sql ? absolute_entry(cfg->calls) : absolute(cfg->calls);
		}
	} else if (c->root) {
		if (!(db = join(c->root, "calls.db")))
			return srv_fail(err, RPC_E_ENOMEM, "out of memory");
		if (is_file(db)) {
			c->sql = true;
			c->calls_path = db;
		} else {
			free(db);
			c->calls_path = join(c->root, "calls");
		}
	} else {
		return srv_fail(err, RPC_E_EINVAL, "no cache root and no call storage given");
	}
	if (!c->calls_path)
		return srv_fail(err, RPC_E_ENOMEM, "out of memory");
	if (c->sql && !c->calls_url) {
		size_t n = strlen(c->calls_path) + 16;

		if ((c->calls_url = malloc(n)))
			snprintf(c->calls_url, n, "sqlite:///%s", c->calls_path);
	}
	if (c->sql && !c->calls_url)
		return srv_fail(err, RPC_E_ENOMEM, "out of memory");
	if (cfg->values) {
		if (stat(cfg->values, &st) != 0)
			return srv_fail(err, rpc_error_from_errno(errno),
			                "cannot open value storage '%s': %s", cfg->values,
			                strerror(errno));
		if (!S_ISDIR(st.st_mode))
			return srv_fail(err, RPC_E_EINVAL, "value storage '%s' is not a directory",
			                cfg->values);
		c->values_path = absolute(cfg->values);
	} else if (c->root)
		c->values_path = join(c->root, "values");
	else
		return srv_fail(err, RPC_E_EINVAL, "no cache root and no value directory given");
	if (!c->values_path)
		return srv_fail(err, RPC_E_ENOMEM, "out of memory");
	return 0;
}

int srv_cache_open(const struct srv_config *cfg, struct srv_cache **out, struct srv_error *err)
{
	struct srv_cache *c = calloc(1, sizeof(*c));

	*out = NULL;
	if (!c)
		return srv_fail(err, RPC_E_ENOMEM, "out of memory");
	pthread_mutex_init(&c->calls_lock, NULL);
	pthread_mutex_init(&c->scan_lock, NULL);
	pthread_cond_init(&c->scan_free, NULL);
	pthread_mutex_init(&c->values_lock, NULL);
	pthread_cond_init(&c->opened, NULL);
	srv_textcache_init(&c->texts);
	c->read_only = cfg->read_only;
	if (cfg->serializer)
		snprintf(c->serializer, sizeof(c->serializer), "%s", cfg->serializer);
	c->compress_values = cfg->compress_values;
	c->compress_calls = cfg->compress_calls;
	c->gunzip_max = cfg->gunzip_max ? cfg->gunzip_max : SRV_GUNZIP_MAX_DEFAULT;
	if (cfg->nkeys > SRV_MAX_HMAC_KEYS) {
		srv_fail(err, RPC_E_EINVAL, "at most %d HMAC keys", SRV_MAX_HMAC_KEYS);
		goto fail;
	}
	for (size_t i = 0; i < cfg->nkeys; i++) {
		c->keys[i].bytes = malloc(cfg->keys[i].len ? cfg->keys[i].len : 1);
		if (!c->keys[i].bytes) {
			srv_fail(err, RPC_E_ENOMEM, "out of memory");
			goto fail;
		}
		if (cfg->keys[i].len)
			memcpy(c->keys[i].bytes, cfg->keys[i].bytes, cfg->keys[i].len);
		c->keys[i].len = cfg->keys[i].len;
		c->nkeys++;
	}
	c->sign.keys = c->keys;
	c->sign.nkeys = c->nkeys;
	if (resolve_layout(c, cfg, err) != 0)
		goto fail;
	if (c->sql) {
		if (srv_sql_open(&c->db, c->calls_path, err) != 0)
			goto fail;
	} else if (srv_fstore_init(&c->calls, c->calls_path, SRV_CALLS, &c->sign, err) != 0) {
		goto fail;
	}
	if (srv_fstore_init(&c->values, c->values_path, SRV_VALUES, &c->sign, err) != 0)
		goto fail;
	*out = c;
	return 0;
fail:
	srv_cache_free(c);
	return -1;
}

static void value_unref(struct srv_value *v)
{
	if (v && --v->refs == 0) {
		srv_blob_release(&v->blob);
		if (v->fd >= 0)
			close(v->fd);
		free(v->path);
		free(v);
	}
}

int srv_cache_stack(struct srv_cache **layers, size_t n, struct srv_cache **out,
		    struct srv_error *err)
{
	struct srv_cache *c = NULL;

	*out = NULL;
	if (n < 2 || n > SRV_STACK_MAX) {
		srv_fail(err, RPC_E_EINVAL, "a stack has 2 to %d layers, not %zu", SRV_STACK_MAX, n);
		goto fail;
	}
	c = calloc(1, sizeof(*c));
	if (!c || !(c->stack.layers = calloc(n, sizeof(*layers)))) {
		srv_fail(err, RPC_E_ENOMEM, "out of memory");
		goto fail;
	}
	memcpy(c->stack.layers, layers, n * sizeof(*layers));
	c->stack.n = n;
	srv_textcache_init(&c->texts);
	c->read_only = layers[0]->read_only;
	*out = c;
	return 0;
fail:
	free(c);
	for (size_t i = 0; i < n; i++)
		srv_cache_free(layers[i]);
	return -1;
}

void srv_cache_free(struct srv_cache *c)
{
	if (!c)
		return;
	if (c->stack.n) {
		for (size_t i = 0; i < c->stack.n; i++)
			srv_cache_free(c->stack.layers[i]);
		free(c->stack.layers);
		srv_textcache_release(&c->texts);
		free(c);
		return;
	}
	while (c->lru) {
		struct srv_value *v = c->lru;

		c->lru = v->next;
		v->cached = false;
		value_unref(v);
	}
	for (size_t i = 0; i < SRV_SQL_SCANS; i++)
		if (c->scan_open[i])
			srv_sql_close(&c->scan[i]);
	if (c->sql)
		srv_sql_close(&c->db);
	else
		srv_fstore_release(&c->calls);
	srv_fstore_release(&c->values);
	for (size_t i = 0; i < c->nkeys; i++) {
		if (c->keys[i].bytes)
			memset(c->keys[i].bytes, 0, c->keys[i].len);
		free(c->keys[i].bytes);
	}
	free(c->root);
	free(c->calls_path);
	free(c->calls_url);
	free(c->values_path);
	srv_textcache_release(&c->texts);
	pthread_cond_destroy(&c->opened);
	pthread_mutex_destroy(&c->values_lock);
	pthread_cond_destroy(&c->scan_free);
	pthread_mutex_destroy(&c->scan_lock);
	pthread_mutex_destroy(&c->calls_lock);
	free(c);
}

void srv_cache_quit(struct srv_cache *c)
{
	struct timespec until;

	if (c->stack.n) {
		for (size_t i = 0; i < c->stack.n; i++)
			srv_cache_quit(c->stack.layers[i]);
		return;
	}

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 1;
	/* still busy at the deadline: the files stay, as they would after a kill */
	if (pthread_mutex_timedlock(&c->calls_lock, &until) != 0)
		return;
	if (pthread_mutex_timedlock(&c->scan_lock, &until) != 0)
		return;
	for (size_t i = 0; i < SRV_SQL_SCANS; i++)
		while (c->scan_busy[i])
			if (pthread_cond_timedwait(&c->scan_free, &c->scan_lock, &until) != 0)
				return;
	for (size_t i = 0; i < SRV_SQL_SCANS; i++)
		if (c->scan_open[i])
			srv_sql_close(&c->scan[i]);
	if (c->sql)
		srv_sql_close(&c->db);
	/* both locks are kept: nothing may use the call storage again */
}

const struct srv_stack *srv_cache_stack_of(const struct srv_cache *c)
{
	return c->stack.n ? &c->stack : NULL;
}

struct srv_textcache *srv_cache_texts(struct srv_cache *c)
{
	return &c->texts;
}

void srv_cache_layout(const struct srv_cache *c, struct srv_layout *out)
{
	if (c->stack.n) {
		srv_cache_layout(c->stack.layers[0], out);
		return;
	}
	out->root = c->root;
	out->calls_type = c->sql ? "sql" : "files";
	out->calls_path = c->calls_path;
	out->calls_url = c->sql ? c->calls_url : NULL;
	out->values_type = "files";
	out->values_path = c->values_path;
	out->read_only = c->read_only;
	out->key_count = c->nkeys;
	out->serializer = c->serializer[0] ? c->serializer : NULL;
	out->compress_values = c->compress_values;
	out->compress_calls = c->compress_calls;
	out->calls_present = c->sql ? is_file(c->calls_path) : is_dir(c->calls_path);
	out->values_present = is_dir(c->values_path);
	out->fleche_toml = false;
	if (c->root) {
		char *toml = join(c->root, "fleche.toml");
		out->fleche_toml = toml && is_file(toml);
		free(toml);
	}
}

struct srv_cache *srv_cache_save_layer(struct srv_cache *c)
{
	return c->stack.n ? c->stack.layers[0] : c;
}

const struct srv_hmac_key *srv_cache_signing_key(const struct srv_cache *c)
{
	if (c->stack.n)
		return srv_cache_signing_key(c->stack.layers[0]);
	return c->nkeys ? &c->keys[0] : NULL;
}

/* A SQLite connection for one scan (invariant 1), or NULL with err. */
static struct srv_sqlstore *scan_get(struct srv_cache *c, struct srv_error *err)
{
	struct srv_sqlstore *db = NULL;

	pthread_mutex_lock(&c->scan_lock);
	while (!db) {
		size_t closed = SRV_SQL_SCANS;
		for (size_t i = 0; i < SRV_SQL_SCANS && !db; i++) {
			if (c->scan_open[i] && !c->scan_busy[i]) {
				c->scan_busy[i] = true;
				db = &c->scan[i];
			} else if (!c->scan_open[i] && closed == SRV_SQL_SCANS) {
				closed = i;
			}
		}
		if (db)
			break;
		if (closed < SRV_SQL_SCANS) {
			if (srv_sql_open(&c->scan[closed], c->calls_path, err) != 0)
				break;
			c->scan_open[closed] = c->scan_busy[closed] = true;
			db = &c->scan[closed];
			break;
		}
		pthread_cond_wait(&c->scan_free, &c->scan_lock);
	}
	pthread_mutex_unlock(&c->scan_lock);
	return db;
}

static void scan_put(struct srv_cache *c, struct srv_sqlstore *db)
{
	pthread_mutex_lock(&c->scan_lock);
	c->scan_busy[db - c->scan] = false;
	pthread_cond_signal(&c->scan_free);
	pthread_mutex_unlock(&c->scan_lock);
}

int srv_layer_count(struct srv_cache *c, uint64_t *calls, uint64_t *values, struct srv_error *err)
{
	struct srv_sqlstore *db;
	int rc = -1;

	if (c->sql) {
		if (!(db = scan_get(c, err)))
			return -1;
		rc = srv_sql_count(db, calls, err);
		scan_put(c, db);
		if (rc != 0)
			return -1;
		rc = -1;
	} else {
		pthread_mutex_lock(&c->calls_lock);
	}
	pthread_mutex_lock(&c->values_lock);
	if (!c->sql) {
		if (srv_keyindex_refresh(&c->calls.index, err) != 0)
			goto out;
		*calls = c->calls.index.n;
	}
	if (srv_keyindex_refresh(&c->values.index, err) != 0)
		goto out;
	*values = c->values.index.n;
	rc = 0;
out:
	pthread_mutex_unlock(&c->values_lock);
	if (!c->sql)
		pthread_mutex_unlock(&c->calls_lock);
	return rc;
}

/*
 * Adds the blocks of every key-named regular file in dir to *bytes. Reads the
 * directory itself, not the key index, so that it needs no lock while it stats
 * perhaps a million files (other requests go on meanwhile). A missing directory
 * counts nothing.
 */
static int dir_size(const char *dir, uint64_t *bytes, struct srv_error *err)
{
	struct dirent *e;
	struct stat st;
	DIR *d = opendir(dir);

	if (!d)
		return errno == ENOENT || errno == ENOTDIR
		           ? 0
		           : srv_fail(err, rpc_error_from_errno(errno), "cannot open '%s': %s", dir,
		                      strerror(errno));
	while ((e = readdir(d))) {
		if (!rpc_key_valid(e->d_name, strlen(e->d_name)))
			continue;
		if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISREG(st.st_mode))
			*bytes += (uint64_t)st.st_blocks * 512;
	}
	closedir(d);
	return 0;
}

static void add_file_size(const char *path, uint64_t *bytes)
{
	struct stat st;

	if (path && stat(path, &st) == 0)
		*bytes += (uint64_t)st.st_blocks * 512;
}

int srv_layer_size(struct srv_cache *c, uint64_t *bytes, struct srv_error *err)
{
	/* the paths never change once the cache is open: no lock */
	*bytes = 0;
	if (c->sql) {
		char *wal = NULL;

		add_file_size(c->calls_path, bytes);
		if (asprintf(&wal, "%s-wal", c->calls_path) >= 0) {
			add_file_size(wal, bytes);
			free(wal);
		}
	} else if (dir_size(c->calls_path, bytes, err) != 0) {
		return -1;
	}
	return dir_size(c->values_path, bytes, err);
}

/* ---- prefixes ---- */

static void keylist_release(struct keylist *l)
{
	free(l->k);
	memset(l, 0, sizeof(*l));
}

/*
 * Keys of one kind starting with p[0..len) (RPC_PREFIX_MIN <= len < RPC_KEY_LEN), at
 * most SRV_SQL_MAX_RANGE.
 */
static int candidates(struct srv_cache *c, enum srv_kind kind, const char *p, size_t len,
                      struct keylist *l, struct srv_error *err)
{
	memset(l, 0, sizeof(*l));
	if (kind == SRV_CALLS && c->sql) {
		size_t max = SRV_MAX_CANDIDATES;

		for (;;) {
			l->k = calloc(max, sizeof(*l->k));
			if (!l->k)
				return srv_fail(err, RPC_E_ENOMEM, "out of memory");
			if (srv_sql_range(&c->db, p, len, l->k, max, &l->total, NULL, err) != 0) {
				keylist_release(l);
				return -1;
			}
			if (l->total <= max)
				break;
			free(l->k);
			max = l->total;
		}
		l->n = l->total;
	} else {
		struct srv_fstore *fs = kind == SRV_CALLS ? &c->calls : &c->values;
		size_t lo, hi;

		if (srv_keyindex_refresh(&fs->index, err) != 0)
			return -1;
		srv_keyindex_range(&fs->index, p, len, &lo, &hi);
		l->total = hi - lo;
		l->n = l->total > SRV_SQL_MAX_RANGE ? SRV_SQL_MAX_RANGE : l->total;
		if (l->n) {
			l->k = calloc(l->n, sizeof(*l->k));
			if (!l->k)
				return srv_fail(err, RPC_E_ENOMEM, "out of memory");
		}
		for (size_t i = 0; i < l->n; i++)
			srv_key_to_hex(srv_keyindex_key(&fs->index, lo + i), l->k[i]);
	}
	return 0;
}

/* Fills err as AMBIGUOUS for the sorted candidates of prefix. */
static int ambiguous(struct srv_error *err, const char *p, size_t len, const struct keylist *l,
                     const char *what)
{
	unsigned need = 0;
	char names[200];
	size_t o = 0;

	for (size_t i = 1; i < l->n; i++) {
		unsigned cmn = 0;

		while (cmn < RPC_KEY_LEN && l->k[i - 1][cmn] == l->k[i][cmn])
			cmn++;
		if (cmn + 1 > need)
			need = cmn + 1;
	}
	if (need > RPC_KEY_LEN)
		need = RPC_KEY_LEN;
	names[0] = '\0';
	for (size_t i = 0; i < l->n && i < 3; i++)
		o += (size_t)snprintf(names + o, sizeof(names) - o, "%s%s", i ? ", " : "", l->k[i]);
	srv_fail(err, RPC_E_AMBIGUOUS,
	         "prefix '%.*s' is ambiguous among %s keys: it matches %zu (%s%s); need at least "
	         "%u characters",
	         (int)len, p, what, l->total, names, l->total > 3 ? ", ..." : "", need);
	err->needed = need;
	for (size_t i = 0; i < l->n && i < SRV_MAX_CANDIDATES; i++)
		memcpy(err->candidates[i], l->k[i], RPC_KEY_LEN + 1);
	err->ncandidates = l->n < SRV_MAX_CANDIDATES ? l->n : SRV_MAX_CANDIDATES;
	return -1;
}

/* The one key of kind that key[0..len) (valid, 4..63 chars) stands for. */
static int unique(struct srv_cache *c, enum srv_kind kind, const char *key, size_t len,
                  char out[RPC_KEY_LEN + 1], struct srv_error *err)
{
	struct keylist l;
	int rc = 0;

	if (candidates(c, kind, key, len, &l, err) != 0)
		return -1;
	if (l.total == 0)
		rc = srv_fail(err, RPC_E_ENOENT, "no %s key starts with '%.*s'", kind_name(kind),
		              (int)len, key);
	else if (l.total > 1)
		rc = ambiguous(err, key, len, &l, kind_name(kind));
	else
		memcpy(out, l.k[0], RPC_KEY_LEN + 1);
	keylist_release(&l);
	return rc;
}

static int check_key(const char *key, size_t len, struct srv_error *err)
{
	if (!key || !rpc_key_prefix_valid(key, len))
		return srv_fail(
		    err, RPC_E_EINVAL,
		    "'%.*s' is not a key or a prefix of 4 to 64 lowercase hex characters",
		    (int)(key && len <= RPC_KEY_LEN ? len : 0), key ? key : "");
	return 0;
}

/* Full key of a call: len 64 as is, else the unique call prefix. */
static int resolve_call(struct srv_cache *c, const char *key, size_t len, char out[RPC_KEY_LEN + 1],
                        struct srv_error *err)
{
	if (len == RPC_KEY_LEN) {
		memcpy(out, key, RPC_KEY_LEN);
		out[RPC_KEY_LEN] = '\0';
		return 0;
	}
	return unique(c, SRV_CALLS, key, len, out, err);
}

int srv_layer_load(struct srv_cache *c, const char *key, size_t len, struct srv_record *rec,
                   struct srv_error *err)
{
	char full[RPC_KEY_LEN + 1];
	int rc = -1;

	memset(rec, 0, sizeof(*rec));
	if (check_key(key, len, err) != 0)
		return -1;
	pthread_mutex_lock(&c->calls_lock);
	if (resolve_call(c, key, len, full, err) != 0)
		goto out;
	if (c->sql)
		rc = srv_sql_load(&c->db, full, rec, err);
	else
		rc = srv_fstore_load(&c->calls, full, rec, err);
out:
	pthread_mutex_unlock(&c->calls_lock);
	return rc;
}

int srv_layer_contains(struct srv_cache *c, const char *key, size_t len, bool *found,
                       struct srv_error *err)
{
	struct keylist l;
	struct stat st;
	int rc = 0;

	*found = false;
	if (!key || !rpc_key_prefix_valid(key, len))
		return 0;
	pthread_mutex_lock(&c->calls_lock);
	if (len == RPC_KEY_LEN) {
		char full[RPC_KEY_LEN + 1];

		memcpy(full, key, RPC_KEY_LEN);
		full[RPC_KEY_LEN] = '\0';
		if (c->sql)
			rc = srv_sql_exists(&c->db, full, found, err);
		else
			rc = srv_fstore_stat(&c->calls, full, &st, found, err);
		goto out;
	}
	if ((rc = candidates(c, SRV_CALLS, key, len, &l, err)) != 0)
		goto out;
	if (l.total > 1)
		rc = ambiguous(err, key, len, &l, "call");
	else
		*found = l.total == 1;
	keylist_release(&l);
out:
	pthread_mutex_unlock(&c->calls_lock);
	return rc;
}

int srv_layer_expand(struct srv_cache *c, const char *prefix, size_t len, char *out,
                     struct srv_error *err)
{
	struct keylist a = {0}, b = {0}, m = {0};
	size_t i = 0, j = 0;
	int rc = -1;

	if (check_key(prefix, len, err) != 0)
		return -1;
	if (len == RPC_KEY_LEN) {
		memcpy(out, prefix, RPC_KEY_LEN);
		out[RPC_KEY_LEN] = '\0';
		return 0;
	}
	pthread_mutex_lock(&c->calls_lock);
	pthread_mutex_lock(&c->values_lock);
	if (candidates(c, SRV_CALLS, prefix, len, &a, err) != 0 ||
	    candidates(c, SRV_VALUES, prefix, len, &b, err) != 0)
		goto out;
	/* merge the two sorted lists, a key stored as both counted once */
	m.k = calloc(a.n + b.n + 1, sizeof(*m.k));
	if (!m.k) {
		srv_fail(err, RPC_E_ENOMEM, "out of memory");
		goto out;
	}
	while (i < a.n || j < b.n) {
		int cmp = i == a.n ? 1 : j == b.n ? -1 : strcmp(a.k[i], b.k[j]);

		memcpy(m.k[m.n++], cmp <= 0 ? a.k[i] : b.k[j], RPC_KEY_LEN + 1);
		if (cmp <= 0)
			i++;
		if (cmp >= 0)
			j++;
	}
	m.total = m.n + (a.total - a.n) + (b.total - b.n);
	if (m.total == 0) {
		srv_fail(err, RPC_E_ENOENT, "no key starts with '%.*s'", (int)len, prefix);
		goto out;
	}
	if (m.total > 1) {
		ambiguous(err, prefix, len, &m, "call and value");
		goto out;
	}
	memcpy(out, m.k[0], RPC_KEY_LEN + 1);
	rc = 0;
out:
	pthread_mutex_unlock(&c->values_lock);
	pthread_mutex_unlock(&c->calls_lock);
	keylist_release(&a);
	keylist_release(&b);
	keylist_release(&m);
	return rc;
}

int srv_layer_shrink(struct srv_cache *c, const char *key, size_t len, char *out,
                     struct srv_error *err)
{
	char full[RPC_KEY_LEN + 1];
	uint8_t bk[SRV_KEY_BYTES];
	unsigned n = 0;
	size_t pos;
	int rc = -1;

	if (check_key(key, len, err) != 0)
		return -1;
	if (len != RPC_KEY_LEN)
		return srv_fail(err, RPC_E_ENOENT, "shrink needs a full stored key, not '%.*s'",
		                (int)len, key);
	memcpy(full, key, RPC_KEY_LEN);
	full[RPC_KEY_LEN] = '\0';
	srv_key_from_hex(full, bk);
	pthread_mutex_lock(&c->calls_lock);
	pthread_mutex_lock(&c->values_lock);
	if (c->sql) {
		if (srv_sql_shrink(&c->db, full, &n, err) != 0 && err->code != RPC_E_ENOENT)
			goto out;
	} else {
		if (srv_keyindex_refresh(&c->calls.index, err) != 0)
			goto out;
		if (srv_keyindex_find(&c->calls.index, bk, &pos))
			n = srv_keyindex_shrink(&c->calls.index, pos);
	}
	if (n == 0) {
		if (srv_keyindex_refresh(&c->values.index, err) != 0)
			goto out;
		if (!srv_keyindex_find(&c->values.index, bk, &pos)) {
			srv_fail(err, RPC_E_ENOENT, "no call or value '%s' in the cache", full);
			goto out;
		}
		n = srv_keyindex_shrink(&c->values.index, pos);
	}
	memcpy(out, full, n);
	out[n] = '\0';
	rc = 0;
out:
	pthread_mutex_unlock(&c->values_lock);
	pthread_mutex_unlock(&c->calls_lock);
	return rc;
}

int srv_layer_evict(struct srv_cache *c, const char *key, size_t len, struct srv_error *err)
{
	char full[RPC_KEY_LEN + 1];
	int rc = -1;

	if (check_key(key, len, err) != 0)
		return -1;
	if (c->read_only)
		return srv_fail(err, RPC_E_EROFS,
		                "cannot evict '%.*s': the cache is served read-only", (int)len,
		                key);
	pthread_mutex_lock(&c->calls_lock);
	if (resolve_call(c, key, len, full, err) != 0)
		goto out;
	if (c->sql)
		rc = srv_sql_delete(&c->db, full, err);
	else
		rc = srv_fstore_unlink(&c->calls, full, err);
out:
	pthread_mutex_unlock(&c->calls_lock);
	return rc;
}

/* ---- listing ---- */

static int check_page(const char *after, size_t *limit, struct srv_error *err)
{
	if (after && !rpc_key_valid(after, strnlen(after, RPC_KEY_LEN + 1)))
		return srv_fail(err, RPC_E_EINVAL, "'after' is not a key");
	if (*limit == 0)
		return srv_fail(err, RPC_E_EINVAL, "the page limit must be at least 1");
	if (*limit > RPC_PAGE_MAX)
		*limit = RPC_PAGE_MAX;
	return 0;
}

int srv_layer_list(struct srv_cache *c, enum srv_kind kind, const char *after, size_t limit,
                   bool detail, struct srv_page *page, struct srv_error *err)
{
	pthread_mutex_t *lock;
	int rc;

	memset(page, 0, sizeof(*page));
	if (check_page(after, &limit, err) != 0)
		return -1;
	lock = kind == SRV_CALLS ? &c->calls_lock : &c->values_lock;
	pthread_mutex_lock(lock);
	if (kind == SRV_CALLS && c->sql)
		rc = srv_sql_list(&c->db, after, limit, detail, page, err);
	else
		rc = srv_fstore_list(kind == SRV_CALLS ? &c->calls : &c->values, after, limit,
		                     detail, page, err);
	pthread_mutex_unlock(lock);
	return rc;
}

int srv_layer_query(struct srv_cache *c, const msgpack_object *tmpl, const char *after,
                    size_t limit, bool detail, struct srv_page *page, struct srv_error *err)
{
	int rc;

	memset(page, 0, sizeof(*page));
	if (check_page(after, &limit, err) != 0 || srv_query_check(tmpl, err) != 0)
		return -1;
	if (c->sql) {
		struct srv_sqlstore *db = scan_get(c, err);
		if (!db)
			return -1;
		rc = srv_sql_query(db, tmpl, after, limit, detail, page, err);
		scan_put(c, db);
		return rc;
	}
	pthread_mutex_lock(&c->calls_lock);
	rc = srv_fstore_query(&c->calls, tmpl, after, limit, detail, page, err);
	pthread_mutex_unlock(&c->calls_lock);
	return rc;
}

int srv_layer_names(struct srv_cache *c, const char *after, size_t limit, struct srv_names *out,
                    struct srv_error *err)
{
	int rc;

	memset(out, 0, sizeof(*out));
	if (limit == 0)
		return srv_fail(err, RPC_E_EINVAL, "the page limit must be at least 1");
	if (limit > RPC_PAGE_MAX)
		limit = RPC_PAGE_MAX;
	if (c->sql) {
		struct srv_sqlstore *db = scan_get(c, err);
		if (!db)
			return -1;
		rc = srv_sql_names(db, after, limit, out, err);
		scan_put(c, db);
		return rc;
	}
	pthread_mutex_lock(&c->calls_lock);
	rc = srv_fstore_names(&c->calls, after, limit, out, err);
	pthread_mutex_unlock(&c->calls_lock);
	return rc;
}

/* ---- values ---- */

static bool same_file(const struct srv_value *v, const struct stat *st)
{
	return v->dev == st->st_dev && v->ino == st->st_ino && v->size == st->st_size &&
	       v->mtime.tv_sec == st->st_mtim.tv_sec && v->mtime.tv_nsec == st->st_mtim.tv_nsec;
}

/* Removes v from the LRU list (dropping the LRU's reference). */
static void lru_remove(struct srv_cache *c, struct srv_value *v)
{
	struct srv_value **pp = &c->lru;

	while (*pp && *pp != v)
		pp = &(*pp)->next;
	if (*pp) {
		*pp = v->next;
		v->next = NULL;
		v->cached = false;
		value_unref(v);
	}
}

/* Bytes a value holds in memory beyond its file (a decompressed copy), or 0. */
static uint64_t copy_bytes(const struct srv_value *v)
{
	return v->blob.file_map ? 0 : v->blob.len;
}

/*
 * Adds v, most recent first, and lets go of the oldest values beyond SRV_VALUE_LRU
 * of them or beyond SRV_VALUE_LRU_COPIES bytes of decompressed copies (v itself is
 * kept whatever its size: it is about to be read, in ranges).
 */
static void lru_add(struct srv_cache *c, struct srv_value *v)
{
	struct srv_value *p;
	size_t n = 1;
	uint64_t copies = copy_bytes(v);

	v->refs++;
	v->cached = true;
	v->next = c->lru;
	c->lru = v;
	for (p = v; p->next;) {
		copies += copy_bytes(p->next);
		if (++n > SRV_VALUE_LRU || copies > SRV_VALUE_LRU_COPIES) {
			copies -= copy_bytes(p->next);
			n--;
			lru_remove(c, p->next);
			continue;
		}
		p = p->next;
	}
}

static bool same_identity(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* The opening of key and file identity st in progress, or NULL. values_lock held. */
static struct opening *find_opening(struct srv_cache *c, const char *key, const struct stat *st)
{
	for (struct opening *o = c->openings; o; o = o->next)
		if (strcmp(o->key, key) == 0 && same_identity(&o->st, st))
			return o;
	return NULL;
}

/* The refusal of key and file identity st (invariant 5), or NULL. values_lock held. */
static const struct refused *find_refused(const struct srv_cache *c, const char *key,
                                          const struct stat *st)
{
	for (size_t i = 0; i < SRV_VALUE_REFUSED; i++)
		if (strcmp(c->refused[i].key, key) == 0 && same_identity(&c->refused[i].st, st))
			return &c->refused[i];
	return NULL;
}

static void opening_unref(struct opening *o)
{
	if (--o->refs == 0)
		free(o);
}

/* Waits for another thread's opening o and takes its result. values_lock held. */
static int wait_opening(struct srv_cache *c, struct opening *o, struct srv_value **out,
                        struct srv_error *err)
{
	int rc;

	o->refs++;
	o->waiters++;
	while (!o->done)
		pthread_cond_wait(&c->opened, &c->values_lock);
	if (o->v) {
		*out = o->v; /* the opener took a reference for us */
		rc = 0;
	} else {
		if (err)
			*err = o->err;
		rc = -1;
	}
	opening_unref(o);
	return rc;
}

/*
 * Decodes the value file fd (path, st) into a new srv_value with one reference (the
 * caller's), with no lock held (invariant 4). Takes fd over.
 */
static int decode_value(struct srv_cache *c, const char *full, const char *path, int fd,
                        const struct stat *st, struct srv_value **out, struct srv_error *err)
{
	struct srv_value *v = calloc(1, sizeof(*v));

	*out = NULL;
	if (!v || !(v->path = strdup(path))) {
		free(v);
		close(fd);
		return srv_fail(err, RPC_E_ENOMEM, "out of memory");
	}
	v->fd = -1;
	if (srv_codec_map_value(fd, path, st, &c->sign, c->gunzip_max, &v->blob, err) != 0) {
		free(v->path);
		free(v);
		close(fd);
		return -1;
	}
	if (v->blob.file_map)
		v->fd = fd; /* kept for srv_value_check */
	else
		close(fd);
	v->cache = c;
	v->refs = 1;
	memcpy(v->key, full, RPC_KEY_LEN + 1);
	v->dev = st->st_dev;
	v->ino = st->st_ino;
	v->size = st->st_size;
	v->mtime = st->st_mtim;
	v->mtime_f = (double)st->st_mtim.tv_sec + st->st_mtim.tv_nsec / 1e9;
	*out = v;
	return 0;
}

int srv_layer_value_open(struct srv_cache *c, const char *key, size_t len, struct srv_value **out,
                         struct srv_error *err)
{
	char full[RPC_KEY_LEN + 1], path[PATH_MAX];
	struct srv_value *v = NULL, *p;
	struct opening *o;
	struct stat st;
	int fd = -1, rc = -1;

	*out = NULL;
	if (check_key(key, len, err) != 0)
		return -1;
	pthread_mutex_lock(&c->values_lock);
	if (len == RPC_KEY_LEN) {
		memcpy(full, key, RPC_KEY_LEN);
		full[RPC_KEY_LEN] = '\0';
	} else if (unique(c, SRV_VALUES, key, len, full, err) != 0) {
		goto out;
	}
	fd = srv_fstore_open(&c->values, full, path, &st, err);
	if (fd < 0) {
		if (err->code == RPC_E_ENOENT)
			srv_fail(err, RPC_E_ENOENT, "no value '%s' in the cache", full);
		goto out;
	}
	for (p = c->lru; p; p = p->next) {
		if (strcmp(p->key, full) != 0)
			continue;
		if (same_file(p, &st) && !srv_blob_damaged(&p->blob)) {
			/* move to the front */
			p->refs++;
			lru_remove(c, p);
			lru_add(c, p);
			*out = p;
			rc = 0;
			goto out;
		}
		lru_remove(c, p); /* replaced on disk */
		break;
	}
	const struct refused *no = find_refused(c, full, &st);
	if (no) {
		if (err)
			*err = no->err;
		goto out;
	}
	if ((o = find_opening(c, full, &st))) {
		rc = wait_opening(c, o, out, err);
		goto out;
	}
	if (!(o = calloc(1, sizeof(*o)))) {
		srv_fail(err, RPC_E_ENOMEM, "out of memory");
		goto out;
	}
	memcpy(o->key, full, sizeof(full));
	o->st = st;
	o->refs = 1;
	o->next = c->openings;
	c->openings = o;
	pthread_mutex_unlock(&c->values_lock);

	rc = decode_value(c, full, path, fd, &st, &v, &o->err);
	fd = -1;

	pthread_mutex_lock(&c->values_lock);
	for (struct opening **pp = &c->openings; *pp; pp = &(*pp)->next) {
		if (*pp == o) {
			*pp = o->next;
			break;
		}
	}
	o->done = true;
	if (rc == 0) {
		v->refs += o->waiters; /* one for each waiter (wait_opening) */
		o->v = v;
		lru_add(c, v);
		*out = v;
	} else {
		if (o->err.code == RPC_E_EFBIG) {
			struct refused *r = &c->refused[c->refused_next++ % SRV_VALUE_REFUSED];
			memcpy(r->key, full, sizeof(full));
			r->st = st;
			r->err = o->err;
		}
		if (err)
			*err = o->err;
	}
	pthread_cond_broadcast(&c->opened);
	opening_unref(o);
out:
	if (fd >= 0)
		close(fd);
	pthread_mutex_unlock(&c->values_lock);
	return rc;
}

const char *srv_value_key(const struct srv_value *v)
{
	return v->key;
}

uint64_t srv_value_size(const struct srv_value *v)
{
	return v->blob.len;
}

double srv_value_mtime(const struct srv_value *v)
{
	return v->mtime_f;
}

const uint8_t *srv_value_bytes(const struct srv_value *v)
{
	return v->blob.data;
}

static int value_damaged(const struct srv_value *v, struct srv_error *err)
{
	return srv_fail(err, RPC_E_CORRUPT,
	                "value file '%s' was truncated or could not be read while being served",
	                v->path);
}

int srv_value_copy(struct srv_value *v, uint64_t off, void *dst, size_t len, struct srv_error *err)
{
	if (off > v->blob.len || len > v->blob.len - off)
		return srv_fail(err, RPC_E_EINVAL,
		                "bytes %" PRIu64 "..%" PRIu64 " are outside value '%s' (%zu bytes)",
		                off, off + len, v->key, v->blob.len);
	if (len)
		memcpy(dst, v->blob.data + off, len);
	if (srv_blob_damaged(&v->blob))
		return value_damaged(v, err);
	return 0;
}

int srv_value_check(struct srv_value *v, struct srv_error *err)
{
	return srv_blob_damaged(&v->blob) ? value_damaged(v, err) : 0;
}

int srv_value_check_file(struct srv_value *v, struct srv_error *err)
{
	struct stat st;

	if (srv_blob_damaged(&v->blob))
		return value_damaged(v, err);
	if (v->fd >= 0 && v->blob.map) {
		if (fstat(v->fd, &st) != 0)
			return srv_fail(err, RPC_E_EIO, "cannot stat '%s': %s", v->path,
			                strerror(errno));
		if ((uint64_t)st.st_size < (uint64_t)v->blob.maplen)
			return value_damaged(v, err);
	}
	return 0;
}

void srv_value_drop_pages(struct srv_value *v, const uint8_t *p, size_t len)
{
	srv_blob_drop_pages(&v->blob, p, len);
}

void srv_value_close(struct srv_value *v)
{
	struct srv_cache *c;

	if (!v)
		return;
	c = v->cache;
	pthread_mutex_lock(&c->values_lock);
	value_unref(v);
	pthread_mutex_unlock(&c->values_lock);
}

/*
 * store_sql.c: reading (and, for evict only, deleting from) fleche's SQLite call
 * storage. See store_sql.h for the invariants.
 */
#include "store_sql.h"

#include <endian.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "keyindex.h"
#include "query.h"
#include "record.h"
#include "json_reader.h"

/* A row's "key" is 64 lowercase hex characters (GLOB is case-sensitive). */
#define SQL_KEY_OK "length(\"key\") = 64 AND \"key\" NOT GLOB '*[^0-9a-f]*'"

static const char *const stmt_sql[SRV_SQ__COUNT] = {
    [SRV_SQ_EXISTS] = "SELECT 1 FROM calls WHERE \"key\" = ?1",
    [SRV_SQ_RANGE] =
        "SELECT \"key\" FROM calls WHERE \"key\" >= ?1 AND \"key\" < ?2 ORDER BY \"key\"",
    [SRV_SQ_PREV] = "SELECT \"key\" FROM calls WHERE \"key\" < ?1 ORDER BY \"key\" DESC",
    [SRV_SQ_NEXT] = "SELECT \"key\" FROM calls WHERE \"key\" > ?1 ORDER BY \"key\"",
    [SRV_SQ_LIST] = "SELECT \"key\" FROM calls WHERE \"key\" > ?1 ORDER BY \"key\"",
    [SRV_SQ_LIST_DETAIL] =
        "SELECT c.\"key\", c.name, m.data FROM calls AS c LEFT JOIN metadata AS m"
        " ON m.call_key = c.\"key\" AND m.name = 'runtime'"
        " WHERE c.\"key\" > ?1 ORDER BY c.\"key\"",
    [SRV_SQ_CALL] = NULL, /* depends on the columns: built in srv_sql_open */
    [SRV_SQ_ARGS] = "SELECT name, value FROM arguments WHERE call_key = ?1 ORDER BY position, id",
    [SRV_SQ_META] = "SELECT name, data FROM metadata WHERE call_key = ?1 ORDER BY id",
    /* rows whose "key" is not a key are invisible (cache.h invariant 3): not counted,
     * and their names are not listed */
    [SRV_SQ_COUNT] = "SELECT count(*) FROM calls WHERE " SQL_KEY_OK,
    [SRV_SQ_NAMES] =
        "SELECT DISTINCT name FROM calls WHERE name > ?1 AND " SQL_KEY_OK " ORDER BY name",
    [SRV_SQ_QUERY] = "SELECT \"key\" FROM calls WHERE \"key\" > ?1 ORDER BY \"key\"",
    [SRV_SQ_QUERY_NAME] =
        "SELECT \"key\" FROM calls WHERE name = ?2 AND \"key\" > ?1 ORDER BY \"key\"",
    [SRV_SQ_DATA_VERSION] = "PRAGMA data_version",
    /* summary scans: table order, no per-row index lookups */
    [SRV_SQ_SUM_CALLS] = "SELECT \"key\", name FROM calls",
    [SRV_SQ_SUM_RUNTIME] = "SELECT call_key, data FROM metadata WHERE name = 'runtime'",
};

/* One call of the detail-listing summary (store_sql.h invariant 4). */
struct sum_entry {
	char key[RPC_KEY_LEN];
	uint32_t name; /* index into names, or SUM_NO_NAME */
	bool has_t;
	double t; /* runtime.timestop */
};

#define SUM_NO_NAME UINT32_MAX

struct srv_sql_summary {
	int64_t version; /* PRAGMA data_version it was read at */
	double built;    /* CLOCK_MONOTONIC seconds */
	struct sum_entry *e;
	size_t n;
	char **names; /* distinct function names */
	size_t nnames, names_cap;
	uint32_t *slots; /* open addressing over names: index + 1, 0 empty */
	size_t nslots;   /* a power of two, at least twice nnames */
};

static int db_fail(struct srv_sqlstore *s, struct srv_error *err, const char *what, int rc)
{
	enum rpc_error code = RPC_E_EIO;

	if (rc == SQLITE_NOMEM)
		code = RPC_E_ENOMEM;
	else if (rc == SQLITE_PERM || rc == SQLITE_AUTH)
		code = RPC_E_EACCES;
	return srv_fail(err, code, "cannot %s in '%s': %s", what, s->path,
	                s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
}

static sqlite3_stmt *stmt(struct srv_sqlstore *s, enum srv_sql_stmt i, struct srv_error *err)
{
	int rc;

	if (!s->stmts[i]) {
		rc = sqlite3_prepare_v3(s->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
		                        &s->stmts[i], NULL);
		if (rc != SQLITE_OK) {
			db_fail(s, err, "prepare a query", rc);
			return NULL;
		}
	}
	return s->stmts[i];
}

static void done(sqlite3_stmt *st)
{
	if (st) {
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
	}
}

static bool row_key(sqlite3_stmt *st, int col, char out[RPC_KEY_LEN + 1])
{
	const char *k = (const char *)sqlite3_column_text(st, col);
	int n = sqlite3_column_bytes(st, col);

	if (!k || n != RPC_KEY_LEN || !rpc_key_valid(k, RPC_KEY_LEN))
		return false;
	memcpy(out, k, RPC_KEY_LEN);
	out[RPC_KEY_LEN] = '\0';
	return true;
}

static int try_open(struct srv_sqlstore *s, bool immutable, struct srv_error *err)
{
	sqlite3_stmt *st = NULL;
	char *uri = NULL;
	int rc, flags = SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW;
	bool has_key = false, has_name = false;

	if (immutable) {
		/* file: URI with the path percent-encoded where URIs need it */
		size_t n = strlen(s->path), o = 0;

		uri = malloc(3 * n + 32);
		if (!uri)
			return srv_fail(err, RPC_E_ENOMEM, "out of memory opening '%s'", s->path);
		o += (size_t)sprintf(uri, "file:");
		for (size_t i = 0; i < n; i++) {
			unsigned char ch = (unsigned char)s->path[i];

			if (ch == '%' || ch == '?' || ch == '#' || ch < 0x21 || ch >= 0x7f)
				o += (size_t)sprintf(uri + o, "%%%02X", ch);
			else
				uri[o++] = (char)ch;
		}
		strcpy(uri + o, "?immutable=1");
		flags |= SQLITE_OPEN_URI;
	}
	rc = sqlite3_open_v2(immutable ? uri : s->path, &s->db, flags, NULL);
	free(uri);
	if (rc != SQLITE_OK)
		goto fail;
	sqlite3_busy_timeout(s->db, SRV_SQL_BUSY_MS);
	s->has_code_digest = false;
	rc = sqlite3_prepare_v2(s->db, "PRAGMA table_info(calls)", -1, &st, NULL);
	if (rc != SQLITE_OK)
		goto fail;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *col = (const char *)sqlite3_column_text(st, 1);

		if (!col)
			continue;
		if (strcmp(col, "key") == 0)
			has_key = true;
		else if (strcmp(col, "name") == 0)
			has_name = true;
		else if (strcmp(col, "code_digest") == 0)
			s->has_code_digest = true;
	}
	if (rc != SQLITE_DONE)
		goto fail;
	sqlite3_finalize(st);
	st = NULL;
	if (!has_key || !has_name) {
		sqlite3_close(s->db);
		s->db = NULL;
		return srv_fail(err, RPC_E_CORRUPT,
		                "'%s' is not a fleche call database (no calls table)", s->path);
	}
	return 0;
fail:
	srv_fail(err, rc == SQLITE_CANTOPEN ? RPC_E_ENOENT : RPC_E_EIO,
	         "cannot open database '%s': %s", s->path,
	         s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
	sqlite3_finalize(st);
	sqlite3_close(s->db);
	s->db = NULL;
	return -(rc & 0xff) - 1;
}

/* Whether the file path + suffix exists (as anything, a dangling link too). */
static bool beside_exists(const char *path, const char *suffix)
{
	char p[PATH_MAX];
	struct stat st;

	if ((size_t)snprintf(p, sizeof(p), "%s%s", path, suffix) >= sizeof(p))
		return true; /* unknown: assume it is there, so nothing is removed */
	return lstat(p, &st) == 0;
}

/* Invariant 6, after the last connection of ours is closed. */
static void tidy(const char *path)
{
	sqlite3 *db = NULL;
	int rc;

	if (!beside_exists(path, "-wal") && !beside_exists(path, "-shm"))
		return;
	rc = sqlite3_open_v2(path, &db,
	                     SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW,
	                     NULL);
	if (rc == SQLITE_OK) {
		sqlite3_busy_timeout(db, SRV_SQL_BUSY_MS);
		/* a read opens the WAL, whose close removes the files */
		rc = sqlite3_exec(db, "SELECT count(*) FROM sqlite_master", NULL, NULL, NULL);
	}
	if (rc != SQLITE_OK)
		fprintf(stderr,
		        "flechefs-server: cannot remove the -wal and -shm files SQLite made "
		        "beside '%s': %s\n",
		        path, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
	sqlite3_close(db);
}

int srv_sql_open(struct srv_sqlstore *s, const char *path, struct srv_error *err)
{
	char call_sql[256];
	struct stat st;
	int rc;

	memset(s, 0, sizeof(*s));
	if (lstat(path, &st) != 0)
		return srv_fail(err, rpc_error_from_errno(errno), "cannot open database '%s': %s",
		                path, strerror(errno));
	if (S_ISLNK(st.st_mode))
		return srv_fail(err, RPC_E_EINVAL,
		                "database '%s' is a symbolic link: the database file itself must "
		                "be named",
		                path);
	if (!S_ISREG(st.st_mode))
		return srv_fail(err, RPC_E_EINVAL, "database '%s' is not a regular file", path);
	s->path = strdup(path);
	if (!s->path)
		return srv_fail(err, RPC_E_ENOMEM, "out of memory");
	s->tidy = !beside_exists(path, "-wal") && !beside_exists(path, "-shm");
	rc = try_open(s, false, err);
	if (rc != 0 && rc != -1 && ((-rc - 1) == SQLITE_CANTOPEN || (-rc - 1) == SQLITE_READONLY)) {
		/* A WAL database in a directory we cannot write (no -shm possible): read
		 * it as an immutable file. Nobody can be writing it through that dir. */
		if (try_open(s, true, err) == 0) {
			s->immutable = true;
			s->tidy = false; /* SQLite makes no file for an immutable one */
			fprintf(stderr,
			        "flechefs-server: '%s' cannot be opened for shared reading; "
			        "reading it as an immutable file\n",
			        path);
			rc = 0;
		}
	}
	if (rc != 0) {
		free(s->path);
		s->path = NULL;
		return -1;
	}
	snprintf(call_sql, sizeof(call_sql),
	         "SELECT name, module, version, %s, result FROM calls WHERE \"key\" = ?1",
	         s->has_code_digest ? "code_digest" : "NULL");
	rc = sqlite3_prepare_v3(s->db, call_sql, -1, SQLITE_PREPARE_PERSISTENT,
	                        &s->stmts[SRV_SQ_CALL], NULL);
	if (rc != SQLITE_OK) {
		db_fail(s, err, "prepare a query", rc);
		srv_sql_close(s);
		return -1;
	}
	return 0;
}

static void summary_free(struct srv_sql_summary *sum)
{
	if (!sum)
		return;
	for (size_t i = 0; i < sum->nnames; i++)
		free(sum->names[i]);
	free(sum->names);
	free(sum->slots);
	free(sum->e);
	free(sum);
}

void srv_sql_close(struct srv_sqlstore *s)
{
	summary_free(s->summary);
	for (int i = 0; i < SRV_SQ__COUNT; i++)
		sqlite3_finalize(s->stmts[i]);
	sqlite3_close(s->db);
	if (s->tidy)
		tidy(s->path);
	free(s->path);
	memset(s, 0, sizeof(*s));
}

/* Runs a prepared statement that answers one integer (what: for the error message). */
static int scalar(struct srv_sqlstore *s, enum srv_sql_stmt which, const char *what, int64_t *out,
                  struct srv_error *err)
{
	sqlite3_stmt *st = stmt(s, which, err);
	int rc;

	if (!st)
		return -1;
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		done(st);
		return db_fail(s, err, what, rc);
	}
	*out = sqlite3_column_int64(st, 0);
	done(st);
	return 0;
}

int srv_sql_count(struct srv_sqlstore *s, uint64_t *n, struct srv_error *err)
{
	int64_t v;

	if (scalar(s, SRV_SQ_COUNT, "count calls", &v, err) != 0)
		return -1;
	*n = (uint64_t)v;
	return 0;
}

int srv_sql_exists(struct srv_sqlstore *s, const char *key, bool *found, struct srv_error *err)
{
	sqlite3_stmt *st = stmt(s, SRV_SQ_EXISTS, err);
	int rc;

	if (!st)
		return -1;
	sqlite3_bind_text(st, 1, key, RPC_KEY_LEN, SQLITE_STATIC);
	rc = sqlite3_step(st);
	done(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_fail(s, err, "look a call up", rc);
	*found = rc == SQLITE_ROW;
	return 0;
}

int srv_sql_range(struct srv_sqlstore *s, const char *prefix, size_t len,
                  char (*out)[RPC_KEY_LEN + 1], size_t max, size_t *total, unsigned *needed,
                  struct srv_error *err)
{
	char lo[RPC_KEY_LEN + 1], hi[RPC_KEY_LEN + 1], prev[RPC_KEY_LEN + 1], k[RPC_KEY_LEN + 1];
	sqlite3_stmt *st;
	size_t n = 0;
	unsigned need = 0;
	int rc = SQLITE_DONE;

	memcpy(lo, prefix, len);
	lo[len] = '\0';
	memcpy(hi, prefix, len);
	hi[len] = '\0';
	/* successor of the prefix: bump the last character (hex chars are < 0x7f) */
	hi[len - 1]++;
	st = stmt(s, SRV_SQ_RANGE, err);
	if (!st)
		return -1;
	sqlite3_bind_text(st, 1, lo, (int)len, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, hi, (int)len, SQLITE_STATIC);
	while (n < SRV_SQL_MAX_RANGE && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (!row_key(st, 0, k) || memcmp(k, prefix, len) != 0)
			continue;
		if (n > 0 && strcmp(prev, k) == 0)
			continue; /* a key repeated (no unique constraint): one candidate */
		if (n > 0) {
			unsigned c = 0;

			while (c < RPC_KEY_LEN && prev[c] == k[c])
				c++;
			if (c + 1 > need)
				need = c + 1;
		}
		memcpy(prev, k, sizeof(k));
		if (n < max)
			memcpy(out[n], k, sizeof(k));
		n++;
	}
	if (n < SRV_SQL_MAX_RANGE && rc != SQLITE_DONE) {
		done(st);
		return db_fail(s, err, "look keys up", rc);
	}
	done(st);
	*total = n;
	if (needed)
		*needed = need;
	return 0;
}

/* First valid key from a PREV/NEXT statement; *found false when none. */
static int neighbour(struct srv_sqlstore *s, enum srv_sql_stmt which, const char *key,
                     char out[RPC_KEY_LEN + 1], bool *found, struct srv_error *err)
{
	sqlite3_stmt *st = stmt(s, which, err);
	int rc;

	*found = false;
	if (!st)
		return -1;
	sqlite3_bind_text(st, 1, key, RPC_KEY_LEN, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (row_key(st, 0, out)) {
			*found = true;
			break;
		}
	}
	done(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_fail(s, err, "look keys up", rc);
	return 0;
}

int srv_sql_shrink(struct srv_sqlstore *s, const char *key, unsigned *len, struct srv_error *err)
{
	char other[RPC_KEY_LEN + 1];
	bool found;
	unsigned need = 0;

	if (srv_sql_exists(s, key, &found, err) != 0)
		return -1;
	if (!found)
		return srv_fail(err, RPC_E_ENOENT, "no call '%s' in the cache", key);
	for (int i = 0; i < 2; i++) {
		if (neighbour(s, i ? SRV_SQ_NEXT : SRV_SQ_PREV, key, other, &found, err) != 0)
			return -1;
		if (found) {
			unsigned c = 0;

			while (c < RPC_KEY_LEN && other[c] == key[c])
				c++;
			if (c > need)
				need = c;
		}
	}
	*len = srv_prefix_need(need);
	return 0;
}

static double db_mtime(const struct srv_sqlstore *s)
{
	struct stat st;

	if (stat(s->path, &st) != 0)
		return 0;
	return (double)st.st_mtim.tv_sec + st.st_mtim.tv_nsec / 1e9;
}

static int page_grow(struct srv_page *page, size_t limit, struct srv_error *err)
{
	if (!page->entries) {
		page->entries = calloc(limit ? limit : 1, sizeof(*page->entries));
		if (!page->entries)
			return srv_fail(err, RPC_E_ENOMEM, "out of memory listing calls");
	}
	return 0;
}

static int exec(struct srv_sqlstore *s, sqlite3 *db, const char *sql, struct srv_error *err)
{
	int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);

	if (rc != SQLITE_OK)
		return srv_fail(err, rc == SQLITE_BUSY ? RPC_E_EIO : RPC_E_EIO,
		                "cannot run '%s' on '%s': %s", sql, s->path, sqlite3_errmsg(db));
	return 0;
}

static uint64_t name_hash(const char *p, size_t n)
{
	return srv_hash64(SRV_HASH64_INIT, p, n);
}

/* The index of name p[0..n) in sum->names, adding it; -1 on OOM. */
static int64_t intern(struct srv_sql_summary *sum, const char *p, size_t n)
{
	size_t i;

	if (2 * (sum->nnames + 1) > sum->nslots) {
		size_t ns = sum->nslots ? 2 * sum->nslots : 256;
		uint32_t *sl = calloc(ns, sizeof(*sl));

		if (!sl)
			return -1;
		for (size_t k = 0; k < sum->nnames; k++) {
			const char *nm = sum->names[k];

			for (i = name_hash(nm, strlen(nm)) & (ns - 1); sl[i];
			     i = (i + 1) & (ns - 1))
				;
			sl[i] = (uint32_t)k + 1;
		}
		free(sum->slots);
		sum->slots = sl;
		sum->nslots = ns;
	}
	for (i = name_hash(p, n) & (sum->nslots - 1); sum->slots[i];
	     i = (i + 1) & (sum->nslots - 1)) {
		const char *nm = sum->names[sum->slots[i] - 1];

		if (strlen(nm) == n && memcmp(nm, p, n) == 0)
			return sum->slots[i] - 1;
	}
	if (sum->nnames == sum->names_cap) {
		size_t nc = sum->names_cap ? 2 * sum->names_cap : 64;
		char **nn = realloc(sum->names, nc * sizeof(*nn));

		if (!nn)
			return -1;
		sum->names = nn;
		sum->names_cap = nc;
	}
	if (!(sum->names[sum->nnames] = srv_memdupz(p, n)))
		return -1;
	sum->slots[i] = (uint32_t)sum->nnames + 1;
	return (int64_t)sum->nnames++;
}

/* Keys compare as bytes; the first eight decide almost always (one load each). */
static int key_cmp(const char *a, const char *b)
{
	uint64_t x, y;

	memcpy(&x, a, 8);
	memcpy(&y, b, 8);
	if (x != y) {
		x = be64toh(x);
		y = be64toh(y);
		return x < y ? -1 : 1;
	}
	return memcmp(a + 8, b + 8, RPC_KEY_LEN - 8);
}

static int sum_cmp(const void *a, const void *b)
{
	return key_cmp(((const struct sum_entry *)a)->key, ((const struct sum_entry *)b)->key);
}

/* A runtime row whose call was not next in table order (matched after sorting). */
struct sum_late {
	char key[RPC_KEY_LEN];
	double t;
};

static int late_cmp(const void *a, const void *b)
{
	return key_cmp(((const struct sum_late *)a)->key, ((const struct sum_late *)b)->key);
}

/* Index of the first entry whose key is > key (key NULL: 0). */
static size_t sum_upper(const struct srv_sql_summary *sum, const char *key)
{
	size_t lo = 0, hi = sum->n;

	if (!key)
		return 0;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (key_cmp(sum->e[mid].key, key) <= 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int data_version(struct srv_sqlstore *s, int64_t *v, struct srv_error *err)
{
	return scalar(s, SRV_SQ_DATA_VERSION, "read the data version", v, err);
}

/* Reads the summary inside an open read transaction; 1 when there are too many calls. */
static int summary_read(struct srv_sqlstore *s, struct srv_sql_summary *sum, struct srv_error *err)
{
	sqlite3_stmt *st;
	uint64_t count;
	size_t cap, cursor = 0, nlate = 0, late_cap = 0;
	struct sum_late *late = NULL;
	int rc, ret;

	if (data_version(s, &sum->version, err) != 0 || srv_sql_count(s, &count, err) != 0)
		return -1;
	if (count > SRV_SQL_SUMMARY_MAX)
		return 1;
	cap = count ? (size_t)count : 1;
	if (!(sum->e = malloc(cap * sizeof(*sum->e))))
		return srv_fail(err, RPC_E_ENOMEM, "out of memory listing calls");
	if (!(st = stmt(s, SRV_SQ_SUM_CALLS, err)))
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && sum->n < cap) {
		struct sum_entry *e = &sum->e[sum->n];
		const char *k = (const char *)sqlite3_column_text(st, 0);
		const char *name = (const char *)sqlite3_column_text(st, 1);
		int64_t ni = SUM_NO_NAME;

		if (!k || sqlite3_column_bytes(st, 0) != RPC_KEY_LEN ||
		    !rpc_key_valid(k, RPC_KEY_LEN))
			continue;
		if (name && (ni = intern(sum, name, (size_t)sqlite3_column_bytes(st, 1))) < 0) {
			done(st);
			return srv_fail(err, RPC_E_ENOMEM, "out of memory listing calls");
		}
		memcpy(e->key, k, RPC_KEY_LEN);
		e->name = (uint32_t)ni;
		e->has_t = false;
		e->t = 0;
		sum->n++;
	}
	done(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_fail(s, err, "list calls", rc);
	/*
	 * fleche writes a call's metadata rows with the call, so runtime rows come in the
	 * calls' table order: match them with a cursor before sorting; the others (rare)
	 * are kept aside, sorted and merged after.
	 */
	if (!(st = stmt(s, SRV_SQ_SUM_RUNTIME, err)))
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *k = (const char *)sqlite3_column_text(st, 0);
		const char *data = (const char *)sqlite3_column_text(st, 1);
		size_t j;
		double t;

		if (!k || !data || sqlite3_column_bytes(st, 0) != RPC_KEY_LEN ||
		    srv_sjson_number(data, (size_t)sqlite3_column_bytes(st, 1), "timestop", &t) !=
		        0 ||
		    !isfinite(t)) /* as load: no time, the database's mtime */
			continue;
		for (j = cursor; j < sum->n && j < cursor + 2; j++)
			if (memcmp(sum->e[j].key, k, RPC_KEY_LEN) == 0)
				break;
		if (j < sum->n && j < cursor + 2) {
			sum->e[j].has_t = true;
			sum->e[j].t = t;
			cursor = j + 1;
			continue;
		}
		if (nlate == late_cap) {
			size_t nc = late_cap ? 2 * late_cap : 64;
			struct sum_late *nl;

			if (nc > SRV_SQL_SUMMARY_MAX) {
				/* runtime rows of calls that do not exist: no summary */
				done(st);
				ret = 1;
				goto out;
			}
			if (!(nl = realloc(late, nc * sizeof(*late)))) {
				done(st);
				ret = srv_fail(err, RPC_E_ENOMEM, "out of memory listing calls");
				goto out;
			}
			late = nl;
			late_cap = nc;
		}
		memcpy(late[nlate].key, k, RPC_KEY_LEN);
		late[nlate++].t = t;
	}
	done(st);
	if (rc != SQLITE_DONE) {
		ret = db_fail(s, err, "list calls", rc);
		goto out;
	}
	qsort(sum->e, sum->n, sizeof(*sum->e), sum_cmp);
	if (nlate)
		qsort(late, nlate, sizeof(*late), late_cmp);
	for (size_t i = 0, j = 0; i < nlate; i++) {
		while (j < sum->n && key_cmp(sum->e[j].key, late[i].key) < 0)
			j++;
		if (j < sum->n && memcmp(sum->e[j].key, late[i].key, RPC_KEY_LEN) == 0) {
			sum->e[j].has_t = true;
			sum->e[j].t = late[i].t;
		}
	}
	/* a key repeated (a calls table without its unique constraint): listed once */
	if (sum->n) {
		size_t o = 1;

		for (size_t i = 1; i < sum->n; i++) {
			struct sum_entry *last = &sum->e[o - 1];

			if (memcmp(sum->e[i].key, last->key, RPC_KEY_LEN) != 0) {
				sum->e[o++] = sum->e[i];
			} else if (!last->has_t && sum->e[i].has_t) {
				last->has_t = true;
				last->t = sum->e[i].t;
			}
		}
		sum->n = o;
	}
	ret = 0;
out:
	free(late);
	return ret;
}

/*
 * Makes s->summary current (invariant 4). Returns 0 when it can serve, 1 when the
 * database is too large for one, -1 on errors.
 */
static double now_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int summary_fresh(struct srv_sqlstore *s, bool continued, struct srv_error *err)
{
	struct srv_sql_summary *sum;
	int64_t v;
	int rc;

	if (data_version(s, &v, err) != 0)
		return -1;
	if (s->summary && s->summary->version == v)
		return 0;
	/* a listing going on while a writer commits: later pages may come from the
	 * summary its first page came from (PROTOCOL.md: entries that appear or vanish
	 * between pages are seen or not), rebuilt at most once per SRV_SQL_SUMMARY_REUSE */
	if (s->summary && continued && now_mono() - s->summary->built < SRV_SQL_SUMMARY_REUSE)
		return 0;
	if (s->summary_skip && s->skip_version == v)
		return 1;
	summary_free(s->summary);
	s->summary = NULL;
	s->summary_skip = false;
	if (!(sum = calloc(1, sizeof(*sum))))
		return srv_fail(err, RPC_E_ENOMEM, "out of memory listing calls");
	if (exec(s, s->db, "BEGIN", err) != 0) {
		summary_free(sum);
		return -1;
	}
	rc = summary_read(s, sum, err);
	sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
	if (rc == 0) {
		sum->built = now_mono();
		s->summary = sum;
		return 0;
	}
	if (rc == 1) {
		s->summary_skip = true;
		s->skip_version = sum->version;
	}
	summary_free(sum);
	return rc;
}

static int list_summary(struct srv_sqlstore *s, const char *after, size_t limit,
                        struct srv_page *page, struct srv_error *err)
{
	const struct srv_sql_summary *sum = s->summary;
	double fallback = db_mtime(s);
	size_t i = sum_upper(sum, after);

	memset(page, 0, sizeof(*page));
	if (page_grow(page, limit, err) != 0)
		return -1;
	for (; i < sum->n && page->n < limit; i++) {
		const struct sum_entry *se = &sum->e[i];
		struct srv_entry *e = &page->entries[page->n++];

		memcpy(e->key, se->key, RPC_KEY_LEN);
		e->key[RPC_KEY_LEN] = '\0';
		e->size = -1;
		e->mtime = se->has_t ? se->t : fallback;
		if (se->name != SUM_NO_NAME && !(e->name = strdup(sum->names[se->name]))) {
			srv_page_release(page);
			return srv_fail(err, RPC_E_ENOMEM, "out of memory listing calls");
		}
	}
	page->complete = i >= sum->n;
	return 0;
}

int srv_sql_list(struct srv_sqlstore *s, const char *after, size_t limit, bool detail,
                 struct srv_page *page, struct srv_error *err)
{
	sqlite3_stmt *st;
	double fallback;
	char k[RPC_KEY_LEN + 1];
	int rc;

	memset(page, 0, sizeof(*page));
	if (detail) {
		rc = summary_fresh(s, after != NULL, err);
		if (rc == 0)
			return list_summary(s, after, limit, page, err);
		if (rc < 0)
			return -1;
	}
	/* plain listing, or a database too large for a summary: a per-page join */
	st = stmt(s, detail ? SRV_SQ_LIST_DETAIL : SRV_SQ_LIST, err);
	fallback = detail ? db_mtime(s) : 0;
	if (!st)
		return -1;
	if (page_grow(page, limit, err) != 0)
		return -1;
	sqlite3_bind_text(st, 1, after ? after : "", after ? RPC_KEY_LEN : 0, SQLITE_STATIC);
	page->complete = true;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct srv_entry *e;

		if (!row_key(st, 0, k))
			continue;
		/* Rows come in key order; a key repeats when a database lacks the unique
		 * constraint, or has two runtime rows for a call (the join): once only. */
		if (page->n && strcmp(page->entries[page->n - 1].key, k) == 0)
			continue;
		if (page->n == limit) {
			page->complete = false;
			break;
		}
		e = &page->entries[page->n];
		memcpy(e->key, k, sizeof(k));
		e->size = -1;
		if (detail) {
			const char *name = (const char *)sqlite3_column_text(st, 1);
			const char *data = (const char *)sqlite3_column_text(st, 2);
			double t;

			e->mtime = fallback;
			if (data &&
			    srv_sjson_number(data, (size_t)sqlite3_column_bytes(st, 2), "timestop",
			                     &t) == 0 &&
			    isfinite(t))
				e->mtime = t;
			if (name && !(e->name = strdup(name))) {
				done(st);
				srv_page_release(page);
				return srv_fail(err, RPC_E_ENOMEM, "out of memory listing calls");
			}
		}
		page->n++;
	}
	done(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		srv_page_release(page);
		return db_fail(s, err, "list calls", rc);
	}
	return 0;
}

/* The version column: JSON text ('2', '"1.0"'), an older INTEGER, or NULL. */
static int read_version(sqlite3_stmt *st, int col, struct srv_record *rec)
{
	const char *t;
	int n;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_unpacked u;
	size_t off = 0;
	char why[64];
	int rc = 0;

	switch (sqlite3_column_type(st, col)) {
	case SQLITE_NULL:
		rec->version_kind = SRV_VERSION_NONE;
		return 0;
	case SQLITE_INTEGER:
		rec->version_kind = SRV_VERSION_INT;
		rec->version_int = sqlite3_column_int64(st, col);
		return 0;
	default:
		break;
	}
	t = (const char *)sqlite3_column_text(st, col);
	n = sqlite3_column_bytes(st, col);
	if (!t)
		return -1;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_unpacked_init(&u);
	if (srv_sjson_pack(t, (size_t)n, &pk, why, sizeof(why)) == 0 &&
	    msgpack_unpack_next(&u, sb.data, sb.size, &off) == MSGPACK_UNPACK_SUCCESS) {
		if (u.data.type == MSGPACK_OBJECT_NIL) {
			rec->version_kind = SRV_VERSION_NONE;
			goto out;
		}
		if (u.data.type == MSGPACK_OBJECT_POSITIVE_INTEGER ||
		    u.data.type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
			rec->version_kind = SRV_VERSION_INT;
			rec->version_int = u.data.via.i64;
			goto out;
		}
		if (u.data.type == MSGPACK_OBJECT_STR) {
			rec->version_kind = SRV_VERSION_STR;
			rec->version_str = srv_memdupz(u.data.via.str.ptr, u.data.via.str.size);
			rc = rec->version_str ? 0 : -1;
			goto out;
		}
	}
	/* not JSON (an older writer stored the text itself) */
	rec->version_kind = SRV_VERSION_STR;
	rec->version_str = srv_memdupz(t, (size_t)n);
	rc = rec->version_str ? 0 : -1;
out:
	msgpack_unpacked_destroy(&u);
	msgpack_sbuffer_destroy(&sb);
	return rc;
}

static char *col_dup(sqlite3_stmt *st, int col)
{
	const char *t = (const char *)sqlite3_column_text(st, col);

	return t ? srv_memdupz(t, (size_t)sqlite3_column_bytes(st, col)) : NULL;
}

/* One field of a stamp: its length first, so that fields cannot run together. */
static uint64_t stamp_field(uint64_t h, const char *p, size_t n)
{
	uint64_t len = p ? n : UINT64_MAX;

	h = srv_hash64(h, &len, sizeof(len));
	return p ? srv_hash64(h, p, n) : h;
}

static uint64_t stamp_str(uint64_t h, const char *s)
{
	return stamp_field(h, s, s ? strlen(s) : 0);
}

/* A call's stamp (srv_record.stamp): the hash of what load answers, its mtime
 * aside (the database's, when no timestop, changes with any write). A rewrite
 * inserts rows that may reuse the old row ids: only the contents tell. */
static uint64_t record_stamp(const struct srv_record *rec)
{
	uint64_t h = SRV_HASH64_INIT;
	int64_t vi = rec->version_int;

	h = stamp_str(h, rec->name);
	h = stamp_str(h, rec->module);
	h = stamp_field(h, (const char *)&rec->version_kind, sizeof(rec->version_kind));
	h = rec->version_kind == SRV_VERSION_INT ? stamp_field(h, (const char *)&vi, sizeof(vi))
	                                         : stamp_str(h, rec->version_str);
	h = stamp_str(h, rec->code_digest);
	for (size_t i = 0; i < rec->narguments; i++) {
		h = stamp_str(h, rec->arguments[i].name);
		h = stamp_str(h, rec->arguments[i].value);
	}
	h = stamp_str(h, rec->has_result ? rec->result : NULL);
	h = stamp_field(h, rec->metadata, rec->metadata_len);
	return h ? h : 1;
}

/* Loads key inside an open read transaction. */
static int load_in_txn(struct srv_sqlstore *s, const char *key, struct srv_record *rec,
                       struct srv_error *err)
{
	sqlite3_stmt *st;
	msgpack_sbuffer body, whole;
	msgpack_packer pk;
	size_t nblocks = 0, cap = 0;
	int rc, ret = -1;
	char why[128], bad_why[256];
	bool bad_block = false, seen_runtime = false;
	double timestop = NAN; /* the first runtime block's, for a record whose metadata is bad */

	msgpack_sbuffer_init(&body);
	msgpack_sbuffer_init(&whole);
	memset(rec, 0, sizeof(*rec));
	memcpy(rec->key, key, RPC_KEY_LEN);

	st = s->stmts[SRV_SQ_CALL];
	sqlite3_bind_text(st, 1, key, RPC_KEY_LEN, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		done(st);
		srv_fail(err, RPC_E_ENOENT, "no call '%s' in the cache", key);
		goto out;
	}
	if (rc != SQLITE_ROW) {
		done(st);
		db_fail(s, err, "read a call", rc);
		goto out;
	}
	if (sqlite3_column_type(st, 0) == SQLITE_NULL) {
		/* NOT NULL in fleche's schema: a row without a name is not a call */
		done(st);
		srv_fail(err, RPC_E_CORRUPT, "call '%s' in '%s' has no function name", key,
		         s->path);
		goto out;
	}
	rec->name = col_dup(st, 0);
	if (sqlite3_column_type(st, 1) != SQLITE_NULL && !(rec->module = col_dup(st, 1)))
		goto oom_st;
	if (read_version(st, 2, rec) != 0)
		goto oom_st;
	if (sqlite3_column_type(st, 3) != SQLITE_NULL && !(rec->code_digest = col_dup(st, 3)))
		goto oom_st;
	if (sqlite3_column_type(st, 4) != SQLITE_NULL) {
		char r[RPC_KEY_LEN + 1];

		if (!row_key(st, 4, r)) {
			done(st);
			srv_fail(err, RPC_E_CORRUPT, "call '%s' in '%s' has a malformed result key",
			         key, s->path);
			goto out;
		}
		memcpy(rec->result, r, sizeof(r));
		rec->has_result = true;
	}
	if (!rec->name)
		goto oom_st;
	done(st);

	if (!(st = stmt(s, SRV_SQ_ARGS, err)))
		goto out;
	sqlite3_bind_text(st, 1, key, RPC_KEY_LEN, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct srv_argument *a;
		char v[RPC_KEY_LEN + 1];

		if (!row_key(st, 1, v) || sqlite3_column_type(st, 0) == SQLITE_NULL) {
			done(st);
			srv_fail(err, RPC_E_CORRUPT,
			         "call '%s' in '%s' has an argument without a name or with a "
			         "malformed value key",
			         key, s->path);
			goto out;
		}
		if (rec->narguments == cap) {
			size_t ncap = cap ? cap * 2 : 8;
			void *p = realloc(rec->arguments, ncap * sizeof(*rec->arguments));

			if (!p)
				goto oom_st;
			rec->arguments = p;
			cap = ncap;
		}
		a = &rec->arguments[rec->narguments];
		memcpy(a->value, v, sizeof(v));
		if (!(a->name = col_dup(st, 0)))
			goto oom_st;
		rec->narguments++;
	}
	done(st);
	if (rc != SQLITE_DONE) {
		db_fail(s, err, "read arguments", rc);
		goto out;
	}

	if (!(st = stmt(s, SRV_SQ_META, err)))
		goto out;
	sqlite3_bind_text(st, 1, key, RPC_KEY_LEN, SQLITE_STATIC);
	msgpack_packer_init(&pk, &body, msgpack_sbuffer_write);
	/* a block that cannot be served spoils the metadata, not the call (record.h) */
	while (!bad_block && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 0);
		int nl = sqlite3_column_bytes(st, 0);
		const char *data = (const char *)sqlite3_column_text(st, 1);
		int dl = sqlite3_column_bytes(st, 1);

		if (!name || !data)
			continue;
		if (!seen_runtime && nl == 7 && memcmp(name, "runtime", 7) == 0) {
			seen_runtime = true;
			if (srv_sjson_number(data, (size_t)dl, "timestop", &timestop) != 0)
				timestop = NAN;
		}
		if (msgpack_pack_str(&pk, (size_t)nl) ||
		    msgpack_pack_str_body(&pk, name, (size_t)nl))
			goto oom_st;
		if (srv_sjson_pack(data, (size_t)dl, &pk, why, sizeof(why)) != 0) {
			snprintf(bad_why, sizeof(bad_why),
			         "has a block '%.*s' that cannot be read as JSON: %s",
			         nl > 64 ? 64 : nl, name, why);
			bad_block = true;
		} else if (body.size > SRV_META_MAX_BYTES) {
			snprintf(bad_why, sizeof(bad_why), "is larger than %u bytes",
			         SRV_META_MAX_BYTES);
			bad_block = true;
		}
		nblocks++;
	}
	done(st);
	if (!bad_block && rc != SQLITE_DONE) {
		db_fail(s, err, "read metadata", rc);
		goto out;
	}
	if (bad_block) {
		if (srv_record_meta_fail(rec, "the metadata of call '%s' in '%s' %s", key, s->path,
		                         bad_why) != 0)
			goto oom;
		rec->mtime = isfinite(timestop) ? timestop : db_mtime(s);
		ret = 0;
		goto out;
	}
	msgpack_packer_init(&pk, &whole, msgpack_sbuffer_write);
	if (msgpack_pack_map(&pk, nblocks) ||
	    (body.size && msgpack_sbuffer_write(&whole, body.data, body.size)))
		goto oom;
	rec->metadata_len = whole.size;
	rec->metadata = msgpack_sbuffer_release(&whole);
	if (!rec->metadata)
		goto oom;
	/* a timestop that is not a finite number (NaN) is no time */
	if (srv_record_meta_number(rec->metadata, rec->metadata_len, "runtime", "timestop",
	                           &rec->mtime) != 0 ||
	    !isfinite(rec->mtime))
		rec->mtime = db_mtime(s);
	rec->stamp = record_stamp(rec);
	ret = 0;
	goto out;
oom_st:
	done(st);
oom:
	srv_fail(err, RPC_E_ENOMEM, "out of memory loading call '%s'", key);
out:
	msgpack_sbuffer_destroy(&body);
	msgpack_sbuffer_destroy(&whole);
	if (ret != 0)
		srv_record_release(rec);
	return ret;
}

int srv_sql_load(struct srv_sqlstore *s, const char *key, struct srv_record *rec,
                 struct srv_error *err)
{
	int rc;

	if (exec(s, s->db, "BEGIN", err) != 0)
		return -1;
	rc = load_in_txn(s, key, rec, err);
	sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
	return rc;
}

int srv_sql_delete(struct srv_sqlstore *s, const char *key, struct srv_error *err)
{
	static const char *const dels[] = {
	    "DELETE FROM arguments WHERE call_key = ?1",
	    "DELETE FROM metadata WHERE call_key = ?1",
	    "DELETE FROM calls WHERE \"key\" = ?1",
	};
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int rc, attempt, ret = -1;

	if (s->immutable)
		return srv_fail(err, RPC_E_EROFS, "database '%s' is read as an immutable file",
		                s->path);
	rc = sqlite3_open_v2(s->path, &db,
	                     SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW,
	                     NULL);
	if (rc != SQLITE_OK) {
		srv_fail(err, RPC_E_EACCES, "cannot open database '%s' for writing: %s", s->path,
		         db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		goto out;
	}
	sqlite3_busy_timeout(db, SRV_SQL_BUSY_MS);
	for (attempt = 0; attempt < 3; attempt++) {
		rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
		if (rc == SQLITE_BUSY)
			continue;
		if (rc != SQLITE_OK)
			break;
		for (size_t i = 0; i < sizeof(dels) / sizeof(dels[0]); i++) {
			rc = sqlite3_prepare_v2(db, dels[i], -1, &st, NULL);
			if (rc != SQLITE_OK)
				break;
			sqlite3_bind_text(st, 1, key, RPC_KEY_LEN, SQLITE_STATIC);
			rc = sqlite3_step(st);
			sqlite3_finalize(st);
			st = NULL;
			if (rc != SQLITE_DONE)
				break;
			rc = SQLITE_OK;
		}
		if (rc == SQLITE_OK)
			rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
		if (rc == SQLITE_OK) {
			summary_free(s->summary); /* invariant 4 */
			s->summary = NULL;
			ret = 0;
			goto out;
		}
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		if ((rc & 0xff) != SQLITE_BUSY)
			break;
	}
	if ((rc & 0xff) == SQLITE_READONLY || rc == SQLITE_PERM || rc == SQLITE_CANTOPEN)
		srv_fail(err, RPC_E_EACCES, "cannot delete call '%s' from '%s': %s", key, s->path,
		         sqlite3_errmsg(db));
	else
		srv_fail(err, RPC_E_EIO, "cannot delete call '%s' from '%s': %s", key, s->path,
		         sqlite3_errmsg(db));
out:
	sqlite3_close(db);
	return ret;
}

int srv_sql_names(struct srv_sqlstore *s, const char *after, size_t limit, struct srv_names *out,
                  struct srv_error *err)
{
	sqlite3_stmt *st = stmt(s, SRV_SQ_NAMES, err);
	int rc;

	memset(out, 0, sizeof(*out));
	if (!st)
		return -1;
	out->names = calloc(limit ? limit : 1, sizeof(*out->names));
	if (!out->names)
		return srv_fail(err, RPC_E_ENOMEM, "out of memory listing names");
	sqlite3_bind_text(st, 1, after ? after : "", -1, SQLITE_STATIC);
	out->complete = true;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (out->n == limit) {
			out->complete = false;
			break;
		}
		if (!(out->names[out->n] = col_dup(st, 0))) {
			done(st);
			srv_names_release(out);
			return srv_fail(err, RPC_E_ENOMEM, "out of memory listing names");
		}
		out->n++;
	}
	done(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		srv_names_release(out);
		return db_fail(s, err, "list names", rc);
	}
	return 0;
}

int srv_sql_query(struct srv_sqlstore *s, const msgpack_object *tmpl, const char *after,
                  size_t limit, bool detail, struct srv_page *page, struct srv_error *err)
{
	size_t nlen = 0;
	const char *name = srv_query_name(tmpl, &nlen);
	sqlite3_stmt *st;
	char k[RPC_KEY_LEN + 1], prev[RPC_KEY_LEN + 1] = "";
	int rc, ret = -1;

	memset(page, 0, sizeof(*page));
	if (page_grow(page, limit, err) != 0)
		return -1;
	if (exec(s, s->db, "BEGIN", err) != 0) {
		srv_page_release(page);
		return -1;
	}
	st = stmt(s, name ? SRV_SQ_QUERY_NAME : SRV_SQ_QUERY, err);
	if (!st)
		goto out;
	sqlite3_bind_text(st, 1, after ? after : "", after ? RPC_KEY_LEN : 0, SQLITE_STATIC);
	if (name)
		sqlite3_bind_text(st, 2, name, (int)nlen, SQLITE_STATIC);
	page->complete = true;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct srv_record rec;

		if (!row_key(st, 0, k) || strcmp(k, prev) == 0)
			continue; /* not a key, or repeated (no unique constraint) */
		memcpy(prev, k, sizeof(prev));
		if (load_in_txn(s, k, &rec, err) != 0) {
			if (err->code == RPC_E_ENOENT || err->code == RPC_E_CORRUPT)
				continue; /* vanished or unreadable: not a match */
			done(st);
			goto out;
		}
		if (srv_query_offer(page, limit, tmpl, k, &rec, detail))
			break;
	}
	done(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		db_fail(s, err, "query calls", rc);
		goto out;
	}
	ret = 0;
out:
	sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
	if (ret != 0)
		srv_page_release(page);
	return ret;
}

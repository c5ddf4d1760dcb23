/*
 * test_cache_many.c: the record summaries of a files-layout cache large enough that
 * the server computes them on several threads (server/store_files.c): a detailed
 * `list`, `names` and a `query` by name must say of every record exactly what
 * loading it one at a time says; records that cannot be read are listed without a
 * name; records that vanish after the directory was scanned are left out and the
 * page filled from beyond; nothing is answered twice or out of order.
 *
 * The cache is written by examples/make-cache.py (Debian's /usr/bin/python3), plain
 * and gzip-compressed. Also: a SQLite database whose calls table lacks the unique
 * key (not fleche's schema, but a file the server may be given) lists each key once.
 * And: opening many large gzip values one after the other keeps at most
 * SRV_VALUE_LRU_COPIES bytes of their decompressed copies besides the newest.
 */
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <msgpack.h>
#include <sqlite3.h>
#include <zlib.h>

#include "cache.h"
#include "check.h"

#define NCALLS 1500 /* and 12 big ones */

struct truth {
	char key[RPC_KEY_LEN + 1];
	char *name; /* NULL: unreadable */
	double mtime;
	bool gone;
};

static struct truth calls[NCALLS + 16];
static size_t ncalls;

static struct srv_cache *open_cache(const char *root)
{
	struct srv_config cfg = {0};
	struct srv_cache *c = NULL;
	struct srv_error err = {0};

	cfg.root = root;
	cfg.read_only = true;
	if (srv_cache_open(&cfg, &c, &err) != 0) {
		printf("cannot open cache '%s': %s\n", root, err.message);
		failures++;
		return NULL;
	}
	return c;
}

static bool same_name(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* What loading each call one at a time says: the reference for everything else. */
static void load_truth(struct srv_cache *c)
{
	struct srv_page page;
	struct srv_error err = {0};

	for (size_t i = 0; i < ncalls; i++)
		free(calls[i].name);
	ncalls = 0;
	/* keys only (no summaries): one page holds them all */
	if (srv_list(c, SRV_CALLS, NULL, RPC_PAGE_MAX, false, &page, &err) != 0) {
		CHECK(0, "list keys: %s", err.message);
		return;
	}
	CHECK(page.complete && page.n <= sizeof(calls) / sizeof(calls[0]), "keys: %zu", page.n);
	for (size_t i = 0; i < page.n && i < sizeof(calls) / sizeof(calls[0]); i++) {
		struct truth *t = &calls[ncalls++];
		struct srv_record r;

		memcpy(t->key, page.entries[i].key, sizeof(t->key));
		t->name = NULL;
		t->gone = false;
		if (srv_load(c, t->key, RPC_KEY_LEN, &r, &err) == 0) {
			t->name = strdup(r.name);
			t->mtime = r.mtime;
			srv_record_release(&r);
		} else {
			t->mtime = NAN; /* unreadable: the caller finds its file's mtime */
		}
	}
	srv_page_release(&page);
}

/* Checks one full detailed listing in pages of `limit` against the truth. */
static void check_listing(struct srv_cache *c, size_t limit, const char *what)
{
	char after[RPC_KEY_LEN + 1] = "";
	size_t at = 0, pages = 0, bad = 0;
	bool complete = false;

	while (!complete && pages < ncalls + 2) {
		struct srv_page page;
		struct srv_error err = {0};

		if (srv_list(c, SRV_CALLS, after[0] ? after : NULL, limit, true, &page, &err) != 0) {
			CHECK(0, "%s: list: %s", what, err.message);
			return;
		}
		pages++;
		complete = page.complete;
		CHECK(page.n <= limit, "%s: page of %zu for limit %zu", what, page.n, limit);
		CHECK(complete || page.n == limit, "%s: an incomplete page is full (%zu of %zu)",
		      what, page.n, limit);
		for (size_t i = 0; i < page.n; i++) {
			const struct srv_entry *e = &page.entries[i];

			while (at < ncalls && calls[at].gone)
				at++;
			if (at >= ncalls || strcmp(e->key, calls[at].key) != 0) {
				bad++;
				if (bad < 5)
					CHECK(0, "%s: entry %s where %s was expected", what, e->key,
					      at < ncalls ? calls[at].key : "the end");
				continue;
			}
			if (!same_name(e->name, calls[at].name) || e->mtime != calls[at].mtime) {
				bad++;
				if (bad < 5)
					CHECK(0, "%s: %s: name %s mtime %.9f, loaded %s %.9f", what,
					      e->key, e->name ? e->name : "(none)", e->mtime,
					      calls[at].name ? calls[at].name : "(none)",
					      calls[at].mtime);
			}
			at++;
		}
		if (page.n)
			memcpy(after, page.entries[page.n - 1].key, sizeof(after));
		srv_page_release(&page);
	}
	while (at < ncalls && calls[at].gone)
		at++;
	CHECK(complete && at == ncalls && bad == 0, "%s: %zu of %zu listed, %zu wrong", what, at,
	      ncalls, bad);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void check_names_and_query(struct srv_cache *c, const char *what)
{
	char *want[sizeof(calls) / sizeof(calls[0])];
	size_t nwant = 0, u = 0;
	struct srv_names names;
	struct srv_error err = {0};

	for (size_t i = 0; i < ncalls; i++)
		if (!calls[i].gone && calls[i].name)
			want[nwant++] = calls[i].name;
	qsort(want, nwant, sizeof(*want), cmp_str);
	for (size_t i = 0; i < nwant; i++)
		if (!u || strcmp(want[u - 1], want[i]) != 0)
			want[u++] = want[i];
	if (srv_names(c, NULL, 1000, &names, &err) != 0) {
		CHECK(0, "%s: names: %s", what, err.message);
		return;
	}
	CHECK(names.complete && names.n == u, "%s: %zu names, %zu expected", what, names.n, u);
	for (size_t i = 0; i < names.n && i < u; i++)
		CHECK(strcmp(names.names[i], want[i]) == 0, "%s: name %zu: %s, expected %s", what,
		      i, names.names[i], want[i]);
	srv_names_release(&names);

	/* query by each name, in pages of 97: exactly the calls loaded with that name */
	for (size_t n = 0; n < u; n++) {
		msgpack_sbuffer sb;
		msgpack_packer pk;
		msgpack_unpacked up;
		char after[RPC_KEY_LEN + 1] = "";
		size_t at = 0, got = 0, bad = 0;
		bool complete = false;

		msgpack_sbuffer_init(&sb);
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		msgpack_pack_map(&pk, 1);
		msgpack_pack_str_with_body(&pk, "name", 4);
		msgpack_pack_str_with_body(&pk, want[n], strlen(want[n]));
		msgpack_unpacked_init(&up);
		CHECK(msgpack_unpack_next(&up, sb.data, sb.size, NULL) == MSGPACK_UNPACK_SUCCESS,
		      "template");
		while (!complete && got <= ncalls) {
			struct srv_page page;

			if (srv_query(c, &up.data, after[0] ? after : NULL, 97, true, &page, &err) !=
			    0) {
				CHECK(0, "%s: query %s: %s", what, want[n], err.message);
				break;
			}
			complete = page.complete;
			for (size_t i = 0; i < page.n; i++, got++) {
				while (at < ncalls && (calls[at].gone || !same_name(calls[at].name,
				                                                     want[n])))
					at++;
				if (at >= ncalls || strcmp(page.entries[i].key, calls[at].key) != 0)
					bad++;
				else
					at++;
			}
			if (page.n)
				memcpy(after, page.entries[page.n - 1].key, sizeof(after));
			srv_page_release(&page);
		}
		while (at < ncalls && (calls[at].gone || !same_name(calls[at].name, want[n])))
			at++;
		CHECK(complete && at == ncalls && bad == 0, "%s: query %s: %zu answered, %zu wrong",
		      what, want[n], got, bad);
		msgpack_unpacked_destroy(&up);
		msgpack_sbuffer_destroy(&sb);
	}
}

/* Sets the mtime of dir to t seconds ago, so that the key index, once taken, is not
 * retaken (keyindex.h) when files are removed behind its back. */
static void age_dir(const char *dir, time_t t)
{
	struct timespec ts[2];

	clock_gettime(CLOCK_REALTIME, &ts[0]);
	ts[0].tv_sec -= t;
	ts[1] = ts[0];
	CHECK(utimensat(AT_FDCWD, dir, ts, 0) == 0, "utimensat %s", dir);
}

static void run(const char *root, const char *what)
{
	struct srv_cache *c = open_cache(root);
	char dir[1024], path[1200];
	size_t i, truncated = 0, removed = 0;
	struct timespec old[2];
	struct stat st;

	if (!c)
		return;
	snprintf(dir, sizeof(dir), "%s/calls", root);
	load_truth(c);
	CHECK(ncalls >= NCALLS, "%s: %zu calls", what, ncalls);
	check_listing(c, RPC_PAGE_MAX, what);
	check_listing(c, 1000, what);
	check_listing(c, 1, what);
	check_names_and_query(c, what);
	srv_cache_free(c);

	/* again on a fresh server, whose identity cache is empty; every 37th record
	 * unreadable (cut short): listed without a name, with its file's mtime */
	for (i = 0; i < ncalls; i += 37) {
		snprintf(path, sizeof(path), "%s/%.64s", dir, calls[i].key);
		CHECK(truncate(path, 7) == 0, "truncate");
		truncated++;
	}
	if (!(c = open_cache(root)))
		return;
	load_truth(c);
	for (i = 0; i < ncalls; i++) {
		if (calls[i].name)
			continue;
		snprintf(path, sizeof(path), "%s/%.64s", dir, calls[i].key);
		CHECK(stat(path, &st) == 0, "stat");
		calls[i].mtime = st.st_mtim.tv_sec + st.st_mtim.tv_nsec / 1e9;
	}
	srv_cache_free(c);
	if (!(c = open_cache(root)))
		return;
	{
		size_t unnamed = 0;

		for (i = 0; i < ncalls; i++)
			unnamed += !calls[i].name;
		CHECK(unnamed == truncated, "%s: %zu unreadable, %zu cut", what, unnamed, truncated);
	}
	check_listing(c, 1000, "fresh server, unreadable records");
	check_names_and_query(c, "fresh server, unreadable records");
	srv_cache_free(c);

	/* records removed after the directory was scanned: on a fresh server (nothing
	 * known), the scan is taken, then every third record goes behind its back */
	if (!(c = open_cache(root)))
		return;
	age_dir(dir, 10);
	CHECK(stat(dir, &st) == 0, "stat dir");
	old[0] = st.st_atim;
	old[1] = st.st_mtim;
	{
		uint64_t nc = 0, nv = 0;
		struct srv_error err = {0};

		CHECK(srv_count(c, &nc, &nv, &err) == 0 && nc == ncalls, "scan");
	}
	for (i = 1; i < ncalls; i += 3) {
		snprintf(path, sizeof(path), "%s/%.64s", dir, calls[i].key);
		CHECK(unlink(path) == 0, "unlink");
		calls[i].gone = true;
		removed++;
	}
	CHECK(utimensat(AT_FDCWD, dir, old, 0) == 0, "restore the directory's times");
	check_listing(c, 1000, "records vanished since the scan");
	check_names_and_query(c, "records vanished since the scan");
	srv_cache_free(c);
	CHECK(removed > 400, "removed %zu", removed);
}

/* A calls table without its primary key, some keys twice: each listed once. */
static void test_sql_repeated_keys(const char *tmp)
{
	char root[512], db[600], key[RPC_KEY_LEN + 1], after[RPC_KEY_LEN + 1] = "";
	sqlite3 *h = NULL;
	sqlite3_stmt *ins = NULL;
	struct srv_cache *c;
	size_t total = 0, pages = 0;
	bool complete = false, ordered = true;
	const size_t n = 2500;

	snprintf(root, sizeof(root), "%s/sqlrep", tmp);
	CHECK(mkdir(root, 0755) == 0, "mkdir");
	snprintf(db, sizeof(db), "%s/calls.db", root);
	CHECK(sqlite3_open(db, &h) == SQLITE_OK, "create db");
	CHECK(sqlite3_exec(h,
	                   "CREATE TABLE calls (\"key\" VARCHAR(64) NOT NULL, name VARCHAR NOT NULL,"
	                   " module VARCHAR, version INTEGER, result VARCHAR(64));"
	                   "CREATE TABLE arguments (id INTEGER NOT NULL, call_key VARCHAR(64) NOT NULL,"
	                   " position INTEGER NOT NULL, name VARCHAR NOT NULL, value VARCHAR(64) NOT"
	                   " NULL, PRIMARY KEY (id));"
	                   "CREATE TABLE metadata (id INTEGER NOT NULL, call_key VARCHAR(64) NOT NULL,"
	                   " name VARCHAR NOT NULL, data JSON NOT NULL, PRIMARY KEY (id));"
	                   "BEGIN",
	                   NULL, NULL, NULL) == SQLITE_OK,
	      "schema: %s", sqlite3_errmsg(h));
	CHECK(sqlite3_prepare_v2(h, "INSERT INTO calls VALUES (?1, 'f', NULL, NULL, NULL)", -1,
	                         &ins, NULL) == SQLITE_OK,
	      "prepare");
	for (size_t i = 0; i < n; i++) {
		/* every third key twice, every fifth three times */
		int times = 1 + (i % 3 == 0) + (i % 5 == 0);

		snprintf(key, sizeof(key), "%064zx", i * 2654435761u);
		for (int t = 0; t < times; t++) {
			sqlite3_bind_text(ins, 1, key, RPC_KEY_LEN, SQLITE_TRANSIENT);
			CHECK(sqlite3_step(ins) == SQLITE_DONE, "insert");
			sqlite3_reset(ins);
		}
	}
	sqlite3_finalize(ins);
	CHECK(sqlite3_exec(h, "COMMIT", NULL, NULL, NULL) == SQLITE_OK, "commit");
	sqlite3_close(h);
	if (!(c = open_cache(root)))
		return;
	for (int detail = 0; detail < 2; detail++) {
		after[0] = '\0';
		total = pages = 0;
		complete = false;
		ordered = true;
		while (!complete && pages < n) {
			struct srv_page page;
			struct srv_error err = {0};

			if (srv_list(c, SRV_CALLS, after[0] ? after : NULL, 97, detail, &page, &err) !=
			    0) {
				CHECK(0, "list: %s", err.message);
				break;
			}
			pages++;
			complete = page.complete;
			for (size_t i = 0; i < page.n; i++) {
				if (after[0] && strcmp(page.entries[i].key, after) <= 0)
					ordered = false;
				memcpy(after, page.entries[i].key, sizeof(after));
			}
			total += page.n;
			srv_page_release(&page);
		}
		CHECK(complete && ordered && total == n, "repeated keys%s: %zu listed of %zu, %s",
		      detail ? " (detail)" : "", total, n,
		      ordered ? "ascending" : "not strictly ascending");
	}
	/* a query pages through the same keys once each; a full key's prefix is unique */
	{
		msgpack_sbuffer sb;
		msgpack_packer pk;
		msgpack_unpacked up;
		struct srv_error err = {0};
		char out[RPC_KEY_LEN + 1];

		msgpack_sbuffer_init(&sb);
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		msgpack_pack_map(&pk, 1);
		msgpack_pack_str_with_body(&pk, "name", 4);
		msgpack_pack_str_with_body(&pk, "f", 1);
		msgpack_unpacked_init(&up);
		CHECK(msgpack_unpack_next(&up, sb.data, sb.size, NULL) == MSGPACK_UNPACK_SUCCESS,
		      "template");
		after[0] = '\0';
		total = 0;
		complete = false;
		ordered = true;
		for (pages = 0; !complete && pages < n; pages++) {
			struct srv_page page;

			if (srv_query(c, &up.data, after[0] ? after : NULL, 89, false, &page, &err) !=
			    0) {
				CHECK(0, "query: %s", err.message);
				break;
			}
			complete = page.complete;
			for (size_t i = 0; i < page.n; i++) {
				if (after[0] && strcmp(page.entries[i].key, after) <= 0)
					ordered = false;
				memcpy(after, page.entries[i].key, sizeof(after));
			}
			total += page.n;
			srv_page_release(&page);
		}
		CHECK(complete && ordered && total == n, "repeated keys: %zu queried of %zu", total,
		      n);
		msgpack_unpacked_destroy(&up);
		msgpack_sbuffer_destroy(&sb);
		snprintf(key, sizeof(key), "%064zx", (size_t)0);
		CHECK(srv_expand(c, key, 60, out, &err) == 0 && strcmp(out, key) == 0,
		      "a repeated key's prefix expands: %s", err.message);
	}
	srv_cache_free(c);
}

/* Writes n zero bytes gzip-compressed to path. */
static int gzip_zeros(const char *path, size_t n)
{
	static unsigned char zeros[1 << 16];
	gzFile f = gzopen(path, "wb1");
	int ok = f != NULL;

	while (ok && n) {
		size_t k = n < sizeof(zeros) ? n : sizeof(zeros);

		ok = gzwrite(f, zeros, (unsigned)k) == (int)k;
		n -= k;
	}
	return f && gzclose(f) == Z_OK && ok ? 0 : -1;
}

/* Bytes of this process's mappings of deleted files (the spilled decompressed copies). */
static uint64_t deleted_mapped(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[1024];
	uint64_t total = 0;

	while (f && fgets(line, sizeof(line), f)) {
		unsigned long long lo, hi;

		if (strstr(line, " (deleted)") && sscanf(line, "%llx-%llx", &lo, &hi) == 2)
			total += hi - lo;
	}
	if (f)
		fclose(f);
	return total;
}

static void test_gzip_copies_bounded(const char *tmp)
{
	const size_t size = 96u << 20, nvalues = 8;
	char root[512], path[700];
	struct srv_cache *c;
	uint64_t most = 0;

	snprintf(root, sizeof(root), "%s/gzbig", tmp);
	snprintf(path, sizeof(path), "%s/values", root);
	CHECK(mkdir(root, 0755) == 0 && mkdir(path, 0755) == 0, "mkdir");
	for (size_t i = 0; i < nvalues; i++) {
		snprintf(path, sizeof(path), "%s/values/%064zx", root, i + 1);
		CHECK(gzip_zeros(path, size) == 0, "gzip");
	}
	if (!(c = open_cache(root)))
		return;
	for (size_t i = 0; i < nvalues; i++) {
		struct srv_value *v;
		struct srv_error err = {0};
		char key[RPC_KEY_LEN + 1];
		uint64_t m;

		snprintf(key, sizeof(key), "%064zx", i + 1);
		if (srv_value_open(c, key, RPC_KEY_LEN, &v, &err) != 0) {
			CHECK(0, "open the gzip value %zu: %s", i, err.message);
			continue;
		}
		CHECK(srv_value_size(v) == size && srv_value_bytes(v)[size - 1] == 0,
		      "gzip value %zu", i);
		srv_value_close(v);
		m = deleted_mapped();
		if (m > most)
			most = m;
	}
	CHECK(most >= size && most <= SRV_VALUE_LRU_COPIES + size,
	      "decompressed copies kept: at most %llu MiB (bound %llu MiB)",
	      (unsigned long long)(most >> 20),
	      (unsigned long long)((SRV_VALUE_LRU_COPIES + size) >> 20));
	srv_cache_free(c);
}

/* Adds 12 calls whose records hold 3 MiB of metadata tags, with make-cache.py's
 * writer: argv 1 make-cache.py, 2 the cache, 3 "gzip" or "plain". */
static const char BIG_RECORDS[] =
    "import importlib.util, sys\n"
    "spec = importlib.util.spec_from_file_location('mc', sys.argv[1])\n"
    "mc = importlib.util.module_from_spec(spec)\n"
    "spec.loader.exec_module(mc)\n"
    "mc.install_standins()\n"
    "w = mc.CacheWriter(sys.argv[2], 'files', 5, sys.argv[3] == 'gzip')\n"
    "for i in range(12):\n"
    "    w.put_call('big', [('i', i)], i,\n"
    "               mc.metadata(2000000 + i, tags={'blob': 'x' * (3 << 20)}))\n"
    "w.close()\n";

int main(void)
{
	const char *src = getenv("FLECHEFS_SOURCE");
	char tmp[256], cmd[2048], root[512], script[300];
	static const char *const variants[][2] = {{"plain", ""}, {"gzip", "--gzip"}};

	if (!src || access("/usr/bin/python3", X_OK) != 0) {
		printf("skipped: FLECHEFS_SOURCE and /usr/bin/python3 are needed to write the "
		       "cache\n");
		return getenv("CI") && strcmp(getenv("CI"), "true") == 0 ? 1 : 77;
	}
	snprintf(tmp, sizeof(tmp), "%s/flechefs-test-many-XXXXXX",
	         getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(tmp)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(script, sizeof(script), "%s/big-records.py", tmp);
	{
		FILE *f = fopen(script, "w");

		CHECK(f && fputs(BIG_RECORDS, f) >= 0 && fclose(f) == 0, "write %s", script);
	}
	for (size_t v = 0; v < sizeof(variants) / sizeof(variants[0]); v++) {
		snprintf(root, sizeof(root), "%s/%s", tmp, variants[v][0]);
		snprintf(cmd, sizeof(cmd),
		         "/usr/bin/python3 '%s/examples/make-cache.py' -q --calls %d %s '%s'", src,
		         NCALLS, variants[v][1], root);
		if (system(cmd) != 0) {
			CHECK(0, "make-cache.py %s failed", variants[v][0]);
			continue;
		}
		/* and records of 3 MiB (metadata tags), which are read one at a time */
		snprintf(cmd, sizeof(cmd), "/usr/bin/python3 '%s' '%s/examples/make-cache.py' '%s' %s",
		         script, src, root, variants[v][1][0] ? "gzip" : "plain");
		if (system(cmd) != 0) {
			CHECK(0, "adding big records to %s failed", variants[v][0]);
			continue;
		}
		run(root, variants[v][0]);
	}
	test_sql_repeated_keys(tmp);
	test_gzip_copies_bounded(tmp);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
	if (system(cmd) != 0)
		printf("cannot remove %s\n", tmp);
	for (size_t i = 0; i < ncalls; i++)
		free(calls[i].name);
	return check_report("test_cache_many");
}

/*
 * store_sql.h: fleche's SQL call storage (SQLite, usually in WAL mode with a live
 * writer next to us), read through one read-only connection.
 *
 * Invariants:
 *   1. Reads never hold a statement or a read transaction across calls: every
 *      statement is reset before the function that stepped it returns, so a
 *      fleche writer is never blocked by us (busy_timeout SRV_SQL_BUSY_MS).
 *   2. Only bound parameters carry keys and names into SQL; keys read from the
 *      database that are not 64 lowercase hex characters are skipped.
 *   3. The only writes here are srv_sql_delete's, through a read-write connection
 *      opened for that transaction and closed after it, and the checkpoint SQLite may
 *      make in srv_sql_close's tidying (invariant 6) of what others committed. (A saved
 *      record is inserted by save_sql.c the same way, on a connection of its own: to
 *      this storage it is one more writer.)
 *   4. Detail listings are served from a summary (key, name, runtime.timestop of
 *      every call, sorted by key) read in one read transaction by two sequential
 *      scans (random b-tree lookups per row cost ten times more). A listing's first
 *      page (no `after`) uses it only while PRAGMA data_version is the one read with
 *      it (any commit by another connection changes it) and our own evictions drop
 *      it; later pages may reuse one up to SRV_SQL_SUMMARY_REUSE seconds old, so
 *      that a busy writer does not cost a rebuild per page (PROTOCOL.md: entries
 *      that appear or vanish between pages are seen or not). Databases of more than
 *      SRV_SQL_SUMMARY_MAX calls get no summary and are listed with a per-page join.
 *   5. The database file is never opened through a symbolic link (SQLITE_OPEN_NOFOLLOW
 *      on a path whose directory part has been resolved): whoever can write the
 *      cache's directory cannot have the server read another database.
 *   6. The directory is left as it was found: when neither -wal nor -shm was there
 *      at the open, srv_sql_close lets SQLite remove those it made by closing a
 *      connection that may write, which SQLite does only as the database's last
 *      connection (an exclusive lock), after checkpointing what others committed
 *      meanwhile. A writer still connected keeps its files; nothing is lost.
 */
#ifndef FLECHEFS_SERVER_STORE_SQL_H
#define FLECHEFS_SERVER_STORE_SQL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>
#include <sqlite3.h>

#include "base.h"

#define SRV_SQL_BUSY_MS       2000
#define SRV_SQL_MAX_RANGE     4096
#define SRV_SQL_SUMMARY_MAX   500000 /* calls; about 80 bytes each plus distinct names */
#define SRV_SQL_SUMMARY_REUSE 1.0    /* seconds */

enum srv_sql_stmt {
	SRV_SQ_EXISTS,
	SRV_SQ_RANGE,
	SRV_SQ_PREV,
	SRV_SQ_NEXT,
	SRV_SQ_LIST,
	SRV_SQ_LIST_DETAIL,
	SRV_SQ_CALL,
	SRV_SQ_ARGS,
	SRV_SQ_META,
	SRV_SQ_COUNT,
	SRV_SQ_NAMES,
	SRV_SQ_QUERY,
	SRV_SQ_QUERY_NAME,
	SRV_SQ_DATA_VERSION,
	SRV_SQ_SUM_CALLS,
	SRV_SQ_SUM_RUNTIME,
	SRV_SQ__COUNT
};

struct srv_sqlstore {
	char *path; /* absolute database file */
	sqlite3 *db;
	bool has_code_digest;
	bool immutable;
	bool tidy; /* invariant 6: no -wal or -shm at the open */
	sqlite3_stmt *stmts[SRV_SQ__COUNT];
	struct srv_sql_summary *summary; /* invariant 4; NULL until a detail listing */
	bool summary_skip;               /* too many calls at data_version skip_version */
	int64_t skip_version;
};

/* Opens the database file at path (absolute, its directory part without symbolic
 * links); a symbolic link there is refused (EINVAL). */
int srv_sql_open(struct srv_sqlstore *s, const char *path, struct srv_error *err);
/* Closes, and tidies up the directory (invariant 6). */
void srv_sql_close(struct srv_sqlstore *s);

int srv_sql_count(struct srv_sqlstore *s, uint64_t *n, struct srv_error *err);
int srv_sql_exists(struct srv_sqlstore *s, const char *key, bool *found, struct srv_error *err);
/*
 * Keys starting with prefix[0..len), ascending: at most max of them into out, the
 * total number (up to SRV_SQL_MAX_RANGE) in *total.
 */
int srv_sql_range(struct srv_sqlstore *s, const char *prefix, size_t len,
                  char (*out)[RPC_KEY_LEN + 1], size_t max, size_t *total, unsigned *needed,
                  struct srv_error *err);
/* Shortest unique prefix of a stored key (ENOENT when not stored). */
int srv_sql_shrink(struct srv_sqlstore *s, const char *key, unsigned *len, struct srv_error *err);
int srv_sql_list(struct srv_sqlstore *s, const char *after, size_t limit, bool detail,
                 struct srv_page *page, struct srv_error *err);
int srv_sql_load(struct srv_sqlstore *s, const char *key, struct srv_record *rec,
                 struct srv_error *err);
int srv_sql_delete(struct srv_sqlstore *s, const char *key, struct srv_error *err);
int srv_sql_names(struct srv_sqlstore *s, const char *after, size_t limit, struct srv_names *out,
                  struct srv_error *err);
int srv_sql_query(struct srv_sqlstore *s, const msgpack_object *tmpl, const char *after,
                  size_t limit, bool detail, struct srv_page *page, struct srv_error *err);

#endif

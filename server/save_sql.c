/*
 * save_sql.c: a call record written into fleche's SQL call storage as fleche's
 * sql.py writes it: one row of `calls` (version JSON-encoded), one row of
 * `arguments` per argument (its position in signature order) and one row of
 * `metadata` per block (the block as JSON text), all in one transaction on a
 * connection of its own (BEGIN IMMEDIATE, as srv_sql_delete), so that a reader sees
 * the whole record or none of it. A key already in `calls` is left alone.
 */
#include <errno.h>
#include <math.h>
#include <string.h>

#include <sqlite3.h>

#include "json_writer.h"
#include "msg.h"
#include "proto.h"
#include "rpc.h"
#include "save.h"
#include "store_sql.h"

#define META_JSON_MAX (8u * 1024 * 1024)
#define META_DEPTH    64

/*
 * A metadata value as Python's json.dumps writes it with its defaults (what
 * SQLAlchemy's JSON column holds, and fleche's json.dumps(version)), byte for byte:
 * strings in ASCII with \uXXXX escapes (ensure_ascii), ", " and ": " separators,
 * NaN and the infinities as NaN / Infinity / -Infinity, {"$int": digits} as the
 * integer. -EINVAL for what JSON cannot hold (bytes, {"$object": ...}, a map
 * with a key that is not a str).
 */
static int meta_json(struct rpc_buf *b, const msgpack_object *o, unsigned depth)
{
	const char *s;
	size_t n;
	int r = 0;

	if (depth > META_DEPTH)
		return -EINVAL;
	switch (o->type) {
	case MSGPACK_OBJECT_NIL:
		return rpc_buf_adds(b, "null");
	case MSGPACK_OBJECT_BOOLEAN:
		return rpc_buf_adds(b, o->via.boolean ? "true" : "false");
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		return rpc_json_uint(b, o->via.u64);
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		return rpc_json_int(b, o->via.i64);
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		if (isnan(o->via.f64))
			return rpc_buf_adds(b, "NaN");
		if (isinf(o->via.f64))
			return rpc_buf_adds(b, o->via.f64 > 0 ? "Infinity" : "-Infinity");
		return rpc_json_double(b, o->via.f64);
	case MSGPACK_OBJECT_STR:
		return rpc_json_string_ascii(b, o->via.str.ptr, o->via.str.size);
	case MSGPACK_OBJECT_ARRAY:
		r |= rpc_buf_addc(b, '[');
		for (uint32_t i = 0; i < o->via.array.size && r == 0; i++) {
			if (i)
				r |= rpc_buf_adds(b, ", ");
			r |= meta_json(b, &o->via.array.ptr[i], depth + 1);
		}
		return r ? r : rpc_buf_addc(b, ']');
	case MSGPACK_OBJECT_MAP:
		if (o->via.map.size == 1 && rpc_obj_str_eq(&o->via.map.ptr[0].key, "$int") &&
		    rpc_obj_str(&o->via.map.ptr[0].val, &s, &n) == 0 && n > 0 && n < 4096) {
			for (size_t i = 0; i < n; i++)
				if (!((s[i] >= '0' && s[i] <= '9') || (i == 0 && s[i] == '-' && n > 1)))
					return -EINVAL;
			return rpc_buf_add(b, s, n);
		}
		if (o->via.map.size == 1 && rpc_obj_str_eq(&o->via.map.ptr[0].key, "$object"))
			return -EINVAL;
		r |= rpc_buf_addc(b, '{');
		for (uint32_t i = 0; i < o->via.map.size && r == 0; i++) {
			if (o->via.map.ptr[i].key.type != MSGPACK_OBJECT_STR)
				return -EINVAL;
			if (i)
				r |= rpc_buf_adds(b, ", ");
			r |= meta_json(b, &o->via.map.ptr[i].key, depth + 1);
			r |= rpc_buf_adds(b, ": ");
			r |= meta_json(b, &o->via.map.ptr[i].val, depth + 1);
		}
		return r ? r : rpc_buf_addc(b, '}');
	default:
		return -EINVAL;
	}
}

/* Binds a str or nil msgpack object to parameter i (the text stays the message's). */
static void bind_opt_str(sqlite3_stmt *st, int i, const msgpack_object *o)
{
	const char *s;
	size_t n;

	if (rpc_obj_str(o, &s, &n) == 0)
		sqlite3_bind_text(st, i, s, (int)n, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, i);
}

static int step_done(sqlite3 *db, sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	(void)db;
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* The rows of one record, within the open transaction. SQLITE_OK or an error code. */
static int insert_rows(sqlite3 *db, const msgpack_object *call, const char *key,
                       const char *version, size_t vlen, bool *said, struct srv_error *err)
{
	const msgpack_object *args = rpc_map_field(call, RPC_F_ARGUMENTS);
	const msgpack_object *meta = rpc_map_field(call, RPC_F_METADATA);
	sqlite3_stmt *st = NULL;
	struct rpc_buf js;
	int rc;

	rpc_buf_init(&js, META_JSON_MAX);
	rc = sqlite3_prepare_v2(db,
	                        "INSERT INTO calls (\"key\", name, module, version, code_digest, "
	                        "result) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	                        -1, &st, NULL);
	if (rc != SQLITE_OK)
		goto out;
	sqlite3_bind_text(st, 1, key, RPC_KEY_LEN, SQLITE_STATIC);
	bind_opt_str(st, 2, rpc_map_field(call, RPC_F_NAME));
	bind_opt_str(st, 3, rpc_map_field(call, RPC_F_MODULE));
	if (version)
		sqlite3_bind_text(st, 4, version, (int)vlen, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 4);
	bind_opt_str(st, 5, rpc_map_field(call, RPC_F_CODE_DIGEST));
	bind_opt_str(st, 6, rpc_map_field(call, RPC_F_RESULT));
	if ((rc = step_done(db, st)) != SQLITE_OK)
		goto out;
	sqlite3_finalize(st);
	rc = sqlite3_prepare_v2(db,
	                        "INSERT INTO arguments (call_key, position, name, value) "
	                        "VALUES (?1, ?2, ?3, ?4)",
	                        -1, &st, NULL);
	if (rc != SQLITE_OK)
		goto out;
	for (uint32_t i = 0; i < args->via.array.size; i++) {
		const msgpack_object *pair = &args->via.array.ptr[i];
		sqlite3_bind_text(st, 1, key, RPC_KEY_LEN, SQLITE_STATIC);
		sqlite3_bind_int(st, 2, (int)i);
		bind_opt_str(st, 3, &pair->via.array.ptr[0]);
		bind_opt_str(st, 4, &pair->via.array.ptr[1]);
		if ((rc = step_done(db, st)) != SQLITE_OK)
			goto out;
	}
	sqlite3_finalize(st);
	rc = sqlite3_prepare_v2(db, "INSERT INTO metadata (call_key, name, data) VALUES (?1, ?2, ?3)",
	                        -1, &st, NULL);
	if (rc != SQLITE_OK)
		goto out;
	for (uint32_t i = 0; i < meta->via.map.size; i++) {
		rpc_buf_reset(&js);
		if (meta_json(&js, &meta->via.map.ptr[i].val, 1) != 0) {
			srv_fail(err, RPC_E_EINVAL,
			         "call %s: metadata block %u cannot be stored as JSON in SQL call "
			         "storage (bytes, objects, or more than 8 MiB)", key, i);
			*said = true;
			rc = SQLITE_CONSTRAINT;
			goto out;
		}
		sqlite3_bind_text(st, 1, key, RPC_KEY_LEN, SQLITE_STATIC);
		bind_opt_str(st, 2, &meta->via.map.ptr[i].key);
		sqlite3_bind_text(st, 3, js.data ? js.data : "", (int)js.len, SQLITE_STATIC);
		if ((rc = step_done(db, st)) != SQLITE_OK)
			goto out;
	}
out:
	sqlite3_finalize(st);
	rpc_buf_release(&js);
	return rc;
}

int srv_save_sql(const char *path, const msgpack_object *call, const char *key, bool *inserted,
                 struct srv_error *err)
{
	const msgpack_object *v = rpc_map_field(call, RPC_F_VERSION);
	struct rpc_buf version;
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	bool said = false;
	int rc, ret = -1;

	*inserted = false;
	rpc_buf_init(&version, 4096);
	/* fleche keeps json.dumps(version) */
	if (!rpc_obj_is_nil(v) && meta_json(&version, v, 1) != 0)
		return srv_fail(err, RPC_E_EINVAL, "call %s: the version cannot be stored", key);
	rc = sqlite3_open_v2(path, &db,
	                     SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW, NULL);
	if (rc != SQLITE_OK) {
		srv_fail(err, RPC_E_EACCES, "cannot open database '%s' for writing: %s", path,
		         db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		goto out;
	}
	sqlite3_busy_timeout(db, SRV_SQL_BUSY_MS);
	rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		goto fail;
	rc = sqlite3_prepare_v2(db, "SELECT 1 FROM calls WHERE \"key\" = ?1", -1, &st, NULL);
	if (rc != SQLITE_OK)
		goto fail;
	sqlite3_bind_text(st, 1, key, RPC_KEY_LEN, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc == SQLITE_ROW) { /* stored already: the caller compares */
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		ret = 0;
		goto out;
	}
	if (rc != SQLITE_DONE)
		goto fail;
	rc = insert_rows(db, call, key, version.data, version.len, &said, err);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	if (rc == SQLITE_OK) {
		*inserted = true;
		ret = 0;
		goto out;
	}
fail:
	if (!said) {
		int e = (rc & 0xff) == SQLITE_FULL ? ENOSPC
		      : (rc & 0xff) == SQLITE_READONLY || rc == SQLITE_PERM ? EACCES : EIO;
		srv_fail(err, rpc_error_from_errno(e), "cannot save call %s into '%s': %s", key,
		         path, sqlite3_errmsg(db));
	}
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
out:
	sqlite3_close(db);
	rpc_buf_release(&version);
	return ret;
}

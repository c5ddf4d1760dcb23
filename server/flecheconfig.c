/*
 * flecheconfig.c: the configuration resolution of flecheconfig.h, following fleche
 * 0.22.2's fleche/config.py step by step (the function names of that file are named
 * where each step is done). Paths are strings handled as pathlib handles them: a
 * joined or rebased path is normalised as PurePosixPath's str() does (no empty or "."
 * parts, ".." kept), a file storage's root is then made absolute and resolved as
 * Path.resolve() does (links followed where they exist, the rest kept as written).
 *
 * Invariants:
 *   1. Nothing is written: the files are only read, and only those fleche reads.
 *   2. Every failure is one line in the caller's buffer, naming the file and table
 *      it comes from; the result is then left empty.
 *   3. Secret keys are copied into the result only (and wiped when it is released).
 */
#include "flecheconfig.h"

#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "msg.h"
#include "pypath.h"
#include "rpc.h"
#include "toml.h"

/* default = "NAME" naming another name that is a string again, and so on */
#define MAX_ALIASES 8

struct file {
	char *path; /* as fleche names it: DIR/fleche.toml, or the XDG file */
	char *base; /* its directory: relative paths in it are relative to this */
	struct toml_value *doc;
};

struct merged {
	const struct toml_entry *entry; /* borrowed from files[file].doc */
	size_t file;
};

struct ctx {
	char *dir;
	char *home; /* NULL when it cannot be determined */
	struct file files[FCFG_MAX_FILES];
	size_t nfiles;
	struct merged *merged;
	size_t nmerged;
	char *err;
	size_t errlen;
	struct fcfg_cache *out;
};

static int __attribute__((format(printf, 2, 3))) cfail(struct ctx *x, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(x->err, x->errlen, fmt, ap);
	va_end(ap);
	return -1;
}

static int nomem(struct ctx *x)
{
	return cfail(x, "out of memory");
}

/* config.py _rebase_relative_path: a relative root is relative to the file's directory. */
static char *rebase_root(const char *value, const char *base)
{
	if (value[0] == '~' || value[0] == '/')
		return strdup(value);
	return pyp_join(base, value);
}

/* config.py _rebase_url: only a relative sqlite:///PATH (or a bare path) is rebased. */
static char *rebase_url(const char *value, const char *base)
{
	static const char prefix[] = "sqlite:///";

	if (strncmp(value, prefix, strlen(prefix)) == 0) {
		const char *db = value + strlen(prefix);
		if (!db[0] || strcmp(db, ":memory:") == 0 || db[0] == '/' || db[0] == '~')
			return strdup(value);
		char *joined = pyp_join(base, db), *out;
		if (!joined)
			return NULL;
		out = pyp_format("%s%s", prefix, joined);
		free(joined);
		return out;
	}
	if (strstr(value, "://") || strncmp(value, "sqlite:", 7) == 0)
		return strdup(value);
	return rebase_root(value, base);
}

/* A file storage's root: FileStorage's Path(root).expanduser().absolute().resolve(). */
static int storage_root(struct ctx *x, const char *root, const char *where, char **out)
{
	char *expanded, *abs, *norm;

	if (pyp_expanduser(root, &expanded) < 0)
		return cfail(x, "%s: cannot expand '%s': no home directory", where, root);
	abs = expanded[0] == '/' ? strdup(expanded) : pyp_format("%s/%s", x->dir, expanded);
	free(expanded);
	norm = abs ? pyp_norm(abs) : NULL;
	free(abs);
	if (!norm)
		return nomem(x);
	*out = pyp_resolve(norm);
	if (!*out) {
		cfail(x, "%s: cannot resolve '%s': too many levels of symbolic links", where, norm);
		free(norm);
		return -1;
	}
	free(norm);
	return 0;
}

/* storage/sql.py _coerce_sqlite_url (without creating the database's directory). */
static int coerce_url(struct ctx *x, const char *s, const char *where, char **out)
{
	static const char prefix[] = "sqlite:///";
	char *url, *expanded;

	if (strstr(s, "://") || strncmp(s, "sqlite:", 7) == 0) {
		url = strdup(s);
	} else {
		if (pyp_expanduser(s, &expanded) < 0)
			return cfail(x, "%s: cannot expand '%s': no home directory", where, s);
		char *abs = expanded[0] == '/' ? strdup(expanded)
		                               : pyp_format("%s/%s", x->dir, expanded);
		free(expanded);
		char *norm = abs ? pyp_norm(abs) : NULL;
		free(abs);
		url = norm ? pyp_format("%s%s", prefix, norm) : NULL;
		free(norm);
	}
	if (!url)
		return nomem(x);
	const char *db = url + strlen(prefix);
	if (strncmp(url, prefix, strlen(prefix)) == 0 && db[0] && strcmp(db, ":memory:") != 0 &&
	    db[0] == '~') {
		if (pyp_expanduser(db, &expanded) < 0) {
			cfail(x, "%s: cannot expand '%s': no home directory", where, db);
			free(url);
			return -1;
		}
		char *norm = pyp_norm(expanded), *dbnorm = pyp_norm(db);
		if (norm && dbnorm && strcmp(norm, dbnorm) != 0) {
			free(url);
			url = pyp_format("%s%s", prefix, norm);
		}
		free(norm);
		free(dbnorm);
		free(expanded);
		if (!url)
			return nomem(x);
	}
	*out = url;
	return 0;
}

/* ---- TOML values as Python sees them ---- */

/* bool(value) in Python. */
static bool truthy(const struct toml_value *v)
{
	switch (v->kind) {
	case TOML_BOOL:
		return v->u.boolean;
	case TOML_INTEGER:
		return v->u.integer != 0;
	case TOML_FLOAT:
		return v->u.number != 0.0;
	case TOML_STRING:
		return v->u.str.len > 0;
	case TOML_ARRAY:
		return v->u.array.n > 0;
	case TOML_TABLE:
		return v->u.table.n > 0;
	default:
		return true;
	}
}

static const struct toml_value *merged_get(const struct ctx *x, const char *key, size_t *file)
{
	for (size_t i = 0; i < x->nmerged; i++) {
		const struct toml_entry *e = x->merged[i].entry;
		if (e->keylen == strlen(key) && memcmp(e->key, key, e->keylen) == 0) {
			if (file)
				*file = x->merged[i].file;
			return e->value;
		}
	}
	return NULL;
}

/* A string value (NUL-free) or -1 with a message. */
static int want_string(struct ctx *x, const struct toml_value *v, const char *where,
		       const char *field, const char **out)
{
	if (v->kind != TOML_STRING || strlen(v->u.str.bytes) != v->u.str.len)
		return cfail(x, "%s: %s must be a string, not %s (line %u)", where, field,
		             v->kind == TOML_STRING ? "a string holding NUL" : toml_kind_name(v->kind),
		             v->line);
	*out = v->u.str.bytes;
	return 0;
}

static int want_bool(struct ctx *x, const struct toml_value *v, const char *where,
		     const char *field, bool *out)
{
	if (v->kind != TOML_BOOL)
		return cfail(x, "%s: %s must be true or false, not %s (line %u)", where, field,
		             toml_kind_name(v->kind), v->line);
	*out = v->u.boolean;
	return 0;
}

/* ---- secret keys: security.py normalize_secret_key / get_secret_key ---- */

static int add_hex_keys(struct ctx *x, struct fcfg_storage *st, const char *s, size_t len,
			const char *where)
{
	size_t i = 0;

	for (;;) {
		size_t j = i;
		while (j < len && s[j] != ':')
			j++;
		size_t n = j - i;
		if (n % 2 != 0)
			return cfail(x, "%s: secret key with an odd number of hex digits", where);
		if (st->nkeys == SRV_MAX_HMAC_KEYS)
			return cfail(x, "%s: more than %d secret keys", where, SRV_MAX_HMAC_KEYS);
		uint8_t *bytes = malloc(n / 2 + 1);
		if (!bytes)
			return nomem(x);
		for (size_t k = 0; k < n; k += 2) {
			int hi = rpc_hex_digit((unsigned char)s[i + k]),
			    lo = rpc_hex_digit((unsigned char)s[i + k + 1]);
			if (hi < 0 || lo < 0) {
				explicit_bzero(bytes, n / 2 + 1);
				free(bytes);
				return cfail(x, "%s: secret key is not hexadecimal", where);
			}
			bytes[k / 2] = (uint8_t)(hi << 4 | lo);
		}
		st->keys[st->nkeys].bytes = bytes;
		st->keys[st->nkeys].len = n / 2;
		st->nkeys++;
		if (j >= len)
			return 0;
		i = j + 1;
	}
}

static int storage_keys(struct ctx *x, struct fcfg_storage *st, const struct toml_value *v,
			const char *where)
{
	const char *env;

	if (v && truthy(v)) {
		if (v->kind == TOML_STRING)
			return add_hex_keys(x, st, v->u.str.bytes, v->u.str.len, where);
		if (v->kind != TOML_ARRAY)
			return cfail(x, "%s: secret_key must be a string or an array of strings",
			             where);
		for (size_t i = 0; i < v->u.array.n; i++) {
			const struct toml_value *k = v->u.array.items[i];
			if (k->kind != TOML_STRING)
				return cfail(x, "%s: secret_key must be a string or an array of strings",
				             where);
			if (add_hex_keys(x, st, k->u.str.bytes, k->u.str.len, where) < 0)
				return -1;
		}
		return 0;
	}
	env = getenv("FLECHE_SECRET_KEY");
	if (env && env[0])
		return add_hex_keys(x, st, env, strlen(env), "FLECHE_SECRET_KEY");
	return 0;
}

/* ---- storages: config.py storage_from_config ---- */

/* The database file of a call storage's sqlite:///PATH URL; anything else is refused. */
static int sqlite_file(struct ctx *x, const char *where, struct fcfg_storage *st)
{
	const char *db = st->url + strlen("sqlite:///");

	if (strncmp(st->url, "sqlite:///", 10) != 0 || !db[0] || strncmp(db, ":memory:", 8) == 0)
		return cfail(x, "%s: calls.url '%s' is not a SQLite database file that "
		                "flechefs-server can serve",
		             where, st->url);
	st->path = strndup(db, strcspn(db, "?"));
	return st->path ? 0 : nomem(x);
}

static bool is_pickle_family(const char *type)
{
	return strcmp(type, "pickle") == 0 || strcmp(type, "cloudpickle") == 0 ||
	       strcmp(type, "dill") == 0;
}

static int unsupported_type(struct ctx *x, const char *where, const char *field,
			    const char *type)
{
	return cfail(x, "%s: %s.type '%s' cannot be served by flechefs-server (it serves "
	                "pickle, cloudpickle and dill files, and SQLite call databases)",
	             where, field, type);
}

/*
 * One storage table d (values or calls) of a cache defined in the file with
 * directory base. field is "values" or "calls" for messages.
 */
static int parse_storage(struct ctx *x, const struct toml_value *d, const char *base,
			 const char *where, const char *field, struct fcfg_storage *st)
{
	const struct toml_value *type_v, *secret = NULL;
	const char *type;
	bool values = strcmp(field, "values") == 0;

	if (d->kind != TOML_TABLE)
		return cfail(x, "%s: %s must be a table, not %s (line %u)", where, field,
		             toml_kind_name(d->kind), d->line);
	type_v = toml_get(d, "type");
	if (!type_v)
		return cfail(x, "%s: %s has no type", where, field);
	if (want_string(x, type_v, where, "type", &type) < 0)
		return -1;
	if (strcmp(type, "memory") == 0 || strcmp(type, "void") == 0 ||
	    strcmp(type, "bagofholding_hdf") == 0)
		return unsupported_type(x, where, field, type);
	if (!is_pickle_family(type) && !(strcmp(type, "sql") == 0 && !values))
		return cfail(x, "%s: unknown storage type '%s' for %s storage", where, type,
		             values ? "value" : "call");
	st->type = strdup(type);
	if (!st->type)
		return nomem(x);
	st->remaining_depth = 1;
	bool sql = strcmp(type, "sql") == 0;
	const char *root = NULL, *url = NULL;
	for (size_t i = 0; i < d->u.table.n; i++) {
		const struct toml_entry *e = &d->u.table.entries[i];
		const struct toml_value *v = e->value;
		const char *k = e->key;
		if (strcmp(k, "type") == 0)
			continue;
		if (!sql && strcmp(k, "root") == 0) {
			if (want_string(x, v, where, "root", &root) < 0)
				return -1;
		} else if (!sql && strcmp(k, "compress") == 0) {
			if (want_bool(x, v, where, "compress", &st->compress) < 0)
				return -1;
		} else if (!sql && strcmp(k, "secret_key") == 0) {
			secret = v;
		} else if (!sql && values && strcmp(k, "remaining_depth") == 0) {
			if (v->kind != TOML_INTEGER)
				return cfail(x, "%s: remaining_depth must be an integer", where);
			st->remaining_depth = v->u.integer;
		} else if (!sql && strcmp(k, "lock_timeout") == 0) {
			/* deprecated: fleche drops it with a warning */
		} else if (sql && strcmp(k, "url") == 0) {
			if (want_string(x, v, where, "url", &url) < 0)
				return -1;
		} else if (sql && strcmp(k, "echo") == 0) {
			if (want_bool(x, v, where, "echo", &st->echo) < 0)
				return -1;
		} else {
			return cfail(x, "%s: unexpected key '%s' in %s (type '%s')", where, k, field,
			             type);
		}
	}
	if (sql) {
		char *rebased = NULL;
		if (!url)
			return cfail(x, "%s: %s has no url: fleche would use an in-memory SQLite "
			                "database, which flechefs-server cannot serve",
			             where, field);
		if (!(rebased = rebase_url(url, base)))
			return nomem(x);
		int r = coerce_url(x, rebased, where, &st->url);
		free(rebased);
		if (r < 0)
			return -1;
		return sqlite_file(x, where, st);
	}
	if (!root)
		return cfail(x, "%s: %s (type '%s') has no root", where, field, type);
	char *rebased = rebase_root(root, base);
	if (!rebased)
		return nomem(x);
	int r = storage_root(x, rebased, where, &st->root);
	free(rebased);
	if (r < 0)
		return -1;
	return storage_keys(x, st, secret, where);
}

/* ---- caches: config.py cache_from_config and _cache_from_template ---- */

static int layer_modifiers(struct ctx *x, const struct toml_value *d, const char *where,
			   struct fcfg_layer *l)
{
	const struct toml_value *ro = toml_get(d, "read_only"), *max = toml_get(d, "max_size");

	l->read_only = ro && truthy(ro);
	if (max) {
		if (max->kind != TOML_INTEGER)
			return cfail(x, "%s: max_size must be an integer, not %s (line %u)", where,
			             toml_kind_name(max->kind), max->line);
		l->has_max_size = true;
		l->max_size = max->u.integer;
	}
	return 0;
}

/* A template's root: rebased like any root, then base / "values" etc. as pathlib joins. */
static int template_storage(struct ctx *x, const char *type, const char *root, const char *sub,
			    const char *base, const char *where, const struct toml_value *none,
			    struct fcfg_storage *st)
{
	char *rebased = rebase_root(root, base), *joined;
	int r;

	if (!rebased)
		return nomem(x);
	joined = pyp_join(rebased, sub);
	free(rebased);
	if (!joined)
		return nomem(x);
	st->type = strdup(type);
	st->remaining_depth = 1;
	r = st->type ? storage_root(x, joined, where, &st->root) : nomem(x);
	free(joined);
	return r < 0 ? -1 : storage_keys(x, st, none, where);
}

static int from_template(struct ctx *x, const struct toml_value *d, const char *base,
			 const char *where, struct fcfg_layer *l)
{
	const char *tmpl, *root = NULL, *values = "bagofholding_hdf", *url = NULL;

	if (want_string(x, toml_get(d, "template"), where, "template", &tmpl) < 0)
		return -1;
	bool file = is_pickle_family(tmpl), sql = strcmp(tmpl, "sql") == 0;
	if (strcmp(tmpl, "memory") == 0 || strcmp(tmpl, "bagofholding_hdf") == 0)
		return cfail(x, "%s: template '%s' cannot be served by flechefs-server (it serves "
		                "pickle, cloudpickle and dill files, and SQLite call databases)",
		             where, tmpl);
	if (!file && !sql)
		return cfail(x, "%s: unknown cache template '%s'; choose from bagofholding_hdf, "
		                "cloudpickle, dill, memory, pickle, sql",
		             where, tmpl);
	for (size_t i = 0; i < d->u.table.n; i++) {
		const struct toml_entry *e = &d->u.table.entries[i];
		const char *k = e->key;
		if (strcmp(k, "template") == 0 || strcmp(k, "read_only") == 0 ||
		    strcmp(k, "max_size") == 0)
			continue;
		if (strcmp(k, "root") == 0) {
			if (want_string(x, e->value, where, "root", &root) < 0)
				return -1;
		} else if (sql && strcmp(k, "values") == 0) {
			if (want_string(x, e->value, where, "values", &values) < 0)
				return -1;
		} else if (sql && strcmp(k, "url") == 0) {
			if (want_string(x, e->value, where, "url", &url) < 0)
				return -1;
		} else {
			return cfail(x, "%s: invalid arguments for cache template '%s': unexpected "
			                "key '%s'",
			             where, tmpl, k);
		}
	}
	if (!root)
		return cfail(x, "%s: invalid arguments for cache template '%s': no root", where,
		             tmpl);
	if (layer_modifiers(x, d, where, l) < 0)
		return -1;
	if (sql) {
		if (!is_pickle_family(values))
			return unsupported_type(x, where, "values", values);
		if (template_storage(x, values, root, "values", base, where, NULL, &l->values) < 0)
			return -1;
		/* _template_sql: url defaults to sqlite:///root/calls.db (root as rebased) */
		char *rebased = url ? rebase_url(url, base) : NULL, *db = NULL;
		if (!url) {
			char *r = rebase_root(root, base);
			db = r ? pyp_join(r, "calls.db") : NULL;
			free(r);
			rebased = db ? pyp_format("sqlite:///%s", db) : NULL;
			free(db);
		}
		if (!rebased)
			return nomem(x);
		int r = coerce_url(x, rebased, where, &l->calls.url);
		free(rebased);
		if (r < 0)
			return -1;
		if (!(l->calls.type = strdup("sql")))
			return nomem(x);
		return sqlite_file(x, where, &l->calls);
	}
	if (template_storage(x, tmpl, root, "values", base, where, NULL, &l->values) < 0)
		return -1;
	return template_storage(x, tmpl, root, "calls", base, where, NULL, &l->calls);
}

/* One cache (a table): template, ssh, pool member or values/calls. */
static int one_cache(struct ctx *x, const struct toml_value *d, const char *base,
		     const char *where, bool in_stack)
{
	struct fcfg_layer *l;
	const struct toml_value *v;

	if (d->kind != TOML_TABLE)
		return cfail(x, "%s: a cache must be a table, not %s (line %u)", where,
		             toml_kind_name(d->kind), d->line);
	if (x->out->nlayers == FCFG_MAX_LAYERS)
		return cfail(x, "%s: more than %d layers", where, FCFG_MAX_LAYERS);
	if (toml_get(d, "pool")) {
		if (in_stack)
			return cfail(x, "%s: a pool inside a stack cannot be served by "
			                "flechefs-server",
			             where);
		v = toml_get(d, "pool");
		if (v->kind != TOML_ARRAY || v->u.array.n == 0)
			return cfail(x, "%s: pool must be a non-empty array of caches", where);
		x->out->shape = FCFG_POOL;
		for (size_t i = 0; i < v->u.array.n; i++) {
			char *w = pyp_format("%s pool #%zu", where, i + 1);
			int r = w ? one_cache(x, v->u.array.items[i], base, w, true) : nomem(x);
			free(w);
			if (r < 0)
				return -1;
		}
		return 0;
	}
	l = &x->out->layers[x->out->nlayers++];
	if (!(l->where = strdup(where)))
		return nomem(x);
	if (toml_get(d, "template"))
		return from_template(x, d, base, where, l);
	v = toml_get(d, "type");
	if (v && v->kind == TOML_STRING && strcmp(v->u.str.bytes, "ssh") == 0)
		return cfail(x, "%s: type 'ssh' (a cache on another machine) cannot be served by "
		                "flechefs-server",
		             where);
	if (layer_modifiers(x, d, where, l) < 0)
		return -1;
	if (!(v = toml_get(d, "values")))
		return cfail(x, "%s: no values storage (and no template)", where);
	if (parse_storage(x, v, base, where, "values", &l->values) < 0)
		return -1;
	if (!(v = toml_get(d, "calls")))
		return cfail(x, "%s: no calls storage (and no template)", where);
	return parse_storage(x, v, base, where, "calls", &l->calls);
}

/* cache_from_config: an array of tables is a stack, a table one cache. */
static int cache_from_config(struct ctx *x, const struct toml_value *d, size_t file,
			     const char *table, bool array_header)
{
	const char *path = x->files[file].path, *base = x->files[file].base;
	char *where;
	int r;

	if (d->kind == TOML_ARRAY) {
		if (d->u.array.n == 0)
			return cfail(x, "%s: [%s] is an empty stack", path, table);
		x->out->shape = FCFG_STACK;
		for (size_t i = 0; i < d->u.array.n; i++) {
			const struct toml_value *item = d->u.array.items[i];
			if (item->kind == TOML_ARRAY)
				return cfail(x, "%s: %s: a stack cannot hold another stack", path,
				             table);
			where = array_header ? pyp_format("%s: [[%s]] #%zu", path, table, i + 1)
			                     : pyp_format("%s: %s[%zu]", path, table, i);
			r = where ? one_cache(x, item, base, where, true) : nomem(x);
			free(where);
			if (r < 0)
				return -1;
		}
		return 0;
	}
	where = array_header ? pyp_format("%s: [%s]", path, table) : pyp_format("%s: %s", path, table);
	r = where ? one_cache(x, d, base, where, false) : nomem(x);
	free(where);
	return r;
}

/* ---- files: config.py _collect_config_paths, _load_config, _load_merged_config ---- */

static bool exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

static int load_file(struct ctx *x, char *path)
{
	struct file *f;
	FILE *fp;
	char *text = NULL;
	size_t len;
	struct toml_error terr;
	int ret = -1;

	if (x->nfiles == FCFG_MAX_FILES) {
		free(path);
		return cfail(x, "more than %d configuration files", FCFG_MAX_FILES);
	}
	f = &x->files[x->nfiles++];
	f->path = path;
	char *slash = strrchr(path, '/');
	f->base = slash == path ? strdup("/") : slash ? strndup(path, (size_t)(slash - path))
	                                              : strdup(".");
	if (!f->base)
		return nomem(x);
	if (!(fp = fopen(path, "re")))
		return cfail(x, "cannot open '%s': %s", path, strerror(errno));
	text = malloc(TOML_MAX_INPUT + 1);
	if (!text) {
		nomem(x);
		goto out;
	}
	len = fread(text, 1, TOML_MAX_INPUT + 1, fp);
	if (ferror(fp)) {
		cfail(x, "cannot read '%s': %s", path, strerror(errno));
		goto out;
	}
	if (toml_parse(text, len, &f->doc, &terr) < 0) {
		cfail(x, "%s:%u:%u: %s", path, terr.line, terr.column, terr.message);
		goto out;
	}
	ret = 0;
out:
	free(text);
	fclose(fp);
	return ret;
}

/* Path(p) == Path(q) */
static bool same_path(const char *p, const char *q)
{
	char *a = pyp_norm(p), *b = pyp_norm(q);
	bool same = a && b && strcmp(a, b) == 0;
	free(a);
	free(b);
	return same;
}

static int collect_and_merge(struct ctx *x)
{
	char *current = strdup(x->dir), *home_norm = NULL, *xdg = NULL;
	const char *env;
	int ret = -1;

	if (!current)
		return nomem(x);
	if (x->home && !(home_norm = pyp_norm(x->home)))
		goto nomem;
	/* the walk: closest first, up to $HOME (inclusive) or the root */
	for (;;) {
		char *candidate = pyp_format("%s%sfleche.toml", current,
		                            strcmp(current, "/") ? "/" : "");
		if (!candidate)
			goto nomem;
		if (exists(candidate)) {
			if (load_file(x, candidate) < 0)
				goto out;
		} else {
			free(candidate);
		}
		if (home_norm && strcmp(current, home_norm) == 0)
			break;
		char *slash = strrchr(current, '/');
		if (!slash || strcmp(current, "/") == 0)
			break;
		if (slash == current)
			slash[1] = '\0';
		else
			*slash = '\0';
	}
	env = getenv("XDG_CONFIG_HOME");
	if (env && env[0])
		xdg = pyp_format("%s/fleche/cache.toml", env);
	else if (home_norm)
		xdg = pyp_format("%s/.config/fleche/cache.toml", home_norm);
	if ((env && env[0]) || home_norm) {
		if (!xdg)
			goto nomem;
		char *norm = pyp_norm(xdg);
		free(xdg);
		xdg = norm;
		if (!xdg)
			goto nomem;
		bool seen = false;
		for (size_t i = 0; i < x->nfiles; i++)
			seen = seen || same_path(x->files[i].path, xdg);
		if (!seen && exists(xdg)) {
			if (load_file(x, xdg) < 0) {
				xdg = NULL;
				goto out;
			}
			xdg = NULL;
		}
	}
	/* the merge: per top-level key the closest file wins; root = true stops it */
	size_t total = 0;
	for (size_t i = 0; i < x->nfiles; i++)
		total += x->files[i].doc->u.table.n;
	x->merged = calloc(total ? total : 1, sizeof(*x->merged));
	if (!x->merged)
		goto nomem;
	for (size_t i = 0; i < x->nfiles; i++) {
		const struct toml_value *doc = x->files[i].doc;
		for (size_t k = 0; k < doc->u.table.n; k++) {
			const struct toml_entry *e = &doc->u.table.entries[k];
			bool have = false;
			for (size_t m = 0; m < x->nmerged && !have; m++)
				have = x->merged[m].entry->keylen == e->keylen &&
				       memcmp(x->merged[m].entry->key, e->key, e->keylen) == 0;
			if (!have)
				x->merged[x->nmerged++] = (struct merged){e, i};
		}
		const struct toml_value *def = toml_get(doc, "default"), *root;
		if (def && def->kind == TOML_TABLE && (root = toml_get(def, "root")) && truthy(root)) {
			/* the files farther up were read but take no part: forget them */
			for (size_t j = i + 1; j < x->nfiles; j++) {
				free(x->files[j].path);
				free(x->files[j].base);
				toml_free(x->files[j].doc);
			}
			x->nfiles = i + 1;
			break;
		}
	}
	ret = 0;
	goto out;
nomem:
	nomem(x);
out:
	free(current);
	free(home_norm);
	free(xdg);
	return ret;
}

/* ---- load_cache_config ---- */

static const char *files_list(struct ctx *x, char *buf, size_t len)
{
	size_t o = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < x->nfiles && o < len; i++)
		o += (size_t)snprintf(buf + o, len - o, "%s%s", i ? ", " : "", x->files[i].path);
	return x->nfiles ? buf : "none";
}

static int load_cache_config(struct ctx *x, const char *name, unsigned aliases)
{
	char files[512];
	size_t file;

	if (name && (strcmp(name, "memory") == 0 || strcmp(name, "void") == 0))
		return cfail(x, "cache '%s' is fleche's built-in %s cache, which flechefs-server "
		                "cannot serve",
		             name, name);
	if (name && strcmp(name, "default") == 0)
		name = NULL;
	if (x->nmerged == 0) {
		cfail(x, "no fleche configuration found from '%s' (files read: %s): fleche would "
		         "use a memory cache, which flechefs-server cannot serve",
		      x->dir, files_list(x, files, sizeof(files)));
		return FCFG_NONE;
	}
	if (!name) {
		const struct toml_value *def = merged_get(x, "default", &file), *cache;
		if (!def || def->kind != TOML_TABLE || !(cache = toml_get(def, "cache")))
			return cfail(x, "no default cache configured ([default] cache) in %s: fleche "
			                "would use a memory cache, which flechefs-server cannot serve",
			             files_list(x, files, sizeof(files)));
		if (cache->kind == TOML_STRING) {
			if (++aliases > MAX_ALIASES || strcmp(cache->u.str.bytes, "default") == 0)
				return cfail(x, "%s: [default] cache = '%s' names itself",
				             x->files[file].path, cache->u.str.bytes);
			return load_cache_config(x, cache->u.str.bytes, aliases);
		}
		return cache_from_config(x, cache, file, "[default] cache", false);
	}
	const struct toml_value *d = merged_get(x, name, &file);
	if (!d)
		return cfail(x, "no cache '%s' in the configuration (files read: %s): fleche would "
		                "use a memory cache, which flechefs-server cannot serve",
		             name, files_list(x, files, sizeof(files)));
	return cache_from_config(x, d, file, name, true);
}

static void storage_release(struct fcfg_storage *st)
{
	free(st->type);
	free(st->root);
	free(st->url);
	free(st->path);
	for (size_t i = 0; i < st->nkeys; i++) {
		explicit_bzero(st->keys[i].bytes, st->keys[i].len);
		free(st->keys[i].bytes);
	}
	memset(st, 0, sizeof(*st));
}

void fcfg_cache_release(struct fcfg_cache *c)
{
	if (!c)
		return;
	free(c->name);
	free(c->dir);
	for (size_t i = 0; i < c->nlayers; i++) {
		storage_release(&c->layers[i].values);
		storage_release(&c->layers[i].calls);
		free(c->layers[i].where);
	}
	for (size_t i = 0; i < c->nfiles; i++)
		free(c->files[i]);
	memset(c, 0, sizeof(*c));
}

int fcfg_resolve(const char *dir, const char *name, struct fcfg_cache *out, char *err,
		 size_t errlen)
{
	struct ctx x = {.err = err, .errlen = errlen, .out = out};
	char *cwd = NULL;
	int ret = -1;

	memset(out, 0, sizeof(*out));
	err[0] = '\0';
	if (!dir) {
		if (!(cwd = getcwd(NULL, 0)))
			return cfail(&x, "cannot find the current directory: %s", strerror(errno));
		dir = cwd;
	}
	/* Path.cwd().absolute(): getcwd's answer; a given directory is made absolute too */
	x.dir = dir[0] == '/' ? pyp_norm(dir) : NULL;
	if (dir[0] != '/') {
		char *here = getcwd(NULL, 0), *joined = here ? pyp_format("%s/%s", here, dir) : NULL;
		x.dir = joined ? pyp_norm(joined) : NULL;
		free(here);
		free(joined);
	}
	if (!x.dir) {
		nomem(&x);
		goto out;
	}
	if (pyp_expanduser("~", &x.home) < 0)
		x.home = NULL;
	if (collect_and_merge(&x) < 0)
		goto out;
	if ((ret = load_cache_config(&x, name, 0)) < 0)
		goto out;
	ret = -1;
	if (name && !(out->name = strdup(name)))
		goto nomem;
	if (!(out->dir = strdup(x.dir)))
		goto nomem;
	for (size_t i = 0; i < x.nfiles; i++) {
		if (!(out->files[i] = strdup(x.files[i].path)))
			goto nomem;
		out->nfiles++;
	}
	ret = 0;
	goto out;
nomem:
	nomem(&x);
	ret = -1;
out:
	if (ret < 0)
		fcfg_cache_release(out);
	for (size_t i = 0; i < x.nfiles; i++) {
		free(x.files[i].path);
		free(x.files[i].base);
		toml_free(x.files[i].doc);
	}
	free(x.merged);
	free(x.dir);
	free(x.home);
	free(cwd);
	return ret;
}

bool fcfg_layer_exists(const struct fcfg_cache *c, size_t i)
{
	const struct fcfg_layer *l = &c->layers[i];
	const char *calls = l->calls.path ? l->calls.path : l->calls.root;

	return exists(l->values.root) || exists(calls);
}

bool fcfg_read_only(const struct fcfg_cache *c)
{
	return c->shape == FCFG_POOL || (c->nlayers > 0 && c->layers[0].read_only);
}

static bool same_keys(const struct fcfg_storage *a, const struct fcfg_storage *b)
{
	if (a->nkeys != b->nkeys)
		return false;
	for (size_t i = 0; i < a->nkeys; i++)
		if (a->keys[i].len != b->keys[i].len ||
		    memcmp(a->keys[i].bytes, b->keys[i].bytes, a->keys[i].len) != 0)
			return false;
	return true;
}

int fcfg_layer_config(const struct fcfg_cache *c, size_t i, struct srv_config *cfg, char *err,
		      size_t errlen)
{
	const struct fcfg_layer *l = &c->layers[i];

	memset(cfg, 0, sizeof(*cfg));
	if (!l->calls.url && !same_keys(&l->values, &l->calls)) {
		snprintf(err, errlen,
		         "%s: values and calls have different secret keys: flechefs-server checks "
		         "both with one set of keys",
		         l->where);
		return -1;
	}
	cfg->values = l->values.root;
	cfg->calls = l->calls.url ? l->calls.url : l->calls.root;
	cfg->read_only = l->read_only || c->shape == FCFG_POOL;
	cfg->serializer = l->values.type;
	cfg->compress_values = l->values.compress;
	cfg->compress_calls = l->calls.compress;
	for (size_t k = 0; k < l->values.nkeys; k++)
		cfg->keys[k] = l->values.keys[k];
	cfg->nkeys = l->values.nkeys;
	return 0;
}

/* ---- the description: remote.py _server_info's cache_to_config, redacted ---- */

/* remote.py _redact_url_password: the password of user:password@host becomes "***". */
static char *redact_url(const char *url)
{
	const char *netloc = strstr(url, "://"), *end, *at, *colon;

	if (!netloc)
		return strdup(url);
	netloc += 3;
	end = netloc + strcspn(netloc, "/?#");
	at = memrchr(netloc, '@', (size_t)(end - netloc));
	colon = at ? memchr(netloc, ':', (size_t)(at - netloc)) : NULL;
	if (!colon || colon + 1 == at)
		return strdup(url);
	return pyp_format("%.*s:***%s", (int)(colon - url), url, at);
}

static int pack_storage(msgpack_packer *pk, const struct fcfg_storage *st, bool values)
{
	int r = 0;

	if (st->url) {
		char *redacted = redact_url(st->url);
		r |= msgpack_pack_map(pk, 3);
		r |= rpc_pack_str(pk, "type");
		r |= rpc_pack_str(pk, st->type);
		r |= rpc_pack_str(pk, "url");
		r |= rpc_pack_str(pk, redacted ? redacted : "***");
		r |= rpc_pack_str(pk, "echo");
		r |= st->echo ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
		free(redacted);
		return r;
	}
	r |= msgpack_pack_map(pk, 3 + (values ? 1 : 0) + (st->nkeys ? 1 : 0));
	r |= rpc_pack_str(pk, "type");
	r |= rpc_pack_str(pk, st->type);
	r |= rpc_pack_str(pk, "root");
	r |= rpc_pack_str(pk, st->root);
	r |= rpc_pack_str(pk, "compress");
	r |= st->compress ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
	if (values) {
		r |= rpc_pack_str(pk, "remaining_depth");
		r |= msgpack_pack_int64(pk, st->remaining_depth);
	}
	if (st->nkeys) {
		r |= rpc_pack_str(pk, "secret_key");
		r |= rpc_pack_str(pk, "<redacted>");
	}
	return r;
}

static int pack_layer(msgpack_packer *pk, const struct fcfg_layer *l)
{
	int r = msgpack_pack_map(pk, 2 + l->has_max_size + l->read_only);

	r |= rpc_pack_str(pk, "values");
	r |= pack_storage(pk, &l->values, true);
	r |= rpc_pack_str(pk, "calls");
	r |= pack_storage(pk, &l->calls, false);
	if (l->has_max_size) {
		r |= rpc_pack_str(pk, "max_size");
		r |= msgpack_pack_int64(pk, l->max_size);
	}
	if (l->read_only) {
		r |= rpc_pack_str(pk, "read_only");
		r |= msgpack_pack_true(pk);
	}
	return r;
}

int fcfg_pack(const struct fcfg_cache *c, msgpack_packer *pk)
{
	int r = msgpack_pack_map(pk, 5);

	r |= rpc_pack_str(pk, "cache");
	if (c->shape == FCFG_SINGLE) {
		r |= pack_layer(pk, &c->layers[0]);
	} else {
		if (c->shape == FCFG_POOL) {
			r |= msgpack_pack_map(pk, 1);
			r |= rpc_pack_str(pk, "pool");
		}
		r |= msgpack_pack_array(pk, (uint32_t)c->nlayers);
		for (size_t i = 0; i < c->nlayers; i++)
			r |= pack_layer(pk, &c->layers[i]);
	}
	r |= rpc_pack_str(pk, "cache_name");
	r |= c->name ? rpc_pack_str(pk, c->name) : msgpack_pack_nil(pk);
	r |= rpc_pack_str(pk, "read_only");
	r |= fcfg_read_only(c) ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
	r |= rpc_pack_str(pk, "files");
	r |= msgpack_pack_array(pk, (uint32_t)c->nfiles);
	for (size_t i = 0; i < c->nfiles; i++)
		r |= rpc_pack_str(pk, c->files[i]);
	r |= rpc_pack_str(pk, "dir");
	r |= rpc_pack_str(pk, c->dir);
	return r ? -1 : 0;
}

/*
 * pathlist.c: lists a stored file or folder record (pathlist.h) by opening the
 * record's value and each of its children's through cache.h, parsing each with
 * pickle.h (a file's bytes are not copied: the parse points into the stored stream,
 * and only their length is kept).
 */
#include "pathlist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pyclass.h"

/* Parse limits: a record is small, but a folder may have many children, and a
 * file's content is one bytes object however large. */
static void list_limits(struct pk_limits *lim)
{
	pk_limits_default(lim);
	lim->max_nodes = 4u * SRV_PATHLIST_MAX + 64;
	lim->max_memo = 4u * SRV_PATHLIST_MAX + 64;
}

/* An opened value and its parsed tree. */
struct opened {
	struct srv_value *value;
	struct pk_doc *doc;
	const struct pk_node *root;
};

static void opened_close(struct opened *o)
{
	pk_doc_free(o->doc);
	if (o->value)
		srv_value_close(o->value);
	memset(o, 0, sizeof(*o));
}

/*
 * How far into a record's pickle the module of its class is named: the class comes
 * first (after PROTO and FRAME, or copyreg's _reconstructor), so a value that does not
 * name it this early is no record, told without parsing it (a large value is listed
 * in every call folder that shows it).
 */
#define RECORD_HEAD 512

static bool may_be_record(struct srv_value *v)
{
	static const char module[] = "fleche.storage.paths";
	uint64_t size = srv_value_size(v);
	size_t head = size < RECORD_HEAD ? (size_t)size : RECORD_HEAD;

	return memmem(srv_value_bytes(v), head, module, sizeof(module) - 1) != NULL;
}

static int opened_open(struct srv_cache *cache, const char *key, size_t len, bool records_only,
                       struct opened *o, struct srv_error *err)
{
	struct pk_limits lim;
	char why[256] = "";
	size_t end;
	int rc;

	memset(o, 0, sizeof(*o));
	if (srv_value_open(cache, key, len, &o->value, err) < 0)
		return -1;
	if (records_only && !may_be_record(o->value)) {
		rc = srv_value_check(o->value, err);
		if (rc == 0)
			srv_fail(err, RPC_E_ENOTSUP, "the value '%s' is not a stored file or folder",
			         srv_value_key(o->value));
		opened_close(o);
		return -1;
	}
	list_limits(&lim);
	rc = pk_parse(srv_value_bytes(o->value), (size_t)srv_value_size(o->value), &lim, &o->doc,
	              &end, why, sizeof(why));
	if (rc == 0 && srv_value_check(o->value, err) < 0) {
		opened_close(o);
		return -1;
	}
	if (rc != 0) {
		o->doc = NULL;
		opened_close(o);
		if (rc == -E2BIG)
			return srv_fail(err, RPC_E_EFBIG, "the value '%.*s' is too large to list: %s",
			                (int)len, key, why);
		if (rc == -ENOMEM)
			return srv_fail(err, RPC_E_ENOMEM, "out of memory decoding '%.*s'", (int)len,
			                key);
		return srv_fail(err, RPC_E_CORRUPT, "cannot decode the value '%.*s': %s", (int)len,
		                key, why[0] ? why : "malformed pickle");
	}
	o->root = pk_doc_root(o->doc);
	return 0;
}

int srv_pathlist_child(struct srv_cache *cache, const char *key, enum srv_pathrec_kind *kind,
                       uint64_t *size, double *mtime, char *type, size_t typelen,
                       struct srv_error *err)
{
	struct opened o;

	*kind = SRV_PATHREC_NONE;
	*size = 0;
	if (typelen)
		type[0] = '\0';
	if (opened_open(cache, key, RPC_KEY_LEN, false, &o, err) < 0)
		return -1;
	*mtime = srv_value_mtime(o.value);
	if (o.root->kind == PK_BYTES || o.root->kind == PK_BYTEARRAY) {
		*kind = SRV_PATHREC_FILE;
		*size = o.root->u.str.len;
	} else {
		*kind = srv_pathrec_kind_of(o.root) == SRV_PATHREC_DIR ? SRV_PATHREC_DIR
		                                                       : SRV_PATHREC_NONE;
		if (typelen)
			srv_pyclass_type_name(o.root, type, typelen);
	}
	opened_close(&o);
	return 0;
}

/* Fills e's kind, size and mtime from its value: the bytes of a file, or a folder
 * record when folders is true. */
static int entry_examine(struct srv_cache *cache, const char *record, bool folders,
                         struct srv_pathlist_entry *e, struct srv_error *err)
{
	char type[160];

	if (srv_pathlist_child(cache, e->key, &e->kind, &e->size, &e->mtime, type, sizeof(type),
	                       err) < 0) {
		if (err->code == RPC_E_ENOENT)
			srv_fail(err, RPC_E_ENOENT, "'%s' of the stored record '%s' is missing from the cache",
			         e->key, record);
		return -1;
	}
	if (e->kind == SRV_PATHREC_FILE || (folders && e->kind == SRV_PATHREC_DIR))
		return 0;
	return srv_fail(err, RPC_E_CORRUPT,
	                "'%s' of the stored record '%s' is a %s, not the bytes of a file%s", e->key,
	                record, type, folders ? " or a folder record" : "");
}

/* Copies the checked name of r into e. */
static int entry_name(const struct srv_pathrec_entry *r, const char *record,
                      struct srv_pathlist_entry *e, struct srv_error *err)
{
	const char *why = rpc_file_name_refused(r->name, r->name_len);
	char q[300];

	if (why)
		return srv_fail(err, RPC_E_EINVAL,
		                "the stored record '%s' holds the name '%s', which %s: no file can "
		                "have it",
		                record, srv_quote(q, sizeof(q), r->name, r->name_len), why);
	e->name = malloc(r->name_len + 1);
	if (!e->name)
		return srv_fail(err, RPC_E_ENOMEM, "out of memory listing '%s'", record);
	memcpy(e->name, r->name, r->name_len);
	e->name[r->name_len] = '\0';
	memcpy(e->key, r->key, sizeof(e->key));
	return 0;
}

static int by_name(const void *a, const void *b)
{
	const struct srv_pathlist_entry *const *x = a, *const *y = b;
	int c = strcmp((*x)->name, (*y)->name);
	/* equal names: the earlier one first, so that the later one is kept */
	return c ? c : (*x < *y ? -1 : *x > *y);
}

/* Drops all but the last of entries with the same name, keeping the order. */
static int drop_repeated(struct srv_pathlist *l, struct srv_error *err)
{
	struct srv_pathlist_entry **sorted;
	size_t k = 0;

	if (l->n < 2)
		return 0;
	sorted = malloc(l->n * sizeof(*sorted));
	if (!sorted)
		return srv_fail(err, RPC_E_ENOMEM, "out of memory listing '%s'", l->key);
	for (size_t i = 0; i < l->n; i++)
		sorted[i] = &l->entries[i];
	qsort(sorted, l->n, sizeof(*sorted), by_name);
	for (size_t i = 0; i + 1 < l->n; i++)
		if (strcmp(sorted[i]->name, sorted[i + 1]->name) == 0) {
			free(sorted[i]->name);
			sorted[i]->name = NULL;
		}
	free(sorted);
	for (size_t i = 0; i < l->n; i++)
		if (l->entries[i].name)
			l->entries[k++] = l->entries[i];
	l->n = k;
	return 0;
}

int srv_pathlist_load(struct srv_cache *cache, const char *key, size_t len,
                      struct srv_pathlist *out, struct srv_error *err)
{
	struct opened o;
	struct srv_pathrec_entry r;
	const struct pk_node *contents;
	long count;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (opened_open(cache, key, len, true, &o, err) < 0)
		return -1;
	memcpy(out->key, srv_value_key(o.value), RPC_KEY_LEN);
	out->mtime = srv_value_mtime(o.value);
	out->kind = srv_pathrec_kind_of(o.root);
	if (out->kind == SRV_PATHREC_NONE) {
		char type[160];
		srv_pyclass_type_name(o.root, type, sizeof(type));
		srv_fail(err, RPC_E_ENOTSUP, "the value '%s' is a %s, not a stored file or folder",
		         out->key, type);
		goto out;
	}
	if (out->kind == SRV_PATHREC_FILE) {
		if (srv_pathrec_file(o.root, out->key, &r, err) < 0)
			goto out;
		count = 1;
	} else {
		count = srv_pathrec_dir(o.root, out->key, &contents, err);
		if (count < 0)
			goto out;
		if ((unsigned long)count > SRV_PATHLIST_MAX) {
			srv_fail(err, RPC_E_EFBIG,
			         "the stored folder '%s' has %ld entries, more than the limit of %u",
			         out->key, count, SRV_PATHLIST_MAX);
			goto out;
		}
	}
	out->entries = calloc(count ? (size_t)count : 1, sizeof(*out->entries));
	if (!out->entries) {
		srv_fail(err, RPC_E_ENOMEM, "out of memory listing '%s'", out->key);
		goto out;
	}
	for (size_t i = 0; i < (size_t)count; i++) {
		if (out->kind == SRV_PATHREC_DIR &&
		    srv_pathrec_child(contents, i, out->key, &r, err) < 0)
			goto out;
		if (entry_name(&r, out->key, &out->entries[i], err) < 0)
			goto out;
		out->n = i + 1;
		if (strcmp(r.key, out->key) == 0) {
			srv_fail(err, RPC_E_ELOOP,
			         "the stored folder '%s' lists itself as its child '%s'", out->key,
			         out->entries[i].name);
			goto out;
		}
	}
	if (drop_repeated(out, err) < 0)
		goto out;
	for (size_t i = 0; i < out->n; i++)
		if (entry_examine(cache, out->key, out->kind == SRV_PATHREC_DIR, &out->entries[i],
		                  err) < 0)
			goto out;
	rc = 0;
out:
	opened_close(&o);
	return rc;
}

void srv_pathlist_release(struct srv_pathlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->entries[i].name);
	free(l->entries);
	memset(l, 0, sizeof(*l));
}

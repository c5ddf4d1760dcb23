/*
 * recdir.c: lists a stored file or folder record through list_record (recdir.h) and
 * checks the answer: parallel arrays of one length, names that can be file names,
 * full keys.
 */
#include "recdir.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "msg.h"
#include "rpc.h"

/* The items of the answer's array field, of n items (the first one read sets n);
 * clears *ok when it is missing or of another length. */
static const msgpack_object *field(const msgpack_object *res, enum rpc_field name, size_t *n,
                                   int *ok)
{
	const msgpack_object *a = rpc_map_get(res, rpc_field_name(name));

	if (!a || a->type != MSGPACK_OBJECT_ARRAY) {
		*ok = 0;
		return NULL;
	}
	if (*n == SIZE_MAX)
		*n = a->via.array.size;
	if (a->via.array.size != *n)
		*ok = 0;
	return a->via.array.ptr;
}

int fsd_recdir_load(struct fsd_conn *c, const char *key, struct fsd_recdir *out,
                    int *definitive, char *why, size_t whylen)
{
	struct fsd_result r;
	const msgpack_object *names, *kinds, *keys, *sizes, *mtimes;
	size_t n = SIZE_MAX;
	int rc, ok = 1;

	memset(out, 0, sizeof(*out));
	*definitive = 0;
	why[0] = '\0';
	rc = fsd_rpc_list_record(c, key, &r);
	if (rc) {
		int e = r.err ? r.err : EIO;
		snprintf(why, whylen, "%s", r.message[0] ? r.message : strerror(e));
		if (r.error)
			*definitive = r.error->code == RPC_E_ENOTSUP || r.error->code == RPC_E_EINVAL ||
			              r.error->code == RPC_E_ELOOP || r.error->code == RPC_E_CORRUPT ||
			              r.error->code == RPC_E_EFBIG;
		fsd_result_release(&r);
		return -e;
	}
	names = field(r.result, RPC_F_NAMES, &n, &ok);
	kinds = field(r.result, RPC_F_KINDS, &n, &ok);
	keys = field(r.result, RPC_F_KEYS, &n, &ok);
	sizes = field(r.result, RPC_F_SIZE, &n, &ok);
	mtimes = field(r.result, RPC_F_MTIME, &n, &ok);
	rc = -EIO;
	if (!ok) {
		snprintf(why, whylen, "list_record of '%s' answered no parallel arrays", key);
		goto out;
	}
	out->entries = calloc(n ? n : 1, sizeof(*out->entries));
	if (!out->entries) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t k = 0; k < n; k++) {
		struct fsd_recdir_entry *e = &out->entries[k];
		const char *s, *kind, *kk;
		size_t sl, kl, kkl;
		if (rpc_obj_str(&names[k], &s, &sl) || rpc_file_name_refused(s, sl) ||
		    rpc_obj_str(&kinds[k], &kind, &kl) || rpc_obj_str(&keys[k], &kk, &kkl) ||
		    !rpc_key_valid(kk, kkl) || rpc_obj_uint(&sizes[k], &e->size) ||
		    rpc_obj_double(&mtimes[k], &e->mtime)) {
			snprintf(why, whylen, "list_record of '%s' answered a malformed entry %zu",
			         key, k);
			goto out;
		}
		e->is_dir = kl == strlen(rpc_field_name(RPC_F_DIRECTORY)) &&
		            memcmp(kind, rpc_field_name(RPC_F_DIRECTORY), kl) == 0;
		memcpy(e->key, kk, RPC_KEY_LEN);
		e->name = strndup(s, sl);
		if (!e->name) {
			rc = -ENOMEM;
			goto out;
		}
		out->n = k + 1;
	}
	rc = 0;
	*definitive = 1;
out:
	if (rc)
		fsd_recdir_release(out);
	fsd_result_release(&r);
	return rc;
}

void fsd_recdir_release(struct fsd_recdir *d)
{
	for (size_t k = 0; k < d->n; k++)
		free(d->entries[k].name);
	free(d->entries);
	memset(d, 0, sizeof(*d));
}

long fsd_recdir_find(const struct fsd_recdir *d, const char *name)
{
	for (size_t k = 0; k < d->n; k++)
		if (strcmp(d->entries[k].name, name) == 0)
			return (long)k;
	return -1;
}

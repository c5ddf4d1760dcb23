/*
 * callrec.c: renders a call record, as load answers it, into the files of its
 * directory (callrec.h): call.json (a msgpack map in the documented key order,
 * written by rpc_json_msgpack with two-space indentation), the one-line files, the
 * argument and result keys, and metadata/<block>.json.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "callrec.h"
#include "json_writer.h"
#include "msg.h"
#include "proto.h"
#include "rpc.h"

#define CALLREC_JSON_MAX (64u * 1024 * 1024)

static int pack_str_or_nil(msgpack_packer *pk, const msgpack_object *o)
{
	if (o && o->type == MSGPACK_OBJECT_STR)
		return msgpack_pack_object(pk, *o) ? -ENOMEM : 0;
	if (o && (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER ||
	          o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER))
		return msgpack_pack_object(pk, *o) ? -ENOMEM : 0;
	return msgpack_pack_nil(pk) ? -ENOMEM : 0;
}

/* Renders a msgpack object to JSON text with a trailing newline (malloc'd). */
static int render_json(const msgpack_object *o, char **out, size_t *len)
{
	struct rpc_buf b = RPC_BUF_INIT(CALLREC_JSON_MAX);
	int rc = rpc_json_msgpack(&b, o, RPC_MAX_DEPTH + 8, 2);
	if (!rc)
		rc = rpc_buf_addc(&b, '\n');
	if (rc) {
		rpc_buf_release(&b);
		return rc;
	}
	*out = rpc_buf_detach(&b, len);
	if (!*out)
		return -ENOMEM;
	/* a record keeps its text: without the room the buffer grew with */
	char *fit = realloc(*out, *len + 1);
	if (fit)
		*out = fit;
	return 0;
}

static int add_file(struct fsd_record_file **files, size_t *n, const char *name, char *data,
                    size_t len)
{
	struct fsd_record_file *f = realloc(*files, (*n + 1) * sizeof(*f));
	if (!f) {
		free(data);
		return -ENOMEM;
	}
	*files = f;
	f[*n].name = strdup(name);
	if (!f[*n].name) {
		free(data);
		return -ENOMEM;
	}
	f[*n].data = data;
	f[*n].len = len;
	(*n)++;
	return 0;
}

/* A one-line text file for a str or int field; 0 with nothing added when absent. */
static int add_text_file(struct fsd_record *rec, const char *name, const msgpack_object *o)
{
	char *data = NULL;
	int len;
	if (!o)
		return 0;
	if (o->type == MSGPACK_OBJECT_STR)
		len = asprintf(&data, "%.*s\n", (int)o->via.str.size, o->via.str.ptr);
	else if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
		len = asprintf(&data, "%llu\n", (unsigned long long)o->via.u64);
	else if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
		len = asprintf(&data, "%lld\n", (long long)o->via.i64);
	else
		return 0;
	if (len < 0)
		return -ENOMEM;
	return add_file(&rec->files, &rec->nfiles, name, data, (size_t)len);
}

int fsd_name_ok(const char *s, size_t n)
{
	return n && n <= 255 && !memchr(s, '/', n) && !memchr(s, 0, n) &&
	       !(n == 1 && s[0] == '.') && !(n == 2 && s[0] == '.' && s[1] == '.');
}

int fsd_record_build(const msgpack_object *res, struct fsd_record **out)
{
	struct fsd_record *rec = calloc(1, sizeof(*rec));
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_zone zone;
	int rc = -EPROTO;
	const char *s;
	size_t n;

	msgpack_sbuffer_init(&sb);
	msgpack_zone_init(&zone, 4096);
	if (!rec) {
		rc = -ENOMEM;
		goto out;
	}
	rec->refs = 1;
	if (res->type != MSGPACK_OBJECT_MAP)
		goto out;
	if (rpc_obj_str(rpc_map_field(res, RPC_F_KEY), &s, &n) || !rpc_key_valid(s, n))
		goto out;
	memcpy(rec->key, s, RPC_KEY_LEN);
	double mt = 0;
	rpc_obj_double(rpc_map_field(res, RPC_F_MTIME), &mt);
	rec->mtime = mt;
	uint64_t stamp = 0;
	rpc_obj_uint(rpc_map_field(res, RPC_F_STAMP), &stamp);
	rec->stamp = stamp;
	const msgpack_object *args = rpc_map_field(res, RPC_F_ARGUMENTS);
	const msgpack_object *result = rpc_map_field(res, RPC_F_RESULT);
	const msgpack_object *meta = rpc_map_field(res, RPC_F_METADATA);
	const msgpack_object *meta_err = rpc_map_field(res, RPC_F_METADATA_ERROR);
	if (args && args->type != MSGPACK_OBJECT_ARRAY)
		goto out;
	if (meta && meta->type != MSGPACK_OBJECT_MAP && meta->type != MSGPACK_OBJECT_NIL)
		goto out;
	if (meta_err && meta_err->type == MSGPACK_OBJECT_MAP) {
		struct rpc_error_info info;
		rpc_error_decode(meta_err, &info);
		rec->meta_error = strdup(info.message[0] ? info.message
		                                         : "the server cannot send the metadata");
		if (!rec->meta_error) {
			rc = -ENOMEM;
			goto out;
		}
		meta = NULL; /* call.json and metadata/ are refused, not shown without it */
	}

	/* call.json: a msgpack map in the documented key order, rendered as JSON. */
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	rc = -ENOMEM;
	if (msgpack_pack_map(&pk, 8) || rpc_pack_field(&pk, RPC_F_KEY) ||
	    rpc_pack_str(&pk, rec->key))
		goto out;
	static const enum rpc_field fields[] = {RPC_F_NAME, RPC_F_MODULE, RPC_F_VERSION,
	                                        RPC_F_CODE_DIGEST};
	for (size_t k = 0; k < 4; k++)
		if (rpc_pack_field(&pk, fields[k]) ||
		    pack_str_or_nil(&pk, rpc_map_field(res, fields[k])))
			goto out;
	uint32_t nargs = args ? args->via.array.size : 0;
	if (rpc_pack_field(&pk, RPC_F_ARGUMENTS) || msgpack_pack_map(&pk, nargs))
		goto out;
	if (nargs) {
		rec->args = calloc(nargs, sizeof(*rec->args));
		if (!rec->args)
			goto out;
	}
	for (uint32_t k = 0; k < nargs; k++) {
		const msgpack_object *pair = &args->via.array.ptr[k];
		const char *an, *av;
		size_t anl, avl;
		if (pair->type != MSGPACK_OBJECT_ARRAY || pair->via.array.size != 2 ||
		    rpc_obj_str(&pair->via.array.ptr[0], &an, &anl) ||
		    rpc_obj_str(&pair->via.array.ptr[1], &av, &avl)) {
			rc = -EPROTO;
			goto out;
		}
		if (rpc_pack_strn(&pk, an, anl) || rpc_pack_strn(&pk, av, avl))
			goto out;
		if (fsd_name_ok(an, anl) && rpc_key_valid(av, avl)) {
			rec->args[rec->nargs].name = strndup(an, anl);
			if (!rec->args[rec->nargs].name)
				goto out;
			memcpy(rec->args[rec->nargs].value, av, RPC_KEY_LEN);
			rec->nargs++;
		}
	}
	if (rpc_pack_field(&pk, RPC_F_RESULT))
		goto out;
	if (rpc_obj_str(result, &s, &n) == 0) {
		if (rpc_pack_strn(&pk, s, n))
			goto out;
		if (rpc_key_valid(s, n))
			memcpy(rec->result, s, RPC_KEY_LEN);
	} else if (msgpack_pack_nil(&pk)) {
		goto out;
	}
	if (rpc_pack_field(&pk, RPC_F_METADATA))
		goto out;
	if (meta && meta->type == MSGPACK_OBJECT_MAP) {
		if (msgpack_pack_object(&pk, *meta))
			goto out;
	} else if (msgpack_pack_map(&pk, 0)) {
		goto out;
	}

	msgpack_object doc;
	char err[128];
	char *text = NULL;
	size_t len = 0;
	if (!rec->meta_error) {
		rc = rpc_msgpack_unpack(sb.data, sb.size, RPC_MAX_DEPTH + 8, &zone, &doc, err,
		                        sizeof(err));
		if (rc || (rc = render_json(&doc, &text, &len)))
			goto out;
	}
	if ((rc = add_file(&rec->files, &rec->nfiles, "call.json", text, len)))
		goto out;
	for (size_t k = 0; k < 4; k++)
		if ((rc = add_text_file(rec, rpc_field_name(fields[k]),
		                        rpc_map_field(res, fields[k]))))
			goto out;
	for (uint32_t k = 0; meta && meta->type == MSGPACK_OBJECT_MAP && k < meta->via.map.size;
	     k++) {
		const msgpack_object_kv *kv = &meta->via.map.ptr[k];
		char fname[300];
		if (rpc_obj_str(&kv->key, &s, &n) || !fsd_name_ok(s, n) || n > 250)
			continue;
		snprintf(fname, sizeof(fname), "%.*s.json", (int)n, s);
		rc = render_json(&kv->val, &text, &len);
		if (rc || (rc = add_file(&rec->meta, &rec->nmeta, fname, text, len)))
			goto out;
	}
	*out = rec;
	rec = NULL;
	rc = 0;
out:
	fsd_record_unref(rec);
	msgpack_zone_destroy(&zone);
	msgpack_sbuffer_destroy(&sb);
	return rc;
}

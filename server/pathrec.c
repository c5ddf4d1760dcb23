/*
 * pathrec.c: recognises fleche's stored file and folder records in a pickle tree
 * (pathrec.h). Pure: no cache, no I/O.
 */
#include "pathrec.h"

#include <string.h>

#define PATHREC_MODULE "fleche.storage.paths"

enum srv_pathrec_kind srv_pathrec_kind_of(const struct pk_node *n)
{
	if (!n || n->kind != PK_OBJECT)
		return SRV_PATHREC_NONE;
	if (pk_is_class(n, PATHREC_MODULE, "FileBlob"))
		return SRV_PATHREC_FILE;
	if (pk_is_class(n, PATHREC_MODULE, "DirectoryBlob"))
		return SRV_PATHREC_DIR;
	return SRV_PATHREC_NONE;
}

/* The state dict of a record built as copyreg builds a plain instance, else NULL. */
static const struct pk_node *record_state(const struct pk_node *n)
{
	const struct pk_object *o = &n->u.obj;

	if (o->listitems || o->dictitems || !o->state || o->state->kind != PK_DICT ||
	    o->state->u.dict.cls)
		return NULL;
	return o->state;
}

/* Copies a Digest node's key into key: false when it is not a Digest of a full key. */
static bool digest_key(const struct pk_node *n, char key[RPC_KEY_LEN + 1])
{
	size_t len;
	const char *d = pk_digest(n, &len);

	if (!d || !rpc_key_valid(d, len))
		return false;
	memcpy(key, d, RPC_KEY_LEN);
	key[RPC_KEY_LEN] = '\0';
	return true;
}

int srv_pathrec_file(const struct pk_node *n, const char *value_key,
                     struct srv_pathrec_entry *out, struct srv_error *err)
{
	const struct pk_node *state = record_state(n), *name, *content;

	name = pk_dict_get(state, "name");
	content = pk_dict_get(state, "content");
	if (!state || !name || name->kind != PK_STR || !content || !digest_key(content, out->key))
		return srv_fail(err, RPC_E_CORRUPT,
		                "the stored file record '%s' has no str name and content key",
		                value_key);
	out->name = name->u.str.ptr;
	out->name_len = name->u.str.len;
	return 0;
}

long srv_pathrec_dir(const struct pk_node *n, const char *value_key,
                     const struct pk_node **contents, struct srv_error *err)
{
	const struct pk_node *state = record_state(n), *c;

	c = pk_dict_get(state, "contents");
	if (!state || !c || c->kind != PK_DICT || c->u.dict.cls)
		return srv_fail(err, RPC_E_CORRUPT,
		                "the stored folder record '%s' has no dict of contents", value_key);
	*contents = c;
	return (long)c->u.dict.n;
}

int srv_pathrec_child(const struct pk_node *contents, size_t i, const char *value_key,
                      struct srv_pathrec_entry *out, struct srv_error *err)
{
	const struct pk_node *name = contents->u.dict.keys[i];

	if (name->kind != PK_STR || !digest_key(contents->u.dict.values[i], out->key))
		return srv_fail(err, RPC_E_CORRUPT,
		                "entry %zu of the stored folder record '%s' is not a str name "
		                "and a content key",
		                i, value_key);
	out->name = name->u.str.ptr;
	out->name_len = name->u.str.len;
	return 0;
}

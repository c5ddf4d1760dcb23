/*
 * pathrec.h: fleche's records of stored files and folders, recognised in a value's
 * pickle tree (pickle.h) by structure, never by running anything. fleche stores a
 * pathlib.Path to a file as fleche.storage.paths.FileBlob, whose state is
 * {"name": basename, "content": Digest of a bytes value}, and a folder as
 * fleche.storage.paths.DirectoryBlob, whose state is {"contents": {child name:
 * Digest}}, each child's value being the bytes of a file or another DirectoryBlob.
 *
 * Names in these records are data from the cache: rpc_file_name_refused (rpc.h) says
 * whether one can be a file name. Folder records refer to each other by key; whoever
 * follows them stops at SRV_PATHREC_DEPTH levels and at a key already on its path
 * (PROTOCOL.md section 6.1).
 */
#ifndef FLECHEFS_SERVER_PATHREC_H
#define FLECHEFS_SERVER_PATHREC_H

#include <stddef.h>

#include "base.h"
#include "pickle.h"
#include "rpc.h"

/* How deep folder records may nest below the one a view starts from. */
#define SRV_PATHREC_DEPTH 32

enum srv_pathrec_kind {
	SRV_PATHREC_NONE = 0, /* neither record */
	SRV_PATHREC_FILE,     /* fleche.storage.paths.FileBlob */
	SRV_PATHREC_DIR,      /* fleche.storage.paths.DirectoryBlob */
};

/* One named reference: a file's name and content, or a folder's child. */
struct srv_pathrec_entry {
	const char *name; /* borrowed from the pickle tree; not NUL-terminated */
	size_t name_len;
	char key[RPC_KEY_LEN + 1]; /* the content value (a file) or child value */
};

/* Which record node is, by its class alone (NULL is SRV_PATHREC_NONE). */
enum srv_pathrec_kind srv_pathrec_kind_of(const struct pk_node *node);

/*
 * The name and content key of a FileBlob node. Returns 0, or -1 with err filled
 * (CORRUPT naming what is malformed; value_key names the value in the message).
 * The name is not checked: see rpc_file_name_refused (rpc.h).
 */
int srv_pathrec_file(const struct pk_node *node, const char *value_key,
                     struct srv_pathrec_entry *out, struct srv_error *err);

/*
 * The children of a DirectoryBlob node: sets *contents to the dict node of its
 * children (borrowed) and returns their number, or -1 with err filled (CORRUPT).
 * srv_pathrec_child then reads child i (0 <= i < the number) into out: 0, or -1
 * with err filled (CORRUPT when the name is not a str or the reference not a key).
 */
long srv_pathrec_dir(const struct pk_node *node, const char *value_key,
                     const struct pk_node **contents, struct srv_error *err);
int srv_pathrec_child(const struct pk_node *contents, size_t i, const char *value_key,
                      struct srv_pathrec_entry *out, struct srv_error *err);

#endif

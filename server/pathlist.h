/*
 * pathlist.h: the listing of a stored file or folder record (pathrec.h) that the
 * method list_record answers (PROTOCOL.md section 5): the files and folders a
 * filesystem shows for it, one level, each child's kind and size found by opening
 * its value. A file record lists one file, named by its basename, whose bytes are
 * the content value's; a folder record lists its children.
 *
 * Every name is checked (rpc_file_name_refused): one that no filesystem can show
 * refuses the whole listing (EINVAL, the message naming it and why), as does a
 * folder that lists itself (ELOOP). Of children repeated under one name the last
 * counts, as in the Python dict fleche loads.
 */
#ifndef FLECHEFS_SERVER_PATHLIST_H
#define FLECHEFS_SERVER_PATHLIST_H

#include <stdint.h>

#include "cache.h"
#include "pathrec.h"

/* The most entries one listing holds (EFBIG beyond). */
#define SRV_PATHLIST_MAX 100000u

struct srv_pathlist_entry {
	char *name; /* NUL-terminated (a checked name holds no NUL), owned */
	enum srv_pathrec_kind kind; /* SRV_PATHREC_FILE or SRV_PATHREC_DIR */
	char key[RPC_KEY_LEN + 1];  /* a file's content value, or the child folder record */
	uint64_t size;              /* a file's bytes; 0 for a folder */
	double mtime;               /* the mtime of that value's file */
};

struct srv_pathlist {
	char key[RPC_KEY_LEN + 1];  /* the record's full key */
	enum srv_pathrec_kind kind; /* what the record is */
	double mtime;               /* the mtime of the record's value file */
	struct srv_pathlist_entry *entries;
	size_t n;
};

/*
 * Lists the record stored under key (a value key or unique prefix, len bytes) into
 * out, in the record's order. Returns 0, or -1 with err filled: ENOENT, AMBIGUOUS,
 * EBADMSG, CORRUPT, EIO as for opening a value; ENOTSUP when the value is no record;
 * EINVAL for a name refused; ELOOP for a folder listing itself; CORRUPT for a child
 * or content that is neither bytes nor a folder record; EFBIG over SRV_PATHLIST_MAX
 * entries or the parse limits; ENOMEM. Release out with srv_pathlist_release (also
 * after a failure).
 */
int srv_pathlist_load(struct srv_cache *cache, const char *key, size_t len,
                      struct srv_pathlist *out, struct srv_error *err);
void srv_pathlist_release(struct srv_pathlist *l);

/*
 * What the value key (a full key) is as a child of a stored record: into kind
 * SRV_PATHREC_FILE for bytes or a bytearray (*size: their length), SRV_PATHREC_DIR
 * for a folder record, SRV_PATHREC_NONE for anything else (type, typelen bytes, then
 * names its type); *mtime is its file's. The value is opened and its pickle parsed,
 * but a file's bytes are not read: for a plain value file only its first and last
 * pages are, a signed one is read whole once to check its signature, a gzip'd one
 * inflated once (cache.h keeps both for the next request). Returns 0, or -1 with err
 * filled as for opening a value (ENOENT, EBADMSG, CORRUPT, EFBIG, EIO).
 */
int srv_pathlist_child(struct srv_cache *cache, const char *key, enum srv_pathrec_kind *kind,
                       uint64_t *size, double *mtime, char *type, size_t typelen,
                       struct srv_error *err);

#endif

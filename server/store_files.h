/*
 * store_files.h: fleche's file storage (one flat directory, one file per key),
 * for call records and for values: key index, record loading, per-file summaries
 * (name and mtime of records, byte size of values) cached by file identity.
 *
 * Invariants:
 *   1. Paths are only ever dir + "/" + a key rpc_key_valid accepted.
 *   2. A file that vanishes between listing and reading is ENOENT for a read and
 *      is left out of a listing page; nothing here crashes on it.
 *   3. The only write here is srv_fstore_unlink (evict of a call record); save.c
 *      adds files to the directory by link(2), never touching a stored one.
 *   4. Only regular files are stored files. The directory may be a symbolic link, a
 *      key's file never is: it is opened without following one (O_NOFOLLOW), so that
 *      whoever can write the directory cannot have the server read any other file
 *      it may read; a symbolic link, a directory or a special file named like a key
 *      is listed (without a size or name) and reading it is CORRUPT.
 */
#ifndef FLECHEFS_SERVER_STORE_FILES_H
#define FLECHEFS_SERVER_STORE_FILES_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include <msgpack.h>

#include "base.h"
#include "filecodec.h"
#include "keyindex.h"

struct srv_fstore {
	char *dir; /* absolute */
	enum srv_kind kind;
	struct srv_keyindex index;
	struct srv_idcache info;
	const struct srv_sign *sign; /* borrowed from the cache */
};

int srv_fstore_init(struct srv_fstore *fs, const char *dir, enum srv_kind kind,
                    const struct srv_sign *sign, struct srv_error *err);
void srv_fstore_release(struct srv_fstore *fs);

/* dir/key into buf; -1 (EINVAL) when it does not fit. */
int srv_fstore_path(const struct srv_fstore *fs, const char *key, char *buf, size_t n,
                    struct srv_error *err);
/* lstat of the key's file; *found false unless it is a regular file. */
int srv_fstore_stat(struct srv_fstore *fs, const char *key, struct stat *st, bool *found,
                    struct srv_error *err);
/*
 * Opens the key's file for reading (invariant 4, srv_codec_open), filling path (for
 * messages) and *st. Returns the descriptor (the caller closes it), or -1 with err.
 */
int srv_fstore_open(struct srv_fstore *fs, const char *key, char path[PATH_MAX], struct stat *st,
                    struct srv_error *err);
/* Loads the call record stored under the full key. */
int srv_fstore_load(struct srv_fstore *fs, const char *key, struct srv_record *rec,
                    struct srv_error *err);
int srv_fstore_unlink(struct srv_fstore *fs, const char *key, struct srv_error *err);

int srv_fstore_list(struct srv_fstore *fs, const char *after, size_t limit, bool detail,
                    struct srv_page *page, struct srv_error *err);
int srv_fstore_names(struct srv_fstore *fs, const char *after, size_t limit, struct srv_names *out,
                     struct srv_error *err);
int srv_fstore_query(struct srv_fstore *fs, const msgpack_object *tmpl, const char *after,
                     size_t limit, bool detail, struct srv_page *page, struct srv_error *err);

#endif

/*
 * recdir.h: the folders of stored file and folder records in the mount
 * (values/<key>.d/, calls/<key>/result.d, arguments/<param>.d): one level of a
 * record as the server's list_record answers it (PROTOCOL.md section 5), checked
 * again here, since names become file names.
 */
#ifndef FLECHEFS_FUSEFS_RECDIR_H
#define FLECHEFS_FUSEFS_RECDIR_H

#include <stddef.h>
#include <stdint.h>

#include "conn.h"

/* How many folders deep the mount follows records below values/<key>.d (ELOOP beyond:
 * only a crafted cache makes folders refer to each other in a ring). */
#define FSD_RECDIR_DEPTH 32

struct fsd_recdir_entry {
	char *name;           /* checked: a file name */
	int is_dir;           /* a folder (key: its record) or a file (key: its content) */
	char key[65];
	uint64_t size;        /* a file's bytes */
	double mtime;         /* of the entry's value file */
};

struct fsd_recdir {
	struct fsd_recdir_entry *entries;
	size_t n;
};

/*
 * Lists the record key (a full value key) into out. Returns 0, or -errno with the
 * server's error in r's fields copied to why (whylen bytes): the server's errno
 * (ENOTSUP: not a record; EINVAL: a name no file can have; ELOOP; ...), or EIO for
 * an answer that breaks the protocol. out is empty after a failure; release it with
 * fsd_recdir_release either way. *definitive is set when the answer holds for the
 * value's life (it is or is not a record that can be shown).
 */
int fsd_recdir_load(struct fsd_conn *c, const char *key, struct fsd_recdir *out,
                    int *definitive, char *why, size_t whylen);
void fsd_recdir_release(struct fsd_recdir *d);

/* Index of name in d, or -1. */
long fsd_recdir_find(const struct fsd_recdir *d, const char *name);

#endif

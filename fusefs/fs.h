/*
 * fs.h: the filesystem: FUSE low-level operations that show a fleche cache as
 * calls/, values/, digests/ and by-name/ (the tree README.md describes), answered through one
 * connection to flechefs-server (conn.h). Values are read in ranges with one
 * load_value per kernel read, replied to when the answer arrives; metadata
 * operations wait for their answers in libfuse's worker threads.
 */
#ifndef FLECHEFS_FUSEFS_FS_H
#define FLECHEFS_FUSEFS_FS_H

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

#include "conn.h"
#include "inode.h"

struct fsd_fs_options {
	double cache_timeout;    /* seconds listings and call entries are cached (5) */
	double negative_timeout; /* seconds a failed lookup is cached (1) */
	double value_timeout;    /* seconds value entries and attributes are cached (86400) */
	int read_only;           /* -o ro: every change is EROFS */
	int no_splice;           /* -o nosplice: values are copied, never spliced */
	const char *mountpoint;  /* the real path, borrowed: for readahead_kb */
	unsigned readahead_kb;   /* the kernel readahead raised to (0: left alone) */
	int evict_all;           /* -o evict_all: no eviction guard (fs.c) */
};

struct fsd_fs;

/* Makes the filesystem on a started connection (borrowed). NULL when out of memory. */
struct fsd_fs *fsd_fs_new(struct fsd_conn *conn, const struct fsd_fs_options *o);
/* How long fsd_fs_quiesce waits for the helper threads. */
#define FSD_FS_QUIESCE_MS 5000
/*
 * Joins the helper threads (workers.h: kernel invalidations after an eviction,
 * listing fillers), waiting at most FSD_FS_QUIESCE_MS; call it after the unmount and
 * fsd_conn_close, before the session they write to is destroyed. Returns nonzero when
 * none is left (else the session and fs must not be freed: the process exits).
 */
int fsd_fs_quiesce(struct fsd_fs *fs);
void fsd_fs_free(struct fsd_fs *fs);

/* The operations table; the userdata of the session must be the struct fsd_fs. */
const struct fuse_lowlevel_ops *fsd_fs_ops(void);

/* Tells the filesystem its session (for cache invalidation). */
void fsd_fs_set_session(struct fsd_fs *fs, struct fuse_session *se);

/*
 * Lists calls/ once through the server, as the mount's first check. Returns 0 or
 * -errno with a message in err.
 */
int fsd_fs_check(struct fsd_fs *fs, char *err, size_t errlen);

#endif

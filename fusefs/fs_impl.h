/*
 * fs_impl.h: what the parts of the filesystem share: node.c (attributes, records,
 * replies: the base the others build on), lookup.c (lookup in every directory of
 * the tree, query/ included), dir.c (listing directories) and fs.c (files, the other
 * operations and the operations table). Nothing else includes it; the tree and the
 * invariants are described at the top of fs.c.
 */
#ifndef FLECHEFS_FUSEFS_FS_IMPL_H
#define FLECHEFS_FUSEFS_FS_IMPL_H

#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <fuse_lowlevel.h>

#include "cacheinfo.h"
#include "client.h"
#include "conn.h"
#include "fs.h"
#include "inode.h"
#include "listing.h"
#include "prefetch.h"
#include "recdir.h"
#include "views.h"
#include "workers.h"

#define FS_TOP_TIMEOUT   3600.0
#define FS_VALUE_BLKSIZE (1024 * 1024)

/*
 * The eviction guard: `rm -r calls` (or a glob gone wrong) would evict every call,
 * one rmdir at a time. An eviction is refused with EBUSY when FS_EVICT_BURST
 * evictions or more were attempted in the FS_EVICT_WINDOW seconds before it;
 * refused attempts count too, so that a storm evicts its first FS_EVICT_BURST calls
 * and nothing more until it pauses for FS_EVICT_WINDOW seconds, however long it
 * lasts. One log line per storm says so. -o evict_all lifts the guard.
 */
#define FS_EVICT_BURST  16
#define FS_EVICT_WINDOW 10.0

/*
 * The records the daemon keeps on directory inodes (fs.c invariant 4): those of the
 * last FS_RECORDS_KEPT directories given one. An older one is dropped and loaded
 * again when next asked for, so that a walk of every call holds this many records,
 * not one per call the kernel still knows. A call's files hold no record (their
 * size and time only) and are read from their directory's; an open file holds its
 * record until released.
 */
#define FS_RECORDS_KEPT 4096

/*
 * The inodes of calls/<key> and what is inside it the kernel is let hold (fs.c
 * invariant 8): each one made FS_CALL_INODES_KEPT such inodes before the newest is
 * asked back. At most FS_LETGO_QUEUED wait to be asked back; more are left to the
 * kernel (asked back only when made again).
 */
#define FS_CALL_INODES_KEPT 32768
#define FS_LETGO_QUEUED     FS_CALL_INODES_KEPT

struct evict_guard {
	pthread_mutex_t lock;
	double at[FS_EVICT_BURST]; /* clock.h seconds of the last attempts (a ring) */
	unsigned next;             /* the oldest of them, overwritten next */
	int refusing;              /* the last attempt was refused (and logged) */
};

struct fsd_fs {
	struct fsd_conn *conn;
	struct fsd_itable it;
	struct fuse_session *se;
	struct fsd_fs_options o;
	int evict_allowed;
	int server_ro;
	double start_time;
	uid_t uid;
	gid_t gid;
	uint32_t page;
	uint32_t max_read;
	struct fsd_workers workers; /* invalidations and listing fillers (workers.h) */
	pthread_mutex_t ra_lock;
	int ra_done; /* the readahead was raised (or could not be): under ra_lock */
	uint64_t byname_ino;
	struct fsd_listings lists;
	struct fsd_viewcache views;
	struct fsd_recdirs recdirs; /* listings of stored file and folder records */
	struct fsd_prefetch prefetch; /* records ahead of a walk of calls/ */
	struct evict_guard guard;
	struct fsd_statfs_cache statfs;
	/* The inodes that were last given a record, a ring (FS_RECORDS_KEPT): under
	 * the table's lock; 0 where none. */
	uint64_t kept[FS_RECORDS_KEPT];
	size_t kept_next;
	/* The inodes of calls/<key> and inside it, in the order they were made, a ring
	 * (FS_CALL_INODES_KEPT), and those to ask back, a queue (FS_LETGO_QUEUED) that
	 * one worker drains while letgo_running: all under the table's lock; 0 where
	 * none. */
	uint64_t made[FS_CALL_INODES_KEPT];
	size_t made_next;
	uint64_t letgo[FS_LETGO_QUEUED];
	size_t letgo_head, letgo_len;
	int letgo_running;
};

/* The parameters of a new child, beyond its name and kind. */
struct child_spec {
	const char *key;
	const char *target;
	int view; /* FSD_VALUE: the view served */
	struct fsd_record *rec;
	/* a call's inodes (inode.h invariant 5): what the record or listing told is
	 * current until then; listed: it comes from a listing of calls/, with stamp */
	uint64_t fresh_until_ms;
	int listed;
	uint64_t stamp;
	double mtime;
	int64_t size; /* -1 unknown */
	int err;
	const struct fsd_candidate *cands;
	size_t ncands;
};

/* The top-level directories, in listing order (node.c). */
#define FS_NTOP 5
struct fsd_fs_topdir {
	const char *name;
	enum fsd_kind kind;
};
extern const struct fsd_fs_topdir fsd_fs_top[FS_NTOP];

/* The filesystem of a request's session. */
struct fsd_fs *fsd_fs_of_req(fuse_req_t req);
/* The inode numbered ino (NULL when forgotten). */
struct fsd_inode *fsd_fs_inode(struct fsd_fs *fs, fuse_ino_t ino);

/* Nonzero for the kinds that are directories. */
int fsd_fs_is_dir_kind(enum fsd_kind k);
/* Nonzero for the directories inside a call's (its own, arguments/, metadata/). */
int fsd_fs_inside_call(enum fsd_kind k);
/* Nonzero when s[0..n) is lowercase hex. */
int fsd_fs_is_hex(const char *s, size_t n);

/* The longest path of a directory holding a call's files: "calls/<key>/metadata". */
#define FSD_CALL_DIR_PATH_MAX (sizeof("calls//metadata") + RPC_KEY_LEN)

/* Nonzero for the kinds of a call's files (call.json..., metadata/<block>.json). */
int fsd_fs_is_record_file(enum fsd_kind k);
/* Nonzero for what is inside a call folder (calls/<key>/...), not the folder. */
int fsd_fs_in_call_folder(const struct fsd_inode *i);
/* The file of rec that call-file inode i stands for (NULL when none). */
const struct fsd_record_file *fsd_fs_record_file(const struct fsd_record *rec,
                                                 const struct fsd_inode *i);
/*
 * The current record of call-file inode i: its directory's (fsd_fs_current_record),
 * loaded again when that one has dropped it. A file inode holds no record, only its
 * size and time. Returns 0 and *rec (a reference, the caller's to drop) or a
 * positive errno. Lock not held.
 */
int fsd_fs_file_record(struct fsd_fs *fs, struct fsd_inode *i, struct fsd_record **rec);
/*
 * EIO, logged with the server's reason, when i is a part of a call that is rendered
 * from metadata the server cannot send (call.json, metadata/ and what is in it); 0
 * otherwise. rec: i's record, or its directory's for a file (borrowed).
 */
int fsd_fs_metadata_refused(const struct fsd_inode *i, const struct fsd_record *rec);
/* Fills st with i's attributes. Lock held. */
void fsd_fs_fill_attr(struct fsd_fs *fs, struct fsd_inode *i, struct stat *st);
/* How long the kernel may cache entries and attributes of kind k, in seconds. */
double fsd_fs_kind_timeout(struct fsd_fs *fs, enum fsd_kind k);
/* Nonzero for a value whose size is not known yet (the listing had none). Lock held. */
int fsd_fs_value_unsized(const struct fsd_inode *i);
/*
 * What stat of a value answers while its size is not known: EIO while it has not
 * been learnt (yet), the server's error when it cannot be; 0 once it is known. Lock
 * held.
 */
int fsd_fs_value_size_err(const struct fsd_inode *i);
/* cache_timeout after t (clock.h ms): until when what was current at t is. */
uint64_t fsd_fs_fresh_after(const struct fsd_fs *fs, uint64_t t);
/*
 * How long the kernel may keep i's entry and attributes: what remains of its
 * freshness for a call's inodes (inode.h invariant 5), else by kind. Lock held.
 */
double fsd_fs_inode_timeout(struct fsd_fs *fs, const struct fsd_inode *i);
/* Fills a kernel entry for i (attributes and timeouts). Lock held. */
void fsd_fs_fill_entry(struct fsd_fs *fs, struct fsd_inode *i, struct fuse_entry_param *e);

/* Logs a failed request about what (the server's error with its candidates). */
void fsd_fs_log_failure(const char *what, const struct fsd_result *r);
/* Loads and renders the record of call inode i once. Returns 0 or a positive errno. */
int fsd_fs_ensure_record(struct fsd_fs *fs, struct fsd_inode *i);
/*
 * fsd_fs_ensure_record, then a reference on i's record (the caller's to drop) and
 * until when it is current; asked for again, a few times, when it is taken away in
 * between (FS_RECORDS_KEPT, or the call changed just now), then EIO. Returns 0 or a
 * positive errno.
 */
int fsd_fs_current_record(struct fsd_fs *fs, struct fsd_inode *i, struct fsd_record **rec,
                          uint64_t *fresh_until_ms);

/* Replies err as an errno the kernel takes (EIO for ETIMEDOUT, ENOSYS, out of range). */
int fsd_fs_reply_err(fuse_req_t req, int err);
/* Replies "no such entry", cached by the kernel for the negative timeout. */
void fsd_fs_reply_negative(struct fsd_fs *fs, fuse_req_t req);
/*
 * Notes that i, which the kernel did not know, was handed to it (its lookup count
 * went from 0); for calls/<key> and what is inside it, queues the one handed
 * FS_CALL_INODES_KEPT before it to be asked back (fs.c invariant 8). Lock held.
 */
void fsd_fs_keep_inode(struct fsd_fs *fs, struct fsd_inode *i);
/* Creates or finds the child with `lookups` lookups and sets its attributes. Lock held. */
struct fsd_inode *fsd_fs_make_child(struct fsd_fs *fs, struct fsd_inode *parent,
                                    const char *name, enum fsd_kind kind,
                                    const struct child_spec *sp, uint64_t lookups);
/* Replies a lookup with the child (one lookup counted; taken back when the reply fails). */
void fsd_fs_reply_child(struct fsd_fs *fs, fuse_req_t req, struct fsd_inode *parent,
                        const char *name, enum fsd_kind kind, const struct child_spec *sp);

/* lookup.c: the lookup operation (called inside the operation's deadline). */
void fsd_fs_lookup(fuse_req_t req, fuse_ino_t pino, const char *name);

/* Stored file and folder records (recdir.h). */
/* The listing of the record key (fsd_recdirs_get: *d a reference, dropped with
 * fsd_recdir_unref); on failure logs why (at debug level when the value is simply no
 * record) and returns -errno with *d NULL. */
int fsd_fs_recdir_load(struct fsd_fs *fs, const char *key, const char *path,
                       struct fsd_recdir **d);
/* The link to values/<vkey>.d from inside a call directory (up "../../" or
 * "../../../"): returns 1 and fills target (when not NULL) when vkey is a record
 * shown as a folder, else 0. */
int fsd_fs_recdir_link(struct fsd_fs *fs, const char *vkey, const char *up, char *target,
                       size_t len);
/* How many folders below values/<key>.d the record folder at path is (0 for it). */
int fsd_fs_recdir_depth(const char *path);
/* The kind and child spec of entry e of a record folder: a file (the bin view of its
 * content) or a folder (its record). */
enum fsd_kind fsd_fs_recdir_child(const struct fsd_recdir_entry *e, struct child_spec *sp);
/* lookup.c: the target of the link to call key inside query directory dir. */
void fsd_fs_query_link(const struct fsd_inode *dir, const char *key, char *buf, size_t len);
/* lookup.c: the listing of a query directory; an unusable query lists nothing (EINVAL). */
int fsd_fs_open_query(struct fsd_fs *fs, struct fsd_inode *dir, struct fsd_listing **out);

/* dir.c: the directory operations. */
void fsd_fs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fsd_fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi);
void fsd_fs_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                        struct fuse_file_info *fi);
void fsd_fs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);

#endif

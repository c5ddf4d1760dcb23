/*
 * inode.h: the daemon's inode table. Every name the kernel has looked up is one
 * struct fsd_inode, found by its number. Numbers are stable across remounts: an
 * inode's number is a 64-bit hash of its path inside the mount ("calls/<key>/
 * call.json"), and the rare collision is resolved by probing the next number.
 *
 * Invariants:
 *  1. The root is number 1 (FUSE_ROOT_ID) and is never freed; other inodes live
 *     while their lookup count is above zero (each reply that hands an entry to the
 *     kernel adds one, forget subtracts) or while the table holds them as permanent
 *     (the five top-level directories).
 *  2. Two inodes never share a path or a number.
 *  3. kind, path, name, key, target and view never change after creation (view
 *     follows from the path); the attribute fields (size, mtime, err, rec, aux)
 *     change under the table's lock only.
 *  4. A record (struct fsd_record) is immutable once built and reference counted;
 *     only the directories of a call (calls/<key>/, its arguments/ and metadata/)
 *     hold a reference. A call's file holds its size and time, and an open file
 *     its record; a link holds its target.
 *  5. fresh_until_ms, nonzero for the inodes of a call directory's subtree only, is
 *     when what the inode holds (its record, its attributes, its existence) stops
 *     being known current: cache_timeout after the load or listing that told it.
 *     The kernel keeps the entry and attributes no longer than that, so nothing it
 *     shows is older than cache_timeout; a call directory's record is checked
 *     again after it (fs.c, ensure_record).
 */
#ifndef FLECHEFS_FUSEFS_INODE_H
#define FLECHEFS_FUSEFS_INODE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "rpc.h"

/* The longest symlink target the tree holds: "../../../values/KEY.json". */
#define FSD_LINK_TARGET_MAX (sizeof("../../../values/.json") + RPC_KEY_LEN)

enum fsd_kind {
	FSD_ROOT,
	FSD_CALLS,          /* calls/ */
	FSD_VALUES,         /* values/ */
	FSD_DIGESTS,        /* digests/ */
	FSD_BYNAME,         /* by-name/ */
	FSD_CALL,           /* calls/<key>/ */
	FSD_CALL_FILE,      /* calls/<key>/{call.json,name,module,version,code_digest} */
	FSD_CALL_ARGS,      /* calls/<key>/arguments/ */
	FSD_CALL_META,      /* calls/<key>/metadata/ */
	FSD_CALL_META_FILE, /* calls/<key>/metadata/<block>.json */
	FSD_LINK,           /* any symbolic link */
	FSD_VALUE,          /* values/<key> and its views values/<key>.<ext> */
	FSD_AMBIG,          /* digests/<prefix>/ for an ambiguous prefix */
	FSD_FUNC,           /* by-name/<function>/ */
	FSD_QUERY,          /* query/ */
	FSD_QUERY_DIR,      /* query/<field=value>/... (querydir.h) */
	FSD_RECDIR,         /* values/<key>.d/ and its folders (recdir.h); key: the record */
};

/* A call record rendered into the files of its directory. */
struct fsd_record_file {
	char *name; /* file name inside its directory */
	char *data; /* contents (call.json text, "add\n", ...); NULL when empty */
	size_t len;
};

struct fsd_record_arg {
	char *name;     /* parameter name */
	char value[RPC_KEY_LEN + 1]; /* value key */
};

struct fsd_record {
	atomic_int refs;
	char key[RPC_KEY_LEN + 1];
	double mtime;
	uint64_t stamp; /* load's stamp (PROTOCOL.md): 0 when the server sends none */
	struct fsd_record_file *files; /* call.json, then name, module, version, code_digest
	                                  when present */
	size_t nfiles;
	struct fsd_record_arg *args;
	size_t nargs;
	char result[RPC_KEY_LEN + 1];              /* "" when the record has no result */
	struct fsd_record_file *meta; /* metadata/<block>.json */
	size_t nmeta;
	/* Why the server cannot send the metadata (load's metadata_error), or NULL. When
	 * set, meta is empty and call.json is listed empty: opening it, or metadata/,
	 * fails with EIO and logs this. */
	char *meta_error;
};

struct fsd_record *fsd_record_ref(struct fsd_record *r);
void fsd_record_unref(struct fsd_record *r);

/* A candidate of an ambiguous digests/ prefix: its key and the link target. */
struct fsd_candidate {
	char key[RPC_KEY_LEN + 1];
	char target[FSD_LINK_TARGET_MAX];
};

struct fsd_inode {
	uint64_t ino;
	uint64_t nlookup;
	int permanent;
	enum fsd_kind kind;
	char *path;       /* inside the mount, no leading '/': "values/<key>"; "" for the root */
	const char *name; /* the last component (points into path) */
	/* the call or value key concerned, or the function name's owner */
	char key[RPC_KEY_LEN + 1];
	char *target;     /* FSD_LINK: the link's target */
	int view;         /* FSD_VALUE: the view served (enum rpc_view, proto.h; 0 pickle) */
	/* attributes, under the table lock */
	int have_size; /* values: size known */
	uint64_t size;
	double mtime;                /* 0: the mount's time */
	int err;                     /* nonzero: opening or reading fails with this errno */
	struct fsd_record *rec;      /* a call's directories (invariant 4), or NULL */
	uint64_t fresh_until_ms;     /* invariant 5 (CLOCK_MONOTONIC); 0: not a call's */
	struct fsd_candidate *cands; /* FSD_AMBIG */
	size_t ncands;
	struct fsd_inode *hnext;
};

struct fsd_itable {
	pthread_mutex_t lock;
	struct fsd_inode **bucket;
	size_t nbuckets, count;
	struct fsd_inode *root;
};

int fsd_itable_init(struct fsd_itable *t);
void fsd_itable_release(struct fsd_itable *t);

/* Locks and unlocks the table (for the attribute fields). */
void fsd_itable_lock(struct fsd_itable *t);
void fsd_itable_unlock(struct fsd_itable *t);

/*
 * Finds an inode by number; NULL when unknown. The pointer stays valid while the
 * kernel holds a lookup on it (always the case for the inode of a request).
 */
struct fsd_inode *fsd_itable_get(struct fsd_itable *t, uint64_t ino);
/* The same with the table's lock held by the caller. */
struct fsd_inode *fsd_itable_get_locked(struct fsd_itable *t, uint64_t ino);

/* Finds the inode of a path inside the mount; NULL when unknown. Caller holds the
 * lock. */
struct fsd_inode *fsd_itable_find_path(struct fsd_itable *t, const char *path);

/*
 * Finds or creates the inode for child `name` of `parent` with the given kind, and
 * adds `lookups` to its lookup count. target (for links) is copied when creating.
 * Caller holds the lock. Returns NULL when out of memory.
 */
struct fsd_inode *fsd_itable_child(struct fsd_itable *t, struct fsd_inode *parent, const char *name,
                                   enum fsd_kind kind, const char *key, const char *target,
                                   uint64_t lookups);

/* Subtracts n lookups; frees the inode at zero (not the permanent ones). Caller holds
 * the lock. */
void fsd_itable_forget(struct fsd_itable *t, uint64_t ino, uint64_t n);

/* Calls fn for every inode of a kind (caller holds the lock; fn must not change the
 * table). */
void fsd_itable_each(struct fsd_itable *t, enum fsd_kind kind,
                     void (*fn)(struct fsd_inode *ino, void *ctx), void *ctx);

/* The 64-bit hash numbers derive from (exposed for tests). */
uint64_t fsd_path_hash(const char *path);

#endif

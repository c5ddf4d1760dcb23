/*
 * fs.c: the FUSE low-level operations of flechefs (fs.h). The tree:
 *
 *	calls/<key>/{call.json,name,module,version,code_digest}
 *	calls/<key>/arguments/<param> -> ../../../values/<value key>
 *	calls/<key>/result -> ../../values/<value key>
 *	calls/<key>/metadata/<block>.json
 *	calls/<key>/result.<ext> -> ../../values/<value key>.<ext>   (listed where it applies)
 *	calls/<key>/arguments/<param>.<ext> -> ../../../values/<value key>.<ext>
 *	calls/<prefix> -> <key>            values/<prefix> -> <key>
 *	values/<key>                       the pickle stream
 *	values/<key>.<ext>                 a view (json, npy, txt, bin), lookup only
 *	values/<prefix>.<ext> -> <key>.<ext>
 *	digests/<prefix> -> ../calls/<key> or ../values/<key>, or a directory of candidates
 *	by-name/<function>/<key> -> ../../calls/<key>
 *
 * Invariants:
 *  1. Every request gets exactly one reply. Metadata operations call the server
 *     synchronously in the libfuse worker thread; value reads send load_value and
 *     reply from its completion (reader thread), so many reads are in flight.
 *  2. Every entry handed to the kernel (lookup, readdirplus) adds exactly one to its
 *     inode's lookup count (a lookup whose reply fails takes it back); forget
 *     subtracts, and the inode goes at zero.
 *  3. Listings of calls/, values/ and by-name/ come from listing.h: cached for
 *     cache_timeout, streamed page by page to readdir, dropped after an eviction
 *     through this mount. Readdirplus hands the kernel every entry's attributes,
 *     so ls -l costs no request per entry.
 *  4. A call record is loaded per inode and rendered (callrec.h) at that moment, so
 *     sizes are exact before the first read. It is current for cache_timeout (inode.h
 *     invariant 5: the kernel keeps entries and attributes of a call's files no
 *     longer); then a fresh listing of calls/ whose stamp for the key is the
 *     record's confirms it, else it is loaded again (ensure_record). A listing whose
 *     stamp differs marks the record stale at once: a call recorded again under its
 *     key is shown within cache_timeout.
 *  5. A view of a value (views.h) is an FSD_VALUE inode with its view set: found by
 *     lookup only (ls values/ lists the keys alone), its size exact from stat_value
 *     with the view, cached by the kernel as values are. Call directories list the
 *     views of their result and arguments that apply, as the view cache says.
 *  6. Nothing is ever created or written: those operations fail with EROFS on a
 *     read-only mount or server, else EPERM. Unlinking a file inside a call folder
 *     succeeds and changes nothing; rmdir of calls/<key> evicts, within the
 *     eviction guard (below). Who may do what is the kernel's check of the modes
 *     shown (default_permissions, set by main.c): only the mounter evicts.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fs.h"
#include "cacheinfo.h"
#include "callrec.h"
#include "client.h"
#include "listing.h"
#include "log.h"
#include "msg.h"
#include "querydir.h"
#include "rpc.h"
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

struct evict_guard {
	pthread_mutex_t lock;
	double at[FS_EVICT_BURST]; /* CLOCK_MONOTONIC seconds of the last attempts (a ring) */
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
	struct evict_guard guard;
	struct fsd_statfs_cache statfs;
};

/* The top-level directories, in listing order. */
static const struct {
	const char *name;
	enum fsd_kind kind;
} fs_top[] = {
    {"calls", FSD_CALLS},     {"values", FSD_VALUES}, {"digests", FSD_DIGESTS},
    {"by-name", FSD_BYNAME}, {"query", FSD_QUERY},
};
#define FS_NTOP (sizeof(fs_top) / sizeof(fs_top[0]))

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* cache_timeout after t (CLOCK_MONOTONIC ms): until when what was current at t is. */
static uint64_t fresh_after(const struct fsd_fs *fs, uint64_t t)
{
	return t + (uint64_t)(fs->o.cache_timeout * 1000);
}

/* --- attributes --- */

static int is_dir_kind(enum fsd_kind k)
{
	switch (k) {
	case FSD_ROOT:
	case FSD_CALLS:
	case FSD_VALUES:
	case FSD_DIGESTS:
	case FSD_BYNAME:
	case FSD_CALL:
	case FSD_CALL_ARGS:
	case FSD_CALL_META:
	case FSD_AMBIG:
	case FSD_FUNC:
	case FSD_QUERY:
	case FSD_QUERY_DIR:
		return 1;
	default:
		return 0;
	}
}

static void set_time(struct timespec *ts, double t)
{
	if (!(t > 0) || !isfinite(t) || t > 9e15)
		t = 0;
	ts->tv_sec = (time_t)t;
	ts->tv_nsec = (long)((t - floor(t)) * 1e9);
	if (ts->tv_nsec < 0 || ts->tv_nsec >= 1000000000)
		ts->tv_nsec = 0;
}

/* Contents of a record file inode (call files and metadata), or NULL. Lock held. */
static const struct fsd_record_file *record_file(struct fsd_inode *i)
{
	if (!i->rec)
		return NULL;
	if (i->kind == FSD_CALL_FILE) {
		for (size_t k = 0; k < i->rec->nfiles; k++)
			if (strcmp(i->rec->files[k].name, i->name) == 0)
				return &i->rec->files[k];
	} else if (i->kind == FSD_CALL_META_FILE) {
		for (size_t k = 0; k < i->rec->nmeta; k++)
			if (strcmp(i->rec->meta[k].name, i->name) == 0)
				return &i->rec->meta[k];
	}
	return NULL;
}

/*
 * EIO, logged with the server's reason, when i is a part of a call that is rendered
 * from metadata the server cannot send (call.json, metadata/ and what is in it); 0
 * otherwise. Lock not held.
 */
static int metadata_refused(struct fsd_inode *i, struct fsd_fs *fs)
{
	fsd_itable_lock(&fs->it);
	struct fsd_record *rec = fsd_record_ref(i->rec);
	const struct fsd_record_file *f = i->kind == FSD_CALL_FILE ? record_file(i) : NULL;
	int refused = rec && rec->meta_error &&
	              (i->kind == FSD_CALL_META || i->kind == FSD_CALL_META_FILE ||
	               (f && f == &rec->files[0])); /* files[0] is call.json */
	fsd_itable_unlock(&fs->it);
	if (refused)
		fsd_log(FSD_LOG_WARN, "cannot read '%s': %s", i->path, rec->meta_error);
	fsd_record_unref(rec);
	return refused ? EIO : 0;
}

/* Fills st from the inode. Caller holds the table lock. */
static void fill_attr(struct fsd_fs *fs, struct fsd_inode *i, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = i->ino;
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	st->st_blksize = 4096;
	double mt = i->mtime > 0 ? i->mtime : fs->start_time;
	if (i->rec && i->kind != FSD_VALUE)
		mt = i->rec->mtime > 0 ? i->rec->mtime : mt;
	set_time(&st->st_mtim, mt);
	st->st_atim = st->st_mtim;
	st->st_ctim = st->st_mtim;
	if (is_dir_kind(i->kind)) {
		/* Writable where rm -r of a call goes: unlinking in a call directory
		 * succeeds (changing nothing) and rmdir of calls/<key> evicts; the kernel
		 * checks these modes (default_permissions). */
		int w = fs->evict_allowed && (i->kind == FSD_CALLS || i->kind == FSD_CALL ||
		                              i->kind == FSD_CALL_ARGS || i->kind == FSD_CALL_META);
		st->st_mode = S_IFDIR | (w ? 0755 : 0555);
		/* 2 + subdirectories where known, 1 ("unknown") where counting them would
		 * cost a listing: find's leaf optimisation relies on it. */
		switch (i->kind) {
		case FSD_ROOT:
			st->st_nlink = 7;
			break;
		case FSD_CALL:
			st->st_nlink = 4;
			break;
		case FSD_CALLS:
		case FSD_BYNAME:
		case FSD_DIGESTS:
		case FSD_QUERY:
		case FSD_QUERY_DIR:
			st->st_nlink = 1;
			break;
		default:
			st->st_nlink = 2;
		}
		return;
	}
	st->st_nlink = 1;
	if (i->kind == FSD_LINK) {
		st->st_mode = S_IFLNK | 0777;
		st->st_size = i->target ? (off_t)strlen(i->target) : 0;
		return;
	}
	st->st_mode = S_IFREG | 0444;
	if (i->kind == FSD_VALUE) {
		st->st_size = (off_t)i->size;
		st->st_blksize = FS_VALUE_BLKSIZE;
	} else {
		const struct fsd_record_file *f = record_file(i);
		st->st_size = f ? (off_t)f->len : 0;
	}
	st->st_blocks = (st->st_size + 511) / 512;
}

static double kind_timeout(struct fsd_fs *fs, enum fsd_kind k)
{
	switch (k) {
	case FSD_ROOT:
	case FSD_CALLS:
	case FSD_VALUES:
	case FSD_DIGESTS:
	case FSD_BYNAME:
	case FSD_QUERY:
		return FS_TOP_TIMEOUT;
	case FSD_VALUE:
		return fs->o.value_timeout;
	default:
		return fs->o.cache_timeout;
	}
}

/* How long the kernel may keep i's entry and attributes: what remains of its
 * freshness for a call's inodes (inode.h invariant 5), else by kind. Lock held. */
static double inode_timeout(struct fsd_fs *fs, const struct fsd_inode *i)
{
	if (!i->fresh_until_ms)
		return kind_timeout(fs, i->kind);
	uint64_t now = mono_ms();
	return i->fresh_until_ms > now ? (double)(i->fresh_until_ms - now) / 1000.0 : 0;
}

/* A value whose size is not known yet (the listing left it out). Lock held. */
static int value_unsized(const struct fsd_inode *i)
{
	return i->kind == FSD_VALUE && !i->have_size && !i->err;
}

/*
 * What stat of a value answers while its size is not known: EIO while it has not
 * been learnt (yet), the server's error when it cannot be (a file that is not a
 * regular file, a bad signature); 0 once it is known. Lock held.
 */
static int value_size_err(const struct fsd_inode *i)
{
	if (i->kind != FSD_VALUE || i->have_size)
		return 0;
	return i->err ? i->err : EIO;
}

/* Fills an entry for i. Lock held. */
static void fill_entry(struct fsd_fs *fs, struct fsd_inode *i, struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->ino = i->ino;
	e->generation = 1;
	fill_attr(fs, i, &e->attr);
	e->attr_timeout = inode_timeout(fs, i);
	e->entry_timeout = e->attr_timeout;
	/* A value whose size the listing did not know (a large compressed one): the
	 * kernel must ask getattr, which learns it (or fails), before it believes a
	 * size. */
	if (value_size_err(i))
		e->attr_timeout = 0;
}

/* --- records --- */

/* Logs a server error with its candidates. */
static void log_failure(const char *what, const struct fsd_result *r)
{
	if (r->error && r->error->code == RPC_E_AMBIGUOUS) {
		char list[RPC_MAX_CANDIDATES * 66 + 1] = "";
		size_t off = 0;
		for (size_t k = 0; k < r->error->ncandidates && off < sizeof(list) - 66; k++)
			off += (size_t)snprintf(list + off, sizeof(list) - off, "%s%s",
			                        k ? " " : "", r->error->candidates[k]);
		fsd_log(FSD_LOG_WARN, "'%s' is ambiguous: candidates %s", what, list);
		return;
	}
	fsd_log(r->err == ENOENT ? FSD_LOG_DEBUG : FSD_LOG_WARN, "'%s': %s", what,
	        r->message[0] ? r->message : strerror(r->err));
}

/* Takes i's record away (it changed, or is gone). Lock held. */
static void drop_record(struct fsd_inode *i)
{
	fsd_record_unref(i->rec);
	i->rec = NULL;
}

/*
 * Makes sure a call directory inode (or its arguments/ or metadata/) has a current
 * record (invariant 4): the one it has while fresh, or confirmed by a fresh listing,
 * else loaded again (kept when its stamp is the same). Returns 0, or the positive
 * errno reading it gives (remembered for cache_timeout when the server said so:
 * EBADMSG, CORRUPT...; ENOENT when the call is gone).
 */
static int ensure_record(struct fsd_fs *fs, struct fsd_inode *i)
{
	uint64_t now = mono_ms();
	fsd_itable_lock(&fs->it);
	int have = i->rec != NULL, err = i->err, fresh = now < i->fresh_until_ms;
	uint64_t stamp = have ? i->rec->stamp : 0;
	fsd_itable_unlock(&fs->it);
	if (fresh && (have || err))
		return have ? 0 : err;
	struct fsd_list_item it;
	if (have && stamp && fsd_listings_find(&fs->lists, "calls", i->key, &it) >= 0 &&
	    it.stamp == stamp && now < fresh_after(fs, it.fetched_ms)) {
		fsd_itable_lock(&fs->it);
		if (i->rec && i->rec->stamp == stamp &&
		    i->fresh_until_ms < fresh_after(fs, it.fetched_ms))
			i->fresh_until_ms = fresh_after(fs, it.fetched_ms);
		fsd_itable_unlock(&fs->it);
		return 0;
	}
	struct fsd_result r;
	int rc = fsd_rpc_load(fs->conn, i->key, &r);
	if (rc) {
		log_failure(i->path, &r);
		int e = r.err == ETIMEDOUT ? EIO : r.err;
		if (r.error) {
			/* The server's word: the call is gone or unreadable now. A failure of
			 * our own (no answer) leaves the record as it was, to be asked again. */
			fsd_itable_lock(&fs->it);
			drop_record(i);
			i->err = e == ENOENT ? 0 : e;
			i->fresh_until_ms = fresh_after(fs, now);
			fsd_itable_unlock(&fs->it);
		}
		fsd_result_release(&r);
		return e;
	}
	struct fsd_record *rec = NULL;
	rc = fsd_record_build(r.result, &rec);
	fsd_result_release(&r);
	if (rc) {
		fsd_log(FSD_LOG_WARN, "cannot render the record '%s': %s", i->key, strerror(-rc));
		return rc == -ENOMEM ? ENOMEM : EIO;
	}
	fsd_itable_lock(&fs->it);
	if (!i->rec || !rec->stamp || i->rec->stamp != rec->stamp) {
		/* new, or recorded again: the files of the call change with it */
		drop_record(i);
		i->rec = rec;
		i->mtime = rec->mtime;
		rec = NULL;
	}
	i->err = 0;
	i->fresh_until_ms = fresh_after(fs, now);
	fsd_itable_unlock(&fs->it);
	fsd_record_unref(rec);
	return 0;
}

/* --- replies --- */

/* Every error reaches the kernel as a number it takes (1 to 511; else the request
 * would never complete) and never ENOSYS, which would make it stop sending the
 * operation for good (open, opendir...): both as EIO. */
static int reply_err(fuse_req_t req, int err)
{
	if (err == ETIMEDOUT || err == ENOSYS || err <= 0 || err >= 512)
		err = EIO;
	return fuse_reply_err(req, err);
}

static void reply_negative(struct fsd_fs *fs, fuse_req_t req)
{
	struct fuse_entry_param e;
	memset(&e, 0, sizeof(e));
	e.entry_timeout = fs->o.negative_timeout;
	fuse_reply_entry(req, &e);
}

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

/* Creates or finds the child with `lookups` lookups and sets its attributes. Lock held. */
static struct fsd_inode *make_child(struct fsd_fs *fs, struct fsd_inode *parent, const char *name,
                                    enum fsd_kind kind, const struct child_spec *sp,
                                    uint64_t lookups)
{
	struct fsd_inode *i =
	    fsd_itable_child(&fs->it, parent, name, kind, sp->key, sp->target, lookups);
	if (!i)
		return NULL;
	if (kind == FSD_VALUE)
		i->view = sp->view; /* the same for the same path */
	if (sp->rec && i->rec != sp->rec &&
	    !(i->rec && sp->rec->stamp && i->rec->stamp == sp->rec->stamp)) {
		/* A newer load of the record (a call may be evicted and recorded again
		 * under the same key, with other metadata); the same stamp is the same
		 * record. */
		fsd_record_unref(i->rec);
		i->rec = fsd_record_ref(sp->rec);
		i->err = 0;
	}
	if (sp->listed) {
		/* calls/<key> from a listing: it confirms the record when the stamps agree,
		 * makes it stale at once when they differ (recorded again), and says
		 * nothing about it when the server gives no stamp (sql listings). */
		if (i->rec && sp->stamp && i->rec->stamp == sp->stamp) {
			if (i->fresh_until_ms < sp->fresh_until_ms)
				i->fresh_until_ms = sp->fresh_until_ms;
		} else if (i->rec && sp->stamp) {
			i->fresh_until_ms = 1; /* past: stale, still a call's */
		} else if (!i->rec && !i->err && i->fresh_until_ms < sp->fresh_until_ms) {
			i->fresh_until_ms = sp->fresh_until_ms;
		}
	} else if (sp->fresh_until_ms) {
		i->fresh_until_ms = sp->fresh_until_ms;
	}
	if (sp->mtime > 0)
		i->mtime = sp->mtime;
	if (sp->size >= 0) {
		i->size = (uint64_t)sp->size;
		i->have_size = 1;
	}
	if (sp->err)
		i->err = sp->err;
	if (sp->cands && !i->cands) {
		i->cands = calloc(sp->ncands ? sp->ncands : 1, sizeof(*i->cands));
		if (i->cands) {
			memcpy(i->cands, sp->cands, sp->ncands * sizeof(*i->cands));
			i->ncands = sp->ncands;
		}
	}
	return i;
}

static void reply_child(struct fsd_fs *fs, fuse_req_t req, struct fsd_inode *parent,
                        const char *name, enum fsd_kind kind, const struct child_spec *sp)
{
	struct fuse_entry_param e;
	fsd_itable_lock(&fs->it);
	struct fsd_inode *i = make_child(fs, parent, name, kind, sp, 1);
	if (!i) {
		fsd_itable_unlock(&fs->it);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	fill_entry(fs, i, &e);
	uint64_t ino = i->ino;
	fsd_itable_unlock(&fs->it);
	if (fuse_reply_entry(req, &e) != 0) {
		fsd_itable_lock(&fs->it);
		fsd_itable_forget(&fs->it, ino, 1);
		fsd_itable_unlock(&fs->it);
	}
}

static struct fsd_fs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static struct fsd_inode *inode_of(struct fsd_fs *fs, fuse_ino_t ino)
{
	return fsd_itable_get(&fs->it, ino);
}

static int is_hex(const char *s, size_t n)
{
	for (size_t k = 0; k < n; k++)
		if (!((s[k] >= '0' && s[k] <= '9') || (s[k] >= 'a' && s[k] <= 'f')))
			return 0;
	return 1;
}

/* --- lookup --- */

static void reply_negative_for(fuse_req_t req, double timeout)
{
	struct fuse_entry_param e;
	memset(&e, 0, sizeof(e));
	e.entry_timeout = timeout;
	fuse_reply_entry(req, &e);
}

/*
 * values/<key>.<ext> and values/<prefix>.<ext>: a view of a value, or a link to the
 * full name. A view that does not apply (ENOTSUP), is over its limit (EFBIG) or
 * cannot be rendered (ELOOP, a missing part) is ENOENT, with the server's reason in
 * the log; the first two are cached by the kernel as long as values are.
 */
static void lookup_value_view(struct fsd_fs *fs, fuse_req_t req, struct fsd_inode *parent,
                              const char *name, size_t stem, int view)
{
	struct child_spec sp = {.size = -1, .view = view};
	struct fsd_result r;
	char pfx[RPC_KEY_LEN + 1], key[RPC_KEY_LEN + 1], target[FSD_LINK_TARGET_MAX];
	uint64_t size;
	double mt = 0;

	if (stem < RPC_PREFIX_MIN || stem > RPC_KEY_LEN || !is_hex(name, stem)) {
		reply_negative(fs, req);
		return;
	}
	if (!(fsd_conn_server(fs->conn)->views & (1u << view))) {
		fsd_log(FSD_LOG_DEBUG, "values/%s: the server does not render the %s view", name,
		        rpc_view_name(view));
		reply_negative(fs, req);
		return;
	}
	memcpy(pfx, name, stem);
	pfx[stem] = 0;
	struct rpc_stat_value st;
	int rc = fsd_rpc_stat_value(fs->conn, pfx, view, &r, &st);
	if (rc) {
		int e = r.err;
		const char *why = r.message[0] ? r.message : strerror(e);
		if (!r.error) {
			log_failure(name, &r);
			reply_err(req, e);
		} else if (fsd_view_error_definitive(r.error)) {
			fsd_log(r.error->code == RPC_E_ENOTSUP ? FSD_LOG_DEBUG : FSD_LOG_INFO,
			        "values/%s is absent: %s", name, why);
			if (stem == RPC_KEY_LEN)
				fsd_viewcache_put(&fs->views, pfx, view, FSD_VS_NO, 0);
			reply_negative_for(req, r.error->code == RPC_E_ELOOP
			                            ? fs->o.negative_timeout
			                            : fs->o.value_timeout);
		} else if (r.error->code == RPC_E_AMBIGUOUS) {
			log_failure(name, &r);
			reply_negative(fs, req);
		} else if (e == ENOENT || e == EINVAL) {
			/* No such value, or a destructured value with a missing part. */
			fsd_log(stem == RPC_KEY_LEN ? FSD_LOG_INFO : FSD_LOG_DEBUG,
			        "values/%s is absent: %s", name, why);
			reply_negative(fs, req);
		} else {
			log_failure(name, &r);
			reply_err(req, e);
		}
		fsd_result_release(&r);
		return;
	}
	fsd_result_release(&r);
	if (!st.key[0]) {
		reply_err(req, EIO);
		return;
	}
	memcpy(key, st.key, RPC_KEY_LEN + 1);
	size = st.size;
	mt = st.mtime;
	fsd_viewcache_put(&fs->views, key, view, FSD_VS_YES, size);
	if (stem < RPC_KEY_LEN) {
		snprintf(target, sizeof(target), "%s.%s", key, rpc_view_name(view));
		sp.target = target;
		reply_child(fs, req, parent, name, FSD_LINK, &sp);
		return;
	}
	sp.key = key;
	sp.size = (int64_t)size;
	sp.mtime = mt;
	reply_child(fs, req, parent, name, FSD_VALUE, &sp);
}

/* calls/<name> and values/<name>. */
static void lookup_keyed(struct fsd_fs *fs, fuse_req_t req, struct fsd_inode *parent,
                         const char *name, int calls)
{
	size_t n = strlen(name);
	struct child_spec sp = {.size = -1};
	struct fsd_result r;
	const char *s;
	size_t sl;

	if (!calls) {
		size_t stem;
		int view = fsd_view_split(name, &stem);
		if (view) {
			lookup_value_view(fs, req, parent, name, stem, view);
			return;
		}
	}
	if (n < RPC_PREFIX_MIN || n > RPC_KEY_LEN || !is_hex(name, n)) {
		reply_negative(fs, req);
		return;
	}
	if (n == RPC_KEY_LEN) {
		struct fsd_list_item it;
		if (fsd_listings_find(&fs->lists, calls ? "calls" : "values", name, &it) >= 0 &&
		    (calls || it.size >= 0)) {
			sp.key = name;
			sp.mtime = it.mtime;
			sp.size = it.size;
			if (calls) {
				sp.listed = 1;
				sp.stamp = it.stamp;
				sp.fresh_until_ms = fresh_after(fs, it.fetched_ms);
			}
			reply_child(fs, req, parent, name, calls ? FSD_CALL : FSD_VALUE, &sp);
			return;
		}
	}
	if (calls)
		sp.fresh_until_ms = fresh_after(fs, mono_ms());
	struct rpc_stat_value st;
	int rc = calls ? fsd_rpc_load(fs->conn, name, &r)
	               : fsd_rpc_stat_value(fs->conn, name, RPC_VIEW_PICKLE, &r, &st);
	if (rc) {
		log_failure(name, &r);
		if (!r.error) {
			reply_err(req, r.err);
		} else if (r.err == ENOENT || r.err == EINVAL) {
			reply_negative(fs, req);
		} else if (n == RPC_KEY_LEN && calls) {
			/* Listed, but reading fails (EBADMSG for a bad signature...). A
			 * value has no size to show then: its lookup fails instead. */
			sp.key = name;
			sp.err = r.err;
			sp.size = 0;
			reply_child(fs, req, parent, name, calls ? FSD_CALL : FSD_VALUE, &sp);
		} else {
			reply_err(req, r.err);
		}
		fsd_result_release(&r);
		return;
	}
	if (calls ? rpc_obj_str(rpc_map_field(r.result, RPC_F_KEY), &s, &sl) ||
	                !rpc_key_valid(s, sl)
	          : !st.key[0]) {
		fsd_result_release(&r);
		reply_err(req, EIO);
		return;
	}
	char key[RPC_KEY_LEN + 1];
	if (calls) {
		memcpy(key, s, RPC_KEY_LEN);
		key[RPC_KEY_LEN] = 0;
	} else {
		memcpy(key, st.key, RPC_KEY_LEN + 1);
	}
	if (n < RPC_KEY_LEN) {
		sp.target = key;
		fsd_result_release(&r);
		reply_child(fs, req, parent, name, FSD_LINK, &sp);
		return;
	}
	sp.key = key;
	struct fsd_record *rec = NULL;
	if (calls) {
		if (fsd_record_build(r.result, &rec)) {
			fsd_log(FSD_LOG_WARN, "cannot render the record '%s'", key);
			sp.err = EIO;
		}
		sp.rec = rec;
		sp.mtime = rec ? rec->mtime : 0;
	} else {
		sp.mtime = st.mtime;
		sp.size = (int64_t)st.size;
	}
	fsd_result_release(&r);
	reply_child(fs, req, parent, name, calls ? FSD_CALL : FSD_VALUE, &sp);
	fsd_record_unref(rec);
}

/*
 * Where full keys live: "calls" or "values" (into kinds[k]), by asking contains (call
 * keys) and a one-key listing of values from just below each key (which says whether
 * the value file exists without reading it: a stat_value would inflate a compressed
 * one), all at once, so that however many keys there are the lookup waits for one
 * deadline at most, not for one per request. kinds[k] is NULL for a key that is
 * neither. Returns 0, or a positive errno when a request failed for another reason
 * than the key's absence.
 */
struct classify_wait {
	pthread_mutex_t m;
	pthread_cond_t cv;
	size_t pending;
};

struct classify_req {
	struct classify_wait *w;
	const char *key; /* the listing's: the key it must start with */
	int err;         /* 0 or the positive errno */
	int local;       /* the failure was ours (no server error map) */
	bool yes;        /* contains: the answer; listing: the key came first */
};

static void classify_done(void *ctx, const struct fsd_reply *r)
{
	struct classify_req *q = ctx;

	q->err = r->err;
	q->local = r->error == NULL;
	if (!r->err && !q->key) {
		rpc_decode_contains(r->result, &q->yes, NULL, 0);
	} else if (!r->err) {
		struct rpc_page page;
		struct rpc_page_entry e;
		if (rpc_decode_page(r->result, &page, NULL, 0) == 0 && page.n) {
			rpc_page_entry(&page, 0, &e);
			q->yes = memcmp(e.key, q->key, RPC_KEY_LEN) == 0;
		}
	}
	pthread_mutex_lock(&q->w->m);
	if (--q->w->pending == 0)
		pthread_cond_signal(&q->w->cv);
	pthread_mutex_unlock(&q->w->m);
}

/* The key just below key (64 hex digits), or 0 when key is all zeros. */
static int key_before(const char *key, char out[RPC_KEY_LEN + 1])
{
	memcpy(out, key, RPC_KEY_LEN + 1);
	for (int i = RPC_KEY_LEN - 1; i >= 0; i--) {
		if (out[i] != '0') {
			out[i] = out[i] == 'a' ? '9' : (char)(out[i] - 1);
			return 1;
		}
		out[i] = 'f';
	}
	return 0;
}

static int classify_keys(struct fsd_fs *fs, const char (*keys)[RPC_KEY_LEN + 1], size_t n,
                         const char **kinds)
{
	struct classify_wait w = {.pending = 2 * n};
	struct classify_req *q = calloc(2 * n + 1, sizeof(*q));
	int rc = 0;

	if (!q)
		return ENOMEM;
	pthread_mutex_init(&w.m, NULL);
	pthread_cond_init(&w.cv, NULL);
	for (size_t k = 0; k < 2 * n; k++)
		q[k].w = &w;
	for (size_t k = 0; k < n; k++) {
		char before[RPC_KEY_LEN + 1];
		int has_before = key_before(keys[k], before);
		q[2 * k + 1].key = keys[k];
		fsd_rpc_contains_async(fs->conn, keys[k], classify_done, &q[2 * k]);
		fsd_rpc_list_async(fs->conn, RPC_KIND_VALUES, has_before ? before : NULL, 1, false,
		                   classify_done, &q[2 * k + 1]);
	}
	pthread_mutex_lock(&w.m);
	while (w.pending)
		pthread_cond_wait(&w.cv, &w.m);
	pthread_mutex_unlock(&w.m);
	pthread_cond_destroy(&w.cv);
	pthread_mutex_destroy(&w.m);
	for (size_t k = 0; k < n && !rc; k++) {
		const struct classify_req *c = &q[2 * k], *v = &q[2 * k + 1];

		kinds[k] = NULL;
		if (c->err && (c->local || c->err != ENOENT))
			rc = c->err;
		else if (!c->err && c->yes)
			kinds[k] = "calls";
		else if (v->err)
			rc = v->err;
		else if (v->yes)
			kinds[k] = "values";
	}
	free(q);
	return rc;
}

static void lookup_digest(struct fsd_fs *fs, fuse_req_t req, struct fsd_inode *parent,
                          const char *name)
{
	size_t n = strlen(name);
	struct fsd_result r;
	struct child_spec sp = {.size = -1};
	char target[FSD_LINK_TARGET_MAX];
	const char *kind;

	if (n < RPC_PREFIX_MIN || n > RPC_KEY_LEN || !is_hex(name, n)) {
		reply_negative(fs, req);
		return;
	}
	char expanded[RPC_KEY_LEN + 1];
	int rc = fsd_rpc_expand(fs->conn, name, &r, expanded);
	if (rc && r.error && r.error->code == RPC_E_AMBIGUOUS && r.error->ncandidates) {
		size_t nc = r.error->ncandidates;
		struct fsd_candidate *c = calloc(nc, sizeof(*c));
		if (!c) {
			fsd_result_release(&r);
			fuse_reply_err(req, ENOMEM);
			return;
		}
		char(*keys)[RPC_KEY_LEN + 1] = calloc(nc, sizeof(*keys));
		const char **kinds = calloc(nc, sizeof(*kinds));
		size_t nk = 0, m = 0;
		int e = keys && kinds ? 0 : ENOMEM;
		for (size_t k = 0; k < nc && !e; k++)
			if (rpc_key_valid(r.error->candidates[k], strlen(r.error->candidates[k])))
				memcpy(keys[nk++], r.error->candidates[k], RPC_KEY_LEN + 1);
		fsd_result_release(&r);
		if (!e)
			e = classify_keys(fs, (const char(*)[RPC_KEY_LEN + 1])keys, nk, kinds);
		for (size_t k = 0; k < nk && !e; k++) {
			if (!kinds[k])
				continue; /* gone since */
			memcpy(c[m].key, keys[k], RPC_KEY_LEN + 1);
			snprintf(c[m].target, sizeof(c[m].target), "../../%s/%s", kinds[k],
			         c[m].key);
			m++;
		}
		free(keys);
		free(kinds);
		if (e) {
			free(c);
			reply_err(req, e);
			return;
		}
		sp.cands = c;
		sp.ncands = m;
		reply_child(fs, req, parent, name, FSD_AMBIG, &sp);
		free(c);
		return;
	}
	if (rc) {
		log_failure(name, &r);
		int e = r.err, local = r.error == NULL;
		fsd_result_release(&r);
		if (local)
			reply_err(req, e);
		else if (e == ENOENT || e == EINVAL)
			reply_negative(fs, req);
		else
			reply_err(req, e);
		return;
	}
	fsd_result_release(&r);
	if (strlen(expanded) != RPC_KEY_LEN) {
		reply_err(req, EIO); /* expand answers full keys only */
		return;
	}
	char key[1][RPC_KEY_LEN + 1];
	memcpy(key[0], expanded, RPC_KEY_LEN + 1);
	int e = classify_keys(fs, (const char(*)[RPC_KEY_LEN + 1])key, 1, &kind);
	if (e) {
		reply_err(req, e);
		return;
	}
	if (!kind) {
		reply_negative(fs, req); /* gone since */
		return;
	}
	snprintf(target, sizeof(target), "../%s/%s", kind, key[0]);
	sp.target = target;
	reply_child(fs, req, parent, name, FSD_LINK, &sp);
}

static void lookup_func(struct fsd_fs *fs, fuse_req_t req, struct fsd_inode *parent,
                        const char *name)
{
	struct fsd_result r;
	struct child_spec sp = {.size = -1};
	if (!fsd_name_ok(name, strlen(name))) {
		reply_negative(fs, req);
		return;
	}
	struct rpc_page page;
	int rc = fsd_rpc_query_name(fs->conn, name, NULL, 1, false, &r, &page);
	if (rc) {
		log_failure(name, &r);
		reply_err(req, r.err == EINVAL ? ENOENT : r.err);
		fsd_result_release(&r);
		return;
	}
	int found = page.n > 0;
	fsd_result_release(&r);
	if (!found) {
		reply_negative(fs, req);
		return;
	}
	reply_child(fs, req, parent, name, FSD_FUNC, &sp);
}

static void lookup_func_entry(struct fsd_fs *fs, fuse_req_t req, struct fsd_inode *parent,
                              const char *name)
{
	struct fsd_result r;
	struct child_spec sp = {.size = -1};
	char target[FSD_LINK_TARGET_MAX];
	const char *s;
	size_t sl;
	if (strlen(name) != RPC_KEY_LEN || !is_hex(name, RPC_KEY_LEN)) {
		reply_negative(fs, req);
		return;
	}
	int rc = fsd_rpc_load(fs->conn, name, &r);
	if (rc) {
		int e = r.err, local = r.error == NULL;
		fsd_result_release(&r);
		if (local)
			reply_err(req, e);
		else
			reply_negative(fs, req);
		return;
	}
	int same = rpc_obj_str(rpc_map_field(r.result, RPC_F_NAME), &s, &sl) == 0 &&
	           sl == strlen(parent->name) && memcmp(s, parent->name, sl) == 0;
	fsd_result_release(&r);
	if (!same) {
		reply_negative(fs, req);
		return;
	}
	snprintf(target, sizeof(target), "../../calls/%s", name);
	sp.target = target;
	reply_child(fs, req, parent, name, FSD_LINK, &sp);
}

/* Whether view applies to the value key (from the view cache, else the server). */
static int view_applies(struct fsd_fs *fs, const char *key, int view)
{
	char k[1][RPC_KEY_LEN + 1];
	struct fsd_viewinfo vi;
	snprintf(k[0], sizeof(k[0]), "%s", key);
	if (fsd_viewcache_get(&fs->views, k, 1, &vi))
		return 0;
	return vi.state[view] == FSD_VS_YES;
}

/*
 * The link to a view of a value from inside a call directory: name is
 * "<stem>.<ext>" and stem (result, or a parameter) stands for value key vkey; up is
 * "../../" or "../../../". Returns 1 and fills target when the view applies.
 */
static int view_link(struct fsd_fs *fs, const char *vkey, int view, const char *up, char *target,
                     size_t len)
{
	if (!view || !view_applies(fs, vkey, view))
		return 0;
	snprintf(target, len, "%svalues/%s.%s", up, vkey, rpc_view_name(view));
	return 1;
}

/* Children of a call directory and its subdirectories, from the record. */
static void lookup_in_call(struct fsd_fs *fs, fuse_req_t req, struct fsd_inode *parent,
                           const char *name)
{
	struct child_spec sp = {.size = -1};
	char target[FSD_LINK_TARGET_MAX];
	int e = ensure_record(fs, parent);
	if (!e && parent->kind == FSD_CALL_META)
		e = metadata_refused(parent, fs);
	if (e) {
		reply_err(req, e);
		return;
	}
	fsd_itable_lock(&fs->it);
	struct fsd_record *rec = fsd_record_ref(parent->rec);
	sp.fresh_until_ms = parent->fresh_until_ms;
	fsd_itable_unlock(&fs->it);
	if (!rec) {
		reply_err(req, EIO); /* taken away meanwhile: the call changed just now */
		return;
	}
	sp.rec = rec;
	sp.key = rec->key;
	sp.mtime = rec->mtime;
	enum fsd_kind kind = FSD_ROOT;
	if (parent->kind == FSD_CALL) {
		for (size_t k = 0; k < rec->nfiles && kind == FSD_ROOT; k++)
			if (strcmp(rec->files[k].name, name) == 0)
				kind = FSD_CALL_FILE;
		if (strcmp(name, "arguments") == 0)
			kind = FSD_CALL_ARGS;
		else if (strcmp(name, "metadata") == 0)
			kind = FSD_CALL_META;
		else if (strcmp(name, "result") == 0 && rec->result[0]) {
			snprintf(target, sizeof(target), "../../values/%s", rec->result);
			sp.target = target;
			kind = FSD_LINK;
		} else if (kind == FSD_ROOT && rec->result[0]) {
			size_t stem;
			int view = fsd_view_split(name, &stem);
			if (stem == 6 && memcmp(name, "result", 6) == 0 &&
			    view_link(fs, rec->result, view, "../../", target, sizeof(target))) {
				sp.target = target;
				kind = FSD_LINK;
			}
		}
	} else if (parent->kind == FSD_CALL_ARGS) {
		for (size_t k = 0; k < rec->nargs; k++)
			if (strcmp(rec->args[k].name, name) == 0) {
				snprintf(target, sizeof(target), "../../../values/%s",
				         rec->args[k].value);
				sp.target = target;
				kind = FSD_LINK;
				break;
			}
		size_t stem;
		int view = kind == FSD_ROOT ? fsd_view_split(name, &stem) : 0;
		for (size_t k = 0; view && k < rec->nargs; k++)
			if (strlen(rec->args[k].name) == stem &&
			    memcmp(rec->args[k].name, name, stem) == 0) {
				if (view_link(fs, rec->args[k].value, view, "../../../", target,
				              sizeof(target))) {
					sp.target = target;
					kind = FSD_LINK;
				}
				break;
			}
	} else {
		for (size_t k = 0; k < rec->nmeta; k++)
			if (strcmp(rec->meta[k].name, name) == 0)
				kind = FSD_CALL_META_FILE;
	}
	if (kind == FSD_ROOT)
		reply_negative(fs, req);
	else
		reply_child(fs, req, parent, name, kind, &sp);
	fsd_record_unref(rec);
}

/* --- query/ (querydir.h) --- */

/* The conditions of a query directory: its path after "query/". */
static const char *query_conds(const struct fsd_inode *dir)
{
	return dir->path + strlen("query/");
}

/* The target of the link to call key inside query directory dir. */
static void query_link(const struct fsd_inode *dir, const char *key, char *buf, size_t len)
{
	size_t off = 0;
	/* one "../" per level of dir's path ("query/a=b": two) */
	for (const char *p = dir->path; *p && off + 3 < len; p++)
		if (*p == '/')
			off += (size_t)snprintf(buf + off, len - off, "../");
	snprintf(buf + off, len - off, "../calls/%.*s", RPC_KEY_LEN, key);
}

/* The template of query directory dir into sb; -EINVAL is logged with its reason. */
static int query_template(struct fsd_fs *fs, const struct fsd_inode *dir, msgpack_sbuffer *sb)
{
	char why[512] = "";
	int rc = fsd_query_template(fs->conn, query_conds(dir), sb, why, sizeof(why));
	if (rc == -EINVAL)
		fsd_log(FSD_LOG_WARN, "%s: lists nothing: %s", dir->path, why);
	return rc;
}

/* The listing of a query directory; an unusable query lists nothing (EINVAL). */
static int open_query(struct fsd_fs *fs, struct fsd_inode *dir, struct fsd_listing **out)
{
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	int rc = query_template(fs, dir, &sb);
	if (!rc)
		rc = fsd_listing_template(&fs->lists, sb.data, sb.size, dir->path, out);
	msgpack_sbuffer_destroy(&sb);
	return rc == -EINVAL ? 0 : rc;
}

/* Whether call key matches the query of dir: the first match from just before it. */
static int query_has(struct fsd_fs *fs, const struct fsd_inode *dir, const char *key)
{
	msgpack_sbuffer sb;
	struct fsd_result r;
	char before[RPC_KEY_LEN + 1];
	struct rpc_page page;
	struct rpc_page_entry first;
	msgpack_sbuffer_init(&sb);
	int rc = query_template(fs, dir, &sb);
	if (rc) {
		msgpack_sbuffer_destroy(&sb);
		return rc == -EINVAL ? 0 : rc;
	}
	int has_before = key_before(key, before);
	rc = fsd_rpc_query_template(fs->conn, sb.data, sb.size, has_before ? before : NULL, 1,
	                            false, &r, &page);
	msgpack_sbuffer_destroy(&sb);
	if (rc) {
		int e = r.err;
		log_failure(dir->path, &r);
		fsd_result_release(&r);
		return e == EINVAL ? 0 : -e;
	}
	int found = 0;
	if (page.n) {
		rpc_page_entry(&page, 0, &first);
		found = first.is_key && memcmp(first.key, key, RPC_KEY_LEN) == 0;
	}
	fsd_result_release(&r);
	return found;
}

static void lookup_query(struct fsd_fs *fs, fuse_req_t req, struct fsd_inode *parent,
                         const char *name)
{
	struct child_spec sp = {.size = -1};
	char target[FSD_QUERY_PATH_MAX + 80];
	if (fsd_query_cond_known(name)) {
		if (strlen(parent->path) + 1 + strlen(name) > FSD_QUERY_PATH_MAX) {
			fuse_reply_err(req, ENAMETOOLONG);
			return;
		}
		reply_child(fs, req, parent, name, FSD_QUERY_DIR, &sp);
		return;
	}
	if (parent->kind != FSD_QUERY_DIR || strlen(name) != RPC_KEY_LEN ||
	    !is_hex(name, RPC_KEY_LEN)) {
		reply_negative(fs, req);
		return;
	}
	int rc = query_has(fs, parent, name);
	if (rc < 0) {
		reply_err(req, -rc);
		return;
	}
	if (!rc) {
		reply_negative(fs, req);
		return;
	}
	query_link(parent, name, target, sizeof(target));
	sp.target = target;
	reply_child(fs, req, parent, name, FSD_LINK, &sp);
}

static void lookup_op(fuse_req_t req, fuse_ino_t pino, const char *name)
{
	struct fsd_fs *fs = fs_of(req);
	struct fsd_inode *parent = inode_of(fs, pino);
	struct child_spec sp = {.size = -1};
	if (!parent) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	switch (parent->kind) {
	case FSD_ROOT: {
		for (size_t k = 0; k < FS_NTOP; k++)
			if (strcmp(name, fs_top[k].name) == 0) {
				reply_child(fs, req, parent, name, fs_top[k].kind, &sp);
				return;
			}
		reply_negative(fs, req);
		return;
	}
	case FSD_CALLS:
		lookup_keyed(fs, req, parent, name, 1);
		return;
	case FSD_VALUES:
		lookup_keyed(fs, req, parent, name, 0);
		return;
	case FSD_DIGESTS:
		lookup_digest(fs, req, parent, name);
		return;
	case FSD_BYNAME:
		lookup_func(fs, req, parent, name);
		return;
	case FSD_FUNC:
		lookup_func_entry(fs, req, parent, name);
		return;
	case FSD_QUERY:
	case FSD_QUERY_DIR:
		lookup_query(fs, req, parent, name);
		return;
	case FSD_CALL:
	case FSD_CALL_ARGS:
	case FSD_CALL_META:
		lookup_in_call(fs, req, parent, name);
		return;
	case FSD_AMBIG: {
		fsd_itable_lock(&fs->it);
		const char *target = NULL;
		for (size_t k = 0; k < parent->ncands; k++)
			if (strcmp(parent->cands[k].key, name) == 0)
				target = parent->cands[k].target;
		char t[FSD_LINK_TARGET_MAX];
		if (target)
			snprintf(t, sizeof(t), "%s", target);
		fsd_itable_unlock(&fs->it);
		if (!target) {
			reply_negative(fs, req);
			return;
		}
		sp.target = t;
		reply_child(fs, req, parent, name, FSD_LINK, &sp);
		return;
	}
	default:
		fuse_reply_err(req, ENOTDIR);
	}
}

static void fs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	struct fsd_fs *fs = fs_of(req);
	fsd_itable_lock(&fs->it);
	fsd_itable_forget(&fs->it, ino, nlookup);
	fsd_itable_unlock(&fs->it);
	fuse_reply_none(req);
}

static void fs_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct fsd_fs *fs = fs_of(req);
	fsd_itable_lock(&fs->it);
	for (size_t k = 0; k < count; k++)
		fsd_itable_forget(&fs->it, forgets[k].ino, forgets[k].nlookup);
	fsd_itable_unlock(&fs->it);
	fuse_reply_none(req);
}

/* Learns a value's size when only the listing knew of it (size nil there). */
static void ensure_value_size(struct fsd_fs *fs, struct fsd_inode *i)
{
	fsd_itable_lock(&fs->it);
	int need = value_unsized(i);
	fsd_itable_unlock(&fs->it);
	if (!need)
		return;
	struct fsd_result r;
	struct rpc_stat_value st;
	int rc = fsd_rpc_stat_value(fs->conn, i->key, i->view, &r, &st);
	fsd_itable_lock(&fs->it);
	if (rc == 0) {
		i->size = st.size;
		i->have_size = 1;
	} else if (rc && r.error) {
		i->err = r.err;
	}
	fsd_itable_unlock(&fs->it);
	if (rc)
		log_failure(i->path, &r);
	fsd_result_release(&r);
}

static void fs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fsd_fs *fs = fs_of(req);
	struct fsd_inode *i = inode_of(fs, ino);
	struct stat st;
	if (!i) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	ensure_value_size(fs, i);
	fsd_itable_lock(&fs->it);
	/* A size that could not be learnt now (the request timed out, the link is
	 * down): an error, and the next getattr asks again; a size of 0 would be
	 * cached by the kernel and read as an empty value. A value the server cannot
	 * read (not a regular file, a bad signature) has no size either: its error. */
	int unknown = value_size_err(i);
	fill_attr(fs, i, &st);
	double t = inode_timeout(fs, i);
	fsd_itable_unlock(&fs->it);
	if (unknown)
		reply_err(req, unknown);
	else
		fuse_reply_attr(req, &st, t);
}

static int change_errno(struct fsd_fs *fs)
{
	return fs->o.read_only || fs->server_ro ? EROFS : EPERM;
}

static void fs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                       struct fuse_file_info *fi)
{
	fuse_reply_err(req, change_errno(fs_of(req)));
}

static void fs_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct fsd_fs *fs = fs_of(req);
	struct fsd_inode *i = inode_of(fs, ino);
	if (!i || i->kind != FSD_LINK || !i->target) {
		fuse_reply_err(req, i ? EINVAL : ESTALE);
		return;
	}
	fuse_reply_readlink(req, i->target);
}

static void fs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	fuse_reply_err(req, change_errno(fs_of(req)));
}

static void fs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	fuse_reply_err(req, change_errno(fs_of(req)));
}

static void fs_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	fuse_reply_err(req, change_errno(fs_of(req)));
}

static void fs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	fuse_reply_err(req, change_errno(fs_of(req)));
}

static void fs_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
                      const char *newname, unsigned int flags)
{
	fuse_reply_err(req, change_errno(fs_of(req)));
}

static void fs_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                      struct fuse_file_info *fi)
{
	fuse_reply_err(req, change_errno(fs_of(req)));
}

static void fs_unlink(fuse_req_t req, fuse_ino_t pino, const char *name)
{
	struct fsd_fs *fs = fs_of(req);
	struct fsd_inode *parent = inode_of(fs, pino);
	if (fs->o.read_only || fs->server_ro) {
		fuse_reply_err(req, EROFS);
		return;
	}
	if (parent && (parent->kind == FSD_CALL || parent->kind == FSD_CALL_ARGS ||
	               parent->kind == FSD_CALL_META)) {
		/* A view of the record: nothing to remove, so that rm -r reaches rmdir. */
		fuse_reply_err(req, 0);
		return;
	}
	fuse_reply_err(req, EPERM);
}

struct inval_job {
	struct fsd_fs *fs;
	char key[RPC_KEY_LEN + 1];
	char *func; /* the evicted call's function name, or NULL */
	uint64_t calls_ino;
	uint64_t *funcs;
	size_t nfuncs;
};

static void collect_func(struct fsd_inode *i, void *ctx)
{
	struct inval_job *j = ctx;
	uint64_t *f = realloc(j->funcs, (j->nfuncs + 1) * sizeof(*f));
	if (!f)
		return;
	j->funcs = f;
	j->funcs[j->nfuncs++] = i->ino;
}

/* A worker: the kernel cache invalidations of an eviction, outside the request's path. */
static void inval_main(void *arg)
{
	struct inval_job *j = arg;
	struct fuse_session *se = j->fs->se;
	if (se) {
		for (size_t k = 0; k < j->nfuncs; k++)
			fuse_lowlevel_notify_inval_entry(se, j->funcs[k], j->key, RPC_KEY_LEN);
		if (j->calls_ino)
			fuse_lowlevel_notify_inval_inode(se, j->calls_ino, -1, 0);
		/* by-name/<function> may have lost its last call. */
		if (j->func && j->fs->byname_ino)
			fuse_lowlevel_notify_inval_entry(se, j->fs->byname_ino, j->func,
			                                 strlen(j->func));
		if (j->fs->byname_ino)
			fuse_lowlevel_notify_inval_inode(se, j->fs->byname_ino, -1, 0);
	}
	free(j->func);
	free(j->funcs);
	free(j);
}

/* Records an eviction attempt of key; nonzero when the guard lets it through. */
static int evict_admitted(struct fsd_fs *fs, const char *key)
{
	struct evict_guard *g = &fs->guard;
	struct timespec ts;
	if (fs->o.evict_all)
		return 1;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	double now = (double)ts.tv_sec + ts.tv_nsec / 1e9;
	pthread_mutex_lock(&g->lock);
	double oldest = g->at[g->next];
	int ok = oldest == 0 || now - oldest >= FS_EVICT_WINDOW;
	int first_refusal = !ok && !g->refusing;
	g->at[g->next] = now;
	g->next = (g->next + 1) % FS_EVICT_BURST;
	g->refusing = !ok;
	pthread_mutex_unlock(&g->lock);
	if (first_refusal)
		fsd_log(FSD_LOG_WARN,
		        "refusing to evict call %s and the next ones (EBUSY): more than %d "
		        "evictions within %.0f s, as rm -r of calls/ makes; pause for %.0f s, or "
		        "mount with -o evict_all",
		        key, FS_EVICT_BURST, FS_EVICT_WINDOW, FS_EVICT_WINDOW);
	return ok;
}

static void rmdir_op(fuse_req_t req, fuse_ino_t pino, const char *name)
{
	struct fsd_fs *fs = fs_of(req);
	struct fsd_inode *parent = inode_of(fs, pino);
	if (fs->o.read_only || fs->server_ro) {
		fuse_reply_err(req, EROFS);
		return;
	}
	if (!parent) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	if (parent->kind == FSD_CALL &&
	    (strcmp(name, "arguments") == 0 || strcmp(name, "metadata") == 0)) {
		fuse_reply_err(req, 0);
		return;
	}
	if (parent->kind != FSD_CALLS) {
		fuse_reply_err(req, EPERM);
		return;
	}
	if (strlen(name) != RPC_KEY_LEN || !is_hex(name, RPC_KEY_LEN)) {
		fuse_reply_err(req, strlen(name) >= RPC_PREFIX_MIN && is_hex(name, strlen(name))
		                        ? ENOTDIR
		                        : ENOENT);
		return;
	}
	if (!evict_admitted(fs, name)) {
		fuse_reply_err(req, EBUSY);
		return;
	}
	struct fsd_result r;
	char *func = NULL;
	const char *fn;
	size_t fnl;
	/* The function's name, to refresh by-name/ afterwards (best effort). */
	int rc = fsd_rpc_load(fs->conn, name, &r);
	if (rc == 0 && rpc_obj_str(rpc_map_field(r.result, RPC_F_NAME), &fn, &fnl) == 0 &&
	    fsd_name_ok(fn, fnl))
		func = strndup(fn, fnl);
	if (rc && !r.error) {
		/* No answer (deadline, lost connection): evict would wait as long again,
		 * and the caller must not wait longer than the timeout. */
		log_failure(name, &r);
		reply_err(req, r.err);
		fsd_result_release(&r);
		return;
	}
	fsd_result_release(&r);
	rc = fsd_rpc_evict(fs->conn, name, &r);
	if (rc) {
		log_failure(name, &r);
		reply_err(req, r.err);
		fsd_result_release(&r);
		free(func);
		return;
	}
	fsd_result_release(&r);
	const struct fuse_ctx *who = fuse_req_ctx(req);
	fsd_log(FSD_LOG_INFO, "evicted call %s%s%s%s from the cache (uid %u, pid %d)", name,
	        func ? " (" : "", func ? func : "", func ? ")" : "", (unsigned)who->uid,
	        (int)who->pid);
	fsd_listings_drop(&fs->lists, "calls");
	fsd_listings_drop(&fs->lists, "names");
	struct inval_job *j = calloc(1, sizeof(*j));
	if (j) {
		j->fs = fs;
		j->func = func;
		func = NULL;
		memcpy(j->key, name, RPC_KEY_LEN + 1);
		j->calls_ino = pino;
		fsd_itable_lock(&fs->it);
		fsd_itable_each(&fs->it, FSD_FUNC, collect_func, j);
		fsd_itable_unlock(&fs->it);
	}
	fuse_reply_err(req, 0);
	if (j && fsd_workers_start(&fs->workers, inval_main, j) != 0) {
		free(j->func);
		free(j->funcs);
		free(j);
	}
	free(func);
}

/* --- files --- */

/*
 * Raises the kernel's readahead for this mount (best effort; root only). FUSE's INIT
 * can only lower it from the block layer's default of 128 KiB, which on a slow link
 * leaves a few hundred KiB in flight (10 MB/s at 50 ms). A file's readahead is fixed
 * when it is opened, after our open answer: done before answering the first open,
 * so that no reader starts with the small one. The device number comes from
 * mountinfo (a stat of the mount point would ask ourselves).
 */
static void raise_readahead(struct fsd_fs *fs)
{
	char line[4096], path[128];
	unsigned maj = 0, min = 0;
	int found = 0;

	pthread_mutex_lock(&fs->ra_lock);
	if (fs->ra_done || !fs->o.mountpoint || !fs->o.readahead_kb) {
		pthread_mutex_unlock(&fs->ra_lock);
		return;
	}
	fs->ra_done = 1;
	FILE *f = fopen("/proc/self/mountinfo", "re");
	while (f && fgets(line, sizeof(line), f)) {
		char mp[4096];
		unsigned a, b;
		if (sscanf(line, "%*u %*u %u:%u %*s %4095s", &a, &b, mp) == 3 &&
		    strcmp(mp, fs->o.mountpoint) == 0) {
			maj = a; /* the last match is the newest mount */
			min = b;
			found = 1;
		}
	}
	if (f)
		fclose(f);
	if (found) {
		snprintf(path, sizeof(path), "/sys/class/bdi/%u:%u/read_ahead_kb", maj, min);
		FILE *ra = fopen(path, "we");
		if (ra) {
			fprintf(ra, "%u\n", fs->o.readahead_kb);
			if (fclose(ra) != 0)
				fsd_log(FSD_LOG_DEBUG, "cannot raise the readahead ('%s')", path);
		} else {
			fsd_log(FSD_LOG_DEBUG, "cannot raise the readahead ('%s'): %s", path,
			        strerror(errno));
		}
	}
	pthread_mutex_unlock(&fs->ra_lock);
}

static void fs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fsd_fs *fs = fs_of(req);
	struct fsd_inode *i = inode_of(fs, ino);
	if (!i) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
		fuse_reply_err(req, change_errno(fs));
		return;
	}
	if (i->kind == FSD_VALUE) {
		ensure_value_size(fs, i);
		fsd_itable_lock(&fs->it);
		int err = i->err;
		fsd_itable_unlock(&fs->it);
		if (err) {
			fsd_log(FSD_LOG_WARN, "cannot read '%s': %s", i->path, strerror(err));
			reply_err(req, err);
			return;
		}
	} else if (i->kind != FSD_CALL_FILE && i->kind != FSD_CALL_META_FILE) {
		fuse_reply_err(req, EISDIR);
		return;
	} else {
		int err = metadata_refused(i, fs);
		if (err) {
			reply_err(req, err);
			return;
		}
	}
	raise_readahead(fs);
	/* A value never changes for its key: keep the kernel's pages. A record's
	 * files are small and may change when a call is recorded again. */
	fi->keep_cache = i->kind == FSD_VALUE;
	fi->noflush = 1;
	fuse_reply_open(req, fi);
}

/* The largest read the kernel sends (FUSE's max_pages of 256). */
#define FS_READ_MAX (1024 * 1024)

struct read_ctx {
	fuse_req_t req;
	struct fsd_fs *fs;
	char key[RPC_KEY_LEN + 1];
	int view;
};

static void read_done(void *arg, const struct fsd_reply *r)
{
	struct read_ctx *rc = arg;
	const void *p;
	size_t n;
	if (r->err) {
		fsd_log(FSD_LOG_WARN, "cannot read value %s%s%s: %s", rc->key, rc->view ? "." : "",
		        rc->view ? rpc_view_name(rc->view) : "",
		        r->message[0] ? r->message : strerror(r->err));
		reply_err(rc->req, r->err);
	} else if (r->in_pipe) {
		/* The bytes wait in a pipe: libfuse splices them on to the kernel (or reads
		 * them, when it cannot splice). */
		struct fuse_bufvec bv = FUSE_BUFVEC_INIT(r->data_len);
		bv.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_RETRY;
		bv.buf[0].fd = r->data_fd;
		fuse_reply_data(rc->req, &bv, 0);
	} else if (rpc_obj_bin(r->result, &p, &n) == 0) {
		fuse_reply_buf(rc->req, p, n);
	} else {
		fsd_log(FSD_LOG_WARN, "bad answer reading value %s", rc->key);
		fuse_reply_err(rc->req, EIO);
	}
	free(rc);
}

static void read_op(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
	struct fsd_fs *fs = fs_of(req);
	struct fsd_inode *i = inode_of(fs, ino);
	if (!i) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	if (off < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (i->kind != FSD_VALUE) {
		fsd_itable_lock(&fs->it);
		struct fsd_record *rec = fsd_record_ref(i->rec);
		const struct fsd_record_file *f = record_file(i);
		fsd_itable_unlock(&fs->it);
		if (!f) {
			fuse_reply_err(req, EIO);
		} else if ((size_t)off >= f->len) {
			fuse_reply_buf(req, NULL, 0);
		} else {
			size_t n = f->len - (size_t)off;
			fuse_reply_buf(req, f->data + off, n < size ? n : size);
		}
		fsd_record_unref(rec);
		return;
	}
	fsd_itable_lock(&fs->it);
	uint64_t vsize = i->size;
	int have = i->have_size;
	fsd_itable_unlock(&fs->it);
	if (have && (uint64_t)off >= vsize) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	if (have && size > vsize - (uint64_t)off)
		size = (size_t)(vsize - (uint64_t)off);
	if (size > fs->max_read) {
		/* Larger than one answer may hold (only with a tiny server max_read):
		 * gather the pieces here. */
		char *buf = malloc(size);
		size_t got = 0;
		int err = buf ? 0 : ENOMEM;
		while (!err && got < size) {
			struct fsd_result r;
			size_t want = size - got < fs->max_read ? size - got : fs->max_read;
			const void *p;
			size_t n;
			if (fsd_rpc_load_value(fs->conn, i->key, (uint64_t)off + got, want, i->view,
			                       &r)) {
				err = r.err;
			} else if (rpc_obj_bin(r.result, &p, &n) || n > want) {
				err = EIO;
			} else {
				memcpy(buf + got, p, n);
				got += n;
				if (n < want)
					size = got;
			}
			fsd_result_release(&r);
		}
		if (err)
			reply_err(req, err);
		else
			fuse_reply_buf(req, buf, got);
		free(buf);
		return;
	}
	struct read_ctx *rc = malloc(sizeof(*rc));
	if (!rc) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	rc->req = req;
	rc->fs = fs;
	memcpy(rc->key, i->key, RPC_KEY_LEN + 1);
	rc->view = i->view;
	fsd_rpc_load_value_data(fs->conn, i->key, (uint64_t)off, size, i->view, read_done, rc);
}

static void fs_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
                     struct fuse_file_info *fi)
{
	fuse_reply_err(req, change_errno(fs_of(req)));
}

/* --- directories --- */

/* An entry of arguments/: argument arg's link, or its link to view (0: the plain one). */
struct arg_entry {
	uint32_t arg;
	uint8_t view;
};

/* An open directory: its entries, from a listing, a record or the candidates. */
struct dirh {
	enum fsd_kind kind;
	struct fsd_inode *dir;
	struct fsd_listing *list;
	struct fsd_record *rec;
	uint64_t fresh_until_ms; /* of rec (inode.h invariant 5) */
	struct fsd_candidate *cands;
	size_t ncands;
	size_t n; /* entries when not from a listing, "." and ".." excluded */
	/* FSD_CALL: the views of the result listed after "result" */
	uint8_t rviews[RPC_VIEW__COUNT];
	size_t nrviews;
	/* FSD_CALL_ARGS: the entries, in order */
	struct arg_entry *ents;
};

static void dirh_free(struct dirh *d)
{
	if (!d)
		return;
	fsd_listing_unref(d->list);
	fsd_record_unref(d->rec);
	free(d->cands);
	free(d->ents);
	free(d);
}

/* Plans the view entries of a call directory or its arguments/ (d->rec set). */
static int plan_views(struct fsd_fs *fs, struct dirh *d)
{
	struct fsd_record *r = d->rec;
	if (d->kind == FSD_CALL) {
		if (!r->result[0])
			return 0;
		char k[1][RPC_KEY_LEN + 1];
		struct fsd_viewinfo vi;
		memcpy(k[0], r->result, RPC_KEY_LEN + 1);
		if (fsd_viewcache_get(&fs->views, k, 1, &vi))
			return -ENOMEM;
		for (int v = 1; v < RPC_VIEW__COUNT; v++)
			if (vi.state[v] == FSD_VS_YES)
				d->rviews[d->nrviews++] = (uint8_t)v;
		d->n += d->nrviews;
		return 0;
	}
	size_t na = r->nargs;
	char(*keys)[RPC_KEY_LEN + 1] = calloc(na ? na : 1, sizeof(*keys));
	struct fsd_viewinfo *vi = calloc(na ? na : 1, sizeof(*vi));
	d->ents = calloc(na * RPC_VIEW__COUNT + 1, sizeof(*d->ents));
	int rc = -ENOMEM;
	if (!keys || !vi || !d->ents)
		goto out;
	for (size_t a = 0; a < na; a++)
		memcpy(keys[a], r->args[a].value, RPC_KEY_LEN + 1);
	if (fsd_viewcache_get(&fs->views, keys, na, vi))
		goto out;
	d->n = 0;
	for (size_t a = 0; a < na; a++) {
		d->ents[d->n].arg = (uint32_t)a;
		d->ents[d->n++].view = 0;
		size_t len = strlen(r->args[a].name);
		for (int v = 1; v < RPC_VIEW__COUNT; v++)
			if (vi[a].state[v] == FSD_VS_YES &&
			    len + 1 + strlen(rpc_view_name(v)) <= 255) {
				d->ents[d->n].arg = (uint32_t)a;
				d->ents[d->n++].view = (uint8_t)v;
			}
	}
	rc = 0;
out:
	free(keys);
	free(vi);
	return rc;
}

static void fs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fsd_fs *fs = fs_of(req);
	struct fsd_inode *i = inode_of(fs, ino);
	struct dirh *d;
	int rc = 0;
	if (!i) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	if (!is_dir_kind(i->kind)) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	d = calloc(1, sizeof(*d));
	if (!d) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	d->kind = i->kind;
	d->dir = i;
	switch (i->kind) {
	case FSD_ROOT:
		d->n = FS_NTOP;
		break;
	case FSD_QUERY:
		d->n = 0; /* conditions are found by lookup only */
		break;
	case FSD_QUERY_DIR:
		rc = open_query(fs, i, &d->list);
		break;
	case FSD_CALLS:
		rc = fsd_listings_get(&fs->lists, "calls", &d->list);
		break;
	case FSD_VALUES:
		rc = fsd_listings_get(&fs->lists, "values", &d->list);
		break;
	case FSD_BYNAME:
		rc = fsd_listings_get(&fs->lists, "names", &d->list);
		break;
	case FSD_FUNC:
		rc = fsd_listing_query(&fs->lists, i->name, &d->list);
		break;
	case FSD_CALL:
	case FSD_CALL_ARGS:
	case FSD_CALL_META: {
		int e = ensure_record(fs, i);
		if (!e && i->kind == FSD_CALL_META)
			e = metadata_refused(i, fs);
		if (e) {
			rc = -e;
			break;
		}
		fsd_itable_lock(&fs->it);
		d->rec = fsd_record_ref(i->rec);
		d->fresh_until_ms = i->fresh_until_ms;
		fsd_itable_unlock(&fs->it);
		if (!d->rec) {
			rc = -EIO; /* taken away meanwhile: the call changed just now */
			break;
		}
		if (i->kind == FSD_CALL)
			d->n = d->rec->nfiles + 2 + (d->rec->result[0] ? 1 : 0);
		else if (i->kind == FSD_CALL_ARGS)
			d->n = d->rec->nargs;
		else
			d->n = d->rec->nmeta;
		if (i->kind != FSD_CALL_META)
			rc = plan_views(fs, d);
		break;
	}
	case FSD_AMBIG:
		fsd_itable_lock(&fs->it);
		d->cands = calloc(i->ncands ? i->ncands : 1, sizeof(*d->cands));
		if (d->cands) {
			memcpy(d->cands, i->cands, i->ncands * sizeof(*d->cands));
			d->ncands = d->n = i->ncands;
		} else {
			rc = -ENOMEM;
		}
		fsd_itable_unlock(&fs->it);
		break;
	default:
		break;
	}
	if (rc) {
		dirh_free(d);
		reply_err(req, -rc);
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)d;
	fuse_reply_open(req, fi);
}

/*
 * Describes entry k of d: name (into nbuf, a static string, the record or it), kind
 * and the child's parameters (a link's target into buf). Returns NULL past the end,
 * with *rc 1, or on a failed listing, with *rc -errno.
 */
static const char *dir_entry(struct fsd_fs *fs, struct dirh *d, size_t k, char *buf, size_t buflen,
                             char *nbuf, size_t nbuflen, enum fsd_kind *kind, struct child_spec *sp,
                             struct fsd_list_item *it, int *rc)
{
	memset(sp, 0, sizeof(*sp));
	sp->size = -1;
	*rc = 0;
	if (d->list) {
		*rc = fsd_listing_item(d->list, k, it);
		if (*rc)
			return NULL;
	} else if (k >= d->n) {
		*rc = 1;
		return NULL;
	}
	switch (d->kind) {
	case FSD_ROOT:
		*kind = fs_top[k].kind;
		return fs_top[k].name;
	case FSD_CALLS:
	case FSD_VALUES:
		*kind = d->kind == FSD_CALLS ? FSD_CALL : FSD_VALUE;
		sp->key = it->name;
		sp->mtime = it->mtime;
		sp->size = it->size;
		if (d->kind == FSD_CALLS) {
			sp->listed = 1;
			sp->stamp = it->stamp;
			sp->fresh_until_ms = fresh_after(fs, it->fetched_ms);
		}
		return it->name;
	case FSD_BYNAME:
		*kind = FSD_FUNC;
		return it->name;
	case FSD_FUNC:
		*kind = FSD_LINK;
		snprintf(buf, buflen, "../../calls/%.*s", RPC_KEY_LEN, it->name);
		sp->target = buf;
		return it->name;
	case FSD_QUERY_DIR:
		*kind = FSD_LINK;
		query_link(d->dir, it->name, buf, buflen);
		sp->target = buf;
		return it->name;
	case FSD_CALL: {
		struct fsd_record *r = d->rec;
		sp->rec = r;
		sp->fresh_until_ms = d->fresh_until_ms;
		sp->key = r->key;
		sp->mtime = r->mtime;
		if (k < r->nfiles) {
			*kind = FSD_CALL_FILE;
			return r->files[k].name;
		}
		k -= r->nfiles;
		if (k == 0) {
			*kind = FSD_CALL_ARGS;
			return "arguments";
		}
		if (k == 1) {
			*kind = FSD_CALL_META;
			return "metadata";
		}
		*kind = FSD_LINK;
		sp->target = buf;
		if (k == 2) {
			snprintf(buf, buflen, "../../values/%s", r->result);
			return "result";
		}
		const char *ext = rpc_view_name(d->rviews[k - 3]);
		snprintf(buf, buflen, "../../values/%s.%s", r->result, ext);
		snprintf(nbuf, nbuflen, "result.%s", ext);
		return nbuf;
	}
	case FSD_CALL_ARGS: {
		const struct fsd_record_arg *a = &d->rec->args[d->ents[k].arg];
		int v = d->ents[k].view;
		sp->rec = d->rec;
		sp->fresh_until_ms = d->fresh_until_ms;
		sp->key = d->rec->key;
		*kind = FSD_LINK;
		sp->target = buf;
		if (!v) {
			snprintf(buf, buflen, "../../../values/%s", a->value);
			return a->name;
		}
		snprintf(buf, buflen, "../../../values/%s.%s", a->value, rpc_view_name(v));
		snprintf(nbuf, nbuflen, "%s.%s", a->name, rpc_view_name(v));
		return nbuf;
	}
	case FSD_CALL_META:
		sp->rec = d->rec;
		sp->fresh_until_ms = d->fresh_until_ms;
		sp->key = d->rec->key;
		sp->mtime = d->rec->mtime;
		*kind = FSD_CALL_META_FILE;
		return d->rec->meta[k].name;
	case FSD_AMBIG:
		*kind = FSD_LINK;
		sp->target = d->cands[k].target;
		return d->cands[k].key;
	default:
		return NULL;
	}
}

/* The inode number of the directory holding path (the root for top-level names). */
static fuse_ino_t parent_ino(const char *path)
{
	const char *slash = strrchr(path, '/');
	char parent[600];

	if (!slash)
		return FUSE_ROOT_ID;
	snprintf(parent, sizeof(parent), "%.*s", (int)(slash - path), path);
	return fsd_path_hash(parent);
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi, int plus)
{
	struct fsd_fs *fs = fs_of(req);
	struct dirh *d = (struct dirh *)(uintptr_t)fi->fh;
	char *buf;
	size_t used = 0;

	if (size > 1024 * 1024)
		size = 1024 * 1024;
	buf = malloc(size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	/* Offsets: 1 is ".", 2 is "..", 3 + k is entry k. */
	int failed = 0;
	for (size_t pos = (size_t)(off < 0 ? 0 : off);; pos++) {
		struct stat st;
		size_t need;
		memset(&st, 0, sizeof(st));
		if (pos < 2) {
			/* "." and "..": a zero inode number would make readdir(3) skip
			 * them, so give the numbers a lookup of them would give. */
			const char *nm = pos == 0 ? "." : "..";
			st.st_mode = S_IFDIR;
			st.st_ino = pos == 0 ? ino : parent_ino(d->dir->path);
			if (plus) {
				struct fuse_entry_param e;
				memset(&e, 0, sizeof(e));
				e.attr.st_mode = S_IFDIR;
				e.attr.st_ino = st.st_ino;
				need = fuse_add_direntry_plus(req, buf + used, size - used, nm, &e,
				                              (off_t)pos + 1);
			} else {
				need = fuse_add_direntry(req, buf + used, size - used, nm, &st,
				                         (off_t)pos + 1);
			}
			if (need > size - used)
				break;
			used += need;
			continue;
		}
		char target[256], nbuf[300]; /* target: a link out of a deep query/ directory */
		enum fsd_kind kind;
		struct child_spec sp;
		struct fsd_list_item it;
		int rc;
		const char *name = dir_entry(fs, d, pos - 2, target, sizeof(target), nbuf,
		                             sizeof(nbuf), &kind, &sp, &it, &rc);
		if (!name) {
			if (rc < 0 && used == 0)
				failed = -rc;
			break;
		}
		if (!plus) {
			/* Same number as a lookup would give, in the common case of no
			 * collision. */
			char path[600];
			snprintf(path, sizeof(path), "%s%s%s", d->dir->path,
			         d->dir->path[0] ? "/" : "", name);
			st.st_ino = fsd_path_hash(path);
			st.st_mode = is_dir_kind(kind)  ? S_IFDIR
			             : kind == FSD_LINK ? S_IFLNK
			                                : S_IFREG;
			need = fuse_add_direntry(req, buf + used, size - used, name, &st,
			                         (off_t)pos + 1);
			if (need > size - used)
				break;
			used += need;
			continue;
		}
		struct fuse_entry_param e;
		fsd_itable_lock(&fs->it);
		struct fsd_inode *i = make_child(fs, d->dir, name, kind, &sp, 0);
		if (!i) {
			fsd_itable_unlock(&fs->it);
			break;
		}
		fill_entry(fs, i, &e);
		need =
		    fuse_add_direntry_plus(req, buf + used, size - used, name, &e, (off_t)pos + 1);
		if (need > size - used) {
			if (i->nlookup == 0)
				fsd_itable_forget(&fs->it, i->ino, 0);
			fsd_itable_unlock(&fs->it);
			break;
		}
		i->nlookup++;
		fsd_itable_unlock(&fs->it);
		used += need;
	}
	if (failed)
		reply_err(req, failed);
	else
		fuse_reply_buf(req, buf, used);
	free(buf);
}

static void fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, 0);
}

static void fs_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                           struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, 1);
}

static void fs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	dirh_free((struct dirh *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

static void fs_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv;
	memset(&sv, 0, sizeof(sv));
	sv.f_bsize = 4096;
	sv.f_frsize = 4096;
	sv.f_namemax = 255;
	if (fs_of(req)->o.read_only || fs_of(req)->server_ro)
		sv.f_flag = ST_RDONLY;
	fsd_statfs_fill(&fs_of(req)->statfs, fs_of(req)->conn, &sv);
	fuse_reply_statfs(req, &sv);
}

static void fs_init(void *userdata, struct fuse_conn_info *conn)
{
	struct fsd_fs *fs = userdata;
	if (conn->capable & FUSE_CAP_READDIRPLUS) {
		conn->want |= FUSE_CAP_READDIRPLUS;
		conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
	}
	if (conn->capable & FUSE_CAP_ASYNC_READ)
		conn->want |= FUSE_CAP_ASYNC_READ;
	if (conn->capable & FUSE_CAP_CACHE_SYMLINKS)
		conn->want |= FUSE_CAP_CACHE_SYMLINKS;
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
	/*
	 * Values reach the kernel by splice when the transport is a pipe (local server):
	 * one copy fewer. A kernel read is at most 1 MiB (max_pages 256, from max_write);
	 * a spliced reply must fit in a pipe with room to spare, so without the privilege
	 * to make pipes larger than pipe-max-size (1 MiB) reads are made smaller.
	 */
	if ((conn->capable & FUSE_CAP_SPLICE_WRITE) && !fs->o.no_splice) {
		size_t max = fs->max_read < FS_READ_MAX ? fs->max_read : FS_READ_MAX;
		long got = fsd_conn_set_splice(fs->conn, max);
		if (got > 0) {
			conn->want |= FUSE_CAP_SPLICE_WRITE;
			if ((size_t)got < conn->max_write)
				conn->max_write = (unsigned)got;
		} else {
			fsd_log(FSD_LOG_DEBUG, "values are copied: no pipe large enough to splice");
		}
	}
	/* Values never change: no need to drop pages when mtime is seen again. */
	conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
	conn->max_background = 64;
	conn->congestion_threshold = 48;
}

/*
 * The operations that may send several requests in a row (a lookup in digests/:
 * expand, then where the key lives; rmdir: load, then evict; a read larger than the
 * server's max_read, in pieces) answer within one deadline (fsd_conn_op_begin), not
 * one per request. Listings, which progress page by page, keep one per page.
 */
static void fs_lookup(fuse_req_t req, fuse_ino_t pino, const char *name)
{
	fsd_conn_op_begin(fs_of(req)->conn);
	lookup_op(req, pino, name);
	fsd_conn_op_end();
}

static void fs_rmdir(fuse_req_t req, fuse_ino_t pino, const char *name)
{
	fsd_conn_op_begin(fs_of(req)->conn);
	rmdir_op(req, pino, name);
	fsd_conn_op_end();
}

static void fs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
	fsd_conn_op_begin(fs_of(req)->conn);
	read_op(req, ino, size, off, fi);
	fsd_conn_op_end();
}

static const struct fuse_lowlevel_ops fs_ops = {
    .init = fs_init,
    .lookup = fs_lookup,
    .forget = fs_forget,
    .forget_multi = fs_forget_multi,
    .getattr = fs_getattr,
    .setattr = fs_setattr,
    .readlink = fs_readlink,
    .mknod = fs_mknod,
    .mkdir = fs_mkdir,
    .unlink = fs_unlink,
    .rmdir = fs_rmdir,
    .symlink = fs_symlink,
    .rename = fs_rename,
    .link = fs_link,
    .open = fs_open,
    .read = fs_read,
    .write = fs_write,
    .opendir = fs_opendir,
    .readdir = fs_readdir,
    .readdirplus = fs_readdirplus,
    .releasedir = fs_releasedir,
    .statfs = fs_statfs,
    .create = fs_create,
};

const struct fuse_lowlevel_ops *fsd_fs_ops(void)
{
	return &fs_ops;
}

struct fsd_fs *fsd_fs_new(struct fsd_conn *conn, const struct fsd_fs_options *o)
{
	struct fsd_fs *fs = calloc(1, sizeof(*fs));
	if (!fs)
		return NULL;
	if (fsd_itable_init(&fs->it)) {
		free(fs);
		return NULL;
	}
	fs->conn = conn;
	fs->o = *o;
	pthread_mutex_init(&fs->ra_lock, NULL);
	pthread_mutex_init(&fs->guard.lock, NULL);
	fsd_statfs_cache_init(&fs->statfs);
	if (fs->o.cache_timeout < 0)
		fs->o.cache_timeout = 0;
	if (fs->o.negative_timeout < 0)
		fs->o.negative_timeout = 0;
	if (fs->o.value_timeout <= 0)
		fs->o.value_timeout = 86400;
	const struct fsd_server_info *si = fsd_conn_server(conn);
	fs->server_ro = si->read_only;
	fs->evict_allowed = !fs->o.read_only && !si->read_only;
	fs->page = si->page_max ? si->page_max : RPC_PAGE_MAX;
	fs->max_read = si->max_read ? si->max_read : 1024 * 1024;
	fs->uid = getuid();
	fs->gid = getgid();
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	fs->start_time = (double)ts.tv_sec + ts.tv_nsec / 1e9;
	if (fsd_viewcache_init(&fs->views, conn)) {
		fsd_itable_release(&fs->it);
		free(fs);
		return NULL;
	}
	fsd_workers_init(&fs->workers);
	fsd_listings_init(&fs->lists, conn, &fs->workers, fs->page, fs->o.cache_timeout);
	/* The top-level directories stay for the mount's life. */
	fsd_itable_lock(&fs->it);
	for (size_t k = 0; k < FS_NTOP; k++) {
		struct fsd_inode *i = fsd_itable_child(&fs->it, fs->it.root, fs_top[k].name,
		                                       fs_top[k].kind, NULL, NULL, 0);
		if (i)
			i->permanent = 1;
		if (i && fs_top[k].kind == FSD_BYNAME)
			fs->byname_ino = i->ino;
	}
	fsd_itable_unlock(&fs->it);
	return fs;
}

int fsd_fs_quiesce(struct fsd_fs *fs)
{
	/* After the unmount and the connection's close, invalidations (a few writes to
	 * /dev/fuse) and listing fillers (requests) fail at once. */
	return !fs || fsd_workers_join(&fs->workers, FSD_FS_QUIESCE_MS) == 0;
}

void fsd_fs_free(struct fsd_fs *fs)
{
	if (!fs)
		return;
	fsd_listings_release(&fs->lists);
	fsd_workers_release(&fs->workers);
	fsd_viewcache_release(&fs->views);
	fsd_itable_release(&fs->it);
	pthread_mutex_destroy(&fs->ra_lock);
	pthread_mutex_destroy(&fs->guard.lock);
	fsd_statfs_cache_release(&fs->statfs);
	free(fs);
}

void fsd_fs_set_session(struct fsd_fs *fs, struct fuse_session *se)
{
	fs->se = se;
}

int fsd_fs_check(struct fsd_fs *fs, char *err, size_t errlen)
{
	struct fsd_result r;
	struct rpc_page page;
	int rc = fsd_rpc_list(fs->conn, RPC_KIND_CALLS, NULL, 1, false, &r, &page);
	if (rc)
		snprintf(err, errlen, "cannot list the calls of the cache: %s", r.message);
	fsd_result_release(&r);
	return rc;
}

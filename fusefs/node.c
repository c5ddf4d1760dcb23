/*
 * node.c: what every operation of the filesystem builds on (fs_impl.h): the top
 * directories, an inode's attributes and cache timeouts, loading a call record once,
 * replies (errors the kernel takes, negative entries, a new child with its lookup
 * count), and the request's filesystem and inode.
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

#include "callrec.h"
#include "clock.h"
#include "fs_impl.h"
#include "log.h"
#include "msg.h"
#include "querydir.h"
#include "rpc.h"

/* The top-level directories, in listing order. */
const struct fsd_fs_topdir fsd_fs_top[FS_NTOP] = {
    {"calls", FSD_CALLS},     {"values", FSD_VALUES}, {"digests", FSD_DIGESTS},
    {"by-name", FSD_BYNAME}, {"query", FSD_QUERY},
};

/* --- attributes --- */

/* cache_timeout after t (clock.h ms): until when what was current at t is. */
uint64_t fsd_fs_fresh_after(const struct fsd_fs *fs, uint64_t t)
{
	return t + (uint64_t)(fs->o.cache_timeout * 1000);
}


int fsd_fs_is_dir_kind(enum fsd_kind k)
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
	case FSD_RECDIR:
		return 1;
	default:
		return 0;
	}
}

int fsd_fs_inside_call(enum fsd_kind k)
{
	return k == FSD_CALL || k == FSD_CALL_ARGS || k == FSD_CALL_META;
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

/* The file of rec a call file inode of that kind and name stands for, or NULL. */
static const struct fsd_record_file *record_file(const struct fsd_record *rec, enum fsd_kind kind,
                                                 const char *name)
{
	if (!rec)
		return NULL;
	if (kind == FSD_CALL_FILE) {
		for (size_t k = 0; k < rec->nfiles; k++)
			if (strcmp(rec->files[k].name, name) == 0)
				return &rec->files[k];
	} else if (kind == FSD_CALL_META_FILE) {
		for (size_t k = 0; k < rec->nmeta; k++)
			if (strcmp(rec->meta[k].name, name) == 0)
				return &rec->meta[k];
	}
	return NULL;
}

const struct fsd_record_file *fsd_fs_record_file(const struct fsd_record *rec,
                                                 const struct fsd_inode *i)
{
	return record_file(rec, i->kind, i->name);
}

int fsd_fs_in_call_folder(const struct fsd_inode *i)
{
	const char *p = i->path;
	return strncmp(p, "calls/", 6) == 0 && strlen(p) > 6 + RPC_KEY_LEN &&
	       p[6 + RPC_KEY_LEN] == '/' && fsd_fs_is_hex(p + 6, RPC_KEY_LEN);
}

int fsd_fs_is_record_file(enum fsd_kind k)
{
	return k == FSD_CALL_FILE || k == FSD_CALL_META_FILE;
}

int fsd_fs_file_record(struct fsd_fs *fs, struct fsd_inode *i, struct fsd_record **rec)
{
	*rec = NULL;
	const char *slash = strrchr(i->path, '/');
	if (!fsd_fs_is_record_file(i->kind) || !slash)
		return EIO;
	char dir[FSD_CALL_DIR_PATH_MAX];
	size_t n = (size_t)(slash - i->path);
	if (n >= sizeof(dir))
		return EIO;
	memcpy(dir, i->path, n);
	dir[n] = 0;
	fsd_itable_lock(&fs->it);
	struct fsd_inode *d = fsd_itable_find_path(&fs->it, dir);
	fsd_itable_unlock(&fs->it);
	/* The kernel holds a file's directory while it holds the file (its dentry's
	 * parent), so d stays while i does. */
	if (!d || !fsd_fs_inside_call(d->kind))
		return ESTALE;
	uint64_t fresh;
	return fsd_fs_current_record(fs, d, rec, &fresh);
}

/*
 * EIO, logged with the server's reason, when i is a part of a call that is rendered
 * from metadata the server cannot send (call.json, metadata/ and what is in it); 0
 * otherwise. rec is i's record (or its directory's, for a file).
 */
int fsd_fs_metadata_refused(const struct fsd_inode *i, const struct fsd_record *rec)
{
	const struct fsd_record_file *f =
	    i->kind == FSD_CALL_FILE ? fsd_fs_record_file(rec, i) : NULL;
	int refused = rec && rec->meta_error &&
	              (i->kind == FSD_CALL_META || i->kind == FSD_CALL_META_FILE ||
	               (f && f == &rec->files[0])); /* files[0] is call.json */
	if (refused)
		fsd_log(FSD_LOG_WARN, "cannot read '%s': %s", i->path, rec->meta_error);
	return refused ? EIO : 0;
}

/* Fills st from the inode. Caller holds the table lock. */
void fsd_fs_fill_attr(struct fsd_fs *fs, struct fsd_inode *i, struct stat *st)
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
	if (fsd_fs_is_dir_kind(i->kind)) {
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
		st->st_size = (off_t)i->size; /* a call's file: from its record, when looked up */
	}
	st->st_blocks = (st->st_size + 511) / 512;
}

double fsd_fs_kind_timeout(struct fsd_fs *fs, enum fsd_kind k)
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
	case FSD_RECDIR:
		return fs->o.value_timeout;
	default:
		return fs->o.cache_timeout;
	}
}

/* How long the kernel may keep i's entry and attributes: what remains of its
 * freshness for a call's inodes (inode.h invariant 5), else by kind. Lock held. */
double fsd_fs_inode_timeout(struct fsd_fs *fs, const struct fsd_inode *i)
{
	if (!i->fresh_until_ms)
		return fsd_fs_kind_timeout(fs, i->kind);
	uint64_t now = (uint64_t)fsd_now_ms();
	return i->fresh_until_ms > now ? (double)(i->fresh_until_ms - now) / 1000.0 : 0;
}

/* A value whose size is not known yet (the listing left it out). Lock held. */
int fsd_fs_value_unsized(const struct fsd_inode *i)
{
	return i->kind == FSD_VALUE && !i->have_size && !i->err;
}

/*
 * What stat of a value answers while its size is not known: EIO while it has not
 * been learnt (yet), the server's error when it cannot be (a file that is not a
 * regular file, a bad signature); 0 once it is known. Lock held.
 */
int fsd_fs_value_size_err(const struct fsd_inode *i)
{
	if (i->kind != FSD_VALUE || i->have_size)
		return 0;
	return i->err ? i->err : EIO;
}

/* Fills an entry for i. Lock held. */
void fsd_fs_fill_entry(struct fsd_fs *fs, struct fsd_inode *i, struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->ino = i->ino;
	e->generation = 1;
	fsd_fs_fill_attr(fs, i, &e->attr);
	e->attr_timeout = fsd_fs_inode_timeout(fs, i);
	e->entry_timeout = e->attr_timeout;
	/* A value whose size the listing did not know (a large compressed one): the
	 * kernel must ask getattr, which learns it (or fails), before it believes a
	 * size. */
	if (fsd_fs_value_size_err(i))
		e->attr_timeout = 0;
}

/* --- records --- */

/* Logs a server error with its candidates. */
void fsd_fs_log_failure(const char *what, const struct fsd_result *r)
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

/* Notes that i was given a record, dropping the oldest kept one's. Lock held. */
static void keep_record(struct fsd_fs *fs, struct fsd_inode *i)
{
	uint64_t old = fs->kept[fs->kept_next];
	fs->kept[fs->kept_next] = i->ino;
	fs->kept_next = (fs->kept_next + 1) % FS_RECORDS_KEPT;
	if (!old || old == i->ino)
		return;
	struct fsd_inode *o = fsd_itable_get_locked(&fs->it, old);
	if (o && o->rec && fsd_fs_inside_call(o->kind)) {
		drop_record(o);
		o->fresh_until_ms = 1; /* past: loaded again when asked for */
	}
}

/*
 * Makes sure a call directory inode (or its arguments/ or metadata/) has a current
 * record (invariant 4): the one it has while fresh, or confirmed by a fresh listing,
 * else loaded again (kept when its stamp is the same). Returns 0, or the positive
 * errno reading it gives (remembered for cache_timeout when the server said so:
 * EBADMSG, CORRUPT...; ENOENT when the call is gone).
 */
int fsd_fs_ensure_record(struct fsd_fs *fs, struct fsd_inode *i)
{
	uint64_t now = (uint64_t)fsd_now_ms();
	fsd_itable_lock(&fs->it);
	int have = i->rec != NULL, err = i->err, fresh = now < i->fresh_until_ms;
	uint64_t stamp = have ? i->rec->stamp : 0;
	fsd_itable_unlock(&fs->it);
	if (fresh && (have || err))
		return have ? 0 : err;
	struct fsd_list_item it;
	if (have && stamp && fsd_listings_find(&fs->lists, "calls", i->key, &it) >= 0 &&
	    it.stamp == stamp && now < fsd_fs_fresh_after(fs, it.fetched_ms)) {
		fsd_itable_lock(&fs->it);
		if (i->rec && i->rec->stamp == stamp &&
		    i->fresh_until_ms < fsd_fs_fresh_after(fs, it.fetched_ms))
			i->fresh_until_ms = fsd_fs_fresh_after(fs, it.fetched_ms);
		fsd_itable_unlock(&fs->it);
		return 0;
	}
	struct fsd_result r;
	uint64_t loaded_ms;
	struct fsd_record *rec = i->kind == FSD_CALL ? fsd_prefetch_take(&fs->prefetch, i->key,
	                                                                 &loaded_ms)
	                                             : NULL;
	if (rec) {
		/* current since its load was sent (prefetch.h invariant 1) */
		now = loaded_ms;
		goto loaded;
	}
	int rc = fsd_rpc_load(fs->conn, i->key, &r);
	if (rc) {
		fsd_fs_log_failure(i->path, &r);
		int e = r.err == ETIMEDOUT ? EIO : r.err;
		if (r.error) {
			/* The server's word: the call is gone or unreadable now. A failure of
			 * our own (no answer) leaves the record as it was, to be asked again. */
			fsd_itable_lock(&fs->it);
			drop_record(i);
			i->err = e == ENOENT ? 0 : e;
			i->fresh_until_ms = fsd_fs_fresh_after(fs, now);
			fsd_itable_unlock(&fs->it);
		}
		fsd_result_release(&r);
		return e;
	}
	rc = fsd_record_build(r.result, &rec);
	fsd_result_release(&r);
	if (rc) {
		fsd_log(FSD_LOG_WARN, "cannot render the record '%s': %s", i->key, strerror(-rc));
		return rc == -ENOMEM ? ENOMEM : EIO;
	}
loaded:
	fsd_itable_lock(&fs->it);
	if (!i->rec || !rec->stamp || i->rec->stamp != rec->stamp) {
		/* new, or recorded again: the files of the call change with it */
		drop_record(i);
		i->rec = rec;
		i->mtime = rec->mtime;
		rec = NULL;
		keep_record(fs, i);
	}
	i->err = 0;
	i->fresh_until_ms = fsd_fs_fresh_after(fs, now);
	fsd_itable_unlock(&fs->it);
	fsd_record_unref(rec);
	return 0;
}

int fsd_fs_current_record(struct fsd_fs *fs, struct fsd_inode *i, struct fsd_record **rec,
                          uint64_t *fresh_until_ms)
{
	for (int tries = 0; tries < 3; tries++) {
		int e = fsd_fs_ensure_record(fs, i);
		if (e)
			return e;
		fsd_itable_lock(&fs->it);
		*rec = fsd_record_ref(i->rec);
		*fresh_until_ms = i->fresh_until_ms;
		fsd_itable_unlock(&fs->it);
		if (*rec)
			return 0;
	}
	return EIO;
}

/* --- replies --- */

/* Every error reaches the kernel as a number it takes (1 to 511; else the request
 * would never complete) and never ENOSYS, which would make it stop sending the
 * operation for good (open, opendir...): both as EIO. */
int fsd_fs_reply_err(fuse_req_t req, int err)
{
	if (err == ETIMEDOUT || err == ENOSYS || err <= 0 || err >= 512)
		err = EIO;
	return fuse_reply_err(req, err);
}

void fsd_fs_reply_negative(struct fsd_fs *fs, fuse_req_t req)
{
	struct fuse_entry_param e;
	memset(&e, 0, sizeof(e));
	e.entry_timeout = fs->o.negative_timeout;
	fuse_reply_entry(req, &e);
}


/* --- the call inodes the kernel holds (fs.c invariant 8) --- */

/* A worker: asks the kernel to let go of the queued inodes' entries, until none is
 * left. Each is looked up again here: one forgotten meanwhile is skipped. */
static void letgo_main(void *arg)
{
	struct fsd_fs *fs = arg;
	char name[256];
	fsd_itable_lock(&fs->it);
	while (fs->letgo_len) {
		uint64_t ino = fs->letgo[fs->letgo_head];
		fs->letgo_head = (fs->letgo_head + 1) % FS_LETGO_QUEUED;
		fs->letgo_len--;
		struct fsd_inode *i = fsd_itable_get_locked(&fs->it, ino);
		const char *slash = i ? strrchr(i->path, '/') : NULL;
		char dir[FSD_CALL_DIR_PATH_MAX];
		size_t n = slash ? (size_t)(slash - i->path) : 0;
		if (!slash || n >= sizeof(dir) || strlen(i->name) >= sizeof(name))
			continue;
		memcpy(dir, i->path, n);
		dir[n] = 0;
		struct fsd_inode *d = fsd_itable_find_path(&fs->it, dir);
		if (!d)
			continue;
		uint64_t dino = d->ino;
		size_t nl = strlen(i->name);
		memcpy(name, i->name, nl + 1);
		fsd_itable_unlock(&fs->it);
		/* -ENOENT when the kernel has let go of it already. */
		if (fs->se)
			fuse_lowlevel_notify_inval_entry(fs->se, dino, name, nl);
		fsd_itable_lock(&fs->it);
	}
	fs->letgo_running = 0;
	fsd_itable_unlock(&fs->it);
}

void fsd_fs_keep_inode(struct fsd_fs *fs, struct fsd_inode *i)
{
	if (i->kind != FSD_CALL && !fsd_fs_in_call_folder(i))
		return;
	uint64_t old = fs->made[fs->made_next];
	fs->made[fs->made_next] = i->ino;
	fs->made_next = (fs->made_next + 1) % FS_CALL_INODES_KEPT;
	if (!old || old == i->ino || fs->letgo_len == FS_LETGO_QUEUED)
		return;
	fs->letgo[(fs->letgo_head + fs->letgo_len) % FS_LETGO_QUEUED] = old;
	fs->letgo_len++;
	if (!fs->letgo_running && fs->se) {
		fs->letgo_running = fsd_workers_start(&fs->workers, letgo_main, fs) == 0;
		if (!fs->letgo_running)
			fs->letgo_len = 0; /* no thread: the kernel keeps them */
	}
}

/* Creates or finds the child with `lookups` lookups and sets its attributes. Lock held. */
struct fsd_inode *fsd_fs_make_child(struct fsd_fs *fs, struct fsd_inode *parent, const char *name,
                                    enum fsd_kind kind, const struct child_spec *sp,
                                    uint64_t lookups)
{
	struct fsd_inode *i =
	    fsd_itable_child(&fs->it, parent, name, kind, sp->key, sp->target, lookups);
	if (!i)
		return NULL;
	if (i->nlookup == lookups && lookups)
		fsd_fs_keep_inode(fs, i); /* handed to the kernel, which knew it not */
	if (kind == FSD_VALUE)
		i->view = sp->view; /* the same for the same path */
	if (sp->rec && fsd_fs_is_record_file(kind)) {
		/* A file keeps what its attributes need, not its record: it is read from
		 * its directory's when opened (fsd_fs_file_record). */
		const struct fsd_record_file *f = record_file(sp->rec, kind, name);
		i->size = f ? f->len : 0;
		i->have_size = 1;
		i->err = 0;
	} else if (sp->rec && fsd_fs_inside_call(kind) && i->rec != sp->rec &&
	           !(i->rec && sp->rec->stamp && i->rec->stamp == sp->rec->stamp)) {
		/* A newer load of the record (a call may be evicted and recorded again
		 * under the same key, with other metadata); the same stamp is the same
		 * record. */
		fsd_record_unref(i->rec);
		i->rec = fsd_record_ref(sp->rec);
		i->err = 0;
		keep_record(fs, i);
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

void fsd_fs_reply_child(struct fsd_fs *fs, fuse_req_t req, struct fsd_inode *parent,
                        const char *name, enum fsd_kind kind, const struct child_spec *sp)
{
	struct fuse_entry_param e;
	fsd_itable_lock(&fs->it);
	struct fsd_inode *i = fsd_fs_make_child(fs, parent, name, kind, sp, 1);
	if (!i) {
		fsd_itable_unlock(&fs->it);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	fsd_fs_fill_entry(fs, i, &e);
	uint64_t ino = i->ino;
	fsd_itable_unlock(&fs->it);
	if (fuse_reply_entry(req, &e) != 0) {
		fsd_itable_lock(&fs->it);
		fsd_itable_forget(&fs->it, ino, 1);
		fsd_itable_unlock(&fs->it);
	}
}

struct fsd_fs *fsd_fs_of_req(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

struct fsd_inode *fsd_fs_inode(struct fsd_fs *fs, fuse_ino_t ino)
{
	return fsd_itable_get(&fs->it, ino);
}

int fsd_fs_is_hex(const char *s, size_t n)
{
	for (size_t k = 0; k < n; k++)
		if (!((s[k] >= '0' && s[k] <= '9') || (s[k] >= 'a' && s[k] <= 'f')))
			return 0;
	return 1;
}

int fsd_fs_recdir_load(struct fsd_fs *fs, const char *key, const char *path,
                       struct fsd_recdir **d)
{
	char why[600];
	int rc = fsd_recdirs_get(&fs->recdirs, key, d, why, sizeof(why));

	if (rc == -ENOTSUP)
		fsd_log(FSD_LOG_DEBUG, "%s is absent: %s", path, why);
	else if (rc)
		fsd_log(FSD_LOG_INFO, "%s is absent: %s", path, why);
	return rc;
}

int fsd_fs_recdir_link(struct fsd_fs *fs, const char *vkey, const char *up, char *target,
                       size_t len)
{
	struct fsd_recdir *d;
	char path[RPC_KEY_LEN + 16];
	/* known from a walk's read-ahead (load_many's values), else from the cache of
	 * listings, which asks the server once per record */
	int state = fsd_viewcache_folder(&fs->views, vkey);

	if (state == FSD_VS_UNKNOWN) {
		snprintf(path, sizeof(path), "values/%s.d", vkey);
		state = fsd_fs_recdir_load(fs, vkey, path, &d) ? FSD_VS_NO : FSD_VS_YES;
		fsd_recdir_unref(d);
	}
	if (state != FSD_VS_YES)
		return 0;
	if (target)
		snprintf(target, len, "%svalues/%s.d", up, vkey);
	return 1;
}

int fsd_fs_recdir_depth(const char *path)
{
	int slashes = 0;
	for (; *path; path++)
		slashes += *path == '/';
	return slashes - 1;
}

enum fsd_kind fsd_fs_recdir_child(const struct fsd_recdir_entry *e, struct child_spec *sp)
{
	memset(sp, 0, sizeof(*sp));
	sp->key = e->key;
	sp->mtime = e->mtime;
	sp->size = -1;
	if (e->is_dir)
		return FSD_RECDIR;
	sp->view = RPC_VIEW_BIN;
	sp->size = (int64_t)e->size;
	return FSD_VALUE;
}

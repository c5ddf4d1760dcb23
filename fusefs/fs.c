/*
 * fs.c: the FUSE low-level operations of flechefs (fs.h): files, the operations that
 * change nothing or evict, and the operations table; lookup.c looks names up, dir.c
 * lists directories, node.c holds what they all build on (fs_impl.h). The tree:
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
 *	values/<key>.d/...                 a stored file or folder record (recdir.h), lookup only
 *	calls/<key>/result.d -> ../../values/<key>.d   (listed where it applies)
 *	calls/<key>/arguments/<param>.d -> ../../../values/<value key>.d
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
 *     so ls -l costs no request per entry (of calls/, for the last
 *     FS_CALL_INODES_KEPT: invariant 8); except inside a call directory, whose
 *     entries are given with node id 0 (name and type only): a walk of the whole
 *     tree then leaves the kernel, and so the inode table, one inode per call, not
 *     one per file of every call, and ls -l of a call costs a lookup per entry,
 *     answered from the record already loaded.
 *  4. A call record is loaded per inode and rendered (callrec.h) at that moment, so
 *     sizes are exact before the first read. It is current for cache_timeout (inode.h
 *     invariant 5: the kernel keeps entries and attributes of a call's files no
 *     longer); then a fresh listing of calls/ whose stamp for the key is the
 *     record's confirms it, else it is loaded again (ensure_record). A listing whose
 *     stamp differs marks the record stale at once: a call recorded again under its
 *     key is shown within cache_timeout. Directories keep the records of the last
 *     FS_RECORDS_KEPT given one (node.c, keep_record); an older one is loaded again.
 *     A call's files keep only their size and time and are read from their
 *     directory's record (an open file holds it).
 *  5. A view of a value (views.h) is an FSD_VALUE inode with its view set: found by
 *     lookup only (ls values/ lists the keys alone), its size exact from stat_value
 *     with the view, cached by the kernel as values are. Call directories list the
 *     views of their result and arguments that apply, as the view cache says.
 *  6. Nothing is ever created or written: those operations fail with EROFS on a
 *     read-only mount or server, else EPERM. Unlinking a file inside a call folder
 *     succeeds and changes nothing; rmdir of calls/<key> evicts, within the
 *     eviction guard (below). Who may do what is the kernel's check of the modes
 *     shown (default_permissions, set by main.c): only the mounter evicts.
 *  7. A stored file or folder record (recdir.h) is an FSD_RECDIR inode keyed by the
 *     record, its mtime the record's: listed at each lookup in it and each opendir
 *     from the cache of listings (recdir.h), which asks list_record once per record
 *     (values never change, so the kernel keeps what it learns for value_timeout);
 *     the result.d and arguments/<param>.d of a call folder come from that cache
 *     too. Its files are FSD_VALUE inodes of their content key in the bin view, read
 *     as any value, and its folders FSD_RECDIR inodes again, at most
 *     FSD_RECDIR_DEPTH deep.
 *  8. The kernel holds at most about FS_CALL_INODES_KEPT inodes of calls/<key> and
 *     what is inside it, besides those in use: each inode of them handed to it
 *     FS_CALL_INODES_KEPT such inodes before the newest is asked back (its entry
 *     invalidated, from a worker: node.c, fsd_fs_keep_inode), and the kernel forgets
 *     it when nothing uses it. A walk of every call (find, du) then holds the
 *     daemon's inode table to that, not to one inode per file of every call; a name
 *     asked back is looked up again when used, answered from the listing or its
 *     folder's record.
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

static void fs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	struct fsd_fs *fs = fsd_fs_of_req(req);
	fsd_itable_lock(&fs->it);
	fsd_itable_forget(&fs->it, ino, nlookup);
	fsd_itable_unlock(&fs->it);
	fuse_reply_none(req);
}

static void fs_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct fsd_fs *fs = fsd_fs_of_req(req);
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
	int need = fsd_fs_value_unsized(i);
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
		fsd_fs_log_failure(i->path, &r);
	fsd_result_release(&r);
}

static void fs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fsd_fs *fs = fsd_fs_of_req(req);
	struct fsd_inode *i = fsd_fs_inode(fs, ino);
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
	int unknown = fsd_fs_value_size_err(i);
	fsd_fs_fill_attr(fs, i, &st);
	double t = fsd_fs_inode_timeout(fs, i);
	fsd_itable_unlock(&fs->it);
	if (unknown)
		fsd_fs_reply_err(req, unknown);
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
	fuse_reply_err(req, change_errno(fsd_fs_of_req(req)));
}

static void fs_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct fsd_fs *fs = fsd_fs_of_req(req);
	struct fsd_inode *i = fsd_fs_inode(fs, ino);
	if (!i || i->kind != FSD_LINK || !i->target) {
		fuse_reply_err(req, i ? EINVAL : ESTALE);
		return;
	}
	fuse_reply_readlink(req, i->target);
}

static void fs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	fuse_reply_err(req, change_errno(fsd_fs_of_req(req)));
}

static void fs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	fuse_reply_err(req, change_errno(fsd_fs_of_req(req)));
}

static void fs_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	fuse_reply_err(req, change_errno(fsd_fs_of_req(req)));
}

static void fs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	fuse_reply_err(req, change_errno(fsd_fs_of_req(req)));
}

static void fs_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
                      const char *newname, unsigned int flags)
{
	fuse_reply_err(req, change_errno(fsd_fs_of_req(req)));
}

static void fs_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                      struct fuse_file_info *fi)
{
	fuse_reply_err(req, change_errno(fsd_fs_of_req(req)));
}

static void fs_unlink(fuse_req_t req, fuse_ino_t pino, const char *name)
{
	struct fsd_fs *fs = fsd_fs_of_req(req);
	struct fsd_inode *parent = fsd_fs_inode(fs, pino);
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
	if (fs->o.evict_all)
		return 1;
	double now = (double)fsd_now_us() / 1e6;
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
	struct fsd_fs *fs = fsd_fs_of_req(req);
	struct fsd_inode *parent = fsd_fs_inode(fs, pino);
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
	if (strlen(name) != RPC_KEY_LEN || !fsd_fs_is_hex(name, RPC_KEY_LEN)) {
		int prefix = strlen(name) >= RPC_PREFIX_MIN && fsd_fs_is_hex(name, strlen(name));
		fuse_reply_err(req, prefix ? ENOTDIR : ENOENT);
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
		fsd_fs_log_failure(name, &r);
		fsd_fs_reply_err(req, r.err);
		fsd_result_release(&r);
		return;
	}
	fsd_result_release(&r);
	rc = fsd_rpc_evict(fs->conn, name, &r);
	if (rc) {
		fsd_fs_log_failure(name, &r);
		fsd_fs_reply_err(req, r.err);
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
	fsd_prefetch_forget(&fs->prefetch, name);
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
	struct fsd_fs *fs = fsd_fs_of_req(req);
	struct fsd_inode *i = fsd_fs_inode(fs, ino);
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
			fsd_fs_reply_err(req, err);
			return;
		}
	} else if (i->kind != FSD_CALL_FILE && i->kind != FSD_CALL_META_FILE) {
		fuse_reply_err(req, EISDIR);
		return;
	} else {
		/* The open file holds its call's record until released: the inode does
		 * not (fsd_fs_file_record). */
		struct fsd_record *rec = NULL;
		int err = fsd_fs_file_record(fs, i, &rec);
		if (!err)
			err = fsd_fs_metadata_refused(i, rec);
		if (err) {
			fsd_record_unref(rec);
			fsd_fs_reply_err(req, err);
			return;
		}
		fi->fh = (uint64_t)(uintptr_t)rec;
	}
	raise_readahead(fs);
	/* A value never changes for its key: keep the kernel's pages. A record's
	 * files are small and may change when a call is recorded again. */
	fi->keep_cache = i->kind == FSD_VALUE;
	fi->noflush = 1;
	fuse_reply_open(req, fi);
}

static void fs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fsd_inode *i = fsd_fs_inode(fsd_fs_of_req(req), ino);
	if (i && fsd_fs_is_record_file(i->kind))
		fsd_record_unref((struct fsd_record *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
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
		fsd_fs_reply_err(rc->req, r->err);
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
	struct fsd_fs *fs = fsd_fs_of_req(req);
	struct fsd_inode *i = fsd_fs_inode(fs, ino);
	if (!i) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	if (off < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (i->kind != FSD_VALUE) {
		const struct fsd_record *rec = (const struct fsd_record *)(uintptr_t)fi->fh;
		const struct fsd_record_file *f = fsd_fs_record_file(rec, i);
		if (!f) {
			fuse_reply_err(req, EIO);
		} else if ((size_t)off >= f->len) {
			fuse_reply_buf(req, NULL, 0);
		} else {
			size_t n = f->len - (size_t)off;
			fuse_reply_buf(req, f->data + off, n < size ? n : size);
		}
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
			fsd_fs_reply_err(req, err);
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
	fuse_reply_err(req, change_errno(fsd_fs_of_req(req)));
}

static void fs_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv;
	memset(&sv, 0, sizeof(sv));
	sv.f_bsize = 4096;
	sv.f_frsize = 4096;
	sv.f_namemax = 255;
	if (fsd_fs_of_req(req)->o.read_only || fsd_fs_of_req(req)->server_ro)
		sv.f_flag = ST_RDONLY;
	fsd_statfs_fill(&fsd_fs_of_req(req)->statfs, fsd_fs_of_req(req)->conn, &sv);
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
	fsd_conn_op_begin(fsd_fs_of_req(req)->conn);
	fsd_fs_lookup(req, pino, name);
	fsd_conn_op_end();
}

static void fs_rmdir(fuse_req_t req, fuse_ino_t pino, const char *name)
{
	fsd_conn_op_begin(fsd_fs_of_req(req)->conn);
	rmdir_op(req, pino, name);
	fsd_conn_op_end();
}

static void fs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
	fsd_conn_op_begin(fsd_fs_of_req(req)->conn);
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
    .release = fs_release,
    .write = fs_write,
    .opendir = fsd_fs_opendir,
    .readdir = fsd_fs_readdir,
    .readdirplus = fsd_fs_readdirplus,
    .releasedir = fsd_fs_releasedir,
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
	if (fsd_recdirs_init(&fs->recdirs, conn)) {
		fsd_viewcache_release(&fs->views);
		fsd_itable_release(&fs->it);
		free(fs);
		return NULL;
	}
	fsd_workers_init(&fs->workers);
	fsd_listings_init(&fs->lists, conn, &fs->workers, fs->page, fs->o.cache_timeout);
	if (fsd_prefetch_init(&fs->prefetch, conn, &fs->lists, &fs->views, &fs->workers,
	                      fs->o.cache_timeout)) {
		fsd_listings_release(&fs->lists);
		fsd_workers_release(&fs->workers);
		fsd_viewcache_release(&fs->views);
		fsd_itable_release(&fs->it);
		free(fs);
		return NULL;
	}
	/* The top-level directories stay for the mount's life. */
	fsd_itable_lock(&fs->it);
	for (size_t k = 0; k < FS_NTOP; k++) {
		struct fsd_inode *i = fsd_itable_child(&fs->it, fs->it.root, fsd_fs_top[k].name,
		                                       fsd_fs_top[k].kind, NULL, NULL, 0);
		if (i)
			i->permanent = 1;
		if (i && fsd_fs_top[k].kind == FSD_BYNAME)
			fs->byname_ino = i->ino;
	}
	fsd_itable_unlock(&fs->it);
	return fs;
}

int fsd_fs_quiesce(struct fsd_fs *fs)
{
	/* After the unmount and the connection's close, invalidations (a few writes to
	 * /dev/fuse) and listing fillers (requests) fail at once. */
	if (fs)
		fsd_prefetch_stop(&fs->prefetch);
	return !fs || fsd_workers_join(&fs->workers, FSD_FS_QUIESCE_MS) == 0;
}

void fsd_fs_free(struct fsd_fs *fs)
{
	if (!fs)
		return;
	fsd_prefetch_release(&fs->prefetch);
	fsd_listings_release(&fs->lists);
	fsd_workers_release(&fs->workers);
	fsd_viewcache_release(&fs->views);
	fsd_recdirs_release(&fs->recdirs);
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

/*
 * dir.c: listing the mount's directories (fs.c describes the tree): opendir takes a
 * listing (listing.h), a record, a query or the candidates of a prefix; readdir and
 * readdirplus stream it, readdirplus with every entry's attributes (fs.c's invariant
 * 3); call directories list the views that apply (views.h).
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
	/* FSD_CALL: the views of the result listed after "result", then result.d when
	 * the result is a stored file or folder record */
	uint8_t rviews[RPC_VIEW__COUNT];
	size_t nrviews;
	int rdir;
	/* FSD_RECDIR: the record's entries (a reference) */
	struct fsd_recdir *rd;
	/* FSD_CALL_ARGS: the entries, in order */
	struct arg_entry *ents;
};

static void dirh_free(struct dirh *d)
{
	if (!d)
		return;
	fsd_listing_unref(d->list);
	fsd_record_unref(d->rec);
	fsd_recdir_unref(d->rd);
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
		d->rdir = fsd_fs_recdir_link(fs, r->result, "", NULL, 0);
		d->n += (size_t)d->rdir;
		return 0;
	}
	size_t na = r->nargs;
	char(*keys)[RPC_KEY_LEN + 1] = calloc(na ? na : 1, sizeof(*keys));
	struct fsd_viewinfo *vi = calloc(na ? na : 1, sizeof(*vi));
	d->ents = calloc(na * (RPC_VIEW__COUNT + 1) + 1, sizeof(*d->ents));
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
		/* view RPC_VIEW__COUNT stands for <param>.d */
		if (len + 2 <= 255 && fsd_fs_recdir_link(fs, r->args[a].value, "", NULL, 0)) {
			d->ents[d->n].arg = (uint32_t)a;
			d->ents[d->n++].view = RPC_VIEW__COUNT;
		}
	}
	rc = 0;
out:
	free(keys);
	free(vi);
	return rc;
}

void fsd_fs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fsd_fs *fs = fsd_fs_of_req(req);
	struct fsd_inode *i = fsd_fs_inode(fs, ino);
	struct dirh *d;
	int rc = 0;
	if (!i) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	if (!fsd_fs_is_dir_kind(i->kind)) {
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
		rc = fsd_fs_open_query(fs, i, &d->list);
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
		int e = fsd_fs_current_record(fs, i, &d->rec, &d->fresh_until_ms);
		if (!e && i->kind == FSD_CALL_META)
			e = fsd_fs_metadata_refused(i, d->rec);
		if (e) {
			rc = -e;
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
	case FSD_RECDIR:
		if (fsd_fs_recdir_depth(i->path) > FSD_RECDIR_DEPTH) {
			rc = -ELOOP;
			break;
		}
		rc = fsd_fs_recdir_load(fs, i->key, i->path, &d->rd);
		if (rc == -ENOTSUP || rc == -EINVAL)
			rc = -EIO; /* it was a record folder when looked up */
		d->n = d->rd ? d->rd->n : 0;
		break;
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
		fsd_fs_reply_err(req, -rc);
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
		*kind = fsd_fs_top[k].kind;
		return fsd_fs_top[k].name;
	case FSD_CALLS:
	case FSD_VALUES:
		*kind = d->kind == FSD_CALLS ? FSD_CALL : FSD_VALUE;
		sp->key = it->name;
		sp->mtime = it->mtime;
		sp->size = it->size;
		if (d->kind == FSD_CALLS) {
			sp->listed = 1;
			sp->stamp = it->stamp;
			sp->fresh_until_ms = fsd_fs_fresh_after(fs, it->fetched_ms);
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
		fsd_fs_query_link(d->dir, it->name, buf, buflen);
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
		if (k - 3 == d->nrviews) {
			snprintf(buf, buflen, "../../values/%s.d", r->result);
			return "result.d";
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
		const char *ext = v == RPC_VIEW__COUNT ? "d" : rpc_view_name(v);
		snprintf(buf, buflen, "../../../values/%s.%s", a->value, ext);
		snprintf(nbuf, nbuflen, "%s.%s", a->name, ext);
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
	case FSD_RECDIR:
		*kind = fsd_fs_recdir_child(&d->rd->entries[k], sp);
		return d->rd->entries[k].name;
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
	struct fsd_fs *fs = fsd_fs_of_req(req);
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
		if (!plus || fsd_fs_inside_call(d->kind)) {
			/* Same number as a lookup would give, in the common case of no
			 * collision. */
			char path[600];
			snprintf(path, sizeof(path), "%s%s%s", d->dir->path,
			         d->dir->path[0] ? "/" : "", name);
			st.st_ino = fsd_path_hash(path);
			st.st_mode = fsd_fs_is_dir_kind(kind)  ? S_IFDIR
			             : kind == FSD_LINK ? S_IFLNK
			                                : S_IFREG;
			if (plus) {
				/* node id 0: the kernel takes the name and type and keeps no
				 * entry for it (fs.c invariant 3) */
				struct fuse_entry_param e;
				memset(&e, 0, sizeof(e));
				e.attr = st;
				need = fuse_add_direntry_plus(req, buf + used, size - used, name,
				                              &e, (off_t)pos + 1);
			} else {
				need = fuse_add_direntry(req, buf + used, size - used, name, &st,
				                         (off_t)pos + 1);
			}
			if (need > size - used)
				break;
			used += need;
			continue;
		}
		struct fuse_entry_param e;
		fsd_itable_lock(&fs->it);
		struct fsd_inode *i = fsd_fs_make_child(fs, d->dir, name, kind, &sp, 0);
		if (!i) {
			fsd_itable_unlock(&fs->it);
			break;
		}
		fsd_fs_fill_entry(fs, i, &e);
		need =
		    fuse_add_direntry_plus(req, buf + used, size - used, name, &e, (off_t)pos + 1);
		if (need > size - used) {
			if (i->nlookup == 0)
				fsd_itable_forget(&fs->it, i->ino, 0);
			fsd_itable_unlock(&fs->it);
			break;
		}
		if (i->nlookup++ == 0)
			fsd_fs_keep_inode(fs, i);
		fsd_itable_unlock(&fs->it);
		used += need;
	}
	if (failed)
		fsd_fs_reply_err(req, failed);
	else
		fuse_reply_buf(req, buf, used);
	free(buf);
}

void fsd_fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, 0);
}

void fsd_fs_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                           struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, 1);
}

void fsd_fs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	dirh_free((struct dirh *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

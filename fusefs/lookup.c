/*
 * lookup.c: lookup in every directory of the mount (fs.c describes the tree): top
 * directories, calls/ and values/ by key or prefix (a prefix is a link to its key),
 * values/<key>.<view>, digests/ (a link to calls/ or values/, or a directory of the
 * candidates of an ambiguous prefix), by-name/, query/ and the insides of a call
 * directory.
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

	if (stem < RPC_PREFIX_MIN || stem > RPC_KEY_LEN || !fsd_fs_is_hex(name, stem)) {
		fsd_fs_reply_negative(fs, req);
		return;
	}
	if (!(fsd_conn_server(fs->conn)->views & (1u << view))) {
		fsd_log(FSD_LOG_DEBUG, "values/%s: the server does not render the %s view", name,
		        rpc_view_name(view));
		fsd_fs_reply_negative(fs, req);
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
			fsd_fs_log_failure(name, &r);
			fsd_fs_reply_err(req, e);
		} else if (fsd_view_error_definitive(r.error)) {
			fsd_log(r.error->code == RPC_E_ENOTSUP ? FSD_LOG_DEBUG : FSD_LOG_INFO,
			        "values/%s is absent: %s", name, why);
			if (stem == RPC_KEY_LEN)
				fsd_viewcache_put(&fs->views, pfx, view, FSD_VS_NO, 0);
			reply_negative_for(req, r.error->code == RPC_E_ELOOP
			                            ? fs->o.negative_timeout
			                            : fs->o.value_timeout);
		} else if (r.error->code == RPC_E_AMBIGUOUS) {
			fsd_fs_log_failure(name, &r);
			fsd_fs_reply_negative(fs, req);
		} else if (e == ENOENT || e == EINVAL) {
			/* No such value, or a destructured value with a missing part. */
			fsd_log(stem == RPC_KEY_LEN ? FSD_LOG_INFO : FSD_LOG_DEBUG,
			        "values/%s is absent: %s", name, why);
			fsd_fs_reply_negative(fs, req);
		} else {
			fsd_fs_log_failure(name, &r);
			fsd_fs_reply_err(req, e);
		}
		fsd_result_release(&r);
		return;
	}
	fsd_result_release(&r);
	if (!st.key[0]) {
		fsd_fs_reply_err(req, EIO);
		return;
	}
	memcpy(key, st.key, RPC_KEY_LEN + 1);
	size = st.size;
	mt = st.mtime;
	fsd_viewcache_put(&fs->views, key, view, FSD_VS_YES, size);
	if (stem < RPC_KEY_LEN) {
		snprintf(target, sizeof(target), "%s.%s", key, rpc_view_name(view));
		sp.target = target;
		fsd_fs_reply_child(fs, req, parent, name, FSD_LINK, &sp);
		return;
	}
	sp.key = key;
	sp.size = (int64_t)size;
	sp.mtime = mt;
	fsd_fs_reply_child(fs, req, parent, name, FSD_VALUE, &sp);
}

/* calls/<name> and values/<name>. */
/* --- stored file and folder records (recdir.h) --- */

/* values/<key>.d: the folder of a stored file or folder record. */
static void lookup_recdir_root(struct fsd_fs *fs, fuse_req_t req, struct fsd_inode *parent,
                               const char *name)
{
	struct child_spec sp = {.size = -1};
	char key[RPC_KEY_LEN + 1], path[RPC_KEY_LEN + 16];
	struct fsd_recdir *d;

	memcpy(key, name, RPC_KEY_LEN);
	key[RPC_KEY_LEN] = '\0';
	snprintf(path, sizeof(path), "values/%s", name);
	if (fsd_fs_recdir_load(fs, key, path, &d)) {
		reply_negative_for(req, fs->o.negative_timeout);
		return;
	}
	sp.mtime = d->mtime; /* the record's */
	fsd_recdir_unref(d);
	sp.key = key;
	fsd_fs_reply_child(fs, req, parent, name, FSD_RECDIR, &sp);
}

/* A file or folder inside a record folder. */
static void lookup_in_recdir(struct fsd_fs *fs, fuse_req_t req, struct fsd_inode *parent,
                             const char *name)
{
	struct fsd_recdir *d;
	struct child_spec sp;
	enum fsd_kind kind;
	long k;
	int rc = fsd_fs_recdir_load(fs, parent->key, parent->path, &d);

	if (rc) {
		fsd_fs_reply_err(req, rc == -ENOTSUP || rc == -EINVAL ? EIO : -rc);
		return;
	}
	k = fsd_recdir_find(d, name);
	if (k < 0) {
		fsd_recdir_unref(d);
		reply_negative_for(req, fs->o.value_timeout);
		return;
	}
	kind = fsd_fs_recdir_child(&d->entries[k], &sp);
	if (kind == FSD_RECDIR && fsd_fs_recdir_depth(parent->path) + 1 > FSD_RECDIR_DEPTH) {
		fsd_log(FSD_LOG_INFO,
		        "%s/%s is not shown: stored folders nest deeper than %d levels there",
		        parent->path, name, FSD_RECDIR_DEPTH);
		fsd_recdir_unref(d);
		fsd_fs_reply_err(req, ELOOP);
		return;
	}
	fsd_fs_reply_child(fs, req, parent, name, kind, &sp);
	fsd_recdir_unref(d);
}

static void lookup_keyed(struct fsd_fs *fs, fuse_req_t req, struct fsd_inode *parent,
                         const char *name, int calls)
{
	size_t n = strlen(name);
	struct child_spec sp = {.size = -1};
	struct fsd_result r;
	const char *s;
	size_t sl;

	if (!calls && n == RPC_KEY_LEN + 2 && name[RPC_KEY_LEN] == '.' &&
	    name[RPC_KEY_LEN + 1] == 'd' && fsd_fs_is_hex(name, RPC_KEY_LEN)) {
		lookup_recdir_root(fs, req, parent, name);
		return;
	}
	if (!calls) {
		size_t stem;
		int view = fsd_view_split(name, &stem);
		if (view) {
			lookup_value_view(fs, req, parent, name, stem, view);
			return;
		}
	}
	if (n < RPC_PREFIX_MIN || n > RPC_KEY_LEN || !fsd_fs_is_hex(name, n)) {
		fsd_fs_reply_negative(fs, req);
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
				sp.fresh_until_ms = fsd_fs_fresh_after(fs, it.fetched_ms);
			}
			fsd_fs_reply_child(fs, req, parent, name, calls ? FSD_CALL : FSD_VALUE,
			                   &sp);
			return;
		}
	}
	if (calls && n == RPC_KEY_LEN) {
		/* a walk longer than cache_timeout: its records are still fetched ahead */
		uint64_t loaded_ms;
		struct fsd_record *rec = fsd_prefetch_take(&fs->prefetch, name, &loaded_ms);
		if (rec) {
			sp.key = rec->key;
			sp.rec = rec;
			sp.mtime = rec->mtime;
			sp.fresh_until_ms = fsd_fs_fresh_after(fs, loaded_ms);
			fsd_fs_reply_child(fs, req, parent, rec->key, FSD_CALL, &sp);
			fsd_record_unref(rec);
			return;
		}
	}
	if (calls)
		sp.fresh_until_ms = fsd_fs_fresh_after(fs, (uint64_t)fsd_now_ms());
	struct rpc_stat_value st;
	int rc = calls ? fsd_rpc_load(fs->conn, name, &r)
	               : fsd_rpc_stat_value(fs->conn, name, RPC_VIEW_PICKLE, &r, &st);
	if (rc) {
		fsd_fs_log_failure(name, &r);
		if (!r.error) {
			fsd_fs_reply_err(req, r.err);
		} else if (r.err == ENOENT || r.err == EINVAL) {
			fsd_fs_reply_negative(fs, req);
		} else if (n == RPC_KEY_LEN && calls) {
			/* Listed, but reading fails (EBADMSG for a bad signature...). A
			 * value has no size to show then: its lookup fails instead. */
			sp.key = name;
			sp.err = r.err;
			sp.size = 0;
			fsd_fs_reply_child(fs, req, parent, name, calls ? FSD_CALL : FSD_VALUE,
			                   &sp);
		} else {
			fsd_fs_reply_err(req, r.err);
		}
		fsd_result_release(&r);
		return;
	}
	if (calls ? rpc_obj_str(rpc_map_field(r.result, RPC_F_KEY), &s, &sl) ||
	                !rpc_key_valid(s, sl)
	          : !st.key[0]) {
		fsd_result_release(&r);
		fsd_fs_reply_err(req, EIO);
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
		fsd_fs_reply_child(fs, req, parent, name, FSD_LINK, &sp);
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
	fsd_fs_reply_child(fs, req, parent, name, calls ? FSD_CALL : FSD_VALUE, &sp);
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

	if (n < RPC_PREFIX_MIN || n > RPC_KEY_LEN || !fsd_fs_is_hex(name, n)) {
		fsd_fs_reply_negative(fs, req);
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
			fsd_fs_reply_err(req, e);
			return;
		}
		sp.cands = c;
		sp.ncands = m;
		fsd_fs_reply_child(fs, req, parent, name, FSD_AMBIG, &sp);
		free(c);
		return;
	}
	if (rc) {
		fsd_fs_log_failure(name, &r);
		int e = r.err, local = r.error == NULL;
		fsd_result_release(&r);
		if (local)
			fsd_fs_reply_err(req, e);
		else if (e == ENOENT || e == EINVAL)
			fsd_fs_reply_negative(fs, req);
		else
			fsd_fs_reply_err(req, e);
		return;
	}
	fsd_result_release(&r);
	if (strlen(expanded) != RPC_KEY_LEN) {
		fsd_fs_reply_err(req, EIO); /* expand answers full keys only */
		return;
	}
	char key[1][RPC_KEY_LEN + 1];
	memcpy(key[0], expanded, RPC_KEY_LEN + 1);
	int e = classify_keys(fs, (const char(*)[RPC_KEY_LEN + 1])key, 1, &kind);
	if (e) {
		fsd_fs_reply_err(req, e);
		return;
	}
	if (!kind) {
		fsd_fs_reply_negative(fs, req); /* gone since */
		return;
	}
	snprintf(target, sizeof(target), "../%s/%s", kind, key[0]);
	sp.target = target;
	fsd_fs_reply_child(fs, req, parent, name, FSD_LINK, &sp);
}

static void lookup_func(struct fsd_fs *fs, fuse_req_t req, struct fsd_inode *parent,
                        const char *name)
{
	struct fsd_result r;
	struct child_spec sp = {.size = -1};
	if (!fsd_name_ok(name, strlen(name))) {
		fsd_fs_reply_negative(fs, req);
		return;
	}
	struct rpc_page page;
	int rc = fsd_rpc_query_name(fs->conn, name, NULL, 1, false, &r, &page);
	if (rc) {
		fsd_fs_log_failure(name, &r);
		fsd_fs_reply_err(req, r.err == EINVAL ? ENOENT : r.err);
		fsd_result_release(&r);
		return;
	}
	int found = page.n > 0;
	fsd_result_release(&r);
	if (!found) {
		fsd_fs_reply_negative(fs, req);
		return;
	}
	fsd_fs_reply_child(fs, req, parent, name, FSD_FUNC, &sp);
}

static void lookup_func_entry(struct fsd_fs *fs, fuse_req_t req, struct fsd_inode *parent,
                              const char *name)
{
	struct fsd_result r;
	struct child_spec sp = {.size = -1};
	char target[FSD_LINK_TARGET_MAX];
	const char *s;
	size_t sl;
	if (strlen(name) != RPC_KEY_LEN || !fsd_fs_is_hex(name, RPC_KEY_LEN)) {
		fsd_fs_reply_negative(fs, req);
		return;
	}
	int rc = fsd_rpc_load(fs->conn, name, &r);
	if (rc) {
		int e = r.err, local = r.error == NULL;
		fsd_result_release(&r);
		if (local)
			fsd_fs_reply_err(req, e);
		else
			fsd_fs_reply_negative(fs, req);
		return;
	}
	int same = rpc_obj_str(rpc_map_field(r.result, RPC_F_NAME), &s, &sl) == 0 &&
	           sl == strlen(parent->name) && memcmp(s, parent->name, sl) == 0;
	fsd_result_release(&r);
	if (!same) {
		fsd_fs_reply_negative(fs, req);
		return;
	}
	snprintf(target, sizeof(target), "../../calls/%s", name);
	sp.target = target;
	fsd_fs_reply_child(fs, req, parent, name, FSD_LINK, &sp);
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
	struct fsd_record *rec = NULL;
	int e = fsd_fs_current_record(fs, parent, &rec, &sp.fresh_until_ms);
	if (!e && parent->kind == FSD_CALL_META)
		e = fsd_fs_metadata_refused(parent, rec);
	if (e) {
		fsd_record_unref(rec);
		fsd_fs_reply_err(req, e);
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
			if (strcmp(name, "result.d") == 0 &&
			    fsd_fs_recdir_link(fs, rec->result, "../../", target, sizeof(target))) {
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
		size_t nl = strlen(name);
		for (size_t k = 0; kind == FSD_ROOT && nl > 2 && k < rec->nargs; k++)
			if (strcmp(name + nl - 2, ".d") == 0 && strlen(rec->args[k].name) == nl - 2 &&
			    memcmp(rec->args[k].name, name, nl - 2) == 0 &&
			    fsd_fs_recdir_link(fs, rec->args[k].value, "../../../", target,
			                       sizeof(target))) {
				sp.target = target;
				kind = FSD_LINK;
			}
	} else {
		for (size_t k = 0; k < rec->nmeta; k++)
			if (strcmp(rec->meta[k].name, name) == 0)
				kind = FSD_CALL_META_FILE;
	}
	if (kind == FSD_ROOT)
		fsd_fs_reply_negative(fs, req);
	else
		fsd_fs_reply_child(fs, req, parent, name, kind, &sp);
	fsd_record_unref(rec);
}

/* --- query/ (querydir.h) --- */

/* The conditions of a query directory: its path after "query/". */
static const char *query_conds(const struct fsd_inode *dir)
{
	return dir->path + strlen("query/");
}

/* The target of the link to call key inside query directory dir. */
void fsd_fs_query_link(const struct fsd_inode *dir, const char *key, char *buf, size_t len)
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
int fsd_fs_open_query(struct fsd_fs *fs, struct fsd_inode *dir, struct fsd_listing **out)
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
		fsd_fs_log_failure(dir->path, &r);
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
		fsd_fs_reply_child(fs, req, parent, name, FSD_QUERY_DIR, &sp);
		return;
	}
	if (parent->kind != FSD_QUERY_DIR || strlen(name) != RPC_KEY_LEN ||
	    !fsd_fs_is_hex(name, RPC_KEY_LEN)) {
		fsd_fs_reply_negative(fs, req);
		return;
	}
	int rc = query_has(fs, parent, name);
	if (rc < 0) {
		fsd_fs_reply_err(req, -rc);
		return;
	}
	if (!rc) {
		fsd_fs_reply_negative(fs, req);
		return;
	}
	fsd_fs_query_link(parent, name, target, sizeof(target));
	sp.target = target;
	fsd_fs_reply_child(fs, req, parent, name, FSD_LINK, &sp);
}

void fsd_fs_lookup(fuse_req_t req, fuse_ino_t pino, const char *name)
{
	struct fsd_fs *fs = fsd_fs_of_req(req);
	struct fsd_inode *parent = fsd_fs_inode(fs, pino);
	struct child_spec sp = {.size = -1};
	if (!parent) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	switch (parent->kind) {
	case FSD_ROOT: {
		for (size_t k = 0; k < FS_NTOP; k++)
			if (strcmp(name, fsd_fs_top[k].name) == 0) {
				fsd_fs_reply_child(fs, req, parent, name, fsd_fs_top[k].kind, &sp);
				return;
			}
		fsd_fs_reply_negative(fs, req);
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
	case FSD_RECDIR:
		lookup_in_recdir(fs, req, parent, name);
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
			fsd_fs_reply_negative(fs, req);
			return;
		}
		sp.target = t;
		fsd_fs_reply_child(fs, req, parent, name, FSD_LINK, &sp);
		return;
	}
	default:
		fuse_reply_err(req, ENOTDIR);
	}
}

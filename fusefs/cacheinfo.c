/*
 * cacheinfo.c: the mount's checks of the cache (hello's layout, a first record)
 * and the server's `info` for statfs (cacheinfo.h).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cacheinfo.h"
#include "clock.h"
#include "client.h"
#include "log.h"
#include "msg.h"
#include "rpc.h"

int fsd_cache_info_fetch(struct fsd_conn *c, struct fsd_cache_info *out, char *err,
                         size_t errlen)
{
	struct fsd_result r;
	struct rpc_info info;
	int rc = fsd_rpc_info(c, &r, &info);
	memset(out, 0, sizeof(*out));
	if (rc) {
		snprintf(err, errlen, "cannot ask the server about the cache: %s", r.message);
	} else {
		out->call_count = info.call_count;
		out->value_count = info.value_count;
		out->size_known = info.size_known;
		out->size = info.size;
	}
	fsd_result_release(&r);
	return rc;
}

int fsd_cache_require(const struct fsd_server_info *si, const char *source, char *err,
                      size_t errlen)
{
	const char *root = si->root; /* "" when hello gave none */
	if (!si->presence_known || si->calls_present || si->values_present)
		return 0;
	char where[1100] = "";
	size_t sl = strlen(source), rl = strlen(root);
	/* the source names the root already: "DIR", or "host:DIR" */
	int named = rl && sl >= rl && strcmp(source + sl - rl, root) == 0 &&
	            (sl == rl || source[sl - rl - 1] == ':');
	if (rl && !named)
		snprintf(where, sizeof(where), " (looked in '%s')", root);
	snprintf(err, errlen,
	         "'%s' is not a fleche cache: it holds no calls/, calls.db or values/%s%s", source,
	         where,
	         si->fleche_toml ? ", only a fleche.toml: mount a cache it configures (-o "
	                             "cache=NAME, or its default cache)"
	                           : "");
	return -ENOENT;
}

void fsd_cache_probe(struct fsd_conn *c)
{
	struct fsd_result r;
	char key[RPC_KEY_LEN + 1] = "";
	struct rpc_page page;
	struct rpc_page_entry e;

	if (fsd_rpc_list(c, RPC_KIND_CALLS, NULL, 1, false, &r, &page) == 0 && page.n) {
		rpc_page_entry(&page, 0, &e);
		if (e.is_key)
			memcpy(key, e.key, RPC_KEY_LEN);
	}
	fsd_result_release(&r);
	if (key[0]) {
		if (fsd_rpc_load(c, key, &r) != 0 && r.err == EBADMSG)
			fsd_log(FSD_LOG_WARN,
			        "warning: call record %s fails its HMAC check (%s): with this key "
			        "(FLECHE_SECRET_KEY or --key-file of the server) such records and "
			        "values read as EBADMSG and stay out of by-name/",
			        key, r.message);
		fsd_result_release(&r);
	}
	fsd_conn_settle_log(c, 500);
}

void fsd_cache_info_statvfs(const struct fsd_cache_info *info, struct statvfs *sv)
{
	unsigned long frsize = sv->f_frsize ? sv->f_frsize : 4096;
	sv->f_files = (fsfilcnt_t)(info->call_count + info->value_count);
	sv->f_ffree = 0;
	sv->f_favail = 0;
	if (info->size_known)
		sv->f_blocks = (fsblkcnt_t)((info->size + frsize - 1) / frsize);
	sv->f_bfree = 0;
	sv->f_bavail = 0;
}

void fsd_statfs_cache_init(struct fsd_statfs_cache *sc)
{
	memset(sc, 0, sizeof(*sc));
	pthread_mutex_init(&sc->lock, NULL);
}

void fsd_statfs_cache_release(struct fsd_statfs_cache *sc)
{
	pthread_mutex_destroy(&sc->lock);
}

static double monotonic_seconds(void)
{
	return (double)fsd_now_us() / 1e6;
}

void fsd_statfs_fill(struct fsd_statfs_cache *sc, struct fsd_conn *c, struct statvfs *sv)
{
	struct fsd_cache_info info;
	char err[600];
	double now = monotonic_seconds();

	pthread_mutex_lock(&sc->lock);
	int fresh = sc->valid && now - sc->at < FSD_STATFS_SECONDS;
	info = sc->info;
	pthread_mutex_unlock(&sc->lock);
	if (!fresh) {
		/* several statfs at once may each ask; the last answer stays */
		if (fsd_cache_info_fetch(c, &info, err, sizeof(err)) < 0) {
			fsd_log(FSD_LOG_DEBUG, "statfs: %s", err);
			return;
		}
		pthread_mutex_lock(&sc->lock);
		sc->info = info;
		sc->at = now;
		sc->valid = true;
		pthread_mutex_unlock(&sc->lock);
	}
	fsd_cache_info_statvfs(&info, sv);
}

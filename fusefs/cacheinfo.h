/*
 * cacheinfo.h: what the daemon learns about the mounted cache before and after it
 * mounts (rpc/PROTOCOL.md section 5): whether it holds call storage or values at all
 * (hello's layout), which the mount checks before it goes ahead; what is wrong with
 * its signatures; and its counts and size (`info`), which statfs answers.
 */
#ifndef FLECHEFS_FUSEFS_CACHEINFO_H
#define FLECHEFS_FUSEFS_CACHEINFO_H

#include <msgpack.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/statvfs.h>

#include "conn.h"

struct fsd_cache_info {
	uint64_t call_count;
	uint64_t value_count;
	bool size_known;
	uint64_t size; /* bytes of disk, when size_known */
};

/* Asks the server for `info` and decodes it. 0, or -errno with a message in err. */
int fsd_cache_info_fetch(struct fsd_conn *c, struct fsd_cache_info *out, char *err,
                         size_t errlen);

/*
 * 0 when the server's hello shows a cache (or does not say); -ENOENT with a one-line
 * message in err, naming source (as the user gave it), the root the server looked
 * in and what was looked for, when it found neither call storage nor values.
 */
int fsd_cache_require(const struct fsd_server_info *si, const char *source, char *err,
                      size_t errlen);

/*
 * Reads the first call record once, so that what is wrong with the cache's
 * signatures shows before the daemon detaches: the server's warning about serving
 * signed files unverified, or (logged here, as a warning) a record that fails its
 * HMAC check because the key is wrong or the files are not signed. Then waits for
 * the server's warnings to reach the log.
 */
void fsd_cache_probe(struct fsd_conn *c);

/* Sets the block and file counts of sv from info (block size sv->f_frsize). */
void fsd_cache_info_statvfs(const struct fsd_cache_info *info, struct statvfs *sv);

/* How long statfs answers from one `info` (which scans the cache). */
#define FSD_STATFS_SECONDS 10

/* The last `info` statfs answered from; thread-safe. */
struct fsd_statfs_cache {
	pthread_mutex_t lock;
	bool valid;
	double at; /* CLOCK_MONOTONIC seconds of info */
	struct fsd_cache_info info;
};
void fsd_statfs_cache_init(struct fsd_statfs_cache *sc);
void fsd_statfs_cache_release(struct fsd_statfs_cache *sc);

/*
 * Fills sv's counts for statfs: from sc while it is younger than
 * FSD_STATFS_SECONDS, else from a fresh `info` (waited for). When the server cannot
 * answer, the counts stay as they are (0) and the reason is logged at debug level.
 */
void fsd_statfs_fill(struct fsd_statfs_cache *sc, struct fsd_conn *c, struct statvfs *sv);

#endif

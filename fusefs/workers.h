/*
 * workers.h: the daemon's short-lived helper threads (listing fillers, kernel cache
 * invalidations after an eviction), owned by a set that joins them, so that nothing
 * they use is freed while one runs.
 *
 * The one shutdown policy: first make every worker's work end at once (close the
 * connection: every request fails; unmount: every write to /dev/fuse fails), then
 * fsd_workers_join with a deadline. A worker still running at the deadline is left
 * to the process's exit, and so is everything it may touch: the caller does not free
 * it (fsd_workers_join says so).
 */
#ifndef FLECHEFS_FUSEFS_WORKERS_H
#define FLECHEFS_FUSEFS_WORKERS_H

#include <pthread.h>

struct fsd_worker;

struct fsd_workers {
	pthread_mutex_t lock;
	pthread_cond_t ended;      /* a worker's function returned */
	struct fsd_worker *list;   /* started and not yet joined */
};

void fsd_workers_init(struct fsd_workers *ws);
/* Frees the set; every worker must have been joined (fsd_workers_join returned 0). */
void fsd_workers_release(struct fsd_workers *ws);

/*
 * Runs fn(arg) on a new thread the set owns; joins the workers that have ended
 * first. Returns 0, or -errno when no thread could be started (fn did not run: the
 * caller does the work itself or drops it).
 */
int fsd_workers_start(struct fsd_workers *ws, void (*fn)(void *arg), void *arg);

/*
 * Waits up to timeout_ms for every worker to end and joins them. Returns 0 when none
 * is left, -ETIMEDOUT when one still runs (then nothing it uses may be freed).
 */
int fsd_workers_join(struct fsd_workers *ws, int timeout_ms);

#endif

/*
 * workers.c: the owned helper threads of workers.h.
 *
 * Invariants: a worker is on ws->list from its start until it is joined; its `done`
 * changes 0 -> 1 under ws->lock as the last thing its thread does, so joining a done
 * worker waits for nothing but the thread's return.
 */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "workers.h"

struct fsd_worker {
	pthread_t thread;
	void (*fn)(void *arg);
	void *arg;
	struct fsd_workers *set;
	int done; /* fn returned (under set->lock) */
	struct fsd_worker *next;
};

static void *worker_main(void *p)
{
	struct fsd_worker *w = p;
	w->fn(w->arg);
	pthread_mutex_lock(&w->set->lock);
	w->done = 1;
	pthread_cond_broadcast(&w->set->ended);
	pthread_mutex_unlock(&w->set->lock);
	return NULL;
}

/* Joins and frees the workers that are done; called with ws->lock held. */
static void reap(struct fsd_workers *ws)
{
	for (struct fsd_worker **pp = &ws->list; *pp;) {
		struct fsd_worker *w = *pp;
		if (!w->done) {
			pp = &w->next;
			continue;
		}
		*pp = w->next;
		pthread_join(w->thread, NULL);
		free(w);
	}
}

void fsd_workers_init(struct fsd_workers *ws)
{
	pthread_condattr_t ca;
	ws->list = NULL;
	pthread_mutex_init(&ws->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&ws->ended, &ca);
	pthread_condattr_destroy(&ca);
}

void fsd_workers_release(struct fsd_workers *ws)
{
	pthread_cond_destroy(&ws->ended);
	pthread_mutex_destroy(&ws->lock);
}

int fsd_workers_start(struct fsd_workers *ws, void (*fn)(void *arg), void *arg)
{
	struct fsd_worker *w = calloc(1, sizeof(*w));
	int rc;
	if (!w)
		return -ENOMEM;
	w->fn = fn;
	w->arg = arg;
	w->set = ws;
	pthread_mutex_lock(&ws->lock);
	reap(ws);
	rc = pthread_create(&w->thread, NULL, worker_main, w);
	if (rc == 0) {
		w->next = ws->list;
		ws->list = w;
	}
	pthread_mutex_unlock(&ws->lock);
	if (rc) {
		free(w);
		return -rc;
	}
	return 0;
}

int fsd_workers_join(struct fsd_workers *ws, int timeout_ms)
{
	struct timespec deadline;
	int rc = 0;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += timeout_ms / 1000;
	deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (deadline.tv_nsec >= 1000000000) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&ws->lock);
	for (;;) {
		reap(ws);
		if (!ws->list || rc == ETIMEDOUT)
			break;
		rc = pthread_cond_timedwait(&ws->ended, &ws->lock, &deadline);
	}
	rc = ws->list ? -ETIMEDOUT : 0;
	pthread_mutex_unlock(&ws->lock);
	return rc;
}

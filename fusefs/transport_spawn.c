/*
 * transport_spawn.c: a transport on a child process (transport.h). The child runs
 * argv with its standard input and output on two pipes and its standard error on a
 * third; a thread reads that third pipe, writes every line to the daemon's log and
 * keeps the last lines, which describe_exit reports together with the exit status
 * (so "exited with status 127: sh: 1: flechefs-server: not found" reaches the user).
 *
 * Invariants:
 *  1. Every descriptor is opened O_CLOEXEC, so no other child inherits our pipes.
 *  2. shutdown() closes nothing: it shuts the pipes' use down by signalling the child
 *     (SIGTERM) and marking the transport closed, so that a blocked read sees end of
 *     file when the child goes, and later reads and writes fail at once with -EPIPE.
 *     Our end of the child's input is non-blocking and a write waits in poll() beside
 *     the wake pipe, which shutdown() writes to: a write blocked on a child that no
 *     longer reads (stuck, say, in a hung file system, where SIGTERM does not reach
 *     it) returns -EPIPE at once.
 *     Descriptors are closed only by free(), when no other thread can use them.
 *  3. free() always reaps the child: SIGTERM, a bounded wait, then SIGKILL.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "transport.h"

#define SPAWN_TAIL_LINES 20
#define SPAWN_LINE_MAX   512
#define SPAWN_PIPE_SIZE  (1024 * 1024)

struct spawn_transport {
	struct fsd_transport base;
	pid_t pid;
	int to_child;   /* child's stdin (we write) */
	int from_child; /* child's stdout (we read) */
	int err_fd;     /* child's stderr (the tail thread reads) */
	int wake[2];    /* shutdown() wakes a blocked write (invariant 2) */
	atomic_int closed;
	atomic_int tail_busy; /* the tail thread has bytes of err_fd in hand */
	pthread_t tail_thread;
	int tail_started;
	pthread_mutex_t lock; /* guards tail, status, reaped */
	char tail[SPAWN_TAIL_LINES][SPAWN_LINE_MAX];
	unsigned tail_next, tail_count;
	int reaped, status;
	char prog[64];
};

static struct spawn_transport *spawn_of(struct fsd_transport *t)
{
	return (struct spawn_transport *)t;
}

static void tail_add(struct spawn_transport *s, const char *line)
{
	pthread_mutex_lock(&s->lock);
	snprintf(s->tail[s->tail_next], SPAWN_LINE_MAX, "%s", line);
	s->tail_next = (s->tail_next + 1) % SPAWN_TAIL_LINES;
	if (s->tail_count < SPAWN_TAIL_LINES)
		s->tail_count++;
	pthread_mutex_unlock(&s->lock);
}

/* Reads the child's standard error line by line until end of file. */
static void *tail_main(void *arg)
{
	struct spawn_transport *s = arg;
	char buf[4096], line[SPAWN_LINE_MAX];
	size_t used = 0;

	for (;;) {
		/* busy from the moment bytes are there until they are logged (settle) */
		struct pollfd pfd = {.fd = s->err_fd, .events = POLLIN};
		if (poll(&pfd, 1, -1) < 0 && errno == EINTR)
			continue;
		atomic_store(&s->tail_busy, 1);
		ssize_t n = read(s->err_fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR) {
			atomic_store(&s->tail_busy, 0);
			continue;
		}
		if (n <= 0)
			break;
		for (ssize_t i = 0; i < n; i++) {
			char c = buf[i];
			if (c == '\n' || used == sizeof(line) - 1) {
				line[used] = 0;
				fsd_log_relay(FSD_LOG_WARN, s->prog, line);
				tail_add(s, line);
				used = 0;
				if (c == '\n')
					continue;
			}
			if (c != '\r')
				line[used++] = c;
		}
		atomic_store(&s->tail_busy, 0);
	}
	if (used) {
		line[used] = 0;
		fsd_log_relay(FSD_LOG_WARN, s->prog, line);
		tail_add(s, line);
	}
	atomic_store(&s->tail_busy, 0);
	return NULL;
}

static void spawn_settle_log(struct fsd_transport *t, int timeout_ms)
{
	struct spawn_transport *s = spawn_of(t);
	struct timespec pause = {0, 2 * 1000 * 1000};
	for (int waited = 0; waited < timeout_ms; waited += 2) {
		int pending = 0;
		if (!s->tail_started || atomic_load(&s->closed))
			return;
		if (!atomic_load(&s->tail_busy) &&
		    (ioctl(s->err_fd, FIONREAD, &pending) < 0 || pending == 0))
			return;
		nanosleep(&pause, NULL);
	}
}

static ssize_t spawn_read(struct fsd_transport *t, void *buf, size_t len)
{
	struct spawn_transport *s = spawn_of(t);
	for (;;) {
		if (atomic_load(&s->closed))
			return -EPIPE;
		ssize_t n = read(s->from_child, buf, len);
		if (n >= 0)
			return n;
		if (errno != EINTR)
			return -errno;
	}
}

static int spawn_write(struct fsd_transport *t, const void *buf, size_t len)
{
	struct spawn_transport *s = spawn_of(t);
	const char *p = buf;
	while (len) {
		if (atomic_load(&s->closed))
			return -EPIPE;
		ssize_t n = write(s->to_child, p, len);
		if (n < 0) {
			if (errno == EAGAIN) {
				struct pollfd pfd[2] = {{s->to_child, POLLOUT, 0},
				                        {s->wake[0], POLLIN, 0}};
				poll(pfd, 2, -1);
				continue;
			}
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static void spawn_shutdown(struct fsd_transport *t)
{
	struct spawn_transport *s = spawn_of(t);
	if (atomic_exchange(&s->closed, 1))
		return;
	char b = 1;
	(void)!write(s->wake[1], &b, 1);
	/* The child's death closes its ends: a blocked read sees end of file and a
	 * blocked write EPIPE (SIGPIPE is ignored by the daemon). */
	pthread_mutex_lock(&s->lock);
	if (!s->reaped)
		kill(s->pid, SIGTERM);
	pthread_mutex_unlock(&s->lock);
}

/* Waits up to ms milliseconds for the child; returns 1 once it is reaped. */
static int spawn_reap(struct spawn_transport *s, int ms)
{
	int rc = 0;
	pthread_mutex_lock(&s->lock);
	for (int waited = 0; !s->reaped; waited += 10) {
		int st;
		pid_t p = waitpid(s->pid, &st, WNOHANG);
		if (p == s->pid || (p < 0 && errno == ECHILD)) {
			s->reaped = 1;
			s->status = p == s->pid ? st : -1;
			break;
		}
		if (waited >= ms)
			break;
		pthread_mutex_unlock(&s->lock);
		struct timespec d = {0, 10 * 1000 * 1000};
		nanosleep(&d, NULL);
		pthread_mutex_lock(&s->lock);
	}
	rc = s->reaped;
	pthread_mutex_unlock(&s->lock);
	return rc;
}

static size_t spawn_describe_exit(struct fsd_transport *t, char *buf, size_t len)
{
	struct spawn_transport *s = spawn_of(t);
	size_t off = 0;
	if (!len)
		return 0;
	buf[0] = 0;
	/* The child usually exits right after closing its output: give it a moment,
	 * and the stderr thread time to read the last lines. */
	spawn_reap(s, 1000);
	if (s->tail_started) {
		pthread_join(s->tail_thread, NULL);
		s->tail_started = 0;
	}
	pthread_mutex_lock(&s->lock);
	if (s->reaped && s->status >= 0) {
		if (WIFEXITED(s->status))
			off += (size_t)snprintf(buf, len, "%s exited with status %d", s->prog,
			                        WEXITSTATUS(s->status));
		else if (WIFSIGNALED(s->status))
			off +=
			    (size_t)snprintf(buf, len, "%s was killed by signal %d (%s)", s->prog,
			                     WTERMSIG(s->status), strsignal(WTERMSIG(s->status)));
	} else {
		off += (size_t)snprintf(buf, len, "%s is still running", s->prog);
	}
	/* The last few lines are the useful ones; more would drown the message. */
	unsigned show = s->tail_count < 5 ? s->tail_count : 5;
	for (unsigned i = 0; i < show && off < len; i++) {
		unsigned idx = (s->tail_next + SPAWN_TAIL_LINES - show + i) % SPAWN_TAIL_LINES;
		off +=
		    (size_t)snprintf(buf + off, len - off, "%s%s", i ? " / " : ": ", s->tail[idx]);
	}
	pthread_mutex_unlock(&s->lock);
	return off < len ? off : len - 1;
}

static void spawn_free(struct fsd_transport *t)
{
	struct spawn_transport *s = spawn_of(t);
	if (!s)
		return;
	atomic_store(&s->closed, 1);
	if (s->to_child >= 0)
		close(s->to_child); /* end of input: the server exits by itself */
	s->to_child = -1;
	if (!spawn_reap(s, 2000)) {
		kill(s->pid, SIGTERM);
		if (!spawn_reap(s, 2000)) {
			kill(s->pid, SIGKILL);
			spawn_reap(s, 5000);
		}
	}
	if (s->tail_started)
		pthread_join(s->tail_thread, NULL);
	if (s->from_child >= 0)
		close(s->from_child);
	if (s->err_fd >= 0)
		close(s->err_fd);
	for (int i = 0; i < 2; i++)
		if (s->wake[i] >= 0)
			close(s->wake[i]);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

static int spawn_read_pipe(struct fsd_transport *t)
{
	return spawn_of(t)->from_child;
}

static const struct fsd_transport_ops spawn_ops = {
    .read = spawn_read,
    .write = spawn_write,
    .shutdown = spawn_shutdown,
    .describe_exit = spawn_describe_exit,
    .free = spawn_free,
    .read_pipe = spawn_read_pipe,
    .settle_log = spawn_settle_log,
};

int fsd_transport_spawn(char *const argv[], struct fsd_transport **out, char *err, size_t errlen)
{
	int in[2] = {-1, -1}, outp[2] = {-1, -1}, errp[2] = {-1, -1};
	posix_spawn_file_actions_t fa;
	int fa_init = 0, rc;
	struct spawn_transport *s = NULL;
	extern char **environ;

	*out = NULL;
	if (!argv || !argv[0]) {
		snprintf(err, errlen, "no command to run");
		return -EINVAL;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	s->to_child = s->from_child = s->err_fd = -1;
	s->wake[0] = s->wake[1] = -1;
	pthread_mutex_init(&s->lock, NULL);
	const char *base = strrchr(argv[0], '/');
	snprintf(s->prog, sizeof(s->prog), "%s", base ? base + 1 : argv[0]);

	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(outp, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0 ||
	    pipe2(s->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot create pipes: %s", strerror(errno));
		goto fail;
	}
	/* Larger pipes: fewer wake-ups when values stream through (best effort). */
	fcntl(in[1], F_SETPIPE_SZ, SPAWN_PIPE_SIZE);
	fcntl(outp[0], F_SETPIPE_SZ, SPAWN_PIPE_SIZE);

	rc = posix_spawn_file_actions_init(&fa);
	if (rc) {
		rc = -rc;
		snprintf(err, errlen, "cannot spawn '%s': %s", argv[0], strerror(-rc));
		goto fail;
	}
	fa_init = 1;
	/* dup2 clears O_CLOEXEC on the copies, so the child keeps exactly 0, 1, 2. */
	if ((rc = posix_spawn_file_actions_adddup2(&fa, in[0], 0)) ||
	    (rc = posix_spawn_file_actions_adddup2(&fa, outp[1], 1)) ||
	    (rc = posix_spawn_file_actions_adddup2(&fa, errp[1], 2))) {
		rc = -rc;
		snprintf(err, errlen, "cannot spawn '%s': %s", argv[0], strerror(-rc));
		goto fail;
	}
	posix_spawnattr_t attr;
	sigset_t none, all;
	posix_spawnattr_init(&attr);
	sigemptyset(&none);
	sigfillset(&all);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &all);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	rc = posix_spawnp(&s->pid, argv[0], &fa, &attr, argv, environ);
	posix_spawnattr_destroy(&attr);
	if (rc) {
		rc = -rc;
		snprintf(err, errlen, "cannot run '%s': %s", argv[0], strerror(-rc));
		goto fail;
	}
	close(in[0]);
	close(outp[1]);
	close(errp[1]);
	in[0] = outp[1] = errp[1] = -1;
	s->to_child = in[1];
	fcntl(s->to_child, F_SETFL, fcntl(s->to_child, F_GETFL) | O_NONBLOCK); /* invariant 2 */
	s->from_child = outp[0];
	s->err_fd = errp[0];
	posix_spawn_file_actions_destroy(&fa);
	fa_init = 0;
	if (pthread_create(&s->tail_thread, NULL, tail_main, s) == 0)
		s->tail_started = 1;
	s->base.ops = &spawn_ops;
	s->base.name = "local";
	*out = &s->base;
	return 0;
fail:
	if (fa_init)
		posix_spawn_file_actions_destroy(&fa);
	for (int i = 0; i < 2; i++) {
		if (in[i] >= 0)
			close(in[i]);
		if (outp[i] >= 0)
			close(outp[i]);
		if (errp[i] >= 0)
			close(errp[i]);
		if (s->wake[i] >= 0)
			close(s->wake[i]);
	}
	pthread_mutex_destroy(&s->lock);
	free(s);
	return rc;
}

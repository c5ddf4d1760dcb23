/*
 * log.c: the daemon's log (log.h). A line is formatted first and written with a
 * single write(2) so that lines from different threads (and, in a shared log file,
 * from different daemons) never interleave.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

/* Where lines go: standard error (before detaching, or in the foreground), syslog,
 * or a file (fd log_fd, lines stamped with the time and the pid). */
enum { TO_STDERR, TO_SYSLOG, TO_FILE };

static atomic_int log_debug;
static atomic_int log_dest = TO_STDERR;
static int log_fd = -1;

/* The server's own prefix, dropped from the lines relayed from it. */
static const char server_prefix[] = "flechefs-server: ";

void fsd_log_set_debug(int debug)
{
	atomic_store(&log_debug, debug != 0);
}

int fsd_log_debug_enabled(void)
{
	return atomic_load(&log_debug);
}

void fsd_log_to_syslog(void)
{
	openlog("flechefs", LOG_PID, LOG_DAEMON);
	atomic_store(&log_dest, TO_SYSLOG);
}

int fsd_log_syslog_available(void)
{
	struct sockaddr_un sa;
	int fd, ok;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "/dev/log");
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

/* mkdir -p of the directories above path (mode 0700 for those it makes). */
static int make_parents(const char *path)
{
	char dir[PATH_MAX];
	if (snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir))
		return -ENAMETOOLONG;
	for (char *p = dir + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(dir, 0700) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	return 0;
}

int fsd_log_default_file(char *buf, size_t len)
{
	const char *state = getenv("XDG_STATE_HOME");
	const char *home = getenv("HOME");
	int n;

	/* XDG: a relative XDG_STATE_HOME is invalid and is ignored */
	if (state && state[0] == '/')
		n = snprintf(buf, len, "%s/flechefs/flechefs.log", state);
	else if (home && home[0] == '/')
		n = snprintf(buf, len, "%s/.local/state/flechefs/flechefs.log", home);
	else
		return -ENOENT;
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int fsd_log_open_file(const char *path)
{
	int rc = make_parents(path);
	if (rc < 0)
		return rc;
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
	if (fd < 0)
		return -errno;
	if (log_fd >= 0)
		close(log_fd);
	log_fd = fd;
	return 0;
}

void fsd_log_to_file(void)
{
	if (log_fd >= 0)
		atomic_store(&log_dest, TO_FILE);
}

/* Writes text (n bytes, room for a newline after it) as one line to fd. */
static void write_line(int fd, char *line, int n, size_t cap)
{
	if (n > (int)cap - 2)
		n = (int)cap - 2;
	line[n++] = '\n';
	if (write(fd, line, (size_t)n) < 0) {
		/* nowhere left to report it */
	}
}

/* Emits one line: prefix ("flechefs: " or an origin) then body. */
static void emit(enum fsd_log_level level, const char *prefix, const char *body)
{
	static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
	char line[2304];
	int dest = atomic_load(&log_dest), n;

	if (dest == TO_SYSLOG) {
		syslog(prio[level], "%s%s", prefix, body);
		return;
	}
	if (dest == TO_FILE) {
		struct timespec ts;
		struct tm tm;
		char when[32];
		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
		n = snprintf(line, sizeof(line), "%s flechefs[%ld]: %s%s", when, (long)getpid(),
		             prefix, body);
		write_line(log_fd, line, n, sizeof(line));
		return;
	}
	n = snprintf(line, sizeof(line), "%s%s", prefix, body);
	write_line(2, line, n, sizeof(line));
}

void fsd_vlog(enum fsd_log_level level, const char *fmt, va_list ap)
{
	char body[2048];

	if (level == FSD_LOG_DEBUG && !atomic_load(&log_debug))
		return;
	vsnprintf(body, sizeof(body), fmt, ap);
	/* on syslog and in the file the program is named by the line's stamp */
	emit(level, atomic_load(&log_dest) == TO_STDERR ? "flechefs: " : "", body);
}

void fsd_log(enum fsd_log_level level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fsd_vlog(level, fmt, ap);
	va_end(ap);
}

void fsd_log_relay(enum fsd_log_level level, const char *origin, const char *line)
{
	char prefix[320];

	if (strncmp(line, server_prefix, sizeof(server_prefix) - 1) == 0) {
		emit(level, server_prefix, line + sizeof(server_prefix) - 1);
		return;
	}
	snprintf(prefix, sizeof(prefix), "%s: ", origin);
	emit(level, prefix, line);
}

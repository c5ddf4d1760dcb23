/*
 * log.c: the daemon's log (log.h). A line is formatted first and written with a
 * single write(2) so that lines from different threads never interleave.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "log.h"

static atomic_int log_debug;
static atomic_int log_syslog;

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
	atomic_store(&log_syslog, 1);
}

void fsd_vlog(enum fsd_log_level level, const char *fmt, va_list ap)
{
	static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
	char line[2048];
	int n;

	if (level == FSD_LOG_DEBUG && !atomic_load(&log_debug))
		return;
	if (atomic_load(&log_syslog)) {
		vsnprintf(line, sizeof(line), fmt, ap);
		syslog(prio[level], "%s", line);
		return;
	}
	n = snprintf(line, sizeof(line), "flechefs: ");
	n += vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	if (n > (int)sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	if (write(2, line, (size_t)n) < 0) {
		/* nowhere left to report it */
	}
}

void fsd_log(enum fsd_log_level level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fsd_vlog(level, fmt, ap);
	va_end(ap);
}

/*
 * log.h: the daemon's log. Lines go to standard error while the daemon runs in the
 * foreground (or before it detaches) and to syslog (facility daemon, ident
 * "flechefs") once it has detached. Thread-safe; one line per call.
 */
#ifndef FLECHEFS_FUSEFS_LOG_H
#define FLECHEFS_FUSEFS_LOG_H

#include <stdarg.h>

enum fsd_log_level {
	FSD_LOG_ERR,
	FSD_LOG_WARN,
	FSD_LOG_INFO,
	FSD_LOG_DEBUG,
};

/* Shows debug lines too when debug is nonzero (-d). */
void fsd_log_set_debug(int debug);
/* Nonzero once debug lines are shown. */
int fsd_log_debug_enabled(void);
/* From now on, lines go to syslog instead of standard error. */
void fsd_log_to_syslog(void);
/* Writes one line ("flechefs: " is prepended on standard error). */
void fsd_log(enum fsd_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void fsd_vlog(enum fsd_log_level level, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

#endif

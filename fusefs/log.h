/*
 * log.h: the daemon's log. Lines go to standard error while the daemon runs in the
 * foreground (or before it detaches); once it has detached, to syslog (facility
 * daemon, ident "flechefs") or to a file (-o log=FILE, or the default file when
 * there is no syslog), each line stamped with the UTC time and the pid.
 * Thread-safe; one line per call, one prefix per line.
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
/* Nonzero when a syslog daemon listens on /dev/log. */
int fsd_log_syslog_available(void);
/* The default log file, $XDG_STATE_HOME/flechefs/flechefs.log (else
 * ~/.local/state/...), into buf. 0, or -ENOENT (no home) / -ENAMETOOLONG. */
int fsd_log_default_file(char *buf, size_t len);
/* Opens path for appending (making its missing parent directories, mode 0700) as
 * the log file for fsd_log_to_file. 0 or -errno. */
int fsd_log_open_file(const char *path);
/* From now on, lines go to the file opened by fsd_log_open_file (if any). */
void fsd_log_to_file(void);
/* Writes one line ("flechefs: " is prepended on standard error). */
void fsd_log(enum fsd_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void fsd_vlog(enum fsd_log_level level, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
/* Writes a line another program printed (the server's standard error): prefixed
 * with origin, or kept as it is when it carries the server's own prefix. */
void fsd_log_relay(enum fsd_log_level level, const char *origin, const char *line);

#endif

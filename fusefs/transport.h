/*
 * transport.h: the byte stream between the daemon and one flechefs-server. Three
 * implementations: a child process on a pipe pair (local cache, or the system ssh
 * client with -o ssh_command), and an exec channel of a libssh2 session.
 *
 * Threading: one thread reads (the connection's reader) while any number of
 * threads write, serialised by the caller (conn.c holds a write lock). shutdown may
 * be called from any thread, at any time, and makes blocked read/write calls return.
 */
#ifndef FLECHEFS_FUSEFS_TRANSPORT_H
#define FLECHEFS_FUSEFS_TRANSPORT_H

#include <stddef.h>
#include <sys/types.h>

struct fsd_transport;

struct fsd_transport_ops {
	/* Reads up to len bytes; blocks until at least one byte, end of stream (0) or
	 * an error (-errno). */
	ssize_t (*read)(struct fsd_transport *t, void *buf, size_t len);
	/* Writes all len bytes or fails: 0 or -errno. */
	int (*write)(struct fsd_transport *t, const void *buf, size_t len);
	/* Makes pending and future read/write calls fail; idempotent, thread-safe. */
	void (*shutdown)(struct fsd_transport *t);
	/*
	 * After end of stream: fills buf with what is known of why the peer ended (the
	 * exit status and the last lines of the server's standard error), e.g.
	 * "exited with status 127: sh: 1: flechefs-server: not found". Returns the
	 * length written (0 when nothing is known).
	 */
	size_t (*describe_exit)(struct fsd_transport *t, char *buf, size_t len);
	/* Releases everything (waits for a child, closes the channel). */
	void (*free)(struct fsd_transport *t);
	/*
	 * Optional (NULL when absent): the pipe that read() reads from, so that the
	 * reader may splice a value's bytes from it straight to the kernel instead of
	 * copying them through memory; -1 when the bytes do not come from a pipe.
	 */
	int (*read_pipe)(struct fsd_transport *t);
	/*
	 * Optional: returns once what the server has written to its standard error so
	 * far is in the daemon's log (or after timeout_ms), so that warnings the server
	 * gave before an answer are logged before the caller goes on.
	 */
	void (*settle_log)(struct fsd_transport *t, int timeout_ms);
};

struct fsd_transport {
	const struct fsd_transport_ops *ops;
	const char *name; /* "local", "ssh-command", "libssh2": for log lines */
};

/*
 * A connector makes a new transport: called once at mount time and again for every
 * reconnection. Returns 0 and sets *out, or -errno with a message in err. `interactive`
 * is nonzero while the terminal may still be used for prompts (before daemonizing).
 */
struct fsd_connector {
	int (*connect)(struct fsd_connector *c, int interactive, struct fsd_transport **out,
		       char *err, size_t errlen);
	/* Nonzero when connect can succeed again without a person (no prompt needed). */
	int (*can_reconnect)(struct fsd_connector *c);
	void (*free)(struct fsd_connector *c);
};

/*
 * A transport on a child process: runs argv (argv[0] searched in PATH) with its
 * standard input and output on pipes and its standard error captured (the last lines
 * kept for describe_exit, every line also written to the daemon's log). Used for the
 * local server and for -o ssh_command.
 */
int fsd_transport_spawn(char *const argv[], struct fsd_transport **out, char *err,
			size_t errlen);

#endif

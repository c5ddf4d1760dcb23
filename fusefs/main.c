/*
 * main.c: the flechefs command line. `flechefs [options] CACHE_DIR MOUNTPOINT`
 * starts flechefs-server locally on a pipe pair; `flechefs [options]
 * [user@]host:[path] MOUNTPOINT` reaches it over SSH (ssh.h). Either way the daemon
 * connects, says hello, mounts, lists calls/ once, and only then detaches: every
 * failure before that point is a message and a non-zero exit, never a dead mount.
 *
 * Detaching: the process forks before any thread starts (the connection's threads
 * would not survive a fork) and the parent waits on a pipe until the child says the
 * mount works ("ok") or exits; the parent then exits 0 or with the child's status.
 * The child keeps the terminal until then, so SSH prompts still reach the user.
 *
 * Ending: when the mount is removed, libfuse's loop returns; when the server dies
 * and cannot be reached again, the connection's on_down hook ends the loop (by
 * fuse_session_exit and a signal to the main thread) and the daemon unmounts.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cacheinfo.h"
#include "conn.h"
#include "fs.h"
#include "log.h"
#include "ssh.h"

struct options {
	char *source;
	char *mountpoint; /* as given, for an early check */
	int nonopts;
	int read_only;
	int timeout;
	unsigned readahead_kb;
	char *ssh_given; /* the first SSH-only option given (warned about with a local source) */
	char *log_file;  /* -o log=FILE: the log once detached (NULL: syslog, else the default file) */
	int no_splice;
	int evict_all;
	double cache_timeout;
	double negative_timeout;
	char *server; /* -o server=CMD (also handed to the SSH options) */
	int show_help;
	int show_version;
	int bad;
	struct fsd_ssh_options ssh;
};

enum { KEY_HELP, KEY_VERSION, KEY_PORT, KEY_RO, KEY_CACHE };

/* The largest -o readahead_kb (1 GiB). */
#define READAHEAD_KB_MAX (1024u * 1024)

/* Reads readahead_kb's value: decimal KiB, 0 to READAHEAD_KB_MAX. 0 or -1. */
static int parse_readahead(const char *s, unsigned *out)
{
	char *end;
	unsigned long v;
	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v > READAHEAD_KB_MAX)
		return -1;
	*out = (unsigned)v;
	return 0;
}

/* Remembers the first option that only means something with an SSH source. */
static void note_ssh_option(struct options *o, const char *what)
{
	if (!o->ssh_given)
		o->ssh_given = strdup(what);
}

static const struct fuse_opt opt_spec[] = {
    {"timeout=%i", offsetof(struct options, timeout), 0},
    {"nosplice", offsetof(struct options, no_splice), 1},
    {"evict_all", offsetof(struct options, evict_all), 1},
    {"cache_timeout=%lf", offsetof(struct options, cache_timeout), 0},
    {"negative_timeout=%lf", offsetof(struct options, negative_timeout), 0},
    FUSE_OPT_KEY("-h", KEY_HELP),
    FUSE_OPT_KEY("--help", KEY_HELP),
    FUSE_OPT_KEY("-V", KEY_VERSION),
    FUSE_OPT_KEY("--version", KEY_VERSION),
    FUSE_OPT_KEY("-p ", KEY_PORT),
    FUSE_OPT_KEY("ro", KEY_RO),
    FUSE_OPT_KEY("--cache ", KEY_CACHE),
    FUSE_OPT_KEY("--cache=", KEY_CACHE),
    /* what an fstab line or mount(8) may hand a mount helper, meant for mount(8)
     * and systemd only (as sshfs discards them) */
    FUSE_OPT_KEY("_netdev", FUSE_OPT_KEY_DISCARD),
    FUSE_OPT_KEY("nofail", FUSE_OPT_KEY_DISCARD),
    FUSE_OPT_KEY("auto", FUSE_OPT_KEY_DISCARD),
    FUSE_OPT_KEY("noauto", FUSE_OPT_KEY_DISCARD),
    FUSE_OPT_KEY("user", FUSE_OPT_KEY_DISCARD),
    FUSE_OPT_KEY("nouser", FUSE_OPT_KEY_DISCARD),
    FUSE_OPT_KEY("users", FUSE_OPT_KEY_DISCARD),
    FUSE_OPT_KEY("defaults", FUSE_OPT_KEY_DISCARD),
    FUSE_OPT_KEY("comment=", FUSE_OPT_KEY_DISCARD),
    FUSE_OPT_END,
};

static int opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct options *o = data;
	switch (key) {
	case FUSE_OPT_KEY_NONOPT:
		if (!o->source) {
			o->source = strdup(arg);
			return 0;
		}
		if (!o->mountpoint)
			o->mountpoint = strdup(arg);
		o->nonopts++;
		return 1; /* the mount point, for fuse_parse_cmdline */
	case KEY_HELP:
		o->show_help = 1;
		return 0;
	case KEY_VERSION:
		o->show_version = 1;
		return 0;
	case KEY_PORT:
		if (fsd_ssh_opt(&o->ssh, "port", arg + 2) < 0)
			o->bad = 1;
		note_ssh_option(o, "-p");
		return 0;
	case KEY_RO:
		o->read_only = 1;
		return 1; /* the kernel mounts read-only too */
	case KEY_CACHE:
		/* "--cacheNAME" or "--cache=NAME": the same as -o cache=NAME */
		arg += strlen("--cache");
		if (fsd_ssh_opt(&o->ssh, "cache", arg + (*arg == '=')) < 0)
			o->bad = 1;
		return 0;
	case FUSE_OPT_KEY_OPT: {
		if (strncmp(arg, "x-", 2) == 0)
			return 0; /* x-systemd.automount and the like: comments for others */
		const char *eq = strchr(arg, '=');
		if (!eq)
			return 1;
		char k[128];
		size_t kl = (size_t)(eq - arg);
		if (kl >= sizeof(k))
			return 1;
		memcpy(k, arg, kl);
		k[kl] = 0;
		if (strcmp(k, "readahead_kb") == 0) {
			if (parse_readahead(eq + 1, &o->readahead_kb) < 0) {
				fprintf(stderr,
				        "flechefs: bad value '%s' for option 'readahead_kb': give "
				        "KiB from 0 to %u\n",
				        eq + 1, READAHEAD_KB_MAX);
				o->bad = 1;
			}
			return 0;
		}
		if (strcmp(k, "log") == 0) {
			free(o->log_file);
			o->log_file = strdup(eq + 1);
			return 0;
		}
		if (strcmp(k, "server") == 0) {
			free(o->server);
			o->server = strdup(eq + 1);
		}
		int r = fsd_ssh_opt(&o->ssh, k, eq + 1);
		if (r < 0)
			o->bad = 1;
		if (r > 0 && strcmp(k, "server") != 0)
			note_ssh_option(o, k);
		if (r != 0)
			return 0;
		if (strcmp(k, "server") == 0)
			return 0;
		return 1;
	}
	default:
		return 1;
	}
}

static void usage(const char *prog)
{
	printf("usage: %s [options] CACHE_DIR MOUNTPOINT\n"
	       "       %s [options] [user@]host:[path] MOUNTPOINT\n"
	       "       %s --cache NAME [options] [DIR] MOUNTPOINT\n"
	       "\n"
	       "Mounts a fleche cache as a tree of calls/, values/, digests/ and by-name/.\n"
	       "Unmount with: fusermount3 -u MOUNTPOINT\n"
	       "\n"
	       "flechefs options:\n"
	       "    -h, --help             print this help and exit\n"
	       "    -V, --version          print the version and exit\n"
	       "    -f                     stay in the foreground\n"
	       "    -d                     debug output (implies -f)\n"
	       "    -s                     single-threaded\n"
	       "    -o ro                  read-only mount: every change fails with EROFS\n"
	       "    -o cache=NAME, --cache NAME\n"
	       "                           serve the cache NAME of fleche.toml, found as fleche\n"
	       "                           finds it from DIR, the remote path, or else the\n"
	       "                           directory the server starts in (locally: this one)\n"
	       "    -o server=CMD          the server program (default: flechefs-server next\n"
	       "                           to flechefs, then in PATH)\n"
	       "    -o timeout=S           seconds before a request fails with EIO (30)\n"
	       "    -o cache_timeout=S     seconds listings and call entries are cached (5)\n"
	       "    -o negative_timeout=S  seconds a missing name is cached (1)\n"
	       "    -o readahead_kb=N      kernel readahead for the mount, when allowed (4096)\n"
	       "    -o nosplice            copy values through memory instead of splicing them\n"
	       "                           from the local server's pipe to the kernel\n"
	       "    -o evict_all           let rmdir evict any number of calls (by default, after\n"
	       "                           16 evictions within 10 s the next ones fail with\n"
	       "                           EBUSY until they pause for 10 s)\n"
	       "    -o log=FILE            the log once detached (default: syslog; without\n"
	       "                           one, $XDG_STATE_HOME/flechefs/flechefs.log)\n"
	       "\n"
	       "%s\n"
	       "FUSE options:\n"
	       "    -o clone_fd            a separate FUSE device fd for each thread\n"
	       "    -o max_idle_threads=N  idle worker threads kept (default: no limit)\n"
	       "    -o max_threads=N       worker threads at most (default: 32)\n",
	       prog, prog, prog, fsd_ssh_help());
	/* fuse_cmdline_help() would list -h, -V, -d, -f and -s a second time */
	fuse_lowlevel_help();
}

/* --- the local server --- */

static int executable(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0 && S_ISREG(st.st_mode) && access(p, X_OK) == 0;
}

/* The server next to our executable (installed), or in the build tree's server/. */
static char *find_server(void)
{
	char self[PATH_MAX], cand[PATH_MAX + 64];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = 0;
		char *slash = strrchr(self, '/');
		if (slash) {
			*slash = 0;
			snprintf(cand, sizeof(cand), "%s/flechefs-server", self);
			if (executable(cand))
				return strdup(cand);
			snprintf(cand, sizeof(cand), "%s/../server/flechefs-server", self);
			if (executable(cand))
				return realpath(cand, NULL);
		}
	}
	return strdup("flechefs-server"); /* searched in PATH */
}

static struct fsd_connector *local_connector(struct options *o, char *err, size_t errlen)
{
	struct stat st;
	char *root = NULL, *server = NULL, *cmd = NULL;
	const char *cache = o->ssh.cache;
	struct fsd_connector *c = NULL;
	char *argv[12];
	size_t n = 0;

	if (stat(o->source, &st) < 0) {
		snprintf(err, errlen, "cannot use cache directory '%s': %s", o->source,
		         strerror(errno));
		return NULL;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "cannot use cache directory '%s': not a directory",
		         o->source);
		return NULL;
	}
	/* with a cache name, the directory fleche.toml is looked for from */
	root = realpath(o->source, NULL);
	server = o->server ? strdup(o->server) : find_server();
	if (!root || !server) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if (strpbrk(server, " \t'\"$;&|")) {
		/* A command line, not a program: let the shell split it. */
		if (asprintf(&cmd, "exec %s \"$@\"", server) < 0) {
			cmd = NULL;
			snprintf(err, errlen, "out of memory");
			goto out;
		}
		argv[n++] = "/bin/sh";
		argv[n++] = "-c";
		argv[n++] = cmd;
		argv[n++] = "flechefs-server";
	} else {
		argv[n++] = server;
	}
	argv[n++] = "--serve";
	argv[n++] = cache ? "--config-from" : "--root";
	argv[n++] = root;
	if (cache) {
		argv[n++] = "--cache";
		argv[n++] = (char *)cache;
	}
	if (o->read_only)
		argv[n++] = "--read-only";
	argv[n] = NULL;
	c = fsd_spawn_connector_new(argv);
	if (!c)
		snprintf(err, errlen, "out of memory");
out:
	free(cmd);
	free(root);
	free(server);
	return c;
}

/* --- the mount's names --- */

/*
 * Names the mount as sshfs does, so that /proc/mounts, df and findmnt show which
 * cache it is: fsname is the source ("[user@]host:path" as given, or the local
 * directory made absolute) and the type fuse.flechefs. An -o fsname= or -o subtype=
 * the user gave wins. 0, or -1 when out of memory.
 */
static int add_mount_names(struct fuse_args *args, const struct options *o)
{
	char *fsname = NULL, *opt = NULL;
	int rc = -1;

	int has_subtype = 0;
	/* fuse_parse_cmdline has added subtype=<program> unless fsname= was given */
	for (int i = 1; i < args->argc; i++) {
		if (strstr(args->argv[i], "fsname="))
			return 0;
		has_subtype |= strstr(args->argv[i], "subtype=") != NULL;
	}
	if (fsd_ssh_is_remote(o->source))
		fsname = strdup(o->source);
	else
		fsname = realpath(o->source, NULL);
	if (!fsname)
		fsname = strdup(o->source);
	if (!fsname)
		return -1;
	if (!has_subtype && fuse_opt_add_arg(args, "-osubtype=flechefs") != 0)
		goto out;
	if (asprintf(&opt, "fsname=%s", fsname) < 0) {
		opt = NULL;
		goto out;
	}
	/* escaped: a comma or backslash in a path must not split the option */
	char *escaped = NULL;
	if (fuse_opt_add_opt_escaped(&escaped, opt) != 0)
		goto out;
	free(opt);
	opt = NULL;
	if (asprintf(&opt, "-o%s", escaped) < 0) {
		opt = NULL;
		free(escaped);
		goto out;
	}
	free(escaped);
	rc = fuse_opt_add_arg(args, opt) == 0 ? 0 : -1;
out:
	free(opt);
	free(fsname);
	return rc;
}

/* --- ending --- */

static pthread_t main_thread;
/* The session while the loop may run; set and cleared under session_lock, so that
 * on_down never ends a session (or signals a thread whose handlers are gone) after
 * the main thread has left the loop. */
static pthread_mutex_t session_lock = PTHREAD_MUTEX_INITIALIZER;
static struct fuse_session *the_session;

static void set_session(struct fuse_session *se)
{
	pthread_mutex_lock(&session_lock);
	the_session = se;
	pthread_mutex_unlock(&session_lock);
}

static void on_down(void *ctx, const char *why)
{
	fsd_log(FSD_LOG_ERR, "the server is gone (%s): unmounting", why);
	pthread_mutex_lock(&session_lock);
	int live = the_session != NULL;
	pthread_mutex_unlock(&session_lock);
	if (!live)
		return;
	/* Readers in the middle of a value see EIO for a moment (every request now
	 * fails at once) rather than the ENOTCONN of a vanished mount. */
	struct timespec grace = {1, 500 * 1000 * 1000};
	nanosleep(&grace, NULL);
	pthread_mutex_lock(&session_lock);
	if (the_session) {
		fuse_session_exit(the_session);
		/* Wakes the main thread out of the loop's wait (libfuse's handler for
		 * SIGTERM calls fuse_session_exit; the wait then sees it). */
		pthread_kill(main_thread, SIGTERM);
	}
	pthread_mutex_unlock(&session_lock);
}

static void ssh_log(const char *line)
{
	fsd_log(FSD_LOG_WARN, "%s", line);
}

/* --- detaching --- */

static volatile pid_t waited_child;

/* In the waiting parent: a signal meant for flechefs goes to the child, which may be
 * at a prompt with the terminal's echo off, and ends it the way it ends itself. */
static void forward_signal(int sig)
{
	if (waited_child > 0)
		kill(waited_child, sig);
}

/*
 * Forks; the parent waits for "ok" on the pipe and exits (forwarding SIGINT,
 * SIGTERM, SIGHUP and SIGQUIT to the child meanwhile). Returns the write end in the
 * child (-1 in the foreground).
 */
static int fork_and_wait(void)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	pid_t pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid > 0) {
		static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
		char buf[2];
		close(p[1]);
		waited_child = pid;
		for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
			struct sigaction sa, old;
			memset(&sa, 0, sizeof(sa));
			sa.sa_handler = forward_signal;
			sigemptyset(&sa.sa_mask);
			/* an ignored signal (nohup) stays ignored */
			if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler != SIG_IGN)
				sigaction(sigs[i], &sa, NULL);
		}
		ssize_t n;
		do
			n = read(p[0], buf, sizeof(buf));
		while (n < 0 && errno == EINTR);
		if (n == 2 && memcmp(buf, "ok", 2) == 0)
			_exit(0);
		int st;
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
		if (WIFSIGNALED(st) && WTERMSIG(st) != SIGKILL) {
			/* ended by a signal: so does flechefs, as the shell expects */
			signal(WTERMSIG(st), SIG_DFL);
			raise(WTERMSIG(st));
		}
		_exit(WIFEXITED(st) && WEXITSTATUS(st) ? WEXITSTATUS(st) : 1);
	}
	close(p[0]);
	return p[1];
}

/*
 * Chooses where the log goes once detached, while the terminal can still be told:
 * the file of -o log= (opened at start), else syslog when a daemon listens, else the
 * default file under $XDG_STATE_HOME. Returns nonzero for a file, 0 for syslog.
 */
static int choose_log(const struct options *o)
{
	char path[PATH_MAX];
	int rc;

	if (o->log_file)
		return 1;
	if (fsd_log_syslog_available())
		return 0;
	rc = fsd_log_default_file(path, sizeof(path));
	if (rc == 0)
		rc = fsd_log_open_file(path);
	if (rc < 0)
		fprintf(stderr,
		        "flechefs: warning: no syslog and cannot write the log file%s%s%s: %s; "
		        "the log is lost (choose one with -o log=FILE)\n",
		        rc == -ENOENT ? "" : " '", rc == -ENOENT ? "" : path,
		        rc == -ENOENT ? "" : "'", rc == -ENOENT ? "no home directory" : strerror(-rc));
	return 1;
}

static void detach(int fd, const struct options *o)
{
	if (fd < 0)
		return;
	int to_file = choose_log(o);
	setsid();
	if (chdir("/") < 0) {
		/* nothing depends on the directory */
	}
	int nul = open("/dev/null", O_RDWR);
	if (nul >= 0) {
		dup2(nul, 0);
		dup2(nul, 1);
		if (to_file)
			fsd_log_to_file();
		else
			fsd_log_to_syslog();
		dup2(nul, 2);
		if (nul > 2)
			close(nul);
	}
	if (write(fd, "ok", 2) != 2) {
		/* the parent is gone: nothing to tell */
	}
	close(fd);
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_cmdline_opts fopts;
	struct options o;
	struct fsd_connector *connector = NULL;
	struct fsd_conn *conn = NULL;
	struct fsd_fs *fs = NULL;
	struct fuse_session *se = NULL;
	char *mount_real = NULL;
	int mounted = 0, handlers = 0, status_fd = -1, ret = 1;
	char err[2048];

	memset(&o, 0, sizeof(o));
	memset(&fopts, 0, sizeof(fopts));
	o.timeout = 30;
	o.readahead_kb = 4096;
	o.cache_timeout = 5;
	o.negative_timeout = 1;
	fsd_ssh_options_init(&o.ssh);
	signal(SIGPIPE, SIG_IGN);

	if (fuse_opt_parse(&args, &o, opt_spec, opt_proc) == -1 || o.bad)
		goto out;
	if (o.show_help) {
		usage(argv[0]);
		ret = 0;
		goto out;
	}
	if (o.show_version) {
		printf("flechefs %s\n", FLECHEFS_VERSION);
		printf("FUSE library version %s\n", fuse_pkgversion());
		fflush(stdout);
		fuse_lowlevel_version();
		ret = 0;
		goto out;
	}
	if (o.ssh.cache && o.source && !o.mountpoint) {
		/* flechefs --cache NAME MOUNTPOINT: the one argument is the mount point, and
		 * fleche.toml is looked for from here */
		o.mountpoint = o.source;
		o.source = getcwd(NULL, 0);
		if (!o.source || fuse_opt_add_arg(&args, o.mountpoint) != 0) {
			fprintf(stderr, "flechefs: cannot start: %s\n", strerror(errno));
			goto out;
		}
	}
	if (o.mountpoint) {
		struct stat st;
		int bad = stat(o.mountpoint, &st) < 0 ? errno : S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
		if (bad) {
			fprintf(stderr, "flechefs: cannot mount on '%s': %s\n", o.mountpoint,
			        strerror(bad));
			goto out;
		}
	}
	if (o.nonopts > 1) {
		fprintf(stderr, "flechefs: too many arguments (see --help)\n");
		goto out;
	}
	if (fuse_parse_cmdline(&args, &fopts) != 0)
		goto out;
	if (!o.source || !fopts.mountpoint) {
		fprintf(stderr,
		        "flechefs: %s\nusage: %s [options] CACHE_DIR MOUNTPOINT (see --help)\n",
		        !o.source ? "no cache directory given" : "no mount point given", argv[0]);
		goto out;
	}
	if (o.timeout <= 0 || o.cache_timeout < 0 || o.negative_timeout < 0) {
		fprintf(stderr, "flechefs: timeouts must be positive\n");
		goto out;
	}
	if (o.log_file) {
		int lrc = o.log_file[0] ? fsd_log_open_file(o.log_file) : -EINVAL;
		if (lrc < 0) {
			fprintf(stderr, "flechefs: cannot open log file '%s': %s\n", o.log_file,
			        strerror(-lrc));
			goto out;
		}
	}
	fsd_log_set_debug(fopts.debug);
	fsd_ssh_set_log(ssh_log);

	if (fsd_ssh_is_remote(o.source)) {
		connector = fsd_ssh_connector_new(o.source, &o.ssh, o.read_only, err, sizeof(err));
	} else {
		if (o.ssh_given)
			fprintf(stderr,
			        "flechefs: warning: SSH option '%s' ignored: '%s' is a local "
			        "directory (a remote source is [user@]host:[path])\n",
			        o.ssh_given, o.source);
		connector = local_connector(&o, err, sizeof(err));
	}
	if (!connector) {
		fprintf(stderr, "flechefs: %s\n", err);
		goto out;
	}

	/* Everything from here may start threads: detach first (see the top). */
	if (!fopts.foreground) {
		status_fd = fork_and_wait();
		if (status_fd < 0) {
			fprintf(stderr, "flechefs: cannot fork: %s\n", strerror(errno));
			goto out;
		}
	}
	main_thread = pthread_self();

	struct fsd_conn_options co = {
	    .timeout = o.timeout,
	    .client_name = "flechefs " FLECHEFS_VERSION,
	    .on_down = on_down,
	};
	conn = fsd_conn_new(connector, &co);
	if (!conn) {
		fprintf(stderr, "flechefs: out of memory\n");
		goto out;
	}
	if (fsd_conn_start(conn, 1, err, sizeof(err)) < 0) {
		fprintf(stderr, "flechefs: cannot start the server for '%s': %s\n", o.source, err);
		goto out;
	}
	/* resolved now: once mounted, a stat of the mount point would ask ourselves */
	mount_real = realpath(fopts.mountpoint, NULL);
	struct fsd_fs_options fso = {
	    .cache_timeout = o.cache_timeout,
	    .negative_timeout = o.negative_timeout,
	    .read_only = o.read_only,
	    .no_splice = o.no_splice,
	    .mountpoint = mount_real,
	    .readahead_kb = o.readahead_kb,
	    .evict_all = o.evict_all,
	};
	fs = fsd_fs_new(conn, &fso);
	if (!fs) {
		fprintf(stderr, "flechefs: out of memory\n");
		goto out;
	}
	/* (a cache named in fleche.toml is what it is: the server refuses what it cannot
	 * serve, and one fleche has not written to yet is empty, as fleche sees it) */
	if ((!o.ssh.cache && fsd_cache_require(fsd_conn_server(conn), o.source, err,
	                                       sizeof(err)) < 0) ||
	    fsd_fs_check(fs, err, sizeof(err)) < 0) {
		fprintf(stderr, "flechefs: %s\n", err);
		goto out;
	}
	/* The kernel checks every access against the modes and owner the tree shows (the
	 * mounter's), so that with allow_other what ls -l shows is what is enforced:
	 * other users read, only the mounter evicts. */
	fsd_cache_probe(conn);
	if (fuse_opt_add_arg(&args, "-odefault_permissions") != 0 ||
	    add_mount_names(&args, &o) < 0) {
		fprintf(stderr, "flechefs: out of memory\n");
		goto out;
	}
	se = fuse_session_new(&args, fsd_fs_ops(), sizeof(*fsd_fs_ops()), fs);
	if (!se) {
		fprintf(stderr, "flechefs: bad FUSE options (see --help)\n");
		goto out;
	}
	fsd_fs_set_session(fs, se);
	if (fuse_set_signal_handlers(se) != 0)
		goto out;
	handlers = 1;
	if (fuse_session_mount(se, fopts.mountpoint) != 0) {
		fprintf(stderr, "flechefs: cannot mount on '%s'\n", fopts.mountpoint);
		goto out;
	}
	mounted = 1;
	set_session(se);
	if (!fsd_conn_is_up(conn)) {
		fprintf(stderr, "flechefs: the server went away during the mount\n");
		goto out;
	}
	fsd_log(FSD_LOG_DEBUG, "mounted '%s' on '%s'", o.source, fopts.mountpoint);
	detach(status_fd, &o);
	status_fd = -1;

	if (fopts.singlethread) {
		ret = fuse_session_loop(se);
	} else {
		struct fuse_loop_config *lc = fuse_loop_cfg_create();
		if (!lc)
			goto out;
		fuse_loop_cfg_set_clone_fd(lc, (unsigned)fopts.clone_fd);
		/* UINT_MAX: not given (libfuse would log it as invalid). */
		if (fopts.max_idle_threads != UINT_MAX)
			fuse_loop_cfg_set_idle_threads(lc, fopts.max_idle_threads);
		fuse_loop_cfg_set_max_threads(lc, fopts.max_threads > 0 ? fopts.max_threads : 32);
		ret = fuse_session_loop_mt(se, lc);
		fuse_loop_cfg_destroy(lc);
	}
	/* A signal or the server's end both leave the loop; neither is a failure. */
	ret = 0;
	fsd_log(FSD_LOG_INFO, "unmounting '%s'", fopts.mountpoint);
out:
	set_session(NULL);
	if (se && mounted)
		fuse_session_unmount(se);
	if (se && handlers)
		fuse_remove_signal_handlers(se);
	if (conn)
		fsd_conn_close(conn);
	if (!fsd_fs_quiesce(fs)) {
		/* a thread still uses them: leave them to the exit rather than free them */
		fsd_log(FSD_LOG_WARN, "a helper thread did not end; exiting without "
		                      "freeing the session");
		se = NULL;
		fs = NULL;
	}
	if (se)
		fuse_session_destroy(se);
	fsd_fs_free(fs);
	free(mount_real);
	fsd_conn_free(conn);
	if (connector)
		connector->free(connector);
	fsd_ssh_options_release(&o.ssh);
	free(o.server);
	free(o.ssh_given);
	free(o.log_file);
	free(o.source);
	free(o.mountpoint);
	free(fopts.mountpoint);
	fuse_opt_free_args(&args);
	if (status_fd >= 0)
		close(status_fd);
	return ret;
}

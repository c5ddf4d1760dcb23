/*
 * sshread: reads a remote command's output through flechefs's libssh2 transport
 * (fusefs/sshio.c) the way the daemon's reader does, but with pauses, and reports how
 * long each read waited. A test helper (tests/e2e/test_ssh_stream.py), not installed.
 *
 *	sshread [-o key=value]... [-p PORT] [-c CYCLES] [-b BYTES] [-s MS] HOST:PATH
 *
 * The options are flechefs's SSH options (fsd_ssh_opt); "-o server=CMD" names the
 * remote command, which is run as flechefs-server would be
 * (CMD --serve --root PATH), so a shell one-liner that streams bytes serves. Each of
 * CYCLES cycles sleeps MS milliseconds (time for the transport to fill its receive
 * buffer while nobody reads), then reads BYTES bytes as fast as it can. Prints one
 * JSON object: bytes read, cycles done, and the longest wait of one read() call in
 * the reading phase of any cycle, in milliseconds. Exit status 0 when every cycle
 * got its bytes, 1 otherwise (the transport's error on standard error).
 *
 *	sshread [-o key=value]... [-p PORT] [-i SECONDS] -w BYTES [-e] HOST:PATH
 *
 * stays idle for SECONDS (keepalives go out, nothing else), then writes BYTES bytes to the remote
 *command's standard input in 256 KiB writes while a thread reads (and counts) its output; with -e
 *the output is an echo of the input, which must then come back whole (within 120 s). Prints
 *{"written": N, "read": M}; exit status 0 when all was written (and echoed), 1 otherwise.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "ssh.h"
#include "transport.h"

/* Milliseconds, with the fraction, on the daemon's clock. */
static double now_ms(void)
{
	return (double)fsd_now_us() / 1e3;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int usage(void)
{
	fprintf(stderr, "usage: sshread [-o key=value]... [-p PORT] [-c CYCLES] [-b BYTES] "
	                "[-s MS] HOST:PATH\n"
	                "       sshread [-o key=value]... [-p PORT] [-i SECONDS] -w BYTES [-e] "
	                "HOST:PATH\n");
	return 2;
}

struct drain {
	struct fsd_transport *t;
	atomic_ullong got;
	atomic_int ended;
};

static void *drain_main(void *arg)
{
	struct drain *d = arg;
	static char buf[64 << 10];
	ssize_t n;
	while ((n = d->t->ops->read(d->t, buf, sizeof(buf))) > 0)
		atomic_fetch_add(&d->got, (unsigned long long)n);
	atomic_store(&d->ended, 1);
	return NULL;
}

/* The -w mode: writes total bytes (after idle_s seconds) while a thread reads. */
static int write_mode(struct fsd_transport *t, unsigned long long total, int echo, long idle_s)
{
	static char buf[256 << 10];
	struct drain d = {.t = t};
	pthread_t th;
	unsigned long long done = 0;
	int rc = 0;

	memset(buf, 'x', sizeof(buf));
	if (pthread_create(&th, NULL, drain_main, &d) != 0) {
		fprintf(stderr, "sshread: cannot start a thread\n");
		return 1;
	}
	sleep_ms(idle_s * 1000); /* the reader started the I/O thread: only keepalives */
	while (done < total && rc == 0) {
		size_t n = total - done < sizeof(buf) ? (size_t)(total - done) : sizeof(buf);
		rc = t->ops->write(t, buf, n);
		if (rc == 0)
			done += n;
	}
	double end = now_ms() + 120e3;
	while (rc == 0 && echo && atomic_load(&d.got) < done && !atomic_load(&d.ended) &&
	       now_ms() < end)
		sleep_ms(10);
	unsigned long long got = atomic_load(&d.got);
	int ok = rc == 0 && (!echo || got == done);
	if (!ok) {
		char why[1024] = "";
		t->ops->describe_exit(t, why, sizeof(why));
		fprintf(stderr, "sshread: %s after writing %llu and reading %llu bytes%s%s\n",
		        rc ? strerror(-rc) : "the echo did not come back whole", done, got,
		        why[0] ? ": " : "", why);
	}
	printf("{\"written\": %llu, \"read\": %llu}\n", done, got);
	t->ops->shutdown(t);
	pthread_join(th, NULL);
	return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
	struct fsd_ssh_options so;
	long cycles = 8, sleep_each = 200;
	size_t bytes = 8u << 20;
	unsigned long long write_total = 0;
	int echo = 0;
	long idle_s = 0;
	const char *source = NULL;

	fsd_ssh_options_init(&so);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-e")) {
			echo = 1;
		} else if ((!strcmp(a, "-o") || !strcmp(a, "-p") || !strcmp(a, "-c") ||
		            !strcmp(a, "-b") || !strcmp(a, "-s") || !strcmp(a, "-w") ||
		            !strcmp(a, "-i")) &&
		           i + 1 < argc) {
			const char *v = argv[++i];
			if (!strcmp(a, "-w")) {
				write_total = strtoull(v, NULL, 10);
			} else if (!strcmp(a, "-i")) {
				idle_s = strtol(v, NULL, 10);
			} else if (!strcmp(a, "-p")) {
				if (fsd_ssh_opt(&so, "port", v) != 1)
					return usage();
			} else if (!strcmp(a, "-c")) {
				cycles = strtol(v, NULL, 10);
			} else if (!strcmp(a, "-b")) {
				bytes = strtoull(v, NULL, 10);
			} else if (!strcmp(a, "-s")) {
				sleep_each = strtol(v, NULL, 10);
			} else {
				char *kv = strdup(v);
				char *eq = kv ? strchr(kv, '=') : NULL;
				if (!eq) {
					free(kv);
					return usage();
				}
				*eq = '\0';
				int r = fsd_ssh_opt(&so, kv, eq + 1);
				free(kv);
				if (r != 1)
					return usage();
			}
		} else if (a[0] != '-' && !source) {
			source = a;
		} else {
			return usage();
		}
	}
	if (!source || cycles < 1 || bytes < 1 || sleep_each < 0)
		return usage();

	char err[1024] = "";
	struct fsd_connector *c = fsd_ssh_connector_new(source, &so, 1, err, sizeof(err));
	fsd_ssh_options_release(&so);
	if (!c) {
		fprintf(stderr, "sshread: %s\n", err);
		return 1;
	}
	struct fsd_transport *t = NULL;
	int rc = c->connect(c, 0, &t, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "sshread: %s\n", err);
		c->free(c);
		return 1;
	}

	if (write_total) {
		int st = write_mode(t, write_total, echo, idle_s);
		t->ops->free(t);
		c->free(c);
		return st;
	}

	static char buf[256 << 10];
	unsigned long long total = 0;
	double max_wait = 0;
	long done = 0;
	int status = 0;
	for (; done < cycles; done++) {
		sleep_ms(sleep_each);
		size_t left = bytes;
		while (left > 0) {
			size_t want = left < sizeof(buf) ? left : sizeof(buf);
			double t0 = now_ms();
			ssize_t n = t->ops->read(t, buf, want);
			double w = now_ms() - t0;
			if (w > max_wait)
				max_wait = w;
			if (n <= 0) {
				char why[1024] = "";
				t->ops->describe_exit(t, why, sizeof(why));
				fprintf(stderr, "sshread: %s after %llu bytes%s%s\n",
				        n == 0 ? "end of stream" : strerror((int)-n), total,
				        why[0] ? ": " : "", why);
				status = 1;
				goto out;
			}
			left -= (size_t)n;
			total += (unsigned long long)n;
		}
	}
out:
	printf("{\"bytes\": %llu, \"cycles\": %ld, \"max_wait_ms\": %.1f}\n", total, done,
	       max_wait);
	t->ops->shutdown(t);
	t->ops->free(t);
	c->free(c);
	return status;
}

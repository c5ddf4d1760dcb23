/*
 * sshread: reads a remote command's output through flechefs's libssh2 transport
 * (fusefs/ssh.c) the way the daemon's reader does, but with pauses, and reports how
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
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ssh.h"
#include "transport.h"

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
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
	                "[-s MS] HOST:PATH\n");
	return 2;
}

int main(int argc, char **argv)
{
	struct fsd_ssh_options so;
	long cycles = 8, sleep_each = 200;
	size_t bytes = 8u << 20;
	const char *source = NULL;

	fsd_ssh_options_init(&so);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if ((!strcmp(a, "-o") || !strcmp(a, "-p") || !strcmp(a, "-c") || !strcmp(a, "-b") ||
		     !strcmp(a, "-s")) &&
		    i + 1 < argc) {
			const char *v = argv[++i];
			if (!strcmp(a, "-p")) {
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

/*
 * delay-proxy.c: a TCP proxy that delays every byte by a fixed time in each
 * direction, to measure flechefs and sshfs over a slow link on one machine.
 *
 *	delay-proxy LISTEN_PORT TARGET_HOST TARGET_PORT [DELAY_MS (25)] [PORT_FILE]
 *
 * LISTEN_PORT 0 picks a free port; the port is printed on standard output (and
 * written to PORT_FILE when given). Each accepted connection gets a connection to
 * the target and two threads per direction: a reader that stamps every chunk with
 * its arrival time and queues it, and a writer that sends each chunk once its time
 * plus the delay has come. The queue is capped (64 MiB per direction), so a sender
 * faster than the receiver meets TCP back-pressure, as on a real link; the
 * bandwidth is otherwise unlimited, so the delay alone is what the link adds.
 * Build: cc -O2 -pthread -o delay-proxy delay-proxy.c
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CHUNK     (256 * 1024)
#define QUEUE_CAP (64u << 20)

struct chunk {
	struct chunk *next;
	int64_t due_us;
	size_t len, off;
	unsigned char data[];
};

struct pipe_dir {
	int from, to;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct chunk *head, *tail;
	size_t queued;
	int eof;  /* reader saw the end */
	int dead; /* writer failed */
	struct pipe_dir *other;
};

static int64_t delay_us = 25000;

static int64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void *reader(void *arg)
{
	struct pipe_dir *d = arg;
	for (;;) {
		struct chunk *c = malloc(sizeof(*c) + CHUNK);
		if (!c)
			break;
		ssize_t n = read(d->from, c->data, CHUNK);
		if (n <= 0) {
			free(c);
			break;
		}
		c->len = (size_t)n;
		c->off = 0;
		c->next = NULL;
		c->due_us = now_us() + delay_us;
		struct chunk *small = realloc(c, sizeof(*c) + (size_t)n);
		if (small)
			c = small;
		pthread_mutex_lock(&d->mu);
		while (d->queued >= QUEUE_CAP && !d->dead)
			pthread_cond_wait(&d->cond, &d->mu);
		if (d->dead) {
			pthread_mutex_unlock(&d->mu);
			free(c);
			break;
		}
		if (d->tail)
			d->tail->next = c;
		else
			d->head = c;
		d->tail = c;
		d->queued += c->len;
		pthread_cond_broadcast(&d->cond);
		pthread_mutex_unlock(&d->mu);
	}
	pthread_mutex_lock(&d->mu);
	d->eof = 1;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->mu);
	return NULL;
}

static void *writer(void *arg)
{
	struct pipe_dir *d = arg;
	for (;;) {
		pthread_mutex_lock(&d->mu);
		while (!d->head && !d->eof)
			pthread_cond_wait(&d->cond, &d->mu);
		struct chunk *c = d->head;
		pthread_mutex_unlock(&d->mu);
		if (!c)
			break; /* eof and drained */
		int64_t wait = c->due_us - now_us();
		if (wait > 0) {
			struct timespec ts = {wait / 1000000, (wait % 1000000) * 1000};
			nanosleep(&ts, NULL);
		}
		while (c->off < c->len) {
			ssize_t n = write(d->to, c->data + c->off, c->len - c->off);
			if (n <= 0)
				goto dead;
			c->off += (size_t)n;
		}
		pthread_mutex_lock(&d->mu);
		d->head = c->next;
		if (!d->head)
			d->tail = NULL;
		d->queued -= c->len;
		pthread_cond_broadcast(&d->cond);
		pthread_mutex_unlock(&d->mu);
		free(c);
	}
	shutdown(d->to, SHUT_WR);
	return NULL;
dead:
	pthread_mutex_lock(&d->mu);
	d->dead = 1;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->mu);
	shutdown(d->to, SHUT_RDWR);
	shutdown(d->from, SHUT_RDWR);
	return NULL;
}

struct conn {
	int a, b;
};

static void *serve(void *arg)
{
	struct conn *cn = arg;
	struct pipe_dir up = {0}, down = {0};
	pthread_t t[4];
	up.from = cn->a, up.to = cn->b;
	down.from = cn->b, down.to = cn->a;
	pthread_mutex_init(&up.mu, NULL);
	pthread_cond_init(&up.cond, NULL);
	pthread_mutex_init(&down.mu, NULL);
	pthread_cond_init(&down.cond, NULL);
	pthread_create(&t[0], NULL, reader, &up);
	pthread_create(&t[1], NULL, writer, &up);
	pthread_create(&t[2], NULL, reader, &down);
	pthread_create(&t[3], NULL, writer, &down);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	while (up.head) {
		struct chunk *n = up.head->next;
		free(up.head);
		up.head = n;
	}
	while (down.head) {
		struct chunk *n = down.head->next;
		free(down.head);
		down.head = n;
	}
	close(cn->a);
	close(cn->b);
	free(cn);
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: delay-proxy LISTEN_PORT TARGET_HOST TARGET_PORT "
		                "[DELAY_MS] [PORT_FILE]\n");
		return 2;
	}
	if (argc > 4)
		delay_us = atol(argv[4]) * 1000;
	signal(SIGPIPE, SIG_IGN);
	struct addrinfo hints = {0}, *target = NULL;
	hints.ai_socktype = SOCK_STREAM;
	int g = getaddrinfo(argv[2], argv[3], &hints, &target);
	if (g) {
		fprintf(stderr, "delay-proxy: cannot resolve '%s': %s\n", argv[2], gai_strerror(g));
		return 1;
	}
	int ls = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in sa = {0};
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((uint16_t)atoi(argv[1]));
	if (bind(ls, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(ls, 64) < 0) {
		fprintf(stderr, "delay-proxy: cannot listen on port %s: %s\n", argv[1],
		        strerror(errno));
		return 1;
	}
	socklen_t sl = sizeof(sa);
	getsockname(ls, (struct sockaddr *)&sa, &sl);
	printf("%d\n", ntohs(sa.sin_port));
	fflush(stdout);
	if (argc > 5) {
		FILE *f = fopen(argv[5], "w");
		if (f) {
			fprintf(f, "%d\n", ntohs(sa.sin_port));
			fclose(f);
		}
	}
	for (;;) {
		int a = accept(ls, NULL, NULL);
		if (a < 0)
			continue;
		int b = socket(target->ai_family, SOCK_STREAM, 0);
		if (b < 0 || connect(b, target->ai_addr, target->ai_addrlen) < 0) {
			close(a);
			if (b >= 0)
				close(b);
			continue;
		}
		setsockopt(a, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		setsockopt(b, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		struct conn *cn = malloc(sizeof(*cn));
		pthread_t t;
		if (!cn) {
			close(a);
			close(b);
			continue;
		}
		cn->a = a, cn->b = b;
		if (pthread_create(&t, NULL, serve, cn) == 0)
			pthread_detach(t);
		else {
			close(a);
			close(b);
			free(cn);
		}
	}
}

/*
 * filecodec.c: gzip unwrapping (zlib, bounded, spilling large values to an
 * unlinked temporary file) and HMAC-SHA256 trailer checking (OpenSSL) for stored
 * fleche files. See filecodec.h for the invariants.
 */
#include "rpc.h"
#include "filecodec.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <zlib.h>

#define CHUNK (256u * 1024)

/* ---- SIGBUS guard (filecodec.h invariant 4) ---- */

struct map_guard {
	atomic_int used;        /* claimed by guard_add (CAS 0 -> 1) */
	atomic_uintptr_t start; /* page-aligned */
	atomic_size_t len;      /* 0 while not armed; stored last, cleared first */
	atomic_int damaged;
};

static struct map_guard guards[SRV_MAP_GUARDS];
/* Held by the one sink that writes a temporary file (filecodec.h invariant 3). */
static pthread_mutex_t spill_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t guard_once = PTHREAD_ONCE_INIT;
static struct sigaction guard_prev;
static bool guard_ok;
static uintptr_t guard_page;
static atomic_int guard_full_said;

/*
 * Runs on SIGBUS. Only async-signal-safe steps: atomic loads and stores, and mmap
 * (a plain system call on Linux, though POSIX does not list it).
 */
static void guard_handler(int sig, siginfo_t *si, void *uc)
{
	uintptr_t a = (uintptr_t)si->si_addr;
	int saved = errno;

	for (size_t i = 0; i < SRV_MAP_GUARDS; i++) {
		size_t len = atomic_load(&guards[i].len);
		uintptr_t start = atomic_load(&guards[i].start);
		uintptr_t page, end;

		if (!len || a < start || a - start >= len)
			continue;
		page = a & ~(guard_page - 1);
		end = (start + len + guard_page - 1) & ~(guard_page - 1);
		if (mmap((void *)page, end - page, PROT_READ,
		         MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED)
			break;
		atomic_store(&guards[i].damaged, 1);
		errno = saved;
		return; /* the faulting read is retried and reads zeros */
	}
	errno = saved;
	if ((guard_prev.sa_flags & SA_SIGINFO) && guard_prev.sa_sigaction) {
		guard_prev.sa_sigaction(sig, si, uc);
		return;
	}
	if (guard_prev.sa_handler != SIG_DFL && guard_prev.sa_handler != SIG_IGN) {
		guard_prev.sa_handler(sig);
		return;
	}
	/* not ours: die of it as if we had never been here */
	signal(SIGBUS, SIG_DFL);
	raise(SIGBUS);
}

static void guard_install(void)
{
	struct sigaction sa;
	long ps = sysconf(_SC_PAGESIZE);

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = guard_handler;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	guard_page = ps > 0 ? (uintptr_t)ps : 4096;
	if (sigaction(SIGBUS, &sa, &guard_prev) != 0) {
		fprintf(stderr, "flechefs-server: cannot install a SIGBUS handler: %s\n",
		        strerror(errno));
		return;
	}
	guard_ok = true;
}

/* Guards b's mapping; leaves it unguarded when every slot is taken. */
static void guard_add(struct srv_blob *b)
{
	pthread_once(&guard_once, guard_install);
	if (!guard_ok || !b->map)
		return;
	for (size_t i = 0; i < SRV_MAP_GUARDS; i++) {
		int zero = 0;

		if (!atomic_compare_exchange_strong(&guards[i].used, &zero, 1))
			continue;
		atomic_store(&guards[i].damaged, 0);
		atomic_store(&guards[i].start, (uintptr_t)b->map);
		atomic_store(&guards[i].len, b->maplen);
		b->guard = (unsigned)i + 1;
		return;
	}
	if (atomic_exchange(&guard_full_said, 1) == 0)
		fprintf(stderr,
		        "flechefs-server: more than %d values mapped at once; "
		        "the others are read without a SIGBUS guard\n",
		        SRV_MAP_GUARDS);
}

static void guard_remove(struct srv_blob *b)
{
	struct map_guard *g;

	if (!b->guard)
		return;
	g = &guards[b->guard - 1];
	atomic_store(&g->len, 0);
	atomic_store(&g->start, 0);
	atomic_store(&g->used, 0);
	b->guard = 0;
}

bool srv_blob_damaged(const struct srv_blob *b)
{
	return b->guard && atomic_load(&guards[b->guard - 1].damaged);
}

void srv_blob_release(struct srv_blob *b)
{
	guard_remove(b);
	if (b->map)
		munmap(b->map, b->maplen);
	free(b->heap);
	memset(b, 0, sizeof(*b));
}

void srv_blob_drop_pages(const struct srv_blob *b, const uint8_t *p, size_t len)
{
	uintptr_t start = (uintptr_t)b->map, page, from, to, end;
	long ps = sysconf(_SC_PAGESIZE);

	if (!b->map || !len || (uintptr_t)p < start || (uintptr_t)p - start >= b->maplen)
		return;
	page = ps > 0 ? (uintptr_t)ps : 4096;
	end = start + ((b->maplen + page - 1) & ~(page - 1)); /* map is page-aligned */
	from = (uintptr_t)p & ~(page - 1);
	to = len > end - (uintptr_t)p ? end : ((uintptr_t)p + len + page - 1) & ~(page - 1);
	(void)madvise((void *)from, to - from, MADV_DONTNEED); /* only a hint */
}

bool srv_codec_has_trailer(const uint8_t *d, size_t len)
{
	if (len < SRV_SIG_HEX + 1 || d[len - SRV_SIG_HEX - 1] != '.')
		return false;
	for (size_t i = len - SRV_SIG_HEX; i < len; i++)
		if (rpc_hex_digit(d[i]) < 0)
			return false;
	return true;
}

static void warn_unverified(void)
{
	static atomic_bool warned; /* records are read by several threads at once */

	if (!atomic_exchange(&warned, true))
		fprintf(stderr, "flechefs-server: serving HMAC-signed files unverified: no secret "
		                "key is configured, signatures go unchecked\n");
}

int srv_codec_unsign(const uint8_t *d, size_t len, const char *path, const struct srv_sign *sign,
                     size_t *payload, struct srv_error *err)
{
	bool trailer = srv_codec_has_trailer(d, len);
	uint8_t want[SRV_SIG_HEX / 2], got[EVP_MAX_MD_SIZE];
	unsigned gotlen;

	if (!sign || sign->nkeys == 0) {
		if (trailer)
			warn_unverified();
		*payload = trailer ? len - SRV_SIG_HEX : len;
		return 0;
	}
	if (!trailer) {
		fprintf(stderr, "flechefs-server: refusing '%s': it carries no HMAC signature\n",
		        path);
		return srv_fail(err, RPC_E_EBADMSG, "'%s' carries no HMAC signature", path);
	}
	for (size_t i = 0; i < sizeof(want); i++) {
		const uint8_t *h = d + len - SRV_SIG_HEX + 2 * i;

		want[i] = (uint8_t)(rpc_hex_digit(h[0]) << 4 | rpc_hex_digit(h[1]));
	}
	for (size_t k = 0; k < sign->nkeys; k++) {
		if (!HMAC(EVP_sha256(), sign->keys[k].bytes, (int)sign->keys[k].len, d,
		          len - SRV_SIG_HEX, got, &gotlen))
			continue;
		if (gotlen == sizeof(want) && CRYPTO_memcmp(got, want, sizeof(want)) == 0) {
			*payload = len - SRV_SIG_HEX;
			return 0;
		}
	}
	fprintf(stderr, "flechefs-server: refusing '%s': its HMAC signature is wrong\n", path);
	return srv_fail(err, RPC_E_EBADMSG, "the HMAC signature of '%s' does not verify", path);
}

/* ---- gunzip ---- */

enum sink_mode { SINK_HEAP, SINK_VALUE, SINK_COUNT };

struct sink {
	enum sink_mode mode;
	const char *path;
	uint64_t total, cap;
	uint8_t *heap;
	size_t heaplen, heapcap;
	int fd; /* SINK_VALUE after spilling, else -1 */
	bool spilling; /* holds spill_lock: from the first spilled byte to sink_end */
	enum rpc_error over; /* the error beyond cap (0: EFBIG) */
	uint8_t tail[SRV_SIG_HEX + 1];
	size_t taillen;
};

static bool is_gzip(const uint8_t *d, size_t len)
{
	return len >= 2 && d[0] == 0x1f && d[1] == 0x8b;
}

static int open_tmpfile(void)
{
	const char *dir = getenv("TMPDIR");
	char tmpl[4096];
	int fd;

	if (!dir || !*dir)
		dir = "/tmp";
	fd = open(dir, O_TMPFILE | O_RDWR | O_EXCL | O_CLOEXEC, 0600);
	if (fd >= 0)
		return fd;
	if ((size_t)snprintf(tmpl, sizeof(tmpl), "%s/flechefs-gunzip-XXXXXX", dir) >= sizeof(tmpl))
		return -1;
	fd = mkstemp(tmpl);
	if (fd >= 0)
		unlink(tmpl);
	return fd;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int sink_add(struct sink *s, const uint8_t *p, size_t n, struct srv_error *err)
{
	if (n > s->cap - s->total && s->mode == SINK_VALUE)
		return srv_fail(err, RPC_E_EFBIG,
		                "'%s' decompresses to more than %llu bytes, the most this server "
		                "inflates (--gunzip-max)",
		                s->path, (unsigned long long)s->cap);
	if (n > s->cap - s->total)
		return srv_fail(err,
		                s->over ? s->over : RPC_E_EFBIG,
		                "'%s' decompresses to more than %llu bytes", s->path,
		                (unsigned long long)s->cap);
	s->total += n;
	if (s->mode == SINK_COUNT) {
		if (n >= sizeof(s->tail)) {
			memcpy(s->tail, p + n - sizeof(s->tail), sizeof(s->tail));
			s->taillen = sizeof(s->tail);
		} else {
			size_t keep = sizeof(s->tail) - n;

			if (keep > s->taillen)
				keep = s->taillen;
			memmove(s->tail, s->tail + s->taillen - keep, keep);
			memcpy(s->tail + keep, p, n);
			s->taillen = keep + n;
		}
		return 0;
	}
	if (s->fd >= 0) {
		if (write_all(s->fd, p, n) != 0)
			return srv_fail(err, RPC_E_EIO, "cannot write the decompressed '%s': %s",
			                s->path, strerror(errno));
		return 0;
	}
	if (s->mode == SINK_VALUE && s->heaplen + n > SRV_GUNZIP_HEAP_MAX) {
		/* one temporary file written at a time: wait for our turn */
		pthread_mutex_lock(&spill_lock);
		s->spilling = true;
		s->fd = open_tmpfile();
		if (s->fd < 0)
			return srv_fail(err, RPC_E_EIO,
			                "cannot create a temporary file to decompress '%s': %s",
			                s->path, strerror(errno));
		if (write_all(s->fd, s->heap, s->heaplen) != 0 || write_all(s->fd, p, n) != 0)
			return srv_fail(err, RPC_E_EIO, "cannot write the decompressed '%s': %s",
			                s->path, strerror(errno));
		free(s->heap);
		s->heap = NULL;
		s->heaplen = s->heapcap = 0;
		return 0;
	}
	if (s->heaplen + n > s->heapcap) {
		size_t ncap = s->heapcap ? s->heapcap : 64 * 1024;
		uint8_t *nh;

		while (ncap < s->heaplen + n)
			ncap *= 2;
		nh = realloc(s->heap, ncap);
		if (!nh)
			return srv_fail(err, RPC_E_ENOMEM, "out of memory decompressing '%s'",
			                s->path);
		s->heap = nh;
		s->heapcap = ncap;
	}
	if (n) /* a stream that inflates to nothing leaves the heap NULL */
		memcpy(s->heap + s->heaplen, p, n);
	s->heaplen += n;
	return 0;
}

static int gunzip(const uint8_t *in, size_t inlen, struct sink *s, struct srv_error *err)
{
	z_stream zs;
	uint8_t *out = malloc(CHUNK);
	int rc = -1, zr;
	bool started = false;

	memset(&zs, 0, sizeof(zs));
	if (!out)
		return srv_fail(err, RPC_E_ENOMEM, "out of memory decompressing '%s'", s->path);
	if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) {
		srv_fail(err, RPC_E_ENOMEM, "cannot start decompressing '%s'", s->path);
		goto out;
	}
	started = true;
	/* zlib counts in uInt: feed at most 1 GiB at a time. */
	for (;;) {
		size_t produced;

		if (zs.avail_in == 0 && inlen > 0) {
			size_t n = inlen > (1u << 30) ? (1u << 30) : inlen;

			zs.next_in = (Bytef *)in;
			zs.avail_in = (uInt)n;
			in += n;
			inlen -= n;
		}
		zs.next_out = out;
		zs.avail_out = CHUNK;
		zr = inflate(&zs, Z_NO_FLUSH);
		if (zr != Z_OK && zr != Z_STREAM_END && zr != Z_BUF_ERROR) {
			srv_fail(err, RPC_E_CORRUPT, "cannot decompress '%s': %s", s->path,
			         zs.msg ? zs.msg : "bad gzip data");
			goto out;
		}
		produced = CHUNK - zs.avail_out;
		if (sink_add(s, out, produced, err) != 0)
			goto out;
		if (zr == Z_STREAM_END) {
			/* Another gzip member may follow (Python's gzip reads them all). */
			if (zs.avail_in == 0 && inlen > 0) {
				size_t n = inlen > (1u << 30) ? (1u << 30) : inlen;

				zs.next_in = (Bytef *)in;
				zs.avail_in = (uInt)n;
				in += n;
				inlen -= n;
			}
			if (zs.avail_in == 0) {
				rc = 0;
				goto out;
			}
			if (zs.avail_in < 2 || zs.next_in[0] != 0x1f || zs.next_in[1] != 0x8b) {
				srv_fail(err, RPC_E_CORRUPT,
				         "'%s' has trailing garbage after gzip data", s->path);
				goto out;
			}
			inflateReset(&zs);
			continue;
		}
		if (produced == 0 && zs.avail_in == 0 && inlen == 0)
			break;
	}
	srv_fail(err, RPC_E_CORRUPT, "'%s' is a truncated gzip file", s->path);
out:
	if (started)
		inflateEnd(&zs);
	free(out);
	return rc;
}

static int read_whole(int fd, const char *path, size_t size, uint8_t **out, size_t *outlen,
                      struct srv_error *err)
{
	uint8_t *buf = malloc(size ? size : 1);
	size_t got = 0;

	if (!buf)
		return srv_fail(err, RPC_E_ENOMEM, "out of memory reading '%s'", path);
	while (got < size) {
		ssize_t r = read(fd, buf + got, size - got);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			free(buf);
			return srv_fail(err, rpc_error_from_errno(errno), "cannot read '%s': %s",
			                path, strerror(errno));
		}
		if (r == 0)
			break; /* shrank: a rename replaced it, take what we have */
		got += (size_t)r;
	}
	*out = buf;
	*outlen = got;
	return 0;
}

int srv_codec_open(const char *path, struct stat *st, struct srv_error *err)
{
	/* O_NONBLOCK: a FIFO named like a key must not block the server in open (it is
	 * then refused as not a regular file); O_NOFOLLOW: a stored file is never read
	 * through a symbolic link */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW);

	if (fd < 0) {
		if (errno == ENOENT)
			return srv_fail(err, RPC_E_ENOENT, "no such file '%s'", path);
		if (errno == ELOOP)
			return srv_fail(err, RPC_E_CORRUPT,
			                "'%s' is a symbolic link: stored files are never read "
			                "through one",
			                path);
		return srv_fail(err, rpc_error_from_errno(errno), "cannot open '%s': %s", path,
		                strerror(errno));
	}
	if (fstat(fd, st) != 0) {
		srv_fail(err, RPC_E_EIO, "cannot stat '%s': %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	if (!S_ISREG(st->st_mode)) {
		srv_fail(err, RPC_E_CORRUPT, "'%s' is not a regular file (%s)", path,
		         S_ISDIR(st->st_mode) ? "a directory" : "a special file");
		close(fd);
		return -1;
	}
	return fd;
}

int srv_codec_read_record(const char *path, const struct srv_sign *sign, uint64_t max,
                          struct srv_blob *out, struct stat *st, struct srv_error *err)
{
	/* beyond a max below SRV_RECORD_MAX the record is not corrupt, only larger */
	enum rpc_error over = max < SRV_RECORD_MAX ? RPC_E_EFBIG : RPC_E_CORRUPT;
	int fd = -1, rc = -1;
	uint8_t *raw = NULL;
	size_t rawlen = 0, payload;

	memset(out, 0, sizeof(*out));
	fd = srv_codec_open(path, st, err);
	if (fd < 0)
		return -1;
	if (max > SRV_RECORD_MAX)
		max = SRV_RECORD_MAX;
	if ((uint64_t)st->st_size > max) {
		srv_fail(err, over, "record file '%s' is larger than %llu bytes", path,
		         (unsigned long long)max);
		goto out;
	}
	if (read_whole(fd, path, (size_t)st->st_size, &raw, &rawlen, err) != 0)
		goto out;
	if (is_gzip(raw, rawlen)) {
		struct sink s = {
		    .mode = SINK_HEAP, .path = path, .cap = max, .fd = -1, .over = over};

		if (gunzip(raw, rawlen, &s, err) != 0) {
			free(s.heap);
			goto out;
		}
		free(raw);
		raw = s.heap;
		rawlen = s.heaplen;
	}
	if (srv_codec_unsign(raw, rawlen, path, sign, &payload, err) != 0)
		goto out;
	out->heap = raw;
	out->data = raw ? raw : (const uint8_t *)"";
	out->len = payload;
	raw = NULL;
	rc = 0;
out:
	free(raw);
	close(fd);
	return rc;
}

static int map_fd(int fd, const char *path, size_t len, struct srv_blob *out, struct srv_error *err)
{
	void *m;

	if (len == 0) {
		out->data = (const uint8_t *)"";
		return 0;
	}
	m = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
	if (m == MAP_FAILED)
		return srv_fail(err, errno == ENOMEM ? RPC_E_ENOMEM : RPC_E_EIO,
		                "cannot map '%s': %s", path, strerror(errno));
	/* Values are read front to back (whole or in ranges): read ahead steadily
	 * instead of faulting page by page on a cold cache. Only a hint. */
	(void)madvise(m, len, MADV_SEQUENTIAL);
	out->map = m;
	out->maplen = len;
	out->data = m;
	guard_add(out);
	return 0;
}

/* Lets go of what a sink holds but its result. */
static void sink_end(struct sink *s)
{
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	free(s->heap);
	s->heap = NULL;
	if (s->spilling)
		pthread_mutex_unlock(&spill_lock);
	s->spilling = false;
}

int srv_codec_map_value(int fd, const char *path, const struct stat *st,
                        const struct srv_sign *sign, uint64_t max, struct srv_blob *out,
                        struct srv_error *err)
{
	struct srv_blob raw = {0};
	struct sink s = {.mode = SINK_VALUE,
	                 .path = path,
	                 .cap = max && max <= SRV_GUNZIP_MAX_LIMIT ? max : SRV_GUNZIP_MAX_DEFAULT,
	                 .fd = -1};
	size_t payload;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if ((uint64_t)st->st_size > SIZE_MAX / 2)
		return srv_fail(err, RPC_E_EFBIG, "'%s' is too large to map", path);
	if (map_fd(fd, path, (size_t)st->st_size, &raw, err) != 0)
		return -1;
	raw.len = (size_t)st->st_size;
	if (!is_gzip(raw.data, raw.len)) {
		*out = raw;
		out->file_map = out->map != NULL;
		memset(&raw, 0, sizeof(raw));
	} else {
		if (gunzip(raw.data, raw.len, &s, err) != 0) {
			if (srv_blob_damaged(&raw))
				srv_fail(err, RPC_E_CORRUPT,
				         "'%s' was truncated or could not be read while being read",
				         path);
			goto out;
		}
		if (srv_blob_damaged(&raw)) {
			srv_fail(err, RPC_E_CORRUPT,
			         "'%s' was truncated or could not be read while being read", path);
			goto out;
		}
		if (s.fd >= 0) {
			if (map_fd(s.fd, path, (size_t)s.total, out, err) != 0)
				goto out;
		} else {
			out->heap = s.heap;
			out->data = s.heap ? s.heap : (const uint8_t *)"";
			s.heap = NULL;
		}
		out->len = (size_t)s.total;
		sink_end(&s); /* the next value may spill while this one is verified */
	}
	if (srv_codec_unsign(out->data, out->len, path, sign, &payload, err) != 0 ||
	    srv_blob_damaged(out)) {
		if (srv_blob_damaged(out))
			srv_fail(err, RPC_E_CORRUPT,
			         "'%s' was truncated or could not be read while being read", path);
		srv_blob_release(out);
		goto out;
	}
	out->len = payload;
	rc = 0;
out:
	sink_end(&s);
	srv_blob_release(&raw);
	return rc;
}

int srv_codec_value_size(int fd, const char *path, const struct stat *st, uint64_t *size,
                         struct srv_error *err)
{
	uint8_t head[2], tail[SRV_SIG_HEX + 1];
	struct srv_blob raw = {0};
	struct sink s = {.mode = SINK_COUNT, .path = path, .cap = SRV_GZIP_CHEAP_OUT, .fd = -1};
	uint64_t n = (uint64_t)st->st_size;
	ssize_t r;
	int rc = -1;

	if (n >= 2 && pread(fd, head, 2, 0) == 2 && is_gzip(head, 2)) {
		if (n > SRV_GZIP_CHEAP_IN)
			return 1;
		if (map_fd(fd, path, (size_t)n, &raw, err) != 0)
			return -1;
		if (gunzip(raw.data, (size_t)n, &s, err) == 0) {
			*size = srv_codec_has_trailer(s.tail, s.taillen) ? s.total - SRV_SIG_HEX
			                                                 : s.total;
			rc = 0;
		} else if (err->code == RPC_E_EFBIG) {
			rc = 1; /* inflates beyond the cap: too large to learn cheaply */
		}
		if (srv_blob_damaged(&raw))
			rc = srv_fail(err, RPC_E_CORRUPT,
			              "'%s' was truncated or could not be read while being read",
			              path);
		srv_blob_release(&raw);
		return rc;
	}
	if (n >= sizeof(tail)) {
		r = pread(fd, tail, sizeof(tail), (off_t)(n - sizeof(tail)));
		if (r != (ssize_t)sizeof(tail))
			return srv_fail(err, RPC_E_EIO, "cannot read '%s': %s", path,
			                r < 0 ? strerror(errno) : "short read");
		if (srv_codec_has_trailer(tail, sizeof(tail)))
			n -= SRV_SIG_HEX;
	}
	*size = n;
	return 0;
}

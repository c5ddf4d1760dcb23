/*
 * filecodec.h: turns the bytes of a stored fleche file into its pickle stream:
 * gzip (detected by the magic 1f 8b, whatever the configuration says) is unwrapped
 * with bounded output, and an HMAC-SHA256 signature trailer (64 ASCII hex after the
 * pickle's STOP) is checked and removed.
 *
 * Invariants:
 *   1. With keys configured, bytes are handed out only after one of the keys
 *      verified them (CRYPTO_memcmp); a missing or wrong signature is EBADMSG and is
 *      logged on stderr naming the file.
 *   2. With no key, a file that carries a signature trailer is served without it,
 *      unverified, as fleche does; stderr says so once per process.
 *   3. Decompressed records never exceed SRV_RECORD_MAX bytes in memory; decompressed
 *      values larger than SRV_GUNZIP_HEAP_MAX go to an unlinked temporary file
 *      (mmapped) and never exceed the caller's maximum (at most SRV_GUNZIP_MAX_LIMIT
 *      bytes): inflating stops there, EFBIG. One value at a time is inflated into a
 *      temporary file (the others wait for their turn, holding at most
 *      SRV_GUNZIP_HEAP_MAX each), so the temporary space being written is at most one
 *      maximum at any moment.
 *   4. Every mapping is guarded against SIGBUS (a mapped file truncated by someone
 *      else, or a disk that fails a read): a process-wide SA_SIGINFO handler,
 *      installed once, finds the faulting address among the guarded mappings,
 *      replaces the rest of that mapping with zero pages and marks it damaged, so
 *      that the read goes on, reading zeros. Whoever reads mapped bytes asks
 *      srv_blob_damaged afterwards and fails that request (CORRUPT naming the file)
 *      instead of using them. A SIGBUS outside every guarded mapping gets the default
 *      action (or the handler installed before ours). Up to SRV_MAP_GUARDS mappings
 *      are guarded at once; beyond that a mapping is unguarded (said once on stderr).
 */
#ifndef FLECHEFS_SERVER_FILECODEC_H
#define FLECHEFS_SERVER_FILECODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "base.h"

/* An HMAC key (of fleche's signed caches). */
struct srv_hmac_key {
	uint8_t *bytes;
	size_t len;
};

#define SRV_RECORD_MAX      (64u * 1024 * 1024)
#define SRV_GUNZIP_HEAP_MAX (4u * 1024 * 1024)
/* The largest value inflated by default (--gunzip-max), and the largest allowed. */
#define SRV_GUNZIP_MAX_DEFAULT (1ull * 1024 * 1024 * 1024)
#define SRV_GUNZIP_MAX_LIMIT   (16ull * 1024 * 1024 * 1024)
#define SRV_SIG_HEX         64
#define SRV_MAP_GUARDS      256

/* Signature settings, shared by the storages of one cache. */
struct srv_sign {
	const struct srv_hmac_key *keys;
	size_t nkeys;
};

/* Decoded bytes: data[0..len) is the pickle stream. */
struct srv_blob {
	const uint8_t *data;
	size_t len;
	void *map; /* munmap(map, maplen) on release, or NULL */
	size_t maplen;
	uint8_t *heap;  /* free on release, or NULL */
	unsigned guard; /* invariant 4: the guard slot of map plus one, or 0 */
	bool file_map;  /* map is the stored file itself (not a decompressed copy) */
};
void srv_blob_release(struct srv_blob *b);

/*
 * Lets go of the pages of b's mapping that hold p[0..len), rounded out to whole pages:
 * the mapping is of a file and read-only, so a later read of them faults them in
 * again from the page cache (or reads zeros where invariant 4 put them). Reading a
 * large value in ranges and dropping each behind keeps the process's resident memory
 * to the ranges being read, not the value. Bytes outside the mapping (a blob held on
 * the heap, a rendered view) are left alone.
 */
void srv_blob_drop_pages(const struct srv_blob *b, const uint8_t *p, size_t len);

/*
 * True when a read of b's mapping met a page its file no longer has (invariant 4):
 * the bytes read from there on were zeros, not the file's.
 */
bool srv_blob_damaged(const struct srv_blob *b);

/*
 * Opens a stored file for reading: never through a symbolic link in its last
 * component (the directories above may be links), never blocking on a FIFO, and only
 * a regular file. Fills *st. Returns the descriptor (the caller closes it), or -1
 * with err: ENOENT when there is no such file, CORRUPT when it is a symbolic link or
 * not a regular file.
 */
int srv_codec_open(const char *path, struct stat *st, struct srv_error *err);

/*
 * Reads a small file (a call record) whole: at most max (at most SRV_RECORD_MAX)
 * bytes before and after gunzip. Fills *st with the file's stat. A missing file is
 * ENOENT; a symbolic link or anything but a regular file is CORRUPT (as for
 * srv_codec_open); one larger than SRV_RECORD_MAX is CORRUPT, one larger than a smaller max
 * EFBIG (the caller may read it again with a larger one).
 */
int srv_codec_read_record(const char *path, const struct srv_sign *sign, uint64_t max,
                          struct srv_blob *out, struct stat *st, struct srv_error *err);

/*
 * Maps an open value file (st from fstat); gzip goes through a temporary file, and a
 * value that inflates to more than max bytes (0: SRV_GUNZIP_MAX_DEFAULT) is EFBIG.
 */
int srv_codec_map_value(int fd, const char *path, const struct stat *st,
                        const struct srv_sign *sign, uint64_t max, struct srv_blob *out,
                        struct srv_error *err);

/*
 * The number of bytes srv_codec_map_value would serve, cheaply and without verifying
 * (for listings): the file's size, less the trailer when there is one; for gzip the
 * decompressed size, found by decompressing (discarding the output) only when the
 * file is at most SRV_GZIP_CHEAP_IN bytes and inflates to at most SRV_GZIP_CHEAP_OUT.
 * Returns 0 with *size, 1 when a larger gzip file's size is not known without
 * decompressing it whole, -1 with err when the file cannot be read.
 */
#define SRV_GZIP_CHEAP_IN  (64u * 1024)
#define SRV_GZIP_CHEAP_OUT (1024u * 1024)
int srv_codec_value_size(int fd, const char *path, const struct stat *st, uint64_t *size,
                         struct srv_error *err);

/*
 * Where the pickle ends in d[0..len): len, or len - 64 when the bytes end in a STOP
 * followed by 64 hex characters. Checks the signature as invariants 1 and 2 say.
 */
int srv_codec_unsign(const uint8_t *d, size_t len, const char *path, const struct srv_sign *sign,
                     size_t *payload, struct srv_error *err);

/* True when d ends with ".<64 hex>". */
bool srv_codec_has_trailer(const uint8_t *d, size_t len);

#endif

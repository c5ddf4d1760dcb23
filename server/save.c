/*
 * save.c: put_value and save (save.h): uploads into temporary files, checks, HMAC
 * signing and gzip as fleche writes them, and link(2) into place so that a key is
 * never overwritten and never shows a partial file.
 *
 * Temporary files: a value's upload is "<values>/.flechefs-put-<pid>-<key>" (one
 * server process serves one connection, so the pid names the connection), its
 * compressed form the same with ".gz"; a record is written to
 * "<calls>/.flechefs-save-<pid>-<n>-<key>" (n counts this process's saves, which may
 * run on several threads at once).
 */
#include "save.h"

#include <dirent.h>
#include <stdarg.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <zlib.h>

#include "filecodec.h"
#include "msg.h"
#include "pickle.h"
#include "proto.h"
#include "record.h"
#include "rpc.h"

#define TMP_PREFIX     ".flechefs-"
#define TMP_MAX_AGE    (24 * 60 * 60)
#define GZ_CHUNK       (256u * 1024)

static atomic_uint save_counter;

static int sys_fail(struct srv_error *err, int e, const char *what, const char *path)
{
	return srv_fail(err, rpc_error_from_errno(e), "cannot %s '%s': %s", what, path,
	                strerror(e));
}

/* mkdir of dir and of its missing parents (fleche makes its directories on first use). */
static int make_dirs(const char *dir, struct srv_error *err)
{
	char buf[PATH_MAX];
	size_t n = strlen(dir);

	if (n >= sizeof(buf))
		return srv_fail(err, RPC_E_EINVAL, "the path '%s' is too long", dir);
	memcpy(buf, dir, n + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0777) != 0 && errno != EEXIST)
			return sys_fail(err, errno, "make the directory", buf);
		*p = '/';
	}
	if (mkdir(buf, 0777) != 0 && errno != EEXIST)
		return sys_fail(err, errno, "make the directory", buf);
	return 0;
}

static int join_path(char *out, size_t n, struct srv_error *err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int join_path(char *out, size_t n, struct srv_error *err, const char *fmt, ...)
{
	va_list ap;
	int w;

	va_start(ap, fmt);
	w = vsnprintf(out, n, fmt, ap);
	va_end(ap);
	if (w < 0 || (size_t)w >= n)
		return srv_fail(err, RPC_E_EINVAL, "a path in the cache is too long");
	return 0;
}

/* True when path is a regular file (not following a symbolic link). */
static bool stored(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int write_all(int fd, const void *p, size_t n, uint64_t off, const char *path,
                     struct srv_error *err)
{
	const uint8_t *b = p;

	while (n > 0) {
		ssize_t w = pwrite(fd, b, n, (off_t)off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return sys_fail(err, errno, "write", path);
		}
		b += w;
		n -= (size_t)w;
		off += (uint64_t)w;
	}
	return 0;
}

/* The 64 hex characters fleche's SignedBytes appends: HMAC-SHA256 of data. */
static int sign_hex(const struct srv_hmac_key *key, const void *data, size_t len,
                    char out[SRV_SIG_HEX + 1], struct srv_error *err)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	static const char hex[] = "0123456789abcdef";

	if (!HMAC(EVP_sha256(), key->bytes, (int)key->len, data, len, mac, &maclen) ||
	    maclen * 2 != SRV_SIG_HEX)
		return srv_fail(err, RPC_E_EIO, "cannot compute the HMAC signature");
	for (unsigned i = 0; i < maclen; i++) {
		out[2 * i] = hex[mac[i] >> 4];
		out[2 * i + 1] = hex[mac[i] & 15];
	}
	out[SRV_SIG_HEX] = '\0';
	return 0;
}

/* gzip of a[0..alen) followed by b[0..blen), as Python's gzip.compress, into fd. */
static int gzip_to(int fd, const void *a, size_t alen, const void *b, size_t blen,
                   const char *path, struct srv_error *err)
{
	z_stream z;
	uint8_t *out = malloc(GZ_CHUNK);
	uint64_t off = 0;
	int rc = -1, zr = Z_OK;

	memset(&z, 0, sizeof(z));
	if (!out)
		return srv_fail(err, RPC_E_ENOMEM, "out of memory compressing '%s'", path);
	if (deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
		free(out);
		return srv_fail(err, RPC_E_ENOMEM, "cannot start gzip for '%s'", path);
	}
	for (int part = 0; part < 2; part++) {
		const uint8_t *in = part ? b : a;
		size_t left = part ? blen : alen;
		bool last = part == 1;
		do {
			uInt take = left > (1u << 30) ? (1u << 30) : (uInt)left;
			z.next_in = (Bytef *)(uintptr_t)in;
			z.avail_in = take;
			in += take;
			left -= take;
			do {
				z.next_out = out;
				z.avail_out = GZ_CHUNK;
				zr = deflate(&z, last && left == 0 ? Z_FINISH : Z_NO_FLUSH);
				if (zr == Z_STREAM_ERROR) {
					srv_fail(err, RPC_E_EIO, "gzip failed for '%s'", path);
					goto out;
				}
				if (write_all(fd, out, GZ_CHUNK - z.avail_out, off, path, err) != 0)
					goto out;
				off += GZ_CHUNK - z.avail_out;
			} while (z.avail_out == 0);
		} while (left > 0);
	}
	rc = zr == Z_STREAM_END ? 0 : srv_fail(err, RPC_E_EIO, "gzip did not end for '%s'", path);
out:
	deflateEnd(&z);
	free(out);
	return rc;
}

/*
 * Writes the stored form of pickle[0..len) (signed, compressed as configured) to
 * the new file tmp, syncs it and links it to final. *linked false and 0 when final
 * already exists (left as it is). tmp is removed in every case.
 */
static int store_file(const char *tmp, const char *final, const void *pickle, size_t len,
                      const struct srv_hmac_key *key, bool compress, bool *linked,
                      struct srv_error *err)
{
	char sig[SRV_SIG_HEX + 1] = "";
	size_t siglen = 0;
	int fd, rc = -1;

	*linked = false;
	if (key) {
		if (sign_hex(key, pickle, len, sig, err) != 0)
			return -1;
		siglen = SRV_SIG_HEX;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
	if (fd < 0)
		return sys_fail(err, errno, "create", tmp);
	if (compress) {
		if (gzip_to(fd, pickle, len, sig, siglen, tmp, err) != 0)
			goto out;
	} else if (write_all(fd, pickle, len, 0, tmp, err) != 0 ||
	           write_all(fd, sig, siglen, len, tmp, err) != 0) {
		goto out;
	}
	if (fsync(fd) != 0) {
		sys_fail(err, errno, "sync", tmp);
		goto out;
	}
	if (link(tmp, final) == 0)
		*linked = true;
	else if (errno != EEXIST) {
		sys_fail(err, errno, "store", final);
		goto out;
	}
	rc = 0;
out:
	close(fd);
	unlink(tmp);
	return rc;
}

/* ---- put_value ---- */

/* Checks and stores the upload in fd (the file tmp, which this closes and removes). */
static int finish_value(int fd, const char *tmp, const char *final, const struct srv_layout *l,
                        const struct srv_hmac_key *key, uint64_t size, bool *exists,
                        const char *keyhex, struct srv_error *err)
{
	char gz[PATH_MAX], why[256] = "";
	struct pk_doc *doc = NULL;
	size_t end = 0;
	void *map = MAP_FAILED;
	bool linked = false;
	int rc = -1, pr;
	struct stat st;

	if (fstat(fd, &st) != 0) {
		sys_fail(err, errno, "stat", tmp);
		goto out;
	}
	if ((uint64_t)st.st_size != size || size == 0) {
		srv_fail(err, RPC_E_EINVAL,
		         "the upload of value %s has %lld bytes where its final chunk ends at %llu",
		         keyhex, (long long)st.st_size, (unsigned long long)size);
		goto out;
	}
	map = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		sys_fail(err, errno, "map", tmp);
		goto out;
	}
	pr = pk_parse(map, size, NULL, &doc, &end, why, sizeof(why));
	pk_doc_free(doc);
	if (pr == -ENOMEM) {
		srv_fail(err, RPC_E_ENOMEM, "out of memory checking value %s", keyhex);
		goto out;
	}
	if (pr < 0 || end != size) {
		srv_fail(err, RPC_E_CORRUPT, "the bytes uploaded for value %s are not one pickle: %s",
		         keyhex, pr < 0 ? why : "bytes after its end");
		goto out;
	}
	if (!key && !l->compress_values) {
		/* stored as uploaded: the upload itself is linked into place */
		if (fsync(fd) != 0) {
			sys_fail(err, errno, "sync", tmp);
			goto out;
		}
		if (link(tmp, final) != 0) {
			if (errno != EEXIST) {
				sys_fail(err, errno, "store", final);
				goto out;
			}
			*exists = true; /* another connection stored it first */
		}
		rc = 0;
		goto out;
	}
	if (join_path(gz, sizeof(gz), err, "%s.gz", tmp) != 0)
		goto out;
	unlink(gz); /* a leftover of an earlier attempt of this process */
	if (store_file(gz, final, map, size, key, l->compress_values, &linked, err) != 0)
		goto out;
	*exists = !linked;
	rc = 0;
out:
	if (map != MAP_FAILED)
		munmap(map, size);
	close(fd);
	unlink(tmp);
	return rc;
}

/*
 * The requests of one connection run on several threads while a value's upload is
 * one temporary file per connection and key: two requests for one key never run at
 * once (a chunk at offset 0 truncates the file that a final chunk's check has
 * mapped, which would be SIGBUS). One lock per stripe of keys, so that different
 * values still upload side by side.
 */
#define PUT_STRIPES 256
static pthread_mutex_t put_stripes[PUT_STRIPES];
static pthread_once_t put_stripes_once = PTHREAD_ONCE_INIT;

static void put_stripes_init(void)
{
	for (size_t i = 0; i < PUT_STRIPES; i++)
		pthread_mutex_init(&put_stripes[i], NULL);
}

static int put_value_locked(struct srv_cache *cache, const char *key, uint64_t off,
                            const void *data, size_t len, bool final, bool *exists,
                            struct srv_error *err);

int srv_put_value(struct srv_cache *cache, const char *key, size_t keylen, uint64_t off,
                  const void *data, size_t len, bool final, bool *exists,
                  struct srv_error *err)
{
	pthread_mutex_t *stripe;
	int rc;

	if (!rpc_key_valid(key, keylen)) {
		*exists = false;
		return srv_fail(err, RPC_E_EINVAL, "'%.*s' is not a value key", (int)keylen, key);
	}
	pthread_once(&put_stripes_once, put_stripes_init);
	stripe = &put_stripes[rpc_key_hash(key) % PUT_STRIPES];
	pthread_mutex_lock(stripe);
	rc = put_value_locked(cache, key, off, data, len, final, exists, err);
	pthread_mutex_unlock(stripe);
	return rc;
}

/* srv_put_value for a valid key, under its stripe's lock. */
static int put_value_locked(struct srv_cache *cache, const char *key, uint64_t off,
                            const void *data, size_t len, bool final, bool *exists,
                            struct srv_error *err)
{
	struct srv_cache *layer = srv_cache_save_layer(cache);
	struct srv_layout l;
	char keyhex[RPC_KEY_LEN + 1], tmp[PATH_MAX], path[PATH_MAX];
	int fd;

	*exists = false;
	memcpy(keyhex, key, RPC_KEY_LEN);
	keyhex[RPC_KEY_LEN] = '\0';
	srv_cache_layout(layer, &l);
	if (l.read_only)
		return srv_fail(err, RPC_E_EROFS, "cannot store value %s: the cache is read-only",
		                keyhex);
	if (off > SRV_PUT_MAX || len > SRV_PUT_MAX - off)
		return srv_fail(err, RPC_E_EFBIG, "value %s: more than %llu bytes", keyhex,
		                (unsigned long long)SRV_PUT_MAX);
	if (join_path(path, sizeof(path), err, "%s/%s", l.values_path, keyhex) != 0 ||
	    join_path(tmp, sizeof(tmp), err, "%s/" TMP_PREFIX "put-%ld-%s", l.values_path,
	              (long)getpid(), keyhex) != 0)
		return -1;
	if (stored(path)) {
		*exists = true;
		unlink(tmp);
		return 0;
	}
	if (off == 0 && make_dirs(l.values_path, err) != 0)
		return -1;
	fd = open(tmp, O_RDWR | O_NOFOLLOW | O_CLOEXEC | (off == 0 ? O_CREAT | O_TRUNC : 0), 0666);
	if (fd < 0) {
		if (errno == ENOENT)
			return srv_fail(err, RPC_E_EINVAL,
			                "no upload of value %s in progress (send offset 0 first)",
			                keyhex);
		return sys_fail(err, errno, "create", tmp);
	}
	if (write_all(fd, data, len, off, tmp, err) != 0) {
		close(fd);
		unlink(tmp);
		return -1;
	}
	if (!final) {
		close(fd);
		return 0;
	}
	return finish_value(fd, tmp, path, &l, srv_cache_signing_key(layer), off + len, exists,
	                    keyhex, err);
}

/* ---- save ---- */

static bool str_field(const msgpack_object *o, const char *want)
{
	const char *s;
	size_t n;

	if (!want)
		return rpc_obj_is_nil(o);
	return rpc_obj_str(o, &s, &n) == 0 && n == strlen(want) && memcmp(s, want, n) == 0;
}

/*
 * Equal msgpack objects, floats by value with NaN equal to NaN (msgpack_object_equal
 * says a NaN differs from itself, and metadata holds NaNs), 1.0 and 1.0f alike.
 */
static bool obj_equal(const msgpack_object *a, const msgpack_object *b)
{
	bool fa = a->type == MSGPACK_OBJECT_FLOAT32 || a->type == MSGPACK_OBJECT_FLOAT64;
	bool fb = b->type == MSGPACK_OBJECT_FLOAT32 || b->type == MSGPACK_OBJECT_FLOAT64;

	if (fa || fb)
		return fa && fb && (a->via.f64 == b->via.f64 ||
		                    (a->via.f64 != a->via.f64 && b->via.f64 != b->via.f64));
	if (a->type != b->type)
		return false;
	if (a->type == MSGPACK_OBJECT_ARRAY) {
		if (a->via.array.size != b->via.array.size)
			return false;
		for (uint32_t i = 0; i < a->via.array.size; i++)
			if (!obj_equal(&a->via.array.ptr[i], &b->via.array.ptr[i]))
				return false;
		return true;
	}
	if (a->type == MSGPACK_OBJECT_MAP) {
		if (a->via.map.size != b->via.map.size)
			return false;
		for (uint32_t i = 0; i < a->via.map.size; i++)
			if (!obj_equal(&a->via.map.ptr[i].key, &b->via.map.ptr[i].key) ||
			    !obj_equal(&a->via.map.ptr[i].val, &b->via.map.ptr[i].val))
				return false;
		return true;
	}
	return msgpack_object_equal(*a, *b);
}

/*
 * NULL when rec is the call the client described (a map call_shape accepted), else
 * the name of the first field that differs.
 */
static const char *record_differs(const struct srv_record *rec, const msgpack_object *call,
                                  msgpack_zone *zone)
{
	const msgpack_object *o;
	msgpack_object meta;
	int64_t vi;

	if (!str_field(rpc_map_field(call, RPC_F_KEY), rec->key))
		return rpc_field_name(RPC_F_KEY);
	if (!str_field(rpc_map_field(call, RPC_F_NAME), rec->name))
		return rpc_field_name(RPC_F_NAME);
	if (!str_field(rpc_map_field(call, RPC_F_MODULE), rec->module))
		return rpc_field_name(RPC_F_MODULE);
	o = rpc_map_field(call, RPC_F_VERSION);
	if (rec->version_kind == SRV_VERSION_NONE ? !rpc_obj_is_nil(o)
	    : rec->version_kind == SRV_VERSION_STR
	        ? !str_field(o, rec->version_str)
	        : (!o || (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER &&
	                  o->type != MSGPACK_OBJECT_NEGATIVE_INTEGER) ||
	           rpc_obj_int(o, &vi) != 0 || vi != rec->version_int))
		return rpc_field_name(RPC_F_VERSION);
	if (!str_field(rpc_map_field(call, RPC_F_CODE_DIGEST), rec->code_digest))
		return rpc_field_name(RPC_F_CODE_DIGEST);
	o = rpc_map_field(call, RPC_F_ARGUMENTS);
	if (!o || o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != rec->narguments)
		return rpc_field_name(RPC_F_ARGUMENTS);
	for (size_t i = 0; i < rec->narguments; i++) {
		const msgpack_object *pair = &o->via.array.ptr[i];
		if (pair->type != MSGPACK_OBJECT_ARRAY || pair->via.array.size != 2 ||
		    !str_field(&pair->via.array.ptr[0], rec->arguments[i].name) ||
		    !str_field(&pair->via.array.ptr[1], rec->arguments[i].value))
			return rpc_field_name(RPC_F_ARGUMENTS);
	}
	if (!str_field(rpc_map_field(call, RPC_F_RESULT), rec->has_result ? rec->result : NULL))
		return rpc_field_name(RPC_F_RESULT);
	o = rpc_map_field(call, RPC_F_METADATA);
	if (!o || rec->metadata_error ||
	    srv_meta_unpack(rec->metadata, rec->metadata_len, zone, &meta) != 0 ||
	    !obj_equal(o, &meta))
		return rpc_field_name(RPC_F_METADATA);
	return NULL;
}

/* True when o is nil or a str (a str when nil is false). */
static bool opt_str(const msgpack_object *o, bool nil)
{
	const char *s;
	size_t n;
	return (nil && rpc_obj_is_nil(o)) || rpc_obj_str(o, &s, &n) == 0;
}

static bool is_key(const msgpack_object *o)
{
	const char *s;
	size_t n;
	return rpc_obj_str(o, &s, &n) == 0 && rpc_key_valid(s, n);
}

/*
 * NULL when call has the shape of a record as load answers it (for SQL call storage,
 * where no pickled record says what the call is), else the field that does not.
 */
static const char *call_shape(const msgpack_object *call)
{
	static const enum rpc_field fields[] = {RPC_F_KEY,       RPC_F_NAME,        RPC_F_MODULE,
	                                        RPC_F_VERSION,   RPC_F_CODE_DIGEST, RPC_F_ARGUMENTS,
	                                        RPC_F_RESULT,    RPC_F_METADATA};
	const msgpack_object *o;
	int64_t vi;

	for (uint32_t i = 0; i < call->via.map.size; i++) {
		bool known = false;
		for (size_t f = 0; f < sizeof(fields) / sizeof(fields[0]); f++)
			known |= rpc_obj_is_field(&call->via.map.ptr[i].key, fields[f]);
		if (!known)
			return "an unknown field";
	}
	if (!opt_str(rpc_map_field(call, RPC_F_NAME), false))
		return rpc_field_name(RPC_F_NAME);
	if (!opt_str(rpc_map_field(call, RPC_F_MODULE), true))
		return rpc_field_name(RPC_F_MODULE);
	o = rpc_map_field(call, RPC_F_VERSION);
	if (!opt_str(o, true) && rpc_obj_int(o, &vi) != 0)
		return rpc_field_name(RPC_F_VERSION);
	if (!opt_str(rpc_map_field(call, RPC_F_CODE_DIGEST), true))
		return rpc_field_name(RPC_F_CODE_DIGEST);
	o = rpc_map_field(call, RPC_F_RESULT);
	if (!rpc_obj_is_nil(o) && !is_key(o))
		return rpc_field_name(RPC_F_RESULT);
	o = rpc_map_field(call, RPC_F_ARGUMENTS);
	if (!o || o->type != MSGPACK_OBJECT_ARRAY)
		return rpc_field_name(RPC_F_ARGUMENTS);
	for (uint32_t i = 0; i < o->via.array.size; i++) {
		const msgpack_object *pair = &o->via.array.ptr[i];
		if (pair->type != MSGPACK_OBJECT_ARRAY || pair->via.array.size != 2 ||
		    !opt_str(&pair->via.array.ptr[0], false) || !is_key(&pair->via.array.ptr[1]))
			return rpc_field_name(RPC_F_ARGUMENTS);
	}
	o = rpc_map_field(call, RPC_F_METADATA);
	if (!o || o->type != MSGPACK_OBJECT_MAP)
		return rpc_field_name(RPC_F_METADATA);
	for (uint32_t i = 0; i < o->via.map.size; i++)
		if (o->via.map.ptr[i].key.type != MSGPACK_OBJECT_STR ||
		    o->via.map.ptr[i].val.type != MSGPACK_OBJECT_MAP)
			return rpc_field_name(RPC_F_METADATA);
	return NULL;
}

/* ENOENT naming the first value the call (checked by call_shape) names that is not
 * stored. */
static int check_values(const struct srv_layout *l, const msgpack_object *call,
                        const char *callkey, struct srv_error *err)
{
	const msgpack_object *args = rpc_map_field(call, RPC_F_ARGUMENTS);
	char path[PATH_MAX];

	for (uint32_t i = 0; i <= args->via.array.size; i++) {
		const msgpack_object *o = i < args->via.array.size ? &args->via.array.ptr[i].via.array.ptr[1]
		                        : rpc_map_field(call, RPC_F_RESULT);
		const char *k;
		size_t n;
		if (rpc_obj_str(o, &k, &n) != 0)
			continue;
		if (join_path(path, sizeof(path), err, "%s/%.*s", l->values_path, (int)n, k) != 0)
			return -1;
		if (!stored(path))
			return srv_fail(err, RPC_E_ENOENT,
			                "value %.*s of call %s is not in the cache: upload it first",
			                (int)n, k, callkey);
	}
	return 0;
}

/* 0 when the record stored under key is call (*same), or not readable as one. */
static int compare_stored(struct srv_cache *layer, const char *key, const msgpack_object *call,
                          bool *same, struct srv_error *err)
{
	struct srv_record old;
	msgpack_zone zone;
	int rc;

	memset(&old, 0, sizeof(old));
	if (srv_load(layer, key, RPC_KEY_LEN, &old, err) != 0)
		return -1;
	msgpack_zone_init(&zone, 4096);
	*same = record_differs(&old, call, &zone) == NULL;
	msgpack_zone_destroy(&zone);
	srv_record_release(&old);
	rc = 0;
	return rc;
}

int srv_save_call(struct srv_cache *cache, const msgpack_object *call, const void *record,
                  size_t reclen, bool *existed, struct srv_error *err)
{
	struct srv_cache *layer = srv_cache_save_layer(cache);
	struct srv_layout l;
	struct srv_record rec;
	struct pk_doc *doc = NULL;
	msgpack_zone zone;
	const char *key, *differs;
	char keyhex[RPC_KEY_LEN + 1], path[PATH_MAX], tmp[PATH_MAX], why[256] = "";
	size_t keylen, end = 0;
	bool same = false, linked = false;
	int rc = -1, pr;

	*existed = false;
	memset(&rec, 0, sizeof(rec));
	msgpack_zone_init(&zone, 4096);
	if (call->type != MSGPACK_OBJECT_MAP ||
	    rpc_obj_str(rpc_map_field(call, RPC_F_KEY), &key, &keylen) != 0 || !rpc_key_valid(key, keylen)) {
		srv_fail(err, RPC_E_EINVAL, "the call's key is missing or not a key");
		goto out;
	}
	memcpy(keyhex, key, RPC_KEY_LEN);
	keyhex[RPC_KEY_LEN] = '\0';
	srv_cache_layout(layer, &l);
	if (l.read_only) {
		srv_fail(err, RPC_E_EROFS, "cannot save call %s: the cache is read-only", keyhex);
		goto out;
	}
	differs = call_shape(call);
	if (differs) {
		srv_fail(err, RPC_E_EINVAL, "call %s: %s is not as load answers it", keyhex, differs);
		goto out;
	}
	if (strcmp(l.calls_type, "files") != 0) {
		bool inserted = false;
		if (record) {
			srv_fail(err, RPC_E_EINVAL, "call %s: SQL call storage takes no record", keyhex);
			goto out;
		}
		if (check_values(&l, call, keyhex, err) != 0 ||
		    srv_save_sql(l.calls_path, call, keyhex, &inserted, err) != 0)
			goto out;
		linked = inserted;
		goto stored_already;
	}
	if (!record) {
		srv_fail(err, RPC_E_EINVAL, "call %s: file call storage needs the record", keyhex);
		goto out;
	}
	pr = pk_parse(record, reclen, NULL, &doc, &end, why, sizeof(why));
	if (pr == -ENOMEM) {
		srv_fail(err, RPC_E_ENOMEM, "out of memory checking call %s", keyhex);
		goto out;
	}
	if (pr < 0 || end != reclen) {
		srv_fail(err, RPC_E_CORRUPT, "the record of call %s is not one pickle: %s", keyhex,
		         pr < 0 ? why : "bytes after its end");
		goto out;
	}
	if (srv_record_from_pickle(pk_doc_root(doc), keyhex, "the uploaded record", &rec, err) != 0)
		goto out;
	differs = record_differs(&rec, call, &zone);
	if (differs) {
		srv_fail(err, RPC_E_EINVAL, "the record of call %s does not hold the call described: "
		         "%s differs", keyhex, differs);
		goto out;
	}
	if (check_values(&l, call, keyhex, err) != 0)
		goto out;
	if (join_path(path, sizeof(path), err, "%s/%s", l.calls_path, keyhex) != 0 ||
	    join_path(tmp, sizeof(tmp), err, "%s/" TMP_PREFIX "save-%ld-%u-%s", l.calls_path,
	              (long)getpid(), atomic_fetch_add(&save_counter, 1), keyhex) != 0)
		goto out;
	if (!stored(path)) {
		if (make_dirs(l.calls_path, err) != 0 ||
		    store_file(tmp, path, record, reclen, srv_cache_signing_key(layer),
		               l.compress_calls, &linked, err) != 0)
			goto out;
	}
stored_already:
	if (!linked) {
		if (compare_stored(layer, keyhex, call, &same, err) != 0)
			goto out;
		if (!same) {
			srv_fail(err, RPC_E_EEXIST,
			         "a different call is stored under %s: it is never overwritten", keyhex);
			goto out;
		}
		*existed = true;
	}
	rc = 0;
out:
	pk_doc_free(doc);
	srv_record_release(&rec);
	msgpack_zone_destroy(&zone);
	return rc;
}

/* ---- leftovers ---- */

static void sweep_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	time_t now = time(NULL);

	if (!d)
		return;
	while ((e = readdir(d))) {
		struct stat st;
		if (strncmp(e->d_name, TMP_PREFIX "put-", sizeof(TMP_PREFIX "put-") - 1) != 0 &&
		    strncmp(e->d_name, TMP_PREFIX "save-", sizeof(TMP_PREFIX "save-") - 1) != 0)
			continue;
		if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISREG(st.st_mode) && now - st.st_mtime > TMP_MAX_AGE)
			unlinkat(dirfd(d), e->d_name, 0);
	}
	closedir(d);
}

void srv_save_sweep(struct srv_cache *cache)
{
	struct srv_layout l;

	srv_cache_layout(srv_cache_save_layer(cache), &l);
	if (l.read_only)
		return;
	sweep_dir(l.values_path);
	if (strcmp(l.calls_type, "files") == 0)
		sweep_dir(l.calls_path);
}

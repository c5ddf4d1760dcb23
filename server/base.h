/*
 * base.h: what every layer of flechefs-server shares, below all of them: the error
 * of a failed operation (a code from rpc.h's table and a message), the value types a
 * storage module fills (a call record, a page of keys, a page of function names) and
 * their release functions, and the byte helpers (a copy, a hash). Dependencies run one way:
 * dispatch -> views / cache -> store_files / store_sql / query -> record / filecodec
 * / keyindex -> base, pickle, json_reader; nothing here calls up.
 */
#ifndef FLECHEFS_SERVER_BASE_H
#define FLECHEFS_SERVER_BASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rpc.h"

#define SRV_MAX_CANDIDATES 64

struct srv_error {
	enum rpc_error code;
	char message[512];
	/* AMBIGUOUS only */
	size_t ncandidates;
	char candidates[SRV_MAX_CANDIDATES][RPC_KEY_LEN + 1];
	unsigned needed;
};

/* Sets err->code and a printf-style message; returns -1 for `return srv_fail(...)`. */
int srv_fail(struct srv_error *err, enum rpc_error code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The two kinds of stored objects: call records and values. */
enum srv_kind { SRV_CALLS, SRV_VALUES };

/* One entry of a page; detail fields are set only when detail was asked for. */
struct srv_entry {
	char key[RPC_KEY_LEN + 1];
	double mtime;  /* detail */
	uint64_t stamp; /* detail, calls: srv_record.stamp, 0 when not known cheaply */
	int64_t size;  /* detail, values: -1 when unknown */
	char *name;    /* detail, calls: owned by the page, may be NULL */
};

struct srv_page {
	struct srv_entry *entries;
	size_t n;
	bool complete;
};
void srv_page_release(struct srv_page *page);

struct srv_argument {
	char *name;
	char value[RPC_KEY_LEN + 1];
};

enum srv_version_kind { SRV_VERSION_NONE, SRV_VERSION_STR, SRV_VERSION_INT };

struct srv_record {
	char key[RPC_KEY_LEN + 1];
	char *name;
	char *module; /* may be NULL */
	enum srv_version_kind version_kind;
	char *version_str;
	int64_t version_int;
	char *code_digest; /* may be NULL */
	struct srv_argument *arguments;
	size_t narguments;
	bool has_result;
	char result[RPC_KEY_LEN + 1];
	/* The metadata as one msgpack map (block -> map), ready to be copied into a
	 * response; PROTOCOL.md section 3 says how values are mapped. */
	char *metadata;
	size_t metadata_len;
	/* Why the metadata cannot be served (nested too deep, too large, not JSON), or
	 * NULL; when set, metadata is an empty map and the rest of the record is whole. */
	char *metadata_error;
	double mtime;
	/* Never 0; equal for one key while its stored record is unchanged, and
	 * (barring a 64-bit hash collision) different once it is written again: record
	 * files, from the file's identity (device, inode, size, mtime, ctime); SQL, from
	 * the record's contents. */
	uint64_t stamp;
};
void srv_record_release(struct srv_record *rec);

/* A page of distinct function names (srv_names). */
struct srv_names {
	char **names;
	size_t n;
	bool complete;
};
void srv_names_release(struct srv_names *names);

/*
 * A malloc'd copy of the n bytes at s followed by a NUL (NULs inside are copied too,
 * so this is not strndup); NULL when out of memory.
 */
char *srv_memdupz(const char *s, size_t n);

/* FNV-1a over p[0..n), continuing from h (SRV_HASH64_INIT to start). Not a
 * cryptographic hash: it tells changes apart, it does not resist forgery. */
#define SRV_HASH64_INIT 1469598103934665603ull
uint64_t srv_hash64(uint64_t h, const void *p, size_t n);

/*
 * Quotes untrusted bytes (len of s) for a message into out (outlen bytes): printable
 * ASCII as is, the rest (and \ and ') as \xNN, cut at 70 characters. Returns out.
 */
const char *srv_quote(char *out, size_t outlen, const char *s, size_t len);

#endif

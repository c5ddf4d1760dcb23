/*
 * flecheconfig.h: finds a cache in fleche's configuration files exactly as fleche
 * 0.22's load_cache_config does, so that `flechefs-server --serve --cache NAME`
 * serves what `python -m fleche remote --serve --cache NAME` would:
 *
 *   - files: every fleche.toml from the directory up to $HOME (inclusive) or the
 *     root, then $XDG_CONFIG_HOME/fleche/cache.toml (default ~/.config/...); the
 *     walk stops after a file whose [default] table has a true `root`;
 *   - merge: per top-level key, the closest file wins (tables are not merged);
 *   - relative `root` and `url` values are relative to the declaring file's
 *     directory; `~` is the home directory; file roots are then made absolute and
 *     symbolic links resolved (as pathlib's resolve does);
 *   - a cache: `[default] cache = "NAME"` (or an inline cache), `[NAME]` with
 *     `template` (pickle, cloudpickle, dill, sql, ...) or `values`/`calls` tables,
 *     `read_only`, `max_size`; `[[NAME]]` is a stack, `pool = [...]` a pool;
 *   - secret keys: a storage's `secret_key` (hex strings, ':' separating keys), or
 *     else FLECHE_SECRET_KEY.
 *
 * Where fleche would fall back to a memory cache (no file, no such name) or would use
 * a storage the server cannot read (memory, void, bagofholding_hdf, an ssh cache, a
 * non-SQLite database), resolution fails with one line naming the file, the table and
 * the type. A file that is not valid TOML fails with its path, line and column
 * (fleche itself would ignore it and log an error).
 */
#ifndef FLECHEFS_SERVER_FLECHECONFIG_H
#define FLECHEFS_SERVER_FLECHECONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "cache.h"

#define FCFG_MAX_LAYERS SRV_STACK_MAX
#define FCFG_MAX_FILES  256

/* One storage (values or calls) as fleche's to_config describes it. */
struct fcfg_storage {
	char *type;  /* "pickle", "cloudpickle", "dill" or (calls) "sql" */
	char *root;  /* file storage: absolute, links resolved */
	char *url;   /* sql: the URL as fleche keeps it ("sqlite:////abs/calls.db") */
	char *path;  /* sql: the database file the URL names */
	bool compress, echo;
	int64_t remaining_depth; /* values only */
	struct srv_hmac_key keys[SRV_MAX_HMAC_KEYS];
	size_t nkeys;
};

struct fcfg_layer {
	struct fcfg_storage values, calls;
	bool read_only;
	bool has_max_size;
	int64_t max_size;
	char *where; /* "FILE: [NAME]" (or "[[NAME]] #2", "[default] cache") for messages */
};

enum fcfg_shape {
	FCFG_SINGLE, /* one cache */
	FCFG_STACK,  /* [[NAME]]: reads fall through the layers in order, saves go to the first */
	FCFG_POOL,   /* pool = [...]: a read-only collection read in order */
};

struct fcfg_cache {
	char *name; /* the name asked for, NULL for the default */
	char *dir;  /* the directory the search started from (absolute) */
	enum fcfg_shape shape;
	struct fcfg_layer layers[FCFG_MAX_LAYERS];
	size_t nlayers;
	char *files[FCFG_MAX_FILES]; /* the files read, closest first */
	size_t nfiles;
};

/* fcfg_resolve's answer when there is no configuration at all (no file, or empty ones) */
#define FCFG_NONE (-2)

/*
 * Resolves the cache called name (NULL or "default": the default cache) as fleche
 * started in dir (NULL: the current directory) would. Returns 0 with *out filled
 * (release with fcfg_cache_release), or -1 (FCFG_NONE: nothing configured) with a
 * one-line message in err.
 */
int fcfg_resolve(const char *dir, const char *name, struct fcfg_cache *out, char *err,
		 size_t errlen);
void fcfg_cache_release(struct fcfg_cache *c);

/*
 * Whether layer i has been written to at all: its values directory or its call
 * storage exists (fleche creates them on the first save).
 */
bool fcfg_layer_exists(const struct fcfg_cache *c, size_t i);

/* Whether the cache refuses saves (fleche's _is_read_only: a pool, or layer 0 read-only). */
bool fcfg_read_only(const struct fcfg_cache *c);

/*
 * Packs the description of the resolved configuration that info and --show-config
 * show: a map {"cache": fleche's cache_to_config of it, with every secret_key
 * "<redacted>" and URL passwords "***", "cache_name", "read_only", "files", "dir"}.
 * Returns 0 or -1 (out of memory).
 */
int fcfg_pack(const struct fcfg_cache *c, msgpack_packer *pk);

/*
 * Fills a srv_config for layer i (strings and keys borrowed from c). 0, or -1 with a
 * message in err when the layer cannot be served with one srv_cache (file calls and
 * values signed with different keys).
 */
int fcfg_layer_config(const struct fcfg_cache *c, size_t i, struct srv_config *cfg, char *err,
		      size_t errlen);

#endif

/*
 * test_cache.c: the storage layer (cache.h) against the real fleche fixture caches
 * (files, pickle_sql, signed, gzip): every record and value of EXPECTED.json, the
 * expand examples, shrink, contains, listing, names, query; the signed cache with the
 * right key, no key, a wrong key and an altered file; evict on copies of each layout;
 * hidden/temporary files and vanished files.
 *
 * EXPECTED.json is turned into a flat tab-separated list (and the expected value
 * streams into files) by a few lines of /usr/bin/python3 run at test time.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <msgpack.h>
#include <sqlite3.h>
#include <zlib.h>

#include "cache.h"
#include "record.h"
#include "check.h"

static const char PY[] =
    "import json, sys, os, gzip, re\n"
    "exp = json.load(open(sys.argv[1])); fx = os.path.dirname(sys.argv[1]); out = sys.argv[2]\n"
    "print('key\\t' + exp['secret_key_hex_for_cache_signed'])\n"
    "N = '\\\\N'\n"
    "for cname, c in exp['caches'].items():\n"
    "    print('cache\\t' + cname)\n"
    "    for k in c['calls']:\n"
    "        md = k.get('metadata') or {}\n"
    "        rt = md.get('runtime', {}); env = md.get('environment', {})\n"
    "        v = k['version']\n"
    "        vs = 'N' if v is None else ('i%d' % v if isinstance(v, int) else 's' + v)\n"
    "        args = ','.join('%s=%s' % (a, d) for a, d in k['argument_digests'].items())\n"
    "        print('\\t'.join(['call', k['key'], k['key_shrunk_by_fleche'], k['name'],\n"
    "            k['module'] or N, vs, k['code_digest'] or N, k['result_digest'] or N,\n"
    "            '1' if k['contains'] else '0', repr(rt['timestop']) if 'timestop' in rt else N,\n"
    "            env.get('hostname', N), args or '-', ','.join(md.keys()) or '-']))\n"
    "    os.makedirs(os.path.join(out, cname), exist_ok=True)\n"
    "    for v in c['values']:\n"
    "        raw = open(os.path.join(fx, v['file']['path']), 'rb').read()\n"
    "        if raw[:2] == b'\\x1f\\x8b': raw = gzip.decompress(raw)\n"
    "        sig = v['file'].get('signature')\n"
    "        if sig: raw = raw[:sig['payload_len']]\n"
    "        open(os.path.join(out, cname, v['digest']), 'wb').write(raw)\n"
    "        print('value\\t' + v['digest'])\n"
    "    for e in c['expand_examples']:\n"
    "        if 'result' in e: print('\\t'.join(['expand', e['prefix'], 'ok', e['result']]))\n"
    "        else:\n"
    "            m = re.search(r'need at least (\\d+)', e['message'])\n"
    "            cands = re.findall(r'[0-9a-f]{64}', e['message'])\n"
    "            print('\\t'.join(['expand', e['prefix'], e['error'], m.group(1) if m else '0',\n"
    "                ','.join(cands) or '-']))\n";

static const char PY_HOSTILE[] =
    "import sys, types, pickle, os, collections\n"
    "out = sys.argv[1]\n"
    "f = types.ModuleType('fleche'); sys.modules['fleche'] = f\n"
    "ml = types.ModuleType('mylib'); sys.modules['mylib'] = ml\n"
    "m = types.ModuleType('fleche.call'); sys.modules['fleche.call'] = m; f.call = m\n"
    "d = types.ModuleType('fleche.digest'); sys.modules['fleche.digest'] = d; f.digest = d\n"
    "class DigestedCall: pass\n"
    "DigestedCall.__module__ = 'fleche.call'; m.DigestedCall = DigestedCall\n"
    "class Digest(str): pass\n"
    "Digest.__module__ = 'fleche.digest'; d.Digest = Digest\n"
    "class Other: pass\n"
    "Other.__module__ = 'mylib.things'; Other.__qualname__ = 'Other'\n"
    "mod = types.ModuleType('mylib.things'); sys.modules['mylib.things'] = mod; mod.Other = Other; "
    "ml.things = mod\n"
    "def call(meta, name='f'):\n"
    "    c = DigestedCall()\n"
    "    c.__dict__ = {'name': name, 'arguments': {'a': Digest('ab' * 32)}, 'result': None,\n"
    "                  'metadata': meta, 'module': None, 'version': None, 'code_digest': None}\n"
    "    return c\n"
    "cyc = []; cyc.append(cyc)\n"
    "dag = [1]\n"
    "for i in range(30): dag = [dag, dag]\n"
    "meta_ok = collections.defaultdict(dict)\n"
    "meta_ok['runtime'] = {'timestop': 5, 'big': 2**70, 'neg': -2**70, 'b': b'\\x00\\x01', 't': "
    "(1, 2.5), 's': {1}, 'o': Other(), 'c': 1+2j, 'none': None}\n"
    "recs = {'01' * 32: call({'runtime': {'x': cyc}}), '02' * 32: call({'tags': {'x': dag}}),\n"
    "        '03' * 32: call(meta_ok), '04' * 32: [1, 2, 3]}\n"
    "for k, v in recs.items():\n"
    "    open(os.path.join(out, k), 'wb').write(pickle.dumps(v, 4))\n";

#define MAXF 16

struct call {
	char *f[MAXF]; /* tab-separated fields, f[0] == "call" */
};

struct exp_cache {
	char name[32];
	struct call calls[64];
	size_t ncalls;
	char values[128][65];
	size_t nvalues;
	char *expands[32][MAXF];
	size_t nexpands;
};

static struct exp_cache caches[4];
static size_t ncaches;
static char secret_hex[256];
static char tmp[256], fx[512], expdir[512];

static size_t split(char *line, char **f)
{
	size_t n = 0;
	char *save = NULL, *t;

	for (t = strtok_r(line, "\t\n", &save); t && n < MAXF; t = strtok_r(NULL, "\t\n", &save))
		f[n++] = strdup(t);
	return n;
}

static int load_expected(const char *fixtures)
{
	char path[1024], cmd[4096], line[8192];
	FILE *p, *s;

	snprintf(path, sizeof(path), "%s/gen.py", tmp);
	s = fopen(path, "w");
	if (!s)
		return -1;
	fputs(PY, s);
	fclose(s);
	snprintf(cmd, sizeof(cmd), "/usr/bin/python3 %s %s/EXPECTED.json %s", path, fixtures,
	         expdir);
	p = popen(cmd, "r");
	if (!p)
		return -1;
	while (fgets(line, sizeof(line), p)) {
		char *f[MAXF] = {0};
		size_t n = split(line, f);
		struct exp_cache *c = ncaches ? &caches[ncaches - 1] : NULL;

		if (n == 2 && strcmp(f[0], "key") == 0) {
			snprintf(secret_hex, sizeof(secret_hex), "%s", f[1]);
		} else if (n == 2 && strcmp(f[0], "cache") == 0 && ncaches < 4) {
			c = &caches[ncaches++];
			snprintf(c->name, sizeof(c->name), "%s", f[1]);
		} else if (c && strcmp(f[0], "call") == 0 && n == 13 && c->ncalls < 64) {
			memcpy(c->calls[c->ncalls++].f, f, sizeof(f));
			continue;
		} else if (c && n == 2 && strcmp(f[0], "value") == 0 && c->nvalues < 128) {
			snprintf(c->values[c->nvalues++], 65, "%s", f[1]);
		} else if (c && strcmp(f[0], "expand") == 0 && c->nexpands < 32) {
			memcpy(c->expands[c->nexpands++], f, sizeof(f));
			continue;
		} else {
			printf("unexpected line from the generator: %s\n", line);
			failures++;
		}
		for (size_t i = 0; i < n; i++)
			free(f[i]);
	}
	return pclose(p) == 0 && ncaches == 4 ? 0 : -1;
}

static int hexkey(const char *hex, uint8_t *out, size_t max)
{
	size_t n = strlen(hex) / 2;

	if (n > max)
		return -1;
	for (size_t i = 0; i < n; i++) {
		unsigned v;

		if (sscanf(hex + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (uint8_t)v;
	}
	return (int)n;
}

static uint8_t keybytes[128];
static size_t keylen;

static struct srv_cache *open_cache(const char *root, bool with_key, bool read_only)
{
	struct srv_config cfg = {0};
	struct srv_cache *c = NULL;
	struct srv_error err = {0};

	cfg.root = root;
	cfg.read_only = read_only;
	if (with_key) {
		cfg.keys[0].bytes = keybytes;
		cfg.keys[0].len = keylen;
		cfg.nkeys = 1;
	}
	if (srv_cache_open(&cfg, &c, &err) != 0) {
		printf("cannot open cache '%s': %s\n", root, err.message);
		failures++;
		return NULL;
	}
	return c;
}

static const msgpack_object *mget(const msgpack_object *m, const char *k)
{
	if (!m || m->type != MSGPACK_OBJECT_MAP)
		return NULL;
	for (uint32_t i = 0; i < m->via.map.size; i++)
		if (m->via.map.ptr[i].key.type == MSGPACK_OBJECT_STR &&
		    m->via.map.ptr[i].key.via.str.size == strlen(k) &&
		    memcmp(m->via.map.ptr[i].key.via.str.ptr, k, strlen(k)) == 0)
			return &m->via.map.ptr[i].val;
	return NULL;
}

static bool nullable_eq(const char *have, const char *want)
{
	if (strcmp(want, "\\N") == 0)
		return have == NULL;
	return have && strcmp(have, want) == 0;
}

static void check_record(const struct srv_record *r, const struct call *e, const char *cname)
{
	char **f = (char **)e->f;
	const char *key = f[1];
	msgpack_unpacked u;
	size_t off = 0;

	CHECK(strcmp(r->key, key) == 0, "%s: key %s", cname, r->key);
	CHECK(r->name && strcmp(r->name, f[3]) == 0, "%s %s: name %s", cname, key, r->name);
	CHECK(nullable_eq(r->module, f[4]), "%s %s: module %s", cname, key, r->module);
	if (f[5][0] == 'N')
		CHECK(r->version_kind == SRV_VERSION_NONE, "%s %s: version kind", cname, key);
	else if (f[5][0] == 'i')
		CHECK(r->version_kind == SRV_VERSION_INT && r->version_int == atoll(f[5] + 1),
		      "%s %s: int version", cname, key);
	else
		CHECK(r->version_kind == SRV_VERSION_STR && strcmp(r->version_str, f[5] + 1) == 0,
		      "%s %s: str version", cname, key);
	CHECK(nullable_eq(r->code_digest, f[6]), "%s %s: code_digest %s", cname, key,
	      r->code_digest);
	if (strcmp(f[7], "\\N") == 0)
		CHECK(!r->has_result, "%s %s: result", cname, key);
	else
		CHECK(r->has_result && strcmp(r->result, f[7]) == 0, "%s %s: result %s", cname, key,
		      r->result);
	/* arguments in signature order */
	{
		char buf[4096] = "", *p = buf;

		for (size_t i = 0; i < r->narguments; i++)
			p += snprintf(p, sizeof(buf) - (size_t)(p - buf), "%s%s=%s", i ? "," : "",
			              r->arguments[i].name, r->arguments[i].value);
		CHECK(strcmp(buf, strcmp(f[11], "-") == 0 ? "" : f[11]) == 0,
		      "%s %s: arguments %s, expected %s", cname, key, buf, f[11]);
	}
	msgpack_unpacked_init(&u);
	CHECK(msgpack_unpack_next(&u, r->metadata, r->metadata_len, &off) ==
	              MSGPACK_UNPACK_SUCCESS &&
	          off == r->metadata_len && u.data.type == MSGPACK_OBJECT_MAP,
	      "%s %s: metadata is one msgpack map", cname, key);
	{
		char blocks[256] = "", *p = blocks;

		for (uint32_t i = 0; u.data.type == MSGPACK_OBJECT_MAP && i < u.data.via.map.size;
		     i++)
			p += snprintf(p, sizeof(blocks) - (size_t)(p - blocks), "%s%.*s",
			              i ? "," : "", (int)u.data.via.map.ptr[i].key.via.str.size,
			              u.data.via.map.ptr[i].key.via.str.ptr);
		CHECK(strcmp(blocks, strcmp(f[12], "-") == 0 ? "" : f[12]) == 0,
		      "%s %s: metadata blocks %s, expected %s", cname, key, blocks, f[12]);
	}
	if (strcmp(f[9], "\\N") != 0) {
		const msgpack_object *ts = mget(mget(&u.data, "runtime"), "timestop");
		double want = strtod(f[9], NULL);

		CHECK(ts && ts->type == MSGPACK_OBJECT_FLOAT64 && ts->via.f64 == want,
		      "%s %s: runtime.timestop", cname, key);
		CHECK(r->mtime == want, "%s %s: mtime %.17g, expected %.17g", cname, key, r->mtime,
		      want);
	} else {
		CHECK(r->mtime > 1e9, "%s %s: mtime falls back to the file's: %f", cname, key,
		      r->mtime);
	}
	if (strcmp(f[10], "\\N") != 0) {
		const msgpack_object *h = mget(mget(&u.data, "environment"), "hostname");

		CHECK(h && h->type == MSGPACK_OBJECT_STR && h->via.str.size == strlen(f[10]) &&
		          memcmp(h->via.str.ptr, f[10], h->via.str.size) == 0,
		      "%s %s: environment.hostname", cname, key);
	}
	msgpack_unpacked_destroy(&u);
}

static unsigned char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static int cmp_keys(const void *a, const void *b)
{
	return strcmp(((const struct call *)a)->f[1], ((const struct call *)b)->f[1]);
}

static void check_values(struct srv_cache *c, const struct exp_cache *e)
{
	struct srv_page page;
	struct srv_error err = {0};

	for (size_t i = 0; i < e->nvalues; i++) {
		char path[1024];
		size_t len = 0;
		unsigned char *want;
		struct srv_value *v = NULL;

		snprintf(path, sizeof(path), "%s/%s/%s", expdir, e->name, e->values[i]);
		want = slurp(path, &len);
		CHECK(want, "cannot read %s", path);
		if (srv_value_open(c, e->values[i], RPC_KEY_LEN, &v, &err) != 0) {
			CHECK(0, "%s value %s: %s", e->name, e->values[i], err.message);
			free(want);
			continue;
		}
		CHECK(srv_value_size(v) == len && memcmp(srv_value_bytes(v), want, len) == 0,
		      "%s value %s: bytes differ (%llu vs %zu)", e->name, e->values[i],
		      (unsigned long long)srv_value_size(v), len);
		CHECK(strcmp(srv_value_key(v), e->values[i]) == 0, "value key");
		CHECK(srv_value_mtime(v) > 1e9, "value mtime");
		srv_value_close(v);
		/* again, by a unique 12-character prefix: served from the LRU */
		if (srv_value_open(c, e->values[i], 12, &v, &err) == 0) {
			CHECK(srv_value_size(v) == len &&
			          memcmp(srv_value_bytes(v), want, len) == 0,
			      "%s value %s by prefix", e->name, e->values[i]);
			srv_value_close(v);
		} else {
			CHECK(err.code == RPC_E_AMBIGUOUS, "%s value prefix %.12s: %s", e->name,
			      e->values[i], err.message);
		}
		free(want);
	}
	/* list values with detail: sizes are those load_value serves */
	if (srv_list(c, SRV_VALUES, NULL, 1000, true, &page, &err) != 0) {
		CHECK(0, "list values: %s", err.message);
		return;
	}
	CHECK(page.n == e->nvalues && page.complete, "%s: %zu values listed, expected %zu", e->name,
	      page.n, e->nvalues);
	for (size_t i = 0; i < page.n; i++) {
		char path[1024];
		struct stat st;

		snprintf(path, sizeof(path), "%s/%s/%s", expdir, e->name, page.entries[i].key);
		CHECK(stat(path, &st) == 0 && page.entries[i].size == st.st_size,
		      "%s: listed size of %s is %lld", e->name, page.entries[i].key,
		      (long long)page.entries[i].size);
		CHECK(i == 0 || strcmp(page.entries[i - 1].key, page.entries[i].key) < 0,
		      "values ascending");
	}
	srv_page_release(&page);
}

static void check_calls(struct srv_cache *c, struct exp_cache *e)
{
	struct srv_error err = {0};
	struct srv_page page;
	struct srv_names names;
	char out[RPC_KEY_LEN + 1], after[RPC_KEY_LEN + 1] = "";
	size_t seen = 0;
	bool found;

	for (size_t i = 0; i < e->ncalls; i++) {
		struct call *k = &e->calls[i];
		struct srv_record r;
		const char *key = k->f[1], *shrunk = k->f[2];

		if (srv_load(c, key, RPC_KEY_LEN, &r, &err) != 0) {
			CHECK(0, "%s load %s: %s", e->name, key, err.message);
			continue;
		}
		check_record(&r, k, e->name);
		srv_record_release(&r);
		if (srv_load(c, shrunk, strlen(shrunk), &r, &err) == 0) {
			CHECK(strcmp(r.key, key) == 0, "load by shrunk prefix");
			srv_record_release(&r);
		} else {
			CHECK(0, "%s load %s: %s", e->name, shrunk, err.message);
		}
		CHECK(srv_shrink(c, key, RPC_KEY_LEN, out, &err) == 0 && strcmp(out, shrunk) == 0,
		      "%s shrink %s: %s, fleche says %s", e->name, key, out, shrunk);
		CHECK(srv_contains(c, key, RPC_KEY_LEN, &found, &err) == 0 &&
		          found == (k->f[8][0] == '1'),
		      "%s contains %s", e->name, key);
		CHECK(srv_contains(c, shrunk, strlen(shrunk), &found, &err) == 0 && found,
		      "%s contains %s", e->name, shrunk);
	}
	/* contains: malformed and short are false, values are not calls */
	CHECK(srv_contains(c, "abc", 3, &found, &err) == 0 && !found, "contains short");
	CHECK(srv_contains(c, "ABCD", 4, &found, &err) == 0 && !found, "contains upper");
	CHECK(srv_contains(c, "../x", 4, &found, &err) == 0 && !found, "contains path");
	if (e->nvalues)
		CHECK(srv_contains(c, e->values[0], RPC_KEY_LEN, &found, &err) == 0 && !found,
		      "contains of a value key is false");

	/* list calls in pages of 3: every key once, ascending */
	qsort(e->calls, e->ncalls, sizeof(e->calls[0]), cmp_keys);
	for (;;) {
		if (srv_list(c, SRV_CALLS, after[0] ? after : NULL, 3, true, &page, &err) != 0) {
			CHECK(0, "list calls: %s", err.message);
			break;
		}
		CHECK(page.n <= 3, "page limit");
		for (size_t i = 0; i < page.n && seen < e->ncalls; i++, seen++) {
			struct call *k = &e->calls[seen];

			CHECK(strcmp(page.entries[i].key, k->f[1]) == 0, "%s list: %s, expected %s",
			      e->name, page.entries[i].key, k->f[1]);
			CHECK(page.entries[i].name && strcmp(page.entries[i].name, k->f[3]) == 0,
			      "%s list name of %s", e->name, k->f[1]);
			if (strcmp(k->f[9], "\\N") != 0)
				CHECK(page.entries[i].mtime == strtod(k->f[9], NULL),
				      "%s list mtime of %s", e->name, k->f[1]);
		}
		if (page.n)
			snprintf(after, sizeof(after), "%s", page.entries[page.n - 1].key);
		found = page.complete;
		CHECK(page.n == 3 || page.complete, "short page is complete");
		srv_page_release(&page);
		if (found)
			break;
	}
	CHECK(seen == e->ncalls, "%s: listed %zu calls, expected %zu", e->name, seen, e->ncalls);

	/* names: distinct, ascending */
	if (srv_names(c, NULL, 1000, &names, &err) == 0) {
		size_t want = 0;

		for (size_t i = 0; i < e->ncalls; i++) {
			bool dup = false;

			for (size_t j = 0; j < i; j++)
				dup |= strcmp(e->calls[j].f[3], e->calls[i].f[3]) == 0;
			want += !dup;
		}
		CHECK(names.n == want && names.complete, "%s names: %zu, expected %zu", e->name,
		      names.n, want);
		for (size_t i = 1; i < names.n; i++)
			CHECK(strcmp(names.names[i - 1], names.names[i]) < 0, "names ascending");
		srv_names_release(&names);
	} else {
		CHECK(0, "names: %s", err.message);
	}
}

/* A template built with msgpack, checked against the expected calls. */
static void check_query(struct srv_cache *c, struct exp_cache *e)
{
	struct srv_error err = {0};
	struct call *k = &e->calls[0];
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_unpacked u;
	struct srv_page page;
	size_t off = 0, want = 0;
	char an[128] = "";
	const char *eq = NULL;

	/* {"name": N, "arguments": {first arg}, "metadata": {"runtime": {"timestop": T}}} */
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, strcmp(k->f[11], "-") ? 2 : 1);
	msgpack_pack_str_with_body(&pk, "name", 4);
	msgpack_pack_str_with_body(&pk, k->f[3], strlen(k->f[3]));
	if (strcmp(k->f[11], "-")) {
		eq = strchr(k->f[11], '=');
		snprintf(an, sizeof(an), "%.*s", (int)(eq - k->f[11]), k->f[11]);
		msgpack_pack_str_with_body(&pk, "arguments", 9);
		msgpack_pack_map(&pk, 1);
		msgpack_pack_str_with_body(&pk, an, strlen(an));
		msgpack_pack_str_with_body(&pk, eq + 1, 64);
	}
	msgpack_unpacked_init(&u);
	msgpack_unpack_next(&u, sb.data, sb.size, &off);
	for (size_t i = 0; i < e->ncalls; i++) {
		const char *a = e->calls[i].f[11];

		if (strcmp(e->calls[i].f[3], k->f[3]) != 0)
			continue;
		if (!eq) {
			want++;
			continue;
		}
		/* the same argument name=digest appears in its argument list */
		{
			char pat[256];
			size_t pl = (size_t)snprintf(pat, sizeof(pat), "%s=%.64s", an, eq + 1);
			const char *hit = strstr(a, pat);

			want += hit && (hit == a || hit[-1] == ',') && (hit[pl] == ',' || !hit[pl]);
		}
	}
	if (srv_query(c, &u.data, NULL, 1000, true, &page, &err) == 0) {
		CHECK(page.n == want && page.complete, "%s query: %zu matches, expected %zu",
		      e->name, page.n, want);
		for (size_t i = 0; i < page.n; i++)
			CHECK(page.entries[i].name && strcmp(page.entries[i].name, k->f[3]) == 0,
			      "query detail name");
		srv_page_release(&page);
	} else {
		CHECK(0, "%s query: %s", e->name, err.message);
	}
	msgpack_unpacked_destroy(&u);
	msgpack_sbuffer_destroy(&sb);

	/* metadata by value, and numbers by value: runtime.timestop of the first call */
	if (strcmp(k->f[9], "\\N") != 0) {
		double t = strtod(k->f[9], NULL);

		msgpack_sbuffer_init(&sb);
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		msgpack_pack_map(&pk, 1);
		msgpack_pack_str_with_body(&pk, "metadata", 8);
		msgpack_pack_map(&pk, 1);
		msgpack_pack_str_with_body(&pk, "runtime", 7);
		msgpack_pack_map(&pk, 1);
		msgpack_pack_str_with_body(&pk, "timestop", 8);
		msgpack_pack_double(&pk, t);
		msgpack_unpacked_init(&u);
		off = 0;
		msgpack_unpack_next(&u, sb.data, sb.size, &off);
		if (srv_query(c, &u.data, NULL, 10, false, &page, &err) == 0) {
			CHECK(page.n == 1 && strcmp(page.entries[0].key, k->f[1]) == 0,
			      "%s query by timestop: %zu", e->name, page.n);
			srv_page_release(&page);
		} else {
			CHECK(0, "%s query: %s", e->name, err.message);
		}
		msgpack_unpacked_destroy(&u);
		msgpack_sbuffer_destroy(&sb);
	}
	/* an unknown field is EINVAL */
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 1);
	msgpack_pack_str_with_body(&pk, "colour", 6);
	msgpack_pack_nil(&pk);
	msgpack_unpacked_init(&u);
	off = 0;
	msgpack_unpack_next(&u, sb.data, sb.size, &off);
	CHECK(srv_query(c, &u.data, NULL, 10, false, &page, &err) != 0 && err.code == RPC_E_EINVAL,
	      "unknown template field");
	msgpack_unpacked_destroy(&u);
	msgpack_sbuffer_destroy(&sb);
}

static void check_expand(struct srv_cache *c, const struct exp_cache *e)
{
	struct srv_error err = {0};
	char out[RPC_KEY_LEN + 1];

	for (size_t i = 0; i < e->nexpands; i++) {
		char *const *f = e->expands[i];
		const char *p = f[1];
		int rc = srv_expand(c, p, strlen(p), out, &err);

		if (strcmp(f[2], "ok") == 0) {
			CHECK(rc == 0 && strcmp(out, f[3]) == 0, "%s expand %s: %s", e->name, p,
			      rc ? err.message : out);
		} else if (strcmp(f[2], "KeyError") == 0) {
			CHECK(rc != 0 && err.code == (strlen(p) < 4 ? RPC_E_EINVAL : RPC_E_ENOENT),
			      "%s expand %s: expected KeyError", e->name, p);
		} else {
			CHECK(rc != 0 && err.code == RPC_E_AMBIGUOUS &&
			          err.needed == (unsigned)atoi(f[3]),
			      "%s expand %s: %s (needed %u, fleche %s)", e->name, p, err.message,
			      err.needed, f[3]);
			if (rc != 0 && err.code == RPC_E_AMBIGUOUS) {
				char cands[1024] = "", *q = cands;

				for (size_t j = 0; j < err.ncandidates; j++)
					q += snprintf(q, sizeof(cands) - (size_t)(q - cands),
					              "%s%s", j ? "," : "", err.candidates[j]);
				CHECK(strcmp(cands, f[4]) == 0, "candidates %s vs %s", cands, f[4]);
			}
		}
	}
	CHECK(srv_expand(c, "12", 2, out, &err) != 0 && err.code == RPC_E_EINVAL, "expand short");
	CHECK(srv_expand(c, "zzzz", 4, out, &err) != 0 && err.code == RPC_E_EINVAL, "expand bad");
}

static void run_cache(struct exp_cache *e, struct srv_cache *c)
{
	check_calls(c, e);
	check_values(c, e);
	check_expand(c, e);
	check_query(c, e);
}

static void test_fixture_caches(void)
{
	for (size_t i = 0; i < ncaches; i++) {
		char root[600];
		struct srv_cache *c;

		snprintf(root, sizeof(root), "%s/%s", fx, caches[i].name);
		c = open_cache(root, strcmp(caches[i].name, "signed") == 0, true);
		if (!c)
			continue;
		{
			struct srv_layout l;

			srv_cache_layout(c, &l);
			CHECK(strcmp(l.calls_type,
			             strcmp(caches[i].name, "pickle_sql") == 0 ? "sql" : "files") ==
			          0,
			      "%s layout calls type %s", caches[i].name, l.calls_type);
			CHECK(l.values_path[0] == '/' && l.calls_path[0] == '/', "absolute paths");
		}
		run_cache(&caches[i], c);
		srv_cache_free(c);
		printf("cache %s: checked %zu calls, %zu values, %zu expand examples\n",
		       caches[i].name, caches[i].ncalls, caches[i].nvalues, caches[i].nexpands);
	}
}

static struct exp_cache *find(const char *name)
{
	for (size_t i = 0; i < ncaches; i++)
		if (strcmp(caches[i].name, name) == 0)
			return &caches[i];
	return NULL;
}

/* The explicit layout, with a relative sqlite:/// URL as SQLAlchemy reads it. */
static void test_explicit_sql(void)
{
	struct exp_cache *e = find("pickle_sql");
	struct srv_config cfg = {0};
	struct srv_cache *c = NULL;
	struct srv_error err = {0};
	struct srv_layout l;
	char cwd[1024], want[1024];
	uint64_t nc = 0, nv = 0;

	if (!e || !getcwd(cwd, sizeof(cwd)) || chdir(fx) != 0)
		return;
	cfg.calls = "sqlite:///pickle_sql/calls.db";
	cfg.values = "pickle_sql/values";
	cfg.read_only = true;
	if (srv_cache_open(&cfg, &c, &err) != 0) {
		CHECK(0, "explicit sql: %s", err.message);
		goto out;
	}
	srv_cache_layout(c, &l);
	snprintf(want, sizeof(want), "%s/pickle_sql/calls.db", fx);
	CHECK(strcmp(l.calls_type, "sql") == 0 && strcmp(l.calls_path, want) == 0,
	      "explicit sql path %s", l.calls_path);
	CHECK(l.root == NULL && l.read_only, "explicit layout");
	CHECK(srv_count(c, &nc, &nv, &err) == 0 && nc == e->ncalls && nv == e->nvalues,
	      "count %llu %llu", (unsigned long long)nc, (unsigned long long)nv);
	srv_cache_free(c);
	/* explicit storages must exist; a template root may lack its subdirectories */
	cfg.calls = "files/no-such-dir";
	cfg.values = "files/values";
	CHECK(srv_cache_open(&cfg, &c, &err) != 0 && err.code == RPC_E_ENOENT,
	      "missing explicit calls directory");
	cfg.calls = "files/calls";
	cfg.values = "files/no-such-dir";
	CHECK(srv_cache_open(&cfg, &c, &err) != 0 && err.code == RPC_E_ENOENT,
	      "missing explicit values directory");
	cfg.calls = "sqlite:///pickle_sql/missing.db";
	cfg.values = "files/values";
	CHECK(srv_cache_open(&cfg, &c, &err) != 0 && err.code == RPC_E_ENOENT, "missing database");
	cfg.calls = "sqlite:/x";
	CHECK(srv_cache_open(&cfg, &c, &err) != 0 && err.code == RPC_E_EINVAL, "bad url");
	memset(&cfg, 0, sizeof(cfg));
	cfg.root = "files/calls"; /* a root without calls/ or values/: an empty cache */
	if (srv_cache_open(&cfg, &c, &err) == 0) {
		CHECK(srv_count(c, &nc, &nv, &err) == 0 && nc == 0 && nv == 0, "empty root");
		srv_cache_free(c);
	} else {
		CHECK(0, "empty root: %s", err.message);
	}
	cfg.root = "no-such-root";
	CHECK(srv_cache_open(&cfg, &c, &err) != 0 && err.code == RPC_E_ENOENT, "missing root");
out:
	CHECK(chdir(cwd) == 0, "chdir back");
}

static int copy_tree(const char *from, const char *to)
{
	char cmd[4096];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s' && cp -r '%s' '%s' && chmod -R u+w '%s'", to, from,
	         to, to);
	return system(cmd);
}

static void test_signed(void)
{
	struct exp_cache *e = find("signed");
	char root[600], bad[700], path[1024];
	struct srv_cache *c;
	struct srv_error err = {0};
	struct srv_record r;
	struct srv_value *v;
	uint8_t saved[128];
	size_t savedlen = keylen;
	int fd;
	unsigned char ch;

	if (!e)
		return;
	snprintf(root, sizeof(root), "%s/signed", fx);
	/* no key: served unverified, the trailer removed (stderr says so once) */
	c = open_cache(root, false, true);
	if (c) {
		check_values(c, e);
		for (size_t i = 0; i < e->ncalls; i++) {
			if (srv_load(c, e->calls[i].f[1], RPC_KEY_LEN, &r, &err) == 0) {
				check_record(&r, &e->calls[i], "signed without key");
				srv_record_release(&r);
			} else {
				CHECK(0, "signed, no key, load: %s", err.message);
			}
		}
		srv_cache_free(c);
	}
	/* wrong key: EBADMSG everywhere */
	memcpy(saved, keybytes, keylen);
	keybytes[0] ^= 1;
	c = open_cache(root, true, true);
	if (c) {
		CHECK(srv_load(c, e->calls[0].f[1], RPC_KEY_LEN, &r, &err) != 0 &&
		          err.code == RPC_E_EBADMSG && strstr(err.message, e->calls[0].f[1]),
		      "wrong key: load is EBADMSG naming the file: %s", err.message);
		CHECK(srv_value_open(c, e->values[0], RPC_KEY_LEN, &v, &err) != 0 &&
		          err.code == RPC_E_EBADMSG,
		      "wrong key: value is EBADMSG");
		srv_cache_free(c);
	}
	memcpy(keybytes, saved, savedlen);
	/* a copy with one byte altered (in the pickle, and in a trailer) */
	snprintf(bad, sizeof(bad), "%s/signed-altered", tmp);
	CHECK(copy_tree(root, bad) == 0, "copy");
	snprintf(path, sizeof(path), "%s/calls/%s", bad, e->calls[0].f[1]);
	fd = open(path, O_RDWR);
	CHECK(fd >= 0 && pread(fd, &ch, 1, 30) == 1, "open altered");
	ch ^= 0x20;
	CHECK(pwrite(fd, &ch, 1, 30) == 1, "alter");
	close(fd);
	snprintf(path, sizeof(path), "%s/values/%s", bad, e->values[0]);
	fd = open(path, O_RDWR);
	{
		struct stat st;

		CHECK(fd >= 0 && fstat(fd, &st) == 0 && pread(fd, &ch, 1, st.st_size - 3) == 1,
		      "open altered value");
		ch = ch == 'a' ? 'b' : 'a';
		CHECK(pwrite(fd, &ch, 1, st.st_size - 3) == 1, "alter value trailer");
	}
	close(fd);
	c = open_cache(bad, true, true);
	if (c) {
		CHECK(srv_load(c, e->calls[0].f[1], RPC_KEY_LEN, &r, &err) != 0 &&
		          err.code == RPC_E_EBADMSG,
		      "altered record is EBADMSG");
		CHECK(srv_value_open(c, e->values[0], RPC_KEY_LEN, &v, &err) != 0 &&
		          err.code == RPC_E_EBADMSG,
		      "altered value is EBADMSG");
		/* the others still verify */
		if (e->ncalls > 1) {
			CHECK(srv_load(c, e->calls[1].f[1], RPC_KEY_LEN, &r, &err) == 0,
			      "untouched record loads: %s", err.message);
			srv_record_release(&r);
		}
		srv_cache_free(c);
	}
	/* several keys: any may verify */
	{
		struct srv_config cfg = {0};
		uint8_t other[4] = {1, 2, 3, 4};

		cfg.root = root;
		cfg.keys[0].bytes = other;
		cfg.keys[0].len = 4;
		cfg.keys[1].bytes = keybytes;
		cfg.keys[1].len = keylen;
		cfg.nkeys = 2;
		if (srv_cache_open(&cfg, &c, &err) == 0) {
			CHECK(srv_load(c, e->calls[0].f[1], RPC_KEY_LEN, &r, &err) == 0,
			      "second key verifies: %s", err.message);
			srv_record_release(&r);
			srv_cache_free(c);
		}
	}
	/* a plain (unsigned) cache read with a key configured: EBADMSG */
	snprintf(root, sizeof(root), "%s/files", fx);
	c = open_cache(root, true, true);
	if (c) {
		CHECK(srv_load(c, find("files")->calls[0].f[1], RPC_KEY_LEN, &r, &err) != 0 &&
		          err.code == RPC_E_EBADMSG,
		      "unsigned record with a key configured is EBADMSG");
		srv_cache_free(c);
	}
}

static int sql_count(const char *db, const char *sql, const char *key)
{
	sqlite3 *h = NULL;
	sqlite3_stmt *st = NULL;
	int n = -1;

	if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(h, sql, -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW)
			n = sqlite3_column_int(st, 0);
	}
	sqlite3_finalize(st);
	sqlite3_close(h);
	return n;
}

static void test_evict(void)
{
	static const char *const names[] = {"files", "pickle_sql", "signed", "gzip"};

	for (size_t i = 0; i < 4; i++) {
		struct exp_cache *e = find(names[i]);
		char from[600], root[700], db[800], path[900];
		struct srv_cache *c;
		struct srv_error err = {0};
		struct srv_record r;
		const char *key;
		bool found = true;
		uint64_t nc0 = 0, nc1 = 0, nv0 = 0, nv1 = 0;

		if (!e || e->ncalls < 2)
			continue;
		key = e->calls[1].f[1];
		snprintf(from, sizeof(from), "%s/%s", fx, names[i]);
		snprintf(root, sizeof(root), "%s/evict-%s", tmp, names[i]);
		CHECK(copy_tree(from, root) == 0, "copy %s", from);
		/* read-only refuses */
		c = open_cache(root, i == 2, true);
		if (c) {
			CHECK(srv_evict(c, key, RPC_KEY_LEN, &err) != 0 && err.code == RPC_E_EROFS,
			      "read-only evict is EROFS");
			srv_cache_free(c);
		}
		c = open_cache(root, i == 2, false);
		if (!c)
			continue;
		CHECK(srv_count(c, &nc0, &nv0, &err) == 0, "count");
		CHECK(srv_evict(c, key, RPC_KEY_LEN, &err) == 0, "%s evict: %s", names[i],
		      err.message);
		CHECK(srv_contains(c, key, RPC_KEY_LEN, &found, &err) == 0 && !found,
		      "%s: evicted key still contained", names[i]);
		CHECK(srv_load(c, key, RPC_KEY_LEN, &r, &err) != 0 && err.code == RPC_E_ENOENT,
		      "%s: load of an evicted key is ENOENT: %s", names[i], err.message);
		CHECK(srv_evict(c, key, RPC_KEY_LEN, &err) == 0,
		      "evict of an unknown key succeeds");
		CHECK(srv_evict(c, "ffff0000", 8, &err) != 0 && err.code == RPC_E_ENOENT,
		      "evict of an unknown prefix is ENOENT");
		CHECK(srv_evict(c, "xyz", 3, &err) != 0 && err.code == RPC_E_EINVAL,
		      "evict malformed");
		CHECK(srv_count(c, &nc1, &nv1, &err) == 0 && nc1 == nc0 - 1 && nv1 == nv0,
		      "%s: counts after evict %llu/%llu, before %llu/%llu", names[i],
		      (unsigned long long)nc1, (unsigned long long)nv1, (unsigned long long)nc0,
		      (unsigned long long)nv0);
		/* by unique prefix */
		key = e->calls[0].f[2];
		CHECK(srv_evict(c, key, strlen(key), &err) == 0, "evict by prefix: %s",
		      err.message);
		CHECK(srv_contains(c, e->calls[0].f[1], RPC_KEY_LEN, &found, &err) == 0 && !found,
		      "evicted by prefix");
		srv_cache_free(c);
		if (i == 1) {
			snprintf(db, sizeof(db), "%s/calls.db", root);
			for (size_t j = 0; j < 2; j++) {
				key = e->calls[j].f[1];
				CHECK(sql_count(db, "SELECT count(*) FROM calls WHERE key = ?",
				                key) == 0,
				      "calls row gone");
				CHECK(sql_count(db,
				                "SELECT count(*) FROM arguments WHERE call_key = ?",
				                key) == 0,
				      "arguments rows gone");
				CHECK(sql_count(db,
				                "SELECT count(*) FROM metadata WHERE call_key = ?",
				                key) == 0,
				      "metadata rows gone");
			}
			CHECK(sql_count(db, "SELECT count(*) FROM metadata WHERE call_key = ?",
			                e->calls[3].f[1]) >= 0,
			      "other rows readable");
		} else {
			snprintf(path, sizeof(path), "%s/calls/%s", root, e->calls[1].f[1]);
			CHECK(access(path, F_OK) != 0, "record file removed");
		}
		/* value files are never removed */
		for (size_t j = 0; j < e->nvalues; j++) {
			snprintf(path, sizeof(path), "%s/values/%s", root, e->values[j]);
			CHECK(access(path, F_OK) == 0, "value %s kept", e->values[j]);
		}
	}
}

/* Hidden, temporary, lock and non-key names are invisible; vanished files are ENOENT. */
static void test_hidden_and_vanished(void)
{
	struct exp_cache *e = find("files");
	char from[600], root[700], path[1024];
	struct srv_cache *c;
	struct srv_error err = {0};
	struct srv_page page;
	struct srv_record r;
	struct srv_value *v;
	uint64_t nc = 0, nv = 0;
	static const char *const junk[] = {
	    ".0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.1234.tmp",
	    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.lock",
	    "0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",
	    "notakey",
	    ".hidden",
	};

	if (!e)
		return;
	snprintf(from, sizeof(from), "%s/files", fx);
	snprintf(root, sizeof(root), "%s/hidden-files", tmp);
	CHECK(copy_tree(from, root) == 0, "copy");
	for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
		FILE *f;

		snprintf(path, sizeof(path), "%s/calls/%s", root, junk[i]);
		f = fopen(path, "w");
		if (f) {
			fputs("junk", f);
			fclose(f);
		}
		snprintf(path, sizeof(path), "%s/values/%s", root, junk[i]);
		f = fopen(path, "w");
		if (f) {
			fputs("junk", f);
			fclose(f);
		}
	}
	c = open_cache(root, false, true);
	if (!c)
		return;
	CHECK(srv_count(c, &nc, &nv, &err) == 0 && nc == e->ncalls && nv == e->nvalues,
	      "junk not counted: %llu %llu", (unsigned long long)nc, (unsigned long long)nv);
	CHECK(srv_list(c, SRV_CALLS, NULL, 1000, true, &page, &err) == 0 && page.n == e->ncalls,
	      "junk not listed");
	srv_page_release(&page);
	CHECK(srv_load(c, "0123", 4, &r, &err) != 0 && err.code == RPC_E_ENOENT,
	      "junk never matched");
	/* a file renamed into place right after a listing is seen at once */
	{
		char from_rec[1024], cmd[4200];
		const char *nk = "0000000000000000000000000000000000000000000000000000000000000001";

		snprintf(from_rec, sizeof(from_rec), "%s/calls/%s", root, e->calls[0].f[1]);
		snprintf(cmd, sizeof(cmd),
		         "cp '%s' '%s/calls/.tmp-new' && mv '%s/calls/.tmp-new' '%s/calls/%s'",
		         from_rec, root, root, root, nk);
		CHECK(system(cmd) == 0, "add a record");
		CHECK(srv_count(c, &nc, &nv, &err) == 0 && nc == e->ncalls + 1,
		      "new record counted");
		CHECK(srv_load(c, "00000", 5, &r, &err) == 0 && strcmp(r.key, nk) == 0,
		      "new record found by prefix: %s", err.message);
		srv_record_release(&r);
		snprintf(cmd, sizeof(cmd), "%s/calls/%s", root, nk);
		CHECK(unlink(cmd) == 0, "remove it");
		CHECK(srv_count(c, &nc, &nv, &err) == 0 && nc == e->ncalls, "removed record gone");
	}
	/* a record and a value vanish after being listed */
	snprintf(path, sizeof(path), "%s/calls/%s", root, e->calls[0].f[1]);
	CHECK(unlink(path) == 0, "unlink");
	CHECK(srv_load(c, e->calls[0].f[1], RPC_KEY_LEN, &r, &err) != 0 && err.code == RPC_E_ENOENT,
	      "vanished record is ENOENT: %s", err.message);
	snprintf(path, sizeof(path), "%s/values/%s", root, e->values[0]);
	CHECK(unlink(path) == 0, "unlink");
	CHECK(srv_value_open(c, e->values[0], RPC_KEY_LEN, &v, &err) != 0 &&
	          err.code == RPC_E_ENOENT,
	      "vanished value is ENOENT");
	CHECK(srv_list(c, SRV_CALLS, NULL, 1000, true, &page, &err) == 0 && page.n == e->ncalls - 1,
	      "vanished record not listed");
	srv_page_release(&page);
	/* a truncated record is CORRUPT, not a crash */
	snprintf(path, sizeof(path), "%s/calls/%s", root, e->calls[1].f[1]);
	CHECK(truncate(path, 100) == 0, "truncate");
	CHECK(srv_load(c, e->calls[1].f[1], RPC_KEY_LEN, &r, &err) != 0 &&
	          err.code == RPC_E_CORRUPT,
	      "truncated record is CORRUPT: %s", err.message);
	srv_cache_free(c);
}

/* Writes n zero bytes gzip-compressed to path. */
static int write_gzip_zeros(const char *path, size_t n)
{
	gzFile g = gzopen(path, "wb9");
	static char zeros[65536];

	if (!g)
		return -1;
	while (n > 0) {
		unsigned k = n > sizeof(zeros) ? sizeof(zeros) : (unsigned)n;

		if (gzwrite(g, zeros, k) != (int)k) {
			gzclose(g);
			return -1;
		}
		n -= k;
	}
	return gzclose(g) == Z_OK ? 0 : -1;
}

/* A gzip bomb: a record over the cap is CORRUPT; a large value spills to a file. */
static void test_gzip_bomb(void)
{
	char root[600], path[2048];
	const char *key = "00000000000000000000000000000000000000000000000000000000000000aa";
	struct srv_cache *c;
	struct srv_error err = {0};
	struct srv_record r;
	struct srv_value *v;
	struct srv_page page;
	const size_t n = 70u * 1024 * 1024;

	snprintf(root, sizeof(root), "%s/bomb", tmp);
	snprintf(path, sizeof(path), "mkdir -p %s/calls %s/values", root, root);
	CHECK(system(path) == 0, "mkdir");
	snprintf(path, sizeof(path), "%s/calls/%s", root, key);
	CHECK(write_gzip_zeros(path, n) == 0, "gzip");
	snprintf(path, sizeof(path), "%s/values/%s", root, key);
	CHECK(write_gzip_zeros(path, n) == 0, "gzip");
	c = open_cache(root, false, true);
	if (!c)
		return;
	CHECK(srv_load(c, key, RPC_KEY_LEN, &r, &err) != 0 && err.code == RPC_E_CORRUPT,
	      "gzip bomb record: %s", err.message);
	if (srv_value_open(c, key, RPC_KEY_LEN, &v, &err) == 0) {
		const uint8_t *b = srv_value_bytes(v);

		CHECK(srv_value_size(v) == n && b[0] == 0 && b[n - 1] == 0, "large gzip value");
		srv_value_close(v);
	} else {
		CHECK(0, "large gzip value: %s", err.message);
	}
	/* A listing does not inflate large compressed values (that would make `ls` of a
	 * cache of big compressed arrays take as long as reading them all): their size
	 * is unknown there (stat_value tells). Small ones are listed exactly: below the
	 * compressed bound; above the inflated bound (2 MiB of zeros is 2 KiB of gzip). */
	static const struct {
		const char *key;
		size_t n;
		int64_t listed;
	} small[] = {
	    {"00000000000000000000000000000000000000000000000000000000000000bb", 1000, 1000},
	    {"00000000000000000000000000000000000000000000000000000000000000cc", 1u << 20,
	     1 << 20},
	    {"00000000000000000000000000000000000000000000000000000000000000dd", 2u << 20, -1},
	};
	for (size_t k = 0; k < sizeof(small) / sizeof(small[0]); k++) {
		snprintf(path, sizeof(path), "%s/values/%s", root, small[k].key);
		CHECK(write_gzip_zeros(path, small[k].n) == 0, "gzip");
	}
	CHECK(srv_list(c, SRV_VALUES, NULL, 10, true, &page, &err) == 0 && page.n == 4 &&
	          page.entries[0].size == -1,
	      "large gzip value: size unknown in a listing");
	for (size_t k = 0; k < sizeof(small) / sizeof(small[0]) && page.n == 4; k++) {
		CHECK(page.entries[k + 1].size == small[k].listed, "gzip value of %zu: %lld listed",
		      small[k].n, (long long)page.entries[k + 1].size);
		if (srv_value_open(c, small[k].key, RPC_KEY_LEN, &v, &err) == 0) {
			CHECK(srv_value_size(v) == small[k].n, "gzip value of %zu: opened size",
			      small[k].n);
			srv_value_close(v);
		} else {
			CHECK(0, "gzip value of %zu: %s", small[k].n, err.message);
		}
	}
	srv_page_release(&page);
	srv_cache_free(c);
}

/*
 * An older database: INTEGER version, no code_digest column; metadata with Python's
 * NaN/Infinity tokens and a big integer; rows whose keys are not keys.
 */
static void test_old_sql(void)
{
	static const char *const sql[] = {
	    "CREATE TABLE calls (\"key\" VARCHAR(64) NOT NULL, name VARCHAR NOT NULL,"
	    " module VARCHAR, version INTEGER, result VARCHAR(64), PRIMARY KEY (\"key\"))",
	    "CREATE TABLE arguments (id INTEGER NOT NULL, call_key VARCHAR(64) NOT NULL,"
	    " position INTEGER NOT NULL, name VARCHAR NOT NULL, value VARCHAR(64) NOT NULL,"
	    " PRIMARY KEY (id))",
	    "CREATE TABLE metadata (id INTEGER NOT NULL, call_key VARCHAR(64) NOT NULL,"
	    " name VARCHAR NOT NULL, data JSON NOT NULL, PRIMARY KEY (id))",
	    "INSERT INTO calls VALUES "
	    "('aaaa000000000000000000000000000000000000000000000000000000000001',"
	    " 'old', 'm', 3, NULL)",
	    "INSERT INTO calls VALUES "
	    "('aaaa000000000000000000000000000000000000000000000000000000000002',"
	    " 'old', NULL, NULL, "
	    "'bbbb000000000000000000000000000000000000000000000000000000000000')",
	    "INSERT INTO calls VALUES "
	    "('AAAA000000000000000000000000000000000000000000000000000000000003',"
	    " 'upper', NULL, NULL, NULL)",
	    "INSERT INTO calls VALUES ('short', 'bad', NULL, NULL, NULL)",
	    "INSERT INTO arguments VALUES (1, "
	    "'aaaa000000000000000000000000000000000000000000000000000000000001',"
	    " 1, 'y', 'cccc000000000000000000000000000000000000000000000000000000000000')",
	    "INSERT INTO arguments VALUES (2, "
	    "'aaaa000000000000000000000000000000000000000000000000000000000001',"
	    " 0, 'x', 'dddd000000000000000000000000000000000000000000000000000000000000')",
	    "INSERT INTO metadata VALUES (1, "
	    "'aaaa000000000000000000000000000000000000000000000000000000000001',"
	    " 'runtime', '{\"timestart\": NaN, \"timestop\": 1700000000.5, \"walltime\": Infinity,"
	    " \"cputime\": -Infinity, \"n\": 123456789012345678901234567890, \"f\": 3.0}')",
	    "INSERT INTO metadata VALUES (2, "
	    "'aaaa000000000000000000000000000000000000000000000000000000000001',"
	    " 'tags', '{\"list\": [1, \"two\", null, true], \"nested\": {\"a\": {}}}')",
	};
	const char *k1 = "aaaa000000000000000000000000000000000000000000000000000000000001";
	const char *k2 = "aaaa000000000000000000000000000000000000000000000000000000000002";
	char root[600], db[700];
	sqlite3 *h = NULL;
	struct srv_cache *c;
	struct srv_error err = {0};
	struct srv_record r;
	struct srv_page page;
	struct srv_names names;
	struct stat st;
	char out[RPC_KEY_LEN + 1];
	bool found;
	uint64_t nc, nv;

	snprintf(root, sizeof(root), "%s/oldsql", tmp);
	snprintf(db, sizeof(db), "mkdir -p %s/values", root);
	CHECK(system(db) == 0, "mkdir");
	snprintf(db, sizeof(db), "%s/calls.db", root);
	CHECK(sqlite3_open(db, &h) == SQLITE_OK, "create db");
	for (size_t i = 0; i < sizeof(sql) / sizeof(sql[0]); i++)
		CHECK(sqlite3_exec(h, sql[i], NULL, NULL, NULL) == SQLITE_OK, "%s: %s", sql[i],
		      sqlite3_errmsg(h));
	sqlite3_close(h);
	c = open_cache(root, false, false);
	if (!c)
		return;
	CHECK(srv_load(c, k1, RPC_KEY_LEN, &r, &err) == 0, "old load: %s", err.message);
	if (err.code == RPC_OK || r.name) {
		msgpack_unpacked u;
		size_t off = 0;
		const msgpack_object *rt, *o;

		CHECK(r.version_kind == SRV_VERSION_INT && r.version_int == 3, "integer version");
		CHECK(r.code_digest == NULL && r.module && strcmp(r.module, "m") == 0, "columns");
		CHECK(r.narguments == 2 && strcmp(r.arguments[0].name, "x") == 0 &&
		          strcmp(r.arguments[1].name, "y") == 0,
		      "arguments by position");
		CHECK(!r.has_result && r.mtime == 1700000000.5, "mtime from timestop");
		msgpack_unpacked_init(&u);
		CHECK(msgpack_unpack_next(&u, r.metadata, r.metadata_len, &off) ==
		          MSGPACK_UNPACK_SUCCESS,
		      "metadata");
		rt = mget(&u.data, "runtime");
		o = mget(rt, "timestart");
		CHECK(o && o->type == MSGPACK_OBJECT_FLOAT64 && isnan(o->via.f64), "NaN");
		o = mget(rt, "cputime");
		CHECK(o && o->type == MSGPACK_OBJECT_FLOAT64 && isinf(o->via.f64) && o->via.f64 < 0,
		      "-Infinity");
		o = mget(mget(rt, "n"), "$int");
		CHECK(o && o->type == MSGPACK_OBJECT_STR && o->via.str.size == 30, "$int");
		o = mget(rt, "f");
		CHECK(o && o->type == MSGPACK_OBJECT_FLOAT64, "3.0 is a float");
		o = mget(mget(&u.data, "tags"), "list");
		CHECK(o && o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size == 4, "tags list");
		msgpack_unpacked_destroy(&u);
		srv_record_release(&r);
	}
	CHECK(srv_load(c, k2, RPC_KEY_LEN, &r, &err) == 0, "old load 2: %s", err.message);
	if (err.code == RPC_OK || r.name) {
		CHECK(stat(db, &st) == 0 &&
		          r.mtime == (double)st.st_mtim.tv_sec + st.st_mtim.tv_nsec / 1e9,
		      "mtime falls back to the database's");
		CHECK(r.version_kind == SRV_VERSION_NONE && r.has_result && r.module == NULL,
		      "nulls");
		srv_record_release(&r);
	}
	/* rows whose keys are not keys are invisible */
	CHECK(srv_list(c, SRV_CALLS, NULL, 10, true, &page, &err) == 0 && page.n == 2 &&
	          page.complete && page.entries[0].mtime == 1700000000.5,
	      "old list");
	srv_page_release(&page);
	CHECK(srv_expand(c, "aaaa", 4, out, &err) != 0 && err.code == RPC_E_AMBIGUOUS &&
	          err.needed == 64 && err.ncandidates == 2,
	      "ambiguous needs 64: %s", err.message);
	CHECK(srv_contains(c, "aaaa", 4, &found, &err) != 0 && err.code == RPC_E_AMBIGUOUS,
	      "contains ambiguous");
	CHECK(srv_shrink(c, k1, RPC_KEY_LEN, out, &err) == 0 && strlen(out) == 64, "shrink 64");
	CHECK(srv_names(c, NULL, 10, &names, &err) == 0, "names");
	/* rows whose keys are not keys are invisible: their names are not listed */
	CHECK(names.n == 1 && names.complete && strcmp(names.names[0], "old") == 0,
	      "names of visible calls only: %zu, first '%s'", names.n,
	      names.n ? names.names[0] : "");
	srv_names_release(&names);
	CHECK(srv_count(c, &nc, &nv, &err) == 0 && nv == 0, "count");
	CHECK(nc == 2, "count of visible calls only: %llu", (unsigned long long)nc);
	/* evict deletes the argument and metadata rows too (no foreign keys here) */
	CHECK(srv_evict(c, k1, RPC_KEY_LEN, &err) == 0, "old evict: %s", err.message);
	/* detail listings follow commits by other connections: the eviction, a new call */
	CHECK(srv_list(c, SRV_CALLS, NULL, 10, true, &page, &err) == 0 && page.n == 1 &&
	          strcmp(page.entries[0].key, k2) == 0 && page.complete,
	      "detail list after evict: %s", err.message);
	srv_page_release(&page);
	CHECK(sqlite3_open(db, &h) == SQLITE_OK &&
	          sqlite3_exec(h,
	                       "INSERT INTO calls VALUES ('aaaa00000000000000000000000000000000"
	                       "0000000000000000000000000004', 'new', NULL, NULL, NULL);"
	                       "INSERT INTO metadata VALUES (3, 'aaaa0000000000000000000000000000"
	                       "00000000000000000000000000000004', 'runtime',"
	                       " '{\"timestop\": 1.25e9}')",
	                       NULL, NULL, NULL) == SQLITE_OK,
	      "insert a call: %s", sqlite3_errmsg(h));
	sqlite3_close(h);
	h = NULL;
	CHECK(srv_list(c, SRV_CALLS, NULL, 10, true, &page, &err) == 0 && page.n == 2 &&
	          page.complete && page.entries[1].mtime == 1.25e9 && page.entries[1].name &&
	          strcmp(page.entries[1].name, "new") == 0 &&
	          strcmp(page.entries[1].key + 60, "0004") == 0,
	      "detail list sees a new call: %s", err.message);
	srv_page_release(&page);
	srv_cache_free(c);
	CHECK(sql_count(db, "SELECT count(*) FROM arguments WHERE call_key = ?", k1) == 0 &&
	          sql_count(db, "SELECT count(*) FROM metadata WHERE call_key = ?", k1) == 0 &&
	          sql_count(db, "SELECT count(*) FROM calls WHERE key = ?", k1) == 0,
	      "old rows gone");
}

/*
 * Hostile call records written by Python: metadata with a cycle (too deep), with
 * exponential sharing (too large, found quickly), with every kind of
 * value PROTOCOL.md maps, and a pickle that is not a call at all.
 */
static void test_hostile_records(void)
{
	char root[600], path[1024], cmd[2400];
	struct srv_cache *c;
	struct srv_error err = {0};
	struct srv_record r;
	FILE *f;
	char k[4][RPC_KEY_LEN + 1];

	for (int i = 0; i < 4; i++)
		for (int j = 0; j < 32; j++)
			snprintf(k[i] + 2 * j, 3, "0%d", i + 1);
	snprintf(root, sizeof(root), "%s/hostile", tmp);
	snprintf(cmd, sizeof(cmd), "mkdir -p %s/calls %s/values", root, root);
	CHECK(system(cmd) == 0, "mkdir");
	snprintf(path, sizeof(path), "%s/hostile.py", tmp);
	f = fopen(path, "w");
	if (!f)
		return;
	fputs(PY_HOSTILE, f);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "/usr/bin/python3 %s %s/calls", path, root);
	CHECK(system(cmd) == 0, "hostile.py");
	c = open_cache(root, false, true);
	if (!c)
		return;
	/* metadata too deep or too large for a load answer is never cut: the record
	 * comes whole with an empty metadata map and the reason */
	for (int i = 0; i < 2; i++) {
		const char *want = i == 0 ? "nests deeper than" : "is larger than";
		if (srv_load(c, k[i], RPC_KEY_LEN, &r, &err) != 0) {
			CHECK(0, "record %d: %s", i, err.message);
			continue;
		}
		CHECK(r.metadata_error && strstr(r.metadata_error, want) &&
		          strstr(r.metadata_error, k[i]),
		      "record %d: metadata refused saying '%s': %s", i, want,
		      r.metadata_error ? r.metadata_error : "(none)");
		CHECK(r.metadata_len == 1 && (unsigned char)r.metadata[0] == 0x80,
		      "record %d: metadata is an empty map", i);
		CHECK(r.name && strcmp(r.name, "f") == 0 && r.narguments == 1 &&
		          strncmp(r.arguments[0].value, "abab", 4) == 0,
		      "record %d: the rest of the call is whole", i);
		srv_record_release(&r);
	}
	if (srv_load(c, k[2], RPC_KEY_LEN, &r, &err) == 0) {
		msgpack_unpacked u;
		const msgpack_object *rt, *o;
		size_t off = 0;

		msgpack_unpacked_init(&u);
		msgpack_unpack_next(&u, r.metadata, r.metadata_len, &off);
		rt = mget(&u.data, "runtime");
		CHECK(r.mtime == 5.0, "integer timestop is the mtime");
		o = mget(mget(rt, "big"), "$int");
		CHECK(o && o->type == MSGPACK_OBJECT_STR && o->via.str.size == 22 &&
		          memcmp(o->via.str.ptr, "1180591620717411303424", 22) == 0,
		      "big int");
		o = mget(mget(rt, "neg"), "$int");
		CHECK(o && o->type == MSGPACK_OBJECT_STR && o->via.str.ptr[0] == '-',
		      "negative big");
		o = mget(rt, "b");
		CHECK(o && o->type == MSGPACK_OBJECT_BIN && o->via.bin.size == 2, "bytes are bin");
		o = mget(rt, "t");
		CHECK(o && o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size == 2, "tuple");
		o = mget(mget(rt, "o"), "$object");
		CHECK(o && o->type == MSGPACK_OBJECT_STR && o->via.str.size == 18 &&
		          memcmp(o->via.str.ptr, "mylib.things.Other", 18) == 0,
		      "other objects");
		o = mget(rt, "none");
		CHECK(o && o->type == MSGPACK_OBJECT_NIL, "None");
		CHECK(r.narguments == 1 && strcmp(r.arguments[0].name, "a") == 0,
		      "Digest argument");
		msgpack_unpacked_destroy(&u);
		srv_record_release(&r);
	} else {
		CHECK(0, "metadata kinds: %s", err.message);
	}
	CHECK(srv_load(c, k[3], RPC_KEY_LEN, &r, &err) != 0 && err.code == RPC_E_CORRUPT,
	      "a list is not a call record");
	srv_cache_free(c);
}

/*
 * A database whose calls table lacks the NOT NULL constraints (hand-made or hostile):
 * a NULL function name or argument name is a record that cannot be decoded
 * (CORRUPT, not ENOMEM), and query skips it instead of failing as a whole.
 */
static void test_sql_null_columns(void)
{
	static const char *const sql[] = {
	    "CREATE TABLE calls (\"key\" VARCHAR(64), name VARCHAR, module VARCHAR,"
	    " version VARCHAR, code_digest VARCHAR(64), result VARCHAR(64))",
	    "CREATE TABLE arguments (id INTEGER PRIMARY KEY, call_key VARCHAR(64),"
	    " position INTEGER, name VARCHAR, value VARCHAR(64))",
	    "CREATE TABLE metadata (id INTEGER PRIMARY KEY, call_key VARCHAR(64),"
	    " name VARCHAR, data JSON)",
	    "INSERT INTO calls VALUES "
	    "('a1a1000000000000000000000000000000000000000000000000000000000001',"
	    " NULL, 'm', '1', NULL, NULL)",
	    "INSERT INTO calls VALUES "
	    "('a1a1000000000000000000000000000000000000000000000000000000000002',"
	    " 'g', 'm', '2', NULL, NULL)",
	    "INSERT INTO calls VALUES "
	    "('a1a1000000000000000000000000000000000000000000000000000000000003',"
	    " 'h', 'm', '3', NULL, NULL)",
	    "INSERT INTO arguments VALUES (1, "
	    "'a1a1000000000000000000000000000000000000000000000000000000000002', 0, NULL,"
	    " 'd1d1000000000000000000000000000000000000000000000000000000000000')",
	};
	const char *k1 = "a1a1000000000000000000000000000000000000000000000000000000000001";
	const char *k2 = "a1a1000000000000000000000000000000000000000000000000000000000002";
	const char *k3 = "a1a1000000000000000000000000000000000000000000000000000000000003";
	char root[600], db[700];
	sqlite3 *h = NULL;
	struct srv_cache *c;
	struct srv_error err = {0};
	struct srv_record r;
	struct srv_page page;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_unpacked u;
	size_t off = 0;

	snprintf(root, sizeof(root), "%s/nullsql", tmp);
	snprintf(db, sizeof(db), "mkdir -p %s/values", root);
	CHECK(system(db) == 0, "mkdir");
	snprintf(db, sizeof(db), "%s/calls.db", root);
	CHECK(sqlite3_open(db, &h) == SQLITE_OK, "create db");
	for (size_t i = 0; i < sizeof(sql) / sizeof(sql[0]); i++)
		CHECK(sqlite3_exec(h, sql[i], NULL, NULL, NULL) == SQLITE_OK, "%s: %s", sql[i],
		      sqlite3_errmsg(h));
	sqlite3_close(h);
	c = open_cache(root, false, true);
	if (!c)
		return;
	memset(&r, 0, sizeof(r));
	CHECK(srv_load(c, k1, RPC_KEY_LEN, &r, &err) != 0 && err.code == RPC_E_CORRUPT,
	      "a NULL name is CORRUPT, not %s: %s", rpc_error_name(err.code), err.message);
	srv_record_release(&r);
	CHECK(srv_load(c, k2, RPC_KEY_LEN, &r, &err) != 0 && err.code == RPC_E_CORRUPT,
	      "a NULL argument name is CORRUPT, not %s: %s", rpc_error_name(err.code), err.message);
	srv_record_release(&r);
	CHECK(srv_load(c, k3, RPC_KEY_LEN, &r, &err) == 0, "a good row loads: %s", err.message);
	srv_record_release(&r);
	/* query {"module": "m"}: the unreadable rows are not matches */
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 1);
	msgpack_pack_str_with_body(&pk, "module", 6);
	msgpack_pack_str_with_body(&pk, "m", 1);
	msgpack_unpacked_init(&u);
	msgpack_unpack_next(&u, sb.data, sb.size, &off);
	if (srv_query(c, &u.data, NULL, 10, true, &page, &err) == 0) {
		CHECK(page.n == 1 && strcmp(page.entries[0].key, k3) == 0 && page.complete,
		      "query skips unreadable rows: %zu matches", page.n);
		srv_page_release(&page);
	} else {
		CHECK(0, "query over unreadable rows fails: %s: %s", rpc_error_name(err.code),
		      err.message);
	}
	msgpack_unpacked_destroy(&u);
	msgpack_sbuffer_destroy(&sb);
	srv_cache_free(c);
}

/*
 * A runtime.timestop that is not a finite number (NaN from a broken clock, written by
 * json.dumps as the bare token) is no time: load's mtime falls back to the file's or
 * the database's, and a detail listing answers the same mtime as load (PROTOCOL.md:
 * "mtime ... for calls as load's mtime"), in both storages.
 */
static void test_nonfinite_timestop(void)
{
	static const char py_tail[] =
	    "c = call({'runtime': {'timestop': float('nan')}})\n"
	    "open(os.path.join(out, '05' * 32), 'wb').write(pickle.dumps(c, 4))\n";
	const char *k5 = "0505050505050505050505050505050505050505050505050505050505050505";
	const char *ks = "e5e5000000000000000000000000000000000000000000000000000000000001";
	char root[600], path[1024], cmd[2400], db[700];
	struct srv_cache *c;
	struct srv_error err = {0};
	struct srv_record r;
	struct srv_page page;
	sqlite3 *h = NULL;
	FILE *f;

	/* file storage */
	snprintf(root, sizeof(root), "%s/nanfiles", tmp);
	snprintf(cmd, sizeof(cmd), "mkdir -p %s/calls %s/values", root, root);
	CHECK(system(cmd) == 0, "mkdir");
	snprintf(path, sizeof(path), "%s/nan.py", tmp);
	f = fopen(path, "w");
	if (!f)
		return;
	fputs(PY_HOSTILE, f);
	fputs(py_tail, f);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "/usr/bin/python3 %s %s/calls", path, root);
	CHECK(system(cmd) == 0, "nan.py");
	c = open_cache(root, false, true);
	if (!c)
		return;
	memset(&r, 0, sizeof(r));
	CHECK(srv_load(c, k5, RPC_KEY_LEN, &r, &err) == 0 && isfinite(r.mtime),
	      "files: a NaN timestop is no mtime (%g): %s", r.mtime, err.message);
	CHECK(srv_list(c, SRV_CALLS,
	               "0404040404040404040404040404040404040404040404040404040404040404", 10, true,
	               &page, &err) == 0 &&
	          page.n == 1 && strcmp(page.entries[0].key, k5) == 0 &&
	          page.entries[0].mtime == r.mtime,
	      "files: the detail listing answers load's mtime (%g, load %g)",
	      page.n ? page.entries[0].mtime : 0.0, r.mtime);
	srv_page_release(&page);
	srv_record_release(&r);
	srv_cache_free(c);

	/* SQL storage */
	snprintf(root, sizeof(root), "%s/nansql", tmp);
	snprintf(db, sizeof(db), "mkdir -p %s/values", root);
	CHECK(system(db) == 0, "mkdir");
	snprintf(db, sizeof(db), "%s/calls.db", root);
	snprintf(cmd, sizeof(cmd),
	         "CREATE TABLE calls (\"key\" VARCHAR(64) NOT NULL, name VARCHAR NOT NULL,"
	         " module VARCHAR, version VARCHAR, code_digest VARCHAR(64), result VARCHAR(64),"
	         " PRIMARY KEY (\"key\"));"
	         "CREATE TABLE arguments (id INTEGER NOT NULL, call_key VARCHAR(64) NOT NULL,"
	         " position INTEGER NOT NULL, name VARCHAR NOT NULL, value VARCHAR(64) NOT NULL,"
	         " PRIMARY KEY (id));"
	         "CREATE TABLE metadata (id INTEGER NOT NULL, call_key VARCHAR(64) NOT NULL,"
	         " name VARCHAR NOT NULL, data JSON NOT NULL, PRIMARY KEY (id));"
	         "INSERT INTO calls VALUES ('%s', 'f', NULL, NULL, NULL, NULL);"
	         "INSERT INTO metadata VALUES (1, '%s', 'runtime', '{\"timestop\": NaN}')",
	         ks, ks);
	CHECK(sqlite3_open(db, &h) == SQLITE_OK &&
	          sqlite3_exec(h, cmd, NULL, NULL, NULL) == SQLITE_OK,
	      "create db: %s", sqlite3_errmsg(h));
	sqlite3_close(h);
	c = open_cache(root, false, true);
	if (!c)
		return;
	memset(&r, 0, sizeof(r));
	CHECK(srv_load(c, ks, RPC_KEY_LEN, &r, &err) == 0 && isfinite(r.mtime),
	      "sql: a NaN timestop is no mtime (%g): %s", r.mtime, err.message);
	CHECK(srv_list(c, SRV_CALLS, NULL, 10, true, &page, &err) == 0 && page.n == 1 &&
	          page.entries[0].mtime == r.mtime,
	      "sql: the detail listing answers load's mtime (%g, load %g)",
	      page.n ? page.entries[0].mtime : 0.0, r.mtime);
	srv_page_release(&page);
	srv_record_release(&r);
	srv_cache_free(c);
}

int main(void)
{
	const char *fixtures = getenv("FLECHEFS_FIXTURES");
	char buf[1024], cmd[1200];
	const char *ci = getenv("CI");

	if (!fixtures || access(fixtures, R_OK) != 0) {
		const char *src = getenv("FLECHEFS_SOURCE");

		if (src) {
			snprintf(buf, sizeof(buf), "%s/tests/fixtures/real-cache", src);
			fixtures = buf;
		}
	}
	if (!fixtures || access(fixtures, R_OK) != 0) {
		printf("fixtures not found (FLECHEFS_FIXTURES)\n");
		return ci && strcmp(ci, "true") == 0 ? 1 : 77;
	}
	if (access("/usr/bin/python3", X_OK) != 0) {
		printf("skipped: /usr/bin/python3 is needed to read EXPECTED.json\n");
		return ci && strcmp(ci, "true") == 0 ? 1 : 77;
	}
	snprintf(tmp, sizeof(tmp), "%s/flechefs-test-cache-XXXXXX",
	         getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(tmp)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(fx, sizeof(fx), "%s/fx", tmp);
	snprintf(expdir, sizeof(expdir), "%s/expected", tmp);
	if (copy_tree(fixtures, fx) != 0 || load_expected(fixtures) != 0) {
		printf("cannot prepare the fixtures\n");
		failures++;
		goto out;
	}
	keylen = (size_t)hexkey(secret_hex, keybytes, sizeof(keybytes));

	test_fixture_caches();
	test_explicit_sql();
	test_signed();
	test_evict();
	test_hidden_and_vanished();
	test_gzip_bomb();
	test_old_sql();
	test_hostile_records();
	test_sql_null_columns();
	test_nonfinite_timestop();
out:
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
	if (system(cmd) != 0)
		printf("cannot remove %s\n", tmp);
	for (size_t i = 0; i < ncaches; i++) {
		for (size_t j = 0; j < caches[i].ncalls; j++)
			for (size_t k = 0; k < MAXF; k++)
				free(caches[i].calls[j].f[k]);
		for (size_t j = 0; j < caches[i].nexpands; j++)
			for (size_t k = 0; k < MAXF; k++)
				free(caches[i].expands[j][k]);
	}
	return check_report("test_cache");
}

/*
 * test_rpc_pyjson.c: checks rpc_json_msgpack against Python. It renders random
 * msgpack objects (invalid UTF-8, control characters, NaN, -0.0, huge integers,
 * non-str keys, tag look-alikes, nesting) with indent 0, -1 and 2, and has
 * /usr/bin/python3 (with its msgpack module) decode the same bytes, apply the tag
 * rules of rpc/json_writer.h and compare with json.dumps(..., ensure_ascii=False) byte for
 * byte. Skips (77) when that Python or its msgpack module is missing.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "json_writer.h"
#include "msg.h"
#define CHECK_STOP_AT_FIRST
#include "check.h"

#define PYTHON "/usr/bin/python3"

/* Reads records [u32 len, msgpack][u32 len, json indent 0][.. -1][.. 2] and compares. */
static const char script[] =
    "import base64, json, math, struct, sys\n"
    "import msgpack\n"
    "TAGS = ('$bytes', '$float', '$dict')\n"
    "class Pairs(list):\n"
    "    pass\n"
    "class Obj(dict):\n"
    "    # a JSON object keeping duplicate keys and their order for json.dumps\n"
    "    def __init__(self, items):\n"
    "        super().__init__(items[:1])\n"
    "        self._items = items\n"
    "    def items(self):\n"
    "        return self._items\n"
    "    def __len__(self):\n"
    "        return len(self._items)\n"
    "# Tags ($bytes, $float) stay on one line even when indented: json.dumps writes a\n"
    "# placeholder string for each, replaced by the tag's own one-line text.\n"
    "tags = []\n"
    "def tag(d):\n"
    "    if '$dict' in d:\n"
    "        return d\n"
    "    tags.append(d)\n"
    "    return 'TAG\\x01%d\\x01' % (len(tags) - 1)\n"
    "def untag(text, compact):\n"
    "    for i, d in enumerate(tags):\n"
    "        one = json.dumps(d, ensure_ascii=False, separators=(',', ':') if compact else None)\n"
    "        text = text.replace(json.dumps('TAG\\x01%d\\x01' % i), one)\n"
    "    return text\n"
    "def conv(o):\n"
    "    if isinstance(o, Pairs):\n"
    "        ks = [k for k, v in o]\n"
    "        if all(isinstance(k, str) for k in ks) and not (len(ks) == 1 and ks[0] in TAGS):\n"
    "            return Obj([(k, conv(v)) for k, v in o])\n"
    "        return tag({'$dict': [[conv(k), conv(v)] for k, v in o]})\n"
    "    if isinstance(o, list):\n"
    "        return [conv(x) for x in o]\n"
    "    if isinstance(o, bytes):\n"
    "        return tag({'$bytes': base64.b64encode(o).decode()})\n"
    "    if isinstance(o, float) and not math.isfinite(o):\n"
    "        return tag({'$float': 'nan' if o != o else ('inf' if o > 0 else '-inf')})\n"
    "    return o\n"
    "data = open(sys.argv[1], 'rb').read()\n"
    "off = 0\n"
    "n = 0\n"
    "def take():\n"
    "    global off\n"
    "    (l,) = struct.unpack('>I', data[off:off + 4])\n"
    "    off += 4 + l\n"
    "    return data[off - l:off]\n"
    "while off < len(data):\n"
    "    m = take()\n"
    "    want = [take(), take(), take()]\n"
    "    tags.clear()\n"
    "    o = conv(msgpack.unpackb(m, raw=False, unicode_errors='replace',\n"
    "                             object_pairs_hook=Pairs, strict_map_key=False))\n"
    "    got = [untag(json.dumps(o, ensure_ascii=False), False).encode(),\n"
    "           untag(json.dumps(o, ensure_ascii=False, separators=(',', ':')), True).encode(),\n"
    "           untag(json.dumps(o, ensure_ascii=False, indent=2), False).encode()]\n"
    "    for g, w in zip(got, want):\n"
    "        if g != w:\n"
    "            print('record %d differs:\\npython: %r\\nrpc:    %r' % (n, g, w))\n"
    "            sys.exit(1)\n"
    "    n += 1\n"
    "print('compared %d objects with python' % n)\n";

static uint64_t rng_state = 0x2545f4914f6cdd1dull;

static uint64_t rng(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ull;
}

static void pack_text(msgpack_packer *pk)
{
	static const char *const atoms[] = {"a",
	                                    "Z",
	                                    " ",
	                                    "\"",
	                                    "\\",
	                                    "/",
	                                    "\n",
	                                    "\t",
	                                    "\x01",
	                                    "\x1f",
	                                    "\x7f",
	                                    "\xc3\xa9",
	                                    "\xe2\x82\xac",
	                                    "\xf0\x9f\x98\x80",
	                                    "\xff",
	                                    "\x80",
	                                    "\xe2\x82",
	                                    "\xc0\xaf",
	                                    "\xed\xa0\x80",
	                                    "\xf4\x90\x80\x80",
	                                    "\xf0\x9f\x98",
	                                    "$bytes",
	                                    "$float",
	                                    "$dict",
	                                    "$int",
	                                    "\xef\xbf\xbd",
	                                    "\0"};
	char s[200];
	size_t n = 0, k = rng() % 8;

	for (size_t i = 0; i < k; i++) {
		const char *a = atoms[rng() % (sizeof(atoms) / sizeof(atoms[0]))];
		size_t l = a[0] ? strlen(a) : 1;
		memcpy(s + n, a, l);
		n += l;
	}
	msgpack_pack_str(pk, n);
	msgpack_pack_str_body(pk, s, n);
}

static void pack_random(msgpack_packer *pk, int depth)
{
	static const double specials[] = {0.0,    -0.0, 9.0,  0.1,  1e300,
	                                  5e-324, 2.5,  1e16, 1e-5, 1795635855.9959028};
	uint64_t v = rng();
	int kind = (int)(rng() % (depth > 0 ? 13 : 10));
	uint32_t n;

	switch (kind) {
	case 0:
		msgpack_pack_nil(pk);
		break;
	case 1:
		v & 1 ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
		break;
	case 2:
		msgpack_pack_uint64(pk, v >> (v % 64));
		break;
	case 3:
		msgpack_pack_int64(pk, -(int64_t)(v >> (1 + v % 63)) - 1);
		break;
	case 4: {
		double d;
		memcpy(&d, &v, sizeof(d));
		msgpack_pack_double(pk, d);
		break;
	}
	case 5:
		msgpack_pack_double(pk, specials[v % (sizeof(specials) / sizeof(specials[0]))]);
		break;
	case 6:
		msgpack_pack_double(pk, v % 3 == 0 ? NAN : v % 3 == 1 ? INFINITY : -INFINITY);
		break;
	case 7:
		msgpack_pack_float(pk, (float)(int64_t)v / 1e6f);
		break;
	case 8: {
		char b[16];
		n = (uint32_t)(v % 16);
		for (uint32_t i = 0; i < n; i++)
			b[i] = (char)rng();
		msgpack_pack_bin(pk, n);
		msgpack_pack_bin_body(pk, b, n);
		break;
	}
	case 9:
		pack_text(pk);
		break;
	case 10:
		n = (uint32_t)(rng() % 5);
		msgpack_pack_array(pk, n);
		for (uint32_t i = 0; i < n; i++)
			pack_random(pk, depth - 1);
		break;
	default:
		n = (uint32_t)(rng() % 4);
		msgpack_pack_map(pk, n);
		for (uint32_t i = 0; i < n; i++) {
			if (rng() % 6 == 0)
				pack_random(pk, depth - 1);
			else
				pack_text(pk);
			pack_random(pk, depth - 1);
		}
		break;
	}
}

static void put_record(FILE *f, const void *p, size_t n)
{
	uint8_t h[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
	CHECK(fwrite(h, 1, 4, f) == 4);
	CHECK(fwrite(p, 1, n, f) == n);
}

int main(void)
{
	char path[] = "/tmp/flechefs-pyjson-XXXXXX";
	char cmd[512];
	FILE *f;
	int fd, st;

	if (access(PYTHON, X_OK) != 0 ||
	    system(PYTHON " -c 'import msgpack' >/dev/null 2>&1") != 0) {
		printf("skipped: " PYTHON " with the msgpack module is needed\n");
		return 77;
	}
	fd = mkstemp(path);
	CHECK(fd >= 0);
	f = fdopen(fd, "wb");
	CHECK(f != NULL);
	for (int i = 0; i < 20000; i++) {
		msgpack_sbuffer sb;
		msgpack_packer pk;
		msgpack_zone z;
		msgpack_object o;
		struct rpc_buf b;

		msgpack_sbuffer_init(&sb);
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		pack_random(&pk, 4);
		msgpack_zone_init(&z, 1024);
		CHECK(rpc_msgpack_unpack(sb.data, sb.size, RPC_MAX_DEPTH, &z, &o, NULL, 0) == 0);
		put_record(f, sb.data, sb.size);
		rpc_buf_init(&b, 1 << 20);
		static const int indents[3] = {0, -1, 2};
		for (int k = 0; k < 3; k++) {
			rpc_buf_reset(&b);
			CHECK(rpc_json_msgpack(&b, &o, 32, indents[k]) == 0);
			put_record(f, b.data, b.len);
		}
		rpc_buf_release(&b);
		msgpack_zone_destroy(&z);
		msgpack_sbuffer_destroy(&sb);
	}
	CHECK(fclose(f) == 0);
	{
		char spath[] = "/tmp/flechefs-pyjson-script-XXXXXX";
		int sfd = mkstemp(spath);
		CHECK(sfd >= 0);
		CHECK(write(sfd, script, sizeof(script) - 1) == (ssize_t)(sizeof(script) - 1));
		close(sfd);
		snprintf(cmd, sizeof(cmd), PYTHON " %s %s", spath, path);
		st = system(cmd);
		unlink(spath);
	}
	unlink(path);
	if (st != 0) {
		fprintf(stderr, "python disagrees (status %d)\n", st);
		return 1;
	}
	return 0;
}

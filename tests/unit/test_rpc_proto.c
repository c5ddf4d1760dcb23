/*
 * test_rpc_proto.c: unit tests of rpc/proto.c: the method, view and field tables
 * (lookups both ways, and every name and parameter count stated in PROTOCOL.md), each
 * request encoder read back with the server's request decoder, the result decoders
 * on good and malformed results, and the bin response head a splicing reader parses.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msg.h"
#include "proto.h"
#define CHECK_STOP_AT_FIRST
#include "check.h"

static void test_tables(void)
{
	for (int m = 0; m < RPC_M__COUNT; m++) {
		const char *n = rpc_method_name((enum rpc_method)m);
		CHECK(rpc_method_lookup(n, strlen(n)) == (enum rpc_method)m, "method %s", n);
		CHECK(rpc_method_info((enum rpc_method)m)->min_params <=
		      rpc_method_info((enum rpc_method)m)->max_params);
	}
	CHECK(rpc_method_lookup("hell", 4) == RPC_M__COUNT);
	CHECK(rpc_method_lookup("hellox", 6) == RPC_M__COUNT);
	CHECK(rpc_method_info(RPC_M__COUNT) == NULL);
	CHECK(rpc_method_info(RPC_M_EVICT)->flags & RPC_METHOD_WRITES);
	CHECK(rpc_method_info(RPC_M_HELLO)->flags & RPC_METHOD_BEFORE_HELLO);
	for (int v = 0; v < RPC_VIEW__COUNT; v++) {
		const char *n = rpc_view_name((enum rpc_view)v);
		CHECK(rpc_view_lookup(n, strlen(n)) == (enum rpc_view)v, "view %s", n);
	}
	CHECK(rpc_view_lookup("xml", 3) == RPC_VIEW__COUNT);
	CHECK_STR(rpc_view_name(RPC_VIEW__COUNT), "?");
	for (int f = 0; f < RPC_F__COUNT; f++)
		CHECK(rpc_field_name((enum rpc_field)f)[0] != '?');
}

/* Every method heading of PROTOCOL.md names a table entry with its parameter count,
 * and every table entry has its heading; every view and field is written there. */
static void test_spec(void)
{
	const char *src = getenv("FLECHEFS_SOURCE");
	char path[4096], *text;
	FILE *f;
	long len;

	if (!src) {
		printf("FLECHEFS_SOURCE not set: PROTOCOL.md not checked\n");
		return;
	}
	snprintf(path, sizeof(path), "%s/rpc/PROTOCOL.md", src);
	f = fopen(path, "r");
	CHECK(f != NULL, "cannot open '%s'", path);
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	rewind(f);
	text = malloc((size_t)len + 1);
	CHECK(text && fread(text, 1, (size_t)len, f) == (size_t)len);
	text[len] = 0;
	fclose(f);
	for (int m = 0; m < RPC_M__COUNT; m++) {
		const struct rpc_method_info *mi = rpc_method_info((enum rpc_method)m);
		char head[128];
		snprintf(head, sizeof(head), "### `%s(", mi->name);
		const char *h = strstr(text, head);
		CHECK(h != NULL, "no section for %s", mi->name);
		const char *end = strchr(h, ')');
		unsigned commas = 0, chars = 0;
		for (const char *p = h + strlen(head); p < end; p++, chars++)
			commas += *p == ',';
		CHECK((chars ? commas + 1 : 0) == mi->max_params, "%s takes %u parameters",
		      mi->name, mi->max_params);
	}
	for (const char *p = text; (p = strstr(p, "\n### `")); p++) {
		const char *n = p + 6;
		size_t k = strcspn(n, "(`");
		if (n[k] == '(')
			CHECK(rpc_method_lookup(n, k) != RPC_M__COUNT, "PROTOCOL.md's %.*s is "
			      "not in RPC_METHODS", (int)k, n);
	}
	for (int v = 0; v < RPC_VIEW__COUNT; v++) {
		char row[64];
		snprintf(row, sizeof(row), "| `%s` |", rpc_view_name((enum rpc_view)v));
		CHECK(strstr(text, row) != NULL, "view %s in section 6",
		      rpc_view_name((enum rpc_view)v));
	}
	for (int fi = 0; fi < RPC_F__COUNT; fi++) {
		char q[64];
		snprintf(q, sizeof(q), "`%s`", rpc_field_name((enum rpc_field)fi));
		CHECK(strstr(text, q) != NULL, "field %s in PROTOCOL.md",
		      rpc_field_name((enum rpc_field)fi));
	}
	free(text);
}

/* Packs with pack, decodes as the server does; returns the request. */
static struct rpc_request decode(msgpack_sbuffer *sb, msgpack_zone *zone)
{
	struct rpc_request req;
	char err[128];
	CHECK(rpc_request_decode(sb->data, sb->size, zone, &req, NULL, err, sizeof(err)) == 0,
	      "%s", err);
	return req;
}

static void test_requests(void)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_zone zone;
	struct rpc_request req;
	const char *s;
	size_t n;
	uint64_t u;
	bool b;
	char key[RPC_KEY_LEN + 1];

	memset(key, 'a', RPC_KEY_LEN);
	key[RPC_KEY_LEN] = 0;
	msgpack_zone_init(&zone, 4096);
#define RESET()                                                                                    \
	do {                                                                                       \
		msgpack_sbuffer_init(&sb);                                                         \
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);                              \
	} while (0)

	RESET();
	CHECK(rpc_pack_stat_value(&pk, 7, key, RPC_VIEW_PICKLE) == 0);
	req = decode(&sb, &zone);
	CHECK(req.msgid == 7 && req.method_len == 10 && !memcmp(req.method, "stat_value", 10));
	CHECK(req.params->via.array.size == 2);
	CHECK(rpc_obj_is_nil(rpc_array_get(req.params, 1)), "pickle is sent as nil");
	msgpack_sbuffer_destroy(&sb);

	RESET();
	CHECK(rpc_pack_load_value(&pk, 8, key, 5, 6, RPC_VIEW_BIN) == 0);
	req = decode(&sb, &zone);
	CHECK(req.params->via.array.size == 4);
	CHECK(rpc_obj_uint(rpc_array_get(req.params, 1), &u) == 0 && u == 5);
	CHECK(rpc_obj_uint(rpc_array_get(req.params, 2), &u) == 0 && u == 6);
	CHECK(rpc_obj_str_eq(rpc_array_get(req.params, 3), "bin"));
	msgpack_sbuffer_destroy(&sb);

	RESET();
	CHECK(rpc_pack_list(&pk, 9, RPC_KIND_VALUES, NULL, 0, true) == 0);
	req = decode(&sb, &zone);
	CHECK(rpc_obj_str_eq(rpc_array_get(req.params, 0), "values"));
	CHECK(rpc_obj_is_nil(rpc_array_get(req.params, 1)) &&
	      rpc_obj_is_nil(rpc_array_get(req.params, 2)), "nil after, nil limit");
	CHECK(rpc_obj_bool(rpc_array_get(req.params, 3), &b) == 0 && b);
	msgpack_sbuffer_destroy(&sb);

	RESET();
	CHECK(rpc_pack_query_name(&pk, 10, "f.g", key, 3, false) == 0);
	req = decode(&sb, &zone);
	CHECK(rpc_obj_str(rpc_map_get(rpc_array_get(req.params, 0), "name"), &s, &n) == 0 &&
	      n == 3 && !memcmp(s, "f.g", 3));
	CHECK(rpc_obj_uint(rpc_array_get(req.params, 2), &u) == 0 && u == 3);
	msgpack_sbuffer_destroy(&sb);

	int (*key_packers[])(msgpack_packer *, uint32_t, const char *) = {
	    rpc_pack_load, rpc_pack_contains, rpc_pack_expand, rpc_pack_shrink, rpc_pack_evict};
	const char *names[] = {"load", "contains", "expand", "shrink", "evict"};
	for (size_t k = 0; k < 5; k++) {
		RESET();
		CHECK(key_packers[k](&pk, (uint32_t)k, key) == 0);
		req = decode(&sb, &zone);
		CHECK(req.method_len == strlen(names[k]) &&
		      !memcmp(req.method, names[k], req.method_len));
		CHECK(req.params->via.array.size == 1 &&
		      rpc_obj_str_eq(rpc_array_get(req.params, 0), key));
		msgpack_sbuffer_destroy(&sb);
	}
	RESET();
	CHECK(rpc_pack_hello(&pk, 0, 1, "me") == 0 && rpc_pack_info(&pk, 1) == 0);
	msgpack_sbuffer_destroy(&sb);
	RESET();
	CHECK(rpc_pack_names(&pk, 2, NULL, 10) == 0);
	req = decode(&sb, &zone);
	CHECK(req.params->via.array.size == 2);
	msgpack_sbuffer_destroy(&sb);
	msgpack_zone_destroy(&zone);
#undef RESET
}

/* Decodes msgpack bytes built by build into an object. */
static msgpack_object unpack(msgpack_sbuffer *sb, msgpack_zone *zone)
{
	msgpack_object o;
	CHECK(rpc_msgpack_unpack(sb->data, sb->size, 64, zone, &o, NULL, 0) == 0);
	return o;
}

static void test_results(void)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_zone zone;
	msgpack_object o;
	char key[RPC_KEY_LEN + 1], out[RPC_KEY_LEN + 1], err[128];
	struct rpc_stat_value st;
	struct rpc_page page;
	struct rpc_page_entry e;
	bool found;

	memset(key, 'b', RPC_KEY_LEN);
	key[RPC_KEY_LEN] = 0;
	msgpack_zone_init(&zone, 4096);

	/* stat_value: size required, key optional, a bad key refused */
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 3);
	rpc_pack_str(&pk, "key");
	rpc_pack_str(&pk, key);
	rpc_pack_str(&pk, "size");
	msgpack_pack_uint64(&pk, 42);
	rpc_pack_str(&pk, "mtime");
	msgpack_pack_double(&pk, 1.5);
	o = unpack(&sb, &zone);
	CHECK(rpc_decode_stat_value(&o, &st, err, sizeof(err)) == 0);
	CHECK(st.size == 42 && st.mtime == 1.5 && !strcmp(st.key, key));
	msgpack_sbuffer_clear(&sb);
	msgpack_pack_map(&pk, 1);
	rpc_pack_str(&pk, "key");
	rpc_pack_str(&pk, "abc");
	o = unpack(&sb, &zone);
	CHECK(rpc_decode_stat_value(&o, &st, err, sizeof(err)) == -EPROTO, "no size");
	msgpack_sbuffer_clear(&sb);
	msgpack_pack_map(&pk, 2);
	rpc_pack_str(&pk, "size");
	msgpack_pack_int64(&pk, -1);
	rpc_pack_str(&pk, "key");
	rpc_pack_str(&pk, key);
	o = unpack(&sb, &zone);
	CHECK(rpc_decode_stat_value(&o, &st, err, sizeof(err)) == -EPROTO, "negative size");

	/* a page: keys must be strs; entries that are not keys are flagged */
	msgpack_sbuffer_clear(&sb);
	msgpack_pack_map(&pk, 3);
	rpc_pack_str(&pk, "keys");
	msgpack_pack_array(&pk, 2);
	rpc_pack_str(&pk, key);
	rpc_pack_str(&pk, "nope");
	rpc_pack_str(&pk, "complete");
	msgpack_pack_true(&pk);
	rpc_pack_str(&pk, "size");
	msgpack_pack_array(&pk, 2);
	msgpack_pack_uint64(&pk, 7);
	msgpack_pack_nil(&pk);
	o = unpack(&sb, &zone);
	CHECK(rpc_decode_page(&o, &page, err, sizeof(err)) == 0 && page.n == 2 && page.complete);
	rpc_page_entry(&page, 0, &e);
	CHECK(e.is_key && e.size == 7 && e.mtime == 0 && e.name == NULL);
	rpc_page_entry(&page, 1, &e);
	CHECK(!e.is_key && e.key_len == 4 && e.size == -1);
	msgpack_sbuffer_clear(&sb);
	msgpack_pack_map(&pk, 2);
	rpc_pack_str(&pk, "keys");
	msgpack_pack_array(&pk, 1);
	msgpack_pack_int(&pk, 3);
	rpc_pack_str(&pk, "complete");
	msgpack_pack_true(&pk);
	o = unpack(&sb, &zone);
	CHECK(rpc_decode_page(&o, &page, err, sizeof(err)) == -EPROTO, "a key that is an int");

	/* expand/shrink and contains */
	msgpack_sbuffer_clear(&sb);
	rpc_pack_str(&pk, "abcd");
	o = unpack(&sb, &zone);
	CHECK(rpc_decode_key(&o, out, err, sizeof(err)) == 0 && !strcmp(out, "abcd"));
	CHECK(rpc_decode_contains(&o, &found, err, sizeof(err)) == -EPROTO);
	msgpack_sbuffer_clear(&sb);
	rpc_pack_str(&pk, "ABCD");
	o = unpack(&sb, &zone);
	CHECK(rpc_decode_key(&o, out, err, sizeof(err)) == -EPROTO, "upper case");

	/* hello */
	struct rpc_hello h;
	msgpack_sbuffer_clear(&sb);
	msgpack_pack_map(&pk, 2);
	rpc_pack_str(&pk, "protocol");
	msgpack_pack_int(&pk, 1);
	rpc_pack_str(&pk, "views");
	msgpack_pack_array(&pk, 2);
	rpc_pack_str(&pk, "npy");
	rpc_pack_str(&pk, "xml");
	o = unpack(&sb, &zone);
	CHECK(rpc_decode_hello(&o, &h, err, sizeof(err)) == 0 && h.protocol == 1);
	CHECK(h.views == (1u << RPC_VIEW_PICKLE | 1u << RPC_VIEW_NPY));
	msgpack_sbuffer_clear(&sb);
	msgpack_pack_map(&pk, 0);
	o = unpack(&sb, &zone);
	CHECK(rpc_decode_hello(&o, &h, err, sizeof(err)) == -EPROTO && strstr(err, "protocol"));

	msgpack_sbuffer_destroy(&sb);
	msgpack_zone_destroy(&zone);
}

/* Packs a list_record answer of two entries; bad_at names the one field to break. */
static void pack_list_record(msgpack_packer *pk, const char *key, const char *name0,
                             const char *bad_at)
{
	const char *arrays[] = {"names", "kinds", "keys", "size", "mtime"};

	msgpack_pack_map(pk, 8);
	rpc_pack_str(pk, "key");
	rpc_pack_str(pk, strcmp(bad_at, "key") ? key : "abcd");
	rpc_pack_str(pk, "kind");
	rpc_pack_str(pk, strcmp(bad_at, "kind") ? "directory" : "folder");
	rpc_pack_str(pk, "record_mtime");
	msgpack_pack_double(pk, 7.25);
	for (size_t a = 0; a < sizeof(arrays) / sizeof(*arrays); a++) {
		const char *f = arrays[a];
		rpc_pack_str(pk, f);
		msgpack_pack_array(pk, strcmp(bad_at, "short") || strcmp(f, "size") ? 2 : 1);
		for (int i = 0; i < 2; i++) {
			if (!strcmp(bad_at, "short") && !strcmp(f, "size") && i == 1)
				break;
			if (!strcmp(f, "names"))
				rpc_pack_str(pk, i ? "sub" : name0);
			else if (!strcmp(f, "kinds"))
				rpc_pack_str(pk, i ? "directory" : "file");
			else if (!strcmp(f, "keys"))
				rpc_pack_str(pk, i && !strcmp(bad_at, "entry key") ? "abc" : key);
			else if (!strcmp(f, "size"))
				msgpack_pack_int64(pk, i ? 0 : (strcmp(bad_at, "size") ? 12 : -1));
			else
				msgpack_pack_double(pk, 1.5 + i);
		}
	}
}

static void test_list_record(void)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_zone zone;
	msgpack_object o;
	char key[RPC_KEY_LEN + 1], err[128];
	struct rpc_list_record l;
	struct rpc_list_record_entry e;
	const char *bad[] = {"key", "kind", "short", "entry key", "size"};
	const struct {
		const char *s;
		size_t len;
	} bad_names[] = {{"", 0}, {".", 1}, {"..", 2}, {"a/b", 3}, {"a\0b", 3}};

	memset(key, 'c', RPC_KEY_LEN);
	key[RPC_KEY_LEN] = 0;
	msgpack_zone_init(&zone, 4096);
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);

	pack_list_record(&pk, key, "plot.png", "");
	o = unpack(&sb, &zone);
	CHECK(rpc_decode_list_record(&o, &l, err, sizeof(err)) == 0, "%s", err);
	CHECK(l.n == 2 && l.is_dir && l.mtime == 7.25 && !strcmp(l.key, key));
	rpc_list_record_entry(&l, 0, &e);
	CHECK(!e.is_dir && e.size == 12 && e.mtime == 1.5 && !strcmp(e.key, key) &&
	      e.name_len == 8 && !memcmp(e.name, "plot.png", 8));
	rpc_list_record_entry(&l, 1, &e);
	CHECK(e.is_dir && e.size == 0 && e.mtime == 2.5 && e.name_len == 3);

	for (size_t k = 0; k < sizeof(bad) / sizeof(*bad); k++) {
		msgpack_sbuffer_clear(&sb);
		pack_list_record(&pk, key, "plot.png", bad[k]);
		o = unpack(&sb, &zone);
		CHECK(rpc_decode_list_record(&o, &l, err, sizeof(err)) == -EPROTO && l.n == 0,
		      "a bad %s", bad[k]);
	}
	for (size_t k = 0; k < sizeof(bad_names) / sizeof(*bad_names); k++) {
		const char *f[] = {"names", "kinds", "keys", "size", "mtime"};
		msgpack_sbuffer_clear(&sb);
		msgpack_pack_map(&pk, 7);
		rpc_pack_str(&pk, "key");
		rpc_pack_str(&pk, key);
		rpc_pack_str(&pk, "kind");
		rpc_pack_str(&pk, "file");
		for (int a = 0; a < 5; a++) {
			rpc_pack_str(&pk, f[a]);
			msgpack_pack_array(&pk, 1);
			if (a == 0) {
				msgpack_pack_str(&pk, bad_names[k].len);
				msgpack_pack_str_body(&pk, bad_names[k].s, bad_names[k].len);
			} else if (a == 1) {
				rpc_pack_str(&pk, "file");
			} else if (a == 2) {
				rpc_pack_str(&pk, key);
			} else {
				msgpack_pack_uint64(&pk, 1);
			}
		}
		o = unpack(&sb, &zone);
		CHECK(rpc_decode_list_record(&o, &l, err, sizeof(err)) == -EPROTO,
		      "a name no file can have (%zu)", k);
	}
	msgpack_sbuffer_clear(&sb);
	msgpack_pack_nil(&pk);
	o = unpack(&sb, &zone);
	CHECK(rpc_decode_list_record(&o, &l, err, sizeof(err)) == -EPROTO && strstr(err, "map"));

	msgpack_sbuffer_destroy(&sb);
	msgpack_zone_destroy(&zone);
}

static void test_bin_head(void)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	uint32_t ids[] = {5, 200, 70000};
	for (size_t k = 0; k < 3; k++) {
		uint32_t msgid, blen;
		msgpack_sbuffer_init(&sb);
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		rpc_pack_response_ok_head(&pk, ids[k]);
		/* a bin32 header, as the server writes large ranges */
		const uint8_t b32[5] = {0xc6, 0, 1, 0, 0};
		msgpack_sbuffer_write(&sb, (const char *)b32, 5);
		size_t hl = rpc_bin_head_length((const uint8_t *)sb.data);
		CHECK(hl == sb.size, "head of msgid %u is %zu bytes", ids[k], sb.size);
		CHECK(rpc_bin_head_parse((const uint8_t *)sb.data, hl, &msgid, &blen) == 0);
		CHECK(msgid == ids[k] && blen == 65536);
		CHECK(rpc_bin_head_parse((const uint8_t *)sb.data, hl - 1, &msgid, &blen) ==
		      -EPROTO);
		sb.data[hl - 5] = (char)0xc5; /* bin16: not a head */
		CHECK(rpc_bin_head_parse((const uint8_t *)sb.data, hl, &msgid, &blen) == -EPROTO);
		msgpack_sbuffer_destroy(&sb);
	}
	const uint8_t req[3] = {0x94, 0x00, 0x01};
	CHECK(rpc_bin_head_length(req) == 0, "a request is no response head");
}

/* load_many: the request's keys and values flag; the answer's parallel arrays (one
 * record or one error per entry, never more entries than keys asked) and its values
 * map, malformed ones refused. */
static void test_load_many(void)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_zone zone;
	msgpack_object o;
	struct rpc_request req;
	struct rpc_load_many lm;
	struct rpc_value_info vi;
	const msgpack_object *rec, *error;
	char keys[3][RPC_KEY_LEN + 1], err[160];
	bool b;

	for (int k = 0; k < 3; k++) {
		memset(keys[k], 'a' + k, RPC_KEY_LEN);
		keys[k][RPC_KEY_LEN] = 0;
	}
	msgpack_zone_init(&zone, 4096);
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	CHECK(rpc_pack_load_many(&pk, 9, (const char(*)[RPC_KEY_LEN + 1])keys, 3, true) == 0);
	req = decode(&sb, &zone);
	CHECK(req.msgid == 9 && rpc_method_lookup(req.method, req.method_len) == RPC_M_LOAD_MANY);
	CHECK(req.params->via.array.size == 2 && req.params->via.array.ptr[0].via.array.size == 3);
	CHECK(rpc_obj_bool(&req.params->via.array.ptr[1], &b) == 0 && b);
	CHECK(req.params->via.array.ptr[0].via.array.ptr[2].via.str.size == RPC_KEY_LEN &&
	      !memcmp(req.params->via.array.ptr[0].via.array.ptr[2].via.str.ptr, keys[2],
	              RPC_KEY_LEN));
	msgpack_sbuffer_clear(&sb);
	CHECK(rpc_pack_load_many(&pk, 9, (const char(*)[RPC_KEY_LEN + 1])keys, 1, false) == 0);
	req = decode(&sb, &zone);
	CHECK(req.params->via.array.size == 1, "values false is left out");
	CHECK(rpc_pack_load_many(&pk, 9, (const char(*)[RPC_KEY_LEN + 1])keys, 0, false) ==
	      -EINVAL);
	CHECK(rpc_pack_load_many(&pk, 9, (const char(*)[RPC_KEY_LEN + 1])keys,
	                         RPC_LOAD_MANY_MAX + 1, false) == -EINVAL);

	/* two entries: a record, then an error; a values map of one value */
	msgpack_sbuffer_clear(&sb);
	msgpack_pack_map(&pk, 3);
	rpc_pack_str(&pk, "records");
	msgpack_pack_array(&pk, 2);
	msgpack_pack_map(&pk, 1);
	rpc_pack_str(&pk, "key");
	rpc_pack_str(&pk, keys[0]);
	msgpack_pack_nil(&pk);
	rpc_pack_str(&pk, "errors");
	msgpack_pack_array(&pk, 2);
	msgpack_pack_nil(&pk);
	rpc_pack_error_map(&pk, RPC_E_ENOENT, "no call", NULL, 0, 0);
	rpc_pack_str(&pk, "values");
	msgpack_pack_map(&pk, 1);
	rpc_pack_str(&pk, keys[2]);
	msgpack_pack_map(&pk, 3);
	rpc_pack_str(&pk, "views");
	msgpack_pack_map(&pk, 2);
	rpc_pack_str(&pk, "json");
	msgpack_pack_uint64(&pk, 12);
	rpc_pack_str(&pk, "future-view");
	msgpack_pack_uint64(&pk, 1);
	rpc_pack_str(&pk, "no_views");
	msgpack_pack_array(&pk, 2);
	rpc_pack_str(&pk, "npy");
	rpc_pack_str(&pk, "bin");
	rpc_pack_str(&pk, "folder");
	msgpack_pack_false(&pk);
	o = unpack(&sb, &zone);
	CHECK(rpc_decode_load_many(&o, 3, &lm, err, sizeof(err)) == 0, "%s", err);
	CHECK(lm.n == 2 && lm.nvalues == 1);
	rpc_load_many_entry(&lm, 0, &rec, &error);
	CHECK(rec && !error && rec->type == MSGPACK_OBJECT_MAP);
	rpc_load_many_entry(&lm, 1, &rec, &error);
	CHECK(!rec && error && error->type == MSGPACK_OBJECT_MAP);
	CHECK(rpc_load_many_value(&lm, 0, &vi) == 0);
	CHECK(!strcmp(vi.key, keys[2]) && vi.folder == 0);
	CHECK(vi.state[RPC_VIEW_JSON] == RPC_VIEW_APPLIES && vi.size[RPC_VIEW_JSON] == 12);
	CHECK(vi.state[RPC_VIEW_NPY] == RPC_VIEW_REFUSED && vi.state[RPC_VIEW_BIN] ==
	      RPC_VIEW_REFUSED && vi.state[RPC_VIEW_TXT] == RPC_VIEW_UNKNOWN);
	CHECK(rpc_decode_load_many(&o, 1, &lm, err, sizeof(err)) == -EPROTO,
	      "more entries than keys");

	/* an entry with both, or neither; arrays of different lengths; no map */
	const char *bad[] = {"both", "neither", "lengths", "not a map"};
	for (int t = 0; t < 4; t++) {
		msgpack_sbuffer_clear(&sb);
		if (t == 3) {
			msgpack_pack_array(&pk, 0);
		} else {
			msgpack_pack_map(&pk, 2);
			rpc_pack_str(&pk, "records");
			msgpack_pack_array(&pk, 1);
			if (t == 0) {
				msgpack_pack_map(&pk, 0);
			} else {
				msgpack_pack_nil(&pk);
			}
			rpc_pack_str(&pk, "errors");
			msgpack_pack_array(&pk, t == 2 ? 2 : 1);
			if (t == 0)
				msgpack_pack_map(&pk, 0);
			else
				msgpack_pack_nil(&pk);
			if (t == 2)
				msgpack_pack_nil(&pk);
		}
		o = unpack(&sb, &zone);
		CHECK(rpc_decode_load_many(&o, 3, &lm, err, sizeof(err)) == -EPROTO, "%s", bad[t]);
	}

	/* a values entry whose key is no key, or whose size is negative */
	for (int t = 0; t < 2; t++) {
		msgpack_sbuffer_clear(&sb);
		msgpack_pack_map(&pk, 3);
		rpc_pack_str(&pk, "records");
		msgpack_pack_array(&pk, 0);
		rpc_pack_str(&pk, "errors");
		msgpack_pack_array(&pk, 0);
		rpc_pack_str(&pk, "values");
		msgpack_pack_map(&pk, 1);
		rpc_pack_str(&pk, t == 0 ? "abc" : keys[1]);
		msgpack_pack_map(&pk, 1);
		rpc_pack_str(&pk, "views");
		msgpack_pack_map(&pk, 1);
		rpc_pack_str(&pk, "json");
		msgpack_pack_int64(&pk, t == 0 ? 1 : -1);
		o = unpack(&sb, &zone);
		CHECK(rpc_decode_load_many(&o, 3, &lm, err, sizeof(err)) == 0 && lm.nvalues == 1);
		CHECK(rpc_load_many_value(&lm, 0, &vi) == -EPROTO, "bad values entry %d", t);
	}
	msgpack_sbuffer_destroy(&sb);
	msgpack_zone_destroy(&zone);
}

int main(void)
{
	test_tables();
	test_spec();
	test_requests();
	test_results();
	test_list_record();
	test_load_many();
	test_bin_head();
	return check_report("test_rpc_proto");
}

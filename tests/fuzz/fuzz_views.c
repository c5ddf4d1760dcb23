/*
 * fuzz_views: libFuzzer harness of the value-view emitters (server/views.c,
 * server/view_json.c, server/npy.c). Each input is parsed as a pickle under small limits
 * and every emitter runs on the tree: the json emitter with a fake resolver (a
 * reference whose key starts with '0'..'7' resolves to the input's own root, so
 * references cycle and nest; any other is missing), numpy recognition and the NPY
 * header, and the txt/bin views (str() of the standard types too). The json output is
 * capped at 1 MiB, so shared subtrees cannot make a run slow or large. Every complete
 * json output must read back with the strict JSON reader (server/json_reader.c), or the
 * harness aborts. Every byte of every output segment is touched so that ASan sees a
 * pointer that leaves the input or the arena.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "npy.h"
#include "pyclass.h"
#include "pickle.h"
#include "pystd.h"
#include "json_reader.h"
#include "views.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fake_open(void *ctx, const char *key, const struct pk_node **root, void **token,
                     struct srv_error *err)
{
	if (key[0] >= '0' && key[0] <= '7') {
		*root = ctx;
		*token = NULL;
		return 0;
	}
	return srv_fail(err, RPC_E_ENOENT, "no value '%s'", key);
}

static void fake_close(void *ctx, void *token)
{
	(void)ctx;
	(void)token;
}

/*
 * Aborts unless out is one JSON value the strict reader accepts; a tag opens one
 * container more than the view's depth limit counts, hence the margin.
 */
static void check_json(const struct rpc_buf *out)
{
	char why[256];
	if (srv_sjson_check((const char *)out->data, out->len, SRV_VIEW_JSON_DEPTH + 4, why,
	                    sizeof(why)) != 0) {
		fprintf(stderr, "the json view emitted invalid JSON: %s\n%.*s\n", why,
		        (int)(out->len < 4096 ? out->len : 4096), (const char *)out->data);
		abort();
	}
}

static unsigned touch(const void *p, size_t n)
{
	const unsigned char *u = p;
	unsigned h = 0;
	for (size_t i = 0; i < n; i++)
		h = h * 31 + u[i];
	return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pk_limits lim;
	struct pk_doc *doc = NULL;
	struct rpc_buf out = RPC_BUF_INIT(1u << 20);
	struct srv_error err;
	struct srv_ndarray a;
	const struct pk_str *s;
	const struct pk_node *root;
	char why[256], type[160];
	size_t end;
	volatile unsigned sink = 0;

	pk_limits_default(&lim);
	lim.max_nodes = 100000;
	lim.max_memo = 100000;
	lim.max_depth = 1000;
	lim.max_arena = 4u << 20;
	if (pk_parse(data, size, &lim, &doc, &end, why, sizeof(why)) != 0)
		return 0;
	root = pk_doc_root(doc);
	struct srv_view_resolver res = {fake_open, fake_close, (void *)root, NULL};

	memset(&err, 0, sizeof(err));
	if (srv_view_json(root, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
	                  &res, &out, &err) == 0) {
		check_json(&out);
		sink += touch(out.data, out.len);
	} else
		sink += touch(err.message, strnlen(err.message, sizeof(err.message)));
	rpc_buf_reset(&out);
	if (srv_view_json(root, NULL, NULL, &out, &err) == 0) {
		check_json(&out);
		sink += touch(out.data, out.len);
	}

	if (srv_npy_recognise(root, true, &a, &err) == 1) {
		rpc_buf_reset(&out);
		if (srv_npy_header(&a, &out) == 0)
			sink += touch(out.data, out.len);
		sink += touch(a.data, (size_t)(a.count * a.itemsize));
	}
	if (srv_view_raw(root, true, &s, &err) == 0)
		sink += touch(s->ptr, s->len);
	rpc_buf_reset(&out);
	if (srv_pystd_str(root, &out) == 1)
		sink += touch(out.data, out.len);
	if (srv_view_raw(root, false, &s, &err) == 0)
		sink += touch(s->ptr, s->len);
	srv_pyclass_type_name(root, type, sizeof(type));
	sink += touch(type, strlen(type));

	rpc_buf_release(&out);
	pk_doc_free(doc);
	(void)sink;
	return 0;
}

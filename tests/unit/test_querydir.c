/*
 * test_querydir.c: unit tests of fusefs/querydir.c without a server: which names are
 * conditions of the query/ tree, the templates their paths make (compared byte for
 * byte with templates packed here: fields in the order given, metadata grouped by
 * block, JSON scalars typed, versions an int or a string), and the conditions that
 * cannot be used (-EINVAL with a reason).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "msg.h"
#include "querydir.h"

/* Packs the template of path and compares it with want; returns the code. */
static int template_is(const char *path, const msgpack_sbuffer *want, const char *what)
{
	msgpack_sbuffer got;
	char why[512] = "";
	msgpack_sbuffer_init(&got);
	int rc = fsd_query_template(NULL, path, &got, why, sizeof(why));
	if (want)
		CHECK(rc == 0 && got.size == want->size && !memcmp(got.data, want->data, got.size),
		      "%s: template differs (rc %d, %s)", what, rc, why);
	else
		CHECK(rc == -EINVAL && why[0], "%s: want -EINVAL with a reason, got %d '%s'", what,
		      rc, why);
	msgpack_sbuffer_destroy(&got);
	return rc;
}

static void test_known(void)
{
	static const struct {
		const char *name;
		int known;
	} cases[] = {
	    {"name=train", 1},
	    {"module=", 1},
	    {"version=1.0", 1},
	    {"arguments.lr=4d58", 1},
	    {"metadata.tags.experiment=baseline", 1},
	    {"metadata.tags.a.b=1", 1}, /* the key is "a.b" */
	    {"name", 0},
	    {"color=red", 0},
	    {"arguments.=x", 0},
	    {"arguments=x", 0},
	    {"metadata.tags=x", 0},
	    {"metadata..k=x", 0},
	    {"metadata.tags.=x", 0},
	    {"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		CHECK(fsd_query_cond_known(cases[i].name) == cases[i].known, "'%s'", cases[i].name);
}

/* A fresh buffer with a packer writing into it. */
static void start(msgpack_sbuffer *sb, msgpack_packer *pk)
{
	msgpack_sbuffer_init(sb);
	msgpack_packer_init(pk, sb, msgpack_sbuffer_write);
}

static void test_templates(void)
{
	msgpack_sbuffer want;
	msgpack_packer pk;

	start(&want, &pk);
	msgpack_pack_map(&pk, 3);
	rpc_pack_str(&pk, "name");
	rpc_pack_str(&pk, "greet");
	rpc_pack_str(&pk, "version");
	rpc_pack_str(&pk, "1.0");
	rpc_pack_str(&pk, "metadata");
	msgpack_pack_map(&pk, 2);
	rpc_pack_str(&pk, "tags");
	msgpack_pack_map(&pk, 3);
	rpc_pack_str(&pk, "epochs");
	msgpack_pack_int64(&pk, 3);
	rpc_pack_str(&pk, "x");
	rpc_pack_str(&pk, "a\xc3\xa9\"");
	rpc_pack_str(&pk, "loss");
	msgpack_pack_double(&pk, 0.5);
	rpc_pack_str(&pk, "runtime");
	msgpack_pack_map(&pk, 1);
	rpc_pack_str(&pk, "done");
	msgpack_pack_true(&pk);
	template_is("name=greet/version=1.0/metadata.tags.epochs=3/metadata.runtime.done=true/"
	            "metadata.tags.x=\"a\\u00e9\\\"\"/metadata.tags.loss=0.5",
	            &want, "names, a string version, metadata grouped by block");
	msgpack_sbuffer_destroy(&want);

	start(&want, &pk);
	msgpack_pack_map(&pk, 2);
	rpc_pack_str(&pk, "version");
	msgpack_pack_int64(&pk, 7);
	rpc_pack_str(&pk, "module");
	rpc_pack_str(&pk, "null");
	template_is("version=7/module=null", &want, "an int version; a module is a string");
	msgpack_sbuffer_destroy(&want);

	start(&want, &pk);
	msgpack_pack_map(&pk, 2);
	rpc_pack_str(&pk, "version");
	rpc_pack_str(&pk, "2");
	rpc_pack_str(&pk, "metadata");
	msgpack_pack_map(&pk, 1);
	rpc_pack_str(&pk, "b");
	msgpack_pack_map(&pk, 3);
	rpc_pack_str(&pk, "n");
	msgpack_pack_nil(&pk);
	rpc_pack_str(&pk, "s");
	rpc_pack_str(&pk, "3");
	rpc_pack_str(&pk, "w");
	rpc_pack_str(&pk, "plain words");
	template_is("version=\"2\"/metadata.b.n=null/metadata.b.s=\"3\"/metadata.b.w=plain words",
	            &want, "a quoted version and metadata strings");
	msgpack_sbuffer_destroy(&want);

	template_is("name=a/name=b", NULL, "the same field twice");
	template_is("metadata.b.k=1/metadata.b.k=2", NULL, "the same metadata key twice");
	template_is("metadata.b.k=\"open", NULL, "an unterminated JSON string");
	template_is("metadata.b.k=\"\\ud800\"", NULL, "a lone surrogate");
	template_is("metadata.b.k=\"\\x\"", NULL, "a bad escape");
	template_is("color=red", NULL, "an unknown field");
	char many[512] = "";
	for (int i = 0; i <= FSD_QUERY_CONDS_MAX; i++)
		snprintf(many + strlen(many), sizeof(many) - strlen(many), "%smetadata.b.k%d=1",
		         i ? "/" : "", i);
	template_is(many, NULL, "too many conditions");
}

int main(void)
{
	test_known();
	test_templates();
	return check_report("test_querydir");
}

/*
 * test_pathrec.c: unit tests of fleche's stored file and folder records
 * (server/pathrec.c) and of their json view (server/vjson.c), run in the sanitizer
 * build too: the records recognised in pickles made by Python, a malformed record
 * refused as CORRUPT, every rule of rpc_file_name_refused, and the json view of a
 * file and of a folder whose parts come through a resolver: the content's size, a
 * nested folder, a folder that contains itself (ELOOP), folders nested deeper than
 * SRV_PATHREC_DEPTH (EFBIG) and a content that is not bytes (CORRUPT); with a
 * resolver that tells a child's kind, a file's size comes from it, its content never
 * opened, so a file of 1 TiB is listed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pathrec.h"
#include "views.h"
#include "check.h"
#include "pk_parse_test.h"

/* Pickles written by Python 3.11, pickle.dumps(x, 4), with FileBlob and DirectoryBlob
 * the classes of fleche.storage.paths and A, B and S fleche.digest.Digest("a" * 64),
 * Digest("b" * 64) and Digest("5e1f" * 16):
 *   PK_FILE      FileBlob("plot.png", A)
 *   PK_DIR       DirectoryBlob({"a.csv": A, "sub": B})
 *   PK_DIR_SELF  DirectoryBlob({"me": S})
 *   PK_FILE_BAD  FileBlob(3, A)
 *   PK_HELLO     b"hello"
 */
static const char PK_FILE[] =
    "\x80\x04\x95\xab\x00\x00\x00\x00\x00\x00\x00\x8c\x14\x66\x6c\x65\x63\x68\x65\x2e\x73\x74"
    "\x6f\x72\x61\x67\x65\x2e\x70\x61\x74\x68\x73\x94\x8c\x08\x46\x69\x6c\x65\x42\x6c\x6f\x62"
    "\x94\x93\x94\x29\x81\x94\x7d\x94\x28\x8c\x04\x6e\x61\x6d\x65\x94\x8c\x08\x70\x6c\x6f\x74"
    "\x2e\x70\x6e\x67\x94\x8c\x07\x63\x6f\x6e\x74\x65\x6e\x74\x94\x8c\x0d\x66\x6c\x65\x63\x68"
    "\x65\x2e\x64\x69\x67\x65\x73\x74\x94\x8c\x06\x44\x69\x67\x65\x73\x74\x94\x93\x94\x8c\x40"
    "\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61"
    "\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61"
    "\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x94\x85"
    "\x94\x81\x94\x75\x62\x2e";
static const char PK_DIR[] =
    "\x80\x04\x95\xf9\x00\x00\x00\x00\x00\x00\x00\x8c\x14\x66\x6c\x65\x63\x68\x65\x2e\x73\x74"
    "\x6f\x72\x61\x67\x65\x2e\x70\x61\x74\x68\x73\x94\x8c\x0d\x44\x69\x72\x65\x63\x74\x6f\x72"
    "\x79\x42\x6c\x6f\x62\x94\x93\x94\x29\x81\x94\x7d\x94\x8c\x08\x63\x6f\x6e\x74\x65\x6e\x74"
    "\x73\x94\x7d\x94\x28\x8c\x05\x61\x2e\x63\x73\x76\x94\x8c\x0d\x66\x6c\x65\x63\x68\x65\x2e"
    "\x64\x69\x67\x65\x73\x74\x94\x8c\x06\x44\x69\x67\x65\x73\x74\x94\x93\x94\x8c\x40\x61\x61"
    "\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61"
    "\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61"
    "\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x94\x85\x94\x81"
    "\x94\x8c\x03\x73\x75\x62\x94\x68\x0a\x8c\x40\x62\x62\x62\x62\x62\x62\x62\x62\x62\x62\x62"
    "\x62\x62\x62\x62\x62\x62\x62\x62\x62\x62\x62\x62\x62\x62\x62\x62\x62\x62\x62\x62\x62\x62"
    "\x62\x62\x62\x62\x62\x62\x62\x62\x62\x62\x62\x62\x62\x62\x62\x62\x62\x62\x62\x62\x62\x62"
    "\x62\x62\x62\x62\x62\x62\x62\x62\x62\x94\x85\x94\x81\x94\x75\x73\x62\x2e";
static const char PK_DIR_SELF[] =
    "\x80\x04\x95\xa6\x00\x00\x00\x00\x00\x00\x00\x8c\x14\x66\x6c\x65\x63\x68\x65\x2e\x73\x74"
    "\x6f\x72\x61\x67\x65\x2e\x70\x61\x74\x68\x73\x94\x8c\x0d\x44\x69\x72\x65\x63\x74\x6f\x72"
    "\x79\x42\x6c\x6f\x62\x94\x93\x94\x29\x81\x94\x7d\x94\x8c\x08\x63\x6f\x6e\x74\x65\x6e\x74"
    "\x73\x94\x7d\x94\x8c\x02\x6d\x65\x94\x8c\x0d\x66\x6c\x65\x63\x68\x65\x2e\x64\x69\x67\x65"
    "\x73\x74\x94\x8c\x06\x44\x69\x67\x65\x73\x74\x94\x93\x94\x8c\x40\x35\x65\x31\x66\x35\x65"
    "\x31\x66\x35\x65\x31\x66\x35\x65\x31\x66\x35\x65\x31\x66\x35\x65\x31\x66\x35\x65\x31\x66"
    "\x35\x65\x31\x66\x35\x65\x31\x66\x35\x65\x31\x66\x35\x65\x31\x66\x35\x65\x31\x66\x35\x65"
    "\x31\x66\x35\x65\x31\x66\x35\x65\x31\x66\x35\x65\x31\x66\x94\x85\x94\x81\x94\x73\x73\x62"
    "\x2e";
static const char PK_FILE_BAD[] =
    "\x80\x04\x95\xa2\x00\x00\x00\x00\x00\x00\x00\x8c\x14\x66\x6c\x65\x63\x68\x65\x2e\x73\x74"
    "\x6f\x72\x61\x67\x65\x2e\x70\x61\x74\x68\x73\x94\x8c\x08\x46\x69\x6c\x65\x42\x6c\x6f\x62"
    "\x94\x93\x94\x29\x81\x94\x7d\x94\x28\x8c\x04\x6e\x61\x6d\x65\x94\x4b\x03\x8c\x07\x63\x6f"
    "\x6e\x74\x65\x6e\x74\x94\x8c\x0d\x66\x6c\x65\x63\x68\x65\x2e\x64\x69\x67\x65\x73\x74\x94"
    "\x8c\x06\x44\x69\x67\x65\x73\x74\x94\x93\x94\x8c\x40\x61\x61\x61\x61\x61\x61\x61\x61\x61"
    "\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61"
    "\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61"
    "\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x94\x85\x94\x81\x94\x75\x62\x2e";
static const char PK_HELLO[] =
    "\x80\x04\x95\x09\x00\x00\x00\x00\x00\x00\x00\x43\x05\x68\x65\x6c\x6c\x6f\x94\x2e";

#define KEY_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define KEY_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define KEY_S "5e1f5e1f5e1f5e1f5e1f5e1f5e1f5e1f5e1f5e1f5e1f5e1f5e1f5e1f5e1f5e1f"

#define PARSE(p) parse((p), sizeof(p) - 1)

/*
 * A resolver over a few keys: KEY_A is PK_HELLO, KEY_B the folder "sub" (PK_DIR again,
 * so that following it goes on until a limit), KEY_S PK_DIR_SELF; the test picks
 * which by setting sub_is to the pickle KEY_B stands for.
 */
struct fake {
	const char *sub;
	size_t sub_len;
};

static int fake_open(void *ctx, const char *key, const struct pk_node **root, void **token,
                     struct srv_error *err)
{
	struct fake *f = ctx;
	struct pk_doc *doc = NULL;

	if (strcmp(key, KEY_A) == 0)
		doc = PARSE(PK_HELLO);
	else if (strcmp(key, KEY_B) == 0)
		doc = parse(f->sub, f->sub_len);
	else if (strcmp(key, KEY_S) == 0)
		doc = PARSE(PK_DIR_SELF);
	if (!doc)
		return srv_fail(err, RPC_E_ENOENT, "no value '%s'", key);
	*root = pk_doc_root(doc);
	*token = doc;
	return 0;
}

static void fake_close(void *ctx, void *token)
{
	(void)ctx;
	pk_doc_free(token);
}

static int json_of(const char *p, size_t len, const char *key, struct fake *f,
                   struct rpc_buf *out, struct srv_error *err)
{
	struct srv_view_resolver res = {fake_open, fake_close, f, NULL};

	return json_with(p, len, key, &res, out, err);
}

/* A resolver that tells KEY_A a file of 1 TiB (nothing of the rest) and counts what
 * open opens. */
struct counted {
	struct fake f;
	unsigned opened_a, opened;
};

static int counted_open(void *ctx, const char *key, const struct pk_node **root, void **token,
                        struct srv_error *err)
{
	struct counted *c = ctx;

	c->opened++;
	c->opened_a += strcmp(key, KEY_A) == 0;
	return fake_open(&c->f, key, root, token, err);
}

static int counted_child(void *ctx, const char *key, enum srv_pathrec_kind *kind,
                         uint64_t *size, struct srv_error *err)
{
	(void)ctx;
	(void)err;
	*size = 0;
	*kind = SRV_PATHREC_NONE;
	if (strcmp(key, KEY_A) == 0) {
		*kind = SRV_PATHREC_FILE;
		*size = 1ull << 40;
	}
	return 0; /* anything else is followed */
}

static void test_json_child(void)
{
	struct rpc_buf b = RPC_BUF_INIT(1 << 20);
	struct srv_error err;
	struct counted c = {{PK_HELLO, sizeof(PK_HELLO) - 1}, 0, 0};
	struct srv_view_resolver res = {counted_open, fake_close, &c, counted_child};
	int rc;

	rc = json_with(PK_FILE, sizeof(PK_FILE) - 1, NULL, &res, &b, &err);
	CHECK(rc == 0 && strstr(b.data, "\"size\": 1099511627776\n") && c.opened == 0,
	      "a file of 1 TiB, its content not opened: %d %u %s", rc, c.opened,
	      b.data ? b.data : err.message);
	/* a folder: "a.csv" sized by child, "sub" (KEY_B: PK_HELLO) followed and rendered */
	rc = json_with(PK_DIR, sizeof(PK_DIR) - 1, NULL, &res, &b, &err);
	CHECK(rc == 0 && c.opened == 1 && c.opened_a == 0 &&
	          strstr(b.data, "\"sub\": {\n      \"$file\": {\n        \"name\": \"sub\"") &&
	          strstr(b.data, "\"size\": 1099511627776\n"),
	      "a folder of a file sized by child: %d %u %s", rc, c.opened,
	      b.data ? b.data : err.message);
	rpc_buf_release(&b);
}

static void test_recognise(void)
{
	struct pk_doc *doc;
	struct srv_error err;
	struct srv_pathrec_entry e;
	const struct pk_node *contents;

	doc = PARSE(PK_FILE);
	CHECK(doc && srv_pathrec_kind_of(pk_doc_root(doc)) == SRV_PATHREC_FILE, "a FileBlob");
	CHECK(doc && srv_pathrec_file(pk_doc_root(doc), "k", &e, &err) == 0 && e.name_len == 8 &&
	          memcmp(e.name, "plot.png", 8) == 0 && strcmp(e.key, KEY_A) == 0,
	      "its name and content");
	CHECK(doc && srv_pathrec_dir(pk_doc_root(doc), "k", &contents, &err) < 0 &&
	          err.code == RPC_E_CORRUPT,
	      "a file record is not a folder record");
	pk_doc_free(doc);

	doc = PARSE(PK_DIR);
	CHECK(doc && srv_pathrec_kind_of(pk_doc_root(doc)) == SRV_PATHREC_DIR, "a DirectoryBlob");
	CHECK(doc && srv_pathrec_dir(pk_doc_root(doc), "k", &contents, &err) == 2, "two children");
	CHECK(doc && srv_pathrec_child(contents, 0, "k", &e, &err) == 0 && e.name_len == 5 &&
	          memcmp(e.name, "a.csv", 5) == 0 && strcmp(e.key, KEY_A) == 0,
	      "the first child");
	CHECK(doc && srv_pathrec_child(contents, 1, "k", &e, &err) == 0 && e.name_len == 3 &&
	          strcmp(e.key, KEY_B) == 0,
	      "the second child");
	pk_doc_free(doc);

	doc = PARSE(PK_FILE_BAD);
	memset(&err, 0, sizeof(err));
	CHECK(doc && srv_pathrec_file(pk_doc_root(doc), "k", &e, &err) < 0 &&
	          err.code == RPC_E_CORRUPT && strstr(err.message, "'k'"),
	      "a file record with an int for its name is CORRUPT: %s", err.message);
	pk_doc_free(doc);

	doc = PARSE(PK_HELLO);
	CHECK(doc && srv_pathrec_kind_of(pk_doc_root(doc)) == SRV_PATHREC_NONE, "bytes are not");
	pk_doc_free(doc);
	CHECK(srv_pathrec_kind_of(NULL) == SRV_PATHREC_NONE, "nothing is not");
}

static void test_names(void)
{
	char name[RPC_NAME_MAX + 2];
	const char *why;

	memset(name, 'n', sizeof(name));
	CHECK(!rpc_file_name_refused("plot.png", 8), "a plain name");
	CHECK(!rpc_file_name_refused("caf\xc3\xa9 .x", 8), "spaces and UTF-8");
	CHECK(!rpc_file_name_refused("...", 3), "three dots");
	CHECK(!rpc_file_name_refused(".hidden", 7), "a hidden name");
	CHECK(!rpc_file_name_refused(name, RPC_NAME_MAX), "NAME_MAX bytes");
	why = rpc_file_name_refused(name, RPC_NAME_MAX + 1);
	CHECK(why && strstr(why, "255"), "NAME_MAX + 1 bytes: %s", why ? why : "accepted");
	why = rpc_file_name_refused("", 0);
	CHECK(why && strcmp(why, "is empty") == 0, "empty: %s", why ? why : "accepted");
	why = rpc_file_name_refused(".", 1);
	CHECK(why && strstr(why, "'.'"), "dot: %s", why ? why : "accepted");
	why = rpc_file_name_refused("..", 2);
	CHECK(why && strstr(why, "'..'"), "dot dot: %s", why ? why : "accepted");
	why = rpc_file_name_refused("a/b", 3);
	CHECK(why && strstr(why, "'/'"), "slash: %s", why ? why : "accepted");
	why = rpc_file_name_refused("/", 1);
	CHECK(why && strstr(why, "'/'"), "a lone slash: %s", why ? why : "accepted");
	why = rpc_file_name_refused("a\0b", 3);
	CHECK(why && strstr(why, "NUL"), "NUL: %s", why ? why : "accepted");
}

static void test_json(void)
{
	struct rpc_buf b = RPC_BUF_INIT(1 << 20);
	struct srv_error err;
	struct fake f = {PK_HELLO, sizeof(PK_HELLO) - 1};
	const char *want_file = "{\n"
	                        "  \"$file\": {\n"
	                        "    \"name\": \"plot.png\",\n"
	                        "    \"content\": \"" KEY_A "\",\n"
	                        "    \"size\": 5\n"
	                        "  }\n"
	                        "}\n";
	const char *want_dir = "{\n"
	                       "  \"$directory\": {\n"
	                       "    \"a.csv\": {\n"
	                       "      \"$file\": {\n"
	                       "        \"name\": \"a.csv\",\n"
	                       "        \"content\": \"" KEY_A "\",\n"
	                       "        \"size\": 5\n"
	                       "      }\n"
	                       "    },\n"
	                       "    \"sub\": {\n"
	                       "      \"$directory\": {\n"
	                       "        \"me\": {\n"
	                       "          \"$directory\": {\n"
	                       "            \"me\": ";
	int rc;

	rc = json_of(PK_FILE, sizeof(PK_FILE) - 1, NULL, &f, &b, &err);
	CHECK(rc == 0 && strcmp(b.data, want_file) == 0, "a file: %d %s %s", rc, err.message,
	      b.data ? b.data : "");

	/* a folder whose "sub" is PK_DIR_SELF: rendering it meets KEY_S inside itself */
	f.sub = PK_DIR_SELF;
	f.sub_len = sizeof(PK_DIR_SELF) - 1;
	rc = json_of(PK_DIR, sizeof(PK_DIR) - 1, NULL, &f, &b, &err);
	CHECK(rc == RPC_E_ELOOP && strstr(err.message, KEY_S), "a folder that contains itself: %s",
	      err.message);
	CHECK(b.data && strncmp(b.data, want_dir, strlen(want_dir)) == 0,
	      "the folder's start as rendered before the loop: %s", b.data ? b.data : "");

	/* a folder whose "sub" is a plain file: its bytes */
	f.sub = PK_HELLO;
	f.sub_len = sizeof(PK_HELLO) - 1;
	rc = json_of(PK_DIR, sizeof(PK_DIR) - 1, NULL, &f, &b, &err);
	CHECK(rc == 0 && strstr(b.data, "\"sub\": {\n      \"$file\": {\n        \"name\": \"sub\","),
	      "a folder of two files: %d %s", rc, b.data ? b.data : err.message);

	/* "sub" is PK_DIR itself under another key: KEY_B is not on the path when the
	 * folder is rendered without a key, so it nests until the limit */
	f.sub = PK_DIR;
	f.sub_len = sizeof(PK_DIR) - 1;
	rc = json_of(PK_DIR, sizeof(PK_DIR) - 1, NULL, &f, &b, &err);
	CHECK(rc == RPC_E_ELOOP, "KEY_B inside KEY_B: %d %s", rc, err.message);
	rc = json_of(PK_DIR, sizeof(PK_DIR) - 1, KEY_B, &f, &b, &err);
	CHECK(rc == RPC_E_ELOOP, "the value KEY_B inside itself: %d %s", rc, err.message);

	/* a file whose content is a folder record, not bytes */
	rc = json_of(PK_FILE, sizeof(PK_FILE) - 1, NULL, &f, &b, &err);
	CHECK(rc == 0, "a file of bytes: %d %s", rc, err.message);
	{
		/* PK_FILE with its content key changed to KEY_S (a folder record) */
		char p[sizeof(PK_FILE)];
		char *k;
		memcpy(p, PK_FILE, sizeof(p));
		k = memmem(p, sizeof(p), KEY_A, 64);
		CHECK(k != NULL, "PK_FILE holds KEY_A");
		if (k) {
			memcpy(k, KEY_S, 64);
			rc = json_of(p, sizeof(p) - 1, NULL, &f, &b, &err);
			CHECK(rc == RPC_E_CORRUPT && strstr(err.message, "not bytes"),
			      "a file whose content is not bytes: %d %s", rc, err.message);
		}
	}
	rpc_buf_release(&b);
}

/* Folders nested deeper than SRV_PATHREC_DEPTH: the folder of key N (a number in
 * hex) is PK_DIR_SELF with its child's key changed to N + 1, so each key is new and
 * only the depth limit stops the walk. */
struct deep_token {
	struct pk_doc *doc;
	char pickle[sizeof(PK_DIR_SELF)];
};

static int deep_open(void *ctx, const char *key, const struct pk_node **root, void **token,
                     struct srv_error *err)
{
	struct deep_token *t = malloc(sizeof(*t));
	char next[RPC_KEY_LEN + 1];
	char *k;

	(void)ctx;
	if (!t)
		return srv_fail(err, RPC_E_ENOMEM, "out of memory");
	memcpy(t->pickle, PK_DIR_SELF, sizeof(PK_DIR_SELF));
	snprintf(next, sizeof(next), "%064lx", strtoul(key + 48, NULL, 16) + 1);
	k = memmem(t->pickle, sizeof(t->pickle), KEY_S, RPC_KEY_LEN);
	memcpy(k, next, RPC_KEY_LEN);
	t->doc = parse(t->pickle, sizeof(t->pickle) - 1);
	if (!t->doc) {
		free(t);
		return srv_fail(err, RPC_E_CORRUPT, "cannot parse");
	}
	*root = pk_doc_root(t->doc);
	*token = t;
	return 0;
}

static void deep_close(void *ctx, void *token)
{
	struct deep_token *t = token;

	(void)ctx;
	pk_doc_free(t->doc);
	free(t);
}

static void test_deep(void)
{
	struct srv_view_resolver res = {deep_open, deep_close, NULL, NULL};
	struct rpc_buf b = RPC_BUF_INIT(1 << 20);
	struct srv_error err;
	const struct pk_node *root;
	void *token;
	char key[RPC_KEY_LEN + 1];
	char limit[16];
	int rc;

	memset(&err, 0, sizeof(err));
	snprintf(key, sizeof(key), "%064x", 0);
	rc = deep_open(NULL, key, &root, &token, &err);
	CHECK(rc == 0, "the first folder: %s", err.message);
	if (rc)
		return;
	rc = srv_view_json(root, key, &res, &b, &err);
	snprintf(limit, sizeof(limit), "%d levels", SRV_PATHREC_DEPTH);
	CHECK(rc < 0 && err.code == RPC_E_EFBIG && strstr(err.message, limit),
	      "folders nested without end stop at the limit: %s", err.message);
	deep_close(NULL, token);
	rpc_buf_release(&b);
}

int main(void)
{
	test_recognise();
	test_names();
	test_json();
	test_json_child();
	test_deep();
	return check_report("test_pathrec");
}

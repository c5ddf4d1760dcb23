/*
 * pk_parse_test.h: for unit tests of the views: parse parses a test's pickle with
 * pickle.h's default limits (printing why and returning NULL when it cannot: a test
 * pickle that does not parse is a failure); json_with renders its json view.
 */
#ifndef FLECHEFS_TESTS_PK_PARSE_TEST_H
#define FLECHEFS_TESTS_PK_PARSE_TEST_H

#include <stdio.h>
#include <string.h>

#include "pickle.h"
#include "views.h"

static struct pk_doc *parse(const char *p, size_t len)
{
	struct pk_doc *doc = NULL;
	char why[256];
	size_t end;

	if (pk_parse((const uint8_t *)p, len, NULL, &doc, &end, why, sizeof(why)) != 0) {
		printf("cannot parse a test pickle: %s\n", why);
		return NULL;
	}
	return doc;
}

/* Renders the json view of the pickle p (len bytes) as the value key (or NULL) with
 * the resolver res (or NULL); returns the error code (0 on success), text in out. */
static int json_with(const char *p, size_t len, const char *key,
                     const struct srv_view_resolver *res, struct rpc_buf *out,
                     struct srv_error *err)
{
	struct pk_doc *doc = parse(p, len);
	int rc;

	if (!doc)
		return -1;
	rpc_buf_reset(out);
	memset(err, 0, sizeof(*err));
	rc = srv_view_json(pk_doc_root(doc), key, res, out, err);
	pk_doc_free(doc);
	return rc < 0 ? (int)err->code : 0;
}

#endif

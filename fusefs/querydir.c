/*
 * querydir.c: conditions of the query/ tree into query templates (querydir.h).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "msg.h"
#include "querydir.h"
#include "rpc.h"

enum cond_field { COND_NAME, COND_MODULE, COND_VERSION, COND_ARGUMENT, COND_METADATA };

struct cond {
	enum cond_field field;
	char *sub;   /* ARGUMENT: the parameter; METADATA: the block */
	char *key;   /* METADATA: the key in the block */
	char *value; /* the text after '=' */
};

/* Splits "field=value" (s is modified). 0, or -1 when no known field. */
static int parse_cond(char *s, struct cond *c)
{
	char *eq = strchr(s, '=');
	memset(c, 0, sizeof(*c));
	if (!eq)
		return -1;
	*eq = 0;
	c->value = eq + 1;
	if (strcmp(s, "name") == 0) {
		c->field = COND_NAME;
	} else if (strcmp(s, "module") == 0) {
		c->field = COND_MODULE;
	} else if (strcmp(s, "version") == 0) {
		c->field = COND_VERSION;
	} else if (strncmp(s, "arguments.", 10) == 0 && s[10]) {
		c->field = COND_ARGUMENT;
		c->sub = s + 10;
	} else if (strncmp(s, "metadata.", 9) == 0) {
		char *dot = strchr(s + 9, '.');
		if (!dot || dot == s + 9 || !dot[1])
			return -1;
		*dot = 0;
		c->field = COND_METADATA;
		c->sub = s + 9;
		c->key = dot + 1;
	} else {
		return -1;
	}
	return 0;
}

int fsd_query_cond_known(const char *name)
{
	char buf[256];
	struct cond c;
	if (snprintf(buf, sizeof(buf), "%s", name) >= (int)sizeof(buf))
		return 0;
	return parse_cond(buf, &c) == 0;
}

static int hexval(char ch)
{
	return ch >= '0' && ch <= '9'   ? ch - '0'
	       : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
	       : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
	                                : -1;
}

/* A JSON string literal s (quotes included) into out as UTF-8. 0 or -1. */
static int json_string(const char *s, char *out, size_t cap, size_t *len)
{
	size_t n = 0, l = strlen(s);
	if (l < 2 || s[0] != '"' || s[l - 1] != '"')
		return -1;
	for (size_t i = 1; i < l - 1; i++) {
		unsigned cp = (unsigned char)s[i];
		if (cp == '"' || cp < 0x20)
			return -1;
		if (cp == '\\') {
			char e = s[++i];
			if (i >= l - 1)
				return -1;
			switch (e) {
			case '"': cp = '"'; break;
			case '\\': cp = '\\'; break;
			case '/': cp = '/'; break;
			case 'b': cp = '\b'; break;
			case 'f': cp = '\f'; break;
			case 'n': cp = '\n'; break;
			case 'r': cp = '\r'; break;
			case 't': cp = '\t'; break;
			case 'u':
				cp = 0;
				for (int k = 1; k <= 4; k++) {
					int h = i + (size_t)k < l - 1 ? hexval(s[i + (size_t)k]) : -1;
					if (h < 0)
						return -1;
					cp = cp << 4 | (unsigned)h;
				}
				i += 4;
				if (cp >= 0xd800 && cp <= 0xdfff)
					return -1; /* surrogates: not worth pairing here */
				break;
			default:
				return -1;
			}
		}
		char u[4];
		size_t ul;
		if (cp < 0x80 || (unsigned char)s[i] >= 0x80) {
			/* ASCII, or a byte of a UTF-8 sequence copied as it is */
			u[0] = (char)(cp < 0x80 ? cp : (unsigned char)s[i]);
			ul = 1;
		} else if (cp < 0x800) {
			u[0] = (char)(0xc0 | cp >> 6);
			u[1] = (char)(0x80 | (cp & 0x3f));
			ul = 2;
		} else {
			u[0] = (char)(0xe0 | cp >> 12);
			u[1] = (char)(0x80 | (cp >> 6 & 0x3f));
			u[2] = (char)(0x80 | (cp & 0x3f));
			ul = 3;
		}
		if (n + ul > cap)
			return -1;
		memcpy(out + n, u, ul);
		n += ul;
	}
	*len = n;
	return 0;
}

/*
 * Packs v as a JSON scalar when it is one (numbers, true, false, null, a quoted
 * string), else as the string v. allow_any 0 (versions): only an integer or a
 * quoted string is taken as JSON, anything else ("1.0") is the string v. 0, -EINVAL
 * (reason in why) or -ENOMEM.
 */
static int pack_scalar(msgpack_packer *pk, const char *v, int allow_any, char *why, size_t whylen)
{
	char *end;
	const char *what = allow_any ? "a metadata value" : "a version";
	int digit_start = (v[0] >= '0' && v[0] <= '9') ||
	                  (v[0] == '-' && v[1] >= '0' && v[1] <= '9');
	if (digit_start) {
		errno = 0;
		long long i = strtoll(v, &end, 10);
		if (!*end && !errno)
			return msgpack_pack_int64(pk, i) ? -ENOMEM : 0;
		/* a version such as 1.0 is the string "1.0" */
		double d = strtod(v, &end);
		if (allow_any && !*end && isfinite(d))
			return msgpack_pack_double(pk, d) ? -ENOMEM : 0;
	}
	if (allow_any && strcmp(v, "true") == 0)
		return msgpack_pack_true(pk) ? -ENOMEM : 0;
	if (allow_any && strcmp(v, "false") == 0)
		return msgpack_pack_false(pk) ? -ENOMEM : 0;
	if (allow_any && strcmp(v, "null") == 0)
		return msgpack_pack_nil(pk) ? -ENOMEM : 0;
	if (v[0] == '"') {
		char buf[256];
		size_t n;
		if (json_string(v, buf, sizeof(buf), &n) < 0) {
			snprintf(why, whylen, "%s starting with '\"' must be a JSON string: %s",
			         what, v);
			return -EINVAL;
		}
		return rpc_pack_strn(pk, buf, n) ? -ENOMEM : 0;
	}
	return rpc_pack_str(pk, v) ? -ENOMEM : 0;
}

/* The value key a prefix stands for, through the server's expand. */
static int expand_value(struct fsd_conn *c, const struct cond *cd, char key[RPC_KEY_LEN + 1],
                        char *why, size_t whylen)
{
	struct fsd_result r;
	int rc = fsd_rpc_expand(c, cd->value, &r, key);
	if (rc == 0 && strlen(key) == RPC_KEY_LEN) {
		/* the full key */
	} else if (rc == 0 || r.undecoded || r.error) {
		snprintf(why, whylen, "arguments.%s=%s: %s", cd->sub, cd->value,
		         rc == 0 || r.undecoded ? "the server's expand answered no key"
		                                : r.message);
		rc = -EINVAL;
	}
	fsd_result_release(&r);
	return rc;
}

/* Packs "arguments" or "metadata" with the conditions of that field. */
static int pack_group(struct fsd_conn *c, msgpack_packer *pk, struct cond *cs, size_t n,
                      enum cond_field field, char *why, size_t whylen)
{
	int rc = 0;
	size_t count = 0;
	for (size_t i = 0; i < n; i++)
		count += cs[i].field == field;
	if (!count)
		return 0;
	if (rpc_pack_str(pk, field == COND_ARGUMENT ? "arguments" : "metadata"))
		return -ENOMEM;
	if (field == COND_ARGUMENT) {
		if (msgpack_pack_map(pk, count))
			return -ENOMEM;
		for (size_t i = 0; i < n && !rc; i++) {
			char key[RPC_KEY_LEN + 1];
			if (cs[i].field != COND_ARGUMENT)
				continue;
			rc = expand_value(c, &cs[i], key, why, whylen);
			if (!rc && (rpc_pack_str(pk, cs[i].sub) || rpc_pack_str(pk, key)))
				rc = -ENOMEM;
		}
		return rc;
	}
	/* metadata: one map per block, in the order blocks first appear */
	size_t blocks = 0;
	for (size_t i = 0; i < n; i++) {
		if (cs[i].field != COND_METADATA)
			continue;
		size_t j = 0;
		while (j < i && !(cs[j].field == COND_METADATA && strcmp(cs[j].sub, cs[i].sub) == 0))
			j++;
		blocks += j == i;
	}
	if (msgpack_pack_map(pk, blocks))
		return -ENOMEM;
	for (size_t i = 0; i < n && !rc; i++) {
		if (cs[i].field != COND_METADATA)
			continue;
		size_t j = 0, inblock = 0;
		while (j < i && !(cs[j].field == COND_METADATA && strcmp(cs[j].sub, cs[i].sub) == 0))
			j++;
		if (j < i)
			continue; /* packed with its block's first condition */
		for (size_t k = i; k < n; k++)
			inblock += cs[k].field == COND_METADATA && strcmp(cs[k].sub, cs[i].sub) == 0;
		if (rpc_pack_str(pk, cs[i].sub) || msgpack_pack_map(pk, inblock))
			return -ENOMEM;
		for (size_t k = i; k < n && !rc; k++) {
			if (cs[k].field != COND_METADATA || strcmp(cs[k].sub, cs[i].sub) != 0)
				continue;
			if (rpc_pack_str(pk, cs[k].key))
				return -ENOMEM;
			rc = pack_scalar(pk, cs[k].value, 1, why, whylen);
		}
	}
	return rc;
}

/* Two conditions on the same thing (the template is a map: one value each). */
static int same_target(const struct cond *a, const struct cond *b)
{
	if (a->field != b->field)
		return 0;
	if (a->field == COND_ARGUMENT)
		return strcmp(a->sub, b->sub) == 0;
	if (a->field == COND_METADATA)
		return strcmp(a->sub, b->sub) == 0 && strcmp(a->key, b->key) == 0;
	return 1;
}

int fsd_query_template(struct fsd_conn *c, const char *conds, msgpack_sbuffer *sb, char *why,
                       size_t whylen)
{
	struct cond cs[FSD_QUERY_CONDS_MAX];
	size_t n = 0;
	msgpack_packer pk;
	int rc = 0;
	char *copy = strdup(conds);
	if (!copy)
		return -ENOMEM;
	for (char *save = NULL, *s = strtok_r(copy, "/", &save); s; s = strtok_r(NULL, "/", &save)) {
		if (n == FSD_QUERY_CONDS_MAX) {
			snprintf(why, whylen, "more than %d conditions", FSD_QUERY_CONDS_MAX);
			rc = -EINVAL;
			goto out;
		}
		if (parse_cond(s, &cs[n]) < 0) {
			snprintf(why, whylen, "'%s' is not a condition", s);
			rc = -EINVAL;
			goto out;
		}
		for (size_t j = 0; j < n; j++)
			if (same_target(&cs[j], &cs[n])) {
				snprintf(why, whylen, "a condition on the same field twice ('%s' and '%s')",
				         cs[j].value, cs[n].value);
				rc = -EINVAL;
				goto out;
			}
		n++;
	}
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	size_t fields = 0;
	int has[5] = {0};
	for (size_t i = 0; i < n; i++)
		has[cs[i].field] = 1;
	for (int f = 0; f < 5; f++)
		fields += (size_t)has[f];
	if (msgpack_pack_map(&pk, fields)) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n && !rc; i++) {
		if (cs[i].field == COND_NAME || cs[i].field == COND_MODULE) {
			if (rpc_pack_str(&pk, cs[i].field == COND_NAME ? "name" : "module") ||
			    rpc_pack_str(&pk, cs[i].value))
				rc = -ENOMEM;
		} else if (cs[i].field == COND_VERSION) {
			rc = rpc_pack_str(&pk, "version") ? -ENOMEM
			                                  : pack_scalar(&pk, cs[i].value, 0, why, whylen);
		}
	}
	if (!rc)
		rc = pack_group(c, &pk, cs, n, COND_ARGUMENT, why, whylen);
	if (!rc)
		rc = pack_group(c, &pk, cs, n, COND_METADATA, why, whylen);
out:
	free(copy);
	return rc;
}

/*
 * base.c: the shared error helper, the release functions of the value types and the
 * byte copy of base.h.
 */
#include "base.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int srv_fail(struct srv_error *err, enum rpc_error code, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return -1;
	err->code = code;
	err->ncandidates = 0;
	err->needed = 0;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	return -1;
}

void srv_page_release(struct srv_page *page)
{
	if (!page)
		return;
	for (size_t i = 0; i < page->n; i++)
		free(page->entries[i].name);
	free(page->entries);
	memset(page, 0, sizeof(*page));
}

void srv_names_release(struct srv_names *names)
{
	if (!names)
		return;
	for (size_t i = 0; i < names->n; i++)
		free(names->names[i]);
	free(names->names);
	memset(names, 0, sizeof(*names));
}

void srv_record_release(struct srv_record *rec)
{
	if (!rec)
		return;
	free(rec->name);
	free(rec->module);
	free(rec->version_str);
	free(rec->code_digest);
	for (size_t i = 0; i < rec->narguments; i++)
		free(rec->arguments[i].name);
	free(rec->arguments);
	free(rec->metadata);
	free(rec->metadata_error);
	memset(rec, 0, sizeof(*rec));
}

char *srv_memdupz(const char *s, size_t n)
{
	char *p = malloc(n + 1);

	if (!p)
		return NULL;
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

uint64_t srv_hash64(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 1099511628211ull;
	return h;
}

const char *srv_quote(char *out, size_t outlen, const char *s, size_t len)
{
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (o + 8 >= outlen || i >= 70) {
			if (o + 4 < outlen) {
				memcpy(out + o, "...", 3);
				o += 3;
			}
			break;
		}
		if (ch >= 0x20 && ch < 0x7f && ch != '\\' && ch != '\'') {
			out[o++] = (char)ch;
		} else {
			o += (size_t)snprintf(out + o, outlen - o, "\\x%02x", ch);
		}
	}
	out[o] = '\0';
	return out;
}

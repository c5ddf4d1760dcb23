/*
 * rpc.c: the error table of rpc.h (names, errnos, messages, generated from the
 * RPC_ERRORS X-macro), the key syntax checks and the size parser of both programs.
 */
#include "rpc.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

static const struct {
	const char *name;
	int err_no;
	const char *message;
} rpc_error_table[RPC_E__COUNT] = {[RPC_OK] = {"OK", 0, "success"},
#define RPC_ERROR_ENTRY(n, e, m) [RPC_E_##n] = {#n, e, m},
                                   RPC_ERRORS(RPC_ERROR_ENTRY)
#undef RPC_ERROR_ENTRY
};

static int rpc_error_known(enum rpc_error e)
{
	return (unsigned)e < RPC_E__COUNT;
}

const char *rpc_error_name(enum rpc_error e)
{
	return rpc_error_known(e) ? rpc_error_table[e].name : "UNKNOWN";
}

int rpc_error_errno(enum rpc_error e)
{
	if (!rpc_error_known(e) || e == RPC_OK)
		return EIO;
	return rpc_error_table[e].err_no;
}

const char *rpc_error_message(enum rpc_error e)
{
	return rpc_error_known(e) ? rpc_error_table[e].message : "unknown error";
}

enum rpc_error rpc_error_from_name(const char *name, size_t len)
{
	if (!name)
		return RPC_E__COUNT;
	for (int e = RPC_OK + 1; e < RPC_E__COUNT; e++) {
		const char *n = rpc_error_table[e].name;
		if (strlen(n) == len && memcmp(n, name, len) == 0)
			return (enum rpc_error)e;
	}
	return RPC_E__COUNT;
}

enum rpc_error rpc_error_from_errno(int err)
{
	if (err < 0)
		err = -err;
	if (err == EOPNOTSUPP)
		return RPC_E_ENOTSUP;
	/* The first entry with that errno: ENOENT before AMBIGUOUS, EIO's own entry. */
	if (err == EIO)
		return RPC_E_EIO;
	if (err == EPROTO)
		return RPC_E_EPROTO;
	/* EPERM (unlink in a sticky directory, an immutable file): PROTOCOL.md's EACCES,
	 * "the server may not read or remove the file" */
	if (err == EPERM)
		return RPC_E_EACCES;
	for (int e = RPC_OK + 1; e < RPC_E__COUNT; e++)
		if (rpc_error_table[e].err_no == err)
			return (enum rpc_error)e;
	return RPC_E_EIO;
}

static int rpc_is_lower_hex(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return 0;
	}
	return 1;
}

int rpc_key_prefix_valid(const char *s, size_t len)
{
	return s && len >= RPC_PREFIX_MIN && len <= RPC_KEY_LEN && rpc_is_lower_hex(s, len);
}

int rpc_key_valid(const char *s, size_t len)
{
	return s && len == RPC_KEY_LEN && rpc_is_lower_hex(s, len);
}

uint64_t rpc_key_hash(const char *key)
{
	uint64_t h = 0;
	for (int k = 0; k < 16 && key[k]; k++)
		h = h * 16 + (uint64_t)(key[k] <= '9' ? key[k] - '0' : key[k] - 'a' + 10);
	return h;
}

int rpc_hex_digit(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int rpc_parse_size(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v, mul = 1;

	if (!s || !isdigit((unsigned char)s[0]))
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -1;
	if (*end == 'K' || *end == 'k')
		mul = 1024;
	else if (*end == 'M' || *end == 'm')
		mul = 1024 * 1024;
	else if (*end == 'G' || *end == 'g')
		mul = 1024 * 1024 * 1024;
	if (mul != 1) {
		end++;
		if (strcmp(end, "iB") == 0 || strcmp(end, "B") == 0)
			end += strlen(end);
	}
	if (*end != '\0' || v > max / mul)
		return -1;
	*out = (uint64_t)(v * mul);
	return 0;
}

const char *rpc_file_name_refused(const char *name, size_t len)
{
	if (len == 0)
		return "is empty";
	if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.'))
		return "is '.' or '..'";
	if (memchr(name, '\0', len))
		return "contains a NUL byte";
	if (memchr(name, '/', len))
		return "contains '/'";
	if (len > RPC_NAME_MAX)
		return "is longer than 255 bytes";
	return NULL;
}

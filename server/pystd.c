/*
 * pystd.c: the standard library's value types in a pickle tree (pystd.h). Each type
 * is recognised by the class its pickle calls and the exact shape of the arguments
 * that class's __reduce__ writes (datetime's packed bytes, timedelta's three ints,
 * UUID's int state, a path's parts); any other shape is not recognised, and the
 * caller shows the object as it is pickled.
 */
#include "pystd.h"

#include <inttypes.h>
#include <stdint.h>
#include <string.h>

static bool is_obj(const struct pk_node *n, const char *module, const char *name)
{
	return n && n->kind == PK_OBJECT && pk_is_class(n, module, name);
}

static size_t nargs(const struct pk_node *n)
{
	const struct pk_node *a = n->u.obj.args;
	return a && a->kind == PK_TUPLE ? a->u.seq.n : 0;
}

static const struct pk_node *arg(const struct pk_node *n, size_t i)
{
	return i < nargs(n) ? n->u.obj.args->u.seq.items[i] : NULL;
}

static bool int_in(const struct pk_node *n, long long lo, long long hi, long long *v)
{
	if (!n || n->kind != PK_INT || n->u.i < lo || n->u.i > hi)
		return false;
	*v = n->u.i;
	return true;
}

/* An int of any size as its decimal digits. */
static int put_int(struct rpc_buf *b, const struct pk_node *n)
{
	if (n->kind == PK_INT)
		return rpc_buf_addf(b, "%" PRId64, n->u.i);
	return rpc_buf_add(b, n->u.big.ptr, n->u.big.len);
}

static bool is_int(const struct pk_node *n)
{
	return n && (n->kind == PK_INT || n->kind == PK_BIGINT);
}

bool srv_pystd_timedelta(const struct pk_node *n, long long *days, long long *seconds,
                         long long *microseconds)
{
	return is_obj(n, "datetime", "timedelta") && nargs(n) == 3 &&
	       int_in(arg(n, 0), -999999999, 999999999, days) &&
	       int_in(arg(n, 1), 0, 86399, seconds) && int_in(arg(n, 2), 0, 999999, microseconds);
}

/*
 * The offset of a tzinfo in microseconds: absent or None is naive (returns 1 with
 * *aware false), a datetime.timezone(timedelta[, name]) is fixed (1, *aware true),
 * anything else 0 (not recognised: its offset depends on data we do not have).
 */
static int tz_offset(const struct pk_node *tz, bool *aware, long long *us)
{
	long long d, s, u;

	*aware = false;
	if (!tz || tz->kind == PK_NONE)
		return 1;
	if (!is_obj(tz, "datetime", "timezone") || nargs(tz) < 1 || nargs(tz) > 2 ||
	    !srv_pystd_timedelta(arg(tz, 0), &d, &s, &u))
		return 0;
	*us = ((d * 86400 + s) * 1000000) + u;
	if (*us <= -86400000000LL || *us >= 86400000000LL)
		return 0;
	*aware = true;
	return 1;
}

/* The key of a zoneinfo.ZoneInfo as pickled, getattr(zoneinfo.ZoneInfo,
 * "_unpickle")(key, from_cache), or NULL. */
static const struct pk_node *zone_key(const struct pk_node *tz)
{
	const struct pk_node *fn, *name;

	if (!tz || tz->kind != PK_OBJECT || nargs(tz) != 2 || arg(tz, 0)->kind != PK_STR)
		return NULL;
	fn = tz->u.obj.callable;
	if (!is_obj(fn, "builtins", "getattr") || nargs(fn) != 2 || arg(fn, 0)->kind != PK_GLOBAL ||
	    !pk_is_class(arg(fn, 0), "zoneinfo", "ZoneInfo"))
		return NULL;
	name = arg(fn, 1);
	if (name->kind != PK_STR || name->u.str.len != 9 || memcmp(name->u.str.ptr, "_unpickle", 9))
		return NULL;
	return arg(tz, 0);
}

/* The offset of the tzinfo tz, or, when zone is not NULL and tz is a ZoneInfo, none
 * (naive) with *zone set to its key. Returns 1, or 0 when tz is neither. */
static int tz_or_zone(const struct pk_node *tz, bool *aware, long long *us,
                      const struct pk_node **zone)
{
	if (tz_offset(tz, aware, us))
		return 1;
	if (!zone || !(*zone = zone_key(tz)))
		return 0;
	*aware = false;
	return 1;
}

/* +HH:MM, then :SS and .ffffff only when not zero, as isoformat() writes offsets. */
static int put_offset(struct rpc_buf *b, long long us)
{
	char sign = us < 0 ? '-' : '+';
	long long a = us < 0 ? -us : us;
	long long sec = a / 1000000, frac = a % 1000000;
	int rc = rpc_buf_addf(b, "%c%02lld:%02lld", sign, sec / 3600, sec / 60 % 60);
	if (rc == 0 && (sec % 60 || frac))
		rc = rpc_buf_addf(b, ":%02lld", sec % 60);
	if (rc == 0 && frac)
		rc = rpc_buf_addf(b, ".%06lld", frac);
	return rc;
}

/* The packed bytes of a date, datetime or time (bytes of exactly n). */
static const uint8_t *packed(const struct pk_node *n, size_t len)
{
	return n && n->kind == PK_BYTES && n->u.str.len == len ? (const uint8_t *)n->u.str.ptr
	                                                       : NULL;
}

static bool date_ok(const uint8_t *p)
{
	unsigned year = (unsigned)p[0] << 8 | p[1], month = p[2] & 0x7f, day = p[3];
	return year >= 1 && year <= 9999 && month >= 1 && month <= 12 && day >= 1 && day <= 31;
}

static bool clock_ok(const uint8_t *p)
{
	return (p[0] & 0x7f) < 24 && p[1] < 60 && p[2] < 60 &&
	       ((unsigned long)p[3] << 16 | (unsigned)p[4] << 8 | p[5]) < 1000000;
}

static int put_date(struct rpc_buf *b, const uint8_t *p)
{
	return rpc_buf_addf(b, "%04u-%02u-%02u", (unsigned)p[0] << 8 | p[1], p[2] & 0x7fu, p[3]);
}

/* HH:MM:SS[.ffffff][offset]; the fold bit (the hour's top bit) is not shown, as
 * isoformat() does not show it. */
static int put_clock(struct rpc_buf *b, const uint8_t *p, bool aware, long long off)
{
	unsigned long us = (unsigned long)p[3] << 16 | (unsigned)p[4] << 8 | p[5];
	int rc = rpc_buf_addf(b, "%02u:%02u:%02u", p[0] & 0x7fu, p[1], p[2]);
	if (rc == 0 && us)
		rc = rpc_buf_addf(b, ".%06lu", us);
	if (rc == 0 && aware)
		rc = put_offset(b, off);
	return rc;
}

/* datetime, date or time; sep is the character between date and time; zone as in
 * srv_pystd_text (NULL: a ZoneInfo is not recognised). */
static int put_temporal(const struct pk_node *n, char sep, const char **tag, struct rpc_buf *b,
                        const struct pk_node **zone)
{
	const uint8_t *p;
	bool aware;
	long long off = 0;
	int rc;

	if (is_obj(n, "datetime", "datetime") && (nargs(n) == 1 || nargs(n) == 2) &&
	    (p = packed(arg(n, 0), 10)) && date_ok(p) && clock_ok(p + 4) &&
	    tz_or_zone(arg(n, 1), &aware, &off, zone)) {
		*tag = "$datetime";
		if ((rc = put_date(b, p)) < 0 || (rc = rpc_buf_addc(b, sep)) < 0 ||
		    (rc = put_clock(b, p + 4, aware, off)) < 0)
			return rc;
		return 1;
	}
	if (is_obj(n, "datetime", "date") && nargs(n) == 1 && (p = packed(arg(n, 0), 4)) &&
	    date_ok(p)) {
		*tag = "$date";
		return (rc = put_date(b, p)) < 0 ? rc : 1;
	}
	if (is_obj(n, "datetime", "time") && (nargs(n) == 1 || nargs(n) == 2) &&
	    (p = packed(arg(n, 0), 6)) && clock_ok(p) && tz_or_zone(arg(n, 1), &aware, &off, zone)) {
		*tag = "$time";
		return (rc = put_clock(b, p, aware, off)) < 0 ? rc : 1;
	}
	return 0;
}

/* A non-negative int below 2^128 from its node (PK_INT or decimal digits). */
static bool u128_of(const struct pk_node *n, unsigned __int128 *v)
{
	unsigned __int128 r = 0, max = ~(unsigned __int128)0;

	if (n && n->kind == PK_INT) {
		if (n->u.i < 0)
			return false;
		*v = (unsigned __int128)n->u.i;
		return true;
	}
	if (!n || n->kind != PK_BIGINT || n->u.big.len == 0)
		return false;
	for (size_t i = 0; i < n->u.big.len; i++) {
		char c = n->u.big.ptr[i];
		if (c < '0' || c > '9' || r > (max - (unsigned)(c - '0')) / 10)
			return false;
		r = r * 10 + (unsigned)(c - '0');
	}
	*v = r;
	return true;
}

static int put_uuid(const struct pk_node *n, struct rpc_buf *b)
{
	const struct pk_node *st = n->u.obj.state;
	unsigned __int128 v;
	char hex[33];

	if (!st || st->kind != PK_DICT || !u128_of(pk_dict_get(st, "int"), &v))
		return 0;
	for (int i = 31; i >= 0; i--, v >>= 4)
		hex[i] = "0123456789abcdef"[(unsigned)(v & 15)];
	hex[32] = '\0';
	int rc = rpc_buf_addf(b, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16,
	                      hex + 20);
	return rc < 0 ? rc : 1;
}

static int put_fraction(const struct pk_node *n, struct rpc_buf *b)
{
	const struct pk_node *num = arg(n, 0), *den = arg(n, 1);
	int rc;

	if (nargs(n) == 1 && num->kind == PK_STR) /* older Pythons: (str(self),) */
		return (rc = rpc_buf_add(b, num->u.str.ptr, num->u.str.len)) < 0 ? rc : 1;
	if (nargs(n) != 2 || !is_int(num) || !is_int(den) ||
	    (den->kind == PK_INT && den->u.i <= 0) ||
	    (den->kind == PK_BIGINT && den->u.big.len && den->u.big.ptr[0] == '-'))
		return 0;
	if ((rc = put_int(b, num)) < 0)
		return rc;
	if (den->kind == PK_INT && den->u.i == 1)
		return 1;
	if ((rc = rpc_buf_addc(b, '/')) < 0 || (rc = put_int(b, den)) < 0)
		return rc;
	return 1;
}

static bool is_path_class(const struct pk_node *n, bool *windows)
{
	static const char *const modules[] = {"pathlib", "pathlib._local"};
	static const char *const posix[] = {"PosixPath", "PurePosixPath"};
	static const char *const nt[] = {"WindowsPath", "PureWindowsPath"};

	for (size_t m = 0; m < 2; m++)
		for (size_t i = 0; i < 2; i++) {
			if (is_obj(n, modules[m], posix[i])) {
				*windows = false;
				return true;
			}
			if (is_obj(n, modules[m], nt[i])) {
				*windows = true;
				return true;
			}
		}
	return false;
}

/* str() of a path from its parts: the first part may be an anchor ("/", "C:\\")
 * that already ends with the separator; no parts is ".". */
static int put_path(const struct pk_node *n, struct rpc_buf *b)
{
	bool windows;
	char sep;
	size_t np = nargs(n);
	int rc;

	if (!is_path_class(n, &windows))
		return 0;
	sep = windows ? '\\' : '/';
	for (size_t i = 0; i < np; i++)
		if (arg(n, i)->kind != PK_STR)
			return 0;
	if (np == 0)
		return (rc = rpc_buf_addc(b, '.')) < 0 ? rc : 1;
	for (size_t i = 0; i < np; i++) {
		const struct pk_str *s = &arg(n, i)->u.str;
		if (i > 0) {
			const struct pk_str *prev = &arg(n, i - 1)->u.str;
			bool anchor = i == 1 && prev->len && (prev->ptr[prev->len - 1] == sep ||
			                                      (windows && prev->ptr[prev->len - 1] == ':'));
			if (!anchor && (rc = rpc_buf_addc(b, sep)) < 0)
				return rc;
		}
		if ((rc = rpc_buf_add(b, s->ptr, s->len)) < 0)
			return rc;
	}
	return 1;
}

/* Decimal, Fraction, UUID and paths, whose str() is their json text */
static int put_other(const struct pk_node *n, const char **tag, struct rpc_buf *out)
{
	int rc;

	if ((is_obj(n, "decimal", "Decimal") || is_obj(n, "_pydecimal", "Decimal")) &&
	    nargs(n) == 1 && arg(n, 0)->kind == PK_STR) {
		*tag = "$decimal";
		rc = rpc_buf_add(out, arg(n, 0)->u.str.ptr, arg(n, 0)->u.str.len);
		return rc < 0 ? rc : 1;
	}
	if (is_obj(n, "fractions", "Fraction")) {
		*tag = "$fraction";
		return put_fraction(n, out);
	}
	if (is_obj(n, "uuid", "UUID")) {
		*tag = "$uuid";
		return put_uuid(n, out);
	}
	*tag = "$path";
	return put_path(n, out);
}

int srv_pystd_text(const struct pk_node *n, const char **tag, struct rpc_buf *out,
                   const struct pk_node **zone)
{
	int rc;

	*zone = NULL;
	if (!n || n->kind != PK_OBJECT)
		return 0;
	if ((rc = put_temporal(n, 'T', tag, out, zone)) != 0)
		return rc;
	return put_other(n, tag, out);
}

/* "slice(1, None, None)": a slice of ints and None */
static int put_slice(const struct pk_node *n, struct rpc_buf *b)
{
	int rc;

	if (nargs(n) != 3)
		return 0;
	for (size_t i = 0; i < 3; i++)
		if (!is_int(arg(n, i)) && arg(n, i)->kind != PK_NONE)
			return 0;
	if ((rc = rpc_buf_adds(b, "slice(")) < 0)
		return rc;
	for (size_t i = 0; i < 3; i++) {
		if (i && (rc = rpc_buf_add(b, ", ", 2)) < 0)
			return rc;
		rc = arg(n, i)->kind == PK_NONE ? rpc_buf_adds(b, "None") : put_int(b, arg(n, i));
		if (rc < 0)
			return rc;
	}
	return (rc = rpc_buf_addc(b, ')')) < 0 ? rc : 1;
}

/* An int of 1 to 18 digits with an optional '-' at *p, advancing *p. */
static bool scan_int(const char **p, const char *end, long long *v)
{
	const char *s = *p;
	bool neg = s < end && *s == '-';
	long long r = 0;
	size_t digits = 0;

	if (neg)
		s++;
	while (s < end && *s >= '0' && *s <= '9' && digits < 18) {
		r = r * 10 + (*s++ - '0');
		digits++;
	}
	if (digits == 0 || (s < end && *s >= '0' && *s <= '9'))
		return false;
	*v = neg ? -r : r;
	*p = s;
	return true;
}

static bool scan_lit(const char **p, const char *end, const char *lit)
{
	size_t n = strlen(lit);
	if ((size_t)(end - *p) < n || memcmp(*p, lit, n) != 0)
		return false;
	*p += n;
	return true;
}

bool srv_pystd_range(const struct pk_node *n, long long r[3])
{
	const char *p, *end;

	if (is_obj(n, "builtins", "range") && nargs(n) == 3) {
		for (size_t i = 0; i < 3; i++)
			if (!int_in(arg(n, i), INT64_MIN, INT64_MAX, &r[i]))
				return false;
		return r[2] != 0;
	}
	if (!is_obj(n, "dill._dill", "_eval_repr") || nargs(n) != 1 || arg(n, 0)->kind != PK_STR)
		return false;
	p = arg(n, 0)->u.str.ptr;
	end = p + arg(n, 0)->u.str.len;
	r[2] = 1;
	if (!scan_lit(&p, end, "range(") || !scan_int(&p, end, &r[0]) ||
	    !scan_lit(&p, end, ", ") || !scan_int(&p, end, &r[1]))
		return false;
	if (scan_lit(&p, end, ", ") && !scan_int(&p, end, &r[2]))
		return false;
	return scan_lit(&p, end, ")") && p == end && r[2] != 0;
}

int srv_pystd_str(const struct pk_node *n, struct rpc_buf *out)
{
	const char *tag;
	long long d, s, us, r[3];
	int rc;

	if (!n || n->kind != PK_OBJECT)
		return 0;
	if ((rc = put_temporal(n, ' ', &tag, out, NULL)) != 0)
		return rc;
	if (srv_pystd_timedelta(n, &d, &s, &us)) {
		if (d && (rc = rpc_buf_addf(out, "%lld day%s, ", d, d == 1 || d == -1 ? "" : "s")) < 0)
			return rc;
		if ((rc = rpc_buf_addf(out, "%lld:%02lld:%02lld", s / 3600, s / 60 % 60, s % 60)) < 0)
			return rc;
		if (us && (rc = rpc_buf_addf(out, ".%06lld", us)) < 0)
			return rc;
		return 1;
	}
	if (srv_pystd_range(n, r)) {
		rc = r[2] == 1 ? rpc_buf_addf(out, "range(%lld, %lld)", r[0], r[1])
		               : rpc_buf_addf(out, "range(%lld, %lld, %lld)", r[0], r[1], r[2]);
		return rc < 0 ? rc : 1;
	}
	if (is_obj(n, "builtins", "slice"))
		return put_slice(n, out);
	return put_other(n, &tag, out);
}

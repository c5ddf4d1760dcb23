/*
 * pypath.h: file paths handled exactly as Python's pathlib and os.path handle them
 * (POSIX), for flecheconfig.c, which must find the same files and directories fleche
 * finds from the same configuration. Every function returns a string the caller
 * frees, or NULL (out of memory, or the failure said below).
 */
#ifndef FLECHEFS_SERVER_PYPATH_H
#define FLECHEFS_SERVER_PYPATH_H

/* vasprintf into a new string. */
char *pyp_format(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* str(PurePosixPath(p)): no empty or "." parts, ".." kept, "//" kept only in front. */
char *pyp_norm(const char *p);

/* str(PurePosixPath(base) / rel): rel when it is absolute. */
char *pyp_join(const char *base, const char *rel);

/*
 * os.path.expanduser(p): "~" and "~/..." from $HOME (else the password database),
 * "~user/..." from the password database; a copy of p when it does not start with
 * '~'. Returns 0 with *out set, or -1 (*out NULL) when the home directory cannot be
 * determined or memory runs out.
 */
int pyp_expanduser(const char *p, char **out);

/*
 * os.path.realpath(p, strict=False) of an absolute, normalised p, as Path.resolve()
 * uses it: existing symbolic links replaced by their targets, ".." applied to what
 * was resolved so far, parts that do not exist kept as written. NULL on a loop of
 * links (or out of memory).
 */
char *pyp_resolve(const char *p);

#endif

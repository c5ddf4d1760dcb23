/*
 * callrec.h: a call record rendered into the files of calls/<key>/ (inode.h's
 * struct fsd_record): call.json, name, module, version, code_digest, the argument
 * and result keys, and metadata/<block>.json. Rendering happens once, when the
 * record is loaded, so that every size is exact before the first read.
 */
#ifndef FLECHEFS_FUSEFS_CALLREC_H
#define FLECHEFS_FUSEFS_CALLREC_H

#include <stddef.h>

#include <msgpack.h>

#include "inode.h"

/*
 * Builds the record from load's result map (PROTOCOL.md, load). Returns 0 and *out
 * (one reference, released with fsd_record_unref), -EPROTO when the map is not a
 * call record, or -ENOMEM. Argument names that cannot be file names are left out
 * of arguments/ (they stay in call.json).
 */
int fsd_record_build(const msgpack_object *res, struct fsd_record **out);

/* True when s[0..n) can be a file name: 1 to 255 bytes, no '/', no NUL, not . or .. */
int fsd_name_ok(const char *s, size_t n);

#endif

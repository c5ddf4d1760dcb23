/*
 * fuzz_cache_record: libFuzzer harness of the storage layer's decoders of untrusted
 * bytes. The first input byte picks the path: 0, the NaN-tolerant JSON reader of SQL
 * metadata (sjson) into msgpack; 1, a pickle taken as a call record (pk_parse, then
 * srv_record_from_pickle with its bounded metadata packer); 2, the same bytes as a
 * stored record file (gunzip with its cap, signature trailer handling, then as 1),
 * read through a memfd. What the packers write must be one msgpack object that the
 * protocol's own reader (rpc_msgpack_check) takes at the nesting it has in a load
 * answer (record.h, PROTOCOL.md section 1): msgpack-c's unpacker, which stops at 32
 * levels, is not the protocol's reader.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <msgpack.h>

#include "filecodec.h"
#include "msg.h"
#include "pickle.h"
#include "record.h"
#include "json_reader.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void as_record(const uint8_t *p, size_t n)
{
	struct pk_limits lim;
	struct pk_doc *doc = NULL;
	struct srv_record rec;
	struct srv_error err;
	size_t end = 0;
	char why[128];

	pk_limits_default(&lim);
	lim.max_nodes = 100000;
	lim.max_arena = 4u << 20;
	if (pk_parse(p, n, &lim, &doc, &end, why, sizeof(why)) != 0)
		return;
	if (srv_record_from_pickle(pk_doc_root(doc), "k", "fuzz", &rec, &err) == 0) {
		/* the packer wrote one metadata map the wire can carry, or refused with a
		 * reason and an empty map */
		unsigned char head = (unsigned char)rec.metadata[0];

		if (rpc_msgpack_check(rec.metadata, rec.metadata_len, SRV_META_MAX_DEPTH, NULL, 0) !=
		        0 ||
		    !((head & 0xf0) == 0x80 || head == 0xde || head == 0xdf) ||
		    (rec.metadata_error && (rec.metadata_len != 1 || head != 0x80)))
			abort();
		srv_record_release(&rec);
	}
	pk_doc_free(doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	switch (data[0] % 3) {
	case 0: {
		msgpack_sbuffer sb;
		msgpack_packer pk;
		char why[128];

		msgpack_sbuffer_init(&sb);
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		/* a block's JSON starts at level 2 of the metadata map */
		if (srv_sjson_pack((const char *)data + 1, size - 1, &pk, why, sizeof(why)) == 0 &&
		    rpc_msgpack_check(sb.data, sb.size, SRV_META_MAX_DEPTH - 1, NULL, 0) != 0)
			abort();
		msgpack_sbuffer_destroy(&sb);
		{
			double d;

			(void)srv_sjson_number((const char *)data + 1, size - 1, "timestop", &d);
		}
		break;
	}
	case 1:
		as_record(data + 1, size - 1);
		break;
	default: {
		int fd = memfd_create("fuzz", MFD_CLOEXEC);
		char path[64];
		struct srv_blob blob;
		struct stat st;
		struct srv_error err;

		if (fd < 0)
			return 0;
		if (write(fd, data + 1, size - 1) == (ssize_t)(size - 1)) {
			snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
			if (srv_codec_read_record(path, NULL, SRV_RECORD_MAX, &blob, &st, &err) == 0) {
				as_record(blob.data, blob.len);
				srv_blob_release(&blob);
			}
		}
		close(fd);
		break;
	}
	}
	return 0;
}

/*
 * knownhosts.c: host key verification for the libssh2 transport, the way OpenSSH's
 * client does it. The files are read into one libssh2 known-hosts collection, which
 * matches plain names, hashed names (|1|salt|hash) and the "[host]:port" form used
 * for ports other than 22. A key is never accepted for a host that has a different
 * key of the same type on record, whatever StrictHostKeyChecking says; accept-new
 * appends one line to the user's file instead of rewriting it (libssh2's writefile
 * would drop the lines it does not understand, e.g. @cert-authority).
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "knownhosts.h"

struct hk_type {
	int hostkey_type;    /* LIBSSH2_HOSTKEY_TYPE_* */
	int knownhost_type;  /* LIBSSH2_KNOWNHOST_KEY_* */
	const char *name;    /* as OpenSSH prints it */
	const char *methods; /* libssh2 host key method names */
};

/* In OpenSSH's order of preference. */
static const struct hk_type hk_types[] = {
    {LIBSSH2_HOSTKEY_TYPE_ED25519, LIBSSH2_KNOWNHOST_KEY_ED25519, "ED25519", "ssh-ed25519"},
    {LIBSSH2_HOSTKEY_TYPE_ECDSA_256, LIBSSH2_KNOWNHOST_KEY_ECDSA_256, "ECDSA",
     "ecdsa-sha2-nistp256"},
    {LIBSSH2_HOSTKEY_TYPE_ECDSA_384, LIBSSH2_KNOWNHOST_KEY_ECDSA_384, "ECDSA",
     "ecdsa-sha2-nistp384"},
    {LIBSSH2_HOSTKEY_TYPE_ECDSA_521, LIBSSH2_KNOWNHOST_KEY_ECDSA_521, "ECDSA",
     "ecdsa-sha2-nistp521"},
    {LIBSSH2_HOSTKEY_TYPE_RSA, LIBSSH2_KNOWNHOST_KEY_SSHRSA, "RSA",
     "rsa-sha2-512,rsa-sha2-256,ssh-rsa"},
    {LIBSSH2_HOSTKEY_TYPE_DSS, LIBSSH2_KNOWNHOST_KEY_SSHDSS, "DSA", "ssh-dss"},
};
#define N_HK_TYPES (sizeof(hk_types) / sizeof(hk_types[0]))

static const struct hk_type *hk_type_of(int hostkey_type)
{
	for (size_t i = 0; i < N_HK_TYPES; i++)
		if (hk_types[i].hostkey_type == hostkey_type)
			return &hk_types[i];
	return NULL;
}

static LIBSSH2_KNOWNHOSTS *load(LIBSSH2_SESSION *s, const struct fsd_knownhosts_files *f)
{
	LIBSSH2_KNOWNHOSTS *kh = libssh2_knownhost_init(s);
	if (!kh)
		return NULL;
	/*
	 * Line by line: libssh2_knownhost_readfile stops at the first line it cannot
	 * parse (@cert-authority, @revoked, sk- keys), forgetting every host after it.
	 * Such lines are skipped here; lines longer than the buffer are skipped whole.
	 */
	char line[16384];
	for (size_t i = 0; i < f->n_read; i++) {
		FILE *fp = fopen(f->read[i], "re");
		if (!fp)
			continue;
		int skipping = 0;
		while (fgets(line, sizeof(line), fp)) {
			size_t len = strlen(line);
			int whole = len > 0 && line[len - 1] == '\n';
			if (!skipping && whole)
				libssh2_knownhost_readline(kh, line, len,
				                           LIBSSH2_KNOWNHOST_FILE_OPENSSH);
			else if (!skipping && feof(fp))
				libssh2_knownhost_readline(kh, line, len,
				                           LIBSSH2_KNOWNHOST_FILE_OPENSSH);
			skipping = !whole;
		}
		fclose(fp);
	}
	return kh;
}

static int check_port(int port)
{
	return port == 22 || port <= 0 ? -1 : port;
}

char *fsd_knownhosts_prefs(LIBSSH2_SESSION *s, const char *host, int port,
                           const struct fsd_knownhosts_files *f)
{
	LIBSSH2_KNOWNHOSTS *kh = load(s, f);
	int known[N_HK_TYPES] = {0};
	if (kh) {
		/*
		 * A probe key that cannot match: MISMATCH then means the host has a
		 * key of this type on record (libssh2 compares the host, hashed or
		 * not, then the type, then the key).
		 */
		for (size_t i = 0; i < N_HK_TYPES; i++) {
			int r = libssh2_knownhost_checkp(kh, host, check_port(port), "x", 1,
			                                 LIBSSH2_KNOWNHOST_TYPE_PLAIN |
			                                     LIBSSH2_KNOWNHOST_KEYENC_RAW |
			                                     hk_types[i].knownhost_type,
			                                 NULL);
			known[i] = r == LIBSSH2_KNOWNHOST_CHECK_MISMATCH;
		}
		libssh2_knownhost_free(kh);
	}
	size_t cap = 1;
	for (size_t i = 0; i < N_HK_TYPES; i++)
		cap += strlen(hk_types[i].methods) + 1;
	char *out = malloc(cap);
	if (!out)
		return NULL;
	out[0] = '\0';
	for (int pass = 1; pass >= 0; pass--)
		for (size_t i = 0; i < N_HK_TYPES; i++)
			if (known[i] == pass) {
				if (out[0])
					strcat(out, ",");
				strcat(out, hk_types[i].methods);
			}
	return out;
}

void fsd_knownhosts_fingerprint(LIBSSH2_SESSION *s, char *buf, size_t len)
{
	size_t keylen = 0;
	int type = 0;
	libssh2_session_hostkey(s, &keylen, &type);
	const struct hk_type *t = hk_type_of(type);
	const unsigned char *hash =
	    (const unsigned char *)libssh2_hostkey_hash(s, LIBSSH2_HOSTKEY_HASH_SHA256);
	unsigned char b64[64] = "";
	if (hash) {
		int n = EVP_EncodeBlock(b64, hash, 32);
		while (n > 0 && b64[n - 1] == '=') /* OpenSSH prints it unpadded */
			b64[--n] = '\0';
	}
	snprintf(buf, len, "%s key fingerprint SHA256:%s", t ? t->name : "unknown",
	         hash ? (const char *)b64 : "?");
}

static int mkdir_parent(const char *path)
{
	char *copy = strdup(path);
	if (!copy)
		return -ENOMEM;
	const char *dir = dirname(copy);
	int rc = 0;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		rc = -errno;
	free(copy);
	return rc;
}

/* Appends the host's key to f->write as one OpenSSH line. */
static int add_key(LIBSSH2_KNOWNHOSTS *kh, const char *host, int port, const char *key,
                   size_t keylen, int ktype, const char *file, char *err, size_t errlen)
{
	char name[300], line[16384];
	struct libssh2_knownhost *entry = NULL;
	size_t outlen = 0;
	int fd = -1, rc = 0;

	if (check_port(port) < 0)
		snprintf(name, sizeof(name), "%s", host);
	else
		snprintf(name, sizeof(name), "[%s]:%d", host, port);
	if (libssh2_knownhost_addc(
	        kh, name, NULL, key, keylen, NULL, 0,
	        LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW | ktype, &entry) != 0 ||
	    libssh2_knownhost_writeline(kh, entry, line, sizeof(line), &outlen,
	                                LIBSSH2_KNOWNHOST_FILE_OPENSSH) != 0) {
		snprintf(err, errlen, "cannot format the host key of '%s'", name);
		return -EINVAL;
	}
	rc = mkdir_parent(file);
	if (rc == 0) {
		fd = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
		if (fd < 0)
			rc = -errno;
	}
	if (rc == 0) {
		/* a file not ending in a newline would glue our line to its last one */
		struct stat st;
		if (fstat(fd, &st) == 0 && st.st_size > 0) {
			char last = '\n';
			int rfd = open(file, O_RDONLY | O_CLOEXEC);
			if (rfd >= 0) {
				if (pread(rfd, &last, 1, st.st_size - 1) == 1 && last != '\n')
					(void)!write(fd, "\n", 1);
				close(rfd);
			}
		}
		if (write(fd, line, outlen) != (ssize_t)outlen)
			rc = errno ? -errno : -EIO;
	}
	if (fd >= 0 && close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc)
		snprintf(err, errlen, "cannot add the host key to '%s': %s", file, strerror(-rc));
	return rc;
}

int fsd_knownhosts_check(LIBSSH2_SESSION *s, const char *host, int port,
                         const struct fsd_knownhosts_files *f, enum fsd_ssh_strict strict,
                         void (*log)(const char *line), char *err, size_t errlen)
{
	size_t keylen = 0;
	int type = 0, rc = 0;
	char fp[128], shown[300], msg[1024];
	const char *key = libssh2_session_hostkey(s, &keylen, &type);
	const struct hk_type *t = hk_type_of(type);
	LIBSSH2_KNOWNHOSTS *kh = NULL;

	if (!key || !t) {
		snprintf(err, errlen, "the server '%s' sent a host key of an unknown type", host);
		return -EPERM;
	}
	fsd_knownhosts_fingerprint(s, fp, sizeof(fp));
	if (check_port(port) < 0)
		snprintf(shown, sizeof(shown), "%s", host);
	else
		snprintf(shown, sizeof(shown), "[%s]:%d", host, port);
	kh = load(s, f);
	if (!kh) {
		snprintf(err, errlen, "out of memory checking the host key of '%s'", shown);
		return -ENOMEM;
	}
	int r = libssh2_knownhost_checkp(
	    kh, host, check_port(port), key, keylen,
	    LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW | t->knownhost_type, NULL);
	switch (r) {
	case LIBSSH2_KNOWNHOST_CHECK_MATCH:
		rc = 0;
		break;
	case LIBSSH2_KNOWNHOST_CHECK_MISMATCH: {
		char where[400] = "", rm[400] = "";
		if (f->write) {
			snprintf(where, sizeof(where), " '%s'", f->write);
			snprintf(rm, sizeof(rm), " -f '%s'", f->write);
		}
		snprintf(err, errlen,
		         "WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED for '%s': it now shows "
		         "%s, which differs from the key in the known_hosts file%s; someone "
		         "could be eavesdropping, or the host key was replaced; if you know why, "
		         "remove the old key (ssh-keygen -R '%s'%s) and connect again; "
		         "refusing to connect",
		         shown, fp, where, shown, rm);
		rc = -EPERM;
		break;
	}
	case LIBSSH2_KNOWNHOST_CHECK_NOTFOUND:
		if (strict == FSD_SSH_STRICT_ACCEPT_NEW) {
			if (!f->write) {
				snprintf(err, errlen, "no known_hosts file to add '%s' to", shown);
				rc = -EINVAL;
				break;
			}
			rc = add_key(kh, host, port, key, keylen, t->knownhost_type, f->write, err,
			             errlen);
			if (rc == 0 && log) {
				snprintf(msg, sizeof(msg),
				         "permanently added '%s' (%s) to the list of known hosts "
				         "'%s'",
				         shown, fp, f->write);
				log(msg);
			}
		} else if (strict == FSD_SSH_STRICT_NO) {
			if (log) {
				snprintf(msg, sizeof(msg),
				         "warning: host '%s' is not known (%s); connecting anyway "
				         "(StrictHostKeyChecking=no)",
				         shown, fp);
				log(msg);
			}
			rc = 0;
		} else {
			snprintf(err, errlen,
			         "the authenticity of host '%s' cannot be established: %s is not "
			         "in %s; if it is the right key, accept it with "
			         "-o StrictHostKeyChecking=accept-new",
			         shown, fp, f->write ? f->write : "any known_hosts file");
			rc = -EPERM;
		}
		break;
	default:
		snprintf(err, errlen, "cannot check the host key of '%s'", shown);
		rc = -EIO;
		break;
	}
	libssh2_knownhost_free(kh);
	return rc;
}

/*
 * main.c: the flechefs-server program: parses the command line and the HMAC keys
 * (from --key-file or FLECHE_SECRET_KEY), opens the cache and serves one session
 * on standard input and output (dispatch.c). Standard output carries protocol frames
 * only; everything else goes to standard error with the prefix "flechefs-server: ".
 *
 * Exit status: 0 after a clean end of input, 1 when the cache cannot be opened or
 * the session ended on an error, 2 for a usage error.
 *
 * Termination signals (SIGTERM, which the daemon sends at unmount; SIGHUP, SIGINT) are
 * blocked in every thread but one that waits for them: it closes the cache's storage
 * (srv_cache_quit: SQLite removes the files it made beside the database) and ends the
 * process with the same signal.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache.h"
#include "dispatch.h"
#include "filecodec.h"
#include "flecheconfig.h"
#include "json_writer.h"
#include "rpc.h"
#include "save.h"

#define PROGRAM    "flechefs-server"
#define EXIT_USAGE 2
/* A key file larger than this is not a key file. */
#define KEY_FILE_MAX (64 * 1024)

struct options {
	bool serve;
	bool read_only;
	bool show_config;
	bool compress;          /* --compress */
	const char *serializer; /* --serializer */
	const char *root, *calls, *values, *key_file;
	const char *cache_name, *config_dir; /* --cache, --config-from */
	uint32_t max_frame;
	uint64_t gunzip_max;
	struct srv_hmac_key keys[SRV_MAX_HMAC_KEYS];
	size_t nkeys;
};

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: " PROGRAM " --serve [--cache NAME] [options]\n"
	        "       " PROGRAM " --serve --root DIR [options]\n"
	        "       " PROGRAM " --serve --calls DIR|sqlite:///FILE --values DIR [options]\n"
	        "       " PROGRAM " --show-config [--cache NAME] [--config-from DIR]\n"
	        "\n"
	        "Serves a fleche cache over the flechefs protocol on standard input and output.\n"
	        "Without path options, the cache is found in fleche.toml as fleche finds it.\n"
	        "\n"
	        "  --serve                 answer requests on stdin/stdout\n"
	        "  --cache NAME            the cache named NAME in fleche.toml (default: the\n"
	        "                          [default] table's cache)\n"
	        "  --config-from DIR       look for fleche.toml from DIR up (default: the\n"
	        "                          current directory)\n"
	        "  --show-config           print the resolved configuration (secret keys\n"
	        "                          redacted) and the files read, and exit\n"
	        "  --root DIR              a template-layout cache: DIR/calls/ or DIR/calls.db,\n"
	        "                          and DIR/values/\n"
	        "  --calls DIR|sqlite:///FILE\n"
	        "                          call storage (overrides the one under --root)\n"
	        "  --values DIR            value storage (overrides DIR/values)\n"
	        "  --read-only             refuse evict, put_value and save (EROFS)\n"
	        "  --serializer NAME       how values are pickled (pickle, cloudpickle, dill),\n"
	        "                          reported to clients that save (with a path option)\n"
	        "  --compress              save values and records gzip-compressed (with a\n"
	        "                          path option)\n"
	        "  --key-file FILE         HMAC keys in hex, one per line or colon-separated\n"
	        "                          (the first signs, any verifies); default: the\n"
	        "                          environment variable FLECHE_SECRET_KEY\n"
	        "  --max-frame BYTES       largest frame read or written (default 16M;\n"
	        "                          suffixes K, M, G)\n"
	        "  --gunzip-max BYTES      the most a gzip-compressed value may inflate to\n"
	        "                          (default 1G, at most 16G); larger ones are EFBIG\n"
	        "  -h, --help              show this help\n"
	        "  -V, --version           show the version\n"
	        "\n"
	        "See flechefs-server(1) and rpc/PROTOCOL.md.\n");
}

static void __attribute__((format(printf, 1, 2), noreturn)) die_usage(const char *fmt, ...)
{
	va_list ap;
	fputs(PROGRAM ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\ntry '" PROGRAM " --help' for more information\n", stderr);
	exit(EXIT_USAGE);
}

static void free_keys(struct options *o)
{
	for (size_t i = 0; i < o->nkeys; i++) {
		explicit_bzero(o->keys[i].bytes, o->keys[i].len);
		free(o->keys[i].bytes);
		o->keys[i].bytes = NULL;
	}
	o->nkeys = 0;
}

/*
 * Adds the keys in s[0..len): hex keys separated by ':', whitespace or newlines;
 * empty items are skipped, lines starting with '#' are comments. 0, or -1 with a
 * message naming source.
 */
static int parse_keys(struct options *o, const char *s, size_t len, const char *source)
{
	size_t i = 0;
	unsigned lineno = 1;
	bool line_start = true;

	while (i < len) {
		if (s[i] == '\n') {
			lineno++;
			line_start = true;
			i++;
			continue;
		}
		if (line_start && s[i] == '#') {
			while (i < len && s[i] != '\n')
				i++;
			continue;
		}
		if (s[i] == ':' || isspace((unsigned char)s[i])) {
			line_start = line_start && s[i] != ':';
			i++;
			continue;
		}
		line_start = false;
		size_t j = i;
		while (j < len && s[j] != ':' && !isspace((unsigned char)s[j]))
			j++;
		size_t n = j - i;
		if (n % 2 != 0) {
			fprintf(stderr,
			        PROGRAM ": bad key in %s (line %u): odd number of hex digits\n",
			        source, lineno);
			return -1;
		}
		if (o->nkeys == SRV_MAX_HMAC_KEYS) {
			fprintf(stderr, PROGRAM ": too many keys in %s: at most %d\n", source,
			        SRV_MAX_HMAC_KEYS);
			return -1;
		}
		uint8_t *bytes = malloc(n / 2);
		if (!bytes) {
			fprintf(stderr, PROGRAM ": cannot read keys from %s: %s\n", source,
			        strerror(ENOMEM));
			return -1;
		}
		for (size_t k = 0; k < n; k += 2) {
			int hi = rpc_hex_digit((unsigned char)s[i + k]),
			    lo = rpc_hex_digit((unsigned char)s[i + k + 1]);
			if (hi < 0 || lo < 0) {
				explicit_bzero(bytes, n / 2);
				free(bytes);
				fprintf(stderr,
				        PROGRAM ": bad key in %s (line %u): not hexadecimal\n",
				        source, lineno);
				return -1;
			}
			bytes[k / 2] = (uint8_t)(hi << 4 | lo);
		}
		o->keys[o->nkeys].bytes = bytes;
		o->keys[o->nkeys].len = n / 2;
		o->nkeys++;
		i = j;
	}
	return 0;
}

static int read_key_file(struct options *o, const char *path)
{
	char *buf = NULL;
	size_t len = 0;
	int ret = -1;
	FILE *f = fopen(path, "re");
	char src[PATH_MAX + 16];

	if (!f) {
		fprintf(stderr, PROGRAM ": cannot open '%s': %s\n", path, strerror(errno));
		return -1;
	}
	buf = malloc(KEY_FILE_MAX + 1);
	if (!buf) {
		fprintf(stderr, PROGRAM ": cannot read '%s': %s\n", path, strerror(ENOMEM));
		goto out;
	}
	len = fread(buf, 1, KEY_FILE_MAX + 1, f);
	if (ferror(f)) {
		fprintf(stderr, PROGRAM ": cannot read '%s': %s\n", path, strerror(errno));
		goto out;
	}
	if (len > KEY_FILE_MAX) {
		fprintf(stderr, PROGRAM ": cannot read '%s': larger than %d bytes\n", path,
		        KEY_FILE_MAX);
		goto out;
	}
	snprintf(src, sizeof(src), "'%s'", path);
	if (parse_keys(o, buf, len, src) < 0)
		goto out;
	if (o->nkeys == 0) {
		fprintf(stderr, PROGRAM ": no key in '%s'\n", path);
		goto out;
	}
	ret = 0;
out:
	if (buf) {
		explicit_bzero(buf, len);
		free(buf);
	}
	fclose(f);
	return ret;
}

static void check_dir(const char *what, const char *path)
{
	struct stat st;
	if (stat(path, &st) != 0)
		die_usage("cannot open %s '%s': %s", what, path, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		die_usage("cannot open %s '%s': %s", what, path, strerror(ENOTDIR));
}

static void parse_args(int argc, char **argv, struct options *o)
{
	enum {
		OPT_SERVE = 256,
		OPT_ROOT,
		OPT_CALLS,
		OPT_VALUES,
		OPT_RO,
		OPT_KEYFILE,
		OPT_MAXFRAME,
		OPT_GUNZIPMAX,
		OPT_CACHE,
		OPT_CONFIG_FROM,
		OPT_SHOW_CONFIG,
		OPT_SERIALIZER,
		OPT_COMPRESS
	};
	static const struct option longopts[] = {
	    {"serve", no_argument, NULL, OPT_SERVE},
	    {"root", required_argument, NULL, OPT_ROOT},
	    {"calls", required_argument, NULL, OPT_CALLS},
	    {"values", required_argument, NULL, OPT_VALUES},
	    {"read-only", no_argument, NULL, OPT_RO},
	    {"key-file", required_argument, NULL, OPT_KEYFILE},
	    {"max-frame", required_argument, NULL, OPT_MAXFRAME},
	    {"gunzip-max", required_argument, NULL, OPT_GUNZIPMAX},
	    {"cache", required_argument, NULL, OPT_CACHE},
	    {"config-from", required_argument, NULL, OPT_CONFIG_FROM},
	    {"show-config", no_argument, NULL, OPT_SHOW_CONFIG},
	    {"serializer", required_argument, NULL, OPT_SERIALIZER},
	    {"compress", no_argument, NULL, OPT_COMPRESS},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	uint64_t size;
	int c;

	memset(o, 0, sizeof(*o));
	o->max_frame = RPC_MAX_FRAME_DEFAULT;
	o->gunzip_max = SRV_GUNZIP_MAX_DEFAULT;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":hV", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_SERVE:
			o->serve = true;
			break;
		case OPT_ROOT:
			o->root = optarg;
			break;
		case OPT_CALLS:
			o->calls = optarg;
			break;
		case OPT_VALUES:
			o->values = optarg;
			break;
		case OPT_RO:
			o->read_only = true;
			break;
		case OPT_KEYFILE:
			o->key_file = optarg;
			break;
		case OPT_MAXFRAME:
			if (rpc_parse_size(optarg, RPC_MAX_FRAME_LIMIT, &size) < 0 ||
			    size < RPC_MAX_FRAME_MIN)
				die_usage("bad --max-frame '%s': give a size from %u to %u bytes",
				          optarg, RPC_MAX_FRAME_MIN, RPC_MAX_FRAME_LIMIT);
			o->max_frame = (uint32_t)size;
			break;
		case OPT_GUNZIPMAX:
			if (rpc_parse_size(optarg, SRV_GUNZIP_MAX_LIMIT, &size) < 0 || size == 0)
				die_usage("bad --gunzip-max '%s': give a size from 1 to %llu bytes",
				          optarg, (unsigned long long)SRV_GUNZIP_MAX_LIMIT);
			o->gunzip_max = size;
			break;
		case OPT_CACHE:
			o->cache_name = optarg;
			break;
		case OPT_CONFIG_FROM:
			o->config_dir = optarg;
			break;
		case OPT_SHOW_CONFIG:
			o->show_config = true;
			break;
		case OPT_SERIALIZER:
			if (strcmp(optarg, "pickle") != 0 && strcmp(optarg, "cloudpickle") != 0 &&
			    strcmp(optarg, "dill") != 0)
				die_usage("bad --serializer '%s': pickle, cloudpickle or dill", optarg);
			o->serializer = optarg;
			break;
		case OPT_COMPRESS:
			o->compress = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case 'V':
			printf(PROGRAM " " FLECHEFS_VERSION " (protocol %d)\n",
			       RPC_PROTOCOL_VERSION);
			exit(0);
		case ':':
			die_usage("option '%s' needs an argument", argv[optind - 1]);
			break;
		default:
			if (optopt)
				die_usage("unknown option '-%c'", optopt);
			die_usage("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		die_usage("unexpected argument '%s'", argv[optind]);
	if (!o->serve && !o->show_config) {
		usage(stderr);
		exit(EXIT_USAGE);
	}
	if (o->show_config && (o->root || o->calls || o->values))
		die_usage("--show-config shows the configuration of fleche.toml: give no paths");
	/* explicit paths win; without any, the cache comes from fleche.toml */
	if ((o->root || o->calls || o->values) && !o->root && (!o->calls || !o->values))
		die_usage("say where the cache is: --root DIR, or --calls and --values "
		          "(or neither, for fleche.toml's cache)");
	if (o->root)
		check_dir("root", o->root);
	if (o->values)
		check_dir("values", o->values);
	if (o->calls && strncmp(o->calls, "sqlite:", 7) != 0)
		check_dir("calls", o->calls);
	else if (o->calls && strncmp(o->calls, "sqlite:///", 10) != 0)
		die_usage("bad --calls '%s': give a directory or sqlite:///FILE", o->calls);
}

/* --show-config: the description fcfg_pack made, as indented JSON on stdout. */
static int print_config(const msgpack_sbuffer *desc)
{
	msgpack_zone zone;
	msgpack_object obj;
	struct rpc_buf b;
	int ret = -1;

	if (!msgpack_zone_init(&zone, 4096))
		return -1;
	rpc_buf_init(&b, 16u * 1024 * 1024);
	if (msgpack_unpack(desc->data, desc->size, NULL, &zone, &obj) == MSGPACK_UNPACK_SUCCESS &&
	    rpc_json_msgpack(&b, &obj, 32, 2) == 0 && rpc_buf_addc(&b, '\n') == 0 &&
	    fwrite(b.data, 1, b.len, stdout) == b.len && fflush(stdout) == 0)
		ret = 0;
	rpc_buf_release(&b);
	msgpack_zone_destroy(&zone);
	return ret;
}

/*
 * Opens every layer of the configured cache (keys from --key-file instead of the
 * configuration's when given) and joins them when there are several. 0 or -1 (said).
 */
static int open_configured(const struct options *o, const struct fcfg_cache *fc,
			   struct srv_cache **out)
{
	struct srv_cache *layers[FCFG_MAX_LAYERS] = {0};
	struct srv_config cfg;
	struct srv_error err;
	char msg[1024];
	size_t n = 0;
	int ret = -1;

	memset(&err, 0, sizeof(err));
	for (size_t i = 0; i < fc->nlayers; i++) {
		/*
		 * A layer of a stack that fleche never wrote to reads as empty: leave it
		 * out (the server creates nothing), as long as one layer remains.
		 */
		if (fc->nlayers > 1 && !fcfg_layer_exists(fc, i) && (n > 0 || i + 1 < fc->nlayers)) {
			fprintf(stderr, PROGRAM ": %s: nothing stored there yet: read as empty\n",
			        fc->layers[i].where);
			continue;
		}
		if (fcfg_layer_config(fc, i, &cfg, msg, sizeof(msg)) < 0) {
			fprintf(stderr, PROGRAM ": %s\n", msg);
			goto out;
		}
		cfg.read_only = cfg.read_only || o->read_only;
		cfg.gunzip_max = o->gunzip_max;
		if (o->key_file) {
			for (size_t k = 0; k < o->nkeys; k++)
				cfg.keys[k] = o->keys[k];
			cfg.nkeys = o->nkeys;
		}
		if (srv_cache_open(&cfg, &layers[n], &err) < 0) {
			fprintf(stderr, PROGRAM ": %s: %s\n", fc->layers[i].where,
			        err.message[0] ? err.message : rpc_error_message(err.code));
			goto out;
		}
		n++;
	}
	if (n == 1) {
		*out = layers[0];
		return 0;
	}
	if (srv_cache_stack(layers, n, out, &err) < 0) {
		/* (the layers are freed) */
		fprintf(stderr, PROGRAM ": %s\n", err.message);
		return -1;
	}
	return 0;
out:
	while (n > 0)
		srv_cache_free(layers[--n]);
	return ret;
}

/* The cache the signal thread closes; NULL once main is done with it. */
static pthread_mutex_t quit_lock = PTHREAD_MUTEX_INITIALIZER;
static struct srv_cache *quit_cache;

static void termination_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGHUP);
	sigaddset(set, SIGINT);
}

static void *await_signal(void *arg)
{
	sigset_t set;
	int sig;

	(void)arg;
	termination_signals(&set);
	if (sigwait(&set, &sig) != 0)
		return NULL;
	pthread_mutex_lock(&quit_lock);
	if (quit_cache)
		srv_cache_quit(quit_cache);
	signal(sig, SIG_DFL);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	raise(sig);
	_exit(128 + sig);
}

/* Blocks the termination signals and starts the thread that waits for them. */
static void watch_signals(void)
{
	sigset_t set;
	pthread_t t;

	termination_signals(&set);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (pthread_create(&t, NULL, await_signal, NULL) == 0)
		pthread_detach(t);
	else
		pthread_sigmask(SIG_UNBLOCK, &set, NULL); /* as before: they end us at once */
}

int main(int argc, char **argv)
{
	struct options o;
	struct srv_config cfg;
	struct srv_cache *cache = NULL;
	struct srv_error err;
	struct srv_serve_options sopt;
	struct fcfg_cache fc;
	msgpack_sbuffer desc;
	msgpack_packer pk;
	char msg[1024];
	const char *env;
	int status = 1, proto_out = -1;
	bool from_config;

	signal(SIGPIPE, SIG_IGN);
	parse_args(argc, argv, &o);
	watch_signals();
	memset(&fc, 0, sizeof(fc));
	msgpack_sbuffer_init(&desc);
	from_config = !o.root && !o.calls && !o.values;

	if (from_config) {
		int r = fcfg_resolve(o.config_dir, o.cache_name, &fc, msg, sizeof(msg));
		if (r == FCFG_NONE && !o.show_config && !o.cache_name) {
			fprintf(stderr, PROGRAM ": %s; or say where the cache is: --root DIR, or "
			                "--calls and --values\n", msg);
			status = EXIT_USAGE;
			goto out;
		}
		if (r < 0) {
			fprintf(stderr, PROGRAM ": %s\n", msg);
			goto out;
		}
		msgpack_packer_init(&pk, &desc, msgpack_sbuffer_write);
		if (fcfg_pack(&fc, &pk) < 0) {
			fprintf(stderr, PROGRAM ": cannot describe the configuration: %s\n",
			        strerror(ENOMEM));
			goto out;
		}
		if (o.show_config) {
			if (print_config(&desc) < 0) {
				fprintf(stderr, PROGRAM ": cannot print the configuration\n");
				goto out;
			}
			status = 0;
			goto out;
		}
	}

	if (o.key_file) {
		if (read_key_file(&o, o.key_file) < 0) {
			status = EXIT_USAGE;
			goto out;
		}
	} else if (!from_config && (env = getenv("FLECHE_SECRET_KEY")) && env[0]) {
		/* (from fleche.toml, the configuration already holds the environment's keys) */
		if (parse_keys(&o, env, strlen(env), "FLECHE_SECRET_KEY") < 0) {
			status = EXIT_USAGE;
			goto out;
		}
	}

	memset(&err, 0, sizeof(err));
	if (from_config) {
		if (open_configured(&o, &fc, &cache) < 0)
			goto out;
	} else {
		memset(&cfg, 0, sizeof(cfg));
		cfg.root = o.root;
		cfg.calls = o.calls;
		cfg.values = o.values;
		cfg.read_only = o.read_only;
		cfg.serializer = o.serializer;
		cfg.compress_values = cfg.compress_calls = o.compress;
		cfg.gunzip_max = o.gunzip_max;
		for (size_t i = 0; i < o.nkeys; i++)
			cfg.keys[i] = o.keys[i];
		cfg.nkeys = o.nkeys;
		if (srv_cache_open(&cfg, &cache, &err) < 0) {
			fprintf(stderr, PROGRAM ": %s\n",
			        err.message[0] ? err.message : rpc_error_message(err.code));
			goto out;
		}
		explicit_bzero(&cfg, sizeof(cfg));
	}
	/* the cache copied the keys: keep no other copy */
	free_keys(&o);
	fcfg_cache_release(&fc);

	/*
	 * The protocol gets a private copy of standard output, and fd 1 becomes standard
	 * error: whatever else might print (a library, a stray printf) cannot corrupt the
	 * stream of frames.
	 */
	proto_out = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
	if (proto_out < 0 || dup2(STDERR_FILENO, STDOUT_FILENO) < 0) {
		fprintf(stderr, PROGRAM ": cannot set up standard output: %s\n", strerror(errno));
		goto out;
	}
	pthread_mutex_lock(&quit_lock);
	quit_cache = cache;
	pthread_mutex_unlock(&quit_lock);
	memset(&sopt, 0, sizeof(sopt));
	sopt.max_frame = o.max_frame;
	if (from_config) {
		sopt.config = desc.data;
		sopt.config_len = desc.size;
	}
	srv_save_sweep(cache);
	status = srv_serve(cache, &sopt, STDIN_FILENO, proto_out) == 0 ? 0 : 1;
	close(proto_out);
out:
	pthread_mutex_lock(&quit_lock);
	quit_cache = NULL;
	srv_cache_free(cache);
	pthread_mutex_unlock(&quit_lock);
	free_keys(&o);
	fcfg_cache_release(&fc);
	msgpack_sbuffer_destroy(&desc);
	return status;
}

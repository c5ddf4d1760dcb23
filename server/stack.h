/*
 * stack.h: a stack of caches served as one, as fleche's CacheStack (and, with every
 * layer read-only, its CachePool) reads them: a call or value is looked up in the
 * layers in order and the first layer holding it answers; listings, queries and
 * function names are the sorted union of the layers' (a key in several layers listed
 * once); contains is true when any layer has the key; expand resolves a prefix among
 * the keys of all layers; shrink gives the longest of the layers' shortest unique
 * prefixes; evict removes the call from every layer that has it and may change.
 * Unlike fleche, a hit in a lower layer is not copied into the first one: the server
 * writes only when asked to.
 *
 * cache.c's public functions hand a stack's work to these (srv_cache_stack makes
 * one); each layer is a srv_cache of its own, with its own lock.
 */
#ifndef FLECHEFS_SERVER_STACK_H
#define FLECHEFS_SERVER_STACK_H

#include "cache.h"

struct srv_stack {
	struct srv_cache **layers; /* owned */
	size_t n;
};

int srv_stack_count(const struct srv_stack *s, uint64_t *calls, uint64_t *values,
		    struct srv_error *err);
/* the disk use of all the layers together */
int srv_stack_size(const struct srv_stack *s, uint64_t *bytes, struct srv_error *err);
int srv_stack_list(const struct srv_stack *s, enum srv_kind kind, const char *after,
		   size_t limit, bool detail, struct srv_page *page, struct srv_error *err);
int srv_stack_query(const struct srv_stack *s, const msgpack_object *tmpl, const char *after,
		    size_t limit, bool detail, struct srv_page *page, struct srv_error *err);
int srv_stack_names(const struct srv_stack *s, const char *after, size_t limit,
		    struct srv_names *out, struct srv_error *err);
int srv_stack_load(const struct srv_stack *s, const char *key, size_t len, struct srv_record *rec,
		   struct srv_error *err);
int srv_stack_contains(const struct srv_stack *s, const char *key, size_t len, bool *found,
		       struct srv_error *err);
int srv_stack_expand(const struct srv_stack *s, const char *prefix, size_t len, char *out,
		     struct srv_error *err);
int srv_stack_shrink(const struct srv_stack *s, const char *key, size_t len, char *out,
		     struct srv_error *err);
int srv_stack_evict(const struct srv_stack *s, const char *key, size_t len,
		    struct srv_error *err);
int srv_stack_value_open(const struct srv_stack *s, const char *key, size_t len,
			 struct srv_value **out, struct srv_error *err);

/*
 * One layer's operations (cache.c), which stack.c runs on each layer of a stack and
 * on a cache of one layer: cache.h's srv_* functions without the stack. The public
 * srv_* functions are stack.c's, so that cache.c never calls back into stack.c.
 */
int srv_layer_count(struct srv_cache *c, uint64_t *calls, uint64_t *values, struct srv_error *err);
int srv_layer_size(struct srv_cache *c, uint64_t *bytes, struct srv_error *err);
int srv_layer_load(struct srv_cache *c, const char *key, size_t len, struct srv_record *rec,
                   struct srv_error *err);
int srv_layer_contains(struct srv_cache *c, const char *key, size_t len, bool *found,
                       struct srv_error *err);
int srv_layer_expand(struct srv_cache *c, const char *prefix, size_t len, char *out,
                     struct srv_error *err);
int srv_layer_shrink(struct srv_cache *c, const char *key, size_t len, char *out,
                     struct srv_error *err);
int srv_layer_evict(struct srv_cache *c, const char *key, size_t len, struct srv_error *err);
int srv_layer_list(struct srv_cache *c, enum srv_kind kind, const char *after, size_t limit,
                   bool detail, struct srv_page *page, struct srv_error *err);
int srv_layer_query(struct srv_cache *c, const msgpack_object *tmpl, const char *after,
                    size_t limit, bool detail, struct srv_page *page, struct srv_error *err);
int srv_layer_names(struct srv_cache *c, const char *after, size_t limit, struct srv_names *out,
                    struct srv_error *err);
int srv_layer_value_open(struct srv_cache *c, const char *key, size_t len, struct srv_value **out,
                         struct srv_error *err);
/* The stack c is (NULL when c is a single cache). */
const struct srv_stack *srv_cache_stack_of(const struct srv_cache *c);

#endif

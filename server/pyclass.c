/*
 * pyclass.c: recognises classes and functions in a pickle tree, by reference or
 * pickled by value by cloudpickle or dill (pyclass.h). Every part is checked for the
 * type it must have before it is used; a form that does not fit is not recognised
 * (the caller then shows the object as it is pickled); names a node's Python type for
 * messages.
 */
#include "pyclass.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

static const char *const cloudpickle_modules[] = {"cloudpickle.cloudpickle",
                                                  "cloudpickle.cloudpickle_fast"};

static bool is_cloudpickle(const struct pk_node *n, const char *name)
{
	for (size_t i = 0; i < sizeof(cloudpickle_modules) / sizeof(cloudpickle_modules[0]); i++)
		if (n->kind == PK_OBJECT && pk_is_class(n, cloudpickle_modules[i], name))
			return true;
	return false;
}

static bool is_dill(const struct pk_node *n, const char *name)
{
	return n->kind == PK_OBJECT && pk_is_class(n, "dill._dill", name);
}

static const struct pk_node *arg(const struct pk_node *n, size_t i)
{
	const struct pk_node *a = n->u.obj.args;
	return a && a->kind == PK_TUPLE && i < a->u.seq.n ? a->u.seq.items[i] : NULL;
}

static bool is_str(const struct pk_node *n)
{
	return n && n->kind == PK_STR;
}

static struct pk_str cstr(const char *s)
{
	struct pk_str r = {s, strlen(s), SIZE_MAX};
	return r;
}

/* A str entry of a dict node (NULL when absent or not a str). */
static const struct pk_node *dict_str(const struct pk_node *dict, const char *key)
{
	const struct pk_node *v = pk_dict_get(dict, key);
	return is_str(v) ? v : NULL;
}

/* The dicts of a (state, slotstate) pair or of a plain state dict: finds key in them. */
static const struct pk_node *state_get(const struct pk_node *state, const char *key)
{
	const struct pk_node *v;
	if (!state)
		return NULL;
	if (state->kind == PK_DICT)
		return pk_dict_get(state, key);
	if (state->kind != PK_TUPLE)
		return NULL;
	for (size_t i = 0; i < state->u.seq.n; i++)
		if (state->u.seq.items[i]->kind == PK_DICT &&
		    (v = pk_dict_get(state->u.seq.items[i], key)))
			return v;
	return NULL;
}

static bool is_names(const struct pk_node *n)
{
	if (!n || (n->kind != PK_TUPLE && n->kind != PK_LIST))
		return false;
	for (size_t i = 0; i < n->u.seq.n; i++)
		if (!is_str(n->u.seq.items[i]))
			return false;
	return true;
}

/* The kind of a class pickled by value, from its class dict (or its state). */
static void kind_from_dict(struct srv_pyclass *c, const struct pk_node *clsdict)
{
	const struct pk_node *fields;

	c->kind = SRV_PYCLASS_CLASS;
	if (state_get(clsdict, "__dataclass_fields__") || state_get(clsdict, "__attrs_attrs__")) {
		c->kind = SRV_PYCLASS_DATACLASS;
		return;
	}
	fields = state_get(clsdict, "_fields");
	if (is_names(fields) && srv_pyclass_has_base(c, "builtins", "tuple")) {
		c->kind = SRV_PYCLASS_NAMEDTUPLE;
		c->fields = fields;
	}
}

/* cloudpickle: _make_skeleton_class(type, name, bases, type_kwargs, tracker, extra) */
static bool cloudpickle_class(const struct pk_node *n, struct srv_pyclass *c)
{
	const struct pk_node *name = arg(n, 1), *kw = arg(n, 3), *mod;

	if (!is_str(name) || !kw || kw->kind != PK_DICT)
		return false;
	mod = dict_str(kw, "__module__");
	c->module = mod ? mod->u.str : cstr("__main__");
	c->qualname = name->u.str;
	c->bases = arg(n, 2);
	kind_from_dict(c, n->u.obj.state);
	return true;
}

/* cloudpickle: _make_skeleton_enum(bases, name, qualname, members, module, tracker, extra) */
static bool cloudpickle_enum(const struct pk_node *n, struct srv_pyclass *c)
{
	const struct pk_node *qual = arg(n, 2), *members = arg(n, 3), *mod = arg(n, 4);

	if (!is_str(qual) || !is_str(mod) || !members || members->kind != PK_DICT)
		return false;
	c->kind = SRV_PYCLASS_ENUM;
	c->module = mod->u.str;
	c->qualname = qual->u.str;
	c->members = members;
	c->bases = arg(n, 0);
	return true;
}

/*
 * A function pickled by value: cloudpickle's _make_function(code, globals, name,
 * argdefs, closure) and dill's _create_function(code, globals, name, ...), each with
 * a state that holds __qualname__ and __module__ (else the name argument, and the
 * module of the globals: their __name__, or dill's reference to __main__'s).
 */
static bool function(const struct pk_node *n, struct srv_pyclass *c)
{
	const struct pk_node *qual = state_get(n->u.obj.state, "__qualname__");
	const struct pk_node *mod = state_get(n->u.obj.state, "__module__");
	const struct pk_node *globals = arg(n, 1);

	if (!is_str(qual))
		qual = arg(n, 2);
	if (!is_str(qual))
		return false;
	if (!is_str(mod) && globals && globals->kind == PK_DICT)
		mod = dict_str(globals, "__name__");
	if (!is_str(mod) && globals && globals->kind == PK_GLOBAL &&
	    strcmp(globals->u.global.module, "builtins") == 0)
		c->module = cstr(globals->u.global.name); /* dill: c__builtin__\n__main__ */
	else
		c->module = is_str(mod) ? mod->u.str : cstr("__main__");
	c->kind = SRV_PYCLASS_FUNCTION;
	c->qualname = qual->u.str;
	return true;
}

/* dill: _create_type(metaclass, name, bases, class dict) */
static bool dill_class(const struct pk_node *n, struct srv_pyclass *c)
{
	const struct pk_node *meta = arg(n, 0), *name = arg(n, 1), *dict = arg(n, 3), *v;

	if (!is_str(name) || !dict || dict->kind != PK_DICT)
		return false;
	v = dict_str(dict, "__module__");
	c->module = v ? v->u.str : cstr("__main__");
	v = dict_str(dict, "__qualname__");
	c->qualname = v ? v->u.str : name->u.str;
	c->bases = arg(n, 2);
	if (meta && (pk_is_class(meta, "enum", "EnumMeta") || pk_is_class(meta, "enum", "EnumType")))
		c->kind = SRV_PYCLASS_ENUM;
	else
		kind_from_dict(c, dict);
	return true;
}

/* dill: _create_namedtuple(name, fieldnames, modulename, defaults) */
static bool dill_namedtuple(const struct pk_node *n, struct srv_pyclass *c)
{
	const struct pk_node *name = arg(n, 0), *fields = arg(n, 1), *mod = arg(n, 2);

	if (!is_str(name) || !is_names(fields) || !is_str(mod))
		return false;
	c->kind = SRV_PYCLASS_NAMEDTUPLE;
	c->module = mod->u.str;
	c->qualname = name->u.str;
	c->fields = fields;
	return true;
}

bool srv_pyclass_of(const struct pk_node *node, struct srv_pyclass *out)
{
	struct srv_pyclass c;
	bool ok;

	if (!node)
		return false;
	memset(&c, 0, sizeof(c));
	if (node->kind == PK_GLOBAL) {
		c.kind = SRV_PYCLASS_UNKNOWN;
		c.module = cstr(node->u.global.module);
		c.qualname = cstr(node->u.global.name);
		*out = c;
		return true;
	}
	if (node->kind != PK_OBJECT)
		return false;
	c.by_value = true;
	if (is_cloudpickle(node, "_make_skeleton_class"))
		ok = cloudpickle_class(node, &c);
	else if (is_cloudpickle(node, "_make_skeleton_enum"))
		ok = cloudpickle_enum(node, &c);
	else if (is_cloudpickle(node, "_make_function") || is_dill(node, "_create_function"))
		ok = function(node, &c);
	else if (is_dill(node, "_create_type"))
		ok = dill_class(node, &c);
	else if (is_dill(node, "_create_namedtuple"))
		ok = dill_namedtuple(node, &c);
	else
		ok = false;
	if (ok)
		*out = c;
	return ok;
}

bool srv_pyclass_has_base(const struct srv_pyclass *c, const char *module, const char *name)
{
	const struct pk_node *b = c->bases;

	if (!b || (b->kind != PK_TUPLE && b->kind != PK_LIST))
		return false;
	/* a base is compared by its name, never followed further */
	for (size_t i = 0; i < b->u.seq.n; i++)
		if (b->u.seq.items[i]->kind == PK_GLOBAL && pk_is_class(b->u.seq.items[i], module, name))
			return true;
	return false;
}

/* Equal str, int, float, bool or None nodes (the values enum members have). */
static bool same_scalar(const struct pk_node *a, const struct pk_node *b)
{
	if (a->kind != b->kind)
		return false;
	switch (a->kind) {
	case PK_NONE:
		return true;
	case PK_BOOL:
		return a->u.b == b->u.b;
	case PK_INT:
		return a->u.i == b->u.i;
	case PK_FLOAT:
		return a->u.f == b->u.f;
	case PK_STR:
	case PK_BIGINT:
		return a->u.str.len == b->u.str.len &&
		       memcmp(a->u.str.ptr, b->u.str.ptr, a->u.str.len) == 0;
	default:
		return false;
	}
}

bool srv_pyclass_enum_member(const struct pk_node *n, struct srv_pyclass *cls,
                             const struct pk_node **name, const struct pk_node **value)
{
	const struct pk_dict *m;

	if (!n || n->kind != PK_OBJECT)
		return false;
	*name = *value = NULL;
	if (pk_is_class(n, "builtins", "getattr") && arg(n, 1) && is_str(arg(n, 1)) &&
	    srv_pyclass_of(arg(n, 0), cls) &&
	    (cls->kind == SRV_PYCLASS_ENUM ||
	     (cls->kind == SRV_PYCLASS_UNKNOWN && arg(n, 1)->u.str.len > 0 &&
	      arg(n, 1)->u.str.ptr[0] != '_'))) {
		*name = arg(n, 1);
	} else if (srv_pyclass_of(n->u.obj.callable, cls) && cls->kind == SRV_PYCLASS_ENUM &&
	           arg(n, 0) && !arg(n, 1)) {
		*value = arg(n, 0);
	} else {
		return false;
	}
	if (!cls->members)
		return true;
	m = &cls->members->u.dict;
	for (size_t i = 0; i < m->n; i++) {
		const struct pk_node *k = m->keys[i];
		if (!is_str(k))
			continue;
		if (*name && !*value && k->u.str.len == (*name)->u.str.len &&
		    memcmp(k->u.str.ptr, (*name)->u.str.ptr, k->u.str.len) == 0)
			*value = m->values[i];
		else if (*value && !*name && same_scalar(m->values[i], *value))
			*name = k;
	}
	return true;
}

void srv_pyclass_type_name(const struct pk_node *n, char *out, size_t outlen)
{
	struct srv_pyclass c;

	if (n && n->kind == PK_OBJECT && !n->u.obj.cls.module[0] && !n->u.obj.cls.name[0] &&
	    srv_pyclass_of(n->u.obj.callable, &c)) {
		/* an instance of a class pickled by value */
		snprintf(out, outlen, "%.*s.%.*s", (int)c.module.len, c.module.ptr,
		         (int)c.qualname.len, c.qualname.ptr);
		return;
	}
	if (!n) {
		snprintf(out, outlen, "nothing");
	} else if (n->kind == PK_OBJECT && (n->u.obj.cls.module[0] || n->u.obj.cls.name[0])) {
		if (pk_is_class(n, "dill._dill", "_create_array") ||
		    pk_is_class(n, "numpy.core.numeric", "_frombuffer") ||
		    pk_is_class(n, "numpy._core.numeric", "_frombuffer") ||
		    pk_is_class(n, "numpy.core.multiarray", "_reconstruct") ||
		    pk_is_class(n, "numpy._core.multiarray", "_reconstruct"))
			snprintf(out, outlen, "numpy.ndarray");
		else if (pk_is_class(n, "fleche.storage.destructuring", "DigestedIterable"))
			snprintf(out, outlen, "list (destructured)");
		else if (pk_is_class(n, "fleche.storage.destructuring", "DigestedDict"))
			snprintf(out, outlen, "dict (destructured)");
		else
			snprintf(out, outlen, "%s.%s", n->u.obj.cls.module, n->u.obj.cls.name);
	} else {
		snprintf(out, outlen, "%s", pk_kind_name(n->kind));
	}
}

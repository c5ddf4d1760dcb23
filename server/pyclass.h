/*
 * pyclass.h: what a class or function found in a pickle tree (pickle.h) is, without
 * importing or running anything. A class or function is either named by reference
 * (a PK_GLOBAL: module and qualified name) or, for one defined in a script or a
 * notebook (__main__), pickled by value: cloudpickle rebuilds it with
 * cloudpickle.cloudpickle._make_skeleton_class / _make_skeleton_enum /
 * _make_function and fills it with _class_setstate / _function_setstate (which the
 * pickle reader keeps as the object's state), dill with dill._dill._create_type,
 * _create_function and _create_namedtuple.
 * A class pickled by value carries its class dict, so its kind can be told: a
 * dataclass (__dataclass_fields__), an attrs class (__attrs_attrs__), an enum, a
 * namedtuple (_fields). A class named by reference is of unknown kind.
 */
#ifndef FLECHEFS_SERVER_PYCLASS_H
#define FLECHEFS_SERVER_PYCLASS_H

#include <stdbool.h>
#include <stddef.h>

#include "pickle.h"

enum srv_pyclass_kind {
	SRV_PYCLASS_UNKNOWN,    /* a class or function named by reference */
	SRV_PYCLASS_CLASS,      /* a class pickled by value, none of the kinds below */
	SRV_PYCLASS_DATACLASS,  /* a dataclass or an attrs class */
	SRV_PYCLASS_ENUM,       /* a subclass of enum.Enum */
	SRV_PYCLASS_NAMEDTUPLE, /* a collections.namedtuple class */
	SRV_PYCLASS_FUNCTION,   /* a function pickled by value */
};

struct srv_pyclass {
	enum srv_pyclass_kind kind;
	bool by_value;
	struct pk_str module;   /* e.g. "__main__" */
	struct pk_str qualname; /* e.g. "Point", "Outer.Inner", "make.<locals>.f" */
	/* ENUM from cloudpickle: the dict of member name to value; else NULL */
	const struct pk_node *members;
	/* NAMEDTUPLE: the PK_TUPLE or PK_LIST of field names (str); else NULL */
	const struct pk_node *fields;
	/* the class's bases as pickled (a tuple), or NULL when not known */
	const struct pk_node *bases;
};

/*
 * When node is a class or function (named by reference, or pickled by value in one
 * of the forms above), fills *out (strings borrowed from the document) and returns
 * true; else false. A by-value class whose name or module is not a str is not
 * recognised.
 */
bool srv_pyclass_of(const struct pk_node *node, struct srv_pyclass *out);

/* A short name of the Python type of node for messages ("list", "numpy.ndarray"). */
void srv_pyclass_type_name(const struct pk_node *node, char *out, size_t outlen);

/* True when the class's bases (as pickled) include module.name. */
bool srv_pyclass_has_base(const struct srv_pyclass *c, const char *module, const char *name);

/*
 * When node is a member of an enum: getattr(cls, name), which is how pickle and
 * cloudpickle write a member (of a class named by reference, whose kind is unknown:
 * a class attribute written that way reads the same, unless its name starts with
 * '_', as private helpers' names do, e.g. zoneinfo.ZoneInfo._unpickle; a member so
 * named stays the getattr call), or cls(value) of an enum
 * class pickled by value. Fills *cls and sets *name and *value to the member's name
 * and value nodes, either NULL when the pickle does not say it (the value is known
 * only when the class, pickled by value, lists its members). Returns true; else
 * false.
 */
bool srv_pyclass_enum_member(const struct pk_node *node, struct srv_pyclass *cls,
                             const struct pk_node **name, const struct pk_node **value);

#endif

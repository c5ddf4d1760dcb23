/*
 * obj_same.h: bitwise equality of two msgpack trees for tests (floats compared by
 * their bits, so NaN equals NaN and 0.0 differs from -0.0), used to check that
 * rpc's decoder builds exactly the tree msgpack-c builds.
 */
#ifndef FLECHEFS_TESTS_OBJ_SAME_H
#define FLECHEFS_TESTS_OBJ_SAME_H

#include <string.h>

#include <msgpack.h>

static int obj_same(const msgpack_object *a, const msgpack_object *b)
{
	if (a->type != b->type)
		return 0;
	switch (a->type) {
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		return memcmp(&a->via.f64, &b->via.f64, sizeof(double)) == 0;
	case MSGPACK_OBJECT_ARRAY:
		if (a->via.array.size != b->via.array.size)
			return 0;
		for (uint32_t i = 0; i < a->via.array.size; i++)
			if (!obj_same(&a->via.array.ptr[i], &b->via.array.ptr[i]))
				return 0;
		return 1;
	case MSGPACK_OBJECT_MAP:
		if (a->via.map.size != b->via.map.size)
			return 0;
		for (uint32_t i = 0; i < a->via.map.size; i++)
			if (!obj_same(&a->via.map.ptr[i].key, &b->via.map.ptr[i].key) ||
			    !obj_same(&a->via.map.ptr[i].val, &b->via.map.ptr[i].val))
				return 0;
		return 1;
	default:
		return msgpack_object_equal(*a, *b);
	}
}

#endif

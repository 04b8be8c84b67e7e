/*
 * fastcheck.h - Check's assertion macros without the per-assertion mark
 * point: Check records every passing assertion with a write to its
 * message file, which makes assertions inside loops of millions of
 * operations dominate a test's run time.  These report the same way on
 * failure and cost a comparison on success.
 */
#ifndef FASTCHECK_H
#define FASTCHECK_H

#include <check.h>
#include <inttypes.h>
#include <stdint.h>

#define FC_CMP(X, OP, Y, T, FMT) do { \
	T fc_x = (T)(X); \
	T fc_y = (T)(Y); \
	if (!(fc_x OP fc_y)) \
		ck_abort_msg("Assertion '%s %s %s' failed: %s == %" FMT ", %s == %" FMT, \
			     #X, #OP, #Y, #X, fc_x, #Y, fc_y); \
} while (0)

#undef ck_assert
#undef ck_assert_msg
#undef ck_assert_int_eq
#undef ck_assert_int_ne
#undef ck_assert_int_lt
#undef ck_assert_int_le
#undef ck_assert_int_gt
#undef ck_assert_int_ge
#undef ck_assert_uint_eq
#undef ck_assert_uint_ne
#undef ck_assert_uint_lt
#undef ck_assert_uint_le
#undef ck_assert_uint_gt
#undef ck_assert_uint_ge
#undef ck_assert_ptr_eq
#undef ck_assert_ptr_ne
#undef ck_assert_ptr_null
#undef ck_assert_ptr_nonnull

#define ck_assert(C) do { if (!(C)) ck_abort_msg("Assertion '%s' failed", #C); } while (0)
#define ck_assert_msg(C, ...) do { if (!(C)) ck_abort_msg(__VA_ARGS__); } while (0)
#define ck_assert_int_eq(X, Y) FC_CMP(X, ==, Y, intmax_t, PRIdMAX)
#define ck_assert_int_ne(X, Y) FC_CMP(X, !=, Y, intmax_t, PRIdMAX)
#define ck_assert_int_lt(X, Y) FC_CMP(X, <, Y, intmax_t, PRIdMAX)
#define ck_assert_int_le(X, Y) FC_CMP(X, <=, Y, intmax_t, PRIdMAX)
#define ck_assert_int_gt(X, Y) FC_CMP(X, >, Y, intmax_t, PRIdMAX)
#define ck_assert_int_ge(X, Y) FC_CMP(X, >=, Y, intmax_t, PRIdMAX)
#define ck_assert_uint_eq(X, Y) FC_CMP(X, ==, Y, uintmax_t, PRIuMAX)
#define ck_assert_uint_ne(X, Y) FC_CMP(X, !=, Y, uintmax_t, PRIuMAX)
#define ck_assert_uint_lt(X, Y) FC_CMP(X, <, Y, uintmax_t, PRIuMAX)
#define ck_assert_uint_le(X, Y) FC_CMP(X, <=, Y, uintmax_t, PRIuMAX)
#define ck_assert_uint_gt(X, Y) FC_CMP(X, >, Y, uintmax_t, PRIuMAX)
#define ck_assert_uint_ge(X, Y) FC_CMP(X, >=, Y, uintmax_t, PRIuMAX)
#define ck_assert_ptr_eq(X, Y) FC_CMP(X, ==, Y, const void *, "p")
#define ck_assert_ptr_ne(X, Y) FC_CMP(X, !=, Y, const void *, "p")
#define ck_assert_ptr_null(X) ck_assert_ptr_eq(X, NULL)
#define ck_assert_ptr_nonnull(X) ck_assert_ptr_ne(X, NULL)

#endif /* FASTCHECK_H */

/*
 * mbt_check.h - running a Check suite the way every unit-test program of
 * the project does: each test in its own process, exit status 0 if all
 * passed.
 */
#ifndef MBT_CHECK_H
#define MBT_CHECK_H

#include <check.h>
#include <stdlib.h>

static inline int mbt_run_suite(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

#endif /* MBT_CHECK_H */

/*
 * gm_secure.c - linked with libgmalloc and libanrmalloc (no preload: the
 * loader ignores LD_PRELOAD in setuid programs).  Prints the budget
 * gmalloc chose and the anr_malloc keys the environment set, so that the
 * setuid test sees whether GMALLOC_* and ANRMALLOC_* were obeyed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/auxv.h>

#include "anrmalloc/anrmalloc.h"
#include "gmalloc/gmalloc.h"

int main(void)
{
	struct anr_malloc_config c;
	size_t budget = 0;
	void *p = calloc(1, 100);

	if (p == NULL || !gmalloc_owns(p))
		return 2;
	free(p);
	gmalloc_stats(NULL, NULL, &budget, NULL);
	anr_config_init(&c);
	anr_config_env(&c, NULL);
	printf("secure %lu budget %zu stack_depth %llu\n", getauxval(AT_SECURE),
	       budget, (unsigned long long)c.stack_depth);
	return 0;
}

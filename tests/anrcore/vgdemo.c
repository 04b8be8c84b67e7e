/*
 * A program that misuses blocks of an anrcore heap on purpose, run under
 * valgrind by anrcore_valgrind.sh: memcheck must see the blocks as it sees
 * glibc's (an overrun, a use after free, a leak), and with "clean" it must
 * see nothing wrong.
 */
#include "config.h"

#include "anrcore.h"

#include <stdio.h>
#include <string.h>

#define LEAKED 200

int
main(int argc, char **argv)
{
	struct anrc_config c = { .reserve = (size_t)1 << 30, .valgrind = 1 };
	struct anrc_heap *h = anrc_create(&c);
	volatile char *p, *q;
	int clean = argc > 1 && strcmp(argv[1], "clean") == 0;

	if (argc > 1 && strcmp(argv[1], "probe") == 0) {
		/* valgrind cannot run a sanitized program */
#if defined(__SANITIZE_ADDRESS__)
		return 77;
#else
		return 0;
#endif
	}
	if (h == NULL)
		return 2;
	p = anrc_alloc(h, 100, 0);
	q = anrc_alloc(h, 3 << 20, 0);
	memset((char *)p, 1, 100);
	memset((char *)q, 1, 3 << 20);
	if (!clean) {
		p[100] = 1;                    /* one past the end */
		anrc_free(h, (char *)q);
		printf("%d\n", q[10]);          /* read after free */
		p = anrc_alloc(h, LEAKED, 0);    /* lost */
		p[0] = 0;
		return 0;
	}
	q = anrc_realloc(h, (char *)q, 5 << 20, 0);
	printf("%d\n", q[(3 << 20) - 1]);
	anrc_free(h, (char *)q);
	anrc_free(h, (char *)p);
	anrc_destroy(h);
	return 0;
}

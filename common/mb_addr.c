/*
 * mb_addr.c - the address space a heap may reserve under RLIMIT_AS (the
 * rule is in mb_addr.h).  open/read only: runs inside the first malloc.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "mb_addr.h"
#include "mb_log.h"
#include "mb_size.h"

#define STATM_MAX 128

uint64_t mb_addr_fit(uint64_t want, uint64_t rlimit, uint64_t mapped)
{
	uint64_t room, keep, fit;

	if (rlimit == 0)
		return want;
	room = rlimit > mapped ? rlimit - mapped : 0;
	keep = room / MB_ADDR_KEEP_SHARE;
	if (keep < MB_ADDR_KEEP_MIN)
		keep = room / 2 < MB_ADDR_KEEP_MIN ? room / 2 : MB_ADDR_KEEP_MIN;
	fit = room - keep;
	return want < fit ? want : fit;
}

/* The first field of /proc/self/statm: pages mapped. */
static uint64_t mapped_bytes(void)
{
	char buf[STATM_MAX];
	uint64_t pages = 0;
	ssize_t n;
	int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return 0;
	do
		n = read(fd, buf, sizeof(buf) - 1);
	while (n < 0 && errno == EINTR);
	close(fd);
	if (n <= 0)
		return 0;
	for (ssize_t i = 0; i < n && buf[i] >= '0' && buf[i] <= '9'; i++)
		pages = pages * 10 + (uint64_t)(buf[i] - '0');
	return pages * (uint64_t)sysconf(_SC_PAGESIZE);
}

uint64_t mb_addr_limit(uint64_t *mapped)
{
	struct rlimit rl;

	*mapped = 0;
	if (getrlimit(RLIMIT_AS, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
		return 0;
	*mapped = mapped_bytes();
	/* A limit of 0 would read as "none": keep it at one byte. */
	return rl.rlim_cur != 0 ? (uint64_t)rl.rlim_cur : 1;
}

uint64_t mb_addr_reserve(uint64_t want, const char *who)
{
	uint64_t mapped, rlimit = mb_addr_limit(&mapped);
	uint64_t fit = mb_addr_fit(want, rlimit, mapped);
	char w[32], f[32], rl[32], m[32];

	if (fit >= want)
		return want;
	mb_format_size(w, sizeof(w), want);
	mb_format_size(f, sizeof(f), fit);
	mb_format_size(rl, sizeof(rl), rlimit);
	mb_format_size(m, sizeof(m), mapped);
	mb_log(MB_LOG_WARNING, "%s: reservation cut from %s to %s: the address-space "
	       "limit (RLIMIT_AS, ulimit -v) is %s and %s is mapped already; the "
	       "rest is left to the program's other mappings", who, w, f, rl, m);
	return fit;
}

uint64_t mb_addr_ram(void)
{
	struct sysinfo si;

	if (sysinfo(&si) != 0)
		return 0;
	return (uint64_t)si.totalram * si.mem_unit;
}

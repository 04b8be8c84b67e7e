/*
 * mb_addr.h - how much address space a heap reserves when the process has
 * an address-space limit (RLIMIT_AS, `ulimit -v`), and how much memory the
 * machine has.  No heap, no stdio: usable inside malloc.
 *
 * The rule, the same for gmalloc and anr_malloc: of the room the limit
 * leaves (RLIMIT_AS minus what the process has mapped already), a heap
 * leaves an eighth, and at least MB_ADDR_KEEP_MIN (half the room when the
 * room is smaller than twice that), to the program's other mappings:
 * thread stacks, libraries loaded later, mapped files, an interpreter's
 * own arenas.
 */
#ifndef MB_ADDR_H
#define MB_ADDR_H

#include <stdint.h>

#define MB_ADDR_KEEP_SHARE 8
#define MB_ADDR_KEEP_MIN ((uint64_t)64 << 20)

/* The reservation the rule allows for a heap that wants `want` bytes, with
 * rlimit bytes of address space allowed in all and `mapped` bytes mapped
 * already; rlimit 0 means no limit (want is returned). */
uint64_t mb_addr_fit(uint64_t want, uint64_t rlimit, uint64_t mapped);

/* RLIMIT_AS (soft) in bytes, 0 if unlimited; *mapped: the process's
 * mapped bytes (VmSize, from /proc/self/statm; 0 if unreadable). */
uint64_t mb_addr_limit(uint64_t *mapped);

/* want, cut by the rule to what this process's RLIMIT_AS leaves; when
 * cut, one warning through mb_log names who (a heap) and the figures. */
uint64_t mb_addr_reserve(uint64_t want, const char *who);

/* Physical memory of the machine in bytes (sysinfo), 0 if unknown. */
uint64_t mb_addr_ram(void);

#endif /* MB_ADDR_H */

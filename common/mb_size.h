/*
 * mb_size.h - parsing of amounts, numbers, booleans and durations as they
 * appear in config files, the environment and command lines.  No heap, no
 * stdio: usable inside malloc.
 *
 * Amounts (bytes):
 *   "4096"             bytes
 *   "512K" "512M" "2G" "1T"   binary units (K = 1024); "KB", "KiB", "k"
 *                      and lower case are accepted too
 *   "64p"              pages of the running system
 *   "80%"              percent of a base (MemTotal for the broker and
 *                      gmalloc); fractions allowed: "12.5%"
 *   "all-except 64M"   the base minus an amount (an error if it exceeds it)
 * Every multiplication is checked: an amount that does not fit in 64 bits is
 * -ERANGE, text that is not an amount is -EINVAL.
 */
#ifndef MB_SIZE_H
#define MB_SIZE_H

#include <stddef.h>
#include <stdint.h>

/* base: what "N%" and "all-except N" refer to; 0 makes them -EINVAL. */
int mb_parse_size(const char *s, uint64_t base, uint64_t *out);
/* Whether s is one of those relative forms: only then is a base needed. */
int mb_size_relative(const char *s);
/* A percent with at most two decimals, "90%", "12.5%", "110.25%" (above
 * 100 allowed), in hundredths of a percent: 9000, 1250, 11025. */
int mb_parse_hundredths(const char *s, uint64_t *out);
/* Plain unsigned decimal (or 0x hex), no sign, no trailing garbage. */
int mb_parse_u64(const char *s, uint64_t *out);
/* yes/no, true/false, on/off, 1/0. */
int mb_parse_bool(const char *s, int *out);
/* Milliseconds: "250ms", "2s", "1m", "1h"; a plain number is ms. */
int mb_parse_duration_ms(const char *s, uint64_t *out);
/* Octal file mode such as "0660". */
int mb_parse_mode(const char *s, unsigned *out);

/* MemTotal from /proc/meminfo in bytes, 0 if it cannot be read.  The path
 * can be overridden (tests use a fixture); NULL means /proc/meminfo. */
uint64_t mb_meminfo_total(const char *path);
/* Any "Key:   N kB" field of a meminfo-format file, in bytes; 0 if absent. */
/* The same from text already read (meminfo, smaps_rollup, memory.stat):
 * 0, -ENOENT when the key is absent, -EINVAL or -ERANGE for a bad value. */
int mb_meminfo_text(const char *text, const char *key, uint64_t *bytes);
uint64_t mb_meminfo_field(const char *path, const char *key);

/* Human-readable amount: "512.0 MiB", "4096 B". */
size_t mb_format_size(char *buf, size_t cap, uint64_t bytes);

#endif /* MB_SIZE_H */

/*
 * gmalloc.c - the malloc family of libgmalloc.so.
 *
 * Every entry point a program or libc may reach is defined here, so that
 * no block of the program is ever made or freed by glibc's allocator:
 * a pointer we did not hand out goes to the bad-free handling, never to
 * glibc.  The glibc names (__libc_malloc ...) are aliases of ours.
 *
 * Results are at least 16-byte aligned.  Size arithmetic is checked:
 * calloc, reallocarray and pvalloc overflow to NULL with ENOMEM.
 */
#include "config.h"

#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gm_internal.h"
#include "gmalloc.h"
#include "mb_log.h"
#include "theap_fast.h"

/* Where the program called us from: the first frame of a block's stack. */
#define GM_CALLER() __builtin_extract_return_addr(__builtin_return_address(0))

/* mallopt() parameters glibc defines; all are accepted. */
#ifndef M_MXFAST
#define M_MXFAST 1
#endif
#ifndef M_TRIM_THRESHOLD
#define M_TRIM_THRESHOLD -1
#endif
#ifndef M_ARENA_MAX
#define M_ARENA_MAX -8
#endif
#define GM_MALLOPT_MIN M_ARENA_MAX

static int is_pow2(size_t v)
{
	return v != 0 && (v & (v - 1)) == 0;
}

static size_t gm_pagesize(void)
{
	static size_t page;
	if (page == 0)
		page = (size_t)sysconf(_SC_PAGESIZE);
	return page;
}

/* Allocate with the given alignment (0 or <= ANR_ALIGN: the default). */
static void *gm_alloc(size_t align, size_t size, unsigned flags, const void *caller)
{
	struct anrc_heap *h = gm_heap();
	if (__builtin_expect(h == NULL, 0)) {
		if (gm_init_failed()) {
			errno = ENOMEM;
			return NULL;
		}
		return gm_boot_alloc(align, size);
	}
	size_t req = size;
	if (gm_trailer_size) {
		if (size > SIZE_MAX - gm_trailer_size) {
			errno = ENOMEM;
			return NULL;
		}
		req = size + gm_trailer_size;
		flags |= ANR_USABLE;
	}
	void *p;
	if (align <= ANR_ALIGN)
		p = anrc_alloc(h, req, flags);
	else
		p = anrc_alloc_aligned(h, align, req, flags);
	if (__builtin_expect(p == NULL, 0)) {
		gm_out_of_memory(size);
		return NULL;
	}
	if (gm_trailer_size)
		gm_trailer_set(p, size, anrc_usable_size(h, p), caller);
	return p;
}

/* A pointer seen before the heap exists cannot be ours. */
static void gm_early_bad_free(void *p)
{
	if (gm_cfg.bad_free == ANR_BAD_FREE_IGNORE)
		return;
	mb_log(MB_LOG_ERR, "free of %p: not allocated by gmalloc", p);
	if (gm_cfg.bad_free == ANR_BAD_FREE_ABORT)
		abort();
}

/* Requested size of a live block of ours (guard-aware), 0 if not ours. */
static size_t gm_size_of(struct anrc_heap *h, void *p)
{
	size_t usable = anrc_usable_size(h, p);
	if (usable && gm_trailer_size)
		return gm_trailer_check(p, usable);
	return usable;
}

/*
 * malloc and free first try the core's inlined fast paths (small objects
 * of the calling thread's theap), when the heap is ready in plain mode:
 * one load of gm_fast_heap decides; then, out of line, the thread's next
 * bitmap word or slab for a small object and its kept runs for a medium
 * block.  Everything else takes the full path.
 */
ANRC_HOT static __attribute__((noinline)) void *gm_malloc(size_t size, const void *caller)
{
	struct anrc_heap *h = __atomic_load_n(&gm_fast_heap, __ATOMIC_ACQUIRE);
	/* A small object from the next word or slab of the thread's own, or
	 * a medium block from its kept runs: one call either way. */
	if (h != NULL) {
		void *p = size > ANR_SLAB_MAX ? anrc_alloc_medium(h, size) : anrc_alloc_small(h, size);
		if (p != NULL)
			return p;
	}
	return gm_alloc(0, size, 0, caller);
}

ANRC_HOT GM_API void *malloc(size_t size)
{
	struct anrc_heap *h = __atomic_load_n(&gm_fast_heap, __ATOMIC_ACQUIRE);
	if (__builtin_expect(h != NULL, 1)) {
		void *p = anrc_alloc_fast(h, size);
		if (__builtin_expect(p != NULL, 1))
			return p;
	}
	return gm_malloc(size, GM_CALLER());
}

static __attribute__((noinline)) void gm_free(void *p);

/*
 * A free the fast path does gives no page back (the slab stays the
 * thread's), so it cannot make quota surplus: the broker is looked at on
 * the full path, which every other free takes.
 */
ANRC_HOT GM_API void free(void *p)
{
	struct anrc_heap *h = __atomic_load_n(&gm_fast_heap, __ATOMIC_ACQUIRE);
	if (__builtin_expect(h != NULL, 1) && __builtin_expect(anrc_free_fast(h, p), 1))
		return;
	gm_free(p);
}

ANRC_HOT static void gm_free(void *p)
{
	struct anrc_heap *fh = __atomic_load_n(&gm_fast_heap, __ATOMIC_ACQUIRE);
	/* A small object the inlined path declined (its free empties its
	 * slab, or it is another thread's) or a medium block whose run the
	 * thread keeps: one call.  1: kept, no page back; 2: pages may have
	 * gone back, the broker next. */
	if (fh != NULL) {
		int done = anrc_free_short(fh, p);
		if (done == 1)
			return;
		if (done == 2) {
			if (gm_broker_open())
				gm_broker_note_free();
			return;
		}
	}
	if (!p || gm_boot_owns(p))
		return;
	struct anrc_heap *h = gm_heap();
	if (!h) {
		gm_early_bad_free(p);
		return;
	}
	if (gm_trailer_size)
		(void)gm_size_of(h, p); /* checks the trailer */
	anrc_free(h, p);
	if (gm_broker_open())
		gm_broker_note_free();
}

GM_API void *calloc(size_t n, size_t size)
{
	size_t total;
	if (__builtin_mul_overflow(n, size, &total)) {
		errno = ENOMEM;
		return NULL;
	}
	return gm_alloc(0, total, ANR_ZERO, GM_CALLER());
}

/* Move a block to a new one of `size` bytes: boot blocks, trailers. */
static void *gm_move(void *p, size_t old, size_t size, const void *caller)
{
	void *q = gm_alloc(0, size, 0, caller);
	if (!q)
		return NULL;
	memcpy(q, p, old < size ? old : size);
	free(p);
	return q;
}

static void *gm_realloc(void *p, size_t size, const void *caller)
{
	if (!p)
		return gm_alloc(0, size, 0, caller);
	if (gm_boot_owns(p)) {
		if (size == 0)
			return NULL;
		return gm_move(p, gm_boot_size(p), size, caller);
	}
	struct anrc_heap *h = gm_heap();
	if (!h) {
		gm_early_bad_free(p);
		errno = ENOMEM;
		return NULL;
	}
	if (gm_trailer_size) {
		size_t old = gm_size_of(h, p);
		if (size == 0 || old == 0) {
			free(p);
			return NULL;
		}
		return gm_move(p, old, size, caller);
	}
	void *q = anrc_realloc(h, p, size, 0);
	if (!q && size != 0 && anrc_usable_size(h, p) != 0)
		gm_out_of_memory(size);
	return q;
}

GM_API void *realloc(void *p, size_t size)
{
	return gm_realloc(p, size, GM_CALLER());
}

GM_API void *reallocarray(void *p, size_t n, size_t size)
{
	size_t total;
	if (__builtin_mul_overflow(n, size, &total)) {
		errno = ENOMEM;
		return NULL;
	}
	return gm_realloc(p, total, GM_CALLER());
}

GM_API int posix_memalign(void **out, size_t align, size_t size)
{
	if (!is_pow2(align) || align % sizeof(void *) != 0)
		return EINVAL;
	int saved = errno;
	void *p = gm_alloc(align, size, 0, GM_CALLER());
	if (!p) {
		errno = saved;
		return ENOMEM;
	}
	*out = p;
	return 0;
}

GM_API void *aligned_alloc(size_t align, size_t size)
{
	if (!is_pow2(align)) {
		errno = EINVAL;
		return NULL;
	}
	return gm_alloc(align, size, 0, GM_CALLER());
}

/* glibc's memalign: a non-power of two is rounded up to one. */
GM_API void *memalign(size_t align, size_t size)
{
	if (align > SIZE_MAX / 2 + 1) {
		errno = EINVAL;
		return NULL;
	}
	if (align && !is_pow2(align))
		align = (size_t)1 << (64 - __builtin_clzl(align));
	return gm_alloc(align, size, 0, GM_CALLER());
}

GM_API void *valloc(size_t size)
{
	return gm_alloc(gm_pagesize(), size, 0, GM_CALLER());
}

GM_API void *pvalloc(size_t size)
{
	size_t page = gm_pagesize();
	if (size > SIZE_MAX - (page - 1)) {
		errno = ENOMEM;
		return NULL;
	}
	size = (size + page - 1) & ~(page - 1);
	return gm_alloc(page, size ? size : page, 0, GM_CALLER());
}

GM_API size_t malloc_usable_size(void *p)
{
	if (!p)
		return 0;
	if (gm_boot_owns(p))
		return gm_boot_size(p);
	struct anrc_heap *h = gm_heap();
	if (!h)
		return 0;
	return gm_size_of(h, p);
}

GM_API int malloc_trim(size_t pad)
{
	struct anrc_heap *h = gm_heap();
	if (!h)
		return 0;
	size_t given = anrc_trim(h, pad);
	given += gm_broker_release(1);
	return given != 0;
}

GM_API struct mallinfo2 mallinfo2(void)
{
	struct mallinfo2 mi;
	struct anrc_stats st;
	memset(&mi, 0, sizeof(mi));
	struct anrc_heap *h = gm_heap();
	if (!h)
		return mi;
	anrc_get_stats(h, &st);
	mi.arena = st.resident;
	mi.ordblks = 1;
	mi.uordblks = st.in_use;
	mi.fordblks = st.free_resident;
	mi.keepcost = st.free_resident;
	return mi;
}

static int sat_int(size_t v)
{
	return v > (size_t)INT32_MAX ? INT32_MAX : (int)v;
}

/* The int fields of mallinfo saturate instead of wrapping. */
GM_API struct mallinfo mallinfo(void)
{
	struct mallinfo2 m2 = mallinfo2();
	struct mallinfo mi;
	memset(&mi, 0, sizeof(mi));
	mi.arena = sat_int(m2.arena);
	mi.ordblks = sat_int(m2.ordblks);
	mi.uordblks = sat_int(m2.uordblks);
	mi.fordblks = sat_int(m2.fordblks);
	mi.keepcost = sat_int(m2.keepcost);
	return mi;
}

/*
 * Every glibc parameter is accepted (returns 1) so programs tuning glibc
 * keep working; M_TRIM_THRESHOLD sets the free_high mark, the others have
 * no meaning here.  Unknown parameters return 0 as in glibc.
 */
GM_API int mallopt(int param, int value)
{
	if (param == M_TRIM_THRESHOLD) {
		struct anrc_heap *h = gm_heap();
		if (!h || value < 0)
			return h != NULL;
		gm_cfg.free_high = (uint64_t)value;
		if (gm_cfg.free_low > gm_cfg.free_high)
			gm_cfg.free_low = gm_cfg.free_high;
		anrc_set_marks(h, gm_cfg.free_low, gm_cfg.free_high);
		return 1;
	}
	return param == M_MXFAST || (param < 0 && param >= GM_MALLOPT_MIN);
}

GM_API void malloc_stats(void)
{
	(void)gm_heap();
	gm_report_fd(STDERR_FILENO);
}

/* The same figures as glibc's XML, with one heap and no mmapped blocks. */
GM_API int malloc_info(int options, FILE *fp)
{
	char buf[1024];
	struct anrc_stats st;
	if (options != 0) {
		errno = EINVAL;
		return -1;
	}
	struct anrc_heap *h = gm_heap();
	memset(&st, 0, sizeof(st));
	if (h)
		anrc_get_stats(h, &st);
	mb_format(buf, sizeof(buf),
		  "<malloc version=\"1\">\n<heap nr=\"0\">\n<sizes>\n</sizes>\n"
		  "<total type=\"fast\" count=\"0\" size=\"0\"/>\n"
		  "<total type=\"rest\" count=\"1\" size=\"%zu\"/>\n"
		  "<system type=\"current\" size=\"%zu\"/>\n"
		  "<system type=\"max\" size=\"%zu\"/>\n"
		  "<aspace type=\"total\" size=\"%zu\"/>\n"
		  "<aspace type=\"mprotect\" size=\"%zu\"/>\n</heap>\n"
		  "<total type=\"fast\" count=\"0\" size=\"0\"/>\n"
		  "<total type=\"rest\" count=\"1\" size=\"%zu\"/>\n"
		  "<total type=\"mmap\" count=\"0\" size=\"0\"/>\n"
		  "<system type=\"current\" size=\"%zu\"/>\n"
		  "<system type=\"max\" size=\"%zu\"/>\n"
		  "<aspace type=\"total\" size=\"%zu\"/>\n"
		  "<aspace type=\"mprotect\" size=\"%zu\"/>\n</malloc>\n",
		  st.free_resident, st.resident, st.peak_resident, st.address_used,
		  st.address_used, st.free_resident, st.resident, st.peak_resident,
		  st.address_used, st.address_used);
	return fputs(buf, fp) < 0 ? -1 : 0;
}

/* Removed from glibc's API but still exported for old binaries. */
GM_API void cfree(void *p);
void cfree(void *p)
{
	free(p);
}

GM_API void gmalloc_report(int fd)
{
	(void)gm_heap();
	gm_report_fd(fd);
}

GM_API int gmalloc_owns(const void *p)
{
	if (gm_boot_owns(p))
		return 1;
	struct anrc_heap *h = gm_heap();
	return h && anrc_owns(h, p);
}

GM_API void gmalloc_stats(size_t *in_use, size_t *resident, size_t *budget,
			  size_t *quota_held)
{
	struct anrc_stats st;
	memset(&st, 0, sizeof(st));
	struct anrc_heap *h = gm_heap();
	if (h)
		anrc_get_stats(h, &st);
	if (in_use)
		*in_use = st.in_use;
	if (resident)
		*resident = st.resident;
	if (budget)
		*budget = st.budget;
	if (quota_held)
		*quota_held = (size_t)gm_broker_held();
}

/* glibc's own names for the family, reached by some programs directly. */
#if defined(__has_attribute) && __has_attribute(copy)
#define GM_ALIAS(name, target) \
	__attribute__((alias(#target), copy(target), visibility("default")))
#else
#define GM_ALIAS(name, target) __attribute__((alias(#target), visibility("default")))
#endif
void *__libc_malloc(size_t size) GM_ALIAS(__libc_malloc, malloc);
void __libc_free(void *p) GM_ALIAS(__libc_free, free);
void *__libc_calloc(size_t n, size_t size) GM_ALIAS(__libc_calloc, calloc);
void *__libc_realloc(void *p, size_t size) GM_ALIAS(__libc_realloc, realloc);
void *__libc_memalign(size_t align, size_t size) GM_ALIAS(__libc_memalign, memalign);
void *__libc_valloc(size_t size) GM_ALIAS(__libc_valloc, valloc);
void *__libc_pvalloc(size_t size) GM_ALIAS(__libc_pvalloc, pvalloc);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
struct mallinfo __libc_mallinfo(void) GM_ALIAS(__libc_mallinfo, mallinfo);
#pragma GCC diagnostic pop
int __libc_mallopt(int param, int value) GM_ALIAS(__libc_mallopt, mallopt);

/*
 * gm_init.c - first-use initialisation of libgmalloc.
 *
 * Any entry point may be the first call, from any thread, before libc has
 * finished its own start-up.  Exactly one thread wins the state change
 * UNINIT -> BUSY and builds the heap; other threads wait for READY.  If
 * the initialising thread calls malloc again on the way (libc, the
 * dynamic loader or a library it calls), that call is served from a small
 * static bootstrap arena: the heap is not there yet and waiting for
 * ourselves would deadlock.  Bootstrap blocks are never reused; free()
 * ignores them and realloc() moves them to the heap.
 *
 * Nothing here allocates: the config parser and the logger work on the
 * stack, the heap comes from one mmap in anrc_create(), and anything that
 * may allocate (pthread_atfork, signal handler setup is fine anyway) runs
 * after the state is READY.
 */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "gm_internal.h"
#include "mb_addr.h"
#include "mb_log.h"
#include "mb_thread.h"

enum gm_state { GM_UNINIT = 0, GM_BUSY = 1, GM_READY = 2, GM_FAILED = 3 };

#define GM_BOOT_SIZE (256 * 1024)
#define GM_BOOT_HDR 16          /* size word, kept 16-byte aligned */
#define GM_BOOT_MAX_ALIGN 4096
/* If the reservation is still refused (a small VM), try smaller ones down
 * to this before giving up. */
#define GM_MIN_RESERVE ((uint64_t)64 << 20)
/* reserve = 0: GM_RESERVE_PER_RAM times the machine's memory, within
 * these bounds (and at least the limit). */
#define GM_RESERVE_PER_RAM 8
#define GM_AUTO_RESERVE_MIN ((uint64_t)1 << 30)
#define GM_AUTO_RESERVE_MAX ((uint64_t)32 << 30)
#define GM_ENV_MAX_VARS 64
#define GM_ENV_BUF 8192
#define GM_ENV_VAR_MAX 1024

struct gm_config gm_cfg;
struct anrc_heap *gm_heap_ptr;
struct anrc_heap *gm_fast_heap;

static _Atomic int gm_state;
/* Many programs close stderr on their way out (coreutils' close_stdout);
 * the report at exit goes to a copy taken at init. */
#define GM_REPORT_FD_MIN 100
static int gm_exit_fd = -1;
static _Atomic pid_t gm_init_tid;

static _Alignas(GM_BOOT_MAX_ALIGN) unsigned char gm_boot[GM_BOOT_SIZE];
static _Atomic size_t gm_boot_used;

void *gm_boot_alloc(size_t align, size_t size)
{
	if (align < GM_BOOT_HDR)
		align = GM_BOOT_HDR;
	if (align > GM_BOOT_MAX_ALIGN || size > GM_BOOT_SIZE) {
		errno = ENOMEM;
		return NULL;
	}
	size_t need = (size + GM_BOOT_HDR - 1) & ~(size_t)(GM_BOOT_HDR - 1);
	size_t old = atomic_load(&gm_boot_used);
	size_t start;
	do {
		start = (old + GM_BOOT_HDR + align - 1) & ~(align - 1);
		if (start + need > GM_BOOT_SIZE) {
			errno = ENOMEM;
			return NULL;
		}
	} while (!atomic_compare_exchange_weak(&gm_boot_used, &old, start + need));
	unsigned char *p = gm_boot + start;
	memcpy(p - GM_BOOT_HDR, &size, sizeof(size));
	/* The arena is zero-initialised and never reused: calloc is free. */
	return p;
}

int gm_boot_owns(const void *p)
{
	const unsigned char *c = p;
	return c >= gm_boot && c < gm_boot + GM_BOOT_SIZE;
}

size_t gm_boot_size(const void *p)
{
	size_t size;
	memcpy(&size, (const unsigned char *)p - GM_BOOT_HDR, sizeof(size));
	return size;
}

static pid_t gm_gettid(void)
{
	return (pid_t)syscall(SYS_gettid);
}

/*
 * libc publishes environ early, but a preloaded allocator can be called
 * before that; then only our own variables are fetched from
 * /proc/self/environ into static storage.
 */
static char gm_env_buf[GM_ENV_BUF];
static char *gm_env_vars[GM_ENV_MAX_VARS + 1];

static int env_wanted(const char *var, size_t len)
{
	static const char *const prefixes[] = { "GMALLOC_", "MEMBROKER_", NULL };
	for (int i = 0; prefixes[i]; i++) {
		size_t n = strlen(prefixes[i]);
		if (len >= n && memcmp(var, prefixes[i], n) == 0)
			return 1;
	}
	return 0;
}

static char **gm_env_from_proc(void)
{
	char chunk[512], var[GM_ENV_VAR_MAX];
	size_t vlen = 0, used = 0;
	int nvars = 0, overlong = 0;
	int fd = open("/proc/self/environ", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		for (ssize_t i = 0; i < n; i++) {
			if (chunk[i] != '\0') {
				if (vlen < sizeof(var) - 1)
					var[vlen++] = chunk[i];
				else
					overlong = 1;
				continue;
			}
			if (!overlong && env_wanted(var, vlen) && nvars < GM_ENV_MAX_VARS &&
			    used + vlen + 1 <= sizeof(gm_env_buf)) {
				memcpy(gm_env_buf + used, var, vlen);
				gm_env_buf[used + vlen] = '\0';
				gm_env_vars[nvars++] = gm_env_buf + used;
				used += vlen + 1;
			}
			vlen = 0;
			overlong = 0;
		}
	}
	close(fd);
	gm_env_vars[nvars] = NULL;
	return gm_env_vars;
}

static char **gm_environ(void)
{
	extern char **environ;
	return environ ? environ : gm_env_from_proc();
}

/* page_return_thread (below): libc's pthread_create, and whether the
 * thread was made in this process. */
static mb_thread_create_fn gm_next_create_fn;
static int gm_returner_made;

static void gm_atfork_prepare(void)
{
	anrc_fork_prepare(gm_heap_ptr);
}

static void gm_atfork_parent(void)
{
	anrc_fork_parent(gm_heap_ptr);
}

static void gm_atfork_child(void)
{
	anrc_fork_child(gm_heap_ptr);
	gm_broker_fork_child();
	gm_returner_made = 0; /* the helper did not survive */
}

/*
 * The page_return_thread.  With "on" it is made at init; with "auto" (the
 * default) when the program creates its first thread, through the
 * pthread_create below: a program with one thread has no other thread
 * that a madvise in its frees could hold up, and a program that creates
 * threads maps their stacks then anyway.  Either way its stack is mapped
 * by a pthread_create, never inside a malloc-family call of the program.
 * A fork child has no such thread until it creates one.
 */

/* libc's pthread_create, found once (dlsym may allocate: only called
 * once the heap is ready). */
static mb_thread_create_fn gm_next_create(void)
{
	mb_thread_create_fn f = __atomic_load_n(&gm_next_create_fn, __ATOMIC_ACQUIRE);
	if (f == NULL) {
		void *sym = dlsym(RTLD_NEXT, "pthread_create");
		memcpy(&f, &sym, sizeof(f));
		__atomic_store_n(&gm_next_create_fn, f, __ATOMIC_RELEASE);
	}
	return f;
}

/* The default stack size (a smaller one fails in a program whose static
 * TLS does not fit in it: glibc puts that on every thread's stack), and
 * every signal blocked (mb_thread_start): the program's signals are not
 * for it. */
static void gm_start_returner(struct anrc_heap *h)
{
	pthread_t t;
	mb_thread_create_fn create = gm_next_create();
	int rc;

	if (__atomic_exchange_n(&gm_returner_made, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	rc = create == NULL ? ENOSYS
			    : mb_thread_start(&t, create, "gmalloc-return", anrc_return_helper_thread, h);
	if (rc == 0)
		pthread_detach(t);
	else
		mb_log(MB_LOG_WARNING, "page_return_thread: no thread (error %d); "
		       "calls give pages back themselves", rc);
}

/* Exported (libgmalloc.map): the program's threads are made here. */
GM_API int pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg)
{
	struct anrc_heap *h = gm_heap();
	mb_thread_create_fn create = gm_next_create();

	if (create == NULL)
		return EAGAIN;
	if (h != NULL && gm_cfg.page_return_thread != GM_PRT_OFF &&
	    !__atomic_load_n(&gm_returner_made, __ATOMIC_ACQUIRE))
		gm_start_returner(h);
	return create(t, a, fn, arg);
}

static void gm_report_signal(int sig)
{
	int saved = errno;
	(void)sig;
	gm_report_fd(STDERR_FILENO);
	errno = saved;
}

static void gm_install_signal(void)
{
	int sig = gm_signal_parse(gm_cfg.report_signal);
	if (sig <= 0)
		return;
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = gm_report_signal;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(sig, &sa, NULL) != 0)
		mb_log(MB_LOG_WARNING, "report_signal %s: cannot install the handler",
		       gm_cfg.report_signal);
}

/* reserve = 0 (the default): from the machine's memory. */
static uint64_t gm_auto_reserve(void)
{
	uint64_t ram = mb_addr_ram(), r = GM_AUTO_RESERVE_MAX;

	if (ram != 0 && ram < GM_AUTO_RESERVE_MAX / GM_RESERVE_PER_RAM)
		r = ram * GM_RESERVE_PER_RAM;
	if (r < GM_AUTO_RESERVE_MIN)
		r = GM_AUTO_RESERVE_MIN;
	return r > gm_cfg.limit ? r : gm_cfg.limit;
}

static struct anrc_heap *gm_create_heap(void)
{
	struct anrc_config ac;
	memset(&ac, 0, sizeof(ac));
	ac.free_low = gm_cfg.free_low;
	ac.free_high = gm_cfg.free_high;
	ac.idle_return_ms = gm_cfg.idle_return > UINT_MAX ? UINT_MAX : (unsigned)gm_cfg.idle_return;
	ac.bad_free = (enum anrc_bad_free_action)gm_cfg.bad_free;
	ac.trash_free = gm_cfg.trash;
	ac.valgrind = 1;
	ac.name = "gmalloc";
	ac.budget = gm_fixed_budget();
	uint64_t want = gm_cfg.reserve ? gm_cfg.reserve : gm_auto_reserve();
	uint64_t reserve = mb_addr_reserve(want, "heap"), first = reserve;
	for (;;) {
		ac.reserve = reserve;
		if (ac.budget > reserve)
			ac.budget = reserve;
		struct anrc_heap *h = anrc_create(&ac);
		if (h) {
			if (reserve != first)
				mb_log(MB_LOG_WARNING, "heap reservation of %lu bytes refused; "
				       "reserved %lu", (unsigned long)first,
				       (unsigned long)reserve);
			struct anrc_stats st;
			anrc_get_stats(h, &st);
			gm_cfg.reserve = st.reserved;
			return h;
		}
		if (reserve / 2 < GM_MIN_RESERVE)
			break;
		reserve /= 2;
	}
	mb_log(MB_LOG_ERR, "cannot reserve %lu bytes of address space for the heap",
	       (unsigned long)reserve);
	return NULL;
}

static void gm_init_once(void)
{
	mb_log_init("gmalloc", STDERR_FILENO, MB_LOG_WARNING);
	gm_config_read(&gm_cfg, gm_environ());
	mb_log_set_level(gm_cfg.log_level);
	gm_trailer_setup();
	struct anrc_heap *h = gm_create_heap();
	if (!h) {
		atomic_store(&gm_state, GM_FAILED);
		return;
	}
	gm_heap_ptr = h;
	gm_broker_init(h);
	atomic_store_explicit(&gm_state, GM_READY, memory_order_release);
	if (gm_trailer_size == 0)
		__atomic_store_n(&gm_fast_heap, h, __ATOMIC_RELEASE);
	/* These may allocate: the heap is ready for it now. */
	if (pthread_atfork(gm_atfork_prepare, gm_atfork_parent, gm_atfork_child) != 0)
		mb_log(MB_LOG_WARNING, "pthread_atfork failed: fork is not protected");
	gm_install_signal();
	if (gm_cfg.page_return_thread == GM_PRT_ON)
		gm_start_returner(h);
	if (gm_cfg.report_at_exit)
		gm_exit_fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, GM_REPORT_FD_MIN);
}

static struct anrc_heap *gm_init_slow(void)
{
	int expect = GM_UNINIT;
	if (atomic_compare_exchange_strong(&gm_state, &expect, GM_BUSY)) {
		atomic_store(&gm_init_tid, gm_gettid());
		gm_init_once();
		return gm_heap_ptr;
	}
	if (expect == GM_BUSY && atomic_load(&gm_init_tid) == gm_gettid())
		return NULL;
	while ((expect = atomic_load_explicit(&gm_state, memory_order_acquire)) == GM_BUSY)
		sched_yield();
	return expect == GM_READY ? gm_heap_ptr : NULL;
}

struct anrc_heap *gm_heap(void)
{
	if (__builtin_expect(atomic_load_explicit(&gm_state, memory_order_acquire) == GM_READY, 1))
		return gm_heap_ptr;
	return gm_init_slow();
}

int gm_init_failed(void)
{
	return atomic_load(&gm_state) == GM_FAILED;
}

/* The report at exit runs as late as libgmalloc's own destructor. */
__attribute__((destructor)) static void gm_fini(void)
{
	if (atomic_load(&gm_state) == GM_READY && gm_cfg.report_at_exit)
		gm_report_fd(gm_exit_fd >= 0 ? gm_exit_fd : STDERR_FILENO);
}

/*
 * gm_report.c - the heap report (on request, on a signal, at exit) and
 * what happens at the limit.
 *
 * The report may run inside a signal handler that interrupted malloc:
 * it only formats on the stack, reads atomics and calls anrc_report(),
 * which is async-signal-safe.
 */
#include "config.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "gm_internal.h"
#include "mb_log.h"
#include "mb_size.h"

static void gm_report_config(int fd)
{
	char line[MB_LOG_LINE_MAX], val[64];
	size_t n = mb_format(line, sizeof(line), "gmalloc: pid %ld; config:",
			     (long)getpid());
	static const char *const shown[] = { "limit", "reserve", "free_low",
		"free_high", "on_limit", "broker", "quota_step", "quota_release",
		"urgency", "bad_free", "trash", "guard", "backtrace_depth", NULL };
	for (int i = 0; shown[i]; i++) {
		const struct mb_conf_key *k = mb_conf_find(gm_conf_table, shown[i]);
		if (!k)
			continue;
		mb_conf_format(k, &gm_cfg, val, sizeof(val));
		n += mb_format(line + n, sizeof(line) - n, " %s=%s", shown[i], val);
	}
	n += mb_format(line + n, sizeof(line) - n, "\n");
	(void)mb_write_all(fd, line, n);
}

void gm_report_fd(int fd)
{
	struct anrc_heap *h = gm_heap_ptr;
	gm_report_config(fd);
	if (h)
		anrc_report(h, fd);
	gm_broker_report(fd);
	gm_trailer_report(fd);
}

/*
 * on_limit=null: the first refusal of the process is said on stderr in
 * one line, so that a program that then dies on the NULL leaves a trace;
 * later refusals are silent.
 */
static void gm_refusal_note(size_t size)
{
	static atomic_flag said = ATOMIC_FLAG_INIT;
	struct anrc_stats st;
	char sz[32], used[32], budget[32], reserved[32];

	if (atomic_flag_test_and_set(&said) || gm_heap_ptr == NULL)
		return;
	anrc_get_stats(gm_heap_ptr, &st);
	mb_format_size(sz, sizeof(sz), size);
	mb_format_size(used, sizeof(used), st.resident);
	mb_format_size(budget, sizeof(budget), st.budget);
	mb_format_size(reserved, sizeof(reserved), st.reserved);
	mb_log(MB_LOG_WARNING, "out of memory: %zu bytes (%s) refused with %s committed "
	       "of a budget of %s (reservation %s); malloc returns NULL "
	       "(on_limit=null, said once)", size, sz, used, budget, reserved);
}

void gm_out_of_memory(size_t size)
{
	/* Sizes the reservation could never hold are plain errors, not the
	 * limit being reached: they return NULL whatever on_limit says. */
	if (gm_cfg.on_limit == GM_ON_LIMIT_ABORT && size <= gm_cfg.reserve) {
		char sz[32];
		mb_format_size(sz, sizeof(sz), size);
		mb_log(MB_LOG_ERR, "out of memory at the limit: %zu bytes (%s) requested; aborting",
		       size, sz);
		gm_report_fd(STDERR_FILENO);
		abort();
	}
	if (size <= gm_cfg.reserve)
		gm_refusal_note(size);
	errno = ENOMEM;
}

/*
 * mbt_seccomp.c - a seccomp filter that kills the process on the named
 * system calls (see mbt_seccomp.h).  Makes no heap allocation, so that it
 * can be installed around code that must not allocate either.
 */
#include "config.h"

#include "mbt_seccomp.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(HAVE_LINUX_SECCOMP_H) && defined(HAVE_LINUX_FILTER_H) && \
	defined(HAVE_SYS_PRCTL_H) && (defined(__x86_64__) || defined(__aarch64__))
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>

#if defined(__x86_64__)
#define THIS_ARCH AUDIT_ARCH_X86_64
#else
#define THIS_ARCH AUDIT_ARCH_AARCH64
#endif

#define MAX_DENIED 16

int mbt_deny_syscalls(const long *nrs, size_t n, int all_threads)
{
	struct sock_filter f[4 + 2 * MAX_DENIED + 1] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, THIS_ARCH, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
	};
	struct sock_fprog prog;
	size_t k = 4;

	if (n > MAX_DENIED) {
		errno = EINVAL;
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		f[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
						      (uint32_t)nrs[i], 0, 1);
		f[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K,
						      SECCOMP_RET_KILL_PROCESS);
	}
	f[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	prog.len = (unsigned short)k;
	prog.filter = f;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		return -1;
	return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
			    all_threads ? SECCOMP_FILTER_FLAG_TSYNC : 0, &prog);
}

#else

int mbt_deny_syscalls(const long *nrs, size_t n, int all_threads)
{
	(void)nrs;
	(void)n;
	(void)all_threads;
	errno = ENOSYS;
	return -1;
}

#endif

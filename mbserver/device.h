/*
 * device.h - what the device has and uses: /proc/meminfo, or the memory
 * cgroup the broker runs in (v1 or v2), which then is the device.
 *
 * Only reads files whose paths it is given, so tests drive it with a fake
 * meminfo and a fake cgroup directory.  No state, no clock.
 */
#ifndef MBSERVER_DEVICE_H
#define MBSERVER_DEVICE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "mb_wire.h"

enum device_mode { DEVICE_NONE, DEVICE_MEMINFO, DEVICE_CGROUP };

struct device_paths {
	const char *meminfo; /* meminfo-format file, e.g. /proc/meminfo */
	const char *cgroup;  /* memory cgroup directory (DEVICE_CGROUP) */
	const char *psi;     /* pressure file (/proc/pressure/memory); NULL or "": none */
};

#define DEVICE_PSI_UNKNOWN UINT64_MAX

struct dev_sample {
	unsigned source;    /* enum mb_dev_source */
	uint64_t total;     /* bytes the device has */
	uint64_t used;      /* bytes that are not available */
	uint64_t committed; /* Committed_AS in bytes; 0 when not known */
	uint64_t psi_some;  /* "some" avg10 stall, hundredths of a percent;
			       DEVICE_PSI_UNKNOWN where the kernel does not tell */
};

/* Read one sample (PSI is optional: an unreadable pressure file only
 * leaves psi_some unknown).  0, or -errno (the file that failed is logged once by
 * the caller, which knows whether it already said so). */
int device_read(const struct device_paths *p, enum device_mode mode,
		struct dev_sample *out);

/*
 * The memory cgroup directory of a process from its /proc/PID/cgroup text
 * (proc_cgroup: the path of that file), below mount (the cgroup file
 * system root, /sys/fs/cgroup): the v1 "memory" hierarchy is
 * mount/memory/PATH, the v2 one mount/PATH.  0, or -errno.
 */
int device_find_cgroup(const char *proc_cgroup, const char *mount, char *out,
		       size_t cap);

/* Private resident memory of a process (Private_Clean + Private_Dirty of
 * /proc/PID/smaps_rollup), in bytes.  0, or -errno. */
int device_private_bytes(pid_t pid, uint64_t *bytes);

#endif /* MBSERVER_DEVICE_H */

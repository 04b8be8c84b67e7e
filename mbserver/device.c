/*
 * device.c - the device view (see device.h).
 *
 * A v1 or v2 memory cgroup counts page cache in its usage; the inactive
 * file pages are the part the kernel drops first, so "used" leaves them
 * out, as the kernel's own reclaim would.  A limit the cgroup does not set
 * ("max", or the v1 "unlimited" near 2^63) means the machine's MemTotal.
 */
#include "config.h"
#include "device.h"
#include "mb_log.h"
#include "mb_size.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#define TEXT_MAX 8192
#define PATH_CAP 512

/* Read a small file whole into buf (NUL-terminated).  Length or -errno. */
static ssize_t slurp(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	size_t len = 0;
	while (len < cap - 1) {
		ssize_t n = read(fd, buf + len, cap - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			close(fd);
			return -e;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	return (ssize_t)len;
}

static int join(char *out, size_t cap, const char *dir, const char *name)
{
	size_t n = mb_format(out, cap, "%s/%s", dir, name);
	return n + 1 >= cap ? -ENAMETOOLONG : 0;
}

/* A file holding one number ("max" reads as UINT64_MAX). */
static int read_number(const char *dir, const char *name, uint64_t *v)
{
	char path[PATH_CAP], buf[64];
	int rc = join(path, sizeof(path), dir, name);
	if (rc != 0)
		return rc;
	ssize_t n = slurp(path, buf, sizeof(buf));
	if (n < 0)
		return (int)n;
	char *nl = strchr(buf, '\n');
	if (nl)
		*nl = '\0';
	if (strcmp(buf, "max") == 0) {
		*v = UINT64_MAX;
		return 0;
	}
	return mb_parse_u64(buf, v) == 0 ? 0 : -EINVAL;
}

static int read_meminfo(const char *path, struct dev_sample *out)
{
	char buf[TEXT_MAX];
	ssize_t n = slurp(path, buf, sizeof(buf));
	if (n < 0)
		return (int)n;
	uint64_t total, avail;
	if (mb_meminfo_text(buf, "MemTotal", &total) != 0 || total == 0 ||
	    mb_meminfo_text(buf, "MemAvailable", &avail) != 0)
		return -EINVAL;
	if (mb_meminfo_text(buf, "Committed_AS", &out->committed) != 0)
		out->committed = 0;
	out->total = total;
	out->used = avail < total ? total - avail : 0;
	return 0;
}

static int read_cgroup(const struct device_paths *p, struct dev_sample *out)
{
	uint64_t usage, limit, inactive = 0;
	char path[PATH_CAP], buf[TEXT_MAX];
	const char *stat_key;
	if (read_number(p->cgroup, "memory.current", &usage) == 0) {
		out->source = MB_DEV_CGROUP2;
		if (read_number(p->cgroup, "memory.max", &limit) != 0)
			return -EINVAL;
		stat_key = "inactive_file";
	} else {
		int rc = read_number(p->cgroup, "memory.usage_in_bytes", &usage);
		if (rc != 0)
			return rc;
		out->source = MB_DEV_CGROUP1;
		if (read_number(p->cgroup, "memory.limit_in_bytes", &limit) != 0)
			return -EINVAL;
		stat_key = "total_inactive_file";
	}
	if (join(path, sizeof(path), p->cgroup, "memory.stat") == 0 &&
	    slurp(path, buf, sizeof(buf)) > 0) {
		/* memory.stat is "key value" without a colon: make it look like
		 * meminfo for the shared parser. */
		char key[64];
		size_t kl = strlen(stat_key);
		for (char *l = buf; l && *l;) {
			if (strncmp(l, stat_key, kl) == 0 && l[kl] == ' ') {
				mb_format(key, sizeof(key), "%s", stat_key);
				l[kl] = ':';
				if (mb_meminfo_text(l, key, &inactive) != 0)
					inactive = 0;
				break;
			}
			l = strchr(l, '\n');
			if (l)
				l++;
		}
	}
	uint64_t memtotal = 0;
	struct dev_sample mi = { 0 };
	if (p->meminfo && read_meminfo(p->meminfo, &mi) == 0)
		memtotal = mi.total;
	if (memtotal && limit > memtotal)
		limit = memtotal;
	if (limit == UINT64_MAX || limit == 0)
		return -EINVAL;
	out->total = limit;
	out->used = usage > inactive ? usage - inactive : 0;
	out->committed = 0;
	return 0;
}

/* "some avg10=1.23 avg60=..." into hundredths of a percent. */
static uint64_t read_psi(const char *path)
{
	char buf[256];
	static const char key[] = "some avg10=";
	if (!path || !path[0] || slurp(path, buf, sizeof(buf)) <= 0)
		return DEVICE_PSI_UNKNOWN;
	const char *v = strstr(buf, key);
	if (!v)
		return DEVICE_PSI_UNKNOWN;
	v += sizeof(key) - 1;
	uint64_t whole = 0, frac = 0;
	int digits = 0, fd = 0;
	for (; *v >= '0' && *v <= '9' && digits < 4; v++, digits++)
		whole = whole * 10 + (uint64_t)(*v - '0');
	if (digits == 0 || *v != '.')
		return DEVICE_PSI_UNKNOWN;
	for (v++; *v >= '0' && *v <= '9' && fd < 2; v++, fd++)
		frac = frac * 10 + (uint64_t)(*v - '0');
	return fd == 2 ? whole * 100 + frac : DEVICE_PSI_UNKNOWN;
}

int device_read(const struct device_paths *p, enum device_mode mode,
		struct dev_sample *out)
{
	int rc;
	memset(out, 0, sizeof(*out));
	switch (mode) {
	case DEVICE_MEMINFO:
		out->source = MB_DEV_MEMINFO;
		rc = read_meminfo(p->meminfo, out);
		break;
	case DEVICE_CGROUP:
		rc = !p->cgroup || !p->cgroup[0] ? -ENOENT : read_cgroup(p, out);
		break;
	default:
		rc = -ENOENT;
		break;
	}
	out->psi_some = rc == 0 ? read_psi(p->psi) : DEVICE_PSI_UNKNOWN;
	return rc;
}

int device_find_cgroup(const char *proc_cgroup, const char *mount, char *out,
		       size_t cap)
{
	char buf[TEXT_MAX];
	ssize_t n = slurp(proc_cgroup, buf, sizeof(buf));
	if (n < 0)
		return (int)n;
	const char *v2 = NULL;
	for (char *l = buf; l && *l;) {
		char *nl = strchr(l, '\n');
		if (nl)
			*nl = '\0';
		/* "ID:CONTROLLERS:PATH" */
		char *c1 = strchr(l, ':');
		char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (c2) {
			*c2 = '\0';
			const char *ctl = c1 + 1, *path = c2 + 1;
			if (ctl[0] == '\0' && strcmp(l, "0:") == 0)
				v2 = path; /* "0::PATH" */
			for (const char *t = ctl; *t;) {
				size_t tl = strcspn(t, ",");
				if (tl == 6 && strncmp(t, "memory", 6) == 0) {
					size_t w = mb_format(out, cap, "%s/memory%s", mount, path);
					return w + 1 >= cap ? -ENAMETOOLONG : 0;
				}
				t += tl;
				if (*t == ',')
					t++;
			}
		}
		l = nl ? nl + 1 : NULL;
	}
	if (!v2)
		return -ENOENT;
	size_t w = mb_format(out, cap, "%s%s", mount, v2);
	return w + 1 >= cap ? -ENAMETOOLONG : 0;
}

int device_private_bytes(pid_t pid, uint64_t *bytes)
{
	char path[64], buf[TEXT_MAX];
	uint64_t clean, dirty;
	if (pid <= 0)
		return -EINVAL;
	mb_format(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
	ssize_t n = slurp(path, buf, sizeof(buf));
	if (n < 0)
		return (int)n;
	if (mb_meminfo_text(buf, "Private_Clean", &clean) != 0 ||
	    mb_meminfo_text(buf, "Private_Dirty", &dirty) != 0)
		return -EINVAL;
	*bytes = clean + dirty;
	return 0;
}

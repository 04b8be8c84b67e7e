/*
 * conf.c - the one table of track_fs settings.  The config file, -o
 * mount options and --key=value all set keys of this table.
 *
 * track_fs is free software; you can redistribute it and/or modify it
 * under the terms of the GNU General Public License version 2 as
 * published by the Free Software Foundation (see COPYING.GPL-2).
 */
#include <stddef.h>

#include "tfs.h"

#define K(name, type, field, def, help) \
	{ name, type, offsetof(struct tfs_conf, field), \
	  sizeof(((struct tfs_conf *)0)->field), def, help, NULL }

static const char *const urgency_choices[] = { "request", "reserve", NULL };
static const char *const down_choices[] = { "deny", "cap", NULL };
static const char *const splice_choices[] = { "no", "read", "yes", NULL };

const struct mb_conf_key tfs_conf_keys[] = {
	K("backing", MB_CONF_STRING, backing, "",
	  "directory holding the files (empty: the mount point itself)"),
	K("broker_socket", MB_CONF_STRING, broker_socket, "",
	  "broker socket (empty: $MEMBROKER_SOCKET or the default)"),
	K("client_name", MB_CONF_STRING, client_name, "track_fs",
	  "name shown by the broker's status"),
	K("step", MB_CONF_SIZE, step, "1M",
	  "quota is asked from the broker in chunks of at least this"),
	K("release_hysteresis", MB_CONF_SIZE, release_hysteresis, "4M",
	  "spare quota kept before giving back (down to half of it)"),
	{ "urgency", MB_CONF_ENUM, offsetof(struct tfs_conf, urgency),
	  sizeof(int), "request",
	  "request: ask only; reserve: ask, then wait for the broker to free",
	  urgency_choices },
	{ "on_broker_down", MB_CONF_ENUM,
	  offsetof(struct tfs_conf, on_broker_down), sizeof(int), "deny",
	  "broker unreachable: deny new data (ENOSPC) or allow up to cap",
	  down_choices },
	K("cap", MB_CONF_SIZE, cap, "64M",
	  "bytes allowed in use while the broker is unreachable (cap mode)"),
	K("broker_timeout", MB_CONF_DURATION, broker_timeout, "250ms",
	  "deadline of each broker call"),
	K("retry_interval", MB_CONF_DURATION, retry_interval, "250ms",
	  "least time between reconnection attempts (up to 4x while they fail)"),
	K("threads", MB_CONF_U64, threads, "4",
	  "worker threads; one reads requests, another takes over while one waits"),
	K("cache_timeout", MB_CONF_DURATION, cache_timeout, "1s",
	  "how long the kernel may cache names and attributes"),
	K("max_write", MB_CONF_SIZE, max_write, "1M",
	  "largest write request (4K to 1M)"),
	K("charge", MB_CONF_BOOL, charge, "yes",
	  "charge data to the broker (no: a plain passthrough)"),
	{ "splice", MB_CONF_ENUM, offsetof(struct tfs_conf, splice),
	  sizeof(int), "read",
	  "splice(2) data between kernel and tmpfs: no, read (replies), yes",
	  splice_choices },
	K("log_level", MB_CONF_LOGLEVEL, log_level, "notice",
	  "err, warning, notice, info or debug"),
	K("uid_limit", MB_CONF_STRING, uid_limit, "50%",
	  "most one user's files may cost: size or percent of the broker total (0: no limit; root exempt)"),
	K("uid_fds", MB_CONF_STRING, uid_fds, "50%",
	  "most descriptors track_fs holds for one user: count or percent of its descriptor limit (0: no limit; root exempt)"),
	MB_CONF_END
};

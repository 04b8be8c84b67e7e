/*
 * conf.h - mbserver's configuration: the key table, the file and command
 * line, and the translation into the broker's tunables.
 */
#ifndef MBSERVER_CONF_H
#define MBSERVER_CONF_H

#include <stdint.h>
#include <sys/types.h>

#include "mb_conf.h"
#include "broker.h"
#include "watermark.h"

#define MBS_DEFAULT_CONFIG SYSCONFDIR "/membroker.conf"
#define MBS_DEFAULT_SOCKET "/run/membroker/membroker.sock"
#define MBS_PATH_MAX 108   /* sun_path */
#define MBS_LIST_MAX 512
#define MBS_MAX_IDS 64
#define MBS_OUTPUT_BUDGET_MIN (64 * 1024)

/* stderr turns into journal when stderr is the journal (JOURNAL_STREAM). */
enum mbs_log_target { MBS_LOG_STDERR, MBS_LOG_SYSLOG, MBS_LOG_JOURNAL };

struct mbs_conf {
	uint64_t total;            /* bytes */
	char socket[MBS_PATH_MAX];
	unsigned socket_mode;
	char socket_group[64];
	char allow_uids[MBS_LIST_MAX];
	char allow_gids[MBS_LIST_MAX];
	uint64_t client_cap;       /* bytes, 0: none */
	char source_uids[MBS_LIST_MAX];
	uint64_t source_max;       /* bytes, 0: the total */
	uint64_t uid_cap;          /* bytes, 0: none */
	uint64_t uid_connections;  /* 0: no limit */
	uint64_t handshake_timeout; /* ms */
	uint64_t idle_timeout;     /* ms */
	uint64_t output_budget;    /* bytes of replies queued for all clients */
	uint64_t request_deadline; /* ms */
	uint64_t share_deadline;   /* ms */
	uint64_t claim_grace;      /* ms */
	uint64_t pool_low;         /* bytes */
	int log_level;
	int log_target;
	/* The device view and the watermark policy (policy.c). */
	int device;                /* enum device_mode */
	char device_meminfo[MBS_PATH_MAX * 2];
	char device_cgroup[MBS_PATH_MAX * 2];
	char device_psi[MBS_PATH_MAX * 2];
	char psi_notify[32];
	uint64_t device_poll;      /* ms */
	int device_measure;        /* 0 used, 1 committed */
	char marks[MB_CTL_MARK_COUNT][32]; /* notify_high .. headroom, as text */
	char privileged_uids[MBS_LIST_MAX];
	char privileged_gids[MBS_LIST_MAX];
	uint64_t giveback_retry;   /* ms */
	uint64_t giveback_honour;  /* percent */
	uint64_t early_horizon;    /* ms */
	uint64_t rate_window;      /* ms */
	uint64_t audit_interval;   /* ms */
	uint64_t overuse_percent;
	char escalate_command[MBS_LIST_MAX];
	char escalate_signal[16];
	uint64_t escalate_after;   /* ms */
};

extern const struct mb_conf_key mbs_conf_table[];

/* Resolved lists and amounts in pages. */
struct mbs_resolved {
	struct broker_config bc;
	uid_t uids[MBS_MAX_IDS];
	gid_t gids[MBS_MAX_IDS];
	uid_t source_uids[MBS_MAX_IDS];
	gid_t socket_gid;          /* (gid_t)-1: leave the group alone */
	struct wm_config wm;
	uid_t priv_uids[MBS_MAX_IDS];
	size_t npriv_uids;
	gid_t priv_gids[MBS_MAX_IDS];
	size_t npriv_gids;
	int escalate_signal;       /* 0: none */
};

/* Defaults, then the file (a missing file is fine only when missing_ok),
 * then the overrides "key=value".  Returns the number of errors, each
 * reported through mb_log with its origin. */
int mbs_conf_load(struct mbs_conf *cf, const char *path, int missing_ok,
		  char *const *overrides, int noverrides);

/* Turn names into ids and bytes into pages.  0, or -1 after logging. */
int mbs_conf_resolve(const struct mbs_conf *cf, uint64_t page_size,
		     struct mbs_resolved *out);

#endif /* MBSERVER_CONF_H */

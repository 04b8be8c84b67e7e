/*
 * watermark.h - the memory watermark policy, a pure state machine.
 *
 * Fed one device sample at a time (with the broker's ledger and the time),
 * it says which state the device is in (normal, notify, deny), when a
 * state changes, how many pages to ask back, and how many pages the broker
 * may lend.  No I/O, no clock: the daemon passes both in.
 *
 * Marks are bytes or hundredths of a percent of the device total (values
 * above 100% are allowed: the committed figure can pass the total).  Each
 * state has a high mark, where it is entered, and a low mark, under which
 * it is left (the decay that keeps it from flapping); a low mark that is
 * off equals its high mark.  A mark of zero (either unit) is off.
 */
#ifndef MBSERVER_WATERMARK_H
#define MBSERVER_WATERMARK_H

#include <stdint.h>

#include "device.h"
#include "mb_wire.h"

#define WM_OFF UINT64_MAX
#define PERCENT_MAX_HUNDREDTHS 100000 /* 1000%: the largest percent mark */

struct wm_mark {
	unsigned unit;  /* enum mb_ctl_unit */
	uint64_t value; /* bytes, or hundredths of a percent */
};

struct wm_config {
	struct wm_mark mark[MB_CTL_MARK_COUNT];
	int committed;         /* compare Committed_AS with the marks, not "used" */
	uint64_t page_size;
	uint64_t horizon_ms;   /* notify early when deny is nearer; 0: off */
	uint64_t rate_window_ms; /* smoothing of the lending rate */
	uint64_t retry_ms;     /* ask again this often while above the mark */
	uint64_t psi_notify;   /* notify at this "some" avg10 stall (hundredths
				  of a percent), where PSI can be read; 0: off */
};

struct wm {
	struct wm_config cfg;
	enum mb_mem_state state;
	int early;             /* in notify on the estimate alone */
	int have_sample;
	struct dev_sample dev;
	uint64_t measure;      /* bytes compared with the marks */
	uint64_t res[MB_CTL_MARK_COUNT]; /* marks in bytes, WM_OFF when off */
	uint64_t rate_t, rate_lent;
	int64_t rate_pps;      /* pages lent per second, smoothed */
	uint64_t estimate_ms;  /* until deny at the current rate; WM_OFF: never */
	uint64_t next_ask;
};

struct wm_decision {
	enum mb_mem_state from, to; /* differ on a transition */
	int early;                  /* notify entered on the estimate */
	int psi;                    /* notify held by the stall figure alone */
	uint64_t giveback;          /* pages to ask back now; 0: none */
	uint64_t target;            /* bytes the device should come under */
};

void wm_init(struct wm *w, const struct wm_config *cfg);
/* New configuration (reload): state and rate survive. */
void wm_configure(struct wm *w, const struct wm_config *cfg);
/* Parse "90%", "512M", "" or "off" into a mark.  0 or -EINVAL. */
int wm_parse_mark(const char *text, struct wm_mark *out);
/* Change one mark at run time.  0 or -EINVAL (unknown mark or unit). */
int wm_set_mark(struct wm *w, unsigned mark, unsigned unit, uint64_t value);
/* A mark in bytes against a device total (WM_OFF when off). */
uint64_t wm_resolve(const struct wm_mark *m, uint64_t total);

/* One sample; lent: pages the broker has lent now. */
void wm_sample(struct wm *w, const struct dev_sample *s, uint64_t lent,
	       uint64_t now, struct wm_decision *d);

/*
 * Pages the broker may own: the configured total, less what the device
 * cannot give: memory used outside the broker and the headroom.
 * client_resident: bytes of the device used by brokered memory (what the
 * audit found of the lent pages); the rest of "used" is outside.
 */
uint64_t wm_lendable(const struct wm *w, uint64_t configured, uint64_t client_resident);

const char *wm_state_name(unsigned state);

#endif /* MBSERVER_WATERMARK_H */

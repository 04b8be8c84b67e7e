/*
 * watermark.c - the watermark policy (see watermark.h).
 *
 * States, from the measure m and the resolved marks:
 *
 *     deny    m >= deny_high, or in deny and m >= deny_low
 *     notify  m >= notify_high, or in notify/deny and m >= notify_low,
 *             or the estimated time to deny is under the horizon,
 *             or the PSI "some" stall is at psi_notify or above
 *     normal  otherwise
 *
 * Entering notify or deny asks back the pages that bring m under the low
 * mark of notify (or of deny when notify is off); while m stays above it,
 * the ask is repeated every retry_ms.  The estimate divides the distance to
 * deny_high by the smoothed lending rate.
 */
#include "config.h"
#include "watermark.h"
#include "mb_size.h"

#include <errno.h>
#include <string.h>

#define HUNDREDTHS 10000 /* 100.00% */
#define MS_PER_S 1000

static const char *const state_names[] = { "normal", "notify", "deny" };

const char *wm_state_name(unsigned state)
{
	return state <= MB_MEM_DENY ? state_names[state] : "?";
}

int wm_parse_mark(const char *text, struct wm_mark *out)
{
	size_t n = strlen(text);
	if (n == 0 || strcmp(text, "off") == 0) {
		out->unit = MB_CTL_OFF;
		out->value = 0;
		return 0;
	}
	if (text[n - 1] == '%') {
		if (mb_parse_hundredths(text, &out->value) != 0 ||
		    out->value > PERCENT_MAX_HUNDREDTHS)
			return -EINVAL;
		out->unit = MB_CTL_UNIT_PERCENT;
		return 0;
	}
	if (mb_parse_size(text, 0, &out->value) != 0)
		return -EINVAL;
	out->unit = MB_CTL_UNIT_BYTES;
	return 0;
}

uint64_t wm_resolve(const struct wm_mark *m, uint64_t total)
{
	/* A zero mark is off, as the seed's zero percentages were. */
	if (m->value == 0)
		return WM_OFF;
	switch (m->unit) {
	case MB_CTL_UNIT_BYTES:
		return m->value;
	case MB_CTL_UNIT_PERCENT: {
		unsigned __int128 v = (unsigned __int128)total * m->value / HUNDREDTHS;
		return v >= WM_OFF ? WM_OFF - 1 : (uint64_t)v;
	}
	default:
		return WM_OFF;
	}
}

static void resolve_all(struct wm *w)
{
	uint64_t t = w->dev.total;
	for (unsigned i = 0; i < MB_CTL_MARK_COUNT; i++)
		w->res[i] = wm_resolve(&w->cfg.mark[i], t);
	/* A low mark that is off, or above its high mark, is the high mark. */
	if (w->res[MB_CTL_NOTIFY_LOW] > w->res[MB_CTL_NOTIFY_HIGH])
		w->res[MB_CTL_NOTIFY_LOW] = w->res[MB_CTL_NOTIFY_HIGH];
	if (w->res[MB_CTL_DENY_LOW] > w->res[MB_CTL_DENY_HIGH])
		w->res[MB_CTL_DENY_LOW] = w->res[MB_CTL_DENY_HIGH];
	if (w->res[MB_CTL_HEADROOM] == WM_OFF)
		w->res[MB_CTL_HEADROOM] = 0;
}

void wm_init(struct wm *w, const struct wm_config *cfg)
{
	memset(w, 0, sizeof(*w));
	w->cfg = *cfg;
	w->estimate_ms = WM_OFF;
	for (unsigned i = 0; i < MB_CTL_MARK_COUNT; i++)
		w->res[i] = WM_OFF;
	w->res[MB_CTL_HEADROOM] = 0;
}

void wm_configure(struct wm *w, const struct wm_config *cfg)
{
	w->cfg = *cfg;
	if (w->have_sample)
		resolve_all(w);
}

int wm_set_mark(struct wm *w, unsigned mark, unsigned unit, uint64_t value)
{
	if (mark >= MB_CTL_MARK_COUNT || unit > MB_CTL_OFF)
		return -EINVAL;
	w->cfg.mark[mark].unit = unit;
	w->cfg.mark[mark].value = unit == MB_CTL_OFF ? 0 : value;
	if (w->have_sample)
		resolve_all(w);
	return 0;
}

static void update_rate(struct wm *w, uint64_t lent, uint64_t now)
{
	if (!w->have_sample || now <= w->rate_t) {
		if (!w->have_sample) {
			w->rate_t = now;
			w->rate_lent = lent;
		}
		return;
	}
	uint64_t dt = now - w->rate_t;
	int64_t inst = ((int64_t)lent - (int64_t)w->rate_lent) * MS_PER_S / (int64_t)dt;
	int64_t win = (int64_t)(w->cfg.rate_window_ms ? w->cfg.rate_window_ms : 1);
	w->rate_pps = (w->rate_pps * win + inst * (int64_t)dt) / (win + (int64_t)dt);
	w->rate_t = now;
	w->rate_lent = lent;
}

static void estimate(struct wm *w)
{
	uint64_t deny = w->res[MB_CTL_DENY_HIGH];
	w->estimate_ms = WM_OFF;
	if (deny == WM_OFF || w->rate_pps <= 0)
		return;
	if (w->measure >= deny) {
		w->estimate_ms = 0;
		return;
	}
	unsigned __int128 bytes_per_s = (unsigned __int128)w->rate_pps * w->cfg.page_size;
	unsigned __int128 ms = (unsigned __int128)(deny - w->measure) * MS_PER_S / bytes_per_s;
	w->estimate_ms = ms >= WM_OFF ? WM_OFF - 1 : (uint64_t)ms;
}

static int early_due(const struct wm *w)
{
	uint64_t h = w->cfg.horizon_ms;
	if (h == 0 || w->estimate_ms == WM_OFF)
		return 0;
	/* Leave the early state only at twice the horizon: no flapping. */
	return w->estimate_ms < (w->early ? 2 * h : h);
}

static int psi_due(const struct wm *w)
{
	return w->cfg.psi_notify && w->dev.psi_some != DEVICE_PSI_UNKNOWN &&
	       w->dev.psi_some >= w->cfg.psi_notify;
}

static enum mb_mem_state next_state(const struct wm *w, int *early)
{
	uint64_t m = w->measure;
	const uint64_t *r = w->res;
	*early = 0;
	if (r[MB_CTL_DENY_HIGH] != WM_OFF &&
	    (m >= r[MB_CTL_DENY_HIGH] ||
	     (w->state == MB_MEM_DENY && m >= r[MB_CTL_DENY_LOW])))
		return MB_MEM_DENY;
	if (r[MB_CTL_NOTIFY_HIGH] != WM_OFF &&
	    (m >= r[MB_CTL_NOTIFY_HIGH] ||
	     (w->state != MB_MEM_NORMAL && !w->early && m >= r[MB_CTL_NOTIFY_LOW])))
		return MB_MEM_NOTIFY;
	if (early_due(w)) {
		*early = 1;
		return MB_MEM_NOTIFY;
	}
	return psi_due(w) ? MB_MEM_NOTIFY : MB_MEM_NORMAL;
}

/* Bytes the device should come under while notify or deny lasts. */
static uint64_t target(const struct wm *w)
{
	if (w->res[MB_CTL_NOTIFY_LOW] != WM_OFF)
		return w->res[MB_CTL_NOTIFY_LOW];
	return w->res[MB_CTL_DENY_LOW];
}

void wm_sample(struct wm *w, const struct dev_sample *s, uint64_t lent,
	       uint64_t now, struct wm_decision *d)
{
	memset(d, 0, sizeof(*d));
	update_rate(w, lent, now);
	w->dev = *s;
	w->have_sample = 1;
	w->measure = w->cfg.committed && s->committed ? s->committed : s->used;
	resolve_all(w);
	estimate(w);
	int early;
	d->from = w->state;
	d->to = next_state(w, &early);
	d->early = early && d->from == MB_MEM_NORMAL;
	d->psi = d->to == MB_MEM_NOTIFY && !early && psi_due(w) &&
		 !(w->res[MB_CTL_NOTIFY_HIGH] != WM_OFF && w->measure >= w->res[MB_CTL_NOTIFY_LOW]);
	w->state = d->to;
	w->early = early;
	if (d->to == MB_MEM_NORMAL)
		return;
	uint64_t t = target(w);
	d->target = t;
	int rise = d->to > d->from;
	if (!rise && now < w->next_ask)
		return;
	uint64_t ps = w->cfg.page_size ? w->cfg.page_size : 1;
	if (w->measure > t)
		d->giveback = (w->measure - t + ps - 1) / ps;
	else if (early && w->rate_pps > 0)
		d->giveback = (uint64_t)w->rate_pps * w->cfg.horizon_ms / MS_PER_S;
	if (d->giveback || rise)
		w->next_ask = now + w->cfg.retry_ms;
}

uint64_t wm_lendable(const struct wm *w, uint64_t configured, uint64_t client_resident)
{
	if (!w->have_sample)
		return configured;
	uint64_t ps = w->cfg.page_size ? w->cfg.page_size : 1;
	uint64_t used = w->dev.used;
	uint64_t outside = used > client_resident ? used - client_resident : 0;
	uint64_t keep = w->res[MB_CTL_HEADROOM];
	uint64_t room = w->dev.total > outside ? w->dev.total - outside : 0;
	room = room > keep ? room - keep : 0;
	return room / ps < configured ? room / ps : configured;
}

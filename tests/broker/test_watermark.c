/*
 * test_watermark.c - the device view over fake meminfo and cgroup files,
 * the watermark state machine sample by sample, and the broker's hooks
 * for the memory policy (deny check, give-back largest first, the total
 * following the device, clients served last).
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker.h"
#include "device.h"
#include "watermark.h"
#include "mb_log.h"
#include "mb_wire.h"

#define MiB (UINT64_C(1) << 20)
#define PAGE 4096

static char dir[64];

static void put(const char *name, const char *text)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
}

static void mk_dir(void)
{
	strcpy(dir, "/tmp/mbwm.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void rm_dir(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	ck_assert_int_eq(system(cmd), 0);
}

static const char *at(const char *name)
{
	static char path[256];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return path;
}

/* ---- device ------------------------------------------------------------ */

START_TEST(meminfo_figures)
{
	mk_dir();
	put("meminfo", "MemTotal:        1048576 kB\nMemFree:  1000 kB\n"
	    "MemAvailable:     262144 kB\nCommitted_AS:    2097152 kB\n");
	char mi[256];
	strcpy(mi, at("meminfo"));
	struct device_paths p = { mi, NULL, NULL };
	struct dev_sample s;
	ck_assert_int_eq(device_read(&p, DEVICE_MEMINFO, &s), 0);
	ck_assert_uint_eq(s.source, MB_DEV_MEMINFO);
	ck_assert_uint_eq(s.total, 1024 * MiB);
	ck_assert_uint_eq(s.used, 768 * MiB);
	ck_assert_uint_eq(s.committed, 2048 * MiB);
	ck_assert_uint_eq(s.psi_some, DEVICE_PSI_UNKNOWN);
	/* PSI where the kernel offers it; absent or garbled: unknown. */
	char psi[256];
	put("pressure", "some avg10=12.34 avg60=1.00 avg300=0.00 total=99\n"
	    "full avg10=3.00 avg60=0.00 avg300=0.00 total=5\n");
	strcpy(psi, at("pressure"));
	p.psi = psi;
	ck_assert_int_eq(device_read(&p, DEVICE_MEMINFO, &s), 0);
	ck_assert_uint_eq(s.psi_some, 1234);
	put("pressure", "some avg10=x\n");
	ck_assert_int_eq(device_read(&p, DEVICE_MEMINFO, &s), 0);
	ck_assert_uint_eq(s.psi_some, DEVICE_PSI_UNKNOWN);
	strcpy(psi, at("no-pressure"));
	ck_assert_int_eq(device_read(&p, DEVICE_MEMINFO, &s), 0);
	ck_assert_uint_eq(s.psi_some, DEVICE_PSI_UNKNOWN);
	p.psi = NULL;
	/* No MemAvailable: an error, never a guess. */
	put("meminfo", "MemTotal: 1048576 kB\n");
	ck_assert_int_lt(device_read(&p, DEVICE_MEMINFO, &s), 0);
	strcpy(mi, at("absent"));
	ck_assert_int_eq(device_read(&p, DEVICE_MEMINFO, &s), -ENOENT);
	rm_dir();
}
END_TEST

START_TEST(cgroup_v1_and_v2)
{
	mk_dir();
	char mi[256], cg[256];
	put("meminfo", "MemTotal: 1048576 kB\nMemAvailable: 1048576 kB\n");
	strcpy(mi, at("meminfo"));
	mkdir(at("v1"), 0700);
	put("v1/memory.usage_in_bytes", "104857600\n");
	put("v1/memory.limit_in_bytes", "209715200\n");
	put("v1/memory.stat", "cache 1000\ntotal_inactive_file 4194304\ntotal_rss 5\n");
	strcpy(cg, at("v1"));
	struct device_paths p = { mi, cg, NULL };
	struct dev_sample s;
	ck_assert_int_eq(device_read(&p, DEVICE_CGROUP, &s), 0);
	ck_assert_uint_eq(s.source, MB_DEV_CGROUP1);
	ck_assert_uint_eq(s.total, 200 * MiB);
	ck_assert_uint_eq(s.used, 96 * MiB); /* inactive file pages left out */
	/* An unlimited v1 cgroup is the machine. */
	put("v1/memory.limit_in_bytes", "9223372036854771712\n");
	ck_assert_int_eq(device_read(&p, DEVICE_CGROUP, &s), 0);
	ck_assert_uint_eq(s.total, 1024 * MiB);

	mkdir(at("v2"), 0700);
	put("v2/memory.current", "52428800\n");
	put("v2/memory.max", "max\n");
	put("v2/memory.stat", "anon 1\ninactive_file 1048576\n");
	strcpy(cg, at("v2"));
	ck_assert_int_eq(device_read(&p, DEVICE_CGROUP, &s), 0);
	ck_assert_uint_eq(s.source, MB_DEV_CGROUP2);
	ck_assert_uint_eq(s.total, 1024 * MiB);
	ck_assert_uint_eq(s.used, 49 * MiB);
	put("v2/memory.max", "104857600\n");
	ck_assert_int_eq(device_read(&p, DEVICE_CGROUP, &s), 0);
	ck_assert_uint_eq(s.total, 100 * MiB);
	put("v2/memory.max", "lots\n");
	ck_assert_int_lt(device_read(&p, DEVICE_CGROUP, &s), 0);
	rm_dir();
}
END_TEST

START_TEST(find_own_cgroup)
{
	mk_dir();
	char out[256];
	put("cg1", "12:pids:/x\n9:memory:/device/app\n1:name=systemd:/y\n0::/z\n");
	ck_assert_int_eq(device_find_cgroup(at("cg1"), "/sys/fs/cgroup", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "/sys/fs/cgroup/memory/device/app");
	put("cg2", "0::/user.slice/app\n");
	ck_assert_int_eq(device_find_cgroup(at("cg2"), "/sys/fs/cgroup", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "/sys/fs/cgroup/user.slice/app");
	put("cg3", "3:cpu,memory:/m\n");
	ck_assert_int_eq(device_find_cgroup(at("cg3"), "/c", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "/c/memory/m");
	put("cg4", "3:cpu:/m\n");
	ck_assert_int_eq(device_find_cgroup(at("cg4"), "/c", out, sizeof(out)), -ENOENT);
	rm_dir();
}
END_TEST

START_TEST(own_private_memory)
{
	uint64_t before, after;
	ck_assert_int_eq(device_private_bytes(getpid(), &before), 0);
	size_t n = 16 * MiB;
	char *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(p, MAP_FAILED);
	memset(p, 1, n);
	ck_assert_int_eq(device_private_bytes(getpid(), &after), 0);
	ck_assert_uint_ge(after, before + n - MiB);
	munmap(p, n);
	ck_assert_int_lt(device_private_bytes(0, &after), 0);
}
END_TEST

/* ---- watermark state machine ------------------------------------------ */

static struct wm w;
static uint64_t now;

static void setup_wm(const char *nh, const char *nl, const char *dh, const char *dl,
		     uint64_t horizon)
{
	struct wm_config c = { .page_size = PAGE, .horizon_ms = horizon,
			       .rate_window_ms = 100, .retry_ms = 1000 };
	const char *t[MB_CTL_MARK_COUNT] = { nh, nl, dh, dl, "" };
	for (int i = 0; i < MB_CTL_MARK_COUNT; i++)
		ck_assert_int_eq(wm_parse_mark(t[i], &c.mark[i]), 0);
	wm_init(&w, &c);
	now = 1000;
}

static struct wm_decision feed(uint64_t used_mib, uint64_t lent)
{
	struct dev_sample s = { MB_DEV_MEMINFO, 1000 * MiB, used_mib * MiB, 0, DEVICE_PSI_UNKNOWN };
	struct wm_decision d;
	now += 100;
	wm_sample(&w, &s, lent, now, &d);
	return d;
}

START_TEST(marks_parse)
{
	struct wm_mark m;
	ck_assert_int_eq(wm_parse_mark("90%", &m), 0);
	ck_assert_uint_eq(m.unit, MB_CTL_UNIT_PERCENT);
	ck_assert_uint_eq(m.value, 9000);
	ck_assert_int_eq(wm_parse_mark("110%", &m), 0);
	ck_assert_uint_eq(m.value, 11000);
	ck_assert_uint_eq(wm_resolve(&m, 1000), 1100);
	ck_assert_int_eq(wm_parse_mark("12.5%", &m), 0);
	ck_assert_uint_eq(m.value, 1250);
	ck_assert_int_eq(wm_parse_mark("64M", &m), 0);
	ck_assert_uint_eq(m.unit, MB_CTL_UNIT_BYTES);
	ck_assert_uint_eq(wm_resolve(&m, 1), 64 * MiB);
	ck_assert_int_eq(wm_parse_mark("off", &m), 0);
	ck_assert_uint_eq(wm_resolve(&m, 1000), WM_OFF);
	ck_assert_int_eq(wm_parse_mark("ninety", &m), -EINVAL);
	ck_assert_int_eq(wm_parse_mark("-5%", &m), -EINVAL);
}
END_TEST

START_TEST(notify_with_decay)
{
	setup_wm("80%", "70%", "", "", 0);
	struct wm_decision d = feed(790, 0);
	ck_assert_uint_eq(d.to, MB_MEM_NORMAL);
	ck_assert_uint_eq(d.giveback, 0);
	d = feed(800, 0);
	ck_assert_uint_eq(d.from, MB_MEM_NORMAL);
	ck_assert_uint_eq(d.to, MB_MEM_NOTIFY);
	/* Back under 70% of 1000 MiB: 100 MiB in pages. */
	ck_assert_uint_eq(d.giveback, 100 * MiB / PAGE);
	ck_assert_uint_eq(d.target, 700 * MiB);
	/* Between the marks: stays, and asks again only after retry_ms. */
	d = feed(750, 0);
	ck_assert_uint_eq(d.to, MB_MEM_NOTIFY);
	ck_assert_uint_eq(d.giveback, 0);
	for (int i = 0; i < 9; i++)
		d = feed(750, 0);
	ck_assert_uint_eq(d.giveback, 50 * MiB / PAGE);
	d = feed(700, 0);
	ck_assert_uint_eq(d.to, MB_MEM_NOTIFY); /* at the low mark: still in */
	d = feed(699, 0);
	ck_assert_uint_eq(d.from, MB_MEM_NOTIFY);
	ck_assert_uint_eq(d.to, MB_MEM_NORMAL);
	/* Without decay the high mark is also the low one. */
	setup_wm("80%", "", "", "", 0);
	ck_assert_uint_eq(feed(800, 0).to, MB_MEM_NOTIFY);
	ck_assert_uint_eq(feed(799, 0).to, MB_MEM_NORMAL);
}
END_TEST

START_TEST(deny_and_back)
{
	setup_wm("70%", "60%", "90%", "85%", 0);
	ck_assert_uint_eq(feed(950, 0).to, MB_MEM_DENY);
	struct wm_decision d = feed(880, 0);
	ck_assert_uint_eq(d.to, MB_MEM_DENY);
	d = feed(840, 0);
	ck_assert_uint_eq(d.from, MB_MEM_DENY);
	ck_assert_uint_eq(d.to, MB_MEM_NOTIFY);
	d = feed(500, 0);
	ck_assert_uint_eq(d.to, MB_MEM_NORMAL);
	/* A run-time change takes effect at the next sample. */
	ck_assert_int_eq(wm_set_mark(&w, MB_CTL_DENY_HIGH, MB_CTL_UNIT_PERCENT, 4000), 0);
	ck_assert_uint_eq(feed(500, 0).to, MB_MEM_DENY);
	ck_assert_int_eq(wm_set_mark(&w, MB_CTL_DENY_HIGH, MB_CTL_OFF, 0), 0);
	ck_assert_uint_eq(feed(500, 0).to, MB_MEM_NORMAL);
	ck_assert_int_eq(wm_set_mark(&w, MB_CTL_MARK_COUNT, 0, 0), -EINVAL);
	ck_assert_int_eq(wm_set_mark(&w, 0, 7, 0), -EINVAL);
}
END_TEST

START_TEST(committed_above_total)
{
	struct wm_config c = { .page_size = PAGE, .committed = 1, .retry_ms = 1000 };
	ck_assert_int_eq(wm_parse_mark("110%", &c.mark[MB_CTL_DENY_HIGH]), 0);
	wm_init(&w, &c);
	struct dev_sample s = { MB_DEV_MEMINFO, 1000 * MiB, 100 * MiB, 1050 * MiB,
				DEVICE_PSI_UNKNOWN };
	struct wm_decision d;
	wm_sample(&w, &s, 0, 10, &d);
	ck_assert_uint_eq(d.to, MB_MEM_NORMAL);
	s.committed = 1100 * MiB;
	wm_sample(&w, &s, 0, 20, &d);
	ck_assert_uint_eq(d.to, MB_MEM_DENY);
}
END_TEST

START_TEST(stall_notifies)
{
	struct wm_config c = { .page_size = PAGE, .retry_ms = 1000, .psi_notify = 1000 };
	for (int i = 0; i < MB_CTL_MARK_COUNT; i++)
		c.mark[i].unit = MB_CTL_OFF;
	wm_init(&w, &c);
	struct dev_sample s = { MB_DEV_MEMINFO, 1000 * MiB, 100 * MiB, 0, 999 };
	struct wm_decision d;
	wm_sample(&w, &s, 0, 10, &d);
	ck_assert_uint_eq(d.to, MB_MEM_NORMAL);
	s.psi_some = 1000;
	wm_sample(&w, &s, 0, 20, &d);
	ck_assert_uint_eq(d.to, MB_MEM_NOTIFY);
	ck_assert_int_eq(d.psi, 1);
	ck_assert_uint_eq(d.giveback, 0); /* no mark: no amount to ask for */
	s.psi_some = DEVICE_PSI_UNKNOWN;
	wm_sample(&w, &s, 0, 30, &d);
	ck_assert_uint_eq(d.to, MB_MEM_NORMAL);
}
END_TEST

START_TEST(early_warning)
{
	/* Deny at 900 MiB; lending 2560 pages (10 MiB) per 100 ms = 100 MiB/s. */
	setup_wm("95%", "", "90%", "", 2000);
	uint64_t lent = 0;
	struct wm_decision d = feed(500, lent);
	ck_assert_uint_eq(w.estimate_ms, WM_OFF);
	for (int i = 0; i < 20; i++) {
		lent += 2560;
		d = feed(500, lent);
	}
	/* 400 MiB at about 100 MiB/s: about 4 s, over the horizon. */
	ck_assert_uint_eq(d.to, MB_MEM_NORMAL);
	ck_assert_uint_gt(w.estimate_ms, 3500);
	ck_assert_uint_lt(w.estimate_ms, 4500);
	lent += 2560;
	d = feed(750, lent);
	/* 150 MiB: 1.5 s, under the horizon: notify early, before any mark. */
	ck_assert_uint_eq(d.to, MB_MEM_NOTIFY);
	ck_assert_int_eq(d.early, 1);
	ck_assert_uint_gt(d.giveback, 0);
	/* Lending stops: the estimate grows, the early notify ends. */
	for (int i = 0; i < 30; i++)
		d = feed(750, lent);
	ck_assert_uint_eq(d.to, MB_MEM_NORMAL);
	ck_assert_uint_eq(w.estimate_ms, WM_OFF);
}
END_TEST

START_TEST(lendable_follows_device)
{
	setup_wm("", "", "", "", 0);
	ck_assert_int_eq(wm_parse_mark("100M", &w.cfg.mark[MB_CTL_HEADROOM]), 0);
	ck_assert_uint_eq(wm_lendable(&w, 1000, 0), 1000); /* no sample yet */
	feed(600, 0);
	/* 1000 MiB - 600 outside - 100 headroom = 300 MiB. */
	ck_assert_uint_eq(wm_lendable(&w, UINT64_MAX, 0), 300 * MiB / PAGE);
	/* 200 MiB of the used memory is brokered: only 400 are outside. */
	ck_assert_uint_eq(wm_lendable(&w, UINT64_MAX, 200 * MiB), 500 * MiB / PAGE);
	ck_assert_uint_eq(wm_lendable(&w, 10, 0), 10);
	feed(990, 0);
	ck_assert_uint_eq(wm_lendable(&w, UINT64_MAX, 0), 0);
}
END_TEST

/* ---- broker hooks ------------------------------------------------------ */

#define MAXC 8
struct hc {
	struct bclient *bc;
	struct mb_msg last[4]; /* last frame of each of a few types */
	struct mb_msg grant, query, ack;
	int ngrant, nquery;
	uid_t uid;
};
static struct hc hcs[MAXC];
static struct broker *b;
static unsigned deny_all;
static uint64_t answered_given;

static void h_send(void *ctx, struct bclient *bc, const struct mb_msg *m)
{
	struct hc *c = broker_client_user(bc);
	(void)ctx;
	if (m->type == MB_MSG_GRANT) {
		c->grant = *m;
		c->ngrant++;
	} else if (m->type == MB_MSG_SHARE_QUERY) {
		c->query = *m;
		c->nquery++;
	} else {
		c->ack = *m;
	}
}

static void h_close(void *ctx, struct bclient *bc)
{
	(void)ctx;
	(void)bc;
}

static unsigned h_admit(void *ctx, struct bclient *c, unsigned type, uint64_t pages)
{
	(void)ctx;
	(void)type;
	(void)pages;
	return deny_all && broker_client_peer(c)->uid != 0 ? MB_ST_LOWMEM : MB_ST_OK;
}

static void h_answered(void *ctx, struct bclient *c, uint64_t asked, uint64_t given,
		       int timedout)
{
	(void)ctx;
	(void)c;
	(void)asked;
	(void)timedout;
	answered_given += given;
}

static const struct broker_ops hops = { .send = h_send, .close = h_close,
					.admit = h_admit, .answered = h_answered };

static struct hc *join(int i, unsigned kind, uid_t uid)
{
	struct hc *c = &hcs[i];
	memset(c, 0, sizeof(*c));
	struct broker_peer peer = { .pid = 100 + i, .uid = uid, .gid = uid };
	c->bc = broker_connect(b, &peer, c, now);
	struct mb_msg m;
	mb_msg_init(&m, MB_MSG_HELLO, 1);
	m.w[MB_W_HELLO_VERSION] = MB_WIRE_VERSION;
	m.w[MB_W_HELLO_KIND] = kind;
	broker_message(b, c->bc, &m, now);
	ck_assert(broker_client_registered(c->bc));
	return c;
}

static void ask(struct hc *c, unsigned type, uint64_t pages)
{
	struct mb_msg m;
	mb_msg_init(&m, type, 2);
	m.w[MB_W_REQ_PAGES] = pages;
	broker_message(b, c->bc, &m, now);
	ck_assert_int_eq(broker_check_invariants(b), 0);
}

static void answer(struct hc *c, uint64_t pages)
{
	struct mb_msg m;
	mb_msg_init(&m, MB_MSG_SHARE_ANSWER, c->query.seq);
	m.w[MB_W_ANS_PAGES] = pages;
	broker_message(b, c->bc, &m, now);
	ck_assert_int_eq(broker_check_invariants(b), 0);
}

static void setup_broker(uint64_t initial)
{
	struct broker_config cfg = { .page_size = PAGE, .initial = initial,
				     .request_deadline_ms = 1000, .share_deadline_ms = 500 };
	now = 1;
	deny_all = 0;
	answered_given = 0;
	b = broker_new(&cfg, &hops, NULL, now);
	ck_assert_ptr_nonnull(b);
}

static void teardown_broker(void)
{
	broker_free(b);
	b = NULL;
}

START_TEST(admit_refuses_with_lowmem)
{
	setup_broker(100);
	struct hc *user = join(0, MB_KIND_SINK, 1000);
	struct hc *root = join(1, MB_KIND_SINK, 0);
	deny_all = 1;
	ask(user, MB_MSG_REQUEST, 10);
	ck_assert_uint_eq(user->grant.w[MB_W_GRANT_STATUS], MB_ST_LOWMEM);
	ck_assert_uint_eq(user->grant.w[MB_W_GRANT_PAGES], 0);
	ask(user, MB_MSG_RESERVE, 10);
	ck_assert_uint_eq(user->grant.w[MB_W_GRANT_STATUS], MB_ST_LOWMEM);
	ask(root, MB_MSG_RESERVE, 10);
	ck_assert_uint_eq(root->grant.w[MB_W_GRANT_STATUS], MB_ST_OK);
	ck_assert_uint_eq(root->grant.w[MB_W_GRANT_PAGES], 10);
	ck_assert_str_eq(mb_wire_status_name(MB_ST_LOWMEM), "LOWMEM");
	teardown_broker();
}
END_TEST

START_TEST(give_back_largest_first)
{
	setup_broker(100);
	struct hc *small = join(0, MB_KIND_BIDI, 0);
	struct hc *big = join(1, MB_KIND_BIDI, 0);
	struct hc *sink = join(2, MB_KIND_SINK, 0);
	ask(small, MB_MSG_REQUEST, 10);
	ask(big, MB_MSG_REQUEST, 50);
	ask(sink, MB_MSG_REQUEST, 30);
	uint64_t asked = broker_give_back(b, 55, now, NULL, NULL);
	ck_assert_uint_eq(asked, 55);
	ck_assert_int_eq(big->nquery, 1);
	ck_assert_uint_eq(big->query.w[MB_W_SQ_PAGES], 50);
	ck_assert_uint_eq(big->query.w[MB_W_SQ_DEADLINE_MS], 500);
	ck_assert_int_eq(small->nquery, 1);
	ck_assert_uint_eq(small->query.w[MB_W_SQ_PAGES], 5);
	ck_assert_int_eq(sink->nquery, 0);
	/* Already asked: not asked twice. */
	ck_assert_uint_eq(broker_give_back(b, 10, now, NULL, NULL), 0);
	answer(big, 50);
	ck_assert_uint_eq(answered_given, 50);
	ck_assert_int_eq(broker_pool(b), 60);
	/* Silence until the deadline is reported with nothing given. */
	now += 600;
	broker_tick(b, now);
	ck_assert_uint_eq(answered_given, 50);
	ck_assert_int_eq(broker_check_invariants(b), 0);
	teardown_broker();
}
END_TEST

START_TEST(total_follows_device)
{
	setup_broker(100);
	struct hc *bidi = join(0, MB_KIND_BIDI, 0);
	ask(bidi, MB_MSG_REQUEST, 80);
	broker_set_initial(b, 50, now);
	/* 30 pages lent beyond the new total are asked back. */
	ck_assert_int_eq(broker_pool(b), -30);
	ck_assert_int_eq(bidi->nquery, 1);
	ck_assert_uint_eq(bidi->query.w[MB_W_SQ_PAGES], 30);
	answer(bidi, 30);
	ck_assert_int_eq(broker_pool(b), 0);
	ck_assert_uint_eq(broker_lent(b), 50);
	broker_set_initial(b, 100, now);
	ck_assert_int_eq(broker_pool(b), 50);
	ck_assert_int_eq(broker_check_invariants(b), 0);
	teardown_broker();
}
END_TEST

START_TEST(last_client_served_after_others)
{
	setup_broker(10);
	/* A bidi holder that does not answer keeps both requests waiting. */
	struct hc *holder = join(0, MB_KIND_BIDI, 0);
	struct hc *cheat = join(1, MB_KIND_SINK, 0);
	struct hc *fair = join(2, MB_KIND_SINK, 0);
	ask(holder, MB_MSG_REQUEST, 10);
	broker_client_set_last(cheat->bc, 1);
	ask(cheat, MB_MSG_RESERVE, 5);  /* queued first ... */
	ask(fair, MB_MSG_RESERVE, 5);   /* ... but this one goes ahead */
	ck_assert_int_eq(cheat->ngrant, 0);
	struct mb_msg m;
	mb_msg_init(&m, MB_MSG_RETURN, 3);
	m.w[MB_W_RET_PAGES] = 5;
	broker_message(b, holder->bc, &m, now);
	ck_assert_int_eq(fair->ngrant, 1);
	ck_assert_uint_eq(fair->grant.w[MB_W_GRANT_PAGES], 5);
	ck_assert_int_eq(cheat->ngrant, 0);
	broker_message(b, holder->bc, &m, now);
	ck_assert_int_eq(cheat->ngrant, 1);
	ck_assert_uint_eq(cheat->grant.w[MB_W_GRANT_PAGES], 5);
	ck_assert_int_eq(broker_check_invariants(b), 0);
	teardown_broker();
}
END_TEST

START_TEST(control_without_policy_is_unknown)
{
	setup_broker(10);
	struct hc *c = join(0, MB_KIND_SINK, 0);
	struct mb_msg m;
	mb_msg_init(&m, MB_MSG_CONTROL, 9);
	broker_message(b, c->bc, &m, now);
	ck_assert_uint_eq(c->ack.type, MB_MSG_CONTROL_ACK);
	ck_assert_uint_eq(c->ack.w[MB_W_CA_STATUS], MB_ST_UNKNOWN);
	teardown_broker();
}
END_TEST

static Suite *wm_suite(void)
{
	Suite *s = suite_create("watermark");
	TCase *t = tcase_create("device");
	tcase_add_test(t, meminfo_figures);
	tcase_add_test(t, cgroup_v1_and_v2);
	tcase_add_test(t, find_own_cgroup);
	tcase_add_test(t, own_private_memory);
	suite_add_tcase(s, t);
	t = tcase_create("policy");
	tcase_add_test(t, marks_parse);
	tcase_add_test(t, notify_with_decay);
	tcase_add_test(t, deny_and_back);
	tcase_add_test(t, committed_above_total);
	tcase_add_test(t, early_warning);
	tcase_add_test(t, stall_notifies);
	tcase_add_test(t, lendable_follows_device);
	suite_add_tcase(s, t);
	t = tcase_create("broker hooks");
	tcase_add_test(t, admit_refuses_with_lowmem);
	tcase_add_test(t, give_back_largest_first);
	tcase_add_test(t, total_follows_device);
	tcase_add_test(t, last_client_served_after_others);
	tcase_add_test(t, control_without_policy_is_unknown);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	mb_log_init("test_watermark", -1, MB_LOG_ERR);
	SRunner *sr = srunner_create(wm_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/*
 * policy.c - the memory policy of the daemon (see policy.h).
 *
 * Give-back check.  When a client is asked to give back, its private
 * resident memory is read; when it answers that it gave k pages, it is
 * read again.  The client honoured the request when its private memory
 * fell by giveback_honour percent of what it said (at most what it had),
 * or when it is now within what it still holds.  A client that did not is
 * served after the others from then on and flagged in the status.
 *
 * Both reads run in the daemon's one thread, and a process with many
 * mappings takes milliseconds to read: a give-back decision reads each
 * process once, however many of its connections it asks, and stops
 * reading after READ_BUDGET_NS.  It reads the processes it found slow
 * (a read of READ_BUDGET_NS or more) last, so that one slow process
 * cannot spend the budget of all the others; a client not read takes
 * the last audit's figure for its process, or goes unchecked.  The
 * second read does not follow each answer: answers are noted, and
 * CHECK_WAIT_MS after the first of them they are checked together, each
 * process read once (what it freed for all its connections by then),
 * within the same budget; the rest wait for the next turn of the loop.
 */
#include "config.h"
#include "policy.h"
#include "device.h"
#include "watermark.h"
#include "mb_clock.h"
#include "mb_log.h"
#include "mb_size.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define GB_MAX 64            /* open give-back checks remembered */
#define FIGURE 32

struct gb_check {
	uint64_t id;
	pid_t pid;
	uint64_t pages;
	uint64_t before; /* private bytes when asked */
	int have_before;
	int answered;    /* the answer waits for its check (check_answers) */
	int seen;        /* its client was found by this pass of the checks */
	uint64_t asked, given;
};

/* The reads of one give-back decision, or of one pass of the checks:
 * each process once, until the budget is spent. */
#define READ_BUDGET_NS (5 * 1000000ull)
#define CHECK_WAIT_MS 100
#define SLOW_PIDS 16
struct reads {
	uint64_t t0;
	int out;
	unsigned n, done;
	pid_t pid[GB_MAX];
	int rc[GB_MAX];
	uint64_t bytes[GB_MAX];
};

/*
 * One audit (audit()): each process's smaps_rollup is read once, however
 * many connections it has, and reading stops once the audit has spent
 * READ_BUDGET_NS in it (reads_get, as the give-back check reads): the
 * reads run in the daemon's one thread, and a process with many mappings
 * takes milliseconds to read.  The clients not read keep their last
 * figure, and the next audit starts with them.
 */
struct audit_run {
	struct policy *p;
	int phase;        /* 1: ids from the cursor on; 2: the ids before it */
	int next_set;
	uint64_t next;    /* the first client not read */
	unsigned clients;
};

struct policy {
	enum device_mode mode;
	char meminfo[MBS_PATH_MAX * 2];
	char cgroup[MBS_PATH_MAX * 2];
	char psi[MBS_PATH_MAX * 2];
	struct device_paths paths;
	uint64_t poll_ms, audit_ms, honour, overuse, share_ms;
	char escalate[MBS_LIST_MAX];
	int escalate_signal;
	uint64_t escalate_after;
	uid_t uids[MBS_MAX_IDS];
	size_t nuids;
	gid_t gids[MBS_MAX_IDS];
	size_t ngids;
	uint64_t page_size;
	uint64_t configured;  /* pages of the configuration */
	uint64_t applied;     /* pages the broker was last given */
	struct wm wm;
	uint64_t next_poll, next_audit;
	int read_failed;
	uint64_t resident;    /* brokered bytes found resident by the audit */
	uint64_t audit_lent;  /* pages lent at that audit */
	uint64_t audit_used;  /* device bytes used at that audit */
	uint64_t deny_since;
	uint64_t priv_short;  /* when a privileged RESERVE last found the pool short,
			       * or was seen still waiting at a poll */
	uint64_t last_escalation;
	struct gb_check gb[GB_MAX];
	size_t ngb, gb_next;
	int answers_due;       /* answers wait for their check */
	struct bclient *pick[GB_MAX]; /* the clients of the decision under way */
	uint64_t pick_pages[GB_MAX];
	size_t npick;
	unsigned pick_lost;
	pid_t slow[SLOW_PIDS]; /* processes whose last read took the budget */
	unsigned nslow, slow_next;
	uint64_t check_at;     /* ... until then */
	struct reads rd;
	uint64_t audit_cursor; /* client id the next audit reads first */
	struct broker *b;
	uint64_t now;
};

static void set_config(struct policy *p, const struct mbs_conf *cf,
		       const struct mbs_resolved *res)
{
	p->mode = (enum device_mode)cf->device;
	memcpy(p->meminfo, cf->device_meminfo, sizeof(p->meminfo));
	memcpy(p->cgroup, cf->device_cgroup, sizeof(p->cgroup));
	p->paths.meminfo = p->meminfo;
	p->paths.cgroup = p->cgroup;
	memcpy(p->psi, cf->device_psi, sizeof(p->psi));
	p->paths.psi = p->psi;
	p->poll_ms = cf->device_poll;
	p->audit_ms = cf->audit_interval;
	p->honour = cf->giveback_honour;
	p->overuse = cf->overuse_percent;
	p->share_ms = res->bc.share_deadline_ms;
	memcpy(p->escalate, cf->escalate_command, sizeof(p->escalate));
	p->escalate_after = cf->escalate_after;
	p->escalate_signal = res->escalate_signal;
	memcpy(p->uids, res->priv_uids, sizeof(p->uids));
	p->nuids = res->npriv_uids;
	memcpy(p->gids, res->priv_gids, sizeof(p->gids));
	p->ngids = res->npriv_gids;
	p->page_size = res->bc.page_size;
	p->configured = p->applied = res->bc.initial;
	if (p->mode == DEVICE_CGROUP && !p->cgroup[0]) {
		int rc = device_find_cgroup("/proc/self/cgroup", "/sys/fs/cgroup",
					    p->cgroup, sizeof(p->cgroup));
		if (rc != 0)
			mb_log(MB_LOG_WARNING, "cannot find the broker's memory cgroup (errno %d)", -rc);
		else
			mb_log(MB_LOG_NOTICE, "device: memory cgroup %s", p->cgroup);
	}
	p->read_failed = 0;
}

struct policy *policy_new(const struct mbs_conf *cf, const struct mbs_resolved *res)
{
	struct policy *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	set_config(p, cf, res);
	wm_init(&p->wm, &res->wm);
	return p;
}

void policy_free(struct policy *p)
{
	free(p);
}

void policy_reconfigure(struct policy *p, const struct mbs_conf *cf,
			const struct mbs_resolved *res)
{
	set_config(p, cf, res);
	wm_configure(&p->wm, &res->wm);
	p->next_poll = 0;
}

uint64_t policy_next_deadline(const struct policy *p)
{
	if (p->mode == DEVICE_NONE)
		return UINT64_MAX;
	if (p->answers_due)
		return p->check_at;
	uint64_t next = p->next_poll;
	if (p->audit_ms && p->wm.have_sample && p->next_audit < next)
		next = p->next_audit;
	return next;
}

static int privileged(const struct policy *p, const struct broker_peer *peer)
{
	return broker_peer_listed(peer, p->uids, p->nuids, p->gids, p->ngids);
}

static const char *fig(char *buf, uint64_t bytes)
{
	if (bytes == WM_OFF)
		return "off";
	mb_format_size(buf, FIGURE, bytes);
	return buf;
}

/* ---- reads of private memory ------------------------------------------ */

static void reads_begin(struct reads *r)
{
	r->t0 = mb_clock_ns();
	r->out = 0;
	r->n = r->done = 0;
}

static int slow_find(const struct policy *p, pid_t pid)
{
	for (unsigned i = 0; i < p->nslow; i++)
		if (p->slow[i] == pid)
			return (int)i;
	return -1;
}

/* A read of pid took ns: remembered as slow when it took the budget. */
static void slow_note(struct policy *p, pid_t pid, uint64_t ns)
{
	int i = slow_find(p, pid);
	if (ns < READ_BUDGET_NS) {
		if (i >= 0)
			p->slow[i] = p->slow[--p->nslow];
		return;
	}
	if (i >= 0)
		return;
	if (p->nslow < SLOW_PIDS)
		p->slow[p->nslow++] = pid;
	else
		p->slow[p->slow_next++ % SLOW_PIDS] = pid;
}

/* The private bytes of pid, read at most once in this audit, decision or pass
 * (p->rd): 0, -1 when they cannot be read, 1 when the budget is spent
 * and pid was not read. */
static int reads_get(struct policy *p, pid_t pid, uint64_t *bytes)
{
	struct reads *r = &p->rd;
	for (unsigned i = 0; i < r->n; i++) {
		if (r->pid[i] == pid) {
			*bytes = r->bytes[i];
			return r->rc[i];
		}
	}
	if (r->out)
		return 1;
	uint64_t b = 0, t0 = mb_clock_ns();
	int rc = device_private_bytes(pid, &b) == 0 ? 0 : -1;
	slow_note(p, pid, mb_clock_ns() - t0);
	r->done++;
	if (r->n < GB_MAX) {
		r->pid[r->n] = pid;
		r->rc[r->n] = rc;
		r->bytes[r->n++] = b;
	}
	if (mb_clock_ns() - r->t0 >= READ_BUDGET_NS)
		r->out = 1;
	*bytes = b;
	return rc;
}

/* ---- audit ------------------------------------------------------------- */

/* The private memory of c's process as a status word's figure. */
static uint64_t audit_figure(struct audit_run *a, struct bclient *c)
{
	uint64_t bytes = 0;
	int rc = reads_get(a->p, broker_client_peer(c)->pid, &bytes);
	if (rc > 0) {
		if (!a->next_set) {
			a->next = broker_client_id(c);
			a->next_set = 1;
		}
		return broker_client_private(c) & ~MB_SC_DISHONOURED;
	}
	if (rc < 0)
		return MB_SC_PRIVATE_UNKNOWN;
	return bytes < MB_SC_PRIVATE_MASK - 1 ? bytes : MB_SC_PRIVATE_MASK - 1;
}

static void audit_one(void *arg, struct bclient *c)
{
	struct audit_run *a = arg;
	struct policy *p = a->p;
	if ((a->phase == 1) != (broker_client_id(c) >= p->audit_cursor))
		return;
	a->clients++;
	uint64_t word = audit_figure(a, c);
	uint64_t flag = broker_client_last(c) ? MB_SC_DISHONOURED : 0;
	broker_client_set_private(c, word | flag);
	if (word == MB_SC_PRIVATE_UNKNOWN)
		return;
	int64_t bal = broker_client_balance(c);
	uint64_t grant = bal > 0 ? (uint64_t)bal * p->page_size : 0;
	p->resident += word < grant ? word : grant;
}

static void audit(struct policy *p, struct broker *b)
{
	struct audit_run a = { .p = p };
	reads_begin(&p->rd);
	p->resident = 0;
	p->audit_lent = broker_lent(b);
	p->audit_used = p->wm.dev.used;
	for (a.phase = 1; a.phase <= 2; a.phase++)
		broker_foreach(b, audit_one, &a);
	p->audit_cursor = a.next_set ? a.next : 0;
	mb_log(MB_LOG_DEBUG, "audit: %u clients, %u processes read in %llu us%s", a.clients,
	       p->rd.done, (unsigned long long)((mb_clock_ns() - p->rd.t0) / 1000),
	       p->rd.out ? "; the others next time" : "");
}

/*
 * Brokered memory that is resident now: what the last audit found, plus
 * what the device has used more since, as far as lending grew meanwhile
 * (a client growing into a new grant must not look like memory taken
 * outside the broker), at most all that is lent.  Pages lent but not yet
 * touched get no credit: counting them would let the pool grow by what it
 * has just lent.
 */
static uint64_t brokered_resident(const struct policy *p, uint64_t lent)
{
	uint64_t all = lent * p->page_size;
	uint64_t grown = lent > p->audit_lent ? (lent - p->audit_lent) * p->page_size : 0;
	uint64_t used = p->wm.dev.used > p->audit_used ? p->wm.dev.used - p->audit_used : 0;
	uint64_t est = p->resident + (grown < used ? grown : used);
	return est < all ? est : all;
}

/* ---- give-back --------------------------------------------------------- */


/* The gb entry of a client asked now (a slot reused in turn when the
 * table is full of clients that left unanswered). */
static struct gb_check *gb_slot(struct policy *p, uint64_t id)
{
	for (size_t i = 0; i < p->ngb; i++)
		if (p->gb[i].id == id && !p->gb[i].answered)
			return &p->gb[i];
	return p->ngb < GB_MAX ? &p->gb[p->ngb++] : &p->gb[p->gb_next++ % GB_MAX];
}

/* The "before" figure of c, asked for pages: read now, or the last
 * audit's, or none; then the decision's line. */
static void before_read(struct policy *p, struct bclient *c, uint64_t pages)
{
	const struct broker_peer *peer = broker_client_peer(c);
	struct gb_check *g = gb_slot(p, broker_client_id(c));
	const char *how = "";
	memset(g, 0, sizeof(*g));
	g->id = broker_client_id(c);
	g->pid = peer->pid;
	g->pages = pages;
	int rc = reads_get(p, peer->pid, &g->before);
	if (rc > 0) {
		uint64_t word = broker_client_private(c) & ~MB_SC_DISHONOURED;
		if (word != MB_SC_PRIVATE_UNKNOWN) {
			g->before = word;
			rc = 0;
			how = " (the last audit's: read budget spent)";
		}
	}
	g->have_before = rc == 0;
	char f1[FIGURE];
	mb_log(MB_LOG_NOTICE, "decision: give-back asked: client %lu (%s, pid %d) holds %ld pages, "
	       "asked %lu pages within %lu ms, private memory %s%s",
	       (unsigned long)broker_client_id(c), broker_client_name(c), (int)peer->pid,
	       (long)broker_client_balance(c), (unsigned long)pages,
	       (unsigned long)p->share_ms, rc == 0 ? fig(f1, g->before) :
	       rc > 0 ? "not read (read budget spent)" : "unknown", how);
}

/* broker_give_back's choice: the clients are gathered, then (c NULL, the
 * queries not sent yet) read, the processes found slow last. */
static void chosen(void *arg, struct bclient *c, uint64_t pages)
{
	struct policy *p = arg;
	if (c != NULL) {
		if (p->npick < GB_MAX) {
			p->pick[p->npick] = c;
			p->pick_pages[p->npick++] = pages;
		} else {
			p->pick_lost++;
		}
		return;
	}
	if (p->pick_lost > 0)
		mb_log(MB_LOG_NOTICE, "decision: give-back asked %u more clients, not checked "
		       "(%d checked at a time)", p->pick_lost, GB_MAX);
	p->pick_lost = 0;
	for (int late = 0; late <= 1; late++)
		for (size_t i = 0; i < p->npick; i++)
			if ((slow_find(p, broker_client_peer(p->pick[i])->pid) >= 0) == late)
				before_read(p, p->pick[i], p->pick_pages[i]);
	p->npick = 0;
}

/* The check of g's answer, with c's private memory now at after. */
static void check_answer(struct policy *p, struct bclient *c, const struct gb_check *g,
			 uint64_t after)
{
	const struct broker_peer *peer = broker_client_peer(c);
	uint64_t said = g->given * p->page_size;
	uint64_t freed = g->before > after ? g->before - after : 0;
	uint64_t need = (said < g->before ? said : g->before) * p->honour / 100;
	int64_t bal = broker_client_balance(c); /* the given pages are already taken */
	uint64_t holds = bal > 0 ? (uint64_t)bal * p->page_size : 0;
	int honoured = freed >= need || after <= holds;
	char f1[FIGURE], f2[FIGURE], f3[FIGURE], f4[FIGURE];
	mb_log(honoured ? MB_LOG_NOTICE : MB_LOG_WARNING,
	       "decision: give-back check: client %lu (%s, pid %d) said it gave %lu of %lu pages (%s); "
	       "private memory %s -> %s, freed %s: %s",
	       (unsigned long)broker_client_id(c), broker_client_name(c), (int)peer->pid,
	       (unsigned long)g->given, (unsigned long)g->asked, fig(f1, said), fig(f2, g->before),
	       fig(f3, after), fig(f4, freed),
	       honoured ? "honoured" : "NOT honoured: served after others from now on");
	if (!honoured) {
		broker_client_set_last(c, 1);
		broker_client_set_private(c, (after < MB_SC_PRIVATE_MASK ? after :
					      MB_SC_PRIVATE_MASK - 1) | MB_SC_DISHONOURED);
	}
}

static void log_unchecked(struct bclient *c, const struct gb_check *g, const char *why)
{
	mb_log(MB_LOG_NOTICE, "decision: give-back answered: client %lu (%s, pid %d) gave %lu "
	       "of %lu pages (not checked: %s)", (unsigned long)g->id, broker_client_name(c),
	       (int)g->pid, (unsigned long)g->given, (unsigned long)g->asked, why);
}

/* The answers of c that wait for their check (a pass of check_answers). */
static void check_client(void *arg, struct bclient *c)
{
	struct policy *p = arg;
	uint64_t id = broker_client_id(c);
	for (size_t i = 0; i < p->ngb;) {
		struct gb_check *g = &p->gb[i];
		uint64_t after = 0;
		int rc;
		if (g->id != id || !g->answered) {
			i++;
			continue;
		}
		g->seen = 1;
		rc = reads_get(p, g->pid, &after);
		if (rc > 0) {
			i++; /* the budget is spent: the next turn */
			continue;
		}
		if (rc == 0)
			check_answer(p, c, g, after);
		else
			log_unchecked(c, g, "private memory unknown");
		p->gb[i] = p->gb[--p->ngb];
	}
}

/* The answers noted since the last pass are checked, each process read
 * once, within READ_BUDGET_NS; those of clients gone meanwhile are
 * dropped. */
static void check_answers(struct policy *p, struct broker *b)
{
	reads_begin(&p->rd);
	for (size_t i = 0; i < p->ngb; i++)
		p->gb[i].seen = 0;
	broker_foreach(b, check_client, p);
	p->answers_due = 0;
	for (size_t i = 0; i < p->ngb;) {
		struct gb_check *g = &p->gb[i];
		if (!g->answered) {
			i++;
		} else if (g->seen) {
			p->answers_due = 1; /* the budget was spent: the next turn */
			i++;
		} else {
			mb_log(MB_LOG_INFO, "decision: give-back answered: client %lu (pid %d) "
			       "left before its check", (unsigned long)g->id, (int)g->pid);
			p->gb[i] = p->gb[--p->ngb];
		}
	}
	mb_log(MB_LOG_DEBUG, "give-back checks: %u processes read%s", p->rd.done,
	       p->answers_due ? "; the others next turn" : "");
}

void policy_answered(struct policy *p, struct bclient *c, uint64_t asked,
		     uint64_t given, int timedout)
{
	const struct broker_peer *peer = broker_client_peer(c);
	struct gb_check *g = NULL;
	size_t i;
	for (i = 0; i < p->ngb; i++) {
		if (p->gb[i].id == broker_client_id(c) && !p->gb[i].answered) {
			g = &p->gb[i];
			break;
		}
	}
	if (!g)
		return; /* a query of the broker's own, not a give-back */
	g->asked = asked;
	g->given = given;
	if (given == 0) {
		mb_log(MB_LOG_NOTICE, "decision: give-back answered: client %lu (%s, pid %d) gave 0 of "
		       "%lu pages (%s)", (unsigned long)broker_client_id(c), broker_client_name(c),
		       (int)peer->pid, (unsigned long)asked, timedout ? "deadline passed" : "refused");
		p->gb[i] = p->gb[--p->ngb];
		return;
	}
	if (!g->have_before) {
		log_unchecked(c, g, "private memory unknown when asked");
		p->gb[i] = p->gb[--p->ngb];
		return;
	}
	/* Checked with the answers that come meanwhile (check_answers). */
	g->answered = 1;
	if (!p->answers_due)
		p->check_at = p->now + CHECK_WAIT_MS;
	p->answers_due = 1;
}

/* ---- escalation -------------------------------------------------------- */

static void run_command(const char *cmd, const char *reason)
{
	pid_t pid = fork();
	if (pid < 0) {
		mb_log(MB_LOG_ERR, "escalation: fork: errno %d", errno);
		return;
	}
	if (pid == 0) {
		/* Detach twice so the daemon never waits for the command. */
		if (fork() == 0) {
			setenv("MB_REASON", reason, 1);
			execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
			_exit(127);
		}
		_exit(0);
	}
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}

struct victim {
	struct bclient *c;
	int64_t balance;
};

static void pick_expendable(void *arg, struct bclient *c)
{
	struct victim *v = arg;
	int64_t bal = broker_client_balance(c);
	if (!(broker_client_flags(c) & MB_HELLO_EXPENDABLE) || broker_client_peer(c)->pid <= 0)
		return;
	if (!v->c || bal > v->balance) {
		v->c = c;
		v->balance = bal;
	}
}

static void signal_expendable(struct policy *p, struct broker *b, const char *reason)
{
	struct victim v = { NULL, 0 };
	broker_foreach(b, pick_expendable, &v);
	if (!v.c) {
		mb_log(MB_LOG_WARNING, "decision: escalation: no client registered as expendable "
		       "to signal: %s", reason);
		return;
	}
	const struct broker_peer *peer = broker_client_peer(v.c);
	mb_log(MB_LOG_WARNING, "decision: escalation: signal %d to client %lu (%s, pid %d) "
	       "holding %ld pages, registered as expendable: %s", p->escalate_signal,
	       (unsigned long)broker_client_id(v.c), broker_client_name(v.c), (int)peer->pid,
	       (long)v.balance, reason);
	if (kill(peer->pid, p->escalate_signal) != 0)
		mb_log(MB_LOG_WARNING, "escalation: kill %d: errno %d", (int)peer->pid, errno);
}

/* A privileged RESERVE still in the queue is still not met. */
static void note_priv_waiting(void *arg, struct bclient *c)
{
	struct policy *p = arg;

	if (broker_client_reserve_waiting(c) && privileged(p, broker_client_peer(c)))
		p->priv_short = p->now ? p->now : 1;
}

static void escalate(struct policy *p, struct broker *b, uint64_t now)
{
	if (p->wm.state != MB_MEM_DENY) {
		p->deny_since = 0;
		p->priv_short = 0;
		return;
	}
	/* Seen at its admission only, a RESERVE that came soon after deny
	 * began, or before the broker was late for a poll, never escalated
	 * however long it waited. */
	broker_foreach(b, note_priv_waiting, p);
	if (p->deny_since == 0)
		p->deny_since = now;
	if ((!p->escalate[0] && !p->escalate_signal) || now - p->deny_since < p->escalate_after ||
	    !p->priv_short || now - p->priv_short > p->escalate_after ||
	    (p->last_escalation && now - p->last_escalation < p->escalate_after))
		return;
	p->last_escalation = now;
	char reason[256], f1[FIGURE], f2[FIGURE], f3[FIGURE];
	mb_format(reason, sizeof(reason), "deny for %lu ms: device uses %s of %s (deny_high %s), "
		  "a privileged RESERVE could not be met",
		  (unsigned long)(now - p->deny_since), fig(f1, p->wm.measure),
		  fig(f2, p->wm.dev.total), fig(f3, p->wm.res[MB_CTL_DENY_HIGH]));
	if (p->escalate[0]) {
		mb_log(MB_LOG_WARNING, "decision: escalation: running '%s': %s", p->escalate, reason);
		run_command(p->escalate, reason);
	}
	if (p->escalate_signal)
		signal_expendable(p, b, reason);
}

/* ---- the poll ---------------------------------------------------------- */

static void transition(struct policy *p, struct broker *b, const struct wm_decision *d)
{
	const struct wm *w = &p->wm;
	char f1[FIGURE], f2[FIGURE], f3[FIGURE], f4[FIGURE];
	uint64_t mark = d->to == MB_MEM_DENY ? w->res[MB_CTL_DENY_HIGH] :
		d->to == MB_MEM_NOTIFY ? w->res[MB_CTL_NOTIFY_HIGH] :
		w->res[d->from == MB_MEM_DENY ? MB_CTL_DENY_LOW : MB_CTL_NOTIFY_LOW];
	char psi[48] = "";
	if (w->dev.psi_some != DEVICE_PSI_UNKNOWN)
		mb_format(psi, sizeof(psi), ", psi some %lu.%02lu%%",
			  (unsigned long)(w->dev.psi_some / 100), (unsigned long)(w->dev.psi_some % 100));
	mb_log(MB_LOG_NOTICE, "decision: %s -> %s%s: device uses %s of %s (mark %s, lent %s%s)",
	       wm_state_name(d->from), wm_state_name(d->to),
	       d->early ? " (early)" : d->psi ? " (stall)" : "",
	       fig(f1, w->measure), fig(f2, w->dev.total), fig(f3, mark),
	       fig(f4, broker_lent(b) * p->page_size), psi);
	if (d->early) {
		mb_log(MB_LOG_NOTICE, "decision: early warning: deny in about %lu ms at %ld pages/s "
		       "(horizon %lu ms)", (unsigned long)w->estimate_ms, (long)w->rate_pps,
		       (unsigned long)w->cfg.horizon_ms);
		broker_post_event(b, MB_EV_MEM_EARLY, w->estimate_ms);
	}
	uint64_t pages = w->measure / (p->page_size ? p->page_size : 1);
	unsigned ev = d->to == MB_MEM_DENY ? MB_EV_MEM_DENY :
		d->to == MB_MEM_NOTIFY ? MB_EV_MEM_NOTIFY : MB_EV_MEM_OK;
	broker_post_event(b, ev, pages);
}

static void follow_device(struct policy *p, struct broker *b, uint64_t now)
{
	/* Without the audit, brokered and outside memory cannot be told apart. */
	if (!p->audit_ms)
		return;
	uint64_t want = wm_lendable(&p->wm, p->configured, brokered_resident(p, broker_lent(b)));
	uint64_t step = p->configured / 128 ? p->configured / 128 : 1;
	uint64_t diff = want > p->applied ? want - p->applied : p->applied - want;
	if (diff < step && !(want == p->configured && p->applied != want))
		return;
	char f1[FIGURE], f2[FIGURE], f3[FIGURE];
	uint64_t lent = broker_lent(b);
	mb_log(MB_LOG_NOTICE, "decision: lendable %lu -> %lu pages: device %s, used %s, "
	       "headroom %s, lent %lu pages%s", (unsigned long)p->applied,
	       (unsigned long)want, fig(f1, p->wm.dev.total), fig(f2, p->wm.dev.used),
	       fig(f3, p->wm.res[MB_CTL_HEADROOM]), (unsigned long)lent,
	       want < lent ? ": asking the difference back" : "");
	p->applied = want;
	broker_set_initial(b, want, now);
}

/* Read the device and act on the decision.  0, or -1 when unreadable. */
static int poll_device(struct policy *p, struct broker *b, uint64_t now)
{
	struct dev_sample s;
	int rc = device_read(&p->paths, p->mode, &s);
	if (rc != 0) {
		if (!p->read_failed)
			mb_log(MB_LOG_WARNING, "cannot read the device (%s) (errno %d): "
			       "watermarks wait for a reading",
			       p->mode == DEVICE_CGROUP ? p->cgroup : p->meminfo, -rc);
		p->read_failed = 1;
		return -1;
	}
	if (p->read_failed)
		mb_log(MB_LOG_NOTICE, "device readable again");
	p->read_failed = 0;
	struct wm_decision d;
	wm_sample(&p->wm, &s, broker_lent(b), now, &d);
	if (d.to != d.from)
		transition(p, b, &d);
	if (d.giveback) {
		char f1[FIGURE], f2[FIGURE];
		reads_begin(&p->rd);
		uint64_t asked = broker_give_back(b, d.giveback, now, chosen, p);
		mb_log(asked ? MB_LOG_NOTICE : MB_LOG_INFO, "decision: give-back: device uses %s, "
		       "target %s: %lu pages wanted, %lu asked", fig(f1, p->wm.measure),
		       fig(f2, d.target), (unsigned long)d.giveback, (unsigned long)asked);
		mb_log(MB_LOG_DEBUG, "give-back: %u processes read%s", p->rd.done,
		       p->rd.out ? "; the read budget is spent" : "");
	}
	return 0;
}

void policy_tick(struct policy *p, struct broker *b, uint64_t now)
{
	p->b = b;
	p->now = now;
	if (p->mode == DEVICE_NONE)
		return;
	if (p->answers_due && now >= p->check_at)
		check_answers(p, b);
	int sampled = 0;
	if (now >= p->next_poll) {
		p->next_poll = now + p->poll_ms;
		sampled = poll_device(p, b, now) == 0;
	}
	/* The audit pairs with a sample (audit_used): never before the first. */
	if (p->audit_ms && now >= p->next_audit && p->wm.have_sample) {
		audit(p, b);
		p->next_audit = now + p->audit_ms;
	}
	if (sampled) {
		follow_device(p, b, now);
		escalate(p, b, now);
	}
}

/* ---- hooks ------------------------------------------------------------- */

unsigned policy_admit(struct policy *p, struct bclient *c, unsigned type,
		      uint64_t pages)
{
	if (p->mode == DEVICE_NONE || p->wm.state != MB_MEM_DENY)
		return MB_ST_OK;
	const struct broker_peer *peer = broker_client_peer(c);
	char f1[FIGURE], f2[FIGURE];
	if (privileged(p, peer)) {
		if (type == MB_MSG_RESERVE && p->b &&
		    (int64_t)pages > broker_pool(p->b)) {
			p->priv_short = p->now ? p->now : 1;
			mb_log(MB_LOG_NOTICE, "decision: deny: privileged RESERVE of %lu pages from "
			       "client %lu (uid %u) finds %ld pages in the pool",
			       (unsigned long)pages, (unsigned long)broker_client_id(c),
			       (unsigned)peer->uid, (long)broker_pool(p->b));
		}
		return MB_ST_OK;
	}
	mb_log(MB_LOG_INFO, "decision: deny: %s of %lu pages from client %lu (uid %u) refused: "
	       "device uses %s, deny_high %s", mb_wire_type_name(type), (unsigned long)pages,
	       (unsigned long)broker_client_id(c), (unsigned)peer->uid, fig(f1, p->wm.measure),
	       fig(f2, p->wm.res[MB_CTL_DENY_HIGH]));
	return MB_ST_LOWMEM;
}

static const char *const mark_names[MB_CTL_MARK_COUNT] = {
	"notify_high", "notify_low", "deny_high", "deny_low", "headroom"
};

void policy_control(struct policy *p, struct broker *b, struct bclient *c,
		    const struct mb_msg *m, struct mb_msg *r)
{
	const struct broker_peer *peer = broker_client_peer(c);
	uint64_t op = m->w[MB_W_CTL_OP], mark = m->w[MB_W_CTL_MARK];
	uint64_t unit = m->w[MB_W_CTL_UNIT], value = m->w[MB_W_CTL_VALUE];
	unsigned st = MB_ST_OK;
	if (op == MB_CTL_SET) {
		if (!privileged(p, peer))
			st = MB_ST_PERM;
		else if (mark >= MB_CTL_MARK_COUNT || unit > MB_CTL_OFF ||
			 (unit == MB_CTL_UNIT_PERCENT && value > PERCENT_MAX_HUNDREDTHS))
			st = MB_ST_INVAL;
		if (st == MB_ST_OK) {
			wm_set_mark(&p->wm, (unsigned)mark, (unsigned)unit, value);
			p->next_poll = p->now; /* act on it at once */
			mb_log(MB_LOG_NOTICE, "decision: %s set to %lu%s by uid %u (pid %d)",
			       mark_names[mark], (unsigned long)(unit == MB_CTL_UNIT_PERCENT ?
								 value / 100 : value),
			       unit == MB_CTL_UNIT_PERCENT ? "%" : unit == MB_CTL_OFF ? " (off)" : " bytes",
			       (unsigned)peer->uid, (int)peer->pid);
		} else {
			mb_log(MB_LOG_NOTICE, "CONTROL from uid %u (pid %d) refused: %s",
			       (unsigned)peer->uid, (int)peer->pid, mb_wire_status_name(st));
		}
	} else if (op != MB_CTL_GET) {
		st = MB_ST_INVAL;
	}
	const struct wm *w = &p->wm;
	r->w[MB_W_CA_STATUS] = st;
	r->w[MB_W_CA_STATE] = w->state;
	r->w[MB_W_CA_SOURCE] = p->mode == DEVICE_NONE || !w->have_sample ? MB_DEV_NONE : w->dev.source;
	r->w[MB_W_CA_DEV_TOTAL] = w->dev.total;
	r->w[MB_W_CA_DEV_USED] = w->measure;
	for (unsigned i = 0; i < MB_CTL_MARK_COUNT; i++)
		r->w[MB_W_CA_NOTIFY_HIGH + i] = w->have_sample ? w->res[i] :
			wm_resolve(&w->cfg.mark[i], 0);
	r->w[MB_W_CA_LENDABLE] = p->applied;
	r->w[MB_W_CA_LENT] = broker_lent(b);
	r->w[MB_W_CA_RATE] = (uint64_t)w->rate_pps;
	r->w[MB_W_CA_ESTIMATE_MS] = w->estimate_ms;
	r->w[MB_W_CA_OVERUSE_PCT] = p->overuse;
	r->w[MB_W_CA_POLL_MS] = p->mode == DEVICE_NONE ? 0 : p->poll_ms;
}

/*
 * policy.h - the daemon side of the memory policy: it reads the device
 * (device.c) at the poll interval, feeds the watermark state machine
 * (watermark.c), and acts on its decisions through the broker's hooks:
 * events, the deny check, give-back queries and their check against each
 * client's private memory, the lendable total, the audit, escalation.
 * Every decision is logged on one "decision:" line with its figures.
 */
#ifndef MBSERVER_POLICY_H
#define MBSERVER_POLICY_H

#include <stdint.h>

#include "broker.h"
#include "conf.h"

struct policy;

struct policy *policy_new(const struct mbs_conf *cf, const struct mbs_resolved *res);
void policy_free(struct policy *p);
/* Reload: marks set at run time are replaced by the file's. */
void policy_reconfigure(struct policy *p, const struct mbs_conf *cf,
			const struct mbs_resolved *res);
/* Earliest time policy_tick() has work; UINT64_MAX when the view is off. */
uint64_t policy_next_deadline(const struct policy *p);
void policy_tick(struct policy *p, struct broker *b, uint64_t now);

/* broker_ops hooks. */
unsigned policy_admit(struct policy *p, struct bclient *c, unsigned type,
		      uint64_t pages);
void policy_control(struct policy *p, struct broker *b, struct bclient *c,
		    const struct mb_msg *m, struct mb_msg *reply);
void policy_answered(struct policy *p, struct bclient *c, uint64_t asked,
		     uint64_t given, int timedout);

#endif /* MBSERVER_POLICY_H */

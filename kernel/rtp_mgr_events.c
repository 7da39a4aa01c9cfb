// SPDX-License-Identifier: GPL-2.0-only
/*
 * rtp_mgr_events.c - channel events over generic netlink (ABI 2.1).
 *
 * Control events (START, STOP, RESET, CONFIGURE, ATTACH, DETACH, RECLAIM,
 * EVICT) are sent when they happen. Data-path events are rate-limited per
 * channel to one per RTPM_EVENT_INTERVAL_MS and kind, and carry the count
 * since the last one: OVERRUN and LOSS are derived from the channel's
 * counters (so no hot path needs a hook of its own), STUCK from a scan of
 * the slots once a second for holders older than the stuck_ms parameter.
 * Nothing is built or sent while nobody listens (genl_has_listeners()).
 */
#include <linux/ktime.h>
#include <linux/workqueue.h>
#include <net/genetlink.h>

#include "rtp_mgr_ring.h"

static const struct genl_multicast_group rtpm_genl_mcgrps[] = {
	{ .name = RTPM_GENL_MCGRP_EVENTS },
};

static struct genl_family rtpm_genl_family __ro_after_init = {
	.name = RTPM_GENL_NAME,
	.version = RTPM_GENL_VERSION,
	.maxattr = RTPM_GENL_A_MAX,
	.module = THIS_MODULE,
	.mcgrps = rtpm_genl_mcgrps,
	.n_mcgrps = ARRAY_SIZE(rtpm_genl_mcgrps),
};

static struct rtpm_channel *rtpm_ev_channels;
static unsigned int rtpm_ev_nr_channels;
static u32 rtpm_ev_stuck_ms;
static void rtpm_stuck_scan(struct work_struct *work);
static DECLARE_DELAYED_WORK(rtpm_stuck_work, rtpm_stuck_scan);

/* True if a listener has joined the events group. */
static bool rtpm_events_wanted(void)
{
	return genl_has_listeners(&rtpm_genl_family, &init_net, 0);
}

/**
 * rtpm_event - send one event to the events group
 * @ch: the channel
 * @event: RTPM_EVENT_*
 * @count: what the event counts (1 for control events)
 * @pid: the process that caused it, 0 for the kernel
 * @gfp: GFP_ATOMIC from softirq or under a spinlock, else GFP_KERNEL
 */
void rtpm_event(struct rtpm_channel *ch, u32 event, u64 count, u32 pid,
		gfp_t gfp)
{
	struct sk_buff *skb;
	void *hdr;

	if (!rtpm_events_wanted())
		return;
	skb = genlmsg_new(3 * nla_total_size(sizeof(u32)) +
			  2 * nla_total_size_64bit(sizeof(u64)), gfp);
	if (!skb)
		return;
	hdr = genlmsg_put(skb, 0, 0, &rtpm_genl_family, 0,
			  RTPM_GENL_CMD_EVENT);
	if (!hdr ||
	    nla_put_u32(skb, RTPM_GENL_A_CHANNEL, ch->index) ||
	    nla_put_u32(skb, RTPM_GENL_A_EVENT, event) ||
	    nla_put_u32(skb, RTPM_GENL_A_PID, pid) ||
	    nla_put_u64_64bit(skb, RTPM_GENL_A_COUNT, count,
			      RTPM_GENL_A_PAD) ||
	    nla_put_u64_64bit(skb, RTPM_GENL_A_TIME_NS, ktime_get_ns(),
			      RTPM_GENL_A_PAD)) {
		nlmsg_free(skb);
		return;
	}
	genlmsg_end(skb, hdr);
	/* -ESRCH (nobody listens any more) is not an error. */
	genlmsg_multicast(&rtpm_genl_family, skb, 0, 0, gfp);
}

/* A control event caused by the current process. */
void rtpm_event_current(struct rtpm_channel *ch, u32 event, u64 count)
{
	rtpm_event(ch, event, count, task_tgid_nr(current), GFP_KERNEL);
}

/*
 * Under ch->lock, after a data-path operation: what the OVERRUN and LOSS
 * events have to report now, if their interval has passed. The caller
 * sends them with rtpm_events_send() after dropping the lock.
 */
void rtpm_events_collect_locked(struct rtpm_channel *ch,
				struct rtpm_pending_events *pe)
{
	u64 now, overruns, lost;

	pe->overruns = 0;
	pe->lost = 0;
	if (!rtpm_events_wanted())
		return;
	now = ktime_get_ns();
	if (now < ch->ev_next_ns)
		return;
	overruns = ch->stats.overruns + ch->stats.drops;
	lost = ch->stats.rtp_lost;
	if (overruns > ch->ev_overruns)
		pe->overruns = overruns - ch->ev_overruns;
	if (lost > ch->ev_lost)
		pe->lost = lost - ch->ev_lost;
	/* rtp_lost goes down when a late packet fills a gap: follow it. */
	ch->ev_overruns = overruns;
	ch->ev_lost = lost;
	if (pe->overruns || pe->lost)
		ch->ev_next_ns = now + RTPM_EVENT_INTERVAL_MS * NSEC_PER_MSEC;
}

void rtpm_events_send(struct rtpm_channel *ch,
		      const struct rtpm_pending_events *pe, gfp_t gfp)
{
	if (pe->overruns)
		rtpm_event(ch, RTPM_EVENT_OVERRUN, pe->overruns, 0, gfp);
	if (pe->lost)
		rtpm_event(ch, RTPM_EVENT_LOSS, pe->lost, 0, gfp);
}

/* Once a second: slots held longer than stuck_ms, per channel. */
static void rtpm_stuck_scan(struct work_struct *work)
{
	u64 now = ktime_get_ns(), limit = (u64)rtpm_ev_stuck_ms * NSEC_PER_MSEC;
	unsigned int c;

	for (c = 0; limit && rtpm_events_wanted() && c < rtpm_ev_nr_channels;
	     c++) {
		struct rtpm_channel *ch = &rtpm_ev_channels[c];
		u32 i, n = 0, pid = 0;
		u64 oldest = U64_MAX;

		spin_lock_bh(&ch->lock);
		for (i = 0; now >= ch->ev_stuck_next_ns &&
		     i < ch->ring->slot_count; i++) {
			struct rtpm_slot *s = &ch->ring->slots[i];

			if (!s->owner || now - s->since_ns < limit)
				continue;
			n++;
			if (s->since_ns < oldest) {
				oldest = s->since_ns;
				pid = s->owner->tgid;
			}
		}
		/* The same holder is reported again after 5 s at most. */
		if (n)
			ch->ev_stuck_next_ns = now + 5 * NSEC_PER_SEC;
		spin_unlock_bh(&ch->lock);
		if (n)
			rtpm_event(ch, RTPM_EVENT_STUCK, n, pid, GFP_KERNEL);
	}
	schedule_delayed_work(&rtpm_stuck_work, HZ);
}

int __init rtpm_events_init(struct rtpm_channel *channels, unsigned int n,
			    u32 stuck_ms)
{
	int err = genl_register_family(&rtpm_genl_family);

	if (err)
		return err;
	rtpm_ev_channels = channels;
	rtpm_ev_nr_channels = n;
	rtpm_ev_stuck_ms = stuck_ms;
	schedule_delayed_work(&rtpm_stuck_work, HZ);
	return 0;
}

void rtpm_events_exit(void)
{
	cancel_delayed_work_sync(&rtpm_stuck_work);
	genl_unregister_family(&rtpm_genl_family);
}

/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * rtp_mgr_ring.h - channel and slot state machine of the rtp_mgr module.
 *
 * Vocabulary (used in every function name, as in net/xdp/xsk_queue.h):
 * the producer does RESERVE, WRITE (in user space) and PUSH; the consumer
 * does POP, READ (in user space) and RELEASE. Functions named rtpm_ring_*
 * need the channel spinlock, except the lockless rtpm_ring_can_*() wait
 * conditions; rtpm_chan_* take it themselves, except those named *_locked.
 *
 * Ring indices are free-running u32 counters, slot = index & mask:
 *
 *   release <= consumer <= producer <= reserve <= release + slot_count
 *
 *   [release, consumer)   CONSUMING, or FREE (released out of order)
 *   [consumer, producer)  READY, or FREE (a hole: its producer died)
 *   [producer, reserve)   PRODUCING, READY (pushed out of order) or FREE
 *   [reserve, release + slot_count)   FREE
 *
 * After every state change rtpm_ring_advance() moves producer, consumer and
 * release over finished slots, so the slot at consumer (if consumer !=
 * producer) is always READY and the slot at release (if release !=
 * consumer) is always CONSUMING. RESERVE takes the slot at reserve, POP the
 * slot at consumer; PUSH and RELEASE may come in any order.
 */
#ifndef _RTP_MGR_RING_H
#define _RTP_MGR_RING_H

#include <linux/hrtimer.h>
#include <linux/miscdevice.h>
#include <linux/mutex.h>
#include <linux/spinlock.h>
#include <linux/types.h>
#include <linux/wait.h>

#include "rtp_mgr_ioctl.h"
#include "rtp_mgr_rtp.h"

enum rtpm_slot_state {
	RTPM_SLOT_FREE = 0,
	RTPM_SLOT_PRODUCING,
	RTPM_SLOT_READY,
	RTPM_SLOT_CONSUMING,
};

struct rtpm_file;
struct rtpm_attachment;
struct rtpm_capture_queue;
struct sk_buff;

/*
 * Kernel-private per-slot state; never mapped to user space. The owner is
 * the open file itself: a file gives back every slot it owns before it is
 * freed (rtpm_chan_reclaim()), so no slot ever points at a freed file, and
 * unlike a counter the pointer cannot wrap around to another live file.
 */
struct rtpm_slot {
	struct rtpm_file *owner;	/* NULL if FREE or READY */
	u64 since_ns;			/* when owner took it (RECLAIM) */
	u8 state;			/* enum rtpm_slot_state */
};

/*
 * Pages of one mapped region, allocated one by one and charged to the
 * caller's memory cgroup (GFP_KERNEL_ACCOUNT), then vmap()ed VM_USERMAP so
 * that remap_vmalloc_range() can map them, as kernel/bpf/ringbuf.c does.
 */
struct rtpm_region {
	void *addr;
	struct page **pages;
	unsigned int nr_pages;
};

/* A ring allocation; replaced as a whole by CONFIGURE. */
struct rtpm_ring {
	struct rtpm_config cfg;
	u32 slot_count;
	u32 mask;
	u32 slot_stride;
	size_t meta_size;	/* header page + descriptor table, page aligned */
	size_t payload_size;	/* page aligned */
	struct rtpm_region meta_region;
	struct rtpm_region payload_region;
	void *meta;		/* == meta_region.addr */
	void *payload;		/* == payload_region.addr */
	struct rtpm_ring_header *hdr;	/* == meta */
	struct rtpm_slot_desc *desc;	/* meta + PAGE_SIZE */
	struct rtpm_slot *slots;	/* kvcalloc(slot_count) */
};

/*
 * One channel, /dev/rtp_mgrN.
 *
 * Locking: cfg_lock (a mutex) serialises the slow control operations that
 * may sleep or allocate: CONFIGURE, START, STOP, RESET and mmap. lock (a
 * spinlock) protects the ring indices, the slot states, the counters and
 * the seq tracker. The data path takes lock once per batch, not once per
 * slot: a batch of 32 slots costs one lock round trip, and the critical
 * section only flips a few bytes per slot, so a lock-free design would buy
 * little while making ownership checks (which need a consistent view of
 * state and owner) much harder to get right. ring may only be replaced with
 * both locks held, so holding either one keeps it alive.
 *
 * Since ABI 2.1 the kernel itself produces (an attached RX socket, in
 * softirq context) and consumes (the TX worker), so process context takes
 * lock with spin_lock_bh(); the softirq paths (encap_rcv, the hrtimers in
 * HRTIMER_MODE_*_SOFT) take it with spin_lock(). Nothing takes it in hard
 * interrupt context.
 */
struct rtpm_channel {
	struct miscdevice misc;
	char name[24];		/* "rtp_mgr" + any u32 */
	u32 index;

	struct mutex cfg_lock;	/* control path, see above */
	spinlock_t lock;	/* slot states, indices, counters */
	wait_queue_head_t wq;	/* POP waiters and RESERVE/PUSH waiters */

	struct rtpm_ring *ring;
	bool running;
	/* Running-to-stopped transitions, under lock; poll and POP see STOP by it. */
	u32 stop_seq;
	/* Role holders (RTPM_IOC_CLAIM), under lock; NULL if unclaimed. */
	struct rtpm_file *producer_file;
	struct rtpm_file *consumer_file;
	/* Copies of ring fields for the lockless wait conditions. */
	u32 slot_count;
	u32 drop_policy;

	/* Shadow copies of the indices; the header words mirror them. */
	u32 reserve;
	u32 producer;
	u32 consumer;
	u32 release;
	u32 n_producing;
	u32 n_ready;
	u32 n_consuming;

	u32 openers;		/* under lock */
	atomic_t mappings;	/* live VMAs, counted by vm_ops open/close */

	struct rtpm_stats stats;
	struct rtpm_seq_tracker seq;

	/*
	 * Wake-up coalescing (SET_WAKEUP), under lock. wake_due says that
	 * consumers may run: set when wake_slots slots became READY since the
	 * last wake-up, when wake_timer fired (the oldest of them waited
	 * wake_ns), when the ring is full or the channel stopped; cleared when
	 * the ring is drained. The wait conditions read it locklessly.
	 */
	u32 wake_slots;
	u64 wake_ns;
	u32 wake_pending;
	bool wake_due;
	bool wake_needed;	/* wake once the lock is dropped */
	struct hrtimer wake_timer;

	/* Attached sockets (rtp_mgr_attach.c), under lock; NULL if none. */
	struct rtpm_attachment *rx_att;
	struct rtpm_attachment *tx_att;

	/* The capture (rtp_mgr_capture.c), under lock; NULL if none. */
	struct rtpm_capture_queue *capture;

	/* Events (rtp_mgr_events.c), under lock: what was reported, and when. */
	u64 ev_next_ns;
	u64 ev_overruns;
	u64 ev_lost;
	u64 ev_stuck_next_ns;
};

/* OVERRUN and LOSS counts collected under the lock, sent after it. */
struct rtpm_pending_events {
	u64 overruns;
	u64 lost;
};

/* Per open file: the identity that owns PRODUCING and CONSUMING slots. */
struct rtpm_file {
	struct rtpm_channel *ch;
	u32 owned;		/* slots this file owns, under ch->lock */
	u32 roles;		/* RTPM_ROLE_* held, under ch->lock */
	bool can_write;		/* opened with FMODE_WRITE */
	bool admin;		/* a writer whose opener had CAP_NET_ADMIN */
	u32 stop_seq;		/* ch->stop_seq at open: later STOPs hang up */
	u32 tgid;		/* the opener, named in STUCK events */
};

/* Limits of a ring, shared by the module parameters and CONFIGURE. */
int rtpm_config_check(const struct rtpm_config *cfg);

size_t rtpm_ring_bytes(const struct rtpm_config *cfg);
struct rtpm_ring *rtpm_ring_alloc(const struct rtpm_config *cfg, u32 channel,
				  gfp_t gfp);
void rtpm_ring_free(struct rtpm_ring *ring);
struct rtpm_ring *rtpm_chan_swap_ring_locked(struct rtpm_channel *ch,
					     struct rtpm_ring *ring);
void rtpm_chan_reset_locked(struct rtpm_channel *ch);

/* Batched slot operations; refs is a kernel copy of the user array. */
int rtpm_chan_reserve(struct rtpm_file *rf, struct rtpm_slot_ref *refs,
		      u32 *count, bool nonblock);
int rtpm_chan_push(struct rtpm_file *rf, struct rtpm_slot_ref *refs,
		   u32 *count);
int rtpm_chan_pop(struct rtpm_file *rf, struct rtpm_slot_ref *refs,
		  u32 *count, bool nonblock);
int rtpm_chan_release(struct rtpm_file *rf, struct rtpm_slot_ref *refs,
		      u32 *count);
int rtpm_chan_cancel(struct rtpm_file *rf, struct rtpm_slot_ref *refs,
		     u32 *count);
u32 rtpm_chan_reclaim(struct rtpm_file *rf);
int rtpm_chan_claim(struct rtpm_file *rf, u32 roles);
u32 rtpm_chan_evict(struct rtpm_file *rf, u64 min_held_ns, bool roles);
void rtpm_chan_count_illegal(struct rtpm_channel *ch);
void rtpm_chan_count_illegal_locked(struct rtpm_channel *ch);
void rtpm_chan_count_denied(struct rtpm_channel *ch);

/* Wake-up coalescing. */
void rtpm_chan_wake_init(struct rtpm_channel *ch, u32 slots, u32 usecs);
int rtpm_chan_set_wakeup(struct rtpm_channel *ch, u32 slots, u32 usecs);
void rtpm_chan_get_wakeup(struct rtpm_channel *ch, u32 *slots, u32 *usecs);
void rtpm_chan_wake(struct rtpm_channel *ch);
void rtpm_ring_wake_due_locked(struct rtpm_channel *ch);

/* The kernel as producer (RX socket) and consumer (TX worker). */
int rtpm_chan_receive(struct rtpm_channel *ch,
		      const struct rtpm_attachment *att,
		      const struct sk_buff *skb, unsigned int offset,
		      unsigned int len);
void rtpm_chan_unlock_bh(struct rtpm_channel *ch) __releases(&ch->lock);
u32 rtpm_ring_take_ready_locked(struct rtpm_channel *ch, u32 *index,
				u32 *len, u32 max);
void rtpm_ring_give_back_locked(struct rtpm_channel *ch, const u32 *index,
				u32 n);

bool rtpm_ring_can_pop(struct rtpm_channel *ch);
bool rtpm_ring_hung_up(struct rtpm_channel *ch, const struct rtpm_file *rf);
bool rtpm_ring_can_reserve(struct rtpm_channel *ch);
void rtpm_chan_status(struct rtpm_channel *ch, struct rtpm_status *st);
void rtpm_chan_stats(struct rtpm_channel *ch, struct rtpm_stats *st);
void rtpm_chan_quality(struct rtpm_channel *ch, struct rtpm_quality *q);
int rtpm_chan_set_clock_rate(struct rtpm_channel *ch, u32 hz);

/* Attached sockets (rtp_mgr_attach.c). */
int rtpm_attach_ioctl(struct rtpm_file *rf, const struct rtpm_attach *req);
int rtpm_detach_ioctl(struct rtpm_file *rf, u32 direction);
void rtpm_attach_release_file(struct rtpm_file *rf);
void rtpm_attach_kick_tx(struct rtpm_channel *ch);
u32 rtpm_attach_state_locked(struct rtpm_channel *ch);
u32 rtpm_attach_roles_locked(struct rtpm_channel *ch,
			     const struct rtpm_file *rf);
int rtpm_attach_init(void);
void rtpm_attach_exit(void);

/* Capture (rtp_mgr_capture.c). */
int rtpm_capture_ioctl(struct rtpm_channel *ch,
		       struct rtpm_capture __user *ureq);
void rtpm_capture_slot_locked(struct rtpm_channel *ch, const void *data,
			      u32 len, u64 arrival_ns, u32 flags);

/* Events over generic netlink (rtp_mgr_events.c). */
void rtpm_event(struct rtpm_channel *ch, u32 event, u64 count, u32 pid,
		gfp_t gfp);
void rtpm_event_current(struct rtpm_channel *ch, u32 event, u64 count);
void rtpm_events_collect_locked(struct rtpm_channel *ch,
				struct rtpm_pending_events *pe);
void rtpm_events_send(struct rtpm_channel *ch,
		      const struct rtpm_pending_events *pe, gfp_t gfp);
int rtpm_events_init(struct rtpm_channel *channels, unsigned int n,
		     u32 stuck_ms);
void rtpm_events_exit(void);

extern const struct attribute_group *rtpm_sysfs_groups[];

static inline struct rtpm_channel *rtpm_misc_to_channel(struct miscdevice *m)
{
	return container_of(m, struct rtpm_channel, misc);
}

#endif /* _RTP_MGR_RING_H */

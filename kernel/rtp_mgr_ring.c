// SPDX-License-Identifier: GPL-2.0-only
/*
 * rtp_mgr_ring.c - ring allocation and the slot state machine.
 *
 * Memory ordering between the kernel, the only writer of the read-only meta
 * region, and user space peeking at it without a syscall:
 *
 *   kernel (PUSH, under ch->lock)      user space (fill level, descriptors)
 *
 *   write desc[slot]                   p = load_acquire(&hdr->producer); (B)
 *   store_release(&hdr->producer); (A) read desc[i] for i < p
 *
 * (A) pairs with (B). Without (A) a weakly ordered CPU (arm64) may make the
 * new producer index visible before the descriptor it covers, and a reader
 * would see a stale len or RTP sequence. Without (B) the reader's CPU may
 * load the descriptor before the index. The reserve, consumer and release
 * words are published the same way (A) so that user space computing a fill
 * level never sees an index run ahead of the slot states it implies.
 *
 * The payload bytes need no barrier of their own: the producer writes them
 * before its PUSH ioctl and the consumer reads them after its POP ioctl.
 * PUSH ends with spin_unlock_bh(&ch->lock) (a release) and POP starts with
 * spin_lock_bh(&ch->lock) (an acquire), which orders the payload writes of
 * the producer before the payload reads of the consumer.
 */
#include <linux/kernel.h>
#include <linux/mm.h>
#include <linux/sched.h>
#include <linux/skbuff.h>
#include <linux/slab.h>
#include <linux/timekeeping.h>
#include <linux/vmalloc.h>

#include "rtp_mgr_ring.h"

/*
 * Module parameters and CONFIGURE share these limits.
 */
int rtpm_config_check(const struct rtpm_config *cfg)
{
	if (cfg->flags || memchr_inv(cfg->reserved, 0, sizeof(cfg->reserved)))
		return -EINVAL;
	if (cfg->ring_order < RTPM_RING_ORDER_MIN ||
	    cfg->ring_order > RTPM_RING_ORDER_MAX)
		return -EINVAL;
	if (cfg->slot_payload < RTPM_SLOT_PAYLOAD_MIN ||
	    cfg->slot_payload > RTPM_SLOT_PAYLOAD_MAX)
		return -EINVAL;
	if (cfg->drop_policy != RTPM_DROP_REJECT_NEWEST &&
	    cfg->drop_policy != RTPM_DROP_OLDEST)
		return -EINVAL;
	return 0;
}

static size_t rtpm_meta_size(u32 slot_count)
{
	/* Header page, then the descriptor table, rounded up to pages. */
	return PAGE_ALIGN(PAGE_SIZE +
			  (size_t)slot_count * sizeof(struct rtpm_slot_desc));
}

static size_t rtpm_payload_size(const struct rtpm_config *cfg)
{
	return PAGE_ALIGN(((size_t)1 << cfg->ring_order) *
			  ALIGN(cfg->slot_payload, RTPM_SLOT_ALIGN));
}

/**
 * rtpm_ring_bytes - memory a ring of @cfg maps to user space
 * @cfg: a configuration that passed rtpm_config_check()
 *
 * Return: bytes of the meta and payload regions, which the module-wide
 * ceilings (max_ring_kib, max_total_kib) are checked against.
 */
size_t rtpm_ring_bytes(const struct rtpm_config *cfg)
{
	return rtpm_meta_size(1U << cfg->ring_order) + rtpm_payload_size(cfg);
}

static void rtpm_region_free(struct rtpm_region *rg)
{
	unsigned int i;

	if (rg->addr)
		vunmap(rg->addr);
	for (i = 0; rg->pages && i < rg->nr_pages; i++)
		__free_page(rg->pages[i]);
	kvfree(rg->pages);
}

/*
 * Zeroed pages; with GFP_KERNEL_ACCOUNT (CONFIGURE) charged to the caller's
 * memory cgroup, so a device user who configures large rings pays for them
 * in its own cgroup. __GFP_RETRY_MAYFAIL makes a large ring fail with
 * -ENOMEM instead of invoking the OOM killer.
 */
static int rtpm_region_alloc(struct rtpm_region *rg, size_t size, gfp_t gfp)
{
	unsigned int i;

	rg->nr_pages = size >> PAGE_SHIFT;
	rg->pages = kvcalloc(rg->nr_pages, sizeof(*rg->pages), gfp);
	if (!rg->pages)
		return -ENOMEM;
	for (i = 0; i < rg->nr_pages; i++) {
		/* A large ring takes a while: let a killed caller go. */
		if (fatal_signal_pending(current))
			rg->pages[i] = NULL;
		else
			rg->pages[i] = alloc_page(gfp | __GFP_ZERO | __GFP_NOWARN |
						  __GFP_RETRY_MAYFAIL);
		if (!rg->pages[i]) {
			rg->nr_pages = i;
			return -ENOMEM;
		}
	}
	rg->addr = vmap(rg->pages, rg->nr_pages, VM_MAP | VM_USERMAP,
			PAGE_KERNEL);
	return rg->addr ? 0 : -ENOMEM;
}

void rtpm_ring_free(struct rtpm_ring *ring)
{
	if (!ring)
		return;
	kvfree(ring->slots);
	rtpm_region_free(&ring->payload_region);
	rtpm_region_free(&ring->meta_region);
	kfree(ring);
}

/**
 * rtpm_ring_alloc - allocate a ring and fill its header page
 * @cfg: a configuration that passed rtpm_config_check()
 * @channel: the channel number written to the header
 * @gfp: GFP_KERNEL_ACCOUNT for CONFIGURE (the caller pays), GFP_KERNEL at
 *	 load (the rings belong to the module, not to modprobe's cgroup)
 *
 * Return: the ring, or NULL if memory is short or the caller was killed.
 */
struct rtpm_ring *rtpm_ring_alloc(const struct rtpm_config *cfg, u32 channel,
				  gfp_t gfp)
{
	struct rtpm_ring_header *hdr;
	struct rtpm_ring *ring;

	ring = kzalloc(sizeof(*ring), gfp);
	if (!ring)
		return NULL;

	ring->cfg = *cfg;
	ring->slot_count = 1U << cfg->ring_order;
	ring->mask = ring->slot_count - 1;
	ring->slot_stride = ALIGN(cfg->slot_payload, RTPM_SLOT_ALIGN);
	ring->meta_size = rtpm_meta_size(ring->slot_count);
	ring->payload_size = rtpm_payload_size(cfg);

	ring->slots = kvcalloc(ring->slot_count, sizeof(*ring->slots), gfp);
	if (!ring->slots ||
	    rtpm_region_alloc(&ring->meta_region, ring->meta_size, gfp) ||
	    rtpm_region_alloc(&ring->payload_region, ring->payload_size, gfp)) {
		rtpm_ring_free(ring);
		return NULL;
	}
	ring->meta = ring->meta_region.addr;
	ring->payload = ring->payload_region.addr;
	ring->hdr = ring->meta;
	ring->desc = ring->meta + PAGE_SIZE;

	hdr = ring->hdr;
	hdr->magic = RTPM_MAGIC;
	hdr->abi_major = RTPM_ABI_MAJOR;
	hdr->abi_minor = RTPM_ABI_MINOR;
	hdr->header_size = sizeof(*hdr);
	hdr->channel = channel;
	hdr->slot_count = ring->slot_count;
	hdr->ring_order = cfg->ring_order;
	hdr->slot_payload = cfg->slot_payload;
	hdr->slot_stride = ring->slot_stride;
	hdr->desc_size = sizeof(struct rtpm_slot_desc);
	hdr->drop_policy = cfg->drop_policy;
	hdr->desc_offset = PAGE_SIZE;
	hdr->meta_size = ring->meta_size;
	hdr->payload_offset = ring->meta_size;
	hdr->payload_size = ring->payload_size;
	hdr->prod_off = offsetof(struct rtpm_ring_header, producer);
	hdr->cons_off = offsetof(struct rtpm_ring_header, consumer);
	hdr->reserve_off = offsetof(struct rtpm_ring_header, reserve);
	hdr->release_off = offsetof(struct rtpm_ring_header, release);
	return ring;
}

/* Publish the shadow indices to the header page. */
static void rtpm_ring_publish(struct rtpm_channel *ch)
{
	struct rtpm_ring_header *hdr = ch->ring->hdr;

	smp_store_release(&hdr->reserve, ch->reserve);	/* A, matches B */
	smp_store_release(&hdr->producer, ch->producer);	/* A, matches B */
	smp_store_release(&hdr->consumer, ch->consumer);	/* A, matches B */
	smp_store_release(&hdr->release, ch->release);	/* A, matches B */
}

static void rtpm_ring_note_ready(struct rtpm_channel *ch, u32 n);

/*
 * Move producer, consumer and release over finished slots (see the index
 * invariants in rtp_mgr_ring.h), then publish them. The WRITE_ONCE()s pair
 * with the lockless READ_ONCE()s of the wait conditions. Slots the producer
 * index passes become poppable: whichever operation did it (PUSH, the
 * kernel's RX, CANCEL or RECLAIM of a slot that held them back), they go to
 * the wake-up rule, and the caller unlocks with rtpm_chan_unlock_bh().
 */
static void rtpm_ring_advance(struct rtpm_channel *ch)
{
	struct rtpm_ring *r = ch->ring;
	struct rtpm_slot *s = r->slots;
	u32 prod = ch->producer, cons = ch->consumer, rel = ch->release;

	while (prod != ch->reserve &&
	       s[prod & r->mask].state != RTPM_SLOT_PRODUCING)
		prod++;
	while (cons != prod && s[cons & r->mask].state == RTPM_SLOT_FREE)
		cons++;
	while (rel != cons && s[rel & r->mask].state == RTPM_SLOT_FREE)
		rel++;

	if (prod != ch->producer)
		rtpm_ring_note_ready(ch, prod - ch->producer);
	WRITE_ONCE(ch->producer, prod);
	WRITE_ONCE(ch->consumer, cons);
	WRITE_ONCE(ch->release, rel);
	rtpm_ring_publish(ch);
}

static bool rtpm_ring_full(struct rtpm_channel *ch)
{
	return ch->reserve - ch->release == ch->ring->slot_count;
}

/*
 * RTPM_DROP_OLDEST can make room only if the oldest unfinished slot is the
 * oldest READY one: a CONSUMING slot at release blocks the ring no matter
 * how many READY slots are dropped behind it.
 */
static bool rtpm_ring_can_drop(struct rtpm_channel *ch)
{
	return ch->ring->cfg.drop_policy == RTPM_DROP_OLDEST &&
	       ch->release == ch->consumer && ch->consumer != ch->producer;
}

static void rtpm_ring_drop_oldest(struct rtpm_channel *ch)
{
	struct rtpm_slot *s = &ch->ring->slots[ch->consumer & ch->ring->mask];

	s->state = RTPM_SLOT_FREE;
	ch->n_ready--;
	ch->stats.drops++;
	rtpm_ring_advance(ch);
}

/*
 * Wake-up coalescing. A consumer sleeping in POP or poll() costs two context
 * switches per wake-up; at IPTV rates (1,000-4,000 packets/s per stream)
 * waking it for each packet is most of the CPU the path costs. So READY
 * slots are handed on in groups: the consumer is due once wake_slots slots
 * became READY since its last wake-up, or once the first of them has waited
 * wake_ns (wake_timer, started by that first slot). A full ring and STOP
 * make it due at once. Being due ends when the consumer drains the ring.
 */
static void rtpm_ring_set_due(struct rtpm_channel *ch)
{
	if (!ch->wake_due) {
		WRITE_ONCE(ch->wake_due, true);
		ch->stats.wakeups++;
	}
	ch->wake_pending = 0;
	/* A callback already running finds wake_due set and does nothing. */
	hrtimer_try_to_cancel(&ch->wake_timer);
}

/* STOP: what is READY is handed on now; the caller holds ch->lock. */
void rtpm_ring_wake_due_locked(struct rtpm_channel *ch)
{
	if (ch->consumer != ch->producer)
		rtpm_ring_set_due(ch);
}

/*
 * @n slots became poppable. Sets ch->wake_needed if the consumers must be
 * woken once ch->lock is dropped: they are due now, or were already (one may
 * sleep on a due ring whose producer index was held back by an unfinished
 * slot). A stopped channel hands everything on at once: its consumers
 * drain, then see the hang-up.
 */
static void rtpm_ring_note_ready(struct rtpm_channel *ch, u32 n)
{
	ch->wake_needed = true;
	if (ch->wake_due)
		return;
	ch->wake_pending += n;
	if (ch->wake_pending >= ch->wake_slots || rtpm_ring_full(ch) ||
	    !ch->running) {
		rtpm_ring_set_due(ch);
		return;
	}
	ch->wake_needed = false;
	if (!hrtimer_is_queued(&ch->wake_timer))
		hrtimer_start(&ch->wake_timer, ns_to_ktime(ch->wake_ns),
			      HRTIMER_MODE_REL_SOFT);
}

/*
 * Drop ch->lock, taken with spin_lock_bh(), and wake the consumers if the
 * ring asked for it (rtpm_ring_note_ready()).
 */
void rtpm_chan_unlock_bh(struct rtpm_channel *ch)
	__releases(&ch->lock)
{
	bool wake = ch->wake_needed;

	ch->wake_needed = false;
	spin_unlock_bh(&ch->lock);
	if (wake)
		rtpm_chan_wake(ch);
}

/* The ring was drained: the next READY slot starts a new group. */
static void rtpm_ring_note_drained(struct rtpm_channel *ch)
{
	if (ch->consumer != ch->producer)
		return;
	WRITE_ONCE(ch->wake_due, false);
	ch->wake_pending = 0;
	hrtimer_try_to_cancel(&ch->wake_timer);
}

/* Wake the consumers: sleepers in POP and poll(), and the TX worker. */
void rtpm_chan_wake(struct rtpm_channel *ch)
{
	/*
	 * While the consumer drains a due ring every new slot calls this:
	 * skip the wait queue's lock when nobody sleeps. The barrier in
	 * wq_has_sleeper() pairs with the one in prepare_to_wait().
	 */
	if (wq_has_sleeper(&ch->wq))
		wake_up_interruptible(&ch->wq);
	if (READ_ONCE(ch->tx_att))
		rtpm_attach_kick_tx(ch);
}

static enum hrtimer_restart rtpm_wake_timer_fn(struct hrtimer *timer)
{
	struct rtpm_channel *ch = container_of(timer, struct rtpm_channel,
					       wake_timer);
	bool wake = false;

	/* HRTIMER_MODE_REL_SOFT: softirq context, BHs are off already. */
	spin_lock(&ch->lock);
	if (!ch->wake_due && ch->wake_pending) {
		rtpm_ring_set_due(ch);
		wake = true;
	}
	spin_unlock(&ch->lock);
	if (wake)
		rtpm_chan_wake(ch);
	return HRTIMER_NORESTART;
}

/* At load: the module parameters' rule (1 slot, 0 us: every PUSH wakes). */
void rtpm_chan_wake_init(struct rtpm_channel *ch, u32 slots, u32 usecs)
{
	hrtimer_init(&ch->wake_timer, CLOCK_MONOTONIC, HRTIMER_MODE_REL_SOFT);
	ch->wake_timer.function = rtpm_wake_timer_fn;
	ch->wake_slots = slots;
	ch->wake_ns = (u64)usecs * NSEC_PER_USEC;
	ch->wake_due = false;
}

/**
 * rtpm_chan_set_wakeup - change the wake-up rule of a channel
 * @ch: the channel
 * @slots: wake after this many READY slots (1 = every one)
 * @usecs: or after the first of them waited this long (0 = no timer)
 *
 * Return: 0, or -EINVAL for a rule outside the limits of the UAPI header or
 * one that could leave a consumer asleep forever (@slots > 1 without timer).
 */
int rtpm_chan_set_wakeup(struct rtpm_channel *ch, u32 slots, u32 usecs)
{
	bool wake = false;

	if (slots < 1 || slots > RTPM_WAKE_SLOTS_MAX ||
	    usecs > RTPM_WAKE_USECS_MAX || (slots > 1 && !usecs))
		return -EINVAL;
	spin_lock_bh(&ch->lock);
	ch->wake_slots = slots;
	ch->wake_ns = (u64)usecs * NSEC_PER_USEC;
	/* Slots waiting under the old rule are handed on now. */
	if (ch->wake_pending && !ch->wake_due) {
		rtpm_ring_set_due(ch);
		wake = true;
	}
	spin_unlock_bh(&ch->lock);
	if (wake)
		rtpm_chan_wake(ch);
	return 0;
}

void rtpm_chan_get_wakeup(struct rtpm_channel *ch, u32 *slots, u32 *usecs)
{
	spin_lock_bh(&ch->lock);
	*slots = ch->wake_slots;
	*usecs = div_u64(ch->wake_ns, NSEC_PER_USEC);
	spin_unlock_bh(&ch->lock);
}

/* Reserve the slot at the reserve index for @rf; -EAGAIN if full. */
static int rtpm_ring_reserve_one(struct rtpm_channel *ch, struct rtpm_file *rf,
				 u32 *index)
{
	struct rtpm_ring *r = ch->ring;
	struct rtpm_slot *s;

	if (rtpm_ring_full(ch)) {
		if (!rtpm_ring_can_drop(ch))
			return -EAGAIN;
		rtpm_ring_drop_oldest(ch);
	}

	*index = ch->reserve & r->mask;
	s = &r->slots[*index];
	s->state = RTPM_SLOT_PRODUCING;
	s->owner = rf;
	s->since_ns = ktime_get_ns();
	rf->owned++;
	ch->n_producing++;
	WRITE_ONCE(ch->reserve, ch->reserve + 1);
	return 0;
}

static void rtpm_ring_write_desc(struct rtpm_channel *ch, u32 index, u32 len,
				 u64 arrival_ns)
{
	struct rtpm_ring *r = ch->ring;
	struct rtpm_slot_desc *d = &r->desc[index];
	void *data = r->payload + (size_t)index * r->slot_stride;
	struct rtpm_rtp_hdr rtp;

	d->len = len;
	d->arrival_ns = arrival_ns;
	if (rtpm_rtp_parse(data, len, &rtp)) {
		d->flags = RTPM_SLOT_F_RTP |
			   (rtp.marker ? RTPM_SLOT_F_MARKER : 0);
		d->rtp_timestamp = rtp.timestamp;
		d->ssrc = rtp.ssrc;
		d->rtp_seq = rtp.seq;
		d->payload_type = rtp.payload_type;
		rtpm_seq_track(&ch->seq, &rtp, arrival_ns, &ch->stats);
	} else {
		/* Not RTP: carried as is, counted. */
		d->flags = RTPM_SLOT_F_MALFORMED;
		d->rtp_timestamp = 0;
		d->ssrc = 0;
		d->rtp_seq = 0;
		d->payload_type = 0;
		ch->stats.malformed++;
	}
	d->pad0 = 0;
	d->pad1 = 0;
	rtpm_capture_slot_locked(ch, data, len, arrival_ns, d->flags);
}

/*
 * PUSH one slot. A PRODUCING slot must be owned by @rf. The slot at the
 * reserve index is reserved implicitly (the one-call producer path of the
 * seed ABI) for the producer-role holder only: that path writes the payload
 * before the slot is handed out, which is safe only while no other file can
 * reserve that slot. Any other slot is in the wrong state.
 */
static int rtpm_ring_push_one(struct rtpm_channel *ch, struct rtpm_file *rf,
			      const struct rtpm_slot_ref *ref, u64 now)
{
	struct rtpm_ring *r = ch->ring;
	struct rtpm_slot *s;
	u32 index = ref->index;
	int err;

	/* The index must name a slot, len must fit its payload. */
	if (index >= r->slot_count)
		return -EINVAL;
	if (ref->len == 0 || ref->len > r->cfg.slot_payload)
		return -EINVAL;
	/* Flags and padding are reserved: zero, so they can gain a meaning. */
	if (ref->flags || ref->pad)
		return -EINVAL;

	s = &r->slots[index];
	if (s->state != RTPM_SLOT_PRODUCING) {
		if (index != (ch->reserve & r->mask))
			return -EBADSLT;
		/* A reservation made before STOP may be pushed, a new one not. */
		if (!ch->running)
			return -EPIPE;
		if (ch->producer_file != rf)
			return -EACCES;	/* counted as denied, -EPERM to the caller */
		/*
		 * On a full ring the slot at the reserve index is still in use
		 * (CONSUMING, or READY for drop-oldest to take): never hand it
		 * out here, its payload was written before the call.
		 */
		if (rtpm_ring_full(ch))
			return -EAGAIN;
		err = rtpm_ring_reserve_one(ch, rf, &index);
		if (err)
			return err;
	} else if (s->owner != rf) {
		return -EPERM;
	}

	rtpm_ring_write_desc(ch, index, ref->len,
			     ref->arrival_ns ? ref->arrival_ns : now);
	s->state = RTPM_SLOT_READY;
	s->owner = NULL;
	rf->owned--;
	ch->n_producing--;
	ch->n_ready++;
	ch->stats.pushed_packets++;
	ch->stats.pushed_bytes += ref->len;
	return 0;
}

/* POP the slot at the consumer index; -EAGAIN if nothing is READY. */
static int rtpm_ring_pop_one(struct rtpm_channel *ch, struct rtpm_file *rf,
			     struct rtpm_slot_ref *ref)
{
	struct rtpm_ring *r = ch->ring;
	struct rtpm_slot *s;
	u32 index;

	if (ch->consumer == ch->producer)
		return -EAGAIN;

	index = ch->consumer & r->mask;
	s = &r->slots[index];
	/* rtpm_ring_advance() keeps the slot at consumer READY. */
	if (WARN_ON_ONCE(s->state != RTPM_SLOT_READY))
		return -EAGAIN;

	s->state = RTPM_SLOT_CONSUMING;
	s->owner = rf;
	s->since_ns = ktime_get_ns();
	rf->owned++;
	ch->n_ready--;
	ch->n_consuming++;
	ref->index = index;
	ref->len = r->desc[index].len;
	ref->arrival_ns = r->desc[index].arrival_ns;
	ref->flags = r->desc[index].flags;
	ref->pad = 0;
	ch->stats.popped_packets++;
	ch->stats.popped_bytes += ref->len;
	/* Read locklessly by the wait conditions. */
	WRITE_ONCE(ch->consumer, ch->consumer + 1);
	rtpm_ring_advance(ch);
	return 0;
}

/* RELEASE a CONSUMING slot owned by @rf. */
static int rtpm_ring_release_one(struct rtpm_channel *ch, struct rtpm_file *rf,
				 const struct rtpm_slot_ref *ref)
{
	struct rtpm_ring *r = ch->ring;
	struct rtpm_slot *s;

	/*
	 * The index must name a slot; padding is reserved. flags may hold what
	 * POP filled in: a consumer hands back the very entries it popped.
	 */
	if (ref->index >= r->slot_count || ref->pad ||
	    (ref->flags & ~RTPM_SLOT_F_ALL))
		return -EINVAL;
	s = &r->slots[ref->index];
	if (s->state != RTPM_SLOT_CONSUMING)
		return -EBADSLT;
	if (s->owner != rf)
		return -EPERM;

	s->state = RTPM_SLOT_FREE;
	s->owner = NULL;
	rf->owned--;
	ch->n_consuming--;
	ch->stats.released++;
	return 0;
}

/* CANCEL a PRODUCING slot owned by @rf: back to FREE, never READY. */
static int rtpm_ring_cancel_one(struct rtpm_channel *ch, struct rtpm_file *rf,
				const struct rtpm_slot_ref *ref)
{
	struct rtpm_ring *r = ch->ring;
	struct rtpm_slot *s;

	/* The index must name a slot; padding is reserved, flags as POP's. */
	if (ref->index >= r->slot_count || ref->pad ||
	    (ref->flags & ~RTPM_SLOT_F_ALL))
		return -EINVAL;
	s = &r->slots[ref->index];
	if (s->state != RTPM_SLOT_PRODUCING)
		return -EBADSLT;
	if (s->owner != rf)
		return -EPERM;

	s->state = RTPM_SLOT_FREE;
	s->owner = NULL;
	rf->owned--;
	ch->n_producing--;
	ch->stats.cancelled++;
	return 0;
}

/*
 * Count a rejected slot operation and return the errno for user space.
 * -EAGAIN, -ERESTARTSYS and -EPIPE are flow control, not misuse, and are not
 * counted (see the UAPI header). -EACCES is the internal code of "another
 * file holds the role": counted as denied, reported as -EPERM.
 */
static int rtpm_ring_account_error(struct rtpm_channel *ch, int err,
				   const char *op)
{
	if (err == -EAGAIN || err == -ERESTARTSYS || err == -EPIPE)
		return err;
	if (err == -EACCES) {
		ch->stats.denied++;
		dev_dbg_ratelimited(ch->misc.this_device,
				    "%s refused: another file holds the role\n",
				    op);
		return -EPERM;
	}
	ch->stats.illegal_ops++;
	dev_dbg_ratelimited(ch->misc.this_device, "%s refused: %d\n", op, err);
	return err;
}

void rtpm_chan_count_illegal_locked(struct rtpm_channel *ch)
{
	ch->stats.illegal_ops++;
}

void rtpm_chan_count_illegal(struct rtpm_channel *ch)
{
	spin_lock_bh(&ch->lock);
	ch->stats.illegal_ops++;
	spin_unlock_bh(&ch->lock);
}

void rtpm_chan_count_denied(struct rtpm_channel *ch)
{
	spin_lock_bh(&ch->lock);
	ch->stats.denied++;
	spin_unlock_bh(&ch->lock);
}

/* True if another file holds @role, so that @rf may not act in it. */
static bool rtpm_role_taken(struct rtpm_channel *ch, struct rtpm_file *rf,
			    u32 role)
{
	struct rtpm_file *holder = role == RTPM_ROLE_PRODUCER ?
				   ch->producer_file : ch->consumer_file;

	return holder && holder != rf;
}

/*
 * True if a blocked consumer should run: READY slots exist and the wake-up
 * rule (rtpm_ring_note_ready()) let them through.
 */
bool rtpm_ring_can_pop(struct rtpm_channel *ch)
{
	return READ_ONCE(ch->wake_due) &&
	       READ_ONCE(ch->consumer) != READ_ONCE(ch->producer);
}

/*
 * True if the channel is stopped and was stopped after @rf was opened: POP
 * on an empty ring then ends with -EPIPE and poll() reports POLLHUP, so a
 * consumer learns of a STOP that happened while it waited or between two
 * of its polls. Lockless, like rtpm_ring_can_pop().
 */
bool rtpm_ring_hung_up(struct rtpm_channel *ch, const struct rtpm_file *rf)
{
	return !READ_ONCE(ch->running) && READ_ONCE(ch->stop_seq) != rf->stop_seq;
}

/*
 * True if a RESERVE would not have to wait, including when it would fail
 * with -EPIPE. Lockless, like rtpm_ring_can_pop(): wait_event() evaluates
 * it in TASK_INTERRUPTIBLE, and a stale answer only costs a retry under
 * the lock.
 */
bool rtpm_ring_can_reserve(struct rtpm_channel *ch)
{
	u32 release = READ_ONCE(ch->release);
	u32 consumer = READ_ONCE(ch->consumer);

	if (!READ_ONCE(ch->running))
		return true;
	if (READ_ONCE(ch->reserve) - release < READ_ONCE(ch->slot_count))
		return true;
	return READ_ONCE(ch->drop_policy) == RTPM_DROP_OLDEST &&
	       release == consumer && consumer != READ_ONCE(ch->producer);
}

/**
 * rtpm_chan_reserve - RESERVE up to *@count slots for @rf
 * @rf: the reserving file
 * @refs: filled with the reserved slots
 * @count: in: slots wanted; out: slots reserved
 * @nonblock: return -EAGAIN instead of waiting for a free slot
 *
 * Return: 0 if at least one slot was reserved, else a negative errno.
 */
int rtpm_chan_reserve(struct rtpm_file *rf, struct rtpm_slot_ref *refs,
		      u32 *count, bool nonblock)
{
	struct rtpm_channel *ch = rf->ch;
	struct rtpm_pending_events pe;
	bool counted = false;
	u32 done = 0;
	int err = 0;

	for (;;) {
		spin_lock_bh(&ch->lock);
		if (rtpm_role_taken(ch, rf, RTPM_ROLE_PRODUCER)) {
			err = rtpm_ring_account_error(ch, -EACCES, "reserve");
		} else if (!ch->running) {
			err = -EPIPE;
		} else {
			while (done < *count) {
				u32 index;

				err = rtpm_ring_reserve_one(ch, rf, &index);
				if (err)
					break;
				/* Every byte goes back to user space. */
				refs[done].index = index;
				refs[done].len = ch->ring->cfg.slot_payload;
				refs[done].arrival_ns = 0;
				refs[done].flags = 0;
				refs[done].pad = 0;
				done++;
			}
			if (done)
				rtpm_ring_publish(ch);
			else if (!counted)
				ch->stats.overruns++;
			counted = true;
		}
		rtpm_events_collect_locked(ch, &pe);
		spin_unlock_bh(&ch->lock);
		rtpm_events_send(ch, &pe, GFP_KERNEL);

		if (done || err != -EAGAIN || nonblock)
			break;
		if (wait_event_interruptible(ch->wq, rtpm_ring_can_reserve(ch))) {
			err = -ERESTARTSYS;
			break;
		}
	}
	*count = done;
	return done ? 0 : err;
}

/**
 * rtpm_chan_push - PUSH *@count slots in order, stopping at the first error
 * @rf: the pushing file (must own the slots, or push the next free one)
 * @refs: index, len and arrival_ns of each slot
 * @count: in: slots offered; out: slots pushed
 *
 * Return: 0 if at least one slot was pushed, else the first slot's errno.
 */
int rtpm_chan_push(struct rtpm_file *rf, struct rtpm_slot_ref *refs,
		   u32 *count)
{
	struct rtpm_channel *ch = rf->ch;
	struct rtpm_pending_events pe;
	u64 now = ktime_get_ns();
	u32 done = 0;
	int err = 0;

	spin_lock_bh(&ch->lock);
	if (rtpm_role_taken(ch, rf, RTPM_ROLE_PRODUCER)) {
		err = rtpm_ring_account_error(ch, -EACCES, "push");
	} else {
		/* Pushing a slot reserved before STOP is allowed: see push_one. */
		while (done < *count) {
			err = rtpm_ring_push_one(ch, rf, &refs[done], now);
			if (err)
				break;
			done++;
		}
		if (err == -EAGAIN)
			ch->stats.overruns++;
		else if (err)
			err = rtpm_ring_account_error(ch, err, "push");
		rtpm_ring_advance(ch);
	}
	rtpm_events_collect_locked(ch, &pe);
	rtpm_chan_unlock_bh(ch);
	rtpm_events_send(ch, &pe, GFP_KERNEL);
	*count = done;
	return done ? 0 : err;
}

/**
 * rtpm_chan_pop - POP up to *@count READY slots for @rf
 * @rf: the consuming file
 * @refs: filled with the popped slots
 * @count: in: slots wanted; out: slots popped
 * @nonblock: return -EAGAIN instead of waiting for a READY slot
 *
 * POP works on a stopped channel too, so a consumer can drain the ring.
 *
 * Return: 0 if at least one slot was popped, else a negative errno.
 */
int rtpm_chan_pop(struct rtpm_file *rf, struct rtpm_slot_ref *refs,
		  u32 *count, bool nonblock)
{
	struct rtpm_channel *ch = rf->ch;
	bool counted = false;
	u32 done = 0;
	int err = 0;

	for (;;) {
		spin_lock_bh(&ch->lock);
		if (rtpm_role_taken(ch, rf, RTPM_ROLE_CONSUMER)) {
			err = rtpm_ring_account_error(ch, -EACCES, "pop");
			spin_unlock_bh(&ch->lock);
			break;
		}
		/*
		 * A blocking POP waits for the wake-up rule (coalescing), a
		 * non-blocking one takes whatever is READY.
		 */
		while (done < *count &&
		       (nonblock || ch->wake_due || !ch->running)) {
			err = rtpm_ring_pop_one(ch, rf, &refs[done]);
			if (err)
				break;
			done++;
		}
		if (done)
			rtpm_ring_note_drained(ch);
		/* Drained after a STOP: nothing comes until START (pipe EOF). */
		if (!done && ch->consumer == ch->producer &&
		    rtpm_ring_hung_up(ch, rf)) {
			spin_unlock_bh(&ch->lock);
			err = -EPIPE;
			break;
		}
		/* An underrun is an empty ring, not one that is not due yet. */
		if (!done && !counted && ch->consumer == ch->producer)
			ch->stats.underruns++;
		counted = true;
		spin_unlock_bh(&ch->lock);

		if (done || nonblock)
			break;
		if (wait_event_interruptible(ch->wq, rtpm_ring_can_pop(ch) ||
					     rtpm_ring_hung_up(ch, rf))) {
			err = -ERESTARTSYS;
			break;
		}
	}
	*count = done;
	return done ? 0 : err;
}

/**
 * rtpm_chan_release - RELEASE *@count CONSUMING slots owned by @rf
 * @rf: the releasing file
 * @refs: the slots (index only)
 * @count: in: slots offered; out: slots released
 *
 * Return: 0 if at least one slot was released, else the first slot's errno.
 */
int rtpm_chan_release(struct rtpm_file *rf, struct rtpm_slot_ref *refs,
		      u32 *count)
{
	struct rtpm_channel *ch = rf->ch;
	u32 done = 0;
	int err = 0;

	spin_lock_bh(&ch->lock);
	while (done < *count) {
		err = rtpm_ring_release_one(ch, rf, &refs[done]);
		if (err)
			break;
		done++;
	}
	if (err)
		err = rtpm_ring_account_error(ch, err, "release");
	if (done)
		rtpm_ring_advance(ch);
	rtpm_chan_unlock_bh(ch);

	/* Producers blocked in RESERVE on a full ring. */
	if (done)
		wake_up_interruptible(&ch->wq);
	*count = done;
	return done ? 0 : err;
}

/**
 * rtpm_chan_cancel - CANCEL *@count PRODUCING slots owned by @rf
 * @rf: the file that reserved them
 * @refs: the slots (index only)
 * @count: in: slots offered; out: slots cancelled
 *
 * Works on a stopped channel too: reservations made before STOP can be
 * given back without pushing.
 *
 * Return: 0 if at least one slot was cancelled, else the first slot's errno.
 */
int rtpm_chan_cancel(struct rtpm_file *rf, struct rtpm_slot_ref *refs,
		     u32 *count)
{
	struct rtpm_channel *ch = rf->ch;
	u32 done = 0;
	int err = 0;

	spin_lock_bh(&ch->lock);
	while (done < *count) {
		err = rtpm_ring_cancel_one(ch, rf, &refs[done]);
		if (err)
			break;
		done++;
	}
	if (err)
		err = rtpm_ring_account_error(ch, err, "cancel");
	if (done)
		rtpm_ring_advance(ch);
	rtpm_chan_unlock_bh(ch);

	/* Producers blocked in RESERVE on a full ring. */
	if (done)
		wake_up_interruptible(&ch->wq);
	*count = done;
	return done ? 0 : err;
}

/**
 * rtpm_chan_claim - make @roles the roles of @rf
 * @rf: the claiming file
 * @roles: RTPM_ROLE_* bits; 0 gives up every role
 *
 * Return: 0, -EINVAL for unknown bits, or -EBUSY if another file holds one
 * of @roles (then nothing changes).
 */
int rtpm_chan_claim(struct rtpm_file *rf, u32 roles)
{
	struct rtpm_channel *ch = rf->ch;
	int err = 0;

	if (roles & ~RTPM_ROLES_ALL)
		return -EINVAL;
	spin_lock_bh(&ch->lock);
	/* A role that backs this file's attached socket ends with DETACH. */
	if (rtpm_attach_roles_locked(ch, rf) & ~roles) {
		err = -EBUSY;
	} else if (((roles & RTPM_ROLE_PRODUCER) &&
	     rtpm_role_taken(ch, rf, RTPM_ROLE_PRODUCER)) ||
	    ((roles & RTPM_ROLE_CONSUMER) &&
	     rtpm_role_taken(ch, rf, RTPM_ROLE_CONSUMER))) {
		err = -EBUSY;
	} else {
		if (roles & RTPM_ROLE_PRODUCER)
			ch->producer_file = rf;
		else if (ch->producer_file == rf)
			ch->producer_file = NULL;
		if (roles & RTPM_ROLE_CONSUMER)
			ch->consumer_file = rf;
		else if (ch->consumer_file == rf)
			ch->consumer_file = NULL;
		rf->roles = roles;
	}
	spin_unlock_bh(&ch->lock);
	return err;
}

/*
 * Free slot @i of the current ring, owned by some file, and count it in that
 * file. The caller holds ch->lock and advances the ring afterwards.
 */
static void rtpm_ring_take_back(struct rtpm_channel *ch, u32 i)
{
	struct rtpm_slot *s = &ch->ring->slots[i];

	if (s->state == RTPM_SLOT_PRODUCING)
		ch->n_producing--;
	else
		ch->n_consuming--;
	s->owner->owned--;
	s->state = RTPM_SLOT_FREE;
	s->owner = NULL;
}

/**
 * rtpm_chan_evict - RECLAIM: take back slots other files held too long
 * @rf: the (privileged) caller, whose own slots stay
 * @min_held_ns: only slots held at least this long
 * @roles: also take their roles away from the other files
 *
 * Return: the number of slots returned to FREE.
 */
u32 rtpm_chan_evict(struct rtpm_file *rf, u64 min_held_ns, bool roles)
{
	struct rtpm_channel *ch = rf->ch;
	u64 now = ktime_get_ns();
	struct rtpm_ring *r;
	u32 i, n = 0;

	spin_lock_bh(&ch->lock);
	r = ch->ring;
	for (i = 0; i < r->slot_count; i++) {
		struct rtpm_slot *s = &r->slots[i];

		if (!s->owner || s->owner == rf ||
		    now - s->since_ns < min_held_ns)
			continue;
		rtpm_ring_take_back(ch, i);
		n++;
	}
	if (n) {
		ch->stats.evicted += n;
		rtpm_ring_advance(ch);
	}
	/* A role that backs an attached socket is the kernel's: DETACH it. */
	if (roles && ch->producer_file && ch->producer_file != rf &&
	    !ch->rx_att) {
		ch->producer_file->roles &= ~RTPM_ROLE_PRODUCER;
		ch->producer_file = NULL;
	}
	if (roles && ch->consumer_file && ch->consumer_file != rf &&
	    !ch->tx_att) {
		ch->consumer_file->roles &= ~RTPM_ROLE_CONSUMER;
		ch->consumer_file = NULL;
	}
	rtpm_chan_unlock_bh(ch);

	wake_up_interruptible(&ch->wq);
	return n;
}

/**
 * rtpm_chan_reclaim - free every slot @rf owns; called when @rf is closed
 * @rf: the closing file
 *
 * The walk over all slots runs under the spinlock; it only happens for a
 * file that still owns slots (rf->owned), i.e. after a crash or kill, and
 * costs microseconds even for the largest ring.
 *
 * Return: the number of slots reclaimed.
 */
u32 rtpm_chan_reclaim(struct rtpm_file *rf)
{
	struct rtpm_channel *ch = rf->ch;
	struct rtpm_ring *r;
	u32 i, n = 0;

	spin_lock_bh(&ch->lock);
	r = ch->ring;
	for (i = 0; rf->owned && i < r->slot_count; i++) {
		if (r->slots[i].owner != rf)
			continue;
		rtpm_ring_take_back(ch, i);
		n++;
	}
	if (n) {
		ch->stats.reclaimed += n;
		rtpm_ring_advance(ch);
	}
	/* The roles end with the file. */
	if (ch->producer_file == rf)
		ch->producer_file = NULL;
	if (ch->consumer_file == rf)
		ch->consumer_file = NULL;
	ch->openers--;
	rtpm_chan_unlock_bh(ch);

	if (n)
		wake_up_interruptible(&ch->wq);
	return n;
}

/**
 * rtpm_chan_receive - the kernel as producer: one datagram into the ring
 * @ch: the channel the RX socket is attached to
 * @att: that attachment, as encap_rcv found it in sk_user_data
 * @skb: the datagram (may be non-linear)
 * @offset: where its payload starts in @skb (after the UDP header)
 * @len: payload bytes
 *
 * Called from the socket's encap_rcv in softirq context. One copy, from the
 * skb into the slot at the reserve index, then the slot is READY, parsed and
 * counted exactly as a PUSH of the same bytes. Nothing is queued: a datagram
 * that does not fit the ring right now is dropped and counted.
 *
 * Return: 0 if the datagram is in a slot, -ENOBUFS if it was dropped (and
 * counted), -ENOENT if @att is no longer the channel's RX attachment (the
 * datagram takes the normal UDP path).
 */
int rtpm_chan_receive(struct rtpm_channel *ch,
		      const struct rtpm_attachment *att,
		      const struct sk_buff *skb, unsigned int offset,
		      unsigned int len)
{
	struct rtpm_pending_events pe;
	u64 now = ktime_get_ns();
	struct rtpm_ring *r;
	struct rtpm_slot *s;
	int ret = -ENOBUFS;
	bool wake;
	u32 index;

	spin_lock(&ch->lock);
	r = ch->ring;
	/* Detached while this datagram was on its way: not ours. */
	if (ch->rx_att != att) {
		spin_unlock(&ch->lock);
		return -ENOENT;
	}
	if (!ch->running) {
		ch->stats.rx_discarded++;
		goto out;
	}
	if (len > r->cfg.slot_payload) {
		ch->stats.rx_oversize++;
		goto out;
	}
	if (!len) {
		/* A slot carries 1..slot_payload bytes: not RTP, counted. */
		ch->stats.malformed++;
		goto out;
	}
	if (rtpm_ring_full(ch)) {
		if (!rtpm_ring_can_drop(ch)) {
			ch->stats.overruns++;
			goto out;
		}
		rtpm_ring_drop_oldest(ch);
	}

	index = ch->reserve & r->mask;
	s = &r->slots[index];
	if (WARN_ON_ONCE(s->state != RTPM_SLOT_FREE) ||
	    skb_copy_bits(skb, offset, r->payload + (size_t)index * r->slot_stride,
			  len)) {
		ch->stats.rx_discarded++;
		goto out;
	}
	rtpm_ring_write_desc(ch, index, len, now);
	s->state = RTPM_SLOT_READY;
	s->owner = NULL;
	ch->n_ready++;
	ch->stats.pushed_packets++;
	ch->stats.pushed_bytes += len;
	WRITE_ONCE(ch->reserve, ch->reserve + 1);
	rtpm_ring_advance(ch);
	ret = 0;
out:
	rtpm_events_collect_locked(ch, &pe);
	wake = ch->wake_needed;
	ch->wake_needed = false;
	spin_unlock(&ch->lock);
	if (wake)
		rtpm_chan_wake(ch);
	rtpm_events_send(ch, &pe, GFP_ATOMIC);
	return ret;
}

/**
 * rtpm_ring_take_ready_locked - the kernel as consumer: POP for the TX worker
 * @ch: the channel, lock held
 * @index: out, the slots taken, in ring order
 * @len: out, their payload lengths
 * @max: at most this many
 *
 * The slots become CONSUMING without an owner file: RECLAIM and a closing
 * file never touch them, and the worker gives them back with
 * rtpm_ring_give_back_locked() once sent.
 *
 * Return: the number of slots taken.
 */
u32 rtpm_ring_take_ready_locked(struct rtpm_channel *ch, u32 *index,
				u32 *len, u32 max)
{
	struct rtpm_ring *r = ch->ring;
	u32 n = 0;

	while (n < max && ch->consumer != ch->producer) {
		u32 i = ch->consumer & r->mask;
		struct rtpm_slot *s = &r->slots[i];

		if (WARN_ON_ONCE(s->state != RTPM_SLOT_READY))
			break;
		s->state = RTPM_SLOT_CONSUMING;
		s->owner = NULL;
		s->since_ns = 0;
		ch->n_ready--;
		ch->n_consuming++;
		index[n] = i;
		len[n] = r->desc[i].len;
		ch->stats.popped_packets++;
		ch->stats.popped_bytes += len[n];
		WRITE_ONCE(ch->consumer, ch->consumer + 1);
		rtpm_ring_advance(ch);
		n++;
	}
	rtpm_ring_note_drained(ch);
	return n;
}

/* The TX worker is done with @n slots taken by rtpm_ring_take_ready_locked(). */
void rtpm_ring_give_back_locked(struct rtpm_channel *ch, const u32 *index,
				u32 n)
{
	struct rtpm_ring *r = ch->ring;
	u32 k;

	for (k = 0; k < n; k++) {
		struct rtpm_slot *s = &r->slots[index[k]];

		if (WARN_ON_ONCE(s->state != RTPM_SLOT_CONSUMING || s->owner))
			continue;
		s->state = RTPM_SLOT_FREE;
		ch->n_consuming--;
		ch->stats.released++;
	}
	rtpm_ring_advance(ch);
}

/*
 * Empty the ring: every slot FREE, indices and counters zero. The caller
 * holds ch->lock and has checked that no file owns a slot.
 */
void rtpm_chan_reset_locked(struct rtpm_channel *ch)
{
	struct rtpm_ring *r = ch->ring;
	u32 i;

	for (i = 0; i < r->slot_count; i++) {
		r->slots[i].state = RTPM_SLOT_FREE;
		r->slots[i].owner = NULL;
	}
	WRITE_ONCE(ch->reserve, 0);
	WRITE_ONCE(ch->producer, 0);
	WRITE_ONCE(ch->consumer, 0);
	WRITE_ONCE(ch->release, 0);
	ch->n_producing = 0;
	ch->n_ready = 0;
	ch->n_consuming = 0;
	WRITE_ONCE(ch->wake_due, false);
	ch->wake_pending = 0;
	hrtimer_try_to_cancel(&ch->wake_timer);
	memset(&ch->stats, 0, sizeof(ch->stats));
	/* The counters start over: so do the events derived from them. */
	ch->ev_overruns = 0;
	ch->ev_lost = 0;
	rtpm_seq_reset(&ch->seq);
	rtpm_ring_publish(ch);
}

/*
 * Swap in a new ring (CONFIGURE, or the first ring at load) and return the
 * old one for the caller to free outside the lock. The caller holds
 * ch->cfg_lock and ch->lock and has checked that nothing maps or owns the
 * old ring.
 */
struct rtpm_ring *rtpm_chan_swap_ring_locked(struct rtpm_channel *ch,
					     struct rtpm_ring *ring)
{
	struct rtpm_ring *old = ch->ring;

	ch->ring = ring;
	WRITE_ONCE(ch->slot_count, ring->slot_count);
	WRITE_ONCE(ch->drop_policy, ring->cfg.drop_policy);
	rtpm_chan_reset_locked(ch);
	return old;
}

void rtpm_chan_status(struct rtpm_channel *ch, struct rtpm_status *st)
{
	memset(st, 0, sizeof(*st));
	spin_lock_bh(&ch->lock);
	st->state = ch->running ? RTPM_STATE_RUNNING : RTPM_STATE_STOPPED;
	st->openers = ch->openers;
	st->mappings = atomic_read(&ch->mappings);
	st->producing = ch->n_producing;
	st->ready = ch->n_ready;
	st->consuming = ch->n_consuming;
	st->free = ch->ring->slot_count - ch->n_producing - ch->n_ready -
		   ch->n_consuming;
	st->claimed = (ch->producer_file ? RTPM_ROLE_PRODUCER : 0) |
		      (ch->consumer_file ? RTPM_ROLE_CONSUMER : 0);
	st->reserve = ch->reserve;
	st->producer = ch->producer;
	st->consumer = ch->consumer;
	st->release = ch->release;
	st->attached = rtpm_attach_state_locked(ch);
	spin_unlock_bh(&ch->lock);
}

void rtpm_chan_quality(struct rtpm_channel *ch, struct rtpm_quality *q)
{
	spin_lock_bh(&ch->lock);
	rtpm_seq_quality(&ch->seq, q);
	spin_unlock_bh(&ch->lock);
}

/* A new clock rate starts the jitter over: old transits are in other units. */
int rtpm_chan_set_clock_rate(struct rtpm_channel *ch, u32 hz)
{
	if (hz > RTPM_CLOCK_RATE_MAX)
		return -EINVAL;
	spin_lock_bh(&ch->lock);
	ch->seq.clock_rate = hz;
	ch->seq.jitter_q4 = 0;
	ch->seq.have_transit = false;
	spin_unlock_bh(&ch->lock);
	return 0;
}

void rtpm_chan_stats(struct rtpm_channel *ch, struct rtpm_stats *st)
{
	spin_lock_bh(&ch->lock);
	*st = ch->stats;
	spin_unlock_bh(&ch->lock);
}

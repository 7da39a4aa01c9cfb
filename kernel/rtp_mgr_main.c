// SPDX-License-Identifier: GPL-2.0-only
/*
 * rtp_mgr - zero-copy RTP slot rings shared between processes.
 *
 * The module creates the misc devices /dev/rtp_mgr0 .. /dev/rtp_mgrN-1.
 * Each one owns a ring: a read-only meta region (header page and slot
 * descriptors) and a read-write payload region, pages vmap()ed VM_USERMAP
 * that user space maps; slots move FREE -> PRODUCING -> READY -> CONSUMING
 * -> FREE through ioctls that check ownership per open file. The ABI is
 * include/rtp_mgr_ioctl.h; a producer looks like this:
 *
 *	fd = open("/dev/rtp_mgr0", O_RDWR);
 *	ioctl(fd, RTPM_IOC_GET_INFO, &info);
 *	pay = mmap(NULL, info.payload_size, PROT_READ | PROT_WRITE,
 *		   MAP_SHARED, fd, info.payload_offset);
 *	ioctl(fd, RTPM_IOC_RESERVE_BATCH, &b);	// write payloads, set len
 *	ioctl(fd, RTPM_IOC_PUSH_BATCH, &b);
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/atomic.h>
#include <linux/capability.h>
#include <linux/compat.h>
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/poll.h>
#include <linux/proc_fs.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/vmalloc.h>

#include "rtp_mgr_compat.h"
#include "rtp_mgr_ring.h"

static unsigned int channels = 4;
module_param(channels, uint, 0444);
MODULE_PARM_DESC(channels, "number of channels /dev/rtp_mgrN (1..32, default 4)");

static unsigned int ring_order = 10;
module_param(ring_order, uint, 0444);
MODULE_PARM_DESC(ring_order, "log2 of the slots per ring (1..15, default 10)");

static unsigned int slot_payload = 2048;
module_param(slot_payload, uint, 0444);
MODULE_PARM_DESC(slot_payload, "payload bytes per slot (64..16384, default 2048)");

static unsigned int drop_policy = RTPM_DROP_REJECT_NEWEST;
module_param(drop_policy, uint, 0444);
MODULE_PARM_DESC(drop_policy, "when full: 0 reject newest, 1 drop oldest (default 0)");

static unsigned int max_ring_kib = RTPM_MAX_RING_KIB_DEFAULT;
module_param(max_ring_kib, uint, 0644);
MODULE_PARM_DESC(max_ring_kib, "largest ring CONFIGURE may allocate per channel, KiB (default 65536)");

static unsigned int max_total_kib = RTPM_MAX_TOTAL_KIB_DEFAULT;
module_param(max_total_kib, uint, 0644);
MODULE_PARM_DESC(max_total_kib, "memory all rings together may use, KiB (default 262144)");

static unsigned int wake_slots = 1;
module_param(wake_slots, uint, 0444);
MODULE_PARM_DESC(wake_slots, "wake a consumer after this many READY slots (1..32768, default 1: every one)");

static unsigned int wake_usecs;
module_param(wake_usecs, uint, 0444);
MODULE_PARM_DESC(wake_usecs, "or after the first of them waited this long, us (0..1000000, default 0: no timer)");

static unsigned int stuck_ms = 2000;
module_param(stuck_ms, uint, 0444);
MODULE_PARM_DESC(stuck_ms, "a slot held this long is reported in a STUCK event, ms (0: never; default 2000)");

static struct rtpm_channel *rtpm_channels;
/* Bytes of all channels' rings; CONFIGURE checks max_total_kib against it. */
static atomic64_t rtpm_ring_bytes_total = ATOMIC64_INIT(0);

/* Batches up to this size are copied through the stack, larger ones kmalloc. */
#define RTPM_STACK_REFS		16

static struct rtpm_file *to_rtpm_file(struct file *file)
{
	return file->private_data;
}

/*
 * open: a new owner identity for slots, bound to the channel. Its rights are
 * fixed here, from the open mode and the opener's credentials, as for a
 * socket: a privileged service may open and then drop its privileges.
 */
static int rtpm_open(struct inode *inode, struct file *file)
{
	struct rtpm_channel *ch = rtpm_misc_to_channel(file->private_data);
	struct rtpm_file *rf;

	rf = kzalloc(sizeof(*rf), GFP_KERNEL_ACCOUNT);
	if (!rf)
		return -ENOMEM;
	rf->ch = ch;
	rf->tgid = task_tgid_nr(current);
	rf->can_write = file->f_mode & FMODE_WRITE;
	/*
	 * A read-only descriptor stays harmless wherever it is passed
	 * (SCM_RIGHTS, inheritance): control needs a writer too.
	 */
	rf->admin = rf->can_write &&
		    file_ns_capable(file, &init_user_ns, CAP_NET_ADMIN);

	spin_lock_bh(&ch->lock);
	ch->openers++;
	rf->stop_seq = ch->stop_seq;
	spin_unlock_bh(&ch->lock);

	file->private_data = rf;
	return stream_open(inode, file);
}

/* release: give back every slot the file still owns, counted as reclaimed. */
static int rtpm_release(struct inode *inode, struct file *file)
{
	struct rtpm_file *rf = to_rtpm_file(file);
	u32 n;

	/* First the sockets, so that no new slot becomes READY for nobody. */
	rtpm_attach_release_file(rf);
	n = rtpm_chan_reclaim(rf);

	if (n) {
		dev_info_ratelimited(rf->ch->misc.this_device,
				     "reclaimed %u slots from a closed file\n",
				     n);
		rtpm_event(rf->ch, RTPM_EVENT_RECLAIM, n, rf->tgid, GFP_KERNEL);
	}
	kfree(rf);
	return 0;
}

static void rtpm_vm_open(struct vm_area_struct *vma)
{
	struct rtpm_channel *ch = vma->vm_private_data;

	atomic_inc(&ch->mappings);
}

static void rtpm_vm_close(struct vm_area_struct *vma)
{
	struct rtpm_channel *ch = vma->vm_private_data;

	atomic_dec(&ch->mappings);
}

/* Counts VMAs, so CONFIGURE can refuse to free memory that is mapped. */
static const struct vm_operations_struct rtpm_vm_ops = {
	.open = rtpm_vm_open,
	.close = rtpm_vm_close,
};

/* mmap: one region per mapping, the meta region read-only, nothing executable. */
static int rtpm_mmap(struct file *file, struct vm_area_struct *vma)
{
	struct rtpm_channel *ch = to_rtpm_file(file)->ch;
	unsigned long pgoff = vma->vm_pgoff;
	unsigned long npages = vma_pages(vma);
	unsigned long meta_pages, payload_pages;
	struct rtpm_ring *ring;
	int err;

	/* Packet data is never code: refuse PROT_EXEC now and for mprotect(). */
	if (vma->vm_flags & VM_EXEC)
		return -EPERM;
	rtpm_vm_flags_clear(vma, VM_MAYEXEC);

	if (mutex_lock_killable(&ch->cfg_lock))
		return -EINTR;
	ring = ch->ring;
	meta_pages = ring->meta_size >> PAGE_SHIFT;
	payload_pages = ring->payload_size >> PAGE_SHIFT;

	if (pgoff < meta_pages) {
		/* The mapping must end inside the meta region. */
		err = -EINVAL;
		if (npages > meta_pages - pgoff)
			goto out;
		/* Kernel-owned descriptors and indices are never writable. */
		err = -EPERM;
		if (vma->vm_flags & VM_WRITE)
			goto out;
		/* Ensure user space cannot acquire VM_WRITE later (mprotect). */
		rtpm_vm_flags_clear(vma, VM_MAYWRITE);
		err = remap_vmalloc_range(vma, ring->meta, pgoff);
	} else if (pgoff - meta_pages < payload_pages) {
		pgoff -= meta_pages;
		/* The mapping must end inside the payload region. */
		err = -EINVAL;
		if (npages > payload_pages - pgoff)
			goto out;
		/* A private copy of the payload would never reach the ring. */
		if (!(vma->vm_flags & VM_MAYSHARE))
			goto out;
		err = remap_vmalloc_range(vma, ring->payload, pgoff);
	} else {
		err = -EINVAL;
	}
	if (!err) {
		vma->vm_ops = &rtpm_vm_ops;
		vma->vm_private_data = ch;
		atomic_inc(&ch->mappings);
	}
out:
	mutex_unlock(&ch->cfg_lock);
	return err;
}

/*
 * poll: readable when a READY slot can be popped; writable when a RESERVE by
 * this file would succeed (never while stopped, where it fails with -EPIPE,
 * nor for a file that may not reserve); hung up while the channel is stopped,
 * if it was stopped after this file was opened. A file that opened a stopped
 * channel waits for START without POLLHUP; after a STOP, POLLIN still
 * reports what is left to drain.
 */
static __poll_t rtpm_poll(struct file *file, poll_table *wait)
{
	struct rtpm_file *rf = to_rtpm_file(file);
	struct rtpm_channel *ch = rf->ch;
	__poll_t mask = 0;

	poll_wait(file, &ch->wq, wait);
	spin_lock_bh(&ch->lock);
	if (rtpm_ring_can_pop(ch))
		mask |= EPOLLIN | EPOLLRDNORM;
	if (ch->running && rf->can_write &&
	    (!ch->producer_file || ch->producer_file == rf) &&
	    /* Free slots, or a READY one drop-oldest may drop. */
	    (ch->reserve - ch->release < ch->slot_count ||
	     (ch->drop_policy == RTPM_DROP_OLDEST &&
	      ch->release == ch->consumer && ch->consumer != ch->producer)))
		mask |= EPOLLOUT | EPOLLWRNORM;
	if (rtpm_ring_hung_up(ch, rf))
		mask |= EPOLLHUP;
	spin_unlock_bh(&ch->lock);
	return mask;
}

/* The ABI 1.0 layout of struct rtpm_info, answered to 1.x programs. */
struct rtpm_info_v1 {
	__u16 abi_major;
	__u16 abi_minor;
	__u32 channel;
	__u32 channels;
	__u32 state;
	__u32 ring_order;
	__u32 slot_payload;
	__u32 drop_policy;
	__u32 flags;
	__u32 slot_count;
	__u32 slot_stride;
	__u32 desc_size;
	__u32 header_size;
	__u64 meta_size;
	__u64 payload_offset;
	__u64 payload_size;
};

/*
 * GET_INFO of ABI 1.x: the 1.0 layout, truthful except for the version, so
 * that an old program reports "ABI 2.0, expected 1.x" instead of failing on
 * some later call with a confusing errno.
 */
static int rtpm_ioctl_get_info_v1(struct rtpm_channel *ch, void __user *uarg)
{
	struct rtpm_info_v1 v1;

	memset(&v1, 0, sizeof(v1));
	v1.abi_major = RTPM_ABI_MAJOR;
	v1.abi_minor = RTPM_ABI_MINOR;
	v1.channel = ch->index;
	v1.channels = channels;
	v1.desc_size = sizeof(struct rtpm_slot_desc);
	v1.header_size = sizeof(struct rtpm_ring_header);
	spin_lock_bh(&ch->lock);
	v1.state = ch->running ? RTPM_STATE_RUNNING : RTPM_STATE_STOPPED;
	v1.ring_order = ch->ring->cfg.ring_order;
	v1.slot_payload = ch->ring->cfg.slot_payload;
	v1.drop_policy = ch->ring->cfg.drop_policy;
	v1.slot_count = ch->ring->slot_count;
	v1.slot_stride = ch->ring->slot_stride;
	v1.meta_size = ch->ring->meta_size;
	v1.payload_offset = ch->ring->meta_size;
	v1.payload_size = ch->ring->payload_size;
	spin_unlock_bh(&ch->lock);

	return copy_to_user(uarg, &v1, sizeof(v1)) ? -EFAULT : 0;
}

static int rtpm_ioctl_get_info(struct rtpm_file *rf, void __user *uarg)
{
	struct rtpm_channel *ch = rf->ch;
	struct rtpm_info info;

	memset(&info, 0, sizeof(info));
	info.abi_major = RTPM_ABI_MAJOR;
	info.abi_minor = RTPM_ABI_MINOR;
	info.channel = ch->index;
	info.channels = channels;
	info.header_size = sizeof(struct rtpm_ring_header);
	info.desc_size = sizeof(struct rtpm_slot_desc);
	spin_lock_bh(&ch->lock);
	info.state = ch->running ? RTPM_STATE_RUNNING : RTPM_STATE_STOPPED;
	info.config = ch->ring->cfg;
	info.slot_count = ch->ring->slot_count;
	info.slot_stride = ch->ring->slot_stride;
	info.meta_size = ch->ring->meta_size;
	info.payload_offset = ch->ring->meta_size;
	info.payload_size = ch->ring->payload_size;
	info.file_roles = rf->roles;
	spin_unlock_bh(&ch->lock);
	info.max_ring_bytes = (u64)READ_ONCE(max_ring_kib) * 1024;
	info.file_caps = (rf->can_write ? RTPM_FILE_WRITE : 0) |
			 (rf->admin ? RTPM_FILE_ADMIN : 0);

	return copy_to_user(uarg, &info, sizeof(info)) ? -EFAULT : 0;
}

/* True if the channel's slots are all unowned (a stopped channel still POPs). */
static bool rtpm_chan_idle(struct rtpm_channel *ch)
{
	bool idle;

	spin_lock_bh(&ch->lock);
	idle = !ch->n_producing && !ch->n_consuming;
	spin_unlock_bh(&ch->lock);
	return idle;
}

/*
 * Reserve @bytes of the module-wide budget for a new ring. The old ring is
 * given back only once it is freed: both exist during a CONFIGURE.
 */
static int rtpm_budget_take(u64 bytes)
{
	s64 limit = (s64)READ_ONCE(max_total_kib) * 1024;

	if (atomic64_add_return(bytes, &rtpm_ring_bytes_total) > limit) {
		atomic64_sub(bytes, &rtpm_ring_bytes_total);
		return -ENOSPC;
	}
	return 0;
}

static void rtpm_ring_free_accounted(struct rtpm_ring *ring)
{
	if (!ring)
		return;
	atomic64_sub(ring->meta_size + ring->payload_size,
		     &rtpm_ring_bytes_total);
	rtpm_ring_free(ring);
}

/*
 * CONFIGURE: replace the ring. The cheap refusals (running, mapped, slots
 * owned, over a ceiling) come before the allocation, so that a refused
 * request costs no memory; the state is checked again under the locks after
 * it. The ring is allocated before cfg_lock is taken: mmap() waits for
 * cfg_lock while it holds mmap_lock, so every page fault of that process
 * would stall behind a long allocation. The new ring is allocated before the
 * old one is dropped, so a failed allocation leaves the channel as it was.
 * The user copy happens before cfg_lock too: faulting under it could
 * deadlock with mmap() for the same reason.
 */
static int rtpm_ioctl_configure(struct rtpm_channel *ch, void __user *uarg)
{
	struct rtpm_ring *ring, *old;
	struct rtpm_config cfg;
	u64 bytes;
	int err;

	if (copy_from_user(&cfg, uarg, sizeof(cfg)))
		return -EFAULT;
	err = rtpm_config_check(&cfg);
	if (err)
		return err;
	bytes = rtpm_ring_bytes(&cfg);
	if (bytes > (u64)READ_ONCE(max_ring_kib) * 1024) {
		dev_info_ratelimited(ch->misc.this_device,
				     "configure refused: %llu KiB ring above max_ring_kib=%u\n",
				     bytes / 1024, READ_ONCE(max_ring_kib));
		return -E2BIG;
	}
	if (READ_ONCE(ch->running) || atomic_read(&ch->mappings) ||
	    !rtpm_chan_idle(ch))
		return -EBUSY;
	/* An attached socket writes into (RX) or sends from (TX) the ring. */
	spin_lock_bh(&ch->lock);
	err = rtpm_attach_state_locked(ch) ? -EBUSY : 0;
	spin_unlock_bh(&ch->lock);
	if (err)
		return err;
	err = rtpm_budget_take(bytes);
	if (err) {
		dev_info_ratelimited(ch->misc.this_device,
				     "configure refused: all rings would exceed max_total_kib=%u\n",
				     READ_ONCE(max_total_kib));
		return err;
	}
	ring = rtpm_ring_alloc(&cfg, ch->index, GFP_KERNEL_ACCOUNT);
	if (!ring) {
		atomic64_sub(bytes, &rtpm_ring_bytes_total);
		return -ENOMEM;
	}

	old = ring;
	err = -EINTR;
	if (mutex_lock_killable(&ch->cfg_lock))
		goto out_free;
	spin_lock_bh(&ch->lock);
	/* running and mappings change under cfg_lock; slots under the lock. */
	err = -EBUSY;
	if (!ch->running && !atomic_read(&ch->mappings) &&
	    !ch->n_producing && !ch->n_consuming &&
	    !rtpm_attach_state_locked(ch)) {
		old = rtpm_chan_swap_ring_locked(ch, ring);
		err = 0;
	}
	spin_unlock_bh(&ch->lock);
	mutex_unlock(&ch->cfg_lock);
	if (!err) {
		dev_info_ratelimited(ch->misc.this_device,
				     "configured: ring_order=%u slot_payload=%u drop_policy=%u\n",
				     cfg.ring_order, cfg.slot_payload,
				     cfg.drop_policy);
		rtpm_event_current(ch, RTPM_EVENT_CONFIGURE, 1);
	}
out_free:
	/* The ring replaced, or the new one if it could not be used. */
	rtpm_ring_free_accounted(old);
	wake_up_interruptible(&ch->wq);
	return err;
}

static int rtpm_ioctl_run(struct rtpm_channel *ch, bool run)
{
	if (mutex_lock_killable(&ch->cfg_lock))
		return -EINTR;
	spin_lock_bh(&ch->lock);
	if (ch->running && !run) {
		WRITE_ONCE(ch->stop_seq, ch->stop_seq + 1);
		/* Consumers drain what is left, whatever the wake-up rule. */
		rtpm_ring_wake_due_locked(ch);
	}
	WRITE_ONCE(ch->running, run);
	spin_unlock_bh(&ch->lock);
	mutex_unlock(&ch->cfg_lock);
	/*
	 * Blocked RESERVE callers must see STOP and return -EPIPE; blocked
	 * consumers drain, then get -EPIPE; a TX worker sends what is left.
	 */
	rtpm_chan_wake(ch);
	rtpm_event_current(ch, run ? RTPM_EVENT_START : RTPM_EVENT_STOP, 1);
	return 0;
}

static int rtpm_ioctl_reset(struct rtpm_channel *ch)
{
	int err = 0;

	if (mutex_lock_killable(&ch->cfg_lock))
		return -EINTR;
	spin_lock_bh(&ch->lock);
	if (ch->running || ch->n_producing || ch->n_consuming)
		err = -EBUSY;
	else
		rtpm_chan_reset_locked(ch);
	spin_unlock_bh(&ch->lock);
	mutex_unlock(&ch->cfg_lock);
	wake_up_interruptible(&ch->wq);
	if (!err)
		rtpm_event_current(ch, RTPM_EVENT_RESET, 1);
	return err;
}

static int rtpm_do_slots(struct rtpm_file *rf, unsigned int op,
			 struct rtpm_slot_ref *refs, u32 *count, bool nonblock)
{
	switch (op) {
	case RTPM_IOC_RESERVE_SLOT:
	case RTPM_IOC_RESERVE_BATCH:
		return rtpm_chan_reserve(rf, refs, count, nonblock);
	case RTPM_IOC_PUSH_SLOT:
	case RTPM_IOC_PUSH_BATCH:
		return rtpm_chan_push(rf, refs, count);
	case RTPM_IOC_POP_SLOT:
	case RTPM_IOC_POP_BATCH:
		return rtpm_chan_pop(rf, refs, count, nonblock);
	case RTPM_IOC_CANCEL_SLOT:
	case RTPM_IOC_CANCEL_BATCH:
		return rtpm_chan_cancel(rf, refs, count);
	default:
		return rtpm_chan_release(rf, refs, count);
	}
}

/* Entries flow user -> kernel for PUSH, RELEASE, CANCEL; back for the others. */
static bool rtpm_op_reads_refs(unsigned int cmd)
{
	return cmd == RTPM_IOC_PUSH_SLOT || cmd == RTPM_IOC_PUSH_BATCH ||
	       cmd == RTPM_IOC_RELEASE_SLOT || cmd == RTPM_IOC_RELEASE_BATCH ||
	       cmd == RTPM_IOC_CANCEL_SLOT || cmd == RTPM_IOC_CANCEL_BATCH;
}

static int rtpm_ioctl_slot(struct file *file, unsigned int cmd,
			   void __user *uarg)
{
	struct rtpm_file *rf = to_rtpm_file(file);
	struct rtpm_slot_ref ref;
	u32 count = 1;
	int err;

	memset(&ref, 0, sizeof(ref));
	if (rtpm_op_reads_refs(cmd) && copy_from_user(&ref, uarg, sizeof(ref))) {
		rtpm_chan_count_illegal(rf->ch);
		return -EFAULT;
	}
	err = rtpm_do_slots(rf, cmd, &ref, &count, file->f_flags & O_NONBLOCK);
	if (err || rtpm_op_reads_refs(cmd))
		return err;
	/* A lost reply leaves the slot owned; it is reclaimed on close. */
	if (copy_to_user(uarg, &ref, sizeof(ref))) {
		rtpm_chan_count_illegal(rf->ch);
		return -EFAULT;
	}
	return 0;
}

/*
 * Batched slot operations: the header and the entries are copied from user
 * space once, and only the kernel copies are validated and used.
 */
static int rtpm_ioctl_batch(struct file *file, unsigned int cmd,
			    void __user *uarg)
{
	struct rtpm_slot_ref stack_refs[RTPM_STACK_REFS];
	struct rtpm_batch __user *ub = uarg;
	struct rtpm_file *rf = to_rtpm_file(file);
	struct rtpm_slot_ref *refs = stack_refs;
	struct rtpm_slot_ref __user *uslots;
	struct rtpm_batch b;
	u32 count;
	int err;

	if (copy_from_user(&b, ub, sizeof(b))) {
		err = -EFAULT;
		goto illegal;
	}
	/* Unknown flags are refused so that they can gain a meaning later. */
	if (b.flags) {
		err = -EINVAL;
		goto illegal;
	}
	/* One call moves at most a bounded number of slots. */
	if (b.count > RTPM_BATCH_MAX) {
		err = -E2BIG;
		goto illegal;
	}
	if (!b.count)
		return 0;

	uslots = u64_to_user_ptr(b.slots);
	if (b.count > RTPM_STACK_REFS) {
		refs = kmalloc_array(b.count, sizeof(*refs), GFP_KERNEL);
		if (!refs)
			return -ENOMEM;
	}
	if (rtpm_op_reads_refs(cmd)) {
		if (copy_from_user(refs, uslots, b.count * sizeof(*refs))) {
			err = -EFAULT;
			goto illegal_free;
		}
	}

	count = b.count;
	err = rtpm_do_slots(rf, cmd, refs, &count, file->f_flags & O_NONBLOCK);
	/* A lost reply leaves the slots owned; they are reclaimed on close. */
	if (count && !rtpm_op_reads_refs(cmd) &&
	    copy_to_user(uslots, refs, count * sizeof(*refs))) {
		err = -EFAULT;
		goto illegal_free;
	}
	/*
	 * A call that will be restarted after a signal (nothing done,
	 * -ERESTARTSYS) must find its request as it was: leave count alone.
	 * Every other outcome reports the entries done, 0 on failure.
	 */
	if ((count || err != -ERESTARTSYS) && put_user(count, &ub->count)) {
		err = -EFAULT;
		goto illegal_free;
	}
	if (refs != stack_refs)
		kfree(refs);
	return err;

illegal_free:
	if (refs != stack_refs)
		kfree(refs);
illegal:
	rtpm_chan_count_illegal(rf->ch);
	return err;
}

static int rtpm_ioctl_claim(struct rtpm_file *rf, void __user *uarg)
{
	struct rtpm_claim c;

	if (copy_from_user(&c, uarg, sizeof(c)))
		return -EFAULT;
	if (c.flags)
		return -EINVAL;
	return rtpm_chan_claim(rf, c.roles);
}

static int rtpm_ioctl_reclaim(struct rtpm_file *rf, void __user *uarg)
{
	struct rtpm_reclaim rc;

	if (copy_from_user(&rc, uarg, sizeof(rc)))
		return -EFAULT;
	if ((rc.flags & ~RTPM_RECLAIM_ROLES) || rc.reclaimed)
		return -EINVAL;
	rc.reclaimed = rtpm_chan_evict(rf, rc.min_held_ns,
				       rc.flags & RTPM_RECLAIM_ROLES);
	if (rc.reclaimed)
		rtpm_event_current(rf->ch, RTPM_EVENT_EVICT, rc.reclaimed);
	if (rc.reclaimed || (rc.flags & RTPM_RECLAIM_ROLES))
		dev_warn_ratelimited(rf->ch->misc.this_device,
				     "reclaim: took back %u slots held for at least %llu ns by other files%s (pid %d, %s asked)\n",
				     rc.reclaimed, rc.min_held_ns,
				     rc.flags & RTPM_RECLAIM_ROLES ?
				     " and their roles" : "",
				     task_tgid_nr(current), current->comm);
	return copy_to_user(uarg, &rc, sizeof(rc)) ? -EFAULT : 0;
}

static int rtpm_ioctl_attach(struct rtpm_file *rf, void __user *uarg)
{
	struct rtpm_attach req;

	if (copy_from_user(&req, uarg, sizeof(req)))
		return -EFAULT;
	return rtpm_attach_ioctl(rf, &req);
}

static int rtpm_ioctl_detach(struct rtpm_file *rf, void __user *uarg)
{
	struct rtpm_detach req;

	if (copy_from_user(&req, uarg, sizeof(req)))
		return -EFAULT;
	if (req.flags || req.reserved[0] || req.reserved[1])
		return -EINVAL;
	return rtpm_detach_ioctl(rf, req.direction);
}

static int rtpm_ioctl_set_wakeup(struct rtpm_channel *ch, void __user *uarg)
{
	struct rtpm_wakeup w;
	int err;

	if (copy_from_user(&w, uarg, sizeof(w)))
		return -EFAULT;
	if (w.flags || w.reserved)
		return -EINVAL;
	err = rtpm_chan_set_wakeup(ch, w.slots, w.usecs);
	if (!err)
		dev_dbg(ch->misc.this_device, "wake-up: %u slots or %u us\n",
			w.slots, w.usecs);
	return err;
}

static int rtpm_ioctl_get_wakeup(struct rtpm_channel *ch, void __user *uarg)
{
	struct rtpm_wakeup w;

	memset(&w, 0, sizeof(w));
	rtpm_chan_get_wakeup(ch, &w.slots, &w.usecs);
	return copy_to_user(uarg, &w, sizeof(w)) ? -EFAULT : 0;
}

/* CAPTURE: the new descriptor is the return value, as KVM's ioctls do it. */
static int rtpm_ioctl_capture(struct rtpm_channel *ch, void __user *uarg)
{
	int ret = rtpm_capture_ioctl(ch, uarg);

	if (ret == -EINVAL || ret == -EFAULT)
		rtpm_chan_count_illegal(ch);
	return ret;
}

static int rtpm_ioctl_set_clock_rate(struct rtpm_channel *ch,
				     void __user *uarg)
{
	struct rtpm_clock_rate c;

	if (copy_from_user(&c, uarg, sizeof(c)))
		return -EFAULT;
	if (c.flags)
		return -EINVAL;
	return rtpm_chan_set_clock_rate(ch, c.hz);
}

/* SET_WAKEUP, SET_CLOCK_RATE: an administrator or a role holder. */
static bool rtpm_may_tune(struct rtpm_file *rf)
{
	bool holder;

	if (rf->admin)
		return true;
	spin_lock_bh(&rf->ch->lock);
	holder = rf->ch->producer_file == rf || rf->ch->consumer_file == rf;
	spin_unlock_bh(&rf->ch->lock);
	return holder;
}

/* START and STOP: an administrator, or the file holding the producer role. */
static bool rtpm_may_run(struct rtpm_file *rf)
{
	bool producer;

	if (rf->admin)
		return true;
	spin_lock_bh(&rf->ch->lock);
	producer = rf->ch->producer_file == rf;
	spin_unlock_bh(&rf->ch->lock);
	return producer;
}

/*
 * The privilege split of the UAPI header ("Who may do what"): returns 0 if
 * @rf may issue @cmd, else the errno, counted in denied.
 */
static int rtpm_ioctl_allowed(struct rtpm_file *rf, unsigned int cmd)
{
	int err = 0;

	switch (cmd) {
	case RTPM_IOC_GET_INFO:
	case RTPM_IOC_GET_STATS:
	case RTPM_IOC_GET_STATUS:
	case RTPM_IOC_GET_WAKEUP:
	case RTPM_IOC_GET_QUALITY:
		return 0;
	case RTPM_IOC_SET_WAKEUP:
	case RTPM_IOC_SET_CLOCK_RATE:
		if (!rf->can_write)
			err = -EBADF;
		else if (!rtpm_may_tune(rf))
			err = -EPERM;
		break;
	case RTPM_IOC_CONFIGURE:
	case RTPM_IOC_RESET:
	case RTPM_IOC_RECLAIM:
		if (!rf->admin)
			err = -EPERM;
		break;
	case RTPM_IOC_START:
	case RTPM_IOC_STOP:
		if (!rtpm_may_run(rf))
			err = -EPERM;
		break;
	case RTPM_IOC_CAPTURE:
		/*
		 * It pins memory and the channel's one capture: a writer's
		 * right, so that a read-only descriptor stays harmless.
		 */
		if (!rf->can_write)
			err = -EBADF;
		break;
	default:
		/* Slot operations and CLAIM change the ring: a writer's job. */
		if (!rf->can_write)
			err = -EBADF;
		break;
	}
	if (err) {
		rtpm_chan_count_denied(rf->ch);
		dev_dbg_ratelimited(rf->ch->misc.this_device,
				    "ioctl %#x refused for %s[%d]: %d\n", cmd,
				    current->comm, task_tgid_nr(current), err);
	}
	return err;
}

/* ioctl: the control plane and the slot operations of the UAPI header. */
static long rtpm_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct rtpm_file *rf = to_rtpm_file(file);
	struct rtpm_channel *ch = rf->ch;
	void __user *uarg = (void __user *)arg;
	struct rtpm_quality quality;
	struct rtpm_status status;
	struct rtpm_stats stats;
	int err;

	switch (cmd) {
	case RTPM_IOC_GET_INFO_V1:
		dev_notice_ratelimited(ch->misc.this_device,
				       "%s[%d] uses the ABI 1.x ioctls: it must be rebuilt for ABI %u.%u\n",
				       current->comm, task_tgid_nr(current),
				       RTPM_ABI_MAJOR, RTPM_ABI_MINOR);
		return rtpm_ioctl_get_info_v1(ch, uarg);
	case RTPM_IOC_GET_INFO:
	case RTPM_IOC_CONFIGURE:
	case RTPM_IOC_START:
	case RTPM_IOC_STOP:
	case RTPM_IOC_RESET:
	case RTPM_IOC_GET_STATS:
	case RTPM_IOC_GET_STATUS:
	case RTPM_IOC_CLAIM:
	case RTPM_IOC_RECLAIM:
	case RTPM_IOC_ATTACH:
	case RTPM_IOC_DETACH:
	case RTPM_IOC_SET_WAKEUP:
	case RTPM_IOC_GET_WAKEUP:
	case RTPM_IOC_SET_CLOCK_RATE:
	case RTPM_IOC_GET_QUALITY:
	case RTPM_IOC_CAPTURE:
	case RTPM_IOC_PUSH_SLOT:
	case RTPM_IOC_POP_SLOT:
	case RTPM_IOC_RELEASE_SLOT:
	case RTPM_IOC_RESERVE_SLOT:
	case RTPM_IOC_CANCEL_SLOT:
	case RTPM_IOC_RESERVE_BATCH:
	case RTPM_IOC_PUSH_BATCH:
	case RTPM_IOC_POP_BATCH:
	case RTPM_IOC_RELEASE_BATCH:
	case RTPM_IOC_CANCEL_BATCH:
		break;
	default:
		return -ENOTTY;
	}
	err = rtpm_ioctl_allowed(rf, cmd);
	if (err)
		return err;

	switch (cmd) {
	case RTPM_IOC_GET_INFO:
		return rtpm_ioctl_get_info(rf, uarg);
	case RTPM_IOC_CONFIGURE:
		return rtpm_ioctl_configure(ch, uarg);
	case RTPM_IOC_START:
		return rtpm_ioctl_run(ch, true);
	case RTPM_IOC_STOP:
		return rtpm_ioctl_run(ch, false);
	case RTPM_IOC_RESET:
		return rtpm_ioctl_reset(ch);
	case RTPM_IOC_GET_STATS:
		rtpm_chan_stats(ch, &stats);
		return copy_to_user(uarg, &stats, sizeof(stats)) ? -EFAULT : 0;
	case RTPM_IOC_GET_STATUS:
		rtpm_chan_status(ch, &status);
		return copy_to_user(uarg, &status, sizeof(status)) ? -EFAULT : 0;
	case RTPM_IOC_CLAIM:
		return rtpm_ioctl_claim(rf, uarg);
	case RTPM_IOC_RECLAIM:
		return rtpm_ioctl_reclaim(rf, uarg);
	case RTPM_IOC_ATTACH:
		return rtpm_ioctl_attach(rf, uarg);
	case RTPM_IOC_DETACH:
		return rtpm_ioctl_detach(rf, uarg);
	case RTPM_IOC_SET_WAKEUP:
		return rtpm_ioctl_set_wakeup(ch, uarg);
	case RTPM_IOC_GET_WAKEUP:
		return rtpm_ioctl_get_wakeup(ch, uarg);
	case RTPM_IOC_SET_CLOCK_RATE:
		return rtpm_ioctl_set_clock_rate(ch, uarg);
	case RTPM_IOC_GET_QUALITY:
		rtpm_chan_quality(ch, &quality);
		return copy_to_user(uarg, &quality, sizeof(quality)) ?
		       -EFAULT : 0;
	case RTPM_IOC_CAPTURE:
		return rtpm_ioctl_capture(ch, uarg);
	case RTPM_IOC_PUSH_SLOT:
	case RTPM_IOC_POP_SLOT:
	case RTPM_IOC_RELEASE_SLOT:
	case RTPM_IOC_RESERVE_SLOT:
	case RTPM_IOC_CANCEL_SLOT:
		return rtpm_ioctl_slot(file, cmd, uarg);
	default:
		return rtpm_ioctl_batch(file, cmd, uarg);
	}
}

static const struct file_operations rtpm_fops = {
	.owner = THIS_MODULE,
	.open = rtpm_open,
	.release = rtpm_release,
	.unlocked_ioctl = rtpm_ioctl,
	/* Every structure has one layout for 32- and 64-bit callers. */
	.compat_ioctl = compat_ptr_ioctl,
	.mmap = rtpm_mmap,
	.poll = rtpm_poll,
};

/* The ABI promises these layouts; a compiler or edit that changes them fails. */
static void __init rtpm_check_abi_layout(void)
{
	BUILD_BUG_ON(sizeof(struct rtpm_ring_header) != 256);
	BUILD_BUG_ON(offsetof(struct rtpm_ring_header, reserve) != 128);
	BUILD_BUG_ON(offsetof(struct rtpm_ring_header, consumer) != 192);
	BUILD_BUG_ON(sizeof(struct rtpm_slot_desc) != 32);
	BUILD_BUG_ON(sizeof(struct rtpm_slot_ref) != 24);
	BUILD_BUG_ON(sizeof(struct rtpm_batch) != 16);
	BUILD_BUG_ON(sizeof(struct rtpm_config) != 32);
	BUILD_BUG_ON(sizeof(struct rtpm_claim) != 8);
	BUILD_BUG_ON(sizeof(struct rtpm_reclaim) != 16);
	BUILD_BUG_ON(sizeof(struct rtpm_info) != 136);
	BUILD_BUG_ON(sizeof(struct rtpm_stats) != 24 * sizeof(__u64));
	BUILD_BUG_ON(sizeof(struct rtpm_status) != 16 * sizeof(__u32));
	BUILD_BUG_ON(sizeof(struct rtpm_attach) != 32);
	BUILD_BUG_ON(sizeof(struct rtpm_detach) != 16);
	BUILD_BUG_ON(sizeof(struct rtpm_wakeup) != 16);
	BUILD_BUG_ON(sizeof(struct rtpm_clock_rate) != 8);
	BUILD_BUG_ON(sizeof(struct rtpm_capture) != 32);
	BUILD_BUG_ON(sizeof(struct rtpm_capture_record) != 24);
	BUILD_BUG_ON(sizeof(struct rtpm_quality) != 96);
	/* ABI 1.x callers read the 1.0 layout, 72 bytes. */
	BUILD_BUG_ON(_IOC_SIZE(RTPM_IOC_GET_INFO_V1) !=
		     sizeof(struct rtpm_info_v1));
	BUILD_BUG_ON(RTPM_SLOT_ALIGN & (RTPM_SLOT_ALIGN - 1));
}

static int __init rtpm_check_param(const char *name, unsigned int val,
				   unsigned int min, unsigned int max)
{
	if (val >= min && val <= max)
		return 0;
	pr_err("invalid %s=%u: allowed range is %u..%u\n", name, val, min,
	       max);
	return -EINVAL;
}

static int __init rtpm_check_params(void)
{
	return rtpm_check_param("channels", channels, 1, RTPM_CHANNELS_MAX) ?:
	       rtpm_check_param("ring_order", ring_order, RTPM_RING_ORDER_MIN,
				RTPM_RING_ORDER_MAX) ?:
	       rtpm_check_param("slot_payload", slot_payload,
				RTPM_SLOT_PAYLOAD_MIN, RTPM_SLOT_PAYLOAD_MAX) ?:
	       rtpm_check_param("drop_policy", drop_policy,
				RTPM_DROP_REJECT_NEWEST, RTPM_DROP_OLDEST) ?:
	       rtpm_check_param("wake_slots", wake_slots, 1,
				RTPM_WAKE_SLOTS_MAX) ?:
	       rtpm_check_param("wake_usecs", wake_usecs, wake_slots > 1,
				RTPM_WAKE_USECS_MAX);
}

/*
 * /proc/driver/rtp_mgr: every channel on one line, the one-screen summary a
 * field engineer reads first (sysfs has the full counters per channel).
 */
static int rtpm_proc_show(struct seq_file *m, void *v)
{
	unsigned int i;

	seq_printf(m, "rtp_mgr ABI %u.%u, %u channels\n", RTPM_ABI_MAJOR,
		   RTPM_ABI_MINOR, channels);
	seq_puts(m, "ch state   attach slots ready  held pushed     popped     drops      overruns   lost       jitter_us ssrc       wakeups\n");
	for (i = 0; i < channels; i++) {
		struct rtpm_channel *ch = &rtpm_channels[i];
		struct rtpm_quality q;
		struct rtpm_status st;
		struct rtpm_stats s;

		rtpm_chan_status(ch, &st);
		rtpm_chan_stats(ch, &s);
		rtpm_chan_quality(ch, &q);
		seq_printf(m, "%-2u %-7s %-6s %5u %5u %5u %-10llu %-10llu %-10llu %-10llu %-10lld %-9u 0x%08x %llu\n",
			   i, st.state == RTPM_STATE_RUNNING ? "running" :
			   "stopped",
			   st.attached == (RTPM_ATTACHED_RX | RTPM_ATTACHED_TX) ?
			   "rx+tx" : st.attached & RTPM_ATTACHED_RX ? "rx" :
			   st.attached & RTPM_ATTACHED_TX ? "tx" : "-",
			   st.free + st.producing + st.ready + st.consuming,
			   st.ready, st.producing + st.consuming,
			   s.pushed_packets, s.popped_packets, s.drops,
			   s.overruns, q.lost, q.jitter_us, q.ssrc, s.wakeups);
	}
	return 0;
}

/* Undo rtpm_channel_init(); the device node is already gone or never was. */
static void rtpm_channel_free(struct rtpm_channel *ch)
{
	/* A capture file holds the module: none can be left at unload. */
	WARN_ON(ch->capture);
	hrtimer_cancel(&ch->wake_timer);
	rtpm_ring_free_accounted(ch->ring);
	ch->ring = NULL;
	mutex_destroy(&ch->cfg_lock);
}

/*
 * Everything of a channel but its device node. At load the rings are the
 * module's, not the caller's: GFP_KERNEL, not charged to modprobe's cgroup.
 */
static int __init rtpm_channel_init(struct rtpm_channel *ch, u32 index,
				    const struct rtpm_config *cfg)
{
	struct rtpm_ring *ring;

	ch->index = index;
	mutex_init(&ch->cfg_lock);
	spin_lock_init(&ch->lock);
	init_waitqueue_head(&ch->wq);
	atomic_set(&ch->mappings, 0);
	rtpm_chan_wake_init(ch, wake_slots, wake_usecs);

	ring = rtpm_ring_alloc(cfg, index, GFP_KERNEL);
	if (!ring) {
		pr_err("channel %u: failed to allocate a ring of %u x %u bytes\n",
		       index, 1U << cfg->ring_order, cfg->slot_payload);
		mutex_destroy(&ch->cfg_lock);
		return -ENOMEM;
	}
	spin_lock_bh(&ch->lock);
	rtpm_chan_swap_ring_locked(ch, ring);
	spin_unlock_bh(&ch->lock);
	atomic64_add(ring->meta_size + ring->payload_size,
		     &rtpm_ring_bytes_total);

	snprintf(ch->name, sizeof(ch->name), RTPM_DEVICE_PREFIX "%u", index);
	ch->misc.minor = MISC_DYNAMIC_MINOR;
	ch->misc.name = ch->name;
	ch->misc.fops = &rtpm_fops;
	ch->misc.groups = rtpm_sysfs_groups;
	ch->misc.mode = 0660;
	return 0;
}

static int __init rtpm_init(void)
{
	struct rtpm_config cfg = {
		.ring_order = ring_order,
		.slot_payload = slot_payload,
		.drop_policy = drop_policy,
	};
	unsigned int i, registered = 0;
	u64 bytes;
	int err;

	rtpm_check_abi_layout();
	err = rtpm_check_params();
	if (err)
		return err;
	/* The load-time rings obey the ceilings CONFIGURE enforces later. */
	bytes = rtpm_ring_bytes(&cfg);
	if (bytes > (u64)max_ring_kib * 1024) {
		pr_err("ring_order=%u slot_payload=%u needs %llu KiB per channel, above max_ring_kib=%u\n",
		       ring_order, slot_payload, bytes / 1024, max_ring_kib);
		return -E2BIG;
	}
	if (bytes * channels > (u64)max_total_kib * 1024) {
		pr_err("%u channels of %llu KiB exceed max_total_kib=%u\n",
		       channels, bytes / 1024, max_total_kib);
		return -ENOSPC;
	}

	err = rtpm_attach_init();
	if (err)
		return err;
	rtpm_channels = kcalloc(channels, sizeof(*rtpm_channels), GFP_KERNEL);
	if (!rtpm_channels) {
		rtpm_attach_exit();
		return -ENOMEM;
	}

	/*
	 * Every ring first, the device nodes last: once a node exists it can be
	 * opened, so no failure may free a channel after its registration.
	 */
	for (i = 0; i < channels; i++) {
		err = rtpm_channel_init(&rtpm_channels[i], i, &cfg);
		if (err)
			goto err_free;
	}
	err = rtpm_events_init(rtpm_channels, channels, stuck_ms);
	if (err) {
		pr_err("failed to register the generic netlink family %s: %d\n",
		       RTPM_GENL_NAME, err);
		goto err_free;
	}
	for (registered = 0; registered < channels; registered++) {
		err = misc_register(&rtpm_channels[registered].misc);
		if (err) {
			pr_err("channel %u: failed to register %s: %d\n",
			       registered, rtpm_channels[registered].name, err);
			goto err_deregister;
		}
	}

	/* A summary is a convenience: the module works without it. */
	if (!proc_create_single("driver/rtp_mgr", 0444, NULL, rtpm_proc_show))
		pr_warn("could not create /proc/driver/rtp_mgr\n");

	pr_info("%u channels /dev/%s0..%u, ring_order=%u (%u slots), slot_payload=%u, drop_policy=%u, ABI %u.%u\n",
		channels, RTPM_DEVICE_PREFIX, channels - 1, ring_order,
		1U << ring_order, slot_payload, drop_policy, RTPM_ABI_MAJOR,
		RTPM_ABI_MINOR);
	return 0;

err_deregister:
	while (registered--)
		misc_deregister(&rtpm_channels[registered].misc);
	rtpm_events_exit();
err_free:
	while (i--)
		rtpm_channel_free(&rtpm_channels[i]);
	kfree(rtpm_channels);
	rtpm_attach_exit();
	return err;
}

/*
 * Open files and mappings hold a module reference through fops.owner, so
 * exit only runs once nothing uses a channel.
 */
static void __exit rtpm_exit(void)
{
	unsigned int i;

	remove_proc_entry("driver/rtp_mgr", NULL);
	for (i = 0; i < channels; i++)
		misc_deregister(&rtpm_channels[i].misc);
	/* Before the channels go: a softirq may still be in encap_rcv. */
	rtpm_attach_exit();
	rtpm_events_exit();
	for (i = 0; i < channels; i++)
		rtpm_channel_free(&rtpm_channels[i]);
	kfree(rtpm_channels);
	pr_info("unloaded\n");
}

module_init(rtpm_init);
module_exit(rtpm_exit);

MODULE_DESCRIPTION("Zero-copy RTP slot rings shared through mmap");
MODULE_AUTHOR("rtpmgr developers");
MODULE_LICENSE("GPL");
MODULE_VERSION("2.2");

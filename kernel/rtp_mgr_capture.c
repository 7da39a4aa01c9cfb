// SPDX-License-Identifier: GPL-2.0-only
/*
 * rtp_mgr_capture.c - CAPTURE (ABI 2.2): a read-only copy of what passes
 * through a channel, for pcap tools.
 *
 * Why a copy and not a peek at the ring: a reader that looks at READY slots
 * races the consumer, which releases them at its own pace, so a capture
 * would miss exactly the packets a busy channel moves; and a reader that
 * held slots would change what it observes (a full ring drops). Packet
 * sockets solve the same problem the same way: each tap gets its own copy
 * in its own bounded queue, and a tap that falls behind loses its copies,
 * counted, never the stream's packets.
 *
 * The copy is made where a slot becomes READY (rtpm_ring_write_desc(), for
 * a PUSH and for a datagram an attached socket received in softirq), under
 * the channel lock, into a queue preallocated when the capture starts, so
 * the data path neither allocates nor sleeps for it. Lock order: ch->lock,
 * then cap->lock; the reader takes cap->lock alone (with bottom halves off,
 * as the softirq path takes it too).
 *
 * Lifetime: ch->capture is set and cleared under ch->lock, and the data path
 * only uses it under ch->lock (the wake-up included), so clearing it in
 * release() before freeing the queue is enough. The capture file's fops hold
 * a reference on the module (anon_inode_getfile() takes one through .owner),
 * so the channel, which lives as long as the module, outlives every capture.
 *
 * Readers are serialised by read_lock and copy straight from the queue:
 * the producer only writes behind the last queued record and never into a
 * full queue, so the oldest record stays put until the reader advances
 * past it, which it does only once the copy succeeded.
 */
#include <linux/anon_inodes.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/mm.h>		/* kvmalloc_array(), kvfree() before 5.16 */
#include <linux/mutex.h>
#include <linux/poll.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/wait.h>

#include "rtp_mgr_ring.h"

struct rtpm_capture_queue {
	struct rtpm_channel *ch;
	spinlock_t lock;	/* first, queued, missed, the records */
	struct mutex read_lock;	/* one reader at a time */
	wait_queue_head_t wq;	/* readers waiting for a record */
	u32 queue_len;
	u32 snaplen;
	u32 stride;		/* bytes per queued record, a multiple of 8 */
	u32 first;		/* the oldest record, 0 .. queue_len - 1 */
	u32 queued;		/* records waiting to be read */
	u32 missed;		/* not copied since the last queued record */
	u8 *records;		/* queue_len x stride */
};

static size_t rtpm_capture_record_size(u32 caplen)
{
	return ALIGN(sizeof(struct rtpm_capture_record) + caplen, 8);
}

static void *rtpm_capture_record_at(struct rtpm_capture_queue *cap, u32 n)
{
	return cap->records + (size_t)((cap->first + n) % cap->queue_len) *
	       cap->stride;
}

/**
 * rtpm_capture_slot_locked - copy a slot that just became READY
 * @ch: the channel, lock held
 * @data: the slot's payload
 * @len: its bytes
 * @arrival_ns: its descriptor's arrival time
 * @flags: its descriptor's RTPM_SLOT_F_* flags
 */
void rtpm_capture_slot_locked(struct rtpm_channel *ch, const void *data,
			      u32 len, u64 arrival_ns, u32 flags)
{
	struct rtpm_capture_queue *cap = ch->capture;
	struct rtpm_capture_record *rec;
	bool wake;

	lockdep_assert_held(&ch->lock);
	if (likely(!cap))
		return;

	spin_lock(&cap->lock);
	if (cap->queued == cap->queue_len) {
		/* The reader fell behind: it loses its copy, counted. */
		if (cap->missed != U32_MAX)
			cap->missed++;
		spin_unlock(&cap->lock);
		return;
	}
	rec = rtpm_capture_record_at(cap, cap->queued);
	rec->arrival_ns = arrival_ns;
	rec->len = len;
	rec->caplen = min(len, cap->snaplen);
	rec->missed = cap->missed;
	rec->flags = flags;
	memcpy(rec + 1, data, rec->caplen);
	/* read() copies the padding too: never a byte of an older record. */
	memset((u8 *)(rec + 1) + rec->caplen, 0,
	       rtpm_capture_record_size(rec->caplen) - sizeof(*rec) -
	       rec->caplen);
	cap->missed = 0;
	/* Only an empty queue can have readers asleep on it. */
	wake = !cap->queued;
	WRITE_ONCE(cap->queued, cap->queued + 1);
	spin_unlock(&cap->lock);
	/*
	 * Still under ch->lock, unlike the channel's own wake-ups: release()
	 * frees cap once it has cleared ch->capture under that lock.
	 */
	if (wake)
		wake_up_interruptible_poll(&cap->wq, EPOLLIN | EPOLLRDNORM);
}

static bool rtpm_capture_readable(struct rtpm_capture_queue *cap)
{
	return READ_ONCE(cap->queued) != 0;
}

/* The oldest record and its size; NULL if the queue is empty. */
static const struct rtpm_capture_record *
rtpm_capture_oldest(struct rtpm_capture_queue *cap, size_t *size)
{
	const struct rtpm_capture_record *rec = NULL;

	spin_lock_bh(&cap->lock);
	if (cap->queued) {
		rec = rtpm_capture_record_at(cap, 0);
		*size = rtpm_capture_record_size(rec->caplen);
	}
	spin_unlock_bh(&cap->lock);
	return rec;
}

static void rtpm_capture_consume_oldest(struct rtpm_capture_queue *cap)
{
	spin_lock_bh(&cap->lock);
	cap->first = (cap->first + 1) % cap->queue_len;
	WRITE_ONCE(cap->queued, cap->queued - 1);
	spin_unlock_bh(&cap->lock);
}

/*
 * read: whole records, as many as fit and at most those queued when the
 * call found the first one, so a reader keeping up with a fast channel
 * still returns. A record leaves the queue only once it was copied: a
 * fault loses nothing.
 */
static ssize_t rtpm_capture_read(struct file *file, char __user *buf,
				 size_t count, loff_t *ppos)
{
	struct rtpm_capture_queue *cap = file->private_data;
	const struct rtpm_capture_record *rec;
	ssize_t ret = 0;
	size_t done = 0, size;
	u32 budget;

	if (count < sizeof(struct rtpm_capture_record))
		return -EINVAL;
	if (file->f_flags & O_NONBLOCK) {
		if (!mutex_trylock(&cap->read_lock))
			return -EAGAIN;
	} else if (mutex_lock_interruptible(&cap->read_lock)) {
		return -ERESTARTSYS;
	}
	while (!rtpm_capture_readable(cap)) {
		if (file->f_flags & O_NONBLOCK) {
			ret = -EAGAIN;
			goto out;
		}
		ret = wait_event_interruptible(cap->wq,
					       rtpm_capture_readable(cap));
		if (ret)
			goto out;
	}
	budget = READ_ONCE(cap->queued);
	while (budget--) {
		rec = rtpm_capture_oldest(cap, &size);
		if (!rec)
			break;
		if (size > count - done) {
			/* Not even one record fits: say so. */
			if (!done)
				ret = -EINVAL;
			break;
		}
		if (copy_to_user(buf + done, rec, size)) {
			ret = -EFAULT;
			break;
		}
		rtpm_capture_consume_oldest(cap);
		done += size;
	}
out:
	mutex_unlock(&cap->read_lock);
	return done ? done : ret;
}

static __poll_t rtpm_capture_poll(struct file *file, poll_table *wait)
{
	struct rtpm_capture_queue *cap = file->private_data;

	poll_wait(file, &cap->wq, wait);
	return rtpm_capture_readable(cap) ? EPOLLIN | EPOLLRDNORM : 0;
}

static void rtpm_capture_free(struct rtpm_capture_queue *cap)
{
	kvfree(cap->records);
	kfree(cap);
}

static int rtpm_capture_release(struct inode *inode, struct file *file)
{
	struct rtpm_capture_queue *cap = file->private_data;
	struct rtpm_channel *ch = cap->ch;

	spin_lock_bh(&ch->lock);
	if (ch->capture == cap)
		ch->capture = NULL;
	spin_unlock_bh(&ch->lock);
	rtpm_capture_free(cap);
	return 0;
}

static const struct file_operations rtpm_capture_fops = {
	.owner = THIS_MODULE,
	.read = rtpm_capture_read,
	.poll = rtpm_capture_poll,
	.release = rtpm_capture_release,
};

static bool rtpm_capture_busy(struct rtpm_channel *ch)
{
	bool busy;

	spin_lock_bh(&ch->lock);
	busy = ch->capture;
	spin_unlock_bh(&ch->lock);
	return busy;
}

/**
 * rtpm_capture_ioctl - CAPTURE: start a capture, return its file descriptor
 * @ch: the channel
 * @ureq: the request in user space; the queue length and snaplen used are
 *	  written back to it
 *
 * Return: the new descriptor, or -EINVAL (reserved bits or fields set, a
 * snaplen above RTPM_SLOT_PAYLOAD_MAX, a queue above the limits), -EBUSY
 * (the channel has a capture), -ENOMEM, -EMFILE.
 */
int rtpm_capture_ioctl(struct rtpm_channel *ch,
		       struct rtpm_capture __user *ureq)
{
	struct rtpm_capture r, *req = &r;
	struct rtpm_capture_queue *cap;
	u32 queue_len, snaplen;
	struct file *file;
	unsigned int i;
	size_t stride;
	int fd, flags;

	if (copy_from_user(req, ureq, sizeof(*req)))
		return -EFAULT;
	if (req->flags & ~RTPM_CAPTURE_F_ALL)
		return -EINVAL;
	for (i = 0; i < ARRAY_SIZE(req->reserved); i++)
		if (req->reserved[i])
			return -EINVAL;
	if (req->snaplen > RTPM_SLOT_PAYLOAD_MAX ||
	    req->queue_len > RTPM_CAPTURE_QUEUE_MAX)
		return -EINVAL;
	/* Checked again below; this spares a busy channel the allocation. */
	if (rtpm_capture_busy(ch))
		return -EBUSY;

	queue_len = req->queue_len ? : RTPM_CAPTURE_QUEUE_DEFAULT;
	snaplen = req->snaplen;
	if (!snaplen) {
		spin_lock_bh(&ch->lock);
		snaplen = ch->ring->cfg.slot_payload;
		spin_unlock_bh(&ch->lock);
	}
	stride = rtpm_capture_record_size(snaplen);
	if ((u64)queue_len * stride > RTPM_CAPTURE_BYTES_MAX)
		return -EINVAL;
	/* Before the descriptor exists: a fault here leaves nothing behind. */
	req->queue_len = queue_len;
	req->snaplen = snaplen;
	if (copy_to_user(ureq, req, sizeof(*req)))
		return -EFAULT;

	cap = kzalloc(sizeof(*cap), GFP_KERNEL_ACCOUNT);
	if (!cap)
		return -ENOMEM;
	cap->ch = ch;
	spin_lock_init(&cap->lock);
	mutex_init(&cap->read_lock);
	init_waitqueue_head(&cap->wq);
	cap->queue_len = queue_len;
	cap->snaplen = snaplen;
	cap->stride = stride;
	cap->records = kvmalloc_array(queue_len, stride, GFP_KERNEL_ACCOUNT);
	if (!cap->records) {
		rtpm_capture_free(cap);
		return -ENOMEM;
	}

	flags = O_RDONLY;
	if (req->flags & RTPM_CAPTURE_F_NONBLOCK)
		flags |= O_NONBLOCK;
	fd = get_unused_fd_flags(flags | O_CLOEXEC);
	if (fd < 0) {
		rtpm_capture_free(cap);
		return fd;
	}
	file = anon_inode_getfile("[rtp_mgr_capture]", &rtpm_capture_fops, cap,
				  flags);
	if (IS_ERR(file)) {
		put_unused_fd(fd);
		rtpm_capture_free(cap);
		return PTR_ERR(file);
	}
	/* A stream of records: no positions, no pread(), lseek() -ESPIPE. */
	stream_open(file_inode(file), file);

	spin_lock_bh(&ch->lock);
	if (ch->capture) {
		spin_unlock_bh(&ch->lock);
		/* release() frees cap; it finds another capture published. */
		fput(file);
		put_unused_fd(fd);
		return -EBUSY;
	}
	ch->capture = cap;
	spin_unlock_bh(&ch->lock);
	/* Published: from here the descriptor must not fail. */
	fd_install(fd, file);
	dev_dbg(ch->misc.this_device, "capture: %u records of %u bytes\n",
		queue_len, snaplen);
	return fd;
}

// SPDX-License-Identifier: GPL-2.0-only
/*
 * rtp_mgr_attach.c - UDP sockets attached to a channel (ABI 2.1).
 *
 * RX: the kernel takes datagrams from a UDP socket straight into ring slots.
 * User space creates, binds and tunes the socket (SO_REUSEADDR, SO_RCVBUF,
 * multicast joins, SO_BINDTODEVICE, IPv4 or IPv6 all stay standard) and
 * passes its fd. The module installs itself as the socket's encapsulation
 * receiver, as drivers/net/gtp.c, L2TP, WireGuard and FOU do: encap_rcv is
 * called by udp_queue_rcv_one_skb() in softirq context, after the checksum
 * was verified (udp_lib_checksum_complete()), once per datagram (an
 * unexpected GSO skb is segmented before), and before the datagram is queued
 * on the socket. Copying there costs the one copy recvmsg() would have done
 * and no wake-up of a receiving thread at all.
 *
 * Why encap_rcv and not a replaced sk_data_ready (kTLS, strparser, KCM):
 * sk_data_ready runs after the skb was queued and charged to the socket, so
 * taking it back means a second pass over the receive queue under the socket
 * lock, usually from a work item, per wake-up: more latency and more CPU.
 * encap_rcv sees each datagram once, where it arrives.
 *
 * The fields are set by hand, as the inline udp_tunnel_encap_enable() does
 * (rtp_mgr_compat.h), instead of with setup_udp_tunnel_sock(): that helper lives in the udp_tunnel
 * module (CONFIG_NET_UDP_TUNNEL), which many BSP kernels do not build, and it
 * also turns off multicast loopback and enables checksum conversion, which
 * only a tunnel that resends the inner packet wants.
 *
 * Lifetime of an RX attachment: the channel holds a reference to the sock
 * (sock_hold()), not to its file, so closing the socket's last descriptor
 * destroys it and calls encap_destroy, which detaches (as in gtp.c). ATTACH
 * sets up the socket side first and links the attachment into the channel
 * last, so that no other path can see a half-built one. Every path that ends
 * an attachment (DETACH, the close of the file that attached, encap_destroy;
 * all in process context) first takes it out of the channel under ch->lock:
 * exactly one of them wins and tears it down, the others find NULL.
 * Teardown clears the callbacks under sk_callback_lock, then waits for an
 * RCU grace period before it frees the attachment and drops the sock:
 * encap_rcv runs under rcu_read_lock() and may still be using both, and
 * once DETACH has returned, user space may hand the socket to another
 * in-kernel receiver whose sk_user_data an old encap_rcv must never read.
 * A datagram that was already in encap_rcv pushes only while the channel
 * still names the attachment (checked under ch->lock).
 *
 * UDP GRO: a socket that enabled UDP_GRO may get a GSO super-packet of
 * several datagrams of gso_size bytes; encap_rcv splits it into one slot
 * per datagram, as udp_recvmsg() would hand them to a GRO-aware reader.
 *
 * What the module bypasses: encap_rcv runs before the socket's own receive
 * path, so socket filters (SO_ATTACH_FILTER), receive timestamps and
 * IP_PKTINFO do not apply to datagrams the channel takes, and ICMP errors
 * for the socket are not reported (IP_RECVERR). Datagrams queued on the
 * socket before ATTACH stay in its receive queue.
 *
 * TX: a work item sends READY slots through the socket with kernel_sendmsg()
 * and gives them back. A full send buffer (-EAGAIN, -ENOBUFS) keeps the
 * unsent slots and retries after RTPM_TX_RETRY_NS. A work item, not a
 * kthread: it only runs when there is something to send, may sleep in
 * sendmsg, and needs no thread per channel; the unbound high-priority
 * workqueue keeps it off the CPU that pushed. The
 * channel holds a reference to the socket's file (sockfd_lookup()): the
 * worker sends through struct socket, which lives as long as the file.
 * Pacing is a token bucket kept as a virtual clock: packet k may leave at
 * next_ns + k * interval; next_ns never lags "now" by more than the bucket
 * depth, and an hrtimer (HRTIMER_MODE_ABS_SOFT) kicks the worker when the
 * next token is due.
 */
#include <linux/file.h>
#include <linux/hrtimer.h>
#include <linux/net.h>
#include <linux/rcupdate.h>
#include <linux/slab.h>
#include <linux/workqueue.h>
#include <net/sock.h>
#include <net/udp.h>

#include "rtp_mgr_compat.h"
#include "rtp_mgr_ring.h"

/* udp_sk(sk)->encap_type of an RX socket; any value but 0 means "encap". */
#define RTPM_UDP_ENCAP_TYPE	0xe7

/* Slots the TX worker takes per lock round trip. */
#define RTPM_TX_BATCH		32

/* A full send buffer is retried after this long. */
#define RTPM_TX_RETRY_NS	(1 * NSEC_PER_MSEC)

struct rtpm_attachment {
	struct rtpm_channel *ch;
	struct rtpm_file *owner;	/* the file that attached */
	u32 direction;			/* RTPM_DIR_* */
	bool took_role;			/* ATTACH gave owner the role */

	/* RX: the socket, held by sock_hold(). */
	struct sock *sk;

	/* TX: the socket, its file held by sockfd_lookup(). */
	struct socket *sock;
	struct work_struct work;
	struct hrtimer pace_timer;
	u64 interval_ns;		/* 0: unpaced */
	u64 burst_ns;			/* (burst - 1) * interval_ns */
	u64 next_ns;			/* when the next packet may leave */
	bool dying;			/* under ch->lock: no new work or timer */
	/* Slots taken from the ring and not sent yet (worker only). */
	u32 held_index[RTPM_TX_BATCH];
	u32 held_len[RTPM_TX_BATCH];
	u32 held_pos, held_n;
};

static struct workqueue_struct *rtpm_tx_wq;

/* ---- RX ---------------------------------------------------------------- */

/*
 * Softirq, under rcu_read_lock(), checksum verified; skb->data is the UDP
 * header (udp_rcv() guarantees it is there). Returns 0 (consumed) or 1 (not
 * ours: the normal UDP path takes it).
 */
static int rtpm_udp_encap_recv(struct sock *sk, struct sk_buff *skb)
{
	struct rtpm_attachment *att = rcu_dereference_sk_user_data(sk);
	unsigned int off = sizeof(struct udphdr), seg, len;
	bool dropped = false;
	int err;

	if (unlikely(!att))
		return 1;
	len = skb->len - off;
	/* A UDP GRO super-packet: one slot per datagram of gso_size. */
	seg = skb_is_gso(skb) ? skb_shinfo(skb)->gso_size : 0;
	if (!seg || seg > len)
		seg = len;
	do {
		unsigned int n = min(seg, len);

		err = rtpm_chan_receive(att->ch, att, skb, off, n);
		/* Detached a moment ago: hand the datagram back untouched. */
		if (err == -ENOENT && off == sizeof(struct udphdr))
			return 1;
		dropped |= err != 0;
		off += n;
		len -= n;
	} while (len);
	/* A drop (counted by the channel) shows in the drop monitors. */
	if (dropped)
		kfree_skb(skb);
	else
		consume_skb(skb);
	return 0;
}

/*
 * Undo the socket side of an RX attachment that is out of the channel (or
 * never got in). Process context: waits for encap_rcv on other CPUs.
 */
static void rtpm_rx_teardown(struct rtpm_attachment *att)
{
	struct sock *sk = att->sk;
	struct udp_sock *up = udp_sk(sk);

	write_lock_bh(&sk->sk_callback_lock);
	WRITE_ONCE(up->encap_type, 0);
	WRITE_ONCE(up->encap_rcv, NULL);
	WRITE_ONCE(up->encap_destroy, NULL);
	rcu_assign_sk_user_data(sk, NULL);
	write_unlock_bh(&sk->sk_callback_lock);
	synchronize_rcu();
	sock_put(sk);
	kfree(att);
}

/*
 * Take @att out of its channel if it is still there; the caller holds
 * ch->lock. Returns true if this caller must tear it down.
 */
static bool rtpm_attach_unlink_locked(struct rtpm_attachment *att)
{
	struct rtpm_channel *ch = att->ch;
	bool rx = att->direction == RTPM_DIR_RX;
	struct rtpm_attachment **slot = rx ? &ch->rx_att : &ch->tx_att;
	struct rtpm_file **holder = rx ? &ch->producer_file : &ch->consumer_file;
	u32 role = rx ? RTPM_ROLE_PRODUCER : RTPM_ROLE_CONSUMER;

	if (*slot != att)
		return false;
	WRITE_ONCE(*slot, NULL);
	/* The role ATTACH gave ends with the attachment; a CLAIMed one stays. */
	if (att->took_role) {
		if (*holder == att->owner)
			*holder = NULL;
		att->owner->roles &= ~role;
	}
	WRITE_ONCE(att->dying, true);
	return true;
}

/*
 * The socket is being destroyed (its last descriptor was closed): process
 * context, from udp_destroy_sock(). Detach if no other path did already.
 */
static void rtpm_udp_encap_destroy(struct sock *sk)
{
	struct rtpm_attachment *att;
	bool mine = false;

	/*
	 * att is freed only after a grace period that starts once it is out
	 * of the channel: under rcu_read_lock() it and att->ch are safe.
	 */
	rcu_read_lock();
	att = rcu_dereference_sk_user_data(sk);
	if (att) {
		spin_lock_bh(&att->ch->lock);
		mine = rtpm_attach_unlink_locked(att);
		spin_unlock_bh(&att->ch->lock);
	}
	rcu_read_unlock();
	if (mine) {
		dev_info_ratelimited(att->ch->misc.this_device,
				     "rx socket closed: detached\n");
		rtpm_event_current(att->ch, RTPM_EVENT_DETACH_RX, 1);
		rtpm_rx_teardown(att);
	}
}

static bool rtpm_sock_is_udp(const struct sock *sk)
{
	return sk->sk_type == SOCK_DGRAM && sk->sk_protocol == IPPROTO_UDP &&
	       (sk->sk_family == AF_INET || sk->sk_family == AF_INET6);
}

/* Install @att in the channel: the direction's slot and role must be free. */
static int rtpm_attach_link(struct rtpm_attachment *att)
{
	struct rtpm_channel *ch = att->ch;
	struct rtpm_file *rf = att->owner;
	bool rx = att->direction == RTPM_DIR_RX;
	struct rtpm_attachment **slot = rx ? &ch->rx_att : &ch->tx_att;
	struct rtpm_file **holder = rx ? &ch->producer_file : &ch->consumer_file;
	int err = 0;

	spin_lock_bh(&ch->lock);
	if (*slot) {
		err = -EBUSY;
	} else if (*holder && *holder != rf) {
		ch->stats.denied++;
		err = -EPERM;
	} else {
		att->took_role = !*holder;
		*holder = rf;
		rf->roles |= rx ? RTPM_ROLE_PRODUCER : RTPM_ROLE_CONSUMER;
		WRITE_ONCE(*slot, att);
	}
	spin_unlock_bh(&ch->lock);
	return err;
}

/* Attach @att for RX; on failure @att is freed. */
static int rtpm_attach_rx(struct rtpm_attachment *att, struct socket *sock)
{
	struct sock *sk = sock->sk;
	struct udp_sock *up = udp_sk(sk);
	int err;

	lock_sock(sk);
	/*
	 * Another in-kernel receiver (a tunnel, another channel, sockmap) has
	 * it: checked and taken under sk_callback_lock, which they all use.
	 */
	write_lock_bh(&sk->sk_callback_lock);
	if (up->encap_type || sk->sk_user_data) {
		write_unlock_bh(&sk->sk_callback_lock);
		release_sock(sk);
		kfree(att);
		return -EBUSY;
	}
	att->sk = sk;
	sock_hold(sk);
	rcu_assign_sk_user_data(sk, att);
	WRITE_ONCE(up->encap_destroy, rtpm_udp_encap_destroy);
	WRITE_ONCE(up->encap_rcv, rtpm_udp_encap_recv);
	WRITE_ONCE(up->encap_type, RTPM_UDP_ENCAP_TYPE);
	write_unlock_bh(&sk->sk_callback_lock);
	/* Turns on the encap branch of udp(v6)_queue_rcv_one_skb(). */
	rtpm_udp_encap_enable(sk);
	/*
	 * Until it is linked, encap_rcv hands datagrams back to UDP. Linking
	 * last means no other path can see a half-built attachment.
	 */
	err = rtpm_attach_link(att);
	release_sock(sk);
	if (err)
		rtpm_rx_teardown(att);
	return err;
}

/* ---- TX ---------------------------------------------------------------- */

/* Packets the bucket lets out now; @now is CLOCK_MONOTONIC ns. */
static u32 rtpm_tx_budget(struct rtpm_attachment *att, u64 now)
{
	if (!att->interval_ns)
		return RTPM_TX_BATCH;
	if (att->next_ns + att->burst_ns < now)
		att->next_ns = now - att->burst_ns;
	if (att->next_ns > now)
		return 0;
	return min_t(u64, RTPM_TX_BATCH,
		     div64_u64(now - att->next_ns, att->interval_ns) + 1);
}

static int rtpm_tx_send_one(struct rtpm_attachment *att, void *data, u32 len)
{
	struct msghdr msg = { .msg_flags = MSG_DONTWAIT | MSG_NOSIGNAL };
	struct kvec vec = { .iov_base = data, .iov_len = len };
	int ret = kernel_sendmsg(att->sock, &msg, &vec, 1, len);

	return ret == len ? 0 : (ret < 0 ? ret : -EMSGSIZE);
}

/* Arm the pace timer for @when unless the attachment is ending. */
static void rtpm_tx_arm_locked(struct rtpm_attachment *att, u64 when)
{
	if (!att->dying && !hrtimer_is_queued(&att->pace_timer))
		hrtimer_start(&att->pace_timer, ns_to_ktime(when),
			      HRTIMER_MODE_ABS_SOFT);
}

/* Take up to a bucketful of READY slots into att->held; 0 if none may go. */
static u32 rtpm_tx_take(struct rtpm_attachment *att)
{
	struct rtpm_channel *ch = att->ch;
	u32 n = 0;

	spin_lock_bh(&ch->lock);
	if (!att->dying)
		n = rtpm_ring_take_ready_locked(ch, att->held_index,
						att->held_len,
						rtpm_tx_budget(att, ktime_get_ns()));
	/* Paced and READY slots wait: come back when a token is due. */
	if (!n && att->interval_ns && ch->consumer != ch->producer)
		rtpm_tx_arm_locked(att, att->next_ns);
	spin_unlock_bh(&ch->lock);
	att->held_pos = 0;
	att->held_n = n;
	return n;
}

static void rtpm_tx_work(struct work_struct *work)
{
	struct rtpm_attachment *att = container_of(work, struct rtpm_attachment,
						   work);
	struct rtpm_channel *ch = att->ch;
	u32 k, sent, failed;
	int err, last_err = 0;
	bool full;

	while (att->held_pos < att->held_n || rtpm_tx_take(att)) {
		/*
		 * The held slots are CONSUMING without owner: no file can
		 * touch them, and CONFIGURE (attached) and RESET (slots held)
		 * are refused, so the ring stays as it is without the lock.
		 */
		struct rtpm_ring *r = READ_ONCE(ch->ring);

		sent = 0;
		failed = 0;
		full = false;
		for (k = att->held_pos; k < att->held_n; k++) {
			err = rtpm_tx_send_one(att, r->payload +
					       (size_t)att->held_index[k] *
					       r->slot_stride,
					       att->held_len[k]);
			if (err == -EAGAIN || err == -ENOBUFS) {
				full = true;	/* keep it, try again later */
				break;
			}
			if (err) {
				failed++;
				last_err = err;
			} else {
				sent++;
			}
		}
		att->next_ns += (u64)(sent + failed) * att->interval_ns;

		spin_lock_bh(&ch->lock);
		rtpm_ring_give_back_locked(ch, att->held_index + att->held_pos,
					   k - att->held_pos);
		ch->stats.tx_sent += sent;
		ch->stats.tx_errors += failed;
		if (full)
			rtpm_tx_arm_locked(att, ktime_get_ns() +
					   RTPM_TX_RETRY_NS);
		rtpm_chan_unlock_bh(ch);
		att->held_pos = k;
		/* Producers blocked in RESERVE on a full ring. */
		wake_up_interruptible(&ch->wq);
		if (failed)
			dev_dbg_ratelimited(ch->misc.this_device,
					    "tx: %u sends failed, last %d\n",
					    failed, last_err);
		if (full || READ_ONCE(att->dying))
			break;
		cond_resched();
	}
}

static enum hrtimer_restart rtpm_tx_pace_timer_fn(struct hrtimer *timer)
{
	struct rtpm_attachment *att = container_of(timer, struct rtpm_attachment,
						   pace_timer);

	if (!READ_ONCE(att->dying))
		queue_work(rtpm_tx_wq, &att->work);
	return HRTIMER_NORESTART;
}

/* New READY slots on a channel: run its TX worker if it has one. */
void rtpm_attach_kick_tx(struct rtpm_channel *ch)
{
	struct rtpm_attachment *att;

	/*
	 * The attachment is freed only after cancel_work_sync() in
	 * rtpm_tx_teardown(), which runs once it left ch->tx_att under the
	 * lock: look it up and queue under the lock.
	 */
	spin_lock_bh(&ch->lock);
	att = ch->tx_att;
	if (att && !att->dying)
		queue_work(rtpm_tx_wq, &att->work);
	spin_unlock_bh(&ch->lock);
}

static void rtpm_tx_teardown(struct rtpm_attachment *att)
{
	struct rtpm_channel *ch = att->ch;
	u32 unsent;

	/* dying is set: neither the timer nor the worker re-arms the other. */
	hrtimer_cancel(&att->pace_timer);
	cancel_work_sync(&att->work);
	hrtimer_cancel(&att->pace_timer);
	/* Slots the worker held for a full send buffer go back unsent. */
	unsent = att->held_n - att->held_pos;
	if (unsent) {
		spin_lock_bh(&ch->lock);
		rtpm_ring_give_back_locked(ch, att->held_index + att->held_pos,
					   unsent);
		ch->stats.tx_errors += unsent;
		rtpm_chan_unlock_bh(ch);
		wake_up_interruptible(&ch->wq);
	}
	sockfd_put(att->sock);
	kfree(att);
}

static int rtpm_attach_tx(struct rtpm_attachment *att, struct socket *sock,
			  const struct rtpm_attach *req)
{
	struct rtpm_channel *ch = att->ch;
	u32 burst = req->tx_burst ? req->tx_burst : 1;
	int err;

	/* The destination comes from connect(): sendmsg() names none. */
	if (READ_ONCE(sock->sk->sk_state) != TCP_ESTABLISHED)
		return -ENOTCONN;
	if (req->tx_rate_pps) {
		att->interval_ns = div_u64(NSEC_PER_SEC, req->tx_rate_pps);
		att->burst_ns = (u64)(burst - 1) * att->interval_ns;
		att->next_ns = ktime_get_ns();
	}
	att->sock = sock;
	INIT_WORK(&att->work, rtpm_tx_work);
	hrtimer_init(&att->pace_timer, CLOCK_MONOTONIC, HRTIMER_MODE_ABS_SOFT);
	att->pace_timer.function = rtpm_tx_pace_timer_fn;
	err = rtpm_attach_link(att);
	if (err)
		return err;
	/* Slots already READY go out now. */
	rtpm_attach_kick_tx(ch);
	return 0;
}

/* ---- ioctls and teardown ------------------------------------------------- */

/**
 * rtpm_attach_ioctl - ATTACH a UDP socket to @rf's channel
 * @rf: the attaching file (a writer)
 * @req: the request, copied from user space
 *
 * Return: 0 or the errno of the UAPI header's ATTACH comment.
 */
int rtpm_attach_ioctl(struct rtpm_file *rf, const struct rtpm_attach *req)
{
	struct rtpm_channel *ch = rf->ch;
	struct rtpm_attachment *att;
	struct socket *sock;
	int err;

	if (req->flags || memchr_inv(req->reserved, 0, sizeof(req->reserved)))
		return -EINVAL;
	if (req->direction != RTPM_DIR_RX && req->direction != RTPM_DIR_TX)
		return -EINVAL;
	if (req->direction == RTPM_DIR_RX && (req->tx_rate_pps || req->tx_burst))
		return -EINVAL;
	/* A burst without a rate, or a rate finer than 1 ns, means nothing. */
	if ((req->tx_burst && !req->tx_rate_pps) ||
	    req->tx_burst > RTPM_TX_BURST_MAX ||
	    req->tx_rate_pps > NSEC_PER_SEC)
		return -EINVAL;

	sock = sockfd_lookup(req->fd, &err);
	if (!sock)
		return err;
	if (!rtpm_sock_is_udp(sock->sk)) {
		err = -EPROTONOSUPPORT;
		goto out_put;
	}
	att = kzalloc(sizeof(*att), GFP_KERNEL_ACCOUNT);
	if (!att) {
		err = -ENOMEM;
		goto out_put;
	}
	att->ch = ch;
	att->owner = rf;
	att->direction = req->direction;

	if (req->direction == RTPM_DIR_RX) {
		err = rtpm_attach_rx(att, sock);
		/* RX keeps the sock, not the file: closing it detaches. */
		sockfd_put(sock);
	} else {
		err = rtpm_attach_tx(att, sock, req);
		if (err) {
			kfree(att);
			sockfd_put(sock);
		}
	}
	if (!err) {
		dev_info_ratelimited(ch->misc.this_device,
				     "%s socket attached by %s[%d]%s\n",
				     req->direction == RTPM_DIR_RX ? "rx" : "tx",
				     current->comm, task_tgid_nr(current),
				     req->tx_rate_pps ? ", paced" : "");
		rtpm_event_current(ch, req->direction == RTPM_DIR_RX ?
				   RTPM_EVENT_ATTACH_RX : RTPM_EVENT_ATTACH_TX, 1);
	}
	return err;

out_put:
	sockfd_put(sock);
	return err;
}

/* Every path that won the unlink: the event, then the socket side. */
static void rtpm_attach_teardown(struct rtpm_attachment *att)
{
	rtpm_event_current(att->ch, att->direction == RTPM_DIR_RX ?
			   RTPM_EVENT_DETACH_RX : RTPM_EVENT_DETACH_TX, 1);
	if (att->direction == RTPM_DIR_RX)
		rtpm_rx_teardown(att);
	else
		rtpm_tx_teardown(att);
}

/**
 * rtpm_detach_ioctl - DETACH the socket of @direction from @rf's channel
 * @rf: the file that attached it, or an administrator's file
 * @direction: RTPM_DIR_*
 *
 * Return: 0, -EINVAL, -ENOENT if none is attached, -EPERM (counted in
 * denied) for another file without CAP_NET_ADMIN.
 */
int rtpm_detach_ioctl(struct rtpm_file *rf, u32 direction)
{
	struct rtpm_channel *ch = rf->ch;
	struct rtpm_attachment *att;
	int err = 0;

	if (direction != RTPM_DIR_RX && direction != RTPM_DIR_TX)
		return -EINVAL;
	spin_lock_bh(&ch->lock);
	att = direction == RTPM_DIR_RX ? ch->rx_att : ch->tx_att;
	if (!att) {
		err = -ENOENT;
	} else if (att->owner != rf && !rf->admin) {
		ch->stats.denied++;
		err = -EPERM;
	} else {
		rtpm_attach_unlink_locked(att);
	}
	spin_unlock_bh(&ch->lock);
	if (!err)
		rtpm_attach_teardown(att);
	return err;
}

/* The last close of @rf: end the attachments it made. */
void rtpm_attach_release_file(struct rtpm_file *rf)
{
	struct rtpm_channel *ch = rf->ch;
	struct rtpm_attachment *att[2] = { NULL, NULL };
	int i;

	spin_lock_bh(&ch->lock);
	if (ch->rx_att && ch->rx_att->owner == rf) {
		att[0] = ch->rx_att;
		rtpm_attach_unlink_locked(att[0]);
	}
	if (ch->tx_att && ch->tx_att->owner == rf) {
		att[1] = ch->tx_att;
		rtpm_attach_unlink_locked(att[1]);
	}
	spin_unlock_bh(&ch->lock);

	for (i = 0; i < 2; i++)
		if (att[i])
			rtpm_attach_teardown(att[i]);
}

/* The roles @rf holds because of its attachments; ch->lock held. */
u32 rtpm_attach_roles_locked(struct rtpm_channel *ch,
			     const struct rtpm_file *rf)
{
	return (ch->rx_att && ch->rx_att->owner == rf ? RTPM_ROLE_PRODUCER : 0) |
	       (ch->tx_att && ch->tx_att->owner == rf ? RTPM_ROLE_CONSUMER : 0);
}

/* RTPM_ATTACHED_* of @ch; the caller holds ch->lock. */
u32 rtpm_attach_state_locked(struct rtpm_channel *ch)
{
	return (ch->rx_att ? RTPM_ATTACHED_RX : 0) |
	       (ch->tx_att ? RTPM_ATTACHED_TX : 0);
}

int __init rtpm_attach_init(void)
{
	rtpm_tx_wq = alloc_workqueue("rtp_mgr_tx", WQ_UNBOUND | WQ_HIGHPRI, 0);
	return rtpm_tx_wq ? 0 : -ENOMEM;
}

/*
 * Module exit: every file is closed, so every attachment ended, and each
 * teardown waited for the encap_rcv calls it could race with. One more
 * grace period covers a softirq that loaded encap_rcv just before.
 */
void rtpm_attach_exit(void)
{
	synchronize_rcu();
	destroy_workqueue(rtpm_tx_wq);
}

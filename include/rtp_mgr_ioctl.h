/* SPDX-License-Identifier: GPL-2.0-only WITH Linux-syscall-note */
/*
 * rtp_mgr_ioctl.h - user-space ABI of the rtp_mgr kernel module.
 *
 * This header is the one source of truth for the rtp_mgr ABI: the kernel
 * module, the C tests and the Rust crate rtpmgr-abi (whose layout test
 * compiles this file) all follow it.
 *
 * Every structure uses fixed-width types only, carries its padding as named
 * fields that must be zero, and has the same layout on arm64 and x86_64 (and
 * for 32-bit callers through compat_ioctl).
 *
 * Model
 * -----
 * Each channel (/dev/rtp_mgrN) owns a ring of 2^ring_order slots. A slot is a
 * kernel-owned descriptor (struct rtpm_slot_desc) plus a payload buffer of
 * slot_payload bytes. Slots travel through the ring in order:
 *
 *   FREE --RESERVE--> PRODUCING --PUSH--> READY --POP--> CONSUMING --RELEASE--> FREE
 *
 * PRODUCING and CONSUMING slots are owned by the open file that reserved or
 * popped them: only that file may push, cancel or release them, and they
 * return to FREE (counted as "reclaimed") when that file is closed for the
 * last time, e.g. because its process was killed. A file shared with a child
 * by fork() stays open in the child: open the device with O_CLOEXEC, and
 * close it in children that do not use it. CANCEL returns a PRODUCING slot
 * to FREE without pushing it.
 *
 * Who may do what (ABI 2.0; the threat model is in docs/kernel-module.md)
 * ------------------------------------------------------------------------
 *   any opener (O_RDONLY is enough)   GET_INFO, GET_STATS, GET_STATUS,
 *                                     GET_WAKEUP, GET_QUALITY, poll(),
 *                                     read-only mmaps of both regions
 *   opened for writing (O_RDWR)       slot operations, CLAIM, a writable
 *                                     mapping of the payload region,
 *                                     CAPTURE (2.2)
 *   the producer-role holder          START and STOP of its channel, and the
 *                                     one-call PUSH_SLOT with implicit reserve
 *   CAP_NET_ADMIN (of the opener, on    CONFIGURE, RESET, RECLAIM, and START or
 *   a file opened for writing)        STOP of a channel it does not produce
 *   a writer whose role is free or    ATTACH of a socket (2.1); DETACH by
 *   its own (producer RX, consumer TX) the file that attached or an admin
 *   an administrator or role holder   SET_WAKEUP, SET_CLOCK_RATE (2.1)
 * A file without write access gets -EBADF for a slot operation; a missing
 * role or capability gives -EPERM. Both are counted in "denied".
 *
 * Roles: CLAIM gives a file the producer and/or consumer role of its channel,
 * at most one file each. While another file holds the producer role, RESERVE
 * and PUSH fail with -EPERM; while another holds the consumer role, POP does.
 * A channel nobody claimed works as before (several producers and consumers).
 * Roles end with CLAIM of 0 or when the file is closed.
 *
 * Memory map
 * ----------
 * The mmap space of a channel has two regions, both described by the header
 * page so that user space never hard-codes the layout:
 *
 *   offset 0               meta region, read-only: struct rtpm_ring_header
 *                          (page 0) then the descriptor table
 *                          (slot_count x struct rtpm_slot_desc)
 *   header.payload_offset  payload region, read-write: slot i's payload at
 *                          payload_offset + i * slot_stride
 *
 * A writable mapping of the meta region is refused with -EPERM, a mapping
 * that crosses regions or runs past one with -EINVAL.
 *
 * Typical producer:   RESERVE_BATCH -> write payloads -> PUSH_BATCH
 * Typical consumer:   POP_BATCH -> read payloads -> RELEASE_BATCH
 * With batches of 32 slots that is 1/16 syscall per packet on each side.
 * poll(): POLLIN when READY slots exist; POLLOUT when a RESERVE by this file
 * would succeed (never on a stopped channel, a read-only file, or while
 * another file holds the producer role); POLLHUP while the channel is
 * stopped, if it was stopped after this file was opened (POLLIN still
 * reports what is left to drain).
 */
#ifndef _UAPI_RTP_MGR_IOCTL_H
#define _UAPI_RTP_MGR_IOCTL_H

#include <linux/ioctl.h>
#include <linux/types.h>

/*
 * ABI version: a major change breaks old user space, a minor one adds.
 * 2.0: new ioctl magic (1.x collided with rpmsg), roles and privileges,
 * CANCEL, RECLAIM, flags in struct rtpm_slot_ref, reserved fields in the
 * configuration, the statistics and the status. A 1.x program's GET_INFO is
 * still answered (with abi_major 2) so that it can report the mismatch; its
 * other ioctls get -ENOTTY.
 * 2.1: ATTACH and DETACH of UDP sockets (the kernel receives into the ring
 * and sends from it), wake-up coalescing (SET_WAKEUP, GET_WAKEUP), stream
 * quality as an RTCP receiver report computes it (SET_CLOCK_RATE,
 * GET_QUALITY), and the counters and status fields they need, taken from the
 * reserved tails. A 2.0 program sees zero there and works unchanged.
 * 2.2: CAPTURE, a read-only file that receives a copy of every packet that
 * becomes READY, for pcap tools that must not take packets from the
 * channel's consumer.
 */
#define RTPM_ABI_MAJOR		2
#define RTPM_ABI_MINOR		2

#define RTPM_MAGIC		0x4d505452	/* "RTPM" little endian */
#define RTPM_DEVICE_PREFIX	"rtp_mgr"	/* /dev/rtp_mgr0 ... */

/* Limits, shared by the module parameters and CONFIGURE. */
#define RTPM_RING_ORDER_MIN	1
#define RTPM_RING_ORDER_MAX	15		/* 32768 slots */
#define RTPM_SLOT_PAYLOAD_MIN	64
#define RTPM_SLOT_PAYLOAD_MAX	16384		/* jumbo frames fit */
#define RTPM_BATCH_MAX		256		/* slots per batched ioctl */
#define RTPM_CHANNELS_MAX	32

/* Default ceilings of the module parameters max_ring_kib and max_total_kib. */
#define RTPM_MAX_RING_KIB_DEFAULT	(64 * 1024)	/* per channel */
#define RTPM_MAX_TOTAL_KIB_DEFAULT	(256 * 1024)	/* all channels */

/* Byte alignment of each slot's payload (slot_stride is a multiple). */
#define RTPM_SLOT_ALIGN		64

/* Values of drop_policy: what a full ring does with a new packet. */
#define RTPM_DROP_REJECT_NEWEST	0	/* reserve fails, overruns++ */
#define RTPM_DROP_OLDEST	1	/* oldest READY slot freed, drops++ */

/* Values of state in struct rtpm_status and struct rtpm_info. */
#define RTPM_STATE_STOPPED	0
#define RTPM_STATE_RUNNING	1

/*
 * Header page, mapped read-only at offset 0. Fields up to prod_off never
 * change while the ring is mapped (CONFIGURE needs an unmapped channel). The
 * index words are written by the kernel only, with release semantics: read
 * them with acquire loads. They are hints for user space (fill level without
 * a syscall); ownership is decided by the ioctls.
 */
struct rtpm_ring_header {
	__u32 magic;		/* RTPM_MAGIC */
	__u16 abi_major;	/* RTPM_ABI_MAJOR */
	__u16 abi_minor;	/* RTPM_ABI_MINOR */
	__u32 header_size;	/* sizeof(struct rtpm_ring_header) */
	__u32 channel;		/* N of /dev/rtp_mgrN */
	__u32 slot_count;	/* 2^ring_order */
	__u32 ring_order;
	__u32 slot_payload;	/* usable payload bytes per slot */
	__u32 slot_stride;	/* bytes between payloads, RTPM_SLOT_ALIGN multiple */
	__u32 desc_size;	/* sizeof(struct rtpm_slot_desc) */
	__u32 drop_policy;	/* RTPM_DROP_* */
	__u64 desc_offset;	/* descriptor table, offset in the meta region */
	__u64 meta_size;	/* bytes of the meta region at mmap offset 0 */
	__u64 payload_offset;	/* mmap offset of the payload region */
	__u64 payload_size;	/* bytes of the payload region */
	/* Offsets of the index words below, from the start of this page. */
	__u32 prod_off;		/* -> producer index */
	__u32 cons_off;		/* -> consumer index */
	__u32 reserve_off;	/* -> reserve index */
	__u32 release_off;	/* -> release index */
	__u8  reserved0[40];	/* zero; the index words start at byte 128 */

	/*
	 * Free-running u32 indices; slot = index & (slot_count - 1). The
	 * producer-side pair and the consumer-side pair each sit on their own
	 * 64-byte cache line (bytes 128 and 192 of the page-aligned header).
	 */
	__u32 reserve;		/* next slot to reserve */
	__u32 producer;		/* slots before it are READY or done */
	__u8  reserved1[56];
	__u32 consumer;		/* next slot to pop */
	__u32 release;		/* slots before it are FREE again */
	__u8  reserved2[56];
};				/* 256 bytes */

/* Bits of rtpm_slot_desc.flags, set by the kernel on push. */
#define RTPM_SLOT_F_RTP		(1U << 0)	/* valid RTP v2 header parsed */
#define RTPM_SLOT_F_MALFORMED	(1U << 1)	/* not RTP v2: carried, counted */
#define RTPM_SLOT_F_MARKER	(1U << 2)	/* RTP marker bit */
#define RTPM_SLOT_F_ALL		(RTPM_SLOT_F_RTP | RTPM_SLOT_F_MALFORMED | \
				 RTPM_SLOT_F_MARKER)

/*
 * Slot descriptor, kernel-owned (read-only mapping). Filled on push: len and
 * arrival_ns from the push request, the RTP fields parsed from the payload.
 */
struct rtpm_slot_desc {
	__u32 len;		/* payload bytes */
	__u32 flags;		/* RTPM_SLOT_F_* */
	__u64 arrival_ns;	/* CLOCK_MONOTONIC ns */
	__u32 rtp_timestamp;
	__u32 ssrc;
	__u16 rtp_seq;
	__u8  payload_type;
	__u8  pad0;
	__u32 pad1;
};

/*
 * One slot in a push, pop, reserve, cancel or release request.
 * - PUSH: in index, len (1..slot_payload), arrival_ns (0: kernel stamps it).
 * - POP: out index, len, arrival_ns, flags (the descriptor's RTPM_SLOT_F_*).
 * - RESERVE: out index (len = slot_payload).
 * - CANCEL, RELEASE: in index; len and arrival_ns ignored, flags may hold
 *   the RTPM_SLOT_F_* bits POP filled in, so that popped entries can be
 *   handed back as they are.
 * pad must be zero, flags zero for PUSH and within RTPM_SLOT_F_ALL for
 * RELEASE and CANCEL (-EINVAL otherwise).
 */
struct rtpm_slot_ref {
	__u32 index;		/* slot number, 0 .. slot_count - 1 */
	__u32 len;
	__u64 arrival_ns;
	__u32 flags;		/* PUSH: zero; POP: out, RTPM_SLOT_F_* */
	__u32 pad;		/* zero */
};

/*
 * A batched request: up to RTPM_BATCH_MAX entries at user address slots.
 * count is in/out: entries offered (PUSH, RELEASE) or wanted (RESERVE, POP)
 * on input, entries done on output. Entries are processed in order and the
 * call stops at the first one that fails: like sendmmsg(), the call succeeds
 * if at least one entry was done, and fails with that entry's errno if the
 * very first one fails. A blocking file waits for at least one entry of
 * RESERVE or POP; an O_NONBLOCK file gets -EAGAIN instead. count is written
 * back whenever entries were looked at (0 if the first one failed); a call
 * refused before that (flags, E2BIG, a bad pointer, a missing right) or
 * interrupted by a signal leaves it as it was, so a restarted call asks for
 * as much again.
 */
struct rtpm_batch {
	__u64 slots;		/* user pointer to struct rtpm_slot_ref[count] */
	__u32 count;
	__u32 flags;		/* must be zero */
};

/*
 * CONFIGURE: only while the channel is stopped and unmapped (-EBUSY). The
 * ring (meta and payload regions) must fit the module's max_ring_kib (-E2BIG)
 * and, added to all rings that exist, max_total_kib (-ENOSPC): the old ring
 * of the channel counts too, because both exist until the new one is in
 * place.
 */
struct rtpm_config {
	__u32 ring_order;	/* RTPM_RING_ORDER_MIN .. _MAX */
	__u32 slot_payload;	/* RTPM_SLOT_PAYLOAD_MIN .. _MAX */
	__u32 drop_policy;	/* RTPM_DROP_* */
	__u32 flags;		/* must be zero */
	__u32 reserved[4];	/* must be zero; later 2.x versions use them */
};

/* Bits of struct rtpm_claim.roles, rtpm_info.file_roles, rtpm_status.claimed */
#define RTPM_ROLE_PRODUCER	(1U << 0)
#define RTPM_ROLE_CONSUMER	(1U << 1)
#define RTPM_ROLES_ALL		(RTPM_ROLE_PRODUCER | RTPM_ROLE_CONSUMER)

/*
 * CLAIM: this file's roles become exactly @roles (0 gives them up). -EBUSY
 * if another file holds one of them; nothing changes then.
 */
struct rtpm_claim {
	__u32 roles;		/* RTPM_ROLE_* */
	__u32 flags;		/* must be zero */
};

/*
 * RECLAIM (CAP_NET_ADMIN): return to FREE every slot that another open file
 * has held (PRODUCING or CONSUMING) for at least min_held_ns, e.g. one of a
 * live but hung process. Counted in "evicted" and logged. The holder's later
 * PUSH, CANCEL or RELEASE of such a slot fails with -EBADSLT or -EPERM. With
 * RTPM_RECLAIM_ROLES the roles other files hold are taken away too (a process
 * that claimed a role it should not have).
 */
struct rtpm_reclaim {
	__u64 min_held_ns;	/* in: 0 takes every slot other files hold */
	__u32 flags;		/* in: RTPM_RECLAIM_* */
	__u32 reclaimed;	/* out: slots returned to FREE */
};

/* Flags of struct rtpm_reclaim. */
#define RTPM_RECLAIM_ROLES	(1U << 0)	/* also revoke other files' roles */

/* GET_INFO: the ABI version and the channel's layout and configuration. */
struct rtpm_info {
	__u16 abi_major;
	__u16 abi_minor;
	__u32 channel;
	__u32 channels;		/* channels the module created */
	__u32 state;		/* RTPM_STATE_* */
	struct rtpm_config config;
	__u32 slot_count;
	__u32 slot_stride;
	__u32 desc_size;
	__u32 header_size;
	__u64 meta_size;
	__u64 payload_offset;
	__u64 payload_size;
	__u64 max_ring_bytes;	/* the module's per-channel ceiling */
	__u32 file_roles;	/* RTPM_ROLE_* this file holds */
	__u32 file_caps;	/* RTPM_FILE_* of this file */
	__u32 reserved[8];	/* zero; later 2.x versions use them */
};

/* Bits of rtpm_info.file_caps: what this open file may do. */
#define RTPM_FILE_WRITE		(1U << 0)	/* opened for writing */
#define RTPM_FILE_ADMIN		(1U << 1)	/* writer whose opener had CAP_NET_ADMIN */

/*
 * GET_STATS: per-channel counters since load or RESET. Conservation:
 * pushed_packets == popped_packets + drops + ready (struct rtpm_status).
 */
struct rtpm_stats {
	__u64 pushed_packets;	/* slots pushed READY */
	__u64 pushed_bytes;
	__u64 popped_packets;	/* slots handed to a consumer */
	__u64 popped_bytes;
	__u64 released;		/* slots released FREE by their consumer */
	__u64 drops;		/* READY slots dropped by RTPM_DROP_OLDEST */
	__u64 overruns;		/* reserve refused: ring full */
	__u64 underruns;	/* pop found nothing READY */
	__u64 rtp_lost;		/* RTP sequence gaps (packets never seen) */
	__u64 rtp_reordered;	/* RTP packets that arrived late */
	__u64 rtp_duplicates;	/* RTP sequence numbers seen twice */
	__u64 malformed;	/* pushed payloads that are not RTP v2 */
	__u64 reclaimed;	/* owned slots freed because their file closed */
	__u64 illegal_ops;	/* rejected slot operations */
	__u64 cancelled;	/* PRODUCING slots returned FREE by CANCEL */
	__u64 denied;		/* operations refused for role or privilege */
	__u64 evicted;		/* slots taken back from a holder by RECLAIM */
	/* 2.1: the attached sockets and wake-up coalescing. */
	__u64 rx_oversize;	/* datagrams above slot_payload, dropped */
	__u64 rx_discarded;	/* datagrams that came while stopped, dropped */
	__u64 wakeups;		/* consumer wake-ups (READY slots handed on) */
	__u64 tx_sent;		/* slots the kernel sent through its socket */
	__u64 tx_errors;	/* slots the socket refused, released unsent */
	__u64 reserved[2];	/* zero; later 2.x versions use them */
};

/* GET_STATUS: the channel's state right now. */
struct rtpm_status {
	__u32 state;		/* RTPM_STATE_* */
	__u32 openers;		/* open files on the channel */
	__u32 mappings;		/* live mmaps */
	__u32 free;		/* slots FREE */
	__u32 producing;	/* slots reserved by producers */
	__u32 ready;		/* slots READY */
	__u32 consuming;	/* slots popped, not yet released */
	__u32 claimed;		/* RTPM_ROLE_* held by some file */
	__u32 reserve;		/* the ring's indices */
	__u32 producer;
	__u32 consumer;
	__u32 release;
	__u32 attached;		/* 2.1: RTPM_ATTACHED_* */
	__u32 reserved[3];	/* zero */
};

/* Bits of rtpm_status.attached: which directions have a socket. */
#define RTPM_ATTACHED_RX	(1U << 0)
#define RTPM_ATTACHED_TX	(1U << 1)

/*
 * Values of direction in struct rtpm_attach and struct rtpm_detach; 0 is
 * invalid, so that a zeroed request attaches nothing by accident.
 */
#define RTPM_DIR_RX		1	/* socket -> ring: the kernel produces */
#define RTPM_DIR_TX		2	/* ring -> socket: the kernel consumes */

/* Largest TX token bucket, packets. */
#define RTPM_TX_BURST_MAX	1024

/*
 * ATTACH (2.1): hand a UDP socket (AF_INET or AF_INET6, SOCK_DGRAM) that user
 * space created, bound, joined to its groups and tuned, to the channel.
 *
 * RX: every datagram the socket receives is copied once, in softirq context,
 * into the slot at the reserve index, stamped (arrival_ns), RTP-parsed and
 * made READY exactly as PUSH does; it never reaches the socket's receive
 * queue. A full ring applies the drop policy (overruns or drops), a datagram
 * above slot_payload is dropped (rx_oversize), one arriving while the channel
 * is stopped is dropped (rx_discarded): nothing queues. The attaching file
 * becomes the producer-role holder. The channel holds a reference to the
 * socket, not to its file: closing the last descriptor of the socket detaches
 * it, like DETACH.
 *
 * TX: the kernel sends every READY slot through the socket, which must be
 * connected (connect(2) names the destination, unicast or multicast), in
 * order, and releases the slot: tx_sent, or tx_errors if the socket refused
 * it (no route, too big). A full send buffer is waited out (retried after
 * 1 ms), not dropped. tx_rate_pps (1 .. 10^9) paces the sends to that rate
 * with a token bucket of tx_burst packets (1 .. RTPM_TX_BURST_MAX, 0: 1);
 * without a rate tx_burst must be 0. The attaching file becomes the
 * consumer-role holder. The channel holds a
 * reference to the socket's file (it sends through it): closing your
 * descriptor does not detach.
 *
 * Both end with DETACH, with the last close of the file that attached, and
 * (RX) with the socket's close. STOP keeps them (RX discards while stopped;
 * TX drains what is READY); RESET keeps them. CONFIGURE is refused (-EBUSY)
 * while a socket is attached, and so is a CLAIM that would give up the role
 * an attachment holds; RECLAIM never takes that role away. The caller
 * needs a writer, the role of its direction free or its own (-EPERM,
 * counted in denied), a UDP socket
 * (-ENOTSOCK, -EPROTONOSUPPORT), for TX a connected one (-ENOTCONN), one
 * socket per direction (-EBUSY), and an RX socket not already used by
 * another in-kernel receiver (-EBUSY).
 */
struct rtpm_attach {
	__s32 fd;		/* the socket */
	__u32 direction;	/* RTPM_DIR_* */
	__u32 flags;		/* must be zero */
	__u32 tx_rate_pps;	/* TX: packets per second, 0 = unpaced */
	__u32 tx_burst;		/* TX: bucket depth in packets, 0 = 1 */
	__u32 reserved[3];	/* must be zero */
};

/* DETACH (2.1): -ENOENT if no socket is attached in @direction. */
struct rtpm_detach {
	__u32 direction;	/* RTPM_DIR_* */
	__u32 flags;		/* must be zero */
	__u32 reserved[2];	/* must be zero */
};

/*
 * SET_WAKEUP / GET_WAKEUP (2.1): when a consumer blocked in POP or poll() is
 * woken. It is woken once @slots slots became READY since its last wake-up,
 * or once the oldest of them has waited @usecs microseconds (an hrtimer), or
 * when the ring is full or the channel stops; poll() reports POLLIN only
 * then, a non-blocking POP takes whatever is READY. slots 1, usecs 0 (the
 * default at load, module parameters wake_slots and wake_usecs) wakes on
 * every PUSH, as 2.0 did. slots > 1 needs usecs > 0, or a slow stream would
 * never wake its consumer (-EINVAL). A kernel TX attachment is woken by the
 * same rule. Set by an administrator or a role holder of the channel.
 */
struct rtpm_wakeup {
	__u32 slots;		/* 1 .. RTPM_WAKE_SLOTS_MAX */
	__u32 usecs;		/* 0 .. RTPM_WAKE_USECS_MAX */
	__u32 flags;		/* must be zero */
	__u32 reserved;		/* must be zero */
};

#define RTPM_WAKE_SLOTS_MAX	(1U << RTPM_RING_ORDER_MAX)
#define RTPM_WAKE_USECS_MAX	1000000		/* 1 s */

/*
 * SET_CLOCK_RATE (2.1): the RTP clock rate of the channel's stream (90000
 * for video, 48000 or 8000 for audio), needed for the interarrival jitter.
 * 0 (the default) turns the jitter off. An administrator or a role holder.
 */
struct rtpm_clock_rate {
	__u32 hz;		/* 0 or 1 .. RTPM_CLOCK_RATE_MAX */
	__u32 flags;		/* must be zero */
};

#define RTPM_CLOCK_RATE_MAX	10000000

/*
 * GET_QUALITY (2.1): the numbers an RTCP receiver report (RFC 3550 6.4.1)
 * carries for the stream the channel tracks, computed in the kernel as RFC
 * 3550 appendix A.1, A.3 and A.8 do, from every packet pushed or received
 * (arrival_ns, RTP sequence number and timestamp). They start over with a
 * new SSRC (ssrc_changes counts that) or a sequence jump the tracker cannot
 * explain (a sender restart), and with RESET.
 */
struct rtpm_quality {
	__u32 ssrc;		/* the stream tracked now; 0 before the first */
	__u32 clock_rate;	/* SET_CLOCK_RATE, Hz; 0: no jitter */
	__u64 received;		/* packets of this stream, duplicates too (A.3) */
	__u64 expected;		/* extended highest seq - base seq + 1 (A.3) */
	__s64 lost;		/* cumulative: expected - received (A.3) */
	__u32 ext_max_seq;	/* extended highest sequence number (A.1) */
	__u32 base_seq;		/* first sequence number of this stream */
	__u32 jitter;		/* interarrival jitter, timestamp units (A.8) */
	__u32 jitter_us;	/* the same in microseconds; 0 without clock rate */
	__u32 ssrc_changes;	/* new SSRCs after the first */
	__u32 max_loss_burst;	/* longest run of missing sequence numbers */
	__u64 reserved[5];	/* zero; later 2.x versions use them */
};

/*
 * Events (2.1): a generic netlink family RTPM_GENL_NAME with the multicast
 * group RTPM_GENL_MCGRP_EVENTS. Every message is RTPM_GENL_CMD_EVENT with the
 * attributes below; a listener resolves the family and group ids through
 * the generic netlink controller (CTRL_CMD_GETFAMILY), joins the group and
 * reads. Events of the data path (overruns, loss, stuck holders) are
 * rate-limited per channel and carry the count since the last one of their
 * kind, so a listener sees how much happened, not every packet.
 */
#define RTPM_GENL_NAME		"rtp_mgr"
#define RTPM_GENL_VERSION	1
#define RTPM_GENL_MCGRP_EVENTS	"events"

enum rtpm_genl_cmd {
	RTPM_GENL_CMD_UNSPEC,
	RTPM_GENL_CMD_EVENT,
};

enum rtpm_genl_attr {
	RTPM_GENL_A_UNSPEC,
	RTPM_GENL_A_CHANNEL,	/* u32: N of /dev/rtp_mgrN */
	RTPM_GENL_A_EVENT,	/* u32: RTPM_EVENT_* */
	RTPM_GENL_A_COUNT,	/* u64: slots, packets or 1, per event */
	RTPM_GENL_A_PID,	/* u32: the process that caused it (0: kernel) */
	RTPM_GENL_A_TIME_NS,	/* u64: CLOCK_MONOTONIC ns */
	RTPM_GENL_A_PAD,	/* alignment of the u64 attributes */
	__RTPM_GENL_A_MAX,
};

#define RTPM_GENL_A_MAX		(__RTPM_GENL_A_MAX - 1)

/* Values of RTPM_GENL_A_EVENT. */
enum rtpm_event {
	RTPM_EVENT_START = 1,	/* count 1 */
	RTPM_EVENT_STOP,
	RTPM_EVENT_RESET,
	RTPM_EVENT_CONFIGURE,
	RTPM_EVENT_ATTACH_RX,
	RTPM_EVENT_ATTACH_TX,
	RTPM_EVENT_DETACH_RX,
	RTPM_EVENT_DETACH_TX,
	RTPM_EVENT_OVERRUN,	/* count: packets refused or dropped, full ring */
	RTPM_EVENT_LOSS,	/* count: RTP packets lost (sequence gaps) */
	RTPM_EVENT_RECLAIM,	/* count: slots taken back from a closed file */
	RTPM_EVENT_EVICT,	/* count: slots taken back by RECLAIM */
	RTPM_EVENT_STUCK,	/* count: slots held longer than stuck_ms; pid: holder */
};

/* At most one event of a data-path kind per channel per this many ms. */
#define RTPM_EVENT_INTERVAL_MS	100

/*
 * CAPTURE (2.2): observe a channel without taking part in it. The ioctl
 * returns a new file descriptor (O_RDONLY | O_CLOEXEC, plus O_NONBLOCK with
 * RTPM_CAPTURE_F_NONBLOCK) that receives a copy of every packet that becomes
 * READY on the channel from then on, pushed by a producer or received from
 * an attached socket, in the order they become READY (PUSH order, which is
 * ring order unless a producer pushes its reservations out of order). The
 * consumer's slots, counters and wake-ups are untouched; the copy is made
 * under the channel lock, so only a captured channel pays for it. A writer
 * may capture (-EBADF for a read-only file: a capture pins memory and the
 * channel's one capture); one capture per channel at a time, -EBUSY
 * otherwise. It ends when its file is closed; it outlives the channel file
 * it was made from. The queue length and snaplen used (the defaults
 * resolved) are written back to the request before the descriptor exists.
 *
 * read() returns whole records, as many as fit: struct rtpm_capture_record,
 * then caplen bytes of the packet, then zero padding to the next multiple of
 * 8. A buffer too small for the next record gets -EINVAL (a record is at
 * most sizeof(struct rtpm_capture_record) + snaplen, rounded up to 8); a
 * fault gets -EFAULT and leaves the record queued. read() blocks until a
 * record is queued (-EAGAIN with O_NONBLOCK); poll() reports POLLIN when one
 * is. Nothing is queued without bound: when queue_len records wait, new
 * packets are not copied, and the next record says how many were missed.
 * Later versions add record fields only for a request flag that asks.
 */
/*
 * queue_len: records held for the reader, 0 for the default; snaplen: bytes
 * kept of each packet, 0 for the ring's slot_payload. Both are written back
 * with the values used.
 */
struct rtpm_capture {
	__u32 queue_len;	/* in/out: records held for the reader */
	__u32 snaplen;		/* in/out: bytes kept of each packet */
	__u32 flags;		/* RTPM_CAPTURE_F_* */
	__u32 reserved[5];	/* zero */
};

#define RTPM_CAPTURE_F_NONBLOCK	(1u << 0)	/* the new file is O_NONBLOCK */
#define RTPM_CAPTURE_F_ALL	RTPM_CAPTURE_F_NONBLOCK

#define RTPM_CAPTURE_QUEUE_DEFAULT	1024
#define RTPM_CAPTURE_QUEUE_MAX		65536
#define RTPM_CAPTURE_BYTES_MAX		(32u << 20)	/* queue_len x record */

struct rtpm_capture_record {
	__u64 arrival_ns;	/* the slot's arrival_ns, CLOCK_MONOTONIC */
	__u32 len;		/* bytes of the packet */
	__u32 caplen;		/* bytes that follow: min(len, snaplen) */
	__u32 missed;		/* not copied (full queue) just before; saturates */
	__u32 flags;		/* the slot descriptor's RTPM_SLOT_F_* */
};

/*
 * 0xE7: free in Documentation/userspace-api/ioctl/ioctl-number.rst (nothing
 * between 0xE5, fuse, and 0xEC). ABI 1.x used 0xB5, which is rpmsg's.
 */
#define RTPM_IOC_MAGIC		0xe7
#define RTPM_IOC_MAGIC_V1	0xb5

#define RTPM_IOC_GET_INFO	_IOR(RTPM_IOC_MAGIC, 0x00, struct rtpm_info)
#define RTPM_IOC_CONFIGURE	_IOW(RTPM_IOC_MAGIC, 0x01, struct rtpm_config)
#define RTPM_IOC_START		_IO(RTPM_IOC_MAGIC, 0x02)
#define RTPM_IOC_STOP		_IO(RTPM_IOC_MAGIC, 0x03)
#define RTPM_IOC_RESET		_IO(RTPM_IOC_MAGIC, 0x04)
#define RTPM_IOC_GET_STATS	_IOR(RTPM_IOC_MAGIC, 0x05, struct rtpm_stats)
#define RTPM_IOC_GET_STATUS	_IOR(RTPM_IOC_MAGIC, 0x06, struct rtpm_status)
#define RTPM_IOC_CLAIM		_IOW(RTPM_IOC_MAGIC, 0x07, struct rtpm_claim)
#define RTPM_IOC_RECLAIM	_IOWR(RTPM_IOC_MAGIC, 0x08, struct rtpm_reclaim)
#define RTPM_IOC_ATTACH		_IOW(RTPM_IOC_MAGIC, 0x09, struct rtpm_attach)
#define RTPM_IOC_DETACH		_IOW(RTPM_IOC_MAGIC, 0x0a, struct rtpm_detach)
#define RTPM_IOC_SET_WAKEUP	_IOW(RTPM_IOC_MAGIC, 0x0b, struct rtpm_wakeup)
#define RTPM_IOC_GET_WAKEUP	_IOR(RTPM_IOC_MAGIC, 0x0c, struct rtpm_wakeup)
#define RTPM_IOC_SET_CLOCK_RATE	_IOW(RTPM_IOC_MAGIC, 0x0d, struct rtpm_clock_rate)
#define RTPM_IOC_GET_QUALITY	_IOR(RTPM_IOC_MAGIC, 0x0e, struct rtpm_quality)
#define RTPM_IOC_CAPTURE	_IOWR(RTPM_IOC_MAGIC, 0x0f, struct rtpm_capture)

/* Per-slot operations: the seed's ABI, one syscall per slot. */
#define RTPM_IOC_PUSH_SLOT	_IOW(RTPM_IOC_MAGIC, 0x10, struct rtpm_slot_ref)
#define RTPM_IOC_POP_SLOT	_IOR(RTPM_IOC_MAGIC, 0x11, struct rtpm_slot_ref)
#define RTPM_IOC_RELEASE_SLOT	_IOW(RTPM_IOC_MAGIC, 0x12, struct rtpm_slot_ref)
#define RTPM_IOC_RESERVE_SLOT	_IOR(RTPM_IOC_MAGIC, 0x13, struct rtpm_slot_ref)
#define RTPM_IOC_CANCEL_SLOT	_IOW(RTPM_IOC_MAGIC, 0x14, struct rtpm_slot_ref)

/* Batched operations: up to RTPM_BATCH_MAX slots per syscall. */
#define RTPM_IOC_RESERVE_BATCH	_IOWR(RTPM_IOC_MAGIC, 0x20, struct rtpm_batch)
#define RTPM_IOC_PUSH_BATCH	_IOWR(RTPM_IOC_MAGIC, 0x21, struct rtpm_batch)
#define RTPM_IOC_POP_BATCH	_IOWR(RTPM_IOC_MAGIC, 0x22, struct rtpm_batch)
#define RTPM_IOC_RELEASE_BATCH	_IOWR(RTPM_IOC_MAGIC, 0x23, struct rtpm_batch)
#define RTPM_IOC_CANCEL_BATCH	_IOWR(RTPM_IOC_MAGIC, 0x24, struct rtpm_batch)

/*
 * The only ABI 1.x ioctl still answered: GET_INFO with the 1.0 layout of
 * struct rtpm_info (its first 72 bytes), reporting abi_major 2, so that an
 * old program fails with a clear version error.
 */
#define RTPM_IOC_GET_INFO_V1	_IOC(_IOC_READ, RTPM_IOC_MAGIC_V1, 0x00, 72)

/*
 * Error numbers of the slot operations (each failure is counted in
 * illegal_ops, or in denied for -EBADF and a role's -EPERM, except -EAGAIN,
 * -EINTR and -EPIPE):
 *   -EINVAL   index out of range, len 0 or above slot_payload, non-zero
 *             flags or padding
 *   -EBADSLT  slot in the wrong state for the operation
 *   -EPERM    slot owned by another open file, or another file holds the
 *             role the operation needs, or a PUSH with implicit reserve
 *             from a file that does not hold the producer role
 *   -EBADF    the file was not opened for writing
 *   -E2BIG    batch count above RTPM_BATCH_MAX
 *   -EFAULT   bad user pointer
 *   -EPIPE    RESERVE, or PUSH without a reservation, on a stopped channel
 *             (a slot reserved before STOP may still be pushed or cancelled);
 *             POP on a stopped, empty channel that was stopped after this
 *             file was opened (like read() of a pipe without writers)
 *   -EAGAIN   O_NONBLOCK and nothing to reserve or pop; a PUSH with
 *             implicit reserve on a full ring (PUSH never blocks, and never
 *             drops: the slot at the reserve index is then still in use)
 * A blocking wait interrupted by a signal is restarted, or returns -EINTR to
 * a handler installed without SA_RESTART.
 * CONFIGURE and RESET return -EBUSY while running, mapped (CONFIGURE) or
 * while slots are owned; control ioctls without the privilege -EPERM.
 */

#endif /* _UAPI_RTP_MGR_IOCTL_H */

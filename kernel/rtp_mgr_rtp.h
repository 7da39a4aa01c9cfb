/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * rtp_mgr_rtp.h - RTP v2 header parsing and per-channel sequence tracking.
 */
#ifndef _RTP_MGR_RTP_H
#define _RTP_MGR_RTP_H

#include <linux/types.h>

#include "rtp_mgr_ioctl.h"

/* Sequence numbers remembered behind the highest one seen. */
#define RTPM_SEQ_WINDOW		512

/*
 * Tracks one RTP stream (one SSRC) per channel. Bit i of seen is set when
 * sequence number (max_seq - i) has been pushed.
 */
struct rtpm_seq_tracker {
	bool valid;
	u32 ssrc;
	u16 max_seq;
	unsigned long seen[BITS_TO_LONGS(RTPM_SEQ_WINDOW)];

	/* RFC 3550 A.1, A.3 and A.8 for the current SSRC (GET_QUALITY). */
	u32 cycles;		/* sequence number wraps << 16 */
	u32 base_seq;
	u64 received;
	u32 jitter_q4;		/* jitter * 16, timestamp units (A.8) */
	s32 last_transit;
	bool have_transit;
	u32 ssrc_changes;	/* survive a stream restart, not RESET */
	u32 max_loss_burst;
	u32 clock_rate;		/* SET_CLOCK_RATE; survives RESET too */
};

/* The fields of a fixed RTP header that a slot descriptor carries. */
struct rtpm_rtp_hdr {
	u32 timestamp;
	u32 ssrc;
	u16 seq;
	u8 payload_type;
	bool marker;
};

bool rtpm_rtp_parse(const void *data, u32 len, struct rtpm_rtp_hdr *out);
void rtpm_seq_track(struct rtpm_seq_tracker *t, const struct rtpm_rtp_hdr *h,
		    u64 arrival_ns, struct rtpm_stats *stats);
void rtpm_seq_reset(struct rtpm_seq_tracker *t);
void rtpm_seq_quality(const struct rtpm_seq_tracker *t,
		      struct rtpm_quality *q);

#endif /* _RTP_MGR_RTP_H */

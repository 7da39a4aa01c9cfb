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
		    struct rtpm_stats *stats);
void rtpm_seq_reset(struct rtpm_seq_tracker *t);

#endif /* _RTP_MGR_RTP_H */

// SPDX-License-Identifier: GPL-2.0-only
/*
 * rtp_mgr_rtp.c - RTP v2 header parsing (RFC 3550 section 5.1) and
 * sequence tracking: lost, reordered and duplicate packets per channel.
 */
#include <linux/bitmap.h>
#include <linux/kernel.h>
#include <linux/math64.h>
#include <linux/string.h>
#include <linux/time64.h>

#include "rtp_mgr_rtp.h"

#define RTP_FIXED_HDR_LEN	12
#define RTP_VERSION		2

/*
 * Byte-wise big-endian loads from a private copy: no alignment needed, and
 * no dependency on the header that moved to <linux/unaligned.h> in 6.12.
 */
static inline u16 rtpm_be16(const u8 *p)
{
	return (u16)p[0] << 8 | p[1];
}

static inline u32 rtpm_be32(const u8 *p)
{
	return (u32)p[0] << 24 | (u32)p[1] << 16 | (u32)p[2] << 8 | p[3];
}

/**
 * rtpm_rtp_parse - parse the fixed RTP header at the start of a payload
 * @data: payload bytes (in the shared mapping: read each byte only once)
 * @len: payload length
 * @out: parsed fields
 *
 * Return: true if the payload starts with a plausible RTP v2 header: the
 * version is 2 and the CSRC list, the extension header and the padding
 * announced by the header all fit in @len.
 */
bool rtpm_rtp_parse(const void *data, u32 len, struct rtpm_rtp_hdr *out)
{
	u8 hdr[RTP_FIXED_HDR_LEN];
	u32 need;

	if (len < RTP_FIXED_HDR_LEN)
		return false;
	/*
	 * User space may rewrite the payload while we look at it: work on a
	 * private copy so every check sees the same bytes.
	 */
	memcpy(hdr, data, sizeof(hdr));
	if ((hdr[0] >> 6) != RTP_VERSION)
		return false;

	/* The CSRC list must fit in the payload. */
	need = RTP_FIXED_HDR_LEN + 4 * (hdr[0] & 0x0f);
	if (need > len)
		return false;

	/* So must the extension header and its body, if announced. */
	if (hdr[0] & 0x10) {
		u8 ext[4];

		if (need + 4 > len)
			return false;
		memcpy(ext, (const u8 *)data + need, sizeof(ext));
		need += 4 + 4 * rtpm_be16(ext + 2);
		if (need > len)
			return false;
	}

	/* Padding: the last byte counts itself and must not eat the header. */
	if (hdr[0] & 0x20) {
		u8 pad = ((const u8 *)data)[len - 1];

		if (pad == 0 || need + pad > len)
			return false;
	}

	out->marker = hdr[1] & 0x80;
	out->payload_type = hdr[1] & 0x7f;
	out->seq = rtpm_be16(hdr + 2);
	out->timestamp = rtpm_be32(hdr + 4);
	out->ssrc = rtpm_be32(hdr + 8);
	return true;
}

/* RESET: everything but the configured clock rate. */
void rtpm_seq_reset(struct rtpm_seq_tracker *t)
{
	u32 clock_rate = t->clock_rate;

	memset(t, 0, sizeof(*t));
	t->clock_rate = clock_rate;
}

/* A new stream starts at @h (A.1 init_seq). */
static void rtpm_seq_restart(struct rtpm_seq_tracker *t,
			     const struct rtpm_rtp_hdr *h)
{
	if (t->valid && t->ssrc != h->ssrc)
		t->ssrc_changes++;
	t->valid = true;
	t->ssrc = h->ssrc;
	t->max_seq = h->seq;
	bitmap_zero(t->seen, RTPM_SEQ_WINDOW);
	__set_bit(0, t->seen);
	t->cycles = 0;
	t->base_seq = h->seq;
	t->received = 0;
	t->jitter_q4 = 0;
	t->have_transit = false;
	t->max_loss_burst = 0;
}

/*
 * RFC 3550 A.8: J += (|D(i-1, i)| - J) / 16, with D the difference of the
 * transit times (arrival in timestamp units minus the RTP timestamp) of two
 * consecutive arrivals. Kept scaled by 16 as the RFC's integer code does.
 */
static void rtpm_seq_jitter(struct rtpm_seq_tracker *t,
			    const struct rtpm_rtp_hdr *h, u64 arrival_ns)
{
	u32 arrival;
	s32 transit, d;

	if (!t->clock_rate)
		return;
	/* Wraps like an RTP timestamp; only differences matter. */
	arrival = (u32)mul_u64_u32_div(arrival_ns, t->clock_rate,
				       NSEC_PER_SEC);
	transit = (s32)(arrival - h->timestamp);
	if (t->have_transit) {
		d = transit - t->last_transit;
		if (d < 0)
			d = -d;
		t->jitter_q4 += d - ((t->jitter_q4 + 8) >> 4);
	}
	t->last_transit = transit;
	t->have_transit = true;
}

/**
 * rtpm_seq_quality - the GET_QUALITY numbers of the tracked stream
 * @t: the channel's tracker (under the channel lock)
 * @q: filled in; its reserved fields are zeroed
 */
void rtpm_seq_quality(const struct rtpm_seq_tracker *t,
		      struct rtpm_quality *q)
{
	u32 ext_max = t->cycles + t->max_seq;

	memset(q, 0, sizeof(*q));
	q->clock_rate = t->clock_rate;
	q->ssrc_changes = t->ssrc_changes;
	if (!t->valid)
		return;
	q->ssrc = t->ssrc;
	q->received = t->received;
	q->ext_max_seq = ext_max;
	q->base_seq = t->base_seq;
	q->expected = (u64)ext_max - t->base_seq + 1;
	q->lost = (s64)q->expected - (s64)q->received;
	q->jitter = t->jitter_q4 >> 4;
	if (t->clock_rate)
		q->jitter_us = (u32)div_u64((u64)q->jitter * USEC_PER_SEC,
					    t->clock_rate);
	q->max_loss_burst = t->max_loss_burst;
}

/**
 * rtpm_seq_track - account one pushed RTP packet
 * @t: the channel's tracker
 * @h: the parsed header
 * @arrival_ns: when it arrived (CLOCK_MONOTONIC), for the jitter
 * @stats: counters to update
 *
 * A forward jump of d counts d - 1 packets as lost. A packet that arrives
 * behind the highest sequence number inside the window is either a
 * duplicate (seen before) or reordered (seen now for the first time: it was
 * counted as lost when the gap opened, so lost goes down again). A new SSRC,
 * or a packet further back than the window, restarts tracking: that is a
 * new stream (or a sender restart), not loss.
 */
void rtpm_seq_track(struct rtpm_seq_tracker *t, const struct rtpm_rtp_hdr *h,
		    u64 arrival_ns, struct rtpm_stats *stats)
{
	s16 delta;

	if (!t->valid || t->ssrc != h->ssrc) {
		rtpm_seq_restart(t, h);
		t->received = 1;
		rtpm_seq_jitter(t, h, arrival_ns);
		return;
	}

	/* Serial number arithmetic: the u16 difference as a signed value. */
	delta = (s16)(u16)(h->seq - t->max_seq);
	if (delta > 0) {
		stats->rtp_lost += delta - 1;
		if (delta - 1 > t->max_loss_burst)
			t->max_loss_burst = delta - 1;
		/* A.1: the sequence number wrapped. */
		if (h->seq < t->max_seq)
			t->cycles += 1U << 16;
		if (delta >= RTPM_SEQ_WINDOW)
			bitmap_zero(t->seen, RTPM_SEQ_WINDOW);
		else
			bitmap_shift_left(t->seen, t->seen, delta,
					  RTPM_SEQ_WINDOW);
		__set_bit(0, t->seen);
		t->max_seq = h->seq;
	} else if (delta == 0) {
		stats->rtp_duplicates++;
	} else if (-delta < RTPM_SEQ_WINDOW) {
		if (__test_and_set_bit(-delta, t->seen)) {
			stats->rtp_duplicates++;
		} else {
			stats->rtp_reordered++;
			if (stats->rtp_lost)
				stats->rtp_lost--;
		}
	} else {
		/* A sender restart: a new stream, counted from here. */
		rtpm_seq_restart(t, h);
	}
	t->received++;
	rtpm_seq_jitter(t, h, arrival_ns);
}

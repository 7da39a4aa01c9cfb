//! RTP awareness of a ring: what PUSH records in a slot descriptor, and the per-channel sequence
//! tracking behind `rtp_lost`, `rtp_reordered` and `rtp_duplicates`.
//!
//! The shm backend uses this module as the kernel would; tools use [`parse`] to look at a payload
//! the same way the ring did. Header validation is the `rtp-types` crate's (RFC 3550 §5.1: version
//! 2, CSRC list, extension and padding must fit the packet), so "valid RTP" means one thing in
//! every tool of the product.

use rtpmgr_abi::{RTPM_SLOT_F_MALFORMED, RTPM_SLOT_F_MARKER, RTPM_SLOT_F_RTP};

/// The RTP fields a ring records for a pushed payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpInfo {
    /// Sequence number.
    pub seq: u16,
    /// RTP timestamp.
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
    /// Payload type (7 bits).
    pub payload_type: u8,
    /// Marker bit.
    pub marker: bool,
}

/// Parses an RTP v2 header; `None` when the payload is not valid RTP v2.
///
/// ```
/// let pkt = [0x80, 0xe0, 0x00, 0x07, 0, 0, 0, 9, 0xde, 0xad, 0xbe, 0xef];
/// let info = rtpmgr::rtp::parse(&pkt).unwrap();
/// assert_eq!((info.seq, info.timestamp, info.ssrc, info.payload_type, info.marker),
///            (7, 9, 0xdeadbeef, 96, true));
/// assert!(rtpmgr::rtp::parse(b"not rtp at all").is_none());
/// ```
pub fn parse(data: &[u8]) -> Option<RtpInfo> {
    let p = rtp_types::RtpPacket::parse(data).ok()?;
    Some(RtpInfo {
        seq: p.sequence_number(),
        timestamp: p.timestamp(),
        ssrc: p.ssrc(),
        payload_type: p.payload_type(),
        marker: p.marker_bit(),
    })
}

/// Descriptor flags for a parse result (`RTPM_SLOT_F_*`).
pub fn flags_of(info: Option<&RtpInfo>) -> u32 {
    match info {
        Some(i) if i.marker => RTPM_SLOT_F_RTP | RTPM_SLOT_F_MARKER,
        Some(_) => RTPM_SLOT_F_RTP,
        None => RTPM_SLOT_F_MALFORMED,
    }
}

/// What one packet did to the sequence statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeqDelta {
    /// Packets newly counted as lost (sequence numbers skipped).
    pub lost: u64,
    /// Packets that arrived after a newer one (also removed from `lost`, see [`SeqTracker`]).
    pub reordered: u64,
    /// Packets whose sequence number was already seen.
    pub duplicates: u64,
    /// A late packet filled a gap that had been counted lost: subtract one from `lost`.
    pub recovered: u64,
}

/// Per-channel RTP sequence tracking, plain data so that it can live in shared memory.
///
/// Rules (after RFC 3550 A.1, with a 64-packet history for duplicates):
/// - the first packet, and any packet of a new SSRC, (re)starts tracking and counts nothing;
/// - `delta = seq - highest` (16-bit wrapping); `1 ..= 3000`: in order, `delta - 1` lost;
/// - `0`, or a late packet already in the history: duplicate;
/// - `-1 ..= -63` and not seen: reordered; it was counted lost when skipped, so lost goes down;
/// - anything else (a jump): restart tracking at this packet, count nothing.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeqTracker {
    started: u32,
    ssrc: u32,
    highest: u16,
    _pad: u16,
    _pad2: u32,
    /// Bit i set: sequence number `highest - i` was seen.
    seen: u64,
}

const MAX_DROPOUT: i32 = 3000;

impl SeqTracker {
    /// Accounts one packet.
    pub fn update(&mut self, ssrc: u32, seq: u16) -> SeqDelta {
        let mut d = SeqDelta::default();
        if self.started == 0 || ssrc != self.ssrc {
            *self = SeqTracker { started: 1, ssrc, highest: seq, seen: 1, ..Default::default() };
            return d;
        }
        let delta = seq.wrapping_sub(self.highest) as i16 as i32;
        if delta == 0 {
            d.duplicates = 1;
        } else if (1..=MAX_DROPOUT).contains(&delta) {
            d.lost = (delta - 1) as u64;
            self.seen = if delta >= 64 { 0 } else { self.seen << delta };
            self.seen |= 1;
            self.highest = seq;
        } else if (-63..0).contains(&delta) {
            let bit = 1u64 << (-delta);
            if self.seen & bit != 0 {
                d.duplicates = 1;
            } else {
                self.seen |= bit;
                d.reordered = 1;
                d.recovered = 1;
            }
        } else {
            *self = SeqTracker { started: 1, ssrc, highest: seq, seen: 1, ..Default::default() };
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(seqs: &[u16]) -> (u64, u64, u64) {
        let mut t = SeqTracker::default();
        let (mut lost, mut re, mut dup) = (0u64, 0u64, 0u64);
        for &s in seqs {
            let d = t.update(1, s);
            lost = lost + d.lost - d.recovered.min(lost + d.lost);
            re += d.reordered;
            dup += d.duplicates;
        }
        (lost, re, dup)
    }

    #[test]
    fn in_order_counts_nothing() {
        assert_eq!(run(&[1, 2, 3, 4]), (0, 0, 0));
    }

    #[test]
    fn gap_reorder_duplicate() {
        assert_eq!(run(&[0, 1, 2, 5]), (2, 0, 0));
        assert_eq!(run(&[0, 1, 2, 5, 5]), (2, 0, 1));
        assert_eq!(run(&[0, 1, 2, 5, 3]), (1, 1, 0));
        assert_eq!(run(&[0, 1, 2, 5, 3, 3]), (1, 1, 1));
    }

    #[test]
    fn wraps_at_65535() {
        assert_eq!(run(&[65534, 65535, 0, 1]), (0, 0, 0));
        assert_eq!(run(&[65535, 1]), (1, 0, 0));
    }

    #[test]
    fn big_jump_restarts() {
        assert_eq!(run(&[10, 20000, 20001]), (0, 0, 0));
    }

    #[test]
    fn flags() {
        assert_eq!(flags_of(None), RTPM_SLOT_F_MALFORMED);
        let i = RtpInfo { seq: 0, timestamp: 0, ssrc: 0, payload_type: 0, marker: true };
        assert_eq!(flags_of(Some(&i)), RTPM_SLOT_F_RTP | RTPM_SLOT_F_MARKER);
    }
}

//! RTP awareness of a ring: what PUSH records in a slot descriptor, and the per-channel sequence
//! tracking behind `rtp_lost`, `rtp_reordered` and `rtp_duplicates`.
//!
//! The shm backend uses this module as the kernel would; tools use [`parse`] to look at a payload
//! the same way the ring did. Header validation is the `rtp-types` crate's (RFC 3550 §5.1: version
//! 2, CSRC list, extension and padding must fit the packet), so "valid RTP" means one thing in
//! every tool of the product.

use rtpmgr_abi::{RTPM_SLOT_F_MALFORMED, RTPM_SLOT_F_MARKER, RTPM_SLOT_F_RTP};

/// The fields of a valid RTP v2 packet: what a ring records in a slot descriptor, and what the
/// tools look at.
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
    /// Payload bytes after header, CSRCs and extension, before padding.
    pub payload_len: usize,
}

/// Why a datagram is not a valid RTP v2 packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Malformed {
    /// Shorter than the fixed header or than its CSRC list, extension or padding claims.
    Truncated {
        /// Bytes the header needs.
        expected: usize,
        /// Bytes there are.
        actual: usize,
    },
    /// Version field is not 2.
    Version(u8),
    /// Padding bit set but the padding count is 0.
    Padding(u8),
}

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Malformed::Truncated { expected, actual } => {
                write!(f, "truncated: {actual} bytes, header needs {expected}")
            }
            Malformed::Version(v) => write!(f, "RTP version {v}, expected 2"),
            Malformed::Padding(p) => write!(f, "invalid padding count {p}"),
        }
    }
}

impl std::error::Error for Malformed {}

/// Parses an RTP v2 header; the reason when the payload is not valid RTP v2. Never panics,
/// whatever the bytes.
///
/// ```
/// let pkt = [0x80, 0xe0, 0x00, 0x07, 0, 0, 0, 9, 0xde, 0xad, 0xbe, 0xef];
/// let info = rtpmgr::rtp::parse(&pkt).unwrap();
/// assert_eq!((info.seq, info.timestamp, info.ssrc, info.payload_type, info.marker, info.payload_len),
///            (7, 9, 0xdeadbeef, 96, true, 0));
/// assert_eq!(rtpmgr::rtp::parse(b"not rtp at all"), Err(rtpmgr::rtp::Malformed::Version(1)));
/// ```
pub fn parse(data: &[u8]) -> Result<RtpInfo, Malformed> {
    use rtp_types::RtpParseError;
    match rtp_types::RtpPacket::parse(data) {
        Ok(p) => Ok(RtpInfo {
            seq: p.sequence_number(),
            timestamp: p.timestamp(),
            ssrc: p.ssrc(),
            payload_type: p.payload_type(),
            marker: p.marker_bit(),
            payload_len: p.payload_len(),
        }),
        Err(RtpParseError::Truncated { expected, actual }) => Err(Malformed::Truncated { expected, actual }),
        Err(RtpParseError::UnsupportedVersion(v)) => Err(Malformed::Version(v)),
        Err(RtpParseError::PaddingInvalid(p)) => Err(Malformed::Padding(p)),
    }
}

/// Bytes of a payload's head that [`parse_head`] needs: fixed header, 15 CSRCs, extension header.
pub const HEAD_MAX: usize = 12 + 15 * 4 + 4;

/// The same decision as [`parse`], from the payload's first `min(len, HEAD_MAX)` bytes, its
/// length and its last byte — what a ring reads of a payload that sits in shared memory and may
/// change under it (each byte is read once, into a private copy; the body is never touched).
///
/// ```
/// let pkt = [0xa0, 0x60, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0xff, 2]; // padding bit, 2 bytes of padding
/// assert_eq!(rtpmgr::rtp::parse_head(&pkt, pkt.len(), 2), rtpmgr::rtp::parse(&pkt).ok());
/// ```
pub fn parse_head(head: &[u8], len: usize, last: u8) -> Option<RtpInfo> {
    if len < 12 || head.len() < 12.min(len) || head[0] >> 6 != 2 {
        return None;
    }
    // The CSRC list must fit in the payload.
    let mut need = 12 + 4 * (head[0] & 0x0f) as usize;
    if need > len {
        return None;
    }
    // So must the extension header and its body, if announced.
    if head[0] & 0x10 != 0 {
        if need + 4 > len || need + 4 > head.len() {
            return None;
        }
        need += 4 + 4 * u16::from_be_bytes([head[need + 2], head[need + 3]]) as usize;
        if need > len {
            return None;
        }
    }
    // Padding: the last byte counts itself and must not eat into the header.
    let padding = if head[0] & 0x20 != 0 { last as usize } else { 0 };
    if head[0] & 0x20 != 0 && (last == 0 || need + padding > len) {
        return None;
    }
    Some(RtpInfo {
        seq: u16::from_be_bytes([head[2], head[3]]),
        timestamp: u32::from_be_bytes([head[4], head[5], head[6], head[7]]),
        ssrc: u32::from_be_bytes([head[8], head[9], head[10], head[11]]),
        payload_type: head[1] & 0x7f,
        marker: head[1] & 0x80 != 0,
        payload_len: len - need - padding,
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
/// The module's rules (rtp_mgr_rtp.c), bit for bit, with its 512-packet history:
/// - the first packet, and any packet of a new SSRC, (re)starts tracking and counts nothing;
/// - `delta = seq - highest` as a signed 16-bit value; `delta > 0`: `delta - 1` lost;
/// - `delta == 0`, or a late packet already in the history: duplicate;
/// - `0 < -delta < 512` and not seen: reordered; it was counted lost when its gap opened, so
///   lost goes down by one ([`SeqDelta::recovered`]);
/// - further back: a new stream or a sender restart: restart tracking, count nothing.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeqTracker {
    started: u32,
    ssrc: u32,
    highest: u16,
    _pad: u16,
    _pad2: u32,
    /// Bit i set: sequence number `highest - i` was seen.
    seen: [u64; SEQ_WINDOW / 64],
}

/// Packets of history for duplicate detection (the module's RTPM_SEQ_WINDOW).
pub const SEQ_WINDOW: usize = 512;

impl SeqTracker {
    fn restart(&mut self, ssrc: u32, seq: u16) {
        *self = SeqTracker { started: 1, ssrc, highest: seq, ..Default::default() };
        self.seen[0] = 1;
    }

    fn test_and_set(&mut self, bit: usize) -> bool {
        let (w, b) = (bit / 64, bit % 64);
        let was = self.seen[w] >> b & 1 != 0;
        self.seen[w] |= 1 << b;
        was
    }

    fn shift_left(&mut self, by: usize) {
        if by >= SEQ_WINDOW {
            self.seen = [0; SEQ_WINDOW / 64];
            return;
        }
        let (words, bits) = (by / 64, by % 64);
        for i in (0..self.seen.len()).rev() {
            let lo = i.checked_sub(words).map_or(0, |j| self.seen[j]);
            let carry = if bits == 0 { 0 } else { i.checked_sub(words + 1).map_or(0, |j| self.seen[j]) >> (64 - bits) };
            self.seen[i] = (lo << bits) | carry;
        }
    }

    /// Accounts one packet.
    pub fn update(&mut self, ssrc: u32, seq: u16) -> SeqDelta {
        let mut d = SeqDelta::default();
        if self.started == 0 || ssrc != self.ssrc {
            self.restart(ssrc, seq);
            return d;
        }
        let delta = seq.wrapping_sub(self.highest) as i16 as i32;
        if delta > 0 {
            d.lost = (delta - 1) as u64;
            self.shift_left(delta as usize);
            self.seen[0] |= 1;
            self.highest = seq;
        } else if delta == 0 {
            d.duplicates = 1;
        } else if ((-delta) as usize) < SEQ_WINDOW {
            if self.test_and_set((-delta) as usize) {
                d.duplicates = 1;
            } else {
                d.reordered = 1;
                d.recovered = 1;
            }
        } else {
            self.restart(ssrc, seq);
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
    fn jumps_count_loss_and_far_back_restarts() {
        assert_eq!(run(&[10, 20000, 20001]), (19989, 0, 0));
        // 600 behind the highest: outside the 512-packet history, a restart.
        assert_eq!(run(&[1000, 400, 401]), (0, 0, 0));
        // 300 behind, inside the history: reordered (and one fewer lost).
        assert_eq!(run(&[0, 1000, 700]), (998, 1, 0));
        assert_eq!(run(&[0, 1000, 700, 700]), (998, 1, 1));
    }

    #[test]
    fn flags() {
        assert_eq!(flags_of(None), RTPM_SLOT_F_MALFORMED);
        let i = RtpInfo { seq: 0, timestamp: 0, ssrc: 0, payload_type: 0, marker: true, payload_len: 0 };
        assert_eq!(flags_of(Some(&i)), RTPM_SLOT_F_RTP | RTPM_SLOT_F_MARKER);
    }
}

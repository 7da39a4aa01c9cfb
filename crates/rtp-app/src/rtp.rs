//! RTP v2 generation (TX) and validation (RX), on top of the `rtp-types` crate.
//!
//! `rtp-types` fits: its parser borrows the datagram in place (no copy, no allocation), fails
//! fast with a typed error on every length inconsistency (CSRC list, extension, padding), and its
//! builder writes into a caller-provided `&mut [u8]`, which is exactly a ring slot's payload.
//! Parsing is `rtpmgr::rtp::parse` (re-exported here), the same decision the ring makes; this
//! module keeps a generated stream's sequence and timestamp state.

use rtp_types::{RtpPacket, RtpPacketBuilder};

/// Size of the fixed RTP header (no CSRC, no extension).
pub const RTP_HEADER_LEN: usize = RtpPacket::MIN_RTP_PACKET_LEN;

/// Validation is the ring library's (one definition of "valid RTP" in every tool).
pub use rtpmgr::rtp::{parse, Malformed, RtpInfo};

/// Parameters of a generated stream.
#[derive(Debug, Clone)]
pub struct StreamParams {
    /// Synchronisation source written in every packet.
    pub ssrc: u32,
    /// Payload type, 0..=127 (96 = first dynamic type).
    pub payload_type: u8,
    /// Media clock in Hz, e.g. 90000 for video.
    pub clock_rate: u32,
    /// Packets per second; the timestamp advances by clock_rate / rate per packet.
    pub rate: u32,
    /// Payload bytes after the 12-byte header.
    pub payload_len: usize,
    /// First sequence number.
    pub first_seq: u16,
    /// First timestamp.
    pub first_timestamp: u32,
}

/// Writes consecutive RTP v2 packets of one stream into caller buffers (ring slots).
///
/// The timestamp of packet n is `first_timestamp + n * clock_rate / rate` computed in 128-bit
/// integers, so it never drifts the way an accumulated floating-point step would.
#[derive(Debug)]
pub struct RtpGenerator {
    params: StreamParams,
    /// Packets generated so far (n of the next packet).
    count: u64,
    /// Payload pattern, copied after the header: an incrementing byte ramp, so a capture shows
    /// at a glance whether bytes were shifted or truncated.
    pattern: Vec<u8>,
}

impl RtpGenerator {
    /// Check the parameters and prepare the payload pattern.
    pub fn new(params: StreamParams) -> anyhow::Result<Self> {
        anyhow::ensure!(
            params.payload_type <= 127,
            "payload type {} is not valid: RTP payload types are 0..=127",
            params.payload_type
        );
        anyhow::ensure!(params.rate > 0, "rate must be at least 1 packet per second");
        anyhow::ensure!(params.clock_rate > 0, "clock rate must be at least 1 Hz");
        let pattern = (0..params.payload_len).map(|i| (i & 0xff) as u8).collect();
        Ok(Self { params, count: 0, pattern })
    }

    /// Total datagram size of every generated packet.
    pub fn packet_len(&self) -> usize {
        RTP_HEADER_LEN + self.params.payload_len
    }

    /// Packets generated so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Sequence number the next packet gets.
    pub fn next_seq(&self) -> u16 {
        self.params.first_seq.wrapping_add(self.count as u16)
    }

    /// Timestamp the next packet gets.
    pub fn next_timestamp(&self) -> u32 {
        let step = self.count as u128 * self.params.clock_rate as u128 / self.params.rate as u128;
        self.params.first_timestamp.wrapping_add(step as u32)
    }

    /// Write the next packet into `buf` and return its length. Fails (and does not advance the
    /// stream) if `buf` is too small.
    pub fn write_next(&mut self, buf: &mut [u8]) -> anyhow::Result<usize> {
        let len = RtpPacketBuilder::<&[u8], &[u8]>::new()
            .payload_type(self.params.payload_type)
            .sequence_number(self.next_seq())
            .timestamp(self.next_timestamp())
            .ssrc(self.params.ssrc)
            .payload(&self.pattern)
            .write_into(buf)
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot write a {}-byte RTP packet into a {}-byte slot: {e}",
                    self.packet_len(),
                    buf.len()
                )
            })?;
        self.count += 1;
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(rate: u32, payload_len: usize) -> StreamParams {
        StreamParams {
            ssrc: 0x1234_5678,
            payload_type: 96,
            clock_rate: 90_000,
            rate,
            payload_len,
            first_seq: 65_534,
            first_timestamp: u32::MAX - 5,
        }
    }

    #[test]
    fn generated_packets_parse_with_consecutive_seq_and_wrapping_timestamp() {
        let mut g = RtpGenerator::new(params(1000, 100)).unwrap();
        let mut buf = [0u8; 200];
        let mut seqs = vec![];
        let mut tss = vec![];
        for _ in 0..4 {
            let n = g.write_next(&mut buf).unwrap();
            assert_eq!(n, 112);
            let info = parse(&buf[..n]).unwrap();
            assert_eq!(info.ssrc, 0x1234_5678);
            assert_eq!(info.payload_type, 96);
            assert_eq!(info.payload_len, 100);
            seqs.push(info.seq);
            tss.push(info.timestamp);
        }
        assert_eq!(seqs, vec![65_534, 65_535, 0, 1]);
        // 90 kHz at 1000 pps: 90 ticks per packet, wrapping past u32::MAX.
        assert_eq!(tss, vec![u32::MAX - 5, 84, 174, 264]);
    }

    #[test]
    fn timestamp_does_not_drift_with_uneven_steps() {
        // 90000 / 30000 = 3 exactly, but 90000 / 7 is not an integer.
        let mut g = RtpGenerator::new(StreamParams { first_timestamp: 0, ..params(7, 0) }).unwrap();
        let mut buf = [0u8; 64];
        for _ in 0..7 {
            g.write_next(&mut buf).unwrap();
        }
        assert_eq!(g.next_timestamp(), 90_000);
    }

    #[test]
    fn too_small_buffer_is_an_error_and_does_not_advance() {
        let mut g = RtpGenerator::new(params(1000, 100)).unwrap();
        let mut buf = [0u8; 50];
        let err = g.write_next(&mut buf).unwrap_err().to_string();
        assert!(err.contains("112-byte RTP packet into a 50-byte slot"), "{err}");
        assert_eq!(g.count(), 0);
    }

    #[test]
    fn invalid_payload_type_is_rejected() {
        let err = RtpGenerator::new(StreamParams { payload_type: 128, ..params(1, 0) }).unwrap_err();
        assert!(err.to_string().contains("payload type 128"));
    }

    #[test]
    fn malformed_kinds() {
        assert_eq!(parse(&[0x80; 5]), Err(Malformed::Truncated { expected: 12, actual: 5 }));
        assert_eq!(parse(&[0x40; 12]), Err(Malformed::Version(1)));
        // CC = 2 claims 8 CSRC bytes that are not there.
        let mut b = [0u8; 12];
        b[0] = 0x82;
        assert!(matches!(parse(&b), Err(Malformed::Truncated { expected: 20, .. })));
    }
}

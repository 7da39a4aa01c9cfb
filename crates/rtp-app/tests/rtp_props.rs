//! Property tests of the RTP parsing and generation rtp_app relies on. (The validation of slot
//! entries that guards ring memory is the ring library's: `rtpmgr` tests/props.rs.)

use proptest::prelude::*;
use rtp_app::rtp::{parse, Malformed, RtpGenerator, StreamParams};

/// RFC 3550 section 5.1 header rules, written independently of rtp-types: Some(payload_len) for
/// a valid v2 packet.
fn reference(b: &[u8]) -> Option<usize> {
    if b.len() < 12 || b[0] >> 6 != 2 {
        return None;
    }
    let mut off = 12 + 4 * usize::from(b[0] & 0x0f);
    if b.len() < off {
        return None;
    }
    if b[0] & 0x10 != 0 {
        if b.len() < off + 4 {
            return None;
        }
        off += 4 + 4 * usize::from(u16::from_be_bytes([b[off + 2], b[off + 3]]));
        if b.len() < off {
            return None;
        }
    }
    let mut end = b.len();
    if b[0] & 0x20 != 0 {
        if b.len() < off + 1 {
            return None;
        }
        let pad = usize::from(b[b.len() - 1]);
        if pad == 0 || b.len() < off + pad {
            return None;
        }
        end -= pad;
    }
    Some(end - off)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

    /// Any bytes: no panic, and the verdict (and payload length) matches the RFC reference.
    #[test]
    fn parse_agrees_with_the_rfc_reference(b in proptest::collection::vec(any::<u8>(), 0..200)) {
        let r = parse(&b);
        prop_assert_eq!(r.as_ref().ok().map(|i| i.payload_len), reference(&b), "{:?} on {:?}", r, b);
        if let Err(Malformed::Version(v)) = r {
            prop_assert_ne!(v, 2);
        }
    }

    /// Mostly-valid headers (version 2 forced) reach the deeper CSRC/extension/padding rules.
    #[test]
    fn v2_headers_agree_with_the_rfc_reference(mut b in proptest::collection::vec(any::<u8>(), 12..120)) {
        b[0] = (b[0] & 0x3f) | 0x80;
        let r = parse(&b);
        prop_assert_eq!(r.as_ref().ok().map(|i| i.payload_len), reference(&b), "{:?} on {:?}", r, b);
    }

    /// Whatever the stream parameters, generated packets parse back with the same fields,
    /// consecutive sequence numbers and the exact timestamp schedule.
    #[test]
    fn generated_packets_roundtrip(
        ssrc in any::<u32>(), pt in 0u8..=127, seq in any::<u16>(), ts in any::<u32>(),
        payload_len in 0usize..1500, clock in 1u32..200_000, rate in 1u32..100_000, n in 1usize..20,
    ) {
        let mut g = RtpGenerator::new(StreamParams {
            ssrc, payload_type: pt, clock_rate: clock, rate, payload_len, first_seq: seq, first_timestamp: ts,
        }).unwrap();
        let mut buf = vec![0u8; 2048];
        for k in 0..n {
            let len = g.write_next(&mut buf).unwrap();
            prop_assert_eq!(len, 12 + payload_len);
            let info = parse(&buf[..len]).unwrap();
            prop_assert_eq!(info.ssrc, ssrc);
            prop_assert_eq!(info.payload_type, pt);
            prop_assert_eq!(info.seq, seq.wrapping_add(k as u16));
            let step = (k as u128 * u128::from(clock) / u128::from(rate)) as u32;
            prop_assert_eq!(info.timestamp, ts.wrapping_add(step));
            prop_assert_eq!(info.payload_len, payload_len);
        }
    }
}

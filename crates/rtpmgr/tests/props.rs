//! Property tests of the two decoders that read bytes someone else wrote: the header page
//! (written by the kernel or by whoever created a shm ring file) and RTP headers (written by the
//! network). Both must refuse garbage with an error and never panic.

use proptest::prelude::*;
use rtpmgr::abi::*;
use rtpmgr::layout::{header_bytes, RingLayout};
use rtpmgr::rtp;

const PAGE: usize = 4096;

fn config() -> impl Strategy<Value = RtpmConfig> {
    (RTPM_RING_ORDER_MIN..=RTPM_RING_ORDER_MAX, RTPM_SLOT_PAYLOAD_MIN..=RTPM_SLOT_PAYLOAD_MAX, 0u32..=1)
        .prop_map(|(ring_order, slot_payload, drop_policy)| RtpmConfig::new(ring_order, slot_payload, drop_policy))
}

proptest! {
    // Miri interprets every case (~1 s each): a handful there, the full run natively.
    #![proptest_config(ProptestConfig::with_cases(if cfg!(miri) { 4 } else { 2000 }))]

    /// Any bytes at all: an error or a layout, never a panic; and a layout that is returned
    /// keeps every region inside what the header claims.
    #[test]
    fn arbitrary_pages_never_panic(page in proptest::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(l) = RingLayout::decode(&page, PAGE, "prop") {
            prop_assert!(l.desc_offset + l.slot_count as usize * l.desc_size as usize <= l.meta_size);
            prop_assert!(l.slot_count as usize * l.slot_stride as usize <= l.payload_size);
        }
    }

    /// Every valid configuration produces a header that decodes to the same numbers.
    #[test]
    fn valid_headers_round_trip(cfg in config(), channel in 0u32..32) {
        let h = RingLayout::header_for(channel, &cfg, PAGE);
        let l = RingLayout::decode(&header_bytes(&h), PAGE, "prop").unwrap();
        prop_assert_eq!(l.slot_count, 1 << cfg.ring_order);
        prop_assert_eq!(l.slot_payload, cfg.slot_payload);
        prop_assert_eq!(l.drop_policy, cfg.drop_policy);
        prop_assert_eq!(l.channel, channel);
        prop_assert_eq!(l.payload_offset as usize % PAGE, 0);
    }

    /// A valid header with one 32-bit word overwritten by a random value: whatever the result,
    /// no panic, and if it still decodes, the invariants still hold.
    #[test]
    fn one_corrupted_word_is_caught_or_harmless(cfg in config(), word in 0usize..64, value in any::<u32>()) {
        let h = RingLayout::header_for(0, &cfg, PAGE);
        let mut page = header_bytes(&h);
        page[word * 4..word * 4 + 4].copy_from_slice(&value.to_le_bytes());
        if let Ok(l) = RingLayout::decode(&page, PAGE, "prop") {
            prop_assert!(l.slot_count.is_power_of_two());
            prop_assert!(l.desc_offset + l.slot_count as usize * l.desc_size as usize <= l.meta_size);
            prop_assert!(l.slot_count as usize * l.slot_stride as usize <= l.payload_size);
            prop_assert!(l.index_off.iter().all(|&o| o % 4 == 0 && o + 4 <= 256));
        }
    }

    /// The specific lies a hostile header can tell are refused.
    #[test]
    fn wrong_magic_version_sizes_offsets_are_refused(cfg in config(), junk in any::<u32>()) {
        let good = RingLayout::header_for(0, &cfg, PAGE);
        let refuse = |h: RtpmRingHeader| RingLayout::decode(&header_bytes(&h), PAGE, "prop").is_err();
        let bad_magic = if junk == RTPM_MAGIC { junk ^ 1 } else { junk };
        let h = RtpmRingHeader { magic: bad_magic, ..good };
        prop_assert!(refuse(h), "magic accepted");
        let h = RtpmRingHeader { abi_major: RTPM_ABI_MAJOR + 1 + (junk % 100) as u16, ..good };
        prop_assert!(refuse(h), "abi_major accepted");
        let h = RtpmRingHeader { slot_count: good.slot_count + 1 + junk % 7, ..good };
        prop_assert!(refuse(h), "slot_count accepted");
        let h = RtpmRingHeader { meta_size: good.desc_offset, ..good };
        prop_assert!(refuse(h), "meta_size accepted");
        let h = RtpmRingHeader { payload_size: good.slot_count as u64 * good.slot_stride as u64 - 1, ..good };
        prop_assert!(refuse(h), "payload_size accepted");
        let h = RtpmRingHeader { payload_offset: good.payload_offset + 1 + (junk % 4095) as u64, ..good };
        prop_assert!(refuse(h), "payload_offset accepted");
        let h = RtpmRingHeader { prod_off: 256 + junk % 1000, ..good };
        prop_assert!(refuse(h), "prod_off accepted");
        let h = RtpmRingHeader { desc_size: junk % 32, ..good };
        prop_assert!(refuse(h), "desc_size accepted");
        let h = RtpmRingHeader { header_size: junk % 256, ..good };
        prop_assert!(refuse(h), "header_size accepted");
    }

    /// RTP parsing: arbitrary bytes never panic, and validity agrees with a transcription of the
    /// module's C parser (rtp_mgr_rtp.c), so both backends flag the same packets malformed.
    #[test]
    fn rtp_parse_matches_the_module(data in proptest::collection::vec(any::<u8>(), 0..120), v2 in any::<bool>(),
                                    small_ext in any::<bool>()) {
        let mut data = data;
        if v2 && !data.is_empty() {
            data[0] = (data[0] & 0x3f) | 0x80;
        }
        // Make valid extension lengths common enough to matter.
        if small_ext && data.len() > 16 {
            let at = 12 + 4 * (data[0] & 0x0f) as usize;
            if at + 4 <= data.len() {
                data[at + 2] = 0;
                data[at + 3] %= 4;
            }
        }
        let ours = rtp::parse(&data).ok();
        let module = kernel_parse(&data);
        prop_assert_eq!(ours, module, "{:02x?}", data);
        // The ring's bounded-copy parser decides the same from the head and the last byte.
        let head = &data[..data.len().min(rtp::HEAD_MAX)];
        let ring = rtp::parse_head(head, data.len(), data.last().copied().unwrap_or(0));
        prop_assert_eq!(ring, module, "{:02x?}", data);
    }

    /// Well-formed packets carry their fields through.
    #[test]
    fn rtp_fields_round_trip(seq in any::<u16>(), ts in any::<u32>(), ssrc in any::<u32>(), pt in 0u8..128,
                             marker in any::<bool>(), payload in proptest::collection::vec(any::<u8>(), 0..40)) {
        let mut p = vec![0x80, pt | if marker { 0x80 } else { 0 }];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend_from_slice(&payload);
        let i = rtp::parse(&p).unwrap();
        prop_assert_eq!((i.seq, i.timestamp, i.ssrc, i.payload_type, i.marker), (seq, ts, ssrc, pt, marker));
    }
}

/// rtpm_rtp_parse() of kernel/rtp_mgr_rtp.c, line by line.
fn kernel_parse(d: &[u8]) -> Option<rtp::RtpInfo> {
    let len = d.len();
    if len < 12 || d[0] >> 6 != 2 {
        return None;
    }
    let mut need = 12 + 4 * (d[0] & 0x0f) as usize;
    if need > len {
        return None;
    }
    if d[0] & 0x10 != 0 {
        if need + 4 > len {
            return None;
        }
        need += 4 + 4 * u16::from_be_bytes([d[need + 2], d[need + 3]]) as usize;
        if need > len {
            return None;
        }
    }
    let mut pad = 0;
    if d[0] & 0x20 != 0 {
        pad = d[len - 1] as usize;
        if pad == 0 || need + pad > len {
            return None;
        }
    }
    Some(rtp::RtpInfo {
        payload_len: len - need - pad,
        marker: d[1] & 0x80 != 0,
        payload_type: d[1] & 0x7f,
        seq: u16::from_be_bytes([d[2], d[3]]),
        timestamp: u32::from_be_bytes([d[4], d[5], d[6], d[7]]),
        ssrc: u32::from_be_bytes([d[8], d[9], d[10], d[11]]),
    })
}

//! Decoding of the header page: the only place that turns the numbers a ring publishes into
//! offsets this library dereferences.
//!
//! The header page is written by the kernel (or by whoever created a shm ring file), so it is
//! treated as hostile: it is copied once, every invariant is checked on the copy with checked
//! arithmetic, and a ring whose header fails any check is refused with [`Error::BadHeader`] —
//! never a panic, never an out-of-bounds pointer. `tests/props.rs` feeds it arbitrary pages.

use crate::error::{Error, Result};
use rtpmgr_abi::*;

/// The validated layout of one ring, as published by its header page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingLayout {
    /// Channel number the header names.
    pub channel: u32,
    /// ABI minor version of the ring (the major is always [`RTPM_ABI_MAJOR`]).
    pub abi_minor: u16,
    /// Slots in the ring, a power of two.
    pub slot_count: u32,
    /// log2 of `slot_count`.
    pub ring_order: u32,
    /// Usable payload bytes per slot.
    pub slot_payload: u32,
    /// Bytes between consecutive payloads.
    pub slot_stride: u32,
    /// Bytes per descriptor in the table (at least `size_of::<RtpmSlotDesc>()`).
    pub desc_size: u32,
    /// `RTPM_DROP_*`.
    pub drop_policy: u32,
    /// Offset of the descriptor table in the meta region.
    pub desc_offset: usize,
    /// Bytes of the meta region (mapped read-only at offset 0).
    pub meta_size: usize,
    /// mmap offset of the payload region.
    pub payload_offset: u64,
    /// Bytes of the payload region.
    pub payload_size: usize,
    /// Offsets in the header page of the index words: reserve, producer, consumer, release.
    pub index_off: [usize; 4],
}

/// Index of the reserve word in [`RingLayout::index_off`].
pub const IDX_RESERVE: usize = 0;
/// Index of the producer word.
pub const IDX_PRODUCER: usize = 1;
/// Index of the consumer word.
pub const IDX_CONSUMER: usize = 2;
/// Index of the release word.
pub const IDX_RELEASE: usize = 3;

impl RingLayout {
    /// Decodes and validates a header page.
    ///
    /// `page` is the start of the meta region (at least the header; a short slice is refused);
    /// `page_size` is the system page size, which mmap offsets must respect.
    ///
    /// # Errors
    /// [`Error::AbiMismatch`] for another ABI major version, [`Error::BadHeader`] naming the first
    /// invariant that fails.
    pub fn decode(page: &[u8], page_size: usize, context: &str) -> Result<RingLayout> {
        let bad = |reason: String| Error::BadHeader { context: context.to_string(), reason };
        let hsize = std::mem::size_of::<RtpmRingHeader>();
        if page.len() < hsize {
            return Err(bad(format!("header page is {} bytes, need {hsize}", page.len())));
        }
        // SAFETY: `page` holds at least size_of::<RtpmRingHeader>() readable bytes, the struct is
        // plain old data (every bit pattern valid) and read_unaligned copies it once; all checks
        // below look at this copy only.
        let h: RtpmRingHeader = unsafe { std::ptr::read_unaligned(page.as_ptr().cast()) };
        if h.magic != RTPM_MAGIC {
            return Err(bad(format!("magic {:#010x}, expected {RTPM_MAGIC:#010x}", h.magic)));
        }
        if h.abi_major != RTPM_ABI_MAJOR {
            return Err(Error::AbiMismatch { context: context.to_string(), major: h.abi_major, minor: h.abi_minor });
        }
        // A later minor version may grow the header and the descriptor; never shrink them.
        if (h.header_size as usize) < hsize || h.header_size as usize > page.len() {
            return Err(bad(format!("header_size {} outside {hsize}..={}", h.header_size, page.len())));
        }
        if !(RTPM_RING_ORDER_MIN..=RTPM_RING_ORDER_MAX).contains(&h.ring_order) {
            return Err(bad(format!("ring_order {} out of range", h.ring_order)));
        }
        if h.slot_count != 1 << h.ring_order {
            return Err(bad(format!("slot_count {} != 2^{}", h.slot_count, h.ring_order)));
        }
        if !(RTPM_SLOT_PAYLOAD_MIN..=RTPM_SLOT_PAYLOAD_MAX).contains(&h.slot_payload) {
            return Err(bad(format!("slot_payload {} out of range", h.slot_payload)));
        }
        if h.slot_stride < h.slot_payload || !h.slot_stride.is_multiple_of(RTPM_SLOT_ALIGN) {
            return Err(bad(format!(
                "slot_stride {} is not a multiple of {RTPM_SLOT_ALIGN} holding {} bytes",
                h.slot_stride, h.slot_payload
            )));
        }
        let dsize = std::mem::size_of::<RtpmSlotDesc>();
        if (h.desc_size as usize) < dsize || !h.desc_size.is_multiple_of(8) {
            return Err(bad(format!("desc_size {} (need >= {dsize}, multiple of 8)", h.desc_size)));
        }
        if h.drop_policy > RTPM_DROP_OLDEST {
            return Err(bad(format!("drop_policy {} unknown", h.drop_policy)));
        }
        let to_usize = |v: u64, what: &str| {
            usize::try_from(v).map_err(|_| bad(format!("{what} {v} does not fit the address space")))
        };
        let meta_size = to_usize(h.meta_size, "meta_size")?;
        let desc_offset = to_usize(h.desc_offset, "desc_offset")?;
        let payload_size = to_usize(h.payload_size, "payload_size")?;
        if desc_offset < h.header_size as usize || !desc_offset.is_multiple_of(8) {
            return Err(bad(format!("desc_offset {desc_offset} overlaps the header or is unaligned")));
        }
        let table = (h.slot_count as usize).checked_mul(h.desc_size as usize).and_then(|t| t.checked_add(desc_offset));
        match table {
            Some(end) if end <= meta_size => {}
            _ => return Err(bad(format!("descriptor table runs past meta_size {meta_size}"))),
        }
        if !h.payload_offset.is_multiple_of(page_size as u64) || h.payload_offset < h.meta_size {
            return Err(bad(format!("payload_offset {} not page aligned or inside the meta region", h.payload_offset)));
        }
        let payload_needed = (h.slot_count as usize).checked_mul(h.slot_stride as usize);
        match payload_needed {
            Some(n) if n <= payload_size => {}
            _ => return Err(bad(format!("payload_size {payload_size} too small for the slots"))),
        }
        if h.payload_offset.checked_add(h.payload_size).is_none() {
            return Err(bad("payload region wraps the offset space".into()));
        }
        let offs = [h.reserve_off, h.prod_off, h.cons_off, h.release_off];
        for (i, &o) in offs.iter().enumerate() {
            if !o.is_multiple_of(4) || o as usize + 4 > h.header_size as usize || (o as usize) < 64 {
                return Err(bad(format!("index word offset {o} outside the header's index area")));
            }
            if offs[..i].contains(&o) {
                return Err(bad(format!("index word offset {o} used twice")));
            }
        }
        Ok(RingLayout {
            channel: h.channel,
            abi_minor: h.abi_minor,
            slot_count: h.slot_count,
            ring_order: h.ring_order,
            slot_payload: h.slot_payload,
            slot_stride: h.slot_stride,
            desc_size: h.desc_size,
            drop_policy: h.drop_policy,
            desc_offset,
            meta_size,
            payload_offset: h.payload_offset,
            payload_size,
            index_off: offs.map(|o| o as usize),
        })
    }

    /// Checks that the header agrees with what GET_INFO said about the same channel: a mismatch
    /// means the mapping is not the ring the ioctls operate on.
    pub fn check_info(&self, info: &RtpmInfo, context: &str) -> Result<()> {
        let same = info.slot_count == self.slot_count
            && info.slot_stride == self.slot_stride
            && info.config.slot_payload == self.slot_payload
            && info.meta_size == self.meta_size as u64
            && info.payload_offset == self.payload_offset
            && info.payload_size == self.payload_size as u64;
        if same {
            Ok(())
        } else {
            Err(Error::BadHeader {
                context: context.to_string(),
                reason: format!("header page disagrees with GET_INFO ({info:?} vs {self:?})"),
            })
        }
    }

    /// Builds the header page a ring of this configuration publishes (used by the shm backend,
    /// and by tests to start from a valid page).
    pub fn header_for(channel: u32, cfg: &RtpmConfig, page_size: usize) -> RtpmRingHeader {
        let slot_count = 1u32 << cfg.ring_order;
        let stride = cfg.slot_payload.div_ceil(RTPM_SLOT_ALIGN) * RTPM_SLOT_ALIGN;
        let desc_size = std::mem::size_of::<RtpmSlotDesc>() as u64;
        let round = |v: u64| v.div_ceil(page_size as u64) * page_size as u64;
        let desc_offset = round(std::mem::size_of::<RtpmRingHeader>() as u64);
        let meta_size = round(desc_offset + slot_count as u64 * desc_size);
        RtpmRingHeader {
            magic: RTPM_MAGIC,
            abi_major: RTPM_ABI_MAJOR,
            abi_minor: RTPM_ABI_MINOR,
            header_size: std::mem::size_of::<RtpmRingHeader>() as u32,
            channel,
            slot_count,
            ring_order: cfg.ring_order,
            slot_payload: cfg.slot_payload,
            slot_stride: stride,
            desc_size: desc_size as u32,
            drop_policy: cfg.drop_policy,
            desc_offset,
            meta_size,
            payload_offset: meta_size,
            payload_size: round(slot_count as u64 * stride as u64),
            prod_off: RTPM_HEADER_PROD_LINE + 4,
            cons_off: RTPM_HEADER_CONS_LINE,
            reserve_off: RTPM_HEADER_PROD_LINE,
            release_off: RTPM_HEADER_CONS_LINE + 4,
            ..RtpmRingHeader::default()
        }
    }
}

/// The system page size.
pub fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if v > 0 {
        v as usize
    } else {
        4096
    }
}

/// Views a header as the bytes of a page prefix (for tests and the shm backend).
pub fn header_bytes(h: &RtpmRingHeader) -> [u8; 256] {
    let mut out = [0u8; 256];
    // SAFETY: RtpmRingHeader is 256 bytes of plain data without implicit padding (asserted in
    // rtpmgr-abi), so every byte is initialised; the destination holds exactly 256 bytes.
    unsafe { std::ptr::copy_nonoverlapping((h as *const RtpmRingHeader).cast::<u8>(), out.as_mut_ptr(), 256) };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> RtpmRingHeader {
        let cfg = RtpmConfig::new(4, 2048, 0);
        RingLayout::header_for(3, &cfg, 4096)
    }

    #[test]
    fn valid_header_decodes() {
        let l = RingLayout::decode(&header_bytes(&valid()), 4096, "t").unwrap();
        assert_eq!(l.slot_count, 16);
        assert_eq!(l.channel, 3);
        assert_eq!(l.index_off, [128, 132, 192, 196]);
        assert_eq!(l.payload_offset % 4096, 0);
    }

    #[test]
    fn each_broken_field_is_refused() {
        type Mutation = Box<dyn Fn(&mut RtpmRingHeader)>;
        let cases: Vec<(&str, Mutation)> = vec![
            ("magic", Box::new(|h| h.magic ^= 1)),
            ("ABI", Box::new(|h| h.abi_major = RTPM_ABI_MAJOR + 1)),
            ("header_size", Box::new(|h| h.header_size = 128)),
            ("ring_order", Box::new(|h| h.ring_order = 16)),
            ("slot_count", Box::new(|h| h.slot_count = 15)),
            ("slot_payload", Box::new(|h| h.slot_payload = 16385)),
            ("slot_stride", Box::new(|h| h.slot_stride = 2049)),
            ("desc_size", Box::new(|h| h.desc_size = 16)),
            ("drop_policy", Box::new(|h| h.drop_policy = 7)),
            ("desc_offset", Box::new(|h| h.desc_offset = 8)),
            ("table", Box::new(|h| h.meta_size = 4096)),
            ("payload_offset", Box::new(|h| h.payload_offset += 1)),
            ("payload_size", Box::new(|h| h.payload_size = 64)),
            ("index", Box::new(|h| h.prod_off = 254)),
            ("dup index", Box::new(|h| h.prod_off = h.cons_off)),
            ("wrap", Box::new(|h| h.payload_size = u64::MAX)),
        ];
        for (name, f) in cases {
            let mut h = valid();
            f(&mut h);
            let r = RingLayout::decode(&header_bytes(&h), 4096, "t");
            assert!(r.is_err(), "{name}: accepted {h:?}");
            assert_eq!(r.unwrap_err().errno(), nix::errno::Errno::EPROTO);
        }
    }

    #[test]
    fn short_page_is_refused() {
        assert!(RingLayout::decode(&[0u8; 100], 4096, "t").is_err());
    }
}

//! `#[repr(C)]` mirror of `include/rtp_mgr_ioctl.h`, the user-space ABI (v2.2) of the `rtp_mgr`
//! kernel module, and its ioctls.
//!
//! This crate owns nothing but the ABI: every structure, constant and ioctl number of the header,
//! byte for byte. The header is the one source of truth; `tests/layout.rs` compiles it with the
//! host C compiler and with `aarch64-linux-gnu-gcc` and proves that sizes, field offsets, constants
//! and ioctl numbers agree with this crate, so the two cannot drift.
//!
//! The semantics (slot states, ownership, error numbers) are described in the header's comments and
//! implemented by the safe ring library `rtpmgr`; use that crate unless you are writing a test of
//! the raw ABI.
//!
//! ```no_run
//! use std::os::fd::AsFd;
//! let dev = std::fs::File::open("/dev/rtp_mgr0").unwrap();
//! let info = rtpmgr_abi::ioctl::get_info(dev.as_fd()).unwrap();
//! assert_eq!(info.abi_major, rtpmgr_abi::RTPM_ABI_MAJOR);
//! ```
#![deny(missing_docs, missing_debug_implementations)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

use core::mem::{offset_of, size_of};

/// ABI major version: a change breaks old user space.
pub const RTPM_ABI_MAJOR: u16 = 2;
/// ABI minor version: a change only adds.
pub const RTPM_ABI_MINOR: u16 = 2;
/// `rtpm_ring_header.magic`: "RTPM" little endian.
pub const RTPM_MAGIC: u32 = 0x4d50_5452;
/// Device node prefix: `/dev/rtp_mgr0` ...
pub const RTPM_DEVICE_PREFIX: &str = "rtp_mgr";

/// Smallest ring order (2 slots).
pub const RTPM_RING_ORDER_MIN: u32 = 1;
/// Largest ring order (32768 slots).
pub const RTPM_RING_ORDER_MAX: u32 = 15;
/// Smallest usable payload per slot.
pub const RTPM_SLOT_PAYLOAD_MIN: u32 = 64;
/// Largest usable payload per slot (jumbo frames fit).
pub const RTPM_SLOT_PAYLOAD_MAX: u32 = 16384;
/// Slots per batched ioctl.
pub const RTPM_BATCH_MAX: u32 = 256;
/// Channels one module can create.
pub const RTPM_CHANNELS_MAX: u32 = 32;
/// Byte alignment of each slot's payload (`slot_stride` is a multiple).
pub const RTPM_SLOT_ALIGN: u32 = 64;
/// Default of the module parameter `max_ring_kib`: largest ring per channel, KiB.
pub const RTPM_MAX_RING_KIB_DEFAULT: u32 = 64 * 1024;
/// Default of the module parameter `max_total_kib`: all rings together, KiB.
pub const RTPM_MAX_TOTAL_KIB_DEFAULT: u32 = 256 * 1024;
/// Role bit of [`RtpmClaim::roles`]: the producer (RESERVE, PUSH, CANCEL; START/STOP).
pub const RTPM_ROLE_PRODUCER: u32 = 1 << 0;
/// Role bit of [`RtpmClaim::roles`]: the consumer (POP).
pub const RTPM_ROLE_CONSUMER: u32 = 1 << 1;
/// Both roles.
pub const RTPM_ROLES_ALL: u32 = RTPM_ROLE_PRODUCER | RTPM_ROLE_CONSUMER;
/// Bit of [`RtpmInfo::file_caps`]: the file was opened for writing.
pub const RTPM_FILE_WRITE: u32 = 1 << 0;
/// Bit of [`RtpmInfo::file_caps`]: a writer whose opener had `CAP_NET_ADMIN` (control allowed).
pub const RTPM_FILE_ADMIN: u32 = 1 << 1;
/// Flag of [`RtpmReclaim::flags`]: also take their roles away from the other files.
pub const RTPM_RECLAIM_ROLES: u32 = 1 << 0;

/// Bit of [`RtpmStatus::attached`] (2.1): a socket is attached for RX (socket -> ring).
pub const RTPM_ATTACHED_RX: u32 = 1 << 0;
/// Bit of [`RtpmStatus::attached`] (2.1): a socket is attached for TX (ring -> socket).
pub const RTPM_ATTACHED_TX: u32 = 1 << 1;
/// [`RtpmAttach::direction`] / [`RtpmDetach::direction`] (2.1): socket -> ring, the kernel produces.
/// (0 is invalid, so that a zeroed request attaches nothing.)
pub const RTPM_DIR_RX: u32 = 1;
/// [`RtpmAttach::direction`] / [`RtpmDetach::direction`] (2.1): ring -> socket, the kernel consumes.
pub const RTPM_DIR_TX: u32 = 2;
/// Largest [`RtpmAttach::tx_burst`] (2.1), packets.
pub const RTPM_TX_BURST_MAX: u32 = 1024;
/// Largest [`RtpmClockRate::hz`] (2.1).
pub const RTPM_CLOCK_RATE_MAX: u32 = 10_000_000;
/// Largest [`RtpmWakeup::slots`] (2.1): the largest ring.
pub const RTPM_WAKE_SLOTS_MAX: u32 = 1 << RTPM_RING_ORDER_MAX;
/// Largest [`RtpmWakeup::usecs`] (2.1): one second.
pub const RTPM_WAKE_USECS_MAX: u32 = 1_000_000;

/// `drop_policy`: a full ring refuses the new packet (reserve fails, `overruns` counted).
pub const RTPM_DROP_REJECT_NEWEST: u32 = 0;
/// `drop_policy`: a full ring frees its oldest READY slot (`drops` counted).
pub const RTPM_DROP_OLDEST: u32 = 1;

/// `state`: the channel refuses RESERVE and PUSH with `EPIPE`.
pub const RTPM_STATE_STOPPED: u32 = 0;
/// `state`: the channel moves packets.
pub const RTPM_STATE_RUNNING: u32 = 1;

/// `rtpm_slot_desc.flags`: a valid RTP v2 header was parsed.
pub const RTPM_SLOT_F_RTP: u32 = 1 << 0;
/// `rtpm_slot_desc.flags`: not RTP v2; carried and counted in `malformed`.
pub const RTPM_SLOT_F_MALFORMED: u32 = 1 << 1;
/// `rtpm_slot_desc.flags`: the RTP marker bit.
pub const RTPM_SLOT_F_MARKER: u32 = 1 << 2;
/// Every `RTPM_SLOT_F_*` bit: what RELEASE and CANCEL accept in [`RtpmSlotRef::flags`].
pub const RTPM_SLOT_F_ALL: u32 = RTPM_SLOT_F_RTP | RTPM_SLOT_F_MALFORMED | RTPM_SLOT_F_MARKER;

/// Byte offset of the producer-side index pair (`reserve`, `producer`) in the header page.
pub const RTPM_HEADER_PROD_LINE: u32 = 128;
/// Byte offset of the consumer-side index pair (`consumer`, `release`) in the header page.
pub const RTPM_HEADER_CONS_LINE: u32 = 192;

/// `EBADSLT`: a slot in the wrong state for the operation (not in every libc binding's docs, so
/// named here; the value is the same on every Linux architecture this product targets).
pub const EBADSLT: i32 = libc::EBADSLT;

/// The header page (`struct rtpm_ring_header`), mapped read-only at mmap offset 0.
///
/// Fields up to `prod_off` never change while the ring is mapped. The index words are written by
/// the kernel only, with release semantics; read them with acquire loads at the offsets the header
/// names (`prod_off` ...), never through this struct's fields of a shared mapping.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpmRingHeader {
    /// [`RTPM_MAGIC`].
    pub magic: u32,
    /// [`RTPM_ABI_MAJOR`].
    pub abi_major: u16,
    /// [`RTPM_ABI_MINOR`].
    pub abi_minor: u16,
    /// `size_of::<RtpmRingHeader>()`.
    pub header_size: u32,
    /// N of `/dev/rtp_mgrN`.
    pub channel: u32,
    /// `2^ring_order`.
    pub slot_count: u32,
    /// log2 of `slot_count`.
    pub ring_order: u32,
    /// Usable payload bytes per slot.
    pub slot_payload: u32,
    /// Bytes between payloads, a multiple of [`RTPM_SLOT_ALIGN`].
    pub slot_stride: u32,
    /// `size_of::<RtpmSlotDesc>()`.
    pub desc_size: u32,
    /// `RTPM_DROP_*`.
    pub drop_policy: u32,
    /// Offset of the descriptor table in the meta region.
    pub desc_offset: u64,
    /// Bytes of the meta region at mmap offset 0.
    pub meta_size: u64,
    /// mmap offset of the payload region.
    pub payload_offset: u64,
    /// Bytes of the payload region.
    pub payload_size: u64,
    /// Offset of the producer index word from the start of the page.
    pub prod_off: u32,
    /// Offset of the consumer index word.
    pub cons_off: u32,
    /// Offset of the reserve index word.
    pub reserve_off: u32,
    /// Offset of the release index word.
    pub release_off: u32,
    /// Zero; the index words start at byte 128.
    pub reserved0: [u8; 40],
    /// Next slot to reserve (free-running).
    pub reserve: u32,
    /// Slots before it are READY or done.
    pub producer: u32,
    /// Zero; keeps the consumer pair on its own cache line.
    pub reserved1: [u8; 56],
    /// Next slot to pop.
    pub consumer: u32,
    /// Slots before it are FREE again.
    pub release: u32,
    /// Zero.
    pub reserved2: [u8; 56],
}

/// A slot descriptor (`struct rtpm_slot_desc`), kernel-owned, filled on push.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RtpmSlotDesc {
    /// Payload bytes.
    pub len: u32,
    /// `RTPM_SLOT_F_*`.
    pub flags: u32,
    /// `CLOCK_MONOTONIC` nanoseconds.
    pub arrival_ns: u64,
    /// RTP timestamp (valid with [`RTPM_SLOT_F_RTP`]).
    pub rtp_timestamp: u32,
    /// RTP SSRC.
    pub ssrc: u32,
    /// RTP sequence number.
    pub rtp_seq: u16,
    /// RTP payload type (7 bits).
    pub payload_type: u8,
    /// Zero.
    pub pad0: u8,
    /// Zero.
    pub pad1: u32,
}

/// One slot of a push, pop, reserve, cancel or release request (`struct rtpm_slot_ref`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RtpmSlotRef {
    /// Slot number, `0 .. slot_count`.
    pub index: u32,
    /// PUSH: in, `1 ..= slot_payload`; POP: out; RESERVE: out (`slot_payload`).
    pub len: u32,
    /// PUSH: in (0: the kernel stamps it); POP: out.
    pub arrival_ns: u64,
    /// PUSH: must be zero; POP: out, the descriptor's `RTPM_SLOT_F_*`; RELEASE and CANCEL accept
    /// those bits ([`RTPM_SLOT_F_ALL`]), so popped entries can be handed back as they are.
    pub flags: u32,
    /// Must be zero.
    pub pad: u32,
}

impl RtpmSlotRef {
    /// A request entry naming slot `index` (for PUSH also `len` and `arrival_ns`).
    pub fn new(index: u32, len: u32, arrival_ns: u64) -> RtpmSlotRef {
        RtpmSlotRef { index, len, arrival_ns, flags: 0, pad: 0 }
    }
}

/// A batched request (`struct rtpm_batch`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RtpmBatch {
    /// User pointer to `count` [`RtpmSlotRef`]s.
    pub slots: u64,
    /// In: entries offered or wanted; out: entries done.
    pub count: u32,
    /// Must be zero.
    pub flags: u32,
}

/// CONFIGURE argument (`struct rtpm_config`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RtpmConfig {
    /// [`RTPM_RING_ORDER_MIN`] ..= [`RTPM_RING_ORDER_MAX`].
    pub ring_order: u32,
    /// [`RTPM_SLOT_PAYLOAD_MIN`] ..= [`RTPM_SLOT_PAYLOAD_MAX`].
    pub slot_payload: u32,
    /// `RTPM_DROP_*`.
    pub drop_policy: u32,
    /// Must be zero.
    pub flags: u32,
    /// Must be zero; later 2.x versions give them a meaning.
    pub reserved: [u32; 4],
}

impl RtpmConfig {
    /// A configuration with every reserved field zero.
    pub fn new(ring_order: u32, slot_payload: u32, drop_policy: u32) -> RtpmConfig {
        RtpmConfig { ring_order, slot_payload, drop_policy, flags: 0, reserved: [0; 4] }
    }
}

/// CLAIM argument (`struct rtpm_claim`): this file's roles become exactly `roles`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RtpmClaim {
    /// `RTPM_ROLE_*`; 0 gives every role up.
    pub roles: u32,
    /// Must be zero.
    pub flags: u32,
}

/// RECLAIM argument and result (`struct rtpm_reclaim`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RtpmReclaim {
    /// In: take back slots other files have held at least this long (0: all of them).
    pub min_held_ns: u64,
    /// In: `RTPM_RECLAIM_*`.
    pub flags: u32,
    /// Out: slots returned to FREE.
    pub reclaimed: u32,
}

/// GET_INFO result (`struct rtpm_info`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RtpmInfo {
    /// ABI major version of the module.
    pub abi_major: u16,
    /// ABI minor version of the module.
    pub abi_minor: u16,
    /// This channel's number.
    pub channel: u32,
    /// Channels the module created.
    pub channels: u32,
    /// `RTPM_STATE_*`.
    pub state: u32,
    /// The channel's configuration.
    pub config: RtpmConfig,
    /// `2^ring_order`.
    pub slot_count: u32,
    /// Bytes between payloads.
    pub slot_stride: u32,
    /// `size_of::<RtpmSlotDesc>()`.
    pub desc_size: u32,
    /// `size_of::<RtpmRingHeader>()`.
    pub header_size: u32,
    /// Bytes of the meta region.
    pub meta_size: u64,
    /// mmap offset of the payload region.
    pub payload_offset: u64,
    /// Bytes of the payload region.
    pub payload_size: u64,
    /// The module's per-channel ring ceiling, bytes.
    pub max_ring_bytes: u64,
    /// `RTPM_ROLE_*` this file holds.
    pub file_roles: u32,
    /// `RTPM_FILE_*` of this file.
    pub file_caps: u32,
    /// Zero; later 2.x versions use them.
    pub reserved: [u32; 8],
}

/// GET_STATS result (`struct rtpm_stats`): counters since load or RESET.
///
/// Conservation: `pushed_packets == popped_packets + drops + ready`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RtpmStats {
    /// Slots pushed READY.
    pub pushed_packets: u64,
    /// Bytes pushed.
    pub pushed_bytes: u64,
    /// Slots handed to a consumer.
    pub popped_packets: u64,
    /// Bytes popped.
    pub popped_bytes: u64,
    /// Slots released FREE by their consumer.
    pub released: u64,
    /// READY slots dropped by [`RTPM_DROP_OLDEST`].
    pub drops: u64,
    /// Reserves refused: ring full.
    pub overruns: u64,
    /// Pops that found nothing READY.
    pub underruns: u64,
    /// RTP sequence gaps (packets never seen).
    pub rtp_lost: u64,
    /// RTP packets that arrived late.
    pub rtp_reordered: u64,
    /// RTP sequence numbers seen twice.
    pub rtp_duplicates: u64,
    /// Pushed payloads that are not RTP v2.
    pub malformed: u64,
    /// Owned slots freed because their file closed.
    pub reclaimed: u64,
    /// Rejected slot operations.
    pub illegal_ops: u64,
    /// PRODUCING slots returned FREE by CANCEL.
    pub cancelled: u64,
    /// Operations refused for a missing role or privilege.
    pub denied: u64,
    /// Slots taken back from a holder by RECLAIM.
    pub evicted: u64,
    /// 2.1: datagrams of an attached RX socket above `slot_payload`, dropped.
    pub rx_oversize: u64,
    /// 2.1: datagrams of an attached RX socket that came while the channel was stopped, dropped.
    pub rx_discarded: u64,
    /// 2.1: consumer wake-ups (READY slots handed on under the wake-up rule).
    pub wakeups: u64,
    /// 2.1: slots the kernel sent through its attached TX socket.
    pub tx_sent: u64,
    /// 2.1: slots the attached TX socket refused, released unsent.
    pub tx_errors: u64,
    /// Zero; later 2.x versions use them.
    pub reserved: [u64; 2],
}

/// GET_STATUS result (`struct rtpm_status`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RtpmStatus {
    /// `RTPM_STATE_*`.
    pub state: u32,
    /// Open files on the channel.
    pub openers: u32,
    /// Live mmaps.
    pub mappings: u32,
    /// Slots FREE.
    pub free: u32,
    /// Slots reserved by producers.
    pub producing: u32,
    /// Slots READY.
    pub ready: u32,
    /// Slots popped, not yet released.
    pub consuming: u32,
    /// `RTPM_ROLE_*` held by some file.
    pub claimed: u32,
    /// The ring's reserve index.
    pub reserve: u32,
    /// The ring's producer index.
    pub producer: u32,
    /// The ring's consumer index.
    pub consumer: u32,
    /// The ring's release index.
    pub release: u32,
    /// 2.1: `RTPM_ATTACHED_*`, the directions that have a socket attached.
    pub attached: u32,
    /// Zero.
    pub reserved: [u32; 3],
}

/// ATTACH argument (`struct rtpm_attach`, 2.1): hand a UDP socket to the channel.
///
/// RX: the kernel copies every datagram the socket receives into a slot (softirq context) and
/// makes it READY as PUSH does; the attaching file becomes the producer. TX: the kernel sends
/// every READY slot through the (connected) socket and releases it; the attaching file becomes
/// the consumer. The header's comment has the lifetimes and error numbers.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RtpmAttach {
    /// The socket's file descriptor.
    pub fd: i32,
    /// [`RTPM_DIR_RX`] or [`RTPM_DIR_TX`].
    pub direction: u32,
    /// Must be zero.
    pub flags: u32,
    /// TX: packets per second, 0 = unpaced.
    pub tx_rate_pps: u32,
    /// TX: token bucket depth in packets, 0 = 1.
    pub tx_burst: u32,
    /// Must be zero.
    pub reserved: [u32; 3],
}

/// DETACH argument (`struct rtpm_detach`, 2.1): `ENOENT` if nothing is attached there.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RtpmDetach {
    /// [`RTPM_DIR_RX`] or [`RTPM_DIR_TX`].
    pub direction: u32,
    /// Must be zero.
    pub flags: u32,
    /// Must be zero.
    pub reserved: [u32; 2],
}

/// SET_CLOCK_RATE argument (`struct rtpm_clock_rate`, 2.1): the stream's RTP clock rate, for the
/// interarrival jitter of [`RtpmQuality`]; 0 turns the jitter off.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RtpmClockRate {
    /// 0 or 1 ..= [`RTPM_CLOCK_RATE_MAX`] Hz (90000 video, 48000/8000 audio).
    pub hz: u32,
    /// Must be zero.
    pub flags: u32,
}

/// GET_QUALITY result (`struct rtpm_quality`, 2.1): what an RTCP receiver report carries for the
/// tracked stream, computed in the kernel as RFC 3550 A.1, A.3 and A.8 do.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RtpmQuality {
    /// The stream tracked now; 0 before the first packet.
    pub ssrc: u32,
    /// The clock rate set by SET_CLOCK_RATE, Hz; 0: no jitter.
    pub clock_rate: u32,
    /// Packets of this stream, duplicates included (A.3).
    pub received: u64,
    /// Extended highest sequence number - base + 1 (A.3).
    pub expected: u64,
    /// Cumulative loss, expected - received (negative with duplicates).
    pub lost: i64,
    /// Extended highest sequence number (A.1).
    pub ext_max_seq: u32,
    /// First sequence number of this stream.
    pub base_seq: u32,
    /// Interarrival jitter in timestamp units (A.8).
    pub jitter: u32,
    /// The same in microseconds; 0 without a clock rate.
    pub jitter_us: u32,
    /// New SSRCs after the first.
    pub ssrc_changes: u32,
    /// Longest run of missing sequence numbers.
    pub max_loss_burst: u32,
    /// Zero.
    pub reserved: [u64; 5],
}

/// [`RtpmCapture::flags`] (2.2): the capture file is opened O_NONBLOCK.
pub const RTPM_CAPTURE_F_NONBLOCK: u32 = 1 << 0;
/// Every valid [`RtpmCapture::flags`] bit.
pub const RTPM_CAPTURE_F_ALL: u32 = RTPM_CAPTURE_F_NONBLOCK;
/// [`RtpmCapture::queue_len`] 0 means this many records (2.2).
pub const RTPM_CAPTURE_QUEUE_DEFAULT: u32 = 1024;
/// Largest [`RtpmCapture::queue_len`] (2.2).
pub const RTPM_CAPTURE_QUEUE_MAX: u32 = 65536;
/// Largest queue_len x record size of a capture, bytes (2.2).
pub const RTPM_CAPTURE_BYTES_MAX: u32 = 32 << 20;

/// CAPTURE argument (`struct rtpm_capture`, 2.2): a read-only copy of every packet that becomes
/// READY on the channel, delivered through a new file descriptor (the ioctl's return value).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RtpmCapture {
    /// In: records held for the reader, 0: [`RTPM_CAPTURE_QUEUE_DEFAULT`]; out: the length used.
    pub queue_len: u32,
    /// In: bytes kept of each packet, 0: the ring's slot_payload; out: the snaplen used.
    pub snaplen: u32,
    /// `RTPM_CAPTURE_F_*`.
    pub flags: u32,
    /// Must be zero.
    pub reserved: [u32; 5],
}

/// One record read from a capture file (`struct rtpm_capture_record`, 2.2), followed by `caplen`
/// bytes of the packet and padding to the next multiple of 8.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RtpmCaptureRecord {
    /// The slot's arrival time, CLOCK_MONOTONIC ns.
    pub arrival_ns: u64,
    /// Bytes of the packet.
    pub len: u32,
    /// Bytes that follow: min(len, snaplen).
    pub caplen: u32,
    /// Packets not copied (the reader's queue was full) just before this one; `u32::MAX`: at
    /// least that many.
    pub missed: u32,
    /// The slot descriptor's `RTPM_SLOT_F_*` flags (RTP, malformed, marker).
    pub flags: u32,
}

/// SET_WAKEUP / GET_WAKEUP argument (`struct rtpm_wakeup`, 2.1): when a blocked consumer is woken.
///
/// Once `slots` slots became READY since its last wake-up, or once the oldest of them has waited
/// `usecs` microseconds, or when the ring is full or the channel stops. `slots` 1, `usecs` 0 wakes
/// on every push (2.0's behaviour); `slots` > 1 needs `usecs` > 0 (`EINVAL`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RtpmWakeup {
    /// 1 ..= [`RTPM_WAKE_SLOTS_MAX`].
    pub slots: u32,
    /// 0 ..= [`RTPM_WAKE_USECS_MAX`].
    pub usecs: u32,
    /// Must be zero.
    pub flags: u32,
    /// Must be zero.
    pub reserved: u32,
}

impl Default for RtpmRingHeader {
    fn default() -> Self {
        Self {
            magic: 0,
            abi_major: 0,
            abi_minor: 0,
            header_size: 0,
            channel: 0,
            slot_count: 0,
            ring_order: 0,
            slot_payload: 0,
            slot_stride: 0,
            desc_size: 0,
            drop_policy: 0,
            desc_offset: 0,
            meta_size: 0,
            payload_offset: 0,
            payload_size: 0,
            prod_off: 0,
            cons_off: 0,
            reserve_off: 0,
            release_off: 0,
            reserved0: [0; 40],
            reserve: 0,
            producer: 0,
            reserved1: [0; 56],
            consumer: 0,
            release: 0,
            reserved2: [0; 56],
        }
    }
}

// Compile-time layout checks: they run for every target this crate is built for (the aarch64
// cross build included), so a layout change cannot even compile. tests/layout.rs proves the same
// numbers against the C compiler's view of the header.
const _: () = {
    assert!(size_of::<RtpmRingHeader>() == 256);
    assert!(offset_of!(RtpmRingHeader, reserve) == RTPM_HEADER_PROD_LINE as usize);
    assert!(offset_of!(RtpmRingHeader, consumer) == RTPM_HEADER_CONS_LINE as usize);
    assert!(size_of::<RtpmSlotDesc>() == 32);
    assert!(size_of::<RtpmSlotRef>() == 24);
    assert!(size_of::<RtpmBatch>() == 16);
    assert!(size_of::<RtpmConfig>() == 32);
    assert!(size_of::<RtpmClaim>() == 8);
    assert!(size_of::<RtpmReclaim>() == 16);
    assert!(size_of::<RtpmInfo>() == 136);
    assert!(size_of::<RtpmStats>() == 24 * 8);
    assert!(size_of::<RtpmStatus>() == 64);
    assert!(size_of::<RtpmAttach>() == 32);
    assert!(size_of::<RtpmDetach>() == 16);
    assert!(size_of::<RtpmClockRate>() == 8);
    assert!(size_of::<RtpmQuality>() == 96);
    assert!(size_of::<RtpmWakeup>() == 16);
    assert!(size_of::<RtpmCapture>() == 32);
    assert!(size_of::<RtpmCaptureRecord>() == 24);
};

/// ioctl request numbers, as the C macros `_IO*` compute them (exported for tests and tracing).
// `as u64`: the macros yield the platform's ioctl number type, u64 on 64-bit Linux but u32 on
// 32-bit ARM, where the cast is not a no-op.
#[allow(clippy::unnecessary_cast)]
pub mod request {
    use super::*;
    use nix::{request_code_none, request_code_read, request_code_readwrite, request_code_write};

    /// ioctl type byte of the module, `RTPM_IOC_MAGIC` (ABI 2.x).
    pub const RTPM_IOC_MAGIC: u8 = 0xe7;
    /// ioctl type byte of ABI 1.x (`RTPM_IOC_MAGIC_V1`), which collided with rpmsg.
    pub const RTPM_IOC_MAGIC_V1: u8 = 0xb5;

    /// `RTPM_IOC_GET_INFO`.
    pub const GET_INFO: u64 = request_code_read!(RTPM_IOC_MAGIC, 0x00, size_of::<RtpmInfo>()) as u64;
    /// `RTPM_IOC_CONFIGURE`.
    pub const CONFIGURE: u64 = request_code_write!(RTPM_IOC_MAGIC, 0x01, size_of::<RtpmConfig>()) as u64;
    /// `RTPM_IOC_START`.
    pub const START: u64 = request_code_none!(RTPM_IOC_MAGIC, 0x02) as u64;
    /// `RTPM_IOC_STOP`.
    pub const STOP: u64 = request_code_none!(RTPM_IOC_MAGIC, 0x03) as u64;
    /// `RTPM_IOC_RESET`.
    pub const RESET: u64 = request_code_none!(RTPM_IOC_MAGIC, 0x04) as u64;
    /// `RTPM_IOC_GET_STATS`.
    pub const GET_STATS: u64 = request_code_read!(RTPM_IOC_MAGIC, 0x05, size_of::<RtpmStats>()) as u64;
    /// `RTPM_IOC_GET_STATUS`.
    pub const GET_STATUS: u64 = request_code_read!(RTPM_IOC_MAGIC, 0x06, size_of::<RtpmStatus>()) as u64;
    /// `RTPM_IOC_CLAIM`.
    pub const CLAIM: u64 = request_code_write!(RTPM_IOC_MAGIC, 0x07, size_of::<RtpmClaim>()) as u64;
    /// `RTPM_IOC_RECLAIM`.
    pub const RECLAIM: u64 = request_code_readwrite!(RTPM_IOC_MAGIC, 0x08, size_of::<RtpmReclaim>()) as u64;
    /// `RTPM_IOC_ATTACH` (2.1).
    pub const ATTACH: u64 = request_code_write!(RTPM_IOC_MAGIC, 0x09, size_of::<RtpmAttach>()) as u64;
    /// `RTPM_IOC_DETACH` (2.1).
    pub const DETACH: u64 = request_code_write!(RTPM_IOC_MAGIC, 0x0a, size_of::<RtpmDetach>()) as u64;
    /// `RTPM_IOC_SET_WAKEUP` (2.1).
    pub const SET_WAKEUP: u64 = request_code_write!(RTPM_IOC_MAGIC, 0x0b, size_of::<RtpmWakeup>()) as u64;
    /// `RTPM_IOC_GET_WAKEUP` (2.1).
    pub const GET_WAKEUP: u64 = request_code_read!(RTPM_IOC_MAGIC, 0x0c, size_of::<RtpmWakeup>()) as u64;
    /// `RTPM_IOC_SET_CLOCK_RATE` (2.1).
    pub const SET_CLOCK_RATE: u64 = request_code_write!(RTPM_IOC_MAGIC, 0x0d, size_of::<RtpmClockRate>()) as u64;
    /// `RTPM_IOC_GET_QUALITY` (2.1).
    pub const GET_QUALITY: u64 = request_code_read!(RTPM_IOC_MAGIC, 0x0e, size_of::<RtpmQuality>()) as u64;
    /// `RTPM_IOC_CAPTURE` (2.2).
    pub const CAPTURE: u64 = request_code_readwrite!(RTPM_IOC_MAGIC, 0x0f, size_of::<RtpmCapture>()) as u64;
    /// `RTPM_IOC_PUSH_SLOT`.
    pub const PUSH_SLOT: u64 = request_code_write!(RTPM_IOC_MAGIC, 0x10, size_of::<RtpmSlotRef>()) as u64;
    /// `RTPM_IOC_POP_SLOT`.
    pub const POP_SLOT: u64 = request_code_read!(RTPM_IOC_MAGIC, 0x11, size_of::<RtpmSlotRef>()) as u64;
    /// `RTPM_IOC_RELEASE_SLOT`.
    pub const RELEASE_SLOT: u64 = request_code_write!(RTPM_IOC_MAGIC, 0x12, size_of::<RtpmSlotRef>()) as u64;
    /// `RTPM_IOC_RESERVE_SLOT`.
    pub const RESERVE_SLOT: u64 = request_code_read!(RTPM_IOC_MAGIC, 0x13, size_of::<RtpmSlotRef>()) as u64;
    /// `RTPM_IOC_CANCEL_SLOT`.
    pub const CANCEL_SLOT: u64 = request_code_write!(RTPM_IOC_MAGIC, 0x14, size_of::<RtpmSlotRef>()) as u64;
    /// `RTPM_IOC_RESERVE_BATCH`.
    pub const RESERVE_BATCH: u64 = request_code_readwrite!(RTPM_IOC_MAGIC, 0x20, size_of::<RtpmBatch>()) as u64;
    /// `RTPM_IOC_PUSH_BATCH`.
    pub const PUSH_BATCH: u64 = request_code_readwrite!(RTPM_IOC_MAGIC, 0x21, size_of::<RtpmBatch>()) as u64;
    /// `RTPM_IOC_POP_BATCH`.
    pub const POP_BATCH: u64 = request_code_readwrite!(RTPM_IOC_MAGIC, 0x22, size_of::<RtpmBatch>()) as u64;
    /// `RTPM_IOC_RELEASE_BATCH`.
    pub const RELEASE_BATCH: u64 = request_code_readwrite!(RTPM_IOC_MAGIC, 0x23, size_of::<RtpmBatch>()) as u64;
    /// `RTPM_IOC_CANCEL_BATCH`.
    pub const CANCEL_BATCH: u64 = request_code_readwrite!(RTPM_IOC_MAGIC, 0x24, size_of::<RtpmBatch>()) as u64;
    /// `RTPM_IOC_GET_INFO_V1`: ABI 1.x's GET_INFO (72 bytes), still answered with `abi_major` 2.
    pub const GET_INFO_V1: u64 = request_code_read!(RTPM_IOC_MAGIC_V1, 0x00, 72) as u64;

    /// Every request number with its C macro name, for the layout test and diagnostics.
    pub const ALL: [(&str, u64); 27] = [
        ("RTPM_IOC_GET_INFO", GET_INFO),
        ("RTPM_IOC_CONFIGURE", CONFIGURE),
        ("RTPM_IOC_START", START),
        ("RTPM_IOC_STOP", STOP),
        ("RTPM_IOC_RESET", RESET),
        ("RTPM_IOC_GET_STATS", GET_STATS),
        ("RTPM_IOC_GET_STATUS", GET_STATUS),
        ("RTPM_IOC_PUSH_SLOT", PUSH_SLOT),
        ("RTPM_IOC_POP_SLOT", POP_SLOT),
        ("RTPM_IOC_RELEASE_SLOT", RELEASE_SLOT),
        ("RTPM_IOC_RESERVE_SLOT", RESERVE_SLOT),
        ("RTPM_IOC_RESERVE_BATCH", RESERVE_BATCH),
        ("RTPM_IOC_PUSH_BATCH", PUSH_BATCH),
        ("RTPM_IOC_POP_BATCH", POP_BATCH),
        ("RTPM_IOC_RELEASE_BATCH", RELEASE_BATCH),
        ("RTPM_IOC_CLAIM", CLAIM),
        ("RTPM_IOC_RECLAIM", RECLAIM),
        ("RTPM_IOC_CANCEL_SLOT", CANCEL_SLOT),
        ("RTPM_IOC_CANCEL_BATCH", CANCEL_BATCH),
        ("RTPM_IOC_GET_INFO_V1", GET_INFO_V1),
        ("RTPM_IOC_ATTACH", ATTACH),
        ("RTPM_IOC_DETACH", DETACH),
        ("RTPM_IOC_SET_WAKEUP", SET_WAKEUP),
        ("RTPM_IOC_GET_WAKEUP", GET_WAKEUP),
        ("RTPM_IOC_SET_CLOCK_RATE", SET_CLOCK_RATE),
        ("RTPM_IOC_GET_QUALITY", GET_QUALITY),
        ("RTPM_IOC_CAPTURE", CAPTURE),
    ];
}

/// The raw nix ioctl functions, kept private: the safe wrappers in [`ioctl`] are the interface.
mod raw {
    use super::request::RTPM_IOC_MAGIC;
    use super::*;

    // Numbers and directions follow include/rtp_mgr_ioctl.h one to one.
    nix::ioctl_read!(
        /// `RTPM_IOC_GET_INFO`
        get_info, RTPM_IOC_MAGIC, 0x00, RtpmInfo);
    nix::ioctl_write_ptr!(
        /// `RTPM_IOC_CONFIGURE`
        configure, RTPM_IOC_MAGIC, 0x01, RtpmConfig);
    nix::ioctl_none!(
        /// `RTPM_IOC_START`
        start, RTPM_IOC_MAGIC, 0x02);
    nix::ioctl_none!(
        /// `RTPM_IOC_STOP`
        stop, RTPM_IOC_MAGIC, 0x03);
    nix::ioctl_none!(
        /// `RTPM_IOC_RESET`
        reset, RTPM_IOC_MAGIC, 0x04);
    nix::ioctl_read!(
        /// `RTPM_IOC_GET_STATS`
        get_stats, RTPM_IOC_MAGIC, 0x05, RtpmStats);
    nix::ioctl_read!(
        /// `RTPM_IOC_GET_STATUS`
        get_status, RTPM_IOC_MAGIC, 0x06, RtpmStatus);
    nix::ioctl_write_ptr!(
        /// `RTPM_IOC_CLAIM`
        claim, RTPM_IOC_MAGIC, 0x07, RtpmClaim);
    nix::ioctl_readwrite!(
        /// `RTPM_IOC_RECLAIM`
        reclaim, RTPM_IOC_MAGIC, 0x08, RtpmReclaim);
    nix::ioctl_write_ptr!(
        /// `RTPM_IOC_ATTACH`
        attach, RTPM_IOC_MAGIC, 0x09, RtpmAttach);
    nix::ioctl_write_ptr!(
        /// `RTPM_IOC_DETACH`
        detach, RTPM_IOC_MAGIC, 0x0a, RtpmDetach);
    nix::ioctl_write_ptr!(
        /// `RTPM_IOC_SET_WAKEUP`
        set_wakeup, RTPM_IOC_MAGIC, 0x0b, RtpmWakeup);
    nix::ioctl_read!(
        /// `RTPM_IOC_GET_WAKEUP`
        get_wakeup, RTPM_IOC_MAGIC, 0x0c, RtpmWakeup);
    nix::ioctl_write_ptr!(
        /// `RTPM_IOC_SET_CLOCK_RATE`
        set_clock_rate, RTPM_IOC_MAGIC, 0x0d, RtpmClockRate);
    nix::ioctl_read!(
        /// `RTPM_IOC_GET_QUALITY`
        get_quality, RTPM_IOC_MAGIC, 0x0e, RtpmQuality);
    nix::ioctl_readwrite!(
        /// `RTPM_IOC_CAPTURE`
        capture, RTPM_IOC_MAGIC, 0x0f, RtpmCapture);
    nix::ioctl_write_ptr!(
        /// `RTPM_IOC_CANCEL_SLOT`
        cancel_slot, RTPM_IOC_MAGIC, 0x14, RtpmSlotRef);
    nix::ioctl_readwrite!(
        /// `RTPM_IOC_CANCEL_BATCH`
        cancel_batch, RTPM_IOC_MAGIC, 0x24, RtpmBatch);
    nix::ioctl_write_ptr!(
        /// `RTPM_IOC_PUSH_SLOT`
        push_slot, RTPM_IOC_MAGIC, 0x10, RtpmSlotRef);
    nix::ioctl_read!(
        /// `RTPM_IOC_POP_SLOT`
        pop_slot, RTPM_IOC_MAGIC, 0x11, RtpmSlotRef);
    nix::ioctl_write_ptr!(
        /// `RTPM_IOC_RELEASE_SLOT`
        release_slot, RTPM_IOC_MAGIC, 0x12, RtpmSlotRef);
    nix::ioctl_read!(
        /// `RTPM_IOC_RESERVE_SLOT`
        reserve_slot, RTPM_IOC_MAGIC, 0x13, RtpmSlotRef);
    nix::ioctl_readwrite!(
        /// `RTPM_IOC_RESERVE_BATCH`
        reserve_batch, RTPM_IOC_MAGIC, 0x20, RtpmBatch);
    nix::ioctl_readwrite!(
        /// `RTPM_IOC_PUSH_BATCH`
        push_batch, RTPM_IOC_MAGIC, 0x21, RtpmBatch);
    nix::ioctl_readwrite!(
        /// `RTPM_IOC_POP_BATCH`
        pop_batch, RTPM_IOC_MAGIC, 0x22, RtpmBatch);
    nix::ioctl_readwrite!(
        /// `RTPM_IOC_RELEASE_BATCH`
        release_batch, RTPM_IOC_MAGIC, 0x23, RtpmBatch);
}

/// Safe wrappers of the `rtp_mgr` ioctls.
///
/// Each takes a borrowed file descriptor of an opened `/dev/rtp_mgrN` and returns the kernel's
/// errno unchanged (see the header for their meaning). They are safe because every pointer handed
/// to the kernel comes from a live Rust reference or slice of exactly the size the request number
/// encodes, and the batch count never exceeds the slice. On a file of another driver they fail
/// with `ENOTTY` (the request numbers carry the module's type byte 0xe7 and the size).
pub mod ioctl {
    use super::*;
    use nix::errno::Errno;
    use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

    /// `RTPM_IOC_GET_INFO`: ABI version, layout and configuration.
    pub fn get_info(fd: BorrowedFd<'_>) -> nix::Result<RtpmInfo> {
        let mut out = RtpmInfo::default();
        // SAFETY: `out` is a valid, writable RtpmInfo for the duration of the call.
        unsafe { raw::get_info(fd.as_raw_fd(), &mut out) }?;
        Ok(out)
    }

    /// `RTPM_IOC_CONFIGURE`: only while stopped and unmapped (`EBUSY`).
    pub fn configure(fd: BorrowedFd<'_>, config: &RtpmConfig) -> nix::Result<()> {
        // SAFETY: `config` is a valid RtpmConfig the kernel only reads.
        unsafe { raw::configure(fd.as_raw_fd(), config) }.map(drop)
    }

    /// `RTPM_IOC_START`.
    pub fn start(fd: BorrowedFd<'_>) -> nix::Result<()> {
        // SAFETY: the request carries no argument.
        unsafe { raw::start(fd.as_raw_fd()) }.map(drop)
    }

    /// `RTPM_IOC_STOP`.
    pub fn stop(fd: BorrowedFd<'_>) -> nix::Result<()> {
        // SAFETY: the request carries no argument.
        unsafe { raw::stop(fd.as_raw_fd()) }.map(drop)
    }

    /// `RTPM_IOC_RESET`: `EBUSY` while running or while slots are owned.
    pub fn reset(fd: BorrowedFd<'_>) -> nix::Result<()> {
        // SAFETY: the request carries no argument.
        unsafe { raw::reset(fd.as_raw_fd()) }.map(drop)
    }

    /// `RTPM_IOC_GET_STATS`.
    pub fn get_stats(fd: BorrowedFd<'_>) -> nix::Result<RtpmStats> {
        let mut out = RtpmStats::default();
        // SAFETY: `out` is a valid, writable RtpmStats for the duration of the call.
        unsafe { raw::get_stats(fd.as_raw_fd(), &mut out) }?;
        Ok(out)
    }

    /// `RTPM_IOC_GET_STATUS`.
    pub fn get_status(fd: BorrowedFd<'_>) -> nix::Result<RtpmStatus> {
        let mut out = RtpmStatus::default();
        // SAFETY: `out` is a valid, writable RtpmStatus for the duration of the call.
        unsafe { raw::get_status(fd.as_raw_fd(), &mut out) }?;
        Ok(out)
    }

    /// `RTPM_IOC_PUSH_SLOT`: push one slot (reserving the next FREE one implicitly).
    pub fn push_slot(fd: BorrowedFd<'_>, slot: &RtpmSlotRef) -> nix::Result<()> {
        // SAFETY: `slot` is a valid RtpmSlotRef the kernel only reads.
        unsafe { raw::push_slot(fd.as_raw_fd(), slot) }.map(drop)
    }

    /// `RTPM_IOC_POP_SLOT`: pop the oldest READY slot.
    pub fn pop_slot(fd: BorrowedFd<'_>) -> nix::Result<RtpmSlotRef> {
        let mut out = RtpmSlotRef::default();
        // SAFETY: `out` is a valid, writable RtpmSlotRef for the duration of the call.
        unsafe { raw::pop_slot(fd.as_raw_fd(), &mut out) }?;
        Ok(out)
    }

    /// `RTPM_IOC_RELEASE_SLOT`: give a popped slot back.
    pub fn release_slot(fd: BorrowedFd<'_>, slot: &RtpmSlotRef) -> nix::Result<()> {
        // SAFETY: `slot` is a valid RtpmSlotRef the kernel only reads.
        unsafe { raw::release_slot(fd.as_raw_fd(), slot) }.map(drop)
    }

    /// `RTPM_IOC_RESERVE_SLOT`: reserve the next FREE slot.
    pub fn reserve_slot(fd: BorrowedFd<'_>) -> nix::Result<RtpmSlotRef> {
        let mut out = RtpmSlotRef::default();
        // SAFETY: `out` is a valid, writable RtpmSlotRef for the duration of the call.
        unsafe { raw::reserve_slot(fd.as_raw_fd(), &mut out) }?;
        Ok(out)
    }

    /// `RTPM_IOC_CLAIM`: this file's roles become exactly `roles` (`EBUSY` if another file
    /// holds one of them).
    pub fn claim(fd: BorrowedFd<'_>, roles: u32) -> nix::Result<()> {
        let c = RtpmClaim { roles, flags: 0 };
        // SAFETY: `c` is a valid RtpmClaim the kernel only reads.
        unsafe { raw::claim(fd.as_raw_fd(), &c) }.map(drop)
    }

    /// `RTPM_IOC_RECLAIM` (`CAP_NET_ADMIN`): take back slots other files have held at least
    /// `min_held_ns` (and with [`RTPM_RECLAIM_ROLES`] in `flags` their roles); returns how many
    /// slots.
    pub fn reclaim(fd: BorrowedFd<'_>, min_held_ns: u64, flags: u32) -> nix::Result<u32> {
        let mut r = RtpmReclaim { min_held_ns, flags, reclaimed: 0 };
        // SAFETY: `r` is a valid, writable RtpmReclaim for the duration of the call.
        unsafe { raw::reclaim(fd.as_raw_fd(), &mut r) }?;
        Ok(r.reclaimed)
    }

    /// `RTPM_IOC_ATTACH` (2.1): hand the UDP socket `sock` to the channel `fd` for `direction`
    /// ([`RTPM_DIR_RX`] or [`RTPM_DIR_TX`]) with TX pacing `tx_rate_pps`/`tx_burst` (`EPERM` role
    /// held elsewhere, `EBUSY` already attached or the socket has another in-kernel receiver,
    /// `ENOTCONN` unconnected TX socket, `ENOTSOCK`, `EPROTONOSUPPORT` not UDP). The socket is
    /// borrowed, never a bare number: handing the kernel a descriptor the caller does not own
    /// would let safe code take over another component's socket.
    pub fn attach(
        fd: BorrowedFd<'_>,
        sock: BorrowedFd<'_>,
        direction: u32,
        tx_rate_pps: u32,
        tx_burst: u32,
    ) -> nix::Result<()> {
        let req = RtpmAttach { fd: sock.as_raw_fd(), direction, tx_rate_pps, tx_burst, ..Default::default() };
        // SAFETY: `req` is a valid RtpmAttach the kernel only reads; the fd it names is borrowed
        // from the caller for the duration of the call.
        unsafe { raw::attach(fd.as_raw_fd(), &req) }.map(drop)
    }

    /// `RTPM_IOC_DETACH` (2.1): `ENOENT` if no socket is attached in `direction`.
    pub fn detach(fd: BorrowedFd<'_>, direction: u32) -> nix::Result<()> {
        let d = RtpmDetach { direction, ..Default::default() };
        // SAFETY: `d` is a valid RtpmDetach the kernel only reads.
        unsafe { raw::detach(fd.as_raw_fd(), &d) }.map(drop)
    }

    /// `RTPM_IOC_SET_WAKEUP` (2.1): the consumer wake-up rule (`EINVAL` out of range or
    /// `slots` > 1 with `usecs` 0; `EPERM` neither administrator nor role holder).
    pub fn set_wakeup(fd: BorrowedFd<'_>, slots: u32, usecs: u32) -> nix::Result<()> {
        let w = RtpmWakeup { slots, usecs, flags: 0, reserved: 0 };
        // SAFETY: `w` is a valid RtpmWakeup the kernel only reads.
        unsafe { raw::set_wakeup(fd.as_raw_fd(), &w) }.map(drop)
    }

    /// `RTPM_IOC_GET_WAKEUP` (2.1): the consumer wake-up rule in force.
    pub fn get_wakeup(fd: BorrowedFd<'_>) -> nix::Result<RtpmWakeup> {
        let mut out = RtpmWakeup::default();
        // SAFETY: `out` is a valid, writable RtpmWakeup for the duration of the call.
        unsafe { raw::get_wakeup(fd.as_raw_fd(), &mut out) }?;
        Ok(out)
    }

    /// `RTPM_IOC_SET_CLOCK_RATE` (2.1): the stream's RTP clock rate for the jitter (`EINVAL`
    /// above [`RTPM_CLOCK_RATE_MAX`]; `EPERM` neither administrator nor role holder).
    pub fn set_clock_rate(fd: BorrowedFd<'_>, hz: u32) -> nix::Result<()> {
        let c = RtpmClockRate { hz, flags: 0 };
        // SAFETY: `c` is a valid RtpmClockRate the kernel only reads.
        unsafe { raw::set_clock_rate(fd.as_raw_fd(), &c) }.map(drop)
    }

    /// `RTPM_IOC_GET_QUALITY` (2.1): RFC 3550 receiver-report numbers of the tracked stream.
    pub fn get_quality(fd: BorrowedFd<'_>) -> nix::Result<RtpmQuality> {
        let mut out = RtpmQuality::default();
        // SAFETY: `out` is a valid, writable RtpmQuality for the duration of the call.
        unsafe { raw::get_quality(fd.as_raw_fd(), &mut out) }?;
        Ok(out)
    }

    /// `RTPM_IOC_CAPTURE` (2.2): start a capture of the channel (needs a file opened for
    /// writing); the result owns the new capture file (read-only, close-on-exec), whose `read()`
    /// returns [`RtpmCaptureRecord`]s. `req` gets the queue length and snaplen used.
    ///
    /// # Errors
    /// The ioctl's errno; `EPROTO` if `fd` answered the request number with something that is
    /// not a new rtp_mgr capture file (it is not an rtp_mgr 2.2 device: a FUSE or CUSE file can
    /// return any number), which is then left alone rather than owned.
    pub fn capture(fd: BorrowedFd<'_>, req: &mut RtpmCapture) -> nix::Result<OwnedFd> {
        // SAFETY: `req` is a valid, writable RtpmCapture for the duration of the call.
        let raw = unsafe { raw::capture(fd.as_raw_fd(), req) }?;
        if !is_capture_file(raw) {
            return Err(Errno::EPROTO);
        }
        // SAFETY: `raw` is open and is an rtp_mgr capture file, which only this ioctl creates,
        // and only as a new descriptor of the caller: nothing else owns it.
        Ok(unsafe { OwnedFd::from_raw_fd(raw) })
    }

    /// Name of the capture file's anonymous inode (kernel/rtp_mgr_capture.c).
    pub const CAPTURE_FILE_NAME: &str = "anon_inode:[rtp_mgr_capture]";

    /// True if `raw` is an open descriptor of an rtp_mgr capture file, by its /proc link: a
    /// number returned by an ioctl is only taken into ownership once it is known to be one.
    pub fn is_capture_file(raw: std::os::fd::RawFd) -> bool {
        raw >= 0
            && std::fs::read_link(format!("/proc/self/fd/{raw}"))
                .is_ok_and(|target| target.as_os_str() == CAPTURE_FILE_NAME)
    }

    /// `RTPM_IOC_CANCEL_SLOT`: give an unpushed reservation back.
    pub fn cancel_slot(fd: BorrowedFd<'_>, slot: &RtpmSlotRef) -> nix::Result<()> {
        // SAFETY: `slot` is a valid RtpmSlotRef the kernel only reads.
        unsafe { raw::cancel_slot(fd.as_raw_fd(), slot) }.map(drop)
    }

    /// Which batched operation [`batch`] performs.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum BatchOp {
        /// `RTPM_IOC_RESERVE_BATCH`: fills `index` and `len`.
        Reserve,
        /// `RTPM_IOC_PUSH_BATCH`: reads `index`, `len`, `arrival_ns`.
        Push,
        /// `RTPM_IOC_POP_BATCH`: fills every field.
        Pop,
        /// `RTPM_IOC_RELEASE_BATCH`: reads `index`.
        Release,
        /// `RTPM_IOC_CANCEL_BATCH`: reads `index`.
        Cancel,
    }

    /// A batched ioctl over `slots`; returns the entries done (processed in order; the call stops
    /// at the first failing entry and fails only if the very first one fails).
    ///
    /// `slots.len()` above [`RTPM_BATCH_MAX`] is passed through so that the kernel answers
    /// `E2BIG` itself; lengths beyond `u32::MAX` are refused here with `E2BIG`.
    pub fn batch(fd: BorrowedFd<'_>, op: BatchOp, slots: &mut [RtpmSlotRef]) -> nix::Result<usize> {
        let count = u32::try_from(slots.len()).map_err(|_| Errno::E2BIG)?;
        let mut req = RtpmBatch { slots: slots.as_mut_ptr() as u64, count, flags: 0 };
        let raw = fd.as_raw_fd();
        // SAFETY: `req` is a valid RtpmBatch; its `slots` points to `count` initialised,
        // writable RtpmSlotRef entries that live until the call returns, and the kernel touches
        // at most `count` of them.
        unsafe {
            match op {
                BatchOp::Reserve => raw::reserve_batch(raw, &mut req),
                BatchOp::Push => raw::push_batch(raw, &mut req),
                BatchOp::Pop => raw::pop_batch(raw, &mut req),
                BatchOp::Release => raw::release_batch(raw, &mut req),
                BatchOp::Cancel => raw::cancel_batch(raw, &mut req),
            }
        }?;
        // The kernel reports entries done; never trust it beyond what we offered.
        Ok((req.count as usize).min(slots.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a driver that is not rtp_mgr could return for CAPTURE is never taken for a capture
    /// file: stdin and stderr (0, 2), a negative number, an unused number, an ordinary open file.
    #[test]
    #[cfg_attr(miri, ignore = "reads /proc/self/fd, which Miri cannot")]
    fn only_a_capture_file_is_taken_into_ownership() {
        use std::os::fd::AsRawFd;
        let file = std::fs::File::open("/proc/self/stat").unwrap();
        for raw in [0, 2, -1, -5000, 1 << 20, file.as_raw_fd()] {
            assert!(!ioctl::is_capture_file(raw), "fd {raw} taken for a capture file");
        }
        // The check compares the whole link target, not a prefix.
        assert_eq!(ioctl::CAPTURE_FILE_NAME, "anon_inode:[rtp_mgr_capture]");
    }

    #[test]
    fn request_numbers_encode_direction_type_nr_and_size() {
        // _IOR(0xe7, 0x00, 136 bytes) on the generic ioctl encoding (x86_64 and arm64 share it).
        assert_eq!(request::GET_INFO, (2 << 30) | (136 << 16) | (0xe7 << 8));
        assert_eq!(request::START, (0xe7 << 8) | 0x02);
        assert_eq!(request::RELEASE_BATCH, (3 << 30) | (16 << 16) | (0xe7 << 8) | 0x23);
        // ABI 1.x's GET_INFO, still answered so that old programs can say what is wrong.
        assert_eq!(request::GET_INFO_V1, (2 << 30) | (72 << 16) | (0xb5 << 8));
        // 2.1: ATTACH is _IOW(0xe7, 0x09, 32 bytes), GET_WAKEUP _IOR(0xe7, 0x0c, 16 bytes).
        assert_eq!(request::ATTACH, (1 << 30) | (32 << 16) | (0xe7 << 8) | 0x09);
        assert_eq!(request::GET_WAKEUP, (2 << 30) | (16 << 16) | (0xe7 << 8) | 0x0c);
    }

    #[test]
    fn abi2_magic_does_not_collide_with_rpmsg() {
        // RPMSG_DESTROY_EPT_IOCTL is _IO(0xb5, 0x2): ABI 1.0's START had the same number.
        let rpmsg_destroy_ept: u64 = 0xb5 << 8 | 0x2;
        assert!(request::ALL.iter().filter(|(n, _)| !n.ends_with("_V1")).all(|(_, v)| *v != rpmsg_destroy_ept));
        assert!(request::ALL.iter().filter(|(n, _)| !n.ends_with("_V1")).all(|(_, v)| (v >> 8) & 0xff == 0xe7));
    }

    #[test]
    fn non_device_fd_gets_enotty() {
        let f = std::fs::File::open("/dev/null").unwrap();
        use std::os::fd::AsFd;
        assert_eq!(ioctl::get_info(f.as_fd()).unwrap_err(), nix::errno::Errno::ENOTTY);
    }
}

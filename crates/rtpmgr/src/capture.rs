//! ABI 2.2: CAPTURE, a read-only copy of every packet that becomes READY on a channel, for pcap
//! tools that must observe a channel without taking packets from its consumer.
//!
//! The kernel copies each packet, where its slot becomes READY, into a bounded queue of the
//! capture file; the consumer's slots, counters and wake-ups are untouched. A reader that falls
//! behind loses its copies, never the stream's packets: the next record says how many it missed.
//! `read(2)` of the capture file returns whole records (see [`parse_records`] for the format).
//!
//! ```no_run
//! use rtpmgr::{Backend, CaptureOptions, Channel};
//! use std::time::Duration;
//!
//! let ch = Channel::open(&Backend::kernel(0))?;
//! let mut cap = ch.capture(&CaptureOptions::default())?;
//! while cap.wait(Some(Duration::from_secs(1)))? {
//!     for pkt in cap.read_records()? {
//!         let pkt = pkt?;
//!         println!("{} ns: {} bytes (missed {} before it)", pkt.arrival_ns, pkt.len, pkt.missed);
//!     }
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::error::{Context, Error, Result};
use crate::{Channel, Dev};
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use rtpmgr_abi::{RtpmCapture, RTPM_CAPTURE_F_NONBLOCK, RTPM_CAPTURE_QUEUE_MAX, RTPM_SLOT_PAYLOAD_MAX};
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::Duration;

/// Bytes of `struct rtpm_capture_record` before the packet bytes.
pub const RECORD_HEADER_LEN: usize = std::mem::size_of::<rtpmgr_abi::RtpmCaptureRecord>();

/// What a shm ring answers: it has no kernel that could copy packets as they become READY.
pub const NEEDS_KERNEL: &str = "capture needs the rtp_mgr kernel module (ABI 2.2)";

/// Size of the read buffer of a [`Capture`]: many records per `read(2)` at small snaplens, and
/// always at least one record of the largest snaplen.
const READ_BUF_MIN: usize = 256 * 1024;

/// Options of [`Channel::capture`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CaptureOptions {
    /// Records the kernel holds for the reader (0: the module's default, 1024); at most
    /// `RTPM_CAPTURE_QUEUE_MAX`, and queue × record size at most `RTPM_CAPTURE_BYTES_MAX`.
    pub queue_len: u32,
    /// Bytes kept of each packet (0: the channel's slot_payload, i.e. all of it).
    pub snaplen: u32,
    /// `read_records` answers at once with no records instead of blocking.
    pub nonblocking: bool,
}

/// One captured packet: a view into the [`Capture`]'s read buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapturedPacket<'a> {
    /// The slot's arrival time, `CLOCK_MONOTONIC` ns (see [`crate::monotonic_ns`]).
    pub arrival_ns: u64,
    /// Bytes of the packet as it was in the ring.
    pub len: u32,
    /// Packets the capture missed (its queue was full) just before this one; `u32::MAX`: at
    /// least that many.
    pub missed: u32,
    /// The slot descriptor's `RTPM_SLOT_F_*` flags (RTP, malformed, marker).
    pub flags: u32,
    /// The first `min(len, snaplen)` bytes of the packet.
    pub data: &'a [u8],
}

/// A capture record that breaks the format: a module that is not the one this library speaks,
/// or memory corruption. Parsing stops at the first one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// Fewer bytes are left than the record's header, or its header says more than are left.
    #[error("capture record at byte {offset} is truncated: it needs {need} bytes, {have} are left")]
    Truncated {
        /// Where the record starts in the buffer.
        offset: usize,
        /// Bytes the record needs (header, caplen, padding).
        need: usize,
        /// Bytes left in the buffer from `offset`.
        have: usize,
    },
    /// `caplen` is more than the packet's `len`, or more than the capture's snaplen.
    #[error("capture record at byte {offset} has caplen {caplen} above its len {len} or the snaplen {snaplen}")]
    BadCaplen {
        /// Where the record starts.
        offset: usize,
        /// Bytes it claims to carry.
        caplen: u32,
        /// Bytes of the packet.
        len: u32,
        /// The most a record of this capture may carry.
        snaplen: u32,
    },
}

/// The bytes a record with `caplen` packet bytes takes in a read buffer: header, data, padding
/// to the next multiple of 8.
pub fn record_size(caplen: u32) -> usize {
    // In u64: on a 32-bit target a hostile caplen near u32::MAX must not wrap to a small size.
    let size = (RECORD_HEADER_LEN as u64 + u64::from(caplen)).next_multiple_of(8);
    usize::try_from(size).unwrap_or(usize::MAX)
}

/// Encodes one record as the kernel writes it (native byte order), for tests and tools that
/// replay captures: `data` is the captured part, `len` the packet's length.
pub fn encode_record(arrival_ns: u64, len: u32, missed: u32, flags: u32, data: &[u8]) -> Vec<u8> {
    let caplen = u32::try_from(data.len()).expect("a record carries at most 4 GiB");
    let mut out = Vec::with_capacity(record_size(caplen));
    out.extend_from_slice(&arrival_ns.to_ne_bytes());
    out.extend_from_slice(&len.to_ne_bytes());
    out.extend_from_slice(&caplen.to_ne_bytes());
    out.extend_from_slice(&missed.to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(data);
    out.resize(record_size(caplen), 0);
    out
}

/// The records in `buf`, what one `read(2)` of a capture file returned: each is
/// `struct rtpm_capture_record` {arrival_ns u64, len u32, caplen u32, missed u32, flags u32},
/// then `caplen` bytes of the packet, then padding to the next multiple of 8. Every length is
/// checked against the buffer and against `snaplen` (`u32::MAX`: no limit) before it is used;
/// the first malformed record yields an error and ends the iteration.
pub fn parse_records(buf: &[u8], snaplen: u32) -> Records<'_> {
    Records { buf, offset: 0, snaplen, failed: false }
}

/// Iterator over the records of one read, from [`parse_records`] or [`Capture::read_records`].
#[derive(Debug, Clone)]
pub struct Records<'a> {
    buf: &'a [u8],
    offset: usize,
    snaplen: u32,
    failed: bool,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

impl<'a> Records<'a> {
    fn parse_one(&self) -> Result<(CapturedPacket<'a>, usize), RecordError> {
        let offset = self.offset;
        let rest = &self.buf[offset..];
        if rest.len() < RECORD_HEADER_LEN {
            return Err(RecordError::Truncated { offset, need: RECORD_HEADER_LEN, have: rest.len() });
        }
        let arrival_ns = u64::from_ne_bytes(rest[0..8].try_into().expect("8 bytes"));
        let (len, caplen, missed, flags) = (u32_at(rest, 8), u32_at(rest, 12), u32_at(rest, 16), u32_at(rest, 20));
        if caplen > len || caplen > self.snaplen {
            return Err(RecordError::BadCaplen { offset, caplen, len, snaplen: self.snaplen });
        }
        let size = record_size(caplen);
        if size > rest.len() {
            return Err(RecordError::Truncated { offset, need: size, have: rest.len() });
        }
        let data = &rest[RECORD_HEADER_LEN..RECORD_HEADER_LEN + caplen as usize];
        Ok((CapturedPacket { arrival_ns, len, missed, flags, data }, size))
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<CapturedPacket<'a>, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.offset >= self.buf.len() {
            return None;
        }
        match self.parse_one() {
            Ok((pkt, size)) => {
                self.offset += size;
                Some(Ok(pkt))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

impl std::iter::FusedIterator for Records<'_> {}

/// A capture of one channel: owns the capture file the kernel made, and the buffer records are
/// read into. Dropping it ends the capture (another may start).
#[derive(Debug)]
pub struct Capture {
    file: File,
    name: String,
    snaplen: u32,
    queue_len: u32,
    buf: Vec<u8>,
    filled: usize,
}

impl Capture {
    /// Bytes kept of each packet (the request's snaplen, or the channel's slot_payload).
    pub fn snaplen(&self) -> u32 {
        self.snaplen
    }

    /// Records the kernel holds for this capture (the request's, or the module's default).
    pub fn queue_len(&self) -> u32 {
        self.queue_len
    }

    /// Waits until a record is queued (`POLLIN`), at most `timeout` (None: forever). Returns
    /// false on timeout, or when a signal handler ran meanwhile (the caller looks at its flag).
    pub fn wait(&self, timeout: Option<Duration>) -> Result<bool> {
        let ms = match timeout {
            None => PollTimeout::NONE,
            // Round up: a 100 µs timeout must not become a busy 0 ms poll loop.
            Some(t) => PollTimeout::try_from(t.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32)
                .unwrap_or(PollTimeout::MAX),
        };
        let mut fds = [PollFd::new(self.file.as_fd(), PollFlags::POLLIN)];
        match nix::poll::poll(&mut fds, ms) {
            Ok(0) | Err(Errno::EINTR) => Ok(false),
            Ok(_) => {
                let re = fds[0].revents().unwrap_or(PollFlags::empty());
                if re.intersects(PollFlags::POLLERR | PollFlags::POLLNVAL) {
                    return Err(Error::sys(format!("poll capture of {}", self.name), Errno::EIO));
                }
                Ok(re.contains(PollFlags::POLLIN))
            }
            Err(e) => Err(Error::sys(format!("poll capture of {}", self.name), e)),
        }
    }

    /// One `read(2)` of the capture file: the records it returned, as many as fit the buffer.
    /// A blocking capture waits for the first record; a non-blocking one (and any capture whose
    /// read a signal handler interrupted) returns no records when none is queued.
    ///
    /// # Errors
    /// The read's errno ([`Error::Sys`]). The iterator yields a [`RecordError`] for a record the
    /// kernel wrote malformed, and ends there.
    pub fn read_records(&mut self) -> Result<Records<'_>> {
        self.filled = match self.file.read(&mut self.buf) {
            Ok(n) => n,
            Err(e) if matches!(e.raw_os_error().map(Errno::from_raw), Some(Errno::EAGAIN | Errno::EINTR)) => 0,
            Err(e) => return Err(e).context(|| format!("read capture of {}", self.name)),
        };
        Ok(parse_records(&self.buf[..self.filled], self.snaplen))
    }
}

impl AsFd for Capture {
    /// The capture file, e.g. to poll it together with other descriptors.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

fn capture_reason(e: Errno) -> Option<String> {
    Some(match e {
        Errno::EBADF => "the channel was opened read-only; a capture needs it opened for writing".into(),
        Errno::EBUSY => "the channel already has a capture (another rtp_app capture?); one at a time".into(),
        Errno::EINVAL => format!(
            "invalid request: snaplen at most {RTPM_SLOT_PAYLOAD_MAX}, queue at most {RTPM_CAPTURE_QUEUE_MAX} \
             records and queue x (snaplen + 24) at most 32 MiB"
        ),
        Errno::ENOTTY => "the loaded rtp_mgr module predates ABI 2.2 (no CAPTURE): load the module built from \
                          this release"
            .into(),
        _ => return None,
    })
}

impl Channel {
    /// CAPTURE (ABI 2.2): starts a capture of this channel. From now on every packet that
    /// becomes READY (pushed, or received by an attached socket) is also copied into the
    /// capture's bounded queue, without changing anything the channel's producer or consumer see.
    ///
    /// # Errors
    /// [`Error::Unsupported`] on a shm ring ([`NEEDS_KERNEL`]); [`Error::Refused`] with the
    /// reason for `EBUSY` (the channel has a capture), `EINVAL` (limits) and `ENOTTY` (a module
    /// older than ABI 2.2).
    pub fn capture(&self, opts: &CaptureOptions) -> Result<Capture> {
        let what = "capture";
        let k = match &self.inner.dev {
            Dev::Kernel(k) => k,
            Dev::Shm(_) => {
                return Err(Error::Unsupported { context: self.inner.ctx(what), reason: NEEDS_KERNEL.into() })
            }
        };
        let mut req = RtpmCapture {
            queue_len: opts.queue_len,
            snaplen: opts.snaplen,
            flags: if opts.nonblocking { RTPM_CAPTURE_F_NONBLOCK } else { 0 },
            ..Default::default()
        };
        let fd = k.capture(&mut req).map_err(|errno| match capture_reason(errno) {
            Some(reason) => Error::Refused { context: self.inner.ctx(what), errno, reason },
            None => Error::sys(self.inner.ctx(what), errno),
        })?;
        // The kernel wrote back the queue length and snaplen it uses (defaults resolved).
        Ok(Capture {
            file: File::from(fd),
            name: self.inner.name.clone(),
            snaplen: req.snaplen,
            queue_len: req.queue_len,
            buf: vec![0; READ_BUF_MIN.max(record_size(req.snaplen))],
            filled: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtpmgr_abi::RTPM_SLOT_F_RTP;

    fn two_records() -> Vec<u8> {
        let mut b = encode_record(1_000, 5, 0, 0, b"hello");
        b.extend(encode_record(2_000, 1500, 7, RTPM_SLOT_F_RTP, &[0xab; 16]));
        b
    }

    #[test]
    fn records_parse_with_their_padding() {
        let b = two_records();
        assert_eq!(b.len(), record_size(5) + record_size(16));
        assert_eq!(record_size(5), 32, "24 + 5 rounded up to 8");
        assert_eq!(record_size(16), 40, "24 + 16 is a multiple of 8 already");
        let got: Vec<_> = parse_records(&b, 1500).collect::<Result<_, _>>().unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], CapturedPacket { arrival_ns: 1_000, len: 5, missed: 0, flags: 0, data: b"hello" });
        assert_eq!(got[1].arrival_ns, 2_000);
        assert_eq!(got[1].len, 1500, "len is the packet's, data only the snap");
        assert_eq!(got[1].missed, 7);
        assert_eq!(got[1].flags, RTPM_SLOT_F_RTP);
        assert_eq!(got[1].data, &[0xab; 16]);
    }

    #[test]
    fn an_empty_read_has_no_records() {
        assert_eq!(parse_records(&[], 64).count(), 0);
    }

    #[test]
    fn a_record_of_zero_bytes_is_a_header() {
        let b = encode_record(9, 0, 0, 0, &[]);
        assert_eq!(b.len(), RECORD_HEADER_LEN);
        let got: Vec<_> = parse_records(&b, 64).collect::<Result<_, _>>().unwrap();
        assert_eq!(got[0].data, b"");
    }

    #[test]
    fn every_truncation_is_an_error_never_a_panic() {
        let b = two_records();
        let first = record_size(5);
        for cut in 1..b.len() {
            if cut == first {
                continue; // a whole first record
            }
            let results: Vec<_> = parse_records(&b[..cut], 1500).collect();
            let last = results.last().expect("at least one item");
            assert!(matches!(last, Err(RecordError::Truncated { .. })), "cut at {cut}: {results:?}");
            assert_eq!(results.iter().filter(|r| r.is_err()).count(), 1, "the iteration ends at the error");
        }
    }

    #[test]
    fn a_caplen_above_len_or_snaplen_is_refused() {
        let mut b = encode_record(1, 4, 0, 0, b"abcdefgh");
        assert_eq!(
            parse_records(&b, 64).next(),
            Some(Err(RecordError::BadCaplen { offset: 0, caplen: 8, len: 4, snaplen: 64 }))
        );
        b = encode_record(1, 100, 0, 0, &[0; 80]);
        assert!(matches!(parse_records(&b, 64).next(), Some(Err(RecordError::BadCaplen { .. }))));
        assert!(parse_records(&b, 80).next().unwrap().is_ok());
    }

    #[test]
    fn a_huge_caplen_does_not_overflow() {
        let mut b = encode_record(1, u32::MAX, 0, 0, &[]);
        b[12..16].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert!(matches!(
            parse_records(&b, u32::MAX).next(),
            Some(Err(RecordError::Truncated { need, .. })) if need > b.len()
        ));
    }

    #[test]
    fn the_error_names_the_offset_of_the_bad_record() {
        let mut b = two_records();
        let second = record_size(5);
        b[second + 12..second + 16].copy_from_slice(&2000u32.to_ne_bytes()); // caplen > len 1500
        let results: Vec<_> = parse_records(&b, u32::MAX).collect();
        assert!(results[0].is_ok());
        assert!(matches!(results[1], Err(RecordError::BadCaplen { offset, .. }) if offset == second));
        assert_eq!(results.len(), 2);
    }

    #[test]
    #[cfg_attr(miri, ignore = "shm ring: mmap and futex syscalls")]
    fn a_shm_ring_says_capture_needs_the_module() {
        let path = std::env::temp_dir().join(format!("rtpmgr-capture-shm-{}", std::process::id()));
        let ch = Channel::open(&crate::Backend::shm_at(&path)).unwrap();
        let err = ch.capture(&CaptureOptions::default()).unwrap_err();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(err.errno(), Errno::EOPNOTSUPP);
        assert!(err.to_string().contains(NEEDS_KERNEL), "{err}");
    }

    #[test]
    fn garbage_never_panics() {
        // A cheap deterministic generator (xorshift): garbage of every length up to 200 bytes.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for len in 0..200 {
            let buf: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            for snaplen in [0, 64, u32::MAX] {
                let mut consumed = 0;
                for p in parse_records(&buf, snaplen).flatten() {
                    consumed += record_size(p.data.len() as u32);
                }
                assert!(consumed <= buf.len());
            }
        }
    }
}

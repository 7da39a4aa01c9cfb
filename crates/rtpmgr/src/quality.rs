//! ABI 2.1: the RFC 3550 receiver-report numbers of a channel's stream (GET_QUALITY).
//!
//! The kernel tracks the RTP stream of every packet pushed into a channel or received by its
//! attached socket, as RFC 3550 appendix A.1 (sequence numbers), A.3 (expected, lost) and A.8
//! (interarrival jitter) compute them: the numbers an RTCP receiver report (section 6.4.1) would
//! carry for it. Reading them needs no write access, so [`Channel::open_read_only`] is enough.
//! A shm ring tracks no quality; its [`Channel::quality`] is [`Error::Unsupported`].

use crate::error::{Error, Result};
use crate::{Channel, Dev};
use nix::errno::Errno;
use rtpmgr_abi::RtpmQuality;
use std::time::Duration;

/// The RFC 3550 numbers of the stream a channel tracks now (GET_QUALITY).
///
/// They start over with a new SSRC (`ssrc_changes` counts that), with a sequence jump the tracker
/// takes for a sender restart, and with RESET.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quality {
    /// The SSRC tracked now (0 before the first packet: see [`Quality::has_stream`]).
    pub ssrc: u32,
    /// The RTP clock rate set by [`Channel::set_clock_rate`], Hz; 0: no jitter is computed.
    pub clock_rate: u32,
    /// Packets of this stream received, duplicates included (A.3).
    pub received: u64,
    /// Extended highest sequence number - base sequence number + 1 (A.3).
    pub expected: u64,
    /// Cumulative number of packets lost: expected - received (A.3). Negative when duplicates
    /// outnumber the losses, as in a receiver report.
    pub lost: i64,
    /// Extended highest sequence number received: cycles × 65536 + highest (A.1).
    pub ext_max_seq: u32,
    /// The first sequence number of this stream.
    pub base_seq: u32,
    /// Interarrival jitter in RTP timestamp units (A.8), as a receiver report carries it.
    pub jitter: u32,
    /// New SSRCs seen after the first, since load or RESET.
    pub ssrc_changes: u32,
    /// Longest run of consecutive missing sequence numbers in this stream.
    pub max_loss_burst: u32,
    /// The jitter in microseconds as the kernel converted it (0 without a clock rate).
    jitter_us: u32,
}

impl From<RtpmQuality> for Quality {
    fn from(q: RtpmQuality) -> Quality {
        Quality {
            ssrc: q.ssrc,
            clock_rate: q.clock_rate,
            received: q.received,
            expected: q.expected,
            lost: q.lost,
            ext_max_seq: q.ext_max_seq,
            base_seq: q.base_seq,
            jitter: q.jitter,
            ssrc_changes: q.ssrc_changes,
            max_loss_burst: q.max_loss_burst,
            jitter_us: q.jitter_us,
        }
    }
}

impl Quality {
    /// True once a packet of a stream was seen (an SSRC of 0 is a valid SSRC, so the count says
    /// it, not the SSRC).
    pub fn has_stream(&self) -> bool {
        self.received > 0
    }

    /// The interarrival jitter as a duration; None without a clock rate (the kernel cannot
    /// convert timestamp units then).
    pub fn jitter_time(&self) -> Option<Duration> {
        (self.clock_rate != 0).then(|| Duration::from_micros(u64::from(self.jitter_us)))
    }

    /// Fraction of the packets expected since `prev` that were lost, 0.0 ..= 1.0: a receiver
    /// report's "fraction lost" (RFC 3550 6.4.1, A.3) over the interval, 0 when duplicates
    /// outnumber the losses. None when the two readings are not of the same stream (another
    /// SSRC, a restart, a RESET) or nothing was expected in between.
    pub fn fraction_lost_since(&self, prev: &Quality) -> Option<f64> {
        let same = self.has_stream()
            && prev.has_stream()
            && self.ssrc == prev.ssrc
            && self.ssrc_changes == prev.ssrc_changes
            && self.base_seq == prev.base_seq
            && self.expected >= prev.expected;
        if !same {
            return None;
        }
        let expected = self.expected - prev.expected;
        let lost = (self.lost - prev.lost).max(0);
        (expected > 0).then(|| (lost as f64 / expected as f64).min(1.0))
    }
}

impl Channel {
    /// GET_QUALITY (ABI 2.1): the RFC 3550 receiver-report numbers of the stream this channel
    /// tracks. Works on a handle from [`Channel::open_read_only`].
    ///
    /// # Errors
    /// [`Error::Unsupported`] on a shm ring (it tracks no RFC 3550 quality); `ENOTTY`
    /// ([`Error::Refused`]) from a module older than ABI 2.1.
    pub fn quality(&self) -> Result<Quality> {
        let what = "get stream quality";
        match &self.inner.dev {
            Dev::Kernel(k) => k.quality().map(Quality::from).map_err(|e| match e {
                Errno::ENOTTY => Error::Refused {
                    context: self.inner.ctx(what),
                    errno: e,
                    reason: "the loaded rtp_mgr module predates ABI 2.1 (no GET_QUALITY): load the module \
                             built from this release"
                        .into(),
                },
                e => Error::sys(self.inner.ctx(what), e),
            }),
            Dev::Shm(_) => Err(Error::Unsupported {
                context: self.inner.ctx(what),
                reason: "a shm ring tracks no RFC 3550 stream quality; the kernel device (/dev/rtp_mgrN) does".into(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Backend;

    fn q(ssrc: u32, expected: u64, received: u64) -> Quality {
        Quality { ssrc, expected, received, lost: expected as i64 - received as i64, ..Default::default() }
    }

    #[test]
    fn converts_every_field_of_the_abi_struct() {
        let raw = RtpmQuality {
            ssrc: 0x1234,
            clock_rate: 90_000,
            received: 95,
            expected: 100,
            lost: 5,
            ext_max_seq: 65_600,
            base_seq: 65_501,
            jitter: 180,
            jitter_us: 2000,
            ssrc_changes: 2,
            max_loss_burst: 3,
            reserved: [0; 5],
        };
        let got = Quality::from(raw);
        assert_eq!((got.ssrc, got.clock_rate, got.received, got.expected, got.lost), (0x1234, 90_000, 95, 100, 5));
        assert_eq!((got.ext_max_seq, got.base_seq, got.jitter), (65_600, 65_501, 180));
        assert_eq!((got.ssrc_changes, got.max_loss_burst), (2, 3));
        assert_eq!(got.jitter_time(), Some(Duration::from_millis(2)));
        assert_eq!(Quality { clock_rate: 0, ..got }.jitter_time(), None);
    }

    #[test]
    fn fraction_lost_is_per_interval_and_per_stream() {
        let a = q(7, 100, 100);
        let b = q(7, 200, 190);
        assert_eq!(b.fraction_lost_since(&a), Some(0.1));
        // Duplicates outnumbering losses: 0, as a receiver report's fraction.
        assert_eq!(q(7, 200, 205).fraction_lost_since(&a), Some(0.0));
        // Another SSRC, a restart of the same one, nothing expected, no stream yet: no fraction.
        assert_eq!(q(8, 200, 190).fraction_lost_since(&a), None);
        assert_eq!(Quality { ssrc_changes: 1, ..b }.fraction_lost_since(&a), None);
        assert_eq!(Quality { base_seq: 9, ..b }.fraction_lost_since(&a), None);
        assert_eq!(a.fraction_lost_since(&a), None);
        assert_eq!(b.fraction_lost_since(&Quality::default()), None);
    }

    #[test]
    #[cfg_attr(miri, ignore = "Miri cannot map files: the case opens a shm ring file")]
    fn a_shm_ring_has_no_quality_and_no_read_only_open() {
        let path = std::env::temp_dir().join(format!("rtpmgr-quality-{}", std::process::id()));
        let backend = Backend::shm_at(&path);
        let ch = Channel::open(&backend).expect("open shm ring");
        let e = ch.quality().expect_err("a shm ring tracks no quality");
        assert!(matches!(e, Error::Unsupported { .. }), "{e}");
        assert_eq!(e.errno(), Errno::EOPNOTSUPP);
        let e = Channel::open_read_only(&backend).expect_err("no read-only shm ring");
        assert!(matches!(e, Error::Unsupported { .. }), "{e}");
        drop(ch);
        std::fs::remove_file(&path).expect("remove the ring file");
    }
}

//! ABI 2.1: UDP sockets attached to a channel, and the consumer wake-up rule.
//!
//! With a socket attached for RX the kernel copies every datagram the socket receives straight
//! into a ring slot (in softirq context, one copy, the one `recvmsg` would make) and makes it
//! READY; no process sits between the socket and the ring. With a socket attached for TX the
//! kernel sends every READY slot through it. User space still creates, binds, joins and tunes the
//! socket, so every socket option (multicast joins, `SO_RCVBUF`, `SO_BINDTODEVICE`, IPv6) stays
//! standard.
//!
//! The wake-up rule coalesces consumer wake-ups: a consumer blocked in [`Channel::wait`] (poll)
//! is woken once `slots` slots became READY or once the oldest has waited `usecs` microseconds.
//!
//! Only the kernel backend has these; on a shm ring every call answers [`Error::Unsupported`].

use crate::error::{Error, Result};
use crate::{Channel, Dev, Status};
use nix::errno::Errno;
use rtpmgr_abi::*;
use std::fmt;
use std::os::fd::{AsFd, AsRawFd};
use std::str::FromStr;

/// Which way an attached socket carries packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SocketDir {
    /// Socket -> ring: the kernel produces (`RTPM_DIR_RX`); the attaching handle becomes the
    /// channel's producer-role holder.
    Rx,
    /// Ring -> socket: the kernel consumes and sends (`RTPM_DIR_TX`); the attaching handle
    /// becomes the consumer-role holder.
    Tx,
}

impl SocketDir {
    /// The ABI value (`RTPM_DIR_*`).
    pub fn to_raw(self) -> u32 {
        match self {
            SocketDir::Rx => RTPM_DIR_RX,
            SocketDir::Tx => RTPM_DIR_TX,
        }
    }

    /// The role the attachment takes (`producer` for RX, `consumer` for TX), for messages.
    fn role(self) -> &'static str {
        match self {
            SocketDir::Rx => "producer",
            SocketDir::Tx => "consumer",
        }
    }
}

impl fmt::Display for SocketDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SocketDir::Rx => "RX",
            SocketDir::Tx => "TX",
        })
    }
}

/// Pacing of a TX attachment: a token bucket refilled at `rate_pps`, `burst` packets deep.
///
/// The default (`rate_pps` 0) sends every READY slot at once. An RX attachment takes no pacing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TxPacing {
    /// Packets per second; 0 = unpaced.
    pub rate_pps: u32,
    /// Bucket depth in packets, the most sent back to back after an idle spell; 0 counts as 1,
    /// at most [`RTPM_TX_BURST_MAX`]; 0 (= 1) without a rate.
    pub burst: u32,
}

impl TxPacing {
    /// No pacing: every READY slot goes out as soon as the kernel's send work runs.
    pub const UNPACED: TxPacing = TxPacing { rate_pps: 0, burst: 0 };

    /// `rate_pps` packets per second, `burst` packets back to back at most.
    pub fn new(rate_pps: u32, burst: u32) -> TxPacing {
        TxPacing { rate_pps, burst }
    }

    /// True for [`TxPacing::UNPACED`] (what an RX attachment requires).
    pub fn is_unpaced(&self) -> bool {
        self.rate_pps == 0 && self.burst == 0
    }

    /// The kernel's rules for pacing (ATTACH answers `EINVAL` otherwise): a burst needs a rate,
    /// the burst is at most [`RTPM_TX_BURST_MAX`], the rate at most 10^9 packets per second.
    pub fn check(&self) -> std::result::Result<(), String> {
        if self.burst != 0 && self.rate_pps == 0 {
            return Err(format!("a TX burst ({}) needs a rate", self.burst));
        }
        if self.burst > RTPM_TX_BURST_MAX {
            return Err(format!("TX burst must be 1 ..= {RTPM_TX_BURST_MAX}, not {}", self.burst));
        }
        if self.rate_pps > 1_000_000_000 {
            return Err(format!("TX rate must be at most 10^9 packets/s, not {}", self.rate_pps));
        }
        Ok(())
    }
}

/// The consumer wake-up rule of a channel (SET_WAKEUP / GET_WAKEUP, sysfs `wakeup`).
///
/// A consumer blocked in poll (or [`Channel::wait`]) is woken once `slots` slots became READY
/// since its last wake-up, or once the oldest of them has waited `usecs` µs, or when the ring
/// is full or the channel stops. [`Wakeup::EVERY_PUSH`] (1 slot, 0 µs) is the module's default
/// and ABI 2.0's behaviour. A rule with `slots` > 1 needs `usecs` > 0, or a slow stream would
/// never wake its consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wakeup {
    /// Slots, 1 ..= [`RTPM_WAKE_SLOTS_MAX`].
    pub slots: u32,
    /// Microseconds the oldest READY slot may wait, 0 ..= [`RTPM_WAKE_USECS_MAX`] (0: no timer).
    pub usecs: u32,
}

impl Wakeup {
    /// Wake on every push (the module's default, as ABI 2.0).
    pub const EVERY_PUSH: Wakeup = Wakeup { slots: 1, usecs: 0 };

    /// A checked rule: the reason it is refused, in words, otherwise.
    pub fn new(slots: u32, usecs: u32) -> std::result::Result<Wakeup, String> {
        let w = Wakeup { slots, usecs };
        w.check()?;
        Ok(w)
    }

    /// The checks the kernel makes (`EINVAL`), with the reason in words.
    pub fn check(&self) -> std::result::Result<(), String> {
        if self.slots < 1 || self.slots > RTPM_WAKE_SLOTS_MAX {
            return Err(format!("wake-up slots must be 1 ..= {RTPM_WAKE_SLOTS_MAX}, not {}", self.slots));
        }
        if self.usecs > RTPM_WAKE_USECS_MAX {
            return Err(format!("wake-up usecs must be 0 ..= {RTPM_WAKE_USECS_MAX} (1 s), not {}", self.usecs));
        }
        if self.slots > 1 && self.usecs == 0 {
            return Err(format!(
                "wake-up after {} slots needs a timer (usecs > 0): without one a slow stream never wakes its consumer",
                self.slots
            ));
        }
        Ok(())
    }
}

impl Default for Wakeup {
    fn default() -> Self {
        Wakeup::EVERY_PUSH
    }
}

impl fmt::Display for Wakeup {
    /// `SLOTS,USECS`, the form [`Wakeup::from_str`] reads.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{},{}", self.slots, self.usecs)
    }
}

impl FromStr for Wakeup {
    type Err = String;

    /// `SLOTS,USECS` (a space instead of the comma also works, as sysfs writes it), checked.
    fn from_str(s: &str) -> std::result::Result<Wakeup, String> {
        let parts: Vec<&str> = s.split(|c: char| c == ',' || c.is_whitespace()).filter(|p| !p.is_empty()).collect();
        let [slots, usecs] = parts[..] else {
            return Err(format!("wake-up rule {s:?}: expected SLOTS,USECS, e.g. 32,4000"));
        };
        let num = |what: &str, v: &str| {
            v.parse::<u32>().map_err(|e| format!("wake-up rule {s:?}: {what} {v:?} is not a number: {e}"))
        };
        Wakeup::new(num("slots", slots)?, num("usecs", usecs)?)
    }
}

/// Which directions of a channel have a socket attached (GET_STATUS `attached`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Attached {
    /// A socket feeds the ring (`RTPM_ATTACHED_RX`).
    pub rx: bool,
    /// A socket drains the ring (`RTPM_ATTACHED_TX`).
    pub tx: bool,
}

impl Attached {
    /// From GET_STATUS.
    pub fn from_status(s: &Status) -> Attached {
        Attached { rx: s.attached & RTPM_ATTACHED_RX != 0, tx: s.attached & RTPM_ATTACHED_TX != 0 }
    }

    /// True if a socket is attached in `dir`.
    pub fn has(&self, dir: SocketDir) -> bool {
        match dir {
            SocketDir::Rx => self.rx,
            SocketDir::Tx => self.tx,
        }
    }
}

impl fmt::Display for Attached {
    /// As sysfs `status` writes it: `rx`, `tx`, `rx tx` or `none`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match (self.rx, self.tx) {
            (false, false) => "none",
            (true, false) => "rx",
            (false, true) => "tx",
            (true, true) => "rx tx",
        })
    }
}

/// What a module without ABI 2.1 answers (an unknown ioctl).
const OLD_MODULE: &str = "the loaded rtp_mgr module predates ABI 2.1 (no socket attachment or wake-up rule): \
                          load the module built from this release";

/// The reason an ATTACH was refused, in the request's terms.
fn attach_reason(dir: SocketDir, e: Errno) -> Option<String> {
    let role = dir.role();
    Some(match e {
        Errno::EPERM => format!(
            "the {role} role of the channel is held by another open file (another rtp_app or rtp-feeder on this \
             channel?); stop it or give the role up first"
        ),
        Errno::EBUSY => match dir {
            SocketDir::Rx => "a socket is already attached for RX on this channel, or this socket is already used \
                              by another in-kernel receiver (another channel, a UDP tunnel)"
                .into(),
            SocketDir::Tx => "a socket is already attached for TX on this channel".into(),
        },
        Errno::ENOTCONN => "a TX socket must be connected (connect(2) to the destination) before it is attached".into(),
        Errno::ENOTSOCK => "the descriptor is not a socket".into(),
        Errno::EBADF => "the descriptor is not open, or the channel was opened read-only".into(),
        Errno::EPROTONOSUPPORT => "only UDP sockets (AF_INET or AF_INET6, SOCK_DGRAM) can be attached".into(),
        Errno::EINVAL => format!(
            "invalid request (TX burst at most {RTPM_TX_BURST_MAX} and only with a rate, rate at most 10^9 pkt/s; RX takes no pacing)"
        ),
        Errno::ENOTTY => OLD_MODULE.into(),
        _ => return None,
    })
}

fn detach_reason(dir: SocketDir, e: Errno) -> Option<String> {
    Some(match e {
        Errno::ENOENT => format!("no socket is attached for {dir}"),
        Errno::EPERM => "another open file attached the socket; detaching it needs CAP_NET_ADMIN".into(),
        Errno::ENOTTY => OLD_MODULE.into(),
        _ => return None,
    })
}

fn wakeup_reason(e: Errno) -> Option<String> {
    Some(match e {
        Errno::EINVAL => format!(
            "slots must be 1 ..= {RTPM_WAKE_SLOTS_MAX}, usecs 0 ..= {RTPM_WAKE_USECS_MAX}, and slots > 1 needs \
             usecs > 0"
        ),
        Errno::EPERM => "setting the wake-up rule needs CAP_NET_ADMIN or a role on the channel".into(),
        Errno::ENOTTY => OLD_MODULE.into(),
        _ => return None,
    })
}

/// `errno` as [`Error::Refused`] when `reason` knows what it means here, else [`Error::Sys`].
fn refused(context: String, errno: Errno, reason: Option<String>) -> Error {
    match reason {
        Some(reason) => Error::Refused { context, errno, reason },
        None => Error::Sys { context, errno },
    }
}

impl Channel {
    fn unsupported(&self, what: &str) -> Error {
        Error::Unsupported {
            context: self.inner.ctx(what),
            reason: "a shm ring has no kernel to move packets or time wake-ups; use the kernel device \
                     (/dev/rtp_mgrN, module rtp_mgr) or the user-space socket path"
                .into(),
        }
    }

    /// ATTACH (ABI 2.1): hands the UDP socket `socket` to the channel for `dir`.
    ///
    /// RX: the kernel receives every datagram of the socket into the ring from now on (they no
    /// longer reach the socket's own receive queue), counts oversize ones in `rx_oversize` and
    /// those arriving while the channel is stopped in `rx_discarded`. Closing every descriptor of
    /// the socket detaches it, so keep the socket open while it is attached. TX: the kernel sends
    /// every READY slot through the socket (which must be connected) paced by `pacing`, counting
    /// `tx_sent` and `tx_errors`; it holds its own reference to the socket.
    ///
    /// The attachment ends with [`Channel::detach`], or when the last clone of this handle
    /// closes; STOP and RESET keep it, CONFIGURE is refused while it exists.
    ///
    /// # Errors
    /// [`Error::Unsupported`] on a shm ring; [`Error::Refused`] with the reason for `EPERM` (the
    /// direction's role is held by another file), `EBUSY` (already attached, or the socket is
    /// used by another in-kernel receiver), `ENOTCONN` (unconnected TX socket), `ENOTSOCK`,
    /// `EPROTONOSUPPORT` (not UDP), `EINVAL` (pacing on RX, burst too deep) and `ENOTTY` (a
    /// module older than ABI 2.1).
    pub fn attach(&self, socket: &impl AsFd, dir: SocketDir, pacing: TxPacing) -> Result<()> {
        let fd = socket.as_fd().as_raw_fd();
        let what = format!("attach {dir} socket (fd {fd})");
        let k = match &self.inner.dev {
            Dev::Kernel(k) => k,
            Dev::Shm(_) => return Err(self.unsupported(&what)),
        };
        if dir == SocketDir::Rx && !pacing.is_unpaced() {
            return Err(Error::Refused {
                context: self.inner.ctx(&what),
                errno: Errno::EINVAL,
                reason: "pacing applies to TX only; an RX socket takes packets as they arrive".into(),
            });
        }
        if let Err(reason) = pacing.check() {
            return Err(Error::Refused { context: self.inner.ctx(&what), errno: Errno::EINVAL, reason });
        }
        let req = RtpmAttach {
            fd,
            direction: dir.to_raw(),
            tx_rate_pps: pacing.rate_pps,
            tx_burst: pacing.burst,
            ..Default::default()
        };
        k.attach(socket.as_fd(), &req).map_err(|e| refused(self.inner.ctx(&what), e, attach_reason(dir, e)))
    }

    /// DETACH (ABI 2.1): ends the attachment of `dir`. RX: datagrams reach the socket's own
    /// receive queue again; TX: the kernel stops sending (slots still READY stay in the ring).
    ///
    /// # Errors
    /// [`Error::Unsupported`] on a shm ring; [`Error::Refused`] for `ENOENT` (nothing attached)
    /// and `EPERM` (another file attached it and this one lacks `CAP_NET_ADMIN`).
    pub fn detach(&self, dir: SocketDir) -> Result<()> {
        let what = format!("detach {dir} socket");
        match &self.inner.dev {
            Dev::Kernel(k) => {
                k.detach(dir.to_raw()).map_err(|e| refused(self.inner.ctx(&what), e, detach_reason(dir, e)))
            }
            Dev::Shm(_) => Err(self.unsupported(&what)),
        }
    }

    /// SET_WAKEUP (ABI 2.1): the rule that wakes this channel's consumer (and a kernel TX
    /// attachment). Slots READY under the old rule are handed on at once.
    ///
    /// # Errors
    /// [`Error::Unsupported`] on a shm ring (its consumer is woken on every push);
    /// [`Error::Refused`] for `EINVAL` (the rule fails [`Wakeup::check`], checked here first) and
    /// `EPERM` (neither `CAP_NET_ADMIN` nor a role on the channel).
    pub fn set_wakeup(&self, rule: Wakeup) -> Result<()> {
        let what = format!("set wake-up rule to {} slots or {} us", rule.slots, rule.usecs);
        let k = match &self.inner.dev {
            Dev::Kernel(k) => k,
            Dev::Shm(_) => return Err(self.unsupported(&what)),
        };
        if let Err(reason) = rule.check() {
            return Err(Error::Refused { context: self.inner.ctx(&what), errno: Errno::EINVAL, reason });
        }
        k.set_wakeup(rule.slots, rule.usecs).map_err(|e| refused(self.inner.ctx(&what), e, wakeup_reason(e)))
    }

    /// SET_CLOCK_RATE (ABI 2.1): the RTP clock rate of the channel's stream (from the caps'
    /// `clock-rate`), so that the kernel's RFC 3550 interarrival jitter (GET_QUALITY, `rtp_app
    /// top`) has a unit; 0 turns the jitter off.
    ///
    /// # Errors
    /// [`Error::Unsupported`] on a shm ring (it tracks no RFC 3550 quality); [`Error::Refused`] for
    /// `EINVAL` (above `RTPM_CLOCK_RATE_MAX`) and `EPERM` (neither `CAP_NET_ADMIN` nor a role on
    /// the channel).
    pub fn set_clock_rate(&self, hz: u32) -> Result<()> {
        let what = format!("set the RTP clock rate to {hz} Hz");
        let k = match &self.inner.dev {
            Dev::Kernel(k) => k,
            Dev::Shm(_) => return Err(self.unsupported(&what)),
        };
        k.set_clock_rate(hz).map_err(|e| {
            let reason = match e {
                Errno::EINVAL => Some(format!("the clock rate must be 0 ..= {RTPM_CLOCK_RATE_MAX} Hz")),
                Errno::EPERM => Some("setting the clock rate needs CAP_NET_ADMIN or a role on the channel".into()),
                Errno::ENOTTY => Some(OLD_MODULE.into()),
                _ => None,
            };
            refused(self.inner.ctx(&what), e, reason)
        })
    }

    /// GET_WAKEUP (ABI 2.1): the wake-up rule in force.
    ///
    /// # Errors
    /// [`Error::Unsupported`] on a shm ring; `ENOTTY` ([`Error::Refused`]) from a module older than
    /// ABI 2.1.
    pub fn wakeup(&self) -> Result<Wakeup> {
        let what = "get wake-up rule";
        match &self.inner.dev {
            Dev::Kernel(k) => match k.get_wakeup() {
                Ok(w) => Ok(Wakeup { slots: w.slots, usecs: w.usecs }),
                Err(e) => Err(refused(self.inner.ctx(what), e, wakeup_reason(e))),
            },
            Dev::Shm(_) => Err(self.unsupported(what)),
        }
    }

    /// Which directions have a socket attached right now (from GET_STATUS; none on a shm ring).
    pub fn attached(&self) -> Result<Attached> {
        Ok(Attached::from_status(&self.status()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Backend;

    fn shm_channel(tag: &str) -> (Channel, std::path::PathBuf) {
        let path = std::env::temp_dir().join(format!("rtpmgr-attach-{tag}-{}", std::process::id()));
        let ch = Channel::open(&Backend::shm_at(&path)).expect("open shm ring");
        (ch, path)
    }

    #[test]
    fn tx_pacing_is_checked_before_the_ioctl() {
        assert!(TxPacing::new(0, 4).check().unwrap_err().contains("needs a rate"));
        assert!(TxPacing::new(1000, RTPM_TX_BURST_MAX + 1).check().is_err());
        assert!(TxPacing::new(1_000_000_001, 1).check().is_err());
        assert!(TxPacing::new(1000, RTPM_TX_BURST_MAX).check().is_ok());
        assert!(TxPacing::UNPACED.check().is_ok());
    }

    #[test]
    #[cfg_attr(miri, ignore = "Miri cannot map files: the case opens a shm ring file")]
    fn shm_ring_refuses_attach_with_a_clear_unsupported_error() {
        let (ch, path) = shm_channel("attach");
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let e = ch.attach(&sock, SocketDir::Rx, TxPacing::UNPACED).unwrap_err();
        assert!(matches!(e, Error::Unsupported { .. }), "{e:?}");
        assert_eq!(e.errno(), Errno::EOPNOTSUPP);
        let msg = e.to_string();
        assert!(msg.contains("attach RX socket") && msg.contains("shm:"), "{msg}");
        assert!(msg.contains("not supported") && msg.contains("/dev/rtp_mgrN"), "{msg}");
        for e in [
            ch.detach(SocketDir::Tx).unwrap_err(),
            ch.set_wakeup(Wakeup::EVERY_PUSH).unwrap_err(),
            ch.wakeup().unwrap_err(),
        ] {
            assert_eq!(e.errno(), Errno::EOPNOTSUPP, "{e}");
        }
        // The status still answers: nothing is attached to a shm ring.
        assert_eq!(ch.attached().unwrap(), Attached::default());
        drop(ch);
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn wakeup_rules_are_checked_like_the_kernel_does() {
        assert_eq!(Wakeup::new(32, 4000), Ok(Wakeup { slots: 32, usecs: 4000 }));
        assert_eq!(Wakeup::new(1, 0), Ok(Wakeup::EVERY_PUSH));
        assert!(Wakeup::new(0, 100).unwrap_err().contains("1 ..= 32768"));
        assert!(Wakeup::new(RTPM_WAKE_SLOTS_MAX + 1, 100).is_err());
        assert!(Wakeup::new(RTPM_WAKE_SLOTS_MAX, RTPM_WAKE_USECS_MAX).is_ok());
        assert!(Wakeup::new(1, RTPM_WAKE_USECS_MAX + 1).unwrap_err().contains("1 s"));
        assert!(Wakeup::new(8, 0).unwrap_err().contains("needs a timer"));
    }

    #[test]
    fn wakeup_parses_slots_comma_usecs() {
        assert_eq!("32,4000".parse::<Wakeup>(), Ok(Wakeup { slots: 32, usecs: 4000 }));
        assert_eq!("16 2000".parse::<Wakeup>(), Ok(Wakeup { slots: 16, usecs: 2000 }));
        assert_eq!(Wakeup { slots: 32, usecs: 4000 }.to_string().parse::<Wakeup>().unwrap().slots, 32);
        assert!("32".parse::<Wakeup>().unwrap_err().contains("expected SLOTS,USECS"));
        assert!("32,4ms".parse::<Wakeup>().unwrap_err().contains("usecs \"4ms\" is not a number"));
        assert!("4,0".parse::<Wakeup>().unwrap_err().contains("needs a timer"));
    }

    #[test]
    fn rx_attach_with_pacing_is_refused_before_the_kernel() {
        // Checked on the kernel path only (the shm path refuses everything first), so test the
        // pieces: pacing detection and the errno reasons.
        assert!(TxPacing::UNPACED.is_unpaced());
        assert!(!TxPacing::new(1000, 4).is_unpaced());
        assert!(attach_reason(SocketDir::Rx, Errno::EPERM).unwrap().contains("producer role"));
        assert!(attach_reason(SocketDir::Tx, Errno::EPERM).unwrap().contains("consumer role"));
        assert!(attach_reason(SocketDir::Rx, Errno::EBUSY).unwrap().contains("another in-kernel receiver"));
        assert!(attach_reason(SocketDir::Tx, Errno::ENOTCONN).unwrap().contains("must be connected"));
        assert!(attach_reason(SocketDir::Rx, Errno::ENOTTY).unwrap().contains("ABI 2.1"));
        assert_eq!(attach_reason(SocketDir::Rx, Errno::ENOMEM), None);
        assert!(detach_reason(SocketDir::Rx, Errno::ENOENT).unwrap().contains("no socket is attached for RX"));
    }

    #[test]
    fn refused_errors_name_the_reason_and_the_errno() {
        let e = refused(
            "attach TX socket (fd 7) on /dev/rtp_mgr0".into(),
            Errno::ENOTCONN,
            attach_reason(SocketDir::Tx, Errno::ENOTCONN),
        );
        assert_eq!(e.errno(), Errno::ENOTCONN);
        let msg = e.to_string();
        assert!(msg.starts_with("attach TX socket (fd 7) on /dev/rtp_mgr0: a TX socket must be connected"), "{msg}");
        assert!(msg.contains("ENOTCONN"), "{msg}");
        let plain = refused("x".into(), Errno::ENOMEM, None);
        assert!(matches!(plain, Error::Sys { .. }));
    }

    #[test]
    fn attached_reads_the_status_bits() {
        let st = Status { attached: RTPM_ATTACHED_RX | RTPM_ATTACHED_TX, ..Default::default() };
        let a = Attached::from_status(&st);
        assert!(a.has(SocketDir::Rx) && a.has(SocketDir::Tx));
        assert_eq!(a.to_string(), "rx tx");
        assert_eq!(Attached { rx: false, tx: true }.to_string(), "tx");
        assert_eq!(Attached::default().to_string(), "none");
    }
}

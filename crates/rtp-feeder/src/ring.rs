//! The only module that talks to the ring library (crates/rtpmgr).
//!
//! - [`RingHandle`]: the channel's control handle, for status and stats (kept by the main
//!   thread while the consumer or producer works elsewhere).
//! - [`RxRing`]: the consumer side, popping READY slots as `rtpmgr::ReadSlot` guards.
//! - [`TxRing`]: the producer side, copying one RTP buffer per FREE slot and pushing it.
//! - [`KernelReceiver`]: the `[receive]` socket attached to the channel, so that the kernel
//!   pushes every datagram into the ring (RX without an rtp_app process).

use std::time::Duration;

use std::net::{SocketAddr, UdpSocket};

use anyhow::{Context, Result};
use rtpmgr::abi::{RTPM_ROLE_CONSUMER, RTPM_ROLE_PRODUCER};
use rtpmgr::{Backend, Channel, Consumer, Producer, ReadSlot, SocketDir, Stats, TxPacing};

use crate::config::{ReceiveConfig, ReceivePath, RingLocation};
use crate::rx::RxSlot;
use crate::stats::{ReceiveView, RingView};

impl RxSlot for ReadSlot {
    fn arrival_ns(&self) -> u64 {
        ReadSlot::arrival_ns(self)
    }
}

/// The ring library's backend for a configured location.
pub fn backend(loc: &RingLocation) -> Backend {
    match loc {
        RingLocation::KernelChannel(n) => Backend::kernel(*n),
        RingLocation::KernelDevice(p) => Backend::kernel_path(p),
        RingLocation::Shm { name, channel } => Backend::shm(name).with_channel(*channel),
    }
}

/// Control handle of the channel: status and counters, from any thread.
#[derive(Debug, Clone)]
pub struct RingHandle {
    channel: Channel,
}

impl RingHandle {
    /// Opens the channel (a shm ring is created with the default config if absent).
    pub fn open(loc: &RingLocation) -> Result<Self> {
        let b = backend(loc);
        let channel = Channel::open(&b).with_context(|| match loc {
            RingLocation::KernelChannel(_) | RingLocation::KernelDevice(_) => format!(
                "failed to open ring {} (module loaded? user in group rtpmgr? or use --backend shm)",
                b.path().display()
            ),
            RingLocation::Shm { .. } => format!("failed to open shm ring {}", b.path().display()),
        })?;
        Ok(Self { channel })
    }

    /// Device path or `shm:<path>`.
    pub fn describe(&self) -> String {
        self.channel.name().to_string()
    }

    /// Slot counts and loss counters right now; `None` (logged once by the caller's report)
    /// if the ring cannot be asked.
    pub fn view(&self) -> Option<RingView> {
        let st = self.channel.status().ok()?;
        let stats = self.channel.stats().ok()?;
        Some(RingView {
            free: st.free,
            ready: st.ready,
            producing: st.producing,
            consuming: st.consuming,
            overruns: stats.overruns,
            drops: stats.drops,
        })
    }

    /// The consumer side (maps the ring). Claims the channel's consumer role (ABI 2.0), so no
    /// other process can pop the pipeline's packets.
    pub fn consumer(&self) -> Result<RxRing> {
        self.channel.claim(RTPM_ROLE_CONSUMER).with_context(|| {
            format!("ring {} already has a consumer (another rtp-feeder or rtp_app?)", self.describe())
        })?;
        let consumer = self.channel.consumer().with_context(|| format!("failed to map ring {}", self.describe()))?;
        Ok(RxRing { consumer })
    }

    /// The consumer side of a feeder that also receives (`[receive]`): claims both roles, since
    /// the socket attached by [`RingHandle::attach_receiver`] becomes the channel's producer, and
    /// starts a stopped channel (a stopped one discards what arrives).
    pub fn receiving_consumer(&self) -> Result<RxRing> {
        self.channel.claim(RTPM_ROLE_PRODUCER | RTPM_ROLE_CONSUMER).with_context(|| {
            format!(
                "ring {} already has a producer or a consumer: with [receive] the feeder is both; stop the other \
                 (the rtp-rx service?) or remove [receive]",
                self.describe()
            )
        })?;
        self.start_if_stopped()?;
        let consumer = self.channel.consumer().with_context(|| format!("failed to map ring {}", self.describe()))?;
        Ok(RxRing { consumer })
    }

    /// The producer side (maps the ring): claims the channel's producer role (ABI 2.0), which
    /// also lets it start a stopped channel without CAP_NET_ADMIN, as every producer does.
    pub fn producer(&self) -> Result<TxRing> {
        self.channel.claim(RTPM_ROLE_PRODUCER).with_context(|| {
            format!("ring {} already has a producer (another rtp-feeder or rtp_app?)", self.describe())
        })?;
        self.start_if_stopped()?;
        let producer = self.channel.producer().with_context(|| format!("failed to map ring {}", self.describe()))?;
        Ok(TxRing { producer })
    }

    /// SET_CLOCK_RATE: the stream's RTP clock rate, for the kernel's RFC 3550 jitter. Ok(false)
    /// on a shm ring, which tracks no jitter.
    pub fn set_clock_rate(&self, hz: u32) -> Result<bool> {
        match self.channel.set_clock_rate(hz) {
            Ok(()) => Ok(true),
            Err(rtpmgr::Error::Unsupported { .. }) => Ok(false),
            Err(e) => Err(e).with_context(|| format!("cannot set the RTP clock rate of {}", self.describe())),
        }
    }

    fn start_if_stopped(&self) -> Result<()> {
        if !self.channel.is_running().with_context(|| format!("failed to query ring {}", self.describe()))? {
            self.channel.start().with_context(|| format!("failed to start ring {}", self.describe()))?;
            log::info!("started stopped channel {}", self.describe());
        }
        Ok(())
    }

    /// Opens the `[receive]` socket (bound, sized, joined: the socket library rtp_app uses too)
    /// and ATTACHes it to the channel for RX. Call after [`RingHandle::receiving_consumer`].
    pub fn attach_receiver(&self, cfg: &ReceiveConfig) -> Result<KernelReceiver> {
        let ReceivePath::Kernel = cfg.path;
        self.channel.set_wakeup(cfg.wakeup).with_context(|| {
            format!("cannot set the wake-up rule of {} (receive.wakeup_slots/wakeup_usecs)", self.describe())
        })?;
        let socket = rtpmgr_net::open_receiver(&cfg.spec)
            .with_context(|| format!("cannot open the [receive] socket ({})", cfg.spec.describe()))?;
        let local = socket.local_addr().context("cannot read the [receive] socket's address")?;
        let base =
            self.channel.stats().with_context(|| format!("failed to read the counters of {}", self.describe()))?;
        self.channel.attach(&socket, SocketDir::Rx, TxPacing::UNPACED).with_context(|| {
            format!("cannot attach the [receive] socket {local} to {} for RX (kernel path)", self.describe())
        })?;
        let joined = cfg.spec.membership.as_ref().map(|m| m.describe());
        Ok(KernelReceiver { channel: self.channel.clone(), socket: Some(socket), local, joined, base })
    }
}

/// The `[receive]` socket, attached to the channel for RX: the kernel pushes every datagram.
/// Detached by [`KernelReceiver::detach`], or on drop (the kernel would also detach when the
/// socket or the channel's last handle closes).
#[derive(Debug)]
pub struct KernelReceiver {
    channel: Channel,
    /// None once detached.
    socket: Option<UdpSocket>,
    local: SocketAddr,
    /// The group joined, described.
    joined: Option<String>,
    /// The channel's counters at the attach.
    base: Stats,
}

impl KernelReceiver {
    /// "udp 0.0.0.0:5004 (joined 232.1.1.1 from 10.0.0.1 on eth0)", with the port actually bound.
    pub fn describe(&self) -> String {
        match &self.joined {
            Some(j) => format!("udp {} (joined {j})", self.local),
            None => format!("udp {}", self.local),
        }
    }

    /// Whether the socket is still attached (an administrator may DETACH it).
    pub fn is_attached(&self) -> Result<bool> {
        Ok(self.channel.attached().context("failed to read the channel's status")?.has(SocketDir::Rx))
    }

    /// What the kernel did with the datagrams since the attach.
    pub fn view(&self) -> Result<ReceiveView> {
        let now = self.channel.stats().context("failed to read the channel's counters")?;
        Ok(receive_view(self.describe(), &self.base, &now))
    }

    /// Detaches the socket (nothing more arrives in the ring) and closes it.
    pub fn detach(mut self) -> Result<()> {
        self.detach_now()
    }

    fn detach_now(&mut self) -> Result<()> {
        let Some(socket) = self.socket.take() else { return Ok(()) };
        let r = self.channel.detach(SocketDir::Rx).context("cannot detach the [receive] socket");
        drop(socket);
        r
    }
}

impl Drop for KernelReceiver {
    fn drop(&mut self) {
        if let Err(e) = self.detach_now() {
            log::warn!("{e:#}");
        }
    }
}

/// The growth of the channel's counters from `base` (the attach) to `now`.
pub fn receive_view(socket: String, base: &Stats, now: &Stats) -> ReceiveView {
    let d = |f: fn(&Stats) -> u64| f(now).saturating_sub(f(base));
    ReceiveView {
        path: "kernel",
        socket,
        pushed: d(|s| s.pushed_packets),
        ring_full: d(|s| s.overruns),
        oversize: d(|s| s.rx_oversize),
        discarded: d(|s| s.rx_discarded),
    }
}

/// Consumer side of the ring.
#[derive(Debug)]
pub struct RxRing {
    consumer: Consumer,
}

impl RxRing {
    /// Slots in the ring.
    pub fn slot_count(&self) -> u32 {
        self.consumer.ring().layout().slot_count
    }

    /// Payload bytes per slot.
    pub fn slot_payload(&self) -> u32 {
        self.consumer.ring().layout().slot_payload
    }

    /// Pops up to `max` READY slots into `out`, waiting up to `timeout` for the first one.
    /// Leaves `out` empty on timeout (or a signal), so the caller can check for shutdown.
    pub fn pop_batch(&mut self, max: u32, timeout: Duration, out: &mut Vec<ReadSlot>) -> Result<()> {
        let slots = self.consumer.pop_batch_wait(max as usize, Some(timeout)).context("failed to pop from the ring")?;
        out.extend(slots);
        Ok(())
    }

    /// Releases the slots whose buffers GStreamer already freed (they are batched).
    pub fn flush(&self) -> Result<usize> {
        self.consumer.flush().context("failed to release slots")
    }
}

impl crate::rx::RxSource for RxRing {
    type Slot = ReadSlot;
    fn pop_batch(&mut self, max: u32, timeout: Duration, out: &mut Vec<ReadSlot>) -> Result<()> {
        RxRing::pop_batch(self, max, timeout, out)
    }
}

/// A bare consumer of the ring library (the benchmarks drive one) feeds appsrc the same way.
impl crate::rx::RxSource for Consumer {
    type Slot = ReadSlot;
    fn pop_batch(&mut self, max: u32, timeout: Duration, out: &mut Vec<ReadSlot>) -> Result<()> {
        out.extend(self.pop_batch_wait(max as usize, Some(timeout)).context("failed to pop from the ring")?);
        Ok(())
    }
}

/// What happened to one RTP buffer offered to the ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxOutcome {
    /// Copied into a slot and pushed READY.
    Pushed,
    /// No FREE slot: the ring's consumer is behind or absent.
    Full,
    /// The channel was stopped (RESERVE/PUSH answer EPIPE).
    Stopped,
    /// Larger than a slot's payload.
    Oversize,
}

/// Producer side of the ring.
#[derive(Debug)]
pub struct TxRing {
    producer: Producer,
}

impl TxRing {
    /// Payload bytes per slot.
    pub fn slot_payload(&self) -> u32 {
        self.producer.ring().layout().slot_payload
    }

    /// Copies `data` into a FREE slot and pushes it. The ring stamps the arrival time.
    ///
    /// The copy is the one copy of TX: the payloader's output lives in GStreamer memory;
    /// writing it straight into slots would need a slot-backed buffer pool (see the docs).
    pub fn write(&mut self, data: &[u8]) -> Result<TxOutcome> {
        if data.len() > self.slot_payload() as usize {
            return Ok(TxOutcome::Oversize);
        }
        let mut slot = match self.producer.reserve() {
            Ok(s) => s,
            Err(e) if e.is_would_block() => return Ok(TxOutcome::Full),
            Err(e) if e.errno() as i32 == libc::EPIPE => return Ok(TxOutcome::Stopped),
            Err(e) => return Err(e).context("failed to reserve a ring slot"),
        };
        slot.fill(data).context("failed to fill a ring slot")?;
        match self.producer.push(slot) {
            Ok(()) => Ok(TxOutcome::Pushed),
            // Stopped between reserve and push: the library keeps the slot as a spare.
            Err(e) if e.errno() as i32 == libc::EPIPE => Ok(TxOutcome::Stopped),
            Err(e) => Err(e).context("failed to push a ring slot"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RECEIVE_KEYS;
    use std::net::Ipv4Addr;

    #[test]
    fn receive_view_is_the_growth_since_the_attach() {
        let base = Stats { pushed_packets: 10, overruns: 1, rx_oversize: 2, ..Default::default() };
        let now = Stats { pushed_packets: 110, overruns: 4, rx_oversize: 2, rx_discarded: 5, ..Default::default() };
        let v = receive_view("udp 0.0.0.0:5004".into(), &base, &now);
        assert_eq!((v.path, v.pushed, v.ring_full, v.oversize, v.discarded), ("kernel", 100, 3, 0, 5));
        // A RESET in between reads as no growth, not a wrap.
        assert_eq!(receive_view(String::new(), &base, &Stats::default()).pushed, 0);
    }

    #[test]
    fn receiving_on_a_shm_ring_fails_and_leaves_the_port_free() {
        let path = std::env::temp_dir().join(format!("rtp-feeder-attach-{}", std::process::id()));
        let ring = RingHandle::open(&RingLocation::Shm { name: path.display().to_string(), channel: 0 }).unwrap();
        // A free port, bound by nobody once this probe closes.
        let port = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let cfg = ReceiveConfig {
            path: ReceivePath::Kernel,
            wakeup: rtpmgr::Wakeup::EVERY_PUSH,
            spec: rtpmgr_net::ReceiveSpec {
                bind: Some(Ipv4Addr::LOCALHOST.into()),
                port,
                membership: None,
                rcvbuf: None,
                names: RECEIVE_KEYS,
            },
        };
        let e = format!("{:#}", ring.attach_receiver(&cfg).unwrap_err());
        assert!(e.contains("cannot set the wake-up rule"), "{e}");
        assert!(e.contains("not supported"), "{e}");
        // The socket went with the error: the port is free again.
        UdpSocket::bind(("127.0.0.1", port)).expect("the failed attach left its socket open");
        let _ = std::fs::remove_file(&path);
    }
}

//! The AF_XDP paths of rtpmgr: RTP goes NIC → UMEM → ring slot without the socket stack, and
//! ring slot → UMEM → NIC with `tx`.
//!
//! ```text
//! NIC queue Q --XDP rtp_steer--> xsks_map[Q] --AF_XDP RX ring--> parse Eth/VLAN/IP/UDP/RTP
//!     |  (not RTP: XDP_PASS -> kernel stack)                          |
//!     |                                       reserve_batch -> copy UDP payload -> push_batch
//!     +-- fill ring <-- frame returned ------------------------- rtp_mgr ring slots
//! ```
//!
//! - **Steering** ([`steer`]): `bpf/rtp_steer.bpf.c` redirects UDP to the configured destination
//!   ports (IPv4 and IPv6, one 802.1Q/802.1ad tag) on the bound queue to the AF_XDP socket and
//!   passes everything else (ping, other ports, ARP, fragments) to the kernel stack. Per-queue
//!   counters (seen/redirected/passed/malformed) live in a PERCPU_ARRAY.
//! - **Sockets** ([`session`]): one UMEM (optionally in 2 MiB huge pages), and per served RX
//!   queue an AF_XDP socket with its own fill and RX rings via `xdpilone`, bound to (interface,
//!   queue) in copy or zero-copy mode. Setup is a sequence of RAII steps that unwinds on any
//!   failure. The program attaches natively, or in skb mode when the driver refuses native XDP.
//! - **Receive loop** (this module): one thread polls every queue's socket; frames are parsed ([`frame`]), the UDP payload (the RTP
//!   packet) is copied into reserved ring slots with the arrival time, slots are pushed in one
//!   batch, frames go back to the fill ring with bounded retries ([`fill`]).
//!
//! # Why C + aya for the BPF program
//! The program is C built by `build.rs` with `clang -O2 -g -target bpf` and loaded by `aya` (pure
//! Rust, so `rtp_app` stays one static-friendly aarch64 binary with no libbpf/libxdp to
//! cross-link). A Rust BPF program (`aya-ebpf`) would need a nightly toolchain and `bpf-linker`,
//! neither of which this project's hosts or Yocto build have; Debian's clang and libbpf-dev
//! headers are ordinary packages.
//!
//! # TX
//! [`tx::XdpSender`] sends UDP datagrams (RTP packets) to one destination: each is written behind
//! Ethernet/IPv4-or-IPv6/UDP headers ([`frame::UdpFrameTemplate`], checksums computed) into a free
//! UMEM frame and published on the TX ring; completed frames come back from the completion ring.
//! No XDP program is involved. Seed 003's bug 1 (an `outstanding_tx` that could underflow, hidden
//! by a clamp) is designed out by [`tx::TxAccounting`]: frames are tracked by index and marked in
//! flight before they are published; see the [`tx`] module doc.
//!
//! # Example
//! ```no_run
//! use rtpmgr_xdp::{run_rx, Limits, XdpConfig};
//! use std::sync::atomic::AtomicBool;
//! let stop = AtomicBool::new(false); // set it from a signal handler (signal-hook)
//! let ch = rtpmgr::Channel::open(&rtpmgr::Backend::kernel(0))?;
//! let cfg = XdpConfig { iface: "eth0".into(), ports: vec![5004], ..XdpConfig::default() };
//! let summary = run_rx(&cfg, &ch, Limits { packets: Some(1000), duration: None }, &stop)?;
//! println!("{}", summary.line());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs, missing_debug_implementations)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod fill;
pub mod frame;
pub mod iface;
pub mod session;
pub mod stats;
pub mod steer;
pub mod tx;

use fill::{refill, RefillPolicy};
use nix_free::poll_in;
use session::{Session, Step};
use stats::{Counters, Snapshot, StatsThread};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
pub use steer::{SteerCounters, XdpMode};

/// Which RX queues of the interface a run serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Queues {
    /// These queues (order and duplicates do not matter).
    List(Vec<u32>),
    /// Every RX queue the interface has (`ETHTOOL_GCHANNELS`, else `/sys/class/net/IF/queues`).
    All,
}

impl Queues {
    /// Just queue `q`.
    pub fn one(q: u32) -> Queues {
        Queues::List(vec![q])
    }
}

impl Default for Queues {
    /// Queue 0.
    fn default() -> Self {
        Queues::one(0)
    }
}

/// Errors of the AF_XDP path, each naming what was being done and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No such interface.
    #[error("no network interface {0:?} (see `ip link`)")]
    NoInterface(String),
    /// Seed bug 3: a queue the interface does not have.
    #[error("queue {queue} does not exist: {iface} has {count} RX queue(s), so --queue must be in 0..{}", count.saturating_sub(1))]
    QueueOutOfRange {
        /// Interface.
        iface: String,
        /// The queue asked for.
        queue: u32,
        /// Queues the interface has (or the XSKMAP can hold).
        count: u32,
    },
    /// A configuration value that cannot work.
    #[error("{0}")]
    Config(String),
    /// Loading the BPF object or using its maps failed.
    #[error("{what}: {source}")]
    Bpf {
        /// What was being done.
        what: String,
        /// aya's error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Attaching the program failed.
    #[error("cannot attach XDP ({} mode) to {iface}: {source} ({})", mode.as_str(), steer::attach_advice(iface, *mode, source.as_ref()))]
    Attach {
        /// Interface.
        iface: String,
        /// Mode asked for.
        mode: XdpMode,
        /// aya's error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// An AF_XDP socket operation failed.
    #[error("AF_XDP: cannot {what}: {errno}")]
    Xsk {
        /// What was being done.
        what: String,
        /// The errno.
        errno: String,
    },
    /// Binding the socket to the queue failed.
    #[error("cannot bind the AF_XDP socket to {iface} queue {queue} ({copy_mode:?}): {errno}")]
    Bind {
        /// Interface.
        iface: String,
        /// Queue.
        queue: u32,
        /// Copy mode asked for.
        copy_mode: CopyMode,
        /// The errno, with what it usually means here.
        errno: String,
    },
    /// A system call failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// The ring refused an operation.
    #[error(transparent)]
    Ring(#[from] rtpmgr::Error),
    /// A stop (signal) arrived during setup, before this step; everything was undone.
    #[error("stopped during setup (before {0:?})")]
    Interrupted(Step),
    /// A test hook failed this step on purpose.
    #[error("injected failure at {0:?}")]
    Injected(Step),
}

impl Error {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io { what: what.into(), source }
    }
    pub(crate) fn bpf(what: &str, source: impl std::error::Error + Send + Sync + 'static) -> Error {
        Error::Bpf { what: what.into(), source: Box::new(source) }
    }
    pub(crate) fn bpf_msg(what: &str) -> Error {
        Error::Bpf { what: what.into(), source: "not found".into() }
    }
}

/// Result of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Copy or zero-copy binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CopyMode {
    /// Let the kernel choose (zero-copy if the driver supports it).
    #[default]
    Auto,
    /// Force copy mode (`XDP_COPY`): works on every driver, e.g. veth.
    Copy,
    /// Force zero-copy (`XDP_ZEROCOPY`): fails on drivers without AF_XDP zero-copy support.
    ZeroCopy,
}

/// How the receive loop waits for packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WaitMode {
    /// `poll(2)` on the socket when the RX ring is empty: no CPU burnt while idle.
    #[default]
    Poll,
    /// Spin on the RX ring (waking the driver when it asks): lowest latency, one core at 100 %.
    BusyPoll,
}

/// Settings of an AF_XDP receive run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XdpConfig {
    /// Interface to receive on.
    pub iface: String,
    /// RX queues of the interface to serve (one socket each).
    pub queues: Queues,
    /// UDP destination ports that carry RTP (1..=16 ports).
    pub ports: Vec<u16>,
    /// Driver or generic XDP, or native with a fallback to generic (auto).
    pub xdp_mode: XdpMode,
    /// Map the UMEM in 2 MiB huge pages (they must be reserved: `vm.nr_hugepages`).
    pub hugepages: bool,
    /// Copy or zero-copy.
    pub copy_mode: CopyMode,
    /// Poll or busy-poll.
    pub wait: WaitMode,
    /// UMEM frame size: a power of two from 2048 to the page size (seed "Limitation 3").
    pub frame_size: u32,
    /// UMEM frames (at least twice `ring_size`), shared by all queues.
    pub frames: u32,
    /// Entries of the fill, completion and RX rings (power of two); with several queues each
    /// queue's rings get a share (see [`session::ring_size_per_queue`]).
    pub ring_size: u32,
    /// Frames per RX batch (and slots per ring batch), 1..=256.
    pub batch: u32,
    /// Period of the stats line (None: only the final line).
    pub interval: Option<Duration>,
}

impl Default for XdpConfig {
    /// Queue 0, port 5004, auto XDP mode (native, else skb), normal pages, kernel's choice of copy mode, poll, 2 KiB frames; 8192
    /// ring entries and 16384 frames (32 MiB): big enough that a descheduled receiver does not
    /// starve the fill ring (measured in the QEMU guest, shared/notes/afxdp.md).
    fn default() -> Self {
        XdpConfig {
            iface: String::new(),
            queues: Queues::default(),
            ports: vec![5004],
            xdp_mode: XdpMode::Auto,
            hugepages: false,
            copy_mode: CopyMode::Auto,
            wait: WaitMode::Poll,
            frame_size: 2048,
            frames: 16384,
            ring_size: 8192,
            batch: 64,
            interval: Some(Duration::from_secs(2)),
        }
    }
}

/// `-t` and `-l`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Stop after this many frames received.
    pub packets: Option<u64>,
}

/// What asks a run to stop (a signal handler's flag, typically).
pub trait StopFlag {
    /// True once the run should end.
    fn should_stop(&self) -> bool;
}

impl StopFlag for AtomicBool {
    fn should_stop(&self) -> bool {
        self.load(Ordering::Acquire)
    }
}

/// A closure as a [`StopFlag`] (e.g. `StopFn(|| state.should_stop())`).
#[derive(Debug, Clone, Copy)]
pub struct StopFn<F>(pub F);

impl<F: Fn() -> bool> StopFlag for StopFn<F> {
    fn should_stop(&self) -> bool {
        (self.0)()
    }
}

/// Why a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The stop flag (a signal).
    Signal,
    /// `-t` expired.
    TimeLimit,
    /// `-l` reached.
    PacketLimit,
}

impl StopReason {
    /// Name in the final line: signal, time_limit, packet_limit.
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Signal => "signal",
            StopReason::TimeLimit => "time_limit",
            StopReason::PacketLimit => "packet_limit",
        }
    }
}

/// What one queue did in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueSummary {
    /// The queue index.
    pub queue: u32,
    /// Frames read from its RX ring.
    pub packets: u64,
    /// The XDP program's counters of the queue.
    pub xdp: Option<SteerCounters>,
    /// Its socket's kernel counters: (rx_dropped, rx_fill_ring_empty_descs, rx_ring_full).
    pub xsk_drops: Option<(u64, u64, u64)>,
}

/// The outcome of a run.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Our counters (all queues).
    pub counters: Snapshot,
    /// The XDP program's counters, summed over the queues.
    pub xdp: Option<SteerCounters>,
    /// The sockets' kernel counters, summed: (rx_dropped, rx_fill_ring_empty_descs, rx_ring_full).
    pub xsk_drops: Option<(u64, u64, u64)>,
    /// Per queue, in queue order (empty when the run stopped during setup).
    pub queues: Vec<QueueSummary>,
    /// The mode the program was attached in (native or skb; None: stopped during setup).
    pub xdp_mode: Option<XdpMode>,
    /// Whether the sockets were bound in zero-copy mode (None: unknown or not bound).
    pub zero_copy: Option<bool>,
    /// Receive loop run time.
    pub elapsed: Duration,
    /// Why it ended.
    pub reason: StopReason,
}

impl Summary {
    /// The final stats line (seed shape, rates over the whole run, totals of all queues), then
    /// the attach and bind modes; with several queues one more line per queue:
    ///
    /// ```text
    /// AF_XDP RX queue 2: pkts:500 | xdp seen:500 redirected:500 passed:0 | xsk rx_dropped:0 fill_empty:0 rx_ring_full:0
    /// ```
    pub fn line(&self) -> String {
        let mut l = stats::line(&self.counters, &Snapshot::default(), self.elapsed, self.xdp.as_ref());
        if let Some((dropped, fill_empty, ring_full)) = self.xsk_drops {
            l.push_str(&format!(" | xsk rx_dropped:{dropped} fill_empty:{fill_empty} rx_ring_full:{ring_full}"));
        }
        if let Some(m) = self.xdp_mode {
            let bind = match self.zero_copy {
                Some(true) => "zero-copy",
                Some(false) => "copy",
                None => "unknown",
            };
            l.push_str(&format!(" | mode:{} bind:{bind}", m.as_str()));
        }
        l.push_str(&format!(" | exit:{}", self.reason.as_str()));
        if self.queues.len() > 1 {
            for q in &self.queues {
                l.push_str(&format!("\nAF_XDP RX queue {}: pkts:{}", q.queue, q.packets));
                if let Some(x) = q.xdp {
                    l.push_str(&format!(
                        " | xdp seen:{} redirected:{} passed:{} malformed:{}",
                        x.seen, x.redirected, x.passed, x.malformed
                    ));
                }
                if let Some((dropped, fill_empty, ring_full)) = q.xsk_drops {
                    l.push_str(&format!(
                        " | xsk rx_dropped:{dropped} fill_empty:{fill_empty} rx_ring_full:{ring_full}"
                    ));
                }
            }
        }
        l
    }
}

/// Receives RTP on `config.iface` queues `config.queues` into `ring` until `stop`, `-t` or `-l`.
///
/// Starts the channel if it is stopped (producers do). Prints the periodic stats line to stdout
/// every `config.interval`. Install the signal handler that sets `stop` *before* calling this:
/// `stop` is checked before every setup step and on every loop iteration, so a signal at any
/// time ends the run with everything cleaned up (seed bug 6).
///
/// # Errors
/// Setup errors (interface, queue, frame size/MTU, BPF, AF_XDP, ring); ring errors while running.
/// After an error nothing is left attached or allocated.
pub fn run_rx<S: StopFlag + ?Sized>(
    config: &XdpConfig,
    ring: &rtpmgr::Channel,
    limits: Limits,
    stop: &S,
) -> Result<Summary> {
    run_rx_with_hook(config, ring, limits, stop, &mut |_| Ok(()))
}

/// [`run_rx`] with a hook called before every setup step (tests inject failures with it).
#[doc(hidden)]
pub fn run_rx_with_hook<S: StopFlag + ?Sized>(
    config: &XdpConfig,
    ring: &rtpmgr::Channel,
    limits: Limits,
    stop: &S,
    hook: &mut dyn FnMut(Step) -> Result<()>,
) -> Result<Summary> {
    if !(1..=256).contains(&config.batch) {
        return Err(Error::Config(format!("batch {} must be 1..=256", config.batch)));
    }
    if !ring.is_running()? {
        log::info!("{} is stopped; starting it", ring.name());
        ring.start()?;
    }
    let mut producer = ring.producer()?;
    let mut session = match Session::open(config, stop, hook) {
        Ok(s) => s,
        // A signal during setup is a clean stop like any other: nothing was left behind.
        Err(Error::Interrupted(step)) => {
            log::info!("stopped during AF_XDP setup (before {step:?})");
            return Ok(Summary {
                counters: Snapshot::default(),
                xdp: None,
                xsk_drops: None,
                queues: Vec::new(),
                xdp_mode: None,
                zero_copy: None,
                elapsed: Duration::ZERO,
                reason: StopReason::Signal,
            });
        }
        Err(e) => return Err(e),
    };
    let counters = Arc::new(Counters::default());
    // One reader of the program's counters, shared by the stats thread and the final read.
    let reader: Option<Arc<steer::CounterReader>> = session.counters.take().map(Arc::new);
    let xdp_source: stats::XdpSource = match &reader {
        Some(r) => {
            let r = Arc::clone(r);
            Box::new(move || r.read().ok())
        }
        None => Box::new(|| None),
    };
    let stats = StatsThread::start(config.interval, Arc::clone(&counters), xdp_source, std::io::stdout())
        .map_err(|e| Error::io("start the xdp-stats thread", e))?;
    let served: Vec<u32> = session.queues.iter().map(|q| q.queue).collect();
    log::info!(
        "xdp: receiving UDP ports {:?} on {} queue(s) {served:?} ({} XDP, {:?}, {:?}) into {}",
        config.ports,
        config.iface,
        session.attached.as_str(),
        config.copy_mode,
        config.wait,
        ring.name()
    );

    let started = Instant::now();
    let result = rx_loop(&mut session, &mut producer, config, limits, stop, &counters, started);
    let elapsed = started.elapsed();
    stats.finish();
    let xdp = reader.as_ref().and_then(|r| r.read().ok());
    let queues: Vec<QueueSummary> = session
        .queues
        .iter()
        .map(|q| QueueSummary {
            queue: q.queue,
            packets: q.packets,
            xdp: reader.as_ref().and_then(|r| r.read_queue(q.queue).ok()),
            xsk_drops: q.xsk_stats().map(|s| (s.rx_dropped, s.rx_fill_ring_empty_descs, s.rx_ring_full)),
        })
        .collect();
    let xsk_drops = queues.iter().try_fold((0, 0, 0), |a, q| q.xsk_drops.map(|(d, f, r)| (a.0 + d, a.1 + f, a.2 + r)));
    let (xdp_mode, zero_copy) = (Some(session.attached), session.zero_copy);
    // Detach explicitly so a failure is reported, then drop the rest in order.
    let detached = session.detach();
    drop(session);
    let reason = result?;
    detached?;
    Ok(Summary { counters: counters.snapshot(), xdp, xsk_drops, queues, xdp_mode, zero_copy, elapsed, reason })
}

/// How long one idle wait lasts before the stop flag and limits are looked at again.
const IDLE_SLICE: Duration = Duration::from_millis(100);

fn rx_loop<S: StopFlag + ?Sized>(
    s: &mut Session,
    producer: &mut rtpmgr::Producer,
    cfg: &XdpConfig,
    limits: Limits,
    stop: &S,
    c: &Counters,
    started: Instant,
) -> Result<StopReason> {
    let batch = cfg.batch;
    let mut bufs = Buffers {
        descs: Vec::with_capacity(batch as usize),
        good: Vec::with_capacity(batch as usize),
        slot_cap: producer.ring().layout().slot_payload as usize,
        stopped_warned: false,
    };
    let mut fds: Vec<libc::pollfd> =
        s.queues.iter().map(|q| libc::pollfd { fd: q.rx.as_raw_fd(), events: libc::POLLIN, revents: 0 }).collect();
    let policy = RefillPolicy::default();
    loop {
        if stop.should_stop() {
            return Ok(StopReason::Signal);
        }
        if limits.duration.is_some_and(|d| started.elapsed() >= d) {
            return Ok(StopReason::TimeLimit);
        }
        // One round: every queue in turn, at most one batch each, so that no queue starves
        // another. -l is checked before every queue's batch.
        let mut got = 0usize;
        for qi in 0..s.queues.len() {
            let received = c.packets.load(Ordering::Relaxed);
            let remaining = limits.packets.map(|l| l.saturating_sub(received)).unwrap_or(u64::MAX);
            if remaining == 0 {
                return Ok(StopReason::PacketLimit);
            }
            let want = remaining.min(u64::from(batch)) as u32;
            got += rx_batch(s, qi, want, producer, c, &mut bufs)?;
        }
        if got > 0 {
            continue;
        }
        // Idle: settle what the fill rings are owed, then wait on every socket at once.
        for q in &mut s.queues {
            if q.owed > 0 {
                let r = refill(&mut q.fq, &mut s.pool.free, q.owed, policy);
                q.owed = r.short;
            }
        }
        match cfg.wait {
            WaitMode::Poll => {
                let slice =
                    limits.duration.map(|d| d.saturating_sub(started.elapsed()).min(IDLE_SLICE)).unwrap_or(IDLE_SLICE);
                poll_in(&mut fds, slice).map_err(|e| Error::io("poll on the AF_XDP sockets", e))?;
            }
            WaitMode::BusyPoll => {
                for q in &mut s.queues {
                    if q.fq.needs_wakeup() {
                        q.fq.wake();
                    }
                }
                std::hint::spin_loop();
            }
        }
    }
}

/// The receive loop's reusable buffers and state.
struct Buffers {
    descs: Vec<(u64, u32)>,
    good: Vec<(u64, u32)>,
    slot_cap: usize,
    stopped_warned: bool,
}

/// Reads at most `want` frames from queue `qi`'s RX ring into ring slots and gives the frames
/// back to that queue's fill ring; returns the frames read.
fn rx_batch(
    s: &mut Session,
    qi: usize,
    want: u32,
    producer: &mut rtpmgr::Producer,
    c: &Counters,
    b: &mut Buffers,
) -> Result<usize> {
    let policy = RefillPolicy::default();
    let Session { queues, mem, pool, .. } = s;
    let q = &mut queues[qi];
    b.descs.clear();
    {
        let mut r = q.rx.receive(want);
        while let Some(d) = r.read() {
            b.descs.push((d.addr, d.len));
        }
        r.release();
    }
    if b.descs.is_empty() {
        return Ok(0);
    }
    let arrival = rtpmgr::monotonic_ns();
    Counters::add(&c.packets, b.descs.len() as u64);
    q.packets += b.descs.len() as u64;

    // Parse every frame; keep (address, length) of the good UDP payloads.
    b.good.clear();
    for &(addr, len) in &b.descs {
        // SAFETY: (addr, len) is an RX descriptor just read from this queue's RX ring; its frame
        // goes back to the fill ring only after this batch's copies (refill below).
        let Some(bytes) = (unsafe { mem.area.frame(addr, len) }) else {
            Counters::add(&c.malformed, 1);
            continue;
        };
        match frame::parse_rtp(bytes) {
            Ok(f) if f.payload.len() > b.slot_cap => {
                Counters::add(&c.too_big, 1);
                log::debug!("RTP packet of {} bytes does not fit a {}-byte slot", f.payload.len(), b.slot_cap);
            }
            Ok(f) => {
                let off = f.payload.as_ptr() as u64 - bytes.as_ptr() as u64;
                b.good.push((addr + off, f.payload.len() as u32));
                Counters::add(&c.bytes, f.payload.len() as u64);
            }
            Err(m) => {
                Counters::add(&c.malformed, 1);
                log::debug!("malformed frame of {len} bytes: {m}");
            }
        }
    }

    if !b.good.is_empty() {
        match producer.reserve_batch(b.good.len()) {
            Ok(mut slots) => {
                for (slot, &(addr, len)) in slots.iter_mut().zip(&b.good) {
                    // SAFETY: a sub-range of an RX descriptor's frame above, still not refilled.
                    let data = unsafe { mem.area.frame(addr, len) }.expect("checked when parsed");
                    slot.fill(data)?;
                    slot.set_arrival_ns(arrival);
                }
                let got = slots.len();
                let pushed = producer.push_batch(slots)?;
                Counters::add(&c.pushed, pushed as u64);
                Counters::add(&c.ring_full, (b.good.len() - pushed) as u64);
                if got == pushed {
                    b.stopped_warned = false;
                }
            }
            Err(e) if e.is_would_block() => Counters::add(&c.ring_full, b.good.len() as u64),
            Err(e) if e.errno() as i32 == libc::EPIPE => {
                if !b.stopped_warned {
                    log::warn!("channel is stopped: packets are counted as ring_full until it is started");
                    b.stopped_warned = true;
                }
                Counters::add(&c.ring_full, b.good.len() as u64);
            }
            Err(e) => return Err(e.into()),
        }
    }

    // Every frame read goes back: to the shared pool, then (bounded) to this queue's fill ring.
    for &(addr, _) in &b.descs {
        if pool.put(addr) {
            q.owed += 1;
        }
    }
    let r = refill(&mut q.fq, &mut pool.free, q.owed, policy);
    q.owed = r.short;
    Counters::add(&c.fill_short, u64::from(r.short));
    Ok(b.descs.len())
}

mod nix_free {
    //! The one raw wait of the loop (all queues' sockets at once).
    use std::time::Duration;

    /// `poll(2)` for POLLIN on every fd of `fds`, at most `timeout`; EINTR counts as "woken".
    pub fn poll_in(fds: &mut [libc::pollfd], timeout: Duration) -> std::io::Result<bool> {
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: fds is a valid, writable array of fds.len() pollfds for the call.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                return Ok(false);
            }
            return Err(e);
        }
        Ok(r > 0)
    }
}

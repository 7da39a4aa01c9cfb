//! End to end: UDP RTP in -> GStreamer `rtpjitterbuffer ! appsink`, through the ring or not.
//!
//! ```text
//! kernel: sender --NIC--> encap_rcv (softirq) --ring--> rtp-feeder RX code ! rtpjitterbuffer ! {appsink}
//!         (rtp_app --mode rx --path kernel made and attached the socket, and only supervises)
//! ring:   sender --UDP--> rtp_app --mode rx (own process, recvmmsg) --ring--> rtp-feeder RX code
//!         (pop batch, zero-copy lend to {appsrc}) ! rtpjitterbuffer ! {appsink}
//! gst:    sender --UDP--> {udpsrc} ! rtpjitterbuffer ! {appsink}
//! floor-xdp / floor-sock: the same traffic dropped by XDP_DROP on the NIC / at a full, unread socket
//! ```
//!
//! With `--wire` the sender is `rtpmgr-bench peer` on the HOST and the traffic enters the guest
//! through its NIC (crate::wire); CPU per packet is then guest-wide busy time from /proc/stat.
//! Without it (host runs, tests) the sender is a local child process over loopback.
//!
//! The ring path runs the feeder's own RX code (`rtp_feeder::rx::RxFeed`, `rx_appsrc`) in this
//! process instead of the `rtp-feeder` binary, so that the appsink, where each packet's latency
//! is taken, is within reach; the pipeline and the per-packet work are the feeder's.
//!
//! The sender is a child process (`rtpmgr-bench send`), so its CPU time is in neither path's
//! account. Each packet carries its CLOCK_MONOTONIC send time in payload bytes 12..20; the appsink
//! callback takes `now - send time`, which covers UDP, the receiver, the ring (or udpsrc) and the
//! jitterbuffer. CPU time per packet is utime + stime of the receiving processes (this process's
//! getrusage, plus /proc/PID/stat of rtp_app for the ring path) over a rate step, divided by the
//! packets delivered in it.

use anyhow::{anyhow, bail, Context, Result};
use gstreamer as gst;
use gstreamer::prelude::*;
use rtp_feeder::appel::AppSink;
use rtpmgr::{monotonic_ns, Backend, Channel};
use serde::Serialize;
use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// RTP caps of the benchmark stream (the feeder's default caps).
const CAPS: &str = "application/x-rtp,media=audio,clock-rate=48000,encoding-name=OPUS,payload=96";
/// The jitterbuffer latency of the shipped feeder.toml.
const JB: &str = "rtpjitterbuffer latency=50";
/// Where the rtp_app processes the bench starts write their stderr: the directory rtp_app's
/// AppArmor profile lets it write besides its own (docs/security.md), so that the confined
/// binary keeps the file it inherits.
pub(crate) const RTP_APP_LOG_DIR: &str = "/tmp/rtpmgr";

fn rtp_app_log(channel: u32) -> String {
    format!("{RTP_APP_LOG_DIR}/rtpmgr-bench-rtp_app-{channel}.log")
}

/// Which receive path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum E2ePath {
    /// The product: rtp-feeder's `RxFeed`, popping in appsrc's `need-data` (one thread).
    Ring,
    /// The feeder's earlier design, kept as a measured alternative: a thread of its own pops and
    /// queues into appsrc, whose streaming thread pushes downstream (two threads).
    RingThread,
    /// As `ring`, but each popped batch goes into appsrc as one buffer list (`push-buffer-list`).
    RingLists,
    /// The GStreamer element: `rtpmgrsrc ! rtpjitterbuffer ! appsink`, a buffer list per batch.
    Rtpmgrsrc,
    /// Kernel-attached RX (`rtp_app --mode rx --path kernel`: the module receives in softirq), consumed
    /// as `ring` (the feeder's need-data RX, one buffer per packet).
    Kernel,
    /// Kernel-attached RX, consumed as `ring-lists`.
    KernelLists,
    /// Kernel-attached RX, consumed by `rtpmgrsrc`.
    KernelRtpmgrsrc,
    /// Plain `udpsrc ! rtpjitterbuffer ! appsink`.
    Gst,
    /// Floor: XDP_DROP on the guest NIC (per packet: the NIC and driver only).
    FloorXdp,
    /// Floor: a socket nobody reads with the smallest SO_RCVBUF (NIC, IP and UDP, then dropped).
    FloorSock,
}

impl E2ePath {
    pub fn name(self) -> &'static str {
        match self {
            E2ePath::Ring => "ring",
            E2ePath::RingThread => "ring-thread",
            E2ePath::RingLists => "ring-lists",
            E2ePath::Rtpmgrsrc => "rtpmgrsrc",
            E2ePath::Kernel => "kernel",
            E2ePath::KernelLists => "kernel-lists",
            E2ePath::KernelRtpmgrsrc => "kernel-rtpmgrsrc",
            E2ePath::Gst => "gst",
            E2ePath::FloorXdp => "floor-xdp",
            E2ePath::FloorSock => "floor-sock",
        }
    }

    /// The ring is filled by the kernel from an attached socket.
    pub fn kernel_rx(self) -> bool {
        matches!(self, E2ePath::Kernel | E2ePath::KernelLists | E2ePath::KernelRtpmgrsrc)
    }

    pub fn is_floor(self) -> bool {
        matches!(self, E2ePath::FloorXdp | E2ePath::FloorSock)
    }
}

/// One rate step's result.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub path: E2ePath,
    pub rate: u64,
    pub sent: u64,
    pub received: u64,
    pub lost: u64,
    /// CPU µs per delivered packet: guest-wide busy time with `--wire`, else the receiving
    /// processes only. Floors: per frame the NIC received.
    pub cpu_us_per_pkt: f64,
    /// Share of one CPU the receiving side used.
    pub cpu_load: f64,
    pub lat_p50_us: f64,
    pub lat_p99_us: f64,
    /// Latency quantiles 0, 1, ..., 100 % (µs), for the CDF plot.
    pub lat_cdf_us: Vec<f64>,
    /// CPU µs per delivered packet by thread ("process/thread name"), largest first: where the
    /// time goes (perf is not available in the guest).
    pub threads: Vec<(String, f64)>,
    /// Kernel-attached paths: consumer wake-ups per packet pushed (stats.wakeups / pushed).
    pub wakeups_per_pkt: f64,
    /// Frames the guest NIC received in the step (`--wire`).
    pub nic_rx: u64,
}

/// Traffic from the host through the guest NIC.
#[derive(Clone)]
pub struct Wire {
    pub peer: Arc<crate::wire::Peer>,
    /// The guest interface (XDP floor, counters).
    pub iface: String,
}

impl std::fmt::Debug for Wire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Wire({})", self.iface)
    }
}

#[derive(Debug, Clone)]
pub struct E2eParams {
    pub rates: Vec<u64>,
    pub secs: f64,
    pub payload: usize,
    pub port: u16,
    /// Ring channel for the ring path (not one the services use).
    pub channel: u32,
    pub backend_shm: Option<String>,
    /// Path of rtp_app.
    pub rtp_app: String,
    /// Sender on the host, through the NIC (else a local child over loopback).
    pub wire: Option<Wire>,
    /// Kernel-attached paths: the wake-up rule (slots, µs); None: rtp_app's default.
    pub wake: Option<(u32, u32)>,
}

impl E2eParams {
    /// The address the receivers bind.
    fn bind_addr(&self) -> String {
        if self.wire.is_some() {
            crate::wire::GUEST_IP.to_string()
        } else {
            "127.0.0.1".into()
        }
    }
}

/// What the appsink callback collects.
#[derive(Debug, Default)]
struct Sink {
    received: AtomicU64,
    lat_ns: Mutex<Vec<u64>>,
    /// Sender clock minus this clock, ns (0 when both are this machine's).
    offset_ns: std::sync::atomic::AtomicI64,
}

fn build_appsink(sink: &Arc<Sink>) -> Result<gst::Element> {
    let appsink = AppSink::new("bench-sink")?;
    // sync=false: deliver as soon as the jitterbuffer pushes, as fakesink sync=false would.
    appsink.element().set_property("sync", false);
    let s = Arc::clone(sink);
    appsink.on_sample(move |_, sample| {
        let now = (monotonic_ns() as i64).wrapping_add(s.offset_ns.load(Relaxed)) as u64;
        if let Some(buf) = sample.buffer() {
            if let Ok(map) = buf.map_readable() {
                if map.len() >= 20 {
                    let sent = u64::from_le_bytes(map[12..20].try_into().expect("8 bytes"));
                    s.lat_ns.lock().expect("latency list").push(now.saturating_sub(sent));
                }
            }
        }
        s.received.fetch_add(1, Relaxed);
        Ok(gst::FlowSuccess::Ok)
    });
    Ok(appsink.element().clone())
}

/// CPU time (user + system) of this process, in µs.
pub fn self_cpu_us() -> u64 {
    // SAFETY: getrusage fills the zeroed struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer to a rusage.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// CPU time (utime + stime) of another process from /proc/PID/stat, in µs.
pub fn proc_cpu_us(pid: u32) -> Result<u64> {
    let stat =
        std::fs::read_to_string(format!("/proc/{pid}/stat")).with_context(|| format!("read /proc/{pid}/stat"))?;
    // Fields after the ")" of comm: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').ok_or_else(|| anyhow!("odd /proc/{pid}/stat"))?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = f.get(11).and_then(|v| v.parse().ok()).ok_or_else(|| anyhow!("no utime in /proc/{pid}/stat"))?;
    let stime: u64 = f.get(12).and_then(|v| v.parse().ok()).ok_or_else(|| anyhow!("no stime in /proc/{pid}/stat"))?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Ok((utime + stime) * 1_000_000 / hz)
}

/// The receiving side of one path, running until dropped.
struct Receiver {
    pipeline: gst::Pipeline,
    sink: Arc<Sink>,
    rx_proc: Option<Child>,
    feeder: Option<Feeder>,
    /// Kernel-attached RX set up by the bench itself: the socket and the channel handle that
    /// attached it (closing it detaches).
    attached: Option<(UdpSocket, Channel)>,
}

/// How the ring path feeds appsrc.
enum Feeder {
    NeedData(rtp_feeder::rx::RxFeed<rtpmgr::Consumer>),
    Thread(Arc<AtomicBool>, std::thread::JoinHandle<Result<()>>),
}

/// CPU µs (utime + stime) of every thread of `pid`, keyed "process/thread name".
fn thread_cpu_us(pid: u32, label: &str, into: &mut std::collections::BTreeMap<String, u64>) {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return };
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    for e in dir.flatten() {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else { continue };
        let (Some(open), Some((_, rest))) = (stat.find('('), stat.rsplit_once(')')) else { continue };
        let comm = &stat[open + 1..stat.len() - rest.len() - 1];
        let f: Vec<&str> = rest.split_whitespace().collect();
        let t: u64 = f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
            + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        *into.entry(format!("{label}/{comm}")).or_default() += t * 1_000_000 / hz;
    }
}

impl Receiver {
    fn threads(&self) -> std::collections::BTreeMap<String, u64> {
        let mut m = std::collections::BTreeMap::new();
        thread_cpu_us(std::process::id(), "bench", &mut m);
        if let Some(c) = &self.rx_proc {
            thread_cpu_us(c.id(), "rtp_app", &mut m);
        }
        m
    }

    fn cpu_us(&self, wire: bool) -> Result<u64> {
        if wire {
            return crate::wire::guest_busy_us();
        }
        let mut t = self_cpu_us();
        if let Some(c) = &self.rx_proc {
            t += proc_cpu_us(c.id())?;
        }
        Ok(t)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        match self.feeder.take() {
            Some(Feeder::NeedData(feed)) => {
                feed.stop();
                let _ = self.pipeline.set_state(gst::State::Null);
                let _ = feed.finish();
            }
            Some(Feeder::Thread(stop, h)) => {
                stop.store(true, Relaxed);
                let _ = h.join();
            }
            None => {}
        }
        let _ = self.pipeline.set_state(gst::State::Null);
        if let Some(mut c) = self.rx_proc.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Detach (closing the attaching file) only once the consumer is gone.
        drop(self.attached.take());
    }
}

fn start_gst(p: &E2eParams) -> Result<Receiver> {
    let sink = Arc::new(Sink::default());
    let pipeline = gst::Pipeline::new();
    let src = gst::ElementFactory::make("udpsrc")
        .property("address", p.bind_addr())
        .property("port", i32::from(p.port))
        .property("caps", gst::Caps::from_str(CAPS)?)
        // As much socket buffer as rtp_app rx asks for, so both paths queue bursts alike.
        .property("buffer-size", 4i32 << 20)
        .build()
        .context("make udpsrc (gstreamer1.0-plugins-good?)")?;
    let jb = gst::parse::bin_from_description(JB, true).context("make rtpjitterbuffer")?;
    let appsink = build_appsink(&sink)?;
    pipeline.add_many([&src, jb.upcast_ref(), &appsink])?;
    gst::Element::link_many([&src, jb.upcast_ref(), &appsink])?;
    // From here on the receiver owns the pipeline (Null on drop, also on the error path).
    let rx = Receiver { pipeline, sink, rx_proc: None, feeder: None, attached: None };
    rtp_feeder::pipeline::start(&rx.pipeline).context("start the udpsrc pipeline")?;
    Ok(rx)
}

use std::str::FromStr;

fn ring_backend(p: &E2eParams) -> Backend {
    match &p.backend_shm {
        Some(name) => Backend::shm(name),
        None => Backend::kernel(p.channel),
    }
}

/// A clean ring and `rtp_app --mode rx` filling it (recvmmsg, or with `kernel` an attached socket
/// the module receives from), owned by a receiver with an empty pipeline.
fn start_rtp_app_rx(p: &E2eParams, backend: &Backend, kernel: bool) -> Result<Receiver> {
    // A clean ring: rtp_app starts the channel when it finds it stopped.
    {
        let ch = Channel::open(backend)?;
        if ch.stop().is_ok() {
            let _ = ch.reset();
        }
    }
    if kernel && KERNEL_RX_BY_BENCH.load(Relaxed) {
        return attach_rx_here(p, backend);
    }
    let mut cmd = Command::new(&p.rtp_app);
    cmd.args(["--mode", "rx", "--bind", &p.bind_addr(), "--port", &p.port.to_string(), "--interval", "3600"]);
    // Always explicit: rtp_app's rx defaults to the kernel path on the kernel backend.
    if kernel {
        cmd.args(["--path", "kernel"]);
        if let Some((slots, usecs)) = p.wake {
            cmd.args(["--wake-slots", &slots.to_string(), "--wake-usecs", &usecs.to_string()]);
        }
    } else {
        cmd.args(["--path", "socket"]);
    }
    match &p.backend_shm {
        Some(name) => cmd.args(["--backend", "shm", "--shm-name", name]),
        None => cmd.args(["--channel", &p.channel.to_string()]),
    };
    std::fs::create_dir_all(RTP_APP_LOG_DIR).with_context(|| format!("create {RTP_APP_LOG_DIR}"))?;
    let log = std::fs::File::create(rtp_app_log(p.channel)).context("create the rtp_app log")?;
    let child = cmd.stdout(Stdio::null()).stderr(log).spawn().with_context(|| format!("start {}", p.rtp_app))?;
    // From here on the receiver owns rtp_app and the pipeline: both go on every exit path, so a
    // failed run cannot leave a process holding the device.
    let mut rx = Receiver {
        pipeline: gst::Pipeline::new(),
        sink: Arc::new(Sink::default()),
        rx_proc: Some(child),
        feeder: None,
        attached: None,
    };
    // A receiver that exits at once (a flag it does not know, a port in use) says why.
    std::thread::sleep(Duration::from_millis(300));
    if let Some(status) = rx.rx_proc.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
        rx.rx_proc = None;
        let why = std::fs::read_to_string(rtp_app_log(p.channel)).unwrap_or_default();
        if kernel && why.contains("--path") && p.backend_shm.is_none() {
            // This rtp_app has no kernel path yet: attach the socket from here (the same kernel
            // work; rtp_app would only supervise), and say so in the report.
            KERNEL_RX_BY_BENCH.store(true, Relaxed);
            note(format!(
                "kernel-attached RX: {} has no --path kernel ({}); rtpmgr-bench binds the socket and ATTACHes it itself",
                p.rtp_app,
                why.lines().next().unwrap_or("").trim()
            ));
            return attach_rx_here(p, backend);
        }
        bail!(
            "{} --mode rx{} exited with {status}: {}",
            p.rtp_app,
            if kernel { " --path kernel" } else { "" },
            why.trim()
        );
    }
    Ok(rx)
}

/// Set once rtp_app turned out to have no kernel path: the bench attaches RX sockets itself.
static KERNEL_RX_BY_BENCH: AtomicBool = AtomicBool::new(false);
/// Things the report should say (how a path was measured), drained by `take_notes`.
static NOTES: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn note(s: String) {
    eprintln!("  note: {s}");
    NOTES.lock().expect("notes").push(s);
}

/// A note from another module (TX).
pub fn note_pub(s: String) {
    note(s);
}

pub fn take_notes() -> Vec<String> {
    std::mem::take(&mut *NOTES.lock().expect("notes"))
}

/// rtp_app's default wake-up rule on the kernel path (32 slots or 4 ms).
const DEFAULT_WAKE: (u32, u32) = (32, 4000);

/// Kernel-attached RX without rtp_app: a UDP socket bound as rtp_app would bind it, handed to the
/// channel with ATTACH (RX, `Channel::attach`), the wake-up rule set (SET_WAKEUP), the channel
/// started.
fn attach_rx_here(p: &E2eParams, backend: &Backend) -> Result<Receiver> {
    let sock = UdpSocket::bind((p.bind_addr().as_str(), p.port)).with_context(|| format!("bind port {}", p.port))?;
    let ch = Channel::open(backend)?;
    let (slots, usecs) = p.wake.unwrap_or(DEFAULT_WAKE);
    ch.set_wakeup(rtpmgr::Wakeup { slots, usecs })?;
    ch.attach(&sock, rtpmgr::SocketDir::Rx, rtpmgr::TxPacing::UNPACED)?;
    ch.start()?;
    Ok(Receiver {
        pipeline: gst::Pipeline::new(),
        sink: Arc::new(Sink::default()),
        rx_proc: None,
        feeder: None,
        attached: Some((sock, ch)),
    })
}

/// The GStreamer element path: `rtpmgrsrc ! rtpjitterbuffer ! appsink`, fed by rtp_app rx.
fn start_rtpmgrsrc(p: &E2eParams, kernel: bool) -> Result<Receiver> {
    gstrtpmgr::plugin_register_static().context("register the rtpmgr plugin")?;
    let backend = ring_backend(p);
    let rx = start_rtp_app_rx(p, &backend, kernel)?;
    let (pipeline, sink) = (rx.pipeline.clone(), Arc::clone(&rx.sink));
    let mut src = gst::ElementFactory::make("rtpmgrsrc")
        .property("caps", gst::Caps::from_str(CAPS)?)
        // The feeder's batch and pop wait, so both ring paths pop alike.
        .property("batch-size", 32u32)
        .property("wait-timeout", 50u32);
    src = match &p.backend_shm {
        Some(name) => src.property("shm-name", name),
        None => src.property("channel", p.channel),
    };
    let src = src.build().context("make rtpmgrsrc")?;
    let jb = gst::parse::bin_from_description(JB, true).context("make rtpjitterbuffer")?;
    let appsink = build_appsink(&sink)?;
    pipeline.add_many([&src, jb.upcast_ref(), &appsink])?;
    gst::Element::link_many([&src, jb.upcast_ref(), &appsink])?;
    rtp_feeder::pipeline::start(&pipeline).context("start the rtpmgrsrc pipeline")?;
    // rtp_app must have bound its port before the sender starts.
    std::thread::sleep(Duration::from_millis(500));
    Ok(rx)
}

/// How the feeder's RX code hands slots to appsrc.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RingMode {
    /// In need-data, one `push-buffer` per packet.
    NeedData,
    /// In need-data, one `push-buffer-list` per batch.
    NeedDataLists,
    /// A thread of its own, one `push-buffer` per packet.
    Thread,
}

fn start_ring(p: &E2eParams, mode: RingMode, kernel: bool) -> Result<Receiver> {
    let backend = ring_backend(p);
    let mut rx = start_rtp_app_rx(p, &backend, kernel)?;
    let (pipeline, sink) = (rx.pipeline.clone(), Arc::clone(&rx.sink));
    let ch = Channel::open(&backend)?;
    let consumer = ch.consumer()?;
    let layout = *consumer.ring().layout();
    let caps = rtp_feeder::pipeline::rx_caps(CAPS)?;
    let appsrc = rtp_feeder::pipeline::rx_appsrc(&caps, 256, layout.slot_payload)?;
    let jb = gst::parse::bin_from_description(JB, true).context("make rtpjitterbuffer")?;
    let appsink = build_appsink(&sink)?;
    pipeline.add_many([appsrc.element(), jb.upcast_ref(), &appsink])?;
    gst::Element::link_many([appsrc.element(), jb.upcast_ref(), &appsink])?;
    let counters = Arc::new(rtp_feeder::stats::Counters::default());
    let hwm = u64::from(layout.slot_count / 2);
    let mut pusher = rtp_feeder::rx::RxPusher::new(appsrc, counters, hwm, rtp_feeder::config::Fallback::Copy, 0);
    pusher.buffer_lists = mode == RingMode::NeedDataLists;
    if mode != RingMode::Thread {
        // The feeder's RX path: appsrc's need-data pops up to 32 READY slots (waiting 50 ms at
        // most) and lends each to appsrc, in appsrc's streaming thread.
        let feed = rtp_feeder::rx::RxFeed::attach(consumer, pusher, 32, Duration::from_millis(50));
        rtp_feeder::pipeline::start(&pipeline).context("start the appsrc pipeline")?;
        rx.feeder = Some(Feeder::NeedData(feed));
    } else {
        // The earlier design: a thread pops up to 32 READY slots (waiting 50 ms at most) and
        // queues each into appsrc; appsrc's streaming thread pushes them on.
        rtp_feeder::pipeline::start(&pipeline).context("start the appsrc pipeline")?;
        pusher.base_time_ns = pipeline.base_time().map_or(0, |t| t.nseconds());
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let mut consumer = consumer;
        let h = std::thread::Builder::new().name("feeder-rx".into()).spawn(move || -> Result<()> {
            while !stop2.load(Relaxed) {
                let slots = consumer.pop_batch_wait(32, Some(Duration::from_millis(50)))?;
                for s in slots {
                    if pusher.push(s).is_err() {
                        return Ok(());
                    }
                }
            }
            Ok(())
        })?;
        rx.feeder = Some(Feeder::Thread(stop, h));
    }
    // rtp_app must have bound its port before the sender starts.
    std::thread::sleep(Duration::from_millis(500));
    Ok(rx)
}

/// Runs every rate step on one path; the receiver is started once per call.
pub fn run_path(path: E2ePath, p: &E2eParams, exe: &std::path::Path) -> Result<Vec<Step>> {
    if path.is_floor() {
        return run_floor(path, p);
    }
    let rx = start_receiver(path, p)?;
    // Warm-up: plugin caches, page faults, the jitterbuffer's first-packet handling.
    let mut seq0 = 0u64;
    send(exe, p, 200, 0.5, &mut seq0)?;
    std::thread::sleep(Duration::from_millis(300));
    let wire = p.wire.is_some();
    let mut steps = Vec::new();
    for &rate in &p.rates {
        if let Some(w) = &p.wire {
            rx.sink.offset_ns.store(w.peer.clock_offset()?.0, Relaxed);
        }
        rx.sink.lat_ns.lock().expect("latency list").clear();
        let r0 = rx.sink.received.load(Relaxed);
        let ring0 = ring_counts(path, p.channel);
        let nic0 = nic_rx(p);
        let c0 = rx.cpu_us(wire)?;
        let th0 = rx.threads();
        let t0 = Instant::now();
        let sent = send(exe, p, rate, p.secs, &mut seq0)?;
        // Drain: the jitterbuffer holds up to its latency, the ring a few batches.
        let mut last = rx.sink.received.load(Relaxed);
        loop {
            std::thread::sleep(Duration::from_millis(200));
            let now = rx.sink.received.load(Relaxed);
            if now == last {
                break;
            }
            last = now;
        }
        let wall = t0.elapsed().as_secs_f64();
        let cpu = rx.cpu_us(wire)? - c0;
        let nic = nic_rx(p).saturating_sub(nic0);
        let ring1 = ring_counts(path, p.channel);
        let wakeups_per_pkt = match (ring0, ring1) {
            (Some((w0, p0)), Some((w1, p1))) if p1 > p0 => (w1 - w0) as f64 / (p1 - p0) as f64,
            _ => f64::NAN,
        };
        let received = rx.sink.received.load(Relaxed) - r0;
        let mut threads: Vec<(String, f64)> = rx
            .threads()
            .into_iter()
            .filter_map(|(k, v)| {
                let d = v.saturating_sub(th0.get(&k).copied().unwrap_or(v));
                (d > 0).then(|| (k, d as f64 / received.max(1) as f64))
            })
            .collect();
        threads.sort_by(|a, b| b.1.total_cmp(&a.1));
        let mut lat = std::mem::take(&mut *rx.sink.lat_ns.lock().expect("latency list"));
        lat.sort_unstable();
        let q = |f: f64| {
            if lat.is_empty() {
                f64::NAN
            } else {
                lat[((lat.len() - 1) as f64 * f).round() as usize] as f64 / 1e3
            }
        };
        steps.push(Step {
            path,
            rate,
            sent,
            received,
            lost: sent.saturating_sub(received),
            cpu_us_per_pkt: if received == 0 { f64::NAN } else { cpu as f64 / received as f64 },
            cpu_load: cpu as f64 / 1e6 / wall,
            lat_p50_us: q(0.5),
            lat_p99_us: q(0.99),
            lat_cdf_us: (0..=100).map(|i| q(i as f64 / 100.0)).collect(),
            threads,
            wakeups_per_pkt,
            nic_rx: nic,
        });
    }
    Ok(steps)
}

/// Starts the receiving side of `path` (not a floor).
fn start_receiver(path: E2ePath, p: &E2eParams) -> Result<Receiver> {
    match path {
        E2ePath::Ring => start_ring(p, RingMode::NeedData, false),
        E2ePath::RingThread => start_ring(p, RingMode::Thread, false),
        E2ePath::RingLists => start_ring(p, RingMode::NeedDataLists, false),
        E2ePath::Rtpmgrsrc => start_rtpmgrsrc(p, false),
        E2ePath::Kernel => start_ring(p, RingMode::NeedData, true),
        E2ePath::KernelLists => start_ring(p, RingMode::NeedDataLists, true),
        E2ePath::KernelRtpmgrsrc => start_rtpmgrsrc(p, true),
        E2ePath::Gst => start_gst(p),
        E2ePath::FloorXdp | E2ePath::FloorSock => bail!("{} is a floor, not a receiver", path.name()),
    }
}

/// (wakeups, pushed_packets) of the channel, for the kernel-attached paths.
fn ring_counts(path: E2ePath, channel: u32) -> Option<(u64, u64)> {
    if !path.kernel_rx() {
        return None;
    }
    Some((crate::wire::ring_stat(channel, "wakeups")?, crate::wire::ring_stat(channel, "pushed_packets")?))
}

fn nic_rx(p: &E2eParams) -> u64 {
    p.wire.as_ref().and_then(|w| crate::wire::nic_rx_packets(&w.iface).ok()).unwrap_or(0)
}

/// A floor: the same traffic, dropped as early as possible (XDP) or after the UDP stack (an
/// unread socket). CPU per packet = guest busy time / frames the NIC received.
fn run_floor(path: E2ePath, p: &E2eParams) -> Result<Vec<Step>> {
    let Some(w) = &p.wire else {
        bail!("{}: needs traffic through the NIC (--wire); over loopback there is no NIC to drop at", path.name())
    };
    let mut steps = Vec::new();
    let mut seq0 = 0u64;
    for &rate in &p.rates {
        let unread = if path == E2ePath::FloorSock { Some(crate::wire::unread_socket(p.port)?) } else { None };
        let nic0 = crate::wire::nic_rx_packets(&w.iface)?;
        let c0 = crate::wire::guest_busy_us()?;
        let t0 = Instant::now();
        let id = w.peer.start(&crate::wire::Streams::one(p.port, p.payload), rate, p.secs, seq0)?;
        // XDP_DROP drops every frame, the peer's answers too: attach only while the peer sends.
        let xdp = if path == E2ePath::FloorXdp { Some(crate::wire::XdpDrop::attach(&w.iface)?) } else { None };
        std::thread::sleep(Duration::from_secs_f64(p.secs + 0.2));
        let cpu = crate::wire::guest_busy_us()? - c0;
        let wall = t0.elapsed().as_secs_f64();
        let nic = crate::wire::nic_rx_packets(&w.iface)?.saturating_sub(nic0);
        let mode = xdp.as_ref().map(|x| x.mode);
        drop(xdp);
        drop(unread);
        let sent = w.peer.result(id, p.secs)?;
        seq0 += sent;
        if let Some(mode) = mode {
            eprintln!("  floor-xdp at {rate} pps: XDP_DROP attached in {mode} mode");
        }
        steps.push(Step {
            path,
            rate,
            sent,
            received: nic,
            lost: 0,
            cpu_us_per_pkt: if nic == 0 { f64::NAN } else { cpu as f64 / nic as f64 },
            cpu_load: cpu as f64 / 1e6 / wall,
            lat_p50_us: f64::NAN,
            lat_p99_us: f64::NAN,
            lat_cdf_us: Vec::new(),
            threads: Vec::new(),
            wakeups_per_pkt: f64::NAN,
            nic_rx: nic,
        });
    }
    Ok(steps)
}

/// Runs the sender child for `secs` at `rate`; returns the packets it sent.
fn send(exe: &std::path::Path, p: &E2eParams, rate: u64, secs: f64, seq0: &mut u64) -> Result<u64> {
    if let Some(w) = &p.wire {
        let n = w.peer.send(&crate::wire::Streams::one(p.port, p.payload), rate, secs, *seq0)?;
        *seq0 += n;
        return Ok(n);
    }
    let out = Command::new(exe)
        .args(["send", "--port", &p.port.to_string(), "--rate", &rate.to_string(), "--secs", &secs.to_string()])
        .args(["--seq0", &(*seq0 as u16).to_string()])
        .args(["--payload", &p.payload.to_string()])
        .output()
        .context("run the sender")?;
    if !out.status.success() {
        bail!("sender failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let n: u64 = text
        .trim()
        .strip_prefix("sent ")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow!("sender said '{text}'"))?;
    *seq0 += n;
    Ok(n)
}

/// The sender: RTP packets to 127.0.0.1:`port` at `rate`, each carrying its send time.
pub fn sender(port: u16, rate: u64, secs: f64, payload: usize, seq0: u16) -> Result<u64> {
    if payload < 20 {
        bail!("payload {payload} B cannot carry the RTP header and the send time (20 B)");
    }
    let sock = UdpSocket::bind("127.0.0.1:0")?;
    sock.connect(("127.0.0.1", port))?;
    let mut buf = vec![0u8; payload];
    buf[0] = 0x80;
    buf[1] = 96;
    buf[8..12].copy_from_slice(&0x4245_4e43u32.to_be_bytes());
    let schedule = crate::pace::Schedule::for_duration(rate, secs);
    let total = schedule.total();
    let mut sent = 0u64;
    while sent < total {
        let due = schedule.due();
        while sent < due {
            // Sequence numbers and RTP timestamps continue across the sender runs of one
            // receiver (seq0 from the caller, timestamps from the shared monotonic clock), so
            // the jitterbuffer sees one stream, not a restart at every rate step.
            let now = monotonic_ns();
            buf[2..4].copy_from_slice(&seq0.wrapping_add(sent as u16).to_be_bytes());
            buf[4..8].copy_from_slice(&((u128::from(now) * 48_000 / 1_000_000_000) as u32).to_be_bytes());
            buf[12..20].copy_from_slice(&now.to_le_bytes());
            sock.send(&buf).context("send RTP")?;
            sent += 1;
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    Ok(sent)
}

/// GStreamer init for the e2e runs (registry in a writable place, as the guest needs).
pub fn init() -> Result<()> {
    rtp_feeder::pipeline::init()
}

/// One point of the scaling comparison: `streams` concurrent streams, one receiver (and, for the
/// kernel path, one channel) each.
#[derive(Debug, Clone, Serialize)]
pub struct ScalePoint {
    pub path: E2ePath,
    pub streams: u32,
    pub rate_per_stream: u64,
    pub sent: u64,
    pub lost: u64,
    pub cpu_us_per_pkt: f64,
    pub cpu_load: f64,
    pub lat_p99_us: f64,
}

/// Runs `streams` concurrent streams at `rate` each through `path` (Kernel or Gst; the ring
/// paths work too), stream k on port + k and channel `first_channel` + k.
pub fn run_scale(path: E2ePath, p: &E2eParams, streams: u32, rate: u64, first_channel: u32) -> Result<ScalePoint> {
    let Some(w) = &p.wire else { bail!("scaling needs traffic through the NIC (--wire)") };
    let mut rxs = Vec::new();
    for k in 0..streams {
        let mut pk = p.clone();
        pk.port = u16::try_from(k)
            .ok()
            .and_then(|k| p.port.checked_add(k))
            .with_context(|| format!("stream {k}: port {} + {k} is past 65535", p.port))?;
        pk.channel = first_channel + k;
        rxs.push(
            start_receiver(path, &pk)
                .with_context(|| format!("stream {k} (port {}, channel {})", pk.port, pk.channel))?,
        );
    }
    // Warm-up, then the measured step.
    let many = crate::wire::Streams { count: streams, ..crate::wire::Streams::one(p.port, p.payload) };
    w.peer.send(&many, 200, 0.5, 0)?;
    std::thread::sleep(Duration::from_millis(500));
    let off = w.peer.clock_offset()?.0;
    for rx in &rxs {
        rx.sink.offset_ns.store(off, Relaxed);
        rx.sink.lat_ns.lock().expect("latency list").clear();
    }
    let r0: u64 = rxs.iter().map(|r| r.sink.received.load(Relaxed)).sum();
    let c0 = crate::wire::guest_busy_us()?;
    let t0 = Instant::now();
    let sent = w.peer.send(&many, rate, p.secs, 100)?;
    let mut last = rxs.iter().map(|r| r.sink.received.load(Relaxed)).sum::<u64>();
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let now = rxs.iter().map(|r| r.sink.received.load(Relaxed)).sum::<u64>();
        if now == last {
            break;
        }
        last = now;
    }
    let cpu = crate::wire::guest_busy_us()? - c0;
    let wall = t0.elapsed().as_secs_f64();
    let received = last - r0;
    let mut lat: Vec<u64> = Vec::new();
    for rx in &rxs {
        lat.extend(rx.sink.lat_ns.lock().expect("latency list").iter());
    }
    lat.sort_unstable();
    let p99 =
        if lat.is_empty() { f64::NAN } else { lat[((lat.len() - 1) as f64 * 0.99).round() as usize] as f64 / 1e3 };
    Ok(ScalePoint {
        path,
        streams,
        rate_per_stream: rate,
        sent,
        lost: sent.saturating_sub(received),
        cpu_us_per_pkt: if received == 0 { f64::NAN } else { cpu as f64 / received as f64 },
        cpu_load: cpu as f64 / 1e6 / wall,
        lat_p99_us: p99,
    })
}

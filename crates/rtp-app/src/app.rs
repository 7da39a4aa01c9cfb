//! The rx and tx runs: set up in an order that can be unwound, run the worker and the
//! controller threads, shut down, report.
//!
//! Setup order (seed 003's bug 4 was a half-initialised run leaking what it had set up):
//! stop state and signal handlers first (they own nothing), then the ring handle, then the
//! socket, then the threads. Every resource is an RAII value, so an error at any step drops
//! exactly what exists: the socket closes, the ring handle unmaps and its owned slots go back to
//! FREE. No slot is reserved before all setup has succeeded.

use crate::backend::{describe, open, open_mapped, ring_counters};
use crate::control::{Controller, Limits, ReportConfig, RingStatsFn, StopReason, StopState};
use crate::multicast::{Membership, SendOptions};
use crate::net::{DatagramSender, RxSocket, TxSocket};
use crate::rtp::{RtpGenerator, StreamParams};
use crate::rx::{drain_loop, rx_loop, RxConfig};
use crate::stats::{Counters, RingCounters, Snapshot};
use crate::tx::{tx_generate_loop, tx_ring_loop, TxConfig};
use anyhow::{anyhow, Context, Result};
use rtpmgr::{Backend, Channel, Ring};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What a finished run reports.
#[derive(Debug, Clone)]
pub struct Summary {
    /// "RX" or "TX".
    pub label: &'static str,
    /// Final counters.
    pub counters: Snapshot,
    /// Final ring counters (None if they could not be read).
    pub ring: Option<RingCounters>,
    /// Worker run time.
    pub elapsed: Duration,
    /// Why the run ended.
    pub reason: StopReason,
    /// Ring entries that failed index/length validation.
    pub invalid_slots: u64,
    /// The transport's own final line (AF_XDP TX: frames submitted, completed, outstanding).
    pub transport: Option<String>,
}

/// Settings of an rx run.
#[derive(Debug, Clone)]
pub struct RxRun {
    /// Without `membership`: the address to bind. With it: None binds to the group.
    pub bind: Option<IpAddr>,
    /// The multicast group to join (`--group`).
    pub membership: Option<Membership>,
    pub port: u16,
    pub sockbuf: usize,
    pub drain: bool,
    /// The channel's wake-up rule to set (`--wake-slots`/`--wake-usecs`), None: leave it.
    pub wakeup: Option<rtpmgr::Wakeup>,
    pub worker: RxConfig,
    pub interval: Option<Duration>,
    pub json: bool,
}

/// Settings of a tx run.
#[derive(Debug, Clone)]
pub struct TxRun {
    pub bind: SocketAddr,
    pub dst: SocketAddr,
    pub sockbuf: usize,
    /// Interface, TTL and loopback for a multicast `dst`.
    pub multicast: Option<SendOptions>,
    /// None: `--source ring`.
    pub stream: Option<StreamParams>,
    pub worker: TxConfig,
    pub interval: Option<Duration>,
    pub json: bool,
    /// Send with AF_XDP instead of the UDP socket (`--xdp`).
    pub xdp: Option<crate::xdp::XdpTx>,
}

/// Open a handle with its ring mapped (every worker opens its own, as separate processes
/// would).
fn open_ring(backend: &Backend) -> Result<Ring> {
    open_mapped(backend).with_context(|| format!("cannot open {}", describe(backend)))
}

/// A source of ring counters for the stats thread, on its own handle.
pub(crate) fn stats_source(backend: &Backend) -> Result<RingStatsFn> {
    let ch = open(backend).with_context(|| format!("cannot open {} for stats", describe(backend)))?;
    Ok(Box::new(move || {
        let stats = ch.stats().ok()?;
        let status = ch.status().ok();
        Some(ring_counters(&stats, status.as_ref()))
    }))
}

/// Claims this handle's roles on the channel (ABI 2.0): no second producer or consumer can
/// then push or pop behind our back, and a producer may START the channel without
/// CAP_NET_ADMIN. Producers then start a stopped channel (PLAN: "Producers START the channel if
/// it is stopped").
pub(crate) fn take_roles(ch: &Channel, roles: u32, what: &str) -> Result<()> {
    ch.claim(roles).with_context(|| {
        format!(
            "cannot claim the {} role of {what}: another process already has it (`rtp_app ctl --status` shows \
             which roles are taken)",
            role_names(roles)
        )
    })?;
    if roles & rtpmgr_abi::RTPM_ROLE_PRODUCER != 0 {
        ensure_started(ch, what)?;
    }
    Ok(())
}

fn role_names(roles: u32) -> &'static str {
    use rtpmgr_abi::{RTPM_ROLE_CONSUMER, RTPM_ROLE_PRODUCER};
    match (roles & RTPM_ROLE_PRODUCER != 0, roles & RTPM_ROLE_CONSUMER != 0) {
        (true, true) => "producer and consumer",
        (true, false) => "producer",
        (false, true) => "consumer",
        (false, false) => "(no)",
    }
}

fn ensure_started(ch: &Channel, what: &str) -> Result<()> {
    let running = ch.is_running().with_context(|| format!("cannot read the configuration of {what}"))?;
    if !running {
        log::info!("{what} is stopped; starting it");
        ch.start().with_context(|| format!("cannot start {what}"))?;
    }
    Ok(())
}

/// Spawn a named worker thread that records an error as the stop reason.
pub(crate) fn spawn_worker<F>(name: &str, stop: &Arc<StopState>, f: F) -> Result<JoinHandle<Result<()>>>
where
    F: FnOnce() -> Result<()> + Send + 'static,
{
    let stop = Arc::clone(stop);
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let r = f();
            // Whatever ended this worker ends the run.
            stop.stop(if r.is_ok() { StopReason::Signal } else { StopReason::Error });
            r
        })
        .with_context(|| format!("cannot start the {name} thread"))
}

/// On the worker thread, before its loop: applies `--rt-priority`/`--cpu` to it, then tells the
/// service manager the run is set up (channel open, socket bound): READY=1 and the readiness
/// file. A refused priority ends the run before READY.
pub(crate) fn worker_ready(status: &str) -> Result<()> {
    rtpmgr_service::worker_started()?;
    rtpmgr_service::ready(status);
    Ok(())
}

fn join_worker(h: JoinHandle<Result<()>>, name: &str) -> Result<()> {
    h.join().map_err(|_| anyhow!("the {name} thread panicked"))?
}

/// Stop the controller, collect the last ring counters and build the summary.
pub(crate) fn finish(
    label: &'static str,
    ctl: Controller,
    idle_stats: Option<RingStatsFn>,
    counters: &Counters,
    stop: &StopState,
    invalid_slots: u64,
) -> Summary {
    let elapsed = ctl.started().elapsed();
    // Exactly one of the two holds the stats source: the thread (if it was started) hands it
    // back when joined.
    let mut source = ctl.finish().or(idle_stats);
    let ring = source.as_mut().and_then(|f| f());
    Summary {
        label,
        counters: counters.snapshot(),
        ring,
        elapsed,
        reason: stop.reason(),
        invalid_slots,
        transport: None,
    }
}

/// `--mode rx`.
pub fn run_rx(cfg: &RxRun, backend: &Backend, stop: Arc<StopState>) -> Result<Summary> {
    let ring = open_ring(backend)?;
    take_roles(&ring.channel(), rtpmgr_abi::RTPM_ROLE_PRODUCER, &describe(backend))?;
    if let Some(rule) = cfg.wakeup {
        // As the producer-role holder this handle may set it without CAP_NET_ADMIN.
        ring.channel()
            .set_wakeup(rule)
            .with_context(|| format!("cannot set the wake-up rule of {}", describe(backend)))?;
    }
    let mut sock = match &cfg.membership {
        Some(m) => {
            if let Some(w) = m.warning() {
                log::warn!("{w}");
            }
            RxSocket::bind_multicast(m, cfg.bind, cfg.port, cfg.sockbuf)?
        }
        None => RxSocket::bind(cfg.bind.unwrap_or(Ipv4Addr::UNSPECIFIED.into()), cfg.port, cfg.sockbuf)?,
    };
    let local = sock.local_addr()?;
    let joined = cfg.membership.as_ref().map(|m| format!(" (joined {})", m.describe())).unwrap_or_default();
    let counters = Arc::new(Counters::default());
    let stats = stats_source(backend)?;
    let mut drain = match cfg.drain {
        true => {
            let r = open_ring(backend)?;
            take_roles(&r.channel(), rtpmgr_abi::RTPM_ROLE_CONSUMER, &describe(backend))?;
            Some(r.consumer())
        }
        false => None,
    };
    let drain_ring = drain.as_ref().map(|d| d.ring().clone());

    let report = ReportConfig { label: "RX", json: cfg.json };
    let (ctl, idle_stats) = Controller::start(cfg.interval, report, Arc::clone(&counters), Arc::clone(&stop), stats)?;
    log::info!(
        "rx: receiving on udp {local}{joined} into {} (batch {}, slot {} bytes)",
        describe(backend),
        cfg.worker.batch,
        ring.layout().slot_payload
    );

    // The drain consumer has its own stop flag: it must outlive the RX worker to empty the
    // ring after the last push.
    let drain_stop = StopState::new();
    let drain_handle = match drain.take() {
        Some(mut d) => {
            let (c, s, batch) = (Arc::clone(&counters), Arc::clone(&drain_stop), cfg.worker.batch);
            Some(spawn_worker("rtp-drain", &drain_stop, move || drain_loop(&mut d, batch, &c, &s))?)
        }
        None => None,
    };
    let worker = {
        let (c, s, wcfg) = (Arc::clone(&counters), Arc::clone(&stop), cfg.worker.clone());
        let status = format!("receiving on udp {local}{joined} into {}", describe(backend));
        std::thread::Builder::new()
            .name("rtp-rx".into())
            .spawn(move || {
                let mut tx = ring.producer();
                let r = worker_ready(&status).and_then(|()| rx_loop(&mut tx, &mut sock, &wcfg, &c, &s));
                if r.is_err() {
                    s.stop(StopReason::Error);
                }
                (r, ring.invalid_entries())
            })
            .context("cannot start the rx thread")
    };
    let worker = match worker {
        Ok(w) => w,
        Err(e) => {
            stop.stop(StopReason::Error);
            drain_stop.stop(StopReason::Error);
            if let Some(h) = drain_handle {
                let _ = join_worker(h, "rtp-drain");
            }
            let _ = ctl.finish();
            return Err(e);
        }
    };
    let (rx_result, invalid) = worker.join().map_err(|_| anyhow!("the rtp-rx thread panicked"))?;
    drain_stop.stop(StopReason::Signal);
    let drain_result = drain_handle.map(|h| join_worker(h, "rtp-drain")).unwrap_or(Ok(()));
    let invalid = invalid + drain_ring.map_or(0, |r| r.invalid_entries());
    let summary = finish("RX", ctl, idle_stats, &counters, &stop, invalid);
    rx_result.context("rx worker failed")?;
    drain_result.context("drain consumer failed")?;
    Ok(summary)
}

/// `--mode tx`.
pub fn run_tx(cfg: &TxRun, backend: &Backend, stop: Arc<StopState>) -> Result<Summary> {
    let ring = open_ring(backend)?;
    // Generate mode produces into the channel and pops its own packets back (both roles), and
    // starts the channel like any producer; ring mode only consumes, and POP works on a
    // stopped channel.
    let roles = match cfg.stream.is_some() {
        true => rtpmgr_abi::RTPM_ROLES_ALL,
        false => rtpmgr_abi::RTPM_ROLE_CONSUMER,
    };
    take_roles(&ring.channel(), roles, &describe(backend))?;
    let mut gen = cfg.stream.clone().map(RtpGenerator::new).transpose()?;
    let mut sock: Box<dyn DatagramSender> = match &cfg.xdp {
        Some(x) => crate::xdp::open_sender(x, cfg.dst)?,
        None => Box::new(TxSocket::connect_with(cfg.bind, cfg.dst, cfg.sockbuf, cfg.multicast.as_ref())?),
    };
    let counters = Arc::new(Counters::default());
    let stats = stats_source(backend)?;
    let report = ReportConfig { label: "TX", json: cfg.json };
    let (ctl, idle_stats) = Controller::start(cfg.interval, report, Arc::clone(&counters), Arc::clone(&stop), stats)?;
    log::info!(
        "tx: sending {} from {} to udp {}{} through {}",
        if gen.is_some() { "generated RTP" } else { "ring slots" },
        describe(backend),
        cfg.dst,
        cfg.multicast.as_ref().map(describe_send_options).unwrap_or_default(),
        sock.describe()
    );
    let t0 = Instant::now();
    let worker = {
        let (c, s, wcfg) = (Arc::clone(&counters), Arc::clone(&stop), cfg.worker.clone());
        let status = format!("sending from {} to udp {}", describe(backend), cfg.dst);
        std::thread::Builder::new()
            .name("rtp-tx".into())
            .spawn(move || {
                let mut rx = ring.consumer();
                let r = worker_ready(&status).and_then(|()| match gen.as_mut() {
                    Some(g) => tx_generate_loop(&mut ring.producer(), &mut rx, sock.as_mut(), g, &wcfg, &c, &s),
                    None => tx_ring_loop(&mut rx, sock.as_mut(), &wcfg, &c, &s),
                });
                if r.is_err() {
                    s.stop(StopReason::Error);
                }
                (r, ring.invalid_entries(), sock.finish())
            })
            .context("cannot start the tx thread")
    };
    let worker = match worker {
        Ok(w) => w,
        Err(e) => {
            stop.stop(StopReason::Error);
            let _ = ctl.finish();
            return Err(e);
        }
    };
    let (result, invalid, transport) = worker.join().map_err(|_| anyhow!("the rtp-tx thread panicked"))?;
    let mut summary = finish("TX", ctl, idle_stats, &counters, &stop, invalid);
    summary.transport = transport;
    log::debug!("tx worker ran {:?}", t0.elapsed());
    result.context("tx worker failed")?;
    Ok(summary)
}

/// " (multicast out of eth1, ttl 4, loopback off)", for the tx log line.
fn describe_send_options(o: &SendOptions) -> String {
    let on = o.iface.as_deref().map_or("the routed interface".to_string(), |i| i.to_string());
    let loopback = if o.loopback { "on" } else { "off" };
    format!(" (multicast out of {on}, ttl {}, loopback {loopback})", o.ttl)
}

/// The final stats record of a run.
pub fn final_record(s: &Summary, json: bool) -> String {
    let cfg = ReportConfig { label: s.label, json };
    crate::control::format_record(
        &cfg,
        "final",
        s.elapsed,
        &s.counters,
        &Snapshot::default(),
        s.elapsed,
        s.ring,
        Some(s.reason),
    )
}

/// `-t`/`-l` from the command line.
pub fn limits(time: Option<f64>, packets: Option<u64>) -> Limits {
    Limits { duration: time.map(Duration::from_secs_f64), packets }
}

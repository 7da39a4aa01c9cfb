//! `--path kernel` (ABI 2.1): the kernel moves the datagrams, rtp_app supervises.
//!
//! rx: rtp_app creates, binds and joins the UDP socket exactly as the socket path does, sets the
//! channel's wake-up rule and ATTACHes the socket for RX: from then on the kernel copies each
//! datagram into a ring slot in softirq context, and no rtp_app thread touches a packet. tx:
//! rtp_app connects a UDP socket to the destination and ATTACHes it for TX: the kernel sends
//! every slot another producer pushed, paced by its token bucket.
//!
//! The supervisor then only reads the channel's counters (GET_STATS) a few times a second and
//! turns their growth since the attach into the same [`Counters`] the socket path keeps, so the
//! stats line, `--json`, `-t`, `-l` and signals behave as on the socket path. It also watches
//! that the socket is still attached (an administrator may DETACH it) and detaches it when the
//! run ends. If rtp_app dies instead, closing its channel file detaches the socket (the module
//! ends an attachment with the last close of the file that made it).

use crate::app::{finish, spawn_worker, stats_source, take_roles, Summary};
use crate::backend::{describe, open, open_mapped};
use crate::control::{Controller, Limits, ReportConfig, StopReason, StopState};
use crate::multicast::{Membership, SendOptions};
use crate::net::TxSocket;
use crate::rx::drain_loop;
use crate::stats::Counters;
use anyhow::{Context, Result};
use rtpmgr::{Backend, Channel, SocketDir, Stats, TxPacing, Wakeup};
use rtpmgr_abi::{RTPM_ROLE_CONSUMER, RTPM_ROLE_PRODUCER};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the supervisor reads the counters without `-l`: cheap (two ioctls), and `-t` ends
/// within this much of its time.
const TICK: Duration = Duration::from_millis(100);
/// ... and with `-l`, which the kernel cannot stop at exactly N: the run ends at the first tick
/// that sees N or more packets, so ticks are short.
const TICK_WITH_LIMIT: Duration = Duration::from_millis(10);

/// Settings of `--mode rx --path kernel`.
#[derive(Debug, Clone)]
pub struct KernelRxRun {
    /// Without `membership`: the address to bind (default 0.0.0.0). With it: None binds to the group.
    pub bind: Option<IpAddr>,
    /// The multicast group to join (`--group`).
    pub membership: Option<Membership>,
    /// UDP port.
    pub port: u16,
    /// The channel's wake-up rule, set before the attach.
    pub wakeup: Wakeup,
    /// Also consume and release what the kernel pushes (`--drain`).
    pub drain: bool,
    /// Slots per pop of the drain consumer.
    pub batch: usize,
    /// `-t` / `-l` (packets the kernel received).
    pub limits: Limits,
    /// Stats line period.
    pub interval: Option<Duration>,
    /// `--json`.
    pub json: bool,
}

/// Settings of `--mode tx --path kernel`.
#[derive(Debug, Clone)]
pub struct KernelTxRun {
    /// Local address (port 0: any).
    pub bind: SocketAddr,
    /// Destination the socket is connected to.
    pub dst: SocketAddr,
    /// Send buffer size (a full one counts as `tx_errors`).
    pub sockbuf: usize,
    /// Interface, TTL and loopback for a multicast `dst`.
    pub multicast: Option<SendOptions>,
    /// `--rate` / `--burst`.
    pub pacing: TxPacing,
    /// The wake-up rule to set, if asked for (it also wakes the kernel's sender).
    pub wakeup: Option<Wakeup>,
    /// `-t` / `-l` (packets the kernel sent).
    pub limits: Limits,
    /// Stats line period.
    pub interval: Option<Duration>,
    /// `--json`.
    pub json: bool,
}

/// The socket path's counters, from how much the channel's counters grew since `base`.
///
/// RX: every datagram the kernel took from the socket was pushed, refused by a full ring
/// (`overruns`), dropped as larger than a slot (`rx_oversize`) or dropped while the channel was
/// stopped (`rx_discarded`). `ring_full` is the socket path's "ring full or stopped"; oversize
/// datagrams count as malformed, as a truncated datagram does on the socket path. `bytes` are
/// the pushed bytes (the kernel does not count the size of what it dropped).
pub fn rx_counters(base: &Stats, now: &Stats, c: &Counters) {
    let d = |f: fn(&Stats) -> u64| f(now).saturating_sub(f(base));
    let pushed = d(|s| s.pushed_packets);
    let ring_full = d(|s| s.overruns) + d(|s| s.rx_discarded);
    let oversize = d(|s| s.rx_oversize);
    set(&c.packets, pushed + ring_full + oversize);
    set(&c.bytes, d(|s| s.pushed_bytes));
    set(&c.pushed, pushed);
    set(&c.malformed, d(|s| s.malformed) + oversize);
    set(&c.ring_full, ring_full);
}

/// TX: `packets` are the slots the kernel sent, `socket_errors` the ones the socket refused,
/// `consumed` every slot it took from the ring and `bytes` their bytes (sent or refused).
pub fn tx_counters(base: &Stats, now: &Stats, c: &Counters) {
    let d = |f: fn(&Stats) -> u64| f(now).saturating_sub(f(base));
    set(&c.packets, d(|s| s.tx_sent));
    set(&c.socket_errors, d(|s| s.tx_errors));
    set(&c.consumed, d(|s| s.popped_packets));
    set(&c.bytes, d(|s| s.popped_bytes));
}

fn set(c: &AtomicU64, v: u64) {
    c.store(v, Ordering::Relaxed);
}

/// Detaches on drop, so that every way out of a run (error, panic unwinding) ends the
/// attachment before the channel handle closes, with a message if the kernel refuses.
struct Attachment<'a> {
    ch: &'a Channel,
    dir: SocketDir,
    done: bool,
}

impl Attachment<'_> {
    fn detach(mut self) -> Result<()> {
        self.done = true;
        self.ch.detach(self.dir).with_context(|| format!("cannot detach the {} socket", self.dir))
    }
}

impl Drop for Attachment<'_> {
    fn drop(&mut self) {
        if !self.done {
            if let Err(e) = self.ch.detach(self.dir) {
                log::warn!("{e}");
            }
        }
    }
}

/// Reads the counters every tick until a signal, a limit or the loss of the attachment.
fn supervise(
    ch: &Channel,
    dir: SocketDir,
    base: &Stats,
    counters: &Counters,
    limits: &Limits,
    stop: &StopState,
) -> Result<()> {
    let started = Instant::now();
    let tick = if limits.packets.is_some() { TICK_WITH_LIMIT } else { TICK };
    let update = |now: &Stats| match dir {
        SocketDir::Rx => rx_counters(base, now, counters),
        SocketDir::Tx => tx_counters(base, now, counters),
    };
    // The socket is attached: the kernel moves the data from here on. This loop is rtp_app's
    // worker on the kernel path (--rt-priority/--cpu apply to it, it pings the watchdog).
    crate::app::worker_ready(&format!("kernel path: the {dir} socket is attached to {}", ch.name()))?;
    loop {
        rtpmgr_service::watchdog_tick();
        let now = ch.stats().context("cannot read the channel's counters")?;
        update(&now);
        if limits.check(stop, started, counters.packets.load(Ordering::Relaxed)) || stop.should_stop() {
            return Ok(());
        }
        let attached = ch.attached().context("cannot read the channel's status")?;
        if !attached.has(dir) {
            stop.stop(StopReason::Error);
            anyhow::bail!(
                "the {dir} socket was detached from {} behind rtp_app's back (rtp_app --mode ctl, or an \
                 administrator's DETACH)",
                ch.name()
            );
        }
        if stop.sleep(tick) {
            return Ok(());
        }
    }
}

/// The UDP socket rx hands to the kernel: bound and joined exactly as the socket path's, by the
/// socket library rtp-feeder's `[receive]` section uses too.
fn rx_socket(cfg: &KernelRxRun) -> Result<UdpSocket> {
    let spec = rtpmgr_net::ReceiveSpec {
        bind: cfg.bind,
        port: cfg.port,
        membership: cfg.membership.clone(),
        rcvbuf: None,
        names: crate::multicast::FLAGS,
    };
    Ok(rtpmgr_net::open_receiver(&spec)?)
}

/// `--mode rx --path kernel`.
pub fn run_rx_kernel(cfg: &KernelRxRun, backend: &Backend, stop: Arc<StopState>) -> Result<Summary> {
    let what = describe(backend);
    let ch = open(backend)?;
    // The attachment becomes the producer; claiming the role first gives the plain message
    // when another producer is running, and lets us START the channel.
    take_roles(&ch, RTPM_ROLE_PRODUCER, &what)?;
    let sock = rx_socket(cfg)?;
    let local = sock.local_addr().context("cannot read the bound socket address")?;
    let joined = cfg.membership.as_ref().map(|m| format!(" (joined {})", m.describe())).unwrap_or_default();
    ch.set_wakeup(cfg.wakeup).with_context(|| format!("cannot set the wake-up rule of {what}"))?;
    let counters = Arc::new(Counters::default());
    let stats = stats_source(backend)?;
    let drain = match cfg.drain {
        true => {
            let r = open_mapped(backend).with_context(|| format!("cannot open {what}"))?;
            take_roles(&r.channel(), RTPM_ROLE_CONSUMER, &what)?;
            Some(r.consumer())
        }
        false => None,
    };
    let drain_ring = drain.as_ref().map(|d| d.ring().clone());

    let base = ch.stats().with_context(|| format!("cannot read the stats of {what}"))?;
    ch.attach(&sock, SocketDir::Rx, TxPacing::UNPACED)
        .with_context(|| format!("cannot hand the UDP socket {local} to {what} (--path socket receives without it)"))?;
    let attachment = Attachment { ch: &ch, dir: SocketDir::Rx, done: false };
    log::info!(
        "rx: the kernel receives udp {local}{joined} into {what} (wake-up: {} slots or {} us); rtp_app supervises",
        cfg.wakeup.slots,
        cfg.wakeup.usecs
    );

    let report = ReportConfig { label: "RX", json: cfg.json };
    let (ctl, idle_stats) = Controller::start(cfg.interval, report, Arc::clone(&counters), Arc::clone(&stop), stats)?;
    let drain_stop = StopState::new();
    let drain_handle = match drain {
        Some(mut d) => {
            let (c, s, batch) = (Arc::clone(&counters), Arc::clone(&drain_stop), cfg.batch);
            match spawn_worker("rtp-drain", &drain_stop, move || drain_loop(&mut d, batch, &c, &s)) {
                Ok(h) => Some(h),
                Err(e) => {
                    stop.stop(StopReason::Error);
                    let _ = ctl.finish();
                    return Err(e);
                }
            }
        }
        None => None,
    };
    let supervised = supervise(&ch, SocketDir::Rx, &base, &counters, &cfg.limits, &stop);
    if supervised.is_err() {
        stop.stop(StopReason::Error);
    }
    // Detach before the final count: nothing arrives after it.
    let detached = if supervised.is_ok() { attachment.detach() } else { Ok(()) };
    if let Ok(now) = ch.stats() {
        rx_counters(&base, &now, &counters);
    }
    drain_stop.stop(StopReason::Signal);
    let drain_result = match drain_handle {
        Some(h) => h.join().map_err(|_| anyhow::anyhow!("the rtp-drain thread panicked"))?,
        None => Ok(()),
    };
    let invalid = drain_ring.map_or(0, |r| r.invalid_entries());
    let summary = finish("RX", ctl, idle_stats, &counters, &stop, invalid);
    supervised?;
    detached?;
    drain_result.context("drain consumer failed")?;
    drop(sock);
    Ok(summary)
}

/// `--mode tx --path kernel`.
pub fn run_tx_kernel(cfg: &KernelTxRun, backend: &Backend, stop: Arc<StopState>) -> Result<Summary> {
    let what = describe(backend);
    let ch = open(backend)?;
    take_roles(&ch, RTPM_ROLE_CONSUMER, &what)?;
    let sock = TxSocket::connect_with(cfg.bind, cfg.dst, cfg.sockbuf, cfg.multicast.as_ref())?;
    if let Some(rule) = cfg.wakeup {
        ch.set_wakeup(rule).with_context(|| format!("cannot set the wake-up rule of {what}"))?;
    }
    let counters = Arc::new(Counters::default());
    let stats = stats_source(backend)?;
    let base = ch.stats().with_context(|| format!("cannot read the stats of {what}"))?;
    ch.attach(&sock.as_fd(), SocketDir::Tx, cfg.pacing)
        .with_context(|| format!("cannot hand the UDP socket to {} to {what}", cfg.dst))?;
    let attachment = Attachment { ch: &ch, dir: SocketDir::Tx, done: false };
    let pacing = match cfg.pacing.rate_pps {
        0 => "unpaced".to_string(),
        r => format!("paced to {r} pkt/s, burst {}", cfg.pacing.burst.max(1)),
    };
    log::info!("tx: the kernel sends what is pushed into {what} to udp {} ({pacing}); rtp_app supervises", cfg.dst);

    let report = ReportConfig { label: "TX", json: cfg.json };
    let (ctl, idle_stats) = Controller::start(cfg.interval, report, Arc::clone(&counters), Arc::clone(&stop), stats)?;
    let supervised = supervise(&ch, SocketDir::Tx, &base, &counters, &cfg.limits, &stop);
    if supervised.is_err() {
        stop.stop(StopReason::Error);
    }
    let detached = if supervised.is_ok() { attachment.detach() } else { Ok(()) };
    if let Ok(now) = ch.stats() {
        tx_counters(&base, &now, &counters);
    }
    let summary = finish("TX", ctl, idle_stats, &counters, &stop, 0);
    supervised?;
    detached?;
    drop(sock);
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Snapshot;
    use std::net::Ipv4Addr;

    #[test]
    fn rx_counters_are_the_growth_since_the_attach() {
        let base = Stats { pushed_packets: 100, pushed_bytes: 10_000, overruns: 5, malformed: 1, ..Default::default() };
        let now = Stats {
            pushed_packets: 1100,
            pushed_bytes: 210_000,
            overruns: 8,
            rx_discarded: 2,
            rx_oversize: 4,
            malformed: 3,
            ..Default::default()
        };
        let c = Counters::default();
        rx_counters(&base, &now, &c);
        let s = c.snapshot();
        assert_eq!(
            s,
            Snapshot {
                packets: 1000 + 3 + 2 + 4,
                bytes: 200_000,
                pushed: 1000,
                malformed: 2 + 4,
                ring_full: 3 + 2,
                consumed: 0,
                socket_errors: 0
            }
        );
        // A RESET between two reads (counters back to zero) reads as no growth, not a wrap.
        rx_counters(&base, &Stats::default(), &c);
        assert_eq!(c.snapshot().packets, 0);
    }

    #[test]
    fn tx_counters_count_sent_and_refused_slots() {
        let base = Stats { tx_sent: 10, popped_packets: 10, popped_bytes: 1000, ..Default::default() };
        let now = Stats { tx_sent: 60, tx_errors: 2, popped_packets: 62, popped_bytes: 6200, ..Default::default() };
        let c = Counters::default();
        tx_counters(&base, &now, &c);
        let s = c.snapshot();
        assert_eq!((s.packets, s.socket_errors, s.consumed, s.bytes), (50, 2, 52, 5200));
    }

    #[test]
    fn kernel_path_on_a_shm_ring_fails_with_the_unsupported_message() {
        let path = std::env::temp_dir().join(format!("rtp-app-kpath-{}", std::process::id()));
        let backend = Backend::shm_at(&path);
        let cfg = KernelRxRun {
            bind: Some(Ipv4Addr::LOCALHOST.into()),
            membership: None,
            port: 0,
            wakeup: Wakeup::EVERY_PUSH,
            drain: false,
            batch: 8,
            limits: Limits { duration: Some(Duration::from_millis(100)), packets: None },
            interval: None,
            json: false,
        };
        let e = run_rx_kernel(&cfg, &backend, StopState::new()).unwrap_err();
        let msg = format!("{e:#}");
        assert!(msg.contains("cannot set the wake-up rule"), "{msg}");
        assert!(msg.contains("not supported") && msg.contains("shm ring has no kernel"), "{msg}");
        let _ = std::fs::remove_file(&path);
    }
}

//! rtpmgr-bench: the rtp_mgr ring measured against the alternatives, side by side in one run.
//!
//! Every comparison runs all of its paths in ONE process, interleaved round by round
//! (round 1: A B C D, round 2: A B C D, ...), so that a noisy machine slows all paths alike and
//! the ratios hold; results are medians with their spread (min/max, quartiles). Output: tables
//! (markdown) on stdout, or JSON with `--json`; `--out FILE` writes the JSON as well.
//! docs/performance.md explains the numbers; docs/perf/plot.py draws them.

mod e2e;
mod handoff;
mod pace;
mod stats;
mod tx;
mod wire;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use handoff::{Idle, Outcome, Params, PathKind};
use rtpmgr::Backend;
use serde::Serialize;
use stats::{fmt_rate, Summary};
use std::process::ExitCode;

const AFTER_HELP: &str = "Examples:
  rtpmgr-bench all --out bench.json           every comparison (kernel ring if loaded, else shm)
  rtpmgr-bench handoff --rounds 5 --secs 0.5  ring vs per-slot ioctls vs UDP vs pipe
  rtpmgr-bench rtrb --backend shm             shm ring vs the rtrb crate (host)
  rtpmgr-bench e2e --rates 250,500,1000       UDP -> rtp_app -> ring -> feeder vs udpsrc (GStreamer)
  rtpmgr-bench e2e --wire                     the same with traffic from the host through the NIC
                                              (guest: `rtpmgr-bench peer` runs on the host)
  rtpmgr-bench peer --listen 127.0.0.1:10770 --qemu 127.0.0.1:10771
                                              (host) the far end of QEMU's -netdev dgram link";

#[derive(Debug, Parser)]
#[command(name = "rtpmgr-bench", version, about = "Benchmarks of the rtp_mgr ring against the alternatives",
          after_help = AFTER_HELP, max_term_width = 98)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,

    /// Ring backend of the ring paths [default: kernel if /dev/rtp_mgr<channel> exists, else shm].
    #[arg(long, global = true, value_enum, value_name = "backend")]
    backend: Option<BackendArg>,

    /// Ring channel (kernel backend); not one the services use (0) or the test suites use (1, 3).
    #[arg(long, global = true, default_value_t = 2, value_name = "n")]
    channel: u32,

    /// shm ring name (shm backend).
    #[arg(long, global = true, default_value = "rtpmgr-bench", value_name = "name")]
    shm_name: String,

    /// Interleaved rounds per comparison.
    #[arg(long, global = true, value_name = "n")]
    rounds: Option<usize>,

    /// Seconds per measured run.
    #[arg(long, global = true, value_name = "seconds")]
    secs: Option<f64>,

    /// Print the results as JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,

    /// Also write the JSON results to this file.
    #[arg(long, global = true, value_name = "file")]
    out: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum BackendArg {
    Kernel,
    Shm,
}

fn list<T: std::str::FromStr>(s: &str) -> Result<Vec<T>, String> {
    s.split(',').map(|v| v.trim().parse::<T>().map_err(|_| format!("'{v}' is not a valid value"))).collect()
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Ring handoff packets/s: batched ring vs per-slot ioctls vs UDP loopback vs pipe.
    Handoff {
        #[arg(long, default_value = "64,1200", value_parser = list::<usize>, value_name = "bytes,..")]
        payloads: std::vec::Vec<usize>,
        #[arg(long, default_value_t = 32, value_name = "n")]
        batch: usize,
        #[arg(long, value_enum, value_delimiter = ',', default_value = "ring-batch,ring-slot,udp,pipe")]
        paths: Vec<PathKind>,
    },
    /// Throughput vs batch size.
    Sweep {
        #[arg(long, default_value = "1,4,16,32,64,128,256", value_parser = list::<usize>, value_name = "n,..")]
        batches: std::vec::Vec<usize>,
        #[arg(long, default_value_t = 1200, value_name = "bytes")]
        payload: usize,
        #[arg(long, value_enum, value_delimiter = ',', default_value = "ring-batch,udp,pipe")]
        paths: Vec<PathKind>,
    },
    /// Syscalls per packet at a fixed offered rate.
    Syscalls {
        #[arg(long, default_value = "2000,20000", value_parser = list::<u64>, value_name = "pps,..")]
        rates: std::vec::Vec<u64>,
        #[arg(long, default_value_t = 32, value_name = "n")]
        batch: usize,
        #[arg(long, default_value_t = 1200, value_name = "bytes")]
        payload: usize,
        #[arg(long, value_enum, value_delimiter = ',', default_value = "ring-batch,ring-slot,udp,pipe")]
        paths: Vec<PathKind>,
    },
    /// The shm ring backend vs the rtrb crate passing the same 16-byte descriptors (spinning).
    Rtrb {
        #[arg(long, default_value = "1,32", value_parser = list::<usize>, value_name = "n,..")]
        batches: std::vec::Vec<usize>,
    },
    /// End to end: UDP -> rtp_app rx -> ring -> feeder RX -> jitterbuffer -> appsink vs udpsrc.
    E2e(E2eArgs),
    /// Every comparison (e2e only with --e2e), as docs/performance.md reports them.
    All {
        /// Include the end-to-end comparison (needs rtp_app and GStreamer).
        #[arg(long)]
        e2e: bool,
        #[command(flatten)]
        e2e_args: E2eArgs,
        /// A short run of everything (a second or two per comparison): for tests.
        #[arg(long)]
        quick: bool,
    },
    /// (host) The far end of the guest's NIC (QEMU -netdev dgram): answers ARP for 10.77.0.1 and
    /// sends paced RTP streams into the guest when the guest asks (e2e --wire). Runs until killed.
    Peer {
        /// This end of the link (QEMU's remote.host/remote.port).
        #[arg(long, value_name = "addr:port")]
        listen: std::net::SocketAddr,
        /// QEMU's end (its local.host/local.port).
        #[arg(long, value_name = "addr:port")]
        qemu: std::net::SocketAddr,
    },
    /// (guest) Ask the host peer to send RTP into this guest through its NIC and wait for it;
    /// prints "sent N" (test/device/demo-stream uses it).
    WireSend {
        /// Destination: this guest's address (unicast) or a multicast group.
        #[arg(long, default_value_t = wire::GUEST_IP, value_name = "addr")]
        dst: std::net::Ipv4Addr,
        #[arg(long, value_name = "port")]
        port: u16,
        /// Packets per second per stream.
        #[arg(long, value_name = "pps")]
        rate: u64,
        #[arg(long = "for", value_name = "seconds")]
        secs: f64,
        /// Concurrent streams (stream k to port + k).
        #[arg(long, default_value_t = 1, value_name = "n")]
        streams: u32,
        /// RTP payload bytes.
        #[arg(long, default_value_t = 160, value_name = "bytes")]
        payload: usize,
    },
    /// (internal) The e2e sender: RTP to 127.0.0.1:PORT at RATE, prints "sent N".
    #[command(hide = true)]
    Send {
        #[arg(long)]
        port: u16,
        #[arg(long)]
        rate: u64,
        #[arg(long)]
        secs: f64,
        #[arg(long, default_value_t = 160)]
        payload: usize,
        #[arg(long, default_value_t = 0)]
        seq0: u16,
    },
}

#[derive(Debug, Clone, clap::Args)]
struct E2eArgs {
    /// Offered packet rates, stepped upwards [default: 250,500,1000,2000,4000; with --wire, to
    /// overload: 1000,2000,4000,8000,16000].
    #[arg(long, value_parser = list::<u64>, value_name = "pps,..")]
    rates: Option<std::vec::Vec<u64>>,
    /// RTP payload bytes per packet (the sender's datagram size).
    #[arg(long = "e2e-payload", default_value_t = 160, value_name = "bytes")]
    payload: usize,
    /// UDP port of the receivers (not the service's 5004).
    #[arg(long, default_value_t = 5006, value_name = "port")]
    port: u16,
    /// The rtp_app binary.
    #[arg(long, default_value = "rtp_app", value_name = "path")]
    rtp_app: String,
    /// Receive paths to compare [default: ring,ring-thread,ring-lists,rtpmgrsrc,gst; with --wire:
    /// kernel,kernel-lists,kernel-rtpmgrsrc,ring,ring-lists,rtpmgrsrc,gst,floor-xdp,floor-sock].
    #[arg(long = "e2e-paths", value_enum, value_delimiter = ',')]
    e2e_paths: Option<Vec<e2e::E2ePath>>,
    /// Traffic from the host (`rtpmgr-bench peer`) through the guest NIC instead of a local
    /// sender over loopback; CPU is then guest-wide busy time (/proc/stat).
    #[arg(long)]
    wire: bool,
    /// The guest NIC (--wire).
    #[arg(long, default_value = "eth0", value_name = "name")]
    iface: String,
    /// Coalescing trade-off (--wire): kernel path at --wake-rate with these wake-up rules,
    /// slots/usecs each (empty: skip).
    #[arg(long, default_value = "1/0,32/1000,32/4000,32/10000", value_delimiter = ',', value_name = "n/us,..")]
    wakes: Vec<String>,
    /// Rate of the coalescing trade-off.
    #[arg(long, default_value_t = 4000, value_name = "pps")]
    wake_rate: u64,
    /// Scaling (--wire): concurrent streams, one channel each (empty: skip).
    #[arg(long, default_value = "1,2,4,8", value_parser = list::<u32>, value_name = "n,..")]
    scale: std::vec::Vec<u32>,
    /// Rate of each stream in the scaling comparison.
    #[arg(long, default_value_t = 1000, value_name = "pps")]
    scale_rate: u64,
    /// Only the e2e paths: no coalescing, scaling or TX comparison (e.g. a finer rate grid).
    #[arg(long)]
    paths_only: bool,
    /// TX comparison (--wire): kernel send vs rtp_app sendmmsg at these rates (empty: skip).
    #[arg(long, default_value = "1000,4000", value_parser = list::<u64>, value_name = "pps,..")]
    tx_rates: std::vec::Vec<u64>,
    /// First channel of the scaling comparison (streams use it and the next ones; load the
    /// module with enough channels, e.g. rtp_mgr.channels=12).
    #[arg(long, default_value_t = 4, value_name = "n")]
    scale_channel: u32,
}

/// A comparison row: one path at one setting, summarized over rounds.
#[derive(Debug, Clone, Serialize)]
struct Row {
    path: PathKind,
    payload: usize,
    batch: usize,
    rate: Option<u64>,
    pps: Summary,
    prod_calls_per_pkt: Summary,
    cons_calls_per_pkt: Summary,
    calls_per_pkt: Summary,
}

#[derive(Debug, Clone, Serialize)]
struct E2eRow {
    path: e2e::E2ePath,
    rate: u64,
    rounds: usize,
    sent: u64,
    lost: u64,
    cpu_us_per_pkt: Summary,
    cpu_load: Summary,
    lat_p50_us: Summary,
    lat_p99_us: Summary,
    /// Latency quantiles 0..=100 % of the round with the median p99.
    lat_cdf_us: Vec<f64>,
    /// CPU µs per packet by thread, of that round.
    threads: Vec<(String, f64)>,
    /// Kernel-attached paths: consumer wake-ups per packet.
    wakeups_per_pkt: Summary,
    /// Frames the guest NIC received (--wire).
    nic_rx: u64,
    /// The wake-up rule (slots, µs) of a coalescing row.
    wake: Option<(u32, u32)>,
}

#[derive(Debug, Default, Serialize)]
struct Report {
    meta: serde_json::Value,
    handoff: Vec<Row>,
    sweep: Vec<Row>,
    syscalls: Vec<Row>,
    rtrb: Vec<Row>,
    e2e: Vec<E2eRow>,
    /// Kernel path at one rate under several wake-up rules.
    coalesce: Vec<E2eRow>,
    scale: Vec<e2e::ScalePoint>,
    /// TX: kernel send vs rtp_app sendmmsg.
    tx: Vec<tx::TxPoint>,
    /// How something was measured (e.g. who attached the kernel path's socket).
    notes: Vec<String>,
    /// What could not be measured, and why.
    skipped: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("[rtpmgr-bench error]: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn backend_of(cli: &Cli) -> Backend {
    let kernel = Backend::kernel(cli.channel);
    match cli.backend {
        Some(BackendArg::Kernel) => kernel,
        Some(BackendArg::Shm) => Backend::shm(&cli.shm_name),
        None if kernel.path().exists() => kernel,
        None => Backend::shm(&cli.shm_name),
    }
}

fn meta(backend: &Backend) -> serde_json::Value {
    let read = |p: &str| std::fs::read_to_string(p).map(|s| s.trim().to_string()).unwrap_or_default();
    let cmdline = read("/proc/cmdline");
    serde_json::json!({
        "arch": std::env::consts::ARCH,
        "kernel": read("/proc/sys/kernel/osrelease"),
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "kpti": if cmdline.split_whitespace().any(|a| a == "kpti=0") { "off (kpti=0)" } else { "kernel default" },
        "backend": format!("{:?}", backend.kind()).to_lowercase(),
        "ring": backend.path().display().to_string(),
        "unix_time": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
    })
}

fn run(cli: Cli) -> Result<()> {
    if let Cmd::Send { port, rate, secs, payload, seq0 } = cli.cmd {
        println!("sent {}", e2e::sender(port, rate, secs, payload, seq0)?);
        return Ok(());
    }
    if let Cmd::Peer { listen, qemu } = cli.cmd {
        return wire::run_peer(listen, qemu);
    }
    if let Cmd::WireSend { dst, port, rate, secs, streams, payload } = cli.cmd {
        let peer = wire::Peer::new()?;
        println!("sent {}", peer.send(&wire::Streams { dst, port, count: streams, payload }, rate, secs, 0)?);
        return Ok(());
    }
    let backend = backend_of(&cli);
    let mut rep = Report { meta: meta(&backend), ..Default::default() };
    let secs = |d: f64| cli.secs.unwrap_or(d);
    let rounds = |d: usize| cli.rounds.unwrap_or(d).max(1);
    match &cli.cmd {
        Cmd::Handoff { payloads, batch, paths } => {
            rep.handoff =
                compare(&backend, paths, &grid(payloads, &[*batch], &[None]), rounds(5), secs(0.5), Idle::Block)?;
        }
        Cmd::Sweep { batches, payload, paths } => {
            rep.sweep =
                compare(&backend, paths, &grid(&[*payload], batches, &[None]), rounds(3), secs(0.3), Idle::Block)?;
        }
        Cmd::Syscalls { rates, batch, payload, paths } => {
            let rates: Vec<_> = rates.iter().map(|r| Some(*r)).collect();
            rep.syscalls =
                compare(&backend, paths, &grid(&[*payload], &[*batch], &rates), rounds(3), secs(1.0), Idle::Block)?;
        }
        Cmd::Rtrb { batches } => {
            rep.rtrb = rtrb_cmp(&cli, batches, rounds(5), secs(0.5))?;
        }
        Cmd::E2e(a) => e2e_cmp(&cli, a, rounds(2), secs(3.0), &mut rep)?,
        Cmd::All { e2e, e2e_args, quick } => {
            let (r, s) = if *quick { (1, 0.1) } else { (0, 0.0) };
            let rr = |d| if *quick { r } else { rounds(d) };
            let ss = |d| if *quick { s } else { secs(d) };
            let all4 = [PathKind::RingBatch, PathKind::RingSlot, PathKind::Udp, PathKind::Pipe];
            rep.handoff = compare(&backend, &all4, &grid(&[64, 1200], &[32], &[None]), rr(5), ss(0.5), Idle::Block)?;
            let batches: &[usize] = if *quick { &[1, 32] } else { &[1, 4, 16, 32, 64, 128, 256] };
            rep.sweep = compare(
                &backend,
                &[PathKind::RingBatch, PathKind::Udp, PathKind::Pipe],
                &grid(&[1200], batches, &[None]),
                rr(3),
                ss(0.3),
                Idle::Block,
            )?;
            let rates = [Some(2000), Some(20_000)];
            rep.syscalls = compare(&backend, &all4, &grid(&[1200], &[32], &rates), rr(3), ss(1.0), Idle::Block)?;
            if backend.kind() == rtpmgr::BackendKind::Shm {
                rep.rtrb = rtrb_cmp(&cli, &[1, 32], rr(5), ss(0.5))?;
            }
            if *e2e {
                let mut a = e2e_args.clone();
                if *quick {
                    a.rates = Some(a.rates.clone().unwrap_or_else(|| vec![1000]));
                    a.rates.as_mut().expect("set").truncate(1);
                }
                if *quick {
                    a.wakes.truncate(1);
                    a.scale.truncate(1);
                    a.tx_rates.truncate(1);
                }
                e2e_cmp(&cli, &a, rr(2), ss(3.0), &mut rep)?;
            }
        }
        Cmd::Send { .. } | Cmd::Peer { .. } | Cmd::WireSend { .. } => unreachable!("handled above"),
    }
    rep.notes.extend(e2e::take_notes());
    let json = serde_json::to_string(&rep)?;
    if let Some(out) = &cli.out {
        std::fs::write(out, &json).with_context(|| format!("write {}", out.display()))?;
    }
    if cli.json {
        println!("{json}");
    } else {
        print_report(&rep);
    }
    Ok(())
}

/// (payload, batch, rate) settings of a comparison.
fn grid(payloads: &[usize], batches: &[usize], rates: &[Option<u64>]) -> Vec<(usize, usize, Option<u64>)> {
    let mut g = Vec::new();
    for &p in payloads {
        for &b in batches {
            for &r in rates {
                g.push((p, b, r));
            }
        }
    }
    g
}

/// Runs every path at every setting, `rounds` times, interleaved: all paths of a setting run
/// back to back inside each round.
fn compare(
    backend: &Backend,
    paths: &[PathKind],
    settings: &[(usize, usize, Option<u64>)],
    rounds: usize,
    secs: f64,
    idle: Idle,
) -> Result<Vec<Row>> {
    let mut samples: Vec<Vec<Outcome>> = vec![Vec::new(); paths.len() * settings.len()];
    for round in 0..rounds {
        for (si, &(payload, batch, rate)) in settings.iter().enumerate() {
            for (pi, &path) in paths.iter().enumerate() {
                let p = Params { path, backend: backend.clone(), payload, batch, secs, rate, idle };
                let o = handoff::run(&p)
                    .with_context(|| format!("round {} of {} at {payload} B, batch {batch}", round + 1, path.name()))?;
                samples[si * paths.len() + pi].push(o);
            }
        }
        eprintln!("  round {}/{rounds} done", round + 1);
    }
    let mut rows = Vec::new();
    for (si, &(payload, batch, rate)) in settings.iter().enumerate() {
        for (pi, &path) in paths.iter().enumerate() {
            let s = &samples[si * paths.len() + pi];
            let f = |g: &dyn Fn(&Outcome) -> f64| {
                Summary::of(&s.iter().map(g).filter(|v| v.is_finite()).collect::<Vec<_>>())
            };
            rows.push(Row {
                path,
                payload,
                batch,
                rate,
                pps: f(&|o| o.pps),
                prod_calls_per_pkt: f(&|o| o.prod_calls_per_pkt),
                cons_calls_per_pkt: f(&|o| o.cons_calls_per_pkt),
                calls_per_pkt: f(&|o| o.prod_calls_per_pkt + o.cons_calls_per_pkt),
            });
        }
    }
    Ok(rows)
}

fn rtrb_cmp(cli: &Cli, batches: &[usize], rounds: usize, secs: f64) -> Result<Vec<Row>> {
    // Always the shm backend: rtrb is an in-process reference; both sides spin (yield) when idle,
    // as rtrb has no blocking wait.
    let shm = Backend::shm(&cli.shm_name);
    compare(&shm, &[PathKind::RingBatch, PathKind::Rtrb], &grid(&[16], batches, &[None]), rounds, secs, Idle::Spin)
}

fn parse_wake(s: &str) -> Result<(u32, u32)> {
    let (n, us) = s.split_once('/').ok_or_else(|| anyhow::anyhow!("wake-up rule '{s}': slots/usecs expected"))?;
    Ok((n.trim().parse().context("wake-up slots")?, us.trim().parse().context("wake-up usecs")?))
}

/// Summarizes the steps of one path (and wake-up rule) at one rate over the rounds.
fn e2e_row(steps: &[&e2e::Step], path: e2e::E2ePath, rate: u64, wake: Option<(u32, u32)>) -> E2eRow {
    let f = |g: &dyn Fn(&e2e::Step) -> f64| {
        Summary::of(&steps.iter().map(|s| g(s)).filter(|v| v.is_finite()).collect::<Vec<_>>())
    };
    let p99 = f(&|s| s.lat_p99_us);
    let median_round = steps
        .iter()
        .min_by(|x, y| {
            let d = |s: &e2e::Step| if s.lat_p99_us.is_finite() { (s.lat_p99_us - p99.median).abs() } else { f64::MAX };
            d(x).total_cmp(&d(y))
        })
        .expect("steps is not empty");
    E2eRow {
        path,
        rate,
        rounds: steps.len(),
        sent: steps.iter().map(|s| s.sent).sum(),
        lost: steps.iter().map(|s| s.lost).sum(),
        cpu_us_per_pkt: f(&|s| s.cpu_us_per_pkt),
        cpu_load: f(&|s| s.cpu_load),
        lat_p50_us: f(&|s| s.lat_p50_us),
        lat_p99_us: p99,
        lat_cdf_us: median_round.lat_cdf_us.clone(),
        threads: median_round.threads.clone(),
        wakeups_per_pkt: f(&|s| s.wakeups_per_pkt),
        nic_rx: steps.iter().map(|s| s.nic_rx).sum(),
        wake,
    }
}

fn e2e_cmp(cli: &Cli, a: &E2eArgs, rounds: usize, secs: f64, rep: &mut Report) -> Result<()> {
    e2e::init()?;
    let exe = std::env::current_exe().context("find my own executable for the sender")?;
    let wire = if a.wire {
        let peer = wire::Peer::new()?;
        let (off, rtt) = peer.clock_offset().context("reach the host peer")?;
        eprintln!(
            "  host peer at {}: round trip {} µs, host clock - guest clock {} µs",
            wire::PEER_IP,
            rtt / 1000,
            off / 1000
        );
        Some(e2e::Wire { peer: std::sync::Arc::new(peer), iface: a.iface.clone() })
    } else {
        None
    };
    let rates = a.rates.clone().unwrap_or_else(|| {
        if a.wire {
            vec![1000, 2000, 4000, 8000, 16000]
        } else {
            vec![250, 500, 1000, 2000, 4000]
        }
    });
    let p = e2e::E2eParams {
        rates: rates.clone(),
        secs,
        payload: a.payload,
        port: a.port,
        channel: cli.channel,
        backend_shm: (backend_of(cli).kind() == rtpmgr::BackendKind::Shm).then(|| cli.shm_name.clone()),
        rtp_app: a.rtp_app.clone(),
        wire: wire.clone(),
        wake: None,
    };
    use e2e::E2ePath as P;
    let paths = a.e2e_paths.clone().unwrap_or_else(|| {
        if a.wire {
            vec![
                P::Kernel,
                P::KernelLists,
                P::KernelRtpmgrsrc,
                P::Ring,
                P::RingLists,
                P::Rtpmgrsrc,
                P::Gst,
                P::FloorXdp,
                P::FloorSock,
            ]
        } else {
            vec![P::Ring, P::RingThread, P::RingLists, P::Rtpmgrsrc, P::Gst]
        }
    });
    let mut all: Vec<e2e::Step> = Vec::new();
    // A path that cannot run (a missing feature, a refused XDP attach) is reported and left out;
    // the others still run.
    let mut broken: Vec<e2e::E2ePath> = Vec::new();
    for round in 0..rounds {
        for &path in &paths {
            if broken.contains(&path) {
                continue;
            }
            match e2e::run_path(path, &p, &exe) {
                Ok(steps) => all.extend(steps),
                Err(e) => {
                    let why = format!("e2e path {} not measured: {e:#}", path.name());
                    eprintln!("  {why}");
                    rep.skipped.push(why);
                    broken.push(path);
                }
            }
        }
        eprintln!("  e2e round {}/{rounds} done", round + 1);
    }
    for &path in &paths {
        for &rate in &rates {
            let steps: Vec<&e2e::Step> = all.iter().filter(|s| s.path == path && s.rate == rate).collect();
            if !steps.is_empty() {
                rep.e2e.push(e2e_row(&steps, path, rate, None));
            }
        }
    }
    if a.paths_only {
        return Ok(());
    }
    let Some(_) = wire else {
        if !a.wakes.is_empty() || !a.scale.is_empty() {
            eprintln!("  (coalescing and scaling need --wire: skipped)");
        }
        return Ok(());
    };
    // Coalescing trade-off: the kernel path at one rate under several wake-up rules.
    if broken.contains(&P::Kernel) || !paths.contains(&P::Kernel) {
        if !a.wakes.is_empty() {
            rep.skipped.push("coalescing trade-off: the kernel path did not run".into());
        }
    } else {
        let wakes: Vec<(u32, u32)> = a.wakes.iter().map(|w| parse_wake(w)).collect::<Result<_>>()?;
        let mut steps: Vec<(usize, e2e::Step)> = Vec::new();
        for round in 0..rounds {
            for (i, &w) in wakes.iter().enumerate() {
                let pw = e2e::E2eParams { rates: vec![a.wake_rate], wake: Some(w), ..p.clone() };
                match e2e::run_path(P::Kernel, &pw, &exe) {
                    Ok(s) => steps.extend(s.into_iter().map(|s| (i, s))),
                    Err(e) => rep.skipped.push(format!("coalescing {}/{} round {}: {e:#}", w.0, w.1, round + 1)),
                }
            }
            eprintln!("  coalescing round {}/{rounds} done", round + 1);
        }
        for (i, &w) in wakes.iter().enumerate() {
            let s: Vec<&e2e::Step> = steps.iter().filter(|(j, _)| *j == i).map(|(_, s)| s).collect();
            if !s.is_empty() {
                rep.coalesce.push(e2e_row(&s, P::Kernel, a.wake_rate, Some(w)));
            }
        }
    }
    // TX: kernel send vs rtp_app's sendmmsg.
    if let Some(w) = &wire {
        if !a.tx_rates.is_empty() {
            match tx::run(&w.peer, &a.rtp_app, cli.channel, &a.tx_rates, secs, &mut rep.skipped) {
                Ok(t) => rep.tx = t,
                Err(e) => rep.skipped.push(format!("TX comparison not measured: {e:#}")),
            }
            eprintln!("  TX done");
        }
    }
    // Scaling: 1, 2, 4, 8 concurrent streams, kernel-attached vs udpsrc.
    for &n in &a.scale {
        for path in [P::Kernel, P::Gst] {
            if broken.contains(&path) {
                continue;
            }
            match e2e::run_scale(path, &p, n, a.scale_rate, a.scale_channel) {
                Ok(pt) => rep.scale.push(pt),
                Err(e) => {
                    let why = format!("scaling {} with {n} streams not measured: {e:#}", path.name());
                    eprintln!("  {why}");
                    rep.skipped.push(why);
                }
            }
        }
        eprintln!("  scaling {n} streams done");
    }
    Ok(())
}

fn spread(s: &Summary) -> String {
    format!("{} [{}..{}]", fmt_rate(s.median), fmt_rate(s.min), fmt_rate(s.max))
}

fn calls(s: &Summary) -> String {
    if s.n == 0 {
        "-".into()
    } else {
        format!("{:.3}", s.median)
    }
}

fn print_rows(title: &str, rows: &[Row]) {
    if rows.is_empty() {
        return;
    }
    println!("\n### {title}\n");
    println!("| path | payload B | batch | offered pps | delivered pkt/s median [min..max] | calls/pkt prod | calls/pkt cons | calls/pkt total |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            r.path.name(),
            r.payload,
            r.batch,
            r.rate.map_or("max".into(), |v| fmt_rate(v as f64)),
            spread(&r.pps),
            calls(&r.prod_calls_per_pkt),
            calls(&r.cons_calls_per_pkt),
            calls(&r.calls_per_pkt)
        );
    }
}

fn ratio(rows: &[Row], a: PathKind, b: PathKind, payload: usize, batch: usize) -> Option<f64> {
    let find = |p| rows.iter().find(|r| r.path == p && r.payload == payload && r.batch == batch && r.rate.is_none());
    Some(find(a)?.pps.median / find(b)?.pps.median)
}

fn print_report(rep: &Report) {
    println!("## rtpmgr-bench ({})", rep.meta);
    print_rows("Ring handoff (two threads, as fast as possible)", &rep.handoff);
    for payload in [64, 1200] {
        for other in [PathKind::RingSlot, PathKind::Udp, PathKind::Pipe] {
            if let Some(x) = ratio(&rep.handoff, PathKind::RingBatch, other, payload, 32) {
                println!("ratio ring-batch / {} at {payload} B: {x:.1}x", other.name());
            }
        }
    }
    print_rows("Throughput vs batch size", &rep.sweep);
    print_rows("Syscalls per packet at a fixed offered rate", &rep.syscalls);
    print_rows("shm ring vs rtrb (16-byte descriptors, spinning)", &rep.rtrb);
    for b in [1, 32] {
        if let Some(x) = ratio(&rep.rtrb, PathKind::RingBatch, PathKind::Rtrb, 16, b) {
            println!("ratio shm ring / rtrb at batch {b}: {x:.2}x");
        }
    }
    if !rep.e2e.is_empty() {
        print_e2e(rep);
    }
    for n in &rep.notes {
        println!("note: {n}");
    }
    for why in &rep.skipped {
        println!("skipped: {why}");
    }
}

fn median_of(rows: &[E2eRow], path: e2e::E2ePath, rate: u64) -> Option<&E2eRow> {
    rows.iter().find(|r| r.path == path && r.rate == rate && r.cpu_us_per_pkt.n > 0)
}

fn x(a: f64, b: Option<f64>) -> String {
    match b {
        Some(b) if b > 0.0 && a.is_finite() => format!("{:.1}x", a / b),
        _ => "-".into(),
    }
}

fn print_e2e(rep: &Report) {
    use e2e::E2ePath as P;
    println!("\n### End to end (UDP in -> rtpjitterbuffer -> appsink)\n");
    println!(
        "CPU per packet: {}",
        if rep.e2e.iter().any(|r| r.nic_rx > 0) {
            "guest-wide busy time (wall x CPUs - idle - iowait, /proc/stat, precise under NO_HZ) / packets delivered to the appsink (floors: / frames the NIC received)"
        } else {
            "utime+stime of the receiving processes / packets delivered (local sender over loopback)"
        }
    );
    println!("\n| path | offered pps | sent | lost | CPU µs/pkt median [min..max] | x floor-xdp | x floor-sock | x gst | CPU load | p50 µs | p99 µs | wake-ups/pkt |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &rep.e2e {
        let base = |p| median_of(&rep.e2e, p, r.rate).map(|b| b.cpu_us_per_pkt.median);
        let c = r.cpu_us_per_pkt.median;
        println!(
            "| {} | {} | {} | {} | {:.0} [{:.0}..{:.0}] | {} | {} | {} | {:.0}% | {:.0} | {:.0} | {} |",
            r.path.name(),
            r.rate,
            r.sent,
            if r.path.is_floor() { "-".into() } else { r.lost.to_string() },
            c,
            r.cpu_us_per_pkt.min,
            r.cpu_us_per_pkt.max,
            x(c, base(P::FloorXdp)),
            x(c, base(P::FloorSock)),
            x(c, base(P::Gst)),
            r.cpu_load.median * 100.0,
            r.lat_p50_us.median,
            r.lat_p99_us.median,
            if r.wakeups_per_pkt.n > 0 { format!("{:.3}", r.wakeups_per_pkt.median) } else { "-".into() }
        );
    }
    println!("\nCPU µs per packet by thread (threads above 5 µs/pkt):");
    for r in rep.e2e.iter().filter(|r| !r.path.is_floor()) {
        let t: Vec<String> = r.threads.iter().filter(|t| t.1 >= 5.0).map(|(n, v)| format!("{n} {v:.0}")).collect();
        println!("- {} {} pps: {}", r.path.name(), r.rate, t.join(", "));
    }
    let mut paths: Vec<e2e::E2ePath> = rep.e2e.iter().map(|r| r.path).filter(|p| !p.is_floor()).collect();
    paths.dedup();
    let zero_loss = |p: e2e::E2ePath| {
        // The highest rate up to which every step was loss-free.
        let mut best = None;
        for r in rep.e2e.iter().filter(|r| r.path == p) {
            if r.lost > 0 {
                break;
            }
            best = Some(r.rate);
        }
        best
    };
    for &path in &paths {
        println!(
            "highest zero-loss rate, {}: {}",
            path.name(),
            zero_loss(path).map_or("none".into(), |r| format!("{r} pps"))
        );
    }
    if !rep.coalesce.is_empty() {
        println!("\n### Wake-up coalescing (kernel path)\n");
        println!("| wake-up rule (slots / µs) | offered pps | lost | CPU µs/pkt | wake-ups/pkt | p50 µs | p99 µs |");
        println!("|---|---:|---:|---:|---:|---:|---:|");
        for r in &rep.coalesce {
            let (n, us) = r.wake.unwrap_or((0, 0));
            println!(
                "| {n} / {us} | {} | {} | {:.0} [{:.0}..{:.0}] | {:.3} | {:.0} | {:.0} |",
                r.rate,
                r.lost,
                r.cpu_us_per_pkt.median,
                r.cpu_us_per_pkt.min,
                r.cpu_us_per_pkt.max,
                r.wakeups_per_pkt.median,
                r.lat_p50_us.median,
                r.lat_p99_us.median
            );
        }
    }
    if !rep.scale.is_empty() {
        println!("\n### Scaling: concurrent streams, one channel each\n");
        println!("| path | streams | pps each | sent | lost | CPU µs/pkt | CPU load | p99 µs |");
        println!("|---|---:|---:|---:|---:|---:|---:|---:|");
        for s in &rep.scale {
            println!(
                "| {} | {} | {} | {} | {} | {:.0} | {:.0}% | {:.0} |",
                s.path.name(),
                s.streams,
                s.rate_per_stream,
                s.sent,
                s.lost,
                s.cpu_us_per_pkt,
                s.cpu_load * 100.0,
                s.lat_p99_us
            );
        }
    }
    if !rep.tx.is_empty() {
        println!("\n### TX: kernel send vs rtp_app sendmmsg (guest CPU per packet the host received)\n");
        println!("| path | offered pps | received by the host | CPU µs/pkt | CPU load |");
        println!("|---|---:|---:|---:|---:|");
        for t in &rep.tx {
            println!(
                "| {} | {} | {} | {:.0} | {:.0}% |",
                t.path,
                t.rate,
                t.received,
                t.cpu_us_per_pkt,
                t.cpu_load * 100.0
            );
        }
    }
    // Issue 13's targets, from the numbers above.
    println!("\n### Targets (kernel data-path issue)\n");
    let gst_cpu = |rate| median_of(&rep.e2e, P::Gst, rate).map(|r| r.cpu_us_per_pkt.median);
    for rate in [1000, 2000, 4000] {
        let (Some(k), Some(g)) = (median_of(&rep.e2e, P::Kernel, rate), gst_cpu(rate)) else {
            println!("- kernel CPU/packet <= 0.6x udpsrc at {rate} pps: not measured");
            continue;
        };
        let ratio = k.cpu_us_per_pkt.median / g;
        println!(
            "- kernel CPU/packet <= 0.6x udpsrc at {rate} pps: {:.0} vs {:.0} µs = {ratio:.2}x: {}",
            k.cpu_us_per_pkt.median,
            g,
            if ratio <= 0.6 { "met" } else { "missed" }
        );
    }
    match (zero_loss(P::Kernel), zero_loss(P::Gst)) {
        (Some(k), Some(g)) => {
            let top = rep.e2e.iter().map(|r| r.rate).max().unwrap_or(0);
            let note = if k == top { " (the highest step offered: the real limit is higher)" } else { "" };
            println!(
                "- highest zero-loss rate >= 2x udpsrc: kernel {k} pps{note}, udpsrc {g} pps = {:.1}x: {}",
                k as f64 / g as f64,
                if k >= 2 * g { "met" } else { "missed" }
            );
        }
        (k, g) => println!("- highest zero-loss rate >= 2x udpsrc: kernel {k:?}, udpsrc {g:?}: not comparable"),
    }
    match median_of(&rep.e2e, P::Kernel, 4000) {
        Some(r) if r.wakeups_per_pkt.n > 0 => println!(
            "- wake-ups/packet <= 0.1 at 4000 pps (default coalescing): {:.3}: {}",
            r.wakeups_per_pkt.median,
            if r.wakeups_per_pkt.median <= 0.1 { "met" } else { "missed" }
        ),
        _ => println!("- wake-ups/packet <= 0.1 at 4000 pps: not measured"),
    }
}

//! rtp_app: receive, send and control RTP streams through the rtpmgr zero-copy ring.
//! See `rtp_app --help` and docs/rtp_app.md.

use anyhow::Result;
use clap::Parser;
use rtp_app::app::{self, RxRun, TxRun};
use rtp_app::backend;
use rtp_app::cli::{Cli, Command, DataPath, Mode, TxSource};
use rtp_app::control::{self, StopReason, StopState};
use rtp_app::diag::{self, DiagEnv, DiagTarget};
use rtp_app::kpath::{KernelRxRun, KernelTxRun};
use rtp_app::rtp::StreamParams;
use rtp_app::rx::RxConfig;
use rtp_app::tx::TxConfig;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// Exit status of a usage error (clap uses the same).
const EXIT_USAGE: u8 = 2;

/// Packets per second of a generated stream without --rate.
const DEFAULT_RATE: u32 = 1000;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp_millis()
        .init();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        // --help and --version print to stdout and exit 0; real errors exit 2.
        Err(e) => e.exit(),
    };
    if let Err(msg) = cli.validate() {
        eprintln!("[rtp_app error]: {msg}. See 'rtp_app --help'.");
        return ExitCode::from(EXIT_USAGE);
    }
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("[rtp_app error]: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let json = cli.common.json;
    if let Some(Command::Diag) = cli.command {
        return run_diag(&cli);
    }
    if let Some(Command::Monitor(m)) = &cli.command {
        return run_monitor(&cli, m);
    }
    if let Some(Command::Capture(c)) = &cli.command {
        let stop = StopState::new();
        let _signals = stop.install_signal_handlers()?;
        return rtp_app::capture::run(&cli.common, c, &stop);
    }
    if let Some(Command::Top(t)) = &cli.command {
        return rtp_app::top::run(&cli.common, t);
    }
    match cli.mode {
        Some(Mode::Ctl) => {
            let b = backend::select(&cli.common)?;
            control::emit(&rtp_app::ctl::run(&cli.ctl, &b, json)?);
            Ok(ExitCode::SUCCESS)
        }
        Some(Mode::Rx) | Some(Mode::Tx) => {
            let r = run_stream(&cli);
            // The worker has returned (signal, limit or error): the manager sees the shutdown.
            rtpmgr_service::stopping();
            r
        }
        None => unreachable!("validate() requires --mode without a subcommand"),
    }
}

fn run_stream(cli: &Cli) -> Result<ExitCode> {
    let c = &cli.common;
    // The stop state exists before the handlers that set it, and both exist before anything is
    // acquired: a signal at any point from here on ends the run cleanly (seed 003 bug 6).
    let stop = StopState::new();
    let _signals = stop.install_signal_handlers()?;
    // $NOTIFY_SOCKET/$WATCHDOG_USEC and --rt-priority/--cpu/--ready-file; READY comes from the
    // worker once the channel is open and the socket bound.
    rtpmgr_service::init(&cli.service)?;
    let backend = backend::select(c)?;
    let limits = app::limits(c.time, c.limit);
    let interval = (c.interval > 0.0).then(|| Duration::from_secs_f64(c.interval));
    let batch = c.batch as usize;
    let port = cli.rx.port.unwrap_or(0);

    if cli.mode == Some(Mode::Rx) && cli.xdp.xdp.is_some() {
        // AF_XDP instead of the UDP socket (rtpmgr-xdp); same stop state, same -t/-l.
        println!("{}", rtp_app::xdp::run(cli, &stop)?);
        return Ok(ExitCode::SUCCESS);
    }
    let path = cli.data_path(backend.kind());
    let summary = if cli.mode == Some(Mode::Rx) && path == DataPath::Kernel {
        let cfg = KernelRxRun {
            bind: cli.rx.bind,
            membership: cli.membership().map_err(anyhow::Error::msg)?,
            port,
            wakeup: cli.rx_kernel_wakeup(),
            drain: cli.rx.drain,
            batch,
            limits,
            interval,
            json: c.json,
        };
        rtp_app::kpath::run_rx_kernel(&cfg, &backend, Arc::clone(&stop))
    } else if cli.mode == Some(Mode::Tx) && path == DataPath::Kernel {
        let Some(dst_ip) = cli.tx.dst else { unreachable!("validate() requires --dst") };
        let any: IpAddr = if dst_ip.is_ipv6() { Ipv6Addr::UNSPECIFIED.into() } else { Ipv4Addr::UNSPECIFIED.into() };
        let cfg = KernelTxRun {
            bind: SocketAddr::new(cli.rx.bind.unwrap_or(any), 0),
            dst: SocketAddr::new(dst_ip, port),
            sockbuf: cli.rx.sockbuf,
            multicast: cli.send_options(),
            pacing: rtpmgr::TxPacing::new(cli.tx.rate.unwrap_or(0), cli.path.burst.unwrap_or(0)),
            wakeup: cli.wakeup_rule(),
            limits,
            interval,
            json: c.json,
        };
        rtp_app::kpath::run_tx_kernel(&cfg, &backend, Arc::clone(&stop))
    } else if cli.mode == Some(Mode::Rx) {
        let cfg = RxRun {
            bind: cli.rx.bind,
            // validate() checked the request.
            membership: cli.membership().map_err(anyhow::Error::msg)?,
            port,
            sockbuf: cli.rx.sockbuf,
            drain: cli.rx.drain,
            wakeup: cli.wakeup_rule(),
            worker: RxConfig { batch, keep_malformed: cli.rx.keep_malformed, limits },
            interval,
            json: c.json,
        };
        app::run_rx(&cfg, &backend, Arc::clone(&stop))
    } else {
        let Some(dst_ip) = cli.tx.dst else { unreachable!("validate() requires --dst") };
        let any: IpAddr = if dst_ip.is_ipv6() { Ipv6Addr::UNSPECIFIED.into() } else { Ipv4Addr::UNSPECIFIED.into() };
        let stream = (cli.tx.source == TxSource::Generate).then(|| StreamParams {
            ssrc: cli.tx.ssrc.unwrap_or_else(random_u32),
            payload_type: cli.tx.pt,
            clock_rate: cli.tx.clock_rate,
            rate: cli.tx.rate.unwrap_or(DEFAULT_RATE),
            payload_len: cli.tx.payload,
            first_seq: random_u32() as u16,
            first_timestamp: random_u32(),
        });
        let cfg = TxRun {
            bind: SocketAddr::new(cli.rx.bind.unwrap_or(any), 0),
            dst: SocketAddr::new(dst_ip, port),
            sockbuf: cli.rx.sockbuf,
            multicast: cli.send_options(),
            stream,
            worker: TxConfig {
                batch,
                rate: match cli.tx.source {
                    TxSource::Generate => Some(cli.tx.rate.unwrap_or(DEFAULT_RATE)),
                    TxSource::Ring => cli.tx.rate,
                },
                limits,
            },
            interval,
            json: c.json,
            xdp: rtp_app::xdp::tx_settings(cli),
        };
        app::run_tx(&cfg, &backend, Arc::clone(&stop))
    }?;
    control::emit(&app::final_record(&summary, c.json));
    if let Some(line) = &summary.transport {
        control::emit(line);
    }
    if summary.invalid_slots > 0 {
        log::error!("{} invalid slot entries came back from the ring and were ignored", summary.invalid_slots);
    }
    Ok(match summary.reason {
        StopReason::Error => ExitCode::FAILURE,
        _ => ExitCode::SUCCESS,
    })
}

fn run_diag(cli: &Cli) -> Result<ExitCode> {
    let (backend, other_channels) = backend::select_for_diag(&cli.common);
    let checks = diag::run(&DiagTarget { backend, other_channels }, &DiagEnv::default());
    let ok = diag::report(&checks, cli.common.json);
    if let Err(e) = backend::cleanup_diag(&cli.common) {
        log::warn!("{e:#}");
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn run_monitor(cli: &Cli, m: &rtp_app::cli::MonitorArgs) -> Result<ExitCode> {
    let stop = StopState::new();
    let _signals = stop.install_signal_handlers()?;
    let cfg = rtp_app::monitor::MonitorRun {
        // --channel has a default (0) for the other modes: here it filters only when given.
        channel: rtp_app::monitor::channel_given(std::env::args_os()).then_some(cli.common.channel),
        count: m.count,
        time: cli.common.time.map(Duration::from_secs_f64),
        json: cli.common.json,
    };
    rtp_app::monitor::run(&cfg, &stop)?;
    Ok(ExitCode::SUCCESS)
}

/// A random 32-bit value for SSRC and initial sequence/timestamp (RFC 3550 asks for random
/// initial values). getrandom(2) never blocks after boot; the clock is a fallback.
fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    // SAFETY: b is a writable 4-byte buffer.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), libc::GRND_NONBLOCK) };
    if n == 4 {
        u32::from_ne_bytes(b)
    } else {
        (rtpmgr::monotonic_ns() as u32) ^ std::process::id().rotate_left(16)
    }
}

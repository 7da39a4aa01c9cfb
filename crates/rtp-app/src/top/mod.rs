//! `rtp_app top`: a live view of every channel — rates, loss, jitter, drops, slots, holders — in
//! the terminal (ratatui over crossterm), or one snapshot as text or JSON for scripts.
//!
//! - [`sample`]: which channels exist and what they read now (ioctls, `/proc/<pid>/fd`).
//! - [`view`]: rows from two samples, the plain-text table and detail lines, the JSON record.
//! - [`tui`]: the terminal: raw mode, alternate screen, keys, and restoring it on every exit.

pub mod sample;
pub mod tui;
pub mod view;

use crate::cli::{BackendKind, CommonArgs};
use anyhow::{bail, Result};
use clap::Args;
use sample::{Channels, Watch};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Refresh interval of top without --interval (the global default of 2 s is the stats line's).
pub const DEFAULT_INTERVAL_S: f64 = 1.0;
/// Shortest refresh: below it top itself would be a noticeable load on a small device.
const MIN_INTERVAL_S: f64 = 0.1;

/// The manual of `rtp_app top --help`.
pub const LONG_ABOUT: &str = "\
Live view of every channel: one row per channel, a detail pane for the selected one.

Channels: every /dev/rtp_mgrN present (kernel backend, opened read-only: no write access or
role is needed and nothing on the data path changes), or with --backend shm every shm ring
rtpmgr-N under /dev/shm ($RTPMGR_SHM_DIR), or the one --shm-name names. Without --backend top
uses the kernel if any /dev/rtp_mgrN exists. Channels that appear or disappear while top runs
are picked up at the next refresh.

Columns (rates over the last refresh interval, counters since load or RESET):
  CH      channel N
  STATE   run or stop (error: the channel could not be read; the detail pane says why)
  ATTACH  kernel: a UDP socket is attached and the module moves the packets (status.attached;
          the detail pane says rx, tx or rx+tx); socket: a process maps the ring and moves
          them itself (rtp_app --path socket, a shm ring); none: nobody moves packets
  IN/s    packets pushed per second;  OUT/s  packets popped per second
  Mb/s    megabits per second pushed (RTP header and payload)
  LOSS%   packets lost over the interval: RFC 3550 expected minus received (GET_QUALITY) on
          the kernel backend, the ring's sequence-gap counter on shm
  JITms   RFC 3550 interarrival jitter in ms (kernel; needs the stream's clock rate set
          with SET_CLOCK_RATE, otherwise '-')
  REORD   RTP packets that arrived late
  DROPS   packets dropped for any cause (the detail pane breaks them down: drop-oldest,
          ring-full, oversize, while-stopped, tx-errors, evicted)
  READY   slots READY for the consumer;  HELD  slots a process owns (PRODUCING+CONSUMING)
  HOLDERS the processes with the channel open (comm of the first, +N more); the detail pane
          lists pid/comm of each. Found in /proc/<pid>/fd, so run as root to see other users'.
A '-' is a value top cannot know: a rate before the second sample, jitter without a clock
rate, quality on a shm ring.

Keys: Up/Down or k/j or Tab/Shift-Tab select a channel; p or space pauses (the view keeps
the last values, rates restart on resume); q, Esc or Ctrl-C quits. SIGINT and SIGTERM quit
too. Every exit, also a panic, restores the terminal (raw mode off, alternate screen left,
cursor shown). Works on a serial console at 80x24; without colours (bold and reverse video
only) when NO_COLOR is set, TERM is dumb, or with --no-color.

Scripts: --once prints one plain-text snapshot (no escape codes, at most 80 columns) and
exits; --json prints JSON records instead (one with --once, else one per interval until
-t or a signal). Rates need two samples, so --once reads every channel twice, --interval
apart (1 s by default), and prints after the second.";

/// Examples of `rtp_app top --help`.
pub const AFTER_LONG_HELP: &str = "\
Examples:
  Watch every channel of the kernel module, refreshed every second:
    rtp_app top

  The same every half second, without colours (e.g. a serial console that shows escape codes):
    rtp_app top --interval 0.5 --no-color

  One snapshot for a bug report (reads twice, 1 s apart):
    rtp_app top --once

  The streaming channel's packets per second from a script:
    rtp_app top --once --json | jq '.channels[] | select(.pps_in > 0) | {channel, pps_in}'

  Shm rings on a host without the module (one named ring):
    rtp_app top --backend shm --shm-name rtpmgr-test

  A JSON record every 5 s for a minute:
    rtp_app top --json --interval 5 -t 60

Exit status: 0 on q, -t, SIGINT or SIGTERM; 1 if no channel exists or the terminal fails;
2 usage error.";

/// Options of `rtp_app top` (--interval, --json, -t, --backend and --shm-name are the common ones).
#[derive(Debug, Clone, Args)]
pub struct TopArgs {
    /// Print one snapshot and exit (two samples --interval apart; text, or JSON with --json).
    #[arg(long)]
    pub once: bool,

    /// No colours in the live view (also when NO_COLOR is set or TERM is dumb).
    ///
    /// Bold and reverse video still mark the heading and the selected channel.
    #[arg(long)]
    pub no_color: bool,
}

/// Whether the live view may use colours: not with --no-color, a non-empty NO_COLOR
/// (no-color.org), or TERM=dumb.
pub fn colours_allowed(no_color_flag: bool) -> bool {
    let no_color_env = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let dumb = std::env::var_os("TERM").is_some_and(|t| t == "dumb");
    !(no_color_flag || no_color_env || dumb)
}

/// The channels `common` asks for: --backend shm (all rings, or --shm-name's), --backend kernel,
/// or without --backend the kernel if any node exists, else an error naming both ways.
pub fn watch_of(common: &CommonArgs) -> Result<Watch> {
    let dev_dir = PathBuf::from("/dev");
    let kernel = Watch::Kernel { dev_dir: dev_dir.clone() };
    Ok(match common.backend {
        Some(BackendKind::Kernel) => kernel,
        Some(BackendKind::Shm) => match &common.shm_name {
            Some(name) => Watch::ShmOne { path: rtpmgr::shm_dir().join(name) },
            None => Watch::ShmAll { dir: rtpmgr::shm_dir() },
        },
        None => {
            if common.shm_name.is_some() {
                bail!("--shm-name names a shm ring: give --backend shm too");
            }
            if sample::discover(&kernel).map(|m| m.is_empty()).unwrap_or(true) {
                bail!(
                    "no /dev/{}N device: load the kernel module (modprobe rtp_mgr), or watch shm rings \
                     with --backend shm",
                    rtpmgr_abi::RTPM_DEVICE_PREFIX
                );
            }
            kernel
        }
    })
}

/// The refresh interval: --interval if given on the command line, else 1 s (the common option's
/// default of 2 s belongs to the stats line of rx and tx).
fn interval_of(common: &CommonArgs) -> Result<Duration> {
    use clap::CommandFactory;
    let given = crate::cli::Cli::command()
        .try_get_matches_from(std::env::args_os())
        .ok()
        .and_then(|m| {
            let sub = m.subcommand_matches("top")?;
            Some(sub.value_source("interval") == Some(clap::parser::ValueSource::CommandLine))
        })
        .unwrap_or(false);
    let s = if given { common.interval } else { DEFAULT_INTERVAL_S };
    if s < MIN_INTERVAL_S {
        bail!("top refreshes at most every {MIN_INTERVAL_S} s: '--interval {s}' is too short");
    }
    Ok(Duration::from_secs_f64(s))
}

/// Reads every channel twice, `interval` apart, and returns the second refresh's rows.
fn two_samples(channels: &mut Channels, interval: Duration) -> Vec<view::Row> {
    let mut prev = view::Previous::new();
    view::rows(channels.sample_all(), &mut prev);
    std::thread::sleep(interval);
    view::rows(channels.sample_all(), &mut prev)
}

/// Runs `rtp_app top`.
pub fn run(common: &CommonArgs, args: &TopArgs) -> Result<ExitCode> {
    let interval = interval_of(common)?;
    let mut channels = Channels::open(watch_of(common)?)?;
    let backend = channels.watch().backend_name();
    let secs = interval.as_secs_f64();
    if args.once {
        let rows = two_samples(&mut channels, interval);
        let out = if common.json {
            view::snapshot_json(backend, secs, &rows)
        } else {
            view::snapshot_text(backend, secs, &rows)
        };
        println!("{out}");
        return Ok(ExitCode::SUCCESS);
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))?;
    }
    let until = common.time.map(|t| Instant::now() + Duration::from_secs_f64(t));
    if common.json {
        return json_loop(&mut channels, interval, &stop, until);
    }
    if !std::io::stdout().is_terminal() {
        bail!("the live view needs a terminal on stdout: use --once or --json for scripts and pipes");
    }
    tui::run(&mut channels, &tui::Settings { interval, colours: colours_allowed(args.no_color), until }, &stop)?;
    Ok(ExitCode::SUCCESS)
}

/// `--json` without `--once`: a record every interval until -t or a signal.
fn json_loop(
    channels: &mut Channels,
    interval: Duration,
    stop: &AtomicBool,
    until: Option<Instant>,
) -> Result<ExitCode> {
    let backend = channels.watch().backend_name();
    let mut prev = view::Previous::new();
    view::rows(channels.sample_all(), &mut prev);
    let mut next = Instant::now() + interval;
    loop {
        while Instant::now() < next {
            if stop.load(Ordering::Relaxed) || until.is_some_and(|u| Instant::now() >= u) {
                return Ok(ExitCode::SUCCESS);
            }
            std::thread::sleep(Duration::from_millis(50).min(next.saturating_duration_since(Instant::now())));
        }
        next += interval;
        let rows = view::rows(channels.sample_all(), &mut prev);
        let mut out = std::io::stdout().lock();
        // A closed pipe (| head) ends top quietly, like other tools.
        if writeln!(out, "{}", view::snapshot_json(backend, interval.as_secs_f64(), &rows))
            .and_then(|_| out.flush())
            .is_err()
        {
            return Ok(ExitCode::SUCCESS);
        }
    }
}

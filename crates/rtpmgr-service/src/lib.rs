//! How rtp_app and rtp-feeder run as services: readiness, status and watchdog pings to the
//! service manager (systemd's sd_notify protocol, [`notify`]), a readiness file for sysvinit
//! scripts, and real-time tuning of the worker thread ([`rt`]). See docs/tuning.md.
//!
//! The state is process-wide (one service per process), set once by [`init`] in `main` and
//! then used from the threads that do the work:
//!
//! - [`worker_started`] on the worker thread: applies `--rt-priority`/`--cpu` to that thread.
//! - [`ready`] once the channel is open and the socket bound (feeder: pipeline PLAYING): sends
//!   `READY=1` and writes the `--ready-file`. Nothing is announced before the service can work.
//! - [`watchdog_tick`] from the worker loop, every iteration: sends `WATCHDOG=1` once half the
//!   manager's `WatchdogSec` has passed since the last ping. A side thread would keep pinging
//!   while the worker hangs; the loop itself stops pinging when it stops turning.
//! - [`stopping`] on shutdown: `STOPPING=1`, and the readiness file is removed.
//!
//! Every function is a no-op when [`init`] was not called (tests, tools) or the manager does not
//! listen (no `$NOTIFY_SOCKET`).
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod notify;
pub mod rt;

use notify::{Notifier, NotifyError};
use rt::{CpuList, RtError, RtSettings};
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The service options both binaries take (rtp-feeder also reads them from feeder.toml's
/// `[tuning]`).
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = "Service options (docs/tuning.md)")]
pub struct ServiceArgs {
    /// Run the worker thread with SCHED_FIFO at this priority (1-99)
    ///
    /// Needs CAP_SYS_NICE or an RLIMIT_RTPRIO of at least N; without either the program stops at
    /// startup with an error naming the fix. See docs/tuning.md.
    #[arg(long, value_name = "n", value_parser = clap::value_parser!(u8).range(1..=99))]
    pub rt_priority: Option<u8>,

    /// Pin the worker thread to these CPUs, e.g. 1 or 0-1,3
    #[arg(long = "cpu", value_name = "list")]
    pub cpus: Option<CpuList>,

    /// Write the process id to this file once ready (socket bound, channel open); removed on exit
    ///
    /// For init scripts without sd_notify: the file appears only after the service can work,
    /// so `start` can wait for it. Under systemd, Type=notify uses $NOTIFY_SOCKET instead.
    #[arg(long, value_name = "path")]
    pub ready_file: Option<PathBuf>,
}

impl ServiceArgs {
    /// The real-time part.
    pub fn rt(&self) -> RtSettings {
        RtSettings { priority: self.rt_priority, cpus: self.cpus.clone() }
    }
}

/// Why [`init`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Notify(#[from] NotifyError),
    #[error("the service state is already initialised")]
    AlreadyInitialised,
    #[error(transparent)]
    Rt(#[from] RtError),
    #[error("cannot check --rt-priority/--cpu on a thread: {0}")]
    Probe(std::io::Error),
}

struct Service {
    notifier: Option<Notifier>,
    /// Half of `$WATCHDOG_USEC`, as sd_watchdog_enabled(3) recommends.
    ping_every: Option<Duration>,
    ready_file: Option<PathBuf>,
    rt: RtSettings,
    epoch: Instant,
    /// Nanoseconds since `epoch` of the last ping (or of init).
    last_ping_ns: AtomicU64,
    ready_sent: AtomicBool,
    send_failed: AtomicBool,
}

static SERVICE: OnceLock<Service> = OnceLock::new();

/// Reads `$NOTIFY_SOCKET`, `$WATCHDOG_USEC` and `$WATCHDOG_PID` and keeps `args` for the workers.
/// `--rt-priority`/`--cpu` are tried on a short-lived thread first, so that a refusal (no
/// CAP_SYS_NICE, an offline CPU) ends the program at startup, before anything says READY.
pub fn init(args: &ServiceArgs) -> Result<(), ServiceError> {
    let rt = args.rt();
    if !rt.is_empty() {
        std::thread::Builder::new()
            .name("rt-check".into())
            .spawn(move || rt.check_on_current_thread())
            .map_err(ServiceError::Probe)?
            .join()
            .map_err(|_| ServiceError::Probe(std::io::Error::other("the check thread panicked")))??;
    }
    let notifier = Notifier::from_env()?;
    let timeout = notify::watchdog_timeout(
        std::env::var("WATCHDOG_USEC").ok().as_deref(),
        std::env::var("WATCHDOG_PID").ok().as_deref(),
        std::process::id(),
    )?;
    let ping_every = match (&notifier, timeout) {
        (Some(_), Some(t)) => Some(t / 2),
        _ => None,
    };
    if let Some(n) = &notifier {
        log::info!(
            "service manager at {}{}",
            n.target(),
            ping_every.map(|p| format!(", watchdog ping every {p:?}")).unwrap_or_default()
        );
    }
    let service = Service {
        notifier,
        ping_every,
        ready_file: args.ready_file.clone(),
        rt: args.rt(),
        epoch: Instant::now(),
        last_ping_ns: AtomicU64::new(0),
        ready_sent: AtomicBool::new(false),
        send_failed: AtomicBool::new(false),
    };
    if let Some(f) = &service.ready_file {
        // A file left by an earlier run must not announce this one.
        remove_ready_file(f);
    }
    SERVICE.set(service).map_err(|_| ServiceError::AlreadyInitialised)
}

impl Service {
    fn send(&self, state: &str) {
        let Some(n) = &self.notifier else { return };
        if let Err(e) = n.send(state) {
            if e.kind() == std::io::ErrorKind::WouldBlock {
                // The manager is behind; the next ping or status supersedes this one.
                log::debug!("dropped a notification to {}: its queue is full", n.target());
                return;
            }
            // Once: a manager that went away must not flood the log from the worker loop.
            if !self.send_failed.swap(true, Relaxed) {
                log::warn!("cannot notify the service manager at {}: {e}", n.target());
            }
        }
    }

    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }
}

thread_local! {
    static TUNED: Cell<bool> = const { Cell::new(false) };
}

/// Applies `--rt-priority`/`--cpu` to the calling (worker) thread, once per thread.
pub fn worker_started() -> Result<(), RtError> {
    let Some(s) = SERVICE.get() else { return Ok(()) };
    if s.rt.is_empty() || TUNED.with(Cell::get) {
        return Ok(());
    }
    s.rt.apply_to_current_thread()?;
    TUNED.with(|t| t.set(true));
    Ok(())
}

/// The service can work: `READY=1` with `status`, and the readiness file. Only the first call
/// of the process counts.
pub fn ready(status: &str) {
    let Some(s) = SERVICE.get() else { return };
    if s.ready_sent.swap(true, Relaxed) {
        return;
    }
    s.last_ping_ns.store(s.now_ns(), Relaxed);
    // The file first: whoever sees READY=1 may look for it.
    if let Some(f) = &s.ready_file {
        if let Err(e) = write_ready_file(f) {
            log::error!("cannot write the readiness file {}: {e}", f.display());
        }
    }
    s.send(&format!("READY=1\nSTATUS={}\nMAINPID={}", one_line(status), std::process::id()));
}

/// A free-form status line (`systemctl status` shows it).
pub fn status(status: &str) {
    if let Some(s) = SERVICE.get() {
        s.send(&format!("STATUS={}", one_line(status)));
    }
}

/// Shutdown has begun: `STOPPING=1`, and the readiness file goes.
pub fn stopping() {
    let Some(s) = SERVICE.get() else { return };
    s.send("STOPPING=1");
    if let Some(f) = &s.ready_file {
        remove_ready_file(f);
    }
}

/// Called from the worker loop on every turn: pings the watchdog when half its timeout has
/// passed. Costs one clock read when a watchdog is configured, nothing otherwise.
pub fn watchdog_tick() {
    let Some(s) = SERVICE.get() else { return };
    let Some(every) = s.ping_every else { return };
    let now = s.now_ns();
    let last = s.last_ping_ns.load(Relaxed);
    if now.saturating_sub(last) >= every.as_nanos() as u64
        && s.last_ping_ns.compare_exchange(last, now, Relaxed, Relaxed).is_ok()
    {
        s.send("WATCHDOG=1");
    }
}

/// The watchdog ping period (half of `$WATCHDOG_USEC`), if the manager asked for pings: worker
/// loops must turn at least this often.
pub fn watchdog_period() -> Option<Duration> {
    SERVICE.get().and_then(|s| s.ping_every)
}

fn one_line(s: &str) -> String {
    s.replace('\n', " ")
}

/// Writes "<pid>\n" to a temporary file next to `path` and renames it: a reader sees no file or
/// the whole one.
fn write_ready_file(path: &Path) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, format!("{}\n", std::process::id()))?;
    std::fs::rename(&tmp, path)
}

fn remove_ready_file(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => log::warn!("cannot remove the readiness file {}: {e}", path.display()),
    }
}

//! Run control shared by every mode: the stop state (signals, `-t`, `-l`), bounded retries and
//! the controller (stats) thread.
//!
//! Seed 003's bugs this module is built against:
//! - signal-handler race: the seed installed its handler and only then published the context
//!   the handler writes to. Here the [`StopState`] is fully built before
//!   [`StopState::install_signal_handlers`] registers anything, and the handler only stores into
//!   an `AtomicBool` it owns through an `Arc`, so there is no moment at which it can see
//!   missing state.
//! - stats thread join: the seed joined a `pthread_t` that may never have been created. Here the
//!   [`Controller`] holds `Option<JoinHandle>`: `Some` exactly when the thread was spawned, and
//!   [`Controller::finish`] consumes it, so the thread is joined exactly once and only if it
//!   exists.
//! - unbounded retry: every retry here goes through [`bounded_retry`].

use crate::stats::{self, Counters, JsonRecord, RingCounters, Snapshot};
use anyhow::{Context, Result};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::SigId;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Why a run stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum StopReason {
    /// Still running.
    Running = 0,
    /// SIGINT or SIGTERM.
    Signal = 1,
    /// `-t` expired.
    TimeLimit = 2,
    /// `-l` reached.
    PacketLimit = 3,
    /// The worker failed.
    Error = 4,
}

impl StopReason {
    /// Name used in the final JSON record.
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Running => "running",
            StopReason::Signal => "signal",
            StopReason::TimeLimit => "time_limit",
            StopReason::PacketLimit => "packet_limit",
            StopReason::Error => "error",
        }
    }

    fn from_u8(v: u8) -> Self {
        match v {
            1 => StopReason::Signal,
            2 => StopReason::TimeLimit,
            3 => StopReason::PacketLimit,
            4 => StopReason::Error,
            _ => StopReason::Running,
        }
    }
}

/// The one stop flag every thread polls.
#[derive(Debug, Default)]
pub struct StopState {
    /// Set only by the signal handler (async-signal-safe: a plain atomic store).
    signalled: Arc<AtomicBool>,
    /// Set by the program itself (limits, errors); first reason wins.
    reason: AtomicU8,
}

/// Keeps the signal registrations; dropping it restores the previous dispositions so tests and
/// `diag` do not leave handlers behind.
#[derive(Debug)]
pub struct SignalGuard {
    ids: Vec<SigId>,
}

impl Drop for SignalGuard {
    fn drop(&mut self) {
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

impl StopState {
    /// A new, running state.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Route SIGINT and SIGTERM to this state. Call after the state exists (it does: `self`)
    /// and before any resource is acquired, so a signal during setup is seen by the first
    /// `should_stop()` check instead of killing the process with a slot reserved.
    ///
    /// A second signal while the first is still being handled exits at once with status 130:
    /// an operator pressing Ctrl-C twice wants out even if a clean shutdown hangs.
    pub fn install_signal_handlers(&self) -> Result<SignalGuard> {
        let mut ids = Vec::new();
        for sig in [SIGINT, SIGTERM] {
            // Order matters (signal-hook docs): the conditional exit must be registered first
            // so it sees the flag as it was *before* this signal set it.
            ids.push(
                signal_hook::flag::register_conditional_shutdown(sig, 130, Arc::clone(&self.signalled))
                    .with_context(|| format!("cannot install the handler for signal {sig}"))?,
            );
            ids.push(
                signal_hook::flag::register(sig, Arc::clone(&self.signalled))
                    .with_context(|| format!("cannot install the handler for signal {sig}"))?,
            );
        }
        Ok(SignalGuard { ids })
    }

    /// Ask every thread to stop for `reason` (the first reason given is kept).
    pub fn stop(&self, reason: StopReason) {
        let _ =
            self.reason.compare_exchange(StopReason::Running as u8, reason as u8, Ordering::AcqRel, Ordering::Acquire);
    }

    /// True once a signal arrived or `stop` was called.
    pub fn should_stop(&self) -> bool {
        self.signalled.load(Ordering::Acquire) || self.reason.load(Ordering::Acquire) != 0
    }

    /// Why the run stopped (Signal wins if a signal arrived before any other reason was set).
    pub fn reason(&self) -> StopReason {
        match StopReason::from_u8(self.reason.load(Ordering::Acquire)) {
            StopReason::Running if self.signalled.load(Ordering::Acquire) => StopReason::Signal,
            r => r,
        }
    }

    /// Sleep up to `d`, waking early (within 20 ms) when a stop is requested. Returns true if
    /// it is time to stop.
    pub fn sleep(&self, d: Duration) -> bool {
        let end = Instant::now() + d;
        loop {
            if self.should_stop() {
                return true;
            }
            let now = Instant::now();
            if now >= end {
                return false;
            }
            std::thread::sleep((end - now).min(Duration::from_millis(20)));
        }
    }
}

/// Run limits from `-t` and `-l`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Limits {
    pub duration: Option<Duration>,
    pub packets: Option<u64>,
}

impl Limits {
    /// Packets still allowed (`u64::MAX` without `-l`).
    pub fn remaining(&self, done: u64) -> u64 {
        self.packets.map_or(u64::MAX, |l| l.saturating_sub(done))
    }

    /// Record a stop in `stop` if a limit is reached; returns true if so.
    pub fn check(&self, stop: &StopState, started: Instant, done: u64) -> bool {
        if self.packets.is_some_and(|l| done >= l) {
            stop.stop(StopReason::PacketLimit);
            return true;
        }
        if self.duration.is_some_and(|d| started.elapsed() >= d) {
            stop.stop(StopReason::TimeLimit);
            return true;
        }
        false
    }
}

/// How often and how patiently to retry an operation that can transiently fail (ring full,
/// socket buffer full).
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in total, including the first (at least 1 is made).
    pub attempts: u32,
    /// Sleep between attempts.
    pub backoff: Duration,
}

impl RetryPolicy {
    /// The producers' policy for a full ring: a few short waits give a consumer time to drain a
    /// burst; after that the data is counted as dropped and the worker moves on, because a
    /// receiver that stalls on a full ring loses far more in the socket buffer.
    pub const RING_FULL: RetryPolicy = RetryPolicy { attempts: 4, backoff: Duration::from_micros(50) };
    /// The sender's policy for ENOBUFS/EAGAIN from sendmmsg.
    pub const SEND: RetryPolicy = RetryPolicy { attempts: 8, backoff: Duration::from_micros(100) };
}

/// Result of [`bounded_retry`] when every attempt came back empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GaveUp {
    /// Attempts made.
    pub attempts: u32,
}

/// Call `f` until it yields `Some`, at most `policy.attempts` times, or until `stop` says so.
/// Errors from `f` end the loop at once. Never loops forever: that is seed 003's bug 2.
pub fn bounded_retry<T, E>(
    policy: RetryPolicy,
    stop: &StopState,
    mut f: impl FnMut() -> Result<Option<T>, E>,
) -> Result<Result<T, GaveUp>, E> {
    let attempts = policy.attempts.max(1);
    for n in 1..=attempts {
        if let Some(v) = f()? {
            return Ok(Ok(v));
        }
        if n == attempts || stop.should_stop() {
            return Ok(Err(GaveUp { attempts: n }));
        }
        if !policy.backoff.is_zero() {
            std::thread::sleep(policy.backoff);
        }
    }
    Ok(Err(GaveUp { attempts }))
}

/// Where stats lines go and in which format.
#[derive(Debug, Clone)]
pub struct ReportConfig {
    /// "RX" or "TX" in the human line, "rx"/"tx" in JSON.
    pub label: &'static str,
    /// One JSON object per line instead of the human line.
    pub json: bool,
}

/// A source of ring counters for the stats line, called from the controller thread.
pub type RingStatsFn = Box<dyn FnMut() -> Option<RingCounters> + Send>;

/// Formats one stats record (interval or final).
#[allow(clippy::too_many_arguments)] // one call site per event kind; a struct would only rename them
pub fn format_record(
    cfg: &ReportConfig,
    event: &str,
    elapsed: Duration,
    now: &Snapshot,
    prev: &Snapshot,
    period: Duration,
    ring: Option<RingCounters>,
    reason: Option<StopReason>,
) -> String {
    if cfg.json {
        let mode = cfg.label.to_ascii_lowercase();
        JsonRecord {
            event,
            mode: &mode,
            elapsed_s: elapsed.as_secs_f64(),
            period_s: period.as_secs_f64(),
            counters: *now,
            rates: stats::rates(now, prev, period),
            ring,
            exit_reason: reason.map(StopReason::as_str),
        }
        .to_line()
    } else {
        let mut line = stats::human_line(cfg.label, now, prev, period, ring.as_ref());
        if let Some(r) = reason {
            line.push_str(&format!(" | final, stopped by {}", r.as_str()));
        }
        line
    }
}

/// Print one line to stdout; a closed stdout (e.g. `| head`) must not kill the worker.
pub fn emit(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// The controller thread: prints a stats line every interval until the run stops.
#[derive(Debug)]
pub struct Controller {
    /// `Some` exactly when the thread was spawned (see the module doc).
    handle: Option<JoinHandle<RingStatsFn>>,
    started: Instant,
}

impl Controller {
    /// Start the stats thread if `interval` is set; without an interval no thread exists.
    pub fn start(
        interval: Option<Duration>,
        cfg: ReportConfig,
        counters: Arc<Counters>,
        stop: Arc<StopState>,
        mut ring_stats: RingStatsFn,
    ) -> Result<(Self, Option<RingStatsFn>)> {
        let started = Instant::now();
        let Some(interval) = interval else {
            return Ok((Self { handle: None, started }, Some(ring_stats)));
        };
        let handle = std::thread::Builder::new()
            .name("rtp-stats".into())
            .spawn(move || {
                let mut prev = counters.snapshot();
                let mut last = Instant::now();
                while !stop.sleep(interval) {
                    let now = counters.snapshot();
                    let period = last.elapsed();
                    last = Instant::now();
                    let ring = ring_stats();
                    emit(&format_record(&cfg, "interval", started.elapsed(), &now, &prev, period, ring, None));
                    prev = now;
                }
                // Hand the ring-stats source back so the final line can use it.
                ring_stats
            })
            .context("cannot start the stats thread")?;
        Ok((Self { handle: Some(handle), started }, None))
    }

    /// True if a stats thread was spawned and not yet joined.
    pub fn has_thread(&self) -> bool {
        self.handle.is_some()
    }

    /// When the run started.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Join the stats thread if (and only if) it was started. The caller must have requested a
    /// stop first, or this waits for one. Returns the ring-stats source the thread owned.
    pub fn finish(mut self) -> Option<RingStatsFn> {
        let handle = self.handle.take()?;
        match handle.join() {
            Ok(f) => Some(f),
            Err(_) => {
                log::error!("the stats thread panicked; final ring counters unavailable");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_stop_reason_wins() {
        let s = StopState::new();
        assert!(!s.should_stop());
        s.stop(StopReason::PacketLimit);
        s.stop(StopReason::TimeLimit);
        assert!(s.should_stop());
        assert_eq!(s.reason(), StopReason::PacketLimit);
    }

    #[test]
    fn limits() {
        let s = StopState::new();
        let l = Limits { duration: None, packets: Some(10) };
        assert_eq!(l.remaining(4), 6);
        assert!(!l.check(&s, Instant::now(), 9));
        assert!(l.check(&s, Instant::now(), 10));
        assert_eq!(s.reason(), StopReason::PacketLimit);
        let s = StopState::new();
        let l = Limits { duration: Some(Duration::ZERO), packets: None };
        assert!(l.check(&s, Instant::now(), 0));
        assert_eq!(s.reason(), StopReason::TimeLimit);
    }

    #[test]
    fn sleep_wakes_on_stop() {
        let s = StopState::new();
        let s2 = Arc::clone(&s);
        let t = std::thread::spawn(move || {
            let t0 = Instant::now();
            assert!(s2.sleep(Duration::from_secs(30)));
            t0.elapsed()
        });
        std::thread::sleep(Duration::from_millis(50));
        s.stop(StopReason::Error);
        assert!(t.join().unwrap() < Duration::from_secs(2));
    }
}

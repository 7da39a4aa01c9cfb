//! Counters of the AF_XDP receive path and the periodic stats thread.
//!
//! The stats line keeps seed 003's shape:
//!
//! ```text
//! AF_XDP RX:     12,345,678 pkts (  1,234,567 pps)     9,876,543 Kbytes (   789 Mbits/s) period:2.0 | ...
//! ```
//!
//! Seed 003's bug 5 joined a `pthread_t` that might never have been created. Here the thread is
//! an `Option<JoinHandle>` that is `Some` exactly when `spawn` succeeded; [`StatsThread::finish`]
//! (or the drop of the guard, on an early return) stops and joins it exactly once.

use crate::steer::SteerCounters;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Counters the RX loop bumps and the stats thread reads (relaxed: independent, display only).
#[derive(Debug, Default)]
pub struct Counters {
    /// Frames read from the RX ring.
    pub packets: AtomicU64,
    /// UDP payload bytes of the valid ones (the RTP packets, as on the socket path).
    pub bytes: AtomicU64,
    /// Slots pushed into the ring.
    pub pushed: AtomicU64,
    /// Frames that were not valid Ethernet/IP/UDP/RTP v2 (dropped).
    pub malformed: AtomicU64,
    /// Valid packets dropped because the ring was full or stopped.
    pub ring_full: AtomicU64,
    /// Packets too large for a ring slot (dropped).
    pub too_big: AtomicU64,
    /// Frames that could not go back on the fill ring in a round (retried next round).
    pub fill_short: AtomicU64,
}

/// A copy of [`Counters`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    /// See [`Counters::packets`].
    pub packets: u64,
    /// See [`Counters::bytes`].
    pub bytes: u64,
    /// See [`Counters::pushed`].
    pub pushed: u64,
    /// See [`Counters::malformed`].
    pub malformed: u64,
    /// See [`Counters::ring_full`].
    pub ring_full: u64,
    /// See [`Counters::too_big`].
    pub too_big: u64,
    /// See [`Counters::fill_short`].
    pub fill_short: u64,
}

impl Counters {
    /// Adds `n` to `c`.
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    /// The current values.
    pub fn snapshot(&self) -> Snapshot {
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Snapshot {
            packets: l(&self.packets),
            bytes: l(&self.bytes),
            pushed: l(&self.pushed),
            malformed: l(&self.malformed),
            ring_full: l(&self.ring_full),
            too_big: l(&self.too_big),
            fill_short: l(&self.fill_short),
        }
    }
}

pub use rtpmgr_report::thousands;

/// The seed's stats line over one period, then our counters and the XDP program's.
pub fn line(now: &Snapshot, prev: &Snapshot, period: Duration, xdp: Option<&SteerCounters>) -> String {
    let traffic = rtpmgr_report::Traffic {
        packets: now.packets,
        bytes: now.bytes,
        period_packets: now.packets.saturating_sub(prev.packets),
        period_bytes: now.bytes.saturating_sub(prev.bytes),
    };
    let mut s = rtpmgr_report::seed_line("AF_XDP RX", &traffic, period);
    s.push_str(&format!(
        " | pushed:{} malformed:{} ring_full:{} too_big:{} fill_short:{}",
        now.pushed, now.malformed, now.ring_full, now.too_big, now.fill_short,
    ));
    if let Some(x) = xdp {
        s.push_str(&format!(
            " | xdp seen:{} redirected:{} passed:{} malformed:{}",
            x.seen, x.redirected, x.passed, x.malformed
        ));
    }
    s
}

/// Source of the XDP program's counters for the stats line (None: not available).
pub type XdpSource = Box<dyn FnMut() -> Option<SteerCounters> + Send>;

/// The periodic stats thread: `Some` handle exactly when it runs.
pub struct StatsThread {
    handle: Option<JoinHandle<u64>>,
    stop: Arc<AtomicBool>,
}

impl std::fmt::Debug for StatsThread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatsThread").field("running", &self.handle.is_some()).finish()
    }
}

impl StatsThread {
    /// Starts printing a line to `out` every `interval`; with `None`, starts nothing.
    ///
    /// # Errors
    /// The spawn error; then no thread exists and nothing will be joined.
    pub fn start<W: Write + Send + 'static>(
        interval: Option<Duration>,
        counters: Arc<Counters>,
        xdp: XdpSource,
        out: W,
    ) -> std::io::Result<StatsThread> {
        Self::start_with_stack(interval, counters, xdp, out, 256 << 10)
    }

    #[doc(hidden)]
    /// As [`StatsThread::start`], with the thread's stack size (tests force a spawn failure).
    pub fn start_with_stack<W: Write + Send + 'static>(
        interval: Option<Duration>,
        counters: Arc<Counters>,
        mut xdp: XdpSource,
        mut out: W,
        stack: usize,
    ) -> std::io::Result<StatsThread> {
        let stop = Arc::new(AtomicBool::new(false));
        let Some(interval) = interval else {
            return Ok(StatsThread { handle: None, stop });
        };
        let flag = Arc::clone(&stop);
        let handle = std::thread::Builder::new().name("xdp-stats".into()).stack_size(stack).spawn(move || {
            let mut lines = 0u64;
            let (mut prev, mut t_prev) = (counters.snapshot(), Instant::now());
            loop {
                // Sleep in short steps so a stop is seen within 20 ms.
                let end = t_prev + interval;
                while Instant::now() < end {
                    if flag.load(Ordering::Acquire) {
                        return lines;
                    }
                    std::thread::sleep(Duration::from_millis(20).min(end.saturating_duration_since(Instant::now())));
                }
                let (now, t_now) = (counters.snapshot(), Instant::now());
                let x = xdp();
                let _ = writeln!(out, "{}", line(&now, &prev, t_now - t_prev, x.as_ref()));
                let _ = out.flush();
                lines += 1;
                (prev, t_prev) = (now, t_now);
            }
        })?;
        Ok(StatsThread { handle: Some(handle), stop })
    }

    /// True while a thread exists.
    pub fn is_running(&self) -> bool {
        self.handle.is_some()
    }

    /// Stops and joins the thread if there is one; returns the lines it printed.
    pub fn finish(mut self) -> u64 {
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> u64 {
        self.stop.store(true, Ordering::Release);
        match self.handle.take() {
            Some(h) => h.join().unwrap_or_else(|_| {
                log::error!("the xdp-stats thread panicked");
                0
            }),
            None => 0,
        }
    }
}

impl Drop for StatsThread {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn line_has_the_seed_shape() {
        let prev = Snapshot { packets: 10_000_000, bytes: 9_000_000_000, ..Default::default() };
        let now = Snapshot { packets: 12_345_678, bytes: 9_876_543_210, ..Default::default() };
        let l = line(
            &now,
            &prev,
            Duration::from_secs(2),
            Some(&SteerCounters { seen: 5, redirected: 4, passed: 1, malformed: 0 }),
        );
        assert!(l.starts_with("AF_XDP RX:"), "{l}");
        assert!(l.contains("12,345,678 pkts ("), "{l}");
        assert!(l.contains("1,172,839 pps)"), "{l}");
        assert!(l.contains("9,876,543 Kbytes ("), "{l}");
        assert!(l.contains("3506 Mbits/s) period:2.0"), "{l}");
        assert!(l.contains("xdp seen:5 redirected:4 passed:1"), "{l}");
        assert!(!line(&now, &prev, Duration::ZERO, None).contains("NaN"));
    }

    /// Seed bug 5: the stats thread is joined exactly once and only if it was started — with no
    /// interval (none started), after a spawn failure (none exists), after `finish`, and when the
    /// guard is dropped on an early return.
    #[test]
    fn seed_bug5_stats_thread_started_and_joined_correctly() {
        let counters = Arc::new(Counters::default());
        let none: XdpSource = Box::new(|| None);

        // No interval: no thread, finish joins nothing.
        let t = StatsThread::start(None, Arc::clone(&counters), none, Sink::default()).unwrap();
        assert!(!t.is_running());
        assert_eq!(t.finish(), 0);

        // Spawn failure (impossible stack size): an error and no handle, not a garbage join.
        let r = StatsThread::start_with_stack(
            Some(Duration::from_millis(10)),
            Arc::clone(&counters),
            Box::new(|| None),
            Sink::default(),
            usize::MAX,
        );
        assert!(r.is_err());
        assert_eq!(Arc::strong_count(&counters), 1, "a failed spawn keeps no reference");

        // Started: prints lines, finish stops and joins it, its references are gone.
        let sink = Sink::default();
        let t =
            StatsThread::start(Some(Duration::from_millis(30)), Arc::clone(&counters), Box::new(|| None), sink.clone())
                .unwrap();
        assert!(t.is_running());
        Counters::add(&counters.packets, 7);
        std::thread::sleep(Duration::from_millis(120));
        let lines = t.finish();
        assert!(lines >= 2, "{lines}");
        assert_eq!(Arc::strong_count(&counters), 1, "the thread ended and dropped its Arc");
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count() as u64, lines);
        assert!(text.lines().all(|l| l.starts_with("AF_XDP RX:")), "{text}");

        // Dropped without finish (an early return): still stopped and joined.
        let t = StatsThread::start(
            Some(Duration::from_secs(3600)),
            Arc::clone(&counters),
            Box::new(|| None),
            Sink::default(),
        )
        .unwrap();
        let t0 = Instant::now();
        drop(t);
        assert!(t0.elapsed() < Duration::from_secs(1));
        assert_eq!(Arc::strong_count(&counters), 1);
    }
}

//! One test per bug of seed 003's "Known Issues and Bugs" that applies to rtp_app, proving it
//! does not exist here. They run in-process against private shm rings, made hostile where a
//! bug needs it (a corrupted descriptor table, a ring kept full), plus the process-level signal
//! test in tests/cli.rs.

use rtp_app::app::{run_rx, run_tx, RxRun, TxRun};
use rtp_app::control::{bounded_retry, Controller, Limits, ReportConfig, RetryPolicy, StopReason, StopState};
use rtp_app::net::TxSocket;
use rtp_app::rtp::{RtpGenerator, StreamParams};
use rtp_app::rx::RxConfig;
use rtp_app::stats::Counters;
use rtp_app::tx::TxConfig;
use rtpmgr::{Backend, Channel};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A private shm ring of 64 slots of 512 bytes, removed on drop.
struct TestRing(PathBuf);

impl TestRing {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("rtp_app-seed-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_file(&p);
        TestRing(p)
    }
    fn backend(&self) -> Backend {
        let cfg = rtpmgr::Config { ring_order: 6, slot_payload: 512, ..Default::default() };
        Backend::shm_at(&self.0).with_create_config(cfg)
    }
    /// A control handle of the test's own.
    fn channel(&self) -> Channel {
        Channel::open(&self.backend()).unwrap()
    }
    /// Pushes `n` RTP packets (no consumer): slots 0..n of a fresh ring.
    fn fill(&self, n: usize) {
        let ch = self.channel();
        ch.start().unwrap();
        let mut tx = ch.producer().unwrap();
        let mut g = RtpGenerator::new(stream(1000)).unwrap();
        for _ in 0..n {
            let mut s = tx.reserve().unwrap();
            let len = g.write_next(s.buf_mut()).unwrap();
            s.set_len(len).unwrap();
            tx.push(s).unwrap();
        }
    }
    /// Overwrites the length in slot `index`'s descriptor, as a hostile process with access to
    /// the ring file could.
    fn corrupt_len(&self, index: u32, len: u32) {
        let layout = *self.channel().map().unwrap().layout();
        let f = std::fs::OpenOptions::new().write(true).open(&self.0).unwrap();
        // The ring region is the file's tail: [control area][meta region ... payload region].
        let ring_base = f.metadata().unwrap().len() - layout.payload_offset - layout.payload_size as u64;
        let off = ring_base
            + layout.desc_offset as u64
            + u64::from(index) * u64::from(layout.desc_size)
            + std::mem::offset_of!(rtpmgr::SlotDesc, len) as u64;
        f.write_all_at(&len.to_ne_bytes(), off).unwrap();
    }
}

impl Drop for TestRing {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn stream(rate: u32) -> StreamParams {
    StreamParams {
        ssrc: 7,
        payload_type: 96,
        clock_rate: 90_000,
        rate,
        payload_len: 100,
        first_seq: 0,
        first_timestamp: 0,
    }
}

/// A free UDP port on 127.0.0.1 (bound and released; good enough on a test host).
fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Send `n` RTP packets to 127.0.0.1:port, paced so the receiver's socket buffer keeps up.
fn send_rtp(port: u16, n: usize) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut g = RtpGenerator::new(stream(1000)).unwrap();
        let mut tx =
            TxSocket::connect("127.0.0.1:0".parse().unwrap(), SocketAddr::from(([127, 0, 0, 1], port)), 1 << 20)
                .unwrap();
        for _ in 0..n {
            let mut b = vec![0u8; g.packet_len()];
            g.write_next(&mut b).unwrap();
            let _ = tx.send_batch(&[&b]);
            std::thread::sleep(Duration::from_micros(200));
        }
    })
}

fn rx_run(port: u16, limits: Limits) -> RxRun {
    RxRun {
        bind: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        membership: None,
        port,
        sockbuf: 1 << 20,
        drain: true,
        wakeup: None,
        worker: RxConfig { batch: 8, keep_malformed: false, limits },
        interval: None,
        json: true,
    }
}

/// Seed bug 3 (no validation of an index): every slot entry the ring hands back is checked
/// (by the ring library, the only way rtp_app touches a ring) before its memory is touched; a
/// corrupt one is counted and skipped, nothing panics or reads out of bounds, and the good
/// slots keep flowing.
#[test]
fn test_bug_index_validation() {
    let ring = TestRing::new("index");
    ring.fill(20);
    // Three READY slots now claim 9999 bytes in a 512-byte slot.
    for i in [2, 5, 9] {
        ring.corrupt_len(i, 9999);
    }
    let port = free_port();
    let stop = StopState::new();
    let sender = send_rtp(port, 200);
    let limits = Limits { duration: Some(Duration::from_millis(1500)), packets: None };
    let s = run_rx(&rx_run(port, limits), &ring.backend(), stop).expect("rx survives corrupt entries");
    sender.join().unwrap();
    assert_eq!(s.invalid_slots, 3, "the corrupt entries were seen and counted");
    assert!(s.counters.packets > 0 && s.counters.pushed > 0, "{:?}", s.counters);
    assert_eq!(s.counters.consumed, 17 + s.counters.pushed, "every good slot was drained: {:?}", s.counters);
    let ch = ring.channel();
    assert_eq!(ch.stats().unwrap().illegal_ops, 0);
    let st = ch.status().unwrap();
    assert_eq!((st.producing, st.consuming), (0, 0), "no slot left owned after the run: {st:?}");
}

/// Seed bug 4 (leak on init failure): when a later setup step fails, everything set up before
/// is released: no handle stays open, no slot stays reserved.
#[test]
fn test_bug_cleanup_after_failed_init() {
    let ring = TestRing::new("cleanup");
    let nothing_left = || {
        let st = ring.channel().status().unwrap();
        assert_eq!(st.openers, 1, "only the checking handle is open: {st:?}");
        assert_eq!((st.producing, st.consuming, st.mappings), (0, 0, 0), "{st:?}");
    };
    // The port is taken, so binding fails after the ring was opened and started.
    let blocker = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = blocker.local_addr().unwrap().port();
    let limits = Limits { duration: Some(Duration::from_secs(5)), packets: None };
    let err = run_rx(&rx_run(port, limits), &ring.backend(), StopState::new()).unwrap_err();
    assert!(format!("{err:#}").contains(&format!("cannot bind UDP 127.0.0.1:{port}")), "{err:#}");
    nothing_left();

    // TX: a payload that does not fit the slots fails in the worker, after the ring, socket and
    // stats thread were set up; all of it is released and the error names the fix.
    let cfg = TxRun {
        bind: "127.0.0.1:0".parse().unwrap(),
        dst: SocketAddr::from(([127, 0, 0, 1], free_port())),
        sockbuf: 1 << 20,
        multicast: None,
        stream: Some(StreamParams { payload_len: 4000, ..stream(1000) }),
        worker: TxConfig { batch: 8, rate: Some(1000), limits },
        interval: Some(Duration::from_millis(50)),
        json: true,
        xdp: None,
    };
    let err = run_tx(&cfg, &ring.backend(), StopState::new()).unwrap_err();
    assert!(format!("{err:#}").contains("does not fit the ring's 512-byte slots"), "{err:#}");
    nothing_left();

    // And a backend that cannot be opened at all leaves nothing behind either.
    let broken = Backend::shm_at("/nonexistent-rtp_app-dir/ring");
    let err = run_rx(&rx_run(free_port(), limits), &broken, StopState::new()).unwrap_err();
    assert!(format!("{err:#}").contains("nonexistent-rtp_app-dir"), "{err:#}");
}

/// Seed bug 6 (signal handler race): the stop state exists before the handler is installed,
/// and the handler only flips an atomic it owns; a signal right after installation is seen,
/// does not kill the process, and names the reason.
#[test]
fn test_bug_signal_race() {
    let stop = StopState::new();
    let guard = stop.install_signal_handlers().unwrap();
    assert!(!stop.should_stop());
    signal_hook::low_level::raise(signal_hook::consts::SIGTERM).unwrap();
    let t0 = Instant::now();
    while !stop.should_stop() && t0.elapsed() < Duration::from_secs(2) {
        std::thread::yield_now();
    }
    assert!(stop.should_stop(), "SIGTERM reached the stop state");
    assert_eq!(stop.reason(), StopReason::Signal);
    // A worker started after the signal returns at once instead of running.
    let ring = TestRing::new("signal");
    let s = run_rx(&rx_run(free_port(), Limits::default()), &ring.backend(), Arc::clone(&stop)).unwrap();
    assert_eq!(s.reason, StopReason::Signal);
    drop(guard);
}

/// Seed bug 5 (stats thread joined although never created): the controller joins its thread
/// exactly when it started one, and after `finish` the thread is gone.
#[test]
fn test_bug_stats_thread_join() {
    let counters = Arc::new(Counters::default());
    let cfg = ReportConfig { label: "RX", json: true };

    // No interval: no thread, nothing to join, the stats source is handed straight back.
    let stop = StopState::new();
    let (ctl, idle) =
        Controller::start(None, cfg.clone(), Arc::clone(&counters), Arc::clone(&stop), Box::new(|| None)).unwrap();
    assert!(!ctl.has_thread());
    assert!(idle.is_some());
    assert!(ctl.finish().is_none());
    assert_eq!(Arc::strong_count(&counters), 1);

    // With an interval: one thread, joined by finish (which returns its stats source), and its
    // references to the shared state are gone afterwards.
    let (ctl, idle) = Controller::start(
        Some(Duration::from_millis(10)),
        cfg,
        Arc::clone(&counters),
        Arc::clone(&stop),
        Box::new(|| None),
    )
    .unwrap();
    assert!(ctl.has_thread());
    assert!(idle.is_none());
    assert_eq!(Arc::strong_count(&counters), 2);
    std::thread::sleep(Duration::from_millis(30));
    stop.stop(StopReason::Signal);
    let t0 = Instant::now();
    assert!(ctl.finish().is_some(), "the thread's stats source comes back from the join");
    assert!(t0.elapsed() < Duration::from_secs(1), "stop wakes the thread promptly");
    assert_eq!(Arc::strong_count(&counters), 1, "the stats thread has exited");
}

/// Seed bug 2 (infinite retry loop): retries are bounded; a ring that stays full makes RX count
/// the datagrams as ring_full and keep draining the socket, and TX count them and move on.
#[test]
fn test_bug_bounded_retry() {
    // The primitive: an operation that never succeeds gives up after `attempts`.
    let stop = StopState::new();
    let mut calls = 0;
    let policy = RetryPolicy { attempts: 5, backoff: Duration::from_micros(10) };
    let r: Result<Result<(), _>, ()> = bounded_retry(policy, &stop, || {
        calls += 1;
        Ok(None)
    });
    assert_eq!(r.unwrap().unwrap_err().attempts, 5);
    assert_eq!(calls, 5);

    // RX on a ring that stays full (no consumer, reject-newest): the run still ends on time and
    // every datagram is accounted for as ring_full.
    let ring = TestRing::new("full");
    ring.fill(64);
    let port = free_port();
    let sender = send_rtp(port, 100);
    let limits = Limits { duration: Some(Duration::from_millis(1200)), packets: None };
    let t0 = Instant::now();
    let s = run_rx(&RxRun { drain: false, ..rx_run(port, limits) }, &ring.backend(), StopState::new()).unwrap();
    sender.join().unwrap();
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert_eq!(s.reason, StopReason::TimeLimit);
    assert_eq!(s.counters.pushed, 0);
    assert_eq!(s.counters.ring_full, s.counters.packets);
    assert!(s.counters.packets >= 50, "{:?}", s.counters);

    // TX on a full ring with -l 200: terminates, counting all 200 as ring_full.
    let cfg = TxRun {
        bind: "127.0.0.1:0".parse().unwrap(),
        dst: SocketAddr::from(([127, 0, 0, 1], free_port())),
        sockbuf: 1 << 20,
        multicast: None,
        stream: Some(stream(100_000)),
        worker: TxConfig {
            batch: 16,
            rate: Some(100_000),
            limits: Limits { duration: Some(Duration::from_secs(10)), packets: Some(200) },
        },
        interval: None,
        json: true,
        xdp: None,
    };
    // Every RESERVE that finds the ring full is counted in `overruns`.
    let overruns_before = ring.channel().stats().unwrap().overruns;
    let t0 = Instant::now();
    let s = run_tx(&cfg, &ring.backend(), StopState::new()).unwrap();
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert_eq!(s.reason, StopReason::PacketLimit);
    assert_eq!((s.counters.packets, s.counters.ring_full), (0, 200));
    let calls = ring.channel().stats().unwrap().overruns - overruns_before;
    assert!(calls > 0, "the full ring was tried");
    // At most `attempts` reserve calls per packet given up on, however the pacer batched them.
    assert!(calls <= 200 * u64::from(RetryPolicy::RING_FULL.attempts), "reserve called {calls} times");
}

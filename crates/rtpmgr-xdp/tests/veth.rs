//! The AF_XDP path end to end on a veth pair: one end in a network namespace sends, the other
//! end runs `run_rx` into a shm ring. Needs root (BPF, netns); skips loudly otherwise.
//!
//! Also the seed-bug tests that need real kernel objects: bug 4 (cleanup after a failure at every
//! setup step) and bug 6 (a signal while setup is under way).

use rtpmgr_testkit::netns::{ip, Veth, VethSpec};
use rtpmgr_xdp::frame::build;
use rtpmgr_xdp::session::Step;
use rtpmgr_xdp::steer::loaded_steer_program_ids;
use rtpmgr_xdp::{run_rx, run_rx_with_hook, CopyMode, Error, Limits, Queues, StopReason, WaitMode, XdpConfig, XdpMode};
use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One veth test at a time in this process: they share the addresses below.
static SERIAL: Mutex<()> = Mutex::new(());

const HOST_IP: &str = "10.203.77.1";
const PEER_IP: &str = "10.203.77.2";

/// The pair: one IPv4 subnet (the transmit test adds IPv6 addresses itself).
const VETH: VethSpec = VethSpec {
    host_prefix: "xr",
    peer_prefix: "xp",
    ns_prefix: "rtpmgr-xt",
    host_addrs: &["10.203.77.1/24"],
    peer_addrs: &["10.203.77.2/24"],
    needs_root_because: "the AF_XDP veth tests need root (BPF, network namespaces)",
    needs_ipv6: false,
};

/// What these tests ask of their link beyond the shared fixture: its XDP program, and a ping.
trait XdpLink {
    fn attached_program(&self) -> Option<u32>;
    fn xdp_attached(&self) -> bool;
    fn ping_from_peer(&self);
}

impl XdpLink for Veth {
    /// The ID of the XDP program attached to our end, if any: `ip -d link` prints "xdp"
    /// (native) or "xdpgeneric" (skb) and "prog/xdp id N" while one is attached.
    fn attached_program(&self) -> Option<u32> {
        let out = ip(&["-d", "link", "show", "dev", &self.host]).unwrap();
        let at = out.find("prog/xdp id ")?;
        out[at + "prog/xdp id ".len()..].split_whitespace().next()?.parse().ok()
    }

    fn xdp_attached(&self) -> bool {
        self.attached_program().is_some()
    }

    /// Pings the peer through our (XDP-attached) end. iputils-ping is installed by
    /// scripts/setup-host.sh; a missing ping is a broken setup and fails here with that name.
    fn ping_from_peer(&self) {
        let p = Command::new("ip")
            .args(["netns", "exec", &self.ns, "ping", "-c", "1", "-W", "3", HOST_IP])
            .output()
            .expect("run ip netns exec");
        assert!(
            p.status.success(),
            "ping through the XDP interface failed (is iputils-ping installed? scripts/setup-host.sh installs it): {}{}",
            String::from_utf8_lossy(&p.stdout),
            String::from_utf8_lossy(&p.stderr)
        );
    }
}

/// The BPF programs this test loaded and did not unload: steering programs that exist now and did
/// not before it started (the machine turn keeps other runs' programs out of that window).
struct ProgramsBefore(Vec<u32>);

impl ProgramsBefore {
    fn snapshot() -> ProgramsBefore {
        ProgramsBefore(loaded_steer_program_ids())
    }

    fn leaked(&self) -> Vec<u32> {
        loaded_steer_program_ids().into_iter().filter(|id| !self.0.contains(id)).collect()
    }
}

/// A receive run in a thread. Dropping it (also while a failed assertion unwinds) stops the run
/// and joins it, so its XDP program is detached and unloaded before the next test starts.
struct RxRun<T: Send + 'static> {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<T>>,
}

impl<T: Send + 'static> RxRun<T> {
    fn spawn(f: impl FnOnce(&AtomicBool) -> T + Send + 'static) -> RxRun<T> {
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = Arc::clone(&stop);
        RxRun { stop, handle: Some(std::thread::spawn(move || f(&s2))) }
    }

    fn join(mut self) -> T {
        self.handle.take().expect("joined once").join().expect("receive thread panicked")
    }
}

impl<T: Send + 'static> Drop for RxRun<T> {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            self.stop.store(true, Ordering::SeqCst);
            let _ = h.join();
        }
    }
}

fn shm_ring(tag: &str) -> (rtpmgr::Channel, std::path::PathBuf) {
    let path = std::env::temp_dir().join(format!("rtpmgr-xdp-test-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let cfg = rtpmgr::Config { ring_order: 13, slot_payload: 2048, drop_policy: rtpmgr::DropPolicy::RejectNewest };
    let ch = rtpmgr::Channel::open(&rtpmgr::Backend::shm_at(&path).with_create_config(cfg)).unwrap();
    (ch, path)
}

fn cfg(v: &Veth, mode: XdpMode) -> XdpConfig {
    XdpConfig {
        iface: v.host.clone(),
        ports: vec![5004, 5006],
        xdp_mode: mode,
        copy_mode: CopyMode::Copy,
        frames: 4096,
        ring_size: 1024,
        interval: None,
        ..XdpConfig::default()
    }
}

/// Sends `n` RTP packets (sequence 0..n) to port 5004 from the namespace, paced in bursts.
fn send_rtp(v: &Veth, n: u16) -> std::thread::JoinHandle<()> {
    v.in_ns(move || {
        let s = UdpSocket::bind("0.0.0.0:0").unwrap();
        let dst: SocketAddr = format!("{HOST_IP}:5004").parse().unwrap();
        for seq in 0..n {
            let pkt = build::rtp(seq, &[seq as u8; 160]);
            s.send_to(&pkt, dst).unwrap();
            if seq % 64 == 63 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    })
}

#[test]
fn receives_every_rtp_packet_while_other_traffic_reaches_the_kernel() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let Some(v) = Veth::new("veth::receives_every_rtp_packet_while_other_traffic_reaches_the_kernel", "a", &VETH)
    else {
        return;
    };
    let before = ProgramsBefore::snapshot();
    for mode in [XdpMode::Native, XdpMode::Skb] {
        let (ch, path) = shm_ring(&format!("a{mode:?}"));
        let n: u16 = 3000;
        // A kernel socket on another port must still get its datagram.
        let other = UdpSocket::bind(format!("{HOST_IP}:6000")).unwrap();
        other.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let c = cfg(&v, mode);
        let ch2 = ch.clone();
        let rx = RxRun::spawn(move |stop| {
            run_rx(&c, &ch2, Limits { packets: Some(u64::from(n)), duration: Some(Duration::from_secs(30)) }, stop)
        });
        // Wait until the program is attached (it is the last setup step).
        let t0 = Instant::now();
        while !v.xdp_attached() && t0.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let prog = v.attached_program().expect("program not attached within 10 s");
        v.ping_from_peer();
        v.in_ns(|| {
            let s = UdpSocket::bind("0.0.0.0:0").unwrap();
            s.send_to(b"not for xdp", format!("{HOST_IP}:6000")).unwrap();
        })
        .join()
        .unwrap();
        let mut buf = [0u8; 64];
        let (len, _) = other.recv_from(&mut buf).expect("UDP to port 6000 reached the kernel stack");
        assert_eq!(&buf[..len], b"not for xdp");
        send_rtp(&v, n).join().unwrap();
        let summary = rx.join().unwrap();
        assert_eq!(summary.reason, StopReason::PacketLimit, "{}", summary.line());
        assert_eq!(summary.counters.pushed, u64::from(n), "{}", summary.line());
        assert_eq!(summary.counters.malformed, 0);
        assert_eq!(summary.xdp_mode, Some(mode), "{}", summary.line());
        assert!(summary.line().contains(&format!("mode:{} bind:copy", mode.as_str())), "{}", summary.line());
        let x = summary.xdp.expect("xdp counters");
        assert!(x.redirected >= u64::from(n) && x.passed >= 2, "{x:?}");
        assert_eq!(x.seen, x.redirected + x.passed, "{x:?}");
        assert!(!v.xdp_attached(), "program still attached after the run");
        assert!(!loaded_steer_program_ids().contains(&prog), "our program {prog} is still loaded");
        assert_eq!(before.leaked(), Vec::<u32>::new(), "programs left loaded");

        // The ring holds exactly the packets, in order, with their payloads and arrival times.
        let mut cons = ch.consumer().unwrap();
        let mut seq = 0u16;
        loop {
            let slots = cons.pop_batch(256);
            let Ok(slots) = slots else { break };
            for s in slots {
                assert_eq!(s.data(), &build::rtp(seq, &[seq as u8; 160])[..]);
                assert_eq!(s.desc().rtp_seq, seq);
                assert!(s.arrival_ns() > 0);
                seq += 1;
            }
        }
        assert_eq!(seq, n);
        drop((cons, ch));
        let _ = std::fs::remove_file(path);
    }
}

#[test]
fn time_limit_stops_an_idle_run_in_poll_and_busy_poll_mode() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let Some(v) = Veth::new("veth::time_limit_stops_an_idle_run_in_poll_and_busy_poll_mode", "t", &VETH) else {
        return;
    };
    for wait in [WaitMode::Poll, WaitMode::BusyPoll] {
        let (ch, path) = shm_ring("t");
        let c = XdpConfig { wait, ..cfg(&v, XdpMode::Skb) };
        let t0 = Instant::now();
        let stop = AtomicBool::new(false);
        let s = run_rx(&c, &ch, Limits { packets: None, duration: Some(Duration::from_millis(400)) }, &stop).unwrap();
        assert_eq!(s.reason, StopReason::TimeLimit);
        assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
        assert!(!v.xdp_attached());
        drop(ch);
        let _ = std::fs::remove_file(path);
    }
}

/// Seed bug 4: whichever setup step fails, nothing is left behind: no XDP program on the
/// interface, no program or XSKMAP loaded, and a new run can attach again.
#[test]
fn seed_bug4_failed_init_at_every_step_cleans_up() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let Some(v) = Veth::new("veth::seed_bug4_failed_init_at_every_step_cleans_up", "c", &VETH) else { return };
    let before = ProgramsBefore::snapshot();
    let (ch, path) = shm_ring("c");
    let steps = [
        Step::Validate,
        Step::LoadProgram,
        Step::Ports,
        Step::Umem,
        Step::Socket,
        Step::Bind,
        Step::FillRing,
        Step::XskMapEntry,
        Step::Attach,
        Step::Ready,
    ];
    for fail_at in steps {
        let stop = AtomicBool::new(false);
        let mut hook = |s: Step| if s == fail_at { Err(Error::Injected(s)) } else { Ok(()) };
        let r = run_rx_with_hook(&cfg(&v, XdpMode::Skb), &ch, Limits::default(), &stop, &mut hook);
        assert!(matches!(r, Err(Error::Injected(s)) if s == fail_at), "{fail_at:?}: {r:?}");
        assert!(!v.xdp_attached(), "XDP left attached after a failure at {fail_at:?}");
        assert_eq!(before.leaked(), Vec::<u32>::new(), "program left loaded after {fail_at:?}");
    }
    // A queue the interface does not have fails in Validate, before anything exists.
    let bad = XdpConfig { queues: Queues::List(vec![0, 7]), ..cfg(&v, XdpMode::Skb) };
    let r = run_rx(&bad, &ch, Limits::default(), &AtomicBool::new(false));
    assert!(matches!(r, Err(Error::QueueOutOfRange { queue: 7, count: 1, .. })), "{r:?}");
    // Jumbo frames beyond a page are refused with the reason.
    let jumbo = XdpConfig { frame_size: 8192, ..cfg(&v, XdpMode::Skb) };
    let e = run_rx(&jumbo, &ch, Limits::default(), &AtomicBool::new(false)).unwrap_err().to_string();
    assert!(e.contains("larger than a page"), "{e}");
    // And afterwards a full run still attaches (nothing stale blocks it).
    let s = run_rx(
        &cfg(&v, XdpMode::Skb),
        &ch,
        Limits { packets: None, duration: Some(Duration::from_millis(200)) },
        &AtomicBool::new(false),
    )
    .unwrap();
    assert_eq!(s.reason, StopReason::TimeLimit);
    assert!(!v.xdp_attached());
    drop(ch);
    let _ = std::fs::remove_file(path);
}

/// Seed bug 6: a signal that arrives while setup is under way (here: raised from inside the UMEM
/// step) neither kills the process nor leaves anything behind; the run ends as "signal". The
/// handler is registered before anything that can be interrupted, exactly as rtp_app does it
/// with SIGINT/SIGTERM (SIGUSR1 here, so the test harness's own signals are untouched).
#[test]
fn seed_bug6_signal_before_init_complete() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let Some(v) = Veth::new("veth::seed_bug6_signal_before_init_complete", "s", &VETH) else { return };
    let before = ProgramsBefore::snapshot();
    let (ch, path) = shm_ring("s");
    let stop = Arc::new(AtomicBool::new(false));
    let id = signal_hook::flag::register(libc::SIGUSR1, Arc::clone(&stop)).unwrap();
    let mut steps_seen = Vec::new();
    let mut hook = |s: Step| {
        steps_seen.push(s);
        if s == Step::Umem {
            // SAFETY: raise has no preconditions; the handler above is installed.
            unsafe { libc::raise(libc::SIGUSR1) };
        }
        Ok(())
    };
    let s = run_rx_with_hook(&cfg(&v, XdpMode::Skb), &ch, Limits::default(), &*stop, &mut hook).unwrap();
    assert_eq!(s.reason, StopReason::Signal);
    assert_eq!(steps_seen.last(), Some(&Step::Umem), "setup went on after the signal: {steps_seen:?}");
    assert!(!v.xdp_attached());
    assert_eq!(before.leaked(), Vec::<u32>::new(), "program left loaded");
    // A signal before the call: nothing is even validated.
    let s = run_rx(&cfg(&v, XdpMode::Skb), &ch, Limits::default(), &*stop).unwrap();
    assert_eq!((s.reason, s.counters.packets), (StopReason::Signal, 0));
    signal_hook::low_level::unregister(id);
    drop(ch);
    let _ = std::fs::remove_file(path);
}

/// The transmit path end to end, and seed bug 1 on the real rings: RTP sent with `XdpSender`
/// from the host end reaches a UDP socket in the namespace complete and in order (so the kernel
/// accepted our IP and UDP checksums), and at the end every frame the sender submitted came
/// back on the completion ring: nothing outstanding, nothing bogus. IPv4 finds the peer's MAC
/// through ARP; IPv6 takes it as given (--dst-mac).
#[test]
fn xdp_tx_delivers_every_packet_and_completes_every_frame() {
    use rtpmgr_xdp::tx::{TxConfig, XdpSender};
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let Some(v) = Veth::new("veth::xdp_tx_delivers_every_packet_and_completes_every_frame", "x", &VETH) else { return };
    let peer_name = v.peer.clone();
    ip(&["addr", "add", "fd00:77::1/64", "dev", &v.host, "nodad"]).unwrap();
    ip(&["-n", &v.ns, "addr", "add", "fd00:77::2/64", "dev", &peer_name, "nodad"]).unwrap();
    let peer_mac = ip(&["-n", &v.ns, "-o", "link", "show", &peer_name]).unwrap();
    let peer_mac = peer_mac.split("link/ether ").nth(1).and_then(|s| s.split_whitespace().next()).unwrap().to_string();
    let peer_mac = rtpmgr_xdp::iface::parse_mac(&peer_mac).unwrap();
    for (dst, dst_mac) in [(format!("{PEER_IP}:5004"), None), ("[fd00:77::2]:5004".to_string(), Some(peer_mac))] {
        let dst: SocketAddr = dst.parse().unwrap();
        let n: u16 = 2000;
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let rx = v.in_ns(move || {
            let s = UdpSocket::bind(dst).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            ready_tx.send(()).unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 2048];
            while got.len() < n as usize {
                match s.recv_from(&mut buf) {
                    Ok((len, from)) => got.push((buf[..len].to_vec(), from)),
                    Err(_) => break,
                }
            }
            got
        });
        ready_rx.recv().unwrap();
        let cfg = TxConfig {
            copy_mode: CopyMode::Copy,
            frames: 256,
            ring_size: 128,
            dst_mac,
            ..TxConfig::new(v.host.clone(), dst)
        };
        let mut tx = XdpSender::open(&cfg).unwrap_or_else(|e| panic!("{dst}: {e}"));
        let pkts: Vec<Vec<u8>> = (0..n).map(|seq| build::rtp(seq, &[seq as u8; 160])).collect();
        let refs: Vec<&[u8]> = pkts.iter().map(|p| p.as_slice()).collect();
        let (mut off, t0) = (0, Instant::now());
        // 256 frames for 2000 packets: frames must come back through completions to go on.
        // Paced (bursts of 32, then 2 ms) so that the receiving socket is not what drops.
        while off < refs.len() && t0.elapsed() < Duration::from_secs(20) {
            let end = (off + 32).min(refs.len());
            while off < end && t0.elapsed() < Duration::from_secs(20) {
                let k = tx.send(&refs[off..end]);
                off += k;
                if k == 0 {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        assert_eq!(off, refs.len(), "{dst}: sender stuck at {off}");
        let report = tx.finish(Duration::from_secs(2));
        assert_eq!(
            (report.submitted, report.completed, report.outstanding, report.bogus_completions, report.too_big),
            (u64::from(n), u64::from(n), 0, 0, 0),
            "{dst}: {}",
            report.line()
        );
        assert_eq!(report.tx_invalid_descs, Some(0), "{}", report.line());
        let got = rx.join().unwrap();
        assert_eq!(got.len(), n as usize, "{dst}: {} of {n} datagrams arrived", got.len());
        for (seq, (data, from)) in got.iter().enumerate() {
            assert_eq!(data, &pkts[seq], "{dst}: datagram {seq}");
            assert_eq!(from.port(), 5004, "source port = --port");
        }
        drop(tx);
    }
}

/// A test that fails half-way (here: a deliberate panic while the receive run has its program
/// attached) leaves nothing behind for the next one: the guards stop the run, which detaches and
/// unloads its program, then remove the link and the namespace, while the panic unwinds.
#[test]
fn a_failing_test_leaves_no_program_namespace_or_link() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        rtpmgr_testkit::skip("veth::a_failing_test_leaves_no_program_namespace_or_link", "needs root");
        return;
    }
    let before = ProgramsBefore::snapshot();
    let names = Arc::new(Mutex::new(None));
    let names2 = Arc::clone(&names);
    let panicked = std::panic::catch_unwind(move || {
        let v = Veth::new("veth::a_failing_test_leaves_no_program_namespace_or_link", "p", &VETH).expect("root");
        *names2.lock().unwrap() = Some((v.host.clone(), v.ns.clone()));
        let (ch, _path) = shm_ring("p");
        let c = cfg(&v, XdpMode::Skb);
        let _rx = RxRun::spawn(move |stop| run_rx(&c, &ch, Limits::default(), stop));
        let t0 = Instant::now();
        while !v.xdp_attached() && t0.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(v.xdp_attached(), "program not attached within 10 s");
        panic!("deliberate failure while the program is attached");
    });
    assert!(panicked.is_err(), "the inner test was meant to fail");
    let (host, ns) = names.lock().unwrap().clone().expect("the inner test set up its link");
    assert_eq!(before.leaked(), Vec::<u32>::new(), "program left loaded by a failed test");
    assert!(ip(&["link", "show", "dev", &host]).is_err(), "link {host} left behind");
    assert!(!ip(&["netns", "list"]).unwrap().contains(&ns), "namespace {ns} left behind");
}

/// Waits up to 10 s for an XDP program on `v`'s host end.
fn wait_attached(v: &Veth) {
    let t0 = Instant::now();
    while !v.xdp_attached() && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(v.xdp_attached(), "program not attached within 10 s");
}

/// Auto mode: native XDP when the driver takes it; when it refuses (here veth itself, because
/// the peer's MTU is above what native XDP on veth can handle: ERANGE), skb mode, and every RTP
/// packet still arrives. An explicit `native` is an error then, with nothing left attached.
#[test]
fn auto_mode_falls_back_to_skb_when_native_is_refused() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let Some(v) = Veth::new("veth::auto_mode_falls_back_to_skb_when_native_is_refused", "f", &VETH) else {
        return;
    };
    let before = ProgramsBefore::snapshot();
    let (ch, path) = shm_ring("f");
    let idle = Limits { packets: None, duration: Some(Duration::from_millis(200)) };

    // The driver takes native mode: auto reports native.
    let s = run_rx(&cfg(&v, XdpMode::Auto), &ch, idle, &AtomicBool::new(false)).unwrap();
    assert_eq!(s.xdp_mode, Some(XdpMode::Native), "{}", s.line());

    ip(&["-n", &v.ns, "link", "set", "dev", &v.peer, "mtu", "9000"]).unwrap();
    let e = run_rx(&cfg(&v, XdpMode::Native), &ch, idle, &AtomicBool::new(false)).unwrap_err();
    assert!(matches!(e, Error::Attach { mode: XdpMode::Native, .. }), "{e}");
    let msg = e.to_string();
    assert!(msg.contains("native mode") && msg.contains("allows no fallback"), "{msg}");
    assert!(!v.xdp_attached());

    let n: u16 = 500;
    let c = cfg(&v, XdpMode::Auto);
    let ch2 = ch.clone();
    let rx = RxRun::spawn(move |stop| {
        run_rx(&c, &ch2, Limits { packets: Some(u64::from(n)), duration: Some(Duration::from_secs(30)) }, stop)
    });
    wait_attached(&v);
    let link = ip(&["-d", "link", "show", "dev", &v.host]).unwrap();
    assert!(link.contains("xdpgeneric"), "not attached in skb mode: {link}");
    send_rtp(&v, n).join().unwrap();
    let s = rx.join().unwrap();
    assert_eq!(s.xdp_mode, Some(XdpMode::Skb), "{}", s.line());
    assert!(s.line().contains("mode:skb"), "{}", s.line());
    assert_eq!((s.reason, s.counters.pushed), (StopReason::PacketLimit, u64::from(n)), "{}", s.line());
    assert!(!v.xdp_attached());
    assert_eq!(before.leaked(), Vec::<u32>::new(), "programs left loaded");
    drop(ch);
    let _ = std::fs::remove_file(path);
}

/// Several queues from one process: a 4-queue veth, `Queues::All`, and an AF_XDP sender on each
/// of the peer's 4 TX queues (veth hands TX queue N of the peer to RX queue N, so every queue
/// gets exactly its sender's packets). The sender finds its interface in sysfs, which shows the
/// test's namespace: the peer is moved back here (AF_XDP needs no addresses on it). Each queue's socket must get all of its
/// queue's packets, the program's per-queue counters must agree, and the total is the sum.
#[test]
fn several_queues_are_served_by_one_process() {
    use rtpmgr_xdp::tx::{TxConfig, XdpSender};
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let Some(v) = Veth::with_queues("veth::several_queues_are_served_by_one_process", "q", &VETH, 4) else {
        return;
    };
    let before = ProgramsBefore::snapshot();
    let (ch, path) = shm_ring("q");
    let per_queue: u16 = 400;
    let total = 4 * u64::from(per_queue);
    let c = XdpConfig { queues: Queues::All, ..cfg(&v, XdpMode::Auto) };
    let ch2 = ch.clone();
    let rx = RxRun::spawn(move |stop| {
        run_rx(&c, &ch2, Limits { packets: Some(total), duration: Some(Duration::from_secs(30)) }, stop)
    });
    ip(&["-n", &v.ns, "link", "set", "dev", &v.peer, "netns", "1"]).unwrap();
    ip(&["link", "set", "dev", &v.peer, "up"]).unwrap();
    wait_attached(&v);
    let host_mac = rtpmgr_xdp::iface::mac(&v.host).unwrap();
    let peer = v.peer.clone();
    std::thread::spawn(move || {
        for q in 0..4u16 {
            let dst: SocketAddr = format!("{HOST_IP}:5004").parse().unwrap();
            let cfg = TxConfig {
                queue: u32::from(q),
                copy_mode: CopyMode::Copy,
                frames: 256,
                ring_size: 128,
                src_ip: Some(PEER_IP.parse().unwrap()),
                src_port: 7000 + q,
                dst_mac: Some(host_mac),
                ..TxConfig::new(peer.clone(), dst)
            };
            let mut tx = XdpSender::open(&cfg).unwrap_or_else(|e| panic!("sender on queue {q}: {e}"));
            let pkts: Vec<Vec<u8>> = (0..per_queue).map(|i| build::rtp(q * 1000 + i, &[q as u8; 160])).collect();
            let refs: Vec<&[u8]> = pkts.iter().map(|p| p.as_slice()).collect();
            let (mut off, t0) = (0, Instant::now());
            while off < refs.len() && t0.elapsed() < Duration::from_secs(20) {
                let end = (off + 32).min(refs.len());
                let k = tx.send(&refs[off..end]);
                off += k;
                std::thread::sleep(Duration::from_millis(if k == 0 { 1 } else { 3 }));
            }
            let r = tx.finish(Duration::from_secs(2));
            assert_eq!((r.submitted, r.outstanding), (u64::from(per_queue), 0), "queue {q}: {}", r.line());
        }
    })
    .join()
    .unwrap();
    let s = rx.join().unwrap();
    let line = s.line();
    assert_eq!((s.reason, s.counters.pushed), (StopReason::PacketLimit, total), "{line}");
    assert_eq!(s.queues.iter().map(|q| q.queue).collect::<Vec<_>>(), vec![0, 1, 2, 3], "{line}");
    for q in &s.queues {
        assert_eq!(q.packets, u64::from(per_queue), "queue {}: {line}", q.queue);
        let x = q.xdp.expect("per-queue xdp counters");
        assert_eq!(x.redirected, u64::from(per_queue), "queue {}: {line}", q.queue);
        assert!(line.contains(&format!("AF_XDP RX queue {}: pkts:{per_queue} ", q.queue)), "{line}");
    }
    assert_eq!(s.queues.iter().map(|q| q.packets).sum::<u64>(), total);
    assert_eq!(s.xdp.map(|x| x.redirected), Some(total), "{line}");
    // Every packet in the ring once: per queue, the sequence numbers it was sent.
    let mut cons = ch.consumer().unwrap();
    let mut seen = std::collections::BTreeSet::new();
    while let Ok(slots) = cons.pop_batch(256) {
        for sl in slots {
            assert!(seen.insert(sl.desc().rtp_seq), "sequence {} twice", sl.desc().rtp_seq);
        }
    }
    let want: std::collections::BTreeSet<u16> =
        (0..4u16).flat_map(|q| (0..per_queue).map(move |i| q * 1000 + i)).collect();
    assert_eq!(seen, want);
    drop((cons, ch));
    assert!(!v.xdp_attached());
    assert_eq!(before.leaked(), Vec::<u32>::new(), "programs left loaded");
    let _ = std::fs::remove_file(path);
}

/// Restores vm.nr_hugepages when dropped (also on a failed assertion).
struct HugePages(Option<String>);

impl HugePages {
    const PATH: &'static str = "/proc/sys/vm/nr_hugepages";
    fn meminfo(field: &str) -> u64 {
        std::fs::read_to_string("/proc/meminfo")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':')?.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }
    fn set(n: u64) -> HugePages {
        let old = std::fs::read_to_string(Self::PATH).ok();
        let _ = std::fs::write(Self::PATH, n.to_string());
        HugePages(old)
    }
}

impl Drop for HugePages {
    fn drop(&mut self) {
        if let Some(old) = self.0.take() {
            let _ = std::fs::write(Self::PATH, old.trim());
        }
    }
}

/// --hugepages: with no free 2 MiB page the run fails before anything is attached, saying how
/// many pages it needs and the sysctl; with them reserved it runs (and gives them back).
#[test]
fn hugepages_umem_needs_reserved_pages() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let Some(v) = Veth::new("veth::hugepages_umem_needs_reserved_pages", "h", &VETH) else { return };
    if !std::path::Path::new(HugePages::PATH).exists() || HugePages::meminfo("Hugepagesize") != 2048 {
        rtpmgr_testkit::skip("veth::hugepages_umem_needs_reserved_pages", "no 2 MiB huge pages in this kernel");
        return;
    }
    let (ch, path) = shm_ring("h");
    let c = XdpConfig { hugepages: true, ..cfg(&v, XdpMode::Skb) }; // 4096 frames: 8 MiB, 4 pages
    let idle = Limits { packets: None, duration: Some(Duration::from_millis(200)) };
    let free = HugePages::meminfo("HugePages_Free");
    if free < 4 {
        let e = run_rx(&c, &ch, idle, &AtomicBool::new(false)).unwrap_err().to_string();
        assert!(e.contains("it needs 4") && e.contains("sysctl vm.nr_hugepages="), "{e}");
        assert!(!v.xdp_attached());
    } else {
        rtpmgr_testkit::skip(
            "veth::hugepages_umem_needs_reserved_pages (error half)",
            &format!("{free} huge pages are free on this host"),
        );
    }
    let total = HugePages::meminfo("HugePages_Total");
    let _restore = HugePages::set(total + 4);
    if HugePages::meminfo("HugePages_Free") < 4 {
        rtpmgr_testkit::skip(
            "veth::hugepages_umem_needs_reserved_pages (working half)",
            "the kernel could not reserve 4 huge pages (memory fragmented)",
        );
        return;
    }
    let s = run_rx(&c, &ch, idle, &AtomicBool::new(false)).unwrap();
    assert_eq!(s.reason, StopReason::TimeLimit);
    assert!(!v.xdp_attached());
    drop(ch);
    let _ = std::fs::remove_file(path);
}

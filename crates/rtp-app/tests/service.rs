//! rtp_app under a fake service manager: the test binds the $NOTIFY_SOCKET datagram socket
//! and checks READY (only once the socket is bound), the watchdog pings (from the worker:
//! SIGSTOP silences them, SIGCONT brings them back), STOPPING on SIGTERM, the readiness file,
//! and --rt-priority/--cpu on the worker thread only. Shm backend: no module needed.

mod common;

use common::*;
use rtpmgr_testkit::notify::{assert_watchdog_follows_the_process, pings, signal, threads, FakeManager};
use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// WATCHDOG_USEC of the tests: pings are due every 100 ms.
const WATCHDOG_USEC: &str = "200000";

/// Killed and reaped if the test fails before it exits.
fn spawn_managed(args: &[&str], mgr: &FakeManager, watchdog_pid: Option<&str>) -> KillOnDrop {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .env("RUST_LOG", "info")
        .env("NOTIFY_SOCKET", mgr.env())
        .env("WATCHDOG_USEC", WATCHDOG_USEC)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(p) = watchdog_pid {
        cmd.env("WATCHDOG_PID", p);
    }
    cmd.spawn().expect("rtp_app starts").into()
}

/// A minimal RTP v2 packet.
fn rtp_packet(seq: u16) -> Vec<u8> {
    let mut p = vec![0u8; 12 + 20];
    p[0] = 0x80;
    p[1] = 96;
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[8..12].copy_from_slice(&0x1234_5678u32.to_be_bytes());
    p
}

fn ready_file(tag: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("rtpapp-test-{tag}-{}.ready", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

#[test]
fn rx_notifies_ready_after_bind_pings_from_the_worker_and_stops() {
    let mgr = FakeManager::new("rx");
    let ring = ShmRing::new("notify-rx");
    let ready = ready_file("rx");
    let port = free_port();
    let port_s = port.to_string();
    let ready_arg = ready.to_str().unwrap();
    let args = ["--mode", "rx", "--bind", "127.0.0.1", "--port", &port_s, "--backend", "shm", "--shm-name", &ring.0];
    let child =
        spawn_managed(&[&args[..], &["--json", "--interval", "0", "--ready-file", ready_arg]].concat(), &mgr, None);

    let (msg, before) = mgr.wait_for("READY=1", Duration::from_secs(10));
    assert!(before.iter().all(|m| !m.contains("WATCHDOG=1")), "a ping before READY: {before:?}");
    assert!(msg.lines().any(|l| l.starts_with("STATUS=receiving on udp 127.0.0.1:")), "{msg}");
    assert!(msg.lines().any(|l| l == format!("MAINPID={}", child.id())), "{msg}");
    // READY means bound: what is sent right now is received (it waits in the socket buffer).
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    for seq in 0..10u16 {
        tx.send_to(&rtp_packet(seq), ("127.0.0.1", port)).unwrap();
    }
    // The readiness file is written with READY, holding the pid.
    let pid_in_file = std::fs::read_to_string(&ready).expect("readiness file written once ready");
    assert_eq!(pid_in_file.trim(), child.id().to_string());

    // Pings every WATCHDOG_USEC/2 = 100 ms while it runs, none while it is stopped.
    assert_watchdog_follows_the_process(&mgr, &child);

    signal(&child, "TERM");
    mgr.wait_for("STOPPING=1", Duration::from_secs(5));
    let out = wait_bounded(child, Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let f = final_record(&out.stdout);
    assert_eq!(f["pushed"].as_u64(), Some(10), "{f}");
    assert!(!ready.exists(), "the readiness file outlived the process");
}

#[test]
fn tx_notifies_ready_and_pings() {
    let mgr = FakeManager::new("tx");
    let ring = ShmRing::new("notify-tx");
    let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = sink.local_addr().unwrap().port().to_string();
    let child = spawn_managed(
        &[
            "--mode", "tx", "--dst", "127.0.0.1", "--port", &port, "--rate", "200", "--backend", "shm", "--shm-name",
            &ring.0, "--json", "--interval", "0",
        ],
        &mgr,
        None,
    );
    let (msg, _) = mgr.wait_for("READY=1", Duration::from_secs(10));
    assert!(msg.lines().any(|l| l.starts_with("STATUS=sending from ")), "{msg}");
    // Loose on purpose (a loaded CI machine): pings come, about 20 are due in 2 s.
    let p = pings(&mgr.collect(Duration::from_secs(2)));
    assert!(p.len() >= 3, "{} pings in 2 s", p.len());
    signal(&child, "TERM");
    mgr.wait_for("STOPPING=1", Duration::from_secs(5));
    let out = wait_bounded(child, Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}

/// $WATCHDOG_PID names another process (e.g. a supervising shell): READY, but no pings.
#[test]
fn a_watchdog_for_another_pid_is_not_pinged() {
    let mgr = FakeManager::new("otherpid");
    let ring = ShmRing::new("notify-otherpid");
    let port = free_port().to_string();
    let child = spawn_managed(
        &["--mode", "rx", "--bind", "127.0.0.1", "--port", &port, "--backend", "shm", "--shm-name", &ring.0],
        &mgr,
        Some("1"),
    );
    mgr.wait_for("READY=1", Duration::from_secs(10));
    let after = mgr.collect(Duration::from_millis(400));
    assert!(pings(&after).is_empty(), "{after:?}");
    signal(&child, "TERM");
    assert_eq!(wait_bounded(child, Duration::from_secs(10)).status.code(), Some(0));
}

/// --rt-priority and --cpu make the rx worker SCHED_FIFO on CPU 0; the other threads keep
/// SCHED_OTHER and their mask. Without CAP_SYS_NICE: the error names the fix, and no READY.
#[test]
fn rt_priority_and_cpu_apply_to_the_worker_thread_only() {
    let mgr = FakeManager::new("rt");
    let ring = ShmRing::new("notify-rt");
    let port = free_port().to_string();
    let mut child = spawn_managed(
        &[
            "--mode", "rx", "--bind", "127.0.0.1", "--port", &port, "--backend", "shm", "--shm-name", &ring.0,
            "--rt-priority", "10", "--cpu", "0", "--interval", "1",
        ],
        &mgr,
        None,
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut ready = false;
    while Instant::now() < deadline && !ready {
        if let Some(m) = mgr.recv(Duration::from_millis(100)) {
            ready = m.lines().any(|l| l == "READY=1");
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
    }
    if !ready {
        // Refused: only acceptable without the privilege, with the message that says so.
        let out = wait_bounded(child, Duration::from_secs(10));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "{err}");
        assert!(err.contains("needs CAP_SYS_NICE or an RLIMIT_RTPRIO >= 10"), "{err}");
        rtpmgr_testkit::skip(
            "service::rt_priority_and_cpu_apply_to_the_worker_thread_only",
            "SCHED_FIFO was refused (no CAP_SYS_NICE, RLIMIT_RTPRIO 0): checked the error instead",
        );
        return;
    }
    let t = threads(child.id());
    let worker = t.iter().find(|x| x.0 == "rtp-rx").unwrap_or_else(|| panic!("no rtp-rx thread: {t:?}"));
    assert_eq!((worker.1, worker.2, worker.3.as_str()), (libc::SCHED_FIFO as u32, 10, "0"), "{t:?}");
    for other in t.iter().filter(|x| x.0 != "rtp-rx") {
        assert_eq!(other.1, libc::SCHED_OTHER as u32, "{other:?} is not the worker: {t:?}");
    }
    signal(&child, "TERM");
    assert_eq!(wait_bounded(child, Duration::from_secs(10)).status.code(), Some(0));
}

/// Settings that cannot apply end rtp_app at startup with the fix named, before READY: an
/// unprivileged user's SCHED_FIFO (setpriv drops root), a CPU that is not online.
#[test]
fn refused_rt_settings_fail_at_startup_before_ready() {
    let ring = ShmRing::new("notify-refused");
    let port = free_port().to_string();
    let base = ["--mode", "rx", "--bind", "127.0.0.1", "--port", &port, "--backend", "shm", "--shm-name", &ring.0];

    let mgr = FakeManager::new("badcpu");
    let child = spawn_managed(&[&base[..], &["--cpu", "1000"]].concat(), &mgr, None);
    let out = wait_bounded(child, Duration::from_secs(10));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot pin thread rt-check to CPUs 1000: none of them is online"), "{err}");
    assert!(mgr.recv(Duration::from_millis(100)).is_none(), "a notification from a failed start");

    if !std::path::Path::new("/usr/bin/setpriv").exists() || is_not_root() || rtprio_limit() >= 20 {
        rtpmgr_testkit::skip(
            "service::refused_rt_settings_fail_at_startup_before_ready",
            "the unprivileged half needs root, setpriv (util-linux) to drop to nobody, and RLIMIT_RTPRIO < 20",
        );
        return;
    }
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"])
        .arg(bin())
        .args(base)
        .args(["--rt-priority", "20"])
        .env("RTPMGR_SHM_DIR", std::env::temp_dir())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("SCHED_FIFO priority 20 for thread rt-check needs CAP_SYS_NICE or an RLIMIT_RTPRIO >= 20")
            && err.contains("LimitRTPRIO=20"),
        "{err}"
    );
}

fn is_not_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| !s.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(true)
}

/// The soft RLIMIT_RTPRIO this process passes on ("Max realtime priority" of /proc/self/limits).
fn rtprio_limit() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let line = limits.lines().find(|l| l.starts_with("Max realtime priority")).unwrap_or("");
    match line.split_whitespace().nth(3) {
        Some("unlimited") => u64::MAX,
        Some(n) => n.parse().unwrap_or(u64::MAX),
        None => u64::MAX,
    }
}

/// Unprivileged (no CAP_NET_ADMIN, as the services run), a --sockbuf above net.core.rmem_max is
/// capped by the kernel: rtp_app says so, naming the sysctl, and runs on.
#[test]
fn a_capped_receive_buffer_is_a_warning_naming_the_sysctl() {
    if !std::path::Path::new("/usr/bin/setpriv").exists() || is_not_root() {
        rtpmgr_testkit::skip(
            "service::a_capped_receive_buffer_is_a_warning_naming_the_sysctl",
            "needs root and setpriv (util-linux) to run rtp_app as nobody",
        );
        return;
    }
    let rmem_max: u64 = std::fs::read_to_string("/proc/sys/net/core/rmem_max").unwrap().trim().parse().unwrap();
    let asked = (rmem_max + (1 << 20)).to_string();
    // A ring directory of the unprivileged user's own.
    let dir = std::env::temp_dir().join(format!("rtpapp-test-rcvbuf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
    let port = free_port().to_string();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"])
        .arg(bin())
        .args(["--mode", "rx", "--path", "socket", "--bind", "127.0.0.1", "--port", &port, "--backend", "shm"])
        .args(["--shm-name", "rcvbuf", "--sockbuf", &asked, "-t", "0.3"])
        .env("RTPMGR_SHM_DIR", &dir)
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains(&format!("socket receive buffer: asked for {asked} bytes, got {rmem_max}"))
            && err.contains(&format!("net.core.rmem_max (now {rmem_max})")),
        "{err}"
    );
}

//! The binary as an operator uses it: help, usage errors, backend choice, ctl, diag, signals,
//! tx --source ring. Everything runs on the shm backend (no module needed).

mod common;
use common::*;
use std::path::Path;
use std::time::Duration;

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn help_is_a_manual_with_examples() {
    let o = run(&["--help"]);
    assert!(o.status.success());
    let h = stdout(&o);
    for needle in [
        "Examples:", "--mode rx", "--backend shm", "rtp_app diag", "Exit status", "period:2.0", "--drop-policy",
        "--ssm-source",
    ] {
        assert!(h.contains(needle), "--help lacks {needle}");
    }
    let short = stdout(&run(&["-h"]));
    assert!(short.lines().count() < h.lines().count());
}

#[test]
fn usage_errors_exit_2_and_quote_the_value() {
    let o = run(&["--mode", "rx", "--port", "5004", "-t", "soon"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("'soon' is not a number of seconds"), "{}", stderr(&o));
    let o = run(&["--mode", "ctl"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--stats"), "{}", stderr(&o));
    let o = run(&["--mode", "tx", "--port", "5004"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--dst"));
}

#[test]
fn multicast_errors_name_the_flag_the_group_and_the_interface() {
    // Usage: not a multicast group (exit 2, before anything is opened).
    let o = run(&["--mode", "rx", "--group", "10.1.2.3", "--port", "5004", "--backend", "shm"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--group 10.1.2.3 is not a multicast address"), "{}", stderr(&o));
    // Runtime: the interface does not exist (exit 1, the ring opened first is released).
    let ring = ShmRing::new("mc-noif");
    let port = free_port().to_string();
    let o = run(&[
        "--mode", "rx", "--group", "232.1.1.1", "--ssm-source", "10.0.0.1", "--iface", "rtpnoif0", "--port", &port,
        "--backend", "shm", "--shm-name", &ring.0, "-t", "1",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.contains("cannot join 232.1.1.1 from 10.0.0.1 on rtpnoif0"), "{e}");
    assert!(e.contains("no network interface named 'rtpnoif0'"), "{e}");
    let o = run(&[
        "--mode", "tx", "--dst", "239.1.1.1", "--port", &port, "--iface", "rtpnoif0", "--backend", "shm", "--shm-name",
        &ring.0, "-l", "1",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("sending to 239.1.1.1 on rtpnoif0"), "{}", stderr(&o));
}

#[test]
fn without_module_the_default_backend_says_what_to_do() {
    if Path::new("/dev/rtp_mgr0").exists() {
        rtpmgr_testkit::skip(
            "cli::without_module_the_default_backend_says_what_to_do",
            "/dev/rtp_mgr0 exists: the default backend is the module here",
        );
        return;
    }
    let o = run(&["--mode", "rx", "--port", &free_port().to_string(), "-t", "1"]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("/dev/rtp_mgr0 does not exist") && e.contains("modprobe rtp_mgr") && e.contains("--backend shm"),
        "{e}"
    );
}

#[test]
fn ctl_actions_on_a_shm_ring() {
    let r = ShmRing::new("ctl");
    let ctl = |extra: &[&str]| {
        let mut a = vec!["--mode", "ctl", "--backend", "shm", "--shm-name", &r.0];
        a.extend_from_slice(extra);
        run(&a)
    };
    let o = ctl(&["--configure", "--ring-order", "6", "--slot-payload", "512", "--drop-policy", "drop-oldest"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("slot_count 64"), "{}", stdout(&o));
    assert!(ctl(&["--start"]).status.success());
    let o = ctl(&["--status", "--json"]);
    let v = &json_lines(&o.stdout)[0];
    assert_eq!(v["status"]["state"], 1);
    assert_eq!(v["status"]["slot_payload"], 512);
    assert_eq!(v["status"]["drop_policy"], 1);
    // RESET is refused while running, with the fix in the message.
    let o = ctl(&["--reset"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("--stop first"), "{}", stderr(&o));
    assert!(ctl(&["--stop"]).status.success());
    assert!(ctl(&["--reset"]).status.success());
    let o = ctl(&["--stats", "--json"]);
    let v = &json_lines(&o.stdout)[0];
    assert_eq!(v["action"], "stats");
    assert_eq!(v["stats"]["pushed_packets"], 0);
    let o = ctl(&["--stats"]);
    assert!(stdout(&o).lines().any(|l| l == "illegal_ops 0"), "{}", stdout(&o));
}

#[test]
fn diag_on_shm_passes_every_check() {
    let o = run(&["diag", "--backend", "shm"]);
    let out = stdout(&o);
    assert!(o.status.success(), "{out}{}", stderr(&o));
    for name in ["shm", "abi", "config", "stats", "ring-selftest", "udp-loopback"] {
        assert!(out.lines().any(|l| l.starts_with(&format!("PASS {name}: "))), "no PASS {name} in\n{out}");
    }
    assert!(out.contains("diag: 6 passed, 0 failed"));
    let o = run(&["diag", "--backend", "shm", "--json"]);
    let lines = json_lines(&o.stdout);
    assert!(lines.iter().filter(|v| v.get("check").is_some() || v.get("name").is_some()).all(|v| v["pass"] == true));
    assert_eq!(lines.last().unwrap()["summary"]["failed"], 0);
}

#[test]
fn diag_without_module_fails_with_the_failing_line() {
    if Path::new("/sys/module/rtp_mgr").exists() {
        rtpmgr_testkit::skip(
            "cli::diag_without_module_fails_with_the_failing_line",
            "the rtp_mgr module is loaded here",
        );
        return;
    }
    let o = run(&["diag"]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(out.lines().any(|l| l.starts_with("FAIL module: rtp_mgr is not loaded")), "{out}");
}

/// Process-level half of seed bug 6: SIGTERM at any moment of a run, from right after exec to
/// full operation, ends rtp_app without a crash or hang and leaves no slot owned.
#[test]
fn signal_at_any_time_shuts_down_cleanly() {
    let r = ShmRing::new("sig");
    let port = free_port().to_string();
    let args = [
        "--mode", "rx", "--bind", "127.0.0.1", "--port", &port, "--backend", "shm", "--shm-name", &r.0, "--json",
        "--interval", "0.05",
    ];
    for delay_ms in [0u64, 1, 3, 10, 30] {
        let child = std::process::Command::new(bin())
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let out = wait_bounded(child, Duration::from_secs(10));
        // Before the handlers exist the default action ends the process (nothing acquired yet);
        // after, it exits 0 with a final record. Never a crash or another exit status.
        match out.status.code() {
            Some(0) => assert_eq!(final_record(&out.stdout)["exit_reason"], "signal"),
            None => {}
            Some(c) => panic!("exit status {c} after SIGTERM at {delay_ms} ms"),
        }
    }
    // Fully running, then SIGTERM: clean exit with final stats.
    let (child, _err) = spawn_ready(&args, "rx: receiving on");
    std::thread::sleep(Duration::from_millis(200));
    let _ = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let out = wait_bounded(child, Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(0));
    let f = final_record(&out.stdout);
    assert_eq!(f["exit_reason"], "signal");
    assert!(json_lines(&out.stdout).iter().any(|v| v["event"] == "interval"), "the stats thread ran");
    let o = run(&["--mode", "ctl", "--backend", "shm", "--shm-name", &r.0, "--status", "--json"]);
    let st = &json_lines(&o.stdout)[0]["status"];
    assert_eq!((st["producing"].as_u64(), st["consuming"].as_u64()), (Some(0), Some(0)), "{st}");
}

/// `--source ring`: what rx pushed into a ring is sent on by tx, all of it.
#[test]
fn tx_source_ring_forwards_what_rx_pushed() {
    let r = ShmRing::new("fwd");
    let gen_ring = ShmRing::new("fwd-gen");
    let in_port = free_port().to_string();
    let sink = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sink.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let out_port = sink.local_addr().unwrap().port().to_string();
    let (rx, _e) = spawn_ready(
        &[
            "--mode", "rx", "--bind", "127.0.0.1", "--port", &in_port, "--backend", "shm", "--shm-name", &r.0, "-l",
            "500", "--json", "--interval", "0",
        ],
        "rx: receiving on",
    );
    let o = run(&[
        "--mode", "tx", "--dst", "127.0.0.1", "--port", &in_port, "--rate", "5000", "--payload", "200", "--backend",
        "shm", "--shm-name", &gen_ring.0, "-l", "500", "--json", "--interval", "0",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rxo = wait_bounded(rx, Duration::from_secs(10));
    assert_eq!(final_record(&rxo.stdout)["pushed"], 500);

    let fwd = std::thread::spawn({
        let name = r.0.clone();
        let port = out_port.clone();
        move || {
            run(&[
                "--mode", "tx", "--source", "ring", "--dst", "127.0.0.1", "--port", &port, "--backend", "shm",
                "--shm-name", &name, "-l", "500", "-t", "20", "--rate", "5000", "--json", "--interval", "0",
            ])
        }
    });
    let mut got = 0;
    let mut buf = [0u8; 2048];
    while got < 500 {
        match sink.recv(&mut buf) {
            Ok(n) => {
                assert_eq!(n, 212);
                got += 1;
            }
            Err(_) => break,
        }
    }
    let o = fwd.join().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let f = final_record(&o.stdout);
    assert_eq!(f["packets"], 500);
    assert_eq!(f["exit_reason"], "packet_limit");
    assert_eq!(got, 500);
}

//! `rtp_app --mode ctl --stats --format openmetrics` on shm rings: the exposition passes
//! `promtool check metrics` (Debian package `prometheus`), names every channel, and its numbers
//! are the ones `--stats --json` reports.
//!
//! Without promtool the test fails with the install command, unless RTPMGR_SKIP_PROMTOOL=1.

mod common;
use common::*;
use std::io::Write;
use std::process::{Command, Stdio};

/// `rtp_app args...` with the shm rings in `dir`.
fn run_in(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(bin()).args(args).env("RTPMGR_SHM_DIR", dir).output().expect("rtp_app runs")
}

/// The sample `name{channel="ch"}` of an exposition.
fn sample(text: &str, name: &str, ch: u32) -> Option<f64> {
    let prefix = format!("{name}{{channel=\"{ch}\"}} ");
    text.lines().find_map(|l| l.strip_prefix(&prefix)).map(|v| v.parse().unwrap())
}

#[test]
fn openmetrics_of_every_shm_channel_is_valid_and_matches_the_json_stats() {
    if !rtpmgr_testkit::require_tool(
        "openmetrics::openmetrics_of_every_shm_channel_is_valid_and_matches_the_json_stats",
        "promtool",
        &["--version"],
        "RTPMGR_SKIP_PROMTOOL",
        "apt-get install -y --no-install-recommends prometheus",
    ) {
        return;
    }
    let dir = std::env::temp_dir().join(format!("rtp_app-openmetrics-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // Channel 2 carries 40 packets; channel 5 exists but stays idle.
    let sink = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = sink.local_addr().unwrap().port().to_string();
    let tx = run_in(
        &dir,
        &[
            "--mode", "tx", "--backend", "shm", "--channel", "2", "--dst", "127.0.0.1", "--port", &port, "--rate",
            "2000", "-l", "40", "--interval", "0",
        ],
    );
    assert!(tx.status.success(), "tx: {}", String::from_utf8_lossy(&tx.stderr));
    let idle = run_in(&dir, &["--mode", "ctl", "--backend", "shm", "--channel", "5", "--start"]);
    assert!(idle.status.success(), "ctl --start: {}", String::from_utf8_lossy(&idle.stderr));

    let out =
        run_in(&dir, &["--mode", "ctl", "--backend", "shm", "--stats", "--all-channels", "--format", "openmetrics"]);
    assert!(out.status.success(), "openmetrics: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.ends_with("# EOF\n"), "no # EOF at the end:\n{text}");

    let mut check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    check.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let verdict = check.wait_with_output().unwrap();
    assert!(
        verdict.status.success(),
        "promtool check metrics failed ({}): {}{}\n{text}",
        verdict.status,
        String::from_utf8_lossy(&verdict.stdout),
        String::from_utf8_lossy(&verdict.stderr)
    );

    // The numbers are the channel's, per channel.
    let stats = run_in(&dir, &["--mode", "ctl", "--backend", "shm", "--channel", "2", "--stats", "--json"]);
    let v = &json_lines(&stats.stdout)[0]["stats"];
    assert_eq!(v["pushed_packets"], 40, "{v}");
    assert_eq!(sample(&text, "rtpmgr_pushed_packets_total", 2), Some(40.0));
    assert_eq!(sample(&text, "rtpmgr_pushed_bytes_total", 2), v["pushed_bytes"].as_f64());
    assert_eq!(sample(&text, "rtpmgr_popped_packets_total", 2), v["popped_packets"].as_f64());
    assert_eq!(sample(&text, "rtpmgr_pushed_packets_total", 5), Some(0.0));
    assert_eq!(sample(&text, "rtpmgr_running", 5), Some(1.0));
    assert!(sample(&text, "rtpmgr_ring_slots", 2).is_some_and(|n| n >= 2.0));

    // One channel without --all-channels; --format json is --json.
    let one =
        run_in(&dir, &["--mode", "ctl", "--backend", "shm", "--channel", "5", "--stats", "--format", "openmetrics"]);
    let one = String::from_utf8(one.stdout).unwrap();
    assert!(sample(&one, "rtpmgr_pushed_packets_total", 5).is_some() && !one.contains("channel=\"2\""), "{one}");
    let j = run_in(&dir, &["--mode", "ctl", "--backend", "shm", "--channel", "2", "--stats", "--format", "json"]);
    assert_eq!(json_lines(&j.stdout)[0]["stats"]["pushed_packets"], 40);

    // Bad combinations are usage errors that name the flags.
    for (args, want) in [
        (&["--mode", "ctl", "--backend", "shm", "--status", "--format", "openmetrics"][..], "only go with --stats"),
        (&["--mode", "ctl", "--backend", "shm", "--stats", "--format", "openmetrics", "--json"][..], "--json"),
        (&["--mode", "rx", "--port", "5004", "--format", "json"][..], "only go with --mode ctl"),
    ] {
        let o = run_in(&dir, args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&o.stderr).contains(want), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

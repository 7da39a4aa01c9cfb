//! `rtp_app monitor` on a host: without the rtp_mgr module its generic netlink family does not
//! exist, and monitor says so (exit 1) instead of waiting forever. The events themselves are
//! checked in the guest (test/device/monitor-check).

mod common;
use common::*;

#[test]
fn monitor_without_the_module_says_to_load_it() {
    if std::path::Path::new("/sys/module/rtp_mgr").exists() {
        rtpmgr_testkit::skip(
            "monitor::monitor_without_the_module_says_to_load_it",
            "the rtp_mgr module is loaded on this host, so its family exists",
        );
        return;
    }
    let o = run(&["monitor", "-t", "5"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("family rtp_mgr is not registered") && err.contains("modprobe rtp_mgr"), "{err}");
}

#[test]
fn monitor_usage_errors_name_the_flag() {
    for (args, want) in [
        (&["monitor", "--backend", "shm"][..], "drop --backend shm"),
        (&["monitor", "--count", "0"][..], "--count"),
        (&["monitor", "--mode", "ctl"][..], "--mode"),
    ] {
        let o = run(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&o.stderr).contains(want), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    }
    let help = run(&["--help"]);
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("rtp_app monitor --channel 3 --json --count 10 -t 30"), "examples name monitor");
    assert!(text.contains("--format openmetrics"), "examples name the metrics");
}

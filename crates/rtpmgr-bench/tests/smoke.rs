//! A short run of every comparison on the shm backend: keeps the benchmark compiling and working.
//! It asserts that each path moved packets and that the report is well formed, never a timing.

use std::process::Command;

#[test]
fn quick_run_of_every_comparison_reports_every_path() {
    let dir = std::env::temp_dir().join(format!("rtpmgr-bench-smoke-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rtpmgr-bench"))
        .args(["all", "--quick", "--backend", "shm", "--json"])
        .env("RTPMGR_SHM_DIR", &dir)
        .output()
        .expect("run rtpmgr-bench");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success(), "rtpmgr-bench failed: {}", String::from_utf8_lossy(&out.stderr));
    let rep: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    for section in ["handoff", "sweep", "syscalls", "rtrb"] {
        let rows = rep[section].as_array().unwrap_or_else(|| panic!("no {section} section"));
        assert!(!rows.is_empty(), "{section} is empty");
        for r in rows {
            assert!(r["pps"]["median"].as_f64().unwrap_or(0.0) > 0.0, "{section}: a path moved no packets: {r}");
        }
    }
    let paths: Vec<&str> = rep["handoff"].as_array().unwrap().iter().map(|r| r["path"].as_str().unwrap()).collect();
    for p in ["ring-batch", "ring-slot", "udp", "pipe"] {
        assert!(paths.contains(&p), "handoff lacks {p}: {paths:?}");
    }
    // The batched ring makes fewer calls per packet than the per-slot ABI (a count, not a time),
    // at the higher fixed rate, where each 1 ms burst carries ~20 packets.
    let calls = |path: &str| {
        rep["syscalls"].as_array().unwrap().iter().find(|r| r["path"] == path && r["rate"] == 20_000).unwrap()
            ["calls_per_pkt"]["median"]
            .as_f64()
            .unwrap()
    };
    assert!(
        calls("ring-batch") < calls("ring-slot"),
        "batched {} vs per-slot {}",
        calls("ring-batch"),
        calls("ring-slot")
    );
}

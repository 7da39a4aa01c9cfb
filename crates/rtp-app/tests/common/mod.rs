//! Helpers shared by the process-level tests: run the built `rtp_app`, parse its JSON lines,
//! private shm rings that are removed afterwards, free ports.
#![allow(dead_code)] // each test file uses a different subset

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub use rtpmgr_testkit::process::KillOnDrop;

/// The binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rtp_app"))
}

/// `rtp_app args...`, waited for.
pub fn run(args: &[&str]) -> Output {
    Command::new(bin()).args(args).env("RUST_LOG", "info").output().expect("rtp_app runs")
}

/// A shm ring name unique to this test process and `tag`, deleted on drop.
pub struct ShmRing(pub String);

impl ShmRing {
    pub fn new(tag: &str) -> Self {
        let r = ShmRing(format!("rtpapp-test-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_file(r.path());
        r
    }
    pub fn path(&self) -> PathBuf {
        let dir = std::env::var_os("RTPMGR_SHM_DIR").map(PathBuf::from).unwrap_or_else(|| "/dev/shm".into());
        dir.join(&self.0)
    }
}

impl Drop for ShmRing {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.path());
    }
}

/// A UDP port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// JSON objects of stdout, one per line (non-JSON lines are a test failure).
pub fn json_lines(out: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(out)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// The `"event":"final"` record.
pub fn final_record(out: &[u8]) -> Value {
    json_lines(out)
        .into_iter()
        .find(|v| v["event"] == "final")
        .unwrap_or_else(|| panic!("no final record in: {}", String::from_utf8_lossy(out)))
}

/// Spawn `rtp_app` and wait (bounded) until its stderr shows `marker` (e.g. the rx
/// "receiving on" line), so the caller knows setup is done. Stderr keeps draining in a thread.
pub fn spawn_ready(args: &[&str], marker: &str) -> (KillOnDrop, std::sync::mpsc::Receiver<String>) {
    let mut child: KillOnDrop = Command::new(bin())
        .args(args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("rtp_app starts")
        .into();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(l) => {
                let hit = l.contains(marker);
                seen.push(l);
                if hit {
                    return (child, rx);
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(_) => break,
        }
    }
    drop(child);
    panic!("rtp_app never printed '{marker}'; stderr: {seen:#?}");
}

/// Wait for a child with a bound; kill and reap it and fail if it does not exit.
pub fn wait_bounded(child: impl Into<KillOnDrop>, limit: Duration) -> Output {
    let mut child = child.into();
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.into_inner().wait_with_output().unwrap();
        }
        if Instant::now() > deadline {
            // The guard kills and reaps it as the panic unwinds.
            panic!("rtp_app did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

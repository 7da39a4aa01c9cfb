//! TX: the guest sends RTP out of its NIC to the host peer, which counts what arrives.
//!
//! - `socket`: `rtp_app --mode tx` (generates into the ring and sends from slot memory with
//!   sendmmsg, in its own process).
//! - `kernel`: the module sends READY slots itself through an attached, connected UDP socket
//!   (ATTACH TX, ABI 2.1). `rtp_app --mode tx --path kernel` when rtp_app has it; otherwise this
//!   tool attaches the socket itself and produces into the ring (the same kernel work).
//!
//! CPU per packet = guest-wide busy time over the step / datagrams the host peer received.

use crate::wire::{guest_busy_us, Peer, GUEST_IP, PEER_IP};
use anyhow::{bail, Context, Result};
use rtpmgr::{Backend, Channel};
use serde::Serialize;
use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// UDP port on the host peer the TX paths send to.
const TX_PORT: u16 = 6000;

#[derive(Debug, Clone, Serialize)]
pub struct TxPoint {
    pub path: String,
    pub rate: u64,
    pub received: u64,
    pub cpu_us_per_pkt: f64,
    pub cpu_load: f64,
}

/// Where the kernel TX supervisor's stderr goes (read back when it exits early): in
/// [`crate::e2e::RTP_APP_LOG_DIR`], where rtp_app's AppArmor profile lets it write.
const TX_LOG: &str = "/tmp/rtpmgr/rtpmgr-bench-tx-supervisor.log";

fn tx_log_file() -> Result<std::fs::File> {
    std::fs::create_dir_all(crate::e2e::RTP_APP_LOG_DIR)
        .with_context(|| format!("create {}", crate::e2e::RTP_APP_LOG_DIR))?;
    std::fs::File::create(TX_LOG).with_context(|| format!("create {TX_LOG}"))
}

/// Runs `rtp_app --mode tx` generating at `rate` for `secs` (socket path: sendmmsg from slots).
fn rtp_app_tx(rtp_app: &str, channel: u32, rate: u64, secs: f64, kernel: bool) -> Result<()> {
    let mut cmd = Command::new(rtp_app);
    cmd.args(["--mode", "tx", "--dst", &PEER_IP.to_string(), "--port", &TX_PORT.to_string()]);
    cmd.args(["--rate", &rate.to_string(), "--payload", "148", "--channel", &channel.to_string()]);
    cmd.args(["-t", &format!("{secs}"), "--interval", "3600"]);
    cmd.args(["--path", if kernel { "kernel" } else { "socket" }]);
    let out = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).output().with_context(|| format!("run {rtp_app}"))?;
    if !out.status.success() {
        bail!(
            "{rtp_app} --mode tx{} exited with {}: {}",
            if kernel { " --path kernel" } else { "" },
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The kernel TX path: the module sends READY slots through an attached, connected socket, and
/// this tool produces RTP into the ring at `rate` for `secs` (1 ms ticks, as a paced sender does).
/// The socket is attached by `rtp_app --mode tx --path kernel --source ring` (the product's thin
/// supervisor) when this rtp_app has it, else by this tool. Returns who attached it.
fn kernel_tx(rtp_app: &str, channel: u32, rate: u64, secs: f64) -> Result<&'static str> {
    let backend = Backend::kernel(channel);
    let ch = Channel::open(&backend)?;
    if ch.stop().is_ok() {
        let _ = ch.reset();
    }
    let mut sup = Command::new(rtp_app)
        .args(["--mode", "tx", "--path", "kernel", "--source", "ring", "--dst", &PEER_IP.to_string()])
        .args(["--port", &TX_PORT.to_string(), "--channel", &channel.to_string(), "--interval", "3600"])
        .stdout(Stdio::null())
        // A file, not a pipe nobody reads while it runs: a chatty child must never block.
        .stderr(tx_log_file()?)
        .spawn()
        .with_context(|| format!("start {rtp_app}"))?;
    std::thread::sleep(Duration::from_millis(500));
    // Held while producing: the socket and the handle that attached it (when this tool did).
    let mut own: Option<(UdpSocket, Channel)> = None;
    // Reaped here means exited: its pid may be reused, so it is never signalled after that.
    let status = match sup.try_wait() {
        Ok(s) => s,
        Err(e) => {
            let _ = sup.kill();
            let _ = sup.wait();
            return Err(e).context("wait for rtp_app --mode tx --path kernel");
        }
    };
    let reaped = status.is_some();
    let via = match status {
        None => "rtp_app --mode tx --path kernel",
        Some(status) => {
            let err = std::fs::read_to_string(TX_LOG).unwrap_or_default();
            crate::e2e::note_pub(format!(
                "TX kernel path: {rtp_app} --mode tx --path kernel exited with {status} ({}); rtpmgr-bench attaches the TX socket itself",
                err.lines().next().unwrap_or("").trim()
            ));
            let sock = UdpSocket::bind((GUEST_IP, 0)).context("bind the TX socket")?;
            sock.connect((PEER_IP, TX_PORT)).context("connect the TX socket")?;
            // The attaching handle becomes the consumer-role holder; closing it detaches.
            let dev = Channel::open(&backend)?;
            dev.attach(&sock, rtpmgr::SocketDir::Tx, rtpmgr::TxPacing::UNPACED)?;
            own = Some((sock, dev));
            "rtpmgr-bench ATTACH TX"
        }
    };
    let _ = ch.start();
    let result = produce(&ch, channel, rate, secs);
    if !reaped {
        // SAFETY: kill(2) on our own child's pid, which nothing has reaped yet (try_wait said it
        // was running and only this function waits for it), so it cannot have been reused.
        unsafe { libc::kill(sup.id() as i32, libc::SIGTERM) };
        let _ = sup.wait();
    }
    drop(own);
    result.map(|()| via)
}

fn produce(ch: &Channel, channel: u32, rate: u64, secs: f64) -> Result<()> {
    let done = || {
        crate::wire::ring_stat(channel, "tx_sent").unwrap_or(0)
            + crate::wire::ring_stat(channel, "tx_errors").unwrap_or(0)
    };
    let done0 = done();
    let mut prod = ch.producer()?;
    let mut pkt = [0u8; 160];
    pkt[0] = 0x80;
    pkt[1] = 96;
    pkt[8..12].copy_from_slice(&0x5458_4b4eu32.to_be_bytes());
    let schedule = crate::pace::Schedule::for_duration(rate, secs);
    let total = schedule.total();
    let mut sent = 0u64;
    while sent < total {
        let due = schedule.due();
        if due > sent {
            let n = ((due - sent) as usize).min(256);
            let mut slots = prod.reserve_batch_wait(n, Some(Duration::from_millis(100)))?;
            for s in &mut slots {
                pkt[2..4].copy_from_slice(&(sent as u16).to_be_bytes());
                pkt[4..8].copy_from_slice(&((sent * 160) as u32).to_be_bytes());
                s.fill(&pkt)?;
                sent += 1;
            }
            prod.push_batch(slots)?;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    // Let the kernel drain what is READY before the attachment ends.
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && done() - done0 < total {
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// TX comparison at each rate: socket (rtp_app sendmmsg) vs kernel send.
pub fn run(
    peer: &Peer,
    rtp_app: &str,
    channel: u32,
    rates: &[u64],
    secs: f64,
    skipped: &mut Vec<String>,
) -> Result<Vec<TxPoint>> {
    let mut points = Vec::new();
    for &rate in rates {
        for path in ["socket", "kernel"] {
            peer.received(true)?;
            let c0 = guest_busy_us()?;
            let t0 = Instant::now();
            let r = if path == "socket" {
                rtp_app_tx(rtp_app, channel, rate, secs, false).map(|()| "rtp_app sendmmsg")
            } else {
                kernel_tx(rtp_app, channel, rate, secs)
            };
            std::thread::sleep(Duration::from_millis(300));
            let cpu = guest_busy_us()? - c0;
            let wall = t0.elapsed().as_secs_f64();
            let received = peer.received(true)?;
            let via = match r {
                Ok(v) => v,
                Err(e) => {
                    skipped.push(format!("TX {path} at {rate} pps not measured: {e:#}"));
                    continue;
                }
            };
            points.push(TxPoint {
                path: format!("{path} ({via})"),
                rate,
                received,
                cpu_us_per_pkt: if received == 0 { f64::NAN } else { cpu as f64 / received as f64 },
                cpu_load: cpu as f64 / 1e6 / wall,
            });
        }
    }
    Ok(points)
}

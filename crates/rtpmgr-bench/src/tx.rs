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

/// Runs `rtp_app --mode tx` (socket or `--path kernel`) for `secs`; Err if it fails at once.
fn rtp_app_tx(rtp_app: &str, channel: u32, rate: u64, secs: f64, kernel: bool) -> Result<()> {
    let mut cmd = Command::new(rtp_app);
    cmd.args(["--mode", "tx", "--dst", &PEER_IP.to_string(), "--port", &TX_PORT.to_string()]);
    cmd.args(["--rate", &rate.to_string(), "--payload", "148", "--channel", &channel.to_string()]);
    cmd.args(["-t", &format!("{secs}"), "--interval", "3600"]);
    if kernel {
        cmd.args(["--path", "kernel"]);
    }
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

/// The kernel TX path driven by this tool: ATTACH TX of a connected socket, then RTP produced
/// into the ring at `rate` for `secs` (1 ms ticks, as a paced sender does).
fn attach_tx(channel: u32, rate: u64, secs: f64) -> Result<()> {
    let backend = Backend::kernel(channel);
    let ch = Channel::open(&backend)?;
    if ch.stop().is_ok() {
        let _ = ch.reset();
    }
    ch.start()?;
    let sock = UdpSocket::bind((GUEST_IP, 0)).context("bind the TX socket")?;
    sock.connect((PEER_IP, TX_PORT)).context("connect the TX socket")?;
    // The attaching handle becomes the consumer-role holder; closing it detaches.
    let dev = Channel::open(&backend)?;
    dev.attach(&sock, rtpmgr::SocketDir::Tx, rtpmgr::TxPacing::UNPACED)?;
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
    let total = (rate as f64 * secs) as u64;
    let start = Instant::now();
    let mut sent = 0u64;
    while sent < total {
        let due = ((start.elapsed().as_secs_f64() * rate as f64) as u64).min(total);
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
    // Let the kernel drain what is READY before the attachment ends with the file.
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && done() - done0 < total {
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(dev);
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
    let mut kernel_via: Option<&str> = Some("rtp_app --path kernel");
    for &rate in rates {
        for path in ["socket", "kernel"] {
            if path == "kernel" && kernel_via.is_none() {
                continue;
            }
            peer.received(true)?;
            let c0 = guest_busy_us()?;
            let t0 = Instant::now();
            let r = match (path, kernel_via) {
                ("socket", _) => rtp_app_tx(rtp_app, channel, rate, secs, false),
                (_, Some("rtp_app --path kernel")) => match rtp_app_tx(rtp_app, channel, rate, secs, true) {
                    Ok(()) => Ok(()),
                    Err(e) => {
                        skipped.push(format!("TX: {e:#}; the bench attaches the TX socket itself instead"));
                        kernel_via = Some("rtpmgr-bench ATTACH TX");
                        attach_tx(channel, rate, secs)
                    }
                },
                _ => attach_tx(channel, rate, secs),
            };
            std::thread::sleep(Duration::from_millis(300));
            let cpu = guest_busy_us()? - c0;
            let wall = t0.elapsed().as_secs_f64();
            let received = peer.received(true)?;
            if let Err(e) = r {
                skipped.push(format!("TX {path} at {rate} pps not measured: {e:#}"));
                if path == "kernel" {
                    kernel_via = None;
                }
                continue;
            }
            let name = if path == "kernel" {
                format!("kernel ({})", kernel_via.unwrap_or("?"))
            } else {
                "socket (rtp_app sendmmsg)".into()
            };
            points.push(TxPoint {
                path: name,
                rate,
                received,
                cpu_us_per_pkt: if received == 0 { f64::NAN } else { cpu as f64 / received as f64 },
                cpu_load: cpu as f64 / 1e6 / wall,
            });
        }
    }
    Ok(points)
}

//! Acceptance: tshark (Debian package `tshark`) captures rtp_app's TX stream on `lo`, decodes it
//! as RTP, finds no malformed packet and consecutive sequence numbers.
//!
//! Needs tshark and the right to capture on lo (root or the wireshark group). Without tshark
//! the test fails with the install command, unless RTPMGR_SKIP_TSHARK=1.

mod common;
use common::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PACKETS: u32 = 2000;

#[test]
fn tshark_decodes_tx_stream_as_clean_consecutive_rtp() {
    if !rtpmgr_testkit::require_tool(
        "tshark::tshark_decodes_tx_stream_as_clean_consecutive_rtp",
        "tshark",
        &["--version"],
        "RTPMGR_SKIP_TSHARK",
        "DEBIAN_FRONTEND=noninteractive apt-get install -y tshark",
    ) {
        return;
    }
    let ring = ShmRing::new("tshark");
    // Something listens on the port, so the kernel sends no ICMP port-unreachable back.
    let sink = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = sink.local_addr().unwrap().port();
    let pcap = std::env::temp_dir().join(format!("rtp_app-tshark-{}.pcapng", std::process::id()));
    let _ = std::fs::remove_file(&pcap);

    let mut cap = Command::new("tshark")
        .args(["-i", "lo", "-f", &format!("udp port {port}"), "-c", &PACKETS.to_string(), "-a", "duration:60", "-w"])
        .arg(&pcap)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tshark starts");
    // tshark says "Capturing on 'Loopback: lo'" once the capture runs.
    let (tx_line, rx_line) = std::sync::mpsc::channel();
    let err = cap.stderr.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx_line.send(l);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut log = vec![];
    loop {
        assert!(Instant::now() < deadline, "tshark did not start capturing: {log:#?}");
        if let Ok(l) = rx_line.recv_timeout(Duration::from_millis(200)) {
            let started = l.contains("Capturing on");
            log.push(l);
            if started {
                break;
            }
        }
        if let Some(st) = cap.try_wait().unwrap() {
            panic!("tshark exited ({st}) before capturing (capturing on lo needs root): {log:#?}");
        }
    }
    // Let the capture settle a moment; packets before the filter is live would be missed.
    std::thread::sleep(Duration::from_millis(300));

    let tx = run(&[
        "--mode",
        "tx",
        "--dst",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--rate",
        "5000",
        "--payload",
        "160",
        "--pt",
        "0",
        "--clock-rate",
        "8000",
        "--ssrc",
        "0x1234abcd",
        "--backend",
        "shm",
        "--shm-name",
        &ring.0,
        "-l",
        &PACKETS.to_string(),
        "--json",
        "--interval",
        "0",
    ]);
    assert!(tx.status.success(), "tx: {}", String::from_utf8_lossy(&tx.stderr));
    assert_eq!(final_record(&tx.stdout)["packets"].as_u64(), Some(u64::from(PACKETS)));

    let out = wait_bounded(cap, Duration::from_secs(30));
    assert!(out.status.success(), "tshark capture failed: {log:#?}");

    // Decode the capture as RTP on that port.
    let fields = Command::new("tshark")
        .args(["-r"])
        .arg(&pcap)
        .args([
            "-d",
            &format!("udp.port=={port},rtp"),
            "-T",
            "fields",
            "-E",
            "separator=,",
            "-e",
            "rtp.version",
            "-e",
            "rtp.p_type",
            "-e",
            "rtp.ssrc",
            "-e",
            "rtp.seq",
            "-e",
            "rtp.timestamp",
            "-e",
            "_ws.malformed",
            "-e",
            "_ws.expert.severity",
        ])
        .output()
        .expect("tshark reads the capture");
    assert!(fields.status.success(), "tshark -r: {}", String::from_utf8_lossy(&fields.stderr));
    let text = String::from_utf8_lossy(&fields.stdout);
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), PACKETS as usize, "captured packets");
    let mut prev: Option<u16> = None;
    let mut first_ts: Option<u32> = None;
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r[0], "2", "packet {i} is not RTP v2: {r:?}");
        assert_eq!(r[1], "0", "payload type");
        assert_eq!(r[2].to_ascii_lowercase(), "0x1234abcd", "ssrc");
        assert!(r[5].is_empty(), "packet {i} malformed: {r:?}");
        let seq: u16 = r[3].parse().unwrap();
        let ts: u32 = r[4].parse().unwrap();
        if let Some(ps) = prev {
            assert_eq!(seq, ps.wrapping_add(1), "sequence numbers consecutive at packet {i}");
        }
        // 8 kHz clock at 5000 pps: packet i is stamped floor(i * 8000 / 5000) after the first.
        let t0 = *first_ts.get_or_insert(ts);
        assert_eq!(ts.wrapping_sub(t0), (i * 8000 / 5000) as u32, "timestamp of packet {i}");
        prev = Some(seq);
    }
    // tshark's own malformed-packet filter agrees.
    let bad = Command::new("tshark")
        .args(["-r"])
        .arg(&pcap)
        .args(["-d", &format!("udp.port=={port},rtp"), "-Y", "_ws.malformed || _ws.expert.severity >= warning"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&bad.stdout).trim().is_empty(),
        "malformed: {}",
        String::from_utf8_lossy(&bad.stdout)
    );
    let _ = std::fs::remove_file(&pcap);
}

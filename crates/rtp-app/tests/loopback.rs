//! Acceptance: `rtp_app --mode tx --rate 10000 -t 5` -> `rtp_app --mode rx` over 127.0.0.1 with
//! the shm backend delivers every packet, counted at both ends from their final JSON stats.

mod common;
use common::*;
use std::time::Duration;

#[test]
fn tx_10k_pps_for_5s_reaches_rx_completely() {
    let (rx_ring, tx_ring) = (ShmRing::new("lo-rx"), ShmRing::new("lo-tx"));
    let port = free_port().to_string();
    let (rx, _err) = spawn_ready(
        &[
            "--mode", "rx", "--bind", "127.0.0.1", "--port", &port, "--backend", "shm", "--shm-name", &rx_ring.0,
            "--drain", "--json", "--interval", "1", "-t", "30",
        ],
        "rx: receiving on",
    );
    let tx = run(&[
        "--mode", "tx", "--dst", "127.0.0.1", "--port", &port, "--rate", "10000", "--payload", "1200", "--backend",
        "shm", "--shm-name", &tx_ring.0, "--json", "--interval", "1", "-t", "5",
    ]);
    assert!(tx.status.success(), "tx failed: {}", String::from_utf8_lossy(&tx.stderr));
    let txf = final_record(&tx.stdout);
    let sent = txf["packets"].as_u64().unwrap();
    assert_eq!(txf["exit_reason"], "time_limit");
    assert_eq!(txf["socket_errors"], 0);
    assert_eq!(txf["ring_full"], 0);
    // 10,000 pps for 5 s, allowing for scheduling at the start and end.
    assert!((49_000..=50_001).contains(&sent), "tx sent {sent}");

    // Give the receiver a moment for the tail, then stop it like an operator would.
    std::thread::sleep(Duration::from_millis(500));
    let st = std::process::Command::new("kill").args(["-INT", &rx.id().to_string()]).status().unwrap();
    assert!(st.success());
    let out = wait_bounded(rx, Duration::from_secs(10));
    assert!(out.status.success(), "rx exit {:?}", out.status);
    let rxf = final_record(&out.stdout);
    eprintln!("tx final: {txf}\nrx final: {rxf}");
    assert_eq!(rxf["exit_reason"], "signal");
    assert_eq!(rxf["packets"].as_u64().unwrap(), sent, "every datagram sent was received");
    assert_eq!(rxf["pushed"].as_u64().unwrap(), sent, "every datagram went into a ring slot");
    assert_eq!(rxf["consumed"].as_u64().unwrap(), sent, "and came out of the ring again");
    assert_eq!(rxf["malformed"], 0);
    assert_eq!(rxf["ring_full"], 0);
    assert_eq!(rxf["bytes"], txf["bytes"]);
    let ring = &rxf["ring"];
    assert_eq!(ring["pushed_packets"].as_u64().unwrap(), sent);
    assert_eq!(ring["rtp_lost"], 0);
    assert_eq!(ring["rtp_reordered"], 0);
    assert_eq!(ring["malformed"], 0);
}

//! `rtp_app capture`'s file format, checked by tshark (Debian package `tshark`): capture records
//! as the kernel writes them (rtpmgr::capture::encode_record) go through the same parser and pcap
//! writer as a live capture; tshark must decode every frame as RTP with the right sequence
//! number, a good IPv4 header checksum and the wall-clock time. The live path (the module's
//! CAPTURE) is tested in the guest: test/device/capture-check.
//!
//! Without tshark the test fails with the install command, unless RTPMGR_SKIP_TSHARK=1.

mod common;
use common::*;
use rtp_app::capture::{Framing, PcapFormat, PcapSink};
use rtpmgr::capture::{encode_record, parse_records};
use std::process::Command;

/// Sequence numbers that wrap around 65535.
const FIRST_SEQ: u16 = 65500;
const PACKETS: u16 = 100;
/// The wall clock at CLOCK_MONOTONIC 0 in these tests: 2023-11-14T22:13:20Z.
const OFFSET_NS: i128 = 1_700_000_000_000_000_000;

fn tshark_or_skip(test: &str) -> bool {
    rtpmgr_testkit::require_tool(
        test,
        "tshark",
        &["--version"],
        "RTPMGR_SKIP_TSHARK",
        "DEBIAN_FRONTEND=noninteractive apt-get install -y tshark",
    )
}

/// One read's worth of records: RTP packets of 172 bytes (12 header + 160 payload), 20 ms apart.
fn records() -> Vec<u8> {
    let mut buf = Vec::new();
    for i in 0..PACKETS {
        let seq = FIRST_SEQ.wrapping_add(i);
        let mut rtp = vec![0x80, 0x00];
        rtp.extend_from_slice(&seq.to_be_bytes());
        rtp.extend_from_slice(&(u32::from(i) * 160).to_be_bytes());
        rtp.extend_from_slice(&0x1234_5678u32.to_be_bytes());
        rtp.extend(std::iter::repeat_n(i as u8, 160));
        buf.extend(encode_record(1_000_000_000 + u64::from(i) * 20_000_000, 172, 0, 0, &rtp));
    }
    buf
}

/// Writes the records to `path` in `format`, keeping `snaplen` bytes of each packet.
fn write_capture(path: &std::path::Path, format: PcapFormat, snaplen: u32) {
    let file = std::fs::File::create(path).unwrap();
    let framing = Framing::new("192.0.2.1:5004".parse().unwrap(), "192.0.2.2:5004".parse().unwrap());
    let mut sink = PcapSink::new(Box::new(file), format, snaplen, framing, "/dev/rtp_mgr0", OFFSET_NS).unwrap();
    let recs = records();
    let mut kept = Vec::new();
    for r in parse_records(&recs, u32::MAX) {
        let p = r.unwrap();
        // What the kernel does with a snaplen: the record carries the first snaplen bytes.
        let data = &p.data[..p.data.len().min(snaplen as usize)];
        kept.push(rtpmgr::CapturedPacket { data, ..p });
    }
    for p in &kept {
        sink.write(p).unwrap();
    }
    sink.flush().unwrap();
    assert_eq!(sink.written(), u64::from(PACKETS));
}

/// tshark's fields of every frame, decoding UDP port 5004 as RTP.
fn tshark_fields(path: &std::path::Path, fields: &[&str]) -> Vec<Vec<String>> {
    let mut cmd = Command::new("tshark");
    cmd.arg("-r").arg(path).args(["-d", "udp.port==5004,rtp", "-o", "ip.check_checksum:TRUE", "-T", "fields"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().expect("tshark runs");
    assert!(out.status.success(), "tshark failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().lines().map(|l| l.split('\t').map(str::to_string).collect()).collect()
}

fn check_file(format: PcapFormat, snaplen: u32, tag: &str) {
    let path = std::env::temp_dir().join(format!("rtp_app-capture-{tag}-{}", std::process::id()));
    write_capture(&path, format, snaplen);
    let rows = tshark_fields(
        &path,
        &[
            "rtp.seq", "rtp.ssrc", "ip.checksum.status", "frame.time_epoch", "frame.len", "frame.cap_len",
            "_ws.malformed",
        ],
    );
    std::fs::remove_file(&path).unwrap();
    assert_eq!(rows.len(), usize::from(PACKETS), "one frame per record");
    for (i, row) in rows.iter().enumerate() {
        let seq = FIRST_SEQ.wrapping_add(i as u16);
        assert_eq!(row[0], seq.to_string(), "frame {i}: RTP sequence number, in order");
        assert_eq!(row[1], "0x12345678", "frame {i}: SSRC");
        assert_eq!(row[2], "1", "frame {i}: IPv4 header checksum good (1)");
        // 1_700_000_001 s + i x 20 ms, to the nanosecond.
        let ns = 1_000_000_000 + i as u64 * 20_000_000;
        let want = format!("{}.{:09}", 1_700_000_000 + ns / 1_000_000_000, ns % 1_000_000_000);
        assert_eq!(row[3], want, "frame {i}: wall-clock time");
        assert_eq!(row[4], "214", "frame {i}: 42 header bytes + 172 of the packet");
        assert_eq!(row[5], (42 + 172.min(snaplen)).to_string(), "frame {i}: captured length");
        assert_eq!(row.get(6).map(String::as_str).unwrap_or(""), "", "frame {i}: not malformed");
    }
}

#[test]
fn tshark_reads_every_rtp_packet_of_a_pcap() {
    if tshark_or_skip("capture::tshark_reads_every_rtp_packet_of_a_pcap") {
        check_file(PcapFormat::Pcap, 16384, "pcap");
    }
}

#[test]
fn tshark_reads_every_rtp_packet_of_a_pcapng() {
    if tshark_or_skip("capture::tshark_reads_every_rtp_packet_of_a_pcapng") {
        check_file(PcapFormat::Pcapng, 16384, "pcapng");
    }
}

#[test]
fn tshark_reads_the_rtp_headers_of_a_snapped_capture() {
    if tshark_or_skip("capture::tshark_reads_the_rtp_headers_of_a_snapped_capture") {
        check_file(PcapFormat::Pcap, 12, "snap");
    }
}

#[test]
fn a_shm_ring_is_refused_and_no_file_is_left() {
    let path = std::env::temp_dir().join(format!("rtp_app-capture-shm-{}.pcap", std::process::id()));
    let out = run(&["capture", "--backend", "shm", "-w", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("capture needs the rtp_mgr kernel module (ABI 2.2)"), "{err}");
    assert!(!path.exists(), "no empty capture file");
}

#[test]
fn help_explains_timestamps_and_the_decode_as() {
    let out = run(&["capture", "--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in ["CLOCK_MONOTONIC", "udp.port==5004,rtp", "--queue", "Examples:", "192.0.2.2:5004"] {
        assert!(help.contains(needle), "--help lacks {needle:?}");
    }
}

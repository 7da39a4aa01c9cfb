//! `rtp_app capture`: what passes through a channel, written to a pcap or pcapng file.
//!
//! The kernel copies every packet that becomes READY into the capture's own bounded queue
//! (CAPTURE, ABI 2.2; `rtpmgr::Capture`), so the channel's consumer sees exactly what it would
//! see without a capture. The ring holds RTP packets, not frames: each one is written behind
//! synthetic Ethernet, IPv4 and UDP headers ([`Framing`]) so Wireshark can decode it as RTP.

use crate::cli::CommonArgs;
use crate::control::{StopReason, StopState};
use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
use pcap_file::pcapng::blocks::interface_description::{InterfaceDescriptionBlock, InterfaceDescriptionOption};
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::{DataLink, Endianness, TsResolution};
use rtpmgr::{CaptureOptions, CapturedPacket, Channel};
use std::borrow::Cow;
use std::cell::RefCell;
use std::io::Write;
use std::net::SocketAddrV4;
use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Bytes of the synthetic Ethernet (14), IPv4 (20) and UDP (8) headers before each packet.
pub const FRAME_HEADERS_LEN: usize = 14 + 20 + 8;

/// Source MAC of the synthetic frames: locally administered, so it names no real device.
const SRC_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];
/// Destination MAC of the synthetic frames.
const DST_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x02];

/// Longest poll of the capture file: how late a signal or -t is noticed at worst.
const POLL_SLICE: Duration = Duration::from_millis(100);

/// The manual of `rtp_app capture --help`.
pub const LONG_ABOUT: &str = "\
Write the packets that pass through a channel to a pcap or pcapng file, without taking them
from the channel's consumer.

The kernel module (ABI 2.2) copies every packet that becomes READY on the channel - pushed by
a producer or received by an attached socket - into a queue of the capture's own (CAPTURE);
the consumer's slots, counters and wake-ups do not change. If rtp_app falls behind and that
queue fills, the kernel drops copies (never the stream's packets) and counts them as missed;
raise --queue. Needs the kernel backend; a shm ring cannot be captured. One capture per
channel at a time. Any user who may open /dev/rtp_mgrN may capture.

The ring holds RTP packets, not frames. Each one is written behind synthetic Ethernet, IPv4
and UDP headers (--src to --dst, IPv4 header checksum set, UDP checksum 0, which IPv4 allows)
so Wireshark and tshark decode it: Decode As... UDP port 5004 -> RTP, or
tshark -d udp.port==5004,rtp. The frame's original length is the packet's length plus the 42
header bytes even when --snaplen cut the data.

Timestamps are wall-clock (UTC) times with nanosecond resolution: the kernel stamps each
packet with CLOCK_MONOTONIC when it becomes READY, and rtp_app adds the offset between
CLOCK_REALTIME and CLOCK_MONOTONIC taken once when the capture starts. A clock step during the
capture (NTP, settimeofday) does not move the timestamps; their spacing is exact.

The run ends after --count packets (or -l), after -t seconds, or on SIGINT/SIGTERM; the file
is complete and valid in every case (it is flushed after every batch, so it can be read while
it grows, e.g. -w - | tshark -r -). On exit rtp_app prints to stderr how many packets were
captured and how many the capture missed; a missed count is also a warning.";

/// Examples of `rtp_app capture --help`.
pub const AFTER_LONG_HELP: &str = "\
Examples:
  Capture 1000 packets of channel 0 and decode them as RTP:
    rtp_app capture --channel 0 --count 1000 -w /tmp/ch0.pcap
    tshark -r /tmp/ch0.pcap -d udp.port==5004,rtp

  Ten seconds of channel 2 as pcapng, the first 64 bytes of each packet, bigger queue:
    rtp_app capture --channel 2 -t 10 --format pcapng --snaplen 64 --queue 8192 -w ch2.pcapng

  Headers that match the real stream (so 'Decode As' and stream analysis see its addresses):
    rtp_app capture --src 10.0.0.1:5004 --dst 239.1.1.1:5004 -w iptv.pcap

  Watch live in Wireshark on another machine:
    ssh root@device rtp_app capture --channel 0 -w - | wireshark -k -i -

Exit status: 0 (also after SIGINT/SIGTERM or a limit), 1 runtime error (no module, the channel
already has a capture, the file cannot be written), 2 usage error.";

/// File formats of `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PcapFormat {
    /// Classic libpcap, nanosecond timestamps (magic a1b23c4d).
    Pcap,
    /// pcapng: one interface (named after the channel), nanosecond timestamps.
    Pcapng,
}

/// Options of `rtp_app capture` (also: --channel, -t, -l).
#[derive(Debug, Clone, Args)]
pub struct CaptureArgs {
    /// Write the capture to this file ('-': standard output).
    ///
    /// An existing file is replaced. The file is created only once the capture runs, so an
    /// error (no module, the channel is already captured) leaves no empty file behind.
    #[arg(short = 'w', long = "write", value_name = "file")]
    pub write: PathBuf,

    /// File format: pcap or pcapng.
    #[arg(long, value_enum, default_value_t = PcapFormat::Pcap, value_name = "format")]
    pub format: PcapFormat,

    /// Stop after this many packets (the same as -l/--limit).
    #[arg(long, value_name = "n", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,

    /// Bytes kept of each RTP packet (default: the whole packet, the channel's slot_payload).
    ///
    /// 12 keeps just the RTP header. At most 16384.
    #[arg(long, value_name = "bytes", value_parser = clap::value_parser!(u32).range(1..=16384))]
    pub snaplen: Option<u32>,

    /// Records the kernel holds for rtp_app (default 1024).
    ///
    /// Copies beyond it are missed (counted, reported at exit). queue x (snaplen + 24 bytes)
    /// must stay within 32 MiB.
    #[arg(long, value_name = "records", value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub queue: Option<u32>,

    /// Source address and port of the synthetic IPv4/UDP header.
    #[arg(long, value_name = "addr:port", default_value = "192.0.2.1:5004")]
    pub src: SocketAddrV4,

    /// Destination address and port of the synthetic IPv4/UDP header.
    ///
    /// Use the stream's real port, or tell Wireshark to decode this one as RTP.
    #[arg(long, value_name = "addr:port", default_value = "192.0.2.2:5004")]
    pub dst: SocketAddrV4,
}

/// The synthetic Ethernet/IPv4/UDP headers put in front of each captured RTP packet.
#[derive(Debug, Clone)]
pub struct Framing {
    src: SocketAddrV4,
    dst: SocketAddrV4,
    /// IPv4 identification, one per frame (as a sender's counter would be).
    ip_id: u16,
}

/// The RFC 1071 Internet checksum of `bytes` (an even number of them, as an IPv4 header).
pub fn internet_checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes.chunks(2).map(|w| u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

impl Framing {
    /// Frames from `src` to `dst`.
    pub fn new(src: SocketAddrV4, dst: SocketAddrV4) -> Framing {
        Framing { src, dst, ip_id: 0 }
    }

    /// Writes into `out` (cleared first) the frame of a packet of `len` bytes of which `data`
    /// were captured; returns the frame's original length (`len` + 42).
    ///
    /// # Errors
    /// A packet too long for one IPv4 datagram (above 65507 bytes; the ring's slots hold at
    /// most 16384).
    pub fn frame(&mut self, len: u32, data: &[u8], out: &mut Vec<u8>) -> Result<u32> {
        let udp_len = u16::try_from(u64::from(len) + 8).ok().filter(|&l| l <= u16::MAX - 20);
        let Some(udp_len) = udp_len else { bail!("a packet of {len} bytes does not fit one IPv4/UDP datagram") };
        let ip_len = udp_len + 20;
        out.clear();
        out.extend_from_slice(&DST_MAC);
        out.extend_from_slice(&SRC_MAC);
        out.extend_from_slice(&0x0800u16.to_be_bytes()); // IPv4
        let ip_start = out.len();
        out.extend_from_slice(&[0x45, 0]); // version 4, 5 words of header; DSCP/ECN 0
        out.extend_from_slice(&ip_len.to_be_bytes());
        out.extend_from_slice(&self.ip_id.to_be_bytes());
        out.extend_from_slice(&0x4000u16.to_be_bytes()); // don't fragment, offset 0
        out.extend_from_slice(&[64, 17]); // TTL, protocol UDP
        out.extend_from_slice(&[0, 0]); // checksum, below
        out.extend_from_slice(&self.src.ip().octets());
        out.extend_from_slice(&self.dst.ip().octets());
        let sum = internet_checksum(&out[ip_start..ip_start + 20]);
        out[ip_start + 10..ip_start + 12].copy_from_slice(&sum.to_be_bytes());
        out.extend_from_slice(&self.src.port().to_be_bytes());
        out.extend_from_slice(&self.dst.port().to_be_bytes());
        out.extend_from_slice(&udp_len.to_be_bytes());
        out.extend_from_slice(&[0, 0]); // no UDP checksum (RFC 768: allowed over IPv4)
        out.extend_from_slice(data);
        self.ip_id = self.ip_id.wrapping_add(1);
        Ok(u32::from(ip_len) + 14)
    }
}

/// CLOCK_REALTIME minus CLOCK_MONOTONIC in ns, read once: added to a record's arrival_ns it
/// gives the wall-clock time the pcap formats store. The monotonic clock is read before and
/// after the realtime clock and the midpoint is used, so the offset is off by at most half of
/// the few hundred nanoseconds between the reads.
pub fn realtime_offset_ns() -> i128 {
    let ns = |id| {
        let ts = nix::time::clock_gettime(id).expect("CLOCK_REALTIME and CLOCK_MONOTONIC always exist on Linux");
        i128::from(ts.tv_sec()) * 1_000_000_000 + i128::from(ts.tv_nsec())
    };
    let before = ns(nix::time::ClockId::CLOCK_MONOTONIC);
    let real = ns(nix::time::ClockId::CLOCK_REALTIME);
    let after = ns(nix::time::ClockId::CLOCK_MONOTONIC);
    real - (before + after) / 2
}

enum Writer {
    Pcap(PcapWriter<PendingBytes>),
    Pcapng(PcapNgWriter<PendingBytes>),
}

/// Where pcap-file writes: memory, moved to the file by [`PcapSink::flush`] in one write per
/// batch (pcap-file writes each field on its own, and its pcap writer cannot be flushed).
#[derive(Clone, Default)]
struct PendingBytes(Rc<RefCell<Vec<u8>>>);

impl Write for PendingBytes {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A pcap or pcapng file being written: header first, then one frame per captured packet.
pub struct PcapSink {
    out: Box<dyn Write>,
    pending: PendingBytes,
    writer: Writer,
    framing: Framing,
    realtime_offset_ns: i128,
    frame: Vec<u8>,
    written: u64,
}

impl PcapSink {
    /// Writes the file header to `out`: Ethernet link type, snaplen `snaplen` + 42, nanosecond
    /// timestamps. `interface` names the pcapng interface (the channel). Timestamps are
    /// `arrival_ns + realtime_offset_ns` (see [`realtime_offset_ns`]).
    pub fn new(
        out: Box<dyn Write>,
        format: PcapFormat,
        snaplen: u32,
        framing: Framing,
        interface: &str,
        realtime_offset_ns: i128,
    ) -> Result<PcapSink> {
        let frame_snaplen = snaplen.saturating_add(FRAME_HEADERS_LEN as u32);
        let pending = PendingBytes::default();
        let writer = match format {
            PcapFormat::Pcap => {
                let header = PcapHeader {
                    version_major: 2,
                    version_minor: 4,
                    ts_correction: 0,
                    ts_accuracy: 0,
                    snaplen: frame_snaplen,
                    datalink: DataLink::ETHERNET,
                    ts_resolution: TsResolution::NanoSecond,
                    endianness: Endianness::native(),
                };
                Writer::Pcap(PcapWriter::with_header(pending.clone(), header).context("write the pcap file header")?)
            }
            PcapFormat::Pcapng => {
                let mut w = PcapNgWriter::new(pending.clone()).context("write the pcapng section header")?;
                let mut idb = InterfaceDescriptionBlock::new(DataLink::ETHERNET, frame_snaplen);
                idb.options = vec![
                    InterfaceDescriptionOption::IfName(Cow::Owned(interface.to_string())),
                    InterfaceDescriptionOption::IfDescription(Cow::Borrowed(
                        "rtp_mgr channel capture; synthetic Ethernet/IPv4/UDP headers",
                    )),
                    // pcap-file writes enhanced packet timestamps in ns: say so (default is µs).
                    InterfaceDescriptionOption::IfTsResol(9),
                ];
                w.write_pcapng_block(idb).context("write the pcapng interface block")?;
                Writer::Pcapng(w)
            }
        };
        Ok(PcapSink { out, pending, writer, framing, realtime_offset_ns, frame: Vec::new(), written: 0 })
    }

    /// Appends one captured packet as a frame.
    pub fn write(&mut self, pkt: &CapturedPacket<'_>) -> Result<()> {
        let orig_len = self.framing.frame(pkt.len, pkt.data, &mut self.frame)?;
        let wall_ns = (i128::from(pkt.arrival_ns) + self.realtime_offset_ns).max(0);
        let ts = Duration::from_nanos(u64::try_from(wall_ns).unwrap_or(u64::MAX));
        match &mut self.writer {
            Writer::Pcap(w) => w.write_packet(&PcapPacket::new(ts, orig_len, &self.frame)).map(drop),
            Writer::Pcapng(w) => w
                .write_pcapng_block(EnhancedPacketBlock {
                    interface_id: 0,
                    timestamp: ts,
                    original_len: orig_len,
                    data: Cow::Borrowed(&self.frame),
                    options: vec![],
                })
                .map(drop),
        }
        .context("write a packet to the capture file")?;
        self.written += 1;
        Ok(())
    }

    /// Frames written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Writes what is pending to the file and flushes it (after every batch, so a reader of a
    /// growing file or a pipe sees whole frames).
    pub fn flush(&mut self) -> Result<()> {
        let bytes = std::mem::take(&mut *self.pending.0.borrow_mut());
        self.out.write_all(&bytes).context("write the capture file")?;
        self.out.flush().context("write the capture file")
    }
}

/// What a capture run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaptureSummary {
    /// Packets written to the file.
    pub captured: u64,
    /// Packets the kernel did not copy because the capture's queue was full.
    pub missed: u64,
}

/// `rtp_app capture`: captures `common.channel` until a limit or a signal.
pub fn run(common: &CommonArgs, args: &CaptureArgs, stop: &StopState) -> Result<ExitCode> {
    let backend = crate::backend::select(common)?;
    if backend.kind() != rtpmgr::BackendKind::Kernel {
        bail!("{} (a shm ring is not captured: drop --backend shm)", rtpmgr::capture::NEEDS_KERNEL);
    }
    let ch = Channel::open(&backend).context("open the channel to capture")?;
    let opts =
        CaptureOptions { queue_len: args.queue.unwrap_or(0), snaplen: args.snaplen.unwrap_or(0), nonblocking: true };
    let mut cap = ch.capture(&opts)?;
    let limit = args.count.or(common.limit);
    let duration = common.time.map(Duration::from_secs_f64);

    let (out, name) = open_output(&args.write)?;
    let framing = Framing::new(args.src, args.dst);
    let mut sink = PcapSink::new(out, args.format, cap.snaplen(), framing, ch.name(), realtime_offset_ns())?;
    sink.flush().with_context(|| format!("write {name}"))?;
    log::info!("capturing {} to {name} ({:?}, snaplen {})", ch.name(), args.format, cap.snaplen());

    let started = Instant::now();
    let mut missed = 0u64;
    'run: loop {
        if stop.should_stop() {
            break;
        }
        let left = match duration {
            Some(d) => match d.checked_sub(started.elapsed()) {
                Some(left) if !left.is_zero() => Some(left),
                _ => {
                    stop.stop(StopReason::TimeLimit);
                    break;
                }
            },
            None => None,
        };
        if !cap.wait(Some(left.map_or(POLL_SLICE, |l| l.min(POLL_SLICE))))? {
            continue;
        }
        for pkt in cap.read_records()? {
            let pkt = pkt.with_context(|| format!("capture of {}", ch.name()))?;
            missed += u64::from(pkt.missed);
            sink.write(&pkt)?;
            if limit.is_some_and(|n| sink.written() >= n) {
                // The rest of this read (if any) is dropped: the count is what was asked for.
                sink.flush().with_context(|| format!("write {name}"))?;
                stop.stop(StopReason::PacketLimit);
                break 'run;
            }
        }
        sink.flush().with_context(|| format!("write {name}"))?;
    }
    drop(cap);
    let summary = CaptureSummary { captured: sink.written(), missed };
    eprintln!("{}", summary_line(&summary, ch.name(), &name));
    if summary.missed > 0 {
        log::warn!(
            "the capture missed {} packets (its queue of {} records was full; the channel's consumer got \
             them): raise --queue",
            summary.missed,
            args.queue.unwrap_or(rtpmgr::abi::RTPM_CAPTURE_QUEUE_DEFAULT)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The line printed at exit.
pub fn summary_line(s: &CaptureSummary, channel: &str, file: &str) -> String {
    format!("{} packets captured, {} missed ({channel} -> {file})", s.captured, s.missed)
}

/// The output of `-w`: standard output for '-', else the file (created or truncated).
fn open_output(path: &std::path::Path) -> Result<(Box<dyn Write>, String)> {
    if path.as_os_str() == "-" {
        return Ok((Box::new(std::io::stdout()), "standard output".into()));
    }
    let f = std::fs::File::create(path).with_context(|| format!("create the capture file {}", path.display()))?;
    Ok((Box::new(f), path.display().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddrV4 {
        s.parse().unwrap()
    }

    #[test]
    fn checksum_of_a_known_ipv4_header() {
        // The worked example of the IPv4 header checksum (192.168.0.1 -> 192.168.0.199).
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8,
            0x00, 0xc7,
        ];
        assert_eq!(internet_checksum(&h), 0xb861);
        h[10..12].copy_from_slice(&0xb861u16.to_be_bytes());
        assert_eq!(internet_checksum(&h), 0, "a header with its checksum sums to zero");
    }

    #[test]
    fn a_frame_has_consistent_lengths_and_a_valid_ip_checksum() {
        let mut f = Framing::new(addr("10.1.2.3:4000"), addr("239.1.1.1:5004"));
        let mut out = Vec::new();
        let rtp = [0x80u8; 20];
        // A 1000-byte packet of which 20 were captured.
        let orig = f.frame(1000, &rtp, &mut out).unwrap();
        assert_eq!(orig, 1000 + 42);
        assert_eq!(out.len(), 42 + 20, "headers plus the captured bytes only");
        assert_eq!(&out[0..6], &DST_MAC);
        assert_eq!(&out[6..12], &SRC_MAC);
        assert_eq!(&out[12..14], &[0x08, 0x00]);
        let ip = &out[14..34];
        assert_eq!(ip[0], 0x45);
        assert_eq!(u16::from_be_bytes([ip[2], ip[3]]), 1000 + 28, "IPv4 total length");
        assert_eq!(ip[9], 17, "UDP");
        assert_eq!(&ip[12..16], &[10, 1, 2, 3]);
        assert_eq!(&ip[16..20], &[239, 1, 1, 1]);
        assert_eq!(internet_checksum(ip), 0, "the header checksum is right");
        let udp = &out[34..42];
        assert_eq!(u16::from_be_bytes([udp[0], udp[1]]), 4000);
        assert_eq!(u16::from_be_bytes([udp[2], udp[3]]), 5004);
        assert_eq!(u16::from_be_bytes([udp[4], udp[5]]), 1000 + 8, "UDP length");
        assert_eq!(&udp[6..8], &[0, 0], "no UDP checksum");
        assert_eq!(&out[42..], &rtp);
        // The next frame gets the next IP identification, and its own checksum.
        f.frame(12, &rtp[..12], &mut out).unwrap();
        assert_eq!(u16::from_be_bytes([out[18], out[19]]), 1);
        assert_eq!(internet_checksum(&out[14..34]), 0);
    }

    #[test]
    fn a_packet_longer_than_a_datagram_is_an_error() {
        let mut f = Framing::new(addr("192.0.2.1:1"), addr("192.0.2.2:2"));
        let mut out = Vec::new();
        assert!(f.frame(65507, &[], &mut out).is_ok());
        let e = f.frame(65508, &[], &mut out).unwrap_err();
        assert!(e.to_string().contains("65508"), "{e}");
        assert!(f.frame(u32::MAX, &[], &mut out).is_err());
    }

    /// A Write that keeps what it got, readable after the sink owns a clone.
    #[derive(Clone, Default)]
    struct Shared(Rc<RefCell<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.borrow_mut().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_pcap_file_has_ns_timestamps_ethernet_and_wall_clock_times() {
        let file = Shared::default();
        let framing = Framing::new(addr("192.0.2.1:5004"), addr("192.0.2.2:5004"));
        let offset = 1_700_000_000_000_000_000i128; // the wall clock at monotonic 0
        let mut sink = PcapSink::new(Box::new(file.clone()), PcapFormat::Pcap, 1500, framing, "ch0", offset).unwrap();
        let pkt = CapturedPacket { arrival_ns: 5_123_456_789, len: 14, missed: 0, flags: 0, data: &[0x80; 14] };
        sink.write(&pkt).unwrap();
        assert!(file.0.borrow().is_empty(), "nothing reaches the file before a flush");
        sink.flush().unwrap();
        let b = file.0.borrow();
        let u32_at = |at: usize| u32::from_ne_bytes(b[at..at + 4].try_into().unwrap());
        assert_eq!(u32_at(0), 0xa1b2_3c4d, "nanosecond pcap");
        assert_eq!(u32_at(16), 1500 + 42, "snaplen covers the synthetic headers");
        assert_eq!(u32_at(20), 1, "LINKTYPE_ETHERNET");
        assert_eq!(u32_at(24), 1_700_000_005, "seconds: offset + arrival");
        assert_eq!(u32_at(28), 123_456_789, "nanoseconds");
        assert_eq!(u32_at(32), 42 + 14, "captured length");
        assert_eq!(u32_at(36), 42 + 14, "original length");
        assert_eq!(b.len(), 24 + 16 + 56);
        assert_eq!(sink.written(), 1);
    }

    #[test]
    fn the_pcapng_interface_says_nanoseconds() {
        let file = Shared::default();
        let framing = Framing::new(addr("192.0.2.1:5004"), addr("192.0.2.2:5004"));
        let mut sink =
            PcapSink::new(Box::new(file.clone()), PcapFormat::Pcapng, 64, framing, "/dev/rtp_mgr3", 0).unwrap();
        sink.flush().unwrap();
        let b = file.0.borrow();
        assert_eq!(u32::from_ne_bytes(b[0..4].try_into().unwrap()), 0x0a0d_0d0a, "section header block");
        // The interface block carries if_tsresol (option 9) = 9 and the channel's name.
        let text = String::from_utf8_lossy(&b);
        assert!(text.contains("/dev/rtp_mgr3"), "interface name");
        assert!(b.windows(5).any(|w| w[..2] == 9u16.to_ne_bytes() && w[2..4] == 1u16.to_ne_bytes() && w[4] == 9));
    }

    #[test]
    fn the_summary_line_names_both_counts() {
        let s = summary_line(&CaptureSummary { captured: 10, missed: 2 }, "/dev/rtp_mgr0", "/tmp/x.pcap");
        assert_eq!(s, "10 packets captured, 2 missed (/dev/rtp_mgr0 -> /tmp/x.pcap)");
    }
}

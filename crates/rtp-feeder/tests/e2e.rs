//! End-to-end tests of rtp-feeder on the host: shared-memory rings, Debian's real GStreamer.
//!
//! - zero-copy: the memory of the buffer that reaches the sink (through a real rtpjitterbuffer)
//!   is the slot's payload in the ring mapping;
//! - rx: producer -> ring -> `rtp-feeder` binary -> rtpjitterbuffer -> appsink counts every
//!   packet, SIGTERM drains and exits 0, the ring shows zero held slots afterwards;
//! - rx backpressure: above the high watermark packets are copied (or dropped), counted;
//! - tx: audiotestsrc/opus -> `rtp-feeder` -> ring -> ring consumer sending UDP -> an
//!   independent `udpsrc ! rtpjitterbuffer ! rtpopusdepay` receiver gets every frame;
//! - config checks and pipeline errors (element named, exit status non-zero);
//! - the status LED driven through a recording embedded-hal pin.
//!
//! The ring consumer of the tx test and the rx producer use crates/rtpmgr directly; when the
//! rtp_app binary is built (target/<profile>/rtp_app) the `*_rtp_app` variants use it instead.

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use clap::Parser;
use gst::prelude::*;
use gstreamer as gst;
use rtp_feeder::cli::Cli;
use rtp_feeder::config::{Config, FileConfig};
use rtp_feeder::stats::Counters;
use rtpmgr::{Backend, Channel};

const CAPS: &str = "application/x-rtp,media=audio,clock-rate=48000,encoding-name=OPUS,payload=96";

/// A shm ring for one test, removed when the test ends.
struct TestRing {
    name: String,
}

impl TestRing {
    fn new(tag: &str) -> Self {
        let name = format!("rtpfeeder-test-{}-{tag}", std::process::id());
        let r = TestRing { name };
        let _ = std::fs::remove_file(r.path());
        r
    }
    fn path(&self) -> PathBuf {
        rtpmgr::shm_dir().join(&self.name)
    }
    fn backend(&self) -> Backend {
        Backend::shm(&self.name)
    }
    fn channel(&self) -> Channel {
        Channel::open(&self.backend()).expect("open shm ring")
    }
}

impl Drop for TestRing {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.path());
    }
}

/// A minimal RTP v2 packet: PT 96, the given seq and timestamp, `payload` filler bytes.
fn rtp_packet(seq: u16, ts: u32, payload: usize) -> Vec<u8> {
    let mut p = vec![0x80, 96];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
    p.extend((0..payload).map(|i| i as u8));
    p
}

/// Pushes `n` RTP packets, one every `gap`, as a 48 kHz stream (timestamps advance with `gap`).
fn produce(ch: &Channel, n: u16, gap: Duration) {
    ch.start().unwrap();
    let mut tx = ch.producer().unwrap();
    let ts_step = (gap.as_micros() as u64 * 48 / 1000) as u32;
    let t0 = Instant::now();
    for seq in 0..n {
        tx.write(&rtp_packet(seq, u32::from(seq) * ts_step, 160)).unwrap();
        // Pace against the start, so the stream's timing matches its timestamps.
        let next = t0 + gap * u32::from(seq + 1);
        if let Some(d) = next.checked_duration_since(Instant::now()) {
            thread::sleep(d);
        }
    }
}

fn feeder() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rtp-feeder"));
    // No /etc/rtpmgr/feeder.toml of the host may leak into a test.
    c.arg("--config").arg("/dev/null");
    c.env("RUST_LOG", "info");
    c
}

/// A running feeder whose stdout JSON lines arrive on a channel.
struct Running {
    child: Child,
    lines: mpsc::Receiver<serde_json::Value>,
    stderr: Arc<Mutex<String>>,
}

impl Running {
    fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn rtp-feeder");
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let v: serde_json::Value =
                    serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON: {line}: {e}"));
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let (err, sink) = (child.stderr.take().unwrap(), Arc::clone(&stderr));
        thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                eprintln!("  [feeder] {line}");
                sink.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        Running { child, lines, stderr }
    }

    /// Waits (bounded) for a JSON line that satisfies `pred`.
    fn wait_line(&self, what: &str, timeout: Duration, pred: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline
                .checked_duration_since(Instant::now())
                .unwrap_or_else(|| panic!("timed out waiting for {what}"));
            match self.lines.recv_timeout(left) {
                Ok(v) if pred(&v) => return v,
                Ok(_) => {}
                Err(e) => panic!("waiting for {what}: {e}; stderr:\n{}", self.stderr.lock().unwrap()),
            }
        }
    }

    fn sigterm(&self) {
        let ok = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status().unwrap().success();
        assert!(ok, "kill -TERM failed");
    }

    /// Waits (bounded) for exit; returns the exit code and the final JSON line.
    fn finish(mut self, timeout: Duration) -> (i32, serde_json::Value) {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("rtp-feeder did not exit within {timeout:?}; stderr:\n{}", self.stderr.lock().unwrap());
            }
            thread::sleep(Duration::from_millis(20));
        };
        let fin = self.wait_line("the final stats", Duration::from_secs(2), |v| v["type"] == "final");
        (status.code().unwrap_or(-1), fin)
    }
}

fn assert_ring_idle(ring: &TestRing) {
    let st = ring.channel().status().unwrap();
    assert_eq!((st.producing, st.consuming), (0, 0), "ring still holds slots: {st:?}");
}

/// Starts a built RX pipeline and returns its appsrc and a pusher on it (high watermark 512,
/// copy fallback), as the feeder does once the pipeline is PLAYING.
fn start_with_pusher(
    built: &rtp_feeder::pipeline::Built,
    counters: &Arc<Counters>,
) -> (rtp_feeder::appel::AppSrc, rtp_feeder::rx::RxPusher) {
    rtp_feeder::pipeline::start(&built.pipeline).unwrap();
    let appsrc = built.appsrc.clone().unwrap();
    let base_time = built.pipeline.base_time().unwrap().nseconds();
    let pusher = rtp_feeder::rx::RxPusher::new(
        appsrc.clone(),
        Arc::clone(counters),
        512,
        rtp_feeder::config::Fallback::Copy,
        base_time,
    );
    (appsrc, pusher)
}

fn cfg_from(args: &[&str]) -> Config {
    let cli = Cli::parse_from(std::iter::once("rtp-feeder").chain(args.iter().copied()));
    Config::merge(FileConfig::default(), "test".into(), &cli).unwrap()
}

#[test]
fn zero_copy_buffer_memory_is_the_slot_payload() {
    gst::init().unwrap();
    let ring = TestRing::new("zc");
    let ch = ring.channel();
    const N: u16 = 64;
    produce(&ch, N, Duration::ZERO);
    let mut rx = ch.consumer().unwrap();
    let slots = rx.pop_batch(N as usize).unwrap();
    assert_eq!(slots.len(), N as usize);
    let mut slot_addrs: Vec<usize> = slots.iter().map(|s| s.data().as_ptr() as usize).collect();

    let cfg = cfg_from(&[
        "--backend",
        "shm",
        "--shm-name",
        &ring.name,
        "--caps",
        CAPS,
        "--pipeline",
        "rtpjitterbuffer latency=20 ! fakesink name=out sync=false",
    ]);
    let counters = Arc::new(Counters::default());
    let built = rtp_feeder::pipeline::build(&cfg, 2048, &counters).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let out = built.pipeline.by_name("out").unwrap();
    let s = Arc::clone(&seen);
    out.static_pad("sink").unwrap().add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        let buf = info.buffer().unwrap();
        assert_eq!(buf.n_memory(), 1);
        s.lock().unwrap().push(buf.map_readable().unwrap().as_ptr() as usize);
        gst::PadProbeReturn::Ok
    });
    let (appsrc, mut pusher) = start_with_pusher(&built, &counters);
    for slot in slots {
        pusher.push(slot).unwrap();
    }
    appsrc.end_of_stream().unwrap();
    let bus = built.pipeline.bus().unwrap();
    let msg = bus
        .timed_pop_filtered(gst::ClockTime::from_seconds(5), &[gst::MessageType::Eos, gst::MessageType::Error])
        .unwrap();
    assert_eq!(msg.type_(), gst::MessageType::Eos, "{msg:?}");
    // While the pipeline exists the jitter buffer may still hold references; NULL frees them.
    built.pipeline.set_state(gst::State::Null).unwrap();
    drop(built);
    drop(pusher);
    drop(appsrc);

    let mut seen = seen.lock().unwrap().clone();
    slot_addrs.sort_unstable();
    seen.sort_unstable();
    assert_eq!(seen, slot_addrs, "every buffer at the sink must be backed by its slot's payload, not a copy");
    assert_eq!(counters.zero_copy.load(Relaxed), u64::from(N));
    assert_eq!(counters.fallback_copies.load(Relaxed), 0);
    assert_eq!(counters.held.load(Relaxed), 0, "GStreamer still references slots");
    rx.flush().unwrap();
    drop(rx);
    let st = ch.status().unwrap();
    assert_eq!(st.consuming, 0);
    assert_eq!(ch.stats().unwrap().released, u64::from(N));
}

/// Runs an rx feeder over `ring` with `extra` args, produces `n` packets, and returns the
/// final stats after SIGTERM.
fn run_rx(ring: &TestRing, n: u16, pipeline: &str, extra: &[&str]) -> serde_json::Value {
    let ch = ring.channel(); // create the ring before either side opens it
    let mut cmd = feeder();
    cmd.args(["--backend", "shm", "--shm-name", &ring.name, "--direction", "rx", "--caps", CAPS])
        .args(["--pipeline", pipeline, "--json", "--stats-interval", "0.2"])
        .args(extra);
    let run = Running::spawn(cmd);
    // The first periodic report comes from the control loop, i.e. after PLAYING.
    run.wait_line("the first stats line", Duration::from_secs(10), |v| v["type"] == "stats");
    produce(&ch, n, Duration::from_millis(2));
    let want = u64::from(n);
    run.wait_line("every packet at the sink", Duration::from_secs(10), |v| {
        v["sink_buffers"].as_u64().unwrap() + v["fallback_drops"].as_u64().unwrap() >= want
    });
    run.sigterm();
    let (code, fin) = run.finish(Duration::from_secs(10));
    assert_eq!(code, 0, "SIGTERM must drain and exit 0; final: {fin}");
    assert_ring_idle(ring);
    let stats = ch.stats().unwrap();
    assert_eq!(stats.popped_packets, want);
    assert_eq!(stats.released, want, "every popped slot released");
    fin
}

#[test]
fn rx_end_to_end_every_packet_then_sigterm_releases_all() {
    let ring = TestRing::new("rx");
    const N: u16 = 500;
    let fin = run_rx(&ring, N, "rtpjitterbuffer latency=50 ! appsink name=out", &[]);
    let n = u64::from(N);
    assert_eq!(fin["buffers_in"], n);
    assert_eq!(fin["buffers_out"], n);
    assert_eq!(fin["sink_buffers"], n, "every packet reaches the appsink");
    assert_eq!(fin["zero_copy"], n);
    assert_eq!(fin["fallback_copies"], 0);
    assert_eq!(fin["held"], 0);
    assert_eq!(fin["jitterbuffer"]["num_pushed"], n);
    assert_eq!(fin["jitterbuffer"]["num_lost"], 0);
    assert_eq!(fin["ring"]["consuming"], 0);
    assert!(fin["hold_avg_us"].as_f64().unwrap() > 0.0);
    // The jitter buffer holds each packet ~latency: the lent slots show it.
    assert!(fin["hold_max_us"].as_f64().unwrap() >= 40_000.0, "{fin}");
}

#[test]
fn rx_high_watermark_falls_back_to_copies_without_loss() {
    let ring = TestRing::new("copy");
    const N: u16 = 300;
    // 300 ms of latency at 500 pps holds ~150 slots; the watermark allows 16.
    let fin = run_rx(&ring, N, "rtpjitterbuffer latency=300 ! fakesink", &["--high-watermark", "16"]);
    let n = u64::from(N);
    assert_eq!(fin["sink_buffers"], n, "copies lose nothing");
    let copies = fin["fallback_copies"].as_u64().unwrap();
    assert!(copies > 0, "{fin}");
    assert_eq!(fin["zero_copy"].as_u64().unwrap() + copies, n);
    assert!(fin["held_max"].as_u64().unwrap() <= 16, "{fin}");
}

#[test]
fn rx_high_watermark_drop_mode_counts_drops() {
    let ring = TestRing::new("drop");
    const N: u16 = 300;
    let fin =
        run_rx(&ring, N, "rtpjitterbuffer latency=300 ! fakesink", &["--high-watermark", "16", "--fallback", "drop"]);
    let drops = fin["fallback_drops"].as_u64().unwrap();
    assert!(drops > 0, "{fin}");
    assert_eq!(fin["sink_buffers"].as_u64().unwrap() + drops, u64::from(N));
    assert_eq!(fin["status"], "down");
}

/// A ring consumer that sends every slot to `dst` over UDP until `stop`, then drains.
fn ring_to_udp(
    ch: Channel,
    dst: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut rx = ch.consumer().unwrap();
        loop {
            let slots = rx.pop_batch_wait(32, Some(Duration::from_millis(20))).unwrap();
            if slots.is_empty() && stop.load(Relaxed) {
                break;
            }
            for s in slots {
                sock.send_to(s.data(), dst).unwrap();
                sent.fetch_add(1, Relaxed);
            }
        }
    })
}

/// The independent receiver: udpsrc ! rtpjitterbuffer ! rtpopusdepay ! appsink, counting
/// Opus frames.
fn opus_receiver() -> (gst::Pipeline, u16, Arc<AtomicU64>) {
    gst::init().unwrap();
    let port = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let desc = format!(
        "udpsrc address=127.0.0.1 port={port} caps=\"{CAPS}\" ! rtpjitterbuffer latency=100 ! rtpopusdepay ! appsink name=frames sync=false"
    );
    let pipeline = gst::parse::launch(&desc).unwrap().downcast::<gst::Pipeline>().unwrap();
    let frames = Arc::new(AtomicU64::new(0));
    let sink = rtp_feeder::appel::AppSink::from_element(pipeline.by_name("frames").unwrap()).unwrap();
    let f = Arc::clone(&frames);
    sink.on_sample(move |_, sample| {
        assert!(sample.buffer().unwrap().size() > 0);
        f.fetch_add(1, Relaxed);
        Ok(gst::FlowSuccess::Ok)
    });
    pipeline.set_state(gst::State::Playing).unwrap();
    (pipeline, port, frames)
}

#[test]
fn tx_end_to_end_udp_receiver_gets_every_frame() {
    let ring = TestRing::new("tx");
    let ch = ring.channel();
    let (receiver, port, frames) = opus_receiver();
    let (stop, sent) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
    let consumer = ring_to_udp(ch.clone(), ([127, 0, 0, 1], port).into(), Arc::clone(&stop), Arc::clone(&sent));

    // A finite live source: ~1 s of audio, then EOS ends the feeder by itself.
    let mut cmd = feeder();
    cmd.args(["--backend", "shm", "--shm-name", &ring.name, "--direction", "tx", "--json", "--stats-interval", "0.5"]).args([
        "--pipeline",
        "audiotestsrc is-live=true num-buffers=50 samplesperbuffer=960 ! audio/x-raw,rate=48000 ! opusenc ! rtpopuspay pt=96",
    ]);
    let (code, fin) = Running::spawn(cmd).finish(Duration::from_secs(20));
    assert_eq!(code, 0, "{fin}");
    stop.store(true, Relaxed);
    consumer.join().unwrap();

    let pushed = fin["buffers_out"].as_u64().unwrap();
    assert!(pushed >= 45, "about 50 Opus frames expected: {fin}");
    assert_eq!(fin["buffers_in"].as_u64().unwrap(), pushed);
    assert_eq!(fin["ring_full_drops"], 0);
    assert_eq!(sent.load(Relaxed), pushed);
    let deadline = Instant::now() + Duration::from_secs(5);
    while frames.load(Relaxed) < pushed && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    receiver.set_state(gst::State::Null).unwrap();
    assert_eq!(frames.load(Relaxed), pushed, "the UDP receiver must get every frame the feeder pushed");
    assert_ring_idle(&ring);
}

#[test]
fn tx_sigterm_stops_a_live_source_and_exits_zero() {
    let ring = TestRing::new("txterm");
    let _ch = ring.channel();
    let mut cmd = feeder();
    cmd.args(["--backend", "shm", "--shm-name", &ring.name, "--direction", "tx", "--json", "--stats-interval", "0.2"])
        .args(["--pipeline", "audiotestsrc is-live=true ! opusenc ! rtpopuspay"]);
    let run = Running::spawn(cmd);
    run.wait_line("packets into the ring", Duration::from_secs(10), |v| v["buffers_out"].as_u64().unwrap() > 10);
    run.sigterm();
    let (code, fin) = run.finish(Duration::from_secs(10));
    assert_eq!(code, 0, "{fin}");
    // Nobody consumes this ring: the pushed slots wait READY, none is left half-written.
    assert_eq!(fin["ring"]["ready"].as_u64().unwrap(), fin["buffers_out"].as_u64().unwrap());
    assert_ring_idle(&ring);
}

#[test]
fn pipeline_error_names_the_element_and_exits_nonzero() {
    let ring = TestRing::new("err");
    let _ch = ring.channel();
    let mut cmd = feeder();
    cmd.args(["--backend", "shm", "--shm-name", &ring.name, "--direction", "rx", "--json"])
        .args(["--pipeline", "rtpjitterbuffer ! filesink name=badsink location=/nonexistent-dir/out.rtp"]);
    let run = Running::spawn(cmd);
    let stderr = Arc::clone(&run.stderr);
    let (code, fin) = run.finish(Duration::from_secs(10));
    assert_ne!(code, 0);
    assert_eq!(fin["status"], "error");
    let err = stderr.lock().unwrap().clone();
    assert!(
        err.contains("pipeline error from element /GstPipeline:rtp-feeder/") && err.contains("GstFileSink:badsink"),
        "{err}"
    );
    assert_ring_idle(&ring);
}

#[test]
fn check_config_validates_without_running() {
    let ok = feeder()
        .args(["--check-config", "--backend", "kernel", "--channel", "31", "--caps", CAPS])
        .args(["--pipeline", "rtpjitterbuffer latency=50 ! rtpopusdepay ! opusdec ! fakesink"])
        .output()
        .unwrap();
    // No /dev/rtp_mgr31 on the host: the check must not open the ring.
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let out = String::from_utf8_lossy(&ok.stdout);
    assert!(out.contains("config OK") && out.contains("rtpjitterbuffer") && out.contains("appsrc"), "{out}");

    let missing =
        feeder().args(["--check-config", "--pipeline", "rtpjitterbuffer ! nosuchdepay42 ! fakesink"]).output().unwrap();
    assert_eq!(missing.status.code(), Some(1));
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(err.contains("[rtp-feeder error]") && err.contains("nosuchdepay42"), "{err}");

    let dir = std::env::temp_dir().join(format!("rtpfeeder-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "pipeline = \"fakesink\"\nstats_intervall = 3\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rtp-feeder"))
        .arg("--config")
        .arg(&bad)
        .arg("--check-config")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("stats_intervall"));

    let tx_no_source =
        feeder().args(["--check-config", "--direction", "tx", "--pipeline", "rtpopuspay"]).output().unwrap();
    assert_eq!(tx_no_source.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&tx_no_source.stderr).contains("must start with a source"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn check_config_shows_and_checks_the_receive_section() {
    let dir = std::env::temp_dir().join(format!("rtpfeeder-receive-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let check = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        Command::new(env!("CARGO_BIN_EXE_rtp-feeder"))
            .arg("--config")
            .arg(&path)
            .arg("--check-config")
            .output()
            .unwrap()
    };
    // The check neither opens the ring (no module on the host) nor binds the port.
    let ok = check(
        "ssm.toml",
        "pipeline = \"fakesink\"\nchannel = 31\n[receive]\nport = 5004\ngroup = \"232.1.1.1\"\nssm_source = \"10.0.0.1\"\niface = \"eth0\"\n",
    );
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let out = String::from_utf8_lossy(&ok.stdout);
    assert!(out.contains("receive: kernel path, udp 232.1.1.1:5004 (joined 232.1.1.1 from 10.0.0.1 on eth0)"), "{out}");

    let bad = check("bad.toml", "pipeline = \"fakesink\"\n[receive]\nport = 5004\ngroup = \"10.9.9.9\"\n");
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("receive.group 10.9.9.9 is not a multicast address"), "{err}");
    let shm = check("shm.toml", "pipeline = \"fakesink\"\nbackend = \"shm\"\n[receive]\nport = 5004\n");
    assert_eq!(shm.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&shm.stderr).contains("[receive] needs the kernel backend"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn shipped_feeder_toml_checks() {
    let shipped =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../meta-rtpmgr/recipes-apps/rtp-feeder/files/feeder.toml");
    if !shipped.exists() {
        rtpmgr_testkit::skip("e2e::shipped_feeder_toml_checks", &format!("{} not present", shipped.display()));
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_rtp-feeder"))
        .arg("--config")
        .arg(&shipped)
        .arg("--check-config")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// An OutputPin that records every level written.
#[derive(Clone, Default)]
struct RecordingPin(Arc<Mutex<Vec<bool>>>);
impl embedded_hal::digital::ErrorType for RecordingPin {
    type Error = std::convert::Infallible;
}
impl embedded_hal::digital::OutputPin for RecordingPin {
    fn set_low(&mut self) -> Result<(), Self::Error> {
        self.0.lock().unwrap().push(false);
        Ok(())
    }
    fn set_high(&mut self) -> Result<(), Self::Error> {
        self.0.lock().unwrap().push(true);
        Ok(())
    }
}

#[test]
fn status_led_goes_up_while_streaming_and_down_at_exit() {
    gst::init().unwrap();
    let ring = TestRing::new("led");
    let ch = ring.channel();
    let cfg = cfg_from(&[
        "--backend",
        "shm",
        "--shm-name",
        &ring.name,
        "--caps",
        CAPS,
        "--pipeline",
        "rtpjitterbuffer latency=20 ! fakesink",
        "--stats-interval",
        "0",
    ]);
    let pin = RecordingPin::default();
    let led = rtp_feeder::status::StatusIndicator::new(pin.clone(), Instant::now());
    let stop = Arc::new(AtomicBool::new(false));
    let s = Arc::clone(&stop);
    let runner = thread::spawn(move || rtp_feeder::app::run_with(cfg, s, Some(led)).unwrap());
    thread::sleep(Duration::from_millis(500));
    assert_eq!(*pin.0.lock().unwrap(), vec![false], "down before any packet");
    // 3 s of packets: the LED must go up while they flow (polled, so a loaded host is fine).
    let producer = thread::spawn(move || produce(&ch, 1500, Duration::from_millis(2)));
    let deadline = Instant::now() + Duration::from_secs(3);
    while pin.0.lock().unwrap().len() < 2 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(*pin.0.lock().unwrap(), vec![false, true], "up while packets flow");
    producer.join().unwrap();
    stop.store(true, Relaxed);
    assert_eq!(runner.join().unwrap(), std::process::ExitCode::SUCCESS);
    assert_eq!(*pin.0.lock().unwrap(), vec![false, true, false], "down after the stop");
    assert_ring_idle(&ring);
}

/// The rtp_app binary next to rtp-feeder, if the workspace built it.
fn rtp_app() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_BIN_EXE_rtp-feeder")).with_file_name("rtp_app");
    if p.exists() {
        Some(p)
    } else {
        rtpmgr_testkit::skip("e2e (rtp_app tests)", &format!("{} not built (cargo build -p rtp-app)", p.display()));
        None
    }
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Waits (bounded) for a child's exit after SIGTERM; returns its exit code.
fn term_and_wait(child: &mut Child, what: &str) -> i32 {
    Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s.code().unwrap_or(-1);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{what} did not exit after SIGTERM");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn rx_end_to_end_rtp_app() {
    let Some(app) = rtp_app() else { return };
    let (ring, tx_ring) = (TestRing::new("rxapp"), TestRing::new("rxapp-tx"));
    let ch = ring.channel();
    let port = free_udp_port().to_string();
    const N: u64 = 400;
    let mut cmd = feeder();
    cmd.args(["--backend", "shm", "--shm-name", &ring.name, "--direction", "rx", "--caps", CAPS]).args([
        "--pipeline",
        "rtpjitterbuffer latency=50 ! appsink name=out",
        "--json",
        "--stats-interval",
        "0.2",
    ]);
    let run = Running::spawn(cmd);
    run.wait_line("the first stats line", Duration::from_secs(10), |v| v["type"] == "stats");
    // rtp_app rx: UDP -> ring (it starts the channel); rtp_app tx: generated RTP -> UDP.
    let mut rx = Command::new(&app)
        .args([
            "--mode", "rx", "--bind", "127.0.0.1", "--port", &port, "--backend", "shm", "--shm-name", &ring.name,
            "--interval", "0",
        ])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    thread::sleep(Duration::from_millis(300)); // let rx bind before the first datagram
    let tx = Command::new(&app)
        .args(["--mode", "tx", "--dst", "127.0.0.1", "--port", &port, "--rate", "500", "--payload", "160"])
        .args([
            "--pt", "96", "--clock-rate", "48000", "--backend", "shm", "--shm-name", &tx_ring.name, "--interval", "0",
        ])
        .args(["-l", &N.to_string()])
        .output()
        .unwrap();
    assert!(tx.status.success(), "rtp_app tx: {}", String::from_utf8_lossy(&tx.stderr));
    run.wait_line("every packet at the sink", Duration::from_secs(10), |v| v["sink_buffers"].as_u64().unwrap() >= N);
    run.sigterm();
    let (code, fin) = run.finish(Duration::from_secs(10));
    assert_eq!(term_and_wait(&mut rx, "rtp_app rx"), 0);
    assert_eq!(code, 0, "{fin}");
    assert_eq!(fin["sink_buffers"], N, "{fin}");
    assert_eq!(fin["zero_copy"], N);
    assert_eq!(fin["jitterbuffer"]["num_pushed"], N);
    assert_eq!(fin["jitterbuffer"]["num_lost"], 0);
    let st = ch.status().unwrap();
    assert_eq!((st.producing, st.consuming, st.ready), (0, 0, 0), "{st:?}");
    assert_eq!(ch.stats().unwrap().released, N);
}

#[test]
fn tx_end_to_end_rtp_app_source_ring() {
    let Some(app) = rtp_app() else { return };
    let ring = TestRing::new("txapp");
    let _ch = ring.channel();
    let (receiver, port, frames) = opus_receiver();
    // rtp_app sends whatever the feeder pushes into the ring.
    let mut sender = Command::new(&app)
        .args(["--mode", "tx", "--source", "ring", "--dst", "127.0.0.1", "--port", &port.to_string()])
        .args(["--backend", "shm", "--shm-name", &ring.name, "--interval", "0"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut cmd = feeder();
    cmd.args(["--backend", "shm", "--shm-name", &ring.name, "--direction", "tx", "--json", "--stats-interval", "0.5"]).args([
        "--pipeline",
        "audiotestsrc is-live=true num-buffers=50 samplesperbuffer=960 ! audio/x-raw,rate=48000 ! opusenc ! rtpopuspay pt=96",
    ]);
    let (code, fin) = Running::spawn(cmd).finish(Duration::from_secs(20));
    assert_eq!(code, 0, "{fin}");
    let pushed = fin["buffers_out"].as_u64().unwrap();
    assert!(pushed >= 45, "{fin}");
    assert_eq!(fin["ring_full_drops"], 0);
    let deadline = Instant::now() + Duration::from_secs(5);
    while frames.load(Relaxed) < pushed && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(term_and_wait(&mut sender, "rtp_app tx"), 0);
    receiver.set_state(gst::State::Null).unwrap();
    assert_eq!(frames.load(Relaxed), pushed, "the UDP receiver must get every frame the feeder pushed");
    assert_ring_idle(&ring);
}

#[test]
fn stalled_pipeline_bounds_appsrc_and_counts_queue_drops() {
    gst::init().unwrap();
    let ring = TestRing::new("stall");
    let ch = ring.channel();
    const N: u16 = 50;
    produce(&ch, N, Duration::ZERO);
    let mut rx = ch.consumer().unwrap();
    let slots = rx.pop_batch(N as usize).unwrap();

    let cfg = cfg_from(&[
        "--backend", "shm", "--shm-name", &ring.name, "--caps", CAPS, "--pipeline", "fakesink name=out",
        "--queue-max-buffers", "4",
    ]);
    let counters = Arc::new(Counters::default());
    let built = rtp_feeder::pipeline::build(&cfg, 2048, &counters).unwrap();
    // A stuck sink: its pad blocks every buffer until the probe is removed.
    let pad = built.pipeline.by_name("out").unwrap().static_pad("sink").unwrap();
    let block = pad.add_probe(gst::PadProbeType::BLOCK_DOWNSTREAM, |_, _| gst::PadProbeReturn::Ok).unwrap();
    let (appsrc, mut pusher) = start_with_pusher(&built, &counters);
    for slot in slots {
        pusher.push(slot).unwrap();
        thread::sleep(Duration::from_millis(1));
    }
    let drops = counters.queue_drops.load(Relaxed);
    // At most the queue (4) plus the one buffer blocked in the streaming thread got through.
    assert!(counters.pushed.load(Relaxed) <= 5, "pushed {}", counters.pushed.load(Relaxed));
    assert_eq!(counters.pushed.load(Relaxed) + drops, u64::from(N));
    assert!(appsrc.current_level_buffers() <= 4);
    // A dropped packet's slot went straight back: GStreamer holds only what it queued.
    assert_eq!(counters.held.load(Relaxed), counters.pushed.load(Relaxed));
    pad.remove_probe(block);
    appsrc.end_of_stream().unwrap();
    let bus = built.pipeline.bus().unwrap();
    let msg = bus
        .timed_pop_filtered(gst::ClockTime::from_seconds(5), &[gst::MessageType::Eos, gst::MessageType::Error])
        .unwrap();
    assert_eq!(msg.type_(), gst::MessageType::Eos, "{msg:?}");
    assert_eq!(counters.sink_buffers.load(Relaxed), counters.pushed.load(Relaxed));
    built.pipeline.set_state(gst::State::Null).unwrap();
    drop((built, pusher, appsrc));
    assert_eq!(counters.held.load(Relaxed), 0);
    rx.flush().unwrap();
    assert_eq!(ch.status().unwrap().consuming, 0);
}

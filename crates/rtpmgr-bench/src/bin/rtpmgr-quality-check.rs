//! rtpmgr-quality-check: the kernel's RFC 3550 receiver-report numbers (GET_QUALITY) against
//! GStreamer's `rtpsession` on the same impaired stream (device suite "gst", check 6).
//!
//! One RTP stream with known impairments (a sequence-number wrap, random and burst losses,
//! reordered and duplicated packets, send-time jitter, then a second SSRC) is sent over loopback
//! to a UDP socket attached to the channel (the kernel's RX path stamps and tracks every packet).
//! The packets are then popped from the ring and handed, in ring order, to `appsrc !
//! rtpsession` with each buffer timestamped at the slot's `arrival_ns`, so GStreamer sees the
//! same packets at the same arrival times as the kernel did. Both must agree with each other and
//! with a reference model of RFC 3550 A.1/A.3/A.8 in this file, per SSRC:
//!   - received, cumulative lost, expected (rtpsession's source stats; A.3),
//!   - interarrival jitter in timestamp units (A.8) — exactly, not within a tolerance: both
//!     convert an arrival time to timestamp units by truncating `t × rate / 10^9`, and the buffer
//!     times are the arrival times shifted by whole seconds, which moves every converted arrival
//!     by the same integer and leaves every transit difference, hence the jitter, unchanged,
//!   - the receiver report rtpsession generates (`sent-rb-*`: cumulative lost, extended highest
//!     sequence number, jitter), i.e. the numbers that go on the wire,
//!   - and, kernel against the model only (rtpsession has no such numbers), the SSRC change
//!     count, the base and extended highest sequence numbers and the longest loss burst.
//!
//! rtpsession runs with probation=0: the kernel (like RFC 3550 A.1 without MIN_SEQUENTIAL)
//! counts a stream from its first packet, while rtpsession's default probation of 2 would restart
//! its counts at the second.
//!
//! Exit status 0 when everything agrees, 1 on any difference (each printed), 2 when the check
//! could not run. `--gst-clock-rate` gives GStreamer a different clock rate than the kernel: the
//! jitter must then disagree, which shows that the comparison can fail.

use anyhow::{bail, Context, Result};
use clap::Parser;
use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;
use rtpmgr::{Backend, Channel, Config, DropPolicy, Quality, SocketDir, TxPacing};
use serde::Serialize;
use std::net::UdpSocket;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PAYLOAD_TYPE: u8 = 96;
const PAYLOAD_LEN: usize = 160;
/// The first stream starts this close to the 16-bit wrap, so the extended sequence numbers
/// (cycles) are part of what is compared.
const SEQ_A: u16 = 65_300;
/// Not 0: rtpsession starts a source at seq - 1 and would count a wrap for a first seq of 0.
const SEQ_B: u16 = 20_000;
const SSRC_A: u32 = 0x5eed_0a01;
const SSRC_B: u32 = 0x5eed_0b02;

#[derive(Debug, Parser)]
#[command(
    name = "rtpmgr-quality-check",
    version,
    max_term_width = 98,
    about = "The kernel's RFC 3550 stream quality (GET_QUALITY) against GStreamer's rtpsession on the same impaired stream"
)]
struct Args {
    /// Ring channel (kernel backend); it is stopped, reset and reconfigured.
    #[arg(long, default_value_t = 3, value_name = "n")]
    channel: u32,
    /// Packets of the first SSRC (the second sends half as many).
    #[arg(long, default_value_t = 400, value_parser = clap::value_parser!(u32).range(50..=1500))]
    packets: u32,
    /// RTP clock rate of the stream, set on the channel (SET_CLOCK_RATE) and in rtpsession's caps.
    #[arg(long, default_value_t = 90_000, value_name = "hz", value_parser = clap::value_parser!(u32).range(1000..=1_000_000))]
    clock_rate: u32,
    /// Clock rate given to GStreamer instead (a deliberately wrong one makes the jitter disagree).
    #[arg(long, value_name = "hz", value_parser = clap::value_parser!(u32).range(1000..=1_000_000))]
    gst_clock_rate: Option<u32>,
    /// Nominal packet interval, microseconds (the RTP timestamp advances by the same time).
    #[arg(long, default_value_t = 2000, value_name = "us")]
    interval_us: u64,
    /// Send-time jitter: each packet leaves up to this much later than its nominal time.
    #[arg(long, default_value_t = 1500, value_name = "us")]
    jitter_us: u64,
    /// Seed of the impairments.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// One JSON object on stdout instead of the text report.
    #[arg(long)]
    json: bool,
}

/// xorshift64*: a reproducible impairment pattern without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// True with probability `pct` percent.
    fn chance(&mut self, pct: u64) -> bool {
        self.next() % 100 < pct
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

/// One datagram to send: its RTP header fields and its nominal send slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Dgram {
    ssrc: u32,
    seq: u16,
    ts: u32,
    /// Nominal send time in packet intervals from the start of the stream.
    slot: u64,
}

/// What was done to a stream, for the report.
#[derive(Debug, Default, Clone, Serialize)]
struct Impairments {
    generated: u32,
    dropped: u32,
    longest_drop_burst: u32,
    reordered_pairs: u32,
    duplicated: u32,
}

/// The datagrams of one SSRC in send order: `n` packets from `seq0`, of which some are dropped
/// (3 % at random and one burst of 7), some pairs swapped (3 %) and some sent twice (2 %).
fn plan(rng: &mut Rng, ssrc: u32, seq0: u16, ts0: u32, ts_step: u32, n: u32, slot0: u64) -> (Vec<Dgram>, Impairments) {
    let mut imp = Impairments { generated: n, ..Default::default() };
    let burst_at = u64::from(n) / 4;
    let mut kept: Vec<Dgram> = vec![];
    let mut run = 0u32;
    for i in 0..u64::from(n) {
        let d = Dgram {
            ssrc,
            seq: seq0.wrapping_add(i as u16),
            ts: ts0.wrapping_add((i as u32).wrapping_mul(ts_step)),
            slot: slot0 + i,
        };
        // Never the first or last packet: the stream's base and highest sequence numbers stay
        // the ones sent first and last, which keeps the expectations readable.
        let in_burst = (burst_at..burst_at + 7).contains(&i);
        if i > 0 && i + 1 < u64::from(n) && (in_burst || rng.chance(3)) {
            imp.dropped += 1;
            run += 1;
            imp.longest_drop_burst = imp.longest_drop_burst.max(run);
            continue;
        }
        run = 0;
        kept.push(d);
    }
    let mut out: Vec<Dgram> = Vec::with_capacity(kept.len() + kept.len() / 16);
    let mut i = 0;
    while i < kept.len() {
        if i > 0 && i + 2 < kept.len() && rng.chance(3) {
            // Swapped: the later packet leaves first, the earlier one in its slot right after.
            let (a, b) = (kept[i], kept[i + 1]);
            out.push(Dgram { slot: a.slot, ..b });
            out.push(Dgram { slot: b.slot, ..a });
            imp.reordered_pairs += 1;
            i += 2;
            continue;
        }
        out.push(kept[i]);
        if i > 0 && rng.chance(2) {
            out.push(kept[i]);
            imp.duplicated += 1;
        }
        i += 1;
    }
    (out, imp)
}

fn rtp_packet(d: &Dgram) -> Vec<u8> {
    let mut p = Vec::with_capacity(12 + PAYLOAD_LEN);
    p.push(0x80);
    p.push(PAYLOAD_TYPE);
    p.extend_from_slice(&d.seq.to_be_bytes());
    p.extend_from_slice(&d.ts.to_be_bytes());
    p.extend_from_slice(&d.ssrc.to_be_bytes());
    p.extend((0..PAYLOAD_LEN).map(|i| (i as u8) ^ (d.seq as u8)));
    p
}

/// A packet as it came out of the ring: its bytes and the kernel's arrival time.
#[derive(Debug, Clone)]
struct Arrival {
    data: Vec<u8>,
    arrival_ns: u64,
}

impl Arrival {
    fn seq(&self) -> u16 {
        u16::from_be_bytes([self.data[2], self.data[3]])
    }
    fn ts(&self) -> u32 {
        u32::from_be_bytes([self.data[4], self.data[5], self.data[6], self.data[7]])
    }
    fn ssrc(&self) -> u32 {
        u32::from_be_bytes([self.data[8], self.data[9], self.data[10], self.data[11]])
    }
}

/// The numbers compared, of one SSRC, from one of the three sources.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
struct Numbers {
    ssrc: u32,
    received: u64,
    expected: u64,
    lost: i64,
    jitter: u32,
    /// Extended highest sequence number: the kernel's and the model's; rtpsession's from its
    /// receiver report.
    ext_max_seq: Option<u32>,
    base_seq: Option<u32>,
    max_loss_burst: Option<u32>,
    ssrc_changes: Option<u32>,
}

impl From<&Quality> for Numbers {
    fn from(q: &Quality) -> Numbers {
        Numbers {
            ssrc: q.ssrc,
            received: q.received,
            expected: q.expected,
            lost: q.lost,
            jitter: q.jitter,
            ext_max_seq: Some(q.ext_max_seq),
            base_seq: Some(q.base_seq),
            max_loss_burst: Some(q.max_loss_burst),
            ssrc_changes: Some(q.ssrc_changes),
        }
    }
}

/// RFC 3550 A.1 (without probation), A.3 and A.8 over arrivals in order, one SSRC at a time (a
/// new SSRC starts over), as a receiver report computes them; plus the longest forward gap.
#[derive(Debug, Default)]
struct Model {
    clock_rate: u32,
    ssrc: Option<u32>,
    ssrc_changes: u32,
    base_seq: u16,
    max_seq: u16,
    cycles: u32,
    received: u64,
    transit: Option<u32>,
    jitter_q4: u32,
    max_loss_burst: u32,
}

impl Model {
    fn new(clock_rate: u32) -> Model {
        Model { clock_rate, ..Default::default() }
    }

    fn track(&mut self, a: &Arrival) {
        let (seq, ssrc) = (a.seq(), a.ssrc());
        if self.ssrc != Some(ssrc) {
            if self.ssrc.is_some() {
                self.ssrc_changes += 1;
            }
            *self = Model { clock_rate: self.clock_rate, ssrc_changes: self.ssrc_changes, ..Default::default() };
            self.ssrc = Some(ssrc);
            self.base_seq = seq;
            self.max_seq = seq;
        } else {
            let delta = seq.wrapping_sub(self.max_seq) as i16;
            if delta > 0 {
                self.max_loss_burst = self.max_loss_burst.max(delta as u32 - 1);
                if seq < self.max_seq {
                    self.cycles += 1 << 16;
                }
                self.max_seq = seq;
            }
        }
        self.received += 1;
        // A.8: the arrival in timestamp units, truncated, as a 32-bit clock.
        let arrival = (u128::from(a.arrival_ns) * u128::from(self.clock_rate) / 1_000_000_000) as u32;
        let transit = arrival.wrapping_sub(a.ts());
        if let Some(prev) = self.transit {
            let d = (transit.wrapping_sub(prev) as i32).unsigned_abs();
            self.jitter_q4 = self.jitter_q4.wrapping_add(d).wrapping_sub((self.jitter_q4 + 8) >> 4);
        }
        self.transit = Some(transit);
    }

    fn numbers(&self) -> Numbers {
        let ext_max = self.cycles + u32::from(self.max_seq);
        let expected = u64::from(ext_max) - u64::from(self.base_seq) + 1;
        Numbers {
            ssrc: self.ssrc.unwrap_or(0),
            received: self.received,
            expected,
            lost: expected as i64 - self.received as i64,
            jitter: self.jitter_q4 >> 4,
            ext_max_seq: Some(ext_max),
            base_seq: Some(u32::from(self.base_seq)),
            max_loss_burst: Some(self.max_loss_burst),
            ssrc_changes: Some(self.ssrc_changes),
        }
    }
}

/// rtpsession's view of one source: its stats and the last receiver report block it generated.
#[derive(Debug, Default, Clone, Copy, Serialize)]
struct GstSource {
    numbers: Numbers,
    /// The report block of the last RTCP receiver report about this source (None: none sent).
    rr_lost: Option<i32>,
    rr_ext_max_seq: Option<u32>,
    rr_jitter: Option<u32>,
}

/// Feeds `arrivals` to `appsrc ! rtpsession ! fakesink`, each buffer at its arrival time shifted
/// by whole seconds, and returns rtpsession's source stats per SSRC once every buffer went
/// through and a receiver report about each SSRC was generated after its last packet: one whose
/// extended highest sequence number is the stream's last (`(ssrc, ext_max_seq)` of `streams`) and
/// whose loss and jitter are the final stats. After 10 s without one, the last report seen is
/// returned and the comparison shows the difference.
fn gstreamer_view(arrivals: &[Arrival], clock_rate: u32, streams: &[(u32, u32)]) -> Result<Vec<GstSource>> {
    gst::init().context("GStreamer init")?;
    if gst::ElementFactory::find("rtpsession").is_none() {
        bail!("GStreamer has no rtpsession element (gstreamer1.0-plugins-good, plugin rtpmanager)");
    }
    let caps = format!(
        "application/x-rtp,media=audio,clock-rate={clock_rate},encoding-name=L16,channels=1,payload={PAYLOAD_TYPE}"
    );
    // rtcp-min-interval 100 ms: receiver reports come often enough to catch the final one.
    let desc = format!(
        "appsrc name=src format=time caps=\"{caps}\" ! s.recv_rtp_sink \
         rtpsession name=s probation=0 rtcp-min-interval=100000000 \
         s.recv_rtp_src ! fakesink name=sink sync=false async=false \
         s.send_rtcp_src ! fakesink sync=false async=false"
    );
    let pipeline = gst::parse::launch(&desc)
        .with_context(|| format!("gst pipeline {desc}"))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| anyhow::anyhow!("not a pipeline: {desc}"))?;
    let by_name = |n: &str| pipeline.by_name(n).with_context(|| format!("no element {n} in {desc}"));
    let (src, session, sink) = (by_name("src")?, by_name("s")?, by_name("sink")?);
    let through = Arc::new(AtomicUsize::new(0));
    let counter = through.clone();
    sink.static_pad("sink").context("fakesink has no sink pad")?.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        counter.fetch_add(1, Ordering::SeqCst);
        gst::PadProbeReturn::Ok
    });
    pipeline.set_state(gst::State::Playing).context("pipeline to PLAYING")?;

    let base = arrivals.first().map_or(0, |a| a.arrival_ns / 1_000_000_000 * 1_000_000_000);
    for a in arrivals {
        let mut buf = gst::Buffer::from_mut_slice(a.data.clone());
        {
            let b = buf.get_mut().context("new buffer not writable")?;
            let t = gst::ClockTime::from_nseconds(a.arrival_ns - base);
            b.set_pts(t);
            b.set_dts(t);
        }
        let r = src.emit_by_name::<gst::FlowReturn>("push-buffer", &[&buf]);
        if r != gst::FlowReturn::Ok {
            bail!("appsrc push-buffer: {r:?}");
        }
    }

    let result = (|| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while through.load(Ordering::SeqCst) < arrivals.len() {
            if Instant::now() > deadline {
                bail!("rtpsession passed {} of {} packets on in 10 s", through.load(Ordering::SeqCst), arrivals.len());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // Every packet is accounted; wait for receiver reports that carry the final numbers.
        loop {
            let got = streams.iter().map(|&(s, _)| source_stats(&session, s)).collect::<Result<Vec<_>>>()?;
            let final_rr = got.iter().zip(streams).all(|(g, &(_, ext_max))| {
                g.rr_ext_max_seq == Some(ext_max)
                    && g.rr_lost.map(i64::from) == Some(g.numbers.lost)
                    && g.rr_jitter == Some(g.numbers.jitter)
            });
            if final_rr || Instant::now() > deadline {
                return Ok(got);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    })();
    pipeline.set_state(gst::State::Null).context("pipeline to NULL")?;
    result
}

/// The stats of `ssrc` in rtpsession's "stats" (its "source-stats" array).
fn source_stats(session: &gst::Element, ssrc: u32) -> Result<GstSource> {
    let stats = session.property::<gst::Structure>("stats");
    let sources = stats.get::<glib::ValueArray>("source-stats").context("rtpsession stats without source-stats")?;
    for v in sources.iter() {
        let s = v.get::<gst::Structure>().context("source-stats entry is not a structure")?;
        if s.get::<u32>("ssrc").ok() != Some(ssrc) || s.get::<bool>("internal").unwrap_or(true) {
            continue;
        }
        let u64_of = |f: &str| s.get::<u64>(f).with_context(|| format!("source stats without {f}: {s}"));
        let received = u64_of("packets-received")?;
        let lost = i64::from(s.get::<i32>("packets-lost").context("source stats without packets-lost")?);
        let sent_rb = s.get::<bool>("sent-rb").unwrap_or(false);
        // rtpsession keeps no base sequence number in its stats; its report's extended highest
        // sequence number and A.3's expected = highest - base + 1 give it.
        let expected = (received as i64 + lost).max(0) as u64;
        let rr_ext = if sent_rb { s.get::<u32>("sent-rb-exthighestseq").ok() } else { None };
        return Ok(GstSource {
            numbers: Numbers {
                ssrc,
                received,
                expected,
                lost,
                jitter: s.get::<u32>("jitter").context("source stats without jitter")?,
                ext_max_seq: rr_ext,
                base_seq: rr_ext.map(|e| (u64::from(e) + 1).saturating_sub(expected) as u32),
                max_loss_burst: None,
                ssrc_changes: None,
            },
            rr_lost: if sent_rb { s.get::<i32>("sent-rb-packetslost").ok() } else { None },
            rr_ext_max_seq: rr_ext,
            rr_jitter: if sent_rb { s.get::<u32>("sent-rb-jitter").ok() } else { None },
        });
    }
    bail!("rtpsession has no source {ssrc:#010x} (stats: {stats})")
}

/// The differences between the three views of one SSRC, as sentences.
fn compare(what: &str, kernel: &Numbers, gst: &GstSource, model: &Numbers) -> Vec<String> {
    let mut bad = vec![];
    let mut eq = |field: &str, k: Option<i128>, g: Option<i128>, m: Option<i128>| {
        let vals: Vec<i128> = [k, g, m].into_iter().flatten().collect();
        if vals.windows(2).any(|w| w[0] != w[1]) {
            let show = |v: Option<i128>| v.map_or("-".to_string(), |v| v.to_string());
            bad.push(format!("{what} {field}: kernel {}, gstreamer {}, model {}", show(k), show(g), show(m)));
        }
    };
    let n = |v: u64| Some(i128::from(v));
    let o = |v: Option<u32>| v.map(i128::from);
    let g = &gst.numbers;
    eq("ssrc", n(u64::from(kernel.ssrc)), n(u64::from(g.ssrc)), n(u64::from(model.ssrc)));
    eq("received", n(kernel.received), n(g.received), n(model.received));
    eq("expected", n(kernel.expected), n(g.expected), n(model.expected));
    eq("cumulative lost", Some(kernel.lost.into()), Some(g.lost.into()), Some(model.lost.into()));
    eq("jitter", n(u64::from(kernel.jitter)), n(u64::from(g.jitter)), n(u64::from(model.jitter)));
    eq("extended highest seq", o(kernel.ext_max_seq), o(gst.rr_ext_max_seq), o(model.ext_max_seq));
    eq("base seq", o(kernel.base_seq), o(g.base_seq), o(model.base_seq));
    eq("RR cumulative lost", Some(kernel.lost.into()), gst.rr_lost.map(i128::from), Some(model.lost.into()));
    eq("RR jitter", n(u64::from(kernel.jitter)), o(gst.rr_jitter), n(u64::from(model.jitter)));
    eq("max loss burst", o(kernel.max_loss_burst), None, o(model.max_loss_burst));
    eq("ssrc changes", o(kernel.ssrc_changes), None, o(model.ssrc_changes));
    if gst.rr_ext_max_seq.is_none() {
        bad.push(format!("{what}: rtpsession generated no receiver report about it within 10 s"));
    }
    bad
}

#[derive(Debug, Serialize)]
struct StreamReport {
    ssrc: String,
    impairments: Impairments,
    kernel: Numbers,
    gstreamer: GstSource,
    model: Numbers,
}

#[derive(Debug, Serialize)]
struct Report {
    channel: u32,
    clock_rate: u32,
    gst_clock_rate: u32,
    datagrams: usize,
    streams: Vec<StreamReport>,
    differences: Vec<String>,
    ok: bool,
}

/// Waits until the ring counted `n` pushed packets since its RESET.
fn wait_pushed(ch: &Channel, n: u64) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pushed = ch.stats()?.pushed_packets;
        if pushed >= n {
            return Ok(());
        }
        if Instant::now() > deadline {
            let s = ch.stats()?;
            bail!(
                "the ring counts {pushed} of {n} datagrams pushed after 10 s (overruns {}, drops {})",
                s.overruns,
                s.drops
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Sends `dgrams` to `dst` at their nominal slots plus up to `jitter` each (spikes of 10
/// intervals every 64 packets on top, so the jitter has something to measure).
fn send(tx: &UdpSocket, dgrams: &[Dgram], rng: &mut Rng, interval: Duration, jitter_us: u64) -> Result<()> {
    let t0 = Instant::now();
    for d in dgrams {
        let mut due = t0 + interval * (d.slot as u32) + Duration::from_micros(rng.below(jitter_us + 1));
        if d.slot % 64 == 63 {
            due += interval * 10;
        }
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        tx.send(&rtp_packet(d)).context("send to the attached socket")?;
    }
    Ok(())
}

fn run(args: &Args) -> Result<Report> {
    let gst_rate = args.gst_clock_rate.unwrap_or(args.clock_rate);
    let backend = Backend::kernel(args.channel);
    let ch = Channel::open(&backend).context("open the channel (kernel backend, module rtp_mgr loaded?)")?;
    let _ = ch.stop();
    ch.reset().context("reset the channel (nobody else may hold its slots)")?;
    ch.configure(&Config { ring_order: 12, slot_payload: 2048, drop_policy: DropPolicy::RejectNewest })?;
    ch.set_clock_rate(args.clock_rate)?;
    ch.start()?;

    let rx = UdpSocket::bind("127.0.0.1:0").context("bind the receive socket")?;
    ch.attach(&rx, SocketDir::Rx, TxPacing::UNPACED)?;
    let tx = UdpSocket::bind("127.0.0.1:0").context("bind the send socket")?;
    tx.connect(rx.local_addr()?).context("connect the send socket")?;

    let interval = Duration::from_micros(args.interval_us);
    let ts_step = (u128::from(args.clock_rate) * interval.as_nanos() / 1_000_000_000) as u32;
    let mut rng = Rng(args.seed.max(1));
    let (a, imp_a) = plan(&mut rng, SSRC_A, SEQ_A, 0x1000_0000, ts_step, args.packets, 0);
    let (b, imp_b) = plan(&mut rng, SSRC_B, SEQ_B, 0x7000_0000, ts_step, args.packets / 2, 0);

    send(&tx, &a, &mut rng, interval, args.jitter_us)?;
    wait_pushed(&ch, a.len() as u64)?;
    let kernel_a = ch.quality()?;
    send(&tx, &b, &mut rng, interval, args.jitter_us)?;
    wait_pushed(&ch, (a.len() + b.len()) as u64)?;
    let kernel_b = ch.quality()?;

    // Every packet, in ring order, with the arrival time the kernel tracked it at.
    let total = a.len() + b.len();
    let mut consumer = ch.consumer()?;
    let mut arrivals = Vec::with_capacity(total);
    let deadline = Instant::now() + Duration::from_secs(5);
    while arrivals.len() < total && Instant::now() < deadline {
        for s in consumer.pop_batch_wait(64, Some(Duration::from_millis(100)))? {
            arrivals.push(Arrival { data: s.data().to_vec(), arrival_ns: s.arrival_ns() });
        }
    }
    consumer.flush()?;
    let _ = ch.detach(SocketDir::Rx);
    let _ = ch.stop();
    if arrivals.len() != total {
        bail!("popped {} of {total} packets from the ring", arrivals.len());
    }
    if let Some(bad) = arrivals.iter().find(|a| a.data.len() != 12 + PAYLOAD_LEN) {
        bail!("a popped packet has {} bytes, sent {}", bad.data.len(), 12 + PAYLOAD_LEN);
    }

    let mut model = Model::new(args.clock_rate);
    arrivals[..a.len()].iter().for_each(|x| model.track(x));
    let model_a = model.numbers();
    arrivals[a.len()..].iter().for_each(|x| model.track(x));
    let model_b = model.numbers();

    let last = |n: &Numbers| n.ext_max_seq.unwrap_or(0);
    let gst = gstreamer_view(&arrivals, gst_rate, &[(SSRC_A, last(&model_a)), (SSRC_B, last(&model_b))])?;
    let (kernel_a, kernel_b) = (Numbers::from(&kernel_a), Numbers::from(&kernel_b));
    let mut differences = compare("SSRC A", &kernel_a, &gst[0], &model_a);
    differences.extend(compare("SSRC B", &kernel_b, &gst[1], &model_b));
    // The kernel's first reading was taken before the second SSRC: it must be of the first.
    if kernel_a.ssrc_changes != Some(0) || kernel_b.ssrc_changes != Some(1) {
        differences.push(format!(
            "ssrc changes: kernel {:?} then {:?}, want 0 then 1",
            kernel_a.ssrc_changes, kernel_b.ssrc_changes
        ));
    }
    Ok(Report {
        channel: args.channel,
        clock_rate: args.clock_rate,
        gst_clock_rate: gst_rate,
        datagrams: total,
        ok: differences.is_empty(),
        differences,
        streams: vec![
            StreamReport {
                ssrc: format!("{SSRC_A:#010x}"),
                impairments: imp_a,
                kernel: kernel_a,
                gstreamer: gst[0],
                model: model_a,
            },
            StreamReport {
                ssrc: format!("{SSRC_B:#010x}"),
                impairments: imp_b,
                kernel: kernel_b,
                gstreamer: gst[1],
                model: model_b,
            },
        ],
    })
}

fn print_text(r: &Report) {
    println!(
        "{} datagrams on channel {} at {} Hz (GStreamer told {} Hz)",
        r.datagrams, r.channel, r.clock_rate, r.gst_clock_rate
    );
    for s in &r.streams {
        let i = &s.impairments;
        println!(
            "SSRC {}: {} generated, {} dropped (longest run {}), {} pairs reordered, {} duplicated",
            s.ssrc, i.generated, i.dropped, i.longest_drop_burst, i.reordered_pairs, i.duplicated
        );
        let show = |v: Option<u32>| v.map_or("-".to_string(), |v| v.to_string());
        for (who, n) in [("kernel", &s.kernel), ("gstreamer", &s.gstreamer.numbers), ("model", &s.model)] {
            println!(
                "  {who:<9} received {:>4} expected {:>4} lost {:>3} jitter {:>5} ext-max-seq {:>6} base {:>5} burst {:>2} ssrc-changes {}",
                n.received,
                n.expected,
                n.lost,
                n.jitter,
                show(n.ext_max_seq),
                show(n.base_seq),
                show(n.max_loss_burst),
                show(n.ssrc_changes)
            );
        }
        let g = &s.gstreamer;
        println!(
            "  gstreamer receiver report: lost {} ext-max-seq {} jitter {}",
            g.rr_lost.map_or("-".into(), |v| v.to_string()),
            show(g.rr_ext_max_seq),
            show(g.rr_jitter)
        );
    }
    for d in &r.differences {
        println!("DIFFERENT {d}");
    }
    println!("{}", if r.ok { "kernel, GStreamer and the RFC 3550 model agree" } else { "the numbers differ" });
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(r) => {
            if args.json {
                match serde_json::to_string(&r) {
                    Ok(s) => println!("{s}"),
                    Err(e) => {
                        eprintln!("rtpmgr-quality-check: {e}");
                        return ExitCode::from(2);
                    }
                }
            } else {
                print_text(&r);
            }
            if r.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("rtpmgr-quality-check: {e:#}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream as it would come out of the ring: the plan's datagrams in send order, arriving
    /// at their nominal slot times plus a pseudo-random delay.
    fn arrivals(seed: u64) -> (Vec<Arrival>, usize) {
        let mut rng = Rng(seed);
        let (a, _) = plan(&mut rng, SSRC_A, SEQ_A, 0x1000_0000, 180, 300, 0);
        let (b, _) = plan(&mut rng, SSRC_B, SEQ_B, 0x7000_0000, 180, 150, 0);
        let t0 = 5_123_456_789_000u64;
        let out = a
            .iter()
            .chain(b.iter())
            .enumerate()
            .map(|(i, d)| Arrival { data: rtp_packet(d), arrival_ns: t0 + i as u64 * 2_000_000 + rng.below(3_000_000) })
            .collect();
        (out, a.len())
    }

    #[test]
    fn the_plan_has_every_impairment_and_wraps() {
        let mut rng = Rng(42);
        let (d, imp) = plan(&mut rng, 1, SEQ_A, 0, 180, 400, 0);
        assert!(imp.dropped >= 7 && imp.longest_drop_burst >= 7, "{imp:?}");
        assert!(imp.reordered_pairs > 0 && imp.duplicated > 0, "{imp:?}");
        assert_eq!(d.len() as u32, 400 - imp.dropped + imp.duplicated);
        assert_eq!((d[0].seq, d.last().unwrap().seq), (SEQ_A, SEQ_A.wrapping_add(399)));
    }

    #[test]
    fn the_model_counts_as_rfc3550_a3() {
        // seq 10, 11, 13 (12 lost), 13 again, then 12 late: 5 received, 4 expected, -1 lost.
        let mk = |seq: u16, t: u64| Arrival {
            data: rtp_packet(&Dgram { ssrc: 9, seq, ts: u32::from(seq) * 90, slot: 0 }),
            arrival_ns: t,
        };
        let mut m = Model::new(90_000);
        for (s, t) in [(10, 1_000_000), (11, 2_000_000), (13, 4_000_000), (13, 4_000_000), (12, 5_000_000)] {
            m.track(&mk(s, t));
        }
        let n = m.numbers();
        assert_eq!((n.received, n.expected, n.lost), (5, 4, -1));
        assert_eq!((n.ext_max_seq, n.base_seq, n.max_loss_burst), (Some(13), Some(10), Some(1)));
        // Transits 0, 0, 0, 0, 270 - 90 = +180 ticks for the late one: J = 180/16, truncated.
        assert_eq!(n.jitter, 11);
    }

    /// GStreamer's rtpsession, fed the same arrivals, must agree with the model exactly: this
    /// checks the harness (timestamps, probation, stats fields) without the kernel, on the host.
    #[test]
    fn rtpsession_agrees_with_the_model() {
        let (arr, split) = arrivals(7);
        let mut m = Model::new(90_000);
        arr[..split].iter().for_each(|x| m.track(x));
        let model_a = m.numbers();
        arr[split..].iter().for_each(|x| m.track(x));
        let model_b = m.numbers();
        let streams = [(SSRC_A, model_a.ext_max_seq.unwrap()), (SSRC_B, model_b.ext_max_seq.unwrap())];
        let gst = gstreamer_view(&arr, 90_000, &streams).expect("rtpsession stats");
        // The model stands in for the kernel here.
        let mut diff = compare("A", &model_a, &gst[0], &model_a);
        diff.extend(compare("B", &model_b, &gst[1], &model_b));
        assert!(diff.is_empty(), "{diff:#?}");
        assert!(model_a.jitter > 0 && model_a.lost > 0, "{model_a:?}");
        // A wrong clock rate on GStreamer's side shows up as a jitter difference.
        let wrong = gstreamer_view(&arr, 8_000, &streams).expect("rtpsession stats");
        let diff = compare("A", &model_a, &wrong[0], &model_a);
        assert!(diff.iter().any(|d| d.contains("jitter")), "{diff:#?}");
    }
}

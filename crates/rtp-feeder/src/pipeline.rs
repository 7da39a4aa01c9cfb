//! Builds the GStreamer side of the feeder:
//!
//! ```text
//! rx:  {appsrc name=rtpfeeder-src} ! {user bin, e.g. rtpjitterbuffer ! rtpopusdepay ! opusdec ! fakesink}
//! tx:  {user bin, e.g. audiotestsrc is-live=true ! opusenc ! rtpopuspay} ! {appsink name=rtpfeeder-sink}
//! ```
//!
//! The user's part is parsed with `gst::parse::bin_from_description_full` into a bin whose one
//! unlinked pad is ghosted; the feeder then links its appsrc or appsink to that pad. Parsing is
//! done the same way by `--check-config`, so a pipeline that checks also builds.
//!
//! Every queue the feeder owns is bounded (see [`rx_appsrc`] and [`tx_appsink`]), and pad
//! probes count what leaves appsrc and what reaches the pipeline's sinks.

use std::str::FromStr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use gst::prelude::*;
use gstreamer as gst;

use crate::appel::{self, AppSink, AppSrc};
use crate::config::{Config, Direction};
use crate::stats::{Counters, JitterStats};

/// Name of the feeder's appsrc (rx).
pub const APPSRC_NAME: &str = "rtpfeeder-src";
/// Name of the feeder's appsink (tx).
pub const APPSINK_NAME: &str = "rtpfeeder-sink";

/// A built pipeline and the feeder's end of it.
#[derive(Debug)]
pub struct Built {
    pub pipeline: gst::Pipeline,
    /// RX only.
    pub appsrc: Option<AppSrc>,
    /// TX only.
    pub appsink: Option<AppSink>,
}

/// Initializes GStreamer once per process.
pub fn init() -> Result<()> {
    gst::init().context("failed to initialize GStreamer")
}

/// Parses and checks the RX caps: the ring carries RTP, so anything but application/x-rtp
/// would make the first depayloader fail at run time instead of at `--check-config`.
pub fn rx_caps(caps: &str) -> Result<gst::Caps> {
    let parsed = gst::Caps::from_str(caps).map_err(|_| anyhow!("caps '{caps}' do not parse as GStreamer caps"))?;
    let s = parsed.structure(0).ok_or_else(|| anyhow!("caps '{caps}' are empty"))?;
    if parsed.size() != 1 || !parsed.is_fixed() || s.name() != "application/x-rtp" {
        bail!(
            "caps '{caps}' must be one fixed application/x-rtp structure (media, clock-rate, encoding-name, payload)"
        );
    }
    for field in ["media", "clock-rate"] {
        if !s.has_field(field) {
            bail!("caps '{caps}' lack '{field}', which depayloaders and rtpjitterbuffer need");
        }
    }
    Ok(parsed)
}

/// The `clock-rate` of RX caps (checked by [`rx_caps`]), Hz; None if it is not a positive int.
pub fn caps_clock_rate(caps: &gst::Caps) -> Option<u32> {
    let hz = caps.structure(0)?.get::<i32>("clock-rate").ok()?;
    u32::try_from(hz).ok().filter(|&hz| hz > 0)
}

/// Parses the user's part of the pipeline into a bin with its unlinked pad ghosted.
pub fn user_bin(desc: &str) -> Result<gst::Bin> {
    let mut ctx = gst::ParseContext::new();
    let parsed = gst::parse::bin_from_description_full(desc, true, Some(&mut ctx), gst::ParseFlags::FATAL_ERRORS);
    let elem = match parsed {
        Ok(e) => e,
        Err(err) => {
            // The context also lists elements that exist but failed otherwise (bad
            // property), so only trust it for the "no such element" error.
            if err.kind::<gst::ParseError>() == Some(gst::ParseError::NoSuchElement) {
                let missing = ctx.missing_elements();
                bail!("pipeline '{desc}' needs elements that are not installed: {} ({err})", missing.join(", "));
            }
            bail!("pipeline '{desc}' does not parse: {err}");
        }
    };
    elem.downcast::<gst::Bin>().map_err(|_| anyhow!("pipeline '{desc}' did not parse into a bin"))
}

/// Creates the RX appsrc.
///
/// - `is-live`, `format=time`: a live RTP source; PTS is set from each slot's arrival time.
/// - `max-buffers` (and `max-bytes` as its byte equivalent): bounded; the feeder checks the
///   level before each push and drops (counted as `queue_drops`) when it is reached.
/// - `block=false`: a blocking push would stall the thread that pops the ring, and with it the
///   ring, on a stuck pipeline.
/// - `leaky-type=upstream` (GStreamer 1.20): belt and braces; with `block=false` alone appsrc
///   queues past its limits (a reported pitfall), leaky makes it drop the new buffer instead,
///   which is the same choice the feeder's own check makes.
pub fn rx_appsrc(caps: &gst::Caps, max_buffers: u32, slot_payload: u32) -> Result<AppSrc> {
    let src = AppSrc::new(APPSRC_NAME)?;
    let e = src.element();
    e.set_property("caps", caps);
    e.set_property("is-live", true);
    e.set_property("format", gst::Format::Time);
    e.set_property("do-timestamp", false);
    e.set_property("block", false);
    appel::set_enum(e, "leaky-type", "upstream");
    e.set_property("max-buffers", u64::from(max_buffers));
    e.set_property("max-bytes", u64::from(max_buffers) * u64::from(slot_payload));
    e.set_property("max-time", 0u64);
    // Arrival-time PTS is already "now" when pushed: no extra latency of our own.
    e.set_property("min-latency", 0i64);
    appel::set_enum(e, "stream-type", "stream");
    Ok(src)
}

/// Creates the TX appsink: `sync=false` because a live source already paces the stream and
/// the ring consumer sends as soon as a slot is READY; `max-buffers` bounds the queue, and
/// `drop=false` because the new-sample handler pulls every sample at once (nothing waits).
pub fn tx_appsink(max_buffers: u32) -> Result<AppSink> {
    let sink = AppSink::new(APPSINK_NAME)?;
    let e = sink.element();
    e.set_property("sync", false);
    e.set_property("max-buffers", max_buffers);
    e.set_property("drop", false);
    e.set_property("caps", gst::Caps::builder("application/x-rtp").build());
    Ok(sink)
}

fn the_one_pad(bin: &gst::Bin, dir: gst::PadDirection, desc: &str) -> Result<gst::Pad> {
    let pads: Vec<_> = bin.pads().into_iter().filter(|p| p.direction() == dir).collect();
    match (pads.len(), dir) {
        (1, _) => Ok(pads[0].clone()),
        (0, gst::PadDirection::Sink) => {
            bail!("rx pipeline '{desc}' must start with an element that takes input (e.g. rtpjitterbuffer)")
        }
        (0, _) => bail!("tx pipeline '{desc}' must end with an element that produces RTP (e.g. rtpopuspay)"),
        (n, _) => bail!("pipeline '{desc}' has {n} unlinked {dir:?} pads; exactly one may connect to the ring"),
    }
}

/// Builds the whole pipeline for `cfg`; `slot_payload` sizes appsrc's byte bound.
pub fn build(cfg: &Config, slot_payload: u32, counters: &Arc<Counters>) -> Result<Built> {
    let bin = user_bin(&cfg.pipeline)?;
    let pipeline = gst::Pipeline::with_name("rtp-feeder");
    // The slots' arrival_ns is CLOCK_MONOTONIC; a monotonic system clock makes
    // "arrival - base_time" a running time without conversion.
    let clock = gst::SystemClock::obtain();
    clock.set_property("clock-type", gst::ClockType::Monotonic);
    pipeline.use_clock(Some(&clock));
    pipeline.add(&bin).context("failed to add the user bin")?;
    let built = match cfg.direction {
        Direction::Rx => {
            if bin.pads().iter().any(|p| p.direction() == gst::PadDirection::Src) {
                bail!("rx pipeline '{}' must end in a sink (e.g. fakesink, appsink, autoaudiosink); its output is unlinked", cfg.pipeline);
            }
            let sinkpad = the_one_pad(&bin, gst::PadDirection::Sink, &cfg.pipeline)?;
            let caps = rx_caps(&cfg.caps)?;
            let appsrc = rx_appsrc(&caps, cfg.queue_max_buffers, slot_payload)?;
            pipeline.add(appsrc.element()).context("failed to add appsrc")?;
            appsrc.element().static_pad("src").expect("appsrc has a src pad").link(&sinkpad).map_err(|e| {
                anyhow!("appsrc with caps '{}' cannot link to pipeline '{}': {e:?}", cfg.caps, cfg.pipeline)
            })?;
            count_appsrc_output(&appsrc, counters);
            drain_user_appsinks(&bin, cfg.queue_max_buffers);
            count_sink_buffers(&bin, counters);
            Built { pipeline, appsrc: Some(appsrc), appsink: None }
        }
        Direction::Tx => {
            if bin.pads().iter().any(|p| p.direction() == gst::PadDirection::Sink) {
                bail!(
                    "tx pipeline '{}' must start with a source (e.g. audiotestsrc is-live=true); its input is unlinked",
                    cfg.pipeline
                );
            }
            let srcpad = the_one_pad(&bin, gst::PadDirection::Src, &cfg.pipeline)?;
            let appsink = tx_appsink(cfg.queue_max_buffers)?;
            pipeline.add(appsink.element()).context("failed to add appsink")?;
            srcpad.link(&appsink.element().static_pad("sink").expect("appsink has a sink pad")).map_err(|e| {
                anyhow!("pipeline '{}' cannot link to the ring's appsink (application/x-rtp): {e:?}", cfg.pipeline)
            })?;
            Built { pipeline, appsrc: None, appsink: Some(appsink) }
        }
    };
    Ok(built)
}

/// Counts buffers leaving appsrc, single or in buffer lists (RX's default): `buffers_out` of
/// RX. Together with `pushed` it shows what is still queued in appsrc.
fn count_appsrc_output(appsrc: &AppSrc, counters: &Arc<Counters>) {
    let c = Arc::clone(counters);
    appsrc.element().static_pad("src").expect("appsrc has a src pad").add_probe(
        gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST,
        move |_, info| {
            let (n, bytes) = match &info.data {
                Some(gst::PadProbeData::Buffer(b)) => (1, b.size()),
                Some(gst::PadProbeData::BufferList(l)) => (l.len() as u64, l.calculate_size()),
                _ => (0, 0),
            };
            c.buffers_out.fetch_add(n, Relaxed);
            c.bytes_out.fetch_add(bytes as u64, Relaxed);
            gst::PadProbeReturn::Ok
        },
    );
}

/// Elements of the user bin that are sinks.
fn sinks(bin: &gst::Bin) -> Vec<gst::Element> {
    bin.iterate_recurse()
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.element_flags().contains(gst::ElementFlags::SINK) && !e.is::<gst::Bin>())
        .collect()
}

/// Counts every buffer that reaches a sink of the user's pipeline (`sink_buffers`): the
/// end-to-end number the tests and the QEMU demo check, independent of the sink type.
fn count_sink_buffers(bin: &gst::Bin, counters: &Arc<Counters>) {
    for sink in sinks(bin) {
        for pad in sink.sink_pads() {
            let c = Arc::clone(counters);
            pad.add_probe(gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST, move |_, info| {
                let n = match &info.data {
                    Some(gst::PadProbeData::Buffer(_)) => 1,
                    Some(gst::PadProbeData::BufferList(l)) => l.len() as u64,
                    _ => 0,
                };
                c.sink_buffers.fetch_add(n, Relaxed);
                gst::PadProbeReturn::Ok
            });
        }
    }
}

/// An appsink at the end of an RX pipeline has no reader in this process; unread, its queue
/// would grow without bound (max-buffers defaults to unlimited) and hold ring slots forever.
/// Bound it and pull (and free) every sample as it arrives.
fn drain_user_appsinks(bin: &gst::Bin, max_buffers: u32) {
    for sink in sinks(bin) {
        if let Some(appsink) = AppSink::from_element(sink) {
            appsink.element().set_property("max-buffers", max_buffers);
            appsink.element().set_property("drop", true);
            // Pulled and dropped at once: the sample (and its slot) is freed right here.
            appsink.on_sample(|_, _sample| Ok(gst::FlowSuccess::Ok));
        }
    }
}

/// Reads the `stats` of the first rtpjitterbuffer in the pipeline, if it has one.
pub fn jitterbuffer_stats(pipeline: &gst::Pipeline) -> Option<JitterStats> {
    let jb = pipeline
        .iterate_recurse()
        .into_iter()
        .filter_map(Result::ok)
        .find(|e| e.factory().is_some_and(|f| f.name() == "rtpjitterbuffer"))?;
    let s = jb.property::<gst::Structure>("stats");
    let get = |k: &str| s.get::<u64>(k).unwrap_or(0);
    Some(JitterStats {
        element: jb.name().to_string(),
        num_pushed: get("num-pushed"),
        num_lost: get("num-lost"),
        num_late: get("num-late"),
        num_duplicates: get("num-duplicates"),
        avg_jitter_ns: get("avg-jitter"),
    })
}

/// How long the pipeline's sources may take to reach PLAYING.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Sets the pipeline to PLAYING and waits until its sources (appsrc for RX) are PLAYING.
///
/// Not the whole pipeline: with a live source the sinks complete their change to PLAYING only
/// once the first buffer reached them, so waiting for that before pushing would deadlock.
/// A source in PLAYING accepts buffers, and the pipeline's base time is set by then (it is
/// chosen before the children go from PAUSED to PLAYING). An element error on the way is
/// returned with the element's name.
pub fn start(pipeline: &gst::Pipeline) -> Result<()> {
    let bus = pipeline.bus().expect("a pipeline has a bus");
    let res = pipeline.set_state(gst::State::Playing);
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error]) {
            return Err(error_from_message(&msg));
        }
        if res.is_err() {
            bail!("failed to set the pipeline to PLAYING (no element said why)");
        }
        let sources: Vec<gst::Element> = pipeline.iterate_sources().into_iter().filter_map(Result::ok).collect();
        if !sources.is_empty() && sources.iter().all(|e| e.current_state() == gst::State::Playing) {
            return Ok(());
        }
        if Instant::now() > deadline {
            let (_, current, pending) = pipeline.state(gst::ClockTime::ZERO);
            bail!("the pipeline's sources did not reach PLAYING within {START_TIMEOUT:?} (pipeline {current:?}, pending {pending:?})");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// "pipeline error from element <path>: <message> (<debug>)".
pub fn error_from_message(msg: &gst::Message) -> anyhow::Error {
    match msg.view() {
        gst::MessageView::Error(err) => {
            let src = msg.src().map_or_else(|| "<unknown element>".to_string(), |s| s.path_string().to_string());
            let debug = err.debug().map(|d| format!(" ({d})")).unwrap_or_default();
            anyhow!("pipeline error from element {src}: {}{debug}", err.error())
        }
        _ => anyhow!("unexpected message {:?}", msg.type_()),
    }
}

/// `--check-config`: builds the pipeline (elements exist, properties parse, pads link) and
/// sets nothing to a running state. Returns a one-line summary.
pub fn check(cfg: &Config) -> Result<String> {
    let counters = Arc::new(Counters::default());
    let built = build(cfg, 2048, &counters)?;
    let elements: Vec<String> = built
        .pipeline
        .iterate_recurse()
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| !e.is::<gst::Bin>())
        // The feeder's appsrc/appsink come from builders, which leave no factory behind.
        .map(|e| {
            e.factory().map_or_else(|| e.type_().name().to_lowercase().replace("gst", ""), |f| f.name().to_string())
        })
        .collect();
    let receive = match &cfg.receive {
        // The socket is not opened here (the port may be the running service's).
        Some(r) => format!("; receive: kernel path, {}", r.spec.describe()),
        None => String::new(),
    };
    Ok(format!("{} elements: {}{receive}", elements.len(), elements.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_checks() {
        init().unwrap();
        rx_caps(crate::config::DEFAULT_CAPS).unwrap();
        assert!(rx_caps("audio/x-raw,rate=48000").unwrap_err().to_string().contains("application/x-rtp"));
        assert!(rx_caps("application/x-rtp,media=audio").unwrap_err().to_string().contains("clock-rate"));
        let opus = rx_caps("application/x-rtp,media=audio,clock-rate=48000,encoding-name=OPUS,payload=96").unwrap();
        assert_eq!(caps_clock_rate(&opus), Some(48000));
        let video = rx_caps("application/x-rtp,media=video,clock-rate=90000,encoding-name=H264").unwrap();
        assert_eq!(caps_clock_rate(&video), Some(90000));
        let bad = rx_caps("application/x-rtp,media=audio,clock-rate=-8000").unwrap();
        assert_eq!(caps_clock_rate(&bad), None);
        assert!(rx_caps("not caps,,,").is_err());
    }

    #[test]
    fn user_bin_reports_missing_elements() {
        init().unwrap();
        let e = user_bin("rtpjitterbuffer ! nosuchelement42 ! fakesink").unwrap_err();
        assert!(e.to_string().contains("nosuchelement42"), "{e}");
        let e = user_bin("fakesink nosuchprop=1").unwrap_err();
        assert!(e.to_string().contains("does not parse"), "{e}");
    }
}

//! The feeder's lifecycle: open the ring, build and start the pipeline, move packets, report,
//! and shut down cleanly.
//!
//! ```text
//! rx:  ring --pop batch (appsrc need-data, in appsrc's streaming thread)--> appsrc ! user pipeline
//! tx:  user pipeline ! appsink --new-sample (streaming thread)--> reserve/copy/push --> ring
//! ```
//!
//! The main thread runs the control loop: bus messages, SIGTERM/SIGINT, the `-t` deadline,
//! periodic stats and the status LED, all polled every [`TICK`].
//!
//! Shutdown on a signal or the deadline: stop popping, send EOS, wait up to `drain_timeout`
//! for it to come out of the pipeline, set the pipeline to NULL (which frees every buffer and
//! with it every lent slot), flush the batched slot releases, and report. A pipeline error
//! skips the drain, is logged with the element that posted it, and makes the exit status
//! non-zero (the init system restarts the feeder).

use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use embedded_hal::digital::OutputPin;
use gst::prelude::*;
use gstreamer as gst;

use crate::appel::AppSink;
use crate::config::{Config, Direction};
use crate::pipeline::{self, Built};
use crate::ring::{KernelReceiver, RingHandle, TxOutcome, TxRing};
use crate::rx::{RxFeed, RxPusher};
use crate::stats::{Counters, JitterStats, ReceiveView, RingView, Snapshot};
use crate::status::{Activity, ActivityWatch, StatusIndicator, StreamStatus};

/// Control-loop period: bounds the latency of SIGTERM handling, the LED blink and stats.
pub const TICK: Duration = Duration::from_millis(50);
/// How long one ring pop in appsrc's need-data waits for a READY slot before it re-checks the
/// stop flag and appsrc's pad.
const POP_WAIT: Duration = Duration::from_millis(50);

/// How a run ended.
#[derive(Debug)]
enum End {
    /// SIGTERM/SIGINT or the `-t` deadline: drain, then stop.
    Stop,
    /// The pipeline ended by itself (a finite source): already drained.
    Eos,
    /// A pipeline or ring error: stop at once, exit non-zero.
    Fatal(anyhow::Error),
}

/// Runs the feeder until a signal, the deadline or an error. `Ok(FAILURE)` after a runtime
/// error that was already logged; `Err` for setup errors (the caller prints them).
pub fn run(cfg: Config) -> Result<ExitCode> {
    pipeline::init()?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        // A second signal while draining exits at once with 130; the ring reclaims every slot
        // of a closed file, so nothing leaks. Registered first: it must see the flag unset.
        signal_hook::flag::register_conditional_shutdown(sig, 130, Arc::clone(&stop))
            .context("failed to install the signal handler")?;
        signal_hook::flag::register(sig, Arc::clone(&stop)).context("failed to install the signal handler")?;
    }
    // $NOTIFY_SOCKET/$WATCHDOG_USEC, [tuning]/--rt-priority/--cpu (checked now), --ready-file.
    rtpmgr_service::init(&cfg.service)?;
    let led = match &cfg.led {
        Some(l) => Some(StatusIndicator::new(crate::led::open(l)?, Instant::now())),
        None => None,
    };
    let r = run_with(cfg, stop, led);
    rtpmgr_service::stopping();
    r
}

/// [`run`] with the stop flag and the LED supplied, so tests can drive both.
pub fn run_with<P: OutputPin>(cfg: Config, stop: Arc<AtomicBool>, led: Option<StatusIndicator<P>>) -> Result<ExitCode> {
    pipeline::init()?;
    let ring = RingHandle::open(&cfg.ring)?;
    let mut s = Session {
        cfg: &cfg,
        ring: &ring,
        counters: Arc::new(Counters::default()),
        led,
        started: Instant::now(),
        hwm: 0,
        receiver: None,
        final_receive: None,
    };
    match cfg.direction {
        Direction::Rx => s.run_rx(&stop),
        Direction::Tx => s.run_tx(&stop),
    }
}

/// State shared by the phases of one run.
struct Session<'a, P: OutputPin> {
    cfg: &'a Config,
    ring: &'a RingHandle,
    counters: Arc<Counters>,
    led: Option<StatusIndicator<P>>,
    started: Instant,
    /// RX high watermark (0 for TX).
    hwm: u32,
    /// RX with `[receive]`: the socket attached to the channel, while it is.
    receiver: Option<KernelReceiver>,
    /// Its counters at the detach, for the final report.
    final_receive: Option<ReceiveView>,
}

impl<P: OutputPin> Session<'_, P> {
    fn run_rx(&mut self, stop: &AtomicBool) -> Result<ExitCode> {
        let cfg = self.cfg;
        let rx = match &cfg.receive {
            Some(_) => self.ring.receiving_consumer()?,
            None => self.ring.consumer()?,
        };
        let slot_count = rx.slot_count();
        let hwm = cfg.high_watermark.unwrap_or(slot_count / 2).max(1);
        if hwm >= slot_count {
            bail!("high_watermark = {hwm} must be below the ring's {slot_count} slots, or the producer can be starved of FREE slots");
        }
        self.hwm = hwm;
        let built = pipeline::build(cfg, rx.slot_payload(), &self.counters)?;
        let appsrc = built.appsrc.clone().expect("an rx pipeline has an appsrc");
        log::info!(
            "rx: {} -> appsrc ({}) -> {} | {slot_count} slots of {} B, high watermark {hwm}, fallback {:?}",
            self.ring.describe(),
            cfg.caps,
            cfg.pipeline,
            rx.slot_payload(),
            cfg.fallback
        );
        // The kernel computes the stream's RFC 3550 jitter (rtp_app top, GET_QUALITY) in RTP
        // timestamp units: the caps' clock-rate gives them a length. Not fatal: only the jitter
        // figure depends on it.
        if let Some(hz) = pipeline::rx_caps(&cfg.caps).ok().as_ref().and_then(pipeline::caps_clock_rate) {
            match self.ring.set_clock_rate(hz) {
                Ok(true) => {
                    log::info!("rx: {}: RTP clock rate {hz} Hz (from the caps), for its jitter", self.ring.describe())
                }
                Ok(false) => {}
                Err(e) => log::warn!("{e:#}: its jitter stays unknown"),
            }
        }
        // [receive]: from here on the kernel pushes every datagram of the socket into the ring.
        self.receiver = match &cfg.receive {
            Some(r) => {
                let k = self.ring.attach_receiver(r)?;
                log::info!(
                    "receive: attach mode kernel: the kernel receives {} into {} (no rtp_app process; wake-up: {} \
                     slots or {} us)",
                    k.describe(),
                    self.ring.describe(),
                    r.wakeup.slots,
                    r.wakeup.usecs
                );
                Some(k)
            }
            None => None,
        };
        // appsrc asks for data (need-data) from its streaming thread as soon as the pipeline is
        // PLAYING: the feed is attached first. PTS use the base time, read in the handler.
        let mut pusher = RxPusher::new(appsrc.clone(), Arc::clone(&self.counters), u64::from(hwm), cfg.fallback, 0);
        pusher.buffer_lists = cfg.buffer_lists;
        let feed = RxFeed::attach(rx, pusher, cfg.batch, POP_WAIT);
        let end = match pipeline::start(&built.pipeline) {
            Err(e) => End::Fatal(e),
            Ok(()) => self.control_loop(&built, stop, || feed.has_ended()),
        };
        feed.stop();
        // Nothing more arrives once the socket is detached; the final report shows what came.
        let receiver = self.receiver.take();
        self.final_receive = receiver.as_ref().and_then(|k| k.view().ok());
        let end = match receiver.map(KernelReceiver::detach) {
            Some(Err(e)) if !matches!(end, End::Fatal(_)) => End::Fatal(e),
            _ => end,
        };
        if matches!(end, End::Stop) {
            // EOS goes downstream after the buffers still queued in appsrc.
            let _ = appsrc.end_of_stream();
        }
        drop(appsrc);
        let (end, jitter) = self.shutdown(built, end);
        // The pipeline is stopped: the handler has returned and will not run again.
        let (rx, feed_result) = feed.finish();
        let end = match (end, feed_result) {
            (End::Fatal(e), _) => End::Fatal(e),
            (_, Err(e)) => End::Fatal(e),
            (end, Ok(())) => end,
        };
        // Every GStreamer buffer is gone: give the batched releases back to the ring now, then
        // unmap, so the final status shows what the feeder leaves behind.
        if let Some(rx) = rx {
            if let Err(e) = rx.flush() {
                log::warn!("{e:#}");
            }
        }
        self.finish(end, jitter)
    }

    fn run_tx(&mut self, stop: &AtomicBool) -> Result<ExitCode> {
        let cfg = self.cfg;
        let tx = self.ring.producer()?;
        let slot_payload = tx.slot_payload();
        let built = pipeline::build(cfg, slot_payload, &self.counters)?;
        log::info!("tx: {} -> appsink -> {} | slots of {slot_payload} B", cfg.pipeline, self.ring.describe());
        let tx = Arc::new(Mutex::new(tx));
        let appsink = built.appsink.clone().expect("a tx pipeline has an appsink");
        install_tx_callbacks(&appsink, Arc::clone(&tx), Arc::clone(&self.counters));
        drop(appsink);
        let end = match pipeline::start(&built.pipeline) {
            Err(e) => End::Fatal(e),
            Ok(()) => self.control_loop(&built, stop, || false),
        };
        if matches!(end, End::Stop) {
            // EOS at the sources: a live source stops and EOS flows down to appsink.
            built.pipeline.send_event(gst::event::Eos::new());
        }
        let (end, jitter) = self.shutdown(built, end);
        // The appsink callback (and its clone of the producer) went with the pipeline.
        drop(tx);
        self.finish(end, jitter)
    }

    /// Polls the bus, the stop flag and the deadline; reports stats and drives the LED.
    /// `feeder_gone` says whether the RX feed ended by itself (a ring error).
    fn control_loop(&mut self, built: &Built, stop: &AtomicBool, feeder_gone: impl Fn() -> bool) -> End {
        let cfg = self.cfg;
        // The sources are PLAYING (and the [receive] socket is attached): the feeder works.
        rtpmgr_service::ready(&format!("{:?}: {} | {}", cfg.direction, self.ring.describe(), cfg.pipeline));
        // RX pings the watchdog from appsrc's streaming thread (need-data); TX has no loop of its
        // own (appsink's callback runs only when a sample comes), so this loop pings for it.
        let pings_here = cfg.direction == Direction::Tx;
        let bus = built.pipeline.bus().expect("a pipeline has a bus");
        let deadline = cfg.run_for.map(|d| self.started + d);
        let mut next_stats = cfg.stats_interval.map(|i| Instant::now() + i);
        let mut watch = ActivityWatch::new(cfg.led_idle_timeout, cfg.led_error_hold);
        let mut last_in = (Instant::now(), 0u64);
        let mut last_ring: Option<RingView> = None;
        loop {
            if pings_here {
                rtpmgr_service::watchdog_tick();
            }
            if let Some(msg) = bus.timed_pop(gst::ClockTime::from_nseconds(TICK.as_nanos() as u64)) {
                match msg.view() {
                    gst::MessageView::Error(_) => return End::Fatal(pipeline::error_from_message(&msg)),
                    gst::MessageView::Warning(w) => {
                        let src = msg.src().map(|s| s.path_string().to_string()).unwrap_or_default();
                        log::warn!("pipeline warning from element {src}: {}", w.error());
                    }
                    gst::MessageView::Eos(_) => {
                        log::info!("end of stream");
                        return End::Eos;
                    }
                    _ => {}
                }
            }
            if feeder_gone() {
                return End::Stop; // the caller takes the feeder's error from its result
            }
            let now = Instant::now();
            if stop.load(Relaxed) {
                log::info!("stop requested: draining");
                rtpmgr_service::stopping();
                return End::Stop;
            }
            if deadline.is_some_and(|d| now >= d) {
                log::info!("run time of {:?} reached: draining", cfg.run_for.unwrap_or_default());
                return End::Stop;
            }
            // RX: buffers that left appsrc; TX: slots pushed into the ring.
            let packets = self.counters.buffers_out.load(Relaxed);
            let status = watch.update(now, Activity { packets, lost: self.counters.lost() }, false);
            if let Some(l) = self.led.as_mut() {
                l.set(status, now);
                l.tick(now);
            }
            if next_stats.is_some_and(|t| now >= t) {
                next_stats = cfg.stats_interval.map(|i| now + i);
                let mut snap =
                    Snapshot::take("stats", cfg.direction, &self.counters, self.started, u64::from(self.hwm));
                snap.status = status;
                snap.rate_pps =
                    (snap.buffers_in - last_in.1) as f64 / now.duration_since(last_in.0).as_secs_f64().max(1e-9);
                last_in = (now, snap.buffers_in);
                snap.jitterbuffer = pipeline::jitterbuffer_stats(&built.pipeline);
                snap.ring = self.ring.view();
                snap.receive = self.receiver.as_ref().and_then(|k| k.view().ok());
                if let Some(k) = &self.receiver {
                    // An administrator's DETACH (or a module reload) ends the stream: say so, and
                    // exit so the init system restarts the feeder with a fresh socket.
                    if !k.is_attached().unwrap_or(true) {
                        return End::Fatal(anyhow::anyhow!(
                            "the [receive] socket {} was detached from {} behind the feeder's back",
                            k.describe(),
                            self.ring.describe()
                        ));
                    }
                }
                if let (Some(prev), Some(cur)) = (&last_ring, &snap.ring) {
                    // The ring starving is never silent: its producer was refused FREE slots.
                    if cur.overruns > prev.overruns {
                        log::warn!(
                            "ring full: its producer lost {} packets since the last report (GStreamer holds {} slots)",
                            cur.overruns - prev.overruns,
                            snap.held
                        );
                    }
                }
                last_ring = snap.ring.clone();
                self.report(&snap);
            }
        }
    }

    /// Waits for EOS (after [`End::Stop`]), reads the jitter buffer, sets the pipeline to NULL
    /// and drops it, so that every buffer (and every lent slot) is freed.
    fn shutdown(&mut self, built: Built, end: End) -> (End, Option<JitterStats>) {
        let mut end = end;
        if matches!(end, End::Stop) {
            let t0 = Instant::now();
            let bus = built.pipeline.bus().expect("a pipeline has a bus");
            match bus.timed_pop_filtered(
                gst::ClockTime::from_nseconds(self.cfg.drain_timeout.as_nanos() as u64),
                &[gst::MessageType::Eos, gst::MessageType::Error],
            ) {
                Some(msg) if msg.type_() == gst::MessageType::Error => {
                    end = End::Fatal(pipeline::error_from_message(&msg))
                }
                Some(_) => log::info!("drained in {:.0} ms", t0.elapsed().as_secs_f64() * 1e3),
                None => log::warn!(
                    "EOS did not come out of the pipeline within {:?}; stopping it anyway",
                    self.cfg.drain_timeout
                ),
            }
        }
        // Read the jitter buffer before NULL resets it.
        let jitter = pipeline::jitterbuffer_stats(&built.pipeline);
        if let Err(e) = built.pipeline.set_state(gst::State::Null) {
            log::error!("failed to set the pipeline to NULL: {e}");
        }
        drop(built);
        (end, jitter)
    }

    /// Final report, LED, exit status.
    fn finish(&mut self, end: End, jitter: Option<JitterStats>) -> Result<ExitCode> {
        let held = self.counters.held.load(Relaxed);
        if held != 0 {
            log::error!("{held} ring slots are still referenced by GStreamer buffers after shutdown");
        }
        let fatal = match end {
            End::Fatal(e) => Some(e),
            End::Stop | End::Eos => None,
        };
        let mut snap = Snapshot::take("final", self.cfg.direction, &self.counters, self.started, u64::from(self.hwm));
        snap.rate_pps = snap.buffers_in as f64 / snap.uptime_s.max(1e-9);
        snap.jitterbuffer = jitter;
        snap.ring = self.ring.view();
        snap.receive = self.final_receive.take();
        snap.status = if fatal.is_some() { StreamStatus::Error } else { StreamStatus::Down };
        self.report(&snap);
        if let Some(l) = self.led.as_mut() {
            if fatal.is_some() {
                // Show the error for error_hold before exiting; the init system restarts us.
                let until = Instant::now() + self.cfg.led_error_hold;
                l.set(StreamStatus::Error, Instant::now());
                while Instant::now() < until {
                    thread::sleep(TICK);
                    l.tick(Instant::now());
                }
            }
            l.set(StreamStatus::Down, Instant::now());
        }
        match fatal {
            Some(e) => {
                log::error!("{e:#}");
                Ok(ExitCode::FAILURE)
            }
            None => Ok(ExitCode::SUCCESS),
        }
    }

    fn report(&self, snap: &Snapshot) {
        if self.cfg.json {
            println!("{}", snap.to_json());
        } else {
            log::info!("{}", snap.to_line());
        }
    }
}

/// TX: every RTP buffer appsink receives is copied into a FREE slot and pushed.
fn install_tx_callbacks(appsink: &AppSink, tx: Arc<Mutex<TxRing>>, c: Arc<Counters>) {
    appsink.on_sample(move |sink, sample| {
                // This streaming thread writes the ring: --rt-priority/--cpu apply to it (once).
                if let Err(e) = rtpmgr_service::worker_started() {
                    gst::element_error!(sink, gst::ResourceError::Failed, ("{e}"));
                    return Err(gst::FlowError::Error);
                }
                let buffer = sample.buffer().ok_or_else(|| {
                    gst::element_error!(sink, gst::ResourceError::Failed, ("sample without a buffer"));
                    gst::FlowError::Error
                })?;
                let map = buffer.map_readable().map_err(|_| {
                    gst::element_error!(sink, gst::ResourceError::Failed, ("failed to map an RTP buffer readable"));
                    gst::FlowError::Error
                })?;
                c.buffers_in.fetch_add(1, Relaxed);
                c.bytes_in.fetch_add(map.len() as u64, Relaxed);
                let outcome = tx.lock().unwrap_or_else(|p| p.into_inner()).write(&map);
                match outcome {
                    Ok(TxOutcome::Pushed) => {
                        c.buffers_out.fetch_add(1, Relaxed);
                        c.bytes_out.fetch_add(map.len() as u64, Relaxed);
                    }
                    // A full or stopped ring means its consumer (rtp_app --mode tx --source
                    // ring) is behind, absent or stopped: drop, count, keep the source running.
                    Ok(TxOutcome::Full) => {
                        if c.ring_full_drops.fetch_add(1, Relaxed).is_multiple_of(1000) {
                            log::warn!("ring full: no FREE slot, dropping RTP buffers (ring_full_drops); is the ring's consumer running?");
                        }
                    }
                    Ok(TxOutcome::Stopped) => {
                        if c.ring_full_drops.fetch_add(1, Relaxed).is_multiple_of(1000) {
                            log::warn!("ring channel is stopped: dropping RTP buffers (ring_full_drops); start it with rtp_app --mode ctl --start");
                        }
                    }
                    Ok(TxOutcome::Oversize) => {
                        if c.oversize_drops.fetch_add(1, Relaxed) == 0 {
                            log::warn!(
                                "RTP buffer of {} B does not fit a slot: dropped (oversize_drops); lower the payloader's mtu",
                                map.len()
                            );
                        }
                    }
                    Err(e) => {
                        gst::element_error!(sink, gst::ResourceError::Write, ("failed to push into the ring: {e:#}"));
                        return Err(gst::FlowError::Error);
                    }
                }
                Ok(gst::FlowSuccess::Ok)
    });
}

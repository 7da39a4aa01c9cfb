//! RX: READY ring slots -> GStreamer buffers, without copying the payload.
//!
//! A popped slot is wrapped in a [`LentSlot`] and handed to `gst::Buffer::from_slice`: the
//! buffer's memory *is* the slot's payload in the ring mapping, and when GStreamer frees the
//! last reference to that memory it drops the `LentSlot`, whose drop releases the slot back to
//! the ring (the ring library's guard does the RELEASE) and settles the hold-time accounting.
//!
//! Downstream may keep buffers for long (rtpjitterbuffer holds `latency` ms worth). So that a
//! slow or stuck pipeline cannot starve the ring of FREE slots, at most `high_watermark` slots
//! are lent at once; above it each packet is copied into a GStreamer-owned buffer and its slot
//! released at once (`fallback = copy`), or released and dropped (`fallback = drop`). Both are
//! counted and logged.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;

use crate::appel::AppSrc;
use crate::config::{Fallback, DEFAULT_BUFFER_LISTS};
use crate::stats::Counters;

/// What the feeder needs of a popped ring slot.
///
/// `AsRef<[u8]>` is the payload (exactly the packet's bytes, in the ring mapping); dropping the
/// value releases the slot. `Send + 'static` lets a GStreamer buffer own it on any thread.
pub trait RxSlot: AsRef<[u8]> + Send + 'static {
    /// CLOCK_MONOTONIC nanoseconds at which the packet was pushed into the ring.
    fn arrival_ns(&self) -> u64;
}

/// A slot lent to GStreamer as the memory of one buffer.
pub struct LentSlot<S: RxSlot> {
    /// Always `Some` until drop; an Option only so that drop can release the slot *before*
    /// the accounting says it is back.
    slot: Option<S>,
    lent_at: Instant,
    counters: Arc<Counters>,
}

impl<S: RxSlot> AsRef<[u8]> for LentSlot<S> {
    fn as_ref(&self) -> &[u8] {
        self.slot.as_ref().expect("slot present until drop").as_ref()
    }
}

impl<S: RxSlot> Drop for LentSlot<S> {
    fn drop(&mut self) {
        // Release first: once `held` drops, the feeder may lend another slot.
        drop(self.slot.take());
        self.counters.slot_returned(self.lent_at.elapsed());
    }
}

/// Wraps `slot` as a buffer whose memory is the slot's payload (no copy).
pub fn lend<S: RxSlot>(slot: S, counters: &Arc<Counters>) -> gst::Buffer {
    counters.slot_taken();
    gst::Buffer::from_slice(LentSlot { slot: Some(slot), lent_at: Instant::now(), counters: Arc::clone(counters) })
}

/// PTS of a packet: its arrival time as running time of a pipeline whose (monotonic) clock
/// started at `base_time_ns`. A packet that waited in the ring since before the pipeline
/// started gets PTS 0 rather than a negative time.
pub fn pts_from_arrival(arrival_ns: u64, base_time_ns: u64) -> gst::ClockTime {
    gst::ClockTime::from_nseconds(arrival_ns.saturating_sub(base_time_ns))
}

/// Turns popped slots into appsrc pushes, applying the watermark and queue bounds.
#[derive(Debug)]
pub struct RxPusher {
    pub appsrc: AppSrc,
    pub counters: Arc<Counters>,
    pub high_watermark: u64,
    pub fallback: Fallback,
    pub queue_max_buffers: u64,
    pub queue_max_bytes: u64,
    pub base_time_ns: u64,
    /// Counts of fallbacks already logged, so the log says "started" once per episode.
    in_fallback: bool,
    /// In `need-data`, hand a popped batch to appsrc as one buffer list (`push-buffer-list`)
    /// instead of one `push-buffer` per packet (`false`). Default: [`DEFAULT_BUFFER_LISTS`].
    pub buffer_lists: bool,
}

/// Why the pusher stopped accepting packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushEnd {
    /// appsrc is flushing (pipeline stopped) or EOS was sent.
    Stopped,
}

impl RxPusher {
    /// A pusher for a pipeline whose base time is `base_time_ns` (read once it is PLAYING).
    pub fn new(
        appsrc: AppSrc,
        counters: Arc<Counters>,
        high_watermark: u64,
        fallback: Fallback,
        base_time_ns: u64,
    ) -> Self {
        let queue_max_buffers = appsrc.max_buffers();
        let queue_max_bytes = appsrc.max_bytes();
        Self {
            appsrc,
            counters,
            high_watermark,
            fallback,
            queue_max_buffers,
            queue_max_bytes,
            base_time_ns,
            in_fallback: false,
            buffer_lists: DEFAULT_BUFFER_LISTS,
        }
    }

    /// Hands one popped slot to GStreamer (or copies/drops it, counted), asking appsrc how full
    /// its queue is.
    pub fn push<S: RxSlot>(&mut self, slot: S) -> Result<(), PushEnd> {
        let queued = (self.appsrc.current_level_buffers(), self.appsrc.current_level_bytes());
        self.push_queued(slot, queued).map(|_| ())
    }

    /// [`push`](Self::push) when the caller knows appsrc's queue level (`buffers`, `bytes`):
    /// in `need-data`, which appsrc emits with an empty queue, the level is what the handler
    /// itself pushed, and two property reads per packet are saved. Ok(true) when the buffer
    /// went into appsrc's queue, Ok(false) when it was dropped (counted).
    pub fn push_queued<S: RxSlot>(&mut self, slot: S, queued: (u64, u64)) -> Result<bool, PushEnd> {
        match self.prepare(slot, queued) {
            Some(buffer) => self.appsrc.push_buffer(buffer).map(|_| true).map_err(|_| PushEnd::Stopped),
            None => Ok(false),
        }
    }

    /// The buffer [`push_queued`](Self::push_queued) would push for `slot` (lent or copied,
    /// with its PTS, counted as pushed), or `None` when the slot is dropped (counted).
    pub fn prepare<S: RxSlot>(&mut self, slot: S, queued: (u64, u64)) -> Option<gst::Buffer> {
        let c = &self.counters;
        let len = slot.as_ref().len() as u64;
        c.buffers_in.fetch_add(1, Relaxed);
        c.bytes_in.fetch_add(len, Relaxed);
        // appsrc full means downstream is not consuming: drop the new packet here (counted)
        // instead of letting the queue grow; its slot goes back to the ring right away.
        if queued.0 >= self.queue_max_buffers || queued.1 + len > self.queue_max_bytes {
            c.queue_drops.fetch_add(1, Relaxed);
            if c.queue_drops.load(Relaxed) == 1 {
                log::warn!(
                    "appsrc queue full ({} buffers): the pipeline is not consuming; dropping packets (counted as queue_drops)",
                    self.queue_max_buffers
                );
            }
            return None;
        }
        let pts = pts_from_arrival(slot.arrival_ns(), self.base_time_ns);
        if c.buffers_in.load(Relaxed) == 1 {
            log::debug!(
                "first packet: arrival {} ns, base time {} ns, PTS {pts}",
                slot.arrival_ns(),
                self.base_time_ns
            );
        }
        let mut buffer = if c.held.load(Relaxed) < self.high_watermark {
            if self.in_fallback {
                self.in_fallback = false;
                log::info!(
                    "slots held by GStreamer back under the high watermark ({}): zero-copy again",
                    self.high_watermark
                );
            }
            c.zero_copy.fetch_add(1, Relaxed);
            lend(slot, c)
        } else {
            if !self.in_fallback {
                self.in_fallback = true;
                log::warn!(
                    "GStreamer holds {} slots (high watermark {}): falling back to {} so the ring keeps FREE slots",
                    c.held.load(Relaxed),
                    self.high_watermark,
                    match self.fallback {
                        Fallback::Copy => "copying",
                        Fallback::Drop => "dropping",
                    }
                );
            }
            match self.fallback {
                Fallback::Copy => {
                    c.fallback_copies.fetch_add(1, Relaxed);
                    // The copy owns its bytes; dropping `slot` right after releases it.
                    gst::Buffer::from_mut_slice(slot.as_ref().to_vec())
                }
                Fallback::Drop => {
                    c.fallback_drops.fetch_add(1, Relaxed);
                    return None;
                }
            }
        };
        buffer.get_mut().expect("a new buffer is writable").set_pts(pts);
        c.pushed.fetch_add(1, Relaxed);
        Some(buffer)
    }
}

/// Where the RX feed pops from: the ring's consumer side, or a fake in tests.
pub trait RxSource: Send + 'static {
    /// A popped slot.
    type Slot: RxSlot;
    /// Pops up to `max` READY slots into `out`, waiting up to `timeout` for the first one;
    /// leaves `out` empty on timeout.
    fn pop_batch(&mut self, max: u32, timeout: Duration, out: &mut Vec<Self::Slot>) -> anyhow::Result<()>;
}

/// Feeds appsrc from the ring in appsrc's own streaming thread.
///
/// appsrc emits `need-data` from its streaming thread whenever its queue is empty. The handler
/// pops a batch of READY slots (waiting for the first in `wait` slices), lends them to appsrc,
/// and returns; appsrc then pushes them downstream from that same thread. One thread does pop,
/// lend and push: there is no feeder thread of our own and no hand-off between two threads per
/// batch. Such a hand-off cost ~250 µs of CPU per packet in the emulated guest
/// (docs/performance.md).
///
/// The handler returns without data only when told to [`stop`](Self::stop), when appsrc's pad is
/// flushing (the pipeline is going down), or after a ring error (kept for
/// [`finish`](Self::finish)). appsrc then waits for EOS or a flush, which is what the caller
/// sends next. Attach before the pipeline goes to PLAYING: appsrc asks for data as soon as its
/// streaming thread starts.
pub struct RxFeed<R: RxSource> {
    appsrc: AppSrc,
    handler: Option<gst::glib::SignalHandlerId>,
    shared: Arc<FeedShared<R>>,
}

struct FeedShared<R: RxSource> {
    stop: AtomicBool,
    ended: AtomicBool,
    state: Mutex<FeedState<R>>,
}

struct FeedState<R: RxSource> {
    source: Option<R>,
    pusher: RxPusher,
    slots: Vec<R::Slot>,
    batch: u32,
    wait: Duration,
    error: Option<anyhow::Error>,
}

impl<R: RxSource> std::fmt::Debug for RxFeed<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RxFeed").field("ended", &self.has_ended()).finish_non_exhaustive()
    }
}

impl<R: RxSource> RxFeed<R> {
    /// Connects the `need-data` handler of `pusher`'s appsrc: batches of up to `batch` slots,
    /// pops waiting at most `wait` before looking at the stop flag and the pad again.
    pub fn attach(source: R, pusher: RxPusher, batch: u32, wait: Duration) -> Self {
        let appsrc = pusher.appsrc.clone();
        let shared = Arc::new(FeedShared {
            stop: AtomicBool::new(false),
            ended: AtomicBool::new(false),
            state: Mutex::new(FeedState {
                source: Some(source),
                pusher,
                slots: Vec::with_capacity(batch.max(1) as usize),
                batch: batch.max(1),
                wait,
                error: None,
            }),
        });
        let sh = Arc::clone(&shared);
        let handler = appsrc.element().connect("need-data", false, move |args| {
            if let Ok(src) = args[0].get::<gst::Element>() {
                need_data(&sh, &src);
            }
            None
        });
        RxFeed { appsrc, handler: Some(handler), shared }
    }

    /// Asks the handler to return at its next wake-up (within `wait`) and not to pop again.
    pub fn stop(&self) {
        self.shared.stop.store(true, Relaxed);
    }

    /// True once the feed cannot go on: a ring error, or appsrc refused a buffer (EOS or
    /// flushing).
    pub fn has_ended(&self) -> bool {
        self.shared.ended.load(Relaxed)
    }

    /// Disconnects the handler and gives the source back, with the ring error if one ended the
    /// feed. Call it once the pipeline is stopped.
    pub fn finish(mut self) -> (Option<R>, anyhow::Result<()>) {
        self.stop();
        if let Some(h) = self.handler.take() {
            self.appsrc.element().disconnect(h);
        }
        let mut st = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
        // Slots popped but not pushed are released here, not leaked.
        st.slots.clear();
        let source = st.source.take();
        (source, st.error.take().map_or(Ok(()), Err))
    }
}

impl<R: RxSource> Drop for RxFeed<R> {
    fn drop(&mut self) {
        self.stop();
        if let Some(h) = self.handler.take() {
            self.appsrc.element().disconnect(h);
        }
    }
}

/// The `need-data` handler: runs in appsrc's streaming thread with appsrc's queue empty.
fn need_data<R: RxSource>(sh: &FeedShared<R>, src: &gst::Element) {
    let mut guard = sh.state.lock().unwrap_or_else(|p| p.into_inner());
    let st = &mut *guard;
    let pad = src.static_pad("src");
    // The feeder's worker is this streaming thread: --rt-priority/--cpu apply to it (once).
    if let Err(e) = rtpmgr_service::worker_started() {
        st.error = Some(e.into());
        sh.ended.store(true, Relaxed);
        return;
    }
    loop {
        // Every turn, at least every pop wait: a hung streaming thread stops pinging.
        rtpmgr_service::watchdog_tick();
        if sh.stop.load(Relaxed) || sh.ended.load(Relaxed) {
            return;
        }
        if pad.as_ref().is_some_and(|p| p.pad_flags().contains(gst::PadFlags::FLUSHING)) {
            return;
        }
        let Some(source) = st.source.as_mut() else { return };
        if let Err(e) = source.pop_batch(st.batch, st.wait, &mut st.slots) {
            st.error = Some(e);
            sh.ended.store(true, Relaxed);
            return;
        }
        if st.slots.is_empty() {
            continue;
        }
        // PTS are running time: read the base time here, where the pipeline is PLAYING.
        st.pusher.base_time_ns = src.base_time().map_or(0, |t| t.nseconds());
        let mut queued = (0u64, 0u64);
        if st.pusher.buffer_lists {
            // The batch as one buffer list: one push, one queue entry, and appsrc pushes it
            // downstream as one list (elements with a chain_list take it whole).
            let mut list = gst::BufferList::new_sized(st.slots.len());
            let l = list.get_mut().expect("a new list is writable");
            for slot in st.slots.drain(..) {
                let len = slot.as_ref().len() as u64;
                if let Some(buffer) = st.pusher.prepare(slot, queued) {
                    queued = (queued.0 + 1, queued.1 + len);
                    l.add(buffer);
                }
            }
            // appsrc is flushing or at EOS: the pipeline is going down.
            if !list.is_empty() && st.pusher.appsrc.push_buffer_list(list).is_err() {
                sh.ended.store(true, Relaxed);
            }
        } else {
            for slot in st.slots.drain(..) {
                let len = slot.as_ref().len() as u64;
                match st.pusher.push_queued(slot, queued) {
                    Ok(true) => queued = (queued.0 + 1, queued.1 + len),
                    Ok(false) => {}
                    // appsrc is flushing or at EOS: the pipeline is going down. The rest of the
                    // batch is released by the drain.
                    Err(PushEnd::Stopped) => sh.ended.store(true, Relaxed),
                }
            }
        }
        // Return only with something queued: appsrc waits for a push after an empty return,
        // and a batch can be dropped whole (fallback = drop above the high watermark).
        if queued.0 > 0 || sh.ended.load(Relaxed) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Fallback;
    use std::sync::atomic::AtomicU64;

    /// A slot stand-in that counts its releases.
    struct FakeSlot {
        data: Vec<u8>,
        arrival: u64,
        released: Arc<AtomicU64>,
    }
    impl AsRef<[u8]> for FakeSlot {
        fn as_ref(&self) -> &[u8] {
            &self.data
        }
    }
    impl Drop for FakeSlot {
        fn drop(&mut self) {
            self.released.fetch_add(1, Relaxed);
        }
    }
    impl RxSlot for FakeSlot {
        fn arrival_ns(&self) -> u64 {
            self.arrival
        }
    }

    #[test]
    fn lent_buffer_is_the_slot_memory_and_releases_on_free() {
        gst::init().unwrap();
        let counters = Arc::new(Counters::default());
        let released = Arc::new(AtomicU64::new(0));
        let slot = FakeSlot { data: vec![0x80, 96, 0, 1], arrival: 5, released: Arc::clone(&released) };
        let addr = slot.data.as_ptr();
        let buf = lend(slot, &counters);
        assert_eq!(buf.map_readable().unwrap().as_ptr(), addr, "buffer memory must be the slot payload");
        let copy = buf.clone(); // a second reference: the slot stays lent
        drop(buf);
        assert_eq!(released.load(Relaxed), 0);
        assert_eq!(counters.held.load(Relaxed), 1);
        drop(copy);
        assert_eq!(released.load(Relaxed), 1);
        assert_eq!(counters.held.load(Relaxed), 0);
        assert_eq!(counters.hold_count.load(Relaxed), 1);
    }

    #[test]
    fn pts_is_running_time_of_arrival() {
        assert_eq!(pts_from_arrival(1_500, 1_000).nseconds(), 500);
        assert_eq!(pts_from_arrival(900, 1_000).nseconds(), 0);
    }

    /// A source of `total` fake slots, handed out a few per pop; then nothing (or an error).
    struct FakeSource {
        left: u32,
        per_pop: u32,
        fail_when_empty: bool,
        released: Arc<AtomicU64>,
        pops: Arc<AtomicU64>,
    }

    impl RxSource for FakeSource {
        type Slot = FakeSlot;
        fn pop_batch(&mut self, max: u32, timeout: Duration, out: &mut Vec<FakeSlot>) -> anyhow::Result<()> {
            self.pops.fetch_add(1, Relaxed);
            if self.left == 0 {
                if self.fail_when_empty {
                    anyhow::bail!("ring went away");
                }
                std::thread::sleep(timeout);
                return Ok(());
            }
            let n = self.left.min(self.per_pop).min(max);
            for _ in 0..n {
                self.left -= 1;
                let seq = self.left as u8;
                out.push(FakeSlot { data: vec![0x80, 96, 0, seq], arrival: 1, released: Arc::clone(&self.released) });
            }
            Ok(())
        }
    }

    /// appsrc ! fakesink, with a counter of what reached the sink.
    fn feed_pipeline() -> (gst::Pipeline, AppSrc, Arc<AtomicU64>) {
        gst::init().unwrap();
        let caps =
            crate::pipeline::rx_caps("application/x-rtp,media=audio,clock-rate=48000,encoding-name=OPUS,payload=96")
                .unwrap();
        let appsrc = crate::pipeline::rx_appsrc(&caps, 64, 2048).unwrap();
        let sink = gst::ElementFactory::make("fakesink").property("sync", false).build().unwrap();
        let got = Arc::new(AtomicU64::new(0));
        let g = Arc::clone(&got);
        sink.static_pad("sink").unwrap().add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            g.fetch_add(1, Relaxed);
            gst::PadProbeReturn::Ok
        });
        let p = gst::Pipeline::new();
        p.add_many([appsrc.element(), &sink]).unwrap();
        appsrc.element().link(&sink).unwrap();
        (p, appsrc, got)
    }

    fn wait_for(what: &str, f: impl Fn() -> bool) {
        let t0 = Instant::now();
        while !f() {
            assert!(t0.elapsed() < Duration::from_secs(10), "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// need-data drives the feed: every slot reaches the sink from appsrc's own thread, the
    /// pipeline stops promptly while the handler waits for more, and every slot is released.
    /// Single buffers (`buffer_lists = false`); the next test covers lists.
    #[test]
    fn need_data_feed_delivers_everything_and_stops_while_waiting() {
        let (p, appsrc, got) = feed_pipeline();
        let counters = Arc::new(Counters::default());
        let released = Arc::new(AtomicU64::new(0));
        let pops = Arc::new(AtomicU64::new(0));
        let src = FakeSource {
            left: 100,
            per_pop: 7,
            fail_when_empty: false,
            released: Arc::clone(&released),
            pops: Arc::clone(&pops),
        };
        let mut pusher = RxPusher::new(appsrc.clone(), Arc::clone(&counters), 1000, Fallback::Copy, 0);
        pusher.buffer_lists = false;
        let feed = RxFeed::attach(src, pusher, 32, Duration::from_millis(20));
        crate::pipeline::start(&p).unwrap();
        wait_for("100 buffers at the sink", || got.load(Relaxed) == 100);
        assert!(!feed.has_ended());
        // The handler is now waiting in pop for data that never comes: NULL must not hang.
        let t0 = Instant::now();
        p.set_state(gst::State::Null).unwrap();
        assert!(t0.elapsed() < Duration::from_secs(5), "stopping took {:?}", t0.elapsed());
        let (source, result) = feed.finish();
        assert!(result.is_ok() && source.is_some());
        drop((p, appsrc));
        assert_eq!(released.load(Relaxed), 100, "every slot back to the ring");
        assert_eq!(counters.pushed.load(Relaxed), 100);
    }

    /// buffer_lists (the default): each popped batch reaches the sink as one buffer list, every
    /// slot once, and every slot is released after NULL.
    #[test]
    fn need_data_feed_pushes_batches_as_buffer_lists() {
        let (p, appsrc, got) = feed_pipeline();
        let lists = Arc::new(AtomicU64::new(0));
        let (l, g) = (Arc::clone(&lists), Arc::clone(&got));
        let sink_pad = p.children().into_iter().find(|e| e.factory().unwrap().name() == "fakesink").unwrap();
        sink_pad.static_pad("sink").unwrap().add_probe(gst::PadProbeType::BUFFER_LIST, move |_, info| {
            if let Some(gst::PadProbeData::BufferList(list)) = &info.data {
                l.fetch_add(1, Relaxed);
                g.fetch_add(list.len() as u64, Relaxed);
            }
            gst::PadProbeReturn::Ok
        });
        let counters = Arc::new(Counters::default());
        let released = Arc::new(AtomicU64::new(0));
        let pops = Arc::new(AtomicU64::new(0));
        let src = FakeSource { left: 100, per_pop: 7, fail_when_empty: false, released: Arc::clone(&released), pops };
        let pusher = RxPusher::new(appsrc.clone(), Arc::clone(&counters), 1000, Fallback::Copy, 0);
        assert!(pusher.buffer_lists, "lists are the default");
        let feed = RxFeed::attach(src, pusher, 32, Duration::from_millis(20));
        crate::pipeline::start(&p).unwrap();
        wait_for("100 buffers at the sink", || got.load(Relaxed) == 100);
        assert_eq!(lists.load(Relaxed), 15, "100 slots popped 7 at a time: 15 lists");
        p.set_state(gst::State::Null).unwrap();
        let (_, result) = feed.finish();
        assert!(result.is_ok());
        drop((p, appsrc));
        assert_eq!(released.load(Relaxed), 100, "every slot back to the ring");
        assert_eq!(counters.zero_copy.load(Relaxed), 100);
    }

    /// A ring error ends the feed and comes back from finish; a whole batch dropped by the
    /// fallback does not stall appsrc (the handler pops again instead of returning empty).
    #[test]
    fn need_data_feed_reports_ring_errors_and_survives_dropped_batches() {
        let (p, appsrc, got) = feed_pipeline();
        let counters = Arc::new(Counters::default());
        // Pretend GStreamer already holds the high watermark: the first pops are dropped whole.
        counters.held.store(4, Relaxed);
        let released = Arc::new(AtomicU64::new(0));
        let pops = Arc::new(AtomicU64::new(0));
        let src = FakeSource { left: 20, per_pop: 5, fail_when_empty: true, released: Arc::clone(&released), pops };
        let pusher = RxPusher::new(appsrc.clone(), Arc::clone(&counters), 4, Fallback::Drop, 0);
        let feed = RxFeed::attach(src, pusher, 32, Duration::from_millis(20));
        crate::pipeline::start(&p).unwrap();
        wait_for("the ring error", || feed.has_ended());
        assert_eq!(counters.fallback_drops.load(Relaxed), 20);
        assert_eq!(got.load(Relaxed), 0);
        p.set_state(gst::State::Null).unwrap();
        let (_, result) = feed.finish();
        assert!(result.unwrap_err().to_string().contains("ring went away"));
        drop((p, appsrc));
        assert_eq!(released.load(Relaxed), 20);
    }
}

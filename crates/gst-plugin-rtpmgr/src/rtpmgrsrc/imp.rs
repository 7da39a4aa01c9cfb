// SPDX-License-Identifier: GPL-2.0-only OR MIT

/**
 * SECTION:element-rtpmgrsrc
 * @see_also: rtpmgrsink, udpsrc, rtpjitterbuffer
 *
 * Live source that receives RTP packets from an `rtp_mgr` slot ring: the kernel device
 * `/dev/rtp_mgrN` (property `channel` or `device`), or a shared-memory ring on hosts without the
 * module (property `shm-name`).
 *
 * Each `create` pops up to `batch-size` READY slots and pushes them downstream as one
 * #GstBufferList. Every buffer's memory is the slot's payload in the ring mapping (no copy); the
 * slot goes back to the ring when the last reference to the buffer is dropped. Buffers carry the
 * packet's arrival time (stamped by the ring when the packet was pushed) as running time in PTS
 * and DTS, as `udpsrc do-timestamp=true` does with the receive time; `rtpjitterbuffer` uses it
 * for its jitter and deadline calculations.
 *
 * Downstream elements that keep buffers (a jitterbuffer keeps `latency` ms worth) keep slots: size
 * the ring (ring_order) for the packets of that latency plus a batch.
 *
 * ## Flushes and state changes
 * The source is live and not seekable: a seek travelling upstream is refused. FLUSH_START/STOP
 * sent to the element, or a flushing seek sent to the element itself (to 0, a live source's only
 * position), flush it. A flush, READY and NULL drop exactly the list in flight (popped, not yet
 * past the src pad): its slots return to the ring at once and its buffers are counted in the
 * `stats` field `buffers-flushed`. Packets still READY in the ring are kept and pushed first
 * afterwards, in order; the first buffer after dropped packets carries DISCONT. Every popped
 * packet is counted once, in `buffers-pushed` or `buffers-flushed`. PLAYING -> PAUSED drops
 * nothing (a list in flight waits for PLAYING); no slot is held after NULL.
 *
 * ## Example pipelines
 * |[
 * gst-launch-1.0 rtpmgrsrc channel=0 caps="application/x-rtp,media=audio,clock-rate=48000,encoding-name=OPUS,payload=96" ! rtpjitterbuffer latency=50 ! rtpopusdepay ! opusdec ! autoaudiosink
 * ]| Plays an Opus stream received into ring channel 0.
 * |[
 * gst-launch-1.0 rtpmgrsrc shm-name=rtpmgr-3 num-buffers=1000 ! fakesink dump=true
 * ]| Dumps 1000 packets of the shared-memory ring /dev/shm/rtpmgr-3 (no kernel module needed).
 *
 * Since: 0.1
 */
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::base_src::CreateSuccess;
use gst_base::subclass::prelude::*;
use gstreamer as gst;
use gstreamer_base as gst_base;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::ring::{self, Location};

static CAT: LazyLock<gst::DebugCategory> =
    LazyLock::new(|| gst::DebugCategory::new("rtpmgrsrc", gst::DebugColorFlags::empty(), Some("rtp_mgr ring source")));

const DEFAULT_BATCH_SIZE: u32 = 32;
/// Most packets in one list: the ring moves at most 256 slots per call, and a list much larger
/// than a ring's quarter would hold slots for no gain.
const MAX_BATCH_SIZE: u32 = 1024;
const DEFAULT_WAIT_TIMEOUT_MS: u32 = 50;
const MAX_WAIT_TIMEOUT_MS: u32 = 10_000;
const DEFAULT_COALESCE_TIME: u64 = 0;
const MAX_COALESCE_TIME: u64 = gst::ClockTime::SECOND.nseconds();

#[derive(Debug, Clone)]
struct Settings {
    location: Location,
    batch_size: u32,
    wait_timeout_ms: u32,
    /// ns
    coalesce_time: u64,
    caps: Option<gst::Caps>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            location: Location::default(),
            batch_size: DEFAULT_BATCH_SIZE,
            wait_timeout_ms: DEFAULT_WAIT_TIMEOUT_MS,
            coalesce_time: DEFAULT_COALESCE_TIME,
            caps: None,
        }
    }
}

/// What the streaming thread uses while started; settings are fixed from READY on.
struct Streaming {
    consumer: rtpmgr::Consumer,
    ring_name: String,
    batch_size: usize,
    wait: Duration,
    coalesce: Duration,
}

/// Counters of this element (the ring's own counters come from the channel). Every packet popped
/// from the ring ends up in exactly one of `buffers_pushed` and `buffers_flushed`.
#[derive(Debug, Default)]
struct Counters {
    /// Lists (and their buffers, bytes) that left through the src pad.
    lists_pushed: AtomicU64,
    buffers_pushed: AtomicU64,
    bytes_pushed: AtomicU64,
    /// Lists (and their buffers) that `create` returned but that never left through the src pad:
    /// GstBaseSrc or the flushing pad dropped them in a flush, a seek or a state change.
    lists_flushed: AtomicU64,
    buffers_flushed: AtomicU64,
}

/// The list `create` returned last, until it leaves through the src pad or is found dropped.
#[derive(Debug, Clone, Copy)]
struct InHand {
    buffers: u64,
    bytes: u64,
}

/// The element's private state.
#[derive(Default)]
pub struct RtpmgrSrc {
    settings: Mutex<Settings>,
    /// The control handle, for `stats` from any thread while the streaming thread waits.
    channel: Mutex<Option<rtpmgr::Channel>>,
    /// Locked by the streaming thread for a whole `create`, and by start/stop.
    streaming: Mutex<Option<Streaming>>,
    /// Set by `unlock` (flush, PLAYING -> PAUSED, shutdown): `create` returns FLUSHING within one
    /// `wait-timeout`.
    unlocked: AtomicBool,
    /// Written by `create` and the src pad's probe (both the streaming thread) and settled by
    /// the next `create`, or by `unlock_stop` and `stop` when GstBaseSrc calls them with the
    /// streaming thread stopped.
    in_hand: Mutex<Option<InHand>>,
    /// Packets were flushed: the next list's first buffer is marked DISCONT.
    discont: AtomicBool,
    counters: Counters,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[glib::object_subclass]
impl ObjectSubclass for RtpmgrSrc {
    const NAME: &'static str = "GstRtpmgrSrc";
    type Type = super::RtpmgrSrc;
    type ParentType = gst_base::PushSrc;
}

impl ObjectImpl for RtpmgrSrc {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let mut props = ring::location_properties();
            props.extend([
                glib::ParamSpecUInt::builder("batch-size")
                    .nick("Batch size")
                    .blurb("Most packets popped at once and pushed as one buffer list")
                    .minimum(1)
                    .maximum(MAX_BATCH_SIZE)
                    .default_value(DEFAULT_BATCH_SIZE)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("wait-timeout")
                    .nick("Wait timeout (ms)")
                    .blurb(
                        "Longest single wait on the ring for a packet; a flush or a state change \
                         takes effect within this time",
                    )
                    .minimum(1)
                    .maximum(MAX_WAIT_TIMEOUT_MS)
                    .default_value(DEFAULT_WAIT_TIMEOUT_MS)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt64::builder("coalesce-time")
                    .nick("Coalesce time (ns)")
                    .blurb(
                        "After the first packet of a batch, wait up to this long for more to fill \
                         the batch (0: push what is there at once); reported as latency",
                    )
                    .maximum(MAX_COALESCE_TIME)
                    .default_value(DEFAULT_COALESCE_TIME)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoxed::builder::<gst::Caps>("caps")
                    .nick("Caps")
                    .blurb("The caps of the source pad (None: application/x-rtp)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoxed::builder::<gst::Structure>("stats")
                    .nick("Statistics")
                    .blurb("Counters of this element and of its ring")
                    .read_only()
                    .build(),
            ]);
            props
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = lock(&self.settings);
        if ring::set_location_property(&mut s.location, pspec.name(), value) {
            return;
        }
        match pspec.name() {
            "batch-size" => s.batch_size = value.get().expect("type checked upstream"),
            "wait-timeout" => s.wait_timeout_ms = value.get().expect("type checked upstream"),
            "coalesce-time" => s.coalesce_time = value.get().expect("type checked upstream"),
            "caps" => {
                s.caps = value.get().expect("type checked upstream");
                drop(s);
                // Renegotiate on the next buffer, as udpsrc does.
                self.obj().src_pad().mark_reconfigure();
            }
            other => unreachable!("unknown property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = lock(&self.settings);
        if let Some(v) = ring::location_property(&s.location, pspec.name()) {
            return v;
        }
        match pspec.name() {
            "batch-size" => s.batch_size.to_value(),
            "wait-timeout" => s.wait_timeout_ms.to_value(),
            "coalesce-time" => s.coalesce_time.to_value(),
            "caps" => s.caps.to_value(),
            "stats" => {
                drop(s);
                self.stats().to_value()
            }
            other => unreachable!("unknown property {other}"),
        }
    }

    fn constructed(&self) {
        self.parent_constructed();
        let obj = self.obj();
        obj.set_live(true);
        obj.set_format(gst::Format::Time);
        // Arrival times as timestamps by default, as udpsrc does.
        obj.set_do_timestamp(true);
        // A list that passes this probe has left the element (the pad was not flushing); one
        // that GstBaseSrc drops after `create` or that the flushing pad refuses never gets here.
        // GstBaseSrc has no hook for either, so this is where pushed and flushed part.
        let weak = obj.downgrade();
        obj.src_pad().add_probe(gst::PadProbeType::BUFFER_LIST, move |_, _| {
            if let Some(src) = weak.upgrade() {
                src.imp().list_left_pad();
            }
            gst::PadProbeReturn::Ok
        });
    }
}

impl GstObjectImpl for RtpmgrSrc {}

impl ElementImpl for RtpmgrSrc {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "rtp_mgr ring source",
                "Source/Network/RTP",
                "Receives RTP packets from an rtp_mgr slot ring (kernel device or shared memory) as zero-copy \
                 buffer lists",
                "rtpmgr project",
            )
        });
        Some(&*META)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            vec![gst::PadTemplate::new("src", gst::PadDirection::Src, gst::PadPresence::Always, &gst::Caps::new_any())
                .expect("valid pad template")]
        });
        TEMPLATES.as_ref()
    }
}

impl BaseSrcImpl for RtpmgrSrc {
    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let s = lock(&self.settings).clone();
        let channel = s.location.open().map_err(|msg| gst::error_msg!(gst::ResourceError::OpenRead, ("{msg}")))?;
        // The consumer role (ABI 2.0): no other process pops this pipeline's packets, and a ring
        // that already has a consumer is refused here, by name, rather than by EPERM on a pop.
        channel.claim(rtpmgr::abi::RTPM_ROLE_CONSUMER).map_err(|e| {
            gst::error_msg!(
                gst::ResourceError::Busy,
                ("Ring {} already has a consumer (rtp-feeder, rtp_app or another rtpmgrsrc?): {e}", channel.name())
            )
        })?;
        let consumer = channel
            .consumer()
            .map_err(|e| gst::error_msg!(gst::ResourceError::OpenRead, ("Cannot map ring {}: {e}", channel.name())))?;
        let layout = consumer.ring().layout();
        gst::info!(
            CAT,
            imp = self,
            "opened {}: {} slots of {} bytes, batches of {}",
            channel.name(),
            layout.slot_count,
            layout.slot_payload,
            s.batch_size
        );
        if s.batch_size > layout.slot_count / 2 {
            gst::warning!(
                CAT,
                imp = self,
                "batch-size {} is more than half of the ring's {} slots: downstream holding one batch can starve \
                 the ring",
                s.batch_size,
                layout.slot_count
            );
        }
        *lock(&self.streaming) = Some(Streaming {
            consumer,
            ring_name: channel.name().to_string(),
            batch_size: s.batch_size as usize,
            wait: Duration::from_millis(u64::from(s.wait_timeout_ms)),
            coalesce: Duration::from_nanos(s.coalesce_time),
        });
        *lock(&self.channel) = Some(channel);
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        self.settle_in_hand("stop");
        // Slots still in downstream buffers stay valid (their guards keep the mapping) and
        // return to the ring as those buffers are freed; the consumer being gone, at once.
        lock(&self.streaming).take();
        if let Some(ch) = lock(&self.channel).take() {
            gst::info!(CAT, imp = self, "closed {}", ch.name());
        }
        Ok(())
    }

    fn is_seekable(&self) -> bool {
        false
    }

    fn caps(&self, filter: Option<&gst::Caps>) -> Option<gst::Caps> {
        let caps =
            lock(&self.settings).caps.clone().unwrap_or_else(|| gst::Caps::new_empty_simple("application/x-rtp"));
        Some(match filter {
            Some(f) => f.intersect_with_mode(&caps, gst::CapsIntersectMode::First),
            None => caps,
        })
    }

    fn query(&self, query: &mut gst::QueryRef) -> bool {
        if let gst::QueryViewMut::Latency(q) = query.view_mut() {
            if lock(&self.channel).is_none() {
                return false;
            }
            // A packet waits in this element only while a batch coalesces; it may wait in the
            // ring for as long as the ring has room, which has no fixed bound in time.
            let min = gst::ClockTime::from_nseconds(lock(&self.settings).coalesce_time);
            q.set(true, min, gst::ClockTime::NONE);
            gst::debug!(CAT, imp = self, "latency: live, min {min}, max none");
            return true;
        }
        BaseSrcImplExt::parent_query(self, query)
    }

    fn unlock(&self) -> Result<(), gst::ErrorMessage> {
        gst::debug!(CAT, imp = self, "unlock");
        self.unlocked.store(true, Ordering::Release);
        Ok(())
    }

    fn unlock_stop(&self) -> Result<(), gst::ErrorMessage> {
        gst::debug!(CAT, imp = self, "unlock stop");
        // After a flush, a flushing seek or in a stop, GstBaseSrc calls this with the pad still
        // flushing and the stream lock held: a list still in hand was dropped. Otherwise (a
        // GstBaseSrc that unlocks on PLAYING -> PAUSED) the list may still be pushed, and the
        // next `create` settles it.
        if self.obj().src_pad().pad_flags().contains(gst::PadFlags::FLUSHING) {
            self.settle_in_hand("flush");
        }
        self.unlocked.store(false, Ordering::Release);
        Ok(())
    }
}

impl PushSrcImpl for RtpmgrSrc {
    fn create(&self, _buffer: Option<&mut gst::BufferRef>) -> Result<CreateSuccess, gst::FlowError> {
        // The previous list either left through the pad or was dropped before it.
        self.settle_in_hand("create");
        let mut guard = lock(&self.streaming);
        let st = guard.as_mut().ok_or(gst::FlowError::Flushing)?;
        let slots = self.pop(st)?;
        let (list, in_hand) = self.wrap(slots);
        *lock(&self.in_hand) = Some(in_hand);
        Ok(CreateSuccess::NewBufferList(list))
    }
}

impl RtpmgrSrc {
    /// Waits for the first READY slot (in `wait-timeout` slices, checking for unlock), then
    /// pops up to a batch, coalescing for `coalesce-time` if the batch is not full.
    fn pop(&self, st: &mut Streaming) -> Result<Vec<rtpmgr::ReadSlot>, gst::FlowError> {
        let mut slots = loop {
            if self.unlocked.load(Ordering::Acquire) {
                return Err(gst::FlowError::Flushing);
            }
            match st.consumer.pop_batch_wait(st.batch_size, Some(st.wait)) {
                Ok(s) if s.is_empty() => continue,
                Ok(s) => break s,
                Err(e) => return Err(self.ring_error(st, e)),
            }
        };
        if !st.coalesce.is_zero() && slots.len() < st.batch_size {
            let deadline = Instant::now() + st.coalesce;
            // Popped slots are returned even if an unlock comes now: if GstBaseSrc is
            // flushing it drops the list, which `settle_in_hand` counts as flushed.
            while slots.len() < st.batch_size && !self.unlocked.load(Ordering::Acquire) {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                match st.consumer.pop_batch_wait(st.batch_size - slots.len(), Some(left.min(st.wait))) {
                    Ok(more) => slots.extend(more),
                    Err(e) => return Err(self.ring_error(st, e)),
                }
            }
        }
        Ok(slots)
    }

    /// Posts the ring error, naming the ring, and stops the stream.
    fn ring_error(&self, st: &Streaming, e: rtpmgr::Error) -> gst::FlowError {
        gst::element_imp_error!(
            self,
            gst::ResourceError::Read,
            ("Failed to receive from ring {}", st.ring_name),
            ["{e}"]
        );
        gst::FlowError::Error
    }

    /// One buffer list of the popped slots, each buffer's memory the slot itself.
    fn wrap(&self, slots: Vec<rtpmgr::ReadSlot>) -> (gst::BufferList, InHand) {
        let obj = self.obj();
        // Arrival times are CLOCK_MONOTONIC; the pipeline clock may be another clock. Read both
        // now and shift by their difference: exact for GStreamer's default (monotonic) system
        // clock, within the two reads' distance for any other.
        let clock_shift = match (obj.does_timestamp(), obj.clock(), obj.base_time()) {
            (true, Some(clock), Some(base)) => {
                let now = clock.time().nseconds() as i128;
                Some(now - rtpmgr::monotonic_ns() as i128 - base.nseconds() as i128)
            }
            _ => None,
        };
        let n = slots.len();
        let mut bytes = 0u64;
        let mut list = gst::BufferList::new_sized(n);
        let lr = list.get_mut().expect("a new list is writable");
        let mut discont = self.discont.swap(false, Ordering::Relaxed);
        for slot in slots {
            let running = clock_shift.map(|shift| {
                // A packet that waited in the ring since before the pipeline started gets 0.
                gst::ClockTime::from_nseconds((slot.arrival_ns() as i128 + shift).clamp(0, i64::MAX as i128) as u64)
            });
            bytes += slot.len() as u64;
            let mut buffer = gst::Buffer::from_slice(slot);
            let b = buffer.get_mut().expect("a new buffer is writable");
            b.set_pts(running);
            b.set_dts(running);
            if std::mem::take(&mut discont) {
                b.set_flags(gst::BufferFlags::DISCONT);
            }
            lr.add(buffer);
        }
        gst::trace!(CAT, imp = self, "pushing a list of {n} buffers ({bytes} bytes)");
        (list, InHand { buffers: n as u64, bytes })
    }

    /// The list in hand passed the src pad: it is pushed.
    fn list_left_pad(&self) {
        let Some(h) = lock(&self.in_hand).take() else {
            return;
        };
        let c = &self.counters;
        c.lists_pushed.fetch_add(1, Ordering::Relaxed);
        c.buffers_pushed.fetch_add(h.buffers, Ordering::Relaxed);
        c.bytes_pushed.fetch_add(h.bytes, Ordering::Relaxed);
    }

    /// A list still in hand at `create`, `unlock_stop` or `stop` never left through the pad:
    /// GstBaseSrc dropped it (and with it its slots) because of a flush or a state change.
    fn settle_in_hand(&self, at: &str) {
        let Some(h) = lock(&self.in_hand).take() else {
            return;
        };
        self.discont.store(true, Ordering::Relaxed);
        let c = &self.counters;
        c.lists_flushed.fetch_add(1, Ordering::Relaxed);
        c.buffers_flushed.fetch_add(h.buffers, Ordering::Relaxed);
        gst::debug!(CAT, imp = self, "a list of {} buffers was flushed before it left the element ({at})", h.buffers);
    }

    fn stats(&self) -> gst::Structure {
        let c = &self.counters;
        let mut s = gst::Structure::builder("application/x-rtpmgrsrc-stats")
            .field("lists-pushed", c.lists_pushed.load(Ordering::Relaxed))
            .field("buffers-pushed", c.buffers_pushed.load(Ordering::Relaxed))
            .field("bytes-pushed", c.bytes_pushed.load(Ordering::Relaxed))
            .field("lists-flushed", c.lists_flushed.load(Ordering::Relaxed))
            .field("buffers-flushed", c.buffers_flushed.load(Ordering::Relaxed))
            .build();
        ring::add_ring_stats(&mut s, lock(&self.channel).as_ref());
        s
    }
}

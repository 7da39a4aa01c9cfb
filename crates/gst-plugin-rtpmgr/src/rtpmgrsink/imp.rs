// SPDX-License-Identifier: GPL-2.0-only OR MIT

/**
 * SECTION:element-rtpmgrsink
 * @see_also: rtpmgrsrc, udpsink
 *
 * Sink that sends RTP packets into an `rtp_mgr` slot ring: the kernel device `/dev/rtp_mgrN`
 * (property `channel` or `device`), or a shared-memory ring (property `shm-name`).
 *
 * A buffer list is written as one batch: the sink reserves as many FREE slots as the list has
 * buffers, copies each payload into its slot (the one copy of the TX path) and pushes the batch
 * READY with one call. A single buffer is a batch of one. The ring stamps the arrival time.
 *
 * When the ring is full, `block=true` (default) waits for the consumer to free slots, which
 * propagates backpressure upstream; `block=false` drops the packets that do not fit and counts
 * them in `stats` (`dropped-full`). A packet larger than a slot is dropped and counted
 * (`dropped-oversize`), with a warning on the bus the first time.
 *
 * The sink starts a stopped channel (property `start-channel`), as every producer of the ring does.
 *
 * ## Example pipelines
 * |[
 * gst-launch-1.0 audiotestsrc is-live=true ! opusenc ! rtpopuspay ! rtpmgrsink channel=2
 * ]| Sends an Opus test tone into ring channel 2, paced by the live source.
 * |[
 * gst-launch-1.0 rtpmgrsink name=s shm-name=rtpmgr-3 sync=false  audiotestsrc num-buffers=500 ! rtpL16pay ! s.
 * ]| Fills the shared-memory ring /dev/shm/rtpmgr-3 as fast as the consumer takes packets.
 *
 * Since: 0.1
 */
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;
use gstreamer as gst;
use gstreamer_base as gst_base;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex, MutexGuard};
use std::time::Duration;

use crate::ring::{self, Location};

static CAT: LazyLock<gst::DebugCategory> =
    LazyLock::new(|| gst::DebugCategory::new("rtpmgrsink", gst::DebugColorFlags::empty(), Some("rtp_mgr ring sink")));

const DEFAULT_BLOCK: bool = true;
const DEFAULT_WAIT_TIMEOUT_MS: u32 = 50;
const MAX_WAIT_TIMEOUT_MS: u32 = 10_000;
const DEFAULT_START_CHANNEL: bool = true;

#[derive(Debug, Clone)]
struct Settings {
    location: Location,
    block: bool,
    wait_timeout_ms: u32,
    start_channel: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            location: Location::default(),
            block: DEFAULT_BLOCK,
            wait_timeout_ms: DEFAULT_WAIT_TIMEOUT_MS,
            start_channel: DEFAULT_START_CHANNEL,
        }
    }
}

/// What the streaming thread uses while started.
struct Streaming {
    producer: rtpmgr::Producer,
    ring_name: String,
    slot_payload: usize,
    wait: Duration,
}

#[derive(Debug, Default)]
struct Counters {
    buffers_received: AtomicU64,
    lists_received: AtomicU64,
    packets_pushed: AtomicU64,
    bytes_pushed: AtomicU64,
    batches_pushed: AtomicU64,
    dropped_full: AtomicU64,
    dropped_oversize: AtomicU64,
    full_waits: AtomicU64,
}

/// The element's private state.
pub struct RtpmgrSink {
    settings: Mutex<Settings>,
    channel: Mutex<Option<rtpmgr::Channel>>,
    streaming: Mutex<Option<Streaming>>,
    /// Set by `unlock` (flush, state change): a blocked render returns FLUSHING within one
    /// `wait-timeout`.
    unlocked: AtomicBool,
    /// `block`, changeable while PLAYING without taking the lock a blocked render holds.
    block: AtomicBool,
    counters: Counters,
}

impl Default for RtpmgrSink {
    fn default() -> Self {
        RtpmgrSink {
            settings: Mutex::default(),
            channel: Mutex::default(),
            streaming: Mutex::default(),
            unlocked: AtomicBool::new(false),
            block: AtomicBool::new(DEFAULT_BLOCK),
            counters: Counters::default(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[glib::object_subclass]
impl ObjectSubclass for RtpmgrSink {
    const NAME: &'static str = "GstRtpmgrSink";
    type Type = super::RtpmgrSink;
    type ParentType = gst_base::BaseSink;
}

impl ObjectImpl for RtpmgrSink {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let mut props = ring::location_properties();
            props.extend([
                glib::ParamSpecBoolean::builder("block")
                    .nick("Block")
                    .blurb("On a full ring, wait for free slots (true) or drop what does not fit, counted (false)")
                    .default_value(DEFAULT_BLOCK)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("wait-timeout")
                    .nick("Wait timeout (ms)")
                    .blurb(
                        "Longest single wait on a full ring; a flush or a state change takes effect \
                         within this time",
                    )
                    .minimum(1)
                    .maximum(MAX_WAIT_TIMEOUT_MS)
                    .default_value(DEFAULT_WAIT_TIMEOUT_MS)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("start-channel")
                    .nick("Start channel")
                    .blurb("Start the channel if it is stopped (a stopped ring refuses packets)")
                    .default_value(DEFAULT_START_CHANNEL)
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
            "block" => {
                s.block = value.get().expect("type checked upstream");
                self.block.store(s.block, Ordering::Relaxed);
            }
            "wait-timeout" => s.wait_timeout_ms = value.get().expect("type checked upstream"),
            "start-channel" => s.start_channel = value.get().expect("type checked upstream"),
            other => unreachable!("unknown property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = lock(&self.settings);
        if let Some(v) = ring::location_property(&s.location, pspec.name()) {
            return v;
        }
        match pspec.name() {
            "block" => s.block.to_value(),
            "wait-timeout" => s.wait_timeout_ms.to_value(),
            "start-channel" => s.start_channel.to_value(),
            "stats" => {
                drop(s);
                self.stats().to_value()
            }
            other => unreachable!("unknown property {other}"),
        }
    }
}

impl GstObjectImpl for RtpmgrSink {}

impl ElementImpl for RtpmgrSink {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "rtp_mgr ring sink",
                "Sink/Network/RTP",
                "Sends RTP packets into an rtp_mgr slot ring (kernel device or shared memory), one batch per \
                 buffer list",
                "rtpmgr project",
            )
        });
        Some(&*META)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            vec![gst::PadTemplate::new(
                "sink",
                gst::PadDirection::Sink,
                gst::PadPresence::Always,
                &gst::Caps::new_any(),
            )
            .expect("valid pad template")]
        });
        TEMPLATES.as_ref()
    }
}

impl BaseSinkImpl for RtpmgrSink {
    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let s = lock(&self.settings).clone();
        let channel = s.location.open().map_err(|msg| gst::error_msg!(gst::ResourceError::OpenWrite, ("{msg}")))?;
        let err = |what: &str, e: rtpmgr::Error| {
            gst::error_msg!(gst::ResourceError::OpenWrite, ("Cannot {what} ring {}: {e}", channel.name()))
        };
        // The producer role (ABI 2.0): no other process pushes into this stream, and it lets the
        // sink start a stopped channel without CAP_NET_ADMIN.
        channel.claim(rtpmgr::abi::RTPM_ROLE_PRODUCER).map_err(|e| {
            gst::error_msg!(
                gst::ResourceError::Busy,
                ("Ring {} already has a producer (rtp_app rx, rtp-feeder or another rtpmgrsink?): {e}", channel.name())
            )
        })?;
        if s.start_channel && !channel.is_running().map_err(|e| err("query", e))? {
            channel.start().map_err(|e| err("start", e))?;
            gst::info!(CAT, imp = self, "started stopped channel {}", channel.name());
        }
        let producer = channel.producer().map_err(|e| err("map", e))?;
        let slot_payload = producer.ring().layout().slot_payload as usize;
        gst::info!(CAT, imp = self, "opened {}: slots of {slot_payload} bytes", channel.name());
        *lock(&self.streaming) = Some(Streaming {
            producer,
            ring_name: channel.name().to_string(),
            slot_payload,
            wait: Duration::from_millis(u64::from(s.wait_timeout_ms)),
        });
        *lock(&self.channel) = Some(channel);
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        lock(&self.streaming).take();
        if let Some(ch) = lock(&self.channel).take() {
            gst::info!(CAT, imp = self, "closed {}", ch.name());
        }
        Ok(())
    }

    fn render(&self, buffer: &gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        self.counters.buffers_received.fetch_add(1, Ordering::Relaxed);
        self.write_batch(&[buffer.as_ref()])
    }

    fn render_list(&self, list: &gst::BufferList) -> Result<gst::FlowSuccess, gst::FlowError> {
        self.counters.lists_received.fetch_add(1, Ordering::Relaxed);
        self.counters.buffers_received.fetch_add(list.len() as u64, Ordering::Relaxed);
        let buffers: Vec<&gst::BufferRef> = list.iter().collect();
        self.write_batch(&buffers)
    }

    fn unlock(&self) -> Result<(), gst::ErrorMessage> {
        self.unlocked.store(true, Ordering::Release);
        Ok(())
    }

    fn unlock_stop(&self) -> Result<(), gst::ErrorMessage> {
        self.unlocked.store(false, Ordering::Release);
        Ok(())
    }
}

impl RtpmgrSink {
    /// Writes `buffers` into the ring as few batches as the free slots allow: reserve, copy,
    /// push.
    fn write_batch(&self, buffers: &[&gst::BufferRef]) -> Result<gst::FlowSuccess, gst::FlowError> {
        let mut guard = lock(&self.streaming);
        let st = guard.as_mut().ok_or(gst::FlowError::Flushing)?;
        let c = &self.counters;
        let fits: Vec<&gst::BufferRef> = buffers.iter().copied().filter(|b| b.size() <= st.slot_payload).collect();
        if fits.len() < buffers.len() {
            let big = buffers.iter().find(|b| b.size() > st.slot_payload).map_or(0, |b| b.size());
            if c.dropped_oversize.fetch_add((buffers.len() - fits.len()) as u64, Ordering::Relaxed) == 0 {
                gst::element_imp_warning!(
                    self,
                    gst::ResourceError::Write,
                    ("Dropping packets larger than a slot of ring {}", st.ring_name),
                    [
                        "a {big}-byte packet does not fit {}-byte slots (counted in stats dropped-oversize)",
                        st.slot_payload
                    ]
                );
            }
        }
        let mut done = 0;
        while done < fits.len() {
            let want = fits.len() - done;
            let mut slots = match st.producer.reserve_batch(want) {
                Ok(s) => s,
                Err(e) if e.is_would_block() => {
                    if !self.block.load(Ordering::Relaxed) {
                        c.dropped_full.fetch_add(want as u64, Ordering::Relaxed);
                        gst::debug!(CAT, imp = self, "ring full: dropped {want} packets");
                        break;
                    }
                    c.full_waits.fetch_add(1, Ordering::Relaxed);
                    self.wait_writable(st)?;
                    continue;
                }
                Err(e) => return Err(self.ring_error(st, e)),
            };
            for (slot, buf) in slots.iter_mut().zip(&fits[done..]) {
                let n = buf.size();
                slot.set_len(n).map_err(|e| self.ring_error(st, e))?;
                // The one copy of the TX path: GStreamer memory into the slot.
                if let Err(copied) = buf.copy_to_slice(0, &mut slot.buf_mut()[..n]) {
                    gst::element_imp_error!(self, gst::ResourceError::Write, ("Short buffer: {copied} of {n} bytes"));
                    return Err(gst::FlowError::Error);
                }
            }
            let reserved = slots.len();
            let bytes: usize = fits[done..done + reserved].iter().map(|b| b.size()).sum();
            let pushed = st.producer.push_batch(slots).map_err(|e| self.ring_error(st, e))?;
            if pushed < reserved {
                // The ring refused the rest (stopped in between): they stay spares of the producer.
                return Err(self.ring_error_msg(st, &format!("pushed only {pushed} of {reserved} slots")));
            }
            c.batches_pushed.fetch_add(1, Ordering::Relaxed);
            c.packets_pushed.fetch_add(pushed as u64, Ordering::Relaxed);
            c.bytes_pushed.fetch_add(bytes as u64, Ordering::Relaxed);
            done += reserved;
        }
        gst::trace!(CAT, imp = self, "wrote {done} of {} packets", buffers.len());
        Ok(gst::FlowSuccess::Ok)
    }

    /// Waits in `wait-timeout` slices until a slot can be reserved; FLUSHING on unlock.
    fn wait_writable(&self, st: &Streaming) -> Result<(), gst::FlowError> {
        loop {
            if self.unlocked.load(Ordering::Acquire) {
                return Err(gst::FlowError::Flushing);
            }
            match st.producer.wait_writable(Some(st.wait)) {
                Ok(true) => return Ok(()),
                Ok(false) => gst::trace!(CAT, imp = self, "ring still full"),
                Err(e) => return Err(self.ring_error(st, e)),
            }
        }
    }

    fn ring_error(&self, st: &Streaming, e: rtpmgr::Error) -> gst::FlowError {
        let hint = if e.errno() as i32 == libc::EPIPE { " (the channel was stopped)" } else { "" };
        self.ring_error_msg(st, &format!("{e}{hint}"))
    }

    fn ring_error_msg(&self, st: &Streaming, detail: &str) -> gst::FlowError {
        gst::element_imp_error!(
            self,
            gst::ResourceError::Write,
            ("Failed to send into ring {}", st.ring_name),
            ["{detail}"]
        );
        gst::FlowError::Error
    }

    fn stats(&self) -> gst::Structure {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut s = gst::Structure::builder("application/x-rtpmgrsink-stats")
            .field("buffers-received", get(&c.buffers_received))
            .field("lists-received", get(&c.lists_received))
            .field("packets-pushed", get(&c.packets_pushed))
            .field("bytes-pushed", get(&c.bytes_pushed))
            .field("batches-pushed", get(&c.batches_pushed))
            .field("dropped-full", get(&c.dropped_full))
            .field("dropped-oversize", get(&c.dropped_oversize))
            .field("full-waits", get(&c.full_waits))
            .build();
        ring::add_ring_stats(&mut s, lock(&self.channel).as_ref());
        s
    }
}

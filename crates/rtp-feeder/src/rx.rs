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

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

use gstreamer as gst;

use crate::appel::AppSrc;
use crate::config::Fallback;
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
        }
    }

    /// Hands one popped slot to GStreamer (or copies/drops it, counted).
    pub fn push<S: RxSlot>(&mut self, slot: S) -> Result<(), PushEnd> {
        let c = &self.counters;
        let len = slot.as_ref().len() as u64;
        c.buffers_in.fetch_add(1, Relaxed);
        c.bytes_in.fetch_add(len, Relaxed);
        // appsrc full means downstream is not consuming: drop the new packet here (counted)
        // instead of letting the queue grow; its slot goes back to the ring right away.
        if self.appsrc.current_level_buffers() >= self.queue_max_buffers
            || self.appsrc.current_level_bytes() + len > self.queue_max_bytes
        {
            c.queue_drops.fetch_add(1, Relaxed);
            if c.queue_drops.load(Relaxed) == 1 {
                log::warn!(
                    "appsrc queue full ({} buffers): the pipeline is not consuming; dropping packets (counted as queue_drops)",
                    self.queue_max_buffers
                );
            }
            return Ok(());
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
                    return Ok(());
                }
            }
        };
        buffer.get_mut().expect("a new buffer is writable").set_pts(pts);
        c.pushed.fetch_add(1, Relaxed);
        self.appsrc.push_buffer(buffer).map(|_| ()).map_err(|_| PushEnd::Stopped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
}

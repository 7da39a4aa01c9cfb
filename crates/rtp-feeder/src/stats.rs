//! Counters of the feeder and their reports (a log line, or one JSON object per line).
//!
//! The counters are atomics shared by the RX feed, GStreamer's streaming threads (pad
//! probes, appsink callbacks, buffer frees) and the control loop, which snapshots them.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::Direction;
use crate::status::StreamStatus;

/// Live counters. Relaxed ordering is enough: every counter is read on its own, and a
/// snapshot that is a few packets out of step between fields is fine for a report.
#[derive(Debug, Default)]
pub struct Counters {
    /// RX: slots popped from the ring. TX: buffers pulled from appsink.
    pub buffers_in: AtomicU64,
    /// Bytes of `buffers_in`.
    pub bytes_in: AtomicU64,
    /// RX: buffers that left appsrc downstream. TX: slots pushed READY into the ring.
    pub buffers_out: AtomicU64,
    /// Bytes of `buffers_out`.
    pub bytes_out: AtomicU64,
    /// RX: buffers handed to appsrc (zero-copy or copied).
    pub pushed: AtomicU64,
    /// RX: slots wrapped without a copy.
    pub zero_copy: AtomicU64,
    /// RX: packets copied because GStreamer held `high_watermark` slots.
    pub fallback_copies: AtomicU64,
    /// RX: packets dropped because GStreamer held `high_watermark` slots (fallback = drop).
    pub fallback_drops: AtomicU64,
    /// RX: packets dropped because appsrc's queue was full (downstream stalled).
    pub queue_drops: AtomicU64,
    /// TX: buffers dropped because the ring had no FREE slot (its consumer is behind).
    pub ring_full_drops: AtomicU64,
    /// TX: buffers larger than a slot, dropped.
    pub oversize_drops: AtomicU64,
    /// Buffers that reached a sink of the pipeline (RX; the test image's counting sink).
    pub sink_buffers: AtomicU64,
    /// Slots GStreamer holds right now (RX).
    pub held: AtomicU64,
    /// Most slots GStreamer held at once.
    pub held_max: AtomicU64,
    /// Slots whose GStreamer buffer was freed, and their total and longest hold time.
    pub hold_count: AtomicU64,
    pub hold_ns_total: AtomicU64,
    pub hold_ns_max: AtomicU64,
}

impl Counters {
    /// A slot was handed to GStreamer.
    pub fn slot_taken(&self) {
        let now = self.held.fetch_add(1, Relaxed) + 1;
        self.held_max.fetch_max(now, Relaxed);
    }

    /// GStreamer freed the buffer of a slot that it held for `held_for`.
    pub fn slot_returned(&self, held_for: Duration) {
        let ns = u64::try_from(held_for.as_nanos()).unwrap_or(u64::MAX);
        self.held.fetch_sub(1, Relaxed);
        self.hold_count.fetch_add(1, Relaxed);
        self.hold_ns_total.fetch_add(ns, Relaxed);
        self.hold_ns_max.fetch_max(ns, Relaxed);
    }

    /// Packets the feeder lost, summed for the status LED.
    pub fn lost(&self) -> u64 {
        self.fallback_drops.load(Relaxed)
            + self.queue_drops.load(Relaxed)
            + self.ring_full_drops.load(Relaxed)
            + self.oversize_drops.load(Relaxed)
    }
}

/// rtpjitterbuffer's `stats` property, when the pipeline has one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct JitterStats {
    /// Name of the element the numbers come from.
    pub element: String,
    pub num_pushed: u64,
    pub num_lost: u64,
    pub num_late: u64,
    pub num_duplicates: u64,
    /// Average jitter in nanoseconds, as the element reports it.
    pub avg_jitter_ns: u64,
}

/// Ring-side view of the channel, from the ring library.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RingView {
    pub free: u32,
    pub ready: u32,
    pub producing: u32,
    pub consuming: u32,
    pub overruns: u64,
    pub drops: u64,
}

/// The `[receive]` socket's side: what the kernel did with the datagrams since the attach.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReceiveView {
    /// How datagrams reach the ring ("kernel": the socket is attached to the channel).
    pub path: &'static str,
    /// "udp 232.1.1.1:5004 (joined 232.1.1.1 from 10.0.0.1 on eth0)".
    pub socket: String,
    /// Pushed into the ring.
    pub pushed: u64,
    /// Refused by a full ring (the channel's drop policy applied).
    pub ring_full: u64,
    /// Larger than a slot's payload: dropped, never truncated.
    pub oversize: u64,
    /// Arrived while the channel was stopped.
    pub discarded: u64,
}

/// One report: everything a stats line or JSON object shows.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    /// "stats" for periodic reports, "final" for the one at exit.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub direction: Direction,
    pub uptime_s: f64,
    pub status: StreamStatus,
    pub buffers_in: u64,
    pub bytes_in: u64,
    pub buffers_out: u64,
    pub bytes_out: u64,
    pub zero_copy: u64,
    pub fallback_copies: u64,
    pub fallback_drops: u64,
    pub queue_drops: u64,
    pub ring_full_drops: u64,
    pub oversize_drops: u64,
    pub sink_buffers: u64,
    pub held: u64,
    pub held_max: u64,
    pub high_watermark: u64,
    pub hold_avg_us: f64,
    pub hold_max_us: f64,
    /// Packets per second of `buffers_in` since the previous report.
    pub rate_pps: f64,
    pub jitterbuffer: Option<JitterStats>,
    pub ring: Option<RingView>,
    /// With `[receive]` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receive: Option<ReceiveView>,
}

impl Snapshot {
    /// Reads the counters; the caller fills in jitterbuffer, ring and status.
    pub fn take(kind: &'static str, direction: Direction, c: &Counters, started: Instant, high_watermark: u64) -> Self {
        let hold_count = c.hold_count.load(Relaxed);
        let hold_total = c.hold_ns_total.load(Relaxed);
        Self {
            kind,
            direction,
            uptime_s: started.elapsed().as_secs_f64(),
            status: StreamStatus::Down,
            buffers_in: c.buffers_in.load(Relaxed),
            bytes_in: c.bytes_in.load(Relaxed),
            buffers_out: c.buffers_out.load(Relaxed),
            bytes_out: c.bytes_out.load(Relaxed),
            zero_copy: c.zero_copy.load(Relaxed),
            fallback_copies: c.fallback_copies.load(Relaxed),
            fallback_drops: c.fallback_drops.load(Relaxed),
            queue_drops: c.queue_drops.load(Relaxed),
            ring_full_drops: c.ring_full_drops.load(Relaxed),
            oversize_drops: c.oversize_drops.load(Relaxed),
            sink_buffers: c.sink_buffers.load(Relaxed),
            held: c.held.load(Relaxed),
            held_max: c.held_max.load(Relaxed),
            high_watermark,
            hold_avg_us: if hold_count == 0 { 0.0 } else { hold_total as f64 / hold_count as f64 / 1e3 },
            hold_max_us: c.hold_ns_max.load(Relaxed) as f64 / 1e3,
            rate_pps: 0.0,
            jitterbuffer: None,
            ring: None,
            receive: None,
        }
    }

    /// One JSON object, no newline.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a Snapshot always serializes")
    }

    /// The human log line.
    pub fn to_line(&self) -> String {
        let mut s = format!(
            "{} {} {}: in {} ({} B) out {} ({} B) {:.0} pps",
            self.kind,
            match self.direction {
                Direction::Rx => "rx",
                Direction::Tx => "tx",
            },
            serde_json::to_string(&self.status).unwrap_or_default().trim_matches('"'),
            self.buffers_in,
            self.bytes_in,
            self.buffers_out,
            self.bytes_out,
            self.rate_pps
        );
        match self.direction {
            Direction::Rx => s += &format!(
                " | zero-copy {} copies {} drops {} queue-drops {} | held {} (max {}, hwm {}) hold avg {:.0} us max {:.0} us | sink {}",
                self.zero_copy,
                self.fallback_copies,
                self.fallback_drops,
                self.queue_drops,
                self.held,
                self.held_max,
                self.high_watermark,
                self.hold_avg_us,
                self.hold_max_us,
                self.sink_buffers
            ),
            Direction::Tx => {
                s += &format!(" | ring-full drops {} oversize {}", self.ring_full_drops, self.oversize_drops)
            }
        }
        if let Some(j) = &self.jitterbuffer {
            s += &format!(
                " | {}: pushed {} lost {} late {} dup {} jitter {:.3} ms",
                j.element,
                j.num_pushed,
                j.num_lost,
                j.num_late,
                j.num_duplicates,
                j.avg_jitter_ns as f64 / 1e6
            );
        }
        if let Some(r) = &self.ring {
            s += &format!(
                " | ring free {} ready {} producing {} consuming {} overruns {} drops {}",
                r.free, r.ready, r.producing, r.consuming, r.overruns, r.drops
            );
        }
        if let Some(r) = &self.receive {
            s += &format!(
                " | receive ({}) pushed {} ring-full {} oversize {} discarded {}",
                r.path, r.pushed, r.ring_full, r.oversize, r.discarded
            );
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hold_accounting() {
        let c = Counters::default();
        c.slot_taken();
        c.slot_taken();
        c.slot_returned(Duration::from_micros(100));
        c.slot_returned(Duration::from_micros(300));
        let s = Snapshot::take("stats", Direction::Rx, &c, Instant::now(), 512);
        assert_eq!((s.held, s.held_max), (0, 2));
        assert_eq!(s.hold_avg_us, 200.0);
        assert_eq!(s.hold_max_us, 300.0);
    }

    #[test]
    fn json_has_the_documented_keys() {
        let c = Counters::default();
        c.buffers_in.store(7, Relaxed);
        let mut s = Snapshot::take("final", Direction::Rx, &c, Instant::now(), 1);
        s.jitterbuffer = Some(JitterStats { element: "rtpjitterbuffer0".into(), num_lost: 3, ..Default::default() });
        let v: serde_json::Value = serde_json::from_str(&s.to_json()).unwrap();
        assert_eq!(v["type"], "final");
        assert_eq!(v["direction"], "rx");
        assert_eq!(v["status"], "down");
        assert_eq!(v["buffers_in"], 7);
        assert_eq!(v["jitterbuffer"]["num_lost"], 3);
        for key in ["sink_buffers", "fallback_copies", "fallback_drops", "hold_avg_us", "hold_max_us", "held"] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        assert!(s.to_line().contains("lost 3"));
        assert!(v.get("receive").is_none(), "no [receive]: no receive key");
        s.receive =
            Some(ReceiveView { path: "kernel", socket: "udp 0.0.0.0:5004".into(), pushed: 9, ..Default::default() });
        let v: serde_json::Value = serde_json::from_str(&s.to_json()).unwrap();
        assert_eq!((v["receive"]["path"].as_str(), v["receive"]["pushed"].as_u64()), (Some("kernel"), Some(9)));
        assert!(s.to_line().contains("receive (kernel) pushed 9"), "{}", s.to_line());
    }
}

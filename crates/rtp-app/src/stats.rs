//! Counters shared between the worker and the controller thread, and the two output formats:
//! the seed's human stats line and one JSON object per line.
//!
//! The human line keeps the seed's shape so existing log scrapers keep working:
//!
//! ```text
//! RX:     12,345,678 pkts ( 1,234,567 pps)     9,876,543 Kbytes (   789 Mbits/s) period:2.0
//! ```
//!
//! followed on the same line by ` | ` and the application and ring counters.

use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Counters the worker thread bumps and the controller thread reads. Relaxed ordering is
/// enough: each counter is independent and only ever summed for display.
#[derive(Debug, Default)]
pub struct Counters {
    /// Datagrams received (RX) or sent (TX).
    pub packets: AtomicU64,
    /// Bytes of those datagrams (UDP payload, i.e. the whole RTP packet).
    pub bytes: AtomicU64,
    /// Slots pushed into the ring.
    pub pushed: AtomicU64,
    /// Datagrams that are not RTP v2 (counted and skipped, or pushed with --keep-malformed).
    pub malformed: AtomicU64,
    /// Datagrams that found the ring full and were dropped after the bounded retries.
    pub ring_full: AtomicU64,
    /// Slots consumed by --drain (RX) or popped from the ring (TX --source ring).
    pub consumed: AtomicU64,
    /// Socket errors that were counted and survived (e.g. ECONNREFUSED on a loopback send).
    pub socket_errors: AtomicU64,
}

impl Counters {
    /// Add to one counter.
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    /// A consistent-enough copy for display.
    pub fn snapshot(&self) -> Snapshot {
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Snapshot {
            packets: l(&self.packets),
            bytes: l(&self.bytes),
            pushed: l(&self.pushed),
            malformed: l(&self.malformed),
            ring_full: l(&self.ring_full),
            consumed: l(&self.consumed),
            socket_errors: l(&self.socket_errors),
        }
    }
}

/// A copy of [`Counters`] at one moment.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    pub packets: u64,
    pub bytes: u64,
    pub pushed: u64,
    pub malformed: u64,
    pub ring_full: u64,
    pub consumed: u64,
    pub socket_errors: u64,
}

/// Ring counters shown next to the application counters (from GET_STATS / GET_STATUS of the
/// channel, whichever backend).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RingCounters {
    pub pushed_packets: u64,
    pub popped_packets: u64,
    pub drops: u64,
    pub overruns: u64,
    pub underruns: u64,
    pub rtp_lost: u64,
    pub rtp_reordered: u64,
    pub rtp_duplicates: u64,
    pub malformed: u64,
    pub reclaimed: u64,
    pub illegal_ops: u64,
    /// Slots READY right now.
    pub ready: u32,
    /// Slots FREE right now.
    pub free: u32,
}

/// Rates over one period.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rates {
    pub pps: f64,
    pub kbytes: u64,
    pub mbits_per_s: f64,
}

/// Compute the period's rates: packets and bits per second over `period`; Kbytes is the total
/// so far in units of 1000 bytes, as in the seed.
pub fn rates(now: &Snapshot, prev: &Snapshot, period: Duration) -> Rates {
    let (pps, mbits_per_s) = traffic(now, prev).rates(period);
    Rates { pps, kbytes: now.bytes / 1000, mbits_per_s }
}

fn traffic(now: &Snapshot, prev: &Snapshot) -> rtpmgr_report::Traffic {
    rtpmgr_report::Traffic {
        packets: now.packets,
        bytes: now.bytes,
        period_packets: now.packets.saturating_sub(prev.packets),
        period_bytes: now.bytes.saturating_sub(prev.bytes),
    }
}

pub use rtpmgr_report::thousands;

/// The seed's stats line for `label` ("RX" or "TX"), then the extra counters.
pub fn human_line(
    label: &str,
    now: &Snapshot,
    prev: &Snapshot,
    period: Duration,
    ring: Option<&RingCounters>,
) -> String {
    let mut line = rtpmgr_report::seed_line(label, &traffic(now, prev), period);
    line.push_str(&format!(
        " | pushed:{} malformed:{} ring_full:{} consumed:{} sock_err:{}",
        now.pushed, now.malformed, now.ring_full, now.consumed, now.socket_errors
    ));
    if let Some(rc) = ring {
        line.push_str(&format!(
            " | ring ready:{} free:{} drops:{} overruns:{} lost:{} reordered:{} dup:{} malformed:{}",
            rc.ready, rc.free, rc.drops, rc.overruns, rc.rtp_lost, rc.rtp_reordered, rc.rtp_duplicates, rc.malformed
        ));
    }
    line
}

/// One JSON stats record (`--json`), one per line.
#[derive(Debug, Clone, Serialize)]
pub struct JsonRecord<'a> {
    /// "interval" for a periodic line, "final" for the last one.
    pub event: &'a str,
    /// "rx" or "tx".
    pub mode: &'a str,
    /// Seconds since the worker started.
    pub elapsed_s: f64,
    /// Length of the period the rates cover (the whole run for "final").
    pub period_s: f64,
    #[serde(flatten)]
    pub counters: Snapshot,
    #[serde(flatten)]
    pub rates: Rates,
    /// Channel counters, absent when the ring could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ring: Option<RingCounters>,
    /// Why the run ended ("final" only): signal, time_limit, packet_limit, error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_reason: Option<&'a str>,
}

impl JsonRecord<'_> {
    /// Serialise to one line. Serialising plain numbers and strings cannot fail; the fallback
    /// still produces a valid JSON object.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"event\":\"error\",\"error\":\"{e}\"}}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_line_matches_seed_shape() {
        let prev = Snapshot { packets: 10_000_000, bytes: 9_000_000_000, ..Default::default() };
        let now = Snapshot { packets: 12_345_678, bytes: 9_876_543_210, ..Default::default() };
        let line = human_line("RX", &now, &prev, Duration::from_secs(2), None);
        assert!(line.starts_with("RX:"), "{line}");
        assert!(line.contains("12,345,678 pkts ("), "{line}");
        assert!(line.contains("1,172,839 pps)"), "{line}");
        assert!(line.contains("9,876,543 Kbytes ("), "{line}");
        assert!(line.contains("3506 Mbits/s) period:2.0"), "{line}");
    }

    #[test]
    fn rates_of_zero_period_are_zero_not_nan() {
        let s = Snapshot { packets: 5, bytes: 5, ..Default::default() };
        let r = rates(&s, &Snapshot::default(), Duration::ZERO);
        assert_eq!((r.pps, r.mbits_per_s), (0.0, 0.0));
    }

    #[test]
    fn json_record_is_one_flat_line() {
        let rec = JsonRecord {
            event: "final",
            mode: "tx",
            elapsed_s: 5.0,
            period_s: 5.0,
            counters: Snapshot { packets: 50_000, bytes: 500_000, ..Default::default() },
            rates: Rates { pps: 10_000.0, kbytes: 500, mbits_per_s: 0.8 },
            ring: None,
            exit_reason: Some("time_limit"),
        };
        let line = rec.to_line();
        assert!(!line.contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["packets"], 50_000);
        assert_eq!(v["pps"], 10_000.0);
        assert_eq!(v["exit_reason"], "time_limit");
        assert!(v.get("ring").is_none());
    }
}

//! The seed's periodic stats line, shared by every rtpmgr tool so that they all read alike:
//!
//! ```text
//! RX:     12,345,678 pkts ( 1,234,567 pps)     9,876,543 Kbytes (   789 Mbits/s) period:2.0
//! ```
//!
//! Packets and Kbytes (1000 bytes) are totals; pps and Mbits/s are rates over the period.
//!
//! It lives apart from the ring library: it is presentation, shared by the tools, not ring API.
#![deny(missing_docs)]

use std::time::Duration;

/// 12345678 -> "12,345,678".
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// Totals at the end of a period and the period's deltas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Traffic {
    /// Packets so far.
    pub packets: u64,
    /// Bytes so far.
    pub bytes: u64,
    /// Packets in this period.
    pub period_packets: u64,
    /// Bytes in this period.
    pub period_bytes: u64,
}

impl Traffic {
    /// Packets and bits per second over `period` (0 for an empty period, never NaN).
    pub fn rates(&self, period: Duration) -> (f64, f64) {
        let secs = period.as_secs_f64();
        if secs > 0.0 {
            (self.period_packets as f64 / secs, self.period_bytes as f64 * 8.0 / secs / 1e6)
        } else {
            (0.0, 0.0)
        }
    }
}

/// "`label`: N pkts (N pps) N Kbytes (N Mbits/s) period:S", the seed's shape.
pub fn seed_line(label: &str, t: &Traffic, period: Duration) -> String {
    let (pps, mbits) = t.rates(period);
    format!(
        "{label}: {:>14} pkts ({:>11} pps) {:>13} Kbytes ({:>6} Mbits/s) period:{:.1}",
        thousands(t.packets),
        thousands(pps.round() as u64),
        thousands(t.bytes / 1000),
        mbits.round() as u64,
        period.as_secs_f64(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(12_345_678), "12,345,678");
        assert_eq!(thousands(u64::MAX), "18,446,744,073,709,551,615");
    }

    #[test]
    fn seed_shape_and_rates() {
        let t =
            Traffic { packets: 12_345_678, bytes: 9_876_543_210, period_packets: 2_000_000, period_bytes: 876_543_210 };
        let l = seed_line("RX", &t, Duration::from_secs(2));
        assert!(l.starts_with("RX:"), "{l}");
        assert!(l.contains("12,345,678 pkts ("), "{l}");
        assert!(l.contains("1,000,000 pps)"), "{l}");
        assert!(l.contains("9,876,543 Kbytes ("), "{l}");
        assert!(l.contains("3506 Mbits/s) period:2.0"), "{l}");
        assert_eq!(t.rates(Duration::ZERO), (0.0, 0.0));
    }
}

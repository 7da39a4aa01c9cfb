//! The constant-rate schedule every paced sender of the benchmark follows (UDP sender, ring TX
//! producer, hand-off producer): a packet is due when its share of the run's time has passed, so
//! a sender that fell behind (a descheduled thread on the guest's two vCPUs) catches up in one
//! burst instead of drifting below the asked rate.

use std::time::Instant;

pub struct Schedule {
    start: Instant,
    rate: f64,
    total: u64,
}

impl Schedule {
    /// `rate` packets per second for `secs` seconds, starting now.
    pub fn for_duration(rate: u64, secs: f64) -> Self {
        Schedule { start: Instant::now(), rate: rate as f64, total: (rate as f64 * secs) as u64 }
    }

    /// `rate` packets per second, starting now, for as long as the caller goes on.
    pub fn unbounded(rate: u64) -> Self {
        Schedule { start: Instant::now(), rate: rate as f64, total: u64::MAX }
    }

    /// How many packets the whole run sends.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// How many packets are due by now, counted from the start (never more than the total).
    pub fn due(&self) -> u64 {
        ((self.start.elapsed().as_secs_f64() * self.rate) as u64).min(self.total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn nothing_is_due_at_the_start_and_the_total_caps_what_is_due() {
        // 50/s: a packet is due every 20 ms, so a descheduled test thread does not fail it.
        let s = Schedule::for_duration(50, 0.1);
        assert_eq!(s.total(), 5);
        assert!(s.due() <= 1, "due {} right after the start", s.due());
        std::thread::sleep(Duration::from_millis(150));
        assert_eq!(s.due(), 5, "after the run's time every packet is due, and no more");
    }

    #[test]
    fn an_unbounded_schedule_keeps_counting() {
        let s = Schedule::unbounded(100_000);
        std::thread::sleep(Duration::from_millis(5));
        assert!(s.due() >= 500, "due {} after 5 ms at 100k/s", s.due());
    }
}

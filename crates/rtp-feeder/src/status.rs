//! Stream status indicator: one LED behind an embedded-hal 1.0 [`OutputPin`].
//!
//! The feeder reports one of three states; the indicator turns them into pin levels:
//!
//! | status  | LED                                   |
//! |---------|---------------------------------------|
//! | `Down`  | off (no packets in the idle window)   |
//! | `Up`    | on, steady (packets are flowing)      |
//! | `Error` | blinking (data lost, or fatal error)  |
//!
//! The module knows nothing about GPIO chips: on the device the pin is a
//! `linux_embedded_hal::CdevPin` (see [`crate::led`]), in tests an `embedded-hal-mock` pin that
//! asserts every transition. The pin is written only when its level must change, so a
//! steady state costs no syscalls and the mock sees exactly the transitions.

use std::time::{Duration, Instant};

use embedded_hal::digital::OutputPin;

/// What the stream is doing, as shown on the LED.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamStatus {
    /// No packets moved within the idle window (or the pipeline is not playing yet).
    Down,
    /// Packets are moving.
    Up,
    /// Packets were lost (ring full, fallback drops, queue drops) or the pipeline failed.
    Error,
}

/// Half period of the error blink: 2.5 Hz is readable and unlike a flickering "up" LED.
pub const BLINK_HALF_PERIOD: Duration = Duration::from_millis(200);

/// Drives one output pin from a [`StreamStatus`].
#[derive(Debug)]
pub struct StatusIndicator<P: OutputPin> {
    pin: P,
    status: StreamStatus,
    /// Level last written to the pin (true = high = LED lit).
    lit: bool,
    /// When the blink last toggled, only meaningful in `Error`.
    toggled_at: Instant,
    /// Pin writes that failed; an LED is cosmetic, so failures are counted, never fatal.
    pub pin_errors: u64,
}

impl<P: OutputPin> StatusIndicator<P> {
    /// Takes the pin and drives it low: a restarted feeder must not show a stale "up".
    pub fn new(pin: P, now: Instant) -> Self {
        let mut ind = Self { pin, status: StreamStatus::Down, lit: true, toggled_at: now, pin_errors: 0 };
        ind.drive(false);
        ind
    }

    /// The status shown now.
    pub fn status(&self) -> StreamStatus {
        self.status
    }

    /// Switches to `status`; writes the pin only if its level changes.
    pub fn set(&mut self, status: StreamStatus, now: Instant) {
        if status == self.status {
            return;
        }
        self.status = status;
        match status {
            StreamStatus::Down => self.drive(false),
            StreamStatus::Up => self.drive(true),
            StreamStatus::Error => {
                // Start the blink with a visible change from whatever was shown before.
                self.toggled_at = now;
                let level = !self.lit;
                self.drive(level);
            }
        }
    }

    /// Advances the blink; call it at least every [`BLINK_HALF_PERIOD`].
    pub fn tick(&mut self, now: Instant) {
        if self.status == StreamStatus::Error && now.duration_since(self.toggled_at) >= BLINK_HALF_PERIOD {
            self.toggled_at = now;
            let level = !self.lit;
            self.drive(level);
        }
    }

    /// Gives the pin back (tests call `done()` on the mock; the device drops the line).
    pub fn into_inner(self) -> P {
        self.pin
    }

    fn drive(&mut self, lit: bool) {
        if lit == self.lit {
            return;
        }
        let res = if lit { self.pin.set_high() } else { self.pin.set_low() };
        match res {
            Ok(()) => self.lit = lit,
            Err(e) => {
                self.pin_errors += 1;
                // Once is enough in the log: a broken LED line would otherwise flood it.
                if self.pin_errors == 1 {
                    log::warn!("status LED: failed to set pin {}: {e:?}", if lit { "high" } else { "low" });
                }
            }
        }
    }
}

/// Counters the status is derived from, sampled once per control-loop tick.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Activity {
    /// Packets that moved between the ring and GStreamer (either direction).
    pub packets: u64,
    /// Packets lost by the feeder (fallback drops, queue drops, ring full, oversize).
    pub lost: u64,
}

/// Derives the status from two samples of [`Activity`].
///
/// `idle_for` is how long `packets` has not changed; `lost_recently` whether `lost` grew within
/// the error hold window. A fatal pipeline error wins over everything.
pub fn derive_status(idle_for: Duration, idle_timeout: Duration, lost_recently: bool, fatal: bool) -> StreamStatus {
    if fatal || lost_recently {
        StreamStatus::Error
    } else if idle_for >= idle_timeout {
        StreamStatus::Down
    } else {
        StreamStatus::Up
    }
}

/// Tracks when `Activity` last changed, so the control loop can call [`derive_status`].
#[derive(Debug)]
pub struct ActivityWatch {
    last: Activity,
    moved_at: Option<Instant>,
    lost_at: Option<Instant>,
    /// How long the LED keeps blinking after the last loss.
    pub error_hold: Duration,
    /// How long without packets before the stream counts as down.
    pub idle_timeout: Duration,
}

impl ActivityWatch {
    /// A watch that has seen nothing yet (status `Down`).
    pub fn new(idle_timeout: Duration, error_hold: Duration) -> Self {
        Self { last: Activity::default(), moved_at: None, lost_at: None, error_hold, idle_timeout }
    }

    /// Feeds a new sample and returns the status it implies.
    pub fn update(&mut self, now: Instant, sample: Activity, fatal: bool) -> StreamStatus {
        if sample.packets != self.last.packets {
            self.moved_at = Some(now);
        }
        if sample.lost != self.last.lost {
            self.lost_at = Some(now);
        }
        self.last = sample;
        let idle_for = self.moved_at.map_or(Duration::MAX, |t| now.duration_since(t));
        let lost_recently = self.lost_at.is_some_and(|t| now.duration_since(t) < self.error_hold);
        derive_status(idle_for, self.idle_timeout, lost_recently, fatal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use embedded_hal_mock::eh1::digital::{Mock as PinMock, State, Transaction};

    #[test]
    fn new_drives_low_then_up_down_write_only_on_change() {
        let t0 = Instant::now();
        let pin = PinMock::new(&[
            Transaction::set(State::Low),  // new(): never show a stale "up"
            Transaction::set(State::High), // Down -> Up
            Transaction::set(State::Low),  // Up -> Down
        ]);
        let mut ind = StatusIndicator::new(pin, t0);
        ind.set(StreamStatus::Down, t0); // no change, no write
        ind.set(StreamStatus::Up, t0);
        ind.set(StreamStatus::Up, t0 + Duration::from_secs(1)); // steady: no write
        ind.tick(t0 + Duration::from_secs(2)); // not blinking: no write
        ind.set(StreamStatus::Down, t0 + Duration::from_secs(3));
        ind.into_inner().done();
    }

    #[test]
    fn error_blinks_and_recovers() {
        let t0 = Instant::now();
        let pin = PinMock::new(&[
            Transaction::set(State::Low),  // new
            Transaction::set(State::High), // Up
            Transaction::set(State::Low),  // Error: immediate visible change
            Transaction::set(State::High), // blink
            Transaction::set(State::Low),  // blink
            Transaction::set(State::High), // back to Up
        ]);
        let mut ind = StatusIndicator::new(pin, t0);
        ind.set(StreamStatus::Up, t0);
        ind.set(StreamStatus::Error, t0);
        ind.tick(t0 + BLINK_HALF_PERIOD / 2); // too early: no write
        ind.tick(t0 + BLINK_HALF_PERIOD);
        ind.tick(t0 + BLINK_HALF_PERIOD * 2);
        // LED is low now; Up must light it again.
        ind.set(StreamStatus::Up, t0 + BLINK_HALF_PERIOD * 3);
        ind.into_inner().done();
    }

    #[test]
    fn error_from_down_lights_first() {
        let t0 = Instant::now();
        let pin =
            PinMock::new(&[Transaction::set(State::Low), Transaction::set(State::High), Transaction::set(State::Low)]);
        let mut ind = StatusIndicator::new(pin, t0);
        ind.set(StreamStatus::Error, t0);
        ind.set(StreamStatus::Down, t0 + Duration::from_millis(10));
        ind.into_inner().done();
    }

    #[test]
    fn pin_errors_are_counted_not_fatal() {
        let t0 = Instant::now();
        let err = embedded_hal_mock::eh1::MockError::Io(std::io::ErrorKind::Other);
        let pin = PinMock::new(&[
            Transaction::set(State::Low),
            Transaction::set(State::High).with_error(err),
            // The failed write left the level unknown-but-low, so the next Up retries.
            Transaction::set(State::High),
        ]);
        let mut ind = StatusIndicator::new(pin, t0);
        ind.set(StreamStatus::Up, t0);
        assert_eq!(ind.pin_errors, 1);
        ind.set(StreamStatus::Down, t0);
        ind.set(StreamStatus::Up, t0);
        ind.into_inner().done();
    }

    #[test]
    fn activity_watch_up_down_error() {
        let t0 = Instant::now();
        let mut w = ActivityWatch::new(Duration::from_secs(1), Duration::from_secs(2));
        assert_eq!(w.update(t0, Activity::default(), false), StreamStatus::Down);
        let a = Activity { packets: 10, lost: 0 };
        assert_eq!(w.update(t0 + Duration::from_millis(100), a, false), StreamStatus::Up);
        // Still within the idle window with no new packets: up.
        assert_eq!(w.update(t0 + Duration::from_millis(900), a, false), StreamStatus::Up);
        assert_eq!(w.update(t0 + Duration::from_millis(1200), a, false), StreamStatus::Down);
        let b = Activity { packets: 20, lost: 1 };
        assert_eq!(w.update(t0 + Duration::from_millis(1300), b, false), StreamStatus::Error);
        let c = Activity { packets: 30, lost: 1 };
        assert_eq!(w.update(t0 + Duration::from_millis(3000), c, false), StreamStatus::Error);
        assert_eq!(
            w.update(t0 + Duration::from_millis(3400), Activity { packets: 40, lost: 1 }, false),
            StreamStatus::Up
        );
        assert_eq!(
            w.update(t0 + Duration::from_millis(3500), Activity { packets: 50, lost: 1 }, true),
            StreamStatus::Error
        );
    }
}

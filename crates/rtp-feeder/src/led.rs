//! The device side of the status LED: a GPIO line through the gpio character device
//! (`linux_embedded_hal::CdevPin`), wrapped so that "high" always means "LED lit".

use anyhow::{Context, Result};
use embedded_hal::digital::{ErrorType, OutputPin};
use linux_embedded_hal::gpio_cdev::{Chip, LineRequestFlags};
use linux_embedded_hal::{CdevPin, CdevPinError};

use crate::config::LedConfig;

/// Consumer label shown by `gpioinfo` for the requested line.
const CONSUMER: &str = "rtp-feeder";

/// An LED on a GPIO line; `set_high` lights it whatever the wiring.
///
/// Active-low wiring is handled here and not with the kernel's ACTIVE_LOW request flag:
/// `CdevPin` inverts again for lines whose info says active-low, so the two would cancel.
pub struct LedPin {
    pin: CdevPin,
    active_low: bool,
}

// CdevPin has no Debug; the line's identity is what matters in a log.
impl std::fmt::Debug for LedPin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LedPin").field("active_low", &self.active_low).finish_non_exhaustive()
    }
}

impl ErrorType for LedPin {
    type Error = CdevPinError;
}

impl OutputPin for LedPin {
    fn set_high(&mut self) -> Result<(), Self::Error> {
        if self.active_low {
            self.pin.set_low()
        } else {
            self.pin.set_high()
        }
    }
    fn set_low(&mut self) -> Result<(), Self::Error> {
        if self.active_low {
            self.pin.set_high()
        } else {
            self.pin.set_low()
        }
    }
}

/// Requests the configured line as an output, initially off.
pub fn open(cfg: &LedConfig) -> Result<LedPin> {
    let what = || format!("status LED line {} on {}", cfg.line, cfg.chip.display());
    let mut chip = Chip::new(&cfg.chip).with_context(|| {
        format!("failed to open {} (set enabled = false in [status_led] to run without it)", what())
    })?;
    let line = chip.get_line(cfg.line).with_context(|| format!("failed to get {}", what()))?;
    let off = u8::from(cfg.active_low);
    let handle = line
        .request(LineRequestFlags::OUTPUT, off, CONSUMER)
        .with_context(|| format!("failed to request {} (in use?)", what()))?;
    let pin = CdevPin::new(handle).with_context(|| format!("failed to read the line info of {}", what()))?;
    Ok(LedPin { pin, active_low: cfg.active_low })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_chip_is_a_clear_error() {
        let cfg = LedConfig { chip: "/dev/gpiochip-does-not-exist".into(), line: 3, active_low: false };
        let e = format!("{:#}", open(&cfg).unwrap_err());
        assert!(
            e.contains("line 3 on /dev/gpiochip-does-not-exist") && e.contains("enabled = false in [status_led]"),
            "{e}"
        );
    }
}

//! The only module that talks to the ring library (crates/rtpmgr).
//!
//! - [`RingHandle`]: the channel's control handle, for status and stats (kept by the main
//!   thread while the consumer or producer works elsewhere).
//! - [`RxRing`]: the consumer side, popping READY slots as `rtpmgr::ReadSlot` guards.
//! - [`TxRing`]: the producer side, copying one RTP buffer per FREE slot and pushing it.

use std::time::Duration;

use anyhow::{Context, Result};
use rtpmgr::{Backend, Channel, Consumer, Producer, ReadSlot};

use crate::config::RingLocation;
use crate::rx::RxSlot;
use crate::stats::RingView;

impl RxSlot for ReadSlot {
    fn arrival_ns(&self) -> u64 {
        ReadSlot::arrival_ns(self)
    }
}

/// The ring library's backend for a configured location.
pub fn backend(loc: &RingLocation) -> Backend {
    match loc {
        RingLocation::KernelChannel(n) => Backend::kernel(*n),
        RingLocation::KernelDevice(p) => Backend::kernel_path(p),
        RingLocation::Shm { name, channel } => Backend::shm(name).with_channel(*channel),
    }
}

/// Control handle of the channel: status and counters, from any thread.
#[derive(Debug, Clone)]
pub struct RingHandle {
    channel: Channel,
}

impl RingHandle {
    /// Opens the channel (a shm ring is created with the default config if absent).
    pub fn open(loc: &RingLocation) -> Result<Self> {
        let b = backend(loc);
        let channel = Channel::open(&b).with_context(|| match loc {
            RingLocation::KernelChannel(_) | RingLocation::KernelDevice(_) => format!(
                "failed to open ring {} (module loaded? user in group rtpmgr? or use --backend shm)",
                b.path().display()
            ),
            RingLocation::Shm { .. } => format!("failed to open shm ring {}", b.path().display()),
        })?;
        Ok(Self { channel })
    }

    /// Device path or `shm:<path>`.
    pub fn describe(&self) -> String {
        self.channel.name().to_string()
    }

    /// Slot counts and loss counters right now; `None` (logged once by the caller's report)
    /// if the ring cannot be asked.
    pub fn view(&self) -> Option<RingView> {
        let st = self.channel.status().ok()?;
        let stats = self.channel.stats().ok()?;
        Some(RingView {
            free: st.free,
            ready: st.ready,
            producing: st.producing,
            consuming: st.consuming,
            overruns: stats.overruns,
            drops: stats.drops,
        })
    }

    /// The consumer side (maps the ring). Claims the channel's consumer role (ABI 2.0), so no
    /// other process can pop the pipeline's packets.
    pub fn consumer(&self) -> Result<RxRing> {
        self.channel.claim(rtpmgr::abi::RTPM_ROLE_CONSUMER).with_context(|| {
            format!("ring {} already has a consumer (another rtp-feeder or rtp_app?)", self.describe())
        })?;
        let consumer = self.channel.consumer().with_context(|| format!("failed to map ring {}", self.describe()))?;
        Ok(RxRing { consumer })
    }

    /// The producer side (maps the ring): claims the channel's producer role (ABI 2.0), which
    /// also lets it start a stopped channel without CAP_NET_ADMIN, as every producer does.
    pub fn producer(&self) -> Result<TxRing> {
        self.channel.claim(rtpmgr::abi::RTPM_ROLE_PRODUCER).with_context(|| {
            format!("ring {} already has a producer (another rtp-feeder or rtp_app?)", self.describe())
        })?;
        if !self.channel.is_running().with_context(|| format!("failed to query ring {}", self.describe()))? {
            self.channel.start().with_context(|| format!("failed to start ring {}", self.describe()))?;
            log::info!("started stopped channel {}", self.describe());
        }
        let producer = self.channel.producer().with_context(|| format!("failed to map ring {}", self.describe()))?;
        Ok(TxRing { producer })
    }
}

/// Consumer side of the ring.
#[derive(Debug)]
pub struct RxRing {
    consumer: Consumer,
}

impl RxRing {
    /// Slots in the ring.
    pub fn slot_count(&self) -> u32 {
        self.consumer.ring().layout().slot_count
    }

    /// Payload bytes per slot.
    pub fn slot_payload(&self) -> u32 {
        self.consumer.ring().layout().slot_payload
    }

    /// Pops up to `max` READY slots into `out`, waiting up to `timeout` for the first one.
    /// Leaves `out` empty on timeout (or a signal), so the caller can check for shutdown.
    pub fn pop_batch(&mut self, max: u32, timeout: Duration, out: &mut Vec<ReadSlot>) -> Result<()> {
        let slots = self.consumer.pop_batch_wait(max as usize, Some(timeout)).context("failed to pop from the ring")?;
        out.extend(slots);
        Ok(())
    }

    /// Releases the slots whose buffers GStreamer already freed (they are batched).
    pub fn flush(&self) -> Result<usize> {
        self.consumer.flush().context("failed to release slots")
    }
}

impl crate::rx::RxSource for RxRing {
    type Slot = ReadSlot;
    fn pop_batch(&mut self, max: u32, timeout: Duration, out: &mut Vec<ReadSlot>) -> Result<()> {
        RxRing::pop_batch(self, max, timeout, out)
    }
}

/// A bare consumer of the ring library (the benchmarks drive one) feeds appsrc the same way.
impl crate::rx::RxSource for Consumer {
    type Slot = ReadSlot;
    fn pop_batch(&mut self, max: u32, timeout: Duration, out: &mut Vec<ReadSlot>) -> Result<()> {
        out.extend(self.pop_batch_wait(max as usize, Some(timeout)).context("failed to pop from the ring")?);
        Ok(())
    }
}

/// What happened to one RTP buffer offered to the ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxOutcome {
    /// Copied into a slot and pushed READY.
    Pushed,
    /// No FREE slot: the ring's consumer is behind or absent.
    Full,
    /// The channel was stopped (RESERVE/PUSH answer EPIPE).
    Stopped,
    /// Larger than a slot's payload.
    Oversize,
}

/// Producer side of the ring.
#[derive(Debug)]
pub struct TxRing {
    producer: Producer,
}

impl TxRing {
    /// Payload bytes per slot.
    pub fn slot_payload(&self) -> u32 {
        self.producer.ring().layout().slot_payload
    }

    /// Copies `data` into a FREE slot and pushes it. The ring stamps the arrival time.
    ///
    /// The copy is the one copy of TX: the payloader's output lives in GStreamer memory;
    /// writing it straight into slots would need a slot-backed buffer pool (see the docs).
    pub fn write(&mut self, data: &[u8]) -> Result<TxOutcome> {
        if data.len() > self.slot_payload() as usize {
            return Ok(TxOutcome::Oversize);
        }
        let mut slot = match self.producer.reserve() {
            Ok(s) => s,
            Err(e) if e.is_would_block() => return Ok(TxOutcome::Full),
            Err(e) if e.errno() as i32 == libc::EPIPE => return Ok(TxOutcome::Stopped),
            Err(e) => return Err(e).context("failed to reserve a ring slot"),
        };
        slot.fill(data).context("failed to fill a ring slot")?;
        match self.producer.push(slot) {
            Ok(()) => Ok(TxOutcome::Pushed),
            // Stopped between reserve and push: the library keeps the slot as a spare.
            Err(e) if e.errno() as i32 == libc::EPIPE => Ok(TxOutcome::Stopped),
            Err(e) => Err(e).context("failed to push a ring slot"),
        }
    }
}

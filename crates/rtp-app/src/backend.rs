//! The real backends, through the `rtpmgr` library: the kernel device and the shm ring, and the
//! choice between them (`--backend`, `--device`, `--channel`, `--shm-name`).
//!
//! rtp_app drives the ring with the library's batched slot operations (`Channel::raw`) and
//! reaches payload memory through the library's validated mapping (`Ring::payload_ptr`), so
//! that its own [`Checked`](crate::ring::Checked) layer sees every index the ring returns.
//! Slots owned by a handle that is dropped return to FREE (the kernel reclaims them when the
//! file closes; the shm backend does the same through its handle table).

use crate::cli::{BackendKind, CommonArgs};
use crate::ring::{Avail, Backend, Control, Ring};
use anyhow::{anyhow, Context, Result};
use nix::errno::Errno;
use rtpmgr::{Channel, Config, Dir, SlotOp};
use rtpmgr_abi::{RtpmConfig, RtpmInfo, RtpmSlotRef, RtpmStats, RtpmStatus};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// An `rtpmgr::Backend` with a name for messages.
#[derive(Debug, Clone)]
pub struct RtpmgrBackend {
    inner: rtpmgr::Backend,
}

impl RtpmgrBackend {
    /// Wrap an rtpmgr backend description.
    pub fn new(inner: rtpmgr::Backend) -> Self {
        Self { inner }
    }

    fn open_channel(&self) -> Result<Channel> {
        Channel::open(&self.inner).map_err(|e| {
            let hint = match (self.inner.kind(), e.errno()) {
                (rtpmgr::BackendKind::Kernel, Errno::ENOENT) => {
                    ": the rtp_mgr module is not loaded (modprobe rtp_mgr) or the channel does not exist; \
                     use --backend shm on a host without it"
                }
                (rtpmgr::BackendKind::Kernel, Errno::EACCES) | (rtpmgr::BackendKind::Kernel, Errno::EPERM) => {
                    ": add the user to group rtpmgr (the device nodes are 0660 root:rtpmgr)"
                }
                _ => "",
            };
            anyhow!("{e}{hint}")
        })
    }
}

/// A control handle: an open channel, not mapped.
struct ChannelCtl(Channel);

fn ctl_impl(ch: &Channel) -> &Channel {
    ch
}

macro_rules! control_via_channel {
    ($t:ty, $field:tt) => {
        impl Control for $t {
            fn info(&self) -> Result<RtpmInfo> {
                Ok(ctl_impl(&self.$field).info()?)
            }
            fn stats(&self) -> Result<RtpmStats> {
                Ok(ctl_impl(&self.$field).stats()?)
            }
            fn status(&self) -> Result<RtpmStatus> {
                Ok(ctl_impl(&self.$field).status()?)
            }
            fn start(&self) -> Result<()> {
                Ok(ctl_impl(&self.$field).start()?)
            }
            fn stop(&self) -> Result<()> {
                Ok(ctl_impl(&self.$field).stop()?)
            }
            fn reset(&self) -> Result<()> {
                Ok(ctl_impl(&self.$field).reset()?)
            }
            fn configure(&self, cfg: &RtpmConfig) -> Result<()> {
                Ok(ctl_impl(&self.$field).configure(&Config::from_raw(cfg))?)
            }
        }
    };
}

control_via_channel!(ChannelCtl, 0);

/// A mapped handle.
struct MappedRing {
    ch: Channel,
    ring: rtpmgr::Ring,
}

control_via_channel!(MappedRing, ch);

impl MappedRing {
    /// One batched slot operation, with the errnos rtp_app reacts to turned into [`Avail`].
    fn batch(&self, op: SlotOp, slots: &mut [RtpmSlotRef]) -> Result<Avail> {
        if slots.is_empty() {
            return Ok(Avail::Nothing);
        }
        match self.ch.raw().batch(op, slots) {
            Ok(0) => Ok(Avail::Nothing),
            Ok(n) => Ok(Avail::Done(n.min(slots.len()))),
            Err(e) if e.errno() == Errno::EAGAIN => Ok(Avail::Nothing),
            Err(e) if e.errno() == Errno::EPIPE => Ok(Avail::Stopped),
            Err(e) => Err(e.into()),
        }
    }
}

impl Ring for MappedRing {
    fn reserve(&mut self, out: &mut [RtpmSlotRef]) -> Result<Avail> {
        out.iter_mut().for_each(|r| *r = RtpmSlotRef::default());
        self.batch(SlotOp::Reserve, out)
    }

    fn push(&mut self, slots: &[RtpmSlotRef]) -> Result<Avail> {
        // The ioctl takes a mutable array (count is in/out); entries are only read.
        let mut tmp = slots.to_vec();
        self.batch(SlotOp::Push, &mut tmp)
    }

    fn pop(&mut self, out: &mut [RtpmSlotRef], timeout: Duration) -> Result<Avail> {
        out.iter_mut().for_each(|r| *r = RtpmSlotRef::default());
        match self.batch(SlotOp::Pop, out)? {
            Avail::Nothing if !timeout.is_zero() => {
                // One bounded wait, then one more try; the caller loops and checks its stop flag.
                if self.ch.wait(Dir::Readable, Some(timeout))? {
                    self.batch(SlotOp::Pop, out)
                } else {
                    Ok(Avail::Nothing)
                }
            }
            other => Ok(other),
        }
    }

    fn release(&mut self, slots: &[RtpmSlotRef]) -> Result<usize> {
        let mut tmp = slots.to_vec();
        match self.batch(SlotOp::Release, &mut tmp)? {
            Avail::Done(n) => Ok(n),
            _ => Ok(0),
        }
    }

    fn slot_payload(&self) -> usize {
        self.ring.layout().slot_payload as usize
    }

    fn slot_count(&self) -> u32 {
        self.ring.layout().slot_count
    }

    fn payload_ptr(&mut self, index: u32) -> *mut u8 {
        self.ring.payload_ptr(index)
    }
}

impl Backend for RtpmgrBackend {
    fn open(&self) -> Result<Box<dyn Ring>> {
        let ch = self.open_channel()?;
        let ring = ch.map().with_context(|| format!("cannot map {}", ch.name()))?;
        Ok(Box::new(MappedRing { ch, ring }))
    }

    fn open_exclusive(&self) -> Result<Box<dyn Ring>> {
        let ch = Channel::open_exclusive(&self.inner).map_err(|e| anyhow!("{e}"))?;
        let ring = ch.map().with_context(|| format!("cannot map {}", ch.name()))?;
        Ok(Box::new(MappedRing { ch, ring }))
    }

    fn open_control(&self) -> Result<Box<dyn Control>> {
        Ok(Box::new(ChannelCtl(self.open_channel()?)))
    }

    fn describe(&self) -> String {
        match self.inner.kind() {
            rtpmgr::BackendKind::Kernel => self.inner.path().display().to_string(),
            rtpmgr::BackendKind::Shm => format!("shm ring {}", self.inner.path().display()),
        }
    }

    fn is_kernel(&self) -> bool {
        self.inner.kind() == rtpmgr::BackendKind::Kernel
    }
}

/// The device path `--device` or `--channel` names.
pub fn device_path(c: &CommonArgs) -> PathBuf {
    c.device.clone().unwrap_or_else(|| PathBuf::from(format!("/dev/{}{}", rtpmgr_abi::RTPM_DEVICE_PREFIX, c.channel)))
}

/// The shm backend `--shm-name` / `--channel` names.
fn shm_backend(c: &CommonArgs, name: Option<&str>) -> rtpmgr::Backend {
    match name.or(c.shm_name.as_deref()) {
        Some(n) => rtpmgr::Backend::shm(n).with_channel(c.channel),
        None => rtpmgr::Backend::shm_channel(c.channel),
    }
}

/// Choose the backend: `--backend` if given; otherwise the kernel device if it exists, else an
/// error that names both ways out.
pub fn select(c: &CommonArgs) -> Result<Arc<dyn Backend>> {
    let dev = device_path(c);
    let b = match c.backend {
        Some(BackendKind::Shm) => shm_backend(c, None),
        Some(BackendKind::Kernel) => rtpmgr::Backend::kernel_path(dev),
        None if dev.exists() => rtpmgr::Backend::kernel_path(dev),
        None => {
            return Err(anyhow!(
                "{} does not exist: load the kernel module (modprobe rtp_mgr) or run without it \
                 using --backend shm",
                dev.display()
            ))
        }
    };
    Ok(Arc::new(RtpmgrBackend::new(b)))
}

/// The private shm ring diag uses when no --shm-name is given (so it never disturbs a running
/// shm pipeline).
fn diag_shm_name() -> String {
    format!("rtpmgr-diag-{}", std::process::id())
}

/// A function opening channel N of the kernel backend (diag looks for an idle channel).
pub type ChannelOpener = Box<dyn Fn(u32) -> Arc<dyn Backend>>;

/// Backend for `diag`, and for the kernel a way to reach the other channels.
pub fn select_for_diag(c: &CommonArgs) -> Result<(Arc<dyn Backend>, Option<ChannelOpener>)> {
    if c.backend == Some(BackendKind::Shm) {
        let name = c.shm_name.clone().unwrap_or_else(diag_shm_name);
        return Ok((Arc::new(RtpmgrBackend::new(shm_backend(c, Some(&name)))), None));
    }
    // diag always inspects the kernel unless told otherwise: a missing device is a FAIL line,
    // not a reason to silently test something else.
    let b: Arc<dyn Backend> = Arc::new(RtpmgrBackend::new(rtpmgr::Backend::kernel_path(device_path(c))));
    let other: ChannelOpener =
        Box::new(|n| Arc::new(RtpmgrBackend::new(rtpmgr::Backend::kernel(n))) as Arc<dyn Backend>);
    Ok((b, Some(other)))
}

/// Remove diag's private shm ring.
pub fn cleanup_diag(c: &CommonArgs) -> Result<()> {
    if c.backend == Some(BackendKind::Shm) && c.shm_name.is_none() {
        let path = rtpmgr::shm_dir().join(diag_shm_name());
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot remove diag's shm ring {}", path.display())),
        }
    }
    Ok(())
}

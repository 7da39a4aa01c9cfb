//! Which ring rtp_app uses — the kernel device or the shm ring — chosen from the command line
//! (`--backend`, `--device`, `--channel`, `--shm-name`), and opening it with messages that name
//! the fix.
//!
//! rtp_app touches rings only through the ring library's guard API (`rtpmgr::Producer`,
//! `rtpmgr::Consumer`, `WriteSlot`, `ReadSlot`): the library validates every slot the ring
//! hands back and keeps slot ownership straight, so rtp_app has no ring layer of its own.

use crate::cli::{BackendKind, CommonArgs};
use anyhow::{anyhow, Context, Result};
use nix::errno::Errno;
use rtpmgr::{Backend, Channel, Ring};
use std::path::PathBuf;

/// What `backend` is, for messages: "/dev/rtp_mgr0", "shm ring /dev/shm/rtpmgr-0".
pub fn describe(backend: &Backend) -> String {
    match backend.kind() {
        rtpmgr::BackendKind::Kernel => backend.path().display().to_string(),
        rtpmgr::BackendKind::Shm => format!("shm ring {}", backend.path().display()),
    }
}

/// Adds the operator's next step to an open error.
fn open_error(backend: &Backend, e: rtpmgr::Error) -> anyhow::Error {
    let hint = match (backend.kind(), e.errno()) {
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
}

/// Opens a channel of `backend` (for control operations; not mapped).
pub fn open(backend: &Backend) -> Result<Channel> {
    Channel::open(backend).map_err(|e| open_error(backend, e))
}

/// Opens and maps a channel of `backend`.
pub fn open_mapped(backend: &Backend) -> Result<Ring> {
    let ch = open(backend)?;
    ch.map().with_context(|| format!("cannot map {}", ch.name()))
}

/// Opens and maps a channel that no other user of the ring library has open, keeping them out
/// until it is dropped (their opens wait): for self-tests whose packets must not reach a
/// pipeline. Fails if the channel is in use.
pub fn open_exclusive(backend: &Backend) -> Result<Ring> {
    let ch = Channel::open_exclusive(backend).map_err(|e| open_error(backend, e))?;
    ch.map().with_context(|| format!("cannot map {}", ch.name()))
}

/// The device path `--device` or `--channel` names.
pub fn device_path(c: &CommonArgs) -> PathBuf {
    c.device.clone().unwrap_or_else(|| PathBuf::from(format!("/dev/{}{}", rtpmgr_abi::RTPM_DEVICE_PREFIX, c.channel)))
}

/// The shm backend `--shm-name` / `--channel` names.
fn shm_backend(c: &CommonArgs, name: Option<&str>) -> Backend {
    match name.or(c.shm_name.as_deref()) {
        Some(n) => Backend::shm(n).with_channel(c.channel),
        None => Backend::shm_channel(c.channel),
    }
}

/// Choose the backend: `--backend` if given; otherwise the kernel device if it exists, else an
/// error that names both ways out.
pub fn select(c: &CommonArgs) -> Result<Backend> {
    let dev = device_path(c);
    Ok(match c.backend {
        Some(BackendKind::Shm) => shm_backend(c, None),
        Some(BackendKind::Kernel) => Backend::kernel_path(dev),
        None if dev.exists() => Backend::kernel_path(dev),
        None => {
            return Err(anyhow!(
                "{} does not exist: load the kernel module (modprobe rtp_mgr) or run without it \
                 using --backend shm",
                dev.display()
            ))
        }
    })
}

/// The private shm ring diag uses when no --shm-name is given (so it never disturbs a running
/// shm pipeline).
fn diag_shm_name() -> String {
    format!("rtpmgr-diag-{}", std::process::id())
}

/// Backend for `diag`, and whether diag may look for an idle channel among the other kernel
/// channels (`Backend::kernel(n)`).
pub fn select_for_diag(c: &CommonArgs) -> (Backend, bool) {
    if c.backend == Some(BackendKind::Shm) {
        let name = c.shm_name.clone().unwrap_or_else(diag_shm_name);
        return (shm_backend(c, Some(&name)), false);
    }
    // diag always inspects the kernel unless told otherwise: a missing device is a FAIL line,
    // not a reason to silently test something else.
    (Backend::kernel_path(device_path(c)), true)
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

/// Stats and status of a channel in the shape of the stats line.
pub fn ring_counters(stats: &rtpmgr::Stats, status: Option<&rtpmgr::Status>) -> crate::stats::RingCounters {
    crate::stats::RingCounters {
        pushed_packets: stats.pushed_packets,
        popped_packets: stats.popped_packets,
        drops: stats.drops,
        overruns: stats.overruns,
        underruns: stats.underruns,
        rtp_lost: stats.rtp_lost,
        rtp_reordered: stats.rtp_reordered,
        rtp_duplicates: stats.rtp_duplicates,
        malformed: stats.malformed,
        reclaimed: stats.reclaimed,
        illegal_ops: stats.illegal_ops,
        ready: status.map_or(0, |s| s.ready),
        free: status.map_or(0, |s| s.free),
    }
}

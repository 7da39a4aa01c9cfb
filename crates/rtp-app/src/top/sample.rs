//! What `rtp_app top` reads: every channel of one backend, its counters, status and stream quality
//! at one instant, and which processes have it open.
//!
//! Every channel is read through the ring library. Kernel channels are every `/dev/rtp_mgrN`
//! present, opened read-only (`Channel::open_read_only`): GET_INFO, GET_STATS, GET_STATUS and
//! GET_QUALITY need no write access (include/rtp_mgr_ioctl.h, "any opener"), so a monitor cannot
//! disturb the data path and needs no more privilege than reading the node. Shm channels are the
//! ring files `rtpmgr-N` under the shm directory (or the one `--shm-name` names), opened with
//! `Channel::open`: a shm ring has no read-only mode.
//!
//! Holders come from `/proc/<pid>/fd`: the kernel records who owns a slot only as an open file, not
//! as a process, so the processes that have a channel's node (or shm file) open are the ones that
//! can hold its slots.

use anyhow::{anyhow, Context, Result};
use rtpmgr::{Backend, Channel, Quality};
use rtpmgr_abi::{RtpmInfo, RtpmStats, RtpmStatus, RTPM_DEVICE_PREFIX};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Prefix of the shm ring files one per channel (`rtpmgr-N`, as `Backend::shm_channel` names them).
const SHM_PREFIX: &str = "rtpmgr-";

/// Which rings top watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Watch {
    /// Every `/dev/rtp_mgrN` under this directory (`/dev`).
    Kernel { dev_dir: PathBuf },
    /// Every `rtpmgr-N` file under this directory (`rtpmgr::shm_dir()`).
    ShmAll { dir: PathBuf },
    /// One named shm ring (`--shm-name`).
    ShmOne { path: PathBuf },
}

impl Watch {
    /// "kernel" or "shm", for headers and JSON.
    pub fn backend_name(&self) -> &'static str {
        match self {
            Watch::Kernel { .. } => "kernel",
            Watch::ShmAll { .. } | Watch::ShmOne { .. } => "shm",
        }
    }
}

/// A process that has a channel open.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Holder {
    pub pid: u32,
    /// `/proc/<pid>/comm`: the thread-group leader's name, at most 15 bytes.
    pub comm: String,
}

/// One reading of one channel.
#[derive(Debug, Clone)]
pub struct Sample {
    /// CLOCK_MONOTONIC ns when the counters were read.
    pub at_ns: u64,
    pub info: RtpmInfo,
    pub stats: RtpmStats,
    pub status: RtpmStatus,
    /// GET_QUALITY; None on a shm ring (it tracks no RFC 3550 quality) or a 2.0 module.
    pub quality: Option<Quality>,
    pub holders: Vec<Holder>,
}

/// A watched channel: where it is and its open handle.
pub struct Watched {
    /// N of `/dev/rtp_mgrN` or `rtpmgr-N`; for a named shm ring the channel its header records.
    pub number: u32,
    /// The node or ring file.
    pub path: PathBuf,
    channel: Channel,
}

impl std::fmt::Debug for Watched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watched").field("number", &self.number).field("path", &self.path).finish()
    }
}

impl Watched {
    /// How many open files of the channel are this view's own (the openers count includes them).
    pub fn own_opens(&self) -> u32 {
        1
    }

    /// Reads the channel now (holders are filled in by [`sample_all`]).
    fn read(&self) -> Result<Sample> {
        let ch = &self.channel;
        Ok(Sample {
            info: ch.info()?,
            stats: ch.stats()?,
            status: ch.status()?,
            at_ns: rtpmgr::monotonic_ns(),
            // A shm ring (Unsupported) or a 2.0 module (ENOTTY): the view shows "-" for loss and
            // jitter. Any other error is one of the channel's and shows as such next refresh.
            quality: ch.quality().ok(),
            holders: vec![],
        })
    }
}

/// N of a file name `<prefix>N` (decimal, no sign, no leading garbage).
fn channel_number(name: &str, prefix: &str) -> Option<u32> {
    let digits = name.strip_prefix(prefix)?;
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then(|| digits.parse().ok()).flatten()
}

/// The `<prefix>N` files of `dir`, by N.
fn numbered_files(dir: &Path, prefix: &str) -> Result<BTreeMap<u32, PathBuf>> {
    let entries = std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?;
    Ok(entries
        .filter_map(|e| e.ok())
        .filter_map(|e| channel_number(&e.file_name().to_string_lossy(), prefix).map(|n| (n, e.path())))
        .collect())
}

/// The channels `watch` names right now, by number, as paths.
pub fn discover(watch: &Watch) -> Result<BTreeMap<u32, PathBuf>> {
    match watch {
        Watch::Kernel { dev_dir } => numbered_files(dev_dir, RTPM_DEVICE_PREFIX),
        Watch::ShmAll { dir } => numbered_files(dir, SHM_PREFIX),
        Watch::ShmOne { path } => {
            if !path.exists() {
                return Err(anyhow!(
                    "shm ring {} does not exist: start the rx or tx that creates it, or drop --shm-name",
                    path.display()
                ));
            }
            Ok(BTreeMap::from([(0, path.clone())]))
        }
    }
}

/// Opens one channel of `watch`.
fn open(watch: &Watch, number: u32, path: &Path) -> Result<Watched> {
    let channel = match watch {
        Watch::Kernel { .. } => Channel::open_read_only(&Backend::kernel_path(path)).map_err(|e| {
            if matches!(e.errno(), nix::errno::Errno::EACCES | nix::errno::Errno::EPERM) {
                anyhow!("{e}; add the user to group rtpmgr (the device nodes are 0660 root:rtpmgr)")
            } else {
                e.into()
            }
        })?,
        // The ring file exists (discover() listed it), so this open never creates one.
        Watch::ShmAll { .. } | Watch::ShmOne { .. } => Channel::open(&Backend::shm_at(path))?,
    };
    let mut w = Watched { number, path: path.to_path_buf(), channel };
    if matches!(watch, Watch::ShmOne { .. }) {
        w.number = w.read()?.info.channel;
    }
    Ok(w)
}

/// The channels top watches, kept open between refreshes; channels that appear are opened, ones
/// that disappear (module unloaded, ring removed) are dropped.
#[derive(Debug)]
pub struct Channels {
    watch: Watch,
    open: Vec<Watched>,
}

/// One refresh: each channel's sample, or why it could not be read.
pub type Readings = Vec<(u32, PathBuf, Result<Sample, String>)>;

impl Channels {
    /// Opens every channel `watch` names; an error if there is none (naming where top looked).
    pub fn open(watch: Watch) -> Result<Channels> {
        let mut c = Channels { watch, open: vec![] };
        c.rescan()?;
        if c.open.is_empty() {
            return Err(match &c.watch {
                Watch::Kernel { dev_dir } => anyhow!(
                    "no {}/{RTPM_DEVICE_PREFIX}N device: load the kernel module (modprobe rtp_mgr), or \
                     watch shm rings with --backend shm",
                    dev_dir.display()
                ),
                Watch::ShmAll { dir } => anyhow!(
                    "no shm ring {}/{SHM_PREFIX}N: start rtp_app --mode rx/tx --backend shm first, or name \
                     the ring with --shm-name",
                    dir.display()
                ),
                Watch::ShmOne { path } => anyhow!("shm ring {} not found", path.display()),
            });
        }
        Ok(c)
    }

    /// Which rings these are.
    pub fn watch(&self) -> &Watch {
        &self.watch
    }

    /// Reopens the list: new channels are opened, vanished ones closed.
    fn rescan(&mut self) -> Result<()> {
        let now = discover(&self.watch)?;
        self.open.retain(|w| now.values().any(|p| p == &w.path));
        for (n, path) in now {
            if self.open.iter().any(|w| w.path == path) {
                continue;
            }
            match open(&self.watch, n, &path) {
                Ok(w) => self.open.push(w),
                // A channel that cannot be opened is reported once, not every second.
                Err(e) => log::warn!("{e:#}"),
            }
        }
        self.open.sort_by_key(|w| (w.number, w.path.clone()));
        Ok(())
    }

    /// Reads every channel now, with its holders.
    pub fn sample_all(&mut self) -> Readings {
        if let Err(e) = self.rescan() {
            log::debug!("rescan: {e:#}");
        }
        let paths: Vec<PathBuf> = self.open.iter().map(|w| w.path.clone()).collect();
        let mut holders = holders_of(&paths);
        self.open
            .iter()
            .map(|w| {
                let r = w.read().map_err(|e| format!("{e:#}")).map(|mut s| {
                    s.holders = holders.remove(&w.path).unwrap_or_default();
                    // The openers count includes this view's own open file; who looks is not news.
                    s.status.openers = s.status.openers.saturating_sub(w.own_opens());
                    s
                });
                (w.number, w.path.clone(), r)
            })
            .collect()
    }
}

/// The processes (other than this one) that have any of `paths` open, per path, by pid.
///
/// Scans `/proc/<pid>/fd`: a process whose fd directory cannot be read (another user's, without
/// CAP_SYS_PTRACE) is not listed, so run top as root to see every holder.
pub fn holders_of(paths: &[PathBuf]) -> HashMap<PathBuf, Vec<Holder>> {
    let mut out: HashMap<PathBuf, Vec<Holder>> = HashMap::new();
    let Ok(procs) = std::fs::read_dir("/proc") else { return out };
    let me = std::process::id();
    for p in procs.filter_map(|e| e.ok()) {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        if pid == me {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else { continue };
        let mut seen: Vec<&PathBuf> = vec![];
        for fd in fds.filter_map(|e| e.ok()) {
            let Ok(target) = std::fs::read_link(fd.path()) else { continue };
            if let Some(path) = paths.iter().find(|want| **want == target) {
                if !seen.contains(&path) {
                    seen.push(path);
                }
            }
        }
        if seen.is_empty() {
            continue;
        }
        let comm = std::fs::read_to_string(p.path().join("comm")).map(|s| s.trim_end().to_string()).unwrap_or_default();
        for path in seen {
            out.entry(path.clone()).or_default().push(Holder { pid, comm: comm.clone() });
        }
    }
    for v in out.values_mut() {
        v.sort_by_key(|h| h.pid);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_numbers_come_from_the_name_only() {
        assert_eq!(channel_number("rtp_mgr0", "rtp_mgr"), Some(0));
        assert_eq!(channel_number("rtp_mgr12", "rtp_mgr"), Some(12));
        assert_eq!(channel_number("rtp_mgr", "rtp_mgr"), None);
        assert_eq!(channel_number("rtp_mgr-1", "rtp_mgr"), None);
        assert_eq!(channel_number("rtp_mgr1x", "rtp_mgr"), None);
        assert_eq!(channel_number("rtpmgr-3", SHM_PREFIX), Some(3));
        assert_eq!(channel_number("rtpmgr-diag-77", SHM_PREFIX), None);
    }

    #[test]
    fn holders_are_the_processes_with_the_file_open() {
        // A child that has a file open is found with its comm; this process never is.
        let dir = std::env::temp_dir().join(format!("rtpapp-top-holders-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ring");
        std::fs::write(&path, b"x").unwrap();
        let _mine = std::fs::File::open(&path).unwrap();
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("exec 3<'{}'; exec sleep 5", path.display()))
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let found = loop {
            let h = holders_of(std::slice::from_ref(&path));
            if h.get(&path).is_some_and(|v| v.iter().any(|x| x.comm == "sleep")) || std::time::Instant::now() > deadline
            {
                break h;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        let _ = child.kill();
        let _ = child.wait();
        std::fs::remove_dir_all(&dir).unwrap();
        let list = found.get(&path).expect("the child holds the file");
        assert_eq!(list, &vec![Holder { pid: child.id(), comm: "sleep".into() }]);
    }
}

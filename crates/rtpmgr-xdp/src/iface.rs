//! What the interface really has: its index, RX queue count and MTU.
//!
//! Seed 003's bug 3 took `-Q` as given, and a queue the NIC does not have failed much later with
//! a confusing `bind` error. Here the queue is checked against the real channel count before
//! anything is set up: `ETHTOOL_GCHANNELS` (what `ethtool -l` shows), or, for drivers without
//! that ioctl (`lo`), the `rx-N` directories of `/sys/class/net/IF/queues`.

use crate::{Error, Result};
use std::ffi::CString;
use std::path::Path;

/// Where a queue count came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueSource {
    /// `ETHTOOL_GCHANNELS`: rx + combined channels.
    Ethtool,
    /// `/sys/class/net/IF/queues/rx-*`.
    Sysfs,
}

/// The RX queues of an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueCount {
    /// Usable RX queue indices are `0..count`.
    pub count: u32,
    /// How it was found.
    pub source: QueueSource,
}

/// The interface index of `name`.
///
/// # Errors
/// [`Error::NoInterface`] if there is no such interface.
pub fn ifindex(name: &str) -> Result<u32> {
    let c = CString::new(name).map_err(|_| Error::NoInterface(name.into()))?;
    // SAFETY: c is a valid NUL-terminated string for the duration of the call.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        return Err(Error::NoInterface(name.into()));
    }
    Ok(idx)
}

/// `struct ethtool_channels` of <linux/ethtool.h>.
#[repr(C)]
#[derive(Default)]
struct EthtoolChannels {
    cmd: u32,
    max_rx: u32,
    max_tx: u32,
    max_other: u32,
    max_combined: u32,
    rx_count: u32,
    tx_count: u32,
    other_count: u32,
    combined_count: u32,
}
const ETHTOOL_GCHANNELS: u32 = 0x3c; // Defined in linux/ethtool.h
const SIOCETHTOOL: libc::c_ulong = 0x8946; // Defined in linux/sockios.h

/// RX channels from `ETHTOOL_GCHANNELS`; `None` if the driver does not implement it.
fn ethtool_rx_channels(name: &str) -> Result<Option<u32>> {
    if name.len() >= libc::IFNAMSIZ {
        return Err(Error::NoInterface(name.into()));
    }
    let mut ch = EthtoolChannels { cmd: ETHTOOL_GCHANNELS, ..Default::default() };
    // SAFETY: all-zero is a valid ifreq.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    ifr.ifr_ifru.ifru_data = (&mut ch as *mut EthtoolChannels).cast();
    // SAFETY: plain socket(2); the fd is closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(Error::io("socket for ETHTOOL_GCHANNELS", std::io::Error::last_os_error()));
    }
    // SAFETY: ifr is a valid ifreq whose data pointer points at `ch`, alive for the call.
    let r = unsafe { libc::ioctl(fd, SIOCETHTOOL as _, &mut ifr) };
    let err = std::io::Error::last_os_error();
    // SAFETY: fd is ours and not used after this.
    unsafe { libc::close(fd) };
    if r < 0 {
        return match err.raw_os_error() {
            Some(libc::EOPNOTSUPP) | Some(libc::EINVAL) => Ok(None),
            Some(libc::ENODEV) => Err(Error::NoInterface(name.into())),
            _ => Err(Error::io(format!("ETHTOOL_GCHANNELS on {name}"), err)),
        };
    }
    Ok(Some(ch.rx_count + ch.combined_count))
}

/// Counts `rx-N` entries under `dir` (`/sys/class/net/IF/queues`).
pub fn sysfs_rx_queues(dir: &Path) -> std::io::Result<u32> {
    let mut n = 0;
    for e in std::fs::read_dir(dir)? {
        let name = e?.file_name();
        let name = name.to_string_lossy();
        if name.strip_prefix("rx-").is_some_and(|i| i.parse::<u32>().is_ok()) {
            n += 1;
        }
    }
    Ok(n)
}

/// The RX queue count of interface `name`.
///
/// # Errors
/// [`Error::NoInterface`], or I/O errors of the ioctl or sysfs.
pub fn rx_queue_count(name: &str) -> Result<QueueCount> {
    ifindex(name)?;
    if let Some(n) = ethtool_rx_channels(name)? {
        if n > 0 {
            return Ok(QueueCount { count: n, source: QueueSource::Ethtool });
        }
    }
    let dir = Path::new("/sys/class/net").join(name).join("queues");
    let n = sysfs_rx_queues(&dir).map_err(|e| Error::io(format!("read {}", dir.display()), e))?;
    Ok(QueueCount { count: n.max(1), source: QueueSource::Sysfs })
}

/// Checks `queue` against the interface's queue count.
///
/// # Errors
/// [`Error::QueueOutOfRange`] naming the interface, the queue and the valid range.
pub fn validate_queue(iface: &str, queue: u32, count: QueueCount) -> Result<()> {
    if queue >= count.count {
        return Err(Error::QueueOutOfRange { iface: iface.into(), queue, count: count.count });
    }
    if queue as usize >= crate::steer::MAX_QUEUES {
        return Err(Error::QueueOutOfRange { iface: iface.into(), queue, count: crate::steer::MAX_QUEUES as u32 });
    }
    Ok(())
}

/// The MTU of `name` from sysfs.
pub fn mtu(name: &str) -> Result<u32> {
    let p = Path::new("/sys/class/net").join(name).join("mtu");
    let s = std::fs::read_to_string(&p).map_err(|e| Error::io(format!("read {}", p.display()), e))?;
    s.trim().parse().map_err(|_| Error::io(format!("parse {}", p.display()), std::io::ErrorKind::InvalidData.into()))
}

/// The system page size.
pub fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as usize
    } else {
        4096
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seed bug 3: a queue index beyond the interface's channels is refused up front, with the
    /// valid range in the message.
    #[test]
    fn seed_bug3_queue_validated_against_fake_channel_count() {
        let four = QueueCount { count: 4, source: QueueSource::Ethtool };
        assert!(validate_queue("eth0", 0, four).is_ok());
        assert!(validate_queue("eth0", 3, four).is_ok());
        let e = validate_queue("eth0", 4, four).unwrap_err();
        assert!(matches!(e, Error::QueueOutOfRange { queue: 4, count: 4, .. }), "{e}");
        let msg = e.to_string();
        assert!(msg.contains("eth0") && msg.contains("0..3"), "{msg}");
        assert!(validate_queue("eth0", 99, four).is_err());
        // More channels than the XSKMAP has entries: refused too, not a map update error later.
        let many = QueueCount { count: 256, source: QueueSource::Ethtool };
        assert!(validate_queue("eth0", 200, many).is_err());
    }

    /// Seed bug 3 against a real interface: `lo` has one RX queue (no ETHTOOL_GCHANNELS, so the
    /// sysfs fallback answers).
    #[test]
    fn seed_bug3_queue_validated_against_lo() {
        let c = rx_queue_count("lo").unwrap();
        assert_eq!(c.count, 1, "{c:?}");
        assert!(validate_queue("lo", 0, c).is_ok());
        let e = validate_queue("lo", 1, c).unwrap_err();
        assert!(e.to_string().contains("lo has 1 RX queue"), "{e}");
        assert!(matches!(rx_queue_count("nonexistent0"), Err(Error::NoInterface(_))));
    }

    #[test]
    fn sysfs_counting_ignores_other_entries() {
        let d = std::env::temp_dir().join(format!("rtpmgr-xdp-q-{}", std::process::id()));
        for n in ["rx-0", "rx-1", "rx-2", "tx-0", "rx-x"] {
            std::fs::create_dir_all(d.join(n)).unwrap();
        }
        assert_eq!(sysfs_rx_queues(&d).unwrap(), 3);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn lo_mtu_is_readable() {
        assert!(mtu("lo").unwrap() >= 1500);
    }
}

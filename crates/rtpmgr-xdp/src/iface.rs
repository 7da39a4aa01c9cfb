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

/// The queues `want` names on `iface`, checked against its `count` and the XSKMAP size, sorted
/// and without duplicates. [`crate::Queues::All`] is every queue the interface has.
///
/// # Errors
/// [`Error::QueueOutOfRange`] for a queue the interface does not have; [`Error::Config`] for an
/// empty list, or `all` on an interface with more queues than the XSKMAP holds.
pub fn resolve_queues(iface: &str, want: &crate::Queues, count: QueueCount) -> Result<Vec<u32>> {
    let max = crate::steer::MAX_QUEUES as u32;
    let mut queues = match want {
        crate::Queues::All if count.count > max => {
            return Err(Error::Config(format!(
            "--queue all: {iface} has {} RX queues, more than the {max} one run can serve; give a list (--queue 0-{})",
            count.count,
            max - 1
        )))
        }
        crate::Queues::All => (0..count.count).collect(),
        crate::Queues::List(l) if l.is_empty() => return Err(Error::Config("no queue to serve".into())),
        crate::Queues::List(l) => l.clone(),
    };
    queues.sort_unstable();
    queues.dedup();
    for &q in &queues {
        validate_queue(iface, q, count)?;
    }
    Ok(queues)
}

/// The MTU of `name` from sysfs.
pub fn mtu(name: &str) -> Result<u32> {
    let p = Path::new("/sys/class/net").join(name).join("mtu");
    let s = std::fs::read_to_string(&p).map_err(|e| Error::io(format!("read {}", p.display()), e))?;
    s.trim().parse().map_err(|_| Error::io(format!("parse {}", p.display()), std::io::ErrorKind::InvalidData.into()))
}

/// Parses a MAC address written `aa:bb:cc:dd:ee:ff` (as `ip link` and sysfs show it).
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.trim().split(':');
    for b in &mut mac {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// The MAC address of `name` from sysfs.
pub fn mac(name: &str) -> Result<[u8; 6]> {
    let p = Path::new("/sys/class/net").join(name).join("address");
    let s = std::fs::read_to_string(&p).map_err(|e| Error::io(format!("read {}", p.display()), e))?;
    parse_mac(&s)
        .ok_or_else(|| Error::Config(format!("{name} has no Ethernet address ({}: {:?})", p.display(), s.trim())))
}

/// The first address of `name` in the family of `like` (IPv6: not link-local if another exists).
pub fn ip_address(name: &str, like: std::net::IpAddr) -> Result<std::net::IpAddr> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a linked list freed below by freeifaddrs.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return Err(Error::io("getifaddrs", std::io::Error::last_os_error()));
    }
    let mut found: Vec<IpAddr> = Vec::new();
    let mut cur = list;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, alive until freeifaddrs.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || ifa.ifa_name.is_null() {
            continue;
        }
        // SAFETY: ifa_name is a NUL-terminated string owned by the list.
        if unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) }.to_bytes() != name.as_bytes() {
            continue;
        }
        // SAFETY: ifa_addr points to a sockaddr whose family says which struct it is.
        let family = i32::from(unsafe { (*ifa.ifa_addr).sa_family });
        match (family, like) {
            (libc::AF_INET, IpAddr::V4(_)) => {
                // SAFETY: family AF_INET: the sockaddr is a sockaddr_in.
                let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                found.push(IpAddr::V4(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr))));
            }
            (libc::AF_INET6, IpAddr::V6(_)) => {
                // SAFETY: family AF_INET6: the sockaddr is a sockaddr_in6.
                let sin6 = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                found.push(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)));
            }
            _ => {}
        }
    }
    // SAFETY: `list` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(list) };
    let link_local = |a: &IpAddr| matches!(a, IpAddr::V6(v) if v.segments()[0] & 0xffc0 == 0xfe80);
    found.sort_by_key(link_local);
    found.into_iter().next().ok_or_else(|| {
        Error::Config(format!(
            "{name} has no {} address to send from: add one (ip addr add ... dev {name}) or give the source with --bind",
            if like.is_ipv4() { "IPv4" } else { "IPv6" }
        ))
    })
}

/// The MAC address the kernel's ARP table has for `ip` on `name` (complete entries only), from
/// `/proc/net/arp` in `arp_table`'s format.
pub fn arp_lookup(arp_table: &str, name: &str, ip: std::net::Ipv4Addr) -> Option<[u8; 6]> {
    let want = ip.to_string();
    arp_table.lines().skip(1).find_map(|l| {
        // IP address, HW type, Flags, HW address, Mask, Device
        let f: Vec<&str> = l.split_whitespace().collect();
        let complete = f
            .get(2)
            .and_then(|x| u32::from_str_radix(x.trim_start_matches("0x"), 16).ok())
            .is_some_and(|x| x & 0x2 != 0);
        (f.len() >= 6 && f[0] == want && f[5] == name && complete).then(|| parse_mac(f[3])).flatten()
    })
}

/// The next hop's MAC address for `dst` on `name`: from the ARP table, after making the kernel
/// resolve it if needed (one empty UDP datagram to the discard port 9 through `name`, then up to
/// 1 s of waiting). IPv4 only: IPv6 neighbours need `--dst-mac`.
pub fn resolve_neighbour(name: &str, dst: std::net::IpAddr) -> Result<[u8; 6]> {
    let std::net::IpAddr::V4(v4) = dst else {
        return Err(Error::Config(format!(
            "cannot look up the Ethernet address of IPv6 {dst} (no IPv6 neighbour table in /proc): give it with --dst-mac"
        )));
    };
    let read = || std::fs::read_to_string("/proc/net/arp").unwrap_or_default();
    if let Some(m) = arp_lookup(&read(), name, v4) {
        return Ok(m);
    }
    log::info!("{dst} is not in the ARP table of {name}: resolving it");
    if let Ok(sock) = std::net::UdpSocket::bind("0.0.0.0:0") {
        let _ = bind_to_device(&sock, name);
        let _ = sock.send_to(&[], (v4, 9));
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    while std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
        if let Some(m) = arp_lookup(&read(), name, v4) {
            return Ok(m);
        }
    }
    Err(Error::Config(format!(
        "no Ethernet address for {dst} on {name} (ARP did not answer within 1 s): is {dst} on the link of {name}? \
         For a destination behind a router give the router's address with --dst-mac"
    )))
}

fn bind_to_device(sock: &std::net::UdpSocket, name: &str) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: name's bytes and length are passed as the option value; the fd is valid.
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_BINDTODEVICE,
            name.as_ptr().cast(),
            name.len() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
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
    fn queue_lists_resolve_against_the_channel_count() {
        use crate::Queues;
        let four = QueueCount { count: 4, source: QueueSource::Sysfs };
        assert_eq!(resolve_queues("veth0", &Queues::All, four).unwrap(), vec![0, 1, 2, 3]);
        assert_eq!(resolve_queues("veth0", &Queues::List(vec![3, 1, 3]), four).unwrap(), vec![1, 3]);
        let e = resolve_queues("veth0", &Queues::List(vec![0, 5]), four).unwrap_err();
        assert!(matches!(e, Error::QueueOutOfRange { queue: 5, count: 4, .. }), "{e}");
        assert!(e.to_string().contains("veth0 has 4 RX queue(s)"), "{e}");
        assert!(resolve_queues("veth0", &Queues::List(vec![]), four).is_err());
        let e = resolve_queues("eth0", &Queues::All, QueueCount { count: 128, source: QueueSource::Ethtool })
            .unwrap_err()
            .to_string();
        assert!(e.contains("128 RX queues") && e.contains("--queue 0-63"), "{e}");
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
    fn mac_parsing_and_arp_table_lookup() {
        assert_eq!(parse_mac("02:00:0a:ff:00:01\n"), Some([2, 0, 0x0a, 0xff, 0, 1]));
        for bad in ["", "02:00:0a:ff:00", "02:00:0a:ff:00:01:02", "02:00:0a:ff:00:zz", "020:00:0a:ff:00:01"] {
            assert_eq!(parse_mac(bad), None, "{bad:?}");
        }
        let table = "IP address       HW type     Flags       HW address            Mask     Device\n\
                     10.0.0.1         0x1         0x2         02:00:00:00:00:01     *        veth0\n\
                     10.0.0.3         0x1         0x0         00:00:00:00:00:00     *        veth0\n\
                     10.0.0.1         0x1         0x2         02:00:00:00:00:09     *        eth1\n";
        let ip = |s: &str| s.parse().unwrap();
        assert_eq!(arp_lookup(table, "veth0", ip("10.0.0.1")), Some([2, 0, 0, 0, 0, 1]));
        assert_eq!(arp_lookup(table, "eth1", ip("10.0.0.1")), Some([2, 0, 0, 0, 0, 9]));
        assert_eq!(arp_lookup(table, "veth0", ip("10.0.0.3")), None, "incomplete entry");
        assert_eq!(arp_lookup(table, "veth0", ip("10.0.0.2")), None);
    }

    #[test]
    fn lo_addresses() {
        let v4 = ip_address("lo", "0.0.0.0".parse().unwrap()).unwrap();
        assert!(v4.is_loopback(), "{v4}");
        assert!(mac("lo").is_ok());
        assert!(ip_address("nonexistent0", v4).is_err());
    }

    #[test]
    fn lo_mtu_is_readable() {
        assert!(mtu("lo").unwrap() >= 1500);
    }
}

//! Multicast on UDP sockets: joining a group (any-source or source-specific) on a named
//! interface for receiving, and the outgoing interface, TTL/hop limit and loopback for sending.
//!
//! The protocol-independent RFC 3678 requests are used for both families: `MCAST_JOIN_GROUP`
//! (`struct group_req`) and `MCAST_JOIN_SOURCE_GROUP` (`struct group_source_req`) at level
//! `IPPROTO_IP` (IGMPv3) or `IPPROTO_IPV6` (MLDv2). They take an interface index, so IPv4 and
//! IPv6 share one code path and an interface without an IPv4 address still works.

use crate::socket::{setsockopt, storage_of};
use crate::{Error, InputNames, Result};
use std::ffi::CString;
use std::io;
use std::mem;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

/// TTL (IPv4) / hop limit (IPv6) of sent multicast when none is asked for: 1 keeps the stream on the
/// local link, the kernel's and RFC 1112's default, so a sender never floods a routed network by
/// accident. IPTV head-ends that cross routers raise it.
pub const DEFAULT_TTL: u8 = 1;

// The kernel reads these structs by size: a mismatch would make it read a wrong address or fail
// with EINVAL. struct group_req is { u32 interface; sockaddr_storage group } with the storage
// aligned like a pointer (the kernel's __kernel_sockaddr_storage).
const SOCKADDR_STORAGE_OFFSET: usize = mem::align_of::<libc::sockaddr_storage>();
const _: () = assert!(SOCKADDR_STORAGE_OFFSET >= mem::size_of::<u32>());
const _: () = assert!(mem::size_of::<libc::sockaddr_storage>() == 128);
const _: () =
    assert!(mem::size_of::<libc::group_req>() == SOCKADDR_STORAGE_OFFSET + mem::size_of::<libc::sockaddr_storage>());
const _: () = assert!(
    mem::size_of::<libc::group_source_req>() == SOCKADDR_STORAGE_OFFSET + 2 * mem::size_of::<libc::sockaddr_storage>()
);
const _: () = assert!(mem::size_of::<libc::ip_mreqn>() == 12);

/// A group to receive: which group, optionally from which single source (SSM), on which
/// interface. Built only through [`Membership::new`], so it is always a valid request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    group: IpAddr,
    source: Option<IpAddr>,
    iface: Option<String>,
    /// How messages about this request name its inputs.
    names: InputNames,
}

/// Options of a socket that sends to a multicast group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendOptions {
    /// Outgoing interface; None lets the routing table choose.
    pub iface: Option<String>,
    /// TTL (IPv4) or hop limit (IPv6).
    pub ttl: u8,
    /// Deliver a copy to receivers on this host too.
    pub loopback: bool,
}

/// True for the source-specific ranges: IPv4 232.0.0.0/8 and IPv6 ff3x::/32 (RFC 4607), where
/// routers forward only (source, group) subscriptions.
pub fn is_ssm_range(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => a.octets()[0] == 232,
        IpAddr::V6(a) => a.segments()[0] & 0xfff0 == 0xff30,
    }
}

/// IPv6 groups of interface-local (ffx1) or link-local (ffx2) scope: the kernel only binds to
/// them with a scope id, i.e. an interface.
fn needs_interface(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(_) => false,
        IpAddr::V6(a) => matches!(a.segments()[0] & 0x000f, 1 | 2),
    }
}

/// A well-formed interface name (whether it exists is [`interface_index`]'s question).
///
/// # Errors
/// [`Error::Invalid`] naming the string.
pub fn check_interface_name(name: &str) -> Result<()> {
    // IFNAMSIZ is 16 including the NUL.
    if name.is_empty() || name.len() > 15 || name.contains(['/', '\0']) || name.contains(char::is_whitespace) {
        return Err(Error::Invalid(format!(
            "'{name}' is not a network interface name (1 to 15 characters, see `ip link`)"
        )));
    }
    Ok(())
}

impl Membership {
    /// Checks a request: the group is multicast, a source is a unicast address of the same
    /// family, a link-scope IPv6 group has an interface, and the interface name is well formed.
    /// Whether the interface exists is checked when joining. `names` spell the inputs in this
    /// and every later message about the request.
    ///
    /// # Errors
    /// [`Error::Invalid`], naming the input that is wrong.
    pub fn new(group: IpAddr, source: Option<IpAddr>, iface: Option<String>, names: InputNames) -> Result<Self> {
        let InputNames { group: g, source: s, iface: i, bind: b, .. } = names;
        let invalid = |msg: String| Err(Error::Invalid(msg));
        if !group.is_multicast() {
            return invalid(format!(
                "{g} {group} is not a multicast address (IPv4 224.0.0.0/4, IPv6 ff00::/8); to receive unicast use {b}"
            ));
        }
        if let Some(src) = source {
            if src.is_ipv4() != group.is_ipv4() {
                return invalid(format!("{s} {src} and {g} {group} are of different address families"));
            }
            if src.is_multicast() || src.is_unspecified() {
                return invalid(format!("{s} {src} must be the sender's unicast address"));
            }
        }
        if let Some(name) = &iface {
            check_interface_name(name)?;
        }
        if iface.is_none() && needs_interface(group) {
            return invalid(format!("{g} {group} is interface- or link-local in scope and needs {i}"));
        }
        Ok(Self { group, source, iface, names })
    }

    /// The group.
    pub fn group(&self) -> IpAddr {
        self.group
    }

    /// The one source, for a source-specific join.
    pub fn source(&self) -> Option<IpAddr> {
        self.source
    }

    /// The interface name, if one was given.
    pub fn iface(&self) -> Option<&str> {
        self.iface.as_deref()
    }

    /// How messages name this request's inputs.
    pub fn names(&self) -> InputNames {
        self.names
    }

    /// A warning for a group in the source-specific range joined without a source: networks
    /// that do SSM forward nothing for it.
    pub fn warning(&self) -> Option<String> {
        (self.source.is_none() && is_ssm_range(self.group)).then(|| {
            let range = if self.group.is_ipv4() { "232.0.0.0/8" } else { "ff3x::/32" };
            format!(
                "{} is in the source-specific range {range} but no {} was given: an any-source join there \
                 usually receives nothing",
                self.group, self.names.source
            )
        })
    }

    /// "232.1.1.1 from 10.0.0.1 on eth0", for messages.
    pub fn describe(&self) -> String {
        let mut s = self.group.to_string();
        if let Some(src) = self.source {
            s += &format!(" from {src}");
        }
        match &self.iface {
            Some(i) => s += &format!(" on {i}"),
            None => s += " on the interface the routing table picks",
        }
        s
    }
}

/// The index of network interface `name`.
///
/// # Errors
/// [`Error::Invalid`] for a malformed name, [`Error::NoSuchInterface`] naming it if there is none.
pub fn interface_index(name: &str) -> Result<u32> {
    check_interface_name(name)?;
    // check_interface_name refused a NUL byte.
    let c = CString::new(name).map_err(|_| Error::Invalid(format!("'{name}' contains a NUL byte")))?;
    // SAFETY: c is a valid NUL-terminated string that lives across the call.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if index == 0 {
        return Err(Error::NoSuchInterface { name: name.to_string(), errno: io::Error::last_os_error() });
    }
    Ok(index)
}

pub(crate) fn optional_index(iface: Option<&str>) -> Result<u32> {
    iface.map_or(Ok(0), interface_index)
}

pub(crate) fn ip_level(addr: IpAddr) -> libc::c_int {
    if addr.is_ipv4() {
        libc::IPPROTO_IP
    } else {
        libc::IPPROTO_IPV6
    }
}

/// Deliver to this socket only the groups it joined itself. Linux's default
/// (IP_MULTICAST_ALL=1) hands a socket bound to the wildcard address every group that any
/// socket on the host joined on its port.
fn only_own_groups(fd: RawFd, group: IpAddr) -> Result<()> {
    let (name, opt) = match group {
        IpAddr::V4(_) => ("IP_MULTICAST_ALL", libc::IP_MULTICAST_ALL),
        IpAddr::V6(_) => ("IPV6_MULTICAST_ALL", libc::IPV6_MULTICAST_ALL),
    };
    match setsockopt(fd, ip_level(group), opt, &(0 as libc::c_int)) {
        // IPV6_MULTICAST_ALL is Linux 4.20+. Without it a socket bound to the group address still
        // gets only that group; one bound to the wildcard address also gets other processes'.
        Err(e) if e.raw_os_error() == Some(libc::ENOPROTOOPT) => {
            log::warn!("this kernel has no {name}: a socket bound to the wildcard address also receives groups other processes joined on its port");
            Ok(())
        }
        r => r.map_err(|e| Error::os(format!("clear {name}"), e)),
    }
}

/// Joins `m` on the UDP socket `fd` (any-source or source-specific) and makes it receive only
/// its own groups. The socket's family must be the group's.
///
/// # Errors
/// [`Error::Join`] naming the membership, with the reason as its source: the interface does
/// not exist, there is no route to the group without an interface ([`Error::NoRoute`]), or the
/// OS refused the request.
pub fn join(fd: BorrowedFd<'_>, m: &Membership) -> Result<()> {
    join_raw(fd.as_raw_fd(), m).map_err(|e| Error::Join { membership: m.describe(), source: Box::new(e) })
}

fn join_raw(fd: RawFd, m: &Membership) -> Result<()> {
    let index = optional_index(m.iface())?;
    only_own_groups(fd, m.group)?;
    let level = ip_level(m.group);
    let (name, r) = match m.source {
        None => ("MCAST_JOIN_GROUP", setsockopt(fd, level, libc::MCAST_JOIN_GROUP, &group_req(index, m.group))),
        Some(src) => (
            "MCAST_JOIN_SOURCE_GROUP",
            setsockopt(fd, level, libc::MCAST_JOIN_SOURCE_GROUP, &group_source_req(index, m.group, src)),
        ),
    };
    r.map_err(|e| match e.raw_os_error() {
        // No interface given and no route to the group: say how to fix it.
        Some(libc::ENODEV) if m.iface.is_none() => Error::NoRoute { iface: m.names.iface, source: e },
        _ => Error::os(format!("set {name}"), e),
    })
}

// libc's group_req and group_source_req have 4 bytes of padding after the interface index on
// 64-bit targets (the storage is pointer-aligned), and setsockopt hands every byte to the kernel.
// Zeroing them does not last: a move (returning the struct, even mem::zeroed's own result) is a
// typed copy that leaves padding uninitialised. These mirrors name the padding as a field, so it
// is initialised and stays so; the asserts pin them to libc's layout.
const GROUP_REQ_PAD: usize = SOCKADDR_STORAGE_OFFSET - mem::size_of::<u32>();

/// struct group_req (MCAST_JOIN_GROUP) with its padding as a zeroed field.
#[repr(C)]
struct GroupReq {
    interface: u32,
    pad: [u8; GROUP_REQ_PAD],
    group: libc::sockaddr_storage,
}

/// struct group_source_req (MCAST_JOIN_SOURCE_GROUP) with its padding as a zeroed field.
#[repr(C)]
struct GroupSourceReq {
    interface: u32,
    pad: [u8; GROUP_REQ_PAD],
    group: libc::sockaddr_storage,
    source: libc::sockaddr_storage,
}

const _: () = assert!(
    mem::size_of::<GroupReq>() == mem::size_of::<libc::group_req>()
        && mem::offset_of!(GroupReq, group) == mem::offset_of!(libc::group_req, gr_group)
);
const _: () = assert!(
    mem::size_of::<GroupSourceReq>() == mem::size_of::<libc::group_source_req>()
        && mem::offset_of!(GroupSourceReq, group) == mem::offset_of!(libc::group_source_req, gsr_group)
        && mem::offset_of!(GroupSourceReq, source) == mem::offset_of!(libc::group_source_req, gsr_source)
);

/// MCAST_JOIN_GROUP's request for `group` on interface `index` (0: the kernel picks).
fn group_req(index: u32, group: IpAddr) -> GroupReq {
    GroupReq { interface: index, pad: [0; GROUP_REQ_PAD], group: storage_of(group, 0) }
}

/// MCAST_JOIN_SOURCE_GROUP's request for `group` from `source` on interface `index`.
fn group_source_req(index: u32, group: IpAddr, source: IpAddr) -> GroupSourceReq {
    GroupSourceReq {
        interface: index,
        pad: [0; GROUP_REQ_PAD],
        group: storage_of(group, 0),
        source: storage_of(source, 0),
    }
}

/// Sets the outgoing interface, TTL/hop limit and loopback of a UDP socket that sends to
/// `group` (its family decides the options' level).
///
/// # Errors
/// [`Error::SendOption`] naming the option and the group (and interface), with the reason.
pub fn apply_send_options(fd: BorrowedFd<'_>, group: IpAddr, o: &SendOptions) -> Result<()> {
    let fd = fd.as_raw_fd();
    let on_iface = o.iface.as_deref().map(|i| format!(" on {i}")).unwrap_or_default();
    let failed = |option: &'static str, e: Error| Error::SendOption {
        option,
        target: format!("{group}{on_iface}"),
        source: Box::new(e),
    };
    let set = |level, name, option: &'static str, val: &libc::c_int| {
        setsockopt(fd, level, name, val).map_err(|e| failed(option, Error::os(format!("set {option}"), e)))
    };
    let index = optional_index(o.iface.as_deref()).map_err(|e| failed("the outgoing interface", e))?;
    let ttl = o.ttl as libc::c_int;
    let loopback = o.loopback as libc::c_int;
    match group {
        IpAddr::V4(_) => {
            if index != 0 {
                let req = libc::ip_mreqn {
                    imr_multiaddr: libc::in_addr { s_addr: 0 },
                    imr_address: libc::in_addr { s_addr: u32::from_ne_bytes(Ipv4Addr::UNSPECIFIED.octets()) },
                    imr_ifindex: index as libc::c_int,
                };
                setsockopt(fd, libc::IPPROTO_IP, libc::IP_MULTICAST_IF, &req)
                    .map_err(|e| failed("IP_MULTICAST_IF", Error::os("set IP_MULTICAST_IF", e)))?;
            }
            set(libc::IPPROTO_IP, libc::IP_MULTICAST_TTL, "IP_MULTICAST_TTL", &ttl)?;
            set(libc::IPPROTO_IP, libc::IP_MULTICAST_LOOP, "IP_MULTICAST_LOOP", &loopback)?;
        }
        IpAddr::V6(_) => {
            if index != 0 {
                set(libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_IF, "IPV6_MULTICAST_IF", &(index as libc::c_int))?;
            }
            set(libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_HOPS, "IPV6_MULTICAST_HOPS", &ttl)?;
            set(libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_LOOP, "IPV6_MULTICAST_LOOP", &loopback)?;
        }
    }
    Ok(())
}

/// The Ethernet address a multicast IP group maps to: 01:00:5e + the low 23 bits (IPv4,
/// RFC 1112) or 33:33 + the low 32 bits (IPv6, RFC 2464).
pub fn ethernet_group_address(group: IpAddr) -> String {
    let mac = match group {
        IpAddr::V4(a) => {
            let o = a.octets();
            [0x01, 0x00, 0x5e, o[1] & 0x7f, o[2], o[3]]
        }
        IpAddr::V6(a) => {
            let o = a.octets();
            [0x33, 0x33, o[12], o[13], o[14], o[15]]
        }
    };
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::socket::bind_joined;
    use std::net::{SocketAddr, UdpSocket};
    use std::os::fd::AsFd;

    /// The bytes of `v` as the kernel reads them. Reading an uninitialised byte here is undefined
    /// behaviour that `cargo +nightly miri test -p rtpmgr-net` reports.
    fn bytes_of<T>(v: &T) -> Vec<u8> {
        // SAFETY: v is live for the call and size_of::<T>() bytes long; an uninitialised byte
        // (padding) read here is the bug this test is for, and Miri reports it.
        unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), mem::size_of::<T>()) }.to_vec()
    }

    #[test]
    fn join_requests_have_zeroed_padding() {
        let (group, source): (IpAddr, IpAddr) = ("232.1.1.1".parse().unwrap(), "10.0.0.1".parse().unwrap());
        let req = bytes_of(&group_req(7, group));
        assert_eq!(req[..4], 7u32.to_ne_bytes());
        assert!(req[4..SOCKADDR_STORAGE_OFFSET].iter().all(|b| *b == 0), "padding {:?}", &req[..8]);
        assert_eq!(req[SOCKADDR_STORAGE_OFFSET..], bytes_of(&storage_of(group, 0)));
        let req = bytes_of(&group_source_req(7, group, source));
        assert!(req[4..SOCKADDR_STORAGE_OFFSET].iter().all(|b| *b == 0), "padding {:?}", &req[..8]);
        let ss = mem::size_of::<libc::sockaddr_storage>();
        assert_eq!(req[SOCKADDR_STORAGE_OFFSET + ss..], bytes_of(&storage_of(source, 0)));
    }

    /// rtp_app's flags: the messages below are the ones its users see.
    const FLAGS: InputNames =
        InputNames { group: "--group", source: "--ssm-source", iface: "--iface", bind: "--bind", port: "--port" };

    /// The message and its sources, as anyhow's `{:#}` prints them.
    fn chain(e: &Error) -> String {
        let mut s = e.to_string();
        let mut cur = std::error::Error::source(e);
        while let Some(c) = cur {
            s += &format!(": {c}");
            cur = c.source();
        }
        s
    }

    fn membership(group: IpAddr, source: Option<IpAddr>, iface: Option<String>) -> Result<Membership, String> {
        Membership::new(group, source, iface, FLAGS).map_err(|e| e.to_string())
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn getsockopt_int(fd: RawFd, level: libc::c_int, name: libc::c_int) -> libc::c_int {
        let mut v: libc::c_int = -1;
        let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: v and len are live and writable; len is v's size.
        let rc = unsafe { libc::getsockopt(fd, level, name, (&mut v as *mut libc::c_int).cast(), &mut len) };
        assert_eq!(rc, 0, "getsockopt {level}/{name}: {}", io::Error::last_os_error());
        v
    }

    #[test]
    fn group_must_be_multicast_and_source_unicast_of_the_same_family() {
        let e = membership(ip("10.0.0.1"), None, None).unwrap_err();
        assert!(e.contains("10.0.0.1 is not a multicast address"), "{e}");
        let e = membership(ip("fd00::1"), None, None).unwrap_err();
        assert!(e.contains("fd00::1 is not a multicast"), "{e}");
        let e = membership(ip("232.1.1.1"), Some(ip("fd00::1")), None).unwrap_err();
        assert!(e.contains("different address families"), "{e}");
        let e = membership(ip("ff3e::1"), Some(ip("10.0.0.1")), None).unwrap_err();
        assert!(e.contains("different address families"), "{e}");
        let e = membership(ip("232.1.1.1"), Some(ip("239.0.0.1")), None).unwrap_err();
        assert!(e.contains("unicast"), "{e}");
        let e = membership(ip("232.1.1.1"), Some(ip("0.0.0.0")), None).unwrap_err();
        assert!(e.contains("unicast"), "{e}");
        assert!(membership(ip("232.1.1.1"), Some(ip("10.0.0.1")), Some("eth0".into())).is_ok());
        assert!(membership(ip("ff3e::8000:1"), Some(ip("2001:db8::1")), None).is_ok());
        assert!(membership(ip("239.255.0.1"), None, None).is_ok());
    }

    #[test]
    fn ssm_ranges_and_the_missing_source_warning() {
        for g in ["232.0.0.1", "232.255.255.255", "ff3e::8000:1", "ff35::1"] {
            assert!(is_ssm_range(ip(g)), "{g}");
            let w = membership(ip(g), None, Some("eth0".into())).unwrap().warning();
            assert!(w.as_deref().is_some_and(|w| w.contains("--ssm-source")), "{g}: {w:?}");
        }
        for g in ["239.1.1.1", "224.0.0.251", "233.0.0.1", "ff0e::1", "ff1e::1", "ff2e::1"] {
            assert!(!is_ssm_range(ip(g)), "{g}");
            assert_eq!(membership(ip(g), None, Some("eth0".into())).unwrap().warning(), None, "{g}");
        }
        let with_source = membership(ip("232.1.1.1"), Some(ip("10.0.0.1")), None).unwrap();
        assert_eq!(with_source.warning(), None);
    }

    #[test]
    fn link_scope_ipv6_group_needs_an_interface() {
        let e = membership(ip("ff02::1:3"), None, None).unwrap_err();
        assert!(e.contains("needs --iface"), "{e}");
        assert!(membership(ip("ff02::1:3"), None, Some("eth0".into())).is_ok());
        assert!(membership(ip("ff0e::1:3"), None, None).is_ok());
    }

    #[test]
    fn interface_names_are_checked_and_a_missing_one_is_named() {
        for bad in ["", "a-name-longer-than-15", "eth 0", "a/b"] {
            let e = membership(ip("239.1.1.1"), None, Some(bad.into())).unwrap_err();
            assert!(e.contains("is not a network interface name"), "{bad}: {e}");
        }
        assert!(interface_index("lo").unwrap() > 0);
        let e = chain(&interface_index("rtpnoif0").unwrap_err());
        assert!(e.contains("no network interface named 'rtpnoif0'"), "{e}");
        let m = membership(ip("232.1.1.1"), Some(ip("10.0.0.1")), Some("rtpnoif0".into())).unwrap();
        let e = chain(&bind_joined(&m, None, 0).unwrap_err());
        assert!(e.contains("cannot join 232.1.1.1 from 10.0.0.1 on rtpnoif0"), "{e}");
        assert!(e.contains("no network interface named 'rtpnoif0'"), "{e}");
    }

    #[test]
    fn ethernet_group_addresses() {
        assert_eq!(ethernet_group_address(ip("239.129.1.2")), "01:00:5e:01:01:02");
        assert_eq!(ethernet_group_address(ip("232.1.1.1")), "01:00:5e:01:01:01");
        assert_eq!(ethernet_group_address(ip("ff3e::8000:1234")), "33:33:80:00:12:34");
    }

    #[test]
    fn describe_names_group_source_and_interface() {
        let m = membership(ip("232.1.1.1"), Some(ip("10.0.0.1")), Some("eth0".into())).unwrap();
        assert_eq!(m.describe(), "232.1.1.1 from 10.0.0.1 on eth0");
        let m = membership(ip("239.1.1.1"), None, None).unwrap();
        assert_eq!(m.describe(), "239.1.1.1 on the interface the routing table picks");
    }

    #[test]
    fn joined_socket_is_bound_to_the_group_and_receives_only_its_own_groups() {
        let m = membership(ip("239.77.1.1"), None, Some("lo".into())).unwrap();
        let s = bind_joined(&m, None, 0).unwrap();
        assert_eq!(s.local_addr().unwrap().ip(), ip("239.77.1.1"));
        assert_eq!(getsockopt_int(s.as_raw_fd(), libc::IPPROTO_IP, libc::IP_MULTICAST_ALL), 0);
        assert_eq!(getsockopt_int(s.as_raw_fd(), libc::SOL_SOCKET, libc::SO_REUSEADDR), 1);
        let e = chain(&bind_joined(&m, Some(ip("::")), 0).unwrap_err());
        assert!(e.contains("different address families"), "{e}");
    }

    #[test]
    fn joined_ipv6_socket_on_loopback() {
        let m = membership(ip("ff3e::7701"), Some(ip("::1")), Some("lo".into())).unwrap();
        let s = match bind_joined(&m, None, 0) {
            Ok(s) => s,
            Err(e) if format!("{e:#}").contains("Address family not supported") => {
                rtpmgr_testkit::skip(
                    "rtpmgr_net::multicast::joined_ipv6_socket_on_loopback",
                    "IPv6 is disabled on this host",
                );
                return;
            }
            Err(e) => panic!("{e:#}"),
        };
        assert_eq!(s.local_addr().unwrap().ip(), ip("ff3e::7701"));
        assert_eq!(getsockopt_int(s.as_raw_fd(), libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_ALL), 0);
        // A link-local group binds with the interface as its scope (the kernel refuses it
        // without one).
        let m = membership(ip("ff12::7701"), None, Some("lo".into())).unwrap();
        let s = bind_joined(&m, None, 0).unwrap();
        match s.local_addr().unwrap() {
            SocketAddr::V6(a) => {
                assert_eq!((*a.ip(), a.scope_id()), ("ff12::7701".parse().unwrap(), interface_index("lo").unwrap()))
            }
            a => panic!("{a}"),
        }
    }

    #[test]
    fn send_options_are_applied_for_both_families() {
        let s4 = UdpSocket::bind("0.0.0.0:0").unwrap();
        let o = SendOptions { iface: Some("lo".into()), ttl: 7, loopback: false };
        apply_send_options(s4.as_fd(), ip("239.1.1.1"), &o).unwrap();
        assert_eq!(getsockopt_int(s4.as_raw_fd(), libc::IPPROTO_IP, libc::IP_MULTICAST_TTL), 7);
        assert_eq!(getsockopt_int(s4.as_raw_fd(), libc::IPPROTO_IP, libc::IP_MULTICAST_LOOP), 0);
        apply_send_options(s4.as_fd(), ip("239.1.1.1"), &SendOptions { loopback: true, ..o.clone() }).unwrap();
        assert_eq!(getsockopt_int(s4.as_raw_fd(), libc::IPPROTO_IP, libc::IP_MULTICAST_LOOP), 1);

        if let Ok(s6) = UdpSocket::bind("[::]:0") {
            apply_send_options(s6.as_fd(), ip("ff3e::1"), &SendOptions { ttl: 9, ..o.clone() }).unwrap();
            let fd = s6.as_raw_fd();
            assert_eq!(getsockopt_int(fd, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_HOPS), 9);
            assert_eq!(getsockopt_int(fd, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_LOOP), 0);
            assert_eq!(
                getsockopt_int(fd, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_IF) as u32,
                interface_index("lo").unwrap()
            );
        }
        let bad = SendOptions { iface: Some("rtpnoif0".into()), ..o };
        let e = chain(&apply_send_options(s4.as_fd(), ip("239.1.1.1"), &bad).unwrap_err());
        assert!(e.contains("sending to 239.1.1.1 on rtpnoif0"), "{e}");
        assert!(e.contains("no network interface named 'rtpnoif0'"), "{e}");
    }

    #[test]
    fn multicast_over_loopback_reaches_only_the_joined_group() {
        // Sender and receiver on lo: the group we joined arrives, a second group on the same port
        // does not (IP_MULTICAST_ALL=0 and the bind to the group address).
        let m = membership(ip("239.77.2.1"), None, Some("lo".into())).unwrap();
        let rx = bind_joined(&m, Some(ip("0.0.0.0")), 0).unwrap();
        let port = rx.local_addr().unwrap().port();
        // Another socket on the host joins a second group on the same port.
        let other = membership(ip("239.77.2.2"), None, Some("lo".into())).unwrap();
        let _other = bind_joined(&other, None, port).unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let o = SendOptions { iface: Some("lo".into()), ttl: 1, loopback: true };
        apply_send_options(tx.as_fd(), ip("239.77.2.1"), &o).unwrap();
        tx.send_to(b"other", (ip("239.77.2.2"), port)).unwrap();
        tx.send_to(b"joined", (ip("239.77.2.1"), port)).unwrap();
        rx.set_read_timeout(Some(std::time::Duration::from_secs(2))).unwrap();
        let mut buf = [0u8; 32];
        let n = rx.recv(&mut buf).expect("the joined group arrives");
        assert_eq!(&buf[..n], b"joined");
        rx.set_nonblocking(true).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(rx.recv(&mut buf).is_err(), "a group this socket did not join arrived");
    }
}

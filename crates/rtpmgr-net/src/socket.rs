//! Bound UDP sockets: unicast, or bound to a group and joined; their buffer sizes.
//!
//! [`open_receiver`] is the one entry point of a receive path: it returns a plain blocking
//! [`UdpSocket`], which rtp_app's recvmmsg path wraps and a kernel path hands to its ring
//! channel (`rtpmgr::Channel::attach`).

use crate::multicast::{join, optional_index, Membership};
use crate::{Error, InputNames, Result};
use std::io;
use std::mem;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// What to receive: a unicast port, or a multicast group on a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiveSpec {
    /// Without `membership`: the address to bind (None: 0.0.0.0). With it: None binds to the
    /// group address (which receives only that group), `Some` (e.g. the wildcard) binds there.
    pub bind: Option<IpAddr>,
    /// UDP port (0: any, for tests).
    pub port: u16,
    /// The group to join.
    pub membership: Option<Membership>,
    /// Receive buffer to ask for (None: the system default).
    pub rcvbuf: Option<usize>,
    /// How messages name the inputs.
    pub names: InputNames,
}

impl ReceiveSpec {
    /// "udp 0.0.0.0:5004" or "udp 232.1.1.1:5004 (joined 232.1.1.1 from 10.0.0.1 on eth0)", for
    /// logs; the port as asked (see the socket's `local_addr` for what 0 became).
    pub fn describe(&self) -> String {
        match &self.membership {
            Some(m) => {
                let local = self.bind.unwrap_or(m.group());
                format!("udp {} (joined {})", SocketAddr::new(local, self.port), m.describe())
            }
            None => format!("udp {}", SocketAddr::new(self.bind.unwrap_or(Ipv4Addr::UNSPECIFIED.into()), self.port)),
        }
    }
}

/// Opens the socket `spec` asks for: bound (and joined, logging [`Membership::warning`]), with
/// the receive buffer asked for.
///
/// # Errors
/// As [`bind_unicast`] and [`bind_joined`].
pub fn open_receiver(spec: &ReceiveSpec) -> Result<UdpSocket> {
    let sock = match &spec.membership {
        Some(m) => {
            if let Some(w) = m.warning() {
                log::warn!("{w}");
            }
            bind_joined(m, spec.bind, spec.port)?
        }
        None => {
            let sa = SocketAddr::new(spec.bind.unwrap_or(Ipv4Addr::UNSPECIFIED.into()), spec.port);
            bind_unicast(sa, spec.names)?
        }
    };
    if let Some(bytes) = spec.rcvbuf {
        set_receive_buffer(sock.as_fd(), bytes);
    }
    Ok(sock)
}

/// A UDP socket bound to `sa`.
///
/// # Errors
/// [`Error::Os`] naming the address (and suggesting another port: the usual cause is a second
/// receiver on it).
pub fn bind_unicast(sa: SocketAddr, names: InputNames) -> Result<UdpSocket> {
    UdpSocket::bind(sa).map_err(|e| {
        Error::os(format!("bind UDP {sa}: is another receiver already using the port? (try another {})", names.port), e)
    })
}

/// A UDP socket bound to `port` on the group address (or on `bind` if given, e.g. the wildcard
/// address), with SO_REUSEADDR so several receivers of one group can share the port, joined to
/// `m`. The socket is blocking, as `UdpSocket::bind` makes it.
///
/// # Errors
/// [`Error::Invalid`] if `bind` and the group differ in family; [`Error::Join`] if the
/// interface does not exist or the join is refused; [`Error::Os`] for the socket calls.
pub fn bind_joined(m: &Membership, bind: Option<IpAddr>, port: u16) -> Result<UdpSocket> {
    let names = m.names();
    let local = bind.unwrap_or(m.group());
    if local.is_ipv4() != m.group().is_ipv4() {
        return Err(Error::Invalid(format!(
            "{} {local} and {} {} are of different address families",
            names.bind,
            names.group,
            m.group()
        )));
    }
    let index = optional_index(m.iface()).map_err(|e| Error::Join { membership: m.describe(), source: Box::new(e) })?;
    let family = if local.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
    // SAFETY: socket(2) with constant arguments; the result is checked before use.
    let raw = unsafe { libc::socket(family, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, libc::IPPROTO_UDP) };
    if raw < 0 {
        return Err(Error::os("create a UDP socket", io::Error::last_os_error()));
    }
    // SAFETY: raw is a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    setsockopt(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_REUSEADDR, &(1 as libc::c_int))
        .map_err(|e| Error::os("set SO_REUSEADDR", e))?;
    // A link-scope IPv6 group is bound with the interface as its scope.
    let sa = match local {
        IpAddr::V4(a) => SocketAddr::V4(SocketAddrV4::new(a, port)),
        IpAddr::V6(a) => SocketAddr::V6(SocketAddrV6::new(a, port, 0, if a.is_multicast() { index } else { 0 })),
    };
    bind_fd(fd.as_raw_fd(), sa).map_err(|e| Error::os(format!("bind UDP {sa} to receive {}", m.describe()), e))?;
    join(fd.as_fd(), m)?;
    Ok(UdpSocket::from(fd))
}

/// Asks for a receive buffer of `bytes`. SO_RCVBUFFORCE (root / CAP_NET_ADMIN) goes past
/// net.core.rmem_max; without the capability the plain option is clamped by the kernel, which
/// is still better than the default at high packet rates. A refusal is logged, not an error:
/// the socket works with the default.
pub fn set_receive_buffer(fd: BorrowedFd<'_>, bytes: usize) {
    grow_buffer(fd.as_raw_fd(), libc::SO_RCVBUFFORCE, libc::SO_RCVBUF, bytes);
}

/// As [`set_receive_buffer`], for the send buffer.
pub fn set_send_buffer(fd: BorrowedFd<'_>, bytes: usize) {
    grow_buffer(fd.as_raw_fd(), libc::SO_SNDBUFFORCE, libc::SO_SNDBUF, bytes);
}

fn grow_buffer(fd: RawFd, force: libc::c_int, plain: libc::c_int, bytes: usize) {
    let v = bytes.min(i32::MAX as usize) as libc::c_int;
    if setsockopt(fd, libc::SOL_SOCKET, force, &v).is_ok() {
        return;
    }
    if let Err(e) = setsockopt(fd, libc::SOL_SOCKET, plain, &v) {
        log::warn!("cannot set socket buffer to {bytes} bytes: {e}");
        return;
    }
    // Without CAP_NET_ADMIN the kernel silently caps the plain option at the sysctl: say so, or
    // the loss at high rates shows up as socket drops with no hint why.
    let (what, sysctl) = match plain {
        libc::SO_RCVBUF => ("receive", "net.core.rmem_max"),
        _ => ("send", "net.core.wmem_max"),
    };
    match getsockopt_int(fd, libc::SOL_SOCKET, plain) {
        // The kernel doubles what it grants (for its bookkeeping) and reports the double.
        Ok(reported) if (reported.max(0) as usize) / 2 < v as usize => {
            let path = format!("/proc/sys/{}", sysctl.replace('.', "/"));
            let max = std::fs::read_to_string(&path).map(|m| m.trim().to_string()).unwrap_or_else(|_| "?".into());
            log::warn!(
                "socket {what} buffer: asked for {bytes} bytes, got {}: without CAP_NET_ADMIN the kernel caps it at \
                 {sysctl} (now {max}); raise it (sysctl -w {sysctl}={bytes}, or the layer's \
                 /etc/sysctl.d/60-rtpmgr.conf) or ask for less (docs/tuning.md)",
                reported / 2
            );
        }
        Ok(_) => {}
        Err(e) => log::warn!("cannot read back the socket {what} buffer size: {e}"),
    }
}

fn getsockopt_int(fd: RawFd, level: libc::c_int, name: libc::c_int) -> io::Result<libc::c_int> {
    let mut v: libc::c_int = 0;
    let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: v and len are live, writable locals for the duration of the call and len holds v's
    // exact size, so the kernel writes at most that many bytes into v.
    let rc = unsafe { libc::getsockopt(fd, level, name, (&mut v as *mut libc::c_int).cast(), &mut len) };
    if rc == 0 {
        Ok(v)
    } else {
        Err(io::Error::last_os_error())
    }
}

pub(crate) fn setsockopt<T>(fd: RawFd, level: libc::c_int, name: libc::c_int, val: &T) -> io::Result<()> {
    // SAFETY: val points at a live T for the duration of the call and its exact size is passed
    // alongside; the kernel only reads it. It reads every byte, padding included, so callers pass
    // only types without padding (multicast.rs names group_req's padding as a field).
    let rc =
        unsafe { libc::setsockopt(fd, level, name, (val as *const T).cast(), mem::size_of::<T>() as libc::socklen_t) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

// storage_of writes a sockaddr_in (16 bytes) or sockaddr_in6 (28 bytes) over a zeroed
// sockaddr_storage and returns it by value. A move copies fields, not padding: sockaddr_storage
// is { ss_family: u16, __ss_pad2: [u8; 128 - 2 - size_of::<usize>()], __ss_align: usize } with no
// padding, and both addresses lie within its first two fields, so the copy keeps every byte.
const _: () = assert!(mem::size_of::<libc::sockaddr_in>() == 16 && mem::size_of::<libc::sockaddr_in6>() == 28);
const _: () = assert!(mem::size_of::<libc::sockaddr_storage>() == 128);
const _: () = assert!(mem::size_of::<libc::sockaddr_in6>() <= 128 - mem::size_of::<usize>());

/// `addr` as a sockaddr_storage (port 0), the form group_req wants.
pub(crate) fn storage_of(addr: IpAddr, scope_id: u32) -> libc::sockaddr_storage {
    // SAFETY: sockaddr_storage is plain data for which all-zero is valid (AF_UNSPEC).
    let mut ss: libc::sockaddr_storage = unsafe { mem::zeroed() };
    match addr {
        IpAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: 0,
                sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(a.octets()) },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned at least like sockaddr_in.
            unsafe { std::ptr::write((&mut ss as *mut libc::sockaddr_storage).cast(), sin) };
        }
        IpAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: 0,
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr { s6_addr: a.octets() },
                sin6_scope_id: scope_id,
            };
            // SAFETY: sockaddr_storage is larger than and aligned at least like sockaddr_in6.
            unsafe { std::ptr::write((&mut ss as *mut libc::sockaddr_storage).cast(), sin6) };
        }
    }
    ss
}

fn bind_fd(fd: RawFd, sa: SocketAddr) -> io::Result<()> {
    let (mut ss, len) = match sa {
        SocketAddr::V4(a) => (storage_of(IpAddr::V4(*a.ip()), 0), mem::size_of::<libc::sockaddr_in>()),
        SocketAddr::V6(a) => (storage_of(IpAddr::V6(*a.ip()), a.scope_id()), mem::size_of::<libc::sockaddr_in6>()),
    };
    // The port sits at the same offset (2) in sockaddr_in and sockaddr_in6, in network order.
    // SAFETY: ss holds a sockaddr_in or sockaddr_in6 written by storage_of; both start with
    // sa_family then the 16-bit port.
    unsafe {
        let p = (&mut ss as *mut libc::sockaddr_storage).cast::<u8>().add(2).cast::<u16>();
        std::ptr::write_unaligned(p, sa.port().to_be());
    }
    // SAFETY: ss is a valid socket address of `len` bytes that lives across the call.
    let rc = unsafe { libc::bind(fd, (&ss as *const libc::sockaddr_storage).cast(), len as libc::socklen_t) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn getsockopt_int(fd: RawFd, level: libc::c_int, name: libc::c_int) -> libc::c_int {
        super::getsockopt_int(fd, level, name).unwrap_or_else(|e| panic!("getsockopt {level}/{name}: {e}"))
    }

    fn spec(port: u16) -> ReceiveSpec {
        ReceiveSpec {
            bind: Some(Ipv4Addr::LOCALHOST.into()),
            port,
            membership: None,
            rcvbuf: None,
            names: InputNames::NEUTRAL,
        }
    }

    #[test]
    fn unicast_receiver_is_bound_and_its_buffer_grows() {
        let plain = open_receiver(&spec(0)).unwrap();
        let default = getsockopt_int(plain.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVBUF);
        let big = open_receiver(&ReceiveSpec { rcvbuf: Some(4 << 20), ..spec(0) }).unwrap();
        assert_eq!(big.local_addr().unwrap().ip(), IpAddr::from(Ipv4Addr::LOCALHOST));
        // The kernel doubles what it is given (and clamps the plain option to rmem_max, which is
        // still above its default on any Linux).
        let got = getsockopt_int(big.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVBUF);
        assert!(got > default, "rcvbuf {got} not above the default {default}");
        let to = big.local_addr().unwrap();
        UdpSocket::bind("127.0.0.1:0").unwrap().send_to(b"rtp", to).unwrap();
        big.set_read_timeout(Some(std::time::Duration::from_secs(2))).unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(big.recv(&mut buf).unwrap(), 3);
    }

    #[test]
    fn a_taken_port_is_named_with_the_front_ends_word_for_it() {
        let a = open_receiver(&spec(0)).unwrap();
        let port = a.local_addr().unwrap().port();
        let names = InputNames { port: "receive.port", ..InputNames::NEUTRAL };
        let e = open_receiver(&ReceiveSpec { names, ..spec(port) }).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains(&format!("cannot bind UDP 127.0.0.1:{port}")), "{msg}");
        assert!(msg.contains("try another receive.port"), "{msg}");
        assert!(std::error::Error::source(&e).is_some(), "the OS error is the source");
    }

    #[test]
    fn describe_names_the_bound_address_and_the_join() {
        assert_eq!(spec(5004).describe(), "udp 127.0.0.1:5004");
        assert_eq!(ReceiveSpec { bind: None, ..spec(5004) }.describe(), "udp 0.0.0.0:5004");
        let m = Membership::new(
            "232.1.1.1".parse().unwrap(),
            Some("10.0.0.1".parse().unwrap()),
            Some("eth0".into()),
            InputNames::NEUTRAL,
        )
        .unwrap();
        let s = ReceiveSpec { bind: None, membership: Some(m), ..spec(5004) };
        assert_eq!(s.describe(), "udp 232.1.1.1:5004 (joined 232.1.1.1 from 10.0.0.1 on eth0)");
    }

    #[test]
    fn joined_receiver_over_loopback_gets_its_group() {
        let m = Membership::new("239.77.3.1".parse().unwrap(), None, Some("lo".into()), InputNames::NEUTRAL).unwrap();
        let rx =
            open_receiver(&ReceiveSpec { bind: None, membership: Some(m), rcvbuf: Some(1 << 20), ..spec(0) }).unwrap();
        let port = rx.local_addr().unwrap().port();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let o = crate::SendOptions { iface: Some("lo".into()), ttl: 1, loopback: true };
        crate::apply_send_options(tx.as_fd(), "239.77.3.1".parse().unwrap(), &o).unwrap();
        tx.send_to(b"joined", ("239.77.3.1", port)).unwrap();
        rx.set_read_timeout(Some(std::time::Duration::from_secs(2))).unwrap();
        let mut buf = [0u8; 16];
        let n = rx.recv(&mut buf).expect("the joined group arrives");
        assert_eq!(&buf[..n], b"joined");
    }
}

//! UDP batching: `recvmmsg` straight into caller buffers (ring slot payloads) with the arrival
//! time of every datagram, and `sendmmsg` straight from caller buffers.
//!
//! Nothing here allocates per datagram: the `mmsghdr`/`iovec`/control arrays are kept in the
//! socket object and only re-pointed at the caller's buffers on each call. Binding, joining and
//! buffer sizes are the shared socket library's ([`rtpmgr_net`]).

use crate::multicast::{Membership, SendOptions};
use anyhow::{Context, Result};
use rtpmgr::monotonic_ns;
use std::io;
use std::mem;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::Duration;

/// Largest batch one call handles (the ring's RTPM_BATCH_MAX).
pub const BATCH_MAX: usize = 256;

/// Bytes of control data per datagram: room for one SCM_TIMESTAMPNS (a timespec) with headroom.
const CMSG_SPACE: usize = 64;

/// What `recv_batch` learnt about one datagram.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecvMeta {
    /// Bytes written into the buffer (at most its length).
    pub len: usize,
    /// The datagram was larger than the buffer and was cut (MSG_TRUNC).
    pub truncated: bool,
    /// Arrival time, CLOCK_MONOTONIC nanoseconds (the ring's time base).
    pub arrival_ns: u64,
}

/// A clock now, in ns (CLOCK_REALTIME here; CLOCK_MONOTONIC is the ring library's
/// [`rtpmgr::monotonic_ns`], the clock of `arrival_ns`).
fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: ts is a valid, writable timespec; both clocks always exist on Linux.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    (ts.tv_sec as u64).wrapping_mul(1_000_000_000).wrapping_add(ts.tv_nsec as u64)
}

fn setsockopt_int(fd: RawFd, level: libc::c_int, name: libc::c_int, val: libc::c_int) -> io::Result<()> {
    // SAFETY: val lives across the call and its size is passed alongside.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            &val as *const libc::c_int as *const libc::c_void,
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Wait up to `timeout` for `events` on `fd`. Ok(false) on timeout or EINTR (the caller
/// re-checks its shutdown flag either way).
pub fn poll_fd(fd: RawFd, events: libc::c_short, timeout: Duration) -> io::Result<bool> {
    let mut pfd = libc::pollfd { fd, events, revents: 0 };
    let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
    // SAFETY: one valid pollfd.
    let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(false);
        }
        return Err(e);
    }
    Ok(rc > 0)
}

/// Scratch arrays for one `recvmmsg`/`sendmmsg` call.
struct Scratch {
    hdrs: Vec<libc::mmsghdr>,
    iovs: Vec<libc::iovec>,
    /// u64 elements keep every control buffer 8-byte aligned as cmsghdr needs.
    ctrl: Vec<u64>,
}

// SAFETY: the raw pointers inside hdrs/iovs are written at the start of every call and only
// dereferenced (by the kernel) during that call; between calls they are dead values, so moving
// the struct to another thread cannot create a dangling access.
unsafe impl Send for Scratch {}

impl Scratch {
    fn new() -> Self {
        // SAFETY: mmsghdr and iovec are plain C structs for which all-zero is a valid value.
        let zero_hdr: libc::mmsghdr = unsafe { mem::zeroed() };
        let zero_iov = libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 };
        Self {
            hdrs: vec![zero_hdr; BATCH_MAX],
            iovs: vec![zero_iov; BATCH_MAX],
            ctrl: vec![0u64; BATCH_MAX * CMSG_SPACE / 8],
        }
    }
}

/// A bound UDP socket that receives batches.
pub struct RxSocket {
    sock: UdpSocket,
    scratch: Scratch,
    timestamps: bool,
}

impl RxSocket {
    /// Bind `addr:port`, enable SO_TIMESTAMPNS and a large receive buffer.
    pub fn bind(addr: IpAddr, port: u16, rcvbuf: usize) -> Result<Self> {
        let sa = SocketAddr::new(addr, port);
        let sock = UdpSocket::bind(sa).with_context(|| {
            format!("cannot bind UDP {sa}: is another receiver already using the port? (try --port)")
        })?;
        Ok(Self::from_socket(sock, rcvbuf))
    }

    /// Bind `port` on the group (or on `bind`) and join `m`: see [`rtpmgr_net::bind_joined`].
    /// Then as [`RxSocket::bind`].
    pub fn bind_multicast(m: &Membership, bind: Option<IpAddr>, port: u16, rcvbuf: usize) -> Result<Self> {
        Ok(Self::from_socket(rtpmgr_net::bind_joined(m, bind, port)?, rcvbuf))
    }

    /// A large receive buffer and SO_TIMESTAMPNS on a bound socket.
    fn from_socket(sock: UdpSocket, rcvbuf: usize) -> Self {
        rtpmgr_net::set_receive_buffer(sock.as_fd(), rcvbuf);
        let fd = sock.as_raw_fd();
        let timestamps = match setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1) {
            Ok(()) => true,
            Err(e) => {
                log::warn!("SO_TIMESTAMPNS unavailable ({e}); stamping arrival at receive time");
                false
            }
        };
        Self { sock, scratch: Scratch::new(), timestamps }
    }

    /// The bound address (useful with --port 0).
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.sock.local_addr().context("cannot read the bound socket address")
    }

    /// Raw descriptor, for poll.
    pub fn fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }

    /// Receive up to `bufs.len()` (at most [`BATCH_MAX`]) datagrams, one per buffer, without
    /// blocking. `meta` is cleared and gets one entry per datagram received, in order. Returns
    /// the number received; 0 when nothing was waiting.
    pub fn recv_batch(&mut self, bufs: &mut [&mut [u8]], meta: &mut Vec<RecvMeta>) -> io::Result<usize> {
        meta.clear();
        let n = bufs.len().min(BATCH_MAX);
        if n == 0 {
            return Ok(0);
        }
        let s = &mut self.scratch;
        for (i, buf) in bufs.iter_mut().take(n).enumerate() {
            s.iovs[i] = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
            let h = &mut s.hdrs[i];
            // SAFETY: all-zero msghdr is valid (no name, no control).
            h.msg_hdr = unsafe { mem::zeroed() };
            h.msg_hdr.msg_iov = &mut s.iovs[i];
            h.msg_hdr.msg_iovlen = 1;
            if self.timestamps {
                h.msg_hdr.msg_control = s.ctrl[i * CMSG_SPACE / 8..].as_mut_ptr().cast();
                h.msg_hdr.msg_controllen = CMSG_SPACE as _;
            }
            h.msg_len = 0;
        }
        // SAFETY: hdrs[..n] point at n live iovecs, each covering a live, exclusively borrowed
        // caller buffer, and at n control buffers of CMSG_SPACE bytes inside s.ctrl; all outlive
        // the call. MSG_DONTWAIT: the caller polls with a timeout so it can see its stop flag.
        let rc = unsafe {
            libc::recvmmsg(
                self.sock.as_raw_fd(),
                s.hdrs.as_mut_ptr(),
                n as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if rc < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(0),
                _ => Err(e),
            };
        }
        let got = rc as usize;
        // One clock pair per batch converts SO_TIMESTAMPNS (CLOCK_REALTIME) to the ring's
        // CLOCK_MONOTONIC base; without a timestamp the receive time stands in.
        let mono = monotonic_ns();
        let real = clock_ns(libc::CLOCK_REALTIME);
        for (i, buf) in bufs.iter().take(got).enumerate() {
            let h = &s.hdrs[i];
            let len = (h.msg_len as usize).min(buf.len());
            let truncated = h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
            let arrival_ns = timestamp_of(self.timestamps, &h.msg_hdr)
                .map(|ts_real| mono.saturating_sub(real.saturating_sub(ts_real)))
                .unwrap_or(mono);
            meta.push(RecvMeta { len, truncated, arrival_ns });
        }
        Ok(got)
    }
}

/// The SCM_TIMESTAMPNS of one received message, if the kernel attached one.
fn timestamp_of(enabled: bool, hdr: &libc::msghdr) -> Option<u64> {
    if !enabled || hdr.msg_controllen == 0 {
        return None;
    }
    // SAFETY: hdr was filled by recvmmsg; msg_control points at our control buffer and
    // msg_controllen is the length the kernel wrote, which the CMSG_* macros respect.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(hdr);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                return Some((ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64);
            }
            c = libc::CMSG_NXTHDR(hdr, c);
        }
    }
    None
}

/// A connected UDP socket that sends batches.
pub struct TxSocket {
    sock: UdpSocket,
    scratch: Scratch,
}

/// Where `--mode tx` sends its datagrams: a connected UDP socket, or an AF_XDP socket (`--xdp`).
pub trait DatagramSender: Send {
    /// Sends a leading part of `bufs` now; returns how many were taken (0: none could be sent
    /// right now, offer them again). Errors are the socket's.
    fn send_batch(&mut self, bufs: &[&[u8]]) -> io::Result<usize>;
    /// "udp 10.0.0.2:40000", for the log.
    fn describe(&self) -> String;
    /// At the end of a run: waits (bounded) for what is still in flight and returns a report
    /// line, if this transport has one.
    fn finish(&mut self) -> Option<String> {
        None
    }
}

impl DatagramSender for TxSocket {
    fn send_batch(&mut self, bufs: &[&[u8]]) -> io::Result<usize> {
        TxSocket::send_batch(self, bufs)
    }
    fn describe(&self) -> String {
        format!("udp socket (local {})", self.local_addr().map(|a| a.to_string()).unwrap_or_default())
    }
}

impl TxSocket {
    /// Bind `bind` (port 0 = any) and connect to `dst`, so sendmmsg needs no per-message address.
    pub fn connect(bind: SocketAddr, dst: SocketAddr, sndbuf: usize) -> Result<Self> {
        Self::connect_with(bind, dst, sndbuf, None)
    }

    /// As [`TxSocket::connect`]; to a multicast `dst`, `multicast` first sets the outgoing
    /// interface, TTL and loopback (before connect, whose route lookup uses the interface).
    pub fn connect_with(
        bind: SocketAddr,
        dst: SocketAddr,
        sndbuf: usize,
        multicast: Option<&SendOptions>,
    ) -> Result<Self> {
        let sock = UdpSocket::bind(bind).with_context(|| format!("cannot bind UDP {bind}"))?;
        if let Some(o) = multicast {
            rtpmgr_net::apply_send_options(sock.as_fd(), dst.ip(), o)?;
        }
        sock.connect(dst).with_context(|| {
            let hint = match (multicast, dst.ip().is_multicast()) {
                (Some(SendOptions { iface: None, .. }), true) => " (no route to the group? give --iface)",
                _ => "",
            };
            format!("cannot connect UDP socket to {dst}{hint}")
        })?;
        rtpmgr_net::set_send_buffer(sock.as_fd(), sndbuf);
        Ok(Self { sock, scratch: Scratch::new() })
    }

    /// Local address.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.sock.local_addr().context("cannot read the local socket address")
    }

    /// The connected socket, e.g. to hand to the kernel (`--path kernel`).
    pub fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.sock.as_fd()
    }

    /// One `sendmmsg` of up to [`BATCH_MAX`] buffers, one datagram each. Returns how many the
    /// kernel took (possibly fewer than offered); errors are the call's errno when it took none.
    pub fn send_batch(&mut self, bufs: &[&[u8]]) -> io::Result<usize> {
        let n = bufs.len().min(BATCH_MAX);
        if n == 0 {
            return Ok(0);
        }
        let s = &mut self.scratch;
        for (i, buf) in bufs.iter().take(n).enumerate() {
            // sendmmsg never writes through iov_base; the cast to *mut is what the C type wants.
            s.iovs[i] = libc::iovec { iov_base: buf.as_ptr() as *mut libc::c_void, iov_len: buf.len() };
            let h = &mut s.hdrs[i];
            // SAFETY: all-zero msghdr is valid (connected socket: no name; no control).
            h.msg_hdr = unsafe { mem::zeroed() };
            h.msg_hdr.msg_iov = &mut s.iovs[i];
            h.msg_hdr.msg_iovlen = 1;
            h.msg_len = 0;
        }
        // SAFETY: hdrs[..n] point at n live iovecs covering live caller buffers that outlive the
        // call; the kernel only reads them.
        let rc = unsafe { libc::sendmmsg(self.sock.as_raw_fd(), s.hdrs.as_mut_ptr(), n as libc::c_uint, 0) };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(rc as usize)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn batch_roundtrip_over_loopback_with_timestamps() {
        let mut rx = RxSocket::bind(IpAddr::V4(Ipv4Addr::LOCALHOST), 0, 1 << 20).unwrap();
        let dst = rx.local_addr().unwrap();
        let mut tx = TxSocket::connect("127.0.0.1:0".parse().unwrap(), dst, 1 << 20).unwrap();
        let payloads: Vec<Vec<u8>> = (0..10u8).map(|i| vec![i; 100 + i as usize]).collect();
        let refs: Vec<&[u8]> = payloads.iter().map(|p| p.as_slice()).collect();
        assert_eq!(tx.send_batch(&refs).unwrap(), 10);

        let before = monotonic_ns();
        let mut store = vec![[0u8; 256]; 16];
        let mut meta = Vec::new();
        let mut got = 0;
        let mut received: Vec<Vec<u8>> = Vec::new();
        for _ in 0..100 {
            poll_fd(rx.fd(), libc::POLLIN, Duration::from_millis(100)).unwrap();
            let mut bufs: Vec<&mut [u8]> = store.iter_mut().map(|b| &mut b[..]).collect();
            let n = rx.recv_batch(&mut bufs, &mut meta).unwrap();
            for (i, m) in meta.iter().enumerate() {
                received.push(bufs[i][..m.len].to_vec());
                assert!(!m.truncated);
                // The datagrams were sent before `before`; a realtime->monotonic conversion
                // that went wrong would be off by decades, not by a few ms.
                assert!(m.arrival_ns <= monotonic_ns());
                assert!(before.abs_diff(m.arrival_ns) < 5_000_000_000, "{before} vs {}", m.arrival_ns);
            }
            got += n;
            if got == 10 {
                break;
            }
        }
        assert_eq!(received, payloads);
    }

    #[test]
    fn oversized_datagram_is_flagged_truncated() {
        let mut rx = RxSocket::bind(IpAddr::V4(Ipv4Addr::LOCALHOST), 0, 1 << 20).unwrap();
        let mut tx = TxSocket::connect("127.0.0.1:0".parse().unwrap(), rx.local_addr().unwrap(), 1 << 20).unwrap();
        tx.send_batch(&[&[7u8; 300]]).unwrap();
        poll_fd(rx.fd(), libc::POLLIN, Duration::from_secs(2)).unwrap();
        let mut small = [0u8; 100];
        let mut bufs: Vec<&mut [u8]> = vec![&mut small[..]];
        let mut meta = Vec::new();
        assert_eq!(rx.recv_batch(&mut bufs, &mut meta).unwrap(), 1);
        assert_eq!(meta[0].len, 100);
        assert!(meta[0].truncated);
    }

    #[test]
    fn bind_conflict_names_the_port() {
        let a = RxSocket::bind(IpAddr::V4(Ipv4Addr::LOCALHOST), 0, 0).unwrap();
        let port = a.local_addr().unwrap().port();
        let err = RxSocket::bind(IpAddr::V4(Ipv4Addr::LOCALHOST), port, 0).err().unwrap();
        assert!(format!("{err:#}").contains(&format!("127.0.0.1:{port}")));
    }
}

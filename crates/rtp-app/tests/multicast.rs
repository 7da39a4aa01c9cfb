//! Multicast end to end over a veth pair (root only; skipped with the reason otherwise).
//!
//! One end of the pair is in a network namespace and plays the network: senders there send RTP
//! to two groups from the right source and from a wrong one. The built `rtp_app --mode rx
//! --group G --ssm-source S --iface <veth>` must receive exactly the joined (group, source)
//! stream, IPv4 and IPv6, whether it binds to the group (the default) or to the wildcard
//! address. A witness socket on the host joins both groups for any source: it proves that the
//! unwanted streams did reach the host, so only rtp_app's own filter kept them out. And
//! `rtp_app --mode tx --dst G --iface <veth> --ttl N` delivers every packet with that TTL to a
//! receiver in the namespace, and a copy to a receiver on the sending host only with
//! `--multicast-loop`.

mod common;
use common::*;
use rtpmgr_testkit::netns::{Veth, VethSpec};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Subnets of these tests (the AF_XDP veth tests use 10.203.77.0/24, rtpmgr-testkit's own 10.203.79.0/24).
const HOST_V4: &str = "10.203.78.1";
const SOURCE_V4: &str = "10.203.78.2";
const WRONG_SOURCE_V4: &str = "10.203.78.3";
const HOST_V6: &str = "fd00:78::1";
const SOURCE_V6: &str = "fd00:78::2";
const WRONG_SOURCE_V6: &str = "fd00:78::3";

/// The pair: the host end has HOST_*, the end in the namespace both sources of each family.
const VETH: VethSpec = VethSpec {
    host_prefix: "mr",
    peer_prefix: "mp",
    ns_prefix: "rtpmgr-mc",
    host_addrs: &["10.203.78.1/24", "fd00:78::1/64"],
    peer_addrs: &["10.203.78.2/24", "10.203.78.3/24", "fd00:78::2/64", "fd00:78::3/64"],
    needs_root_because: "the multicast veth tests need root (network namespaces, veth)",
    needs_ipv6: true,
};

/// Packets of each stream; all different, so any leak shows in the count.
const JOINED: u32 = 50;
const OTHER_GROUP: u32 = 70;
const OTHER_SOURCE: u32 = 90;

fn addr(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// An rtp_app child that is killed if the test fails before it is stopped.
struct App(KillOnDrop);

impl App {
    /// SIGINT, as an operator stops it; the final JSON record.
    fn stop(self) -> serde_json::Value {
        let child = self.0;
        let st = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
        assert!(st.success());
        let out = wait_bounded(child, Duration::from_secs(10));
        assert!(out.status.success(), "rtp_app exit {:?}: {}", out.status, String::from_utf8_lossy(&out.stderr));
        final_record(&out.stdout)
    }
}

fn ifindex(name: &str) -> u32 {
    let c = std::ffi::CString::new(name).unwrap();
    // SAFETY: c is a valid NUL-terminated string.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    assert_ne!(i, 0, "no interface {name}");
    i
}

fn setsockopt<T>(fd: i32, level: i32, name: i32, val: &T) {
    // SAFETY: val is a live T whose size is passed alongside.
    let rc = unsafe {
        libc::setsockopt(fd, level, name, (val as *const T).cast(), std::mem::size_of::<T>() as libc::socklen_t)
    };
    assert_eq!(rc, 0, "setsockopt {level}/{name}: {}", std::io::Error::last_os_error());
}

/// One RTP v2 packet: PT 96, 100 bytes of payload.
fn rtp_packet(ssrc: u32, seq: u16) -> Vec<u8> {
    let mut p = vec![0x80, 96];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 3000).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.resize(12 + 100, 0xab);
    p
}

/// Sends `count` RTP packets with `ssrc` from `src` to `group:port` out of interface `iface`
/// (call inside the namespace), one every 0.5 ms.
fn send_stream(src: IpAddr, group: IpAddr, port: u16, iface: &str, ssrc: u32, count: u32) {
    let sock = UdpSocket::bind(SocketAddr::new(src, 0)).unwrap_or_else(|e| panic!("bind {src}: {e}"));
    let index = ifindex(iface);
    match group {
        IpAddr::V4(_) => {
            let req = libc::ip_mreqn {
                imr_multiaddr: libc::in_addr { s_addr: 0 },
                imr_address: libc::in_addr { s_addr: 0 },
                imr_ifindex: index as i32,
            };
            setsockopt(sock.as_raw_fd(), libc::IPPROTO_IP, libc::IP_MULTICAST_IF, &req);
        }
        IpAddr::V6(_) => setsockopt(sock.as_raw_fd(), libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_IF, &(index as i32)),
    }
    for seq in 0..count {
        sock.send_to(&rtp_packet(ssrc, seq as u16), (group, port)).unwrap();
        std::thread::sleep(Duration::from_micros(500));
    }
}

/// A socket on the host, bound to the wildcard address with SO_REUSEADDR, that joins `groups`
/// for any source with the std (IP_ADD_MEMBERSHIP / IPV6_ADD_MEMBERSHIP) calls: a path
/// independent of rtp_app's.
fn witness(family: IpAddr, port: u16, groups: &[IpAddr], iface: &str) -> UdpSocket {
    let af = if family.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
    // SAFETY: socket(2) with constant arguments, checked below.
    let raw = unsafe { libc::socket(af, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    assert!(raw >= 0);
    // SAFETY: raw is a fresh descriptor owned by nothing else.
    let sock = UdpSocket::from(unsafe { OwnedFd::from_raw_fd(raw) });
    setsockopt(sock.as_raw_fd(), libc::SOL_SOCKET, libc::SO_REUSEADDR, &1i32);
    let any: IpAddr = if family.is_ipv4() { Ipv4Addr::UNSPECIFIED.into() } else { Ipv6Addr::UNSPECIFIED.into() };
    raw_sockaddr::Sockaddr::from(SocketAddr::new(any, port)).bind(sock.as_raw_fd());
    for g in groups {
        match g {
            IpAddr::V4(g) => sock.join_multicast_v4(g, &HOST_V4.parse().unwrap()).unwrap(),
            IpAddr::V6(g) => sock.join_multicast_v6(g, ifindex(iface)).unwrap(),
        }
    }
    sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    sock
}

/// A std SocketAddr as the C sockaddr that bind(2) takes (the witness sets SO_REUSEADDR
/// before binding, which std's UdpSocket::bind cannot).
mod raw_sockaddr {
    use std::net::SocketAddr;

    pub struct Sockaddr(libc::sockaddr_storage, libc::socklen_t);

    impl From<SocketAddr> for Sockaddr {
        fn from(a: SocketAddr) -> Sockaddr {
            // SAFETY: all-zero sockaddr_storage is valid.
            let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
            let len = match a {
                SocketAddr::V4(a) => {
                    let sin = libc::sockaddr_in {
                        sin_family: libc::AF_INET as libc::sa_family_t,
                        sin_port: a.port().to_be(),
                        sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(a.ip().octets()) },
                        sin_zero: [0; 8],
                    };
                    // SAFETY: sockaddr_storage is big and aligned enough for sockaddr_in.
                    unsafe { std::ptr::write((&mut ss as *mut libc::sockaddr_storage).cast(), sin) };
                    std::mem::size_of::<libc::sockaddr_in>()
                }
                SocketAddr::V6(a) => {
                    let sin6 = libc::sockaddr_in6 {
                        sin6_family: libc::AF_INET6 as libc::sa_family_t,
                        sin6_port: a.port().to_be(),
                        sin6_flowinfo: 0,
                        sin6_addr: libc::in6_addr { s6_addr: a.ip().octets() },
                        sin6_scope_id: a.scope_id(),
                    };
                    // SAFETY: sockaddr_storage is big and aligned enough for sockaddr_in6.
                    unsafe { std::ptr::write((&mut ss as *mut libc::sockaddr_storage).cast(), sin6) };
                    std::mem::size_of::<libc::sockaddr_in6>()
                }
            };
            Sockaddr(ss, len as libc::socklen_t)
        }
    }

    impl Sockaddr {
        pub fn bind(&self, fd: i32) {
            // SAFETY: self.0 holds a valid address of self.1 bytes.
            let rc = unsafe { libc::bind(fd, (&self.0 as *const libc::sockaddr_storage).cast(), self.1) };
            assert_eq!(rc, 0, "bind: {}", std::io::Error::last_os_error());
        }
    }
}

/// Receives on `sock` until `want` datagrams arrived or `limit` passed; datagrams per SSRC.
fn count_by_ssrc(sock: &UdpSocket, want: u32, limit: Duration) -> HashMap<u32, u32> {
    let mut by_ssrc = HashMap::new();
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; 2048];
    while by_ssrc.values().sum::<u32>() < want && Instant::now() < deadline {
        if let Ok(n) = sock.recv(&mut buf) {
            assert!(n >= 12, "short datagram");
            *by_ssrc.entry(u32::from_be_bytes(buf[8..12].try_into().unwrap())).or_insert(0) += 1;
        }
    }
    by_ssrc
}

/// Starts `rtp_app --mode rx` joined to (group, source) on the host end, into its own shm ring.
fn start_rx(v: &Veth, ring: &ShmRing, group: IpAddr, source: IpAddr, port: u16, bind: Option<&str>) -> App {
    let (group, source, port) = (group.to_string(), source.to_string(), port.to_string());
    let mut args = vec![
        "--mode", "rx", "--group", &group, "--ssm-source", &source, "--iface", &v.host, "--port", &port, "--backend",
        "shm", "--shm-name", &ring.0, "--drain", "--json", "--interval", "0", "-t", "60",
    ];
    if let Some(b) = bind {
        args.extend(["--bind", b]);
    }
    let (child, _stderr) = spawn_ready(&args, "rx: receiving on");
    App(child)
}

/// The source-specific receive test for one address family.
fn ssm_receive(test: &str, tag: &str, v6: bool) {
    let Some(v) = Veth::new(test, tag, &VETH) else { return };
    let (host, src, wrong, wildcard) = match v6 {
        false => (HOST_V4, SOURCE_V4, WRONG_SOURCE_V4, "0.0.0.0"),
        true => (HOST_V6, SOURCE_V6, WRONG_SOURCE_V6, "::"),
    };
    let (g1, g2) = match v6 {
        false => (addr("232.78.1.1"), addr("232.78.1.2")),
        true => (addr("ff3e::78:1"), addr("ff3e::78:2")),
    };
    let port = free_port();
    // Receiver A binds to the group (the default), B to the wildcard address, where only
    // IP_MULTICAST_ALL=0 keeps out the group the witness joined.
    let (ring_a, ring_b) = (ShmRing::new(&format!("mc-{tag}-a")), ShmRing::new(&format!("mc-{tag}-b")));
    let rx_a = start_rx(&v, &ring_a, g1, addr(src), port, None);
    let rx_b = start_rx(&v, &ring_b, g1, addr(src), port, Some(wildcard));
    let seen = witness(addr(host), port, &[g1, g2], &v.host);

    let peer = v.peer.clone();
    let (s, w) = (addr(src), addr(wrong));
    let sender = v.in_ns(move || {
        send_stream(s, g1, port, &peer, 0x1111, JOINED);
        send_stream(s, g2, port, &peer, 0x2222, OTHER_GROUP);
        send_stream(w, g1, port, &peer, 0x3333, OTHER_SOURCE);
    });
    sender.join().expect("sender in the namespace");
    let witnessed = count_by_ssrc(&seen, JOINED + OTHER_GROUP + OTHER_SOURCE, Duration::from_secs(10));
    assert_eq!(
        witnessed,
        HashMap::from([(0x1111, JOINED), (0x2222, OTHER_GROUP), (0x3333, OTHER_SOURCE)]),
        "the witness on the host must see all three streams arrive (the fixture works)"
    );
    // The receivers read what is already in their sockets within a poll interval.
    std::thread::sleep(Duration::from_millis(500));
    for (name, app) in [("bound to the group", rx_a), ("bound to the wildcard address", rx_b)] {
        let f = app.stop();
        eprintln!("{test} rx {name}: {f}");
        assert_eq!(f["packets"].as_u64(), Some(JOINED.into()), "rx {name} receives exactly the joined stream: {f}");
        assert_eq!(f["pushed"].as_u64(), Some(JOINED.into()), "{name}: {f}");
        assert_eq!(f["malformed"], 0, "{name}: {f}");
        assert_eq!(f["ring"]["pushed_packets"].as_u64(), Some(JOINED.into()), "{name}: {f}");
        assert_eq!(f["ring"]["rtp_lost"], 0, "{name}: one stream, in order: {f}");
    }
}

#[test]
fn rx_receives_only_the_joined_source_and_group_ipv4() {
    ssm_receive("multicast::rx_receives_only_the_joined_source_and_group_ipv4", "4", false);
}

#[test]
fn rx_receives_only_the_joined_source_and_group_ipv6() {
    ssm_receive("multicast::rx_receives_only_the_joined_source_and_group_ipv6", "6", true);
}

/// Receives up to `want` datagrams on `sock` (10 s bound); returns (count, TTL/hop limit of
/// each) read from IP_TTL / IPV6_HOPLIMIT control messages.
fn receive_with_ttl(sock: &UdpSocket, v6: bool, want: u32) -> (u32, Vec<i32>) {
    let fd = sock.as_raw_fd();
    match v6 {
        false => setsockopt(fd, libc::IPPROTO_IP, libc::IP_RECVTTL, &1i32),
        true => setsockopt(fd, libc::IPPROTO_IPV6, libc::IPV6_RECVHOPLIMIT, &1i32),
    }
    let (mut n, mut ttls) = (0, Vec::new());
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 2048];
    let mut ctrl = [0u64; 16];
    while n < want && Instant::now() < deadline {
        let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
        // SAFETY: all-zero msghdr is valid.
        let mut h: libc::msghdr = unsafe { std::mem::zeroed() };
        h.msg_iov = &mut iov;
        h.msg_iovlen = 1;
        h.msg_control = ctrl.as_mut_ptr().cast();
        h.msg_controllen = std::mem::size_of_val(&ctrl) as _;
        // SAFETY: h points at live buffers for the duration of the call.
        if unsafe { libc::recvmsg(fd, &mut h, 0) } < 0 {
            continue; // read timeout
        }
        n += 1;
        // SAFETY: h was filled by recvmsg; the CMSG macros stay within msg_controllen.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&h);
            while !c.is_null() {
                let ours = ((*c).cmsg_level, (*c).cmsg_type);
                if ours == (libc::IPPROTO_IP, libc::IP_TTL) || ours == (libc::IPPROTO_IPV6, libc::IPV6_HOPLIMIT) {
                    ttls.push(std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<i32>()));
                }
                c = libc::CMSG_NXTHDR(&h, c);
            }
        }
    }
    (n, ttls)
}

fn multicast_send(test: &str, tag: &str, v6: bool) {
    let Some(v) = Veth::new(test, tag, &VETH) else { return };
    let (group, peer_addr, host) = match v6 {
        false => (addr("239.78.2.1"), SOURCE_V4, HOST_V4),
        true => (addr("ff1e::78:21"), SOURCE_V6, HOST_V6),
    };
    const SENT: u32 = 200;
    const TTL: i32 = 5;
    let port = free_port();
    let (ready_tx, ready_rx) = mpsc::channel();
    let peer = v.peer.clone();
    let receiver = v.in_ns(move || {
        let sock = UdpSocket::bind(SocketAddr::new(group, port)).expect("bind the group in the namespace");
        match group {
            IpAddr::V4(g) => sock.join_multicast_v4(&g, &peer_addr.parse().unwrap()).unwrap(),
            IpAddr::V6(g) => sock.join_multicast_v6(&g, ifindex(&peer)).unwrap(),
        }
        sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        ready_tx.send(()).unwrap();
        receive_with_ttl(&sock, v6, SENT)
    });
    ready_rx.recv_timeout(Duration::from_secs(10)).expect("receiver in the namespace is ready");
    // A receiver of the group on the sending host itself: it gets a copy only with
    // --multicast-loop (on a real interface; lo would loop every packet back anyway).
    let local = witness(addr(host), port, &[group], &v.host);
    let ring = ShmRing::new(&format!("mc-tx-{tag}"));
    let (g, p, n, ttl) = (group.to_string(), port.to_string(), SENT.to_string(), TTL.to_string());
    let tx = |count: &str, extra: &[&str]| {
        let mut args = vec![
            "--mode", "tx", "--dst", &g, "--port", &p, "--iface", &v.host, "--ttl", &ttl, "--rate", "2000", "-l",
            count, "--backend", "shm", "--shm-name", &ring.0, "--json", "--interval", "0",
        ];
        args.extend(extra);
        run(&args)
    };
    let out = tx(&n, &[]);
    assert!(out.status.success(), "tx failed: {}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("multicast out of {}, ttl {TTL}, loopback off", v.host)), "{stderr}");
    let f = final_record(&out.stdout);
    assert_eq!(f["packets"].as_u64(), Some(SENT.into()), "{f}");
    assert_eq!(f["socket_errors"], 0, "{f}");
    let (received, ttls) = receiver.join().expect("receiver in the namespace");
    assert_eq!(received, SENT, "every packet sent to {group} reached the receiver that joined it");
    assert_eq!(ttls.len(), SENT as usize);
    let wrong: Vec<_> = ttls.iter().filter(|t| **t != TTL).take(5).collect();
    assert!(wrong.is_empty(), "TTL/hop limit must be --ttl {TTL}; some packets had {wrong:?}");
    let looped = count_by_ssrc(&local, 1, Duration::from_millis(300));
    assert!(looped.is_empty(), "without --multicast-loop no copy reaches this host's receiver: {looped:?}");

    let out = tx("20", &["--multicast-loop"]);
    assert!(out.status.success(), "tx failed: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback on"));
    let looped: u32 = count_by_ssrc(&local, 20, Duration::from_secs(10)).values().sum();
    assert_eq!(looped, 20, "with --multicast-loop this host's receiver gets every packet");
}

#[test]
fn tx_to_a_group_reaches_a_receiver_on_the_interface_ipv4() {
    multicast_send("multicast::tx_to_a_group_reaches_a_receiver_on_the_interface_ipv4", "t4", false);
}

#[test]
fn tx_to_a_group_reaches_a_receiver_on_the_interface_ipv6() {
    multicast_send("multicast::tx_to_a_group_reaches_a_receiver_on_the_interface_ipv6", "t6", true);
}

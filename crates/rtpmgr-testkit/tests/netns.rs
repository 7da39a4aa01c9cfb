//! The veth fixture itself (root only; skipped with the reason otherwise). A separate test binary
//! from the unit tests: one of those sets RTPMGR_SKIP_LOG for itself, and a skip recorded here at the
//! same time would land in its log.

use rtpmgr_testkit::netns::{ip, Veth, VethSpec};
use std::net::UdpSocket;
use std::time::Duration;

/// A subnet of its own (rtpmgr-xdp's veth tests use 10.203.77.0/24, rtp-app's multicast tests
/// 10.203.78.0/24).
const SPEC: VethSpec = VethSpec {
    host_prefix: "kr",
    peer_prefix: "kp",
    ns_prefix: "rtpmgr-kt",
    host_addrs: &["10.203.79.1/24", "fd00:79::1/64"],
    peer_addrs: &["10.203.79.2/24", "fd00:79::2/64"],
    needs_root_because: "the netns fixture test needs root (network namespaces, veth)",
    needs_ipv6: true,
};

/// The pair carries datagrams from the namespace to the host on IPv4 and IPv6, the peer end is
/// in the namespace, and drop removes the link and the namespace.
#[test]
fn veth_pair_carries_traffic_and_is_removed_on_drop() {
    let Some(v) = Veth::new("netns::veth_pair_carries_traffic_and_is_removed_on_drop", "a", &SPEC) else {
        return;
    };
    let (host, ns) = (v.host.clone(), v.ns.clone());
    for (here, there) in [("10.203.79.1:0", "10.203.79.2:0"), ("[fd00:79::1]:0", "[fd00:79::2]:0")] {
        let sock = UdpSocket::bind(here).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let to = sock.local_addr().unwrap();
        let sender = v
            .in_ns(move || {
                let s = UdpSocket::bind(there).unwrap();
                s.send_to(b"from the namespace", to).unwrap();
                s.local_addr().unwrap()
            })
            .join()
            .unwrap();
        let mut buf = [0u8; 64];
        let (n, from) = sock.recv_from(&mut buf).expect("datagram from the namespace");
        assert_eq!((&buf[..n], from), (&b"from the namespace"[..], sender));
    }
    assert!(ip(&["-n", &ns, "link", "show", "dev", &v.peer]).is_ok(), "the peer end is in the namespace");
    assert!(ip(&["link", "show", "dev", &v.peer]).is_err(), "the peer end is not in the host's namespace");
    drop(v);
    assert!(ip(&["link", "show", "dev", &host]).is_err(), "link {host} left behind");
    assert!(!ip(&["netns", "list"]).unwrap().contains(&ns), "namespace {ns} left behind");
}

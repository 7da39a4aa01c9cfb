//! The frame parser: Ethernet (one optional 802.1Q / 802.1ad tag), IPv4 or IPv6, UDP, RTP v2.
//!
//! It runs on every frame the XDP program redirected, on memory the kernel wrote, so it treats
//! the bytes as untrusted: every length is checked against the bytes that are there, and any
//! inconsistency is a [`Malformed`] reason, never a panic (a property test feeds it random
//! bytes). The datagram is delimited by the UDP length field, not by the frame length: short
//! Ethernet frames are padded to 60 bytes and the padding is not payload.

use std::fmt;

/// Ethernet header length (no tag).
pub const ETH_HLEN: usize = 14;
/// A VLAN tag: TPID of the outer type field plus TCI and inner type.
pub const VLAN_HLEN: usize = 4;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
const IPPROTO_UDP: u8 = 17;
const UDP_HLEN: usize = 8;
const IPV6_HLEN: usize = 40;

/// IP version of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpVersion {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

/// A parsed frame: where its UDP payload (the RTP packet) is, and the headers around it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// VLAN ID of the tag, if the frame had one.
    pub vlan: Option<u16>,
    /// IP version.
    pub ip: IpVersion,
    /// UDP source port.
    pub src_port: u16,
    /// UDP destination port.
    pub dst_port: u16,
    /// The UDP payload: the RTP packet, as long as the UDP length field says.
    pub payload: &'a [u8],
}

/// Why a frame was not a valid RTP datagram. Counted as `malformed` and dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// The frame ends inside the named header.
    Truncated(&'static str),
    /// Neither IPv4 nor IPv6 after the (optional) VLAN tag.
    NotIp(u16),
    /// IPv4 header length below 20 bytes, total length below the header, or version not 4.
    BadIpv4Header,
    /// IPv6 version field not 6.
    BadIpv6Header,
    /// Not UDP (or an IPv6 extension header before it).
    NotUdp(u8),
    /// An IPv4 fragment: the XDP program passes those to the kernel, so this is unexpected.
    Fragment,
    /// The UDP length field is below 8 or beyond the IP payload / the frame.
    BadUdpLength,
    /// The UDP payload is not a valid RTP v2 packet.
    NotRtp,
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Malformed::Truncated(h) => write!(f, "frame ends inside the {h} header"),
            Malformed::NotIp(t) => write!(f, "ethertype {t:#06x} is not IPv4 or IPv6"),
            Malformed::BadIpv4Header => f.write_str("invalid IPv4 header"),
            Malformed::BadIpv6Header => f.write_str("invalid IPv6 header"),
            Malformed::NotUdp(p) => write!(f, "IP protocol {p} is not UDP"),
            Malformed::Fragment => f.write_str("IPv4 fragment"),
            Malformed::BadUdpLength => f.write_str("UDP length does not fit the packet"),
            Malformed::NotRtp => f.write_str("UDP payload is not RTP v2"),
        }
    }
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Parses the headers of `frame` down to the UDP payload; does not look at the payload.
///
/// # Errors
/// The first inconsistency found, as a [`Malformed`] reason.
pub fn parse_udp(frame: &[u8]) -> Result<Frame<'_>, Malformed> {
    if frame.len() < ETH_HLEN {
        return Err(Malformed::Truncated("Ethernet"));
    }
    let mut ethertype = be16(frame, 12);
    let mut l3 = ETH_HLEN;
    let mut vlan = None;
    if ethertype == ETH_P_8021Q || ethertype == ETH_P_8021AD {
        if frame.len() < ETH_HLEN + VLAN_HLEN {
            return Err(Malformed::Truncated("VLAN"));
        }
        vlan = Some(be16(frame, 14) & 0x0fff);
        ethertype = be16(frame, 16);
        l3 += VLAN_HLEN;
    }
    let ip = &frame[l3..];
    // (ip version, UDP header offset in `ip`, end of the IP packet in `ip`)
    let (version, udp_at, ip_end) = match ethertype {
        ETH_P_IP => {
            if ip.len() < 20 {
                return Err(Malformed::Truncated("IPv4"));
            }
            let ihl = usize::from(ip[0] & 0x0f) * 4;
            let total = usize::from(be16(ip, 2));
            if ip[0] >> 4 != 4 || ihl < 20 || total < ihl {
                return Err(Malformed::BadIpv4Header);
            }
            if ip.len() < ihl {
                return Err(Malformed::Truncated("IPv4 options"));
            }
            if ip[9] != IPPROTO_UDP {
                return Err(Malformed::NotUdp(ip[9]));
            }
            if be16(ip, 6) & 0x3fff != 0 {
                return Err(Malformed::Fragment);
            }
            (IpVersion::V4, ihl, total)
        }
        ETH_P_IPV6 => {
            if ip.len() < IPV6_HLEN {
                return Err(Malformed::Truncated("IPv6"));
            }
            if ip[0] >> 4 != 6 {
                return Err(Malformed::BadIpv6Header);
            }
            if ip[6] != IPPROTO_UDP {
                return Err(Malformed::NotUdp(ip[6]));
            }
            (IpVersion::V6, IPV6_HLEN, IPV6_HLEN + usize::from(be16(ip, 4)))
        }
        other => return Err(Malformed::NotIp(other)),
    };
    if ip.len() < udp_at + UDP_HLEN {
        return Err(Malformed::Truncated("UDP"));
    }
    let udp = &ip[udp_at..];
    let udp_len = usize::from(be16(udp, 4));
    // The UDP datagram must fit the IP packet, and the IP packet the frame.
    if udp_len < UDP_HLEN || udp_at + udp_len > ip_end || udp_len > udp.len() {
        return Err(Malformed::BadUdpLength);
    }
    Ok(Frame { vlan, ip: version, src_port: be16(udp, 0), dst_port: be16(udp, 2), payload: &udp[UDP_HLEN..udp_len] })
}

/// Parses `frame` down to its UDP payload and checks that the payload is RTP v2 (the ring's own
/// definition, [`rtpmgr::rtp::parse`], so XDP and socket paths agree on "valid RTP").
///
/// # Errors
/// As [`parse_udp`], or [`Malformed::NotRtp`].
pub fn parse_rtp(frame: &[u8]) -> Result<Frame<'_>, Malformed> {
    let f = parse_udp(frame)?;
    if rtpmgr::rtp::parse(f.payload).is_err() {
        return Err(Malformed::NotRtp);
    }
    Ok(f)
}

/// The Ethernet + IP + UDP headers of one outgoing flow, written in front of each RTP packet by
/// the AF_XDP transmit path. Built once; per packet only the lengths, the IPv4 identification
/// and the checksums change.
///
/// Checksums: the IPv4 header checksum, and the UDP checksum over the pseudo-header, header and
/// payload for both IPv4 (where it is optional, but a receiver that checks it must not drop us)
/// and IPv6 (where it is mandatory). No offload is assumed: AF_XDP frames bypass the stack's
/// checksum help.
#[derive(Debug, Clone)]
pub struct UdpFrameTemplate {
    header: Vec<u8>,
    ip: IpVersion,
    /// Ones'-complement sum of the pseudo-header's addresses and protocol.
    pseudo_sum: u32,
    ip_id: u16,
}

/// Offset of the IP header in the template (no VLAN tag on transmit).
const TX_L3: usize = ETH_HLEN;

impl UdpFrameTemplate {
    /// Headers from `src` to `dst` (same address family) between the two MAC addresses.
    ///
    /// # Errors
    /// A message when the address families differ.
    pub fn new(
        src_mac: [u8; 6],
        dst_mac: [u8; 6],
        src: std::net::SocketAddr,
        dst: std::net::SocketAddr,
    ) -> Result<Self, String> {
        use std::net::SocketAddr::{V4, V6};
        let mut h = Vec::with_capacity(ETH_HLEN + IPV6_HLEN + UDP_HLEN);
        h.extend_from_slice(&dst_mac);
        h.extend_from_slice(&src_mac);
        let (ip, pseudo_sum) = match (src, dst) {
            (V4(s), V4(d)) => {
                h.extend_from_slice(&ETH_P_IP.to_be_bytes());
                // version/IHL, TOS, total length, id, flags (DF), TTL, protocol, checksum
                h.extend_from_slice(&[0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, IPPROTO_UDP, 0, 0]);
                h.extend_from_slice(&s.ip().octets());
                h.extend_from_slice(&d.ip().octets());
                let sum = csum_add(csum_add(0, &s.ip().octets()), &d.ip().octets()) + u32::from(IPPROTO_UDP);
                (IpVersion::V4, sum)
            }
            (V6(s), V6(d)) => {
                h.extend_from_slice(&ETH_P_IPV6.to_be_bytes());
                // version/class/flow, payload length, next header, hop limit
                h.extend_from_slice(&[0x60, 0, 0, 0, 0, 0, IPPROTO_UDP, 64]);
                h.extend_from_slice(&s.ip().octets());
                h.extend_from_slice(&d.ip().octets());
                let sum = csum_add(csum_add(0, &s.ip().octets()), &d.ip().octets()) + u32::from(IPPROTO_UDP);
                (IpVersion::V6, sum)
            }
            _ => return Err(format!("source {src} and destination {dst} are of different address families")),
        };
        h.extend_from_slice(&src.port().to_be_bytes());
        h.extend_from_slice(&dst.port().to_be_bytes());
        h.extend_from_slice(&[0, 0, 0, 0]); // length, checksum
        Ok(UdpFrameTemplate { header: h, ip, pseudo_sum, ip_id: 0 })
    }

    /// Bytes of headers in front of the payload.
    pub fn header_len(&self) -> usize {
        self.header.len()
    }

    /// Writes the headers and `payload` into `frame`; returns the frame length, or None if it
    /// does not fit `frame` or a UDP datagram.
    pub fn write(&mut self, frame: &mut [u8], payload: &[u8]) -> Option<usize> {
        let hl = self.header.len();
        let total = hl.checked_add(payload.len())?;
        let udp_len = u16::try_from(UDP_HLEN + payload.len()).ok()?;
        if total > frame.len() {
            return None;
        }
        let (head, body) = frame.split_at_mut(hl);
        head.copy_from_slice(&self.header);
        body[..payload.len()].copy_from_slice(payload);
        let udp_at = hl - UDP_HLEN;
        match self.ip {
            IpVersion::V4 => {
                let ip_total = u16::try_from(20 + UDP_HLEN + payload.len()).ok()?;
                head[TX_L3 + 2..TX_L3 + 4].copy_from_slice(&ip_total.to_be_bytes());
                head[TX_L3 + 4..TX_L3 + 6].copy_from_slice(&self.ip_id.to_be_bytes());
                self.ip_id = self.ip_id.wrapping_add(1);
                let c = csum_fold(csum_add(0, &head[TX_L3..TX_L3 + 20]));
                head[TX_L3 + 10..TX_L3 + 12].copy_from_slice(&c.to_be_bytes());
            }
            IpVersion::V6 => head[TX_L3 + 4..TX_L3 + 6].copy_from_slice(&udp_len.to_be_bytes()),
        }
        head[udp_at + 4..udp_at + 6].copy_from_slice(&udp_len.to_be_bytes());
        let sum = self.pseudo_sum + u32::from(udp_len);
        let sum = csum_add(csum_add(sum, &head[udp_at..udp_at + UDP_HLEN]), payload);
        // A computed 0 is sent as 0xffff: 0 means "no checksum" (IPv4), forbidden (IPv6).
        let c = match csum_fold(sum) {
            0 => 0xffff,
            c => c,
        };
        head[udp_at + 6..udp_at + 8].copy_from_slice(&c.to_be_bytes());
        Some(total)
    }
}

/// Adds `data` as big-endian 16-bit words to a ones'-complement sum (an odd last byte is padded
/// with zero, so only the last chunk of a sum may be odd).
fn csum_add(sum: u32, data: &[u8]) -> u32 {
    let mut s = u64::from(sum);
    let mut chunks = data.chunks_exact(2);
    for w in &mut chunks {
        s += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = chunks.remainder() {
        s += u64::from(*last) << 8;
    }
    while s > 0xffff_ffff {
        s = (s & 0xffff_ffff) + (s >> 32);
    }
    s as u32
}

/// Folds a sum to 16 bits and complements it: the checksum field's value.
fn csum_fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// True if `frame` (Ethernet, no tag) carries an IPv4 header checksum and a UDP checksum that
/// verify, as a receiver computes them. For tests of [`UdpFrameTemplate`].
#[doc(hidden)]
pub fn checksums_verify(frame: &[u8]) -> bool {
    let Ok(f) = parse_udp(frame) else { return false };
    let ip = &frame[ETH_HLEN..];
    let udp_len = f.payload.len() + UDP_HLEN;
    let (addr_sum, udp_at, ip_ok) = match f.ip {
        IpVersion::V4 => (csum_add(0, &ip[12..20]), 20, csum_fold(csum_add(0, &ip[..20])) == 0),
        IpVersion::V6 => (csum_add(0, &ip[8..40]), IPV6_HLEN, true),
    };
    let sum = addr_sum + u32::from(IPPROTO_UDP) + udp_len as u32;
    ip_ok && csum_fold(csum_add(sum, &ip[udp_at..udp_at + udp_len])) == 0
}

/// Builders of test frames, shared by the unit tests and the integration tests.
#[doc(hidden)]
pub mod build {
    /// An RTP v2 packet: header (PT 96, the given sequence number, SSRC 0x11223344) + `payload`.
    pub fn rtp(seq: u16, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x80, 96];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&1000u32.to_be_bytes());
        p.extend_from_slice(&0x1122_3344u32.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    fn udp(dport: u16, data: &[u8]) -> Vec<u8> {
        let mut u = Vec::with_capacity(8 + data.len());
        u.extend_from_slice(&40000u16.to_be_bytes());
        u.extend_from_slice(&dport.to_be_bytes());
        u.extend_from_slice(&((8 + data.len()) as u16).to_be_bytes());
        u.extend_from_slice(&[0, 0]); // checksum 0: none (IPv4); not checked by the parser
        u.extend_from_slice(data);
        u
    }

    fn eth(vlan: Option<u16>, ethertype: u16) -> Vec<u8> {
        let mut e = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
        if let Some(id) = vlan {
            e.extend_from_slice(&0x8100u16.to_be_bytes());
            e.extend_from_slice(&id.to_be_bytes());
        }
        e.extend_from_slice(&ethertype.to_be_bytes());
        e
    }

    /// Ethernet [+ VLAN] + IPv4 + UDP to `dport` carrying `data`.
    pub fn ipv4_udp(vlan: Option<u16>, dport: u16, data: &[u8]) -> Vec<u8> {
        let u = udp(dport, data);
        let mut f = eth(vlan, 0x0800);
        let total = (20 + u.len()) as u16;
        f.extend_from_slice(&[0x45, 0]);
        f.extend_from_slice(&total.to_be_bytes());
        f.extend_from_slice(&[0, 1, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
        f.extend_from_slice(&u);
        f
    }

    /// Ethernet [+ VLAN] + IPv6 + UDP to `dport` carrying `data`.
    pub fn ipv6_udp(vlan: Option<u16>, dport: u16, data: &[u8]) -> Vec<u8> {
        let u = udp(dport, data);
        let mut f = eth(vlan, 0x86dd);
        f.extend_from_slice(&[0x60, 0, 0, 0]);
        f.extend_from_slice(&(u.len() as u16).to_be_bytes());
        f.extend_from_slice(&[17, 64]);
        f.extend_from_slice(&[0xfd; 16]);
        f.extend_from_slice(&[0xfe; 16]);
        f.extend_from_slice(&u);
        f
    }
}

#[cfg(test)]
mod tests {
    use super::build::*;
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn template_frames_parse_back_with_valid_checksums() {
        let (a, b) = ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
        for (src, dst) in [("10.0.0.2:5004", "10.0.0.1:5004"), ("[fd00::2]:40000", "[fd00::1]:5006")] {
            let (src, dst) = (src.parse().unwrap(), dst.parse().unwrap());
            let mut t = UdpFrameTemplate::new(a, b, src, dst).unwrap();
            for (i, len) in [0usize, 1, 159, 160, 1200].into_iter().enumerate() {
                let pkt = rtp(i as u16, &vec![0xa5; len]);
                let mut buf = vec![0u8; 2048];
                let n = t.write(&mut buf, &pkt).unwrap();
                assert_eq!(n, t.header_len() + pkt.len());
                let f = parse_rtp(&buf[..n]).unwrap();
                assert_eq!((f.payload, f.src_port, f.dst_port), (&pkt[..], src.port(), dst.port()));
                assert_eq!(&buf[..6], &b, "destination MAC first");
                assert!(checksums_verify(&buf[..n]), "{src} -> {dst}, {len} bytes");
                // A flipped payload bit must break the UDP checksum (it covers the payload).
                buf[n - 1] ^= 1;
                assert!(!checksums_verify(&buf[..n]));
            }
        }
        let v4: std::net::SocketAddr = "10.0.0.1:1".parse().unwrap();
        let v6: std::net::SocketAddr = "[::1]:1".parse().unwrap();
        assert!(UdpFrameTemplate::new(a, b, v4, v6).is_err());
        let mut t = UdpFrameTemplate::new(a, b, v4, v4).unwrap();
        assert_eq!(t.write(&mut [0u8; 50], &[0u8; 20]), None, "does not fit the frame");
    }

    #[test]
    fn checksum_of_known_ipv4_header() {
        // RFC 1071 style example: the classic header from Wikipedia's IPv4 checksum article.
        let h = [0x45, 0, 0, 0x73, 0, 0, 0x40, 0, 0x40, 0x11, 0, 0, 0xc0, 0xa8, 0, 1, 0xc0, 0xa8, 0, 0xc7];
        assert_eq!(csum_fold(csum_add(0, &h)), 0xb861);
    }

    #[test]
    fn ipv4_rtp_payload_is_the_udp_payload() {
        let pkt = rtp(7, b"hello");
        let f = ipv4_udp(None, 5004, &pkt);
        let p = parse_rtp(&f).unwrap();
        assert_eq!((p.ip, p.vlan, p.dst_port, p.src_port), (IpVersion::V4, None, 5004, 40000));
        assert_eq!(p.payload, &pkt[..]);
    }

    #[test]
    fn ethernet_padding_is_not_payload() {
        // A 12-byte RTP packet in IPv4 makes a 54-byte frame; the wire pads it to 60.
        let pkt = rtp(1, b"");
        let mut f = ipv4_udp(None, 5004, &pkt);
        f.resize(60, 0);
        assert_eq!(parse_rtp(&f).unwrap().payload, &pkt[..]);
    }

    #[test]
    fn vlan_tagged_and_ipv6_frames_parse() {
        let pkt = rtp(9, &[0xab; 100]);
        let f = ipv4_udp(Some(42), 5004, &pkt);
        let p = parse_rtp(&f).unwrap();
        assert_eq!((p.vlan, p.payload.len()), (Some(42), pkt.len()));
        let f = ipv6_udp(Some(7), 5006, &pkt);
        let p = parse_rtp(&f).unwrap();
        assert_eq!((p.ip, p.vlan, p.dst_port), (IpVersion::V6, Some(7), 5006));
        assert_eq!(p.payload, &pkt[..]);
        let mut qinq = ipv6_udp(Some(7), 5006, &pkt);
        qinq[12..14].copy_from_slice(&0x88a8u16.to_be_bytes()); // 802.1ad outer tag
        assert_eq!(parse_rtp(&qinq).unwrap().vlan, Some(7));
    }

    #[test]
    fn malformed_frames_have_a_reason() {
        let pkt = rtp(1, b"x");
        let good = ipv4_udp(None, 5004, &pkt);
        assert_eq!(parse_rtp(&good[..10]), Err(Malformed::Truncated("Ethernet")));
        assert_eq!(parse_rtp(&good[..30]), Err(Malformed::Truncated("IPv4")));
        assert_eq!(parse_rtp(&good[..40]), Err(Malformed::Truncated("UDP")));
        assert_eq!(parse_rtp(&good[..45]), Err(Malformed::BadUdpLength));
        let mut f = good.clone();
        f[14] = 0x44; // IHL 4
        assert_eq!(parse_rtp(&f), Err(Malformed::BadIpv4Header));
        let mut f = good.clone();
        f[23] = 6; // TCP
        assert_eq!(parse_rtp(&f), Err(Malformed::NotUdp(6)));
        let mut f = good.clone();
        f[20] = 0x20; // MF
        assert_eq!(parse_rtp(&f), Err(Malformed::Fragment));
        let mut f = good.clone();
        f[38..40].copy_from_slice(&4u16.to_be_bytes()); // UDP length 4
        assert_eq!(parse_rtp(&f), Err(Malformed::BadUdpLength));
        let mut f = good.clone();
        f[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        assert_eq!(parse_rtp(&f), Err(Malformed::NotIp(0x0806)));
        assert_eq!(parse_rtp(&ipv4_udp(None, 5004, b"not rtp")), Err(Malformed::NotRtp));
        let mut v1 = pkt.clone();
        v1[0] = 0x40; // RTP version 1
        assert_eq!(parse_rtp(&ipv6_udp(None, 5004, &v1)), Err(Malformed::NotRtp));
        let mut f = ipv6_udp(None, 5004, &pkt);
        f[20] = 0; // next header hop-by-hop
        assert_eq!(parse_rtp(&f), Err(Malformed::NotUdp(0)));
        let mut f = ipv6_udp(None, 5004, &pkt);
        f[18..20].copy_from_slice(&4u16.to_be_bytes()); // payload length shorter than UDP
        assert_eq!(parse_rtp(&f), Err(Malformed::BadUdpLength));
    }

    proptest! {
        #[test]
        fn never_panics_on_random_bytes(b in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_rtp(&b);
        }

        #[test]
        fn never_panics_on_mutated_frames(
            v6 in any::<bool>(), vlan in proptest::option::of(0u16..4096),
            payload in proptest::collection::vec(any::<u8>(), 0..64),
            at in 0usize..120, byte in any::<u8>(), cut in 0usize..140,
        ) {
            let pkt = rtp(1, &payload);
            let mut f = if v6 { ipv6_udp(vlan, 5004, &pkt) } else { ipv4_udp(vlan, 5004, &pkt) };
            prop_assert_eq!(parse_rtp(&f).unwrap().payload, &pkt[..]);
            if at < f.len() { f[at] = byte; }
            f.truncate(cut.max(1));
            if let Ok(p) = parse_rtp(&f) {
                // Whatever is accepted lies inside the frame and is RTP v2.
                prop_assert!(p.payload.len() <= f.len());
                prop_assert!(p.payload.len() >= 12 && p.payload[0] >> 6 == 2);
            }
        }
    }
}

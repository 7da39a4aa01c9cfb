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
    Ok(Frame {
        vlan,
        ip: version,
        src_port: be16(udp, 0),
        dst_port: be16(udp, 2),
        payload: &udp[UDP_HLEN..udp_len],
    })
}

/// Parses `frame` down to its UDP payload and checks that the payload is RTP v2 (the ring's own
/// definition, [`rtpmgr::rtp::parse`], so XDP and socket paths agree on "valid RTP").
///
/// # Errors
/// As [`parse_udp`], or [`Malformed::NotRtp`].
pub fn parse_rtp(frame: &[u8]) -> Result<Frame<'_>, Malformed> {
    let f = parse_udp(frame)?;
    if rtpmgr::rtp::parse(f.payload).is_none() {
        return Err(Malformed::NotRtp);
    }
    Ok(f)
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

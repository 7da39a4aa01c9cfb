//! Traffic from outside the guest, through its NIC, as on a real box.
//!
//! ```text
//! host: rtpmgr-bench peer ==UDP (QEMU -netdev dgram: one Ethernet frame per datagram)==>
//!       QEMU virtio-net ==> guest eth0 (10.77.0.2) ==> IP/UDP stack ==> the path under test
//! ```
//!
//! The host side (`rtpmgr-bench peer`, started by test/qemu/boot.sh) is the far end of the guest's
//! Ethernet link: it answers ARP for 10.77.0.1, builds Ethernet/IPv4/UDP/RTP frames itself (so the
//! guest sees the host sender's real source address, which source-specific multicast needs), and
//! paces them. The guest drives it over the same link with small JSON requests to 10.77.0.1:7000
//! (`Peer`): send N streams at a rate, report what it sent, tell its clock (for latency), count what
//! the guest transmitted. Every RTP packet carries the host's CLOCK_MONOTONIC send time in payload
//! bytes 12..20; the guest maps it to its own clock with the offset from `Peer::clock_offset`.
//!
//! The receive work (virtio-net interrupt, softirq, IP/UDP, socket or encap_rcv) is charged to the
//! guest, and `GuestCpu` reads it guest-wide from /proc/stat.

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The host peer's address on the guest link.
pub const PEER_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
/// The guest's address (test/device/run-bench and demo-stream configure it on eth0).
pub const GUEST_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
/// The peer's control port.
pub const CONTROL_PORT: u16 = 7000;
const PEER_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x77, 0x00, 0x01];
/// The guest NIC's MAC (boot.sh sets it on the QEMU device); learnt from the guest's frames too.
const GUEST_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x77, 0x00, 0x02];

/// CLOCK_MONOTONIC in ns (this machine's).
fn mono_ns() -> u64 {
    rtpmgr::monotonic_ns()
}

fn csum_add(mut sum: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [b] = chunks.remainder() {
        sum += u32::from(*b) << 8;
    }
    sum
}

fn csum_fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// MAC of an IPv4 destination: the guest's for unicast, 01:00:5e + 23 bits for a group.
fn dst_mac(dst: Ipv4Addr, guest_mac: [u8; 6]) -> [u8; 6] {
    if dst.is_multicast() {
        let o = dst.octets();
        [0x01, 0x00, 0x5e, o[1] & 0x7f, o[2], o[3]]
    } else {
        guest_mac
    }
}

/// One Ethernet/IPv4/UDP frame from the peer, checksums filled in.
fn udp_frame(dst: Ipv4Addr, dst_mac: [u8; 6], sport: u16, dport: u16, ip_id: u16, payload: &[u8]) -> Vec<u8> {
    let udp_len = 8 + payload.len();
    let ip_len = 20 + udp_len;
    let mut f = Vec::with_capacity(14 + ip_len);
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&PEER_MAC);
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    let ip_start = f.len();
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&(ip_len as u16).to_be_bytes());
    f.extend_from_slice(&ip_id.to_be_bytes());
    f.extend_from_slice(&[0x40, 0]); // DF
    f.push(if dst.is_multicast() { 8 } else { 64 });
    f.push(17);
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(&PEER_IP.octets());
    f.extend_from_slice(&dst.octets());
    let ip_sum = csum_fold(csum_add(0, &f[ip_start..ip_start + 20]));
    f[ip_start + 10..ip_start + 12].copy_from_slice(&ip_sum.to_be_bytes());
    let udp_start = f.len();
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&(udp_len as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    // Pseudo header: source, destination, protocol, UDP length.
    let mut sum = csum_add(0, &PEER_IP.octets());
    sum = csum_add(sum, &dst.octets());
    sum += 17 + udp_len as u32;
    sum = csum_add(sum, &f[udp_start..]);
    let mut udp_sum = csum_fold(sum);
    if udp_sum == 0 {
        udp_sum = 0xffff;
    }
    f[udp_start + 6..udp_start + 8].copy_from_slice(&udp_sum.to_be_bytes());
    f
}

/// What the guest asked the peer to send.
#[derive(Debug, Clone)]
struct SendJob {
    dst: Ipv4Addr,
    port: u16,
    streams: u32,
    rate: u64,
    secs: f64,
    payload: usize,
    seq0: u16,
}

/// State shared by the peer's receive loop and its sender threads.
#[derive(Default)]
struct PeerState {
    /// Send jobs by id: None while running, Some(sent) when done.
    jobs: Mutex<HashMap<u64, Option<u64>>>,
    /// UDP datagrams the guest sent to the peer (not to the control port), by destination port.
    rx: Mutex<HashMap<u16, u64>>,
    guest_mac: Mutex<Option<[u8; 6]>>,
    ip_id: AtomicU64,
}

/// The host side: runs until killed. `listen`: this end of QEMU's `-netdev dgram` (QEMU's
/// `remote`); `qemu`: QEMU's end (its `local`).
pub fn run_peer(listen: SocketAddr, qemu: SocketAddr) -> Result<()> {
    let sock = Arc::new(UdpSocket::bind(listen).with_context(|| format!("bind {listen}"))?);
    // Bursts at overload rates: a large send buffer, so the host kernel does not drop frames
    // before QEMU reads them (QEMU's own queue towards the guest is what may overflow).
    let _ = set_sockopt_int(&sock, libc::SO_SNDBUF, 8 << 20);
    let _ = set_sockopt_int(&sock, libc::SO_RCVBUF, 8 << 20);
    eprintln!("rtpmgr-bench peer: {PEER_IP} (mac 52:54:00:77:00:01) on {listen}, QEMU at {qemu}");
    let st = Arc::new(PeerState::default());
    let mut buf = vec![0u8; 65536];
    loop {
        let (n, from) = sock.recv_from(&mut buf).context("receive from QEMU")?;
        if from != qemu {
            continue;
        }
        let frame = &buf[..n];
        if frame.len() < 14 {
            continue;
        }
        let src_mac: [u8; 6] = frame[6..12].try_into().expect("6 bytes");
        match u16::from_be_bytes([frame[12], frame[13]]) {
            0x0806 => arp_reply(&sock, qemu, frame, &st),
            0x0800 => {
                let ip = &frame[14..];
                if ip.len() < 28 || ip[0] >> 4 != 4 || ip[9] != 17 || ip[16..20] != PEER_IP.octets() {
                    continue;
                }
                *st.guest_mac.lock().expect("mac") = Some(src_mac);
                let ihl = usize::from(ip[0] & 0xf) * 4;
                let Some(udp) = ip.get(ihl..) else { continue };
                if udp.len() < 8 {
                    continue;
                }
                let guest = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
                let sport = u16::from_be_bytes([udp[0], udp[1]]);
                let dport = u16::from_be_bytes([udp[2], udp[3]]);
                if dport == CONTROL_PORT {
                    let reply = control(&udp[8..], &sock, qemu, &st);
                    let mac = st.guest_mac.lock().expect("mac").unwrap_or(GUEST_MAC);
                    let id = st.ip_id.fetch_add(1, Relaxed) as u16;
                    let f = udp_frame(guest, mac, CONTROL_PORT, sport, id, reply.to_string().as_bytes());
                    let _ = sock.send_to(&f, qemu);
                } else {
                    *st.rx.lock().expect("rx counts").entry(dport).or_default() += 1;
                }
            }
            _ => {}
        }
    }
}

fn set_sockopt_int(sock: &UdpSocket, opt: libc::c_int, v: libc::c_int) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid socket and a pointer to an int of the size given.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            opt,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn arp_reply(sock: &UdpSocket, qemu: SocketAddr, frame: &[u8], st: &PeerState) {
    let a = &frame[14..];
    // Ethernet/IPv4 ARP request for the peer's address.
    if a.len() < 28 || a[0..8] != [0, 1, 8, 0, 6, 4, 0, 1] || a[24..28] != PEER_IP.octets() {
        return;
    }
    let (sha, spa) = (&a[8..14], &a[14..18]);
    *st.guest_mac.lock().expect("mac") = Some(sha.try_into().expect("6 bytes"));
    let mut r = Vec::with_capacity(42);
    r.extend_from_slice(sha);
    r.extend_from_slice(&PEER_MAC);
    r.extend_from_slice(&0x0806u16.to_be_bytes());
    r.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 2]);
    r.extend_from_slice(&PEER_MAC);
    r.extend_from_slice(&PEER_IP.octets());
    r.extend_from_slice(sha);
    r.extend_from_slice(spa);
    let _ = sock.send_to(&r, qemu);
}

/// One control request from the guest; returns the reply (always with the request's "nonce").
fn control(req: &[u8], sock: &Arc<UdpSocket>, qemu: SocketAddr, st: &Arc<PeerState>) -> Value {
    let req: Value = match serde_json::from_slice(req) {
        Ok(v) => v,
        Err(e) => return json!({"error": format!("bad request: {e}")}),
    };
    let nonce = req["nonce"].clone();
    let r = match req["op"].as_str().unwrap_or("") {
        "time" => json!({"mono_ns": mono_ns()}),
        "send" => match parse_job(&req) {
            Ok(job) => {
                let id = req["id"].as_u64().unwrap_or(0);
                let mut jobs = st.jobs.lock().expect("jobs");
                // A retried request (its ack was lost) must not start a second sender.
                if let std::collections::hash_map::Entry::Vacant(e) = jobs.entry(id) {
                    e.insert(None);
                    let (sock, st2) = (Arc::clone(sock), Arc::clone(st));
                    std::thread::spawn(move || {
                        let sent = send_job(&sock, qemu, &job, &st2);
                        st2.jobs.lock().expect("jobs").insert(id, Some(sent));
                    });
                }
                json!({"ok": true})
            }
            Err(e) => json!({"error": format!("{e:#}")}),
        },
        "result" => {
            let id = req["id"].as_u64().unwrap_or(0);
            match st.jobs.lock().expect("jobs").get(&id) {
                None => json!({"error": format!("no send job {id}")}),
                Some(None) => json!({"done": false}),
                Some(Some(n)) => json!({"done": true, "sent": n}),
            }
        }
        "rx" => {
            let mut rx = st.rx.lock().expect("rx counts");
            let total: u64 = rx.values().sum();
            if req["reset"].as_bool().unwrap_or(false) {
                rx.clear();
            }
            json!({"received": total})
        }
        other => json!({"error": format!("unknown op '{other}'")}),
    };
    let mut r = r;
    r["nonce"] = nonce;
    r
}

fn parse_job(req: &Value) -> Result<SendJob> {
    let num = |k: &str| req[k].as_u64().ok_or_else(|| anyhow!("'{k}' missing or not a number"));
    let dst: Ipv4Addr = req["dst"].as_str().ok_or_else(|| anyhow!("'dst' missing"))?.parse().context("dst")?;
    let job = SendJob {
        dst,
        port: u16::try_from(num("port")?).context("port")?,
        streams: u32::try_from(num("streams")?).context("streams")?,
        rate: num("rate")?,
        secs: req["secs"].as_f64().ok_or_else(|| anyhow!("'secs' missing"))?,
        payload: usize::try_from(num("payload")?).context("payload")?,
        seq0: (num("seq0")? & 0xffff) as u16,
    };
    if job.payload < 20 || job.payload > 1400 {
        bail!("payload {} B: 20..=1400 (RTP header + send time, one frame)", job.payload);
    }
    if job.streams == 0 || job.streams > 64 || job.rate == 0 || !(job.secs > 0.0 && job.secs <= 600.0) {
        bail!("streams 1..=64, rate > 0 and secs 0..600 expected");
    }
    if u32::from(job.port) + job.streams > 65536 {
        bail!("ports {}..{} run past 65535", job.port, u32::from(job.port) + job.streams);
    }
    Ok(job)
}

/// Sends `streams` RTP streams (stream k to port + k, SSRC 0x42454e43 + k) at `rate` packets/s
/// each for `secs`, round robin; returns the frames sent.
fn send_job(sock: &UdpSocket, qemu: SocketAddr, job: &SendJob, st: &PeerState) -> u64 {
    let mac = dst_mac(job.dst, st.guest_mac.lock().expect("mac").unwrap_or(GUEST_MAC));
    let mut rtp = vec![0u8; job.payload];
    rtp[0] = 0x80;
    rtp[1] = 96;
    let per_stream = (job.rate as f64 * job.secs) as u64;
    let total = per_stream * u64::from(job.streams);
    let all_rate = job.rate as f64 * f64::from(job.streams);
    let start = Instant::now();
    let mut sent = 0u64;
    while sent < total {
        let due = ((start.elapsed().as_secs_f64() * all_rate) as u64).min(total);
        while sent < due {
            let stream = (sent % u64::from(job.streams)) as u32;
            let n = sent / u64::from(job.streams);
            let now = mono_ns();
            rtp[2..4].copy_from_slice(&job.seq0.wrapping_add(n as u16).to_be_bytes());
            rtp[4..8].copy_from_slice(&((u128::from(now) * 48_000 / 1_000_000_000) as u32).to_be_bytes());
            rtp[8..12].copy_from_slice(&(0x4245_4e43u32.wrapping_add(stream)).to_be_bytes());
            rtp[12..20].copy_from_slice(&now.to_le_bytes());
            let id = st.ip_id.fetch_add(1, Relaxed) as u16;
            // The port range was checked when the job was accepted: no wrap here.
            let f = udp_frame(job.dst, mac, 5000, job.port.wrapping_add(stream as u16), id, &rtp);
            if sock.send_to(&f, qemu).is_err() {
                // ENOBUFS and friends: the frame is lost, as on a congested link; count it sent.
            }
            sent += 1;
        }
        std::thread::sleep(Duration::from_micros(250));
    }
    sent
}

/// What the peer sends: `count` streams of `payload`-byte RTP packets to `dst`, stream k to
/// `port` + k.
#[derive(Debug, Clone, Copy)]
pub struct Streams {
    pub dst: Ipv4Addr,
    pub port: u16,
    pub count: u32,
    pub payload: usize,
}

impl Streams {
    /// One stream to this guest.
    pub fn one(port: u16, payload: usize) -> Streams {
        Streams { dst: GUEST_IP, port, count: 1, payload }
    }
}

/// The guest's handle on the host peer.
pub struct Peer {
    sock: UdpSocket,
    next: AtomicU64,
}

impl Peer {
    pub fn new() -> Result<Peer> {
        let sock = UdpSocket::bind((GUEST_IP, 0)).with_context(|| {
            format!("bind {GUEST_IP}: the guest NIC is not configured (test/device/run-bench sets up eth0)")
        })?;
        sock.connect((PEER_IP, CONTROL_PORT))?;
        sock.set_read_timeout(Some(Duration::from_millis(300)))?;
        let seed = mono_ns() & 0xffff_ffff;
        Ok(Peer { sock, next: AtomicU64::new(seed << 16) })
    }

    /// One request, retried until a reply with its nonce arrives (the link may drop control
    /// frames while the guest is overloaded).
    fn call(&self, mut req: Value, tries: u32) -> Result<Value> {
        let nonce = self.next.fetch_add(1, Relaxed);
        req["nonce"] = json!(nonce);
        let text = req.to_string();
        let mut buf = [0u8; 2048];
        for _ in 0..tries {
            self.sock.send(text.as_bytes()).context("send a request to the host peer")?;
            let deadline = Instant::now() + Duration::from_millis(300);
            while Instant::now() < deadline {
                let Ok(n) = self.sock.recv(&mut buf) else { break };
                let Ok(v) = serde_json::from_slice::<Value>(&buf[..n]) else { continue };
                if v["nonce"].as_u64() == Some(nonce) {
                    if let Some(e) = v["error"].as_str() {
                        bail!("host peer: {e}");
                    }
                    return Ok(v);
                }
            }
        }
        bail!("no answer from the host peer {PEER_IP}:{CONTROL_PORT} to {req} (is `rtpmgr-bench peer` running on the host and eth0 up?)")
    }

    /// Host clock minus guest clock, ns, from the request with the shortest round trip.
    pub fn clock_offset(&self) -> Result<(i64, u64)> {
        let mut best: Option<(u64, i64)> = None;
        for _ in 0..8 {
            let t0 = mono_ns();
            let v = self.call(json!({"op": "time"}), 5)?;
            let t1 = mono_ns();
            let host = v["mono_ns"].as_u64().ok_or_else(|| anyhow!("host peer: no mono_ns in {v}"))?;
            let rtt = t1 - t0;
            let off = host as i64 - ((t0 / 2 + t1 / 2) as i64);
            if best.is_none_or(|b| rtt < b.0) {
                best = Some((rtt, off));
            }
        }
        let (rtt, off) = best.expect("8 samples");
        Ok((off, rtt))
    }

    /// Asks the peer to send and returns once the request is accepted; `result` waits for it.
    pub fn start(&self, s: &Streams, rate: u64, secs: f64, seq0: u64) -> Result<u64> {
        let id = self.next.fetch_add(1, Relaxed);
        self.call(
            json!({"op": "send", "id": id, "dst": s.dst.to_string(), "port": s.port, "streams": s.count,
                   "rate": rate, "secs": secs, "payload": s.payload, "seq0": seq0 & 0xffff}),
            20,
        )?;
        Ok(id)
    }

    /// Waits for send job `id` to finish; returns the packets it sent.
    pub fn result(&self, id: u64, secs: f64) -> Result<u64> {
        let deadline = Instant::now() + Duration::from_secs_f64(secs + 60.0);
        loop {
            let v = self.call(json!({"op": "result", "id": id}), 20)?;
            if v["done"].as_bool() == Some(true) {
                return v["sent"].as_u64().ok_or_else(|| anyhow!("host peer: no count in {v}"));
            }
            if Instant::now() > deadline {
                bail!("host peer send job {id} did not finish");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Sends and waits: the packets sent.
    pub fn send(&self, s: &Streams, rate: u64, secs: f64, seq0: u64) -> Result<u64> {
        let id = self.start(s, rate, secs, seq0)?;
        std::thread::sleep(Duration::from_secs_f64(secs));
        self.result(id, secs)
    }

    /// UDP datagrams the guest sent to the peer since the last reset.
    pub fn received(&self, reset: bool) -> Result<u64> {
        let v = self.call(json!({"op": "rx", "reset": reset}), 20)?;
        v["received"].as_u64().ok_or_else(|| anyhow!("host peer: no count in {v}"))
    }
}

/// Guest-wide busy CPU time of all CPUs so far, µs: CLOCK_MONOTONIC × CPUs − (idle + iowait)
/// from /proc/stat; use differences.
///
/// Not the sum of the user, system, irq and softirq fields: this kernel (Debian arm64) has no
/// CONFIG_IRQ_TIME_ACCOUNTING, so those are sampled at the 250 Hz tick, which misses most of the
/// short NIC interrupt and softirq work (an XDP_DROP floor read ~0 that way). The idle field is
/// precise under NO_HZ (the kernel stamps every idle entry and exit, and an interrupt ends the
/// idle period), so "not idle" charges interrupt and softirq work as well as tasks.
pub fn guest_busy_us() -> Result<u64> {
    let now_us = mono_ns() / 1000;
    let stat = std::fs::read_to_string("/proc/stat").context("read /proc/stat")?;
    let line = stat.lines().find(|l| l.starts_with("cpu ")).ok_or_else(|| anyhow!("no cpu line in /proc/stat"))?;
    let cpus = stat.lines().filter(|l| l.starts_with("cpu") && !l.starts_with("cpu ")).count().max(1) as u64;
    let f: Vec<u64> = line.split_whitespace().skip(1).map(|v| v.parse().unwrap_or(0)).collect();
    // user nice system idle iowait irq softirq steal ...
    let idle = f.get(3).copied().unwrap_or(0) + f.get(4).copied().unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Ok((now_us * cpus).saturating_sub(idle * 1_000_000 / hz))
}

/// Frames the guest NIC received (its driver's counter, XDP drops included).
pub fn nic_rx_packets(iface: &str) -> Result<u64> {
    let p = format!("/sys/class/net/{iface}/statistics/rx_packets");
    std::fs::read_to_string(&p)
        .with_context(|| format!("read {p}"))?
        .trim()
        .parse()
        .with_context(|| format!("parse {p}"))
}

/// An XDP program that drops every frame, attached to an interface until dropped (a BPF link:
/// closing its fd detaches it). Raw bpf(2): two instructions need no loader library.
pub struct XdpDrop {
    /// Closing it (drop) detaches the program.
    _link: std::os::fd::OwnedFd,
    _prog: std::os::fd::OwnedFd,
    pub mode: &'static str,
}

impl XdpDrop {
    pub fn attach(iface: &str) -> Result<XdpDrop> {
        use std::os::fd::FromRawFd;
        let ifindex = rtpmgr_ifindex(iface)?;
        // r0 = XDP_DROP (1); exit.
        let insns: [u64; 2] =
            [u64::from_le_bytes([0xb7, 0, 0, 0, 1, 0, 0, 0]), u64::from_le_bytes([0x95, 0, 0, 0, 0, 0, 0, 0])];
        let license = b"GPL\0";
        // union bpf_attr for BPF_PROG_LOAD: prog_type, insn_cnt, insns, license, log_level,
        // log_size, log_buf, kern_version, prog_flags, prog_name[16], ... (zeroed).
        let mut attr = [0u8; 128];
        attr[0..4].copy_from_slice(&6u32.to_ne_bytes()); // BPF_PROG_TYPE_XDP
        attr[4..8].copy_from_slice(&2u32.to_ne_bytes());
        attr[8..16].copy_from_slice(&(insns.as_ptr() as u64).to_ne_bytes());
        attr[16..24].copy_from_slice(&(license.as_ptr() as u64).to_ne_bytes());
        // SAFETY: bpf(BPF_PROG_LOAD) with a bpf_attr of the size given; the pointers live across the call.
        let prog = unsafe { libc::syscall(libc::SYS_bpf, 5, attr.as_ptr(), attr.len()) };
        if prog < 0 {
            bail!("load the XDP_DROP program: {}", std::io::Error::last_os_error());
        }
        // SAFETY: a new fd that we own.
        let prog = unsafe { std::os::fd::OwnedFd::from_raw_fd(prog as i32) };
        use std::os::fd::AsRawFd;
        let mut last = None;
        // Native (driver) mode first, then generic (skb) mode.
        for (flags, mode) in [(4u32, "native"), (2u32, "generic (skb)")] {
            let mut a = [0u8; 64];
            a[0..4].copy_from_slice(&(prog.as_raw_fd() as u32).to_ne_bytes());
            a[4..8].copy_from_slice(&ifindex.to_ne_bytes());
            a[8..12].copy_from_slice(&37u32.to_ne_bytes()); // BPF_XDP
            a[12..16].copy_from_slice(&flags.to_ne_bytes());
            // SAFETY: bpf(BPF_LINK_CREATE) with a bpf_attr of the size given.
            let link = unsafe { libc::syscall(libc::SYS_bpf, 28, a.as_ptr(), a.len()) };
            if link >= 0 {
                // SAFETY: a new fd that we own.
                let link = unsafe { std::os::fd::OwnedFd::from_raw_fd(link as i32) };
                return Ok(XdpDrop { _link: link, _prog: prog, mode });
            }
            last = Some(std::io::Error::last_os_error());
        }
        bail!("attach XDP_DROP to {iface}: {}", last.expect("tried"))
    }
}

fn rtpmgr_ifindex(iface: &str) -> Result<u32> {
    let name = std::ffi::CString::new(iface).context("interface name")?;
    // SAFETY: a NUL-terminated string.
    let i = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if i == 0 {
        bail!("no interface {iface}: {}", std::io::Error::last_os_error());
    }
    Ok(i)
}

/// A UDP socket bound to `port` that nobody reads, with the smallest receive buffer: the floor
/// of the socket path (the datagram goes through IP and UDP and is dropped at the full queue).
pub fn unread_socket(port: u16) -> Result<UdpSocket> {
    let s = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port)).with_context(|| format!("bind port {port}"))?;
    set_sockopt_int(&s, libc::SO_RCVBUF, 0).context("SO_RCVBUF")?;
    Ok(s)
}

/// Reads one counter of /sys/class/misc/rtp_mgrN/stats.
pub fn ring_stat(channel: u32, name: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/sys/class/misc/rtp_mgr{channel}/stats")).ok()?;
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == name).then(|| v.trim().parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udp_frame_checksums_verify() {
        let f = udp_frame(GUEST_IP, GUEST_MAC, 5000, 5006, 7, &[0x80, 96, 0, 1, 0, 0, 0, 0, 1, 2, 3, 4, 9]);
        let ip = &f[14..34];
        assert_eq!(csum_fold(csum_add(0, ip)), 0, "IPv4 header checksum");
        let udp = &f[34..];
        let mut sum = csum_add(0, &PEER_IP.octets());
        sum = csum_add(sum, &GUEST_IP.octets());
        sum += 17 + udp.len() as u32;
        assert_eq!(csum_fold(csum_add(sum, udp)), 0, "UDP checksum");
        assert_eq!(u16::from_be_bytes([udp[2], udp[3]]), 5006);
    }

    #[test]
    fn group_mac_maps_23_bits() {
        assert_eq!(dst_mac(Ipv4Addr::new(232, 129, 2, 3), GUEST_MAC), [1, 0, 0x5e, 1, 2, 3]);
        assert_eq!(dst_mac(GUEST_IP, GUEST_MAC), GUEST_MAC);
    }
}

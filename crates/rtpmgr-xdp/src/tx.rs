//! The AF_XDP transmit path: RTP packets → Ethernet/IP/UDP frames in UMEM → TX ring → NIC,
//! without the socket stack.
//!
//! ```text
//! packets --write headers + copy--> free UMEM frame --TX ring--> kernel/NIC
//!                                        ^                            |
//!                                        +---- completion ring <------+  (frame sent: reusable)
//! ```
//!
//! # Outstanding frames (seed 003's bug 1)
//! The seed counted frames in flight in a bare `outstanding_tx` and, because completions could be
//! seen before the counter was raised, clamped the decrement
//! (`outstanding -= min(completed, outstanding)`), which hid the bug and made the count wrong.
//! Here [`TxAccounting`] tracks every frame by index: a frame is marked in flight *before* its
//! descriptor is published on the TX ring, so the kernel can never complete a frame the
//! accounting does not know about; a completion for a frame that is not in flight (a kernel or
//! memory bug) is counted as `bogus` and changes nothing, rather than being absorbed into the
//! count; the outstanding count is the number of frames marked, so it cannot underflow. At exit
//! [`XdpSender::finish`] waits (bounded) for the outstanding frames and reports any left.
//!
//! No XDP program is involved in sending: the socket binds to the queue and writes to it.

use crate::session::{xsk_err, UmemParts};
use crate::{iface, CopyMode, Error, Result};
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::time::{Duration, Instant};
use xdpilone::{DeviceQueue, RingTx, Socket, SocketConfig, User};

/// Settings of an AF_XDP sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxConfig {
    /// Interface to send on.
    pub iface: String,
    /// Queue of the interface.
    pub queue: u32,
    /// Copy or zero-copy.
    pub copy_mode: CopyMode,
    /// UMEM frame size: a power of two from 2048 to the page size.
    pub frame_size: u32,
    /// UMEM frames (at least the TX ring size).
    pub frames: u32,
    /// Entries of the TX and completion rings (power of two).
    pub ring_size: u32,
    /// Destination (IPv4 or IPv6 and UDP port).
    pub dst: SocketAddr,
    /// Source address; None: the interface's first address of the destination's family.
    pub src_ip: Option<IpAddr>,
    /// UDP source port.
    pub src_port: u16,
    /// Next hop's Ethernet address; None: looked up in the ARP table (IPv4).
    pub dst_mac: Option<[u8; 6]>,
    /// Map the UMEM in 2 MiB huge pages (they must be reserved: `vm.nr_hugepages`).
    pub hugepages: bool,
}

impl TxConfig {
    /// Queue 0, kernel's choice of copy mode, 2 KiB frames, 4096 frames, 2048-entry rings.
    pub fn new(iface: impl Into<String>, dst: SocketAddr) -> TxConfig {
        TxConfig {
            iface: iface.into(),
            queue: 0,
            copy_mode: CopyMode::Auto,
            frame_size: 2048,
            frames: 4096,
            ring_size: 2048,
            dst,
            src_ip: None,
            src_port: dst.port(),
            dst_mac: None,
            hugepages: false,
        }
    }
}

/// Which UMEM frames the kernel has for transmission. See the module doc (seed bug 1).
#[derive(Debug)]
pub struct TxAccounting {
    in_flight: Vec<bool>,
    frame_size: u64,
    outstanding: u32,
    /// Frames marked in flight, ever.
    pub submitted: u64,
    /// Frames the kernel completed.
    pub completed: u64,
    /// Completions of frames that were not in flight: counted, otherwise ignored.
    pub bogus: u64,
}

impl TxAccounting {
    /// `frames` frames of `frame_size` bytes, none in flight.
    pub fn new(frames: u32, frame_size: u32) -> TxAccounting {
        TxAccounting {
            in_flight: vec![false; frames as usize],
            frame_size: u64::from(frame_size),
            outstanding: 0,
            submitted: 0,
            completed: 0,
            bogus: 0,
        }
    }

    fn index(&self, addr: u64) -> Option<usize> {
        let i = usize::try_from(addr / self.frame_size).ok()?;
        (i < self.in_flight.len()).then_some(i)
    }

    /// Marks the frame at `addr` in flight; call it *before* publishing its descriptor. False
    /// (and nothing changed) for a frame already in flight or outside the UMEM.
    pub fn submit(&mut self, addr: u64) -> bool {
        match self.index(addr) {
            Some(i) if !self.in_flight[i] => {
                self.in_flight[i] = true;
                self.outstanding += 1;
                self.submitted += 1;
                true
            }
            _ => false,
        }
    }

    /// Undoes [`submit`](Self::submit) for a frame whose descriptor was not published after all.
    pub fn withdraw(&mut self, addr: u64) {
        if let Some(i) = self.index(addr).filter(|&i| self.in_flight[i]) {
            self.in_flight[i] = false;
            self.outstanding -= 1;
            self.submitted -= 1;
        }
    }

    /// Takes back a frame the kernel completed. True if it was in flight (it is free again);
    /// false for a bogus completion, which is counted and otherwise ignored.
    pub fn complete(&mut self, addr: u64) -> bool {
        match self.index(addr) {
            Some(i) if self.in_flight[i] => {
                self.in_flight[i] = false;
                self.outstanding -= 1;
                self.completed += 1;
                true
            }
            _ => {
                self.bogus += 1;
                false
            }
        }
    }

    /// Frames in flight now.
    pub fn outstanding(&self) -> u32 {
        self.outstanding
    }
}

/// The TX and completion rings, or a fake in tests.
pub trait TxRings {
    /// Free TX descriptors, at most `want`.
    fn room(&mut self, want: u32) -> u32;
    /// Publishes `(addr, len)` descriptors on the TX ring; returns how many were published (all
    /// of them when there was [`room`](Self::room)). The kernel may complete them at once.
    fn publish(&mut self, descs: &[(u64, u32)]) -> u32;
    /// Moves up to `max` completed frame addresses to `out`.
    fn completed(&mut self, out: &mut Vec<u64>, max: u32);
    /// Asks the kernel to transmit what is on the TX ring, if it needs asking.
    fn kick(&mut self);
}

/// What one [`TxEngine::send`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sent {
    /// Leading packets handled: sent or counted as too big. The rest must be offered again.
    pub taken: usize,
    /// Of those, packets put on the TX ring.
    pub sent: usize,
    /// Of those, packets that did not fit a frame (or the MTU) and were dropped.
    pub too_big: usize,
}

/// Frame bookkeeping and the send/reap logic of the TX path, independent of the real rings.
#[derive(Debug)]
pub struct TxEngine<R: TxRings> {
    rings: R,
    free: Vec<u64>,
    acct: TxAccounting,
    descs: Vec<(u64, u32)>,
    /// For each entry of `descs`: packets taken up to and including it.
    taken_at: Vec<usize>,
    done: Vec<u64>,
}

impl<R: TxRings> TxEngine<R> {
    /// All `frames` frames of `frame_size` bytes free.
    pub fn new(rings: R, frames: u32, frame_size: u32) -> TxEngine<R> {
        TxEngine {
            rings,
            free: (0..u64::from(frames)).rev().map(|i| i * u64::from(frame_size)).collect(),
            acct: TxAccounting::new(frames, frame_size),
            descs: Vec::new(),
            taken_at: Vec::new(),
            done: Vec::new(),
        }
    }

    /// Puts the leading `packets` on the TX ring as far as frames and ring room allow. `fill`
    /// writes one packet into the frame at the given address and returns the frame length, or
    /// None if it does not fit (the packet is then dropped and counted in [`Sent::too_big`]).
    pub fn send(&mut self, packets: &[&[u8]], mut fill: impl FnMut(u64, &[u8]) -> Option<u32>) -> Sent {
        self.reap();
        let want = packets.len().min(self.free.len()).min(u32::MAX as usize) as u32;
        let room = self.rings.room(want) as usize;
        let mut out = Sent::default();
        self.descs.clear();
        self.taken_at.clear();
        for pkt in packets {
            if self.descs.len() == room {
                break;
            }
            let Some(&addr) = self.free.last() else { break };
            out.taken += 1;
            match fill(addr, pkt) {
                Some(len) => {
                    self.free.pop();
                    // In flight before the kernel can see it (seed bug 1).
                    let fresh = self.acct.submit(addr);
                    debug_assert!(fresh, "a free frame was in flight");
                    self.descs.push((addr, len));
                    self.taken_at.push(out.taken);
                }
                None => out.too_big += 1,
            }
        }
        let published = self.rings.publish(&self.descs) as usize;
        if published < self.descs.len() {
            // Not expected (room was reserved): give the rest back and offer them again.
            for &(addr, _) in &self.descs[published..] {
                self.acct.withdraw(addr);
                self.free.push(addr);
            }
            out.taken = if published == 0 { 0 } else { self.taken_at[published - 1] };
            out.too_big = out.taken - published;
        }
        out.sent = published;
        if published > 0 {
            self.rings.kick();
        }
        out
    }

    /// Takes back completed frames; returns how many came back.
    pub fn reap(&mut self) -> usize {
        self.done.clear();
        self.rings.completed(&mut self.done, u32::MAX);
        let mut n = 0;
        for &addr in &self.done {
            if self.acct.complete(addr) {
                // The descriptor address is the frame's start (no headroom on TX).
                self.free.push(addr);
                n += 1;
            } else {
                log::error!("AF_XDP: completion for frame {addr:#x}, which was not in flight: ignored");
            }
        }
        n
    }

    /// Kicks and reaps until nothing is outstanding or `timeout` passed; returns what is left.
    pub fn drain(&mut self, timeout: Duration) -> u32 {
        let deadline = Instant::now() + timeout;
        while self.acct.outstanding() > 0 && Instant::now() < deadline {
            self.rings.kick();
            if self.reap() == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        self.acct.outstanding()
    }

    /// The frame accounting.
    pub fn accounting(&self) -> &TxAccounting {
        &self.acct
    }

    /// Free frames.
    pub fn free_frames(&self) -> usize {
        self.free.len()
    }

    /// The rings.
    pub fn rings(&self) -> &R {
        &self.rings
    }
}

/// The real rings: TX ring and the UMEM's completion queue.
pub struct XskTxRings {
    tx: RingTx,
    cq: DeviceQueue,
}

impl std::fmt::Debug for XskTxRings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XskTxRings").finish_non_exhaustive()
    }
}

impl TxRings for XskTxRings {
    fn room(&mut self, want: u32) -> u32 {
        // A reservation that is dropped uncommitted is cancelled.
        self.tx.transmit(want).capacity()
    }

    fn publish(&mut self, descs: &[(u64, u32)]) -> u32 {
        if descs.is_empty() {
            return 0;
        }
        let mut w = self.tx.transmit(descs.len() as u32);
        let cap = w.capacity() as usize;
        // Only as many as were reserved: WriteTx::insert would consume one item too many.
        let n = w.insert(descs[..cap.min(descs.len())].iter().map(|&(addr, len)| xdpilone::xdp::XdpDesc {
            addr,
            len,
            options: 0,
        }));
        w.commit();
        n
    }

    fn completed(&mut self, out: &mut Vec<u64>, max: u32) {
        let mut r = self.cq.complete(max);
        while let Some(addr) = r.read() {
            out.push(addr);
        }
        r.release();
    }

    fn kick(&mut self) {
        if self.tx.needs_wakeup() {
            self.tx.wake();
        }
    }
}

/// An AF_XDP socket that sends UDP datagrams to one destination. Field order is drop order: the
/// socket and rings go before the UMEM, the UMEM before its memory.
pub struct XdpSender {
    engine: TxEngine<XskTxRings>,
    user: User,
    _socket: Socket,
    mem: UmemParts,
    template: crate::frame::UdpFrameTemplate,
    /// Largest frame: the frame size, or the MTU plus the Ethernet header if smaller.
    max_frame: usize,
    src: SocketAddr,
    dst_mac: [u8; 6],
    cfg: TxConfig,
    too_big: u64,
}

// SAFETY: an XdpSender owns every part of its socket (UMEM registration, rings, frame memory)
// and hands out no references to them, so moving it to another thread moves all users of the
// memory together. The parts are !Send only because they hold raw pointers to that memory
// (xdpilone has no Rc or Cell inside); nothing is shared with the thread left behind.
unsafe impl Send for XdpSender {}

impl std::fmt::Debug for XdpSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XdpSender").field("cfg", &self.cfg).field("src", &self.src).finish_non_exhaustive()
    }
}

impl XdpSender {
    /// Resolves the addresses and sets the socket up (UMEM, completion and TX rings, bind).
    ///
    /// # Errors
    /// Interface, queue, addresses, frame size, AF_XDP setup; nothing is left allocated.
    pub fn open(cfg: &TxConfig) -> Result<XdpSender> {
        iface::ifindex(&cfg.iface)?;
        let queues = iface::rx_queue_count(&cfg.iface)?;
        iface::validate_queue(&cfg.iface, cfg.queue, queues)?;
        let page = iface::page_size() as u32;
        if cfg.frame_size < 2048 || cfg.frame_size > page || !cfg.frame_size.is_power_of_two() {
            return Err(Error::Config(format!(
                "frame size {} must be a power of two from 2048 to {page}",
                cfg.frame_size
            )));
        }
        if !cfg.ring_size.is_power_of_two() || cfg.frames < cfg.ring_size {
            return Err(Error::Config(format!(
                "ring size {} must be a power of two, and frames ({}) at least the ring size",
                cfg.ring_size, cfg.frames
            )));
        }
        let src_ip = match cfg.src_ip {
            Some(ip) if !ip.is_unspecified() => ip,
            _ => iface::ip_address(&cfg.iface, cfg.dst.ip())?,
        };
        let src = SocketAddr::new(src_ip, cfg.src_port);
        let src_mac = iface::mac(&cfg.iface)?;
        let dst_mac = match cfg.dst_mac {
            Some(m) => m,
            None => iface::resolve_neighbour(&cfg.iface, cfg.dst.ip())?,
        };
        let template = crate::frame::UdpFrameTemplate::new(src_mac, dst_mac, src, cfg.dst).map_err(Error::Config)?;
        let mtu = iface::mtu(&cfg.iface)? as usize;
        let max_frame = (cfg.frame_size as usize).min(mtu + crate::frame::ETH_HLEN);

        let mem = UmemParts::new(cfg.frames, cfg.frame_size, cfg.ring_size, cfg.hugepages)?;
        // The kernel wants a fill ring on every UMEM; a sender leaves it empty.
        let (socket, cq) = mem.socket(&cfg.iface, cfg.queue, true)?;
        let bind_flags = crate::session::bind_flags(cfg.copy_mode);
        let scfg = SocketConfig { rx_size: None, tx_size: NonZeroU32::new(cfg.ring_size), bind_flags };
        let user = mem.umem.rx_tx(&socket, &scfg).map_err(xsk_err("create the TX ring"))?;
        let tx = user.map_tx().map_err(xsk_err("map the TX ring"))?;
        crate::session::bind(&mem.umem, &user, &cfg.iface, cfg.queue, cfg.copy_mode)?;
        log::info!(
            "xdp tx: {src} ({}) -> {} ({}) on {} queue {} ({:?}), frames up to {} bytes",
            fmt_mac(&src_mac),
            cfg.dst,
            fmt_mac(&dst_mac),
            cfg.iface,
            cfg.queue,
            cfg.copy_mode,
            max_frame
        );
        Ok(XdpSender {
            engine: TxEngine::new(XskTxRings { tx, cq }, cfg.frames, cfg.frame_size),
            user,
            _socket: socket,
            mem,
            template,
            max_frame,
            src,
            dst_mac,
            cfg: cfg.clone(),
            too_big: 0,
        })
    }

    /// Sends the leading `packets` (UDP payloads) as far as free frames and ring room allow;
    /// returns how many were taken (sent, or dropped as too big for a frame and counted). The
    /// caller offers the rest again.
    pub fn send(&mut self, packets: &[&[u8]]) -> usize {
        let (area, template, max) = (&mut self.mem.area, &mut self.template, self.max_frame);
        let r = self.engine.send(packets, |addr, pkt| {
            let frame = area.frame_mut(addr, max as u32)?;
            template.write(frame, pkt).map(|n| n as u32)
        });
        if r.too_big > 0 {
            if self.too_big == 0 {
                log::warn!(
                    "an RTP packet does not fit a {}-byte frame with {} bytes of headers: dropped and counted",
                    self.max_frame,
                    self.template.header_len()
                );
            }
            self.too_big += r.too_big as u64;
        }
        r.taken
    }

    /// Waits up to `timeout` for every frame in flight to complete; returns the final report.
    pub fn finish(&mut self, timeout: Duration) -> TxReport {
        let left = self.engine.drain(timeout);
        if left > 0 {
            log::warn!("AF_XDP: {left} frames still not completed by the kernel after {timeout:?}");
        }
        self.report()
    }

    /// Counters now.
    pub fn report(&self) -> TxReport {
        let a = self.engine.accounting();
        let xsk = self.user.statistics_v2().ok();
        TxReport {
            submitted: a.submitted,
            completed: a.completed,
            outstanding: a.outstanding(),
            bogus_completions: a.bogus,
            too_big: self.too_big,
            tx_invalid_descs: xsk.as_ref().map(|s| s.tx_invalid_descs),
            tx_ring_empty_descs: xsk.as_ref().map(|s| s.tx_ring_empty_descs),
        }
    }

    /// Source address and port the frames carry.
    pub fn source(&self) -> SocketAddr {
        self.src
    }

    /// The next hop's Ethernet address.
    pub fn dst_mac(&self) -> [u8; 6] {
        self.dst_mac
    }
}

/// Counters of a sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxReport {
    /// Frames put on the TX ring.
    pub submitted: u64,
    /// Frames the kernel reported sent.
    pub completed: u64,
    /// Frames in flight.
    pub outstanding: u32,
    /// Completions of frames not in flight (always 0 unless something is broken).
    pub bogus_completions: u64,
    /// Packets dropped because they did not fit a frame or the MTU.
    pub too_big: u64,
    /// Kernel: descriptors it refused (`XDP_STATISTICS`).
    pub tx_invalid_descs: Option<u64>,
    /// Kernel: times it found the TX ring empty.
    pub tx_ring_empty_descs: Option<u64>,
}

impl TxReport {
    /// One line for the end of a run.
    pub fn line(&self) -> String {
        let opt = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_else(|| "n/a".into());
        format!(
            "AF_XDP TX: submitted:{} completed:{} outstanding:{} bogus_completions:{} too_big:{} | xsk tx_invalid_descs:{} tx_ring_empty_descs:{}",
            self.submitted,
            self.completed,
            self.outstanding,
            self.bogus_completions,
            self.too_big,
            opt(self.tx_invalid_descs),
            opt(self.tx_ring_empty_descs)
        )
    }
}

fn fmt_mac(m: &[u8; 6]) -> String {
    m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// When the fake kernel completes what is published.
    #[derive(Default, Clone, Copy, PartialEq, Eq)]
    enum Completes {
        /// During `publish` itself: faster than the sender could count.
        InPublish,
        /// When kicked.
        #[default]
        OnKick,
        /// Never (a stalled link).
        Never,
    }

    /// A TX ring of `cap` entries and a "kernel" that sends and completes what is published.
    #[derive(Default)]
    struct FakeKernel {
        cap: usize,
        completes: Completes,
        on_ring: Vec<(u64, u32)>,
        completions: Vec<u64>,
        kicks: u32,
        sent: Vec<(u64, u32)>,
    }

    impl TxRings for FakeKernel {
        fn room(&mut self, want: u32) -> u32 {
            (self.cap - self.on_ring.len()).min(want as usize) as u32
        }
        fn publish(&mut self, descs: &[(u64, u32)]) -> u32 {
            let n = descs.len().min(self.cap - self.on_ring.len());
            self.on_ring.extend_from_slice(&descs[..n]);
            if self.completes == Completes::InPublish {
                self.transmit();
            }
            n as u32
        }
        fn completed(&mut self, out: &mut Vec<u64>, max: u32) {
            let n = self.completions.len().min(max as usize);
            out.extend(self.completions.drain(..n));
        }
        fn kick(&mut self) {
            self.kicks += 1;
            if self.completes != Completes::Never {
                self.transmit();
            }
        }
    }

    impl FakeKernel {
        fn new(cap: usize, completes: Completes) -> FakeKernel {
            FakeKernel { cap, completes, ..Default::default() }
        }
        fn transmit(&mut self) {
            for d in self.on_ring.drain(..) {
                self.sent.push(d);
                self.completions.push(d.0);
            }
        }
    }

    fn fill_ok(_addr: u64, pkt: &[u8]) -> Option<u32> {
        Some(pkt.len() as u32 + 42)
    }

    /// Seed bug 1: completions that arrive before the sender could have counted the frames
    /// (here: inside `publish`) never make the outstanding count underflow or drift; after every
    /// step it equals the frames the kernel still holds.
    #[test]
    fn seed_bug1_completions_faster_than_submission_keep_outstanding_exact() {
        let k = FakeKernel::new(8, Completes::InPublish);
        let mut e = TxEngine::new(k, 16, 2048);
        let pkts: Vec<Vec<u8>> = (0..100u8).map(|i| vec![i; 100]).collect();
        let refs: Vec<&[u8]> = pkts.iter().map(|p| p.as_slice()).collect();
        let mut off = 0;
        while off < refs.len() {
            let r = e.send(&refs[off..], fill_ok);
            off += r.taken;
            let a = e.accounting();
            assert_eq!(a.submitted - a.completed, u64::from(a.outstanding()));
            assert_eq!(a.outstanding() as usize, 16 - e.free_frames());
            assert_eq!(a.bogus, 0);
        }
        assert_eq!(e.drain(Duration::from_secs(1)), 0);
        let a = e.accounting();
        assert_eq!((a.submitted, a.completed, a.outstanding(), a.bogus), (100, 100, 0, 0));
        assert_eq!(e.free_frames(), 16, "every frame is free again");
        assert_eq!(e.rings().sent.len(), 100);
    }

    /// Seed bug 1, the other half: a completion the sender did not submit (the seed's clamp hid
    /// these) is counted and changes neither the count nor the free list, so a frame can never
    /// be handed out twice.
    #[test]
    fn seed_bug1_bogus_completion_is_counted_not_absorbed() {
        let k = FakeKernel::new(8, Completes::Never);
        let mut e = TxEngine::new(k, 4, 2048);
        let p = [0u8; 10];
        assert_eq!(e.send(&[&p, &p], fill_ok).sent, 2);
        let free_before = e.free_frames();
        e.rings.completions.push(3 * 2048); // frame 3 was never submitted
        e.rings.completions.push(99 * 2048); // not even in the UMEM
        assert_eq!(e.reap(), 0);
        let a = e.accounting();
        assert_eq!((a.outstanding(), a.completed, a.bogus), (2, 0, 2));
        assert_eq!(e.free_frames(), free_before, "a bogus completion frees nothing");
        // The real completions still balance the count.
        e.rings.transmit();
        assert_eq!(e.reap(), 2);
        assert_eq!(e.accounting().outstanding(), 0);
        assert_eq!(e.free_frames(), 4);
        // A duplicate completion of an already completed frame is bogus too.
        let first = e.rings.sent[0].0;
        e.rings.completions.push(first);
        assert_eq!(e.reap(), 0);
        assert_eq!(e.accounting().bogus, 3);
        assert_eq!(e.free_frames(), 4);
    }

    #[test]
    fn frames_and_ring_room_bound_a_send_and_too_big_packets_are_skipped() {
        let k = FakeKernel::new(4, Completes::Never);
        let mut e = TxEngine::new(k, 3, 2048);
        let small = [1u8; 10];
        let big = [2u8; 3000];
        let pkts: [&[u8]; 6] = [&small, &big, &small, &small, &small, &small];
        let fill = |_: u64, p: &[u8]| (p.len() <= 2000).then_some(p.len() as u32);
        // 3 frames: small, (big dropped), small, small; the rest waits.
        assert_eq!(e.send(&pkts, fill), Sent { taken: 4, sent: 3, too_big: 1 });
        assert_eq!(e.accounting().outstanding(), 3);
        // No frame is free until the kernel completes one: nothing taken, nothing lost.
        assert_eq!(e.send(&pkts[4..], fill), Sent::default());
        assert_eq!(e.drain(Duration::from_millis(20)), 3, "a stalled link leaves frames outstanding");
        // The link comes back: the frames return and the rest is sent.
        e.rings.transmit();
        assert_eq!(e.send(&pkts[4..], fill).sent, 2);
        // The ring has room for 4: with 2 still on it (not kicked out), 2 more fit.
        let k = FakeKernel::new(4, Completes::Never);
        let mut e = TxEngine::new(k, 16, 2048);
        assert_eq!(e.send(&[&small[..]; 6], fill).taken, 4);
    }

    #[test]
    fn drain_kicks_until_everything_completed() {
        let k = FakeKernel::new(8, Completes::OnKick);
        let mut e = TxEngine::new(k, 8, 2048);
        let p = [0u8; 10];
        // publish + kick: the fake transmits on kick, so completions are waiting.
        assert_eq!(e.send(&[&p[..]; 5], fill_ok).sent, 5);
        assert_eq!(e.drain(Duration::from_secs(1)), 0);
        assert_eq!(e.accounting().completed, 5);
        assert!(e.rings().kicks >= 1);
    }

    #[test]
    fn report_line_names_every_counter() {
        let r = TxReport {
            submitted: 5,
            completed: 4,
            outstanding: 1,
            bogus_completions: 0,
            too_big: 2,
            tx_invalid_descs: Some(0),
            tx_ring_empty_descs: None,
        };
        assert_eq!(
            r.line(),
            "AF_XDP TX: submitted:5 completed:4 outstanding:1 bogus_completions:0 too_big:2 | xsk tx_invalid_descs:0 tx_ring_empty_descs:n/a"
        );
    }
}

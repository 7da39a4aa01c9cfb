//! Producer -> consumer handoff between two threads over one transport ("path").
//!
//! Paths:
//! - `ring-batch`: the ring with RESERVE_BATCH/PUSH_BATCH and POP_BATCH/RELEASE_BATCH, payloads
//!   written and read in place in the shared mapping (the product's path);
//! - `ring-slot`: the seed ABI, one PUSH_SLOT (implicit reserve), POP_SLOT, RELEASE_SLOT per packet;
//! - `udp`: loopback UDP, sendmmsg/recvmmsg with the same batch size;
//! - `pipe`: a pipe carrying the packets back to back (one write/read per batch);
//! - `rtrb`: the `rtrb` SPSC ring passing the ring's 16-byte slot descriptors (host reference).
//!
//! Producer and consumer each open the transport themselves (two `open`s of the ring, as two
//! processes would). Every call that enters the kernel on the path (ioctl, poll, sendmmsg, recvmmsg,
//! read, write, futex wait) goes through [`Calls::count`], so "syscalls per packet" is counted by
//! the tool, exactly, per side. Pacing sleeps of the fixed-rate mode are not path syscalls and are
//! not counted. On the shm backend the batch operations are plain function calls (no syscall); the
//! counters then count library calls, and only its waits are syscalls.

use anyhow::{bail, Context, Result};
use rtpmgr::{Backend, Channel, Dir, SlotOp, SlotRef};
use serde::Serialize;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A transport under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum PathKind {
    RingBatch,
    RingSlot,
    Udp,
    Pipe,
    Rtrb,
}

impl PathKind {
    pub fn name(self) -> &'static str {
        match self {
            PathKind::RingBatch => "ring-batch",
            PathKind::RingSlot => "ring-slot",
            PathKind::Udp => "udp",
            PathKind::Pipe => "pipe",
            PathKind::Rtrb => "rtrb",
        }
    }
}

/// What an idle side does: block in the transport's wait (poll/futex) or spin with
/// `sched_yield` (used against rtrb, which has no blocking wait).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idle {
    Block,
    Spin,
}

/// One run's parameters.
#[derive(Debug, Clone)]
pub struct Params {
    pub path: PathKind,
    /// The ring (ring-batch, ring-slot); ignored by the other paths.
    pub backend: Backend,
    pub payload: usize,
    pub batch: usize,
    /// Measured window, after a warm-up of a fifth of it (at least 50 ms).
    pub secs: f64,
    /// Fixed offered rate in packets/s, or as fast as possible.
    pub rate: Option<u64>,
    pub idle: Idle,
}

/// One run's result (over the measured window).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Outcome {
    /// Packets the consumer got per second.
    pub pps: f64,
    pub packets: u64,
    /// Packets the producer handed to the transport in the window.
    pub offered: u64,
    /// Counted calls per delivered packet, producer and consumer side.
    pub prod_calls_per_pkt: f64,
    pub cons_calls_per_pkt: f64,
}

/// A counter of calls into the kernel (or, for shm, into the ring library).
#[derive(Debug, Default)]
pub struct Calls(AtomicU64);

impl Calls {
    /// Counts one call and makes it.
    #[inline]
    pub fn count<T>(&self, f: impl FnOnce() -> T) -> T {
        self.0.fetch_add(1, Relaxed);
        f()
    }
    fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// State shared by the two sides and the timing thread.
#[derive(Debug, Default)]
struct Shared {
    stop: AtomicBool,
    prod_done: AtomicBool,
    produced: AtomicU64,
    consumed: AtomicU64,
    prod_calls: Calls,
    cons_calls: Calls,
}

/// Hands out how many packets the producer may send now: a full batch when unpaced, else what
/// the fixed rate has made due (sleeping a tick when nothing is due).
struct Pacer {
    schedule: Option<crate::pace::Schedule>,
    sent: u64,
}

/// Pacing tick: the producer wakes once per millisecond and sends what is due, the way a NIC with
/// interrupt moderation delivers packets in small bursts.
const TICK: Duration = Duration::from_millis(1);

impl Pacer {
    fn new(rate: Option<u64>) -> Self {
        Pacer { schedule: rate.map(crate::pace::Schedule::unbounded), sent: 0 }
    }
    fn allowance(&mut self, batch: usize) -> usize {
        let Some(schedule) = &self.schedule else { return batch };
        let due = schedule.due();
        if due <= self.sent {
            std::thread::sleep(TICK);
            return 0;
        }
        (due - self.sent).min(batch as u64) as usize
    }
    fn sent(&mut self, n: usize) {
        self.sent += n as u64;
    }
}

/// Writes a minimal RTP v2 header (PT 96, sequence `seq`) so that the kernel's push parses a valid
/// packet, as it would for real traffic.
#[inline]
fn write_rtp_header(buf: &mut [u8], seq: u16) {
    buf[0] = 0x80;
    buf[1] = 96;
    buf[2..4].copy_from_slice(&seq.to_be_bytes());
    buf[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    buf[8..12].copy_from_slice(&0x5254_504du32.to_be_bytes());
}

#[inline]
fn read_seq(buf: &[u8]) -> u16 {
    u16::from_be_bytes([buf[2], buf[3]])
}

/// Runs one measurement of `p`.
pub fn run(p: &Params) -> Result<Outcome> {
    if p.payload < 12 {
        bail!("payload {} B is shorter than an RTP header (12 B)", p.payload);
    }
    if p.batch == 0 || p.batch > rtpmgr::abi::RTPM_BATCH_MAX as usize {
        bail!("batch {} is outside 1..={}", p.batch, rtpmgr::abi::RTPM_BATCH_MAX);
    }
    let sh = Arc::new(Shared::default());
    let (prod, cons): (Side, Side) = match p.path {
        PathKind::RingBatch => ring_batch(p)?,
        PathKind::RingSlot => ring_slot(p)?,
        PathKind::Udp => udp(p)?,
        PathKind::Pipe => pipe(p)?,
        PathKind::Rtrb => rtrb_path(p),
    };
    let (s1, s2) = (Arc::clone(&sh), Arc::clone(&sh));
    let pt = std::thread::Builder::new().name("producer".into()).spawn(move || {
        let r = prod(&s1);
        s1.prod_done.store(true, Relaxed);
        r
    })?;
    let ct = std::thread::Builder::new().name("consumer".into()).spawn(move || {
        let r = cons(&s2);
        // A failed consumer must not leave the producer blocked on a full transport.
        s2.stop.store(true, Relaxed);
        r
    })?;

    let warm = (p.secs / 5.0).max(0.05);
    std::thread::sleep(Duration::from_secs_f64(warm));
    let snap = |sh: &Shared| {
        (Instant::now(), sh.consumed.load(Relaxed), sh.produced.load(Relaxed), sh.prod_calls.get(), sh.cons_calls.get())
    };
    let a = snap(&sh);
    std::thread::sleep(Duration::from_secs_f64(p.secs));
    let b = snap(&sh);
    sh.stop.store(true, Relaxed);
    let pr = pt.join().map_err(|_| anyhow::anyhow!("producer thread panicked"))?;
    let cr = ct.join().map_err(|_| anyhow::anyhow!("consumer thread panicked"))?;
    pr.with_context(|| format!("{} producer", p.path.name()))?;
    cr.with_context(|| format!("{} consumer", p.path.name()))?;

    let packets = b.1 - a.1;
    let per = |calls: u64| if packets == 0 { f64::NAN } else { calls as f64 / packets as f64 };
    Ok(Outcome {
        pps: packets as f64 / (b.0 - a.0).as_secs_f64(),
        packets,
        offered: b.2 - a.2,
        prod_calls_per_pkt: per(b.3 - a.3),
        cons_calls_per_pkt: per(b.4 - a.4),
    })
}

type Side = Box<dyn FnOnce(&Shared) -> Result<()> + Send>;

/// How long an idle side blocks before it re-checks the stop flag.
const WAIT: Duration = Duration::from_millis(10);

/// Opens the ring for a benchmark: running, empty, counters zeroed where the ring allows it.
fn prepare_ring(backend: &Backend) -> Result<Channel> {
    let ch = Channel::open(backend)?;
    // RESET needs a stopped channel without owned slots; a channel in use by someone else keeps
    // its contents, which only matters if that someone is also pushing (then the numbers mix).
    if ch.stop().is_ok() {
        let _ = ch.reset();
    }
    ch.start()?;
    Ok(ch)
}

fn ring_batch(p: &Params) -> Result<(Side, Side)> {
    let ctl = prepare_ring(&p.backend)?;
    let slot_payload = ctl.info()?.config.slot_payload as usize;
    if p.payload > slot_payload {
        bail!("payload {} B does not fit the ring's {slot_payload}-byte slots", p.payload);
    }
    let (backend, payload, batch, rate, idle) = (p.backend.clone(), p.payload, p.batch, p.rate, p.idle);
    let backend2 = backend.clone();
    let prod: Side = Box::new(move |sh: &Shared| {
        let _ctl = ctl;
        let ch = Channel::open(&backend)?;
        let ring = ch.map()?;
        // SAFETY: no guard of `ch` exists; every slot moved here is moved through `raw` alone.
        let raw = unsafe { ch.raw() };
        let mut refs = vec![SlotRef::default(); batch];
        let mut pacer = Pacer::new(rate);
        let mut seq = 0u16;
        while !sh.stop.load(Relaxed) {
            let want = pacer.allowance(batch);
            if want == 0 {
                continue;
            }
            // A full ring shows on the header page: wait instead of a RESERVE that gets EAGAIN.
            if ring.free_hint() == 0 {
                idle_wait(&ch, Dir::Writable, idle, &sh.prod_calls)?;
                continue;
            }
            let n = match sh.prod_calls.count(|| raw.batch(SlotOp::Reserve, &mut refs[..want])) {
                Ok(n) => n,
                Err(e) if e.is_would_block() => {
                    idle_wait(&ch, Dir::Writable, idle, &sh.prod_calls)?;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            for r in &mut refs[..n] {
                // SAFETY: the slot is reserved by this open channel (RESERVE_BATCH returned it), so
                // no one else touches its payload; `payload` <= slot_payload was checked above.
                let buf = unsafe { std::slice::from_raw_parts_mut(ring.payload_ptr(r.index), payload) };
                write_rtp_header(buf, seq);
                seq = seq.wrapping_add(1);
                r.len = payload as u32;
                r.arrival_ns = 0;
            }
            let pushed = sh.prod_calls.count(|| raw.batch(SlotOp::Push, &mut refs[..n]))?;
            if pushed != n {
                bail!("push batch took {pushed} of {n} reserved slots");
            }
            pacer.sent(n);
            sh.produced.fetch_add(n as u64, Relaxed);
        }
        Ok(())
    });
    let cons: Side = Box::new(move |sh: &Shared| {
        let ch = Channel::open(&backend2)?;
        let ring = ch.map()?;
        // SAFETY: no guard of `ch` exists; every slot moved here is moved through `raw` alone.
        let raw = unsafe { ch.raw() };
        let mut refs = vec![SlotRef::default(); batch];
        let mut check = 0u64;
        loop {
            // The header page says whether anything is READY: no syscall to find out.
            if ring.ready_hint() == 0 {
                if sh.stop.load(Relaxed) && sh.prod_done.load(Relaxed) {
                    break;
                }
                idle_wait(&ch, Dir::Readable, idle, &sh.cons_calls)?;
                continue;
            }
            let n = match sh.cons_calls.count(|| raw.batch(SlotOp::Pop, &mut refs[..])) {
                Ok(n) => n,
                Err(e) if e.is_would_block() => continue,
                Err(e) => return Err(e.into()),
            };
            for r in &refs[..n] {
                // SAFETY: the slot is popped by this open channel (CONSUMING, ours until released);
                // the ring wrote len <= slot_payload.
                let buf = unsafe { std::slice::from_raw_parts(ring.payload_ptr(r.index), r.len as usize) };
                check = check.wrapping_add(u64::from(read_seq(buf)));
            }
            let released = sh.cons_calls.count(|| raw.batch(SlotOp::Release, &mut refs[..n]))?;
            if released != n {
                bail!("release batch took {released} of {n} popped slots");
            }
            sh.consumed.fetch_add(n as u64, Relaxed);
        }
        std::hint::black_box(check);
        Ok(())
    });
    Ok((prod, cons))
}

fn idle_wait(ch: &Channel, dir: Dir, idle: Idle, calls: &Calls) -> Result<()> {
    match idle {
        Idle::Block => {
            calls.count(|| ch.wait(dir, Some(WAIT)))?;
        }
        Idle::Spin => std::thread::yield_now(),
    }
    Ok(())
}

fn ring_slot(p: &Params) -> Result<(Side, Side)> {
    let ctl = prepare_ring(&p.backend)?;
    let slot_payload = ctl.info()?.config.slot_payload as usize;
    if p.payload > slot_payload {
        bail!("payload {} B does not fit the ring's {slot_payload}-byte slots", p.payload);
    }
    let (backend, payload, rate, idle) = (p.backend.clone(), p.payload, p.rate, p.idle);
    let backend2 = backend.clone();
    let prod: Side = Box::new(move |sh: &Shared| {
        let _ctl = ctl;
        let ch = Channel::open(&backend)?;
        // ABI 2.0: the one-call PUSH_SLOT (implicit reserve) is the producer-role holder's.
        ch.claim(rtpmgr::abi::RTPM_ROLE_PRODUCER)?;
        let ring = ch.map()?;
        let mask = ring.layout().slot_count - 1;
        // SAFETY: no guard of `ch` exists; every slot moved here is moved through `raw` alone.
        let raw = unsafe { ch.raw() };
        let mut pacer = Pacer::new(rate);
        let mut seq = 0u16;
        while !sh.stop.load(Relaxed) {
            if pacer.allowance(1) == 0 {
                continue;
            }
            // The seed's producer: write the slot at the reserve index, then one PUSH_SLOT, which
            // reserves it implicitly. Only when the header page shows a FREE slot: otherwise the
            // slot at the reserve index may still be in the consumer's hands.
            if ring.free_hint() == 0 {
                idle_wait(&ch, Dir::Writable, idle, &sh.prod_calls)?;
                continue;
            }
            let index = ring.indices()[0] & mask;
            // SAFETY: the slot at the reserve index is FREE (free_hint > 0 and this is the only
            // producer), so nobody reads or writes its payload; payload <= slot_payload.
            let buf = unsafe { std::slice::from_raw_parts_mut(ring.payload_ptr(index), payload) };
            write_rtp_header(buf, seq);
            match sh.prod_calls.count(|| raw.push(index, payload as u32, 0)) {
                Ok(()) => {}
                Err(e) if e.is_would_block() => continue,
                Err(e) => return Err(e.into()),
            }
            seq = seq.wrapping_add(1);
            pacer.sent(1);
            sh.produced.fetch_add(1, Relaxed);
        }
        Ok(())
    });
    let cons: Side = Box::new(move |sh: &Shared| {
        let ch = Channel::open(&backend2)?;
        let ring = ch.map()?;
        // SAFETY: no guard of `ch` exists; every slot moved here is moved through `raw` alone.
        let raw = unsafe { ch.raw() };
        let mut check = 0u64;
        loop {
            if ring.ready_hint() == 0 {
                if sh.stop.load(Relaxed) && sh.prod_done.load(Relaxed) {
                    break;
                }
                idle_wait(&ch, Dir::Readable, idle, &sh.cons_calls)?;
                continue;
            }
            let r = match sh.cons_calls.count(|| raw.pop()) {
                Ok(r) => r,
                Err(e) if e.is_would_block() => continue,
                Err(e) => return Err(e.into()),
            };
            // SAFETY: popped by this channel, ours until released; len <= slot_payload.
            let buf = unsafe { std::slice::from_raw_parts(ring.payload_ptr(r.index), r.len as usize) };
            check = check.wrapping_add(u64::from(read_seq(buf)));
            sh.cons_calls.count(|| raw.release(r.index))?;
            sh.consumed.fetch_add(1, Relaxed);
        }
        std::hint::black_box(check);
        Ok(())
    });
    Ok((prod, cons))
}

fn os_err(what: &str) -> anyhow::Error {
    anyhow::anyhow!("{what}: {}", std::io::Error::last_os_error())
}

fn udp(p: &Params) -> Result<(Side, Side)> {
    let rx = std::net::UdpSocket::bind("127.0.0.1:0").context("bind the UDP receiver")?;
    let tx = std::net::UdpSocket::bind("127.0.0.1:0").context("bind the UDP sender")?;
    tx.connect(rx.local_addr()?).context("connect the UDP sender")?;
    // A large receive buffer (as rtp_app rx asks for) so that bursts are queued, not dropped; the
    // kernel caps it at net.core.rmem_max.
    let big: libc::c_int = 4 << 20;
    // SAFETY: setsockopt with a c_int option value of the stated size on an open socket.
    unsafe {
        let sz = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        libc::setsockopt(rx.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVBUF, (&raw const big).cast(), sz);
    }
    rx.set_read_timeout(Some(WAIT))?;
    let (payload, batch, rate) = (p.payload, p.batch, p.rate);
    let prod: Side = Box::new(move |sh: &Shared| {
        let mut bufs = vec![vec![0u8; payload]; batch];
        let mut iov: Vec<libc::iovec> = Vec::with_capacity(batch);
        let mut pacer = Pacer::new(rate);
        let mut seq = 0u16;
        while !sh.stop.load(Relaxed) {
            let want = pacer.allowance(batch);
            if want == 0 {
                continue;
            }
            iov.clear();
            for b in &mut bufs[..want] {
                write_rtp_header(b, seq);
                seq = seq.wrapping_add(1);
                iov.push(libc::iovec { iov_base: b.as_mut_ptr().cast(), iov_len: payload });
            }
            // SAFETY: a zeroed mmsghdr is valid (no name, no control); each points at one iovec.
            let mut msgs: Vec<libc::mmsghdr> = (0..want).map(|_| unsafe { std::mem::zeroed() }).collect();
            for (m, v) in msgs.iter_mut().zip(iov.iter_mut()) {
                m.msg_hdr.msg_iov = v;
                m.msg_hdr.msg_iovlen = 1;
            }
            // SAFETY: msgs/iov/bufs outlive the call; the socket is connected.
            let n =
                sh.prod_calls.count(|| unsafe { libc::sendmmsg(tx.as_raw_fd(), msgs.as_mut_ptr(), want as u32, 0) });
            if n < 0 {
                let e = std::io::Error::last_os_error();
                // ENOBUFS/EAGAIN: the loopback queue is full; try again.
                if matches!(e.raw_os_error(), Some(libc::ENOBUFS) | Some(libc::EAGAIN)) {
                    continue;
                }
                return Err(anyhow::anyhow!("sendmmsg: {e}"));
            }
            pacer.sent(n as usize);
            sh.produced.fetch_add(n as u64, Relaxed);
        }
        Ok(())
    });
    let cons: Side = Box::new(move |sh: &Shared| {
        let mut bufs = vec![vec![0u8; payload.max(2048)]; batch];
        let mut iov: Vec<libc::iovec> =
            bufs.iter_mut().map(|b| libc::iovec { iov_base: b.as_mut_ptr().cast(), iov_len: b.len() }).collect();
        // SAFETY: as above.
        let mut msgs: Vec<libc::mmsghdr> = (0..batch).map(|_| unsafe { std::mem::zeroed() }).collect();
        let mut check = 0u64;
        loop {
            for (m, v) in msgs.iter_mut().zip(iov.iter_mut()) {
                m.msg_hdr.msg_iov = v;
                m.msg_hdr.msg_iovlen = 1;
                m.msg_len = 0;
            }
            // MSG_WAITFORONE: block for the first datagram only, like rtp_app rx.
            // SAFETY: msgs/iov/bufs outlive the call.
            let n = sh.cons_calls.count(|| unsafe {
                libc::recvmmsg(
                    rx.as_raw_fd(),
                    msgs.as_mut_ptr(),
                    batch as u32,
                    libc::MSG_WAITFORONE,
                    std::ptr::null_mut(),
                )
            });
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EINTR)) {
                    if sh.stop.load(Relaxed) && sh.prod_done.load(Relaxed) {
                        break;
                    }
                    continue;
                }
                return Err(anyhow::anyhow!("recvmmsg: {e}"));
            }
            for b in &bufs[..n as usize] {
                check = check.wrapping_add(u64::from(read_seq(b)));
            }
            sh.consumed.fetch_add(n as u64, Relaxed);
        }
        std::hint::black_box(check);
        Ok(())
    });
    Ok((prod, cons))
}

fn pipe(p: &Params) -> Result<(Side, Side)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two fds on success.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(os_err("pipe2"));
    }
    // SAFETY: both fds are freshly created and owned by nobody else.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // 1 MiB (the unprivileged maximum) so that a batch of 256 x 1200 B fits in one write; failure
    // just leaves 64 KiB.
    // SAFETY: fcntl on an owned fd.
    unsafe { libc::fcntl(w.as_raw_fd(), libc::F_SETPIPE_SZ, 1 << 20) };
    let (payload, batch, rate) = (p.payload, p.batch, p.rate);
    let prod: Side = Box::new(move |sh: &Shared| {
        let mut buf = vec![0u8; payload * batch];
        let mut pacer = Pacer::new(rate);
        let mut seq = 0u16;
        while !sh.stop.load(Relaxed) {
            let want = pacer.allowance(batch);
            if want == 0 {
                continue;
            }
            for pkt in buf[..want * payload].chunks_exact_mut(payload) {
                write_rtp_header(pkt, seq);
                seq = seq.wrapping_add(1);
            }
            let mut off = 0;
            while off < want * payload {
                // SAFETY: writes from a live buffer range.
                let n = sh
                    .prod_calls
                    .count(|| unsafe { libc::write(w.as_raw_fd(), buf[off..].as_ptr().cast(), want * payload - off) });
                if n < 0 {
                    return Err(os_err("write to the pipe"));
                }
                off += n as usize;
            }
            pacer.sent(want);
            sh.produced.fetch_add(want as u64, Relaxed);
        }
        drop(w); // EOF for the consumer
        Ok(())
    });
    let cons: Side = Box::new(move |sh: &Shared| {
        let mut buf = vec![0u8; payload * batch];
        let mut partial = 0usize; // bytes of a packet split across reads
        let mut check = 0u64;
        loop {
            // SAFETY: reads into a live buffer.
            let n = sh.cons_calls.count(|| unsafe { libc::read(r.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) });
            if n < 0 {
                return Err(os_err("read from the pipe"));
            }
            if n == 0 {
                break;
            }
            let total = partial + n as usize;
            let pkts = total / payload;
            partial = total % payload;
            if n as usize >= 4 {
                check = check.wrapping_add(u64::from(buf[2]));
            }
            sh.consumed.fetch_add(pkts as u64, Relaxed);
        }
        std::hint::black_box(check);
        Ok(())
    });
    Ok((prod, cons))
}

fn rtrb_path(p: &Params) -> (Side, Side) {
    let (mut tx, mut rx) = rtrb::RingBuffer::<SlotRef>::new(1024);
    let (batch, rate, payload) = (p.batch, p.rate, p.payload as u32);
    let prod: Side = Box::new(move |sh: &Shared| {
        let mut pacer = Pacer::new(rate);
        let mut next = 0u32;
        while !sh.stop.load(Relaxed) {
            let want = pacer.allowance(batch);
            if want == 0 {
                continue;
            }
            let n = want.min(tx.slots());
            if n == 0 {
                std::thread::yield_now();
                continue;
            }
            let chunk = sh.prod_calls.count(|| tx.write_chunk_uninit(n)).expect("slots() said n are free");
            let done = chunk.fill_from_iter((0..n as u32).map(|i| SlotRef::new((next + i) & 1023, payload, 0)));
            next = next.wrapping_add(done as u32);
            pacer.sent(done);
            sh.produced.fetch_add(done as u64, Relaxed);
        }
        Ok(())
    });
    let cons: Side = Box::new(move |sh: &Shared| {
        let mut check = 0u64;
        loop {
            let n = rx.slots().min(batch);
            if n == 0 {
                if sh.stop.load(Relaxed) && sh.prod_done.load(Relaxed) {
                    break;
                }
                std::thread::yield_now();
                continue;
            }
            let chunk = sh.cons_calls.count(|| rx.read_chunk(n)).expect("slots() said n are ready");
            for d in chunk.into_iter() {
                check = check.wrapping_add(u64::from(d.len));
            }
            sh.consumed.fetch_add(n as u64, Relaxed);
        }
        std::hint::black_box(check);
        Ok(())
    });
    (prod, cons)
}

//! One fuzzing process: a seeded sequence of random operations on the device.
//!
//! A worker keeps just enough state to make most calls valid (the files it opened, the mappings
//! it made, the slots each file reserved or popped, the layout GET_INFO last reported) and then
//! corrupts a share of them on purpose: wrong indices, lengths, counts and flags, bad pointers,
//! undefined request numbers, hostile mmaps. Refusals are counted, never fatal; only broken
//! invariants are recorded as violations (in [`Shared`], so they survive a `kill -9`).
//!
//! Memory safety of the fuzzer itself: the kernel is only ever given (a) addresses it must
//! refuse, (b) this worker's scratch pages, guarded by PROT_NONE pages, (c) live locals and
//! vectors at least as long as the count the request carries, or (d) the device's own mappings.
//! So whatever the kernel writes lands in memory the worker never relies on.

use crate::ioc::{self, Request, Shape, SlotKind};
use crate::rng::{mix, Rng};
use crate::shared::Shared;
use nix::errno::Errno;
use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{ForkResult, Pid};
use rtpmgr_abi::{RtpmBatch, RtpmConfig, RtpmInfo, RtpmSlotRef, RtpmStatus, RTPM_BATCH_MAX, RTPM_MAGIC};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;

/// What every worker of a run shares (set once by the supervisor before it forks).
#[derive(Debug, Clone)]
pub struct Params {
    pub device: PathBuf,
    /// Valid CONFIGUREs stay below this ring size (the test guest has 1 GiB).
    pub max_ring_bytes: u64,
    /// Workers with an odd slot number drop to this uid/gid (the service user).
    pub unprivileged: Option<(u32, u32)>,
}

const MAX_FILES: usize = 4;
const MAX_MAPS: usize = 12;
const MAX_CHILDREN: usize = 2;
/// Payload sizes a valid CONFIGURE picks from (besides random ones): boundaries and an MTU.
const PAYLOADS: [u32; 5] = [64, 128, 200, 1500, 2048];

/// The operations, with their weights out of the sum (per step).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Ioctl,
    IoctlGarbage,
    IoctlBadPointer,
    IoctlUndefined,
    Mmap,
    Munmap,
    Mremap,
    Mprotect,
    Touch,
    Open,
    Close,
    Dup,
    Nonblock,
    Poll,
    Fork,
    Kill,
}

const OPS: [(Op, u32); 16] = [
    (Op::Ioctl, 5000),
    (Op::IoctlGarbage, 1200),
    (Op::IoctlBadPointer, 800),
    (Op::IoctlUndefined, 200),
    (Op::Mmap, 500),
    (Op::Munmap, 350),
    (Op::Mremap, 80),
    (Op::Mprotect, 100),
    (Op::Touch, 600),
    (Op::Open, 250),
    (Op::Close, 150),
    (Op::Dup, 60),
    (Op::Nonblock, 100),
    (Op::Poll, 150),
    (Op::Fork, 30),
    (Op::Kill, 8),
];

struct DevFile {
    fd: OwnedFd,
    /// Slots this open file reserved (PRODUCING) or popped (CONSUMING), as far as we know.
    reserved: Vec<u32>,
    popped: Vec<u32>,
}

#[derive(Debug, Clone, Copy)]
struct Map {
    addr: usize,
    len: usize,
    prot: i32,
    /// Device (mmap) offset of `addr`.
    offset: u64,
    /// Created at mmap offset 0: the read-only header page, whatever the configuration.
    header: bool,
}

/// The channel layout as GET_INFO last reported it (possibly stale: another process may have
/// reconfigured since, which only turns valid calls into refused ones).
#[derive(Debug, Clone, Copy)]
struct Layout {
    slot_count: u32,
    slot_payload: u32,
    slot_stride: u32,
    meta_size: u64,
    payload_offset: u64,
    payload_size: u64,
}

impl Layout {
    fn from_info(i: &RtpmInfo) -> Self {
        Self {
            slot_count: i.slot_count,
            slot_payload: i.config.slot_payload,
            slot_stride: i.slot_stride,
            meta_size: i.meta_size,
            payload_offset: i.payload_offset,
            payload_size: i.payload_size,
        }
    }
}

/// Scratch pages: `[A rw][B rw][guard none][R ro][guard none]`. Arguments live in A, slot arrays
/// in B; a struct placed at the end of B straddles into the guard page.
struct Scratch {
    base: usize,
    page: usize,
}

impl Scratch {
    fn new(page: usize) -> Self {
        // SAFETY: a fresh anonymous private mapping at an address the kernel picks.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                5 * page,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert!(base != libc::MAP_FAILED, "mmap of scratch pages failed: {}", Errno::last());
        let base = base as usize;
        for (i, prot) in [(2, libc::PROT_NONE), (3, libc::PROT_READ), (4, libc::PROT_NONE)] {
            // SAFETY: pages of the mapping above; nothing references them.
            let r = unsafe { libc::mprotect((base + i * page) as *mut libc::c_void, page, prot) };
            assert_eq!(r, 0, "mprotect of scratch page {i} failed: {}", Errno::last());
        }
        Self { base, page }
    }
    fn a(&self) -> usize {
        self.base
    }
    fn b(&self) -> usize {
        self.base + self.page
    }
    fn guard(&self) -> usize {
        self.base + 2 * self.page
    }
    fn read_only(&self) -> usize {
        self.base + 3 * self.page
    }
    /// The two writable pages, for filling with garbage.
    fn rw(&mut self) -> &mut [u8] {
        // SAFETY: pages A and B are mapped read-write for the life of the worker and only the
        // kernel (during a call of this single-threaded process) or this slice touch them.
        unsafe { std::slice::from_raw_parts_mut(self.base as *mut u8, 2 * self.page) }
    }
}

pub struct Worker {
    params: Params,
    shared: &'static Shared,
    requests: Vec<Request>,
    rng: Rng,
    /// Worker slot and generation: named in violation messages (with the seed) for replay.
    tag: String,
    files: Vec<DevFile>,
    maps: Vec<Map>,
    layout: Option<Layout>,
    scratch: Scratch,
    page: usize,
    children: usize,
    /// 0: a worker; 1: a forked child of a worker (it does not fork again).
    depth: u8,
}

extern "C" fn on_alarm(_: libc::c_int) {}

impl Worker {
    pub fn new(params: Params, shared: &'static Shared, slot: usize, generation: u64, seed: u64) -> Self {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        Self {
            params,
            shared,
            requests: ioc::catalogue(),
            rng: Rng::new(seed),
            tag: format!("worker {slot} generation {generation} (seed {seed:#x})"),
            files: Vec::new(),
            maps: Vec::new(),
            layout: None,
            scratch: Scratch::new(page),
            page,
            children: 0,
            depth: 0,
        }
    }

    /// Runs until the supervisor sets `stop`; never returns to the caller's code after fork.
    pub fn run(&mut self, slot: usize) {
        if let Some((uid, gid)) = self.params.unprivileged.filter(|_| slot % 2 == 1) {
            self.drop_privileges(uid, gid);
        }
        // A blocking RESERVE or POP is cut short by SIGALRM: no SA_RESTART, so the call returns
        // EINTR, which exercises the module's interrupted-wait path.
        let alarm = SigAction::new(SigHandler::Handler(on_alarm), SaFlags::empty(), SigSet::empty());
        // SAFETY: the handler does nothing, so it is async-signal-safe.
        if let Err(e) = unsafe { signal::sigaction(Signal::SIGALRM, &alarm) } {
            log::warn!("{}: sigaction(SIGALRM): {e}", self.tag);
        }
        while self.shared.stop.load(Relaxed) == 0 {
            self.step();
        }
    }

    fn drop_privileges(&mut self, uid: u32, gid: u32) {
        let gids = [gid as libc::gid_t];
        // SAFETY: plain syscalls with integer arguments and a live one-element group list.
        let r = unsafe {
            Errno::result(libc::setgroups(1, gids.as_ptr()))
                .and_then(|_| Errno::result(libc::setgid(gid)))
                .and_then(|_| Errno::result(libc::setuid(uid)))
        };
        match r {
            Ok(_) => log::debug!("{}: running as uid {uid}", self.tag),
            Err(e) => log::warn!("{}: cannot drop to uid {uid}: {e}; staying privileged", self.tag),
        }
    }

    fn step(&mut self) {
        self.reap_children();
        if self.shared.quiesce.load(Relaxed) != 0 {
            return self.quiet_step();
        }
        let total: u32 = OPS.iter().map(|(_, w)| w).sum();
        let mut x = self.rng.below(u64::from(total)) as u32;
        let op = OPS
            .iter()
            .find(|(_, w)| {
                if x < *w {
                    true
                } else {
                    x -= w;
                    false
                }
            })
            .map_or(Op::Ioctl, |(op, _)| *op);
        if self.files.is_empty() && !matches!(op, Op::Kill | Op::Fork) {
            self.open();
            return;
        }
        match op {
            Op::Ioctl => self.ioctl_valid(),
            Op::IoctlGarbage => self.ioctl_garbage(),
            Op::IoctlBadPointer => self.ioctl_bad_pointer(),
            Op::IoctlUndefined => self.ioctl_undefined(),
            Op::Mmap => self.mmap(),
            Op::Munmap => self.munmap(),
            Op::Mremap => self.mremap(),
            Op::Mprotect => self.mprotect(),
            Op::Touch => self.touch(),
            Op::Open => self.open(),
            Op::Close => self.close(),
            Op::Dup => self.dup(),
            Op::Nonblock => self.toggle_nonblock(),
            Op::Poll => self.poll(),
            Op::Fork => self.fork(),
            Op::Kill => self.kill(),
        }
    }

    fn count<T>(&self, req: Option<usize>, r: &Result<T, Errno>) {
        self.shared.ops.fetch_add(1, Relaxed);
        match r {
            Ok(_) => {
                if let Some(i) = req {
                    self.shared.req_ok[i].fetch_add(1, Relaxed);
                }
            }
            Err(e) => {
                self.shared.count_errno(*e as i32);
                if *e == Errno::EINTR {
                    self.shared.interrupted.fetch_add(1, Relaxed);
                }
                if let Some(i) = req {
                    self.shared.req_err[i].fetch_add(1, Relaxed);
                }
            }
        }
    }

    fn violation(&self, what: &str) {
        self.shared.violation(&format!("{}: {what}", self.tag));
    }

    /// # Safety
    /// `arg` must be 0, an address the kernel refuses, or memory of this process that the kernel
    /// may read and write up to the size `number` encodes (and, for a batch, up to the entries
    /// its count names) without breaking anything this process relies on.
    unsafe fn raw_ioctl(&self, fd: RawFd, req: Option<usize>, number: u64, arg: usize) -> Result<i32, Errno> {
        // SAFETY: the caller's contract.
        let r = Errno::result(unsafe { libc::ioctl(fd, number as libc::Ioctl, arg) });
        self.count(req, &r);
        r
    }

    fn pick_file(&mut self) -> usize {
        self.rng.below(self.files.len() as u64) as usize
    }

    fn pick_request(&mut self) -> usize {
        self.rng.below(self.requests.len() as u64) as usize
    }

    fn is_nonblocking(fd: RawFd) -> bool {
        // SAFETY: `fd` is one of this worker's open files for the duration of the call.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFL).map(|fl| fl & libc::O_NONBLOCK != 0).unwrap_or(true)
    }

    /// Arms a one-shot SIGALRM of a few ms if `fd` blocks, so a blocking wait always ends.
    fn arm_alarm_if_blocking(&mut self, fd: RawFd) -> bool {
        if Self::is_nonblocking(fd) {
            return false;
        }
        let usec = self.rng.range(1_000, 20_000) as libc::suseconds_t;
        let it = libc::itimerval {
            it_interval: libc::timeval { tv_sec: 0, tv_usec: 0 },
            it_value: libc::timeval { tv_sec: 0, tv_usec: usec },
        };
        // SAFETY: valid itimerval; the old value is not wanted.
        unsafe { libc::setitimer(libc::ITIMER_REAL, &it, std::ptr::null_mut()) };
        true
    }

    fn disarm_alarm() {
        let zero = libc::itimerval {
            it_interval: libc::timeval { tv_sec: 0, tv_usec: 0 },
            it_value: libc::timeval { tv_sec: 0, tv_usec: 0 },
        };
        // SAFETY: valid itimerval.
        unsafe { libc::setitimer(libc::ITIMER_REAL, &zero, std::ptr::null_mut()) };
    }

    // --- valid (mostly) ioctls -----------------------------------------------------------------

    fn ioctl_valid(&mut self) {
        let fi = self.pick_file();
        let ri = self.pick_request();
        let req = self.requests[ri];
        let fd = self.files[fi].fd.as_raw_fd();
        match req.shape {
            Shape::None => {
                // START and STOP are common, RESET rarely succeeds (needs a stopped, idle ring).
                // SAFETY: the request carries no argument.
                let _ = unsafe { self.raw_ioctl(fd, Some(ri), req.number, 0) };
            }
            Shape::Info => {
                let mut info = RtpmInfo::default();
                // SAFETY: `info` is a live RtpmInfo, the size the request encodes.
                if unsafe { self.raw_ioctl(fd, Some(ri), req.number, &mut info as *mut _ as usize) }.is_ok() {
                    self.layout = Some(Layout::from_info(&info));
                }
            }
            Shape::Status => {
                let mut st = RtpmStatus::default();
                // SAFETY: `st` is a live RtpmStatus, the size the request encodes.
                if unsafe { self.raw_ioctl(fd, Some(ri), req.number, &mut st as *mut _ as usize) }.is_ok() {
                    if let Some(why) = status_inconsistency(&st) {
                        self.violation(&format!("GET_STATUS snapshot inconsistent: {why}: {st:?}"));
                    }
                }
            }
            Shape::Configure => {
                let cfg = self.valid_config();
                // SAFETY: `cfg` is a live RtpmConfig the kernel only reads.
                if unsafe { self.raw_ioctl(fd, Some(ri), req.number, &cfg as *const _ as usize) }.is_ok() {
                    self.layout = None;
                    for f in &mut self.files {
                        f.reserved.clear();
                        f.popped.clear();
                    }
                }
            }
            Shape::Slot(kind) => self.slot_op(fi, ri, kind, false),
            Shape::Batch(kind) => self.slot_op(fi, ri, kind, true),
            Shape::Opaque => {
                // A request this fuzzer has no model of (a role claim, a reclaim threshold...):
                // mostly zeros and small numbers, which a flags-must-be-zero ABI can accept.
                let size = req.size().min(2 * self.page);
                for w in 0..size.div_ceil(4) {
                    let v = match self.rng.below(10) {
                        0..=4 => 0,
                        5..=7 => self.rng.below(4) as u32,
                        _ => self.rng.next_u32(),
                    };
                    let end = (w * 4 + 4).min(size);
                    self.scratch.rw()[w * 4..end].copy_from_slice(&v.to_ne_bytes()[..end - w * 4]);
                }
                // SAFETY: scratch page A (+B): the kernel reads/writes at most the encoded size,
                // and beyond two pages it hits the guard page.
                let _ = unsafe { self.raw_ioctl(fd, Some(ri), req.number, self.scratch.a()) };
            }
        }
    }

    /// A configuration the module must accept (when stopped and unmapped), within the memory cap.
    fn valid_config(&mut self) -> RtpmConfig {
        let slot_payload =
            if self.rng.chance(1, 4) { self.rng.range(64, 4096) as u32 } else { *self.rng.pick(&PAYLOADS) };
        let stride = u64::from(slot_payload.div_ceil(64) * 64);
        let mut ring_order = self.rng.range(1, 8) as u32;
        while ring_order > 1 && (1u64 << ring_order) * stride > self.params.max_ring_bytes {
            ring_order -= 1;
        }
        let drop_policy = self.rng.below(2) as u32;
        RtpmConfig { ring_order, slot_payload, drop_policy, ..Default::default() }
    }

    fn slot_op(&mut self, fi: usize, ri: usize, kind: SlotKind, batch: bool) {
        let req = self.requests[ri];
        let lay = self.layout;
        let slot_count = lay.map_or(16, |l| l.slot_count.max(1));
        let payload = lay.map_or(64, |l| l.slot_payload.max(1));
        let max = if batch {
            if self.rng.chance(1, 8) {
                RTPM_BATCH_MAX as usize
            } else {
                self.rng.range(1, 32) as usize
            }
        } else {
            1
        };
        // Entries handed in: owned slots of the right list, sometimes the wrong ones.
        let source: Vec<u32> = {
            let f = &self.files[fi];
            match kind {
                SlotKind::Push | SlotKind::Other if self.rng.chance(9, 10) => f.reserved.clone(),
                SlotKind::Release if self.rng.chance(9, 10) => f.popped.clone(),
                SlotKind::Push | SlotKind::Release | SlotKind::Other => {
                    f.popped.iter().chain(&f.reserved).copied().collect()
                }
                SlotKind::Reserve | SlotKind::Pop => Vec::new(),
            }
        };
        let mut refs: Vec<RtpmSlotRef> = match kind {
            SlotKind::Reserve | SlotKind::Pop => vec![RtpmSlotRef::default(); max],
            _ => {
                let mut v: Vec<RtpmSlotRef> = source
                    .iter()
                    .take(max)
                    .map(|&index| RtpmSlotRef {
                        index,
                        len: self.rng.range(1, u64::from(payload)) as u32,
                        ..Default::default()
                    })
                    .collect();
                if v.is_empty() {
                    // Nothing owned: the one-call PUSH path on the next slot, or a stray index.
                    let index = if kind == SlotKind::Push { self.next_reserve_index(fi) } else { None }
                        .unwrap_or_else(|| self.rng.below(u64::from(slot_count)) as u32);
                    v.push(RtpmSlotRef {
                        index,
                        len: self.rng.range(1, u64::from(payload)) as u32,
                        ..Default::default()
                    });
                }
                v
            }
        };
        // Corrupt one entry now and then: the module must refuse it and count it.
        if self.rng.chance(1, 7) {
            let i = self.rng.below(refs.len() as u64) as usize;
            match self.rng.below(4) {
                0 => refs[i].index = self.rng.interesting_u32(slot_count - 1),
                1 => refs[i].len = self.rng.interesting_u32(payload),
                2 => refs[i].arrival_ns = self.rng.next_u64(),
                _ => {
                    let j = self.rng.below(refs.len() as u64) as usize;
                    refs[i].index = refs[j].index;
                }
            }
        }
        if kind == SlotKind::Push {
            for r in &refs {
                self.write_payload(r.index, r.len);
            }
        }
        let fd = self.files[fi].fd.as_raw_fd();
        let may_block = matches!(kind, SlotKind::Reserve | SlotKind::Pop | SlotKind::Other);
        let alarmed = may_block && self.arm_alarm_if_blocking(fd);
        let done = if batch {
            let mut b = RtpmBatch { slots: refs.as_mut_ptr() as u64, count: refs.len() as u32, ..Default::default() };
            if self.rng.chance(1, 30) {
                b.flags = self.rng.interesting_u32(1);
            }
            // SAFETY: `b` is a live RtpmBatch whose `slots` points to `refs`, `b.count` entries
            // long; the kernel reads or writes at most that many.
            let r = unsafe { self.raw_ioctl(fd, Some(ri), req.number, &mut b as *mut _ as usize) };
            r.map(|_| (b.count as usize).min(refs.len()))
        } else {
            // SAFETY: `refs[0]` is a live RtpmSlotRef, the size the request encodes.
            let r = unsafe { self.raw_ioctl(fd, Some(ri), req.number, refs.as_mut_ptr() as usize) };
            r.map(|_| 1)
        };
        if alarmed {
            Self::disarm_alarm();
        }
        let Ok(done) = done else { return };
        let f = &mut self.files[fi];
        for r in &refs[..done] {
            match kind {
                SlotKind::Reserve => f.reserved.push(r.index),
                SlotKind::Pop => f.popped.push(r.index),
                SlotKind::Push => f.reserved.retain(|&i| i != r.index),
                SlotKind::Release => f.popped.retain(|&i| i != r.index),
                SlotKind::Other => {
                    f.reserved.retain(|&i| i != r.index);
                    f.popped.retain(|&i| i != r.index);
                }
            }
        }
    }

    /// The slot a one-call PUSH would reserve implicitly (the ring's reserve index).
    fn next_reserve_index(&mut self, fi: usize) -> Option<u32> {
        let ri = self.requests.iter().position(|r| r.shape == Shape::Status)?;
        let number = self.requests[ri].number;
        let mut st = RtpmStatus::default();
        let fd = self.files[fi].fd.as_raw_fd();
        // SAFETY: `st` is a live RtpmStatus, the size the request encodes.
        unsafe { self.raw_ioctl(fd, Some(ri), number, &mut st as *mut _ as usize) }.ok()?;
        let count = st.free + st.producing + st.ready + st.consuming;
        count.is_power_of_two().then(|| st.reserve & (count - 1))
    }

    /// Writes an RTP-like packet (or noise) into slot `index`'s payload if a writable mapping
    /// of it exists, so that pushes feed the module's RTP parser real and broken headers.
    fn write_payload(&mut self, index: u32, len: u32) {
        let Some(lay) = self.layout else { return };
        let start = lay.payload_offset + u64::from(index) * u64::from(lay.slot_stride);
        let len = u64::from(len.min(lay.slot_payload).min(64));
        let Some(m) = self
            .maps
            .iter()
            .find(|m| m.prot & libc::PROT_WRITE != 0 && start >= m.offset && start + len <= m.offset + m.len as u64)
            .copied()
        else {
            return;
        };
        let mut pkt = [0u8; 64];
        self.rng.fill(&mut pkt);
        if self.rng.chance(1, 2) {
            pkt[0] = 0x80; // RTP version 2, no padding, extension or CSRCs
        }
        let dst = m.addr + (start - m.offset) as usize;
        for (i, b) in pkt[..len as usize].iter().enumerate() {
            // SAFETY: inside a live shared writable mapping of this worker (checked above).
            unsafe { std::ptr::write_volatile((dst + i) as *mut u8, *b) };
        }
    }
}

impl Worker {
    // --- quiet phase ---------------------------------------------------------------------------

    /// During a quiet phase: give up every mapping and owned slot (close and reopen), then try
    /// what needs an idle channel: STOP, CONFIGURE (the ring is swapped while other workers race
    /// to map and use it), sometimes RESET, START.
    fn quiet_step(&mut self) {
        while let Some(m) = self.maps.pop() {
            // SAFETY: a mapping of this process; no reference into it is held.
            let r = Errno::result(unsafe { libc::munmap(m.addr as *mut libc::c_void, m.len) });
            self.count(None, &r);
        }
        if self.files.iter().any(|f| !f.reserved.is_empty() || !f.popped.is_empty()) || self.files.len() > 1 {
            self.files.clear();
        }
        if self.files.is_empty() {
            return self.open();
        }
        let fd = self.files[0].fd.as_raw_fd();
        let find = |reqs: &[Request], shape: Shape, part: &str| {
            reqs.iter().position(|r| r.shape == shape && r.name.ends_with(part))
        };
        let stop = find(&self.requests, Shape::None, "STOP");
        let start = find(&self.requests, Shape::None, "START");
        let reset = find(&self.requests, Shape::None, "RESET");
        let configure = self.requests.iter().position(|r| r.shape == Shape::Configure);
        if let Some(i) = stop {
            // SAFETY: the request carries no argument.
            let _ = unsafe { self.raw_ioctl(fd, Some(i), self.requests[i].number, 0) };
        }
        if let Some(i) = configure {
            let cfg = self.valid_config();
            // SAFETY: `cfg` is a live RtpmConfig the kernel only reads.
            if unsafe { self.raw_ioctl(fd, Some(i), self.requests[i].number, &cfg as *const _ as usize) }.is_ok() {
                self.shared.reconfigured.fetch_add(1, Relaxed);
                self.layout = None;
            }
        }
        if let (Some(i), true) = (reset, self.rng.chance(1, 4)) {
            // SAFETY: the request carries no argument.
            let _ = unsafe { self.raw_ioctl(fd, Some(i), self.requests[i].number, 0) };
        }
        if let Some(i) = start {
            // SAFETY: the request carries no argument.
            let _ = unsafe { self.raw_ioctl(fd, Some(i), self.requests[i].number, 0) };
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }

    // --- hostile ioctls --------------------------------------------------------------------------

    /// Addresses the kernel must refuse (or, for R, may only read zeros from).
    fn bad_pointer(&mut self, size: usize) -> usize {
        let header_map = self.maps.iter().find(|m| m.header).map(|m| m.addr);
        let candidates = [
            0,
            1,
            self.page - 1,
            // Kernel space on both x86_64 and arm64.
            0xffff_8000_0000_0000,
            // Above any user address space (48-bit and 52-bit VA), non-canonical on x86_64.
            1 << 56,
            self.scratch.guard(),
            self.scratch.read_only(),
            // Straddling into the guard page.
            self.scratch.guard() - size.clamp(1, self.page) / 2,
            header_map.unwrap_or(self.scratch.read_only()),
            usize::MAX - 7,
        ];
        *self.rng.pick(&candidates)
    }

    /// Random bytes for every request: the module must refuse what it cannot use.
    fn ioctl_garbage(&mut self) {
        let fi = self.pick_file();
        let ri = self.pick_request();
        let req = self.requests[ri];
        let size = req.size();
        let mut rng = self.rng.clone();
        rng.fill(self.scratch.rw());
        self.rng = rng;
        let slot_count = self.layout.map_or(16, |l| l.slot_count);
        // Sprinkle plausible values over the u32 fields so that checks past the first are reached.
        let words = (size / 4).min(2 * self.page / 4);
        for w in 0..words {
            if self.rng.chance(1, 2) {
                let v = self.rng.interesting_u32(slot_count);
                self.scratch.rw()[w * 4..w * 4 + 4].copy_from_slice(&v.to_ne_bytes());
            }
        }
        let arg = match req.shape {
            Shape::Batch(_) => {
                // A header in A pointing at slot entries in B (overrunning into the guard page
                // for large counts), or at a bad address.
                let slots = if self.rng.chance(2, 3) {
                    (self.scratch.b() + 16 * self.rng.below((self.page / 16) as u64) as usize) as u64
                } else {
                    self.bad_pointer(16) as u64
                };
                let count = self.rng.interesting_u32(RTPM_BATCH_MAX);
                let mut b = RtpmBatch { slots, count, ..Default::default() };
                if self.rng.chance(1, 4) {
                    b.flags = self.rng.interesting_u32(1);
                }
                // SAFETY: A is writable and page aligned, RtpmBatch fits in it.
                unsafe { std::ptr::write(self.scratch.a() as *mut RtpmBatch, b) };
                self.scratch.a()
            }
            Shape::Configure => {
                // Garbage must not turn into a valid configuration beyond the memory cap: ABI 1.0
                // would let it take the guest's memory (its own ceiling is tested elsewhere).
                // SAFETY: A is writable and page aligned, RtpmConfig fits in it.
                let cfg = unsafe { &mut *(self.scratch.a() as *mut RtpmConfig) };
                let order = cfg.ring_order.min(31);
                if (1u64 << order) * u64::from(cfg.slot_payload) > self.params.max_ring_bytes {
                    cfg.ring_order = u32::MAX;
                }
                self.scratch.a()
            }
            // Half in B, half in the guard page.
            _ if self.rng.chance(1, 4) => self.scratch.guard() - size.clamp(2, self.page) / 2,
            _ => self.scratch.a(),
        };
        let fd = self.files[fi].fd.as_raw_fd();
        let alarmed = self.arm_alarm_if_blocking(fd);
        // SAFETY: `arg` is in the scratch pages (the kernel may write there up to the encoded
        // size, then meets a guard page); a batch's entries are in B, followed by the guard page.
        let _ = unsafe { self.raw_ioctl(fd, Some(ri), req.number, arg) };
        if alarmed {
            Self::disarm_alarm();
        }
    }

    fn ioctl_bad_pointer(&mut self) {
        let fi = self.pick_file();
        let ri = self.pick_request();
        let req = self.requests[ri];
        let arg = if req.size() == 0 { self.rng.next_u64() as usize } else { self.bad_pointer(req.size()) };
        let fd = self.files[fi].fd.as_raw_fd();
        let alarmed = self.arm_alarm_if_blocking(fd);
        // SAFETY: `arg` is an address the kernel refuses, the read-only scratch page (which the
        // kernel cannot write), the device's read-only header mapping, or (for a request without
        // an argument) a value the kernel ignores.
        let _ = unsafe { self.raw_ioctl(fd, Some(ri), req.number, arg) };
        if alarmed {
            Self::disarm_alarm();
        }
    }

    /// Request numbers the ABI does not define must be refused, whatever the argument.
    fn ioctl_undefined(&mut self) {
        let fi = self.pick_file();
        let ri = self.pick_request();
        let base = self.requests[ri].number;
        let (variant, noise) = (self.rng.next_u64(), self.rng.next_u64());
        let Some(number) = ioc::undefined_request(&self.requests, base, variant, noise) else { return };
        let fd = self.files[fi].fd.as_raw_fd();
        // SAFETY: scratch pages A and B; a size above two pages meets the guard page.
        let r = unsafe { self.raw_ioctl(fd, None, number, self.scratch.a()) };
        // Other type bytes may belong to the VFS, which answers some itself (FIGETBSZ is
        // _IO(0, 2)): only a number with the module's own type byte must reach its ENOTTY.
        if let (Ok(r), true) = (r, ioc::same_type(base, number)) {
            self.violation(&format!(
                "undefined request {number:#x} accepted (returned {r}); rtpmgr-abi does not define it"
            ));
        }
    }

    // --- mappings --------------------------------------------------------------------------------

    fn mmap(&mut self) {
        if self.maps.len() >= MAX_MAPS {
            return self.munmap();
        }
        let fi = self.pick_file();
        let page = self.page as u64;
        let lay = self.layout.unwrap_or(Layout {
            slot_count: 16,
            slot_payload: 64,
            slot_stride: 64,
            meta_size: page,
            payload_offset: page,
            payload_size: page,
        });
        let total_pages = (lay.payload_offset + lay.payload_size) / page;
        let offset = match self.rng.below(7) {
            0 | 1 => 0,
            2 | 3 => lay.payload_offset,
            4 => lay.payload_offset + page * self.rng.below((lay.payload_size / page).max(1)),
            5 => page * self.rng.below(total_pages + 4),
            _ => *self.rng.pick(&[1, page / 2, 1 << 40, !(page - 1)]),
        };
        let len = match self.rng.below(6) {
            0 => page,
            1 => lay.meta_size,
            2 => lay.payload_size,
            3 => page * self.rng.range(1, 16),
            4 => lay.payload_size + page,
            _ => *self.rng.pick(&[0, 100, page + 1]),
        } as usize;
        let prot = *self.rng.pick(&[
            libc::PROT_READ,
            libc::PROT_READ,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::PROT_WRITE,
            libc::PROT_NONE,
            libc::PROT_READ | libc::PROT_EXEC,
        ]);
        let flags = if self.rng.chance(6, 7) { libc::MAP_SHARED } else { libc::MAP_PRIVATE };
        let fd = self.files[fi].fd.as_raw_fd();
        // SAFETY: a new mapping at an address the kernel picks (no MAP_FIXED): it aliases nothing.
        let addr = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, flags, fd, offset as libc::off_t) };
        let r = if addr == libc::MAP_FAILED { Err(Errno::last()) } else { Ok(()) };
        self.count(None, &r);
        if r.is_err() {
            return;
        }
        self.shared.maps.fetch_add(1, Relaxed);
        let header = offset == 0;
        if header && prot & libc::PROT_WRITE != 0 {
            self.violation(&format!("mmap of the read-only header page with PROT_WRITE succeeded (flags {flags:#x})"));
        }
        self.maps.push(Map { addr: addr as usize, len: len.div_ceil(self.page) * self.page, prot, offset, header });
    }

    fn pick_map(&mut self) -> Option<usize> {
        (!self.maps.is_empty()).then(|| self.rng.below(self.maps.len() as u64) as usize)
    }

    /// Unmaps a whole mapping, its head, its tail or a hole in its middle (splitting the VMA:
    /// the module's mapping count must follow).
    fn munmap(&mut self) {
        let Some(i) = self.pick_map() else { return };
        let m = self.maps[i];
        let pages = m.len / self.page;
        let (start, n) = match self.rng.below(4) {
            0 if pages >= 2 => (0, self.rng.range(1, pages as u64 - 1) as usize),
            1 if pages >= 2 => (pages - 1, 1),
            2 if pages >= 3 => (1, 1),
            _ => (0, pages),
        };
        // SAFETY: pages of a mapping this process made; nothing holds a reference into them.
        let r =
            Errno::result(unsafe { libc::munmap((m.addr + start * self.page) as *mut libc::c_void, n * self.page) });
        self.count(None, &r);
        if r.is_err() {
            return;
        }
        self.maps.remove(i);
        let piece = |first: usize, count: usize| Map {
            addr: m.addr + first * self.page,
            len: count * self.page,
            offset: m.offset + (first * self.page) as u64,
            header: m.header && first == 0,
            ..m
        };
        if start > 0 {
            self.maps.push(piece(0, start));
        }
        if start + n < pages {
            self.maps.push(piece(start + n, pages - start - n));
        }
    }

    /// Shrinks a mapping in place, or tries to grow it: device mappings cannot grow.
    fn mremap(&mut self) {
        let Some(i) = self.pick_map() else { return };
        let m = self.maps[i];
        let grow = self.rng.chance(1, 3) || m.len < 2 * self.page;
        let new_len = if grow { m.len + self.page } else { m.len - self.page };
        // SAFETY: a mapping of this process, resized in place (no MREMAP_MAYMOVE).
        let addr = unsafe { libc::mremap(m.addr as *mut libc::c_void, m.len, new_len, 0) };
        let r = if addr == libc::MAP_FAILED { Err(Errno::last()) } else { Ok(()) };
        self.count(None, &r);
        if r.is_ok() {
            if grow {
                self.violation(&format!("mremap grew a device mapping from {} to {new_len} bytes", m.len));
            }
            self.maps[i].len = new_len;
        }
    }

    /// Changes a mapping's protection; the header page must never become writable.
    fn mprotect(&mut self) {
        let Some(i) = self.pick_map() else { return };
        let m = self.maps[i];
        let prot =
            *self.rng.pick(&[libc::PROT_READ, libc::PROT_READ | libc::PROT_WRITE, libc::PROT_NONE, libc::PROT_EXEC]);
        // SAFETY: a whole mapping of this process; no reference into it is held.
        let r = Errno::result(unsafe { libc::mprotect(m.addr as *mut libc::c_void, m.len, prot) });
        self.count(None, &r);
        if r.is_ok() {
            if m.header && prot & libc::PROT_WRITE != 0 {
                self.violation("mprotect(PROT_WRITE) of the read-only header mapping succeeded");
            }
            self.maps[i].prot = prot;
        }
    }

    /// Reads or writes a mapped page; the header page must carry the ring magic.
    fn touch(&mut self) {
        let Some(i) = self.pick_map() else { return };
        let m = self.maps[i];
        let off = self.rng.below((m.len / 8) as u64) as usize * 8;
        self.shared.ops.fetch_add(1, Relaxed);
        if m.prot & libc::PROT_READ != 0 {
            // SAFETY: inside a live readable mapping of this process, 8-byte aligned.
            let _ = unsafe { std::ptr::read_volatile((m.addr + off) as *const u64) };
            if m.header {
                // SAFETY: the header page is mapped readable at `m.addr` (offset 0).
                let magic = unsafe { std::ptr::read_volatile(m.addr as *const u32) };
                if magic != RTPM_MAGIC {
                    self.violation(&format!("header page magic {magic:#x} while mapped"));
                }
            }
        }
        if m.prot & libc::PROT_WRITE != 0 {
            // SAFETY: inside a live writable (payload) mapping of this process, 8-byte aligned.
            unsafe { std::ptr::write_volatile((m.addr + off) as *mut u64, self.rng.next_u64()) };
        }
    }

    // --- files -----------------------------------------------------------------------------------

    fn open(&mut self) {
        if self.files.len() >= MAX_FILES {
            return self.close();
        }
        let mut o = std::fs::OpenOptions::new();
        match self.rng.below(10) {
            0 | 1 => o.read(true),
            2 => o.write(true),
            _ => o.read(true).write(true),
        };
        let mut flags = 0;
        if self.rng.chance(2, 3) {
            flags |= libc::O_NONBLOCK;
        }
        if self.rng.chance(1, 2) {
            flags |= libc::O_CLOEXEC;
        }
        o.custom_flags(flags);
        let r = o.open(&self.params.device).map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)));
        self.count(None, &r);
        if let Ok(f) = r {
            self.files.push(DevFile { fd: f.into(), reserved: Vec::new(), popped: Vec::new() });
        }
    }

    /// Closes a file; the module reclaims its slots on the last close (mappings and forked
    /// children may keep the open file alive).
    fn close(&mut self) {
        if !self.files.is_empty() {
            let i = self.pick_file();
            drop(self.files.remove(i));
            self.shared.ops.fetch_add(1, Relaxed);
        }
    }

    fn dup(&mut self) {
        if self.files.len() >= MAX_FILES {
            return;
        }
        let i = self.pick_file();
        let r = self.files[i].fd.try_clone().map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)));
        self.count(None, &r);
        if let Ok(fd) = r {
            self.files.push(DevFile { fd, reserved: Vec::new(), popped: Vec::new() });
        }
    }

    fn toggle_nonblock(&mut self) {
        let i = self.pick_file();
        let fd = self.files[i].fd.as_fd();
        let r = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFL).and_then(|fl| {
            let fl = nix::fcntl::OFlag::from_bits_truncate(fl ^ libc::O_NONBLOCK);
            nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETFL(fl))
        });
        self.count(None, &r);
    }

    fn poll(&mut self) {
        let i = self.pick_file();
        let timeout = self.rng.below(4) as u8;
        let r = {
            let mut fds = [nix::poll::PollFd::new(
                self.files[i].fd.as_fd(),
                nix::poll::PollFlags::POLLIN | nix::poll::PollFlags::POLLOUT,
            )];
            nix::poll::poll(&mut fds, timeout)
        };
        self.count(None, &r);
    }

    // --- processes -------------------------------------------------------------------------------

    /// Forks a child that inherits the files (sharing their slot ownership) and mappings, runs
    /// a few hundred ops and exits, or dies with its parent (PR_SET_PDEATHSIG).
    fn fork(&mut self) {
        if self.depth > 0 || self.children >= MAX_CHILDREN {
            return;
        }
        let parent = nix::unistd::getpid();
        let child_seed = mix(self.rng.next_u64());
        // SAFETY: workers are single-threaded, so the child may run any code.
        match unsafe { nix::unistd::fork() } {
            Ok(ForkResult::Child) => {
                let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    // SAFETY: prctl with an integer argument.
                    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
                    if nix::unistd::getppid() != parent {
                        return;
                    }
                    self.depth = 1;
                    self.children = 0;
                    self.rng = Rng::new(child_seed);
                    self.tag = format!("{} child (seed {child_seed:#x})", self.tag);
                    let steps = self.rng.range(20, 300);
                    for _ in 0..steps {
                        // A child leaves a quiet phase at once: it holds its parent's mappings.
                        if self.shared.stop.load(Relaxed) != 0 || self.shared.quiesce.load(Relaxed) != 0 {
                            break;
                        }
                        self.step();
                    }
                }))
                .map_or(101, |_| 0);
                // SAFETY: leaves the child without running the parent's destructors.
                unsafe { libc::_exit(code) }
            }
            Ok(ForkResult::Parent { .. }) => {
                self.children += 1;
                self.shared.forks.fetch_add(1, Relaxed);
                self.shared.ops.fetch_add(1, Relaxed);
            }
            Err(e) => self.count(None, &Err::<(), _>(e)),
        }
    }

    fn reap_children(&mut self) {
        while self.children > 0 {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => break,
                Ok(WaitStatus::Exited(_, 0)) | Ok(WaitStatus::Signaled(_, Signal::SIGKILL, _)) => self.children -= 1,
                Ok(WaitStatus::Exited(pid, code)) => {
                    self.children -= 1;
                    self.violation(&format!("forked child {pid} exited with {code}"));
                }
                Ok(WaitStatus::Signaled(pid, sig, _)) => {
                    self.children -= 1;
                    self.violation(&format!("forked child {pid} died of {sig}"));
                }
                Ok(_) => {}
                Err(_) => {
                    self.children = 0;
                    break;
                }
            }
        }
    }

    /// `kill -9` of a random worker (possibly this one): everything it held must be reclaimed.
    fn kill(&mut self) {
        let live: Vec<i32> = self.shared.pids.iter().map(|p| p.load(Relaxed)).filter(|&p| p > 0).collect();
        if let Some(&pid) = (!live.is_empty()).then(|| self.rng.pick(&live)) {
            self.shared.kills.fetch_add(1, Relaxed);
            self.shared.ops.fetch_add(1, Relaxed);
            let _ = signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

/// Why a GET_STATUS snapshot (taken under the channel lock) cannot be right, if it cannot.
pub fn status_inconsistency(st: &RtpmStatus) -> Option<String> {
    let total = u64::from(st.free) + u64::from(st.producing) + u64::from(st.ready) + u64::from(st.consuming);
    if !total.is_power_of_two() || !(2..=1 << rtpmgr_abi::RTPM_RING_ORDER_MAX).contains(&total) {
        return Some(format!("free+producing+ready+consuming = {total}, not a ring size"));
    }
    let d = |a: u32, b: u32| u64::from(a.wrapping_sub(b));
    let span = d(st.reserve, st.release);
    let parts = d(st.consumer, st.release) + d(st.producer, st.consumer) + d(st.reserve, st.producer);
    if parts != span || span > total {
        return Some(format!(
            "indices out of order (release {} <= consumer {} <= producer {} <= reserve {}, span <= {total})",
            st.release, st.consumer, st.producer, st.reserve
        ));
    }
    if st.state > rtpmgr_abi::RTPM_STATE_RUNNING {
        return Some(format!("unknown state {}", st.state));
    }
    None
}

//! Shared-memory backend: the kernel module's ring, rebuilt in a file under `/dev/shm` so that
//! every tool runs on a host without the module, with the same semantics and errnos.
//!
//! # File layout
//!
//! ```text
//! 0            control area (ctl_size bytes, page aligned): what the kernel keeps privately
//!                CtlHead   magic, version, futex words (readable, writable), config generation
//!                lock      a process-shared *robust* pthread mutex: a holder killed with -9 does
//!                          not deadlock the ring, the next locker gets EOWNERDEAD and goes on
//!                Locked    state, config, stats, RTP tracker, open-handle table, slot states
//! ctl_size     the ring exactly as the kernel maps it ("mmap offset 0"): header page,
//!              descriptor table, then the payload region at ctl_size + payload_offset
//! ```
//!
//! # The kernel's roles, in user space
//!
//! - An *open file* is an entry of the handle table (pid, process start time, generation).
//!   Slots record their owner's entry; only that entry may push or release them (`EPERM`).
//! - *Closing* a handle returns its owned slots to FREE, counted in `reclaimed`. A process that
//!   dies without closing is detected with its pid (gone, a zombie, or a different start time,
//!   i.e. a reused pid) when a channel is opened and when an operation finds the ring full or
//!   empty (at most every [`DEAD_CHECK_NS`]), and is reclaimed the same way.
//! - Index words in the header page are stored with release semantics under the lock, so a
//!   reader of the header sees what a reader of the kernel's page would.
//! - Waits: the futex words `readable`/`writable` are bumped after every change that can make a
//!   slot poppable/reservable; waiters re-check the ring between futex waits (see [`ShmDev::wait`]).

use crate::error::{Context, Error, Result};
use crate::layout::{header_bytes, page_size, RingLayout, IDX_CONSUMER, IDX_PRODUCER, IDX_RELEASE, IDX_RESERVE};
use crate::rtp::{self, SeqTracker};
use crate::sys::{futex_wait, futex_wake_all, monotonic_ns, Mmap};
use crate::Dir;
use nix::errno::Errno;
use rtpmgr_abi::ioctl::BatchOp;
use rtpmgr_abi::*;
use std::cell::UnsafeCell;
use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const CTL_MAGIC: u64 = u64::from_le_bytes(*b"RTPMSHM1");
/// 2: handle entries record their PID namespace. 3: roles (ABI 2.0 CLAIM) and the larger stats.
const CTL_VERSION: u32 = 3;
/// Open handles (open files) one shm ring can have at once.
pub(crate) const MAX_HANDLES: usize = 64;
const MAX_SLOTS: usize = 1 << RTPM_RING_ORDER_MAX;
/// Minimum time between two scans for dead processes on a full or empty ring.
pub(crate) const DEAD_CHECK_NS: u64 = 100_000_000;
/// Longest single futex sleep: waiters re-check (and reclaim dead peers) at least this often.
const WAIT_SLICE: Duration = Duration::from_millis(250);

const S_FREE: u8 = 0;
const S_PRODUCING: u8 = 1;
const S_READY: u8 = 2;
const S_CONSUMING: u8 = 3;

/// Lock-free part of the control area: identity and futex words.
#[repr(C)]
struct CtlHead {
    /// CTL_MAGIC, stored last when a file is created.
    magic: AtomicU64,
    /// Atomic (like every field others can write while we hold a `&Shared`), written once at
    /// creation and read once at open.
    version: AtomicU32,
    ctl_size: AtomicU32,
    /// Bumped by CONFIGURE: every cached mapping of the ring region is stale.
    config_gen: AtomicU32,
    /// Futex: bumped when slots may have become poppable.
    readable: AtomicU32,
    /// Futex: bumped when slots may have become reservable.
    writable: AtomicU32,
    /// Threads inside ShmDev::wait; wakers skip the futex syscall when zero.
    waiters: AtomicU32,
    _pad: UnsafeCell<[u8; 96]>,
}

#[repr(C, align(64))]
struct LockArea {
    m: UnsafeCell<libc::pthread_mutex_t>,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct HandleEnt {
    in_use: u32,
    pid: i32,
    /// /proc/<pid>/stat start time: tells a reused pid from the original process.
    start_time: u64,
    gen: u32,
    mappings: u32,
    /// Inode of the opener's PID namespace (`/proc/self/ns/pid`); its pid means nothing in
    /// another namespace, so only an opener of ours can be found dead (0: unknown).
    pid_ns: u64,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct SlotCtl {
    state: u8,
    _pad: u8,
    /// Handle index + 1 of the owner; 0: nobody.
    owner: u16,
}

/// Everything the kernel would keep under its channel lock.
#[repr(C)]
struct Locked {
    state: u32,
    channel: u32,
    config: RtpmConfig,
    next_gen: u32,
    /// Handle (`me`) holding the producer role (ABI 2.0 CLAIM), 0 if none.
    producer_owner: u16,
    /// Handle holding the consumer role, 0 if none.
    consumer_owner: u16,
    /// Running-to-stopped transitions, as the module's `stop_seq`.
    stop_seq: u32,
    _pad: u32,
    last_dead_check_ns: u64,
    stats: RtpmStats,
    seq: SeqTracker,
    handles: [HandleEnt; MAX_HANDLES],
    slots: [SlotCtl; MAX_SLOTS],
}

#[repr(C)]
struct Shared {
    head: CtlHead,
    lock: LockArea,
    locked: UnsafeCell<Locked>,
}

fn ctl_size() -> usize {
    std::mem::size_of::<Shared>().div_ceil(page_size()) * page_size()
}

/// A cached read-write mapping of the ring region (header, descriptors, payloads).
struct RingCache {
    gen: u32,
    /// Channel and configuration the mapping and layout were built for: a configuration in the
    /// control area that differs (a CONFIGURE killed midway, a hostile writer) makes it stale
    /// even without a generation bump.
    built_for: (u32, RtpmConfig),
    map: Mmap,
    layout: RingLayout,
}

/// One open handle of a shm ring (the kernel's `struct file`).
pub(crate) struct ShmDev {
    path: PathBuf,
    file: File,
    ctl: Mmap,
    ctl_size: usize,
    /// Handle index + 1 (the owner id stored in slots).
    me: u16,
    /// `Locked::stop_seq` when this handle was opened: a later STOP hangs it up (ABI 2.0).
    stop_seq: u32,
    /// Process-local state, only touched while the shared lock is held.
    local: Mutex<Local>,
}

struct Local {
    ring: Option<RingCache>,
}

impl std::fmt::Debug for ShmDev {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShmDev").field("path", &self.path).field("handle", &self.me).finish()
    }
}

/// The shared lock, held; unlocks on drop.
struct Guard<'a> {
    dev: &'a ShmDev,
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        // SAFETY: this guard exists only while this thread holds the mutex (see ShmDev::lock).
        unsafe { libc::pthread_mutex_unlock(self.dev.shared().lock.m.get()) };
    }
}

impl Guard<'_> {
    fn locked(&mut self) -> &mut Locked {
        // SAFETY: the process-shared mutex is held by this thread for the guard's lifetime, so no
        // other thread or process touches `Locked`; &mut self makes the borrow unique in-process.
        unsafe { &mut *self.dev.shared().locked.get() }
    }
}

/// Wakeups to send once the lock is dropped.
#[derive(Default)]
struct Wake {
    readable: bool,
    writable: bool,
}

impl ShmDev {
    /// Opens (creating it with `create_cfg` if absent) the ring file at `path`.
    pub(crate) fn open(path: &Path, channel: u32, create_cfg: &RtpmConfig) -> Result<ShmDev> {
        let ctx = || format!("open shm ring {}", path.display());
        let file = match open_rw(path) {
            Ok(f) => f,
            Err(Errno::ENOENT) => create(path, channel, create_cfg).context(ctx)?,
            Err(Errno::ELOOP) => {
                return Err(Error::sys(format!("{}: a symbolic link, refused", ctx()), Errno::ELOOP));
            }
            Err(e) => return Err(Error::sys(ctx(), e)),
        };
        check_owner(path, &file)?;
        let len = file.metadata().context(ctx)?.len();
        let expect = ctl_size();
        if len < expect as u64 {
            return Err(Error::BadHeader {
                context: ctx(),
                reason: format!("file is {len} bytes, smaller than the control area ({expect})"),
            });
        }
        let ctl = Mmap::map(file.as_fd(), expect, 0, true).context(ctx)?;
        let mut dev = ShmDev {
            path: path.to_path_buf(),
            file,
            ctl,
            ctl_size: expect,
            me: 0,
            stop_seq: 0,
            local: Mutex::new(Local { ring: None }),
        };
        let h = &dev.shared().head;
        // Relaxed after the Acquire of magic, which create() stores last with Release.
        if h.magic.load(Ordering::Acquire) != CTL_MAGIC
            || h.version.load(Ordering::Relaxed) != CTL_VERSION
            || h.ctl_size.load(Ordering::Relaxed) as usize != expect
        {
            return Err(Error::BadHeader {
                context: ctx(),
                reason: "not an rtpmgr shm ring of this version (remove the file to recreate it)".into(),
            });
        }
        // A corrupt or hostile file must fail here with a reason, not panic or fault later.
        let cfg = dev.lock().context(ctx)?.locked().config;
        let need = ring_file_len(dev.ctl_size, dev.lock().context(ctx)?.locked().channel, &cfg)
            .map_err(|reason| Error::BadHeader { context: ctx(), reason })?;
        if len < need {
            return Err(Error::BadHeader {
                context: ctx(),
                reason: format!("file is {len} bytes, the ring it describes needs {need} (truncated?)"),
            });
        }
        (dev.me, dev.stop_seq) = dev.register().context(ctx)?;
        Ok(dev)
    }

    /// Takes the handle's advisory claim on the ring file (see [`crate::Claim`]).
    pub(crate) fn claim(&self, claim: crate::Claim) -> Result<(), Errno> {
        crate::sys::claim(&self.file, claim)
    }

    fn shared(&self) -> &Shared {
        // SAFETY: `ctl` maps ctl_size() >= size_of::<Shared>() bytes, page aligned, initialised
        // by create(). Other processes write this memory while the reference lives, so every
        // field of Shared is an atomic or an UnsafeCell (no byte of it is assumed immutable):
        // the head is only accessed atomically, the mutex through libc, and `locked` only under
        // the mutex (Guard::locked). The padding is never accessed.
        unsafe { &*(self.ctl.ptr() as *const Shared) }
    }

    fn lock(&self) -> Result<Guard<'_>, Errno> {
        let m = self.shared().lock.m.get();
        // SAFETY: `m` is the robust, process-shared mutex initialised in create().
        let r = unsafe { libc::pthread_mutex_lock(m) };
        match r {
            0 => {}
            libc::EOWNERDEAD => {
                // The previous holder died inside a critical section. Every critical section
                // leaves the slot table consistent after each single-slot step, and counts
                // (status) are recomputed from it, so marking the mutex consistent is enough.
                log::warn!("{}: lock holder died; recovering the ring lock", self.path.display());
                // SAFETY: we own the mutex in the EOWNERDEAD state, as consistent() requires.
                unsafe { libc::pthread_mutex_consistent(m) };
            }
            e => return Err(Errno::from_raw(e)),
        }
        Ok(Guard { dev: self })
    }

    fn register(&self) -> Result<(u16, u32), Errno> {
        let mut g = self.lock()?;
        let now = monotonic_ns();
        let mut wake = Wake::default();
        let mut local = self.local.lock().unwrap_or_else(|p| p.into_inner());
        self.reclaim_dead(&mut g, &mut local, &mut wake)?;
        drop(local);
        let l = g.locked();
        let start_time = proc_start_time(std::process::id() as i32).unwrap_or(0);
        let Some(i) = l.handles.iter().position(|h| h.in_use == 0) else {
            return Err(Errno::EMFILE);
        };
        l.next_gen = l.next_gen.wrapping_add(1);
        l.handles[i] = HandleEnt {
            in_use: 1,
            pid: std::process::id() as i32,
            start_time,
            gen: l.next_gen,
            mappings: 0,
            pid_ns: pid_namespace(),
        };
        l.last_dead_check_ns = now;
        let stop_seq = l.stop_seq;
        drop(g);
        self.wake(wake);
        Ok((i as u16 + 1, stop_seq))
    }

    /// Maps the cached ring view for the current configuration, remapping after a CONFIGURE.
    fn view<'l>(&self, g: &mut Guard<'_>, local: &'l mut Local) -> Result<&'l RingCache, Errno> {
        let gen = self.shared().head.config_gen.load(Ordering::Acquire);
        let (channel, cfg) = (g.locked().channel, g.locked().config);
        if local.ring.as_ref().is_none_or(|c| c.gen != gen || c.built_for != (channel, cfg)) {
            local.ring = None;
            let corrupt = |reason: String| {
                log::error!("{}: corrupt shm ring: {reason}", self.path.display());
                Errno::EPROTO
            };
            let need = ring_file_len(self.ctl_size, channel, &cfg).map_err(corrupt)?;
            let have = self.file.metadata().map_err(|e| e.raw_os_error().map_or(Errno::EIO, Errno::from_raw))?.len();
            if have < need {
                return Err(corrupt(format!("file is {have} bytes, the ring needs {need}")));
            }
            let h = RingLayout::header_for(channel, &cfg, page_size());
            let len = (h.payload_offset + h.payload_size) as usize;
            let map = Mmap::map(self.file.as_fd(), len, self.ctl_size as u64, true)?;
            // SAFETY: the mapping holds at least one header page. Copied: other processes
            // write the index words while we read.
            let page = unsafe { crate::sys::copy_shared(map.ptr(), h.header_size as usize) };
            let layout = RingLayout::decode(&page, page_size(), "shm").map_err(|e| corrupt(e.to_string()))?;
            // The state machine addresses descriptors and payloads with the decoded layout: it
            // must be exactly the one the configuration gives, which the mapping covers.
            let expected =
                RingLayout::decode(&header_bytes(&h), page_size(), "shm").map_err(|e| corrupt(e.to_string()))?;
            if layout != expected {
                return Err(corrupt(format!("header page {layout:?} disagrees with the configuration {expected:?}")));
            }
            local.ring = Some(RingCache { gen, built_for: (channel, cfg), map, layout });
        }
        Ok(local.ring.as_ref().expect("set above"))
    }

    fn wake(&self, w: Wake) {
        let h = &self.shared().head;
        // The bump is SeqCst and precedes the waiter check; a waiter increments `waiters` before
        // it reads the word, so either it sees the bump or we see it (no lost wakeup).
        if w.readable {
            h.readable.fetch_add(1, Ordering::SeqCst);
        }
        if w.writable {
            h.writable.fetch_add(1, Ordering::SeqCst);
        }
        if (w.readable || w.writable) && h.waiters.load(Ordering::SeqCst) > 0 {
            if w.readable {
                futex_wake_all(&h.readable);
            }
            if w.writable {
                futex_wake_all(&h.writable);
            }
        }
    }

    /// Frees every slot of dead processes' handles (rate-limited unless `force`).
    fn reclaim_dead(&self, g: &mut Guard<'_>, local: &mut Local, wake: &mut Wake) -> Result<(), Errno> {
        let me = std::process::id() as i32;
        let dead: Vec<usize> = g
            .locked()
            .handles
            .iter()
            .enumerate()
            .filter(|(_, h)| h.in_use != 0 && h.pid != me && !opener_alive(h))
            .map(|(i, _)| i)
            .collect();
        g.locked().last_dead_check_ns = monotonic_ns();
        for i in dead {
            let pid = g.locked().handles[i].pid;
            let n = self.reclaim_handle(g, local, i as u16 + 1, wake)?;
            log::info!("{}: reclaimed {n} slots of dead process {pid}", self.path.display());
        }
        Ok(())
    }

    fn maybe_reclaim_dead(&self, g: &mut Guard<'_>, local: &mut Local, wake: &mut Wake) -> Result<bool, Errno> {
        let now = monotonic_ns();
        if now.saturating_sub(g.locked().last_dead_check_ns) < DEAD_CHECK_NS {
            return Ok(false);
        }
        let before = g.locked().stats.reclaimed;
        self.reclaim_dead(g, local, wake)?;
        Ok(g.locked().stats.reclaimed != before)
    }

    /// Returns the slots owned by handle `owner` to FREE and closes the handle.
    fn reclaim_handle(&self, g: &mut Guard<'_>, local: &mut Local, owner: u16, wake: &mut Wake) -> Result<u64, Errno> {
        let v = self.view(g, local)?;
        let l = g.locked();
        let n = l.config_slots();
        let mut count = 0;
        for s in &mut l.slots[..n] {
            if s.owner == owner && (s.state == S_PRODUCING || s.state == S_CONSUMING) {
                s.state = S_FREE;
                s.owner = 0;
                count += 1;
            }
        }
        l.stats.reclaimed = l.stats.reclaimed.wrapping_add(count);
        // The roles end with the handle, as the kernel's end with the file.
        if l.producer_owner == owner {
            l.producer_owner = 0;
        }
        if l.consumer_owner == owner {
            l.consumer_owner = 0;
        }
        l.handles[owner as usize - 1] = HandleEnt { in_use: 0, pid: 0, start_time: 0, gen: 0, mappings: 0, pid_ns: 0 };
        if count != 0 {
            RingOps { l, v, wake }.advance();
        }
        Ok(count)
    }

    /// CLAIM, as the module's rtpm_chan_claim(): this handle's roles become exactly `roles`;
    /// `EBUSY` (and no change) if another handle holds one of them.
    pub(crate) fn claim_roles(&self, roles: u32) -> Result<(), Errno> {
        if roles & !RTPM_ROLES_ALL != 0 {
            return Err(Errno::EINVAL);
        }
        let mut g = self.lock()?;
        let l = g.locked();
        let me = self.me;
        let taken = |owner: u16| owner != 0 && owner != me;
        if (roles & RTPM_ROLE_PRODUCER != 0 && taken(l.producer_owner))
            || (roles & RTPM_ROLE_CONSUMER != 0 && taken(l.consumer_owner))
        {
            return Err(Errno::EBUSY);
        }
        let pick = |role: u32, owner: u16| match (roles & role != 0, owner == me) {
            (true, _) => me,
            (false, true) => 0,
            (false, false) => owner,
        };
        l.producer_owner = pick(RTPM_ROLE_PRODUCER, l.producer_owner);
        l.consumer_owner = pick(RTPM_ROLE_CONSUMER, l.consumer_owner);
        Ok(())
    }

    pub(crate) fn info(&self) -> Result<RtpmInfo, Errno> {
        let mut g = self.lock()?;
        let l = g.locked();
        if let Err(reason) = ring_file_len(self.ctl_size, l.channel, &l.config) {
            log::error!("{}: corrupt shm ring: {reason}", self.path.display());
            return Err(Errno::EPROTO);
        }
        let h = RingLayout::header_for(l.channel, &l.config, page_size());
        Ok(RtpmInfo {
            abi_major: RTPM_ABI_MAJOR,
            abi_minor: RTPM_ABI_MINOR,
            channel: l.channel,
            channels: 1,
            state: l.state,
            config: l.config,
            slot_count: h.slot_count,
            slot_stride: h.slot_stride,
            desc_size: h.desc_size,
            header_size: h.header_size,
            meta_size: h.meta_size,
            payload_offset: h.payload_offset,
            payload_size: h.payload_size,
            // No module ceiling: the ring file is the caller's own memory.
            max_ring_bytes: u64::MAX,
            file_roles: (if l.producer_owner == self.me { RTPM_ROLE_PRODUCER } else { 0 })
                | (if l.consumer_owner == self.me { RTPM_ROLE_CONSUMER } else { 0 }),
            // A shm ring has no privilege model: whoever can open the file may do everything.
            file_caps: RTPM_FILE_WRITE | RTPM_FILE_ADMIN,
            reserved: [0; 8],
        })
    }

    pub(crate) fn stats(&self) -> Result<RtpmStats, Errno> {
        let mut g = self.lock()?;
        Ok(g.locked().stats)
    }

    pub(crate) fn status(&self) -> Result<RtpmStatus, Errno> {
        let mut g = self.lock()?;
        let mut local = self.local.lock().unwrap_or_else(|p| p.into_inner());
        let v = self.view(&mut g, &mut local)?;
        let l = g.locked();
        let n = l.config_slots();
        let mut st = RtpmStatus { state: l.state, ..Default::default() };
        st.claimed = (if l.producer_owner != 0 { RTPM_ROLE_PRODUCER } else { 0 })
            | (if l.consumer_owner != 0 { RTPM_ROLE_CONSUMER } else { 0 });
        for s in &l.slots[..n] {
            match s.state {
                S_PRODUCING => st.producing += 1,
                S_READY => st.ready += 1,
                S_CONSUMING => st.consuming += 1,
                _ => st.free += 1,
            }
        }
        for h in l.handles.iter().filter(|h| h.in_use != 0) {
            st.openers += 1;
            st.mappings = st.mappings.wrapping_add(h.mappings);
        }
        let r = RingOps { l, v, wake: &mut Wake::default() };
        [st.reserve, st.producer, st.consumer, st.release] =
            [IDX_RESERVE, IDX_PRODUCER, IDX_CONSUMER, IDX_RELEASE].map(|i| r.idx(i));
        Ok(st)
    }

    pub(crate) fn start(&self) -> Result<(), Errno> {
        let mut g = self.lock()?;
        g.locked().state = RTPM_STATE_RUNNING;
        drop(g);
        self.wake(Wake { readable: false, writable: true });
        Ok(())
    }

    pub(crate) fn stop(&self) -> Result<(), Errno> {
        let mut g = self.lock()?;
        let l = g.locked();
        if l.state == RTPM_STATE_RUNNING {
            l.stop_seq = l.stop_seq.wrapping_add(1);
        }
        l.state = RTPM_STATE_STOPPED;
        drop(g);
        self.wake(Wake { readable: true, writable: true });
        Ok(())
    }

    pub(crate) fn reset(&self) -> Result<(), Errno> {
        let mut g = self.lock()?;
        let mut local = self.local.lock().unwrap_or_else(|p| p.into_inner());
        let v = self.view(&mut g, &mut local)?;
        let l = g.locked();
        let n = l.config_slots();
        if l.state == RTPM_STATE_RUNNING
            || l.slots[..n].iter().any(|s| s.state == S_PRODUCING || s.state == S_CONSUMING)
        {
            return Err(Errno::EBUSY);
        }
        for s in &mut l.slots[..n] {
            *s = SlotCtl { state: S_FREE, _pad: 0, owner: 0 };
        }
        l.stats = RtpmStats::default();
        l.seq = SeqTracker::default();
        let r = RingOps { l, v, wake: &mut Wake::default() };
        for i in [IDX_RESERVE, IDX_PRODUCER, IDX_CONSUMER, IDX_RELEASE] {
            r.set_idx(i, 0);
        }
        drop(local);
        drop(g);
        self.wake(Wake { readable: true, writable: true });
        Ok(())
    }

    pub(crate) fn configure(&self, c: &RtpmConfig) -> Result<(), Errno> {
        if config_error(c).is_some() {
            return Err(Errno::EINVAL);
        }
        let mut g = self.lock()?;
        let mut local = self.local.lock().unwrap_or_else(|p| p.into_inner());
        let l = g.locked();
        let n = l.config_slots();
        let mapped = l.handles.iter().any(|h| h.in_use != 0 && h.mappings != 0);
        let owned = l.slots[..n].iter().any(|s| s.state == S_PRODUCING || s.state == S_CONSUMING);
        if l.state == RTPM_STATE_RUNNING || mapped || owned {
            return Err(Errno::EBUSY);
        }
        // Every cached view is stale from here on, before anything changes: killed anywhere
        // below, the other handles remap (and check the header against the configuration)
        // rather than use their old mapping with the new configuration.
        self.shared().head.config_gen.fetch_add(1, Ordering::AcqRel);
        // Rebuild the ring region without ever making the file shorter than a mapping of it that
        // another process may touch (the control area is mapped by every handle): allocate
        // first, so a full /dev/shm is an ENOSPC here rather than a SIGBUS at first touch and a
        // failure leaves the old ring intact; then zero the old ring's meta region (descriptor
        // table, indices); trim a file longer than the new ring only at the very end.
        local.ring = None;
        let h = RingLayout::header_for(l.channel, c, page_size());
        let total = self.ctl_size as u64 + h.payload_offset + h.payload_size;
        let io = |e: std::io::Error| e.raw_os_error().map(Errno::from_raw).unwrap_or(Errno::EIO);
        allocate(&self.file, total)?;
        // (A corrupt old configuration is being replaced: zero what the new one uses.)
        let old_meta = match config_error(&l.config) {
            None => RingLayout::header_for(l.channel, &l.config, page_size()).meta_size,
            Some(_) => 0,
        };
        let zero = vec![0u8; old_meta.max(h.meta_size) as usize];
        self.file.write_all_at(&zero, self.ctl_size as u64).map_err(io)?;
        self.file.write_all_at(&header_bytes(&h), self.ctl_size as u64).map_err(io)?;
        for s in &mut l.slots[..] {
            *s = SlotCtl { state: S_FREE, _pad: 0, owner: 0 };
        }
        l.config = *c;
        // Nothing is left in the ring, so the counters restart with it (conservation holds).
        l.stats = RtpmStats::default();
        l.seq = SeqTracker::default();
        // Trimmed last, still under the lock: user mappings are excluded (EBUSY above) and every
        // cached view is stale now (config_gen, bumped first), so nothing touches the cut pages again; killed
        // before this line, the file is merely longer than it needs to be.
        let trim =
            self.file.metadata().map_or(Ok(()), |m| if m.len() > total { self.file.set_len(total) } else { Ok(()) });
        if let Err(e) = trim {
            log::warn!("{}: failed to trim the ring file to {total} bytes: {e}", self.path.display());
        }
        drop(local);
        drop(g);
        self.wake(Wake { readable: true, writable: true });
        Ok(())
    }

    /// A batched (or, with one entry, per-slot) slot operation with the kernel's semantics.
    pub(crate) fn batch(&self, op: BatchOp, slots: &mut [RtpmSlotRef]) -> Result<usize, Errno> {
        let mut g = self.lock()?;
        if slots.len() > RTPM_BATCH_MAX as usize {
            let st = &mut g.locked().stats;
            st.illegal_ops = st.illegal_ops.wrapping_add(1);
            return Err(Errno::E2BIG);
        }
        if slots.is_empty() {
            return Ok(0);
        }
        let mut wake = Wake::default();
        let mut local = self.local.lock().unwrap_or_else(|p| p.into_inner());
        let res = self.batch_locked(&mut g, &mut local, op, slots, &mut wake);
        drop(local);
        drop(g);
        self.wake(wake);
        res
    }

    /// One batched call, accounted exactly as the module's rtpm_chan_{reserve,push,pop,release}
    /// do: EPIPE before anything for RESERVE/PUSH on a stopped ring; entries in order up to the
    /// first failure; `overruns` once for a RESERVE that got nothing and for every PUSH that hit
    /// a full ring; `underruns` once for a POP that got nothing; other failures in `illegal_ops`.
    fn batch_locked(
        &self,
        g: &mut Guard<'_>,
        local: &mut Local,
        op: BatchOp,
        slots: &mut [RtpmSlotRef],
        wake: &mut Wake,
    ) -> Result<usize, Errno> {
        let me = self.me;
        // One timestamp per call, as the module's rtpm_chan_push takes ktime_get_ns() once.
        let now = if op == BatchOp::Push { monotonic_ns() } else { 0 };
        let mut done = 0;
        let mut err = None;
        let mut retried = false;
        loop {
            let v = self.view(g, local)?;
            let mut r = RingOps { l: g.locked(), v, wake: &mut *wake };
            // Another handle's role keeps us out, as in the module (EPERM, counted as denied).
            let role_owner = match op {
                BatchOp::Reserve | BatchOp::Push => r.l.producer_owner,
                BatchOp::Pop => r.l.consumer_owner,
                BatchOp::Release | BatchOp::Cancel => 0,
            };
            if role_owner != 0 && role_owner != me {
                err = Some(Errno::EACCES);
                break;
            }
            // A PUSH of a slot reserved before STOP is allowed; push_one refuses the implicit
            // reservation of a stopped ring itself.
            if op == BatchOp::Reserve && r.l.state != RTPM_STATE_RUNNING {
                err = Some(Errno::EPIPE);
                break;
            }
            while done < slots.len() {
                let res = match op {
                    BatchOp::Reserve => r.reserve_one(me, &mut slots[done]),
                    BatchOp::Push => r.push_one(me, &slots[done], now),
                    BatchOp::Pop => r.pop_one(me, &mut slots[done]),
                    BatchOp::Release => r.release_one(me, &slots[done]),
                    BatchOp::Cancel => r.cancel_one(me, &slots[done]),
                };
                match res {
                    Ok(()) => done += 1,
                    Err(e) => {
                        err = Some(e);
                        break;
                    }
                }
            }
            if matches!(op, BatchOp::Push | BatchOp::Release | BatchOp::Cancel) {
                r.advance();
            }
            // A full or empty ring may only look so because a dead process holds slots (the
            // kernel learns of a death at close; we find out here). Retry once after a reclaim.
            if done == 0 && err == Some(Errno::EAGAIN) && !retried {
                retried = true;
                if self.maybe_reclaim_dead(g, local, wake)? {
                    err = None;
                    continue;
                }
            }
            break;
        }
        // Drained after a STOP this handle did not see begin: nothing comes until START, as the
        // module's POP answers (pipe EOF).
        let l = g.locked();
        if op == BatchOp::Pop
            && done == 0
            && err == Some(Errno::EAGAIN)
            && l.state != RTPM_STATE_RUNNING
            && l.stop_seq != self.stop_seq
        {
            err = Some(Errno::EPIPE);
        }
        let st = &mut g.locked().stats;
        match (op, err) {
            (_, None) => {}
            (_, Some(Errno::EPIPE)) => {}
            (_, Some(Errno::EACCES)) => st.denied = st.denied.wrapping_add(1),
            (BatchOp::Reserve, Some(_)) if done == 0 => st.overruns = st.overruns.wrapping_add(1),
            (BatchOp::Reserve, Some(_)) => {}
            (BatchOp::Pop, Some(_)) if done == 0 => st.underruns = st.underruns.wrapping_add(1),
            (BatchOp::Pop, Some(_)) => {}
            (BatchOp::Push, Some(Errno::EAGAIN)) => st.overruns = st.overruns.wrapping_add(1),
            (_, Some(_)) => st.illegal_ops = st.illegal_ops.wrapping_add(1),
        }
        // EACCES is the internal "another handle holds the role", EPERM to the caller.
        let err = err.map(|e| if e == Errno::EACCES { Errno::EPERM } else { e });
        match err {
            Some(e) if done == 0 => Err(e),
            _ => Ok(done),
        }
    }

    /// Waits until the ring is readable (a slot can be popped) or writable (one can be
    /// reserved). Ok(false) on timeout or signal.
    pub(crate) fn wait(&self, dir: Dir, timeout: Option<Duration>) -> Result<bool, Errno> {
        let head = &self.shared().head;
        let word = match dir {
            Dir::Readable => &head.readable,
            Dir::Writable => &head.writable,
        };
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            head.waiters.fetch_add(1, Ordering::SeqCst);
            let seen = word.load(Ordering::SeqCst);
            let ready = self.ready(dir);
            let res = match ready {
                Ok(true) => Some(Ok(true)),
                Err(e) => Some(Err(e)),
                Ok(false) => {
                    let left = crate::sys::remaining(deadline);
                    if left == Some(Duration::ZERO) {
                        Some(Ok(false))
                    } else {
                        let slice = left.map_or(WAIT_SLICE, |l| l.min(WAIT_SLICE));
                        match futex_wait(word, seen, Some(slice)) {
                            Ok(()) | Err(Errno::EAGAIN) | Err(Errno::ETIMEDOUT) => None,
                            // A signal (FUTEX_WAIT with a timeout is not restarted for a
                            // handler): EINTR, as poll(2) on the device gives.
                            Err(Errno::EINTR) => Some(Err(Errno::EINTR)),
                            Err(e) => Some(Err(e)),
                        }
                    }
                }
            };
            head.waiters.fetch_sub(1, Ordering::SeqCst);
            if let Some(r) = res {
                return r;
            }
        }
    }

    fn ready(&self, dir: Dir) -> Result<bool, Errno> {
        let mut g = self.lock()?;
        let mut local = self.local.lock().unwrap_or_else(|p| p.into_inner());
        let mut wake = Wake::default();
        let mut ready = {
            let v = self.view(&mut g, &mut local)?;
            RingOps { l: g.locked(), v, wake: &mut Wake::default() }.ready(dir)
        };
        if !ready && self.maybe_reclaim_dead(&mut g, &mut local, &mut wake)? {
            let v = self.view(&mut g, &mut local)?;
            ready = RingOps { l: g.locked(), v, wake: &mut Wake::default() }.ready(dir);
        }
        drop(local);
        drop(g);
        self.wake(wake);
        Ok(ready)
    }

    /// Registers a user mapping of the ring (counted in `mappings`, blocks CONFIGURE) and maps
    /// the meta region read-only and the payload region read-write, as the kernel does.
    pub(crate) fn map(&self) -> Result<(Mmap, Mmap, ShmMapToken), Errno> {
        let mut g = self.lock()?;
        let (meta_size, off, size) = {
            let l = g.locked();
            if let Err(reason) = ring_file_len(self.ctl_size, l.channel, &l.config) {
                log::error!("{}: corrupt shm ring: {reason}", self.path.display());
                return Err(Errno::EPROTO);
            }
            let h = RingLayout::header_for(l.channel, &l.config, page_size());
            (h.meta_size as usize, h.payload_offset, h.payload_size as usize)
        };
        let base = self.ctl_size as u64;
        let meta = Mmap::map(self.file.as_fd(), meta_size, base, false)?;
        let payload = Mmap::map(self.file.as_fd(), size, base + off, true)?;
        // Every counter in the file wraps: others can write it, and a panic here could be one
        // across an FFI boundary (a ReadSlot dropped in GStreamer's free callback releases).
        let h = &mut g.locked().handles[self.me as usize - 1];
        h.mappings = h.mappings.wrapping_add(2);
        Ok((meta, payload, ShmMapToken(())))
    }

    /// The user mapping registered by [`ShmDev::map`] is gone.
    pub(crate) fn unmap(&self, _token: ShmMapToken) {
        match self.lock() {
            Ok(mut g) => {
                let h = &mut g.locked().handles[self.me as usize - 1];
                h.mappings = h.mappings.saturating_sub(2);
            }
            Err(e) => log::warn!("{}: failed to account an unmap: {e}", self.path.display()),
        }
    }
}

/// Proof that a user mapping was counted; hand it back to [`ShmDev::unmap`].
#[derive(Debug)]
pub(crate) struct ShmMapToken(());

impl Drop for ShmDev {
    fn drop(&mut self) {
        // Closing the handle: like the kernel's release(), return every owned slot to FREE
        // (counted as reclaimed) and free the handle entry.
        if self.me == 0 {
            return;
        }
        let mut wake = Wake::default();
        match self.lock() {
            Ok(mut g) => {
                let mut local = self.local.lock().unwrap_or_else(|p| p.into_inner());
                if let Err(e) = self.reclaim_handle(&mut g, &mut local, self.me, &mut wake) {
                    log::warn!("{}: failed to close handle: {e}", self.path.display());
                }
            }
            Err(e) => log::warn!("{}: failed to lock on close: {e}", self.path.display()),
        }
        self.wake(wake);
    }
}

impl Locked {
    fn config_slots(&self) -> usize {
        // Bounded: a corrupt ring_order in the file must not index past the slot table.
        1usize << self.config.ring_order.min(RTPM_RING_ORDER_MAX)
    }
}

/// The slot state machine on a locked control area and a mapped ring: a transcription of the
/// module's rtp_mgr_ring.c (same index rules, same checks in the same order, same counters), so
/// that both backends answer every sequence of calls identically. Every method leaves the slot
/// table consistent after each single-slot step (see the EOWNERDEAD note in ShmDev::lock).
///
/// Index invariants (free-running u32, slot = index & mask):
/// `release <= consumer <= producer <= reserve <= release + slot_count`;
/// `[release, consumer)` CONSUMING or FREE (released out of order); `[consumer, producer)` READY
/// (the slot at `consumer` always, after advance()); `[producer, reserve)` PRODUCING, READY
/// (pushed out of order) or FREE (reclaimed); `[reserve, release + slot_count)` FREE.
struct RingOps<'a> {
    l: &'a mut Locked,
    v: &'a RingCache,
    wake: &'a mut Wake,
}

impl RingOps<'_> {
    fn n(&self) -> u32 {
        self.v.layout.slot_count
    }

    fn word(&self, which: usize) -> &AtomicU32 {
        // SAFETY: index_off was validated by RingLayout::decode: 4-aligned and inside the header
        // page of this live mapping; the words are only accessed atomically.
        unsafe { AtomicU32::from_ptr(self.v.map.ptr().add(self.v.layout.index_off[which]).cast()) }
    }

    fn idx(&self, which: usize) -> u32 {
        self.word(which).load(Ordering::Relaxed)
    }

    fn set_idx(&self, which: usize, v: u32) {
        // Release (the module's smp_store_release, "A"): a reader of the header page that sees
        // the new index also sees the descriptors written before it.
        self.word(which).store(v, Ordering::Release)
    }

    fn slot(&mut self, pos: u32) -> &mut SlotCtl {
        let mask = self.n() - 1;
        &mut self.l.slots[(pos & mask) as usize]
    }

    fn desc_ptr(&self, index: u32) -> *mut RtpmSlotDesc {
        debug_assert!(index < self.n());
        let l = &self.v.layout;
        // SAFETY: index < slot_count and the table (desc_offset + slot_count * desc_size) was
        // validated to lie inside the meta region of this mapping.
        unsafe { self.v.map.ptr().add(l.desc_offset + index as usize * l.desc_size as usize).cast() }
    }

    fn payload_ptr(&self, index: u32) -> *const u8 {
        let l = &self.v.layout;
        // SAFETY: index < slot_count; payload_offset + slot_count * slot_stride lies inside the
        // mapping (validated by decode against payload_size, which the mapping covers).
        unsafe { self.v.map.ptr().add(l.payload_offset as usize + index as usize * l.slot_stride as usize) }
    }

    /// Moves producer over finished slots (anything not PRODUCING), consumer over FREE holes,
    /// release over FREE slots; sets the wakeups the moves call for.
    fn advance(&mut self) {
        let r = self.idx(IDX_RESERVE);
        let (p0, c0, rel0) = (self.idx(IDX_PRODUCER), self.idx(IDX_CONSUMER), self.idx(IDX_RELEASE));
        let mut p = p0;
        while p != r && self.slot(p).state != S_PRODUCING {
            p = p.wrapping_add(1);
        }
        let mut c = c0;
        while c != p && self.slot(c).state == S_FREE {
            c = c.wrapping_add(1);
        }
        let mut rel = rel0;
        while rel != c && self.slot(rel).state == S_FREE {
            rel = rel.wrapping_add(1);
        }
        self.set_idx(IDX_PRODUCER, p);
        self.set_idx(IDX_CONSUMER, c);
        self.set_idx(IDX_RELEASE, rel);
        self.wake.readable |= p != p0;
        self.wake.writable |= rel != rel0;
    }

    fn full(&self) -> bool {
        self.idx(IDX_RESERVE).wrapping_sub(self.idx(IDX_RELEASE)) >= self.n()
    }

    /// RTPM_DROP_OLDEST can make room only if the oldest unfinished slot is the oldest READY
    /// one: a CONSUMING slot at release blocks the ring however many READY slots are dropped.
    fn can_drop(&self) -> bool {
        let (c, rel) = (self.idx(IDX_CONSUMER), self.idx(IDX_RELEASE));
        self.l.config.drop_policy == RTPM_DROP_OLDEST && rel == c && c != self.idx(IDX_PRODUCER)
    }

    fn drop_oldest(&mut self) {
        let c = self.idx(IDX_CONSUMER);
        *self.slot(c) = SlotCtl { state: S_FREE, _pad: 0, owner: 0 };
        self.l.stats.drops = self.l.stats.drops.wrapping_add(1);
        self.advance();
    }

    fn ready(&mut self, dir: Dir) -> bool {
        match dir {
            Dir::Readable => self.idx(IDX_CONSUMER) != self.idx(IDX_PRODUCER),
            Dir::Writable => !self.full() || self.can_drop(),
        }
    }

    fn reserve_one(&mut self, me: u16, out: &mut RtpmSlotRef) -> Result<(), Errno> {
        if self.full() {
            if !self.can_drop() {
                return Err(Errno::EAGAIN);
            }
            self.drop_oldest();
        }
        let r = self.idx(IDX_RESERVE);
        *self.slot(r) = SlotCtl { state: S_PRODUCING, _pad: 0, owner: me };
        self.set_idx(IDX_RESERVE, r.wrapping_add(1));
        *out = RtpmSlotRef::new(r & (self.n() - 1), self.v.layout.slot_payload, 0);
        Ok(())
    }

    /// PUSH one slot. A PRODUCING slot must be ours; the slot at the reserve index is reserved
    /// implicitly (the seed's one-call producer path); any other slot is in the wrong state.
    fn push_one(&mut self, me: u16, s: &RtpmSlotRef, now: u64) -> Result<(), Errno> {
        // Bounded by the layout of the mapping the payload is read from, never by the
        // configuration in the shared file (which view() checks, but which others can write).
        if s.index >= self.n() || s.len == 0 || s.len > self.v.layout.slot_payload || s.flags != 0 || s.pad != 0 {
            return Err(Errno::EINVAL);
        }
        let st = *self.slot(s.index);
        if st.state != S_PRODUCING {
            if s.index != self.idx(IDX_RESERVE) & (self.n() - 1) {
                return Err(Errno::EBADSLT);
            }
            // The one-call path writes the payload before the slot is handed out: only safe for
            // the producer-role holder, whom no other handle can race for that slot.
            if self.l.state != RTPM_STATE_RUNNING {
                return Err(Errno::EPIPE);
            }
            if self.l.producer_owner != me {
                return Err(Errno::EACCES);
            }
            self.reserve_one(me, &mut RtpmSlotRef::default())?;
        } else if st.owner != me {
            return Err(Errno::EPERM);
        }
        // Parse a private copy of the bytes the parser needs (head and last byte): the producer
        // may still scribble on the slot, and the descriptor must describe what was parsed.
        let len = s.len as usize;
        let mut head = [0u8; rtp::HEAD_MAX];
        let n = len.min(head.len());
        let src = self.payload_ptr(s.index);
        // SAFETY: payload_ptr(index) starts slot_stride >= slot_payload >= len bytes of the
        // mapped payload region (len was bounded by this mapping's layout); n <= len bytes are
        // copied into our own buffer, and len >= 1. Volatile reads, as the producer may still
        // be writing these bytes.
        let last = unsafe {
            crate::sys::copy_shared_into(src, &mut head[..n]);
            src.add(len - 1).read_volatile()
        };
        let info = rtp::parse_head(&head[..n], len, last);
        let mut d = RtpmSlotDesc {
            len: s.len,
            flags: rtp::flags_of(info.as_ref()),
            arrival_ns: if s.arrival_ns == 0 { now } else { s.arrival_ns },
            ..Default::default()
        };
        match info {
            Some(i) => {
                d.rtp_seq = i.seq;
                d.rtp_timestamp = i.timestamp;
                d.ssrc = i.ssrc;
                d.payload_type = i.payload_type;
                let delta = self.l.seq.update(i.ssrc, i.seq);
                let st = &mut self.l.stats;
                st.rtp_lost = st.rtp_lost.wrapping_add(delta.lost).saturating_sub(delta.recovered);
                st.rtp_reordered = st.rtp_reordered.wrapping_add(delta.reordered);
                st.rtp_duplicates = st.rtp_duplicates.wrapping_add(delta.duplicates);
            }
            None => self.l.stats.malformed = self.l.stats.malformed.wrapping_add(1),
        }
        // SAFETY: desc_ptr(index) is inside the meta region of this mapping (validated layout);
        // the slot is PRODUCING under the lock, so no consumer reads this descriptor now.
        unsafe { std::ptr::write_volatile(self.desc_ptr(s.index), d) };
        *self.slot(s.index) = SlotCtl { state: S_READY, _pad: 0, owner: 0 };
        self.l.stats.pushed_packets = self.l.stats.pushed_packets.wrapping_add(1);
        self.l.stats.pushed_bytes = self.l.stats.pushed_bytes.wrapping_add(s.len as u64);
        Ok(())
    }

    fn pop_one(&mut self, me: u16, out: &mut RtpmSlotRef) -> Result<(), Errno> {
        let c = self.idx(IDX_CONSUMER);
        if c == self.idx(IDX_PRODUCER) {
            return Err(Errno::EAGAIN);
        }
        // advance() keeps the slot at consumer READY.
        if self.slot(c).state != S_READY {
            debug_assert!(false, "slot at consumer not READY");
            return Err(Errno::EAGAIN);
        }
        let index = c & (self.n() - 1);
        *self.slot(c) = SlotCtl { state: S_CONSUMING, _pad: 0, owner: me };
        // SAFETY: as in push_one: inside the validated meta region; READY descriptors are only
        // written by push, which cannot run while we hold the lock.
        let d = unsafe { std::ptr::read_volatile(self.desc_ptr(index)) };
        *out = RtpmSlotRef { index, len: d.len, arrival_ns: d.arrival_ns, flags: d.flags, pad: 0 };
        self.l.stats.popped_packets = self.l.stats.popped_packets.wrapping_add(1);
        self.l.stats.popped_bytes = self.l.stats.popped_bytes.wrapping_add(d.len as u64);
        self.set_idx(IDX_CONSUMER, c.wrapping_add(1));
        self.advance();
        Ok(())
    }

    fn release_one(&mut self, me: u16, s: &RtpmSlotRef) -> Result<(), Errno> {
        // flags may hold what POP filled in: popped entries are handed back as they are.
        if s.index >= self.n() || s.pad != 0 || s.flags & !RTPM_SLOT_F_ALL != 0 {
            return Err(Errno::EINVAL);
        }
        let st = *self.slot(s.index);
        if st.state != S_CONSUMING {
            return Err(Errno::EBADSLT);
        }
        if st.owner != me {
            return Err(Errno::EPERM);
        }
        *self.slot(s.index) = SlotCtl { state: S_FREE, _pad: 0, owner: 0 };
        self.l.stats.released = self.l.stats.released.wrapping_add(1);
        Ok(())
    }

    /// CANCEL a PRODUCING slot of ours: back to FREE, never READY (also on a stopped ring).
    fn cancel_one(&mut self, me: u16, s: &RtpmSlotRef) -> Result<(), Errno> {
        if s.index >= self.n() || s.pad != 0 || s.flags & !RTPM_SLOT_F_ALL != 0 {
            return Err(Errno::EINVAL);
        }
        let st = *self.slot(s.index);
        if st.state != S_PRODUCING {
            return Err(Errno::EBADSLT);
        }
        if st.owner != me {
            return Err(Errno::EPERM);
        }
        *self.slot(s.index) = SlotCtl { state: S_FREE, _pad: 0, owner: 0 };
        self.l.stats.cancelled = self.l.stats.cancelled.wrapping_add(1);
        Ok(())
    }
}

/// Opens an existing ring file; never through a symbolic link (`ELOOP`): the name is
/// predictable and /dev/shm is writable by everyone.
fn open_rw(path: &Path) -> Result<File, Errno> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| e.raw_os_error().map(Errno::from_raw).unwrap_or(Errno::EIO))
}

/// Creates a fully initialised ring file under a temporary name and links it into place, so an
/// opener never sees a half-built ring; if another process won the race, its file is used.
fn create(path: &Path, channel: u32, cfg: &RtpmConfig) -> Result<File, Errno> {
    let io = |e: std::io::Error| e.raw_os_error().map(Errno::from_raw).unwrap_or(Errno::EIO);
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().ok_or(Errno::EINVAL)?.to_string_lossy();
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let tmp = dir.join(format!(".{name}.{}.{}.tmp", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed)));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o660)
        .custom_flags(libc::O_CLOEXEC)
        .open(&tmp)
        .map_err(io)?;
    let result = (|| {
        if config_error(cfg).is_some() {
            return Err(Errno::EINVAL);
        }
        let cs = ctl_size();
        let h = RingLayout::header_for(channel, cfg, page_size());
        // Allocated, not sparse: a full /dev/shm is an error here, not a SIGBUS later.
        allocate(&file, cs as u64 + h.payload_offset + h.payload_size)?;
        file.write_all_at(&header_bytes(&h), cs as u64).map_err(io)?;
        let ctl = Mmap::map(file.as_fd(), cs, 0, true)?;
        let sh = ctl.ptr() as *mut Shared;
        // SAFETY: `ctl` is a fresh zeroed mapping of cs >= size_of::<Shared>() bytes that no
        // other process can see yet (the file is not linked under its name); zero is a valid
        // value of every field, and the mutex is initialised before anyone can lock it.
        unsafe {
            let mut attr: libc::pthread_mutexattr_t = std::mem::zeroed();
            libc::pthread_mutexattr_init(&mut attr);
            libc::pthread_mutexattr_setpshared(&mut attr, libc::PTHREAD_PROCESS_SHARED);
            libc::pthread_mutexattr_setrobust(&mut attr, libc::PTHREAD_MUTEX_ROBUST);
            let r = libc::pthread_mutex_init((*sh).lock.m.get(), &attr);
            libc::pthread_mutexattr_destroy(&mut attr);
            if r != 0 {
                return Err(Errno::from_raw(r));
            }
            let l = &mut *(*sh).locked.get();
            l.state = RTPM_STATE_STOPPED;
            l.channel = channel;
            l.config = *cfg;
            (*sh).head.version.store(CTL_VERSION, Ordering::Relaxed);
            (*sh).head.ctl_size.store(cs as u32, Ordering::Relaxed);
            (*sh).head.magic.store(CTL_MAGIC, Ordering::Release);
        }
        Ok(())
    })();
    let result = result.and_then(|()| match std::fs::hard_link(&tmp, path) {
        Ok(()) => Ok(Some(())),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(None),
        Err(e) => Err(io(e)),
    });
    let _ = std::fs::remove_file(&tmp);
    match result? {
        Some(()) => Ok(file),
        // Someone else created it first: use theirs.
        None => open_rw(path),
    }
}

/// Why `c` is not a configuration a ring can have; None if it is one.
fn config_error(c: &RtpmConfig) -> Option<String> {
    if c.flags != 0 {
        Some(format!("flags {:#x}", c.flags))
    } else if !(RTPM_RING_ORDER_MIN..=RTPM_RING_ORDER_MAX).contains(&c.ring_order) {
        Some(format!("ring_order {}", c.ring_order))
    } else if !(RTPM_SLOT_PAYLOAD_MIN..=RTPM_SLOT_PAYLOAD_MAX).contains(&c.slot_payload) {
        Some(format!("slot_payload {}", c.slot_payload))
    } else if c.drop_policy > RTPM_DROP_OLDEST {
        Some(format!("drop_policy {}", c.drop_policy))
    } else {
        None
    }
}

/// Bytes a ring file with configuration `c` needs, or why `c` (read from the file) is corrupt.
fn ring_file_len(ctl_size: usize, channel: u32, c: &RtpmConfig) -> std::result::Result<u64, String> {
    if let Some(what) = config_error(c) {
        return Err(format!("corrupt configuration ({what} out of range); remove the file to recreate it"));
    }
    let h = RingLayout::header_for(channel, c, page_size());
    Ok(ctl_size as u64 + h.payload_offset + h.payload_size)
}

/// Makes the file at least `len` bytes long with every block allocated (`posix_fallocate`):
/// `ENOSPC` now instead of `SIGBUS` when a page of a sparse file cannot be backed later.
fn allocate(file: &File, len: u64) -> Result<(), Errno> {
    use std::os::fd::AsRawFd;
    let len = libc::off_t::try_from(len).map_err(|_| Errno::EFBIG)?;
    // SAFETY: plain syscall on a descriptor we own; no memory is passed.
    match unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len) } {
        0 => Ok(()),
        e => Err(Errno::from_raw(e)),
    }
}

/// Whether a ring file owned by `owner` may be used by `euid`: a file in a directory where
/// anyone can create files (world-writable or sticky, like /dev/shm and /tmp) must be owned by
/// us or by root, or another local user could have planted it under the predictable name to
/// read or corrupt our packets; in a private directory whoever could create it is trusted (that
/// is how several users share one ring: a group-owned `RTPMGR_SHM_DIR`).
fn owner_trusted(owner: u32, dir_mode: u32, euid: u32) -> bool {
    let shared_dir = dir_mode & (libc::S_IWOTH | libc::S_ISVTX) != 0;
    !shared_dir || owner == euid || owner == 0
}

/// Refuses a ring file that is not a regular file, or that [`owner_trusted`] does not trust.
fn check_owner(path: &Path, file: &File) -> Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let ctx = || format!("open shm ring {}", path.display());
    let md = file.metadata().context(ctx)?;
    if !md.file_type().is_file() {
        return Err(Error::sys(format!("{}: not a regular file", ctx()), Errno::EINVAL));
    }
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let dir_mode = std::fs::metadata(dir).context(ctx)?.permissions().mode();
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if !owner_trusted(md.uid(), dir_mode, euid) {
        return Err(Error::sys(
            format!(
                "{}: owned by uid {} (not uid {euid}, not root) in the shared directory {}: refusing a ring \
                 another user could have planted; remove it, or share rings through a private RTPMGR_SHM_DIR",
                ctx(),
                md.uid(),
                dir.display()
            ),
            Errno::EPERM,
        ));
    }
    Ok(())
}

/// Inode of this process's PID namespace, 0 if unknown.
fn pid_namespace() -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self/ns/pid").map_or(0, |m| m.ino())
}

/// False only for an opener that is certainly gone: one of our PID namespace (its pid means
/// the same here) whose process no longer exists or is another one. An opener of another
/// namespace (a container sharing /dev/shm) cannot be judged from here and counts as alive
/// until it closes its handle.
fn opener_alive(h: &HandleEnt) -> bool {
    let ours = pid_namespace();
    if h.pid_ns == 0 || ours == 0 || h.pid_ns != ours {
        return true;
    }
    process_alive(h.pid, h.start_time)
}

/// True unless `pid` is gone, a zombie, or a different process than the one recorded.
fn process_alive(pid: i32, start_time: u64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => match parse_stat(&s) {
            Some((state, st)) => !matches!(state, 'Z' | 'X') && (start_time == 0 || st == start_time),
            None => true,
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        // No /proc (or not readable): fall back to kill(pid, 0).
        Err(_) => nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) != Err(Errno::ESRCH),
    }
}

fn proc_start_time(pid: i32) -> Option<u64> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?).map(|(_, t)| t)
}

/// (state, starttime) of a /proc/<pid>/stat line; the command name may contain spaces and
/// parentheses, so fields are counted after the last ')'.
fn parse_stat(s: &str) -> Option<(char, u64)> {
    let rest = &s[s.rfind(')')? + 1..];
    let mut it = rest.split_whitespace();
    let state = it.next()?.chars().next()?;
    // After the state come fields 4..; starttime is field 22, i.e. 19 more.
    let start = it.nth(18)?.parse().ok()?;
    Some((state, start))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_parsing_handles_odd_names() {
        let line = "123 (a b) c)) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 4242 20 21";
        assert_eq!(parse_stat(line), Some(('S', 4242)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn own_process_is_alive_and_a_reused_pid_is_not() {
        let pid = std::process::id() as i32;
        let st = proc_start_time(pid).unwrap();
        assert!(process_alive(pid, st));
        assert!(!process_alive(pid, st + 1));
        assert!(!process_alive(i32::MAX, 0));
    }

    /// A process killed while it holds the ring lock must not deadlock the ring: the robust
    /// mutex hands the next locker EOWNERDEAD and the ring goes on. The test re-executes itself
    /// as the child that takes the lock and is killed with SIGKILL.
    #[test]
    #[cfg_attr(miri, ignore = "Miri cannot spawn processes or map files")]
    fn lock_holder_killed_does_not_deadlock() {
        const CHILD: &str = "RTPMGR_LOCK_CHILD";
        let cfg = RtpmConfig::new(2, 64, 0);
        if let Some(path) = std::env::var_os(CHILD) {
            let path = PathBuf::from(path);
            let dev = ShmDev::open(&path, 0, &cfg).unwrap();
            let _held = dev.lock().unwrap();
            std::fs::write(path.with_extension("locked"), b"1").unwrap();
            std::thread::sleep(Duration::from_secs(60));
            return;
        }
        let path = std::env::temp_dir().join(format!("rtpmgr-lock-{}", std::process::id()));
        let marker = path.with_extension("locked");
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_file(&marker);
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "shm::tests::lock_holder_killed_does_not_deadlock", "--test-threads=1"])
            .env(CHILD, &path)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !marker.exists() {
            assert!(Instant::now() < deadline, "child never took the lock");
            assert!(child.try_wait().unwrap().is_none(), "child exited early");
            std::thread::sleep(Duration::from_millis(10));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        // Opening locks the ring: with a plain mutex this would hang forever.
        let (tx, rx) = std::sync::mpsc::channel();
        let p2 = path.clone();
        std::thread::spawn(move || {
            let dev = ShmDev::open(&p2, 0, &cfg).map(|d| (d.status(), d.start()));
            tx.send(dev.map(|(st, started)| (st.unwrap(), started.is_ok()))).unwrap();
        });
        let (st, started) = rx.recv_timeout(Duration::from_secs(10)).expect("ring deadlocked").unwrap();
        assert!(started);
        assert_eq!(st.openers, 1, "the dead child's handle was reclaimed");
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_file(&marker);
    }

    #[test]
    fn control_area_fits() {
        assert!(std::mem::size_of::<libc::pthread_mutex_t>() <= 64);
        assert!(ctl_size() >= std::mem::size_of::<Shared>());
    }

    /// 8 slots of 64 bytes (built field by field: the ABI struct grows reserved fields).
    fn small() -> RtpmConfig {
        let mut c = RtpmConfig::default();
        (c.ring_order, c.slot_payload) = (3, 64);
        c
    }

    /// A fresh ring file path in the temp directory, removed (with `extra` files) on drop.
    struct TmpPath(PathBuf, Vec<PathBuf>);

    impl TmpPath {
        fn new(tag: &str) -> Self {
            let p = std::env::temp_dir().join(format!("rtpmgr-shm-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_file(&p);
            TmpPath(p, Vec::new())
        }
        /// Writes `bytes` at `off` of the ring file, as a hostile or buggy process could.
        fn poke(&self, off: u64, bytes: &[u8]) {
            std::fs::OpenOptions::new().write(true).open(&self.0).unwrap().write_all_at(bytes, off).unwrap();
        }
    }

    impl Drop for TmpPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
            for p in &self.1 {
                let _ = std::fs::remove_file(p).or_else(|_| std::fs::remove_dir_all(p));
            }
        }
    }

    fn open_err(path: &Path) -> Error {
        ShmDev::open(path, 0, &small()).map(drop).expect_err("the open must be refused")
    }

    /// A header page that claims a bigger ring than the file's configuration (so bigger than
    /// what is mapped) is refused with EPROTO by every operation, never dereferenced.
    #[test]
    #[cfg_attr(miri, ignore = "Miri cannot map files")]
    fn shm_header_larger_than_mapping_is_refused() {
        let t = TmpPath::new("hdr");
        let dev = ShmDev::open(&t.0, 0, &small()).unwrap();
        dev.start().unwrap();
        let off = ctl_size() + std::mem::offset_of!(RtpmRingHeader, payload_size);
        t.poke(off as u64, &(1u64 << 40).to_ne_bytes());
        // A new handle (no cached view) decodes the header and refuses it.
        let other = ShmDev::open(&t.0, 0, &small()).unwrap();
        assert_eq!(other.status().unwrap_err(), Errno::EPROTO);
        let mut r = [RtpmSlotRef::default()];
        assert_eq!(other.batch(BatchOp::Reserve, &mut r).unwrap_err(), Errno::EPROTO);
        // Through the library: mapping the ring checks the header against what was mapped.
        let ch = crate::Channel::open(&crate::Backend::shm_at(&t.0)).unwrap();
        let e = ch.map().unwrap_err();
        assert_eq!(e.errno(), Errno::EPROTO, "{e}");
    }

    /// A configuration changed in the control area without a generation bump (a CONFIGURE
    /// killed between the two, or a hostile writer) must never make a push read past the
    /// handle's cached mapping: the view follows the configuration, and a push longer than the
    /// mapped slots is refused (before: checked against the new slot_payload, read in the old
    /// mapping).
    #[test]
    #[cfg_attr(miri, ignore = "Miri cannot map files")]
    fn config_changed_without_generation_bump_never_reads_past_the_mapping() {
        let t = TmpPath::new("nogen");
        let dev = ShmDev::open(&t.0, 0, &small()).unwrap();
        dev.start().unwrap();
        let mut r = [RtpmSlotRef::default()];
        assert_eq!(dev.batch(BatchOp::Reserve, &mut r).unwrap(), 1, "the view of 8 x 64 bytes is cached");
        let big = RtpmConfig { slot_payload: 2048, ..small() };
        let gen = dev.shared().head.config_gen.load(Ordering::Relaxed);
        dev.lock().unwrap().locked().config = big;
        // 2048 bytes from slot 0 stay inside the old mapping's last page: without the check the
        // push would read them and succeed.
        let mut p = [RtpmSlotRef::new(r[0].index, 2048, 0)];
        assert_eq!(dev.batch(BatchOp::Push, &mut p).unwrap_err(), Errno::EPROTO, "the file is too short for it");
        // The rest of that CONFIGURE (file grown, header page written), still without the bump:
        // the handle remaps and the full-size slot is pushed from the new mapping.
        let h = RingLayout::header_for(0, &big, page_size());
        allocate(&dev.file, ctl_size() as u64 + h.payload_offset + h.payload_size).unwrap();
        t.poke(ctl_size() as u64, &header_bytes(&h));
        assert_eq!(dev.shared().head.config_gen.load(Ordering::Relaxed), gen);
        assert_eq!(dev.batch(BatchOp::Reserve, &mut r).unwrap(), 1);
        assert_eq!(r[0].len, 2048, "reserved in the new layout");
        let mut p = [RtpmSlotRef::new(r[0].index, 2048, 0)];
        assert_eq!(dev.batch(BatchOp::Push, &mut p).unwrap(), 1);
        // A push longer than the mapped slots is refused whatever the control area says.
        dev.lock().unwrap().locked().config.slot_payload = 4096;
        assert_eq!(dev.batch(BatchOp::Push, &mut [RtpmSlotRef::new(1, 4096, 0)]).unwrap_err(), Errno::EPROTO);
    }

    /// Counters live in the shared file, where anyone can write them: near u64::MAX they wrap
    /// and never panic (an overflow panic on the release path would abort inside GStreamer's
    /// buffer free callback).
    #[test]
    #[cfg_attr(miri, ignore = "Miri cannot map files")]
    fn counters_in_the_file_wrap_instead_of_panicking() {
        let t = TmpPath::new("wrap");
        let cfg = RtpmConfig { drop_policy: RTPM_DROP_OLDEST, ..small() };
        let dev = ShmDev::open(&t.0, 0, &cfg).unwrap();
        dev.configure(&cfg).unwrap();
        dev.start().unwrap();
        let saturate = |dev: &ShmDev| {
            let mut g = dev.lock().unwrap();
            let l = g.locked();
            // SAFETY: RtpmStats is plain u64 counters, for which every bit pattern is valid.
            unsafe { std::ptr::write_bytes(&mut l.stats as *mut RtpmStats, 0xff, 1) };
            l.handles.iter_mut().for_each(|h| h.mappings = u32::MAX);
        };
        let h = RingLayout::header_for(0, &cfg, page_size());
        let push = |dev: &ShmDev, bytes: &[u8]| {
            let mut r = [RtpmSlotRef::default()];
            assert_eq!(dev.batch(BatchOp::Reserve, &mut r).unwrap(), 1);
            t.poke(ctl_size() as u64 + h.payload_offset + r[0].index as u64 * h.slot_stride as u64, bytes);
            let mut p = [RtpmSlotRef::new(r[0].index, bytes.len() as u32, 0)];
            assert_eq!(dev.batch(BatchOp::Push, &mut p).unwrap(), 1);
        };
        let rtp = |seq: u16| {
            let mut p = [0u8; 64];
            p[0] = 0x80;
            p[2..4].copy_from_slice(&seq.to_be_bytes());
            p
        };
        saturate(&dev);
        // Pushed, lost (1 -> 5), duplicate, reordered, dropped (a full drop-oldest ring), malformed.
        for seq in [1, 5, 5, 3, 6, 7, 8, 9, 10, 11] {
            push(&dev, &rtp(seq));
        }
        push(&dev, b"not rtp");
        assert_eq!(dev.stats().unwrap().drops, 2, "wrapped");
        // Popped and released, cancelled, illegal (a release of a free slot), E2BIG.
        saturate(&dev);
        let mut one = [RtpmSlotRef::default()];
        assert_eq!(dev.batch(BatchOp::Pop, &mut one).unwrap(), 1);
        assert_eq!(dev.batch(BatchOp::Release, &mut one).unwrap(), 1);
        assert_eq!(dev.batch(BatchOp::Reserve, &mut one).unwrap(), 1);
        assert_eq!(dev.batch(BatchOp::Cancel, &mut one).unwrap(), 1);
        assert_eq!(dev.batch(BatchOp::Release, &mut one).unwrap_err(), Errno::EBADSLT);
        assert_eq!(dev.batch(BatchOp::Reserve, &mut [RtpmSlotRef::default(); 300]).unwrap_err(), Errno::E2BIG);
        // Overrun (every slot popped, none released), underrun, released.
        let mut popped = [RtpmSlotRef::default(); 8];
        let n = dev.batch(BatchOp::Pop, &mut popped).unwrap();
        assert_eq!(dev.batch(BatchOp::Reserve, &mut one).unwrap_err(), Errno::EAGAIN);
        assert_eq!(dev.batch(BatchOp::Pop, &mut one).unwrap_err(), Errno::EAGAIN);
        assert_eq!(dev.batch(BatchOp::Release, &mut popped[..n]).unwrap(), n);
        // Denied: another handle holds the producer role.
        let other = ShmDev::open(&t.0, 0, &cfg).unwrap();
        other.claim_roles(RTPM_ROLE_PRODUCER).unwrap();
        assert_eq!(dev.batch(BatchOp::Reserve, &mut one).unwrap_err(), Errno::EPERM);
        // Reclaimed: a handle closed with a popped slot; mappings summed over the handles.
        push(&other, &rtp(12));
        assert_eq!(other.batch(BatchOp::Pop, &mut one).unwrap(), 1);
        saturate(&dev);
        assert_eq!(dev.status().unwrap().mappings, u32::MAX - 1, "wrapped");
        drop(other);
        assert_eq!(dev.stats().unwrap().reclaimed, 0, "wrapped");
        drop(dev.map().unwrap());
    }

    /// A ring file shorter than its configuration needs (truncated, or hostile) is refused at
    /// open with the two sizes, and a handle that was already open gets EPROTO, not SIGBUS.
    #[test]
    #[cfg_attr(miri, ignore = "Miri cannot map files")]
    fn shm_file_too_short_is_refused() {
        let t = TmpPath::new("short");
        let before = ShmDev::open(&t.0, 0, &small()).unwrap();
        let need = std::fs::metadata(&t.0).unwrap().len();
        std::fs::OpenOptions::new().write(true).open(&t.0).unwrap().set_len(ctl_size() as u64 + 4096).unwrap();
        let e = open_err(&t.0);
        assert_eq!(e.errno(), Errno::EPROTO);
        assert!(e.to_string().contains(&format!("the ring it describes needs {need}")), "{e}");
        assert_eq!(before.status().unwrap_err(), Errno::EPROTO);
    }

    /// A configuration in the control area that no CONFIGURE could have written is an error
    /// naming the field, at open and for open handles; a valid CONFIGURE repairs the ring.
    #[test]
    #[cfg_attr(miri, ignore = "Miri cannot map files")]
    fn shm_corrupt_config_is_an_error_not_a_panic() {
        let t = TmpPath::new("cfg");
        let dev = ShmDev::open(&t.0, 0, &small()).unwrap();
        let off = std::mem::offset_of!(Shared, locked)
            + std::mem::offset_of!(Locked, config)
            + std::mem::offset_of!(RtpmConfig, ring_order);
        t.poke(off as u64, &200u32.to_ne_bytes());
        let e = open_err(&t.0);
        assert!(e.to_string().contains("corrupt configuration (ring_order 200 out of range)"), "{e}");
        assert_eq!(dev.info().unwrap_err(), Errno::EPROTO);
        assert_eq!(dev.status().unwrap_err(), Errno::EPROTO);
        assert_eq!(dev.map().map(drop).unwrap_err(), Errno::EPROTO);
        dev.configure(&small()).unwrap();
        assert_eq!(dev.info().unwrap().config.ring_order, 3);
        ShmDev::open(&t.0, 0, &small()).unwrap();
    }

    /// The predictable name is never followed through a symbolic link.
    #[test]
    #[cfg_attr(miri, ignore = "Miri cannot open files with O_NOFOLLOW")]
    fn shm_symlink_is_refused() {
        let mut t = TmpPath::new("link-target");
        drop(ShmDev::open(&t.0, 0, &small()).unwrap());
        let link = t.0.with_extension("link");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&t.0, &link).unwrap();
        t.1.push(link.clone());
        let e = open_err(&link);
        assert_eq!(e.errno(), Errno::ELOOP, "{e}");
        assert!(e.to_string().contains("a symbolic link, refused"), "{e}");
    }

    /// In a directory anyone can write (like /dev/shm), a ring owned by another user (not
    /// root) is refused; in a private directory the owner is trusted.
    #[test]
    #[cfg_attr(miri, ignore = "Miri cannot chown files")]
    fn shm_ring_of_another_user_in_a_shared_dir_is_refused() {
        let (me, other) = (1000, 4242);
        assert!(owner_trusted(me, 0o1777, me));
        assert!(owner_trusted(0, 0o1777, me), "root's rings are trusted");
        assert!(!owner_trusted(other, 0o1777, me));
        assert!(!owner_trusted(other, 0o0777, me));
        assert!(owner_trusted(other, 0o0770, me), "a private directory: the group shares it");

        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            rtpmgr_testkit::skip(
                "shm::shm_ring_of_another_user_in_a_shared_dir_is_refused (file part)",
                "chown needs root",
            );
            return;
        }
        use std::os::unix::fs::PermissionsExt;
        let mut t = TmpPath::new("owner");
        let dir = t.0.with_extension("dir");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        t.1.push(dir.clone());
        let ring = dir.join("rtpmgr-0");
        drop(ShmDev::open(&ring, 0, &small()).unwrap());
        std::os::unix::fs::chown(&ring, Some(other), None).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let e = open_err(&ring);
        assert_eq!(e.errno(), Errno::EPERM, "{e}");
        assert!(e.to_string().contains("owned by uid 4242"), "{e}");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o0755)).unwrap();
        ShmDev::open(&ring, 0, &small()).expect("a private directory's ring is trusted");
    }

    /// Creation and CONFIGURE allocate every block of the ring up front (no sparse file whose
    /// first touch can SIGBUS when /dev/shm is full), and CONFIGURE never truncates the file
    /// under the other handles' mappings of the control area.
    #[test]
    #[cfg_attr(miri, ignore = "Miri cannot map files")]
    fn configure_allocates_the_ring_instead_of_truncating() {
        use std::os::unix::fs::MetadataExt;
        let t = TmpPath::new("alloc");
        let allocated = || {
            let m = std::fs::metadata(&t.0).unwrap();
            (m.len(), m.blocks() * 512)
        };
        let dev = ShmDev::open(&t.0, 0, &small()).unwrap();
        let (len, blocks) = allocated();
        assert!(blocks >= len, "created sparse: {blocks} of {len} bytes allocated");
        let big = RtpmConfig { ring_order: 10, slot_payload: 2048, ..small() };
        dev.configure(&big).unwrap();
        let (len, blocks) = allocated();
        assert!(len > 2 << 20 && blocks >= len, "configured sparse: {blocks} of {len} bytes allocated");
        // The control area, mapped by every handle, stayed valid throughout: the handle works.
        dev.start().unwrap();
        let mut r = [RtpmSlotRef::default()];
        assert_eq!(dev.batch(BatchOp::Reserve, &mut r).unwrap(), 1);
        assert_eq!(dev.info().unwrap().slot_count, 1024);
        // Back to the small ring: the file is trimmed (last), and the ring works.
        dev.stop().unwrap();
        assert_eq!(dev.batch(BatchOp::Release, &mut r).unwrap_err(), Errno::EBADSLT);
        drop(dev);
        let dev = ShmDev::open(&t.0, 0, &small()).unwrap();
        dev.configure(&small()).unwrap();
        let h = RingLayout::header_for(0, &small(), page_size());
        assert_eq!(allocated().0, ctl_size() as u64 + h.payload_offset + h.payload_size);
        dev.start().unwrap();
        assert_eq!(dev.batch(BatchOp::Reserve, &mut r).unwrap(), 1);
    }

    /// A full filesystem makes CONFIGURE fail with ENOSPC and leaves the old ring usable
    /// (before: the file was truncated and regrown sparse, and the first touch of a missing
    /// page killed every user with SIGBUS). Needs root to mount a 1 MiB tmpfs.
    #[test]
    #[cfg_attr(miri, ignore = "Miri cannot mount")]
    fn configure_on_a_full_filesystem_is_enospc_not_sigbus() {
        let mut t = TmpPath::new("full");
        let dir = t.0.with_extension("mnt");
        let _ = std::fs::create_dir(&dir);
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "rtpmgr-test"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            let _ = std::fs::remove_dir(&dir);
            rtpmgr_testkit::skip(
                "shm::configure_on_a_full_filesystem_is_enospc_not_sigbus",
                "cannot mount a tmpfs (not root?)",
            );
            return;
        }
        struct Umount(PathBuf);
        impl Drop for Umount {
            fn drop(&mut self) {
                let _ = std::process::Command::new("umount").arg(&self.0).status();
                let _ = std::fs::remove_dir(&self.0);
            }
        }
        let _umount = Umount(dir.clone());
        t.1.clear();
        let ring = dir.join("rtpmgr-0");
        let dev = ShmDev::open(&ring, 0, &small()).unwrap();
        let big = RtpmConfig { ring_order: 10, slot_payload: 2048, ..small() };
        assert_eq!(dev.configure(&big).unwrap_err(), Errno::ENOSPC);
        assert_eq!(dev.info().unwrap().config.ring_order, 3, "the old ring is kept");
        dev.start().unwrap();
        let mut r = [RtpmSlotRef::default()];
        assert_eq!(dev.batch(BatchOp::Reserve, &mut r).unwrap(), 1, "and still works");
        drop(dev);
    }

    /// An opener in another PID namespace (a container sharing /dev/shm) is never taken for
    /// dead because its pid means nothing here; an opener of our namespace whose process is
    /// gone is reclaimed.
    #[test]
    #[cfg_attr(miri, ignore = "Miri cannot map files")]
    fn opener_of_another_pid_namespace_is_not_reclaimed() {
        let t = TmpPath::new("pidns");
        let dev = ShmDev::open(&t.0, 0, &small()).unwrap();
        let ours = pid_namespace();
        assert_ne!(ours, 0, "/proc/self/ns/pid is readable");
        // A pid that no process of this namespace has.
        let gone = (3_000_000..4_000_000)
            .find(|&p| nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), None) == Err(Errno::ESRCH))
            .unwrap();
        let plant = |pid_ns: u64| {
            let mut g = dev.lock().unwrap();
            let l = g.locked();
            let i = l.handles.iter().position(|h| h.in_use == 0).unwrap();
            l.handles[i] = HandleEnt { in_use: 1, pid: gone, start_time: 1, gen: 99, mappings: 0, pid_ns };
        };
        plant(ours + 1);
        // Opening a handle scans for dead openers.
        let openers = ShmDev::open(&t.0, 0, &small()).unwrap().status().unwrap().openers;
        assert_eq!(openers, 3, "the foreign-namespace opener is kept");
        let mut g = dev.lock().unwrap();
        g.locked().handles.iter_mut().filter(|h| h.pid == gone).for_each(|h| h.pid_ns = ours);
        drop(g);
        let openers = ShmDev::open(&t.0, 0, &small()).unwrap().status().unwrap().openers;
        assert_eq!(openers, 2, "a dead opener of our namespace is reclaimed");
    }
}

//! The mapped ring and its guards: [`Ring`], [`Producer`], [`Consumer`], [`WriteSlot`],
//! [`ReadSlot`].
//!
//! Vocabulary (the UAPI's): the producer RESERVEs slots, writes them, PUSHes them; the consumer
//! POPs slots, reads them, RELEASEs them. Guards make the last step of each side automatic:
//! a dropped [`WriteSlot`] goes back to its producer's spare list (the next reserve hands it out
//! again, in ring order, which saves a CANCEL and a RESERVE), and the spares still held when the
//! producer and its last slot are gone are CANCELled, so that they never block the ring; a
//! dropped [`ReadSlot`] is queued for release and flushed in batches.

use crate::error::{Context, Error, Result};
use crate::layout::{page_size, RingLayout, IDX_CONSUMER, IDX_PRODUCER, IDX_RELEASE, IDX_RESERVE};
use crate::sys::{remaining, Mmap};
use crate::{Channel, ChannelInner, Dev, Dir, SlotOp};
use nix::errno::Errno;
use rtpmgr_abi::*;
use std::mem::ManuallyDrop;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

struct RingInner {
    chan: Arc<ChannelInner>,
    layout: RingLayout,
    /// Meta region, read-only: header page and descriptor table.
    meta: ManuallyDrop<Mmap>,
    /// Payload region, read-write.
    payload: ManuallyDrop<Mmap>,
    shm_token: Option<crate::shm::ShmMapToken>,
    /// The channel's borrow table, shared with every other mapping of the channel.
    borrowed: Arc<BorrowTable>,
    /// Entries the ring handed back that failed validation (see [`Ring::invalid_entries`]).
    invalid: AtomicU64,
}

/// A slot entry for a batch call (other fields zero, as the ABI requires).
fn slot_ref(index: u32, len: u32, arrival_ns: u64) -> RtpmSlotRef {
    let mut r = RtpmSlotRef::default();
    (r.index, r.len, r.arrival_ns) = (index, len, arrival_ns);
    r
}

/// Per slot of a channel: which guards of this process borrow its payload ([`BORROW_WRITE`],
/// [`BORROW_READ`]). A guard is only created for a slot nobody borrows, so even a ring that hands
/// out one slot twice (or a RECLAIM that gives it to another handle of ours) cannot make safe
/// code hold `&mut` and `&` to the same bytes.
///
/// One table per channel, not per mapping: the ring gives slots to the open channel, and every
/// [`Ring`] of it (`Channel::producer` and `Channel::consumer` map the ring separately) lends
/// out the same slots.
pub(crate) struct BorrowTable {
    slots: Box<[AtomicU8]>,
}

impl BorrowTable {
    /// The table of `chan` for a ring of `slot_count` slots: the one its live mappings share, or
    /// a new one when none is mapped (a channel is only reconfigured while nothing maps it).
    /// Err(the live table's size) if a live mapping has another slot count.
    fn of_channel(chan: &ChannelInner, slot_count: u32) -> std::result::Result<Arc<BorrowTable>, usize> {
        let mut w = chan.borrows.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = w.upgrade() {
            return if t.slots.len() == slot_count as usize { Ok(t) } else { Err(t.slots.len()) };
        }
        let t = Arc::new(BorrowTable { slots: (0..slot_count).map(|_| AtomicU8::new(0)).collect() });
        *w = Arc::downgrade(&t);
        Ok(t)
    }

    /// Marks slot `index` borrowed by `kind`; false if out of range or borrowed already.
    fn try_borrow(&self, index: u32, kind: u8) -> bool {
        self.slots
            .get(index as usize)
            .is_some_and(|b| b.compare_exchange(0, kind, Ordering::Acquire, Ordering::Relaxed).is_ok())
    }

    fn unborrow(&self, index: u32, kind: u8) {
        if let Some(b) = self.slots.get(index as usize) {
            b.fetch_and(!kind, Ordering::Release);
        }
    }
}

/// The channel's handle on its [`BorrowTable`] (kept by [`ChannelInner`]; alive while a mapping
/// is).
pub(crate) type BorrowTableRef = Mutex<Weak<BorrowTable>>;

/// A [`WriteSlot`] borrows the slot's payload mutably.
const BORROW_WRITE: u8 = 1;
/// A [`ReadSlot`] borrows the slot's payload.
const BORROW_READ: u8 = 2;

impl RingInner {
    /// Marks slot `index` borrowed by a new guard of kind `kind`; false (and the entry counted
    /// invalid) if it is out of range or any guard of this process already borrows it.
    fn borrow(&self, index: u32, kind: u8, what: &str) -> bool {
        let ok = self.borrowed.try_borrow(index, kind);
        if !ok {
            self.reject(&format!("{what}: slot {index} is out of range or already held by a guard"));
        }
        ok
    }

    /// Ends a guard's borrow of slot `index`.
    fn unborrow(&self, index: u32, kind: u8) {
        self.borrowed.unborrow(index, kind);
    }

    /// Counts and logs an entry of the ring that is never handed to the caller.
    fn reject(&self, why: &str) {
        self.invalid.fetch_add(1, Ordering::Relaxed);
        log::error!(
            "{}: the ring returned an invalid entry ({why}; {} slots of {} bytes): ignored",
            self.chan.name,
            self.layout.slot_count,
            self.layout.slot_payload
        );
    }
}

impl Drop for RingInner {
    fn drop(&mut self) {
        // SAFETY: the mappings are dropped exactly once, here; every guard that borrows them
        // holds an Arc<RingInner>, so none is alive any more.
        unsafe {
            ManuallyDrop::drop(&mut self.meta);
            ManuallyDrop::drop(&mut self.payload);
        }
        // Unmapped first, then un-counted: CONFIGURE in another process must never shrink the
        // file under a mapping that still exists.
        if let (Some(t), Dev::Shm(s)) = (self.shm_token.take(), &self.chan.dev) {
            s.unmap(t);
        }
    }
}

/// A mapped ring: the validated layout plus the two mappings. Cheap to clone (shared).
///
/// The mapping lives as long as any clone, [`Producer`], [`Consumer`] or slot guard of it.
#[derive(Clone)]
pub struct Ring {
    inner: Arc<RingInner>,
}

impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring").field("channel", &self.inner.chan.name).field("layout", &self.inner.layout).finish()
    }
}

impl Ring {
    pub(crate) fn map(chan: Arc<ChannelInner>) -> Result<Ring> {
        let ctx = chan.ctx("map ring");
        let info = match &chan.dev {
            Dev::Kernel(k) => k.info(),
            Dev::Shm(s) => s.info(),
        }
        .context(|| ctx.clone())?;
        let meta_size = usize::try_from(info.meta_size).map_err(|_| Error::sys(&ctx, Errno::EOVERFLOW))?;
        let payload_size = usize::try_from(info.payload_size).map_err(|_| Error::sys(&ctx, Errno::EOVERFLOW))?;
        let (meta, payload, shm_token) = match &chan.dev {
            Dev::Kernel(k) => {
                let (m, p) = k.map(meta_size, info.payload_offset, payload_size).context(|| ctx.clone())?;
                (m, p, None)
            }
            Dev::Shm(s) => {
                let (m, p, t) = s.map().context(|| ctx.clone())?;
                (m, p, Some(t))
            }
        };
        let checked = Self::validate(&meta, &payload, &info, &ctx).and_then(|layout| {
            BorrowTable::of_channel(&chan, layout.slot_count).map(|t| (layout, t)).map_err(|live| Error::BadHeader {
                context: ctx.clone(),
                reason: format!(
                    "{} slots, but a live mapping of this channel has {live}: reconfigured while mapped",
                    layout.slot_count
                ),
            })
        });
        let (layout, borrowed) = match checked {
            Ok(lt) => lt,
            Err(e) => {
                // Unmap before un-counting, as RingInner::drop does.
                drop((meta, payload));
                if let (Some(t), Dev::Shm(s)) = (shm_token, &chan.dev) {
                    s.unmap(t);
                }
                return Err(e);
            }
        };
        let inner = RingInner {
            chan,
            layout,
            meta: ManuallyDrop::new(meta),
            payload: ManuallyDrop::new(payload),
            shm_token,
            borrowed,
            invalid: AtomicU64::new(0),
        };
        Ok(Ring { inner: Arc::new(inner) })
    }

    /// Decodes the header page of a fresh mapping and checks it against GET_INFO and against
    /// what was actually mapped.
    fn validate(meta: &Mmap, payload: &Mmap, info: &RtpmInfo, ctx: &str) -> Result<RingLayout> {
        let page_len = page_size().min(meta.len());
        // SAFETY: the meta mapping is at least page_len bytes long and readable.
        let page = unsafe { crate::sys::copy_shared(meta.ptr(), page_len) };
        let layout = RingLayout::decode(&page, page_size(), ctx)?;
        layout.check_info(info, ctx)?;
        if layout.meta_size > meta.len() || layout.payload_size > payload.len() {
            return Err(Error::BadHeader { context: ctx.to_string(), reason: "regions larger than mapped".into() });
        }
        Ok(layout)
    }

    /// The validated layout from the header page.
    pub fn layout(&self) -> &RingLayout {
        &self.inner.layout
    }

    /// The channel this ring belongs to.
    pub fn channel(&self) -> Channel {
        Channel { inner: self.inner.chan.clone() }
    }

    /// A producer handle (reserve, write, push).
    pub fn producer(&self) -> Producer {
        Producer {
            ring: self.clone(),
            spares: Arc::new(SpareSlots::new(self.inner.chan.clone(), self.inner.borrowed.clone())),
        }
    }

    /// A consumer handle (pop, read, release).
    pub fn consumer(&self) -> Consumer {
        Consumer {
            ring: self.clone(),
            queue: Arc::new(ReleaseQueue {
                chan: self.inner.chan.clone(),
                pending: Mutex::new(Pending { idx: Vec::new(), consumer_alive: true, consumer_waiting: false }),
                // Never more pending than a quarter of the ring: held-back releases must not be
                // what starves the producer.
                threshold: AtomicUsize::new((self.inner.layout.slot_count as usize / 4).clamp(1, 32)),
            }),
        }
    }

    /// The index words of the header page: `[reserve, producer, consumer, release]`, each read
    /// with acquire semantics (pairing with the ring's store-release). Hints only (fill level
    /// without a syscall); ownership is the ring's.
    pub fn indices(&self) -> [u32; 4] {
        [IDX_RESERVE, IDX_PRODUCER, IDX_CONSUMER, IDX_RELEASE].map(|i| {
            // SAFETY: the offset was validated (4-aligned, inside the header page of the live
            // read-only meta mapping, which the Arc keeps mapped); the ring changes the word only
            // with atomic stores.
            unsafe { crate::sys::load_index_word(self.inner.meta.ptr().add(self.inner.layout.index_off[i]).cast()) }
        })
    }

    /// Entries (slot index and length) that the ring handed back from a reserve or a pop and
    /// that failed validation: index out of range, a slot a guard of this process already
    /// holds, or a length larger than a slot. They are counted, logged and never handed out.
    /// Always 0 with a sane ring.
    pub fn invalid_entries(&self) -> u64 {
        self.inner.invalid.load(Ordering::Relaxed)
    }

    /// READY slots between consumer and producer, from the header page (a hint).
    pub fn ready_hint(&self) -> u32 {
        let [_, p, c, _] = self.indices();
        p.wrapping_sub(c).min(self.inner.layout.slot_count)
    }

    /// Slots that can be reserved right now, from the header page (a hint).
    pub fn free_hint(&self) -> u32 {
        let [r, _, _, rel] = self.indices();
        self.inner.layout.slot_count.saturating_sub(r.wrapping_sub(rel))
    }

    /// The descriptor of slot `index` as the ring last wrote it (a copy).
    ///
    /// # Panics
    /// If `index >= slot_count`.
    pub fn desc(&self, index: u32) -> RtpmSlotDesc {
        assert!(index < self.inner.layout.slot_count, "slot index {index} out of range");
        let l = &self.inner.layout;
        // SAFETY: index < slot_count, and desc_offset + slot_count * desc_size <= meta_size <=
        // the mapped length (checked in map); volatile because the ring writes it concurrently
        // for slots we do not own (for owned slots it is stable).
        unsafe {
            std::ptr::read_volatile(
                self.inner.meta.ptr().add(l.desc_offset + index as usize * l.desc_size as usize).cast(),
            )
        }
    }

    /// Address of slot `index`'s payload in this mapping (for zero-copy tests and diagnostics).
    ///
    /// # Panics
    /// If `index >= slot_count`.
    pub fn payload_ptr(&self, index: u32) -> *mut u8 {
        assert!(index < self.inner.layout.slot_count, "slot index {index} out of range");
        // SAFETY: slot_count * slot_stride <= payload_size <= the mapped length (checked in map).
        unsafe { self.inner.payload.ptr().add(index as usize * self.inner.layout.slot_stride as usize) }
    }

    fn same(&self, other: &Arc<RingInner>) -> bool {
        Arc::ptr_eq(&self.inner, other)
    }

    fn ctx(&self, what: &str) -> String {
        self.inner.chan.ctx(what)
    }
}

/// Producer side of a ring: reserve slots, write payloads in place, push them.
///
/// Operations never block: a full ring answers `EAGAIN` (counted in `overruns`, or making room
/// under [`crate::DropPolicy::DropOldest`]). The `*_wait` variants wait for room first.
#[derive(Debug)]
pub struct Producer {
    ring: Ring,
    /// Slots reserved by this producer and given back unpushed: handed out again first.
    spares: Arc<SpareSlots>,
}

/// The reserved, unpushed slots of one [`Producer`] and its [`WriteSlot`]s. Shared by all of
/// them; when the last one goes, the slots still here are CANCELled (ABI 2.0): a dropped
/// producer never leaves reservations that block the ring until its file is closed.
struct SpareSlots {
    idx: Mutex<Vec<u32>>,
    chan: Arc<ChannelInner>,
    borrowed: Arc<BorrowTable>,
}

impl SpareSlots {
    fn new(chan: Arc<ChannelInner>, borrowed: Arc<BorrowTable>) -> SpareSlots {
        SpareSlots { idx: Mutex::new(Vec::new()), chan, borrowed }
    }
}

impl std::ops::Deref for SpareSlots {
    type Target = Mutex<Vec<u32>>;
    fn deref(&self) -> &Mutex<Vec<u32>> {
        &self.idx
    }
}

impl std::fmt::Debug for SpareSlots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.idx.lock().unwrap_or_else(|p| p.into_inner()).iter()).finish()
    }
}

impl Drop for SpareSlots {
    fn drop(&mut self) {
        let mut idx = std::mem::take(self.idx.get_mut().unwrap_or_else(|p| p.into_inner()));
        // A spare that a guard borrows is no longer ours to cancel: a RECLAIM took it and the
        // ring handed it to another producer of this channel, whose WriteSlot writes it now.
        // Borrowed for the CANCEL, so that no guard can be made over it meanwhile.
        idx.retain(|&i| self.borrowed.try_borrow(i, BORROW_WRITE));
        let mut refs: Vec<RtpmSlotRef> = idx.iter().map(|&i| RtpmSlotRef::new(i, 0, 0)).collect();
        let mut rest = &mut refs[..];
        while !rest.is_empty() {
            let n = rest.len().min(RTPM_BATCH_MAX as usize);
            // The call stops at the first entry it refuses: skip that one and go on. A refusal
            // means the slot is no longer ours (an administrator's RECLAIM took it).
            let skip = match self.chan.batch(SlotOp::Cancel, &mut rest[..n]) {
                Ok(done) if done == n => n,
                Ok(done) => done + 1,
                Err(e) => {
                    log::debug!("{}: {e}", self.chan.ctx(&format!("cancel of slot {}", rest[0].index)));
                    1
                }
            };
            rest = &mut rest[skip..];
        }
        for i in idx {
            self.borrowed.unborrow(i, BORROW_WRITE);
        }
    }
}

impl Producer {
    /// The ring.
    pub fn ring(&self) -> &Ring {
        &self.ring
    }

    /// Reserves up to `n` FREE slots, in ring order (spare slots first). Returns at least one.
    ///
    /// # Errors
    /// `EAGAIN` if the ring is full (or handed back only invalid entries, see
    /// [`Ring::invalid_entries`]), `EPIPE` if the channel is stopped.
    pub fn reserve_batch(&mut self, n: usize) -> Result<Vec<WriteSlot>> {
        let mut out = Vec::with_capacity(n);
        // Entries accounted for (guards made or entries rejected): bounds the loop even when a
        // hostile ring answers every call with invalid entries.
        let mut taken = 0;
        {
            let mut spares = self.spares.lock().unwrap_or_else(|p| p.into_inner());
            if !spares.is_empty() {
                // Ring order = distance from the release index; spares predate any new reserve.
                let rel = self.ring.indices()[3];
                let mask = self.ring.layout().slot_count - 1;
                spares.sort_by_key(|&i| i.wrapping_sub(rel) & mask);
                let take = n.min(spares.len());
                taken += take;
                out.extend(spares.drain(..take).filter_map(|index| self.guard(index)));
            }
        }
        // Sized to the request: zeroing a full 256-entry array costs more than the call.
        let mut refs = vec![RtpmSlotRef::default(); n.clamp(1, RTPM_BATCH_MAX as usize)];
        while taken < n {
            let want = (n - taken).min(refs.len());
            match self.ring.inner.chan.batch(SlotOp::Reserve, &mut refs[..want]) {
                Ok(done) => {
                    taken += done;
                    out.extend(refs[..done.min(want)].iter().filter_map(|r| self.guard(r.index)));
                    if done < want {
                        break;
                    }
                }
                Err(_) if !out.is_empty() => break,
                Err(e) => return Err(Error::sys(self.ring.ctx("reserve"), e)),
            }
        }
        if out.is_empty() {
            return Err(Error::sys(self.ring.ctx("reserve: only invalid entries from the ring"), Errno::EAGAIN));
        }
        Ok(out)
    }

    /// Like [`Producer::reserve_batch`], but waits up to `timeout` (None: forever) for room.
    /// Returns an empty Vec on timeout or when a signal handler ran during the wait (the caller
    /// looks at whatever flag its handler sets).
    ///
    /// Under [`crate::DropPolicy::DropOldest`] a full ring with a READY slot to drop counts as
    /// room: the reserve drops the oldest packet, as [`Producer::reserve_batch`] does.
    ///
    /// # Errors
    /// `EPIPE` if the channel is stopped.
    pub fn reserve_batch_wait(&mut self, n: usize, timeout: Option<Duration>) -> Result<Vec<WriteSlot>> {
        let deadline = timeout.map(|t| Instant::now() + t);
        // The header's fill level says whether a reserve is worth a call; once the ring said
        // "writable", reserve whatever the level says: a full drop-oldest ring stays full (and
        // writable) until a reserve drops a packet, so trusting the level there spins.
        let mut try_reserve =
            !self.spares.lock().unwrap_or_else(|p| p.into_inner()).is_empty() || self.ring.free_hint() > 0;
        loop {
            if try_reserve {
                match self.reserve_batch(n) {
                    Err(e) if e.errno() == Errno::EAGAIN => {}
                    r => return r,
                }
            }
            match self.ring.inner.chan.wait(Dir::Writable, remaining(deadline)) {
                Ok(true) => try_reserve = true,
                Ok(false) if remaining(deadline).is_some_and(|d| d.is_zero()) => return Ok(Vec::new()),
                Ok(false) => try_reserve = self.ring.free_hint() > 0,
                Err(Errno::EINTR) => return Ok(Vec::new()),
                Err(e) => return Err(Error::sys(self.ring.ctx("wait writable"), e)),
            }
        }
    }

    /// Reserves one slot. See [`Producer::reserve_batch`].
    pub fn reserve(&mut self) -> Result<WriteSlot> {
        Ok(self.reserve_batch(1)?.pop().expect("reserve_batch returns at least one slot"))
    }

    /// Pushes one slot READY.
    ///
    /// # Errors
    /// `EINVAL` for a slot of another ring or a length of 0; `EPIPE` if the channel is stopped
    /// (the slot is kept as a spare).
    pub fn push(&mut self, slot: WriteSlot) -> Result<()> {
        self.push_batch(vec![slot]).map(drop)
    }

    /// Pushes slots READY in the given order (best in reservation order); returns how many were
    /// pushed. Slots after the first one the ring refuses are kept as spares.
    ///
    /// # Errors
    /// The errno of the first slot if none was pushed (`EPIPE` stopped, `EINVAL` bad length).
    pub fn push_batch(&mut self, slots: Vec<WriteSlot>) -> Result<usize> {
        if let Some(s) = slots.iter().find(|s| !self.ring.same(&s.ring)) {
            return Err(Error::sys(self.ring.ctx(&format!("push slot {} of another ring", s.index)), Errno::EINVAL));
        }
        let mut slots = slots;
        let mut pushed = 0;
        // Sized to the request: zeroing a full 256-entry array costs more than the call.
        let mut refs = vec![RtpmSlotRef::default(); slots.len().clamp(1, RTPM_BATCH_MAX as usize)];
        for chunk in slots.chunks_mut(RTPM_BATCH_MAX as usize) {
            for (r, s) in refs.iter_mut().zip(chunk.iter()) {
                *r = slot_ref(s.index, s.len, s.arrival_ns);
                // The guards are ours by value, so nothing borrows their payload any more; once
                // pushed, our own consumer may pop the slot before these guards are dropped.
                s.ring.unborrow(s.index, BORROW_WRITE);
            }
            match self.ring.inner.chan.batch(SlotOp::Push, &mut refs[..chunk.len()]) {
                Ok(done) => {
                    for s in &mut chunk[..done] {
                        s.live = false;
                    }
                    pushed += done;
                    if done < chunk.len() {
                        break;
                    }
                }
                Err(_) if pushed > 0 => break,
                Err(e) => return Err(Error::sys(self.ring.ctx("push"), e)),
            }
        }
        Ok(pushed)
    }

    /// Copies `data` into a fresh slot and pushes it (the one-packet convenience path).
    ///
    /// # Errors
    /// As [`Producer::reserve_batch`] and [`Producer::push`]; `EMSGSIZE` if `data` does not fit.
    pub fn write(&mut self, data: &[u8]) -> Result<()> {
        let mut s = self.reserve()?;
        s.fill(data)?;
        self.push(s)
    }

    /// Waits until a slot can be reserved; false on timeout or when a signal handler ran.
    pub fn wait_writable(&self, timeout: Option<Duration>) -> Result<bool> {
        crate::signal_is_false(self.ring.inner.chan.wait(Dir::Writable, timeout))
            .context(|| self.ring.ctx("wait writable"))
    }

    /// Reserved slots this producer holds as spares (returned unpushed).
    pub fn spare_count(&self) -> usize {
        self.spares.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// A guard for a slot the ring reserved for us; None if the entry fails validation.
    fn guard(&self, index: u32) -> Option<WriteSlot> {
        if !self.ring.inner.borrow(index, BORROW_WRITE, "reserve") {
            return None;
        }
        Some(WriteSlot {
            ring: self.ring.inner.clone(),
            spares: self.spares.clone(),
            index,
            len: 0,
            arrival_ns: 0,
            live: true,
        })
    }
}

/// A reserved slot: write the payload in place, set its length, push it with its [`Producer`].
/// Dropped unpushed, it returns to the producer as a spare.
pub struct WriteSlot {
    ring: Arc<RingInner>,
    spares: Arc<SpareSlots>,
    index: u32,
    len: u32,
    arrival_ns: u64,
    /// Still reserved by us (not pushed).
    live: bool,
}

impl std::fmt::Debug for WriteSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteSlot").field("index", &self.index).field("len", &self.len).finish()
    }
}

impl WriteSlot {
    /// Slot index.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// Usable bytes of this slot (`slot_payload`).
    pub fn capacity(&self) -> usize {
        self.ring.layout.slot_payload as usize
    }

    /// Payload length to push (0 until set).
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// True while no length is set.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The whole payload buffer, in the ring memory.
    pub fn buf_mut(&mut self) -> &mut [u8] {
        let l = &self.ring.layout;
        // SAFETY: the slot is PRODUCING and owned by this open channel; the ring lets nobody
        // else write it or read it until it is pushed, and the guard is the only handle to it in
        // this process (not Clone). The buffer lies inside the payload mapping (validated
        // layout) that the Arc keeps alive.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.ring.payload.ptr().add(self.index as usize * l.slot_stride as usize),
                l.slot_payload as usize,
            )
        }
    }

    /// Sets the payload length to push.
    ///
    /// # Errors
    /// `EMSGSIZE` if `len` exceeds [`WriteSlot::capacity`].
    pub fn set_len(&mut self, len: usize) -> Result<()> {
        if len > self.capacity() {
            return Err(Error::sys(
                format!("set length {len} of slot {} (capacity {})", self.index, self.capacity()),
                Errno::EMSGSIZE,
            ));
        }
        self.len = len as u32;
        Ok(())
    }

    /// Copies `data` into the slot and sets the length.
    ///
    /// # Errors
    /// `EMSGSIZE` if `data` does not fit.
    pub fn fill(&mut self, data: &[u8]) -> Result<()> {
        self.set_len(data.len())?;
        self.buf_mut()[..data.len()].copy_from_slice(data);
        Ok(())
    }

    /// Sets the arrival time (CLOCK_MONOTONIC ns) to record; 0 (default) lets the ring stamp it.
    pub fn set_arrival_ns(&mut self, ns: u64) {
        self.arrival_ns = ns;
    }
}

impl Drop for WriteSlot {
    fn drop(&mut self) {
        self.ring.unborrow(self.index, BORROW_WRITE);
        if self.live {
            self.spares.lock().unwrap_or_else(|p| p.into_inner()).push(self.index);
        }
    }
}

struct Pending {
    idx: Vec<u32>,
    consumer_alive: bool,
    /// The consumer sleeps in a wait and will not flush: release at once (a producer waiting
    /// for exactly these slots would otherwise deadlock with it).
    consumer_waiting: bool,
}

/// Releases queued by dropped [`ReadSlot`]s, flushed in batches.
struct ReleaseQueue {
    chan: Arc<ChannelInner>,
    pending: Mutex<Pending>,
    threshold: AtomicUsize,
}

impl ReleaseQueue {
    fn release(&self, index: u32) {
        let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        p.idx.push(index);
        // Without a consumer to flush later (or with a full batch), release now.
        if !p.consumer_alive || p.consumer_waiting || p.idx.len() >= self.threshold.load(Ordering::Relaxed) {
            if let Err(e) = self.flush_locked(&mut p) {
                log::warn!("{e}");
            }
        }
    }

    fn flush(&self) -> Result<usize> {
        let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        self.flush_locked(&mut p)
    }

    fn flush_locked(&self, p: &mut Pending) -> Result<usize> {
        // Sized to the request: zeroing a full 256-entry array costs more than the call.
        let mut refs = vec![RtpmSlotRef::default(); p.idx.len().clamp(1, RTPM_BATCH_MAX as usize)];
        let mut released = 0;
        let mut first_err = None;
        while !p.idx.is_empty() {
            let n = p.idx.len().min(refs.len());
            for (r, &i) in refs.iter_mut().zip(&p.idx[..n]) {
                *r = slot_ref(i, 0, 0);
            }
            let done = match self.chan.batch(SlotOp::Release, &mut refs[..n]) {
                Ok(d) => d,
                Err(e) => {
                    first_err.get_or_insert(Error::sys(self.chan.ctx(&format!("release slot {}", refs[0].index)), e));
                    0
                }
            };
            released += done;
            // Entry `done` (if any) failed: it is not ours to release any more (the ring said
            // so); drop it from the queue rather than retry it forever.
            let drop_n = (done + 1).min(n);
            if done < n && first_err.is_none() {
                first_err =
                    Some(Error::sys(self.chan.ctx(&format!("release slot {}", refs[done].index)), Errno::EBADSLT));
            }
            p.idx.drain(..drop_n);
        }
        match first_err {
            Some(e) if released == 0 => Err(e),
            Some(e) => {
                log::warn!("{e}");
                Ok(released)
            }
            None => Ok(released),
        }
    }
}

/// Consumer side of a ring: pop READY slots as [`ReadSlot`] guards that release on drop.
///
/// Releases of dropped guards are queued and flushed with one RELEASE_BATCH when
/// [`Consumer::set_release_batch`] of them are pending, before every pop or wait, on
/// [`Consumer::flush`], and when the consumer is dropped. While the consumer sleeps in a wait, and
/// after it is dropped, guards release at once: a held-back release can never be what a
/// waiting producer waits for.
#[derive(Debug)]
pub struct Consumer {
    ring: Ring,
    queue: Arc<ReleaseQueue>,
}

impl std::fmt::Debug for ReleaseQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReleaseQueue").field("channel", &self.chan.name).finish()
    }
}

impl Consumer {
    /// The ring.
    pub fn ring(&self) -> &Ring {
        &self.ring
    }

    /// Pops up to `n` READY slots, oldest first. Returns at least one.
    ///
    /// # Errors
    /// `EAGAIN` if nothing is READY (counted in `underruns`), or if the ring handed back only
    /// invalid entries (see [`Ring::invalid_entries`]).
    pub fn pop_batch(&mut self, n: usize) -> Result<Vec<ReadSlot>> {
        self.flush()?;
        let mut out = Vec::with_capacity(n.min(RTPM_BATCH_MAX as usize));
        // Sized to the request: zeroing a full 256-entry array costs more than the call.
        let mut refs = vec![RtpmSlotRef::default(); n.clamp(1, RTPM_BATCH_MAX as usize)];
        let mut taken = 0;
        while taken < n {
            let want = (n - taken).min(refs.len());
            match self.ring.inner.chan.batch(SlotOp::Pop, &mut refs[..want]) {
                Ok(done) => {
                    taken += done;
                    out.extend(refs[..done.min(want)].iter().filter_map(|r| self.guard(r)));
                    if done < want {
                        break;
                    }
                }
                Err(_) if !out.is_empty() => break,
                Err(e) => return Err(Error::sys(self.ring.ctx("pop"), e)),
            }
        }
        if out.is_empty() {
            return Err(Error::sys(self.ring.ctx("pop: only invalid entries from the ring"), Errno::EAGAIN));
        }
        Ok(out)
    }

    /// Like [`Consumer::pop_batch`], but waits up to `timeout` (None: forever) for a READY slot.
    /// Returns an empty Vec on timeout or when a signal handler ran during the wait (the caller
    /// looks at whatever flag its handler sets).
    pub fn pop_batch_wait(&mut self, n: usize, timeout: Option<Duration>) -> Result<Vec<ReadSlot>> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut try_pop = self.ring.ready_hint() > 0;
        loop {
            if try_pop {
                match self.pop_batch(n) {
                    Err(e) if e.errno() == Errno::EAGAIN => {}
                    r => return r,
                }
            }
            match self.wait_flushed(remaining(deadline)) {
                Ok(true) => try_pop = true,
                Ok(false) if remaining(deadline).is_some_and(|d| d.is_zero()) => return Ok(Vec::new()),
                Ok(false) => try_pop = false,
                Err(e) if e.errno() == Errno::EINTR => return Ok(Vec::new()),
                Err(e) => return Err(e),
            }
        }
    }

    /// Pops one slot. See [`Consumer::pop_batch`].
    pub fn pop(&mut self) -> Result<ReadSlot> {
        Ok(self.pop_batch(1)?.pop().expect("pop_batch returns at least one slot"))
    }

    /// Releases every queued slot now; returns how many.
    pub fn flush(&self) -> Result<usize> {
        self.queue.flush()
    }

    /// Number of dropped guards that triggers a flush (default: a quarter of the ring, at most
    /// 32; at least 1). While the consumer waits, guards release immediately.
    pub fn set_release_batch(&self, n: usize) {
        self.queue.threshold.store(n.clamp(1, RTPM_BATCH_MAX as usize), Ordering::Relaxed);
    }

    /// Waits until a slot can be popped; false on timeout or when a signal handler ran.
    /// Flushes releases first.
    pub fn wait_readable(&self, timeout: Option<Duration>) -> Result<bool> {
        match self.wait_flushed(timeout) {
            Err(e) if e.errno() == Errno::EINTR => Ok(false),
            r => r,
        }
    }

    /// Flushes, then waits for a READY slot with guards releasing immediately meanwhile;
    /// `EINTR` when a signal handler ran.
    fn wait_flushed(&self, timeout: Option<Duration>) -> Result<bool> {
        {
            let mut p = self.queue.pending.lock().unwrap_or_else(|p| p.into_inner());
            self.queue.flush_locked(&mut p)?;
            p.consumer_waiting = true;
        }
        let r = self.ring.inner.chan.wait(Dir::Readable, timeout).context(|| self.ring.ctx("wait readable"));
        let mut p = self.queue.pending.lock().unwrap_or_else(|p| p.into_inner());
        p.consumer_waiting = false;
        r
    }

    /// A guard for a slot the ring popped for us; None if the entry fails validation. A slot
    /// that is ours but claims a length larger than a slot is released at once.
    fn guard(&self, r: &RtpmSlotRef) -> Option<ReadSlot> {
        let inner = &self.ring.inner;
        if !inner.borrow(r.index, BORROW_READ, "pop") {
            return None;
        }
        if r.len > inner.layout.slot_payload {
            inner.unborrow(r.index, BORROW_READ);
            inner.reject(&format!("pop: slot {} of length {}", r.index, r.len));
            self.queue.release(r.index);
            return None;
        }
        Some(ReadSlot {
            ring: inner.clone(),
            queue: self.queue.clone(),
            index: r.index,
            len: r.len,
            arrival_ns: r.arrival_ns,
            desc: self.ring.desc(r.index),
        })
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        let mut p = self.queue.pending.lock().unwrap_or_else(|p| p.into_inner());
        p.consumer_alive = false;
        if let Err(e) = self.queue.flush_locked(&mut p) {
            log::warn!("{e}");
        }
    }
}

/// A popped slot: its payload in place and its descriptor. Released when dropped (batched
/// through its [`Consumer`]), also during a panic or in another thread.
///
/// `Send + Sync + 'static` and `AsRef<[u8]>`, so it can back a `gst::Buffer` without a copy
/// (`gst::Buffer::from_slice(slot)`); the slot is released when GStreamer frees the buffer.
pub struct ReadSlot {
    ring: Arc<RingInner>,
    queue: Arc<ReleaseQueue>,
    index: u32,
    len: u32,
    arrival_ns: u64,
    desc: RtpmSlotDesc,
}

impl std::fmt::Debug for ReadSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadSlot")
            .field("index", &self.index)
            .field("len", &self.len)
            .field("desc", &self.desc)
            .finish()
    }
}

impl ReadSlot {
    /// Slot index.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// Payload bytes.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// True for an empty payload (never for a pushed slot).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Arrival time, CLOCK_MONOTONIC ns.
    pub fn arrival_ns(&self) -> u64 {
        self.arrival_ns
    }

    /// The descriptor (RTP fields, flags), copied at pop time.
    pub fn desc(&self) -> &RtpmSlotDesc {
        &self.desc
    }

    /// True if the ring parsed a valid RTP v2 header.
    pub fn is_rtp(&self) -> bool {
        self.desc.flags & RTPM_SLOT_F_RTP != 0
    }

    /// The payload, in the ring memory.
    pub fn data(&self) -> &[u8] {
        // SAFETY: the slot is CONSUMING and owned by this open channel until the guard is
        // dropped, so no producer writes it; len <= slot_payload (clamped) and the buffer lies in
        // the payload mapping that the Arc keeps alive.
        unsafe {
            std::slice::from_raw_parts(
                self.ring.payload.ptr().add(self.index as usize * self.ring.layout.slot_stride as usize),
                self.len as usize,
            )
        }
    }
}

impl AsRef<[u8]> for ReadSlot {
    fn as_ref(&self) -> &[u8] {
        self.data()
    }
}

impl std::ops::Deref for ReadSlot {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.data()
    }
}

impl Drop for ReadSlot {
    fn drop(&mut self) {
        self.ring.unborrow(self.index, BORROW_READ);
        self.queue.release(self.index);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync_static<T: Send + Sync + 'static>() {}
    fn assert_send<T: Send + 'static>() {}

    /// A ring of 8 slots of 64 bytes in a private shm file, removed by the returned guard.
    fn tmp_ring(tag: &str) -> (Ring, impl Drop) {
        struct Rm(std::path::PathBuf);
        impl Drop for Rm {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
        let path = std::env::temp_dir().join(format!("rtpmgr-ring-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let cfg = crate::Config { ring_order: 3, slot_payload: 64, ..Default::default() };
        let ch = Channel::open(&crate::Backend::shm_at(&path).with_create_config(cfg)).unwrap();
        (ch.map().unwrap(), Rm(path))
    }

    /// Whatever a hostile ring hands back from RESERVE or POP, a guard is only made for an
    /// in-range slot that no other guard of this process holds, with a length that fits a slot;
    /// everything else is counted in `invalid_entries` and never handed out.
    #[test]
    #[cfg_attr(miri, ignore = "shm ring: mmap and futex syscalls")]
    fn hostile_entries_are_counted_and_never_handed_out() {
        let (ring, _rm) = tmp_ring("hostile");
        let (tx, rx) = (ring.producer(), ring.consumer());
        let e = |index, len| slot_ref(index, len, 0);
        let one = rx.guard(&e(1, 10)).expect("a sane entry");
        assert!(rx.guard(&e(99, 10)).is_none(), "index out of range");
        assert!(rx.guard(&e(1, 10)).is_none(), "slot already held by a ReadSlot");
        assert!(rx.guard(&e(2, 9999)).is_none(), "length larger than a slot");
        assert!(tx.guard(1).is_none(), "a WriteSlot over a slot a ReadSlot reads");
        assert!(tx.guard(8).is_none(), "reserve index out of range");
        let mut w = tx.guard(3).expect("a sane reserve entry");
        assert!(rx.guard(&e(3, 10)).is_none(), "a ReadSlot over a slot a WriteSlot writes");
        assert_eq!(ring.invalid_entries(), 6);
        assert_eq!((one.len(), w.buf_mut().len()), (10, 64));
        drop((one, w));
        // Borrows end with the guards.
        assert!(rx.guard(&e(1, 10)).is_some());
        assert!(tx.guard(3).is_some());
        assert_eq!(ring.invalid_entries(), 6);
    }

    /// The ring gives slots to the open channel, which `Channel::producer` and
    /// `Channel::consumer` map separately: guards of different mappings share one borrow
    /// table, so a ReadSlot is never made over a slot a WriteSlot of another mapping writes.
    #[test]
    #[cfg_attr(miri, ignore = "shm ring: mmap and futex syscalls")]
    fn mappings_of_one_channel_share_the_borrow_table() {
        let (ring, _rm) = tmp_ring("mappings");
        let ch = ring.channel();
        let (tx, rx) = (ch.producer().unwrap(), ch.consumer().unwrap());
        assert!(!tx.ring().same(&rx.ring().inner) && !ring.same(&tx.ring().inner), "three mappings");
        let w = tx.guard(3).expect("a sane reserve entry");
        assert!(rx.guard(&slot_ref(3, 10, 0)).is_none(), "a ReadSlot over another mapping's WriteSlot");
        let r = rx.guard(&slot_ref(4, 10, 0)).expect("a sane pop entry");
        assert!(ring.producer().guard(4).is_none(), "a WriteSlot over another mapping's ReadSlot");
        assert_eq!(rx.ring().invalid_entries() + ring.invalid_entries(), 2);
        drop((w, r));
        assert!(rx.guard(&slot_ref(3, 10, 0)).is_some());
        assert!(tx.guard(4).is_some());
    }

    /// The channel's table lives as long as a mapping does and is sized by the first one; a
    /// mapping of another size while one is live (a ring reconfigured under a mapping, which
    /// no sane ring allows) is refused rather than given a table of the wrong size.
    #[test]
    #[cfg_attr(miri, ignore = "shm ring: mmap and futex syscalls")]
    fn borrow_table_is_sized_by_the_live_mappings() {
        let (ring, _rm) = tmp_ring("table");
        let chan = ring.inner.chan.clone();
        assert!(Arc::ptr_eq(&BorrowTable::of_channel(&chan, 8).unwrap(), &ring.inner.borrowed));
        assert_eq!(BorrowTable::of_channel(&chan, 16).err(), Some(8));
        drop(ring);
        assert_eq!(BorrowTable::of_channel(&chan, 16).unwrap().slots.len(), 16, "no mapping left: a new table");
    }

    /// A spare slot that a RECLAIM took and the ring handed to another producer of this
    /// channel is not cancelled under that producer's WriteSlot when its old producer goes.
    #[test]
    #[cfg_attr(miri, ignore = "shm ring: mmap and futex syscalls")]
    fn dropped_producer_never_cancels_a_slot_another_producer_holds() {
        let (ring, _rm) = tmp_ring("spare");
        let ch = ring.channel();
        ch.start().unwrap();
        let mut old = ch.producer().unwrap();
        let index = old.reserve().unwrap().index();
        assert_eq!(old.spare_count(), 1, "dropped unpushed: a spare");
        // What an administrator's RECLAIM does to it (a shm ring has no RECLAIM).
        // SAFETY: no guard holds the slot: it is a spare.
        unsafe { ch.raw() }.cancel(index).unwrap();
        let mut new = ch.producer().unwrap();
        let mut held = new.reserve_batch(8).unwrap();
        assert_eq!(held.len(), 8);
        assert!(held.iter().any(|s| s.index() == index), "the ring handed the slot out again");
        drop(old);
        assert_eq!(ch.status().unwrap().producing, 8, "the old producer cancelled a slot it no longer had");
        for s in &mut held {
            s.fill(b"packet").unwrap();
        }
        assert_eq!(new.push_batch(held).unwrap(), 8);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 64, ..Default::default() })]

        /// Random POP answers: what passes is in range, unique and within the slot size, and
        /// everything else is counted.
        #[test]
        #[cfg_attr(miri, ignore = "shm ring: mmap and futex syscalls")]
        fn popped_entries_that_pass_are_sane(entries in proptest::collection::vec((0u32..12, 0u32..100), 0..24)) {
            let (ring, _rm) = tmp_ring("prop");
            let rx = ring.consumer();
            let guards: Vec<ReadSlot> = entries
                .iter()
                .filter_map(|&(index, len)| rx.guard(&slot_ref(index, len, 0)))
                .collect();
            let mut seen = std::collections::HashSet::new();
            for g in &guards {
                proptest::prop_assert!(g.index() < 8 && g.len() <= 64);
                proptest::prop_assert!(seen.insert(g.index()));
            }
            proptest::prop_assert_eq!(ring.invalid_entries() as usize, entries.len() - guards.len());
        }
    }

    /// CPU time of the calling thread.
    fn thread_cpu() -> Duration {
        let ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID).unwrap();
        Duration::new(ts.tv_sec() as u64, ts.tv_nsec() as u32)
    }

    /// A full drop-oldest ring always has room (the reserve drops the oldest READY packet), so
    /// reserve_batch_wait must reserve at once, not spin on "writable" until its timeout.
    #[test]
    #[cfg_attr(miri, ignore = "shm ring: mmap and futex syscalls")]
    fn reserve_wait_does_not_spin_on_full_drop_oldest() {
        let path = std::env::temp_dir().join(format!("rtpmgr-ring-spin-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let cfg = crate::Config { ring_order: 3, slot_payload: 64, drop_policy: crate::DropPolicy::DropOldest };
        let ch = Channel::open(&crate::Backend::shm_at(&path).with_create_config(cfg)).unwrap();
        ch.start().unwrap();
        let mut tx = ch.producer().unwrap();
        for i in 0..8u8 {
            tx.write(&[i; 16]).unwrap();
        }
        assert_eq!(tx.ring().free_hint(), 0, "the ring is full");
        // In a thread, with a watchdog: a wait that spins may never look at its timeout again,
        // and the test must fail rather than hang.
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let (t0, cpu0) = (Instant::now(), thread_cpu());
            let got = tx.reserve_batch_wait(1, Some(Duration::from_millis(500))).unwrap();
            let _ = done_tx.send((got, tx, t0.elapsed(), thread_cpu() - cpu0));
        });
        let (got, tx, elapsed, cpu) =
            done_rx.recv_timeout(Duration::from_secs(5)).expect("reserve_batch_wait(500 ms) still spinning after 5 s");
        assert_eq!(got.len(), 1, "a slot was reserved by dropping the oldest packet");
        assert_eq!(ch.stats().unwrap().drops, 1);
        assert!(elapsed < Duration::from_millis(200), "returned after {elapsed:?}");
        assert!(cpu < Duration::from_millis(100), "burnt {cpu:?} of CPU in {elapsed:?}");
        drop((got, tx, ch));
        std::fs::remove_file(&path).unwrap();
    }

    extern "C" fn on_sigusr1(_: libc::c_int) {}

    /// Runs `f` in a thread and sends that thread SIGUSR1 (which has a handler) every 20 ms until
    /// `f` returns; fails if it has not returned within 3 s.
    fn interrupted<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        // SAFETY: installs a handler that does nothing (async-signal-safe) for SIGUSR1, which no
        // other part of this test binary uses; the sigaction struct is fully initialised.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_sigusr1 as extern "C" fn(libc::c_int) as libc::sighandler_t;
            // SA_RESTART on purpose: poll(2) and a futex wait with a timeout still return EINTR.
            sa.sa_flags = libc::SA_RESTART;
            assert_eq!(libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut()), 0);
        }
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        // Joined at the end, not detached: the thread's pthread_t stays valid for pthread_kill
        // even if the thread has just finished.
        let waiter = std::thread::spawn(move || {
            // SAFETY: pthread_self has no preconditions.
            tid_tx.send(unsafe { libc::pthread_self() }).unwrap();
            let _ = done_tx.send(f());
        });
        let tid = tid_rx.recv().unwrap();
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            match done_rx.recv_timeout(Duration::from_millis(20)) {
                Ok(v) => {
                    waiter.join().unwrap();
                    return v;
                }
                Err(_) => assert!(Instant::now() < deadline, "the wait ignored the signals"),
            }
            // SAFETY: `tid` is the waiting thread, not yet joined, so its id is valid even if it
            // has just finished; SIGUSR1 has a handler, so the signal cannot kill the process.
            unsafe { libc::pthread_kill(tid, libc::SIGUSR1) };
        }
    }

    /// The `*_wait` functions return (false / an empty Vec) when a signal handler runs, even
    /// without a timeout, so that a program's shutdown flag is seen.
    #[test]
    #[cfg_attr(miri, ignore = "shm ring: mmap, futex and signals")]
    fn wait_returns_on_signal() {
        let path = std::env::temp_dir().join(format!("rtpmgr-ring-signal-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let cfg = crate::Config { ring_order: 1, slot_payload: 64, ..Default::default() };
        let ch = Channel::open(&crate::Backend::shm_at(&path).with_create_config(cfg)).unwrap();
        ch.start().unwrap();
        let ring = ch.map().unwrap();

        let mut rx = ring.consumer();
        let popped = interrupted(move || rx.pop_batch_wait(4, None).map(|v| v.len()));
        assert_eq!(popped.unwrap(), 0, "an empty ring: nothing popped, returned on the signal");
        let c = ch.clone();
        assert!(!interrupted(move || c.wait(Dir::Readable, None)).unwrap());

        // Full (reject-newest, nobody consumes): the producer waits for room.
        let mut tx = ring.producer();
        tx.write(b"one").unwrap();
        tx.write(b"two").unwrap();
        let reserved = interrupted(move || tx.reserve_batch_wait(1, None).map(|v| v.len()));
        assert_eq!(reserved.unwrap(), 0, "a full ring: nothing reserved, returned on the signal");
        drop((ring, ch));
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn guards_can_cross_threads() {
        assert_send_sync_static::<ReadSlot>();
        assert_send::<WriteSlot>();
        assert_send::<Producer>();
        assert_send::<Consumer>();
        assert_send_sync_static::<Channel>();
        assert_send_sync_static::<Ring>();
    }
}

//! The ring operations rtp_app needs, whichever backend serves them, and the checks rtp_app
//! applies to everything a backend hands back.
//!
//! Vocabulary (from include/rtp_mgr_ioctl.h): a producer RESERVEs FREE slots, writes their
//! payloads and PUSHes them READY; a consumer POPs READY slots, reads them and RELEASEs them
//! FREE. [`Ring`] is that protocol in batch form; [`Checked`] wraps any [`Ring`] and validates
//! every slot index and length that comes back from the kernel or the shm ring before rtp_app
//! touches the payload memory it names (seed 003's bug 3 was an unvalidated index).

use anyhow::{bail, Result};
use rtpmgr_abi::{RtpmConfig, RtpmInfo, RtpmSlotRef, RtpmStats, RtpmStatus};
use std::time::Duration;

/// What a non-blocking reserve or pop found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Avail {
    /// This many entries were done (at least 1).
    Done(usize),
    /// Nothing to reserve (ring full) or nothing to pop (ring empty).
    Nothing,
    /// The channel is stopped: RESERVE/PUSH fail with EPIPE until someone starts it.
    Stopped,
}

/// Control operations on a channel; they need no mapping of the ring.
pub trait Control: Send {
    /// GET_INFO: ABI version, configuration and layout.
    fn info(&self) -> Result<RtpmInfo>;
    /// GET_STATS.
    fn stats(&self) -> Result<RtpmStats>;
    /// GET_STATUS.
    fn status(&self) -> Result<RtpmStatus>;
    /// START (idempotent).
    fn start(&self) -> Result<()>;
    /// STOP (idempotent).
    fn stop(&self) -> Result<()>;
    /// RESET: zero the counters, free all slots.
    fn reset(&self) -> Result<()>;
    /// CONFIGURE (channel stopped and unmapped).
    fn configure(&self, cfg: &RtpmConfig) -> Result<()>;
}

/// One channel's mapped ring, as rtp_app uses it. Implemented for the kernel device and the shm
/// ring (both through the `rtpmgr` library) and for the in-process [`fake::FakeRing`] of tests.
pub trait Ring: Control {
    /// RESERVE up to `out.len()` FREE slots without blocking; fills `out[..n]`.
    fn reserve(&mut self, out: &mut [RtpmSlotRef]) -> Result<Avail>;
    /// PUSH `slots` READY in order; returns how many were pushed (Stopped if none because the
    /// channel is stopped).
    fn push(&mut self, slots: &[RtpmSlotRef]) -> Result<Avail>;
    /// POP up to `out.len()` READY slots, waiting up to `timeout` for the first.
    fn pop(&mut self, out: &mut [RtpmSlotRef], timeout: Duration) -> Result<Avail>;
    /// RELEASE slots this handle popped; returns how many were released.
    fn release(&mut self, slots: &[RtpmSlotRef]) -> Result<usize>;

    /// Usable payload bytes per slot.
    fn slot_payload(&self) -> usize;
    /// Slots in the ring.
    fn slot_count(&self) -> u32;
    /// Writable payload memory of slot `index` (`slot_payload` bytes). The caller guarantees
    /// the index is in range (see [`Checked`]) and that it owns the slot.
    fn payload_ptr(&mut self, index: u32) -> *mut u8;
}

impl Control for Box<dyn Ring> {
    fn info(&self) -> Result<RtpmInfo> {
        (**self).info()
    }
    fn stats(&self) -> Result<RtpmStats> {
        (**self).stats()
    }
    fn status(&self) -> Result<RtpmStatus> {
        (**self).status()
    }
    fn start(&self) -> Result<()> {
        (**self).start()
    }
    fn stop(&self) -> Result<()> {
        (**self).stop()
    }
    fn reset(&self) -> Result<()> {
        (**self).reset()
    }
    fn configure(&self, cfg: &RtpmConfig) -> Result<()> {
        (**self).configure(cfg)
    }
}

impl Ring for Box<dyn Ring> {
    fn reserve(&mut self, out: &mut [RtpmSlotRef]) -> Result<Avail> {
        (**self).reserve(out)
    }
    fn push(&mut self, slots: &[RtpmSlotRef]) -> Result<Avail> {
        (**self).push(slots)
    }
    fn pop(&mut self, out: &mut [RtpmSlotRef], timeout: Duration) -> Result<Avail> {
        (**self).pop(out, timeout)
    }
    fn release(&mut self, slots: &[RtpmSlotRef]) -> Result<usize> {
        (**self).release(slots)
    }
    fn slot_payload(&self) -> usize {
        (**self).slot_payload()
    }
    fn slot_count(&self) -> u32 {
        (**self).slot_count()
    }
    fn payload_ptr(&mut self, index: u32) -> *mut u8 {
        (**self).payload_ptr(index)
    }
}

/// Opens handles on one channel. Every thread of a run opens its own handle (producer,
/// consumer, stats), as separate processes would.
pub trait Backend: Send + Sync {
    /// Open a new handle on the channel, ring mapped.
    fn open(&self) -> Result<Box<dyn Ring>>;
    /// Open a handle, ring mapped, that no other user of the ring library has open and that
    /// keeps them out until it is dropped (their opens wait): for self-tests whose packets must
    /// not reach a pipeline. Fails if the channel is in use.
    fn open_exclusive(&self) -> Result<Box<dyn Ring>>;
    /// Open a handle for control operations only (no mapping: CONFIGURE needs that).
    fn open_control(&self) -> Result<Box<dyn Control>>;
    /// What is opened, for messages: "/dev/rtp_mgr0", "shm ring rtpmgr-0".
    fn describe(&self) -> String;
    /// True for the kernel module backend.
    fn is_kernel(&self) -> bool;
}

/// Wraps a [`Ring`] and refuses to pass on any index or length that is out of range, or any
/// slot handed out twice in one batch. Offending entries are counted and dropped, never used.
pub struct Checked<R: Ring> {
    inner: R,
    slot_count: u32,
    slot_payload: usize,
    /// Entries from the backend that failed validation.
    pub invalid: u64,
    seen: Vec<bool>,
}

impl<R: Ring> Checked<R> {
    /// Wrap `inner`, caching its geometry (which cannot change while it is mapped).
    pub fn new(inner: R) -> Result<Self> {
        let slot_count = inner.slot_count();
        let slot_payload = inner.slot_payload();
        if slot_count == 0 || !slot_count.is_power_of_two() || slot_count > 1 << 15 {
            bail!("ring reports {slot_count} slots: not a power of two in 2..32768, refusing to use it");
        }
        if !(64..=16384).contains(&slot_payload) {
            bail!("ring reports {slot_payload}-byte slots: outside 64..16384, refusing to use it");
        }
        Ok(Self { inner, slot_count, slot_payload, invalid: 0, seen: vec![false; slot_count as usize] })
    }

    /// The wrapped ring (for control operations).
    pub fn inner(&self) -> &R {
        &self.inner
    }

    /// Usable payload bytes per slot.
    pub fn slot_payload(&self) -> usize {
        self.slot_payload
    }

    /// Keep only entries whose index is in range and unique in this batch, and whose length
    /// fits a slot; compact them to the front and return how many survive.
    fn validate(&mut self, refs: &mut [RtpmSlotRef], n: usize, check_len: bool) -> usize {
        let mut keep = 0;
        for i in 0..n.min(refs.len()) {
            let r = refs[i];
            let ok = r.index < self.slot_count
                && !self.seen[r.index as usize]
                && (!check_len || (r.len as usize) <= self.slot_payload);
            if ok {
                self.seen[r.index as usize] = true;
                refs[keep] = r;
                keep += 1;
            } else {
                self.invalid += 1;
                log::error!(
                    "ring returned an invalid slot (index {}, len {}; {} slots of {} bytes): ignored",
                    r.index,
                    r.len,
                    self.slot_count,
                    self.slot_payload
                );
            }
        }
        for r in &refs[..keep] {
            self.seen[r.index as usize] = false;
        }
        keep
    }

    /// The POP validation on `refs` as if a ring had returned them all (for property tests).
    #[doc(hidden)]
    pub fn validate_for_test(&mut self, refs: &mut [RtpmSlotRef]) -> usize {
        let n = refs.len();
        self.validate(refs, n, true)
    }

    /// RESERVE, keeping only valid indices. `Done(0)` never comes back: an all-invalid batch
    /// reads as Nothing so callers cannot spin on it unbounded.
    pub fn reserve(&mut self, out: &mut [RtpmSlotRef]) -> Result<Avail> {
        match self.inner.reserve(out)? {
            Avail::Done(n) => Ok(match self.validate(out, n, false) {
                0 => Avail::Nothing,
                k => Avail::Done(k),
            }),
            other => Ok(other),
        }
    }

    /// PUSH (indices come from our own reserve, already validated).
    pub fn push(&mut self, slots: &[RtpmSlotRef]) -> Result<Avail> {
        self.inner.push(slots)
    }

    /// POP, keeping only valid entries (index in range, len within the slot).
    pub fn pop(&mut self, out: &mut [RtpmSlotRef], timeout: Duration) -> Result<Avail> {
        match self.inner.pop(out, timeout)? {
            Avail::Done(n) => Ok(match self.validate(out, n, true) {
                0 => Avail::Nothing,
                k => Avail::Done(k),
            }),
            other => Ok(other),
        }
    }

    /// RELEASE.
    pub fn release(&mut self, slots: &[RtpmSlotRef]) -> Result<usize> {
        self.inner.release(slots)
    }

    /// Mutable payloads of distinct, validated slots, in the order of `slots`.
    pub fn payloads_mut(&mut self, slots: &[RtpmSlotRef]) -> Vec<&mut [u8]> {
        let mut out = Vec::with_capacity(slots.len());
        for r in slots {
            assert!(r.index < self.slot_count, "unvalidated slot index {}", r.index);
            let p = self.inner.payload_ptr(r.index);
            // SAFETY: the index is in range (asserted; every index reaching here passed
            // `validate`), so p points at slot_payload bytes of the mapped payload region that
            // stay mapped while `self` is borrowed; indices within one batch are unique
            // (validate), so the slices do not overlap.
            out.push(unsafe { std::slice::from_raw_parts_mut(p, self.slot_payload) });
        }
        out
    }

    /// Read-only view of one popped slot's `len` bytes.
    pub fn payload(&mut self, slot: &RtpmSlotRef) -> &[u8] {
        assert!(slot.index < self.slot_count && (slot.len as usize) <= self.slot_payload);
        let p = self.inner.payload_ptr(slot.index);
        // SAFETY: index and len were validated against the ring geometry (asserted above).
        unsafe { std::slice::from_raw_parts(p, slot.len as usize) }
    }

    /// Copy `len` bytes from slot `from` to slot `to` (both owned by the caller), used only
    /// when RX compacts a batch around a malformed datagram.
    pub fn copy_slot(&mut self, from: u32, to: u32, len: usize) {
        assert!(from < self.slot_count && to < self.slot_count && len <= self.slot_payload);
        if from == to {
            return;
        }
        let src = self.inner.payload_ptr(from);
        let dst = self.inner.payload_ptr(to);
        // SAFETY: distinct in-range slots never overlap; len fits a slot.
        unsafe { std::ptr::copy_nonoverlapping(src, dst, len) };
    }
}

/// Stats and status of a channel in the shape of the stats line.
pub fn ring_counters(stats: &RtpmStats, status: Option<&RtpmStatus>) -> crate::stats::RingCounters {
    crate::stats::RingCounters {
        pushed_packets: stats.pushed_packets,
        popped_packets: stats.popped_packets,
        drops: stats.drops,
        overruns: stats.overruns,
        underruns: stats.underruns,
        rtp_lost: stats.rtp_lost,
        rtp_reordered: stats.rtp_reordered,
        rtp_duplicates: stats.rtp_duplicates,
        malformed: stats.malformed,
        reclaimed: stats.reclaimed,
        illegal_ops: stats.illegal_ops,
        ready: status.map_or(0, |s| s.ready),
        free: status.map_or(0, |s| s.free),
    }
}

pub mod fake {
    //! An in-process ring with fault injection, for tests of the workers: it can hand out
    //! corrupt indices, stay full, or be stopped, which a real backend does not do on demand.

    use super::*;
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};

    /// Faults the fake injects.
    #[derive(Debug, Default, Clone)]
    pub struct Faults {
        /// RESERVE and POP return this index in every batch's first entry.
        pub corrupt_index: Option<u32>,
        /// RESERVE always finds the ring full.
        pub always_full: bool,
    }

    /// Shared state, so a test can look inside after the worker dropped its handle.
    #[derive(Debug, Default)]
    pub struct FakeState {
        pub free: VecDeque<u32>,
        pub ready: VecDeque<RtpmSlotRef>,
        pub producing: Vec<u32>,
        pub consuming: Vec<u32>,
        pub stats: RtpmStats,
        pub running: bool,
        pub reserve_calls: u64,
        pub handles: u32,
        /// Handles that are bookkeeping, not openers (a [`FakeBackend`]'s root).
        pub uncounted: u32,
        pub faults: Faults,
    }

    /// Slot memory shared by every handle of one fake ring.
    struct FakeMem(Box<[std::cell::UnsafeCell<u8>]>);

    // SAFETY: the fake hands out raw pointers only; the slot ownership protocol (one owner per
    // slot, enforced by FakeState) is what keeps accesses apart, exactly as with a real mmap.
    unsafe impl Sync for FakeMem {}
    // SAFETY: as above; the boxed bytes never move.
    unsafe impl Send for FakeMem {}

    /// In-process ring. Dropping a handle returns its owned slots to FREE, like closing the
    /// device file does.
    pub struct FakeRing {
        pub state: Arc<Mutex<FakeState>>,
        mem: Arc<FakeMem>,
        slot_count: u32,
        slot_payload: usize,
        owned: Vec<u32>,
    }

    impl FakeRing {
        /// A stopped ring of `slot_count` slots of `slot_payload` bytes.
        pub fn new(slot_count: u32, slot_payload: usize) -> Self {
            let st = FakeState { free: (0..slot_count).collect(), handles: 1, ..Default::default() };
            Self {
                state: Arc::new(Mutex::new(st)),
                mem: Arc::new(FakeMem((0..slot_count as usize * slot_payload).map(|_| 0.into()).collect())),
                slot_count,
                slot_payload,
                owned: Vec::new(),
            }
        }

        /// Another handle on the same ring (like a second open of the device).
        pub fn reopen(&self) -> Self {
            self.st().handles += 1;
            Self {
                state: Arc::clone(&self.state),
                mem: Arc::clone(&self.mem),
                slot_count: self.slot_count,
                slot_payload: self.slot_payload,
                owned: Vec::new(),
            }
        }

        fn st(&self) -> std::sync::MutexGuard<'_, FakeState> {
            self.state.lock().unwrap_or_else(|p| p.into_inner())
        }
    }

    /// A [`Backend`] whose handles all share one [`FakeRing`]; `fail_open` makes every open
    /// fail, as a missing device would.
    pub struct FakeBackend {
        pub root: Mutex<FakeRing>,
        pub fail_open: bool,
    }

    impl FakeBackend {
        /// A backend over a new stopped fake ring.
        pub fn new(slot_count: u32, slot_payload: usize) -> Self {
            let root = FakeRing::new(slot_count, slot_payload);
            root.st().uncounted = 1;
            Self { root: Mutex::new(root), fail_open: false }
        }

        /// The shared state, for assertions.
        pub fn state(&self) -> Arc<Mutex<FakeState>> {
            Arc::clone(&self.root.lock().unwrap_or_else(|p| p.into_inner()).state)
        }
    }

    impl Backend for FakeBackend {
        fn open(&self) -> Result<Box<dyn Ring>> {
            if self.fail_open {
                bail!("fake ring: open refused");
            }
            Ok(Box::new(self.root.lock().unwrap_or_else(|p| p.into_inner()).reopen()))
        }
        fn open_exclusive(&self) -> Result<Box<dyn Ring>> {
            // The root handle counts as one opener, like the kernel's own count.
            let handles = self.state().lock().unwrap_or_else(|p| p.into_inner()).handles;
            if handles > 1 {
                bail!("fake ring: in use by {} other handle(s)", handles - 1);
            }
            self.open()
        }
        fn open_control(&self) -> Result<Box<dyn Control>> {
            Ok(Box::new(self.open()?))
        }
        fn describe(&self) -> String {
            "fake ring".into()
        }
        fn is_kernel(&self) -> bool {
            false
        }
    }

    impl Drop for FakeRing {
        fn drop(&mut self) {
            let owned = std::mem::take(&mut self.owned);
            let mut st = self.st();
            for i in owned {
                st.producing.retain(|&x| x != i);
                st.consuming.retain(|&x| x != i);
                st.free.push_back(i);
                st.stats.reclaimed += 1;
            }
            st.handles -= 1;
        }
    }

    impl Control for FakeRing {
        fn info(&self) -> Result<RtpmInfo> {
            Ok(RtpmInfo {
                abi_major: rtpmgr_abi::RTPM_ABI_MAJOR,
                abi_minor: rtpmgr_abi::RTPM_ABI_MINOR,
                channels: 1,
                state: u32::from(self.st().running),
                slot_count: self.slot_count,
                config: RtpmConfig {
                    ring_order: self.slot_count.trailing_zeros(),
                    slot_payload: self.slot_payload as u32,
                    ..Default::default()
                },
                ..Default::default()
            })
        }
        fn stats(&self) -> Result<RtpmStats> {
            Ok(self.st().stats)
        }
        fn status(&self) -> Result<RtpmStatus> {
            let st = self.st();
            Ok(RtpmStatus {
                state: u32::from(st.running),
                openers: st.handles - st.uncounted,
                free: st.free.len() as u32,
                producing: st.producing.len() as u32,
                ready: st.ready.len() as u32,
                consuming: st.consuming.len() as u32,
                ..Default::default()
            })
        }
        fn start(&self) -> Result<()> {
            self.st().running = true;
            Ok(())
        }
        fn stop(&self) -> Result<()> {
            self.st().running = false;
            Ok(())
        }
        fn reset(&self) -> Result<()> {
            self.st().stats = RtpmStats::default();
            Ok(())
        }
        fn configure(&self, _cfg: &RtpmConfig) -> Result<()> {
            bail!("the fake ring cannot be reconfigured")
        }
    }

    impl Ring for FakeRing {
        fn reserve(&mut self, out: &mut [RtpmSlotRef]) -> Result<Avail> {
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            st.reserve_calls += 1;
            if !st.running {
                return Ok(Avail::Stopped);
            }
            if st.faults.always_full || st.free.is_empty() {
                st.stats.overruns += 1;
                return Ok(Avail::Nothing);
            }
            let mut n = 0;
            while n < out.len() {
                let Some(i) = st.free.pop_front() else { break };
                st.producing.push(i);
                self.owned.push(i);
                out[n] = RtpmSlotRef { index: i, len: self.slot_payload as u32, arrival_ns: 0 };
                n += 1;
            }
            if let Some(bad) = st.faults.corrupt_index {
                out[0].index = bad;
            }
            Ok(Avail::Done(n))
        }
        fn push(&mut self, slots: &[RtpmSlotRef]) -> Result<Avail> {
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if !st.running {
                return Ok(Avail::Stopped);
            }
            let mut n = 0;
            for s in slots {
                let Some(pos) = st.producing.iter().position(|&x| x == s.index) else {
                    st.stats.illegal_ops += 1;
                    break;
                };
                st.producing.remove(pos);
                self.owned.retain(|&x| x != s.index);
                st.ready.push_back(*s);
                st.stats.pushed_packets += 1;
                st.stats.pushed_bytes += u64::from(s.len);
                n += 1;
            }
            if n == 0 {
                bail!("push refused: slot {} not reserved by this handle", slots.first().map_or(0, |s| s.index));
            }
            Ok(Avail::Done(n))
        }
        fn pop(&mut self, out: &mut [RtpmSlotRef], _timeout: Duration) -> Result<Avail> {
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            let mut n = 0;
            while n < out.len() {
                let Some(r) = st.ready.pop_front() else { break };
                st.consuming.push(r.index);
                self.owned.push(r.index);
                st.stats.popped_packets += 1;
                st.stats.popped_bytes += u64::from(r.len);
                out[n] = r;
                n += 1;
            }
            if n == 0 {
                st.stats.underruns += 1;
                return Ok(Avail::Nothing);
            }
            if let Some(bad) = st.faults.corrupt_index {
                out[0].index = bad;
            }
            Ok(Avail::Done(n))
        }
        fn release(&mut self, slots: &[RtpmSlotRef]) -> Result<usize> {
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            let mut n = 0;
            for s in slots {
                let Some(pos) = st.consuming.iter().position(|&x| x == s.index) else { break };
                st.consuming.remove(pos);
                self.owned.retain(|&x| x != s.index);
                st.free.push_back(s.index);
                st.stats.released += 1;
                n += 1;
            }
            Ok(n)
        }
        fn slot_payload(&self) -> usize {
            self.slot_payload
        }
        fn slot_count(&self) -> u32 {
            self.slot_count
        }
        fn payload_ptr(&mut self, index: u32) -> *mut u8 {
            // Checked asserts the range before calling; the fake is stricter still.
            let off = index as usize * self.slot_payload;
            self.mem.0[off..off + self.slot_payload][0].get()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::*;
    use super::*;

    #[test]
    fn checked_drops_out_of_range_and_duplicate_indices() {
        let ring = FakeRing::new(8, 256);
        ring.start().unwrap();
        let mut c = Checked::new(ring).unwrap();
        let mut refs = [
            RtpmSlotRef { index: 1, len: 10, arrival_ns: 0 },
            RtpmSlotRef { index: 99, len: 10, arrival_ns: 0 },
            RtpmSlotRef { index: 1, len: 10, arrival_ns: 0 },
            RtpmSlotRef { index: 2, len: 9999, arrival_ns: 0 },
            RtpmSlotRef { index: 3, len: 256, arrival_ns: 0 },
        ];
        let kept = c.validate(&mut refs, 5, true);
        assert_eq!(kept, 2);
        assert_eq!((refs[0].index, refs[1].index), (1, 3));
        assert_eq!(c.invalid, 3);
        // The uniqueness marks are cleared for the next batch.
        assert_eq!(c.validate(&mut refs, 2, true), 2);
    }

    #[test]
    fn checked_refuses_impossible_geometry() {
        assert!(Checked::new(FakeRing::new(6, 256)).is_err());
        assert!(Checked::new(FakeRing::new(8, 16)).is_err());
    }
}

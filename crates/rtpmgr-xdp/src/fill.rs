//! UMEM frame bookkeeping and the fill ring refill, with bounded retries.
//!
//! Vocabulary (the kernel's, `net/xdp/xsk_queue.h`): user space gives free frames to the kernel
//! on the FILL ring; the kernel writes packets into them and hands them back on the RX ring; user
//! space copies the payload out and the frame is free again.
//!
//! Seed 003's bug 2 was `while (ret != stock_frames) ret = xsk_ring_prod__reserve(...)`: a fill
//! ring that stays full (the kernel not consuming, e.g. the interface down) hung the manager. Here
//! a refill makes at most [`RefillPolicy::max_attempts`] attempts, waking the kernel between
//! them; frames that did not fit stay on the free list for the next round (nothing is lost and
//! nothing waits), and the shortfall is counted.

/// A producer ring of frame addresses: the FILL ring, or a fake in tests.
pub trait FillRing {
    /// Puts as many of the addresses at the *end* of `free` as fit (at most `max`) on the ring,
    /// commits them and removes them from `free`. Returns how many were put.
    fn fill_from(&mut self, free: &mut Vec<u64>, max: u32) -> u32;
    /// Asks the kernel to consume the ring (need-wakeup mode: a `poll` on the socket).
    fn wake(&mut self);
}

impl FillRing for xdpilone::DeviceQueue {
    fn fill_from(&mut self, free: &mut Vec<u64>, max: u32) -> u32 {
        let want = max.min(u32::try_from(free.len()).unwrap_or(u32::MAX));
        if want == 0 {
            return 0;
        }
        let mut w = self.fill(want);
        let cap = w.capacity() as usize;
        let start = free.len() - cap.min(free.len());
        let n = w.insert(free[start..].iter().copied());
        w.commit();
        free.truncate(free.len() - n as usize);
        n
    }

    fn wake(&mut self) {
        xdpilone::DeviceQueue::wake(self)
    }
}

/// How hard a refill tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefillPolicy {
    /// Attempts per refill, at least 1.
    pub max_attempts: u32,
}

impl Default for RefillPolicy {
    fn default() -> Self {
        RefillPolicy { max_attempts: 4 }
    }
}

/// What one refill did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Refill {
    /// Frames put on the fill ring.
    pub filled: u32,
    /// Frames that wanted to go and did not (still on the free list).
    pub short: u32,
    /// Attempts made (`<= max_attempts`).
    pub attempts: u32,
}

/// Moves up to `want` frames from `free` to the fill ring with at most `policy.max_attempts`
/// attempts. Never blocks, never loops unboundedly.
pub fn refill<R: FillRing + ?Sized>(ring: &mut R, free: &mut Vec<u64>, want: u32, policy: RefillPolicy) -> Refill {
    let want = want.min(u32::try_from(free.len()).unwrap_or(u32::MAX));
    let mut r = Refill::default();
    while r.filled < want && r.attempts < policy.max_attempts.max(1) {
        r.attempts += 1;
        let n = ring.fill_from(free, want - r.filled);
        r.filled += n;
        if r.filled < want {
            // The kernel has not consumed the ring: nudge it once per attempt, then try again.
            ring.wake();
        }
    }
    r.short = want - r.filled;
    r
}

/// The free UMEM frames (their base addresses), a LIFO: the most recently used frame is the most
/// likely to still be in cache.
#[derive(Debug)]
pub struct FramePool {
    /// Free frame addresses.
    pub free: Vec<u64>,
    frame_size: u64,
    frames: u64,
}

impl FramePool {
    /// All `frames` frames of `frame_size` bytes free.
    pub fn new(frames: u32, frame_size: u32) -> FramePool {
        let free = (0..u64::from(frames)).rev().map(|i| i * u64::from(frame_size)).collect();
        FramePool { free, frame_size: u64::from(frame_size), frames: u64::from(frames) }
    }

    /// Returns the frame that contains `addr` (an RX descriptor address, which points past the
    /// headroom) to the pool. False, and nothing returned, for an address outside the UMEM.
    pub fn put(&mut self, addr: u64) -> bool {
        let index = addr / self.frame_size;
        if index >= self.frames {
            return false;
        }
        self.free.push(index * self.frame_size);
        true
    }

    /// Free frames.
    pub fn len(&self) -> usize {
        self.free.len()
    }

    /// True when no frame is free.
    pub fn is_empty(&self) -> bool {
        self.free.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fill ring of `cap` entries that the "kernel" never consumes unless told to.
    struct FakeRing {
        cap: usize,
        on_ring: Vec<u64>,
        fill_calls: u32,
        wakes: u32,
        consume_on_wake: bool,
    }

    impl FillRing for FakeRing {
        fn fill_from(&mut self, free: &mut Vec<u64>, max: u32) -> u32 {
            self.fill_calls += 1;
            let room = self.cap - self.on_ring.len();
            let n = room.min(max as usize).min(free.len());
            let at = free.len() - n;
            self.on_ring.extend(free.drain(at..));
            n as u32
        }
        fn wake(&mut self) {
            self.wakes += 1;
            if self.consume_on_wake {
                self.on_ring.clear();
            }
        }
    }

    /// Seed bug 2: a fill ring that stays full must not hang the receiver. The refill gives up
    /// after the bounded attempts, keeps every frame on the free list and reports the shortfall.
    #[test]
    fn seed_bug2_refill_is_bounded_when_the_fill_ring_stays_full() {
        let mut ring = FakeRing { cap: 8, on_ring: vec![0; 8], fill_calls: 0, wakes: 0, consume_on_wake: false };
        let mut pool = FramePool::new(64, 2048);
        let policy = RefillPolicy { max_attempts: 5 };
        let t = std::time::Instant::now();
        let r = refill(&mut ring, &mut pool.free, 32, policy);
        assert!(t.elapsed() < std::time::Duration::from_secs(1));
        assert_eq!(r, Refill { filled: 0, short: 32, attempts: 5 });
        assert_eq!(ring.fill_calls, 5);
        assert_eq!(ring.wakes, 5);
        assert_eq!(pool.len(), 64, "no frame may be lost when the ring is full");
    }

    #[test]
    fn refill_partial_then_complete_after_wake() {
        let mut ring = FakeRing { cap: 8, on_ring: vec![], fill_calls: 0, wakes: 0, consume_on_wake: true };
        let mut pool = FramePool::new(64, 2048);
        let r = refill(&mut ring, &mut pool.free, 20, RefillPolicy { max_attempts: 4 });
        // 8 fit, wake (kernel consumes), 8 more, wake, 4 more.
        assert_eq!((r.filled, r.short, r.attempts), (20, 0, 3));
        assert_eq!(pool.len(), 44);
        // Never more than the pool has.
        let mut empty = Vec::new();
        assert_eq!(refill(&mut ring, &mut empty, 10, RefillPolicy::default()).filled, 0);
    }

    #[test]
    fn frame_pool_masks_to_the_frame_and_rejects_outside_addresses() {
        let mut p = FramePool::new(4, 2048);
        p.free.clear();
        assert!(p.put(2048 + 256)); // an RX address past the headroom
        assert_eq!(p.free, vec![2048]);
        assert!(!p.put(4 * 2048));
        assert_eq!(p.len(), 1);
    }
}

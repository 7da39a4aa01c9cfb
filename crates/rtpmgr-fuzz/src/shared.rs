//! Counters and findings shared by every process of a run: one anonymous `MAP_SHARED` page set,
//! mapped by the supervisor before it forks, so that what a worker counted survives its `kill -9`.

use anyhow::{Context, Result};
use nix::sys::mman::{mmap_anonymous, MapFlags, ProtFlags};
use std::cell::UnsafeCell;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering::Relaxed, Ordering::Release};

/// Most worker processes a run can have.
pub const MAX_PROCS: usize = 64;
/// Most requests the ABI can define for per-request counting (checked at start).
pub const MAX_REQUESTS: usize = 64;
/// errno values counted one by one; larger ones share the last bucket.
pub const ERRNO_SLOTS: usize = 160;
const MSG_SLOTS: usize = 16;
const MSG_LEN: usize = 300;

/// All-zero is a valid initial value of every field (mmap hands out zeroed pages).
#[repr(C)]
pub struct Shared {
    pub ops: AtomicU64,
    pub errors: AtomicU64,
    pub by_errno: [AtomicU64; ERRNO_SLOTS],
    pub req_ok: [AtomicU64; MAX_REQUESTS],
    pub req_err: [AtomicU64; MAX_REQUESTS],
    pub maps: AtomicU64,
    pub forks: AtomicU64,
    pub kills: AtomicU64,
    pub interrupted: AtomicU64,
    pub stop: AtomicU32,
    /// Set for a short quiet phase now and then: workers drop their mappings and slots so that
    /// CONFIGURE and RESET, which need an idle channel, get to run against the rest of the chaos.
    pub quiesce: AtomicU32,
    pub reconfigured: AtomicU64,
    /// Live worker pids by worker slot (0: none), for `kill -9` of each other.
    pub pids: [AtomicI32; MAX_PROCS],
    pub violations: AtomicU64,
    msg_ready: [AtomicU32; MSG_SLOTS],
    msgs: [UnsafeCell<[u8; MSG_LEN]>; MSG_SLOTS],
}

// SAFETY: every field but `msgs` is atomic; each `msgs` entry is written by exactly one process
// (the one whose fetch_add on `violations` returned its index) before it is published through
// `msg_ready` with release ordering, and read only after that flag is seen with acquire ordering.
unsafe impl Sync for Shared {}

impl Shared {
    /// Maps the region; it stays mapped for the life of the process and its children.
    pub fn map() -> Result<&'static Shared> {
        let len = NonZeroUsize::new(size_of::<Shared>()).expect("Shared is not empty");
        // SAFETY: a fresh anonymous mapping, not aliasing anything; zero-filled, which is a valid
        // Shared (atomics and byte arrays). It is never unmapped, so 'static holds.
        let ptr =
            unsafe { mmap_anonymous(None, len, ProtFlags::PROT_READ | ProtFlags::PROT_WRITE, MapFlags::MAP_SHARED) }
                .context("mmap of the shared counters")?;
        // SAFETY: see above; the pointer is page aligned, so aligned for Shared.
        Ok(unsafe { &*ptr.as_ptr().cast::<Shared>() })
    }

    pub fn count_errno(&self, errno: i32) {
        self.errors.fetch_add(1, Relaxed);
        let slot = (errno.max(0) as usize).min(ERRNO_SLOTS - 1);
        self.by_errno[slot].fetch_add(1, Relaxed);
    }

    /// Records an invariant violation; the first few messages are kept verbatim.
    pub fn violation(&self, msg: &str) {
        log::error!("VIOLATION: {msg}");
        let idx = self.violations.fetch_add(1, Relaxed) as usize;
        if idx < MSG_SLOTS {
            let bytes = msg.as_bytes();
            let n = bytes.len().min(MSG_LEN);
            // SAFETY: index `idx` is this caller's alone (fetch_add above); see `impl Sync`.
            unsafe { (&mut *self.msgs[idx].get())[..n].copy_from_slice(&bytes[..n]) };
            self.msg_ready[idx].store(n as u32 + 1, Release);
        }
    }

    /// The kept violation messages (call after every writer has exited).
    pub fn messages(&self) -> Vec<String> {
        (0..MSG_SLOTS)
            .filter_map(|i| {
                let n = self.msg_ready[i].load(std::sync::atomic::Ordering::Acquire) as usize;
                // SAFETY: published by the writer before the flag; nobody writes it again.
                (n > 0).then(|| String::from_utf8_lossy(unsafe { &(&*self.msgs[i].get())[..n - 1] }).into_owned())
            })
            .collect()
    }
}

//! Thin OS helpers shared by the backends: an owned mapping, futex wait/wake, the monotonic clock.

use nix::errno::Errno;
use std::num::NonZeroUsize;
use std::os::fd::AsFd;
use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// An owned `mmap` of a file region; unmapped on drop.
#[derive(Debug)]
pub(crate) struct Mmap {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value; which parts may be read or written
// concurrently is decided by the ring protocol at the places that dereference it.
unsafe impl Send for Mmap {}
// SAFETY: as above; &Mmap only hands out raw pointers.
unsafe impl Sync for Mmap {}

impl Mmap {
    /// Maps `len` bytes of `fd` at `offset`, shared, read-only or read-write.
    pub(crate) fn map(fd: impl AsFd, len: usize, offset: u64, writable: bool) -> Result<Mmap, Errno> {
        let nz = NonZeroUsize::new(len).ok_or(Errno::EINVAL)?;
        let offset = libc::off_t::try_from(offset).map_err(|_| Errno::EOVERFLOW)?;
        let prot = if writable {
            nix::sys::mman::ProtFlags::PROT_READ | nix::sys::mman::ProtFlags::PROT_WRITE
        } else {
            nix::sys::mman::ProtFlags::PROT_READ
        };
        // SAFETY: a fresh shared mapping chosen by the kernel (no fixed address), so it cannot
        // alias any Rust object; it lives until this Mmap is dropped.
        let p = unsafe { nix::sys::mman::mmap(None, nz, prot, nix::sys::mman::MapFlags::MAP_SHARED, fd, offset) }?;
        Ok(Mmap { ptr: p.cast(), len })
    }

    pub(crate) fn ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        // SAFETY: ptr/len are exactly one mapping created in Mmap::map and not unmapped before;
        // every borrower holds the Mmap (through an Arc) while it uses the memory.
        if let Err(e) = unsafe { nix::sys::mman::munmap(self.ptr.cast(), self.len) } {
            log::warn!("failed to unmap ring memory: {e}");
        }
    }
}

/// Loads an index word of a ring header page: a Relaxed atomic load followed by an Acquire
/// fence, which pairs with the ring's store-release of the word exactly as an Acquire load
/// would. Not an Acquire load because the header page is mapped read-only and std allows only
/// Relaxed atomic loads on read-only memory (an Acquire load may be a read-modify-write on some
/// targets).
///
/// # Safety
/// `word` must be 4-byte aligned and point into a live mapping (or allocation) readable for 4
/// bytes, which other threads or processes change only with atomic stores.
pub(crate) unsafe fn load_index_word(word: *const u32) -> u32 {
    // SAFETY: aligned and live (the caller's contract), and changed by others only atomically.
    // Not AtomicU32::from_ptr, which requires memory valid for writes: the header page is
    // mapped read-only. std's exception for read-only memory ("Atomic accesses to read-only
    // memory" in core::sync::atomic) makes a Relaxed load of an atomic of at most 4 bytes
    // defined on every target it lists (x86, x86_64, arm, aarch64, riscv, ...), and nothing but
    // that load is done through this reference.
    let w = unsafe { &*word.cast::<AtomicU32>() };
    let v = w.load(Ordering::Relaxed);
    fence(Ordering::Acquire);
    v
}

/// A private copy of `len` bytes of a shared mapping, read with volatile reads: another process
/// may write the memory while it is read, so no `&[u8]` to it may exist; the copy is what gets
/// decoded and validated.
///
/// # Safety
/// `src .. src + len` must lie inside a live readable mapping (or allocation).
pub(crate) unsafe fn copy_shared(src: *const u8, len: usize) -> Vec<u8> {
    // SAFETY: every byte read is inside the range the caller vouches for.
    (0..len).map(|i| unsafe { src.add(i).read_volatile() }).collect()
}

/// Fills `dst` from `src .. src + dst.len()` of a shared mapping with volatile reads, as
/// [`copy_shared`] does, without allocating.
///
/// # Safety
/// `src .. src + dst.len()` must lie inside a live readable mapping (or allocation) that does
/// not overlap `dst`.
pub(crate) unsafe fn copy_shared_into(src: *const u8, dst: &mut [u8]) {
    for (i, d) in dst.iter_mut().enumerate() {
        // SAFETY: every byte read is inside the range the caller vouches for.
        *d = unsafe { src.add(i).read_volatile() };
    }
}

/// `CLOCK_MONOTONIC` in nanoseconds, the clock of `arrival_ns`.
pub fn monotonic_ns() -> u64 {
    let ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .expect("CLOCK_MONOTONIC is always available on Linux");
    ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64
}

/// Blocks while `*word == expected`, at most `timeout`. Shared (not private) futex: the word lives
/// in a MAP_SHARED mapping used by several processes.
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> Result<(), Errno> {
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: t.subsec_nanos() as libc::c_long,
    });
    let tsp = ts.as_ref().map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `word` is a valid, aligned u32 for the duration of the call; FUTEX_WAIT only reads
    // it; `tsp` is null or points to a live timespec.
    let r = unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAIT, expected, tsp, 0usize, 0u32) };
    if r == 0 {
        Ok(())
    } else {
        Err(Errno::last())
    }
}

/// Wakes every waiter blocked on `word`.
pub(crate) fn futex_wake_all(word: &AtomicU32) {
    // SAFETY: `word` is a valid, aligned u32; FUTEX_WAKE does not access it.
    unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, i32::MAX, 0usize, 0usize, 0u32) };
}

/// Time left until `deadline` (None: forever); `Some(ZERO)` once passed.
pub(crate) fn remaining(deadline: Option<Instant>) -> Option<Duration> {
    deadline.map(|d| d.saturating_duration_since(Instant::now()))
}

/// How an open handle claims its channel: an advisory `flock(2)` on the device node (kernel) or
/// the ring file (shm).
///
/// Every handle the library opens holds a shared claim; a self-test that pushes its own packets
/// (`rtp_app diag`) takes the exclusive one, so that no producer or consumer of a live pipeline
/// can open the channel while test packets are in it, and the self-test never picks a channel a
/// pipeline has open. Advisory: a program that opens the device without this library is not
/// held off, which is why a self-test also checks the channel's opener count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Any number of users (producers, consumers, control tools).
    Shared,
    /// This handle alone.
    Exclusive,
}

/// How long a shared claim waits for an exclusive holder (a self-test takes well under 1 s).
pub(crate) const SHARED_CLAIM_WAIT: Duration = Duration::from_secs(3);

/// Takes `claim` on `fd`. An exclusive claim does not wait; a shared one waits up to
/// [`SHARED_CLAIM_WAIT`]. Either gives `EBUSY` when the other kind is held.
pub(crate) fn claim(fd: impl AsFd, claim: Claim) -> Result<(), Errno> {
    use std::os::fd::AsRawFd;
    let fd = fd.as_fd();
    let op = match claim {
        Claim::Shared => libc::LOCK_SH,
        Claim::Exclusive => libc::LOCK_EX,
    } | libc::LOCK_NB;
    let deadline = Instant::now() + SHARED_CLAIM_WAIT;
    loop {
        // SAFETY: flock on a descriptor this function borrows; no memory is passed.
        let r = unsafe { libc::flock(fd.as_raw_fd(), op) };
        match Errno::result(r) {
            Ok(_) => return Ok(()),
            Err(Errno::EWOULDBLOCK) if claim == Claim::Shared && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(Errno::EWOULDBLOCK) => return Err(Errno::EBUSY),
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    /// The ring's header page is mapped read-only: index words are read with a Relaxed load
    /// plus fence (no Acquire load on read-only memory) and see the ring's later stores; the
    /// page is decoded from a private copy that the ring's stores do not change.
    #[test]
    #[cfg_attr(miri, ignore = "Miri cannot map files")]
    fn header_page_of_a_read_only_mapping_is_read_relaxed_and_copied() {
        let path = std::env::temp_dir().join(format!("rtpmgr-sys-ro-{}", std::process::id()));
        let file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path).unwrap();
        file.set_len(4096).unwrap();
        file.write_all_at(&7u32.to_ne_bytes(), 8).unwrap();
        let map = Mmap::map(&file, 4096, 0, false).unwrap();
        // SAFETY: offset 8 is 4-aligned inside the live 4096-byte mapping.
        let load = || unsafe { load_index_word(map.ptr().add(8).cast()) };
        assert_eq!(load(), 7);
        // SAFETY: the whole mapping is readable.
        let copy = unsafe { copy_shared(map.ptr(), 4096) };
        // The "ring" (another writer of the file) moves the index on.
        file.write_all_at(&9u32.to_ne_bytes(), 8).unwrap();
        assert_eq!(load(), 9, "the shared mapping shows the new index");
        assert_eq!(copy[8..12], 7u32.to_ne_bytes(), "the decoded copy is private");
        drop(map);
        std::fs::remove_file(&path).unwrap();
    }

    /// The same two reads on ordinary memory, which Miri can check.
    #[test]
    fn index_word_load_and_page_copy_read_what_is_there() {
        let words: Vec<AtomicU32> = (0..4).map(AtomicU32::new).collect();
        words[2].store(42, Ordering::Release);
        // SAFETY: an aligned, live AtomicU32 changed only atomically.
        assert_eq!(unsafe { load_index_word(words[2].as_ptr()) }, 42);
        let bytes: Vec<u8> = (0..=255).collect();
        // SAFETY: the range is the vector's own.
        assert_eq!(unsafe { copy_shared(bytes.as_ptr(), bytes.len()) }, bytes);
        let mut into = [0u8; 3];
        // SAFETY: the range is the vector's own, and `into` is another buffer.
        unsafe { copy_shared_into(bytes.as_ptr().add(1), &mut into) };
        assert_eq!(into[..], bytes[1..4]);
    }
}

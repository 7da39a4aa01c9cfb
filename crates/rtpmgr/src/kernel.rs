//! Kernel backend: `/dev/rtp_mgrN` through the ioctls of `rtpmgr-abi` and the two mmaps of the
//! header (meta region read-only at offset 0, payload region read-write at `payload_offset`).
//!
//! The file is opened `O_NONBLOCK`: every slot operation answers at once (`EAGAIN` when there is
//! nothing to reserve or pop) and blocking waits go through `poll(2)`, so a waiting thread can be
//! given a timeout and a shutdown flag the same way on both backends.

use crate::sys::{Claim, Mmap};
use crate::Dir;
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use rtpmgr_abi::ioctl::{self, BatchOp};
use rtpmgr_abi::*;
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

/// How long a consumer naps between polls of a channel that was stopped (POLLHUP) and is empty.
const STOPPED_NAP: Duration = Duration::from_millis(50);

#[derive(Debug)]
pub(crate) struct KernelDev {
    file: File,
}

impl KernelDev {
    /// Opens the node read-write, or read-only with `write` false: the module then answers only
    /// the GET_* ioctls (every other one is `EBADF`) and refuses a writable mapping.
    pub(crate) fn open(path: &Path, write: bool) -> Result<KernelDev, Errno> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(write)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| e.raw_os_error().map(Errno::from_raw).unwrap_or(Errno::EIO))?;
        Ok(KernelDev { file })
    }

    /// Takes the handle's advisory claim on the device node (see [`Claim`]).
    pub(crate) fn claim(&self, claim: Claim) -> Result<(), Errno> {
        crate::sys::claim(&self.file, claim)
    }

    pub(crate) fn info(&self) -> Result<RtpmInfo, Errno> {
        ioctl::get_info(self.file.as_fd())
    }
    pub(crate) fn configure(&self, c: &RtpmConfig) -> Result<(), Errno> {
        ioctl::configure(self.file.as_fd(), c)
    }
    pub(crate) fn start(&self) -> Result<(), Errno> {
        ioctl::start(self.file.as_fd())
    }
    pub(crate) fn stop(&self) -> Result<(), Errno> {
        ioctl::stop(self.file.as_fd())
    }
    pub(crate) fn reset(&self) -> Result<(), Errno> {
        ioctl::reset(self.file.as_fd())
    }
    pub(crate) fn claim_roles(&self, roles: u32) -> Result<(), Errno> {
        ioctl::claim(self.file.as_fd(), roles)
    }
    pub(crate) fn reclaim(&self, min_held_ns: u64, flags: u32) -> Result<u32, Errno> {
        ioctl::reclaim(self.file.as_fd(), min_held_ns, flags)
    }
    pub(crate) fn stats(&self) -> Result<RtpmStats, Errno> {
        ioctl::get_stats(self.file.as_fd())
    }
    pub(crate) fn status(&self) -> Result<RtpmStatus, Errno> {
        ioctl::get_status(self.file.as_fd())
    }

    pub(crate) fn attach(&self, sock: BorrowedFd<'_>, req: &RtpmAttach) -> Result<(), Errno> {
        ioctl::attach(self.file.as_fd(), sock, req.direction, req.tx_rate_pps, req.tx_burst)
    }
    pub(crate) fn detach(&self, direction: u32) -> Result<(), Errno> {
        ioctl::detach(self.file.as_fd(), direction)
    }
    pub(crate) fn set_wakeup(&self, slots: u32, usecs: u32) -> Result<(), Errno> {
        ioctl::set_wakeup(self.file.as_fd(), slots, usecs)
    }
    pub(crate) fn get_wakeup(&self) -> Result<RtpmWakeup, Errno> {
        ioctl::get_wakeup(self.file.as_fd())
    }
    pub(crate) fn set_clock_rate(&self, hz: u32) -> Result<(), Errno> {
        ioctl::set_clock_rate(self.file.as_fd(), hz)
    }
    pub(crate) fn quality(&self) -> Result<RtpmQuality, Errno> {
        ioctl::get_quality(self.file.as_fd())
    }
    pub(crate) fn capture(&self, req: &mut RtpmCapture) -> Result<std::os::fd::OwnedFd, Errno> {
        ioctl::capture(self.file.as_fd(), req)
    }

    pub(crate) fn batch(&self, op: BatchOp, slots: &mut [RtpmSlotRef]) -> Result<usize, Errno> {
        ioctl::batch(self.file.as_fd(), op, slots)
    }

    /// The seed's per-slot ioctls (one syscall per slot), kept for comparison and benchmarks.
    pub(crate) fn single(&self, op: BatchOp, slot: &mut RtpmSlotRef) -> Result<(), Errno> {
        let fd = self.file.as_fd();
        match op {
            BatchOp::Reserve => *slot = ioctl::reserve_slot(fd)?,
            BatchOp::Push => ioctl::push_slot(fd, slot)?,
            BatchOp::Pop => *slot = ioctl::pop_slot(fd)?,
            BatchOp::Release => ioctl::release_slot(fd, slot)?,
            BatchOp::Cancel => ioctl::cancel_slot(fd, slot)?,
        }
        Ok(())
    }

    /// poll(2) for READY (`Dir::Readable`) or FREE (`Dir::Writable`) slots.
    pub(crate) fn wait(&self, dir: Dir, timeout: Option<Duration>) -> Result<bool, Errno> {
        let flags = match dir {
            Dir::Readable => PollFlags::POLLIN,
            Dir::Writable => PollFlags::POLLOUT,
        };
        let ms = match timeout {
            None => PollTimeout::NONE,
            // Round up: a 100 µs timeout must not become a busy 0 ms poll loop.
            Some(t) => {
                let ms = t.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128);
                PollTimeout::try_from(ms as i32).unwrap_or(PollTimeout::MAX)
            }
        };
        let mut fds = [PollFd::new(self.file.as_fd(), flags)];
        match nix::poll::poll(&mut fds, ms) {
            Ok(0) => Ok(false),
            Ok(_) => {
                let re = fds[0].revents().unwrap_or(PollFlags::empty());
                if re.intersects(PollFlags::POLLERR | PollFlags::POLLNVAL) {
                    return Err(Errno::EIO);
                }
                if re.contains(PollFlags::POLLHUP) && !re.intersects(flags) {
                    // ABI 2.0: the channel was stopped and nothing is left to pop. A producer
                    // goes on to its RESERVE, which answers EPIPE. poll() keeps reporting
                    // POLLHUP, so a consumer waiting for the next START must not poll in a
                    // loop: it naps instead and tries again (a restart is seen within 50 ms).
                    if dir == Dir::Writable {
                        return Ok(true);
                    }
                    std::thread::sleep(timeout.map_or(STOPPED_NAP, |t| t.min(STOPPED_NAP)));
                    return Ok(false);
                }
                Ok(re.intersects(flags))
            }
            // A signal: EINTR, so the library's wait loops return to their caller (who looks at
            // its shutdown flag) instead of waiting on.
            Err(e) => Err(e),
        }
    }

    /// Maps the meta region read-only and the payload region read-write, as the header allows.
    pub(crate) fn map(
        &self,
        meta_size: usize,
        payload_offset: u64,
        payload_size: usize,
    ) -> Result<(Mmap, Mmap), Errno> {
        let meta = Mmap::map(self.file.as_fd(), meta_size, 0, false)?;
        let payload = Mmap::map(self.file.as_fd(), payload_size, payload_offset, true)?;
        Ok((meta, payload))
    }
}

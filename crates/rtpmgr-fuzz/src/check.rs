//! The invariants checked after every fuzzing process has exited, and the device's state before
//! and after a run.

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use rtpmgr_abi::ioctl::{self, BatchOp};
use rtpmgr_abi::{
    request, RtpmBatch, RtpmConfig, RtpmInfo, RtpmSlotRef, RtpmStats, RTPM_BATCH_MAX, RTPM_STATE_RUNNING,
};
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Opens the device read-write and non-blocking, with an error that says what to look at.
pub fn open_device(path: &Path) -> Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .with_context(|| format!("cannot open {} (is the rtp_mgr module loaded, with that channel?)", path.display()))
}

/// The channel as found before the run: restored afterwards so that later tests see it unchanged.
#[derive(Debug, Clone, Copy)]
pub struct Before {
    pub info: RtpmInfo,
    pub openers: u32,
}

/// Checks that `path` is an rtp_mgr channel of this ABI and records its state.
pub fn preflight(path: &Path) -> Result<Before> {
    let dev = open_device(path)?;
    let info = match ioctl::get_info(dev.as_fd()) {
        Ok(i) => i,
        Err(Errno::ENOTTY) => bail!("{} is not an rtp_mgr device (GET_INFO: ENOTTY)", path.display()),
        Err(e) => bail!("GET_INFO on {}: {e}", path.display()),
    };
    if info.abi_major != rtpmgr_abi::RTPM_ABI_MAJOR {
        bail!(
            "{} speaks rtp_mgr ABI {}.{}, this fuzzer was built for {}.{}",
            path.display(),
            info.abi_major,
            info.abi_minor,
            rtpmgr_abi::RTPM_ABI_MAJOR,
            rtpmgr_abi::RTPM_ABI_MINOR
        );
    }
    let status = ioctl::get_status(dev.as_fd()).with_context(|| format!("GET_STATUS on {}", path.display()))?;
    if status.producing + status.consuming > 0 || status.mappings > 0 || status.openers > 1 {
        log::warn!(
            "{} is in use before the run ({} other openers, {} mappings, {} slots owned): its users will be disturbed",
            path.display(),
            status.openers - 1,
            status.mappings,
            status.producing + status.consuming
        );
    }
    // The fuzz is more interesting on a running channel; workers STOP and START it as they go.
    if let Err(e) = ioctl::start(dev.as_fd()) {
        log::warn!("START before the run: {e} (workers will try again)");
    }
    Ok(Before { info, openers: status.openers - 1 })
}

fn conservation(stats: &RtpmStats, ready: u32) -> Option<String> {
    let accounted = stats.popped_packets + stats.drops + u64::from(ready);
    (stats.pushed_packets != accounted).then(|| {
        format!(
            "stats not conserved: pushed {} != popped {} + drops {} + ready {ready}",
            stats.pushed_packets, stats.popped_packets, stats.drops
        )
    })
}

/// The invariants after every process of the run has exited. Returns the violations found.
pub fn after_run(path: &Path, before: &Before) -> Result<Vec<String>> {
    let mut bad = Vec::new();
    let dev = open_device(path)?;
    let fd = dev.as_fd();
    let st = ioctl::get_status(fd).context("GET_STATUS after the run")?;
    let stats = ioctl::get_stats(fd).context("GET_STATS after the run")?;
    log::info!("after the run: {st:?}");
    log::info!("after the run: {stats:?}");
    if st.producing != 0 || st.consuming != 0 {
        bad.push(format!(
            "slots still owned with every fuzz process gone: producing {} consuming {}",
            st.producing, st.consuming
        ));
    }
    if st.mappings != 0 && before.openers == 0 {
        bad.push(format!("{} mappings counted with no process left to map", st.mappings));
    }
    if st.openers != before.openers + 1 {
        bad.push(format!("{} openers counted, expected {} (this check's own file)", st.openers, before.openers + 1));
    }
    if let Some(why) = crate::worker::status_inconsistency(&st) {
        bad.push(format!("GET_STATUS after the run: {why}"));
    }
    bad.extend(conservation(&stats, st.ready));

    // Drain: every READY slot popped and released, then the whole ring must be FREE.
    let mut refs = vec![RtpmSlotRef::default(); 64];
    let mut drained = 0;
    loop {
        match ioctl::batch(fd, BatchOp::Pop, &mut refs) {
            Ok(n) => {
                drained += n;
                if let Err(e) = ioctl::batch(fd, BatchOp::Release, &mut refs[..n]) {
                    bad.push(format!("RELEASE_BATCH of {n} just-popped slots: {e}"));
                    break;
                }
            }
            Err(Errno::EAGAIN) => break,
            Err(e) => {
                bad.push(format!("POP_BATCH while draining: {e}"));
                break;
            }
        }
    }
    let st2 = ioctl::get_status(fd).context("GET_STATUS after the drain")?;
    let stats2 = ioctl::get_stats(fd).context("GET_STATS after the drain")?;
    let total = st2.free + st2.producing + st2.ready + st2.consuming;
    if st2.ready != 0 || st2.producing != 0 || st2.consuming != 0 || st2.free != total {
        bad.push(format!("after draining {drained} slots not all FREE: {st2:?}"));
    }
    if drained as u32 != st.ready {
        bad.push(format!("drained {drained} slots, GET_STATUS said {} READY", st.ready));
    }
    bad.extend(conservation(&stats2, st2.ready));

    // Refused slot operations are counted: three known ones, three more illegal_ops.
    let mut out_of_range = RtpmSlotRef { index: u32::MAX, len: 1, ..Default::default() };
    let refused = [
        ioctl::release_slot(fd, &out_of_range).err(),
        ioctl::batch(fd, BatchOp::Release, &mut vec![RtpmSlotRef::default(); RTPM_BATCH_MAX as usize + 1]).err(),
        release_batch_with_flags(&dev, &mut out_of_range).err(),
    ];
    let stats3 = ioctl::get_stats(fd).context("GET_STATS after the illegal ops")?;
    if refused.iter().any(Option::is_none) {
        bad.push(format!("an illegal slot operation was accepted: {refused:?}"));
    }
    if stats3.illegal_ops != stats2.illegal_ops + 3 {
        bad.push(format!(
            "illegal_ops went from {} to {} after 3 refused slot operations ({refused:?})",
            stats2.illegal_ops, stats3.illegal_ops
        ));
    }
    log::info!("drained {drained} READY slots; illegal_ops counted refusals: {refused:?}");
    Ok(bad)
}

/// RELEASE_BATCH whose flags are not zero: refused with EINVAL and counted.
fn release_batch_with_flags(dev: &File, slot: &mut RtpmSlotRef) -> nix::Result<i32> {
    let mut b = RtpmBatch { slots: slot as *mut RtpmSlotRef as u64, count: 1, ..Default::default() };
    b.flags = 1;
    // SAFETY: `b` is a live RtpmBatch pointing at one live RtpmSlotRef; the kernel reads and
    // writes at most that.
    Errno::result(unsafe { libc::ioctl(dev.as_raw_fd(), request::RELEASE_BATCH as libc::Ioctl, &mut b) })
}

/// The device still works: a packet goes through a small ring and reads back unchanged. Then the
/// channel gets its configuration and state from before the run back.
pub fn usable_and_restore(path: &Path, before: &Before) -> Result<Vec<String>> {
    let mut bad = Vec::new();
    let dev = open_device(path)?;
    let fd = dev.as_fd();
    if before.openers > 0 {
        log::warn!("the channel has other users: the round-trip check (it reconfigures) is skipped");
        return Ok(bad);
    }
    let small = RtpmConfig { ring_order: 3, slot_payload: 256, drop_policy: 0, ..Default::default() };
    let round_trip = || -> Result<()> {
        ioctl::stop(fd).context("STOP")?;
        ioctl::configure(fd, &small).context("CONFIGURE of a small ring")?;
        ioctl::start(fd).context("START")?;
        let info = ioctl::get_info(fd).context("GET_INFO")?;
        let map = PayloadMap::new(&dev, &info)?;
        let mut slot = ioctl::reserve_slot(fd).context("RESERVE_SLOT")?;
        let pattern: Vec<u8> = (0..200u32).map(|i| (i * 7 + 3) as u8).collect();
        map.write(slot.index, &pattern)?;
        slot.len = pattern.len() as u32;
        ioctl::push_slot(fd, &slot).context("PUSH_SLOT")?;
        let popped = ioctl::pop_slot(fd).context("POP_SLOT")?;
        if popped.index != slot.index || popped.len != slot.len {
            bail!("popped {popped:?}, pushed {slot:?}");
        }
        let back = map.read(popped.index, popped.len as usize)?;
        ioctl::release_slot(fd, &popped).context("RELEASE_SLOT")?;
        if back != pattern {
            bail!("payload read back differs from what was written");
        }
        Ok(())
    };
    if let Err(e) = round_trip() {
        bad.push(format!("device not usable after the run: {e:#}"));
    }
    let restore = || -> nix::Result<()> {
        ioctl::stop(fd)?;
        ioctl::configure(fd, &before.info.config)?;
        if before.info.state == RTPM_STATE_RUNNING {
            ioctl::start(fd)?;
        }
        Ok(())
    };
    if let Err(e) = restore() {
        bad.push(format!("restoring the channel's configuration {:?}: {e}", before.info.config));
    }
    Ok(bad)
}

/// The payload region mapped read-write.
struct PayloadMap {
    addr: *mut u8,
    len: usize,
    stride: usize,
}

impl PayloadMap {
    fn new(dev: &File, info: &RtpmInfo) -> Result<Self> {
        let len = info.payload_size as usize;
        // SAFETY: a new shared mapping at an address the kernel picks.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                dev.as_raw_fd(),
                info.payload_offset as libc::off_t,
            )
        };
        if addr == libc::MAP_FAILED {
            bail!("mmap of the payload region: {}", Errno::last());
        }
        Ok(Self { addr: addr.cast(), len, stride: info.slot_stride as usize })
    }

    fn range(&self, index: u32, n: usize) -> Result<*mut u8> {
        let off = index as usize * self.stride;
        if off + n > self.len {
            bail!("slot {index} (+{n} bytes) lies outside the payload region of {} bytes", self.len);
        }
        // SAFETY: `off + n <= len`: inside the mapping.
        Ok(unsafe { self.addr.add(off) })
    }

    fn write(&self, index: u32, data: &[u8]) -> Result<()> {
        let p = self.range(index, data.len())?;
        // SAFETY: `data.len()` bytes at `p` are inside the live writable mapping.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), p, data.len()) };
        Ok(())
    }

    fn read(&self, index: u32, n: usize) -> Result<Vec<u8>> {
        let p = self.range(index, n)?;
        // SAFETY: `n` bytes at `p` are inside the live mapping; the slot is ours (popped).
        Ok(unsafe { std::slice::from_raw_parts(p, n) }.to_vec())
    }
}

impl Drop for PayloadMap {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`; no reference into it outlives this.
        unsafe { libc::munmap(self.addr.cast(), self.len) };
    }
}

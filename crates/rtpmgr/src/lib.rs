//! Safe zero-copy access to an `rtp_mgr` RTP slot ring, from the kernel device or from its
//! shared-memory twin.
//!
//! A channel is a ring of `2^ring_order` slots; each slot is a descriptor plus a payload buffer in
//! memory mapped by every user of the channel. Slots travel in order through
//! `FREE -reserve-> PRODUCING -push-> READY -pop-> CONSUMING -release-> FREE`, and the ring (the
//! kernel, or the shm backend in its place) enforces who may move which slot: only the open
//! channel that reserved or popped a slot may push or release it (`EPERM` otherwise), and the
//! slots of a channel that is closed — or whose process died — return to FREE, counted as
//! `reclaimed`.
//!
//! What this crate guarantees:
//! - **Zero copy.** [`WriteSlot`] and [`ReadSlot`] hand out the payload in the shared mapping
//!   itself; nothing is copied by the library.
//! - **No lost slot.** A [`WriteSlot`] that is dropped unpushed is kept by its [`Producer`] and
//!   handed out again by the next reserve; a [`ReadSlot`] is released when dropped — also during
//!   a panic, and also in another thread (it is `Send + 'static`, e.g. inside a `gst::Buffer`).
//! - **Few syscalls.** Reserve, push, pop and release move up to 256 slots per call; releases of
//!   dropped [`ReadSlot`]s are queued and flushed in one batch.
//! - **Two backends, one behaviour.** [`Backend::Kernel`] talks to `/dev/rtp_mgrN`;
//!   [`Backend::Shm`] keeps the same ring (same header page, same descriptor table) in a file
//!   under `/dev/shm` for hosts without the module. Both return the same errnos (see
//!   `include/rtp_mgr_ioctl.h`), checked by one conformance suite (`tests/conformance.rs`).
//! - **Kernel-attached sockets (ABI 2.1, kernel backend only).** [`Channel::attach`] hands a UDP
//!   socket to the channel: the kernel then receives its datagrams straight into the ring (RX)
//!   or sends READY slots through it (TX, optionally paced by [`TxPacing`]); [`Channel::set_wakeup`]
//!   coalesces consumer wake-ups ([`Wakeup`]). A shm ring answers these with
//!   [`Error::Unsupported`].
//! - **Capture (ABI 2.2, kernel backend only).** [`Channel::capture`] gets a copy of every packet
//!   that becomes READY, through its own bounded queue ([`Capture`]), so a pcap tool observes a
//!   channel without taking packets from its consumer.
//!
//! # Example
//!
//! ```
//! use rtpmgr::{Backend, Channel};
//! # let dir = std::env::temp_dir().join(format!("rtpmgr-doc-{}", std::process::id()));
//! # let backend = Backend::shm_at(&dir);
//! // let backend = Backend::kernel(0);            // /dev/rtp_mgr0
//! // let backend = Backend::shm("rtpmgr-0");      // /dev/shm/rtpmgr-0, created if absent
//! let ch = Channel::open(&backend)?;
//! ch.start()?;                                    // channels start stopped
//!
//! let mut tx = ch.producer()?;
//! let mut slots = tx.reserve_batch(2)?;           // up to 2 FREE slots, in ring order
//! for (i, s) in slots.iter_mut().enumerate() {
//!     s.fill(format!("packet {i}").as_bytes())?;  // write into the ring memory
//! }
//! assert_eq!(tx.push_batch(slots)?, 2);
//!
//! let mut rx = ch.consumer()?;
//! for s in rx.pop_batch(32)? {
//!     println!("{} bytes: {:?}", s.len(), s.data()); // the slot's payload, in place
//! }                                               // dropped: released (batched)
//! rx.flush()?;
//! assert_eq!(ch.stats()?.released, 2);
//! # drop((tx, rx, ch)); std::fs::remove_file(&dir).unwrap();
//! # Ok::<(), rtpmgr::Error>(())
//! ```
#![deny(missing_docs, missing_debug_implementations)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod attach;
pub mod capture;
mod error;
mod kernel;
pub mod layout;
mod quality;
mod ring;
pub mod rtp;
mod shm;
mod sys;

pub use attach::{Attached, SocketDir, TxPacing, Wakeup};
pub use capture::{Capture, CaptureOptions, CapturedPacket};
pub use error::{Error, Result};
pub use quality::Quality;
pub use ring::{Consumer, Producer, ReadSlot, Ring, WriteSlot};
pub use rtpmgr_abi as abi;
pub use rtpmgr_abi::ioctl::BatchOp as SlotOp;
pub use rtpmgr_abi::{RtpmInfo as Info, RtpmSlotDesc as SlotDesc, RtpmSlotRef as SlotRef};
pub use rtpmgr_abi::{RtpmStats as Stats, RtpmStatus as Status};
pub use sys::{monotonic_ns, Claim};

use error::Context;
use nix::errno::Errno;
use rtpmgr_abi::*;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Which way a wait looks: for READY slots to pop or FREE slots to reserve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// A slot can be popped (`POLLIN` on the kernel device).
    Readable,
    /// A slot can be reserved (`POLLOUT` on the kernel device).
    Writable,
}

/// What a full ring does with a new packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DropPolicy {
    /// Reserve fails with `EAGAIN`, counted in `overruns` (`RTPM_DROP_REJECT_NEWEST`).
    #[default]
    RejectNewest,
    /// The oldest READY slot is freed for the new packet, counted in `drops` (`RTPM_DROP_OLDEST`).
    DropOldest,
}

impl DropPolicy {
    /// The ABI value.
    pub fn to_raw(self) -> u32 {
        match self {
            DropPolicy::RejectNewest => RTPM_DROP_REJECT_NEWEST,
            DropPolicy::DropOldest => RTPM_DROP_OLDEST,
        }
    }

    /// From the ABI value; `None` for an unknown one.
    pub fn from_raw(v: u32) -> Option<DropPolicy> {
        match v {
            RTPM_DROP_REJECT_NEWEST => Some(DropPolicy::RejectNewest),
            RTPM_DROP_OLDEST => Some(DropPolicy::DropOldest),
            _ => None,
        }
    }
}

/// A channel configuration (CONFIGURE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// log2 of the slot count, 1 ..= 15.
    pub ring_order: u32,
    /// Usable payload bytes per slot, 64 ..= 16384.
    pub slot_payload: u32,
    /// Full-ring behaviour.
    pub drop_policy: DropPolicy,
}

impl Default for Config {
    /// The module's defaults: 1024 slots of 2048 bytes, reject-newest.
    fn default() -> Self {
        Config { ring_order: 10, slot_payload: 2048, drop_policy: DropPolicy::RejectNewest }
    }
}

impl Config {
    /// The ABI struct.
    pub fn to_raw(&self) -> RtpmConfig {
        RtpmConfig {
            ring_order: self.ring_order,
            slot_payload: self.slot_payload,
            drop_policy: self.drop_policy.to_raw(),
            flags: 0,
            reserved: [0; 4],
        }
    }

    /// From the ABI struct (an unknown drop policy reads as reject-newest).
    pub fn from_raw(c: &RtpmConfig) -> Config {
        Config {
            ring_order: c.ring_order,
            slot_payload: c.slot_payload,
            drop_policy: DropPolicy::from_raw(c.drop_policy).unwrap_or_default(),
        }
    }
}

/// Where a channel lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// The kernel module's device node, e.g. `/dev/rtp_mgr0`.
    Kernel {
        /// Device path.
        path: PathBuf,
    },
    /// A shared-memory ring file, created on first open.
    Shm {
        /// Ring file path, e.g. `/dev/shm/rtpmgr-0`.
        path: PathBuf,
        /// Channel number the ring reports (GET_INFO, header page).
        channel: u32,
        /// Configuration used if the file has to be created.
        create: Config,
    },
}

/// Which backend a [`Channel`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// `/dev/rtp_mgrN`.
    Kernel,
    /// A shm ring file.
    Shm,
}

impl Backend {
    /// The kernel device `/dev/rtp_mgr<channel>`.
    pub fn kernel(channel: u32) -> Backend {
        Backend::Kernel { path: PathBuf::from(format!("/dev/{RTPM_DEVICE_PREFIX}{channel}")) }
    }

    /// A kernel device at an explicit path.
    pub fn kernel_path(path: impl Into<PathBuf>) -> Backend {
        Backend::Kernel { path: path.into() }
    }

    /// The shm ring `NAME` in [`shm_dir`] (a name containing `/` is taken as a path).
    pub fn shm(name: &str) -> Backend {
        let path = if name.contains('/') { PathBuf::from(name) } else { shm_dir().join(name) };
        Backend::Shm { path, channel: 0, create: Config::default() }
    }

    /// The shm ring at an explicit path.
    pub fn shm_at(path: impl Into<PathBuf>) -> Backend {
        Backend::Shm { path: path.into(), channel: 0, create: Config::default() }
    }

    /// The default shm ring of a channel number: `rtpmgr-<channel>` in [`shm_dir`].
    pub fn shm_channel(channel: u32) -> Backend {
        Backend::Shm { path: shm_dir().join(format!("rtpmgr-{channel}")), channel, create: Config::default() }
    }

    /// Sets the configuration a shm ring is created with (no effect on the kernel backend).
    pub fn with_create_config(mut self, cfg: Config) -> Backend {
        if let Backend::Shm { create, .. } = &mut self {
            *create = cfg;
        }
        self
    }

    /// Sets the channel number a newly created shm ring reports.
    pub fn with_channel(mut self, ch: u32) -> Backend {
        if let Backend::Shm { channel, .. } = &mut self {
            *channel = ch;
        }
        self
    }

    /// Which backend this is.
    pub fn kind(&self) -> BackendKind {
        match self {
            Backend::Kernel { .. } => BackendKind::Kernel,
            Backend::Shm { .. } => BackendKind::Shm,
        }
    }

    /// The device or ring file path.
    pub fn path(&self) -> &Path {
        match self {
            Backend::Kernel { path } | Backend::Shm { path, .. } => path,
        }
    }
}

/// Directory of shm rings: `$RTPMGR_SHM_DIR`, else `/dev/shm`, else the temp directory.
pub fn shm_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("RTPMGR_SHM_DIR") {
        return PathBuf::from(d);
    }
    let d = Path::new("/dev/shm");
    if d.is_dir() {
        d.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

pub(crate) enum Dev {
    Kernel(kernel::KernelDev),
    Shm(Box<shm::ShmDev>),
}

pub(crate) struct ChannelInner {
    pub(crate) dev: Dev,
    pub(crate) name: String,
    /// The slots guards of this channel borrow, shared by all its mappings.
    pub(crate) borrows: ring::BorrowTableRef,
}

impl std::fmt::Debug for ChannelInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

impl ChannelInner {
    pub(crate) fn batch(&self, op: SlotOp, slots: &mut [RtpmSlotRef]) -> Result<usize, Errno> {
        match &self.dev {
            Dev::Kernel(k) => k.batch(op, slots),
            Dev::Shm(s) => s.batch(op, slots),
        }
    }

    /// Waits for `dir`: Ok(true) ready, Ok(false) timed out, `EINTR` when a signal handler ran.
    pub(crate) fn wait(&self, dir: Dir, timeout: Option<Duration>) -> Result<bool, Errno> {
        match &self.dev {
            Dev::Kernel(k) => k.wait(dir, timeout),
            Dev::Shm(s) => s.wait(dir, timeout),
        }
    }

    pub(crate) fn ctx(&self, what: &str) -> String {
        format!("{what} on {}", self.name)
    }
}

/// An open channel: the control handle of one ring (one "open file" for slot ownership).
///
/// Cloning is cheap and shares the handle. The handle stays open while any clone, [`Ring`],
/// [`Producer`], [`Consumer`] or slot guard of it lives; closing it returns the slots it owns.
#[derive(Debug, Clone)]
pub struct Channel {
    inner: Arc<ChannelInner>,
}

impl Channel {
    /// Opens a channel (creating a shm ring file with the backend's config if absent), with a
    /// shared [`Claim`]: while a self-test holds the channel exclusively, this waits for it (up
    /// to 3 s).
    ///
    /// # Errors
    /// The open's errno (`ENOENT`: no such device — module not loaded?; `EACCES`: not in the
    /// device's group), `EBUSY` if a self-test still holds the channel after the wait, `EPROTO`
    /// for a ring of another ABI major version or a corrupt shm file.
    pub fn open(backend: &Backend) -> Result<Channel> {
        Self::open_claimed(backend, Claim::Shared)
    }

    /// Opens a channel that no other handle of this library has open, and keeps others out
    /// until it is closed: for self-tests that must not mix their packets with a pipeline's.
    ///
    /// # Errors
    /// `EBUSY` if any other handle has the channel open; otherwise as [`Channel::open`].
    pub fn open_exclusive(backend: &Backend) -> Result<Channel> {
        Self::open_claimed(backend, Claim::Exclusive)
    }

    /// Opens a kernel channel read-only, to watch it: GET_INFO, GET_STATS, GET_STATUS, the
    /// wake-up rule and [`Channel::quality`] work (the module lets any opener read them); every
    /// call that would change the channel, map it or take a role answers `EBADF`, so a monitor
    /// cannot disturb the data path and needs no more than read access to the node.
    ///
    /// It takes no [`Claim`]: a watcher must neither wait for a self-test's exclusive hold nor
    /// keep a self-test out, and it cannot move packets that the self-test would see.
    ///
    /// # Errors
    /// As [`Channel::open`] (`ENOENT`, `EACCES`, `EPROTO`); [`Error::Unsupported`] on a shm ring,
    /// which has no read-only mode (whoever may open its file may write the ring).
    pub fn open_read_only(backend: &Backend) -> Result<Channel> {
        match backend {
            Backend::Kernel { path } => {
                let d =
                    kernel::KernelDev::open(path, false).context(|| format!("open {} read-only", path.display()))?;
                Self::finish_open(Dev::Kernel(d), path.display().to_string())
            }
            Backend::Shm { path, .. } => Err(Error::Unsupported {
                context: format!("open shm:{} read-only", path.display()),
                reason: "a shm ring has no read-only mode: open it with Channel::open".into(),
            }),
        }
    }

    fn open_claimed(backend: &Backend, claim: Claim) -> Result<Channel> {
        let busy = match claim {
            Claim::Shared => "held exclusively by a self-test (rtp_app diag?) for longer than expected",
            Claim::Exclusive => "in use by another process",
        };
        let (dev, name) = match backend {
            Backend::Kernel { path } => {
                let d = kernel::KernelDev::open(path, true).context(|| format!("open {}", path.display()))?;
                d.claim(claim).context(|| format!("claim {}: {busy}", path.display()))?;
                (Dev::Kernel(d), path.display().to_string())
            }
            Backend::Shm { path, channel, create } => {
                let d = shm::ShmDev::open(path, *channel, &create.to_raw())?;
                d.claim(claim).context(|| format!("claim shm ring {}: {busy}", path.display()))?;
                (Dev::Shm(Box::new(d)), format!("shm:{}", path.display()))
            }
        };
        Self::finish_open(dev, name)
    }

    /// Wraps an opened device and checks that it speaks this library's ABI major version.
    fn finish_open(dev: Dev, name: String) -> Result<Channel> {
        let ch = Channel { inner: Arc::new(ChannelInner { dev, name, borrows: Default::default() }) };
        let info = ch.info()?;
        if info.abi_major != RTPM_ABI_MAJOR {
            return Err(Error::AbiMismatch {
                context: ch.inner.ctx("open"),
                major: info.abi_major,
                minor: info.abi_minor,
            });
        }
        Ok(ch)
    }

    /// Device path or `shm:<path>`, for messages.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Which backend this channel uses.
    pub fn kind(&self) -> BackendKind {
        match self.inner.dev {
            Dev::Kernel(_) => BackendKind::Kernel,
            Dev::Shm(_) => BackendKind::Shm,
        }
    }

    /// GET_INFO: ABI version, layout and configuration.
    pub fn info(&self) -> Result<Info> {
        match &self.inner.dev {
            Dev::Kernel(k) => k.info(),
            Dev::Shm(s) => s.info(),
        }
        .context(|| self.inner.ctx("get info"))
    }

    /// The current configuration.
    pub fn config(&self) -> Result<Config> {
        Ok(Config::from_raw(&self.info()?.config))
    }

    /// GET_STATS: counters since load (shm: creation) or RESET.
    pub fn stats(&self) -> Result<Stats> {
        match &self.inner.dev {
            Dev::Kernel(k) => k.stats(),
            Dev::Shm(s) => s.stats(),
        }
        .context(|| self.inner.ctx("get stats"))
    }

    /// GET_STATUS: state, openers, mappings and slot counts right now.
    pub fn status(&self) -> Result<Status> {
        match &self.inner.dev {
            Dev::Kernel(k) => k.status(),
            Dev::Shm(s) => s.status(),
        }
        .context(|| self.inner.ctx("get status"))
    }

    /// True when the channel is running.
    pub fn is_running(&self) -> Result<bool> {
        Ok(self.info()?.state == RTPM_STATE_RUNNING)
    }

    /// CONFIGURE. Only while stopped and unmapped by everyone.
    ///
    /// # Errors
    /// `EBUSY` while running, mapped or while slots are owned; `EINVAL` for values out of range.
    pub fn configure(&self, cfg: &Config) -> Result<()> {
        let raw = cfg.to_raw();
        match &self.inner.dev {
            Dev::Kernel(k) => k.configure(&raw),
            Dev::Shm(s) => s.configure(&raw),
        }
        .context(|| self.inner.ctx(&format!("configure {cfg:?}")))
    }

    /// START: RESERVE and PUSH work. Starting a running channel is not an error.
    pub fn start(&self) -> Result<()> {
        match &self.inner.dev {
            Dev::Kernel(k) => k.start(),
            Dev::Shm(s) => s.start(),
        }
        .context(|| self.inner.ctx("start"))
    }

    /// STOP: RESERVE and PUSH fail with `EPIPE`; POP and RELEASE still work (drain).
    pub fn stop(&self) -> Result<()> {
        match &self.inner.dev {
            Dev::Kernel(k) => k.stop(),
            Dev::Shm(s) => s.stop(),
        }
        .context(|| self.inner.ctx("stop"))
    }

    /// CLAIM (ABI 2.0): this handle's roles become exactly `roles` (`RTPM_ROLE_PRODUCER`,
    /// `RTPM_ROLE_CONSUMER`, or 0 to give them up). While a handle holds the producer role, no
    /// other handle may RESERVE or PUSH; the consumer role keeps others from POPping. The
    /// producer role also lets this handle START and STOP the channel without `CAP_NET_ADMIN`.
    ///
    /// # Errors
    /// `EBUSY` if another open handle holds one of the roles; `EBADF` if the handle is read-only.
    /// A shm ring keeps the same roles between its handles (it has no privileges: whoever may
    /// open the ring file may do everything else).
    pub fn claim(&self, roles: u32) -> Result<()> {
        match &self.inner.dev {
            Dev::Kernel(k) => k.claim_roles(roles),
            Dev::Shm(s) => s.claim_roles(roles),
        }
        .context(|| self.inner.ctx(&format!("claim of roles {roles:#x}")))
    }

    /// RECLAIM (ABI 2.0, `CAP_NET_ADMIN`): takes back every slot that another handle has held
    /// for at least `min_held` (a live but hung process), and returns how many. With
    /// `revoke_roles` the roles other handles hold are taken away too (a process that claimed a
    /// role it should not have).
    ///
    /// This is an administrator's override of the ownership the guards rely on: a process
    /// whose slots are taken back may still hold `WriteSlot`s or `ReadSlot`s (or GstBuffers
    /// wrapping them) over memory the ring hands to someone else, so its payload bytes can
    /// change under it or its writes land in another packet. Use it on a process that is hung
    /// (and will be restarted), with a `min_held` well above any consumer's normal hold time
    /// (a jitterbuffer keeps packets for its latency), never as flow control.
    ///
    /// # Errors
    /// `EPERM` without `CAP_NET_ADMIN`; `EOPNOTSUPP` on a shm ring (its dead owners are
    /// reclaimed automatically, and a live one cannot be told apart from a slow one).
    pub fn reclaim(&self, min_held: Duration, revoke_roles: bool) -> Result<u32> {
        let ns = u64::try_from(min_held.as_nanos()).unwrap_or(u64::MAX);
        let flags = if revoke_roles { RTPM_RECLAIM_ROLES } else { 0 };
        match &self.inner.dev {
            Dev::Kernel(k) => k.reclaim(ns, flags),
            Dev::Shm(_) => Err(Errno::EOPNOTSUPP),
        }
        .context(|| self.inner.ctx("reclaim"))
    }

    /// RESET: empties the ring and zeroes the counters.
    ///
    /// # Errors
    /// `EBUSY` while running or while any slot is reserved or popped.
    pub fn reset(&self) -> Result<()> {
        match &self.inner.dev {
            Dev::Kernel(k) => k.reset(),
            Dev::Shm(s) => s.reset(),
        }
        .context(|| self.inner.ctx("reset"))
    }

    /// Maps the ring (header page read-only, payloads read-write) after validating its header.
    ///
    /// # Errors
    /// The mmap's errno, or `EPROTO` ([`Error::BadHeader`]) for a header that fails validation or
    /// disagrees with GET_INFO.
    pub fn map(&self) -> Result<Ring> {
        Ring::map(self.inner.clone())
    }

    /// Maps the ring and returns its producer handle.
    pub fn producer(&self) -> Result<Producer> {
        Ok(self.map()?.producer())
    }

    /// Maps the ring and returns its consumer handle.
    pub fn consumer(&self) -> Result<Consumer> {
        Ok(self.map()?.consumer())
    }

    /// Waits until a slot can be popped or reserved: `poll(2)` on the device, a futex on shm.
    /// Returns false on timeout or when a signal handler ran meanwhile (the caller looks at
    /// whatever flag its handler sets); a signal without a handler does not end the wait.
    pub fn wait(&self, dir: Dir, timeout: Option<Duration>) -> Result<bool> {
        signal_is_false(self.inner.wait(dir, timeout)).context(|| self.inner.ctx("wait"))
    }

    /// The raw slot operations, without guards: for tests of the ABI and for benchmarks of the
    /// per-slot ioctls. Slots moved through it are not tracked by any guard.
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("rtpmgr-raw-doc-{}", std::process::id()));
    /// # let ch = rtpmgr::Channel::open(&rtpmgr::Backend::shm_at(&dir))?;
    /// ch.start()?;
    /// // SAFETY: no guard of `ch` exists, so no slot moved here is borrowed by one.
    /// let raw = unsafe { ch.raw() };
    /// let slot = raw.reserve()?;
    /// raw.push(slot.index, 64, 0)?;
    /// assert_eq!(raw.pop()?.index, slot.index);
    /// # std::fs::remove_file(&dir).unwrap();
    /// # Ok::<(), rtpmgr::Error>(())
    /// ```
    ///
    /// # Safety
    ///
    /// The ring lets the open channel that owns a slot move it, whichever handle of that
    /// channel asks; the guards ([`WriteSlot`], [`ReadSlot`], also inside a `gst::Buffer`) rely
    /// on nobody else in this process moving *their* slot. While the returned [`Raw`] (or a copy)
    /// is used, the caller must not push, release or pop through it a slot that a guard of this
    /// channel (or of any clone, [`Ring`], [`Producer`] or [`Consumer`] of it) holds: a release
    /// under a live [`ReadSlot`] lets a producer overwrite the bytes it lends out, a push of a
    /// slot a [`WriteSlot`] still writes hands `&mut` memory to a reader, and either is a data
    /// race. Slots reserved or popped through [`Raw`] are the caller's to push or release.
    pub unsafe fn raw(&self) -> Raw<'_> {
        Raw { ch: self }
    }
}

/// Safe code cannot reach the raw slot API, whose misuse would release a slot a guard still
/// borrows; [`Channel::raw`] is `unsafe`:
///
/// ```compile_fail,E0133
/// fn release_behind_a_guard(ch: &rtpmgr::Channel, index: u32) {
///     let _ = ch.raw().release(index);
/// }
/// ```
#[cfg(doctest)]
pub mod raw_api_is_unsafe {}

/// A wait's answer with a signal (`EINTR`) read as "not ready", the public `*_wait` contract.
pub(crate) fn signal_is_false(r: Result<bool, Errno>) -> Result<bool, Errno> {
    match r {
        Err(Errno::EINTR) => Ok(false),
        r => r,
    }
}

/// Raw slot operations of a channel, obtained with the `unsafe` [`Channel::raw`] (whose contract
/// covers every use of this value).
#[derive(Debug, Clone, Copy)]
pub struct Raw<'a> {
    ch: &'a Channel,
}

impl Raw<'_> {
    /// A batched operation (RESERVE_BATCH ... RELEASE_BATCH): entries done, processed in order,
    /// failing only if the first entry fails (with its errno).
    pub fn batch(&self, op: SlotOp, slots: &mut [SlotRef]) -> Result<usize> {
        self.ch.inner.batch(op, slots).context(|| self.ch.inner.ctx(&format!("{op:?} batch")))
    }

    /// A per-slot operation (RESERVE_SLOT, PUSH_SLOT, POP_SLOT, RELEASE_SLOT): one syscall per
    /// slot on the kernel device.
    pub fn single(&self, op: SlotOp, slot: &mut SlotRef) -> Result<()> {
        let r = match &self.ch.inner.dev {
            Dev::Kernel(k) => k.single(op, slot),
            Dev::Shm(s) => s.batch(op, std::slice::from_mut(slot)).map(drop),
        };
        r.context(|| self.ch.inner.ctx(&format!("{op:?} slot {}", slot.index)))
    }

    /// RESERVE_SLOT.
    pub fn reserve(&self) -> Result<SlotRef> {
        let mut s = SlotRef::default();
        self.single(SlotOp::Reserve, &mut s)?;
        Ok(s)
    }

    /// PUSH_SLOT of `index` with `len` payload bytes (`arrival_ns` 0: stamped by the ring).
    pub fn push(&self, index: u32, len: u32, arrival_ns: u64) -> Result<()> {
        self.single(SlotOp::Push, &mut SlotRef::new(index, len, arrival_ns))
    }

    /// POP_SLOT.
    pub fn pop(&self) -> Result<SlotRef> {
        let mut s = SlotRef::default();
        self.single(SlotOp::Pop, &mut s)?;
        Ok(s)
    }

    /// CANCEL_SLOT of `index`: an unpushed reservation back to FREE (ABI 2.0).
    pub fn cancel(&self, index: u32) -> Result<()> {
        self.single(SlotOp::Cancel, &mut SlotRef::new(index, 0, 0))
    }

    /// RELEASE_SLOT of `index`.
    pub fn release(&self, index: u32) -> Result<()> {
        self.single(SlotOp::Release, &mut SlotRef::new(index, 0, 0))
    }
}

/// The counters of [`Stats`] as `(name, value)`, names as in the UAPI (and in sysfs).
pub fn stats_fields(s: &Stats) -> [(&'static str, u64); 22] {
    [
        ("pushed_packets", s.pushed_packets),
        ("pushed_bytes", s.pushed_bytes),
        ("popped_packets", s.popped_packets),
        ("popped_bytes", s.popped_bytes),
        ("released", s.released),
        ("drops", s.drops),
        ("overruns", s.overruns),
        ("underruns", s.underruns),
        ("rtp_lost", s.rtp_lost),
        ("rtp_reordered", s.rtp_reordered),
        ("rtp_duplicates", s.rtp_duplicates),
        ("malformed", s.malformed),
        ("reclaimed", s.reclaimed),
        ("illegal_ops", s.illegal_ops),
        ("cancelled", s.cancelled),
        ("denied", s.denied),
        ("evicted", s.evicted),
        ("rx_oversize", s.rx_oversize),
        ("rx_discarded", s.rx_discarded),
        ("wakeups", s.wakeups),
        ("tx_sent", s.tx_sent),
        ("tx_errors", s.tx_errors),
    ]
}

/// The fields of [`Status`] as `(name, value)`, names as in the UAPI.
pub fn status_fields(s: &Status) -> [(&'static str, u32); 13] {
    [
        ("state", s.state),
        ("openers", s.openers),
        ("mappings", s.mappings),
        ("free", s.free),
        ("producing", s.producing),
        ("ready", s.ready),
        ("consuming", s.consuming),
        ("claimed", s.claimed),
        ("reserve", s.reserve),
        ("producer", s.producer),
        ("consumer", s.consumer),
        ("release", s.release),
        ("attached", s.attached),
    ]
}

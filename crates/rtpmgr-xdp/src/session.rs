//! Setting up and tearing down one AF_XDP receive session, in an order that can always be undone.
//!
//! Seed 003's bug 4: a failure half-way through `afxdp_init` returned without detaching the XDP
//! program or freeing the UMEM. Here every resource is an RAII value created by one [`Step`] and
//! held in a local until the last step moves them all into a [`Session`]; an error (or a stop
//! request) at any step drops exactly the values that exist, in reverse order of creation. The
//! program is attached *last*, so until everything else is ready the interface's traffic goes to
//! the kernel stack as before, and a failure at any earlier step never touched the interface.
//!
//! A [`Session`] drops its parts in field order: detach the program (no more redirects), delete
//! the XSKMAP entry, close the socket and its rings, unregister the UMEM, unload the object,
//! unmap the frame memory.

use crate::fill::{refill, FramePool, RefillPolicy};
use crate::iface;
use crate::steer::{Attachment, CounterReader, SteerProgram, XskEntry};
use crate::{CopyMode, Error, Result, StopFlag, XdpConfig};
use std::ffi::CString;
use std::num::NonZeroU32;
use std::ptr::NonNull;
use xdpilone::{DeviceQueue, IfInfo, RingRx, Socket, SocketConfig, Umem, UmemConfig, User};

/// The setup steps, in order. A test hook may fail any of them (seed bug 4's test).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Interface, queue (against the real channel count), frame size and MTU.
    Validate,
    /// Load the BPF object and the program (verifier); nothing attached.
    LoadProgram,
    /// Fill the port map.
    Ports,
    /// Map the frame memory and register it as UMEM.
    Umem,
    /// Create the socket, its fill/completion and RX rings.
    Socket,
    /// Bind the socket to (interface, queue).
    Bind,
    /// Give the kernel its first frames.
    FillRing,
    /// `xsks_map[queue] = socket`.
    XskMapEntry,
    /// Attach the program to the interface.
    Attach,
    /// All done (a failure here undoes everything).
    Ready,
}

/// Anonymous, page-aligned frame memory; unmapped when dropped.
pub struct UmemArea {
    ptr: NonNull<u8>,
    len: usize,
}

impl std::fmt::Debug for UmemArea {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UmemArea").field("len", &self.len).finish()
    }
}

impl UmemArea {
    pub(crate) fn new(len: usize) -> Result<UmemArea> {
        // SAFETY: an anonymous private mapping; no file, no address hint.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(Error::io(format!("mmap {len} bytes of UMEM"), std::io::Error::last_os_error()));
        }
        Ok(UmemArea { ptr: NonNull::new(p.cast()).expect("mmap never returns NULL on success"), len })
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for an empty area (never: sizes are validated).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn as_slice_ptr(&self) -> NonNull<[u8]> {
        NonNull::slice_from_raw_parts(self.ptr, self.len)
    }

    /// The bytes `addr .. addr + len` of the area, if they lie inside it.
    ///
    /// The kernel writes a frame before it publishes its RX descriptor and does not touch it again
    /// until the frame is back on the fill ring, so a frame read between the two is stable.
    pub fn frame(&self, addr: u64, len: u32) -> Option<&[u8]> {
        let start = usize::try_from(addr).ok()?;
        let end = start.checked_add(len as usize)?;
        if end > self.len {
            return None;
        }
        // SAFETY: start..end lies inside the live mapping (checked above); see the doc comment
        // for why nobody writes these bytes while the slice is used.
        Some(unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(start), len as usize) })
    }
}

impl UmemArea {
    /// The bytes `addr .. addr + len` of the area for writing a frame to transmit, if they lie
    /// inside it.
    ///
    /// Only for frames this process owns (free, not on any ring): the kernel reads a TX frame
    /// only after its descriptor is published and until it is completed.
    pub fn frame_mut(&mut self, addr: u64, len: u32) -> Option<&mut [u8]> {
        let start = usize::try_from(addr).ok()?;
        let end = start.checked_add(len as usize)?;
        if end > self.len {
            return None;
        }
        // SAFETY: start..end lies inside the live mapping (checked above); `&mut self` keeps
        // other slices of this process out, and see the doc comment for the kernel.
        Some(unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr().add(start), len as usize) })
    }
}

impl Drop for UmemArea {
    fn drop(&mut self) {
        // SAFETY: ptr/len are exactly the mapping created in new(); nothing borrows it any more
        // (the Umem and the socket that registered it were dropped before, by field order).
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// One set-up AF_XDP receive session. Field order is drop order (see the module doc).
pub struct Session {
    pub(crate) attachment: Option<Attachment>,
    /// Held for its Drop: deletes `xsks_map[queue]`.
    #[allow(dead_code)]
    pub(crate) entry: XskEntry,
    pub(crate) rx: RingRx,
    pub(crate) user: User,
    pub(crate) fq: DeviceQueue,
    pub(crate) socket: Socket,
    pub(crate) mem: UmemParts,
    pub(crate) counters: Option<CounterReader>,
    pub(crate) program: SteerProgram,
    pub(crate) pool: FramePool,
    /// Frames owed to the fill ring (could not be put back yet).
    pub(crate) owed: u32,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("area", &self.mem.area).field("free", &self.pool.len()).finish()
    }
}

pub(crate) fn xsk_err(what: &str) -> impl FnOnce(xdpilone::Errno) -> Error + '_ {
    move |e| Error::Xsk { what: what.to_string(), errno: e.to_string() }
}

/// Checks what the configuration asks of the interface. Seed "Limitation 3": jumbo frames.
fn validate(cfg: &XdpConfig) -> Result<u32> {
    let ifindex = iface::ifindex(&cfg.iface)?;
    let queues = iface::rx_queue_count(&cfg.iface)?;
    iface::validate_queue(&cfg.iface, cfg.queue, queues)?;
    let page = iface::page_size() as u32;
    let fs = cfg.frame_size;
    if fs > page {
        return Err(Error::Config(format!(
            "frame size {fs} is larger than a page ({page} bytes): AF_XDP frames are at most one page, \
             so frames (MTU) above {} bytes cannot be received with --xdp; lower the MTU or use the socket path",
            page - XDP_PACKET_HEADROOM - 18
        )));
    }
    if fs < 2048 || !fs.is_power_of_two() {
        return Err(Error::Config(format!("frame size {fs} must be a power of two from 2048 to {page}")));
    }
    // The kernel keeps XDP_PACKET_HEADROOM at the start of every frame and drops (rx_dropped)
    // what does not fit the rest: refuse an MTU that would lose packets silently.
    let mtu = iface::mtu(&cfg.iface)?;
    let room = fs - XDP_PACKET_HEADROOM;
    let need = mtu + 14 + 4; // Ethernet header + one VLAN tag
    if need > room {
        let hint = if fs < page {
            format!("use a frame size of {page} (--xdp-frame-size) or lower the MTU to {}", room - 18)
        } else {
            format!("lower the MTU to {} (AF_XDP frames are at most one page)", room - 18)
        };
        return Err(Error::Config(format!(
            "MTU {mtu} of {} needs frames of {need} bytes, but a {fs}-byte AF_XDP frame holds {room}: {hint}",
            cfg.iface
        )));
    }
    if cfg.frames < 2 * cfg.ring_size || !cfg.ring_size.is_power_of_two() {
        return Err(Error::Config(format!(
            "ring size {} must be a power of two, and frames ({}) at least twice the ring size",
            cfg.ring_size, cfg.frames
        )));
    }
    Ok(ifindex)
}

/// Headroom the kernel reserves in every AF_XDP frame (XDP_PACKET_HEADROOM, linux/bpf.h).
pub const XDP_PACKET_HEADROOM: u32 = 256;

impl Session {
    /// Sets a session up. `hook` runs before every step (tests inject failures there); `stop`
    /// is checked before every step, so a signal during setup ends it cleanly (seed bug 6).
    ///
    /// # Errors
    /// The failing step's error, [`Error::Interrupted`] on a stop request; everything set up
    /// before it has been undone when this returns.
    pub fn open<S: StopFlag + ?Sized>(
        cfg: &XdpConfig,
        stop: &S,
        hook: &mut dyn FnMut(Step) -> Result<()>,
    ) -> Result<Session> {
        let mut step = |s: Step| -> Result<()> {
            if stop.should_stop() {
                return Err(Error::Interrupted(s));
            }
            log::debug!("xdp setup: {s:?}");
            hook(s)
        };

        step(Step::Validate)?;
        let ifindex = validate(cfg)?;

        step(Step::LoadProgram)?;
        let mut program = SteerProgram::load()?;
        let counters = program.counters(cfg.queue).ok();

        step(Step::Ports)?;
        program.set_ports(&cfg.ports)?;

        step(Step::Umem)?;
        let mem = UmemParts::new(cfg.frames, cfg.frame_size, cfg.ring_size)?;

        step(Step::Socket)?;
        let (socket, mut fq) = mem.socket(&cfg.iface, cfg.queue)?;
        let bind_flags = bind_flags(cfg.copy_mode);
        let scfg = SocketConfig { rx_size: NonZeroU32::new(cfg.ring_size), tx_size: None, bind_flags };
        let user = mem.umem.rx_tx(&socket, &scfg).map_err(xsk_err("create the RX ring"))?;
        let rx = user.map_rx().map_err(xsk_err("map the RX ring"))?;

        step(Step::Bind)?;
        bind(&mem.umem, &user, &cfg.iface, cfg.queue, cfg.copy_mode)?;

        step(Step::FillRing)?;
        let mut pool = FramePool::new(cfg.frames, cfg.frame_size);
        let r = refill(&mut fq, &mut pool.free, cfg.ring_size, RefillPolicy::default());
        if r.filled == 0 {
            return Err(Error::Config(format!("the fill ring took no frame ({r:?})")));
        }

        step(Step::XskMapEntry)?;
        let entry = program.insert_socket(cfg.queue, rx.as_raw_fd())?;

        step(Step::Attach)?;
        let attachment = program.attach(&cfg.iface, ifindex, cfg.xdp_mode)?;

        step(Step::Ready)?;
        Ok(Session {
            attachment: Some(attachment),
            entry,
            rx,
            user,
            fq,
            socket,
            mem,
            counters,
            program,
            pool,
            owed: r.short,
        })
    }

    /// Detaches the program now, reporting a failure (a plain drop only logs it).
    pub fn detach(&mut self) -> Result<()> {
        match self.attachment.take() {
            Some(a) => a.detach(),
            None => Ok(()),
        }
    }

    /// The socket's kernel counters (`XDP_STATISTICS`).
    pub fn xsk_stats(&self) -> Option<xdpilone::xdp::XdpStatisticsV2> {
        self.user.statistics_v2().ok()
    }

    /// The frame memory.
    pub fn area(&self) -> &UmemArea {
        &self.mem.area
    }

    /// Keeps the object alive for as long as the session (the compiler cannot see that the
    /// maps and links refer to it).
    pub fn program(&self) -> &SteerProgram {
        &self.program
    }

    /// The socket (shares the UMEM's fd).
    pub fn socket(&self) -> &Socket {
        &self.socket
    }

    /// The UMEM.
    pub fn umem(&self) -> &Umem {
        &self.mem.umem
    }
}

/// Frame memory and its UMEM registration, shared by the receive session and the sender. Field
/// order is drop order: the registration goes before the memory it refers to.
pub struct UmemParts {
    pub(crate) umem: Umem,
    pub(crate) area: UmemArea,
}

impl std::fmt::Debug for UmemParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UmemParts").field("area", &self.area).finish_non_exhaustive()
    }
}

impl UmemParts {
    /// `frames` frames of `frame_size` bytes, registered with fill and completion rings of
    /// `ring_size` entries (no headroom beyond the kernel's own).
    pub(crate) fn new(frames: u32, frame_size: u32, ring_size: u32) -> Result<UmemParts> {
        raise_memlock();
        let area = UmemArea::new(frames as usize * frame_size as usize)?;
        let ucfg = UmemConfig { fill_size: ring_size, complete_size: ring_size, frame_size, headroom: 0, flags: 0 };
        // SAFETY: the area is page-aligned (mmap), frames * frame_size long, and outlives the
        // Umem: UmemParts drops `umem` before `area` (field order), and if the registration
        // fails there is no Umem.
        let umem = unsafe { Umem::new(ucfg, area.as_slice_ptr()) }.map_err(xsk_err("register the UMEM"))?;
        Ok(UmemParts { umem, area })
    }

    /// An AF_XDP socket for (`iface`, `queue`) on this UMEM, with the UMEM's fill and completion
    /// rings; not bound yet.
    pub(crate) fn socket(&self, iface: &str, queue: u32) -> Result<(Socket, DeviceQueue)> {
        let mut info = IfInfo::invalid();
        let name = CString::new(iface).map_err(|_| Error::NoInterface(iface.into()))?;
        info.from_name(&name).map_err(xsk_err("look up the interface"))?;
        info.set_queue(queue);
        let socket = Socket::with_shared(&info, &self.umem).map_err(xsk_err("create the AF_XDP socket"))?;
        let fq = self.umem.fq_cq(&socket).map_err(xsk_err("create the fill and completion rings"))?;
        Ok((socket, fq))
    }
}

/// Bind flags for `copy_mode`, always with need-wakeup (the kernel says when to kick it).
pub(crate) fn bind_flags(copy_mode: CopyMode) -> u16 {
    SocketConfig::XDP_BIND_NEED_WAKEUP
        | match copy_mode {
            CopyMode::Auto => 0,
            CopyMode::Copy => SocketConfig::XDP_BIND_COPY,
            CopyMode::ZeroCopy => SocketConfig::XDP_BIND_ZEROCOPY,
        }
}

/// How long a bind waits for the queue to be released by a socket that was just closed.
const BIND_BUSY_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Binds the socket to its queue. The kernel releases a closed socket's queue asynchronously, so
/// a run started right after another (a service restart) can meet `EBUSY` for a moment: retried
/// for up to [`BIND_BUSY_WAIT`]. The error says what each errno usually means.
pub(crate) fn bind(umem: &Umem, user: &User, iface: &str, queue: u32, copy_mode: CopyMode) -> Result<()> {
    let deadline = std::time::Instant::now() + BIND_BUSY_WAIT;
    loop {
        let e = match umem.bind(user) {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        let hint = match e.get_raw() {
            libc::EBUSY if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
                continue;
            }
            libc::EBUSY => " (another AF_XDP socket is bound to this queue: another rtp_app --xdp?)",
            libc::EOPNOTSUPP | libc::EINVAL if copy_mode == CopyMode::ZeroCopy => {
                " (zero-copy needs driver support: try --copy)"
            }
            _ => "",
        };
        return Err(Error::Bind { iface: iface.into(), queue, copy_mode, errno: format!("{e}{hint}") });
    }
}

/// UMEM pages are charged to RLIMIT_MEMLOCK on kernels before 5.11 (memcg after): lift it if we
/// may, and let the registration report the error if we may not.
fn raise_memlock() {
    let r = libc::rlimit { rlim_cur: libc::RLIM_INFINITY, rlim_max: libc::RLIM_INFINITY };
    // SAFETY: r is a valid rlimit.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &r) } != 0 {
        log::debug!("cannot raise RLIMIT_MEMLOCK: {}", std::io::Error::last_os_error());
    }
}

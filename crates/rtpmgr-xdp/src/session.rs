//! Setting up and tearing down one AF_XDP receive session, in an order that can always be undone.
//!
//! Seed 003's bug 4: a failure half-way through `afxdp_init` returned without detaching the XDP
//! program or freeing the UMEM. Here every resource is an RAII value created by one [`Step`] and
//! held in a local until the last step moves them all into a [`Session`]; an error (or a stop
//! request) at any step drops exactly the values that exist, in reverse order of creation. The
//! program is attached *last*, so until everything else is ready the interface's traffic goes to
//! the kernel stack as before, and a failure at any earlier step never touched the interface.
//!
//! A [`Session`] drops its parts in field order: detach the program (no more redirects), then
//! per queue delete the XSKMAP entry and close the socket and its rings, then unregister the
//! UMEM, unload the object, unmap the frame memory.
//!
//! # Several queues, one UMEM
//! A session serves one or more RX queues of one interface: one program, one XSKMAP with an
//! entry per queue, one AF_XDP socket per queue, all sharing **one** UMEM (`XDP_SHARED_UMEM`,
//! each socket with its own fill and completion ring, Linux 5.10+). Shared rather than one UMEM
//! per queue because the memory budget then stays that of one queue (16384 × 2 KiB = 32 MiB by
//! default, or 16 huge pages) however many queues are served, and a frame freed by one queue can
//! refill any other: the frames are split over the queues' fill rings (each gets a power of two
//! of at most `ring_size`, half of its share of the frames), and what a queue consumed goes back
//! to that queue's fill ring. The first socket is the UMEM's own and is bound with the copy mode
//! flags; the others bind with `XDP_SHARED_UMEM` only and inherit its mode (the kernel refuses
//! flags on a shared bind).

use crate::fill::{refill, FramePool, RefillPolicy};
use crate::iface;
use crate::steer::{Attachment, CounterReader, SteerProgram, XdpMode, XskEntry};
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
    /// Bind the sockets to (interface, queue).
    Bind,
    /// Give the kernel its first frames.
    FillRing,
    /// `xsks_map[queue] = socket`, for every queue.
    XskMapEntry,
    /// Attach the program to the interface.
    Attach,
    /// All done (a failure here undoes everything).
    Ready,
}

/// Anonymous, page-aligned frame memory (optionally in 2 MiB huge pages); unmapped when dropped.
pub struct UmemArea {
    ptr: NonNull<u8>,
    len: usize,
    /// Bytes per frame.
    frame_size: u32,
    /// Frames in use: with huge pages `len` is rounded up past `frames * frame_size`, and the
    /// bytes after the last frame are no frame.
    frames: u32,
}

/// The byte range `addr .. addr + len` if it lies inside one of `frames` frames of `frame_size`
/// bytes (aligned UMEM: frame `i` is `i * frame_size ..`), else None. A descriptor's range
/// never crosses a frame; one that does is corrupt and must not be read.
pub(crate) fn frame_range(addr: u64, len: u32, frame_size: u32, frames: u32) -> Option<std::ops::Range<usize>> {
    if frame_size == 0 || addr / u64::from(frame_size) >= u64::from(frames) {
        return None;
    }
    if addr % u64::from(frame_size) + u64::from(len) > u64::from(frame_size) {
        return None;
    }
    let start = usize::try_from(addr).ok()?;
    Some(start..start.checked_add(len as usize)?)
}

/// Size of the huge pages `--hugepages` asks for (`MAP_HUGE_2MB`).
pub const HUGE_PAGE: usize = 2 << 20;

/// `MAP_HUGE_2MB` of <linux/mman.h>: log2(2 MiB) in the MAP_HUGE_SHIFT (26) bits.
const MAP_HUGE_2MB: libc::c_int = 21 << 26;

/// `len` rounded up to whole huge pages.
pub fn huge_pages_for(len: usize) -> usize {
    len.div_ceil(HUGE_PAGE)
}

/// The error of a huge-page UMEM that could not be mapped (`errno` of the mmap). For `ENOMEM`:
/// how many 2 MiB pages it needs, how many are reserved and free (from `/proc/meminfo`'s text
/// `meminfo`), and the sysctl that reserves them.
pub fn hugepage_error(len: usize, errno: i32, meminfo: &str) -> String {
    let field = |name: &str| -> Option<u64> {
        meminfo.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(':')?.split_whitespace().next()?.parse().ok())
    };
    let need = huge_pages_for(len) as u64;
    let (total, free, size_kb) = (field("HugePages_Total"), field("HugePages_Free"), field("Hugepagesize"));
    if errno == libc::EINVAL || (errno == libc::ENOMEM && total.is_none()) {
        return format!(
            "--hugepages: the kernel cannot map 2 MiB huge pages ({}; CONFIG_HUGETLBFS and a 2 MiB huge page \
             size are needed{}): run without --hugepages",
            std::io::Error::from_raw_os_error(errno),
            size_kb.map(|k| format!(", this kernel's default is {k} kB")).unwrap_or_default()
        );
    }
    let err = std::io::Error::from_raw_os_error(errno);
    if errno == libc::EACCES || errno == libc::EPERM {
        // AppArmor mediates the mapping of the anonymous hugetlbfs file (it names it "/").
        return format!(
            "--hugepages: the huge-page mapping was refused ({err}): a security policy (AppArmor, SELinux) does \
             not let rtp_app map the anonymous hugetlbfs file (rtpmgr's AppArmor profile allows it with `owner / r`)"
        );
    }
    if errno != libc::ENOMEM {
        return format!("--hugepages: cannot map the {} MiB UMEM in 2 MiB huge pages: {err}", len >> 20);
    }
    let (total, free) = (total.unwrap_or(0), free.unwrap_or(0));
    let what =
        if total == 0 { "none are reserved".to_string() } else { format!("{free} of the {total} reserved are free") };
    format!(
        "--hugepages: cannot map the {} MiB UMEM in 2 MiB huge pages: it needs {need}, {what}. Reserve them \
         with `sysctl vm.nr_hugepages={}` (or hugepages={} on the kernel command line), or run without --hugepages",
        len >> 20,
        total + need.saturating_sub(free),
        total + need.saturating_sub(free),
    )
}

impl std::fmt::Debug for UmemArea {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UmemArea").field("len", &self.len).finish()
    }
}

impl UmemArea {
    /// `frames` frames of `frame_size` bytes; with `hugepages`, rounded up to whole 2 MiB huge
    /// pages, which must be reserved (`vm.nr_hugepages`): [`Error::Config`] with
    /// [`hugepage_error`]'s text if not.
    pub(crate) fn new(frames: u32, frame_size: u32, hugepages: bool) -> Result<UmemArea> {
        let len = frames as usize * frame_size as usize;
        let (len, extra) =
            if hugepages { (huge_pages_for(len) * HUGE_PAGE, libc::MAP_HUGETLB | MAP_HUGE_2MB) } else { (len, 0) };
        // SAFETY: an anonymous private mapping; no file, no address hint. With MAP_HUGETLB the
        // length is a multiple of the huge page size (rounded above), as the kernel requires.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE | extra,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            let e = std::io::Error::last_os_error();
            if hugepages {
                let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
                return Err(Error::Config(hugepage_error(len, e.raw_os_error().unwrap_or(0), &meminfo)));
            }
            return Err(Error::io(format!("mmap {len} bytes of UMEM"), e));
        }
        if hugepages {
            log::info!("xdp: UMEM of {} MiB in {} huge pages of 2 MiB", len >> 20, len / HUGE_PAGE);
        }
        let ptr = NonNull::new(p.cast()).expect("mmap never returns NULL on success");
        Ok(UmemArea { ptr, len, frame_size, frames })
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

    /// The bytes `addr .. addr + len` of the area, if they lie inside one frame in use
    /// ([`frame_range`]).
    ///
    /// # Safety
    /// `addr` must come from an RX descriptor whose frame has not been returned to any fill ring
    /// (nor put on the TX ring) while the slice lives. The kernel writes a frame before it
    /// publishes the descriptor and does not touch it again until the frame is back on a fill
    /// ring, so such a frame is stable; any other frame may be written by the kernel (DMA or
    /// copy) at any time, which a `&[u8]` must not see.
    pub(crate) unsafe fn frame(&self, addr: u64, len: u32) -> Option<&[u8]> {
        let r = frame_range(addr, len, self.frame_size, self.frames)?;
        debug_assert!(r.end <= self.len);
        // SAFETY: r lies inside one of the frames in use, all inside the live mapping
        // (frames * frame_size <= len); the caller guarantees nobody writes it meanwhile.
        Some(unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(r.start), r.len()) })
    }
}

impl UmemArea {
    /// The bytes `addr .. addr + len` of the area for writing a frame to transmit, if they lie
    /// inside it.
    ///
    /// Only for frames this process owns (free, not on any ring): the kernel reads a TX frame
    /// only after its descriptor is published and until it is completed.
    pub(crate) fn frame_mut(&mut self, addr: u64, len: u32) -> Option<&mut [u8]> {
        let r = frame_range(addr, len, self.frame_size, self.frames)?;
        // SAFETY: r lies inside one of the frames in use, all inside the live mapping;
        // `&mut self` keeps other slices of this process out, and see the doc comment for the
        // kernel.
        Some(unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr().add(r.start), r.len()) })
    }
}

impl Drop for UmemArea {
    fn drop(&mut self) {
        // SAFETY: ptr/len are exactly the mapping created in new(); nothing borrows it any more
        // (the Umem and the socket that registered it were dropped before, by field order).
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// One served RX queue: its socket, rings and XSKMAP entry. Field order is drop order.
pub struct QueueSocket {
    /// `xsks_map[queue]`, deleted when dropped (None until the XskMapEntry step).
    pub(crate) entry: Option<XskEntry>,
    pub(crate) rx: RingRx,
    pub(crate) user: User,
    pub(crate) fq: DeviceQueue,
    pub(crate) socket: Socket,
    /// The queue index.
    pub(crate) queue: u32,
    /// Frames owed to this queue's fill ring (could not be put back yet).
    pub(crate) owed: u32,
    /// Frames read from this queue's RX ring.
    pub(crate) packets: u64,
}

impl std::fmt::Debug for QueueSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueSocket").field("queue", &self.queue).field("packets", &self.packets).finish()
    }
}

impl QueueSocket {
    /// The queue index.
    pub fn queue(&self) -> u32 {
        self.queue
    }

    /// The socket's kernel counters (`XDP_STATISTICS`).
    pub fn xsk_stats(&self) -> Option<xdpilone::xdp::XdpStatisticsV2> {
        self.user.statistics_v2().ok()
    }
}

/// One set-up AF_XDP receive session. Field order is drop order (see the module doc).
///
/// The frame memory is not reachable from outside the crate (there is no `area()`): a `&[u8]`
/// over a frame that is on a fill ring would alias bytes the kernel writes (undefined behaviour
/// from safe code). Inside, frames are read through the unsafe [`UmemArea::frame`].
///
/// ```compile_fail
/// fn peek(s: &rtpmgr_xdp::session::Session) -> usize {
///     s.area().len()
/// }
/// ```
pub struct Session {
    pub(crate) attachment: Option<Attachment>,
    pub(crate) queues: Vec<QueueSocket>,
    pub(crate) mem: UmemParts,
    pub(crate) counters: Option<CounterReader>,
    pub(crate) program: SteerProgram,
    pub(crate) pool: FramePool,
    /// The mode the program was attached in (native or skb).
    pub(crate) attached: XdpMode,
    /// Whether the sockets are bound in zero-copy mode (None: the kernel did not say).
    pub(crate) zero_copy: Option<bool>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("area", &self.mem.area)
            .field("queues", &self.queues)
            .field("attached", &self.attached)
            .field("free", &self.pool.len())
            .finish()
    }
}

pub(crate) fn xsk_err(what: &str) -> impl FnOnce(xdpilone::Errno) -> Error + '_ {
    move |e| Error::Xsk { what: what.to_string(), errno: e.to_string() }
}

/// Smallest fill/RX ring per queue: below this a queue starves between two rounds of the loop.
pub const MIN_QUEUE_RING: u32 = 64;

/// Fill and RX ring entries per queue when `queues` queues share `frames` frames: `ring_size`
/// for one queue, else the largest power of two up to `ring_size` that leaves half of each
/// queue's share of the frames free for the refill rounds.
pub fn ring_size_per_queue(frames: u32, ring_size: u32, queues: u32) -> Result<u32> {
    let queues = queues.max(1);
    let share = frames / (2 * queues);
    let per = if share == 0 { 0 } else { (1u32 << share.ilog2()).min(ring_size) };
    if per < MIN_QUEUE_RING {
        return Err(Error::Config(format!(
            "{frames} UMEM frames are too few for {queues} queues: each queue needs a fill ring of at least \
             {MIN_QUEUE_RING} entries and as many frames again; serve fewer queues"
        )));
    }
    Ok(per)
}

/// What [`validate`] found: the interface index, the queues to serve (sorted) and their ring size.
struct Plan {
    ifindex: u32,
    queues: Vec<u32>,
    ring_size: u32,
}

/// Checks what the configuration asks of the interface. Seed "Limitation 3": jumbo frames.
fn validate(cfg: &XdpConfig) -> Result<Plan> {
    let ifindex = iface::ifindex(&cfg.iface)?;
    let count = iface::rx_queue_count(&cfg.iface)?;
    let queues = iface::resolve_queues(&cfg.iface, &cfg.queues, count)?;
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
    let ring_size = ring_size_per_queue(cfg.frames, cfg.ring_size, queues.len() as u32)?;
    Ok(Plan { ifindex, queues, ring_size })
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
        let plan = validate(cfg)?;
        let ring_size = plan.ring_size;
        if plan.queues.len() > 1 {
            log::info!(
                "xdp: {} queues {:?} share one UMEM of {} frames; fill and RX rings of {ring_size} entries each",
                cfg.iface,
                plan.queues,
                cfg.frames
            );
        }

        step(Step::LoadProgram)?;
        let mut program = SteerProgram::load()?;
        let counters = program.counters(&plan.queues).ok();

        step(Step::Ports)?;
        program.set_ports(&cfg.ports)?;

        step(Step::Umem)?;
        let mem = UmemParts::new(cfg.frames, cfg.frame_size, ring_size, cfg.hugepages)?;

        step(Step::Socket)?;
        let mut queues: Vec<QueueSocket> = Vec::with_capacity(plan.queues.len());
        for (i, &queue) in plan.queues.iter().enumerate() {
            // The first socket is the UMEM's own; the others share it (XDP_SHARED_UMEM is set by
            // xdpilone at bind) and must not give copy-mode flags: they inherit the first's.
            let first = i == 0;
            let (socket, fq) = mem.socket(&cfg.iface, queue, first)?;
            let bind_flags = if first { bind_flags(cfg.copy_mode) } else { 0 };
            let scfg = SocketConfig { rx_size: NonZeroU32::new(ring_size), tx_size: None, bind_flags };
            let user = mem.umem.rx_tx(&socket, &scfg).map_err(xsk_err("create the RX ring"))?;
            let rx = user.map_rx().map_err(xsk_err("map the RX ring"))?;
            queues.push(QueueSocket { entry: None, rx, user, fq, socket, queue, owed: 0, packets: 0 });
        }

        step(Step::Bind)?;
        // In order: a shared bind needs the UMEM's own socket bound first.
        for q in &queues {
            bind(&mem.umem, &q.user, &cfg.iface, q.queue, cfg.copy_mode)?;
        }
        let zero_copy = bound_zero_copy(queues[0].rx.as_raw_fd());
        let bound = match zero_copy {
            Some(true) => "zero-copy",
            Some(false) => "copy",
            None => "an unknown",
        };
        let why = match (cfg.copy_mode, zero_copy) {
            (CopyMode::Auto, Some(false)) => {
                " (the kernel's choice: no zero-copy in this driver, so it fell back to copy)"
            }
            (CopyMode::Auto, _) => " (the kernel's choice)",
            _ => "",
        };
        log::info!("xdp: AF_XDP sockets on {} queues {:?} bound in {bound} mode{why}", cfg.iface, plan.queues);

        step(Step::FillRing)?;
        let mut pool = FramePool::new(cfg.frames, cfg.frame_size);
        for q in &mut queues {
            let r = refill(&mut q.fq, &mut pool.free, ring_size, RefillPolicy::default());
            if r.filled == 0 {
                return Err(Error::Config(format!("the fill ring of queue {} took no frame ({r:?})", q.queue)));
            }
            q.owed = r.short;
        }

        step(Step::XskMapEntry)?;
        for q in &mut queues {
            q.entry = Some(program.insert_socket(q.queue, q.rx.as_raw_fd())?);
        }

        step(Step::Attach)?;
        // The sockets are bound already: their copy mode decides whether auto may fall back.
        let mode = crate::steer::effective_attach_mode(cfg.xdp_mode, cfg.copy_mode, zero_copy);
        let (attachment, attached) = program.attach(&cfg.iface, plan.ifindex, mode).map_err(|e| {
            if mode != cfg.xdp_mode {
                crate::steer::zero_copy_refused(cfg.copy_mode, e)
            } else {
                e
            }
        })?;

        step(Step::Ready)?;
        Ok(Session { attachment: Some(attachment), queues, mem, counters, program, pool, attached, zero_copy })
    }

    /// Detaches the program now, reporting a failure (a plain drop only logs it).
    pub fn detach(&mut self) -> Result<()> {
        match self.attachment.take() {
            Some(a) => a.detach(),
            None => Ok(()),
        }
    }

    /// The served queues, in queue order.
    pub fn queues(&self) -> &[QueueSocket] {
        &self.queues
    }

    /// The mode the program was attached in: native or skb (never auto).
    pub fn attached_mode(&self) -> XdpMode {
        self.attached
    }

    /// Whether the sockets are bound in zero-copy mode (None: unknown).
    pub fn zero_copy(&self) -> Option<bool> {
        self.zero_copy
    }

    /// Keeps the object alive for as long as the session (the compiler cannot see that the
    /// maps and links refer to it).
    pub fn program(&self) -> &SteerProgram {
        &self.program
    }

    /// The first queue's socket (the UMEM's own fd).
    pub fn socket(&self) -> &Socket {
        &self.queues[0].socket
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
    pub(crate) fn new(frames: u32, frame_size: u32, ring_size: u32, hugepages: bool) -> Result<UmemParts> {
        raise_memlock();
        let area = UmemArea::new(frames, frame_size, hugepages)?;
        let ucfg = UmemConfig { fill_size: ring_size, complete_size: ring_size, frame_size, headroom: 0, flags: 0 };
        // SAFETY: the area is page-aligned (mmap), frames * frame_size long, and outlives the
        // Umem: UmemParts drops `umem` before `area` (field order), and if the registration
        // fails there is no Umem.
        let umem = unsafe { Umem::new(ucfg, area.as_slice_ptr()) }.map_err(xsk_err("register the UMEM"))?;
        Ok(UmemParts { umem, area })
    }

    /// An AF_XDP socket for (`iface`, `queue`) on this UMEM, with its own fill and completion
    /// rings; not bound yet. `umem_fd`: the UMEM's own socket (the first of a UMEM), else a new
    /// one that will be bound with `XDP_SHARED_UMEM`.
    pub(crate) fn socket(&self, iface: &str, queue: u32, umem_fd: bool) -> Result<(Socket, DeviceQueue)> {
        let mut info = IfInfo::invalid();
        let name = CString::new(iface).map_err(|_| Error::NoInterface(iface.into()))?;
        info.from_name(&name).map_err(xsk_err("look up the interface"))?;
        info.set_queue(queue);
        let socket = if umem_fd { Socket::with_shared(&info, &self.umem) } else { Socket::new(&info) }
            .map_err(xsk_err("create the AF_XDP socket"))?;
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

/// `SOL_XDP`, `XDP_OPTIONS` and `XDP_OPTIONS_ZEROCOPY` of <linux/if_xdp.h>.
const SOL_XDP: libc::c_int = 283;
const XDP_OPTIONS: libc::c_int = 8;
const XDP_OPTIONS_ZEROCOPY: u32 = 1;

/// Whether the bound socket `fd` runs in zero-copy mode (`XDP_OPTIONS`); None if not known.
pub(crate) fn bound_zero_copy(fd: libc::c_int) -> Option<bool> {
    let mut flags: u32 = 0;
    let mut len = std::mem::size_of::<u32>() as libc::socklen_t;
    // SAFETY: `flags` is a writable struct xdp_options (one u32) and `len` its size; the kernel
    // writes at most `len` bytes.
    let r = unsafe { libc::getsockopt(fd, SOL_XDP, XDP_OPTIONS, (&mut flags as *mut u32).cast(), &mut len) };
    (r == 0).then_some(flags & XDP_OPTIONS_ZEROCOPY != 0)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A descriptor range must stay inside one frame in use: not across a frame boundary, not
    /// in the huge-page padding after the last frame.
    #[test]
    fn frame_range_stays_inside_one_frame() {
        let (fs, frames) = (2048, 4);
        assert_eq!(frame_range(2047, 2, fs, frames), None, "crosses into frame 1");
        assert_eq!(frame_range(2047, 1, fs, frames), Some(2047..2048));
        assert_eq!(frame_range(u64::from(frames * fs), 1, fs, frames), None, "past the last frame");
        assert_eq!(frame_range(u64::from(frames * fs) + 4096, 0, fs, frames), None);
        assert_eq!(frame_range(u64::from(fs), fs, fs, frames), Some(2048..4096), "a whole frame");
        assert_eq!(frame_range(u64::from((frames - 1) * fs) + 256, fs - 256, fs, frames), Some(6400..8192));
        assert_eq!(frame_range(u64::from((frames - 1) * fs) + 256, fs - 255, fs, frames), None);
        assert_eq!(frame_range(u64::MAX, u32::MAX, fs, frames), None);
        assert_eq!(frame_range(0, 1, 0, frames), None);
    }

    #[test]
    fn rings_split_the_shared_umem_between_queues() {
        assert_eq!(ring_size_per_queue(16384, 8192, 1).unwrap(), 8192);
        assert_eq!(ring_size_per_queue(16384, 8192, 2).unwrap(), 4096);
        assert_eq!(ring_size_per_queue(16384, 8192, 4).unwrap(), 2048);
        assert_eq!(ring_size_per_queue(16384, 8192, 3).unwrap(), 2048, "a power of two");
        assert_eq!(ring_size_per_queue(16384, 8192, 64).unwrap(), 128);
        assert_eq!(ring_size_per_queue(4096, 1024, 2).unwrap(), 1024, "capped at ring_size");
        let e = ring_size_per_queue(256, 128, 4).unwrap_err().to_string();
        assert!(e.contains("too few for 4 queues"), "{e}");
    }

    /// --hugepages without reserved pages: the error says how many are needed and the sysctl.
    #[test]
    fn hugepage_error_names_the_pages_and_the_sysctl() {
        let none =
            "MemTotal: 1000 kB\nHugePages_Total:       0\nHugePages_Free:        0\nHugepagesize:       2048 kB\n";
        let e = hugepage_error(32 << 20, libc::ENOMEM, none);
        assert!(e.contains("needs 16, none are reserved"), "{e}");
        assert!(e.contains("sysctl vm.nr_hugepages=16"), "{e}");
        let some = "HugePages_Total:      20\nHugePages_Free:        4\nHugepagesize:       2048 kB\n";
        let e = hugepage_error(32 << 20, libc::ENOMEM, some);
        assert!(e.contains("4 of the 20 reserved are free") && e.contains("vm.nr_hugepages=32"), "{e}");
        // A kernel without hugetlbfs (no HugePages_* lines) or without 2 MiB pages.
        let e = hugepage_error(32 << 20, libc::ENOMEM, "MemTotal: 1000 kB\n");
        assert!(e.contains("cannot map 2 MiB huge pages") && e.contains("CONFIG_HUGETLBFS"), "{e}");
        let e = hugepage_error(32 << 20, libc::EINVAL, some);
        assert!(e.contains("2048 kB"), "{e}");
        // Refused by a security policy, not for want of pages: no sysctl advice.
        let e = hugepage_error(32 << 20, libc::EACCES, some);
        assert!(e.contains("security policy") && !e.contains("nr_hugepages"), "{e}");
        let e = hugepage_error(32 << 20, libc::EFAULT, some);
        assert!(e.contains("Bad address") && !e.contains("nr_hugepages"), "{e}");
        assert_eq!(huge_pages_for(1), 1);
        assert_eq!(huge_pages_for(32 << 20), 16);
        assert_eq!(huge_pages_for((32 << 20) + 1), 17);
    }
}

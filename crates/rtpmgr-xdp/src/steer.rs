//! The XDP steering program (bpf/rtp_steer.bpf.c): loading, port configuration, attachment and
//! the XSKMAP entry, each an RAII guard.
//!
//! - [`SteerProgram`]: the loaded object (program + maps). Dropping it unloads them.
//! - [`Attachment`]: the program attached to an interface. Dropping it detaches the program.
//! - [`XskEntry`]: `xsks_map[queue] = socket`. Dropping it deletes the entry (seed bug 4's
//!   "stale XSKMAP entry"), on its own duplicate of the map fd so it does not depend on the
//!   object outliving it.

use crate::{CopyMode, Error, Result};
use aya::maps::{HashMap as BpfHashMap, Map, MapData, PerCpuArray, XskMap};
use aya::programs::links::Link;
use aya::programs::xdp::XdpLink;
use aya::programs::{Xdp, XdpFlags};
use aya::Ebpf;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

/// XSKMAP and counter entries: queues `0..MAX_QUEUES` (RTP_STEER_MAX_QUEUES in the C source).
pub const MAX_QUEUES: usize = 64;
/// Entries of the port map (RTP_STEER_MAX_PORTS in the C source).
pub const MAX_PORTS: usize = 16;
/// Name of the program in the object (and in `bpftool prog`).
pub const PROGRAM_NAME: &str = "rtp_steer";

/// The object built by build.rs, embedded 8-byte aligned (aya rejects a misaligned ELF image).
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/rtp_steer.bpf.o"));

/// How the program is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum XdpMode {
    /// Native if the driver takes it, else generic (skb) mode, with a log line saying which and
    /// why (the default: the same command line works on a NIC and on a `dummy` or `lo`).
    #[default]
    Auto,
    /// In the driver (`xdp` in `ip link`); fails if the driver has no XDP support.
    Native,
    /// Generic XDP on the skb (`xdpgeneric`): any interface, slower.
    Skb,
}

impl XdpMode {
    fn flags(self) -> XdpFlags {
        match self {
            XdpMode::Auto | XdpMode::Native => XdpFlags::DRV_MODE,
            XdpMode::Skb => XdpFlags::SKB_MODE,
        }
    }

    /// `native`, `skb` or `auto`, as on the command line and in the stats line.
    pub fn as_str(self) -> &'static str {
        match self {
            XdpMode::Auto => "auto",
            XdpMode::Native => "native",
            XdpMode::Skb => "skb",
        }
    }
}

/// The errno at the root of an error chain (aya wraps the syscall's or netlink's `io::Error`).
pub(crate) fn root_errno(e: &(dyn std::error::Error + 'static)) -> Option<i32> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if let Some(n) = io.raw_os_error() {
                return Some(n);
            }
        }
        cur = err.source();
    }
    None
}

/// An error and its sources in one line ("`bpf_link_create` failed: Operation not supported").
pub(crate) fn describe_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(err) = cur {
        let t = err.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = err.source();
    }
    s
}

/// Whether a refused native attach may be retried in skb mode. Not when the interface is busy
/// (another XDP program: skb mode would be refused as well, and the real cause must be shown)
/// or when we lack the privilege (same); yes for what a driver without native XDP answers
/// (`EOPNOTSUPP`; `EINVAL` from some drivers for an MTU or a configuration they cannot run XDP
/// with) and for anything unknown.
pub fn native_refusal_allows_fallback(errno: Option<i32>) -> bool {
    !matches!(errno, Some(libc::EBUSY | libc::EEXIST | libc::EPERM | libc::EACCES))
}

/// Per-queue counters of the program, summed over CPUs (`struct rtp_steer_stats`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SteerCounters {
    /// Frames the program ran on.
    pub seen: u64,
    /// Frames redirected to the AF_XDP socket.
    pub redirected: u64,
    /// Frames passed to the kernel stack.
    pub passed: u64,
    /// Frames with impossible or cut headers (also in `passed`).
    pub malformed: u64,
}

// SAFETY: repr(C), four u64, no padding, every bit pattern valid.
unsafe impl aya::Pod for SteerCounters {}

impl SteerCounters {
    /// The sum of two sets of counters.
    pub fn plus(self, c: SteerCounters) -> SteerCounters {
        SteerCounters {
            seen: self.seen + c.seen,
            redirected: self.redirected + c.redirected,
            passed: self.passed + c.passed,
            malformed: self.malformed + c.malformed,
        }
    }
}

/// Reads the per-CPU counters of the served queues (owned map handle: usable from the stats
/// thread).
pub struct CounterReader {
    map: PerCpuArray<MapData, SteerCounters>,
    queues: Vec<u32>,
}

impl std::fmt::Debug for CounterReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CounterReader").field("queues", &self.queues).finish()
    }
}

impl CounterReader {
    /// The counters of all served queues, summed over queues and CPUs.
    pub fn read(&self) -> Result<SteerCounters> {
        self.queues.iter().try_fold(SteerCounters::default(), |a, &q| Ok(a.plus(self.read_queue(q)?)))
    }

    /// One queue's counters, summed over CPUs.
    pub fn read_queue(&self, queue: u32) -> Result<SteerCounters> {
        let per_cpu = self.map.get(&queue, 0).map_err(|e| Error::bpf("read xdp_stats", e))?;
        Ok(per_cpu.iter().fold(SteerCounters::default(), |a, c| a.plus(*c)))
    }
}

/// The loaded steering object.
pub struct SteerProgram {
    ebpf: Ebpf,
}

impl std::fmt::Debug for SteerProgram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SteerProgram")
    }
}

impl SteerProgram {
    /// Loads the object and the program into the kernel (verifier), attaching nothing.
    ///
    /// # Errors
    /// [`Error::Bpf`]; `EPERM` means root or CAP_BPF + CAP_NET_ADMIN is needed.
    pub fn load() -> Result<SteerProgram> {
        let mut ebpf = Ebpf::load(OBJECT).map_err(|e| Error::bpf("load the BPF object rtp_steer.bpf.o", e))?;
        let prog: &mut Xdp = ebpf
            .program_mut(PROGRAM_NAME)
            .ok_or_else(|| Error::bpf_msg("find program rtp_steer in the object"))?
            .try_into()
            .map_err(|e| Error::bpf("program rtp_steer is not XDP", e))?;
        prog.load().map_err(|e| Error::bpf("load XDP program rtp_steer (verifier)", e))?;
        Ok(SteerProgram { ebpf })
    }

    /// Sets the UDP destination ports to steer (replacing nothing: call once).
    ///
    /// # Errors
    /// [`Error::Config`] for no port, port 0 or more than [`MAX_PORTS`]; [`Error::Bpf`].
    pub fn set_ports(&mut self, ports: &[u16]) -> Result<()> {
        if ports.is_empty() || ports.len() > MAX_PORTS || ports.contains(&0) {
            return Err(Error::Config(format!("give 1 to {MAX_PORTS} UDP ports (1..65535), not {ports:?}")));
        }
        let map = self.ebpf.map_mut("rtp_ports").ok_or_else(|| Error::bpf_msg("find map rtp_ports"))?;
        let mut m: BpfHashMap<&mut MapData, u16, u8> =
            BpfHashMap::try_from(map).map_err(|e| Error::bpf("open map rtp_ports", e))?;
        for p in ports {
            m.insert(p, 1, 0).map_err(|e| Error::bpf(&format!("add port {p} to rtp_ports"), e))?;
        }
        Ok(())
    }

    /// An owned reader of the counters of `queues` (the map stays alive while it lives).
    pub fn counters(&mut self, queues: &[u32]) -> Result<CounterReader> {
        let map = self.ebpf.take_map("xdp_stats").ok_or_else(|| Error::bpf_msg("find map xdp_stats"))?;
        let map = PerCpuArray::try_from(map).map_err(|e| Error::bpf("open map xdp_stats", e))?;
        Ok(CounterReader { map, queues: queues.to_vec() })
    }

    /// `xsks_map[queue] = socket_fd`, as a guard that deletes the entry when dropped.
    pub fn insert_socket(&mut self, queue: u32, socket_fd: i32) -> Result<XskEntry> {
        let map = self.ebpf.map_mut("xsks_map").ok_or_else(|| Error::bpf_msg("find map xsks_map"))?;
        let fd = match &*map {
            Map::XskMap(data) => data.fd().as_fd().try_clone_to_owned(),
            _ => return Err(Error::bpf_msg("xsks_map is not an XSKMAP")),
        }
        .map_err(|e| Error::io("dup the xsks_map fd", e))?;
        let mut xsk: XskMap<&mut MapData> = XskMap::try_from(map).map_err(|e| Error::bpf("open map xsks_map", e))?;
        xsk.set(queue, socket_fd, 0).map_err(|e| Error::bpf(&format!("set xsks_map[{queue}]"), e))?;
        Ok(XskEntry { map_fd: fd, queue })
    }

    /// Attaches the program to `ifindex` in `mode`; returns the attachment and the mode it got
    /// (native or skb). [`XdpMode::Auto`] tries native and, when the driver refuses it (see
    /// [`native_refusal_allows_fallback`]), attaches in skb mode; every outcome is logged in
    /// one line naming the mode.
    ///
    /// # Errors
    /// [`Error::Attach`]: `EBUSY`/`EEXIST` when the interface already has an XDP program,
    /// `EOPNOTSUPP` for native mode on a driver without XDP (only with [`XdpMode::Native`]).
    pub fn attach(&mut self, iface: &str, ifindex: u32, mode: XdpMode) -> Result<(Attachment, XdpMode)> {
        attach_with_fallback(iface, mode, |m| self.attach_once(iface, ifindex, m))
    }

    fn attach_once(&mut self, iface: &str, ifindex: u32, mode: XdpMode) -> Result<Attachment> {
        let prog: &mut Xdp = self
            .ebpf
            .program_mut(PROGRAM_NAME)
            .ok_or_else(|| Error::bpf_msg("find program rtp_steer"))?
            .try_into()
            .map_err(|e| Error::bpf("program rtp_steer is not XDP", e))?;
        let id = prog.attach_to_if_index(ifindex, mode.flags()).map_err(|e| Error::Attach {
            iface: iface.into(),
            mode,
            source: Box::new(e),
        })?;
        let link = prog.take_link(id).map_err(|e| Error::bpf("take the XDP link", e))?;
        Ok(Attachment { link: Some(link), iface: iface.into() })
    }
}

/// [`SteerProgram::attach`]'s decision, over `attach_once` (one attach in native or skb mode):
/// native or skb as asked, or for [`XdpMode::Auto`] native and then skb when the driver refused
/// native ([`native_refusal_allows_fallback`]). An auto-mode error says "auto mode": the user
/// did not ask for native, so advice about `--xdp-mode native` would mislead.
pub(crate) fn attach_with_fallback<A>(
    iface: &str,
    mode: XdpMode,
    mut attach_once: impl FnMut(XdpMode) -> Result<A>,
) -> Result<(A, XdpMode)> {
    let first = if mode == XdpMode::Skb { XdpMode::Skb } else { XdpMode::Native };
    let native_err = match attach_once(first) {
        Ok(a) => {
            let how = if mode == XdpMode::Auto { " (auto: the driver took native mode)" } else { "" };
            log::info!("xdp: program attached to {iface} in {} mode{how}", first.as_str());
            return Ok((a, first));
        }
        Err(e) => e,
    };
    let errno = match &native_err {
        Error::Attach { source, .. } => root_errno(source.as_ref()),
        _ => None,
    };
    if mode != XdpMode::Auto {
        return Err(native_err);
    }
    if !native_refusal_allows_fallback(errno) {
        return Err(match native_err {
            Error::Attach { iface, source, .. } => Error::Attach { iface, mode: XdpMode::Auto, source },
            e => e,
        });
    }
    let reason = match &native_err {
        Error::Attach { source, .. } => describe_chain(source.as_ref()),
        e => e.to_string(),
    };
    match attach_once(XdpMode::Skb) {
        Ok(a) => {
            log::warn!(
                "xdp: program attached to {iface} in skb (generic) mode: native mode was refused ({reason}); \
                 skb mode works on any interface but costs an skb per packet (--xdp-mode skb skips the native try)"
            );
            Ok((a, XdpMode::Skb))
        }
        Err(Error::Attach { source, .. }) => Err(Error::Attach {
            iface: iface.into(),
            mode: XdpMode::Auto,
            source: format!("native: {reason}; skb: {}", describe_chain(source.as_ref())).into(),
        }),
        Err(e) => Err(e),
    }
}

/// The mode to attach in for `xdp_mode`, given the sockets' `copy_mode` and whether they were
/// bound zero-copy. Zero-copy needs the program in the driver: in skb mode every frame is copied
/// into the UMEM, so auto's skb fallback would quietly turn `--zero-copy` (or the kernel's
/// zero-copy choice) into copying. Then auto means native only, and a refusal is an error
/// ([`zero_copy_refused`]). Explicit modes are kept.
pub fn effective_attach_mode(xdp_mode: XdpMode, copy_mode: CopyMode, bound_zero_copy: Option<bool>) -> XdpMode {
    match (xdp_mode, copy_mode, bound_zero_copy) {
        (XdpMode::Auto, CopyMode::ZeroCopy, _) | (XdpMode::Auto, CopyMode::Auto, Some(true)) => XdpMode::Native,
        (m, _, _) => m,
    }
}

/// The error for a native attach that [`effective_attach_mode`] forced for zero-copy sockets
/// and the driver refused: it names why native was required. Errors that are not the driver's
/// refusal (busy interface, privilege) are returned unchanged, in auto mode.
pub fn zero_copy_refused(copy_mode: CopyMode, err: Error) -> Error {
    let Error::Attach { iface, source, .. } = err else {
        return err;
    };
    if !native_refusal_allows_fallback(root_errno(source.as_ref())) {
        return Error::Attach { iface, mode: XdpMode::Auto, source };
    }
    let reason = describe_chain(source.as_ref());
    Error::Config(match copy_mode {
        CopyMode::ZeroCopy => format!(
            "--zero-copy needs native XDP; the driver refused it: {reason} (on {iface}; drop --zero-copy or \
             give --copy to run in skb mode)"
        ),
        _ => format!(
            "the AF_XDP sockets on {iface} were bound zero-copy (the kernel's choice), which needs native XDP; \
             the driver refused it: {reason} (give --copy to run copying, in skb mode)"
        ),
    })
}

/// The advice after an attach error: by its errno when it is known.
pub(crate) fn attach_advice(iface: &str, mode: XdpMode, source: &(dyn std::error::Error + 'static)) -> String {
    match root_errno(source) {
        Some(libc::EBUSY | libc::EEXIST) => format!(
            "another XDP program is attached to {iface}: see `ip link show dev {iface}`, remove it with \
             `ip link set dev {iface} xdp off`"
        ),
        Some(libc::EPERM | libc::EACCES) => {
            "attaching XDP needs CAP_NET_ADMIN (and CAP_BPF for the program), or root".to_string()
        }
        _ if mode == XdpMode::Native => format!(
            "another XDP program attached? `ip link set dev {iface} xdp off`; driver without native XDP? \
             --xdp-mode native allows no fallback: drop it (auto falls back to skb) or give --xdp-mode skb"
        ),
        _ => format!("another XDP program attached? `ip link set dev {iface} xdp off`"),
    }
}

/// The program attached to an interface; detached when dropped (or by [`Attachment::detach`]).
pub struct Attachment {
    link: Option<XdpLink>,
    iface: String,
}

impl std::fmt::Debug for Attachment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attachment").field("iface", &self.iface).finish()
    }
}

impl Attachment {
    /// Detaches now, reporting an error instead of logging it.
    pub fn detach(mut self) -> Result<()> {
        match self.link.take() {
            Some(l) => l.detach().map_err(|e| Error::bpf(&format!("detach XDP from {}", self.iface), e)),
            None => Ok(()),
        }
    }
}

impl Drop for Attachment {
    fn drop(&mut self) {
        if let Some(l) = self.link.take() {
            if let Err(e) = l.detach() {
                log::error!("cannot detach the XDP program from {}: {e}", self.iface);
            }
        }
    }
}

/// `xsks_map[queue]`, deleted when dropped.
#[derive(Debug)]
pub struct XskEntry {
    map_fd: OwnedFd,
    queue: u32,
}

/// `union bpf_attr` as BPF_MAP_DELETE_ELEM reads it.
#[repr(C)]
struct MapElemAttr {
    map_fd: u32,
    pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}
const BPF_MAP_DELETE_ELEM: libc::c_long = 3; // Defined in linux/bpf.h (enum bpf_cmd)

impl Drop for XskEntry {
    fn drop(&mut self) {
        // aya 0.13 has no XskMap::unset: the raw command, on our own dup of the map fd.
        let key = self.queue;
        let attr = MapElemAttr {
            map_fd: self.map_fd.as_raw_fd() as u32,
            pad: 0,
            key: &key as *const u32 as u64,
            value: 0,
            flags: 0,
        };
        // SAFETY: attr is a valid bpf_attr prefix for BPF_MAP_DELETE_ELEM; key lives across the
        // call; the size passed is the size of attr.
        let r = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_DELETE_ELEM,
                &attr as *const MapElemAttr,
                std::mem::size_of::<MapElemAttr>(),
            )
        };
        if r != 0 {
            let e = std::io::Error::last_os_error();
            // ENOENT: the kernel already removed it (it does when the socket closes first).
            if e.raw_os_error() != Some(libc::ENOENT) {
                log::error!("cannot delete xsks_map[{}]: {e}", self.queue);
            }
        }
    }
}

/// IDs of the loaded BPF programs named [`PROGRAM_NAME`], in this machine's kernel.
///
/// Other processes may load the same program (a second rtp_app, another test run): a test that
/// checks its own cleanup compares the IDs before and after its run, never the bare count.
pub fn loaded_steer_program_ids() -> Vec<u32> {
    aya::programs::loaded_programs()
        .filter_map(|p| p.ok())
        .filter(|p| p.name_as_str() == Some(PROGRAM_NAME))
        .map(|p| p.id())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Auto mode falls back to skb for what a driver without native XDP answers, never when the
    /// interface is busy or we lack the privilege (skb would fail the same way, hiding the cause).
    #[test]
    fn native_refusals_that_fall_back_to_skb() {
        for e in [Some(libc::EOPNOTSUPP), Some(libc::EINVAL), Some(libc::ERANGE), None] {
            assert!(native_refusal_allows_fallback(e), "{e:?}");
        }
        for e in [libc::EBUSY, libc::EEXIST, libc::EPERM, libc::EACCES] {
            assert!(!native_refusal_allows_fallback(Some(e)), "{e}");
        }
    }

    /// Zero-copy sockets (asked for, or the kernel's choice) make auto mean native: skb mode
    /// would copy every frame. Everything else keeps the mode asked for.
    #[test]
    fn zero_copy_sockets_need_native_attach() {
        use CopyMode as C;
        use XdpMode as M;
        for zc in [Some(true), Some(false), None] {
            assert_eq!(effective_attach_mode(M::Auto, C::ZeroCopy, zc), M::Native, "{zc:?}");
            assert_eq!(effective_attach_mode(M::Auto, C::Copy, zc), M::Auto, "{zc:?}");
            for c in [C::Auto, C::Copy, C::ZeroCopy] {
                assert_eq!(effective_attach_mode(M::Native, c, zc), M::Native);
                assert_eq!(effective_attach_mode(M::Skb, c, zc), M::Skb);
            }
        }
        assert_eq!(effective_attach_mode(M::Auto, C::Auto, Some(true)), M::Native);
        assert_eq!(effective_attach_mode(M::Auto, C::Auto, Some(false)), M::Auto);
        assert_eq!(effective_attach_mode(M::Auto, C::Auto, None), M::Auto);
    }

    fn attach_err(mode: XdpMode, errno: i32) -> Error {
        Error::Attach { iface: "eth0".into(), mode, source: Box::new(std::io::Error::from_raw_os_error(errno)) }
    }

    #[test]
    fn a_refused_zero_copy_attach_names_the_reason() {
        let e = zero_copy_refused(CopyMode::ZeroCopy, attach_err(XdpMode::Native, libc::EOPNOTSUPP)).to_string();
        assert!(e.starts_with("--zero-copy needs native XDP; the driver refused it: "), "{e}");
        assert!(e.contains("os error 95") && !e.contains("allows no fallback"), "{e}");
        let e = zero_copy_refused(CopyMode::Auto, attach_err(XdpMode::Native, libc::EINVAL)).to_string();
        assert!(e.contains("bound zero-copy (the kernel's choice)") && e.contains("--copy"), "{e}");
        // Not the driver's refusal: the busy interface is the message, in auto mode.
        let e = zero_copy_refused(CopyMode::ZeroCopy, attach_err(XdpMode::Native, libc::EBUSY));
        assert!(matches!(e, Error::Attach { mode: XdpMode::Auto, .. }), "{e}");
        assert!(e.to_string().contains("another XDP program is attached"), "{e}");
    }

    /// Auto mode: a driver refusal falls back to skb; a busy interface is an auto-mode error
    /// that names the other program and gives no `--xdp-mode native` advice.
    #[test]
    fn auto_mode_fallback_decision() {
        let mut tried = Vec::new();
        let r = attach_with_fallback("eth0", XdpMode::Auto, |m| {
            tried.push(m);
            if m == XdpMode::Native {
                Err(attach_err(m, libc::EOPNOTSUPP))
            } else {
                Ok(())
            }
        });
        assert_eq!(r.unwrap().1, XdpMode::Skb);
        assert_eq!(tried, [XdpMode::Native, XdpMode::Skb]);

        for errno in [libc::EBUSY, libc::EEXIST] {
            let mut tried = Vec::new();
            let e = attach_with_fallback("eth0", XdpMode::Auto, |m| -> Result<()> {
                tried.push(m);
                Err(attach_err(m, errno))
            })
            .unwrap_err();
            assert_eq!(tried, [XdpMode::Native], "no skb try");
            assert!(matches!(e, Error::Attach { mode: XdpMode::Auto, .. }), "{e}");
            let msg = e.to_string();
            assert!(msg.contains("(auto mode)") && msg.contains("another XDP program is attached"), "{msg}");
            assert!(!msg.contains("allows no fallback"), "{msg}");
        }
        let e = attach_with_fallback("eth0", XdpMode::Auto, |m| -> Result<()> { Err(attach_err(m, libc::EPERM)) })
            .unwrap_err()
            .to_string();
        assert!(e.contains("CAP_NET_ADMIN") && !e.contains("allows no fallback"), "{e}");

        // An explicit native keeps its advice; auto failing both ways says so.
        let e =
            attach_with_fallback("eth0", XdpMode::Native, |m| -> Result<()> { Err(attach_err(m, libc::EOPNOTSUPP)) })
                .unwrap_err()
                .to_string();
        assert!(e.contains("(native mode)") && e.contains("allows no fallback"), "{e}");
        let e = attach_with_fallback("eth0", XdpMode::Auto, |m| -> Result<()> { Err(attach_err(m, libc::EINVAL)) })
            .unwrap_err()
            .to_string();
        assert!(e.contains("(auto mode)") && e.contains("native: ") && e.contains("; skb: "), "{e}");
    }

    #[test]
    fn errno_is_found_under_wrappers() {
        #[derive(Debug, thiserror::Error)]
        #[error("`bpf_link_create` failed")]
        struct Wrap(#[source] std::io::Error);
        let e = Wrap(std::io::Error::from_raw_os_error(libc::EOPNOTSUPP));
        assert_eq!(root_errno(&e), Some(libc::EOPNOTSUPP));
        let d = describe_chain(&e);
        assert!(d.starts_with("`bpf_link_create` failed: ") && d.contains("os error 95"), "{d}");
        assert_eq!(root_errno(&std::fmt::Error), None);
    }
}

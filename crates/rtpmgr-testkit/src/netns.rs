//! A veth pair with one end in a network namespace: a real link for tests that need one (the
//! AF_XDP tests of rtpmgr-xdp, the multicast tests of rtp-app).
//!
//! The end in the namespace plays the network: threads started with [`Veth::in_ns`] create their
//! sockets there and send to, or receive from, the host end. Everything is undone on drop, also
//! while a failed assertion unwinds, so a failing test leaves no link and no namespace behind.
//!
//! Without root, [`Veth::new`] records a skip through [`crate::skip`] and returns `None`. As root,
//! a failure to set the pair up is a broken host (iproute2 and the veth module are part of the
//! setup, scripts/setup-host.sh), so it panics with the cause instead of skipping.
//!
//! ```no_run
//! use rtpmgr_testkit::netns::{Veth, VethSpec};
//!
//! const SPEC: VethSpec = VethSpec {
//!     host_prefix: "ex",
//!     peer_prefix: "ey",
//!     ns_prefix: "rtpmgr-ex",
//!     host_addrs: &["10.203.99.1/24"],
//!     peer_addrs: &["10.203.99.2/24"],
//!     needs_root_because: "the example needs root (network namespaces, veth)",
//!     needs_ipv6: false,
//! };
//! let Some(v) = Veth::new("example::test", "a", &SPEC) else { return };
//! let sent = v.in_ns(|| std::net::UdpSocket::bind("0.0.0.0:0").unwrap().send_to(b"x", "10.203.99.1:5004"));
//! sent.join().unwrap().unwrap();
//! ```

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Command;
use std::thread::JoinHandle;

/// Directory of the lock file that gives one veth test at a time its turn on this machine.
const LOCK_DIR: &str = "/tmp/rtpmgr";
/// The lock file, in [`LOCK_DIR`].
const LOCK_FILE: &str = "veth-tests.lock";
/// Longest interface name the kernel takes (IFNAMSIZ - 1).
const IFNAME_MAX: usize = 15;

/// Runs `ip ARGS...` and returns its stdout; on failure, an error with the command line and
/// ip's stderr.
pub fn ip(args: &[&str]) -> Result<String, String> {
    let o = Command::new("ip").args(args).output().map_err(|e| format!("ip: {e}"))?;
    if !o.status.success() {
        return Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&o.stderr)));
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

/// The machine-wide turn of one veth test: two `cargo test` runs at once (two `make test`s)
/// would otherwise put the same addresses on two links and route each other's packets. Every
/// crate's veth tests take the same lock. Released on drop, also when the test panics (the file
/// closes).
struct MachineTurn(#[allow(dead_code)] File);

impl MachineTurn {
    /// Blocks until no other veth test on this machine holds its turn.
    fn take() -> MachineTurn {
        let dir = Path::new(LOCK_DIR);
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create {LOCK_DIR}: {e}"));
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(LOCK_FILE))
            .unwrap_or_else(|e| panic!("open {LOCK_DIR}/{LOCK_FILE}: {e}"));
        // flock(LOCK_EX): blocks until the other run's test is done; the lock goes with the file.
        f.lock().unwrap_or_else(|e| panic!("flock {LOCK_DIR}/{LOCK_FILE}: {e}"));
        MachineTurn(f)
    }
}

/// What a test suite's veth pairs look like: their names and addresses, and why they need root.
///
/// Each suite uses its own prefixes and subnets, so that its pairs never clash with another
/// suite's even outside the machine turn (a leftover of a killed run, say).
#[derive(Debug, Clone, Copy)]
pub struct VethSpec {
    /// Start of the host end's name; the tag and 5 hex digits follow (15 bytes at most in all).
    pub host_prefix: &'static str,
    /// Start of the peer end's name, as `host_prefix`.
    pub peer_prefix: &'static str,
    /// Start of the namespace's name; `-TAG-` and 5 hex digits follow.
    pub ns_prefix: &'static str,
    /// Addresses with prefix length (`10.0.0.1/24`, `fd00::1/64`) put on the host end, in order.
    /// IPv6 ones are added with `nodad`, so they are usable at once.
    pub host_addrs: &'static [&'static str],
    /// Addresses put on the peer end in the namespace, as `host_addrs`.
    pub peer_addrs: &'static [&'static str],
    /// The skip reason when the test does not run as root.
    pub needs_root_because: &'static str,
    /// Skip (with the reason) on a kernel without IPv6.
    pub needs_ipv6: bool,
}

/// A veth pair, `host` here and `peer` in namespace `ns`, both up with their addresses (and `lo`
/// up in the namespace); removed on drop, on panic too.
///
/// Names are unique per test and run (tag, pid and clock), so a leftover of a killed run never
/// collides with a new one. Holding a `Veth` also holds the machine-wide turn of the veth tests.
/// Declare it before anything that uses the link: locals drop in reverse order, so whatever runs
/// on the link stops before the link goes.
pub struct Veth {
    /// The end in this (the test's) namespace.
    pub host: String,
    /// The other end, in `ns`.
    pub peer: String,
    /// The network namespace (`ip netns` name, /var/run/netns/NAME).
    pub ns: String,
    _turn: MachineTurn,
}

impl Veth {
    /// Sets up a pair for `test` (its name, for the skip log) as `spec` says; `tag` (one or two
    /// characters) tells the pairs of one suite's tests apart. `None` after recording a skip when
    /// the process is not root, or `spec.needs_ipv6` and the kernel has no IPv6. Waits for the
    /// machine-wide turn of the veth tests first.
    ///
    /// # Panics
    ///
    /// As root, if the pair cannot be set up (iproute2 missing, no veth module): with the cause.
    pub fn new(test: &str, tag: &str, spec: &VethSpec) -> Option<Veth> {
        Veth::with_queues(test, tag, spec, 1)
    }

    /// As [`Veth::new`], with `queues` TX and RX queues on each end (`numtxqueues` and
    /// `numrxqueues`; veth delivers what the peer sends on its TX queue N to RX queue N).
    pub fn with_queues(test: &str, tag: &str, spec: &VethSpec, queues: u32) -> Option<Veth> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            crate::skip(test, spec.needs_root_because);
            return None;
        }
        if spec.needs_ipv6 && !Path::new("/proc/sys/net/ipv6").exists() {
            crate::skip(test, "IPv6 is disabled in this kernel (no /proc/sys/net/ipv6)");
            return None;
        }
        let turn = MachineTurn::take();
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let id = (std::process::id() ^ nanos) & 0xf_ffff;
        let v = Veth {
            host: format!("{}{tag}{id:05x}", spec.host_prefix),
            peer: format!("{}{tag}{id:05x}", spec.peer_prefix),
            ns: format!("{}-{tag}-{id:05x}", spec.ns_prefix),
            _turn: turn,
        };
        for name in [&v.host, &v.peer] {
            assert!(name.len() <= IFNAME_MAX, "interface name {name} is longer than {IFNAME_MAX} bytes");
        }
        let (h, p, ns) = (v.host.as_str(), v.peer.as_str(), v.ns.as_str());
        let add = |ns: Option<&str>, addr: &str, dev: &str| -> Result<String, String> {
            let mut args = Vec::new();
            if let Some(ns) = ns {
                args.extend(["-n", ns]);
            }
            args.extend(["addr", "add", addr, "dev", dev]);
            if addr.contains(':') {
                args.push("nodad");
            }
            ip(&args)
        };
        let setup = || -> Result<(), String> {
            ip(&["netns", "add", ns])?;
            let n = queues.max(1).to_string();
            let q = ["numtxqueues", n.as_str(), "numrxqueues", n.as_str()];
            ip(&[&["link", "add", h][..], &q, &["type", "veth", "peer", "name", p], &q].concat())?;
            ip(&["link", "set", p, "netns", ns])?;
            for a in spec.host_addrs {
                add(None, a, h)?;
            }
            ip(&["link", "set", h, "up"])?;
            for a in spec.peer_addrs {
                add(Some(ns), a, p)?;
            }
            ip(&["-n", ns, "link", "set", p, "up"])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
            Ok(())
        };
        // As root, a failure here is a broken host, not a reason to skip: fail with the cause.
        if let Err(e) = setup() {
            panic!("cannot set up a veth pair in a netns (iproute2, veth module?): {e}");
        }
        Some(v)
    }

    /// Runs `f` in a thread that entered the namespace (sockets it creates live there).
    pub fn in_ns<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> JoinHandle<T> {
        let path = format!("/var/run/netns/{}", self.ns);
        std::thread::spawn(move || {
            let f_ns = File::open(&path).expect("open netns");
            // SAFETY: setns on a namespace fd; affects only this thread.
            assert_eq!(unsafe { libc::setns(f_ns.as_raw_fd(), libc::CLONE_NEWNET) }, 0, "setns");
            f()
        })
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        let _ = ip(&["link", "del", &self.host]);
        let _ = ip(&["netns", "del", &self.ns]);
    }
}

//! `--xdp IFACE`: AF_XDP (crate `rtpmgr-xdp`) instead of the UDP socket.
//!
//! - `--mode rx --xdp`: an XDP program steers RTP to an AF_XDP socket and the frames go into ring
//!   slots (`rtpmgr_xdp::run_rx`).
//! - `--mode tx --xdp`: the tx worker's datagrams are written as Ethernet/IP/UDP frames into
//!   AF_XDP frames and put on the socket's TX ring (`rtpmgr_xdp::tx::XdpSender`), behind the same
//!   [`DatagramSender`](crate::net::DatagramSender) interface as the UDP socket.
//!
//! The options live here so that cli.rs only flattens them in. Without the `xdp` feature (a
//! build without clang) `--xdp` is refused with a message that says so.

use crate::cli::Cli;
use clap::{ArgAction, Args, ValueEnum};

/// Options of the AF_XDP receive path.
#[derive(Debug, Clone, Args)]
pub struct XdpArgs {
    /// Receive (rx) or send (tx) with AF_XDP on this interface instead of a UDP socket (needs
    /// root or CAP_BPF + CAP_NET_ADMIN).
    ///
    /// rx: an XDP program redirects UDP to the RTP ports (--xdp-ports, default --port or 5004)
    /// on the --queue queue(s) to one AF_XDP socket per queue; everything else (ping, ARP, other ports) still reaches the
    /// kernel stack. Frames are parsed (Ethernet, one VLAN tag, IPv4/IPv6, UDP, RTP v2) and the
    /// RTP packet is copied into ring slots with its arrival time; malformed frames are counted
    /// and dropped. The program is detached when rtp_app exits.
    ///
    /// tx: each RTP packet is written behind Ethernet/IPv4-or-IPv6/UDP headers (checksums
    /// computed) into an AF_XDP frame on --queue; no XDP program is attached. Source: --bind or
    /// the interface's address, UDP source port = --port; next hop: --dst-mac or the ARP table.
    /// At exit rtp_app waits for the kernel to complete every frame and prints an "AF_XDP TX:"
    /// line (submitted, completed, outstanding). See docs/afxdp.md.
    #[arg(long, value_name = "iface")]
    pub xdp: Option<String>,

    /// Queue(s) of the --xdp interface: N, a range A-B, a list A,B,... or all (every RX queue
    /// the interface has). rx serves them all from this one process: one XDP program, one
    /// socket per queue, one shared UMEM; tx sends on one queue N. Checked against the
    /// interface's channel count.
    #[arg(long, default_value = "0", value_name = "q", value_parser = parse_queues, requires = "xdp")]
    pub queue: QueueArg,

    /// XDP attach mode (rx): auto (the default: native, and skb when the driver refuses native
    /// XDP, with a log line saying so), native (in the driver; an error if it cannot) or skb
    /// (generic, any interface).
    #[arg(long, value_enum, value_name = "mode", requires = "xdp")]
    pub xdp_mode: Option<XdpModeArg>,

    /// Map the UMEM in 2 MiB huge pages (fewer TLB misses). They must be reserved first:
    /// `sysctl vm.nr_hugepages=N` (rx: 16 for the default 32 MiB UMEM; tx: 4); without them
    /// rtp_app says how many it needs.
    #[arg(long, requires = "xdp")]
    pub hugepages: bool,

    /// Force zero-copy binding (fails on drivers without AF_XDP zero-copy).
    #[arg(long, conflicts_with = "copy", requires = "xdp")]
    pub zero_copy: bool,

    /// Force copy-mode binding (works on every driver, e.g. veth). Default: the kernel chooses.
    #[arg(long, requires = "xdp")]
    pub copy: bool,

    /// Spin on the AF_XDP RX ring instead of sleeping in poll(2) (lowest latency, one core busy).
    #[arg(long, conflicts_with = "poll", requires = "xdp")]
    pub busy_poll: bool,

    /// Sleep in poll(2) while the RX ring is empty (the default).
    #[arg(long, requires = "xdp")]
    pub poll: bool,

    /// UDP destination ports carrying RTP, comma separated (1..16 ports).
    #[arg(long, value_delimiter = ',', value_name = "ports", action = ArgAction::Append, requires = "xdp",
          value_parser = clap::value_parser!(u16).range(1..))]
    pub xdp_ports: Vec<u16>,

    /// Ethernet address of the next hop for --mode tx --xdp (aa:bb:cc:dd:ee:ff); default: the
    /// ARP table's entry for --dst (IPv4; resolved if missing). Needed for IPv6, and for a
    /// destination behind a router (give the router's address).
    #[arg(long, value_name = "mac", requires = "xdp")]
    pub dst_mac: Option<String>,

    /// UMEM frame size (2048 or 4096 on 4 KiB pages); larger frames are refused.
    #[arg(long, default_value_t = 2048, value_name = "bytes", hide_short_help = true, requires = "xdp")]
    pub xdp_frame_size: u32,
}

/// XDP attach modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum XdpModeArg {
    /// Native, else skb (logged).
    Auto,
    /// Driver (native) XDP.
    Native,
    /// Generic (skb) XDP.
    Skb,
}

/// `--queue`: which queues of the --xdp interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueArg {
    /// These queues, in the order given (duplicates are served once).
    List(Vec<u32>),
    /// Every RX queue of the interface.
    All,
}

impl QueueArg {
    /// The queue if exactly one is named.
    pub fn single(&self) -> Option<u32> {
        match self {
            QueueArg::List(l) if l.len() == 1 => Some(l[0]),
            _ => None,
        }
    }
}

impl std::fmt::Display for QueueArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QueueArg::All => f.write_str("all"),
            QueueArg::List(l) => {
                let s: Vec<String> = l.iter().map(u32::to_string).collect();
                f.write_str(&s.join(","))
            }
        }
    }
}

/// At most this many queues in one run: the entries of the program's XSKMAP
/// (`rtpmgr_xdp::steer::MAX_QUEUES`, which this build may not include).
pub const MAX_QUEUES: usize = 64;

/// Parses `--queue`: `N`, `A-B`, `A,B,...` (items may be ranges) or `all`.
pub fn parse_queues(s: &str) -> Result<QueueArg, String> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("all") {
        return Ok(QueueArg::All);
    }
    let num = |t: &str| -> Result<u32, String> {
        t.trim()
            .parse::<u32>()
            .map_err(|_| format!("'{}' is not a queue number (give N, A-B, A,B,... or all)", t.trim()))
    };
    let mut out: Vec<u32> = Vec::new();
    for item in s.split(',') {
        if item.trim().is_empty() {
            return Err(format!("'{s}' has an empty item (give N, A-B, A,B,... or all)"));
        }
        let (a, b) = match item.split_once('-') {
            Some((a, b)) => (num(a)?, num(b)?),
            None => {
                let n = num(item)?;
                (n, n)
            }
        };
        if a > b {
            return Err(format!("range '{}' runs backwards (write {b}-{a})", item.trim()));
        }
        let too_many = || format!("'{s}' names more than {MAX_QUEUES} queues, the most one run serves");
        // A range wider than the limit is refused before it is walked (`0-4294967295` must not
        // loop); overlapping items count once, so the limit is checked on the distinct queues.
        if (b - a) as usize >= MAX_QUEUES {
            return Err(too_many());
        }
        for q in a..=b {
            if !out.contains(&q) {
                out.push(q);
            }
        }
        if out.len() > MAX_QUEUES {
            return Err(too_many());
        }
    }
    Ok(QueueArg::List(out))
}

/// Runs `--mode rx --xdp`; returns the final stats line.
#[cfg(feature = "xdp")]
pub fn run(cli: &Cli, stop: &crate::control::StopState) -> anyhow::Result<String> {
    use anyhow::Context;
    use std::time::Duration;
    let x = &cli.xdp;
    let iface = x.xdp.clone().context("--xdp needs an interface")?;
    let ports = if !x.xdp_ports.is_empty() { x.xdp_ports.clone() } else { vec![cli.rx.port.unwrap_or(5004)] };
    let cfg = rtpmgr_xdp::XdpConfig {
        iface,
        queues: match &x.queue {
            QueueArg::All => rtpmgr_xdp::Queues::All,
            QueueArg::List(l) => rtpmgr_xdp::Queues::List(l.clone()),
        },
        ports,
        xdp_mode: match x.xdp_mode.unwrap_or(XdpModeArg::Auto) {
            XdpModeArg::Auto => rtpmgr_xdp::XdpMode::Auto,
            XdpModeArg::Native => rtpmgr_xdp::XdpMode::Native,
            XdpModeArg::Skb => rtpmgr_xdp::XdpMode::Skb,
        },
        hugepages: x.hugepages,
        copy_mode: match (x.copy, x.zero_copy) {
            (true, _) => rtpmgr_xdp::CopyMode::Copy,
            (_, true) => rtpmgr_xdp::CopyMode::ZeroCopy,
            _ => rtpmgr_xdp::CopyMode::Auto,
        },
        wait: if x.busy_poll { rtpmgr_xdp::WaitMode::BusyPoll } else { rtpmgr_xdp::WaitMode::Poll },
        frame_size: x.xdp_frame_size,
        batch: cli.common.batch,
        interval: (cli.common.interval > 0.0).then(|| Duration::from_secs_f64(cli.common.interval)),
        ..rtpmgr_xdp::XdpConfig::default()
    };
    let backend = crate::backend::select(&cli.common)?;
    let ch = crate::backend::open(&backend).with_context(|| format!("cannot open {}", backend.path().display()))?;
    let limits =
        rtpmgr_xdp::Limits { duration: cli.common.time.map(Duration::from_secs_f64), packets: cli.common.limit };
    // The AF_XDP loop runs on this thread: it is the worker (--rt-priority/--cpu), it pings the
    // watchdog each time it looks at the stop flag, and READY comes once setup has bound the
    // socket and attached the program (the hook's last step).
    rtpmgr_service::worker_started()?;
    let status = format!("receiving AF_XDP on {} queue {} into {}", cfg.iface, x.queue, backend.path().display());
    let mut on_step = |s: rtpmgr_xdp::session::Step| {
        if s == rtpmgr_xdp::session::Step::Ready {
            rtpmgr_service::ready(&status);
        }
        Ok(())
    };
    let stop_fn = rtpmgr_xdp::StopFn(|| {
        rtpmgr_service::watchdog_tick();
        stop.should_stop()
    });
    let summary = rtpmgr_xdp::run_rx_with_hook(&cfg, &ch, limits, &stop_fn, &mut on_step)?;
    Ok(summary.line())
}

/// Settings of `--mode tx --xdp`, from the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XdpTx {
    /// Interface.
    pub iface: String,
    /// Queue.
    pub queue: u32,
    /// --hugepages.
    pub hugepages: bool,
    /// --copy / --zero-copy (None: the kernel chooses).
    pub zero_copy: Option<bool>,
    /// UMEM frame size.
    pub frame_size: u32,
    /// --bind: source address (None or unspecified: the interface's).
    pub src_ip: Option<std::net::IpAddr>,
    /// --dst-mac as given.
    pub dst_mac: Option<String>,
}

/// The `--xdp` settings of a tx run (None without --xdp).
pub fn tx_settings(cli: &Cli) -> Option<XdpTx> {
    let x = &cli.xdp;
    Some(XdpTx {
        iface: x.xdp.clone()?,
        // The command line check refuses a list or `all` with --mode tx.
        queue: x.queue.single().unwrap_or(0),
        hugepages: x.hugepages,
        zero_copy: match (x.copy, x.zero_copy) {
            (true, _) => Some(false),
            (_, true) => Some(true),
            _ => None,
        },
        frame_size: x.xdp_frame_size,
        src_ip: cli.rx.bind,
        dst_mac: x.dst_mac.clone(),
    })
}

/// An AF_XDP socket as the tx worker's datagram sender.
#[cfg(feature = "xdp")]
struct XdpDatagrams(rtpmgr_xdp::tx::XdpSender);

#[cfg(feature = "xdp")]
impl crate::net::DatagramSender for XdpDatagrams {
    fn send_batch(&mut self, bufs: &[&[u8]]) -> std::io::Result<usize> {
        Ok(self.0.send(bufs))
    }
    fn describe(&self) -> String {
        format!("AF_XDP (source {})", self.0.source())
    }
    fn finish(&mut self) -> Option<String> {
        Some(self.0.finish(std::time::Duration::from_secs(1)).line())
    }
}

/// Opens the AF_XDP sender of `--mode tx --xdp` towards `dst`.
#[cfg(feature = "xdp")]
pub fn open_sender(x: &XdpTx, dst: std::net::SocketAddr) -> anyhow::Result<Box<dyn crate::net::DatagramSender>> {
    use anyhow::Context;
    let dst_mac = match &x.dst_mac {
        Some(s) => Some(
            rtpmgr_xdp::iface::parse_mac(s)
                .with_context(|| format!("--dst-mac '{s}' is not an Ethernet address (aa:bb:cc:dd:ee:ff)"))?,
        ),
        None => None,
    };
    let cfg = rtpmgr_xdp::tx::TxConfig {
        queue: x.queue,
        copy_mode: match x.zero_copy {
            Some(true) => rtpmgr_xdp::CopyMode::ZeroCopy,
            Some(false) => rtpmgr_xdp::CopyMode::Copy,
            None => rtpmgr_xdp::CopyMode::Auto,
        },
        frame_size: x.frame_size,
        src_ip: x.src_ip,
        dst_mac,
        hugepages: x.hugepages,
        ..rtpmgr_xdp::tx::TxConfig::new(x.iface.clone(), dst)
    };
    let sender =
        rtpmgr_xdp::tx::XdpSender::open(&cfg).with_context(|| format!("cannot send with AF_XDP on {}", x.iface))?;
    Ok(Box::new(XdpDatagrams(sender)))
}

/// Without the `xdp` feature: a clear refusal.
#[cfg(not(feature = "xdp"))]
pub fn open_sender(_x: &XdpTx, _dst: std::net::SocketAddr) -> anyhow::Result<Box<dyn crate::net::DatagramSender>> {
    anyhow::bail!("this rtp_app was built without AF_XDP support (cargo feature \"xdp\"): --xdp is unavailable")
}

/// Without the `xdp` feature: a clear refusal.
#[cfg(not(feature = "xdp"))]
pub fn run(_cli: &Cli, _stop: &crate::control::StopState) -> anyhow::Result<String> {
    anyhow::bail!("this rtp_app was built without AF_XDP support (cargo feature \"xdp\"): --xdp is unavailable")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::parse_for_test as parse;

    #[test]
    fn xdp_options_parse_and_need_rx() {
        let c = parse(&[
            "--mode", "rx", "--xdp", "veth0", "--queue", "1", "--xdp-mode", "skb", "--copy", "--busy-poll",
            "--xdp-ports", "5004,5006", "-l", "10",
        ])
        .unwrap();
        assert_eq!(c.xdp.xdp.as_deref(), Some("veth0"));
        assert_eq!(
            (c.xdp.queue.single(), c.xdp.xdp_mode, c.xdp.copy, c.xdp.busy_poll),
            (Some(1), Some(XdpModeArg::Skb), true, true)
        );
        assert_eq!(c.xdp.xdp_ports, vec![5004, 5006]);
        // Without --xdp-mode: auto (native, else skb); --hugepages needs --xdp.
        let c = parse(&["--mode", "rx", "--xdp", "eth0", "--hugepages"]).unwrap();
        assert_eq!((c.xdp.xdp_mode, c.xdp.hugepages, c.xdp.queue.clone()), (None, true, QueueArg::List(vec![0])));
        assert_eq!(
            parse(&["--mode", "rx", "--xdp", "eth0", "--xdp-mode", "auto"]).unwrap().xdp.xdp_mode,
            Some(XdpModeArg::Auto)
        );
        assert!(parse(&["--mode", "rx", "--port", "5004", "--hugepages"]).is_err());
        // --port is not needed with --xdp; the AF_XDP options need --xdp.
        assert!(parse(&["--mode", "rx", "--xdp", "eth0"]).is_ok());
        assert!(parse(&["--mode", "rx", "--port", "5004", "--queue", "1"]).is_err());
        assert!(parse(&["--mode", "rx", "--xdp", "eth0", "--copy", "--zero-copy"]).is_err());
        assert!(parse(&["--mode", "rx", "--xdp", "eth0", "--poll", "--busy-poll"]).is_err());
        assert!(parse(&["--mode", "rx", "--xdp", "eth0", "--xdp-ports", "0"]).is_err());
        assert!(parse(&["--mode", "ctl", "--stats", "--xdp", "eth0"]).unwrap_err().contains("--xdp"));
    }

    #[test]
    fn queue_lists_parse() {
        let l = |v: &[u32]| Ok(QueueArg::List(v.to_vec()));
        assert_eq!(parse_queues("2"), l(&[2]));
        assert_eq!(parse_queues("0-3"), l(&[0, 1, 2, 3]));
        assert_eq!(parse_queues("3,1"), l(&[3, 1]));
        assert_eq!(parse_queues("0-1,5,1"), l(&[0, 1, 5]), "duplicates once");
        assert_eq!(parse_queues(" 4 - 5 "), l(&[4, 5]));
        assert_eq!(parse_queues("all"), Ok(QueueArg::All));
        assert_eq!(parse_queues("ALL"), Ok(QueueArg::All));
        assert_eq!(parse_queues("0-63").unwrap().to_string().split(',').count(), 64);
        // Overlaps count once: the limit is on distinct queues, not on the widths written.
        assert_eq!(parse_queues("0-40,20-60"), l(&(0..=60).collect::<Vec<_>>()));
        assert_eq!(parse_queues("0-63,5"), l(&(0..=63).collect::<Vec<_>>()));
        for (bad, says) in [
            ("x", "'x' is not a queue number (give N, A-B, A,B,... or all)"),
            ("-1", "'' is not a queue number"),
            ("1,,2", "has an empty item"),
            ("", "has an empty item"),
            ("3-1", "range '3-1' runs backwards (write 1-3)"),
            ("0-64", "more than 64 queues"),
            ("0-40,20-64", "more than 64 queues"),
            ("0-4294967295", "more than 64 queues"),
            ("1-2-3", "'2-3' is not a queue number"),
        ] {
            let e = parse_queues(bad).unwrap_err();
            assert!(e.contains(says), "{bad:?}: {e}");
        }
        // Through clap: the error names the option.
        let e = parse(&["--mode", "rx", "--xdp", "eth0", "--queue", "2-1"]).unwrap_err();
        assert!(e.contains("--queue") && e.contains("runs backwards"), "{e}");
        let c = parse(&["--mode", "rx", "--xdp", "eth0", "--queue", "all"]).unwrap();
        assert_eq!((c.xdp.queue.clone(), c.xdp.queue.single()), (QueueArg::All, None));
        assert_eq!(
            parse(&["--mode", "rx", "--xdp", "eth0", "--queue", "0-3"]).unwrap().xdp.queue.to_string(),
            "0,1,2,3"
        );
    }

    #[test]
    fn xdp_tx_options() {
        let c = parse(&[
            "--mode", "tx", "--dst", "10.0.0.1", "--port", "5004", "--xdp", "veth1", "--copy", "--dst-mac",
            "02:00:00:00:00:01", "--bind", "10.0.0.2",
        ])
        .unwrap();
        let x = tx_settings(&c).unwrap();
        assert_eq!(
            (x.iface.as_str(), x.zero_copy, x.dst_mac.as_deref()),
            ("veth1", Some(false), Some("02:00:00:00:00:01"))
        );
        assert_eq!(x.src_ip, Some("10.0.0.2".parse().unwrap()));
        assert!(tx_settings(&parse(&["--mode", "tx", "--dst", "10.0.0.1", "--port", "5004"]).unwrap()).is_none());
        // What only the receive side has is refused, naming the option.
        for rx_only in [&["--xdp-mode", "skb"][..], &["--xdp-ports", "5004"], &["--busy-poll"], &["--poll"]] {
            let mut a = vec!["--mode", "tx", "--dst", "10.0.0.1", "--port", "5004", "--xdp", "veth1"];
            a.extend_from_slice(rx_only);
            let e = parse(&a).unwrap_err();
            assert!(e.contains(rx_only[0]) && e.contains("--mode rx"), "{e}");
        }
        // tx sends on one queue.
        let tx = ["--mode", "tx", "--dst", "10.0.0.1", "--port", "5004", "--xdp", "veth1", "--queue"];
        assert_eq!(tx_settings(&parse(&[&tx[..], &["3"]].concat()).unwrap()).unwrap().queue, 3);
        for many in ["0-1", "all", "1,2"] {
            let e = parse(&[&tx[..], &[many]].concat()).unwrap_err();
            assert!(e.contains("sends on one queue"), "{many}: {e}");
        }
        assert!(tx_settings(&parse(&[&tx[..], &["0", "--hugepages"]].concat()).unwrap()).unwrap().hugepages);
        assert!(parse(&["--mode", "rx", "--xdp", "veth0", "--dst-mac", "02:00:00:00:00:01"])
            .unwrap_err()
            .contains("--dst-mac"));
    }
}

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
    /// on --queue to an AF_XDP socket; everything else (ping, ARP, other ports) still reaches the
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

    /// Queue of the --xdp interface (checked against the interface's channel count).
    #[arg(long, default_value_t = 0, value_name = "q", requires = "xdp")]
    pub queue: u32,

    /// XDP attach mode (rx): native (in the driver, the default) or skb (generic, any interface).
    #[arg(long, value_enum, value_name = "mode", requires = "xdp")]
    pub xdp_mode: Option<XdpModeArg>,

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
    /// Driver (native) XDP.
    Native,
    /// Generic (skb) XDP.
    Skb,
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
        queue: x.queue,
        ports,
        xdp_mode: match x.xdp_mode.unwrap_or(XdpModeArg::Native) {
            XdpModeArg::Native => rtpmgr_xdp::XdpMode::Native,
            XdpModeArg::Skb => rtpmgr_xdp::XdpMode::Skb,
        },
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
    let status = format!("receiving AF_XDP on {} queue {} into {}", cfg.iface, cfg.queue, backend.path().display());
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
        queue: x.queue,
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
        assert_eq!((c.xdp.queue, c.xdp.xdp_mode, c.xdp.copy, c.xdp.busy_poll), (1, Some(XdpModeArg::Skb), true, true));
        assert_eq!(c.xdp.xdp_ports, vec![5004, 5006]);
        // --port is not needed with --xdp; the AF_XDP options need --xdp.
        assert!(parse(&["--mode", "rx", "--xdp", "eth0"]).is_ok());
        assert!(parse(&["--mode", "rx", "--port", "5004", "--queue", "1"]).is_err());
        assert!(parse(&["--mode", "rx", "--xdp", "eth0", "--copy", "--zero-copy"]).is_err());
        assert!(parse(&["--mode", "rx", "--xdp", "eth0", "--poll", "--busy-poll"]).is_err());
        assert!(parse(&["--mode", "rx", "--xdp", "eth0", "--xdp-ports", "0"]).is_err());
        assert!(parse(&["--mode", "ctl", "--stats", "--xdp", "eth0"]).unwrap_err().contains("--xdp"));
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
        assert!(parse(&["--mode", "rx", "--xdp", "veth0", "--dst-mac", "02:00:00:00:00:01"])
            .unwrap_err()
            .contains("--dst-mac"));
    }
}

//! `--mode rx --xdp IFACE`: the AF_XDP receive path (crate `rtpmgr-xdp`) instead of the UDP
//! socket. The options live here so that cli.rs only flattens them in; the run itself is
//! `rtpmgr_xdp::run_rx`. Without the `xdp` feature (a build without clang) `--xdp` is refused
//! with a message that says so.

use crate::cli::{BackendKind, Cli};
use clap::{ArgAction, Args, ValueEnum};

/// Options of the AF_XDP receive path.
#[derive(Debug, Clone, Args)]
pub struct XdpArgs {
    /// Receive with AF_XDP on this interface instead of a UDP socket (needs root or
    /// CAP_BPF + CAP_NET_ADMIN).
    ///
    /// An XDP program redirects UDP to the RTP ports (--xdp-ports, default --port or 5004) on
    /// --queue to an AF_XDP socket; everything else (ping, ARP, other ports) still reaches the
    /// kernel stack. Frames are parsed (Ethernet, one VLAN tag, IPv4/IPv6, UDP, RTP v2) and the
    /// RTP packet is copied into ring slots with its arrival time; malformed frames are counted
    /// and dropped. The program is detached when rtp_app exits. See docs/afxdp.md.
    #[arg(long, value_name = "iface")]
    pub xdp: Option<String>,

    /// RX queue of the --xdp interface (checked against the interface's channel count).
    #[arg(long, default_value_t = 0, value_name = "q", requires = "xdp")]
    pub queue: u32,

    /// XDP attach mode: native (in the driver) or skb (generic, any interface).
    #[arg(long, value_enum, default_value_t = XdpModeArg::Native, value_name = "mode", requires = "xdp")]
    pub xdp_mode: XdpModeArg,

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

/// The shm or kernel ring the common options name, as an `rtpmgr::Backend` (same choice as
/// `backend::select`, which hands out rtp_app's own ring handles instead).
fn ring_backend(cli: &Cli) -> anyhow::Result<rtpmgr::Backend> {
    let c = &cli.common;
    let dev = crate::backend::device_path(c);
    Ok(match c.backend {
        Some(BackendKind::Shm) => match c.shm_name.as_deref() {
            Some(n) => rtpmgr::Backend::shm(n).with_channel(c.channel),
            None => rtpmgr::Backend::shm_channel(c.channel),
        },
        Some(BackendKind::Kernel) => rtpmgr::Backend::kernel_path(dev),
        None if dev.exists() => rtpmgr::Backend::kernel_path(dev),
        None => anyhow::bail!(
            "{} does not exist: load the kernel module (modprobe rtp_mgr) or use --backend shm",
            dev.display()
        ),
    })
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
        xdp_mode: match x.xdp_mode {
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
    let backend = ring_backend(cli)?;
    let ch = rtpmgr::Channel::open(&backend).with_context(|| format!("cannot open {}", backend.path().display()))?;
    let limits = rtpmgr_xdp::Limits {
        duration: cli.common.time.map(Duration::from_secs_f64),
        packets: cli.common.limit,
    };
    let summary = rtpmgr_xdp::run_rx(&cfg, &ch, limits, &rtpmgr_xdp::StopFn(|| stop.should_stop()))?;
    Ok(summary.line())
}

/// Without the `xdp` feature: a clear refusal.
#[cfg(not(feature = "xdp"))]
pub fn run(_cli: &Cli, _stop: &crate::control::StopState) -> anyhow::Result<String> {
    let _ = ring_backend;
    anyhow::bail!("this rtp_app was built without AF_XDP support (cargo feature \"xdp\"): --xdp is unavailable")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(args: &[&str]) -> Result<Cli, String> {
        let cli = Cli::try_parse_from(std::iter::once("rtp_app").chain(args.iter().copied())).map_err(|e| e.to_string())?;
        cli.validate()?;
        Ok(cli)
    }

    #[test]
    fn xdp_options_parse_and_need_rx() {
        let c = parse(&[
            "--mode", "rx", "--xdp", "veth0", "--queue", "1", "--xdp-mode", "skb", "--copy", "--busy-poll",
            "--xdp-ports", "5004,5006", "-l", "10",
        ])
        .unwrap();
        assert_eq!(c.xdp.xdp.as_deref(), Some("veth0"));
        assert_eq!((c.xdp.queue, c.xdp.xdp_mode, c.xdp.copy, c.xdp.busy_poll), (1, XdpModeArg::Skb, true, true));
        assert_eq!(c.xdp.xdp_ports, vec![5004, 5006]);
        // --port is not needed with --xdp; the AF_XDP options need --xdp; only rx takes it.
        assert!(parse(&["--mode", "rx", "--xdp", "eth0"]).is_ok());
        assert!(parse(&["--mode", "rx", "--port", "5004", "--queue", "1"]).is_err());
        assert!(parse(&["--mode", "rx", "--xdp", "eth0", "--copy", "--zero-copy"]).is_err());
        assert!(parse(&["--mode", "rx", "--xdp", "eth0", "--poll", "--busy-poll"]).is_err());
        assert!(parse(&["--mode", "rx", "--xdp", "eth0", "--xdp-ports", "0"]).is_err());
        assert!(parse(&["--mode", "tx", "--dst", "127.0.0.1", "--port", "1", "--xdp", "eth0"]).unwrap_err().contains("--xdp"));
    }
}

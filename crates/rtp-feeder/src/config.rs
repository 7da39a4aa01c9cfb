//! The feeder's configuration: a TOML file (`/etc/rtpmgr/feeder.toml`) overridden by the CLI.
//!
//! ```toml
//! channel = 0
//! direction = "rx"
//! caps = "application/x-rtp,media=audio,clock-rate=48000,encoding-name=OPUS,payload=96"
//! pipeline = "rtpjitterbuffer latency=50 ! rtpopusdepay ! opusdec ! fakesink"
//! stats_interval = 10
//!
//! [status_led]
//! enabled = false
//! chip = "/dev/gpiochip0"
//! line = 17
//!
//! # The feeder opens the UDP socket itself and hands it to the ring channel: the kernel
//! # receives into the ring, no rtp_app process in between. Without this section the feeder
//! # pops what another process (rtp_app --mode rx) pushes.
//! [receive]
//! port = 5004
//! group = "232.1.1.1"
//! ssm_source = "10.0.0.1"
//! iface = "eth0"
//! ```
//!
//! Unknown keys are rejected so that a typo is an error at `--check-config`, not a silently
//! ignored setting on the device. docs/rtp-feeder.md is the full reference.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::cli::{Cli, DEFAULT_CONFIG};

/// Which kind of ring (the ring itself is an `rtpmgr::Backend`, see `ring::backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// /dev/rtp_mgrN of the rtp_mgr kernel module.
    Kernel,
    /// A ring file under /dev/shm (host tests, no module).
    Shm,
}

/// Which way packets move.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Ring -> appsrc -> pipeline.
    Rx,
    /// Pipeline -> appsink -> ring.
    Tx,
}

/// What RX does with a packet while GStreamer holds `high_watermark` slots already.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Fallback {
    /// Copy the payload into a GStreamer-owned buffer and release the slot at once.
    Copy,
    /// Release the slot and drop the packet.
    Drop,
}

/// `[tuning]` of the config file: SCHED_FIFO priority and CPUs of the streaming thread.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TuningFile {
    /// SCHED_FIFO priority 1..=99 (`--rt-priority`).
    pub rt_priority: Option<u8>,
    /// CPU list, e.g. "1" or "0-1,3" (`--cpu`).
    pub cpus: Option<String>,
}

impl TuningFile {
    /// The service options: the command line's where given, else the file's, checked.
    pub fn merge(&self, cli: &rtpmgr_service::ServiceArgs) -> Result<rtpmgr_service::ServiceArgs> {
        use rtpmgr_service::rt::{RT_PRIORITY_MAX, RT_PRIORITY_MIN};
        if let Some(p) = self.rt_priority.filter(|p| !(RT_PRIORITY_MIN..=RT_PRIORITY_MAX).contains(p)) {
            bail!("[tuning] rt_priority = {p}: SCHED_FIFO priorities are {RT_PRIORITY_MIN}..={RT_PRIORITY_MAX}");
        }
        let cpus = match (&cli.cpus, &self.cpus) {
            (Some(c), _) => Some(c.clone()),
            (None, Some(s)) => Some(s.parse().with_context(|| "[tuning] cpus")?),
            (None, None) => None,
        };
        Ok(rtpmgr_service::ServiceArgs {
            rt_priority: cli.rt_priority.or(self.rt_priority),
            cpus,
            ready_file: cli.ready_file.clone(),
        })
    }
}

/// The `[status_led]` section as written in the file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LedFile {
    /// Drive the LED at all (default false: boards differ).
    pub enabled: bool,
    /// GPIO character device ("/dev/gpiochip0" or "gpiochip0").
    pub chip: String,
    /// Line offset on the chip.
    pub line: u32,
    /// The LED lights when the line is low.
    pub active_low: bool,
    /// Seconds without packets before the status is "down".
    pub idle_timeout: f64,
    /// Seconds the LED keeps blinking after the last lost packet.
    pub error_hold: f64,
}

impl Default for LedFile {
    fn default() -> Self {
        Self {
            enabled: false,
            chip: "/dev/gpiochip0".into(),
            line: 0,
            active_low: false,
            idle_timeout: 1.0,
            error_hold: 2.0,
        }
    }
}

/// The config file as written. Every key is optional; defaults are documented in
/// docs/rtp-feeder.md.
#[derive(Debug, Clone, Deserialize, Default, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FileConfig {
    pub channel: Option<u32>,
    pub device: Option<PathBuf>,
    pub backend: Option<BackendKind>,
    pub shm_name: Option<String>,
    pub direction: Option<Direction>,
    pub caps: Option<String>,
    pub pipeline: Option<String>,
    pub stats_interval: Option<f64>,
    pub batch: Option<u32>,
    pub high_watermark: Option<u32>,
    pub fallback: Option<Fallback>,
    pub queue_max_buffers: Option<u32>,
    pub drain_timeout: Option<f64>,
    pub buffer_lists: Option<bool>,
    pub status_led: LedFile,
    /// `[tuning]`: real-time settings of the streaming thread (docs/tuning.md).
    pub tuning: TuningFile,
    /// `[receive]`: the feeder receives from the network itself (RX only).
    pub receive: Option<ReceiveFile>,
}

/// The `[receive]` section as written in the file.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct ReceiveFile {
    /// How datagrams reach the ring: "kernel" (the default, and the only path the feeder has).
    pub path: Option<String>,
    /// Local address to bind: without `group` default 0.0.0.0; with it, default the group.
    pub bind: Option<IpAddr>,
    /// UDP port (required).
    pub port: Option<u16>,
    /// Multicast group to join.
    pub group: Option<IpAddr>,
    /// The one sender of a source-specific group (IGMPv3 / MLDv2).
    pub ssm_source: Option<IpAddr>,
    /// Interface to join on (by name).
    pub iface: Option<String>,
    /// Socket receive buffer to ask for, bytes.
    pub rcvbuf: Option<u64>,
    /// Wake the feeder when this many slots are READY ...
    pub wakeup_slots: Option<u32>,
    /// ... or when the oldest READY slot has waited this many microseconds.
    pub wakeup_usecs: Option<u32>,
}

/// The wake-up rule `[receive]` sets without `wakeup_slots`/`wakeup_usecs`: the one `rtp_app --mode
/// rx --path kernel` sets (its DEFAULT_WAKE_SLOTS/USECS), so both ways of running the kernel path
/// cost the same. 4 ms of coalescing is cheap behind a jitter buffer of 50 ms or more, and at
/// 4,000 pkt/s it wakes the feeder about once per 16 packets instead of once per packet.
pub const DEFAULT_RECEIVE_WAKEUP: rtpmgr::Wakeup = rtpmgr::Wakeup { slots: 32, usecs: 4000 };

/// How the `[receive]` section names its keys in messages.
pub const RECEIVE_KEYS: rtpmgr_net::InputNames = rtpmgr_net::InputNames {
    group: "receive.group",
    source: "receive.ssm_source",
    iface: "receive.iface",
    bind: "receive.bind",
    port: "receive.port",
};

/// Which way received datagrams reach the ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceivePath {
    /// The socket is ATTACHed to the channel: the kernel copies each datagram into a slot in
    /// softirq context.
    Kernel,
}

/// The validated `[receive]` section.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceiveConfig {
    /// How the datagrams reach the ring.
    pub path: ReceivePath,
    /// The socket to open.
    pub spec: rtpmgr_net::ReceiveSpec,
    /// The channel's wake-up rule, set before the attach.
    pub wakeup: rtpmgr::Wakeup,
}

impl ReceiveFile {
    /// Checks the section; every message names the key to change.
    pub fn validate(&self) -> Result<ReceiveConfig> {
        let path = match self.path.as_deref().unwrap_or("kernel") {
            "kernel" => ReceivePath::Kernel,
            "socket" => bail!(
                "receive.path = \"socket\": the feeder receives only on the kernel path; for the socket path run \
                 rtp_app --mode rx --path socket and remove [receive] (the feeder then pops what rtp_app pushes)"
            ),
            other => bail!("receive.path = \"{other}\" is not a receive path (use \"kernel\")"),
        };
        let port = match self.port {
            None => bail!("[receive] needs a port (receive.port = 5004)"),
            Some(0) => bail!("receive.port = 0: give the UDP port the stream is sent to"),
            Some(p) => p,
        };
        let membership = match self.group {
            Some(g) => Some(
                rtpmgr_net::Membership::new(g, self.ssm_source, self.iface.clone(), RECEIVE_KEYS)
                    .context("invalid [receive] section")?,
            ),
            None => {
                if self.ssm_source.is_some() || self.iface.is_some() {
                    let key = if self.ssm_source.is_some() { "receive.ssm_source" } else { "receive.iface" };
                    bail!("{key} goes with receive.group (the multicast group to receive)");
                }
                None
            }
        };
        if let (Some(b), Some(m)) = (self.bind, &membership) {
            if b.is_ipv4() != m.group().is_ipv4() {
                bail!("receive.bind {b} and receive.group {} are of different address families", m.group());
            }
        }
        if let Some(b) = self.bind {
            if b.is_multicast() {
                bail!("receive.bind {b} is a multicast address: put the group in receive.group");
            }
        }
        let rcvbuf = match self.rcvbuf {
            Some(0) => bail!("receive.rcvbuf = 0: leave it unset for the system default"),
            Some(b) if b > i32::MAX as u64 => bail!("receive.rcvbuf = {b} is above the kernel's limit of {}", i32::MAX),
            b => b.map(|b| b as usize),
        };
        let wakeup = rtpmgr::Wakeup {
            slots: self.wakeup_slots.unwrap_or(DEFAULT_RECEIVE_WAKEUP.slots),
            usecs: self.wakeup_usecs.unwrap_or(DEFAULT_RECEIVE_WAKEUP.usecs),
        };
        wakeup.check().map_err(|e| anyhow::anyhow!("receive.wakeup_slots/wakeup_usecs: {e}"))?;
        Ok(ReceiveConfig {
            path,
            wakeup,
            spec: rtpmgr_net::ReceiveSpec { bind: self.bind, port, membership, rcvbuf, names: RECEIVE_KEYS },
        })
    }
}

impl FileConfig {
    /// Parses a config file's text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        toml::from_str(text).with_context(|| format!("invalid config file '{origin}'"))
    }

    /// Reads `path`.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("failed to read config file '{}'", path.display()))?;
        Self::parse(&text, &path.display().to_string())
    }
}

/// Status LED settings after merging; `None` in [`Config::led`] means off.
#[derive(Debug, Clone, PartialEq)]
pub struct LedConfig {
    pub chip: PathBuf,
    pub line: u32,
    pub active_low: bool,
}

/// Where the ring is.
#[derive(Debug, Clone, PartialEq)]
pub enum RingLocation {
    /// A kernel channel by number (/dev/rtp_mgrN).
    KernelChannel(u32),
    /// A kernel channel by device path.
    KernelDevice(PathBuf),
    /// A shared-memory ring: a name under /dev/shm (or a path), and the channel number a
    /// newly created ring reports.
    Shm { name: String, channel: u32 },
}

/// Default caps for RX when the config names none: Opus, the codec of the default pipeline.
pub const DEFAULT_CAPS: &str = "application/x-rtp,media=audio,clock-rate=48000,encoding-name=OPUS,payload=96";
/// Default slots per pop: 32 slots per syscall is 1/32 syscall per packet (see the UAPI header).
pub const DEFAULT_BATCH: u32 = 32;
/// Default appsrc/appsink queue bound (buffers).
pub const DEFAULT_QUEUE_MAX_BUFFERS: u32 = 200;
/// RX hands each popped batch to appsrc as one buffer list: docs/performance.md measured it
/// cheaper than one push per packet (0.79/0.61/0.64x udpsrc's CPU per packet against
/// 0.86/0.74/0.78x at 1k/2k/4k pkt/s).
pub const DEFAULT_BUFFER_LISTS: bool = true;
/// Upper bound of `batch`, the ABI's RTPM_BATCH_MAX.
pub const BATCH_MAX: u32 = 256;

/// The merged, validated configuration the feeder runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the config came from ("defaults" when no file was read).
    pub source: String,
    pub ring: RingLocation,
    pub direction: Direction,
    pub caps: String,
    pub pipeline: String,
    /// `None`: no periodic stats line, only the final one.
    pub stats_interval: Option<Duration>,
    pub run_for: Option<Duration>,
    pub batch: u32,
    /// `None`: half the ring, decided once the ring is open.
    pub high_watermark: Option<u32>,
    pub fallback: Fallback,
    pub queue_max_buffers: u32,
    /// RX: `push-buffer-list` per popped batch (true) or `push-buffer` per packet (false).
    pub buffer_lists: bool,
    /// How long shutdown waits for EOS to come out of the pipeline.
    pub drain_timeout: Duration,
    pub led: Option<LedConfig>,
    pub led_idle_timeout: Duration,
    pub led_error_hold: Duration,
    pub json: bool,
    /// `[tuning]` and --rt-priority/--cpu (the CLI wins), --ready-file.
    pub service: rtpmgr_service::ServiceArgs,
    /// `[receive]`: the feeder opens the socket and attaches it to its channel (RX only).
    pub receive: Option<ReceiveConfig>,
}

fn secs(what: &str, v: f64) -> Result<Duration> {
    Duration::try_from_secs_f64(v).with_context(|| format!("{what} = {v} is not a valid number of seconds"))
}

impl Config {
    /// Reads the config file the CLI names (or the default one if present) and applies the
    /// CLI's overrides.
    pub fn from_cli(cli: &Cli) -> Result<Self> {
        let (file, source) = match &cli.config {
            Some(p) => (FileConfig::load(p)?, p.display().to_string()),
            None if Path::new(DEFAULT_CONFIG).exists() => {
                (FileConfig::load(Path::new(DEFAULT_CONFIG))?, DEFAULT_CONFIG.to_string())
            }
            None => (FileConfig::default(), "defaults".to_string()),
        };
        Self::merge(file, source, cli)
    }

    /// Merges a parsed file with the CLI; the CLI wins key by key.
    pub fn merge(file: FileConfig, source: String, cli: &Cli) -> Result<Self> {
        let backend = cli.backend.or(file.backend).unwrap_or(BackendKind::Kernel);
        // --channel overrides a device from the file and vice versa: the CLI names one place.
        let (channel, device) = match (cli.channel, &cli.device) {
            (Some(c), _) => (c, None),
            (None, Some(d)) => (file.channel.unwrap_or(0), Some(d.clone())),
            (None, None) => (file.channel.unwrap_or(0), file.device.clone()),
        };
        let ring = match backend {
            BackendKind::Kernel => match device {
                Some(d) => RingLocation::KernelDevice(d),
                None => RingLocation::KernelChannel(channel),
            },
            BackendKind::Shm => {
                let name = cli.shm_name.clone().or(file.shm_name).unwrap_or_else(|| format!("rtpmgr-{channel}"));
                if name.is_empty() {
                    bail!("shm_name is empty: give a ring name under /dev/shm (e.g. rtpmgr-0) or a path");
                }
                RingLocation::Shm { name, channel }
            }
        };
        let direction = cli.direction.or(file.direction).unwrap_or(Direction::Rx);
        let receive = match &file.receive {
            None => None,
            Some(_) if direction == Direction::Tx => {
                bail!("[receive] goes with direction = \"rx\" (a tx feeder pushes into the ring; remove [receive])")
            }
            Some(_) if backend == BackendKind::Shm => bail!(
                "[receive] needs the kernel backend: a shm ring has no kernel to receive into (remove [receive], or \
                 use backend = \"kernel\")"
            ),
            Some(r) => Some(r.validate()?),
        };
        let caps = cli.caps.clone().or(file.caps).unwrap_or_else(|| DEFAULT_CAPS.to_string());
        let pipeline = cli.pipeline.clone().or(file.pipeline).unwrap_or_default();
        if pipeline.trim().is_empty() {
            bail!("no pipeline: set 'pipeline' in the config file or pass --pipeline (see 'rtp-feeder --help')");
        }
        let stats_interval = match cli.stats_interval.or(file.stats_interval).unwrap_or(10.0) {
            0.0 => None,
            v => Some(secs("stats_interval", v)?),
        };
        let run_for = cli.time.map(|t| secs("-t", t)).transpose()?;
        let batch = cli.batch.or(file.batch).unwrap_or(DEFAULT_BATCH);
        if !(1..=BATCH_MAX).contains(&batch) {
            bail!("batch = {batch} is out of range 1..={BATCH_MAX}");
        }
        let high_watermark = cli.high_watermark.or(file.high_watermark);
        if high_watermark == Some(0) {
            bail!("high_watermark = 0 would copy every packet; leave it unset for half the ring");
        }
        let queue_max_buffers = cli.queue_max_buffers.or(file.queue_max_buffers).unwrap_or(DEFAULT_QUEUE_MAX_BUFFERS);
        if queue_max_buffers == 0 {
            bail!("queue_max_buffers = 0 would make the GStreamer queue unbounded; use at least 1");
        }
        // --led-chip CHIP enables the LED, --led-chip off disables it; otherwise the file decides.
        let led_file = &file.status_led;
        let (enabled, chip) = match cli.led_chip.as_deref() {
            Some("off" | "none" | "") => (false, String::new()),
            Some(c) => (true, c.to_string()),
            None => (led_file.enabled, led_file.chip.clone()),
        };
        let led = if enabled {
            if chip.is_empty() {
                bail!("[status_led] is enabled but names no chip (e.g. chip = \"/dev/gpiochip0\")");
            }
            // "gpiochip0" is accepted as a short form of "/dev/gpiochip0", as gpioset takes it.
            let chip = if chip.contains('/') { PathBuf::from(chip) } else { Path::new("/dev").join(chip) };
            Some(LedConfig { chip, line: cli.led_line.unwrap_or(led_file.line), active_low: led_file.active_low })
        } else {
            None
        };
        Ok(Self {
            source,
            ring,
            direction,
            caps,
            pipeline,
            stats_interval,
            run_for,
            batch,
            high_watermark,
            fallback: cli.fallback.or(file.fallback).unwrap_or(Fallback::Copy),
            queue_max_buffers,
            buffer_lists: file.buffer_lists.unwrap_or(DEFAULT_BUFFER_LISTS),
            drain_timeout: secs("drain_timeout", file.drain_timeout.unwrap_or(5.0))?,
            led,
            led_idle_timeout: secs("status_led.idle_timeout", file.status_led.idle_timeout)?,
            led_error_hold: secs("status_led.error_hold", file.status_led.error_hold)?,
            json: cli.json,
            service: file.tuning.merge(&cli.service)?,
            receive,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn cli(args: &[&str]) -> Cli {
        Cli::parse_from(std::iter::once("rtp-feeder").chain(args.iter().copied()))
    }

    const FILE: &str = r#"
channel = 2
direction = "tx"
caps = "application/x-rtp,media=audio,clock-rate=48000,encoding-name=OPUS,payload=96"
pipeline = "audiotestsrc is-live=true ! opusenc ! rtpopuspay"
stats_interval = 5

[status_led]
enabled = true
chip = "gpiochip1"
line = 17
active_low = true
"#;

    #[test]
    fn file_keys_are_read() {
        let f = FileConfig::parse(FILE, "test").unwrap();
        let c = Config::merge(f, "test".into(), &cli(&[])).unwrap();
        assert_eq!(c.ring, RingLocation::KernelChannel(2));
        assert_eq!(c.direction, Direction::Tx);
        assert_eq!(c.stats_interval, Some(Duration::from_secs(5)));
        assert_eq!(c.led, Some(LedConfig { chip: "/dev/gpiochip1".into(), line: 17, active_low: true }));
        assert_eq!(c.batch, DEFAULT_BATCH);
        assert_eq!(c.fallback, Fallback::Copy);
        assert!(c.buffer_lists, "RX pushes buffer lists unless the file turns them off");
        let f = FileConfig::parse(&format!("buffer_lists = false\n{FILE}"), "test").unwrap();
        assert!(!Config::merge(f, "test".into(), &cli(&[])).unwrap().buffer_lists);
    }

    #[test]
    fn cli_overrides_file() {
        let f = FileConfig::parse(FILE, "test").unwrap();
        let c = Config::merge(
            f,
            "test".into(),
            &cli(&[
                "--backend", "shm", "--channel", "3", "--direction", "rx", "--stats-interval", "0", "--led-chip",
                "off", "-t", "1.5",
            ]),
        )
        .unwrap();
        assert_eq!(c.ring, RingLocation::Shm { name: "rtpmgr-3".into(), channel: 3 });
        assert_eq!(c.direction, Direction::Rx);
        assert_eq!(c.stats_interval, None);
        assert_eq!(c.led, None);
        assert_eq!(c.run_for, Some(Duration::from_millis(1500)));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let e = FileConfig::parse("pipelin = \"x\"", "f.toml").unwrap_err();
        assert!(format!("{e:#}").contains("unknown field"), "{e:#}");
        let e = FileConfig::parse("[status_led]\nchp = \"x\"", "f.toml").unwrap_err();
        assert!(format!("{e:#}").contains("unknown field"), "{e:#}");
        let e = FileConfig::parse("direction = \"sideways\"", "f.toml").unwrap_err();
        assert!(format!("{e:#}").contains("unknown variant"), "{e:#}");
        let no_pipeline = Config::merge(FileConfig::default(), "d".into(), &cli(&[])).unwrap_err();
        assert!(no_pipeline.to_string().contains("no pipeline"));
        let f = FileConfig::parse("pipeline = \"fakesink\"\nbatch = 1000", "f").unwrap();
        assert!(Config::merge(f, "f".into(), &cli(&[])).unwrap_err().to_string().contains("batch = 1000"));
        let f = FileConfig::parse("pipeline = \"fakesink\"\nstats_interval = -1", "f").unwrap();
        assert!(Config::merge(f, "f".into(), &cli(&[])).is_err());
        let f = FileConfig::parse("pipeline = \"fakesink\"", "f").unwrap();
        assert!(Config::merge(f, "f".into(), &cli(&["--backend", "shm", "--shm-name", ""])).is_err());
    }

    fn receive(section: &str) -> Result<Config> {
        let f = FileConfig::parse(&format!("pipeline = \"fakesink\"\n[receive]\n{section}"), "f")?;
        Config::merge(f, "f".into(), &cli(&[]))
    }

    fn receive_err(section: &str) -> String {
        format!("{:#}", receive(section).unwrap_err())
    }

    #[test]
    fn receive_section_is_read_with_the_kernel_path_by_default() {
        let c = Config::merge(FileConfig::parse("pipeline = \"fakesink\"", "f").unwrap(), "f".into(), &cli(&[]));
        assert_eq!(c.unwrap().receive, None, "no [receive]: pop what another process pushes");
        let r = receive("port = 5004").unwrap().receive.unwrap();
        assert_eq!(r.path, ReceivePath::Kernel);
        assert_eq!((r.spec.bind, r.spec.port, &r.spec.membership, r.spec.rcvbuf), (None, 5004, &None, None));
        assert_eq!(r.spec.describe(), "udp 0.0.0.0:5004");
        assert_eq!(r.wakeup, DEFAULT_RECEIVE_WAKEUP);
        let r = receive("port = 5004\nwakeup_slots = 1\nwakeup_usecs = 0").unwrap().receive.unwrap();
        assert_eq!(r.wakeup, rtpmgr::Wakeup::EVERY_PUSH);
        let r = receive(
            "path = \"kernel\"\nport = 5004\ngroup = \"232.1.1.1\"\nssm_source = \"10.0.0.1\"\niface = \"eth0\"\nrcvbuf = 4194304",
        )
        .unwrap()
        .receive
        .unwrap();
        let m = r.spec.membership.as_ref().unwrap();
        assert_eq!(
            (m.group(), m.source(), m.iface()),
            ("232.1.1.1".parse().unwrap(), "10.0.0.1".parse().ok(), Some("eth0"))
        );
        assert_eq!(r.spec.rcvbuf, Some(4 << 20));
        assert_eq!(r.spec.describe(), "udp 232.1.1.1:5004 (joined 232.1.1.1 from 10.0.0.1 on eth0)");
        let r = receive("port = 5006\ngroup = \"ff3e::8000:1\"\nssm_source = \"fd00::1\"\nbind = \"::\"").unwrap();
        assert_eq!(r.receive.unwrap().spec.bind, Some("::".parse().unwrap()));
    }

    #[test]
    fn receive_errors_name_the_key() {
        assert!(receive_err("").contains("[receive] needs a port"));
        assert!(receive_err("port = 0").contains("receive.port = 0"));
        assert!(receive_err("port = 70000").contains("invalid config file"));
        assert!(receive_err("port = 5004\nprot = 1").contains("unknown field `prot`"));
        assert!(receive_err("port = 5004\npath = \"socket\"").contains("rtp_app --mode rx --path socket"));
        assert!(receive_err("port = 5004\npath = \"dma\"").contains("receive.path = \"dma\" is not a receive path"));
        let e = receive_err("port = 5004\ngroup = \"10.0.0.1\"");
        assert!(e.contains("receive.group 10.0.0.1 is not a multicast address") && e.contains("receive.bind"), "{e}");
        let e = receive_err("port = 5004\ngroup = \"232.1.1.1\"\nssm_source = \"fd00::1\"");
        assert!(e.contains("receive.ssm_source fd00::1 and receive.group 232.1.1.1 are of different"), "{e}");
        assert!(receive_err("port = 5004\ngroup = \"ff02::1:3\"").contains("needs receive.iface"));
        assert!(receive_err("port = 5004\ngroup = \"239.1.1.1\"\niface = \"eth 0\"")
            .contains("not a network interface name"));
        assert!(receive_err("port = 5004\nssm_source = \"10.0.0.1\"")
            .contains("receive.ssm_source goes with receive.group"));
        assert!(receive_err("port = 5004\niface = \"eth0\"").contains("receive.iface goes with receive.group"));
        let e = receive_err("port = 5004\ngroup = \"239.1.1.1\"\nbind = \"::\"");
        assert!(e.contains("receive.bind :: and receive.group 239.1.1.1 are of different address families"), "{e}");
        assert!(receive_err("port = 5004\nbind = \"239.1.1.1\"").contains("put the group in receive.group"));
        assert!(receive_err("port = 5004\nrcvbuf = 0").contains("receive.rcvbuf = 0"));
        let e = receive_err("port = 5004\nwakeup_slots = 8\nwakeup_usecs = 0");
        assert!(e.contains("receive.wakeup_slots/wakeup_usecs") && e.contains("needs a timer"), "{e}");
        assert!(receive_err("port = 5004\nwakeup_slots = 0").contains("wake-up slots must be"));
        assert!(receive_err("port = 5004\nrcvbuf = 4294967296").contains("above the kernel's limit"));
        assert!(receive_err("port = 5004\ngroup = \"not-an-ip\"").contains("invalid config file"));
        // [receive] is the RX direction's, on the kernel backend.
        let f = FileConfig::parse("pipeline = \"fakesink\"\n[receive]\nport = 5004", "f").unwrap();
        let e = Config::merge(f.clone(), "f".into(), &cli(&["--direction", "tx"])).unwrap_err();
        assert!(e.to_string().contains("[receive] goes with direction = \"rx\""), "{e}");
        let e = Config::merge(f, "f".into(), &cli(&["--backend", "shm"])).unwrap_err();
        assert!(e.to_string().contains("[receive] needs the kernel backend"), "{e}");
    }

    #[test]
    fn device_path_selects_kernel_device() {
        let f = FileConfig::parse("pipeline = \"fakesink\"\ndevice = \"/dev/rtp_mgr5\"", "f").unwrap();
        let c = Config::merge(f.clone(), "f".into(), &cli(&[])).unwrap();
        assert_eq!(c.ring, RingLocation::KernelDevice("/dev/rtp_mgr5".into()));
        // --channel on the command line beats the file's device.
        let c = Config::merge(f, "f".into(), &cli(&["--channel", "1"])).unwrap();
        assert_eq!(c.ring, RingLocation::KernelChannel(1));
    }
}

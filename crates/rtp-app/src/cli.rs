//! Command line of `rtp_app` (clap derive). `-h` stays one screen; `--help` is the manual.

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};
use std::net::IpAddr;
use std::path::PathBuf;

const AFTER_LONG_HELP: &str = "\
Examples:
  Receive RTP on UDP port 5004 into channel 0 of the kernel module, stats every 2 s (the
  kernel receives into the ring itself; rtp_app sets it up and supervises):
    rtp_app --mode rx --bind 0.0.0.0 --port 5004 --channel 0 --interval 2

  The same through rtp_app's own recvmmsg loop (the benchmark baseline):
    rtp_app --mode rx --path socket --bind 0.0.0.0 --port 5004 --channel 0

  Let the kernel send what rtp-feeder pushes into channel 1, paced to 2,000 packets/s:
    rtp_app --mode tx --path kernel --source ring --channel 1 --dst 192.0.2.10 --port 5004 --rate 2000

  Send 10,000 packets/s of 1200-byte RTP to 127.0.0.1:5004 for 5 s, no module needed:
    rtp_app --mode tx --dst 127.0.0.1 --port 5004 --rate 10000 --payload 1200 --backend shm -t 5

  Receive on a host without the module and drain the ring yourself, JSON stats:
    rtp_app --mode rx --bind 127.0.0.1 --port 5004 --backend shm --drain --json

  Send what rtp-feeder pushed into channel 1:
    rtp_app --mode tx --source ring --channel 1 --dst 192.0.2.10 --port 5004

  AF_XDP instead of UDP sockets (root): receive RTP on eth0 queue 0, send it out of eth1:
    rtp_app --mode rx --xdp eth0 --xdp-ports 5004 --channel 0
    rtp_app --mode tx --xdp eth1 --source ring --channel 0 --dst 192.0.2.10 --port 5004
  Every RX queue of eth0 from one process, UMEM in huge pages (sysctl vm.nr_hugepages=16 first):
    rtp_app --mode rx --xdp eth0 --queue all --hugepages --channel 0

  Receive an IPTV channel: source-specific multicast (IGMPv3) from 10.0.0.1 on eth0:
    rtp_app --mode rx --group 232.1.1.1 --ssm-source 10.0.0.1 --iface eth0 --port 5004 --channel 0

  Send to a multicast group out of eth1 with TTL 4 (crosses up to 3 routers):
    rtp_app --mode tx --dst 239.1.1.1 --port 5004 --iface eth1 --ttl 4 --backend shm

  Channel control:
    rtp_app --mode ctl --channel 0 --stats
    rtp_app --mode ctl --channel 0 --stop
    rtp_app --mode ctl --channel 0 --wakeup 32,4000
    rtp_app --mode ctl --channel 0 --configure --ring-order 12 --slot-payload 2048 --drop-policy drop-oldest

  Channel metrics for Prometheus (node_exporter's textfile collector), every channel:
    rtp_app --mode ctl --stats --all-channels --format openmetrics > /var/lib/node_exporter/rtpmgr.prom.tmp
    mv /var/lib/node_exporter/rtpmgr.prom.tmp /var/lib/node_exporter/rtpmgr.prom

  Watch the module's channel events as they happen (start/stop, attach, overruns, loss, stuck
  holders), or collect 10 events of channel 3 as JSON within 30 s:
    rtp_app monitor
    rtp_app monitor --channel 3 --json --count 10 -t 30

  Field diagnostics (one PASS/FAIL line per check, exit 1 on any FAIL):
    rtp_app diag
    rtp_app diag --backend shm --json

  Live view of every channel (q quits), or one snapshot for scripts (see rtp_app top --help):
    rtp_app top
    rtp_app top --once --json

Exit status: 0 success (also after SIGINT/SIGTERM, which stop a run cleanly), 1 runtime error
or failed diag check, 2 usage error, 130 second SIGINT/SIGTERM during shutdown.

Logging: RUST_LOG=debug rtp_app ... (default level: info).
Documentation: docs/rtp_app.md in the rtpmgr source tree.";

/// rtp_app - receive, send and control RTP streams through the rtpmgr zero-copy ring.
///
/// RX mode receives UDP datagrams into ring slots (one copy, socket to slot): on the kernel path
/// (the default with the kernel module) rtp_app hands its bound socket to the channel and the
/// kernel copies each datagram into a slot in softirq context, rtp_app only supervising; on the
/// socket path rtp_app's own thread receives with recvmmsg into reserved slots and pushes them.
/// TX mode generates RTP v2 into ring slots, or takes what another producer pushed, and sends it
/// from slot memory with sendmmsg, or (--path kernel) lets the kernel send it. CTL mode reads
/// counters and configures, starts, stops or resets a channel and sets its wake-up rule.
#[derive(Debug, Parser)]
#[command(
    name = "rtp_app",
    version,
    max_term_width = 98,
    after_long_help = AFTER_LONG_HELP,
    subcommand_negates_reqs = true,
    args_conflicts_with_subcommands = true,
    group(ArgGroup::new("ctl_action")
        .args(["stats", "status", "start", "stop", "reset", "configure", "reclaim", "wakeup"])),
)]
pub struct Cli {
    /// What to do: rx, tx or ctl.
    ///
    /// rx: receive UDP datagrams into ring slots and push them to the channel.
    /// tx: send RTP from ring slots (generated here, or pushed by another producer with
    /// --source ring).
    /// ctl: one control action on the channel (--stats, --status, --start, --stop, --reset,
    /// --configure).
    #[arg(long, value_enum, required = true, value_name = "mode")]
    pub mode: Option<Mode>,

    #[command(flatten)]
    pub common: CommonArgs,

    #[command(flatten)]
    pub rx: RxArgs,

    #[command(flatten)]
    pub tx: TxArgs,

    #[command(flatten)]
    pub multicast: MulticastArgs,

    #[command(flatten)]
    pub path: PathArgs,

    #[command(flatten)]
    pub ctl: CtlArgs,

    #[command(flatten)]
    pub xdp: crate::xdp::XdpArgs,

    /// Service options (rx/tx): --rt-priority, --cpu, --ready-file (docs/tuning.md).
    #[command(flatten)]
    pub service: rtpmgr_service::ServiceArgs,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the module, device nodes, ring and UDP loopback; one PASS/FAIL line per check.
    ///
    /// Checks: module loaded (/sys/module/rtp_mgr) and its ABI version against the one this
    /// binary was built for; every /dev/rtp_mgrN node exists with group rtpmgr and mode 0660;
    /// the channel's ring configuration is sane; its stats are readable and conserved; a short
    /// self-test pushes and pops slots through the ring; a UDP loopback test sends RTP to
    /// 127.0.0.1 and receives it into ring slots. With --backend shm the module checks are
    /// replaced by checks of the shared-memory ring, so diag also runs on a host.
    /// Exits 1 if any check fails.
    Diag,
    /// Print the kernel module's channel events as they happen, one line each (like `ip monitor`).
    ///
    /// Listens to the multicast group "events" of the module's generic netlink family "rtp_mgr"
    /// (ABI 2.1). Each line: UTC time, channel, event, count for the data-path events, and the
    /// process that caused it (pid and command name while it runs; pid 0 is the kernel). Events:
    /// start, stop, reset, configure; attach-rx, attach-tx, detach-rx, detach-tx (a socket handed
    /// to or taken from the channel); overrun (packets refused or dropped by a full ring), loss
    /// (RTP packets missing in the sequence), stuck (slots held longer than the module's
    /// stuck_ms; pid: the oldest holder); reclaim (slots freed when a holder closed the device or
    /// died), evict (slots taken back by --reclaim). Data-path events (overrun, loss) come at most
    /// every 100 ms per channel and count what happened since the last one; stuck at most every
    /// 5 s per channel. --channel N shows one channel (default: all); --json prints one object per
    /// line {"time","time_ns","channel","event","event_id","count","pid","comm"}; --count and -t
    /// end the run (exit 0), as do SIGINT and SIGTERM. Needs the module loaded (modprobe rtp_mgr);
    /// any user may listen. Reads only events of the initial network namespace.
    Monitor(MonitorArgs),
    /// Write what passes through a channel to a pcap/pcapng file, without taking it from the consumer.
    #[command(long_about = crate::capture::LONG_ABOUT, after_long_help = crate::capture::AFTER_LONG_HELP)]
    Capture(crate::capture::CaptureArgs),
    /// Live view of every channel: rates, loss, jitter, drops, slots, holders (q quits).
    #[command(long_about = crate::top::LONG_ABOUT, after_long_help = crate::top::AFTER_LONG_HELP)]
    Top(crate::top::TopArgs),
}

/// Options of `rtp_app monitor` (also: --channel, --json, -t).
#[derive(Debug, Clone, Args)]
pub struct MonitorArgs {
    /// Stop after this many events (those --channel lets through).
    #[arg(long, value_name = "n", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
}

/// rtp_app modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Receive UDP into ring slots.
    Rx,
    /// Send RTP from ring slots.
    Tx,
    /// Control and inspect a channel.
    Ctl,
}

/// Ring backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendKind {
    /// The rtp_mgr kernel module (/dev/rtp_mgrN).
    Kernel,
    /// A user-space ring in shared memory (/dev/shm), for hosts without the module.
    Shm,
}

/// Who moves datagrams between the UDP socket and the ring (--path).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DataPath {
    /// The kernel module: the socket is attached to the channel (ABI 2.1, kernel backend only).
    Kernel,
    /// rtp_app's own thread: recvmmsg into reserved slots (rx), sendmmsg from popped slots (tx).
    Socket,
}

/// Slots of the wake-up rule rx sets on the kernel path without --wake-slots.
pub const DEFAULT_WAKE_SLOTS: u32 = 32;
/// Microseconds of the wake-up rule rx sets on the kernel path without --wake-usecs.
pub const DEFAULT_WAKE_USECS: u32 = 4000;

/// Where TX takes its packets from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TxSource {
    /// Generate RTP here into ring slots, then send them.
    Generate,
    /// Send what another producer (e.g. rtp-feeder) pushed into the channel.
    Ring,
}

/// What a full ring does with a new packet (CONFIGURE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DropPolicy {
    /// Refuse the new packet (counted as an overrun).
    RejectNewest,
    /// Free the oldest READY slot for it (counted as a drop).
    DropOldest,
}

/// Options of every mode.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Common options")]
pub struct CommonArgs {
    /// Channel number N of /dev/rtp_mgrN (or of the shm ring "rtpmgr-N").
    #[arg(long, short = 'c', global = true, default_value_t = 0, value_name = "n",
          value_parser = clap::value_parser!(u32).range(0..32))]
    pub channel: u32,

    /// Device node to open instead of /dev/rtp_mgrN.
    #[arg(long, global = true, value_name = "path", conflicts_with = "shm_name", hide_short_help = true)]
    pub device: Option<PathBuf>,

    /// Ring backend: kernel or shm.
    ///
    /// Default: kernel if /dev/rtp_mgrN (or --device) exists, otherwise rtp_app stops with an
    /// error that says to load the module (modprobe rtp_mgr) or to use --backend shm.
    #[arg(long, global = true, value_enum, value_name = "backend")]
    pub backend: Option<BackendKind>,

    /// Name of the shm ring under /dev/shm (default "rtpmgr-<channel>").
    ///
    /// Created with the default configuration on first open; every process that names the same
    /// ring shares it.
    #[arg(long, global = true, value_name = "name")]
    pub shm_name: Option<String>,

    /// Stop after this many seconds (decimals allowed), printing the final stats.
    #[arg(short = 't', long = "time", global = true, value_name = "seconds",
          value_parser = parse_seconds)]
    pub time: Option<f64>,

    /// Stop after this many packets (received in rx, sent in tx).
    #[arg(short = 'l', long = "limit", global = true, value_name = "packets",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub limit: Option<u64>,

    /// Print a stats line every this many seconds (0 = only the final line).
    ///
    /// The line has the seed's format:
    /// "RX: 12,345,678 pkts (1,234,567 pps) 9,876,543 Kbytes (789 Mbits/s) period:2.0"
    /// followed by the application counters and the ring counters.
    #[arg(long, global = true, default_value_t = 2.0, value_name = "seconds",
          value_parser = parse_interval)]
    pub interval: f64,

    /// Print stats (and ctl/diag results) as JSON, one object per line.
    #[arg(long, global = true)]
    pub json: bool,

    /// Datagrams per recvmmsg/sendmmsg and slots per ring batch (1..256).
    #[arg(long, global = true, default_value_t = 32, value_name = "n", hide_short_help = true,
          value_parser = clap::value_parser!(u32).range(1..=256))]
    pub batch: u32,
}

/// Options of --mode rx.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "RX options (--bind and --port also for tx)")]
pub struct RxArgs {
    /// Local address to receive on (rx), or to send from (tx; default any).
    #[arg(long, value_name = "addr")]
    pub bind: Option<IpAddr>,

    /// UDP port: to receive on (rx) or to send to (tx).
    #[arg(long, short = 'p', value_name = "port")]
    pub port: Option<u16>,

    /// Also consume what rx pushes (pop and release in the controller), for tests and for
    /// running without a consumer attached to the channel.
    #[arg(long)]
    pub drain: bool,

    /// Push datagrams that are not RTP v2 too (the ring flags and counts them) instead of
    /// counting and skipping them.
    #[arg(long, hide_short_help = true)]
    pub keep_malformed: bool,

    /// Socket receive/send buffer size in bytes.
    #[arg(long, default_value_t = 4 << 20, value_name = "bytes", hide_short_help = true)]
    pub sockbuf: usize,
}

/// Options of --mode tx.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "TX options")]
pub struct TxArgs {
    /// Destination address (tx).
    #[arg(long, value_name = "addr")]
    pub dst: Option<IpAddr>,

    /// Packets per second (tx; default 1000 when generating, unpaced with --source ring).
    ///
    /// With --source ring the packets go out as soon as they are popped unless --rate is
    /// given, which then caps the send rate (useful to drain a backlog gently).
    #[arg(long, value_name = "pps",
          value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub rate: Option<u32>,

    /// RTP payload bytes after the 12-byte header (tx, generated). The whole packet must fit a
    /// ring slot (slot_payload, 2048 by default).
    #[arg(long, value_name = "bytes", default_value_t = 1200)]
    pub payload: usize,

    /// Where the packets come from: generate (default) or ring.
    #[arg(long, value_enum, default_value_t = TxSource::Generate, value_name = "source")]
    pub source: TxSource,

    /// RTP media clock rate in Hz; the timestamp advances clock-rate / rate per packet.
    #[arg(long, default_value_t = 90_000, value_name = "hz", hide_short_help = true,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub clock_rate: u32,

    /// RTP SSRC (decimal or 0x hex; default random).
    #[arg(long, value_name = "ssrc", value_parser = parse_u32, hide_short_help = true)]
    pub ssrc: Option<u32>,

    /// RTP payload type (0..127; 96 is the first dynamic type).
    #[arg(long, default_value_t = 96, value_name = "pt", hide_short_help = true,
          value_parser = clap::value_parser!(u8).range(0..=127))]
    pub pt: u8,
}

/// Multicast options of --mode rx and --mode tx.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Multicast options (--iface also for tx)")]
pub struct MulticastArgs {
    /// Receive the multicast group ADDR (rx): join it and bind to it.
    ///
    /// The socket joins ADDR on --iface (IGMPv3 for IPv4, MLDv2 for IPv6) and binds to ADDR:port
    /// (or to --bind, e.g. 0.0.0.0), with SO_REUSEADDR so that several receivers, e.g. a player
    /// and a recorder, can take the same group and port. It receives only the groups it joined
    /// itself (IP_MULTICAST_ALL / IPV6_MULTICAST_ALL off), never another process's. ADDR must be
    /// IPv4 224.0.0.0/4 or IPv6 ff00::/8; groups in the source-specific ranges 232.0.0.0/8 and
    /// ff3x::/32 need --ssm-source (a warning says so if it is missing).
    /// Example: --group 232.1.1.1 --ssm-source 10.0.0.1 --iface eth0
    #[arg(long, value_name = "addr")]
    pub group: Option<IpAddr>,

    /// Receive --group only from this sender (source-specific multicast, rx).
    ///
    /// MCAST_JOIN_SOURCE_GROUP: the socket takes datagrams to the group from this unicast address
    /// only, even when another process joined the group for all sources; routers and
    /// IGMPv3/MLDv2-snooping switches forward only this (source, group). Same address family as
    /// --group. (Named --ssm-source because --source already says where tx takes its packets
    /// from.)
    #[arg(long, value_name = "addr")]
    pub ssm_source: Option<IpAddr>,

    /// Network interface by name (e.g. eth0): where rx joins --group, or where tx sends to a
    /// multicast --dst.
    ///
    /// Without it the routing table picks the interface (the route to the group, often the
    /// default route), which on a host with several links may be the wrong one; link-local IPv6
    /// groups (ff02::/16) always need it. A name that does not exist is an error naming it.
    #[arg(long, value_name = "name")]
    pub iface: Option<String>,

    /// Time to live (IPv4) or hop limit (IPv6) of multicast sent by tx (0..255, default 1).
    ///
    /// 1, the kernel's default, keeps the stream on the local link: no router forwards it. Raise
    /// it to one more than the number of routers the stream must cross. 0 keeps it on this host.
    #[arg(long, value_name = "n")]
    pub ttl: Option<u8>,

    /// Also deliver tx's multicast to receivers on this host (default off).
    ///
    /// Off unless given (the kernel's own default is on): a sender does not feed its own host's
    /// receivers of the group unless asked, e.g. to test sender and receiver on one machine.
    #[arg(long)]
    pub multicast_loop: bool,
}

/// The data path of --mode rx and --mode tx and the kernel path's settings (ABI 2.1).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Data path options (kernel path: ABI 2.1)")]
pub struct PathArgs {
    /// Who moves the datagrams: kernel or socket (rx default: kernel with the kernel backend,
    /// socket with shm; tx default: socket).
    ///
    /// kernel: rtp_app creates and binds the UDP socket exactly as on the socket path (--bind,
    /// --port, --group, --ssm-source, --iface; IPv4 and IPv6), then hands it to the channel
    /// (ATTACH). In rx the kernel copies every datagram into a ring slot as it arrives (softirq
    /// context, one copy, no rtp_app thread in between), RTP-parses, stamps and counts it;
    /// datagrams that are not RTP are pushed flagged malformed, ones larger than a slot are
    /// dropped and counted. In tx (with --source ring) the kernel sends every slot another
    /// producer pushed through the connected socket, paced by --rate and --burst. rtp_app stays
    /// as a thin supervisor: it prints the stats line from the channel's counters, obeys -t, -l
    /// and signals, and detaches the socket when it exits. Needs the rtp_mgr module with ABI 2.1
    /// (--backend kernel).
    ///
    /// socket: rtp_app's own thread receives with recvmmsg into reserved slots and pushes them
    /// (rx), or pops slots and sends them with sendmmsg (tx). Works with both backends; the
    /// benchmark baseline.
    #[arg(long, value_enum, value_name = "path")]
    pub path: Option<DataPath>,

    /// Wake the channel's consumer once this many slots are READY (1..32768; rx default 32).
    ///
    /// The wake-up rule coalesces the consumer's wake-ups (rtp-feeder, the --drain thread): it
    /// is woken once N slots became READY, or once the oldest of them has waited
    /// --wake-usecs, or when the ring fills or the channel stops. rx sets it on the kernel path
    /// (default 32 slots or 4000 us); on the socket path only if given. 1 wakes on every packet,
    /// the module's default. The rule belongs to the channel and stays after rtp_app exits
    /// (rtp_app --mode ctl --wakeup 1,0 restores the default).
    #[arg(long, value_name = "n", value_parser = clap::value_parser!(u32).range(1..=32768))]
    pub wake_slots: Option<u32>,

    /// ...or once the oldest READY slot has waited this many microseconds (0..1000000; rx
    /// default 4000).
    ///
    /// Why 4 ms: the jitterbuffer downstream holds at least 50 ms of packets anyway, so 4 ms of
    /// coalescing is 8% of its latency, and at 4,000 packets/s it gives at most one wake-up per
    /// 16 packets (<= 0.1 wake-ups per packet; 32 slots then never fill first). At 1,000
    /// packets/s one wake-up handles 4 packets. --wake-slots above 1 needs a timer (> 0), or a
    /// slow stream would never wake its consumer.
    #[arg(long, value_name = "us", value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub wake_usecs: Option<u32>,

    /// tx --path kernel: most packets sent back to back after an idle spell, the depth of the
    /// --rate token bucket (1..1024, default 1).
    #[arg(long, value_name = "packets", requires = "rate",
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub burst: Option<u32>,
}

/// Options of --mode ctl.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "CTL actions (one per call)")]
pub struct CtlArgs {
    /// Print the channel's counters.
    #[arg(long)]
    pub stats: bool,
    /// Print the channel's state, configuration and slot states.
    #[arg(long)]
    pub status: bool,
    /// Print the RFC 3550 receiver-report numbers of the channel's stream (kernel backend, ABI
    /// 2.1): ssrc, received, expected, cumulative lost, extended highest sequence number,
    /// interarrival jitter, SSRC changes, longest loss burst. Needs only read access.
    #[arg(long)]
    pub quality: bool,
    /// Start the channel (producers may push).
    #[arg(long)]
    pub start: bool,
    /// Stop the channel (reserve and push fail with EPIPE; pop and release still work).
    #[arg(long)]
    pub stop: bool,
    /// Zero the counters and free every slot (channel stopped, no slot owned).
    #[arg(long)]
    pub reset: bool,
    /// Change the ring (channel stopped and unmapped): see --ring-order, --slot-payload,
    /// --drop-policy; unspecified values keep the current ones.
    #[arg(long)]
    pub configure: bool,
    /// log2 of the slot count (1..15).
    #[arg(long, value_name = "n",
          value_parser = clap::value_parser!(u32).range(1..=15))]
    pub ring_order: Option<u32>,
    /// Usable payload bytes per slot (64..16384).
    #[arg(long, value_name = "bytes",
          value_parser = clap::value_parser!(u32).range(64..=16384))]
    pub slot_payload: Option<u32>,
    /// What a full ring does with a new packet.
    #[arg(long, value_enum, value_name = "policy")]
    pub drop_policy: Option<DropPolicy>,
    /// Take back the slots other processes have held for at least --min-held-ms (needs
    /// CAP_NET_ADMIN).
    ///
    /// For a live but hung process that stalls the ring by holding slots: they return to FREE,
    /// are counted in "evicted" and logged by the kernel. The holder's later push or release of
    /// such a slot fails. A crashed process needs no reclaim: closing its file frees its slots.
    #[arg(long)]
    pub reclaim: bool,
    /// With --reclaim: only slots held at least this long, in milliseconds (default 1000).
    #[arg(long, value_name = "ms", default_value_t = 1000, requires = "reclaim")]
    pub min_held_ms: u64,
    /// With --reclaim: also take the producer and consumer roles away from the processes that
    /// hold them (one that claimed a channel it should not have).
    #[arg(long, requires = "reclaim")]
    pub revoke_roles: bool,
    /// Set the channel's wake-up rule: wake its consumer once SLOTS slots are READY or the
    /// oldest has waited USECS microseconds (kernel backend, ABI 2.1).
    ///
    /// 1,0 wakes on every packet (the module's default); SLOTS above 1 needs USECS > 0. Needs
    /// CAP_NET_ADMIN, or a role on the channel. The same as writing "SLOTS USECS" to
    /// /sys/class/misc/rtp_mgrN/wakeup. --status and --stats show the rule in force
    /// (wake_slots, wake_usecs) and which directions have a socket attached (attached: 1 rx,
    /// 2 tx, 3 both).
    #[arg(long, value_name = "slots,usecs", value_parser = parse_wakeup)]
    pub wakeup: Option<rtpmgr::Wakeup>,
    /// Output format of ctl: text ("name value" lines, the default), json (as --json) or, with
    /// --stats, openmetrics.
    ///
    /// openmetrics: the Prometheus text exposition that node_exporter's textfile collector reads
    /// (valid per `promtool check metrics`): a HELP and a TYPE line per metric, names prefixed
    /// rtpmgr_, one sample per channel labelled channel="N", counters ending in _total (they
    /// restart from 0 after --reset or a module reload), the slot states and the wake-up rule
    /// as gauges, and a last line "# EOF". Write it to a temporary file and rename it into the
    /// collector's directory, so the collector never reads half a file.
    #[arg(long, value_enum, value_name = "format", hide_short_help = true)]
    pub format: Option<CtlFormat>,
    /// With --stats: every channel instead of --channel (the module's /dev/rtp_mgrN, or the shm
    /// rings rtpmgr-N under /dev/shm).
    #[arg(long, hide_short_help = true)]
    pub all_channels: bool,
}

/// Output formats of --mode ctl (--format).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CtlFormat {
    /// "name value" per line, as in sysfs.
    Text,
    /// One JSON object (the same as --json).
    Json,
    /// Prometheus/OpenMetrics text exposition (with --stats).
    Openmetrics,
}

fn parse_seconds(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("'{s}' is not a number of seconds, e.g. 5 or 0.5"))?;
    if !(v > 0.0 && v.is_finite() && v <= 31_536_000.0) {
        return Err(format!("'{s}' must be more than 0 and at most one year of seconds"));
    }
    Ok(v)
}

fn parse_interval(s: &str) -> Result<f64, String> {
    if s.trim() == "0" {
        return Ok(0.0);
    }
    parse_seconds(s)
}

fn parse_wakeup(s: &str) -> Result<rtpmgr::Wakeup, String> {
    s.parse()
}

fn parse_u32(s: &str) -> Result<u32, String> {
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => s.parse(),
    };
    r.map_err(|_| format!("'{s}' is not a 32-bit number (decimal or 0x hex)"))
}

impl Cli {
    /// Checks clap cannot express: which options each mode needs. The message names the
    /// missing option and the mode.
    pub fn validate(&self) -> Result<(), String> {
        // clap's `requires` is satisfied by the flag's default `false`, so check it here.
        let c = &self.ctl;
        if !c.configure && (c.ring_order.is_some() || c.slot_payload.is_some() || c.drop_policy.is_some()) {
            return Err("--ring-order, --slot-payload and --drop-policy only go with --mode ctl --configure".into());
        }
        self.validate_multicast()?;
        self.validate_path()?;
        self.validate_ctl_format()?;
        match (self.mode, &self.command) {
            (_, Some(Command::Diag)) | (_, Some(Command::Top(_))) => Ok(()),
            (_, Some(Command::Capture(_))) => Ok(()),
            (_, Some(Command::Monitor(_))) => match self.common.backend {
                Some(BackendKind::Shm) => {
                    Err("monitor reads the kernel module's events; a shm ring sends none (drop --backend shm)".into())
                }
                _ => Ok(()),
            },
            (Some(Mode::Rx), None) => {
                if self.xdp.dst_mac.is_some() {
                    return Err("--dst-mac only goes with --mode tx --xdp".into());
                }
                // --xdp takes its ports from --xdp-ports (default --port, else 5004).
                if self.rx.port.is_none() && self.xdp.xdp.is_none() {
                    return Err("--mode rx needs --port (and usually --bind)".into());
                }
                Ok(())
            }
            (Some(Mode::Ctl), None) if self.xdp.xdp.is_some() => {
                Err("--xdp only goes with --mode rx or --mode tx".into())
            }
            (Some(Mode::Tx), None) => {
                let x = &self.xdp;
                let rx_only = [
                    (x.xdp_mode.is_some(), "--xdp-mode"),
                    (!x.xdp_ports.is_empty(), "--xdp-ports"),
                    (x.busy_poll, "--busy-poll"),
                    (x.poll, "--poll"),
                ];
                if let Some((_, name)) = rx_only.iter().find(|(given, _)| *given) {
                    return Err(format!("{name} only goes with --mode rx (sending attaches no XDP program)"));
                }
                if x.xdp.is_some() && x.queue.single().is_none() {
                    return Err(format!(
                        "--mode tx --xdp sends on one queue: give --queue N, not --queue {} (lists, ranges and \
                         all are for --mode rx)",
                        x.queue
                    ));
                }
                if self.tx.dst.is_none() || self.rx.port.is_none() {
                    return Err("--mode tx needs --dst ADDR and --port P".into());
                }
                if self.rx.port == Some(0) {
                    return Err("--mode tx cannot send to port 0".into());
                }
                Ok(())
            }
            (Some(Mode::Ctl), None) => {
                let n = [
                    self.ctl.stats,
                    self.ctl.status,
                    self.ctl.quality,
                    self.ctl.start,
                    self.ctl.stop,
                    self.ctl.reset,
                    self.ctl.configure,
                    self.ctl.reclaim,
                    self.ctl.wakeup.is_some(),
                ]
                .iter()
                .filter(|b| **b)
                .count();
                if n != 1 {
                    return Err(CTL_ACTIONS.into());
                }
                Ok(())
            }
            (None, None) => Err("give --mode rx|tx|ctl or the diag subcommand".into()),
        }
    }
}

impl Cli {
    /// --format and --all-channels: ctl only; openmetrics and --all-channels only with --stats.
    fn validate_ctl_format(&self) -> Result<(), String> {
        let c = &self.ctl;
        let is_ctl = self.mode == Some(Mode::Ctl) && self.command.is_none();
        if !is_ctl && (c.format.is_some() || c.all_channels) {
            return Err("--format and --all-channels only go with --mode ctl".into());
        }
        if !c.stats && (c.format == Some(CtlFormat::Openmetrics) || c.all_channels) {
            return Err("--format openmetrics and --all-channels only go with --stats".into());
        }
        if self.common.json && matches!(c.format, Some(CtlFormat::Text | CtlFormat::Openmetrics)) {
            return Err("--json asks for --format json; give one of them".into());
        }
        Ok(())
    }
}

/// What --mode ctl without (or with two) actions is told.
pub const CTL_ACTIONS: &str =
    "--mode ctl needs one of --stats, --status, --quality, --start, --stop, --reset, --configure, --reclaim, --wakeup";

impl Cli {
    /// The data path flags: which go with which mode and path. The message names the flag.
    fn validate_path(&self) -> Result<(), String> {
        let p = &self.path;
        let flags = [
            (p.path.is_some(), "--path"),
            (p.wake_slots.is_some(), "--wake-slots"),
            (p.wake_usecs.is_some(), "--wake-usecs"),
            (p.burst.is_some(), "--burst"),
        ];
        let given = flags.iter().find(|(g, _)| *g).map(|(_, n)| *n);
        let streaming = matches!((self.mode, &self.command), (Some(Mode::Rx | Mode::Tx), None));
        if !streaming {
            return match given {
                Some(name) => Err(format!("{name} only goes with --mode rx or --mode tx")),
                None => Ok(()),
            };
        }
        if self.xdp.xdp.is_some() {
            if let Some(name) = given {
                return Err(format!("{name} does not go with --xdp (AF_XDP is a data path of its own)"));
            }
            return Ok(());
        }
        if p.path == Some(DataPath::Kernel) && self.common.backend == Some(BackendKind::Shm) {
            return Err("--path kernel needs the kernel backend: a shm ring has no kernel to move packets \
                        (use --path socket, or drop --backend shm)"
                .into());
        }
        if let Some(rule) = self.wakeup_rule() {
            rule.check()?;
        }
        match self.mode {
            Some(Mode::Tx) if p.path == Some(DataPath::Kernel) => {
                if self.tx.source != TxSource::Ring {
                    return Err("--mode tx --path kernel sends what another producer pushed into the channel: \
                                give --source ring"
                        .into());
                }
                Ok(())
            }
            Some(Mode::Tx) if p.burst.is_some() => Err("--burst only goes with --mode tx --path kernel".into()),
            Some(Mode::Tx) if self.wakeup_rule().is_some() => {
                Err("--wake-slots and --wake-usecs go with --mode rx, or with --mode tx --path kernel".into())
            }
            Some(Mode::Rx) if p.burst.is_some() => Err("--burst only goes with --mode tx --path kernel".into()),
            _ => Ok(()),
        }
    }

    /// The data path of this rx or tx run with `backend`: --path, else for rx the kernel path
    /// on the kernel backend and the socket path on shm, for tx the socket path.
    pub fn data_path(&self, backend: rtpmgr::BackendKind) -> DataPath {
        match (self.path.path, self.mode, backend) {
            (Some(p), _, _) => p,
            (None, Some(Mode::Rx), rtpmgr::BackendKind::Kernel) => DataPath::Kernel,
            _ => DataPath::Socket,
        }
    }

    /// The wake-up rule --wake-slots / --wake-usecs ask for, None if neither is given (each
    /// missing half takes its rx default).
    pub fn wakeup_rule(&self) -> Option<rtpmgr::Wakeup> {
        let p = &self.path;
        (p.wake_slots.is_some() || p.wake_usecs.is_some()).then(|| rtpmgr::Wakeup {
            slots: p.wake_slots.unwrap_or(DEFAULT_WAKE_SLOTS),
            usecs: p.wake_usecs.unwrap_or(DEFAULT_WAKE_USECS),
        })
    }

    /// The rule rx sets on the kernel path: the flags', else 32 slots or 4000 us.
    pub fn rx_kernel_wakeup(&self) -> rtpmgr::Wakeup {
        self.wakeup_rule().unwrap_or(rtpmgr::Wakeup { slots: DEFAULT_WAKE_SLOTS, usecs: DEFAULT_WAKE_USECS })
    }
}

impl Cli {
    /// The multicast flags: which go with which mode, and a valid group request. The message
    /// names the flag.
    fn validate_multicast(&self) -> Result<(), String> {
        let m = &self.multicast;
        let rx_only = [(m.group.is_some(), "--group"), (m.ssm_source.is_some(), "--ssm-source")];
        let tx_only = [(m.ttl.is_some(), "--ttl"), (m.multicast_loop, "--multicast-loop")];
        let given = |flags: &[(bool, &'static str)]| flags.iter().find(|(g, _)| *g).map(|(_, n)| *n);
        let any = given(&rx_only).or(given(&tx_only)).or(m.iface.is_some().then_some("--iface"));
        match (self.mode, &self.command) {
            (Some(Mode::Rx), None) => {
                if let Some(name) = given(&tx_only) {
                    return Err(format!("{name} only goes with --mode tx (sending to a multicast --dst)"));
                }
                if m.group.is_none() {
                    if let Some(name) = given(&rx_only).or(m.iface.is_some().then_some("--iface")) {
                        return Err(format!("{name} goes with --group (the multicast group to receive)"));
                    }
                    return Ok(());
                }
                if self.xdp.xdp.is_some() {
                    return Err("--group does not go with --xdp (the AF_XDP path joins no groups); drop --xdp".into());
                }
                let membership = self.membership()?.expect("group given");
                if let Some(bind) = self.rx.bind {
                    if bind.is_ipv4() != membership.group().is_ipv4() {
                        return Err(format!(
                            "--bind {bind} and --group {} are of different address families",
                            membership.group()
                        ));
                    }
                }
                Ok(())
            }
            (Some(Mode::Tx), None) => {
                if let Some(name) = given(&rx_only) {
                    return Err(format!(
                        "{name} only goes with --mode rx; tx sends to --dst, so give the group there (--dst 239.1.1.1)"
                    ));
                }
                let to_group = self.tx.dst.is_some_and(|d| d.is_multicast());
                if let Some(name) = given(&tx_only).or(m.iface.is_some().then_some("--iface")) {
                    if !to_group {
                        return Err(format!("{name} only applies when --dst is a multicast group"));
                    }
                    if self.xdp.xdp.is_some() {
                        return Err(format!("{name} does not go with --xdp (AF_XDP sends on the --xdp interface)"));
                    }
                }
                if let Some(name) = &m.iface {
                    crate::multicast::check_interface_name(name)?;
                }
                if let (true, Some(dst), None) = (self.xdp.xdp.is_some(), self.tx.dst, &self.xdp.dst_mac) {
                    if dst.is_multicast() {
                        return Err(format!(
                            "--xdp sends to the multicast --dst {dst} only with --dst-mac {} (its Ethernet group \
                             address)",
                            crate::multicast::ethernet_group_address(dst)
                        ));
                    }
                }
                Ok(())
            }
            _ => match any {
                Some(name) => Err(format!("{name} only goes with --mode rx or --mode tx")),
                None => Ok(()),
            },
        }
    }

    /// The group rx joins (--group, --ssm-source, --iface), checked; None without --group.
    pub fn membership(&self) -> Result<Option<crate::multicast::Membership>, String> {
        let m = &self.multicast;
        m.group.map(|g| crate::multicast::membership(g, m.ssm_source, m.iface.clone())).transpose()
    }

    /// How tx sends to a multicast --dst (--iface, --ttl, --multicast-loop); None for unicast.
    pub fn send_options(&self) -> Option<crate::multicast::SendOptions> {
        let m = &self.multicast;
        self.tx.dst.filter(|d| d.is_multicast()).map(|_| crate::multicast::SendOptions {
            iface: m.iface.clone(),
            ttl: m.ttl.unwrap_or(crate::multicast::DEFAULT_TTL),
            loopback: m.multicast_loop,
        })
    }
}

/// Parses and validates `rtp_app ARGS...` as main does, for the unit tests of every module.
#[cfg(test)]
pub(crate) fn parse_for_test(args: &[&str]) -> Result<Cli, String> {
    let cli = Cli::try_parse_from(std::iter::once("rtp_app").chain(args.iter().copied())).map_err(|e| e.to_string())?;
    cli.validate()?;
    Ok(cli)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    use super::parse_for_test as parse;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn rx_tx_ctl_diag_parse() {
        let c = parse(&["--mode", "rx", "--bind", "0.0.0.0", "--port", "5004", "-t", "1.5", "-l", "10"]).unwrap();
        assert_eq!(c.mode, Some(Mode::Rx));
        assert_eq!(c.common.time, Some(1.5));
        assert_eq!(c.common.limit, Some(10));
        let c = parse(&[
            "--mode", "tx", "--dst", "127.0.0.1", "--port", "5004", "--rate", "10000", "--payload", "100", "--backend",
            "shm", "--ssrc", "0xdeadbeef",
        ])
        .unwrap();
        assert_eq!(c.tx.ssrc, Some(0xdead_beef));
        assert_eq!(c.common.backend, Some(BackendKind::Shm));
        let c = parse(&["--mode", "ctl", "--configure", "--ring-order", "12", "--drop-policy", "drop-oldest"]).unwrap();
        assert_eq!(c.ctl.drop_policy, Some(DropPolicy::DropOldest));
        let c = parse(&["diag", "--json", "--backend", "shm"]).unwrap();
        assert!(matches!(c.command, Some(Command::Diag)));
        assert!(c.common.json);
    }

    #[test]
    fn bad_input_is_rejected_with_the_value_quoted() {
        let e = parse(&["--mode", "rx", "--port", "5004", "-t", "abc"]).unwrap_err();
        assert!(e.contains("'abc' is not a number of seconds"), "{e}");
        let e = parse(&["--mode", "rx", "--port", "5004", "-t", "-3"]).unwrap_err();
        assert!(e.contains("-3"), "{e}");
        assert!(parse(&["--mode", "rx", "--port", "70000"]).is_err());
        assert!(parse(&["--mode", "rx", "--port", "1", "--channel", "32"]).is_err());
        assert!(parse(&["--mode", "rx", "--port", "1", "--batch", "0"]).is_err());
        assert!(parse(&["--mode", "rx", "--port", "1", "--batch", "257"]).is_err());
        assert!(parse(&["--mode", "tx", "--dst", "127.0.0.1", "--port", "1", "--pt", "128"]).is_err());
        assert!(parse(&["--mode", "ctl", "--stats", "--reset"]).is_err());
        assert!(parse(&["--mode", "ctl"]).unwrap_err().contains("--stats"));
        assert!(parse(&["--mode", "tx", "--port", "1"]).unwrap_err().contains("--dst"));
        assert!(parse(&["--mode", "rx"]).unwrap_err().contains("--port"));
        assert!(parse(&["--ring-order", "3", "--mode", "ctl", "--stats"]).is_err());
        assert!(parse(&["--mode", "ctl", "--configure", "--ring-order", "16"]).is_err());
        assert!(parse(&[]).is_err());
    }

    #[test]
    fn data_path_defaults_to_kernel_for_rx_on_the_kernel_backend() {
        use rtpmgr::BackendKind as B;
        let c = parse(&["--mode", "rx", "--port", "5004"]).unwrap();
        assert_eq!(c.data_path(B::Kernel), DataPath::Kernel);
        assert_eq!(c.data_path(B::Shm), DataPath::Socket);
        assert_eq!(c.wakeup_rule(), None);
        assert_eq!(c.rx_kernel_wakeup(), rtpmgr::Wakeup { slots: 32, usecs: 4000 });
        let c = parse(&["--mode", "rx", "--port", "5004", "--path", "socket"]).unwrap();
        assert_eq!(c.data_path(B::Kernel), DataPath::Socket);
        let c = parse(&["--mode", "tx", "--dst", "10.0.0.2", "--port", "5004"]).unwrap();
        assert_eq!(c.data_path(B::Kernel), DataPath::Socket);
        let c = parse(&[
            "--mode", "tx", "--path", "kernel", "--source", "ring", "--dst", "239.1.1.1", "--port", "5004", "--rate",
            "2000", "--burst", "4", "--ttl", "2",
        ])
        .unwrap();
        assert_eq!(c.data_path(B::Kernel), DataPath::Kernel);
        assert_eq!((c.tx.rate, c.path.burst), (Some(2000), Some(4)));
    }

    #[test]
    fn wake_flags_fill_the_missing_half_with_the_rx_default() {
        let c = parse(&["--mode", "rx", "--port", "1", "--wake-slots", "8"]).unwrap();
        assert_eq!(c.rx_kernel_wakeup(), rtpmgr::Wakeup { slots: 8, usecs: 4000 });
        let c = parse(&["--mode", "rx", "--port", "1", "--wake-usecs", "0", "--wake-slots", "1"]).unwrap();
        assert_eq!(c.wakeup_rule(), Some(rtpmgr::Wakeup::EVERY_PUSH));
        let c = parse(&["--mode", "ctl", "--wakeup", "16,2000"]).unwrap();
        assert_eq!(c.ctl.wakeup, Some(rtpmgr::Wakeup { slots: 16, usecs: 2000 }));
    }

    #[test]
    fn bad_data_path_input_is_rejected_naming_the_flag() {
        let cases: &[(&[&str], &str)] = &[
            (
                &["--mode", "rx", "--port", "1", "--path", "kernel", "--backend", "shm"],
                "--path kernel needs the kernel backend",
            ),
            (&["--mode", "rx", "--port", "1", "--wake-usecs", "0"], "needs a timer"),
            (&["--mode", "rx", "--port", "1", "--wake-slots", "0"], "0"),
            (&["--mode", "rx", "--port", "1", "--wake-slots", "40000"], "40000"),
            (&["--mode", "rx", "--port", "1", "--wake-usecs", "1000001"], "1000001"),
            (&["--mode", "rx", "--xdp", "eth0", "--path", "kernel"], "--path does not go with --xdp"),
            (&["--mode", "rx", "--xdp", "eth0", "--wake-slots", "4"], "--wake-slots does not go with --xdp"),
            (&["--mode", "ctl", "--stats", "--path", "kernel"], "--path only goes with --mode rx or --mode tx"),
            (&["--mode", "ctl", "--stats", "--wake-slots", "4"], "--wake-slots only goes with --mode rx or --mode tx"),
            (&["--mode", "tx", "--path", "kernel", "--dst", "10.0.0.2", "--port", "1"], "give --source ring"),
            (
                &["--mode", "tx", "--dst", "10.0.0.2", "--port", "1", "--rate", "5", "--burst", "2"],
                "--burst only goes with --mode tx --path kernel",
            ),
            (&["--mode", "rx", "--port", "1", "--burst", "2"], "--rate"),
            (&["--mode", "tx", "--dst", "10.0.0.2", "--port", "1", "--wake-slots", "2"], "--mode tx --path kernel"),
            (&["--mode", "ctl", "--wakeup", "32"], "expected SLOTS,USECS"),
            (&["--mode", "ctl", "--wakeup", "32,0"], "needs a timer"),
            (&["--mode", "ctl", "--wakeup", "32,4000", "--stats"], "cannot be used with"),
        ];
        for (args, want) in cases {
            let e = parse(args).unwrap_err();
            assert!(e.contains(want), "{args:?}: want '{want}' in: {e}");
        }
    }

    #[test]
    fn multicast_flags_parse_into_a_membership_and_send_options() {
        let c = parse(&[
            "--mode", "rx", "--group", "232.1.1.1", "--ssm-source", "10.0.0.1", "--iface", "eth0", "--port", "5004",
        ])
        .unwrap();
        let m = c.membership().unwrap().unwrap();
        assert_eq!(m.describe(), "232.1.1.1 from 10.0.0.1 on eth0");
        assert_eq!(c.send_options(), None);
        let c =
            parse(&["--mode", "rx", "--group", "ff3e::8000:1", "--ssm-source", "fd00::1", "--port", "5004"]).unwrap();
        assert_eq!(c.membership().unwrap().unwrap().source(), Some("fd00::1".parse().unwrap()));
        let c = parse(&["--mode", "rx", "--port", "5004"]).unwrap();
        assert_eq!(c.membership().unwrap(), None);

        let c =
            parse(&["--mode", "tx", "--dst", "239.1.1.1", "--port", "5004", "--iface", "eth1", "--ttl", "4"]).unwrap();
        let o = c.send_options().unwrap();
        assert_eq!((o.iface.as_deref(), o.ttl, o.loopback), (Some("eth1"), 4, false));
        let c = parse(&["--mode", "tx", "--dst", "ff3e::1", "--port", "5004", "--multicast-loop"]).unwrap();
        let o = c.send_options().unwrap();
        assert_eq!((o.iface, o.ttl, o.loopback), (None, crate::multicast::DEFAULT_TTL, true));
        let c = parse(&["--mode", "tx", "--dst", "10.0.0.2", "--port", "5004"]).unwrap();
        assert_eq!(c.send_options(), None);
    }

    #[test]
    fn bad_multicast_input_is_rejected_naming_the_flag() {
        let cases: &[(&[&str], &str)] = &[
            (&["--mode", "rx", "--port", "1", "--group", "10.0.0.1"], "10.0.0.1 is not a multicast address"),
            (&["--mode", "rx", "--port", "1", "--group", "fd00::1"], "fd00::1 is not a multicast address"),
            (&["--mode", "rx", "--port", "1", "--ssm-source", "10.0.0.1"], "--ssm-source goes with --group"),
            (&["--mode", "rx", "--port", "1", "--iface", "eth0"], "--iface goes with --group"),
            (
                &["--mode", "rx", "--port", "1", "--group", "232.1.1.1", "--ssm-source", "fd00::1"],
                "different address families",
            ),
            (
                &["--mode", "rx", "--port", "1", "--group", "ff3e::1", "--ssm-source", "10.0.0.1"],
                "different address families",
            ),
            (&["--mode", "rx", "--port", "1", "--group", "232.1.1.1", "--bind", "::"], "different address families"),
            (&["--mode", "rx", "--port", "1", "--group", "232.1.1.1", "--ssm-source", "232.0.0.9"], "unicast"),
            (&["--mode", "rx", "--port", "1", "--group", "ff02::1:3"], "needs --iface"),
            (
                &["--mode", "rx", "--port", "1", "--group", "239.1.1.1", "--iface", "name-longer-than-15"],
                "not a network interface name",
            ),
            (&["--mode", "rx", "--port", "1", "--group", "239.1.1.1", "--ttl", "3"], "--ttl only goes with --mode tx"),
            (&["--mode", "rx", "--port", "1", "--multicast-loop"], "--multicast-loop only goes with --mode tx"),
            (&["--mode", "rx", "--xdp", "eth0", "--group", "239.1.1.1"], "--group does not go with --xdp"),
            (&["--mode", "tx", "--dst", "239.1.1.1", "--port", "1", "--group", "239.1.1.1"], "give the group there"),
            (
                &["--mode", "tx", "--dst", "232.1.1.1", "--port", "1", "--ssm-source", "10.0.0.1"],
                "--ssm-source only goes with --mode rx",
            ),
            (
                &["--mode", "tx", "--dst", "10.0.0.2", "--port", "1", "--ttl", "4"],
                "--ttl only applies when --dst is a multicast group",
            ),
            (
                &["--mode", "tx", "--dst", "10.0.0.2", "--port", "1", "--iface", "eth0"],
                "--iface only applies when --dst is a multicast",
            ),
            (&["--mode", "tx", "--dst", "239.1.1.1", "--port", "1", "--iface", "a b"], "not a network interface name"),
            (
                &["--mode", "tx", "--dst", "239.1.1.1", "--port", "1", "--xdp", "eth0", "--iface", "eth0"],
                "does not go with --xdp",
            ),
            (&["--mode", "tx", "--dst", "239.129.1.2", "--port", "1", "--xdp", "eth0"], "--dst-mac 01:00:5e:01:01:02"),
            (&["--mode", "ctl", "--stats", "--group", "239.1.1.1"], "--group only goes with --mode rx or --mode tx"),
            (&["--mode", "tx", "--dst", "239.1.1.1", "--port", "1", "--ttl", "256"], "256"),
        ];
        for (args, want) in cases {
            let e = parse(args).unwrap_err();
            assert!(e.contains(want), "{args:?}: want '{want}' in: {e}");
        }
        // --xdp to a multicast --dst works once the Ethernet group address is given.
        assert!(parse(&[
            "--mode", "tx", "--dst", "239.129.1.2", "--port", "1", "--xdp", "eth0", "--dst-mac", "01:00:5e:01:01:02"
        ])
        .is_ok());
    }
}

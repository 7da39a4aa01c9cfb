//! Command line of `rtp-feeder`. Every option overrides the same key of the config file.

use std::path::PathBuf;

use clap::Parser;

use crate::config::{BackendKind, Direction, Fallback};

/// Default config file; used when it exists and `--config` is not given.
pub const DEFAULT_CONFIG: &str = "/etc/rtpmgr/feeder.toml";

/// Binds an rtp_mgr ring channel to a GStreamer pipeline.
///
/// RX: READY ring slots become GStreamer buffers without a copy (appsrc) and run through the
/// pipeline, e.g. a jitter buffer, a depayloader and a decoder. TX: the pipeline's RTP output
/// (appsink) is written into FREE ring slots for `rtp_app --mode tx --source ring` to send.
#[derive(Debug, Parser)]
#[command(
    name = "rtp-feeder",
    version,
    max_term_width = 98,
    after_long_help = "Examples:\n  \
        rtp-feeder --config /etc/rtpmgr/feeder.toml\n  \
        rtp-feeder --backend shm --channel 0 --direction rx \\\n    \
          --caps 'application/x-rtp,media=audio,clock-rate=48000,encoding-name=OPUS,payload=96' \\\n    \
          --pipeline 'rtpjitterbuffer latency=50 ! rtpopusdepay ! opusdec ! fakesink' --json -t 10\n  \
        rtp-feeder --backend shm --direction tx \\\n    \
          --pipeline 'audiotestsrc is-live=true ! opusenc ! rtpopuspay'\n  \
        rtp-feeder --config feeder.toml --check-config\n\n\
        Documentation: docs/rtp-feeder.md"
)]
pub struct Cli {
    /// Read this TOML config file
    ///
    /// Without this option /etc/rtpmgr/feeder.toml is read if it exists. Command-line options
    /// override the file's keys.
    #[arg(short, long, value_name = "file")]
    pub config: Option<PathBuf>,

    /// Validate the config and parse the pipeline, then exit without running it
    ///
    /// Checks the caps, builds the pipeline (so missing elements and bad properties are
    /// reported) and the status LED settings. Neither the ring nor the GPIO chip is opened.
    #[arg(long)]
    pub check_config: bool,

    /// Print stats as one JSON object per line on stdout
    #[arg(long)]
    pub json: bool,

    /// Ring backend: the kernel module or a shared-memory file
    #[arg(long, value_enum, value_name = "backend")]
    pub backend: Option<BackendKind>,

    /// Shared-memory ring name under /dev/shm (shm backend; default rtpmgr-<channel>)
    #[arg(long, value_name = "name")]
    pub shm_name: Option<String>,

    /// Ring channel N (/dev/rtp_mgrN)
    #[arg(long, value_name = "n", conflicts_with = "device")]
    pub channel: Option<u32>,

    /// Ring device path (kernel backend), instead of --channel
    #[arg(long, value_name = "path")]
    pub device: Option<PathBuf>,

    /// rx: ring -> pipeline; tx: pipeline -> ring
    #[arg(long, value_enum, value_name = "dir")]
    pub direction: Option<Direction>,

    /// RTP caps of the ring's packets (rx), e.g. application/x-rtp,media=audio,...
    #[arg(long, value_name = "caps")]
    pub caps: Option<String>,

    /// Pipeline in gst-launch syntax (rx: after appsrc; tx: before appsink)
    #[arg(long, value_name = "desc")]
    pub pipeline: Option<String>,

    /// Seconds between stats lines (0: only the final one)
    #[arg(long, value_name = "seconds")]
    pub stats_interval: Option<f64>,

    /// Run for this many seconds, then stop as on SIGTERM
    #[arg(short = 't', long = "time", value_name = "seconds")]
    pub time: Option<f64>,

    /// Slots popped per ring call (rx)
    #[arg(long, value_name = "n", hide_short_help = true)]
    pub batch: Option<u32>,

    /// Slots GStreamer may hold before the feeder falls back (rx; default: half the ring)
    #[arg(long, value_name = "n", hide_short_help = true)]
    pub high_watermark: Option<u32>,

    /// What to do with a packet above the high watermark (rx)
    #[arg(long, value_enum, value_name = "mode", hide_short_help = true)]
    pub fallback: Option<Fallback>,

    /// Buffers appsrc (rx) or appsink (tx) may queue
    #[arg(long, value_name = "n", hide_short_help = true)]
    pub queue_max_buffers: Option<u32>,

    /// GPIO chip of the status LED (e.g. /dev/gpiochip0; enables it), or "off"
    #[arg(long, value_name = "chip", hide_short_help = true)]
    pub led_chip: Option<String>,

    /// GPIO line of the status LED on --led-chip
    #[arg(long, value_name = "line", hide_short_help = true)]
    pub led_line: Option<u32>,

    /// Service options: --rt-priority and --cpu (override [tuning]), --ready-file.
    #[command(flatten)]
    pub service: rtpmgr_service::ServiceArgs,
}

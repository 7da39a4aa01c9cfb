//! rtp_app as a library: the parts the binary and its integration tests share.
//!
//! - [`cli`]: the command line.
//! - [`backend`]: which ring (kernel device or shm), opened with messages that name the fix;
//!   rings are used only through the ring library's guards (`rtpmgr::Producer`/`Consumer`).
//! - [`rtp`]: RTP v2 generation and validation.
//! - [`capture`]: `rtp_app capture`, a channel's packets to pcap/pcapng (CAPTURE, ABI 2.2).
//! - [`multicast`]: joining groups (any-source, source-specific) and multicast send options,
//!   from the shared socket library `rtpmgr-net`, with messages that name rtp_app's flags.
//! - [`net`]: recvmmsg/sendmmsg batches into and out of caller buffers.
//! - [`stats`]: counters and the seed's stats line / JSON records.
//! - [`control`]: stop state (signals, limits), bounded retries, the stats thread.
//! - [`kpath`]: `--path kernel`: the kernel moves the datagrams (ABI 2.1), rtp_app supervises.
//! - [`monitor`]: `rtp_app monitor`, the module's channel events over generic netlink.
//! - [`metrics`]: `--mode ctl --stats --format openmetrics` for Prometheus.
//! - [`top`]: `rtp_app top`, the live terminal view of every channel (`--once`/`--json` for scripts).
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod app;
pub mod backend;
pub mod capture;
pub mod cli;
pub mod control;
pub mod ctl;
pub mod diag;
pub mod kpath;
pub mod metrics;
pub mod monitor;
pub mod multicast;
pub mod net;
pub mod rtp;
pub mod rx;
pub mod stats;
pub mod top;
pub mod tx;
pub mod xdp;

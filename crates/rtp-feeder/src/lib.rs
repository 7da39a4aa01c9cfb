//! rtp-feeder: binds an rtp_mgr ring channel to a GStreamer pipeline.
//!
//! On a set-top box the ring feeds the media hardware as a DMA engine would; this crate is that
//! feeder in software.
//!
//! ```text
//! rx:  ring (READY slots) --zero-copy--> {appsrc} ! {rtpjitterbuffer ! rtpopusdepay ! opusdec ! sink}
//! tx:  {audiotestsrc is-live=true ! opusenc ! rtpopuspay} ! {appsink} --copy--> ring (FREE slots)
//! ```
//!
//! - [`rx`]: slots lent to GStreamer as buffer memory, released when GStreamer frees them;
//!   bounded by a high watermark with a counted copy/drop fallback.
//! - [`appel`]: appsrc/appsink through properties and action signals (no libgstapp link).
//! - [`pipeline`]: parsing the user's gst-launch description and the bounded appsrc/appsink.
//! - [`app`]: lifecycle (start, control loop, SIGTERM drain, exit status).
//! - [`status`] / [`led`]: the stream status LED over an embedded-hal 1.0 `OutputPin`.
//! - [`stats`], [`config`], [`cli`], [`ring`] (the only module that talks to the ring library).
//!
//! docs/rtp-feeder.md is the user reference.

#![deny(unsafe_code)]

pub mod app;
pub mod appel;
pub mod cli;
pub mod config;
pub mod led;
pub mod pipeline;
pub mod ring;
pub mod rx;
pub mod stats;
pub mod status;

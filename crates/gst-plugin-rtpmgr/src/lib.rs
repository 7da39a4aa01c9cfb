// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! GStreamer plugin `rtpmgr`: the `rtp_mgr` slot ring as two elements.
//!
//! - [`rtpmgrsrc`]: a live push source that pops READY slots in batches and pushes each batch as
//!   one `GstBufferList`, every buffer wrapping its slot's payload in place (zero copy); a slot
//!   goes back to the ring when GStreamer frees the last reference to its buffer.
//! - [`rtpmgrsink`]: a sink that reserves a batch of FREE slots per buffer list, copies each
//!   payload in once and pushes the batch READY.
//!
//! Both reach the ring through the `rtpmgr` library: the kernel device `/dev/rtp_mgrN`, or a
//! shared-memory ring (`shm-name`) on hosts without the module. See docs/gstreamer.md.
#![deny(unsafe_code)]

use gstreamer as gst;

mod ring;
pub mod rtpmgrsink;
pub mod rtpmgrsrc;

fn plugin_init(plugin: &gst::Plugin) -> Result<(), gst::glib::BoolError> {
    rtpmgrsrc::register(plugin)?;
    rtpmgrsink::register(plugin)?;
    Ok(())
}

gst::plugin_define!(
    rtpmgr,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    concat!(env!("CARGO_PKG_VERSION"), "-", env!("COMMIT_ID")),
    // The workspace is dual-licensed GPL-2.0-only OR MIT; GStreamer's licence list knows "MIT/X11".
    "MIT/X11",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    // No public repository URL: the origin names the project.
    "rtpmgr",
    env!("BUILD_REL_DATE")
);

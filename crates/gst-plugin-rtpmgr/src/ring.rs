// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! What both elements share: where the ring is (properties `channel`, `device`, `shm-name`) and
//! the ring's counters as a `GstStructure` (property `stats`).

use gst::glib;
use gst::prelude::*;
use gstreamer as gst;
use std::path::PathBuf;

/// Default channel: the first device, `/dev/rtp_mgr0`.
pub const DEFAULT_CHANNEL: u32 = 0;

/// Where an element finds its ring, as set through its properties.
#[derive(Debug, Clone, Default)]
pub struct Location {
    /// Channel number N: `/dev/rtp_mgrN`, or the number a new shm ring reports.
    pub channel: u32,
    /// An explicit device path, overriding `channel`'s default path.
    pub device: Option<String>,
    /// A shm ring (name under /dev/shm, or a path): selects the shared-memory backend.
    pub shm_name: Option<String>,
}

impl Location {
    /// The ring library's backend for these settings.
    pub fn backend(&self) -> rtpmgr::Backend {
        match (&self.shm_name, &self.device) {
            (Some(name), _) => rtpmgr::Backend::shm(name).with_channel(self.channel),
            (None, Some(dev)) => rtpmgr::Backend::kernel_path(PathBuf::from(dev)),
            (None, None) => rtpmgr::Backend::kernel(self.channel),
        }
    }

    /// Checks a `device` or `shm-name` value; the error says what is wrong with it.
    pub fn check_path(prop: &str, value: Option<&str>) -> Result<(), String> {
        match value {
            Some("") => Err(format!("{prop} is empty: unset it (None) or give a path")),
            Some(v) if v.contains('\0') => Err(format!("{prop} {v:?} contains a NUL byte")),
            _ => Ok(()),
        }
    }

    /// Checks the settings and opens the channel; the message names the device and the likely
    /// cause.
    pub fn open(&self) -> Result<rtpmgr::Channel, String> {
        Self::check_path("device", self.device.as_deref())?;
        Self::check_path("shm-name", self.shm_name.as_deref())?;
        let backend = self.backend();
        rtpmgr::Channel::open(&backend).map_err(|e| match backend.kind() {
            rtpmgr::BackendKind::Kernel => format!(
                "cannot open ring {}: {e} (rtp_mgr module loaded? user in group rtpmgr? or set shm-name on a host)",
                backend.path().display()
            ),
            rtpmgr::BackendKind::Shm => format!("cannot open shm ring {}: {e}", backend.path().display()),
        })
    }
}

/// The three location properties, identical on both elements.
pub fn location_properties() -> Vec<glib::ParamSpec> {
    vec![
        glib::ParamSpecUInt::builder("channel")
            .nick("Channel")
            .blurb("Ring channel N: the device /dev/rtp_mgrN (or the number a new shm ring reports)")
            .default_value(DEFAULT_CHANNEL)
            .mutable_ready()
            .build(),
        glib::ParamSpecString::builder("device")
            .nick("Device")
            .blurb("Device path of the ring, overriding /dev/rtp_mgr<channel> (None: from channel)")
            .mutable_ready()
            .build(),
        glib::ParamSpecString::builder("shm-name")
            .nick("Shared-memory ring")
            .blurb(
                "Use the shared-memory ring backend (hosts without the module): a ring name under \
                 /dev/shm (or $RTPMGR_SHM_DIR), or a path; created if absent (None: kernel device)",
            )
            .mutable_ready()
            .build(),
    ]
}

/// Applies one of [`location_properties`]; false if `name` is not one of them. Values are
/// checked when the element starts ([`Location::open`]), where a bad one fails the state change
/// with a message naming it.
pub fn set_location_property(loc: &mut Location, name: &str, value: &glib::Value) -> bool {
    match name {
        "channel" => loc.channel = value.get().expect("type checked upstream"),
        "device" => loc.device = value.get().expect("type checked upstream"),
        "shm-name" => loc.shm_name = value.get().expect("type checked upstream"),
        _ => return false,
    }
    true
}

/// Reads one of [`location_properties`].
pub fn location_property(loc: &Location, name: &str) -> Option<glib::Value> {
    match name {
        "channel" => Some(loc.channel.to_value()),
        "device" => Some(loc.device.to_value()),
        "shm-name" => Some(loc.shm_name.to_value()),
        _ => None,
    }
}

/// Adds the ring's counters and slot counts to `s` (names as in the UAPI, with '-' for '_' as
/// GStreamer field names go), and `ring` = the device or shm path ("" while the element is not
/// started, and then nothing else).
pub fn add_ring_stats(s: &mut gst::StructureRef, channel: Option<&rtpmgr::Channel>) {
    let Some(ch) = channel else {
        s.set("ring", "");
        return;
    };
    s.set("ring", ch.name());
    if let Ok(stats) = ch.stats() {
        for (name, v) in rtpmgr::stats_fields(&stats) {
            s.set(name.replace('_', "-").as_str(), v);
        }
    }
    if let Ok(status) = ch.status() {
        for (name, v) in rtpmgr::status_fields(&status) {
            s.set(name.replace('_', "-").as_str(), v);
        }
    }
}

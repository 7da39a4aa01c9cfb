// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! `rtpmgrsrc`: live source popping ring slots as zero-copy buffer lists.

use gst::glib;
use gst::prelude::*;
use gstreamer as gst;

mod imp;

glib::wrapper! {
    /// The `rtpmgrsrc` element.
    pub struct RtpmgrSrc(ObjectSubclass<imp::RtpmgrSrc>) @extends gstreamer_base::PushSrc, gstreamer_base::BaseSrc, gst::Element, gst::Object;
}

/// Registers `rtpmgrsrc` with `plugin`.
pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(Some(plugin), "rtpmgrsrc", gst::Rank::NONE, RtpmgrSrc::static_type())
}

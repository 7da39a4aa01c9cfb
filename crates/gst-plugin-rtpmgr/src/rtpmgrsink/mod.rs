// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! `rtpmgrsink`: sink copying buffers (lists) into ring slots, one batch per list.

use gst::glib;
use gst::prelude::*;
use gstreamer as gst;

mod imp;

glib::wrapper! {
    /// The `rtpmgrsink` element.
    pub struct RtpmgrSink(ObjectSubclass<imp::RtpmgrSink>) @extends gstreamer_base::BaseSink, gst::Element, gst::Object;
}

/// Registers `rtpmgrsink` with `plugin`.
pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(Some(plugin), "rtpmgrsink", gst::Rank::NONE, RtpmgrSink::static_type())
}

//! appsrc and appsink driven through their properties and action signals.
//!
//! The elements come from the `app` plugin (gst-plugins-base) at run time; this crate does not
//! link libgstapp and so needs neither the gstreamer-app crate nor `gstreamer-app-1.0.pc` at
//! build time. That matters on Debian bookworm: libgstreamer-plugins-base1.0-dev (which ships
//! the .pc) cannot be installed for amd64 and arm64 at the same time, so a host that
//! cross-links for the arm64 image could not also build the host tests. Only
//! libgstreamer1.0-dev is needed, and it is multi-arch co-installable.
//!
//! Signals used (stable since GStreamer 1.0, `push-buffer-list` since 1.14): appsrc `push-buffer`,
//! `push-buffer-list` and `end-of-stream`,
//! appsink `new-sample` with `emit-signals=true` and `pull-sample`.

use anyhow::{Context, Result};
use gst::prelude::*;
use gstreamer as gst;

/// An `appsrc` element.
#[derive(Debug, Clone)]
pub struct AppSrc(gst::Element);

impl AppSrc {
    /// Creates an appsrc; set its properties through [`AppSrc::element`].
    pub fn new(name: &str) -> Result<Self> {
        let e = gst::ElementFactory::make("appsrc")
            .name(name)
            .build()
            .context("failed to create appsrc: is the GStreamer 'app' plugin (gst-plugins-base) installed?")?;
        Ok(Self(e))
    }

    /// Wraps an existing element; `None` unless it is an appsrc.
    pub fn from_element(e: gst::Element) -> Option<Self> {
        (e.factory()?.name() == "appsrc").then_some(Self(e))
    }

    /// The element, for linking and properties.
    pub fn element(&self) -> &gst::Element {
        &self.0
    }

    /// `push-buffer`: queues `buffer` (appsrc takes its own reference).
    pub fn push_buffer(&self, buffer: gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        self.0.emit_by_name::<gst::FlowReturn>("push-buffer", &[&buffer]).into_result()
    }

    /// `push-buffer-list`: queues every buffer of `list` with one call (appsrc takes its own
    /// reference and pushes the list downstream as one).
    pub fn push_buffer_list(&self, list: gst::BufferList) -> Result<gst::FlowSuccess, gst::FlowError> {
        self.0.emit_by_name::<gst::FlowReturn>("push-buffer-list", &[&list]).into_result()
    }

    /// `end-of-stream`: EOS after the queued buffers.
    pub fn end_of_stream(&self) -> Result<gst::FlowSuccess, gst::FlowError> {
        self.0.emit_by_name::<gst::FlowReturn>("end-of-stream", &[]).into_result()
    }

    /// Buffers queued now.
    pub fn current_level_buffers(&self) -> u64 {
        self.0.property("current-level-buffers")
    }

    /// Bytes queued now.
    pub fn current_level_bytes(&self) -> u64 {
        self.0.property("current-level-bytes")
    }

    /// The `max-buffers` bound.
    pub fn max_buffers(&self) -> u64 {
        self.0.property("max-buffers")
    }

    /// The `max-bytes` bound.
    pub fn max_bytes(&self) -> u64 {
        self.0.property("max-bytes")
    }
}

/// An `appsink` element.
#[derive(Debug, Clone)]
pub struct AppSink(gst::Element);

impl AppSink {
    /// Creates an appsink.
    pub fn new(name: &str) -> Result<Self> {
        let e = gst::ElementFactory::make("appsink")
            .name(name)
            .build()
            .context("failed to create appsink: is the GStreamer 'app' plugin (gst-plugins-base) installed?")?;
        Ok(Self(e))
    }

    /// Wraps an existing element; `None` unless it is an appsink.
    pub fn from_element(e: gst::Element) -> Option<Self> {
        (e.factory()?.name() == "appsink").then_some(Self(e))
    }

    /// The element, for linking and properties.
    pub fn element(&self) -> &gst::Element {
        &self.0
    }

    /// Calls `f` for every sample, in the streaming thread, as soon as it arrives.
    ///
    /// `f`'s error becomes the flow return of the sink (e.g. `FlowError::Error` after posting an
    /// element error). At EOS or while flushing `pull-sample` returns nothing and the flow is EOS.
    pub fn on_sample<F>(&self, f: F)
    where
        F: Fn(&gst::Element, gst::Sample) -> Result<gst::FlowSuccess, gst::FlowError> + Send + Sync + 'static,
    {
        self.0.set_property("emit-signals", true);
        self.0.connect("new-sample", false, move |args| {
            let sink = args[0].get::<gst::Element>().expect("new-sample is emitted by an element");
            let ret = match sink.emit_by_name::<Option<gst::Sample>>("pull-sample", &[]) {
                Some(sample) => gst::FlowReturn::from(f(&sink, sample)),
                None => gst::FlowReturn::Eos,
            };
            Some(ret.to_value())
        });
    }
}

/// Sets an enum property by its nick (e.g. `leaky-type` = "upstream"), which needs no binding
/// of the enum type.
pub fn set_enum(e: &gst::Element, prop: &str, nick: &str) {
    e.set_property_from_str(prop, nick);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_pull_through_signals() {
        gst::init().unwrap();
        let src = AppSrc::new("s").unwrap();
        let sink = AppSink::new("k").unwrap();
        sink.element().set_property("sync", false);
        let pipeline = gst::Pipeline::new();
        pipeline.add_many([src.element(), sink.element()]).unwrap();
        src.element().link(sink.element()).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        sink.on_sample(move |_, s| {
            tx.send(s.buffer().unwrap().map_readable().unwrap().to_vec()).unwrap();
            Ok(gst::FlowSuccess::Ok)
        });
        pipeline.set_state(gst::State::Playing).unwrap();
        src.push_buffer(gst::Buffer::from_slice(vec![1u8, 2, 3])).unwrap();
        src.end_of_stream().unwrap();
        assert_eq!(rx.recv_timeout(std::time::Duration::from_secs(5)).unwrap(), vec![1, 2, 3]);
        pipeline.set_state(gst::State::Null).unwrap();
        assert!(AppSrc::from_element(sink.element().clone()).is_none());
    }
}

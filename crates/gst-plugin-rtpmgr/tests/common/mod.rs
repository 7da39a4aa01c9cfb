// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! Shared by the element tests: the plugin registered statically, private shm rings, RTP packets.
#![allow(dead_code)] // each test binary uses a different part

use gstreamer as gst;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Once;
use std::time::{Duration, Instant};

/// GStreamer initialised and the plugin registered (from this build, not the plugin path).
pub fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().expect("GStreamer initialises");
        gstrtpmgr::plugin_register_static().expect("the rtpmgr plugin registers");
    });
}

/// A private shm ring of `2^order` slots of `payload` bytes, created and started; removed on drop.
pub struct TestRing {
    pub path: PathBuf,
    pub channel: rtpmgr::Channel,
}

impl TestRing {
    pub fn new(tag: &str, order: u32, payload: u32) -> TestRing {
        static N: AtomicU32 = AtomicU32::new(0);
        let path = rtpmgr::shm_dir().join(format!(
            "gst-rtpmgr-test-{}-{tag}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_file(&path);
        let cfg = rtpmgr::Config { ring_order: order, slot_payload: payload, ..Default::default() };
        let backend = rtpmgr::Backend::shm_at(&path).with_create_config(cfg).with_channel(3);
        let channel = rtpmgr::Channel::open(&backend).expect("shm ring opens");
        channel.start().expect("shm ring starts");
        TestRing { path, channel }
    }

    /// The value of the elements' `shm-name` property.
    pub fn shm_name(&self) -> &str {
        self.path.to_str().expect("temp paths are UTF-8")
    }

    /// Pushes RTP packets with sequence numbers `seqs` (payload: the seq as 4 bytes + `extra` bytes).
    pub fn send(&self, seqs: std::ops::Range<u16>, extra: usize) {
        let mut tx = self.channel.producer().expect("producer");
        for s in seqs {
            tx.write(&rtp_packet(s, extra)).expect("ring has room");
        }
    }

    pub fn status(&self) -> rtpmgr::Status {
        self.channel.status().expect("status")
    }
}

impl Drop for TestRing {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// An RTP v2 packet (PT 96, SSRC 0x1234) with sequence number `seq`; the payload starts with the
/// seq as a big-endian u32, then `extra` bytes.
pub fn rtp_packet(seq: u16, extra: usize) -> Vec<u8> {
    let mut p = vec![0x80, 96];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&0x1234u32.to_be_bytes());
    p.extend_from_slice(&u32::from(seq).to_be_bytes());
    p.extend(std::iter::repeat_n(0xab, extra));
    p
}

/// The RTP sequence number of a packet.
pub fn seq_of(data: &[u8]) -> u16 {
    u16::from_be_bytes([data[2], data[3]])
}

/// Waits up to 10 s for `f`.
pub fn wait_for(what: &str, f: impl Fn() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < Duration::from_secs(10), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The pathname of the mapping of this process that contains `addr` (from /proc/self/maps), and
/// the address's offset in that file.
pub fn mapping_of(addr: usize) -> Option<(PathBuf, u64)> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    for line in maps.lines() {
        let mut f = line.split_whitespace();
        let range = f.next()?;
        let (lo, hi) = range.split_once('-')?;
        let (lo, hi) = (usize::from_str_radix(lo, 16).ok()?, usize::from_str_radix(hi, 16).ok()?);
        if (lo..hi).contains(&addr) {
            let _perms = f.next()?;
            let off = u64::from_str_radix(f.next()?, 16).ok()?;
            let path = f.nth(2).map(PathBuf::from).unwrap_or_default();
            return Some((path, off + (addr - lo) as u64));
        }
    }
    None
}

/// The error message of the first ERROR on `bus` within 5 s, with its debug text.
pub fn bus_error(bus: &gst::Bus) -> Option<String> {
    let msg = bus.timed_pop_filtered(gst::ClockTime::from_seconds(5), &[gst::MessageType::Error])?;
    match msg.view() {
        gst::MessageView::Error(e) => Some(format!("{} ({})", e.error(), e.debug().unwrap_or_default())),
        _ => None,
    }
}

pub fn same_file(a: &Path, b: &Path) -> bool {
    a.canonicalize().ok() == b.canonicalize().ok()
}

// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! rtpmgrsink on the shm backend, and the round trip rtpmgrsink -> ring -> rtpmgrsrc.

mod common;

use common::*;
use gst::prelude::*;
use gstreamer as gst;
use gstreamer_check as gst_check;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn harness(ring: &TestRing, block: bool) -> gst_check::Harness {
    init();
    // The harness starts an element with a sink pad as soon as it wraps it: set the properties
    // first. A sink prerolls asynchronously; the harness wants the state change done at once.
    let sink = gst::ElementFactory::make("rtpmgrsink")
        .property("shm-name", ring.shm_name())
        .property("block", block)
        .property("wait-timeout", 10u32)
        .property("sync", false)
        .property("async", false)
        .build()
        .unwrap();
    let mut h = gst_check::Harness::with_element(&sink, Some("sink"), None);
    h.set_src_caps_str("application/x-rtp,media=audio,clock-rate=48000,encoding-name=OPUS,payload=96");
    h
}

fn list_of(seqs: std::ops::Range<u16>, extra: usize) -> gst::BufferList {
    let mut list = gst::BufferList::new();
    for s in seqs {
        list.get_mut().unwrap().add(gst::Buffer::from_mut_slice(rtp_packet(s, extra)));
    }
    list
}

fn drain(ring: &TestRing) -> Vec<Vec<u8>> {
    let mut rx = ring.channel.consumer().unwrap();
    let mut out = Vec::new();
    while let Ok(slots) = rx.pop_batch(64) {
        out.extend(slots.iter().map(|s| s.data().to_vec()));
    }
    out
}

fn stat(e: &gst::Element, field: &str) -> u64 {
    e.property::<gst::Structure>("stats").get::<u64>(field).unwrap()
}

/// A buffer list is one batch: every packet in the ring, in order, byte for byte.
#[test]
fn lists_and_buffers_land_in_the_ring_in_order() {
    let ring = TestRing::new("sinkorder", 8, 256);
    let mut h = harness(&ring, true);
    let sink = h.element().unwrap();
    let pad = h.srcpad().unwrap();
    pad.push_list(list_of(0..40, 30)).unwrap();
    h.push(gst::Buffer::from_mut_slice(rtp_packet(40, 30))).unwrap();
    pad.push_list(list_of(41..100, 30)).unwrap();
    let got = drain(&ring);
    assert_eq!(got.len(), 100);
    for (i, p) in got.iter().enumerate() {
        assert_eq!(p, &rtp_packet(i as u16, 30));
    }
    assert_eq!(stat(&sink, "lists-received"), 2);
    assert_eq!(stat(&sink, "batches-pushed"), 3, "one push per list, one for the single buffer");
    assert_eq!(stat(&sink, "packets-pushed"), 100);
    assert_eq!(stat(&sink, "pushed-packets"), 100, "the ring's own counter");
}

/// block=false: what does not fit into a full ring is dropped and counted, the rest pushed.
#[test]
fn non_blocking_sink_drops_and_counts_on_a_full_ring() {
    let ring = TestRing::new("sinkdrop", 4, 128); // 16 slots
    let h = harness(&ring, false);
    let sink = h.element().unwrap();
    h.srcpad().unwrap().push_list(list_of(0..20, 0)).unwrap();
    assert_eq!(stat(&sink, "packets-pushed"), 16);
    assert_eq!(stat(&sink, "dropped-full"), 4);
    let got = drain(&ring);
    assert_eq!(got.iter().map(|p| seq_of(p)).collect::<Vec<_>>(), (0..16).collect::<Vec<u16>>());
}

/// block=true: a full ring holds the render until a consumer frees slots; nothing is dropped.
#[test]
fn blocking_sink_waits_for_room() {
    let ring = TestRing::new("sinkblock", 4, 128); // 16 slots
    let h = harness(&ring, true);
    let sink = h.element().unwrap();
    let path = ring.path.clone();
    let reader = std::thread::spawn(move || {
        let ch = rtpmgr::Channel::open(&rtpmgr::Backend::shm_at(path)).unwrap();
        let mut rx = ch.consumer().unwrap();
        let mut seqs = Vec::new();
        std::thread::sleep(Duration::from_millis(100)); // let the sink fill the ring and wait
        while seqs.len() < 40 {
            for s in rx.pop_batch_wait(8, Some(Duration::from_secs(5))).unwrap() {
                seqs.push(seq_of(s.data()));
            }
        }
        seqs
    });
    h.srcpad().unwrap().push_list(list_of(0..40, 0)).unwrap();
    let seqs = reader.join().unwrap();
    assert_eq!(seqs, (0..40).collect::<Vec<u16>>());
    assert_eq!(stat(&sink, "dropped-full"), 0);
    assert!(stat(&sink, "full-waits") >= 1, "the sink waited on the full ring");
}

/// A blocked render returns when the pipeline stops (unlock), within the wait timeout.
#[test]
fn blocked_sink_unblocks_on_null() {
    init();
    let ring = TestRing::new("sinkunlock", 2, 128); // 4 slots
    let h = harness(&ring, true);
    let pad = h.srcpad().unwrap();
    let pusher = std::thread::spawn(move || pad.push_list(list_of(0..10, 0)));
    std::thread::sleep(Duration::from_millis(100));
    let sink = h.element().unwrap();
    sink.set_state(gst::State::Null).unwrap();
    let r = pusher.join().unwrap();
    assert_eq!(r, Err(gst::FlowError::Flushing));
    assert_eq!(ring.status().ready, 4);
    assert_eq!(ring.status().producing, 0, "no slot left reserved after NULL");
}

/// A packet larger than a slot is dropped, counted, and warned about once.
#[test]
fn oversize_packets_are_dropped_with_a_warning() {
    let ring = TestRing::new("sinkbig", 4, 64);
    let h = harness(&ring, true);
    let sink = h.element().unwrap();
    let bus = gst::Bus::new();
    sink.set_bus(Some(&bus));
    let mut list = list_of(0..3, 0);
    list.get_mut().unwrap().insert(1, gst::Buffer::from_mut_slice(rtp_packet(99, 200)));
    h.srcpad().unwrap().push_list(list).unwrap();
    assert_eq!(stat(&sink, "dropped-oversize"), 1);
    assert_eq!(stat(&sink, "packets-pushed"), 3);
    let msg = bus.timed_pop_filtered(gst::ClockTime::from_seconds(1), &[gst::MessageType::Warning]).unwrap();
    let gst::MessageView::Warning(w) = msg.view() else { unreachable!() };
    assert!(w.debug().unwrap().contains("216-byte packet does not fit 64-byte slots"), "{:?}", w.debug());
    assert_eq!(drain(&ring).iter().map(|p| seq_of(p)).collect::<Vec<_>>(), vec![0, 1, 2]);
}

/// A stopped channel is started by the sink unless start-channel=false, which then fails with
/// an error naming the ring.
#[test]
fn stopped_channel_is_started_or_refused() {
    init();
    let ring = TestRing::new("sinkstop", 4, 128);
    ring.channel.stop().unwrap();
    let p = gst::parse::launch(&format!(
        "fakesrc num-buffers=1 ! rtpmgrsink shm-name={} start-channel=false",
        ring.shm_name()
    ))
    .unwrap();
    p.set_state(gst::State::Playing).unwrap();
    let err = bus_error(&p.bus().unwrap()).expect("an error");
    assert!(err.contains(ring.shm_name()) && err.contains("EPIPE"), "{err}");
    p.set_state(gst::State::Null).unwrap();
    assert!(!ring.channel.is_running().unwrap());

    let p = gst::parse::launch(&format!(
        "fakesrc num-buffers=1 sizetype=fixed sizemax=20 ! rtpmgrsink shm-name={}",
        ring.shm_name()
    ))
    .unwrap();
    p.set_state(gst::State::Playing).unwrap();
    let msg = p
        .bus()
        .unwrap()
        .timed_pop_filtered(gst::ClockTime::from_seconds(5), &[gst::MessageType::Eos, gst::MessageType::Error]);
    assert!(matches!(msg.unwrap().view(), gst::MessageView::Eos(_)));
    p.set_state(gst::State::Null).unwrap();
    assert!(ring.channel.is_running().unwrap());
    assert_eq!(ring.status().ready, 1);
}

/// Round trip: an RTP stream from a real payloader through rtpmgrsink, the ring and rtpmgrsrc
/// into rtpjitterbuffer: every packet once, in sequence.
#[test]
fn sink_to_src_round_trip_through_one_ring() {
    init();
    let ring = TestRing::new("roundtrip", 8, 2048);
    let caps = "application/x-rtp,media=audio,clock-rate=44100,encoding-name=L16,channels=1,payload=96";
    let rx = gst::parse::launch(&format!(
        "rtpmgrsrc shm-name={} caps=\"{caps}\" wait-timeout=10 ! rtpjitterbuffer latency=100 ! fakesink name=out \
         sync=false signal-handoffs=true",
        ring.shm_name()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let seqs = Arc::new(Mutex::new(Vec::<u16>::new()));
    let s = seqs.clone();
    rx.by_name("out").unwrap().connect("handoff", false, move |args| {
        let b = args[1].get::<gst::Buffer>().unwrap();
        s.lock().unwrap().push(seq_of(&b.map_readable().unwrap()));
        None
    });
    rx.set_state(gst::State::Playing).unwrap();
    let tx = gst::parse::launch(&format!(
        "audiotestsrc num-buffers=200 samplesperbuffer=441 ! audio/x-raw,format=S16BE,channels=1,rate=44100 ! \
         rtpL16pay ! rtpmgrsink shm-name={} sync=false",
        ring.shm_name()
    ))
    .unwrap();
    tx.set_state(gst::State::Playing).unwrap();
    let eos = tx
        .bus()
        .unwrap()
        .timed_pop_filtered(gst::ClockTime::from_seconds(10), &[gst::MessageType::Eos, gst::MessageType::Error]);
    assert!(matches!(eos.unwrap().view(), gst::MessageView::Eos(_)), "the sender finishes");
    tx.set_state(gst::State::Null).unwrap();
    wait_for("200 packets out of the jitterbuffer", || seqs.lock().unwrap().len() >= 200);
    std::thread::sleep(Duration::from_millis(200));
    rx.set_state(gst::State::Null).unwrap();
    let seqs = seqs.lock().unwrap();
    assert_eq!(seqs.len(), 200, "each packet once");
    for w in seqs.windows(2) {
        assert_eq!(w[1], w[0].wrapping_add(1), "in sequence");
    }
    assert_eq!(ring.status().consuming, 0);
    assert_eq!(ring.channel.stats().unwrap().released, 200);
}

/// The sink claims the ring's producer role: a second producer is refused at start, by name.
#[test]
fn a_second_sink_on_one_ring_is_refused() {
    init();
    let ring = TestRing::new("sinkrole", 4, 128);
    let launch = || {
        gst::parse::launch(&format!("fakesrc is-live=true ! rtpmgrsink shm-name={} async=false", ring.shm_name()))
            .unwrap()
    };
    let first = launch();
    first.set_state(gst::State::Playing).unwrap();
    let second = launch();
    assert!(second.set_state(gst::State::Playing).is_err(), "a second producer must not start");
    let err = bus_error(&second.bus().unwrap()).expect("an error on the bus");
    assert!(err.contains("already has a producer") && err.contains(ring.shm_name()), "{err}");
    second.set_state(gst::State::Null).unwrap();
    first.set_state(gst::State::Null).unwrap();
}

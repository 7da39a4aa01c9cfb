// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! rtpmgrsrc on the shm backend: gst_check::Harness and real pipelines.

mod common;

use common::*;
use gst::prelude::*;
use gstreamer as gst;
use gstreamer_check as gst_check;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn harness(ring: &TestRing, batch: u32) -> gst_check::Harness {
    init();
    let mut h = gst_check::Harness::new("rtpmgrsrc");
    let src = h.element().expect("harness element");
    src.set_property("shm-name", ring.shm_name());
    src.set_property("batch-size", batch);
    src.set_property("wait-timeout", 10u32);
    h.play();
    h
}

/// Every packet arrives once, in order, and a batch that is waiting in the ring goes out as
/// buffer lists of at most batch-size.
#[test]
fn every_packet_once_in_order_in_lists() {
    let ring = TestRing::new("order", 9, 256);
    let mut h = harness(&ring, 16);
    let lists = Arc::new(Mutex::new(Vec::new()));
    let l = lists.clone();
    let src = h.element().unwrap();
    src.static_pad("src").unwrap().add_probe(gst::PadProbeType::BUFFER_LIST, move |_, info| {
        if let Some(gst::PadProbeData::BufferList(list)) = &info.data {
            l.lock().unwrap().push(list.len());
        }
        gst::PadProbeReturn::Ok
    });
    ring.send(0..300, 20);
    for want in 0..300u16 {
        let b = h.pull().expect("a buffer within the harness timeout");
        let m = b.map_readable().unwrap();
        assert_eq!(seq_of(&m), want, "packets in ring order, each once");
        assert_eq!(m.len(), 12 + 4 + 20);
    }
    assert!(h.try_pull().is_none(), "no packet twice");
    let lists = lists.lock().unwrap();
    assert_eq!(lists.iter().sum::<usize>(), 300);
    assert!(lists.iter().all(|&n| (1..=16).contains(&n)), "lists of at most batch-size: {lists:?}");
    assert!(lists.len() < 300, "packets waiting in the ring go out batched: {} lists", lists.len());
    let stats = src.property::<gst::Structure>("stats");
    assert_eq!(stats.get::<u64>("buffers-pushed").unwrap(), 300);
    assert_eq!(stats.get::<u64>("lists-pushed").unwrap(), lists.len() as u64);
    assert_eq!(stats.get::<u64>("popped-packets").unwrap(), 300, "ring counters in stats: {stats}");
    assert_eq!(stats.get::<String>("ring").unwrap(), format!("shm:{}", ring.shm_name()));
}

/// A buffer's memory is its slot's payload in the ring mapping (no copy), and the slot stays
/// CONSUMING until the last reference to the buffer is dropped.
#[test]
fn buffers_are_the_slots_zero_copy() {
    let ring = TestRing::new("zc", 6, 512);
    let mut h = harness(&ring, 8);
    ring.send(0..4, 100);
    let bufs: Vec<gst::Buffer> = (0..4).map(|_| h.pull().unwrap()).collect();
    let stride = ring.channel.map().unwrap().layout().slot_stride as u64;
    let mut file_offsets = Vec::new();
    for b in &bufs {
        assert_eq!(b.n_memory(), 1);
        let m = b.map_readable().unwrap();
        let (path, off) = mapping_of(m.as_ptr() as usize).expect("buffer memory is mapped");
        assert!(same_file(&path, &ring.path), "buffer memory lies in {}, not in the ring file", path.display());
        file_offsets.push(off);
    }
    for w in file_offsets.windows(2) {
        assert_eq!(w[1] - w[0], stride, "consecutive packets sit in consecutive slots of the ring file");
    }
    assert_eq!(ring.status().consuming, 4, "GStreamer holds the 4 slots");
    let copy = bufs[0].clone();
    drop(bufs);
    // Released slots are queued and flushed in batches; an idle wait flushes them.
    wait_for("3 slots back", || ring.status().consuming == 1);
    drop(copy);
    wait_for("the last slot back", || ring.status().consuming == 0);
    assert_eq!(ring.channel.stats().unwrap().released, 4);
}

/// A pipeline whose sink is stalled holds slots; NULL gives every one back.
#[test]
fn no_slot_held_after_null() {
    init();
    let ring = TestRing::new("null", 7, 256);
    let p = gst::parse::launch(&format!(
        "rtpmgrsrc name=src shm-name={} wait-timeout=10 ! queue name=q max-size-buffers=0 max-size-bytes=0 \
         max-size-time=0 ! fakesink name=sink sync=false",
        ring.shm_name()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let sink_pad = p.by_name("sink").unwrap().static_pad("sink").unwrap();
    // Block the sink: everything piles up in the queue, i.e. in slots.
    // Buffers only: a blocked event would also hold up the source's serialized allocation query.
    let block = gst::PadProbeType::BLOCK | gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST;
    let _probe = sink_pad.add_probe(block, |_, _| gst::PadProbeReturn::Ok).unwrap();
    p.set_state(gst::State::Playing).unwrap();
    ring.send(0..50, 0);
    wait_for("the slots held downstream", || ring.status().consuming >= 49);
    p.set_state(gst::State::Null).unwrap();
    assert_eq!(ring.status().consuming, 0, "no slot held after NULL");
    assert_eq!(ring.status().ready, 0);
    assert_eq!(ring.channel.stats().unwrap().released, 50);
}

/// PLAYING -> PAUSED -> PLAYING and PLAYING -> READY -> PLAYING lose nothing: what arrives while
/// paused or stopped waits in the ring and comes out after, in order, once. (Flush events sent
/// by the application into a running pipeline can deadlock GStreamer 1.22's latency handling,
/// and the live source is not seekable, so the flush is the one of a state change.)
#[test]
fn pause_and_state_cycles_lose_nothing() {
    init();
    let ring = TestRing::new("cycle", 9, 256);
    let p = gst::parse::launch(&format!(
        "rtpmgrsrc name=src shm-name={} wait-timeout=10 ! fakesink name=sink sync=false signal-handoffs=true",
        ring.shm_name()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let got = Arc::new(Mutex::new(Vec::<u16>::new()));
    let g = got.clone();
    p.by_name("sink").unwrap().connect("handoff", false, move |args| {
        let b = args[1].get::<gst::Buffer>().unwrap();
        g.lock().unwrap().push(seq_of(&b.map_readable().unwrap()));
        None
    });
    let count = || got.lock().unwrap().len();
    p.set_state(gst::State::Playing).unwrap();
    ring.send(0..100, 0);
    wait_for("the first 100", || count() == 100);

    p.set_state(gst::State::Paused).unwrap();
    ring.send(100..200, 0);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(count(), 100, "a paused live source pushes nothing");
    // GstBaseSrc does not unlock a live source's create on PLAYING -> PAUSED: one batch may be
    // popped and held by it until PLAYING; the rest waits in the ring.
    assert!(ring.status().ready >= 100 - 32, "the packets sent while paused wait in the ring: {:?}", ring.status());
    p.set_state(gst::State::Playing).unwrap();
    wait_for("200 after resuming", || count() == 200);

    // PLAYING -> READY closes the ring (a flush of everything downstream): what arrives
    // meanwhile waits in the ring and comes out after PLAYING again.
    p.set_state(gst::State::Ready).unwrap();
    assert_eq!(ring.status().consuming, 0, "READY holds no slot");
    ring.send(200..300, 0);
    p.set_state(gst::State::Playing).unwrap();
    wait_for("300 after READY", || count() == 300);

    p.set_state(gst::State::Null).unwrap();
    let got = got.lock().unwrap();
    assert_eq!(*got, (0..300).collect::<Vec<u16>>(), "each packet once, in order");
    assert_eq!(ring.status().consuming, 0);
}

/// PTS and DTS are the arrival time as running time: not after the moment the buffer reaches
/// the sink, and not long before it (the packets were sent just before).
#[test]
fn timestamps_are_arrival_running_time() {
    init();
    let ring = TestRing::new("ts", 6, 256);
    let p = gst::parse::launch(&format!(
        "rtpmgrsrc name=src shm-name={} ! fakesink name=sink sync=false signal-handoffs=true",
        ring.shm_name()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let sink = p.by_name("sink").unwrap();
    sink.connect("handoff", false, move |args| {
        let e = args[0].get::<gst::Element>().unwrap();
        let b = args[1].get::<gst::Buffer>().unwrap();
        let now = e.current_running_time().unwrap();
        s.lock().unwrap().push((b.pts(), b.dts(), now));
        None
    });
    p.set_state(gst::State::Playing).unwrap();
    // The live source plays at once; the sink would wait for a first buffer to preroll.
    let src = p.by_name("src").unwrap();
    wait_for("the source PLAYING", || src.current_state() == gst::State::Playing);
    std::thread::sleep(Duration::from_millis(200));
    ring.send(0..5, 0);
    wait_for("5 buffers", || seen.lock().unwrap().len() == 5);
    p.set_state(gst::State::Null).unwrap();
    for &(pts, dts, now) in seen.lock().unwrap().iter() {
        let pts = pts.expect("PTS set");
        assert_eq!(Some(pts), dts, "DTS = PTS = arrival");
        assert!(pts <= now, "arrival {pts} after the sink saw it at {now}");
        assert!(now - pts < gst::ClockTime::from_mseconds(150), "arrival {pts} far before {now}");
        assert!(pts >= gst::ClockTime::from_mseconds(150), "arrival {pts}: the packets were sent 200 ms in");
    }
}

/// do-timestamp=false leaves buffers untimestamped.
#[test]
fn do_timestamp_false_leaves_no_timestamps() {
    let ring = TestRing::new("nots", 6, 256);
    init();
    let mut h = gst_check::Harness::new("rtpmgrsrc");
    let src = h.element().unwrap();
    src.set_property("shm-name", ring.shm_name());
    src.set_property("do-timestamp", false);
    h.play();
    ring.send(0..3, 0);
    // GstBaseSrc stamps the first buffer of a stream with the segment start (0) itself.
    let first = h.pull().unwrap();
    assert_eq!((first.pts(), first.dts()), (Some(gst::ClockTime::ZERO), Some(gst::ClockTime::ZERO)));
    for _ in 1..3 {
        let b = h.pull().unwrap();
        assert_eq!((b.pts(), b.dts()), (None, None), "no arrival time with do-timestamp=false");
    }
}

/// The latency query says live, with the coalesce time as minimum.
#[test]
fn latency_is_live_with_coalesce_time_as_minimum() {
    init();
    let ring = TestRing::new("lat", 6, 256);
    for coalesce_ms in [0u64, 5] {
        let p = gst::parse::launch(&format!(
            "rtpmgrsrc name=src shm-name={} coalesce-time={} ! fakesink",
            ring.shm_name(),
            coalesce_ms * 1_000_000
        ))
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
        p.set_state(gst::State::Playing).unwrap();
        let src = p.by_name("src").unwrap();
        wait_for("the source PLAYING", || src.current_state() == gst::State::Playing);
        let mut q = gst::query::Latency::new();
        assert!(src.static_pad("src").unwrap().query(&mut q));
        let (live, min, max) = q.result();
        assert!(live);
        assert_eq!(min, gst::ClockTime::from_mseconds(coalesce_ms));
        assert_eq!(max, None);
        p.set_state(gst::State::Null).unwrap();
    }
}

/// coalesce-time fills a batch from packets that trickle in.
#[test]
fn coalesce_time_fills_batches() {
    let ring = TestRing::new("coal", 8, 256);
    init();
    let mut h = gst_check::Harness::new("rtpmgrsrc");
    let src = h.element().unwrap();
    src.set_property("shm-name", ring.shm_name());
    src.set_property("batch-size", 8u32);
    src.set_property("coalesce-time", 500_000_000u64);
    let lists = Arc::new(AtomicU64::new(0));
    let l = lists.clone();
    src.static_pad("src").unwrap().add_probe(gst::PadProbeType::BUFFER_LIST, move |_, _| {
        l.fetch_add(1, Ordering::Relaxed);
        gst::PadProbeReturn::Ok
    });
    h.play();
    let path = ring.path.clone();
    let sender = std::thread::spawn(move || {
        let ch = rtpmgr::Channel::open(&rtpmgr::Backend::shm_at(path)).unwrap();
        let mut tx = ch.producer().unwrap();
        for s in 0..8u16 {
            tx.write(&rtp_packet(s, 0)).unwrap();
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    for want in 0..8u16 {
        assert_eq!(seq_of(&h.pull().unwrap().map_readable().unwrap()), want);
    }
    sender.join().unwrap();
    assert_eq!(lists.load(Ordering::Relaxed), 1, "8 packets 10 ms apart coalesce into one list");
}

/// A missing device or a bad shm-name fails the state change with an error naming it.
#[test]
fn bad_locations_fail_with_clear_errors() {
    init();
    for (props, expect) in [
        ("device=/nonexistent/rtp_mgr7", "/nonexistent/rtp_mgr7"),
        ("shm-name=\"\"", "shm-name is empty"),
        ("channel=4242", "/dev/rtp_mgr4242"),
    ] {
        let p = gst::parse::launch(&format!("rtpmgrsrc {props} ! fakesink")).unwrap();
        assert!(p.set_state(gst::State::Playing).is_err(), "{props}: must not start");
        let err = bus_error(&p.bus().unwrap()).unwrap_or_else(|| panic!("{props}: an error on the bus"));
        assert!(err.contains(expect), "{props}: error {err:?} does not name {expect:?}");
        p.set_state(gst::State::Null).unwrap();
    }
}

/// Out-of-range numbers are refused (GObject checks the ranges): the property keeps its value and
/// a warning names it.
#[test]
fn out_of_range_properties_are_refused() {
    init();
    let warnings = Arc::new(Mutex::new(Vec::<String>::new()));
    let w = warnings.clone();
    let handler = gst::glib::log_set_handler(
        Some("GLib-GObject"),
        gst::glib::LogLevels::LEVEL_WARNING | gst::glib::LogLevels::LEVEL_CRITICAL,
        false,
        false,
        move |_, _, msg| w.lock().unwrap().push(msg.to_string()),
    );
    for (prop, bad) in
        [("batch-size", "0"), ("batch-size", "5000"), ("wait-timeout", "0"), ("coalesce-time", "2000000000")]
    {
        let p = gst::parse::launch(&format!("rtpmgrsrc name=src {prop}={bad} ! fakesink"))
            .unwrap()
            .downcast::<gst::Pipeline>()
            .unwrap();
        let src = p.by_name("src").unwrap();
        let default = src.find_property(prop).unwrap().default_value().clone();
        let now = src.property_value(prop);
        assert_eq!(now.serialize().unwrap(), default.serialize().unwrap(), "{prop}={bad} was applied");
        let w = warnings.lock().unwrap();
        assert!(
            w.iter().any(|m| m.contains(prop) && m.contains(bad)),
            "{prop}={bad}: no warning naming it among {w:?}"
        );
    }
    gst::glib::log_remove_handler(Some("GLib-GObject"), handler);
}

/// The source claims the ring's consumer role: a second consumer is refused at start, by name.
#[test]
fn a_second_source_on_one_ring_is_refused() {
    init();
    let ring = TestRing::new("role", 6, 256);
    let launch = || gst::parse::launch(&format!("rtpmgrsrc shm-name={} ! fakesink", ring.shm_name())).unwrap();
    let first = launch();
    first.set_state(gst::State::Playing).unwrap();
    let second = launch();
    assert!(second.set_state(gst::State::Playing).is_err(), "a second consumer must not start");
    let err = bus_error(&second.bus().unwrap()).expect("an error on the bus");
    assert!(err.contains("already has a consumer") && err.contains(ring.shm_name()), "{err}");
    second.set_state(gst::State::Null).unwrap();
    first.set_state(gst::State::Null).unwrap();
    // The role goes with the element: a new source starts.
    let third = launch();
    third.set_state(gst::State::Playing).unwrap();
    third.set_state(gst::State::Null).unwrap();
}

/// A flushing harness on a ring already holding `seqs`, whose src pad blocks (as a slow downstream
/// would) the list with index `block_list` (0-based), letting every other list pass.
fn harness_blocking_one_list(ring: &TestRing, batch: u32, block_list: u64) -> (gst_check::Harness, gst::PadProbeId) {
    init();
    let mut h = gst_check::Harness::new("rtpmgrsrc");
    let src = h.element().unwrap();
    src.set_property("shm-name", ring.shm_name());
    src.set_property("batch-size", batch);
    src.set_property("wait-timeout", 10u32);
    let seen = AtomicU64::new(0);
    let probe = src
        .static_pad("src")
        .unwrap()
        .add_probe(gst::PadProbeType::BLOCK | gst::PadProbeType::BUFFER_LIST, move |_, _| {
            if seen.fetch_add(1, Ordering::Relaxed) == block_list {
                gst::PadProbeReturn::Ok
            } else {
                gst::PadProbeReturn::Pass
            }
        })
        .unwrap();
    h.play();
    (h, probe)
}

/// Pulls `seqs` from the harness, each once and in order, and drops them (their slots go back).
fn pull_in_order(h: &mut gst_check::Harness, seqs: std::ops::Range<u16>, what: &str) -> Vec<gst::Buffer> {
    let mut first = Vec::new();
    for want in seqs {
        let b = h.pull().unwrap_or_else(|_| panic!("{what}: packet {want} within the harness timeout"));
        assert_eq!(seq_of(&b.map_readable().unwrap()), want, "{what}: each packet once, in order");
        if first.is_empty() {
            first.push(b);
        }
    }
    first
}

fn stat(src: &gst::Element, field: &str) -> u64 {
    let stats = src.property::<gst::Structure>("stats");
    stats.get::<u64>(field).unwrap_or_else(|e| panic!("stats field {field}: {e} in {stats}"))
}

/// A flush while a list is in flight (held at the src pad by a slow downstream) drops that list
/// and nothing else: it is counted in `buffers-flushed`, the packets still READY in the ring are
/// kept and come out after the flush, in order, once; then no slot is held and new packets flow.
/// Both ways an application flushes a live source: a flushing seek sent to the element, and
/// FLUSH_START/FLUSH_STOP sent to it. (Through a harness: in a pipeline, a flush-stop that resets
/// the time also resets the pipeline's clock, unrelated to what the element does.)
#[test]
fn a_flush_loses_only_the_list_in_flight() {
    for (kind, seek) in [("flushing seek", true), ("flush-start/stop", false)] {
        let ring = TestRing::new("flush", 9, 256);
        ring.send(0..200, 0);
        // Batches of 8 from a ring holding 200: lists 0..8, 8..16, ...; the sixth (40..48) blocks.
        let (mut h, block) = harness_blocking_one_list(&ring, 8, 5);
        let src = h.element().unwrap();
        let pad = src.static_pad("src").unwrap();
        drop(pull_in_order(&mut h, 0..40, kind));
        wait_for("the sixth list blocked at the src pad", || pad.is_blocking());
        assert_eq!(ring.status().ready, 200 - 48, "{kind}: 6 lists popped, the rest READY in the ring");

        if seek {
            let seek = gst::event::Seek::new(
                1.0,
                gst::SeekFlags::FLUSH,
                gst::SeekType::Set,
                gst::ClockTime::ZERO,
                gst::SeekType::None,
                gst::ClockTime::NONE,
            );
            assert!(src.send_event(seek), "a flushing seek to 0 (a live source's only position) is accepted");
        } else {
            assert!(src.send_event(gst::event::FlushStart::new()));
            assert!(src.send_event(gst::event::FlushStop::new(true)));
        }
        let first = pull_in_order(&mut h, 48..200, kind);
        assert!(first[0].flags().contains(gst::BufferFlags::DISCONT), "{kind}: the first buffer after it is DISCONT");
        drop(first);
        assert!(h.try_pull().is_none(), "{kind}: no packet twice");

        assert_eq!(stat(&src, "buffers-flushed"), 8, "{kind}: the list in flight, and only it, is flushed");
        assert_eq!(stat(&src, "lists-flushed"), 1);
        assert_eq!(stat(&src, "buffers-pushed"), 192);
        assert_eq!(stat(&src, "popped-packets"), 200, "{kind}: every popped packet is pushed or flushed");
        wait_for("no slot held after the flush", || ring.status().consuming == 0);
        assert_eq!(ring.channel.stats().unwrap().released, 200);

        // A flush while the source waits for packets: nothing in hand, nothing flushed.
        pad.remove_probe(block);
        assert!(src.send_event(gst::event::FlushStart::new()));
        assert!(src.send_event(gst::event::FlushStop::new(true)));
        ring.send(200..210, 0);
        let first = pull_in_order(&mut h, 200..210, kind);
        assert!(!first[0].flags().contains(gst::BufferFlags::DISCONT), "{kind}: an idle flush leaves no gap");
        drop(first);
        assert_eq!(stat(&src, "buffers-flushed"), 8, "{kind}: an idle flush drops nothing");
        assert_eq!(stat(&src, "buffers-pushed"), 202);
        src.set_state(gst::State::Null).unwrap();
        assert_eq!(ring.status().consuming, 0, "{kind}: no slot held after NULL");
    }
}

/// PLAYING -> PAUSED -> PLAYING and PLAYING -> NULL -> PLAYING with a list in flight: NULL drops
/// that list (counted as flushed) and holds no slot; the packets READY in the ring come out after
/// PLAYING again; what arrives while paused waits; nothing twice, nothing else lost.
#[test]
fn state_cycles_with_a_list_in_flight() {
    let ring = TestRing::new("states", 9, 256);
    ring.send(0..100, 0);
    // The third list (16..24) blocks at the src pad.
    let (mut h, _block) = harness_blocking_one_list(&ring, 8, 2);
    let src = h.element().unwrap();
    let pad = src.static_pad("src").unwrap();
    drop(pull_in_order(&mut h, 0..16, "before the cycles"));
    wait_for("the third list blocked at the src pad", || pad.is_blocking());

    // A paused live source neither pushes nor drops: the list stays in flight.
    src.set_state(gst::State::Paused).unwrap();
    src.set_state(gst::State::Playing).unwrap();
    assert!(pad.is_blocking(), "PAUSED -> PLAYING leaves the list in flight");
    assert_eq!(stat(&src, "buffers-flushed"), 0);

    src.set_state(gst::State::Null).unwrap();
    assert_eq!(ring.status().consuming, 0, "no slot held after NULL");
    assert_eq!(ring.status().ready, 100 - 24, "NULL keeps the READY packets in the ring");
    assert_eq!(stat(&src, "buffers-flushed"), 8, "NULL drops the list in flight, counted");

    h.play();
    let first = pull_in_order(&mut h, 24..100, "after NULL -> PLAYING");
    assert!(first[0].flags().contains(gst::BufferFlags::DISCONT), "the gap of the flushed list is marked");
    drop(first);

    // PAUSED while idle: what arrives meanwhile waits (at most one batch is popped and held by
    // the paused source) and comes out after PLAYING, in order.
    src.set_state(gst::State::Paused).unwrap();
    ring.send(100..150, 0);
    std::thread::sleep(Duration::from_millis(50));
    assert!(h.try_pull().is_none(), "a paused live source pushes nothing");
    src.set_state(gst::State::Playing).unwrap();
    drop(pull_in_order(&mut h, 100..150, "after PAUSED -> PLAYING"));
    assert!(h.try_pull().is_none(), "no packet twice");

    assert_eq!(stat(&src, "buffers-pushed"), 142);
    assert_eq!(stat(&src, "buffers-flushed"), 8);
    assert_eq!(ring.channel.stats().unwrap().popped_packets, 150, "every popped packet is pushed or flushed");
    src.set_state(gst::State::Null).unwrap();
    assert_eq!(ring.status().consuming, 0, "no slot held after NULL");
    assert_eq!(ring.status().ready, 0);
}

//! The conformance suite of the ring: one set of tests, run against either backend.
//!
//! ```text
//! cargo test -p rtpmgr --test conformance                        # shm backend (host default)
//! RTPMGR_TEST_BACKEND=kernel RTPMGR_TEST_CHANNEL=3 ./conformance-<hash> --test-threads=1
//! ```
//!
//! Backend from `RTPMGR_TEST_BACKEND` (`shm`, default, or `kernel`). The kernel backend uses
//! `/dev/rtp_mgr$RTPMGR_TEST_CHANNEL` (default 0): pick a channel no service uses, the suite
//! stops, reconfigures and resets it. Kernel tests are serialised on that one channel (a global
//! lock); shm tests each get their own ring file and run in parallel.
//!
//! The errnos asserted here are those of `include/rtp_mgr_ioctl.h`. Nothing here assumes a host:
//! the same binary, cross-compiled, runs in the aarch64 guest.

use nix::errno::Errno;
use rtpmgr::abi::*;
use rtpmgr::{Backend, BackendKind, Channel, Config, DropPolicy, SlotOp, SlotRef};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "RTPMGR_CONFORMANCE_CHILD";
const CHILD_PATH_ENV: &str = "RTPMGR_CONFORMANCE_PATH";

fn kind() -> BackendKind {
    match std::env::var("RTPMGR_TEST_BACKEND").as_deref() {
        Ok("kernel") => BackendKind::Kernel,
        Ok("shm") | Err(_) => BackendKind::Shm,
        Ok(other) => panic!("RTPMGR_TEST_BACKEND={other:?}: use shm or kernel"),
    }
}

static KERNEL_LOCK: Mutex<()> = Mutex::new(());

/// One test's channel: configured, reset and started; on drop, a kernel channel gets its previous
/// configuration and run state back (empty), so tools run after the suite find it as it was.
struct Fx {
    backend: Backend,
    ch: Channel,
    restore: Option<(Config, bool)>,
    _serial: Option<MutexGuard<'static, ()>>,
}

impl Fx {
    fn new(name: &str, cfg: Config) -> Fx {
        let (backend, serial) = match kind() {
            BackendKind::Kernel => {
                let n: u32 = std::env::var("RTPMGR_TEST_CHANNEL").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
                (Backend::kernel(n), Some(KERNEL_LOCK.lock().unwrap_or_else(|p| p.into_inner())))
            }
            BackendKind::Shm => {
                let path = rtpmgr::shm_dir().join(format!("rtpmgr-conf-{}-{name}", std::process::id()));
                let _ = std::fs::remove_file(&path);
                (Backend::shm_at(path).with_create_config(cfg), None)
            }
        };
        let ch = Channel::open(&backend).unwrap_or_else(|e| panic!("open {backend:?}: {e}"));
        let restore = match kind() {
            BackendKind::Kernel => Some((ch.config().unwrap(), ch.is_running().unwrap())),
            BackendKind::Shm => None,
        };
        ch.stop().unwrap();
        ch.configure(&cfg).unwrap_or_else(|e| panic!("configure {cfg:?}: {e} (is the channel used by a service?)"));
        ch.reset().unwrap();
        ch.start().unwrap();
        Fx { backend, ch, restore, _serial: serial }
    }

    fn small(name: &str) -> Fx {
        Fx::new(name, Config { ring_order: 3, slot_payload: 256, drop_policy: DropPolicy::RejectNewest })
    }

    fn open_other(&self) -> Channel {
        Channel::open(&self.backend).unwrap()
    }
}

impl Drop for Fx {
    fn drop(&mut self) {
        let _ = self.ch.stop();
        if let Some((cfg, running)) = self.restore {
            // Best effort: a test that failed may still hold slots or mappings (EBUSY).
            let _ = self.ch.configure(&cfg);
            let _ = self.ch.reset();
            if running {
                let _ = self.ch.start();
            }
        }
        if let Backend::Shm { path, .. } = &self.backend {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn errno<T: std::fmt::Debug>(r: rtpmgr::Result<T>) -> Errno {
    r.expect_err("operation should have failed").errno()
}

/// A valid RTP v2 packet: payload type 96, SSRC 0x11223344, timestamp seq*160, 20 bytes.
fn rtp(seq: u16, marker: bool) -> Vec<u8> {
    let mut p = vec![0x80, if marker { 0xe0 } else { 0x60 }];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(seq as u32 * 160).to_be_bytes());
    p.extend_from_slice(&0x1122_3344u32.to_be_bytes());
    p.extend_from_slice(&[0xab; 8]);
    p
}

/// The raw slot API, for the ABI cases.
trait RawOps {
    fn raw_ops(&self) -> rtpmgr::Raw<'_>;
}

impl RawOps for Channel {
    fn raw_ops(&self) -> rtpmgr::Raw<'_> {
        // SAFETY: Channel::raw's contract holds for every case of this file: none moves
        // through the raw API a slot that one of its guards holds (the cases that mix the two
        // use guards and raw operations on different slots, or raw calls the ring refuses).
        unsafe { self.raw() }
    }
}

fn push_raw(ch: &Channel, ring: &rtpmgr::Ring, data: &[u8]) -> u32 {
    let s = ch.raw_ops().reserve().unwrap();
    let dst = ring.payload_ptr(s.index);
    // SAFETY: the slot was just reserved by this channel (PRODUCING, ours), so nobody else
    // touches its payload; data fits (tests use small packets).
    unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), dst, data.len()) };
    ch.raw_ops().push(s.index, data.len() as u32, 0).unwrap();
    s.index
}

// ---------------------------------------------------------------------------------------------

#[test]
#[cfg_attr(miri, ignore = "Miri cannot map files: every case runs on a shm ring file or the device")]
fn info_header_and_layout_agree() {
    let fx = Fx::small("info");
    let info = fx.ch.info().unwrap();
    assert_eq!((info.abi_major, info.abi_minor), (RTPM_ABI_MAJOR, RTPM_ABI_MINOR));
    assert_eq!(info.state, RTPM_STATE_RUNNING);
    assert_eq!(info.config.ring_order, 3);
    assert_eq!(info.slot_count, 8);
    assert_eq!(info.slot_stride % RTPM_SLOT_ALIGN, 0);
    assert!(info.slot_stride >= 256);
    assert_eq!(info.desc_size as usize, std::mem::size_of::<RtpmSlotDesc>());
    let ring = fx.ch.map().unwrap();
    let l = ring.layout();
    assert_eq!((l.slot_count, l.slot_payload, l.slot_stride), (8, 256, info.slot_stride));
    assert_eq!(l.payload_offset, info.payload_offset);
    assert_eq!(ring.indices(), [0, 0, 0, 0]);
    assert!(fx.ch.status().unwrap().mappings >= 1);
}

#[test]
#[cfg_attr(miri, ignore = "Miri cannot map files: every case runs on a shm ring file or the device")]
fn stopped_channel_refuses_reserve_and_push_but_drains() {
    let fx = Fx::small("stopped");
    let mut tx = fx.ch.producer().unwrap();
    let mut rx = fx.ch.consumer().unwrap();
    tx.write(b"before stop").unwrap();
    let held = tx.reserve().unwrap();
    fx.ch.stop().unwrap();
    assert_eq!(errno(tx.reserve_batch(4)), Errno::EPIPE);
    assert_eq!(errno(fx.ch.raw_ops().reserve()), Errno::EPIPE);
    let next = fx.ch.status().unwrap().reserve & 7;
    assert_eq!(errno(fx.ch.raw_ops().push(next, 10, 0)), Errno::EPIPE);
    // ABI 2.0: a slot reserved before STOP may still be pushed (or cancelled) after it.
    let mut held = held;
    held.fill(b"late").unwrap();
    tx.push(held).unwrap();
    // POP and RELEASE still work on a stopped channel: a consumer can drain it.
    let got = rx.pop_batch(8).unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!((got[0].data(), got[1].data()), (&b"before stop"[..], &b"late"[..]));
    drop(got);
    rx.flush().unwrap(); // dropping two guards may already have flushed (a quarter of the ring)
    assert_eq!(fx.ch.status().unwrap().consuming, 0);
    // EPIPE is flow control, not misuse.
    assert_eq!(fx.ch.stats().unwrap().illegal_ops, 0);
    fx.ch.start().unwrap();
    let mut s = tx.reserve().unwrap();
    s.fill(b"after start").unwrap();
    tx.push(s).unwrap();
    assert_eq!(rx.pop().unwrap().data(), b"after start");
}

#[test]
#[cfg_attr(miri, ignore = "Miri cannot map files: every case runs on a shm ring file or the device")]
fn fifo_order_lengths_and_arrival_times() {
    let fx = Fx::new("fifo", Config { ring_order: 5, slot_payload: 512, drop_policy: DropPolicy::RejectNewest });
    let mut tx = fx.ch.producer().unwrap();
    let mut rx = fx.ch.consumer().unwrap();
    let mut next_in = 0u32;
    let mut next_out = 0u32;
    let mut last_arrival = 0;
    while next_out < 1000 {
        if let Ok(mut slots) = tx.reserve_batch(7) {
            for s in &mut slots {
                let len = 4 + (next_in % 300) as usize;
                let mut data = vec![(next_in % 251) as u8; len];
                data[..4].copy_from_slice(&next_in.to_le_bytes());
                s.fill(&data).unwrap();
                next_in += 1;
            }
            let n = slots.len();
            assert_eq!(tx.push_batch(slots).unwrap(), n);
        }
        for s in rx.pop_batch(5).unwrap_or_default() {
            let seq = u32::from_le_bytes(s.data()[..4].try_into().unwrap());
            assert_eq!(seq, next_out, "slots must come out in push order");
            assert_eq!(s.len(), 4 + (seq % 300) as usize);
            assert_eq!(s.desc().len as usize, s.len());
            assert!(s.data()[4..].iter().all(|&b| b == (seq % 251) as u8));
            assert!(s.arrival_ns() >= last_arrival, "arrival_ns goes backwards");
            last_arrival = s.arrival_ns();
            next_out += 1;
        }
    }
    rx.flush().unwrap();
    let st = fx.ch.stats().unwrap();
    let status = fx.ch.status().unwrap();
    assert_eq!(st.popped_packets, 1000);
    assert_eq!(st.pushed_packets, st.popped_packets + st.drops + status.ready as u64);
}

#[test]
#[cfg_attr(miri, ignore = "Miri cannot map files: every case runs on a shm ring file or the device")]
fn explicit_arrival_time_is_kept_and_zero_is_stamped() {
    let fx = Fx::small("arrival");
    let mut tx = fx.ch.producer().unwrap();
    let mut rx = fx.ch.consumer().unwrap();
    let mut s = tx.reserve().unwrap();
    s.fill(b"stamped by me").unwrap();
    s.set_arrival_ns(123_456_789);
    tx.push(s).unwrap();
    let before = rtpmgr::monotonic_ns();
    tx.write(b"stamped by the ring").unwrap();
    let after = rtpmgr::monotonic_ns();
    let got = rx.pop_batch(2).unwrap();
    assert_eq!(got[0].arrival_ns(), 123_456_789);
    assert_eq!(got[0].desc().arrival_ns, 123_456_789);
    assert!((before..=after).contains(&got[1].arrival_ns()), "ring stamps CLOCK_MONOTONIC");
}

#[test]
#[cfg_attr(miri, ignore = "Miri cannot map files: every case runs on a shm ring file or the device")]
fn batch_partial_semantics() {
    let fx = Fx::small("partial");
    let raw = fx.ch.raw_ops();
    // RESERVE 10 on a ring of 8: the call succeeds with the 8 it could do.
    let mut refs = [SlotRef::default(); 10];
    assert_eq!(raw.batch(SlotOp::Reserve, &mut refs).unwrap(), 8);
    let idx: Vec<u32> = refs[..8].iter().map(|r| r.index).collect();
    assert_eq!(idx, (0..8).collect::<Vec<_>>(), "reserve hands out slots in ring order");
    assert!(refs[..8].iter().all(|r| r.len == 256));
    assert_eq!(fx.ch.stats().unwrap().overruns, 0, "a partial reserve is no overrun");
    // The next one gets nothing: EAGAIN, one overrun.
    assert_eq!(errno(raw.batch(SlotOp::Reserve, &mut refs[..4])), Errno::EAGAIN);
    assert_eq!(fx.ch.stats().unwrap().overruns, 1);

    // PUSH stops at the first bad entry (index 8 is out of range) and reports what it did.
    let mut push: Vec<SlotRef> = (0..8).map(|i| SlotRef::new(i, 16, 0)).collect();
    push[3].index = 99;
    assert_eq!(raw.batch(SlotOp::Push, &mut push).unwrap(), 3);
    assert_eq!(fx.ch.stats().unwrap().illegal_ops, 1);
    // A batch whose first entry fails fails with that entry's errno.
    assert_eq!(errno(raw.batch(SlotOp::Push, &mut push[3..])), Errno::EINVAL);
    assert_eq!(fx.ch.stats().unwrap().illegal_ops, 2);
    push[3].index = 3;
    assert_eq!(raw.batch(SlotOp::Push, &mut push[3..]).unwrap(), 5);
    assert_eq!(fx.ch.stats().unwrap().pushed_packets, 8);

    // POP 10 with 8 READY: 8. Then nothing: EAGAIN and one underrun.
    let mut pop = [SlotRef::default(); 10];
    assert_eq!(raw.batch(SlotOp::Pop, &mut pop).unwrap(), 8);
    assert_eq!(fx.ch.stats().unwrap().underruns, 0);
    assert_eq!(errno(raw.batch(SlotOp::Pop, &mut pop[..1])), Errno::EAGAIN);
    assert_eq!(fx.ch.stats().unwrap().underruns, 1);

    // RELEASE stops at a slot released twice.
    let mut rel: Vec<SlotRef> = pop[..8].to_vec();
    assert_eq!(raw.batch(SlotOp::Release, &mut rel[..2]).unwrap(), 2);
    assert_eq!(raw.batch(SlotOp::Release, &mut rel[1..]).err().map(|e| e.errno()), Some(Errno::EBADSLT));
    assert_eq!(raw.batch(SlotOp::Release, &mut rel[2..]).unwrap(), 6);

    // Over RTPM_BATCH_MAX: E2BIG, counted; an empty batch does nothing.
    let mut big = vec![SlotRef::default(); RTPM_BATCH_MAX as usize + 1];
    let before = fx.ch.stats().unwrap().illegal_ops;
    assert_eq!(errno(raw.batch(SlotOp::Pop, &mut big)), Errno::E2BIG);
    assert_eq!(fx.ch.stats().unwrap().illegal_ops, before + 1);
    assert_eq!(raw.batch(SlotOp::Pop, &mut []).unwrap(), 0);
    let st = fx.ch.stats().unwrap();
    assert_eq!((st.pushed_packets, st.popped_packets, st.released), (8, 8, 8));
}

#[test]
#[cfg_attr(miri, ignore = "Miri cannot map files: every case runs on a shm ring file or the device")]
fn ownership_and_state_errors_have_exact_errnos() {
    let fx = Fx::small("owner");
    let a = &fx.ch;
    let b = fx.open_other();
    let n0 = a.stats().unwrap().illegal_ops;

    let r = a.raw_ops().reserve().unwrap();
    // Another open file may not push a slot it did not reserve.
    assert_eq!(errno(b.raw_ops().push(r.index, 10, 0)), Errno::EPERM);
    // Index out of range, empty or oversized payloads.
    assert_eq!(errno(a.raw_ops().push(8, 10, 0)), Errno::EINVAL);
    assert_eq!(errno(a.raw_ops().push(r.index, 0, 0)), Errno::EINVAL);
    assert_eq!(errno(a.raw_ops().push(r.index, 257, 0)), Errno::EINVAL);
    // A FREE slot that is not the next one to reserve.
    assert_eq!(errno(a.raw_ops().push(5, 10, 0)), Errno::EBADSLT);
    a.raw_ops().push(r.index, 10, 0).unwrap();
    // READY slots cannot be pushed again or released.
    assert_eq!(errno(a.raw_ops().push(r.index, 10, 0)), Errno::EBADSLT);
    assert_eq!(errno(a.raw_ops().release(r.index)), Errno::EBADSLT);

    let p = a.raw_ops().pop().unwrap();
    assert_eq!(p.index, r.index);
    assert_eq!(p.len, 10);
    // Only the popping file may release it.
    assert_eq!(errno(b.raw_ops().release(p.index)), Errno::EPERM);
    assert_eq!(errno(a.raw_ops().release(8)), Errno::EINVAL);
    a.raw_ops().release(p.index).unwrap();
    assert_eq!(errno(a.raw_ops().release(p.index)), Errno::EBADSLT);
    assert_eq!(a.stats().unwrap().illegal_ops - n0, 10);

    // The one-call producer path: PUSH on the next FREE slot reserves it implicitly, for the
    // producer-role holder only (ABI 2.0, issue item 3).
    let next = fx.ch.status().unwrap().reserve & 7;
    b.claim(rtpmgr::abi::RTPM_ROLE_PRODUCER).unwrap();
    b.raw_ops().push(next, 12, 0).unwrap();
    let q = a.raw_ops().pop().unwrap();
    assert_eq!((q.index, q.len), (next, 12));
    a.raw_ops().release(q.index).unwrap();
}

#[test]
#[cfg_attr(miri, ignore = "Miri cannot map files: every case runs on a shm ring file or the device")]
fn status_counts_slots_by_state() {
    let fx = Fx::small("status");
    let raw = fx.ch.raw_ops();
    let mut refs = [SlotRef::default(); 5];
    raw.batch(SlotOp::Reserve, &mut refs).unwrap();
    for r in &mut refs[..3] {
        r.len = 20;
    }
    raw.batch(SlotOp::Push, &mut refs[..3]).unwrap();
    raw.pop().unwrap();
    let st = fx.ch.status().unwrap();
    assert_eq!(st.state, RTPM_STATE_RUNNING);
    assert_eq!((st.producing, st.ready, st.consuming, st.free), (2, 2, 1, 3));
    assert_eq!((st.reserve, st.producer, st.consumer, st.release), (5, 3, 1, 0));
    assert!(st.openers >= 1);
    let ring = fx.ch.map().unwrap();
    assert_eq!(ring.indices(), [5, 3, 1, 0], "header page index words match GET_STATUS");
    assert_eq!(ring.ready_hint(), 2);
    assert_eq!(ring.free_hint(), 3);
}

#[test]
#[cfg_attr(miri, ignore = "Miri cannot map files: every case runs on a shm ring file or the device")]
fn reject_newest_keeps_the_oldest_packets() {
    let fx = Fx::small("reject");
    let mut tx = fx.ch.producer().unwrap();
    let mut rx = fx.ch.consumer().unwrap();
    // The implicit-reserve PUSH below needs the producer role.
    fx.ch.claim(rtpmgr::abi::RTPM_ROLE_PRODUCER).unwrap();
    for i in 0..8u8 {
        tx.write(&[i; 32]).unwrap();
    }
    assert_eq!(errno(tx.write(&[99; 32])), Errno::EAGAIN);
    assert_eq!(errno(fx.ch.raw_ops().push(fx.ch.status().unwrap().reserve & 7, 32, 0)), Errno::EAGAIN);
    let st = fx.ch.stats().unwrap();
    assert_eq!(st.overruns, 2);
    assert_eq!(st.drops, 0);
    assert_eq!(st.illegal_ops, 0);
    let got: Vec<u8> = rx.pop_batch(16).unwrap().iter().map(|s| s.data()[0]).collect();
    assert_eq!(got, (0..8).collect::<Vec<_>>());
}

#[test]
#[cfg_attr(miri, ignore = "Miri cannot map files: every case runs on a shm ring file or the device")]
fn drop_oldest_frees_the_oldest_ready_slot() {
    let fx = Fx::new("dropold", Config { ring_order: 3, slot_payload: 128, drop_policy: DropPolicy::DropOldest });
    let mut tx = fx.ch.producer().unwrap();
    let mut rx = fx.ch.consumer().unwrap();
    for i in 0..11u8 {
        tx.write(&[i; 16]).unwrap();
    }
    let st = fx.ch.stats().unwrap();
    assert_eq!((st.pushed_packets, st.drops, st.overruns), (11, 3, 0));
    let got: Vec<u8> = rx.pop_batch(16).unwrap().iter().map(|s| s.data()[0]).collect();
    assert_eq!(got, (3..11).collect::<Vec<_>>(), "the three oldest were dropped");
    rx.flush().unwrap();
    let st = fx.ch.stats().unwrap();
    assert_eq!(st.pushed_packets, st.popped_packets + st.drops + fx.ch.status().unwrap().ready as u64);
}

#[test]
#[cfg_attr(miri, ignore = "Miri cannot map files: every case runs on a shm ring file or the device")]
fn drop_oldest_cannot_pass_a_popped_slot() {
    let fx = Fx::new("dropblk", Config { ring_order: 2, slot_payload: 128, drop_policy: DropPolicy::DropOldest });
    let mut tx = fx.ch.producer().unwrap();
    let mut rx = fx.ch.consumer().unwrap();
    for i in 0..4u8 {
        tx.write(&[i; 8]).unwrap();
    }
    let held = rx.pop().unwrap(); // CONSUMING at the release index blocks the ring
    assert_eq!(held.data()[0], 0);
    assert_eq!(errno(tx.write(&[9; 8])), Errno::EAGAIN);
    assert_eq!(fx.ch.stats().unwrap().drops, 0);
    assert!(!fx.ch.wait(rtpmgr::Dir::Writable, Some(Duration::from_millis(10))).unwrap());
    drop(held);
    rx.flush().unwrap();
    tx.write(&[9; 8]).unwrap();
    let got: Vec<u8> = rx.pop_batch(8).unwrap().iter().map(|s| s.data()[0]).collect();
    assert_eq!(got, vec![1, 2, 3, 9]);
}

#[test]
#[cfg_attr(miri, ignore = "Miri cannot map files: every case runs on a shm ring file or the device")]
fn configure_and_reset_busy_rules() {
    let fx = Fx::small("busy");
    let ch = &fx.ch;
    let cfg = Config { ring_order: 4, slot_payload: 1024, drop_policy: DropPolicy::DropOldest };
    // Running: both refused.
    assert_eq!(errno(ch.configure(&cfg)), Errno::EBUSY);
    assert_eq!(errno(ch.reset()), Errno::EBUSY);
    ch.stop().unwrap();
    // Mapped: CONFIGURE refused, RESET allowed.
    let ring = ch.map().unwrap();
    assert_eq!(errno(ch.configure(&cfg)), Errno::EBUSY);
    ch.reset().unwrap();
    drop(ring);
    // Owned slots: RESET and CONFIGURE refused.
    ch.start().unwrap();
    let r = ch.raw_ops().reserve().unwrap();
    ch.stop().unwrap();
    assert_eq!(errno(ch.reset()), Errno::EBUSY);
    assert_eq!(errno(ch.configure(&cfg)), Errno::EBUSY);
    ch.start().unwrap();
    ch.raw_ops().push(r.index, 8, 0).unwrap();
    ch.raw_ops().pop().unwrap();
    ch.stop().unwrap();
    assert_eq!(errno(ch.reset()), Errno::EBUSY, "a popped slot is owned too");
    ch.raw_ops().release(r.index).unwrap();
    ch.reset().unwrap();
    assert_eq!(ch.stats().unwrap(), RtpmStats::default(), "RESET zeroes the counters");
    // Bad values: EINVAL.
    for bad in [
        Config { ring_order: 0, ..cfg },
        Config { ring_order: 16, ..cfg },
        Config { slot_payload: 63, ..cfg },
        Config { slot_payload: 16385, ..cfg },
    ] {
        assert_eq!(errno(ch.configure(&bad)), Errno::EINVAL, "{bad:?}");
    }
    ch.configure(&cfg).unwrap();
    let info = ch.info().unwrap();
    assert_eq!((info.slot_count, info.config.slot_payload, info.config.drop_policy), (16, 1024, 1));
    let ring = ch.map().unwrap();
    assert_eq!(ring.layout().slot_count, 16);
    assert_eq!(ring.indices(), [0, 0, 0, 0]);
    // Starting twice is fine; so is stopping twice.
    ch.start().unwrap();
    ch.start().unwrap();
    ch.stop().unwrap();
    ch.stop().unwrap();
}

#[test]
#[cfg_attr(miri, ignore = "Miri cannot map files: every case runs on a shm ring file or the device")]
fn rtp_fields_flags_and_sequence_stats() {
    let fx = Fx::new("rtp", Config { ring_order: 5, slot_payload: 256, drop_policy: DropPolicy::RejectNewest });
    let mut tx = fx.ch.producer().unwrap();
    let mut rx = fx.ch.consumer().unwrap();
    for (seq, marker) in [(0, false), (1, true), (2, false), (5, false)] {
        tx.write(&rtp(seq, marker)).unwrap();
    }
    assert_eq!(fx.ch.stats().unwrap().rtp_lost, 2, "3 and 4 are missing");
    tx.write(&rtp(5, false)).unwrap();
    assert_eq!(fx.ch.stats().unwrap().rtp_duplicates, 1);
    tx.write(&rtp(3, false)).unwrap();
    let st = fx.ch.stats().unwrap();
    assert_eq!(st.rtp_reordered, 1);
    assert_eq!(st.rtp_lost, 1, "a late packet is not lost any more");
    tx.write(&rtp(3, false)).unwrap();
    assert_eq!(fx.ch.stats().unwrap().rtp_duplicates, 2, "seen late once, then again");
    tx.write(b"\x40 not an RTP v2 header").unwrap();
    tx.write(&[0x80; 11]).unwrap(); // too short
    let st = fx.ch.stats().unwrap();
    assert_eq!(st.malformed, 2);
    assert_eq!(st.illegal_ops, 0, "malformed payloads are carried, not refused");

    let got = rx.pop_batch(16).unwrap();
    assert_eq!(got.len(), 9);
    let d = got[1].desc();
    assert_eq!(d.flags, RTPM_SLOT_F_RTP | RTPM_SLOT_F_MARKER);
    assert_eq!((d.rtp_seq, d.rtp_timestamp, d.ssrc, d.payload_type), (1, 160, 0x1122_3344, 96));
    assert_eq!(got[0].desc().flags, RTPM_SLOT_F_RTP);
    assert!(got[0].is_rtp());
    assert_eq!(got[7].desc().flags, RTPM_SLOT_F_MALFORMED);
    assert_eq!(got[8].desc().flags, RTPM_SLOT_F_MALFORMED);
    assert!(!got[8].is_rtp());
    assert_eq!(got[7].data(), b"\x40 not an RTP v2 header");
}

#[test]
#[cfg_attr(miri, ignore = "Miri cannot map files: every case runs on a shm ring file or the device")]
fn stream_quality_through_a_read_only_handle() {
    let fx = Fx::new("quality", Config { ring_order: 5, slot_payload: 256, drop_policy: DropPolicy::RejectNewest });
    if kind() == BackendKind::Shm {
        // A shm ring tracks no RFC 3550 quality and has no read-only mode: both say so.
        assert_eq!(errno(fx.ch.quality()), Errno::EOPNOTSUPP);
        assert_eq!(errno(Channel::open_read_only(&fx.backend)), Errno::EOPNOTSUPP);
        return;
    }
    fx.ch.set_clock_rate(8000).unwrap();
    // 20 ms packets (160 ticks at 8 kHz) at given arrival times: seq 2 arrives 4 ms late, 3 and
    // 4 are lost, 5 comes twice. Transits 8000, 8000, 8032, 8000, 8000 ticks: A.8 gives
    // J = 0, 2, 3.875, 3.63 -> 3 ticks (375 us).
    let mut tx = fx.ch.producer().unwrap();
    for (seq, at_ms) in [(0u16, 1000u64), (1, 1020), (2, 1044), (5, 1100), (5, 1100)] {
        let mut s = tx.reserve().unwrap();
        s.fill(&rtp(seq, false)).unwrap();
        s.set_arrival_ns(at_ms * 1_000_000);
        tx.push(s).unwrap();
    }
    let ro = Channel::open_read_only(&fx.backend).unwrap();
    let q = ro.quality().unwrap();
    assert_eq!((q.ssrc, q.clock_rate, q.base_seq, q.ext_max_seq), (0x1122_3344, 8000, 0, 5));
    assert_eq!((q.received, q.expected, q.lost), (5, 6, 1), "A.3: duplicates count as received");
    assert_eq!((q.jitter, q.jitter_time()), (3, Some(Duration::from_micros(375))));
    assert_eq!((q.max_loss_burst, q.ssrc_changes), (2, 0));
    assert_eq!(q, fx.ch.quality().unwrap(), "the same numbers for every opener");
    // The read-only handle reads, and changes nothing.
    assert_eq!(ro.stats().unwrap().pushed_packets, 5);
    assert_eq!(errno(ro.set_clock_rate(90_000)), Errno::EBADF);
    assert_eq!(errno(ro.claim(RTPM_ROLE_CONSUMER)), Errno::EBADF);
    drop(ro);
    // Leave the ring empty for the next case.
    drop(tx);
    let mut rx = fx.ch.consumer().unwrap();
    assert_eq!(rx.pop_batch(8).unwrap().len(), 5);
    rx.flush().unwrap();
}

#[test]
#[cfg_attr(miri, ignore = "Miri cannot map files: every case runs on a shm ring file or the device")]
fn blocking_waits_wake_up_and_time_out() {
    let fx = Fx::small("wait");
    let mut rx = fx.ch.consumer().unwrap();
    // Timeout with nothing to pop: an empty batch after about the timeout.
    let t0 = Instant::now();
    assert!(rx.pop_batch_wait(4, Some(Duration::from_millis(150))).unwrap().is_empty());
    let waited = t0.elapsed();
    assert!(waited >= Duration::from_millis(140) && waited < Duration::from_secs(3), "{waited:?}");

    // A push from another thread (its own open file) wakes the waiting consumer.
    let backend = fx.backend.clone();
    let pusher = std::thread::spawn(move || {
        let ch = Channel::open(&backend).unwrap();
        let mut tx = ch.producer().unwrap();
        std::thread::sleep(Duration::from_millis(200));
        tx.write(b"wake up").unwrap();
        ch
    });
    let t0 = Instant::now();
    let got = rx.pop_batch_wait(4, Some(Duration::from_secs(10))).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].data(), b"wake up");
    assert!(t0.elapsed() < Duration::from_secs(5), "woken late: {:?}", t0.elapsed());
    let _keep = pusher.join().unwrap();
    drop(got);
    rx.flush().unwrap();

    // A full ring: the producer waits until the consumer releases.
    let mut tx = fx.ch.producer().unwrap();
    for _ in 0..8 {
        tx.write(b"fill").unwrap();
    }
    assert!(tx.reserve_batch_wait(1, Some(Duration::from_millis(50))).unwrap().is_empty());
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        let s = rx.pop().unwrap();
        drop(s);
        rx.flush().unwrap();
        rx
    });
    let t0 = Instant::now();
    let slots = tx.reserve_batch_wait(2, Some(Duration::from_secs(10))).unwrap();
    assert_eq!(slots.len(), 1);
    assert!(t0.elapsed() < Duration::from_secs(5));
    drop(releaser.join().unwrap());
}

#[test]
#[cfg_attr(miri, ignore = "Miri cannot map files: every case runs on a shm ring file or the device")]
fn guards_return_and_release_their_slots() {
    let fx = Fx::small("guards");
    let mut tx = fx.ch.producer().unwrap();
    let mut rx = fx.ch.consumer().unwrap();
    rx.set_release_batch(32); // the default on a ring of 8 is 2
                              // An unpushed WriteSlot goes back to its producer and is handed out again first.
    let first = tx.reserve_batch(3).unwrap();
    let idx: Vec<u32> = first.iter().map(|s| s.index()).collect();
    drop(first);
    assert_eq!(tx.spare_count(), 3);
    let again = tx.reserve_batch(4).unwrap();
    let idx2: Vec<u32> = again.iter().map(|s| s.index()).collect();
    assert_eq!(&idx2[..3], &idx[..], "spares first, in ring order");
    assert_eq!(fx.ch.status().unwrap().producing, 4, "no slot reserved twice");
    let mut again = again;
    for (i, s) in again.iter_mut().enumerate() {
        s.fill(&[i as u8; 4]).unwrap();
        let want = tx.ring().payload_ptr(s.index()) as *const u8;
        assert_eq!(s.buf_mut().as_ptr(), want, "zero copy: the guard writes the ring memory");
    }
    assert_eq!(tx.push_batch(again).unwrap(), 4);
    assert_eq!(tx.spare_count(), 0);

    // A ReadSlot dropped in another thread is released (after the batch flush).
    let mut got = rx.pop_batch(4).unwrap();
    let ring = rx.ring().clone();
    assert_eq!(got[0].data().as_ptr(), ring.payload_ptr(got[0].index()) as *const u8, "zero copy");
    let s0 = got.remove(0);
    std::thread::spawn(move || drop(s0)).join().unwrap();
    // ... and one dropped while unwinding from a panic.
    let s1 = got.remove(0);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let _hold = s1;
        panic!("consumer bug");
    }));
    assert!(r.is_err());
    assert_eq!(fx.ch.status().unwrap().consuming, 4, "releases are batched until a flush");
    assert_eq!(rx.flush().unwrap(), 2);
    assert_eq!(fx.ch.status().unwrap().consuming, 2);
    // After the consumer is gone, dropping a guard releases at once.
    drop(rx);
    drop(got.remove(0));
    assert_eq!(fx.ch.status().unwrap().consuming, 1);
    drop(got);
    assert_eq!(fx.ch.status().unwrap().consuming, 0);
    assert_eq!(fx.ch.stats().unwrap().released, 4);
}

#[test]
#[cfg_attr(miri, ignore = "Miri cannot map files: every case runs on a shm ring file or the device")]
fn release_batch_threshold_flushes_without_a_call() {
    let fx = Fx::new("thresh", Config { ring_order: 6, slot_payload: 64, drop_policy: DropPolicy::RejectNewest });
    let mut tx = fx.ch.producer().unwrap();
    let mut rx = fx.ch.consumer().unwrap();
    rx.set_release_batch(8);
    for _ in 0..20 {
        tx.write(b"x").unwrap();
    }
    let got = rx.pop_batch(20).unwrap();
    drop(got); // 20 drops: two automatic flushes of 8, 4 pending
    assert_eq!(fx.ch.stats().unwrap().released, 16);
    assert_eq!(rx.flush().unwrap(), 4);
}

#[test]
#[cfg_attr(miri, ignore = "Miri cannot map files: every case runs on a shm ring file or the device")]
fn guards_dropped_while_the_consumer_waits_release_at_once() {
    // The feeder's shape: popped slots live on in another thread (GStreamer) while the consumer
    // sleeps waiting for more, and the producer needs exactly those slots. Their releases must
    // not wait for the consumer's next flush, or the three would deadlock.
    let fx = Fx::small("waitrel");
    let mut tx = fx.ch.producer().unwrap();
    let mut rx = fx.ch.consumer().unwrap();
    rx.set_release_batch(64); // never reached on a ring of 8
    for i in 0..8u8 {
        tx.write(&[i; 4]).unwrap();
    }
    let held = rx.pop_batch(8).unwrap();
    let consumer = std::thread::spawn(move || {
        let got = rx.pop_batch_wait(1, Some(Duration::from_secs(20))).unwrap();
        got.iter().map(|s| s.data()[0]).collect::<Vec<u8>>()
    });
    std::thread::sleep(Duration::from_millis(50));
    drop(held); // before or during the consumer's wait: either way released without it
    let slots = tx.reserve_batch_wait(8, Some(Duration::from_secs(10))).unwrap();
    assert_eq!(slots.len(), 8, "the producer starved on releases held back by a sleeping consumer");
    assert_eq!(fx.ch.stats().unwrap().released, 8);
    let mut slots = slots;
    slots.truncate(1);
    slots[0].fill(&[42; 4]).unwrap();
    tx.push_batch(slots).unwrap();
    assert_eq!(consumer.join().unwrap(), vec![42]);
}

#[test]
#[cfg_attr(miri, ignore = "Miri cannot map files: every case runs on a shm ring file or the device")]
fn closing_a_channel_reclaims_its_slots() {
    let fx = Fx::small("close");
    let other = fx.open_other();
    let before = fx.ch.status().unwrap().openers;
    let r = fx.ch.raw_ops().reserve().unwrap();
    fx.ch.raw_ops().push(r.index, 8, 0).unwrap();
    other.raw_ops().reserve().unwrap();
    other.raw_ops().pop().unwrap();
    assert_eq!(fx.ch.status().unwrap().openers, before);
    drop(other);
    let st = fx.ch.status().unwrap();
    assert_eq!((st.producing, st.consuming, st.openers), (0, 0, before - 1));
    assert_eq!(fx.ch.stats().unwrap().reclaimed, 2);
    // The ring is usable again: all 8 slots can be reserved.
    let mut refs = [SlotRef::default(); 8];
    assert_eq!(fx.ch.raw_ops().batch(SlotOp::Reserve, &mut refs).unwrap(), 8);
}

#[test]
#[cfg_attr(miri, ignore = "Miri cannot map files: every case runs on a shm ring file or the device")]
fn exclusive_claim_keeps_other_users_out() {
    let mut fx = Fx::small("claim");
    // A pipeline (any handle of this library) has the channel: no self-test may take it.
    assert_eq!(errno(Channel::open_exclusive(&fx.backend)), Errno::EBUSY);
    let backend = fx.backend.clone();
    let _serial = fx._serial.take();
    drop(fx);

    let excl = Channel::open_exclusive(&backend).expect("nobody else has the channel open");
    assert_eq!(errno(Channel::open_exclusive(&backend)), Errno::EBUSY, "a second exclusive claim");
    // A pipeline that starts meanwhile waits for the self-test to close, then gets the channel.
    let closed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let opener = {
        let (backend, closed) = (backend.clone(), closed.clone());
        std::thread::spawn(move || {
            let ch = Channel::open(&backend).map_err(|e| e.to_string())?;
            let after_close = closed.load(std::sync::atomic::Ordering::SeqCst);
            Ok::<_, String>((after_close, ch.status().map_err(|e| e.to_string())?.openers))
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    closed.store(true, std::sync::atomic::Ordering::SeqCst);
    drop(excl);
    let (after_close, openers) = opener.join().unwrap().expect("shared open after the exclusive one closed");
    assert!(after_close, "the shared open returned while the exclusive claim was held");
    assert!(openers >= 1);
    if let Backend::Shm { path, .. } = &backend {
        let _ = std::fs::remove_file(path);
    }
}

/// Child side of `killed_process_slots_are_reclaimed` (runs only when re-executed by it):
/// reserves 3 slots, pops 2, reports, and waits to be killed.
#[test]
#[cfg_attr(miri, ignore = "Miri cannot map files: every case runs on a shm ring file or the device")]
fn reclaim_child_process() {
    let Some(path) = std::env::var_os(CHILD_PATH_ENV).filter(|_| std::env::var_os(CHILD_ENV).is_some()) else {
        return;
    };
    let backend = match kind() {
        BackendKind::Kernel => Backend::kernel_path(path),
        BackendKind::Shm => Backend::shm_at(path),
    };
    let ch = Channel::open(&backend).unwrap();
    let mut tx = ch.producer().unwrap();
    let mut rx = ch.consumer().unwrap();
    let held_w = tx.reserve_batch(3).unwrap();
    let held_r = rx.pop_batch(2).unwrap();
    assert_eq!((held_w.len(), held_r.len()), (3, 2));
    std::thread::sleep(Duration::from_secs(60));
    drop((held_w, held_r));
}

#[test]
#[cfg_attr(miri, ignore = "Miri cannot map files: every case runs on a shm ring file or the device")]
fn killed_process_slots_are_reclaimed() {
    let fx = Fx::small("kill");
    let ring = fx.ch.map().unwrap();
    for i in 0..4u8 {
        push_raw(&fx.ch, &ring, &[i; 8]);
    }
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "reclaim_child_process", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .env(CHILD_PATH_ENV, fx.backend.path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Ready when the ring shows the child's slots (bounded poll; the child cannot signal
    // otherwise without a pipe protocol through the test harness's output capture).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let st = fx.ch.status().unwrap();
        if (st.producing, st.consuming) == (3, 2) {
            assert_eq!(st.ready, 2);
            break;
        }
        if let Some(exit) = child.try_wait().unwrap() {
            panic!("child exited early: {exit}");
        }
        assert!(Instant::now() < deadline, "child never took its slots: {st:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL: no destructor runs in the child
    child.wait().unwrap();
    // The kernel reclaims when the dead process's file is closed; the shm backend when the
    // ring is next opened (or found full or empty).
    let observer = fx.open_other();
    let st = observer.status().unwrap();
    assert_eq!((st.producing, st.consuming, st.ready), (0, 0, 2));
    assert_eq!(observer.stats().unwrap().reclaimed, 5);
    let mut rx = observer.consumer().unwrap();
    let got: Vec<u8> = rx.pop_batch(8).unwrap().iter().map(|s| s.data()[0]).collect();
    assert_eq!(got, vec![2, 3], "the two READY slots survive the crash");
    rx.flush().unwrap();
    let mut refs = [SlotRef::default(); 8];
    assert_eq!(fx.ch.raw_ops().batch(SlotOp::Reserve, &mut refs).unwrap(), 8, "every slot is usable again");
}

#[test]
#[cfg_attr(miri, ignore = "Miri cannot map files: every case runs on a shm ring file or the device")]
fn concurrent_producer_consumer_conserve_every_packet() {
    let fx = Fx::new("stress", Config { ring_order: 6, slot_payload: 256, drop_policy: DropPolicy::RejectNewest });
    const N: u32 = 20_000;
    let backend = fx.backend.clone();
    let producer = std::thread::spawn(move || {
        let ch = Channel::open(&backend).unwrap();
        let mut tx = ch.producer().unwrap();
        let mut next = 0u32;
        let deadline = Instant::now() + Duration::from_secs(60);
        while next < N {
            assert!(Instant::now() < deadline, "producer stuck at {next}");
            let want = (N - next).min(16) as usize;
            let mut slots = tx.reserve_batch_wait(want, Some(Duration::from_millis(100))).unwrap();
            for s in &mut slots {
                let mut pkt = rtp(next as u16, false);
                pkt.extend_from_slice(&next.to_le_bytes());
                s.fill(&pkt).unwrap();
                next += 1;
            }
            tx.push_batch(slots).unwrap();
        }
        ch
    });
    let mut rx = fx.ch.consumer().unwrap();
    let mut expect = 0u32;
    let deadline = Instant::now() + Duration::from_secs(60);
    while expect < N {
        assert!(Instant::now() < deadline, "consumer stuck at {expect}");
        for s in rx.pop_batch_wait(32, Some(Duration::from_millis(100))).unwrap() {
            let d = s.data();
            let v = u32::from_le_bytes(d[d.len() - 4..].try_into().unwrap());
            assert_eq!(v, expect, "lost, duplicated or reordered slot");
            assert_eq!(s.desc().rtp_seq, expect as u16);
            expect += 1;
        }
    }
    let _ch = producer.join().unwrap();
    rx.flush().unwrap();
    let st = fx.ch.stats().unwrap();
    let status = fx.ch.status().unwrap();
    assert_eq!(st.pushed_packets, N as u64);
    assert_eq!(st.popped_packets, N as u64);
    assert_eq!(st.released, N as u64);
    assert_eq!(st.pushed_packets, st.popped_packets + st.drops + status.ready as u64);
    assert_eq!((st.rtp_lost, st.rtp_reordered, st.rtp_duplicates, st.malformed), (0, 0, 0, 0));
    assert_eq!((status.producing, status.consuming, status.ready), (0, 0, 0));
}

#[test]
#[cfg_attr(miri, ignore = "Miri cannot map files: every case runs on a shm ring file or the device")]
fn hostile_mapping_requests_are_refused_by_the_ring() {
    // The library maps the meta region read-only; a writable view of it must be impossible.
    let fx = Fx::small("mprotect");
    let ring = fx.ch.map().unwrap();
    let hdr = ring.payload_ptr(0); // payload is writable ...
                                   // SAFETY: slot 0's payload is mapped read-write; writing one byte to it is harmless here
                                   // (nobody owns slot 0 and the ring never reads an unpushed payload).
    unsafe { hdr.write(1) };
    if kind() == BackendKind::Kernel {
        // ... the meta region is not, and mprotect cannot upgrade it (VM_MAYWRITE cleared).
        use std::os::fd::AsFd;
        let f = std::fs::OpenOptions::new().read(true).write(true).open(fx.backend.path()).unwrap();
        let len = std::num::NonZeroUsize::new(4096).unwrap();
        use nix::sys::mman::{mmap, MapFlags, ProtFlags};
        // SAFETY: a new mapping at a kernel-chosen address; refused or unmapped right away.
        let r = unsafe {
            mmap(None, len, ProtFlags::PROT_READ | ProtFlags::PROT_WRITE, MapFlags::MAP_SHARED, f.as_fd(), 0)
        };
        assert_eq!(r.err(), Some(Errno::EPERM), "writable meta mapping must be refused");
    }
}

/// xorshift64*: a tiny deterministic generator, so a failing sequence can be replayed by seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Runs `steps` random slot operations from two open files on the ring of `ch` (the second one
/// opened from `backend`, and now and then closed and reopened, which reclaims its slots),
/// checking the ring's invariants after each, and returns a trace of every answer (errnos,
/// slots, status, stats).
fn random_ops(ch: &Channel, backend: &Backend, seed: u64, steps: usize) -> Vec<String> {
    let ring = ch.map().unwrap();
    let n = ring.layout().slot_count;
    let cap = ring.layout().slot_payload;
    let mut other = Channel::open(backend).unwrap();
    // What each file holds, as far as the generator knows: it only steers the choice of
    // indices (mostly valid ones, sometimes foreign or random); the ring's answers are checked.
    let mut reserved: [Vec<u32>; 2] = [Vec::new(), Vec::new()];
    let mut popped: [Vec<u32>; 2] = [Vec::new(), Vec::new()];
    let mut rng = Rng(seed | 1);
    let mut trace = Vec::with_capacity(steps);
    for step in 0..steps {
        let h = rng.below(2) as usize;
        let handle = if h == 0 { ch } else { &other };
        let raw = handle.raw_ops();
        let pick = rng.below(100);
        let line = if pick < 25 {
            let mut refs = vec![SlotRef::default(); 1 + rng.below(10) as usize];
            let r = raw.batch(SlotOp::Reserve, &mut refs);
            let done = *r.as_ref().unwrap_or(&0);
            reserved[h].extend(refs[..done].iter().map(|r| r.index));
            let got: Vec<(u32, u32)> = refs[..done].iter().map(|r| (r.index, r.len)).collect();
            format!("h{h} reserve -> {:?} {got:?}", r.map_err(|e| e.errno()))
        } else if pick < 50 {
            let mut refs = Vec::new();
            let mut own = Vec::new();
            for _ in 0..1 + rng.below(4) {
                let (index, mine) = match rng.below(10) {
                    0..=6 if !reserved[h].is_empty() => (reserved[h].remove(0), true),
                    7 if !reserved[1 - h].is_empty() => (reserved[1 - h][0], false),
                    8 => (ring.indices()[0] & (n - 1), false),
                    _ => (rng.below(n as u64 + 2) as u32, false),
                };
                let len = match rng.below(20) {
                    0 => 0,
                    1 => cap + 1,
                    2 | 3 => 1,
                    _ => 12 + rng.below((cap - 12) as u64) as u32 + 1,
                };
                if index < n && len >= 1 && len <= cap {
                    // Deterministic content: RTP most of the time, with a sequence from the step.
                    let mut pkt = rtp(step as u16 / 2, step % 7 == 0);
                    if rng.below(8) == 0 {
                        pkt[0] = 0x40;
                    }
                    pkt.resize(len as usize, 0x55);
                    // SAFETY: the payload region is mapped read-write and index < slot_count;
                    // the generator only writes slots it reserved, or ones the ring will refuse.
                    unsafe { std::ptr::copy_nonoverlapping(pkt.as_ptr(), ring.payload_ptr(index), pkt.len()) };
                }
                refs.push(SlotRef::new(index, len, 0));
                own.push(mine);
            }
            let r = raw.batch(SlotOp::Push, &mut refs);
            let done = *r.as_ref().unwrap_or(&0);
            // Our own slots that were not pushed are still ours.
            for (e, mine) in refs.iter().zip(&own).skip(done) {
                if *mine && !reserved[h].contains(&e.index) {
                    reserved[h].push(e.index);
                }
            }
            let offered: Vec<(u32, u32)> = refs.iter().map(|e| (e.index, e.len)).collect();
            format!("h{h} push {offered:?} -> {:?}", r.map_err(|e| e.errno()))
        } else if pick < 70 {
            let mut refs = vec![SlotRef::default(); 1 + rng.below(5) as usize];
            let r = raw.batch(SlotOp::Pop, &mut refs);
            let done = *r.as_ref().unwrap_or(&0);
            popped[h].extend(refs[..done].iter().map(|r| r.index));
            let got: Vec<(u32, u32)> = refs[..done].iter().map(|r| (r.index, r.len)).collect();
            format!("h{h} pop -> {:?} {got:?}", r.map_err(|e| e.errno()))
        } else if pick < 90 {
            let mut refs = Vec::new();
            let mut own = Vec::new();
            for _ in 0..1 + rng.below(3) {
                let (index, mine) = match rng.below(10) {
                    0..=7 if !popped[h].is_empty() => (popped[h].remove(0), true),
                    8 if !popped[1 - h].is_empty() => (popped[1 - h][0], false),
                    _ => (rng.below(n as u64 + 2) as u32, false),
                };
                refs.push(SlotRef::new(index, 0, 0));
                own.push(mine);
            }
            let r = raw.batch(SlotOp::Release, &mut refs);
            let done = *r.as_ref().unwrap_or(&0);
            for (e, mine) in refs.iter().zip(&own).skip(done) {
                if *mine && !popped[h].contains(&e.index) {
                    popped[h].push(e.index);
                }
            }
            let offered: Vec<u32> = refs.iter().map(|e| e.index).collect();
            format!("h{h} release {offered:?} -> {:?}", r.map_err(|e| e.errno()))
        } else if pick < 92 {
            format!("stop -> {:?}", handle.stop().map_err(|e| e.errno()))
        } else if pick < 97 {
            format!("start -> {:?}", handle.start().map_err(|e| e.errno()))
        } else if pick < 98 {
            format!("reset -> {:?}", handle.reset().map_err(|e| e.errno()))
        } else {
            // Close the second file: its slots are reclaimed; then open a fresh one.
            drop(std::mem::replace(&mut other, Channel::open(backend).unwrap()));
            reserved[1].clear();
            popped[1].clear();
            "reopen h1".to_string()
        };
        let st = ch.status().unwrap();
        let stats = ch.stats().unwrap();
        assert_eq!(st.free + st.producing + st.ready + st.consuming, n, "step {step}: {line}: {st:?}");
        assert_eq!(
            stats.pushed_packets,
            stats.popped_packets + stats.drops + st.ready as u64,
            "step {step}: conservation: {line}"
        );
        let [res, prod, cons, rel] = [st.reserve, st.producer, st.consumer, st.release];
        assert!(res.wrapping_sub(rel) <= n, "step {step}: reserve runs past release + n: {st:?}");
        assert!(prod.wrapping_sub(rel) <= res.wrapping_sub(rel), "step {step}: producer past reserve: {st:?}");
        assert!(cons.wrapping_sub(rel) <= prod.wrapping_sub(rel), "step {step}: consumer past producer: {st:?}");
        assert_eq!(ring.indices(), [res, prod, cons, rel], "step {step}: header page != GET_STATUS");
        trace.push(format!(
            "{step}: {line} | state {} free {} prod {} ready {} cons {} idx {:?} | {:?}",
            st.state,
            st.free,
            st.producing,
            st.ready,
            st.consuming,
            [res, prod, cons, rel],
            // Wake-up coalescing is the kernel's alone (the shm backend refuses SET_WAKEUP):
            // its counter is not part of what the twin must match.
            rtpmgr::stats_fields(&stats).into_iter().filter(|(k, _)| *k != "wakeups").collect::<Vec<_>>()
        ));
    }
    trace
}

#[test]
#[cfg_attr(miri, ignore = "Miri cannot map files: every case runs on a shm ring file or the device")]
fn random_operation_sequences_keep_the_invariants_and_match_the_shm_twin() {
    // On the kernel backend the same sequences also run on a shm ring in the same process, and
    // every answer must be identical: the shm backend is the kernel's twin, not an approximation.
    for seed in 1..=12u64 {
        let policy = if seed % 2 == 0 { DropPolicy::DropOldest } else { DropPolicy::RejectNewest };
        let cfg = Config { ring_order: 3, slot_payload: 64, drop_policy: policy };
        let fx = Fx::new(&format!("random{seed}"), cfg);
        let trace = random_ops(&fx.ch, &fx.backend, seed, 400);
        if std::env::var_os("RTPMGR_TEST_TRACE").is_some() {
            eprintln!("{}", trace.join("\n"));
        }
        if kind() == BackendKind::Kernel {
            let path = rtpmgr::shm_dir().join(format!("rtpmgr-twin-{}-{seed}", std::process::id()));
            let _ = std::fs::remove_file(&path);
            let twin_backend = Backend::shm_at(&path).with_create_config(cfg);
            let twin = Channel::open(&twin_backend).unwrap();
            twin.start().unwrap();
            let twin_trace = random_ops(&twin, &twin_backend, seed, 400);
            drop(twin);
            let _ = std::fs::remove_file(&path);
            for (k, s) in trace.iter().zip(&twin_trace) {
                assert_eq!(k, s, "seed {seed}: kernel (left) and shm (right) answered differently");
            }
        }
    }
}

// --- ABI 2.0 (issue 15): each case named after the item it proves, on both backends ---------

/// Item 4: CANCEL gives an unpushed reservation back (counted), also after STOP; only its owner
/// may cancel it, and only while it is PRODUCING.
#[test]
#[cfg_attr(miri, ignore = "Miri cannot map files: every case runs on a shm ring file or the device")]
fn item4_cancel_returns_a_reservation_and_works_after_stop() {
    let fx = Fx::small("cancel");
    let other = fx.open_other();
    let a = fx.ch.raw_ops().reserve().unwrap();
    let b = fx.ch.raw_ops().reserve().unwrap();
    assert_eq!(errno(other.raw_ops().cancel(a.index)), Errno::EPERM);
    fx.ch.raw_ops().cancel(a.index).unwrap();
    assert_eq!(errno(fx.ch.raw_ops().cancel(a.index)), Errno::EBADSLT);
    assert_eq!(errno(fx.ch.raw_ops().cancel(8)), Errno::EINVAL);
    fx.ch.stop().unwrap();
    fx.ch.raw_ops().cancel(b.index).unwrap();
    let (st, stats) = (fx.ch.status().unwrap(), fx.ch.stats().unwrap());
    assert_eq!((st.producing, st.free, st.ready), (0, 8, 0));
    assert_eq!(stats.cancelled, 2);
    assert_eq!(stats.pushed_packets, 0);
    fx.ch.start().unwrap();
    // The ring is whole again: all 8 slots can be reserved.
    let mut refs = [SlotRef::default(); 8];
    assert_eq!(fx.ch.raw_ops().batch(SlotOp::Reserve, &mut refs).unwrap(), 8);
}

/// Item 4: a dropped Producer CANCELs the spare slots it still holds, so they do not block
/// the ring until the channel handle is closed.
#[test]
#[cfg_attr(miri, ignore = "Miri cannot map files: every case runs on a shm ring file or the device")]
fn item4_dropped_producer_cancels_its_spare_slots() {
    let fx = Fx::small("spares");
    let mut tx = fx.ch.producer().unwrap();
    let slots = tx.reserve_batch(5).unwrap();
    drop(slots); // back to the producer as spares
    assert_eq!(tx.spare_count(), 5);
    assert_eq!(fx.ch.status().unwrap().producing, 5);
    drop(tx);
    let st = fx.ch.status().unwrap();
    assert_eq!((st.producing, st.free), (0, 8));
    assert_eq!(fx.ch.stats().unwrap().cancelled, 5);
    // A slot that outlives its producer is cancelled when it goes, too.
    let mut tx = fx.ch.producer().unwrap();
    let s = tx.reserve().unwrap();
    drop(tx);
    assert_eq!(fx.ch.status().unwrap().producing, 1);
    drop(s);
    assert_eq!(fx.ch.status().unwrap().producing, 0);
}

/// Item 2: the producer and consumer roles are exclusive; a third handle can neither push nor
/// pop behind the role holders' backs; roles end when their handle closes.
#[test]
#[cfg_attr(miri, ignore = "Miri cannot map files: every case runs on a shm ring file or the device")]
fn item2_claims_keep_a_third_handle_out() {
    use rtpmgr::abi::{RTPM_ROLE_CONSUMER, RTPM_ROLE_PRODUCER};
    let fx = Fx::small("claims");
    let producer = fx.open_other();
    let consumer = fx.open_other();
    let third = &fx.ch;
    producer.claim(RTPM_ROLE_PRODUCER).unwrap();
    consumer.claim(RTPM_ROLE_CONSUMER).unwrap();
    assert_eq!(errno(third.claim(RTPM_ROLE_PRODUCER)), Errno::EBUSY);
    assert_eq!(errno(third.claim(RTPM_ROLE_CONSUMER)), Errno::EBUSY);
    assert_eq!(fx.ch.status().unwrap().claimed, RTPM_ROLE_PRODUCER | RTPM_ROLE_CONSUMER);
    let denied0 = fx.ch.stats().unwrap().denied;
    assert_eq!(errno(third.raw_ops().reserve()), Errno::EPERM);
    let s = producer.raw_ops().reserve().unwrap();
    producer.raw_ops().push(s.index, 16, 0).unwrap();
    assert_eq!(errno(third.raw_ops().pop()), Errno::EPERM);
    assert_eq!(fx.ch.stats().unwrap().denied - denied0, 2);
    let got = consumer.raw_ops().pop().unwrap();
    consumer.raw_ops().release(got.index).unwrap();
    // Giving a role up, or closing the handle, frees it for another handle.
    producer.claim(0).unwrap();
    third.claim(RTPM_ROLE_PRODUCER).unwrap();
    drop(consumer);
    third.claim(RTPM_ROLE_PRODUCER | RTPM_ROLE_CONSUMER).unwrap();
    assert_eq!(errno(producer.claim(RTPM_ROLE_CONSUMER)), Errno::EBUSY);
    assert_eq!(errno(third.claim(4)), Errno::EINVAL);
    third.claim(0).unwrap();
    assert_eq!(fx.ch.status().unwrap().claimed, 0);
}

/// Item 3: the one-call PUSH with implicit reserve writes a slot before it is handed out, so
/// only the producer-role holder may use it; everyone else reserves first.
#[test]
#[cfg_attr(miri, ignore = "Miri cannot map files: every case runs on a shm ring file or the device")]
fn item3_implicit_push_needs_the_producer_role() {
    let fx = Fx::small("implicit");
    let next = fx.ch.status().unwrap().reserve & 7;
    assert_eq!(errno(fx.ch.raw_ops().push(next, 8, 0)), Errno::EPERM);
    assert_eq!(fx.ch.stats().unwrap().denied, 1);
    assert_eq!(fx.ch.status().unwrap().producing, 0);
    fx.ch.claim(rtpmgr::abi::RTPM_ROLE_PRODUCER).unwrap();
    fx.ch.raw_ops().push(next, 8, 0).unwrap();
    assert_eq!(fx.ch.stats().unwrap().pushed_packets, 1);
    // On a stopped channel it is EPIPE, as every new reservation.
    fx.ch.stop().unwrap();
    assert_eq!(errno(fx.ch.raw_ops().push((next + 1) & 7, 8, 0)), Errno::EPIPE);
}

/// Item 6: reserved fields of a slot entry must be zero (PUSH: flags too); POP reports the
/// descriptor's flags, and RELEASE takes the popped entry back as it is.
#[test]
#[cfg_attr(miri, ignore = "Miri cannot map files: every case runs on a shm ring file or the device")]
fn item6_slot_entry_padding_is_checked_and_pop_reports_flags() {
    let fx = Fx::small("flags");
    let ring = fx.ch.map().unwrap();
    let r = fx.ch.raw_ops().reserve().unwrap();
    let pkt = rtp(7, true);
    // SAFETY: the slot was just reserved by this handle; nobody else touches its payload.
    unsafe { std::ptr::copy_nonoverlapping(pkt.as_ptr(), ring.payload_ptr(r.index), pkt.len()) };
    let mut bad = SlotRef::new(r.index, pkt.len() as u32, 0);
    bad.flags = 1;
    assert_eq!(errno(fx.ch.raw_ops().single(SlotOp::Push, &mut bad)), Errno::EINVAL);
    let mut bad = SlotRef::new(r.index, pkt.len() as u32, 0);
    bad.pad = 1;
    assert_eq!(errno(fx.ch.raw_ops().single(SlotOp::Push, &mut bad)), Errno::EINVAL);
    fx.ch.raw_ops().push(r.index, pkt.len() as u32, 0).unwrap();
    let p = fx.ch.raw_ops().pop().unwrap();
    use rtpmgr::abi::{RTPM_SLOT_F_MARKER, RTPM_SLOT_F_RTP};
    assert_eq!(p.flags, RTPM_SLOT_F_RTP | RTPM_SLOT_F_MARKER);
    let mut bad = p;
    bad.pad = 2;
    assert_eq!(errno(fx.ch.raw_ops().single(SlotOp::Release, &mut bad)), Errno::EINVAL);
    // The entry POP filled in (flags included) is handed back as it is.
    let mut back = p;
    fx.ch.raw_ops().single(SlotOp::Release, &mut back).unwrap();
    assert_eq!(fx.ch.stats().unwrap().illegal_ops, 3);
}

/// Item 6 (STOP seen by consumers): a handle that lived through a STOP gets EPIPE from a POP on
/// the drained ring, like read() of a pipe without writers; what was READY is drained first,
/// and after START the channel works again. A handle opened while stopped just finds it empty.
#[test]
#[cfg_attr(miri, ignore = "Miri cannot map files: every case runs on a shm ring file or the device")]
fn item6_a_drained_pop_after_stop_is_epipe() {
    let fx = Fx::small("hangup");
    let ring = fx.ch.map().unwrap();
    push_raw(&fx.ch, &ring, &rtp(1, false));
    fx.ch.stop().unwrap();
    let late = fx.open_other();
    let p = fx.ch.raw_ops().pop().unwrap();
    fx.ch.raw_ops().release(p.index).unwrap();
    let underruns = fx.ch.stats().unwrap().underruns;
    assert_eq!(errno(fx.ch.raw_ops().pop()), Errno::EPIPE);
    assert_eq!(errno(late.raw_ops().pop()), Errno::EAGAIN);
    // EPIPE is the end of the stream, not an underrun or misuse.
    let st = fx.ch.stats().unwrap();
    assert_eq!((st.underruns - underruns, st.illegal_ops), (1, 0));
    fx.ch.start().unwrap();
    assert_eq!(errno(fx.ch.raw_ops().pop()), Errno::EAGAIN);
    push_raw(&fx.ch, &ring, &rtp(2, false));
    assert_eq!(fx.ch.raw_ops().pop().unwrap().len, 20);
}

//! Proves that the Rust mirror and the C header agree, for x86_64 and for aarch64.
//!
//! The Rust side computes its own layout (size_of / offset_of / size_of_val per field). The test
//! turns those numbers into a C file of `_Static_assert`s that includes
//! `include/rtp_mgr_ioctl.h`, and compiles it with the host C compiler and with
//! `aarch64-linux-gnu-gcc`: the C compiler of each target checks every size, every field offset,
//! every constant and every ioctl number. Rust's layout cannot differ between the two 64-bit targets
//! because the structs use fixed-width types only (and the crate's const asserts run for every
//! target it is built for), so one Rust table proves both.
//!
//! Two more checks make "every field" hold without trusting the hand-written field lists below:
//! the sum of the listed field sizes must equal sizeof() on both sides (all padding is explicit in
//! the header), so a field missing from a list, or an extra one in either language, fails.

use rtpmgr_abi::*;
use std::fmt::Write as _;
use std::mem::{offset_of, size_of, size_of_val};
use std::path::{Path, PathBuf};
use std::process::Command;

struct Layout {
    c_name: &'static str,
    size: usize,
    fields: Vec<(&'static str, usize, usize)>,
}

macro_rules! layout {
    ($ty:ty, $c:literal, $value:expr, [$($f:ident),* $(,)?]) => {{
        let v: $ty = $value;
        Layout {
            c_name: $c,
            size: size_of::<$ty>(),
            fields: vec![$((stringify!($f), offset_of!($ty, $f), size_of_val(&v.$f))),*],
        }
    }};
}

fn layouts() -> Vec<Layout> {
    vec![
        layout!(
            RtpmRingHeader,
            "rtpm_ring_header",
            RtpmRingHeader::default(),
            [
                magic, abi_major, abi_minor, header_size, channel, slot_count, ring_order, slot_payload, slot_stride,
                desc_size, drop_policy, desc_offset, meta_size, payload_offset, payload_size, prod_off, cons_off,
                reserve_off, release_off, reserved0, reserve, producer, reserved1, consumer, release, reserved2,
            ]
        ),
        layout!(
            RtpmSlotDesc,
            "rtpm_slot_desc",
            RtpmSlotDesc::default(),
            [len, flags, arrival_ns, rtp_timestamp, ssrc, rtp_seq, payload_type, pad0, pad1,]
        ),
        layout!(RtpmSlotRef, "rtpm_slot_ref", RtpmSlotRef::default(), [index, len, arrival_ns, flags, pad]),
        layout!(RtpmBatch, "rtpm_batch", RtpmBatch::default(), [slots, count, flags]),
        layout!(
            RtpmConfig,
            "rtpm_config",
            RtpmConfig::default(),
            [ring_order, slot_payload, drop_policy, flags, reserved]
        ),
        layout!(RtpmClaim, "rtpm_claim", RtpmClaim::default(), [roles, flags]),
        layout!(RtpmReclaim, "rtpm_reclaim", RtpmReclaim::default(), [min_held_ns, flags, reclaimed]),
        layout!(
            RtpmInfo,
            "rtpm_info",
            RtpmInfo::default(),
            [
                abi_major, abi_minor, channel, channels, state, config, slot_count, slot_stride, desc_size,
                header_size, meta_size, payload_offset, payload_size, max_ring_bytes, file_roles, file_caps, reserved,
            ]
        ),
        layout!(
            RtpmStats,
            "rtpm_stats",
            RtpmStats::default(),
            [
                pushed_packets, pushed_bytes, popped_packets, popped_bytes, released, drops, overruns, underruns,
                rtp_lost, rtp_reordered, rtp_duplicates, malformed, reclaimed, illegal_ops, cancelled, denied, evicted,
                rx_oversize, rx_discarded, wakeups, tx_sent, tx_errors, reserved,
            ]
        ),
        layout!(
            RtpmStatus,
            "rtpm_status",
            RtpmStatus::default(),
            [
                state, openers, mappings, free, producing, ready, consuming, claimed, reserve, producer, consumer,
                release, attached, reserved,
            ]
        ),
        layout!(
            RtpmAttach,
            "rtpm_attach",
            RtpmAttach::default(),
            [fd, direction, flags, tx_rate_pps, tx_burst, reserved]
        ),
        layout!(RtpmDetach, "rtpm_detach", RtpmDetach::default(), [direction, flags, reserved]),
        layout!(RtpmClockRate, "rtpm_clock_rate", RtpmClockRate::default(), [hz, flags]),
        layout!(
            RtpmQuality,
            "rtpm_quality",
            RtpmQuality::default(),
            [
                ssrc, clock_rate, received, expected, lost, ext_max_seq, base_seq, jitter, jitter_us, ssrc_changes,
                max_loss_burst, reserved,
            ]
        ),
        layout!(RtpmWakeup, "rtpm_wakeup", RtpmWakeup::default(), [slots, usecs, flags, reserved]),
        layout!(RtpmCapture, "rtpm_capture", RtpmCapture::default(), [queue_len, snaplen, flags, reserved]),
        layout!(
            RtpmCaptureRecord,
            "rtpm_capture_record",
            RtpmCaptureRecord::default(),
            [arrival_ns, len, caplen, missed, flags]
        ),
    ]
}

fn constants() -> Vec<(&'static str, u64)> {
    vec![
        ("RTPM_ABI_MAJOR", RTPM_ABI_MAJOR as u64),
        ("RTPM_ABI_MINOR", RTPM_ABI_MINOR as u64),
        ("RTPM_MAGIC", RTPM_MAGIC as u64),
        ("RTPM_RING_ORDER_MIN", RTPM_RING_ORDER_MIN as u64),
        ("RTPM_RING_ORDER_MAX", RTPM_RING_ORDER_MAX as u64),
        ("RTPM_SLOT_PAYLOAD_MIN", RTPM_SLOT_PAYLOAD_MIN as u64),
        ("RTPM_SLOT_PAYLOAD_MAX", RTPM_SLOT_PAYLOAD_MAX as u64),
        ("RTPM_BATCH_MAX", RTPM_BATCH_MAX as u64),
        ("RTPM_CHANNELS_MAX", RTPM_CHANNELS_MAX as u64),
        ("RTPM_SLOT_ALIGN", RTPM_SLOT_ALIGN as u64),
        ("RTPM_DROP_REJECT_NEWEST", RTPM_DROP_REJECT_NEWEST as u64),
        ("RTPM_DROP_OLDEST", RTPM_DROP_OLDEST as u64),
        ("RTPM_STATE_STOPPED", RTPM_STATE_STOPPED as u64),
        ("RTPM_STATE_RUNNING", RTPM_STATE_RUNNING as u64),
        ("RTPM_SLOT_F_RTP", RTPM_SLOT_F_RTP as u64),
        ("RTPM_SLOT_F_MALFORMED", RTPM_SLOT_F_MALFORMED as u64),
        ("RTPM_SLOT_F_MARKER", RTPM_SLOT_F_MARKER as u64),
        ("RTPM_IOC_MAGIC", request::RTPM_IOC_MAGIC as u64),
        ("RTPM_IOC_MAGIC_V1", request::RTPM_IOC_MAGIC_V1 as u64),
        ("RTPM_MAX_RING_KIB_DEFAULT", RTPM_MAX_RING_KIB_DEFAULT as u64),
        ("RTPM_MAX_TOTAL_KIB_DEFAULT", RTPM_MAX_TOTAL_KIB_DEFAULT as u64),
        ("RTPM_ROLE_PRODUCER", RTPM_ROLE_PRODUCER as u64),
        ("RTPM_ROLE_CONSUMER", RTPM_ROLE_CONSUMER as u64),
        ("RTPM_ROLES_ALL", RTPM_ROLES_ALL as u64),
        ("RTPM_FILE_WRITE", RTPM_FILE_WRITE as u64),
        ("RTPM_FILE_ADMIN", RTPM_FILE_ADMIN as u64),
        ("RTPM_RECLAIM_ROLES", RTPM_RECLAIM_ROLES as u64),
        ("RTPM_SLOT_F_ALL", RTPM_SLOT_F_ALL as u64),
        ("EBADSLT", EBADSLT as u64),
        ("RTPM_ATTACHED_RX", RTPM_ATTACHED_RX as u64),
        ("RTPM_ATTACHED_TX", RTPM_ATTACHED_TX as u64),
        ("RTPM_DIR_RX", RTPM_DIR_RX as u64),
        ("RTPM_DIR_TX", RTPM_DIR_TX as u64),
        ("RTPM_WAKE_SLOTS_MAX", RTPM_WAKE_SLOTS_MAX as u64),
        ("RTPM_WAKE_USECS_MAX", RTPM_WAKE_USECS_MAX as u64),
        ("RTPM_TX_BURST_MAX", RTPM_TX_BURST_MAX as u64),
        ("RTPM_CLOCK_RATE_MAX", RTPM_CLOCK_RATE_MAX as u64),
        ("RTPM_CAPTURE_F_NONBLOCK", RTPM_CAPTURE_F_NONBLOCK as u64),
        ("RTPM_CAPTURE_F_ALL", RTPM_CAPTURE_F_ALL as u64),
        ("RTPM_CAPTURE_QUEUE_DEFAULT", RTPM_CAPTURE_QUEUE_DEFAULT as u64),
        ("RTPM_CAPTURE_QUEUE_MAX", RTPM_CAPTURE_QUEUE_MAX as u64),
        ("RTPM_CAPTURE_BYTES_MAX", RTPM_CAPTURE_BYTES_MAX as u64),
    ]
}

/// The C translation unit: the header plus one `_Static_assert` per Rust-side number.
fn c_source() -> String {
    let mut c = String::from(
        "#include <stddef.h>\n#include <errno.h>\n#include \"rtp_mgr_ioctl.h\"\n\
         #define CHECK(e) _Static_assert(e, #e)\n",
    );
    for l in layouts() {
        let s = l.c_name;
        writeln!(c, "CHECK(sizeof(struct {s}) == {});", l.size).unwrap();
        let mut sum = String::from("0");
        for (f, off, size) in &l.fields {
            writeln!(c, "CHECK(offsetof(struct {s}, {f}) == {off});").unwrap();
            writeln!(c, "CHECK(sizeof(((struct {s} *)0)->{f}) == {size});").unwrap();
            write!(sum, " + sizeof(((struct {s} *)0)->{f})").unwrap();
        }
        // All padding is explicit: the listed fields cover every byte of the C struct.
        writeln!(c, "CHECK(sizeof(struct {s}) == {sum});").unwrap();
        let rust_sum: usize = l.fields.iter().map(|f| f.2).sum();
        assert_eq!(rust_sum, l.size, "Rust struct {s}: listed fields do not cover every byte");
    }
    // The device prefix is a string literal: the size is checked here, the text by
    // device_prefix_matches() through the preprocessor.
    writeln!(c, "CHECK(sizeof(RTPM_DEVICE_PREFIX) == {});", RTPM_DEVICE_PREFIX.len() + 1).unwrap();
    for (name, value) in constants() {
        writeln!(c, "CHECK({name} == {value}ULL);").unwrap();
    }
    for (name, value) in request::ALL {
        writeln!(c, "CHECK((unsigned long long)({name}) == {value}ULL);").unwrap();
    }
    c
}

fn include_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../include").canonicalize().unwrap()
}

/// Compiles the asserts with `cc`; returns None when the compiler is not installed.
fn compile(cc: &str, extra: &[&str]) -> Option<std::process::Output> {
    let dir = std::env::temp_dir().join(format!("rtpmgr-abi-layout-{}-{cc}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("layout.c");
    std::fs::write(&src, c_source()).unwrap();
    let out = Command::new(cc)
        .args(["-std=c11", "-Wall", "-Werror", "-c", "-o"])
        .arg(dir.join("layout.o"))
        .arg("-I")
        .arg(include_dir())
        .args(extra)
        .arg(&src)
        .output();
    let _ = std::fs::remove_dir_all(&dir);
    match out {
        Ok(o) => Some(o),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => panic!("failed to run {cc}: {e}"),
    }
}

fn assert_compiles(cc: &str, extra: &[&str]) -> bool {
    match compile(cc, extra) {
        None => false,
        Some(o) => {
            assert!(
                o.status.success(),
                "{cc}: the C header and the Rust mirror disagree:\n{}",
                String::from_utf8_lossy(&o.stderr)
            );
            true
        }
    }
}

#[test]
fn c_and_rust_layouts_agree_on_the_host() {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    assert!(assert_compiles(&cc, &[]), "host C compiler `{cc}` not found (set CC)");
}

#[test]
fn c_and_rust_layouts_agree_on_aarch64() {
    let cc = std::env::var("RTPMGR_AARCH64_CC").unwrap_or_else(|_| "aarch64-linux-gnu-gcc".into());
    if !assert_compiles(&cc, &[]) {
        // Loud skip: the x86_64 half still ran; install gcc-aarch64-linux-gnu for this half.
        rtpmgr_testkit::skip(
            "layout::c_and_rust_layouts_agree_on_aarch64",
            &format!("{cc} not found, aarch64 layout not checked (apt-get install gcc-aarch64-linux-gnu)"),
        );
    }
}

#[test]
fn a_wrong_rust_number_is_caught() {
    // The check must be able to fail: a C file asserting one wrong offset does not compile.
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let dir = std::env::temp_dir().join(format!("rtpmgr-abi-neg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("neg.c");
    std::fs::write(
        &src,
        "#include <stddef.h>\n#include \"rtp_mgr_ioctl.h\"\n\
         _Static_assert(offsetof(struct rtpm_ring_header, producer) == 128, \"x\");\n",
    )
    .unwrap();
    let out = Command::new(&cc)
        .args(["-std=c11", "-fsyntax-only", "-I"])
        .arg(include_dir())
        .arg(&src)
        .output()
        .expect("host C compiler");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!out.status.success(), "a wrong offset compiled: the layout test proves nothing");
}

#[test]
fn device_prefix_matches() {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let dir = std::env::temp_dir().join(format!("rtpmgr-abi-prefix-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("prefix.c");
    std::fs::write(&src, "#include \"rtp_mgr_ioctl.h\"\nconst char *probe = RTPM_DEVICE_PREFIX;\n").unwrap();
    let out =
        Command::new(&cc).args(["-E", "-P", "-I"]).arg(include_dir()).arg(&src).output().expect("host C compiler");
    let _ = std::fs::remove_dir_all(&dir);
    let text = String::from_utf8_lossy(&out.stdout);
    let want = format!("const char *probe = \"{RTPM_DEVICE_PREFIX}\";");
    assert!(text.contains(&want), "RTPM_DEVICE_PREFIX differs: expected {want}");
}

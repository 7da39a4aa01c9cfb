//! Host smoke test of rtpmgr-fuzz: its arguments, and the clear refusal of a device that is
//! missing or is not an rtp_mgr channel (the fuzzing itself needs the module: the device suite
//! `fuzz` runs it in the QEMU guest).

use std::process::{Command, Output};

fn fuzz(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rtpmgr-fuzz")).args(args).output().expect("run rtpmgr-fuzz")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn help_names_the_options_the_suite_and_docs_use() {
    let o = fuzz(&["--help"]);
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    for opt in ["--channel", "--seconds", "--seed", "--procs", "--device", "--unprivileged-uid", "--privileged-only"] {
        assert!(out.contains(opt), "--help lacks {opt}:\n{out}");
    }
}

#[test]
fn missing_device_is_refused_with_its_path() {
    let o = fuzz(&["--device", "/nonexistent/rtp_mgr9", "--seconds", "1"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("cannot open /nonexistent/rtp_mgr9"), "{err}");
    assert!(err.contains("rtp_mgr module loaded"), "{err}");
    assert!(o.stdout.is_empty(), "nothing fuzzed, nothing summarised");
}

#[test]
fn channel_flag_names_the_device_node() {
    // Channel 31 exists only with the module loaded with 32 channels; either way the error (or
    // the run) names /dev/rtp_mgr31. Without the module the run must refuse, not fuzz.
    if std::path::Path::new("/dev/rtp_mgr31").exists() {
        return;
    }
    let o = fuzz(&["--channel", "31", "--seconds", "1"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("/dev/rtp_mgr31"), "{}", stderr(&o));
}

#[test]
fn a_file_that_is_not_the_device_is_refused() {
    let o = fuzz(&["--device", "/dev/null", "--seconds", "1"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("/dev/null is not an rtp_mgr device"), "{}", stderr(&o));
}

#[test]
fn bad_arguments_are_refused_by_name() {
    for (args, needle) in [
        (&["--procs", "0"][..], "--procs"),
        (&["--procs", "65"][..], "--procs"),
        (&["--seed", "zz"][..], "not a number"),
        (&["--seconds", "-1"][..], "'-1'"),
        (&["--unprivileged-gid", "5"][..], "--unprivileged-uid"),
        (&["--unprivileged-uid", "5", "--privileged-only"][..], "--privileged-only"),
    ] {
        let o = fuzz(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(stderr(&o).contains(needle), "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn hex_and_decimal_seeds_are_accepted() {
    // Parsed, then refused only for the missing device.
    for seed in ["0x1234abcd", "305441741"] {
        let o = fuzz(&["--seed", seed, "--device", "/nonexistent/x"]);
        assert_eq!(o.status.code(), Some(2));
        assert!(stderr(&o).contains("cannot open"), "{seed}: {}", stderr(&o));
    }
}

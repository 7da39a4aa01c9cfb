//! Test helpers shared by the rtpmgr crates.
//!
//! **A skip is never silent.** libtest has no runtime skip, and it hides the output of passing
//! tests, so an `eprintln!("SKIP ...")` followed by `return` looks exactly like a pass. [`skip`]
//! prints the reason and also appends it to the file named by `RTPMGR_SKIP_LOG`, which
//! `make test` (test/run-tests.sh) sets and counts in its summary.
//!
//! ```no_run
//! // (not run as a doctest: under `make test` it would record this example's skip in the log)
//! let have_root = false; // e.g. from libc::geteuid() == 0
//! if !have_root {
//!     rtpmgr_testkit::skip("veth::receives_every_packet", "needs root (BPF, network namespaces)");
//!     return;
//! }
//! ```
//!
//! [`netns`]: a veth pair with one end in a network namespace, for tests that need a real link.
//!
//! [`process::KillOnDrop`]: a spawned child that is killed and reaped when a test fails.
#![deny(missing_docs)]

use std::io::Write;

pub mod netns;
pub mod notify;
pub mod process;

/// Environment variable naming the file that collects skips (one line each).
pub const SKIP_LOG_ENV: &str = "RTPMGR_SKIP_LOG";

/// Records that `test` was skipped and why: a `SKIP test: reason` line on stderr and in the skip
/// log of `make test`. The caller then returns from the test.
pub fn skip(test: &str, reason: &str) {
    let line = format!("SKIP {test}: {reason}");
    eprintln!("{line}");
    if let Some(path) = std::env::var_os(SKIP_LOG_ENV) {
        // O_APPEND: tests of several binaries may skip at the same time; each line is one write.
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()));
        if let Err(e) = appended {
            eprintln!("warning: cannot record the skip in {}: {e}", path.to_string_lossy());
        }
    }
}

/// Whether the external `tool` a test needs runs (`tool ARGS` exits 0). If not, the test fails
/// with `install`, the command that installs it (scripts/setup-host.sh runs it), unless the
/// environment sets `skip_env=1`: then the skip is recorded with its reason ([`skip`]) and this
/// returns false, so that a missing tool is never a silent pass.
pub fn require_tool(test: &str, tool: &str, args: &[&str], skip_env: &str, install: &str) -> bool {
    let runs = std::process::Command::new(tool)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if runs {
        return true;
    }
    if std::env::var(skip_env).as_deref() == Ok("1") {
        skip(test, &format!("{tool} not installed and {skip_env}=1"));
        return false;
    }
    panic!(
        "{tool} is not installed: run `{install}` (scripts/setup-host.sh does), or set {skip_env}=1 to skip this test"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skip_is_recorded_in_the_log() {
        let path = std::env::temp_dir().join(format!("rtpmgr-skip-log-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        // Only this test touches the variable in this test binary.
        std::env::set_var(SKIP_LOG_ENV, &path);
        skip("a::b", "because");
        skip("c::d", "why not");
        std::env::remove_var(SKIP_LOG_ENV);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "SKIP a::b: because\nSKIP c::d: why not\n");
        let _ = std::fs::remove_file(&path);
    }
}

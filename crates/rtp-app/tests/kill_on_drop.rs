//! The test guard `KillOnDrop`: a panic while a child is stopped still leaves no process behind,
//! neither running nor a zombie.

mod common;
use common::KillOnDrop;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::path::Path;
use std::process::Command;

#[test]
fn a_panic_kills_and_reaps_a_stopped_child() {
    let (pid_tx, pid_rx) = std::sync::mpsc::channel();
    let unwound = std::panic::catch_unwind(move || {
        let child: KillOnDrop = Command::new("sleep").arg("30").spawn().expect("sleep starts").into();
        let pid = child.id();
        pid_tx.send(pid).unwrap();
        kill(Pid::from_raw(pid as i32), Signal::SIGSTOP).expect("SIGSTOP the child");
        panic!("a failed assert while the child is stopped");
    });
    assert!(unwound.is_err(), "the closure panicked");
    let pid = pid_rx.recv().expect("the child was spawned");
    // A zombie keeps its /proc entry until it is reaped: gone means killed and waited for.
    assert!(!Path::new(&format!("/proc/{pid}")).exists(), "child {pid} still exists after the guard was dropped");
}

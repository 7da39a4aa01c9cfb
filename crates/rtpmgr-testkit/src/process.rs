//! [`KillOnDrop`]: a child process of a test that cannot outlive the test's failure.

use std::ops::{Deref, DerefMut};
use std::process::Child;

/// A child process that is SIGKILLed and reaped when dropped, so a failed assert (a panic) leaves
/// neither a running process nor a zombie behind. SIGKILL also ends a stopped process (a test
/// that SIGSTOPs its child and then fails).
#[derive(Debug)]
pub struct KillOnDrop(Option<Child>);

impl KillOnDrop {
    /// The child, no longer killed on drop (e.g. to collect its output once it has exited).
    pub fn into_inner(mut self) -> Child {
        self.0.take().expect("child present until dropped")
    }
}

impl From<Child> for KillOnDrop {
    fn from(child: Child) -> Self {
        KillOnDrop(Some(child))
    }
}

impl Deref for KillOnDrop {
    type Target = Child;
    fn deref(&self) -> &Child {
        self.0.as_ref().expect("child present until dropped")
    }
}

impl DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut Child {
        self.0.as_mut().expect("child present until dropped")
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::process::Command;

    #[test]
    fn a_panic_kills_and_reaps_a_stopped_child() {
        let (pid_tx, pid_rx) = std::sync::mpsc::channel();
        let unwound = std::panic::catch_unwind(move || {
            let child: KillOnDrop = Command::new("sleep").arg("30").spawn().expect("sleep starts").into();
            pid_tx.send(child.id()).unwrap();
            // SAFETY: kill(2) with a constant signal on our own child, not reaped while `child` lives.
            assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGSTOP) }, 0, "SIGSTOP the child");
            panic!("a failed assert while the child is stopped");
        });
        assert!(unwound.is_err(), "the closure panicked");
        let pid = pid_rx.recv().expect("the child was spawned");
        // A zombie keeps its /proc entry until it is reaped: gone means killed and waited for.
        assert!(!Path::new(&format!("/proc/{pid}")).exists(), "child {pid} still exists after the guard was dropped");
    }

    #[test]
    fn into_inner_hands_the_child_over_unkilled() {
        let mut child = KillOnDrop::from(Command::new("true").spawn().expect("true starts")).into_inner();
        assert!(child.wait().expect("reaped").success(), "exited by itself with 0, not killed");
    }
}

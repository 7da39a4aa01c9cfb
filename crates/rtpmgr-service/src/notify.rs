//! The sd_notify(3) protocol, without libsystemd: one datagram of `KEY=VALUE` lines to the
//! AF_UNIX socket named by `$NOTIFY_SOCKET` (a path, or an abstract name written with a leading
//! '@'), and the watchdog period from `$WATCHDOG_USEC` / `$WATCHDOG_PID`.

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// A bad `$NOTIFY_SOCKET` or `$WATCHDOG_USEC`: the service manager set the environment wrong.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("NOTIFY_SOCKET={0:?} is neither an absolute path nor an abstract socket name starting with '@'")]
    BadSocket(String),
    #[error("cannot open a datagram socket to NOTIFY_SOCKET={target}: {source}")]
    Socket { target: String, source: io::Error },
    #[error("WATCHDOG_USEC={0:?} is not a positive number of microseconds")]
    BadWatchdogUsec(String),
}

/// The service manager's notification socket.
#[derive(Debug)]
pub struct Notifier {
    sock: UnixDatagram,
    addr: SocketAddr,
    target: String,
}

impl Notifier {
    /// The notifier `$NOTIFY_SOCKET` names, None when it is unset or empty (not run by a
    /// manager that listens).
    pub fn from_env() -> Result<Option<Self>, NotifyError> {
        match std::env::var("NOTIFY_SOCKET") {
            Ok(t) if !t.is_empty() => Self::connect(&t).map(Some),
            _ => Ok(None),
        }
    }

    /// A notifier for `target`: "/run/systemd/notify" or "@name" (abstract namespace).
    pub fn connect(target: &str) -> Result<Self, NotifyError> {
        let addr = match target.strip_prefix('@') {
            Some(name) if !name.is_empty() => SocketAddr::from_abstract_name(name.as_bytes()),
            None if target.starts_with('/') => SocketAddr::from_pathname(target),
            _ => return Err(NotifyError::BadSocket(target.into())),
        }
        .map_err(|source| NotifyError::Socket { target: target.into(), source })?;
        let sock = UnixDatagram::unbound().map_err(|source| NotifyError::Socket { target: target.into(), source })?;
        // The worker loop (possibly SCHED_FIFO) sends the watchdog pings: a manager whose queue
        // is full must cost a dropped notification, never a blocked worker.
        sock.set_nonblocking(true).map_err(|source| NotifyError::Socket { target: target.into(), source })?;
        Ok(Self { sock, addr, target: target.into() })
    }

    /// Sends one notification: `state` holds newline-separated `KEY=VALUE` assignments. Never
    /// blocks: a full queue at the manager is an error of kind [`io::ErrorKind::WouldBlock`].
    pub fn send(&self, state: &str) -> io::Result<()> {
        let n = self.sock.send_to_addr(state.as_bytes(), &self.addr)?;
        if n != state.len() {
            return Err(io::Error::other(format!("short send to {} ({n} of {} bytes)", self.target, state.len())));
        }
        Ok(())
    }

    /// What `$NOTIFY_SOCKET` said, for messages.
    pub fn target(&self) -> &str {
        &self.target
    }
}

/// The watchdog timeout the manager expects pings within: `$WATCHDOG_USEC`, for this process
/// only (`$WATCHDOG_PID`, when set, must be our pid: otherwise the watchdog is another
/// process's, e.g. a supervising shell's). None: no watchdog.
pub fn watchdog_timeout(usec: Option<&str>, pid: Option<&str>, own_pid: u32) -> Result<Option<Duration>, NotifyError> {
    let Some(usec) = usec.filter(|u| !u.is_empty()) else { return Ok(None) };
    if let Some(p) = pid.filter(|p| !p.is_empty()) {
        if p.trim().parse::<u32>().ok() != Some(own_pid) {
            return Ok(None);
        }
    }
    match usec.trim().parse::<u64>() {
        Ok(u) if u > 0 => Ok(Some(Duration::from_micros(u))),
        _ => Err(NotifyError::BadWatchdogUsec(usec.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_names_are_paths_or_abstract() {
        assert!(matches!(Notifier::connect("relative/path"), Err(NotifyError::BadSocket(_))));
        assert!(matches!(Notifier::connect("@"), Err(NotifyError::BadSocket(_))));
        assert!(Notifier::connect("/run/systemd/notify").is_ok());
        assert!(Notifier::connect("@rtpmgr-test").is_ok());
    }

    #[test]
    fn sends_to_an_abstract_socket() {
        let name = format!("rtpmgr-notify-unit-{}", std::process::id());
        let manager = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap()).unwrap();
        let n = Notifier::connect(&format!("@{name}")).unwrap();
        n.send("READY=1\nSTATUS=up").unwrap();
        let mut buf = [0u8; 64];
        let len = manager.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1\nSTATUS=up");
    }

    #[test]
    fn sends_to_a_path_socket() {
        let dir = std::env::temp_dir().join(format!("rtpmgr-notify-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify");
        let _ = std::fs::remove_file(&path);
        let manager = UnixDatagram::bind(&path).unwrap();
        Notifier::connect(path.to_str().unwrap()).unwrap().send("WATCHDOG=1").unwrap();
        let mut buf = [0u8; 16];
        let len = manager.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"WATCHDOG=1");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A manager that does not read fills its queue: the next send fails at once (WouldBlock)
    /// rather than blocking the worker that pings.
    #[test]
    fn a_full_manager_queue_does_not_block_the_sender() {
        let name = format!("rtpmgr-notify-full-{}", std::process::id());
        let manager = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap()).unwrap();
        let n = Notifier::connect(&format!("@{name}")).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // The queue holds net.unix.max_dgram_qlen datagrams (or the socket buffer's worth).
            let first_error = (0..100_000).find_map(|_| n.send("WATCHDOG=1").err());
            let _ = tx.send(first_error.map(|e| e.kind()));
        });
        let kind = rx.recv_timeout(Duration::from_secs(5)).expect("the sender blocked on the full queue");
        assert_eq!(kind, Some(io::ErrorKind::WouldBlock));
        drop(manager);
    }

    #[test]
    fn watchdog_is_ours_only_when_the_pid_matches() {
        assert_eq!(watchdog_timeout(None, None, 7).unwrap(), None);
        assert_eq!(watchdog_timeout(Some("200000"), None, 7).unwrap(), Some(Duration::from_millis(200)));
        assert_eq!(watchdog_timeout(Some("200000"), Some("7"), 7).unwrap(), Some(Duration::from_millis(200)));
        assert_eq!(watchdog_timeout(Some("200000"), Some("8"), 7).unwrap(), None);
        assert!(matches!(watchdog_timeout(Some("0"), None, 7), Err(NotifyError::BadWatchdogUsec(_))));
        assert!(matches!(watchdog_timeout(Some("2s"), None, 7), Err(NotifyError::BadWatchdogUsec(_))));
    }
}

//! A fake service manager for tests of sd_notify: the `$NOTIFY_SOCKET` datagram socket (an
//! abstract name, as systemd uses), what arrives on it, and the process-level signals the tests
//! send to the service.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// The manager's end of `$NOTIFY_SOCKET`.
pub struct FakeManager {
    sock: UnixDatagram,
    name: String,
}

impl FakeManager {
    /// A socket named after `tag` and this test process.
    pub fn new(tag: &str) -> Self {
        let name = format!("rtpmgr-test-notify-{tag}-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).expect("abstract socket name");
        let sock = UnixDatagram::bind_addr(&addr).expect("bind the fake manager's socket");
        FakeManager { sock, name }
    }

    /// The value of `$NOTIFY_SOCKET` for the service.
    pub fn env(&self) -> String {
        format!("@{}", self.name)
    }

    /// The next notification within `limit`.
    pub fn recv(&self, limit: Duration) -> Option<String> {
        self.sock.set_read_timeout(Some(limit.max(Duration::from_millis(1)))).unwrap();
        let mut buf = [0u8; 4096];
        self.sock.recv(&mut buf).ok().map(|n| String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    /// Waits for a notification with the line `what`; returns it and everything before it.
    /// Panics after `limit`.
    pub fn wait_for(&self, what: &str, limit: Duration) -> (String, Vec<String>) {
        let deadline = Instant::now() + limit;
        let mut before = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.recv(left) {
                Some(m) if m.lines().any(|l| l == what) => return (m, before),
                Some(m) => before.push(m),
                None => break,
            }
        }
        panic!("no {what} within {limit:?}; got {before:?}");
    }

    /// Every notification for `span`, with its arrival time.
    pub fn collect(&self, span: Duration) -> Vec<(Instant, String)> {
        let end = Instant::now() + span;
        let mut got = Vec::new();
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            if let Some(m) = self.recv(left) {
                got.push((Instant::now(), m));
            }
        }
        got
    }

    /// Throws away what is queued.
    pub fn drain(&self) {
        while self.recv(Duration::from_millis(1)).is_some() {}
    }
}

/// The arrival times of the `WATCHDOG=1` pings among `msgs`.
pub fn pings(msgs: &[(Instant, String)]) -> Vec<Instant> {
    msgs.iter().filter(|(_, m)| m.lines().any(|l| l == "WATCHDOG=1")).map(|(t, _)| *t).collect()
}

/// The longest gap between consecutive `pings`.
pub fn max_gap(pings: &[Instant]) -> Duration {
    pings.windows(2).map(|w| w[1] - w[0]).max().unwrap_or_default()
}

/// The watchdog contract of a service started with `WATCHDOG_USEC=200000` (a ping every 100 ms):
/// pings keep coming while it runs, none come while it is stopped (SIGSTOP is what a hung worker
/// looks like to the manager, which would now kill and restart it), and they resume after SIGCONT.
/// The bounds are loose on purpose (at least 4 pings in 2 s, no gap of a second, 5 s to resume):
/// the test is of behaviour, and a loaded 2-core CI machine delays a thread by hundreds of ms.
pub fn assert_watchdog_follows_the_process(mgr: &FakeManager, child: &Child) {
    let running = mgr.collect(Duration::from_secs(2));
    let p = pings(&running);
    assert!(p.len() >= 4, "{} pings in 2 s (one per 100 ms expected): {running:?}", p.len());
    assert!(max_gap(&p) < Duration::from_secs(1), "a {:?} gap between pings", max_gap(&p));

    signal(child, "STOP");
    // A ping sent just before the stop may still be queued: not one of the stopped process's.
    std::thread::sleep(Duration::from_millis(50));
    mgr.drain();
    let stopped = mgr.collect(Duration::from_millis(600));
    assert!(pings(&stopped).is_empty(), "pings while stopped: {stopped:?}");
    signal(child, "CONT");
    mgr.wait_for("WATCHDOG=1", Duration::from_secs(5));
}

/// `kill -SIG pid` for a child (STOP, CONT, TERM).
pub fn signal(child: &Child, sig: &str) {
    let st = Command::new("kill").args([&format!("-{sig}"), &child.id().to_string()]).status().expect("kill runs");
    assert!(st.success(), "kill -{sig} {}", child.id());
}

/// (name, policy, rt_priority, Cpus_allowed_list) of every thread of `pid`, from /proc.
pub fn threads(pid: u32) -> Vec<(String, u32, u32, String)> {
    let mut v = Vec::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return v };
    for t in dir.flatten() {
        let dir = t.path();
        let (Ok(stat), Ok(status)) =
            (std::fs::read_to_string(dir.join("stat")), std::fs::read_to_string(dir.join("status")))
        else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
        let name = stat[open + 1..close].to_string();
        // Fields after the command name start at field 3: field N is f[N - 3].
        let f: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        let num = |n: usize| f.get(n - 3).and_then(|x| x.parse().ok()).unwrap_or(u32::MAX);
        let cpus = status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")).unwrap_or("").trim().to_string();
        v.push((name, num(41), num(40), cpus));
    }
    v
}

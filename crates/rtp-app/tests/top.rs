//! `rtp_app top` against shm rings with a stream running: the live view in an 80x24 pseudo-terminal
//! (rows appear, values change between refreshes, q / SIGTERM exit 0 with the terminal restored,
//! no colours under NO_COLOR), and the `--once` text and `--json` snapshots.

mod common;
use common::*;
use nix::pty::{openpty, Winsize};
use nix::sys::termios::{tcgetattr, LocalFlags};
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// An rx on `ring` (draining it) fed by a tx at `rate` packets/s over 127.0.0.1 for `secs`; the
/// tx's own ring is removed with the stream.
/// Fields drop in order: both processes are killed and reaped before the tx ring is removed.
struct Stream {
    _rx: KillOnDrop,
    _tx: KillOnDrop,
    _tx_ring: ShmRing,
}

impl Stream {
    fn start(ring: &ShmRing, tag: &str, rate: u32, secs: u32) -> Stream {
        let tx_ring = ShmRing::new(&format!("{tag}-tx"));
        let port = free_port().to_string();
        let (rx, _err) = spawn_ready(
            &[
                "--mode",
                "rx",
                "--bind",
                "127.0.0.1",
                "--port",
                &port,
                "--backend",
                "shm",
                "--shm-name",
                &ring.0,
                "--drain",
                "--interval",
                "0",
                "-t",
                &(secs + 5).to_string(),
            ],
            "rx: receiving on",
        );
        let tx = Command::new(bin())
            .args([
                "--mode",
                "tx",
                "--dst",
                "127.0.0.1",
                "--port",
                &port,
                "--rate",
                &rate.to_string(),
                "--payload",
                "200",
                "--backend",
                "shm",
                "--shm-name",
                &tx_ring.0,
                "--interval",
                "0",
                "-t",
                &secs.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tx starts")
            .into();
        Stream { _rx: rx, _tx: tx, _tx_ring: tx_ring }
    }
}

/// `rtp_app top ARGS` on an 80x24 pseudo-terminal that is its controlling terminal, with
/// everything it writes collected and also parsed into a screen.
struct PtyTop {
    /// Killed and reaped if the test fails before top exits.
    child: KillOnDrop,
    master: std::fs::File,
    /// The slave side, kept to read the terminal's mode after top exits.
    slave: OwnedFd,
    raw: Arc<Mutex<Vec<u8>>>,
    screen: Arc<Mutex<vt100::Parser>>,
}

impl PtyTop {
    fn spawn(args: &[&str], env: &[(&str, &str)]) -> PtyTop {
        let ws = Winsize { ws_row: 24, ws_col: 80, ws_xpixel: 0, ws_ypixel: 0 };
        let pty = openpty(&ws, None).expect("openpty");
        let mut cmd = Command::new(bin());
        cmd.arg("top").args(args).env_remove("NO_COLOR").env("TERM", "xterm-256color").env("RUST_LOG", "warn");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let io = |fd: &OwnedFd| Stdio::from(fd.try_clone().expect("dup"));
        cmd.stdin(io(&pty.slave)).stdout(io(&pty.slave)).stderr(io(&pty.slave));
        // SAFETY: setsid and ioctl are async-signal-safe and touch only the child's own state; the
        // closure allocates nothing.
        unsafe {
            cmd.pre_exec(|| {
                // A session of its own with the pty (its stdin) as controlling terminal, as a login
                // shell would have: crossterm opens /dev/tty for the size and the keys.
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY as _, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("rtp_app top starts").into();
        let raw = Arc::new(Mutex::new(Vec::new()));
        let screen = Arc::new(Mutex::new(vt100::Parser::new(24.try_into().unwrap(), 80.try_into().unwrap(), 0)));
        let mut reader = std::fs::File::from(pty.master.try_clone().unwrap());
        let (r, s) = (Arc::clone(&raw), Arc::clone(&screen));
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // EIO once every slave descriptor is closed; the test keeps one, so this ends with it.
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                r.lock().unwrap().extend_from_slice(&buf[..n]);
                s.lock().unwrap().process(&buf[..n]);
            }
        });
        PtyTop { child, master: std::fs::File::from(pty.master), slave: pty.slave, raw, screen }
    }

    /// The screen's 24 lines now.
    fn lines(&self) -> Vec<String> {
        self.screen.lock().unwrap().screen().rows(0, 80).collect()
    }

    /// Waits (bounded) until `pred` holds for the screen; returns the screen it held for.
    fn wait_screen(&self, what: &str, limit: Duration, pred: impl Fn(&[String]) -> bool) -> Vec<String> {
        let deadline = Instant::now() + limit;
        loop {
            let l = self.lines();
            if pred(&l) {
                return l;
            }
            if Instant::now() > deadline {
                panic!("{what}: not seen within {limit:?}; screen:\n{}", l.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn send(&mut self, keys: &[u8]) {
        self.master.write_all(keys).unwrap();
    }

    /// Waits (bounded) for top to exit, then returns its status and everything it wrote.
    fn finish(mut self, limit: Duration) -> (std::process::ExitStatus, Vec<u8>, OwnedFd) {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                // `self.child` is killed and reaped as the panic unwinds.
                panic!("top did not exit within {limit:?}; screen:\n{}", self.lines().join("\n"));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // Let the reader take the last bytes (the restore sequences) off the master.
        std::thread::sleep(Duration::from_millis(300));
        let raw = self.raw.lock().unwrap().clone();
        (status, raw, self.slave)
    }
}

/// The table line of channel `ch` ("0  run   socket ..."), split into cells.
fn channel_row(lines: &[String], ch: u32) -> Option<Vec<String>> {
    let head = lines.iter().position(|l| l.starts_with("CH STATE"))?;
    lines[head + 1..]
        .iter()
        .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .find(|c| c.first().map(String::as_str) == Some(&ch.to_string()) && c.len() >= 12)
}

/// "pushed N" of the detail pane.
fn pushed(lines: &[String]) -> Option<u64> {
    lines.iter().find_map(|l| l.split("pushed ").nth(1)?.split_whitespace().next()?.parse().ok())
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Asserts the terminal was put back: alternate screen left and cursor shown after the last
/// entry, and the pty in cooked mode again (canonical input and echo on).
fn assert_restored(raw: &[u8], slave: &OwnedFd) {
    let last = |n: &[u8]| raw.windows(n.len()).rposition(|w| w == n);
    let (enter, leave) = (last(b"\x1b[?1049h"), last(b"\x1b[?1049l"));
    assert!(enter.is_some(), "top never entered the alternate screen");
    assert!(leave > enter, "alternate screen not left at the end (enter {enter:?}, leave {leave:?})");
    assert!(last(b"\x1b[?25h") > last(b"\x1b[?25l"), "cursor not shown again at the end");
    let t = tcgetattr(slave).unwrap();
    assert!(t.local_flags.contains(LocalFlags::ICANON | LocalFlags::ECHO), "raw mode still on: {:?}", t.local_flags);
}

/// The SGR (`ESC [ ... m`) parameters in `raw` that set a colour (30-38, 40-48, 90-97, 100-107).
fn colour_sgr(raw: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(raw);
    let mut found = vec![];
    for seq in text.split("\x1b[").skip(1) {
        let Some(end) = seq.find(|c: char| !(c.is_ascii_digit() || c == ';' || c == ':')) else { continue };
        if !seq[end..].starts_with('m') {
            continue;
        }
        let params = &seq[..end];
        let colour = params
            .split([';', ':'])
            .filter_map(|p| p.parse::<u32>().ok())
            .any(|p| matches!(p, 30..=38 | 40..=48 | 90..=97 | 100..=107));
        if colour {
            found.push(params.to_string());
        }
    }
    found
}

#[test]
fn live_view_shows_rows_that_change_and_q_restores_the_terminal() {
    let ring = ShmRing::new("top-live");
    let _stream = Stream::start(&ring, "top-live", 1000, 30);
    let mut top = PtyTop::spawn(&["--backend", "shm", "--shm-name", &ring.0, "--interval", "0.5"], &[]);
    let first = top.wait_screen("a running row with a nonzero IN/s", Duration::from_secs(10), |l| {
        channel_row(l, 0).is_some_and(|c| c[1] == "run" && c[3].parse::<u64>().is_ok_and(|pps| pps > 0))
            && pushed(l).is_some()
    });
    let n1 = pushed(&first).unwrap();
    for l in &first {
        assert!(l.chars().count() <= 80);
    }
    assert!(first.iter().any(|l| l.starts_with("Channel 0 ")), "detail pane: {}", first.join("\n"));
    assert!(first.iter().any(|l| l.starts_with("Holders ") && l.contains("/rtp_app")), "{}", first.join("\n"));
    let later =
        top.wait_screen("the pushed count moving on", Duration::from_secs(5), |l| pushed(l).is_some_and(|n| n > n1));
    eprintln!("first screen:\n{}\nlater screen:\n{}", first.join("\n"), later.join("\n"));

    // Pause: the count stops; p again resumes.
    top.send(b"p");
    let paused = top.wait_screen("PAUSED in the title", Duration::from_secs(3), |l| l[0].contains("PAUSED"));
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(pushed(&top.lines()), pushed(&paused), "values froze while paused");
    top.send(b" ");
    top.wait_screen("live again", Duration::from_secs(3), |l| l[0].contains("live"));

    top.send(b"q");
    let (status, raw, slave) = top.finish(Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "q exits 0");
    assert!(contains(&raw, b"\x1b[?1049l") && contains(&raw, b"\x1b[?25h"));
    assert_restored(&raw, &slave);
    assert!(!colour_sgr(&raw).is_empty(), "with colours allowed the view uses some (the NO_COLOR test's control)");
}

#[test]
fn sigterm_and_sigint_end_the_live_view_with_the_terminal_restored() {
    let ring = ShmRing::new("top-term");
    let _stream = Stream::start(&ring, "top-term", 200, 20);
    for sig in ["-TERM", "-INT"] {
        let top = PtyTop::spawn(&["--backend", "shm", "--shm-name", &ring.0], &[]);
        top.wait_screen("the table", Duration::from_secs(10), |l| channel_row(l, 0).is_some());
        let st = Command::new("kill").args([sig, &top.child.id().to_string()]).status().unwrap();
        assert!(st.success());
        let (status, raw, slave) = top.finish(Duration::from_secs(5));
        assert_eq!(status.code(), Some(0), "kill {sig} exits 0");
        assert_restored(&raw, &slave);
    }
}

#[test]
fn no_color_draws_without_colour_sequences() {
    let ring = ShmRing::new("top-nocolor");
    let _stream = Stream::start(&ring, "top-nocolor", 200, 20);
    for (args, env) in [
        (vec!["--backend", "shm", "--shm-name", &ring.0, "--interval", "0.3"], vec![("NO_COLOR", "1")]),
        (vec!["--backend", "shm", "--shm-name", &ring.0, "--interval", "0.3", "--no-color"], vec![]),
        (vec!["--backend", "shm", "--shm-name", &ring.0, "--interval", "0.3"], vec![("TERM", "dumb")]),
    ] {
        let mut top = PtyTop::spawn(&args, &env);
        top.wait_screen("the table with rates", Duration::from_secs(10), |l| {
            channel_row(l, 0).is_some_and(|c| c[3] != "-")
        });
        std::thread::sleep(Duration::from_millis(700));
        top.send(b"q");
        let (status, raw, slave) = top.finish(Duration::from_secs(5));
        assert_eq!(status.code(), Some(0));
        assert_restored(&raw, &slave);
        assert_eq!(colour_sgr(&raw), Vec::<String>::new(), "{args:?} {env:?}: colour sequences");
    }
}

#[test]
fn once_prints_plain_text_within_80_columns_with_the_stream_rates() {
    let ring = ShmRing::new("top-once");
    let _stream = Stream::start(&ring, "top-once", 1000, 20);
    std::thread::sleep(Duration::from_millis(500));
    let t0 = Instant::now();
    let out = run(&["top", "--once", "--backend", "shm", "--shm-name", &ring.0, "--interval", "0.5"]);
    let took = t0.elapsed();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    eprintln!("{text}");
    assert!(!text.contains('\x1b'), "no escape codes in --once");
    for l in text.lines() {
        assert!(l.chars().count() <= 80, "{} columns: {l}", l.chars().count());
    }
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    let row = channel_row(&lines, 0).expect("a row for channel 0");
    let pps: u64 = row[3].parse().unwrap();
    // 1000 packets/s over 0.5 s: allow for scheduling on a loaded 2-core host.
    assert!((500..=1500).contains(&pps), "IN/s {pps}: {text}");
    assert_eq!((row[1].as_str(), row[2].as_str()), ("run", "socket"));
    assert!(text.contains(&format!("Channel 0 {}", ring.path().display())));
    assert!(took >= Duration::from_millis(500), "two samples --interval apart, took {took:?}");
}

#[test]
fn json_snapshots_carry_the_rates() {
    let ring = ShmRing::new("top-json");
    let _stream = Stream::start(&ring, "top-json", 1000, 20);
    std::thread::sleep(Duration::from_millis(500));
    let out = run(&["top", "--once", "--json", "--backend", "shm", "--shm-name", &ring.0, "--interval", "0.5"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let recs = json_lines(&out.stdout);
    assert_eq!(recs.len(), 1, "--once --json prints one record");
    let ch = &recs[0]["channels"][0];
    assert_eq!(recs[0]["event"], "top");
    assert_eq!(recs[0]["backend"], "shm");
    assert_eq!(ch["path"], ring.path().display().to_string());
    assert_eq!(ch["state"], "running");
    let pps = ch["pps_in"].as_f64().unwrap();
    assert!((500.0..=1500.0).contains(&pps), "pps_in {pps}");
    assert!(ch["pushed_packets"].as_u64().unwrap() > 0);
    assert!(ch["holders"].as_array().unwrap().iter().any(|h| h["comm"] == "rtp_app"), "{ch}");

    // Without --once: one record per interval until -t.
    let out = run(&["top", "--json", "--backend", "shm", "--shm-name", &ring.0, "--interval", "0.3", "-t", "1.1"]);
    assert!(out.status.success());
    let recs = json_lines(&out.stdout);
    assert!((2..=4).contains(&recs.len()), "{} records in 1.1 s at 0.3 s", recs.len());
    let pushed: Vec<u64> = recs.iter().map(|r| r["channels"][0]["pushed_packets"].as_u64().unwrap()).collect();
    assert!(pushed.windows(2).all(|w| w[1] > w[0]), "the counters move between records: {pushed:?}");
}

#[test]
fn bad_setups_get_clear_errors() {
    let dir = std::env::temp_dir().join(format!("rtpapp-top-empty-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out =
        Command::new(bin()).args(["top", "--once", "--backend", "shm"]).env("RTPMGR_SHM_DIR", &dir).output().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no shm ring") && err.contains("--shm-name"), "{err}");

    let out = run(&["top", "--once", "--backend", "shm", "--shm-name", "rtpapp-test-top-no-such-ring"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));

    let ring = ShmRing::new("top-pipe");
    let _stream = Stream::start(&ring, "top-pipe", 100, 10);
    // stdout is a pipe here: the live view refuses and says what to use instead.
    let out = run(&["top", "--backend", "shm", "--shm-name", &ring.0]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("use --once or --json"));
    let out = run(&["top", "--once", "--backend", "shm", "--shm-name", &ring.0, "--interval", "0.01"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("too short"));
}

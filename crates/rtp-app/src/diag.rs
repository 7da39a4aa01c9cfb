//! `rtp_app diag`: field diagnostics, one PASS/FAIL line per check.
//!
//! Kernel backend checks, in order (later checks still run when an earlier one fails, so a
//! field engineer sees everything at once; checks that cannot run without the device FAIL with
//! the reason):
//! 1. `module`      /sys/module/rtp_mgr exists
//! 2. `abi`         GET_INFO's ABI version against the one compiled in (same major, module
//!    minor >= ours)
//! 3. `device N`    every /dev/rtp_mgrN: a character device, group `rtpmgr`, mode 0660
//! 4. `config`      ring geometry is consistent (power-of-two slots, payload in range, stride)
//! 5. `stats`       GET_STATS/GET_STATUS readable and conserved
//!    (pushed == popped + drops + ready)
//! 6. `ring-selftest` push N slots of RTP and pop them back unchanged, on an idle channel
//! 7. `udp-loopback` send N RTP packets to 127.0.0.1 and receive them into ring slots
//!
//! With `--backend shm` checks 1 and 3 are replaced by `shm` (the ring file can be created and
//! mapped), so the same command runs on a host.

use crate::backend::{describe, open, open_exclusive};
use crate::net::{poll_fd, RxSocket, TxSocket};
use crate::rtp::{self, RtpGenerator, StreamParams};
use anyhow::{bail, Context, Result};
use rtpmgr::{Backend, Channel, Consumer, Ring, WriteSlot};
use rtpmgr_abi::{RtpmInfo, RTPM_ABI_MAJOR, RTPM_ABI_MINOR};
use serde::Serialize;
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Packets of the ring and UDP self-tests.
pub const SELFTEST_PACKETS: usize = 64;

/// One check's result.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub pass: bool,
    pub detail: String,
}

impl Check {
    fn pass(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self { name: name.into(), pass: true, detail: detail.into() }
    }
    fn fail(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self { name: name.into(), pass: false, detail: detail.into() }
    }
    fn from_result(name: &str, r: Result<String>) -> Self {
        match r {
            Ok(d) => Self::pass(name, d),
            Err(e) => Self::fail(name, format!("{e:#}")),
        }
    }

    /// "PASS name: detail" / "FAIL name: detail".
    pub fn line(&self) -> String {
        format!("{} {}: {}", if self.pass { "PASS" } else { "FAIL" }, self.name, self.detail)
    }
}

/// Where diag looks; fields so tests can point it at a fake tree.
#[derive(Debug, Clone)]
pub struct DiagEnv {
    /// Normally /sys/module/rtp_mgr.
    pub module_dir: PathBuf,
    /// Normally /dev.
    pub dev_dir: PathBuf,
    /// Normally /etc/group.
    pub group_file: PathBuf,
    /// Group the device nodes must belong to.
    pub group: String,
}

impl Default for DiagEnv {
    fn default() -> Self {
        Self {
            module_dir: "/sys/module/rtp_mgr".into(),
            dev_dir: "/dev".into(),
            group_file: "/etc/group".into(),
            group: "rtpmgr".into(),
        }
    }
}

/// gid of `name` in an /etc/group-format file.
fn gid_of(group_file: &Path, name: &str) -> Option<u32> {
    let text = std::fs::read_to_string(group_file).ok()?;
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == name).then_some(())?;
        f.next()?;
        f.next()?.parse().ok()
    })
}

/// Check 1 (kernel).
pub fn check_module(env: &DiagEnv) -> Check {
    if env.module_dir.is_dir() {
        let version = std::fs::read_to_string(env.module_dir.join("version")).unwrap_or_default();
        let v = version.trim();
        Check::pass(
            "module",
            format!("rtp_mgr loaded{}", if v.is_empty() { String::new() } else { format!(" (version {v})") }),
        )
    } else {
        Check::fail(
            "module",
            format!("rtp_mgr is not loaded ({} missing): run 'modprobe rtp_mgr'", env.module_dir.display()),
        )
    }
}

/// Check 2: the ABI the ring reports against the compiled-in one.
pub fn check_abi(info: &RtpmInfo) -> Check {
    let (maj, min) = (info.abi_major, info.abi_minor);
    let detail = format!("ring ABI {maj}.{min}, rtp_app built for {RTPM_ABI_MAJOR}.{RTPM_ABI_MINOR}");
    // A newer minor only adds; an older one may lack what this binary uses.
    #[allow(clippy::absurd_extreme_comparisons)] // RTPM_ABI_MINOR is 0 today, not forever
    let compatible = maj == RTPM_ABI_MAJOR && min >= RTPM_ABI_MINOR;
    if compatible {
        Check::pass("abi", detail)
    } else {
        Check::fail("abi", format!("{detail}: incompatible, install matching rtp_app and module versions"))
    }
}

/// Check 3 (kernel): every /dev/rtp_mgrN for N < channels.
pub fn check_device_nodes(env: &DiagEnv, channels: u32) -> Vec<Check> {
    let gid = gid_of(&env.group_file, &env.group);
    (0..channels.max(1))
        .map(|n| {
            let name = format!("device {n}");
            let path = env.dev_dir.join(format!("{}{n}", rtpmgr_abi::RTPM_DEVICE_PREFIX));
            let md = match std::fs::metadata(&path) {
                Ok(m) => m,
                Err(e) => return Check::fail(name, format!("{}: {e}", path.display())),
            };
            let mode = md.mode() & 0o7777;
            let mut problems = vec![];
            if !md.file_type().is_char_device() {
                problems.push("not a character device".to_string());
            }
            if mode != 0o660 {
                problems.push(format!("mode {mode:04o}, expected 0660"));
            }
            match gid {
                Some(g) if g == md.gid() => {}
                Some(g) => problems.push(format!("group id {}, expected {} ({g})", md.gid(), env.group)),
                None => problems.push(format!("group '{}' does not exist", env.group)),
            }
            let detail = format!("{} mode {mode:04o} uid {} gid {}", path.display(), md.uid(), md.gid());
            if problems.is_empty() {
                Check::pass(name, detail)
            } else {
                Check::fail(name, format!("{detail}: {} (see the udev rule 60-rtp-mgr.rules)", problems.join(", ")))
            }
        })
        .collect()
}

/// Check 4.
pub fn check_config(info: &RtpmInfo) -> Check {
    let c = &info.config;
    let mut problems = vec![];
    if !(rtpmgr_abi::RTPM_RING_ORDER_MIN..=rtpmgr_abi::RTPM_RING_ORDER_MAX).contains(&c.ring_order) {
        problems.push(format!("ring_order {} out of range", c.ring_order));
    } else if info.slot_count != 1 << c.ring_order {
        problems.push(format!("slot_count {} is not 2^{}", info.slot_count, c.ring_order));
    }
    if !(rtpmgr_abi::RTPM_SLOT_PAYLOAD_MIN..=rtpmgr_abi::RTPM_SLOT_PAYLOAD_MAX).contains(&c.slot_payload) {
        problems.push(format!("slot_payload {} out of range", c.slot_payload));
    }
    if info.slot_stride != 0
        && (info.slot_stride < c.slot_payload || !info.slot_stride.is_multiple_of(rtpmgr_abi::RTPM_SLOT_ALIGN))
    {
        problems.push(format!("slot_stride {} does not hold {}-byte aligned slots", info.slot_stride, c.slot_payload));
    }
    if c.drop_policy > rtpmgr_abi::RTPM_DROP_OLDEST {
        problems.push(format!("unknown drop_policy {}", c.drop_policy));
    }
    let detail = format!(
        "channel {}: {} slots x {} bytes, drop {}, {}",
        info.channel,
        info.slot_count,
        c.slot_payload,
        if c.drop_policy == rtpmgr_abi::RTPM_DROP_OLDEST { "drop-oldest" } else { "reject-newest" },
        crate::ctl::state_name(info.state)
    );
    if problems.is_empty() {
        Check::pass("config", detail)
    } else {
        Check::fail("config", format!("{detail}: {}", problems.join(", ")))
    }
}

/// Check 5: counters readable and conserved. Retried a few times because a live producer can
/// push between the two reads.
pub fn check_stats(ctl: &Channel) -> Check {
    let mut last = String::new();
    for _ in 0..5 {
        let r = (|| -> Result<bool> {
            let s = ctl.stats().context("GET_STATS failed")?;
            let st = ctl.status().context("GET_STATUS failed")?;
            let rhs = s.popped_packets + s.drops + u64::from(st.ready);
            last = format!(
                "pushed {} popped {} drops {} ready {} overruns {} malformed {} illegal_ops {}",
                s.pushed_packets, s.popped_packets, s.drops, st.ready, s.overruns, s.malformed, s.illegal_ops
            );
            Ok(s.pushed_packets == rhs)
        })();
        match r {
            Ok(true) => return Check::pass("stats", last),
            Ok(false) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Check::fail("stats", format!("{e:#}")),
        }
    }
    Check::fail("stats", format!("{last}: pushed != popped + drops + ready"))
}

fn selftest_stream(ssrc: u32) -> StreamParams {
    StreamParams {
        ssrc,
        payload_type: 96,
        clock_rate: 90_000,
        rate: 1000,
        payload_len: 100,
        first_seq: 0,
        first_timestamp: 0,
    }
}

/// Runs `f` with the channel RUNNING, restoring STOPPED afterwards if that is how it was.
fn with_running<T>(ring: &Ring, f: impl FnOnce(&Ring) -> Result<T>) -> Result<T> {
    let ch = ring.channel();
    let was_stopped = !ch.is_running()?;
    if was_stopped {
        ch.start().context("cannot start the channel for the self-test")?;
    }
    let r = f(ring);
    if was_stopped {
        if let Err(e) = ch.stop() {
            log::warn!("cannot stop the channel again after the self-test: {e:#}");
        }
    }
    r
}

/// Pop until the `expect` packets of `ssrc` came back (bounded), checking content, releasing
/// everything popped. Stale READY slots from before are consumed and reported.
fn pop_ours(rx: &mut Consumer, ssrc: u32, expect: &[Vec<u8>]) -> Result<usize> {
    let mut got = 0usize;
    let mut stale = 0usize;
    let deadline = Instant::now() + Duration::from_secs(2);
    while got < expect.len() {
        if Instant::now() > deadline {
            bail!("only {got} of {} packets came back out of the ring within 2 s", expect.len());
        }
        let mut mismatch = None;
        for slot in rx.pop_batch_wait(32, Some(Duration::from_millis(50)))? {
            let data = slot.data();
            match rtp::parse(data) {
                Ok(info) if info.ssrc == ssrc => {
                    if got < expect.len() && data != expect[got].as_slice() {
                        mismatch.get_or_insert(format!("packet {got} changed in the ring"));
                    }
                    got += 1;
                }
                _ => stale += 1,
            }
        }
        rx.flush().context("release failed")?;
        if let Some(m) = mismatch {
            bail!(m);
        }
    }
    Ok(stale)
}

/// Pushes `slots` and fails unless the ring took them all.
fn push_all(tx: &mut rtpmgr::Producer, slots: Vec<WriteSlot>) -> Result<()> {
    let n = slots.len();
    let k = tx.push_batch(slots).context("push failed")?;
    if k != n {
        bail!("push of {n} slots pushed {k}");
    }
    Ok(())
}

/// The self-tests go through the ring in steps of this many packets, each popped back before the
/// next is reserved: a channel configured with few slots (16 and up) passes as well as a large one.
const SELFTEST_STEP: usize = 16;

/// Reserves up to `want` slots. A full ring here holds only slots nobody will pop (the self-test
/// pops its own packets before it reserves again): they are popped, released and counted in
/// `stale`, and the reservation is retried, for at most 2 s.
fn reserve_draining(
    tx: &mut rtpmgr::Producer,
    rx: &mut Consumer,
    want: usize,
    stale: &mut usize,
) -> Result<Vec<WriteSlot>> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match tx.reserve_batch(want) {
            Ok(v) if !v.is_empty() => return Ok(v),
            Ok(_) => {}
            Err(e) if e.is_would_block() => {}
            Err(e) if e.errno() == nix::errno::Errno::EPIPE => bail!("channel stopped during the self-test"),
            Err(e) => return Err(anyhow::Error::new(e).context("cannot reserve slots")),
        }
        if Instant::now() > deadline {
            bail!("ring full: cannot reserve slots for the self-test for 2 s (another producer filling it?)");
        }
        *stale += rx.pop_batch_wait(32, Some(Duration::from_millis(10)))?.len();
        rx.flush().context("release failed")?;
    }
}

/// Check 6: RESERVE/PUSH/POP/RELEASE of SELFTEST_PACKETS RTP packets, content compared.
pub fn ring_selftest(ring: &Ring) -> Result<String> {
    let ssrc = 0x5e1f_7e57 ^ std::process::id();
    let mut gen = RtpGenerator::new(selftest_stream(ssrc))?;
    let t0 = Instant::now();
    let stale = with_running(ring, |ring| {
        let (mut tx, mut rx) = (ring.producer(), ring.consumer());
        let mut stale = 0usize;
        let mut done = 0usize;
        while done < SELFTEST_PACKETS {
            let mut step: Vec<Vec<u8>> = Vec::new();
            let want = (SELFTEST_PACKETS - done).min(SELFTEST_STEP);
            let mut slots = reserve_draining(&mut tx, &mut rx, want, &mut stale)?;
            for s in &mut slots {
                let len = gen.write_next(s.buf_mut())?;
                s.set_len(len)?;
                s.set_arrival_ns(rtpmgr::monotonic_ns());
                step.push(s.buf_mut()[..len].to_vec());
            }
            push_all(&mut tx, slots)?;
            stale += pop_ours(&mut rx, ssrc, &step)?;
            done += step.len();
        }
        Ok(stale)
    })?;
    Ok(format!(
        "{SELFTEST_PACKETS} RTP packets pushed and popped back unchanged in {:.1} ms{}",
        t0.elapsed().as_secs_f64() * 1e3,
        if stale > 0 { format!(" ({stale} stale READY slots consumed)") } else { String::new() }
    ))
}

/// The SSRC of udp_selftest's stream, the last one the self-test channel tracks.
fn udp_selftest_ssrc() -> u32 {
    0x0d1a_9000 ^ std::process::id()
}

/// Check 7: RTP over UDP 127.0.0.1 received with recvmmsg into ring slots, pushed, popped and
/// verified (content unchanged, so sequence numbers consecutive).
pub fn udp_selftest(ring: &Ring) -> Result<String> {
    let ssrc = udp_selftest_ssrc();
    let mut gen = RtpGenerator::new(selftest_stream(ssrc))?;
    let mut sock = RxSocket::bind(IpAddr::V4(Ipv4Addr::LOCALHOST), 0, 1 << 20)?;
    let dst = sock.local_addr()?;
    let mut out = TxSocket::connect((Ipv4Addr::LOCALHOST, 0).into(), dst, 1 << 20)?;
    let mut sent: Vec<Vec<u8>> = Vec::with_capacity(SELFTEST_PACKETS);
    for _ in 0..SELFTEST_PACKETS {
        let mut b = vec![0u8; gen.packet_len()];
        gen.write_next(&mut b)?;
        sent.push(b);
    }
    let t0 = Instant::now();
    with_running(ring, |ring| {
        let (mut tx, mut rx) = (ring.producer(), ring.consumer());
        let mut stale = 0usize;
        let mut meta = Vec::new();
        // One step at a time: sent, received into slots, pushed, popped back and compared.
        for step in sent.chunks(SELFTEST_STEP) {
            let refs: Vec<&[u8]> = step.iter().map(|v| v.as_slice()).collect();
            let mut off = 0usize;
            while off < refs.len() {
                off += out.send_batch(&refs[off..]).context("sendmmsg to loopback failed")?;
            }
            // Reserved, not yet filled slots: never more than the step still to receive, so
            // none is left over.
            let mut pool: Vec<WriteSlot> = Vec::new();
            let mut received = 0usize;
            let deadline = Instant::now() + Duration::from_secs(2);
            while received < step.len() {
                if Instant::now() > deadline {
                    bail!("only {received} of {} datagrams arrived on {dst} within 2 s", step.len());
                }
                let want = (step.len() - received).saturating_sub(pool.len());
                if want > 0 {
                    pool.extend(reserve_draining(&mut tx, &mut rx, want, &mut stale)?);
                }
                poll_fd(sock.fd(), libc::POLLIN, Duration::from_millis(50))?;
                let got = {
                    let mut bufs: Vec<&mut [u8]> = pool.iter_mut().map(|s| s.buf_mut()).collect();
                    sock.recv_batch(&mut bufs, &mut meta)?
                };
                if got == 0 {
                    continue;
                }
                for (slot, m) in pool.iter_mut().zip(&meta) {
                    slot.set_len(m.len)?;
                    slot.set_arrival_ns(m.arrival_ns);
                }
                push_all(&mut tx, pool.drain(..got).collect())?;
                received += got;
            }
            stale += pop_ours(&mut rx, ssrc, step)?;
        }
        Ok(stale)
    })?;
    Ok(format!(
        "{SELFTEST_PACKETS} RTP packets sent to {dst}, received into ring slots, popped back unchanged in {:.1} ms",
        t0.elapsed().as_secs_f64() * 1e3
    ))
}

/// Check 8 (kernel): the RFC 3550 numbers of the self-test stream (GET_QUALITY) after
/// udp_selftest: its SSRC tracked, every packet received, none lost.
pub fn quality_selftest(channel: u32) -> Result<String> {
    // Read-only, like top: reading the numbers must not need (or take) more than that.
    let ch = rtpmgr::Channel::open_read_only(&rtpmgr::Backend::kernel(channel))?;
    let q = ch.quality()?;
    let ssrc = udp_selftest_ssrc();
    if q.ssrc != ssrc {
        bail!("GET_QUALITY tracks SSRC {:#010x}, not the self-test stream's {ssrc:#010x}", q.ssrc);
    }
    if q.received < SELFTEST_PACKETS as u64 || q.lost != 0 {
        bail!(
            "the self-test stream of {SELFTEST_PACKETS} packets counts {} received, {} expected, {} lost",
            q.received,
            q.expected,
            q.lost
        );
    }
    Ok(format!(
        "SSRC {ssrc:#010x}: {} received, {} expected, 0 lost, jitter {} timestamp units",
        q.received, q.expected, q.jitter
    ))
}

/// Check 9 (kernel): the events group works: resolved, joined, and a STOP and START of the
/// self-test channel (idle, held exclusively, left as it was) come back as events of it.
pub fn events_selftest(ring: &Ring) -> Result<String> {
    use crate::monitor::{event_name, EventSocket};
    const START: u32 = 1;
    const STOP: u32 = 2;
    let ch = ring.channel();
    let number = ch.info()?.channel;
    let events = EventSocket::open()?;
    let running = ch.is_running()?;
    let order = if running { [STOP, START] } else { [START, STOP] };
    for e in order {
        let r = if e == START { ch.start() } else { ch.stop() };
        if let Err(err) = r {
            if err.errno() == nix::errno::Errno::EPERM {
                return Ok(format!(
                    "family rtp_mgr resolved, events group joined; no START/STOP of rtp_mgr{number} tried \
                     (needs CAP_NET_ADMIN)"
                ));
            }
            return Err(anyhow::Error::new(err).context(format!("cannot {} rtp_mgr{number}", event_name(e))));
        }
    }
    let mut seen = Vec::new();
    let mut buf = vec![0u8; 16384];
    let deadline = Instant::now() + Duration::from_secs(2);
    while seen != order && Instant::now() < deadline {
        let batch = events.next(&mut buf, Duration::from_millis(100)).context("cannot read events")?;
        seen.extend(batch.unwrap_or_default().iter().filter(|e| e.channel == number).map(|e| e.event));
    }
    if seen != order {
        let names: Vec<String> = seen.iter().map(|e| event_name(*e)).collect();
        bail!(
            "{} and {} of rtp_mgr{number} did not come back as events within 2 s (seen: [{}])",
            event_name(order[0]),
            event_name(order[1]),
            names.join(", ")
        );
    }
    Ok(format!(
        "{} and {} of rtp_mgr{number} seen on the rtp_mgr events group",
        event_name(order[0]),
        event_name(order[1])
    ))
}

/// How diag reaches channels.
#[derive(Debug, Clone)]
pub struct DiagTarget {
    /// The channel named on the command line (or the shm ring).
    pub backend: Backend,
    /// Whether another kernel channel (`Backend::kernel(n)`) may be picked for the self-tests
    /// when this one is busy; false for shm (diag uses a private ring there).
    pub other_channels: bool,
}

/// An idle channel for the self-tests, opened exclusively (see [`open_exclusive`]): the given
/// one if nobody else has it open, otherwise the highest-numbered idle one (production
/// pipelines use the low channels). Held exclusively, a channel cannot be opened by a pipeline
/// starting meanwhile, so self-test packets never reach one; the opener count also rules out
/// programs that open the device without the ring library.
fn idle_channel(t: &DiagTarget, channels: u32) -> Result<(String, Ring)> {
    let try_claim = |b: &Backend| -> Option<(String, Ring)> {
        let ring = match open_exclusive(b) {
            Ok(r) => r,
            Err(e) => {
                log::debug!("{}: not idle: {e:#}", describe(b));
                return None;
            }
        };
        match ring.channel().status() {
            Ok(s) if s.openers == 1 => Some((describe(b), ring)),
            Ok(s) => {
                log::debug!("{}: {} other opener(s) outside the ring library", describe(b), s.openers - 1);
                None
            }
            Err(e) => {
                log::debug!("{}: GET_STATUS failed: {e:#}", describe(b));
                None
            }
        }
    };
    if let Some(found) = try_claim(&t.backend) {
        return Ok(found);
    }
    if t.other_channels {
        for n in (0..channels).rev() {
            if let Some(found) = try_claim(&Backend::kernel(n)) {
                return Ok(found);
            }
        }
    }
    bail!("every channel is in use by another process; stop one pipeline (or load the module with more channels) to run the self-tests")
}

/// Run every check.
pub fn run(t: &DiagTarget, env: &DiagEnv) -> Vec<Check> {
    let mut checks = Vec::new();
    let kernel = t.backend.kind() == rtpmgr::BackendKind::Kernel;
    if kernel {
        checks.push(check_module(env));
    }
    let ctl = match open(&t.backend) {
        Ok(c) => c,
        Err(e) => {
            let name = if kernel { "abi" } else { "shm" };
            checks.push(Check::fail(name, format!("cannot open {}: {e:#}", describe(&t.backend))));
            if kernel {
                // Still report the nodes: a wrong permission is the usual cause of EACCES.
                let channels = std::fs::read_to_string(env.module_dir.join("parameters/channels"))
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                    .unwrap_or(1);
                checks.extend(check_device_nodes(env, channels));
            }
            for name in ["config", "stats", "ring-selftest", "udp-loopback"] {
                checks.push(Check::fail(name, format!("not run: {} cannot be opened", describe(&t.backend))));
            }
            return checks;
        }
    };
    if !kernel {
        checks.push(Check::pass("shm", format!("{} opened and mapped", describe(&t.backend))));
    }
    let info = match ctl.info() {
        Ok(i) => i,
        Err(e) => {
            checks.push(Check::fail("abi", format!("GET_INFO failed: {e:#}")));
            return checks;
        }
    };
    checks.push(check_abi(&info));
    if kernel {
        checks.extend(check_device_nodes(env, info.channels));
    }
    checks.push(check_config(&info));
    checks.push(check_stats(&ctl));
    drop(ctl);

    match idle_channel(t, info.channels) {
        Ok((what, ring)) => {
            let r = ring_selftest(&ring).map(|d| format!("{what}: {d}"));
            checks.push(Check::from_result("ring-selftest", r));
            let r = udp_selftest(&ring).map(|d| format!("{what}: {d}"));
            let udp_ok = r.is_ok();
            checks.push(Check::from_result("udp-loopback", r));
            if kernel {
                let number = ring.channel().info().map(|i| i.channel);
                match number {
                    Ok(n) if udp_ok => checks.push(Check::from_result("quality", quality_selftest(n))),
                    Ok(_) => checks.push(Check::fail("quality", "not run: the UDP self-test failed")),
                    Err(e) => checks.push(Check::fail("quality", format!("{e:#}"))),
                }
                checks.push(Check::from_result("events", events_selftest(&ring)));
            }
        }
        Err(e) => {
            let msg = format!("{e:#}");
            checks.push(Check::fail("ring-selftest", msg.clone()));
            checks.push(Check::fail("udp-loopback", msg));
        }
    }
    checks
}

/// Print the checks and return whether all passed.
pub fn report(checks: &[Check], json: bool) -> bool {
    let failed = checks.iter().filter(|c| !c.pass).count();
    for c in checks {
        if json {
            crate::control::emit(&serde_json::to_string(c).unwrap_or_default());
        } else {
            crate::control::emit(&c.line());
        }
    }
    let passed = checks.len() - failed;
    if json {
        crate::control::emit(&serde_json::json!({"summary": {"passed": passed, "failed": failed}}).to_string());
    } else {
        crate::control::emit(&format!("diag: {passed} passed, {failed} failed"));
    }
    failed == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp_env(tag: &str) -> (DiagEnv, PathBuf) {
        let root = std::env::temp_dir().join(format!("rtp_app-diag-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("dev")).unwrap();
        std::fs::write(root.join("group"), "root:x:0:\nrtpmgr:x:4242:\n").unwrap();
        let env = DiagEnv {
            module_dir: root.join("sys/module/rtp_mgr"),
            dev_dir: root.join("dev"),
            group_file: root.join("group"),
            group: "rtpmgr".into(),
        };
        (env, root)
    }

    #[test]
    fn module_absent_fails_with_the_fix() {
        let (env, root) = tmp_env("nomod");
        let c = check_module(&env);
        assert!(!c.pass);
        assert!(c.line().starts_with("FAIL module: rtp_mgr is not loaded"), "{}", c.line());
        assert!(c.detail.contains("modprobe rtp_mgr"));
        std::fs::create_dir_all(&env.module_dir).unwrap();
        assert!(check_module(&env).pass);
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn device_node_permissions_are_checked() {
        let (env, root) = tmp_env("nodes");
        // A regular file with the wrong mode and group stands in for a badly created node.
        let p = env.dev_dir.join("rtp_mgr0");
        std::fs::write(&p, "").unwrap();
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
        let c = &check_device_nodes(&env, 2);
        assert_eq!(c.len(), 2);
        assert!(!c[0].pass);
        assert!(c[0].detail.contains("not a character device"), "{}", c[0].detail);
        assert!(c[0].detail.contains("mode 0666, expected 0660"), "{}", c[0].detail);
        assert!(c[0].detail.contains("expected rtpmgr (4242)"), "{}", c[0].detail);
        assert!(!c[1].pass && c[1].detail.contains("rtp_mgr1"));
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn abi_rule() {
        let mut i = RtpmInfo { abi_major: RTPM_ABI_MAJOR, abi_minor: RTPM_ABI_MINOR, ..Default::default() };
        assert!(check_abi(&i).pass);
        i.abi_minor += 1;
        assert!(check_abi(&i).pass, "a newer minor only adds");
        i.abi_major += 1;
        assert!(!check_abi(&i).pass);
    }

    /// A private shm ring of 64 slots (or `order` as set) of 256 bytes, removed on drop.
    struct TmpRing(PathBuf, u32);

    impl TmpRing {
        fn new(tag: &str) -> Self {
            let p = std::env::temp_dir().join(format!("rtp_app-diag-ring-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_file(&p);
            TmpRing(p, 6)
        }
        fn with_order(mut self, order: u32) -> Self {
            self.1 = order;
            self
        }
        fn backend(&self) -> Backend {
            let cfg = rtpmgr::Config { ring_order: self.1, slot_payload: 256, ..Default::default() };
            Backend::shm_at(&self.0).with_create_config(cfg)
        }
    }

    impl Drop for TmpRing {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    #[test]
    fn full_diag_on_a_shm_ring_passes_and_leaves_nothing_owned() {
        let ring = TmpRing::new("full");
        let t = DiagTarget { backend: ring.backend(), other_channels: false };
        let checks = run(&t, &DiagEnv::default());
        for c in &checks {
            assert!(c.pass, "{}", c.line());
        }
        let names: Vec<_> = checks.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["shm", "abi", "config", "stats", "ring-selftest", "udp-loopback"]);
        let st = Channel::open(&ring.backend()).unwrap().status().unwrap();
        assert_eq!((st.producing, st.consuming, st.ready), (0, 0, 0), "{st:?}");
        assert_eq!(st.openers, 1, "every handle diag opened was closed");
        assert_ne!(st.state, rtpmgr_abi::RTPM_STATE_RUNNING, "a stopped channel is left stopped");
    }

    /// A channel configured with 16 slots, 10 of them READY from a producer that went away (what
    /// the conformance suite left on the guest's test channel): diag's 64-packet self-tests go
    /// through in steps, consume the stale slots and pass.
    #[test]
    fn self_tests_pass_on_a_small_ring_holding_stale_packets() {
        let ring = TmpRing::new("small").with_order(4);
        {
            let ch = Channel::open(&ring.backend()).unwrap();
            ch.start().unwrap();
            let mut tx = ch.producer().unwrap();
            let mut slots = tx.reserve_batch(10).unwrap();
            for s in &mut slots {
                s.buf_mut()[..12].copy_from_slice(&[0x80, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9]);
                s.set_len(12).unwrap();
            }
            assert_eq!(tx.push_batch(slots).unwrap(), 10);
        }
        let t = DiagTarget { backend: ring.backend(), other_channels: false };
        let checks = run(&t, &DiagEnv::default());
        for c in &checks {
            assert!(c.pass, "{}", c.line());
        }
        let ring_check = checks.iter().find(|c| c.name == "ring-selftest").unwrap();
        assert!(ring_check.detail.contains("(10 stale READY slots consumed)"), "{}", ring_check.line());
    }

    #[test]
    fn a_channel_in_use_gets_no_self_test_packets() {
        let ring = TmpRing::new("busy");
        let pipeline = Channel::open(&ring.backend()).unwrap();
        let t = DiagTarget { backend: ring.backend(), other_channels: false };
        let checks = run(&t, &DiagEnv::default());
        let selftests: Vec<_> =
            checks.iter().filter(|c| c.name == "ring-selftest" || c.name == "udp-loopback").collect();
        assert_eq!(selftests.len(), 2);
        for c in selftests {
            assert!(!c.pass && c.detail.contains("every channel is in use"), "{}", c.line());
        }
        assert_eq!(pipeline.stats().unwrap().pushed_packets, 0, "diag pushed into a pipeline's channel");
    }

    #[test]
    fn unopenable_backend_fails_every_dependent_check() {
        let t = DiagTarget { backend: Backend::shm_at("/nonexistent-rtp_app-dir/ring"), other_channels: false };
        let checks = run(&t, &DiagEnv::default());
        assert!(checks.iter().all(|c| !c.pass));
        assert!(!report(&checks, false));
    }
}

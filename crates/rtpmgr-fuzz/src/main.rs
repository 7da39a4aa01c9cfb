//! rtpmgr-fuzz: an ioctl/mmap fuzzer of the rtp_mgr kernel module.
//!
//! A supervisor forks `--procs` worker processes against one channel (`/dev/rtp_mgrN`). Each runs
//! a seeded random sequence of valid and invalid operations: every ioctl of the `rtpmgr-abi`
//! crate with valid, garbage and bad-pointer arguments, undefined request numbers, mmaps and
//! munmaps of random offsets, lengths and protections, forks, closes and reopens, and `kill -9`
//! of each other. The supervisor respawns killed workers. When the time is up it kills and reaps
//! every process, then checks the invariants: no slot left owned, no mapping left counted, stats
//! conserved, a drain leaves the ring FREE, refused operations are counted, and a packet still
//! goes through. Refused operations are the point, never a failure: only a broken invariant, a
//! worker crash or an unusable device fail the run (a kernel crash takes the machine with it).
//!
//! The same `--seed` gives each worker (slot, generation) the same op sequence; the timing of
//! the processes against each other is not reproducible.

mod check;
mod ioc;
mod rng;
mod shared;
mod worker;

use anyhow::{bail, Context, Result};
use clap::Parser;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use shared::{Shared, MAX_PROCS, MAX_REQUESTS};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

const AFTER_HELP: &str = "Examples:
  rtpmgr-fuzz --channel 3 --seconds 120              the device suite's run (suite `fuzz`)
  rtpmgr-fuzz --channel 3 --seconds 3600 --procs 8   longer and wider
  rtpmgr-fuzz --channel 3 --seed 0x1234abcd          replay a run's op sequences

Exit status: 0 invariants held, 1 an invariant was violated, 2 the run could not start.";

#[derive(Debug, Parser)]
#[command(name = "rtpmgr-fuzz", version, about = "ioctl/mmap fuzzer of the rtp_mgr kernel module",
          after_help = AFTER_HELP, max_term_width = 98)]
struct Cli {
    /// Channel to fuzz (/dev/rtp_mgr<n>); it is reconfigured, so not one a service uses.
    #[arg(long, default_value_t = 3, value_name = "n")]
    channel: u32,

    /// Device node to fuzz instead of /dev/rtp_mgr<channel>.
    #[arg(long, value_name = "path")]
    device: Option<PathBuf>,

    /// Length of the run in seconds.
    #[arg(long, default_value_t = 120, value_name = "n")]
    seconds: u64,

    /// Seed of the op sequences (decimal or 0x-hex) [default: from the clock].
    #[arg(long, value_parser = parse_seed, value_name = "s")]
    seed: Option<u64>,

    /// Worker processes (each also forks short-lived children).
    #[arg(long, default_value_t = 4, value_name = "k",
          value_parser = clap::value_parser!(u32).range(1..=MAX_PROCS as i64))]
    procs: u32,

    /// Largest ring a valid CONFIGURE asks for, in KiB (the test guest has 1 GiB of memory).
    #[arg(long, default_value_t = 1024, value_name = "kib",
          value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    max_ring_kib: u64,

    /// Odd-numbered workers drop to this uid (and --unprivileged-gid) [default, when run as root on a
    /// node whose group is not root: uid 65534 (nobody) in the node's group: an unprivileged member
    /// of the device group, who may open the device but not control it].
    #[arg(long, value_name = "uid", conflicts_with = "privileged_only")]
    unprivileged_uid: Option<u32>,

    /// Group of the unprivileged workers [default: the device node's group].
    #[arg(long, value_name = "gid", requires = "unprivileged_uid")]
    unprivileged_gid: Option<u32>,

    /// Every worker keeps this process's privileges.
    #[arg(long)]
    privileged_only: bool,

    /// More log output (-v: per worker, -vv: per violation detail).
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
}

fn parse_seed(s: &str) -> Result<u64, String> {
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    };
    r.map_err(|_| format!("'{s}' is not a number (decimal or 0x-hex)"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = match cli.verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level))
        .format_timestamp(None)
        // The output ends up in console logs: no colour codes.
        .write_style(env_logger::WriteStyle::Never)
        .init();
    match run(&cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("rtpmgr-fuzz: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Who the odd-numbered workers become: the given uid, or by default (as root) nobody in the
/// device node's group, the caller the module's privilege checks are for.
fn unprivileged_identity(cli: &Cli, device: &std::path::Path) -> Result<Option<(u32, u32)>> {
    use std::os::unix::fs::MetadataExt;
    if cli.privileged_only {
        return Ok(None);
    }
    let node_gid = std::fs::metadata(device).with_context(|| format!("stat {}", device.display()))?.gid();
    Ok(match cli.unprivileged_uid {
        Some(uid) => Some((uid, cli.unprivileged_gid.unwrap_or(node_gid))),
        // SAFETY: geteuid has no preconditions.
        None if unsafe { libc::geteuid() } == 0 && node_gid != 0 => Some((NOBODY, node_gid)),
        None => None,
    })
}

/// How often the workers get a quiet phase, and for how long (Shared::quiesce).
const QUIET_EVERY: Duration = Duration::from_secs(4);
const QUIET_FOR: Duration = Duration::from_millis(400);

/// The conventional unprivileged uid.
const NOBODY: u32 = 65534;

/// Per-worker seed: independent streams for every (slot, generation) of one run seed.
fn worker_seed(seed: u64, slot: usize, generation: u64) -> u64 {
    rng::mix(seed ^ rng::mix((slot as u64 + 1) << 32 | generation))
}

struct Supervisor<'a> {
    cli: &'a Cli,
    params: worker::Params,
    shared: &'static Shared,
    seed: u64,
    /// Generation of each worker slot: how many times it was (re)spawned.
    generation: Vec<u64>,
    deaths: u64,
    violations: Vec<String>,
}

impl Supervisor<'_> {
    fn spawn(&mut self, slot: usize) -> Result<()> {
        let generation = self.generation[slot];
        self.generation[slot] += 1;
        let seed = worker_seed(self.seed, slot, generation);
        log::debug!("worker {slot} generation {generation}: seed {seed:#x}");
        // SAFETY: the supervisor is single-threaded, so the child may run any code.
        match unsafe { fork() }.context("fork of a worker")? {
            ForkResult::Child => {
                let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    worker::Worker::new(self.params.clone(), self.shared, slot, generation, seed).run(slot)
                }))
                .map_or(101, |_| 0);
                // SAFETY: the worker leaves without running the supervisor's destructors.
                unsafe { libc::_exit(code) }
            }
            ForkResult::Parent { child } => {
                self.shared.pids[slot].store(child.as_raw(), Relaxed);
                Ok(())
            }
        }
    }

    fn slot_of(&self, pid: Pid) -> Option<usize> {
        self.shared.pids.iter().position(|p| p.load(Relaxed) == pid.as_raw())
    }

    /// Reaps what has exited; returns the worker slots to respawn and whether any child was left.
    fn reap(&mut self, block: bool) -> (Vec<usize>, bool) {
        let mut respawn = Vec::new();
        loop {
            let flags = if block { None } else { Some(WaitPidFlag::WNOHANG) };
            let (pid, what) = match waitpid(None, flags) {
                Ok(WaitStatus::StillAlive) => return (respawn, true),
                Ok(WaitStatus::Exited(pid, code)) => (pid, (code != 0).then(|| format!("exited with {code}"))),
                Ok(WaitStatus::Signaled(pid, sig, _)) => {
                    (pid, (sig != Signal::SIGKILL).then(|| format!("died of {sig}")))
                }
                Ok(_) => continue,
                Err(_) => return (respawn, false),
            };
            let slot = self.slot_of(pid);
            if let Some(s) = slot {
                self.shared.pids[s].store(0, Relaxed);
                self.deaths += 1;
                respawn.push(s);
            }
            if let Some(what) = what {
                let who = match slot {
                    Some(s) => format!("worker {s} generation {}", self.generation[s] - 1),
                    None => "an orphaned child".into(),
                };
                self.violations.push(format!("{who} (pid {pid}) {what}"));
            }
            if block {
                return (respawn, true);
            }
        }
    }

    /// Stops every process of the run: ask, then kill -9, then reap all (this process is their
    /// subreaper, so orphaned grandchildren come back here too).
    fn stop_all(&mut self) {
        self.shared.stop.store(1, Relaxed);
        let asked = Instant::now();
        while asked.elapsed() < Duration::from_secs(2) {
            if !self.reap(false).1 {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let killed_at = Instant::now();
        loop {
            for p in &self.shared.pids {
                let pid = p.load(Relaxed);
                if pid > 0 {
                    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                }
            }
            if !self.reap(false).1 {
                return;
            }
            if killed_at.elapsed() > Duration::from_secs(30) {
                let stuck: Vec<i32> = self.shared.pids.iter().map(|p| p.load(Relaxed)).filter(|&p| p > 0).collect();
                let wchan: Vec<String> = stuck
                    .iter()
                    .map(|p| std::fs::read_to_string(format!("/proc/{p}/wchan")).unwrap_or_default())
                    .collect();
                self.violations.push(format!(
                    "processes survive kill -9 for 30 s (stuck in the kernel?): {stuck:?} wchan {wchan:?}"
                ));
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn run(cli: &Cli) -> Result<bool> {
    let device = cli.device.clone().unwrap_or_else(|| PathBuf::from(format!("/dev/rtp_mgr{}", cli.channel)));
    let seed = cli.seed.unwrap_or_else(|| {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        rng::mix(t.as_nanos() as u64 ^ u64::from(std::process::id()))
    });
    let requests = ioc::catalogue();
    if requests.len() > MAX_REQUESTS {
        bail!("rtpmgr-abi defines {} requests, this fuzzer counts at most {MAX_REQUESTS}", requests.len());
    }
    let before = check::preflight(&device)?;
    println!(
        "fuzz: seed {seed:#x}, {} (ABI {}.{}, {} requests), {} processes, {} s",
        device.display(),
        before.info.abi_major,
        before.info.abi_minor,
        requests.len(),
        cli.procs,
        cli.seconds
    );
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1) } != 0 {
        bail!("prctl(PR_SET_CHILD_SUBREAPER): {}", nix::errno::Errno::last());
    }
    let shared = Shared::map()?;
    let unprivileged = unprivileged_identity(cli, &device)?;
    match unprivileged {
        Some((uid, gid)) => log::info!("odd-numbered workers run as uid {uid} gid {gid}"),
        None => log::info!("every worker runs with this process's privileges"),
    }
    let mut sup = Supervisor {
        cli,
        params: worker::Params { device: device.clone(), max_ring_bytes: cli.max_ring_kib * 1024, unprivileged },
        shared,
        seed,
        generation: vec![0; cli.procs as usize],
        deaths: 0,
        violations: Vec::new(),
    };
    let start = Instant::now();
    let deadline = start + Duration::from_secs(cli.seconds);
    for slot in 0..sup.cli.procs as usize {
        sup.spawn(slot)?;
    }
    let mut next_report = start + Duration::from_secs(10);
    let mut next_quiet = start + QUIET_EVERY;
    while Instant::now() < deadline {
        // Quiet phases: see Shared::quiesce.
        let now = Instant::now();
        if now >= next_quiet {
            let on = shared.quiesce.load(Relaxed) == 0;
            shared.quiesce.store(u32::from(on), Relaxed);
            next_quiet = now + if on { QUIET_FOR } else { QUIET_EVERY };
        }
        let (respawn, _) = sup.reap(false);
        for slot in respawn {
            sup.spawn(slot)?;
        }
        if Instant::now() >= next_report {
            let ops = shared.ops.load(Relaxed);
            log::info!(
                "{:>4} s: {ops} ops ({:.0}/s), {} worker deaths, {} violations",
                start.elapsed().as_secs(),
                ops as f64 / start.elapsed().as_secs_f64(),
                sup.deaths,
                shared.violations.load(Relaxed)
            );
            next_report += Duration::from_secs(10);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    shared.quiesce.store(0, Relaxed);
    sup.stop_all();
    let elapsed = start.elapsed().as_secs_f64();

    let mut violations = shared.messages();
    let recorded = shared.violations.load(Relaxed) as usize;
    if recorded > violations.len() {
        violations.push(format!("... and {} more recorded by the workers", recorded - violations.len()));
    }
    violations.append(&mut sup.violations);
    violations.extend(check::after_run(&device, &before)?);
    violations.extend(check::usable_and_restore(&device, &before)?);

    let ops = shared.ops.load(Relaxed);
    let errors = shared.errors.load(Relaxed);
    let mut by_errno: Vec<(u64, i32)> =
        shared.by_errno.iter().enumerate().map(|(e, n)| (n.load(Relaxed), e as i32)).filter(|(n, _)| *n > 0).collect();
    by_errno.sort_by(|a, b| b.cmp(a));
    let errno_list: Vec<String> =
        by_errno.iter().map(|(n, e)| format!("{:?} {n}", nix::errno::Errno::from_raw(*e))).collect();
    for (i, r) in requests.iter().enumerate() {
        log::info!(
            "{:<24} ok {:>8}  refused {:>8}",
            r.name,
            shared.req_ok[i].load(Relaxed),
            shared.req_err[i].load(Relaxed)
        );
    }
    log::info!(
        "{ops} ops in {elapsed:.0} s ({:.0}/s): {} reconfigurations, {} mmaps, {} forks, {} kill -9, {} interrupted waits, {} worker deaths",
        ops as f64 / elapsed,
        shared.reconfigured.load(Relaxed),
        shared.maps.load(Relaxed),
        shared.forks.load(Relaxed),
        shared.kills.load(Relaxed),
        shared.interrupted.load(Relaxed),
        sup.deaths
    );
    for v in &violations {
        println!("fuzz: VIOLATION: {v}");
    }
    let verdict = if violations.is_empty() {
        "invariants OK".to_string()
    } else {
        format!("{} invariant violations (seed {seed:#x})", violations.len())
    };
    println!("fuzz: {ops} ops, {errors} errors by errno ({}), {verdict}", errno_list.join(", "));
    Ok(violations.is_empty())
}

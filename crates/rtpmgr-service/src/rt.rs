//! Real-time tuning of a worker thread: SCHED_FIFO priority and CPU affinity.
//!
//! Both apply to the calling thread only (Linux schedules threads; pid 0 in sched_setaffinity(2)
//! and sched_setscheduler(2) is the calling thread), so the control and stats threads, and
//! GStreamer's own threads, keep the default policy: only the thread that moves packets competes
//! with interrupts for the CPU.

use nix::sched::CpuSet;
use nix::unistd::Pid;
use std::fmt;
use std::io;
use std::str::FromStr;

/// Lowest and highest SCHED_FIFO priority on Linux (sched_get_priority_min/max(SCHED_FIFO)).
pub const RT_PRIORITY_MIN: u8 = 1;
pub const RT_PRIORITY_MAX: u8 = 99;

/// Why tuning a thread failed; the message names the fix.
#[derive(Debug, thiserror::Error)]
pub enum RtError {
    #[error(
        "SCHED_FIFO priority {priority} for thread {thread} needs CAP_SYS_NICE or an RLIMIT_RTPRIO >= {priority}: run \
         as root, add AmbientCapabilities=CAP_SYS_NICE or LimitRTPRIO={priority} to the unit (`ulimit -r {priority}` \
         under sysvinit), or drop --rt-priority (see docs/tuning.md)"
    )]
    PriorityDenied { priority: u8, thread: String },
    #[error("cannot set SCHED_FIFO priority {priority} for thread {thread}: {source}")]
    Priority { priority: u8, thread: String, source: io::Error },
    #[error(
        "cannot pin thread {thread} to CPUs {cpus}: none of them is online and allowed to this process (cgroup \
         cpuset, taskset); see /sys/devices/system/cpu/online"
    )]
    NoUsableCpu { thread: String, cpus: CpuList },
    #[error("cannot pin thread {thread} to CPUs {cpus}: {source}")]
    Affinity { thread: String, cpus: CpuList, source: nix::Error },
}

/// A bad `--cpu` list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid CPU list {list:?}: {why} (expected e.g. 1 or 0-1,3)")]
pub struct CpuListError {
    list: String,
    why: String,
}

/// A set of CPU numbers, as written in `--cpu 0-1,3` and in /sys/devices/system/cpu/online.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuList(Vec<usize>);

impl CpuList {
    /// The CPU numbers, ascending, without duplicates.
    pub fn cpus(&self) -> &[usize] {
        &self.0
    }
}

impl FromStr for CpuList {
    type Err = CpuListError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |why: String| CpuListError { list: s.into(), why };
        let max = CpuSet::count();
        let num = |t: &str| -> Result<usize, CpuListError> {
            let n: usize = t.trim().parse().map_err(|_| err(format!("{t:?} is not a CPU number")))?;
            if n >= max {
                return Err(err(format!("CPU {n} is beyond the {max} CPUs a CPU set can name")));
            }
            Ok(n)
        };
        let mut cpus = Vec::new();
        for part in s.split(',') {
            if part.trim().is_empty() {
                return Err(err("empty entry".into()));
            }
            match part.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (num(a)?, num(b)?);
                    if a > b {
                        return Err(err(format!("range {a}-{b} runs backwards")));
                    }
                    cpus.extend(a..=b);
                }
                None => cpus.push(num(part)?),
            }
        }
        cpus.sort_unstable();
        cpus.dedup();
        Ok(CpuList(cpus))
    }
}

impl fmt::Display for CpuList {
    /// Compact form: consecutive CPUs as a range (0-1,3).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut i = 0;
        while i < self.0.len() {
            let start = self.0[i];
            let mut end = start;
            while i + 1 < self.0.len() && self.0[i + 1] == end + 1 {
                i += 1;
                end = self.0[i];
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            if end == start {
                write!(f, "{start}")?;
            } else {
                write!(f, "{start}-{end}")?;
            }
            i += 1;
        }
        Ok(())
    }
}

/// What `--rt-priority` and `--cpu` ask for a worker thread.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RtSettings {
    /// SCHED_FIFO priority 1..=99; None keeps SCHED_OTHER.
    pub priority: Option<u8>,
    /// CPUs the thread may run on; None keeps the inherited mask.
    pub cpus: Option<CpuList>,
}

impl RtSettings {
    /// True when nothing is asked.
    pub fn is_empty(&self) -> bool {
        self.priority.is_none() && self.cpus.is_none()
    }

    /// Applies the settings to the calling thread: the affinity first (a pinned thread is
    /// never briefly real-time on the wrong CPU), then the priority.
    pub fn apply_to_current_thread(&self) -> Result<(), RtError> {
        self.apply(true)
    }

    /// [`Self::apply_to_current_thread`] without the log lines: for a throw-away thread that
    /// only checks the settings are allowed.
    pub fn check_on_current_thread(&self) -> Result<(), RtError> {
        self.apply(false)
    }

    fn apply(&self, verbose: bool) -> Result<(), RtError> {
        let thread = std::thread::current().name().unwrap_or("main").to_string();
        if let Some(cpus) = &self.cpus {
            let mut set = CpuSet::new();
            for &c in cpus.cpus() {
                // from_str() kept every number below CpuSet::count().
                set.set(c).map_err(|source| RtError::Affinity {
                    thread: thread.clone(),
                    cpus: cpus.clone(),
                    source,
                })?;
            }
            match nix::sched::sched_setaffinity(Pid::from_raw(0), &set) {
                Ok(()) => {}
                Err(nix::Error::EINVAL) => return Err(RtError::NoUsableCpu { thread, cpus: cpus.clone() }),
                Err(source) => return Err(RtError::Affinity { thread, cpus: cpus.clone(), source }),
            }
            if verbose {
                log::info!("thread {thread}: pinned to CPUs {cpus}");
            }
        }
        if let Some(priority) = self.priority {
            match set_fifo_priority(priority) {
                Ok(()) if verbose => log::info!("thread {thread}: SCHED_FIFO priority {priority}"),
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                    return Err(RtError::PriorityDenied { priority, thread })
                }
                Err(source) => return Err(RtError::Priority { priority, thread, source }),
            }
        }
        Ok(())
    }
}

/// SCHED_FIFO at `priority` for the calling thread, through pthread_setschedparam: musl stubs
/// sched_setscheduler out (ENOSYS, POSIX makes it per process), while pthread_setschedparam
/// works on glibc and musl alike. nix has no wrapper for it, so this is the crate's one unsafe
/// block.
fn set_fifo_priority(priority: u8) -> io::Result<()> {
    if !(RT_PRIORITY_MIN..=RT_PRIORITY_MAX).contains(&priority) {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: sched_param is plain integers (musl adds the SCHED_SPORADIC fields, glibc has only
    // sched_priority), for which all-zero is valid. pthread_self() is the calling thread's handle,
    // valid while the thread runs, so only its own scheduling is changed; pthread_setschedparam
    // only reads the sched_param it is given, a local that outlives the call.
    let rc = unsafe {
        let mut param: libc::sched_param = std::mem::zeroed();
        param.sched_priority = libc::c_int::from(priority);
        libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_FIFO, &param)
    };
    // The error number is returned, not left in errno (EPERM: no CAP_SYS_NICE, RLIMIT_RTPRIO too low).
    match rc {
        0 => Ok(()),
        errno => Err(io::Error::from_raw_os_error(errno)),
    }
}

/// The calling thread's scheduling policy and priority (for tests and diagnostics), read from
/// /proc/thread-self/stat (fields 40 rt_priority and 41 policy).
pub fn current_thread_policy() -> io::Result<(u32, u32)> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat")?;
    // The command name (field 2) may contain spaces: count fields after its closing ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).ok_or_else(|| io::Error::other("malformed stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): field N is fields[N - 3].
    let get =
        |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u32>().ok()).ok_or_else(|| io::Error::other("short stat"));
    Ok((get(41)?, get(40)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_parse_and_print_compactly() {
        let l: CpuList = "0-1,3".parse().unwrap();
        assert_eq!(l.cpus(), &[0, 1, 3]);
        assert_eq!(l.to_string(), "0-1,3");
        assert_eq!("3,1,2,1".parse::<CpuList>().unwrap().to_string(), "1-3");
        assert_eq!("1".parse::<CpuList>().unwrap().cpus(), &[1]);
        for bad in ["", "1,", "a", "3-1", "-1", "1-", "99999"] {
            assert!(bad.parse::<CpuList>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn affinity_applies_to_the_calling_thread_only() {
        let cpu0: CpuList = "0".parse().unwrap();
        let main_before = nix::sched::sched_getaffinity(Pid::from_raw(0)).unwrap();
        std::thread::spawn(move || {
            RtSettings { priority: None, cpus: Some(cpu0) }.apply_to_current_thread().unwrap();
            let set = nix::sched::sched_getaffinity(Pid::from_raw(0)).unwrap();
            assert!(set.is_set(0).unwrap());
            assert!(!set.is_set(1).unwrap());
        })
        .join()
        .unwrap();
        let main_after = nix::sched::sched_getaffinity(Pid::from_raw(0)).unwrap();
        assert_eq!(main_before, main_after);
    }

    #[test]
    fn a_cpu_that_is_not_online_is_a_clear_error() {
        // CPU 1000 is within the set's range but not online on any test machine.
        let e = std::thread::spawn(|| {
            RtSettings { priority: None, cpus: Some("1000".parse().unwrap()) }.apply_to_current_thread().unwrap_err()
        })
        .join()
        .unwrap();
        assert!(matches!(e, RtError::NoUsableCpu { .. }), "{e}");
        assert!(e.to_string().contains("none of them is online"), "{e}");
    }

    /// SCHED_FIFO when allowed (root, CAP_SYS_NICE or RLIMIT_RTPRIO), the named error when not.
    #[test]
    fn fifo_priority_is_set_or_refused_with_the_fix() {
        let r = std::thread::spawn(|| {
            let r = RtSettings { priority: Some(5), cpus: None }.apply_to_current_thread();
            (r, current_thread_policy().unwrap())
        })
        .join()
        .unwrap();
        match r {
            (Ok(()), (policy, prio)) => assert_eq!((policy, prio), (libc::SCHED_FIFO as u32, 5)),
            (Err(e), (policy, _)) => {
                assert!(matches!(e, RtError::PriorityDenied { priority: 5, .. }), "{e}");
                assert!(e.to_string().contains("CAP_SYS_NICE"), "{e}");
                assert_eq!(policy, libc::SCHED_OTHER as u32);
            }
        }
        // This thread was never touched.
        assert_eq!(current_thread_policy().unwrap().0, libc::SCHED_OTHER as u32);
    }
}

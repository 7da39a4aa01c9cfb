//! `rtp_app monitor`: the kernel module's channel events as they happen, one line each, like
//! `ip monitor`.
//!
//! The module (ABI 2.1) sends every event to the multicast group "events" of the generic netlink
//! family "rtp_mgr" (include/rtp_mgr_ioctl.h, "Events (2.1)"). The family and group ids are
//! dynamic: the generic netlink controller (CTRL_CMD_GETFAMILY) resolves them by name. The
//! netlink messages are parsed here from the byte buffer (header, generic header, attributes), so
//! the only code that touches raw memory is nix's socket calls.

use crate::control::{StopReason, StopState};
use anyhow::{anyhow, bail, Context, Result};
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{self, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType};
use serde_json::json;
// nix 0.31 takes a raw fd for bind/send/recv: each call borrows it from the OwnedFd it outlives.
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// The family's name, group and version (include/rtp_mgr_ioctl.h RTPM_GENL_*).
pub const GENL_NAME: &str = "rtp_mgr";
/// Multicast group of the events (RTPM_GENL_MCGRP_EVENTS).
pub const GENL_MCGRP_EVENTS: &str = "events";
/// The one command the family sends (RTPM_GENL_CMD_EVENT).
pub const GENL_CMD_EVENT: u8 = 1;

/// Attributes of an event message (enum rtpm_genl_attr).
mod attr {
    pub const CHANNEL: u16 = 1;
    pub const EVENT: u16 = 2;
    pub const COUNT: u16 = 3;
    pub const PID: u16 = 4;
    pub const TIME_NS: u16 = 5;
}

/// Event kinds (enum rtpm_event, RTPM_EVENT_START = 1 onwards) and their names in the output.
pub const EVENT_NAMES: [&str; 13] = [
    "start", "stop", "reset", "configure", "attach-rx", "attach-tx", "detach-rx", "detach-tx", "overrun", "loss",
    "reclaim", "evict", "stuck",
];

/// What the COUNT of each kind counts, for the text line ("" for control events, whose count is 1).
fn count_unit(event: u32) -> &'static str {
    match event {
        9 | 10 => "packets",
        11..=13 => "slots",
        _ => "",
    }
}

/// The name of event kind `event` ("event-N" for a kind this binary does not know yet).
pub fn event_name(event: u32) -> String {
    match event.checked_sub(1).and_then(|i| EVENT_NAMES.get(i as usize)) {
        Some(n) => (*n).to_string(),
        None => format!("event-{event}"),
    }
}

/// One event as the module sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Event {
    /// N of /dev/rtp_mgrN.
    pub channel: u32,
    /// RTPM_EVENT_*.
    pub event: u32,
    /// Packets or slots (data-path events, since the last one of their kind), else 1.
    pub count: u64,
    /// The process that caused it; 0 for the kernel itself.
    pub pid: u32,
    /// CLOCK_MONOTONIC of the event, ns.
    pub time_ns: u64,
}

// --- netlink wire format (linux/netlink.h, linux/genetlink.h) ----------------------------------

const NLMSG_HDRLEN: usize = 16;
const GENL_HDRLEN: usize = 4;
const NLA_HDRLEN: usize = 4;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
/// Attribute type bits that are flags (NLA_F_NESTED, NLA_F_NET_BYTEORDER), not the type.
const NLA_TYPE_MASK: u16 = 0x3fff;
const GENL_ID_CTRL: u16 = 0x10;
const CTRL_CMD_GETFAMILY: u8 = 3;
const CTRL_ATTR_FAMILY_ID: u16 = 1;
const CTRL_ATTR_FAMILY_NAME: u16 = 2;
const CTRL_ATTR_MCAST_GROUPS: u16 = 7;
const CTRL_ATTR_MCAST_GRP_NAME: u16 = 1;
const CTRL_ATTR_MCAST_GRP_ID: u16 = 2;

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at.checked_add(2)?)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at.checked_add(4)?)?.try_into().ok()?))
}

fn u64_of(b: &[u8]) -> Option<u64> {
    Some(u64::from_ne_bytes(b.get(..8)?.try_into().ok()?))
}

/// One netlink message of a datagram: its type and payload (after the 16-byte header).
#[derive(Debug, PartialEq, Eq)]
struct NlMsg<'a> {
    kind: u16,
    payload: &'a [u8],
}

/// The messages of one received datagram; a truncated or malformed tail ends the list.
fn messages(buf: &[u8]) -> Vec<NlMsg<'_>> {
    let mut out = vec![];
    let mut at = 0;
    while let (Some(len), Some(kind)) = (u32_at(buf, at), u16_at(buf, at + 4)) {
        let len = len as usize;
        // `at` is within buf here (u32_at read there), so the subtraction cannot wrap, while
        // `at + len` could on a 32-bit target for an nlmsg_len near u32::MAX.
        if len < NLMSG_HDRLEN || len > buf.len() - at {
            break;
        }
        out.push(NlMsg { kind, payload: &buf[at + NLMSG_HDRLEN..at + len] });
        at += align4(len);
    }
    out
}

/// The attributes of `b` as (type, value); a malformed tail ends the list.
fn attributes(b: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = vec![];
    let mut at = 0;
    while let (Some(len), Some(kind)) = (u16_at(b, at), u16_at(b, at + 2)) {
        let len = len as usize;
        if len < NLA_HDRLEN || len > b.len() - at {
            break;
        }
        out.push((kind & NLA_TYPE_MASK, &b[at + NLA_HDRLEN..at + len]));
        at += align4(len);
    }
    out
}

/// The event in a message of the family `family`; None for anything else.
fn parse_event(msg: &NlMsg, family: u16) -> Option<Event> {
    if msg.kind != family || msg.payload.first() != Some(&GENL_CMD_EVENT) {
        return None;
    }
    let mut e = Event::default();
    for (kind, v) in attributes(msg.payload.get(GENL_HDRLEN..)?) {
        match kind {
            attr::CHANNEL => e.channel = u32_at(v, 0)?,
            attr::EVENT => e.event = u32_at(v, 0)?,
            attr::PID => e.pid = u32_at(v, 0)?,
            attr::COUNT => e.count = u64_of(v)?,
            attr::TIME_NS => e.time_ns = u64_of(v)?,
            _ => {}
        }
    }
    (e.event != 0).then_some(e)
}

/// CTRL_CMD_GETFAMILY for `name`.
fn getfamily_request(name: &str, seq: u32) -> Vec<u8> {
    let nla_len = NLA_HDRLEN + name.len() + 1;
    let len = NLMSG_HDRLEN + GENL_HDRLEN + align4(nla_len);
    let mut b = Vec::with_capacity(len);
    b.extend_from_slice(&(len as u32).to_ne_bytes());
    b.extend_from_slice(&GENL_ID_CTRL.to_ne_bytes());
    b.extend_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
    b.extend_from_slice(&seq.to_ne_bytes());
    b.extend_from_slice(&0u32.to_ne_bytes());
    b.extend_from_slice(&[CTRL_CMD_GETFAMILY, 1, 0, 0]);
    b.extend_from_slice(&(nla_len as u16).to_ne_bytes());
    b.extend_from_slice(&CTRL_ATTR_FAMILY_NAME.to_ne_bytes());
    b.extend_from_slice(name.as_bytes());
    b.resize(len, 0);
    b
}

/// What the controller answered for a family: its id and the id of its group `group`.
#[derive(Debug, PartialEq, Eq)]
enum Resolved {
    Found {
        family: u16,
        group: Option<u32>,
    },
    /// NLMSG_ERROR with this errno (ENOENT: no such family).
    Error(i32),
}

fn parse_getfamily_reply(buf: &[u8], group: &str) -> Option<Resolved> {
    for m in messages(buf) {
        match m.kind {
            // The error field is a negative errno; a crafted i32::MIN must not overflow the negation.
            NLMSG_ERROR => return Some(Resolved::Error((u32_at(m.payload, 0)? as i32).wrapping_neg())),
            NLMSG_DONE => return None,
            GENL_ID_CTRL => {}
            _ => continue,
        }
        let mut family = None;
        let mut group_id = None;
        for (kind, v) in attributes(m.payload.get(GENL_HDRLEN..)?) {
            match kind {
                CTRL_ATTR_FAMILY_ID => family = u16_at(v, 0),
                CTRL_ATTR_MCAST_GROUPS => {
                    for (_, g) in attributes(v) {
                        let a = attributes(g);
                        let named = a.iter().any(|(k, v)| {
                            *k == CTRL_ATTR_MCAST_GRP_NAME && v.split(|c| *c == 0).next() == Some(group.as_bytes())
                        });
                        if named {
                            group_id =
                                a.iter().find(|(k, _)| *k == CTRL_ATTR_MCAST_GRP_ID).and_then(|(_, v)| u32_at(v, 0));
                        }
                    }
                }
                _ => {}
            }
        }
        return family.map(|family| Resolved::Found { family, group: group_id });
    }
    None
}

// NETLINK_ADD_MEMBERSHIP: joins a multicast group by number (the bind() bitmask only reaches
// groups 1..32; generic netlink hands out higher ids too). nix's macro generates the setsockopt.
use nix::{setsockopt_impl, sockopt_impl};
sockopt_impl!(
    /// NETLINK_ADD_MEMBERSHIP (SOL_NETLINK): join a multicast group by number.
    NetlinkAddMembership, SetOnly, libc::SOL_NETLINK, libc::NETLINK_ADD_MEMBERSHIP, u32);

/// Receive buffer of the events socket: room for bursts (a reset of every channel, a stuck scan)
/// while the terminal is slow.
const EVENT_SOCKBUF: usize = 1 << 20;

/// A netlink socket in the module's events group.
#[derive(Debug)]
pub struct EventSocket {
    fd: OwnedFd,
    family: u16,
}

impl EventSocket {
    /// Resolves the family and joins its events group. The error says to load the module when
    /// the family is not registered.
    pub fn open() -> Result<Self> {
        let fd =
            socket::socket(AddressFamily::Netlink, SockType::Raw, SockFlag::SOCK_CLOEXEC, SockProtocol::NetlinkGeneric)
                .context("cannot open a generic netlink socket")?;
        socket::bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0)).context("cannot bind the netlink socket")?;
        let req = getfamily_request(GENL_NAME, 1);
        socket::send(fd.as_raw_fd(), &req, MsgFlags::empty())
            .context("cannot ask the generic netlink controller for the rtp_mgr family")?;
        let mut buf = vec![0u8; 16384];
        let n = recv_timeout(&fd, &mut buf, Duration::from_secs(5))?
            .ok_or_else(|| anyhow!("the generic netlink controller did not answer within 5 s"))?;
        let (family, group) = match parse_getfamily_reply(&buf[..n], GENL_MCGRP_EVENTS) {
            Some(Resolved::Found { family, group: Some(g) }) => (family, g),
            Some(Resolved::Found { .. }) => bail!(
                "the generic netlink family {GENL_NAME} has no multicast group \"{GENL_MCGRP_EVENTS}\": \
                 the loaded rtp_mgr module does not match this rtp_app"
            ),
            Some(Resolved::Error(e)) if e == libc::ENOENT => bail!(
                "the generic netlink family {GENL_NAME} is not registered: the rtp_mgr module is not loaded \
                 (modprobe rtp_mgr), or it is older than ABI 2.1, which added the events"
            ),
            Some(Resolved::Error(e)) => {
                bail!("the generic netlink controller refused to resolve {GENL_NAME}: {}", Errno::from_raw(e).desc())
            }
            None => bail!("the generic netlink controller sent an answer that is not a family description"),
        };
        // Not fatal: the default buffer works, bursts just overflow sooner (and are reported).
        if let Err(e) = socket::setsockopt(&fd, socket::sockopt::RcvBuf, &EVENT_SOCKBUF) {
            log::debug!("SO_RCVBUF {EVENT_SOCKBUF}: {e}");
        }
        socket::setsockopt(&fd, NetlinkAddMembership, &group)
            .with_context(|| format!("cannot join the multicast group {GENL_MCGRP_EVENTS} ({group}) of {GENL_NAME}"))?;
        log::debug!("{GENL_NAME}: family {family}, group {GENL_MCGRP_EVENTS} = {group}");
        Ok(EventSocket { fd, family })
    }

    /// The events of the next datagram, waiting at most `timeout`; Ok(None) on timeout.
    /// Err(ENOBUFS) means the socket overflowed: events were lost, the socket still works.
    pub fn next(&self, buf: &mut [u8], timeout: Duration) -> Result<Option<Vec<Event>>, Errno> {
        Ok(recv_timeout_errno(&self.fd, buf, timeout)?
            .map(|n| messages(&buf[..n]).iter().filter_map(|m| parse_event(m, self.family)).collect()))
    }
}

fn recv_timeout_errno(fd: &OwnedFd, buf: &mut [u8], timeout: Duration) -> Result<Option<usize>, Errno> {
    let ms = PollTimeout::from(timeout.as_millis().min(60_000) as u16);
    let mut p = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
    match nix::poll::poll(&mut p, ms) {
        Ok(0) | Err(Errno::EINTR) => return Ok(None),
        Ok(_) => {}
        Err(e) => return Err(e),
    }
    let mut iov = [std::io::IoSliceMut::new(buf)];
    match socket::recvmsg::<NetlinkAddr>(fd.as_raw_fd(), &mut iov, None, MsgFlags::MSG_DONTWAIT) {
        // Any process may unicast to our port id: only the kernel (port id 0) is believed.
        Ok(m) => match m.address.map(|a| a.pid()) {
            Some(0) => Ok(Some(m.bytes)),
            sender => {
                log::debug!("dropped a netlink datagram from port id {sender:?}, not the kernel");
                Ok(None)
            }
        },
        Err(Errno::EAGAIN) | Err(Errno::EINTR) => Ok(None),
        Err(e) => Err(e),
    }
}

fn recv_timeout(fd: &OwnedFd, buf: &mut [u8], timeout: Duration) -> Result<Option<usize>> {
    recv_timeout_errno(fd, buf, timeout).context("cannot receive from the netlink socket")
}

// --- output ---------------------------------------------------------------------------------------

/// The command name of `pid` (/proc/PID/comm), if it still runs; "kernel" for pid 0.
pub fn comm_of(pid: u32) -> Option<String> {
    if pid == 0 {
        return Some("kernel".into());
    }
    std::fs::read_to_string(format!("/proc/{pid}/comm")).ok().map(|s| s.trim_end().to_string())
}

/// `unix_ns` (ns since the epoch) as UTC "YYYY-MM-DDTHH:MM:SS.uuuuuuZ".
pub fn utc_timestamp(unix_ns: i128) -> String {
    let secs = unix_ns.div_euclid(1_000_000_000) as i64;
    let micros = unix_ns.rem_euclid(1_000_000_000) / 1000;
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Days since 1970-01-01 to a civil date (H. Hinnant's days_from_civil, inverted).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{micros:06}Z", sod / 3600, sod % 3600 / 60, sod % 60)
}

/// The wall-clock time of a CLOCK_MONOTONIC instant, given one (monotonic, unix) pair of now.
fn wall_ns(event_mono: u64, now_mono: u64, now_unix: i128) -> i128 {
    now_unix - (i128::from(now_mono) - i128::from(event_mono))
}

/// One event as a text line: "TIME channel N EVENT [COUNT UNIT] pid PID (COMM)".
pub fn text_line(e: &Event, wall: i128, comm: Option<&str>) -> String {
    let mut s = format!("{} channel {} {}", utc_timestamp(wall), e.channel, event_name(e.event));
    let unit = count_unit(e.event);
    if !unit.is_empty() || e.count != 1 {
        s += &format!(" {} {}", e.count, if unit.is_empty() { "times" } else { unit });
    }
    match comm {
        Some(c) => s += &format!(" pid {} ({c})", e.pid),
        None => s += &format!(" pid {}", e.pid),
    }
    s
}

/// One event as a JSON object (one line).
pub fn json_line(e: &Event, wall: i128, comm: Option<&str>) -> String {
    json!({
        "time": utc_timestamp(wall),
        "time_ns": e.time_ns,
        "channel": e.channel,
        "event": event_name(e.event),
        "event_id": e.event,
        "count": e.count,
        "pid": e.pid,
        "comm": comm,
    })
    .to_string()
}

/// What `rtp_app monitor` was asked for.
#[derive(Debug, Clone, Default)]
pub struct MonitorRun {
    /// Only events of this channel.
    pub channel: Option<u32>,
    /// Stop after this many printed events.
    pub count: Option<u64>,
    /// Stop after this long.
    pub time: Option<Duration>,
    /// JSON lines instead of text.
    pub json: bool,
}

/// Whether `--channel`/`-c` is on the command line `args` (it has a default, 0, that the other
/// modes use; monitor filters only when it is given). False if `args` do not parse.
pub fn channel_given(args: impl IntoIterator<Item = std::ffi::OsString>) -> bool {
    use clap::parser::ValueSource;
    use clap::CommandFactory;
    let Ok(m) = crate::cli::Cli::command().try_get_matches_from(args) else { return false };
    let given = |m: &clap::ArgMatches| m.value_source("channel") == Some(ValueSource::CommandLine);
    given(&m) || m.subcommand_matches("monitor").is_some_and(given)
}

/// Prints events until the count, the time or a signal stops it. Returns how many it printed.
pub fn run(cfg: &MonitorRun, stop: &StopState) -> Result<u64> {
    let sock = EventSocket::open()?;
    // Scripts wait for this line before they cause events.
    log::info!(
        "listening to {GENL_NAME} events{}",
        cfg.channel.map(|c| format!(" of channel {c}")).unwrap_or_default()
    );
    let deadline = cfg.time.map(|t| Instant::now() + t);
    let mut buf = vec![0u8; 65536];
    let mut printed = 0u64;
    loop {
        if stop.should_stop() {
            break;
        }
        let wait = match deadline {
            Some(d) => match d.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => left.min(Duration::from_millis(250)),
                _ => {
                    stop.stop(StopReason::TimeLimit);
                    break;
                }
            },
            None => Duration::from_millis(250),
        };
        let events = match sock.next(&mut buf, wait) {
            Ok(Some(ev)) => ev,
            Ok(None) => continue,
            Err(Errno::ENOBUFS) => {
                log::warn!("events were lost: the socket's receive buffer overflowed (output too slow?)");
                continue;
            }
            Err(e) => return Err(anyhow!(e)).context("cannot receive events"),
        };
        let now_mono = rtpmgr::monotonic_ns();
        let now_unix =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i128);
        for e in events.iter().filter(|e| cfg.channel.is_none_or(|c| c == e.channel)) {
            let wall = wall_ns(e.time_ns, now_mono, now_unix);
            let comm = comm_of(e.pid);
            let line = if cfg.json { json_line(e, wall, comm.as_deref()) } else { text_line(e, wall, comm.as_deref()) };
            crate::control::emit(&line);
            printed += 1;
            if cfg.count.is_some_and(|n| printed >= n) {
                stop.stop(StopReason::PacketLimit);
                return Ok(printed);
            }
        }
    }
    Ok(printed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nla(kind: u16, v: &[u8]) -> Vec<u8> {
        let mut b = ((NLA_HDRLEN + v.len()) as u16).to_ne_bytes().to_vec();
        b.extend_from_slice(&kind.to_ne_bytes());
        b.extend_from_slice(v);
        b.resize(align4(b.len()), 0);
        b
    }

    fn nlmsg(kind: u16, genl_cmd: u8, attrs: &[Vec<u8>]) -> Vec<u8> {
        let body: Vec<u8> = attrs.concat();
        let len = NLMSG_HDRLEN + GENL_HDRLEN + body.len();
        let mut b = (len as u32).to_ne_bytes().to_vec();
        b.extend_from_slice(&kind.to_ne_bytes());
        b.extend_from_slice(&[0; 10]);
        b.extend_from_slice(&[genl_cmd, 1, 0, 0]);
        b.extend_from_slice(&body);
        b
    }

    /// An event as the module builds it: u32s, then the u64s each after a PAD attribute.
    fn kernel_event(channel: u32, event: u32, count: u64, pid: u32, time: u64) -> Vec<u8> {
        nlmsg(
            0x20,
            GENL_CMD_EVENT,
            &[
                nla(attr::CHANNEL, &channel.to_ne_bytes()),
                nla(attr::EVENT, &event.to_ne_bytes()),
                nla(attr::PID, &pid.to_ne_bytes()),
                nla(6, &[]),
                nla(attr::COUNT, &count.to_ne_bytes()),
                nla(6, &[]),
                nla(attr::TIME_NS, &time.to_ne_bytes()),
            ],
        )
    }

    #[test]
    fn events_of_one_datagram_are_parsed_and_other_families_ignored() {
        let mut dgram = kernel_event(3, 9, 17, 0, 123_456_789);
        dgram.extend(kernel_event(1, 1, 1, 4242, 5));
        dgram.extend(kernel_event(2, 2, 1, 1, 6).iter().enumerate().map(|(i, b)| if i == 4 { 0x21 } else { *b }));
        let ev: Vec<_> = messages(&dgram).iter().filter_map(|m| parse_event(m, 0x20)).collect();
        assert_eq!(
            ev,
            vec![
                Event { channel: 3, event: 9, count: 17, pid: 0, time_ns: 123_456_789 },
                Event { channel: 1, event: 1, count: 1, pid: 4242, time_ns: 5 },
            ]
        );
    }

    #[test]
    fn truncated_or_bogus_messages_yield_nothing_and_do_not_panic() {
        let good = kernel_event(3, 9, 17, 0, 1);
        for cut in 0..good.len() {
            let ev: Vec<_> = messages(&good[..cut]).iter().filter_map(|m| parse_event(m, 0x20)).collect();
            assert!(ev.is_empty(), "cut at {cut}: {ev:?}");
        }
        // An attribute claiming more than the message holds ends the attribute list.
        let mut bad = nlmsg(0x20, GENL_CMD_EVENT, &[nla(attr::EVENT, &9u32.to_ne_bytes())]);
        bad[NLMSG_HDRLEN + GENL_HDRLEN] = 200;
        assert!(messages(&bad).iter().filter_map(|m| parse_event(m, 0x20)).next().is_none());
        // A u64 attribute of 4 bytes is malformed: no event rather than a wrong count.
        let short = nlmsg(0x20, GENL_CMD_EVENT, &[nla(attr::EVENT, &9u32.to_ne_bytes()), nla(attr::COUNT, &[1; 4])]);
        assert!(messages(&short).iter().filter_map(|m| parse_event(m, 0x20)).next().is_none());
    }

    /// A second header whose nlmsg_len would wrap `at + len` on a 32-bit target.
    #[test]
    fn a_length_near_u32_max_ends_the_list_without_overflow() {
        let mut buf = vec![0u8; 32];
        buf[..4].copy_from_slice(&16u32.to_ne_bytes());
        buf[4..6].copy_from_slice(&0x20u16.to_ne_bytes());
        buf[16..20].copy_from_slice(&0xFFFF_FFF0u32.to_ne_bytes());
        buf[20..22].copy_from_slice(&0x20u16.to_ne_bytes());
        assert_eq!(messages(&buf), vec![NlMsg { kind: 0x20, payload: &[] }]);
    }

    /// NLMSG_ERROR with error 0x8000_0000 (i32::MIN): negating it overflows in a debug build.
    #[test]
    fn an_error_of_i32_min_does_not_overflow() {
        let mut buf = vec![0u8; NLMSG_HDRLEN + 4];
        buf[..4].copy_from_slice(&((NLMSG_HDRLEN + 4) as u32).to_ne_bytes());
        buf[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        buf[NLMSG_HDRLEN..].copy_from_slice(&0x8000_0000u32.to_ne_bytes());
        assert_eq!(parse_getfamily_reply(&buf, GENL_MCGRP_EVENTS), Some(Resolved::Error(i32::MIN)));
    }

    /// A datagram another process unicast to our port id is not taken for the kernel's.
    #[test]
    fn datagrams_from_other_processes_are_dropped() {
        let open = || {
            let fd = socket::socket(
                AddressFamily::Netlink,
                SockType::Raw,
                SockFlag::SOCK_CLOEXEC,
                SockProtocol::NetlinkGeneric,
            )
            .unwrap();
            socket::bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0)).unwrap();
            fd
        };
        let (ours, theirs) = (open(), open());
        let our_addr: NetlinkAddr = socket::getsockname(ours.as_raw_fd()).unwrap();
        let forged = kernel_event(1, 1, 1, 0, 1);
        socket::sendto(theirs.as_raw_fd(), &forged, &NetlinkAddr::new(our_addr.pid(), 0), MsgFlags::empty()).unwrap();
        let mut buf = [0u8; 256];
        assert_eq!(recv_timeout_errno(&ours, &mut buf, Duration::from_secs(2)), Ok(None));
    }

    #[test]
    fn getfamily_reply_gives_the_family_and_the_events_group() {
        let grp = |id: u32, name: &str| {
            let mut n = name.as_bytes().to_vec();
            n.push(0);
            nla(1, &[nla(CTRL_ATTR_MCAST_GRP_ID, &id.to_ne_bytes()), nla(CTRL_ATTR_MCAST_GRP_NAME, &n)].concat())
        };
        let reply = nlmsg(
            GENL_ID_CTRL,
            1,
            &[
                nla(CTRL_ATTR_FAMILY_NAME, b"rtp_mgr\0"),
                nla(CTRL_ATTR_FAMILY_ID, &0x27u16.to_ne_bytes()),
                nla(CTRL_ATTR_MCAST_GROUPS | 0x8000, &[grp(40, "other"), grp(41, "events")].concat()),
            ],
        );
        assert_eq!(parse_getfamily_reply(&reply, "events"), Some(Resolved::Found { family: 0x27, group: Some(41) }));
        assert_eq!(parse_getfamily_reply(&reply, "eventsx"), Some(Resolved::Found { family: 0x27, group: None }));
        let mut err = (36u32).to_ne_bytes().to_vec();
        err.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        err.extend_from_slice(&[0; 10]);
        err.extend_from_slice(&(-libc::ENOENT).to_ne_bytes());
        err.extend_from_slice(&[0; 16]);
        assert_eq!(parse_getfamily_reply(&err, "events"), Some(Resolved::Error(libc::ENOENT)));
    }

    #[test]
    fn getfamily_request_is_a_well_formed_message() {
        let r = getfamily_request("rtp_mgr", 7);
        assert_eq!(r.len() % 4, 0);
        let m = messages(&r);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].kind, GENL_ID_CTRL);
        assert_eq!(m[0].payload[0], CTRL_CMD_GETFAMILY);
        assert_eq!(attributes(&m[0].payload[GENL_HDRLEN..]), vec![(CTRL_ATTR_FAMILY_NAME, &b"rtp_mgr\0"[..])]);
    }

    #[test]
    fn constants_match_the_uapi_header() {
        let h = include_str!("../../../include/rtp_mgr_ioctl.h");
        assert!(h.contains(&format!("#define RTPM_GENL_NAME\t\t\"{GENL_NAME}\"")), "RTPM_GENL_NAME");
        assert!(h.contains(&format!("#define RTPM_GENL_MCGRP_EVENTS\t\"{GENL_MCGRP_EVENTS}\"")), "MCGRP");
        // The enums in order: the attribute list and the event kinds.
        let body = |start: &str| {
            let s = &h[h.find(start).unwrap()..];
            s[..s.find("};").unwrap()].to_string()
        };
        let attrs = body("enum rtpm_genl_attr {");
        let order = ["UNSPEC", "CHANNEL", "EVENT", "COUNT", "PID", "TIME_NS"];
        let pos: Vec<_> = order.iter().map(|a| attrs.find(&format!("RTPM_GENL_A_{a},")).unwrap()).collect();
        assert!(pos.windows(2).all(|w| w[0] < w[1]), "attribute order {attrs}");
        assert_eq!((attr::CHANNEL, attr::EVENT, attr::COUNT, attr::PID, attr::TIME_NS), (1, 2, 3, 4, 5));
        let kinds = body("enum rtpm_event {");
        let names: Vec<String> = kinds
            .lines()
            .filter_map(|l| l.trim().strip_prefix("RTPM_EVENT_"))
            .map(|l| l.split([',', ' ', '\t']).next().unwrap().to_lowercase().replace('_', "-"))
            .collect();
        assert_eq!(names, EVENT_NAMES, "enum rtpm_event must start at 1 and match EVENT_NAMES");
        assert!(kinds.contains("RTPM_EVENT_START = 1"));
    }

    #[test]
    fn lines_name_the_event_count_and_process() {
        let e = Event { channel: 3, event: 9, count: 17, pid: 0, time_ns: 1 };
        let wall = 1_764_650_000_123_456_789;
        assert_eq!(
            text_line(&e, wall, comm_of(0).as_deref()),
            format!("{} channel 3 overrun 17 packets pid 0 (kernel)", utc_timestamp(wall))
        );
        let e = Event { channel: 0, event: 2, count: 1, pid: 77, time_ns: 1 };
        assert!(text_line(&e, wall, Some("rtp_app")).ends_with("channel 0 stop pid 77 (rtp_app)"));
        assert!(text_line(&e, wall, None).ends_with("channel 0 stop pid 77"));
        let v: serde_json::Value = serde_json::from_str(&json_line(&e, wall, None)).unwrap();
        assert_eq!((v["event"].as_str(), v["event_id"].as_u64(), v["comm"].is_null()), (Some("stop"), Some(2), true));
        assert_eq!(event_name(99), "event-99");
        assert_eq!(event_name(0), "event-0");
    }

    #[test]
    fn utc_timestamps_are_civil_dates() {
        assert_eq!(utc_timestamp(0), "1970-01-01T00:00:00.000000Z");
        // 2000-02-29 (a leap day of a century leap year) 12:34:56.789012
        assert_eq!(utc_timestamp(951_827_696_789_012_345), "2000-02-29T12:34:56.789012Z");
        assert_eq!(utc_timestamp(4_102_444_799_000_000_000), "2099-12-31T23:59:59.000000Z");
        assert_eq!(wall_ns(900, 1000, 5_000), 4_900);
    }

    #[test]
    fn channel_filter_only_when_given() {
        let given = |a: &[&str]| channel_given(std::iter::once("rtp_app").chain(a.iter().copied()).map(Into::into));
        assert!(!given(&["monitor"]));
        assert!(!given(&["monitor", "--json", "--count", "3"]));
        assert!(given(&["monitor", "--channel", "0"]));
        assert!(given(&["monitor", "-c", "3", "--json"]));
        let c = crate::cli::parse_for_test(&["monitor", "--count", "5", "-t", "2", "--json", "-c", "4"]).unwrap();
        assert!(matches!(c.command, Some(crate::cli::Command::Monitor(crate::cli::MonitorArgs { count: Some(5) }))));
        assert_eq!((c.common.channel, c.common.time, c.common.json), (4, Some(2.0), true));
        assert!(crate::cli::parse_for_test(&["monitor", "--backend", "shm"]).unwrap_err().contains("shm"));
        assert!(crate::cli::parse_for_test(&["monitor", "--count", "0"]).is_err());
        assert!(crate::cli::parse_for_test(&["monitor", "--stats"]).is_err());
    }

    #[test]
    fn own_process_comm_is_resolved() {
        let me = std::process::id();
        assert!(comm_of(me).is_some_and(|c| !c.is_empty()));
    }
}

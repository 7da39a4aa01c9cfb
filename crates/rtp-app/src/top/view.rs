//! What `rtp_app top` shows: one [`Row`] per channel computed from two samples (rates need two),
//! the table and detail lines as plain text (80 columns), and the JSON record.

use super::sample::{Holder, Readings, Sample};
use rtpmgr_abi::{RTPM_ATTACHED_RX, RTPM_ATTACHED_TX, RTPM_ROLE_CONSUMER, RTPM_ROLE_PRODUCER};
use serde::Serialize;
use std::collections::HashMap;
use std::path::PathBuf;

/// Widest line the plain output and the TUI's fixed columns use: a serial console's 80 columns.
pub const WIDTH: usize = 80;

/// Packets dropped or refused, by cause (cumulative since load or RESET).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Drops {
    /// READY slots freed for newer packets (drop policy drop-oldest).
    pub drop_oldest: u64,
    /// Packets refused because the ring was full (reject-newest).
    pub ring_full: u64,
    /// Datagrams larger than a slot (kernel RX path).
    pub oversize: u64,
    /// Datagrams that arrived while the channel was stopped (kernel RX path).
    pub while_stopped: u64,
    /// Slots the kernel's TX socket refused.
    pub tx_errors: u64,
    /// Slots taken back from a hung holder (RECLAIM).
    pub evicted: u64,
}

impl Drops {
    pub fn total(&self) -> u64 {
        self.drop_oldest + self.ring_full + self.oversize + self.while_stopped + self.tx_errors + self.evicted
    }
}

/// The RFC 3550 numbers of the channel's stream (kernel GET_QUALITY).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Quality {
    pub ssrc: u32,
    pub clock_rate: u32,
    pub received: u64,
    pub expected: u64,
    /// Cumulative, expected - received (A.3); negative with duplicates.
    pub lost: i64,
    /// Interarrival jitter in ms (A.8); None without a clock rate.
    pub jitter_ms: Option<f64>,
    pub ssrc_changes: u32,
    pub max_loss_burst: u32,
}

/// One channel as top shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub channel: u32,
    pub path: PathBuf,
    /// "running", "stopped", or "error" (then `error` says why).
    pub state: &'static str,
    /// "kernel" (a socket is attached: the module moves the packets), "socket" (a process maps the
    /// ring and moves them itself), "none".
    pub attach: &'static str,
    /// Attached directions: "rx", "tx", "rx+tx" or "".
    pub attached: &'static str,
    /// Rates over the last interval; None before the second sample.
    pub pps_in: Option<f64>,
    pub pps_out: Option<f64>,
    pub mbps_in: Option<f64>,
    pub mbps_out: Option<f64>,
    /// Lost / expected over the last interval, in percent (RFC 3550 "fraction lost").
    pub loss_pct: Option<f64>,
    /// Interarrival jitter, ms; None without GET_QUALITY or a clock rate.
    pub jitter_ms: Option<f64>,
    pub reordered: u64,
    pub duplicates: u64,
    pub malformed: u64,
    /// RTP sequence gaps the ring counted (both backends).
    pub rtp_lost: u64,
    pub drops: Drops,
    pub slots: u32,
    pub ready: u32,
    /// PRODUCING + CONSUMING: owned by some process right now.
    pub held: u32,
    pub free: u32,
    pub openers: u32,
    pub mappings: u32,
    /// "producer", "consumer", "producer+consumer" or "".
    pub roles: &'static str,
    pub wakeups_per_s: Option<f64>,
    pub pushed_packets: u64,
    pub popped_packets: u64,
    pub quality: Option<Quality>,
    pub holders: Vec<Holder>,
    pub error: Option<String>,
}

fn per_s(cur: u64, prev: u64, dt_s: f64) -> f64 {
    cur.saturating_sub(prev) as f64 / dt_s
}

fn quality_of(q: &rtpmgr::Quality) -> Quality {
    Quality {
        ssrc: q.ssrc,
        clock_rate: q.clock_rate,
        received: q.received,
        expected: q.expected,
        lost: q.lost,
        jitter_ms: q.jitter_time().map(|j| j.as_secs_f64() * 1000.0),
        ssrc_changes: q.ssrc_changes,
        max_loss_burst: q.max_loss_burst,
    }
}

/// Loss over the interval in percent: from GET_QUALITY (expected vs received, as an RTCP receiver
/// report's fraction lost) when both samples have it for the same stream, else from the ring's
/// gap counter (lost / (lost + pushed)). None when nothing was expected.
fn interval_loss(prev: &Sample, cur: &Sample) -> Option<f64> {
    if let (Some(p), Some(c)) = (&prev.quality, &cur.quality) {
        if let Some(f) = c.fraction_lost_since(p) {
            return Some(100.0 * f);
        }
    }
    let lost = cur.stats.rtp_lost.saturating_sub(prev.stats.rtp_lost);
    let got = cur.stats.pushed_packets.saturating_sub(prev.stats.pushed_packets);
    (lost + got > 0).then(|| 100.0 * lost as f64 / (lost + got) as f64)
}

/// The row of one channel: `cur` now, rates against `prev` (None: rates unknown yet).
pub fn row(channel: u32, path: PathBuf, cur: &Sample, prev: Option<&Sample>) -> Row {
    let (s, st) = (&cur.stats, &cur.status);
    let dt_s = prev.map(|p| cur.at_ns.saturating_sub(p.at_ns) as f64 / 1e9).filter(|&d| d > 0.0);
    let rate = |f: fn(&Sample) -> u64| dt_s.zip(prev).map(|(d, p)| per_s(f(cur), f(p), d));
    let attached = match (st.attached & RTPM_ATTACHED_RX != 0, st.attached & RTPM_ATTACHED_TX != 0) {
        (true, true) => "rx+tx",
        (true, false) => "rx",
        (false, true) => "tx",
        (false, false) => "",
    };
    let roles = match (st.claimed & RTPM_ROLE_PRODUCER != 0, st.claimed & RTPM_ROLE_CONSUMER != 0) {
        (true, true) => "producer+consumer",
        (true, false) => "producer",
        (false, true) => "consumer",
        (false, false) => "",
    };
    let quality = cur.quality.as_ref().map(quality_of);
    Row {
        channel,
        path,
        state: crate::ctl::state_name(st.state),
        attach: if st.attached != 0 {
            "kernel"
        } else if st.mappings > 0 {
            "socket"
        } else {
            "none"
        },
        attached,
        pps_in: rate(|x| x.stats.pushed_packets),
        pps_out: rate(|x| x.stats.popped_packets),
        mbps_in: rate(|x| x.stats.pushed_bytes).map(|b| b * 8.0 / 1e6),
        mbps_out: rate(|x| x.stats.popped_bytes).map(|b| b * 8.0 / 1e6),
        loss_pct: prev.and_then(|p| interval_loss(p, cur)),
        jitter_ms: quality.as_ref().and_then(|q| q.jitter_ms),
        reordered: s.rtp_reordered,
        duplicates: s.rtp_duplicates,
        malformed: s.malformed,
        rtp_lost: s.rtp_lost,
        drops: Drops {
            drop_oldest: s.drops,
            ring_full: s.overruns,
            oversize: s.rx_oversize,
            while_stopped: s.rx_discarded,
            tx_errors: s.tx_errors,
            evicted: s.evicted,
        },
        slots: cur.info.slot_count,
        ready: st.ready,
        held: st.producing + st.consuming,
        free: st.free,
        openers: st.openers,
        mappings: st.mappings,
        roles,
        wakeups_per_s: rate(|x| x.stats.wakeups),
        pushed_packets: s.pushed_packets,
        popped_packets: s.popped_packets,
        quality,
        holders: cur.holders.clone(),
        error: None,
    }
}

/// A channel that could not be read this time.
pub fn error_row(channel: u32, path: PathBuf, why: String) -> Row {
    Row {
        channel,
        path,
        state: "error",
        attach: "none",
        attached: "",
        pps_in: None,
        pps_out: None,
        mbps_in: None,
        mbps_out: None,
        loss_pct: None,
        jitter_ms: None,
        reordered: 0,
        duplicates: 0,
        malformed: 0,
        rtp_lost: 0,
        drops: Drops::default(),
        slots: 0,
        ready: 0,
        held: 0,
        free: 0,
        openers: 0,
        mappings: 0,
        roles: "",
        wakeups_per_s: None,
        pushed_packets: 0,
        popped_packets: 0,
        quality: None,
        holders: vec![],
        error: Some(why),
    }
}

/// The samples of the last refresh, by path, to compute the next one's rates.
pub type Previous = HashMap<PathBuf, Sample>;

/// Rows of a refresh; `prev` becomes this refresh's samples.
pub fn rows(readings: Readings, prev: &mut Previous) -> Vec<Row> {
    let mut next = Previous::new();
    let out = readings
        .into_iter()
        .map(|(n, path, r)| match r {
            Ok(s) => {
                let row = row(n, path.clone(), &s, prev.get(&path));
                next.insert(path, s);
                row
            }
            Err(why) => error_row(n, path, why),
        })
        .collect();
    *prev = next;
    out
}

/// A count in at most 6 characters: 999999, then 3 significant digits with M, G, T, P, E.
pub fn fmt_count(v: u64) -> String {
    if v <= 999_999 {
        return v.to_string();
    }
    let (scale, unit) = [(1e18, 'E'), (1e15, 'P'), (1e12, 'T'), (1e9, 'G'), (1e6, 'M')]
        .into_iter()
        .find(|(scale, _)| v as f64 >= *scale)
        .unwrap_or((1e6, 'M'));
    let x = v as f64 / scale;
    if x < 10.0 {
        format!("{x:.2}{unit}")
    } else if x < 100.0 {
        format!("{x:.1}{unit}")
    } else {
        format!("{}{unit}", x as u64)
    }
}

/// A rate in at most 5 characters ("99999", "123k", "1.23M"), "-" when unknown.
pub fn fmt_rate(v: Option<f64>) -> String {
    match v.map(|r| r.round() as u64) {
        None => "-".into(),
        Some(n) if n < 100_000 => n.to_string(),
        Some(n) if n < 1_000_000 => format!("{}k", n / 1000),
        Some(n) => fmt_count(n),
    }
}

/// A decimal with 3 significant digits, at most 5 characters ("0.00", "12.3", "123", "1234").
pub fn fmt_dec(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(x) if x < 10.0 => format!("{x:.2}"),
        Some(x) if x < 100.0 => format!("{x:.1}"),
        Some(x) if x < 1e5 => format!("{}", x.round() as u64),
        Some(x) => fmt_count(x.round() as u64),
    }
}

/// The first holder as "comm+N" (N more), for the table's last column.
pub fn fmt_holders_short(h: &[Holder]) -> String {
    match h {
        [] => "-".into(),
        [one] => one.comm.clone(),
        [first, rest @ ..] => format!("{}+{}", first.comm, rest.len()),
    }
}

/// The table's columns: heading and width (the last one takes what is left of 80 columns).
pub const COLUMNS: [(&str, usize); 13] = [
    ("CH", 2),
    ("STATE", 5),
    ("ATTACH", 6),
    ("IN/s", 5),
    ("OUT/s", 5),
    ("Mb/s", 5),
    ("LOSS%", 5),
    ("JITms", 5),
    ("REORD", 5),
    ("DROPS", 5),
    ("READY", 5),
    ("HELD", 4),
    // "rtp-feeder" and "rtp_app+1" fit.
    ("HOLDERS", 11),
];

/// The table's cells of `r`, in [`COLUMNS`] order.
pub fn cells(r: &Row) -> [String; 13] {
    let state = match r.state {
        "running" => "run",
        "stopped" => "stop",
        other => other,
    };
    [
        r.channel.to_string(),
        state.to_string(),
        r.attach.to_string(),
        fmt_rate(r.pps_in),
        fmt_rate(r.pps_out),
        fmt_dec(r.mbps_in),
        fmt_dec(r.loss_pct),
        fmt_dec(r.jitter_ms),
        fmt_count(r.reordered),
        fmt_count(r.drops.total()),
        r.ready.to_string(),
        r.held.to_string(),
        fmt_holders_short(&r.holders),
    ]
}

/// One line of the plain table: cells left-aligned in their columns, cut to their width.
fn table_line(cells: &[String]) -> String {
    let mut line = String::new();
    for (i, (c, (_, w))) in cells.iter().zip(COLUMNS).enumerate() {
        let cut: String = c.chars().take(w).collect();
        if i + 1 == COLUMNS.len() {
            line.push_str(&cut);
        } else {
            line.push_str(&format!("{cut:<w$} "));
        }
    }
    line.trim_end().to_string()
}

/// The table as plain text: heading, then one line per row.
pub fn table_text(rows: &[Row]) -> Vec<String> {
    let head: Vec<String> = COLUMNS.iter().map(|(h, _)| h.to_string()).collect();
    std::iter::once(table_line(&head)).chain(rows.iter().map(|r| table_line(&cells(r)))).collect()
}

/// Joins `parts` with two spaces into lines of at most `width` characters, the first starting
/// with `label`, the others indented under it.
fn wrap(label: &str, parts: &[String], width: usize) -> Vec<String> {
    let indent = " ".repeat(label.len() + 1);
    let mut lines = vec![];
    let mut cur = format!("{label} ");
    let mut empty = true;
    let room = width.saturating_sub(indent.len()).max(8);
    for p in parts {
        // A part wider than a line (a long ring path) is cut, marked with a final '~'.
        let p = if p.chars().count() > room {
            p.chars().take(room - 1).chain(std::iter::once('~')).collect()
        } else {
            p.clone()
        };
        if !empty && cur.len() + 2 + p.len() > width {
            lines.push(cur.trim_end().to_string());
            cur = indent.clone();
            empty = true;
        }
        if !empty {
            cur.push_str("  ");
        }
        cur.push_str(&p);
        empty = false;
    }
    lines.push(cur.trim_end().to_string());
    lines
}

/// The detail pane of one channel: every number top has for it, in lines of at most `width`.
pub fn detail_lines(r: &Row, width: usize) -> Vec<String> {
    let mut out = vec![];
    let attach = match (r.attach, r.attached) {
        ("kernel", dirs) => format!("attach kernel ({dirs})"),
        (a, _) => format!("attach {a}"),
    };
    out.extend(wrap(
        &format!("Channel {}", r.channel),
        &[r.path.display().to_string(), r.state.to_string(), attach],
        width,
    ));
    if let Some(e) = &r.error {
        out.extend(wrap("Error", std::slice::from_ref(e), width));
        return out;
    }
    out.extend(wrap(
        "In",
        &[
            format!("{} pkt/s", fmt_rate(r.pps_in)),
            format!("{} Mbit/s", fmt_dec(r.mbps_in)),
            format!("pushed {}", r.pushed_packets),
        ],
        width,
    ));
    out.extend(wrap(
        "Out",
        &[
            format!("{} pkt/s", fmt_rate(r.pps_out)),
            format!("{} Mbit/s", fmt_dec(r.mbps_out)),
            format!("popped {}", r.popped_packets),
            format!("wake-ups {}/s", fmt_rate(r.wakeups_per_s)),
        ],
        width,
    ));
    let quality = match &r.quality {
        Some(q) if q.ssrc != 0 || q.received != 0 => {
            let loss = if q.expected > 0 { 100.0 * q.lost.max(0) as f64 / q.expected as f64 } else { 0.0 };
            vec![
                format!("ssrc 0x{:08x}", q.ssrc),
                format!("received {}", q.received),
                format!("expected {}", q.expected),
                format!("lost {} ({}%)", q.lost, fmt_dec(Some(loss))),
                format!("loss now {}%", fmt_dec(r.loss_pct)),
                match q.jitter_ms {
                    Some(j) => format!("jitter {j:.3} ms at {} Hz", q.clock_rate),
                    None => "jitter - (no clock rate set)".into(),
                },
                format!("max loss burst {}", q.max_loss_burst),
                format!("ssrc changes {}", q.ssrc_changes),
            ]
        }
        Some(_) => vec!["no RTP stream seen yet".into()],
        None => vec![
            format!("loss now {}%", fmt_dec(r.loss_pct)),
            "no RFC 3550 quality (shm ring, or a module before 2.1)".into(),
        ],
    };
    out.extend(wrap("Quality", &quality, width));
    out.extend(wrap(
        "RTP",
        &[
            format!("gaps {}", r.rtp_lost),
            format!("reordered {}", r.reordered),
            format!("duplicates {}", r.duplicates),
            format!("malformed {}", r.malformed),
        ],
        width,
    ));
    let d = &r.drops;
    out.extend(wrap(
        "Drops",
        &[
            format!("drop-oldest {}", d.drop_oldest),
            format!("ring-full {}", d.ring_full),
            format!("oversize {}", d.oversize),
            format!("while-stopped {}", d.while_stopped),
            format!("tx-errors {}", d.tx_errors),
            format!("evicted {}", d.evicted),
        ],
        width,
    ));
    out.extend(wrap(
        "Slots",
        &[
            format!("{} total", r.slots),
            format!("free {}", r.free),
            format!("ready {}", r.ready),
            format!("held {}", r.held),
            format!("openers {}", r.openers),
            format!("mappings {}", r.mappings),
            format!("roles {}", if r.roles.is_empty() { "-" } else { r.roles }),
        ],
        width,
    ));
    let holders: Vec<String> = if r.holders.is_empty() {
        vec!["-".into()]
    } else {
        r.holders.iter().map(|h| format!("{}/{}", h.pid, h.comm)).collect()
    };
    out.extend(wrap("Holders", &holders, width));
    out
}

/// The `--once` snapshot as plain text: a heading, the table, then every channel's detail.
pub fn snapshot_text(backend: &str, interval_s: f64, rows: &[Row]) -> String {
    let mut lines = vec![format!(
        "rtp_app top: {} {backend} channel{}, rates over {interval_s:.1} s",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" }
    )];
    lines.extend(table_text(rows));
    for r in rows {
        lines.push(String::new());
        lines.extend(detail_lines(r, WIDTH));
    }
    lines.join("\n")
}

/// The JSON record of one refresh.
pub fn snapshot_json(backend: &str, interval_s: f64, rows: &[Row]) -> String {
    serde_json::json!({
        "event": "top",
        "backend": backend,
        "interval_s": interval_s,
        "channels": rows,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtpmgr_abi::{RtpmInfo, RtpmQuality, RtpmStats, RtpmStatus};

    fn sample(at_s: u64, pushed: u64, popped: u64, lost: u64) -> Sample {
        Sample {
            at_ns: at_s * 1_000_000_000,
            info: RtpmInfo { slot_count: 1024, ..Default::default() },
            stats: RtpmStats {
                pushed_packets: pushed,
                pushed_bytes: pushed * 1212,
                popped_packets: popped,
                popped_bytes: popped * 1212,
                rtp_lost: lost,
                ..Default::default()
            },
            status: RtpmStatus { state: rtpmgr_abi::RTPM_STATE_RUNNING, mappings: 1, ready: 3, ..Default::default() },
            quality: None,
            holders: vec![Holder { pid: 42, comm: "rtp_app".into() }, Holder { pid: 43, comm: "rtp-feeder".into() }],
        }
    }

    #[test]
    fn rates_come_from_two_samples() {
        let (a, b) = (sample(10, 1000, 990, 0), sample(12, 3000, 2990, 20));
        let r = row(0, "/dev/rtp_mgr0".into(), &b, Some(&a));
        assert_eq!(r.pps_in, Some(1000.0));
        assert_eq!(r.pps_out, Some(1000.0));
        assert!((r.mbps_in.unwrap() - 1000.0 * 1212.0 * 8.0 / 1e6).abs() < 1e-9);
        // 20 gaps among 2000 pushed: 20 / 2020.
        assert!((r.loss_pct.unwrap() - 100.0 * 20.0 / 2020.0).abs() < 1e-9);
        assert_eq!((r.attach, r.state, r.ready), ("socket", "running", 3));
        let first = row(0, "/dev/rtp_mgr0".into(), &b, None);
        assert_eq!((first.pps_in, first.loss_pct), (None, None));
    }

    #[test]
    fn loss_uses_rfc3550_expected_when_the_kernel_has_it() {
        let mut a = sample(1, 100, 100, 0);
        let mut b = sample(2, 190, 190, 0);
        a.quality = Some(RtpmQuality { ssrc: 7, expected: 100, received: 100, lost: 0, ..Default::default() }.into());
        b.quality = Some(
            RtpmQuality {
                ssrc: 7,
                clock_rate: 90_000,
                expected: 200,
                received: 190,
                lost: 10,
                jitter_us: 1500,
                ..Default::default()
            }
            .into(),
        );
        let r = row(0, "x".into(), &b, Some(&a));
        assert_eq!(r.loss_pct, Some(10.0));
        assert_eq!(r.jitter_ms, Some(1.5));
        // A new SSRC between the samples: fall back to the ring's gap counter.
        b.quality.as_mut().unwrap().ssrc = 8;
        assert_eq!(row(0, "x".into(), &b, Some(&a)).loss_pct, Some(0.0));
    }

    #[test]
    fn attach_mode_follows_the_status() {
        let mut s = sample(1, 0, 0, 0);
        s.status.attached = RTPM_ATTACHED_RX;
        let r = row(0, "x".into(), &s, None);
        assert_eq!((r.attach, r.attached), ("kernel", "rx"));
        s.status.attached = 0;
        s.status.mappings = 0;
        assert_eq!(row(0, "x".into(), &s, None).attach, "none");
    }

    #[test]
    fn numbers_fit_their_columns() {
        for v in [0, 9, 999_999, 1_000_000, 9_999_999, 99_999_999, 999_999_999, u64::MAX] {
            assert!(fmt_count(v).len() <= 6, "{v}: {}", fmt_count(v));
        }
        assert_eq!(fmt_count(1_234_567), "1.23M");
        for r in [0.0, 99_999.4, 99_999.6, 123_456.0, 999_999.0, 1_234_567.0, 1e12] {
            assert!(fmt_rate(Some(r)).len() <= 5, "{r}: {}", fmt_rate(Some(r)));
        }
        assert_eq!(fmt_rate(Some(123_456.0)), "123k");
        for v in [0.0, 0.004, 9.999, 99.99, 12345.0, 99999.4, 1e9] {
            assert!(fmt_dec(Some(v)).len() <= 5, "{v}: {}", fmt_dec(Some(v)));
        }
        assert_eq!(fmt_dec(Some(0.5)), "0.50");
        assert_eq!(fmt_dec(None), "-");
    }

    #[test]
    fn plain_snapshot_fits_80_columns() {
        let (a, b) = (sample(10, 1000, 990, 0), sample(11, 2_345_678_000, 2_345_677_000, 12_345_678));
        let mut r = row(31, "/dev/shm/rtpapp-test-a-very-long-name-of-a-ring-123456".into(), &b, Some(&a));
        r.holders = (0..12).map(|i| Holder { pid: 4_000_000 + i, comm: "a-long-comm-name".into() }).collect();
        let text = snapshot_text("shm", 1.0, &[r.clone(), error_row(2, "/dev/rtp_mgr2".into(), "gone".into())]);
        let head = table_text(&[]).remove(0);
        assert_eq!(head.len() + "rtp-feeder".len() - "HOLDERS".len(), WIDTH - 1, "rtp-feeder fits: {head}");
        for l in text.lines() {
            assert!(l.chars().count() <= WIDTH, "{} columns: {l}", l.chars().count());
        }
        assert!(text.contains("4000011/a-long-comm-name"), "every holder listed: {text}");
        assert!(text.contains("Error gone"));
    }
}

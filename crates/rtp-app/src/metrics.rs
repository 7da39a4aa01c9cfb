//! `rtp_app --mode ctl --stats --format openmetrics`: channel counters for Prometheus.
//!
//! The format is the text exposition node_exporter's textfile collector reads (and
//! `promtool check metrics` validates): per metric a HELP and a TYPE line, then one sample per
//! channel labelled `channel="N"`; names prefixed `rtpmgr_`, counters suffixed `_total`, units in
//! base units (bytes, seconds). The last line is OpenMetrics' `# EOF`, a comment to the text
//! format's parsers, which shows a reader that the file is complete.

use rtpmgr_abi::{RtpmInfo, RtpmStats, RtpmStatus};
use std::fmt::Write;

/// What one channel contributes.
#[derive(Debug, Clone, Default)]
pub struct ChannelSample {
    /// N of /dev/rtp_mgrN (or of the shm ring rtpmgr-N).
    pub channel: u32,
    pub stats: RtpmStats,
    pub status: RtpmStatus,
    pub info: RtpmInfo,
    /// The wake-up rule (slots, microseconds); None for a shm ring, which has none.
    pub wakeup: Option<(u32, u32)>,
}

/// A counter: the stats field, its metric name (without prefix and `_total`) and its HELP text.
/// rtp_lost is not here: it goes down when a late packet fills a gap, so it is a gauge.
const COUNTERS: [(&str, &str, &str); 21] = [
    ("pushed_packets", "pushed_packets", "Slots pushed READY for the consumer."),
    ("pushed_bytes", "pushed_bytes", "Payload bytes pushed READY."),
    ("popped_packets", "popped_packets", "Slots handed to the consumer."),
    ("popped_bytes", "popped_bytes", "Payload bytes handed to the consumer."),
    ("released", "released_slots", "Slots the consumer released FREE."),
    ("drops", "dropped_packets", "READY slots dropped for new packets by the drop-oldest policy (full ring)."),
    ("overruns", "overruns", "Packets refused because the ring was full (reject-newest policy)."),
    ("underruns", "underruns", "Pops that found nothing READY."),
    ("rtp_reordered", "rtp_reordered_packets", "RTP packets that arrived after a later sequence number."),
    ("rtp_duplicates", "rtp_duplicate_packets", "RTP sequence numbers seen twice."),
    ("malformed", "malformed_packets", "Pushed payloads that are not RTP version 2."),
    ("reclaimed", "reclaimed_slots", "Slots freed because the process holding them closed the device or died."),
    ("illegal_ops", "illegal_operations", "Slot operations rejected as invalid."),
    ("cancelled", "cancelled_slots", "Reserved slots returned FREE unused."),
    ("denied", "denied_operations", "Operations refused for a missing role or privilege."),
    ("evicted", "evicted_slots", "Slots taken back from a live holder by RECLAIM."),
    ("rx_oversize", "rx_oversize_packets", "Datagrams of the attached RX socket larger than a slot, dropped."),
    (
        "rx_discarded",
        "rx_discarded_packets",
        "Datagrams of the attached RX socket that came while the channel was stopped.",
    ),
    ("wakeups", "consumer_wakeups", "Consumer wake-ups under the wake-up rule."),
    ("tx_sent", "tx_sent_packets", "Packets the kernel sent from the ring through the attached TX socket."),
    ("tx_errors", "tx_errors", "Sends of the attached TX socket that failed."),
];

/// A gauge: its metric name (without prefix), HELP text and value of a channel.
type Gauge = (&'static str, &'static str, fn(&ChannelSample) -> u64);

/// A metric family being written: HELP and TYPE once, then its samples.
fn family(out: &mut String, name: &str, kind: &str, help: &str, samples: impl IntoIterator<Item = (String, u64)>) {
    let _ = writeln!(out, "# HELP rtpmgr_{name} {help}");
    let _ = writeln!(out, "# TYPE rtpmgr_{name} {kind}");
    for (labels, v) in samples {
        let _ = writeln!(out, "rtpmgr_{name}{{{labels}}} {v}");
    }
}

fn label(ch: &ChannelSample) -> String {
    format!("channel=\"{}\"", ch.channel)
}

/// The exposition of `channels` (in the order given), ending in "# EOF\n".
pub fn exposition(channels: &[ChannelSample]) -> String {
    let mut out = String::new();
    let stat = |ch: &ChannelSample, field: &str| {
        rtpmgr::stats_fields(&ch.stats).iter().find(|(k, _)| *k == field).map_or(0, |(_, v)| *v)
    };
    for (field, name, help) in COUNTERS {
        let samples = channels.iter().map(|ch| (label(ch), stat(ch, field)));
        family(&mut out, &format!("{name}_total"), "counter", help, samples);
    }
    let gauges: [Gauge; 12] = [
        (
            "rtp_lost_packets",
            "RTP packets missing from the sequence (goes down when a late packet fills a gap).",
            |c| c.stats.rtp_lost,
        ),
        ("running", "1 if the channel is started (producers may push), else 0.", |c| {
            u64::from(c.status.state == rtpmgr_abi::RTPM_STATE_RUNNING)
        }),
        ("openers", "Open files of the channel.", |c| u64::from(c.status.openers)),
        ("mappings", "Mappings of the channel's ring.", |c| u64::from(c.status.mappings)),
        ("ring_slots", "Slots in the ring.", |c| u64::from(c.info.slot_count)),
        ("slot_payload_bytes", "Usable payload bytes per slot.", |c| u64::from(c.info.config.slot_payload)),
        ("free_slots", "Slots FREE now.", |c| u64::from(c.status.free)),
        ("producing_slots", "Slots reserved by a producer now.", |c| u64::from(c.status.producing)),
        ("ready_slots", "Slots READY for the consumer now (the backlog).", |c| u64::from(c.status.ready)),
        ("consuming_slots", "Slots held by the consumer now.", |c| u64::from(c.status.consuming)),
        ("attached_rx", "1 if a UDP socket is attached to the channel for kernel RX, else 0.", |c| {
            u64::from(c.status.attached & rtpmgr_abi::RTPM_ATTACHED_RX != 0)
        }),
        ("attached_tx", "1 if a UDP socket is attached to the channel for kernel TX, else 0.", |c| {
            u64::from(c.status.attached & rtpmgr_abi::RTPM_ATTACHED_TX != 0)
        }),
    ];
    for (name, help, get) in gauges {
        family(&mut out, name, "gauge", help, channels.iter().map(|ch| (label(ch), get(ch))));
    }
    // The wake-up rule exists on the kernel backend only: no sample for a shm ring.
    let ruled: Vec<_> = channels.iter().filter_map(|c| c.wakeup.map(|w| (c, w))).collect();
    if !ruled.is_empty() {
        family(
            &mut out,
            "wake_slots",
            "gauge",
            "The consumer is woken once this many slots are READY.",
            ruled.iter().map(|(c, w)| (label(c), u64::from(w.0))),
        );
        let _ = writeln!(out, "# HELP rtpmgr_wake_delay_seconds ...or once the oldest READY slot waited this long.");
        let _ = writeln!(out, "# TYPE rtpmgr_wake_delay_seconds gauge");
        for (c, w) in &ruled {
            let _ = writeln!(out, "rtpmgr_wake_delay_seconds{{{}}} {}", label(c), f64::from(w.1) / 1e6);
        }
    }
    out.push_str("# EOF\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(channel: u32) -> ChannelSample {
        let mut s = ChannelSample { channel, wakeup: Some((32, 4000)), ..Default::default() };
        s.stats.pushed_packets = 1000 + u64::from(channel);
        s.stats.rtp_lost = 3;
        s.stats.tx_errors = 7;
        s.status.state = rtpmgr_abi::RTPM_STATE_RUNNING;
        s.status.ready = 5;
        s.status.attached = rtpmgr_abi::RTPM_ATTACHED_RX;
        s.info.slot_count = 1024;
        s
    }

    #[test]
    fn every_counter_but_rtp_lost_is_exported() {
        let all: Vec<_> = rtpmgr::stats_fields(&RtpmStats::default()).iter().map(|(k, _)| *k).collect();
        let mut exported: Vec<_> = COUNTERS.iter().map(|(f, _, _)| *f).collect();
        exported.push("rtp_lost");
        exported.sort_unstable();
        let mut want = all.clone();
        want.sort_unstable();
        assert_eq!(exported, want, "a new stats field needs a metric here");
    }

    #[test]
    fn exposition_has_help_type_and_one_sample_per_channel() {
        let text = exposition(&[sample(0), sample(3)]);
        assert!(text.ends_with("\n# EOF\n"));
        assert!(text.contains("# TYPE rtpmgr_pushed_packets_total counter\n"));
        assert!(text.contains(
            "rtpmgr_pushed_packets_total{channel=\"0\"} 1000\nrtpmgr_pushed_packets_total{channel=\"3\"} 1003\n"
        ));
        assert!(text.contains("rtpmgr_tx_errors_total{channel=\"3\"} 7\n"));
        assert!(text.contains("# TYPE rtpmgr_rtp_lost_packets gauge\nrtpmgr_rtp_lost_packets{channel=\"0\"} 3\n"));
        assert!(text.contains("rtpmgr_running{channel=\"3\"} 1\n"));
        assert!(text.contains("rtpmgr_attached_rx{channel=\"0\"} 1\nrtpmgr_attached_rx{channel=\"3\"} 1\n"));
        assert!(text.contains("rtpmgr_attached_tx{channel=\"0\"} 0\n"));
        assert!(text.contains("rtpmgr_wake_delay_seconds{channel=\"0\"} 0.004\n"));
        // Every sample line belongs to the family its TYPE line announced just before.
        let mut current = String::new();
        for l in text.lines() {
            if let Some(rest) = l.strip_prefix("# TYPE ") {
                current = rest.split(' ').next().unwrap().to_string();
            } else if !l.starts_with('#') {
                assert!(l.starts_with(&format!("{current}{{")), "{l} outside {current}");
            }
        }
        let counters = text.lines().filter(|l| l.ends_with(" counter")).count();
        assert_eq!(counters, COUNTERS.len());
        assert!(text.lines().filter(|l| l.ends_with(" counter")).all(|l| l.contains("_total ")));
    }

    #[test]
    fn shm_rings_have_no_wakeup_metrics() {
        let mut s = sample(1);
        s.wakeup = None;
        let text = exposition(&[s]);
        assert!(!text.contains("wake_"));
        assert!(text.ends_with("# EOF\n"));
    }
}

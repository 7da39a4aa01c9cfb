//! `--mode ctl`: one control action on a channel.
//!
//! Human output uses the sysfs format ("name value" per line, the struct field names), so the
//! same scripts read `/sys/class/misc/rtp_mgrN/stats` and `rtp_app --mode ctl --stats`.

use crate::backend::{describe, open};
use crate::cli::{CtlArgs, CtlFormat, DropPolicy};
use anyhow::{bail, Context, Result};
use rtpmgr::Backend;
use rtpmgr_abi::{RtpmConfig, RtpmInfo, RtpmStats, RtpmStatus};
use serde_json::{json, Map, Value};

/// Counters of GET_STATS as (name, value), in header order (the ring library's list, so the names
/// stay those of the UAPI and of sysfs).
pub fn stats_fields(s: &RtpmStats) -> Vec<(&'static str, u64)> {
    rtpmgr::stats_fields(s).to_vec()
}

/// GET_STATUS as (name, value), widened to u64 like the counters.
pub fn status_fields(s: &RtpmStatus) -> Vec<(&'static str, u64)> {
    rtpmgr::status_fields(s).iter().map(|&(k, v)| (k, u64::from(v))).collect()
}

/// The wake-up rule in force as `wake_slots`, `wake_usecs` (GET_WAKEUP); nothing for a shm ring,
/// which has no rule (its consumer is woken on every push).
pub fn wakeup_fields(ch: &rtpmgr::Channel, what: &str) -> Result<Vec<(&'static str, u64)>> {
    match ch.wakeup() {
        Ok(w) => Ok(vec![("wake_slots", u64::from(w.slots)), ("wake_usecs", u64::from(w.usecs))]),
        Err(rtpmgr::Error::Unsupported { .. }) => Ok(vec![]),
        Err(e) => Err(e).with_context(|| format!("cannot read the wake-up rule of {what}")),
    }
}

/// GET_INFO as (name, value).
pub fn info_fields(i: &RtpmInfo) -> Vec<(&'static str, u64)> {
    vec![
        ("abi_major", u64::from(i.abi_major)),
        ("abi_minor", u64::from(i.abi_minor)),
        ("channel", u64::from(i.channel)),
        ("channels", u64::from(i.channels)),
        ("state", u64::from(i.state)),
        ("ring_order", u64::from(i.config.ring_order)),
        ("slot_payload", u64::from(i.config.slot_payload)),
        ("drop_policy", u64::from(i.config.drop_policy)),
        ("slot_count", u64::from(i.slot_count)),
        ("slot_stride", u64::from(i.slot_stride)),
    ]
}

fn to_json(fields: &[(&str, u64)]) -> Value {
    Value::Object(fields.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<Map<_, _>>())
}

fn to_text(fields: &[(&str, u64)]) -> String {
    fields.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join("\n")
}

/// "running"/"stopped".
pub fn state_name(state: u32) -> &'static str {
    if state == rtpmgr_abi::RTPM_STATE_RUNNING {
        "running"
    } else {
        "stopped"
    }
}

/// The configuration CONFIGURE gets: the current one with the given fields replaced.
pub fn merged_config(current: &RtpmConfig, args: &CtlArgs) -> RtpmConfig {
    RtpmConfig {
        ring_order: args.ring_order.unwrap_or(current.ring_order),
        slot_payload: args.slot_payload.unwrap_or(current.slot_payload),
        drop_policy: match args.drop_policy {
            Some(DropPolicy::RejectNewest) => rtpmgr_abi::RTPM_DROP_REJECT_NEWEST,
            Some(DropPolicy::DropOldest) => rtpmgr_abi::RTPM_DROP_OLDEST,
            None => current.drop_policy,
        },
        reserved: [0; 4],
        flags: 0,
    }
}

/// The channels `--all-channels` reads: every /dev/rtp_mgrN of the module (as many as GET_INFO of
/// `backend` says it has), or every shm ring "rtpmgr-N" in the shm directory, in channel order.
pub fn all_channels(backend: &Backend) -> Result<Vec<Backend>> {
    match backend.kind() {
        rtpmgr::BackendKind::Kernel => {
            let what = describe(backend);
            let info = open(backend)?.info().with_context(|| format!("cannot read the configuration of {what}"))?;
            Ok((0..info.channels).map(Backend::kernel).collect())
        }
        rtpmgr::BackendKind::Shm => {
            let dir = rtpmgr::shm_dir();
            let mut found: Vec<u32> = std::fs::read_dir(&dir)
                .with_context(|| format!("cannot list the shm directory {}", dir.display()))?
                .filter_map(|e| e.ok()?.file_name().to_str()?.strip_prefix("rtpmgr-")?.parse().ok())
                .collect();
            found.sort_unstable();
            if found.is_empty() {
                bail!("no shm ring rtpmgr-N in {} (a ring exists once rx, tx or ctl opened it)", dir.display());
            }
            Ok(found.into_iter().map(Backend::shm_channel).collect())
        }
    }
}

/// Stats, status, configuration and wake-up rule of one channel, for the metrics.
fn metrics_sample(backend: &Backend) -> Result<crate::metrics::ChannelSample> {
    let what = describe(backend);
    let ring = open(backend).with_context(|| format!("cannot open {what}"))?;
    let info = ring.info().with_context(|| format!("cannot read the configuration of {what}"))?;
    let wake = wakeup_fields(&ring, &what)?;
    Ok(crate::metrics::ChannelSample {
        channel: info.channel,
        stats: ring.stats().with_context(|| format!("cannot read the stats of {what}"))?,
        status: ring.status().with_context(|| format!("cannot read the status of {what}"))?,
        info,
        wakeup: match wake.as_slice() {
            [(_, slots), (_, usecs)] => Some((*slots as u32, *usecs as u32)),
            _ => None,
        },
    })
}

/// Run the one action `args` names on `backend` (on every channel with --all-channels) and
/// return what to print.
pub fn run(args: &CtlArgs, backend: &Backend, json: bool) -> Result<String> {
    let json = json || args.format == Some(CtlFormat::Json);
    let targets = if args.all_channels { all_channels(backend)? } else { vec![backend.clone()] };
    if args.format == Some(CtlFormat::Openmetrics) {
        let samples = targets.iter().map(metrics_sample).collect::<Result<Vec<_>>>()?;
        // The exposition ends in a newline of its own; emit adds one.
        return Ok(crate::metrics::exposition(&samples).trim_end().to_string());
    }
    if args.all_channels {
        let mut out = vec![];
        for b in &targets {
            let body = run_one(args, b, json)?;
            out.push(if json { body } else { format!("# {}\n{body}", describe(b)) });
        }
        return Ok(out.join("\n"));
    }
    run_one(args, backend, json)
}

/// The fields of --quality, "name value" as the other actions print them.
pub fn quality_fields(q: &rtpmgr::Quality) -> Vec<(&'static str, i64)> {
    let jitter_us = q.jitter_time().map_or(0, |j| i64::try_from(j.as_micros()).unwrap_or(i64::MAX));
    vec![
        ("ssrc", i64::from(q.ssrc)),
        ("clock_rate", i64::from(q.clock_rate)),
        ("received", i64::try_from(q.received).unwrap_or(i64::MAX)),
        ("expected", i64::try_from(q.expected).unwrap_or(i64::MAX)),
        ("lost", q.lost),
        ("ext_max_seq", i64::from(q.ext_max_seq)),
        ("base_seq", i64::from(q.base_seq)),
        ("jitter", i64::from(q.jitter)),
        ("jitter_us", jitter_us),
        ("ssrc_changes", i64::from(q.ssrc_changes)),
        ("max_loss_burst", i64::from(q.max_loss_burst)),
    ]
}

/// --quality: GET_QUALITY through the ring library, on a read-only handle where there is one (a
/// kernel channel), so that it works for whoever may read the node and takes no claim.
fn quality(backend: &Backend, what: &str, json: bool) -> Result<String> {
    let ch = match backend.kind() {
        rtpmgr::BackendKind::Kernel => rtpmgr::Channel::open_read_only(backend).map_err(anyhow::Error::from),
        rtpmgr::BackendKind::Shm => open(backend),
    }
    .with_context(|| format!("cannot open {what}"))?;
    let q = ch.quality().with_context(|| format!("cannot read the stream quality of {what}"))?;
    let fields = quality_fields(&q);
    Ok(if json {
        let body: Map<String, Value> = fields.iter().map(|(k, v)| ((*k).to_string(), json!(v))).collect();
        json!({"action": "quality", "target": what, "ok": true, "quality": body}).to_string()
    } else {
        fields.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join("\n")
    })
}

fn run_one(args: &CtlArgs, backend: &Backend, json: bool) -> Result<String> {
    let what = describe(backend);
    if args.quality {
        return quality(backend, &what, json);
    }
    // Control actions need no mapping; CONFIGURE even requires that nobody maps the ring.
    let ring = open(backend).with_context(|| format!("cannot open {what}"))?;
    let (action, body): (&str, Vec<(&str, u64)>) = if args.stats {
        let mut f = stats_fields(&ring.stats().with_context(|| format!("cannot read the stats of {what}"))?);
        let status = ring.status().with_context(|| format!("cannot read the status of {what}"))?;
        f.push(("attached", u64::from(status.attached)));
        f.extend(wakeup_fields(&ring, &what)?);
        ("stats", f)
    } else if args.status {
        let info = ring.info().with_context(|| format!("cannot read the configuration of {what}"))?;
        let status = ring.status().with_context(|| format!("cannot read the status of {what}"))?;
        let mut f = info_fields(&info);
        f.extend(status_fields(&status).into_iter().filter(|(k, _)| *k != "state"));
        f.extend(wakeup_fields(&ring, &what)?);
        ("status", f)
    } else if let Some(rule) = args.wakeup {
        ring.set_wakeup(rule).with_context(|| format!("cannot set the wake-up rule of {what}"))?;
        ("wakeup", wakeup_fields(&ring, &what)?)
    } else if args.start {
        ring.start().with_context(|| format!("cannot start {what}"))?;
        ("start", vec![])
    } else if args.stop {
        ring.stop().with_context(|| format!("cannot stop {what}"))?;
        ("stop", vec![])
    } else if args.reset {
        ring.reset().with_context(|| {
            format!("cannot reset {what} (it must be stopped and no slot owned: rtp_app --mode ctl --stop first)")
        })?;
        ("reset", vec![])
    } else if args.configure {
        let current = ring.info().with_context(|| format!("cannot read the configuration of {what}"))?;
        let cfg = merged_config(&current.config, args);
        ring.configure(&rtpmgr::Config::from_raw(&cfg)).with_context(|| {
            format!(
                "cannot configure {what} to ring_order {} slot_payload {} drop_policy {} \
                 (the channel must be stopped and nobody may have it mapped: stop rx/tx/feeder first)",
                cfg.ring_order, cfg.slot_payload, cfg.drop_policy
            )
        })?;
        ("configure", info_fields(&ring.info()?))
    } else if args.reclaim {
        let n =
            ring.reclaim(std::time::Duration::from_millis(args.min_held_ms), args.revoke_roles).with_context(|| {
                format!("cannot reclaim slots of {what} (needs CAP_NET_ADMIN, i.e. root or a capable service)")
            })?;
        ("reclaim", vec![("reclaimed", u64::from(n))])
    } else {
        bail!("{}", crate::cli::CTL_ACTIONS);
    };
    Ok(if json {
        let mut obj = Map::new();
        obj.insert("action".into(), json!(action));
        obj.insert("target".into(), json!(what));
        obj.insert("ok".into(), json!(true));
        if !body.is_empty() {
            obj.insert(action.into(), to_json(&body));
        }
        Value::Object(obj).to_string()
    } else if body.is_empty() {
        format!("{what}: {action} done")
    } else {
        to_text(&body)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_config_keeps_unspecified_fields() {
        let cur = RtpmConfig::new(10, 2048, 0);
        let args = CtlArgs {
            stats: false,
            status: false,
            quality: false,
            start: false,
            stop: false,
            reset: false,
            configure: true,
            ring_order: Some(12),
            slot_payload: None,
            drop_policy: Some(DropPolicy::DropOldest),
            reclaim: false,
            min_held_ms: 1000,
            revoke_roles: false,
            wakeup: None,
            format: None,
            all_channels: false,
        };
        let m = merged_config(&cur, &args);
        assert_eq!((m.ring_order, m.slot_payload, m.drop_policy), (12, 2048, 1));
    }

    #[test]
    fn stats_fields_cover_every_counter() {
        // RtpmStats is u64 counters plus a reserved tail (zero until a 2.x version names them):
        // a counter added to the ABI must be added to the list too.
        let reserved = std::mem::size_of_val(&RtpmStats::default().reserved);
        assert_eq!(stats_fields(&RtpmStats::default()).len() * 8 + reserved, std::mem::size_of::<RtpmStats>());
    }
}

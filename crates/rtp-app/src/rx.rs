//! `--mode rx`: UDP socket -> ring slots, one copy.
//!
//! The worker keeps a small pool of RESERVEd slots, points `recvmmsg` straight at their
//! payload memory, validates each datagram as RTP v2 in place and PUSHes the good ones with
//! their arrival time. A malformed datagram is counted and skipped: the datagrams after it in
//! the same batch are moved down one slot (the only extra copy, and only in that rare case) so
//! the slots stay pushed in the order they were reserved and the ring never sees a hole.
//!
//! When the ring is full (or the channel stopped) after a bounded number of retries, the worker
//! still drains the socket into a scratch buffer and counts those datagrams as `ring_full`:
//! stalling would only move the loss into the socket buffer and make it invisible.

use crate::control::{bounded_retry, Limits, RetryPolicy, StopState};
use crate::net::{poll_fd, RecvMeta, RxSocket};
use crate::ring::{Avail, Checked, Ring};
use crate::rtp;
use crate::stats::Counters;
use anyhow::{Context, Result};
use rtpmgr_abi::RtpmSlotRef;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// How long one wait for data or slots lasts before the stop flag is looked at again.
pub const POLL_SLICE: Duration = Duration::from_millis(100);

/// Settings of the RX worker.
#[derive(Debug, Clone)]
pub struct RxConfig {
    /// Datagrams per recvmmsg and slots per reserve/push.
    pub batch: usize,
    /// Push malformed datagrams too (the ring flags and counts them).
    pub keep_malformed: bool,
    /// `-t` / `-l`.
    pub limits: Limits,
}

/// Outcome of one [`try_reserve`].
enum Reserved {
    Got,
    Full,
    Stopped,
}

/// Top the pool up to `want` slots with bounded retries.
fn try_reserve<R: Ring>(
    ring: &mut Checked<R>,
    pool: &mut Vec<RtpmSlotRef>,
    tmp: &mut [RtpmSlotRef],
    want: usize,
    stop: &StopState,
) -> Result<Reserved> {
    let need = want.saturating_sub(pool.len()).min(tmp.len());
    if need == 0 {
        return Ok(Reserved::Got);
    }
    let r = bounded_retry(RetryPolicy::RING_FULL, stop, || -> Result<Option<Avail>> {
        match ring.reserve(&mut tmp[..need])? {
            Avail::Nothing => Ok(None),
            other => Ok(Some(other)),
        }
    })?;
    Ok(match r {
        Ok(Avail::Done(n)) => {
            pool.extend_from_slice(&tmp[..n]);
            Reserved::Got
        }
        Ok(Avail::Stopped) => Reserved::Stopped,
        Ok(Avail::Nothing) | Err(_) => Reserved::Full,
    })
}

/// Receive into `scratch` and count everything as dropped (ring full or stopped).
fn drain_socket(sock: &mut RxSocket, scratch: &mut [Vec<u8>], meta: &mut Vec<RecvMeta>, c: &Counters) -> Result<()> {
    if !poll_fd(sock.fd(), libc::POLLIN, Duration::from_millis(10)).context("poll on the UDP socket failed")? {
        return Ok(());
    }
    let mut bufs: Vec<&mut [u8]> = scratch.iter_mut().map(|b| b.as_mut_slice()).collect();
    let n = sock.recv_batch(&mut bufs, meta).context("recvmmsg failed")?;
    let bytes: u64 = meta.iter().map(|m| m.len as u64).sum();
    Counters::add(&c.packets, n as u64);
    Counters::add(&c.bytes, bytes);
    Counters::add(&c.ring_full, n as u64);
    Ok(())
}

/// The RX worker loop; returns when `stop` is set or a limit is reached. On return every slot
/// it reserved and did not push is still owned by `ring`'s handle, which gives them back when
/// it is dropped (the kernel reclaims them on close; the shm backend likewise).
pub fn rx_loop<R: Ring>(
    ring: &mut Checked<R>,
    sock: &mut RxSocket,
    cfg: &RxConfig,
    c: &Counters,
    stop: &StopState,
) -> Result<()> {
    let batch = cfg.batch.clamp(1, crate::net::BATCH_MAX);
    let started = Instant::now();
    let mut pool: Vec<RtpmSlotRef> = Vec::with_capacity(batch);
    let mut tmp = vec![RtpmSlotRef::default(); batch];
    let mut meta = Vec::with_capacity(batch);
    let mut push_refs: Vec<RtpmSlotRef> = Vec::with_capacity(batch);
    let mut scratch: Vec<Vec<u8>> = (0..batch).map(|_| vec![0u8; ring.slot_payload()]).collect();
    let mut stopped_warned = false;

    loop {
        let received = c.packets.load(Ordering::Relaxed);
        if stop.should_stop() || cfg.limits.check(stop, started, received) {
            return Ok(());
        }
        let want = (cfg.limits.remaining(received).min(batch as u64)) as usize;

        match try_reserve(ring, &mut pool, &mut tmp, want, stop)? {
            Reserved::Stopped if pool.is_empty() && !stopped_warned => {
                log::warn!("channel is stopped: datagrams are counted as ring_full until it is started");
                stopped_warned = true;
            }
            Reserved::Got => stopped_warned = false,
            _ => {}
        }
        if pool.is_empty() {
            drain_socket(sock, &mut scratch[..want], &mut meta, c)?;
            continue;
        }

        let take = pool.len().min(want);
        let n = {
            let mut bufs = ring.payloads_mut(&pool[..take]);
            sock.recv_batch(&mut bufs, &mut meta).context("recvmmsg failed")?
        };
        if n == 0 {
            poll_fd(sock.fd(), libc::POLLIN, POLL_SLICE).context("poll on the UDP socket failed")?;
            continue;
        }

        // Validate in place and compact: the w-th datagram worth pushing ends up in pool[w].
        push_refs.clear();
        let mut bytes = 0u64;
        for (i, m) in meta.iter().enumerate().take(n) {
            bytes += m.len as u64;
            let slot = RtpmSlotRef { index: pool[i].index, len: m.len as u32, arrival_ns: m.arrival_ns };
            let valid = !m.truncated && m.len > 0 && rtp::parse(ring.payload(&slot)).is_ok();
            if !valid {
                Counters::add(&c.malformed, 1);
                log::debug!("malformed datagram of {} bytes{}", m.len, if m.truncated { " (truncated)" } else { "" });
                // An empty datagram cannot be pushed (len 0 is invalid) even with --keep-malformed.
                if !cfg.keep_malformed || m.len == 0 {
                    continue;
                }
            }
            let w = push_refs.len();
            ring.copy_slot(pool[i].index, pool[w].index, m.len);
            push_refs.push(RtpmSlotRef { index: pool[w].index, ..slot });
        }
        Counters::add(&c.packets, n as u64);
        Counters::add(&c.bytes, bytes);
        if push_refs.is_empty() {
            continue;
        }
        let pushed = match ring.push(&push_refs).context("push to the ring failed")? {
            Avail::Done(k) => k,
            Avail::Nothing | Avail::Stopped => 0,
        };
        Counters::add(&c.pushed, pushed as u64);
        // What could not be pushed (channel stopped meanwhile) is lost; its slots stay reserved
        // in the pool for the next datagrams.
        Counters::add(&c.ring_full, (push_refs.len() - pushed) as u64);
        pool.drain(..pushed);
    }
}

/// `--drain`: pop and release everything pushed, counting it, until stopped; then empty the
/// ring once more (bounded by its size) so the final counts include the tail.
pub fn drain_loop<R: Ring>(ring: &mut Checked<R>, batch: usize, c: &Counters, stop: &StopState) -> Result<()> {
    let mut refs = vec![RtpmSlotRef::default(); batch.clamp(1, crate::net::BATCH_MAX)];
    let mut tail_budget: Option<u64> = None;
    loop {
        let timeout = if tail_budget.is_some() { Duration::ZERO } else { POLL_SLICE };
        let got = match ring.pop(&mut refs, timeout).context("pop from the ring failed")? {
            Avail::Done(n) => n,
            _ => 0,
        };
        if got > 0 {
            for r in &refs[..got] {
                // Reading the payload proves the slot is mapped and the length sane; a consumer
                // that forwards the data would do its work here.
                let _ = ring.payload(r);
            }
            let released = ring.release(&refs[..got]).context("release to the ring failed")?;
            Counters::add(&c.consumed, got as u64);
            if released != got {
                log::warn!("released {released} of {got} popped slots");
            }
        }
        match tail_budget.as_mut() {
            None if stop.should_stop() => {
                tail_budget = Some(u64::from(ring.inner().slot_count()));
            }
            Some(b) => {
                *b = b.saturating_sub(got as u64);
                if got == 0 || *b == 0 {
                    return Ok(());
                }
            }
            None => {}
        }
    }
}

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
use crate::stats::Counters;
use anyhow::{Context, Result};
use nix::errno::Errno;
use rtpmgr::{Consumer, Producer, WriteSlot};
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

/// What one non-blocking reserve found.
pub(crate) enum Reserve {
    Slots(Vec<WriteSlot>),
    Stopped,
}

/// One non-blocking RESERVE of up to `n` slots: None when the ring is full (`EAGAIN`), the
/// channel state when it is stopped (`EPIPE`), any other error as it is.
pub(crate) fn reserve_now(tx: &mut Producer, n: usize) -> Result<Option<Reserve>> {
    match tx.reserve_batch(n) {
        Ok(v) => Ok(Some(Reserve::Slots(v))),
        Err(e) if e.errno() == Errno::EAGAIN => Ok(None),
        Err(e) if e.errno() == Errno::EPIPE => Ok(Some(Reserve::Stopped)),
        Err(e) => Err(e).context("reserve in the ring failed"),
    }
}

/// Top the pool up to `want` slots with bounded retries.
fn try_reserve(tx: &mut Producer, pool: &mut Vec<WriteSlot>, want: usize, stop: &StopState) -> Result<Reserved> {
    let need = want.saturating_sub(pool.len());
    if need == 0 {
        return Ok(Reserved::Got);
    }
    let r = bounded_retry(RetryPolicy::RING_FULL, stop, || reserve_now(tx, need))?;
    Ok(match r {
        Ok(Reserve::Slots(v)) => {
            pool.extend(v);
            Reserved::Got
        }
        Ok(Reserve::Stopped) => Reserved::Stopped,
        Err(_) => Reserved::Full,
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

/// Copies the first `len` bytes of `pool[from]` into `pool[to]` (`to < from`): RX compacts a
/// batch around a malformed datagram so the slots are pushed in reservation order.
fn move_down(pool: &mut [WriteSlot], from: usize, to: usize, len: usize) {
    if from != to {
        let (low, high) = pool.split_at_mut(from);
        low[to].buf_mut()[..len].copy_from_slice(&high[0].buf_mut()[..len]);
    }
}

/// The RX worker loop; returns when `stop` is set or a limit is reached. On return the slots it
/// reserved and did not push are dropped back to `tx`, which holds them until the channel closes
/// (the kernel reclaims them on close; the shm backend likewise).
pub fn rx_loop(tx: &mut Producer, sock: &mut RxSocket, cfg: &RxConfig, c: &Counters, stop: &StopState) -> Result<()> {
    let batch = cfg.batch.clamp(1, crate::net::BATCH_MAX);
    let slot_payload = tx.ring().layout().slot_payload as usize;
    let started = Instant::now();
    let mut pool: Vec<WriteSlot> = Vec::with_capacity(batch);
    let mut meta = Vec::with_capacity(batch);
    let mut scratch: Vec<Vec<u8>> = (0..batch).map(|_| vec![0u8; slot_payload]).collect();
    let mut stopped_warned = false;

    loop {
        // Every turn, at least every POLL_SLICE: a hung worker stops pinging.
        rtpmgr_service::watchdog_tick();
        let received = c.packets.load(Ordering::Relaxed);
        if stop.should_stop() || cfg.limits.check(stop, started, received) {
            return Ok(());
        }
        let want = (cfg.limits.remaining(received).min(batch as u64)) as usize;

        match try_reserve(tx, &mut pool, want, stop)? {
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
            let mut bufs: Vec<&mut [u8]> = pool[..take].iter_mut().map(|s| s.buf_mut()).collect();
            sock.recv_batch(&mut bufs, &mut meta).context("recvmmsg failed")?
        };
        if n == 0 {
            poll_fd(sock.fd(), libc::POLLIN, POLL_SLICE).context("poll on the UDP socket failed")?;
            continue;
        }

        // Validate in place and compact: the w-th datagram worth pushing ends up in pool[w].
        let mut keep = 0;
        let mut bytes = 0u64;
        for (i, m) in meta.iter().enumerate().take(n) {
            bytes += m.len as u64;
            let valid = !m.truncated && m.len > 0 && rtpmgr::rtp::parse(&pool[i].buf_mut()[..m.len]).is_ok();
            if !valid {
                Counters::add(&c.malformed, 1);
                log::debug!("malformed datagram of {} bytes{}", m.len, if m.truncated { " (truncated)" } else { "" });
                // An empty datagram cannot be pushed (len 0 is invalid) even with --keep-malformed.
                if !cfg.keep_malformed || m.len == 0 {
                    continue;
                }
            }
            move_down(&mut pool, i, keep, m.len);
            pool[keep].set_len(m.len).context("received datagram longer than a slot")?;
            pool[keep].set_arrival_ns(m.arrival_ns);
            keep += 1;
        }
        Counters::add(&c.packets, n as u64);
        Counters::add(&c.bytes, bytes);
        if keep == 0 {
            continue;
        }
        let pushed = match tx.push_batch(pool.drain(..keep).collect()) {
            Ok(k) => k,
            Err(e) if e.errno() == Errno::EPIPE => 0,
            Err(e) => return Err(e).context("push to the ring failed"),
        };
        Counters::add(&c.pushed, pushed as u64);
        // What could not be pushed (channel stopped meanwhile) is lost; its slots stay reserved
        // by the producer, which hands them out first for the next datagrams.
        Counters::add(&c.ring_full, (keep - pushed) as u64);
    }
}

/// `--drain`: pop and release everything pushed, counting it, until stopped; then empty the
/// ring once more (bounded by its size) so the final counts include the tail.
pub fn drain_loop(rx: &mut Consumer, batch: usize, c: &Counters, stop: &StopState) -> Result<()> {
    let batch = batch.clamp(1, crate::net::BATCH_MAX);
    let mut tail_budget: Option<u64> = None;
    loop {
        let timeout = if tail_budget.is_some() { Duration::ZERO } else { POLL_SLICE };
        let slots = rx.pop_batch_wait(batch, Some(timeout)).context("pop from the ring failed")?;
        let got = slots.len();
        if got > 0 {
            // A consumer that forwards the data would read `s.data()` here; dropping the guards
            // releases the slots (batched by the consumer).
            drop(slots);
            rx.flush().context("release to the ring failed")?;
            Counters::add(&c.consumed, got as u64);
        }
        match tail_budget.as_mut() {
            None if stop.should_stop() => {
                tail_budget = Some(u64::from(rx.ring().layout().slot_count));
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

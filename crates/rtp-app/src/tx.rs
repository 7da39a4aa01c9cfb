//! `--mode tx`: ring slots -> UDP socket, sent from slot memory with `sendmmsg` (or, with
//! `--xdp`, copied into AF_XDP frames: see [`crate::xdp`]).
//!
//! `--source generate` (default): per batch the worker RESERVEs slots, writes the next RTP
//! packets into them, PUSHes them READY (so the channel's RTP counters see the stream), POPs
//! them back and sends them straight from slot memory, then RELEASEs them. The ring is the
//! packet buffer pool; that is also why this runs on a host with `--backend shm`: nothing needs
//! the module.
//!
//! `--source ring`: POP what another producer (rtp-feeder tx, or rtp_app rx on the same
//! channel) pushed, send it, RELEASE it.
//!
//! Pacing (`--rate`, generate only) is by schedule, not by sleeping a fixed gap: packet n is
//! due at `n / rate` seconds after the start, so sleep jitter never accumulates into a lower
//! rate. After a stall the backlog is capped at one batch rather than sent as one big burst.

use crate::control::{bounded_retry, Limits, RetryPolicy, StopState};
use crate::net::DatagramSender;
use crate::rtp::RtpGenerator;
use crate::rx::{reserve_now, Reserve};
use crate::stats::Counters;
use anyhow::{Context, Result};
use nix::errno::Errno;
use rtpmgr::{Consumer, Producer, ReadSlot};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Schedule of a constant packet rate.
#[derive(Debug)]
pub struct Pacer {
    rate: u64,
    base: Instant,
    /// Packets accounted since `base`.
    sent: u64,
    max_burst: u64,
}

impl Pacer {
    /// Start a schedule of `rate` packets/s that never allows more than `max_burst` at once.
    pub fn new(rate: u32, max_burst: usize, now: Instant) -> Self {
        Self { rate: u64::from(rate.max(1)), base: now, sent: 0, max_burst: max_burst.max(1) as u64 }
    }

    /// Packets due at `now` (0..=max_burst).
    pub fn due(&mut self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.base).as_nanos();
        // +1: the first packet is due at t = 0.
        let allowed = (elapsed * u128::from(self.rate) / 1_000_000_000) as u64 + 1;
        let due = allowed.saturating_sub(self.sent);
        // A short hiccup (scheduler, page fault) is caught up one batch per loop so the average
        // rate stays exact; after a real stall (more than 100 ms behind: debugger, suspended
        // process) the schedule restarts instead of sending a burst the receiver would drop.
        if due > self.max_burst.max(self.rate / 10) {
            self.base = now;
            self.sent = 0;
        }
        due.min(self.max_burst)
    }

    /// Account `n` packets as handled (sent or dropped).
    pub fn consume(&mut self, n: u64) {
        self.sent += n;
    }

    /// Time from `now` until the next packet is due.
    pub fn until_next(&self, now: Instant) -> Duration {
        let next_ns = (u128::from(self.sent) * 1_000_000_000).div_ceil(u128::from(self.rate));
        let next = self.base + Duration::from_nanos(next_ns.min(u64::MAX as u128) as u64);
        next.saturating_duration_since(now)
    }
}

/// Sleep for `d`, but the last ~100 µs by yielding: thread::sleep overshoots by tens of µs, which
/// at 100k pps and more is a whole packet period.
fn wait(d: Duration) {
    let end = Instant::now() + d;
    if d > Duration::from_micros(200) {
        std::thread::sleep(d - Duration::from_micros(100));
    }
    while Instant::now() < end {
        std::thread::yield_now();
    }
}

/// Send `bufs` completely, retrying partial sends and ENOBUFS/EAGAIN within a bound. Errors a
/// receiver can cause on a connected UDP socket (ECONNREFUSED after an ICMP port unreachable)
/// are counted and the batch is dropped: a sender must not die because nobody listens yet.
/// Returns the datagrams the kernel took.
pub fn send_all<S: DatagramSender + ?Sized>(
    sock: &mut S,
    bufs: &[&[u8]],
    c: &Counters,
    stop: &StopState,
) -> Result<usize> {
    let mut off = 0;
    let r = bounded_retry(RetryPolicy::SEND, stop, || -> Result<Option<()>> {
        match sock.send_batch(&bufs[off..]) {
            Ok(k) => {
                off += k;
                Ok((off >= bufs.len()).then_some(()))
            }
            Err(e) => match e.raw_os_error() {
                Some(libc::ENOBUFS) | Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(None),
                Some(libc::ECONNREFUSED) | Some(libc::EHOSTUNREACH) | Some(libc::ENETUNREACH) => {
                    Counters::add(&c.socket_errors, 1);
                    log::debug!("send: {e}");
                    // The error is consumed by reporting it; the next call may succeed.
                    Ok(None)
                }
                _ => Err(e).context("sendmmsg failed"),
            },
        }
    })?;
    if r.is_err() && off < bufs.len() {
        log::debug!("dropped {} datagrams after bounded send retries", bufs.len() - off);
    }
    Ok(off)
}

/// Settings of the TX worker.
#[derive(Debug, Clone)]
pub struct TxConfig {
    /// Packets per batch.
    pub batch: usize,
    /// `--rate`: always set when generating; optional cap with `--source ring`.
    pub rate: Option<u32>,
    /// `-t` / `-l`.
    pub limits: Limits,
}

/// `--source generate`: generate, push, pop, send, release; paced to `cfg.rate`. `tx` and `rx`
/// are the producer and consumer of one mapping of the channel.
pub fn tx_generate_loop<S: DatagramSender + ?Sized>(
    tx: &mut Producer,
    rx: &mut Consumer,
    sock: &mut S,
    gen: &mut RtpGenerator,
    cfg: &TxConfig,
    c: &Counters,
    stop: &StopState,
) -> Result<()> {
    let batch = cfg.batch.clamp(1, crate::net::BATCH_MAX);
    let slot_payload = tx.ring().layout().slot_payload as usize;
    anyhow::ensure!(
        gen.packet_len() <= slot_payload,
        "a {}-byte RTP packet (--payload {} + 12-byte header) does not fit the ring's {}-byte slots; \
         lower --payload or configure a larger --slot-payload",
        gen.packet_len(),
        gen.packet_len() - crate::rtp::RTP_HEADER_LEN,
        slot_payload
    );
    let started = Instant::now();
    let mut pacer = Pacer::new(cfg.rate.unwrap_or(1000), batch, started);
    // Packets handled (sent or dropped) for -l, so a full ring cannot make -l wait forever.
    let mut handled = 0u64;

    loop {
        // Every turn (at least every 50 ms): a hung worker stops pinging.
        rtpmgr_service::watchdog_tick();
        if stop.should_stop() || cfg.limits.check(stop, started, handled) {
            return Ok(());
        }
        let now = Instant::now();
        let due = pacer.due(now).min(cfg.limits.remaining(handled)) as usize;
        if due == 0 {
            wait(pacer.until_next(now).min(Duration::from_millis(50)));
            continue;
        }

        // RESERVE (bounded), WRITE, PUSH.
        let mut slots = match bounded_retry(RetryPolicy::RING_FULL, stop, || reserve_now(tx, due))? {
            Ok(Reserve::Slots(v)) => v,
            Ok(Reserve::Stopped) => {
                log::warn!("channel was stopped; starting it again");
                tx.ring().channel().start().context("cannot start the channel")?;
                continue;
            }
            Err(_) => {
                // Ring full after the bounded retries: count the packets as not sent and move
                // on; the sequence numbers stay consecutive because nothing was generated.
                Counters::add(&c.ring_full, due as u64);
                pacer.consume(due as u64);
                handled += due as u64;
                continue;
            }
        };
        let n = slots.len();
        for s in &mut slots {
            let len = gen.write_next(s.buf_mut())?;
            s.set_len(len)?;
            s.set_arrival_ns(rtpmgr::monotonic_ns());
        }
        let pushed = match tx.push_batch(slots) {
            Ok(k) => k,
            Err(e) if e.errno() == Errno::EPIPE => 0,
            Err(e) => return Err(e).context("push to the ring failed"),
        };
        Counters::add(&c.pushed, pushed as u64);

        // POP what is READY (ours, in FIFO order) and send it from slot memory.
        let popped = pop_now(rx, n.max(1))?;
        send_popped(rx, sock, popped, c, stop)?;
        pacer.consume(n as u64);
        handled += n as u64;
    }
}

/// One non-blocking POP of up to `n` slots; none when the ring is empty.
fn pop_now(rx: &mut Consumer, n: usize) -> Result<Vec<ReadSlot>> {
    match rx.pop_batch(n) {
        Ok(v) => Ok(v),
        Err(e) if e.errno() == Errno::EAGAIN => Ok(Vec::new()),
        Err(e) => Err(e).context("pop from the ring failed"),
    }
}

/// Send popped slots from slot memory, count them and release them.
fn send_popped<S: DatagramSender + ?Sized>(
    rx: &Consumer,
    sock: &mut S,
    popped: Vec<ReadSlot>,
    c: &Counters,
    stop: &StopState,
) -> Result<usize> {
    if popped.is_empty() {
        return Ok(0);
    }
    Counters::add(&c.consumed, popped.len() as u64);
    let bufs: Vec<&[u8]> = popped.iter().map(|s| s.data()).collect();
    let sent = send_all(sock, &bufs, c, stop)?;
    Counters::add(&c.packets, sent as u64);
    Counters::add(&c.bytes, bufs[..sent].iter().map(|b| b.len() as u64).sum());
    drop(bufs);
    // Dropping the guards queues their release; released now, as one batch.
    drop(popped);
    rx.flush().context("release to the ring failed")?;
    Ok(sent)
}

/// `--source ring`: pop, send, release until stopped or a limit is reached.
pub fn tx_ring_loop<S: DatagramSender + ?Sized>(
    rx: &mut Consumer,
    sock: &mut S,
    cfg: &TxConfig,
    c: &Counters,
    stop: &StopState,
) -> Result<()> {
    let batch = cfg.batch.clamp(1, crate::net::BATCH_MAX);
    let started = Instant::now();
    let mut pacer = cfg.rate.map(|r| Pacer::new(r, batch, started));
    loop {
        // Every turn (at least every POLL_SLICE): a hung worker stops pinging.
        rtpmgr_service::watchdog_tick();
        let sent = c.packets.load(Ordering::Relaxed);
        if stop.should_stop() || cfg.limits.check(stop, started, sent) {
            return Ok(());
        }
        let mut want = (cfg.limits.remaining(sent).min(batch as u64)) as usize;
        if let Some(p) = pacer.as_mut() {
            let now = Instant::now();
            want = want.min(p.due(now) as usize);
            if want == 0 {
                wait(p.until_next(now).min(Duration::from_millis(50)));
                continue;
            }
        }
        let popped = rx.pop_batch_wait(want, Some(crate::rx::POLL_SLICE)).context("pop from the ring failed")?;
        let got = popped.len();
        send_popped(rx, sock, popped, c, stop)?;
        if let Some(p) = pacer.as_mut() {
            p.consume(got as u64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacer_releases_rate_times_elapsed() {
        let t0 = Instant::now();
        let mut p = Pacer::new(10_000, 64, t0);
        assert_eq!(p.due(t0), 1);
        p.consume(1);
        // 1 ms at 10 kpps: packets 0..=10 are due.
        assert_eq!(p.due(t0 + Duration::from_millis(1)), 10);
        p.consume(10);
        assert_eq!(p.due(t0 + Duration::from_millis(1)), 0);
        assert_eq!(p.until_next(t0 + Duration::from_millis(1)), Duration::from_micros(100));
    }

    #[test]
    fn pacer_caps_backlog_after_a_stall() {
        let t0 = Instant::now();
        let mut p = Pacer::new(1000, 8, t0);
        let d = p.due(t0);
        p.consume(d);
        // 5 ms behind: caught up in bursts of at most 8, schedule kept.
        let soon = t0 + Duration::from_millis(20);
        assert_eq!(p.due(soon), 8);
        p.consume(8);
        assert_eq!(p.due(soon), 8);
        p.consume(8);
        assert_eq!(p.due(soon), 4);
        p.consume(4);
        let later = t0 + Duration::from_secs(10);
        assert_eq!(p.due(later), 8);
        p.consume(8);
        // The schedule restarted at `later`: nothing more is due right then.
        assert_eq!(p.due(later), 0);
    }
}

//! Criterion micro-benchmarks (host): one batch through the shm ring backend (reserve, push, pop,
//! release of 16-byte slot descriptors) against the same batch through `rtrb`, single-threaded so
//! that only the per-operation cost is measured (the threaded comparison is `rtpmgr-bench rtrb`).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rtpmgr::{Backend, Channel, SlotOp, SlotRef};

fn shm_vs_rtrb(c: &mut Criterion) {
    let path = std::env::temp_dir().join(format!("rtpmgr-criterion-{}", std::process::id()));
    let ch = Channel::open(&Backend::shm_at(&path)).expect("create the shm ring");
    ch.start().expect("start the shm ring");
    // SAFETY: no guard of `ch` exists; every slot moved here is moved through `raw` alone.
    let raw = unsafe { ch.raw() };
    let (mut tx, mut rx) = rtrb::RingBuffer::<SlotRef>::new(1024);
    let mut g = c.benchmark_group("handoff");
    for batch in [1usize, 32] {
        g.throughput(Throughput::Elements(batch as u64));
        let mut refs = vec![SlotRef::default(); batch];
        g.bench_with_input(BenchmarkId::new("shm-ring", batch), &batch, |b, &n| {
            b.iter(|| {
                let k = raw.batch(SlotOp::Reserve, &mut refs[..n]).expect("reserve");
                for r in &mut refs[..k] {
                    r.len = 16;
                }
                raw.batch(SlotOp::Push, &mut refs[..k]).expect("push");
                let k = raw.batch(SlotOp::Pop, &mut refs[..n]).expect("pop");
                raw.batch(SlotOp::Release, &mut refs[..k]).expect("release");
                k
            })
        });
        g.bench_with_input(BenchmarkId::new("rtrb", batch), &batch, |b, &n| {
            b.iter(|| {
                let chunk = tx.write_chunk_uninit(n).expect("room");
                chunk.fill_from_iter((0..n as u32).map(|i| SlotRef::new(i, 16, 0)));
                let chunk = rx.read_chunk(n).expect("ready");
                let k = chunk.into_iter().map(|d| d.len as usize).sum::<usize>();
                std::hint::black_box(k)
            })
        });
    }
    g.finish();
    drop(ch);
    let _ = std::fs::remove_file(&path);
}

criterion_group!(benches, shm_vs_rtrb);
criterion_main!(benches);

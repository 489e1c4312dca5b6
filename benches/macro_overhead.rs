//! The cost of calling an `#[audited]` fn against the same fn recording its event by hand
//! with the runtime API, measured in the same run. The target is a ratio within 1.10.
//!
//! Both record to a real `AuditLayer` whose writer chains every event and then discards it
//! (a store that keeps nothing), so the numbers are the caller's cost, not the disk's. The
//! queue is drained (flushed) between timed chunks of 2000 calls, outside the timing, so that
//! the caller never waits for the writer. The ratio printed at the end is the median of the
//! ratios of back-to-back chunks (alternating which variant goes first), which cancels most of
//! the noise of a shared machine.
//!
//! Run with `cargo bench --bench macro_overhead`; the last lines print the ratio.

use std::hint::black_box;
use std::time::{Duration, Instant};

use audit::store::{ChainBatch, ChainHead, Seal, Store};
use audit::{AuditEvent, AuditLayer, Category, StoreError, WriterGuard, audited};
use criterion::Criterion;
use tracing_subscriber::prelude::*;

/// Chains and forgets: the writer does all its work but keeps no bytes.
struct NullStore;

impl Store for NullStore {
    fn heads(&mut self) -> Result<Vec<ChainHead>, StoreError> {
        Ok(Vec::new())
    }

    fn append(&mut self, batch: &mut ChainBatch, head: &mut ChainHead) -> Result<(), StoreError> {
        black_box(batch.chain_onto(head));
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        Ok(())
    }

    fn seal(&mut self, _heads: &[Seal]) -> Result<(), StoreError> {
        Ok(())
    }
}

/// The error of the benchmarked fns.
#[derive(Debug)]
pub struct BillingError;

impl std::fmt::Display for BillingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("declined")
    }
}

#[inline(never)]
fn body(amount: u64) -> Result<u64, BillingError> {
    if amount == u64::MAX {
        Err(BillingError)
    } else {
        Ok(black_box(amount) + 1)
    }
}

#[audited(action = "billing.update", resource = "customer", id = customer_id)]
#[inline(never)]
fn update_audited(customer_id: &str, amount: u64) -> Result<u64, BillingError> {
    body(amount)
}

#[inline(never)]
fn update_by_hand(customer_id: &str, amount: u64) -> Result<u64, BillingError> {
    let result = body(amount);
    let event = AuditEvent::new("billing.update", Category::Mutation).resource("customer", customer_id);
    let event = match &result {
        Ok(_) => event,
        Err(e) => event.failure(e.to_string()),
    };
    let _ = event.emit();
    result
}

type Variant = fn(&str, u64) -> Result<u64, BillingError>;

const CHUNK: u64 = 2_000;

/// Times `iters` calls in chunks, flushing between chunks outside the timing.
fn timed(guard: &WriterGuard, f: Variant, iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(CHUNK);
        let start = Instant::now();
        for i in 0..n {
            let _ = black_box(f(black_box("cust_abc123"), i));
        }
        total += start.elapsed();
        guard.flush().expect("flush");
        left -= n;
    }
    total
}

/// Back-to-back chunks of both variants, alternating which goes first: the median ns per
/// call of each, and the median of the per-round ratios audited / by hand.
fn interleaved(guard: &WriterGuard, rounds: usize) -> (f64, f64, f64) {
    let mut audited = Vec::with_capacity(rounds);
    let mut by_hand = Vec::with_capacity(rounds);
    let mut ratios = Vec::with_capacity(rounds);
    let per_call = |f: Variant| timed(guard, f, CHUNK).as_nanos() as f64 / CHUNK as f64;
    for round in 0..rounds {
        let (a, h) = if round % 2 == 0 {
            let a = per_call(update_audited);
            (a, per_call(update_by_hand))
        } else {
            let h = per_call(update_by_hand);
            (per_call(update_audited), h)
        };
        audited.push(a);
        by_hand.push(h);
        ratios.push(a / h);
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    (median(audited), median(by_hand), median(ratios))
}

fn main() {
    let (layer, guard) = AuditLayer::builder(NullStore)
        .capacity(2 * CHUNK as usize)
        .build()
        .expect("writer");
    let _default = tracing_subscriber::registry().with(layer).set_default();
    assert!(audit::sink_is_healthy());

    let mut criterion = Criterion::default().configure_from_args();
    {
        let mut group = criterion.benchmark_group("macro_overhead");
        group.bench_function("audited", |b| {
            b.iter_custom(|iters| timed(&guard, update_audited, iters))
        });
        group.bench_function("by_hand", |b| {
            b.iter_custom(|iters| timed(&guard, update_by_hand, iters))
        });
        group.finish();
    }
    criterion.final_summary();

    let (audited, by_hand, ratio) = interleaved(&guard, 501);
    println!("macro_overhead interleaved medians: audited {audited:.1} ns/call, by hand {by_hand:.1} ns/call");
    println!("macro_overhead ratio audited/by_hand = {ratio:.3} (median of 501 back-to-back rounds; target <= 1.10)");
    drop(_default);
    guard.shutdown().expect("shutdown");
}

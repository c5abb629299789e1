//! Heap allocations per request, in process, for the scenarios of `benches/layers.rs`: bare axum,
//! each crosscut layer alone, the preset and the full stack.
//!
//! Run with
//!
//! ```not_rust
//! cargo bench --bench allocs                 # every scenario, a few seconds
//! cargo bench --bench allocs -- metrics      # scenarios whose name contains `metrics`
//! ```
//!
//! Nanoseconds move with a shared machine by more than a layer costs; the number of allocations
//! does not. Each row is measured over 1,000 requests after 1,000 warm-up ones (the rate limiter's
//! key, the metrics' label set and the like are created by the first request) and counted by
//! `stats_alloc` around the system allocator: allocations and reallocations per request, the bytes
//! they ask for, and the difference in allocations from `bare` answering the same request. This
//! binary has the counting allocator; `benches/layers.rs`, which measures time, does not.

mod common;

use std::alloc::System;

use common::{batch, log_to_sink, runtime, scenarios, Ask, Head};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Requests measured per scenario (and as many warm-up requests before them).
const REQUESTS: u32 = 1_000;

fn main() {
    let _guard = log_to_sink();
    let rt = runtime();
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let head = Head::new();
    let scenarios = rt.block_on(async { scenarios() });

    println!("allocations per request (mean of {REQUESTS} after {REQUESTS} warm-up requests)");
    println!(
        "{:<22} {:>8} {:>9} {:>10}",
        "scenario", "allocs", "+ bare", "bytes"
    );
    // Each row against bare answering the same request.
    let mut bare: Vec<(Ask, f64)> = Vec::new();
    let measure = |app: &axum::Router, ask: Ask| {
        batch(&rt, app, &head, ask, REQUESTS);
        // The batch writer's thread allocates too; it formats nothing (events are formatted on
        // this thread), so its share is a handful of buffer swaps over the whole run.
        let region = Region::new(GLOBAL);
        batch(&rt, app, &head, ask, REQUESTS);
        let stats = region.change();
        let per = |n: usize| n as f64 / f64::from(REQUESTS);
        (
            per(stats.allocations + stats.reallocations),
            per(stats.bytes_allocated + stats.bytes_reallocated.max(0) as usize),
        )
    };
    let (bare_name, bare_app, _) = &scenarios[0];
    assert_eq!(*bare_name, "bare");
    for (name, app, ask) in &scenarios {
        let wanted = filter
            .as_deref()
            .is_none_or(|f| f.split('|').any(|p| name.contains(p)));
        if !wanted {
            continue;
        }
        let base = match bare.iter().find(|(a, _)| a == ask) {
            Some((_, base)) => *base,
            None => {
                let (base, _) = measure(bare_app, *ask);
                bare.push((*ask, base));
                base
            }
        };
        let (allocs, bytes) = measure(app, *ask);
        println!(
            "{name:<22} {allocs:>8.1} {:>+9.1} {bytes:>10.0}",
            allocs - base
        );
    }
}

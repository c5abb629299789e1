//! Per-layer cost, in process: an axum router driven with `tower::ServiceExt::oneshot`, bare and
//! with each crosscut layer alone, then the preset and the full stack in the demo's order.
//!
//! Run with
//!
//! ```not_rust
//! cargo bench --bench layers                 # everything, about two minutes
//! cargo bench --bench layers -- rate_limit   # one scenario (criterion filter)
//! ```
//!
//! Every scenario answers the same `GET /api/v1/users` (a 111-byte JSON body like the demo's) to
//! the same request: `User-Agent`, `Origin`, `Authorization: Bearer <HS256 token>` and the peer
//! address as axum's `ConnectInfo`; only `compression_gzip` adds `Accept-Encoding: gzip, br`, and
//! `full_stack_wrk` sends the request the load bench's wrk sends, the path alone (the row that
//! compares with `benches/load.rs`: no CORS headers come back). Each
//! iteration builds the request, runs it through the router and reads the response body to its
//! end (compression and the tracking layer do their work while the body is read), so
//! `layer - bare` is what the layer adds to one request. The access log runs with a fmt
//! subscriber enabled at INFO writing to `std::io::sink()` through the demo's plain-text formatter
//! and batched writer, as the demo logs to a file.
//!
//! At the end the bench prints each scenario's mean and its difference from `bare`, read back from
//! criterion's `estimates.json` files of this run. Then a paired pass measures the same
//! differences with the machine's drift paired out: for each layer, `LAYERS_PAIRED_ROUNDS`
//! rounds (default 41; 0 skips the pass) each time a batch of 2,000 requests through `bare` and
//! a batch through the layer back to back (alternating which goes first), and the table gives the
//! median of the per-round differences with its interquartile range, bare's median time, the
//! median ratio layer / bare, and that ratio applied to the fastest bare time of the run ("at
//! full speed": a slow phase of the machine scales bare and layer alike, so this is the figure to
//! compare between rows and runs; a filtered run of a few rows may fall wholly in one slow phase,
//! and then only the ratios compare); "over no-op" is the same figure less the `noop_layer`
//! row's, what the layer itself does beyond the box every `Router::layer` call adds (the full
//! stack, composed in one such call as the demo composes it, pays that box once). Criterion
//! measures each scenario for a few seconds, one after the other, and on a shared machine the
//! baseline itself moves by more than a layer costs between them; two batches a few
//! milliseconds apart move together (a machine slower as a whole still scales both, so compare
//! runs row by row).
//! `LAYERS_CRITERION=0` skips criterion's pass and runs only the paired one.
//!
//! Every router is built the way `axum::serve` builds it (`with_state`, so each handler becomes a
//! route once) and every request carries header values that share one buffer, as hyper's share
//! the connection's read buffer; `benches/allocs.rs` counts allocations per request for the same
//! scenarios.

mod common;

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use common::{batch, call, log_to_sink, request, runtime, scenarios, Ask, Head};
use criterion::Criterion;

const GROUP: &str = "layers";
fn bench(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    let head = Head::new();

    // Built inside the runtime: some layers start background tasks on first use.
    let scenarios = rt.block_on(async { scenarios() });
    let mut group = c.benchmark_group(GROUP);
    for (name, app, ask) in scenarios {
        // Fail loudly, before measuring, if a scenario does not answer 200.
        rt.block_on(call(app.clone(), request(&head, ask)));
        group.bench_function(name, |b| {
            b.to_async(rt)
                .iter(|| call(app.clone(), request(&head, ask)));
        });
    }
    group.finish();
}

/// Where criterion writes its results: `CRITERION_HOME`, else `<target>/criterion`.
fn criterion_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("criterion")
}

/// Mean time per iteration in ns of `name`, if criterion measured it during this run.
fn mean_ns(name: &str, since: SystemTime) -> Option<f64> {
    let path = criterion_dir()
        .join(GROUP)
        .join(name)
        .join("new")
        .join("estimates.json");
    let fresh = std::fs::metadata(&path).ok()?.modified().ok()? >= since;
    if !fresh {
        return None;
    }
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
    json["mean"]["point_estimate"].as_f64()
}

fn summary(names: &[&str], since: SystemTime) {
    let Some(bare) = mean_ns("bare", since) else {
        return;
    };
    println!("\nper-layer cost (mean per request; layer - bare)");
    println!("{:<22} {:>10} {:>10}", "scenario", "mean ns", "+ns");
    for name in names {
        if let Some(ns) = mean_ns(name, since) {
            println!("{name:<22} {ns:>10.0} {:>+10.0}", ns - bare);
        }
    }
}

/// The `q` quantile (0 to 1) of `sorted`, nearest rank.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i]
}

/// Each layer against `bare` in interleaved batches; prints the median difference per request.
fn paired(rt: &tokio::runtime::Runtime, head: &Head, filter: Option<&str>, rounds: usize) {
    const BATCH: u32 = 2_000;
    let scenarios = rt.block_on(async { scenarios() });
    let (bare_name, bare, _) = &scenarios[0];
    assert_eq!(*bare_name, "bare");
    println!(
        "\npaired per-layer cost: {rounds} rounds of {BATCH} requests through bare and through the \
         layer back to back; + ns per request (median, quartiles), bare's median time, the median \
         ratio layer / bare, and that ratio's cost at the run's fastest bare time"
    );
    let mut rows = Vec::new();
    for (name, app, ask) in &scenarios[1..] {
        // Criterion reads the filter as a regular expression; alternatives with `|` are enough here.
        if filter.is_some_and(|f| !f.split('|').any(|part| name.contains(part))) {
            continue;
        }
        // Warm both up so that the first round does not pay for cold caches.
        batch(rt, bare, head, *ask, BATCH);
        batch(rt, app, head, *ask, BATCH);
        let (mut diffs, mut bares, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..rounds {
            let (b, l) = if round % 2 == 0 {
                let b = batch(rt, bare, head, *ask, BATCH);
                (b, batch(rt, app, head, *ask, BATCH))
            } else {
                let l = batch(rt, app, head, *ask, BATCH);
                (batch(rt, bare, head, *ask, BATCH), l)
            };
            diffs.push(l - b);
            bares.push(b);
            ratios.push(l / b);
        }
        for v in [&mut diffs, &mut bares, &mut ratios] {
            v.sort_by(f64::total_cmp);
        }
        let row = [0.5, 0.25, 0.75].map(|q| quantile(&diffs, q));
        rows.push((
            *name,
            *ask,
            row,
            quantile(&bares, 0.5),
            quantile(&ratios, 0.5),
        ));
    }
    // The machine's speed changes by up to 1.7 times between phases of a run and scales bare and
    // layer alike, so a row's nanoseconds depend on the phase it fell in; its ratio does not.
    // `at full speed` is the ratio applied to the fastest phase's bare time in this run, for the
    // same request (bare answers wrk's bare request faster than a browser's). A request only one
    // row sends (`full_stack_wrk`) has only that row's bare time: read its ratio first.
    let fastest = |ask: Ask| {
        rows.iter()
            .filter(|r| r.1 == ask)
            .map(|r| r.3)
            .fold(f64::INFINITY, f64::min)
    };
    let at_full_speed = |ask: Ask, ratio: f64| (ratio - 1.0) * fastest(ask);
    // What any `Router::layer` costs before a layer does anything (axum boxes the route once
    // more per call): the `noop_layer` row. `over no-op` is each row's cost beyond it, the layer's
    // own work, which a stack applied in one `Router::layer` pays without paying the box again.
    let noop = rows
        .iter()
        .find(|r| r.0 == "noop_layer")
        .map(|r| at_full_speed(r.1, r.4));
    println!(
        "{:<22} {:>8} {:>8} {:>8} {:>8} {:>7} {:>14} {:>10}",
        "scenario", "median", "p25", "p75", "bare ns", "ratio", "at full speed", "over no-op"
    );
    for (name, ask, [median, p25, p75], bare_ns, ratio) in &rows {
        let cost = at_full_speed(*ask, *ratio);
        let own = match noop {
            Some(noop) if *name != "noop_layer" => format!("{:+.0}", cost - noop),
            _ => String::new(),
        };
        println!(
            "{name:<22} {median:>+8.0} {p25:>+8.0} {p75:>+8.0} {bare_ns:>8.0} {ratio:>7.3} {cost:>+14.0} {own:>10}"
        );
    }
}

fn main() {
    let _guard = log_to_sink();
    let rt = runtime();
    let since = SystemTime::now();
    let mut c = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    // `LAYERS_CRITERION=0` skips criterion's pass and goes straight to the paired one.
    if std::env::var("LAYERS_CRITERION").as_deref() != Ok("0") {
        bench(&mut c, &rt);
        c.final_summary();
    }

    let names: Vec<&str> = rt
        .block_on(async { scenarios() })
        .into_iter()
        .map(|(n, _, _)| n)
        .collect();
    summary(&names, since);

    let rounds: usize = std::env::var("LAYERS_PAIRED_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(41);
    // The positional argument criterion reads as its filter (`cargo bench --bench layers -- cors`).
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let profiling = std::env::args().any(|a| a == "--profile-time" || a == "--list");
    if rounds > 0 && !profiling {
        let head = Head::new();
        paired(&rt, &head, filter.as_deref(), rounds);
    }
}

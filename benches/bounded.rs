//! `run_bounded` against the alternatives a user would pick instead, in one process.
//!
//! Contenders, for 100,000 lazily made futures per run at limits 1, 16, 256 and 4,096:
//!
//! - floor: a hand-written loop that makes each future and polls it to completion with a noop
//!   waker, one at a time: the least any adapter could cost;
//! - `abstractions::BoundedStreamExt::run_bounded`;
//! - `futures_buffered::BufferedStreamExt::buffered_unordered`;
//! - `futures::StreamExt::buffer_unordered` (futures-util);
//! - tokio `JoinSet` with a `Semaphore` (spawned tasks, on a current-thread runtime).
//!
//! Everything but `JoinSet` runs on `futures::executor::block_on`. Two kinds of future: ready
//! at once, and one that wakes its own waker and is pending once before it finishes.
//!
//! `cargo bench --bench bounded` prints Markdown tables of the median time per future, the
//! allocations and bytes allocated per future, and the ratio of this crate's time to
//! futures-buffered's. `BENCH_QUICK=1` runs fewer repetitions. Without `--bench` (as
//! `cargo test --all-targets` runs it) it runs a smoke version on 1,000 futures.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use abstractions::BoundedStreamExt;
use common::{median, ready, yield_once};
use futures::executor::block_on;
use futures::stream::{self, Stream, StreamExt};
use futures_buffered::BufferedStreamExt;
use tokio::runtime::Runtime;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

// ---------------------------------------------------------------------------------------------
// A global allocator that counts, while `COUNTING` is on, the calls to `alloc`/`realloc` and
// the bytes they ask for (a `realloc` counts as one allocation of its new size).

struct CountingAlloc;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

fn count(size: usize) {
    if COUNTING.load(Ordering::Relaxed) {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(size as u64, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded unchanged to `System`; the wrapper only counts.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which `System` shares.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout`, through this wrapper.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Runs `f`, returning its result and the allocations and bytes it asked for.
fn counted<T>(f: impl FnOnce() -> T) -> (T, u64, u64) {
    let (allocs, bytes) = (
        ALLOCS.load(Ordering::Relaxed),
        BYTES.load(Ordering::Relaxed),
    );
    COUNTING.store(true, Ordering::SeqCst);
    let out = f();
    COUNTING.store(false, Ordering::SeqCst);
    (
        out,
        ALLOCS.load(Ordering::Relaxed) - allocs,
        BYTES.load(Ordering::Relaxed) - bytes,
    )
}

// ---------------------------------------------------------------------------------------------
// The futures.

// ---------------------------------------------------------------------------------------------
// The contenders. Each makes `n` futures lazily with `make`, runs them, and sums the outputs.

#[derive(Clone, Copy, PartialEq)]
enum Contender {
    Floor,
    Abstractions,
    FuturesBuffered,
    FuturesUtil,
    JoinSet,
}

const CONTENDERS: [Contender; 5] = [
    Contender::Floor,
    Contender::Abstractions,
    Contender::FuturesBuffered,
    Contender::FuturesUtil,
    Contender::JoinSet,
];

impl Contender {
    fn name(self) -> &'static str {
        match self {
            Contender::Floor => "floor",
            Contender::Abstractions => "abstractions",
            Contender::FuturesBuffered => "futures-buffered",
            Contender::FuturesUtil => "futures-util",
            Contender::JoinSet => "JoinSet*",
        }
    }
}

/// The same consumer for every stream adapter: sum the outputs.
async fn sum<S: Stream<Item = u64>>(outputs: S) -> u64 {
    let mut outputs = pin!(outputs);
    let mut sum = 0;
    while let Some(output) = outputs.next().await {
        sum += black_box(output);
    }
    sum
}

fn source<F>(n: u64, make: fn(u64) -> F) -> impl Stream<Item = F> {
    stream::iter(0..black_box(n)).map(make)
}

/// Makes each future and polls it until it is ready, with a noop waker: no adapter, no
/// executor, no concurrency.
fn floor<F: Future<Output = u64>>(n: u64, make: fn(u64) -> F) -> u64 {
    let mut cx = Context::from_waker(Waker::noop());
    let mut sum = 0;
    for i in 0..black_box(n) {
        let mut future = pin!(make(i));
        let output = loop {
            if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
                break output;
            }
        };
        sum += black_box(output);
    }
    sum
}

/// Spawns each future as a task once a permit of a `Semaphore` of `limit` permits is had,
/// collecting finished tasks as it goes.
fn join_set<F>(rt: &Runtime, n: u64, limit: usize, make: fn(u64) -> F) -> u64
where
    F: Future<Output = u64> + Send + 'static,
{
    rt.block_on(async {
        let semaphore = Arc::new(Semaphore::new(limit));
        let mut tasks = JoinSet::new();
        let mut futures = pin!(source(n, make));
        let mut sum = 0;
        while let Some(future) = futures.next().await {
            let permit = Arc::clone(&semaphore)
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            tasks.spawn(async move {
                let output = future.await;
                drop(permit);
                output
            });
            while let Some(output) = tasks.try_join_next() {
                sum += black_box(output.expect("no task panics"));
            }
        }
        while let Some(output) = tasks.join_next().await {
            sum += black_box(output.expect("no task panics"));
        }
        sum
    })
}

fn run<F>(contender: Contender, rt: &Runtime, n: u64, limit: usize, make: fn(u64) -> F) -> u64
where
    F: Future<Output = u64> + Send + 'static,
{
    match contender {
        Contender::Floor => floor(n, make),
        Contender::Abstractions => block_on(sum(source(n, make).run_bounded(limit))),
        Contender::FuturesBuffered => block_on(sum(source(n, make).buffered_unordered(limit))),
        Contender::FuturesUtil => {
            block_on(sum(StreamExt::buffer_unordered(source(n, make), limit)))
        }
        Contender::JoinSet => join_set(rt, n, limit, make),
    }
}

// ---------------------------------------------------------------------------------------------
// The measurements.

#[derive(Clone, Copy)]
enum Kind {
    Ready,
    YieldOnce,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Ready => "ready",
            Kind::YieldOnce => "yield once",
        }
    }

    fn run(self, contender: Contender, rt: &Runtime, n: u64, limit: usize) -> u64 {
        match self {
            Kind::Ready => run(contender, rt, n, limit, ready),
            Kind::YieldOnce => run(contender, rt, n, limit, yield_once),
        }
    }
}

struct Settings {
    n: u64,
    limits: &'static [usize],
    repetitions: usize,
    warm_up: bool,
}

/// What was measured for one contender in one cell.
struct Measure {
    median_ns_per_future: f64,
    allocs_per_future: f64,
    bytes_per_future: f64,
}

/// What was measured in one cell.
struct Cell {
    /// One per contender, in the order of [`CONTENDERS`].
    contenders: Vec<Measure>,
    /// The median over the rounds of abstractions' time over futures-buffered's in the same
    /// round: a pair measured close together, so less hit by a load that drifts.
    ratio_abstractions_buffered: f64,
}

/// Runs one run of `kind` by `contender` and checks its sum.
fn checked_run(kind: Kind, contender: Contender, rt: &Runtime, n: u64, limit: usize) {
    let sum = kind.run(contender, rt, n, limit);
    assert_eq!(
        sum,
        n * (n - 1) / 2,
        "{} got a wrong sum for {} futures at limit {limit}",
        contender.name(),
        kind.name(),
    );
}

/// Measures every contender on one cell. Repetitions go round the contenders in turn, so that
/// a noisy moment on a shared machine hits them all alike.
fn measure_cell(settings: &Settings, rt: &Runtime, kind: Kind, limit: usize) -> Cell {
    let n = settings.n;
    let per_future = |x: u64| x as f64 / n as f64;
    let mut counts = Vec::new();
    for contender in CONTENDERS {
        if settings.warm_up {
            checked_run(kind, contender, rt, n, limit);
        }
        let ((), allocs, bytes) = counted(|| checked_run(kind, contender, rt, n, limit));
        counts.push((per_future(allocs), per_future(bytes)));
    }
    let mut times = vec![Vec::new(); CONTENDERS.len()];
    for _ in 0..settings.repetitions {
        for (c, contender) in CONTENDERS.into_iter().enumerate() {
            let start = Instant::now();
            checked_run(kind, contender, rt, n, limit);
            times[c].push(start.elapsed().as_nanos() as f64 / n as f64);
        }
    }
    let (ab, fb) = (
        index(Contender::Abstractions),
        index(Contender::FuturesBuffered),
    );
    let ratios = times[ab].iter().zip(&times[fb]).map(|(a, b)| a / b);
    Cell {
        ratio_abstractions_buffered: median(ratios.collect()),
        contenders: times
            .into_iter()
            .zip(counts)
            .map(|(times, (allocs, bytes))| Measure {
                median_ns_per_future: median(times),
                allocs_per_future: allocs,
                bytes_per_future: bytes,
            })
            .collect(),
    }
}

fn index(contender: Contender) -> usize {
    CONTENDERS
        .iter()
        .position(|&c| c == contender)
        .expect("every contender is listed")
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this binary without it.
    let bench = std::env::args().any(|arg| arg == "--bench");
    let quick = std::env::var_os("BENCH_QUICK").is_some_and(|v| v != "0" && !v.is_empty());
    let settings = if !bench {
        Settings {
            n: 1_000,
            limits: &[1, 16, 256, 4_096],
            repetitions: 1,
            warm_up: false,
        }
    } else {
        Settings {
            n: 100_000,
            limits: &[1, 16, 256, 4_096],
            repetitions: if quick { 3 } else { 21 },
            warm_up: true,
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime");

    let started = Instant::now();
    let mut rows = Vec::new();
    for kind in [Kind::Ready, Kind::YieldOnce] {
        for &limit in settings.limits {
            rows.push((kind, limit, measure_cell(&settings, &rt, kind, limit)));
        }
    }
    let elapsed = started.elapsed();

    if !bench {
        println!(
            "bounded bench smoke run: {} futures per run, every contender and cell, sums checked, in {:.0?}",
            settings.n, elapsed
        );
        return;
    }

    let [fl, ab, fb, fu, js] = CONTENDERS.map(index);
    println!(
        "{} futures per run; time is the median of {} runs after a warm-up{}; 2 shared cores, expect noise of 10% or more.",
        settings.n,
        settings.repetitions,
        if quick { " (BENCH_QUICK)" } else { "" },
    );
    println!(
        "floor, abstractions, futures-buffered and futures-util run on `futures::executor::block_on`; \
         *JoinSet runs spawned tasks, with a Semaphore, on a tokio current-thread runtime: a different executor."
    );
    println!();
    println!("Nanoseconds per future (lower is better):");
    println!();
    println!(
        "| kind | limit | floor | abstractions | futures-buffered | futures-util | JoinSet* | abstractions / futures-buffered** |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (kind, limit, cell) in &rows {
        let ns = |c: usize| cell.contenders[c].median_ns_per_future;
        println!(
            "| {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.2} |",
            kind.name(),
            limit,
            ns(fl),
            ns(ab),
            ns(fb),
            ns(fu),
            ns(js),
            cell.ratio_abstractions_buffered,
        );
    }
    println!();
    println!(
        "**median over the rounds of the ratio of the two times in the same round (the contenders take turns in each round)."
    );
    println!();
    println!(
        "Allocations / bytes allocated per future (one counted run; a realloc counts as one allocation of its new size):"
    );
    println!();
    println!(
        "| kind | limit | floor | abstractions | futures-buffered | futures-util | JoinSet* |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (kind, limit, cell) in &rows {
        let cell = |c: usize| {
            let m = &cell.contenders[c];
            format!("{:.3} / {:.1}", m.allocs_per_future, m.bytes_per_future)
        };
        println!(
            "| {} | {} | {} | {} | {} | {} | {} |",
            kind.name(),
            limit,
            cell(fl),
            cell(ab),
            cell(fb),
            cell(fu),
            cell(js),
        );
    }
    println!();
    println!("(measured in {:.1?})", elapsed);
}

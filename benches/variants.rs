//! The variants of `run_bounded` against their counterparts, in one process.
//!
//! For 100,000 lazily made futures per run, at limits 1, 16 and 256, each group on
//! `futures::executor::block_on`:
//!
//! - ordered: `abstractions::run_bounded_ordered`, `futures::StreamExt::buffered` (futures-util)
//!   and `futures_buffered::BufferedStreamExt::buffered_ordered`;
//! - fallible (every future returns `Ok`): `abstractions::try_run_bounded`,
//!   `futures::TryStreamExt::try_buffer_unordered` and
//!   `futures_buffered::BufferedTryStreamExt::try_buffered_unordered`;
//! - the `for_each` shape: `abstractions::for_each_bounded` with a quick body, against the
//!   `while let` loop over `run_bounded` and over futures-buffered's `buffered_unordered`.
//!
//! Two kinds of future: ready at once, and one that wakes its own waker and is pending once.
//! `cargo bench --bench variants` prints a Markdown table of the median nanoseconds per future
//! and the median ratio of abstractions' time to futures-buffered's in the same round.
//! `BENCH_QUICK=1` runs fewer rounds; `BENCH_GROUP=ordered` (or `fallible`, `for_each`)
//! measures one group. Without `--bench` (as `cargo test --all-targets` runs
//! it) it runs a smoke version on 1,000 futures.

mod common;

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::time::Instant;

use abstractions::BoundedStreamExt;
use common::{median, ready, yield_once};
use futures::executor::block_on;
use futures::stream::{self, Stream, StreamExt, TryStreamExt};
use futures_buffered::{BufferedStreamExt, BufferedTryStreamExt};

fn source<F>(n: u64, make: fn(u64) -> F) -> impl Stream<Item = F> {
    stream::iter(0..black_box(n)).map(make)
}

fn try_source<F: Future<Output = u64>>(
    n: u64,
    make: fn(u64) -> F,
) -> impl Stream<Item = impl Future<Output = Result<u64, ()>>> {
    stream::iter(0..black_box(n)).map(move |i| {
        let future = make(i);
        async move { Ok(future.await) }
    })
}

async fn sum<S: Stream<Item = u64>>(outputs: S) -> u64 {
    let mut outputs = pin!(outputs);
    let mut sum = 0;
    while let Some(output) = outputs.next().await {
        sum += black_box(output);
    }
    sum
}

/// Sums the outputs and checks they came in source order.
async fn sum_in_order<S: Stream<Item = u64>>(outputs: S) -> u64 {
    let mut outputs = pin!(outputs);
    let (mut sum, mut next) = (0, 0);
    while let Some(output) = outputs.next().await {
        assert_eq!(output, next, "out of order");
        next += 1;
        sum += black_box(output);
    }
    sum
}

async fn try_sum<S: Stream<Item = Result<u64, ()>>>(outputs: S) -> u64 {
    let mut outputs = pin!(outputs);
    let mut sum = 0;
    while let Some(output) = outputs.next().await {
        sum += black_box(output.expect("no future fails"));
    }
    sum
}

#[derive(Clone, Copy, PartialEq)]
enum Group {
    Ordered,
    Fallible,
    ForEach,
}

impl Group {
    fn name(self) -> &'static str {
        match self {
            Group::Ordered => "ordered",
            Group::Fallible => "fallible",
            Group::ForEach => "for_each",
        }
    }

    /// The contenders: abstractions, futures-util (or `run_bounded` for `for_each`),
    /// futures-buffered.
    fn contenders(self) -> [&'static str; 3] {
        match self {
            Group::Ordered => [
                "run_bounded_ordered",
                "futures-util buffered",
                "futures-buffered buffered_ordered",
            ],
            Group::Fallible => [
                "try_run_bounded",
                "futures-util try_buffer_unordered",
                "futures-buffered try_buffered_unordered",
            ],
            Group::ForEach => [
                "for_each_bounded",
                "run_bounded + loop",
                "futures-buffered buffered_unordered + loop",
            ],
        }
    }

    fn run<F>(self, contender: usize, n: u64, limit: usize, make: fn(u64) -> F) -> u64
    where
        F: Future<Output = u64>,
    {
        match (self, contender) {
            (Group::Ordered, 0) => {
                block_on(sum_in_order(source(n, make).run_bounded_ordered(limit)))
            }
            (Group::Ordered, 1) => {
                block_on(sum_in_order(StreamExt::buffered(source(n, make), limit)))
            }
            (Group::Ordered, _) => block_on(sum_in_order(source(n, make).buffered_ordered(limit))),
            (Group::Fallible, 0) => block_on(try_sum(try_source(n, make).try_run_bounded(limit))),
            (Group::Fallible, 1) => block_on(try_sum(
                try_source(n, make)
                    .map(Ok::<_, ()>)
                    .try_buffer_unordered(limit),
            )),
            (Group::Fallible, _) => block_on(try_sum(
                try_source(n, make)
                    .map(Ok::<_, ()>)
                    .try_buffered_unordered(limit),
            )),
            (Group::ForEach, 0) => block_on(async {
                let mut sum = 0;
                source(n, make)
                    .for_each_bounded(limit, |output| {
                        sum += black_box(output);
                        std::future::ready(())
                    })
                    .await;
                sum
            }),
            (Group::ForEach, 1) => block_on(sum(source(n, make).run_bounded(limit))),
            (Group::ForEach, _) => block_on(sum(source(n, make).buffered_unordered(limit))),
        }
    }
}

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

    fn run(self, group: Group, contender: usize, n: u64, limit: usize) {
        let sum = match self {
            Kind::Ready => group.run(contender, n, limit, ready),
            Kind::YieldOnce => group.run(contender, n, limit, yield_once),
        };
        assert_eq!(
            sum,
            n * (n - 1) / 2,
            "{} got a wrong sum",
            group.contenders()[contender]
        );
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this binary without it.
    let bench = std::env::args().any(|arg| arg == "--bench");
    let quick = std::env::var_os("BENCH_QUICK").is_some_and(|v| v != "0" && !v.is_empty());
    let (n, rounds): (u64, usize) = match (bench, quick) {
        (false, _) => (1_000, 1),
        (true, true) => (100_000, 3),
        (true, false) => (100_000, 15),
    };
    let limits = [1, 16, 256];
    let started = Instant::now();
    let mut rows = Vec::new();
    // `BENCH_GROUP=ordered` (or fallible, for_each) measures one group only.
    let only = std::env::var("BENCH_GROUP").ok();
    let groups = [Group::Ordered, Group::Fallible, Group::ForEach]
        .into_iter()
        .filter(|group| only.as_deref().is_none_or(|only| only == group.name()));
    for group in groups {
        for kind in [Kind::Ready, Kind::YieldOnce] {
            for limit in limits {
                if bench {
                    for c in 0..3 {
                        kind.run(group, c, n, limit); // warm-up
                    }
                }
                // The contenders take turns in each round.
                let mut times = [Vec::new(), Vec::new(), Vec::new()];
                for _ in 0..rounds {
                    for (c, times) in times.iter_mut().enumerate() {
                        let start = Instant::now();
                        kind.run(group, c, n, limit);
                        times.push(start.elapsed().as_nanos() as f64 / n as f64);
                    }
                }
                let ratio = median(times[0].iter().zip(&times[2]).map(|(a, b)| a / b).collect());
                let medians = times.map(median);
                rows.push((group, kind, limit, medians, ratio));
            }
        }
    }
    if !bench {
        println!(
            "variants bench smoke run: {n} futures per run, every group and cell, sums checked, in {:.0?}",
            started.elapsed()
        );
        return;
    }
    println!(
        "{n} futures per run, on futures::executor::block_on; median of {rounds} rounds after a warm-up{}; 2 shared cores, expect 10% noise.",
        if quick { " (BENCH_QUICK)" } else { "" },
    );
    println!();
    println!("Nanoseconds per future (lower is better); contenders A / B / C per group:");
    println!();
    for group in [Group::Ordered, Group::Fallible, Group::ForEach] {
        let [a, b, c] = group.contenders();
        println!("- {}: A = {a}, B = {b}, C = {c}", group.name());
    }
    println!();
    println!("| group | kind | limit | A (abstractions) | B | C (futures-buffered) | A / C* |");
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: |");
    for (group, kind, limit, [a, b, c], ratio) in rows {
        println!(
            "| {} | {} | {limit} | {a:.1} | {b:.1} | {c:.1} | {ratio:.2} |",
            group.name(),
            kind.name(),
        );
    }
    println!();
    println!("*median over the rounds of the ratio of the two times in the same round.");
    println!();
    println!("(measured in {:.1?})", started.elapsed());
}

//! The stall of futures-rs issue 2387, measured: a slow consumer and the futures in flight.
//!
//! 32 jobs, limit 4, each job four 5 ms sleeps (20 ms), the consumer awaiting 20 ms per output.
//! The consumer is the bottleneck: ideally the first output comes after 20 ms and one more
//! every 20 ms, 20 + 32 × 20 = 660 ms in all. Contenders, each on smol, tokio current-thread
//! and tokio multi-thread (2 workers):
//!
//! - floor: one job, then the consumer's 32 waits, one after the other: the ideal as the
//!   runtime's timer makes it (tokio's timer rounds sleeps up to the next millisecond);
//! - `futures::StreamExt::buffer_unordered` with the consumer's `while let` loop;
//! - `abstractions::run_bounded` (default mode) with the same loop: it stalls as well;
//! - spawn mode, `run_bounded_spawn`, with the same loop;
//! - the `for_each` shape, `for_each_bounded`, with the consumer's wait as its body.
//!
//! Then the cost of spawn mode per future against the default mode: 100,000 ready futures at
//! limit 64, on smol (an `Executor`) and on tokio (current-thread and multi-thread).
//!
//! `cargo bench --bench stall` prints Markdown tables with medians and ratios taken in the
//! same rounds. `BENCH_QUICK=1` runs fewer rounds. Without `--bench` (as `cargo test
//! --all-targets` runs it) it runs a smoke version with shorter waits and fewer futures.

mod common;

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use abstractions::BoundedStreamExt;
use common::median;
use futures::future::FutureObj;
use futures::stream::{self, Stream, StreamExt};
use futures::task::{Spawn, SpawnError};

// ---------------------------------------------------------------------------------------------
// The runtimes, and the few-line `Spawn` wrappers a tokio or smol user writes.

#[derive(Clone, Copy, PartialEq)]
enum Rt {
    Smol,
    TokioCurrentThread,
    TokioMultiThread,
}

const RUNTIMES: [Rt; 3] = [Rt::Smol, Rt::TokioCurrentThread, Rt::TokioMultiThread];

impl Rt {
    fn name(self) -> &'static str {
        match self {
            Rt::Smol => "smol",
            Rt::TokioCurrentThread => "tokio current-thread",
            Rt::TokioMultiThread => "tokio multi-thread",
        }
    }

    /// Runs `body` on this runtime with a spawner of it.
    fn block_on<T, F, Fut>(self, body: F) -> T
    where
        F: FnOnce(Spawner) -> Fut,
        Fut: Future<Output = T>,
    {
        match self {
            Rt::Smol => {
                let executor = Arc::new(smol::Executor::new());
                let spawner = Spawner::Smol(Arc::clone(&executor));
                smol::block_on(executor.run(body(spawner)))
            }
            Rt::TokioCurrentThread | Rt::TokioMultiThread => {
                let runtime = if self == Rt::TokioCurrentThread {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                } else {
                    tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(2)
                        .enable_all()
                        .build()
                }
                .expect("a tokio runtime");
                let spawner = Spawner::Tokio(runtime.handle().clone());
                runtime.block_on(body(spawner))
            }
        }
    }
}

#[derive(Clone)]
enum Spawner {
    Smol(Arc<smol::Executor<'static>>),
    Tokio(tokio::runtime::Handle),
}

impl Spawn for Spawner {
    fn spawn_obj(&self, future: FutureObj<'static, ()>) -> Result<(), SpawnError> {
        match self {
            Spawner::Smol(executor) => executor.spawn(future).detach(),
            Spawner::Tokio(handle) => drop(handle.spawn(future)),
        }
        Ok(())
    }
}

impl Spawner {
    /// The sleep of this spawner's runtime.
    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send + 'static {
        let tokio = matches!(self, Spawner::Tokio(_));
        async move {
            if tokio {
                tokio::time::sleep(duration).await;
            } else {
                smol::Timer::after(duration).await;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The stall.

#[derive(Clone, Copy)]
struct Shape {
    jobs: u64,
    limit: usize,
    sleeps_per_job: u32,
    sleep: Duration,
    consumer: Duration,
}

impl Shape {
    /// The least time any contender can take: the first job, then one consumer wait per job.
    fn ideal(&self) -> Duration {
        self.sleep * self.sleeps_per_job + self.consumer * self.jobs as u32
    }

    fn jobs(
        &self,
        spawner: &Spawner,
    ) -> impl Stream<Item = impl Future<Output = u64> + Send + 'static> + Send + 'static {
        let (spawner, shape) = (spawner.clone(), *self);
        stream::iter(0..shape.jobs).map(move |n| {
            let spawner = spawner.clone();
            async move {
                for _ in 0..shape.sleeps_per_job {
                    spawner.sleep(shape.sleep).await;
                }
                n
            }
        })
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Contender {
    Floor,
    BufferUnordered,
    RunBounded,
    Spawn,
    ForEach,
}

const CONTENDERS: [Contender; 5] = [
    Contender::Floor,
    Contender::BufferUnordered,
    Contender::RunBounded,
    Contender::Spawn,
    Contender::ForEach,
];

impl Contender {
    fn name(self) -> &'static str {
        match self {
            Contender::Floor => "floor: one job, then the consumer's waits",
            Contender::BufferUnordered => "futures buffer_unordered + loop",
            Contender::RunBounded => "run_bounded + loop",
            Contender::Spawn => "run_bounded_spawn + loop",
            Contender::ForEach => "for_each_bounded",
        }
    }
}

/// The consumer's loop: a slow wait after each output. Returns the sum of the outputs.
async fn slow_loop<S: Stream<Item = u64>>(outputs: S, spawner: &Spawner, wait: Duration) -> u64 {
    let mut outputs = pin!(outputs);
    let mut sum = 0;
    while let Some(n) = outputs.next().await {
        sum += black_box(n);
        spawner.sleep(wait).await;
    }
    sum
}

async fn stall(contender: Contender, shape: Shape, spawner: Spawner) -> Duration {
    let start = Instant::now();
    let jobs = shape.jobs(&spawner);
    let (limit, wait) = (shape.limit, shape.consumer);
    let sum = match contender {
        Contender::Floor => {
            // What the runtime's timer makes of the ideal: no contender can beat it.
            let mut jobs = pin!(jobs);
            let first = jobs.next().await.expect("a job").await;
            for _ in 0..shape.jobs {
                spawner.sleep(wait).await;
            }
            first + (1..shape.jobs).sum::<u64>()
        }
        Contender::BufferUnordered => {
            slow_loop(StreamExt::buffer_unordered(jobs, limit), &spawner, wait).await
        }
        Contender::RunBounded => slow_loop(jobs.run_bounded(limit), &spawner, wait).await,
        Contender::Spawn => {
            let outputs = jobs.run_bounded_spawn(limit, spawner.clone());
            slow_loop(outputs, &spawner, wait).await
        }
        Contender::ForEach => {
            let mut sum = 0;
            jobs.for_each_bounded(limit, |n| {
                sum += black_box(n);
                spawner.sleep(wait)
            })
            .await;
            sum
        }
    };
    assert_eq!(
        sum,
        shape.jobs * (shape.jobs - 1) / 2,
        "{}",
        contender.name()
    );
    start.elapsed()
}

// ---------------------------------------------------------------------------------------------
// The cost per future of spawn mode.

async fn ready_futures(spawn: bool, n: u64, spawner: Spawner) -> Duration {
    let start = Instant::now();
    let tasks = stream::iter(0..n).map(std::future::ready);
    let mut sum = 0;
    if spawn {
        let mut outputs = tasks.run_bounded_spawn(64, spawner);
        while let Some(n) = outputs.next().await {
            sum += black_box(n);
        }
    } else {
        let mut outputs = tasks.run_bounded(64);
        while let Some(n) = outputs.next().await {
            sum += black_box(n);
        }
    }
    assert_eq!(sum, n * (n - 1) / 2);
    start.elapsed()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this binary without it.
    let bench = std::env::args().any(|arg| arg == "--bench");
    let quick = std::env::var_os("BENCH_QUICK").is_some_and(|v| v != "0" && !v.is_empty());
    let (shape, rounds, n, cost_rounds) = if bench {
        let shape = Shape {
            jobs: 32,
            limit: 4,
            sleeps_per_job: 4,
            sleep: Duration::from_millis(5),
            consumer: Duration::from_millis(20),
        };
        (
            shape,
            if quick { 1 } else { 5 },
            100_000,
            if quick { 3 } else { 11 },
        )
    } else {
        let shape = Shape {
            jobs: 8,
            limit: 4,
            sleeps_per_job: 2,
            sleep: Duration::from_millis(1),
            consumer: Duration::from_millis(2),
        };
        (shape, 1, 1_000, 1)
    };
    let started = Instant::now();

    // times[runtime][contender][round], in ms; the contenders take turns in each round.
    let mut times = vec![vec![Vec::new(); CONTENDERS.len()]; RUNTIMES.len()];
    for _ in 0..rounds {
        for (r, rt) in RUNTIMES.into_iter().enumerate() {
            for (c, contender) in CONTENDERS.into_iter().enumerate() {
                let elapsed = rt.block_on(|spawner| stall(contender, shape, spawner));
                times[r][c].push(ms(elapsed));
            }
        }
    }

    // cost[runtime][spawn][round], in ns per future.
    let mut cost = vec![[Vec::new(), Vec::new()]; RUNTIMES.len()];
    for round in 0..=cost_rounds {
        for (r, rt) in RUNTIMES.into_iter().enumerate() {
            for spawn in [false, true] {
                let elapsed = rt.block_on(|spawner| ready_futures(spawn, n, spawner));
                if round > 0 {
                    // Round 0 warms up.
                    cost[r][usize::from(spawn)].push(elapsed.as_nanos() as f64 / n as f64);
                }
            }
        }
    }

    if !bench {
        println!(
            "stall bench smoke run: every contender on every runtime, sums checked, in {:.0?}",
            started.elapsed()
        );
        return;
    }

    let ideal = ms(shape.ideal());
    println!(
        "{} jobs, limit {}, each job {} sleeps of {:?}, the consumer awaiting {:?} per output; \
         ideal {ideal:.0} ms. Median of {rounds} rounds{}; 2 shared cores.",
        shape.jobs,
        shape.limit,
        shape.sleeps_per_job,
        shape.sleep,
        shape.consumer,
        if quick { " (BENCH_QUICK)" } else { "" },
    );
    println!();
    println!("| runtime | contender | median ms | / ideal | / floor* | / buffer_unordered* |");
    println!("| --- | --- | ---: | ---: | ---: | ---: |");
    let index = |contender| {
        CONTENDERS
            .iter()
            .position(|&c| c == contender)
            .expect("listed")
    };
    let (floor, bu) = (index(Contender::Floor), index(Contender::BufferUnordered));
    for (r, rt) in RUNTIMES.into_iter().enumerate() {
        for (c, contender) in CONTENDERS.into_iter().enumerate() {
            let ratio = |to: usize| {
                let ratios = times[r][c].iter().zip(&times[r][to]).map(|(a, b)| a / b);
                median(ratios.collect())
            };
            let median_ms = median(times[r][c].clone());
            println!(
                "| {} | {} | {:.0} | {:.2} | {:.2} | {:.2} |",
                rt.name(),
                contender.name(),
                median_ms,
                median_ms / ideal,
                ratio(floor),
                ratio(bu),
            );
        }
    }
    println!();
    println!("*median over the rounds of the ratio of the two times in the same round.");
    println!();
    println!(
        "Cost per future: {n} ready futures at limit 64, median of {cost_rounds} rounds after a warm-up."
    );
    println!();
    println!("| runtime | default mode ns/future | spawn mode ns/future | spawn / default |");
    println!("| --- | ---: | ---: | ---: |");
    for (r, rt) in RUNTIMES.into_iter().enumerate() {
        let [default, spawn] = &cost[r];
        let ratios = spawn.iter().zip(default).map(|(s, d)| s / d);
        println!(
            "| {} | {:.0} | {:.0} | {:.1} |",
            rt.name(),
            median(default.clone()),
            median(spawn.clone()),
            median(ratios.collect()),
        );
    }
    println!();
    println!("(measured in {:.1?})", started.elapsed());
}

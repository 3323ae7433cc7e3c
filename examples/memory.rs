//! Ten million futures through `run_bounded` at a limit of 100, in a few megabytes.
//!
//! The futures are made lazily, one as a slot frees, so memory depends on the limit and not on
//! how many futures the source holds. Each future is pending once before it finishes, so
//! slots turn over as they would with real I/O.
//!
//! Run it with `cargo run --release --example memory`, and measure its peak memory with
//! `/usr/bin/time -v target/release/examples/memory` ("Maximum resident set size"). On Linux it
//! also prints its own peak, read from `/proc/self/status`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use abstractions::BoundedStreamExt;
use futures::executor::block_on;
use futures::stream::{self, StreamExt};

/// How many futures the source makes.
const FUTURES: u64 = 10_000_000;
/// How many run at once.
const LIMIT: usize = 100;

/// Wakes its own waker and is pending once, then returns its value: a stand-in for a job that
/// waits on I/O, tied to no runtime.
struct YieldOnce {
    value: u64,
    yielded: bool,
}

impl Future for YieldOnce {
    type Output = u64;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u64> {
        if self.yielded {
            Poll::Ready(self.value)
        } else {
            self.yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

async fn job(id: u64) -> u64 {
    YieldOnce {
        value: id,
        yielded: false,
    }
    .await
}

fn main() {
    let start = Instant::now();
    let jobs = stream::iter(0..FUTURES).map(job);
    let sum = block_on(
        jobs.run_bounded(LIMIT)
            .fold(0u64, |sum, output| async move { sum + output }),
    );
    assert_eq!(sum, FUTURES * (FUTURES - 1) / 2);
    println!(
        "{FUTURES} futures at limit {LIMIT}: sum {sum} is right, in {:.2?}",
        start.elapsed()
    );
    if let Some(peak) = peak_rss() {
        println!("peak resident memory (VmHWM): {peak}");
    }
}

/// The process's peak resident set size as Linux reports it, if it does.
fn peak_rss() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    Some(line["VmHWM:".len()..].trim().to_owned())
}

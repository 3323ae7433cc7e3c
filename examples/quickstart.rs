//! 2,000 simulated API calls, at most 64 at once, pulled lazily from a generator.
//!
//! Run with `cargo run --release --example quickstart`.

use std::time::{Duration, Instant};

use abstractions::BoundedStreamExt;
use futures::stream::{self, StreamExt};

/// A slow, remote call: 5 to 50 ms of latency, made with the runtime's timer.
async fn call_api(id: u32) -> String {
    let latency = Duration::from_millis(fastrand::u64(5..=50));
    smol::Timer::after(latency).await;
    format!("answer {id}")
}

fn main() {
    smol::block_on(async {
        let jobs = 2_000;
        // A generator: each request is made only when a slot is free for it.
        let requests = stream::iter(0..jobs).map(call_api);
        let mut answers = requests.run_bounded(64);
        let start = Instant::now();
        let (mut done, mut concurrency_sum) = (0u32, 0usize);
        while let Some(answer) = answers.next().await {
            done += 1;
            // Futures in flight right now: the achieved concurrency.
            concurrency_sum += answers.in_flight();
            if done % 250 == 0 {
                println!(
                    "{done:>5}/{jobs} done, last: {answer:<12} in flight: {:>2}",
                    answers.in_flight()
                );
            }
        }
        let elapsed = start.elapsed();
        println!(
            "{done} calls in {:.2} s: {:.0} calls/s, mean concurrency {:.1} (limit 64)",
            elapsed.as_secs_f64(),
            f64::from(done) / elapsed.as_secs_f64(),
            concurrency_sum as f64 / f64::from(done),
        );
    });
}

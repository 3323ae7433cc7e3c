//! `run_bounded` inside a tokio application: tokio's timer, a tokio task, no adapter crate.
//!
//! Run with `cargo run --release --example tokio_app`.

use std::time::{Duration, Instant};

use abstractions::run_bounded;
use futures::stream::{self, StreamExt};

async fn call_api(id: u32) -> Result<u32, String> {
    tokio::time::sleep(Duration::from_millis(fastrand::u64(5..=50))).await;
    if id % 100 == 99 {
        return Err(format!("request {id} failed"));
    }
    Ok(id)
}

#[tokio::main]
async fn main() {
    let start = Instant::now();
    // The stream is driven by a spawned task, as in a server.
    let worker = tokio::spawn(async {
        let mut results = run_bounded(stream::iter(0..1_000).map(call_api), 32);
        let (mut ok, mut failed) = (0, Vec::new());
        while let Some(result) = results.next().await {
            match result {
                Ok(_) => ok += 1,
                Err(error) => failed.push(error),
            }
        }
        (ok, failed)
    });
    let (ok, failed) = worker.await.expect("worker task");
    println!(
        "{ok} succeeded, {} failed (e.g. {:?}), in {:.2} s",
        failed.len(),
        failed.first(),
        start.elapsed().as_secs_f64()
    );
}

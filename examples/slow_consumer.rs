//! A tokio application whose consumer is slow: the stall of a plain loop over `run_bounded`,
//! and its two cures, spawn mode and `for_each_bounded`, with a graceful stop on Ctrl-C.
//!
//! ```sh
//! cargo run --release --example slow_consumer
//! ```
//!
//! Each of 16 "requests" takes four steps of 5 ms; saving each answer takes 20 ms. At most 4 requests
//! run at once. Ideally the run takes about 20 + 16 × 20 = 340 ms: the saving is the bottleneck.

use std::time::{Duration, Instant};

use abstractions::{BoundedStreamExt, StopHandle};
use futures::future::FutureObj;
use futures::stream::{self, Stream, StreamExt};
use futures::task::{Spawn, SpawnError};

/// The few lines that let the crate's spawn mode run tasks on tokio.
#[derive(Clone)]
struct TokioSpawner(tokio::runtime::Handle);

impl Spawn for TokioSpawner {
    fn spawn_obj(&self, future: FutureObj<'static, ()>) -> Result<(), SpawnError> {
        self.0.spawn(future);
        Ok(())
    }
}

/// A request in four steps (connect, send, wait, read) of 5 ms each: a step can start only
/// when the request is polled.
async fn request(id: u32) -> u32 {
    for _step in 0..4 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    id
}

async fn save(_answer: u32) {
    tokio::time::sleep(Duration::from_millis(20)).await;
}

/// The requests, which end early if `stop` is stopped (Ctrl-C).
fn requests(stop: StopHandle) -> impl Stream<Item = impl Future<Output = u32> + Send> + Send {
    stream::iter(0..16).map(request).until_stopped(&stop)
}

#[tokio::main]
async fn main() {
    let stop = StopHandle::new();
    let handler = stop.clone();
    ctrlc::set_handler(move || handler.stop()).expect("set the Ctrl-C handler");

    // The trap: while `save` runs, the requests in flight are not polled.
    let start = Instant::now();
    let mut answers = requests(stop.clone()).run_bounded(4);
    while let Some(answer) = answers.next().await {
        save(answer).await;
    }
    println!(
        "run_bounded + loop:        {:>4} ms",
        start.elapsed().as_millis()
    );

    // Cure 1: spawn mode. The requests run as tokio tasks, whatever the loop does.
    let start = Instant::now();
    let spawner = TokioSpawner(tokio::runtime::Handle::current());
    let mut answers = requests(stop.clone()).run_bounded_spawn(4, spawner);
    while let Some(answer) = answers.next().await {
        save(answer).await;
    }
    println!(
        "run_bounded_spawn + loop:  {:>4} ms",
        start.elapsed().as_millis()
    );

    // Cure 2: the body and the requests polled together; no spawner needed.
    let start = Instant::now();
    requests(stop.clone()).for_each_bounded(4, save).await;
    println!(
        "for_each_bounded:          {:>4} ms",
        start.elapsed().as_millis()
    );
}

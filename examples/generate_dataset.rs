//! Dataset generation that survives being stopped: the point of this library.
//!
//! 500 prompts, two answers each, from a simulated slow and flaky API, at most 32 calls at
//! once, saved to a JSONL file as they come. Press Ctrl-C: the run stops pulling new work,
//! saves what is in flight, and says how far it got. Kill it (`kill -9`): nothing saved is
//! lost. Run it again: it generates only what is missing.
//!
//! ```sh
//! cargo run --release --example generate_dataset            # writes dataset.jsonl
//! cargo run --release --example generate_dataset -- out.jsonl
//! ```

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use abstractions::StopHandle;
use abstractions::jsonl::{Key, Options, run_bounded_create_or_resume_jsonl_file};
use futures::stream::{self, StreamExt};
use serde::Serialize;

#[derive(Serialize)]
struct Sample {
    prompt: Key,
    answer: String,
    latency_ms: u64,
}

/// A simulated model API: 20 to 200 ms per call, and one call in 20 fails.
async fn call_model(prompt: &str) -> io::Result<(String, u64)> {
    let latency = fastrand::u64(20..=200);
    smol::Timer::after(Duration::from_millis(latency)).await;
    if fastrand::u8(0..20) == 0 {
        return Err(io::Error::other("503 service unavailable"));
    }
    Ok((format!("an answer to {prompt}"), latency))
}

/// One row: the call, tried up to five times.
async fn sample(prompt: Key) -> io::Result<Sample> {
    let text = prompt.as_str().unwrap_or_default().to_owned();
    let mut attempt = 0;
    loop {
        attempt += 1;
        match call_model(&text).await {
            Ok((answer, latency_ms)) => {
                return Ok(Sample {
                    prompt,
                    answer,
                    latency_ms,
                });
            }
            Err(error) if attempt == 5 => return Err(error),
            Err(_) => smol::Timer::after(Duration::from_millis(50)).await,
        };
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "dataset.jsonl".into());
    let prompts: Vec<String> = (0..500).map(|i| format!("prompt {i:03}")).collect();

    // Ctrl-C stops gracefully; a second Ctrl-C quits at once (what is saved stays saved).
    let stop = StopHandle::new();
    let pressed = AtomicBool::new(false);
    ctrlc::set_handler({
        let stop = stop.clone();
        move || {
            if pressed.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
            eprintln!("\nstopping: finishing the calls in flight (Ctrl-C again to quit now)");
            stop.stop();
        }
    })?;

    let start = Instant::now();
    let options = Options::new().stop(stop).progress(|p| {
        if p.saved % 100 == 0 || p.done() == p.total {
            eprintln!("{:>4}/{} rows ({} this run)", p.done(), p.total, p.saved);
        }
    });
    let report = smol::block_on(run_bounded_create_or_resume_jsonl_file(
        &path,
        "prompt",
        2,
        prompts,
        |missing: Vec<(Key, usize)>| {
            eprintln!("{} prompts need rows", missing.len());
            stream::iter(missing)
                .flat_map(|(prompt, count)| stream::iter(std::iter::repeat_n(prompt, count)))
                .map(sample)
        },
        32,
        options,
    ))?;
    eprintln!(
        "{path}: {} rows found, {} written, {} missing{} in {:.1} s",
        report.rows_resumed,
        report.rows_written,
        report.rows_missing,
        if report.stopped { " (stopped)" } else { "" },
        start.elapsed().as_secs_f64(),
    );
    if report.torn_bytes > 0 {
        eprintln!("cut a torn last line of {} bytes", report.torn_bytes);
    }
    Ok(())
}

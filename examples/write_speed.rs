//! How fast `JsonlWriter` writes rows, against the fastest plain alternative in one process.
//!
//! Writes 1,000,000 rows of about 100 bytes, five times each way, and prints the median:
//! - `JsonlWriter` through its `Sink`, with `send_all`;
//! - `serde_json` into a `std::io::BufWriter<std::fs::File>` (blocking, no crash safety:
//!   a row can be split across two writes);
//! - `serde_json` into a buffer written through `async_fs::File` every 64 KiB (whole rows,
//!   but no overlap of serializing and writing).
//!
//! ```text
//! cargo run --release --example write_speed [DIRECTORY]
//! ```
//!
//! The files go in DIRECTORY (default: a temporary directory), and are deleted.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use abstractions::jsonl::JsonlWriter;
use futures::{AsyncWriteExt, SinkExt, executor::block_on, stream};
use serde::Serialize;

const ROWS: u64 = 1_000_000;
const RUNS: usize = 5;

/// One way to write the rows to a file; returns how long it took.
type Way = fn(&Path) -> Duration;

#[derive(Serialize)]
struct Row {
    id: u64,
    key: String,
    score: f64,
    text: &'static str,
}

fn row(id: u64) -> Row {
    Row {
        id,
        key: format!("key-{:08}", id % 100_000),
        score: id as f64 / 7.0,
        text: "a sentence of generated text, of a usual length",
    }
}

fn with_jsonl_writer(path: &Path) -> Duration {
    block_on(async {
        let start = Instant::now();
        let mut writer = JsonlWriter::create(path).await.unwrap();
        let mut rows = stream::iter((0..ROWS).map(|id| Ok(row(id))));
        writer.send_all(&mut rows).await.unwrap();
        writer.finish().await.unwrap();
        start.elapsed()
    })
}

fn with_bufwriter(path: &Path) -> Duration {
    let start = Instant::now();
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for id in 0..ROWS {
        serde_json::to_writer(&mut file, &row(id)).unwrap();
        file.write_all(b"\n").unwrap();
    }
    file.into_inner().unwrap();
    start.elapsed()
}

fn with_async_fs(path: &Path) -> Duration {
    block_on(async {
        let start = Instant::now();
        let mut file = async_fs::File::create(path).await.unwrap();
        let mut buf = Vec::with_capacity(1 << 17);
        for id in 0..ROWS {
            serde_json::to_writer(&mut buf, &row(id)).unwrap();
            buf.push(b'\n');
            if buf.len() >= 1 << 16 {
                file.write_all(&buf).await.unwrap();
                file.flush().await.unwrap();
                buf.clear();
            }
        }
        file.write_all(&buf).await.unwrap();
        file.flush().await.unwrap();
        start.elapsed()
    })
}

fn main() {
    let dir = match std::env::args_os().nth(1) {
        Some(dir) => tempfile::tempdir_in(dir),
        None => tempfile::tempdir(),
    }
    .unwrap();
    let path = dir.path().join("rows.jsonl");

    let ways: [(&str, Way); 3] = [
        ("JsonlWriter send_all", with_jsonl_writer),
        ("BufWriter<File>", with_bufwriter),
        ("async_fs::File, 64 KiB", with_async_fs),
    ];
    let mut times = vec![Vec::new(); ways.len()];
    for _ in 0..RUNS {
        for ((_, way), times) in ways.iter().zip(&mut times) {
            times.push(way(&path));
            std::fs::remove_file(&path).unwrap();
        }
    }

    let bytes = {
        let mut counter = Vec::new();
        serde_json::to_writer(&mut counter, &row(ROWS / 2)).unwrap();
        counter.len() + 1
    };
    println!("{ROWS} rows of about {bytes} bytes, median of {RUNS} runs");
    let rate = |times: &mut Vec<Duration>| {
        times.sort();
        ROWS as f64 / times[times.len() / 2].as_secs_f64()
    };
    let rates: Vec<f64> = times.iter_mut().map(rate).collect();
    for ((name, _), rate) in ways.iter().zip(&rates) {
        println!(
            "{name:>24}: {:>10.0} rows/s  {:.2}x BufWriter",
            rate,
            rate / rates[1]
        );
    }
}

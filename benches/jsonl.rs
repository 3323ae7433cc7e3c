//! The resumable JSONL machinery against its floors and against the Python library, in one run:
//!
//! 1. Writing 1,000,000 rows of about 100 bytes through [`JsonlWriter`]'s `Sink`, against
//!    `serde_json` into a `std::io::BufWriter<std::fs::File>` (blocking, no crash safety).
//! 2. `run_bounded_create_or_resume_jsonl_file`: 1,000,000 rows (100,000 keys, 10 rows each)
//!    from an instant generator at `limit = 16`, then the resume of that finished file (a scan
//!    that finds nothing to do); the Python library does the same jobs by a script.
//! 3. The resume scan of a 1 GB file with 100,000 keys, page cache warm, against a naive
//!    synchronous scan (`BufReader::lines`, a `serde_json::Value` per line, a `HashMap`).
//!
//! ```sh
//! PYTHON=/path/to/venv/bin/python cargo bench --bench jsonl
//! # Peak memory of the 1 GB resume scan alone (after a run above made the file):
//! JSONL_BENCH_ONLY=scan /usr/bin/time -v target/release/deps/jsonl-* --bench
//! # Job 2 alone, fresh or resumed, for a profiler (JSONL_BENCH_ROWS sets its size):
//! JSONL_BENCH_ONLY=create target/release/deps/jsonl-* --bench
//! JSONL_BENCH_ONLY=resume target/release/deps/jsonl-* --bench
//! ```
//!
//! Without `--bench` (as `cargo test --benches` runs it) the sizes are tiny and Python is not run.

mod common;

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use abstractions::jsonl::{
    JsonlWriter, Key, Options, Report, create_or_resume_jsonl_file,
    run_bounded_create_or_resume_jsonl_file,
};
use common::{median, run_python};
use futures::stream::{self, StreamExt};
use futures::{SinkExt, executor::block_on};
use serde::Serialize;
use serde_json::Value;

const TEXT: &str = "a sentence of generated text, of a usual length";

#[derive(Serialize)]
struct Row<K> {
    key: K,
    index: usize,
    text: &'static str,
    score: f64,
}

/// The key of number `i`, as the Python script makes it.
fn key_name(i: u64) -> String {
    format!("k{i:06}")
}

/// Seconds to write `rows` rows through the Sink.
fn sink_write(path: &Path, rows: u64) -> f64 {
    let _ = std::fs::remove_file(path);
    block_on(async {
        let start = Instant::now();
        let mut writer = JsonlWriter::create(path).await.unwrap();
        let mut items = stream::iter((0..rows).map(|i| {
            Ok(Row {
                key: key_name(i / 10),
                index: (i % 10) as usize,
                text: TEXT,
                score: 0.5,
            })
        }));
        writer.send_all(&mut items).await.unwrap();
        writer.finish().await.unwrap();
        start.elapsed().as_secs_f64()
    })
}

/// Seconds to write the same rows with `serde_json` into a `BufWriter`: the floor.
fn bufwriter_write(path: &Path, rows: u64) -> f64 {
    let start = Instant::now();
    let mut out = BufWriter::new(std::fs::File::create(path).unwrap());
    for i in 0..rows {
        let row = Row {
            key: key_name(i / 10),
            index: (i % 10) as usize,
            text: TEXT,
            score: 0.5,
        };
        serde_json::to_writer(&mut out, &row).unwrap();
        out.write_all(b"\n").unwrap();
    }
    out.into_inner().unwrap();
    start.elapsed().as_secs_f64()
}

/// Generates (or resumes) `keys` keys of `per_key` rows each at `limit = 16`: seconds and report.
fn create(path: &Path, keys: u64, per_key: usize) -> (f64, Report) {
    let start = Instant::now();
    let report = smol::block_on(run_bounded_create_or_resume_jsonl_file(
        path,
        "key",
        per_key,
        (0..keys).map(key_name),
        |missing: Vec<(Key, usize)>| {
            stream::iter(missing)
                .flat_map(|(key, count)| stream::iter((0..count).map(move |i| (key.clone(), i))))
                .map(|(key, index)| async move {
                    Ok::<_, Infallible>(Row {
                        key,
                        index,
                        text: TEXT,
                        score: 0.5,
                    })
                })
        },
        16,
        Options::new(),
    ))
    .unwrap();
    (start.elapsed().as_secs_f64(), report)
}

/// A file of `keys` keys with `per_key` rows each, of about `row_bytes` bytes a row.
fn make_big_file(path: &Path, keys: u64, per_key: u64, row_bytes: usize) {
    let filler = "x".repeat(row_bytes.saturating_sub(60));
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    for index in 0..per_key {
        for key in 0..keys {
            writeln!(
                out,
                "{{\"key\":\"{}\",\"index\":{index},\"score\":0.5,\"text\":\"{filler}\"}}",
                key_name(key)
            )
            .unwrap();
        }
    }
    out.flush().unwrap();
}

/// The resume scan of a finished file: seconds; panics if the run found anything to do.
fn scan(path: &Path, keys: u64, per_key: usize) -> f64 {
    let start = Instant::now();
    let report = block_on(create_or_resume_jsonl_file(
        path,
        "key",
        per_key,
        (0..keys).map(key_name),
        |missing: Vec<(Key, usize)>| {
            assert!(missing.is_empty(), "the file is finished");
            stream::empty::<futures::future::Ready<Result<Value, Infallible>>>()
        },
        Options::new(),
    ))
    .unwrap();
    assert_eq!(report.rows_resumed, keys * per_key as u64);
    assert_eq!(report.rows_written, 0);
    start.elapsed().as_secs_f64()
}

/// The floor of the scan: every line parsed into a `Value`, its key counted in a `HashMap`.
fn naive_scan(path: &Path) -> f64 {
    let start = Instant::now();
    let input = BufReader::with_capacity(1 << 20, std::fs::File::open(path).unwrap());
    let mut counts: HashMap<String, u64> = HashMap::new();
    for line in input.lines() {
        let row: Value = serde_json::from_str(&line.unwrap()).unwrap();
        let key = row["key"].as_str().unwrap();
        match counts.get_mut(key) {
            Some(count) => *count += 1,
            None => {
                counts.insert(key.to_owned(), 1);
            }
        }
    }
    std::hint::black_box(counts);
    start.elapsed().as_secs_f64()
}

/// The Python library's create and resume of the same job: (seconds to write, seconds to resume).
fn python_run(path: &Path, keys: u64, per_key: usize) -> Option<(f64, f64)> {
    let (keys, per_key) = (keys.to_string(), per_key.to_string());
    let out = run_python(
        "jsonl_bench.py",
        &[path.as_os_str(), keys.as_ref(), per_key.as_ref()],
    )?;
    // "write SECONDS resume SECONDS"
    let words: Vec<&str> = out.split_whitespace().collect();
    Some((words.get(1)?.parse().ok()?, words.get(3)?.parse().ok()?))
}

fn main() {
    let bench = std::env::args().any(|arg| arg == "--bench");
    let dir: PathBuf = Path::new(env!("CARGO_TARGET_TMPDIR")).join("jsonl-bench");
    std::fs::create_dir_all(&dir).unwrap();
    let (mut rows, big_keys, big_per_key, rounds) = if bench {
        (1_000_000u64, 100_000u64, 10u64, 5)
    } else {
        (2_000, 100, 3, 1)
    };
    if let Some(n) = std::env::var("JSONL_BENCH_ROWS")
        .ok()
        .and_then(|n| n.parse().ok())
    {
        rows = n;
    }
    let big = dir.join(format!("big-{big_keys}x{big_per_key}.jsonl"));
    let big_row = 1000;

    if std::env::var("JSONL_BENCH_ONLY").as_deref() == Ok("scan") {
        if !big.exists() {
            make_big_file(&big, big_keys, big_per_key, big_row);
        }
        let seconds = scan(&big, big_keys, big_per_key as usize);
        let mb = std::fs::metadata(&big).unwrap().len() as f64 / 1e6;
        println!(
            "resume scan of {mb:.0} MB: {seconds:.2} s, {:.0} MB/s",
            mb / seconds
        );
        return;
    }

    let keys = rows / 10;
    let created = dir.join("created.jsonl");
    if let Ok(job @ ("create" | "resume")) = std::env::var("JSONL_BENCH_ONLY").as_deref() {
        // For a profiler: job 2 alone, the fresh run or the resume of the finished file.
        for _ in 0..rounds {
            if job == "create" || !created.exists() {
                let _ = std::fs::remove_file(&created);
            }
            let (seconds, _) = create(&created, keys, 10);
            println!("{job} of {rows} rows: {:.0} rows/s", rows as f64 / seconds);
        }
        return;
    }

    // 1. The Sink against a BufWriter.
    let path = dir.join("write.jsonl");
    let (mut sink, mut floor) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        sink.push(sink_write(&path, rows));
        floor.push(bufwriter_write(&path, rows));
    }
    let row_bytes = std::fs::metadata(&path).unwrap().len() / rows;
    let (sink, floor) = (median(sink), median(floor));

    // 2. create and resume, this crate.
    let (mut writes, mut resumes) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let _ = std::fs::remove_file(&created);
        let (seconds, report) = create(&created, keys, 10);
        assert_eq!(report.rows_written, rows);
        writes.push(seconds);
        let (seconds, report) = create(&created, keys, 10);
        assert_eq!((report.rows_resumed, report.rows_written), (rows, 0));
        resumes.push(seconds);
    }
    let (write, resume) = (median(writes), median(resumes));

    // 3. The resume scan of a big file.
    if !big.exists() {
        make_big_file(&big, big_keys, big_per_key, big_row);
    }
    let mb = std::fs::metadata(&big).unwrap().len() as f64 / 1e6;
    naive_scan(&big); // warm the page cache
    let (mut scans, mut naive) = (Vec::new(), Vec::new());
    for _ in 0..rounds.min(3) {
        scans.push(scan(&big, big_keys, big_per_key as usize));
        naive.push(naive_scan(&big));
    }
    let (scan_s, naive_s) = (median(scans), median(naive));

    let python = if bench {
        python_run(&dir.join("python.jsonl"), keys, 10)
    } else {
        None
    };

    let rate = |seconds: f64| rows as f64 / seconds;
    println!("rows of about {row_bytes} bytes; medians of {rounds} runs (Python: one run)");
    println!();
    println!("| job | this crate | alternative | ratio |");
    println!("| --- | ---: | ---: | ---: |");
    println!(
        "| write {rows} rows: `JsonlWriter` Sink vs `serde_json` + `BufWriter` (floor) | {:.0} rows/s | {:.0} rows/s | {:.2}x |",
        rate(sink),
        rate(floor),
        floor / sink
    );
    println!(
        "| resume scan, {mb:.0} MB, {big_keys} keys, vs naive sync scan (floor) | {:.0} MB/s | {:.0} MB/s | {:.2}x |",
        mb / scan_s,
        mb / naive_s,
        naive_s / scan_s
    );
    match python {
        Some((py_write, py_resume)) => {
            println!(
                "| `run_bounded_create_or_resume_jsonl_file`, {rows} rows, limit 16, vs Python | {:.0} rows/s | {:.0} rows/s | {:.1}x |",
                rate(write),
                rate(py_write),
                py_write / write
            );
            println!(
                "| resume of that finished file vs Python | {:.0} rows/s | {:.0} rows/s | {:.1}x |",
                rate(resume),
                rate(py_resume),
                py_resume / resume
            );
        }
        None => {
            println!(
                "| `run_bounded_create_or_resume_jsonl_file`, {rows} rows, limit 16 | {:.0} rows/s | Python not run | |",
                rate(write)
            );
            println!(
                "| resume of that finished file | {:.0} rows/s | Python not run | |",
                rate(resume)
            );
        }
    }
}

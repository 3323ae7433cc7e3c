//! `flatmap_jsonl_file` on 1,000,000 source rows with an instant `f` that returns two rows per
//! source row, beside a naive synchronous loop (the floor) and, by a script in the same run,
//! the Python library. Prints source rows per second and ratios.
//!
//! ```sh
//! PYTHON=/path/to/venv/bin/python cargo bench --bench flatmap
//! FLATMAP_BENCH_ROWS=3000000 FLATMAP_BENCH_ONLY=rust target/release/deps/flatmap-* --bench
//! ```
//! (the second runs only this crate, for `/usr/bin/time -v`: memory must not grow with rows).

mod common;

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use abstractions::jsonl::{Options, flatmap_jsonl_file};
use common::{median, run_python};
use serde_json::{Map, Value, json};

fn make_source(path: &Path, rows: u64) {
    let mut out = BufWriter::new(std::fs::File::create(path).unwrap());
    for id in 0..rows {
        writeln!(
            out,
            "{{\"id\":{id},\"text\":\"row number {id} of the benchmark source\",\"score\":0.5}}"
        )
        .unwrap();
    }
    out.flush().unwrap();
}

async fn two(row: Map<String, Value>) -> Result<Vec<Value>, std::io::Error> {
    let id = &row["id"];
    Ok(vec![
        json!({ "id": id, "k": 0 }),
        json!({ "id": id, "k": 1 }),
    ])
}

/// This crate: seconds for a fresh run.
fn crate_run(src: &Path, dst: &Path, log: &Path) -> f64 {
    let _ = std::fs::remove_file(dst);
    let _ = std::fs::remove_file(log);
    let start = Instant::now();
    smol::block_on(flatmap_jsonl_file(src, dst, log, two, 16, Options::new())).unwrap();
    start.elapsed().as_secs_f64()
}

/// The floor: the same transformation, synchronous, no resume.
fn naive_run(src: &Path, dst: &Path) -> f64 {
    let start = Instant::now();
    let input = BufReader::with_capacity(1 << 20, std::fs::File::open(src).unwrap());
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(dst).unwrap());
    for line in input.lines() {
        let row: Map<String, Value> = serde_json::from_str(&line.unwrap()).unwrap();
        for k in 0..2 {
            serde_json::to_writer(&mut out, &json!({ "id": row["id"], "k": k })).unwrap();
            out.write_all(b"\n").unwrap();
        }
    }
    out.flush().unwrap();
    start.elapsed().as_secs_f64()
}

/// The Python library, if `PYTHON` (or python3) has it: seconds.
fn python_run(src: &Path, dst: &Path, log: &Path) -> Option<f64> {
    let out = run_python(
        "flatmap_bench.py",
        &[src.as_os_str(), dst.as_os_str(), log.as_os_str()],
    )?;
    out.split_whitespace().nth(3)?.parse().ok()
}

fn main() {
    let bench = std::env::args().any(|arg| arg == "--bench");
    let rows: u64 = std::env::var("FLATMAP_BENCH_ROWS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(if bench { 1_000_000 } else { 2_000 });
    let dir: PathBuf = Path::new(env!("CARGO_TARGET_TMPDIR")).join("flatmap-bench");
    std::fs::create_dir_all(&dir).unwrap();
    let (src, dst, log) = (
        dir.join("src.jsonl"),
        dir.join("dst.jsonl"),
        dir.join("dst.log"),
    );
    make_source(&src, rows);
    if std::env::var("FLATMAP_BENCH_ONLY").as_deref() == Ok("rust") {
        let seconds = crate_run(&src, &dst, &log);
        println!(
            "{rows} rows in {seconds:.2} s: {:.0} rows/s",
            rows as f64 / seconds
        );
        return;
    }
    let rounds = if bench { 5 } else { 1 };
    let mut ours = Vec::new();
    let mut floor = Vec::new();
    for _ in 0..rounds {
        ours.push(crate_run(&src, &dst, &log));
        floor.push(naive_run(&src, &dir.join("naive.jsonl")));
    }
    // The output is right: two rows per source row, in order.
    let output = std::fs::read_to_string(&dst).unwrap();
    assert_eq!(output.lines().count() as u64, 2 * rows);
    assert_eq!(output.lines().nth(3).unwrap(), "{\"id\":1,\"k\":1}");
    let (ours, floor) = (median(ours), median(floor));
    let python = if bench {
        python_run(&src, &dst, &log)
    } else {
        None
    };
    let rate = |seconds: f64| rows as f64 / seconds;
    println!(
        "flatmap_jsonl_file, {rows} source rows, two output rows each, instant f, num_concurrent 16"
    );
    println!();
    println!("| implementation | source rows/s | this crate's speed as a multiple |");
    println!("| --- | ---: | ---: |");
    println!(
        "| this crate (median of {rounds}) | {:.0} | 1.00 |",
        rate(ours)
    );
    println!(
        "| naive sync loop, no resume (floor) | {:.0} | {:.2}x of the floor |",
        rate(floor),
        floor / ours
    );
    match python {
        Some(seconds) => println!(
            "| Python abstractions 0.9.0 (one run) | {:.0} | {:.1}x the Python |",
            rate(seconds),
            seconds / ours
        ),
        None => println!("| Python abstractions 0.9.0 | not run | |"),
    }
}

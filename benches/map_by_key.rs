//! `map_by_key_jsonl_file` on 1,000,000 source rows of about 200 bytes with 10,000 keys, an
//! instant `f` and `num_concurrent` 16: fresh, resumed from an output cut after half its rows
//! (the side file holding every key's result, as a kill late in a run leaves it), and run again
//! over a finished output (it checks every row against the source and writes nothing); beside
//! a naive synchronous loop doing the same transformation without resume (the floor) and, by
//! a script in the same run, the Python library. Prints source rows per second and ratios.
//!
//! ```sh
//! PYTHON=/path/to/venv/bin/python cargo bench --bench map_by_key
//! ```
//!
//! For peak memory, `MBK_BENCH_ONLY=fresh` or `MBK_BENCH_ONLY=resumed` runs only this crate
//! once (after making the files, outside the measured process for `resumed`), so that
//! `/usr/bin/time -v` measures the crate alone; `MBK_BENCH_ROWS` and `MBK_BENCH_KEYS` set the
//! size:
//!
//! ```sh
//! cargo bench --bench map_by_key --no-run
//! B=$(ls -t target/release/deps/map_by_key-* | grep -v '\.d$' | head -1)
//! export MBK_BENCH_ROWS=2000000 MBK_BENCH_KEYS=1000
//! MBK_BENCH_ONLY=fresh /usr/bin/time -v $B --bench      # a fresh run (after making the source)
//! MBK_BENCH_ONLY=resumed /usr/bin/time -v $B --bench    # cuts that output in half, resumes
//! ```

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use abstractions::jsonl::{Options, map_by_key_jsonl_file};
use common::{median, run_python};
use serde_json::{Map, Value, json};

const KEEP: [&str; 2] = ["id", "text"];

/// Changes whenever `make_source` does, so that a source made by an older bench is not reused.
const SOURCE_VERSION: u32 = 1;

/// The source: rows of about 200 bytes; key `i * 7919 % keys`, so a key's rows are scattered.
fn make_source(path: &Path, rows: u64, keys: u64) {
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    for id in 0..rows {
        let key = id * 7919 % keys;
        writeln!(
            out,
            "{{\"id\":{id},\"key\":\"customer-{key:06}\",\"text\":\"row {id} of the benchmark \
             source, with some more words\",\"score\":{},\"tags\":[\"alpha\",\"beta\",\"gamma\"],\
             \"discarded\":\"lorem ipsum dolor sit amet, consectetur\"}}",
            (id % 1000) as f64 / 8.0
        )
        .unwrap();
    }
    out.flush().unwrap();
}

/// The instant `f`: a function of the row.
fn enrich(row: &Map<String, Value>) -> Value {
    let key = row["key"].as_str().unwrap();
    json!({ "segment": format!("segment of {key}"), "key_len": key.len(), "score2": row["score"] })
}

async fn f(row: Map<String, Value>) -> Result<Value, std::io::Error> {
    Ok(enrich(&row))
}

fn side(dst: &Path) -> PathBuf {
    let mut name = dst.as_os_str().to_owned();
    name.push(".map-by-key");
    name.into()
}

fn crate_run(src: &Path, dst: &Path) -> f64 {
    let start = Instant::now();
    smol::block_on(map_by_key_jsonl_file(
        src,
        dst,
        f,
        "key",
        16,
        &KEEP,
        Options::new(),
    ))
    .unwrap();
    start.elapsed().as_secs_f64()
}

/// This crate, fresh: seconds.
fn crate_fresh(src: &Path, dst: &Path) -> f64 {
    let _ = std::fs::remove_file(dst);
    let _ = std::fs::remove_file(side(dst));
    crate_run(src, dst)
}

/// Cuts a finished output after half its rows (streaming, so it costs no memory).
fn cut_in_half(dst: &Path) {
    let file = std::fs::File::open(dst).unwrap();
    let mut lines = 0u64;
    let mut len = 0u64;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut line = Vec::new();
    let mut offsets = Vec::new();
    while reader.read_until(b'\n', &mut line).unwrap() > 0 {
        len += line.len() as u64;
        lines += 1;
        // Every 1000th end of line, to find the middle without holding every offset.
        if lines.is_multiple_of(1000) {
            offsets.push((lines, len));
        }
        line.clear();
    }
    let half = offsets
        .iter()
        .find(|(n, _)| *n >= lines / 2)
        .map_or(0, |(_, len)| *len);
    std::fs::OpenOptions::new()
        .write(true)
        .open(dst)
        .unwrap()
        .set_len(half)
        .unwrap();
}

/// This crate, resumed from an output cut in half: seconds of the resuming run.
fn crate_resumed(src: &Path, dst: &Path) -> f64 {
    cut_in_half(dst);
    crate_run(src, dst)
}

/// The floor: the same transformation, synchronous, no resume.
fn naive_run(src: &Path, dst: &Path) -> f64 {
    let start = Instant::now();
    let input = BufReader::with_capacity(1 << 20, std::fs::File::open(src).unwrap());
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(dst).unwrap());
    let mut cache: HashMap<String, Map<String, Value>> = HashMap::new();
    for line in input.lines() {
        let row: Map<String, Value> = serde_json::from_str(&line.unwrap()).unwrap();
        let key = row["key"].to_string();
        let result = cache.entry(key).or_insert_with(|| match enrich(&row) {
            Value::Object(result) => result,
            _ => unreachable!(),
        });
        let mut output = Map::new();
        output.insert("key".into(), row["key"].clone());
        for column in KEEP {
            output.insert(column.into(), row[column].clone());
        }
        for (name, value) in result.iter() {
            output.insert(name.clone(), value.clone());
        }
        serde_json::to_writer(&mut out, &output).unwrap();
        out.write_all(b"\n").unwrap();
    }
    out.flush().unwrap();
    start.elapsed().as_secs_f64()
}

/// The Python library, if `PYTHON` (or python3) has it: seconds of a fresh run.
fn python_run(src: &Path, dst: &Path) -> Option<f64> {
    let out = run_python("map_by_key_bench.py", &[src.as_os_str(), dst.as_os_str()])?;
    out.split_whitespace().nth(3)?.parse().ok()
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|n| n.parse().ok())
}

fn main() {
    let bench = std::env::args().any(|arg| arg == "--bench");
    let rows = env_u64("MBK_BENCH_ROWS").unwrap_or(if bench { 1_000_000 } else { 2_000 });
    let keys = env_u64("MBK_BENCH_KEYS").unwrap_or(if bench { 10_000 } else { 100 });
    let dir: PathBuf = Path::new(env!("CARGO_TARGET_TMPDIR")).join("map-by-key-bench");
    std::fs::create_dir_all(&dir).unwrap();
    // The source depends on the size alone: a run reuses the one an earlier run made.
    let src = dir.join(format!("src-v{SOURCE_VERSION}-{rows}-{keys}.jsonl"));
    let dst = dir.join("dst.jsonl");
    if !src.exists() {
        let part = dir.join("src.part");
        make_source(&part, rows, keys);
        std::fs::rename(&part, &src).unwrap();
    }
    let rate = |seconds: f64| rows as f64 / seconds;
    match std::env::var("MBK_BENCH_ONLY").as_deref() {
        Ok("fresh") => {
            let seconds = crate_fresh(&src, &dst);
            println!(
                "fresh: {rows} rows in {seconds:.2} s: {:.0} rows/s",
                rate(seconds)
            );
            return;
        }
        Ok("resumed") => {
            let seconds = crate_resumed(&src, &dst);
            println!(
                "resumed: {rows} rows in {seconds:.2} s: {:.0} rows/s",
                rate(seconds)
            );
            return;
        }
        _ => {}
    }
    let rounds = if bench { 5 } else { 1 };
    let (mut fresh, mut resumed, mut done, mut floor) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let naive = dir.join("naive.jsonl");
    for _ in 0..rounds {
        fresh.push(crate_fresh(&src, &dst));
        resumed.push(crate_resumed(&src, &dst));
        done.push(crate_run(&src, &dst));
        floor.push(naive_run(&src, &naive));
    }
    // The output is right: the same rows as the naive loop's, in order.
    let ours = BufReader::new(std::fs::File::open(&dst).unwrap()).lines();
    let theirs = BufReader::new(std::fs::File::open(&naive).unwrap()).lines();
    let mut count = 0u64;
    for (a, b) in ours.zip(theirs) {
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(
            serde_json::from_str::<Value>(&a).unwrap(),
            serde_json::from_str::<Value>(&b).unwrap()
        );
        count += 1;
    }
    assert_eq!(count, rows);
    let (fresh, resumed, done, floor) =
        (median(fresh), median(resumed), median(done), median(floor));
    let python = if bench {
        python_run(&src, &dir.join("python.jsonl"))
    } else {
        None
    };
    println!(
        "map_by_key_jsonl_file, {rows} source rows of ~{} bytes, {keys} keys, instant f, \
         num_concurrent 16",
        std::fs::metadata(&src).unwrap().len() / rows
    );
    println!();
    println!("| implementation | source rows/s | vs the naive loop | vs the Python |");
    println!("| --- | ---: | ---: | ---: |");
    let python_ratio = |seconds: f64| match python {
        Some(python) => format!("{:.1}x", python / seconds),
        None => "-".into(),
    };
    println!(
        "| this crate, fresh (median of {rounds}) | {:.0} | {:.2}x | {} |",
        rate(fresh),
        floor / fresh,
        python_ratio(fresh)
    );
    println!(
        "| this crate, resumed from half done (median of {rounds}) | {:.0} | {:.2}x | {} |",
        rate(resumed),
        floor / resumed,
        python_ratio(resumed)
    );
    println!(
        "| this crate, re-run over a finished output (median of {rounds}) | {:.0} | {:.2}x | {} |",
        rate(done),
        floor / done,
        python_ratio(done)
    );
    println!(
        "| naive sync loop, no resume (median of {rounds}) | {:.0} | 1.00x | {} |",
        rate(floor),
        python_ratio(floor)
    );
    match python {
        Some(seconds) => println!(
            "| Python abstractions 0.9.0, fresh (one run) | {:.0} | {:.3}x | 1.0x |",
            rate(seconds),
            floor / seconds
        ),
        None => println!("| Python abstractions 0.9.0 | not run (set PYTHON) | | |"),
    }
}

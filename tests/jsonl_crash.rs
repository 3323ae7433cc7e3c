//! Crash tests: a child process generates rows and is killed with SIGKILL at random moments,
//! again and again, or aborts at named points (ABSTRACTIONS_ABORT_AT); then a run to the end
//! must leave exactly `KEY_COUNT` rows per key, every line valid JSON, no duplicate, and the
//! same multiset of rows as an uninterrupted run.
//!
//! `CRASH_KILLS=200 cargo test --release --test jsonl_crash` runs a longer series.

mod common;

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use abstractions::jsonl::{Key, Options, run_bounded_create_or_resume_jsonl_file};
use common::crash;
use futures::stream::{self, StreamExt};
use serde_json::{Value, json};

const KEYS: usize = 200;
const KEY_COUNT: usize = 3;

/// The row for a key: it depends on the key alone, so runs agree on the multiset.
fn row(key: &str) -> Value {
    let n: usize = key[1..].parse().unwrap();
    json!({ "key": key, "n": n, "text": "lorem ipsum ".repeat(1 + n % 7) })
}

fn key_names() -> Vec<String> {
    (0..KEYS).map(|i| format!("k{i}")).collect()
}

/// The child: generate the file named by ABSTRACTIONS_CRASH_CHILD, with random small delays.
/// As a test of this binary it does nothing unless that variable is set.
#[test]
fn crash_child() {
    let Ok(path) = std::env::var("ABSTRACTIONS_CRASH_CHILD") else {
        return;
    };
    crash::child_runtime().block_on(async move {
        let generate = |missing: Vec<(Key, usize)>| {
            stream::iter(missing)
                .flat_map(|(key, count)| stream::iter(std::iter::repeat_n(key, count)))
                .map(|key| async move {
                    common::sleep(Duration::from_micros(fastrand::u64(0..5000))).await;
                    Ok::<_, io::Error>(row(key.as_str().unwrap()))
                })
        };
        run_bounded_create_or_resume_jsonl_file(
            &path,
            "key",
            KEY_COUNT,
            key_names(),
            generate,
            8,
            Options::new(),
        )
        .await
        .unwrap();
    });
}

/// Starts the child on `path`, on runtime number `run % 3`, with a fault point armed or not.
fn spawn_child(path: &Path, run: usize, abort_at: Option<&str>) -> std::process::Child {
    crash::child_command("crash_child", run, abort_at)
        .env("ABSTRACTIONS_CRASH_CHILD", path)
        .spawn()
        .unwrap()
}

fn run_child(path: &Path, run: usize, abort_at: Option<&str>) -> ExitStatus {
    spawn_child(path, run, abort_at).wait().unwrap()
}

/// What must hold at every instant: whole rows, one a line, each a valid row of an expected
/// key, no key past its count, then at most one partial line (no newline) at the end.
/// Returns the rows per key and the length of the partial tail.
fn check_invariant(path: &Path) -> (HashMap<String, usize>, usize) {
    let bytes = std::fs::read(path).unwrap_or_default();
    let whole = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let mut counts: HashMap<String, usize> = HashMap::new();
    for line in bytes[..whole]
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
    {
        let value: Value = serde_json::from_slice(line)
            .unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(line)));
        let key = value["key"].as_str().expect("a key").to_owned();
        assert_eq!(value, row(&key), "a row was changed");
        let count = counts.entry(key.clone()).or_default();
        *count += 1;
        assert!(
            *count <= KEY_COUNT,
            "{key} has more than {KEY_COUNT} rows: a duplicate"
        );
    }
    (counts, bytes.len() - whole)
}

/// What must hold at the end: exactly the file an uninterrupted run writes, up to order.
fn check_finished(path: &Path) {
    let (counts, tail) = check_invariant(path);
    assert_eq!(tail, 0, "a partial line is left at the end");
    assert_eq!(counts.len(), KEYS);
    assert!(counts.values().all(|&n| n == KEY_COUNT), "{counts:?}");
    let mut lines: Vec<String> = std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    lines.sort();
    let mut expected: Vec<String> = key_names()
        .iter()
        .flat_map(|k| std::iter::repeat_n(row(k).to_string(), KEY_COUNT))
        .collect();
    expected.sort();
    assert_eq!(lines, expected);
}

fn temp_path() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.jsonl");
    (dir, path)
}

#[test]
fn random_sigkills_then_a_full_run() {
    let kills: usize = std::env::var("CRASH_KILLS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20);
    common::with_watchdog("random_sigkills", move || {
        let (_dir, path) = temp_path();
        let (mut torn_seen, mut mid_run) = (0, 0);
        let mut rows_before = 0;
        for run in 0..kills {
            if rows_before == KEYS * KEY_COUNT {
                // Finished: start again, so that every kill can land in the middle of a run.
                std::fs::remove_file(&path).unwrap();
            }
            let len_before = std::fs::metadata(&path).map_or(0, |m| m.len());
            let mut child = spawn_child(&path, run, None);
            // Timed from the child's first write.
            let written = || std::fs::metadata(&path).map_or(0, |m| m.len()) > len_before;
            let delay = Duration::from_micros(fastrand::u64(0..40_000));
            crash::kill_when_at_work(&mut child, written, delay);
            let (counts, tail) = check_invariant(&path);
            let rows: usize = counts.values().sum();
            torn_seen += usize::from(tail > 0);
            mid_run += usize::from(rows > rows_before && rows < KEYS * KEY_COUNT);
            rows_before = rows;
        }
        assert!(run_child(&path, kills, None).success());
        check_finished(&path);
        eprintln!(
            "{kills} kills: {mid_run} in the middle of a run, {torn_seen} left a partial line"
        );
        // The kills must land while rows are being written, or this test proves little.
        assert!(
            mid_run * 4 >= kills,
            "only {mid_run} of {kills} kills hit a running job"
        );
    });
}

#[test]
fn abort_in_the_middle_of_a_write() {
    common::with_watchdog("partial_write", || {
        let (_dir, path) = temp_path();
        let status = run_child(&path, 0, Some("partial-write"));
        assert!(!status.success());
        let (_, tail) = check_invariant(&path);
        assert!(tail > 0, "the write was not torn");
        for run in 1..3 {
            assert!(run_child(&path, run, None).success());
            check_finished(&path);
        }
    });
}

#[test]
fn abort_before_and_after_cutting_the_torn_tail() {
    common::with_watchdog("truncate", || {
        let (_dir, path) = temp_path();
        assert!(!run_child(&path, 0, Some("partial-write")).success());
        let torn = std::fs::read(&path).unwrap();
        assert!(!torn.ends_with(b"\n"));

        // Dies before the cut: nothing changed.
        assert!(!run_child(&path, 1, Some("before-truncate")).success());
        assert_eq!(std::fs::read(&path).unwrap(), torn);

        // Dies right after the cut: the whole rows are there, and only they.
        assert!(!run_child(&path, 2, Some("after-truncate")).success());
        let cut = std::fs::read(&path).unwrap();
        let whole = torn.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        assert_eq!(cut, &torn[..whole]);

        assert!(run_child(&path, 3, None).success());
        check_finished(&path);
    });
}

#[test]
fn killed_at_once_and_after_the_end() {
    common::with_watchdog("edges", || {
        let (_dir, path) = temp_path();
        // Killed before it could write anything, then twice after finishing.
        let mut child = spawn_child(&path, 0, None);
        child.kill().unwrap();
        child.wait().unwrap();
        check_invariant(&path);
        for run in 1..4 {
            assert!(run_child(&path, run, None).success());
            check_finished(&path);
        }
    });
}

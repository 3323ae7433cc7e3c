//! Crash tests of `flatmap_jsonl_file`: a child process is killed with SIGKILL at random
//! moments or aborts at named points (ABSTRACTIONS_ABORT_AT), including between a row's
//! outputs and its log record and during a rewrite; a run to the end must then leave the
//! output one uninterrupted run writes, byte for byte, and no row logged as done may be
//! computed again.
//!
//! `CRASH_KILLS=200 cargo test --release --test flatmap_crash` runs a longer series.

mod common;

use std::collections::HashSet;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use abstractions::jsonl::{OnError, Options, flatmap_jsonl_file};
use common::crash;
use serde_json::{Map, Value, json};

const ROWS: i64 = 240;

fn source_text() -> String {
    (1..=ROWS).map(|i| format!("{{\"id\":{i}}}\n")).collect()
}

fn expected() -> String {
    (1..=ROWS)
        .flat_map(|id| (0..id % 3).map(move |j| format!("{{\"id\":{id},\"j\":{j}}}\n")))
        .collect()
}

/// The child: runs the job on the files of ABSTRACTIONS_FLATMAP_CHILD (a folder), logging each
/// call of `f` to calls.log. With ABSTRACTIONS_FLATMAP_FAIL, `f` fails on rows 7 and 100
/// (with `OnError::Report`), to leave holes.
#[test]
fn flatmap_child() {
    let Ok(dir) = std::env::var("ABSTRACTIONS_FLATMAP_CHILD") else {
        return;
    };
    let dir = PathBuf::from(dir);
    let fail = std::env::var("ABSTRACTIONS_FLATMAP_FAIL").is_ok();
    let calls_path = dir.join("calls.log");
    crash::child_runtime().block_on(async move {
        let f = move |row: Map<String, Value>| {
            let calls_path = calls_path.clone();
            async move {
                let id = row["id"].as_i64().unwrap();
                common::sleep(Duration::from_micros(fastrand::u64(0..1500))).await;
                if fail && (id == 7 || id == 100) {
                    return Err(io::Error::other("fails on purpose"));
                }
                let mut calls = std::fs::OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(&calls_path)?;
                writeln!(calls, "{id}")?;
                Ok((0..id % 3)
                    .map(|j| json!({ "id": id, "j": j }))
                    .collect::<Vec<_>>())
            }
        };
        flatmap_jsonl_file(
            dir.join("src.jsonl"),
            dir.join("dst.jsonl"),
            dir.join("dst.log"),
            f,
            6,
            Options::new().on_error(OnError::Report).window(50),
        )
        .await
        .unwrap();
    });
}

fn spawn(dir: &Path, run: usize, abort_at: Option<&str>, fail: bool) -> std::process::Child {
    let mut command = crash::child_command("flatmap_child", run, abort_at);
    command
        .env("ABSTRACTIONS_FLATMAP_CHILD", dir)
        .env_remove("ABSTRACTIONS_FLATMAP_FAIL");
    if fail {
        command.env("ABSTRACTIONS_FLATMAP_FAIL", "1");
    }
    command.spawn().unwrap()
}

fn run_to_end(dir: &Path, run: usize, abort_at: Option<&str>, fail: bool) -> bool {
    spawn(dir, run, abort_at, fail).wait().unwrap().success()
}

/// The rows the log records as done: the log in place, and a rewrite's new log once the
/// rewrite is committed (its new output renamed).
fn logged(dir: &Path) -> HashSet<i64> {
    let committed_rewrite = !dir.join("dst.jsonl.rewrite").exists();
    ["dst.log", "dst.log.rewrite"][..1 + usize::from(committed_rewrite)]
        .iter()
        .flat_map(|name| {
            std::fs::read_to_string(dir.join(name))
                .unwrap_or_default()
                .lines()
                .filter_map(|line| serde_json::from_str::<Value>(line).ok())
                .filter_map(|record| record.get("src_line").and_then(Value::as_i64))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn calls(dir: &Path) -> Vec<i64> {
    std::fs::read_to_string(dir.join("calls.log"))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.parse().ok())
        .collect()
}

/// What must hold at every instant: the output is a prefix of the expected output (whole
/// rows, then at most part of one), unless a rewrite is under way beside it.
fn check_prefix(dir: &Path) {
    let output = std::fs::read_to_string(dir.join("dst.jsonl")).unwrap_or_default();
    let expected = expected();
    let whole = output.rfind('\n').map_or(0, |i| i + 1);
    // Rows of failed rows may be missing (holes), so compare row by row in order.
    let mut wanted = expected.lines();
    for row in output[..whole].lines() {
        assert!(wanted.any(|w| w == row), "unexpected row {row:?}");
    }
}

/// Runs the child to the end and checks the finished output and that no logged row was
/// computed again.
fn finish_and_check(dir: &Path, run: usize) {
    let done = logged(dir);
    let calls_before = calls(dir).len();
    assert!(run_to_end(dir, run, None, false));
    let output = std::fs::read_to_string(dir.join("dst.jsonl")).unwrap();
    assert!(
        output == expected(),
        "the output differs from an uninterrupted run"
    );
    let again: Vec<i64> = calls(dir)[calls_before..]
        .iter()
        .copied()
        .filter(|id| done.contains(id))
        .collect();
    assert!(
        again.is_empty(),
        "rows logged as done were computed again: {again:?}"
    );
}

fn new_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("src.jsonl"), source_text()).unwrap();
    dir
}

#[test]
fn random_sigkills_then_a_full_run() {
    let kills: usize = std::env::var("CRASH_KILLS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20);
    common::with_watchdog("flatmap_sigkills", move || {
        let dir = new_dir();
        let mut mid_run = 0;
        for run in 0..kills {
            let output = std::fs::read_to_string(dir.path().join("dst.jsonl")).unwrap_or_default();
            if output == expected() {
                // Finished: start again, so that every kill can land in the middle of a run.
                // (A kill between the two renames of a rewrite can leave `dst.log.rewrite`.)
                for entry in std::fs::read_dir(dir.path()).unwrap() {
                    let path = entry.unwrap().path();
                    if path.file_name().unwrap() != "src.jsonl" {
                        std::fs::remove_file(path).unwrap();
                    }
                }
            }
            let calls_before = calls(dir.path()).len();
            // Some runs fail on two rows, so that later runs rewrite.
            let mut child = spawn(dir.path(), run, None, run % 4 == 1);
            // Timed from the child's first call of `f`.
            let called = || calls(dir.path()).len() > calls_before;
            let delay = Duration::from_micros(fastrand::u64(0..40_000));
            crash::kill_when_at_work(&mut child, called, delay);
            check_prefix(dir.path());
            let output = std::fs::read_to_string(dir.path().join("dst.jsonl")).unwrap_or_default();
            mid_run += usize::from(calls(dir.path()).len() > calls_before && output != expected());
        }
        finish_and_check(dir.path(), kills);
        eprintln!("{kills} kills: {mid_run} in the middle of a run");
        // The kills must land while rows are being made, or this test proves little.
        assert!(
            mid_run * 4 >= kills,
            "only {mid_run} of {kills} kills hit a running job"
        );
    });
}

#[test]
fn aborts_at_named_points() {
    common::with_watchdog("flatmap_points", || {
        for point in ["partial-write", "before-log"] {
            let dir = new_dir();
            assert!(!run_to_end(dir.path(), 0, Some(point), false), "{point}");
            check_prefix(dir.path());
            finish_and_check(dir.path(), 1);
        }
        // An output longer than its log (rows written, not logged) and torn, then aborts
        // around its cut.
        let dir = new_dir();
        assert!(run_to_end(dir.path(), 0, None, false));
        let log = std::fs::read_to_string(dir.path().join("dst.log")).unwrap();
        let kept: String = log.lines().take(11).map(|l| format!("{l}\n")).collect();
        std::fs::write(dir.path().join("dst.log"), kept).unwrap();
        let mut torn = std::fs::read(dir.path().join("dst.jsonl")).unwrap();
        torn.extend_from_slice(b"{\"id\":");
        std::fs::write(dir.path().join("dst.jsonl"), &torn).unwrap();
        assert!(!run_to_end(dir.path(), 1, Some("before-truncate"), false));
        assert_eq!(std::fs::read(dir.path().join("dst.jsonl")).unwrap(), torn);
        assert!(!run_to_end(dir.path(), 0, Some("after-truncate"), false));
        check_prefix(dir.path());
        let cut = std::fs::read(dir.path().join("dst.jsonl")).unwrap();
        assert!(cut.len() < torn.len() && cut.ends_with(b"\n"));
        finish_and_check(dir.path(), 2);
        // A rewrite (rows failed), then aborts at each point of the rewrite.
        for point in [
            "before-rename",
            "between-renames",
            "after-rename",
            "partial-write",
        ] {
            let dir = new_dir();
            assert!(run_to_end(dir.path(), 0, None, true));
            assert!(!run_to_end(dir.path(), 1, Some(point), false), "{point}");
            finish_and_check(dir.path(), 2);
        }
    });
}

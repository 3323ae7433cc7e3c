//! Crash tests of `map_by_key_jsonl_file`: a child process is killed with SIGKILL at random
//! moments or aborts at named points (ABSTRACTIONS_ABORT_AT), including before and after the
//! cut of a torn tail and during a rewrite (runs where `f` fails on some keys leave holes that
//! a later run fills by rewriting the output); a run to the end must then leave the output one
//! uninterrupted run writes, byte for byte, and no run may call `f` for a key whose result was
//! saved (in the output or in the side file) before it started.
//!
//! `CRASH_KILLS=200 cargo test --release --test map_by_key_crash` runs a longer series.

mod common;

use std::collections::HashSet;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use abstractions::jsonl::{OnError, Options, map_by_key_jsonl_file};
use common::crash;
use serde_json::{Map, Value, json};

const ROWS: u64 = 400;
const KEYS: u64 = 60;
/// The keys `f` fails on in a failing run.
const FAILING: [u64; 3] = [3, 17, 41];

/// The key number of source row `i`: keys come back in a scattered order.
fn key_number(i: u64) -> u64 {
    (i * 7 + i / KEYS) % KEYS
}

/// The key value of key number `n`: numbers and strings.
fn key_value(n: u64) -> Value {
    if n.is_multiple_of(3) {
        json!(n)
    } else {
        json!(format!("k{n}"))
    }
}

fn source_text() -> String {
    (0..ROWS)
        .map(|i| {
            let n = key_number(i);
            format!(
                "{{\"i\":{i},\"key\":{},\"drop\":\"x\",\"t\":\"café {i}\"}}\n",
                key_value(n)
            )
        })
        .collect()
}

/// `f`'s result for key number `n`; for every fifth key it replaces the kept column `i`.
fn result(n: u64) -> Value {
    if n.is_multiple_of(5) {
        json!({ "i": -1, "r": n * 2, "s": "é".repeat((n % 4) as usize) })
    } else {
        json!({ "r": n * 2, "s": "é".repeat((n % 4) as usize) })
    }
}

/// The output of one uninterrupted run, written out by hand.
fn expected() -> String {
    (0..ROWS)
        .map(|i| {
            let n = key_number(i);
            let kept_i = if n.is_multiple_of(5) { -1 } else { i as i64 };
            format!(
                "{{\"key\":{},\"i\":{kept_i},\"t\":\"café {i}\",\"r\":{},\"s\":{}}}\n",
                key_value(n),
                n * 2,
                json!("é".repeat((n % 4) as usize))
            )
        })
        .collect()
}

/// The child: runs the job on the files of ABSTRACTIONS_MBK_CHILD (a folder), logging each
/// call of `f` to calls.log. With ABSTRACTIONS_MBK_FAIL, `f` fails on the keys of `FAILING`
/// (with `OnError::Report`), to leave holes that a later run must fill by a rewrite.
#[test]
fn map_by_key_child() {
    let Ok(dir) = std::env::var("ABSTRACTIONS_MBK_CHILD") else {
        return;
    };
    let dir = PathBuf::from(dir);
    let fail = std::env::var("ABSTRACTIONS_MBK_FAIL").is_ok();
    let calls_path = dir.join("calls.log");
    crash::child_runtime().block_on(async move {
        let f = move |row: Map<String, Value>| {
            let calls_path = calls_path.clone();
            async move {
                let key = &row["key"];
                let n = match key {
                    Value::String(s) => s[1..].parse().unwrap(),
                    _ => key.as_u64().unwrap(),
                };
                // One write call per record, so a kill cannot tear it.
                std::fs::OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(&calls_path)?
                    .write_all(format!("{key}\n").as_bytes())?;
                if FAILING.contains(&n) {
                    if fail {
                        return Err(io::Error::other("fails on purpose"));
                    }
                    // Slow when retried, so that kills land in the rewrite too.
                    common::sleep(Duration::from_micros(fastrand::u64(5_000..30_000))).await;
                }
                common::sleep(Duration::from_micros(fastrand::u64(0..3000))).await;
                Ok(result(n))
            }
        };
        map_by_key_jsonl_file(
            dir.join("src.jsonl"),
            dir.join("dst.jsonl"),
            f,
            "key",
            6,
            &["i", "t"],
            Options::new().on_error(OnError::Report).window(50),
        )
        .await
        .unwrap();
    });
}

fn spawn(dir: &Path, run: usize, abort_at: Option<&str>, fail: bool) -> std::process::Child {
    let mut command = crash::child_command("map_by_key_child", run, abort_at);
    command
        .env("ABSTRACTIONS_MBK_CHILD", dir)
        .env_remove("ABSTRACTIONS_MBK_FAIL");
    if fail {
        command.env("ABSTRACTIONS_MBK_FAIL", "1");
    }
    command.spawn().unwrap()
}

fn whole_lines(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let whole = text.rfind('\n').map_or(0, |i| i + 1);
    text[..whole].lines().map(str::to_owned).collect()
}

/// The keys whose result is saved: in the output's whole rows or in the side file's records.
fn saved_keys(dir: &Path) -> HashSet<String> {
    let output = whole_lines(&dir.join("dst.jsonl"));
    let side = whole_lines(&dir.join("dst.jsonl.map-by-key"));
    output
        .iter()
        .chain(side.iter().skip(1))
        .map(|line| {
            let row: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{e}: a whole line is not JSON: {line:?}"));
            row["key"].to_string()
        })
        .collect()
}

fn calls(dir: &Path) -> Vec<String> {
    whole_lines(&dir.join("calls.log"))
}

/// Runs the child (killed `kill_after` once it is at work, or to its end) and checks that it
/// called `f` for no key saved before it started. Returns whether it succeeded.
fn run_checked(
    dir: &Path,
    run: usize,
    abort_at: Option<&str>,
    fail: bool,
    kill_after: Option<Duration>,
) -> bool {
    let saved = saved_keys(dir);
    let calls_before = calls(dir).len();
    let mut child = spawn(dir, run, abort_at, fail);
    if let Some(delay) = kill_after {
        // Timed from its first call of `f`.
        let called = || calls(dir).len() > calls_before;
        crash::kill_when_at_work(&mut child, called, delay);
    }
    let success = child.wait().unwrap().success();
    let again: Vec<String> = calls(dir)[calls_before..]
        .iter()
        .filter(|key| saved.contains(*key))
        .cloned()
        .collect();
    assert!(
        again.is_empty(),
        "run {run} ({abort_at:?}) called f again for saved keys {again:?}"
    );
    success
}

/// What must hold at every instant: the output's whole rows are rows of the expected output,
/// in its order (rows of failed keys may be missing), and the partial tail, if any, is the
/// start of a row.
fn check_invariant(dir: &Path) -> (usize, bool) {
    let output = std::fs::read_to_string(dir.join("dst.jsonl")).unwrap_or_default();
    let expected = expected();
    let whole = output.rfind('\n').map_or(0, |i| i + 1);
    let mut wanted = expected.lines();
    let mut rows = 0;
    for row in output[..whole].lines() {
        assert!(wanted.any(|w| w == row), "unexpected row {row:?}");
        rows += 1;
    }
    let tail = &output[whole..];
    assert!(
        tail.is_empty() || expected.lines().any(|w| w.starts_with(tail)),
        "the partial tail {tail:?} is not the start of a row"
    );
    (rows, !tail.is_empty())
}

/// Runs the child to the end and checks that the output is the one of an uninterrupted run.
fn finish_and_check(dir: &Path, run: usize) {
    assert!(
        run_checked(dir, run, None, false, None),
        "the full run failed"
    );
    let output = std::fs::read_to_string(dir.join("dst.jsonl")).unwrap();
    assert!(
        output == expected(),
        "the output differs from an uninterrupted run"
    );
    assert!(!dir.join("dst.jsonl.rewrite").exists());
}

fn new_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("src.jsonl"), source_text()).unwrap();
    dir
}

#[test]
fn an_uninterrupted_run_writes_the_expected_output() {
    common::with_watchdog("mbk_reference", || {
        let dir = new_dir();
        finish_and_check(dir.path(), 0);
        let calls = calls(dir.path());
        assert_eq!(calls.len() as u64, KEYS, "one call per key");
    });
}

#[test]
fn random_sigkills_then_a_full_run() {
    let kills: usize = std::env::var("CRASH_KILLS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20);
    common::with_watchdog("mbk_sigkills", move || {
        let dir = new_dir();
        let dir = dir.path();
        let (mut mid_run, mut in_rewrite, mut torn) = (0, 0, 0);
        let mut rows_before = 0;
        for run in 0..kills {
            if rows_before == ROWS as usize {
                // Finished: start again, so that kills keep landing in the middle of runs.
                for name in ["dst.jsonl", "dst.jsonl.map-by-key", "calls.log"] {
                    std::fs::remove_file(dir.join(name)).unwrap();
                }
            }
            // Some runs fail on a few keys, so that later runs rewrite the output.
            let delay = Duration::from_micros(fastrand::u64(0..40_000));
            run_checked(dir, run, None, run % 4 == 1, Some(delay));
            in_rewrite += usize::from(dir.join("dst.jsonl.rewrite").exists());
            let (rows, tail) = check_invariant(dir);
            torn += usize::from(tail);
            mid_run += usize::from(rows != rows_before && rows < ROWS as usize);
            rows_before = rows;
        }
        finish_and_check(dir, kills);
        eprintln!(
            "{kills} kills: {mid_run} changed an unfinished output, {in_rewrite} landed in a \
             rewrite, {torn} left a partial line"
        );
        // The kills must land while rows are being written, or this test proves little.
        assert!(
            mid_run * 10 >= kills,
            "only {mid_run} of {kills} kills hit a running job"
        );
    });
}

#[test]
fn aborts_at_named_points() {
    common::with_watchdog("mbk_points", || {
        // A torn write: the first write is the side file's header.
        let dir = new_dir();
        assert!(!run_checked(
            dir.path(),
            0,
            Some("partial-write"),
            false,
            None
        ));
        check_invariant(dir.path());
        finish_and_check(dir.path(), 1);

        // A torn output: the rows of a finished run but the last, then part of one; then
        // aborts just before and just after its cut.
        let dir = new_dir();
        let dst = dir.path().join("dst.jsonl");
        assert!(run_checked(dir.path(), 0, None, false, None));
        let full = std::fs::read(&dst).unwrap();
        let last = full[..full.len() - 1]
            .iter()
            .rposition(|&b| b == b'\n')
            .unwrap()
            + 1;
        let torn = &full[..last + 10];
        std::fs::write(&dst, torn).unwrap();
        assert!(!run_checked(
            dir.path(),
            1,
            Some("before-truncate"),
            false,
            None
        ));
        assert_eq!(std::fs::read(&dst).unwrap(), torn);
        assert!(!run_checked(
            dir.path(),
            2,
            Some("after-truncate"),
            false,
            None
        ));
        assert_eq!(std::fs::read(&dst).unwrap(), &full[..last]);
        let calls_before = calls(dir.path()).len();
        finish_and_check(dir.path(), 0);
        assert_eq!(
            calls(dir.path()).len(),
            calls_before,
            "a saved key was called"
        );

        // Holes (f failed on some keys), then aborts at each point of the rewrite that fills
        // them.
        for point in ["partial-write", "before-rename", "after-rename"] {
            let dir = new_dir();
            let dst = dir.path().join("dst.jsonl");
            assert!(run_checked(dir.path(), 0, None, true, None));
            let with_holes = std::fs::read_to_string(&dst).unwrap();
            let (rows, _) = check_invariant(dir.path());
            assert!(rows < ROWS as usize, "no holes");
            assert!(
                !run_checked(dir.path(), 1, Some(point), false, None),
                "{point}"
            );
            match point {
                // The old output stays until the rename.
                "partial-write" | "before-rename" => {
                    assert_eq!(
                        std::fs::read_to_string(&dst).unwrap(),
                        with_holes,
                        "{point}"
                    );
                    assert!(dir.path().join("dst.jsonl.rewrite").exists(), "{point}");
                }
                _ => assert_eq!(std::fs::read_to_string(&dst).unwrap(), expected()),
            }
            finish_and_check(dir.path(), 2);
            // Each key that never failed was called once in all.
            let calls = calls(dir.path());
            for n in (0..KEYS).filter(|n| !FAILING.contains(n)) {
                let key = key_value(n).to_string();
                let count = calls.iter().filter(|c| **c == key).count();
                assert_eq!(count, 1, "{point}: {key} called {count} times");
            }
        }
    });
}

//! Tests of `create_or_resume_jsonl_file` and `run_bounded_create_or_resume_jsonl_file`:
//! fresh runs, resumes, torn tails, corruption, on_error, generation errors, progress, the
//! graceful stop, the file lock, and files begun by the Python library.

mod common;

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use abstractions::StopHandle;
use abstractions::jsonl::{
    ErrorKind, Key, OnError, Options, Progress, create_or_resume_jsonl_file,
    run_bounded_create_or_resume_jsonl_file,
};
use common::{Concurrency, on_all_runtimes};
use futures::stream::{self, Stream, StreamExt};
use futures::{Future, FutureExt};
use serde_json::{Value, json};

/// The row every test generator makes for a key: it depends on the key alone.
fn row(key: &Key) -> Value {
    json!({ "key": key, "text": format!("row of {key}") })
}

/// A stream of row futures.
type Rows = std::pin::Pin<Box<dyn Stream<Item = futures::future::Ready<io::Result<Value>>> + Send>>;

/// What an error kind must be.
type Check = fn(&ErrorKind) -> bool;

/// A generator making `count` rows per asked key, recording what it was asked.
fn generator(asked: Arc<Mutex<Vec<(Key, usize)>>>) -> impl FnOnce(Vec<(Key, usize)>) -> Rows {
    move |missing| {
        asked.lock().unwrap().extend(missing.iter().cloned());
        stream::iter(missing)
            .flat_map(|(key, count)| stream::iter(std::iter::repeat_n(key, count)))
            .map(|key| futures::future::ready(Ok(row(&key))))
            .boxed()
    }
}

fn simple(
    missing: Vec<(Key, usize)>,
) -> impl Stream<Item = impl Future<Output = io::Result<Value>>> {
    stream::iter(missing)
        .flat_map(|(key, count)| stream::iter(std::iter::repeat_n(key, count)))
        .map(|key| async move { Ok(row(&key)) })
}

fn temp_file(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    (dir, path)
}

/// Rows per key of a finished file, checking every line is a valid JSON object ending in \n.
fn count_keys(path: &Path) -> HashMap<String, usize> {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.is_empty() || text.ends_with('\n'), "no final newline");
    let mut counts = HashMap::new();
    for line in text.lines() {
        let row: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
        *counts.entry(row["key"].to_string()).or_insert(0) += 1;
    }
    counts
}

fn keys(names: &[&str]) -> Vec<Key> {
    names.iter().map(|&name| Key::from(name)).collect()
}

#[test]
fn fresh_run_writes_key_count_rows_per_key() {
    on_all_runtimes(|_| async {
        let (_dir, path) = temp_file("out.jsonl");
        let asked = Arc::new(Mutex::new(Vec::new()));
        let report = create_or_resume_jsonl_file(
            &path,
            "key",
            2,
            ["a", "b", "c"],
            generator(asked.clone()),
            Options::new(),
        )
        .await
        .unwrap();
        assert_eq!(report.rows_written, 6);
        assert_eq!(report.rows_resumed, 0);
        assert_eq!(report.rows_missing, 0);
        assert!(!report.stopped);
        assert_eq!(
            *asked.lock().unwrap(),
            [("a".into(), 2), ("b".into(), 2), ("c".into(), 2)]
        );
        let text = std::fs::read_to_string(&path).unwrap();
        let expected: String = ["a", "a", "b", "b", "c", "c"]
            .iter()
            .map(|k| format!("{}\n", row(&Key::from(*k))))
            .collect();
        assert_eq!(text, expected);
    });
}

#[test]
fn resume_generates_only_what_is_missing() {
    on_all_runtimes(|_| async {
        let (_dir, path) = temp_file("out.jsonl");
        let existing = format!(
            "{}\n{}\n{}\n",
            row(&"b".into()),
            row(&"a".into()),
            row(&"b".into())
        );
        std::fs::write(&path, &existing).unwrap();
        let asked = Arc::new(Mutex::new(Vec::new()));
        let report = create_or_resume_jsonl_file(
            &path,
            "key",
            2,
            ["a", "b", "c"],
            generator(asked.clone()),
            Options::new(),
        )
        .await
        .unwrap();
        assert_eq!(*asked.lock().unwrap(), [("a".into(), 1), ("c".into(), 2)]);
        assert_eq!(report.rows_resumed, 3);
        assert_eq!(report.rows_written, 3);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with(&existing),
            "the existing rows were changed"
        );
        let counts = count_keys(&path);
        assert_eq!(counts.len(), 3);
        assert!(counts.values().all(|&n| n == 2), "{counts:?}");
        // A finished file: a third run asks for nothing and writes nothing.
        let asked = Arc::new(Mutex::new(Vec::new()));
        let report = create_or_resume_jsonl_file(
            &path,
            "key",
            2,
            ["a", "b", "c"],
            generator(asked.clone()),
            Options::new(),
        )
        .await
        .unwrap();
        assert!(asked.lock().unwrap().is_empty());
        assert_eq!((report.rows_resumed, report.rows_written), (6, 0));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    });
}

#[test]
fn torn_tail_is_cut_and_its_row_generated_again() {
    on_all_runtimes(|_| async {
        for tail in [
            &b"{\"key\":\"a\",\"te"[..],
            &b"\0\0\0\0\0\0\0\0"[..],
            &b"{\"key\":\"a\xff\xfe"[..],
            // Valid JSON without its newline: never acknowledged, so cut too.
            &b"{\"key\":\"a\",\"text\":\"row of \\\"a\\\"\"}"[..],
        ] {
            let (_dir, path) = temp_file("out.jsonl");
            let valid = format!("{}\n", row(&"b".into()));
            let mut bytes = valid.clone().into_bytes();
            bytes.extend_from_slice(tail);
            std::fs::write(&path, &bytes).unwrap();
            let report =
                create_or_resume_jsonl_file(&path, "key", 1, ["a", "b"], simple, Options::new())
                    .await
                    .unwrap();
            assert_eq!(report.torn_bytes, tail.len() as u64);
            assert_eq!(report.rows_written, 1);
            let text = std::fs::read_to_string(&path).unwrap();
            assert_eq!(text, format!("{valid}{}\n", row(&"a".into())));
        }
    });
}

#[test]
fn malformed_line_in_the_middle_is_corruption_and_changes_nothing() {
    on_all_runtimes(|_| async {
        let (_dir, path) = temp_file("out.jsonl");
        let bytes = format!(
            "{}\n{{\"key\": oops}}\n{}\n",
            row(&"a".into()),
            row(&"b".into())
        );
        std::fs::write(&path, &bytes).unwrap();
        let error =
            create_or_resume_jsonl_file(&path, "key", 1, ["a", "b", "c"], simple, Options::new())
                .await
                .unwrap_err();
        assert!(
            matches!(error.kind(), ErrorKind::Corrupt { column: 9 }),
            "{error:?}"
        );
        assert_eq!(error.line(), Some(2));
        assert_eq!(error.path(), Some(path.as_path()));
        assert!(error.to_string().contains(":2:9:"), "{error}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), bytes);
    });
}

#[test]
fn inconsistencies_raise_by_default_and_change_nothing() {
    on_all_runtimes(|_| async {
        let cases: [(&str, Check); 4] = [
            (
                "{\"key\":\"zzz\"}\n",
                |k| matches!(k, ErrorKind::UnexpectedKey { key } if key.as_str() == Some("zzz")),
            ),
            (
                "{\"key\":\"a\"}\n{\"key\":\"a\"}\n",
                |k| matches!(k, ErrorKind::TooManyRows { key, count: 1 } if key.as_str() == Some("a")),
            ),
            (
                "{\"other\":1}\n",
                |k| matches!(k, ErrorKind::MissingKey { column } if column == "key"),
            ),
            ("[1,2]\n", |k| matches!(k, ErrorKind::NotAnObject)),
        ];
        for (existing, expected) in cases {
            let (_dir, path) = temp_file("out.jsonl");
            let bytes = format!("{}\n{existing}", row(&"b".into()));
            std::fs::write(&path, &bytes).unwrap();
            let error =
                create_or_resume_jsonl_file(&path, "key", 1, ["a", "b"], simple, Options::new())
                    .await
                    .unwrap_err();
            assert!(expected(error.kind()), "{existing:?}: {error:?}");
            let last_line = bytes.lines().count() as u64;
            assert_eq!(error.line(), Some(last_line), "{existing:?}");
            assert_eq!(std::fs::read_to_string(&path).unwrap(), bytes);
        }
    });
}

#[test]
fn on_error_report_collects_problems_and_goes_on() {
    on_all_runtimes(|_| async {
        let (_dir, path) = temp_file("out.jsonl");
        let existing = "{\"key\":\"zzz\"}\n{\"key\":\"a\"}\n{\"key\":\"a\"}\n{\"no\":1}\n";
        std::fs::write(&path, existing).unwrap();
        let report = create_or_resume_jsonl_file(
            &path,
            "key",
            1,
            ["a", "b"],
            simple,
            Options::new().on_error(OnError::Report),
        )
        .await
        .unwrap();
        let problems: Vec<(Option<u64>, String)> = report
            .problems
            .iter()
            .map(|e| (e.line(), e.to_string()))
            .collect();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert_eq!(problems[0].0, Some(1));
        assert!(
            problems[0].1.ends_with("key \"zzz\" is not expected"),
            "{problems:?}"
        );
        assert_eq!(problems[1].0, Some(3));
        assert!(
            problems[1].1.contains("more than the 1 rows"),
            "{problems:?}"
        );
        assert_eq!(problems[2].0, Some(4));
        // The offending rows stay; only b was missing.
        assert_eq!(report.rows_written, 1);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, format!("{existing}{}\n", row(&"b".into())));
    });
}

#[test]
fn a_key_given_twice_is_an_error_before_the_file_is_touched() {
    on_all_runtimes(|_| async {
        let (_dir, path) = temp_file("out.jsonl");
        let error =
            create_or_resume_jsonl_file(&path, "key", 1, ["a", "b", "a"], simple, Options::new())
                .await
                .unwrap_err();
        assert!(
            matches!(error.kind(), ErrorKind::DuplicateKey { key } if key.as_str() == Some("a"))
        );
        assert!(!path.exists());
    });
}

#[test]
fn keys_follow_the_crate_rule() {
    on_all_runtimes(|_| async {
        let (_dir, path) = temp_file("out.jsonl");
        // "10" and 10 are two keys; 10.0 in the file is the key 10.
        std::fs::write(&path, "{\"key\": 10.0}\n").unwrap();
        let report = create_or_resume_jsonl_file(
            &path,
            "key",
            1,
            [Key::from(10), Key::from("10")],
            simple,
            Options::new(),
        )
        .await
        .unwrap();
        assert_eq!((report.rows_resumed, report.rows_written), (1, 1));
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text.lines().nth(1).unwrap(),
            row(&Key::from("10")).to_string()
        );
    });
}

#[test]
fn a_failing_task_stops_the_run_keeps_finished_rows_and_a_rerun_finishes() {
    on_all_runtimes(|_| async {
        let (_dir, path) = temp_file("out.jsonl");
        let made = Arc::new(AtomicUsize::new(0));
        let failing = {
            let made = made.clone();
            move |missing: Vec<(Key, usize)>| {
                stream::iter(missing).map(move |(key, _)| {
                    let made = made.clone();
                    async move {
                        if key.as_str() == Some("d") {
                            return Err(io::Error::other("model overloaded"));
                        }
                        made.fetch_add(1, Ordering::SeqCst);
                        Ok(row(&key))
                    }
                })
            }
        };
        let names = ["a", "b", "c", "d", "e", "f"];
        let error = create_or_resume_jsonl_file(&path, "key", 1, names, failing, Options::new())
            .await
            .unwrap_err();
        assert!(matches!(error.kind(), ErrorKind::Generate));
        let source = std::error::Error::source(&error).unwrap();
        assert_eq!(source.to_string(), "model overloaded");
        // One at a time: a, b, c were finished and saved. The slot d freed was refilled
        // before its error came out (e, which finishes at once, and is saved too); nothing
        // after that was pulled.
        assert_eq!(made.load(Ordering::SeqCst), 4);
        assert_eq!(count_keys(&path).len(), 4);
        let asked = Arc::new(Mutex::new(Vec::new()));
        let report = create_or_resume_jsonl_file(
            &path,
            "key",
            1,
            names,
            generator(asked.clone()),
            Options::new(),
        )
        .await
        .unwrap();
        let expected: Vec<(Key, usize)> = keys(&["d", "f"]).into_iter().map(|k| (k, 1)).collect();
        assert_eq!(*asked.lock().unwrap(), expected);
        assert_eq!((report.rows_resumed, report.rows_written), (4, 2));
    });
}

#[test]
fn generated_rows_must_match_what_was_asked() {
    on_all_runtimes(|_| async {
        let cases: [(Value, Check); 3] = [
            (json!({"nokey": 1}), |k| {
                matches!(k, ErrorKind::MissingKey { .. })
            }),
            (json!({"key": "x"}), |k| {
                matches!(k, ErrorKind::UnexpectedKey { .. })
            }),
            (json!({"key": "a"}), |k| {
                matches!(k, ErrorKind::TooManyRows { .. })
            }),
        ];
        for (bad, expected) in cases {
            let (_dir, path) = temp_file("out.jsonl");
            let bad_clone = bad.clone();
            let generate = move |_missing: Vec<(Key, usize)>| {
                stream::iter([row(&"a".into()), bad_clone])
                    .map(|row| async move { Ok::<_, io::Error>(row) })
            };
            let error =
                create_or_resume_jsonl_file(&path, "key", 1, ["a", "b"], generate, Options::new())
                    .await
                    .unwrap_err();
            assert!(expected(error.kind()), "{bad}: {error:?}");
            // The good row before it is saved; the bad one is not written.
            assert_eq!(
                std::fs::read_to_string(&path).unwrap(),
                format!("{}\n", row(&"a".into()))
            );
        }
    });
}

#[test]
fn progress_is_reported_after_each_saved_row() {
    on_all_runtimes(|_| async {
        let (_dir, path) = temp_file("out.jsonl");
        std::fs::write(&path, format!("{}\n", row(&"a".into()))).unwrap();
        let seen: Arc<Mutex<Vec<Progress>>> = Arc::default();
        let path_for_check = path.clone();
        let options = Options::new().progress({
            let seen = seen.clone();
            move |p| {
                // The row is saved when its progress is reported.
                let lines = std::fs::read_to_string(&path_for_check)
                    .unwrap()
                    .lines()
                    .count();
                assert!(lines as u64 >= p.done(), "{p:?} but {lines} lines");
                seen.lock().unwrap().push(p);
            }
        });
        create_or_resume_jsonl_file(&path, "key", 2, ["a", "b", "c"], simple, options)
            .await
            .unwrap();
        let seen = seen.lock().unwrap();
        let done: Vec<u64> = seen.iter().map(|p| p.done()).collect();
        assert_eq!(done, [2, 3, 4, 5, 6]);
        assert!(seen.iter().all(|p| p.total == 6 && p.resumed == 1));
    });
}

#[test]
fn a_row_that_arrives_alone_is_saved_at_once() {
    on_all_runtimes(|_| async {
        let (_dir, path) = temp_file("out.jsonl");
        let path_in_task = path.clone();
        let generate = move |missing: Vec<(Key, usize)>| {
            stream::iter(missing.into_iter().enumerate()).map(move |(i, (key, _))| {
                let path = path_in_task.clone();
                async move {
                    if i == 1 {
                        // While the second row is being made, the first is already on disk.
                        common::sleep(Duration::from_millis(30)).await;
                        let saved = std::fs::read_to_string(&path).unwrap();
                        assert_eq!(saved, format!("{}\n", row(&"a".into())));
                    }
                    Ok::<_, io::Error>(row(&key))
                }
            })
        };
        create_or_resume_jsonl_file(&path, "key", 1, ["a", "b"], generate, Options::new())
            .await
            .unwrap();
        assert_eq!(count_keys(&path).len(), 2);
    });
}

#[test]
fn graceful_stop_finishes_and_saves_what_is_in_flight() {
    on_all_runtimes(|_| async {
        let (_dir, path) = temp_file("out.jsonl");
        let stop = StopHandle::new();
        let started = Arc::new(AtomicUsize::new(0));
        let generate = {
            let stop = stop.clone();
            let started = started.clone();
            move |missing: Vec<(Key, usize)>| {
                stream::iter(missing).map(move |(key, _)| {
                    let n = started.fetch_add(1, Ordering::SeqCst);
                    let stop = stop.clone();
                    async move {
                        if n == 10 {
                            stop.stop(); // as a Ctrl-C handler would
                        }
                        common::sleep(Duration::from_millis(2)).await;
                        Ok::<_, io::Error>(row(&key))
                    }
                })
            }
        };
        let names: Vec<String> = (0..100).map(|i| format!("k{i}")).collect();
        let report = run_bounded_create_or_resume_jsonl_file(
            &path,
            "key",
            1,
            names.clone(),
            generate,
            4,
            Options::new().stop(stop.clone()),
        )
        .await
        .unwrap();
        assert!(report.stopped);
        let started = started.load(Ordering::SeqCst) as u64;
        // Every started task finished and was saved; nothing was started after the stop but
        // what the limit allowed already.
        assert_eq!(report.rows_written, started);
        assert!((11..=15).contains(&started), "{started}");
        assert_eq!(report.rows_missing, 100 - started);
        assert_eq!(count_keys(&path).len() as u64, started);
    });
}

#[test]
fn a_second_writer_fails_at_once_with_locked() {
    on_all_runtimes(|_| async {
        let (_dir, path) = temp_file("out.jsonl");
        let (release_tx, release_rx) = futures::channel::oneshot::channel::<()>();
        let release_rx = release_rx.shared();
        let slow = move |missing: Vec<(Key, usize)>| {
            let release = release_rx.clone();
            stream::iter(missing).map(move |(key, _)| {
                let release = release.clone();
                async move {
                    let _ = release.await;
                    Ok::<_, io::Error>(row(&key))
                }
            })
        };
        let first = create_or_resume_jsonl_file(&path, "key", 1, ["a"], slow, Options::new());
        let second = async {
            common::sleep(Duration::from_millis(20)).await;
            let result =
                create_or_resume_jsonl_file(&path, "key", 1, ["a"], simple, Options::new()).await;
            release_tx.send(()).unwrap();
            result
        };
        let (first, second) = futures::join!(first, second);
        assert_eq!(first.unwrap().rows_written, 1);
        let error = second.unwrap_err();
        assert!(matches!(error.kind(), ErrorKind::Locked), "{error:?}");
        assert!(error.to_string().contains("out.jsonl"), "{error}");
        assert_eq!(count_keys(&path).len(), 1);
    });
}

#[test]
fn run_bounded_form_keeps_at_most_limit_tasks_running() {
    on_all_runtimes(|_| async {
        let (_dir, path) = temp_file("out.jsonl");
        let concurrency = Concurrency::default();
        let generate = {
            let concurrency = concurrency.clone();
            move |missing: Vec<(Key, usize)>| {
                stream::iter(missing)
                    .flat_map(|(key, count)| stream::iter(std::iter::repeat_n(key, count)))
                    .map(move |key| {
                        concurrency.clone().track(async move {
                            common::sleep(Duration::from_millis(1 + fastrand::u64(0..3))).await;
                            Ok::<_, io::Error>(row(&key))
                        })
                    })
            }
        };
        let names: Vec<String> = (0..50).map(|i| format!("k{i}")).collect();
        let report = run_bounded_create_or_resume_jsonl_file(
            &path,
            "key",
            3,
            names,
            generate,
            8,
            Options::new(),
        )
        .await
        .unwrap();
        assert_eq!(report.rows_written, 150);
        let peak = concurrency.peak();
        assert!((2..=8).contains(&peak), "peak {peak}");
        let counts = count_keys(&path);
        assert_eq!(counts.len(), 50);
        assert!(counts.values().all(|&n| n == 3));
    });
}

#[test]
fn zero_limit_panics_at_the_caller() {
    let (_dir, path) = temp_file("out.jsonl");
    let result = std::panic::catch_unwind(|| {
        drop(run_bounded_create_or_resume_jsonl_file(
            &path,
            "key",
            1,
            ["a"],
            simple,
            0,
            Options::new(),
        ))
    });
    let message = result.unwrap_err();
    assert_eq!(
        message.downcast_ref::<&str>(),
        Some(&"`limit` must be greater than 0")
    );
}

/// The fixtures were made by the Python library itself (tests/fixtures/make_fixtures.py):
/// `", "` separators, `\u00e9` escapes, the key `10.0`.
fn python_fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name),
    )
    .unwrap()
}

fn python_keys() -> Vec<Key> {
    vec![Key::from("café"), Key::from(10), Key::from("plain")]
}

fn python_generator(
    missing: Vec<(Key, usize)>,
) -> impl Stream<Item = impl Future<Output = io::Result<Value>>> {
    stream::iter(missing)
        .flat_map(|(key, count)| stream::iter(std::iter::repeat_n(key, count)))
        .map(|key| async move { Ok(json!({"key": key, "index": null, "text": "from rust"})) })
}

#[test]
fn a_file_begun_by_the_python_library_resumes() {
    on_all_runtimes(|_| async {
        for (fixture, torn) in [("python_interrupted.jsonl", 0), ("python_torn.jsonl", 32)] {
            let (_dir, path) = temp_file("out.jsonl");
            let bytes = python_fixture(fixture);
            std::fs::write(&path, &bytes).unwrap();
            let asked = Arc::new(Mutex::new(Vec::new()));
            let generate = {
                let asked = asked.clone();
                move |missing: Vec<(Key, usize)>| {
                    asked.lock().unwrap().extend(missing.iter().cloned());
                    python_generator(missing)
                }
            };
            let report = create_or_resume_jsonl_file(
                &path,
                "key",
                3,
                python_keys(),
                generate,
                Options::new(),
            )
            .await
            .unwrap();
            // café was complete (written as "caf\u00e9"); 10 had one row (written as 10.0).
            assert_eq!(
                *asked.lock().unwrap(),
                [(Key::from(10), 2), (Key::from("plain"), 3)],
                "{fixture}"
            );
            assert_eq!((report.rows_resumed, report.rows_written), (4, 5));
            assert_eq!(report.torn_bytes, torn, "{fixture}");
            let text = std::fs::read(&path).unwrap();
            let kept = bytes.len() - torn as usize;
            assert_eq!(
                &text[..kept],
                &bytes[..kept],
                "{fixture}: the Python rows changed"
            );
            assert_eq!(text.iter().filter(|&&b| b == b'\n').count(), 9);
        }
    });
}

#[test]
fn a_python_nan_row_in_the_middle_is_reported_as_corruption() {
    on_all_runtimes(|_| async {
        let (_dir, path) = temp_file("out.jsonl");
        let bytes = python_fixture("python_nan.jsonl");
        std::fs::write(&path, &bytes).unwrap();
        let error = create_or_resume_jsonl_file(
            &path,
            "key",
            3,
            python_keys(),
            python_generator,
            Options::new(),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(error.kind(), ErrorKind::Corrupt { .. }),
            "{error:?}"
        );
        assert_eq!(error.line(), Some(5));
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
    });
}

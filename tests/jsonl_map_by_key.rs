//! Tests of `map_by_key_jsonl_file`: one call per key, columns and their order, bad input,
//! f's errors, resume without waste (and byte for byte), the window, progress and the stop.

mod common;

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use abstractions::StopHandle;
use abstractions::jsonl::{ErrorKind, OnError, Options, Progress, map_by_key_jsonl_file};
use common::{Concurrency, on_all_runtimes};
use futures::FutureExt;
use serde_json::{Map, Value, json};

type Row = Map<String, Value>;

fn temp_dir() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.jsonl");
    let dst = dir.path().join("dst.jsonl");
    (dir, src, dst)
}

/// Calls per key, counted by the deterministic `f` of these tests.
#[derive(Clone, Default)]
struct Calls(Arc<Mutex<HashMap<String, usize>>>);

impl Calls {
    fn record(&self, key: &Value) {
        *self.0.lock().unwrap().entry(key.to_string()).or_default() += 1;
    }

    fn of(&self, key: &str) -> usize {
        self.0.lock().unwrap().get(key).copied().unwrap_or(0)
    }

    fn total(&self) -> usize {
        self.0.lock().unwrap().values().sum()
    }
}

/// A deterministic `f`: the result depends on the key alone.
fn compute(
    calls: Calls,
) -> impl FnMut(Row) -> futures::future::BoxFuture<'static, io::Result<Value>> {
    failing_on(calls, vec![])
}

fn write_source(path: &Path, keys: &[Value]) {
    let mut text = String::new();
    for (i, key) in keys.iter().enumerate() {
        text.push_str(&json!({ "key": key, "other": i, "drop": "x" }).to_string());
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}

#[test]
fn the_python_docs_example() {
    on_all_runtimes(|_| async {
        let (_dir, src, dst) = temp_dir();
        std::fs::write(
            &src,
            "{ \"key\": 10, \"other\": \"A\", \"discarded\": \"X\" }\n\
             { \"key\": 20, \"other\": \"B\", \"discarded\": \"Y\" }\n\
             { \"key\": 10, \"other\": \"C\", \"discarded\": \"Z\" }\n",
        )
        .unwrap();
        let calls = Calls::default();
        let f = {
            let calls = calls.clone();
            move |row: Row| {
                calls.record(&row["key"]);
                async move {
                    Ok::<_, io::Error>(
                        json!({ "result": row["key"].as_i64().unwrap() + 1, "key": row["key"] }),
                    )
                }
            }
        };
        let report = map_by_key_jsonl_file(&src, &dst, f, "key", 1, &["other"], Options::new())
            .await
            .unwrap();
        assert_eq!((report.calls, calls.total()), (2, 2));
        assert_eq!(
            std::fs::read_to_string(&dst).unwrap(),
            "{\"key\":10,\"other\":\"A\",\"result\":11}\n\
             {\"key\":20,\"other\":\"B\",\"result\":21}\n\
             {\"key\":10,\"other\":\"C\",\"result\":11}\n"
        );
    });
}

#[test]
fn columns_come_in_order_and_f_wins_a_clash_in_place() {
    on_all_runtimes(|_| async {
        let (_dir, src, dst) = temp_dir();
        std::fs::write(
            &src,
            "{\"b\":[1, 2],\"key\":\"caf\\u00e9\",\"a\":1.50,\"z\":0}\n",
        )
        .unwrap();
        #[derive(serde::Serialize)]
        struct Out {
            zz: u8,
            a: &'static str,
            key: &'static str,
            m: Option<u8>,
        }
        let f = |_row: Row| async {
            Ok::<_, io::Error>(Out {
                zz: 1,
                a: "from f",
                key: "café",
                m: None,
            })
        };
        map_by_key_jsonl_file(&src, &dst, f, "key", 1, &["a", "b"], Options::new())
            .await
            .unwrap();
        // Key first (verbatim), then a (f's value, in a's place), b (verbatim), then f's own.
        assert_eq!(
            std::fs::read_to_string(&dst).unwrap(),
            "{\"key\":\"caf\\u00e9\",\"a\":\"from f\",\"b\":[1, 2],\"zz\":1,\"m\":null}\n"
        );
    });
}

#[test]
fn f_is_called_once_per_key_with_at_most_num_concurrent_at_once() {
    on_all_runtimes(|_| async {
        let (_dir, src, dst) = temp_dir();
        let keys: Vec<Value> = (0..300).map(|i| json!(i % 37)).collect();
        write_source(&src, &keys);
        let calls = Calls::default();
        let concurrency = Concurrency::default();
        let f = {
            let (calls, concurrency) = (calls.clone(), concurrency.clone());
            move |row: Row| {
                calls.record(&row["key"]);
                concurrency.clone().track(async move {
                    common::sleep(Duration::from_millis(fastrand::u64(0..3))).await;
                    Ok::<_, io::Error>(json!({ "double": row["key"].as_i64().unwrap() * 2 }))
                })
            }
        };
        let report = map_by_key_jsonl_file(&src, &dst, f, "key", 5, &["other"], Options::new())
            .await
            .unwrap();
        assert_eq!(report.calls, 37);
        assert!((0..37).all(|k| calls.of(&k.to_string()) == 1));
        let peak = concurrency.peak();
        assert!((2..=5).contains(&peak), "peak {peak}");
        // One row per source row, in source order.
        let text = std::fs::read_to_string(&dst).unwrap();
        let rows: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(rows.len(), 300);
        for (i, row) in rows.iter().enumerate() {
            let key = (i % 37) as i64;
            assert_eq!(row, &json!({ "key": key, "other": i, "double": key * 2 }));
        }
    });
}

#[test]
fn bad_input_is_a_typed_error_naming_file_and_line() {
    on_all_runtimes(|_| async {
        type Check = fn(&ErrorKind) -> bool;
        let cases: [(&str, Check); 8] = [
            ("{\"key\": 1, oops}", |k| {
                matches!(k, ErrorKind::Json { column: 12 })
            }),
            ("[1, 2]", |k| matches!(k, ErrorKind::NotAnObject)),
            ("{\"other\": 1}", |k| {
                matches!(k, ErrorKind::MissingKey { .. })
            }),
            (
                "{\"key\": 3}",
                |k| matches!(k, ErrorKind::MissingColumn { column } if column == "other"),
            ),
            ("{\"key\": [1], \"other\": 1}", |k| {
                matches!(k, ErrorKind::InvalidKey)
            }),
            ("{\"key\": \"\\ud800\", \"other\": 1}", |k| {
                matches!(k, ErrorKind::Json { .. })
            }),
            // Plain rows (the fast scan takes them) whose key the key rule refuses.
            // The column is in the line, where the key's value ends.
            ("{\"key\": 1e400, \"other\": 1}", |k| {
                matches!(k, ErrorKind::Json { column: 13 })
            }),
            ("{\"key\": 1e400, \"key\": 1, \"other\": 1}", |k| {
                matches!(k, ErrorKind::Json { .. })
            }),
        ];
        for on_error in [OnError::Raise, OnError::Report] {
            for (bad, expected) in &cases {
                let (_dir, src, dst) = temp_dir();
                std::fs::write(
                    &src,
                    format!("{{\"key\":1,\"other\":0}}\n\n{bad}\n{{\"key\":2,\"other\":0}}\n"),
                )
                .unwrap();
                let calls = Calls::default();
                let error = map_by_key_jsonl_file(
                    &src,
                    &dst,
                    compute(calls.clone()),
                    "key",
                    4,
                    &["other"],
                    Options::new().on_error(on_error),
                )
                .await
                .unwrap_err();
                assert!(expected(error.kind()), "{bad}: {error:?}");
                assert_eq!(error.line(), Some(3), "{bad}");
                assert_eq!(error.path(), Some(src.as_path()));
                // The row before it is saved.
                let text = std::fs::read_to_string(&dst).unwrap();
                assert!(
                    text.starts_with("{\"key\":1,\"other\":0,"),
                    "{bad}: {text:?}"
                );
            }
        }
    });
}

#[test]
fn f_outputs_that_break_the_rules_are_errors() {
    on_all_runtimes(|_| async {
        let (_dir, src, dst) = temp_dir();
        write_source(&src, &[json!(1)]);
        let f = |_row: Row| async { Ok::<_, io::Error>(json!([1, 2])) };
        let error = map_by_key_jsonl_file(&src, &dst, f, "key", 1, &[], Options::new())
            .await
            .unwrap_err();
        assert!(matches!(error.kind(), ErrorKind::NotAnObject), "{error:?}");
        assert_eq!(error.line(), Some(1));

        let (_dir, src, dst) = temp_dir();
        write_source(&src, &[json!(1)]);
        let f = |_row: Row| async { Ok::<_, io::Error>(json!({ "key": 2 })) };
        let error = map_by_key_jsonl_file(&src, &dst, f, "key", 1, &[], Options::new())
            .await
            .unwrap_err();
        assert!(
            matches!(error.kind(), ErrorKind::KeyChanged { key, found }
                if key.as_i64() == Some(1) && found.as_i64() == Some(2)),
            "{error:?}"
        );
        // The same key, written another way (1.0), is no change.
        let (_dir, src, dst) = temp_dir();
        write_source(&src, &[json!(1)]);
        let f = |_row: Row| async { Ok::<_, io::Error>(json!({ "key": 1.0, "v": 1 })) };
        map_by_key_jsonl_file(&src, &dst, f, "key", 1, &[], Options::new())
            .await
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(&dst).unwrap(),
            "{\"key\":1,\"v\":1}\n"
        );
    });
}

/// f fails on the listed keys, counting every call.
fn failing_on(
    calls: Calls,
    fail: Vec<&'static str>,
) -> impl FnMut(Row) -> futures::future::BoxFuture<'static, io::Result<Value>> {
    move |row: Row| {
        let calls = calls.clone();
        let fails = fail.contains(&row["key"].to_string().as_str());
        async move {
            calls.record(&row["key"]);
            if fails {
                return Err(io::Error::other(format!("f failed on {}", row["key"])));
            }
            Ok(json!({ "result": format!("f({})", row["key"]), "len": row.len() }))
        }
        .boxed()
    }
}

#[test]
fn the_python_resume_bug_is_fixed() {
    // Source keys 1, 2, 1; f fails on 2 in the first run only. The Python library then
    // duplicates the last row and never retries 2.
    on_all_runtimes(|_| async {
        let (_dir, src, dst) = temp_dir();
        write_source(&src, &[json!(1), json!(2), json!(1)]);
        let calls = Calls::default();
        let report = map_by_key_jsonl_file(
            &src,
            &dst,
            failing_on(calls.clone(), vec!["2"]),
            "key",
            2,
            &["other"],
            Options::new().on_error(OnError::Report),
        )
        .await
        .unwrap();
        assert_eq!(report.problems.len(), 1);
        assert!(matches!(report.problems[0].kind(), ErrorKind::Generate));
        assert_eq!(report.problems[0].line(), Some(2));
        assert_eq!(report.rows_missing, 1);
        assert_eq!(
            std::fs::read_to_string(&dst).unwrap(),
            "{\"key\":1,\"other\":0,\"len\":3,\"result\":\"f(1)\"}\n{\"key\":1,\"other\":2,\"len\":3,\"result\":\"f(1)\"}\n"
        );
        let report = map_by_key_jsonl_file(
            &src,
            &dst,
            failing_on(calls.clone(), vec![]),
            "key",
            2,
            &["other"],
            Options::new().on_error(OnError::Report),
        )
        .await
        .unwrap();
        assert!(report.problems.is_empty());
        assert_eq!(calls.of("1"), 1, "f(1) was called again");
        assert_eq!(calls.of("2"), 2);
        let expected = "{\"key\":1,\"other\":0,\"len\":3,\"result\":\"f(1)\"}\n\
                        {\"key\":2,\"other\":1,\"len\":3,\"result\":\"f(2)\"}\n\
                        {\"key\":1,\"other\":2,\"len\":3,\"result\":\"f(1)\"}\n";
        assert_eq!(std::fs::read_to_string(&dst).unwrap(), expected);
        // The rewrite left no file behind.
        assert!(!dst.with_extension("jsonl.rewrite").exists());
    });
}

#[test]
fn interrupted_runs_then_a_full_run_write_the_same_bytes() {
    on_all_runtimes(|_| async {
        // The file one uninterrupted run writes.
        let keys: Vec<Value> = (0..200).map(|i| json!((i * 7919) % 23)).collect();
        let (_dir, src, reference) = temp_dir();
        write_source(&src, &keys);
        map_by_key_jsonl_file(
            &src,
            &reference,
            compute(Calls::default()),
            "key",
            4,
            &["other"],
            Options::new(),
        )
        .await
        .unwrap();
        let expected = std::fs::read(&reference).unwrap();

        for seed in 0..8u64 {
            fastrand::seed(seed);
            let dst = src.with_file_name(format!("dst{seed}.jsonl"));
            let calls = Calls::default();
            for _ in 0..4 {
                // Interrupted: dropped after a random number of polls, or f fails on some keys.
                let fail: Vec<&'static str> = ["3", "11", "17"]
                    .into_iter()
                    .filter(|_| fastrand::bool())
                    .collect();
                let run = map_by_key_jsonl_file(
                    &src,
                    &dst,
                    failing_on(calls.clone(), fail),
                    "key",
                    1 + fastrand::usize(0..5),
                    &["other"],
                    Options::new()
                        .on_error(OnError::Report)
                        .window(1 + fastrand::usize(0..50)),
                );
                let polls = fastrand::usize(0..400);
                let mut run = std::pin::pin!(run);
                for _ in 0..polls {
                    if futures::poll!(run.as_mut()).is_ready() {
                        break;
                    }
                    smol::future::yield_now().await;
                }
            }
            let before: HashMap<String, usize> = calls.0.lock().unwrap().clone();
            map_by_key_jsonl_file(
                &src,
                &dst,
                compute(calls.clone()),
                "key",
                3,
                &["other"],
                Options::new(),
            )
            .await
            .unwrap();
            let output = std::fs::read(&dst).unwrap();
            assert!(
                output == expected,
                "seed {seed}: {}",
                String::from_utf8_lossy(&output)
            );
            // A key whose result was saved is never asked again: at most one successful call
            // per key in all (failed calls are retried).
            let after = calls.0.lock().unwrap().clone();
            for (key, count) in &after {
                let new = count - before.get(key).copied().unwrap_or(0);
                assert!(
                    new <= 1,
                    "seed {seed}: key {key} called {new} times in the last run"
                );
            }
        }
    });
}

#[test]
fn a_torn_output_tail_is_cut_and_finished() {
    on_all_runtimes(|_| async {
        let (_dir, src, dst) = temp_dir();
        write_source(&src, &[json!("a"), json!("b"), json!("a")]);
        let calls = Calls::default();
        map_by_key_jsonl_file(
            &src,
            &dst,
            compute(calls.clone()),
            "key",
            1,
            &["other"],
            Options::new(),
        )
        .await
        .unwrap();
        let full = std::fs::read(&dst).unwrap();
        // Keep one row and half of the next.
        let first = full.iter().position(|&b| b == b'\n').unwrap() + 1;
        std::fs::write(&dst, &full[..first + 10]).unwrap();
        let report = map_by_key_jsonl_file(
            &src,
            &dst,
            compute(calls.clone()),
            "key",
            1,
            &["other"],
            Options::new(),
        )
        .await
        .unwrap();
        assert_eq!(report.torn_bytes, 10);
        assert_eq!(report.rows_resumed, 1);
        assert_eq!(report.calls, 0, "the results were saved");
        assert_eq!(std::fs::read(&dst).unwrap(), full);
        assert_eq!(calls.total(), 2);
    });
}

#[test]
fn a_malformed_output_line_is_corrupt_in_the_middle_and_cut_at_the_end() {
    on_all_runtimes(|_| async {
        let (_dir, src, dst) = temp_dir();
        write_source(&src, &[json!("a"), json!("b"), json!("a")]);
        let run = |calls: Calls| {
            let (src, dst) = (src.clone(), dst.clone());
            async move {
                let f = compute(calls);
                map_by_key_jsonl_file(&src, &dst, f, "key", 1, &["other"], Options::new()).await
            }
        };
        let calls = Calls::default();
        run(calls.clone()).await.unwrap();
        let full = std::fs::read_to_string(&dst).unwrap();
        let rows: Vec<&str> = full.lines().collect();

        // A malformed line before a valid one: an error naming the line, nothing changed.
        let corrupt = format!("{}\n{{\"key\":\n{}\n", rows[0], rows[2]);
        std::fs::write(&dst, &corrupt).unwrap();
        let error = run(calls.clone()).await.unwrap_err();
        assert!(matches!(error.kind(), ErrorKind::Corrupt { .. }), "{error}");
        assert_eq!(error.line(), Some(2));
        assert_eq!(std::fs::read_to_string(&dst).unwrap(), corrupt);

        // Malformed lines at the end, newline or not, are a torn tail: cut, then finished.
        let torn = format!("{}\n{{\"key\":\n\n{{\"ke", rows[0]);
        std::fs::write(&dst, &torn).unwrap();
        let report = run(calls.clone()).await.unwrap();
        assert_eq!(report.torn_bytes, (torn.len() - rows[0].len() - 1) as u64);
        assert_eq!(report.rows_resumed, 1);
        assert_eq!(report.calls, 0, "the results were saved");
        assert_eq!(std::fs::read_to_string(&dst).unwrap(), full);
        assert_eq!(calls.total(), 2);
    });
}

#[test]
fn one_call_per_key_whatever_its_spelling_or_length() {
    // The same key spelled several ways (numbers, escapes), short and long, mixed.
    on_all_runtimes(|_| async {
        let (_dir, src, dst) = temp_dir();
        let long = "a long key, longer than thirty-two bytes: café";
        let spellings = [
            "10".to_owned(),
            "\"café\"".to_owned(),
            format!("{:?}", long),
            "10.0".to_owned(),
            "\"caf\\u00e9\"".to_owned(),
            format!("{:?}", long).replace('é', "\\u00e9"),
            "1e1".to_owned(),
            "\"10\"".to_owned(),
        ];
        let mut text = String::new();
        for round in 0..3 {
            for (i, spelling) in spellings.iter().enumerate() {
                text.push_str(&format!(
                    "{{\"key\":{spelling},\"other\":{}}}\n",
                    round * 10 + i
                ));
            }
        }
        std::fs::write(&src, &text).unwrap();
        let calls = Calls::default();
        let report = map_by_key_jsonl_file(
            &src,
            &dst,
            compute(calls.clone()),
            "key",
            2,
            &["other"],
            Options::new(),
        )
        .await
        .unwrap();
        // 10 (four spellings), "café" (two), the long key (two), "10" (a string).
        assert_eq!(report.calls, 4);
        assert_eq!(calls.total(), 4);
        let output = std::fs::read_to_string(&dst).unwrap();
        let rows: Vec<Value> = output
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(rows.len(), 24);
        for (row, line) in rows.iter().zip(text.lines()) {
            let source: Value = serde_json::from_str(line).unwrap();
            assert_eq!(row["key"], source["key"], "each row keeps its own spelling");
            assert_eq!(row["other"], source["other"]);
            // The result is the one of the key's first row.
            let first = match &source["key"] {
                Value::Number(_) => "f(10)".to_owned(),
                Value::String(s) if s == "10" => "f(\"10\")".to_owned(),
                Value::String(s) => format!("f({})", json!(s)),
                _ => unreachable!(),
            };
            assert_eq!(row["result"], json!(first), "{line}");
        }
    });
}

#[test]
fn a_changed_source_is_refused() {
    on_all_runtimes(|_| async {
        let (_dir, src, dst) = temp_dir();
        write_source(&src, &[json!("a"), json!("b")]);
        map_by_key_jsonl_file(
            &src,
            &dst,
            compute(Calls::default()),
            "key",
            1,
            &["other"],
            Options::new(),
        )
        .await
        .unwrap();
        let output = std::fs::read(&dst).unwrap();
        write_source(&src, &[json!("a"), json!("c")]);
        let error = map_by_key_jsonl_file(
            &src,
            &dst,
            compute(Calls::default()),
            "key",
            1,
            &["other"],
            Options::new(),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(error.kind(), ErrorKind::SourceChanged),
            "{error:?}"
        );
        assert_eq!(std::fs::read(&dst).unwrap(), output);
        // Other columns to keep: refused too.
        write_source(&src, &[json!("a"), json!("b")]);
        let error = map_by_key_jsonl_file(
            &src,
            &dst,
            compute(Calls::default()),
            "key",
            1,
            &[],
            Options::new(),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(error.kind(), ErrorKind::ColumnsChanged),
            "{error:?}"
        );
    });
}

#[test]
fn reading_pauses_when_the_window_is_full() {
    on_all_runtimes(|_| async {
        let (_dir, src, dst) = temp_dir();
        write_source(&src, &["a", "b", "c", "d", "e"].map(Value::from));
        let (release_tx, release_rx) = futures::channel::oneshot::channel::<()>();
        let release = release_rx.shared();
        let calls = Calls::default();
        let f = {
            let calls = calls.clone();
            move |row: Row| {
                calls.record(&row["key"]);
                let release = release.clone();
                async move {
                    if row["key"] == "a" {
                        let _ = release.await;
                    }
                    Ok::<_, io::Error>(json!({}))
                }
            }
        };
        let options = Options::new().window(2);
        let run = map_by_key_jsonl_file(&src, &dst, f, "key", 5, &[], options);
        let watch = async {
            common::sleep(Duration::from_millis(50)).await;
            // Row a waits for its key; the window (a, b) is full, so c is not read.
            assert_eq!(calls.total(), 2);
            release_tx.send(()).unwrap();
        };
        let (report, ()) = futures::join!(run, watch);
        assert_eq!(report.unwrap().rows_written, 5);
        assert_eq!(calls.total(), 5);
    });
}

#[test]
fn progress_reports_each_row_with_the_total() {
    on_all_runtimes(|_| async {
        let (_dir, src, dst) = temp_dir();
        write_source(&src, &[json!(1), json!(2), json!(1), json!(3)]);
        let seen: Arc<Mutex<Vec<Progress>>> = Arc::default();
        let options = Options::new().on_error(OnError::Report).progress({
            let seen = seen.clone();
            move |p| seen.lock().unwrap().push(p)
        });
        map_by_key_jsonl_file(
            &src,
            &dst,
            failing_on(Calls::default(), vec!["2"]),
            "key",
            1,
            &[],
            options,
        )
        .await
        .unwrap();
        let seen = seen.lock().unwrap();
        assert!(seen.iter().all(|p| p.total == 4));
        let last = seen.last().unwrap();
        assert_eq!((last.saved, last.failed, last.done()), (3, 1, 4));
        assert_eq!(seen.len(), 4, "one call per row: {seen:?}");
    });
}

#[test]
fn a_stop_finishes_what_is_in_flight_and_the_next_run_the_rest() {
    on_all_runtimes(|_| async {
        let (_dir, src, dst) = temp_dir();
        let keys: Vec<Value> = (0..100).map(Value::from).collect();
        write_source(&src, &keys);
        let stop = StopHandle::new();
        let calls = Calls::default();
        let f = {
            let (calls, stop) = (calls.clone(), stop.clone());
            move |row: Row| {
                calls.record(&row["key"]);
                if row["key"] == 10 {
                    stop.stop();
                }
                async move {
                    common::sleep(Duration::from_millis(1)).await;
                    Ok::<_, io::Error>(json!({ "v": row["key"] }))
                }
            }
        };
        let report = map_by_key_jsonl_file(&src, &dst, f, "key", 4, &[], Options::new().stop(stop))
            .await
            .unwrap();
        assert!(report.stopped);
        let written = report.rows_written;
        assert_eq!(
            written as usize,
            calls.total(),
            "every call's row was saved"
        );
        assert_eq!(report.rows_missing, 100 - written);
        let report = map_by_key_jsonl_file(
            &src,
            &dst,
            compute(calls.clone()),
            "key",
            4,
            &[],
            Options::new(),
        )
        .await
        .unwrap();
        assert_eq!(report.rows_resumed, written);
        assert_eq!(calls.total(), 100);
    });
}

/// The `f` of tests/fixtures/make_map_by_key_fixtures.py, in Rust, counting its calls.
fn python_fixture_f(
    calls: Calls,
) -> impl FnMut(Row) -> futures::future::BoxFuture<'static, io::Result<Value>> {
    move |row: Row| {
        let calls = calls.clone();
        async move {
            let key = &row["key"];
            calls.record(key);
            let shown = match key {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            Ok(json!({
                "label": format!("libellé {shown}"),
                "tags": [key, "é", { "x": 1 }],
                "first": row["n"],
            }))
        }
        .boxed()
    }
}

fn lines_as_values(text: &str) -> Vec<Value> {
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[test]
fn outputs_begun_by_the_python_library_resume() {
    // Outputs the Python library wrote (", " separators, \u00e9 escapes, kept columns before
    // the key): cut by a kill, with holes left by a failing f, and with holes left by its
    // cancelled calls. Each resumes into the rows of an uninterrupted run, calling f only for
    // the keys it lacks.
    on_all_runtimes(|_| async {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let (_dir, src, dst) = temp_dir();
        std::fs::copy(fixtures.join("python_mbk_src.jsonl"), &src).unwrap();
        let run = |dst: PathBuf, calls: Calls| {
            let src = src.clone();
            async move {
                let f = python_fixture_f(calls);
                map_by_key_jsonl_file(&src, &dst, f, "key", 2, &["n", "text"], Options::new())
                    .await
                    .unwrap()
            }
        };
        let fresh_calls = Calls::default();
        run(dst.clone(), fresh_calls.clone()).await;
        assert_eq!(fresh_calls.total(), 6);
        let fresh = std::fs::read_to_string(&dst).unwrap();
        assert_eq!(fresh.lines().count(), 14);

        for (fixture, resumed, called) in [
            ("python_mbk_killed.jsonl", 7, &["\"stop\"", "3"][..]),
            ("python_mbk_holes.jsonl", 12, &["7"][..]),
            ("python_mbk_raised.jsonl", 10, &["\"stop\"", "3"][..]),
        ] {
            let path = dst.with_file_name(fixture);
            std::fs::copy(fixtures.join(fixture), &path).unwrap();
            let python = std::fs::read_to_string(&path).unwrap();
            let calls = Calls::default();
            let report = run(path.clone(), calls.clone()).await;
            assert_eq!(report.rows_resumed, resumed, "{fixture}");
            assert_eq!(calls.total(), called.len(), "{fixture}");
            for key in called {
                assert_eq!(calls.of(key), 1, "{fixture}: {key}");
            }
            let output = std::fs::read_to_string(&path).unwrap();
            // The same rows as a fresh run, in source order.
            assert_eq!(
                lines_as_values(&output),
                lines_as_values(&fresh),
                "{fixture}"
            );
            if fixture == "python_mbk_killed.jsonl" {
                // No hole: the Python rows stay as they are, the torn tail is cut.
                let whole = python.rfind('\n').unwrap() + 1;
                assert_eq!(report.torn_bytes, (python.len() - whole) as u64);
                assert!(output.starts_with(&python[..whole]), "{fixture}");
            }
            // The rows of keys this crate computed are byte for byte those of a fresh run.
            for (ours, theirs) in output.lines().zip(fresh.lines()) {
                let key = serde_json::from_str::<Value>(ours).unwrap()["key"].to_string();
                if called.contains(&key.as_str()) {
                    assert_eq!(ours, theirs, "{fixture}");
                }
            }
            // Done: another run calls nothing and changes nothing.
            let again = Calls::default();
            run(path.clone(), again.clone()).await;
            assert_eq!(again.total(), 0, "{fixture}");
            assert_eq!(std::fs::read_to_string(&path).unwrap(), output, "{fixture}");
        }
    });
}

//! Tests of `flatmap_jsonl_file`: order, filters, failures retried without recomputing the
//! rest, byte-identical resume, the log's checks, a grown source, and Python's log format.

mod common;

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use abstractions::jsonl::{ErrorKind, OnError, Options, flatmap_jsonl_file};
use common::on_all_runtimes;
use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::{Map, Value, json};

type Row = Map<String, Value>;

struct Files {
    _dir: tempfile::TempDir,
    src: PathBuf,
    dst: PathBuf,
    log: PathBuf,
}

fn files() -> Files {
    let dir = tempfile::tempdir().unwrap();
    Files {
        src: dir.path().join("src.jsonl"),
        dst: dir.path().join("dst.jsonl"),
        log: dir.path().join("dst.log"),
        _dir: dir,
    }
}

fn write_source(path: &Path, n: u64) {
    let text: String = (1..=n).map(|i| format!("{{\"id\":{i}}}\n")).collect();
    std::fs::write(path, text).unwrap();
}

/// Calls per source id.
#[derive(Clone, Default)]
struct Calls(Arc<Mutex<HashMap<i64, usize>>>);

impl Calls {
    fn of(&self, id: i64) -> usize {
        self.0.lock().unwrap().get(&id).copied().unwrap_or(0)
    }

    fn total(&self) -> usize {
        self.0.lock().unwrap().values().sum()
    }
}

/// `id % 3` outputs per row (so some rows are filtered out), failing on the listed ids, after
/// a small random delay so that rows finish out of order.
fn f(
    calls: Calls,
    fail: Vec<i64>,
) -> impl FnMut(Row) -> BoxFuture<'static, io::Result<Vec<Value>>> {
    move |row: Row| {
        let calls = calls.clone();
        let id = row["id"].as_i64().unwrap();
        let fails = fail.contains(&id);
        async move {
            *calls.0.lock().unwrap().entry(id).or_default() += 1;
            common::sleep(Duration::from_micros(fastrand::u64(0..300))).await;
            if fails {
                return Err(io::Error::other(format!("f failed on {id}")));
            }
            Ok((0..id % 3).map(|j| json!({ "id": id, "j": j })).collect())
        }
        .boxed()
    }
}

fn expected(n: u64) -> String {
    (1..=n as i64)
        .flat_map(|id| (0..id % 3).map(move |j| format!("{{\"id\":{id},\"j\":{j}}}\n")))
        .collect()
}

#[test]
fn outputs_keep_source_order_and_empty_lists_filter() {
    on_all_runtimes(|_| async {
        let files = files();
        write_source(&files.src, 60);
        let calls = Calls::default();
        let report = flatmap_jsonl_file(
            &files.src,
            &files.dst,
            &files.log,
            f(calls.clone(), vec![]),
            8,
            Options::new(),
        )
        .await
        .unwrap();
        assert_eq!(std::fs::read_to_string(&files.dst).unwrap(), expected(60));
        assert_eq!(calls.total(), 60);
        assert_eq!((report.calls, report.rows_written), (60, 60));
        // A second run finds everything done.
        let report = flatmap_jsonl_file(
            &files.src,
            &files.dst,
            &files.log,
            f(calls.clone(), vec![]),
            8,
            Options::new(),
        )
        .await
        .unwrap();
        assert_eq!((report.rows_resumed, report.calls), (60, 0));
        assert_eq!(std::fs::read_to_string(&files.dst).unwrap(), expected(60));
    });
}

#[test]
fn a_failed_row_is_retried_alone_and_put_back_in_place() {
    on_all_runtimes(|_| async {
        let files = files();
        write_source(&files.src, 30);
        let calls = Calls::default();
        let options = || Options::new().on_error(OnError::Report);
        let report = flatmap_jsonl_file(
            &files.src,
            &files.dst,
            &files.log,
            f(calls.clone(), vec![5, 17]),
            4,
            options(),
        )
        .await
        .unwrap();
        assert_eq!(report.problems.len(), 2);
        assert_eq!(report.problems[0].line(), Some(5));
        // The rows after a failure are kept (the Python library recomputes them forever).
        let report = flatmap_jsonl_file(
            &files.src,
            &files.dst,
            &files.log,
            f(calls.clone(), vec![]),
            4,
            options(),
        )
        .await
        .unwrap();
        assert!(report.problems.is_empty());
        assert_eq!(report.calls, 2);
        assert_eq!((calls.of(5), calls.of(17), calls.of(6)), (2, 2, 1));
        assert_eq!(std::fs::read_to_string(&files.dst).unwrap(), expected(30));
        let log = files.log.with_extension("log.rewrite");
        assert!(!log.exists() && !files.dst.with_extension("jsonl.rewrite").exists());
    });
}

#[test]
fn interrupted_runs_then_a_full_run_write_the_same_bytes() {
    on_all_runtimes(|_| async {
        let n = 80;
        for seed in 0..6u64 {
            fastrand::seed(seed);
            let files = files();
            write_source(&files.src, n);
            let calls = Calls::default();
            let mut done_before_last_run = Vec::new();
            for _ in 0..4 {
                let fail: Vec<i64> = (0..3).map(|_| fastrand::i64(1..=n as i64)).collect();
                let run = flatmap_jsonl_file(
                    &files.src,
                    &files.dst,
                    &files.log,
                    f(calls.clone(), fail),
                    1 + fastrand::usize(0..6),
                    Options::new()
                        .on_error(OnError::Report)
                        .window(1 + fastrand::usize(0..20)),
                );
                let mut run = std::pin::pin!(run);
                for _ in 0..fastrand::usize(0..300) {
                    if futures::poll!(run.as_mut()).is_ready() {
                        break;
                    }
                    smol::future::yield_now().await;
                }
                done_before_last_run = logged_lines(&files.log);
            }
            let before: HashMap<i64, usize> = calls.0.lock().unwrap().clone();
            flatmap_jsonl_file(
                &files.src,
                &files.dst,
                &files.log,
                f(calls.clone(), vec![]),
                3,
                Options::new(),
            )
            .await
            .unwrap();
            let output = std::fs::read_to_string(&files.dst).unwrap();
            assert!(output == expected(n), "seed {seed}: {output}");
            // A row logged as done is never computed again.
            for id in done_before_last_run {
                let now = calls.of(id as i64);
                assert_eq!(
                    now,
                    before.get(&(id as i64)).copied().unwrap_or(0),
                    "seed {seed}: {id}"
                );
            }
        }
    });
}

/// The source lines the log records as done.
fn logged_lines(log: &Path) -> Vec<u64> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter_map(|record| record.get("src_line").and_then(Value::as_u64))
        .collect()
}

#[test]
fn rows_written_but_not_logged_are_cut_and_redone() {
    on_all_runtimes(|_| async {
        let files = files();
        write_source(&files.src, 10);
        flatmap_jsonl_file(
            &files.src,
            &files.dst,
            &files.log,
            f(Calls::default(), vec![]),
            2,
            Options::new(),
        )
        .await
        .unwrap();
        // Keep the log of rows 1..=4; the output has more, and a torn tail.
        let log = std::fs::read_to_string(&files.log).unwrap();
        let kept: String = log
            .lines()
            .filter(|l| logged_lines_of(l).is_none_or(|n| n <= 4))
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(&files.log, format!("{kept}{{\"src_li")).unwrap();
        let mut dst = std::fs::read(&files.dst).unwrap();
        dst.extend_from_slice(b"{\"id\":9,");
        std::fs::write(&files.dst, dst).unwrap();
        let calls = Calls::default();
        let report = flatmap_jsonl_file(
            &files.src,
            &files.dst,
            &files.log,
            f(calls.clone(), vec![]),
            2,
            Options::new(),
        )
        .await
        .unwrap();
        assert_eq!(report.rows_resumed, 4);
        assert_eq!(calls.total(), 6);
        assert_eq!(std::fs::read_to_string(&files.dst).unwrap(), expected(10));
    });
}

fn logged_lines_of(line: &str) -> Option<u64> {
    serde_json::from_str::<Value>(line)
        .ok()?
        .get("src_line")?
        .as_u64()
}

#[test]
fn a_log_that_claims_rows_the_output_lacks_is_an_error() {
    on_all_runtimes(|_| async {
        let files = files();
        write_source(&files.src, 10);
        flatmap_jsonl_file(
            &files.src,
            &files.dst,
            &files.log,
            f(Calls::default(), vec![]),
            2,
            Options::new(),
        )
        .await
        .unwrap();
        let dst = std::fs::read_to_string(&files.dst).unwrap();
        let shorter: String = dst.lines().take(3).map(|l| format!("{l}\n")).collect();
        std::fs::write(&files.dst, &shorter).unwrap();
        let error = flatmap_jsonl_file(
            &files.src,
            &files.dst,
            &files.log,
            f(Calls::default(), vec![]),
            2,
            Options::new(),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(error.kind(), ErrorKind::OutputBehindLog),
            "{error:?}"
        );
        assert_eq!(std::fs::read_to_string(&files.dst).unwrap(), shorter);
    });
}

#[test]
fn a_changed_source_is_refused_and_a_grown_one_goes_on() {
    on_all_runtimes(|_| async {
        let files = files();
        write_source(&files.src, 10);
        flatmap_jsonl_file(
            &files.src,
            &files.dst,
            &files.log,
            f(Calls::default(), vec![]),
            2,
            Options::new(),
        )
        .await
        .unwrap();
        // Grown by appended rows: only the new rows are processed.
        write_source(&files.src, 15);
        let calls = Calls::default();
        let report = flatmap_jsonl_file(
            &files.src,
            &files.dst,
            &files.log,
            f(calls.clone(), vec![]),
            2,
            Options::new(),
        )
        .await
        .unwrap();
        assert_eq!((report.rows_resumed, calls.total()), (10, 5));
        assert_eq!(std::fs::read_to_string(&files.dst).unwrap(), expected(15));
        // Changed: refused, nothing touched.
        std::fs::write(
            &files.src,
            std::fs::read_to_string(&files.src)
                .unwrap()
                .replace("{\"id\":3}", "{\"id\":33}"),
        )
        .unwrap();
        let before = std::fs::read(&files.dst).unwrap();
        let error = flatmap_jsonl_file(
            &files.src,
            &files.dst,
            &files.log,
            f(Calls::default(), vec![]),
            2,
            Options::new(),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(error.kind(), ErrorKind::SourceChanged),
            "{error:?}"
        );
        assert_eq!(std::fs::read(&files.dst).unwrap(), before);
    });
}

#[test]
fn outputs_that_are_not_objects_and_bad_rows_are_errors() {
    on_all_runtimes(|_| async {
        let files = files();
        write_source(&files.src, 3);
        let bad = |_row: Row| async { Ok::<_, io::Error>(vec![json!(1)]) };
        let error = flatmap_jsonl_file(&files.src, &files.dst, &files.log, bad, 1, Options::new())
            .await
            .unwrap_err();
        assert!(matches!(error.kind(), ErrorKind::NotAnObject), "{error:?}");
        assert_eq!(error.line(), Some(1));

        let files = self::files();
        std::fs::write(&files.src, "{\"id\":1}\n{\"id\":2,}\n{\"id\":3}\n").unwrap();
        let error = flatmap_jsonl_file(
            &files.src,
            &files.dst,
            &files.log,
            f(Calls::default(), vec![]),
            2,
            Options::new(),
        )
        .await
        .unwrap_err();
        assert!(matches!(error.kind(), ErrorKind::Json { .. }), "{error:?}");
        assert_eq!(
            (error.line(), error.path()),
            (Some(2), Some(files.src.as_path()))
        );
        // The row before it was finished and saved.
        assert_eq!(
            std::fs::read_to_string(&files.dst).unwrap(),
            "{\"id\":1,\"j\":0}\n"
        );
    });
}

#[test]
fn a_run_begun_by_the_python_library_is_finished() {
    on_all_runtimes(|_| async {
        let files = files();
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        std::fs::copy(fixtures.join("python_flatmap_src.jsonl"), &files.src).unwrap();
        std::fs::copy(fixtures.join("python_flatmap_dst.jsonl"), &files.dst).unwrap();
        std::fs::copy(fixtures.join("python_flatmap_log.jsonl"), &files.log).unwrap();
        let python_rows = std::fs::read_to_string(&files.dst).unwrap();
        let ids = Arc::new(Mutex::new(Vec::new()));
        let words = {
            let ids = ids.clone();
            move |row: Row| {
                ids.lock().unwrap().push(row["id"].as_i64().unwrap());
                async move {
                    let text = row["text"].as_str().unwrap().to_owned();
                    let id = row["id"].clone();
                    Ok::<_, io::Error>(
                        text.split_whitespace()
                            .map(|word| json!({ "id": id, "word": word }))
                            .collect::<Vec<_>>(),
                    )
                }
            }
        };
        let report =
            flatmap_jsonl_file(&files.src, &files.dst, &files.log, words, 2, Options::new())
                .await
                .unwrap();
        assert_eq!(report.rows_resumed, 4);
        let mut ids = ids.lock().unwrap().clone();
        ids.sort();
        assert_eq!(ids, [5, 6, 7, 8]);
        let output = std::fs::read_to_string(&files.dst).unwrap();
        assert!(output.starts_with(&python_rows));
        assert_eq!(
            &output[python_rows.len()..],
            "{\"id\":5,\"word\":\"w5_0\"}\n{\"id\":5,\"word\":\"w5_1\"}\n\
             {\"id\":7,\"word\":\"w7_0\"}\n{\"id\":8,\"word\":\"w8_0\"}\n{\"id\":8,\"word\":\"w8_1\"}\n"
        );
    });
}

#[test]
fn a_rewrite_left_half_done_is_dropped_or_finished() {
    on_all_runtimes(|_| async {
        let files = files();
        write_source(&files.src, 12);
        let rewrite = |path: &Path| {
            let mut name = path.as_os_str().to_owned();
            name.push(".rewrite");
            PathBuf::from(name)
        };
        flatmap_jsonl_file(
            &files.src,
            &files.dst,
            &files.log,
            f(Calls::default(), vec![]),
            2,
            Options::new(),
        )
        .await
        .unwrap();
        let (dst, log) = (
            std::fs::read(&files.dst).unwrap(),
            std::fs::read(&files.log).unwrap(),
        );

        // Killed while writing the rewrite: both new files are there, and are dropped.
        std::fs::write(rewrite(&files.dst), b"{\"partial\":").unwrap();
        std::fs::write(rewrite(&files.log), b"garbage").unwrap();
        let report = flatmap_jsonl_file(
            &files.src,
            &files.dst,
            &files.log,
            f(Calls::default(), vec![]),
            2,
            Options::new(),
        )
        .await
        .unwrap();
        assert_eq!((report.rows_resumed, report.calls), (12, 0));
        assert!(!rewrite(&files.dst).exists() && !rewrite(&files.log).exists());
        assert_eq!(std::fs::read(&files.dst).unwrap(), dst);

        // Killed between the renames: the new log is left alone, and is put in place.
        std::fs::write(rewrite(&files.log), &log).unwrap();
        std::fs::write(&files.log, b"{\"src_line\":1,\"dst_end\":1}\n").unwrap();
        let report = flatmap_jsonl_file(
            &files.src,
            &files.dst,
            &files.log,
            f(Calls::default(), vec![]),
            2,
            Options::new(),
        )
        .await
        .unwrap();
        assert_eq!((report.rows_resumed, report.calls), (12, 0));
        assert_eq!(std::fs::read(&files.dst).unwrap(), dst);
    });
}

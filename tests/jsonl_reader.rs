//! The typed JSONL reader, on every runtime.

mod common;

use std::path::Path;

use abstractions::jsonl::{ErrorKind, JsonlReader, Key};
use futures::stream::FusedStream;
use futures::{StreamExt, TryStreamExt};
use serde::Deserialize;

#[derive(Debug, Deserialize, PartialEq)]
struct Row {
    key: String,
    n: i64,
}

fn row(key: &str, n: i64) -> Row {
    Row {
        key: key.to_owned(),
        n,
    }
}

fn write(dir: &Path, content: &[u8]) -> std::path::PathBuf {
    let path = dir.join("in.jsonl");
    std::fs::write(&path, content).unwrap();
    path
}

#[test]
fn reads_rows_skipping_whitespace_lines() {
    common::on_all_runtimes(|_rt| async move {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            b"\n{\"key\": \"a\", \"n\": 1}\n   \n\t\r\n{\"n\": 2, \"key\": \"caf\\u00e9\"}\r\n\n",
        );
        let rows: Vec<Row> = JsonlReader::open(&path)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(rows, [row("a", 1), row("café", 2)]);
    });
}

#[test]
fn last_line_without_newline_is_a_row() {
    common::on_all_runtimes(|_rt| async move {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            b"{\"key\": \"a\", \"n\": 1}\n{\"key\": \"b\", \"n\": 2}",
        );
        let rows: Vec<Row> = JsonlReader::open(&path)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(rows, [row("a", 1), row("b", 2)]);

        // A last line holding only whitespace is no row.
        let path = write(dir.path(), b"{\"key\": \"a\", \"n\": 1}\n  ");
        let rows: Vec<Row> = JsonlReader::open(&path)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(rows, [row("a", 1)]);

        let path = write(dir.path(), b"");
        let rows: Vec<Row> = JsonlReader::open(&path)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(rows, []);
    });
}

#[test]
fn bad_line_error_names_path_line_and_column_and_reading_goes_on() {
    common::on_all_runtimes(|_rt| async move {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            b"{\"key\": \"a\", \"n\": 1}\n\n{\"key\": \"b\", \"n\": oops}\n{\"key\": \"c\"}\n{\"key\": \"d\", \"n\": \"\xff\"}\n{\"key\": \"e\", \"n\": 5}\n",
        );
        let results: Vec<_> = JsonlReader::<Row>::open(&path)
            .await
            .unwrap()
            .collect()
            .await;
        assert_eq!(results.len(), 5);
        assert_eq!(results[0].as_ref().unwrap(), &row("a", 1));

        // Not JSON: line 3, the parser stops at the `o` of `oops` (column 19).
        let error = results[1].as_ref().unwrap_err();
        assert_eq!(error.kind(), &ErrorKind::Json { column: 19 });
        assert_eq!(error.line(), Some(3));
        assert_eq!(error.path(), Some(path.as_path()));
        assert_eq!(
            error.to_string(),
            format!("{}:3:19: invalid json", path.display())
        );
        assert!(std::error::Error::source(error).is_some());

        // JSON, but not a `Row`: the missing field is found at the end of the line.
        let error = results[2].as_ref().unwrap_err();
        assert_eq!(error.kind(), &ErrorKind::Json { column: 12 });
        assert_eq!(error.line(), Some(4));

        // Invalid UTF-8: the column is that of the first bad byte.
        let error = results[3].as_ref().unwrap_err();
        assert_eq!(error.kind(), &ErrorKind::Json { column: 20 });
        assert_eq!(error.line(), Some(5));

        assert_eq!(results[4].as_ref().unwrap(), &row("e", 5));
    });
}

#[test]
fn open_missing_file_is_an_io_error_with_the_path() {
    common::on_all_runtimes(|_rt| async move {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing.jsonl");
        let error = JsonlReader::<Row>::open(&path).await.unwrap_err();
        assert_eq!(error.kind(), &ErrorKind::Io);
        assert_eq!(error.path(), Some(path.as_path()));
        let io = std::error::Error::source(&error)
            .and_then(|source| source.downcast_ref::<std::io::Error>())
            .unwrap();
        assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
    });
}

#[test]
fn stream_is_fused() {
    common::on_all_runtimes(|_rt| async move {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), b"1\n2\n");
        let mut reader = JsonlReader::<u32>::open(&path).await.unwrap();
        assert!(!reader.is_terminated());
        assert_eq!(reader.next().await.unwrap().unwrap(), 1);
        assert_eq!(reader.next().await.unwrap().unwrap(), 2);
        assert!(reader.next().await.is_none());
        assert!(reader.is_terminated());
        assert!(reader.next().await.is_none());
        assert_eq!(reader.path(), path);
        assert!(format!("{reader:?}").starts_with("JsonlReader { path: "));
    });
}

#[test]
fn lines_across_and_longer_than_the_read_chunk() {
    common::on_all_runtimes(|_rt| async move {
        let dir = tempfile::tempdir().unwrap();
        // Rows of growing length cross the 1 MiB chunk boundaries at every offset; one row is
        // three chunks long.
        let mut content = String::new();
        let mut expected = Vec::new();
        let mut n = 0;
        while content.len() < 3 << 20 {
            let key = "x".repeat(n % 4000);
            content.push_str(&format!("{{\"key\": \"{key}\", \"n\": {n}}}\n"));
            expected.push((key.len(), n as i64));
            n += 1;
            if n == 100 {
                let key = "y".repeat(3 << 20);
                content.push_str(&format!("{{\"key\": \"{key}\", \"n\": -1}}\n"));
                expected.push((key.len(), -1));
            }
        }
        let path = write(dir.path(), content.as_bytes());
        let rows: Vec<Row> = JsonlReader::open(&path)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        let got: Vec<(usize, i64)> = rows.iter().map(|r| (r.key.len(), r.n)).collect();
        assert_eq!(got, expected);
    });
}

#[test]
fn keys_in_rows_follow_the_identity_rule() {
    common::on_all_runtimes(|_rt| async move {
        #[derive(Debug, Deserialize)]
        struct Keyed {
            key: Key,
        }
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            b"{\"key\": 10}\n{\"key\": 10.0}\n{\"key\": 1e1}\n{\"key\": \"10\"}\n{\"key\": \"caf\\u00e9\"}\n{\"key\": [1]}\n",
        );
        let results: Vec<_> = JsonlReader::<Keyed>::open(&path)
            .await
            .unwrap()
            .collect()
            .await;
        let keys: Vec<&Key> = results[..5]
            .iter()
            .map(|r| &r.as_ref().unwrap().key)
            .collect();
        assert_eq!(keys[0], keys[1]);
        assert_eq!(keys[0], keys[2]);
        assert_ne!(keys[0], keys[3]);
        assert_eq!(keys[4], &Key::from("café"));
        let error = results[5].as_ref().unwrap_err();
        assert!(matches!(error.kind(), ErrorKind::Json { .. }));
        assert_eq!(error.line(), Some(6));
    });
}

#[test]
fn public_types_are_send_sync_unpin() {
    fn check<T: Send + Sync + Unpin>() {}
    check::<JsonlReader<Row>>();
    check::<JsonlReader<std::rc::Rc<Row>>>();
    check::<Key>();
    check::<abstractions::jsonl::Error>();
}

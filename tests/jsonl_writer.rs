//! The crash-safe JSONL writer: what is on disk when, the file lock, errors, durability.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use abstractions::jsonl::{Durability, ErrorKind, JsonlWriter};
use futures::{SinkExt, stream};
use serde::Serialize;
use serde_json::json;

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).expect("read the file with std")
}

/// The exact bytes `ids` make as rows `{"id":…}`.
fn rows_text(ids: impl IntoIterator<Item = u64>) -> String {
    ids.into_iter()
        .map(|id| format!("{{\"id\":{id}}}\n"))
        .collect()
}

#[test]
fn writer_is_send_sync_unpin() {
    fn assert_send_sync_unpin<T: Send + Sync + Unpin + 'static>() {}
    assert_send_sync_unpin::<JsonlWriter>();
    assert_send_sync_unpin::<Durability>();
}

#[test]
fn a_sent_row_is_on_disk_when_send_returns() {
    common::on_all_runtimes(|_rt| async move {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.jsonl");
        let mut writer = JsonlWriter::create(&path).await.unwrap();
        assert_eq!(read(&path), "");

        writer.send(json!({"id": 0})).await.unwrap();
        assert_eq!(read(&path), rows_text(0..1));
        assert_eq!(writer.rows_written(), 1);

        writer.send(json!({"id": 1})).await.unwrap();
        assert_eq!(read(&path), rows_text(0..2));
        assert_eq!(writer.rows_written(), 2);
        assert_eq!(writer.bytes_written(), rows_text(0..2).len() as u64);

        writer.finish().await.unwrap();
        assert_eq!(read(&path), rows_text(0..2));
    });
}

#[test]
fn fed_rows_are_on_disk_after_flush() {
    common::on_all_runtimes(|_rt| async move {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.jsonl");
        let mut writer = JsonlWriter::create(&path).await.unwrap();
        for id in 0..1000u64 {
            writer.feed(json!({"id": id})).await.unwrap();
        }
        writer.flush().await.unwrap();
        assert_eq!(read(&path), rows_text(0..1000));
        assert_eq!(writer.rows_written(), 1000);
        writer.finish().await.unwrap();
    });
}

#[test]
fn send_all_of_a_large_stream_writes_exactly_its_rows() {
    #[derive(Serialize)]
    struct Row {
        id: u64,
        text: String,
    }
    common::on_all_runtimes(|_rt| async move {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.jsonl");
        let rows = 100_000u64;
        let mut writer = JsonlWriter::create(&path).await.unwrap();
        let mut source = stream::iter((0..rows).map(|id| {
            Ok(Row {
                id,
                text: format!("row \"{id}\"\nwith a newline"),
            })
        }));
        writer.send_all(&mut source).await.unwrap();
        // send_all flushes: everything is saved before finish.
        assert_eq!(writer.rows_written(), rows);
        let expected: String = (0..rows)
            .map(|id| format!("{{\"id\":{id},\"text\":\"row \\\"{id}\\\"\\nwith a newline\"}}\n"))
            .collect();
        assert_eq!(writer.bytes_written(), expected.len() as u64);
        assert!(read(&path) == expected, "the file differs from the rows");
        writer.finish().await.unwrap();
        assert!(read(&path) == expected, "the file differs from the rows");
    });
}

#[test]
fn feeding_without_flush_writes_in_the_background_with_bounded_memory() {
    // Rows of 1 KiB; the writer keeps at most about 1 MiB pending and 1 MiB in flight.
    common::on_all_runtimes(|_rt| async move {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.jsonl");
        let text = "x".repeat(1000);
        let row = |id: u64| json!({"id": id, "text": text});
        let row_len = serde_json::to_string(&row(0)).unwrap().len() as u64 + 1;
        let mut writer = JsonlWriter::create(&path).await.unwrap();
        let rows = 8 * 1024;
        for id in 0..rows {
            writer.feed(row(id % 10)).await.unwrap();
            let unsaved = (id + 1) * row_len - writer.bytes_written();
            assert!(
                unsaved <= 2 * ((1 << 20) + row_len),
                "{unsaved} bytes unsaved after {} rows",
                id + 1
            );
        }
        assert!(writer.rows_written() > 0);
        writer.flush().await.unwrap();
        assert_eq!(writer.rows_written(), rows);
        let expected: String = (0..rows).map(|id| format!("{}\n", row(id % 10))).collect();
        assert!(read(&path) == expected, "the file differs from the rows");
        writer.finish().await.unwrap();
    });
}

#[test]
fn send_all_saves_each_row_of_a_slow_stream_while_it_is_open() {
    common::on_all_runtimes(|_rt| async move {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.jsonl");
        let mut writer = JsonlWriter::create(&path).await.unwrap();
        let (mut tx, rx) = futures::channel::mpsc::channel(1);
        let producer = async {
            for id in 0..5u64 {
                tx.send(json!({"id": id})).await.unwrap();
                // The row gets to the file while the stream stays open.
                while read(&path) != rows_text(0..=id) {
                    common::sleep(std::time::Duration::from_millis(1)).await;
                }
            }
            drop(tx);
        };
        let mut rows = futures::StreamExt::map(rx, Ok);
        let consumer = writer.send_all(&mut rows);
        let ((), sent) = futures::join!(producer, consumer);
        sent.unwrap();
        writer.finish().await.unwrap();
        assert_eq!(read(&path), rows_text(0..5));
    });
}

#[test]
fn rows_of_several_types_and_references_go_through_one_writer() {
    common::on_all_runtimes(|_rt| async move {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.jsonl");
        let mut writer = JsonlWriter::create(&path).await.unwrap();
        let mut map = serde_json::Map::new();
        map.insert("id".to_owned(), json!(1));
        writer.send(json!({"id": 0})).await.unwrap();
        writer.send(&map).await.unwrap();
        writer.send(BTreeMap::from([("id", 2)])).await.unwrap();
        writer.send("not an object").await.unwrap();
        writer.finish().await.unwrap();
        assert_eq!(
            read(&path),
            format!("{}\"not an object\"\n", rows_text(0..3))
        );
    });
}

#[test]
fn create_truncates_and_append_appends() {
    common::on_all_runtimes(|_rt| async move {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.jsonl");
        std::fs::write(&path, "{\"old\":true}\n").unwrap();

        let mut writer = JsonlWriter::append(&path).await.unwrap();
        writer.send(json!({"id": 0})).await.unwrap();
        writer.finish().await.unwrap();
        assert_eq!(
            read(&path),
            format!("{{\"old\":true}}\n{}", rows_text(0..1))
        );

        let mut writer = JsonlWriter::append(&path).await.unwrap();
        writer.send(json!({"id": 1})).await.unwrap();
        writer.finish().await.unwrap();
        assert_eq!(
            read(&path),
            format!("{{\"old\":true}}\n{}", rows_text(0..2))
        );

        let mut writer = JsonlWriter::create(&path).await.unwrap();
        assert_eq!(read(&path), "");
        writer.send(json!({"id": 2})).await.unwrap();
        writer.finish().await.unwrap();
        assert_eq!(read(&path), rows_text(2..3));
    });
}

#[test]
fn append_creates_a_missing_file() {
    common::on_all_runtimes(|_rt| async move {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.jsonl");
        let mut writer = JsonlWriter::append(&path).await.unwrap();
        writer.send(json!({"id": 0})).await.unwrap();
        writer.finish().await.unwrap();
        assert_eq!(read(&path), rows_text(0..1));
    });
}

#[test]
fn a_second_writer_on_the_same_file_is_refused_and_changes_nothing() {
    common::on_all_runtimes(|_rt| async move {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.jsonl");
        let mut first = JsonlWriter::create(&path).await.unwrap();
        first.send(json!({"id": 0})).await.unwrap();

        for second in [
            JsonlWriter::create(&path).await,
            JsonlWriter::append(&path).await,
        ] {
            let error = second.expect_err("a second writer must be refused");
            assert_eq!(error.kind(), &ErrorKind::Locked);
            assert_eq!(error.path(), Some(path.as_path()));
            let message = error.to_string();
            assert!(
                message.contains(&path.display().to_string()),
                "{message:?} does not name the path"
            );
        }
        // `create` did not empty the file it could not lock.
        assert_eq!(read(&path), rows_text(0..1));

        first.send(json!({"id": 1})).await.unwrap();
        first.finish().await.unwrap();
        assert_eq!(read(&path), rows_text(0..2));
    });
}

#[test]
fn the_lock_is_free_after_finish_close_or_drop() {
    common::on_all_runtimes(|_rt| async move {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.jsonl");

        let writer = JsonlWriter::create(&path).await.unwrap();
        writer.finish().await.unwrap();
        let mut writer = JsonlWriter::append(&path).await.unwrap();

        writer.send(json!({"id": 0})).await.unwrap();
        SinkExt::<serde_json::Value>::close(&mut writer)
            .await
            .unwrap();
        let writer2 = JsonlWriter::append(&path).await.unwrap();
        drop(writer);

        drop(writer2);
        let writer = JsonlWriter::append(&path).await.unwrap();
        writer.finish().await.unwrap();
        assert_eq!(read(&path), rows_text(0..1));
    });
}

#[test]
fn a_closed_writer_refuses_rows_and_close_is_idempotent() {
    common::on_all_runtimes(|_rt| async move {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.jsonl");
        let mut writer = JsonlWriter::create(&path).await.unwrap();
        writer.send(json!({"id": 0})).await.unwrap();
        SinkExt::<serde_json::Value>::close(&mut writer)
            .await
            .unwrap();
        SinkExt::<serde_json::Value>::close(&mut writer)
            .await
            .unwrap();
        writer.flush().await.unwrap();
        let error = writer.send(json!({"id": 1})).await.unwrap_err();
        assert_eq!(error.kind(), &ErrorKind::Io);
        assert_eq!(error.path(), Some(path.as_path()));
        assert_eq!(read(&path), rows_text(0..1));
    });
}

/// A row whose serialization fails half-way: `{"id":…,"bad":{` is out before the error.
#[derive(Serialize)]
struct HalfBad {
    id: u64,
    bad: BTreeMap<Vec<u8>, u64>,
}

#[test]
fn a_row_that_cannot_be_serialized_is_refused_whole_and_the_writer_goes_on() {
    common::on_all_runtimes(|_rt| async move {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.jsonl");
        let mut writer = JsonlWriter::create(&path).await.unwrap();
        writer.feed(json!({"id": 0})).await.unwrap();

        let bad = HalfBad {
            id: 99,
            bad: BTreeMap::from([(vec![1, 2], 3)]),
        };
        let error = writer.send(bad).await.unwrap_err();
        assert_eq!(error.kind(), &ErrorKind::Serialize);
        assert_eq!(error.path(), Some(path.as_path()));
        assert!(std::error::Error::source(&error).is_some());

        // A map with non-string keys, through the same writer.
        let error = writer
            .send(BTreeMap::from([((1, 2), "pair keys")]))
            .await
            .unwrap_err();
        assert_eq!(error.kind(), &ErrorKind::Serialize);

        writer.send(json!({"id": 1})).await.unwrap();
        assert_eq!(read(&path), rows_text(0..2));
        assert_eq!(writer.rows_written(), 2);
        writer.finish().await.unwrap();
        assert_eq!(read(&path), rows_text(0..2));
    });
}

#[test]
fn every_durability_setting_keeps_every_row() {
    common::on_all_runtimes(|_rt| async move {
        for durability in [
            Durability::Buffered,
            Durability::SyncOnFinish,
            Durability::SyncEveryFlush,
        ] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("rows.jsonl");
            let mut writer = JsonlWriter::create(&path)
                .await
                .unwrap()
                .durability(durability);
            writer.send(json!({"id": 0})).await.unwrap();
            assert_eq!(read(&path), rows_text(0..1), "{durability:?}");
            let mut source = stream::iter((1..500u64).map(|id| Ok(json!({"id": id}))));
            writer.send_all(&mut source).await.unwrap();
            assert_eq!(read(&path), rows_text(0..500), "{durability:?}");
            writer.finish().await.unwrap();
            assert_eq!(read(&path), rows_text(0..500), "{durability:?}");

            // The same on an existing file, and on one that is finished without rows.
            let mut writer = JsonlWriter::append(&path)
                .await
                .unwrap()
                .durability(durability);
            writer.feed(json!({"id": 500})).await.unwrap();
            writer.finish().await.unwrap();
            assert_eq!(read(&path), rows_text(0..501), "{durability:?}");
            let empty = dir.path().join("empty.jsonl");
            let writer = JsonlWriter::create(&empty)
                .await
                .unwrap()
                .durability(durability);
            writer.finish().await.unwrap();
            assert_eq!(read(&empty), "", "{durability:?}");
        }
    });
}

#[test]
fn a_relative_path_works_with_every_durability() {
    // Syncing the directory of `rows.jsonl` means syncing `.`; the test runs in a temporary
    // directory through a path relative to the current one.
    common::on_all_runtimes(|_rt| async move {
        let cwd = std::env::current_dir().unwrap();
        let dir = tempfile::tempdir_in(&cwd).unwrap();
        let name = dir.path().file_name().unwrap();
        let path = Path::new(name).join("rows.jsonl");
        let mut writer = JsonlWriter::create(&path)
            .await
            .unwrap()
            .durability(Durability::SyncEveryFlush);
        writer.send(json!({"id": 0})).await.unwrap();
        writer.finish().await.unwrap();
        assert_eq!(read(&path), rows_text(0..1));
    });
}

#[test]
fn dropping_without_finish_keeps_every_flushed_row() {
    common::on_all_runtimes(|_rt| async move {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.jsonl");
        let mut writer = JsonlWriter::create(&path).await.unwrap();
        let mut source = stream::iter((0..1000u64).map(|id| Ok(json!({"id": id}))));
        writer.send_all(&mut source).await.unwrap();
        for id in 1000..3000u64 {
            writer.feed(json!({"id": id})).await.unwrap();
        }
        drop(writer);

        // A write of some fed rows may still be completing in the background; once it has
        // (the lock is free), the file is the flushed rows, then maybe some fed ones, whole.
        let reopened = loop {
            match JsonlWriter::append(&path).await {
                Ok(writer) => break writer,
                Err(error) if error.kind() == &ErrorKind::Locked => {
                    common::sleep(std::time::Duration::from_millis(1)).await
                }
                Err(error) => panic!("{error}"),
            }
        };
        let text = read(&path);
        assert!(text.starts_with(&rows_text(0..1000)));
        let lines = text.lines().count() as u64;
        assert!(text.ends_with('\n'));
        assert_eq!(text, rows_text(0..lines));
        reopened.finish().await.unwrap();
    });
}

#[test]
fn errors_name_the_path_when_the_file_cannot_be_opened() {
    common::on_all_runtimes(|_rt| async move {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing-dir").join("rows.jsonl");
        let error = JsonlWriter::create(&path).await.unwrap_err();
        assert_eq!(error.kind(), &ErrorKind::Io);
        assert_eq!(error.path(), Some(path.as_path()));
        let source = std::error::Error::source(&error).unwrap();
        let io = source.downcast_ref::<std::io::Error>().unwrap();
        assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
    });
}

#[test]
fn debug_is_a_summary() {
    common::on_all_runtimes(|_rt| async move {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.jsonl");
        let mut writer = JsonlWriter::create(&path).await.unwrap();
        writer.send(json!({"id": 0})).await.unwrap();
        let debug = format!("{writer:?}");
        assert!(debug.starts_with("JsonlWriter {"), "{debug}");
        assert!(debug.contains("rows_written: 1"), "{debug}");
        assert!(debug.contains("state: \"idle\""), "{debug}");
        writer.finish().await.unwrap();
    });
}

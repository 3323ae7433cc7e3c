//! `create_or_resume_jsonl_file` and its `run_bounded` form.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::pin::{Pin, pin};
use std::task::{Poll, ready};

use futures::future::poll_fn;
use futures::sink::Sink;
use futures::stream::{Stream, StreamExt};
use serde::Serialize;

use super::key::KeyRef;
use super::reader::{LineKey, parse_line_key, scan_keys};
use super::writer::{JsonlWriter, OpenMode, open_locked};
use super::{Error, ErrorKind, Key, OnError, Options, Progress, Report};
use crate::{fault, run_bounded};

/// Creates a JSONL file of generated rows, or resumes one that an earlier run left unfinished.
///
/// The finished file has `key_count` rows for each key of `key_generator`; each row is a JSON
/// object whose column `key_name` holds its key. If the file exists, it is read first (only
/// the key column of each row is parsed) to count the rows each key still needs;
/// `value_generator` is then called once with the `(key, count)` pairs still missing, and
/// returns a stream of futures, each making one row. The rows are appended as they come.
/// This is the Python library's `create_or_resume_jsonl_file`; the futures run one at a time,
/// as there. [`run_bounded_create_or_resume_jsonl_file`] runs up to `limit` at once.
///
/// # Crash safety
///
/// A run may be killed at any instant and run again: it then generates only what is missing.
/// Every row is written whole, with its newline, in one write; a row is saved (in the OS, so
/// that it survives the process being killed) as soon as no further row is ready, so a row
/// that arrives alone is not held in memory while the next one is awaited. A run killed
/// mid-write leaves at most one partial line at the end of the file: resuming cuts it off
/// (reported in [`Report::torn_bytes`]) and generates its row again. A malformed line in the
/// middle of the file is not a torn write: resuming refuses it with [`ErrorKind::Corrupt`] and
/// changes nothing. Only one run may write a file at a time: a second one fails at once with
/// [`ErrorKind::Locked`].
///
/// Keys follow the crate's rule (see [`Key`]): `"10"` and `10` are different keys, `10` and
/// `10.0` the same one.
///
/// # Errors
///
/// - [`ErrorKind::DuplicateKey`] if `key_generator` gives a key twice (the Python library
///   merges them silently), before the file is touched.
/// - With [`OnError::Raise`], [`ErrorKind::MissingKey`], [`ErrorKind::UnexpectedKey`],
///   [`ErrorKind::TooManyRows`], [`ErrorKind::InvalidKey`] or [`ErrorKind::NotAnObject`] for the
///   first row of the existing file that has no key, a key not expected, or that goes past
///   `key_count`, naming the file and line; the file is not changed. With
///   [`OnError::Report`] these go into [`Report::problems`] instead.
/// - [`ErrorKind::Generate`] when a future fails (its error is the source): no new work is
///   pulled, every row already finished is saved, and the error is returned. A rerun
///   generates only what is missing.
/// - [`ErrorKind::MissingKey`], [`ErrorKind::UnexpectedKey`] or [`ErrorKind::TooManyRows`] for a
///   generated row without the key column, with a key that was not asked for, or past the count
///   asked for its key (the run stops as for a failed future).
/// - [`ErrorKind::Corrupt`], [`ErrorKind::Locked`], [`ErrorKind::Serialize`] and
///   [`ErrorKind::Io`] as their names say.
///
/// # Examples
///
/// ```
/// use abstractions::jsonl::{create_or_resume_jsonl_file, Key, Options};
/// use futures::stream::{self, StreamExt};
/// use serde_json::json;
///
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("answers.jsonl");
/// # futures::executor::block_on(async {
/// // Two answers for each of three questions.
/// let report = create_or_resume_jsonl_file(
///     &path,
///     "question",
///     2,
///     ["a", "b", "c"],
///     |missing: Vec<(Key, usize)>| {
///         stream::iter(missing)
///             .flat_map(|(key, count)| stream::iter(std::iter::repeat_n(key, count)))
///             .map(|key| async move {
///                 // Call a model here.
///                 Ok::<_, std::io::Error>(json!({ "question": key, "answer": 42 }))
///             })
///     },
///     Options::new(),
/// )
/// .await?;
/// assert_eq!(report.rows_written, 6);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub async fn create_or_resume_jsonl_file<K, G, S, F, T, E>(
    file_name: impl AsRef<Path>,
    key_name: &str,
    key_count: usize,
    key_generator: K,
    value_generator: G,
    options: Options<'_>,
) -> Result<Report, Error>
where
    K: IntoIterator,
    K::Item: Into<Key>,
    G: FnOnce(Vec<(Key, usize)>) -> S,
    S: Stream<Item = F>,
    F: Future<Output = Result<T, E>>,
    T: Serialize,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let job = Job::new(file_name.as_ref(), key_name, key_count, key_generator)?;
    job.run(value_generator, 1, options).await
}

/// [`create_or_resume_jsonl_file`] with up to `limit` row futures running at once, through
/// [`run_bounded`](crate::run_bounded): the Python library's
/// `run_bounded_create_or_resume_jsonl_file`.
///
/// The futures are pulled from the generator's stream only when a slot is free, and rows are
/// saved in the order they finish.
///
/// # Panics
///
/// Panics if `limit` is 0.
///
/// # Errors
///
/// As [`create_or_resume_jsonl_file`]. When a future fails, the futures still in flight are
/// dropped (their rows are generated again by the next run).
///
/// # Examples
///
/// ```
/// use abstractions::jsonl::{run_bounded_create_or_resume_jsonl_file, Key, Options};
/// use futures::stream::{self, StreamExt};
/// use serde_json::json;
///
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("answers.jsonl");
/// # futures::executor::block_on(async {
/// let report = run_bounded_create_or_resume_jsonl_file(
///     &path,
///     "id",
///     1,
///     0..100,
///     |missing: Vec<(Key, usize)>| {
///         stream::iter(missing).map(|(id, _count)| async move {
///             Ok::<_, std::io::Error>(json!({ "id": id, "square": id.as_i64().unwrap().pow(2) }))
///         })
///     },
///     16,
///     Options::new(),
/// )
/// .await?;
/// assert_eq!(report.rows_written, 100);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[track_caller]
pub fn run_bounded_create_or_resume_jsonl_file<'a, K, G, S, F, T, E>(
    file_name: impl AsRef<Path> + 'a,
    key_name: &'a str,
    key_count: usize,
    key_generator: K,
    value_generator: G,
    limit: usize,
    options: Options<'a>,
) -> impl Future<Output = Result<Report, Error>> + 'a
where
    K: IntoIterator + 'a,
    K::Item: Into<Key>,
    G: FnOnce(Vec<(Key, usize)>) -> S + 'a,
    S: Stream<Item = F> + 'a,
    F: Future<Output = Result<T, E>> + 'a,
    T: Serialize + 'a,
    E: Into<Box<dyn std::error::Error + Send + Sync>> + 'a,
{
    // Checked here, so that a zero limit panics at the caller, not at the first poll.
    let limit = crate::bounded::checked_limit(limit).get();
    async move {
        let job = Job::new(file_name.as_ref(), key_name, key_count, key_generator)?;
        job.run(value_generator, limit, options).await
    }
}

/// The expected keys of a file, and how many rows each still needs.
struct Job<'a> {
    path: &'a Path,
    key_name: &'a str,
    key_count: usize,
    needs: Needs,
}

/// The expected keys, in the order given, and the rows each still needs.
struct Needs {
    keys: Vec<Key>,
    counts: Vec<usize>,
    /// Where each key is in `keys`.
    index: HashMap<Key, usize>,
    /// Where the key looked up last is: a key's rows tend to be together in a file, and the
    /// keys in the order given, so most lookups of a scan end here or just after, without
    /// hashing.
    last: usize,
}

impl Needs {
    /// The rows `key` still needs, or `None` if it is not expected.
    fn get_mut(&mut self, key: &KeyRef<'_>) -> Option<&mut usize> {
        let is_at = |at: usize| {
            self.keys.get(at).is_some_and(|there| {
                let there: &KeyRef<'_> = there.borrow();
                there == key
            })
        };
        if !is_at(self.last) {
            self.last = if is_at(self.last + 1) {
                self.last + 1
            } else {
                *self.index.get(key)?
            };
        }
        Some(&mut self.counts[self.last])
    }

    /// The keys that still need rows, with how many, in the order given.
    fn missing(&self) -> Vec<(Key, usize)> {
        self.keys
            .iter()
            .zip(&self.counts)
            .filter(|&(_, &count)| count > 0)
            .map(|(key, &count)| (key.clone(), count))
            .collect()
    }

    fn rows_missing(&self) -> u64 {
        self.counts.iter().map(|&count| count as u64).sum()
    }
}

impl<'a> Job<'a> {
    fn new<K>(path: &'a Path, key_name: &'a str, key_count: usize, keys: K) -> Result<Self, Error>
    where
        K: IntoIterator,
        K::Item: Into<Key>,
    {
        let mut job = Job {
            path,
            key_name,
            key_count,
            needs: Needs {
                keys: Vec::new(),
                counts: Vec::new(),
                index: HashMap::new(),
                last: 0,
            },
        };
        let needs = &mut job.needs;
        let keys = keys.into_iter();
        let (expected, _) = keys.size_hint();
        needs.keys.reserve(expected);
        needs.counts.reserve(expected);
        needs.index.reserve(expected);
        for key in keys {
            let key = key.into();
            if needs.index.insert(key.clone(), needs.keys.len()).is_some() {
                return Err(Error::new(ErrorKind::DuplicateKey { key }).with_path(path));
            }
            needs.keys.push(key);
            needs.counts.push(key_count);
        }
        Ok(job)
    }

    /// Counts the rows of the existing file against the needs, filling in the report.
    /// Returns the length of the valid prefix of the file.
    async fn scan(&mut self, on_error: OnError, report: &mut Report) -> Result<u64, Error> {
        let mut problems = Vec::new();
        let mut resumed = 0;
        let path = self.path;
        let key_name = self.key_name;
        let key_count = self.key_count;
        let needs = &mut self.needs;
        let scan = scan_keys(path, key_name, |line, key| {
            let kind = match key {
                LineKey::Key(key) => match needs.get_mut(&key) {
                    Some(0) => ErrorKind::TooManyRows {
                        key: key.to_key(),
                        count: key_count,
                    },
                    Some(count) => {
                        *count -= 1;
                        resumed += 1;
                        return Ok(());
                    }
                    None => ErrorKind::UnexpectedKey { key: key.to_key() },
                },
                LineKey::Missing => ErrorKind::MissingKey {
                    column: key_name.to_owned(),
                },
                LineKey::NotScalar => ErrorKind::InvalidKey,
                LineKey::NotObject => ErrorKind::NotAnObject,
            };
            let problem = Error::new(kind).with_path(path).with_line(line);
            match on_error {
                OnError::Raise => Err(problem),
                OnError::Report => {
                    problems.push(problem);
                    Ok(())
                }
            }
        })
        .await?;
        report.problems = problems;
        report.rows_resumed = resumed;
        report.torn_bytes = scan.torn_bytes;
        Ok(scan.valid_len)
    }

    async fn run<G, S, F, T, E>(
        mut self,
        value_generator: G,
        limit: usize,
        mut options: Options<'_>,
    ) -> Result<Report, Error>
    where
        G: FnOnce(Vec<(Key, usize)>) -> S,
        S: Stream<Item = F>,
        F: Future<Output = Result<T, E>>,
        T: Serialize,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let path = self.path;
        let (file, created) = open_locked(path, OpenMode::Append).await?;
        let mut report = Report::default();
        if !created {
            let valid_len = self.scan(options.on_error, &mut report).await?;
            if report.torn_bytes > 0 {
                fault::point("before-truncate");
                let file = file
                    .try_clone()
                    .map_err(|e| Error::from(e).with_path(path))?;
                blocking::unblock(move || file.set_len(valid_len))
                    .await
                    .map_err(|e| Error::from(e).with_path(path))?;
                fault::point("after-truncate");
            }
        }
        let mut writer =
            JsonlWriter::from_locked(file, path.to_owned(), created, options.durability);

        let missing = self.needs.missing();
        let total = (self.needs.keys.len() as u64).saturating_mul(self.key_count as u64);
        let mut progress = Progress {
            resumed: report.rows_resumed,
            saved: 0,
            failed: 0,
            total,
        };
        let tasks = value_generator(missing).take_until(options.stop.stopped());
        // In a block, so that the stream, with what is still in flight, is dropped as soon as
        // the loop ends.
        let outcome = {
            let mut outputs = pin!(run_bounded(tasks, limit));
            loop {
                // Whenever no further row is ready, save what is fed: the write runs on the
                // thread pool while the rows in flight go on.
                let next = poll_fn(|cx| {
                    if let Poll::Ready(next) = outputs.as_mut().poll_next(cx) {
                        return Poll::Ready(Ok(next));
                    }
                    ready!(Sink::<()>::poll_flush(Pin::new(&mut writer), cx))?;
                    report_saved(&writer, &mut progress, &mut options);
                    // Saved: now only the next row can wake us.
                    Poll::Pending
                })
                .await;
                let next = match next {
                    Ok(next) => next,
                    Err(error) => break Err(error),
                };
                let row = match next {
                    None => break Ok(()),
                    Some(Ok(row)) => row,
                    Some(Err(error)) => {
                        let error = Error::new(ErrorKind::Generate)
                            .with_path(path)
                            .with_source(error);
                        // Rows that finished meanwhile are saved too; nothing more runs.
                        while let Some(finished) = outputs.as_mut().take_finished() {
                            let Ok(row) = finished else { continue };
                            if self.feed(&mut writer, &row).await.is_err() {
                                break;
                            }
                        }
                        break Err(error);
                    }
                };
                if let Err(error) = self.feed(&mut writer, &row).await {
                    break Err(error);
                }
                report_saved(&writer, &mut progress, &mut options);
            }
        };
        // Save every finished row, whether the run ended or failed.
        let closed = poll_fn(|cx| Sink::<()>::poll_close(Pin::new(&mut writer), cx)).await;
        report_saved(&writer, &mut progress, &mut options);
        outcome?;
        closed?;
        report.rows_written = writer.rows_written();
        report.rows_missing = self.needs.rows_missing();
        report.stopped = options.stop.is_stopped() && report.rows_missing > 0;
        Ok(report)
    }

    /// Feeds a generated row to the writer, once checked.
    async fn feed<T: Serialize>(&mut self, writer: &mut JsonlWriter, row: &T) -> Result<(), Error> {
        poll_fn(|cx| Sink::<&T>::poll_ready(Pin::new(&mut *writer), cx)).await?;
        writer.feed_checked(row, |line| self.take_generated(line))
    }

    /// Checks a generated row (serialized, without its newline) against what was asked of the
    /// generator, and counts it.
    fn take_generated(&mut self, line: &[u8]) -> Result<(), Error> {
        let kind = match parse_line_key(line, self.key_name) {
            Err(malformed) => {
                let kind = |column| ErrorKind::Json { column };
                return Err(malformed.into_error(kind).with_path(self.path));
            }
            Ok(LineKey::Key(key)) => match self.needs.get_mut(&key) {
                Some(count) if *count > 0 => {
                    *count -= 1;
                    return Ok(());
                }
                Some(_) => ErrorKind::TooManyRows {
                    key: key.to_key(),
                    count: self.key_count,
                },
                None => ErrorKind::UnexpectedKey { key: key.to_key() },
            },
            Ok(LineKey::Missing) => ErrorKind::MissingKey {
                column: self.key_name.to_owned(),
            },
            Ok(LineKey::NotScalar) => ErrorKind::InvalidKey,
            Ok(LineKey::NotObject) => ErrorKind::NotAnObject,
        };
        Err(Error::new(kind).with_path(self.path))
    }
}

/// Calls the progress callback once for each row saved since the last call.
fn report_saved(writer: &JsonlWriter, progress: &mut Progress, options: &mut Options<'_>) {
    while progress.saved < writer.rows_written() {
        progress.saved += 1;
        options.report_progress(*progress);
    }
}

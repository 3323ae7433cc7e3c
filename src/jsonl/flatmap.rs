//! `flatmap_jsonl_file`: zero or more output rows per source row, in source order.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Poll, ready};

use futures::channel::mpsc;
use futures::future::poll_fn;
use futures::sink::Sink;
use futures::stream::{FusedStream, Stream, StreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::files::{Bad, Fingerprint, fingerprint, set_len};
use super::reader::{LineReader, count_lines, line_str, malformed_json, scan_keys};
use super::writer::{JsonlWriter, OpenMode, open_locked};
use super::{Error, ErrorKind, OnError, Options, Progress, Report};
use crate::{fault, run_bounded};

/// Applies an async function to every row of `src`, writing the zero or more rows it returns
/// to `dst`, in source order: the Python library's `flatmap_jsonl_file`, made resumable
/// without waste.
///
/// `f` gets each row deserialized as `In` (a `serde_json::Map<String, Value>`, or a type of
/// yours) and returns a `Vec` of rows, each of which must serialize as a JSON object. An empty
/// `Vec` is a finished row with no output (a filter), and is not redone on resume. At most
/// `num_concurrent` calls run at once; the source is read lazily, and the outputs of finished
/// rows that wait for an earlier, slower row are held in a window of at most
/// [`Options::window`] source rows (the Python library's grows without limit).
///
/// # Resume
///
/// `resume_log` records, after the outputs of a source row are saved, `{"src_line": L,
/// "dst_end": d}`: row `L` is done and the output's first `d - 1` lines are committed. This is
/// the Python library's format, so a run begun by the Python library is finished here. Rows
/// that were written but not yet logged when a run was killed are cut and redone; a log that
/// claims rows the output lacks is an error ([`ErrorKind::OutputBehindLog`]). Unlike the
/// Python library, a failed row (with [`OnError::Report`]) does not cost the rows after it:
/// they are logged and kept, and the next run retries only the failed row, writing the output
/// and the log anew beside them (`<dst>.rewrite`, `<resume_log>.rewrite`) and renaming them
/// over the old ones: the output first, which commits the rewrite, then the log (a run that
/// finds only the new log left renames it). With a deterministic `f`, the output after any
/// sequence of interrupted runs is byte for byte what one uninterrupted run writes.
///
/// The log also records a fingerprint of the source (a record `{"flatmap": 1,
/// "source_bytes": n, "source_hash": h}`, which the Python library would not understand): a
/// source that changed is refused with [`ErrorKind::SourceChanged`]; one that only grew by
/// appended rows is not a change, and the new rows are processed.
///
/// # Errors
///
/// As [`map_by_key_jsonl_file`](super::map_by_key_jsonl_file): bad input names the file and
/// line; an output of `f` that is not a list of objects is [`ErrorKind::NotAnObject`]; an
/// error of `f` stops the run with [`OnError::Raise`] and is recorded with
/// [`OnError::Report`]; a malformed record in the middle of the log is
/// [`ErrorKind::Corrupt`].
///
/// # Panics
///
/// Panics if `num_concurrent` is 0.
///
/// # Examples
///
/// ```
/// use abstractions::jsonl::{flatmap_jsonl_file, Options};
/// use serde_json::{json, Map, Value};
///
/// # let dir = tempfile::tempdir()?;
/// # let src = dir.path().join("src.jsonl");
/// # let (dst, log) = (dir.path().join("dst.jsonl"), dir.path().join("dst.log"));
/// std::fs::write(&src, "{\"text\":\"a b\"}\n{\"text\":\"\"}\n{\"text\":\"c\"}\n")?;
/// // One row per word; a row without words gives none.
/// async fn words(row: Map<String, Value>) -> Result<Vec<Value>, std::io::Error> {
///     let text = row["text"].as_str().unwrap_or_default();
///     Ok(text.split_whitespace().map(|word| json!({ "word": word })).collect())
/// }
/// # futures::executor::block_on(async {
/// flatmap_jsonl_file(&src, &dst, &log, words, 4, Options::new()).await?;
/// assert_eq!(
///     std::fs::read_to_string(&dst)?,
///     "{\"word\":\"a\"}\n{\"word\":\"b\"}\n{\"word\":\"c\"}\n"
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[track_caller]
pub fn flatmap_jsonl_file<'a, F, Fut, In, Out, E>(
    src: impl AsRef<Path> + 'a,
    dst: impl AsRef<Path> + 'a,
    resume_log: impl AsRef<Path> + 'a,
    f: F,
    num_concurrent: usize,
    options: Options<'a>,
) -> impl Future<Output = Result<Report, Error>> + 'a
where
    F: FnMut(In) -> Fut + 'a,
    In: DeserializeOwned + 'a,
    Fut: Future<Output = Result<Vec<Out>, E>> + 'a,
    Out: Serialize + 'a,
    E: Into<Box<dyn std::error::Error + Send + Sync>> + 'a,
{
    let limit = crate::bounded::checked_limit(num_concurrent).get();
    async move {
        let paths = Paths::new(src.as_ref(), dst.as_ref(), resume_log.as_ref());
        run(paths, f, limit, options).await
    }
}

struct Paths {
    src: PathBuf,
    dst: PathBuf,
    log: PathBuf,
    dst_rewrite: PathBuf,
    log_rewrite: PathBuf,
}

impl Paths {
    fn new(src: &Path, dst: &Path, log: &Path) -> Self {
        let rewrite = |path: &Path| {
            let mut name = path.as_os_str().to_owned();
            name.push(".rewrite");
            PathBuf::from(name)
        };
        Paths {
            src: src.to_owned(),
            dst: dst.to_owned(),
            log: log.to_owned(),
            dst_rewrite: rewrite(dst),
            log_rewrite: rewrite(log),
        }
    }
}

/// A record of the log.
#[derive(Serialize, serde::Deserialize)]
struct Done {
    src_line: u64,
    dst_end: u64,
}

/// The log's record of the source's fingerprint.
#[derive(Serialize, serde::Deserialize)]
struct SourceRecord {
    flatmap: u32,
    source_bytes: u64,
    source_hash: String,
}

/// What the log says.
#[derive(Default)]
struct Log {
    /// The done source lines, with the output's line count after each.
    done: BTreeMap<u64, u64>,
    /// The last fingerprint recorded.
    source: Option<(u64, String)>,
}

impl Log {
    /// Lines of the output that the log commits.
    fn committed(&self) -> u64 {
        self.done.values().next_back().map_or(0, |&end| end - 1)
    }
}

/// A source row in the window, waiting for its outputs or for the rows before it.
struct Slot {
    line: u64,
    state: SlotState,
}

enum SlotState {
    Pending,
    /// Not done, and left for the next run (a rewrite stopped by a [`StopHandle`]).
    ///
    /// [`StopHandle`]: crate::StopHandle
    Skipped,
    /// Its outputs, each with its newline.
    Done {
        rows: Vec<u8>,
        count: u64,
    },
    Failed,
}

/// A done row's outputs being copied from the old output, in a rewrite.
struct Copy {
    line: u64,
    rows: Vec<u8>,
    count: u64,
    want: u64,
}

async fn run<F, Fut, In, Out, E>(
    paths: Paths,
    f: F,
    limit: usize,
    mut options: Options<'_>,
) -> Result<Report, Error>
where
    F: FnMut(In) -> Fut,
    In: DeserializeOwned,
    Fut: Future<Output = Result<Vec<Out>, E>>,
    Out: Serialize,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let src_error = |error: io::Error| Error::from(error).with_path(&paths.src);
    let (dst_file, dst_created) = open_locked(&paths.dst, OpenMode::Append).await?;
    finish_or_drop_rewrite(&paths).await?;

    let log = if async_fs::metadata(&paths.log).await.is_ok() {
        read_log(&paths.log).await?
    } else {
        Log::default()
    };
    let total = count_lines(&paths.src).await.map_err(src_error)?;
    let prefix = log.source.as_ref().map(|(bytes, _)| *bytes);
    let Fingerprint { whole, prefix } = fingerprint(&paths.src, prefix).await.map_err(src_error)?;
    if let Some((bytes, hash)) = &log.source {
        // Only rows appended since are allowed.
        if prefix.map(|(_, h)| format!("{h:016x}")) != Some(hash.clone()) || whole.0 < *bytes {
            return Err(Error::new(ErrorKind::SourceChanged).with_path(&paths.log));
        }
    }

    // The output: cut what the log does not commit; refuse what it claims and lacks.
    let mut report = Report::default();
    let committed = log.committed();
    if !dst_created {
        let (lines, cut_at, torn) = count_output(&paths.dst, committed).await?;
        report.torn_bytes = torn;
        if lines < committed {
            return Err(Error::new(ErrorKind::OutputBehindLog).with_path(&paths.dst));
        }
        if let Some(cut_at) = cut_at {
            fault::point("before-truncate");
            set_len(&dst_file, &paths.dst, cut_at).await?;
            fault::point("after-truncate");
        }
    } else if committed > 0 {
        return Err(Error::new(ErrorKind::OutputBehindLog).with_path(&paths.dst));
    }

    // A hole: a row before the last done one that is not done (it failed). Then rewrite.
    let mut source = LineReader::new(async_fs::File::open(&paths.src).await.map_err(src_error)?);
    let last_done = log.done.keys().next_back().copied().unwrap_or(0);
    let mut hole = false;
    if last_done > 0 {
        while let Some(line) = source.next_line().await.map_err(src_error)? {
            if !line.is_blank() && !log.done.contains_key(&line.number) {
                hole = true;
            }
            if line.number == last_done {
                break;
            }
        }
    }
    let resumed = log.done.len() as u64;
    report.rows_resumed = resumed;

    let log_file = open_locked(&paths.log, OpenMode::Append).await?;
    let mut old_output = None;
    let (mut writer, mut log_writer) = if hole {
        // Output first: its existence marks a rewrite in progress (see finish_or_drop_rewrite).
        let (file, _) = open_locked(&paths.dst_rewrite, OpenMode::Truncate).await?;
        let writer =
            JsonlWriter::from_locked(file, paths.dst_rewrite.clone(), true, options.durability);
        let (file, _) = open_locked(&paths.log_rewrite, OpenMode::Truncate).await?;
        let log_writer =
            JsonlWriter::from_locked(file, paths.log_rewrite.clone(), true, options.durability);
        source = LineReader::new(async_fs::File::open(&paths.src).await.map_err(src_error)?);
        let old = async_fs::File::open(&paths.dst)
            .await
            .map_err(|e| Error::from(e).with_path(&paths.dst))?;
        old_output = Some(LineReader::new(old));
        (writer, log_writer)
    } else {
        let writer =
            JsonlWriter::from_locked(dst_file, paths.dst.clone(), dst_created, options.durability);
        let (file, created) = log_file;
        let log_writer =
            JsonlWriter::from_locked(file, paths.log.clone(), created, options.durability);
        (writer, log_writer)
    };
    let mut log_pending: VecDeque<Done> = VecDeque::new();
    let source_record = SourceRecord {
        flatmap: 1,
        source_bytes: whole.0,
        source_hash: format!("{:016x}", whole.1),
    };
    if hole || log.source.as_ref().map(|(b, _)| *b) != Some(whole.0) {
        poll_fn(|cx| Sink::<&SourceRecord>::poll_ready(Pin::new(&mut log_writer), cx)).await?;
        Pin::new(&mut log_writer).start_send(&source_record)?;
    }

    let mut progress = Progress {
        resumed: if hole { 0 } else { resumed },
        saved: 0,
        failed: 0,
        total,
    };
    if progress.resumed > 0 {
        options.report_progress(progress);
    }
    // Output lines so far (committed and fed) in the file being written.
    let mut dst_lines = if hole { 0 } else { committed };
    // In a rewrite, the old output's line count before the next done row's outputs.
    let mut old_line = 0u64;

    let (call_tx, call_rx) = mpsc::unbounded::<(u64, In)>();
    let mut call_tx = Some(call_tx);
    let mut f = f;
    let calls = run_bounded(
        call_rx
            .take_until(options.stop.stopped())
            .map(move |(line, input)| {
                let call = f(input);
                async move { (line, call.await) }
            }),
        limit,
    );
    let mut calls = Box::pin(calls);
    let mut window: VecDeque<Slot> = VecDeque::new();
    // The sequence number of the window's first slot: calls carry their slot's number.
    let mut front_seq: u64 = 0;
    // Rows sent to the calls and not yet answered.
    let mut in_calls: usize = 0;
    let mut source_done = false;
    let mut bad_row: Option<Error> = None;
    // In a rewrite, the outputs of a done row being copied from the old output.
    let mut copying: Option<Copy> = None;

    let outcome: Result<(), Error> = poll_fn(|cx| {
        loop {
            let mut progressed = false;

            // Outputs of `f`, put in their slots.
            while !calls.is_terminated() {
                let Poll::Ready(next) = calls.as_mut().poll_next(cx) else {
                    break;
                };
                let Some((seq, result)) = next else { break };
                progressed = true;
                in_calls -= 1;
                report.calls += 1;
                // A row waits in the window until its outputs come.
                let slot = &mut window[(seq - front_seq) as usize];
                let line = slot.line;
                let at = |kind| Error::new(kind).with_path(&paths.src).with_line(line);
                match result {
                    Ok(outputs) => {
                        let mut rows = Vec::with_capacity(64 * outputs.len());
                        for output in &outputs {
                            let start = rows.len();
                            serde_json::to_writer(&mut rows, output)
                                .map_err(|error| at(ErrorKind::Serialize).with_source(error))?;
                            // serde_json writes an object, and only an object, starting with `{`.
                            if rows.get(start) != Some(&b'{') {
                                return Poll::Ready(Err(at(ErrorKind::NotAnObject)));
                            }
                            rows.push(b'\n');
                        }
                        slot.state = SlotState::Done {
                            rows,
                            count: outputs.len() as u64,
                        };
                    }
                    Err(error) => {
                        let error = at(ErrorKind::Generate).with_source(error);
                        match options.on_error {
                            OnError::Raise => return Poll::Ready(Err(error)),
                            OnError::Report => {
                                report.problems.push(error);
                                slot.state = SlotState::Failed;
                            }
                        }
                    }
                }
            }

            // Rows at the head of the window, in source order.
            while let Some(head) = window.front() {
                match &head.state {
                    // Its call was cancelled by a stop: left for the next run.
                    SlotState::Pending if calls.is_terminated() && old_output.is_some() => {}
                    SlotState::Pending => break,
                    SlotState::Skipped => {}
                    SlotState::Failed => {
                        progress.failed += 1;
                        report.rows_missing += 1;
                        options.report_progress(progress);
                    }
                    SlotState::Done { rows, count } => {
                        ready!(Sink::<()>::poll_ready(Pin::new(&mut writer), cx))?;
                        writer.feed_raw(rows, *count);
                        dst_lines += count;
                        log_pending.push_back(Done {
                            src_line: head.line,
                            dst_end: dst_lines + 1,
                        });
                    }
                }
                window.pop_front();
                front_seq += 1;
                progressed = true;
            }

            // A done row's outputs, copied from the old output in a rewrite.
            if let Some(copy) = copying.as_mut() {
                let old = old_output.as_mut().expect("only a rewrite copies");
                while copy.count < copy.want {
                    let row = match old.poll_line(cx) {
                        Poll::Pending => break,
                        Poll::Ready(Ok(Some(row))) => row,
                        Poll::Ready(Ok(None)) => {
                            let error = Error::new(ErrorKind::OutputBehindLog);
                            return Poll::Ready(Err(error.with_path(&paths.dst)));
                        }
                        Poll::Ready(Err(error)) => {
                            return Poll::Ready(Err(Error::from(error).with_path(&paths.dst)));
                        }
                    };
                    copy.rows.extend_from_slice(row.bytes);
                    copy.rows.push(b'\n');
                    copy.count += 1;
                }
                if copy.count < copy.want {
                    // Waits for the old output; its reader wakes the task.
                } else {
                    let copy = copying.take().expect("checked");
                    window.push_back(Slot {
                        line: copy.line,
                        state: SlotState::Done {
                            rows: copy.rows,
                            count: copy.count,
                        },
                    });
                    progressed = true;
                }
            }

            // New rows from the source, while the window has room.
            // Rows are read just ahead of the calls (twice the limit waiting, at most): enough to
            // keep every slot busy, few enough to stay in the cache.
            while copying.is_none()
                && !source_done
                && window.len() < options.window
                && (in_calls < 2 * limit || calls.is_terminated())
            {
                let stopped = options.stop.is_stopped();
                if stopped && old_output.is_none() {
                    source_done = true;
                    call_tx = None;
                    break;
                }
                let line = match source.poll_line(cx) {
                    Poll::Pending => break,
                    Poll::Ready(Err(error)) => return Poll::Ready(Err(src_error(error))),
                    Poll::Ready(Ok(None)) => {
                        source_done = true;
                        call_tx = None;
                        break;
                    }
                    Poll::Ready(Ok(Some(line))) => line,
                };
                progressed = true;
                if line.is_blank() {
                    continue;
                }
                let number = line.number;
                if let Some(&end) = log.done.get(&number) {
                    if old_output.is_some() {
                        // Done in an earlier run: its outputs are copied from the old output.
                        copying = Some(Copy {
                            line: number,
                            rows: Vec::new(),
                            count: 0,
                            want: end - 1 - old_line,
                        });
                        old_line = end - 1;
                    }
                    continue;
                }
                if stopped {
                    // A rewrite goes on copying what is done after a stop; a row not done is
                    // left for the next run.
                    window.push_back(Slot {
                        line: number,
                        state: SlotState::Skipped,
                    });
                    continue;
                }
                let input: Result<In, Error> = line_str(line.bytes)
                    .map_err(Bad::Json)
                    .and_then(|text| {
                        serde_json::from_str(text).map_err(|e| Bad::Json(malformed_json(e)))
                    })
                    .map_err(|bad| bad.at(&paths.src, number));
                match input {
                    Ok(input) => {
                        window.push_back(Slot {
                            line: number,
                            state: SlotState::Pending,
                        });
                        if let Some(tx) = &call_tx {
                            let seq = front_seq + window.len() as u64 - 1;
                            let _ = tx.unbounded_send((seq, input));
                            in_calls += 1;
                        }
                    }
                    Err(error) => {
                        bad_row = Some(error);
                        source_done = true;
                        call_tx = None;
                    }
                }
            }

            // Log the rows whose outputs are saved.
            if !log_pending.is_empty() {
                let saved = writer.rows_written() + if hole { 0 } else { committed };
                while log_pending
                    .front()
                    .is_some_and(|done| done.dst_end - 1 <= saved)
                {
                    // The crash tests' window: a row's outputs are saved, its record is not.
                    fault::point("before-log");
                    ready!(Sink::<()>::poll_ready(Pin::new(&mut log_writer), cx))?;
                    let done = log_pending.pop_front().expect("checked");
                    Pin::new(&mut log_writer).start_send(&done)?;
                    progress.saved += 1;
                    options.report_progress(progress);
                    progressed = true;
                }
            }

            if source_done && copying.is_none() && calls.is_terminated() && log_pending.is_empty() {
                let head_waits = window
                    .front()
                    .is_some_and(|slot| matches!(slot.state, SlotState::Pending));
                if window.is_empty() || head_waits {
                    return Poll::Ready(match bad_row.take() {
                        Some(error) => Err(error),
                        None => Ok(()),
                    });
                }
            }
            if !progressed {
                // Nothing more is ready now: save the outputs, then the log that commits them.
                ready!(Sink::<()>::poll_flush(Pin::new(&mut writer), cx))?;
                if log_pending.is_empty() {
                    ready!(Sink::<()>::poll_flush(Pin::new(&mut log_writer), cx))?;
                    return Poll::Pending;
                }
            }
        }
    })
    .await;

    // Save what is finished, whether the run ended or failed: outputs, then their log.
    drop(calls);
    let closed = poll_fn(|cx| Sink::<()>::poll_close(Pin::new(&mut writer), cx)).await;
    if closed.is_ok() {
        let saved = writer.rows_written() + if hole { 0 } else { committed };
        while log_pending
            .front()
            .is_some_and(|done| done.dst_end - 1 <= saved)
        {
            let done = log_pending.pop_front().expect("checked");
            futures::SinkExt::feed(&mut log_writer, &done).await?;
            progress.saved += 1;
            options.report_progress(progress);
        }
    }
    let log_closed = poll_fn(|cx| Sink::<()>::poll_close(Pin::new(&mut log_writer), cx)).await;
    outcome?;
    closed?;
    log_closed?;
    if hole {
        // The output's rename commits the rewrite; the log's follows.
        fault::point("before-rename");
        rename(&paths.dst_rewrite, &paths.dst).await?;
        fault::point("between-renames");
        rename(&paths.log_rewrite, &paths.log).await?;
        fault::point("after-rename");
    }
    report.rows_written = progress.saved;
    let done = progress.resumed + progress.saved + progress.failed;
    report.stopped = options.stop.is_stopped() && done < total;
    if report.stopped {
        report.rows_missing = total - done;
    }
    Ok(report)
}

async fn rename(from: &Path, to: &Path) -> Result<(), Error> {
    let (from, to_owned) = (from.to_owned(), to.to_owned());
    blocking::unblock(move || std::fs::rename(from, to_owned))
        .await
        .map_err(|e| Error::from(e).with_path(to))
}

/// Finishes or undoes a rewrite that a killed run left: if the new output is still beside the
/// old one, the rewrite was not committed, and both new files go (the log's first, so that a
/// kill in between cannot leave a new log alone); if only the new log is left, the output was
/// renamed, and the log follows.
async fn finish_or_drop_rewrite(paths: &Paths) -> Result<(), Error> {
    let exists = |path: &Path| {
        let path = path.to_owned();
        async move { async_fs::metadata(path).await.is_ok() }
    };
    let dst_rewrite = exists(&paths.dst_rewrite).await;
    let log_rewrite = exists(&paths.log_rewrite).await;
    if dst_rewrite {
        for path in [&paths.log_rewrite, &paths.dst_rewrite] {
            match async_fs::remove_file(path).await {
                Err(error) if error.kind() != io::ErrorKind::NotFound => {
                    return Err(Error::from(error).with_path(path));
                }
                _ => {}
            }
        }
    } else if log_rewrite {
        rename(&paths.log_rewrite, &paths.log).await?;
    }
    Ok(())
}

/// Reads the log: its done rows and its last fingerprint, cutting nothing (the caller's writer
/// appends after its valid records).
async fn read_log(path: &Path) -> Result<Log, Error> {
    let scan = scan_keys(path, "src_line", |_, _| Ok(())).await?;
    let io_error = |error: io::Error| Error::from(error).with_path(path);
    let mut log = Log::default();
    let mut lines = LineReader::new(async_fs::File::open(path).await.map_err(io_error)?);
    let (mut last_line, mut last_end) = (0u64, 1u64);
    while let Some(line) = lines.next_line().await.map_err(io_error)? {
        if line.offset >= scan.valid_len {
            break;
        }
        if line.is_blank() {
            continue;
        }
        let number = line.number;
        let corrupt = || {
            Error::new(ErrorKind::Corrupt { column: 1 })
                .with_path(path)
                .with_line(number)
        };
        let text = line_str(line.bytes).map_err(|m| Bad::Json(m).at(path, number))?;
        if let Ok(source) = serde_json::from_str::<SourceRecord>(text) {
            log.source = Some((source.source_bytes, source.source_hash));
            continue;
        }
        let done: Done = serde_json::from_str(text).map_err(|_| corrupt())?;
        if done.src_line <= last_line || done.dst_end < last_end {
            return Err(corrupt());
        }
        (last_line, last_end) = (done.src_line, done.dst_end);
        log.done.insert(done.src_line, done.dst_end);
    }
    if scan.torn_bytes > 0 {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(io_error)?;
        set_len(&file, path, scan.valid_len).await?;
    }
    Ok(log)
}

/// Counts the valid lines of the output (a torn tail is not one), and where it must be cut
/// to keep `committed` lines, if it is longer. Returns the count, the cut, and the torn bytes.
async fn count_output(path: &Path, committed: u64) -> Result<(u64, Option<u64>, u64), Error> {
    let scan = scan_keys(path, "", |_, _| Ok(())).await?;
    let io_error = |error: io::Error| Error::from(error).with_path(path);
    let mut lines = LineReader::new(async_fs::File::open(path).await.map_err(io_error)?);
    let mut count = 0;
    let mut cut = None;
    while let Some(line) = lines.next_line().await.map_err(io_error)? {
        if line.offset >= scan.valid_len {
            break;
        }
        if count == committed && cut.is_none() {
            cut = Some(line.offset);
        }
        count += 1;
    }
    if cut.is_none() && scan.torn_bytes > 0 {
        cut = Some(scan.valid_len);
    }
    Ok((count, cut, scan.torn_bytes))
}

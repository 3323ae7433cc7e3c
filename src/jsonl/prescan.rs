//! Source lines read, split, checked as UTF-8 and scanned ahead on the thread pool, so that
//! the thread running a function does only what needs its state (finding keys, writing rows)
//! while the next batch of lines is prepared on another core.

use std::fs::File;
use std::future::Future;
use std::io::{self, Read, Seek, SeekFrom};
use std::mem;
use std::ops::Range;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use blocking::{Task, unblock};
use futures::future::poll_fn;

use super::raw::scan_source_row;
use super::reader::CHUNK_SIZE;

/// The columns a batch is scanned for: the key column and the columns to keep.
pub(crate) struct ScanColumns {
    pub(crate) key: String,
    pub(crate) keep: Vec<String>,
}

/// Lines of a file, from a given offset and line number, read and scanned a batch (about
/// [`CHUNK_SIZE`] bytes) ahead: while the lines of one batch are handed out, the next is read
/// and scanned on the thread pool. Lines are cut as [`LineReader`](super::reader::LineReader)
/// cuts them (at `\n`, which is not part of the line; a last line may lack it), and each line
/// comes with its text if it is UTF-8 and with what [`scan_source_row`] found in it, if it
/// answered. Memory: two batches, each a chunk plus the longest line.
pub(crate) struct Prescan {
    batch: Batch,
    /// The next line of `batch` to hand out.
    next: usize,
    state: State,
    columns: Arc<ScanColumns>,
    /// The buffers of the batch handed out before `batch`, for the next read to reuse.
    spare: Option<Batch>,
    /// The offset just past the last line handed out.
    offset: u64,
}

enum State {
    Idle(Reader),
    Busy(Task<(Reader, Batch)>),
    /// After the end of the file or an error.
    Done,
}

/// What a read needs, moved to the thread pool and back.
struct Reader {
    path: PathBuf,
    /// Opened by the first read, at `offset`.
    file: Option<File>,
    /// The bytes of a line not yet complete.
    carry: Vec<u8>,
    chunk_size: usize,
    /// The offset of `carry`'s first byte in the file.
    offset: u64,
    /// The number of the next line.
    number: u64,
    eof: bool,
}

/// Lines read and scanned.
#[derive(Default)]
struct Batch {
    /// The lines' bytes, as text if they are all UTF-8.
    text: Text,
    lines: Vec<LineInfo>,
    /// The kept columns of the scanned lines, as ranges of their line.
    kept: Vec<Range<usize>>,
    /// A read failed after these lines.
    error: Option<io::Error>,
    /// No line comes after these.
    end: bool,
}

enum Text {
    Str(String),
    Bytes(Vec<u8>),
}

impl Default for Text {
    fn default() -> Self {
        Text::Bytes(Vec::new())
    }
}

impl Text {
    fn bytes(&self) -> &[u8] {
        match self {
            Text::Str(text) => text.as_bytes(),
            Text::Bytes(bytes) => bytes,
        }
    }

    fn into_bytes(self) -> Vec<u8> {
        match self {
            Text::Str(text) => text.into_bytes(),
            Text::Bytes(bytes) => bytes,
        }
    }
}

struct LineInfo {
    range: Range<usize>,
    number: u64,
    /// The offset of the line's first byte in the file.
    offset: u64,
    /// Whether the line ended with `\n` (only the last line of the file may not).
    terminated: bool,
    /// The raw key, as a range of the line, and where its kept ranges begin in
    /// [`Batch::kept`], if the scan answered.
    scanned: Option<(Range<usize>, usize)>,
}

/// A line handed out by [`Prescan`].
pub(crate) struct PreLine<'a> {
    /// The line number, from 1.
    pub(crate) number: u64,
    /// The byte offset of the line's first byte in the file.
    pub(crate) offset: u64,
    /// The line's bytes, without its `\n`.
    pub(crate) bytes: &'a [u8],
    /// Whether the line ended with `\n` (only the last line of the file may not).
    pub(crate) terminated: bool,
    /// The line's text, if the whole batch was UTF-8 (else check `bytes`).
    pub(crate) text: Option<&'a str>,
    /// If [`scan_source_row`] answered: the raw key and the kept columns' ranges in the line.
    pub(crate) scanned: Option<(&'a str, &'a [Range<usize>])>,
}

impl PreLine<'_> {
    /// The byte offset just past the line and its `\n`, if any.
    pub(crate) fn end_offset(&self) -> u64 {
        self.offset + self.bytes.len() as u64 + u64::from(self.terminated)
    }
}

impl Prescan {
    /// Lines of the file at `path` from byte `offset`, the first numbered `number`.
    pub(crate) fn new(path: PathBuf, offset: u64, number: u64, columns: ScanColumns) -> Self {
        Self::with_chunk_size(path, offset, number, columns, CHUNK_SIZE)
    }

    /// As [`Prescan::new`], reading at least `chunk_size` bytes at a time.
    fn with_chunk_size(
        path: PathBuf,
        offset: u64,
        number: u64,
        columns: ScanColumns,
        chunk_size: usize,
    ) -> Self {
        Prescan {
            batch: Batch::default(),
            next: 0,
            state: State::Idle(Reader {
                path,
                file: None,
                carry: Vec::new(),
                chunk_size,
                offset,
                number,
                eof: false,
            }),
            columns: Arc::new(columns),
            spare: None,
            offset,
        }
    }

    /// Polls for the next line; `None` at the end of the file. After an error, the lines
    /// read before it have been handed out, and the error ends the lines.
    pub(crate) fn poll_line(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<Option<PreLine<'_>>>> {
        let next = ready!(self.poll_next_index(cx))?;
        Poll::Ready(Ok(next.map(|i| self.line(i))))
    }

    /// The next line; `None` at the end of the file.
    pub(crate) async fn next_line(&mut self) -> io::Result<Option<PreLine<'_>>> {
        let next = poll_fn(|cx| self.poll_next_index(cx)).await?;
        Ok(next.map(|i| self.line(i)))
    }

    /// Polls for the index in `batch` of the next line.
    fn poll_next_index(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<usize>>> {
        loop {
            if let Some(line) = self.batch.lines.get(self.next) {
                self.offset = line.offset + line.range.len() as u64 + u64::from(line.terminated);
                self.next += 1;
                return Poll::Ready(Ok(Some(self.next - 1)));
            }
            if let Some(error) = self.batch.error.take() {
                self.state = State::Done;
                return Poll::Ready(Err(error));
            }
            match &mut self.state {
                State::Done => return Poll::Ready(Ok(None)),
                State::Idle(_) => self.start_read(),
                State::Busy(task) => {
                    let (reader, batch) = ready!(Pin::new(task).poll(cx));
                    let end = batch.end || batch.error.is_some();
                    self.spare = Some(mem::replace(&mut self.batch, batch));
                    self.next = 0;
                    self.state = State::Idle(reader);
                    if end {
                        self.state = State::Done;
                    } else {
                        // Read the next batch while this one is handed out.
                        self.start_read();
                    }
                }
            }
        }
    }

    /// The byte offset just past the last line handed out: after the last line, the length
    /// of the file.
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    fn start_read(&mut self) {
        let State::Idle(reader) = mem::replace(&mut self.state, State::Done) else {
            return;
        };
        let spare = self.spare.take().unwrap_or_default();
        let columns = self.columns.clone();
        self.state = State::Busy(unblock(move || read_batch(reader, spare, &columns)));
    }

    fn line(&self, i: usize) -> PreLine<'_> {
        let info = &self.batch.lines[i];
        let range = info.range.clone();
        let text = match &self.batch.text {
            Text::Str(text) => Some(&text[range.clone()]),
            Text::Bytes(_) => None,
        };
        let scanned = match (&info.scanned, text) {
            (Some((raw, kept_at)), Some(text)) => {
                let kept = &self.batch.kept[*kept_at..*kept_at + self.columns.keep.len()];
                Some((&text[raw.clone()], kept))
            }
            _ => None,
        };
        PreLine {
            number: info.number,
            offset: info.offset,
            terminated: info.terminated,
            bytes: &self.batch.text.bytes()[range],
            text,
            scanned,
        }
    }
}

/// Reads the next batch of lines (at least one, unless the file ends or a read fails), and
/// scans them.
fn read_batch(mut reader: Reader, spare: Batch, columns: &ScanColumns) -> (Reader, Batch) {
    let mut buf = spare.text.into_bytes();
    buf.clear();
    let mut batch = Batch {
        text: Text::default(),
        lines: spare.lines,
        kept: spare.kept,
        error: None,
        end: false,
    };
    batch.lines.clear();
    batch.kept.clear();
    buf.append(&mut reader.carry);
    let start_offset = reader.offset;
    if let Err(error) = fill(&mut reader, &mut buf) {
        batch.error = Some(error);
    }
    // Complete lines, and at the end of the file the last one without its newline.
    let cut = if reader.eof {
        buf.len()
    } else {
        memchr::memrchr(b'\n', &buf).map_or(0, |i| i + 1)
    };
    reader.carry.extend_from_slice(&buf[cut..]);
    buf.truncate(cut);
    reader.offset = start_offset + cut as u64;
    let mut start = 0;
    for newline in memchr::memchr_iter(b'\n', &buf) {
        batch.lines.push(LineInfo {
            range: start..newline,
            number: reader.number,
            offset: start_offset + start as u64,
            terminated: true,
            scanned: None,
        });
        reader.number += 1;
        start = newline + 1;
    }
    if start < buf.len() {
        batch.lines.push(LineInfo {
            range: start..buf.len(),
            number: reader.number,
            offset: start_offset + start as u64,
            terminated: false,
            scanned: None,
        });
        reader.number += 1;
    }
    batch.end = reader.eof && batch.error.is_none();
    batch.text = match String::from_utf8(buf) {
        Ok(text) => Text::Str(text),
        Err(error) => Text::Bytes(error.into_bytes()),
    };
    if let Text::Str(text) = &batch.text {
        let mut kept = Vec::with_capacity(columns.keep.len());
        for line in &mut batch.lines {
            let line_text = &text[line.range.clone()];
            if let Some(raw) = scan_source_row(line_text, &columns.key, &columns.keep, &mut kept) {
                let raw_start = raw.as_ptr() as usize - line_text.as_ptr() as usize;
                line.scanned = Some((raw_start..raw_start + raw.len(), batch.kept.len()));
                batch.kept.extend(
                    kept.iter()
                        .map(|range| range.clone().expect("checked by the scan")),
                );
            }
        }
    }
    (reader, batch)
}

/// Reads into `buf` (at least a chunk at a time) until it holds a newline or the file ends.
fn fill(reader: &mut Reader, buf: &mut Vec<u8>) -> io::Result<()> {
    let file = match &mut reader.file {
        Some(file) => file,
        None => {
            let mut file = File::open(&reader.path)?;
            file.seek(SeekFrom::Start(reader.offset))?;
            reader.file.insert(file)
        }
    };
    let mut scanned = 0;
    loop {
        let len = buf.len();
        buf.resize(len + reader.chunk_size, 0);
        match file.read(&mut buf[len..]) {
            Ok(0) => {
                buf.truncate(len);
                reader.eof = true;
                return Ok(());
            }
            Ok(n) => {
                buf.truncate(len + n);
                if memchr::memchr(b'\n', &buf[scanned..]).is_some() {
                    return Ok(());
                }
                scanned = buf.len();
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => buf.truncate(len),
            Err(error) => {
                buf.truncate(len);
                return Err(error);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// (number, offset, bytes, terminated, scanned raw key and kept texts) of each line, as
    /// `Prescan` hands them.
    type Seen = (u64, u64, Vec<u8>, bool, Option<(String, Vec<String>)>);

    fn prescan(input: &[u8], offset: u64, chunk_size: usize) -> Vec<Seen> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("src.jsonl");
        std::fs::write(&path, input).unwrap();
        let columns = ScanColumns {
            key: "k".into(),
            keep: vec!["a".into()],
        };
        let mut lines = Prescan::with_chunk_size(path, offset, 7, columns, chunk_size);
        let mut seen = Vec::new();
        futures::executor::block_on(poll_fn(|cx| {
            loop {
                let Some(line) = ready!(lines.poll_line(cx)).unwrap() else {
                    return Poll::Ready(());
                };
                if let Some(text) = line.text {
                    assert_eq!(text.as_bytes(), line.bytes);
                }
                let scanned = line.scanned.map(|(raw, kept)| {
                    let text = line.text.unwrap();
                    let kept = kept.iter().map(|r| text[r.clone()].to_owned()).collect();
                    (raw.to_owned(), kept)
                });
                seen.push((
                    line.number,
                    line.offset,
                    line.bytes.to_vec(),
                    line.terminated,
                    scanned,
                ));
            }
        }));
        assert_eq!(
            lines.offset(),
            input.len() as u64,
            "at the end, the file's length"
        );
        seen
    }

    /// What `prescan` should see: the lines of `input` after `offset` (`LineReader`'s cut),
    /// each scanned on its own.
    fn expected(input: &[u8], offset: u64) -> Vec<Seen> {
        let rest = &input[offset as usize..];
        let mut pieces: Vec<&[u8]> = rest.split(|&b| b == b'\n').collect();
        if pieces.last().is_some_and(|last| last.is_empty()) {
            pieces.pop();
        }
        let mut at = offset;
        let keep = vec!["a".to_owned()];
        pieces
            .into_iter()
            .enumerate()
            .map(|(i, bytes)| {
                let scanned = std::str::from_utf8(bytes).ok().and_then(|text| {
                    let mut kept = Vec::new();
                    let raw = scan_source_row(text, "k", &keep, &mut kept)?;
                    let kept = kept.iter().map(|r| text[r.clone().unwrap()].to_owned());
                    Some((raw.to_owned(), kept.collect()))
                });
                let start = at;
                let terminated = start as usize + bytes.len() < input.len();
                at += bytes.len() as u64 + u64::from(terminated);
                (7 + i as u64, start, bytes.to_vec(), terminated, scanned)
            })
            .collect()
    }

    #[test]
    fn lines_and_scans_of_a_small_file() {
        let input = b"{\"k\":1,\"a\":[2]}\n\n  \r\n{\"k\":\"x\"}\n{\"a\":0,\"k\":true}";
        let seen = prescan(input, 0, 5);
        assert_eq!(seen, expected(input, 0));
        assert_eq!(seen.len(), 5);
        assert_eq!(seen[0].4, Some(("1".into(), vec!["[2]".into()])));
        assert_eq!(seen[3].4, None, "no kept column: left to the full parse");
        assert_eq!(seen[4].4, Some(("true".into(), vec!["0".into()])));
        assert!(!seen[4].3, "the last line has no newline");
    }

    proptest! {
        /// Lines, numbers and scans are those of the file cut at `\n`, whatever the chunk
        /// size, the offset or invalid UTF-8.
        #[test]
        fn lines_match_a_split(
            input in proptest::collection::vec(
                proptest::sample::select(&b"{}\"k:a1,\n \r\xff"[..]),
                0..80,
            ),
            chunk_size in 1usize..20,
            offset in any::<proptest::sample::Index>(),
        ) {
            // Start at a line's beginning, as a resumed run does.
            let starts: Vec<usize> = std::iter::once(0)
                .chain(input.iter().enumerate().filter(|(_, b)| **b == b'\n').map(|(i, _)| i + 1))
                .collect();
            let offset = starts[offset.index(starts.len())] as u64;
            prop_assert_eq!(prescan(&input, offset, chunk_size), expected(&input, offset));
        }
    }
}

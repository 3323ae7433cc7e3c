//! Reading JSONL files as a stream: the line reader, the typed reader and the resume scan.
//!
//! Everything here reads a file in large chunks through one buffer and never holds the whole
//! file in memory:
//!
//! - [`LineReader`] splits the bytes into lines and lends each one, in place, with its number
//!   and byte offset. The other readers, and the crate's functions that parse lines themselves,
//!   are built on it.
//! - [`JsonlReader`] deserializes each line into a row.
//! - [`scan_keys`] validates an existing output file before resuming it: it parses only the key
//!   column of each line and finds the torn tail that a crash can leave.

use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures::future::poll_fn;
use futures::io::AsyncRead;
use futures::stream::{FusedStream, Stream};
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess,
    Visitor,
};

use super::error::{Error, ErrorKind};
use super::key::{KeyRef, KeySeed};
use super::prescan::{Prescan, ScanColumns};
use super::raw::raw_key;

/// How many bytes the readers ask the file for at a time.
pub(crate) const CHUNK_SIZE: usize = 1 << 20;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

// ---------------------------------------------------------------------------------------------
// The line reader
// ---------------------------------------------------------------------------------------------

/// Splits an [`AsyncRead`] into lines, lending each line from its buffer.
///
/// It reads at least a chunk (1 MiB by default) at a time, so its buffer holds one chunk plus
/// the longest line seen. Lines end at `\n`; the `\n` is not part of [`Line::bytes`] (a `\r`
/// before it is, and JSON parsers take it as whitespace). The last line of the input may lack its
/// `\n`: [`Line::terminated`] tells.
pub(crate) struct LineReader<R> {
    reader: R,
    buf: Vec<u8>,
    /// The first byte not yet handed out as part of a line.
    start: usize,
    /// The end of the bytes read into `buf`.
    end: usize,
    /// `buf[start..scanned]` is known to hold no `\n`.
    scanned: usize,
    chunk_size: usize,
    /// The number of the next line, from 1.
    number: u64,
    /// The offset in the input of `buf[start]`.
    offset: u64,
    eof: bool,
}

/// One line lent by a [`LineReader`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Line<'a> {
    /// The line number, from 1.
    pub(crate) number: u64,
    /// The byte offset of the line's first byte in the input.
    pub(crate) offset: u64,
    /// The line's bytes, without its `\n`.
    pub(crate) bytes: &'a [u8],
    /// Whether the line ended with `\n` (only the last line of the input may not).
    pub(crate) terminated: bool,
}

impl Line<'_> {
    /// The byte offset just past the line and its `\n`, if any.
    #[cfg(test)]
    pub(crate) fn end_offset(&self) -> u64 {
        self.offset + self.bytes.len() as u64 + u64::from(self.terminated)
    }

    /// Whether the line holds only JSON whitespace (or nothing), and so no row.
    pub(crate) fn is_blank(&self) -> bool {
        is_blank(self.bytes)
    }
}

/// Whether `bytes` are only JSON whitespace (`\n` cannot occur in a line).
pub(crate) fn is_blank(bytes: &[u8]) -> bool {
    bytes.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r'))
}

/// Where a line lies in the buffer; it becomes a [`Line`] once the reader is borrowed again.
#[derive(Clone, Copy)]
struct Span {
    start: usize,
    end: usize,
    number: u64,
    offset: u64,
    terminated: bool,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    /// A line reader that reads [`CHUNK_SIZE`] bytes at a time.
    pub(crate) fn new(reader: R) -> Self {
        Self::with_chunk_size(reader, CHUNK_SIZE)
    }

    /// A line reader that reads at least `chunk_size` bytes at a time.
    ///
    /// # Panics
    ///
    /// If `chunk_size` is zero.
    #[track_caller]
    pub(crate) fn with_chunk_size(reader: R, chunk_size: usize) -> Self {
        assert!(chunk_size > 0, "`chunk_size` must be at least 1");
        LineReader {
            reader,
            buf: Vec::new(),
            start: 0,
            end: 0,
            scanned: 0,
            chunk_size,
            number: 1,
            offset: 0,
            eof: false,
        }
    }

    /// Polls for the next line; `None` at the end of the input.
    ///
    /// The line borrows the reader's buffer until the next call. After an error, polling again
    /// retries the read that failed.
    pub(crate) fn poll_line(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<Line<'_>>>> {
        let span = ready!(self.poll_span(cx))?;
        Poll::Ready(Ok(span.map(|span| self.line(span))))
    }

    /// The next line; `None` at the end of the input.
    pub(crate) async fn next_line(&mut self) -> io::Result<Option<Line<'_>>> {
        let span = poll_fn(|cx| self.poll_span(cx)).await?;
        Ok(span.map(|span| self.line(span)))
    }

    /// The byte offset of the first byte not yet handed out: after the last line, the length of
    /// the input.
    #[cfg(test)]
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    fn line(&self, span: Span) -> Line<'_> {
        Line {
            number: span.number,
            offset: span.offset,
            bytes: &self.buf[span.start..span.end],
            terminated: span.terminated,
        }
    }

    fn poll_span(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<Span>>> {
        loop {
            if let Some(i) = memchr::memchr(b'\n', &self.buf[self.scanned..self.end]) {
                let newline = self.scanned + i;
                return Poll::Ready(Ok(Some(self.take(newline, true))));
            }
            self.scanned = self.end;
            if self.eof {
                if self.start == self.end {
                    return Poll::Ready(Ok(None));
                }
                return Poll::Ready(Ok(Some(self.take(self.end, false))));
            }
            self.make_room();
            match ready!(Pin::new(&mut self.reader).poll_read(cx, &mut self.buf[self.end..])) {
                Ok(0) => self.eof = true,
                Ok(n) => self.end += n,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Poll::Ready(Err(error)),
            }
        }
    }

    /// Hands out `buf[start..line_end]` as the next line.
    fn take(&mut self, line_end: usize, terminated: bool) -> Span {
        let span = Span {
            start: self.start,
            end: line_end,
            number: self.number,
            offset: self.offset,
            terminated,
        };
        let next = line_end + usize::from(terminated);
        self.offset += (next - self.start) as u64;
        self.number += 1;
        self.start = next;
        self.scanned = next;
        span
    }

    /// Moves the unfinished line to the front of the buffer and makes room for a chunk after it.
    fn make_room(&mut self) {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.scanned -= self.start;
            self.start = 0;
        }
        if self.buf.len() - self.end < self.chunk_size {
            self.buf.resize(self.end + self.chunk_size, 0);
        }
    }
}

impl<R> fmt::Debug for LineReader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LineReader")
            .field("next_line", &self.number)
            .field("offset", &self.offset)
            .field("buffered", &(self.end - self.start))
            .field("eof", &self.eof)
            .finish_non_exhaustive()
    }
}

/// Counts the lines of a file that may hold a row, for progress totals.
///
/// A line counts if it holds anything but JSON whitespace, whether or not it is valid JSON; a
/// last line without its `\n` counts too. So this is the number of rows [`JsonlReader`] yields
/// (or errors) for the same file, read with a fast scan for `\n` and no parsing.
///
/// # Errors
///
/// An I/O error opening or reading the file.
#[allow(
    dead_code,
    reason = "for the progress totals of the functions built on the reader"
)]
pub(crate) async fn count_lines(path: &Path) -> io::Result<u64> {
    let mut lines = LineReader::new(async_fs::File::open(path).await?);
    let mut count = 0;
    while let Some(line) = lines.next_line().await? {
        count += u64::from(!line.is_blank());
    }
    Ok(count)
}

// ---------------------------------------------------------------------------------------------
// The typed reader
// ---------------------------------------------------------------------------------------------

/// A line that is not valid JSON: where the parser stopped, and why.
pub(crate) struct Malformed {
    column: usize,
    source: BoxError,
}

impl Malformed {
    pub(crate) fn into_error(self, kind: fn(usize) -> ErrorKind) -> Error {
        Error::new(kind(self.column)).with_source(self.source)
    }
}

/// The line as text: JSON is UTF-8, and checking it up front also covers the strings a parser
/// skips without reading.
pub(crate) fn line_str(bytes: &[u8]) -> Result<&str, Malformed> {
    std::str::from_utf8(bytes).map_err(|error| Malformed {
        column: error.valid_up_to() + 1,
        source: error.into(),
    })
}

pub(crate) fn malformed_json(error: serde_json::Error) -> Malformed {
    Malformed {
        column: error.column().max(1),
        source: error.into(),
    }
}

fn parse_row<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Malformed> {
    serde_json::from_str(line_str(bytes)?).map_err(malformed_json)
}

/// Reads a JSONL file as a stream of rows of type `T`.
///
/// Each line holds one row, as JSON. Lines holding only whitespace hold no row and are skipped.
/// The last line may lack its `\n`: it is read as any other line.
///
/// The file is read in chunks of 1 MiB, so the memory used is a chunk plus the longest line,
/// whatever the size of the file.
///
/// # Errors
///
/// Opening fails with [`ErrorKind::Io`] if the file cannot be opened. The stream then yields
/// an error for each line that is not valid UTF-8 or not valid JSON, or does not deserialize as
/// a `T`: [`ErrorKind::Json`], with the file, the line and the column in the line; it goes on
/// with the next line. It yields [`ErrorKind::Io`] if reading fails, and ends there.
///
/// # Examples
///
/// ```
/// use abstractions::jsonl::JsonlReader;
/// use futures::TryStreamExt;
///
/// #[derive(serde::Deserialize, Debug, PartialEq)]
/// struct Row {
///     key: String,
///     n: u32,
/// }
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let path = std::env::temp_dir().join(format!("jsonl-reader-doc-{}.jsonl", std::process::id()));
/// std::fs::write(&path, "{\"key\": \"a\", \"n\": 1}\n\n{\"key\": \"b\", \"n\": 2}")?;
///
/// let rows: Vec<Row> = futures::executor::block_on(async {
///     JsonlReader::open(&path).await?.try_collect().await
/// })?;
/// assert_eq!(
///     rows,
///     [Row { key: "a".into(), n: 1 }, Row { key: "b".into(), n: 2 }]
/// );
/// # std::fs::remove_file(&path)?;
/// # Ok(())
/// # }
/// ```
#[must_use = "streams do nothing unless polled"]
pub struct JsonlReader<T> {
    lines: LineReader<async_fs::File>,
    path: PathBuf,
    done: bool,
    rows: PhantomData<fn() -> T>,
}

impl<T> JsonlReader<T> {
    /// Opens the JSONL file at `path` for reading rows of type `T`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Io`], with the path, if the file cannot be opened.
    ///
    /// # Examples
    ///
    /// ```
    /// use abstractions::jsonl::{ErrorKind, JsonlReader};
    ///
    /// let missing = futures::executor::block_on(
    ///     JsonlReader::<serde_json::Value>::open("no/such/file.jsonl"),
    /// );
    /// let error = missing.unwrap_err();
    /// assert_eq!(error.kind(), &ErrorKind::Io);
    /// assert_eq!(error.path(), Some("no/such/file.jsonl".as_ref()));
    /// ```
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let file = async_fs::File::open(path)
            .await
            .map_err(|error| Error::from(error).with_path(path))?;
        Ok(JsonlReader {
            lines: LineReader::new(file),
            path: path.to_owned(),
            done: false,
            rows: PhantomData,
        })
    }

    /// The path of the file being read.
    ///
    /// # Examples
    ///
    /// ```
    /// use abstractions::jsonl::JsonlReader;
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let path = std::env::temp_dir().join(format!("jsonl-path-doc-{}.jsonl", std::process::id()));
    /// std::fs::write(&path, "1\n")?;
    /// let reader = futures::executor::block_on(JsonlReader::<u32>::open(&path))?;
    /// assert_eq!(reader.path(), path);
    /// # std::fs::remove_file(&path)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl<T: DeserializeOwned> Stream for JsonlReader<T> {
    type Item = Result<T, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        loop {
            let line = match ready!(this.lines.poll_line(cx)) {
                Ok(Some(line)) => line,
                Ok(None) => {
                    this.done = true;
                    return Poll::Ready(None);
                }
                Err(error) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(Error::from(error).with_path(&this.path))));
                }
            };
            if line.is_blank() {
                continue;
            }
            let row = parse_row(line.bytes).map_err(|malformed| {
                malformed
                    .into_error(|column| ErrorKind::Json { column })
                    .with_path(&this.path)
                    .with_line(line.number)
            });
            return Poll::Ready(Some(row));
        }
    }
}

impl<T: DeserializeOwned> FusedStream for JsonlReader<T> {
    fn is_terminated(&self) -> bool {
        self.done
    }
}

impl<T> fmt::Debug for JsonlReader<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonlReader")
            .field("path", &self.path)
            .field("lines", &self.lines)
            .field("done", &self.done)
            .finish()
    }
}

// ---------------------------------------------------------------------------------------------
// The resume scan
// ---------------------------------------------------------------------------------------------

/// What the key column of one valid line held.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum LineKey<'a> {
    /// A key, its string borrowed from the line when it has no escapes.
    Key(KeyRef<'a>),
    /// The row is an object without the key column.
    Missing,
    /// The key column holds an array or an object.
    NotScalar,
    /// The row is not an object.
    NotObject,
}

/// What [`scan_keys`] found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Scan {
    /// The length of the valid prefix: where to truncate the file before appending.
    pub(crate) valid_len: u64,
    /// The number of bytes after the valid prefix: the torn tail, to be cut.
    pub(crate) torn_bytes: u64,
    /// The number of rows (valid, non-blank lines) in the valid prefix.
    pub(crate) rows: u64,
}

/// Scans an existing output file before resuming it, parsing only the key column of each line.
///
/// The file is read as a stream of bytes. Every line is validated as JSON (and as UTF-8), and
/// for each valid line `visit` is called with the line number and what the key column held: a
/// key, or why there is none ([`LineKey`]).
///
/// - A line is valid if it is valid JSON **and ends with `\n`**. This crate's writer writes each
///   row and its `\n` in one write, so a row without its `\n` was never acknowledged: a last
///   line without `\n` is never valid, even when it parses.
/// - Lines holding only whitespace hold no row; `visit` is not called for them.
/// - The torn tail is whatever follows the last valid line when none of it is a valid line: a
///   partial line, NUL bytes, invalid UTF-8 (what a power loss can leave). [`Scan`] says where it
///   starts and how long it is; cutting it is the caller's job.
/// - A malformed line followed by a valid line is corruption, not a torn write: the scan fails
///   with [`ErrorKind::Corrupt`] naming the file and the first malformed line. `visit` has then
///   seen the valid lines before it.
/// - Python's `json.dumps` writes `NaN` and `Infinity` for non-finite floats. They are not JSON,
///   so such a line is malformed: as the last line it is part of the torn tail (and its row is
///   generated again); followed by a valid line it is corruption.
///
/// The key column is found by name after unescaping; if a row holds it twice, the last one
/// counts, as in `serde_json::Value` and Python. Other values are skipped, though still
/// validated.
///
/// # Errors
///
/// [`ErrorKind::Io`] if the file cannot be opened or read; [`ErrorKind::Corrupt`] as above; and
/// any error `visit` returns, which stops the scan.
pub(crate) async fn scan_keys<F>(path: &Path, key_column: &str, mut visit: F) -> Result<Scan, Error>
where
    F: FnMut(u64, LineKey<'_>) -> Result<(), Error>,
{
    // Lines are read, checked as UTF-8 and scanned a batch ahead on the thread pool; a line
    // the fast scan answers for is valid JSON whose key column's raw text it found. Any other
    // line takes the full parse, which gives the exact error.
    let columns = ScanColumns {
        key: key_column.to_owned(),
        keep: Vec::new(),
    };
    let mut lines = Prescan::new(path.to_owned(), 0, 1, columns);
    let mut state = ScanState::new(path);
    loop {
        let line = match lines.next_line().await {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err(error) => return Err(Error::from(error).with_path(path)),
        };
        let key = || match line.scanned {
            Some((raw, _)) => match raw_key(raw) {
                Ok(Some(key)) => Ok(LineKey::Key(key)),
                Ok(None) => Ok(LineKey::NotScalar),
                // A number out of range, say: the full parse names the column in the line.
                Err(_) => parse_line_key(line.bytes, key_column),
            },
            None => parse_line_key(line.bytes, key_column),
        };
        let end = line.end_offset();
        if !state.line(
            line.number,
            end,
            line.terminated,
            line.bytes,
            key,
            &mut visit,
        )? {
            break;
        }
    }
    Ok(state.finish(lines.offset()))
}

/// [`scan_keys`] over any line reader, parsing every line in full; `path` is for errors.
#[cfg(test)]
async fn scan_lines<R, F>(
    mut lines: LineReader<R>,
    path: &Path,
    key_column: &str,
    mut visit: F,
) -> Result<Scan, Error>
where
    R: AsyncRead + Unpin,
    F: FnMut(u64, LineKey<'_>) -> Result<(), Error>,
{
    let mut state = ScanState::new(path);
    loop {
        let line = match lines.next_line().await {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err(error) => return Err(Error::from(error).with_path(path)),
        };
        let key = || parse_line_key(line.bytes, key_column);
        let end = line.end_offset();
        if !state.line(
            line.number,
            end,
            line.terminated,
            line.bytes,
            key,
            &mut visit,
        )? {
            break;
        }
    }
    Ok(state.finish(lines.offset()))
}

/// A resume scan, fed one line at a time: the valid prefix, and the first malformed line
/// while a valid line after it is looked for.
struct ScanState<'p> {
    path: &'p Path,
    scan: Scan,
    malformed: Option<(u64, Malformed)>,
}

impl<'p> ScanState<'p> {
    fn new(path: &'p Path) -> Self {
        ScanState {
            path,
            scan: Scan::default(),
            malformed: None,
        }
    }

    /// Takes line `number`, which ends at byte `end` of the file; `key` parses it. Returns
    /// `false` at a line without `\n`, which is never valid (see [`scan_keys`]) and the last.
    fn line<'a, F>(
        &mut self,
        number: u64,
        end: u64,
        terminated: bool,
        bytes: &[u8],
        key: impl FnOnce() -> Result<LineKey<'a>, Malformed>,
        visit: &mut F,
    ) -> Result<bool, Error>
    where
        F: FnMut(u64, LineKey<'_>) -> Result<(), Error>,
    {
        if !terminated {
            return Ok(false);
        }
        if is_blank(bytes) {
            if self.malformed.is_none() {
                self.scan.valid_len = end;
            }
            return Ok(true);
        }
        match key() {
            Ok(key) => {
                if let Some((line, malformed)) = self.malformed.take() {
                    return Err(malformed
                        .into_error(|column| ErrorKind::Corrupt { column })
                        .with_path(self.path)
                        .with_line(line));
                }
                self.scan.rows += 1;
                self.scan.valid_len = end;
                visit(number, key)?;
            }
            Err(error) => {
                if self.malformed.is_none() {
                    self.malformed = Some((number, error));
                }
            }
        }
        Ok(true)
    }

    /// The scan, once the lines end at byte `offset`.
    fn finish(mut self, offset: u64) -> Scan {
        self.scan.torn_bytes = offset - self.scan.valid_len;
        self.scan
    }
}

/// Validates one line as JSON and reports what its key column holds.
pub(crate) fn parse_line_key<'a>(
    bytes: &'a [u8],
    key_column: &str,
) -> Result<LineKey<'a>, Malformed> {
    let mut deserializer = serde_json::Deserializer::from_str(line_str(bytes)?);
    let key = RowKey { key_column }
        .deserialize(&mut deserializer)
        .map_err(malformed_json)?;
    deserializer.end().map_err(malformed_json)?;
    Ok(key)
}

/// Deserializes a row, keeping only what its key column holds.
struct RowKey<'c> {
    key_column: &'c str,
}

impl<'de> DeserializeSeed<'de> for RowKey<'_> {
    type Value = LineKey<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RowKey<'_> {
    type Value = LineKey<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = LineKey::Missing;
        while let Some(is_key) = map.next_key_seed(IsColumn(self.key_column))? {
            if is_key {
                found = match map.next_value_seed(KeySeed)? {
                    Some(key) => LineKey::Key(key),
                    None => LineKey::NotScalar,
                };
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(LineKey::NotObject)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(LineKey::NotObject)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(LineKey::NotObject)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(LineKey::NotObject)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(LineKey::NotObject)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(LineKey::NotObject)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(LineKey::NotObject)
    }
}

/// Deserializes an object's field name as whether it is the key column, without copying it.
struct IsColumn<'c>(&'c str);

impl<'de> DeserializeSeed<'de> for IsColumn<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for IsColumn<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<bool, E> {
        Ok(name == self.0)
    }
}

#[cfg(test)]
#[path = "../../tests/common/mod.rs"]
mod common;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jsonl::Key;
    use futures::executor::block_on;
    use proptest::prelude::*;
    use std::task::Waker;

    /// An in-memory input that hands out at most `max` bytes per read and returns `Pending`
    /// (waking at once) before every other read, to exercise every path of the line reader.
    struct Trickle {
        data: Vec<u8>,
        pos: usize,
        max: usize,
        pending: bool,
    }

    impl Trickle {
        fn new(data: impl Into<Vec<u8>>, max: usize) -> Self {
            Trickle {
                data: data.into(),
                pos: 0,
                max,
                pending: false,
            }
        }
    }

    impl AsyncRead for Trickle {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            self.pending = !self.pending;
            if self.pending {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            let n = buf.len().min(self.max).min(self.data.len() - self.pos);
            buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            Poll::Ready(Ok(n))
        }
    }

    /// Every line as (number, offset, bytes, terminated).
    fn lines_of(
        input: &[u8],
        chunk_size: usize,
        max_read: usize,
    ) -> Vec<(u64, u64, Vec<u8>, bool)> {
        let mut reader = LineReader::with_chunk_size(Trickle::new(input, max_read), chunk_size);
        let mut lines = Vec::new();
        block_on(async {
            while let Some(line) = reader.next_line().await.unwrap() {
                lines.push((
                    line.number,
                    line.offset,
                    line.bytes.to_vec(),
                    line.terminated,
                ));
            }
            assert_eq!(reader.offset(), input.len() as u64);
            // The end is sticky.
            assert!(reader.next_line().await.unwrap().is_none());
        });
        lines
    }

    /// What the lines should be, from `split`.
    fn expected_lines(input: &[u8]) -> Vec<(u64, u64, Vec<u8>, bool)> {
        let mut lines = Vec::new();
        let mut offset = 0;
        let mut parts: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
        let last = parts.pop().unwrap();
        for (i, part) in parts.iter().enumerate() {
            lines.push((i as u64 + 1, offset, part.to_vec(), true));
            offset += part.len() as u64 + 1;
        }
        if !last.is_empty() {
            lines.push((lines.len() as u64 + 1, offset, last.to_vec(), false));
        }
        lines
    }

    #[test]
    fn lines_with_numbers_offsets_and_termination() {
        let lines = lines_of(b"ab\n\ncde\nf", 1 << 20, usize::MAX);
        assert_eq!(
            lines,
            [
                (1, 0, b"ab".to_vec(), true),
                (2, 3, b"".to_vec(), true),
                (3, 4, b"cde".to_vec(), true),
                (4, 8, b"f".to_vec(), false),
            ]
        );
        assert_eq!(lines_of(b"", 4, 4), []);
        assert_eq!(lines_of(b"\n", 4, 4), [(1, 0, b"".to_vec(), true)]);
        assert_eq!(lines_of(b"x\r\n", 4, 4), [(1, 0, b"x\r".to_vec(), true)]);
    }

    #[test]
    fn lines_longer_than_the_chunk_and_on_chunk_boundaries() {
        // Chunk of 4: a line ending exactly at a boundary, one spanning three chunks, a newline
        // as the first byte of a chunk.
        let input = b"abc\nabcdefghij\n\nxyz\nlast";
        for chunk_size in 1..=8 {
            for max_read in [1, 2, 3, 4, 5, 100] {
                assert_eq!(
                    lines_of(input, chunk_size, max_read),
                    expected_lines(input),
                    "chunk {chunk_size}, reads of {max_read}"
                );
            }
        }
    }

    #[test]
    fn buffer_stays_near_a_chunk_plus_the_longest_line() {
        let mut input = Vec::new();
        for i in 0..1000 {
            input.extend_from_slice(format!("{{\"i\": {i}}}\n").as_bytes());
        }
        let mut reader = LineReader::with_chunk_size(Trickle::new(input, usize::MAX), 64);
        block_on(async {
            let mut count = 0;
            while reader.next_line().await.unwrap().is_some() {
                count += 1;
            }
            assert_eq!(count, 1000);
        });
        assert!(
            reader.buf.len() <= 64 + 16,
            "buffer grew to {}",
            reader.buf.len()
        );
    }

    proptest! {
        #[test]
        fn lines_match_a_split(
            input in proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'\n'), Just(b' ')], 0..64),
            chunk_size in 1usize..9,
            max_read in 1usize..12,
        ) {
            prop_assert_eq!(lines_of(&input, chunk_size, max_read), expected_lines(&input));
        }
    }

    // -----------------------------------------------------------------------------------------
    // The resume scan
    // -----------------------------------------------------------------------------------------

    /// What the visitor saw, in an owned form.
    #[derive(Debug, PartialEq)]
    enum Seen {
        Key(Key),
        Missing,
        NotScalar,
        NotObject,
    }

    fn seen(key: LineKey<'_>) -> Seen {
        match key {
            LineKey::Key(key) => Seen::Key(key.to_key()),
            LineKey::Missing => Seen::Missing,
            LineKey::NotScalar => Seen::NotScalar,
            LineKey::NotObject => Seen::NotObject,
        }
    }

    fn k(text: &str) -> Seen {
        Seen::Key(serde_json::from_str(text).unwrap())
    }

    /// Scans in-memory `input` with a tiny chunk, and checks every chunk size gives the same.
    fn scan_bytes(input: &[u8]) -> Result<(Scan, Vec<(u64, Seen)>), Error> {
        let mut results = Vec::new();
        for (chunk_size, max_read) in [(1 << 20, usize::MAX), (1, 1), (3, 2), (7, 5), (16, 100)] {
            let mut seen_lines = Vec::new();
            let lines = LineReader::with_chunk_size(Trickle::new(input, max_read), chunk_size);
            let result = block_on(scan_lines(
                lines,
                Path::new("mem.jsonl"),
                "key",
                |n, key| {
                    seen_lines.push((n, seen(key)));
                    Ok(())
                },
            ));
            results.push(result.map(|scan| (scan, seen_lines)));
        }
        let first = results.remove(0);
        for other in results {
            match (&first, &other) {
                (Ok(a), Ok(b)) => assert_eq!(a, b),
                (Err(a), Err(b)) => {
                    assert_eq!((a.kind(), a.line()), (b.kind(), b.line()));
                }
                _ => panic!("chunk sizes disagree: {first:?} vs {other:?}"),
            }
        }
        // `scan_keys` itself (read ahead, fast scan, full parse where it does not answer)
        // finds the same as the full parse of every line.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scan.jsonl");
        std::fs::write(&path, input).unwrap();
        let mut seen_lines = Vec::new();
        let prescanned = block_on(scan_keys(&path, "key", |n, key| {
            seen_lines.push((n, seen(key)));
            Ok(())
        }))
        .map(|scan| (scan, seen_lines));
        match (&first, &prescanned) {
            (Ok(a), Ok(b)) => assert_eq!(a, b),
            (Err(a), Err(b)) => {
                assert_eq!((a.kind(), a.line()), (b.kind(), b.line()));
            }
            _ => panic!("scan_keys disagrees: {first:?} vs {prescanned:?}"),
        }
        first
    }

    proptest! {
        #[test]
        fn scan_keys_agrees_with_the_full_parse(
            lines in proptest::collection::vec(
                prop::sample::select(vec![
                    &b"{\"key\": \"a\", \"v\": [1, {\"x\": null}]}"[..],
                    b"{\"v\":\"s\",\"key\":10.0}",
                    b"{\"key\":\"caf\\u00e9\"}",
                    b"{\"key\":1e400}",
                    b"{\"key\":[1]}",
                    b"{\"key\":{\"a\":1}}",
                    b"{\"key\":1,\"key\":2}",
                    b"{\"other\":1}",
                    b"[1,2]",
                    b"\"text\"",
                    b"{\"key\":NaN}",
                    b"{\"key\":\"a\",",
                    b"{\"key\":\"a\"} x",
                    b"  \t",
                    b"",
                    b"\0\0\0",
                    b"{\"key\":\"\xff\"}",
                    b"{\"ke\\u0079\":3}",
                ]),
                0..12,
            ),
            terminated in any::<bool>(),
        ) {
            let mut input = lines.join(&b"\n"[..]);
            if terminated && !lines.is_empty() {
                input.push(b'\n');
            }
            // `scan_bytes` checks that `scan_keys` and the full parse agree.
            let _ = scan_bytes(&input);
        }
    }

    fn scan_ok(input: &[u8]) -> (Scan, Vec<(u64, Seen)>) {
        scan_bytes(input).unwrap_or_else(|e| panic!("{e}: {e:?}"))
    }

    #[test]
    fn clean_file() {
        let input = b"{\"key\": \"a\", \"v\": 1}\n{\"key\": 2}\n{\"v\": [], \"key\": null}\n";
        let (scan, seen) = scan_ok(input);
        assert_eq!(
            scan,
            Scan {
                valid_len: input.len() as u64,
                torn_bytes: 0,
                rows: 3
            }
        );
        assert_eq!(seen, [(1, k("\"a\"")), (2, k("2")), (3, k("null"))]);
        assert_eq!(scan_ok(b""), (Scan::default(), vec![]));
    }

    #[test]
    fn torn_partial_last_line_is_cut() {
        let good = b"{\"key\": \"a\"}\n{\"key\": \"b\"}\n";
        let mut input = good.to_vec();
        input.extend_from_slice(b"{\"key\": \"c\", \"v");
        let (scan, seen) = scan_ok(&input);
        assert_eq!(scan.valid_len, good.len() as u64);
        assert_eq!(scan.torn_bytes, 15);
        assert_eq!(scan.rows, 2);
        assert_eq!(seen, [(1, k("\"a\"")), (2, k("\"b\""))]);
    }

    #[test]
    fn valid_looking_last_line_without_newline_is_cut() {
        let input = b"{\"key\": \"a\"}\n{\"key\": \"b\"}";
        let (scan, seen) = scan_ok(input);
        assert_eq!(
            scan,
            Scan {
                valid_len: 13,
                torn_bytes: 12,
                rows: 1
            }
        );
        assert_eq!(seen, [(1, k("\"a\""))]);
        // The only line, and after a malformed line: torn, not corruption.
        let (scan, seen) = scan_ok(b"{\"key\": 1}");
        assert_eq!((scan.valid_len, scan.torn_bytes, scan.rows), (0, 10, 0));
        assert_eq!(seen, []);
        let (scan, _) = scan_ok(b"{\"key\": 1}\n{\"ke\n{\"key\": 2}");
        assert_eq!((scan.valid_len, scan.torn_bytes, scan.rows), (11, 15, 1));
        // Even whitespace without its newline goes.
        let (scan, _) = scan_ok(b"{\"key\": 1}\n  ");
        assert_eq!((scan.valid_len, scan.torn_bytes, scan.rows), (11, 2, 1));
    }

    #[test]
    fn nul_bytes_and_invalid_utf8_tails_are_cut() {
        let good = b"{\"key\": 1}\n";
        for tail in [
            &b"\0\0\0\0\0\0\0\0"[..],
            b"\0\0\0\n",
            b"\0\0\0\n\0\0\0\0\n\0",
            b"{\"key\": 2, \"v\": \"\xff\xfe\"}\n",
            b"\xff\xfe\xfd",
            b"{\"key\": \"\xc3",
        ] {
            let mut input = good.to_vec();
            input.extend_from_slice(tail);
            let (scan, seen) = scan_ok(&input);
            assert_eq!(
                scan,
                Scan {
                    valid_len: good.len() as u64,
                    torn_bytes: tail.len() as u64,
                    rows: 1
                },
                "tail {tail:?}"
            );
            assert_eq!(seen, [(1, k("1"))]);
        }
    }

    #[test]
    fn malformed_line_followed_by_a_valid_line_is_corruption() {
        let input = b"{\"key\": 1}\n{\"key\": 2, oops}\n\n{\"key\": 3}\n";
        let error = scan_bytes(input).unwrap_err();
        assert_eq!(error.kind(), &ErrorKind::Corrupt { column: 12 });
        assert_eq!(error.line(), Some(2));
        assert_eq!(error.path(), Some(Path::new("mem.jsonl")));
        assert_eq!(
            error.to_string(),
            "mem.jsonl:2:12: invalid json followed by valid lines: corrupt, not a torn write"
        );
        assert!(std::error::Error::source(&error).is_some());

        // Invalid UTF-8 in a string the scan skips still counts.
        let input = b"{\"key\": 1, \"v\": \"\xff\"}\n{\"key\": 3}\n";
        let error = scan_bytes(input).unwrap_err();
        assert_eq!(error.kind(), &ErrorKind::Corrupt { column: 18 });
        assert_eq!(error.line(), Some(1));

        // A NUL line in the middle.
        let error = scan_bytes(b"{\"key\": 1}\n\0\0\n{\"key\": 3}\n").unwrap_err();
        assert_eq!(error.kind(), &ErrorKind::Corrupt { column: 1 });
        assert_eq!(error.line(), Some(2));
    }

    #[test]
    fn whitespace_only_lines_hold_no_row() {
        let input = b"\n  \n{\"key\": 1}\n\t \r\n{\"key\": 2}\n\n";
        let (scan, seen) = scan_ok(input);
        assert_eq!(
            scan,
            Scan {
                valid_len: input.len() as u64,
                torn_bytes: 0,
                rows: 2
            }
        );
        assert_eq!(seen, [(3, k("1")), (5, k("2"))]);

        // Blank lines after garbage belong to the torn tail, and do not make it corruption.
        let input = b"{\"key\": 1}\n\n{\"ke\0\0\n\n  \n";
        let (scan, _) = scan_ok(input);
        assert_eq!((scan.valid_len, scan.torn_bytes, scan.rows), (12, 11, 1));
    }

    #[test]
    fn key_missing_not_scalar_or_row_not_an_object_are_reported() {
        let input = b"{\"other\": 1}\n{\"key\": [1]}\n{\"key\": {\"a\": 1}}\n[1, {\"key\": 2}]\n\"key\"\n5\nnull\ntrue\n{}\n";
        let (scan, seen) = scan_ok(input);
        assert_eq!(scan.rows, 9);
        assert_eq!(scan.torn_bytes, 0);
        assert_eq!(
            seen,
            [
                (1, Seen::Missing),
                (2, Seen::NotScalar),
                (3, Seen::NotScalar),
                (4, Seen::NotObject),
                (5, Seen::NotObject),
                (6, Seen::NotObject),
                (7, Seen::NotObject),
                (8, Seen::NotObject),
                (9, Seen::Missing),
            ]
        );
    }

    #[test]
    fn key_column_is_matched_after_unescaping_and_the_last_one_counts() {
        let input = b"{\"k\\u0065y\": \"a\"}\n{\"key\": 1, \"x\": 0, \"key\": 2}\n{\"key\": 1, \"key\": []}\n{\"keys\": 1, \"Key\": 2}\n";
        let (_, seen) = scan_ok(input);
        assert_eq!(
            seen,
            [
                (1, k("\"a\"")),
                (2, k("2")),
                (3, Seen::NotScalar),
                (4, Seen::Missing)
            ]
        );
    }

    #[test]
    fn python_formatting_gives_the_same_keys_as_compact_forms() {
        // What Python's json.dumps writes (", " and ": " separators, \u escapes, 10.0).
        let python = b"{\"key\": \"caf\\u00e9\", \"n\": 10.0}\n{\"key\": 10.0, \"n\": [1, 2]}\n{\"key\": -0.0}\n{\"key\": 1e1}\n";
        let compact =
            "{\"key\":\"café\",\"n\":10}\n{\"key\":10,\"n\":[1,2]}\n{\"key\":0}\n{\"key\":10}\n";
        let (_, from_python) = scan_ok(python);
        let (_, from_compact) = scan_ok(compact.as_bytes());
        assert_eq!(from_python, from_compact);
        assert_eq!(from_python[0], (1, Seen::Key(Key::from("café"))));
        assert_eq!(from_python[1], (2, Seen::Key(Key::from(10))));
    }

    #[test]
    fn nan_is_not_json() {
        // As the last line: torn, cut.
        let input = b"{\"key\": 1}\n{\"key\": 2, \"v\": NaN}\n";
        let (scan, seen) = scan_ok(input);
        assert_eq!((scan.valid_len, scan.torn_bytes, scan.rows), (11, 21, 1));
        assert_eq!(seen, [(1, k("1"))]);
        // Followed by a valid line: corruption, naming the line and column.
        let input = b"{\"key\": NaN}\n{\"key\": 3}\n";
        let error = scan_bytes(input).unwrap_err();
        assert_eq!(error.kind(), &ErrorKind::Corrupt { column: 9 });
        assert_eq!(error.line(), Some(1));
    }

    #[test]
    fn trailing_garbage_and_crlf() {
        let (scan, seen) = scan_ok(b"{\"key\": 1}\r\n{\"key\": 2} x\n");
        assert_eq!((scan.valid_len, scan.torn_bytes, scan.rows), (12, 13, 1));
        assert_eq!(seen, [(1, k("1"))]);
    }

    #[test]
    fn visitor_error_stops_the_scan() {
        let input = b"{\"key\": 1}\n{\"key\": 2}\n{\"key\": 3}\n";
        let mut calls = 0;
        let lines = LineReader::new(Trickle::new(&input[..], usize::MAX));
        let result = block_on(scan_lines(lines, Path::new("x"), "key", |n, _| {
            calls += 1;
            if n == 2 {
                Err(Error::new(ErrorKind::InvalidKey).with_line(n))
            } else {
                Ok(())
            }
        }));
        let error = result.unwrap_err();
        assert_eq!(
            (error.kind(), error.line()),
            (&ErrorKind::InvalidKey, Some(2))
        );
        assert_eq!(calls, 2);
    }

    #[test]
    fn scan_and_count_real_files_on_every_runtime() {
        common::on_all_runtimes(|_rt| async move {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("out.jsonl");
            let mut content = Vec::new();
            for i in 0..5000 {
                content.extend_from_slice(
                    format!("{{\"key\": \"k{}\", \"i\": {i}}}\n", i % 7).as_bytes(),
                );
                if i % 1000 == 0 {
                    content.extend_from_slice(b"   \n");
                }
            }
            let valid_len = content.len() as u64;
            content.extend_from_slice(b"{\"key\": \"k0\", \"i\": 5000, \"text\": \"torn");
            std::fs::write(&path, &content).unwrap();

            let mut counts = std::collections::HashMap::<Key, u64>::new();
            for i in 0..7 {
                counts.insert(Key::from(format!("k{i}")), 0);
            }
            let scan = scan_keys(&path, "key", |_, key| {
                let LineKey::Key(key) = key else {
                    panic!("no key");
                };
                // Looked up by the borrowed form, without allocating.
                *counts.get_mut(&key).expect("known key") += 1;
                Ok(())
            })
            .await
            .unwrap();
            assert_eq!(scan.valid_len, valid_len);
            assert_eq!(scan.torn_bytes, content.len() as u64 - valid_len);
            assert_eq!(scan.rows, 5000);
            assert_eq!(counts[&Key::from("k0")], 715);
            assert_eq!(counts[&Key::from("k6")], 714);
            // The scan reads; it never changes the file.
            assert_eq!(std::fs::read(&path).unwrap(), content);

            // count_lines: blank lines do not count, the unterminated last line does.
            assert_eq!(count_lines(&path).await.unwrap(), 5001);

            let missing = dir.path().join("missing.jsonl");
            let error = scan_keys(&missing, "key", |_, _| Ok(())).await.unwrap_err();
            assert_eq!(error.kind(), &ErrorKind::Io);
            assert_eq!(error.path(), Some(missing.as_path()));
            assert!(count_lines(&missing).await.is_err());
        });
    }

    #[test]
    fn corrupt_file_is_left_unchanged() {
        common::on_all_runtimes(|_rt| async move {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("out.jsonl");
            let content = b"{\"key\": 1}\n{\"key\": 2\n{\"key\": 3}\n{\"key\": 4";
            std::fs::write(&path, content).unwrap();
            let error = scan_keys(&path, "key", |_, _| Ok(())).await.unwrap_err();
            // The line `{"key": 2` ends where an object still needs its `}`.
            assert_eq!(error.kind(), &ErrorKind::Corrupt { column: 9 });
            assert_eq!(error.line(), Some(2));
            assert_eq!(error.path(), Some(path.as_path()));
            assert_eq!(std::fs::read(&path).unwrap(), content);
        });
    }

    #[test]
    fn count_lines_counts_rows_to_be() {
        common::on_all_runtimes(|_rt| async move {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("in.jsonl");
            for (content, expected) in [
                (&b""[..], 0),
                (b"\n\n \n", 0),
                (b"1\n2\n3\n", 3),
                (b"1\n\n2\n \t\n3", 3),
                (b"1\nnot json\n   ", 2),
            ] {
                std::fs::write(&path, content).unwrap();
                assert_eq!(count_lines(&path).await.unwrap(), expected, "{content:?}");
            }
        });
    }

    #[test]
    fn futures_and_types_are_send() {
        fn send<T: Send>(_: &T) {}
        fn send_sync_unpin<T: Send + Sync + Unpin>() {}
        let path = Path::new("x");
        send(&scan_keys(path, "key", |_, _| Ok(())));
        send(&count_lines(path));
        send_sync_unpin::<LineReader<async_fs::File>>();
        send_sync_unpin::<JsonlReader<std::rc::Rc<u8>>>();
        send_sync_unpin::<Key>();
        send_sync_unpin::<Error>();
        let _ = Waker::noop();
    }

    /// The resume scan's throughput, with the page cache warm, on a generated file in /tmp
    /// (deleted afterwards). Run with:
    /// `cargo test --release --lib scan_speed -- --ignored --nocapture`; `SCAN_SPEED_MB` sets the
    /// size (200), `SCAN_SPEED_WORDS` the length of the rows (1: about 170 bytes; 60: about
    /// 1.7 KB).
    #[test]
    #[ignore = "a throughput check on a generated file, not a test"]
    fn scan_speed() {
        use std::io::Write as _;
        use std::time::Instant;

        let megabytes: u64 = std::env::var("SCAN_SPEED_MB").map_or(200, |v| v.parse().unwrap());
        let words: usize = std::env::var("SCAN_SPEED_WORDS").map_or(1, |v| v.parse().unwrap());
        let keys = 100_000u64;
        let dir = tempfile::tempdir_in("/tmp").unwrap();
        let path = dir.path().join("scan.jsonl");
        let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        let mut written = 0u64;
        let mut i = 0u64;
        while written < megabytes << 20 {
            let line = format!(
                "{{\"id\": {i}, \"key\": \"prompt-{:06}\", \"text\": \"{}\", \"score\": {}.5, \"tags\": [\"a\", \"b\"]}}\n",
                i % keys,
                "lorem ipsum dolor sit amet ".repeat(words + (i % 5) as usize),
                i % 100,
            );
            file.write_all(line.as_bytes()).unwrap();
            written += line.len() as u64;
            i += 1;
        }
        file.flush().unwrap();
        drop(file);
        let expected: std::collections::HashMap<Key, u64> = (0..keys)
            .map(|k| (Key::from(format!("prompt-{k:06}")), 0))
            .collect();

        /// CPU seconds used by this process so far (user + system, all threads).
        fn cpu_seconds() -> f64 {
            let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
            let fields: Vec<&str> = stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .collect();
            let ticks: f64 = fields.get(11..13).map_or(0.0, |f| {
                f.iter().map(|v| v.parse::<f64>().unwrap_or(0.0)).sum()
            });
            ticks / 100.0
        }
        let report = |what: &str, start: Instant, cpu: f64| {
            let mb = written as f64 / 1e6;
            println!(
                "{what:<22} {:>6.0} MB/s wall, {:>6.0} MB per CPU-second",
                mb / start.elapsed().as_secs_f64(),
                mb / (cpu_seconds() - cpu),
            );
        };
        println!("{} MB, {i} rows, {keys} keys", written >> 20);
        for _ in 0..3 {
            let (start, cpu) = (Instant::now(), cpu_seconds());
            let scan = block_on(scan_keys(&path, "key", |_, _| Ok(()))).unwrap();
            assert_eq!(scan.rows, i);
            report("scan_keys", start, cpu);

            let mut counts = expected.clone();
            let (start, cpu) = (Instant::now(), cpu_seconds());
            let scan = block_on(scan_keys(&path, "key", |_, key| {
                if let LineKey::Key(key) = key {
                    *counts.get_mut(&key).unwrap() += 1;
                }
                Ok(())
            }))
            .unwrap();
            assert_eq!(scan.rows, i);
            report("scan_keys + lookup", start, cpu);

            let (start, cpu) = (Instant::now(), cpu_seconds());
            assert_eq!(block_on(count_lines(&path)).unwrap(), i);
            report("count_lines", start, cpu);
        }
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let peak = status
            .lines()
            .find(|l| l.starts_with("VmHWM"))
            .unwrap_or("VmHWM: ?");
        println!("peak RSS of the whole test process (map of {keys} keys included): {peak}");
    }
}

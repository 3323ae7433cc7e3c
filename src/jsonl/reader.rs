//! Reading JSONL files as a stream: the line reader, the typed reader and the resume scan.
//!
//! Everything here reads a file in large chunks through one buffer and never holds the whole
//! file in memory:
//!
//! - [`LineReader`] splits the bytes into lines and lends each one, in place, with its number
//!   and byte offset. The other readers, and the crate's functions that parse lines themselves,
//!   are built on it.
//! - [`JsonlReader`] deserializes each line into a row.

use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures::future::poll_fn;
use futures::io::AsyncRead;
use futures::stream::{FusedStream, Stream};
use serde::de::DeserializeOwned;

use super::error::{Error, ErrorKind};

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
    #[allow(dead_code, reason = "for the resume scan, next")]
    pub(crate) fn end_offset(&self) -> u64 {
        self.offset + self.bytes.len() as u64 + u64::from(self.terminated)
    }

    /// Whether the line holds only JSON whitespace (or nothing), and so no row.
    pub(crate) fn is_blank(&self) -> bool {
        is_blank(self.bytes)
    }
}

/// Whether `bytes` are only JSON whitespace (`\n` cannot occur in a line).
fn is_blank(bytes: &[u8]) -> bool {
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
    #[allow(dead_code, reason = "for the resume scan, next")]
    pub(crate) async fn next_line(&mut self) -> io::Result<Option<Line<'_>>> {
        let span = poll_fn(|cx| self.poll_span(cx)).await?;
        Ok(span.map(|span| self.line(span)))
    }

    /// The byte offset of the first byte not yet handed out: after the last line, the length of
    /// the input.
    #[allow(dead_code, reason = "for the resume scan, next")]
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

// ---------------------------------------------------------------------------------------------
// The typed reader
// ---------------------------------------------------------------------------------------------

/// A line that is not valid JSON: where the parser stopped, and why.
struct Malformed {
    column: usize,
    source: BoxError,
}

impl Malformed {
    fn into_error(self, kind: fn(usize) -> ErrorKind) -> Error {
        Error::new(kind(self.column)).with_source(self.source)
    }
}

/// The line as text: JSON is UTF-8, and checking it up front also covers the strings a parser
/// skips without reading.
fn line_str(bytes: &[u8]) -> Result<&str, Malformed> {
    std::str::from_utf8(bytes).map_err(|error| Malformed {
        column: error.valid_up_to() + 1,
        source: error.into(),
    })
}

fn malformed_json(error: serde_json::Error) -> Malformed {
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

#[cfg(test)]
mod tests {
    use super::*;
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

    #[test]
    fn futures_and_types_are_send() {
        fn send<T: Send>(_: &T) {}
        fn send_sync_unpin<T: Send + Sync + Unpin>() {}
        send(&JsonlReader::<u8>::open("x"));
        send_sync_unpin::<LineReader<async_fs::File>>();
        send_sync_unpin::<JsonlReader<std::rc::Rc<u8>>>();
        let _ = Waker::noop();
    }
}

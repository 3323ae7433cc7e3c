//! The one error type of the crate's file work.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use super::Key;

/// An error from reading, resuming or writing a JSONL file.
///
/// It carries what went wrong ([`ErrorKind`]), and where: the file and, when the error is about
/// one line of it, that line's number (counted from 1).
///
/// # Examples
///
/// ```
/// use abstractions::jsonl::{Error, ErrorKind};
///
/// let error = Error::from(std::io::Error::other("disk full"));
/// assert!(matches!(error.kind(), ErrorKind::Io));
/// assert_eq!(error.line(), None);
/// ```
pub struct Error {
    // Boxed, so that a `Result<T, Error>` stays small.
    inner: Box<Inner>,
}

struct Inner {
    kind: ErrorKind,
    path: Option<PathBuf>,
    line: Option<u64>,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

/// What went wrong, in an [`Error`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// An I/O error; [`Error::source`](std::error::Error::source) holds it.
    Io,
    /// A line is not valid JSON (or not of the expected shape); `column` counts from 1.
    Json {
        /// The column (in bytes, from 1) where the parser stopped.
        column: usize,
    },
    /// A line in the middle of a file is not valid JSON, and a valid line follows it.
    ///
    /// A torn write (a power loss mid-write) can only damage the end of a file, so this is
    /// corruption: resuming refuses to go on and leaves the file unchanged. The error's line is
    /// the first malformed one; `column` counts from 1.
    Corrupt {
        /// The column (in bytes, from 1) where the parser stopped in the malformed line.
        column: usize,
    },
    /// A value that should be a key is an array, an object or a number that is not finite; see
    /// [`Key`](super::Key).
    InvalidKey,
    /// A row could not be serialized as JSON.
    Serialize,
    /// Another writer, in this process or another, holds the file.
    Locked,
    /// A row is not a JSON object.
    NotAnObject,
    /// A row has no key column.
    MissingKey {
        /// The name of the key column.
        column: String,
    },
    /// A row's key is not among the keys expected (in a file being resumed), or was not asked
    /// of the generator (in a generated row).
    UnexpectedKey {
        /// The key.
        key: Key,
    },
    /// A row goes past the number of rows its key needs.
    TooManyRows {
        /// The key.
        key: Key,
        /// The number of rows the key needs in all.
        count: usize,
    },
    /// The same key was given twice among the expected keys.
    DuplicateKey {
        /// The key.
        key: Key,
    },
    /// A task making a row failed; [`Error::source`](std::error::Error::source) holds its
    /// error.
    Generate,
    /// A row lacks a column it must have (a column to keep).
    MissingColumn {
        /// The name of the column.
        column: String,
    },
    /// A function's output sets the key column to another key.
    KeyChanged {
        /// The key of the row.
        key: Key,
        /// The key the output holds.
        found: Key,
    },
    /// The source file changed since the output was begun (its length or its hash differ
    /// from what the first run recorded), or no longer matches the output's rows.
    SourceChanged,
    /// The key column or the columns to keep differ from those the output was begun with.
    ColumnsChanged,
    /// A resume log claims rows that the output lacks.
    OutputBehindLog,
}

impl Error {
    /// An error of this kind, with no location yet.
    pub(crate) fn new(kind: ErrorKind) -> Self {
        Error {
            inner: Box::new(Inner {
                kind,
                path: None,
                line: None,
                source: None,
            }),
        }
    }

    /// Sets the file the error is about.
    pub(crate) fn with_path(mut self, path: &Path) -> Self {
        self.inner.path = Some(path.to_owned());
        self
    }

    /// Sets the line (from 1) the error is about.
    pub(crate) fn with_line(mut self, line: u64) -> Self {
        self.inner.line = Some(line);
        self
    }

    /// Sets the underlying error.
    pub(crate) fn with_source(
        mut self,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        self.inner.source = Some(source.into());
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.inner.kind
    }

    /// The file the error is about, if known.
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }

    /// The line (counted from 1) the error is about, if it is about one line.
    pub fn line(&self) -> Option<u64> {
        self.inner.line
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.inner.kind)
            .field("path", &self.inner.path)
            .field("line", &self.inner.line)
            .field("source", &self.inner.source)
            .finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(path) = &self.inner.path {
            write!(f, "{}", path.display())?;
            if let Some(line) = self.inner.line {
                write!(f, ":{line}")?;
                if let ErrorKind::Json { column } | ErrorKind::Corrupt { column } = self.inner.kind
                {
                    write!(f, ":{column}")?;
                }
            }
            f.write_str(": ")?;
        } else if let Some(line) = self.inner.line {
            write!(f, "line {line}: ")?;
        }
        match &self.inner.kind {
            ErrorKind::Io => f.write_str("i/o error"),
            ErrorKind::Json { .. } => f.write_str("invalid json"),
            ErrorKind::Corrupt { .. } => {
                f.write_str("invalid json followed by valid lines: corrupt, not a torn write")
            }
            ErrorKind::InvalidKey => {
                f.write_str("a key must be a string, a finite number, a bool or null")
            }
            ErrorKind::Serialize => f.write_str("row cannot be serialized as json"),
            ErrorKind::Locked => f.write_str("file is locked by another writer"),
            ErrorKind::NotAnObject => f.write_str("row is not a json object"),
            ErrorKind::MissingKey { column } => write!(f, "row has no key column {column:?}"),
            ErrorKind::UnexpectedKey { key } => write!(f, "key {key} is not expected"),
            ErrorKind::TooManyRows { key, count } => {
                write!(f, "key {key} has more than the {count} rows it needs")
            }
            ErrorKind::DuplicateKey { key } => write!(f, "key {key} is expected twice"),
            ErrorKind::Generate => f.write_str("a task making a row failed"),
            ErrorKind::MissingColumn { column } => write!(f, "row has no column {column:?}"),
            ErrorKind::KeyChanged { key, found } => {
                write!(f, "the output for key {key} sets the key column to {found}")
            }
            ErrorKind::SourceChanged => f.write_str(
                "the source changed since the output was begun; \
                 delete the output and its .map-by-key file to start over",
            ),
            ErrorKind::OutputBehindLog => {
                f.write_str("the resume log claims rows that the output lacks")
            }
            ErrorKind::ColumnsChanged => f.write_str(
                "the key column or the columns to keep differ from those the output was begun with",
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner
            .source
            .as_deref()
            .map(|source| source as &(dyn std::error::Error + 'static))
    }
}

impl From<io::Error> for Error {
    fn from(error: io::Error) -> Self {
        Error::new(ErrorKind::Io).with_source(error)
    }
}

impl From<Error> for io::Error {
    fn from(error: Error) -> Self {
        let kind = match error.inner.kind {
            ErrorKind::Io => match error.inner.source.as_deref() {
                Some(source) => match source.downcast_ref::<io::Error>() {
                    Some(io) => io.kind(),
                    None => io::ErrorKind::Other,
                },
                None => io::ErrorKind::Other,
            },
            ErrorKind::Locked => io::ErrorKind::WouldBlock,
            _ => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, error)
    }
}

//! Resumable JSONL files: a reader, a crash-safe writer, and the functions built on them.

mod error;

pub use error::{Error, ErrorKind};

//! Resumable JSONL files: a reader, a crash-safe writer, and the functions built on them.

mod error;
mod writer;

pub use error::{Error, ErrorKind};
pub use writer::{Durability, JsonlWriter};

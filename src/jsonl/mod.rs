//! Resumable JSONL files: a reader, a crash-safe writer, and the functions built on them.

mod error;
mod key;
mod reader;
mod writer;

pub use error::{Error, ErrorKind};
pub use key::Key;
pub use reader::JsonlReader;
pub use writer::{Durability, JsonlWriter};

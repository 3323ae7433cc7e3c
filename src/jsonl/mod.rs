//! Resumable JSONL files: a reader, a crash-safe writer, and the functions built on them.

mod create;
mod error;
mod files;
mod flatmap;
mod key;
mod map_by_key;
mod options;
mod prescan;
mod raw;
mod reader;
mod writer;

pub use create::{create_or_resume_jsonl_file, run_bounded_create_or_resume_jsonl_file};
pub use error::{Error, ErrorKind};
pub use flatmap::flatmap_jsonl_file;
pub use key::Key;
pub use map_by_key::map_by_key_jsonl_file;
pub use options::{OnError, Options, Progress, Report};
pub use reader::JsonlReader;
pub use writer::{Durability, JsonlWriter};

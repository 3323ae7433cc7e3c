//! Runtime-agnostic async building blocks.
#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]

mod batches;
mod bounded;
pub mod jsonl;

pub use batches::{BatchError, Batches, BatchesStream, batches, batches_stream};
pub use bounded::{BoundedStreamExt, BoundedUnordered, LimitHandle, run_bounded};

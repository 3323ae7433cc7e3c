//! Runtime-agnostic async building blocks for large batches of slow, failure-prone jobs:
//! thousands of LLM or web API calls, containerised jobs, dataset generation.
//!
//! This is the Rust port of the Python library `abstractions`. It is built on `futures` alone,
//! so it works inside smol, async-std and tokio applications alike.
//!
//! # A tour
//!
//! [`run_bounded`] (or [`BoundedStreamExt::run_bounded`]) runs the futures of a stream with
//! at most `limit` in flight, pulling the next one only when a slot is free, and yields their
//! outputs as they finish. The source may be a huge file or an endless generator; memory
//! depends on the limit alone. A [`LimitHandle`] changes the limit while the stream runs.
//!
//! ```
//! use abstractions::BoundedStreamExt;
//! use futures::stream::{self, StreamExt};
//!
//! # futures::executor::block_on(async {
//! async fn call_api(id: u32) -> u32 { id * 2 }
//!
//! let answers = stream::iter(0..1_000).map(call_api).run_bounded(64);
//! let total: u32 = answers.fold(0, |sum, answer| async move { sum + answer }).await;
//! assert_eq!(total, 999_000);
//! # });
//! ```
//!
//! [`batches`] cuts a re-iterable dataset into fixed-size batches over several epochs, and
//! [`batches_stream`] does the same over a stream made afresh for each epoch:
//!
//! ```
//! use abstractions::batches;
//!
//! let sizes: Vec<usize> = batches(0..5, 2, 2).map(|batch| batch.unwrap().len()).collect();
//! assert_eq!(sizes, [2, 2, 2, 2, 2]);
//! ```
//!
//! # The one pitfall
//!
//! Like every combinator of `futures`, the futures inside [`run_bounded`] make progress only
//! while its stream is polled: a consumer that awaits something slow between two items stalls
//! every future in flight. Keep the loop body quick, or move the slow part into the futures
//! themselves. See [`run_bounded`] for the pattern.
#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]

mod batches;
mod bounded;
mod fallible;
mod fault;
mod for_each;
mod gate;
pub mod jsonl;
mod ordered;
mod spawn;
mod stop;
mod until_stopped;
mod variants;

pub use batches::{BatchError, Batches, BatchesStream, batches, batches_stream};
pub use bounded::{BoundedStreamExt, BoundedUnordered, LimitHandle, run_bounded};
pub use fallible::{TryBoundedUnordered, try_run_bounded};
pub use for_each::{ForEachBounded, for_each_bounded};
pub use ordered::{BoundedOrdered, run_bounded_ordered};
pub use spawn::{
    SpawnEach, SpawnEachLocal, run_bounded_spawn, run_bounded_spawn_local, spawn_each,
    spawn_each_local,
};
pub use stop::{StopHandle, Stopped};
pub use until_stopped::{UntilStopped, until_stopped};
pub use variants::BoundedVariantsExt;

// The README's examples run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

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
//! # The one pitfall, and its two cures
//!
//! Like every combinator of `futures`, the futures inside [`run_bounded`] make progress only
//! while its stream is polled: a consumer that awaits something slow between two items stalls
//! every future in flight (futures-rs issue 2387). Keep the loop body quick, or move the slow
//! part into the futures themselves (see [`run_bounded`]), or take one of two cures.
//!
//! [`for_each_bounded`] polls the loop body and the futures in flight together, so a slow body
//! does not stall them; it needs no executor:
//!
//! ```
//! use abstractions::BoundedStreamExt;
//! use futures::stream::{self, StreamExt};
//!
//! # futures::executor::block_on(async {
//! async fn fetch(id: u32) -> u32 { id * 2 }
//! async fn save(_answer: u32) { /* slow: a disk, a rate-limited upload */ }
//!
//! stream::iter(0..100).map(fetch).for_each_bounded(8, save).await;
//! # });
//! ```
//!
//! Spawn mode, [`run_bounded_spawn`], runs each future as a task of an executor handed in
//! through `futures::task::Spawn` (or [`run_bounded_spawn_local`] and `LocalSpawn`), so the
//! futures run whatever the consumer does. The limit, the lazy pull and the [`LimitHandle`]
//! hold as in the default mode; dropping the stream cancels the tasks. tokio and smol need a
//! few-line wrapper, shown in [`run_bounded_spawn`]'s docs:
//!
//! ```
//! use abstractions::BoundedStreamExt;
//! use futures::executor::LocalPool;
//! use futures::stream::{self, StreamExt};
//!
//! let mut pool = LocalPool::new();
//! let answers = stream::iter(0..100u32)
//!     .map(|id| async move { id * 2 })
//!     .run_bounded_spawn(8, pool.spawner());
//! assert_eq!(pool.run_until(answers.count()), 100);
//! ```
//!
//! # Stopping, order and errors
//!
//! [`until_stopped`] ends a source when a [`StopHandle`] is stopped (from a Ctrl-C handler,
//! say): nothing more is pulled, the futures in flight finish and their outputs come out, then
//! the stream ends. [`run_bounded_ordered`] yields outputs in source order; the outputs that
//! wait for an earlier one count against the limit, so memory stays bounded by it.
//! [`try_run_bounded`] is for futures that return `Result`: it pulls nothing after the first
//! error, and yields the error at once (or, with
//! [`finish_in_flight_on_error`](TryBoundedUnordered::finish_in_flight_on_error), after the
//! outputs of the futures in flight). They combine: spawn mode is a source ([`spawn_each`]),
//! and so is the stop.
//!
//! ```
//! use abstractions::{BoundedStreamExt, StopHandle};
//! use futures::stream::{self, StreamExt};
//!
//! # futures::executor::block_on(async {
//! let stop = StopHandle::new(); // stop.stop() from a Ctrl-C handler
//! let in_order: Vec<u32> = stream::iter(0..10)
//!     .map(|n| async move { n * n })
//!     .until_stopped(&stop)
//!     .run_bounded_ordered(4)
//!     .collect()
//!     .await;
//! assert_eq!(in_order, [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]);
//!
//! let outputs: Vec<Result<u32, u32>> = stream::iter(0..10)
//!     .map(|n| async move { if n == 5 { Err(n) } else { Ok(n) } })
//!     .try_run_bounded(4)
//!     .collect()
//!     .await;
//! assert_eq!(outputs.last(), Some(&Err(5))); // nothing after the first error
//! # });
//! ```
//!
//! # Resumable JSONL files
//!
//! The [`jsonl`] module persists generated rows so that a run killed at any instant (Ctrl-C,
//! `kill -9`, a crash) picks up where it stopped: nothing saved is lost, nothing is
//! duplicated, nothing finished is done again.
//! [`create_or_resume_jsonl_file`](jsonl::create_or_resume_jsonl_file) and
//! [`run_bounded_create_or_resume_jsonl_file`](jsonl::run_bounded_create_or_resume_jsonl_file)
//! make `key_count` rows per key; [`map_by_key_jsonl_file`](jsonl::map_by_key_jsonl_file)
//! calls a function once per distinct key of a file; [`flatmap_jsonl_file`](jsonl::flatmap_jsonl_file)
//! maps each row of a file to zero or more rows. Under them are a crash-safe `Sink` of rows,
//! [`JsonlWriter`](jsonl::JsonlWriter), and a typed reader, [`JsonlReader`](jsonl::JsonlReader).
#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]

mod batches;
mod bounded;
mod ext;
mod fallible;
mod fault;
mod for_each;
pub mod jsonl;
mod ordered;
mod spawn;
mod stop;
mod until_stopped;

pub use batches::{BatchError, Batches, BatchesStream, batches, batches_stream};
pub use bounded::{BoundedUnordered, LimitHandle, run_bounded};
pub use ext::BoundedStreamExt;
pub use fallible::{TryBoundedUnordered, try_run_bounded};
pub use for_each::{ForEachBounded, for_each_bounded};
pub use ordered::{BoundedOrdered, run_bounded_ordered};
pub use spawn::{
    SpawnEach, SpawnEachLocal, run_bounded_spawn, run_bounded_spawn_local, spawn_each,
    spawn_each_local,
};
pub use stop::{StopHandle, Stopped};
pub use until_stopped::{UntilStopped, until_stopped};

// The README's examples run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

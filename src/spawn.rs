//! Spawn mode: each future runs as a task of an executor the user hands in, so it makes
//! progress whether or not the consumer is polling.
//!
//! The adapters here are sources: they spawn each future as it is pulled and yield a
//! [`RemoteHandle`] to its output. A bounded adapter over them ([`run_bounded`] and its
//! variants) keeps its lazy pull, limit and [`LimitHandle`](crate::LimitHandle): a future is
//! spawned only when a slot is free, and the handle occupies the slot until the output is
//! returned. Dropping a `RemoteHandle` cancels its task, so dropping the stream cancels every
//! task it spawned; a task's panic is caught by the task and resumed by its handle.
//!
//! [`run_bounded`]: crate::run_bounded

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures::future::{FutureExt, RemoteHandle};
use futures::stream::{FusedStream, Stream};
use futures::task::{LocalSpawn, LocalSpawnExt, Spawn, SpawnExt};
use pin_project_lite::pin_project;

use crate::{BoundedUnordered, run_bounded};

/// Runs the futures of `tasks` as tasks of `spawner`, with at most `limit` in flight, yielding
/// their outputs as they finish.
///
/// This is [`run_bounded`] in *spawn mode*: each future runs as a task of the executor behind
/// `spawner`, so it makes progress while the consumer is busy with something else. A consumer
/// that awaits something slow between two items does not stall the futures in flight (with
/// plain [`run_bounded`] it does). The rest holds as in the default mode: the source is pulled
/// lazily, a future is spawned only when a slot is free, at most `limit` are in flight
/// (spawned and whose output is not yet returned), and the limit can be changed through
/// [`BoundedUnordered::handle`].
///
/// The futures and their outputs must be `Send + 'static`; [`run_bounded_spawn_local`] takes
/// a [`LocalSpawn`] for futures that are not `Send`. Spawning costs an allocation for the task
/// and one for the channel to its output, and a trip through the executor's queue: use spawn
/// mode when the consumer is slow, the default mode otherwise.
///
/// Dropping the stream cancels every task it spawned: each is dropped at its executor's next
/// turn, at the latest. A panic in a task is caught by the task and resumed out of the
/// stream's `poll_next`, as in the default mode.
///
/// # Executors
///
/// `futures::executor::LocalSpawner` and `ThreadPool` implement [`Spawn`]. tokio and smol do
/// not; the wrapper is a few lines. For tokio:
///
/// ```
/// use futures::future::FutureObj;
/// use futures::task::{Spawn, SpawnError};
///
/// /// Spawns on a tokio runtime. Make it inside the runtime with `TokioSpawner::current()`.
/// #[derive(Clone)]
/// struct TokioSpawner(tokio::runtime::Handle);
///
/// impl TokioSpawner {
///     fn current() -> Self {
///         TokioSpawner(tokio::runtime::Handle::current())
///     }
/// }
///
/// impl Spawn for TokioSpawner {
///     fn spawn_obj(&self, future: FutureObj<'static, ()>) -> Result<(), SpawnError> {
///         self.0.spawn(future); // the JoinHandle is dropped: the task runs detached
///         Ok(())
///     }
/// }
///
/// # use abstractions::run_bounded_spawn;
/// # use futures::stream::{self, StreamExt};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let tasks = stream::iter(0..10u32).map(|n| async move { n * 2 });
/// let outputs = run_bounded_spawn(tasks, 4, TokioSpawner::current());
/// assert_eq!(outputs.count().await, 10);
/// # });
/// ```
///
/// And for smol's `Executor` (its tasks run while the executor is run, for example with
/// `Executor::run` around the consumer):
///
/// ```
/// use futures::future::FutureObj;
/// use futures::task::{Spawn, SpawnError};
/// use std::sync::Arc;
///
/// #[derive(Clone)]
/// struct SmolSpawner(Arc<smol::Executor<'static>>);
///
/// impl Spawn for SmolSpawner {
///     fn spawn_obj(&self, future: FutureObj<'static, ()>) -> Result<(), SpawnError> {
///         self.0.spawn(future).detach(); // a dropped smol `Task` cancels: detach it
///         Ok(())
///     }
/// }
///
/// # use abstractions::run_bounded_spawn;
/// # use futures::stream::{self, StreamExt};
/// let executor = Arc::new(smol::Executor::new());
/// let spawner = SmolSpawner(Arc::clone(&executor));
/// let total: u32 = smol::block_on(executor.run(async {
///     let tasks = stream::iter(0..10u32).map(|n| async move { n * 2 });
///     run_bounded_spawn(tasks, 4, spawner).fold(0, |sum, n| async move { sum + n }).await
/// }));
/// assert_eq!(total, 90);
/// ```
///
/// # Panics
///
/// Panics if `limit` is 0. The stream panics (out of `poll_next`) if `spawner` refuses a task
/// (its executor was shut down), if a task panics, and if the executor drops a task before it
/// finished (the panic payload is then `futures::channel::oneshot::Canceled`).
///
/// # Examples
///
/// ```
/// use abstractions::run_bounded_spawn;
/// use futures::executor::LocalPool;
/// use futures::stream::{self, StreamExt};
///
/// let mut pool = LocalPool::new();
/// let spawner = pool.spawner();
/// let tasks = stream::iter(1..=10u64).map(|n| async move { n * n });
/// let mut squares: Vec<u64> = pool.run_until(run_bounded_spawn(tasks, 3, spawner).collect());
/// squares.sort();
/// assert_eq!(squares, [1, 4, 9, 16, 25, 36, 49, 64, 81, 100]);
/// ```
#[track_caller]
pub fn run_bounded_spawn<S, Sp>(
    tasks: S,
    limit: usize,
    spawner: Sp,
) -> BoundedUnordered<SpawnEach<S, Sp>>
where
    S: Stream,
    S::Item: Future + Send + 'static,
    <S::Item as Future>::Output: Send + 'static,
    Sp: Spawn,
{
    run_bounded(spawn_each(tasks, spawner), limit)
}

/// Runs the futures of `tasks` as tasks of a [`LocalSpawn`] executor, with at most `limit` in
/// flight, yielding their outputs as they finish.
///
/// [`run_bounded_spawn`] for futures that are not `Send`: everything said there holds here.
/// tokio's `LocalSet` and smol's `LocalExecutor` need the same few-line wrapper, with
/// `spawn_local` and [`LocalSpawn::spawn_local_obj`].
///
/// # Panics
///
/// As [`run_bounded_spawn`].
///
/// # Examples
///
/// ```
/// use abstractions::run_bounded_spawn_local;
/// use futures::executor::LocalPool;
/// use futures::stream::{self, StreamExt};
/// use std::rc::Rc;
///
/// let mut pool = LocalPool::new();
/// let spawner = pool.spawner();
/// // `Rc` is not `Send`.
/// let tasks = stream::iter(1..=4).map(|n| async move { Rc::new(n) });
/// let outputs = run_bounded_spawn_local(tasks, 2, spawner);
/// let total: i32 = pool.run_until(outputs.map(|n| *n).fold(0, |a, n| async move { a + n }));
/// assert_eq!(total, 10);
/// ```
#[track_caller]
pub fn run_bounded_spawn_local<S, Sp>(
    tasks: S,
    limit: usize,
    spawner: Sp,
) -> BoundedUnordered<SpawnEachLocal<S, Sp>>
where
    S: Stream,
    S::Item: Future + 'static,
    Sp: LocalSpawn,
{
    run_bounded(spawn_each_local(tasks, spawner), limit)
}

/// Spawns each future of `tasks` on `spawner` as it is pulled, and yields a [`RemoteHandle`]
/// to its output.
///
/// The building block of [`run_bounded_spawn`]: put any bounded adapter of this crate over it
/// to get its spawn mode, for example [`run_bounded_ordered`](crate::run_bounded_ordered)
/// for ordered outputs or [`for_each_bounded`](crate::for_each_bounded). Nothing is spawned
/// before it is pulled. Dropping a handle cancels its task.
///
/// # Panics
///
/// The stream panics (out of `poll_next`) if `spawner` refuses a task.
///
/// # Examples
///
/// ```
/// use abstractions::{run_bounded_ordered, spawn_each};
/// use futures::executor::LocalPool;
/// use futures::stream::{self, StreamExt};
///
/// let mut pool = LocalPool::new();
/// let tasks = spawn_each(stream::iter(0..5).map(|n| async move { n * 10 }), pool.spawner());
/// let outputs: Vec<i32> = pool.run_until(run_bounded_ordered(tasks, 2).collect());
/// assert_eq!(outputs, [0, 10, 20, 30, 40]);
/// ```
pub fn spawn_each<S, Sp>(tasks: S, spawner: Sp) -> SpawnEach<S, Sp>
where
    S: Stream,
    S::Item: Future + Send + 'static,
    <S::Item as Future>::Output: Send + 'static,
    Sp: Spawn,
{
    SpawnEach { tasks, spawner }
}

/// Spawns each future of `tasks` on a [`LocalSpawn`] executor as it is pulled, and yields a
/// [`RemoteHandle`] to its output.
///
/// [`spawn_each`] for futures that are not `Send`.
///
/// # Panics
///
/// The stream panics (out of `poll_next`) if `spawner` refuses a task.
///
/// # Examples
///
/// ```
/// use abstractions::{run_bounded, spawn_each_local};
/// use futures::executor::LocalPool;
/// use futures::stream::{self, StreamExt};
///
/// let mut pool = LocalPool::new();
/// let tasks = spawn_each_local(stream::iter(0..5).map(|n| async move { n }), pool.spawner());
/// assert_eq!(pool.run_until(run_bounded(tasks, 2).count()), 5);
/// ```
pub fn spawn_each_local<S, Sp>(tasks: S, spawner: Sp) -> SpawnEachLocal<S, Sp>
where
    S: Stream,
    S::Item: Future + 'static,
    Sp: LocalSpawn,
{
    SpawnEachLocal { tasks, spawner }
}

pin_project! {
    /// Stream for the [`spawn_each`] function, the source of [`run_bounded_spawn`].
    #[must_use = "streams do nothing unless polled"]
    pub struct SpawnEach<S, Sp> {
        #[pin]
        tasks: S,
        spawner: Sp,
    }
}

pin_project! {
    /// Stream for the [`spawn_each_local`] function, the source of
    /// [`run_bounded_spawn_local`].
    #[must_use = "streams do nothing unless polled"]
    pub struct SpawnEachLocal<S, Sp> {
        #[pin]
        tasks: S,
        spawner: Sp,
    }
}

#[track_caller]
fn refused(error: futures::task::SpawnError) -> ! {
    panic!("the executor refused to spawn a task: {error}")
}

impl<S, Sp> Stream for SpawnEach<S, Sp>
where
    S: Stream,
    S::Item: Future + Send + 'static,
    <S::Item as Future>::Output: Send + 'static,
    Sp: Spawn,
{
    type Item = RemoteHandle<<S::Item as Future>::Output>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        Poll::Ready(ready!(this.tasks.poll_next(cx)).map(|future| {
            let (task, handle) = future.remote_handle();
            if let Err(error) = this.spawner.spawn(task) {
                refused(error);
            }
            handle
        }))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.tasks.size_hint()
    }
}

impl<S, Sp> Stream for SpawnEachLocal<S, Sp>
where
    S: Stream,
    S::Item: Future + 'static,
    Sp: LocalSpawn,
{
    type Item = RemoteHandle<<S::Item as Future>::Output>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        Poll::Ready(ready!(this.tasks.poll_next(cx)).map(|future| {
            let (task, handle) = future.remote_handle();
            if let Err(error) = this.spawner.spawn_local(task) {
                refused(error);
            }
            handle
        }))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.tasks.size_hint()
    }
}

impl<S, Sp> FusedStream for SpawnEach<S, Sp>
where
    S: FusedStream,
    S::Item: Future + Send + 'static,
    <S::Item as Future>::Output: Send + 'static,
    Sp: Spawn,
{
    fn is_terminated(&self) -> bool {
        self.tasks.is_terminated()
    }
}

impl<S, Sp> FusedStream for SpawnEachLocal<S, Sp>
where
    S: FusedStream,
    S::Item: Future + 'static,
    Sp: LocalSpawn,
{
    fn is_terminated(&self) -> bool {
        self.tasks.is_terminated()
    }
}

impl<S, Sp> fmt::Debug for SpawnEach<S, Sp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpawnEach").finish_non_exhaustive()
    }
}

impl<S, Sp> fmt::Debug for SpawnEachLocal<S, Sp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpawnEachLocal").finish_non_exhaustive()
    }
}

//! The extension trait: `run_bounded` and its variants as methods of every stream of futures.

use std::future::Future;

use futures::TryFuture;
use futures::stream::Stream;
use futures::task::{LocalSpawn, Spawn};

use crate::BoundedUnordered;
use crate::StopHandle;
use crate::fallible::{self, TryBoundedUnordered};
use crate::for_each::{self, ForEachBounded};
use crate::ordered::{self, BoundedOrdered};
use crate::spawn::{self, SpawnEach, SpawnEachLocal};
use crate::until_stopped::{self, UntilStopped};

/// An extension trait that adds [`run_bounded`](BoundedStreamExt::run_bounded) and its
/// variants to every stream of futures: spawn mode, the `for_each` shape, the graceful stop,
/// ordered and fallible outputs.
///
/// Named so that it never clashes with `futures::StreamExt`. Each method is also a free
/// function of the same name, whose docs tell the full story.
pub trait BoundedStreamExt: Stream {
    /// Runs the futures of this stream with at most `limit` in flight, yielding their outputs
    /// as they finish. See the free function [`run_bounded`](crate::run_bounded) for the full story.
    ///
    /// # Panics
    ///
    /// Panics if `limit` is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// use abstractions::BoundedStreamExt;
    /// use futures::stream::{self, StreamExt};
    ///
    /// # futures::executor::block_on(async {
    /// let total: u32 = stream::iter(1..=4)
    ///     .map(|n| async move { n * 10 })
    ///     .run_bounded(2)
    ///     .fold(0, |sum, n| async move { sum + n })
    ///     .await;
    /// assert_eq!(total, 100);
    /// # });
    /// ```
    #[track_caller]
    fn run_bounded(self, limit: usize) -> BoundedUnordered<Self>
    where
        Self: Sized,
        Self::Item: Future,
    {
        crate::run_bounded(self, limit)
    }

    /// Runs the futures of this stream as tasks of `spawner`, with at most `limit` in flight.
    /// See [`run_bounded_spawn`](crate::run_bounded_spawn).
    ///
    /// # Panics
    ///
    /// Panics if `limit` is 0; see [`run_bounded_spawn`](crate::run_bounded_spawn).
    ///
    /// # Examples
    ///
    /// ```
    /// use abstractions::BoundedStreamExt;
    /// use futures::executor::LocalPool;
    /// use futures::stream::{self, StreamExt};
    ///
    /// let mut pool = LocalPool::new();
    /// let outputs = stream::iter(0..8).map(|n| async move { n }).run_bounded_spawn(2, pool.spawner());
    /// assert_eq!(pool.run_until(outputs.count()), 8);
    /// ```
    #[track_caller]
    fn run_bounded_spawn<Sp>(
        self,
        limit: usize,
        spawner: Sp,
    ) -> BoundedUnordered<SpawnEach<Self, Sp>>
    where
        Self: Sized,
        Self::Item: Future + Send + 'static,
        <Self::Item as Future>::Output: Send + 'static,
        Sp: Spawn,
    {
        spawn::run_bounded_spawn(self, limit, spawner)
    }

    /// Runs the futures of this stream, which need not be `Send`, as tasks of `spawner`, with
    /// at most `limit` in flight. See
    /// [`run_bounded_spawn_local`](crate::run_bounded_spawn_local).
    ///
    /// # Panics
    ///
    /// Panics if `limit` is 0; see [`run_bounded_spawn`](crate::run_bounded_spawn).
    ///
    /// # Examples
    ///
    /// ```
    /// use abstractions::BoundedStreamExt;
    /// use futures::executor::LocalPool;
    /// use futures::stream::{self, StreamExt};
    /// use std::rc::Rc;
    ///
    /// let mut pool = LocalPool::new();
    /// let tasks = stream::iter(0..8).map(|n| async move { Rc::new(n) });
    /// let outputs = tasks.run_bounded_spawn_local(2, pool.spawner());
    /// assert_eq!(pool.run_until(outputs.count()), 8);
    /// ```
    #[track_caller]
    fn run_bounded_spawn_local<Sp>(
        self,
        limit: usize,
        spawner: Sp,
    ) -> BoundedUnordered<SpawnEachLocal<Self, Sp>>
    where
        Self: Sized,
        Self::Item: Future + 'static,
        Sp: LocalSpawn,
    {
        spawn::run_bounded_spawn_local(self, limit, spawner)
    }

    /// Spawns each future of this stream on `spawner` as it is pulled, yielding handles to
    /// their outputs. See [`spawn_each`](crate::spawn_each).
    ///
    /// # Examples
    ///
    /// ```
    /// use abstractions::BoundedStreamExt;
    /// use futures::executor::LocalPool;
    /// use futures::stream::{self, StreamExt};
    ///
    /// let mut pool = LocalPool::new();
    /// let outputs = stream::iter(0..8).map(|n| async move { n }).spawn_each(pool.spawner());
    /// assert_eq!(pool.run_until(outputs.run_bounded(3).count()), 8);
    /// ```
    fn spawn_each<Sp>(self, spawner: Sp) -> SpawnEach<Self, Sp>
    where
        Self: Sized,
        Self::Item: Future + Send + 'static,
        <Self::Item as Future>::Output: Send + 'static,
        Sp: Spawn,
    {
        spawn::spawn_each(self, spawner)
    }

    /// Spawns each future of this stream, which need not be `Send`, on `spawner` as it is
    /// pulled. See [`spawn_each_local`](crate::spawn_each_local).
    ///
    /// # Examples
    ///
    /// ```
    /// use abstractions::BoundedStreamExt;
    /// use futures::executor::LocalPool;
    /// use futures::stream::{self, StreamExt};
    ///
    /// let mut pool = LocalPool::new();
    /// let outputs = stream::iter(0..8).map(|n| async move { n }).spawn_each_local(pool.spawner());
    /// assert_eq!(pool.run_until(outputs.run_bounded(3).count()), 8);
    /// ```
    fn spawn_each_local<Sp>(self, spawner: Sp) -> SpawnEachLocal<Self, Sp>
    where
        Self: Sized,
        Self::Item: Future + 'static,
        Sp: LocalSpawn,
    {
        spawn::spawn_each_local(self, spawner)
    }

    /// Runs the futures of this stream with at most `limit` in flight, and `body` on each
    /// output, one at a time, while the futures in flight keep running. See
    /// [`for_each_bounded`](crate::for_each_bounded).
    ///
    /// # Panics
    ///
    /// Panics if `limit` is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// use abstractions::BoundedStreamExt;
    /// use futures::stream::{self, StreamExt};
    ///
    /// # futures::executor::block_on(async {
    /// let mut seen = Vec::new();
    /// stream::iter(0..5)
    ///     .map(|n| async move { n })
    ///     .for_each_bounded(2, |n| {
    ///         seen.push(n);
    ///         async {}
    ///     })
    ///     .await;
    /// assert_eq!(seen.len(), 5);
    /// # });
    /// ```
    #[track_caller]
    fn for_each_bounded<Fut, F>(self, limit: usize, body: F) -> ForEachBounded<Self, Fut, F>
    where
        Self: Sized,
        Self::Item: Future,
        F: FnMut(<Self::Item as Future>::Output) -> Fut,
        Fut: Future<Output = ()>,
    {
        for_each::for_each_bounded(self, limit, body)
    }

    /// Ends this source as soon as `stop` is stopped: the graceful stop of the bounded
    /// adapters put over it. See [`until_stopped`](crate::until_stopped).
    ///
    /// # Examples
    ///
    /// ```
    /// use abstractions::{BoundedStreamExt, StopHandle};
    /// use futures::stream::{self, StreamExt};
    ///
    /// # futures::executor::block_on(async {
    /// let stop = StopHandle::new();
    /// stop.stop();
    /// let tasks = stream::iter(0..).map(|n| async move { n }).until_stopped(&stop);
    /// assert_eq!(tasks.run_bounded(4).count().await, 0);
    /// # });
    /// ```
    fn until_stopped(self, stop: &StopHandle) -> UntilStopped<Self>
    where
        Self: Sized,
    {
        until_stopped::until_stopped(self, stop)
    }

    /// Runs the futures of this stream with at most `limit` in flight, yielding their
    /// outputs in source order. Outputs waiting for an earlier one count against the limit.
    /// See [`run_bounded_ordered`](crate::run_bounded_ordered).
    ///
    /// # Panics
    ///
    /// Panics if `limit` is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// use abstractions::BoundedStreamExt;
    /// use futures::stream::{self, StreamExt};
    ///
    /// # futures::executor::block_on(async {
    /// let outputs: Vec<u32> = stream::iter([3, 1, 2])
    ///     .map(|n| async move { n })
    ///     .run_bounded_ordered(2)
    ///     .collect()
    ///     .await;
    /// assert_eq!(outputs, [3, 1, 2]);
    /// # });
    /// ```
    #[track_caller]
    fn run_bounded_ordered(self, limit: usize) -> BoundedOrdered<Self>
    where
        Self: Sized,
        Self::Item: Future,
    {
        ordered::run_bounded_ordered(self, limit)
    }

    /// Runs the futures of this stream, which return `Result`, with at most `limit` in
    /// flight, and stops at the first error. See [`try_run_bounded`](crate::try_run_bounded).
    ///
    /// # Panics
    ///
    /// Panics if `limit` is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// use abstractions::BoundedStreamExt;
    /// use futures::stream::{self, StreamExt};
    ///
    /// # futures::executor::block_on(async {
    /// let outputs: Vec<Result<u32, ()>> = stream::iter(0..5)
    ///     .map(|n| async move { Ok(n) })
    ///     .try_run_bounded(2)
    ///     .collect()
    ///     .await;
    /// assert_eq!(outputs.len(), 5);
    /// # });
    /// ```
    #[track_caller]
    fn try_run_bounded(self, limit: usize) -> TryBoundedUnordered<Self>
    where
        Self: Sized,
        Self::Item: TryFuture,
    {
        fallible::try_run_bounded(self, limit)
    }
}

impl<S: Stream + ?Sized> BoundedStreamExt for S {}

//! The ordered variant: outputs in source order, with finished outputs that wait for an
//! earlier one counted against the limit.

use std::any::Any;
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};

use futures::stream::{FusedStream, Stream};
use pin_project_lite::pin_project;

use crate::gate::{Gate, GateState};
use crate::{BoundedUnordered, LimitHandle, run_bounded};

/// Runs the futures of `tasks` with at most `limit` in flight, yielding their outputs in the
/// order of the source.
///
/// [`run_bounded`] with the order of `futures::StreamExt::buffered`. The source is pulled
/// lazily, and a future is in flight from the moment it is pulled until its output is
/// returned. **A finished output that waits for an earlier one counts against the limit**, so
/// at most `limit` outputs are ever held and memory stays bounded by the limit, whatever the
/// spread of durations. The price is head-of-line blocking: while the oldest future runs, at
/// most `limit - 1` later ones can finish, and nothing more is pulled until it is done. A
/// future that is much slower than the others holds the whole stream back to its pace; use
/// [`run_bounded`] when the order does not matter.
///
/// The limit can be changed through [`BoundedOrdered::handle`]. The handle's
/// [`in_flight`](LimitHandle::in_flight) does not count the outputs held for the order;
/// [`BoundedOrdered::in_flight`] does.
///
/// # Panics
///
/// Panics if `limit` is 0. A panic inside a future is held in its place and resumed out of
/// `poll_next` when its turn comes, after the outputs of every earlier future; the stream stays
/// usable after it.
///
/// # Examples
///
/// ```
/// use abstractions::run_bounded_ordered;
/// use futures::stream::{self, StreamExt};
///
/// # futures::executor::block_on(async {
/// let tasks = stream::iter(1..=6).map(|n| async move { n * n });
/// let squares: Vec<u64> = run_bounded_ordered(tasks, 3).collect().await;
/// assert_eq!(squares, [1, 4, 9, 16, 25, 36]);
/// # });
/// ```
#[track_caller]
pub fn run_bounded_ordered<S>(tasks: S, limit: usize) -> BoundedOrdered<S>
where
    S: Stream,
    S::Item: Future,
{
    let gate = Arc::new(GateState::default());
    let inner = run_bounded(
        Gate::new(
            Indexed {
                source: tasks,
                next: 0,
            },
            Arc::clone(&gate),
        ),
        limit,
    );
    gate.set_limit_handle(inner.handle());
    BoundedOrdered {
        inner,
        gate,
        waiting: VecDeque::new(),
        next: 0,
        held: 0,
        inner_done: false,
    }
}

pin_project! {
    /// Numbers the futures of a source in order.
    struct Indexed<S> {
        #[pin]
        source: S,
        next: u64,
    }
}

impl<S> Stream for Indexed<S>
where
    S: Stream,
    S::Item: Future,
{
    type Item = IndexedFuture<S::Item>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        let future = ready!(this.source.poll_next(cx));
        Poll::Ready(future.map(|future| {
            let index = *this.next;
            *this.next += 1;
            IndexedFuture { future, index }
        }))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.source.size_hint()
    }
}

pin_project! {
    /// A future with its place in the source; a panic becomes its output, to be resumed in
    /// its place.
    struct IndexedFuture<F> {
        #[pin]
        future: F,
        index: u64,
    }
}

/// The payload of a panic, held until its turn. In a `Mutex` (never contended) so that the
/// stream stays `Sync`.
struct Panic(Mutex<Box<dyn Any + Send>>);

impl Panic {
    fn resume(self) -> ! {
        panic::resume_unwind(self.0.into_inner().unwrap_or_else(PoisonError::into_inner))
    }
}

impl<F: Future> Future for IndexedFuture<F> {
    type Output = (u64, Result<F::Output, Panic>);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match panic::catch_unwind(AssertUnwindSafe(|| this.future.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(output)) => Poll::Ready((*this.index, Ok(output))),
            Err(payload) => Poll::Ready((*this.index, Err(Panic(Mutex::new(payload))))),
        }
    }
}

type Output<S> = <<S as Stream>::Item as Future>::Output;

pin_project! {
    /// Stream for the [`run_bounded_ordered`] function and the
    /// [`BoundedStreamExt::run_bounded_ordered`](crate::BoundedStreamExt::run_bounded_ordered)
    /// method.
    #[must_use = "streams do nothing unless polled"]
    pub struct BoundedOrdered<S>
    where
        S: Stream,
        S::Item: Future,
    {
        #[pin]
        inner: BoundedUnordered<Gate<Indexed<S>>>,
        gate: Arc<GateState>,
        // Place `i` holds the output of future `next + i` once it finished.
        waiting: VecDeque<Option<Result<Output<S>, Panic>>>,
        next: u64,
        // The finished outputs in `waiting`.
        held: usize,
        inner_done: bool,
    }
}

impl<S> BoundedOrdered<S>
where
    S: Stream,
    S::Item: Future,
{
    /// A handle that reads and changes the limit of this stream while it runs.
    ///
    /// # Examples
    ///
    /// ```
    /// use abstractions::run_bounded_ordered;
    /// use futures::stream::{self, StreamExt};
    ///
    /// # futures::executor::block_on(async {
    /// let stream = run_bounded_ordered(stream::iter(0..10).map(|n| async move { n }), 4);
    /// stream.handle().set_limit(2);
    /// assert_eq!(stream.limit(), 2);
    /// assert_eq!(stream.collect::<Vec<_>>().await, (0..10).collect::<Vec<_>>());
    /// # });
    /// ```
    pub fn handle(&self) -> LimitHandle {
        self.inner.handle()
    }

    /// The current limit.
    ///
    /// # Examples
    ///
    /// ```
    /// use abstractions::run_bounded_ordered;
    /// use futures::stream;
    ///
    /// let stream = run_bounded_ordered(stream::iter([async { 1 }]), 16);
    /// assert_eq!(stream.limit(), 16);
    /// ```
    pub fn limit(&self) -> usize {
        self.inner.limit()
    }

    /// How many futures are in flight: running, or finished and not yet returned (waiting for
    /// an earlier one included). At most the limit, unless the limit was lowered.
    ///
    /// # Examples
    ///
    /// ```
    /// use abstractions::run_bounded_ordered;
    /// use futures::stream::{self, StreamExt};
    ///
    /// # futures::executor::block_on(async {
    /// let mut stream = run_bounded_ordered(stream::iter(0..10).map(|n| async move { n }), 4);
    /// assert_eq!(stream.next().await, Some(0));
    /// assert_eq!(stream.in_flight(), 4);
    /// # });
    /// ```
    pub fn in_flight(&self) -> usize {
        self.inner.in_flight() + self.held
    }
}

/// Puts `output` of future `index` in its place.
fn stash<T>(waiting: &mut VecDeque<Option<T>>, next: u64, index: u64, output: T) {
    let place = usize::try_from(index - next).expect("at most `limit` places are waiting");
    if waiting.len() <= place {
        waiting.resize_with(place + 1, || None);
    }
    waiting[place] = Some(output);
}

impl<S> Stream for BoundedOrdered<S>
where
    S: Stream,
    S::Item: Future,
{
    type Item = Output<S>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        loop {
            if let Some(Some(_)) = this.waiting.front() {
                let Some(Some(output)) = this.waiting.pop_front() else {
                    unreachable!("the front was just seen finished")
                };
                *this.next += 1;
                *this.held -= 1;
                this.gate.release(1);
                // Refill the place this output frees before handing it out, as `run_bounded`
                // does, so `limit` futures keep working while the consumer handles it.
                if !*this.inner_done {
                    match this.inner.as_mut().poll_next(cx) {
                        Poll::Ready(Some((index, output))) => {
                            stash(this.waiting, *this.next, index, output);
                            *this.held += 1;
                        }
                        Poll::Ready(None) => *this.inner_done = true,
                        Poll::Pending => {}
                    }
                }
                return Poll::Ready(Some(match output {
                    Ok(output) => output,
                    Err(panic) => panic.resume(),
                }));
            }
            if *this.inner_done {
                // Every future finished, so nothing is missing.
                debug_assert!(this.waiting.is_empty());
                return Poll::Ready(None);
            }
            match ready!(this.inner.as_mut().poll_next(cx)) {
                Some((index, output)) => {
                    stash(this.waiting, *this.next, index, output);
                    *this.held += 1;
                }
                None => *this.inner_done = true,
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let (lower, upper) = self.inner.size_hint();
        (
            lower.saturating_add(self.held),
            upper.and_then(|upper| upper.checked_add(self.held)),
        )
    }
}

impl<S> FusedStream for BoundedOrdered<S>
where
    S: Stream,
    S::Item: Future,
{
    fn is_terminated(&self) -> bool {
        self.inner_done && self.waiting.is_empty()
    }
}

impl<S> fmt::Debug for BoundedOrdered<S>
where
    S: Stream,
    S::Item: Future,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoundedOrdered")
            .field("limit", &self.limit())
            .field("in_flight", &self.in_flight())
            .field("held_for_order", &self.held)
            .field("next_index", &self.next)
            .field("terminated", &self.is_terminated())
            .finish()
    }
}

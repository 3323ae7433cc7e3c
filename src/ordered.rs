//! The ordered variant: outputs in source order, with finished outputs that wait for an
//! earlier one counted against the limit.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll, ready};

use futures::stream::{FusedStream, Stream};
use pin_project_lite::pin_project;

use crate::LimitHandle;
use crate::bounded::{Bounded, Outputs};

/// Runs the futures of `tasks` with at most `limit` in flight, yielding their outputs in the
/// order of the source.
///
/// [`run_bounded`](crate::run_bounded) with the order of `futures::StreamExt::buffered`. The source is pulled
/// lazily, and a future is in flight from the moment it is pulled until its output is
/// returned. **A finished output that waits for an earlier one counts against the limit**, so
/// at most `limit` outputs are ever held and memory stays bounded by the limit, whatever the
/// spread of durations. The price is head-of-line blocking: while the oldest future runs, at
/// most `limit - 1` later ones can finish, and nothing more is pulled until it is done. A
/// future that is much slower than the others holds the whole stream back to its pace; use
/// [`run_bounded`](crate::run_bounded) when the order does not matter.
///
/// The limit can be changed through [`BoundedOrdered::handle`]. Both
/// [`BoundedOrdered::in_flight`] and the handle's [`in_flight`](LimitHandle::in_flight) count
/// the outputs held for the order.
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
    BoundedOrdered {
        inner: Bounded::new(
            Indexed {
                source: tasks,
                next: 0,
            },
            limit,
        ),
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

    #[inline]
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
/// stream stays `Sync`, and boxed so that the outputs of the futures that do not panic stay
/// small.
struct Panic(Box<Mutex<Box<dyn Any + Send>>>);

impl Panic {
    fn resume(self) -> ! {
        panic::resume_unwind(self.0.into_inner().unwrap_or_else(PoisonError::into_inner))
    }
}

impl<F: Future> Future for IndexedFuture<F> {
    type Output = (u64, Result<F::Output, Panic>);

    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match panic::catch_unwind(AssertUnwindSafe(|| this.future.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(output)) => Poll::Ready((*this.index, Ok(output))),
            Err(payload) => Poll::Ready((*this.index, Err(Panic(Box::new(Mutex::new(payload)))))),
        }
    }
}

type Output<S> = <<S as Stream>::Item as Future>::Output;

/// The outputs of [`BoundedOrdered`], in source order, in a ring indexed by the futures'
/// place in the source. Outputs waiting for an earlier one stay in flight in the adapter, so
/// they count against the limit; and as outputs leave in order, the futures in flight are
/// exactly those numbered from `next` to `next + in_flight - 1`: a ring of `in_flight` places
/// holds them all. It grows (to a power of two) when the limit is raised.
pub(crate) struct InOrder<T> {
    /// The next output, set aside to be handed out.
    leaving: Option<T>,
    /// The output of future `i`, once it finished, at `ring[i & (ring.len() - 1)]`.
    ring: Vec<Option<T>>,
    /// The place in the source of the next output to hand out.
    next: u64,
}

impl<T> Default for InOrder<T> {
    fn default() -> Self {
        InOrder {
            leaving: None,
            ring: Vec::new(),
            next: 0,
        }
    }
}

impl<T> InOrder<T> {
    /// Finished outputs held for the order (not counting the one set aside).
    fn held(&self) -> usize {
        self.ring.iter().filter(|place| place.is_some()).count()
    }

    /// The place of future `i` is `i & mask` (with an empty ring, a place past its end).
    #[inline]
    fn mask(&self) -> u64 {
        (self.ring.len() as u64).wrapping_sub(1)
    }

    /// Makes room for the output of future `next + span - 1`, keeping every output at its
    /// place. Out of line: it runs only while the ring grows to the limit.
    #[cold]
    #[inline(never)]
    fn grow(&mut self, span: u64) {
        let len = usize::try_from(span)
            .expect("at most `limit` futures are in flight")
            .next_power_of_two();
        let mut ring: Vec<Option<T>> = std::iter::repeat_with(|| None).take(len).collect();
        let old_mask = self.mask();
        let new_mask = len as u64 - 1;
        for (i, output) in std::mem::take(&mut self.ring).into_iter().enumerate() {
            if let Some(output) = output {
                // The output at old place `i` is that of the future in `next..next + old
                // length` whose number is `i` modulo the old length.
                let index = self.next + ((i as u64).wrapping_sub(self.next) & old_mask);
                ring[(index & new_mask) as usize] = Some(output);
            }
        }
        self.ring = ring;
    }
}

impl<T> Outputs<(u64, T)> for InOrder<T> {
    type Item = T;

    #[inline]
    fn push(&mut self, (index, output): (u64, T)) {
        let span = index - self.next + 1;
        if span > self.ring.len() as u64 {
            self.grow(span);
        }
        let place = (index & self.mask()) as usize;
        self.ring[place] = Some(output);
    }

    #[inline]
    fn ready(&self) -> bool {
        self.leaving.is_some()
            || self
                .ring
                .get((self.next & self.mask()) as usize)
                .is_some_and(Option::is_some)
    }

    #[inline]
    fn leave(&mut self) {
        if self.leaving.is_none() && !self.ring.is_empty() {
            let place = (self.next & self.mask()) as usize;
            if let Some(output) = self.ring[place].take() {
                self.leaving = Some(output);
                self.next += 1;
            }
        }
    }

    #[inline]
    fn take(&mut self) -> Option<T> {
        self.leaving.take()
    }
}

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
        inner: Bounded<Indexed<S>, InOrder<Result<Output<S>, Panic>>>,
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
        self.inner.in_flight()
    }
}

impl<S> Stream for BoundedOrdered<S>
where
    S: Stream,
    S::Item: Future,
{
    type Item = Output<S>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Poll::Ready(match ready!(self.project().inner.poll_next(cx)) {
            Some(Ok(output)) => Some(output),
            Some(Err(panic)) => panic.resume(),
            None => None,
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl<S> FusedStream for BoundedOrdered<S>
where
    S: Stream,
    S::Item: Future,
{
    fn is_terminated(&self) -> bool {
        self.inner.is_terminated()
    }
}

impl<S> fmt::Debug for BoundedOrdered<S>
where
    S: Stream,
    S::Item: Future,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let outputs = self.inner.outputs();
        f.debug_struct("BoundedOrdered")
            .field("limit", &self.limit())
            .field("in_flight", &self.in_flight())
            .field("held_for_order", &outputs.held())
            .field("next_index", &outputs.next)
            .field("terminated", &self.is_terminated())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Futures finish in a scrambled order while the limit changes (the ring grows with
    /// outputs held at wrapped places): the outputs still leave in source order, each once.
    #[test]
    fn in_order_hands_out_outputs_in_source_order_across_growth() {
        let mut outputs = InOrder::default();
        let (mut pulled, mut returned) = (0u64, 0u64);
        let mut running: Vec<u64> = Vec::new();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for step in 0..20_000u64 {
            let limit = [1, 3, 8, 5, 16, 2, 64, 7][(step / 1_000 % 8) as usize];
            while pulled - returned < limit {
                running.push(pulled);
                pulled += 1;
            }
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            if !running.is_empty() {
                let index = running.swap_remove((seed % running.len() as u64) as usize);
                outputs.push((index, index * 10));
            }
            while outputs.ready() {
                outputs.leave();
                assert_eq!(outputs.take(), Some(returned * 10));
                returned += 1;
            }
            assert!(outputs.held() as u64 <= pulled - returned);
        }
        assert!(returned > 10_000);
    }
}

//! The fallible variant: futures that return `Result`, and a stop at the first error.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures::TryFuture;
use futures::stream::{FusedStream, Stream};
use pin_project_lite::pin_project;

use crate::LimitHandle;
use crate::bounded::{Bounded, Fifo, Outputs};

/// Runs the futures of `tasks`, which return `Result`, with at most `limit` in flight, yielding
/// their outputs as they finish, and stops at the first error.
///
/// [`run_bounded`](crate::run_bounded) for fallible work, as `futures::TryStreamExt::try_buffer_unordered`. The
/// first `Err` stops the pulls at once: the error trips the source the moment its future
/// returns it, before its slot could be refilled, so nothing is pulled after it. Then, by
/// default, the error comes as soon as the outputs that finished before it have come (outputs
/// come in the order they finished), the futures still in flight are dropped (cancelled) with
/// any `Ok` output that finished after it, and the stream ends. With
/// [`finish_in_flight_on_error`](TryBoundedUnordered::finish_in_flight_on_error), the futures
/// in flight finish instead, their `Ok` outputs are yielded, then the first error last, and the
/// stream ends; errors of those futures after the first are dropped.
///
/// # Panics
///
/// Panics if `limit` is 0. A panic inside a future propagates out of `poll_next`, as in
/// [`run_bounded`](crate::run_bounded).
///
/// # Examples
///
/// ```
/// use abstractions::try_run_bounded;
/// use futures::stream::{self, StreamExt};
///
/// # futures::executor::block_on(async {
/// let tasks = stream::iter(0..100).map(|n| async move {
///     if n == 3 { Err(format!("job {n} failed")) } else { Ok(n) }
/// });
/// let outputs: Vec<Result<u32, String>> = try_run_bounded(tasks, 2).collect().await;
/// // Every output up to the error, then the error, then nothing more.
/// assert_eq!(outputs.last(), Some(&Err("job 3 failed".to_string())));
/// assert!(outputs.len() <= 5);
/// # });
/// ```
#[track_caller]
pub fn try_run_bounded<S>(tasks: S, limit: usize) -> TryBoundedUnordered<S>
where
    S: Stream,
    S::Item: TryFuture,
{
    let inner = Bounded::new(Results { source: tasks }, limit);
    TryBoundedUnordered {
        handle: inner.handle(),
        inner: Some(inner),
        finish_in_flight: false,
        error: None,
    }
}

pin_project! {
    /// A source of [`TryFuture`]s as futures of `Result`.
    struct Results<S> {
        #[pin]
        source: S,
    }
}

impl<S> Stream for Results<S>
where
    S: Stream,
    S::Item: TryFuture,
{
    type Item = IntoResult<S::Item>;

    #[inline]
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let future = ready!(self.project().source.poll_next(cx));
        Poll::Ready(future.map(|future| IntoResult { future }))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.source.size_hint()
    }
}

pin_project! {
    /// A [`TryFuture`] as a future of `Result`.
    struct IntoResult<F> {
        #[pin]
        future: F,
    }
}

impl<F: TryFuture> Future for IntoResult<F> {
    type Output = Result<F::Ok, F::Error>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().future.try_poll(cx)
    }
}

/// The outputs of [`TryBoundedUnordered`]: in the order they finished, and the first error
/// stops the pulls from the source at once, before the slot of its future is refilled.
pub(crate) struct UntilError<T, E> {
    outputs: Fifo<Result<T, E>>,
    failed: bool,
}

impl<T, E> Default for UntilError<T, E> {
    fn default() -> Self {
        UntilError {
            outputs: Fifo::default(),
            failed: false,
        }
    }
}

impl<T, E> Outputs<Result<T, E>> for UntilError<T, E> {
    type Item = Result<T, E>;

    #[inline]
    fn push(&mut self, output: Result<T, E>) {
        self.failed |= output.is_err();
        self.outputs.push(output);
    }

    #[inline]
    fn stops(&self) -> bool {
        self.failed
    }

    #[inline]
    fn ready(&self) -> bool {
        self.outputs.ready()
    }

    #[inline]
    fn leave(&mut self) {
        self.outputs.leave();
    }

    #[inline]
    fn take(&mut self) -> Option<Self::Item> {
        self.outputs.take()
    }
}

type OkOf<S> = <<S as Stream>::Item as TryFuture>::Ok;
type ErrorOf<S> = <<S as Stream>::Item as TryFuture>::Error;

pin_project! {
    /// Stream for the [`try_run_bounded`] function and the
    /// [`BoundedStreamExt::try_run_bounded`](crate::BoundedStreamExt::try_run_bounded)
    /// method.
    #[must_use = "streams do nothing unless polled"]
    pub struct TryBoundedUnordered<S>
    where
        S: Stream,
        S::Item: TryFuture,
    {
        // `None` once ended, or dropped at an error.
        #[pin]
        inner: Option<Bounded<Results<S>, UntilError<OkOf<S>, ErrorOf<S>>>>,
        handle: LimitHandle,
        finish_in_flight: bool,
        // The first error, yielded last when the futures in flight finish.
        error: Option<<S::Item as TryFuture>::Error>,
    }
}

impl<S> TryBoundedUnordered<S>
where
    S: Stream,
    S::Item: TryFuture,
{
    /// On the first error, lets the futures in flight finish and yields their `Ok` outputs
    /// before the error, instead of dropping them.
    ///
    /// Nothing more is pulled after the error either way. The errors of the futures in flight
    /// are dropped: only the first error is yielded, last.
    ///
    /// # Examples
    ///
    /// ```
    /// use abstractions::try_run_bounded;
    /// use futures::stream::{self, StreamExt};
    ///
    /// # futures::executor::block_on(async {
    /// # async fn yield_now() {
    /// #     let mut yielded = false;
    /// #     futures::future::poll_fn(|cx| {
    /// #         if yielded { return std::task::Poll::Ready(()) }
    /// #         yielded = true;
    /// #         cx.waker().wake_by_ref();
    /// #         std::task::Poll::Pending
    /// #     })
    /// #     .await
    /// # }
    /// let tasks = stream::iter(0..10).map(|n| async move {
    ///     yield_now().await;
    ///     if n == 0 {
    ///         return Err("job 0 failed"); // while jobs 1 and 2 are in flight
    ///     }
    ///     yield_now().await;
    ///     Ok(n)
    /// });
    /// let outputs: Vec<_> = try_run_bounded(tasks, 3).finish_in_flight_on_error().collect().await;
    /// // Jobs 1 and 2 were in flight with job 0: their outputs come first, the error last.
    /// assert_eq!(outputs, [Ok(1), Ok(2), Err("job 0 failed")]);
    /// # });
    /// ```
    pub fn finish_in_flight_on_error(mut self) -> Self {
        self.finish_in_flight = true;
        self
    }

    /// A handle that reads and changes the limit of this stream while it runs.
    ///
    /// # Examples
    ///
    /// ```
    /// use abstractions::try_run_bounded;
    /// use futures::stream;
    ///
    /// let stream = try_run_bounded(stream::iter([async { Ok::<_, ()>(1) }]), 4);
    /// stream.handle().set_limit(2);
    /// assert_eq!(stream.limit(), 2);
    /// ```
    pub fn handle(&self) -> LimitHandle {
        self.handle.clone()
    }

    /// The current limit.
    ///
    /// # Examples
    ///
    /// ```
    /// use abstractions::try_run_bounded;
    /// use futures::stream;
    ///
    /// let stream = try_run_bounded(stream::iter([async { Ok::<_, ()>(1) }]), 4);
    /// assert_eq!(stream.limit(), 4);
    /// ```
    pub fn limit(&self) -> usize {
        self.handle.limit()
    }

    /// How many futures are in flight: pulled, and whose output has not been returned.
    ///
    /// # Examples
    ///
    /// ```
    /// use abstractions::try_run_bounded;
    /// use futures::stream::{self, StreamExt};
    ///
    /// # futures::executor::block_on(async {
    /// let mut stream = try_run_bounded(stream::iter(0..9).map(|n| async move { Ok::<_, ()>(n) }), 4);
    /// stream.next().await;
    /// assert_eq!(stream.in_flight(), 4);
    /// # });
    /// ```
    pub fn in_flight(&self) -> usize {
        self.inner.as_ref().map_or(0, Bounded::in_flight)
    }
}

impl<S> Stream for TryBoundedUnordered<S>
where
    S: Stream,
    S::Item: TryFuture,
{
    type Item = Result<<S::Item as TryFuture>::Ok, <S::Item as TryFuture>::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        loop {
            let Some(inner) = this.inner.as_mut().as_pin_mut() else {
                return Poll::Ready(this.error.take().map(Err));
            };
            match ready!(inner.poll_next(cx)) {
                Some(Ok(output)) => return Poll::Ready(Some(Ok(output))),
                Some(Err(error)) if !*this.finish_in_flight => {
                    // Drop the futures in flight, and the source, now.
                    this.inner.set(None);
                    return Poll::Ready(Some(Err(error)));
                }
                Some(Err(error)) => {
                    if this.error.is_none() {
                        *this.error = Some(error);
                    }
                }
                None => this.inner.set(None),
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let error = usize::from(self.error.is_some());
        match &self.inner {
            None => (error, Some(error)),
            // An error may end the stream at any time.
            Some(inner) => (0, inner.size_hint().1.and_then(|u| u.checked_add(error))),
        }
    }
}

impl<S> FusedStream for TryBoundedUnordered<S>
where
    S: Stream,
    S::Item: TryFuture,
{
    fn is_terminated(&self) -> bool {
        self.inner.is_none() && self.error.is_none()
    }
}

impl<S> fmt::Debug for TryBoundedUnordered<S>
where
    S: Stream,
    S::Item: TryFuture,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TryBoundedUnordered")
            .field("limit", &self.limit())
            .field("in_flight", &self.in_flight())
            .field("finish_in_flight_on_error", &self.finish_in_flight)
            .field("error_waiting", &self.error.is_some())
            .field("terminated", &self.is_terminated())
            .finish()
    }
}

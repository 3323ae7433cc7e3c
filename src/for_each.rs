//! The `for_each` shape: the consumer's body and the futures in flight, polled together.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::future::FusedFuture;
use futures::stream::Stream;
use pin_project_lite::pin_project;

use crate::LimitHandle;
use crate::bounded::{BUDGET, Bounded, Fifo};

/// Runs the futures of `tasks` with at most `limit` in flight, and `body` on each output as
/// they finish, one body at a time; the futures in flight keep running while a body awaits.
///
/// This is the loop `while let Some(output) = run_bounded(tasks, limit).next().await {
/// body(output).await }` without its trap: in that loop, the futures in flight make no
/// progress while `body` awaits (see [`run_bounded`](crate::run_bounded)), and a body that waits for one of them
/// never ends. Here one future polls both: the body, and the futures in flight, whose outputs
/// queue while the body runs. No spawner is needed, and the futures need not be `Send`.
///
/// Bodies run one at a time, in the order the outputs finished. An output that waits for the
/// body counts as in flight: the source is pulled only while fewer than `limit` futures are
/// running or waiting, so memory stays bounded by the limit. An output leaves the count when
/// its body starts, so `limit` futures keep running while a body works. The limit can be
/// changed through [`ForEachBounded::handle`]; wrap the source in
/// [`until_stopped`](crate::until_stopped) to stop it gracefully.
///
/// The future completes when the source is exhausted and every output went through `body`.
///
/// # Panics
///
/// Panics if `limit` is 0. A panic in a future or in a body propagates out of `poll`.
///
/// # Examples
///
/// ```
/// use abstractions::for_each_bounded;
/// use futures::stream::{self, StreamExt};
///
/// # futures::executor::block_on(async {
/// async fn fetch(id: u32) -> u32 { id * 2 }
/// let (tx, rx) = futures::channel::mpsc::unbounded();
/// let tasks = stream::iter(0..100).map(fetch);
/// for_each_bounded(tasks, 8, |answer| {
///     let tx = tx.clone();
///     // A slow body (saving to disk, a rate-limited upload) does not stall the fetches.
///     async move { tx.unbounded_send(answer).unwrap() }
/// })
/// .await;
/// drop(tx);
/// assert_eq!(rx.count().await, 100);
/// # });
/// ```
#[track_caller]
pub fn for_each_bounded<S, Fut, F>(tasks: S, limit: usize, body: F) -> ForEachBounded<S, Fut, F>
where
    S: Stream,
    S::Item: Future,
    F: FnMut(<S::Item as Future>::Output) -> Fut,
    Fut: Future<Output = ()>,
{
    ForEachBounded {
        outputs: Bounded::new(tasks, limit),
        body: None,
        f: body,
        outputs_done: false,
    }
}

pin_project! {
    /// Future for the [`for_each_bounded`] function and the
    /// [`BoundedStreamExt::for_each_bounded`](crate::BoundedStreamExt::for_each_bounded)
    /// method.
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub struct ForEachBounded<S, Fut, F>
    where
        S: Stream,
        S::Item: Future,
    {
        #[pin]
        // Finished outputs wait for the body in its queue, counted as in flight.
        outputs: Bounded<S, Fifo<<S::Item as Future>::Output>>,
        #[pin]
        body: Option<Fut>,
        f: F,
        outputs_done: bool,
    }
}

impl<S, Fut, F> ForEachBounded<S, Fut, F>
where
    S: Stream,
    S::Item: Future,
{
    /// A handle that reads and changes the limit while the future runs.
    ///
    /// # Examples
    ///
    /// ```
    /// use abstractions::for_each_bounded;
    /// use futures::stream::{self, StreamExt};
    ///
    /// # futures::executor::block_on(async {
    /// let run = for_each_bounded(stream::iter(0..10).map(|n| async move { n }), 4, |_| async {});
    /// run.handle().set_limit(2);
    /// assert_eq!(run.limit(), 2);
    /// run.await;
    /// # });
    /// ```
    pub fn handle(&self) -> LimitHandle {
        self.outputs.handle()
    }

    /// The current limit.
    ///
    /// # Examples
    ///
    /// ```
    /// use abstractions::for_each_bounded;
    /// use futures::stream;
    ///
    /// let run = for_each_bounded(stream::iter([async { 1 }]), 16, |_| async {});
    /// assert_eq!(run.limit(), 16);
    /// ```
    pub fn limit(&self) -> usize {
        self.outputs.limit()
    }

    /// How many futures are in flight: running, or finished and waiting for the body.
    ///
    /// # Examples
    ///
    /// ```
    /// use abstractions::for_each_bounded;
    /// use futures::stream;
    ///
    /// let run = for_each_bounded(stream::iter([async { 1 }]), 16, |_| async {});
    /// assert_eq!(run.in_flight(), 0);
    /// ```
    pub fn in_flight(&self) -> usize {
        self.outputs.in_flight()
    }
}

impl<S, Fut, F> Future for ForEachBounded<S, Fut, F>
where
    S: Stream,
    S::Item: Future,
    F: FnMut(<S::Item as Future>::Output) -> Fut,
    Fut: Future<Output = ()>,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        let mut budget = BUDGET;
        loop {
            let mut progressed = false;
            if !*this.outputs_done {
                if this.body.is_none() {
                    // The output leaves the count as it is handed over, and its slot is
                    // refilled before, as in `run_bounded`.
                    match this.outputs.as_mut().poll_next(cx) {
                        Poll::Ready(Some(output)) => {
                            this.body.set(Some((this.f)(output)));
                            progressed = true;
                        }
                        Poll::Ready(None) => *this.outputs_done = true,
                        Poll::Pending => {}
                    }
                } else if this.outputs.as_mut().poll_progress(cx).is_ready() {
                    // Busy body: the futures in flight run, and their outputs wait.
                    *this.outputs_done = true;
                }
            }
            if let Some(body) = this.body.as_mut().as_pin_mut()
                && body.poll(cx).is_ready()
            {
                this.body.set(None);
                progressed = true;
            }
            if *this.outputs_done && this.body.is_none() {
                return Poll::Ready(());
            }
            if !progressed {
                return Poll::Pending;
            }
            budget -= 1;
            if budget == 0 {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
        }
    }
}

impl<S, Fut, F> FusedFuture for ForEachBounded<S, Fut, F>
where
    S: Stream,
    S::Item: Future,
    F: FnMut(<S::Item as Future>::Output) -> Fut,
    Fut: Future<Output = ()>,
{
    fn is_terminated(&self) -> bool {
        self.outputs_done && self.body.is_none()
    }
}

impl<S, Fut, F> fmt::Debug for ForEachBounded<S, Fut, F>
where
    S: Stream,
    S::Item: Future,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ForEachBounded")
            .field("limit", &self.limit())
            .field("in_flight", &self.in_flight())
            .field("waiting_for_body", &self.outputs.outputs().len())
            .field("body_running", &self.body.is_some())
            .finish()
    }
}

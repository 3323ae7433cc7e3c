//! The graceful stop of a source: pull nothing more once a [`StopHandle`] is stopped.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::stream::{FusedStream, Stream};
use pin_project_lite::pin_project;

use crate::{StopHandle, Stopped};

/// Ends `source` as soon as `stop` is stopped: the graceful stop of every bounded adapter.
///
/// Put it between the source and a bounded adapter ([`run_bounded`](crate::run_bounded), spawn
/// mode, [`for_each_bounded`](crate::for_each_bounded), the ordered and fallible variants): once
/// [`StopHandle::stop`] is called, nothing more is pulled, the futures in flight finish, their
/// outputs are yielded, and then the stream ends. This is what a Ctrl-C handler calls.
///
/// The stop is checked before each pull, and a source that is waiting (`Pending`) is woken by
/// the stop, so a stop ends an idle source too. The source is dropped as soon as the stop is
/// seen. A future already pulled is never cancelled by the stop; to cancel the futures in
/// flight as well, drop the stream.
///
/// # Examples
///
/// ```
/// use abstractions::{BoundedStreamExt, StopHandle, until_stopped};
/// use futures::stream::{self, StreamExt};
///
/// # futures::executor::block_on(async {
/// let stop = StopHandle::new();
/// let tasks = until_stopped(stream::iter(0u64..).map(|n| async move { n }), &stop);
/// let mut outputs = tasks.run_bounded(4);
/// let mut seen = Vec::new();
/// while let Some(n) = outputs.next().await {
///     seen.push(n);
///     if seen.len() == 10 {
///         stop.stop(); // as a Ctrl-C handler would
///     }
/// }
/// // The endless source ended; what was pulled before the stop came out, nothing was lost.
/// seen.sort();
/// assert_eq!(seen, (0..seen.len() as u64).collect::<Vec<_>>());
/// assert!((10..=14).contains(&seen.len()));
/// # });
/// ```
pub fn until_stopped<S: Stream>(source: S, stop: &StopHandle) -> UntilStopped<S> {
    UntilStopped {
        source: Some(source),
        stop: stop.clone(),
        stopped: stop.stopped(),
    }
}

pin_project! {
    /// Stream for the [`until_stopped`] function and the
    /// [`BoundedStreamExt::until_stopped`](crate::BoundedStreamExt::until_stopped) method.
    #[must_use = "streams do nothing unless polled"]
    pub struct UntilStopped<S> {
        // `None` once ended or stopped.
        #[pin]
        source: Option<S>,
        stop: StopHandle,
        // Wakes a waiting source's consumer when the stop comes.
        stopped: Stopped,
    }
}

impl<S> UntilStopped<S> {
    /// The handle that stops this source.
    ///
    /// # Examples
    ///
    /// ```
    /// use abstractions::{StopHandle, until_stopped};
    /// use futures::stream;
    ///
    /// let source = until_stopped(stream::iter([1, 2]), &StopHandle::new());
    /// source.stop_handle().stop();
    /// assert!(source.stop_handle().is_stopped());
    /// ```
    pub fn stop_handle(&self) -> &StopHandle {
        &self.stop
    }
}

impl<S: Stream> Stream for UntilStopped<S> {
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let mut this = self.project();
        let Some(source) = this.source.as_mut().as_pin_mut() else {
            return Poll::Ready(None);
        };
        if this.stop.is_stopped() {
            this.source.set(None);
            return Poll::Ready(None);
        }
        match source.poll_next(cx) {
            Poll::Ready(Some(item)) => Poll::Ready(Some(item)),
            Poll::Ready(None) => {
                this.source.set(None);
                Poll::Ready(None)
            }
            // Waiting: listen for the stop too.
            Poll::Pending => match Pin::new(this.stopped).poll(cx) {
                Poll::Ready(()) => {
                    this.source.set(None);
                    Poll::Ready(None)
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match &self.source {
            // A stop may come at any time.
            Some(source) => (0, source.size_hint().1),
            None => (0, Some(0)),
        }
    }
}

impl<S: Stream> FusedStream for UntilStopped<S> {
    fn is_terminated(&self) -> bool {
        self.source.is_none()
    }
}

impl<S> fmt::Debug for UntilStopped<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UntilStopped")
            .field("stopped", &self.stop.is_stopped())
            .field("ended", &self.source.is_none())
            .finish()
    }
}

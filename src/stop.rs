//! A cloneable handle that asks a run to stop gracefully.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};

use event_listener::{Event, EventListener};

/// Asks a run to stop gracefully: pull no new work, finish and save what is in flight, and
/// return.
///
/// This is what a Ctrl-C handler calls. The handle is cheap to clone; every clone stops the
/// same runs, any number of them, from any thread. Stopping is final: a stopped handle stays
/// stopped.
///
/// # Examples
///
/// ```
/// use abstractions::StopHandle;
/// use futures::stream::{self, StreamExt};
///
/// # futures::executor::block_on(async {
/// let stop = StopHandle::new();
/// let numbers = stream::iter(0..).take_until(stop.stopped());
/// let first: Vec<u32> = numbers
///     .map(|n| {
///         if n == 2 {
///             stop.stop();
///         }
///         n
///     })
///     .collect()
///     .await;
/// assert_eq!(first, [0, 1, 2]);
/// assert!(stop.is_stopped());
/// # });
/// ```
#[derive(Clone, Default)]
pub struct StopHandle {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    stopped: AtomicBool,
    event: Event,
}

impl StopHandle {
    /// A handle that has not been stopped.
    ///
    /// # Examples
    ///
    /// ```
    /// let stop = abstractions::StopHandle::new();
    /// assert!(!stop.is_stopped());
    /// ```
    pub fn new() -> Self {
        StopHandle::default()
    }

    /// Asks every run that holds this handle (or a clone) to stop, and wakes them.
    ///
    /// # Examples
    ///
    /// ```
    /// let stop = abstractions::StopHandle::new();
    /// let clone = stop.clone();
    /// clone.stop();
    /// assert!(stop.is_stopped());
    /// ```
    pub fn stop(&self) {
        self.inner.stopped.store(true, Ordering::SeqCst);
        self.inner.event.notify(usize::MAX);
    }

    /// Whether [`stop`](StopHandle::stop) was called.
    ///
    /// # Examples
    ///
    /// ```
    /// let stop = abstractions::StopHandle::new();
    /// stop.stop();
    /// assert!(stop.is_stopped());
    /// ```
    pub fn is_stopped(&self) -> bool {
        self.inner.stopped.load(Ordering::SeqCst)
    }

    /// A future that completes once the handle is stopped, for `take_until` and `select`.
    ///
    /// # Examples
    ///
    /// ```
    /// use abstractions::StopHandle;
    ///
    /// # futures::executor::block_on(async {
    /// let stop = StopHandle::new();
    /// let stopped = stop.stopped();
    /// stop.stop();
    /// stopped.await;
    /// # });
    /// ```
    pub fn stopped(&self) -> Stopped {
        Stopped {
            handle: self.clone(),
            listener: None,
        }
    }
}

impl fmt::Debug for StopHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StopHandle")
            .field("stopped", &self.is_stopped())
            .finish()
    }
}

/// Future for the [`StopHandle::stopped`] method.
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct Stopped {
    handle: StopHandle,
    listener: Option<EventListener>,
}

impl Future for Stopped {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if self.handle.is_stopped() {
                self.listener = None;
                return Poll::Ready(());
            }
            match self.listener.as_mut() {
                // Listen first, then check again: a `stop` in between is not missed.
                None => self.listener = Some(self.handle.inner.event.listen()),
                Some(listener) => {
                    ready!(Pin::new(listener).poll(cx));
                    self.listener = None;
                }
            }
        }
    }
}

impl fmt::Debug for Stopped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stopped")
            .field("stopped", &self.handle.is_stopped())
            .finish()
    }
}

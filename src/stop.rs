//! A cloneable handle that asks a run to stop gracefully.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};

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
            registered: None,
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
    /// The waker the listener was last polled with. Polling the same waker again needs no
    /// new registration (the listener stays registered until `stop` notifies it, and `stop`
    /// sets the flag first), so a stream that polls this once per item, as `take_until`
    /// does, pays one atomic load, not the event's lock.
    registered: Option<Waker>,
}

impl Future for Stopped {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        loop {
            if this.handle.is_stopped() {
                this.listener = None;
                this.registered = None;
                return Poll::Ready(());
            }
            match &mut this.listener {
                // Listen first, then check again: a `stop` in between is not missed.
                None => this.listener = Some(this.handle.inner.event.listen()),
                Some(listener) => {
                    if let Some(waker) = &this.registered
                        && waker.will_wake(cx.waker())
                    {
                        return Poll::Pending;
                    }
                    if Pin::new(listener).poll(cx).is_pending() {
                        this.registered = Some(cx.waker().clone());
                        return Poll::Pending;
                    }
                    this.listener = None;
                    this.registered = None;
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;

    struct Counter(AtomicUsize);

    impl Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn polling_again_with_the_same_waker_keeps_it_registered() {
        let stop = StopHandle::new();
        let mut stopped = stop.stopped();
        let first = Arc::new(Counter(AtomicUsize::new(0)));
        let waker = Waker::from(first.clone());
        let mut cx = Context::from_waker(&waker);
        for _ in 0..3 {
            assert!(Pin::new(&mut stopped).poll(&mut cx).is_pending());
        }
        // A new waker replaces the old one.
        let second = Arc::new(Counter(AtomicUsize::new(0)));
        let other = Waker::from(second.clone());
        assert!(
            Pin::new(&mut stopped)
                .poll(&mut Context::from_waker(&other))
                .is_pending()
        );
        std::thread::spawn(move || stop.stop()).join().unwrap();
        assert_eq!(
            second.0.load(Ordering::SeqCst),
            1,
            "the last waker is woken"
        );
        assert_eq!(first.0.load(Ordering::SeqCst), 0, "a replaced waker is not");
        assert!(Pin::new(&mut stopped).poll(&mut cx).is_ready());
    }
}

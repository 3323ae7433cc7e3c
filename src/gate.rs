//! A source wrapper that counts outputs held outside a [`BoundedUnordered`] against its limit.
//!
//! [`BoundedUnordered`] counts a future as in flight until its output is returned from
//! `poll_next`. The `for_each` shape takes outputs out early and holds them until the body is
//! free. Those held outputs must still count against the limit, or memory would grow without
//! bound. (The ordered and fallible variants need no gate: their outputs wait inside the
//! adapter, in an [`Outputs`](crate::bounded::Outputs) of their own.) The gate does that from the source
//! side: it counts the futures pulled through it, the owner counts the outputs it lets go, and
//! the gate pulls nothing while `pulled - released` reaches the limit.
//!
//! A closed gate returns `Pending` without registering a waker: only its owner opens it (by
//! releasing), and the owner polls the stream again right after, in the same `poll`.
//!
//! [`BoundedUnordered`]: crate::BoundedUnordered

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};

use futures::stream::Stream;
use pin_project_lite::pin_project;

use crate::LimitHandle;

/// What a gate shares with its owner.
#[derive(Default)]
pub(crate) struct GateState {
    /// Outputs the owner let go of: they no longer count as in flight.
    released: AtomicUsize,
    /// The limit to respect: set once the stream over the gate exists.
    limit: OnceLock<LimitHandle>,
}

impl GateState {
    /// Sets the handle whose limit the gate respects. Until then the gate is open.
    pub(crate) fn set_limit_handle(&self, handle: LimitHandle) {
        // Set once, right after the stream over the gate is made.
        let _ = self.limit.set(handle);
    }

    /// `n` held outputs left: the owner polls the stream again after this.
    pub(crate) fn release(&self, n: usize) {
        self.released.fetch_add(n, Ordering::Relaxed);
    }

    /// Takes back a [`release`](GateState::release) made ahead of time for an output that did
    /// not come.
    pub(crate) fn unrelease(&self, n: usize) {
        self.released.fetch_sub(n, Ordering::Relaxed);
    }
}

pin_project! {
    /// A source that pulls only while fewer than the limit are pulled and not released.
    pub(crate) struct Gate<S> {
        #[pin]
        source: S,
        pulled: usize,
        state: Arc<GateState>,
    }
}

impl<S> Gate<S> {
    pub(crate) fn new(source: S, state: Arc<GateState>) -> Self {
        Gate {
            source,
            pulled: 0,
            state,
        }
    }
}

impl<S: Stream> Stream for Gate<S> {
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let this = self.project();
        if let Some(handle) = this.state.limit.get() {
            let released = this.state.released.load(Ordering::Relaxed);
            if this.pulled.saturating_sub(released) >= handle.limit() {
                // Closed; the owner polls again once it releases (see the module docs).
                return Poll::Pending;
            }
        }
        let item = ready!(this.source.poll_next(cx));
        if item.is_some() {
            *this.pulled += 1;
        }
        Poll::Ready(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.source.size_hint()
    }
}

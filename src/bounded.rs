//! Bounded concurrency over a lazily pulled source of futures.
//!
//! # How it works
//!
//! The adapter owns one *slot* per unit of concurrency. A slot is a pinned box that holds at
//! most one future and is reused for every future that runs in it (`Pin::set`), and a waker
//! made once for that slot. Waking a slot's waker sets the slot's bit in a two-level atomic
//! bitmap (a summary word over 64 words of 64 bits, per group of 4,096 slots), and wakes the
//! consumer only when the word goes from nothing ready to something ready and the consumer is
//! asleep (its last `poll_next` returned `Pending`). Summary bits stay set while their words
//! are in use, so that most wake-ups and takes cost one atomic read-modify-write each. The
//! adapter takes ready slots a word at a time, starting each pass where the last one stopped
//! so that low slots cannot starve high ones: a wake-up costs O(1) and no scan over in-flight
//! futures. A future that wakes itself while it is polled (as `yield_now` does) is noted in a
//! plain list instead, through a thread-local that names the slot being polled: no atomic
//! operation at all; it is polled again in the next `poll_next`, so that it lets other tasks
//! run first, as it asked. A future woken by others while the adapter is working is polled
//! in the same `poll_next`, within its budget, without a round trip through the executor.
//!
//! Outputs finished but not yet handed to the consumer wait in a queue that counts against the
//! limit. The queue is a type parameter of the adapter's core, [`Bounded`] (see [`Outputs`]):
//! [`BoundedUnordered`] keeps outputs in the order they finished; the ordered variant keeps
//! them in source order in a ring, and the fallible variant stops pulling at the first error,
//! both with no layer of their own between the slots and the consumer. The `for_each` shape
//! lets outputs wait in the queue while its body works ([`Bounded::poll_progress`]).
//! Everything here is safe code.

use std::cell::Cell;
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::num::NonZeroUsize;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use futures::stream::{FusedStream, Stream};
use futures::task::AtomicWaker;
use pin_project_lite::pin_project;

/// How many polls (of the source or of futures) one call of `poll_next` may make before it
/// yields to its executor. The same figure as tokio's cooperative budget.
pub(crate) const BUDGET: usize = 128;

/// Slots per group: one summary bit per word, 64 words of 64 bits.
const GROUP_SLOTS: usize = 64 * 64;

/// Runs the futures of `tasks` with at most `limit` of them in flight, yielding their outputs
/// as they finish.
///
/// This is the Python library's `run_bounded`. The source is pulled lazily: the next future is
/// taken from `tasks` only when a slot is free, so `tasks` may be a huge file read line by line
/// or an endless generator, and memory depends on `limit`, not on the source. Outputs come out
/// in completion order, not in source order. Any iterator of futures becomes a source with
/// [`futures::stream::iter`].
///
/// A future is *in flight* from the moment it is pulled from the source until its output is
/// returned to the consumer; an output that is finished but not yet returned still counts.
/// When a future finishes, its slot is refilled (the next future pulled and polled once)
/// before its output is returned, so the adapter keeps `limit` futures working while the
/// consumer handles an output. The stream ends when the source is exhausted and nothing is in
/// flight. The source is dropped as soon as it is exhausted.
///
/// The limit can be changed while the stream runs, through [`BoundedUnordered::handle`].
///
/// # Progress happens only while the stream is polled
///
/// Like every combinator of `futures`, the adapter runs its futures inside `poll_next`: they
/// make progress only while the stream is polled. A consumer that awaits something slow
/// between two items stalls every future in flight. Keep the loop body quick, or hand the slow
/// part to a task of your runtime (for example through a channel), or make it part of the
/// futures themselves:
///
/// ```
/// use abstractions::run_bounded;
/// use futures::stream::{self, StreamExt};
///
/// # futures::executor::block_on(async {
/// // Slow: every future in flight waits while `save` runs.
/// //     while let Some(row) = results.next().await { save(row).await; }
/// // Better: make saving part of each task, and keep the loop quick.
/// async fn fetch(id: u32) -> u32 { id * 2 }
/// async fn save(value: u32) -> u32 { value }
/// let tasks = stream::iter(0..100).map(|id| async move { save(fetch(id).await).await });
/// let saved: Vec<u32> = run_bounded(tasks, 8).collect().await;
/// assert_eq!(saved.len(), 100);
/// # });
/// ```
///
/// # Panics
///
/// Panics if `limit` is 0. A panic inside a future propagates out of `poll_next` to the
/// consumer, as in `futures::StreamExt::buffer_unordered`.
///
/// # Examples
///
/// ```
/// use abstractions::run_bounded;
/// use futures::stream::{self, StreamExt};
///
/// # futures::executor::block_on(async {
/// let tasks = stream::iter(1..=10).map(|n| async move { n * n });
/// let mut squares: Vec<u64> = run_bounded(tasks, 3).collect().await;
/// squares.sort();
/// assert_eq!(squares, [1, 4, 9, 16, 25, 36, 49, 64, 81, 100]);
/// # });
/// ```
#[track_caller]
pub fn run_bounded<S>(tasks: S, limit: usize) -> BoundedUnordered<S>
where
    S: Stream,
    S::Item: Future,
{
    BoundedUnordered::new(tasks, limit)
}

/// What the adapter shares with slot wakers and [`LimitHandle`]s.
struct Shared {
    /// The consumer's waker, registered when `poll_next` is about to return `Pending`.
    waker: AtomicWaker,
    /// Set when `poll_next` is about to return `Pending` (after registering `waker` and before
    /// its last look at the bitmap and the limit); taken by the first wake-up after that, which
    /// then wakes `waker`. While the consumer is working, wake-ups only set bits, which it
    /// looks at before it sleeps: no waker traffic for a future that wakes itself.
    asleep: AtomicBool,
    limit: AtomicUsize,
    /// Published by the adapter at the end of every `poll_next`, and 0 once it is dropped.
    in_flight: AtomicUsize,
}

impl Shared {
    /// Wakes the consumer if it is asleep. Called after the change it must see was made with
    /// `SeqCst`: with the consumer's `SeqCst` store to `asleep` and its `SeqCst` look at the
    /// change after that, either it sees the change or this sees it asleep.
    #[inline]
    fn wake_consumer(&self) {
        if self.asleep.load(Ordering::SeqCst) && self.asleep.swap(false, Ordering::SeqCst) {
            self.waker.wake();
        }
    }
}

/// The ready bits of up to [`GROUP_SLOTS`] slots.
struct Group {
    shared: Arc<Shared>,
    /// Bit `w` clear: `words[w]` is zero, or its first mark is on its way to set bit `w`.
    /// Bits are set by marks and cleared only by the consumer, when it finds their word zero
    /// (see [`Slots::poll_marked`]); so a bit usually stays set while its word is in use, and
    /// a mark finds it set and has nothing to write.
    summary: AtomicU64,
    words: [AtomicU64; 64],
}

impl Group {
    fn new(shared: Arc<Shared>) -> Self {
        Group {
            shared,
            summary: AtomicU64::new(0),
            words: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// Marks slot `bit` of this group ready; if its word had none ready, makes sure the
    /// summary shows the word and wakes the consumer if it is asleep.
    ///
    /// Against the consumer clearing a summary bit (`fetch_and`, then a look at the word):
    /// either the consumer sees this mark in the word, or this sees the bit cleared and sets it.
    #[inline]
    fn mark(&self, bit: usize) {
        let word = bit / 64;
        if self.words[word].fetch_or(1 << (bit % 64), Ordering::SeqCst) == 0 {
            if self.summary.load(Ordering::SeqCst) & (1 << word) == 0 {
                self.summary.fetch_or(1 << word, Ordering::SeqCst);
            }
            self.shared.wake_consumer();
        }
    }

    /// Whether a slot of this group is marked (words whose summary bit is clear are zero,
    /// or their mark is on its way and will wake the consumer if it sleeps).
    #[inline]
    fn any_marked(&self, order: Ordering) -> bool {
        let mut summary = self.summary.load(order);
        while summary != 0 {
            let w = summary.trailing_zeros() as usize;
            summary &= summary - 1;
            if self.words[w].load(order) != 0 {
                return true;
            }
        }
        false
    }
}

thread_local! {
    /// The address of the [`SlotWaker`] of the slot being polled on this thread (0 if none),
    /// with bit 0 set once that waker was woken during the poll: a future that wakes itself
    /// while it is polled (as `yield_now` does outside tokio) is noted in the adapter's own
    /// list, with no atomic operation at all. Set before a poll and restored to what it was
    /// after it, also when the poll unwinds: an adapter polled inside a future of another
    /// (nested adapters) gives the outer slot its value back, wake bit included, so a wake-up
    /// of the outer future before it polled the inner adapter is not lost. While the inner
    /// adapter polls, a wake-up of the outer slot takes the bitmap's way: right, only slower.
    static POLLING: Cell<usize> = const { Cell::new(0) };
}

/// The waker of one slot, made once when the slot is made.
struct SlotWaker {
    group: Arc<Group>,
    bit: usize,
}

impl Wake for SlotWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    #[inline]
    fn wake_by_ref(self: &Arc<Self>) {
        let me = Arc::as_ptr(self).addr();
        let polling = POLLING.get();
        if polling & !1 == me {
            POLLING.set(me | 1);
        } else {
            self.group.mark(self.bit);
        }
    }
}

/// Where finished outputs wait until `poll_next` returns them, counted as in flight all the
/// while: [`Fifo`] for [`BoundedUnordered`], other orders for the crate's variants, which thus
/// run on the same slots without a second layer of bookkeeping.
///
/// Outputs leave in two steps: [`leave`](Outputs::leave) sets the next output aside (the
/// adapter then refills its slot, and a panic meanwhile does not lose the output), and
/// [`take`](Outputs::take) hands it out.
pub(crate) trait Outputs<T>: Default {
    /// What `poll_next` returns for an output.
    type Item;
    /// Stores a finished output.
    fn push(&mut self, output: T);
    /// Whether an output stored asked to stop pulling from the source: the adapter then drops
    /// the source at its next pull, instead of pulling.
    #[inline]
    fn stops(&self) -> bool {
        false
    }
    /// Whether an output can be handed out now.
    fn ready(&self) -> bool;
    /// Sets the next output aside to be taken, unless one is set aside already.
    fn leave(&mut self);
    /// Takes the output set aside.
    fn take(&mut self) -> Option<Self::Item>;
}

/// Outputs in the order they finished: [`BoundedUnordered`]'s.
pub(crate) struct Fifo<T> {
    /// Oldest first: `leaving` (set aside), `front`, then `rest`. `front` is `None` only when
    /// `rest` is empty: the usual single waiting output moves without any queue bookkeeping.
    leaving: Option<T>,
    front: Option<T>,
    rest: VecDeque<T>,
}

impl<T> Default for Fifo<T> {
    fn default() -> Self {
        Fifo {
            leaving: None,
            front: None,
            rest: VecDeque::new(),
        }
    }
}

impl<T> Fifo<T> {
    /// How many outputs wait.
    pub(crate) fn len(&self) -> usize {
        usize::from(self.leaving.is_some()) + usize::from(self.front.is_some()) + self.rest.len()
    }
}

impl<T> Outputs<T> for Fifo<T> {
    type Item = T;

    #[inline]
    fn push(&mut self, output: T) {
        if self.front.is_none() {
            self.front = Some(output);
        } else {
            self.rest.push_back(output);
        }
    }

    #[inline]
    fn ready(&self) -> bool {
        self.leaving.is_some() || self.front.is_some()
    }

    #[inline]
    fn leave(&mut self) {
        if self.leaving.is_none() {
            self.leaving = self.front.take();
            self.front = self.rest.pop_front();
        }
    }

    #[inline]
    fn take(&mut self) -> Option<T> {
        self.leaving.take()
    }
}

/// One unit of concurrency: a reusable pinned box for a future, and its waker.
struct Slot<F> {
    future: Pin<Box<Option<F>>>,
    waker: Waker,
    /// The address of the waker's [`SlotWaker`], for [`POLLING`].
    id: usize,
    /// The slot is in `Slots::again`: it is not put there twice, so `again` never holds more
    /// entries than there are slots.
    again: bool,
}

/// The futures in flight: the slots that run them and the outputs not yet returned.
struct Slots<F: Future, Q> {
    slots: Vec<Slot<F>>,
    /// Indices of empty slots; the last one is used next.
    free: Vec<usize>,
    groups: Vec<Arc<Group>>,
    /// Finished outputs not yet returned.
    outputs: Q,
    /// Slots whose future woke itself while it was polled (see [`POLLING`]), to poll again.
    /// Only the first `due`, those noted before the current `poll_next` began, are polled in
    /// it: a future that keeps waking itself is polled once per `poll_next`, and lets other
    /// tasks run in between, as it asked.
    again: VecDeque<usize>,
    due: usize,
    /// Whether the next pass looks at `again` before the bitmap; it alternates, so that
    /// neither can starve the other.
    again_first: bool,
    /// Futures pulled whose output has not been returned: in slots, or finished above.
    in_flight: usize,
    /// The word (`group * 64 + word`) where the next look at the bitmap starts.
    cursor: usize,
    shared: Arc<Shared>,
}

impl<F: Future, Q> Drop for Slots<F, Q> {
    /// The futures are dropped with the slots: [`LimitHandle`]s that outlive the adapter (a
    /// variant drops it when it ends early) see nothing in flight.
    fn drop(&mut self) {
        self.shared.in_flight.store(0, Ordering::Relaxed);
    }
}

impl<F: Future, Q: Outputs<F::Output>> Slots<F, Q> {
    fn new(limit: NonZeroUsize) -> Self {
        Slots {
            slots: Vec::new(),
            free: Vec::new(),
            groups: Vec::new(),
            outputs: Q::default(),
            again: VecDeque::new(),
            due: 0,
            again_first: false,
            in_flight: 0,
            cursor: 0,
            shared: Arc::new(Shared {
                waker: AtomicWaker::new(),
                asleep: AtomicBool::new(false),
                limit: AtomicUsize::new(limit.get()),
                in_flight: AtomicUsize::new(0),
            }),
        }
    }

    #[inline]
    fn has_output(&self) -> bool {
        self.outputs.ready()
    }

    #[inline]
    fn push_output(&mut self, output: F::Output) {
        self.outputs.push(output);
    }

    /// Sets the next output aside to be returned, unless one is set aside already.
    #[inline]
    fn leave(&mut self) {
        self.outputs.leave();
    }

    /// Takes the next output.
    #[inline]
    fn pop_output(&mut self) -> Option<Q::Item> {
        self.outputs.leave();
        let output = self.outputs.take();
        if output.is_some() {
            self.in_flight -= 1;
        }
        output
    }

    /// Puts `future` in a free slot (made if there is none) and polls it once. A future ready
    /// at once leaves its slot on the free list.
    #[inline(always)]
    fn start(&mut self, future: F) {
        let index = match self.free.last() {
            Some(&index) => index,
            None => self.new_slot(),
        };
        self.in_flight += 1;
        let outer = POLLING.get();
        let guard = FreeOnUnwind {
            slots: &mut *self,
            index,
            listed: true,
            outer,
        };
        let slot = &mut guard.slots.slots[index];
        let mut pinned = slot.future.as_mut();
        pinned.set(Some(future));
        POLLING.set(slot.id);
        let poll = match pinned.as_mut().as_pin_mut() {
            Some(future) => future.poll(&mut Context::from_waker(&slot.waker)),
            None => Poll::Pending,
        };
        let woke = POLLING.replace(outer) & 1 != 0;
        match poll {
            Poll::Ready(output) => {
                pinned.set(None);
                std::mem::forget(guard);
                self.push_output(output);
            }
            Poll::Pending => {
                let again = woke && !std::mem::replace(&mut slot.again, true);
                std::mem::forget(guard);
                self.free.pop();
                if again {
                    self.again.push_back(index);
                }
            }
        }
    }

    /// Makes slot number `slots.len()`, with its group if it is the first of one, and lists
    /// it as free. Out of line: it runs at most `limit` times, and `Group` is large.
    #[cold]
    #[inline(never)]
    fn new_slot(&mut self) -> usize {
        let index = self.slots.len();
        if index / GROUP_SLOTS == self.groups.len() {
            let group = Group::new(Arc::clone(&self.shared));
            self.groups.push(Arc::new(group));
        }
        let waker = Arc::new(SlotWaker {
            group: Arc::clone(&self.groups[index / GROUP_SLOTS]),
            bit: index % GROUP_SLOTS,
        });
        let id = Arc::as_ptr(&waker).addr();
        self.slots.push(Slot {
            future: Box::pin(None),
            waker: Waker::from(waker),
            id,
            again: false,
        });
        self.free.push(index);
        index
    }

    /// Polls the future in slot `index`, if any (a late wake-up can find the slot empty). A
    /// finished future leaves its output in the queue and its slot free; one that woke itself
    /// meanwhile is noted in `again`.
    ///
    /// A future that panics (here or in [`start`](Self::start)) is dropped and its slot freed
    /// as the panic goes on to the consumer, so the stream stays usable without it, as
    /// `futures::stream::FuturesUnordered` does.
    #[inline]
    fn poll(&mut self, index: usize) {
        let outer = POLLING.get();
        let guard = FreeOnUnwind {
            slots: &mut *self,
            index,
            listed: false,
            outer,
        };
        let slot = &mut guard.slots.slots[index];
        let Some(future) = slot.future.as_mut().as_pin_mut() else {
            std::mem::forget(guard);
            return;
        };
        POLLING.set(slot.id);
        let poll = future.poll(&mut Context::from_waker(&slot.waker));
        let woke = POLLING.replace(outer) & 1 != 0;
        match poll {
            Poll::Ready(output) => {
                slot.future.set(None);
                std::mem::forget(guard);
                self.free.push(index);
                self.push_output(output);
            }
            Poll::Pending => {
                let again = woke && !std::mem::replace(&mut slot.again, true);
                std::mem::forget(guard);
                if again {
                    self.again.push_back(index);
                }
            }
        }
    }

    /// Whether a slot is marked in the bitmap.
    #[inline]
    fn any_marked(&self, order: Ordering) -> bool {
        self.groups.iter().any(|group| group.any_marked(order))
    }

    /// Polls the futures whose slots were woken, until none is left or `budget` polls were
    /// made.
    #[inline]
    fn poll_woken(&mut self, budget: &mut usize) {
        self.again_first = !self.again_first;
        if self.again_first {
            self.poll_again(budget);
            self.poll_marked(budget);
        } else {
            self.poll_marked(budget);
            self.poll_again(budget);
        }
    }

    /// Polls the futures that woke themselves and are due, in turn.
    #[inline]
    fn poll_again(&mut self, budget: &mut usize) {
        while self.due > 0 && *budget > 0 {
            let Some(index) = self.again.pop_front() else {
                return;
            };
            self.due -= 1;
            self.slots[index].again = false;
            *budget -= 1;
            self.poll(index);
        }
    }

    /// Polls the futures whose slots are marked in the bitmap until none is or `budget` polls
    /// were made. Marks left over are put back. Each pass starts at the word after the last one
    /// it emptied (or at the one it stopped in), so that no slot waits behind others woken
    /// again and again.
    fn poll_marked(&mut self, budget: &mut usize) {
        let groups = self.groups.len();
        let start = self.cursor;
        let mut g = start / 64;
        for k in 0..groups {
            if *budget == 0 {
                return;
            }
            if k > 0 {
                g += 1;
            }
            if g >= groups {
                g = 0;
            }
            let summary = self.groups[g].summary.load(Ordering::Acquire);
            // Words from `first` up, then from 0.
            let first = if k == 0 { start % 64 } else { 0 };
            let mut order = summary.rotate_right(first as u32);
            while order != 0 {
                let w = (order.trailing_zeros() as usize + first) % 64;
                order &= order - 1;
                let group = &self.groups[g];
                let word = &group.words[w];
                let mut bits = if word.load(Ordering::Relaxed) != 0 {
                    word.swap(0, Ordering::Acquire)
                } else {
                    // Nothing marked since the last take: clear its summary bit, then look
                    // once more, against a mark that saw the bit still set (see `mark`).
                    group.summary.fetch_and(!(1 << w), Ordering::SeqCst);
                    if word.load(Ordering::SeqCst) == 0 {
                        continue;
                    }
                    group.summary.fetch_or(1 << w, Ordering::SeqCst);
                    word.swap(0, Ordering::Acquire)
                };
                while bits != 0 {
                    if *budget == 0 {
                        // Out of budget: give the rest back (its summary bit is set), and
                        // start here next time.
                        self.groups[g].words[w].fetch_or(bits, Ordering::Release);
                        self.cursor = g * 64 + w;
                        return;
                    }
                    let b = bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    *budget -= 1;
                    self.poll(g * GROUP_SLOTS + w * 64 + b);
                }
                self.cursor = g * 64 + w + 1;
            }
        }
    }
}

/// Drops the future of slot `index` and frees the slot if the poll of the future unwinds.
struct FreeOnUnwind<'a, F: Future, Q: Outputs<F::Output>> {
    slots: &'a mut Slots<F, Q>,
    index: usize,
    /// The slot is on the free list already.
    listed: bool,
    /// What [`POLLING`] held before the poll: an outer adapter's slot, or 0.
    outer: usize,
}

impl<F: Future, Q: Outputs<F::Output>> Drop for FreeOnUnwind<'_, F, Q> {
    fn drop(&mut self) {
        POLLING.set(self.outer);
        self.slots.slots[self.index].future.set(None);
        self.slots.in_flight -= 1;
        if !self.listed {
            self.slots.free.push(self.index);
        }
        // The panic unwinds out of `poll_marked` with the marks it had taken but not yet
        // polled. Mark every running slot again (a spurious poll is harmless), so that no
        // wake-up is lost and the stream stays usable.
        for (index, slot) in self.slots.slots.iter().enumerate() {
            if slot.future.is_some() {
                self.slots.groups[index / GROUP_SLOTS].mark(index % GROUP_SLOTS);
            }
        }
    }
}

type Output<S> = <<S as Stream>::Item as Future>::Output;

pin_project! {
    /// The adapter, with its outputs kept by `Q`: [`BoundedUnordered`] and the crate's ordered
    /// and fallible variants.
    pub(crate) struct Bounded<S, Q>
    where
        S: Stream,
        S::Item: Future,
    {
        // `None` once exhausted: the source is dropped as soon as it ends.
        #[pin]
        source: Option<S>,
        slots: Slots<S::Item, Q>,
        // `Ready(None)` was returned.
        terminated: bool,
    }
}

impl<S, Q> Bounded<S, Q>
where
    S: Stream,
    S::Item: Future,
    Q: Outputs<Output<S>>,
{
    #[track_caller]
    pub(crate) fn new(source: S, limit: usize) -> Self {
        Bounded {
            source: Some(source),
            slots: Slots::new(checked_limit(limit)),
            terminated: false,
        }
    }

    pub(crate) fn handle(&self) -> LimitHandle {
        LimitHandle {
            shared: Arc::clone(&self.slots.shared),
        }
    }

    pub(crate) fn limit(&self) -> usize {
        self.slots.shared.limit.load(Ordering::Relaxed)
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.slots.in_flight
    }

    /// Takes an output that is finished and can be handed out, without polling anything.
    pub(crate) fn take_finished(self: Pin<&mut Self>) -> Option<Q::Item> {
        self.project().slots.pop_output()
    }

    pub(crate) fn is_terminated(&self) -> bool {
        self.terminated
    }

    /// The finished outputs not yet returned.
    pub(crate) fn outputs(&self) -> &Q {
        &self.slots.outputs
    }

    fn debug(&self, f: &mut fmt::Formatter<'_>, name: &str) -> fmt::Result {
        f.debug_struct(name)
            .field("limit", &self.limit())
            .field("in_flight", &self.in_flight())
            .field("source_exhausted", &self.source.is_none())
            .field("terminated", &self.terminated)
            .finish()
    }
}

pin_project! {
    /// Stream for the [`run_bounded`] function and the
    /// [`BoundedStreamExt::run_bounded`] method.
    #[must_use = "streams do nothing unless polled"]
    pub struct BoundedUnordered<S>
    where
        S: Stream,
        S::Item: Future,
    {
        #[pin]
        core: Bounded<S, Fifo<Output<S>>>,
    }
}

impl<S> BoundedUnordered<S>
where
    S: Stream,
    S::Item: Future,
{
    #[track_caller]
    fn new(source: S, limit: usize) -> Self {
        BoundedUnordered {
            core: Bounded::new(source, limit),
        }
    }

    /// A handle that reads and changes the limit of this stream while it runs.
    ///
    /// The handle is cheap to clone and may be held by the futures themselves: a request that
    /// is told to slow down (HTTP 429) can lower the limit, and a later success raise it.
    ///
    /// # Examples
    ///
    /// ```
    /// use abstractions::run_bounded;
    /// use futures::stream::{self, StreamExt};
    ///
    /// # futures::executor::block_on(async {
    /// let stream = run_bounded(stream::iter(0..10).map(|n| async move { n }), 4);
    /// let handle = stream.handle();
    /// handle.set_limit(2);
    /// assert_eq!(stream.limit(), 2);
    /// assert_eq!(stream.collect::<Vec<_>>().await.len(), 10);
    /// # });
    /// ```
    pub fn handle(&self) -> LimitHandle {
        self.core.handle()
    }

    /// The current limit.
    ///
    /// # Examples
    ///
    /// ```
    /// use abstractions::run_bounded;
    /// use futures::stream;
    ///
    /// let stream = run_bounded(stream::iter([async { 1 }]), 16);
    /// assert_eq!(stream.limit(), 16);
    /// ```
    pub fn limit(&self) -> usize {
        self.core.limit()
    }

    /// How many futures are in flight: pulled from the source, and whose output has not been
    /// returned yet. At every return of `poll_next`, this is at most the limit (unless the
    /// limit was lowered, while the futures above it finish).
    ///
    /// # Examples
    ///
    /// ```
    /// use abstractions::run_bounded;
    /// use futures::stream::{self, StreamExt};
    ///
    /// # futures::executor::block_on(async {
    /// let mut stream = run_bounded(stream::iter(0..10).map(|n| async move { n }), 4);
    /// assert_eq!(stream.in_flight(), 0);
    /// stream.next().await;
    /// assert_eq!(stream.in_flight(), 4);
    /// # });
    /// ```
    pub fn in_flight(&self) -> usize {
        self.core.in_flight()
    }
}

impl<S> BoundedUnordered<S>
where
    S: Stream,
    S::Item: Future,
{
    /// Takes an output that is finished and waiting, without polling anything. For the
    /// crate's functions, which save every finished row when they stop on an error.
    pub(crate) fn take_finished(self: Pin<&mut Self>) -> Option<Output<S>> {
        self.project().core.take_finished()
    }
}

#[track_caller]
pub(crate) fn checked_limit(limit: usize) -> NonZeroUsize {
    match NonZeroUsize::new(limit) {
        Some(limit) => limit,
        None => panic!("`limit` must be greater than 0"),
    }
}

/// Pulls futures from `source` into free slots, polling each once, while fewer than the limit
/// are in flight (not counting the `leaving` outputs about to be returned) and budget remains.
/// Drops the source when it ends. Returns whether the source returned `Pending`.
#[inline(always)]
fn fill<S, Q>(
    mut source: Pin<&mut Option<S>>,
    slots: &mut Slots<S::Item, Q>,
    cx: &mut Context<'_>,
    budget: &mut usize,
    leaving: usize,
) -> bool
where
    S: Stream,
    S::Item: Future,
    Q: Outputs<Output<S>>,
{
    let limit = slots.shared.limit.load(Ordering::Relaxed);
    while slots.in_flight - leaving < limit && *budget > 0 {
        if slots.outputs.stops() {
            source.set(None);
            return false;
        }
        let Some(stream) = source.as_mut().as_pin_mut() else {
            return false;
        };
        *budget -= 1;
        match stream.poll_next(cx) {
            Poll::Ready(Some(future)) => {
                *budget = budget.saturating_sub(1);
                slots.start(future);
            }
            Poll::Ready(None) => {
                source.set(None);
                return false;
            }
            Poll::Pending => return true,
        }
    }
    false
}

impl<S, Q> Bounded<S, Q>
where
    S: Stream,
    S::Item: Future,
    Q: Outputs<Output<S>>,
{
    /// Runs the futures in flight and fills free slots, as `poll_next` does, but hands out no
    /// output: finished ones wait in the queue, counted as in flight. `Ready` once the stream
    /// has ended (nothing is in flight, the source is exhausted); `Pending` once nothing is
    /// left to do, with the task's waker registered as for `poll_next`. For the `for_each`
    /// shape, while its body works.
    pub(crate) fn poll_progress(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match self.poll_outputs::<false>(cx) {
            Poll::Ready(None) => Poll::Ready(()),
            Poll::Ready(Some(_)) => unreachable!("`poll_outputs::<false>` hands out no output"),
            Poll::Pending => Poll::Pending,
        }
    }

    /// `poll_next`, or with `TAKE == false`, [`poll_progress`](Self::poll_progress).
    #[inline(always)]
    fn poll_outputs<const TAKE: bool>(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Q::Item>> {
        let mut this = self.project();
        let slots = this.slots;
        let mut budget = BUDGET;
        // Awake: wake-ups from now on only set bits (see `Shared::asleep`).
        if slots.shared.asleep.load(Ordering::Relaxed) {
            slots.shared.asleep.store(false, Ordering::Relaxed);
        }
        slots.due = slots.again.len();
        let poll = loop {
            if TAKE && slots.has_output() {
                // Refill the slot this output frees before handing it out, even when the
                // budget is spent (one pull and one poll). The output waits in `leaving`
                // meanwhile, so a panic while refilling does not lose it.
                slots.leave();
                let mut refill = budget.max(2);
                fill(this.source.as_mut(), slots, cx, &mut refill, 1);
                break Poll::Ready(slots.pop_output());
            }
            if budget == 0 {
                // Spent: let other tasks run, and come back.
                cx.waker().wake_by_ref();
                break Poll::Pending;
            }
            if *this.terminated {
                break Poll::Ready(None);
            }
            slots.poll_woken(&mut budget);
            let source_pending = slots.in_flight < slots.shared.limit.load(Ordering::Relaxed)
                && fill(this.source.as_mut(), slots, cx, &mut budget, 0);
            if (TAKE && slots.has_output()) || budget == 0 || slots.any_marked(Ordering::Relaxed) {
                continue;
            }
            if this.source.is_none() && slots.in_flight == 0 {
                *this.terminated = true;
                break Poll::Ready(None);
            }
            if !slots.again.is_empty() {
                // Futures woke themselves during this call: let other tasks run first.
                cx.waker().wake_by_ref();
                break Poll::Pending;
            }
            // Nothing to do: go to sleep, then look again for a wake-up or a raised limit
            // that came in meanwhile (see `Shared::asleep`).
            let shared = &*slots.shared;
            shared.waker.register(cx.waker());
            shared.asleep.store(true, Ordering::SeqCst);
            let room = this.source.is_some()
                && !source_pending
                && slots.in_flight < shared.limit.load(Ordering::SeqCst);
            if room || slots.any_marked(Ordering::SeqCst) {
                shared.asleep.store(false, Ordering::Relaxed);
                continue;
            }
            break Poll::Pending;
        };
        slots
            .shared
            .in_flight
            .store(slots.in_flight, Ordering::Relaxed);
        poll
    }
}

impl<S, Q> Stream for Bounded<S, Q>
where
    S: Stream,
    S::Item: Future,
    Q: Outputs<Output<S>>,
{
    type Item = Q::Item;

    #[inline(always)]
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.poll_outputs::<true>(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let in_flight = self.in_flight();
        match &self.source {
            // Exhausted, or to be dropped at the next pull.
            None => (in_flight, Some(in_flight)),
            Some(_) if self.slots.outputs.stops() => (in_flight, Some(in_flight)),
            Some(source) => {
                let (lower, upper) = source.size_hint();
                (
                    lower.saturating_add(in_flight),
                    upper.and_then(|upper| upper.checked_add(in_flight)),
                )
            }
        }
    }
}

impl<S> Stream for BoundedUnordered<S>
where
    S: Stream,
    S::Item: Future,
{
    type Item = Output<S>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.project().core.poll_next(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.core.size_hint()
    }
}

impl<S> FusedStream for BoundedUnordered<S>
where
    S: Stream,
    S::Item: Future,
{
    fn is_terminated(&self) -> bool {
        self.core.is_terminated()
    }
}

impl<S> fmt::Debug for BoundedUnordered<S>
where
    S: Stream,
    S::Item: Future,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.core.debug(f, "BoundedUnordered")
    }
}

/// A cloneable handle to the limit of a [`BoundedUnordered`] stream.
///
/// Made by [`BoundedUnordered::handle`]. It may outlive the stream; changes then have no
/// effect.
///
/// # Examples
///
/// A task that is told to slow down lowers the limit for the tasks after it. The tasks reach
/// the handle through a cell that is filled once the stream exists (the source is pulled only
/// when the stream is polled):
///
/// ```
/// use abstractions::{run_bounded, LimitHandle};
/// use futures::stream::{self, StreamExt};
/// use std::sync::{Arc, OnceLock};
///
/// # futures::executor::block_on(async {
/// let cell: Arc<OnceLock<LimitHandle>> = Arc::default();
/// let tasks = stream::iter(0..20).map({
///     let cell = Arc::clone(&cell);
///     move |n| {
///         let handle = cell.get().expect("set before the first poll").clone();
///         async move {
///             if n == 3 {
///                 handle.set_limit(1); // HTTP 429: one request at a time from now on
///             }
///             n
///         }
///     }
/// });
/// let stream = run_bounded(tasks, 8);
/// cell.set(stream.handle()).unwrap();
/// assert_eq!(stream.count().await, 20);
/// assert_eq!(cell.get().unwrap().limit(), 1);
/// # });
/// ```
#[derive(Clone)]
pub struct LimitHandle {
    shared: Arc<Shared>,
}

impl LimitHandle {
    /// The current limit.
    ///
    /// # Examples
    ///
    /// ```
    /// use abstractions::run_bounded;
    /// use futures::stream;
    ///
    /// let stream = run_bounded(stream::iter([async { 1 }]), 5);
    /// assert_eq!(stream.handle().limit(), 5);
    /// ```
    pub fn limit(&self) -> usize {
        self.shared.limit.load(Ordering::Relaxed)
    }

    /// Changes the limit.
    ///
    /// Lowering it lets the futures in flight finish, and pulls nothing new until fewer than
    /// the new limit are in flight. Raising it, also above the limit the stream was made with,
    /// pulls more at the stream's next poll (the stream's task is woken for that).
    ///
    /// # Panics
    ///
    /// Panics if `limit` is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// use abstractions::run_bounded;
    /// use futures::stream;
    ///
    /// let stream = run_bounded(stream::iter([async { 1 }]), 5);
    /// stream.handle().set_limit(50);
    /// assert_eq!(stream.limit(), 50);
    /// ```
    #[track_caller]
    pub fn set_limit(&self, limit: usize) {
        let limit = checked_limit(limit).get();
        if self.shared.limit.swap(limit, Ordering::SeqCst) < limit {
            self.shared.wake_consumer();
        }
    }

    /// How many futures were in flight at the stream's last return from `poll_next`.
    ///
    /// # Examples
    ///
    /// ```
    /// use abstractions::run_bounded;
    /// use futures::stream::{self, StreamExt};
    ///
    /// # futures::executor::block_on(async {
    /// let mut stream = run_bounded(stream::iter(0..10).map(|n| async move { n }), 3);
    /// let handle = stream.handle();
    /// stream.next().await;
    /// assert_eq!(handle.in_flight(), 3);
    /// # });
    /// ```
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.load(Ordering::Relaxed)
    }
}

impl fmt::Debug for LimitHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LimitHandle")
            .field("limit", &self.limit())
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

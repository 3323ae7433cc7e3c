//! Batches over several epochs of a dataset: an iterator form and a stream form.
//!
//! Both forms share one piece of bookkeeping, [`Epochs`]: it fills batches, counts the items of
//! each epoch and checks them against the first epoch. The iterator and the stream only fetch
//! items and start and stop epochs.

use std::error::Error;
use std::fmt;
use std::iter::FusedIterator;
use std::num::NonZeroUsize;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures::stream::{FusedStream, Stream};
use pin_project_lite::pin_project;

/// Yields batches of `batch_size` items taken from `epochs` passes over `source`.
///
/// Each epoch iterates `source` afresh: every epoch but the last iterates a clone of it, and the
/// last consumes `source` itself, so a single epoch clones nothing. Pass a reference (`&vec`)
/// to iterate by reference and clone nothing at all.
///
/// Items are gathered in order and a batch is yielded as soon as it holds `batch_size` items, so
/// a batch may hold the end of one epoch and the start of the next. The last batch holds what is
/// left and may be shorter; no batch is ever empty. This is `batches` of the Python library.
///
/// # Epochs of different lengths
///
/// Every epoch must have as many items as the first. When one does not, the iterator yields one
/// [`BatchError`] and then ends (epochs are numbered from 1 in it):
///
/// - an epoch that ends early is reported when it ends; the items of that epoch that already
///   filled batches have been yielded, and those still waiting in the unfinished batch are
///   dropped, as in the Python library;
/// - an epoch that goes on too long is reported the moment it produces one item more than the
///   first epoch had: that item is dropped and nothing after it is read, so a source that never
///   ends does no harm. (The Python library does not catch this case.)
///
/// An empty source, or one whose first epoch is empty, yields nothing and is not iterated again
/// (the Python library raises an exception here).
///
/// # Panics
///
/// Panics if `batch_size` or `epochs` is zero.
///
/// # Examples
///
/// ```
/// use abstractions::batches;
///
/// let mut batches = batches(1..=5, 2, 2);
/// assert_eq!(batches.next(), Some(Ok(vec![1, 2])));
/// assert_eq!(batches.next(), Some(Ok(vec![3, 4])));
/// assert_eq!(batches.next(), Some(Ok(vec![5, 1]))); // spans the two epochs
/// assert_eq!(batches.next(), Some(Ok(vec![2, 3])));
/// assert_eq!(batches.next(), Some(Ok(vec![4, 5])));
/// assert_eq!(batches.next(), None);
/// ```
///
/// A source whose epochs differ ends with an error:
///
/// ```
/// use abstractions::{batches, BatchError};
/// use std::cell::Cell;
///
/// // Each epoch reads the current contents of `data`, which changes during the first epoch.
/// let data = Cell::new(3);
/// let source = Epoch(&data);
/// let mut batches = batches(source, 2, 2);
/// assert_eq!(batches.next(), Some(Ok(vec![0, 1])));
/// data.set(1);
/// assert_eq!(batches.next(), Some(Ok(vec![2, 0])));
/// assert_eq!(
///     batches.next(),
///     Some(Err(BatchError::EpochTooShort { epoch: 2, len: 1, first_len: 3 })),
/// );
/// assert_eq!(batches.next(), None);
///
/// #[derive(Clone, Copy)]
/// struct Epoch<'a>(&'a Cell<u32>);
///
/// impl IntoIterator for Epoch<'_> {
///     type Item = u32;
///     type IntoIter = std::ops::Range<u32>;
///     fn into_iter(self) -> Self::IntoIter {
///         0..self.0.get()
///     }
/// }
/// ```
#[track_caller]
pub fn batches<I>(source: I, batch_size: usize, epochs: usize) -> Batches<I>
where
    I: IntoIterator + Clone,
{
    Batches {
        source: Some(source),
        epoch: None,
        state: Epochs::new(batch_size, epochs),
    }
}

/// Iterator for the [`batches`] function.
#[must_use = "iterators are lazy and do nothing unless consumed"]
pub struct Batches<I: IntoIterator> {
    /// What each epoch iterates; taken by the last epoch, and dropped once the iterator ends.
    source: Option<I>,
    /// The running epoch, if any.
    epoch: Option<I::IntoIter>,
    state: Epochs<I::Item>,
}

impl<I> Batches<I>
where
    I: IntoIterator + Clone,
{
    /// Drops what the iterator holds besides its bookkeeping, once it has ended.
    fn release_if_done(&mut self) {
        if self.state.done {
            self.source = None;
            self.epoch = None;
        }
    }
}

impl<I> Iterator for Batches<I>
where
    I: IntoIterator + Clone,
{
    type Item = Result<Vec<I::Item>, BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let epoch = match &mut self.epoch {
                Some(epoch) => epoch,
                None => match self.state.start_epoch() {
                    Some(last) => {
                        let source = if last {
                            self.source.take()
                        } else {
                            self.source.clone()
                        };
                        let source = source.expect("the source outlives the last epoch's start");
                        self.epoch.insert(source.into_iter())
                    }
                    None => {
                        let last = self.state.finish();
                        self.release_if_done();
                        return last;
                    }
                },
            };
            let out = match epoch.next() {
                Some(item) => self.state.push(item, epoch.size_hint()),
                None => {
                    self.epoch = None;
                    self.state.end_epoch()
                }
            };
            if out.is_some() {
                self.release_if_done();
                return out;
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.state
            .size_hint(self.epoch.as_ref().map(Iterator::size_hint))
    }
}

impl<I> FusedIterator for Batches<I> where I: IntoIterator + Clone {}

impl<I> fmt::Debug for Batches<I>
where
    I: IntoIterator + fmt::Debug,
    I::IntoIter: fmt::Debug,
    I::Item: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batches")
            .field("source", &self.source)
            .field("epoch", &self.epoch)
            .field("state", &self.state)
            .finish()
    }
}

/// Yields batches of `batch_size` items taken from `epochs` streams, each made by `make`.
///
/// The stream form of [`batches`], with the same batches and the same errors: `make` is called
/// once at the start of each epoch, and the stream it returns is that epoch's items. It is
/// dropped as soon as the last epoch has started.
///
/// Items are gathered in order and a batch is yielded as soon as it holds `batch_size` items, so
/// a batch may hold the end of one epoch and the start of the next. The last batch holds what is
/// left and may be shorter; no batch is ever empty. The epoch streams are polled only while the
/// returned stream is polled, one at a time, and need not be [`Unpin`].
///
/// # Epochs of different lengths
///
/// Every epoch must have as many items as the first. When one does not, the stream yields one
/// [`BatchError`] and then ends (epochs are numbered from 1 in it):
///
/// - an epoch that ends early is reported when it ends; the items of that epoch that already
///   filled batches have been yielded, and those still waiting in the unfinished batch are
///   dropped, as in the Python library;
/// - an epoch that goes on too long is reported the moment it produces one item more than the
///   first epoch had: that item is dropped and the epoch's stream is not polled again, so a
///   stream that never ends does no harm. (The Python library does not catch this case.)
///
/// An empty first epoch ends the stream at once, with no batch and no further call to `make`.
///
/// # Panics
///
/// Panics if `batch_size` or `epochs` is zero.
///
/// # Examples
///
/// ```
/// use abstractions::batches_stream;
/// use futures::stream::{self, StreamExt};
///
/// # futures::executor::block_on(async {
/// // Each epoch is a fresh stream; this one is not `Unpin`.
/// let make = || stream::iter(1..=3).then(|n| async move { n * 10 });
/// let batches: Vec<_> = batches_stream(make, 2, 2).collect().await;
/// assert_eq!(
///     batches,
///     [Ok(vec![10, 20]), Ok(vec![30, 10]), Ok(vec![20, 30])],
/// );
/// # });
/// ```
#[track_caller]
pub fn batches_stream<F, S>(make: F, batch_size: usize, epochs: usize) -> BatchesStream<F, S>
where
    F: FnMut() -> S,
    S: Stream,
{
    BatchesStream {
        make: Some(make),
        epoch: None,
        state: Epochs::new(batch_size, epochs),
    }
}

pin_project! {
    /// Stream for the [`batches_stream`] function.
    #[must_use = "streams do nothing unless polled"]
    pub struct BatchesStream<F, S: Stream> {
        // Makes each epoch's stream; dropped once the last epoch has started.
        make: Option<F>,
        // The running epoch, if any.
        #[pin]
        epoch: Option<S>,
        state: Epochs<S::Item>,
    }
}

impl<F, S> Stream for BatchesStream<F, S>
where
    F: FnMut() -> S,
    S: Stream,
{
    type Item = Result<Vec<S::Item>, BatchError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        loop {
            if this.epoch.is_none() {
                match this.state.start_epoch() {
                    Some(last) => {
                        let make = this
                            .make
                            .as_mut()
                            .expect("`make` outlives the last epoch's start");
                        this.epoch.set(Some(make()));
                        if last {
                            *this.make = None;
                        }
                    }
                    None => {
                        *this.make = None;
                        return Poll::Ready(this.state.finish());
                    }
                }
            }
            let mut epoch = this
                .epoch
                .as_mut()
                .as_pin_mut()
                .expect("an epoch is running");
            let out = match ready!(epoch.as_mut().poll_next(cx)) {
                Some(item) => this.state.push(item, epoch.size_hint()),
                None => {
                    this.epoch.set(None);
                    this.state.end_epoch()
                }
            };
            if out.is_some() {
                if this.state.done {
                    *this.make = None;
                    this.epoch.set(None);
                }
                return Poll::Ready(out);
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.state
            .size_hint(self.epoch.as_ref().map(Stream::size_hint))
    }
}

impl<F, S> FusedStream for BatchesStream<F, S>
where
    F: FnMut() -> S,
    S: Stream,
{
    fn is_terminated(&self) -> bool {
        self.state.done
    }
}

impl<F, S> fmt::Debug for BatchesStream<F, S>
where
    S: Stream + fmt::Debug,
    S::Item: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchesStream")
            .field("epoch", &self.epoch)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// An epoch's length differed from the first epoch's, in [`batches`] or [`batches_stream`].
///
/// Epochs are numbered from 1, so `epoch` is at least 2.
///
/// # Examples
///
/// ```
/// use abstractions::BatchError;
///
/// let short = BatchError::EpochTooShort { epoch: 2, len: 3, first_len: 4 };
/// assert_eq!(short.to_string(), "epoch 2 had 3 items, but the first epoch had 4");
/// assert_eq!(short.epoch(), 2);
///
/// let long = BatchError::EpochTooLong { epoch: 3, len_at_least: 5, first_len: 4 };
/// assert_eq!(long.to_string(), "epoch 3 had at least 5 items, but the first epoch had 4");
/// assert_eq!(long.first_len(), 4);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchError {
    /// The epoch ended after `len` items, fewer than the first epoch's `first_len`.
    EpochTooShort {
        /// The epoch's number, from 1.
        epoch: usize,
        /// How many items the epoch had.
        len: usize,
        /// How many items the first epoch had.
        first_len: usize,
    },
    /// The epoch produced more items than the first epoch's `first_len`.
    ///
    /// It was stopped at its first extra item, so its real length is unknown: `len_at_least`
    /// is `first_len + 1`.
    EpochTooLong {
        /// The epoch's number, from 1.
        epoch: usize,
        /// How many items the epoch had produced when it was stopped.
        len_at_least: usize,
        /// How many items the first epoch had.
        first_len: usize,
    },
}

impl BatchError {
    /// The number, from 1, of the epoch whose length differed.
    pub fn epoch(&self) -> usize {
        match *self {
            BatchError::EpochTooShort { epoch, .. } | BatchError::EpochTooLong { epoch, .. } => {
                epoch
            }
        }
    }

    /// How many items the first epoch had.
    pub fn first_len(&self) -> usize {
        match *self {
            BatchError::EpochTooShort { first_len, .. }
            | BatchError::EpochTooLong { first_len, .. } => first_len,
        }
    }
}

impl fmt::Display for BatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (epoch, at_least, len) = match *self {
            BatchError::EpochTooShort { epoch, len, .. } => (epoch, "", len),
            BatchError::EpochTooLong {
                epoch,
                len_at_least,
                ..
            } => (epoch, "at least ", len_at_least),
        };
        let items = if len == 1 { "item" } else { "items" };
        write!(
            f,
            "epoch {epoch} had {at_least}{len} {items}, but the first epoch had {}",
            self.first_len()
        )
    }
}

impl Error for BatchError {}

/// The bookkeeping shared by [`Batches`] and [`BatchesStream`]: the batch being filled, and the
/// epochs' numbers and lengths.
///
/// The caller starts an epoch when [`start_epoch`](Self::start_epoch) says so, feeds its items
/// to [`push`](Self::push), calls [`end_epoch`](Self::end_epoch) when it runs out, and hands out
/// whatever these return; when no epoch is left to start, it hands out [`finish`](Self::finish).
#[derive(Debug)]
struct Epochs<T> {
    /// The batch being filled; never full between calls.
    batch: Vec<T>,
    batch_size: NonZeroUsize,
    epochs: NonZeroUsize,
    /// How many epochs have started: the running epoch's number, from 1.
    started: usize,
    /// How many items the running epoch has produced.
    seen: usize,
    /// The first epoch's length, once it has ended.
    first_len: Option<usize>,
    /// Whether the end (the last batch, or an error) has been handed out.
    done: bool,
}

/// What is known of the items still to come, from the epoch lengths seen so far.
struct Outlook {
    /// Items certain to go into batches (if the running epoch's `size_hint` is right).
    at_least: usize,
    /// Items that may go into batches at most.
    at_most: Option<usize>,
    /// Whether something (an item or an error) is certain to come after `at_least` items.
    more: bool,
    /// Whether an error may still come.
    error: bool,
}

impl<T> Epochs<T> {
    #[track_caller]
    fn new(batch_size: usize, epochs: usize) -> Self {
        let Some(batch_size) = NonZeroUsize::new(batch_size) else {
            panic!("batch_size must be greater than 0");
        };
        let Some(epochs) = NonZeroUsize::new(epochs) else {
            panic!("epochs must be greater than 0");
        };
        Epochs {
            batch: Vec::new(),
            batch_size,
            epochs,
            started: 0,
            seen: 0,
            first_len: None,
            done: false,
        }
    }

    /// Starts the next epoch if there is one, and returns whether it is the last one.
    ///
    /// There is none once all have run, once the end has been handed out, or when the first
    /// epoch was empty: every later epoch must then be empty too, and there is nothing to yield.
    fn start_epoch(&mut self) -> Option<bool> {
        if self.done || self.started == self.epochs.get() || self.first_len == Some(0) {
            return None;
        }
        self.started += 1;
        self.seen = 0;
        Some(self.started == self.epochs.get())
    }

    /// Takes the next item of the running epoch, whose `size_hint` is now `epoch`; returns a
    /// full batch, or the error if the epoch has gone past the first epoch's length.
    fn push(
        &mut self,
        item: T,
        epoch: (usize, Option<usize>),
    ) -> Option<Result<Vec<T>, BatchError>> {
        if let Some(first_len) = self.first_len
            && self.seen == first_len
        {
            return Some(Err(self.fail(BatchError::EpochTooLong {
                epoch: self.started,
                len_at_least: first_len.saturating_add(1),
                first_len,
            })));
        }
        self.seen += 1;
        if self.batch.capacity() == 0 {
            // A batch holds at most `batch_size` items, and at most this one and those still to
            // come. Reserving only saves reallocations: if it fails (an absurd `batch_size`
            // with an endless source), pushing grows the batch as needed.
            let outlook = self.outlook(Some(epoch));
            let left = outlook.at_most.unwrap_or(outlook.at_least);
            let capacity = self.batch_size.get().min(left.saturating_add(1));
            let _ = self.batch.try_reserve_exact(capacity);
        }
        self.batch.push(item);
        if self.batch.len() == self.batch_size.get() {
            Some(Ok(std::mem::take(&mut self.batch)))
        } else {
            None
        }
    }

    /// Notes that the running epoch has run out; returns the error if it was too short.
    fn end_epoch(&mut self) -> Option<Result<Vec<T>, BatchError>> {
        match self.first_len {
            None => {
                self.first_len = Some(self.seen);
                None
            }
            Some(first_len) if self.seen < first_len => {
                Some(Err(self.fail(BatchError::EpochTooShort {
                    epoch: self.started,
                    len: self.seen,
                    first_len,
                })))
            }
            Some(_) => None,
        }
    }

    /// Ends the iteration; returns the last, short batch if there is one.
    fn finish(&mut self) -> Option<Result<Vec<T>, BatchError>> {
        self.done = true;
        let batch = std::mem::take(&mut self.batch);
        (!batch.is_empty()).then_some(Ok(batch))
    }

    /// Ends the iteration with `error`, dropping the unfinished batch.
    fn fail(&mut self, error: BatchError) -> BatchError {
        self.done = true;
        self.batch = Vec::new();
        error
    }

    /// What is known of the items still to come, given the running epoch's `size_hint`
    /// (`None` if no epoch is running).
    ///
    /// Later epochs guarantee no item, since one may be empty and end the iteration with an
    /// error; but each adds at most the first epoch's length, since an epoch is stopped at its
    /// first extra item.
    fn outlook(&self, epoch: Option<(usize, Option<usize>)>) -> Outlook {
        let later_epochs = self.epochs.get() - self.started;
        match (self.first_len, epoch) {
            // Nothing has started yet: the source may be empty, or endless.
            (None, None) => Outlook {
                at_least: 0,
                at_most: None,
                more: false,
                error: true,
            },
            // The first epoch is running, so its length is bounded by what it has produced
            // and what it still promises.
            (None, Some((lower, upper))) => {
                let first_len = upper.and_then(|upper| self.seen.checked_add(upper));
                let later = first_len.and_then(|len| len.checked_mul(later_epochs));
                Outlook {
                    at_least: lower,
                    at_most: upper
                        .zip(later)
                        .and_then(|(upper, later)| upper.checked_add(later)),
                    more: later_epochs > 0 && self.seen.saturating_add(lower) > 0,
                    error: later_epochs > 0,
                }
            }
            // A later epoch is running, or none is (between epochs it is as if one had just
            // ended): it can add items up to the first epoch's length.
            (Some(first_len), epoch) => {
                let (lower, upper) = epoch.unwrap_or((0, Some(0)));
                let later_epochs = if first_len == 0 { 0 } else { later_epochs };
                let room = first_len - self.seen;
                let at_most = upper.map_or(room, |upper| upper.min(room));
                Outlook {
                    at_least: lower.min(room),
                    at_most: first_len
                        .checked_mul(later_epochs)
                        .and_then(|later| later.checked_add(at_most)),
                    // Short of `room`, the epoch must produce more or end too short; past it,
                    // it will be too long.
                    more: lower != room || later_epochs > 0,
                    error: (lower, upper) != (room, Some(room)) || later_epochs > 0,
                }
            }
        }
    }

    /// The `size_hint` of the iterator or stream, given the running epoch's `size_hint`
    /// (`None` if no epoch is running).
    ///
    /// It is exact during the last epoch when that epoch's own hint is, but cannot be before: a
    /// later epoch of the wrong length would end the iteration early, with an error.
    fn size_hint(&self, epoch: Option<(usize, Option<usize>)>) -> (usize, Option<usize>) {
        if self.done {
            return (0, Some(0));
        }
        let size = self.batch_size.get();
        let buffered = self.batch.len();
        let outlook = self.outlook(epoch);
        // The items certain to come fill batches, or are followed by an error that stands in
        // for the short batch; anything certain after them makes one more output.
        let at_least = buffered.saturating_add(outlook.at_least);
        let lower = if outlook.more {
            (at_least / size).saturating_add(1)
        } else {
            at_least.div_ceil(size)
        };
        // An error comes after at most `at_most` items, in place of the short batch if any.
        let upper = outlook
            .at_most
            .and_then(|at_most| buffered.checked_add(at_most))
            .and_then(|at_most| {
                if outlook.error {
                    (at_most / size).checked_add(1)
                } else {
                    Some(at_most.div_ceil(size))
                }
            });
        (lower, upper)
    }
}

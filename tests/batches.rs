//! Tests of `batches` and `batches_stream`: the batches themselves, checked against simple
//! models; epochs of the wrong length; empty sources; the panics; `size_hint`; auto traits.

mod common;

use std::cell::Cell;
use std::future::Future;
use std::panic::{self, PanicHookInfo};
use std::pin::{Pin, pin};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use abstractions::{BatchError, Batches, BatchesStream, batches, batches_stream};
use futures::stream::{self, FusedStream, Stream, StreamExt};

// ---------------------------------------------------------------------------------------------
// Models and sources

/// `epochs` passes over `0..len`, cut into batches: what `batches` must yield when every epoch
/// has the same length. Written independently of the crate's bookkeeping.
fn model(len: usize, batch_size: usize, epochs: usize) -> Vec<Vec<usize>> {
    let items: Vec<usize> = (0..epochs).flat_map(|_| 0..len).collect();
    items.chunks(batch_size).map(<[usize]>::to_vec).collect()
}

/// What `batches` must yield when epoch `e` (from 0) has `lens[e]` items `(e, 0), (e, 1), …`:
/// batches as items come, one error at the first epoch whose length differs, then nothing.
fn model_with_lens(lens: &[usize], batch_size: usize) -> Vec<Result<Vec<Item>, BatchError>> {
    let mut out = Vec::new();
    let mut batch = Vec::new();
    let first_len = lens[0];
    if first_len == 0 {
        return out;
    }
    for (epoch, &len) in lens.iter().enumerate() {
        for index in 0..len {
            if index == first_len {
                out.push(Err(BatchError::EpochTooLong {
                    epoch: epoch + 1,
                    len_at_least: first_len + 1,
                    first_len,
                }));
                return out;
            }
            batch.push((epoch, index));
            if batch.len() == batch_size {
                out.push(Ok(std::mem::take(&mut batch)));
            }
        }
        if len < first_len {
            out.push(Err(BatchError::EpochTooShort {
                epoch: epoch + 1,
                len,
                first_len,
            }));
            return out;
        }
    }
    if !batch.is_empty() {
        out.push(Ok(batch));
    }
    out
}

/// An item of [`Source`]: the epoch it came from (from 0) and its index in that epoch.
type Item = (usize, usize);

/// A source whose `n`th epoch (from 0) has `lens[n]` items; it counts the epochs started and
/// the items pulled, and holds an `Rc` so tests can see when it is dropped.
#[derive(Clone)]
struct Source {
    lens: Rc<Vec<usize>>,
    started: Rc<Cell<usize>>,
    pulled: Rc<Cell<usize>>,
    /// Whether the epochs report their exact length in `size_hint`, or `(0, None)`.
    exact_hint: bool,
}

impl Source {
    fn new(lens: &[usize], exact_hint: bool) -> Self {
        Source {
            lens: Rc::new(lens.to_vec()),
            started: Rc::new(Cell::new(0)),
            pulled: Rc::new(Cell::new(0)),
            exact_hint,
        }
    }
}

impl IntoIterator for Source {
    type Item = Item;
    type IntoIter = SourceEpoch;

    fn into_iter(self) -> SourceEpoch {
        let epoch = self.started.get();
        self.started.set(epoch + 1);
        SourceEpoch {
            epoch,
            next: 0,
            len: self.lens[epoch],
            pulled: self.pulled.clone(),
            exact_hint: self.exact_hint,
        }
    }
}

/// One epoch of [`Source`].
struct SourceEpoch {
    epoch: usize,
    next: usize,
    len: usize,
    pulled: Rc<Cell<usize>>,
    exact_hint: bool,
}

impl Iterator for SourceEpoch {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        if self.next == self.len {
            return None;
        }
        self.pulled.set(self.pulled.get() + 1);
        self.next += 1;
        Some((self.epoch, self.next - 1))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.exact_hint {
            let left = self.len - self.next;
            (left, Some(left))
        } else {
            (0, None)
        }
    }
}

/// Every combination of epoch lengths in `0..=max_len` for 1 to 3 epochs.
fn all_lens(max_len: usize) -> Vec<Vec<usize>> {
    let mut all = Vec::new();
    for a in 0..=max_len {
        all.push(vec![a]);
        for b in 0..=max_len {
            all.push(vec![a, b]);
            for c in 0..=max_len {
                all.push(vec![a, b, c]);
            }
        }
    }
    all
}

/// Checks that each `size_hint` in `hints` holds the number of outputs that followed it.
fn assert_hints_hold(hints: &[(usize, Option<usize>)], context: &str) {
    let total = hints.len() - 1;
    for (done, &(lower, upper)) in hints.iter().enumerate() {
        let left = total - done;
        assert!(
            lower <= left && upper.is_none_or(|upper| left <= upper),
            "{context}: size_hint {:?} after {done} outputs, but {left} followed",
            (lower, upper),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The iterator

#[test]
fn batches_match_the_model_and_span_epochs() {
    for len in 0..=7 {
        for batch_size in 1..=8 {
            for epochs in 1..=4 {
                let got: Result<Vec<_>, _> = batches(0..len, batch_size, epochs).collect();
                assert_eq!(
                    got,
                    Ok(model(len, batch_size, epochs)),
                    "len {len}, batch_size {batch_size}, epochs {epochs}"
                );
            }
        }
    }
}

#[test]
fn the_last_batch_is_short_and_a_batch_spans_two_epochs() {
    let got: Vec<_> = batches(vec!['a', 'b', 'c'], 2, 2).collect();
    assert_eq!(
        got,
        [Ok(vec!['a', 'b']), Ok(vec!['c', 'a']), Ok(vec!['b', 'c'])]
    );

    let got: Vec<_> = batches(&[1, 2, 3, 4, 5], 4, 1).collect();
    assert_eq!(got, [Ok(vec![&1, &2, &3, &4]), Ok(vec![&5])]);
}

#[test]
fn epochs_of_any_lengths_match_the_model() {
    for lens in all_lens(4) {
        for batch_size in 1..=5 {
            for exact_hint in [true, false] {
                let context = format!("lens {lens:?}, batch_size {batch_size}");
                let source = Source::new(&lens, exact_hint);
                let mut iter = batches(source.clone(), batch_size, lens.len());
                let mut got = Vec::new();
                let mut hints = vec![iter.size_hint()];
                while let Some(out) = iter.next() {
                    got.push(out);
                    hints.push(iter.size_hint());
                }
                assert_eq!(got, model_with_lens(&lens, batch_size), "{context}");
                assert_hints_hold(&hints, &context);

                // Fused, and done with its source once it has ended.
                assert_eq!(iter.next(), None, "{context}");
                assert_eq!(iter.size_hint(), (0, Some(0)), "{context}");
                assert_eq!(Rc::strong_count(&source.lens), 1, "{context}");

                // Nothing is read past the first extra item of a too long epoch, and no epoch
                // starts after an error.
                let first_len = lens[0];
                let mut pulled = 0;
                let mut started = 0;
                for &len in &lens {
                    started += 1;
                    pulled += len.min(first_len + 1);
                    if first_len == 0 || len != first_len {
                        break;
                    }
                }
                assert_eq!(source.pulled.get(), pulled, "{context}");
                assert_eq!(source.started.get(), started, "{context}");
            }
        }
    }
}

#[test]
fn a_shorter_epoch_yields_one_error_then_ends() {
    let source = Source::new(&[5, 3], true);
    let mut iter = batches(source, 3, 2);
    assert_eq!(iter.next(), Some(Ok(vec![(0, 0), (0, 1), (0, 2)])));
    assert_eq!(iter.next(), Some(Ok(vec![(0, 3), (0, 4), (1, 0)])));
    // (1, 1) and (1, 2) wait in the unfinished batch when the epoch ends early: dropped.
    let error = iter.next().unwrap().unwrap_err();
    assert_eq!(
        error,
        BatchError::EpochTooShort {
            epoch: 2,
            len: 3,
            first_len: 5
        }
    );
    assert_eq!(error.epoch(), 2);
    assert_eq!(error.first_len(), 5);
    assert_eq!(
        error.to_string(),
        "epoch 2 had 3 items, but the first epoch had 5"
    );
    assert_eq!(iter.next(), None);
    assert_eq!(iter.next(), None);
}

#[test]
fn a_longer_epoch_is_caught_at_its_first_extra_item() {
    // The second epoch has one item more than the first.
    let source = Source::new(&[3, 4], true);
    let pulled = source.pulled.clone();
    let mut iter = batches(source, 2, 2);
    assert_eq!(iter.next(), Some(Ok(vec![(0, 0), (0, 1)])));
    assert_eq!(iter.next(), Some(Ok(vec![(0, 2), (1, 0)])));
    assert_eq!(iter.next(), Some(Ok(vec![(1, 1), (1, 2)])));
    let error = iter.next().unwrap().unwrap_err();
    assert_eq!(
        error,
        BatchError::EpochTooLong {
            epoch: 2,
            len_at_least: 4,
            first_len: 3
        }
    );
    assert_eq!(
        error.to_string(),
        "epoch 2 had at least 4 items, but the first epoch had 3"
    );
    assert_eq!(pulled.get(), 3 + 4);
    assert_eq!(iter.next(), None);
}

#[test]
fn a_longer_epoch_that_never_ends_is_not_read_to_its_end() {
    // The third epoch is endless: the error must come at its fourth item.
    let source = Source::new(&[3, 3, usize::MAX], false);
    let pulled = source.pulled.clone();
    let got: Vec<_> = batches(source, 4, 3).collect();
    assert_eq!(
        got,
        [
            Ok(vec![(0, 0), (0, 1), (0, 2), (1, 0)]),
            Ok(vec![(1, 1), (1, 2), (2, 0), (2, 1)]),
            Err(BatchError::EpochTooLong {
                epoch: 3,
                len_at_least: 4,
                first_len: 3
            }),
        ]
    );
    assert_eq!(pulled.get(), 3 + 3 + 4);
}

#[test]
fn an_empty_source_yields_nothing_and_is_not_iterated_again() {
    assert_eq!(batches(Vec::<u8>::new(), 3, 5).next(), None);
    // Even with more epochs than could ever be iterated.
    assert_eq!(batches(0..0, 1, usize::MAX).count(), 0);

    let source = Source::new(&[0, 2], true);
    let started = source.started.clone();
    let mut iter = batches(source, 1, 2);
    assert_eq!(iter.next(), None);
    assert_eq!(iter.next(), None);
    assert_eq!(started.get(), 1);
}

#[test]
fn only_the_epochs_before_the_last_clone_the_source() {
    #[derive(Debug)]
    struct Counted(Rc<Cell<usize>>);
    impl Clone for Counted {
        fn clone(&self) -> Self {
            self.0.set(self.0.get() + 1);
            Counted(self.0.clone())
        }
    }
    impl IntoIterator for Counted {
        type Item = u8;
        type IntoIter = std::ops::Range<u8>;
        fn into_iter(self) -> Self::IntoIter {
            0..3
        }
    }

    for epochs in 1..=4 {
        let clones = Rc::new(Cell::new(0));
        assert_eq!(
            batches(Counted(clones.clone()), 2, epochs).count(),
            (3 * epochs).div_ceil(2)
        );
        assert_eq!(clones.get(), epochs - 1);
    }
}

#[test]
fn size_hint_holds_and_is_exact_in_the_last_epoch() {
    for len in 0..=6 {
        for batch_size in 1..=7 {
            for epochs in 1..=4 {
                let context = format!("len {len}, batch_size {batch_size}, epochs {epochs}");
                let mut iter = batches(0..len, batch_size, epochs);
                let total = model(len, batch_size, epochs).len();
                // The output during which the last epoch starts: from then on the hint is exact.
                let last_epoch_starts = (epochs - 1) * len / batch_size;
                let mut hints = vec![iter.size_hint()];
                for done in 1..=total {
                    assert!(iter.next().is_some(), "{context}");
                    let hint = iter.size_hint();
                    if done > last_epoch_starts {
                        assert_eq!(hint, (total - done, Some(total - done)), "{context}");
                    }
                    hints.push(hint);
                }
                assert_eq!(iter.next(), None, "{context}");
                assert_hints_hold(&hints, &context);
            }
        }
    }

    // Before the first epoch has started nothing is known; an endless source gives no upper
    // bound; bounds saturate instead of overflowing.
    assert_eq!(batches(0..4, 2, 2).size_hint(), (0, None));
    let mut endless = batches(0_u64.., 3, 2);
    endless.next();
    assert_eq!(endless.size_hint(), (usize::MAX / 3 + 1, None));
    let mut huge = batches(0..usize::MAX, 1, usize::MAX);
    huge.next();
    assert_eq!(huge.size_hint(), (usize::MAX, None));
}

#[test]
fn size_hint_counts_an_error_the_epoch_hint_makes_certain() {
    // The second epoch promises 2 items where the first had 4: once they are in, only the
    // error is left.
    let mut iter = batches(Source::new(&[4, 2], true), 2, 2);
    assert_eq!(iter.next(), Some(Ok(vec![(0, 0), (0, 1)])));
    assert_eq!(iter.next(), Some(Ok(vec![(0, 2), (0, 3)])));
    assert_eq!(iter.next(), Some(Ok(vec![(1, 0), (1, 1)])));
    assert_eq!(iter.size_hint(), (1, Some(1)));
    assert!(matches!(
        iter.next(),
        Some(Err(BatchError::EpochTooShort { .. }))
    ));
    assert_eq!(iter.size_hint(), (0, Some(0)));
}

#[test]
fn a_huge_batch_size_is_not_allocated_up_front() {
    // The batch is sized by what the source promises, not by `batch_size`.
    let got: Vec<_> = batches(0..3, usize::MAX, 2).collect();
    assert_eq!(got, [Ok(vec![0, 1, 2, 0, 1, 2])]);
    assert!(got[0].as_ref().unwrap().capacity() < 100);

    // A source that claims to be endless: reserving `batch_size` fails, quietly.
    struct ClaimsEndless(u64);
    impl Iterator for ClaimsEndless {
        type Item = u64;
        fn next(&mut self) -> Option<u64> {
            self.0 = self.0.checked_sub(1)?;
            Some(self.0)
        }
        fn size_hint(&self) -> (usize, Option<usize>) {
            (usize::MAX, None)
        }
    }
    let got: Vec<_> = batches(Claims, usize::MAX / 2, 1).collect();
    assert_eq!(got, [Ok(vec![2, 1, 0])]);

    #[derive(Clone)]
    struct Claims;
    impl IntoIterator for Claims {
        type Item = u64;
        type IntoIter = ClaimsEndless;
        fn into_iter(self) -> ClaimsEndless {
            ClaimsEndless(3)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Panics, at the caller

/// Runs `f`, which must panic, and returns the panic's message and the file and line it was
/// reported at. Panics of other threads meanwhile go to the previous hook.
fn panic_location(f: impl FnOnce() + panic::UnwindSafe) -> (String, String, u32) {
    // The hook is global: tests that set it take turns.
    static HOOK: Mutex<()> = Mutex::new(());
    let _turn = HOOK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());

    type Hook = dyn Fn(&PanicHookInfo<'_>) + Send + Sync;
    let previous: Arc<Hook> = Arc::from(panic::take_hook());
    let seen = Arc::new(Mutex::new(None));
    let this_thread = std::thread::current().id();
    {
        let (previous, seen) = (previous.clone(), seen.clone());
        panic::set_hook(Box::new(move |info| {
            if std::thread::current().id() == this_thread {
                let location = info.location().expect("a panic location");
                *seen.lock().unwrap() = Some((location.file().to_owned(), location.line()));
            } else {
                previous(info);
            }
        }));
    }
    let result = panic::catch_unwind(f);
    panic::set_hook(Box::new(move |info| previous(info)));

    let payload = result.expect_err("the call should panic");
    let message = payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .expect("a panic message");
    let (file, line) = seen.lock().unwrap().take().expect("the hook saw the panic");
    (message, file, line)
}

#[test]
fn zero_arguments_panic_at_the_caller() {
    let call_line = line!() + 2;
    let (message, file, line) = panic_location(|| {
        let _ = batches(0..3, 0, 1);
    });
    assert_eq!(message, "batch_size must be greater than 0");
    assert_eq!((file.as_str(), line), (file!(), call_line));

    let call_line = line!() + 2;
    let (message, file, line) = panic_location(|| {
        let _ = batches(0..3, 1, 0);
    });
    assert_eq!(message, "epochs must be greater than 0");
    assert_eq!((file.as_str(), line), (file!(), call_line));

    let call_line = line!() + 2;
    let (message, file, line) = panic_location(|| {
        let _ = batches_stream(|| stream::iter(0..3), 0, 1);
    });
    assert_eq!(message, "batch_size must be greater than 0");
    assert_eq!((file.as_str(), line), (file!(), call_line));

    let call_line = line!() + 2;
    let (message, file, line) = panic_location(|| {
        let _ = batches_stream(|| stream::iter(0..3), 1, 0);
    });
    assert_eq!(message, "epochs must be greater than 0");
    assert_eq!((file.as_str(), line), (file!(), call_line));
}

// ---------------------------------------------------------------------------------------------
// The stream

/// A future that is pending once (waking itself) before it completes: lets the tests see
/// `Poll::Pending` from an epoch without tying them to a runtime.
struct YieldNow(bool);

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// A `!Unpin` stream of `0..len` that is pending before each item.
fn slow_range(len: usize) -> impl Stream<Item = usize> {
    stream::iter(0..len).then(|n| async move {
        YieldNow(false).await;
        n
    })
}

/// A `!Unpin` stream of `len` items `(epoch, 0), (epoch, 1), …` that counts the items pulled,
/// is pending before each item, and has no useful `size_hint`.
fn slow_epoch(epoch: usize, len: usize, pulled: Rc<Cell<usize>>) -> impl Stream<Item = Item> {
    stream::unfold(0, move |index| {
        let pulled = pulled.clone();
        async move {
            YieldNow(false).await;
            (index < len).then(|| {
                pulled.set(pulled.get() + 1);
                ((epoch, index), index + 1)
            })
        }
    })
}

#[test]
fn stream_batches_match_the_model() {
    common::on_all_runtimes(|_rt| async move {
        for len in 0..=5 {
            for batch_size in 1..=6 {
                for epochs in 1..=3 {
                    let context = format!("len {len}, batch_size {batch_size}, epochs {epochs}");
                    let mut stream = pin!(batches_stream(|| slow_range(len), batch_size, epochs));
                    let mut got = Vec::new();
                    let mut hints = vec![stream.size_hint()];
                    while let Some(out) = stream.next().await {
                        got.push(out.expect("epochs of equal length"));
                        hints.push(stream.size_hint());
                    }
                    assert_eq!(got, model(len, batch_size, epochs), "{context}");
                    assert_hints_hold(&hints, &context);
                    assert!(stream.is_terminated(), "{context}");
                    assert_eq!(stream.next().await, None, "{context}");
                }
            }
        }
    });
}

#[test]
fn stream_epochs_of_any_lengths_match_the_model() {
    common::on_all_runtimes(|_rt| async move {
        for lens in all_lens(3) {
            for batch_size in 1..=4 {
                let context = format!("lens {lens:?}, batch_size {batch_size}");
                let pulled = Rc::new(Cell::new(0));
                let started = Rc::new(Cell::new(0));
                let make = {
                    let (lens, pulled, started) = (lens.clone(), pulled.clone(), started.clone());
                    move || {
                        let epoch = started.get();
                        started.set(epoch + 1);
                        slow_epoch(epoch, lens[epoch], pulled.clone())
                    }
                };
                let mut stream = pin!(batches_stream(make, batch_size, lens.len()));
                let mut got = Vec::new();
                let mut hints = vec![stream.size_hint()];
                while let Some(out) = stream.next().await {
                    got.push(out);
                    hints.push(stream.size_hint());
                }
                assert_eq!(got, model_with_lens(&lens, batch_size), "{context}");
                assert_hints_hold(&hints, &context);
                assert!(stream.is_terminated(), "{context}");
                assert_eq!(stream.next().await, None, "{context}");
                // `make` (holding the counters) is dropped by now.
                assert_eq!(Rc::strong_count(&started), 1, "{context}");

                let first_len = lens[0];
                let (mut want_pulled, mut want_started) = (0, 0);
                for &len in &lens {
                    want_started += 1;
                    want_pulled += len.min(first_len + 1);
                    if first_len == 0 || len != first_len {
                        break;
                    }
                }
                assert_eq!(pulled.get(), want_pulled, "{context}");
                assert_eq!(started.get(), want_started, "{context}");
            }
        }
    });
}

#[test]
fn stream_errors_for_shorter_and_endless_longer_epochs() {
    common::on_all_runtimes(|_rt| async move {
        // A shorter second epoch.
        let mut sizes = [4, 1].into_iter();
        let mut stream = pin!(batches_stream(
            move || slow_range(sizes.next().unwrap()),
            3,
            2
        ));
        assert_eq!(stream.next().await, Some(Ok(vec![0, 1, 2])));
        assert_eq!(
            stream.next().await,
            Some(Err(BatchError::EpochTooShort {
                epoch: 2,
                len: 1,
                first_len: 4
            }))
        );
        assert_eq!(stream.next().await, None);

        // An endless second epoch, not read past its first extra item.
        let pulled = Rc::new(Cell::new(0));
        let mut lens = [2, usize::MAX].into_iter().enumerate();
        let make = {
            let pulled = pulled.clone();
            move || {
                let (epoch, len) = lens.next().unwrap();
                slow_epoch(epoch, len, pulled.clone())
            }
        };
        let got: Vec<_> = batches_stream(make, 3, 2).collect().await;
        assert_eq!(
            got,
            [
                Ok(vec![(0, 0), (0, 1), (1, 0)]),
                Err(BatchError::EpochTooLong {
                    epoch: 2,
                    len_at_least: 3,
                    first_len: 2
                }),
            ]
        );
        assert_eq!(pulled.get(), 2 + 3);
    });
}

#[test]
fn stream_of_an_empty_first_epoch_ends_at_once() {
    common::on_all_runtimes(|_rt| async move {
        let calls = Rc::new(Cell::new(0));
        let make = {
            let calls = calls.clone();
            move || {
                calls.set(calls.get() + 1);
                slow_range(0)
            }
        };
        let mut stream = pin!(batches_stream(make, 2, usize::MAX));
        assert_eq!(stream.next().await, None);
        assert!(stream.is_terminated());
        assert_eq!(calls.get(), 1);
    });
}

#[test]
fn stream_size_hint_is_exact_in_the_last_epoch() {
    common::on_all_runtimes(|_rt| async move {
        // `stream::iter` reports its exact length.
        let mut stream = batches_stream(|| stream::iter(0..5), 2, 2);
        assert_eq!(stream.size_hint(), (0, None));
        assert_eq!(stream.next().await, Some(Ok(vec![0, 1])));
        // Within the first epoch: 3 + 5 items at most, and the second epoch could be short.
        assert_eq!(stream.size_hint(), (2, Some(5)));
        assert_eq!(stream.next().await, Some(Ok(vec![2, 3])));
        assert_eq!(stream.next().await, Some(Ok(vec![4, 0])));
        assert_eq!(stream.size_hint(), (2, Some(2)));
        assert_eq!(stream.next().await, Some(Ok(vec![1, 2])));
        assert_eq!(stream.next().await, Some(Ok(vec![3, 4])));
        assert_eq!(stream.size_hint(), (0, Some(0)));
        assert_eq!(stream.next().await, None);
    });
}

// ---------------------------------------------------------------------------------------------
// The types

#[test]
fn batch_error_is_a_plain_error() {
    let error = BatchError::EpochTooShort {
        epoch: 3,
        len: 1,
        first_len: 2,
    };
    assert_eq!(
        error.to_string(),
        "epoch 3 had 1 item, but the first epoch had 2"
    );
    let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(error.clone());
    assert!(boxed.source().is_none());
    assert_eq!(
        format!("{error:?}"),
        "EpochTooShort { epoch: 3, len: 1, first_len: 2 }"
    );
}

#[test]
fn debug_shows_the_state() {
    let mut iter = batches(vec![1, 2, 3], 2, 2);
    iter.next();
    iter.next();
    iter.next();
    let debug = format!("{iter:?}");
    assert!(debug.starts_with("Batches {"), "{debug}");
    // The last epoch is running, on the source itself.
    assert!(
        debug.contains("source: None, epoch: Some(IntoIter([]))"),
        "{debug}"
    );
    assert!(debug.contains("first_len: Some(3)"), "{debug}");

    let stream = batches_stream(|| stream::iter(0..3), 2, 2);
    let debug = format!("{stream:?}");
    assert!(debug.starts_with("BatchesStream {"), "{debug}");
    assert!(debug.ends_with(".. }"), "{debug}");
}

fn assert_send<T: Send>() {}
fn assert_sync<T: Sync>() {}
fn assert_unpin<T: Unpin>() {}

type VecStream = stream::Iter<std::vec::IntoIter<u8>>;

#[test]
fn auto_traits_follow_the_parts() {
    assert_send::<Batches<Vec<u8>>>();
    assert_sync::<Batches<Vec<u8>>>();
    assert_unpin::<Batches<Vec<u8>>>();

    assert_send::<BatchesStream<fn() -> VecStream, VecStream>>();
    assert_sync::<BatchesStream<fn() -> VecStream, VecStream>>();
    assert_unpin::<BatchesStream<fn() -> VecStream, VecStream>>();
    // An `Unpin` maker is not needed for an `Unpin` stream: it is never pinned.
    assert_unpin::<BatchesStream<std::marker::PhantomPinned, VecStream>>();

    assert_send::<BatchError>();
    assert_sync::<BatchError>();
    assert_unpin::<BatchError>();
}

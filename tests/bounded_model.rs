//! A property test: random sources, ready/pending patterns and limits, driven step by step
//! against a simple model of what `run_bounded` must do.

mod common;

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use abstractions::run_bounded;
use futures::stream::{FusedStream, Stream};
use proptest::prelude::*;

#[derive(Default)]
struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[derive(Default)]
struct Gate {
    open: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

struct GateFuture {
    gate: Arc<Gate>,
    value: usize,
}

impl Future for GateFuture {
    type Output = usize;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<usize> {
        if self.gate.open.load(Ordering::SeqCst) {
            Poll::Ready(self.value)
        } else {
            *self.gate.waker.lock().unwrap() = Some(cx.waker().clone());
            Poll::Pending
        }
    }
}

/// Hands out one future per gate, returning `Pending` (and waking itself) the given number of
/// times before each.
struct Source {
    gates: Vec<Arc<Gate>>,
    pendings: Vec<u8>,
    next: usize,
    pending_left: Option<u8>,
    pulled: Rc<Cell<usize>>,
    last_was_pending: Rc<Cell<bool>>,
}

impl Stream for Source {
    type Item = GateFuture;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<GateFuture>> {
        let i = self.next;
        if i == self.gates.len() {
            self.last_was_pending.set(false);
            return Poll::Ready(None);
        }
        let initial = self.pendings[i];
        let left = *self.pending_left.get_or_insert(initial);
        if left > 0 {
            self.pending_left = Some(left - 1);
            self.last_was_pending.set(true);
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.pending_left = None;
        self.next += 1;
        self.pulled.set(self.pulled.get() + 1);
        self.last_was_pending.set(false);
        Poll::Ready(Some(GateFuture {
            gate: self.gates[i].clone(),
            value: i,
        }))
    }
}

#[derive(Debug, Clone)]
enum Action {
    Poll,
    /// Open the gate of the k-th (mod count) pulled future whose gate is still shut.
    Open(usize),
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        3 => Just(Action::Poll),
        2 => (0..64usize).prop_map(Action::Open),
    ]
}

fn check(
    n: usize,
    limit: usize,
    ready_at_once: Vec<bool>,
    pendings: Vec<u8>,
    actions: Vec<Action>,
) -> Result<(), TestCaseError> {
    let gates: Vec<Arc<Gate>> = (0..n)
        .map(|i| {
            let gate = Gate::default();
            gate.open.store(ready_at_once[i], Ordering::SeqCst);
            Arc::new(gate)
        })
        .collect();
    let pulled = Rc::new(Cell::new(0));
    let source_pending = Rc::new(Cell::new(false));
    let source = Source {
        gates: gates.clone(),
        pendings,
        next: 0,
        pending_left: None,
        pulled: pulled.clone(),
        last_was_pending: source_pending.clone(),
    };
    let mut stream = run_bounded(source, limit);
    let wakes = Arc::new(CountingWaker::default());
    let waker = Waker::from(wakes.clone());
    let mut returned = vec![false; n];
    let mut returned_count = 0;
    // Wake count at the last `Pending`, if the last poll was `Pending`.
    let mut asleep_at: Option<usize> = None;
    let mut ended = false;

    let mut step = |stream: &mut abstractions::BoundedUnordered<Source>,
                    action: &Action|
     -> Result<(), TestCaseError> {
        match action {
            Action::Open(k) => {
                let shut: Vec<usize> = (0..pulled.get())
                    .filter(|&i| !gates[i].open.load(Ordering::SeqCst))
                    .collect();
                if !shut.is_empty() {
                    let gate = &gates[shut[k % shut.len()]];
                    gate.open.store(true, Ordering::SeqCst);
                    if let Some(waker) = gate.waker.lock().unwrap().take() {
                        waker.wake();
                    }
                }
            }
            Action::Poll => {
                if ended {
                    return Ok(());
                }
                let woken = wakes.0.load(Ordering::SeqCst);
                let poll = Pin::new(&mut *stream).poll_next(&mut Context::from_waker(&waker));
                if asleep_at == Some(woken) {
                    // Nobody woke the task since it slept: an executor would not poll it, so
                    // a poll must find nothing to do, or a wake-up was lost.
                    prop_assert!(poll.is_pending(), "lost wake-up: {poll:?} after Pending");
                }
                match poll {
                    Poll::Ready(Some(i)) => {
                        prop_assert!(gates[i].open.load(Ordering::SeqCst), "{i} not finished");
                        prop_assert!(!returned[i], "{i} returned twice");
                        returned[i] = true;
                        returned_count += 1;
                        let in_flight = pulled.get() - returned_count;
                        // Refilled before returning, unless the source is out or pending.
                        prop_assert!(
                            in_flight == limit || pulled.get() == n || source_pending.get(),
                            "{in_flight} in flight, limit {limit}, slot not refilled"
                        );
                        asleep_at = None;
                    }
                    Poll::Ready(None) => {
                        prop_assert_eq!(returned_count, n, "ended early");
                        prop_assert!(stream.is_terminated());
                        ended = true;
                    }
                    Poll::Pending => {
                        // Nothing finished is left unreturned.
                        for i in 0..pulled.get() {
                            prop_assert!(
                                returned[i] || !gates[i].open.load(Ordering::SeqCst),
                                "{i} finished but not returned"
                            );
                        }
                        let in_flight = pulled.get() - returned_count;
                        prop_assert!(
                            in_flight == limit || pulled.get() == n || source_pending.get(),
                            "pending with {in_flight} in flight under limit {limit}"
                        );
                        // A wake-up during the poll counts: the executor polls again.
                        asleep_at = Some(woken);
                    }
                }
                let in_flight = pulled.get() - returned_count;
                prop_assert!(in_flight <= limit, "{in_flight} in flight over {limit}");
                prop_assert_eq!(stream.in_flight(), in_flight);
            }
        }
        Ok(())
    };

    for action in &actions {
        step(&mut stream, action)?;
    }
    // Finish: open everything and poll to the end.
    for _ in 0..(4 * n + 10) {
        step(&mut stream, &Action::Open(0))?;
        step(&mut stream, &Action::Poll)?;
    }
    prop_assert!(ended, "did not end");
    Ok(())
}

fn case() -> impl Strategy<Value = (usize, usize, Vec<bool>, Vec<u8>, Vec<Action>)> {
    (0..30usize, 1..9usize).prop_flat_map(|(n, limit)| {
        (
            Just(n),
            Just(limit),
            proptest::collection::vec(any::<bool>(), n),
            proptest::collection::vec(0..3u8, n),
            proptest::collection::vec(action(), 0..150),
        )
    })
}

#[test]
fn model() {
    common::with_watchdog("model", || {
        let config = ProptestConfig::with_cases(512);
        proptest::test_runner::TestRunner::new(config)
            .run(&case(), |(n, limit, ready, pendings, actions)| {
                check(n, limit, ready, pendings, actions)
            })
            .unwrap();
    });
}

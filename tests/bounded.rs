//! Tests of `run_bounded` / `BoundedUnordered`: the in-flight bound, lazy pull, completion
//! order, refill before return, the poll budget, the changeable limit, drops and panics.

mod common;

use std::cell::Cell;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::{Pin, pin};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use abstractions::{BoundedStreamExt, BoundedUnordered, LimitHandle, run_bounded};
use common::{on_all_runtimes, with_watchdog};
use futures::channel::oneshot;
use futures::stream::{self, FusedStream, Stream, StreamExt};

/// A waker that counts its wake-ups.
#[derive(Default)]
struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn counting_waker() -> (Arc<CountingWaker>, Waker) {
    let counter = Arc::new(CountingWaker::default());
    (counter.clone(), Waker::from(counter))
}

/// A future that is pending until its gate is opened, counting its polls.
#[derive(Default)]
struct Gate {
    open: AtomicBool,
    polls: AtomicUsize,
    waker: Mutex<Option<Waker>>,
}

impl Gate {
    fn open(&self) {
        self.open.store(true, Ordering::SeqCst);
        if let Some(waker) = self.waker.lock().unwrap().take() {
            waker.wake();
        }
    }

    fn polls(&self) -> usize {
        self.polls.load(Ordering::SeqCst)
    }
}

struct GateFuture {
    gate: Arc<Gate>,
    value: usize,
}

impl Future for GateFuture {
    type Output = usize;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<usize> {
        self.gate.polls.fetch_add(1, Ordering::SeqCst);
        if self.gate.open.load(Ordering::SeqCst) {
            Poll::Ready(self.value)
        } else {
            *self.gate.waker.lock().unwrap() = Some(cx.waker().clone());
            Poll::Pending
        }
    }
}

/// `n` gates and a source of futures over them that counts how many it handed out.
fn gated(
    n: usize,
) -> (
    Vec<Arc<Gate>>,
    Arc<AtomicUsize>,
    impl Stream<Item = GateFuture>,
) {
    let gates: Vec<Arc<Gate>> = (0..n).map(|_| Arc::new(Gate::default())).collect();
    let pulled = Arc::new(AtomicUsize::new(0));
    let source = stream::iter(gates.clone().into_iter().enumerate().map({
        let pulled = pulled.clone();
        move |(value, gate)| {
            pulled.fetch_add(1, Ordering::SeqCst);
            GateFuture { gate, value }
        }
    }));
    (gates, pulled, source)
}

fn poll_with<S: Stream + Unpin>(stream: &mut S, waker: &Waker) -> Poll<Option<S::Item>> {
    Pin::new(stream).poll_next(&mut Context::from_waker(waker))
}

#[test]
fn first_poll_pulls_exactly_limit() {
    with_watchdog("first_poll", || {
        for limit in [1, 2, 7, 16, 64] {
            let (gates, pulled, source) = gated(1000);
            let mut stream = run_bounded(source, limit);
            let (_, waker) = counting_waker();
            assert!(poll_with(&mut stream, &waker).is_pending());
            assert_eq!(pulled.load(Ordering::SeqCst), limit, "limit {limit}");
            assert_eq!(stream.in_flight(), limit);
            // Each pulled future was polled exactly once; none other was touched.
            for (i, gate) in gates.iter().enumerate() {
                assert_eq!(gate.polls(), usize::from(i < limit), "gate {i}");
            }
            // Polling again pulls nothing while nothing finished.
            assert!(poll_with(&mut stream, &waker).is_pending());
            assert_eq!(pulled.load(Ordering::SeqCst), limit);
        }
    });
}

#[test]
fn one_poll_does_bounded_work_and_wakes_itself() {
    with_watchdog("budget", || {
        let limit = 5000;
        let (_gates, pulled, source) = gated(10_000);
        let mut stream = run_bounded(source, limit);
        let (wakes, waker) = counting_waker();
        assert!(poll_with(&mut stream, &waker).is_pending());
        let first = pulled.load(Ordering::SeqCst);
        assert!(first > 0 && first < limit, "one poll pulled {first}");
        assert_eq!(
            wakes.0.load(Ordering::SeqCst),
            1,
            "a spent budget wakes the task"
        );
        // The following polls go on filling, each bounded, until the limit is reached.
        let mut polls = 1;
        while pulled.load(Ordering::SeqCst) < limit {
            let before = pulled.load(Ordering::SeqCst);
            assert!(poll_with(&mut stream, &waker).is_pending());
            assert!(pulled.load(Ordering::SeqCst) - before <= first);
            polls += 1;
            assert!(polls < 1000);
        }
        assert_eq!(pulled.load(Ordering::SeqCst), limit);
        assert_eq!(stream.in_flight(), limit);
        // Once full, a poll with nothing to do does not wake itself.
        let wakes_before = wakes.0.load(Ordering::SeqCst);
        assert!(poll_with(&mut stream, &waker).is_pending());
        assert_eq!(wakes.0.load(Ordering::SeqCst), wakes_before);
    });
}

#[test]
fn finished_slot_is_refilled_before_output_is_returned() {
    with_watchdog("refill", || {
        let (gates, pulled, source) = gated(10);
        let mut stream = run_bounded(source, 3);
        let (_, waker) = counting_waker();
        assert!(poll_with(&mut stream, &waker).is_pending());
        gates[1].open();
        assert_eq!(poll_with(&mut stream, &waker), Poll::Ready(Some(1)));
        // Future 3 was pulled and polled once before output 1 came back.
        assert_eq!(pulled.load(Ordering::SeqCst), 4);
        assert_eq!(gates[3].polls(), 1);
        assert_eq!(stream.in_flight(), 3);
    });
}

#[test]
fn outputs_come_in_completion_order_exactly_once() {
    on_all_runtimes(|_| async {
        let n = 50;
        let (senders, receivers): (Vec<_>, Vec<_>) = (0..n).map(|_| oneshot::channel()).unzip();
        let tasks = stream::iter(receivers.into_iter().enumerate()).map(
            |(i, rx): (usize, oneshot::Receiver<()>)| async move {
                rx.await.unwrap();
                i
            },
        );
        let mut stream = run_bounded(tasks, n);
        // Complete them in a scrambled order, one at a time, each awaited before the next.
        let order: Vec<usize> = (0..n).map(|i| (i * 17 + 5) % n).collect();
        let mut senders: Vec<Option<oneshot::Sender<()>>> = senders.into_iter().map(Some).collect();
        for &i in &order {
            senders[i].take().unwrap().send(()).unwrap();
            assert_eq!(stream.next().await, Some(i));
        }
        assert_eq!(stream.next().await, None);
        assert!(stream.is_terminated());
        assert_eq!(stream.next().await, None);
    });
}

#[test]
fn every_output_once_and_in_flight_bounded() {
    on_all_runtimes(|_| async {
        for limit in [1, 2, 5, 64, 300] {
            let pulled = Arc::new(AtomicUsize::new(0));
            let tasks = stream::iter(0..1000u64).map({
                let pulled = pulled.clone();
                move |i| {
                    pulled.fetch_add(1, Ordering::SeqCst);
                    async move {
                        for _ in 0..(i % 4) {
                            futures::pending!(); // not ready; woken at once below
                        }
                        i
                    }
                }
            });
            let tasks = tasks.map(YieldNow::wrap);
            let mut stream = run_bounded(tasks, limit);
            let mut seen = vec![false; 1000];
            let mut returned = 0;
            while let Some(i) = stream.next().await {
                returned += 1;
                assert!(!std::mem::replace(&mut seen[i as usize], true), "{i} twice");
                let in_flight = pulled.load(Ordering::SeqCst) - returned;
                assert!(in_flight <= limit, "{in_flight} in flight over {limit}");
                assert_eq!(stream.in_flight(), in_flight);
            }
            assert!(
                seen.iter().all(|&s| s),
                "limit {limit}: an output is missing"
            );
        }
    });
}

pin_project_lite::pin_project! {
    /// Wakes its task at once whenever the inner future is pending (as `yield_now` does).
    struct YieldNow<F> { #[pin] inner: F }
}

impl<F> YieldNow<F> {
    fn wrap(inner: F) -> Self {
        YieldNow { inner }
    }
}

impl<F: Future> Future for YieldNow<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let poll = self.project().inner.poll(cx);
        if poll.is_pending() {
            cx.waker().wake_by_ref();
        }
        poll
    }
}

#[test]
fn pending_source_does_not_stall_futures_in_flight() {
    on_all_runtimes(|_| async {
        let (source_tx, source_rx) = futures::channel::mpsc::unbounded();
        let (done_tx, done_rx) = oneshot::channel::<()>();
        source_tx
            .unbounded_send(Box::pin(async move {
                done_rx.await.unwrap();
                1
            }) as Pin<Box<dyn Future<Output = i32> + Send>>)
            .unwrap();
        let mut stream = run_bounded(source_rx, 4);
        let next = stream.next();
        // The source has nothing more, and stays open; the one future finishes meanwhile.
        done_tx.send(()).unwrap();
        assert_eq!(next.await, Some(1));
        // Now the source is open and empty: the stream waits for it, and takes what comes.
        source_tx.unbounded_send(Box::pin(async { 2 })).unwrap();
        assert_eq!(stream.next().await, Some(2));
        drop(source_tx);
        assert_eq!(stream.next().await, None);
    });
}

#[test]
fn ends_only_when_source_exhausted_and_nothing_in_flight() {
    on_all_runtimes(|_| async {
        let (gates, _pulled, source) = gated(3);
        let mut stream = run_bounded(source, 2);
        assert_eq!(stream.size_hint(), (3, Some(3)));
        let first = futures::future::poll_fn(|cx| Poll::Ready(stream.poll_next_unpin(cx))).await;
        assert!(first.is_pending());
        assert!(!stream.is_terminated());
        gates[0].open();
        gates[1].open();
        assert_eq!(stream.next().await, Some(0));
        assert_eq!(stream.next().await, Some(1));
        // Source exhausted, one in flight: neither ended nor terminated.
        assert_eq!(stream.size_hint(), (1, Some(1)));
        let pending = futures::future::poll_fn(|cx| Poll::Ready(stream.poll_next_unpin(cx))).await;
        assert!(pending.is_pending());
        assert!(!stream.is_terminated());
        gates[2].open();
        assert_eq!(stream.next().await, Some(2));
        assert_eq!(stream.size_hint(), (0, Some(0)));
        assert_eq!(stream.next().await, None);
        assert!(stream.is_terminated());
    });
}

#[test]
fn size_hint_counts_source_and_in_flight() {
    let stream = run_bounded(stream::iter(0..10).map(|i| async move { i }), 3);
    assert_eq!(stream.size_hint(), (10, Some(10)));
    let endless = run_bounded(stream::repeat_with(|| async { 1 }), 3);
    assert_eq!(endless.size_hint(), (usize::MAX, None));
}

/// Captures the location of the next panic on this thread.
fn panic_location(f: impl FnOnce()) -> String {
    let location = Arc::new(Mutex::new(String::new()));
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new({
        let location = location.clone();
        move |info| {
            let place = info.location().unwrap();
            let message = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_default();
            *location.lock().unwrap() = format!("{}: {message}", place.file());
        }
    }));
    let result = catch_unwind(AssertUnwindSafe(f));
    std::panic::set_hook(previous);
    assert!(result.is_err(), "expected a panic");
    location.lock().unwrap().clone()
}

#[test]
fn zero_limit_panics_at_the_caller() {
    let tasks = || stream::iter([async { 1 }]);
    let place = panic_location(|| drop(run_bounded(tasks(), 0)));
    assert!(place.starts_with("tests/bounded.rs: "), "{place}");
    assert!(place.contains("`limit`"), "{place}");
    let place = panic_location(|| drop(tasks().run_bounded(0)));
    assert!(place.starts_with("tests/bounded.rs: "), "{place}");
    let stream = run_bounded(tasks(), 1);
    let place = panic_location(|| stream.handle().set_limit(0));
    assert!(place.starts_with("tests/bounded.rs: "), "{place}");
    assert!(place.contains("`limit`"), "{place}");
    assert_eq!(stream.limit(), 1);
}

#[test]
fn works_with_unpin_nothing_and_not_send() {
    on_all_runtimes(|_| async {
        // A !Unpin source (async block state inside `then`) of !Unpin, !Send futures.
        let shared = Rc::new(Cell::new(0));
        let tasks = stream::iter(0..20).then(|i| async move { i }).map({
            let shared = shared.clone();
            move |i| {
                let shared = shared.clone();
                async move {
                    futures::pending!();
                    shared.set(shared.get() + i);
                    i
                }
            }
        });
        let tasks = tasks.map(YieldNow::wrap);
        let stream = pin!(run_bounded(tasks, 3));
        let outputs: Vec<i32> = stream.collect().await;
        assert_eq!(outputs.len(), 20);
        assert_eq!(shared.get(), (0..20).sum::<i32>());
    });
}

#[test]
fn send_sync_unpin_follow_the_parts() {
    fn send<T: Send>(_: &T) {}
    fn sync<T: Sync>(_: &T) {}
    fn unpin<T: Unpin>(_: &T) {}
    let stream = run_bounded(stream::iter(0..3).map(|i| async move { i }), 2);
    send(&stream);
    sync(&stream);
    unpin(&stream);
    let handle: LimitHandle = stream.handle();
    send(&handle);
    sync(&handle);
    fn static_send<T: Send + Sync + Unpin + 'static>() {}
    static_send::<LimitHandle>();
    static_send::<BoundedUnordered<stream::Iter<std::vec::IntoIter<futures::future::Ready<u8>>>>>();
}

/// Counts live instances; dropping one decrements.
struct DropGuard(Arc<AtomicUsize>);

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[test]
fn dropping_drops_source_and_futures_at_once() {
    on_all_runtimes(|_| async {
        let live = Arc::new(AtomicUsize::new(0));
        live.fetch_add(1, Ordering::SeqCst);
        let source_guard = DropGuard(live.clone());
        let tasks = stream::iter(0..100).map({
            let live = live.clone();
            move |_| {
                let _ = &source_guard;
                live.fetch_add(1, Ordering::SeqCst);
                let guard = DropGuard(live.clone());
                async move {
                    let _guard = guard;
                    futures::future::pending::<()>().await;
                }
            }
        });
        let mut stream = run_bounded(tasks, 5);
        let polled = futures::future::poll_fn(|cx| Poll::Ready(stream.poll_next_unpin(cx))).await;
        assert!(polled.is_pending());
        // The source (1) and five futures are alive.
        assert_eq!(live.load(Ordering::SeqCst), 6);
        drop(stream);
        assert_eq!(live.load(Ordering::SeqCst), 0);
    });
}

#[test]
fn source_dropped_while_futures_still_run() {
    on_all_runtimes(|_| async {
        let live = Arc::new(AtomicUsize::new(1));
        let guard = DropGuard(live.clone());
        let (gate_tx, gate_rx) = oneshot::channel::<()>();
        let mut gate_rx = Some(gate_rx);
        let tasks = stream::iter(0..1).map(move |_| {
            let _ = &guard;
            let rx = gate_rx.take().unwrap();
            async move {
                rx.await.unwrap();
                5
            }
        });
        let mut stream = run_bounded(tasks, 4);
        let polled = futures::future::poll_fn(|cx| Poll::Ready(stream.poll_next_unpin(cx))).await;
        assert!(polled.is_pending());
        // The source ended on the first poll; it is gone though its future is still running.
        assert_eq!(live.load(Ordering::SeqCst), 0);
        gate_tx.send(()).unwrap();
        assert_eq!(stream.next().await, Some(5));
        assert_eq!(stream.next().await, None);
    });
}

#[test]
fn panic_in_a_future_reaches_the_consumer_and_loses_nothing_else() {
    on_all_runtimes(|_| async {
        let tasks = stream::iter(0..10).map(|i| async move {
            if i == 4 {
                panic!("task 4 failed");
            }
            i
        });
        let mut stream = run_bounded(tasks, 3);
        let mut outputs = Vec::new();
        let mut panics = Vec::new();
        loop {
            match futures::FutureExt::catch_unwind(AssertUnwindSafe(stream.next())).await {
                Ok(Some(o)) => outputs.push(o),
                Ok(None) => break,
                Err(panic) => panics.push(*panic.downcast::<&str>().unwrap()),
            }
        }
        assert_eq!(panics, ["task 4 failed"]);
        // The panicking future was dropped; every other output still came, once.
        assert_eq!(outputs, [0, 1, 2, 3, 5, 6, 7, 8, 9]);
        assert!(stream.is_terminated());
    });
}

#[test]
fn waking_one_future_polls_only_that_future() {
    with_watchdog("o1_wake", || {
        let limit = 5000;
        let (gates, _pulled, source) = gated(limit);
        let mut stream = run_bounded(source, limit);
        let (_, waker) = counting_waker();
        while stream.in_flight() < limit {
            assert!(poll_with(&mut stream, &waker).is_pending());
        }
        let total = |gates: &[Arc<Gate>]| gates.iter().map(|g| g.polls()).sum::<usize>();
        let before = total(&gates);
        assert_eq!(before, limit);
        gates[4321].open();
        assert_eq!(poll_with(&mut stream, &waker), Poll::Ready(Some(4321)));
        assert_eq!(total(&gates), before + 1);
        assert_eq!(gates[4321].polls(), 2);
    });
}

/// Pending until its `ready_on`-th poll (never if `None`). Once `spin` is set it wakes itself
/// at every poll; before, it leaves its waker in `parked`.
struct Spinner {
    polls: usize,
    ready_on: Option<usize>,
    value: usize,
    spin: Arc<AtomicBool>,
    parked: Arc<Mutex<Vec<Waker>>>,
}

impl Future for Spinner {
    type Output = usize;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<usize> {
        self.polls += 1;
        if Some(self.polls) == self.ready_on {
            return Poll::Ready(self.value);
        }
        if self.spin.load(Ordering::SeqCst) {
            cx.waker().wake_by_ref();
        } else {
            self.parked.lock().unwrap().push(cx.waker().clone());
        }
        Poll::Pending
    }
}

fn spinners(
    n: usize,
    ready_on: impl Fn(usize) -> Option<usize>,
) -> (
    Arc<AtomicBool>,
    Arc<Mutex<Vec<Waker>>>,
    impl Stream<Item = Spinner>,
) {
    let spin = Arc::new(AtomicBool::new(false));
    let parked = Arc::new(Mutex::new(Vec::new()));
    let tasks = stream::iter(0..n).map({
        let (spin, parked) = (spin.clone(), parked.clone());
        move |value| Spinner {
            polls: 0,
            ready_on: ready_on(value),
            value,
            spin: spin.clone(),
            parked: parked.clone(),
        }
    });
    (spin, parked, tasks)
}

#[test]
fn futures_that_wake_themselves_do_not_starve_the_others() {
    with_watchdog("fairness", || {
        // 255 futures that wake themselves forever, more than one poll's budget, and one in a
        // high slot that finishes on its third poll.
        let (limit, late) = (256, 200);
        let (spin, parked, tasks) = spinners(limit, |value| (value == late).then_some(3));
        let mut stream = run_bounded(tasks, limit);
        let (_, waker) = counting_waker();
        while stream.in_flight() < limit {
            assert!(poll_with(&mut stream, &waker).is_pending());
        }
        spin.store(true, Ordering::SeqCst);
        parked.lock().unwrap().drain(..).for_each(Waker::wake);
        let mut polls = 0;
        let output = loop {
            polls += 1;
            assert!(polls <= 20, "slot {late} was not polled again in 20 polls");
            if let Poll::Ready(output) = poll_with(&mut stream, &waker) {
                break output;
            }
        };
        assert_eq!(output, Some(late));
    });
}

#[test]
fn a_future_that_wakes_itself_is_polled_again_at_the_next_poll() {
    with_watchdog("self_wake", || {
        // Each is ready on its second poll. The first poll pulls and polls the first one and
        // wakes the task (the future asked to let others run); from then on each poll polls
        // the waiting one again, returns its output, and pulls and polls the next.
        let (spin, _, tasks) = spinners(3, |_| Some(2));
        spin.store(true, Ordering::SeqCst);
        let mut stream = run_bounded(tasks, 1);
        let (wakes, waker) = counting_waker();
        assert!(poll_with(&mut stream, &waker).is_pending());
        assert_eq!(wakes.0.load(Ordering::SeqCst), 1);
        for value in 0..3 {
            assert_eq!(poll_with(&mut stream, &waker), Poll::Ready(Some(value)));
        }
        assert_eq!(poll_with(&mut stream, &waker), Poll::Ready(None));
        assert_eq!(wakes.0.load(Ordering::SeqCst), 1, "no other round trip");

        // One that wakes itself forever is polled once per poll, which wakes the task.
        let polls = Rc::new(Cell::new(0));
        let spinner = futures::future::poll_fn({
            let polls = polls.clone();
            move |cx| {
                polls.set(polls.get() + 1);
                cx.waker().wake_by_ref();
                Poll::<()>::Pending
            }
        });
        let mut stream = run_bounded(stream::iter([spinner]), 4);
        let (wakes, waker) = counting_waker();
        for round in 1..=5 {
            assert!(poll_with(&mut stream, &waker).is_pending());
            assert_eq!(polls.get(), round);
            assert_eq!(wakes.0.load(Ordering::SeqCst), round);
        }
    });
}

/// Pending once, waking itself, then ready.
async fn yield_once() {
    let mut yielded = false;
    futures::future::poll_fn(|cx| {
        if std::mem::replace(&mut yielded, true) {
            Poll::Ready(())
        } else {
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}

#[test]
fn adapters_inside_futures_of_adapters_with_futures_that_wake_themselves() {
    // A future that wakes itself is noted per thread while it is polled; an adapter polled
    // inside a future of another must not lose the outer future's wake-ups.
    on_all_runtimes(|_| async {
        let inner = |outer: u64| {
            let tasks = stream::iter(0..20u64).map(move |i| {
                YieldNow::wrap(async move {
                    for _ in 0..(i % 3) {
                        futures::pending!();
                    }
                    outer * 100 + i
                })
            });
            async move {
                let mut sum = 0;
                let mut outputs = run_bounded(tasks, 3);
                while let Some(output) = outputs.next().await {
                    sum += output;
                    // The outer future wakes itself between inner outputs too.
                    if output % 2 == 0 {
                        yield_once().await;
                    }
                }
                sum
            }
        };
        for limit in [1, 2, 7] {
            let mut sums: Vec<u64> = run_bounded(stream::iter(0..10u64).map(inner), limit)
                .collect()
                .await;
            sums.sort();
            let expected: Vec<u64> = (0..10u64)
                .map(|outer| (0..20).map(|i| outer * 100 + i).sum())
                .collect();
            assert_eq!(sums, expected, "limit {limit}");
        }
    });
}

#[test]
fn a_wake_before_polling_a_nested_adapter_is_not_lost() {
    // The outer future wakes itself, then polls an inner adapter (as `join!(yield_now(),
    // inner.next())` does) and returns Pending: the wake-up must still reach the outer adapter.
    on_all_runtimes(|_| async {
        let outputs: Vec<u32> = run_bounded(
            stream::iter(0..3u32).map(|n| async move {
                let mut inner = run_bounded(
                    stream::iter(0..1).map(|_| futures::future::pending::<()>()),
                    1,
                );
                let mut first = true;
                futures::future::poll_fn(move |cx| {
                    if first {
                        first = false;
                        cx.waker().wake_by_ref();
                        assert!(inner.poll_next_unpin(cx).is_pending());
                        return Poll::Pending;
                    }
                    Poll::Ready(n)
                })
                .await
            }),
            2,
        )
        .collect()
        .await;
        let mut outputs = outputs;
        outputs.sort();
        assert_eq!(outputs, [0, 1, 2]);
    });
}

#[test]
fn tokio_yield_now_inside_the_adapter() {
    // Under tokio, `yield_now` wakes its waker only after the task's poll returns (from the
    // runtime, not during the poll); elsewhere it wakes it at once. Both must get through.
    on_all_runtimes(|_| async {
        for limit in [1, 8, 300] {
            let tasks = stream::iter(0..600u64).map(|i| async move {
                for _ in 0..(i % 4) {
                    tokio::task::yield_now().await;
                }
                i
            });
            let sum: u64 = run_bounded(tasks, limit)
                .fold(0, |a, b| async move { a + b })
                .await;
            assert_eq!(sum, 600 * 599 / 2, "limit {limit}");
        }
    });
}

#[test]
fn lowering_the_limit_lets_in_flight_finish_and_pulls_nothing_new() {
    with_watchdog("lower", || {
        let (gates, pulled, source) = gated(20);
        let mut stream = run_bounded(source, 4);
        let handle = stream.handle();
        let (_, waker) = counting_waker();
        assert!(poll_with(&mut stream, &waker).is_pending());
        assert_eq!(pulled.load(Ordering::SeqCst), 4);
        handle.set_limit(2);
        assert_eq!(handle.limit(), 2);
        // Two finish: in flight goes 4 -> 2, and nothing new is pulled (2 is not below 2).
        gates[0].open();
        gates[1].open();
        assert_eq!(poll_with(&mut stream, &waker), Poll::Ready(Some(0)));
        assert_eq!(poll_with(&mut stream, &waker), Poll::Ready(Some(1)));
        assert_eq!(pulled.load(Ordering::SeqCst), 4);
        assert!(poll_with(&mut stream, &waker).is_pending());
        assert_eq!(handle.in_flight(), 2);
        // One more finishes: now below the limit, its slot is refilled.
        gates[2].open();
        assert_eq!(poll_with(&mut stream, &waker), Poll::Ready(Some(2)));
        assert_eq!(pulled.load(Ordering::SeqCst), 5);
        assert_eq!(stream.in_flight(), 2);
    });
}

#[test]
fn raising_the_limit_wakes_and_pulls_more() {
    with_watchdog("raise", || {
        let (_gates, pulled, source) = gated(100);
        let mut stream = run_bounded(source, 3);
        let handle = stream.handle();
        let (wakes, waker) = counting_waker();
        assert!(poll_with(&mut stream, &waker).is_pending());
        assert_eq!(pulled.load(Ordering::SeqCst), 3);
        let before = wakes.0.load(Ordering::SeqCst);
        handle.set_limit(10);
        assert_eq!(
            wakes.0.load(Ordering::SeqCst),
            before + 1,
            "raising wakes the task"
        );
        assert!(poll_with(&mut stream, &waker).is_pending());
        assert_eq!(pulled.load(Ordering::SeqCst), 10);
        assert_eq!(handle.in_flight(), 10);
        // Lowering does not need to wake anyone.
        handle.set_limit(1);
        assert_eq!(wakes.0.load(Ordering::SeqCst), before + 1);
    });
}

#[test]
fn futures_can_change_the_limit_through_the_handle() {
    on_all_runtimes(|_| async {
        let cell: Arc<std::sync::OnceLock<LimitHandle>> = Arc::default();
        let running = Arc::new(AtomicUsize::new(0));
        let peak_after = Arc::new(AtomicUsize::new(0));
        let tasks = stream::iter(0..200).map({
            let cell = cell.clone();
            let running = running.clone();
            let peak_after = peak_after.clone();
            move |i| {
                let handle = cell.get().unwrap().clone();
                let running = running.clone();
                let peak_after = peak_after.clone();
                async move {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    if i >= 100 {
                        peak_after.fetch_max(now, Ordering::SeqCst);
                    }
                    common::sleep(Duration::from_millis(1)).await;
                    if i == 50 {
                        handle.set_limit(2); // "HTTP 429"
                    }
                    running.fetch_sub(1, Ordering::SeqCst);
                    i
                }
            }
        });
        let stream = run_bounded(tasks, 16);
        cell.set(stream.handle()).unwrap();
        assert_eq!(stream.count().await, 200);
        let peak = peak_after.load(Ordering::SeqCst);
        assert!(peak <= 2, "after lowering to 2, {peak} ran at once");
    });
}

/// Scrambles completion across threads: a pool of threads completes oneshot senders in
/// shuffled batches.
fn stress(limit: usize, n: u64) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (pool_tx, pool_rx) = std::sync::mpsc::channel::<(u64, oneshot::Sender<u64>)>();
    let pool_rx = Arc::new(Mutex::new(pool_rx));
    let workers: Vec<_> = (0..3)
        .map(|w| {
            let pool_rx = pool_rx.clone();
            std::thread::spawn(move || {
                let mut seed = 0x9e37_79b9_7f4a_7c15_u64 ^ w;
                loop {
                    let first = match pool_rx.lock().unwrap().recv() {
                        Ok(job) => job,
                        Err(_) => return,
                    };
                    let mut batch = vec![first];
                    // Take what else is queued, unless another worker is blocked in `recv`
                    // holding the lock (waiting for it could deadlock).
                    while let Ok(guard) = pool_rx.try_lock() {
                        match guard.try_recv() {
                            Ok(job) => batch.push(job),
                            Err(_) => break,
                        }
                    }
                    // Fisher-Yates with a xorshift generator.
                    for i in (1..batch.len()).rev() {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        batch.swap(i, (seed % (i as u64 + 1)) as usize);
                    }
                    for (value, tx) in batch {
                        let _ = tx.send(value);
                    }
                }
            })
        })
        .collect();
    let pulled = Arc::new(AtomicUsize::new(0));
    let tasks = stream::iter(0..n).map({
        let pulled = pulled.clone();
        move |value| {
            pulled.fetch_add(1, Ordering::SeqCst);
            let (tx, rx) = oneshot::channel();
            pool_tx.send((value, tx)).unwrap();
            async move { rx.await.unwrap() }
        }
    });
    let (count, sum) = runtime.block_on(async {
        // Run the consumer as a task, so it moves between worker threads.
        tokio::spawn(async move {
            let mut stream = run_bounded(tasks, limit);
            let (mut count, mut sum) = (0u64, 0u64);
            while let Some(value) = stream.next().await {
                count += 1;
                sum += value;
                let in_flight = pulled.load(Ordering::SeqCst) - count as usize;
                assert!(in_flight <= limit, "{in_flight} in flight over {limit}");
            }
            (count, sum)
        })
        .await
        .unwrap()
    });
    assert_eq!(count, n, "limit {limit}");
    assert_eq!(sum, n * (n - 1) / 2, "limit {limit}");
    for worker in workers {
        worker.join().unwrap();
    }
}

#[test]
fn stress_wakes_from_other_threads() {
    // tokio multi-thread only: the point is wake-ups racing with polls on other threads.
    with_watchdog("stress", || {
        for limit in [1, 3, 64, 5000] {
            stress(limit, 20_000);
        }
    });
}

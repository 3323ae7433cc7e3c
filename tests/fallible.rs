//! The fallible variant: nothing is pulled after the first error; by default the error comes at
//! once and the futures in flight are dropped; on request they finish, their `Ok` outputs come,
//! and the error comes last.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;

use abstractions::{BoundedStreamExt, TryBoundedUnordered, try_run_bounded};
use common::on_all_runtimes;
use futures::channel::{mpsc, oneshot};
use futures::future::FutureExt;
use futures::stream::{self, Stream, StreamExt};

/// Sends its number when dropped.
struct Guard(u32, mpsc::UnboundedSender<u32>);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.1.unbounded_send(self.0);
    }
}

struct Setup {
    pulled: Arc<AtomicUsize>,
    fail: oneshot::Sender<()>,
    go: oneshot::Sender<()>,
    dropped: mpsc::UnboundedReceiver<u32>,
}

/// Twenty jobs: job 0 fails when told to; jobs 1 to 3 return `Ok` when told to go, except
/// job 2, which fails too; later jobs return `Ok` at once. Each job reports its drop.
fn jobs() -> (
    impl Stream<Item = impl Future<Output = Result<u32, String>>>,
    Setup,
) {
    let pulled = Arc::new(AtomicUsize::new(0));
    let (fail_tx, fail_rx) = oneshot::channel::<()>();
    let (go_tx, go_rx) = oneshot::channel::<()>();
    let (dropped_tx, dropped_rx) = mpsc::unbounded();
    let (fail, go) = (fail_rx.shared(), go_rx.shared());
    let tasks = stream::iter(0..20u32).map({
        let pulled = Arc::clone(&pulled);
        move |n| {
            pulled.fetch_add(1, Ordering::SeqCst);
            let guard = Guard(n, dropped_tx.clone());
            let (fail, go) = (fail.clone(), go.clone());
            async move {
                let _guard = guard;
                match n {
                    0 => {
                        let _ = fail.await;
                        Err("job 0 failed".to_string())
                    }
                    1..=3 => {
                        let _ = go.await;
                        if n == 2 {
                            Err("job 2 failed".to_string())
                        } else {
                            Ok(n)
                        }
                    }
                    _ => Ok(n),
                }
            }
        }
    });
    let setup = Setup {
        pulled,
        fail: fail_tx,
        go: go_tx,
        dropped: dropped_rx,
    };
    (tasks, setup)
}

/// Polls once, so that the first `limit` jobs are pulled and started.
async fn start<S: Stream + Unpin>(stream: &mut S) {
    futures::future::poll_fn(|cx| {
        assert!(stream.poll_next_unpin(cx).is_pending());
        Poll::Ready(())
    })
    .await;
}

#[test]
fn by_default_the_error_comes_at_once_and_the_rest_is_dropped() {
    on_all_runtimes(|_| async {
        let (tasks, mut setup) = jobs();
        let mut outputs: TryBoundedUnordered<_> = try_run_bounded(tasks, 4);
        let handle = outputs.handle();
        start(&mut outputs).await;
        assert_eq!(setup.pulled.load(Ordering::SeqCst), 4);
        assert_eq!(handle.in_flight(), 4);
        setup.fail.send(()).unwrap();
        assert_eq!(outputs.next().await, Some(Err("job 0 failed".to_string())));
        // Jobs 1 to 3 were dropped without finishing, right away.
        let mut dropped: Vec<u32> = Vec::new();
        while let Ok(n) = setup.dropped.try_recv() {
            dropped.push(n);
        }
        dropped.sort();
        assert_eq!(dropped, [0, 1, 2, 3]);
        assert_eq!(outputs.in_flight(), 0);
        // The handle agrees: the futures it counted are gone.
        assert_eq!(handle.in_flight(), 0);
        assert_eq!(outputs.next().await, None);
        // Nothing was pulled after the error, not even into job 0's freed slot.
        assert_eq!(setup.pulled.load(Ordering::SeqCst), 4);
        drop(setup.go);
    });
}

#[test]
fn on_request_the_futures_in_flight_finish_and_the_error_comes_last() {
    on_all_runtimes(|_| async {
        let (tasks, mut setup) = jobs();
        let mut outputs = tasks.try_run_bounded(4).finish_in_flight_on_error();
        start(&mut outputs).await;
        setup.fail.send(()).unwrap();
        setup.go.send(()).unwrap();
        let mut rest = Vec::new();
        while let Some(output) = outputs.next().await {
            rest.push(output);
        }
        // The `Ok` outputs of jobs 1 and 3 (in either order), then the first error; job 2's
        // later error is dropped.
        let last = rest.pop();
        rest.sort();
        assert_eq!(rest, [Ok(1), Ok(3)]);
        assert_eq!(last, Some(Err("job 0 failed".to_string())));
        assert_eq!(setup.pulled.load(Ordering::SeqCst), 4);
        let mut dropped = Vec::new();
        while let Ok(n) = setup.dropped.try_recv() {
            dropped.push(n);
        }
        dropped.sort();
        assert_eq!(dropped, [0, 1, 2, 3]);
    });
}

#[test]
fn without_errors_every_output_comes() {
    on_all_runtimes(|_| async {
        let tasks = stream::iter(0..50u32).map(|n| async move { Ok::<_, String>(n) });
        let mut outputs: Vec<u32> = try_run_bounded(tasks, 7)
            .map(|output| output.unwrap())
            .collect()
            .await;
        outputs.sort();
        assert_eq!(outputs, (0..50).collect::<Vec<_>>());
    });
}

#[test]
fn an_error_ready_at_once_stops_the_pulls_within_the_same_poll() {
    on_all_runtimes(|_| async {
        for finish_in_flight in [false, true] {
            let pulled = Arc::new(AtomicUsize::new(0));
            // Job 2 fails as soon as it is polled, while the adapter fills its eight slots.
            let tasks = stream::iter(0..20u32).map({
                let pulled = Arc::clone(&pulled);
                move |n| {
                    pulled.fetch_add(1, Ordering::SeqCst);
                    async move { if n == 2 { Err(n) } else { Ok(n) } }
                }
            });
            let outputs = try_run_bounded(tasks, 8);
            let outputs = if finish_in_flight {
                outputs.finish_in_flight_on_error()
            } else {
                outputs
            };
            let outputs: Vec<_> = outputs.collect().await;
            assert_eq!(outputs, [Ok(0), Ok(1), Err(2)]);
            assert_eq!(pulled.load(Ordering::SeqCst), 3);
        }
    });
}

//! The `for_each` shape: every output goes through the body, one body at a time; outputs
//! waiting for the body count against the limit; the limit can be changed.

mod common;

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use abstractions::{BoundedStreamExt, for_each_bounded};
use common::{Concurrency, on_all_runtimes};
use futures::FutureExt;
use futures::stream::{self, StreamExt};

#[derive(Default)]
struct Counts {
    pulled: AtomicUsize,
    bodies_started: AtomicUsize,
    bodies_running: AtomicUsize,
    max_bodies_running: AtomicUsize,
    max_ahead: AtomicUsize,
}

#[test]
fn every_output_goes_through_one_body_at_a_time_within_the_limit() {
    on_all_runtimes(|_| async {
        let counts = Arc::new(Counts::default());
        let limit = 3;
        let tasks = stream::iter(0..30u64).map({
            let counts = Arc::clone(&counts);
            move |n| {
                // Pulled but whose body has not started: running, or waiting for the body.
                let pulled = counts.pulled.fetch_add(1, Ordering::SeqCst) + 1;
                let ahead = pulled - counts.bodies_started.load(Ordering::SeqCst);
                counts.max_ahead.fetch_max(ahead, Ordering::SeqCst);
                async move {
                    // Quick jobs, slow bodies: outputs pile up while a body runs.
                    if n % 2 == 0 {
                        common::sleep(Duration::from_millis(1)).await;
                    }
                    n
                }
            }
        });
        let mut seen = Vec::new();
        for_each_bounded(tasks, limit, |n| {
            seen.push(n);
            let counts = Arc::clone(&counts);
            async move {
                counts.bodies_started.fetch_add(1, Ordering::SeqCst);
                let now = counts.bodies_running.fetch_add(1, Ordering::SeqCst) + 1;
                counts.max_bodies_running.fetch_max(now, Ordering::SeqCst);
                common::sleep(Duration::from_millis(2)).await;
                counts.bodies_running.fetch_sub(1, Ordering::SeqCst);
            }
        })
        .await;
        seen.sort();
        assert_eq!(seen, (0..30).collect::<Vec<_>>());
        assert_eq!(counts.max_bodies_running.load(Ordering::SeqCst), 1);
        let ahead = counts.max_ahead.load(Ordering::SeqCst);
        // A slot is refilled just before its output goes to an idle body (as `run_bounded`
        // refills before returning), so that output is the only one beyond the limit.
        assert!(ahead <= limit + 1, "{ahead} pulled ahead of the bodies");
        assert!(ahead >= limit, "{ahead}: the limit was never reached");
    });
}

#[test]
fn a_lowered_limit_holds_while_bodies_run() {
    on_all_runtimes(|_| async {
        let concurrency = Concurrency::default();
        let tasks = stream::iter(0..10u32).map({
            let concurrency = concurrency.clone();
            move |n| {
                let sleep = common::sleep(Duration::from_millis(1));
                concurrency.clone().track(async move {
                    sleep.await;
                    n
                })
            }
        });
        let run = tasks.for_each_bounded(6, |_| common::sleep(Duration::from_millis(1)));
        run.handle().set_limit(1);
        assert_eq!(run.limit(), 1);
        run.await;
        assert_eq!(concurrency.peak(), 1);
    });
}

#[test]
fn a_panic_in_the_body_reaches_the_caller() {
    on_all_runtimes(|_| async {
        let tasks = stream::iter(0..5u32).map(|n| async move { n });
        let run = for_each_bounded(tasks, 2, |n| async move {
            if n == 2 {
                panic!("body {n} failed");
            }
        });
        let payload = AssertUnwindSafe(run).catch_unwind().await.unwrap_err();
        assert_eq!(payload.downcast_ref::<String>().unwrap(), "body 2 failed");
    });
}

#[test]
fn outputs_waiting_for_a_busy_body_count_as_in_flight() {
    on_all_runtimes(|_| async {
        let pulled = Arc::new(AtomicUsize::new(0));
        let tasks = stream::iter(0..10u32).map({
            let pulled = Arc::clone(&pulled);
            move |n| {
                pulled.fetch_add(1, Ordering::SeqCst);
                async move { n }
            }
        });
        let (go_tx, go_rx) = futures::channel::oneshot::channel::<()>();
        let go = go_rx.shared();
        let done = Arc::new(AtomicUsize::new(0));
        let mut run = Box::pin(for_each_bounded(tasks, 4, {
            let done = Arc::clone(&done);
            move |_| {
                let (go, done) = (go.clone(), Arc::clone(&done));
                async move {
                    let _ = go.await;
                    done.fetch_add(1, Ordering::SeqCst);
                }
            }
        }));
        futures::future::poll_fn(|cx| {
            assert!(run.poll_unpin(cx).is_pending());
            std::task::Poll::Ready(())
        })
        .await;
        // The first body waits; four outputs wait for it, and nothing more is pulled.
        assert_eq!(pulled.load(Ordering::SeqCst), 5);
        assert_eq!(run.in_flight(), 4);
        assert_eq!(run.handle().in_flight(), 4);
        go_tx.send(()).unwrap();
        run.await;
        assert_eq!(done.load(Ordering::SeqCst), 10);
    });
}

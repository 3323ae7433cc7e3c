//! The ordered variant: source order, at most `limit` held (waiting outputs included), a panic
//! resumed in its place.

mod common;

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;
use std::time::Duration;

use abstractions::{BoundedStreamExt, run_bounded_ordered};
use common::spawners::with_spawner;
use common::{Concurrency, on_all_runtimes};
use futures::FutureExt;
use futures::stream::{self, StreamExt};

#[test]
fn outputs_come_in_source_order_within_the_limit() {
    on_all_runtimes(|runtime| async move {
        with_spawner(runtime, |spawner| async move {
            for spawn in [false, true] {
                let pulled = Arc::new(AtomicUsize::new(0));
                let tasks = stream::iter(0..40u64).map({
                    let pulled = Arc::clone(&pulled);
                    move |n| {
                        pulled.fetch_add(1, Ordering::SeqCst);
                        // Later futures often finish first.
                        common::sleep(Duration::from_millis((n * 7) % 5)).map(move |()| n)
                    }
                });
                let limit = 4;
                let mut outputs = if spawn {
                    tasks
                        .spawn_each(spawner.clone())
                        .run_bounded_ordered(limit)
                        .boxed()
                } else {
                    tasks.run_bounded_ordered(limit).boxed()
                };
                let mut seen = Vec::new();
                while let Some(n) = outputs.next().await {
                    seen.push(n);
                    let ahead = pulled.load(Ordering::SeqCst) - seen.len();
                    assert!(ahead <= limit, "{ahead} pulled and not returned");
                }
                assert_eq!(seen, (0..40).collect::<Vec<_>>());
            }
        })
        .await;
    });
}

#[test]
fn outputs_waiting_for_a_slow_head_count_against_the_limit() {
    on_all_runtimes(|_| async {
        let (head_tx, head_rx) = futures::channel::oneshot::channel::<()>();
        let mut head_rx = Some(head_rx);
        let pulled = Arc::new(AtomicUsize::new(0));
        // Future 0 waits for the test; the others finish at once.
        let tasks = stream::iter(0..20u32).map({
            let pulled = Arc::clone(&pulled);
            move |n| {
                pulled.fetch_add(1, Ordering::SeqCst);
                let head = head_rx.take();
                async move {
                    if let Some(head) = head {
                        head.await.unwrap();
                    }
                    n
                }
            }
        });
        let mut outputs = run_bounded_ordered(tasks, 5);
        futures::future::poll_fn(|cx| {
            assert!(outputs.poll_next_unpin(cx).is_pending());
            Poll::Ready(())
        })
        .await;
        // Four finished outputs wait for the head: nothing more is pulled.
        assert_eq!(pulled.load(Ordering::SeqCst), 5);
        assert_eq!(outputs.in_flight(), 5);
        assert_eq!(outputs.handle().in_flight(), 5);
        head_tx.send(()).unwrap();
        assert_eq!(outputs.next().await, Some(0));
        assert_eq!(
            outputs.collect::<Vec<_>>().await,
            (1..20).collect::<Vec<_>>()
        );
    });
}

#[test]
fn a_panic_is_resumed_in_its_place_and_the_stream_goes_on() {
    on_all_runtimes(|_| async {
        let tasks = stream::iter(0..6u32).map(|n| async move {
            common::sleep(Duration::from_millis(u64::from(6 - n))).await;
            if n == 2 {
                panic!("job {n} failed");
            }
            n
        });
        let mut outputs = tasks.run_bounded_ordered(3);
        assert_eq!(outputs.next().await, Some(0));
        assert_eq!(outputs.next().await, Some(1));
        let payload = AssertUnwindSafe(outputs.next())
            .catch_unwind()
            .await
            .unwrap_err();
        assert_eq!(payload.downcast_ref::<String>().unwrap(), "job 2 failed");
        assert_eq!(outputs.collect::<Vec<_>>().await, [3, 4, 5]);
    });
}

#[test]
fn a_lowered_limit_is_followed() {
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
        let outputs = run_bounded_ordered(tasks, 8);
        outputs.handle().set_limit(2);
        assert_eq!(
            outputs.collect::<Vec<_>>().await,
            (0..10).collect::<Vec<_>>()
        );
        assert!(concurrency.peak() <= 2);
    });
}

#[test]
#[should_panic(expected = "`limit` must be greater than 0")]
fn a_zero_limit_panics() {
    let _ = run_bounded_ordered(stream::iter([async { 1 }]), 0);
}

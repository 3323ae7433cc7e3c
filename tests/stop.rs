//! Tests of `StopHandle`: stopping wakes every waiter, from any thread, and is final.

mod common;

use std::time::Duration;

use abstractions::{BoundedStreamExt, StopHandle};
use common::on_all_runtimes;
use futures::stream::{self, StreamExt};

#[test]
fn stop_from_another_thread_wakes_every_waiter() {
    on_all_runtimes(|_| async {
        let stop = StopHandle::new();
        let waiters: Vec<_> = (0..3).map(|_| stop.stopped()).collect();
        let remote = stop.clone();
        let thread = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            remote.stop();
        });
        futures::future::join_all(waiters).await;
        assert!(stop.is_stopped());
        // Final: a waiter made afterwards completes at once.
        stop.stopped().await;
        thread.join().unwrap();
    });
}

#[test]
fn a_stopped_source_lets_run_bounded_finish_what_is_in_flight() {
    on_all_runtimes(|_| async {
        let stop = StopHandle::new();
        let trigger = stop.clone();
        // An endless source; the fifth output stops it. What was pulled still finishes.
        let tasks = stream::iter(0u64..)
            .take_until(stop.stopped())
            .map(|n| async move {
                common::sleep(Duration::from_millis(1)).await;
                n
            });
        let mut outputs = Vec::new();
        let mut stream = tasks.run_bounded(4);
        while let Some(n) = stream.next().await {
            outputs.push(n);
            if outputs.len() == 5 {
                trigger.stop();
            }
        }
        outputs.sort();
        // Nothing lost: the outputs are 0..k without a gap, and at most a limit's worth more.
        let k = outputs.len() as u64;
        assert_eq!(outputs, (0..k).collect::<Vec<_>>());
        assert!((5..=5 + 4).contains(&k), "{k} outputs");
    });
}

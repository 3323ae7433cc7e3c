//! A panic that unwinds out of `run_bounded` while other futures were woken at the same time
//! loses none of their wake-ups: the stream stays usable and finishes.

mod common;

use std::panic::AssertUnwindSafe;
use std::task::Poll;

use abstractions::BoundedStreamExt;
use common::on_all_runtimes;
use futures::FutureExt;
use futures::stream::{self, StreamExt};

#[test]
fn futures_woken_with_a_panicking_one_still_finish() {
    on_all_runtimes(|_| async {
        let (go_tx, go_rx) = futures::channel::oneshot::channel::<()>();
        let go = go_rx.shared();
        // Every future waits for `go`, so all are woken at once; the first then panics.
        let tasks = stream::iter(0..8u32).map(move |n| {
            let go = go.clone();
            async move {
                let _ = go.await;
                if n == 0 {
                    panic!("job 0 failed");
                }
                n
            }
        });
        let mut outputs = tasks.run_bounded(8);
        // One poll starts all eight; they wait.
        futures::future::poll_fn(|cx| {
            assert!(outputs.poll_next_unpin(cx).is_pending());
            Poll::Ready(())
        })
        .await;
        go_tx.send(()).unwrap();
        let mut seen = Vec::new();
        let mut panics = 0;
        loop {
            match AssertUnwindSafe(outputs.next()).catch_unwind().await {
                Ok(Some(n)) => seen.push(n),
                Ok(None) => break,
                Err(_) => panics += 1,
            }
        }
        seen.sort();
        assert_eq!(panics, 1);
        assert_eq!(seen, [1, 2, 3, 4, 5, 6, 7]);
    });
}

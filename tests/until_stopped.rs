//! The graceful stop: once stopped, nothing more is pulled, what is in flight finishes and comes
//! out, and the stream ends; an idle source is woken by the stop.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use abstractions::{BoundedStreamExt, StopHandle};
use common::on_all_runtimes;
use common::spawners::with_spawner;
use futures::stream::{self, StreamExt};

#[test]
fn a_stop_ends_the_pulls_and_lets_the_futures_in_flight_finish() {
    on_all_runtimes(|runtime| async move {
        with_spawner(runtime, |spawner| async move {
            for spawn in [false, true] {
                let stop = StopHandle::new();
                let pulled = Arc::new(AtomicUsize::new(0));
                let tasks = stream::iter(0u64..)
                    .map({
                        let pulled = Arc::clone(&pulled);
                        move |n| {
                            pulled.fetch_add(1, Ordering::SeqCst);
                            async move {
                                common::sleep(Duration::from_millis(1 + n % 2)).await;
                                n
                            }
                        }
                    })
                    .until_stopped(&stop);
                let mut outputs = if spawn {
                    tasks.spawn_each(spawner.clone()).run_bounded(4).boxed()
                } else {
                    tasks.run_bounded(4).boxed()
                };
                let mut seen = Vec::new();
                let mut pulled_at_stop = None;
                while let Some(n) = outputs.next().await {
                    seen.push(n);
                    if seen.len() == 6 {
                        stop.stop();
                        pulled_at_stop = Some(pulled.load(Ordering::SeqCst));
                    }
                }
                let pulled_at_stop = pulled_at_stop.expect("six outputs came");
                assert_eq!(
                    pulled.load(Ordering::SeqCst),
                    pulled_at_stop,
                    "pulled after the stop"
                );
                // Everything pulled came out: the outputs are 0..k without a gap.
                seen.sort();
                assert_eq!(seen, (0..pulled_at_stop as u64).collect::<Vec<_>>());
                assert!(pulled_at_stop <= 6 + 4);
            }
        })
        .await;
    });
}

#[test]
fn a_stop_ends_a_source_that_is_waiting() {
    on_all_runtimes(|_| async {
        let stop = StopHandle::new();
        // A source that yields three jobs, then waits for ever (its sender stays alive).
        let (tx, rx) = futures::channel::mpsc::unbounded::<u32>();
        for n in 0..3 {
            tx.unbounded_send(n).unwrap();
        }
        let tasks = rx.map(|n| async move { n }).until_stopped(&stop);
        let remote = stop.clone();
        let thread = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            remote.stop();
        });
        let mut seen: Vec<u32> = tasks.for_each_bounded_collect().await;
        seen.sort();
        assert_eq!(seen, [0, 1, 2]);
        thread.join().unwrap();
        drop(tx);
    });
}

/// Collects through `for_each_bounded`, to stop that shape as well.
trait CollectExt: futures::Stream + Sized {
    async fn for_each_bounded_collect<T>(self) -> Vec<T>
    where
        Self::Item: Future<Output = T>,
    {
        let mut seen = Vec::new();
        self.for_each_bounded(2, |n| {
            seen.push(n);
            async {}
        })
        .await;
        seen
    }
}

impl<S: futures::Stream> CollectExt for S {}

//! The stall of futures-rs issue 2387, without timing: the consumer's body waits for work that
//! only the futures in flight can do. With plain `run_bounded` they never do it (nobody polls
//! them); in spawn mode and in the `for_each` shape they do.

mod common;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use abstractions::BoundedStreamExt;
use common::on_all_runtimes;
use common::spawners::with_spawner;
use futures::channel::{mpsc, oneshot};
use futures::future::{self, Either, FutureExt};
use futures::stream::{self, Stream, StreamExt};

/// Job 0 finishes at once. Jobs 1 to 3 wait for `go`, then report on `acks` and finish.
fn jobs(
    go: oneshot::Receiver<()>,
    acks: mpsc::UnboundedSender<u32>,
) -> impl Stream<Item = impl Future<Output = u32> + Send + 'static> + Send + 'static {
    let go = go.shared();
    stream::iter(0..4u32).map(move |n| {
        let (go, acks) = (go.clone(), acks.clone());
        async move {
            if n > 0 {
                let _ = go.await;
                acks.unbounded_send(n).expect("the test holds the receiver");
            }
            n
        }
    })
}

/// The body for the first output: lets jobs 1 to 3 go, and waits (at most `patience`) for
/// their three reports. Returns how many arrived.
async fn wait_for_the_others(
    go: oneshot::Sender<()>,
    acks: &mut mpsc::UnboundedReceiver<u32>,
    patience: Duration,
) -> usize {
    go.send(()).expect("the jobs hold the receiver");
    let mut arrived = 0;
    let reports = async {
        while arrived < 3 {
            acks.next().await.expect("the jobs hold senders");
            arrived += 1;
        }
    };
    match future::select(Box::pin(reports), Box::pin(common::sleep(patience))).await {
        Either::Left(_) | Either::Right(_) => {}
    }
    arrived
}

#[test]
fn for_each_bounded_keeps_the_futures_going_while_the_body_waits() {
    on_all_runtimes(|_| async {
        let (go_tx, go_rx) = oneshot::channel();
        let (acks_tx, acks_rx) = mpsc::unbounded();
        let mut first = Some((go_tx, acks_rx));
        let arrived = Arc::new(AtomicUsize::new(usize::MAX));
        let mut outputs = Vec::new();
        jobs(go_rx, acks_tx)
            .for_each_bounded(4, |n| {
                outputs.push(n);
                let first = first.take();
                let arrived = Arc::clone(&arrived);
                async move {
                    if let Some((go, mut acks)) = first {
                        let n = wait_for_the_others(go, &mut acks, common::WATCHDOG).await;
                        arrived.store(n, Ordering::SeqCst);
                    }
                }
            })
            .await;
        let arrived = Some(arrived.load(Ordering::SeqCst));
        assert_eq!(arrived, Some(3));
        assert_eq!(outputs.len(), 4);
    });
}

#[test]
fn spawn_mode_keeps_the_futures_going_while_the_consumer_waits() {
    on_all_runtimes(|runtime| async move {
        with_spawner(runtime, |spawner| async move {
            let (go_tx, go_rx) = oneshot::channel();
            let (acks_tx, mut acks_rx) = mpsc::unbounded();
            let mut outputs = jobs(go_rx, acks_tx).run_bounded_spawn(4, spawner);
            let mut go_tx = Some(go_tx);
            let mut count = 0;
            while let Some(_n) = outputs.next().await {
                count += 1;
                if let Some(go) = go_tx.take() {
                    let arrived = wait_for_the_others(go, &mut acks_rx, common::WATCHDOG).await;
                    assert_eq!(arrived, 3);
                }
            }
            assert_eq!(count, 4);
        })
        .await;
    });
}

/// The control: in the plain loop the futures in flight are not polled while the body waits,
/// so none of the reports can arrive, however long the body waits (100 ms here).
#[test]
fn plain_run_bounded_stalls_while_the_body_waits() {
    on_all_runtimes(|_| async {
        let (go_tx, go_rx) = oneshot::channel();
        let (acks_tx, mut acks_rx) = mpsc::unbounded();
        let mut outputs = jobs(go_rx, acks_tx).run_bounded(4);
        let first = outputs.next().await;
        assert_eq!(first, Some(0));
        let arrived = wait_for_the_others(go_tx, &mut acks_rx, Duration::from_millis(100)).await;
        assert_eq!(arrived, 0);
        // Polled again, they finish.
        assert_eq!(outputs.count().await, 3);
    });
}

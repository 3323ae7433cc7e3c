//! Spawn mode: the bound, lazy pull and the changeable limit hold as in the default mode;
//! dropping the stream cancels the tasks; a task's panic reaches the consumer.

mod common;

use std::panic::AssertUnwindSafe;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use abstractions::{BoundedStreamExt, run_bounded_spawn};
use common::on_all_runtimes;
use common::spawners::{SmolLocalSpawner, TokioLocalSpawner, with_spawner};
use futures::FutureExt;
use futures::channel::mpsc;
use futures::executor::LocalPool;
use futures::stream::{self, StreamExt};

/// Counts the futures running at once, and the most ever seen.
#[derive(Default)]
struct Probe {
    pulled: AtomicUsize,
    running: AtomicUsize,
    max_running: AtomicUsize,
}

impl Probe {
    async fn job(self: Arc<Self>, n: u64) -> u64 {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_running.fetch_max(now, Ordering::SeqCst);
        common::sleep(Duration::from_millis(1 + n % 3)).await;
        self.running.fetch_sub(1, Ordering::SeqCst);
        n
    }
}

#[test]
fn spawn_mode_keeps_the_bound_and_pulls_lazily() {
    on_all_runtimes(|runtime| async move {
        with_spawner(runtime, |spawner| async move {
            let probe = Arc::new(Probe::default());
            let tasks = stream::iter(0..40u64).map({
                let probe = Arc::clone(&probe);
                move |n| {
                    probe.pulled.fetch_add(1, Ordering::SeqCst);
                    Arc::clone(&probe).job(n)
                }
            });
            let mut outputs = tasks.run_bounded_spawn(4, spawner);
            let mut seen = Vec::new();
            while let Some(n) = outputs.next().await {
                seen.push(n);
                // Lazy pull: never more than the limit ahead of what was returned.
                let pulled = probe.pulled.load(Ordering::SeqCst);
                assert!(
                    pulled <= seen.len() + 4,
                    "{pulled} pulled, {} returned",
                    seen.len()
                );
                assert!(outputs.in_flight() <= 4);
            }
            seen.sort();
            assert_eq!(seen, (0..40).collect::<Vec<_>>());
            let max = probe.max_running.load(Ordering::SeqCst);
            assert!((1..=4).contains(&max), "{max} ran at once");
        })
        .await;
    });
}

#[test]
fn spawn_mode_follows_a_lowered_limit() {
    on_all_runtimes(|runtime| async move {
        with_spawner(runtime, |spawner| async move {
            let probe = Arc::new(Probe::default());
            let tasks = stream::iter(0..12u64).map({
                let probe = Arc::clone(&probe);
                move |n| Arc::clone(&probe).job(n)
            });
            let outputs = run_bounded_spawn(tasks, 8, spawner);
            outputs.handle().set_limit(1);
            assert_eq!(outputs.count().await, 12);
            assert_eq!(probe.max_running.load(Ordering::SeqCst), 1);
        })
        .await;
    });
}

/// Sends its number when dropped.
struct Guard(usize, mpsc::UnboundedSender<usize>);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.1.unbounded_send(self.0);
    }
}

#[test]
fn dropping_the_stream_cancels_every_spawned_task() {
    on_all_runtimes(|runtime| async move {
        with_spawner(runtime, |spawner| async move {
            let (dropped_tx, mut dropped_rx) = mpsc::unbounded();
            let started = Arc::new(AtomicUsize::new(0));
            // Job 0 finishes; the others never would.
            let tasks = stream::iter(0..100usize).map({
                let started = Arc::clone(&started);
                move |n| {
                    let guard = Guard(n, dropped_tx.clone());
                    let started = Arc::clone(&started);
                    async move {
                        let _guard = guard;
                        started.fetch_add(1, Ordering::SeqCst);
                        if n != 0 {
                            futures::future::pending::<()>().await;
                        }
                        n
                    }
                }
            });
            let mut outputs = tasks.run_bounded_spawn(5, spawner);
            assert_eq!(outputs.next().await, Some(0));
            assert_eq!(dropped_rx.next().await, Some(0));
            // Jobs 1 to 5 are in flight (the slot of job 0 was refilled).
            drop(outputs);
            let mut cancelled: Vec<usize> = Vec::new();
            while cancelled.len() < 5 {
                cancelled.push(dropped_rx.next().await.expect("a guard of each job"));
            }
            cancelled.sort();
            assert_eq!(cancelled, [1, 2, 3, 4, 5]);
            // Nothing past the limit was ever made or started.
            assert_eq!(dropped_rx.next().await, None);
            assert!(started.load(Ordering::SeqCst) <= 6);
        })
        .await;
    });
}

#[test]
fn a_panic_in_a_task_reaches_the_consumer() {
    on_all_runtimes(|runtime| async move {
        with_spawner(runtime, |spawner| async move {
            let tasks = stream::iter(0..10u32).map(|n| async move {
                if n == 3 {
                    panic!("job {n} failed");
                }
                n
            });
            let mut outputs = tasks.run_bounded_spawn(2, spawner);
            let mut seen = Vec::new();
            let payload = loop {
                match AssertUnwindSafe(outputs.next()).catch_unwind().await {
                    Ok(Some(n)) => seen.push(n),
                    Ok(None) => panic!("the panic of job 3 never arrived"),
                    Err(payload) => break payload,
                }
            };
            let message = payload
                .downcast_ref::<String>()
                .expect("a formatted message");
            assert_eq!(message, "job 3 failed");
            // The stream stays usable, as in the default mode.
            seen.extend(outputs.collect::<Vec<_>>().await);
            seen.sort();
            assert_eq!(seen, [0, 1, 2, 4, 5, 6, 7, 8, 9]);
        })
        .await;
    });
}

/// `!Send` futures on `futures`' `LocalPool`, smol's `LocalExecutor` and tokio's `LocalSet`.
#[test]
fn local_spawn_runs_futures_that_are_not_send() {
    fn tasks() -> impl futures::Stream<Item = impl Future<Output = Rc<u32>>> {
        stream::iter(0..20u32).map(|n| async move {
            let n = Rc::new(n);
            common::sleep(Duration::from_millis(1)).await;
            n
        })
    }
    let sum = |outputs: Vec<Rc<u32>>| outputs.iter().map(|n| **n).sum::<u32>();

    let mut pool = LocalPool::new();
    let outputs = pool.run_until(tasks().run_bounded_spawn_local(3, pool.spawner()).collect());
    assert_eq!(sum(outputs), 190);

    let executor = Rc::new(smol::LocalExecutor::new());
    let spawner = SmolLocalSpawner(Rc::clone(&executor));
    let outputs =
        smol::block_on(executor.run(tasks().run_bounded_spawn_local(3, spawner).collect()));
    assert_eq!(sum(outputs), 190);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let local = tokio::task::LocalSet::new();
    let outputs = local.block_on(
        &runtime,
        tasks()
            .spawn_each_local(TokioLocalSpawner)
            .run_bounded(3)
            .collect(),
    );
    assert_eq!(sum(outputs), 190);
}

/// A spawner whose executor was shut down.
struct ShutDown;

impl futures::task::Spawn for ShutDown {
    fn spawn_obj(
        &self,
        _future: futures::future::FutureObj<'static, ()>,
    ) -> Result<(), futures::task::SpawnError> {
        Err(futures::task::SpawnError::shutdown())
    }
}

#[test]
fn a_refused_spawn_panics_with_a_clear_message() {
    let tasks = stream::iter(0..3u32).map(|n| async move { n });
    let mut outputs = run_bounded_spawn(tasks, 2, ShutDown);
    let payload = std::panic::catch_unwind(AssertUnwindSafe(|| {
        futures::executor::block_on(outputs.next())
    }))
    .unwrap_err();
    let message = payload
        .downcast_ref::<String>()
        .expect("a formatted message");
    assert!(
        message.starts_with("the executor refused to spawn a task"),
        "{message}"
    );
}

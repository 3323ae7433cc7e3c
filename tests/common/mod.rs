//! Test support shared by every integration test: one body, every runtime, and a watchdog.
#![allow(dead_code, unreachable_pub)]

pub mod crash;
pub mod spawners;

use std::future::Future;
use std::sync::mpsc;
use std::time::Duration;

/// How long one test body may run on one runtime before it counts as hung. A guard against
/// hangs, not a speed assertion: it is far above what any test needs.
pub const WATCHDOG: Duration = Duration::from_secs(60);

/// The executors every integration test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runtime {
    Smol,
    TokioCurrentThread,
    TokioMultiThread,
}

impl Runtime {
    pub const ALL: [Runtime; 3] = [
        Runtime::Smol,
        Runtime::TokioCurrentThread,
        Runtime::TokioMultiThread,
    ];

    /// Runs `future` to completion on this runtime, on the current thread.
    pub fn block_on<F: Future>(self, future: F) -> F::Output {
        match self {
            Runtime::Smol => smol::block_on(future),
            Runtime::TokioCurrentThread => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("build tokio current-thread runtime")
                .block_on(future),
            Runtime::TokioMultiThread => tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("build tokio multi-thread runtime")
                .block_on(future),
        }
    }
}

/// Runs the test body made by `body` once on each runtime of [`Runtime::ALL`], each under the
/// [`WATCHDOG`]. A panic in the body fails the test and names the runtime.
pub fn on_all_runtimes<F, Fut>(body: F)
where
    F: Fn(Runtime) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = ()>,
{
    for runtime in Runtime::ALL {
        let body = body.clone();
        with_watchdog(&format!("{runtime:?}"), move || {
            runtime.block_on(body(runtime))
        });
    }
}

/// Runs `f` on a thread of its own; fails if it panics (re-raising its panic) or if it has not
/// finished after [`WATCHDOG`].
pub fn with_watchdog<T, F>(name: &str, f: F) -> T
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let thread = std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            // Sent on drop, so a panicking body also reports that it ended.
            struct Done(mpsc::Sender<()>);
            impl Drop for Done {
                fn drop(&mut self) {
                    let _ = self.0.send(());
                }
            }
            let _done = Done(done_tx);
            f()
        })
        .expect("spawn test thread");
    if done_rx.recv_timeout(WATCHDOG).is_err() {
        panic!("test body on {name} did not finish within {WATCHDOG:?}: it hangs");
    }
    match thread.join() {
        Ok(value) => value,
        Err(panic) => {
            eprintln!("test body failed on {name}");
            std::panic::resume_unwind(panic)
        }
    }
}

/// A runtime-agnostic sleep: async-io's timer works under smol and tokio alike.
pub async fn sleep(duration: Duration) {
    smol::Timer::after(duration).await;
}

/// Counts the futures it runs that are running at once, and the most there ever were: the
/// in-flight bound of a test, seen from the futures' side.
#[derive(Clone, Default)]
pub struct Concurrency {
    running: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    peak: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Concurrency {
    /// Runs `future`, counted as running until it finishes.
    pub async fn track<F: Future>(self, future: F) -> F::Output {
        use std::sync::atomic::Ordering::SeqCst;
        let now = self.running.fetch_add(1, SeqCst) + 1;
        self.peak.fetch_max(now, SeqCst);
        let output = future.await;
        self.running.fetch_sub(1, SeqCst);
        output
    }

    /// The most futures that ran at once.
    pub fn peak(&self) -> usize {
        self.peak.load(std::sync::atomic::Ordering::SeqCst)
    }
}

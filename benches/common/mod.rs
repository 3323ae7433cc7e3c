//! Pieces every benchmark shares: the median, the futures of the matrices, and running the
//! Python library's side of a comparison.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::future::{Future, Ready};
use std::path::Path;
use std::pin::Pin;
use std::process::Command;
use std::task::{Context, Poll};

/// The median (of an even count, the mean of the middle two).
pub fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let mid = xs.len() / 2;
    if xs.len() % 2 == 1 {
        xs[mid]
    } else {
        (xs[mid - 1] + xs[mid]) / 2.0
    }
}

/// Wakes its own waker and is pending once, then returns its value: `tokio::task::yield_now`
/// without a runtime.
pub struct YieldOnce {
    value: u64,
    yielded: bool,
}

impl Future for YieldOnce {
    type Output = u64;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u64> {
        if self.yielded {
            Poll::Ready(self.value)
        } else {
            self.yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

pub fn ready(i: u64) -> Ready<u64> {
    std::future::ready(i)
}

pub fn yield_once(i: u64) -> YieldOnce {
    YieldOnce {
        value: i,
        yielded: false,
    }
}

/// Runs `benches/python/<script>` with `args` on the Python of `PYTHON` (or `python3`), and
/// returns what it printed; `None`, with the reason on stderr, if it could not run (no Python,
/// or no `abstractions` package).
pub fn run_python(script: &str, args: &[&OsStr]) -> Option<String> {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("benches/python")
        .join(script);
    let output = Command::new(python).arg(script).args(args).output().ok()?;
    if !output.status.success() {
        eprintln!(
            "python skipped: {}",
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
        return None;
    }
    Some(String::from_utf8_lossy(&output.stdout).into_owned())
}

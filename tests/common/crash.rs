//! Crash-test support. A crash test starts its own test binary as a child process that runs
//! one test of it (the job), on the runtime and with the fault point the parent chose, and
//! kills it with SIGKILL at random moments or lets it abort at a named point.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::Runtime;

/// The runtimes a child runs on, by run number.
const RUNTIMES: [&str; 3] = ["smol", "tokio", "tokio-current"];

/// In a child: the runtime its parent chose.
pub fn child_runtime() -> Runtime {
    match std::env::var("ABSTRACTIONS_CRASH_RUNTIME").as_deref() {
        Ok("tokio") => Runtime::TokioMultiThread,
        Ok("tokio-current") => Runtime::TokioCurrentThread,
        _ => Runtime::Smol,
    }
}

/// A command that runs the test `job` of this binary alone, on runtime number `run % 3`, with
/// the fault point `abort_at` armed (`ABSTRACTIONS_ABORT_AT`) or none. Its output is dropped.
pub fn child_command(job: &str, run: usize, abort_at: Option<&str>) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([job, "--exact", "--test-threads", "1", "--nocapture"])
        .env("ABSTRACTIONS_CRASH_RUNTIME", RUNTIMES[run % RUNTIMES.len()])
        .env_remove("ABSTRACTIONS_ABORT_AT")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(point) = abort_at {
        command.env("ABSTRACTIONS_ABORT_AT", point);
    }
    command
}

/// Kills `child` with SIGKILL `delay` after it is at work: once `at_work` says so, so that a
/// slow start (a loaded machine) does not use up the delay. A child that ends first, or is
/// not at work after 200 ms, is killed anyway.
pub fn kill_when_at_work(child: &mut Child, at_work: impl Fn() -> bool, delay: Duration) {
    for _ in 0..200 {
        if at_work() || child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(delay);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

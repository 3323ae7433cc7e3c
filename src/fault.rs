//! Named fault points for the crash tests: a test-only switch.
//!
//! When the environment variable `ABSTRACTIONS_ABORT_AT` names a point, the process aborts
//! there, so that the crash tests hit narrow windows (a half-written line, a half-done repair)
//! every time instead of by luck. Without the variable, a point costs one load of a
//! `OnceLock`.

use std::sync::OnceLock;

/// The variable that arms a fault point.
const VARIABLE: &str = "ABSTRACTIONS_ABORT_AT";

fn armed() -> Option<&'static str> {
    static ARMED: OnceLock<Option<String>> = OnceLock::new();
    ARMED
        .get_or_init(|| std::env::var(VARIABLE).ok())
        .as_deref()
}

/// Whether the point `name` is armed.
pub(crate) fn is_armed(name: &str) -> bool {
    armed() == Some(name)
}

/// Aborts the process if the point `name` is armed.
pub(crate) fn point(name: &str) {
    if is_armed(name) {
        std::process::abort();
    }
}

//! What the resumable-file functions share: their options, their progress and their report.

use std::fmt;

use super::{Durability, Error};
use crate::StopHandle;

/// What to do with an inconsistency found in an existing file while resuming: a row without
/// the key column, with a key that is not expected, or past the number of rows its key needs.
///
/// This is the Python library's `on_error`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnError {
    /// Stop with an error naming the file, the line and the key, before changing anything.
    /// The default.
    #[default]
    Raise,
    /// Go on, and return the problems in the run's [`Report`]; the offending rows stay in the
    /// file. The Python library's `"print"`: a library does not print, it reports.
    Report,
}

/// How far a run is, passed to the progress callback of [`Options::progress`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Progress {
    /// Rows found in the file when the run started, that count towards the job.
    pub resumed: u64,
    /// Rows saved by this run so far.
    pub saved: u64,
    /// Rows left out because the call that makes them failed (with [`OnError::Report`]).
    pub failed: u64,
    /// Rows the finished file holds: the number of keys times the rows per key.
    pub total: u64,
}

impl Progress {
    /// Rows done: resumed, saved or failed.
    pub fn done(&self) -> u64 {
        self.resumed + self.saved + self.failed
    }
}

/// What a run did.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Report {
    /// Rows found in the file when the run started, that count towards the job.
    pub rows_resumed: u64,
    /// Rows this run saved.
    pub rows_written: u64,
    /// Rows the file still lacks: non-zero if the run was stopped, if the generator made
    /// fewer rows than it was asked for, or if calls failed (with [`OnError::Report`]).
    pub rows_missing: u64,
    /// Calls of the function made by this run (`map_by_key_jsonl_file`).
    pub calls: u64,
    /// Bytes of a torn last line (left by a run that was killed mid-write) that were cut off
    /// before resuming; their rows were generated again.
    pub torn_bytes: u64,
    /// The inconsistencies found in the existing file, with [`OnError::Report`]. Each names
    /// the file, the line and the key.
    pub problems: Vec<Error>,
    /// The run was stopped by a [`StopHandle`] before it had generated every missing row.
    pub stopped: bool,
}

/// The optional settings of a run: the Python library's keyword arguments, and more.
///
/// # Examples
///
/// ```
/// use abstractions::jsonl::{Durability, OnError, Options};
/// use abstractions::StopHandle;
///
/// let stop = StopHandle::new();
/// let options = Options::new()
///     .on_error(OnError::Report)
///     .durability(Durability::SyncOnFinish)
///     .stop(stop.clone())
///     .progress(|p| eprintln!("{}/{}", p.done(), p.total));
/// # drop(options);
/// ```
pub struct Options<'a> {
    pub(crate) on_error: OnError,
    pub(crate) progress: Option<Box<dyn FnMut(Progress) + Send + 'a>>,
    pub(crate) stop: StopHandle,
    pub(crate) durability: Durability,
    pub(crate) window: usize,
}

impl Default for Options<'_> {
    fn default() -> Self {
        Options {
            on_error: OnError::default(),
            progress: None,
            stop: StopHandle::default(),
            durability: Durability::default(),
            window: super::map_by_key::DEFAULT_WINDOW,
        }
    }
}

impl<'a> Options<'a> {
    /// The defaults: [`OnError::Raise`], no progress callback, no stop handle,
    /// [`Durability::Buffered`].
    ///
    /// # Examples
    ///
    /// ```
    /// let options = abstractions::jsonl::Options::new();
    /// # drop(options);
    /// ```
    pub fn new() -> Self {
        Options::default()
    }

    /// What to do with inconsistencies found in an existing file.
    ///
    /// # Examples
    ///
    /// ```
    /// use abstractions::jsonl::{OnError, Options};
    /// let options = Options::new().on_error(OnError::Report);
    /// # drop(options);
    /// ```
    pub fn on_error(mut self, on_error: OnError) -> Self {
        self.on_error = on_error;
        self
    }

    /// A callback after each saved row (called from the task that runs the function; keep it
    /// quick).
    ///
    /// # Examples
    ///
    /// ```
    /// use abstractions::jsonl::Options;
    /// let options = Options::new().progress(|p| {
    ///     let _fraction = p.done() as f64 / p.total as f64;
    /// });
    /// # drop(options);
    /// ```
    pub fn progress(mut self, progress: impl FnMut(Progress) + Send + 'a) -> Self {
        self.progress = Some(Box::new(progress));
        self
    }

    /// A handle that stops the run gracefully: no new work is pulled, the work in flight
    /// finishes and is saved, and the run returns its [`Report`].
    ///
    /// # Examples
    ///
    /// ```
    /// use abstractions::{jsonl::Options, StopHandle};
    /// let stop = StopHandle::new();
    /// let options = Options::new().stop(stop.clone());
    /// // In a Ctrl-C handler: stop.stop();
    /// # drop(options);
    /// ```
    pub fn stop(mut self, stop: StopHandle) -> Self {
        self.stop = stop;
        self
    }

    /// When the output file is synced to disk; see [`Durability`].
    ///
    /// # Examples
    ///
    /// ```
    /// use abstractions::jsonl::{Durability, Options};
    /// let options = Options::new().durability(Durability::SyncOnFinish);
    /// # drop(options);
    /// ```
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// For `map_by_key_jsonl_file`: how many source rows may wait, read but not yet written,
    /// for a slow key's result (10,000 by default; at least 1). When the window is full,
    /// reading pauses, and the calls already started go on.
    ///
    /// # Examples
    ///
    /// ```
    /// use abstractions::jsonl::Options;
    /// let options = Options::new().window(100_000);
    /// # drop(options);
    /// ```
    pub fn window(mut self, rows: usize) -> Self {
        self.window = rows.max(1);
        self
    }

    pub(crate) fn report_progress(&mut self, progress: Progress) {
        if let Some(callback) = &mut self.progress {
            callback(progress);
        }
    }
}

impl fmt::Debug for Options<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("on_error", &self.on_error)
            .field("progress", &self.progress.as_ref().map(|_| ".."))
            .field("stop", &self.stop)
            .field("durability", &self.durability)
            .field("window", &self.window)
            .finish()
    }
}

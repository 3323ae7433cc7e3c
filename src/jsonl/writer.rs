//! The crash-safe JSONL writer: whole lines, coalesced writes, durability, the file lock.
//!
//! The writer owns a locked [`std::fs::File`] and two buffers. Rows are serialized into the
//! pending buffer; a write moves the file and that buffer to the [`blocking`] thread pool and
//! rows fill the other buffer meanwhile. So many rows go in one write call when they come
//! faster than the disk takes them, and the writer needs no runtime of its own.
//!
//! Invariants, on which the resume logic relies:
//! - a row and its newline go in the same write call, and buffers hold whole rows (after a
//!   failed write, the pending buffer starts with the unwritten rest of a row, which the next
//!   write puts right after the part already in the file);
//! - the file is opened in append mode, so every write goes at its end;
//! - so the file is whole rows plus at most one partial line at its end.

use std::fmt;
use std::fs::{File, OpenOptions, TryLockError};
use std::future::{Future, poll_fn};
use std::io::{self, Write};
use std::mem;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use blocking::{Task, unblock};
use futures::Sink;
use serde::Serialize;

use super::error::{Error, ErrorKind};

/// While a write is in flight, [`Sink::poll_ready`] waits for it once this many bytes are
/// pending: the backpressure that bounds the writer's memory to about twice this.
const HIGH_WATER: usize = 1 << 20;

/// [`Sink::poll_ready`] starts a write without waiting for a flush once more than this many
/// bytes are pending and no write is in flight.
const EAGER_WRITE_ABOVE: usize = 64 << 10;

/// How much a [`JsonlWriter`] does to make saved rows survive a power failure.
///
/// Every setting saves a row in the OS once the write that carries it returns: it then
/// survives the process being killed. Surviving a crash of the machine takes a sync, which
/// costs from a fraction of a millisecond to tens of milliseconds per call, depending on the
/// disk.
///
/// # Examples
///
/// ```
/// use abstractions::jsonl::{Durability, JsonlWriter};
/// use futures::SinkExt;
///
/// # futures::executor::block_on(async {
/// let dir = tempfile::tempdir()?;
/// let mut writer = JsonlWriter::create(dir.path().join("rows.jsonl"))
///     .await?
///     .durability(Durability::SyncOnFinish);
/// writer.send(serde_json::json!({"id": 1})).await?;
/// writer.finish().await?; // flushes, then syncs the file and its directory entry
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Durability {
    /// Rows go to the OS's buffers only; the OS writes them to the disk when it sees fit.
    #[default]
    Buffered,
    /// Like [`Buffered`](Durability::Buffered), and [`finish`](JsonlWriter::finish) (or
    /// [`close`](futures::SinkExt::close)) syncs the file to the disk, and, for a file the
    /// writer created, its directory entry (on unix; elsewhere only the file).
    SyncOnFinish,
    /// Every flush (so every [`send`](futures::SinkExt::send)) syncs the file to the disk, and
    /// the first one also the directory entry of a file the writer created. Safest, slowest.
    SyncEveryFlush,
}

/// A [`Sink`] that writes rows to a JSONL file, one compact JSON value a line, and survives
/// being killed at any instant.
///
/// It accepts any [`Serialize`] row ([`serde_json::Value`], [`serde_json::Map`], your own
/// structs, references to them); one writer may even take rows of several types. A row is
/// written as `serde_json`'s compact output followed by `\n`, and a row and its newline always
/// go in the same write call, at the end of the file. So at every instant the file is whole
/// rows plus at most one partial line at its end, which resuming repairs.
///
/// Rows are coalesced: [`feed`](futures::SinkExt::feed) serializes a row into a buffer; once
/// more than 64 KiB of rows are buffered, they go to a write on the [`blocking`] thread pool,
/// and new rows fill a second buffer meanwhile, to go together in the next write. `feed` waits
/// only when 1 MiB of rows is waiting behind a write in flight. A row is *saved* (in the OS: it
/// survives the process being killed) once the write that carries it has returned. [`flush`](futures::SinkExt::flush)
/// saves every row fed so far, so [`send`](futures::SinkExt::send) saves its row at once, and
/// [`send_all`](futures::SinkExt::send_all) saves all its rows in few writes. Whether a saved
/// row also survives a power failure is the [`Durability`] setting.
///
/// The writer holds an exclusive lock on the file ([`File::try_lock`]) until it is finished or
/// dropped: a second writer on the same file, in this process or another, fails at once with
/// [`ErrorKind::Locked`] instead of interleaving rows. On Windows the lock is mandatory: other
/// programs cannot even read the file while the writer holds it.
///
/// **NOTE:** Call [`finish`](JsonlWriter::finish) (or [`close`](futures::SinkExt::close))
/// when done. Async code cannot write on drop: dropping the writer loses every row not yet
/// saved, and if a write is in flight it completes in the background (releasing the lock only
/// then), so the file may end with one partial line if the process exits meanwhile.
///
/// # Examples
///
/// ```
/// use abstractions::jsonl::JsonlWriter;
/// use futures::{SinkExt, stream};
/// use serde::Serialize;
///
/// #[derive(Serialize)]
/// struct Row {
///     id: u32,
///     text: &'static str,
/// }
///
/// # futures::executor::block_on(async {
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("rows.jsonl");
///
/// let mut writer = JsonlWriter::create(&path).await?;
/// writer.send(Row { id: 1, text: "saved once send returns" }).await?;
/// let mut more = stream::iter((2..=3).map(|id| Ok(Row { id, text: "coalesced" })));
/// writer.send_all(&mut more).await?;
/// writer.finish().await?;
///
/// assert_eq!(
///     std::fs::read_to_string(&path)?,
///     "{\"id\":1,\"text\":\"saved once send returns\"}\n\
///      {\"id\":2,\"text\":\"coalesced\"}\n\
///      {\"id\":3,\"text\":\"coalesced\"}\n",
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub struct JsonlWriter {
    path: PathBuf,
    durability: Durability,
    state: State,
    /// Rows fed and not yet handed to a write.
    pending: Vec<u8>,
    pending_rows: u64,
    /// The buffer of the last write, emptied, to become the next pending buffer.
    spare: Vec<u8>,
    rows_written: u64,
    bytes_written: u64,
    /// Bytes were written since the file was last synced.
    file_unsynced: bool,
    /// The writer created the file and has not synced its directory entry yet.
    dir_unsynced: bool,
    /// Write calls that carried rows; lets the tests check that rows are coalesced.
    writes: u64,
    /// While a write is in flight, `poll_ready` looks at it again only once this many bytes
    /// are pending (or [`HIGH_WATER`]): a look costs atomics, and most rows need none.
    next_look: usize,
}

enum State {
    /// No write in flight: the writer holds the file.
    Idle(File),
    /// A write is in flight on the thread pool, with the file and the rows it carries.
    Busy { task: Task<Done>, rows: u64 },
    /// Finished: the file is closed and its lock released.
    Closed,
}

/// What a job on the thread pool hands back.
struct Done {
    file: File,
    buf: Vec<u8>,
    /// How many bytes of `buf` are in the file.
    written: usize,
    synced_file: bool,
    synced_dir: bool,
    result: io::Result<()>,
}

/// How [`open_locked`] opens the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpenMode {
    /// Create the file, or empty it if it exists (once it is locked).
    Truncate,
    /// Create the file if it is missing; keep its content.
    Append,
}

/// Opens `path` for reading and appending, creating it if it is missing, and locks it.
///
/// Returns the file, and whether this call created it. With [`OpenMode::Truncate`] an existing
/// file is emptied only once the lock is held, so a file in use by another writer is never
/// touched. Every write to the returned file goes at its end (append mode), also after the
/// caller reads it or cuts a torn tail off with [`File::set_len`].
///
/// # Errors
///
/// [`ErrorKind::Locked`] if another writer holds the file; [`ErrorKind::Io`] if it cannot be
/// opened, locked or emptied. Both name the path.
pub(crate) async fn open_locked(path: &Path, mode: OpenMode) -> Result<(File, bool), Error> {
    let path = path.to_owned();
    unblock(move || open_locked_blocking(&path, mode)).await
}

fn open_locked_blocking(path: &Path, mode: OpenMode) -> Result<(File, bool), Error> {
    let io_error = |error: io::Error| Error::from(error).with_path(path);
    let mut options = OpenOptions::new();
    options.read(true).append(true);
    // `create_new` then `open`, rather than `create`, to learn whether the file is new (its
    // directory entry then needs a sync). Retried a few times in case another program deletes
    // or creates the file in between.
    let mut attempts = 0;
    let (file, created) = loop {
        attempts += 1;
        match options.clone().create_new(true).open(path) {
            Ok(file) => break (file, true),
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
            Err(error) => return Err(io_error(error)),
        }
        match options.open(path) {
            Ok(file) => break (file, false),
            Err(error) if error.kind() == io::ErrorKind::NotFound && attempts < 3 => {}
            Err(error) => return Err(io_error(error)),
        }
    };
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            return Err(Error::new(ErrorKind::Locked).with_path(path));
        }
        Err(TryLockError::Error(error)) => return Err(io_error(error)),
    }
    if mode == OpenMode::Truncate && !created {
        file.set_len(0).map_err(io_error)?;
    }
    Ok((file, created))
}

impl JsonlWriter {
    /// Creates the file at `path`, or empties it if it exists, and returns a writer to it.
    ///
    /// The file is locked before it is emptied, so a file that another writer holds is left
    /// as it is. The writer's [`Durability`] is [`Durability::Buffered`]; change it with
    /// [`durability`](JsonlWriter::durability).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Locked`] if another writer, in this process or another, holds the file;
    /// [`ErrorKind::Io`] if it cannot be created, opened or emptied (a missing directory, no
    /// permission). The error names the path.
    ///
    /// # Examples
    ///
    /// ```
    /// use abstractions::jsonl::JsonlWriter;
    /// use futures::SinkExt;
    ///
    /// # futures::executor::block_on(async {
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("rows.jsonl");
    /// std::fs::write(&path, "{\"old\":true}\n")?;
    ///
    /// let mut writer = JsonlWriter::create(&path).await?;
    /// writer.send(serde_json::json!({"new": true})).await?;
    /// writer.finish().await?;
    /// assert_eq!(std::fs::read_to_string(&path)?, "{\"new\":true}\n");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn create(path: impl AsRef<Path>) -> Result<Self, Error> {
        Self::open(path.as_ref(), OpenMode::Truncate).await
    }

    /// Opens the file at `path` to add rows after its content, creating it if it is missing,
    /// and returns a writer to it.
    ///
    /// The writer does not check the existing content: if the file may end with a partial
    /// line (a run that was killed), resume it instead, which repairs that line.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Locked`] if another writer, in this process or another, holds the file;
    /// [`ErrorKind::Io`] if it cannot be created or opened. The error names the path.
    ///
    /// # Examples
    ///
    /// ```
    /// use abstractions::jsonl::JsonlWriter;
    /// use futures::SinkExt;
    ///
    /// # futures::executor::block_on(async {
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("rows.jsonl");
    /// std::fs::write(&path, "{\"id\":1}\n")?;
    ///
    /// let mut writer = JsonlWriter::append(&path).await?;
    /// writer.send(serde_json::json!({"id": 2})).await?;
    /// writer.finish().await?;
    /// assert_eq!(std::fs::read_to_string(&path)?, "{\"id\":1}\n{\"id\":2}\n");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn append(path: impl AsRef<Path>) -> Result<Self, Error> {
        Self::open(path.as_ref(), OpenMode::Append).await
    }

    async fn open(path: &Path, mode: OpenMode) -> Result<Self, Error> {
        let (file, created) = open_locked(path, mode).await?;
        Ok(Self::from_locked(
            file,
            path.to_owned(),
            created,
            Durability::default(),
        ))
    }

    /// A writer that appends to `file`, which must come from [`open_locked`] (locked, in
    /// append mode); `created` says whether the file is new, so that a sync also covers its
    /// directory entry.
    pub(crate) fn from_locked(
        file: File,
        path: PathBuf,
        created: bool,
        durability: Durability,
    ) -> Self {
        JsonlWriter {
            path,
            durability,
            state: State::Idle(file),
            pending: Vec::new(),
            pending_rows: 0,
            spare: Vec::new(),
            rows_written: 0,
            bytes_written: 0,
            file_unsynced: false,
            dir_unsynced: created,
            writes: 0,
            next_look: 0,
        }
    }

    /// Sets how much the writer does to make saved rows survive a power failure.
    ///
    /// The default is [`Durability::Buffered`]. The setting applies from the next flush on.
    ///
    /// # Errors
    ///
    /// None: this only records the setting; syncs report their errors from the flush or
    /// finish that runs them.
    ///
    /// # Examples
    ///
    /// ```
    /// use abstractions::jsonl::{Durability, JsonlWriter};
    /// use futures::SinkExt;
    ///
    /// # futures::executor::block_on(async {
    /// let dir = tempfile::tempdir()?;
    /// let mut writer = JsonlWriter::create(dir.path().join("rows.jsonl"))
    ///     .await?
    ///     .durability(Durability::SyncEveryFlush);
    /// writer.send(serde_json::json!({"id": 1})).await?; // written and synced to the disk
    /// writer.finish().await?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    #[must_use = "the setting is in the returned writer"]
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// The path of the file the writer writes to.
    ///
    /// # Errors
    ///
    /// None.
    ///
    /// # Examples
    ///
    /// ```
    /// use abstractions::jsonl::JsonlWriter;
    ///
    /// # futures::executor::block_on(async {
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("rows.jsonl");
    /// let writer = JsonlWriter::create(&path).await?;
    /// assert_eq!(writer.path(), path);
    /// writer.finish().await?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many rows the writer has saved: rows whose write returned, so they survive the
    /// process being killed. Rows fed but not yet flushed are not counted.
    ///
    /// # Errors
    ///
    /// None.
    ///
    /// # Examples
    ///
    /// ```
    /// use abstractions::jsonl::JsonlWriter;
    /// use futures::SinkExt;
    ///
    /// # futures::executor::block_on(async {
    /// let dir = tempfile::tempdir()?;
    /// let mut writer = JsonlWriter::create(dir.path().join("rows.jsonl")).await?;
    /// writer.feed(serde_json::json!({"id": 1})).await?;
    /// writer.feed(serde_json::json!({"id": 2})).await?;
    /// writer.flush().await?;
    /// assert_eq!(writer.rows_written(), 2);
    /// writer.finish().await?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn rows_written(&self) -> u64 {
        self.rows_written
    }

    /// How many bytes the writer has saved (newlines included), like
    /// [`rows_written`](JsonlWriter::rows_written). Bytes that were in the file before the
    /// writer opened it are not counted.
    ///
    /// # Errors
    ///
    /// None.
    ///
    /// # Examples
    ///
    /// ```
    /// use abstractions::jsonl::JsonlWriter;
    /// use futures::SinkExt;
    ///
    /// # futures::executor::block_on(async {
    /// let dir = tempfile::tempdir()?;
    /// let mut writer = JsonlWriter::create(dir.path().join("rows.jsonl")).await?;
    /// writer.send(serde_json::json!({"id": 1})).await?;
    /// assert_eq!(writer.bytes_written(), "{\"id\":1}\n".len() as u64);
    /// writer.finish().await?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written
    }

    /// Saves every row fed so far: returns once the writes carrying them have returned (and,
    /// with [`Durability::SyncEveryFlush`], the sync after them).
    ///
    /// This is [`SinkExt::flush`](futures::SinkExt::flush) without the need to name a row
    /// type: the writer is a [`Sink`] of every [`Serialize`] type, so a bare
    /// `SinkExt::flush` call cannot tell which one is meant; this method, which takes
    /// precedence, can.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Io`] if a write or a sync fails. The rows not saved stay in the writer, and
    /// the next flush tries them again, right after the part of a row already in the file.
    ///
    /// # Examples
    ///
    /// ```
    /// use abstractions::jsonl::JsonlWriter;
    /// use futures::SinkExt;
    ///
    /// # futures::executor::block_on(async {
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("rows.jsonl");
    /// let mut writer = JsonlWriter::create(&path).await?;
    /// for id in 1..=3 {
    ///     writer.feed(serde_json::json!({"id": id})).await?; // buffered
    /// }
    /// writer.flush().await?; // saved, in one write
    /// assert_eq!(std::fs::read_to_string(&path)?, "{\"id\":1}\n{\"id\":2}\n{\"id\":3}\n");
    /// writer.finish().await?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn flush(&mut self) -> Result<(), Error> {
        poll_fn(|cx| self.poll_flush_rows(cx)).await
    }

    /// Saves every row fed so far, syncs the file as the [`Durability`] setting asks, and
    /// closes the file, which releases its lock.
    ///
    /// This is what [`close`](futures::SinkExt::close) does; `finish` also consumes the writer.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Io`] if a write or a sync fails; the rows not saved are then lost with the
    /// writer. To retry instead, use [`close`](futures::SinkExt::close), which keeps them in
    /// the writer after an error.
    ///
    /// # Examples
    ///
    /// ```
    /// use abstractions::jsonl::JsonlWriter;
    /// use futures::SinkExt;
    ///
    /// # futures::executor::block_on(async {
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("rows.jsonl");
    /// let mut writer = JsonlWriter::create(&path).await?;
    /// writer.feed(serde_json::json!({"id": 1})).await?;
    /// writer.finish().await?;
    ///
    /// assert_eq!(std::fs::read_to_string(&path)?, "{\"id\":1}\n");
    /// let again = JsonlWriter::append(&path).await?; // the lock is free again
    /// again.finish().await?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn finish(mut self) -> Result<(), Error> {
        poll_fn(|cx| self.poll_finish(cx)).await
    }

    /// Waits for the write in flight, if any, and takes back the file.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if let State::Busy { task, rows } = &mut self.state {
            let rows = *rows;
            let done = ready!(Pin::new(task).poll(cx));
            return Poll::Ready(self.take_back(done, rows));
        }
        Poll::Ready(Ok(()))
    }

    /// Hands the pending rows (maybe none) to a write on the thread pool, and a sync after it
    /// if `sync`. The writer must be idle.
    fn start_job(&mut self, sync: bool) {
        let State::Idle(file) = mem::replace(&mut self.state, State::Closed) else {
            unreachable!("a write starts only when none is in flight");
        };
        let buf = mem::replace(&mut self.pending, mem::take(&mut self.spare));
        let rows = mem::take(&mut self.pending_rows);
        let sync_file = sync && (self.file_unsynced || !buf.is_empty());
        let sync_dir = (sync && self.dir_unsynced).then(|| self.path.clone());
        if !buf.is_empty() {
            self.writes += 1;
        }
        let task = unblock(move || run_job(file, buf, sync_file, sync_dir));
        self.state = State::Busy { task, rows };
        self.next_look = 0;
    }

    /// Takes back the file and the buffer of a finished job, and counts what it saved.
    fn take_back(&mut self, done: Done, rows: u64) -> Result<(), Error> {
        let Done {
            file,
            mut buf,
            written,
            synced_file,
            synced_dir,
            result,
        } = done;
        self.state = State::Idle(file);
        self.bytes_written += written as u64;
        self.file_unsynced = (self.file_unsynced || written > 0) && !synced_file;
        self.dir_unsynced &= !synced_dir;
        if written == buf.len() {
            self.rows_written += rows;
        } else {
            // A failed write: keep the unwritten rest, ahead of the rows fed meanwhile, for
            // the next write to put right after the part that is in the file.
            let saved = memchr::memchr_iter(b'\n', &buf[..written]).count() as u64;
            self.rows_written += saved;
            buf.drain(..written);
            buf.extend_from_slice(&self.pending);
            mem::swap(&mut self.pending, &mut buf);
            self.pending_rows += rows - saved;
        }
        buf.clear();
        self.spare = buf;
        result.map_err(|error| Error::from(error).with_path(&self.path))
    }

    /// Saves every pending row, and syncs if `sync` (when there is anything to sync).
    fn poll_save(&mut self, cx: &mut Context<'_>, sync: bool) -> Poll<Result<(), Error>> {
        loop {
            ready!(self.poll_idle(cx))?;
            let sync =
                sync && (!self.pending.is_empty() || self.file_unsynced || self.dir_unsynced);
            if self.pending.is_empty() && !sync {
                return Poll::Ready(Ok(()));
            }
            self.start_job(sync);
        }
    }

    fn poll_flush_rows(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if let State::Closed = self.state {
            return Poll::Ready(Ok(()));
        }
        self.poll_save(cx, self.durability == Durability::SyncEveryFlush)
    }

    fn poll_finish(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if let State::Closed = self.state {
            return Poll::Ready(Ok(()));
        }
        ready!(self.poll_save(cx, self.durability != Durability::Buffered))?;
        // Dropping the file closes it and releases its lock.
        self.state = State::Closed;
        Poll::Ready(Ok(()))
    }

    fn closed_error(&self) -> Error {
        Error::from(io::Error::other("the writer is finished")).with_path(&self.path)
    }
}

/// Writes `buf` at the end of `file`, then syncs the file and the directory if asked. Runs on
/// the thread pool.
fn run_job(mut file: File, buf: Vec<u8>, sync_file: bool, sync_dir: Option<PathBuf>) -> Done {
    let mut written = 0;
    let mut result = Ok(());
    if crate::fault::is_armed("partial-write") && buf.len() > 1 {
        // The crash tests' narrow window: the process dies in the middle of a write, leaving
        // whole rows and then part of one.
        let mut cut = buf.len() / 2;
        if buf[cut - 1] == b'\n' {
            cut -= 1;
        }
        let _ = file.write_all(&buf[..cut]);
        std::process::abort();
    }
    while written < buf.len() {
        match file.write(&buf[written..]) {
            Ok(0) => {
                result = Err(io::Error::from(io::ErrorKind::WriteZero));
                break;
            }
            Ok(n) => written += n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => {
                result = Err(error);
                break;
            }
        }
    }
    let mut synced_file = false;
    let mut synced_dir = false;
    if result.is_ok() && sync_file {
        result = file.sync_data();
        synced_file = result.is_ok();
    }
    if let (Ok(()), Some(path)) = (&result, sync_dir) {
        result = sync_parent_dir(&path);
        synced_dir = result.is_ok();
    }
    Done {
        file,
        buf,
        written,
        synced_file,
        synced_dir,
        result,
    }
}

/// Syncs the directory entry of the file at `path`, so that a new file survives a power
/// failure. Only unix can sync a directory; elsewhere this does nothing.
fn sync_parent_dir(path: &Path) -> io::Result<()> {
    if cfg!(unix) {
        let parent = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        File::open(parent)?.sync_all()
    } else {
        Ok(())
    }
}

impl JsonlWriter {
    /// Feeds `row` as [`Sink::start_send`] does, then hands its serialized bytes (without the
    /// newline) to `check`; if `check` fails, the row is taken back out and its error
    /// returned. For the crate's functions, which check the key of each generated row without
    /// serializing it twice. Call `poll_ready` first, as for `start_send`.
    pub(crate) fn feed_checked<T: Serialize>(
        &mut self,
        row: &T,
        check: impl FnOnce(&[u8]) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let start = self.pending.len();
        Pin::new(&mut *self).start_send(row)?;
        let end = self.pending.len() - 1;
        if let Err(error) = check(&self.pending[start..end]) {
            self.pending.truncate(start);
            self.pending_rows -= 1;
            return Err(error);
        }
        Ok(())
    }

    /// Rows fed so far, saved or not.
    pub(crate) fn rows_fed(&self) -> u64 {
        let in_flight = match self.state {
            State::Busy { rows, .. } => rows,
            _ => 0,
        };
        self.rows_written + in_flight + self.pending_rows
    }

    /// Feeds `count` whole rows, each with its newline, as they are. Call `poll_ready` first,
    /// as for `start_send`.
    pub(crate) fn feed_raw(&mut self, rows: &[u8], count: u64) {
        self.pending.extend_from_slice(rows);
        self.pending_rows += count;
    }

    /// Feeds one row that `write` puts in the buffer as JSON text, without its newline. For
    /// the crate's functions that render rows from raw pieces. Call `poll_ready` first, as for
    /// `start_send`.
    pub(crate) fn feed_with(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        write(&mut self.pending);
        self.pending.push(b'\n');
        self.pending_rows += 1;
    }
}

impl<T: Serialize> Sink<T> for JsonlWriter {
    type Error = Error;

    /// Ready at once unless 1 MiB of rows wait behind a write in flight; starts a write of
    /// the pending rows, without waiting for it, once they are more than 64 KiB and no write
    /// is in flight.
    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        if let State::Closed = this.state {
            return Poll::Ready(Err(this.closed_error()));
        }
        // Most rows take this path: no look at the write in flight, which costs atomics.
        let len = this.pending.len();
        if len <= EAGER_WRITE_ABOVE {
            return Poll::Ready(Ok(()));
        }
        // A write found in flight is looked at again after another 64 KiB of rows.
        if matches!(this.state, State::Busy { .. }) && len < this.next_look.min(HIGH_WATER) {
            return Poll::Ready(Ok(()));
        }
        match this.poll_idle(cx) {
            Poll::Ready(result) => result?,
            Poll::Pending if len >= HIGH_WATER => return Poll::Pending,
            Poll::Pending => {
                this.next_look = len + EAGER_WRITE_ABOVE;
                return Poll::Ready(Ok(()));
            }
        }
        this.start_job(false);
        Poll::Ready(Ok(()))
    }

    /// Serializes the row into the pending buffer; on an error ([`ErrorKind::Serialize`]) the
    /// buffer is left as it was.
    fn start_send(self: Pin<&mut Self>, row: T) -> Result<(), Error> {
        let this = self.get_mut();
        if let State::Closed = this.state {
            return Err(this.closed_error());
        }
        let len = this.pending.len();
        match serde_json::to_writer(&mut this.pending, &row) {
            Ok(()) => {
                this.pending.push(b'\n');
                this.pending_rows += 1;
                Ok(())
            }
            Err(error) => {
                this.pending.truncate(len);
                Err(Error::new(ErrorKind::Serialize)
                    .with_path(&this.path)
                    .with_source(error))
            }
        }
    }

    /// Saves every row fed so far: ready once the writes carrying them have returned (and,
    /// with [`Durability::SyncEveryFlush`], the sync after them).
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().poll_flush_rows(cx)
    }

    /// Does what [`JsonlWriter::finish`] does, keeping the writer.
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().poll_finish(cx)
    }
}

impl Drop for JsonlWriter {
    fn drop(&mut self) {
        // Let a write in flight complete rather than cancel it if it has not started yet: its
        // rows are whole, and the file is closed (and unlocked) when it returns.
        if let State::Busy { task, .. } = mem::replace(&mut self.state, State::Closed) {
            task.detach();
        }
    }
}

impl fmt::Debug for JsonlWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Idle(_) => "idle",
            State::Busy { .. } => "writing",
            State::Closed => "finished",
        };
        f.debug_struct("JsonlWriter")
            .field("path", &self.path)
            .field("durability", &self.durability)
            .field("state", &state)
            .field("rows_written", &self.rows_written)
            .field("bytes_written", &self.bytes_written)
            .field("pending_rows", &self.pending_rows)
            .field("pending_bytes", &self.pending.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::{SinkExt, executor::block_on, stream};

    #[test]
    fn rows_are_coalesced_into_few_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.jsonl");
        let rows = 100_000u64;
        block_on(async {
            let mut writer = JsonlWriter::create(&path).await.unwrap();
            let mut stream = stream::iter((0..rows).map(|id| Ok(serde_json::json!({ "id": id }))));
            writer.send_all(&mut stream).await.unwrap();
            assert_eq!(writer.rows_written(), rows);
            assert!(
                writer.writes < rows / 10,
                "{} writes for {rows} rows",
                writer.writes
            );
            writer.finish().await.unwrap();
        });
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count() as u64, rows);
    }

    #[test]
    fn poll_ready_waits_for_the_write_in_flight_once_a_mebibyte_is_pending() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.jsonl");
        block_on(async {
            let mut writer = JsonlWriter::create(&path).await.unwrap();
            // A write in flight that returns only when told to.
            let State::Idle(file) = mem::replace(&mut writer.state, State::Closed) else {
                unreachable!()
            };
            let (release, released) = std::sync::mpsc::channel::<()>();
            let task = unblock(move || {
                released.recv().unwrap();
                Done {
                    file,
                    buf: Vec::new(),
                    written: 0,
                    synced_file: false,
                    synced_dir: false,
                    result: Ok(()),
                }
            });
            writer.state = State::Busy { task, rows: 0 };

            let row = serde_json::json!({ "text": "x".repeat(1000) });
            let mut cx = Context::from_waker(futures::task::noop_waker_ref());
            let mut rows = 0u64;
            while writer.pending.len() < HIGH_WATER {
                let ready = Sink::<&serde_json::Value>::poll_ready(Pin::new(&mut writer), &mut cx);
                assert!(
                    matches!(ready, Poll::Ready(Ok(()))),
                    "not ready at {rows} rows"
                );
                Pin::new(&mut writer).start_send(&row).unwrap();
                rows += 1;
            }
            let ready = Sink::<&serde_json::Value>::poll_ready(Pin::new(&mut writer), &mut cx);
            assert!(ready.is_pending());

            release.send(()).unwrap();
            poll_fn(|cx| Sink::<&serde_json::Value>::poll_ready(Pin::new(&mut writer), cx))
                .await
                .unwrap();
            // The pending rows went to a new write at once.
            assert!(writer.pending.is_empty());
            assert!(matches!(writer.state, State::Busy { .. }));
            writer.flush().await.unwrap();
            assert_eq!(writer.rows_written(), rows);
            writer.finish().await.unwrap();
            let line = format!("{row}\n");
            assert!(std::fs::read_to_string(&path).unwrap() == line.repeat(rows as usize));
        });
    }

    #[test]
    fn a_failed_write_keeps_the_unwritten_rest_ahead_of_newer_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.jsonl");
        block_on(async {
            let mut writer = JsonlWriter::create(&path).await.unwrap();
            writer.pending.extend_from_slice(b"{\"c\":3}\n");
            writer.pending_rows = 1;
            let State::Idle(file) = mem::replace(&mut writer.state, State::Closed) else {
                unreachable!()
            };
            // As if a write of two rows stopped after 10 bytes, in the second row.
            let done = Done {
                file,
                buf: b"{\"a\":1}\n{\"b\":2}\n".to_vec(),
                written: 10,
                synced_file: false,
                synced_dir: false,
                result: Err(io::Error::other("disk full")),
            };
            let error = writer.take_back(done, 2).unwrap_err();
            assert!(matches!(error.kind(), ErrorKind::Io));
            assert_eq!(error.path(), Some(path.as_path()));
            assert_eq!(writer.rows_written, 1);
            assert_eq!(writer.bytes_written, 10);
            assert_eq!(writer.pending, b"b\":2}\n{\"c\":3}\n");
            assert_eq!(writer.pending_rows, 2);
            assert!(writer.file_unsynced);
        });
    }
}

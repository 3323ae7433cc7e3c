//! `map_by_key_jsonl_file`: one call per distinct key, one output row per source row.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Poll, ready};

use futures::channel::mpsc;
use futures::future::poll_fn;
use futures::sink::Sink;
use futures::stream::{FusedStream, Stream, StreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use std::borrow::Borrow;

use super::files::{Bad, count_and_fingerprint, report_saved, set_len};
use super::key::KeyRef;
use super::prescan::{Prescan, ScanColumns};
use super::raw::{RowKey, object_entries, parse_source_row, raw_key, scan_source_row};
use super::reader::{LineReader, Malformed, is_blank, line_str, malformed_json, scan_keys};
use super::writer::{JsonlWriter, OpenMode, open_locked};
use super::{Error, ErrorKind, Key, OnError, Options, Progress, Report};
use crate::{fault, run_bounded};

/// Rows read from the source and not yet written, at most, by default.
pub(crate) const DEFAULT_WINDOW: usize = 10_000;

/// Applies an async function to one representative row of each key of `src`, and writes a row
/// for every row of `src` to `dst`: the Python library's `map_by_key_jsonl_file`, made
/// resumable without waste.
///
/// `f` is called once per distinct value of the column `key` (by the crate's key rule, see
/// [`Key`]), on the first row with that key, deserialized as `In` (a
/// `serde_json::Map<String, Value>`, or a type of yours). Its output (a `Map`, or a type that
/// serializes as a JSON object) is reused for every row with the same key. Each output row has,
/// in this order: the key column, the `keep_columns` in the order given, then `f`'s output
/// columns in `f`'s order. A column of `f`'s output that has the name of a keep column replaces
/// that column's value (in its place), as in the Python library; other source columns are
/// dropped. At most `num_concurrent` calls of `f` run at once.
///
/// # Order, memory and resume
///
/// Output rows are in source order. The source is read lazily: rows read but not yet written
/// (waiting for a slow key) are held in a window of at most [`Options::window`] rows (10,000 by
/// default); when it is full, reading pauses and the calls of `f` already started go on. So
/// memory grows with the number of distinct keys (their cached results), not with the number of
/// rows.
///
/// Run it again after any interruption (a kill at any instant, a failure of `f`, a dropped
/// future, a torn last line) and it finishes the job, and with a deterministic `f` the output
/// is byte for byte the file one uninterrupted run writes. `f` is never called again for a key
/// whose result was saved: each result is recorded, as `f` returned it, in a side file
/// `<dst>.map-by-key` (also holding a fingerprint of the source; a changed source is refused
/// with [`ErrorKind::SourceChanged`]). When rows are missing in the middle of the output
/// (because `f` failed for their key with [`OnError::Report`]), the run that retries them
/// writes the whole output anew into `<dst>.rewrite` from the saved results and renames it over
/// `dst` atomically. An output begun by the Python library resumes too (its results are then
/// read back from its rows).
///
/// # Errors
///
/// Bad input is an error naming the file and the line, whatever `on_error` says: a line that is
/// not JSON ([`ErrorKind::Json`]), a row that is not an object ([`ErrorKind::NotAnObject`]),
/// a missing key column ([`ErrorKind::MissingKey`]) or keep column
/// ([`ErrorKind::MissingColumn`]), an array or object key ([`ErrorKind::InvalidKey`]), a row
/// that does not deserialize as `In`. An output of `f` that is not an object
/// ([`ErrorKind::NotAnObject`]) or that sets the key column to another key
/// ([`ErrorKind::KeyChanged`]) is an error too. An error of `f` ([`ErrorKind::Generate`]) stops
/// the run with [`OnError::Raise`]; with [`OnError::Report`] it is recorded in
/// [`Report::problems`] and the progress callback, and the key's rows are left out until a
/// later run retries them. Saved rows always stay. The output's own damage is handled as in
/// [`create_or_resume_jsonl_file`](super::create_or_resume_jsonl_file): a torn last line is cut,
/// a malformed line in the middle is [`ErrorKind::Corrupt`], a second writer gets
/// [`ErrorKind::Locked`].
///
/// # Panics
///
/// Panics if `num_concurrent` is 0.
///
/// # Examples
///
/// ```
/// use abstractions::jsonl::{map_by_key_jsonl_file, Options};
/// use serde_json::{json, Map, Value};
///
/// # let dir = tempfile::tempdir()?;
/// # let (src, dst) = (dir.path().join("src.jsonl"), dir.path().join("dst.jsonl"));
/// std::fs::write(
///     &src,
///     r#"{ "key": 10, "other": "A", "discarded": "X" }
/// { "key": 20, "other": "B", "discarded": "Y" }
/// { "key": 10, "other": "C", "discarded": "Z" }
/// "#,
/// )?;
/// async fn compute(row: Map<String, Value>) -> Result<Value, std::io::Error> {
///     Ok(json!({ "result": row["key"].as_i64().unwrap() + 1 }))
/// }
/// # futures::executor::block_on(async {
/// let report = map_by_key_jsonl_file(&src, &dst, compute, "key", 1, &["other"], Options::new())
///     .await?;
/// assert_eq!(report.calls, 2); // once for 10, once for 20
/// assert_eq!(
///     std::fs::read_to_string(&dst)?,
///     r#"{"key":10,"other":"A","result":11}
/// {"key":20,"other":"B","result":21}
/// {"key":10,"other":"C","result":11}
/// "#
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[track_caller]
pub fn map_by_key_jsonl_file<'a, F, Fut, In, Out, E>(
    src: impl AsRef<Path> + 'a,
    dst: impl AsRef<Path> + 'a,
    f: F,
    key: &'a str,
    num_concurrent: usize,
    keep_columns: &'a [&'a str],
    options: Options<'a>,
) -> impl Future<Output = Result<Report, Error>> + 'a
where
    F: FnMut(In) -> Fut + 'a,
    In: DeserializeOwned + 'a,
    Fut: Future<Output = Result<Out, E>> + 'a,
    Out: Serialize + 'a,
    E: Into<Box<dyn std::error::Error + Send + Sync>> + 'a,
{
    let limit = crate::bounded::checked_limit(num_concurrent).get();
    async move {
        let columns = Columns::new(key, keep_columns);
        let paths = Paths::new(src.as_ref(), dst.as_ref());
        run(paths, columns, f, limit, options).await
    }
}

/// The files of a run.
struct Paths {
    src: PathBuf,
    dst: PathBuf,
    /// The results of `f` and the source's fingerprint.
    side: PathBuf,
    /// Where a rewrite goes before it is renamed over `dst`.
    rewrite: PathBuf,
}

impl Paths {
    fn new(src: &Path, dst: &Path) -> Self {
        let beside = |suffix: &str| {
            let mut name = dst.as_os_str().to_owned();
            name.push(suffix);
            PathBuf::from(name)
        };
        Paths {
            src: src.to_owned(),
            side: beside(".map-by-key"),
            rewrite: beside(".rewrite"),
            dst: dst.to_owned(),
        }
    }
}

/// The key column and the columns to keep, with their names as JSON strings.
struct Columns {
    key: String,
    key_json: String,
    keep: Vec<String>,
    keep_json: Vec<String>,
}

impl Columns {
    fn new(key: &str, keep: &[&str]) -> Self {
        Columns {
            key: key.to_owned(),
            key_json: json_string(key),
            keep: keep.iter().map(|&name| name.to_owned()).collect(),
            keep_json: keep.iter().map(|&name| json_string(name)).collect(),
        }
    }

    /// Renders an output row: the key, the kept columns (or `f`'s values for them, from
    /// `overrides`, as [`Rendered::overrides`]), then the rest of `f`'s columns, `tail` (as
    /// [`Rendered::tail`]). `kept(i)` is the raw text of kept column `i` in the source row.
    fn render<'s>(
        &self,
        out: &mut Vec<u8>,
        raw_key: &str,
        kept: impl Fn(usize) -> &'s str,
        overrides: &[Option<Box<str>>],
        tail: &[u8],
    ) {
        out.push(b'{');
        out.extend_from_slice(self.key_json.as_bytes());
        out.push(b':');
        out.extend_from_slice(raw_key.as_bytes());
        for (i, name) in self.keep_json.iter().enumerate() {
            out.push(b',');
            out.extend_from_slice(name.as_bytes());
            out.push(b':');
            let value = match overrides.get(i) {
                Some(Some(value)) => value,
                _ => kept(i),
            };
            out.extend_from_slice(value.as_bytes());
        }
        out.extend_from_slice(tail);
        out.push(b'}');
    }

    /// Prepares `f`'s output (the JSON text of an object) for rendering the rows of `key`.
    fn prepare(&self, output: &str, key: &KeyRef<'_>) -> Result<Rendered, ErrorKind> {
        let Ok(Some(entries)) = object_entries(output) else {
            return Err(ErrorKind::NotAnObject);
        };
        let mut rendered = Rendered {
            overrides: Vec::new(),
            tail: String::new(),
            record: 0,
        };
        for (name, value) in entries {
            if name == self.key {
                match raw_key(value.get()) {
                    Ok(Some(found)) if found == *key => continue,
                    Ok(Some(found)) => {
                        return Err(ErrorKind::KeyChanged {
                            key: key.to_key(),
                            found: found.to_key(),
                        });
                    }
                    _ => return Err(ErrorKind::InvalidKey),
                }
            }
            match self.keep.iter().position(|keep| *keep == name) {
                Some(i) => {
                    rendered.overrides.resize(self.keep.len(), None);
                    rendered.overrides[i] = Some(value.get().into());
                }
                None => push_column(&mut rendered.tail, &name, value.get()),
            }
        }
        Ok(rendered)
    }

    /// A result read back from an output row that has no saved result (an output begun by the
    /// Python library): the row's columns but the key and the kept ones.
    fn read_back(&self, row: &str) -> Result<Rendered, ErrorKind> {
        let Ok(Some(entries)) = object_entries(row) else {
            return Err(ErrorKind::NotAnObject);
        };
        let mut tail = String::new();
        for (name, value) in entries {
            if name != self.key && !self.keep.contains(&name) {
                push_column(&mut tail, &name, value.get());
            }
        }
        Ok(Rendered {
            overrides: Vec::new(),
            tail,
            record: 0,
        })
    }

    /// The key of a parsed row, which must be a scalar.
    fn row_key<'a>(&self, key: RowKey<'a>) -> Result<KeyRef<'a>, ErrorKind> {
        match key {
            RowKey::Key(key) => Ok(key),
            RowKey::Missing => Err(ErrorKind::MissingKey {
                column: self.key.clone(),
            }),
            RowKey::NotScalar => Err(ErrorKind::InvalidKey),
            RowKey::NotObject => Err(ErrorKind::NotAnObject),
        }
    }

    /// Parses a source row: the raw text of its key column, its key (which must be a scalar)
    /// unless a fast scan found the row plain (then [`Columns::key_of`] makes it, if needed),
    /// and where its kept columns are (which must all be there).
    fn parse<'a>(
        &self,
        text: &'a str,
        kept: &mut Vec<Option<Range<usize>>>,
    ) -> Result<(Option<KeyRef<'a>>, &'a str), Bad> {
        if let Some(raw) = scan_source_row(text, &self.key, &self.keep, kept) {
            return Ok((None, raw));
        }
        let (key, raw) = self.parse_full(text, kept)?;
        Ok((Some(key), raw))
    }

    /// The key of a source row that [`Columns::parse`] found plain, from the raw text of its
    /// key column; if that text is no key, the full parse of the row gives its error.
    fn key_of<'a>(
        &self,
        text: &'a str,
        raw: &'a str,
        kept: &mut Vec<Option<Range<usize>>>,
    ) -> Result<KeyRef<'a>, Bad> {
        match raw_key(raw) {
            Ok(Some(key)) => Ok(key),
            _ => self.parse_full(text, kept).map(|(key, _)| key),
        }
    }

    /// Parses a source row with `serde_json`: its key and where its kept columns are.
    fn parse_full<'a>(
        &self,
        text: &'a str,
        kept: &mut Vec<Option<Range<usize>>>,
    ) -> Result<(KeyRef<'a>, &'a str), Bad> {
        let row = parse_source_row(text, &self.key, &self.keep, kept)
            .map_err(|error| Bad::Json(malformed_json(error)))?;
        let key = self.row_key(row.key).map_err(Bad::Kind)?;
        if let Some(i) = kept.iter().position(Option::is_none) {
            return Err(Bad::Kind(ErrorKind::MissingColumn {
                column: self.keep[i].clone(),
            }));
        }
        Ok((key, row.raw_key))
    }
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

/// Appends `,"name":value` to `tail`.
fn push_column(tail: &mut String, name: &str, value: &str) {
    tail.push(',');
    tail.push_str(&json_string(name));
    tail.push(':');
    tail.push_str(value);
}

/// `f`'s result for a key, ready to render rows. What a row needs is here, so that writing a
/// row touches little memory besides it.
struct Rendered {
    /// Per kept column, `f`'s value for it, if `f` has that column; empty if it has none.
    overrides: Vec<Option<Box<str>>>,
    /// `f`'s other columns, each as `,"name":value`; empty once the key's spelling entry
    /// holds them (see [`Keys::release_tail`]).
    tail: String,
    /// How many side-file records must be saved before the key's rows are written, so that a
    /// saved row always has its result saved.
    record: u64,
}

enum State {
    /// `f` was asked and has not answered.
    Pending,
    Done(Rendered),
    /// `f` failed (with [`OnError::Report`]): the key's rows are left out.
    Failed,
}

/// Every key seen, with what `f` made of it.
#[derive(Default)]
struct Keys {
    index: HashMap<Key, usize>,
    /// Keys by the raw text of a row's key column, for most lookups.
    spellings: Spellings,
    keys: Vec<Key>,
    states: Vec<State>,
    /// Per key, the source line of its first row, for errors of `f`.
    first_line: Vec<u64>,
}

impl Keys {
    fn find(&self, key: &KeyRef<'_>) -> Option<usize> {
        self.index.get(key).copied()
    }

    /// Finds `key`, whose spelling `raw` was not found, and records that spelling for it if
    /// it has none.
    fn find_respelled(&mut self, key: &KeyRef<'_>, raw: &str) -> Option<usize> {
        let k = self.find(key)?;
        self.spell(k, raw);
        Some(k)
    }

    /// Records `raw` as the spelling of key `k`, if it has none.
    fn spell(&mut self, k: usize, raw: &str) {
        self.spellings.spell(k, raw, &self.states[k]);
        self.release_tail(k);
    }

    /// Sets the state of key `k`; a key is done at most once.
    fn set_state(&mut self, k: usize, state: State) {
        debug_assert!(
            !matches!(self.states[k], State::Done(_)),
            "a key is done at most once"
        );
        self.states[k] = state;
        self.spellings.refresh(k, &self.states[k]);
        self.release_tail(k);
    }

    /// Once the entry of key `k` holds the tail of its result, the result keeps none: a
    /// result is held once, not twice. An entry made ready stays so (a key is done once),
    /// so [`Keys::tail`] always finds it there.
    fn release_tail(&mut self, k: usize) {
        if let State::Done(result) = &mut self.states[k]
            && !result.tail.is_empty()
            && self.spellings.ready_tail(k).is_some()
        {
            result.tail = String::new();
        }
    }

    /// The tail of `result`, the result of key `k`: in its spelling's entry, or its own.
    fn tail<'a>(&'a self, k: usize, result: &'a Rendered) -> &'a [u8] {
        match self.spellings.ready_tail(k) {
            Some(tail) => tail,
            None => result.tail.as_bytes(),
        }
    }

    fn insert(&mut self, key: Key, state: State, first_line: u64) -> usize {
        let k = self.keys.len();
        self.index.insert(key.clone(), k);
        self.keys.push(key);
        self.states.push(state);
        self.first_line.push(first_line);
        k
    }
}

/// Keys by the raw text of a row's key column (one spelling per key, the first seen), each
/// with what writing most rows of the key needs, so that a row costs a hash of its key's
/// bytes, a look in a small table and one read of a few adjacent bytes, without the key
/// rule or a pointer to follow.
#[derive(Default)]
struct Spellings {
    /// Open addressing with linear probing, at most half full, its length a power of two: 0
    /// for an empty slot, else 1 + the offset of an entry in `entries`. Four bytes a slot, so
    /// that the table stays in the cache.
    slots: Vec<u32>,
    /// Entries, each a header of [`HEADER`] bytes (the key's index, the lengths of the
    /// spelling and of the tail, whether the tail is ready, and the record to wait for, as
    /// little-endian integers), the spelling, then the tail. An entry is replaced (appended
    /// anew) when its key is done, so a key leaves at most one stale entry.
    entries: Vec<u8>,
    /// Per key, the slot of its spelling, or `u32::MAX` if it has none.
    slot_of: Vec<u32>,
    len: usize,
}

const HEADER: usize = 24;

/// A key found by its spelling.
struct Hit<'a> {
    k: usize,
    /// The key is done, with a result that has no value for a kept column, rendered as
    /// `tail` (as [`Rendered::tail`]) once `record` side-file records are saved.
    ready: bool,
    record: u64,
    tail: &'a [u8],
}

impl Spellings {
    fn u32_at(&self, at: usize) -> usize {
        u32::from_le_bytes(self.entries[at..at + 4].try_into().expect("4 bytes")) as usize
    }

    fn spelling_at(&self, entry: usize) -> &[u8] {
        let len = self.u32_at(entry + 4);
        &self.entries[entry + HEADER..entry + HEADER + len]
    }

    /// The slot holding `raw`, or the empty slot where it would go.
    fn probe(&self, raw: &[u8]) -> (usize, Option<usize>) {
        let mask = self.slots.len() - 1;
        let mut slot = spelling_hash(raw) as usize & mask;
        loop {
            match self.slots[slot] {
                0 => return (slot, None),
                entry => {
                    let entry = entry as usize - 1;
                    if self.spelling_at(entry) == raw {
                        return (slot, Some(entry));
                    }
                }
            }
            slot = (slot + 1) & mask;
        }
    }

    fn find(&self, raw: &str) -> Option<Hit<'_>> {
        if self.slots.is_empty() {
            return None;
        }
        let (_, entry) = self.probe(raw.as_bytes());
        let entry = entry?;
        let spelling_len = self.u32_at(entry + 4);
        let tail_len = self.u32_at(entry + 8);
        let tail = entry + HEADER + spelling_len;
        Some(Hit {
            k: self.u32_at(entry),
            ready: self.entries[entry + 12] != 0,
            record: u64::from_le_bytes(
                self.entries[entry + 16..entry + 24]
                    .try_into()
                    .expect("8 bytes"),
            ),
            tail: &self.entries[tail..tail + tail_len],
        })
    }

    /// The tail of key `k`'s entry, if it has one and it is ready.
    fn ready_tail(&self, k: usize) -> Option<&[u8]> {
        let &slot = self.slot_of.get(k).filter(|&&slot| slot != u32::MAX)?;
        let entry = self.slots[slot as usize] as usize - 1;
        if self.entries[entry + 12] == 0 {
            return None;
        }
        let spelling_len = self.u32_at(entry + 4);
        let tail_len = self.u32_at(entry + 8);
        let tail = entry + HEADER + spelling_len;
        Some(&self.entries[tail..tail + tail_len])
    }

    /// Appends an entry for key `k`, spelled `raw`, in `state`; its offset, if it fits.
    fn push_entry(&mut self, k: usize, raw: &[u8], state: &State) -> Option<u32> {
        let (ready, record, tail) = match state {
            State::Done(result) if result.overrides.is_empty() => {
                (true, result.record, result.tail.as_str())
            }
            _ => (false, 0, ""),
        };
        let offset = self.entries.len();
        let end = offset + HEADER + raw.len() + tail.len();
        let (Ok(k), Ok(spelling_len), Ok(tail_len), Ok(offset)) = (
            u32::try_from(k),
            u32::try_from(raw.len()),
            u32::try_from(tail.len()),
            u32::try_from(offset),
        ) else {
            return None;
        };
        if end >= u32::MAX as usize {
            return None;
        }
        self.entries.extend_from_slice(&k.to_le_bytes());
        self.entries.extend_from_slice(&spelling_len.to_le_bytes());
        self.entries.extend_from_slice(&tail_len.to_le_bytes());
        self.entries
            .extend_from_slice(&u32::from(ready).to_le_bytes());
        self.entries.extend_from_slice(&record.to_le_bytes());
        self.entries.extend_from_slice(raw);
        self.entries.extend_from_slice(tail.as_bytes());
        Some(offset)
    }

    /// Records `raw` as the spelling of key `k`, in `state`, if `k` has none and `raw` is
    /// not taken.
    fn spell(&mut self, k: usize, raw: &str, state: &State) {
        if self.slot_of.len() <= k {
            self.slot_of.resize(k + 1, u32::MAX);
        }
        if self.slot_of[k] != u32::MAX {
            return;
        }
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let (slot, found) = self.probe(raw.as_bytes());
        if found.is_some() {
            return;
        }
        let (Some(entry), Ok(slot_index)) = (
            self.push_entry(k, raw.as_bytes(), state),
            u32::try_from(slot),
        ) else {
            return;
        };
        self.slots[slot] = entry + 1;
        self.slot_of[k] = slot_index;
        self.len += 1;
    }

    /// Brings the entry of key `k`, if it has one, up to date with its `state`.
    fn refresh(&mut self, k: usize, state: &State) {
        let Some(&slot) = self.slot_of.get(k).filter(|&&slot| slot != u32::MAX) else {
            return;
        };
        let slot = slot as usize;
        let old = self.slots[slot] as usize - 1;
        let raw = self.spelling_at(old).to_vec();
        match self.push_entry(k, &raw, state) {
            Some(entry) => self.slots[slot] = entry + 1,
            // No room for the new entry: mark the old one not ready, so rows take the slow way.
            None => self.entries[old + 12] = 0,
        }
    }

    /// Doubles the table (from 1024 slots) and puts every entry back.
    fn grow(&mut self) {
        let size = (self.slots.len() * 2).max(1024);
        let old = std::mem::replace(&mut self.slots, vec![0; size]);
        for entry in old.into_iter().filter(|&entry| entry != 0) {
            let at = entry as usize - 1;
            let (slot, _) = self.probe(self.spelling_at(at));
            self.slots[slot] = entry;
            let k = self.u32_at(at);
            self.slot_of[k] = u32::try_from(slot).expect("a slot index fits in u32");
        }
    }
}

/// A multiply-rotate hash of the raw text of a key column, by 8-byte words: a weak hash only
/// costs collisions (the second spelling goes the slow way).
fn spelling_hash(raw: &[u8]) -> u64 {
    let mix = |hash: u64, word: u64| {
        (hash ^ word)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .rotate_left(29)
    };
    let mut words = raw.chunks_exact(8);
    let mut hash = raw.len() as u64;
    for word in &mut words {
        hash = mix(hash, u64::from_le_bytes(word.try_into().expect("8 bytes")));
    }
    let rest = words.remainder();
    if !rest.is_empty() {
        let mut word = [0u8; 8];
        word[..rest.len()].copy_from_slice(rest);
        hash = mix(hash, u64::from_le_bytes(word));
    }
    hash ^ (hash >> 32)
}

/// A source row waiting for its key's result: its raw key and kept values.
struct Waiting {
    key: usize,
    text: String,
    /// The raw key, then each kept value, as ranges of `text`.
    parts: Vec<Range<usize>>,
}

impl Waiting {
    fn new(key: usize, raw_key: &str, kept: impl Iterator<Item = impl AsRef<str>>) -> Self {
        let mut text = String::from(raw_key);
        let mut parts = Vec::with_capacity(4);
        parts.push(0..raw_key.len());
        for value in kept {
            let start = text.len();
            text.push_str(value.as_ref());
            parts.push(start..text.len());
        }
        Waiting { key, text, parts }
    }

    fn part(&self, i: usize) -> &str {
        &self.text[self.parts[i].clone()]
    }
}

/// The side file's first line.
#[derive(Serialize, serde::Deserialize, PartialEq)]
struct Header {
    map_by_key: u32,
    source_bytes: u64,
    source_hash: String,
    key: String,
    keep_columns: Vec<String>,
}

async fn run<F, Fut, In, Out, E>(
    paths: Paths,
    columns: Columns,
    f: F,
    limit: usize,
    mut options: Options<'_>,
) -> Result<Report, Error>
where
    F: FnMut(In) -> Fut,
    In: DeserializeOwned,
    Fut: Future<Output = Result<Out, E>>,
    Out: Serialize,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let src_error = |error: io::Error| Error::from(error).with_path(&paths.src);
    let (total, (source_bytes, source_hash)) =
        count_and_fingerprint(&paths.src).await.map_err(src_error)?;
    let header = Header {
        map_by_key: 1,
        source_bytes,
        source_hash: format!("{source_hash:016x}"),
        key: columns.key.clone(),
        keep_columns: columns.keep.clone(),
    };

    // The output is locked for the whole run; the lock guards the side file and the rewrite.
    let (dst_file, dst_created) = open_locked(&paths.dst, OpenMode::Append).await?;
    match async_fs::remove_file(&paths.rewrite).await {
        Err(error) if error.kind() != io::ErrorKind::NotFound => {
            return Err(Error::from(error).with_path(&paths.rewrite));
        }
        _ => {}
    }
    let mut keys = Keys::default();
    let mut side = open_side(
        &paths.side,
        &header,
        &columns,
        &mut keys,
        options.durability,
    )
    .await?;

    let mut report = Report::default();
    // The source is read and scanned ahead, on the thread pool.
    let open_source = || {
        let columns = ScanColumns {
            key: columns.key.clone(),
            keep: columns.keep.clone(),
        };
        Prescan::new(paths.src.clone(), 0, 1, columns)
    };
    let mut source = open_source();
    let mut rewrite = false;
    if !dst_created {
        let walk = walk_output(&paths, &columns, &mut keys, &mut source).await?;
        report.torn_bytes = walk.torn_bytes;
        report.rows_resumed = walk.rows;
        if walk.hole {
            // Rows are missing in the middle: write it all anew, from the saved results.
            rewrite = true;
            source = open_source();
        } else if walk.torn_bytes > 0 {
            fault::point("before-truncate");
            set_len(&dst_file, &paths.dst, walk.valid_len).await?;
            fault::point("after-truncate");
        }
    }
    let mut writer = if rewrite {
        let (file, _) = open_locked(&paths.rewrite, OpenMode::Truncate).await?;
        JsonlWriter::from_locked(file, paths.rewrite.clone(), true, options.durability)
    } else {
        JsonlWriter::from_locked(dst_file, paths.dst.clone(), dst_created, options.durability)
    };
    // In a rewrite every row is written again, and counts as saved.
    let mut progress = Progress {
        resumed: if rewrite { 0 } else { report.rows_resumed },
        saved: 0,
        failed: 0,
        total,
    };
    if progress.resumed > 0 {
        options.report_progress(progress);
    }

    let (call_tx, call_rx) = mpsc::unbounded::<(usize, In)>();
    let mut call_tx = Some(call_tx);
    let mut f = f;
    // A stop ends the calls not yet started; those in flight finish.
    let calls = run_bounded(
        call_rx
            .take_until(options.stop.stopped())
            .map(move |(key, input)| {
                let call = f(input);
                async move { (key, call.await) }
            }),
        limit,
    );
    let mut calls = Box::pin(calls);
    let mut window: VecDeque<Waiting> = VecDeque::new();
    let mut source_done = false;
    let mut bad_row: Option<Error> = None;
    let mut kept: Vec<Option<Range<usize>>> = Vec::new();

    let outcome: Result<(), Error> = poll_fn(|cx| {
        loop {
            let mut progressed = false;

            // Results of `f`: saved in the side file, then used for every row of their key.
            while !calls.is_terminated() {
                let Poll::Ready(next) = calls.as_mut().poll_next(cx) else {
                    break;
                };
                let Some((k, result)) = next else { break };
                progressed = true;
                report.calls += 1;
                let at = |kind| {
                    Error::new(kind)
                        .with_path(&paths.src)
                        .with_line(keys.first_line[k])
                };
                match result {
                    Ok(output) => {
                        let output = serde_json::to_string(&output)
                            .map_err(|error| at(ErrorKind::Serialize).with_source(error))?;
                        let key = keys.keys[k].borrow();
                        let mut rendered = columns.prepare(&output, key).map_err(at)?;
                        ready!(Sink::<()>::poll_ready(Pin::new(&mut side), cx))?;
                        side.feed_with(|out| {
                            out.extend_from_slice(b"{\"key\":");
                            serde_json::to_writer(&mut *out, &keys.keys[k])
                                .expect("a key serializes");
                            out.extend_from_slice(b",\"result\":");
                            out.extend_from_slice(output.as_bytes());
                            out.push(b'}');
                        });
                        rendered.record = side.rows_fed();
                        keys.set_state(k, State::Done(rendered));
                    }
                    Err(error) => {
                        let error = at(ErrorKind::Generate).with_source(error);
                        match options.on_error {
                            OnError::Raise => return Poll::Ready(Err(error)),
                            OnError::Report => {
                                report.problems.push(error);
                                keys.set_state(k, State::Failed);
                            }
                        }
                    }
                }
            }

            // Rows at the head of the window whose result is known, in source order.
            while let Some(head) = window.front() {
                match &keys.states[head.key] {
                    State::Pending => break,
                    State::Failed => {
                        progress.failed += 1;
                        report.rows_missing += 1;
                        options.report_progress(progress);
                    }
                    State::Done(result) => {
                        if result.record > side.rows_written() {
                            ready!(Sink::<()>::poll_flush(Pin::new(&mut side), cx))?;
                        }
                        ready!(Sink::<()>::poll_ready(Pin::new(&mut writer), cx))?;
                        let tail = keys.tail(head.key, result);
                        writer.feed_with(|out| {
                            columns.render(
                                out,
                                head.part(0),
                                |i| head.part(i + 1),
                                &result.overrides,
                                tail,
                            )
                        });
                    }
                }
                window.pop_front();
                progressed = true;
            }

            // New rows from the source, while the window has room.
            while !source_done && window.len() < options.window {
                if options.stop.is_stopped() {
                    source_done = true;
                    call_tx = None;
                    break;
                }
                ready!(Sink::<()>::poll_ready(Pin::new(&mut writer), cx))?;
                let line = match source.poll_line(cx) {
                    Poll::Pending => break,
                    Poll::Ready(Err(error)) => return Poll::Ready(Err(src_error(error))),
                    Poll::Ready(Ok(None)) => {
                        source_done = true;
                        call_tx = None;
                        break;
                    }
                    Poll::Ready(Ok(Some(line))) => line,
                };
                progressed = true;
                if is_blank(line.bytes) {
                    continue;
                }
                let number = line.number;
                let bad = |bad: Bad| bad.at(&paths.src, number);
                // A bad row stops the reading; what was read before it is finished and saved.
                let row: Result<(), Error> = 'row: {
                    let text = match line.text.map_or_else(|| line_str(line.bytes), Ok) {
                        Ok(text) => text,
                        Err(malformed) => break 'row Err(bad(Bad::Json(malformed))),
                    };
                    let parsed = match line.scanned {
                        Some((raw, ranges)) => {
                            kept.clear();
                            kept.extend(ranges.iter().cloned().map(Some));
                            Ok((None, raw))
                        }
                        // The fast scan on the thread pool declined it: parse it in full.
                        None if line.text.is_some() => columns
                            .parse_full(text, &mut kept)
                            .map(|(key, raw)| (Some(key), raw)),
                        None => columns.parse(text, &mut kept),
                    };
                    let (key, raw_key) = match parsed {
                        Ok(parsed) => parsed,
                        Err(error) => break 'row Err(bad(error)),
                    };
                    let found = keys.spellings.find(raw_key);
                    // Nothing waits before this row, and its result is saved: write it.
                    let now = window.is_empty();
                    if let Some(hit) = &found
                        && hit.ready
                        && now
                        && hit.record <= side.rows_written()
                    {
                        let kept_text =
                            |i: usize| &text[kept[i].clone().expect("checked by parse")];
                        writer.feed_with(|out| {
                            columns.render(out, raw_key, kept_text, &[], hit.tail);
                        });
                        break 'row Ok(());
                    }
                    let k = match found.map(|hit| hit.k) {
                        Some(k) => k,
                        None => {
                            let key = match key {
                                Some(key) => key,
                                None => match columns.key_of(text, raw_key, &mut kept) {
                                    Ok(key) => key,
                                    Err(error) => break 'row Err(bad(error)),
                                },
                            };
                            match keys.find_respelled(&key, raw_key) {
                                Some(k) => k,
                                None => {
                                    // The first row of a key: it goes to `f`.
                                    let input: In = match serde_json::from_str(text) {
                                        Ok(input) => input,
                                        Err(error) => {
                                            break 'row Err(bad(Bad::Json(malformed_json(error))));
                                        }
                                    };
                                    let k = keys.insert(key.to_key(), State::Pending, number);
                                    keys.spell(k, raw_key);
                                    if let Some(tx) = &call_tx {
                                        // The receiver lives as long as `calls`; if the stop
                                        // ended it, the row waits in vain, and the run ends
                                        // before it.
                                        let _ = tx.unbounded_send((k, input));
                                    }
                                    k
                                }
                            }
                        }
                    };
                    let kept_text = |i: usize| &text[kept[i].clone().expect("checked by parse")];
                    match &keys.states[k] {
                        State::Done(result) if now && result.record <= side.rows_written() => {
                            let tail = keys.tail(k, result);
                            writer.feed_with(|out| {
                                columns.render(out, raw_key, kept_text, &result.overrides, tail)
                            });
                        }
                        _ => {
                            let values = (0..kept.len()).map(kept_text);
                            window.push_back(Waiting::new(k, raw_key, values));
                        }
                    }
                    Ok(())
                };
                if let Err(error) = row {
                    bad_row = Some(error);
                    source_done = true;
                    call_tx = None;
                }
            }

            report_saved(&writer, &mut progress, &mut options);
            // Done when nothing more can be read or computed. Rows left in the window then wait
            // for a call the stop cancelled; they are written by the next run.
            if source_done && calls.is_terminated() {
                return Poll::Ready(match bad_row.take() {
                    Some(error) => Err(error),
                    None => Ok(()),
                });
            }
            if !progressed {
                // Nothing more is ready now: save what was fed, then wait.
                ready!(Sink::<()>::poll_flush(Pin::new(&mut side), cx))?;
                ready!(Sink::<()>::poll_flush(Pin::new(&mut writer), cx))?;
                report_saved(&writer, &mut progress, &mut options);
                return Poll::Pending;
            }
        }
    })
    .await;

    // Save every finished row and result, whether the run ended or failed.
    drop(calls);
    let side_closed = poll_fn(|cx| Sink::<()>::poll_close(Pin::new(&mut side), cx)).await;
    let closed = poll_fn(|cx| Sink::<()>::poll_close(Pin::new(&mut writer), cx)).await;
    report_saved(&writer, &mut progress, &mut options);
    outcome?;
    side_closed?;
    closed?;
    if rewrite {
        fault::point("before-rename");
        let (from, to) = (paths.rewrite.clone(), paths.dst.clone());
        blocking::unblock(move || std::fs::rename(from, to))
            .await
            .map_err(|e| Error::from(e).with_path(&paths.dst))?;
        fault::point("after-rename");
    }
    report.rows_written = writer.rows_written();
    let done = progress.resumed + report.rows_written + progress.failed;
    report.stopped = options.stop.is_stopped() && done < total;
    if report.stopped {
        report.rows_missing = total - done;
    }
    Ok(report)
}

/// Parses a line as JSON, lending its text, the raw text of its key column and its key,
/// unless a fast scan found the line plain (then [`line_key`] makes the key, if needed).
fn parse_key<'a>(
    bytes: &'a [u8],
    key_column: &str,
    no_columns: &mut Vec<Option<Range<usize>>>,
) -> Result<(&'a str, &'a str, Option<RowKey<'a>>), Malformed> {
    let text = line_str(bytes)?;
    if let Some(raw) = scan_source_row(text, key_column, &[], no_columns) {
        return Ok((text, raw, None));
    }
    parse_key_full(text, key_column, no_columns)
}

/// [`parse_key`] for a line the fast scan declined already: the full parse.
fn parse_key_full<'a>(
    text: &'a str,
    key_column: &str,
    no_columns: &mut Vec<Option<Range<usize>>>,
) -> Result<(&'a str, &'a str, Option<RowKey<'a>>), Malformed> {
    let row = parse_source_row(text, key_column, &[], no_columns).map_err(malformed_json)?;
    Ok((text, row.raw_key, Some(row.key)))
}

/// The key of a line that [`parse_key`] found plain, from the raw text `raw` of its key
/// column; if that text is no key, the full parse of the line gives its error.
fn line_key<'a>(
    text: &'a str,
    raw: &'a str,
    key_column: &str,
    no_columns: &mut Vec<Option<Range<usize>>>,
) -> Result<RowKey<'a>, Malformed> {
    if let Ok(Some(key)) = raw_key(raw) {
        return Ok(RowKey::Key(key));
    }
    let row = parse_source_row(text, key_column, &[], no_columns).map_err(malformed_json)?;
    Ok(row.key)
}

/// What the walk over an existing output found.
struct Walk {
    /// Rows of the output, each matched to a source row.
    rows: u64,
    /// A source row before the output's last row has no output row.
    hole: bool,
    valid_len: u64,
    torn_bytes: u64,
}

/// Walks the existing output beside the source, in one pass: each output row must be the
/// output of the next source row with its key. Takes the results of keys that the side file
/// lacks (an output begun by the Python library) from the rows. Leaves `source` just after the
/// last source row matched. Validates the output as [`scan_keys`] does: a last line without
/// its newline, or malformed lines with no valid line after them, are a torn tail to cut; a
/// malformed line before a valid one is [`ErrorKind::Corrupt`].
async fn walk_output(
    paths: &Paths,
    columns: &Columns,
    keys: &mut Keys,
    source: &mut Prescan,
) -> Result<Walk, Error> {
    let dst_error = |error: io::Error| Error::from(error).with_path(&paths.dst);
    let src_error = |error: io::Error| Error::from(error).with_path(&paths.src);
    // Read and scanned for keys ahead, on the thread pool, as the source is.
    let key_only = ScanColumns {
        key: columns.key.clone(),
        keep: Vec::new(),
    };
    let mut output = Prescan::new(paths.dst.clone(), 0, 1, key_only);
    let mut walk = Walk {
        rows: 0,
        hole: false,
        valid_len: 0,
        torn_bytes: 0,
    };
    // The first malformed line, while we look for a valid line after it.
    let mut malformed: Option<(u64, Malformed)> = None;
    let mut no_columns = Vec::new();
    while let Some(line) = output.next_line().await.map_err(dst_error)? {
        if !line.terminated {
            // Never valid: the writer writes a row and its newline at once. It is the last.
            break;
        }
        if is_blank(line.bytes) {
            if malformed.is_none() {
                walk.valid_len = line.end_offset();
            }
            continue;
        }
        let number = line.number;
        let parsed = match (line.text, line.scanned) {
            (Some(text), Some((raw, _))) => Ok((text, raw, None)),
            (Some(text), None) => parse_key_full(text, &columns.key, &mut no_columns),
            (None, _) => parse_key(line.bytes, &columns.key, &mut no_columns),
        };
        let (text, raw, key) = match parsed {
            Ok(parsed) => parsed,
            Err(error) => {
                malformed.get_or_insert((number, error));
                continue;
            }
        };
        // A known spelling is a good key; else the key is made now, as the full parse would.
        let spelled = keys.spellings.find(raw).is_some();
        let key = match key {
            None if !spelled => match line_key(text, raw, &columns.key, &mut no_columns) {
                Ok(key) => Some(key),
                Err(error) => {
                    malformed.get_or_insert((number, error));
                    continue;
                }
            },
            key => key,
        };
        if let Some((number, malformed)) = malformed.take() {
            return Err(malformed
                .into_error(|column| ErrorKind::Corrupt { column })
                .with_path(&paths.dst)
                .with_line(number));
        }
        walk.valid_len = line.end_offset();
        let dst_at = |kind| Error::new(kind).with_path(&paths.dst).with_line(number);
        let mut key = key
            .map(|key| columns.row_key(key))
            .transpose()
            .map_err(dst_at)?;
        // The next source row with this key; the rows passed over have no output (a hole).
        loop {
            let Some(src_line) = source.next_line().await.map_err(src_error)? else {
                return Err(Error::new(ErrorKind::SourceChanged)
                    .with_path(&paths.dst)
                    .with_line(number));
            };
            if is_blank(src_line.bytes) {
                continue;
            }
            let src_number = src_line.number;
            let bad_src = |malformed| Bad::Json(malformed).at(&paths.src, src_number);
            let (src_text, src_raw, src_key) = match (src_line.text, src_line.scanned) {
                (Some(text), Some((raw, _))) => (text, raw, None),
                (Some(text), None) => {
                    parse_key_full(text, &columns.key, &mut no_columns).map_err(bad_src)?
                }
                (None, _) => {
                    parse_key(src_line.bytes, &columns.key, &mut no_columns).map_err(bad_src)?
                }
            };
            // The same text is the same key; else the key rule decides.
            if src_raw == raw {
                break;
            }
            let src_key = match src_key {
                Some(src_key) => src_key,
                None => {
                    line_key(src_text, src_raw, &columns.key, &mut no_columns).map_err(bad_src)?
                }
            };
            let src_key = columns
                .row_key(src_key)
                .map_err(|kind| Error::new(kind).with_path(&paths.src).with_line(src_number))?;
            let key = match &mut key {
                Some(key) => key,
                // A known spelling: its key reads back.
                None => {
                    let row_key = line_key(text, raw, &columns.key, &mut no_columns)
                        .map_err(|malformed| Bad::Json(malformed).at(&paths.dst, number))?;
                    key.insert(columns.row_key(row_key).map_err(dst_at)?)
                }
            };
            if src_key == *key {
                break;
            }
            walk.hole = true;
        }
        walk.rows += 1;
        if !spelled {
            let key = key.expect("a key is made when its spelling is new");
            if keys.find_respelled(&key, raw).is_none() {
                let rendered = columns.read_back(text).map_err(dst_at)?;
                let k = keys.insert(key.to_key(), State::Done(rendered), 0);
                keys.spell(k, raw);
            }
        }
    }
    walk.torn_bytes = output.offset() - walk.valid_len;
    Ok(walk)
}

/// Opens the side file: checks its header against this run, loads the saved results and cuts
/// a torn tail; or begins it with the header.
async fn open_side(
    path: &Path,
    header: &Header,
    columns: &Columns,
    keys: &mut Keys,
    durability: super::Durability,
) -> Result<JsonlWriter, Error> {
    let (file, created) = open_locked(path, OpenMode::Append).await?;
    let mut has_header = false;
    if !created {
        let scan = scan_keys(path, "key", |_, _| Ok(())).await?;
        let io_error = |error: io::Error| Error::from(error).with_path(path);
        let mut lines = LineReader::new(async_fs::File::open(path).await.map_err(io_error)?);
        while let Some(line) = lines.next_line().await.map_err(io_error)? {
            if line.offset >= scan.valid_len {
                break;
            }
            if line.is_blank() {
                continue;
            }
            let number = line.number;
            let at = |kind: ErrorKind| Error::new(kind).with_path(path).with_line(number);
            let text = line_str(line.bytes).map_err(|m| Bad::Json(m).at(path, number))?;
            if !has_header {
                let found: Header = serde_json::from_str(text)
                    .map_err(|error| Bad::Json(malformed_json(error)).at(path, number))?;
                if (found.source_bytes, &found.source_hash)
                    != (header.source_bytes, &header.source_hash)
                {
                    return Err(at(ErrorKind::SourceChanged));
                }
                if (&found.key, &found.keep_columns) != (&header.key, &header.keep_columns) {
                    return Err(at(ErrorKind::ColumnsChanged));
                }
                has_header = true;
                continue;
            }
            let Ok(Some(entries)) = object_entries(text) else {
                return Err(at(ErrorKind::NotAnObject));
            };
            let field = |name: &str| entries.iter().find(|(n, _)| n == name).map(|(_, v)| *v);
            let (Some(key), Some(result)) = (field("key"), field("result")) else {
                return Err(at(ErrorKind::MissingColumn {
                    column: "result".into(),
                }));
            };
            let Ok(Some(key)) = raw_key(key.get()) else {
                return Err(at(ErrorKind::InvalidKey));
            };
            let rendered = columns.prepare(result.get(), &key).map_err(at)?;
            if keys.find(&key).is_none() {
                keys.insert(key.to_key(), State::Done(rendered), 0);
            }
        }
        if scan.torn_bytes > 0 {
            set_len(&file, path, scan.valid_len).await?;
        }
    }
    let mut writer = JsonlWriter::from_locked(file, path.to_owned(), created, durability);
    if !has_header {
        futures::SinkExt::send(&mut writer, header).await?;
    }
    Ok(writer)
}

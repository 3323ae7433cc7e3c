//! File chores shared by the resumable functions: fingerprints, cutting, progress.

use std::io::{self, Read};
use std::path::Path;

use futures::io::AsyncReadExt;

use super::reader::Malformed;
use super::writer::JsonlWriter;
use super::{Error, ErrorKind, Options, Progress};

/// What is wrong with a line: it is not JSON, or not a row of the expected shape.
pub(crate) enum Bad {
    Json(Malformed),
    Kind(ErrorKind),
}

impl Bad {
    pub(crate) fn at(self, path: &Path, line: u64) -> Error {
        let error = match self {
            Bad::Json(malformed) => malformed.into_error(|column| ErrorKind::Json { column }),
            Bad::Kind(kind) => Error::new(kind),
        };
        error.with_path(path).with_line(line)
    }
}

/// Cuts `file` (at `path`) to `len` bytes.
pub(crate) async fn set_len(file: &std::fs::File, path: &Path, len: u64) -> Result<(), Error> {
    let file = file
        .try_clone()
        .map_err(|e| Error::from(e).with_path(path))?;
    blocking::unblock(move || file.set_len(len))
        .await
        .map_err(|e| Error::from(e).with_path(path))
}

/// Calls the progress callback once for each row saved since the last call.
pub(crate) fn report_saved(
    writer: &JsonlWriter,
    progress: &mut Progress,
    options: &mut Options<'_>,
) {
    while progress.saved < writer.rows_written() {
        progress.saved += 1;
        options.report_progress(*progress);
    }
}

/// A fingerprint of a file: its length and a hash of its contents, stable across releases (a
/// 64-bit multiply-xor hash of its 8-byte words, the last one zero-padded, mixed with the
/// length). With `prefix`, also the fingerprint of the first `prefix` bytes (if the file is at
/// least that long), in the same pass.
pub(crate) async fn fingerprint(path: &Path, prefix: Option<u64>) -> io::Result<Fingerprint> {
    let mut file = async_fs::File::open(path).await?;
    let mut buf = vec![0u8; 1 << 20];
    let mut hasher = Hasher::default();
    let mut at_prefix = None;
    loop {
        let mut want = buf.len();
        if let Some(prefix) = prefix
            && at_prefix.is_none()
            && hasher.len < prefix
        {
            want = want.min((prefix - hasher.len) as usize);
        }
        let n = file.read(&mut buf[..want]).await?;
        if n == 0 {
            break;
        }
        hasher.write(&buf[..n]);
        if prefix == Some(hasher.len) {
            at_prefix = Some(hasher.finish());
        }
    }
    if prefix == Some(0) {
        at_prefix = Some(Hasher::default().finish());
    }
    Ok(Fingerprint {
        whole: hasher.finish(),
        prefix: at_prefix,
    })
}

/// The number of rows a file holds, counted as [`count_lines`](super::reader::count_lines)
/// counts them (lines that are not blank), and the fingerprint of the whole file, as
/// [`fingerprint`] makes it: both in one read of the file, on the thread pool.
pub(crate) async fn count_and_fingerprint(path: &Path) -> io::Result<(u64, (u64, u64))> {
    let path = path.to_owned();
    blocking::unblock(move || count_and_fingerprint_blocking(&path, 1 << 20)).await
}

/// [`count_and_fingerprint`], reading `chunk` bytes at a time: a scoped thread reads and
/// counts while this one hashes (the hash, a chain of multiplications, takes the longest),
/// the buffers going back and forth between them (at most four).
fn count_and_fingerprint_blocking(path: &Path, chunk: usize) -> io::Result<(u64, (u64, u64))> {
    let mut file = std::fs::File::open(path)?;
    let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(2);
    let (empty_tx, empty_rx) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::scope(|scope| {
        // A thread the OS refuses is an error of the run, not a panic.
        let reader =
            std::thread::Builder::new().spawn_scoped(scope, move || -> io::Result<u64> {
                let mut rows = 0;
                // Whether the current line has a byte that is not JSON whitespace: it is a row.
                let mut in_row = false;
                let has_row =
                    |bytes: &[u8]| bytes.iter().any(|b| !matches!(b, b' ' | b'\t' | b'\r'));
                loop {
                    let mut buf = empty_rx.try_recv().unwrap_or_default();
                    buf.resize(chunk, 0);
                    let n = loop {
                        match file.read(&mut buf) {
                            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                            result => break result?,
                        }
                    };
                    if n == 0 {
                        break;
                    }
                    buf.truncate(n);
                    let mut start = 0;
                    for end in memchr::memchr_iter(b'\n', &buf) {
                        rows += u64::from(in_row || has_row(&buf[start..end]));
                        in_row = false;
                        start = end + 1;
                    }
                    in_row = in_row || has_row(&buf[start..]);
                    if full_tx.send(buf).is_err() {
                        break;
                    }
                }
                Ok(rows + u64::from(in_row))
            })?;
        let mut hasher = Hasher::default();
        for buf in full_rx {
            hasher.write(&buf);
            // The reader may be done: then the buffer is dropped.
            let _ = empty_tx.send(buf);
        }
        let rows = reader
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the reading thread panicked")))?;
        Ok((rows, hasher.finish()))
    })
}

/// What [`fingerprint`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fingerprint {
    /// The length and the hash of the whole file.
    pub(crate) whole: (u64, u64),
    /// The same for the asked prefix, if the file is that long.
    pub(crate) prefix: Option<(u64, u64)>,
}

const PRIME: u64 = 0x0000_0100_0000_01b3;

struct Hasher {
    hash: u64,
    len: u64,
    /// Bytes of a word not yet complete.
    carry: [u8; 8],
    carried: usize,
}

impl Default for Hasher {
    fn default() -> Self {
        Hasher {
            hash: 0xcbf2_9ce4_8422_2325,
            len: 0,
            carry: [0; 8],
            carried: 0,
        }
    }
}

impl Hasher {
    fn write(&mut self, mut bytes: &[u8]) {
        self.len += bytes.len() as u64;
        if self.carried > 0 {
            let take = (8 - self.carried).min(bytes.len());
            self.carry[self.carried..self.carried + take].copy_from_slice(&bytes[..take]);
            self.carried += take;
            bytes = &bytes[take..];
            if self.carried < 8 {
                return;
            }
            self.word(self.carry);
            self.carried = 0;
        }
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            self.word(word.try_into().expect("8 bytes"));
        }
        let rest = words.remainder();
        self.carry[..rest.len()].copy_from_slice(rest);
        self.carried = rest.len();
    }

    fn word(&mut self, word: [u8; 8]) {
        self.hash = (self.hash ^ u64::from_le_bytes(word)).wrapping_mul(PRIME);
    }

    fn finish(&self) -> (u64, u64) {
        let mut hash = self.hash;
        if self.carried > 0 {
            let mut last = [0u8; 8];
            last[..self.carried].copy_from_slice(&self.carry[..self.carried]);
            hash = (hash ^ u64::from_le_bytes(last)).wrapping_mul(PRIME);
        }
        hash ^= self.len;
        (self.len, hash ^ (hash >> 29))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_does_not_depend_on_how_the_bytes_are_cut() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 31 % 251) as u8).collect();
        let mut whole = Hasher::default();
        whole.write(&data);
        for cut in [1, 3, 7, 8, 9, 500] {
            let mut pieces = Hasher::default();
            for piece in data.chunks(cut) {
                pieces.write(piece);
            }
            assert_eq!(pieces.finish(), whole.finish(), "cut {cut}");
        }
        let mut other = Hasher::default();
        other.write(&data[..999]);
        assert_ne!(other.finish(), whole.finish());
    }

    #[test]
    fn rows_are_counted_and_fingerprinted_in_one_pass() {
        use futures::executor::block_on;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        // Lines across the 1 MiB reads, blank lines of every kind, with and without a last
        // newline.
        let mut big = Vec::new();
        for i in 0..40_000 {
            big.extend_from_slice(
                format!("{{\"i\":{i},\"pad\":\"{}\"}}\n", "x".repeat(i % 61)).as_bytes(),
            );
            if i % 97 == 0 {
                big.extend_from_slice(b" \t\r\n\n");
            }
        }
        for content in [
            &b""[..],
            b"\n\n \n",
            b"1\n2\n3\n",
            b"1\n\n2\n \t\n3",
            b"1\nnot json\n   ",
            b"  x",
            &big,
            &big[..big.len() - 1],
        ] {
            std::fs::write(&path, content).unwrap();
            let (rows, whole) = block_on(count_and_fingerprint(&path)).unwrap();
            let counted = block_on(super::super::reader::count_lines(&path)).unwrap();
            assert_eq!(rows, counted, "{}", content.len());
            assert_eq!(whole, block_on(fingerprint(&path, None)).unwrap().whole);
            // Reads cut anywhere, lines across them, buffers reused.
            for chunk in [1, 3, 8, 1000] {
                if content.len() / chunk < 10_000 {
                    let small = count_and_fingerprint_blocking(&path, chunk).unwrap();
                    assert_eq!(small, (rows, whole), "{} by {chunk}", content.len());
                }
            }
        }
    }

    #[test]
    fn a_prefix_is_fingerprinted_in_the_same_pass() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"hello world").unwrap();
        let both = futures::executor::block_on(fingerprint(&path, Some(5))).unwrap();
        std::fs::write(&path, b"hello").unwrap();
        let prefix = futures::executor::block_on(fingerprint(&path, None)).unwrap();
        assert_eq!(both.prefix, Some(prefix.whole));
        assert_ne!(both.whole, prefix.whole);
        let short = futures::executor::block_on(fingerprint(&path, Some(50))).unwrap();
        assert_eq!(short.prefix, None);
    }
}

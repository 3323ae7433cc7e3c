//! Borrowed parsing of rows into raw JSON pieces, for functions that copy columns verbatim.
//!
//! A source row is parsed once: its key column and the columns to keep are lent as raw JSON
//! text (byte ranges of the line), everything else is skipped, though still validated. An
//! object's entries are lent in their order, so an output can be rendered column by column
//! without building a `serde_json::Value`, and the same input always renders the same bytes.

use std::fmt;
use std::ops::Range;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::key::{KeyRef, KeySeed};

/// What a source row holds: its key, and the raw text of its key column.
#[derive(Debug)]
pub(crate) struct SourceRow<'a> {
    /// The key, or why there is none.
    pub(crate) key: RowKey<'a>,
    /// The raw text of the key column.
    pub(crate) raw_key: &'a str,
}

/// What a row's key column held.
#[derive(Debug)]
pub(crate) enum RowKey<'a> {
    Key(KeyRef<'a>),
    /// The row is an object without the key column.
    Missing,
    /// The key column holds an array or an object.
    NotScalar,
    /// The row is not an object.
    NotObject,
}

/// Parses `line` (valid UTF-8) as a source row, lending its key, and putting in `kept` where
/// each of the `keep` columns is in the line (`None` if absent). `kept` is reused from row to
/// row, so parsing allocates nothing but an escaped string key.
pub(crate) fn parse_source_row<'a>(
    line: &'a str,
    key_column: &str,
    keep: &[String],
    kept: &mut Vec<Option<Range<usize>>>,
) -> Result<SourceRow<'a>, serde_json::Error> {
    kept.clear();
    kept.resize(keep.len(), None);
    let mut deserializer = serde_json::Deserializer::from_str(line);
    let row = SourceSeed {
        line,
        key_column,
        keep,
        kept,
    }
    .deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(row)
}

struct SourceSeed<'c, 'a> {
    line: &'a str,
    key_column: &'c str,
    keep: &'c [String],
    kept: &'c mut Vec<Option<Range<usize>>>,
}

impl<'de> DeserializeSeed<'de> for SourceSeed<'_, 'de> {
    type Value = SourceRow<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for SourceSeed<'_, 'de> {
    type Value = SourceRow<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut row = SourceRow {
            key: RowKey::Missing,
            raw_key: "",
        };
        let seed = ColumnSeed {
            key_column: self.key_column,
            keep: self.keep,
        };
        while let Some(column) = map.next_key_seed(seed)? {
            match column {
                Column::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
                Column::Key => {
                    let raw: &'de RawValue = map.next_value()?;
                    row.raw_key = raw.get();
                    let mut deserializer = serde_json::Deserializer::from_str(raw.get());
                    row.key = match KeySeed.deserialize(&mut deserializer) {
                        Ok(Some(key)) => RowKey::Key(key),
                        Ok(None) => RowKey::NotScalar,
                        Err(error) => return Err(de::Error::custom(without_position(&error))),
                    };
                }
                Column::Keep(i) => {
                    let raw: &'de RawValue = map.next_value()?;
                    self.kept[i] = Some(range_in(self.line, raw.get()));
                }
            }
        }
        Ok(row)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(not_an_object())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(not_an_object())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(not_an_object())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(not_an_object())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(not_an_object())
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(not_an_object())
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(not_an_object())
    }
}

fn not_an_object<'a>() -> SourceRow<'a> {
    SourceRow {
        key: RowKey::NotObject,
        raw_key: "",
    }
}

/// Where `part`, a slice of `whole`, lies in it.
fn range_in(whole: &str, part: &str) -> Range<usize> {
    let start = part.as_ptr() as usize - whole.as_ptr() as usize;
    start..start + part.len()
}

/// Which column a field name is.
#[derive(Clone, Copy)]
enum Column {
    Key,
    Keep(usize),
    Other,
}

#[derive(Clone, Copy)]
struct ColumnSeed<'c> {
    key_column: &'c str,
    keep: &'c [String],
}

impl<'de> DeserializeSeed<'de> for ColumnSeed<'_> {
    type Value = Column;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Column, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for ColumnSeed<'_> {
    type Value = Column;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<Column, E> {
        if name == self.key_column {
            return Ok(Column::Key);
        }
        Ok(match self.keep.iter().position(|keep| keep == name) {
            Some(i) => Column::Keep(i),
            None => Column::Other,
        })
    }
}

/// Parses `json` as an object and lends its entries in order: each name (unescaped) and its
/// raw value. `None` if it is valid JSON but not an object.
pub(crate) fn object_entries(
    json: &str,
) -> Result<Option<Vec<(String, &RawValue)>>, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_str(json);
    let entries = EntriesSeed.deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(entries)
}

struct EntriesSeed;

impl<'de> DeserializeSeed<'de> for EntriesSeed {
    type Value = Option<Vec<(String, &'de RawValue)>>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for EntriesSeed {
    type Value = Option<Vec<(String, &'de RawValue)>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(name) = map.next_key::<String>()? {
            let value: &'de RawValue = map.next_value()?;
            entries.push((name, value));
        }
        Ok(Some(entries))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// A fast path for [`parse_source_row`] on plain rows: scans `line` without `serde_json` and,
/// if it is a JSON object in a plain subset of JSON, returns the raw text of its key column
/// and puts in `kept` where each of the `keep` columns is, as [`parse_source_row`] would.
///
/// It answers only when the answer is sure: `None` whenever the line leaves the subset (a
/// string with an escape or a control character, nesting deeper than [`MAX_SCAN_DEPTH`], a row
/// that is not an object) or is not a good row (malformed, a key column missing or not a
/// scalar, a kept column missing), and the caller then parses the line with
/// [`parse_source_row`], which gives the same answer or the exact error. So when it answers,
/// `parse_source_row` accepts the line, with the same raw key (a scalar) and kept ranges, and
/// every kept column present (a property test checks this on random and mutated lines). The
/// key itself is not parsed: a caller that meets a new spelling parses it with [`raw_key`].
pub(crate) fn scan_source_row<'a>(
    line: &'a str,
    key_column: &str,
    keep: &[String],
    kept: &mut Vec<Option<Range<usize>>>,
) -> Option<&'a str> {
    kept.clear();
    kept.resize(keep.len(), None);
    let mut scan = Scanner {
        bytes: line.as_bytes(),
        at: 0,
    };
    scan.whitespace();
    scan.eat(b'{')?;
    scan.whitespace();
    let mut raw_key = None;
    if scan.peek() == Some(b'}') {
        return None;
    }
    loop {
        scan.eat(b'"')?;
        let name = scan.string_body()?;
        let name = &scan.bytes[name];
        scan.whitespace();
        scan.eat(b':')?;
        scan.whitespace();
        let start = scan.at;
        if name == key_column.as_bytes() {
            // Only a scalar is a key, and only one key column is simple; the rest goes to
            // the full parse (which parses each key column, so a bad one is an error).
            if raw_key.is_some() || matches!(scan.peek()?, b'[' | b'{') {
                return None;
            }
            scan.value(0)?;
            raw_key = Some(start..scan.at);
        } else if let Some(i) = keep.iter().position(|keep| keep.as_bytes() == name) {
            scan.value(0)?;
            kept[i] = Some(start..scan.at);
        } else {
            scan.value(0)?;
        }
        scan.whitespace();
        match scan.next()? {
            b',' => scan.whitespace(),
            b'}' => break,
            _ => return None,
        }
    }
    scan.whitespace();
    if scan.at != scan.bytes.len() || kept.iter().any(Option::is_none) {
        return None;
    }
    // In bounds and on character boundaries: each range starts and ends at an ASCII byte.
    line.get(raw_key?)
}

/// How deep [`scan_source_row`] follows arrays and objects in a value before it leaves the
/// line to `serde_json`.
const MAX_SCAN_DEPTH: usize = 64;

/// A cursor over the bytes of a line, for [`scan_source_row`]: each method returns `None` when
/// the line leaves the plain subset of JSON that it accepts.
struct Scanner<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.at += 1;
        Some(byte)
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.next()? == byte).then_some(())
    }

    /// Skips JSON whitespace, as `serde_json` takes it.
    fn whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    /// After an opening `"`: the range of a string's text, up to its closing `"` (eaten).
    /// `None` at an escape or a control character (left to `serde_json`) or the end.
    fn string_body(&mut self) -> Option<Range<usize>> {
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGHS: u64 = ONES << 7;
        let start = self.at;
        // Eight bytes at a time: the first byte that is `"`, `\` or below 0x20 stops it.
        while let Some(chunk) = self.bytes.get(self.at..self.at + 8) {
            let word = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
            let quote = word ^ (ONES * u64::from(b'"'));
            let backslash = word ^ (ONES * u64::from(b'\\'));
            let found = (word.wrapping_sub(ONES * 0x20) & !word)
                | (quote.wrapping_sub(ONES) & !quote)
                | (backslash.wrapping_sub(ONES) & !backslash);
            let found = found & HIGHS;
            if found != 0 {
                // The lowest flagged byte is a real stop (false flags only follow one).
                self.at += (found.trailing_zeros() / 8) as usize;
                break;
            }
            self.at += 8;
        }
        loop {
            match self.next()? {
                b'"' => return Some(start..self.at - 1),
                b'\\' | 0..=0x1f => return None,
                _ => {}
            }
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.at;
        while let Some(b'0'..=b'9') = self.peek() {
            self.at += 1;
        }
        self.at - start
    }

    /// A number, by the JSON grammar (as `serde_json` checks a number it skips).
    fn number(&mut self) -> Option<()> {
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.next()? {
            b'0' => {}
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            if self.digits() == 0 {
                return None;
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.at += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.at += 1;
            }
            if self.digits() == 0 {
                return None;
            }
        }
        Some(())
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.at + word.len();
        (self.bytes.get(self.at..end)? == word).then(|| self.at = end)
    }

    /// A value, at its first byte (after any whitespace); `depth` arrays or objects enclose it.
    fn value(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'"' => {
                self.at += 1;
                self.string_body().map(drop)
            }
            b'-' | b'0'..=b'9' => self.number(),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            open @ (b'[' | b'{') => {
                if depth >= MAX_SCAN_DEPTH {
                    return None;
                }
                self.at += 1;
                let close = if open == b'[' { b']' } else { b'}' };
                self.whitespace();
                if self.peek() == Some(close) {
                    self.at += 1;
                    return Some(());
                }
                loop {
                    if open == b'{' {
                        self.eat(b'"')?;
                        self.string_body()?;
                        self.whitespace();
                        self.eat(b':')?;
                        self.whitespace();
                    }
                    self.value(depth + 1)?;
                    self.whitespace();
                    match self.next()? {
                        b',' => self.whitespace(),
                        byte if byte == close => return Some(()),
                        _ => return None,
                    }
                }
            }
            _ => None,
        }
    }
}

/// The message of an error of a nested parse, without its position. `serde_json` reads a
/// position at the end of a custom message as the error's own; without one, the error takes
/// the position in the row where the nested value ends.
fn without_position(error: &serde_json::Error) -> String {
    let message = error.to_string();
    let suffix = format!(" at line {} column {}", error.line(), error.column());
    match message.strip_suffix(&suffix) {
        Some(message) => message.to_owned(),
        None => message,
    }
}

/// Parses raw JSON text as a key: `None` for an array or an object.
pub(crate) fn raw_key(raw: &str) -> Result<Option<KeyRef<'_>>, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_str(raw);
    let key = KeySeed.deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn source_rows_lend_key_and_kept_columns_verbatim() {
        let line = r#"{"b": [1, 2], "key": "caf\u00e9", "a": 10.0, "skip": {"x": 1}}"#;
        let keep = vec!["a".to_owned(), "b".to_owned(), "none".to_owned()];
        let mut kept = Vec::new();
        let row = parse_source_row(line, "key", &keep, &mut kept).unwrap();
        assert!(matches!(&row.key, RowKey::Key(k) if k.to_key().as_str() == Some("café")));
        assert_eq!(row.raw_key, r#""caf\u00e9""#);
        let kept: Vec<Option<&str>> = kept
            .iter()
            .map(|range| range.clone().map(|r| &line[r]))
            .collect();
        assert_eq!(kept, [Some("10.0"), Some("[1, 2]"), None]);
    }

    #[test]
    fn source_rows_that_are_not_objects_or_lack_a_key() {
        let (keep, mut kept) = (vec![], vec![]);
        let mut parse = |line| parse_source_row(line, "key", &keep, &mut kept).map(|row| row.key);
        assert!(matches!(parse("[1]").unwrap(), RowKey::NotObject));
        assert!(matches!(parse(r#"{"a":1}"#).unwrap(), RowKey::Missing));
        assert!(matches!(
            parse(r#"{"key":[1]}"#).unwrap(),
            RowKey::NotScalar
        ));
        assert!(parse(r#"{"key":1} x"#).is_err());
    }

    /// The fast scan answers on plain rows, with what the full parse finds.
    #[test]
    fn scan_answers_plain_rows_as_the_parse_does() {
        let keep = vec!["id".to_owned(), "text".to_owned()];
        let mut kept = Vec::new();
        let line =
            r#" {"id": 7, "key" :"customer-01","text":"é [x]","n":{"a":[1,-2.5e+3,true]} } "#;
        let raw = scan_source_row(line, "key", &keep, &mut kept).unwrap();
        assert_eq!(raw, r#""customer-01""#);
        let kept: Vec<&str> = kept.iter().map(|r| &line[r.clone().unwrap()]).collect();
        assert_eq!(kept, ["7", r#""é [x]""#]);
        // Left to the full parse: escapes, a missing or repeated or nested key, a missing kept
        // column, and anything malformed.
        for line in [
            r#"{"id":1,"key":"a\"b","text":""}"#,
            r#"{"id":1,"text":""}"#,
            r#"{"id":1,"key":1,"key":2,"text":""}"#,
            r#"{"id":1,"key":[1],"text":""}"#,
            r#"{"id":1,"key":1}"#,
            r#"{"id":01,"key":1,"text":""}"#,
            r#"{"id":1,"key":1,"text":"",}"#,
            r#"{"id":1,"key":1,"text":""} x"#,
            "[1]",
        ] {
            assert_eq!(
                scan_source_row(line, "key", &keep, &mut Vec::new()),
                None,
                "{line}"
            );
        }
    }

    /// Bits of JSON, good and bad, to build lines from.
    fn json_text(depth: u32) -> BoxedStrategy<String> {
        let good = prop_oneof![
            Just("null".to_owned()),
            Just("true".to_owned()),
            Just("false".to_owned()),
            Just("-0.0E-7".to_owned()),
            Just("1e400".to_owned()),
            any::<i64>().prop_map(|n| n.to_string()),
            any::<f64>().prop_map(|x| x.to_string()),
            "[a-cé/ ]{0,4}".prop_map(|s| format!("\"{s}\"")),
        ];
        let bad = prop_oneof![
            Just("nul".to_owned()),
            Just("-".to_owned()),
            Just("01".to_owned()),
            Just("1.".to_owned()),
            Just("1e".to_owned()),
            Just(".5".to_owned()),
            "[a-cé\"\\\\/ \\t\u{1}]{0,4}".prop_map(|s| format!("\"{s}\"")),
            r#"\\u[0-9a-fA-FdD]{0,4}"#.prop_map(|s| format!("\"{s}\"")),
        ];
        let scalar = prop_oneof![6 => good, 1 => bad];
        if depth == 0 {
            return scalar.boxed();
        }
        let name = prop_oneof![
            Just("\"key\"".to_owned()),
            Just("\"id\"".to_owned()),
            Just("\"text\"".to_owned()),
            Just("\"k\\u0065y\"".to_owned()),
            "[a-z]{0,2}".prop_map(|s| format!("\"{s}\"")),
        ];
        let ws = prop_oneof![Just(""), Just(""), Just(" "), Just("\t"), Just("\r\n ")];
        let entry = (name, ws.clone(), json_text(depth - 1), ws.clone())
            .prop_map(|(name, ws, value, ws2)| format!("{ws}{name}{ws2}:{ws}{value}{ws2}"));
        let object = proptest::collection::vec(entry, 0..5)
            .prop_map(|entries| format!("{{{}}}", entries.join(",")));
        let array = proptest::collection::vec(json_text(depth - 1), 0..4)
            .prop_map(|items| format!("[{}]", items.join(",")));
        prop_oneof![3 => scalar, 2 => object, 1 => array].boxed()
    }

    /// A line built from bits of JSON, then maybe mutated: characters deleted, inserted or
    /// replaced.
    fn line() -> impl Strategy<Value = String> {
        let rows = prop_oneof![
            // Mostly rows with the columns the test asks for.
            (json_text(0), json_text(1), json_text(2), json_text(2)).prop_map(
                |(key, id, text, other)| {
                    format!(r#"{{"id":{id},"key":{key},"o":{other},"text":{text}}}"#)
                }
            ),
            json_text(3),
        ];
        let edit = (
            any::<proptest::sample::Index>(),
            0..3u8,
            proptest::sample::select(
                &[
                    '"', '\\', '{', '}', '[', ']', ',', ':', ' ', '0', '1', '-', '.', 'e', 'n',
                    'é', '\u{1}',
                ][..],
            ),
        );
        (rows, proptest::collection::vec(edit, 0..4), any::<bool>()).prop_map(
            |(line, edits, edit)| {
                let edits = if edit { edits } else { Vec::new() };
                let mut chars: Vec<char> = line.chars().collect();
                for (at, how, c) in edits {
                    let i = at.index(chars.len() + 1);
                    match how {
                        0 if i < chars.len() => {
                            chars.remove(i);
                        }
                        1 if i < chars.len() => chars[i] = c,
                        _ => chars.insert(i, c),
                    }
                }
                chars.into_iter().collect()
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Whenever the fast scan answers, the full parse accepts the line and finds the same.
        #[test]
        fn scan_agrees_with_serde_json(line in line(), with_kept in any::<bool>()) {
            // With kept columns (source rows) or without (the key-only parses of a resume).
            let keep = if with_kept {
                vec!["id".to_owned(), "text".to_owned()]
            } else {
                Vec::new()
            };
            let mut scanned = Vec::new();
            let Some(raw) = scan_source_row(&line, "key", &keep, &mut scanned) else {
                return Ok(());
            };
            let mut kept = Vec::new();
            let row = parse_source_row(&line, "key", &keep, &mut kept);
            // The caller parses the raw key; if that fails it takes the full parse's answer.
            match raw_key(raw) {
                Ok(Some(key)) => {
                    let row = row.unwrap();
                    prop_assert_eq!(row.raw_key, raw);
                    prop_assert!(matches!(row.key, RowKey::Key(k) if k == key));
                    prop_assert_eq!(&kept, &scanned);
                    prop_assert!(kept.iter().all(Option::is_some));
                }
                _ => prop_assert!(row.is_err() || !matches!(row.unwrap().key, RowKey::Key(_))),
            }
        }
    }

    #[test]
    fn object_entries_keep_their_order() {
        let entries = object_entries(r#"{"z": 1, "a": {"n": [1]}, "m\u00e9": "x"}"#)
            .unwrap()
            .unwrap();
        let entries: Vec<(&str, &str)> =
            entries.iter().map(|(n, v)| (n.as_str(), v.get())).collect();
        assert_eq!(
            entries,
            [("z", "1"), ("a", r#"{"n": [1]}"#), ("mé", r#""x""#)]
        );
        assert!(object_entries("[1, 2]").unwrap().is_none());
        assert!(object_entries("{").is_err());
    }
}

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
                        Err(error) => return Err(de::Error::custom(error)),
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

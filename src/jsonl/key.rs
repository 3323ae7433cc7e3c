//! The key identity rule: which JSON values are one key.
//!
//! The rule, stated in full on [`Key`] (the one place the crate decides it): a key is a JSON
//! scalar; strings are equal after unescaping, numbers by value (`10 == 10.0 == 1e1`,
//! `-0.0 == 0`), and nothing else is equal across kinds (`"10" != 10`, `true != 1`). Arrays,
//! objects and non-finite numbers are not keys.
//!
//! Every key is stored in one canonical form ([`Repr`]), so the derived `Eq` and `Hash` are the
//! rule, and [`KeyRef`], the form borrowed from a line, hashes and compares as [`Key`] does.

use std::borrow::{Borrow, Cow};
use std::cmp::Ordering;
use std::fmt;
use std::hash::Hash;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::error::{Error, ErrorKind};

/// One key of a JSONL file: a string, a number, a bool or `null`.
///
/// # The key identity rule
///
/// Two keys are one key when:
///
/// - both are strings with the same characters once escapes are undone: `"caf\u00e9"` and
///   `"café"` are one key;
/// - both are numbers with the same value: `10`, `10.0` and `1e1` are one key, as they are in
///   Python, and so are `-0.0` and `0`;
/// - both are `true`, both are `false`, or both are `null`.
///
/// Nothing else is equal: no string equals a number (`"10"` is not `10`), and no bool equals a
/// number. Python's `True == 1` is deliberately *not* kept, since a file that mixes the two
/// almost certainly means two different things.
///
/// An array or an object is not a key, and neither is a number that is not finite (`NaN` and
/// the infinities, which JSON cannot write anyway).
///
/// Numbers are read as `serde_json` reads them: an integer literal is exact within the range of
/// `i64` and `u64`, and a larger one is read as the nearest `f64` (Python keeps it exact), so two
/// huge integer literals that round to the same `f64` are one key.
///
/// Each key has one canonical form, which [`Display`](fmt::Display) (compact JSON),
/// [`Key::to_value`] and serialization show: an integral number (`10.0`, `1e1`) is an integer
/// (`10`); a number with a fraction keeps its `f64` value, written so that it reads back the same.
///
/// Keys are ordered `null` < `false` < `true` < numbers (by value) < strings (by their UTF-8
/// bytes).
///
/// # Examples
///
/// ```
/// use abstractions::jsonl::Key;
/// use serde_json::json;
///
/// // Numbers compare by value, strings after unescaping.
/// assert_eq!(Key::try_from(&json!(10.0))?, Key::from(10));
/// let parsed: Key = serde_json::from_str(r#""caf\u00e9""#)?;
/// assert_eq!(parsed, Key::from("café"));
///
/// // A string is never a number, a bool never a number.
/// assert_ne!(Key::from("10"), Key::from(10));
/// assert_ne!(Key::from(true), Key::from(1));
///
/// // Arrays and objects are not keys.
/// assert!(Key::try_from(&json!([1, 2])).is_err());
///
/// // A key shows itself as compact JSON, in its canonical form.
/// assert_eq!(Key::try_from(1e1)?.to_string(), "10");
/// assert_eq!(Key::from("a\"b").to_string(), r#""a\"b""#);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(KeyRef<'static>);

/// A key whose string, if it is one, may be borrowed from a line being parsed.
///
/// It hashes, compares and orders exactly as the [`Key`] it stands for, and a `Key` borrows as a
/// `KeyRef`, so a `HashMap<Key, _>` can be looked up with a `KeyRef` parsed from a line without
/// allocating.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct KeyRef<'a>(Repr<'a>);

/// The canonical form. Every value has exactly one representation, so the derived `Eq` and
/// `Hash` are the rule: integral numbers in `i128` range are `Int`; any other finite number is
/// `Float` (by its bits; never `-0.0`, which is integral).
#[derive(Clone, PartialEq, Eq, Hash)]
enum Repr<'a> {
    Null,
    Bool(bool),
    Int(i128),
    Float(u64),
    Str(Cow<'a, str>),
}

/// `2^127` as an `f64`: the integral floats in `[-2^127, 2^127)` are `i128`s.
const TWO_POW_127: f64 = 170_141_183_460_469_231_731_687_303_715_884_105_728.0;

impl<'a> KeyRef<'a> {
    pub(crate) const NULL: KeyRef<'static> = KeyRef(Repr::Null);

    pub(crate) fn bool(value: bool) -> Self {
        KeyRef(Repr::Bool(value))
    }

    pub(crate) fn i64(value: i64) -> Self {
        KeyRef(Repr::Int(value.into()))
    }

    pub(crate) fn u64(value: u64) -> Self {
        KeyRef(Repr::Int(value.into()))
    }

    /// The key of a number read as `f64`, or `None` if it is not finite.
    pub(crate) fn f64(value: f64) -> Option<Self> {
        if !value.is_finite() {
            return None;
        }
        if value.fract() == 0.0 && (-TWO_POW_127..TWO_POW_127).contains(&value) {
            // Exact: integral and in range. `-0.0` becomes `0`.
            Some(KeyRef(Repr::Int(value as i128)))
        } else {
            Some(KeyRef(Repr::Float(value.to_bits())))
        }
    }

    pub(crate) fn str(value: impl Into<Cow<'a, str>>) -> Self {
        KeyRef(Repr::Str(value.into()))
    }

    /// The owned key, copying a borrowed string.
    pub(crate) fn to_key(&self) -> Key {
        Key(KeyRef(match &self.0 {
            Repr::Null => Repr::Null,
            Repr::Bool(b) => Repr::Bool(*b),
            Repr::Int(n) => Repr::Int(*n),
            Repr::Float(bits) => Repr::Float(*bits),
            Repr::Str(s) => Repr::Str(Cow::Owned(s.as_ref().to_owned())),
        }))
    }

    /// The owned key, copying the string only if it is borrowed.
    pub(crate) fn into_key(self) -> Key {
        match self.0 {
            Repr::Str(Cow::Owned(s)) => Key(KeyRef(Repr::Str(Cow::Owned(s)))),
            _ => self.to_key(),
        }
    }

    fn to_value(&self) -> Value {
        match &self.0 {
            Repr::Null => Value::Null,
            Repr::Bool(b) => Value::Bool(*b),
            Repr::Int(n) => {
                if let Ok(n) = i64::try_from(*n) {
                    Value::from(n)
                } else if let Ok(n) = u64::try_from(*n) {
                    Value::from(n)
                } else {
                    // Only an integral `f64` is an `Int` out of `i64` and `u64` range, so this is
                    // exact.
                    Value::from(*n as f64)
                }
            }
            Repr::Float(bits) => Value::from(f64::from_bits(*bits)),
            Repr::Str(s) => Value::String(s.as_ref().to_owned()),
        }
    }

    /// The rank of the kind, for ordering: null, bools, numbers, strings.
    fn rank(&self) -> u8 {
        match self.0 {
            Repr::Null => 0,
            Repr::Bool(_) => 1,
            Repr::Int(_) | Repr::Float(_) => 2,
            Repr::Str(_) => 3,
        }
    }
}

/// Orders an integer against a `Float` (which is non-integral, or out of `i128` range).
fn cmp_int_float(int: i128, float: f64) -> Ordering {
    if float >= TWO_POW_127 {
        Ordering::Less
    } else if float < -TWO_POW_127 {
        Ordering::Greater
    } else if int <= float.floor() as i128 {
        // `float` has a fraction, so it is strictly above its floor.
        Ordering::Less
    } else {
        Ordering::Greater
    }
}

impl Ord for KeyRef<'_> {
    /// `null` < `false` < `true` < numbers (by value) < strings (by UTF-8 bytes).
    fn cmp(&self, other: &Self) -> Ordering {
        match (&self.0, &other.0) {
            (Repr::Bool(a), Repr::Bool(b)) => a.cmp(b),
            (Repr::Int(a), Repr::Int(b)) => a.cmp(b),
            (Repr::Float(a), Repr::Float(b)) => f64::from_bits(*a).total_cmp(&f64::from_bits(*b)),
            (Repr::Int(a), Repr::Float(b)) => cmp_int_float(*a, f64::from_bits(*b)),
            (Repr::Float(a), Repr::Int(b)) => cmp_int_float(*b, f64::from_bits(*a)).reverse(),
            (Repr::Str(a), Repr::Str(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl PartialOrd for KeyRef<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Debug for KeyRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyRef({self})")
    }
}

impl fmt::Display for KeyRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::Null => f.write_str("null"),
            Repr::Bool(b) => write!(f, "{b}"),
            Repr::Int(n) => write!(f, "{n}"),
            Repr::Float(_) | Repr::Str(_) => write!(f, "{}", self.to_value()),
        }
    }
}

impl<'a> Borrow<KeyRef<'a>> for Key {
    fn borrow(&self) -> &KeyRef<'a> {
        &self.0
    }
}

impl Key {
    /// The `null` key.
    ///
    /// # Examples
    ///
    /// ```
    /// use abstractions::jsonl::Key;
    ///
    /// assert_eq!(Key::NULL.to_string(), "null");
    /// assert_eq!(Key::NULL, Key::try_from(&serde_json::Value::Null)?);
    /// # Ok::<(), abstractions::jsonl::Error>(())
    /// ```
    pub const NULL: Key = Key(KeyRef::NULL);

    /// The key as a JSON value, in its canonical form.
    ///
    /// # Examples
    ///
    /// ```
    /// use abstractions::jsonl::Key;
    /// use serde_json::json;
    ///
    /// assert_eq!(Key::try_from(2.0)?.to_value(), json!(2));
    /// assert_eq!(Key::try_from(2.5)?.to_value(), json!(2.5));
    /// assert_eq!(Key::from("x").to_value(), json!("x"));
    /// # Ok::<(), abstractions::jsonl::Error>(())
    /// ```
    pub fn to_value(&self) -> Value {
        self.0.to_value()
    }

    /// The string, if the key is a string.
    ///
    /// # Examples
    ///
    /// ```
    /// use abstractions::jsonl::Key;
    ///
    /// assert_eq!(Key::from("café").as_str(), Some("café"));
    /// assert_eq!(Key::from(1).as_str(), None);
    /// ```
    pub fn as_str(&self) -> Option<&str> {
        match &self.0.0 {
            Repr::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The number, if the key is an integer that fits an `i64` (`10.0` is the integer 10).
    ///
    /// # Examples
    ///
    /// ```
    /// use abstractions::jsonl::Key;
    ///
    /// assert_eq!(Key::from(-7).as_i64(), Some(-7));
    /// assert_eq!(Key::try_from(10.0)?.as_i64(), Some(10));
    /// assert_eq!(Key::try_from(0.5)?.as_i64(), None);
    /// assert_eq!(Key::from("7").as_i64(), None);
    /// # Ok::<(), abstractions::jsonl::Error>(())
    /// ```
    pub fn as_i64(&self) -> Option<i64> {
        match self.0.0 {
            Repr::Int(n) => i64::try_from(n).ok(),
            _ => None,
        }
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({})", self.0)
    }
}

/// Compact JSON, in the canonical form: `"café"`, `10`, `0.5`, `true`, `null`.
impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl From<&str> for Key {
    fn from(value: &str) -> Self {
        Key(KeyRef::str(value.to_owned()))
    }
}

impl From<String> for Key {
    fn from(value: String) -> Self {
        Key(KeyRef::str(value))
    }
}

impl From<bool> for Key {
    fn from(value: bool) -> Self {
        Key(KeyRef::bool(value))
    }
}

macro_rules! from_integer {
    ($($signed:ty),* ; $($unsigned:ty),*) => {
        $(impl From<$signed> for Key {
            fn from(value: $signed) -> Self {
                Key(KeyRef::i64(value.into()))
            }
        })*
        $(impl From<$unsigned> for Key {
            fn from(value: $unsigned) -> Self {
                Key(KeyRef::u64(value.into()))
            }
        })*
    };
}

from_integer!(i8, i16, i32, i64; u8, u16, u32, u64);

fn invalid_key() -> Error {
    Error::new(ErrorKind::InvalidKey)
}

/// A finite number is a key; `NaN` and the infinities are not.
impl TryFrom<f64> for Key {
    type Error = Error;

    /// # Errors
    ///
    /// [`ErrorKind::InvalidKey`] if `value` is not finite.
    fn try_from(value: f64) -> Result<Self, Error> {
        KeyRef::f64(value).map(Key).ok_or_else(invalid_key)
    }
}

/// A string, number, bool or `null` is a key; an array or an object is not.
impl TryFrom<&Value> for Key {
    type Error = Error;

    /// # Errors
    ///
    /// [`ErrorKind::InvalidKey`] if `value` is an array or an object.
    fn try_from(value: &Value) -> Result<Self, Error> {
        match value {
            Value::Null => Ok(Key::NULL),
            Value::Bool(b) => Ok(Key::from(*b)),
            Value::Number(n) => {
                if let Some(n) = n.as_u64() {
                    Ok(Key::from(n))
                } else if let Some(n) = n.as_i64() {
                    Ok(Key::from(n))
                } else {
                    n.as_f64().ok_or_else(invalid_key).and_then(Key::try_from)
                }
            }
            Value::String(s) => Ok(Key::from(s.as_str())),
            Value::Array(_) | Value::Object(_) => Err(invalid_key()),
        }
    }
}

/// A string, number, bool or `null` is a key; an array or an object is not.
impl TryFrom<Value> for Key {
    type Error = Error;

    /// # Errors
    ///
    /// [`ErrorKind::InvalidKey`] if `value` is an array or an object.
    fn try_from(value: Value) -> Result<Self, Error> {
        match value {
            Value::String(s) => Ok(Key::from(s)),
            other => Key::try_from(&other),
        }
    }
}

impl From<Key> for Value {
    fn from(key: Key) -> Self {
        match key.0.0 {
            Repr::Str(s) => Value::String(s.into_owned()),
            _ => key.to_value(),
        }
    }
}

impl From<&Key> for Value {
    fn from(key: &Key) -> Self {
        key.to_value()
    }
}

/// Serializes the canonical form, as [`Key::to_value`] shows it.
impl Serialize for Key {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.0.0 {
            Repr::Null => serializer.serialize_unit(),
            Repr::Bool(b) => serializer.serialize_bool(*b),
            Repr::Int(n) => {
                if let Ok(n) = i64::try_from(*n) {
                    serializer.serialize_i64(n)
                } else if let Ok(n) = u64::try_from(*n) {
                    serializer.serialize_u64(n)
                } else {
                    serializer.serialize_f64(*n as f64)
                }
            }
            Repr::Float(bits) => serializer.serialize_f64(f64::from_bits(*bits)),
            Repr::Str(s) => serializer.serialize_str(s),
        }
    }
}

/// Deserializes any JSON scalar; an array or an object is an error.
impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match KeySeed.deserialize(deserializer)? {
            Some(key) => Ok(key.into_key()),
            None => Err(de::Error::custom(
                "a key must be a string, a number, a bool or null",
            )),
        }
    }
}

/// Deserializes a value as a [`KeyRef`] borrowing from the input when it can, or `None` for an
/// array or an object (which it skips, still checking it is valid).
#[derive(Clone, Copy, Debug)]
pub(crate) struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Option<KeyRef<'de>>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Option<KeyRef<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Some(KeyRef::NULL))
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Some(KeyRef::NULL))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Some(KeyRef::bool(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(KeyRef::i64(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(KeyRef::u64(v)))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        KeyRef::f64(v)
            .map(Some)
            .ok_or_else(|| E::custom("a key must be a finite number"))
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Some(KeyRef::str(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(KeyRef::str(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Some(KeyRef::str(v)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;
    use std::collections::HashMap;
    use std::hash::BuildHasher;

    fn key(text: &str) -> Key {
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    /// Hashing with one fixed hasher, so hashes of different values can be compared.
    fn fixed_hash<T: Hash + ?Sized>(value: &T) -> u64 {
        std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default()
            .hash_one(value)
    }

    #[track_caller]
    fn assert_same(a: &str, b: &str) {
        let (ka, kb) = (key(a), key(b));
        assert_eq!(ka, kb, "{a} and {b} should be one key");
        assert_eq!(fixed_hash(&ka), fixed_hash(&kb), "{a} and {b} hash apart");
        assert_eq!(ka.cmp(&kb), Ordering::Equal);
        assert_eq!(ka.to_string(), kb.to_string());
    }

    #[track_caller]
    fn assert_different(a: &str, b: &str) {
        let (ka, kb) = (key(a), key(b));
        assert_ne!(ka, kb, "{a} and {b} should be two keys");
        assert_ne!(ka.cmp(&kb), Ordering::Equal);
    }

    #[test]
    fn strings_compare_after_unescaping() {
        assert_same(r#""caf\u00e9""#, r#""café""#);
        assert_same(r#""a\/b""#, r#""a/b""#);
        assert_same(r#""\ud83d\ude00""#, "\"😀\"");
        assert_same(r#""tab\there""#, "\"tab\\u0009here\"");
        assert_different(r#""café""#, r#""cafe""#);
        assert_different(r#""a""#, r#""A""#);
    }

    #[test]
    fn numbers_compare_by_value() {
        assert_same("10", "10.0");
        assert_same("10", "1e1");
        assert_same("10", "1E+1");
        assert_same("10", "100e-1");
        assert_same("-0.0", "0");
        assert_same("-0", "0");
        assert_same("-0.0", "0.0");
        assert_same("-3", "-3.0");
        assert_same("0.5", "5e-1");
        assert_same("9007199254740992", "9007199254740992.0");
        assert_same("18446744073709551615", "18446744073709551615");
        assert_same("-9223372036854775808", "-9223372036854775808.0");
        // 2^64 is out of u64 range: as a float it is still an exact integer.
        assert_same("18446744073709551616.0", "1.8446744073709552e19");
        assert_different("10", "10.5");
        assert_different("0.1", "0.2");
        assert_different("1", "-1");
        // u64::MAX is not the float 2^64 (Python agrees: 2**64 - 1 != 2.0**64).
        assert_different("18446744073709551615", "18446744073709551616.0");
        assert_different("9007199254740993", "9007199254740992.0");
    }

    #[test]
    fn no_string_equals_a_number_and_no_bool_equals_a_number() {
        assert_different(r#""10""#, "10");
        assert_different("true", "1");
        assert_different("false", "0");
        assert_different("null", "0");
        assert_different("null", "false");
        assert_different(r#""null""#, "null");
        assert_different(r#""true""#, "true");
        assert_different(r#""""#, "null");
        assert_different("true", "false");
    }

    #[test]
    fn canonical_forms() {
        assert_eq!(key("10.0").to_string(), "10");
        assert_eq!(key("1e1").to_value(), json!(10));
        assert_eq!(key("-0.0").to_value(), json!(0));
        assert_eq!(key("0.5").to_string(), "0.5");
        assert_eq!(key("-2.5").to_value(), json!(-2.5));
        assert_eq!(key("1e300").to_value(), json!(1e300));
        assert_eq!(key(r#""caf\u00e9""#).to_string(), "\"café\"");
        assert_eq!(key(r#""q\"\n""#).to_string(), r#""q\"\n""#);
        assert_eq!(key("true").to_string(), "true");
        assert_eq!(key("null").to_string(), "null");
        assert_eq!(
            key("18446744073709551615").to_value(),
            json!(18446744073709551615u64)
        );
        assert_eq!(key("-9223372036854775808").to_value(), json!(i64::MIN));
        // An integral float beyond u64 stays exact through the conversion back.
        let big = key("1.8446744073709552e19");
        assert_eq!(big.to_string(), "18446744073709551616");
        assert_eq!(big.to_value(), json!(18446744073709551616.0));
        assert_eq!(Key::try_from(&big.to_value()).unwrap(), big);
        // Beyond i128: kept as a float, still equal to itself parsed again.
        let huge = key("1e200");
        assert_eq!(Key::try_from(&huge.to_value()).unwrap(), huge);
        assert_eq!(serde_json::to_string(&key("1e1")).unwrap(), "10");
        assert_eq!(serde_json::to_string(&key("0.25")).unwrap(), "0.25");
        assert_eq!(serde_json::to_string(&key(r#""é""#)).unwrap(), "\"é\"");
        assert_eq!(format!("{:?}", key("10.0")), "Key(10)");
    }

    #[test]
    fn conversions() {
        assert_eq!(Key::from("x"), Key::from(String::from("x")));
        assert_eq!(Key::from(7u8), Key::from(7i64));
        assert_eq!(Key::from(7u64), Key::try_from(7.0).unwrap());
        assert_eq!(Key::from(-7i32), key("-7"));
        assert_eq!(Key::from(true), key("true"));
        assert_eq!(Key::NULL, key("null"));
        assert_eq!(Key::from(u64::MAX), key("18446744073709551615"));
        assert_eq!(Key::from(i64::MIN), key("-9223372036854775808"));
        for value in [
            json!(null),
            json!(false),
            json!(3),
            json!(-3),
            json!(0.5),
            json!("s"),
        ] {
            let k = Key::try_from(&value).unwrap();
            assert_eq!(k.to_value(), value);
            assert_eq!(Value::from(k.clone()), value);
            assert_eq!(Key::try_from(value.clone()).unwrap(), k);
        }
        assert_eq!(Key::from("s").as_str(), Some("s"));
        assert_eq!(key("1").as_str(), None);
    }

    #[test]
    fn arrays_objects_and_non_finite_numbers_are_not_keys() {
        for value in [json!([]), json!([1]), json!({}), json!({"a": 1})] {
            let error = Key::try_from(&value).unwrap_err();
            assert_eq!(error.kind(), &ErrorKind::InvalidKey, "{value}");
            assert!(Key::try_from(value).is_err());
        }
        for x in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let error = Key::try_from(x).unwrap_err();
            assert_eq!(error.kind(), &ErrorKind::InvalidKey);
        }
        assert!(serde_json::from_str::<Key>("[1]").is_err());
        assert!(serde_json::from_str::<Key>(r#"{"a": 1}"#).is_err());
        assert!(serde_json::from_str::<Key>("NaN").is_err());
    }

    #[test]
    fn order_is_total_and_by_value() {
        let sorted = [
            "null",
            "false",
            "true",
            "-1e200",
            "-170141183460469231731687303715884105728.0",
            "-9223372036854775808",
            "-1.5",
            "-1",
            "0",
            "0.25",
            "1",
            "1.5",
            "18446744073709551615",
            "18446744073709551616.0",
            "1e200",
            r#""""#,
            r#""10""#,
            r#""a""#,
            r#""é""#,
        ];
        let keys: Vec<Key> = sorted.iter().map(|text| key(text)).collect();
        for (i, a) in keys.iter().enumerate() {
            for (j, b) in keys.iter().enumerate() {
                assert_eq!(a.cmp(b), i.cmp(&j), "{a} vs {b}");
            }
        }
    }

    #[test]
    fn hash_map_lookup_with_borrowed_key() {
        let mut map = HashMap::new();
        map.insert(Key::from("café"), 1);
        map.insert(Key::from(10), 2);
        let line = r#""caf\u00e9""#;
        let mut de = serde_json::Deserializer::from_str(line);
        let escaped = KeySeed.deserialize(&mut de).unwrap().unwrap();
        assert_eq!(map.get(&escaped), Some(&1));
        let plain = r#""café""#;
        let mut de = serde_json::Deserializer::from_str(plain);
        let borrowed = KeySeed.deserialize(&mut de).unwrap().unwrap();
        assert!(matches!(borrowed.0, Repr::Str(Cow::Borrowed(_))));
        assert_eq!(map.get(&borrowed), Some(&1));
        assert_eq!(map.get(&KeyRef::f64(10.0).unwrap()), Some(&2));
        assert_eq!(map.get(&KeyRef::str("10")), None);
    }

    fn scalar_text() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("null".to_owned()),
            any::<bool>().prop_map(|b| b.to_string()),
            (-20i64..20).prop_map(|n| n.to_string()),
            (-20i64..20).prop_map(|n| format!("{n}.0")),
            (-20i64..20).prop_map(|n| format!("{n}e0")),
            (-200i64..200).prop_map(|n| format!("{}", n as f64 / 8.0)),
            any::<i64>().prop_map(|n| n.to_string()),
            any::<u64>().prop_map(|n| n.to_string()),
            any::<f64>()
                .prop_filter("finite", |x| x.is_finite())
                .prop_map(|x| serde_json::to_string(&x).unwrap()),
            "[a-c]{0,2}".prop_map(|s| serde_json::to_string(&s).unwrap()),
            "[a-c]{0,2}".prop_map(|s| {
                // The same strings, every character escaped.
                let escaped: String = s.chars().map(|c| format!("\\u{:04x}", c as u32)).collect();
                format!("\"{escaped}\"")
            }),
            (-20i64..20).prop_map(|n| format!("\"{n}\"")),
        ]
    }

    proptest! {
        #[test]
        fn eq_iff_hash_equal_and_ord_agrees(a in scalar_text(), b in scalar_text()) {
            let (ka, kb) = (key(&a), key(&b));
            let (va, vb): (Value, Value) =
                (serde_json::from_str(&a).unwrap(), serde_json::from_str(&b).unwrap());
            // The reference rule, written independently: same kind, then same value.
            let expected = match (&va, &vb) {
                (Value::Number(x), Value::Number(y)) => {
                    match (x.as_i64(), x.as_u64(), y.as_i64(), y.as_u64()) {
                        (Some(p), _, Some(q), _) => p == q,
                        (_, Some(p), _, Some(q)) => p == q,
                        _ if x.is_f64() && y.is_f64() => x.as_f64() == y.as_f64(),
                        _ if x.is_f64() || y.is_f64() => {
                            // One integer, one float: equal iff the float is that exact integer.
                            let (int, float) = if x.is_f64() { (y, x) } else { (x, y) };
                            let f = float.as_f64().unwrap();
                            f.fract() == 0.0
                                && f.abs() < 1e30
                                && (f as i128) == int.as_i64().map(i128::from)
                                    .or(int.as_u64().map(i128::from)).unwrap()
                        }
                        _ => false,
                    }
                }
                _ => va == vb,
            };
            prop_assert_eq!(ka == kb, expected, "{} vs {}", a, b);
            prop_assert_eq!(ka == kb, fixed_hash(&ka) == fixed_hash(&kb), "{} vs {}", a, b);
            prop_assert_eq!(ka == kb, ka.cmp(&kb) == Ordering::Equal);
            prop_assert_eq!(ka.cmp(&kb), kb.cmp(&ka).reverse());
            // The borrowed form hashes and compares as the owned one.
            prop_assert_eq!(fixed_hash(&ka), fixed_hash::<KeyRef<'_>>(ka.borrow()));
            // The canonical text is a fixed point.
            prop_assert_eq!(&key(&ka.to_string()), &ka);
        }

        #[test]
        fn order_is_transitive(a in scalar_text(), b in scalar_text(), c in scalar_text()) {
            let mut keys = [key(&a), key(&b), key(&c)];
            keys.sort();
            prop_assert!(keys[0] <= keys[1] && keys[1] <= keys[2] && keys[0] <= keys[2]);
        }
    }
}

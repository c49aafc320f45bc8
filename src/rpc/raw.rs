//! Reading a request without building it: the body's JSON kept as borrowed `RawValue`
//! slices, of which only the small parts the envelope needs are parsed.
//!
//! The one idea to know: a `serde_json::Value` costs far more memory than its text (a
//! megabyte of `[0,0,…]` becomes ~40 MB of values), and a request is read before its
//! caller is known. So the envelope checks and authentication work on raw slices of the
//! body, and a request's `params` become a `Value` only once its caller has been checked.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// What kind of JSON value a raw slice holds, by its first byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    String,
    Number,
    Null,
    Bool,
    Array,
    Object,
}

pub fn kind(raw: &RawValue) -> Kind {
    match raw.get().trim_start().as_bytes().first() {
        Some(b'"') => Kind::String,
        Some(b'[') => Kind::Array,
        Some(b'{') => Kind::Object,
        Some(b'n') => Kind::Null,
        Some(b't' | b'f') => Kind::Bool,
        _ => Kind::Number,
    }
}

/// A raw JSON string's value (None when it is not a string).
pub fn string(raw: &RawValue) -> Option<String> {
    match kind(raw) {
        Kind::String => serde_json::from_str(raw.get()).ok(),
        _ => None,
    }
}

/// A request object's members, unparsed (a repeated member keeps its last value).
pub type Members<'a> = BTreeMap<String, &'a RawValue>;

/// The members of a raw JSON object; None when it is not an object.
pub fn members(raw: &RawValue) -> Option<Members<'_>> {
    match kind(raw) {
        Kind::Object => serde_json::from_str(raw.get()).ok(),
        _ => None,
    }
}

/// The items of a raw JSON array, at most `MAX` of them kept; `more` tells whether there
/// were more (without keeping them: a long array costs no memory here).
pub struct Items<'a, const MAX: usize> {
    pub items: Vec<&'a RawValue>,
    pub more: bool,
}

impl<'de: 'a, 'a, const MAX: usize> Deserialize<'de> for Items<'a, MAX> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ItemsVisitor<'a, const MAX: usize>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a, const MAX: usize> Visitor<'de> for ItemsVisitor<'a, MAX> {
            type Value = Items<'a, MAX>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON array")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::new();
                let mut more = false;
                while items.len() < MAX {
                    match seq.next_element::<&'a RawValue>()? {
                        Some(item) => items.push(item),
                        None => return Ok(Items { items, more }),
                    }
                }
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    more = true;
                }
                Ok(Items { items, more })
            }
        }
        deserializer.deserialize_seq(ItemsVisitor(PhantomData))
    }
}

/// The session and the resource path of `call` params, given by position
/// (`[session_id, path, args]`) or by name; what is absent is None. `shape` tells what
/// else is there, without reading it.
#[derive(Default)]
pub struct CallHead<'a> {
    pub session: Option<&'a RawValue>,
    pub path: Option<&'a RawValue>,
    pub shape: Shape,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Shape {
    /// Not readable as params (not an array or an object).
    #[default]
    Unknown,
    /// By position, this many.
    Positional(usize),
    /// By name: whether `args` is there, and whether names other than the three are.
    Named { args: bool, others: bool },
}

impl<'a> CallHead<'a> {
    pub fn of(params: Option<&'a RawValue>) -> Self {
        params
            .and_then(|p| serde_json::from_str(p.get()).ok())
            .unwrap_or_default()
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for CallHead<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct HeadVisitor<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for HeadVisitor<'a> {
            type Value = CallHead<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array or an object")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let session = seq.next_element::<&'a RawValue>()?;
                let path = match session {
                    Some(_) => seq.next_element::<&'a RawValue>()?,
                    None => None,
                };
                let mut len = usize::from(session.is_some()) + usize::from(path.is_some());
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    len += 1;
                }
                Ok(CallHead {
                    session,
                    path,
                    shape: Shape::Positional(len),
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut head = CallHead::default();
                let (mut args, mut others) = (false, false);
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "session_id" => head.session = Some(map.next_value()?),
                        "path" => head.path = Some(map.next_value()?),
                        name => {
                            map.next_value::<IgnoredAny>()?;
                            args |= name == "args";
                            others |= name != "args";
                        }
                    }
                }
                head.shape = Shape::Named { args, others };
                Ok(head)
            }
        }
        deserializer.deserialize_any(HeadVisitor(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> &RawValue {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn kinds_come_from_the_first_byte() {
        assert_eq!(kind(raw(r#""x""#)), Kind::String);
        assert_eq!(kind(raw("-1.5e3")), Kind::Number);
        assert_eq!(kind(raw("null")), Kind::Null);
        assert_eq!(kind(raw("false")), Kind::Bool);
        assert_eq!(kind(raw("[1]")), Kind::Array);
        assert_eq!(kind(raw(r#"{"a":1}"#)), Kind::Object);
        assert_eq!(string(raw(r#""caf\u00e9""#)).as_deref(), Some("café"));
        assert_eq!(string(raw("1")), None);
    }

    #[test]
    fn a_long_array_keeps_only_what_is_asked_for() {
        let text = format!("[{}]", vec!["0"; 10_000].join(","));
        let items: Items<3> = serde_json::from_str(&text).unwrap();
        assert_eq!(items.items.len(), 3);
        assert!(items.more);
        let items: Items<3> = serde_json::from_str("[1, 2]").unwrap();
        assert_eq!((items.items.len(), items.more), (2, false));
    }

    #[test]
    fn the_head_of_call_params_by_position_or_by_name() {
        let head = CallHead::of(Some(raw(r#"[null, "topic.list", [1, 2, 3]]"#)));
        assert_eq!(head.session.unwrap().get(), "null");
        assert_eq!(head.path.unwrap().get(), r#""topic.list""#);
        assert_eq!(head.shape, Shape::Positional(3));
        let head = CallHead::of(Some(raw(r#"{"args": [], "path": "a.b", "session_id": "s"}"#)));
        assert_eq!(head.session.unwrap().get(), r#""s""#);
        assert_eq!(head.path.unwrap().get(), r#""a.b""#);
        assert_eq!(
            head.shape,
            Shape::Named {
                args: true,
                others: false
            }
        );
        let head = CallHead::of(Some(raw(r#"{"path": "a.b", "x": 1}"#)));
        assert_eq!(
            head.shape,
            Shape::Named {
                args: false,
                others: true
            }
        );
        let head = CallHead::of(Some(raw("[]")));
        assert!(head.session.is_none() && head.path.is_none());
        assert_eq!(head.shape, Shape::Positional(0));
        assert_eq!(CallHead::of(Some(raw("[1, 2, 3, 4, 5]"))).shape, Shape::Positional(5));
        assert!(CallHead::of(None).session.is_none());
        assert_eq!(CallHead::of(None).shape, Shape::Unknown);
    }

    #[test]
    fn members_keep_the_last_of_a_repeated_name() {
        let m = members(raw(r#"{"id": 1, "id": 2}"#)).unwrap();
        assert_eq!(m["id"].get(), "2");
        assert!(members(raw("[1]")).is_none());
    }
}

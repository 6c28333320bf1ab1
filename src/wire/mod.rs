//! JSON as callbackd speaks it. In: what it accepts on every input (HTTP bodies, outcome
//! messages) — one JSON object, each key at most once, at every depth. Out: a callback and
//! its history as API clients and operators see them (`callback.rs`).
//!
//! serde alone accepts more: a struct deserialises from an *array* (positions mapped onto
//! fields), and `serde_json` keeps the last of two equal keys. Either lets a body mean
//! something other than what its sender saw, so both are refused here, before any field is
//! read, with a message in the API's own words (never a Rust type name).

mod callback;
mod promises;

use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};

pub use callback::{CallbackView, EventView};
pub use promises::{PromiseItem, promises_csv};

/// A callback's state in the OpenAPI document: one of the state names.
pub fn callback_state_schema() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(
            crate::domain::CallbackState::ALL.map(crate::domain::CallbackState::as_str),
        ))
        .into()
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    #[error("the body is empty; send a JSON object")]
    Empty,
    #[error("the body is not valid JSON: {0}")]
    Syntax(String),
    #[error("{0}")]
    DuplicateKey(String),
    #[error("the body must be a JSON object, not {0}")]
    NotAnObject(&'static str),
}

/// Reads `bytes` as one JSON object with unique keys.
pub fn object(bytes: &[u8]) -> Result<Map<String, Value>, WireError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(WireError::Empty);
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = Unique::deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v))
        .map_err(|e| match e.classify() {
            serde_json::error::Category::Data => WireError::DuplicateKey(e.to_string()),
            _ => WireError::Syntax(e.to_string()),
        })?;
    match value.0 {
        Value::Object(map) => Ok(map),
        other => Err(WireError::NotAnObject(kind(&other))),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A JSON value whose objects, at any depth, have unique keys.
struct Unique(Value);

impl<'de> Deserialize<'de> for Unique {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UniqueVisitor).map(Unique)
    }
}

struct UniqueVisitor;

impl<'de> Visitor<'de> for UniqueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Unique::deserialize(d).map(|u| u.0)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Unique(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(de::Error::custom(format_args!(
                    "the key `{key}` appears more than once; send each key once"
                )));
            }
            let value = map.next_value_seed(UniqueSeed)?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

struct UniqueSeed;

impl<'de> DeserializeSeed<'de> for UniqueSeed {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Unique::deserialize(d).map(|u| u.0)
    }
}

/// serde names the Rust type it expected (`expected struct CreateRequest`); the API speaks
/// of JSON objects.
pub fn plain_words(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find("struct ") {
        out.push_str(&rest[..at]);
        let after = &rest[at + "struct ".len()..];
        let name_len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        // Rust type names are CamelCase; other words after "struct " are left alone.
        if after.starts_with(|c: char| c.is_ascii_uppercase()) {
            out.push_str("a JSON object");
            rest = &after[name_len..];
        } else {
            out.push_str("struct ");
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_object_with_unique_keys_is_read() {
        let map = object(br#"{"a": 1, "b": {"c": [1, {"d": null}]}}"#).expect("object");
        assert_eq!(map["b"]["c"][1]["d"], Value::Null);
    }

    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        for body in [
            r#"{"phoneNumber": "+1", "phoneNumber": "+2"}"#,
            r#"{"a": {"x": 1, "x": 1}}"#,
            r#"{"a": [{"x": 1, "x": 2}]}"#,
        ] {
            let err = object(body.as_bytes()).expect_err(body);
            assert!(matches!(err, WireError::DuplicateKey(_)), "{body}: {err:?}");
            assert!(err.to_string().contains("more than once"), "{err}");
        }
    }

    #[test]
    fn anything_but_an_object_is_refused_in_plain_words() {
        for (body, what) in [
            ("[]", "an array"),
            ("[1,2,3,4,5,6,7,8,9,10]", "an array"),
            ("null", "null"),
            ("7", "a number"),
            ("\"x\"", "a string"),
            ("true", "a boolean"),
        ] {
            assert_eq!(
                object(body.as_bytes()),
                Err(WireError::NotAnObject(what)),
                "{body}"
            );
        }
        assert_eq!(object(b"  "), Err(WireError::Empty));
        assert!(matches!(object(b"{} x"), Err(WireError::Syntax(_))));
        assert!(matches!(object(b"{"), Err(WireError::Syntax(_))));
    }

    #[test]
    fn rust_type_names_become_json_words() {
        assert_eq!(
            plain_words("invalid type: sequence, expected struct CreateRequest"),
            "invalid type: sequence, expected a JSON object"
        );
        assert_eq!(plain_words("no struct here"), "no struct here");
        assert_eq!(
            plain_words("struct A and struct B_c2."),
            "a JSON object and a JSON object."
        );
    }
}

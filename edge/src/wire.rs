//! Small wire conventions shared by every contract: ids that arrive as a
//! number or a string, and timestamps as ISO 8601.

use serde::{Deserialize, Deserializer};

/// An id as a client sent it: `42` or `"42"` both read as `"42"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireId(pub String);

impl<'de> Deserialize<'de> for WireId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            S(String),
            N(serde_json::Number),
        }
        match Raw::deserialize(d)? {
            Raw::S(s) if !s.trim().is_empty() => Ok(WireId(s.trim().to_string())),
            Raw::S(_) => Err(serde::de::Error::custom("id must not be empty")),
            Raw::N(n) => Ok(WireId(n.to_string())),
        }
    }
}

/// Milliseconds since the epoch as ISO 8601 with milliseconds, UTC
/// (`2025-01-01T12:00:00.000Z`), the form JavaScript's `Date` writes.
pub fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A decimal id rendered for a numeric contract: a JSON number when it is
/// one confab generated (below 2^53), else the string as it is.
pub fn numeric_id(id: &str) -> serde_json::Value {
    match confab_proto::ids::parse(id) {
        Some(n) => serde_json::Value::from(n),
        None => serde_json::Value::from(id),
    }
}

/// The first non-empty string ("" when all are empty): the fallback chains
/// contracts use for names (`username`, else display name, else the id).
pub fn first_non_empty<'a>(candidates: &[&'a str]) -> &'a str {
    candidates
        .iter()
        .copied()
        .find(|s| !s.is_empty())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_read_from_numbers_and_strings() {
        let a: WireId = serde_json::from_str("42").unwrap();
        let b: WireId = serde_json::from_str("\"42\"").unwrap();
        assert_eq!(a, b);
        assert!(serde_json::from_str::<WireId>("\"\"").is_err());
        assert!(serde_json::from_str::<WireId>("null").is_err());
        assert!(serde_json::from_str::<WireId>("{}").is_err());
    }

    #[test]
    fn iso_times_have_milliseconds() {
        assert_eq!(iso(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(numeric_id("7"), serde_json::json!(7));
        assert_eq!(numeric_id("u7"), serde_json::json!("u7"));
    }
}

//! Ids on the wire are decimal strings; every id confab generates is a
//! positive integer below 2^53 so JavaScript reads it exactly.

/// The largest id confab generates or accepts as its own (2^53 - 1).
pub const MAX_ID: i64 = (1 << 53) - 1;

/// Parses a generated id ("42"), refusing anything that is not a positive
/// integer below 2^53.
pub fn parse(s: &str) -> Option<i64> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<i64>().ok().filter(|v| (1..=MAX_ID).contains(v))
}

/// An id as the services write it ("007" is "7"); anything that is not a
/// numeric id is returned as it is.
pub fn canonical(s: &str) -> String {
    parse(s).map_or_else(|| s.to_string(), |n| n.to_string())
}

/// A string that should have been an id and is not.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid id: {0:?}")]
pub struct InvalidId(pub String);

/// Parses an optional id: "" is `Ok(None)`, anything else must be valid.
pub fn parse_opt(s: &str) -> Result<Option<i64>, InvalidId> {
    if s.is_empty() {
        Ok(None)
    } else {
        parse(s).map(Some).ok_or_else(|| InvalidId(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_drops_leading_zeros_of_ids_only() {
        assert_eq!(canonical("007"), "7");
        assert_eq!(canonical("abc"), "abc");
    }

    #[test]
    fn accepts_positive_integers_below_2_pow_53() {
        assert_eq!(parse("1"), Some(1));
        assert_eq!(parse("9007199254740991"), Some(MAX_ID));
        assert_eq!(parse("9007199254740992"), None);
        assert_eq!(parse("0"), None);
        assert_eq!(parse("-3"), None);
        assert_eq!(parse("abc"), None);
        assert_eq!(parse(""), None);
        assert_eq!(parse_opt(""), Ok(None));
        assert_eq!(parse_opt("x"), Err(InvalidId("x".into())));
    }
}

//! Keyset paging: a list RPC reads `limit + 1` rows after (or before) a
//! cursor, the id of the last row of the previous page; the extra row only
//! says whether there is a next page.

use confab_proto::ServiceError;

/// The page size a request asks for: `asked`, `default` when it is 0, and
/// `INVALID_ARGUMENT` when it is above `max`.
pub fn limit(asked: u32, default: u64, max: u64) -> Result<u64, ServiceError> {
    match u64::from(asked) {
        0 => Ok(default),
        n if n <= max => Ok(n),
        _ => Err(ServiceError::invalid(format!("limit must be 1..={max}"))),
    }
}

/// Cuts `rows`, read with a limit of `limit + 1`, to `limit`; whether there
/// was more.
pub fn trim<T>(rows: &mut Vec<T>, limit: u64) -> bool {
    let more = rows.len() as u64 > limit;
    rows.truncate(limit as usize);
    more
}

/// The cursor of the next page: `edge`'s id (the page's row the next one
/// continues from) when there is more, else empty.
pub fn next_cursor(more: bool, edge: Option<i64>) -> String {
    match (more, edge) {
        (true, Some(id)) => id.to_string(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use confab_proto::ErrorCode;

    #[test]
    fn limits_default_and_cap() {
        assert_eq!(limit(0, 50, 100).unwrap(), 50);
        assert_eq!(limit(1, 50, 100).unwrap(), 1);
        assert_eq!(limit(100, 50, 100).unwrap(), 100);
        let e = limit(101, 50, 100).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidArgument);
        assert_eq!(e.message, "limit must be 1..=100");
    }

    #[test]
    fn trims_the_extra_row_and_names_the_next_page() {
        let mut rows = vec![5, 4, 3];
        assert!(trim(&mut rows, 2));
        assert_eq!(rows, [5, 4]);
        assert_eq!(next_cursor(true, rows.last().copied()), "4");
        let mut rows = vec![5, 4];
        assert!(!trim(&mut rows, 2));
        assert_eq!(next_cursor(false, rows.last().copied()), "");
    }
}

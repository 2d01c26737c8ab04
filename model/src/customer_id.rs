//! The one rule for customer ids. Training validation, the batch scoring
//! paths (rescore, score to file) and the HTTP API all call [`customer_id`],
//! so an id accepted on one path is accepted on every other, persisted or not.
//!
//! An id is the cell or JSON string with surrounding whitespace removed; it
//! must be non-empty, at most [`MAX_CUSTOMER_ID_BYTES`] bytes of UTF-8, and
//! free of control characters (they break logs, CSV output and terminal
//! tables, and are never part of a real CRM or billing key).

/// Longest customer id accepted, in bytes of UTF-8. DynamoDB's partition key
/// limit is 2048 bytes; ids are external keys, so a much lower bound catches
/// garbage (a whole row pasted into the id cell, say) early.
pub const MAX_CUSTOMER_ID_BYTES: usize = 256;

/// Why a customer id is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CustomerIdError {
    /// Absent, empty or whitespace only.
    #[error("customer id is missing or empty")]
    Empty,
    /// Longer than [`MAX_CUSTOMER_ID_BYTES`].
    #[error("customer id is {len} bytes long; at most {MAX_CUSTOMER_ID_BYTES} are allowed")]
    TooLong { len: usize },
    /// Holds a control character (`\n`, `\t`, NUL, ...).
    #[error("customer id contains the control character U+{code:04X} at byte {at}")]
    ControlCharacter { code: u32, at: usize },
}

/// The customer id in `raw` (trimmed), or why it is refused.
///
/// # Errors
/// [`CustomerIdError`] naming the rule that failed.
pub fn customer_id(raw: &str) -> Result<&str, CustomerIdError> {
    let id = raw.trim();
    if id.is_empty() {
        return Err(CustomerIdError::Empty);
    }
    if id.len() > MAX_CUSTOMER_ID_BYTES {
        return Err(CustomerIdError::TooLong { len: id.len() });
    }
    if let Some((at, c)) = id.char_indices().find(|(_, c)| c.is_control()) {
        return Err(CustomerIdError::ControlCharacter {
            code: u32::from(c),
            at,
        });
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_trimmed_and_checked() {
        assert_eq!(customer_id("  c-001 "), Ok("c-001"));
        assert_eq!(customer_id("名前-ü"), Ok("名前-ü"));
        assert_eq!(customer_id(""), Err(CustomerIdError::Empty));
        assert_eq!(customer_id(" \t "), Err(CustomerIdError::Empty));
        let long = "x".repeat(MAX_CUSTOMER_ID_BYTES);
        assert_eq!(customer_id(&long), Ok(long.as_str()));
        let longer = "x".repeat(MAX_CUSTOMER_ID_BYTES + 1);
        assert_eq!(
            customer_id(&longer),
            Err(CustomerIdError::TooLong { len: 257 })
        );
        // Multi-byte characters count in bytes.
        let wide = "é".repeat(129);
        assert_eq!(
            customer_id(&wide),
            Err(CustomerIdError::TooLong { len: 258 })
        );
        assert_eq!(
            customer_id("a\u{0}b"),
            Err(CustomerIdError::ControlCharacter { code: 0, at: 1 })
        );
        assert_eq!(
            customer_id("ab\ncd"),
            Err(CustomerIdError::ControlCharacter { code: 10, at: 2 })
        );
        assert!(customer_id("a\u{7f}").is_err());
    }
}

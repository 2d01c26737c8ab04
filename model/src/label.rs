//! Churn labels: 1/0, true/false, yes/no (any case, surrounding spaces ignored).

use crate::error::{Error, Result};
use crate::table::{ColumnValues, Table};

/// `Some(true)` for churned, `Some(false)` for retained, `None` if not a label.
pub fn parse_label(text: &str) -> Option<bool> {
    let t = text.trim();
    for (yes, no) in [("1", "0"), ("true", "false"), ("yes", "no")] {
        if t.eq_ignore_ascii_case(yes) {
            return Some(true);
        }
        if t.eq_ignore_ascii_case(no) {
            return Some(false);
        }
    }
    None
}

/// The labels of `column` in `table`, one per row.
///
/// # Errors
/// [`Error::MissingColumn`], [`Error::MissingLabel`] or [`Error::BadLabel`]
/// naming the first offending row.
pub fn labels(table: &Table, column: &str) -> Result<Vec<bool>> {
    let col = table
        .column(column)
        .ok_or_else(|| crate::schema::missing_column(table, column))?;
    let missing = |i: usize| Error::MissingLabel {
        row: table.row_number(i),
        column: column.to_string(),
    };
    let bad = |i: usize, v: String| Error::BadLabel {
        row: table.row_number(i),
        column: column.to_string(),
        value: v,
    };
    match &col.values {
        ColumnValues::Numeric(v) => v
            .iter()
            .enumerate()
            .map(|(i, &x)| match x {
                x if x.is_nan() => Err(missing(i)),
                1.0 => Ok(true),
                0.0 => Ok(false),
                x => Err(bad(i, x.to_string())),
            })
            .collect(),
        ColumnValues::Text(v) => v
            .iter()
            .enumerate()
            .map(|(i, s)| match s.as_deref() {
                None => Err(missing(i)),
                Some(t) if t.trim().is_empty() => Err(missing(i)),
                Some(t) => parse_label(t).ok_or_else(|| bad(i, t.to_string())),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_six_spellings_in_any_case() {
        for (t, want) in [
            ("1", true),
            ("0", false),
            ("TRUE", true),
            ("False", false),
            (" yes ", true),
            ("No", false),
        ] {
            assert_eq!(parse_label(t), Some(want), "{t}");
        }
        for t in ["2", "y", "churned", "", "1.5"] {
            assert_eq!(parse_label(t), None, "{t}");
        }
    }
}

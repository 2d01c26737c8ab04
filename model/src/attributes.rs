//! Account attributes: columns of a snapshot that describe the account (whose
//! it is, what it is worth, when it renews) and are not model features.
//!
//! A schema maps each [`AttributeRole`] to a column (`[attributes]` table);
//! without one, columns named exactly as [`AttributeRole::default_column`]
//! take the roles. The model artifact records the resolved mapping
//! ([`AttributeColumns`]) so every scoring path picks the same columns up.
//! Per row the values are [`Attributes`]; a value that does not parse
//! (a renewal date that is not `YYYY-MM-DD`, a value that is not a number)
//! is null for that row and reported, never a reason not to score it.

use crate::table::{ColumnValues, Table};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What an attribute column means (serialised as its [`AttributeRole::key`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttributeRole {
    /// The account's display name.
    Name,
    /// The customer-success manager who owns the account (e-mail or name).
    Owner,
    /// Customer segment (SMB, mid-market, enterprise, ...).
    Segment,
    /// Annual contract value, a number.
    Value,
    /// Next renewal, an ISO date (`YYYY-MM-DD`; `DATE` in Parquet).
    RenewalDate,
    /// The account's id in the CRM.
    CrmId,
}

impl AttributeRole {
    /// Every role, in the order they are shown.
    pub const ALL: [AttributeRole; 6] = [
        AttributeRole::Name,
        AttributeRole::Owner,
        AttributeRole::Segment,
        AttributeRole::Value,
        AttributeRole::RenewalDate,
        AttributeRole::CrmId,
    ];

    /// The role's key in the schema's `[attributes]` table and in the API's
    /// `attributes` object.
    pub fn key(self) -> &'static str {
        match self {
            AttributeRole::Name => "name",
            AttributeRole::Owner => "owner",
            AttributeRole::Segment => "segment",
            AttributeRole::Value => "value",
            AttributeRole::RenewalDate => "renewal_date",
            AttributeRole::CrmId => "crm_id",
        }
    }

    /// The column that takes this role when the schema has no `[attributes]`.
    pub fn default_column(self) -> &'static str {
        match self {
            AttributeRole::Name => "account_name",
            AttributeRole::Owner => "owner",
            AttributeRole::Segment => "segment",
            AttributeRole::Value => "arr",
            AttributeRole::RenewalDate => "renewal_date",
            AttributeRole::CrmId => "crm_id",
        }
    }

    /// What is wrong with a present value this role refuses (only `value`
    /// and `renewal_date` refuse any): one phrase, the same for every cell,
    /// so reports can count them together.
    pub fn invalid_message(self) -> &'static str {
        match self {
            AttributeRole::Value => "not a number",
            AttributeRole::RenewalDate => "not a date (YYYY-MM-DD)",
            _ => "not text",
        }
    }
}

impl std::fmt::Display for AttributeRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.key())
    }
}

/// Role -> column name (absent roles `None`): the schema's `[attributes]`
/// table, and what the artifact records.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttributeColumns {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renewal_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crm_id: Option<String>,
}

impl AttributeColumns {
    /// The column of `role`, if mapped.
    pub fn column(&self, role: AttributeRole) -> Option<&str> {
        match role {
            AttributeRole::Name => self.name.as_deref(),
            AttributeRole::Owner => self.owner.as_deref(),
            AttributeRole::Segment => self.segment.as_deref(),
            AttributeRole::Value => self.value.as_deref(),
            AttributeRole::RenewalDate => self.renewal_date.as_deref(),
            AttributeRole::CrmId => self.crm_id.as_deref(),
        }
    }

    /// Maps `role` to `column`.
    pub fn set(&mut self, role: AttributeRole, column: Option<String>) {
        let slot = match role {
            AttributeRole::Name => &mut self.name,
            AttributeRole::Owner => &mut self.owner,
            AttributeRole::Segment => &mut self.segment,
            AttributeRole::Value => &mut self.value,
            AttributeRole::RenewalDate => &mut self.renewal_date,
            AttributeRole::CrmId => &mut self.crm_id,
        };
        *slot = column;
    }

    /// `(role, column)` of every mapped role.
    pub fn mapped(&self) -> impl Iterator<Item = (AttributeRole, &str)> + '_ {
        AttributeRole::ALL
            .into_iter()
            .filter_map(|r| self.column(r).map(|c| (r, c)))
    }

    /// No role is mapped.
    pub fn is_empty(&self) -> bool {
        self.mapped().next().is_none()
    }

    /// Whether `column` is mapped to some role.
    pub fn contains_column(&self, column: &str) -> bool {
        self.mapped().any(|(_, c)| c == column)
    }

    /// The mapping of every role whose [`AttributeRole::default_column`] is
    /// among `columns` (what a schema without `[attributes]` means).
    pub fn defaults_present<'a>(columns: impl IntoIterator<Item = &'a str>) -> AttributeColumns {
        let columns: Vec<&str> = columns.into_iter().collect();
        let mut out = AttributeColumns::default();
        for role in AttributeRole::ALL {
            let name = role.default_column();
            if columns.contains(&name) {
                out.set(role, Some(name.to_string()));
            }
        }
        out
    }

    /// The mapped columns of `table`, looked up once, to extract row after
    /// row ([`AttributeReader::row`]). A mapped column absent from `table`
    /// gives `None` for its role on every row: whether that is an error is
    /// the caller's call.
    pub fn reader<'t>(&self, table: &'t Table) -> AttributeReader<'t> {
        let columns = AttributeRole::ALL
            .into_iter()
            .filter_map(|role| {
                let name = self.column(role)?;
                let column = table.column(name)?;
                Some((role, name.to_string(), &column.values))
            })
            .collect();
        AttributeReader { columns }
    }

    /// Row `row` (0-based) of `table`: its attributes and the values that
    /// did not parse (those are `None`). See [`AttributeReader::row`].
    pub fn extract(&self, table: &Table, row: usize) -> (Attributes, Vec<InvalidAttribute>) {
        self.reader(table).row(row)
    }

    /// The attributes in a JSON record of feature values (the score API's
    /// `features` object), by the mapped column names: strings or numbers;
    /// `null` or an absent key is `None`; anything else, or a value or date
    /// that does not parse, is `None` and reported.
    pub fn extract_json(&self, record: &Map<String, Value>) -> (Attributes, Vec<InvalidAttribute>) {
        let mut out = Attributes::default();
        let mut invalid = Vec::new();
        for (role, column) in self.mapped() {
            let cell = match record.get(column) {
                None | Some(Value::Null) => Cell::Missing,
                Some(Value::String(s)) => Cell::Text(s),
                Some(Value::Number(n)) => n.as_f64().map_or(Cell::Missing, Cell::Number),
                Some(other) => {
                    invalid.push(InvalidAttribute {
                        role,
                        column: column.to_string(),
                        message: format!(
                            "expected a string or a number, found {}",
                            crate::scoring::json_type(other)
                        ),
                    });
                    continue;
                }
            };
            if let Err(message) = out.set_cell(role, cell) {
                invalid.push(InvalidAttribute {
                    role,
                    column: column.to_string(),
                    message,
                });
            }
        }
        (out, invalid)
    }
}

/// A present attribute value that did not parse; the attribute is `None`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvalidAttribute {
    pub role: AttributeRole,
    /// The column (or JSON field) it was read from.
    pub column: String,
    /// What is wrong with it, quoting it.
    pub message: String,
}

/// The mapped columns of one table (see [`AttributeColumns::reader`]).
#[derive(Debug, Clone)]
pub struct AttributeReader<'t> {
    columns: Vec<(AttributeRole, String, &'t ColumnValues)>,
}

impl AttributeReader<'_> {
    /// Row `row`'s attributes (0-based; a row past the end has none): text
    /// trimmed, empty = `None`; `value` a finite number (text or numeric
    /// storage); `renewal_date` through [`parse_date`]; a number in a text
    /// role written as the number (integers without a fraction). Values
    /// that do not parse are `None` and listed.
    pub fn row(&self, row: usize) -> (Attributes, Vec<InvalidAttribute>) {
        let mut out = Attributes::default();
        let mut invalid = Vec::new();
        for (role, column, values) in &self.columns {
            let cell = match values {
                ColumnValues::Numeric(v) => v.get(row).map_or(Cell::Missing, |&x| Cell::Number(x)),
                ColumnValues::Text(v) => match v.get(row) {
                    Some(Some(s)) => Cell::Text(s),
                    _ => Cell::Missing,
                },
            };
            if let Err(message) = out.set_cell(*role, cell) {
                invalid.push(InvalidAttribute {
                    role: *role,
                    column: column.clone(),
                    message,
                });
            }
        }
        (out, invalid)
    }
}

/// One attribute cell as stored.
enum Cell<'a> {
    Missing,
    Text(&'a str),
    /// `NaN` = missing.
    Number(f64),
}

/// One account's attributes (absent roles `None`, serialised as `null`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Attributes {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub segment: Option<String>,
    /// Annual contract value.
    #[serde(default)]
    pub value: Option<f64>,
    /// `YYYY-MM-DD`, checked by [`parse_date`].
    #[serde(default)]
    pub renewal_date: Option<String>,
    #[serde(default)]
    pub crm_id: Option<String>,
}

impl Attributes {
    /// No attribute is set.
    pub fn is_empty(&self) -> bool {
        *self == Attributes::default()
    }

    /// Sets `role` from `cell` (see [`AttributeReader::row`]).
    ///
    /// # Errors
    /// Why a present cell is no value of the role (the role stays `None`).
    fn set_cell(&mut self, role: AttributeRole, cell: Cell<'_>) -> Result<(), String> {
        let text = match cell {
            Cell::Missing => return Ok(()),
            Cell::Number(x) if x.is_nan() => return Ok(()),
            Cell::Text(s) if s.trim().is_empty() => return Ok(()),
            Cell::Text(s) => s.trim().to_string(),
            Cell::Number(x) => number_text(x),
        };
        let chars = text.chars().count();
        if chars > MAX_ATTRIBUTE_CHARS {
            // Bounds what a store keeps (an owner is part of a DynamoDB key).
            return Err(format!("{chars} characters; at most {MAX_ATTRIBUTE_CHARS}"));
        }
        match role {
            AttributeRole::Value => {
                let x = match cell {
                    Cell::Number(x) => x,
                    _ => text.parse::<f64>().unwrap_or(f64::NAN),
                };
                if !x.is_finite() {
                    return Err(format!("{text:?} is {}", role.invalid_message()));
                }
                self.value = Some(x);
            }
            AttributeRole::RenewalDate => {
                if matches!(cell, Cell::Number(_)) {
                    return Err(format!("{text} is {}", role.invalid_message()));
                }
                self.renewal_date = Some(parse_date(&text)?);
            }
            AttributeRole::Name => self.name = Some(text),
            AttributeRole::Owner => self.owner = Some(text),
            AttributeRole::Segment => self.segment = Some(text),
            AttributeRole::CrmId => self.crm_id = Some(text),
        }
        Ok(())
    }
}

/// A number as text: integers without a fraction (`12345`, not `12345.0`),
/// others by the shortest round trip.
fn number_text(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 9.0e15 {
        format!("{x:.0}")
    } else {
        x.to_string()
    }
}

/// Longest attribute value kept, in characters (longer is reported, not stored).
pub const MAX_ATTRIBUTE_CHARS: usize = 256;

/// Days in `month` of `year` (proleptic Gregorian).
fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

/// Checks an ISO calendar date `YYYY-MM-DD` and returns it trimmed.
///
/// # Errors
/// A message saying what is wrong (shape, month, day).
pub fn parse_date(text: &str) -> Result<String, String> {
    let t = text.trim();
    let b = t.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    if b.len() != 10
        || b[4] != b'-'
        || b[7] != b'-'
        || !digits(0..4)
        || !digits(5..7)
        || !digits(8..10)
    {
        return Err(format!("{t:?} is not a date (YYYY-MM-DD)"));
    }
    let year: i32 = t[0..4].parse().map_err(|_| format!("{t:?}: bad year"))?;
    let month: u32 = t[5..7].parse().map_err(|_| format!("{t:?}: bad month"))?;
    let day: u32 = t[8..10].parse().map_err(|_| format!("{t:?}: bad day"))?;
    if !(1..=12).contains(&month) {
        return Err(format!("{t:?}: month {month} is not 1-12"));
    }
    if day == 0 || day > days_in_month(year, month) {
        return Err(format!("{t:?}: day {day} is not in {year}-{month:02}"));
    }
    Ok(t.to_string())
}

/// The ISO date of `days` since 1970-01-01 (Parquet `DATE`), by Howard
/// Hinnant's civil-from-days algorithm.
pub fn date_from_epoch_days(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_checked() {
        assert_eq!(parse_date(" 2026-02-28 ").unwrap(), "2026-02-28");
        assert!(parse_date("2024-02-29").is_ok());
        for bad in [
            "2026-02-29",
            "2026-13-01",
            "2026-00-10",
            "26-1-1",
            "2026/01/01",
            "soon",
            "",
        ] {
            assert!(parse_date(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn epoch_days_become_dates() {
        assert_eq!(date_from_epoch_days(0), "1970-01-01");
        assert_eq!(date_from_epoch_days(19_783), "2024-03-01");
        assert_eq!(date_from_epoch_days(-1), "1969-12-31");
    }

    #[test]
    fn mapping_lists_what_is_mapped() {
        let mut m = AttributeColumns::default();
        assert!(m.is_empty());
        m.set(AttributeRole::Value, Some("arr".into()));
        assert_eq!(
            m.mapped().collect::<Vec<_>>(),
            vec![(AttributeRole::Value, "arr")]
        );
        assert!(!m.is_empty());
    }
}

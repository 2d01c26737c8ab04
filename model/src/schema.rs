//! Column schema: which columns are numeric, categorical or ignored, and
//! which must always be present. Kinds are inferred from the table; an
//! optional TOML schema overrides the inference per column.
//!
//! ```toml
//! [columns.plan]
//! kind = "categorical"      # numeric | categorical | ignored
//! [columns.tenure_months]
//! kind = "numeric"
//! required = true           # never imputed: a missing value is an error
//!
//! [attributes]              # account attributes: columns that are no features
//! name = "account_name"
//! owner = "csm_email"
//! value = "arr"
//! renewal_date = "renews_on"
//! ```
//!
//! Attribute columns ([`crate::attributes`]) are those of the
//! `[attributes]` table or, without one, the columns named exactly as
//! [`AttributeRole::default_column`] (`account_name`, `owner`, `segment`,
//! `arr`, `renewal_date`, `crm_id`). They are not features unless a
//! `[columns.X]` entry gives them a kind (`[columns.segment] kind =
//! "categorical"` makes the segment both).

use crate::attributes::{AttributeColumns, AttributeRole};
use crate::error::{Error, Result};
use crate::table::{ColumnValues, Table};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How a column is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnKind {
    /// Numbers (counts, amounts, ratios).
    Numeric,
    /// A small set of string levels (plan, region).
    Categorical,
    /// Not used by the model (free text, e-mail, internal keys).
    Ignored,
}

/// Per-column override.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnSpec {
    /// Kind; `None` keeps the inferred kind.
    #[serde(default)]
    pub kind: Option<ColumnKind>,
    /// A required column must be present in training and scoring data and is
    /// never imputed.
    #[serde(default)]
    pub required: bool,
}

/// Overrides keyed by column name. The default (empty) schema infers everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schema {
    /// Column name -> override. A `BTreeMap` keeps iteration (and thus the
    /// artifact) deterministic.
    #[serde(default)]
    pub columns: BTreeMap<String, ColumnSpec>,
    /// Attribute role -> column (`[attributes]`); `None` takes the columns
    /// named as the roles' defaults (see the module docs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<AttributeColumns>,
}

/// A feature column after inference and overrides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedColumn {
    pub name: String,
    pub kind: ColumnKind,
    pub required: bool,
}

impl Schema {
    /// Parses a schema from TOML.
    ///
    /// # Errors
    /// [`Error::Schema`] for invalid TOML, an unknown key, or an unknown kind.
    pub fn from_toml_str(text: &str) -> Result<Schema> {
        let schema: Schema = toml::from_str(text).map_err(|e| Error::Schema {
            message: e.to_string().trim_end().to_string(),
        })?;
        if let Some(attributes) = &schema.attributes {
            if let Some((role, _)) = attributes.mapped().find(|(_, c)| c.trim().is_empty()) {
                return Err(Error::Schema {
                    message: format!("[attributes] {role}: the column name is empty"),
                });
            }
        }
        Ok(schema)
    }

    /// The attribute columns among `columns` (a table's column names): the
    /// `[attributes]` table, every column of which must be there, or else
    /// the roles' default column names that are present.
    ///
    /// # Errors
    /// [`Error::MissingColumn`] naming an `[attributes]` column absent from
    /// `columns` (and listing those present).
    pub fn attribute_columns<'a>(
        &self,
        columns: impl IntoIterator<Item = &'a str>,
    ) -> Result<AttributeColumns> {
        let columns: Vec<&str> = columns.into_iter().collect();
        let Some(mapped) = &self.attributes else {
            return Ok(AttributeColumns::defaults_present(columns));
        };
        for (_, column) in mapped.mapped() {
            if !columns.contains(&column) {
                return Err(Error::MissingColumn {
                    column: column.to_string(),
                    available: columns.join(", "),
                });
            }
        }
        Ok(mapped.clone())
    }

    /// The attribute columns of `table` without checking that the
    /// `[attributes]` ones exist (see [`Schema::attribute_columns`]).
    fn attribute_columns_lenient(&self, table: &Table) -> AttributeColumns {
        match &self.attributes {
            Some(mapped) => mapped.clone(),
            None => {
                AttributeColumns::defaults_present(table.columns.iter().map(|c| c.name.as_str()))
            }
        }
    }

    /// Whether `column` is an attribute and no feature: attribute columns
    /// are features only when a `[columns.X]` entry gives them a kind.
    fn attribute_only(&self, attributes: &AttributeColumns, column: &str) -> bool {
        attributes.contains_column(column)
            && self.columns.get(column).and_then(|s| s.kind).is_none()
    }

    /// The column names the schema's attribute roles may take, for readers
    /// that must not drop them: the `[attributes]` columns, or every
    /// role's default name.
    pub fn attribute_column_candidates(&self) -> Vec<String> {
        match &self.attributes {
            Some(mapped) => mapped.mapped().map(|(_, c)| c.to_string()).collect(),
            None => AttributeRole::ALL
                .iter()
                .map(|r| r.default_column().to_string())
                .collect(),
        }
    }

    /// The inferred kinds of every column of `table` except the id and label
    /// columns: numeric columns stay numeric; text columns whose every
    /// present cell parses as a number are numeric; other text columns are
    /// categorical.
    pub fn infer(table: &Table, id_column: &str, label_column: &str) -> Schema {
        let mut columns = BTreeMap::new();
        for c in &table.columns {
            if c.name == id_column || c.name == label_column {
                continue;
            }
            columns.insert(
                c.name.clone(),
                ColumnSpec {
                    kind: Some(infer_kind(&c.values)),
                    required: false,
                },
            );
        }
        Schema {
            columns,
            attributes: None,
        }
    }

    /// Feature columns of `table` in table order, with this schema's
    /// overrides applied on top of inference. Attribute columns are left
    /// out unless a `[columns.X]` entry gives them a kind.
    ///
    /// # Errors
    /// [`Error::MissingColumn`] when the schema names a required column the
    /// table lacks; [`Error::Schema`] when it gives the id or label column a kind.
    pub fn resolve(
        &self,
        table: &Table,
        id_column: &str,
        label_column: &str,
    ) -> Result<Vec<ResolvedColumn>> {
        for (name, spec) in &self.columns {
            if (name == id_column || name == label_column)
                && spec.kind.is_some_and(|k| k != ColumnKind::Ignored)
            {
                return Err(Error::Schema {
                    message: format!(
                        "column {name:?} is the id or label column and cannot be a feature"
                    ),
                });
            }
            if spec.required && table.column(name).is_none() {
                return Err(missing_column(table, name));
            }
        }
        let attributes = self.attribute_columns_lenient(table);
        let mut out = Vec::new();
        for c in &table.columns {
            if c.name == id_column
                || c.name == label_column
                || self.attribute_only(&attributes, &c.name)
            {
                continue;
            }
            let spec = self.columns.get(&c.name);
            let kind = spec
                .and_then(|s| s.kind)
                .unwrap_or_else(|| infer_kind(&c.values));
            if kind == ColumnKind::Ignored {
                continue;
            }
            out.push(ResolvedColumn {
                name: c.name.clone(),
                kind,
                required: spec.is_some_and(|s| s.required),
            });
        }
        Ok(out)
    }
}

/// Numeric storage, or text that is entirely numbers, is numeric.
fn infer_kind(values: &ColumnValues) -> ColumnKind {
    match values {
        ColumnValues::Numeric(_) => ColumnKind::Numeric,
        ColumnValues::Text(v) => {
            let mut any = false;
            for s in v.iter().flatten() {
                let t = s.trim();
                if t.is_empty() {
                    continue;
                }
                match t.parse::<f64>() {
                    Ok(x) if x.is_finite() => any = true,
                    _ => return ColumnKind::Categorical,
                }
            }
            if any {
                ColumnKind::Numeric
            } else {
                ColumnKind::Categorical
            }
        }
    }
}

/// The error for a column absent from `table`.
pub(crate) fn missing_column(table: &Table, name: &str) -> Error {
    let names: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
    Error::MissingColumn {
        column: name.to_string(),
        available: names.join(", "),
    }
}

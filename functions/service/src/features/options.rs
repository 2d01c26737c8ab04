//! What the caller tells a reader about the columns: forced kinds, columns
//! to skip, chunk size and parallelism.
//!
//! Kinds are inferred per column unless a hint forces one. Training passes
//! the model schema's overrides ([`ReadOptions::from_schema`]); rescoring
//! passes the artifact's features ([`ReadOptions::for_artifact`]) so a chunk
//! never guesses a kind different from the one the model was trained with,
//! and columns the model does not use are not even parsed. Account
//! attribute columns (`churn_model::attributes`) are read as text by both,
//! unless they are features too: their values are parsed by the model
//! crate, so a bad one is a warning rather than a row that cannot be read,
//! and a Parquet `DATE` renewal date comes through as `YYYY-MM-DD`.

use churn_model::preprocess::FeaturePrep;
use churn_model::{ColumnKind, ModelArtifact, Schema};
use std::collections::BTreeMap;

/// How one column is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnHint {
    /// Numbers; an empty cell is missing; text, `inf` or `nan` is an error.
    Numeric,
    /// Strings; an empty cell is missing.
    Text,
    /// Not read at all (absent from the resulting table).
    Skip,
}

/// Options of [`read_table`](super::read_table) and [`TableStream`](super::TableStream).
///
/// Hinted columns need not exist: whether an absent column is a problem is
/// for the model to say (optional features are imputed, required ones are errors).
#[derive(Debug, Clone, PartialEq)]
pub struct ReadOptions {
    /// Forced kinds by column name; other columns are inferred (numeric when
    /// every present cell is a number, else text) unless `skip_unlisted`.
    pub hints: BTreeMap<String, ColumnHint>,
    /// Skip every column not named in `hints`.
    pub skip_unlisted: bool,
    /// Rows per streamed chunk (default 8192).
    pub chunk_rows: usize,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            hints: BTreeMap::new(),
            skip_unlisted: false,
            chunk_rows: 8192,
        }
    }
}

impl ReadOptions {
    /// Forces `column` to `hint`.
    pub fn hint(mut self, column: impl Into<String>, hint: ColumnHint) -> Self {
        self.hints.insert(column.into(), hint);
        self
    }

    /// Options for training: the schema's kinds are forced (categorical =
    /// text, ignored = skipped), the id column is always text (ids such as
    /// `00123` must keep their zeros), attribute columns without a kind are
    /// text (the `[attributes]` ones, else the default names: training only
    /// checks they are there and records them), everything else is inferred.
    pub fn from_schema(schema: &Schema, id_column: &str, label_column: &str) -> Self {
        let mut options = ReadOptions::default();
        for (name, spec) in &schema.columns {
            if name == id_column || name == label_column {
                continue;
            }
            let hint = match spec.kind {
                Some(ColumnKind::Numeric) => ColumnHint::Numeric,
                Some(ColumnKind::Categorical) => ColumnHint::Text,
                // A required column must be present even if ignored; reading
                // it as text keeps the check possible at little cost.
                Some(ColumnKind::Ignored) if !spec.required => ColumnHint::Skip,
                Some(ColumnKind::Ignored) => ColumnHint::Text,
                None => continue,
            };
            options.hints.insert(name.clone(), hint);
        }
        // An attribute column is read even if ignored as a feature.
        for name in schema.attribute_column_candidates() {
            if name != label_column
                && matches!(options.hints.get(&name), None | Some(ColumnHint::Skip))
            {
                options.hints.insert(name, ColumnHint::Text);
            }
        }
        options
            .hints
            .insert(id_column.to_string(), ColumnHint::Text);
        options
    }

    /// Options for scoring with `artifact`: the id column as text, each model
    /// feature with its trained kind, the artifact's attribute columns that
    /// are no features as text, every other column skipped.
    pub fn for_artifact(artifact: &ModelArtifact, id_column: &str) -> Self {
        let mut options = ReadOptions {
            skip_unlisted: true,
            ..ReadOptions::default()
        };
        for feature in &artifact.preprocessing.features {
            let (name, hint) = match feature {
                FeaturePrep::Numeric(p) => (&p.name, ColumnHint::Numeric),
                FeaturePrep::Categorical(p) => (&p.name, ColumnHint::Text),
            };
            options.hints.insert(name.clone(), hint);
        }
        for (_, column) in artifact.attributes.mapped() {
            options
                .hints
                .entry(column.to_string())
                .or_insert(ColumnHint::Text);
        }
        options
            .hints
            .insert(id_column.to_string(), ColumnHint::Text);
        options
    }

    /// The forced hint of `column`, if any.
    pub(crate) fn hint_for(&self, column: &str) -> Option<ColumnHint> {
        match self.hints.get(column) {
            Some(h) => Some(*h),
            None if self.skip_unlisted => Some(ColumnHint::Skip),
            None => None,
        }
    }
}

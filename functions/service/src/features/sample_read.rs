//! A training sample drawn in one streaming pass: for sources too large to
//! hold whole, [`sample_stream`] reads a [`TableStream`] chunk by chunk and
//! keeps churn_model's stratified, seeded reservoir of `cap` rows
//! ([`StratifiedReservoir`]), so memory is bounded by the cap (at most
//! `2 cap` rows held, in the chunks' column types) whatever the source size.
//!
//! Every row is read: labels are checked on every row (an unknown label
//! fails the read naming its row), the churners are counted for the
//! intercept shift ([`Population`]), and a row the reader could not parse
//! fails the read naming its row and column, as a whole read would. What a
//! sample cannot check beyond itself: duplicate customer ids are found among
//! the sampled rows only. Column kinds are the schema's, else inferred from
//! the first megabyte (the stream's rule); a later cell that does not fit
//! is an error naming it, and a schema entry settles it.
//!
//! Row numbers in the sample are the source's (1-based over all parts, in
//! order), so a training error on a sampled row names the row a user finds.

use super::error::{FeatureError, FeatureResult};
use super::stream::TableStream;
use churn_model::sample::{Slot, StratifiedReservoir};
use churn_model::{Column, ColumnValues, Population, Table};

/// What [`sample_stream`] returns.
#[derive(Debug, Clone)]
pub struct SampledTable {
    /// The kept rows in source order, each with its source row number.
    pub table: Table,
    /// Rows read and churners among them.
    pub population: Population,
    /// The reader's notes (columns skipped, a detected delimiter).
    pub notes: Vec<String>,
}

/// The rows of one class's reservoir, column by column, and each slot's
/// source row number.
#[derive(Debug, Default)]
struct ClassStore {
    columns: Vec<ColumnValues>,
    row_numbers: Vec<usize>,
}

impl ClassStore {
    /// Stores row `i` of `chunk` (source row `number`) in `slot` (appended
    /// when `slot` is the store's length). Text cells are moved out of the
    /// chunk, not copied (each row is offered once).
    fn put(&mut self, slot: usize, chunk: &mut Table, i: usize, number: usize) {
        if self.columns.is_empty() {
            self.columns = chunk
                .columns
                .iter()
                .map(|c| empty_like(&c.values))
                .collect();
        }
        let append = slot == self.row_numbers.len();
        for (store, column) in self.columns.iter_mut().zip(&mut chunk.columns) {
            match (store, &mut column.values) {
                (ColumnValues::Numeric(s), ColumnValues::Numeric(v)) => put(s, slot, append, v[i]),
                (ColumnValues::Text(s), ColumnValues::Text(v)) => put(s, slot, append, v[i].take()),
                // Kinds are fixed before the first chunk; a mismatch cannot happen.
                _ => {}
            }
        }
        put(&mut self.row_numbers, slot, append, number);
    }
}

fn put<T>(v: &mut Vec<T>, slot: usize, append: bool, value: T) {
    if append {
        v.push(value);
    } else {
        v[slot] = value;
    }
}

fn empty_like(values: &ColumnValues) -> ColumnValues {
    match values {
        ColumnValues::Numeric(_) => ColumnValues::Numeric(Vec::new()),
        ColumnValues::Text(_) => ColumnValues::Text(Vec::new()),
    }
}

/// Reads `stream` to its end keeping a stratified sample of at most `cap`
/// rows by the label in `label_column` (seeded by `seed`).
///
/// # Errors
/// The stream's errors; [`FeatureError::Row`] for a row it could not read
/// or a missing or unknown label, naming the part and row (and column).
pub fn sample_stream(
    stream: &mut TableStream,
    label_column: &str,
    cap: usize,
    seed: u64,
) -> FeatureResult<SampledTable> {
    let mut reservoir = StratifiedReservoir::new(cap, seed);
    let mut stores = [ClassStore::default(), ClassStore::default()];
    let mut names: Option<Vec<String>> = None;
    let (mut notes, mut churned) = (Vec::new(), 0);
    // Source row numbers run on across parts: `offset` rows came before
    // the current part, whose last row so far is `in_part`.
    let (mut part, mut offset, mut in_part): (Option<std::sync::Arc<str>>, usize, usize) =
        (None, 0, 0);
    while let Some(mut chunk) = stream.next_chunk()? {
        if part.as_ref() != Some(&chunk.part) {
            offset += in_part;
            in_part = 0;
            part = Some(chunk.part.clone());
        }
        let row_error = |row: usize, message: String| FeatureError::Row {
            location: chunk.part.to_string(),
            row,
            message,
        };
        notes.extend(chunk.notes.iter().cloned());
        if let Some(e) = chunk.row_errors.first() {
            return Err(row_error(e.row, format!("row {}: {}", e.row, e.message)));
        }
        let labels = churn_model::label::labels(&chunk.table, label_column).map_err(|e| {
            let row = match &e {
                churn_model::Error::BadLabel { row, .. }
                | churn_model::Error::MissingLabel { row, .. } => *row,
                _ => 0,
            };
            row_error(row, e.to_string())
        })?;
        let table = &mut chunk.table;
        names.get_or_insert_with(|| table.columns.iter().map(|c| c.name.clone()).collect());
        for (i, &y) in labels.iter().enumerate() {
            churned += usize::from(y);
            in_part = table.row_number(i);
            if let Some(Slot { churned: c, slot }) = reservoir.offer(y) {
                stores[usize::from(c)].put(slot, table, i, offset + in_part);
            }
        }
    }
    let rows = reservoir.offered() as usize;
    let kept = reservoir.finish();
    Ok(SampledTable {
        table: assemble(&names.unwrap_or_default(), &stores, &kept),
        population: Population { rows, churned },
        notes,
    })
}

/// The kept slots as one table in source order, each row with its source
/// row number.
fn assemble(names: &[String], stores: &[ClassStore; 2], kept: &[Slot]) -> Table {
    let pick = |s: &Slot| (&stores[usize::from(s.churned)], s.slot);
    let columns = names
        .iter()
        .enumerate()
        .map(|(j, name)| {
            let numeric = matches!(
                stores.iter().find_map(|st| st.columns.get(j)),
                Some(ColumnValues::Numeric(_))
            );
            let values = if numeric {
                ColumnValues::Numeric(
                    kept.iter()
                        .map(|s| {
                            let (st, k) = pick(s);
                            match st.columns.get(j) {
                                Some(ColumnValues::Numeric(v)) => v[k],
                                _ => f64::NAN,
                            }
                        })
                        .collect(),
                )
            } else {
                ColumnValues::Text(
                    kept.iter()
                        .map(|s| {
                            let (st, k) = pick(s);
                            match st.columns.get(j) {
                                Some(ColumnValues::Text(v)) => v[k].clone(),
                                _ => None,
                            }
                        })
                        .collect(),
                )
            };
            Column {
                name: name.clone(),
                values,
            }
        })
        .collect();
    let mut table = Table::new(columns);
    table.row_numbers = Some(
        kept.iter()
            .map(|s| {
                let (st, k) = pick(s);
                st.row_numbers[k]
            })
            .collect(),
    );
    table
}

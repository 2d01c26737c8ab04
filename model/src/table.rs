//! Columnar input table: what readers (CSV, Parquet, JSON records) hand to the model.

use serde::{Deserialize, Serialize};

/// One column's values. Numeric columns store missing values as `NaN`, so a
/// reader must reject literal non-finite values (`inf`, `NaN` text) itself and
/// name the row and column when it does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ColumnValues {
    /// Numbers; `f64::NAN` marks a missing cell.
    Numeric(Vec<f64>),
    /// Strings; `None` marks a missing cell.
    Text(Vec<Option<String>>),
}

impl ColumnValues {
    /// Number of cells.
    pub fn len(&self) -> usize {
        match self {
            ColumnValues::Numeric(v) => v.len(),
            ColumnValues::Text(v) => v.len(),
        }
    }

    /// True when the column has no cells.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A named column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    pub values: ColumnValues,
}

impl Column {
    /// A numeric column (`NaN` = missing).
    pub fn numeric(name: impl Into<String>, values: Vec<f64>) -> Self {
        Column {
            name: name.into(),
            values: ColumnValues::Numeric(values),
        }
    }

    /// A text column (`None` = missing).
    pub fn text(name: impl Into<String>, values: Vec<Option<String>>) -> Self {
        Column {
            name: name.into(),
            values: ColumnValues::Text(values),
        }
    }
}

/// A table of equally long columns, one row per customer.
///
/// `first_row` is the 1-based number of this table's first data row in the
/// source it was read from, so that errors on a chunk of a streamed file name
/// the row as the user sees it (row 1 = first line after the header). A
/// sample of a source instead carries each row's number (`row_numbers`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Table {
    pub columns: Vec<Column>,
    pub first_row: usize,
    /// The source row number of each row when the rows are not contiguous
    /// (a sample); `None` for `first_row`, `first_row + 1`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_numbers: Option<Vec<usize>>,
}

impl Default for Table {
    fn default() -> Self {
        Table::new(Vec::new())
    }
}

impl Table {
    /// A table whose first row is row 1.
    pub fn new(columns: Vec<Column>) -> Self {
        Table {
            columns,
            first_row: 1,
            row_numbers: None,
        }
    }

    /// A table whose first row is source row `first_row`.
    pub fn starting_at(columns: Vec<Column>, first_row: usize) -> Self {
        Table {
            columns,
            first_row,
            row_numbers: None,
        }
    }

    /// The rows at `indices` (in that order), each keeping its source row number.
    pub fn select_rows(&self, indices: &[usize]) -> Table {
        let columns = self
            .columns
            .iter()
            .map(|c| Column {
                name: c.name.clone(),
                values: match &c.values {
                    ColumnValues::Numeric(v) => {
                        ColumnValues::Numeric(indices.iter().map(|&i| v[i]).collect())
                    }
                    ColumnValues::Text(v) => {
                        ColumnValues::Text(indices.iter().map(|&i| v[i].clone()).collect())
                    }
                },
            })
            .collect();
        Table {
            columns,
            first_row: self.first_row,
            row_numbers: Some(indices.iter().map(|&i| self.row_number(i)).collect()),
        }
    }

    /// Number of rows (0 for a table without columns).
    pub fn n_rows(&self) -> usize {
        self.columns.first().map_or(0, |c| c.values.len())
    }

    /// The column called `name`, if any.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The user-facing row number of the row at `index`.
    pub fn row_number(&self, index: usize) -> usize {
        match &self.row_numbers {
            Some(numbers) => numbers
                .get(index)
                .copied()
                .unwrap_or(self.first_row + index),
            None => self.first_row + index,
        }
    }
}

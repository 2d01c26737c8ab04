//! Output formatting: aligned human tables, CSV and JSON.
//!
//! Human output and machine output go to stdout; progress and notes go to
//! stderr (see `progress.rs`), so `churn risk-list --format csv > list.csv`
//! gets exactly the CSV.

use std::io::{self, Write};

/// Output format chosen with `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for people.
    Table,
    /// RFC 4180 CSV with a header row.
    Csv,
    /// JSON.
    Json,
}

/// Horizontal alignment of a table column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// A table of strings with a header row.
#[derive(Debug, Clone, Default)]
pub struct Table {
    headers: Vec<String>,
    align: Vec<Align>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers, all left-aligned.
    pub fn new<I, S>(headers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let headers: Vec<String> = headers.into_iter().map(Into::into).collect();
        let align = vec![Align::Left; headers.len()];
        Table {
            headers,
            align,
            rows: Vec::new(),
        }
    }

    /// Right-align the given columns (numbers).
    pub fn right(mut self, columns: &[usize]) -> Self {
        for &c in columns {
            if let Some(a) = self.align.get_mut(c) {
                *a = Align::Right;
            }
        }
        self
    }

    /// Append a row; missing cells are blank, extra cells are dropped.
    pub fn row<I, S>(&mut self, cells: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut row: Vec<String> = cells.into_iter().map(Into::into).collect();
        row.resize(self.headers.len(), String::new());
        self.rows.push(row);
    }

    /// Render as aligned text: header, a rule, the rows, columns two
    /// spaces apart. Widths are display widths (comfy-table), so a name in
    /// CJK characters or with an emoji does not shift the columns after it.
    /// Lines have no trailing spaces.
    pub fn render(&self) -> String {
        use comfy_table::{CellAlignment, ColumnConstraint, ContentArrangement, TableComponent};
        let mut t = comfy_table::Table::new();
        t.load_preset(comfy_table::presets::NOTHING)
            .set_style(TableComponent::HeaderLines, '-')
            .set_style(TableComponent::MiddleHeaderIntersections, ' ')
            .set_style(TableComponent::VerticalLines, ' ')
            // Never wrap or truncate: output piped to a file keeps every cell whole.
            .set_content_arrangement(ContentArrangement::Disabled)
            .set_header(self.headers.iter().map(String::as_str));
        for row in &self.rows {
            t.add_row(row.iter().map(String::as_str));
        }
        for (i, column) in t.column_iter_mut().enumerate() {
            column.set_padding((0, 1));
            column.set_constraint(ColumnConstraint::ContentWidth);
            if self.align[i] == Align::Right {
                column.set_cell_alignment(CellAlignment::Right);
            }
        }
        let mut out = String::new();
        for line in t.lines() {
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    /// Write as CSV with a header row.
    pub fn write_csv<W: Write>(&self, w: W) -> io::Result<()> {
        let mut writer = csv::Writer::from_writer(w);
        writer.write_record(&self.headers).map_err(csv_io)?;
        for row in &self.rows {
            writer.write_record(row).map_err(csv_io)?;
        }
        writer.flush()
    }
}

fn csv_io(e: csv::Error) -> io::Error {
    match e.into_kind() {
        csv::ErrorKind::Io(e) => e,
        other => io::Error::other(format!("{other:?}")),
    }
}

/// Print a JSON value, pretty, with a trailing newline.
pub fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    let stdout = io::stdout();
    let mut lock = stdout.lock();
    serde_json::to_writer_pretty(&mut lock, value)?;
    writeln!(lock)?;
    Ok(())
}

/// Print text to stdout as is.
pub fn print(text: &str) -> anyhow::Result<()> {
    let stdout = io::stdout();
    let mut lock = stdout.lock();
    lock.write_all(text.as_bytes())?;
    lock.flush()?;
    Ok(())
}

/// A probability as a percentage with one decimal: `0.4567` → `45.7%`.
pub fn percent(p: f64) -> String {
    format!("{:.1}%", p * 100.0)
}

/// A metric with three decimals, or `n/a` when not finite.
pub fn metric(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.3}")
    } else {
        "n/a".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns_and_trims_lines() {
        let mut t = Table::new(["id", "p", "note"]).right(&[1]);
        t.row(["c1", "5.0%", ""]);
        t.row(["customer-22", "45.7%", "x"]);
        assert_eq!(
            t.render(),
            "id               p  note\n\
             ------------ ------ -----\n\
             c1            5.0%\n\
             customer-22  45.7%  x\n"
        );
    }

    #[test]
    fn wide_characters_keep_columns_aligned() {
        let mut t = Table::new(["name", "p"]).right(&[1]);
        t.row(["株式会社テスト", "5.0%"]);
        t.row(["Zoë 🚀", "45.7%"]);
        t.row(["plain", "1.0%"]);
        let text = t.render();
        // The probability column ends at the same display column on every row.
        let ends: Vec<usize> = text
            .lines()
            .filter(|l| l.ends_with('%'))
            .map(|l| l.chars().map(display_width).sum())
            .collect();
        assert_eq!(ends.len(), 3, "{text}");
        assert!(ends.iter().all(|e| *e == ends[0]), "{text}\n{ends:?}");
    }

    /// Display width of a character as terminals draw it (CJK and emoji are 2).
    fn display_width(c: char) -> usize {
        match c as u32 {
            0x1100..=0x115F
            | 0x2E80..=0xA4CF
            | 0xAC00..=0xD7A3
            | 0xF900..=0xFAFF
            | 0xFF00..=0xFF60
            | 0xFFE0..=0xFFE6
            | 0x1F300..=0x1FAFF => 2,
            _ => 1,
        }
    }

    #[test]
    fn csv_quotes_cells_with_commas() {
        let mut t = Table::new(["a", "b"]);
        t.row(["x,y", "z"]);
        let mut buf = Vec::new();
        t.write_csv(&mut buf).unwrap();
        assert_eq!(String::from_utf8(buf).unwrap(), "a,b\n\"x,y\",z\n");
    }

    #[test]
    fn numbers_format_for_people() {
        assert_eq!(percent(0.4567), "45.7%");
        assert_eq!(metric(0.81234), "0.812");
        assert_eq!(metric(f64::NAN), "n/a");
    }
}

//! The hand-written CSV reader against the `csv` crate on generated files:
//! quotes, embedded newlines, carriage returns and delimiters, empty cells,
//! long fields, non-ASCII text, comma / semicolon / tab delimiters, `\n` and
//! `\r\n` line ends, with and without a UTF-8 BOM. Both must yield the same
//! cells, whole-file and streamed in small chunks.

use churn_model::{ColumnValues, Table};
use churn_service::features::{read_local_file, ColumnHint, ReadOptions, TableStream};
use proptest::prelude::*;

/// One generated file: header names, rows of cells, and how it is written.
#[derive(Debug, Clone)]
struct CsvCase {
    rows: Vec<Vec<String>>,
    columns: usize,
    delimiter: u8,
    crlf: bool,
    bom: bool,
    /// Quote every field, not only those that need it.
    quote_all: bool,
}

fn cell() -> BoxedStrategy<String> {
    prop_oneof![
        4 => Just(String::new()),
        6 => "[a-z0-9 .-]{1,10}",
        4 => "[,;\t\"\n\r a-zé€😀]{1,12}",
        3 => any::<String>().prop_map(|s| s.chars().take(20).collect()),
        1 => "[a-zA-Z\"\n]{200,2000}",
    ]
    .boxed()
}

/// Plain cells only: no quote, delimiter or line end anywhere.
fn plain_cell() -> BoxedStrategy<String> {
    "[a-z0-9 .-]{0,12}".boxed()
}

fn case() -> impl Strategy<Value = CsvCase> {
    case_of(0..40, cell())
}

fn case_of(
    n_rows: std::ops::Range<usize>,
    cell: BoxedStrategy<String>,
) -> impl Strategy<Value = CsvCase> {
    (2usize..6, n_rows)
        .prop_flat_map(move |(columns, n_rows)| {
            (
                proptest::collection::vec(proptest::collection::vec(cell.clone(), columns), n_rows),
                Just(columns),
                prop_oneof![Just(b','), Just(b';'), Just(b'\t')],
                any::<bool>(),
                any::<bool>(),
                any::<bool>(),
            )
        })
        .prop_map(|(rows, columns, delimiter, crlf, bom, quote_all)| CsvCase {
            rows,
            columns,
            delimiter,
            crlf,
            bom,
            quote_all,
        })
}

/// RFC 4180 text of a case, written by hand so the writer is not one of
/// the two readers under test.
fn render(case: &CsvCase) -> Vec<u8> {
    let end = if case.crlf { "\r\n" } else { "\n" };
    let delimiter = case.delimiter as char;
    let field = |s: &str| {
        let special = s.contains(delimiter) || s.contains(['"', '\n', '\r']);
        if case.quote_all || special {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    };
    let mut out = String::new();
    if case.bom {
        out.push('\u{feff}');
    }
    let header: Vec<String> = (0..case.columns).map(|j| format!("col{j}")).collect();
    out.push_str(&header.join(&delimiter.to_string()));
    out.push_str(end);
    for row in &case.rows {
        let cells: Vec<String> = row.iter().map(|c| field(c)).collect();
        out.push_str(&cells.join(&delimiter.to_string()));
        out.push_str(end);
    }
    out.into_bytes()
}

/// Cells as the `csv` crate reads them (empty = missing, as ours).
fn reference(bytes: &[u8], case: &CsvCase) -> Vec<Vec<Option<String>>> {
    let body = bytes.strip_prefix("\u{feff}".as_bytes()).unwrap_or(bytes);
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(case.delimiter)
        .has_headers(true)
        .from_reader(body);
    reader
        .records()
        .map(|r| {
            r.unwrap()
                .iter()
                .map(|c| (!c.is_empty()).then(|| c.to_string()))
                .collect()
        })
        .collect()
}

/// Row-major cells of a table read with every column as text.
fn cells(table: &Table, columns: usize) -> Vec<Vec<Option<String>>> {
    let cols: Vec<&Vec<Option<String>>> = (0..columns)
        .map(
            |j| match &table.column(&format!("col{j}")).unwrap().values {
                ColumnValues::Text(v) => v,
                ColumnValues::Numeric(_) => panic!("col{j} read as numbers"),
            },
        )
        .collect();
    (0..table.n_rows())
        .map(|i| cols.iter().map(|c| c[i].clone()).collect())
        .collect()
}

fn text_options(columns: usize, chunk_rows: usize) -> ReadOptions {
    let mut o = ReadOptions {
        chunk_rows,
        ..ReadOptions::default()
    };
    for j in 0..columns {
        o = o.hint(format!("col{j}"), ColumnHint::Text);
    }
    o
}

/// Whole-file and streamed reads of `case` equal the `csv` crate's cells.
fn check(case: &CsvCase) {
    let bytes = render(case);
    let want = reference(&bytes, case);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("generated.csv");
    std::fs::write(&path, &bytes).unwrap();
    let whole = read_local_file(&path, &text_options(case.columns, 8192)).unwrap();
    assert!(
        cells(&whole, case.columns) == want,
        "whole-file read differs"
    );
    let mut stream = TableStream::open_local(&path, text_options(case.columns, 5000)).unwrap();
    let mut streamed = Vec::new();
    while let Some(chunk) = stream.next_chunk().unwrap() {
        assert!(chunk.row_errors.is_empty(), "{:?}", chunk.row_errors);
        streamed.extend(cells(&chunk.table, case.columns));
    }
    assert!(streamed == want, "streamed read differs");
}

/// Files of several MiB: the whole-file read splits them across threads
/// (files without quotes) and the stream refills its buffer mid-record.
#[test]
fn large_files_agree_across_the_parallel_split_and_buffer_refills() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    for (cells, rows) in [(false, 150_000..150_001), (true, 12_000..12_001)] {
        let strategy = if cells {
            case_of(rows, cell()).boxed()
        } else {
            case_of(rows, plain_cell()).boxed()
        };
        for delimiter in [b',', b';', b'\t'] {
            let mut case = strategy.new_tree(&mut runner).unwrap().current();
            case.delimiter = delimiter;
            case.quote_all = false;
            let size = render(&case).len();
            assert!(size > 1 << 20, "{size} bytes is below the 1 MiB thresholds");
            check(&case);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn hand_written_reader_agrees_with_the_csv_crate(case in case()) {
        let bytes = render(&case);
        let want = reference(&bytes, &case);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("generated.csv");
        std::fs::write(&path, &bytes).unwrap();

        let whole = read_local_file(&path, &text_options(case.columns, 8192)).unwrap();
        prop_assert_eq!(&cells(&whole, case.columns), &want);

        let mut stream = TableStream::open_local(&path, text_options(case.columns, 3)).unwrap();
        let mut streamed = Vec::new();
        while let Some(chunk) = stream.next_chunk().unwrap() {
            prop_assert!(chunk.row_errors.is_empty(), "{:?}", chunk.row_errors);
            streamed.extend(cells(&chunk.table, case.columns));
        }
        prop_assert_eq!(&streamed, &want);
    }
}

#[test]
fn a_semicolon_or_tab_file_is_read_with_its_delimiter_and_a_note() {
    use churn_service::features::read_local_file_with_notes;
    let dir = tempfile::tempdir().unwrap();
    for (delimiter, name) in [(";", "semicolons"), ("\t", "tabs")] {
        let path = dir.path().join("export.csv");
        let text = format!(
            "customer_id{d}plan{d}mrr\r\nc1{d}pro{d}49.5\r\nc2{d}\"a{d}b\"{d}\r\n",
            d = delimiter
        );
        std::fs::write(&path, text).unwrap();
        let (table, notes) = read_local_file_with_notes(&path, &ReadOptions::default()).unwrap();
        assert_eq!(table.n_rows(), 2);
        let ColumnValues::Numeric(mrr) = &table.column("mrr").unwrap().values else {
            panic!("mrr is not numeric");
        };
        assert_eq!(mrr[0], 49.5);
        assert!(mrr[1].is_nan());
        let ColumnValues::Text(plan) = &table.column("plan").unwrap().values else {
            panic!("plan is not text");
        };
        assert_eq!(plan[1].as_deref(), Some(format!("a{delimiter}b").as_str()));
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].contains(name), "{notes:?}");
        let mut stream = TableStream::open_local(&path, ReadOptions::default()).unwrap();
        let chunk = stream.next_chunk().unwrap().unwrap();
        assert_eq!(chunk.table.n_rows(), 2);
        assert!(chunk.notes[0].contains(name), "{:?}", chunk.notes);
    }
    // A decimal comma is not guessed: with semicolons, "49,5" is not a number.
    let path = dir.path().join("decimal_comma.csv");
    std::fs::write(&path, "customer_id;mrr\nc1;49,5\n").unwrap();
    let err = read_local_file(
        &path,
        &ReadOptions::default().hint("mrr", ColumnHint::Numeric),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("mrr") && err.contains("49,5"), "{err}");
}

//! Parquet as standard writers produce it: files written by pyarrow (every
//! logical type a snapshot can carry, dictionary and plain pages, nulls in
//! every column) read to exactly the values of the same table in CSV, whole,
//! streamed, and from S3, and score to the same probabilities. Dates and
//! times are never read as numbers (a DATE asked for as text, an account
//! attribute, is its ISO date); decimals are never read unscaled.
//!
//! The files are generated per run by `tests/parquet_types/generate.py` in the
//! repo's `.venv` (scripts/dev-env.sh installs pyarrow there; `PYARROW_PYTHON`
//! overrides the interpreter), never committed. Types pyarrow does not write
//! (DECIMAL as BYTE_ARRAY, the legacy converted type alone) are written with
//! the `parquet` crate's own writer.

use churn_model::{ColumnValues, Schema, Scorer, Table, TrainConfig};
use churn_service::features::{
    read_local_file, read_local_file_with_notes, read_table, ColumnHint, FeatureUri, ReadOptions,
    TableStream,
};
use churn_service::test_support::MotoServer;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Model-usable numeric columns of the generated table (label included).
const NUMERIC: &[&str] = &[
    "churned",
    "mrr",
    "arr_small",
    "credit",
    "ratio38",
    "logins_i8",
    "tickets_i16",
    "sessions_i32",
    "events_i64",
    "seats_u8",
    "minutes_u16",
    "bytes_u32",
    "counter_u64",
    "autopay",
    "nps_f32",
    "usage_f64",
    "half_f16",
];
const TEXT: &[&str] = &["customer_id", "plan", "region"];
/// (column, the Parquet type the reader must name).
const TEMPORAL: &[(&str, &str)] = &[
    ("signup_date", "DATE"),
    ("last_seen", "TIMESTAMP"),
    ("login_time", "TIME"),
];
const PARQUET_FILES: &[&str] = &["integers_dictionary.parquet", "fixed_plain.parquet"];

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("PYARROW_PYTHON").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python")
}

/// Runs the generator into a fresh directory.
fn generate(rows: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/parquet_types/generate.py");
    let out = Command::new(python())
        .arg(&script)
        .arg(dir.path())
        .arg(rows.to_string())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} ({e}); run scripts/dev-env.sh or set PYARROW_PYTHON",
                python().display()
            )
        });
    assert!(
        out.status.success(),
        "generate.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

/// Numeric and text columns forced; the temporal ones left to the reader.
fn options() -> ReadOptions {
    let mut o = ReadOptions::default();
    for c in NUMERIC {
        o = o.hint(*c, ColumnHint::Numeric);
    }
    for c in TEXT {
        o = o.hint(*c, ColumnHint::Text);
    }
    o
}

/// Asserts that every numeric and text column of `got` equals `want`'s
/// exactly (numbers bit for bit, missing as missing).
fn assert_same_values(want: &Table, got: &Table, what: &str) {
    assert_eq!(got.n_rows(), want.n_rows(), "{what}: rows");
    for name in NUMERIC.iter().chain(TEXT) {
        let a = &want
            .column(name)
            .unwrap_or_else(|| panic!("csv {name}"))
            .values;
        let b = &got
            .column(name)
            .unwrap_or_else(|| panic!("{what}: no column {name}"))
            .values;
        match (a, b) {
            (ColumnValues::Numeric(a), ColumnValues::Numeric(b)) => {
                for (i, (x, y)) in a.iter().zip(b).enumerate() {
                    assert!(
                        x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()),
                        "{what}: {name} row {}: csv {x:?} vs parquet {y:?}",
                        i + 1
                    );
                }
            }
            (ColumnValues::Text(a), ColumnValues::Text(b)) => {
                assert_eq!(a, b, "{what}: {name}");
            }
            _ => panic!("{what}: {name} has different kinds"),
        }
    }
}

/// Every temporal column is noted by name and type and absent from `table`.
fn assert_temporal_skipped(table: &Table, notes: &[String], what: &str) {
    for (name, kind) in TEMPORAL {
        assert!(table.column(name).is_none(), "{what}: {name} was read");
        assert!(
            notes
                .iter()
                .any(|n| n.contains(&format!("{name:?}")) && n.contains(kind)),
            "{what}: no note for {name} ({kind}): {notes:?}"
        );
    }
}

/// All chunks of a stream appended, with the first chunk's notes.
fn stream_all(mut stream: TableStream) -> (Table, Vec<String>) {
    let mut all: Option<Table> = None;
    let mut notes = Vec::new();
    while let Some(chunk) = stream.next_chunk().unwrap() {
        assert!(chunk.row_errors.is_empty(), "{:?}", chunk.row_errors);
        notes.extend(chunk.notes);
        match &mut all {
            None => all = Some(chunk.table),
            Some(t) => {
                for (a, m) in t.columns.iter_mut().zip(chunk.table.columns) {
                    match (&mut a.values, m.values) {
                        (ColumnValues::Numeric(a), ColumnValues::Numeric(m)) => a.extend(m),
                        (ColumnValues::Text(a), ColumnValues::Text(m)) => a.extend(m),
                        _ => panic!("kinds changed between chunks"),
                    }
                }
            }
        }
    }
    (all.unwrap(), notes)
}

#[test]
fn every_pyarrow_type_reads_as_the_same_table_in_csv() {
    let dir = generate(4000);
    let csv = read_local_file(&dir.path().join("table.csv"), &options()).unwrap();
    for file in PARQUET_FILES {
        let path = dir.path().join(file);
        let (whole, notes) = read_local_file_with_notes(&path, &options()).unwrap();
        assert_same_values(&csv, &whole, &format!("{file} whole"));
        assert_temporal_skipped(&whole, &notes, file);

        let streamed = TableStream::open_local(
            &path,
            ReadOptions {
                chunk_rows: 700,
                ..options()
            },
        )
        .unwrap();
        let (streamed, notes) = stream_all(streamed);
        assert_same_values(&csv, &streamed, &format!("{file} streamed"));
        assert_temporal_skipped(&streamed, &notes, &format!("{file} streamed"));
    }
    // The values the old reader got wrong, spelled out: money stored as
    // INT64 DECIMAL(12,2) is not 100x, and UINT32 above 2^31 is not negative.
    let whole = read_local_file(&dir.path().join(PARQUET_FILES[0]), &options()).unwrap();
    let values = |name: &str| match &whole.column(name).unwrap().values {
        ColumnValues::Numeric(v) => v.clone(),
        _ => unreachable!(),
    };
    assert!(values("mrr").iter().all(|x| x.is_nan() || *x <= 20_000.0));
    assert!(values("bytes_u32")
        .iter()
        .all(|x| x.is_nan() || *x >= 2f64.powi(31)));
    assert!(values("counter_u64")
        .iter()
        .all(|x| x.is_nan() || *x >= 2f64.powi(63)));
}

#[test]
fn dates_and_times_asked_for_as_features_or_ids_are_refused_by_name() {
    let dir = generate(300);
    for file in PARQUET_FILES {
        let path = dir.path().join(file);
        for (name, kind) in TEMPORAL {
            for hint in [ColumnHint::Numeric, ColumnHint::Text] {
                if *kind == "DATE" && hint == ColumnHint::Text {
                    // An attribute (a renewal date): read as ISO dates.
                    let t =
                        read_local_file(&path, &ReadOptions::default().hint(*name, hint)).unwrap();
                    let ColumnValues::Text(v) = &t.column(name).unwrap().values else {
                        panic!("{file} {name} is not text");
                    };
                    for d in v.iter().flatten() {
                        assert_eq!(
                            churn_model::attributes::parse_date(d).as_deref(),
                            Ok(d.as_str())
                        );
                    }
                    assert!(v.iter().flatten().count() > 0, "{file} {name}");
                    continue;
                }
                let err = read_local_file(&path, &ReadOptions::default().hint(*name, hint))
                    .unwrap_err()
                    .to_string();
                assert!(
                    err.contains(&format!("{name:?}")) && err.contains(kind),
                    "{file} {name} as {hint:?}: {err}"
                );
                let err = TableStream::open_local(&path, ReadOptions::default().hint(*name, hint))
                    .and_then(|mut s| s.next_chunk())
                    .unwrap_err()
                    .to_string();
                assert!(err.contains(&format!("{name:?}")), "{err}");
            }
        }
    }
}

/// The generated table's temporal columns are not features.
fn schema() -> Schema {
    Schema::from_toml_str(
        "[columns.signup_date]\nkind = \"ignored\"\n\
         [columns.last_seen]\nkind = \"ignored\"\n\
         [columns.login_time]\nkind = \"ignored\"\n",
    )
    .unwrap()
}

fn probabilities(scorer: &Scorer, table: &Table) -> Vec<f64> {
    scorer
        .score_table(table)
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            s.unwrap_or_else(|e| panic!("row {}: {e}", i + 1))
                .churn_probability
        })
        .collect()
}

#[test]
fn parquet_scores_equal_csv_scores_whole_and_streamed() {
    let dir = generate(4000);
    let options = ReadOptions::from_schema(&schema(), "customer_id", "churned");
    let train_table = read_local_file(&dir.path().join("table.csv"), &options).unwrap();
    let config = TrainConfig::builder()
        .created_at("2026-11-30T00:00:00Z")
        .build()
        .unwrap();
    let outcome = churn_model::train(&train_table, &schema(), &config).unwrap();
    let artifact = outcome.artifact;
    let names: Vec<&str> = artifact
        .preprocessing
        .features
        .iter()
        .map(|f| f.name())
        .collect();
    for kind in ["mrr", "credit", "bytes_u32", "autopay", "half_f16", "plan"] {
        assert!(names.contains(&kind), "{kind} is not a feature: {names:?}");
    }
    let scorer = Scorer::new(&artifact);
    let scoring = ReadOptions::for_artifact(&artifact, "customer_id");
    let want = probabilities(
        &scorer,
        &read_local_file(&dir.path().join("table.csv"), &scoring).unwrap(),
    );
    for file in PARQUET_FILES {
        let path = dir.path().join(file);
        let whole = probabilities(&scorer, &read_local_file(&path, &scoring).unwrap());
        let stream = TableStream::open_local(
            &path,
            ReadOptions {
                chunk_rows: 1024,
                ..scoring.clone()
            },
        )
        .unwrap();
        let streamed = probabilities(&scorer, &stream_all(stream).0);
        for (got, what) in [(whole, "whole"), (streamed, "streamed")] {
            assert_eq!(got.len(), want.len());
            for (i, (a, b)) in want.iter().zip(&got).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-9,
                    "{file} {what} row {}: {a} vs {b}",
                    i + 1
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_reads_match_local_reads() {
    let dir = generate(2500);
    let moto = MotoServer::start().await.unwrap();
    let clients = moto.clients().await;
    let bucket = clients.new_bucket("pqtypes").await;
    let csv = read_local_file(&dir.path().join("table.csv"), &options()).unwrap();
    for file in PARQUET_FILES {
        let bytes = std::fs::read(dir.path().join(file)).unwrap();
        clients
            .s3
            .put_object()
            .bucket(&bucket)
            .key(*file)
            .body(bytes.into())
            .send()
            .await
            .unwrap();
        let uri = FeatureUri::parse(&format!("s3://{bucket}/{file}")).unwrap();
        let whole = read_table(&uri, Some(&clients.s3), &options())
            .await
            .unwrap();
        assert_same_values(&csv, &whole, &format!("s3 {file} whole"));
        let stream = TableStream::open(&uri, Some(clients.s3.clone()), options())
            .await
            .unwrap();
        let (streamed, notes) = tokio::task::spawn_blocking(move || stream_all(stream))
            .await
            .unwrap();
        assert_same_values(&csv, &streamed, &format!("s3 {file} streamed"));
        assert_temporal_skipped(&streamed, &notes, &format!("s3 {file}"));
    }
}

/// Writes a one-row-group file with the `parquet` crate: DECIMAL as
/// BYTE_ARRAY (pyarrow never writes it) and the legacy converted types alone
/// (no logical type), as older writers (Hive, Impala) do.
fn write_legacy(path: &Path) -> Vec<(&'static str, Vec<Option<f64>>)> {
    use parquet::basic::{ConvertedType, Repetition, Type as Physical};
    use parquet::data_type::{ByteArray, ByteArrayType, Int32Type, Int64Type};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::types::Type;
    use std::sync::Arc;

    let field = |name: &str, physical, converted, precision, scale| {
        let mut b = Type::primitive_type_builder(name, physical)
            .with_repetition(Repetition::OPTIONAL)
            .with_converted_type(converted);
        if converted == ConvertedType::DECIMAL {
            b = b.with_precision(precision).with_scale(scale);
        }
        Arc::new(b.build().unwrap())
    };
    let schema = Arc::new(
        Type::group_type_builder("m")
            .with_fields(vec![
                field(
                    "amount_bytes",
                    Physical::BYTE_ARRAY,
                    ConvertedType::DECIMAL,
                    30,
                    3,
                ),
                field("legacy_dec", Physical::INT64, ConvertedType::DECIMAL, 12, 2),
                field("legacy_u32", Physical::INT32, ConvertedType::UINT_32, 0, 0),
                field("legacy_u64", Physical::INT64, ConvertedType::UINT_64, 0, 0),
                field("legacy_date", Physical::INT32, ConvertedType::DATE, 0, 0),
            ])
            .build()
            .unwrap(),
    );
    let file = std::fs::File::create(path).unwrap();
    let mut w =
        SerializedFileWriter::new(file, schema, Arc::new(WriterProperties::default())).unwrap();
    let mut rg = w.next_row_group().unwrap();
    let defs = [1, 0, 1, 1];
    // -1234.567, missing, 0.001, 10^26 + 0.5 (needs 12 bytes)
    let unscaled: [i128; 3] = [-1_234_567, 1, 10i128.pow(29) + 500];
    let bytes: Vec<ByteArray> = unscaled
        .iter()
        .map(|v| {
            let b = v.to_be_bytes();
            // Minimal two's complement: drop redundant sign bytes.
            let skip = b
                .windows(2)
                .take_while(|w| {
                    (w[0] == 0 && w[1] & 0x80 == 0) || (w[0] == 0xff && w[1] & 0x80 != 0)
                })
                .count();
            ByteArray::from(b[skip..].to_vec())
        })
        .collect();
    let mut col = rg.next_column().unwrap().unwrap();
    col.typed::<ByteArrayType>()
        .write_batch(&bytes, Some(&defs), None)
        .unwrap();
    col.close().unwrap();
    let mut col = rg.next_column().unwrap().unwrap();
    col.typed::<Int64Type>()
        .write_batch(&[4_999, -5, 123_456_789_012], Some(&defs), None)
        .unwrap();
    col.close().unwrap();
    let mut col = rg.next_column().unwrap().unwrap();
    col.typed::<Int32Type>()
        .write_batch(&[-1, 7, i32::MIN], Some(&defs), None)
        .unwrap();
    col.close().unwrap();
    let mut col = rg.next_column().unwrap().unwrap();
    col.typed::<Int64Type>()
        .write_batch(&[-1, 7, i64::MIN], Some(&defs), None)
        .unwrap();
    col.close().unwrap();
    let mut col = rg.next_column().unwrap().unwrap();
    col.typed::<Int32Type>()
        .write_batch(&[19_000, 19_001, 19_002], Some(&defs), None)
        .unwrap();
    col.close().unwrap();
    rg.close().unwrap();
    w.close().unwrap();
    vec![
        (
            "amount_bytes",
            vec![
                Some(-1234.567),
                None,
                Some(0.001),
                Some("100000000000000000000000000.5".parse().unwrap()),
            ],
        ),
        (
            "legacy_dec",
            vec![Some(49.99), None, Some(-0.05), Some(1_234_567_890.12)],
        ),
        (
            "legacy_u32",
            vec![
                Some(4_294_967_295.0),
                None,
                Some(7.0),
                Some(2_147_483_648.0),
            ],
        ),
        (
            "legacy_u64",
            vec![
                Some(18_446_744_073_709_551_615.0),
                None,
                Some(7.0),
                Some(9_223_372_036_854_775_808.0),
            ],
        ),
    ]
}

#[test]
fn byte_array_decimals_and_legacy_converted_types_are_scaled_and_unsigned() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("legacy.parquet");
    let expected = write_legacy(&path);
    let (table, notes) = read_local_file_with_notes(&path, &ReadOptions::default()).unwrap();
    for (name, want) in expected {
        let ColumnValues::Numeric(got) = &table.column(name).unwrap().values else {
            panic!("{name} is not numeric");
        };
        assert_eq!(got.len(), want.len(), "{name}");
        for (g, w) in got.iter().zip(&want) {
            match w {
                None => assert!(g.is_nan(), "{name}: {g}"),
                Some(w) => assert_eq!(g, w, "{name}"),
            }
        }
    }
    assert!(table.column("legacy_date").is_none());
    assert!(
        notes
            .iter()
            .any(|n| n.contains("legacy_date") && n.contains("DATE")),
        "{notes:?}"
    );
    // As text (a categorical or an id), a decimal is its exact decimal text.
    let text = read_local_file(
        &path,
        &ReadOptions::default().hint("amount_bytes", ColumnHint::Text),
    )
    .unwrap();
    let ColumnValues::Text(v) = &text.column("amount_bytes").unwrap().values else {
        panic!("not text");
    };
    assert_eq!(
        v,
        &[
            Some("-1234.567".to_string()),
            None,
            Some("0.001".to_string()),
            Some("100000000000000000000000000.500".to_string())
        ]
    );
}

/// A Parquet `DATE` (days since 1970-01-01, INT32 with the logical type)
/// asked for as text, as an account attribute's renewal date is, reads as
/// `YYYY-MM-DD` whole and streamed, nulls missing; as a number it is
/// refused by name, and not asked for at all it is skipped with a note.
#[test]
fn a_date_column_asked_for_as_text_reads_as_iso_dates() {
    use parquet::basic::{LogicalType, Repetition, Type as Physical};
    use parquet::data_type::{ByteArray, ByteArrayType, Int32Type};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::types::Type;
    use std::sync::Arc;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dates.parquet");
    let schema = Arc::new(
        Type::group_type_builder("m")
            .with_fields(vec![
                Arc::new(
                    Type::primitive_type_builder("customer_id", Physical::BYTE_ARRAY)
                        .with_repetition(Repetition::REQUIRED)
                        .with_logical_type(Some(LogicalType::String))
                        .build()
                        .unwrap(),
                ),
                Arc::new(
                    Type::primitive_type_builder("renews_on", Physical::INT32)
                        .with_repetition(Repetition::OPTIONAL)
                        .with_logical_type(Some(LogicalType::Date))
                        .build()
                        .unwrap(),
                ),
            ])
            .build()
            .unwrap(),
    );
    let file = std::fs::File::create(&path).unwrap();
    let mut w =
        SerializedFileWriter::new(file, schema, Arc::new(WriterProperties::default())).unwrap();
    let mut rg = w.next_row_group().unwrap();
    let mut col = rg.next_column().unwrap().unwrap();
    let ids: Vec<ByteArray> = ["a", "b", "c", "d"].map(ByteArray::from).to_vec();
    col.typed::<ByteArrayType>()
        .write_batch(&ids, None, None)
        .unwrap();
    col.close().unwrap();
    let mut col = rg.next_column().unwrap().unwrap();
    col.typed::<Int32Type>()
        .write_batch(&[19_783, 0, -1], Some(&[1, 0, 1, 1]), None)
        .unwrap();
    col.close().unwrap();
    rg.close().unwrap();
    w.close().unwrap();

    let want: Vec<Option<String>> = vec![
        Some("2024-03-01".into()),
        None,
        Some("1970-01-01".into()),
        Some("1969-12-31".into()),
    ];
    let as_text = ReadOptions::default().hint("renews_on", ColumnHint::Text);
    let whole = read_local_file(&path, &as_text).unwrap();
    assert_eq!(
        whole.column("renews_on").unwrap().values,
        ColumnValues::Text(want.clone())
    );
    let (streamed, notes) = stream_all(TableStream::open_local(&path, as_text).unwrap());
    assert_eq!(
        streamed.column("renews_on").unwrap().values,
        ColumnValues::Text(want)
    );
    assert!(notes.is_empty(), "{notes:?}");
    let err = read_local_file(
        &path,
        &ReadOptions::default().hint("renews_on", ColumnHint::Numeric),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("\"renews_on\"") && err.contains("DATE"),
        "{err}"
    );
    let (t, notes) = read_local_file_with_notes(&path, &ReadOptions::default()).unwrap();
    assert!(t.column("renews_on").is_none());
    assert!(
        notes
            .iter()
            .any(|n| n.contains("renews_on") && n.contains("DATE")),
        "{notes:?}"
    );
}

//! Feature readers and writers on local files: inference, errors naming
//! row and column, parallel and streamed reads agreeing, chunk boundaries,
//! directory prefixes, Parquet round trips, the scores file.

use churn_model::{ColumnValues, Table};
use churn_service::features::{
    read_local_file, read_table, write_table, ColumnHint, FeatureError, FeatureUri, ReadOptions,
    TableStream,
};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn num<'a>(t: &'a Table, name: &str) -> &'a [f64] {
    match &t
        .column(name)
        .unwrap_or_else(|| panic!("no column {name}"))
        .values
    {
        ColumnValues::Numeric(v) => v,
        other => panic!("{name} is not numeric: {other:?}"),
    }
}

fn text<'a>(t: &'a Table, name: &str) -> &'a [Option<String>] {
    match &t
        .column(name)
        .unwrap_or_else(|| panic!("no column {name}"))
        .values
    {
        ColumnValues::Text(v) => v,
        other => panic!("{name} is not text: {other:?}"),
    }
}

/// Every chunk of a stream, concatenated, plus all row errors.
fn stream_all(path: &Path, options: ReadOptions) -> (Table, Vec<(usize, String)>, Vec<usize>) {
    let mut stream = TableStream::open_local(path, options).unwrap();
    let mut all: Option<Table> = None;
    let mut errors = Vec::new();
    let mut firsts = Vec::new();
    while let Some(chunk) = stream.next_chunk().unwrap() {
        firsts.push(chunk.table.first_row);
        errors.extend(chunk.row_errors.iter().map(|e| (e.row, e.message.clone())));
        match &mut all {
            None => all = Some(chunk.table),
            Some(a) => {
                for (c, m) in a.columns.iter_mut().zip(chunk.table.columns) {
                    match (&mut c.values, m.values) {
                        (ColumnValues::Numeric(a), ColumnValues::Numeric(m)) => a.extend(m),
                        (ColumnValues::Text(a), ColumnValues::Text(m)) => a.extend(m),
                        _ => panic!("kinds changed between chunks"),
                    }
                }
            }
        }
    }
    (all.unwrap_or_default(), errors, firsts)
}

/// Streams `path` on a pool of `threads` threads: with more than one the
/// reader parses several chunks ahead in parallel.
fn stream_on(
    threads: usize,
    path: &Path,
    options: ReadOptions,
) -> (Table, Vec<(usize, String)>, Vec<usize>) {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(|| stream_all(path, options))
}

#[test]
fn streams_parsed_ahead_in_parallel_equal_the_one_at_a_time_stream() {
    // Blank lines (not rows), CRLF line ends, a ragged row, a bad cell, and no
    // final line end: every piece boundary must keep rows, numbers and errors.
    let mut text = String::from("customer_id,a,b\r\n");
    for i in 0..5_000 {
        match i % 997 {
            13 => text.push_str("\r\n"),
            14 => text.push_str(&format!("c{i},1\r\n")),
            15 => text.push_str(&format!("c{i},x,2\r\n")),
            _ => text.push_str(&format!("c{i},{},{}\r\n", i as f64 * 0.5, i % 7)),
        }
    }
    text.push_str("last,1,2");
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "ahead.csv", &text);
    for chunk_rows in [1, 7, 100, 1024, 10_000] {
        let options = || {
            ReadOptions {
                chunk_rows,
                ..ReadOptions::default()
            }
            .hint("a", ColumnHint::Numeric)
            .hint("b", ColumnHint::Numeric)
            .hint("customer_id", ColumnHint::Text)
        };
        let (one, one_errors, one_firsts) = stream_on(1, &p, options());
        for threads in [2, 3] {
            let (many, errors, firsts) = stream_on(threads, &p, options());
            same_table(&one, &many);
            assert_eq!(
                one_errors, errors,
                "{chunk_rows} rows per chunk, {threads} threads"
            );
            assert_eq!(one.n_rows(), 5_000 - 6 + 1, "{one_errors:?}");
            // Chunks never exceed the size asked for, and rows stay contiguous.
            assert!(firsts
                .windows(2)
                .all(|w| w[1] > w[0] && w[1] - w[0] <= chunk_rows));
            assert_eq!(firsts[0], one_firsts[0]);
        }
        assert_eq!(one_errors.len(), 11, "{one_errors:?}");
    }
}

/// Equality with NaN == NaN (missing cells).
fn same_table(a: &Table, b: &Table) {
    assert_eq!(a.columns.len(), b.columns.len());
    for (x, y) in a.columns.iter().zip(&b.columns) {
        assert_eq!(x.name, y.name);
        match (&x.values, &y.values) {
            (ColumnValues::Numeric(p), ColumnValues::Numeric(q)) => {
                assert_eq!(p.len(), q.len(), "{}", x.name);
                for (i, (u, v)) in p.iter().zip(q).enumerate() {
                    assert!(
                        u.to_bits() == v.to_bits() || (u.is_nan() && v.is_nan()),
                        "{} row {i}: {u} vs {v}",
                        x.name
                    );
                }
            }
            (ColumnValues::Text(p), ColumnValues::Text(q)) => assert_eq!(p, q, "{}", x.name),
            _ => panic!("column {} differs in kind", x.name),
        }
    }
}

#[test]
fn infers_kinds_and_missing_values() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "a.csv",
        "customer_id,logins,plan,nps,churned\r\n00017,3,pro,,1\r\n00018,,\"basic, annual\",7.5,0\r\n",
    );
    let t = read_local_file(&p, &ReadOptions::default()).unwrap();
    assert_eq!(t.n_rows(), 2);
    assert_eq!(t.first_row, 1);
    // Without a hint an all-digit id column is numeric...
    assert_eq!(num(&t, "customer_id"), &[17.0, 18.0]);
    assert!(num(&t, "logins")[1].is_nan());
    assert_eq!(
        text(&t, "plan"),
        &[Some("pro".into()), Some("basic, annual".into())]
    );
    assert!(num(&t, "nps")[0].is_nan());
    assert_eq!(num(&t, "nps")[1], 7.5);
    // ...the schema options keep ids as text, zeros included.
    let schema =
        churn_model::Schema::from_toml_str("[columns.nps]\nkind = \"categorical\"\n").unwrap();
    let options = ReadOptions::from_schema(&schema, "customer_id", "churned");
    let t = read_local_file(&p, &options).unwrap();
    assert_eq!(
        text(&t, "customer_id"),
        &[Some("00017".into()), Some("00018".into())]
    );
    assert_eq!(text(&t, "nps"), &[None, Some("7.5".into())]);
}

#[test]
fn non_finite_numbers_are_errors_naming_row_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "a.csv", "id,x,y\na,1,2\nb,inf,3\nc,2,4\n");
    let err = read_local_file(&p, &ReadOptions::default()).unwrap_err();
    match &err {
        FeatureError::Cell { row, column, .. } => assert_eq!((*row, column.as_str()), (2, "x")),
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().contains("row 2, column \"x\""), "{err}");
    let p = write(dir.path(), "b.csv", "id,x\na,1\nb,2\nc,NaN\n");
    assert!(matches!(
        read_local_file(&p, &ReadOptions::default()).unwrap_err(),
        FeatureError::Cell { row: 3, .. }
    ));
    // In a text column `nan` is just a word.
    let p = write(dir.path(), "c.csv", "id,x\na,nan\nb,pro\n");
    let t = read_local_file(&p, &ReadOptions::default()).unwrap();
    assert_eq!(text(&t, "x")[0].as_deref(), Some("nan"));
}

#[test]
fn forced_numeric_column_with_text_names_row_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "a.csv", "id,x\na,1\nb,2\nc,lots\n");
    let options = ReadOptions::default().hint("x", ColumnHint::Numeric);
    let err = read_local_file(&p, &options).unwrap_err().to_string();
    assert!(
        err.contains("row 3, column \"x\"") && err.contains("lots"),
        "{err}"
    );
}

#[test]
fn ragged_rows_are_errors_naming_the_row() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "a.csv", "id,x,y\na,1,2\nb,1\nc,1,2\n");
    let err = read_local_file(&p, &ReadOptions::default()).unwrap_err();
    assert!(
        matches!(
            err,
            FeatureError::Ragged {
                row: 2,
                expected: 3,
                found: 2,
                ..
            }
        ),
        "{err:?}"
    );
    let p = write(dir.path(), "b.csv", "id,x,y\na,1,2\nb,1,2\nc,1,2,9\n");
    let err = read_local_file(&p, &ReadOptions::default()).unwrap_err();
    assert!(
        matches!(
            err,
            FeatureError::Ragged {
                row: 3,
                found: 4,
                ..
            }
        ),
        "{err:?}"
    );
    let p = write(dir.path(), "c.csv", "id,id\n1,2\n");
    assert!(matches!(
        read_local_file(&p, &ReadOptions::default()).unwrap_err(),
        FeatureError::Header { .. }
    ));
    let p = write(dir.path(), "d.csv", "");
    assert!(matches!(
        read_local_file(&p, &ReadOptions::default()).unwrap_err(),
        FeatureError::Header { .. }
    ));
}

/// A CSV of `rows` rows over several MiB: numbers, a text column, missing
/// cells, and (optionally) quoted cells with commas and line ends.
fn big_csv(rows: usize, quotes: bool) -> String {
    let mut s = String::from("customer_id,a,b,c,plan\n");
    for i in 0..rows {
        let a = (i as f64) * 0.37 - 1000.0;
        let b = if i % 17 == 0 {
            String::new()
        } else {
            format!("{}", (i * 7919) % 1000)
        };
        // `c` is numeric in the first half and has one text cell late in the file.
        let c = if i == rows - 10 {
            "n/a".to_string()
        } else {
            format!("{:.3}e2", i as f64 / 1000.0)
        };
        let plan = match (i % 3, quotes) {
            (0, true) => "\"pro, \"\"annual\"\"\nsecond line\"".to_string(),
            (0, false) => "pro".to_string(),
            (1, _) => "basic".to_string(),
            _ => String::new(),
        };
        writeln!(s, "c{i:07},{a},{b},{c},{plan}").unwrap();
    }
    s
}

#[test]
fn parallel_sequential_and_streamed_reads_agree() {
    let dir = tempfile::tempdir().unwrap();
    let rows = 60_000;
    for quotes in [false, true] {
        let p = write(
            dir.path(),
            &format!("big{quotes}.csv"),
            &big_csv(rows, quotes),
        );
        assert!(
            std::fs::metadata(&p).unwrap().len() > 2 << 20,
            "must span several stream buffers"
        );
        // Parts are one per thread of the caller's rayon pool.
        let on = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| read_local_file(&p, &ReadOptions::default()).unwrap())
        };
        let one = on(1);
        // Part boundaries land anywhere (mid-line, on a line start): every split agrees.
        for threads in [2, 3, 4, 5, 7, 8] {
            same_table(&one, &on(threads));
        }
        assert_eq!(one.n_rows(), rows);
        // `c` met text near the end: text everywhere, original spelling kept.
        assert_eq!(text(&one, "c")[1].as_deref(), Some("0.001e2"));
        assert_eq!(text(&one, "c")[rows - 10].as_deref(), Some("n/a"));
        assert!(num(&one, "b")[0].is_nan());
        if quotes {
            assert_eq!(
                text(&one, "plan")[0].as_deref(),
                Some("pro, \"annual\"\nsecond line")
            );
        }
        // Streamed with the kinds of the whole read, in chunks that do not divide the rows.
        let options = ReadOptions {
            chunk_rows: 7_000,
            ..ReadOptions::default()
        }
        .hint("c", ColumnHint::Text)
        .hint("customer_id", ColumnHint::Text);
        let (streamed, errors, firsts) = stream_all(&p, options);
        assert!(errors.is_empty(), "{errors:?}");
        same_table(&one, &streamed);
        assert_eq!(firsts, (0..9).map(|k| 1 + k * 7_000).collect::<Vec<_>>());
    }
}

#[test]
fn stream_reports_bad_rows_and_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "a.csv",
        "id,x,y\na,1,2\nb,oops,3\nc,1\nd,inf,4\ne,5,6\n",
    );
    let options = ReadOptions {
        chunk_rows: 2,
        ..ReadOptions::default()
    }
    .hint("x", ColumnHint::Numeric)
    .hint("y", ColumnHint::Numeric);
    let (t, errors, firsts) = stream_all(&p, options);
    assert_eq!(t.n_rows(), 5);
    assert_eq!(firsts, vec![1, 3, 5]);
    let rows: Vec<usize> = errors.iter().map(|e| e.0).collect();
    assert_eq!(rows, vec![2, 3, 4]);
    assert!(
        errors[0].1.contains("column \"x\"") && errors[0].1.contains("oops"),
        "{errors:?}"
    );
    assert!(errors[1].1.contains("fields"), "{errors:?}");
    assert_eq!(num(&t, "x")[4], 5.0);
}

#[test]
fn stream_without_hints_infers_from_the_first_rows() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "a.csv", "id,x\na,1\nb,2\n");
    let (t, errors, _) = stream_all(&p, ReadOptions::default());
    assert!(errors.is_empty());
    assert_eq!(text(&t, "id").len(), 2);
    assert_eq!(num(&t, "x"), &[1.0, 2.0]);
}

#[test]
fn artifact_options_skip_columns_the_model_does_not_use() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "a.csv", "id,x,notes\na,1,hello\n");
    let options = ReadOptions {
        skip_unlisted: true,
        ..ReadOptions::default()
    }
    .hint("id", ColumnHint::Text)
    .hint("x", ColumnHint::Numeric);
    let (t, _, _) = stream_all(&p, options.clone());
    assert!(t.column("notes").is_none());
    // A hinted column that is absent is simply not in the table (the model decides).
    let (t, _, _) = stream_all(&p, options.hint("tenure", ColumnHint::Numeric));
    assert!(t.column("tenure").is_none());
}

#[tokio::test]
async fn a_directory_is_all_its_parts_in_name_order() {
    let dir = tempfile::tempdir().unwrap();
    let parts = dir.path().join("snap");
    std::fs::create_dir(&parts).unwrap();
    write(&parts, "part-0002.csv", "id,x\nc,3\n");
    write(&parts, "part-0001.csv", "id,x\na,1\nb,2\n");
    write(&parts, "_SUCCESS", "");
    let uri = FeatureUri::Local(parts.clone());
    let t = read_table(&uri, None, &ReadOptions::default())
        .await
        .unwrap();
    assert_eq!(
        text(&t, "id"),
        &[Some("a".into()), Some("b".into()), Some("c".into())]
    );
    // A part whose column is text makes it text in all parts.
    write(&parts, "part-0003.csv", "id,x\nd,many\n");
    let t = read_table(&uri, None, &ReadOptions::default())
        .await
        .unwrap();
    assert_eq!(text(&t, "x")[0].as_deref(), Some("1"));
    // Streams go through the parts in the same order.
    let (s, _, firsts) = stream_all(&parts, ReadOptions::default().hint("x", ColumnHint::Text));
    assert_eq!(s.n_rows(), 4);
    assert_eq!(firsts, vec![1, 1, 1]);
    write(&parts, "part-0004.csv", "id,y\ne,1\n");
    let err = read_table(&uri, None, &ReadOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, FeatureError::PartMismatch { .. }), "{err:?}");
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let err = read_table(&FeatureUri::Local(empty), None, &ReadOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, FeatureError::NoParts { .. }), "{err:?}");
}

#[test]
fn parquet_round_trip_whole_and_streamed() {
    let dir = tempfile::tempdir().unwrap();
    let src = write(dir.path(), "a.csv", &big_csv(100_000, true));
    let options = ReadOptions::default().hint("customer_id", ColumnHint::Text);
    let table = read_local_file(&src, &options).unwrap();
    let pq = dir.path().join("a.parquet");
    write_table(&table, &pq).unwrap();
    let back = read_local_file(&pq, &ReadOptions::default()).unwrap();
    same_table(&table, &back);
    // Chunks cross the 65,536-row groups.
    let (streamed, errors, firsts) = stream_all(
        &pq,
        ReadOptions {
            chunk_rows: 30_000,
            ..ReadOptions::default()
        },
    );
    assert!(errors.is_empty());
    same_table(&table, &streamed);
    assert_eq!(firsts, vec![1, 30_001, 60_001, 65_537, 95_537]);
    // CSV written back reads the same.
    let csv = dir.path().join("b.csv");
    write_table(&table, &csv).unwrap();
    same_table(&table, &read_local_file(&csv, &options).unwrap());
    // A numeric hint on a text column parses it, naming bad cells.
    let err =
        read_local_file(&pq, &ReadOptions::default().hint("c", ColumnHint::Numeric)).unwrap_err();
    assert!(
        matches!(err, FeatureError::Cell { row: 99_991, ref column, .. } if column == "c"),
        "{err:?}"
    );
    assert!(write_table(&table, &dir.path().join("x.json")).is_err());
}

#[test]
fn scores_file_has_the_documented_columns() {
    use churn_model::{Reason, RiskBand, Score};
    let mut w = churn_service::features::ScoresWriter::csv(Vec::new()).unwrap();
    let reason = |f: &str, v: f64, t: f64| Reason {
        feature: f.into(),
        value: serde_json::json!(v),
        typical: serde_json::json!(t),
        contribution: 0.5,
        with: None,
    };
    let score = Score {
        churn_probability: 0.8123456,
        logit: 1.46,
        risk_band: RiskBand::High,
        reasons: vec![reason("logins_30d", 2.0, 14.0), reason("nps", 3.0, 8.0)],
        out_of_range: 0,
    };
    w.write("c,1", &score).unwrap();
    let out = String::from_utf8(w.finish().unwrap()).unwrap();
    assert_eq!(
        out,
        "customer_id,churn_probability,risk_band,reason_1,reason_2,reason_3\n\
         \"c,1\",0.812346,high,logins_30d is 2 (typical 14),nps is 3 (typical 8),\n"
    );
}

//! Feature sources on S3 (moto_server): a prefix of several parts in key
//! order, a key without extension as a prefix, CSV streamed from the
//! GetObject body, Parquet spooled and streamed, errors naming the object.

use churn_model::{generate, ColumnValues, SyntheticConfig, Table};
use churn_service::features::{
    read_table, write_parquet, ColumnHint, FeatureError, FeatureUri, ReadOptions, TableStream,
};
use churn_service::test_support::{unique_name, MotoServer};

async fn put(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, body: Vec<u8>) {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(body.into())
        .send()
        .await
        .unwrap();
}

fn csv_bytes(t: &Table) -> Vec<u8> {
    let mut out = Vec::new();
    churn_service::features::write_csv(t, &mut out).unwrap();
    out
}

fn ids(t: &Table) -> Vec<String> {
    match &t.column("customer_id").unwrap().values {
        ColumnValues::Text(v) => v.iter().map(|s| s.clone().unwrap()).collect(),
        _ => panic!("ids are text"),
    }
}

/// Rows `range` of `t` as a new table.
fn rows(t: &Table, range: std::ops::Range<usize>) -> Table {
    let columns = t
        .columns
        .iter()
        .map(|c| match &c.values {
            ColumnValues::Numeric(v) => {
                churn_model::Column::numeric(c.name.clone(), v[range.clone()].to_vec())
            }
            ColumnValues::Text(v) => {
                churn_model::Column::text(c.name.clone(), v[range.clone()].to_vec())
            }
        })
        .collect();
    Table::new(columns)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefixes_objects_and_streams_on_s3() {
    let moto = MotoServer::start().await.unwrap();
    let s3 = moto.clients().await.s3;
    let bucket = unique_name("features");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let table = generate(&SyntheticConfig {
        customers: 30_000,
        seed: 8,
    });
    // Parts uploaded out of order; a marker object that is no part.
    put(
        &s3,
        &bucket,
        "snap/part-0002.csv",
        csv_bytes(&rows(&table, 10_000..30_000)),
    )
    .await;
    put(
        &s3,
        &bucket,
        "snap/part-0001.csv",
        csv_bytes(&rows(&table, 0..10_000)),
    )
    .await;
    put(&s3, &bucket, "snap/_SUCCESS", Vec::new()).await;
    let options = ReadOptions::default().hint("customer_id", ColumnHint::Text);

    for uri in [
        format!("s3://{bucket}/snap/"),
        format!("s3://{bucket}/snap"),
    ] {
        let uri = FeatureUri::parse(&uri).unwrap();
        let whole = read_table(&uri, Some(&s3), &options).await.unwrap();
        assert_eq!(ids(&whole), ids(&table), "parts in key order");
    }

    // Streamed from the GetObject body, in chunks, on a blocking thread.
    let uri = FeatureUri::parse(&format!("s3://{bucket}/snap/")).unwrap();
    let stream = TableStream::open(
        &uri,
        Some(s3.clone()),
        ReadOptions {
            chunk_rows: 4096,
            ..options.clone()
        },
    )
    .await
    .unwrap();
    let mut rx = stream.spawn();
    let mut seen = Vec::new();
    let mut parts = Vec::new();
    while let Some(chunk) = rx.recv().await {
        let chunk = chunk.unwrap();
        assert!(chunk.table.n_rows() <= 4096);
        assert!(chunk.row_errors.is_empty());
        if parts.last() != Some(&chunk.part.to_string()) {
            parts.push(chunk.part.to_string());
            assert_eq!(chunk.table.first_row, 1, "rows are numbered per part");
        }
        seen.extend(ids(&chunk.table));
    }
    assert_eq!(seen, ids(&table));
    assert_eq!(
        parts,
        vec![
            format!("s3://{bucket}/snap/part-0001.csv"),
            format!("s3://{bucket}/snap/part-0002.csv")
        ]
    );

    // Parquet object: whole, and streamed through a spooled temp file.
    let mut pq = Vec::new();
    write_parquet(&table, &mut pq).unwrap();
    put(&s3, &bucket, "pq/all.parquet", pq).await;
    let uri = FeatureUri::parse(&format!("s3://{bucket}/pq/all.parquet")).unwrap();
    let whole = read_table(&uri, Some(&s3), &ReadOptions::default())
        .await
        .unwrap();
    assert_eq!(ids(&whole), ids(&table));
    let stream = TableStream::open(
        &uri,
        Some(s3.clone()),
        ReadOptions {
            chunk_rows: 10_000,
            ..ReadOptions::default()
        },
    )
    .await
    .unwrap();
    let mut rx = stream.spawn();
    let mut n = 0;
    while let Some(chunk) = rx.recv().await {
        n += chunk.unwrap().table.n_rows();
    }
    assert_eq!(n, 30_000);

    // Errors name the object.
    let missing = FeatureUri::parse(&format!("s3://{bucket}/nope.csv")).unwrap();
    let err = read_table(&missing, Some(&s3), &options).await.unwrap_err();
    assert!(err.to_string().contains("nope.csv"), "{err}");
    let empty = FeatureUri::parse(&format!("s3://{bucket}/empty/")).unwrap();
    let err = read_table(&empty, Some(&s3), &options).await.unwrap_err();
    assert!(matches!(err, FeatureError::NoParts { .. }), "{err:?}");
    put(&s3, &bucket, "bad/x.csv", b"id,x\na,1\nb,inf\n".to_vec()).await;
    let bad = FeatureUri::parse(&format!("s3://{bucket}/bad/x.csv")).unwrap();
    let err = read_table(&bad, Some(&s3), &ReadOptions::default())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("bad/x.csv") && text.contains("row 2, column \"x\""),
        "{text}"
    );
    let err = read_table(&bad, None, &ReadOptions::default())
        .await
        .unwrap_err();
    // The cause is the source of the error, shown by the one-line report.
    let text = churn_service::error::report(&err);
    assert!(
        text.contains("S3 client") && text.contains("bad/x.csv"),
        "{text}"
    );
}

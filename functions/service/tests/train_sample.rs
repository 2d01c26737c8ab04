//! Training beyond the row cap through the train handler: a source above
//! the whole-read size is sampled in one streaming pass, and that sample is
//! the one the in-memory path draws (same rows, same model); a bad label
//! far into a streamed source fails naming its row.

use churn_model::{generate, BandPolicy, ColumnValues, SyntheticConfig, Table};
use churn_service::features::FeatureSources;
use churn_service::handlers::train::{
    handle_train_with, Gate, TrainOptions, TrainRequest, TrainSettings,
};
use churn_service::model_store::DirModelStore;

#[path = "shared/requests.rs"]
mod requests;
use requests::{train_request, write_csv};

const GATE: Gate = Gate {
    min_auc: 0.60,
    max_auc_drop: 0.01,
};

/// Settings reading sources of at most `whole_read_max_bytes` whole.
fn settings(whole_read_max_bytes: u64) -> TrainSettings {
    TrainSettings {
        gate: GATE,
        bands: BandPolicy::default(),
        max_rows: None,
        whole_read_max_bytes,
    }
}

fn capped(request: TrainRequest, max_rows: usize) -> TrainRequest {
    TrainRequest {
        options: TrainOptions {
            max_rows: Some(max_rows),
            ..request.options
        },
        ..request
    }
}

#[tokio::test]
async fn a_streamed_sample_trains_the_model_the_in_memory_sample_trains() {
    let dir = tempfile::tempdir().unwrap();
    let table = generate(&SyntheticConfig {
        customers: 6_000,
        seed: 3,
    });
    let data = write_csv(dir.path(), "big.csv", &table);
    let request = capped(train_request(&data), 2_000);
    let sources = FeatureSources::new();
    let whole_store = DirModelStore::new(dir.path().join("whole"));
    let whole = handle_train_with(&request, &whole_store, &sources, settings(u64::MAX))
        .await
        .unwrap();
    let streamed_store = DirModelStore::new(dir.path().join("streamed"));
    let streamed = handle_train_with(&request, &streamed_store, &sources, settings(0))
        .await
        .unwrap();
    for summary in [&whole, &streamed] {
        assert_eq!(summary.rows, 6_000);
        assert_eq!(summary.report.rows_read, 6_000);
        assert_eq!(summary.report.rows_sampled, 2_000);
        assert!(summary.report.sampling_shift < 0.0);
        assert!(summary.promoted, "{}", summary.reason);
    }
    assert_eq!(whole.model_id, streamed.model_id);
    assert_eq!(whole.report.sampling_shift, streamed.report.sampling_shift);
}

#[tokio::test]
async fn a_bad_label_deep_in_a_streamed_source_names_its_row() {
    let dir = tempfile::tempdir().unwrap();
    let mut table: Table = generate(&SyntheticConfig {
        customers: 5_000,
        seed: 4,
    });
    // Labels as text so one of them can be wrong.
    for c in &mut table.columns {
        if c.name == "churned" {
            if let ColumnValues::Numeric(v) = &c.values {
                let mut text: Vec<Option<String>> = v
                    .iter()
                    .map(|x| Some(if *x == 1.0 { "yes" } else { "no" }.to_string()))
                    .collect();
                text[4_321] = Some("maybe".into());
                c.values = ColumnValues::Text(text);
            }
        }
    }
    let data = write_csv(dir.path(), "bad.csv", &table);
    let store = DirModelStore::new(dir.path().join("models"));
    let err = handle_train_with(
        &capped(train_request(&data), 1_000),
        &store,
        &FeatureSources::new(),
        settings(0),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("row 4322"), "{err}");
    assert!(err.contains("maybe") && err.contains("churned"), "{err}");
    assert!(err.contains("bad.csv"), "{err}");
}

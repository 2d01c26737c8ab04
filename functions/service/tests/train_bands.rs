//! Band configuration reaches the stored artifact: `CHURN_BAND_*` through
//! `ServiceConfig` -> `TrainSettings`, and a request's `options.bands`
//! overriding it.

use churn_model::{generate, BandPolicy, ModelArtifact, SyntheticConfig};
use churn_service::config::ServiceConfig;
use churn_service::features::write_table;
use churn_service::features::FeatureSources;
use churn_service::handlers::error::HandlerError;
use churn_service::handlers::train::{
    handle_train_with, TrainRequest, TrainSettings, TrainSummary,
};
use churn_service::model_store::{DirModelStore, ModelStore};
use std::collections::HashMap;
use std::path::Path;

fn config(pairs: &[(&str, &str)]) -> ServiceConfig {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    ServiceConfig::from_lookup(|k| map.get(k).cloned()).unwrap()
}

#[path = "shared/requests.rs"]
mod requests;

fn request(path: &Path, bands: Option<BandPolicy>) -> TrainRequest {
    let mut request = requests::train_request(path);
    request.options.bands = bands;
    request
}

async fn train_into(
    store_dir: &Path,
    request: &TrainRequest,
    config: &ServiceConfig,
) -> Result<(TrainSummary, ModelArtifact), HandlerError> {
    let store = DirModelStore::new(store_dir.to_path_buf());
    let summary = handle_train_with(
        request,
        &store,
        &FeatureSources::new(),
        TrainSettings::from_config(config),
    )
    .await?;
    let bytes = store.artifact(&summary.model_id).await.unwrap().unwrap();
    Ok((summary, ModelArtifact::from_json_bytes(&bytes).unwrap()))
}

#[tokio::test]
async fn band_configuration_ends_up_in_the_stored_artifact() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("train.csv");
    write_table(
        &generate(&SyntheticConfig {
            customers: 3_000,
            seed: 11,
        }),
        &data,
    )
    .unwrap();

    // Fixed cutoffs from the environment are stored as they are.
    let fixed = config(&[
        ("CHURN_BAND_HIGH_CUTOFF", "0.5"),
        ("CHURN_BAND_MEDIUM_CUTOFF", "0.2"),
    ]);
    let (_, a) = train_into(&dir.path().join("fixed"), &request(&data, None), &fixed)
        .await
        .unwrap();
    assert_eq!((a.bands.high, a.bands.medium), (0.5, 0.2));
    assert_eq!(
        a.bands.policy,
        BandPolicy::Fixed {
            high: 0.5,
            medium: 0.2
        }
    );

    // Default shares (10 % / 20 %) vs narrower ones: the cutoffs move up.
    let (_, wide) = train_into(
        &dir.path().join("default"),
        &request(&data, None),
        &config(&[]),
    )
    .await
    .unwrap();
    assert_eq!(wide.bands.policy, BandPolicy::default());
    let narrow_cfg = config(&[
        ("CHURN_BAND_HIGH_SHARE", "0.02"),
        ("CHURN_BAND_MEDIUM_SHARE", "0.05"),
    ]);
    let (_, narrow) = train_into(
        &dir.path().join("narrow"),
        &request(&data, None),
        &narrow_cfg,
    )
    .await
    .unwrap();
    assert_eq!(
        narrow.bands.policy,
        BandPolicy::Quantile {
            high_share: 0.02,
            medium_share: 0.05
        }
    );
    assert!(
        narrow.bands.high > wide.bands.high && narrow.bands.medium > wide.bands.medium,
        "narrow {:?} vs default {:?}",
        narrow.bands,
        wide.bands
    );
    // Same fit, other bands: the band policy is part of the content hash.
    assert_eq!(narrow.coefficients, wide.coefficients);
    assert_ne!(narrow.model_id(), wide.model_id());

    // The request's bands override the configuration's.
    let override_bands = BandPolicy::Fixed {
        high: 0.7,
        medium: 0.4,
    };
    let (_, o) = train_into(
        &dir.path().join("override"),
        &request(&data, Some(override_bands)),
        &fixed,
    )
    .await
    .unwrap();
    assert_eq!(o.bands.policy, override_bands);
    assert_eq!((o.bands.high, o.bands.medium), (0.7, 0.4));

    // An invalid override is the caller's error, named as such.
    let bad = BandPolicy::Fixed {
        high: 0.2,
        medium: 0.5,
    };
    match train_into(&dir.path().join("bad"), &request(&data, Some(bad)), &fixed).await {
        Err(HandlerError::BadRequest(m)) => assert!(m.contains("options.bands"), "{m}"),
        other => panic!("expected a bad request, got {:?}", other.map(|(s, _)| s)),
    }
}

#[test]
fn request_bands_deserialize_in_both_forms() {
    let r: TrainRequest = serde_json::from_value(serde_json::json!({
        "features": "x.csv",
        "options": {"bands": {"policy": "fixed", "high": 0.5, "medium": 0.2}}
    }))
    .unwrap();
    assert_eq!(
        r.options.bands,
        Some(BandPolicy::Fixed {
            high: 0.5,
            medium: 0.2
        })
    );
    let r: TrainRequest = serde_json::from_value(serde_json::json!({
        "features": "x.csv",
        "options": {"bands": {"policy": "quantile", "high_share": 0.05, "medium_share": 0.1}}
    }))
    .unwrap();
    assert_eq!(
        r.options.bands,
        Some(BandPolicy::Quantile {
            high_share: 0.05,
            medium_share: 0.1
        })
    );
    let none: TrainRequest =
        serde_json::from_value(serde_json::json!({"features": "x.csv"})).unwrap();
    assert_eq!(none.options.bands, None);
}

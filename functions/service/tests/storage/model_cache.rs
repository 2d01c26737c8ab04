//! ModelCache: loads once, re-checks the pointer at most every interval,
//! swaps without restart, keeps serving through a store outage.

use super::model_contract::artifact;
use churn_service::model_store::{DirModelStore, ModelCache, ModelStore};
use churn_service::Error;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test]
async fn cache_loads_once_and_swaps_after_the_interval() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(DirModelStore::new(dir.path()));
    let loads = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&loads);
    let cache = ModelCache::new(
        store.clone() as Arc<dyn ModelStore>,
        Duration::from_millis(200),
        move |p, bytes| {
            counter.fetch_add(1, Ordering::SeqCst);
            let v: serde_json::Value =
                serde_json::from_slice(bytes).map_err(|e| Error::InvalidArtifact(e.to_string()))?;
            assert_eq!(v["model_id"], p.model_id.as_str());
            Ok(v["payload"].as_u64().unwrap_or_default())
        },
    );

    assert!(cache.get().await.unwrap().is_none(), "nothing promoted yet");
    store.put_artifact(&artifact("m1", 1)).await.unwrap();
    store.promote("m1", None).await.unwrap();
    // Still within the interval since the last (empty) check.
    assert!(cache.get().await.unwrap().is_none());
    tokio::time::sleep(Duration::from_millis(250)).await;
    let first = cache.get().await.unwrap().unwrap();
    assert_eq!((first.pointer.model_id.as_str(), first.model), ("m1", 1));
    for _ in 0..10 {
        cache.get().await.unwrap();
    }
    assert_eq!(loads.load(Ordering::SeqCst), 1, "loaded once");

    store.put_artifact(&artifact("m2", 2)).await.unwrap();
    store.promote("m2", None).await.unwrap();
    assert_eq!(
        cache.get().await.unwrap().unwrap().model,
        1,
        "not before the interval"
    );
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(
        cache.get().await.unwrap().unwrap().model,
        2,
        "swapped without restart"
    );
    // Unchanged pointer after the interval: no reload.
    tokio::time::sleep(Duration::from_millis(250)).await;
    cache.get().await.unwrap();
    assert_eq!(loads.load(Ordering::SeqCst), 2);

    // Pointer now unreadable: the loaded model keeps serving.
    std::fs::write(dir.path().join("current.json"), b"{garbage").unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(cache.get().await.unwrap().unwrap().model, 2);
    // Rollback is picked up by an explicit refresh.
    std::fs::remove_file(dir.path().join("current.json")).unwrap();
    store.promote("m2", None).await.unwrap();
    store.rollback().await.unwrap();
    assert_eq!(cache.refresh_now().await.unwrap().unwrap().model, 1);
}

#[tokio::test]
async fn cache_reports_errors_when_nothing_is_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(DirModelStore::new(dir.path()));
    store.put_artifact(&artifact("m1", 1)).await.unwrap();
    store.promote("m1", None).await.unwrap();
    let cache = ModelCache::new(
        store as Arc<dyn ModelStore>,
        Duration::from_secs(60),
        |_, _| Err::<(), _>(Error::InvalidArtifact("loader refuses".into())),
    );
    assert!(matches!(cache.get().await, Err(Error::InvalidArtifact(_))));
}

//! The model store contract, written once against `&dyn ModelStore`.
//!
//! `raw` is the same store seen through its object primitives, used only to
//! tamper with stored bytes the way a bad actor or a bug could.

use churn_service::model_store::{
    sha256_hex, DirModelStore, ModelObjects, ModelPointer, ModelStore, S3ModelStore,
};
use churn_service::test_support::MotoServer;
use churn_service::Error;

/// Artifact-shaped bytes: the store only reads `model_id`.
pub fn artifact(id: &str, payload: u32) -> Vec<u8> {
    serde_json::to_vec(
        &serde_json::json!({"schema_version": 1, "model_id": id, "payload": payload}),
    )
    .unwrap()
}

pub async fn run_contract(adapter: &str, store: &dyn ModelStore, raw: &dyn ModelObjects) {
    eprintln!("model contract [{adapter}]");

    // Empty store.
    assert!(store.current().await.unwrap().is_none());
    assert!(store.current_pointer().await.unwrap().is_none());
    assert!(store.list().await.unwrap().is_empty());
    assert!(matches!(
        store.rollback().await,
        Err(Error::NoPreviousModel)
    ));
    assert!(matches!(
        store.promote("missing", None).await,
        Err(Error::ModelNotFound { .. })
    ));
    assert!(store.artifact("missing").await.unwrap().is_none());
    assert!(matches!(
        store.artifact("../etc").await,
        Err(Error::InvalidInput { .. })
    ));

    // Immutable artifacts.
    let a = artifact("model-a", 1);
    let stored = store.put_artifact(&a).await.unwrap();
    assert_eq!(
        (stored.model_id.as_str(), stored.created),
        ("model-a", true)
    );
    assert_eq!(stored.sha256, sha256_hex(&a));
    let again = store.put_artifact(&a).await.unwrap();
    assert!(!again.created, "identical bytes are a no-op");
    // Same id, other bytes (a retrain of the same data at another time):
    // the stored object is kept and its sha256 returned.
    let retrained = artifact("model-a", 2);
    let same_id = store.put_artifact(&retrained).await.unwrap();
    assert_eq!(
        same_id,
        churn_service::model_store::StoredArtifact {
            model_id: "model-a".into(),
            sha256: sha256_hex(&a),
            created: false,
        },
        "an existing id is already stored"
    );
    assert_ne!(same_id.sha256, sha256_hex(&retrained));
    assert_eq!(
        store.artifact("model-a").await.unwrap().unwrap(),
        a,
        "never overwritten"
    );
    assert!(matches!(
        store.put_artifact(b"not json").await,
        Err(Error::InvalidArtifact(_))
    ));
    assert!(matches!(
        store.put_artifact(br#"{"model_id":"../../x"}"#).await,
        Err(Error::InvalidArtifact(_))
    ));

    // Promotion refuses a mismatched sha and leaves the pointer alone.
    assert!(matches!(
        store.promote("model-a", Some(&"0".repeat(64))).await,
        Err(Error::ShaMismatch { .. })
    ));
    assert!(store.current_pointer().await.unwrap().is_none());
    let pa = store
        .promote("model-a", Some(&stored.sha256))
        .await
        .unwrap();
    assert_eq!(
        (pa.model_id.as_str(), pa.sha256.as_str()),
        ("model-a", stored.sha256.as_str())
    );
    let (pointer, bytes) = store.current().await.unwrap().unwrap();
    assert_eq!((pointer, bytes), (pa.clone(), a.clone()));
    assert_eq!(
        store.promote("model-a", None).await.unwrap(),
        pa,
        "re-promoting is a no-op"
    );

    // Two more models; history and list.
    let b = artifact("model-b", 1);
    let c = artifact("model-c", 1);
    store.put_artifact(&b).await.unwrap();
    store.put_artifact(&c).await.unwrap();
    store.promote("model-b", None).await.unwrap();
    store
        .promote("model-c", Some(&sha256_hex(&c)))
        .await
        .unwrap();
    let ids: Vec<String> = store
        .history()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.model_id)
        .collect();
    assert_eq!(ids, ["model-a", "model-b", "model-c"]);
    let list = store.list().await.unwrap();
    assert_eq!(list.len(), 3);
    let promoted: Vec<&str> = list
        .iter()
        .filter(|e| e.promoted)
        .map(|e| e.model_id.as_str())
        .collect();
    assert_eq!(promoted, ["model-c"]);
    assert!(list.iter().all(|e| e.last_promoted_at.is_some()));

    // Rollback walks back one promotion at a time.
    assert_eq!(store.rollback().await.unwrap().model_id, "model-b");
    assert_eq!(store.current().await.unwrap().unwrap().1, b);
    assert_eq!(store.rollback().await.unwrap().model_id, "model-a");
    assert!(matches!(
        store.rollback().await,
        Err(Error::NoPreviousModel)
    ));
    assert_eq!(
        store.current_pointer().await.unwrap().unwrap().model_id,
        "model-a"
    );

    // An artifact filed under another id is refused.
    raw.put_object("model-x/model.json", artifact("model-y", 1))
        .await
        .unwrap();
    assert!(matches!(
        store.promote("model-x", None).await,
        Err(Error::ShaMismatch { .. })
    ));
    // Storing under an id whose object is not that artifact is refused
    // (corrupt), and the object is left as it is for inspection.
    assert!(matches!(
        store.put_artifact(&artifact("model-x", 1)).await,
        Err(Error::Corrupt { message, .. }) if message.contains("model-y")
    ));
    assert_eq!(
        store.artifact("model-x").await.unwrap().unwrap(),
        artifact("model-y", 1)
    );
    raw.put_object("model-z/model.json", b"garbage".to_vec())
        .await
        .unwrap();
    assert!(matches!(
        store.put_artifact(&artifact("model-z", 1)).await,
        Err(Error::Corrupt { message, .. }) if message.contains("model-z")
    ));
    assert_eq!(
        store.artifact("model-z").await.unwrap().unwrap(),
        b"garbage"
    );

    // A pointer whose sha does not match the bytes is refused on load.
    let wrong = ModelPointer {
        sha256: sha256_hex(b"other"),
        ..store.current_pointer().await.unwrap().unwrap()
    };
    assert!(matches!(
        store.load(&wrong).await,
        Err(Error::ShaMismatch { .. })
    ));
    // Bytes altered behind the store's back: loading the current model fails
    // loudly instead of scoring with an unknown model.
    raw.put_object("model-a/model.json", artifact("model-a", 99))
        .await
        .unwrap();
    assert!(matches!(
        store.current().await,
        Err(Error::ShaMismatch { .. })
    ));
    // ...and rollback to an altered artifact is refused too.
    store.promote("model-b", None).await.unwrap();
    assert!(matches!(
        store.rollback().await,
        Err(Error::ShaMismatch { .. })
    ));
    assert_eq!(
        store.current_pointer().await.unwrap().unwrap().model_id,
        "model-b"
    );
}

#[tokio::test]
async fn contract_dir() {
    let dir = tempfile::tempdir().unwrap();
    let store = DirModelStore::new(dir.path().join("models"));
    run_contract("dir", &store, &store).await;
    // No temporary files are left behind.
    let leftovers: Vec<_> = walk(dir.path())
        .into_iter()
        .filter(|p| p.contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p.display().to_string());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_s3() {
    let moto = MotoServer::start().await.unwrap();
    let clients = moto.clients().await;
    let bucket = clients.new_bucket("models").await;
    let store = S3ModelStore::new(clients.s3.clone(), &bucket, "churn/models/");
    run_contract("s3", &store, &store).await;
    // Layout: <prefix>/<model_id>/model.json and <prefix>/current.json.
    let keys: Vec<String> = clients
        .s3
        .list_objects_v2()
        .bucket(&bucket)
        .send()
        .await
        .unwrap()
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_string))
        .collect();
    for key in [
        "churn/models/current.json",
        "churn/models/model-a/model.json",
        "churn/models/history.json",
    ] {
        assert!(keys.iter().any(|k| k == key), "{key} missing from {keys:?}");
    }
    // An empty prefix works too.
    let root = S3ModelStore::new(clients.s3.clone(), &bucket, "");
    root.put_artifact(&artifact("root-model", 1)).await.unwrap();
    root.promote("root-model", None).await.unwrap();
    assert_eq!(
        root.current().await.unwrap().unwrap().0.model_id,
        "root-model"
    );
}

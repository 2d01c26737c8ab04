//! Account attributes end to end against the local adapters: training
//! records the schema's `[attributes]` columns (an absent one fails before
//! anything is stored), rescoring puts each row's attributes on its flag
//! (bad renewal dates and values null, counted in the summary's warnings, the
//! rows still scored and written; an absent column fails before any write),
//! and the score API persists the attributes sent among a customer's features.

use async_trait::async_trait;
use bytes::Bytes;
use churn_model::check::CheckThresholds;
use churn_model::{generate, Attributes, SyntheticConfig, Table};
use churn_service::config::ServiceConfig;
use churn_service::error::Result as StoreResult;
use churn_service::features::FeatureSources;
use churn_service::flag::{Acknowledgement, CustomerRecord, Flag, Page, WriteSummary};
use churn_service::flag_store::{FlagStore, ListQuery, SqliteFlagStore, Summary, SummaryBy};
use churn_service::handlers::error::HandlerError;
use churn_service::handlers::rescore::{
    handle_rescore, AttributeWarning, RescoreSettings, RescoreStores, RescoreSummary, RunIdentity,
};
use churn_service::handlers::score_api::{handle, ScoreApi};
use churn_service::handlers::train::{handle_train, Gate};
use churn_service::model_store::{DirModelStore, ModelStore};
use churn_service::services::Services;
use http::{Method, Request, StatusCode};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[path = "shared/requests.rs"]
mod requests;
use requests::{train_request, write_csv};

const GATE: Gate = Gate {
    min_auc: 0.60,
    max_auc_drop: 0.01,
};

const SCHEMA: &str = "[attributes]\n\
    name = \"account_name\"\n\
    owner = \"csm_email\"\n\
    segment = \"segment\"\n\
    value = \"arr\"\n\
    renewal_date = \"renews_on\"\n";

/// The synthetic table with the owner and renewal date columns renamed as
/// [`SCHEMA`] maps them.
fn synthetic(customers: usize, seed: u64) -> Table {
    let mut t = generate(&SyntheticConfig { customers, seed });
    for c in &mut t.columns {
        match c.name.as_str() {
            "owner" => c.name = "csm_email".into(),
            "renewal_date" => c.name = "renews_on".into(),
            _ => {}
        }
    }
    t
}

/// A flag store that remembers every flag handed to it (what the handlers
/// write, whatever the store keeps of it) and stores them in SQLite.
struct Recording {
    inner: SqliteFlagStore,
    written: Mutex<Vec<Flag>>,
}

impl Recording {
    async fn new() -> Arc<Recording> {
        Arc::new(Recording {
            inner: SqliteFlagStore::in_memory(4).await.unwrap(),
            written: Mutex::new(Vec::new()),
        })
    }

    fn flag(&self, id: &str) -> Flag {
        let written = self.written.lock().unwrap();
        let found = written.iter().find(|f| f.customer_id == id);
        found.unwrap_or_else(|| panic!("no flag for {id}")).clone()
    }

    fn count(&self) -> usize {
        self.written.lock().unwrap().len()
    }
}

#[async_trait]
impl FlagStore for Recording {
    async fn write_scores(
        &self,
        flags: &[Flag],
        epsilon: f64,
        deadline: Instant,
        origin: &churn_service::notify::EventOrigin,
    ) -> StoreResult<WriteSummary> {
        self.written.lock().unwrap().extend_from_slice(flags);
        self.inner
            .write_scores(flags, epsilon, deadline, origin)
            .await
    }

    async fn customer(
        &self,
        customer_id: &str,
        now: time::OffsetDateTime,
    ) -> StoreResult<Option<CustomerRecord>> {
        self.inner.customer(customer_id, now).await
    }

    async fn acknowledge(&self, customer_id: &str, ack: &Acknowledgement) -> StoreResult<Flag> {
        self.inner.acknowledge(customer_id, ack).await
    }

    async fn unacknowledge(&self, customer_id: &str) -> StoreResult<Flag> {
        self.inner.unacknowledge(customer_id).await
    }

    async fn list(
        &self,
        query: &ListQuery,
        limit: usize,
        cursor: Option<&str>,
    ) -> StoreResult<Page> {
        self.inner.list(query, limit, cursor).await
    }

    async fn summaries(&self, by: &[SummaryBy]) -> StoreResult<Vec<Summary>> {
        self.inner.summaries(by).await
    }

    async fn create_table_if_missing(&self) -> StoreResult<()> {
        self.inner.create_table_if_missing().await
    }
}

struct Setup {
    services: Services,
    flags: Arc<Recording>,
    dir: tempfile::TempDir,
}

/// Services with a model trained (and promoted) on [`synthetic`] data under [`SCHEMA`].
async fn trained() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let models: Arc<dyn ModelStore> = Arc::new(DirModelStore::new(dir.path().join("models")));
    let flags = Recording::new().await;
    let config = ServiceConfig {
        model_refresh: Duration::from_secs(0),
        ..ServiceConfig::default()
    };
    let runs = Arc::new(SqliteFlagStore::in_memory(4).await.unwrap());
    let services = Services::with_stores(config, models, flags.clone(), runs.clone(), runs);
    let csv = write_csv(dir.path(), "train.csv", &synthetic(3000, 5));
    let mut request = train_request(&csv);
    request.schema = Some(SCHEMA.to_string());
    let s = handle_train(
        &request,
        services.models.as_ref(),
        &FeatureSources::new(),
        GATE,
    )
    .await
    .unwrap();
    assert!(s.promoted, "{}", s.reason);
    Setup {
        services,
        flags,
        dir,
    }
}

/// `csv` with the cell of `column` on data row `row` (1-based) replaced.
fn set_cell(csv: &Path, row: usize, column: &str, value: &str) {
    let text = std::fs::read_to_string(csv).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let at = lines[0].split(',').position(|h| h == column).unwrap();
    let mut cells: Vec<String> = lines[row].split(',').map(str::to_string).collect();
    cells[at] = value.to_string();
    lines[row] = cells.join(",");
    std::fs::write(csv, lines.join("\n") + "\n").unwrap();
}

/// `csv` without `column`.
fn drop_column(csv: &Path, column: &str) {
    let text = std::fs::read_to_string(csv).unwrap();
    let at = text
        .lines()
        .next()
        .unwrap()
        .split(',')
        .position(|h| h == column)
        .unwrap();
    let out: Vec<String> = text
        .lines()
        .map(|l| {
            let mut cells: Vec<&str> = l.split(',').collect();
            cells.remove(at);
            cells.join(",")
        })
        .collect();
    std::fs::write(csv, out.join("\n") + "\n").unwrap();
}

async fn rescore(setup: &Setup, csv: &Path) -> Result<RescoreSummary, HandlerError> {
    let model = setup.services.cache.get().await.unwrap().unwrap();
    let settings = RescoreSettings {
        epsilon: 0.01,
        write_deadline: Duration::from_secs(10),
        chunk_rows: 16,
        as_of: None,
        check: Some(CheckThresholds::default()),
        force: false,
    };
    let stores = RescoreStores {
        flags: setup.flags.as_ref(),
        runs: setup.services.runs.as_ref(),
        sources: &setup.services.sources,
        due: &[],
    };
    handle_rescore(
        &csv.display().to_string(),
        &model.model,
        stores,
        settings,
        &RunIdentity::new_run(),
        &|_| {},
    )
    .await
}

fn text_cell(table: &Table, column: &str, row: usize) -> Option<String> {
    match &table.column(column).unwrap().values {
        churn_model::ColumnValues::Text(v) => v[row - 1].clone(),
        churn_model::ColumnValues::Numeric(_) => panic!("{column} is numeric"),
    }
}

fn snapshot(setup: &Setup) -> (Table, PathBuf) {
    let table = synthetic(40, 6);
    let csv = write_csv(setup.dir.path(), "snapshot.csv", &table);
    (table, csv)
}

#[tokio::test]
async fn training_records_the_attribute_columns() {
    let setup = trained().await;
    let model = setup.services.cache.get().await.unwrap().unwrap();
    let artifact = &model.model.artifact;
    assert_eq!(artifact.schema_version, churn_model::SCHEMA_VERSION);
    let mapped: Vec<(&str, &str)> = artifact
        .attributes
        .mapped()
        .map(|(r, c)| (r.key(), c))
        .collect();
    assert_eq!(
        mapped,
        [
            ("name", "account_name"),
            ("owner", "csm_email"),
            ("segment", "segment"),
            ("value", "arr"),
            ("renewal_date", "renews_on"),
        ]
    );
    let features: Vec<&str> = artifact
        .preprocessing
        .features
        .iter()
        .map(|f| f.name())
        .collect();
    for (_, c) in &mapped {
        assert!(!features.contains(c), "{c} is a feature: {features:?}");
    }
}

#[tokio::test]
async fn training_with_an_absent_attribute_column_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = DirModelStore::new(dir.path().join("models"));
    let csv = write_csv(
        dir.path(),
        "train.csv",
        &generate(&SyntheticConfig::default()),
    );
    let mut request = train_request(&csv);
    request.schema = Some(SCHEMA.to_string());
    let e = handle_train(&request, &store, &FeatureSources::new(), GATE)
        .await
        .unwrap_err();
    let text = e.to_string();
    assert!(text.contains("csm_email"), "{text}");
    assert!(
        text.contains("owner"),
        "lists the columns there are: {text}"
    );
    assert_eq!(e.kind(), churn_model::ErrorKind::Input);
    assert!(store.current().await.unwrap().is_none());
    let stored = std::fs::read_dir(dir.path().join("models")).map_or(0, |d| d.count());
    assert_eq!(stored, 0, "an artifact was stored");
}

#[tokio::test]
async fn rescoring_puts_attributes_on_flags_and_counts_bad_values() {
    let setup = trained().await;
    let (table, csv) = snapshot(&setup);
    for (row, bad) in [(4, "2026-02-30"), (9, "soon"), (17, "31/12/2026")] {
        set_cell(&csv, row, "renews_on", bad);
    }
    set_cell(&csv, 5, "arr", "n/a");
    set_cell(&csv, 6, "csm_email", "");
    let summary = rescore(&setup, &csv).await.unwrap();
    // Every row scored and written, bad attributes or not.
    assert_eq!(
        (summary.rows, summary.scored, summary.written),
        (40, 40, 40)
    );
    assert_eq!(summary.failed_rows_count, 0, "{:?}", summary.failed_rows);
    assert_eq!(
        summary.warnings,
        [
            AttributeWarning {
                column: "arr".into(),
                role: churn_model::AttributeRole::Value,
                count: 1,
                rows: vec![5],
                message: "not a number".into(),
            },
            AttributeWarning {
                column: "renews_on".into(),
                role: churn_model::AttributeRole::RenewalDate,
                count: 3,
                rows: vec![4, 9, 17],
                message: "not a date (YYYY-MM-DD)".into(),
            },
        ]
    );
    let v = serde_json::to_value(&summary).unwrap();
    assert_eq!(
        v["warnings"][1],
        json!({"column": "renews_on", "role": "renewal_date", "count": 3,
               "rows": [4, 9, 17], "message": "not a date (YYYY-MM-DD)"})
    );

    // What the handler hands the store.
    assert_eq!(setup.flags.count(), 40);
    let id = |row: usize| text_cell(&table, "customer_id", row).unwrap();
    let first = setup.flags.flag(&id(1));
    let arr = match &table.column("arr").unwrap().values {
        churn_model::ColumnValues::Numeric(v) => v[0],
        _ => unreachable!(),
    };
    let expected = Attributes {
        name: text_cell(&table, "account_name", 1),
        owner: text_cell(&table, "csm_email", 1),
        segment: text_cell(&table, "segment", 1),
        value: Some(arr),
        renewal_date: text_cell(&table, "renews_on", 1),
        crm_id: None,
    };
    assert_eq!(first.attributes, expected);
    let fourth = setup.flags.flag(&id(4)).attributes;
    assert_eq!(fourth.renewal_date, None);
    assert_eq!(fourth.owner, text_cell(&table, "csm_email", 4));
    assert_eq!(setup.flags.flag(&id(5)).attributes.value, None);
    assert_eq!(setup.flags.flag(&id(6)).attributes.owner, None);

    // What the store gives back (needs the store to persist attributes).
    let stored = setup.flags.get(&id(1)).await.unwrap().unwrap();
    assert_eq!(stored.attributes, expected);
}

#[tokio::test]
async fn rescoring_without_an_attribute_column_writes_nothing() {
    let setup = trained().await;
    let (_, csv) = snapshot(&setup);
    drop_column(&csv, "renews_on");
    let e = rescore(&setup, &csv).await.unwrap_err();
    assert!(matches!(e, HandlerError::BadRequest(_)), "{e}");
    let text = e.to_string();
    assert!(text.contains("\"renews_on\""), "{text}");
    assert!(text.contains("renewal_date"), "{text}");
    assert_eq!(setup.flags.count(), 0);
}

/// Scoring into a file does not need the attribute columns.
#[tokio::test]
async fn scoring_into_a_file_ignores_attributes() {
    let setup = trained().await;
    let (_, csv) = snapshot(&setup);
    drop_column(&csv, "renews_on");
    let model = setup.services.cache.get().await.unwrap().unwrap();
    let out = setup.dir.path().join("scores.csv");
    let summary = churn_service::handlers::score_file::handle_score_file(
        &churn_service::features::FeatureUri::parse(&csv.display().to_string()).unwrap(),
        &FeatureSources::new(),
        &model.model,
        &out,
        &Default::default(),
        &|_| {},
    )
    .await
    .unwrap();
    assert_eq!(summary.scored, 40);
    assert!(summary.missing_feature_columns.is_empty());
}

#[tokio::test]
async fn the_score_api_persists_attributes_sent_with_the_features() {
    let setup = trained().await;
    let s = &setup.services;
    let body = json!({"persist": true, "customers": [{"customer_id": "acme", "features": {
        "logins_30d": 2, "plan": "basic", "mrr": 49.0,
        "account_name": " Acme Ltd ", "csm_email": "ana@example.com", "arr": 588,
        "renews_on": "2026-02-30", "segment": "smb"
    }}]});
    let request = Request::builder()
        .method(Method::POST)
        .uri("/v1/score")
        .header("content-type", "application/json")
        .body(Bytes::from(body.to_string()))
        .unwrap();
    let api = ScoreApi::of(s);
    let response = handle(api, request).await;
    let v: Value = serde_json::from_slice(response.body()).unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{v}");
    let warnings = v["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{v}");
    assert_eq!(warnings[0]["code"], "invalid_attribute");
    assert_eq!(warnings[0]["field"], "renews_on");
    assert_eq!(v["persisted"]["written"], 1, "{v}");
    let flag = setup.flags.flag("acme");
    assert_eq!(
        flag.attributes,
        Attributes {
            name: Some("Acme Ltd".into()),
            owner: Some("ana@example.com".into()),
            segment: Some("smb".into()),
            value: Some(588.0),
            renewal_date: None,
            crm_id: None,
        }
    );
}

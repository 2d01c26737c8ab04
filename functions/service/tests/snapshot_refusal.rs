//! The snapshot check guarding the flags, in SQLite and in DynamoDB on
//! moto (run records in the flag file, and in S3): a feature in cents, a
//! dropped feature and half the rows nulled are refused and leave every
//! flag unchanged, item by item, with a run record saying why; `force`
//! writes and its record says so; a refused shard of a sharded run leaves
//! its customers alone and is reported in the run's record.

use churn_model::{generate, ColumnValues, SyntheticConfig, Table};
use churn_service::flag::CustomerRecord;
use churn_service::flag_store::{DynamoFlagStore, FlagStore, SqliteFlagStore};
use churn_service::handlers::rescore::{handle_event, run_event, RescoreOutput};
use churn_service::handlers::HandlerError;
use churn_service::model_store::S3ModelStore;
use churn_service::run_store::{ObjectRunStore, RunStore};
use churn_service::services::Services;
use churn_service::test_support::{unique_name, MotoServer};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use time::OffsetDateTime;

#[path = "shared/requests.rs"]
mod requests;
use requests::{trained_services, write_csv};

/// Customers of the rescored snapshots.
const CUSTOMERS: usize = 400;

struct Setup {
    services: Services,
    dir: tempfile::TempDir,
    snapshot: Table,
    ids: Vec<String>,
}

/// A promoted model, and its flags written from a clean snapshot.
async fn setup(
    flags: Arc<dyn FlagStore>,
    runs: Arc<dyn RunStore>,
    outbox: Arc<dyn churn_service::notify::Outbox>,
) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let (services, _) = trained_services(dir.path(), flags, runs, outbox).await;
    let snapshot = generate(&SyntheticConfig {
        customers: CUSTOMERS,
        seed: 41,
    });
    let ids = match &snapshot.column("customer_id").unwrap().values {
        ColumnValues::Text(v) => v.iter().map(|i| i.clone().unwrap()).collect(),
        ColumnValues::Numeric(_) => panic!("ids are text"),
    };
    let clean = write_csv(dir.path(), "clean.csv", &snapshot);
    let summary = rescore(&services, &clean, "clean", false).await.unwrap();
    assert_eq!(summary.written, CUSTOMERS);
    // Both passes read the same rows: no note that the snapshot changed.
    assert!(
        summary.notes.iter().all(|n| !n.contains("changed")),
        "{:?}",
        summary.notes
    );
    let record = services.runs.run("clean").await.unwrap().unwrap();
    assert!(!record.refused && !record.forced, "{record:?}");
    for f in &record.check.features {
        assert!(f.psi.unwrap() < 0.1, "{f:?}");
    }
    Setup {
        services,
        dir,
        snapshot,
        ids,
    }
}

async fn rescore(
    services: &Services,
    csv: &Path,
    run_id: &str,
    force: bool,
) -> Result<churn_service::handlers::rescore::RescoreSummary, HandlerError> {
    let event = json!({"snapshot": csv.display().to_string(), "run_id": run_id, "force": force});
    run_event(services, &event, &|_| {}).await
}

/// Every customer's stored record (flag and history), read one by one.
async fn stored(s: &Setup, now: OffsetDateTime) -> Vec<Option<CustomerRecord>> {
    let mut out = Vec::new();
    for id in &s.ids {
        out.push(s.services.flags.customer(id, now).await.unwrap());
    }
    out
}

fn numeric_mut<'a>(table: &'a mut Table, name: &str) -> &'a mut Vec<f64> {
    match &mut table
        .columns
        .iter_mut()
        .find(|c| c.name == name)
        .unwrap()
        .values
    {
        ColumnValues::Numeric(v) => v,
        ColumnValues::Text(_) => panic!("{name} is text"),
    }
}

/// The snapshot with money in cents.
fn in_cents(table: &Table) -> Table {
    let mut t = table.clone();
    for v in numeric_mut(&mut t, "mrr") {
        *v *= 100.0;
    }
    t
}

/// The broken snapshots, by name, with what the refusal must name.
fn broken(table: &Table) -> Vec<(&'static str, Table, &'static str)> {
    let mut dropped = table.clone();
    dropped.columns.retain(|c| c.name != "logins_30d");
    // A join that lost half the rows' features: every feature cell of
    // every other row empty (ids, labels and attributes kept).
    let mut nulled = table.clone();
    for c in &mut nulled.columns {
        if matches!(c.name.as_str(), "customer_id" | "churned") {
            continue;
        }
        match &mut c.values {
            ColumnValues::Numeric(v) => v.iter_mut().step_by(2).for_each(|x| *x = f64::NAN),
            ColumnValues::Text(v) => v.iter_mut().step_by(2).for_each(|x| *x = None),
        }
    }
    vec![
        ("cents", in_cents(table), "out_of_range: mrr"),
        ("dropped", dropped, "logins_30d"),
        ("nulled", nulled, "drift:"),
    ]
}

async fn refusals_leave_every_flag_unchanged(s: &Setup) {
    let now = OffsetDateTime::now_utc();
    let before = stored(s, now).await;
    assert!(before.iter().all(Option::is_some));
    for (name, table, named) in broken(&s.snapshot) {
        let csv = write_csv(s.dir.path(), &format!("{name}.csv"), &table);
        let run_id = format!("refused-{name}");
        let err = rescore(&s.services, &csv, &run_id, false)
            .await
            .unwrap_err();
        let HandlerError::Refused(refusal) = &err else {
            panic!("{name}: expected a refusal, got {err}")
        };
        let message = err.to_string();
        assert!(message.starts_with("snapshot refused: "), "{message}");
        assert!(message.contains(named), "{name}: {message}");
        assert_eq!(refusal.run_id.as_deref(), Some(run_id.as_str()));
        assert_eq!(stored(s, now).await, before, "{name}: a flag changed");
        let record = s.services.runs.run(&run_id).await.unwrap().unwrap();
        assert!(record.refused && !record.forced, "{name}: {record:?}");
        assert_eq!(record.counts.written, 0);
        assert_eq!(record.counts.rows, CUSTOMERS as u64);
        assert_eq!(record.check, refusal.report);
    }
}

async fn force_writes_and_says_so(s: &Setup) {
    let now = OffsetDateTime::now_utc();
    let before = stored(s, now).await;
    let csv = s.dir.path().join("cents.csv");
    let summary = rescore(&s.services, &csv, "forced-cents", true)
        .await
        .unwrap();
    assert!(summary.forced);
    assert!(summary.written > 0, "{summary:?}");
    assert!(summary.check.as_ref().unwrap().refused());
    let record = s.services.runs.run("forced-cents").await.unwrap().unwrap();
    assert!(record.forced && !record.refused, "{record:?}");
    assert_eq!(record.counts.written, summary.written as u64);
    assert_ne!(stored(s, now).await, before);
    let listed = s.services.runs.runs(1).await.unwrap();
    assert_eq!(listed[0].run_id, "forced-cents");
}

async fn a_refused_shard_is_reported_in_its_run(s: &Setup) {
    let now = OffsetDateTime::now_utc();
    let before = stored(s, now).await;
    // Two shards of one run: the first clean, the second in cents.
    let half = CUSTOMERS / 2;
    let rows = |r: std::ops::Range<usize>| s.snapshot.select_rows(&r.collect::<Vec<_>>());
    let p1 = write_csv(s.dir.path(), "part-1.csv", &rows(0..half));
    let p2 = write_csv(
        s.dir.path(),
        "part-2.csv",
        &in_cents(&rows(half..CUSTOMERS)),
    );
    let shard = |p: &PathBuf| json!({"snapshot": p.display().to_string(), "run_id": "exec-7", "shard": true});
    let ok = handle_event(&s.services, &shard(&p1), &|_| {})
        .await
        .unwrap();
    assert!(matches!(ok, RescoreOutput::Run(_)));
    let err = handle_event(&s.services, &shard(&p2), &|_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(err, HandlerError::Refused(ref r) if r.shard),
        "{err}"
    );
    // Shards are no runs of their own.
    assert!(s.services.runs.run("exec-7").await.unwrap().is_none());
    let finished = handle_event(&s.services, &json!({"finish_run": "exec-7"}), &|_| {})
        .await
        .unwrap();
    let RescoreOutput::Finished(f) = finished else {
        panic!("{finished:?}")
    };
    assert_eq!((f.shards, f.refused_shards), (2, 1));
    assert_eq!(f.status, churn_model::check::CheckStatus::Refuse);
    let record = s.services.runs.run("exec-7").await.unwrap().unwrap();
    let shards = record.shards.clone().unwrap();
    assert_eq!(shards.refused_snapshots, [p2.display().to_string()]);
    assert!(record.refused);
    assert_eq!(record.counts.rows, CUSTOMERS as u64);
    assert_eq!(
        record.check.rows, CUSTOMERS as u64,
        "the check covers every shard's rows"
    );
    // The refused shard's customers kept their flags.
    let after = stored(s, now).await;
    assert_eq!(after[half..], before[half..]);
    let serialized = serde_json::to_value(&f).unwrap();
    for key in ["run_id", "status", "shards", "refused_shards", "forced"] {
        assert!(serialized.get(key).is_some(), "{key}: {serialized}");
    }
    assert_eq!(serialized["status"], "refuse");
    // A run without shard records is an input error.
    let missing = handle_event(&s.services, &json!({"finish_run": "exec-none"}), &|_| {}).await;
    assert!(matches!(missing, Err(HandlerError::BadRequest(_))));
}

async fn the_whole_contract(s: Setup) {
    refusals_leave_every_flag_unchanged(&s).await;
    force_writes_and_says_so(&s).await;
    a_refused_shard_is_reported_in_its_run(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_flags_and_runs() {
    let store = Arc::new(SqliteFlagStore::in_memory(4).await.unwrap());
    the_whole_contract(setup(store.clone(), store.clone(), store).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_flags_and_s3_runs_on_moto() {
    let moto = MotoServer::start().await.unwrap();
    let clients = moto.clients().await;
    let flags = Arc::new(DynamoFlagStore::new(
        clients.dynamodb.clone(),
        unique_name("flags"),
        4,
    ));
    flags.create_table_if_missing().await.unwrap();
    let bucket = clients.new_bucket("runs").await;
    let runs = Arc::new(ObjectRunStore::new(Arc::new(S3ModelStore::new(
        clients.s3.clone(),
        bucket,
        "",
    ))));
    the_whole_contract(setup(flags.clone(), runs, flags).await).await;
}

/// A SQLite flag store whose `fail_from`-th batch on fails like a store
/// outage past its deadline.
struct FailsFrom {
    inner: Arc<SqliteFlagStore>,
    batches: std::sync::atomic::AtomicUsize,
    fail_from: usize,
}

#[async_trait::async_trait]
impl FlagStore for FailsFrom {
    async fn write_scores(
        &self,
        flags: &[churn_service::flag::Flag],
        epsilon: f64,
        deadline: std::time::Instant,
        origin: &churn_service::notify::EventOrigin,
    ) -> churn_service::Result<churn_service::flag::WriteSummary> {
        let n = self
            .batches
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1;
        if n >= self.fail_from {
            return Err(churn_service::Error::Storage {
                backend: "sqlite",
                operation: "write",
                source: "the disk went away".into(),
            });
        }
        self.inner
            .write_scores(flags, epsilon, deadline, origin)
            .await
    }
    async fn customer(
        &self,
        id: &str,
        now: OffsetDateTime,
    ) -> churn_service::Result<Option<CustomerRecord>> {
        self.inner.customer(id, now).await
    }
    async fn acknowledge(
        &self,
        id: &str,
        ack: &churn_service::flag::Acknowledgement,
    ) -> churn_service::Result<churn_service::flag::Flag> {
        self.inner.acknowledge(id, ack).await
    }
    async fn unacknowledge(&self, id: &str) -> churn_service::Result<churn_service::flag::Flag> {
        self.inner.unacknowledge(id).await
    }
    async fn list(
        &self,
        query: &churn_service::flag_store::ListQuery,
        limit: usize,
        cursor: Option<&str>,
    ) -> churn_service::Result<churn_service::flag::Page> {
        self.inner.list(query, limit, cursor).await
    }
    async fn summaries(
        &self,
        by: &[churn_service::flag_store::SummaryBy],
    ) -> churn_service::Result<Vec<churn_service::flag_store::Summary>> {
        self.inner.summaries(by).await
    }
    async fn create_table_if_missing(&self) -> churn_service::Result<()> {
        self.inner.create_table_if_missing().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_fails_while_writing_leaves_a_record_of_how_far_it_got() {
    use churn_service::handlers::rescore::{
        handle_rescore, RescoreSettings, RescoreStores, RunIdentity,
    };
    let store = Arc::new(SqliteFlagStore::in_memory(4).await.unwrap());
    let s = setup(store.clone(), store.clone(), store.clone()).await;
    let failing = FailsFrom {
        inner: store.clone(),
        batches: Default::default(),
        fail_from: 3,
    };
    let model = s.services.cache.get().await.unwrap().unwrap();
    let csv = write_csv(s.dir.path(), "again.csv", &in_cents(&s.snapshot));
    let stores = RescoreStores {
        flags: &failing,
        runs: store.as_ref(),
        sources: &s.services.sources,
        due: &[],
    };
    let settings = RescoreSettings {
        chunk_rows: 100,
        force: true,
        ..RescoreSettings::from_config(&s.services.config)
    };
    let run = RunIdentity {
        run_id: "half-done".into(),
        shard: false,
    };
    let err = handle_rescore(
        &csv.display().to_string(),
        &model.model,
        stores,
        settings,
        &run,
        &|_| {},
    )
    .await
    .unwrap_err();
    let message = churn_service::error::report(&err);
    assert!(message.contains("the disk went away"), "{message}");
    let record = s.services.runs.run("half-done").await.unwrap().unwrap();
    assert!(
        record
            .error
            .as_deref()
            .unwrap()
            .contains("the disk went away"),
        "{record:?}"
    );
    assert_eq!(
        record.counts.rows, 300,
        "two batches read and written, the third failed"
    );
    assert!(
        record.counts.written > 0 && record.counts.written <= 200,
        "{:?}",
        record.counts
    );
    assert!(record.forced && !record.refused);
}

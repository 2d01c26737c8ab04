//! The SQLite [`RunStore`]: run records and outcomes reports in the flag
//! store's database file (tables `runs`, `run_shards`, `outcome_reports`,
//! created with the flag tables), so the local default keeps everything in
//! one file.

use super::{check_ids, decode, decode_each, encode, report_models, RunStore, MAX_LISTED_RUNS};
use crate::error::{Error, Result};
use crate::flag_store::sqlite::SqliteFlagStore;
use crate::run_record::{OutcomesRecord, RunRecord};
use crate::timestamp;
use async_trait::async_trait;
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, OptionalExtension};

const BACKEND: &str = "sqlite";

fn storage(operation: &'static str) -> impl Fn(rusqlite::Error) -> Error {
    move |e| Error::storage(BACKEND, operation, e)
}

/// Stored JSON as the text column holds it (serde_json writes UTF-8).
fn text(bytes: Vec<u8>) -> String {
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The row of the latest report (`latest`), or of a model's (`model:<id>`).
fn report_name(model_id: Option<&str>) -> String {
    match model_id {
        Some(id) => format!("model:{id}"),
        None => "latest".to_string(),
    }
}

impl SqliteFlagStore {
    /// The `record` column of the rows `sql` selects with `param` as `?1`.
    async fn records(
        &self,
        operation: &'static str,
        sql: &'static str,
        param: Value,
    ) -> Result<Vec<String>> {
        self.with_conn(operation, move |conn| {
            let mut stmt = conn.prepare(sql).map_err(storage(operation))?;
            let rows = stmt
                .query_map([param], |r| r.get(0))
                .map_err(storage(operation))?;
            rows.collect::<rusqlite::Result<Vec<String>>>()
                .map_err(storage(operation))
        })
        .await
    }

    /// Runs the insert-or-update `sql` with `values` as `?1`, `?2`, `?3`.
    async fn upsert(
        &self,
        operation: &'static str,
        sql: &'static str,
        values: [String; 3],
    ) -> Result<()> {
        self.with_conn(operation, move |conn| {
            conn.execute(sql, params_from_iter(values))
                .map(|_| ())
                .map_err(storage(operation))
        })
        .await
    }
}

#[async_trait]
impl RunStore for SqliteFlagStore {
    async fn put_run(&self, run: &RunRecord) -> Result<()> {
        check_ids(&run.run_id, None)?;
        let (id, finished, record) = (
            run.run_id.clone(),
            timestamp::format(run.finished_at),
            text(encode("run record", run)?),
        );
        let sql = "INSERT INTO runs (run_id, finished_at, record) VALUES (?1, ?2, ?3)
                   ON CONFLICT(run_id) DO UPDATE SET finished_at = ?2, record = ?3";
        self.upsert("put_run", sql, [id, finished, record]).await
    }

    async fn run(&self, run_id: &str) -> Result<Option<RunRecord>> {
        let id = run_id.to_string();
        let text: Option<String> = self
            .with_conn("get_run", move |conn| {
                conn.query_row("SELECT record FROM runs WHERE run_id = ?1", [id], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(storage("get_run"))
            })
            .await?;
        text.map(|t| decode("run record", t.as_bytes())).transpose()
    }

    async fn runs(&self, limit: usize) -> Result<Vec<RunRecord>> {
        let limit = Value::Integer(limit.min(MAX_LISTED_RUNS) as i64);
        let sql = "SELECT record FROM runs ORDER BY finished_at DESC, run_id DESC LIMIT ?1";
        let texts = self.records("list_runs", sql, limit).await?;
        Ok(decode_each(
            "run record",
            texts.iter().map(|t| t.as_bytes()),
        ))
    }

    async fn put_shard(&self, run_id: &str, shard: &str, record: &RunRecord) -> Result<()> {
        check_ids(run_id, Some(shard))?;
        let (id, shard, text) = (
            run_id.to_string(),
            shard.to_string(),
            text(encode("shard record", record)?),
        );
        let sql = "INSERT INTO run_shards (run_id, shard, record) VALUES (?1, ?2, ?3)
                   ON CONFLICT(run_id, shard) DO UPDATE SET record = ?3";
        self.upsert("put_shard", sql, [id, shard, text]).await
    }

    async fn shards(&self, run_id: &str) -> Result<Vec<RunRecord>> {
        let id = Value::Text(run_id.to_string());
        let sql = "SELECT record FROM run_shards WHERE run_id = ?1 ORDER BY shard";
        let texts = self.records("list_shards", sql, id).await?;
        Ok(decode_each(
            "shard record",
            texts.iter().map(|t| t.as_bytes()),
        ))
    }

    async fn put_outcomes(&self, record: &OutcomesRecord) -> Result<()> {
        let text = text(encode("outcomes report", record)?);
        let mut names: Vec<String> = report_models(record)
            .into_iter()
            .map(|m| report_name(Some(m)))
            .collect();
        names.push(report_name(None));
        self.with_conn("put_outcomes", move |conn| {
            let tx = conn.transaction().map_err(storage("put_outcomes"))?;
            for name in &names {
                tx.execute(
                    "INSERT INTO outcome_reports (name, record) VALUES (?1, ?2)
                     ON CONFLICT(name) DO UPDATE SET record = ?2",
                    params![name, text],
                )
                .map_err(storage("put_outcomes"))?;
            }
            tx.commit().map_err(storage("put_outcomes"))
        })
        .await
    }

    async fn outcomes(&self, model_id: Option<&str>) -> Result<Option<OutcomesRecord>> {
        let name = report_name(model_id);
        let text: Option<String> = self
            .with_conn("get_outcomes", move |conn| {
                conn.query_row(
                    "SELECT record FROM outcome_reports WHERE name = ?1",
                    [name],
                    |r| r.get(0),
                )
                .optional()
                .map_err(storage("get_outcomes"))
            })
            .await?;
        text.map(|t| decode("outcomes report", t.as_bytes()))
            .transpose()
    }
}

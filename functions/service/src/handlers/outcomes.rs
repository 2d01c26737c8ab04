//! Realised accuracy: known churn outcomes matched with the scores that
//! were in force before them, reported overall and per model
//! ([`churn_model::outcomes`]) and stored as the latest report
//! ([`RunStore::put_outcomes`]).
//!
//! Each outcome (customer id, churn label as in training, the date it was
//! observed) is matched with the customer's score in force `horizon_days`
//! before `observed_at`: the newest history point at or before that time;
//! when the customer has no score that old, its earliest score before
//! `observed_at`. A customer with neither (unknown id, or first scored
//! after the outcome) is unmatched: counted, the first ones listed.

use crate::features::{ColumnHint, FeatureSources, FeatureUri, ReadOptions};
use crate::flag::HistoryPoint;
use crate::flag_store::FlagStore;
use crate::handlers::error::HandlerError;
use crate::model_store::ModelStore;
use crate::run_record::OutcomesRecord;
use crate::run_store::RunStore;
use churn_model::outcomes::{outcomes_report, MatchedOutcome, ModelReference, OutcomesConfig};
use churn_model::{ColumnValues, ModelArtifact, Table};
use std::collections::{BTreeSet, HashMap};
use time::{Duration, OffsetDateTime};

/// Default days between a score and the outcome it is judged by.
pub const DEFAULT_HORIZON_DAYS: u32 = 90;
/// Longest horizon accepted (ten years).
pub const MAX_HORIZON_DAYS: u32 = 3650;

/// What to read and how to match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutcomesRequest {
    /// The outcomes table (CSV or Parquet, local or `s3://`).
    pub data: String,
    pub id_column: String,
    pub label_column: String,
    /// The column with each outcome's date (`YYYY-MM-DD` or RFC 3339);
    /// `None`: every outcome observed `now`.
    pub observed_at_column: Option<String>,
    /// 1..=[`MAX_HORIZON_DAYS`].
    pub horizon_days: u32,
}

/// The stores outcomes are matched against and the report is kept in.
#[derive(Clone, Copy)]
pub struct OutcomesStores<'a> {
    pub flags: &'a dyn FlagStore,
    pub models: &'a dyn ModelStore,
    pub runs: &'a dyn RunStore,
    pub sources: &'a FeatureSources,
}

/// One outcome as read.
struct Outcome {
    customer_id: String,
    churned: bool,
    observed_at: OffsetDateTime,
}

/// Reads the outcomes, matches them, computes and stores the report.
///
/// # Errors
/// [`HandlerError::BadRequest`] for a bad horizon, a missing column, an
/// id, label or date that does not parse, or a customer listed twice
/// (naming row and column);
/// [`HandlerError::Features`] when the table cannot be read;
/// [`HandlerError::Service`] when a store fails.
pub async fn handle_outcomes(
    request: &OutcomesRequest,
    stores: OutcomesStores<'_>,
    now: OffsetDateTime,
) -> Result<OutcomesRecord, HandlerError> {
    if !(1..=MAX_HORIZON_DAYS).contains(&request.horizon_days) {
        return Err(HandlerError::BadRequest(format!(
            "horizon days must be 1 to {MAX_HORIZON_DAYS} (got {})",
            request.horizon_days
        )));
    }
    let outcomes = read_outcomes(request, stores.sources, now).await?;
    let horizon = Duration::days(i64::from(request.horizon_days));
    let mut matched = Vec::new();
    let mut unmatched = Vec::new();
    let mut before_horizon = 0u64;
    for o in outcomes {
        let history = match stores.flags.customer(&o.customer_id, now).await? {
            Some(record) => record.history,
            None => Vec::new(),
        };
        match score_in_force(&history, o.observed_at, horizon) {
            Some(p) => {
                before_horizon += u64::from(p.scored_at > o.observed_at - horizon);
                matched.push(MatchedOutcome {
                    customer_id: o.customer_id,
                    churned: o.churned,
                    churn_probability: p.churn_probability,
                    risk_band: p.risk_band,
                    model_id: p.model_id.clone(),
                });
            }
            None => unmatched.push(o.customer_id),
        }
    }
    let models = model_references(stores.models, &matched).await?;
    let report = outcomes_report(&matched, &unmatched, &models, &OutcomesConfig::default());
    let record = OutcomesRecord {
        computed_at: crate::timestamp::truncate(now),
        source: request.data.clone(),
        horizon_days: request.horizon_days,
        matched_before_horizon: before_horizon,
        report,
    };
    stores.runs.put_outcomes(&record).await?;
    Ok(record)
}

/// The score in force `horizon` before `observed_at` among `history`
/// (any order): the newest point at or before `observed_at - horizon`,
/// else the earliest point before `observed_at`.
pub fn score_in_force(
    history: &[HistoryPoint],
    observed_at: OffsetDateTime,
    horizon: Duration,
) -> Option<&HistoryPoint> {
    let target = observed_at - horizon;
    history
        .iter()
        .filter(|p| p.scored_at <= target)
        .max_by_key(|p| p.scored_at)
        .or_else(|| {
            history
                .iter()
                .filter(|p| p.scored_at < observed_at)
                .min_by_key(|p| p.scored_at)
        })
}

/// The outcomes table's rows.
async fn read_outcomes(
    request: &OutcomesRequest,
    sources: &FeatureSources,
    now: OffsetDateTime,
) -> Result<Vec<Outcome>, HandlerError> {
    let uri = FeatureUri::parse(&request.data)?;
    let mut options = ReadOptions {
        skip_unlisted: true,
        ..ReadOptions::default()
    }
    .hint(&request.id_column, ColumnHint::Text)
    .hint(&request.label_column, ColumnHint::Text);
    if let Some(c) = &request.observed_at_column {
        options = options.hint(c, ColumnHint::Text);
    }
    let (table, _) = sources.read_table(&uri, &options).await?;
    let labels = churn_model::label::labels(&table, &request.label_column)?;
    let ids = text_column(&table, &request.id_column)?;
    let dates = match &request.observed_at_column {
        Some(c) => Some(text_column(&table, c)?),
        None => None,
    };
    let mut out = Vec::with_capacity(labels.len());
    let mut seen: HashMap<String, usize> = HashMap::with_capacity(labels.len());
    for (i, churned) in labels.into_iter().enumerate() {
        let row = table.row_number(i);
        let column = &request.id_column;
        let id = churn_model::customer_id(ids[i].as_deref().unwrap_or(""))
            .map_err(|e| HandlerError::BadRequest(format!("row {row}, column {column:?}: {e}")))?;
        // Two outcomes for one customer would be a silent choice between them.
        if let Some(first) = seen.insert(id.to_string(), row) {
            return Err(HandlerError::BadRequest(format!(
                "row {row}, column {column:?}: customer {id:?} already has an outcome on row {first}"
            )));
        }
        let observed_at = match (&dates, &request.observed_at_column) {
            (Some(d), Some(c)) => observed_at(d[i].as_deref(), now)
                .map_err(|m| HandlerError::BadRequest(format!("row {row}, column {c:?}: {m}")))?,
            _ => now,
        };
        out.push(Outcome {
            customer_id: id.to_string(),
            churned,
            observed_at,
        });
    }
    Ok(out)
}

/// Column `name` of `table` as text.
fn text_column<'t>(table: &'t Table, name: &str) -> Result<&'t [Option<String>], HandlerError> {
    match table.column(name).map(|c| &c.values) {
        Some(ColumnValues::Text(v)) => Ok(v),
        Some(ColumnValues::Numeric(_)) | None => {
            let have: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
            Err(HandlerError::BadRequest(format!(
                "no column {name:?} in the outcomes (columns: {})",
                have.join(", ")
            )))
        }
    }
}

/// An outcome's date: `YYYY-MM-DD` (midnight UTC) or RFC 3339, not after `now`.
fn observed_at(cell: Option<&str>, now: OffsetDateTime) -> Result<OffsetDateTime, String> {
    let text = cell
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or("no date")?;
    let t = match churn_model::attributes::parse_date(text) {
        Ok(iso) => {
            let format = time::macros::format_description!("[year]-[month]-[day]");
            time::Date::parse(&iso, &format)
                .map_err(|e| e.to_string())?
                .midnight()
                .assume_utc()
        }
        Err(date_error) => crate::timestamp::parse(text)
            .map_err(|_| format!("{date_error}, nor an RFC 3339 time"))?,
    };
    if t > now {
        return Err(format!("{text:?} is in the future"));
    }
    Ok(t)
}

/// The holdout AUC of each model the matched scores came from (a model no
/// longer in the store is left out: its realised figures stand alone).
async fn model_references(
    models: &dyn ModelStore,
    matched: &[MatchedOutcome],
) -> Result<Vec<ModelReference>, HandlerError> {
    let ids: BTreeSet<&str> = matched.iter().map(|m| m.model_id.as_str()).collect();
    let mut out = Vec::new();
    for id in ids {
        if crate::model_store::validate_model_id(id).is_err() {
            continue;
        }
        if let Some(bytes) = models.artifact(id).await? {
            let artifact = ModelArtifact::from_json_bytes(&bytes)?;
            out.push(ModelReference {
                model_id: id.to_string(),
                holdout_roc_auc: artifact.metrics.roc_auc,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use churn_model::RiskBand;
    use time::macros::datetime;

    fn point(at: OffsetDateTime, p: f64) -> HistoryPoint {
        HistoryPoint {
            scored_at: at,
            churn_probability: p,
            risk_band: RiskBand::Low,
            model_id: "m".into(),
        }
    }

    #[test]
    fn the_score_in_force_is_the_newest_before_the_horizon_else_the_earliest() {
        let observed = datetime!(2026-10-01 00:00 UTC);
        let history = [
            point(datetime!(2026-06-01 00:00 UTC), 0.1),
            point(datetime!(2026-06-20 00:00 UTC), 0.2),
            point(datetime!(2026-08-01 00:00 UTC), 0.3),
        ];
        let horizon = Duration::days(90); // target 2026-07-03
        assert_eq!(
            score_in_force(&history, observed, horizon)
                .unwrap()
                .churn_probability,
            0.2
        );
        // Nothing that old: the earliest score before the outcome.
        let young = [
            point(datetime!(2026-09-01 00:00 UTC), 0.5),
            point(datetime!(2026-08-15 00:00 UTC), 0.4),
        ];
        assert_eq!(
            score_in_force(&young, observed, horizon)
                .unwrap()
                .churn_probability,
            0.4
        );
        // Only scores after the outcome: unmatched.
        let late = [point(datetime!(2026-10-02 00:00 UTC), 0.9)];
        assert!(score_in_force(&late, observed, horizon).is_none());
        assert!(score_in_force(&[], observed, horizon).is_none());
    }

    #[test]
    fn observed_dates_are_dates_or_times_not_in_the_future() {
        let now = datetime!(2026-12-01 12:00 UTC);
        assert_eq!(
            observed_at(Some("2026-11-30"), now).unwrap(),
            datetime!(2026-11-30 00:00 UTC)
        );
        assert_eq!(
            observed_at(Some("2026-11-30T08:00:00Z"), now).unwrap(),
            datetime!(2026-11-30 08:00 UTC)
        );
        for bad in [
            Some("30/11/2026"),
            Some("2026-02-30"),
            Some(""),
            None,
            Some("2027-01-01"),
        ] {
            assert!(observed_at(bad, now).is_err(), "{bad:?}");
        }
    }
}

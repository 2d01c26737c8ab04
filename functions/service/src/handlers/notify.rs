//! Delivering risk-change events: at the end of a run (`churn rescore`, a
//! whole-snapshot Lambda run), as the state machine's step after a sharded
//! run (`{"notify_run": "<run_id>"}`), or from `churn notify`.
//!
//! A destination being down is not an error here: it shows in the answer
//! (`pending`, `failures`) and the events wait for the next round.

use crate::notify::{deliver, DeliveryReport};
use crate::services::Services;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One delivery failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyFailure {
    pub destination: String,
    pub error: String,
}

/// What a delivery round did (the rescore function's answer to `notify_run`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyOutput {
    pub run_id: Option<String>,
    /// Events accepted per destination kind in this round.
    pub delivered: BTreeMap<String, usize>,
    /// Deliveries still pending afterwards (all destinations together).
    pub pending: usize,
    pub failures: Vec<NotifyFailure>,
}

impl NotifyOutput {
    /// The answer of `report`.
    pub fn of(run_id: Option<&str>, report: &DeliveryReport) -> NotifyOutput {
        let mut out = NotifyOutput {
            run_id: run_id.map(str::to_string),
            pending: report.pending(),
            ..NotifyOutput::default()
        };
        for d in &report.destinations {
            let name = d.destination.map_or("unknown", |k| k.as_str()).to_string();
            out.delivered.insert(name.clone(), d.delivered);
            out.failures.extend(d.errors.iter().map(|e| NotifyFailure {
                destination: name.clone(),
                error: e.clone(),
            }));
        }
        out
    }
}

/// Delivers everything pending with the process's destinations.
pub async fn deliver_now(services: &Services, run_id: Option<&str>) -> DeliveryReport {
    deliver(services.outbox.as_ref(), &services.notifier, run_id).await
}

/// The notify step of a sharded run: one Slack digest for the whole run
/// (and whatever else is pending), the outbox flushed.
pub async fn notify_run(services: &Services, run_id: &str) -> NotifyOutput {
    let report = deliver_now(services, Some(run_id)).await;
    NotifyOutput::of(Some(run_id), &report)
}

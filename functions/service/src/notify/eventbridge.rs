//! Amazon EventBridge: `PutEvents` with source `churn-risk`, detail-type
//! `Customer Risk Changed` and the event as the detail, 10 entries per call
//! (the API's limit). Entries the bus reports as failed (throttling,
//! internal errors) are sent again with backoff until the deadline; the call
//! itself is retried by the SDK's own retry policy.

use super::event::RiskEvent;
use super::http::NOTIFY_RETRY;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_eventbridge::Client;
use std::time::Instant;

/// The `source` of every event.
pub const SOURCE: &str = "churn-risk";
/// The `detail-type` of every event.
pub const DETAIL_TYPE: &str = "Customer Risk Changed";
/// Most entries in one PutEvents.
pub const MAX_BATCH: usize = 10;
/// The least time a call is given, even at the deadline.
const MIN_CALL_TIME: std::time::Duration = std::time::Duration::from_secs(1);

/// PutEvents to one bus.
#[derive(Debug, Clone)]
pub struct EventBus {
    client: Client,
    bus: String,
}

/// The outcome of one batch: per event id, delivered or the last error.
pub type BatchOutcome = Vec<(String, Result<(), String>)>;

impl EventBus {
    /// Puts to `bus` (name or ARN) with `client`.
    pub fn new(client: Client, bus: impl Into<String>) -> EventBus {
        EventBus {
            client,
            bus: bus.into(),
        }
    }

    /// Sends up to [`MAX_BATCH`] events, retrying failed entries until
    /// `deadline`. Returns the outcome per event and the calls made.
    pub async fn put(&self, events: &[RiskEvent], deadline: Instant) -> (BatchOutcome, u32) {
        let mut left: Vec<&RiskEvent> = events.iter().take(MAX_BATCH).collect();
        let mut done: BatchOutcome = Vec::new();
        let mut calls = 0u32;
        loop {
            calls += 1;
            let entries: Vec<PutEventsRequestEntry> = left
                .iter()
                .map(|e| {
                    PutEventsRequestEntry::builder()
                        .source(SOURCE)
                        .detail_type(DETAIL_TYPE)
                        .detail(serde_json::to_string(e).unwrap_or_default())
                        .event_bus_name(&self.bus)
                        .resources(format!("customer/{}", e.customer_id))
                        .build()
                })
                .collect();
            // The deadline bounds the call too (the SDK sets no timeout of its own).
            let left_time = deadline.saturating_duration_since(Instant::now());
            let call = self.client.put_events().set_entries(Some(entries)).send();
            let answer = match tokio::time::timeout(left_time.max(MIN_CALL_TIME), call).await {
                Ok(answer) => answer.map_err(|e| crate::error::report(&e)),
                Err(_) => Err(format!(
                    "no answer within {:.1} s",
                    left_time.max(MIN_CALL_TIME).as_secs_f64()
                )),
            };
            let mut retry: Vec<(&RiskEvent, String)> = Vec::new();
            match answer {
                Err(why) => {
                    retry.extend(left.iter().map(|ev| (*ev, why.clone())));
                }
                Ok(out) => {
                    // Entries answer in request order.
                    for (ev, entry) in left.iter().zip(out.entries()) {
                        match entry.error_code() {
                            None => done.push((ev.id.clone(), Ok(()))),
                            Some(code) => {
                                let why = format!(
                                    "{code}: {}",
                                    entry.error_message().unwrap_or_default()
                                );
                                retry.push((*ev, why));
                            }
                        }
                    }
                    for ev in left.iter().skip(out.entries().len()) {
                        retry.push((*ev, "no entry in the answer".into()));
                    }
                }
            }
            if retry.is_empty() {
                return (done, calls);
            }
            if !NOTIFY_RETRY.wait(calls - 1, deadline).await || Instant::now() >= deadline {
                done.extend(retry.into_iter().map(|(ev, why)| {
                    (
                        ev.id.clone(),
                        Err(format!(
                            "eventbridge: {why} (gave up at the deadline after {calls} calls)"
                        )),
                    )
                }));
                return (done, calls);
            }
            left = retry.into_iter().map(|(ev, _)| ev).collect();
        }
    }
}

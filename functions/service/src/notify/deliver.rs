//! Draining the outbox: every configured destination gets what is pending
//! for it, concurrently, until the deadline.
//!
//! - Slack: one digest of everything pending (read in one pass, up to the
//!   deadline, keeping the 16-byte ids of what it covers), sent once, then
//!   exactly those events are marked;
//! - webhook: batches of 100, oldest first; a batch whose retries ran out
//!   stops the webhook for this round (the receiver is down: the rest stays
//!   pending rather than being tried batch after batch), a batch the
//!   receiver refused (4xx) stays pending with its error and the next ones go;
//! - EventBridge: batches of 10, four in flight; entries still failing at
//!   the deadline stay pending.
//!
//! Nothing here fails the caller: outcomes (and errors) are in the
//! [`DeliveryReport`], undelivered events stay pending with their last error.

use super::event::RiskEvent;
use super::eventbridge::{self, EventBus};
use super::http::HttpClient;
use super::outbox::{Outbox, Settled, StoredEvent};
use super::settings::{Destination, NotifySettings};
use super::{slack, webhook};
use futures::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// Events read from the outbox per call while draining.
const PAGE: usize = 500;
/// Most errors kept per destination in a report.
const MAX_ERRORS: usize = 10;

/// The clients of the configured destinations, built once per process.
#[derive(Debug, Clone)]
pub struct Notifier {
    pub settings: NotifySettings,
    due: Vec<Destination>,
    http: Option<HttpClient>,
    bus: Option<EventBus>,
}

impl Notifier {
    /// Clients for `settings`: the HTTP client when Slack or a webhook is
    /// configured, `eventbridge` when a bus is.
    ///
    /// # Errors
    /// A message when the HTTP client cannot be built (no root certificates).
    pub fn new(
        settings: NotifySettings,
        eventbridge: Option<aws_sdk_eventbridge::Client>,
    ) -> Result<Notifier, String> {
        let http = if settings.slack.is_some() || settings.webhook.is_some() {
            Some(HttpClient::new()?)
        } else {
            None
        };
        let bus = match (&settings.event_bus, eventbridge) {
            (Some(bus), Some(client)) => Some(EventBus::new(client, bus.clone())),
            _ => None,
        };
        let due = settings.destinations();
        Ok(Notifier {
            settings,
            due,
            http,
            bus,
        })
    }

    /// No destination at all (events are only recorded).
    pub fn none() -> Notifier {
        Notifier {
            settings: NotifySettings::default(),
            due: Vec::new(),
            http: None,
            bus: None,
        }
    }

    /// The kinds a new event is due at.
    pub fn due(&self) -> &[Destination] {
        &self.due
    }
}

/// What one round of delivery did at one destination.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestinationReport {
    pub destination: Option<Destination>,
    /// Events accepted in this round.
    pub delivered: usize,
    /// Events still pending there afterwards; `None` when they could not be
    /// counted (the error says why).
    pub pending: Option<usize>,
    /// Requests (or PutEvents calls) made, retries included.
    pub requests: u32,
    /// What went wrong (the last 10).
    pub errors: Vec<String>,
}

impl DestinationReport {
    fn new(destination: Destination) -> DestinationReport {
        DestinationReport {
            destination: Some(destination),
            ..DestinationReport::default()
        }
    }

    fn error(&mut self, e: String) {
        if self.errors.len() == MAX_ERRORS {
            self.errors.remove(0);
        }
        self.errors.push(e);
    }
}

/// What one round of delivery did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryReport {
    pub destinations: Vec<DestinationReport>,
}

impl DeliveryReport {
    /// Events delivered, all destinations together.
    pub fn delivered(&self) -> usize {
        self.destinations.iter().map(|d| d.delivered).sum()
    }

    /// Deliveries known to be pending, all destinations together.
    pub fn pending(&self) -> usize {
        self.destinations.iter().filter_map(|d| d.pending).sum()
    }

    /// Whether every destination is known to have nothing pending.
    pub fn all_delivered(&self) -> bool {
        self.destinations.iter().all(|d| d.pending == Some(0))
    }

    /// Errors, all destinations together.
    pub fn errors(&self) -> usize {
        self.destinations.iter().map(|d| d.errors.len()).sum()
    }
}

/// Delivers what is pending at every configured destination until the
/// settings' deadline. `run_id` names the run in the Slack digest.
pub async fn deliver(
    outbox: &dyn Outbox,
    notifier: &Notifier,
    run_id: Option<&str>,
) -> DeliveryReport {
    let deadline = Instant::now() + notifier.settings.deadline;
    let slack = async {
        match (&notifier.settings.slack, &notifier.http) {
            (Some(url), Some(http)) => {
                let public = notifier.settings.public_url.as_deref();
                Some(to_slack(outbox, http, url, public, run_id, deadline).await)
            }
            _ => None,
        }
    };
    let hook = async {
        match (&notifier.settings.webhook, &notifier.http) {
            (Some(hook), Some(http)) => Some(to_webhook(outbox, http, hook, deadline).await),
            _ => None,
        }
    };
    let bus = async {
        match &notifier.bus {
            Some(bus) => Some(to_eventbridge(outbox, bus, deadline).await),
            None => None,
        }
    };
    let (a, b, c) = futures::join!(slack, hook, bus);
    let mut destinations: Vec<DestinationReport> = [a, b, c].into_iter().flatten().collect();
    for d in &mut destinations {
        if let Some(kind) = d.destination {
            match outbox.count_pending(kind).await {
                Ok(n) => d.pending = Some(n),
                Err(e) => d.error(format!(
                    "counting what is pending: {}",
                    crate::error::report(&e)
                )),
            }
        }
    }
    DeliveryReport { destinations }
}

/// Records `outcome` for `ids`, noting a storage failure in the report.
async fn settle(
    outbox: &dyn Outbox,
    report: &mut DestinationReport,
    kind: Destination,
    ids: &[String],
    outcome: Settled,
) {
    if ids.is_empty() {
        return;
    }
    match outbox.settle(kind, ids, &outcome).await {
        Err(e) => report.error(format!(
            "recording the delivery: {}",
            crate::error::report(&e)
        )),
        Ok(()) if matches!(outcome, Settled::Delivered(_)) => report.delivered += ids.len(),
        Ok(()) => {}
    }
}

/// An event id (`evt_` and 32 hex digits) in 16 bytes: a digest remembers
/// every event it covers at this size, whatever the backlog.
fn compact(id: &str) -> Option<[u8; 16]> {
    let hex = id.strip_prefix("evt_")?;
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    (hex.len() == 32).then_some(out)
}

fn expand(id: &[u8; 16]) -> String {
    format!("evt_{}", super::event::hex(id))
}

/// The Slack digest of what is pending (read until the deadline) and the
/// ids it covers.
async fn slack_digest(
    outbox: &dyn Outbox,
    report: &mut DestinationReport,
    deadline: Instant,
) -> (slack::Digest, Vec<[u8; 16]>) {
    let mut digest = slack::Digest::default();
    let mut covered = Vec::new();
    let mut after: Option<String> = None;
    while Instant::now() < deadline {
        let page = match outbox
            .pending(Destination::Slack, after.as_deref(), PAGE)
            .await
        {
            Ok(p) => p,
            Err(e) => {
                report.error(crate::error::report(&e));
                break;
            }
        };
        for e in &page {
            match compact(&e.event.id) {
                Some(id) => {
                    digest.add(&e.event);
                    covered.push(id);
                }
                None => report.error(format!("event id {:?} is not an event id", e.event.id)),
            }
        }
        match page.last() {
            Some(last) if page.len() == PAGE => after = Some(last.sort_key()),
            _ => break,
        }
    }
    (digest, covered)
}

async fn to_slack(
    outbox: &dyn Outbox,
    http: &HttpClient,
    url: &super::settings::Endpoint,
    public_url: Option<&str>,
    run_id: Option<&str>,
    deadline: Instant,
) -> DestinationReport {
    let kind = Destination::Slack;
    let mut report = DestinationReport::new(kind);
    let (digest, covered) = slack_digest(outbox, &mut report, deadline).await;
    if digest.is_empty() {
        return report;
    }
    let body = bytes::Bytes::from(digest.message(public_url, run_id).to_string());
    let sent = http.post(url, &[], body, deadline).await;
    report.requests += sent.attempts;
    let outcome = match sent.result {
        Ok(()) => Settled::Delivered(crate::timestamp::now()),
        Err(e) => {
            report.error(e.clone());
            Settled::Failed(e)
        }
    };
    // Exactly the events the message counted, whatever was recorded since.
    for chunk in covered.chunks(PAGE) {
        let ids: Vec<String> = chunk.iter().map(expand).collect();
        settle(outbox, &mut report, kind, &ids, outcome.clone()).await;
    }
    report
}

/// The next page pending at `kind` after `after`; `None` when there is
/// none or the outbox failed (noted in the report).
async fn next_page(
    outbox: &dyn Outbox,
    report: &mut DestinationReport,
    kind: Destination,
    after: Option<&str>,
) -> Option<Vec<StoredEvent>> {
    match outbox.pending(kind, after, PAGE).await {
        Ok(p) if p.is_empty() => None,
        Ok(p) => Some(p),
        Err(e) => {
            report.error(crate::error::report(&e));
            None
        }
    }
}

async fn to_webhook(
    outbox: &dyn Outbox,
    http: &HttpClient,
    hook: &super::settings::Webhook,
    deadline: Instant,
) -> DestinationReport {
    let kind = Destination::Webhook;
    let mut report = DestinationReport::new(kind);
    let mut after: Option<String> = None;
    'pages: while Instant::now() < deadline {
        // A page of several batches: one outbox read serves five requests.
        let Some(page) = next_page(outbox, &mut report, kind, after.as_deref()).await else {
            break;
        };
        after = page.last().map(StoredEvent::sort_key);
        for batch in page.chunks(webhook::MAX_BATCH) {
            if Instant::now() >= deadline {
                break 'pages;
            }
            let ids: Vec<String> = batch.iter().map(|e| e.event.id.clone()).collect();
            let events: Vec<RiskEvent> = batch.iter().map(|e| e.event.clone()).collect();
            let body = webhook::body(&events);
            let headers = webhook::headers(&hook.secret, &body, &events);
            let sent = http.post(&hook.url, &headers, body, deadline).await;
            report.requests += sent.attempts;
            match sent.result {
                Ok(()) => {
                    let at = crate::timestamp::now();
                    settle(outbox, &mut report, kind, &ids, Settled::Delivered(at)).await;
                }
                Err(e) => {
                    report.error(e.clone());
                    settle(outbox, &mut report, kind, &ids, Settled::Failed(e)).await;
                    // Down: the rest waits for the next round. A batch the
                    // receiver refused stays pending with its error, and the
                    // ones after it still go.
                    if !sent.rejected {
                        break 'pages;
                    }
                }
            }
        }
    }
    report
}

async fn to_eventbridge(
    outbox: &dyn Outbox,
    bus: &EventBus,
    deadline: Instant,
) -> DestinationReport {
    let kind = Destination::EventBridge;
    let mut report = DestinationReport::new(kind);
    let mut after: Option<String> = None;
    while Instant::now() < deadline {
        let Some(page) = next_page(outbox, &mut report, kind, after.as_deref()).await else {
            break;
        };
        after = page.last().map(StoredEvent::sort_key);
        let events: Vec<RiskEvent> = page.into_iter().map(|e| e.event).collect();
        let batches: Vec<&[RiskEvent]> = events.chunks(eventbridge::MAX_BATCH).collect();
        let outcomes: Vec<_> = stream::iter(batches)
            .map(|b| bus.put(b, deadline))
            .buffer_unordered(4)
            .collect()
            .await;
        let mut delivered = Vec::new();
        let mut failed: Vec<(String, String)> = Vec::new();
        for (outcome, calls) in outcomes {
            report.requests += calls;
            for (id, result) in outcome {
                match result {
                    Ok(()) => delivered.push(id),
                    Err(e) => failed.push((id, e)),
                }
            }
        }
        let at = crate::timestamp::now();
        settle(
            outbox,
            &mut report,
            kind,
            &delivered,
            Settled::Delivered(at),
        )
        .await;
        let gave_up = !failed.is_empty();
        for (id, e) in failed {
            report.error(format!("{id}: {e}"));
            settle(outbox, &mut report, kind, &[id], Settled::Failed(e)).await;
        }
        if gave_up {
            break;
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_compact_to_16_bytes_and_back() {
        let id = "evt_00ff10a0b1c2d3e4f5061728394a5b6c";
        assert_eq!(expand(&compact(id).unwrap()), id);
        assert_eq!(compact("evt_00"), None);
        assert_eq!(compact("dlv_00ff10a0b1c2d3e4f5061728394a5b6c"), None);
        assert_eq!(compact("evt_zzff10a0b1c2d3e4f5061728394a5b6c"), None);
    }
}

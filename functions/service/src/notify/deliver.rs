//! Draining the outbox: every configured destination gets what is pending
//! for it, concurrently, until the deadline.
//!
//! - Slack: one digest of everything pending (built in one pass, sent once,
//!   then the events it covered are marked delivered in a second pass);
//! - webhook: batches of 100, oldest first; a batch that fails after its
//!   retries stops the webhook for this round (the receiver is down: the
//!   rest stays pending rather than being tried batch after batch);
//! - EventBridge: batches of 10, four in flight.
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
    /// Events still pending there afterwards.
    pub pending: usize,
    /// Requests (or PutEvents calls) made, retries included.
    pub requests: u32,
    /// What went wrong (at most 10, newest last).
    pub errors: Vec<String>,
}

impl DestinationReport {
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

    /// Deliveries still pending, all destinations together.
    pub fn pending(&self) -> usize {
        self.destinations.iter().map(|d| d.pending).sum()
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
            match count_pending(outbox, kind).await {
                Ok(n) => d.pending = n,
                Err(e) => d.error(format!(
                    "counting what is pending: {}",
                    crate::error::report(&e)
                )),
            }
        }
    }
    DeliveryReport { destinations }
}

/// Events still pending at `destination`, counted page by page.
pub async fn count_pending(outbox: &dyn Outbox, destination: Destination) -> crate::Result<usize> {
    let mut after: Option<String> = None;
    let mut n = 0;
    loop {
        let page = outbox
            .pending(destination, after.as_deref(), super::outbox::MAX_EVENT_PAGE)
            .await?;
        n += page.len();
        match page.last() {
            Some(last) if page.len() == super::outbox::MAX_EVENT_PAGE => {
                after = Some(last.sort_key())
            }
            _ => return Ok(n),
        }
    }
}

fn ids(events: &[StoredEvent]) -> Vec<String> {
    events.iter().map(|e| e.event.id.clone()).collect()
}

/// Records `outcome` for `events`, noting a storage failure in the report.
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
    if let Err(e) = outbox.settle(kind, ids, &outcome).await {
        report.error(format!(
            "recording the delivery: {}",
            crate::error::report(&e)
        ));
    } else if matches!(outcome, Settled::Delivered(_)) {
        report.delivered += ids.len();
    }
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
    let mut report = DestinationReport {
        destination: Some(kind),
        ..Default::default()
    };
    // Pass 1: the digest of everything pending now.
    let mut digest = slack::Digest::default();
    let mut after: Option<String> = None;
    loop {
        let page = match outbox.pending(kind, after.as_deref(), PAGE).await {
            Ok(p) => p,
            Err(e) => {
                report.error(crate::error::report(&e));
                return report;
            }
        };
        for e in &page {
            digest.add(&e.event);
        }
        match page.last() {
            Some(last) => after = Some(last.sort_key()),
            None => break,
        }
    }
    let Some(through) = after else {
        return report;
    };
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
    // Pass 2: settle what the digest covered (up to its last event).
    let mut after: Option<String> = None;
    loop {
        let page = match outbox.pending(kind, after.as_deref(), PAGE).await {
            Ok(p) => p,
            Err(e) => {
                report.error(crate::error::report(&e));
                return report;
            }
        };
        let covered: Vec<StoredEvent> = page
            .into_iter()
            .filter(|e| e.sort_key() <= through)
            .collect();
        let Some(last) = covered.last().map(StoredEvent::sort_key) else {
            return report;
        };
        settle(outbox, &mut report, kind, &ids(&covered), outcome.clone()).await;
        after = Some(last);
    }
}

async fn to_webhook(
    outbox: &dyn Outbox,
    http: &HttpClient,
    hook: &super::settings::Webhook,
    deadline: Instant,
) -> DestinationReport {
    let kind = Destination::Webhook;
    let mut report = DestinationReport {
        destination: Some(kind),
        ..Default::default()
    };
    let mut after: Option<String> = None;
    while Instant::now() < deadline {
        let page = match outbox
            .pending(kind, after.as_deref(), webhook::MAX_BATCH)
            .await
        {
            Ok(p) if p.is_empty() => break,
            Ok(p) => p,
            Err(e) => {
                report.error(crate::error::report(&e));
                break;
            }
        };
        let events: Vec<RiskEvent> = page.iter().map(|e| e.event.clone()).collect();
        let body = webhook::body(&events);
        let headers = webhook::headers(&hook.secret, &body, &events);
        let headers: Vec<(&str, String)> = headers.into_iter().collect();
        let sent = http.post(&hook.url, &headers, body, deadline).await;
        report.requests += sent.attempts;
        after = page.last().map(StoredEvent::sort_key);
        match sent.result {
            Ok(()) => {
                settle(
                    outbox,
                    &mut report,
                    kind,
                    &ids(&page),
                    Settled::Delivered(crate::timestamp::now()),
                )
                .await;
            }
            Err(e) => {
                report.error(e.clone());
                settle(outbox, &mut report, kind, &ids(&page), Settled::Failed(e)).await;
                break;
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
    let mut report = DestinationReport {
        destination: Some(kind),
        ..Default::default()
    };
    let mut after: Option<String> = None;
    while Instant::now() < deadline {
        let page = match outbox.pending(kind, after.as_deref(), 100).await {
            Ok(p) if p.is_empty() => break,
            Ok(p) => p,
            Err(e) => {
                report.error(crate::error::report(&e));
                break;
            }
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
        settle(
            outbox,
            &mut report,
            kind,
            &delivered,
            Settled::Delivered(crate::timestamp::now()),
        )
        .await;
        for (id, e) in failed {
            report.error(format!("{id}: {e}"));
            settle(outbox, &mut report, kind, &[id], Settled::Failed(e)).await;
        }
    }
    report
}

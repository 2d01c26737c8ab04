//! `churn notify`: deliver the risk-change events still pending (cron-
//! friendly: exit 0 when nothing is left pending, 1 otherwise), and the
//! destination options `churn rescore` shares.

use clap::Args;

use churn_service::notify::{settings as vars, DeliveryReport};

use super::{context, FlagsStoreArg};
use crate::exit::user;
use crate::output::{self, Format, Table};
use crate::progress::Progress;

/// Where events go: each option falls back to its variable, and the
/// values are validated by the service's one check (a webhook URL needs its
/// secret, URLs must be https:// except to this machine).
#[derive(Debug, Clone, Default, Args)]
pub struct NotifyArgs {
    /// Slack incoming webhook URL.
    #[arg(long, env = vars::SLACK_URL, hide_env_values = true, value_name = "URL")]
    pub slack_url: Option<String>,
    /// Webhook URL receiving signed JSON batches (CRM sync); needs --webhook-secret.
    #[arg(long, env = vars::WEBHOOK_URL, hide_env_values = true, value_name = "URL")]
    pub webhook_url: Option<String>,
    /// The key of the webhook's X-Churn-Signature (HMAC-SHA256).
    #[arg(long, env = vars::WEBHOOK_SECRET, hide_env_values = true, value_name = "SECRET")]
    pub webhook_secret: Option<String>,
    /// Amazon EventBridge bus (name or ARN) for PutEvents.
    #[arg(long, env = vars::EVENT_BUS, value_name = "BUS")]
    pub event_bus: Option<String>,
    /// Seconds delivery retries before leaving events pending (default 30).
    #[arg(long, env = vars::DEADLINE_SECS, value_name = "SECONDS")]
    pub notify_deadline: Option<String>,
    /// Base URL of the CS page, for links in the Slack digest.
    #[arg(long, env = vars::PUBLIC_URL, value_name = "URL")]
    pub public_url: Option<String>,
}

impl NotifyArgs {
    /// The options as the variables they replace (read once, by clap).
    pub fn overrides(&self) -> Vec<(&'static str, Option<String>)> {
        vec![
            (vars::SLACK_URL, self.slack_url.clone()),
            (vars::WEBHOOK_URL, self.webhook_url.clone()),
            (vars::WEBHOOK_SECRET, self.webhook_secret.clone()),
            (vars::EVENT_BUS, self.event_bus.clone()),
            (vars::DEADLINE_SECS, self.notify_deadline.clone()),
            (vars::PUBLIC_URL, self.public_url.clone()),
        ]
    }
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  churn notify --webhook-url https://crm.example.com/churn --webhook-secret \"$SECRET\"\n  CHURN_NOTIFY_SLACK_URL=https://hooks.slack.com/services/... churn notify\n\n\
Delivers every event still pending at the configured destinations (one Slack\n\
digest, webhook batches of 100, EventBridge batches of 10). Exit 0 when nothing\n\
is left pending, 1 when something is (the error says where and why)."
)]
pub struct NotifyCommandArgs {
    #[command(flatten)]
    pub flags: FlagsStoreArg,
    #[command(flatten)]
    pub notify: NotifyArgs,
    /// Output format of the report.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

pub async fn run(args: NotifyCommandArgs, progress: Progress) -> anyhow::Result<()> {
    let config =
        context::config_overriding(None, Some(&args.flags.flags), &args.notify.overrides())?;
    let services = context::services(&config, false).await?;
    // After the services: a Secrets Manager secret may be what configures them.
    if services.notifier.due().is_empty() {
        return Err(user(format!(
            "no destination is configured: set {}, {} (with {}), {} or {} (or the matching options)",
            vars::SLACK_URL,
            vars::WEBHOOK_URL,
            vars::WEBHOOK_SECRET,
            vars::EVENT_BUS,
            vars::SECRET_ARN
        )));
    }
    let step = progress.step("delivering pending events");
    let report = churn_service::handlers::notify::deliver_now(&services, None).await;
    step.done(format!("delivered {} events", report.delivered()));
    match args.format {
        Format::Json => output::print_json(&report)?,
        Format::Csv => report_table(&report).write_csv(std::io::stdout().lock())?,
        Format::Table => output::print(&report_table(&report).render())?,
    }
    still_pending(&report)
}

/// The report per destination.
pub fn report_table(report: &DeliveryReport) -> Table {
    let mut t = Table::new([
        "destination",
        "delivered",
        "pending",
        "requests",
        "last error",
    ])
    .right(&[1, 2, 3]);
    for d in &report.destinations {
        t.row([
            d.destination.map_or("?", |k| k.as_str()).to_string(),
            d.delivered.to_string(),
            d.pending.map_or("?".to_string(), |n| n.to_string()),
            d.requests.to_string(),
            d.errors.last().cloned().unwrap_or_default(),
        ]);
    }
    t
}

/// Exit 1 (naming where and why) when deliveries are left pending, or
/// could not be counted.
pub fn still_pending(report: &DeliveryReport) -> anyhow::Result<()> {
    if report.all_delivered() {
        return Ok(());
    }
    let parts: Vec<String> = report
        .destinations
        .iter()
        .filter(|d| d.pending != Some(0))
        .map(|d| {
            let why = d
                .errors
                .last()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default();
            let n = d.pending.map_or("some".to_string(), |n| n.to_string());
            format!("{n} at {}{why}", d.destination.map_or("?", |k| k.as_str()))
        })
        .collect();
    Err(user(format!(
        "events still pending: {}; `churn notify` delivers them later",
        parts.join("; ")
    )))
}

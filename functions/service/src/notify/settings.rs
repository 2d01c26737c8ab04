//! Where risk-change events go: destinations and the delivery deadline,
//! validated once from the environment (or the CLI's flags, which fall back
//! to the same variables).
//!
//! A URL that does not parse, a webhook URL without its secret, a deadline
//! that is not a number: the process refuses to start, naming the variable.
//! Values are never echoed in errors or `Debug`: a Slack webhook URL is a
//! credential.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Slack incoming webhook URL.
pub const SLACK_URL: &str = "CHURN_NOTIFY_SLACK_URL";
/// Generic webhook URL (signed JSON).
pub const WEBHOOK_URL: &str = "CHURN_NOTIFY_WEBHOOK_URL";
/// The webhook's HMAC key, required with [`WEBHOOK_URL`].
pub const WEBHOOK_SECRET: &str = "CHURN_NOTIFY_WEBHOOK_SECRET";
/// EventBridge bus name or ARN.
pub const EVENT_BUS: &str = "CHURN_NOTIFY_EVENT_BUS";
/// Seconds delivery retries before leaving events pending (default 30).
pub const DEADLINE_SECS: &str = "CHURN_NOTIFY_DEADLINE_SECS";
/// Base URL of the CS page, for links in the Slack digest.
pub const PUBLIC_URL: &str = "CHURN_PUBLIC_URL";
/// A Secrets Manager secret (JSON: `slack_url`, `webhook_url`,
/// `webhook_secret`) read at start; the deployed functions' way.
pub const SECRET_ARN: &str = "CHURN_NOTIFY_SECRET_ARN";

/// Every variable of this module.
pub const VARIABLES: [&str; 7] = [
    SLACK_URL,
    WEBHOOK_URL,
    WEBHOOK_SECRET,
    EVENT_BUS,
    DEADLINE_SECS,
    PUBLIC_URL,
    SECRET_ARN,
];

/// Default of [`DEADLINE_SECS`].
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(30);
/// Longest deadline accepted (a Lambda invocation lasts at most 15 minutes).
pub const MAX_DEADLINE: Duration = Duration::from_secs(600);

/// A kind of destination; deliveries are tracked per kind, and the URL of
/// a kind is whatever the configuration says when it is delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Destination {
    Slack,
    Webhook,
    #[serde(rename = "eventbridge")]
    EventBridge,
}

impl Destination {
    /// Every kind.
    pub const ALL: [Destination; 3] = [
        Destination::Slack,
        Destination::Webhook,
        Destination::EventBridge,
    ];

    /// The kind's name as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Destination::Slack => "slack",
            Destination::Webhook => "webhook",
            Destination::EventBridge => "eventbridge",
        }
    }
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Destination {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Destination::ALL
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| format!("{s:?} is not a destination (slack, webhook, eventbridge)"))
    }
}

/// An `http(s)://host/...` URL, checked.
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint(http::Uri);

impl Endpoint {
    /// Parses `value`, the value of `variable`.
    ///
    /// # Errors
    /// [`Error::Config`] naming `variable` (the value is not shown: it may hold a token).
    pub fn parse(variable: &'static str, value: &str) -> Result<Endpoint> {
        let bad = |m: &str| Error::Config {
            variable,
            value: "<not shown>".into(),
            message: m.to_string(),
        };
        let uri: http::Uri = value.trim().parse().map_err(|_| bad("not a URL"))?;
        let host = uri.host().unwrap_or_default();
        if host.is_empty() {
            return Err(bad("the URL has no host"));
        }
        match uri.scheme_str() {
            Some("https") => {}
            // Plain HTTP would carry the token in the URL and the signed
            // events in clear; only a receiver on this machine may use it.
            Some("http") if is_loopback(host) => {}
            Some("http") => {
                return Err(bad(
                    "expected an https:// URL (http:// only for a loopback host)",
                ))
            }
            _ => return Err(bad("expected an https:// URL")),
        }
        Ok(Endpoint(uri))
    }

    /// The URL.
    pub fn uri(&self) -> &http::Uri {
        &self.0
    }

    /// Scheme, host and port only: what logs and errors may show.
    pub fn origin(&self) -> String {
        let scheme = self.0.scheme_str().unwrap_or("https");
        match (self.0.host(), self.0.port_u16()) {
            (Some(h), Some(p)) => format!("{scheme}://{h}:{p}"),
            (Some(h), None) => format!("{scheme}://{h}"),
            _ => scheme.to_string(),
        }
    }
}

/// `localhost`, `127.x.x.x` or `[::1]`.
fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Endpoint({}/…)", self.origin())
    }
}

/// The signed webhook: its URL and HMAC key.
#[derive(Clone, PartialEq, Eq)]
pub struct Webhook {
    pub url: Endpoint,
    pub secret: String,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("url", &self.url)
            .field("secret", &"<not shown>")
            .finish()
    }
}

/// Validated notification settings; none configured is valid (events are
/// still recorded, `churn events` lists them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifySettings {
    pub slack: Option<Endpoint>,
    pub webhook: Option<Webhook>,
    pub event_bus: Option<String>,
    /// How long delivery retries before leaving what is left pending.
    pub deadline: Duration,
    /// Base URL of the CS page (links in the Slack digest).
    pub public_url: Option<String>,
    /// The secret to complete these from at start (AWS).
    pub secret_arn: Option<String>,
}

impl Default for NotifySettings {
    /// No destination, the default deadline.
    fn default() -> Self {
        NotifySettings {
            slack: None,
            webhook: None,
            event_bus: None,
            deadline: DEFAULT_DEADLINE,
            public_url: None,
            secret_arn: None,
        }
    }
}

/// The raw values, before validation: from variables, flags or a secret
/// (`Debug` shows which are set, never their values).
#[derive(Clone, Default)]
pub struct NotifyValues {
    pub slack_url: Option<String>,
    pub webhook_url: Option<String>,
    pub webhook_secret: Option<String>,
    pub event_bus: Option<String>,
    pub deadline_secs: Option<String>,
    pub public_url: Option<String>,
    pub secret_arn: Option<String>,
}

impl std::fmt::Debug for NotifyValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |v: &Option<String>| if v.is_some() { "<set>" } else { "<unset>" };
        f.debug_struct("NotifyValues")
            .field("slack_url", &set(&self.slack_url))
            .field("webhook_url", &set(&self.webhook_url))
            .field("webhook_secret", &set(&self.webhook_secret))
            .field("event_bus", &self.event_bus)
            .field("deadline_secs", &self.deadline_secs)
            .field("public_url", &self.public_url)
            .field("secret_arn", &self.secret_arn)
            .finish()
    }
}

impl NotifyValues {
    /// The values of the variables through `get` (empty counts as unset).
    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> NotifyValues {
        let get = |n: &str| get(n).filter(|v| !v.trim().is_empty());
        NotifyValues {
            slack_url: get(SLACK_URL),
            webhook_url: get(WEBHOOK_URL),
            webhook_secret: get(WEBHOOK_SECRET),
            event_bus: get(EVENT_BUS),
            deadline_secs: get(DEADLINE_SECS),
            public_url: get(PUBLIC_URL),
            secret_arn: get(SECRET_ARN),
        }
    }

    /// The values validated settings came from (to complete them again).
    pub fn from_settings(s: &NotifySettings) -> NotifyValues {
        NotifyValues {
            slack_url: s.slack.as_ref().map(|e| e.uri().to_string()),
            webhook_url: s.webhook.as_ref().map(|w| w.url.uri().to_string()),
            webhook_secret: s.webhook.as_ref().map(|w| w.secret.clone()),
            event_bus: s.event_bus.clone(),
            deadline_secs: Some(s.deadline.as_secs_f64().to_string()),
            public_url: s.public_url.clone(),
            secret_arn: s.secret_arn.clone(),
        }
    }

    /// Fills what is unset from a secret's JSON (`slack_url`, `webhook_url`,
    /// `webhook_secret`); a value set directly wins.
    ///
    /// # Errors
    /// [`Error::Config`] naming [`SECRET_ARN`] when the secret is not such a JSON object.
    pub fn complete_from_secret(mut self, secret_json: &str) -> Result<NotifyValues> {
        // Other keys are allowed: a secret may be shared with other tools.
        #[derive(Deserialize)]
        struct Secret {
            slack_url: Option<String>,
            webhook_url: Option<String>,
            webhook_secret: Option<String>,
        }
        let s: Secret = serde_json::from_str(secret_json).map_err(|e| Error::Config {
            variable: SECRET_ARN,
            value: self.secret_arn.clone().unwrap_or_default(),
            message: format!(
                "the secret is not a JSON object with slack_url, webhook_url, webhook_secret: {}",
                // serde's message may quote a value; keep only its position.
                e.to_string().split(" at ").last().unwrap_or_default()
            ),
        })?;
        self.slack_url = self.slack_url.or(s.slack_url);
        self.webhook_url = self.webhook_url.or(s.webhook_url);
        self.webhook_secret = self.webhook_secret.or(s.webhook_secret);
        Ok(self)
    }

    /// The one validation of notification settings.
    ///
    /// # Errors
    /// [`Error::Config`] naming the variable: a malformed URL (or plain
    /// http:// to a host that is not this machine), a webhook URL without a
    /// secret (or a secret without a URL), a deadline that is not a number
    /// of seconds in (0, 600], a bus name EventBridge would refuse.
    pub fn validate(self) -> Result<NotifySettings> {
        let config = |variable, value: &str, message: &str| Error::Config {
            variable,
            value: value.to_string(),
            message: message.to_string(),
        };
        let slack = self
            .slack_url
            .as_deref()
            .map(|v| Endpoint::parse(SLACK_URL, v))
            .transpose()?;
        let webhook = match (self.webhook_url.as_deref(), self.webhook_secret) {
            (Some(url), Some(secret)) => Some(Webhook {
                url: Endpoint::parse(WEBHOOK_URL, url)?,
                secret,
            }),
            (Some(_), None) => return Err(config(
                WEBHOOK_SECRET,
                "",
                "required with CHURN_NOTIFY_WEBHOOK_URL: receivers verify the signature with it",
            )),
            (None, Some(_)) => {
                return Err(config(
                    WEBHOOK_URL,
                    "",
                    "required with CHURN_NOTIFY_WEBHOOK_SECRET",
                ))
            }
            (None, None) => None,
        };
        let event_bus = match self.event_bus {
            Some(bus) => {
                let bus = bus.trim().to_string();
                let ok = bus.len() <= 1600
                    && bus
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "._-/:".contains(c));
                if !ok {
                    return Err(config(EVENT_BUS, &bus, "expected an event bus name or ARN"));
                }
                Some(bus)
            }
            None => None,
        };
        let deadline = match self.deadline_secs {
            Some(v) => {
                let secs: f64 = v
                    .trim()
                    .parse()
                    .map_err(|_| config(DEADLINE_SECS, &v, "expected a number of seconds"))?;
                if !(secs.is_finite() && secs > 0.0 && secs <= MAX_DEADLINE.as_secs_f64()) {
                    return Err(config(DEADLINE_SECS, &v, "expected seconds in (0, 600]"));
                }
                Duration::from_secs_f64(secs)
            }
            None => DEFAULT_DEADLINE,
        };
        let public_url = match self.public_url {
            Some(v) => Some(
                Endpoint::parse(PUBLIC_URL, &v)
                    .map(|_| v.trim().trim_end_matches('/').to_string())?,
            ),
            None => None,
        };
        Ok(NotifySettings {
            slack,
            webhook,
            event_bus,
            deadline,
            public_url,
            secret_arn: self.secret_arn,
        })
    }
}

impl NotifySettings {
    /// The settings of the variables, read through `get`, without the secret
    /// (see [`NotifyValues::complete_from_secret`]).
    ///
    /// # Errors
    /// As [`NotifyValues::validate`].
    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> Result<NotifySettings> {
        NotifyValues::from_lookup(get).validate()
    }

    /// The configured destination kinds: the ones a new event is due at.
    pub fn destinations(&self) -> Vec<Destination> {
        let mut out = Vec::new();
        if self.slack.is_some() {
            out.push(Destination::Slack);
        }
        if self.webhook.is_some() {
            out.push(Destination::Webhook);
        }
        if self.event_bus.is_some() {
            out.push(Destination::EventBridge);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(pairs: &[(&str, &str)]) -> Result<NotifySettings> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        NotifySettings::from_lookup(&|k| map.get(k).cloned())
    }

    fn variable_of(r: Result<NotifySettings>) -> &'static str {
        match r {
            Err(Error::Config { variable, .. }) => variable,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn nothing_configured_is_valid_and_has_no_destination() {
        let s = settings(&[]).unwrap();
        assert!(s.destinations().is_empty());
        assert_eq!(s.deadline, DEFAULT_DEADLINE);
    }

    #[test]
    fn every_bad_value_names_its_variable_and_hides_urls() {
        assert_eq!(
            variable_of(settings(&[(SLACK_URL, "hooks.slack.com/x")])),
            SLACK_URL
        );
        assert_eq!(
            variable_of(settings(&[(SLACK_URL, "ftp://x/y")])),
            SLACK_URL
        );
        assert_eq!(
            variable_of(settings(&[(WEBHOOK_URL, "http://crm.local/h")])),
            WEBHOOK_SECRET
        );
        assert_eq!(variable_of(settings(&[(WEBHOOK_SECRET, "s")])), WEBHOOK_URL);
        assert_eq!(
            variable_of(settings(&[(DEADLINE_SECS, "soon")])),
            DEADLINE_SECS
        );
        assert_eq!(
            variable_of(settings(&[(DEADLINE_SECS, "0")])),
            DEADLINE_SECS
        );
        assert_eq!(variable_of(settings(&[(EVENT_BUS, "a bus")])), EVENT_BUS);
        assert_eq!(variable_of(settings(&[(PUBLIC_URL, "nope")])), PUBLIC_URL);
        assert_eq!(
            variable_of(settings(&[(SLACK_URL, "http://hooks.slack.com/x")])),
            SLACK_URL
        );
        for local in [
            "http://localhost:8080/h",
            "http://127.0.0.1/h",
            "http://[::1]:9/h",
        ] {
            assert!(settings(&[(SLACK_URL, local)]).is_ok(), "{local}");
        }
        let err =
            settings(&[(SLACK_URL, "hooks.slack.com/services/T0/B0/secret-token")]).unwrap_err();
        assert!(!err.to_string().contains("secret-token"), "{err}");
    }

    #[test]
    fn all_three_destinations_and_a_secret_completing_them() {
        let s = settings(&[
            (SLACK_URL, "https://hooks.slack.com/services/T/B/x"),
            (WEBHOOK_URL, "http://127.0.0.1:9/h"),
            (WEBHOOK_SECRET, "k"),
            (EVENT_BUS, "churn-risk-events"),
            (DEADLINE_SECS, "2.5"),
            (PUBLIC_URL, "https://churn.example.com/"),
        ])
        .unwrap();
        assert_eq!(s.destinations(), Destination::ALL.to_vec());
        assert_eq!(s.deadline, Duration::from_millis(2500));
        assert_eq!(s.public_url.as_deref(), Some("https://churn.example.com"));
        assert!(!format!("{s:?}").contains("/services/"));

        let values = NotifyValues {
            webhook_url: Some("http://127.0.0.1:9/env".into()),
            ..NotifyValues::default()
        };
        let done = values
            .complete_from_secret(r#"{"webhook_url": "http://x/secret", "webhook_secret": "k", "slack_url": "https://h/s"}"#)
            .unwrap()
            .validate()
            .unwrap();
        assert_eq!(done.webhook.unwrap().url.uri().path(), "/env");
        assert!(done.slack.is_some());
        let bad = NotifyValues::default().complete_from_secret(r#"["slack"]"#);
        assert!(matches!(
            bad,
            Err(Error::Config {
                variable: SECRET_ARN,
                ..
            })
        ));
    }
}

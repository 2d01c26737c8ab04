//! Service configuration read from the environment (names in docs/CONTRACTS.md).
//!
//! The same variables configure the Lambda functions and the CLI, so parsing
//! lives here once. Every error names the variable and the offending value.

use crate::error::{Error, Result};
use crate::flag_store::dynamo::WriteStrategy;
use crate::flag_store::HistoryWindow;
use crate::notify::NotifySettings;
use churn_model::check::CheckThresholds;
use churn_model::{BandPolicy, BandPolicyError};
use std::path::PathBuf;
use std::time::Duration;

/// Where models are stored: `CHURN_MODELS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelsLocation {
    /// A local directory (`<dir>/<model_id>/model.json`, `<dir>/current.json`).
    Dir(PathBuf),
    /// `s3://bucket/prefix`; `prefix` has no leading or trailing `/` and may be empty.
    S3 { bucket: String, prefix: String },
}

/// Where flags are stored: `CHURN_FLAGS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlagsLocation {
    /// `sqlite://path` (relative or absolute; `sqlite:///abs/path` also accepted).
    Sqlite(PathBuf),
    /// `dynamodb://table`.
    DynamoDb { table: String },
}

/// Everything the handlers and adapters need from the environment.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceConfig {
    /// `CHURN_MODELS` (default `./churn-data/models`).
    pub models: ModelsLocation,
    /// `CHURN_FLAGS` (default `sqlite://./churn-data/flags.db`).
    pub flags: FlagsLocation,
    /// `CHURN_SNAPSHOT`, unparsed: the feature readers own its URI syntax.
    pub snapshot: Option<String>,
    /// `CHURN_MODEL_REFRESH_SECS` (default 60 s).
    pub model_refresh: Duration,
    /// `CHURN_SCORE_EPSILON` (default 0.01), in `[0, 1]`.
    pub score_epsilon: f64,
    /// `CHURN_GATE_MIN_AUC` (default 0.60), in `[0, 1]`.
    pub gate_min_auc: f64,
    /// `CHURN_GATE_MAX_AUC_DROP` (default 0.01), in `[0, 1]`.
    pub gate_max_auc_drop: f64,
    /// `CHURN_RISK_LIST_SHARDS` (default 8), 1..=256.
    pub risk_list_shards: u32,
    /// `CHURN_WRITE_DEADLINE_SECS` (default 60 s).
    pub write_deadline: Duration,
    /// Risk-band policy for training: `CHURN_BAND_HIGH_SHARE` /
    /// `CHURN_BAND_MEDIUM_SHARE` (shares of holdout scores, default 0.10 /
    /// 0.20) or `CHURN_BAND_HIGH_CUTOFF` / `CHURN_BAND_MEDIUM_CUTOFF` (fixed
    /// probabilities, set together); the two forms are exclusive.
    pub bands: BandPolicy,
    /// `CHURN_FLAG_WRITES` (`conditional`, the default, or `batch`): how a
    /// DynamoDB flag store writes changed rows (see [`WriteStrategy`]).
    pub flag_writes: WriteStrategy,
    /// `CHURN_THREADS`: threads of the one pool every parallel step runs on
    /// (parsing, training, scoring), 1..=256; unset = the cores available.
    pub threads: Option<usize>,
    /// `CHURN_TRAIN_MAX_ROWS`: training's row cap (a larger table is trained
    /// on a stratified sample of this many rows), at least
    /// [`churn_model::MIN_MAX_ROWS`]; unset = the model crate's default
    /// (2,000,000). A train request's `options.max_rows` overrides it.
    pub train_max_rows: Option<usize>,
    /// `CHURN_HISTORY_DAYS` (default 180), 1..=3650: how far back a
    /// customer's score history reaches behind its newest point.
    pub history: HistoryWindow,
    /// The snapshot check's limits: `CHURN_CHECK_PSI_WARN` (0.1),
    /// `CHURN_CHECK_PSI_ALERT` (0.25), `CHURN_CHECK_PSI_REFUSE` (1.0),
    /// `CHURN_CHECK_MAX_MISSING_RISE` (0.5), `CHURN_CHECK_MAX_OUT_OF_RANGE`
    /// (0.5), `CHURN_CHECK_MAX_INVALID_SHARE` (0.05), `CHURN_CHECK_MIN_ROWS`
    /// (100); see [`CheckThresholds`].
    pub check: CheckThresholds,
    /// Where risk-change events are delivered: `CHURN_NOTIFY_SLACK_URL`,
    /// `CHURN_NOTIFY_WEBHOOK_URL` + `CHURN_NOTIFY_WEBHOOK_SECRET`,
    /// `CHURN_NOTIFY_EVENT_BUS`, `CHURN_NOTIFY_DEADLINE_SECS` (30),
    /// `CHURN_PUBLIC_URL`, `CHURN_NOTIFY_SECRET_ARN` (read by
    /// [`Services::from_config`](crate::services::Services::from_config));
    /// see [`NotifySettings`].
    pub notify: NotifySettings,
}

/// The snapshot check's variables (see [`ServiceConfig::check`]).
pub const CHECK_VARIABLES: [&str; 7] = [
    "CHURN_CHECK_PSI_WARN",
    "CHURN_CHECK_PSI_ALERT",
    "CHURN_CHECK_PSI_REFUSE",
    "CHURN_CHECK_MAX_MISSING_RISE",
    "CHURN_CHECK_MAX_OUT_OF_RANGE",
    "CHURN_CHECK_MAX_INVALID_SHARE",
    "CHURN_CHECK_MIN_ROWS",
];

/// The history window variable.
pub const HISTORY_DAYS: &str = "CHURN_HISTORY_DAYS";

/// Share of holdout scores in the high band (default 0.10).
pub const BAND_HIGH_SHARE: &str = "CHURN_BAND_HIGH_SHARE";
/// Share of holdout scores in the medium band, below the high ones (default 0.20).
pub const BAND_MEDIUM_SHARE: &str = "CHURN_BAND_MEDIUM_SHARE";
/// Fixed probability from which a customer is high risk (with [`BAND_MEDIUM_CUTOFF`]).
pub const BAND_HIGH_CUTOFF: &str = "CHURN_BAND_HIGH_CUTOFF";
/// Fixed probability from which a customer is medium risk (with [`BAND_HIGH_CUTOFF`]).
pub const BAND_MEDIUM_CUTOFF: &str = "CHURN_BAND_MEDIUM_CUTOFF";

/// Default of `CHURN_MODELS`.
pub const DEFAULT_MODELS: &str = "./churn-data/models";
/// Default of `CHURN_FLAGS`.
pub const DEFAULT_FLAGS: &str = "sqlite://./churn-data/flags.db";
/// The thread-pool size variable (the CLI's `--threads` falls back to it).
pub const THREADS: &str = "CHURN_THREADS";
/// Training's row cap variable (the CLI's `--max-rows` overrides it).
pub const TRAIN_MAX_ROWS: &str = "CHURN_TRAIN_MAX_ROWS";
/// Most threads accepted for the pool.
pub const MAX_THREADS: usize = 256;
/// Most risk-list shards accepted: every page queries each shard.
pub const MAX_RISK_LIST_SHARDS: u32 = 256;

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            models: ModelsLocation::Dir(PathBuf::from(DEFAULT_MODELS)),
            flags: FlagsLocation::Sqlite(PathBuf::from(
                DEFAULT_FLAGS.trim_start_matches("sqlite://"),
            )),
            snapshot: None,
            model_refresh: Duration::from_secs(60),
            score_epsilon: 0.01,
            gate_min_auc: 0.60,
            gate_max_auc_drop: 0.01,
            risk_list_shards: 8,
            write_deadline: Duration::from_secs(60),
            bands: BandPolicy::default(),
            flag_writes: WriteStrategy::default(),
            threads: None,
            train_max_rows: None,
            history: HistoryWindow::default(),
            check: CheckThresholds::default(),
            notify: NotifySettings::default(),
        }
    }
}

impl ServiceConfig {
    /// Reads the configuration from the process environment.
    ///
    /// # Errors
    /// [`Error::Config`] naming the first variable that is set but invalid.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup` (tests pass a map instead of
    /// mutating the process environment, which is shared between test threads).
    /// Empty values count as unset.
    ///
    /// # Errors
    /// [`Error::Config`] naming the first variable that is set but invalid.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let d = ServiceConfig::default();
        Ok(ServiceConfig {
            models: match get("CHURN_MODELS") {
                Some(v) => parse_models_location(&v)?,
                None => d.models,
            },
            flags: match get("CHURN_FLAGS") {
                Some(v) => parse_flags_location(&v)?,
                None => d.flags,
            },
            snapshot: get("CHURN_SNAPSHOT"),
            model_refresh: match get("CHURN_MODEL_REFRESH_SECS") {
                Some(v) => seconds("CHURN_MODEL_REFRESH_SECS", &v)?,
                None => d.model_refresh,
            },
            score_epsilon: match get("CHURN_SCORE_EPSILON") {
                Some(v) => unit_interval("CHURN_SCORE_EPSILON", &v)?,
                None => d.score_epsilon,
            },
            gate_min_auc: match get("CHURN_GATE_MIN_AUC") {
                Some(v) => unit_interval("CHURN_GATE_MIN_AUC", &v)?,
                None => d.gate_min_auc,
            },
            gate_max_auc_drop: match get("CHURN_GATE_MAX_AUC_DROP") {
                Some(v) => unit_interval("CHURN_GATE_MAX_AUC_DROP", &v)?,
                None => d.gate_max_auc_drop,
            },
            risk_list_shards: match get("CHURN_RISK_LIST_SHARDS") {
                Some(v) => shards("CHURN_RISK_LIST_SHARDS", &v)?,
                None => d.risk_list_shards,
            },
            write_deadline: match get("CHURN_WRITE_DEADLINE_SECS") {
                Some(v) => seconds("CHURN_WRITE_DEADLINE_SECS", &v)?,
                None => d.write_deadline,
            },
            bands: band_policy(&get)?,
            flag_writes: match get("CHURN_FLAG_WRITES") {
                Some(v) => flag_writes("CHURN_FLAG_WRITES", &v)?,
                None => d.flag_writes,
            },
            threads: get(THREADS)
                .map(|v| thread_count(&v).map_err(|m| config_error(THREADS, &v, m)))
                .transpose()?,
            train_max_rows: get(TRAIN_MAX_ROWS)
                .map(|v| row_cap(&v).map_err(|m| config_error(TRAIN_MAX_ROWS, &v, m)))
                .transpose()?,
            history: match get(HISTORY_DAYS) {
                Some(v) => history_days(&v)?,
                None => d.history,
            },
            check: check_thresholds(&get)?,
            notify: NotifySettings::from_lookup(&get)?,
        })
    }
}

/// One band setting, by the name to blame in errors (a variable such as
/// `CHURN_BAND_HIGH_SHARE` or a flag such as `--high-share`), and its value
/// when given.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BandSetting {
    pub name: &'static str,
    pub value: Option<f64>,
}

/// The band policy from its four settings, whoever gives them (environment,
/// CLI flags): shares or fixed cutoffs, never both; cutoffs in pairs; the
/// values checked by [`BandPolicy`]'s own rules (the model crate owns them).
/// No value at all is [`BandPolicy::default`].
///
/// # Errors
/// [`Error::Config`] naming the setting at fault.
pub fn band_policy_from(
    high_share: BandSetting,
    medium_share: BandSetting,
    high_cutoff: BandSetting,
    medium_cutoff: BandSetting,
) -> Result<BandPolicy> {
    let given = |s: BandSetting| s.value.map(|v| (s.name, v));
    let blame = |(name, value): (&'static str, f64), message: String| {
        config_error(name, &value.to_string(), message)
    };
    let share = given(high_share).or(given(medium_share));
    if let (Some((share_name, _)), Some(cutoff)) =
        (share, given(high_cutoff).or(given(medium_cutoff)))
    {
        return Err(blame(
            cutoff,
            format!(
                "{share_name} is also set: configure bands either by shares ({}/{}) or by \
                 fixed cutoffs ({}/{}), not both",
                high_share.name, medium_share.name, high_cutoff.name, medium_cutoff.name
            ),
        ));
    }
    match (given(high_cutoff), given(medium_cutoff)) {
        (Some(high), Some(medium)) => {
            return BandPolicy::fixed(high.1, medium.1).map_err(|e| match e {
                BandPolicyError::HighCutoff(_) => blame(high, e.to_string()),
                BandPolicyError::CutoffOrder { .. } => blame(
                    medium,
                    format!("must be below {} ({})", high_cutoff.name, high.1),
                ),
                _ => blame(medium, e.to_string()),
            })
        }
        (Some(high), None) => {
            return Err(blame(
                high,
                format!(
                    "{} must be set too (fixed cutoffs come in pairs)",
                    medium_cutoff.name
                ),
            ))
        }
        (None, Some(medium)) => {
            return Err(blame(
                medium,
                format!(
                    "{} must be set too (fixed cutoffs come in pairs)",
                    high_cutoff.name
                ),
            ))
        }
        (None, None) => {}
    }
    let high = high_share.value.unwrap_or(BandPolicy::DEFAULT_HIGH_SHARE);
    let medium = medium_share
        .value
        .unwrap_or(BandPolicy::DEFAULT_MEDIUM_SHARE);
    BandPolicy::quantile(high, medium).map_err(|e| {
        let at_fault = match e {
            BandPolicyError::HighShare(_) => given(high_share),
            BandPolicyError::MediumShare(_) => given(medium_share),
            // The medium share when it was given, else the high one.
            _ => given(medium_share).or(given(high_share)),
        };
        match at_fault {
            Some(s) => blame(s, e.to_string()),
            // Unreachable with valid defaults; still named, not a panic.
            None => config_error(high_share.name, "", e.to_string()),
        }
    })
}

/// The band policy from the four `CHURN_BAND_*` variables (see
/// [`ServiceConfig::bands`]). `get` returns `None` for unset (or empty) ones.
///
/// # Errors
/// [`Error::Config`] naming the variable: a value that is not a number, or
/// a policy [`band_policy_from`] refuses.
pub fn band_policy(get: &impl Fn(&str) -> Option<String>) -> Result<BandPolicy> {
    let setting = |name: &'static str| -> Result<BandSetting> {
        let value = get(name).map(|text| number(name, &text)).transpose()?;
        Ok(BandSetting { name, value })
    };
    band_policy_from(
        setting(BAND_HIGH_SHARE)?,
        setting(BAND_MEDIUM_SHARE)?,
        setting(BAND_HIGH_CUTOFF)?,
        setting(BAND_MEDIUM_CUTOFF)?,
    )
}

fn config_error(variable: &'static str, value: &str, message: impl Into<String>) -> Error {
    Error::Config {
        variable,
        value: value.to_string(),
        message: message.into(),
    }
}

/// Parses a `CHURN_MODELS` value: `s3://bucket[/prefix]` or a directory path.
///
/// # Errors
/// [`Error::Config`] for an `s3://` URI without a bucket or with an invalid bucket name.
pub fn parse_models_location(value: &str) -> Result<ModelsLocation> {
    let v = value.trim();
    if let Some(rest) = v.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(config_error(
                "CHURN_MODELS",
                value,
                "s3:// URI has no bucket",
            ));
        }
        let valid_bucket = bucket
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
        if !valid_bucket || bucket.len() < 3 || bucket.len() > 63 {
            return Err(config_error(
                "CHURN_MODELS",
                value,
                "bucket names are 3-63 characters of a-z, 0-9, '-' and '.'",
            ));
        }
        Ok(ModelsLocation::S3 {
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
        })
    } else if v.contains("://") {
        Err(config_error(
            "CHURN_MODELS",
            value,
            "expected a directory path or s3://bucket/prefix",
        ))
    } else {
        Ok(ModelsLocation::Dir(PathBuf::from(v)))
    }
}

/// Parses a `CHURN_FLAGS` value: `sqlite://path` or `dynamodb://table`.
///
/// # Errors
/// [`Error::Config`] for another scheme, an empty path, or an invalid table name.
pub fn parse_flags_location(value: &str) -> Result<FlagsLocation> {
    let v = value.trim();
    if let Some(path) = v.strip_prefix("sqlite://") {
        if path.is_empty() {
            return Err(config_error(
                "CHURN_FLAGS",
                value,
                "sqlite:// URI has no path",
            ));
        }
        Ok(FlagsLocation::Sqlite(PathBuf::from(path)))
    } else if let Some(table) = v.strip_prefix("dynamodb://") {
        let table = table.trim_end_matches('/');
        let valid = (3..=255).contains(&table.len())
            && table
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !valid {
            return Err(config_error(
                "CHURN_FLAGS",
                value,
                "DynamoDB table names are 3-255 characters of A-Z, a-z, 0-9, '_', '-' and '.'",
            ));
        }
        Ok(FlagsLocation::DynamoDb {
            table: table.to_string(),
        })
    } else {
        Err(config_error(
            "CHURN_FLAGS",
            value,
            "expected sqlite://path or dynamodb://table",
        ))
    }
}

fn seconds(variable: &'static str, value: &str) -> Result<Duration> {
    let secs: f64 = value
        .trim()
        .parse()
        .map_err(|_| config_error(variable, value, "expected a number of seconds"))?;
    if !secs.is_finite() || !(0.0..=86_400.0 * 365.0).contains(&secs) {
        return Err(config_error(
            variable,
            value,
            "expected seconds between 0 and one year",
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn unit_interval(variable: &'static str, value: &str) -> Result<f64> {
    let x: f64 = value
        .trim()
        .parse()
        .map_err(|_| config_error(variable, value, "expected a number"))?;
    if !(0.0..=1.0).contains(&x) {
        return Err(config_error(
            variable,
            value,
            "expected a number between 0 and 1",
        ));
    }
    Ok(x)
}

fn number(variable: &'static str, value: &str) -> Result<f64> {
    value
        .trim()
        .parse()
        .map_err(|_| config_error(variable, value, "expected a number"))
}

fn flag_writes(variable: &'static str, value: &str) -> Result<WriteStrategy> {
    match value.trim() {
        "conditional" => Ok(WriteStrategy::Conditional),
        "batch" => Ok(WriteStrategy::Batch),
        _ => Err(config_error(
            variable,
            value,
            "expected conditional (safe with concurrent writers) or batch (one writer at a time)",
        )),
    }
}

/// Parses a thread count (`CHURN_THREADS`, `--threads`): 1..=[`MAX_THREADS`].
///
/// # Errors
/// What is wrong with `value`, for the caller to attach to its name.
pub fn thread_count(value: &str) -> std::result::Result<usize, String> {
    match value.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_THREADS).contains(&n) => Ok(n),
        _ => Err(format!(
            "expected a whole number of threads from 1 to {MAX_THREADS}"
        )),
    }
}

/// Sizes the one thread pool (rayon's global pool) every parallel step of
/// this process runs on: `None` = one thread per available core. Binaries
/// call it once, first thing; the libraries never pick a thread count.
///
/// # Errors
/// When the pool was already built (a second call) or no thread starts.
pub fn init_thread_pool(
    threads: Option<usize>,
) -> std::result::Result<(), rayon::ThreadPoolBuildError> {
    let mut builder = rayon::ThreadPoolBuilder::new().thread_name(|i| format!("churn-worker-{i}"));
    if let Some(n) = threads {
        builder = builder.num_threads(n);
    }
    builder.build_global()
}

/// A training row cap: a whole number the model crate accepts as
/// `max_rows` (its rule, checked by its builder; at least
/// [`churn_model::MIN_MAX_ROWS`]).
///
/// # Errors
/// The reason, for the caller to name its setting.
pub fn row_cap(value: &str) -> std::result::Result<usize, String> {
    let n: usize = value
        .trim()
        .parse()
        .map_err(|_| "expected a whole number of rows".to_string())?;
    churn_model::TrainConfig::builder()
        .max_rows(n)
        .build()
        .map(|c| c.max_rows)
        .map_err(|e| e.to_string())
}

/// The snapshot check's limits from [`CHECK_VARIABLES`]; an invalid
/// combination is blamed on the first variable set.
fn check_thresholds(get: &dyn Fn(&str) -> Option<String>) -> Result<CheckThresholds> {
    let mut b = CheckThresholds::builder();
    let mut first_set: Option<(&'static str, String)> = None;
    for name in CHECK_VARIABLES {
        let Some(v) = get(name) else { continue };
        first_set.get_or_insert((name, v.clone()));
        b = if name == "CHURN_CHECK_MIN_ROWS" {
            let n: u64 = v
                .trim()
                .parse()
                .map_err(|_| config_error(name, &v, "expected a whole number of rows"))?;
            b.min_rows(n)
        } else {
            let x: f64 = v
                .trim()
                .parse()
                .ok()
                .filter(|x: &f64| x.is_finite() && *x >= 0.0)
                .filter(|x| !name.contains("_MAX_") || *x <= 1.0)
                .ok_or_else(|| match name.contains("_MAX_") {
                    true => config_error(name, &v, "expected a share between 0 and 1"),
                    false => config_error(name, &v, "expected a non-negative number"),
                })?;
            match name {
                "CHURN_CHECK_PSI_WARN" => b.psi_warn(x),
                "CHURN_CHECK_PSI_ALERT" => b.psi_alert(x),
                "CHURN_CHECK_PSI_REFUSE" => b.psi_refuse(x),
                "CHURN_CHECK_MAX_MISSING_RISE" => b.max_missing_rise(x),
                "CHURN_CHECK_MAX_OUT_OF_RANGE" => b.max_out_of_range(x),
                _ => b.max_invalid_share(x),
            }
        };
    }
    b.build().map_err(|e| match first_set {
        Some((name, v)) => config_error(name, &v, e.to_string()),
        None => config_error(CHECK_VARIABLES[0], "", e.to_string()),
    })
}

fn history_days(value: &str) -> Result<HistoryWindow> {
    match value.trim().parse::<u32>() {
        Ok(n) if (1..=3650).contains(&n) => Ok(HistoryWindow::days(n)),
        _ => Err(config_error(
            HISTORY_DAYS,
            value,
            "expected a whole number of days from 1 to 3650",
        )),
    }
}

fn shards(variable: &'static str, value: &str) -> Result<u32> {
    let n: u32 = value
        .trim()
        .parse()
        .map_err(|_| config_error(variable, value, "expected a whole number"))?;
    if n == 0 || n > MAX_RISK_LIST_SHARDS {
        return Err(config_error(
            variable,
            value,
            format!("expected 1 to {MAX_RISK_LIST_SHARDS} shards"),
        ));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(pairs: &[(&str, &str)]) -> Result<ServiceConfig> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ServiceConfig::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_match_the_contract() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c, ServiceConfig::default());
        assert_eq!(
            c.models,
            ModelsLocation::Dir(PathBuf::from("./churn-data/models"))
        );
        assert_eq!(
            c.flags,
            FlagsLocation::Sqlite(PathBuf::from("./churn-data/flags.db"))
        );
        assert_eq!(c.model_refresh, Duration::from_secs(60));
        assert_eq!(c.risk_list_shards, 8);
        assert_eq!(
            c.bands,
            BandPolicy::Quantile {
                high_share: 0.10,
                medium_share: 0.20
            }
        );
    }

    #[test]
    fn band_shares_default_one_at_a_time() {
        assert_eq!(
            cfg(&[("CHURN_BAND_HIGH_SHARE", "0.3")]).unwrap().bands,
            BandPolicy::Quantile {
                high_share: 0.3,
                medium_share: 0.2
            }
        );
        assert_eq!(
            cfg(&[("CHURN_BAND_MEDIUM_SHARE", "0")]).unwrap().bands,
            BandPolicy::Quantile {
                high_share: 0.1,
                medium_share: 0.0
            }
        );
        // Empty values count as unset (a CloudFormation parameter left blank).
        assert_eq!(
            cfg(&[
                ("CHURN_BAND_HIGH_CUTOFF", ""),
                ("CHURN_BAND_MEDIUM_CUTOFF", " "),
                ("CHURN_BAND_HIGH_SHARE", "0.2")
            ])
            .unwrap()
            .bands,
            BandPolicy::Quantile {
                high_share: 0.2,
                medium_share: 0.2
            }
        );
    }

    #[test]
    fn band_cutoffs_come_in_pairs() {
        assert_eq!(
            cfg(&[
                ("CHURN_BAND_HIGH_CUTOFF", "0.5"),
                ("CHURN_BAND_MEDIUM_CUTOFF", "0.2")
            ])
            .unwrap()
            .bands,
            BandPolicy::Fixed {
                high: 0.5,
                medium: 0.2
            }
        );
    }

    /// A band error case: variables set, the variable and value the error
    /// names, and text the message must contain.
    type BandCase<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str, &'a str);

    #[test]
    fn flag_writes_are_conditional_unless_batch_is_asked_for() {
        assert_eq!(cfg(&[]).unwrap().flag_writes, WriteStrategy::Conditional);
        assert_eq!(
            cfg(&[("CHURN_FLAG_WRITES", "batch")]).unwrap().flag_writes,
            WriteStrategy::Batch
        );
        let err = cfg(&[("CHURN_FLAG_WRITES", "fast")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("CHURN_FLAG_WRITES") && err.contains("batch"),
            "{err}"
        );
    }

    #[test]
    fn train_max_rows_is_a_whole_number_the_model_accepts() {
        assert_eq!(
            cfg(&[("CHURN_TRAIN_MAX_ROWS", "5000")])
                .unwrap()
                .train_max_rows,
            Some(5000)
        );
        assert_eq!(cfg(&[]).unwrap().train_max_rows, None);
        for bad in ["10", "-1", "lots", "1e6"] {
            let e = cfg(&[("CHURN_TRAIN_MAX_ROWS", bad)])
                .unwrap_err()
                .to_string();
            assert!(e.contains("CHURN_TRAIN_MAX_ROWS"), "{bad}: {e}");
        }
    }

    #[test]
    fn thread_count_is_one_to_the_maximum() {
        assert_eq!(cfg(&[("CHURN_THREADS", " 3 ")]).unwrap().threads, Some(3));
        assert_eq!(cfg(&[]).unwrap().threads, None);
        for bad in ["0", "-1", "two", "257"] {
            let err = cfg(&[("CHURN_THREADS", bad)]).unwrap_err().to_string();
            assert!(
                err.contains("CHURN_THREADS") && err.contains("1 to 256"),
                "{err}"
            );
        }
    }

    #[test]
    fn band_errors_name_the_variable() {
        let cases: &[BandCase] = &[
            (
                &[("CHURN_BAND_HIGH_SHARE", "lots")],
                "CHURN_BAND_HIGH_SHARE",
                "lots",
                "number",
            ),
            (
                &[("CHURN_BAND_HIGH_SHARE", "0")],
                "CHURN_BAND_HIGH_SHARE",
                "0",
                "share",
            ),
            (
                &[("CHURN_BAND_HIGH_SHARE", "1.5")],
                "CHURN_BAND_HIGH_SHARE",
                "1.5",
                "share",
            ),
            (
                &[("CHURN_BAND_HIGH_SHARE", "NaN")],
                "CHURN_BAND_HIGH_SHARE",
                "NaN",
                "share",
            ),
            (
                &[("CHURN_BAND_MEDIUM_SHARE", "-0.1")],
                "CHURN_BAND_MEDIUM_SHARE",
                "-0.1",
                "share",
            ),
            (
                &[("CHURN_BAND_MEDIUM_SHARE", "1")],
                "CHURN_BAND_MEDIUM_SHARE",
                "1",
                "share",
            ),
            (
                &[("CHURN_BAND_MEDIUM_SHARE", "x")],
                "CHURN_BAND_MEDIUM_SHARE",
                "x",
                "number",
            ),
            (
                &[
                    ("CHURN_BAND_HIGH_SHARE", "0.6"),
                    ("CHURN_BAND_MEDIUM_SHARE", "0.5"),
                ],
                "CHURN_BAND_MEDIUM_SHARE",
                "0.5",
                "exceeds 1",
            ),
            (
                &[("CHURN_BAND_HIGH_SHARE", "0.9")],
                "CHURN_BAND_HIGH_SHARE",
                "0.9",
                "exceeds 1",
            ),
            (
                &[("CHURN_BAND_HIGH_CUTOFF", "0.5")],
                "CHURN_BAND_HIGH_CUTOFF",
                "0.5",
                "CHURN_BAND_MEDIUM_CUTOFF",
            ),
            (
                &[("CHURN_BAND_MEDIUM_CUTOFF", "0.2")],
                "CHURN_BAND_MEDIUM_CUTOFF",
                "0.2",
                "CHURN_BAND_HIGH_CUTOFF",
            ),
            (
                &[
                    ("CHURN_BAND_HIGH_CUTOFF", "high"),
                    ("CHURN_BAND_MEDIUM_CUTOFF", "0.2"),
                ],
                "CHURN_BAND_HIGH_CUTOFF",
                "high",
                "number",
            ),
            (
                &[
                    ("CHURN_BAND_HIGH_CUTOFF", "1"),
                    ("CHURN_BAND_MEDIUM_CUTOFF", "0.2"),
                ],
                "CHURN_BAND_HIGH_CUTOFF",
                "1",
                "between 0 and 1",
            ),
            (
                &[
                    ("CHURN_BAND_HIGH_CUTOFF", "0.5"),
                    ("CHURN_BAND_MEDIUM_CUTOFF", "0"),
                ],
                "CHURN_BAND_MEDIUM_CUTOFF",
                "0",
                "between 0 and 1",
            ),
            (
                &[
                    ("CHURN_BAND_HIGH_CUTOFF", "0.5"),
                    ("CHURN_BAND_MEDIUM_CUTOFF", "inf"),
                ],
                "CHURN_BAND_MEDIUM_CUTOFF",
                "inf",
                "between 0 and 1",
            ),
            (
                &[
                    ("CHURN_BAND_HIGH_CUTOFF", "0.3"),
                    ("CHURN_BAND_MEDIUM_CUTOFF", "0.3"),
                ],
                "CHURN_BAND_MEDIUM_CUTOFF",
                "0.3",
                "below CHURN_BAND_HIGH_CUTOFF",
            ),
            (
                &[
                    ("CHURN_BAND_HIGH_CUTOFF", "0.2"),
                    ("CHURN_BAND_MEDIUM_CUTOFF", "0.5"),
                ],
                "CHURN_BAND_MEDIUM_CUTOFF",
                "0.5",
                "below CHURN_BAND_HIGH_CUTOFF",
            ),
            (
                &[
                    ("CHURN_BAND_HIGH_SHARE", "0.1"),
                    ("CHURN_BAND_HIGH_CUTOFF", "0.5"),
                    ("CHURN_BAND_MEDIUM_CUTOFF", "0.2"),
                ],
                "CHURN_BAND_HIGH_CUTOFF",
                "0.5",
                "CHURN_BAND_HIGH_SHARE is also set",
            ),
            (
                &[
                    ("CHURN_BAND_MEDIUM_SHARE", "0.1"),
                    ("CHURN_BAND_MEDIUM_CUTOFF", "0.2"),
                ],
                "CHURN_BAND_MEDIUM_CUTOFF",
                "0.2",
                "CHURN_BAND_MEDIUM_SHARE is also set",
            ),
            (
                &[("CHURN_CHECK_MAX_INVALID_SHARE", "1.5")],
                "CHURN_CHECK_MAX_INVALID_SHARE",
                "1.5",
                "share between 0 and 1",
            ),
            (
                &[("CHURN_CHECK_PSI_ALERT", "-1")],
                "CHURN_CHECK_PSI_ALERT",
                "-1",
                "non-negative",
            ),
            (
                &[("CHURN_CHECK_PSI_WARN", "0.5")],
                "CHURN_CHECK_PSI_WARN",
                "0.5",
                "psi_warn <= psi_alert",
            ),
            (
                &[("CHURN_CHECK_MIN_ROWS", "ten")],
                "CHURN_CHECK_MIN_ROWS",
                "ten",
                "whole number",
            ),
        ];
        for (pairs, var, val, needle) in cases {
            match cfg(pairs) {
                Err(e @ Error::Config { .. }) => {
                    let text = e.to_string();
                    let Error::Config {
                        variable, value, ..
                    } = e
                    else {
                        unreachable!()
                    };
                    assert_eq!(variable, *var, "{pairs:?}: {text}");
                    assert_eq!(value, *val, "{pairs:?}: {text}");
                    assert!(text.contains(needle), "{pairs:?}: {text} lacks {needle:?}");
                }
                other => panic!("{pairs:?}: expected a config error, got {other:?}"),
            }
        }
    }

    #[test]
    fn parses_every_variable() {
        let c = cfg(&[
            ("CHURN_MODELS", "s3://my-bucket/models/"),
            ("CHURN_FLAGS", "dynamodb://churn-flags"),
            ("CHURN_SNAPSHOT", "s3://b/snap/"),
            ("CHURN_MODEL_REFRESH_SECS", "0.5"),
            ("CHURN_SCORE_EPSILON", "0.02"),
            ("CHURN_HISTORY_DAYS", "30"),
            ("CHURN_GATE_MIN_AUC", "0.7"),
            ("CHURN_GATE_MAX_AUC_DROP", "0"),
            ("CHURN_RISK_LIST_SHARDS", "4"),
            ("CHURN_WRITE_DEADLINE_SECS", "5"),
            ("CHURN_BAND_HIGH_SHARE", "0.05"),
            ("CHURN_BAND_MEDIUM_SHARE", "0.15"),
            ("CHURN_CHECK_PSI_WARN", "0.05"),
            ("CHURN_CHECK_PSI_ALERT", "0.2"),
            ("CHURN_CHECK_PSI_REFUSE", "2"),
            ("CHURN_CHECK_MAX_MISSING_RISE", "0.3"),
            ("CHURN_CHECK_MAX_OUT_OF_RANGE", "0.4"),
            ("CHURN_CHECK_MAX_INVALID_SHARE", "0.01"),
            ("CHURN_CHECK_MIN_ROWS", "1000"),
        ])
        .unwrap();
        assert_eq!(
            c.check,
            CheckThresholds::builder()
                .psi_warn(0.05)
                .psi_alert(0.2)
                .psi_refuse(2.0)
                .max_missing_rise(0.3)
                .max_out_of_range(0.4)
                .max_invalid_share(0.01)
                .min_rows(1000)
                .build()
                .unwrap()
        );
        assert_eq!(
            c.bands,
            BandPolicy::Quantile {
                high_share: 0.05,
                medium_share: 0.15
            }
        );
        assert_eq!(
            c.models,
            ModelsLocation::S3 {
                bucket: "my-bucket".into(),
                prefix: "models".into()
            }
        );
        assert_eq!(
            c.flags,
            FlagsLocation::DynamoDb {
                table: "churn-flags".into()
            }
        );
        assert_eq!(c.snapshot.as_deref(), Some("s3://b/snap/"));
        assert_eq!(c.model_refresh, Duration::from_millis(500));
        assert_eq!(c.score_epsilon, 0.02);
        assert_eq!(c.history.in_days(), 30);
        assert_eq!(c.risk_list_shards, 4);
        assert_eq!(c.write_deadline, Duration::from_secs(5));
    }

    #[test]
    fn bucket_without_prefix_and_plain_dirs() {
        assert_eq!(
            parse_models_location("s3://bucket").unwrap(),
            ModelsLocation::S3 {
                bucket: "bucket".into(),
                prefix: String::new()
            }
        );
        assert_eq!(
            parse_models_location("/var/models").unwrap(),
            ModelsLocation::Dir(PathBuf::from("/var/models"))
        );
        assert_eq!(
            parse_flags_location("sqlite:///tmp/f.db").unwrap(),
            FlagsLocation::Sqlite(PathBuf::from("/tmp/f.db"))
        );
    }

    #[test]
    fn errors_name_the_variable() {
        let bad = [
            ("CHURN_MODELS", "s3://"),
            ("CHURN_MODELS", "s3://Bad_Bucket/x"),
            ("CHURN_MODELS", "gs://bucket/x"),
            ("CHURN_FLAGS", "postgres://x"),
            ("CHURN_FLAGS", "dynamodb://a"),
            ("CHURN_FLAGS", "sqlite://"),
            ("CHURN_MODEL_REFRESH_SECS", "soon"),
            ("CHURN_MODEL_REFRESH_SECS", "-1"),
            ("CHURN_SCORE_EPSILON", "1.5"),
            ("CHURN_HISTORY_DAYS", "0"),
            ("CHURN_GATE_MIN_AUC", "NaN"),
            ("CHURN_RISK_LIST_SHARDS", "0"),
            ("CHURN_RISK_LIST_SHARDS", "1000"),
            ("CHURN_WRITE_DEADLINE_SECS", "inf"),
        ];
        for (var, val) in bad {
            match cfg(&[(var, val)]) {
                Err(Error::Config {
                    variable, value, ..
                }) => {
                    assert_eq!(variable, var);
                    assert_eq!(value, val);
                }
                other => panic!("{var}={val}: expected a config error, got {other:?}"),
            }
        }
    }
}

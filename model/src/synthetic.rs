//! Seeded synthetic SaaS engagement data for demos and tests.
//!
//! Each customer has a latent engagement level `e ~ N(0, 1)` that drives
//! the usage columns; churn is then drawn from a known logistic model:
//!
//! ```text
//! logit = -2.35
//!       - 0.60 (ln(1 + logins_30d) - 2.5)     - 1.00 (seat_utilization - 0.6)
//!       + 0.04 (days_since_last_login - 5)     + 0.25 (support_tickets_90d - 1)
//!       + 0.60 billing_failures_90d            - 0.02 (tenure_months - 24)
//!       - 0.10 (nps - 7)                       - 0.08 (features_used - 5)
//!       + 0.30 [plan = basic] - 0.50 [plan = enterprise]
//!       + N(0, 0.5) noise
//! ```
//!
//! giving a churn rate near 15 %. The true values drive churn; missing
//! values are masked afterwards (nps ~40 % missing, as most customers skip
//! surveys; avg_session_minutes 3 %, seat_utilization 2 %, region 1 %), so
//! missingness carries no signal of its own except through the masked value.
//!
//! Each customer also gets account attributes ([`ATTRIBUTE_COLUMNS`], no
//! features: see [`crate::attributes`]): a name, an owner (one of six CSMs),
//! a segment that follows the plan (enterprise plans are mostly enterprise
//! accounts), `arr` = 12 x `mrr` and a renewal date within the year after
//! [`RENEWAL_BASE_DATE`]. They are drawn from a generator of their own
//! (seeded from the seed), so the features and labels of a seed are the
//! same with or without them.

use crate::attributes::date_from_epoch_days;
use crate::table::{Column, Table};
use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp, LogNormal, Normal, Poisson};

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyntheticConfig {
    /// Rows. Default 5,000.
    pub customers: usize,
    /// Same seed -> same table. Default 42.
    pub seed: u64,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        SyntheticConfig {
            customers: 5_000,
            seed: 42,
        }
    }
}

/// The numeric feature columns, in table order.
pub const NUMERIC_FEATURES: [&str; 12] = [
    "logins_30d",
    "active_days_30d",
    "sessions_30d",
    "avg_session_minutes",
    "features_used",
    "seat_utilization",
    "days_since_last_login",
    "support_tickets_90d",
    "nps",
    "tenure_months",
    "billing_failures_90d",
    "mrr",
];

/// The categorical feature columns.
pub const CATEGORICAL_FEATURES: [&str; 2] = ["plan", "region"];

/// The account attribute columns, in table order (between the numeric and
/// the categorical features, where no test's column positions move);
/// their names are the roles' default columns.
pub const ATTRIBUTE_COLUMNS: [&str; 5] =
    ["account_name", "owner", "segment", "arr", "renewal_date"];

/// Renewal dates fall within 365 days from this day.
pub const RENEWAL_BASE_DATE: &str = "2026-01-01";

/// [`RENEWAL_BASE_DATE`] in days since 1970-01-01.
const RENEWAL_BASE_DAYS: i64 = 20_454;

/// Mixed into the seed of the attributes' generator.
const ATTRIBUTE_SEED: u64 = 0x6174_7472_6962_7574;

/// The customer-success managers who own the accounts.
const OWNERS: [&str; 6] = [
    "ana.silva@example.com",
    "ben.okafor@example.com",
    "chloe.martin@example.com",
    "dev.patel@example.com",
    "emma.berg@example.com",
    "farid.haddad@example.com",
];

const NAME_FIRST: [&str; 12] = [
    "Acme", "Blue", "Cedar", "Delta", "Ember", "Fjord", "Granite", "Harbor", "Iris", "Juniper",
    "Kestrel", "Lumen",
];
const NAME_SECOND: [&str; 8] = [
    "Analytics",
    "Logistics",
    "Health",
    "Foods",
    "Software",
    "Retail",
    "Energy",
    "Media",
];

/// One customer's attributes, drawn from `rng` given its plan and `mrr`.
struct AccountDraw {
    name: String,
    owner: &'static str,
    segment: &'static str,
    arr: f64,
    renewal_date: String,
}

impl AccountDraw {
    fn draw(rng: &mut ChaCha8Rng, i: usize, plan: &str, mrr: f64) -> AccountDraw {
        let name = format!(
            "{} {} {i}",
            NAME_FIRST[rng.gen_range(0..NAME_FIRST.len())],
            NAME_SECOND[rng.gen_range(0..NAME_SECOND.len())]
        );
        let owner = OWNERS[rng.gen_range(0..OWNERS.len())];
        let u: f64 = rng.gen();
        // (smb, mid-market) shares by plan; the rest is enterprise.
        let (smb, mid) = match plan {
            "basic" => (0.85, 0.15),
            "pro" => (0.25, 0.65),
            _ => (0.0, 0.2),
        };
        let segment = if u < smb {
            "smb"
        } else if u < smb + mid {
            "mid-market"
        } else {
            "enterprise"
        };
        let days = rng.gen_range(0..365);
        AccountDraw {
            name,
            owner,
            segment,
            arr: (12.0 * mrr * 100.0).round() / 100.0,
            renewal_date: date_from_epoch_days(RENEWAL_BASE_DAYS + days),
        }
    }
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// Draws from a Poisson distribution (0 for a non-positive rate).
fn poisson(rng: &mut ChaCha8Rng, rate: f64) -> f64 {
    if rate <= 0.0 {
        return 0.0;
    }
    Poisson::new(rate).map_or(0.0, |d| d.sample(rng))
}

/// A table with `customer_id`, the engagement features, the account
/// attributes ([`ATTRIBUTE_COLUMNS`]) and `churned` (0/1).
pub fn generate(config: &SyntheticConfig) -> Table {
    let n = config.customers;
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut account_rng = ChaCha8Rng::seed_from_u64(config.seed ^ ATTRIBUTE_SEED);
    let mut accounts: Vec<AccountDraw> = Vec::with_capacity(n);
    // Constant, valid parameters: these constructors cannot fail.
    let std_normal = Normal::new(0.0, 1.0).expect("valid normal");
    let tenure_exp = Exp::<f64>::new(1.0 / 24.0).expect("valid exp");
    let minutes = LogNormal::new(15f64.ln(), 0.5).expect("valid lognormal");

    let mut cols: Vec<Vec<f64>> = vec![Vec::with_capacity(n); NUMERIC_FEATURES.len()];
    let mut plan = Vec::with_capacity(n);
    let mut region = Vec::with_capacity(n);
    let mut ids = Vec::with_capacity(n);
    let mut churned = Vec::with_capacity(n);
    for i in 0..n {
        let e: f64 = std_normal.sample(&mut rng);
        let noise = |rng: &mut ChaCha8Rng, s: f64| s * std_normal.sample(rng);

        let u: f64 = rng.gen();
        let (plan_name, plan_effect, seats_mean, price) = if u < 0.5 {
            ("basic", 0.3, 3.0, 30.0)
        } else if u < 0.85 {
            ("pro", 0.0, 10.0, 60.0)
        } else {
            ("enterprise", -0.5, 40.0, 90.0)
        };
        let u: f64 = rng.gen();
        let region_name = if u < 0.40 {
            "na"
        } else if u < 0.75 {
            "emea"
        } else if u < 0.95 {
            "apac"
        } else {
            "latam"
        };

        let logins = ((2.5 + 0.6 * e + noise(&mut rng, 0.4)).exp() - 1.0)
            .round()
            .max(0.0);
        let active_days = (30.0 * sigmoid(1.2 * e + 0.3 + noise(&mut rng, 0.5)))
            .round()
            .clamp(0.0, 30.0);
        let sessions = (logins * rng.gen_range(1.0..2.0)).round();
        let avg_minutes =
            (minutes.sample(&mut rng) * (1.0 + 0.1 * e).max(0.3) * 10.0).round() / 10.0;
        let features_used = (5.0 + 2.0 * e + noise(&mut rng, 1.5))
            .round()
            .clamp(1.0, 20.0);
        let seat_util = (sigmoid(0.4 + 1.0 * e + noise(&mut rng, 0.6)) * 100.0).round() / 100.0;
        let days_since = Exp::new(1.0 / (3.0 * (-0.8 * e).exp()).max(0.2))
            .map_or(0.0, |d| d.sample(&mut rng))
            .round()
            .min(90.0);
        let tickets = poisson(&mut rng, if e < -1.0 { 1.6 } else { 0.9 });
        let nps = (7.0 + 1.5 * e + noise(&mut rng, 2.0))
            .round()
            .clamp(0.0, 10.0);
        let tenure = (1.0_f64 + tenure_exp.sample(&mut rng)).floor().min(120.0);
        let billing = poisson(&mut rng, 0.15);
        let seats = (seats_mean * (0.5 + rng.gen::<f64>())).round().max(1.0);
        let mrr = (seats * price * (0.8 + 0.4 * rng.gen::<f64>()) * 100.0).round() / 100.0;

        let z = -2.35 - 0.60 * (logins.ln_1p() - 2.5) - 1.00 * (seat_util - 0.6)
            + 0.04 * (days_since - 5.0)
            + 0.25 * (tickets - 1.0)
            + 0.60 * billing
            - 0.02 * (tenure - 24.0)
            - 0.10 * (nps - 7.0)
            - 0.08 * (features_used - 5.0)
            + plan_effect
            + noise(&mut rng, 0.5);
        let y = rng.gen::<f64>() < sigmoid(z);

        // Mask after drawing the outcome (see module docs).
        let nps_seen = if rng.gen::<f64>() < 0.4 {
            f64::NAN
        } else {
            nps
        };
        let minutes_seen = if rng.gen::<f64>() < 0.03 {
            f64::NAN
        } else {
            avg_minutes
        };
        let util_seen = if rng.gen::<f64>() < 0.02 {
            f64::NAN
        } else {
            seat_util
        };
        let region_seen = if rng.gen::<f64>() < 0.01 {
            None
        } else {
            Some(region_name.to_string())
        };

        for (c, v) in cols.iter_mut().zip([
            logins,
            active_days,
            sessions,
            minutes_seen,
            features_used,
            util_seen,
            days_since,
            tickets,
            nps_seen,
            tenure,
            billing,
            mrr,
        ]) {
            c.push(v);
        }
        accounts.push(AccountDraw::draw(&mut account_rng, i, plan_name, mrr));
        plan.push(Some(plan_name.to_string()));
        region.push(region_seen);
        ids.push(Some(format!("cust_{i:06}")));
        churned.push(if y { 1.0 } else { 0.0 });
    }
    let mut columns = vec![Column::text("customer_id", ids)];
    for (name, v) in NUMERIC_FEATURES.iter().zip(cols) {
        columns.push(Column::numeric(*name, v));
    }
    let text = |f: fn(&AccountDraw) -> String| accounts.iter().map(|a| Some(f(a))).collect();
    columns.push(Column::text("account_name", text(|a| a.name.clone())));
    columns.push(Column::text("owner", text(|a| a.owner.to_string())));
    columns.push(Column::text("segment", text(|a| a.segment.to_string())));
    columns.push(Column::numeric(
        "arr",
        accounts.iter().map(|a| a.arr).collect(),
    ));
    columns.push(Column::text(
        "renewal_date",
        text(|a| a.renewal_date.clone()),
    ));
    columns.push(Column::text("plan", plan));
    columns.push(Column::text("region", region));
    columns.push(Column::numeric("churned", churned));
    Table::new(columns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attributes::parse_date;
    use crate::table::ColumnValues;

    fn text(table: &Table, name: &str) -> Vec<String> {
        match &table.column(name).unwrap().values {
            ColumnValues::Text(v) => v.iter().map(|s| s.clone().unwrap()).collect(),
            ColumnValues::Numeric(_) => panic!("{name} is numeric"),
        }
    }

    fn numbers(table: &Table, name: &str) -> Vec<f64> {
        match &table.column(name).unwrap().values {
            ColumnValues::Numeric(v) => v.clone(),
            ColumnValues::Text(_) => panic!("{name} is text"),
        }
    }

    #[test]
    fn the_base_date_is_its_epoch_day() {
        assert_eq!(date_from_epoch_days(RENEWAL_BASE_DAYS), RENEWAL_BASE_DATE);
    }

    /// Attributes sit between the features and the label, follow plan and
    /// mrr, and are as deterministic as the rest.
    #[test]
    fn attributes_are_consistent_and_seeded() {
        let config = SyntheticConfig {
            customers: 2_000,
            seed: 5,
        };
        let t = generate(&config);
        let again = generate(&config);
        for name in ATTRIBUTE_COLUMNS {
            assert!(t.column(name) == again.column(name), "{name}");
        }
        let names: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
        let n = names.len();
        let first = 1 + NUMERIC_FEATURES.len();
        assert_eq!(names[first..first + 5], ATTRIBUTE_COLUMNS);
        assert_eq!(names[n - 3..], ["plan", "region", "churned"]);
        let (mrr, arr) = (numbers(&t, "mrr"), numbers(&t, "arr"));
        for (m, a) in mrr.iter().zip(&arr) {
            assert_eq!(*a, (12.0 * m * 100.0).round() / 100.0);
        }
        let owners: std::collections::BTreeSet<String> = text(&t, "owner").into_iter().collect();
        assert_eq!(owners.len(), OWNERS.len());
        let (plan, segment) = (text(&t, "plan"), text(&t, "segment"));
        let enterprise = plan.iter().filter(|p| *p == "enterprise").count();
        let both = plan
            .iter()
            .zip(&segment)
            .filter(|(p, s)| *p == "enterprise" && *s == "enterprise")
            .count();
        assert!(both * 10 > enterprise * 7, "{both} of {enterprise}");
        for d in text(&t, "renewal_date") {
            assert_eq!(parse_date(&d).unwrap(), d);
            assert!(
                (RENEWAL_BASE_DATE.to_string().."2027-01-01".to_string()).contains(&d),
                "{d}"
            );
        }
    }
}

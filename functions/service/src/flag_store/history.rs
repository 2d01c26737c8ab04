//! A customer's score history: one point per flag write (unchanged rescores
//! write nothing, so it is a step function), trimmed to a window, and the
//! trend derived from it. Both adapters call these functions, so a history
//! means the same in SQLite and DynamoDB.

use crate::flag::{HistoryPoint, Trend};
use time::{Duration, OffsetDateTime};

/// Default history window in days (`CHURN_HISTORY_DAYS`).
pub const DEFAULT_HISTORY_DAYS: u32 = 180;

/// Points always kept, however old.
pub const MIN_KEPT_POINTS: usize = 2;

/// Most points kept per customer, whatever the window: bounds the DynamoDB
/// item (about 40 bytes a point) when a customer is written many times a day
/// through the score endpoint. A nightly rescore adds at most one a day.
pub const MAX_HISTORY_POINTS: usize = 400;

/// How much history a store keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryWindow {
    days: u32,
}

impl Default for HistoryWindow {
    fn default() -> Self {
        HistoryWindow {
            days: DEFAULT_HISTORY_DAYS,
        }
    }
}

impl HistoryWindow {
    /// A window of `days` (at least 1).
    pub fn days(days: u32) -> HistoryWindow {
        HistoryWindow { days: days.max(1) }
    }

    /// The window in days.
    pub fn in_days(self) -> u32 {
        self.days
    }

    /// Appends `point` to `history` (oldest first), sets `trend` from the
    /// history with it, then drops the points more than the window older
    /// than the newest one, keeping at least the last [`MIN_KEPT_POINTS`] and
    /// at most [`MAX_HISTORY_POINTS`]. The trend is taken before the trim, so
    /// a score in force for longer than the window still counts as the value
    /// 30 days ago. Returns how many points were dropped from the front.
    pub fn record(
        self,
        history: &mut Vec<HistoryPoint>,
        point: HistoryPoint,
        trend_out: &mut Trend,
    ) -> usize {
        // Writes are never older than the stored score, so this is an
        // append; a point at an existing time replaces it.
        let at = history.partition_point(|p| p.scored_at < point.scored_at);
        if history
            .get(at)
            .is_some_and(|p| p.scored_at == point.scored_at)
        {
            history[at] = point;
        } else {
            history.insert(at, point);
        }
        *trend_out = trend(history);
        let newest = history.last().map(|p| p.scored_at);
        let Some(newest) = newest else { return 0 };
        let cutoff = newest - Duration::days(i64::from(self.days));
        let old = history.partition_point(|p| p.scored_at < cutoff);
        let keep_from = old
            .min(history.len().saturating_sub(MIN_KEPT_POINTS))
            .max(history.len().saturating_sub(MAX_HISTORY_POINTS));
        history.drain(..keep_from);
        keep_from
    }
}

/// The trend of a history (oldest first): the latest probability minus the
/// one in force 7 and 30 days before the latest point.
pub fn trend(history: &[HistoryPoint]) -> Trend {
    let Some(latest) = history.last() else {
        return Trend::default();
    };
    let delta = |days: i64| {
        in_force_at(history, latest.scored_at - Duration::days(days))
            .map(|p| latest.churn_probability - p.churn_probability)
    };
    Trend {
        d7: delta(7),
        d30: delta(30),
    }
}

/// The point in force at `t`: the newest at or before it.
fn in_force_at(history: &[HistoryPoint], t: OffsetDateTime) -> Option<&HistoryPoint> {
    let n = history.partition_point(|p| p.scored_at <= t);
    n.checked_sub(1).map(|i| &history[i])
}

#[cfg(test)]
mod tests {
    use super::*;
    use churn_model::RiskBand;
    use time::macros::datetime;

    fn point(day: i64, p: f64) -> HistoryPoint {
        HistoryPoint {
            scored_at: datetime!(2026-01-01 00:00 UTC) + Duration::days(day),
            churn_probability: p,
            risk_band: RiskBand::Low,
            model_id: "m".into(),
        }
    }

    #[test]
    fn trims_to_the_window_but_keeps_the_last_two() {
        let w = HistoryWindow::days(10);
        let mut h = Vec::new();
        let mut t = Trend::default();
        for (day, p) in [(0, 0.1), (5, 0.2), (9, 0.3)] {
            w.record(&mut h, point(day, p), &mut t);
        }
        assert_eq!(h.len(), 3);
        assert_eq!(
            w.record(&mut h, point(12, 0.4), &mut t),
            1,
            "day 0 is 12 days old"
        );
        assert_eq!(h.first().unwrap().churn_probability, 0.2);
        // A year later: everything else is old, the last two stay; the trend
        // still sees the 0.4 in force 30 days before.
        w.record(&mut h, point(400, 0.5), &mut t);
        assert!((t.d30.unwrap() - 0.1).abs() < 1e-12);
        assert_eq!(
            h.iter().map(|p| p.churn_probability).collect::<Vec<_>>(),
            vec![0.4, 0.5]
        );
    }

    #[test]
    fn the_cap_bounds_a_busy_customer() {
        let w = HistoryWindow::days(1000);
        let mut h = Vec::new();
        let mut t = Trend::default();
        for i in 0..(MAX_HISTORY_POINTS as i64 + 10) {
            w.record(&mut h, point(i, 0.1), &mut t);
        }
        assert_eq!(h.len(), MAX_HISTORY_POINTS);
        assert_eq!(h[0].scored_at, point(10, 0.1).scored_at);
    }

    #[test]
    fn trend_is_the_change_since_the_point_in_force() {
        let mut h = vec![point(0, 0.2)];
        assert_eq!(
            trend(&h),
            Trend {
                d7: None,
                d30: None
            }
        );
        h.push(point(10, 0.5));
        h.push(point(20, 0.7));
        // 7 days before day 20 is day 13: day 10's 0.5 was in force.
        let t = trend(&h);
        assert!((t.d7.unwrap() - 0.2).abs() < 1e-12);
        assert_eq!(t.d30, None, "day -10 is before the history starts");
        h.push(point(30, 0.6));
        let t = trend(&h);
        assert!((t.d30.unwrap() - 0.4).abs() < 1e-12, "day 0 exactly");
        assert!((t.d7.unwrap() - -0.1).abs() < 1e-12);
    }
}

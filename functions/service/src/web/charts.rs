//! Charts as inline SVG, drawn here from stored numbers: no script, no
//! external asset, so they work offline, in the report that travels, and
//! under a CSP without script. Colours come from classes in `style.css`
//! (presentation attributes only: inline `style` is not allowed by the CSP).
//! Every chart has a `role="img"` and a text label for screen readers.
//! SVG elements are always closed (`<line ...></line>`): in HTML, an
//! unclosed `<line>` would swallow its siblings as children.

use crate::flag::HistoryPoint;
use churn_model::{BandCutoffs, Reason};
use maud::{html, Markup};

/// A linear map from data values to pixels.
#[derive(Debug, Clone, Copy)]
struct Scale {
    lo: f64,
    hi: f64,
    px_lo: f64,
    px_hi: f64,
}

impl Scale {
    fn at(&self, v: f64) -> f64 {
        let span = self.hi - self.lo;
        let t = if span > 0.0 {
            (v - self.lo) / span
        } else {
            0.5
        };
        self.px_lo + t.clamp(0.0, 1.0) * (self.px_hi - self.px_lo)
    }
}

/// `x,y x,y ...` with one decimal (enough for pixels, small pages).
fn points(xy: impl Iterator<Item = (f64, f64)>) -> String {
    let mut out = String::new();
    for (x, y) in xy {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&format!("{x:.1},{y:.1}"));
    }
    out
}

fn pct(p: f64) -> String {
    format!("{:.0} %", p * 100.0)
}

/// A tiny line of a customer's probability history (oldest to newest),
/// for a row of the risk list.
pub fn sparkline(probabilities: &[f64]) -> Markup {
    let (w, h) = (96.0, 24.0);
    let label = match (probabilities.first(), probabilities.last()) {
        (Some(a), Some(b)) if probabilities.len() > 1 => format!(
            "probability history, {} scores: {} to {}",
            probabilities.len(),
            pct(*a),
            pct(*b)
        ),
        (Some(a), _) => format!("one score: {}", pct(*a)),
        _ => "no history".to_string(),
    };
    let lo = probabilities.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = probabilities
        .iter()
        .copied()
        .fold(f64::NEG_INFINITY, f64::max);
    // A flat line sits in the middle; a small rise still shows.
    let (lo, hi) = if hi - lo < 0.02 {
        (lo - 0.01, hi + 0.01)
    } else {
        (lo, hi)
    };
    let y = Scale {
        lo,
        hi,
        px_lo: h - 3.0,
        px_hi: 3.0,
    };
    let n = probabilities.len();
    let x = Scale {
        lo: 0.0,
        hi: (n.max(2) - 1) as f64,
        px_lo: 2.0,
        px_hi: w - 4.0,
    };
    let line = points(
        probabilities
            .iter()
            .enumerate()
            .map(|(i, p)| (x.at(i as f64), y.at(*p))),
    );
    html! {
        svg.sparkline width="96" height="24" viewBox="0 0 96 24" role="img" aria-label=(label) {
            title { (label) }
            @if n > 1 {
                polyline.spark-line points=(line) fill="none" {}
            }
            @if let Some(last) = probabilities.last() {
                circle.spark-end cx=(format!("{:.1}", x.at((n - 1) as f64))) cy=(format!("{:.1}", y.at(*last))) r="2.5" {}
            }
        }
    }
}

/// A customer's probability over time, with the band cutoffs and the
/// points where the scoring model changed.
pub fn history_chart(history: &[HistoryPoint], cutoffs: Option<&BandCutoffs>) -> Markup {
    let (w, h, left, right, top, bottom) = (640.0, 260.0, 48.0, 624.0, 16.0, 224.0);
    let max_p = history
        .iter()
        .map(|p| p.churn_probability)
        .chain(cutoffs.map(|c| c.high))
        .fold(0.0_f64, f64::max);
    // Round the top up to a tenth, with room above the highest point.
    let y_hi = ((max_p * 1.15 * 10.0).ceil() / 10.0).clamp(0.1, 1.0);
    let y = Scale {
        lo: 0.0,
        hi: y_hi,
        px_lo: bottom,
        px_hi: top,
    };
    let t = |p: &HistoryPoint| p.scored_at.unix_timestamp() as f64;
    let (t0, t1) = match (history.first(), history.last()) {
        (Some(a), Some(b)) => (t(a), t(b)),
        _ => (0.0, 1.0),
    };
    let x = Scale {
        lo: t0,
        hi: t1,
        px_lo: left + 8.0,
        px_hi: right - 8.0,
    };
    let ticks: Vec<f64> = (0..=4).map(|i| y_hi * f64::from(i) / 4.0).collect();
    let label = match (history.first(), history.last()) {
        (Some(a), Some(b)) => format!(
            "Churn probability over {} scores, from {} on {} to {} on {}",
            history.len(),
            pct(a.churn_probability),
            super::layout::date(a.scored_at),
            pct(b.churn_probability),
            super::layout::date(b.scored_at)
        ),
        _ => "No score history".to_string(),
    };
    let changes: Vec<(f64, &str, &str)> = history
        .windows(2)
        .filter(|w| w[0].model_id != w[1].model_id)
        .map(|w| {
            (
                x.at(t(&w[1])),
                w[0].model_id.as_str(),
                w[1].model_id.as_str(),
            )
        })
        .collect();
    html! {
        svg #history-chart.chart viewBox=(format!("0 0 {w} {h}")) role="img" aria-label=(label) {
            title { (label) }
            @for v in &ticks {
                line.grid x1=(left) x2=(right) y1=(format!("{:.1}", y.at(*v))) y2=(format!("{:.1}", y.at(*v))) {}
                text.tick x=(left - 6.0) y=(format!("{:.1}", y.at(*v) + 4.0)) text-anchor="end" { (pct(*v)) }
            }
            @if let Some(c) = cutoffs {
                @for (class, cut, name) in [("cutoff cutoff-high", c.high, "high"), ("cutoff cutoff-medium", c.medium, "medium")] {
                    line class=(class) x1=(left) x2=(right) y1=(format!("{:.1}", y.at(cut))) y2=(format!("{:.1}", y.at(cut))) {}
                    text.cutoff-label x=(right - 2.0) y=(format!("{:.1}", y.at(cut) - 4.0)) text-anchor="end" {
                        (name) " from " (format!("{:.1} %", cut * 100.0))
                    }
                }
            }
            @for (cx, from, to) in &changes {
                g.model-change {
                    title { "model changed: " (super::layout::short_id(from)) " to " (super::layout::short_id(to)) }
                    line x1=(format!("{cx:.1}")) x2=(format!("{cx:.1}")) y1=(top) y2=(bottom) {}
                    text x=(format!("{:.1}", cx + 3.0)) y=(top + 10.0) { "model" }
                }
            }
            @if history.len() > 1 {
                polyline.history-line fill="none" points=(points(history.iter().map(|p| (x.at(t(p)), y.at(p.churn_probability))))) {}
            }
            @for p in history {
                circle.history-point cx=(format!("{:.1}", x.at(t(p)))) cy=(format!("{:.1}", y.at(p.churn_probability))) r="3" {
                    title { (super::layout::date(p.scored_at)) ": " (format!("{:.1} %", p.churn_probability * 100.0)) ", " (p.risk_band.as_str()) }
                }
            }
            @if let (Some(a), Some(b)) = (history.first(), history.last()) {
                text.tick x=(x.px_lo) y=(bottom + 18.0) text-anchor="start" { (super::layout::date(a.scored_at)) }
                @if history.len() > 1 {
                    text.tick x=(x.px_hi) y=(bottom + 18.0) text-anchor="end" { (super::layout::date(b.scored_at)) }
                }
            }
        }
    }
}

/// The reasons as bars of their contribution to the churn logit (right:
/// raises the risk, left: lowers it), each with the customer's value and
/// the typical one.
pub fn reasons_chart(reasons: &[Reason]) -> Markup {
    let row = 40.0;
    let (w, label_w) = (640.0, 200.0);
    let h = row * reasons.len().max(1) as f64 + 8.0;
    let max = reasons
        .iter()
        .map(|r| r.contribution.abs())
        .fold(0.0_f64, f64::max)
        .max(1e-9);
    let mid = label_w + (w - label_w) / 2.0;
    let half = (w - label_w) / 2.0 - 8.0;
    html! {
        svg #reasons-chart.chart viewBox=(format!("0 0 {w} {h}")) role="img"
            aria-label=(format!("{} reasons, by contribution to the churn risk", reasons.len())) {
            line.axis x1=(mid) x2=(mid) y1="0" y2=(h) {}
            @for (i, r) in reasons.iter().enumerate() {
                @let y0 = row * i as f64 + 4.0;
                @let len = r.contribution.abs() / max * half;
                @let x0 = if r.contribution >= 0.0 { mid } else { mid - len };
                g.reason data-feature=(r.feature) {
                    title { (r.to_string()) ": " (if r.contribution >= 0.0 { "raises" } else { "lowers" }) " the risk (" (format!("{:+.2}", r.contribution)) " to the log-odds)" }
                    text.reason-label x="0" y=(format!("{:.1}", y0 + 14.0)) { (r.feature) }
                    text.reason-detail x="0" y=(format!("{:.1}", y0 + 30.0)) { (r.to_string()) }
                    rect class=(if r.contribution >= 0.0 { "bar raises" } else { "bar lowers" })
                        x=(format!("{x0:.1}")) y=(format!("{:.1}", y0 + 6.0)) width=(format!("{:.1}", len.max(1.0))) height="20" {}
                }
            }
        }
    }
}

/// The dashed reference a curve is read against.
#[derive(Debug, Clone, Copy)]
pub enum Reference {
    /// y = x (ROC: chance; calibration: perfect).
    Diagonal,
    /// y = the value (precision-recall: the base rate; lift: 1).
    Level(f64),
}

/// One model-quality chart.
#[derive(Debug)]
pub struct Curve<'a> {
    pub id: &'a str,
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub points: Vec<(f64, f64)>,
    /// Highest value of each axis (both start at 0).
    pub x_max: f64,
    pub y_max: f64,
    pub reference: Reference,
    /// Dots at the points (calibration bins) instead of only a line.
    pub dots: bool,
}

/// A curve in a square-ish panel with both axes labelled.
pub fn curve_chart(c: &Curve<'_>) -> Markup {
    let (w, h, left, right, top, bottom) = (320.0, 280.0, 44.0, 296.0, 12.0, 232.0);
    let x = Scale {
        lo: 0.0,
        hi: c.x_max,
        px_lo: left,
        px_hi: right,
    };
    let y = Scale {
        lo: 0.0,
        hi: c.y_max,
        px_lo: bottom,
        px_hi: top,
    };
    let fmt = |v: f64, max: f64| {
        if max <= 1.0 {
            pct(v)
        } else {
            format!("{v:.1}")
        }
    };
    let line = points(c.points.iter().map(|(a, b)| (x.at(*a), y.at(*b))));
    let reference = match c.reference {
        Reference::Diagonal => points(
            [(0.0, 0.0), (c.x_max, c.x_max.min(c.y_max))]
                .into_iter()
                .map(|(a, b)| (x.at(a), y.at(b))),
        ),
        Reference::Level(v) => points(
            [(0.0, v), (c.x_max, v)]
                .into_iter()
                .map(|(a, b)| (x.at(a), y.at(b))),
        ),
    };
    html! {
        figure.curve-figure {
            svg id=(c.id) .chart viewBox=(format!("0 0 {w} {h}")) role="img" aria-label=(format!("{}: {} against {}", c.title, c.y_label, c.x_label)) {
                title { (c.title) }
                @for i in 0..=4 {
                    @let fx = c.x_max * f64::from(i) / 4.0;
                    @let fy = c.y_max * f64::from(i) / 4.0;
                    line.grid x1=(left) x2=(right) y1=(format!("{:.1}", y.at(fy))) y2=(format!("{:.1}", y.at(fy))) {}
                    text.tick x=(left - 4.0) y=(format!("{:.1}", y.at(fy) + 4.0)) text-anchor="end" { (fmt(fy, c.y_max)) }
                    text.tick x=(format!("{:.1}", x.at(fx))) y=(bottom + 16.0) text-anchor="middle" { (fmt(fx, c.x_max)) }
                }
                polyline.reference fill="none" points=(reference) {}
                @if c.points.len() > 1 {
                    polyline.curve fill="none" points=(line) {}
                }
                @if c.dots || c.points.len() == 1 {
                    @for (a, b) in &c.points {
                        circle.curve-dot cx=(format!("{:.1}", x.at(*a))) cy=(format!("{:.1}", y.at(*b))) r="3.5" {}
                    }
                }
                text.axis-label x=(format!("{:.1}", (left + right) / 2.0)) y=(h - 8.0) text-anchor="middle" { (c.x_label) }
                text.axis-label x="12" y=(format!("{:.1}", (top + bottom) / 2.0)) text-anchor="middle"
                    transform=(format!("rotate(-90 12 {:.1})", (top + bottom) / 2.0)) { (c.y_label) }
            }
            figcaption { (c.title) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use churn_model::RiskBand;

    fn point(day: i64, p: f64, model: &str) -> HistoryPoint {
        HistoryPoint {
            scored_at: time::macros::datetime!(2026-11-01 04:00 UTC) + time::Duration::days(day),
            churn_probability: p,
            risk_band: RiskBand::Medium,
            model_id: model.to_string(),
        }
    }

    /// Every SVG element is closed, so none swallows its siblings.
    fn assert_closed(svg: &str) {
        for tag in ["line", "polyline", "circle", "rect"] {
            let opened = svg.matches(&format!("<{tag} ")).count();
            assert_eq!(
                opened,
                svg.matches(&format!("</{tag}>")).count(),
                "{tag} in {svg}"
            );
        }
    }

    #[test]
    fn history_marks_cutoffs_and_model_changes() {
        let history = [
            point(0, 0.2, "m1"),
            point(1, 0.3, "m1"),
            point(2, 0.5, "m2"),
        ];
        let cut = BandCutoffs {
            high: 0.45,
            medium: 0.25,
            policy: churn_model::BandPolicy::default(),
        };
        let svg = history_chart(&history, Some(&cut)).into_string();
        assert_closed(&svg);
        assert_eq!(svg.matches("class=\"history-point\"").count(), 3, "{svg}");
        assert_eq!(svg.matches("class=\"model-change\"").count(), 1, "{svg}");
        assert!(
            svg.contains("cutoff-high") && svg.contains("high from 45.0 %"),
            "{svg}"
        );
        assert!(
            svg.contains("2026-11-01") && svg.contains("2026-11-03"),
            "{svg}"
        );
        // The rising probability is drawn rising (smaller y on screen).
        let line = svg
            .split("points=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let ys: Vec<f64> = line
            .split(' ')
            .map(|p| p.split(',').nth(1).unwrap().parse().unwrap())
            .collect();
        assert!(ys[0] > ys[1] && ys[1] > ys[2], "{ys:?}");
    }

    #[test]
    fn reasons_are_bars_in_order_with_their_sign() {
        let reason = |f: &str, c: f64| Reason {
            feature: f.to_string(),
            value: serde_json::json!(2),
            typical: serde_json::json!(14),
            contribution: c,
            with: None,
        };
        let svg =
            reasons_chart(&[reason("logins<30d>", 0.8), reason("tickets", -0.4)]).into_string();
        let a = svg.find("data-feature=\"logins&lt;30d&gt;\"").unwrap();
        let b = svg.find("data-feature=\"tickets\"").unwrap();
        assert!(a < b);
        assert!(svg.contains("bar raises") && svg.contains("bar lowers"));
        assert!(svg.contains("(typical 14)"), "{svg}");
    }

    #[test]
    fn curves_keep_inside_their_panel() {
        let svg = curve_chart(&Curve {
            id: "roc-chart",
            title: "ROC",
            x_label: "false positive rate",
            y_label: "true positive rate",
            points: vec![(0.0, 0.0), (0.1, 0.6), (1.0, 1.0)],
            x_max: 1.0,
            y_max: 1.0,
            reference: Reference::Diagonal,
            dots: false,
        })
        .into_string();
        assert!(svg.contains("id=\"roc-chart\"") && svg.contains("class=\"curve\""));
        assert!(
            svg.contains("points=\"44.0,232.0 69.2,100.0 296.0,12.0\""),
            "{svg}"
        );
    }
}

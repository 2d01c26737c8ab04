//! Scoring: probability of churn, risk band and reasons, for one JSON record
//! or a batch of columns.
//!
//! [`Scorer::new`] folds preprocessing and coefficients into one small table
//! per source feature: a numeric feature contributes `a * t + b` (t = the
//! value, log1p'd if the model does) plus its shape, tents rewritten as
//! hinges `c max(0, t - knot)` (see [`crate::shape`]), or a fixed amount
//! when missing; a
//! categorical feature contributes a fixed amount per level. One-hot columns
//! and missing indicators are thereby folded back into their source feature,
//! and the logit is the intercept plus these contributions summed in feature
//! order, then each interaction's (its product terms folded into one small
//! grid, see [`crate::product`]), which is also how [`Explanation`] adds
//! them up (so they agree exactly). A reason is a feature or an interaction
//! ("term": indices past the features are the interactions).
//! That folded model (crate-private `FoldedModel`) needs no band cutoffs, so
//! training scores its holdout with it before the cutoffs exist, by the same
//! code that serves scores.
//!
//! One scoring core: a JSON field or a table cell becomes one `Cell` value
//! (missing, a number or text), which feeds one contribution function and
//! one reason function, so a record scores and explains the same whichever
//! way it arrives.
//!
//! Every numeric value passes one rule ([`Scorer`]'s `numeric_value`): a
//! negative value where every training value was >= 0 is an error
//! ([`Error::NegativeValue`]), never clamped; a valid value outside the
//! training `[min, max]` is scored and counted (`out_of_range`), so callers
//! can report it.
//!
//! The batch hot path ([`Scorer::score_table_compact`]) allocates nothing per
//! row (numbers in a categorical column find their level through a
//! precomputed numeric index, not by formatting them): it returns a [`CompactScore`] (probability, logit, band and the
//! indices of the top three reasons); [`Scorer::reasons`] materialises the
//! reasons of a row only when someone wants to read them, and
//! [`BoundTable::reason_texts`] gives their words without building them (what
//! a scores file writes). A [`BoundTable`] scores a block of rows column by
//! column (`score_rows_of`): the same sums in the same order as row by row,
//! with each column read in one sweep.

use crate::artifact::{Coefficient, ModelArtifact};
use crate::band::{BandCutoffs, RiskBand};
use crate::error::{Error, Result};
use crate::preprocess::{number_as_level, FeaturePrep, Preprocessor, Role, OTHER_LEVEL};
use crate::product::{FoldedPair, PartArg};
use crate::reason::{Reason, ReasonText, ValueText};
use crate::table::{ColumnValues, Table};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::HashMap;

/// Number of reasons given per score.
pub const TOP_REASONS: usize = 3;

/// A full score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Score {
    /// P(churn).
    pub churn_probability: f64,
    /// Log-odds of churn: intercept + the sum of every feature's contribution.
    pub logit: f64,
    pub risk_band: RiskBand,
    /// Up to three features pushing towards churn, largest contribution first.
    pub reasons: Vec<Reason>,
    /// How many numeric features lie outside their training `[min, max]`
    /// (scored nonetheless; see the module doc).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub out_of_range: u16,
}

fn is_zero(n: &u16) -> bool {
    *n == 0
}

/// A numeric value outside its feature's training range (still scored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutOfRange {
    pub field: String,
    pub value: f64,
    pub training_min: f64,
    pub training_max: f64,
}

impl std::fmt::Display for OutOfRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} is {}, outside the training range [{}, {}]; scored, but the model has not seen such values",
            self.field, self.value, self.training_min, self.training_max
        )
    }
}

/// A score from a JSON record, with the number of fields the model does not use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoredRecord {
    pub score: Score,
    /// Fields that are neither model features, the id/label column nor an
    /// attribute column of the model.
    pub ignored_fields: usize,
    /// Numeric fields outside their training range, in model order.
    pub out_of_range: Vec<OutOfRange>,
}

/// A score without materialised reasons (no heap data).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CompactScore {
    pub churn_probability: f64,
    pub logit: f64,
    pub risk_band: RiskBand,
    /// Feature indices of the top reasons (first `n_reasons` are valid).
    pub reason_features: [u16; TOP_REASONS],
    /// Their contributions to the logit.
    pub reason_contributions: [f64; TOP_REASONS],
    pub n_reasons: u8,
    /// Numeric features outside their training `[min, max]` in this row.
    pub out_of_range: u16,
}

impl Default for CompactScore {
    fn default() -> Self {
        CompactScore {
            churn_probability: 0.0,
            logit: 0.0,
            risk_band: RiskBand::Low,
            reason_features: [0; TOP_REASONS],
            reason_contributions: [0.0; TOP_REASONS],
            n_reasons: 0,
            out_of_range: 0,
        }
    }
}

/// The intercept and every feature's contribution to the logit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    pub intercept: f64,
    /// (feature, contribution), in the model's feature order.
    pub contributions: Vec<(String, f64)>,
    /// Equals `intercept` plus the contributions summed in order, exactly.
    pub logit: f64,
}

/// Folded parameters of a numeric feature: it contributes
/// `a t + b + sum (c max(0, t - knot))` over `hinges` (empty for a linear
/// feature), or `missing` when missing.
#[derive(Debug, Clone)]
struct NumParam {
    a: f64,
    b: f64,
    /// (knot, change of slope) of the feature's shape on the transformed
    /// value: its tents rewritten as hinges at their ends and peaks (the
    /// same function; see [`tents_as_hinges`]).
    hinges: Vec<(f64, f64)>,
    missing: f64,
    log1p: bool,
    /// The transformed value a missing one is imputed at (for interactions).
    t_median: f64,
    /// Values below it are outside the domain: 0.0 when negative values
    /// are, else minus infinity. A bound rather than a flag: one comparison
    /// that is false for every value where negatives are allowed, where a
    /// flag's test compiled to a branch on the sign of `x` first (random in
    /// real data: a misprediction every other cell).
    lowest: f64,
    /// Training range (infinite when the artifact predates it).
    min: f64,
    max: f64,
}

/// Folded parameters of a categorical feature: contribution per kept level,
/// and of `other` (rare, unseen or missing).
#[derive(Debug, Clone)]
struct CatParam {
    levels: Vec<Box<str>>,
    /// Only for many levels; a short linear scan beats hashing otherwise.
    index: Option<HashMap<Box<str>, u32>>,
    /// Levels that are the text of a number (as training wrote numbers in a
    /// categorical column, [`number_as_level`]): (bits of the number, level).
    numeric: Vec<(u64, u32)>,
    contrib: Vec<f64>,
    other: f64,
}

impl CatParam {
    fn new(levels: &[String]) -> CatParam {
        let numeric = levels
            .iter()
            .enumerate()
            .filter_map(|(i, l)| {
                let x: f64 = l.parse().ok()?;
                (number_as_level(x) == *l).then_some((x.to_bits(), i as u32))
            })
            .collect();
        CatParam {
            levels: levels.iter().map(|l| l.as_str().into()).collect(),
            index: (levels.len() > 16).then(|| {
                levels
                    .iter()
                    .enumerate()
                    .map(|(i, l)| (l.as_str().into(), i as u32))
                    .collect()
            }),
            numeric,
            contrib: vec![0.0; levels.len()],
            other: 0.0,
        }
    }

    /// The kept level of a cell (`None`: `other`).
    #[inline]
    fn level(&self, cell: Cell<'_>) -> Option<usize> {
        match cell {
            Cell::Missing => None,
            Cell::Text(s) => {
                let s = s.trim();
                match &self.index {
                    Some(m) => m.get(s).map(|&i| i as usize),
                    None => self.levels.iter().position(|l| &**l == s),
                }
            }
            Cell::Number(x) => self
                .numeric
                .iter()
                .find(|(bits, _)| *bits == x.to_bits())
                .map(|&(_, i)| i as usize),
        }
    }

    #[inline]
    fn contribution(&self, cell: Cell<'_>) -> f64 {
        match self.level(cell) {
            Some(i) => self.contrib[i],
            None => self.other,
        }
    }
}

/// One feature value as handed in, from a JSON field or a table cell.
#[derive(Debug, Clone, Copy)]
enum Cell<'a> {
    /// Absent, null, or an empty cell.
    Missing,
    Number(f64),
    Text(&'a str),
}

/// Why a cell cannot be scored, before the error names its field and row.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// A required feature is missing.
    Missing,
    NonFinite,
    /// Text in a numeric feature that is no number.
    NotANumber,
    /// Below zero where every training value was >= 0.
    Negative(f64),
    /// A finite but absurd value (say 1e308) overflowed the contribution:
    /// an infinite logit would make the probability meaningless.
    Overflow,
    /// The feature's column has `len` cells where the table has `expected` rows.
    Ragged {
        len: usize,
        expected: usize,
    },
}

/// One feature cell as the model reads it (see [`Scorer::read_cells`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum ReadCell {
    Missing,
    /// A numeric feature's value.
    Number(f64),
    /// A categorical feature's kept level (`None`: `other`).
    Level(Option<usize>),
    /// A numeric feature's text that is no number (the row fails to score).
    Unreadable,
}

#[derive(Debug, Clone)]
enum Param {
    Num(NumParam),
    Cat(CatParam),
}

/// One feature's column in a table being scored.
enum Bound<'a> {
    Num(&'a [f64]),
    Text(&'a [Option<String>]),
    Absent,
    /// The column's length differs from the table's row count.
    Ragged(usize),
}

impl<'a> Bound<'a> {
    /// The cell at row `i` (an empty or blank text cell is missing).
    #[inline(always)]
    fn cell(&self, i: usize) -> Cell<'a> {
        match self {
            Bound::Num(v) if v[i].is_nan() => Cell::Missing,
            Bound::Num(v) => Cell::Number(v[i]),
            Bound::Text(v) => match v[i].as_deref() {
                Some(s) if !s.trim().is_empty() => Cell::Text(s),
                _ => Cell::Missing,
            },
            Bound::Absent | Bound::Ragged(_) => Cell::Missing,
        }
    }
}

#[inline]
fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// Keeps the three largest positive contributions, largest first (ties:
/// the earlier feature first). Without branches: on real data whether a
/// contribution enters the top three is a coin flip, and a mispredicted
/// branch per cell cost more than the scoring arithmetic. Empty places hold
/// 0.0, which no positive contribution ties.
#[inline(always)]
fn push_top(s: &mut CompactScore, feature: usize, c: f64) {
    const _: () = assert!(TOP_REASONS == 3);
    let (r, f) = (s.reason_contributions, s.reason_features);
    let feature = feature as u16;
    // r is sorted, so c > r[0] implies c > r[1] implies c > r[2].
    let (above0, above1, above2) = (c > r[0], c > r[1], c > r[2]);
    let pick = |cond: bool, a: f64, b: f64| std::hint::select_unpredictable(cond, a, b);
    let pick_f = |cond: bool, a: u16, b: u16| std::hint::select_unpredictable(cond, a, b);
    s.reason_contributions = [
        pick(above0, c, r[0]),
        pick(above0, r[0], pick(above1, c, r[1])),
        pick(above1, r[1], pick(above2, c, r[2])),
    ];
    s.reason_features = [
        pick_f(above0, feature, f[0]),
        pick_f(above0, f[0], pick_f(above1, feature, f[1])),
        pick_f(above1, f[1], pick_f(above2, feature, f[2])),
    ];
    s.n_reasons += u8::from(above2 && s.n_reasons < TOP_REASONS as u8);
}

/// The fitted model folded for scoring: the intercept and one small table
/// per source feature. What turns a row's cells into a logit; needs no band
/// cutoffs, so training scores its holdout with it before they exist.
#[derive(Debug, Clone)]
pub(crate) struct FoldedModel {
    intercept: f64,
    params: Vec<Param>,
    /// Interactions, after the features in term order.
    pairs: Vec<FoldedPair>,
    names: Vec<String>,
    required: Vec<bool>,
}

impl FoldedModel {
    /// Folds `prep` and `coefficients` (one per design column) into one
    /// small table per source feature.
    pub(crate) fn new(
        prep: &Preprocessor,
        coefficients: &[Coefficient],
        intercept: f64,
    ) -> FoldedModel {
        let mut params: Vec<Param> = prep
            .features
            .iter()
            .map(|f| match f {
                FeaturePrep::Numeric(n) => Param::Num(NumParam {
                    a: 0.0,
                    b: 0.0,
                    hinges: Vec::new(),
                    missing: 0.0,
                    log1p: n.log1p,
                    t_median: n.transformed_median(),
                    lowest: if n.non_negative() {
                        0.0
                    } else {
                        f64::NEG_INFINITY
                    },
                    min: n.min.unwrap_or(f64::NEG_INFINITY),
                    max: n.max.unwrap_or(f64::INFINITY),
                }),
                FeaturePrep::Categorical(c) => Param::Cat(CatParam::new(&c.levels)),
            })
            .collect();
        let mut pairs = Vec::new();
        for (col, coef) in prep.columns.iter().zip(coefficients) {
            let w = coef.value / col.std;
            let at0 = -w * col.mean;
            if let Role::Product {
                with,
                part,
                with_part,
            } = &col.role
            {
                FoldedPair::add(&mut pairs, (col.feature, *with), (part, with_part), w, at0);
                continue;
            }
            let Some(p) = params.get_mut(col.feature) else {
                continue;
            };
            match (p, &prep.features[col.feature], &col.role) {
                (Param::Num(p), FeaturePrep::Numeric(np), Role::Value) => {
                    let t_med = np.transformed_median();
                    p.a += w;
                    p.b += at0;
                    p.missing += w * t_med + at0;
                }
                (Param::Num(p), FeaturePrep::Numeric(np), &Role::Tent { left, peak, right }) => {
                    let t_med = np.transformed_median();
                    tents_as_hinges(&mut p.hinges, [left, peak, right], w);
                    p.b += at0;
                    p.missing += w * crate::shape::tent(t_med, left, peak, right) + at0;
                }
                (Param::Num(p), _, Role::Missing) => {
                    p.b += at0;
                    p.missing += w + at0;
                }
                (Param::Cat(p), _, role) => {
                    for (i, c) in p.contrib.iter_mut().enumerate() {
                        *c += if *role == (Role::Level { index: i }) {
                            w + at0
                        } else {
                            at0
                        };
                    }
                    p.other += if *role == Role::Other { w + at0 } else { at0 };
                }
                _ => {}
            }
        }
        FoldedModel {
            intercept,
            names: prep.features.iter().map(|f| f.name().to_string()).collect(),
            required: prep.features.iter().map(|f| f.required()).collect(),
            params,
            pairs,
        }
    }

    /// Feature `f`'s (already validated) cell as a part of a product takes it.
    #[inline]
    fn part_arg(&self, f: usize, cell: Cell<'_>) -> PartArg {
        match &self.params[f] {
            Param::Num(p) => {
                let x = match cell {
                    Cell::Number(x) => x,
                    Cell::Text(s) => s.trim().parse().unwrap_or(f64::NAN),
                    Cell::Missing => f64::NAN,
                };
                PartArg::T(match (x.is_finite(), p.log1p) {
                    (false, _) => p.t_median,
                    (true, true) => x.ln_1p(),
                    (true, false) => x,
                })
            }
            Param::Cat(p) => PartArg::Level(p.level(cell)),
        }
    }

    /// Adds each interaction's contribution for the cells `cell(f)` to the
    /// logit and the top reasons of `s`, calling `each(term, contribution)`
    /// too; after the features, in term order.
    #[inline]
    fn add_pairs<'c>(
        &self,
        s: &mut CompactScore,
        cell: impl Fn(usize) -> Cell<'c>,
        mut each: impl FnMut(usize, f64),
    ) {
        let n = self.names.len();
        for (k, pair) in self.pairs.iter().enumerate() {
            let c = pair.contribution(
                self.part_arg(pair.a, cell(pair.a)),
                self.part_arg(pair.b, cell(pair.b)),
            );
            s.logit += c;
            push_top(s, n + k, c);
            each(n + k, c);
        }
    }

    /// How term `t` (a feature, or an interaction past the features) reads:
    /// `plan`, `plan x logins_30d`.
    fn term_name(&self, t: usize) -> String {
        match self.pairs.get(t.wrapping_sub(self.names.len())) {
            Some(p) => format!("{} x {}", self.names[p.a], self.names[p.b]),
            None => self.names.get(t).cloned().unwrap_or_default(),
        }
    }

    /// The one rule for a present, finite numeric value `x` of feature `f`:
    /// its contribution and whether it lies outside the training range.
    ///
    /// # Errors
    /// [`Fault::Negative`] outside the domain; [`Fault::Overflow`] when the
    /// contribution overflows.
    #[inline(always)]
    fn numeric_value(p: &NumParam, x: f64) -> std::result::Result<(f64, bool), Fault> {
        if x < p.lowest {
            return Err(Fault::Negative(x));
        }
        let c = num_contribution(p, x);
        if !c.is_finite() {
            return Err(Fault::Overflow);
        }
        Ok((c, x < p.min || x > p.max))
    }

    /// The cell of a JSON field (absent or null = missing).
    ///
    /// # Errors
    /// [`Error::WrongType`] for a boolean, array or object.
    fn json_cell<'v>(&self, f: usize, v: Option<&'v Value>) -> Result<Cell<'v>> {
        match v {
            None | Some(Value::Null) => Ok(Cell::Missing),
            Some(Value::Number(n)) => Ok(Cell::Number(n.as_f64().unwrap_or(f64::NAN))),
            Some(Value::String(s)) => Ok(Cell::Text(s)),
            Some(other) => Err(Error::WrongType {
                field: self.names[f].clone(),
                row: None,
                expected: match self.params[f] {
                    Param::Num(_) => "a number",
                    Param::Cat(_) => "a string",
                },
                found: json_type(other).into(),
            }),
        }
    }

    /// The one contribution function: feature `f`'s contribution for `cell`
    /// (row `row` of a table, or `None` for a JSON record), and whether the
    /// value lies outside the training range.
    ///
    /// # Errors
    /// [`Error::MissingField`] for a missing required feature;
    /// [`Error::NonFiniteField`], [`Error::WrongType`] (text that is not a
    /// number in a numeric feature), [`Error::NegativeValue`] outside the
    /// domain, [`Error::ValueOutOfRange`] when the contribution overflows.
    #[inline]
    fn contribution(&self, f: usize, cell: Cell<'_>, row: Option<usize>) -> Result<(f64, bool)> {
        self.try_contribution(f, cell)
            .map_err(|fault| self.fault_error(fault, f, cell, row))
    }

    /// [`Self::contribution`] with the error not yet named: the hot loops
    /// carry a small [`Fault`] and name field and row only on failure.
    #[inline]
    fn try_contribution(
        &self,
        f: usize,
        cell: Cell<'_>,
    ) -> std::result::Result<(f64, bool), Fault> {
        Self::contribution_of(&self.params[f], self.required[f], cell)
    }

    /// [`Self::try_contribution`] of a feature with parameters `param`:
    /// apart, so a loop over one feature's cells holds them fixed.
    #[inline(always)]
    fn contribution_of(
        param: &Param,
        required: bool,
        cell: Cell<'_>,
    ) -> std::result::Result<(f64, bool), Fault> {
        match (param, cell) {
            (_, Cell::Missing) if required => Err(Fault::Missing),
            (Param::Num(p), Cell::Missing) => Ok((p.missing, false)),
            (Param::Cat(p), Cell::Missing) => Ok((p.other, false)),
            (Param::Num(p), Cell::Number(x)) if x.is_finite() => Self::numeric_value(p, x),
            (Param::Num(p), Cell::Text(s)) => match s.trim().parse::<f64>() {
                Ok(x) if x.is_finite() => Self::numeric_value(p, x),
                Ok(_) => Err(Fault::NonFinite),
                Err(_) => Err(Fault::NotANumber),
            },
            (Param::Cat(p), Cell::Number(x)) if x.is_finite() => Ok((p.contribution(cell), false)),
            (Param::Cat(p), Cell::Text(_)) => Ok((p.contribution(cell), false)),
            (_, Cell::Number(_)) => Err(Fault::NonFinite),
        }
    }

    /// The error of `fault` for feature `f`'s `cell`, naming field and row.
    #[cold]
    fn fault_error(&self, fault: Fault, f: usize, cell: Cell<'_>, row: Option<usize>) -> Error {
        let field = self.names[f].clone();
        match fault {
            Fault::Missing => Error::MissingField { field, row },
            Fault::NonFinite => Error::NonFiniteField { field, row },
            Fault::NotANumber => Error::WrongType {
                field,
                row,
                expected: "a number",
                found: match cell {
                    Cell::Text(s) => format!("string {s:?}"),
                    _ => "a number".to_string(),
                },
            },
            Fault::Negative(value) => Error::NegativeValue { field, row, value },
            Fault::Overflow => Error::ValueOutOfRange { field, row },
            Fault::Ragged { len, expected } => Error::RaggedTable {
                column: field,
                len,
                expected,
            },
        }
    }

    /// Finite contributions can still add up to an infinite logit; blame
    /// the feature pushing hardest.
    #[inline]
    fn check_logit(&self, s: &CompactScore, row: Option<usize>) -> Result<()> {
        if s.logit.is_finite() {
            return Ok(());
        }
        let f = if s.n_reasons > 0 {
            s.reason_features[0] as usize
        } else {
            0
        };
        let field = self.term_name(f);
        Err(Error::ValueOutOfRange { field, row })
    }

    /// Binds each model feature to a column of `table`.
    fn bind<'a>(&self, table: &'a Table) -> Vec<Bound<'a>> {
        (0..self.names.len())
            .map(|f| self.bind_one(table, f))
            .collect()
    }

    /// Binds model feature `f` to its column of `table`.
    fn bind_one<'a>(&self, table: &'a Table, f: usize) -> Bound<'a> {
        match table.column(&self.names[f]).map(|c| &c.values) {
            None => Bound::Absent,
            Some(v) if v.len() != table.n_rows() => Bound::Ragged(v.len()),
            Some(ColumnValues::Numeric(v)) => Bound::Num(v),
            Some(ColumnValues::Text(v)) => Bound::Text(v),
        }
    }

    /// Contribution of feature `f` at row `i` of a bound table.
    #[inline]
    fn cell_contribution(
        &self,
        f: usize,
        b: &Bound<'_>,
        i: usize,
        table: &Table,
    ) -> Result<(f64, bool)> {
        let row = Some(table.row_number(i));
        if let Bound::Ragged(len) = b {
            let fault = Fault::Ragged {
                len: *len,
                expected: table.n_rows(),
            };
            return Err(self.fault_error(fault, f, Cell::Missing, row));
        }
        let cell = b.cell(i);
        self.try_contribution(f, cell)
            .map_err(|fault| self.fault_error(fault, f, cell, row))
    }

    /// Logit, top reasons and out-of-range count of row `i` of a bound
    /// table: a [`CompactScore`] without its probability and band.
    fn score_row(&self, bound: &[Bound<'_>], i: usize, table: &Table) -> Result<CompactScore> {
        // One row in, one result out.
        self.score_rows_of(bound, i..i + 1, table).swap_remove(0)
    }

    /// [`Self::score_row`] of each of `rows`, in order. Column by column:
    /// each feature's cells are read in one sweep, which keeps the columns
    /// streaming through the cache where row by row every row touched every
    /// column; each row still adds its contributions in feature order, and
    /// a row's first failing feature gives its error (its later sums are
    /// never read), so its result is exactly that of scoring it alone.
    fn score_rows_of<I>(
        &self,
        bound: &[Bound<'_>],
        rows: I,
        table: &Table,
    ) -> Vec<Result<CompactScore>>
    where
        I: Iterator<Item = usize> + Clone,
    {
        let start = CompactScore {
            logit: self.intercept,
            ..CompactScore::default()
        };
        let mut scores: Vec<CompactScore> = rows.clone().map(|_| start).collect();
        // Each row's first failing feature (allocated at the first fault); a
        // failed row's later sums are never read. Kept apart so the sweeps
        // below run over plain scores.
        let n = scores.len();
        let mut faults: Vec<Option<(usize, Fault)>> = Vec::new();
        for (f, b) in bound.iter().enumerate() {
            let (param, required) = (&self.params[f], self.required[f]);
            let mut fail = |k: usize, fault: Fault| {
                if faults.is_empty() {
                    faults.resize(n, None);
                }
                faults[k].get_or_insert((f, fault));
            };
            let add = |s: &mut CompactScore, (c, outside): (f64, bool)| {
                s.logit += c;
                push_top(s, f, c);
                s.out_of_range += u16::from(outside);
            };
            match (b, param) {
                (Bound::Ragged(len), _) => {
                    let expected = table.n_rows();
                    let fault = Fault::Ragged {
                        len: *len,
                        expected,
                    };
                    (0..scores.len()).for_each(|k| fail(k, fault));
                }
                // The common case in its own loop, without a cell enum.
                (Bound::Num(v), Param::Num(p)) => {
                    for (k, (s, i)) in scores.iter_mut().zip(rows.clone()).enumerate() {
                        let x = v[i];
                        let result = if x.is_nan() {
                            if required {
                                Err(Fault::Missing)
                            } else {
                                Ok((p.missing, false))
                            }
                        } else if x.is_infinite() {
                            Err(Fault::NonFinite)
                        } else {
                            Self::numeric_value(p, x)
                        };
                        match result {
                            Ok(c) => add(s, c),
                            Err(fault) => fail(k, fault),
                        }
                    }
                }
                _ => {
                    for (k, (s, i)) in scores.iter_mut().zip(rows.clone()).enumerate() {
                        match Self::contribution_of(param, required, b.cell(i)) {
                            Ok(c) => add(s, c),
                            Err(fault) => fail(k, fault),
                        }
                    }
                }
            }
        }
        scores
            .into_iter()
            .zip(rows)
            .enumerate()
            .map(|(k, (mut s, i))| {
                let row = Some(table.row_number(i));
                if let Some(&Some((f, fault))) = faults.get(k) {
                    return Err(self.fault_error(fault, f, bound[f].cell(i), row));
                }
                if !self.pairs.is_empty() {
                    self.add_pairs(&mut s, |f| bound[f].cell(i), |_, _| ());
                }
                self.check_logit(&s, row)?;
                Ok(s)
            })
            .collect()
    }

    /// Mean absolute contribution of each source feature to the logit over
    /// the scorable `rows` of `table` (an interaction's split evenly
    /// between its two features): the importance the snapshot check ranks
    /// features by. Rows the model cannot score are left out.
    pub(crate) fn mean_abs_contributions(&self, table: &Table, rows: &[usize]) -> Vec<f64> {
        use rayon::prelude::*;
        let bound = self.bind(table);
        // Fixed blocks on the pool, added in block order: the same sums on
        // any number of threads.
        let blocks: Vec<(Vec<f64>, usize)> = rows
            .par_chunks(4096)
            .map(|chunk| self.abs_contribution_sums(&bound, table, chunk))
            .collect();
        let mut sums = vec![0.0; self.names.len()];
        let mut counted = 0usize;
        for (block, n) in blocks {
            for (s, b) in sums.iter_mut().zip(&block) {
                *s += b;
            }
            counted += n;
        }
        let d = counted.max(1) as f64;
        sums.into_iter().map(|s| s / d).collect()
    }

    /// Per source feature, the sum of absolute contributions over the
    /// scorable `rows`, and how many rows that is.
    fn abs_contribution_sums(
        &self,
        bound: &[Bound<'_>],
        table: &Table,
        rows: &[usize],
    ) -> (Vec<f64>, usize) {
        let n = self.names.len();
        let mut sums = vec![0.0; n];
        let mut counted = 0usize;
        let mut row_abs = vec![0.0; n];
        for &i in rows {
            let mut ok = true;
            for (f, b) in bound.iter().enumerate() {
                match self.cell_contribution(f, b, i, table) {
                    Ok((c, _)) => row_abs[f] = c.abs(),
                    Err(_) => ok = false,
                }
            }
            if !ok {
                continue;
            }
            let mut scratch = CompactScore::default();
            self.add_pairs(
                &mut scratch,
                |f| bound[f].cell(i),
                |t, c| {
                    let p = &self.pairs[t - n];
                    row_abs[p.a] += c.abs() / 2.0;
                    row_abs[p.b] += c.abs() / 2.0;
                },
            );
            for (s, a) in sums.iter_mut().zip(&row_abs) {
                *s += a;
            }
            counted += 1;
        }
        (sums, counted)
    }

    /// Source feature names in model order.
    pub(crate) fn names(&self) -> &[String] {
        &self.names
    }

    /// The churn probability of each of `rows` (0-based) of `table`.
    pub(crate) fn probabilities(&self, table: &Table, rows: &[usize]) -> Result<Vec<f64>> {
        let bound = self.bind(table);
        let bound = &bound;
        // In parallel on the current pool; the result is the same as one
        // pass, in row order, first error first.
        use rayon::prelude::*;
        rows.par_chunks(1024)
            .flat_map_iter(|chunk| self.score_rows_of(bound, chunk.iter().copied(), table))
            .map(|s| s.map(|s| sigmoid(s.logit)))
            .collect::<Vec<Result<f64>>>()
            .into_iter()
            .collect()
    }
}

/// Precomputed, flattened scoring parameters of an artifact: its folded
/// model and band cutoffs.
#[derive(Debug, Clone)]
pub struct Scorer {
    artifact: ModelArtifact,
    bands: BandCutoffs,
    model: FoldedModel,
    /// Each numeric feature's typical value (its median) as a reason writes
    /// it, written once (empty for categorical features): a scores file
    /// shows it on most reasons.
    typical_text: Vec<String>,
}

impl Scorer {
    /// Prepares an artifact for scoring. The artifact is assumed consistent,
    /// as [`ModelArtifact::from_json_bytes`] and training guarantee.
    pub fn new(artifact: &ModelArtifact) -> Scorer {
        Scorer {
            bands: artifact.bands,
            model: FoldedModel::new(
                &artifact.preprocessing,
                &artifact.coefficients,
                artifact.intercept,
            ),
            artifact: artifact.clone(),
            typical_text: artifact
                .preprocessing
                .features
                .iter()
                .map(|f| match f {
                    FeaturePrep::Numeric(n) => ValueText::number(n.median).to_text(),
                    FeaturePrep::Categorical(_) => String::new(),
                })
                .collect(),
        }
    }

    /// The artifact this scorer was built from.
    pub fn artifact(&self) -> &ModelArtifact {
        &self.artifact
    }

    /// Source feature names in model order.
    pub fn feature_names(&self) -> &[String] {
        &self.model.names
    }

    /// The band of a probability under this model's cutoffs.
    pub fn band(&self, p: f64) -> RiskBand {
        self.bands.band(p)
    }

    /// Feature `f`'s cells in `rows` (0-based) of `table` as the model reads
    /// them, with their row; `None` when the table has no usable column for
    /// it. What the snapshot check bins, so it bins exactly what scoring sees
    /// (trimmed levels, numbers written as text).
    pub(crate) fn read_cells<'t>(
        &'t self,
        table: &'t Table,
        rows: std::ops::Range<usize>,
        f: usize,
    ) -> Option<impl Iterator<Item = (usize, ReadCell)> + 't> {
        let bound = self.model.bind_one(table, f);
        if matches!(bound, Bound::Absent | Bound::Ragged(_)) {
            return None;
        }
        let param = &self.model.params[f];
        Some(rows.map(move |i| {
            let read = match (param, bound.cell(i)) {
                (_, Cell::Missing) => ReadCell::Missing,
                (Param::Num(_), Cell::Number(x)) => ReadCell::Number(x),
                (Param::Num(_), Cell::Text(s)) => match s.trim().parse::<f64>() {
                    Ok(x) if x.is_finite() => ReadCell::Number(x),
                    _ => ReadCell::Unreadable,
                },
                (Param::Cat(p), cell) => ReadCell::Level(p.level(cell)),
            };
            (i, read)
        }))
    }

    /// Every contribution of one record.
    ///
    /// # Errors
    /// As [`Scorer::score_json`].
    pub fn explain_json(&self, features: &Map<String, Value>) -> Result<Explanation> {
        let mut s = CompactScore {
            logit: self.model.intercept,
            ..CompactScore::default()
        };
        let mut contributions = Vec::with_capacity(self.model.names.len());
        let cells = self.json_cells(features)?;
        for (f, name) in self.model.names.iter().enumerate() {
            let (c, _) = self.model.contribution(f, cells[f], None)?;
            s.logit += c;
            contributions.push((name.clone(), c));
        }
        self.model.add_pairs(
            &mut s,
            |f| cells[f],
            |t, c| contributions.push((self.model.term_name(t), c)),
        );
        if !s.logit.is_finite() {
            let worst = contributions
                .iter()
                .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()));
            let field = worst.map(|w| w.0.clone()).unwrap_or_default();
            return Err(Error::ValueOutOfRange { field, row: None });
        }
        Ok(Explanation {
            intercept: self.model.intercept,
            contributions,
            logit: s.logit,
        })
    }

    /// The cell of every model feature in a JSON record, in model order.
    ///
    /// # Errors
    /// [`Error::WrongType`] for a boolean, array or object.
    fn json_cells<'v>(&self, features: &'v Map<String, Value>) -> Result<Vec<Cell<'v>>> {
        self.model
            .names
            .iter()
            .enumerate()
            .map(|(f, name)| self.model.json_cell(f, features.get(name)))
            .collect()
    }

    /// Scores one record given as a JSON object of feature name -> value.
    /// Missing optional features are imputed as in training; fields the
    /// model does not know are ignored and counted.
    ///
    /// # Errors
    /// [`Error::NonFiniteField`] or [`Error::WrongType`] naming the field;
    /// [`Error::MissingField`] for an absent or null required feature.
    pub fn score_json(&self, features: &Map<String, Value>) -> Result<ScoredRecord> {
        let mut s = CompactScore {
            logit: self.model.intercept,
            ..CompactScore::default()
        };
        let mut out_of_range = Vec::new();
        let cells = self.json_cells(features)?;
        for (f, name) in self.model.names.iter().enumerate() {
            let (c, outside) = self.model.contribution(f, cells[f], None)?;
            s.logit += c;
            push_top(&mut s, f, c);
            if outside {
                out_of_range.push(self.out_of_range_of(f, features.get(name)));
            }
        }
        self.model.add_pairs(&mut s, |f| cells[f], |_, _| ());
        self.model.check_logit(&s, None)?;
        self.finish(&mut s);
        let known = |k: &String| {
            self.model.names.contains(k)
                || *k == self.artifact.id_column
                || *k == self.artifact.label_column
                || self.artifact.attributes.contains_column(k)
        };
        let ignored_fields = features.keys().filter(|k| !known(k)).count();
        let reasons = (0..s.n_reasons as usize)
            .map(|i| {
                self.reason(
                    s.reason_features[i] as usize,
                    |f| cells[f],
                    s.reason_contributions[i],
                )
            })
            .collect();
        let score = Score {
            churn_probability: s.churn_probability,
            logit: s.logit,
            risk_band: s.risk_band,
            reasons,
            out_of_range: out_of_range.len() as u16,
        };
        Ok(ScoredRecord {
            score,
            ignored_fields,
            out_of_range,
        })
    }

    /// The out-of-range note for numeric feature `f` with JSON value `v`
    /// (already found outside the range, so a number).
    fn out_of_range_of(&self, f: usize, v: Option<&Value>) -> OutOfRange {
        let value = match v {
            Some(Value::Number(n)) => n.as_f64(),
            Some(Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        };
        let (training_min, training_max) = match &self.model.params[f] {
            Param::Num(p) => (p.min, p.max),
            Param::Cat(_) => (f64::NAN, f64::NAN),
        };
        OutOfRange {
            field: self.model.names[f].clone(),
            value: value.unwrap_or(f64::NAN),
            training_min,
            training_max,
        }
    }

    #[inline]
    fn finish(&self, s: &mut CompactScore) {
        s.churn_probability = sigmoid(s.logit);
        s.risk_band = self.bands.band(s.churn_probability);
    }

    /// The one reason function: term `t` (a feature, or an interaction past
    /// the features) with the customer's values of the cells `cell(f)`.
    fn reason<'c>(&self, t: usize, cell: impl Fn(usize) -> Cell<'c>, contribution: f64) -> Reason {
        self.reason_text(t, cell).to_reason(contribution)
    }

    /// What term `t`'s reason says (see [`Scorer::reason`]), borrowed from
    /// the model and the cells.
    fn reason_text<'a, 'c: 'a>(
        &'a self,
        t: usize,
        cell: impl Fn(usize) -> Cell<'c>,
    ) -> ReasonText<'a> {
        let n = self.model.names.len();
        let Some(pair) = self.model.pairs.get(t.wrapping_sub(n)) else {
            let (value, typical) = self.feature_values(t, cell(t));
            return ReasonText {
                feature: &self.model.names[t],
                value,
                typical,
                with: None,
            };
        };
        // A pair has no one typical value.
        let (a, _) = self.feature_values(pair.a, cell(pair.a));
        let (b, _) = self.feature_values(pair.b, cell(pair.b));
        ReasonText {
            feature: &self.model.names[pair.a],
            value: a,
            typical: ValueText::Missing,
            with: Some((&self.model.names[pair.b], b)),
        }
    }

    /// Feature `f`'s value in `cell` beside the typical one (training
    /// median or most common level).
    fn feature_values<'a>(&'a self, f: usize, cell: Cell<'a>) -> (ValueText<'a>, ValueText<'a>) {
        match (
            &self.artifact.preprocessing.features[f],
            &self.model.params[f],
        ) {
            (FeaturePrep::Numeric(n), _) => {
                let x = match cell {
                    Cell::Number(x) => x,
                    Cell::Text(s) => s.trim().parse().unwrap_or(f64::NAN),
                    Cell::Missing => f64::NAN,
                };
                let typical = match ValueText::number(n.median) {
                    ValueText::Number(m) => ValueText::Written(m, &self.typical_text[f]),
                    missing => missing,
                };
                (ValueText::number(x), typical)
            }
            (FeaturePrep::Categorical(c), Param::Cat(p)) => {
                let v = match (cell, p.level(cell)) {
                    (Cell::Missing, _) => ValueText::Missing,
                    (Cell::Text(s), _) if s.trim().is_empty() => ValueText::Missing,
                    (_, Some(k)) => ValueText::Text(&c.levels[k]),
                    (_, None) => ValueText::Text(OTHER_LEVEL),
                };
                (v, ValueText::Text(&c.most_common))
            }
            (FeaturePrep::Categorical(c), _) => {
                (ValueText::Missing, ValueText::Text(&c.most_common))
            }
        }
    }

    /// Scores row `i` of a bound table.
    #[inline]
    fn score_bound(&self, bound: &[Bound<'_>], i: usize, table: &Table) -> Result<CompactScore> {
        let mut s = self.model.score_row(bound, i, table)?;
        self.finish(&mut s);
        Ok(s)
    }

    /// Scores `rows` of a bound table, in order (see `score_rows_of`).
    fn score_bound_rows(
        &self,
        bound: &[Bound<'_>],
        rows: std::ops::Range<usize>,
        table: &Table,
    ) -> Vec<Result<CompactScore>> {
        let mut scores = self.model.score_rows_of(bound, rows, table);
        for s in scores.iter_mut().flatten() {
            self.finish(s);
        }
        scores
    }

    /// `table` with each model feature's column found once, to score rows
    /// and read their reasons.
    pub fn bind<'a>(&'a self, table: &'a Table) -> BoundTable<'a> {
        BoundTable {
            scorer: self,
            table,
            bound: self.model.bind(table),
        }
    }

    /// Scores every row into `out` (cleared first; one entry per row, a
    /// default score for rows that failed) without per-row allocation.
    /// Returns the failed rows as (0-based index, error naming row and field).
    pub fn score_table_compact(
        &self,
        table: &Table,
        out: &mut Vec<CompactScore>,
    ) -> Vec<(usize, Error)> {
        use rayon::prelude::*;
        /// Rows scored by one task of the pool.
        const BLOCK: usize = 1024;
        let bound = self.bind(table);
        let bound = &bound;
        out.clear();
        out.resize(table.n_rows(), CompactScore::default());
        // Blocks of rows on the thread pool, each scored column by column
        // with a few allocations per block; the errors come back in row order.
        out.par_chunks_mut(BLOCK)
            .enumerate()
            .flat_map_iter(|(b, block)| {
                let first = b * BLOCK;
                let mut errors = Vec::new();
                let scores = bound.score_rows(first..first + block.len());
                for (k, (slot, score)) in block.iter_mut().zip(scores).enumerate() {
                    match score {
                        Ok(s) => *slot = s,
                        Err(e) => errors.push((first + k, e)),
                    }
                }
                errors
            })
            .collect()
    }

    /// Scores rows `rows` (0-based) of `table`.
    pub(crate) fn score_rows(&self, table: &Table, rows: &[usize]) -> Result<Vec<f64>> {
        self.model.probabilities(table, rows)
    }

    /// The probability of each of `rows` (0-based) of `table`, `None` where
    /// the row cannot be scored (a value outside this model's domain, say).
    pub(crate) fn score_rows_scorable(&self, table: &Table, rows: &[usize]) -> Vec<Option<f64>> {
        let bound = self.model.bind(table);
        rows.iter()
            .map(|&i| {
                self.score_bound(&bound, i, table)
                    .ok()
                    .map(|s| s.churn_probability)
            })
            .collect()
    }

    /// The reasons of row `row` (0-based) of `table` for its compact score.
    pub fn reasons(&self, table: &Table, row: usize, score: &CompactScore) -> Vec<Reason> {
        self.bind(table).reasons(row, score)
    }

    /// Scores every row of a table, with reasons; errors name the row (via
    /// `table.first_row`) and field.
    pub fn score_table(&self, table: &Table) -> Vec<Result<Score>> {
        let bound = self.model.bind(table);
        (0..table.n_rows())
            .map(|i| {
                let s = self.score_bound(&bound, i, table)?;
                let reasons = (0..s.n_reasons as usize)
                    .map(|k| {
                        let t = s.reason_features[k] as usize;
                        self.reason(t, |f| bound[f].cell(i), s.reason_contributions[k])
                    })
                    .collect();
                Ok(Score {
                    churn_probability: s.churn_probability,
                    logit: s.logit,
                    risk_band: s.risk_band,
                    reasons,
                    out_of_range: s.out_of_range,
                })
            })
            .collect()
    }
}

/// A table bound to a [`Scorer`] (each model feature's column found once):
/// scores its rows and reads their reasons without looking columns up per row.
pub struct BoundTable<'a> {
    scorer: &'a Scorer,
    table: &'a Table,
    bound: Vec<Bound<'a>>,
}

impl<'a> BoundTable<'a> {
    /// Scores row `i` (0-based).
    ///
    /// # Errors
    /// As [`Scorer::score_table_compact`] reports them, naming row and field.
    ///
    /// # Panics
    /// When `i` is not a row of the table (a caller's bug, as indexing).
    #[inline]
    pub fn score(&self, i: usize) -> Result<CompactScore> {
        self.scorer.score_bound(&self.bound, i, self.table)
    }

    /// Scores rows `rows` (0-based), in order, as [`BoundTable::score`]
    /// would one by one.
    ///
    /// # Panics
    /// When `rows` reaches past the table's rows (a caller's bug, as indexing).
    pub fn score_rows(&self, rows: std::ops::Range<usize>) -> Vec<Result<CompactScore>> {
        self.scorer.score_bound_rows(&self.bound, rows, self.table)
    }

    /// The reasons of row `i` for its compact score, as stored.
    pub fn reasons(&self, i: usize, score: &CompactScore) -> Vec<Reason> {
        self.reason_texts(i, score)
            .map(|(text, contribution)| text.to_reason(contribution))
            .collect()
    }

    /// What each of row `i`'s reasons says (with its contribution), borrowed:
    /// what a scores file writes, as [`Reason`]'s text would read.
    pub fn reason_texts<'s>(
        &'s self,
        i: usize,
        score: &'s CompactScore,
    ) -> impl Iterator<Item = (ReasonText<'a>, f64)> + 's {
        let terms = self.scorer.model.names.len() + self.scorer.model.pairs.len();
        let n = if i < self.table.n_rows() {
            score.n_reasons as usize
        } else {
            0
        };
        (0..n)
            .filter(move |&k| (score.reason_features[k] as usize) < terms)
            .map(move |k| {
                let bound = &self.bound;
                let text = self
                    .scorer
                    .reason_text(score.reason_features[k] as usize, |f| bound[f].cell(i));
                (text, score.reason_contributions[k])
            })
    }
}

/// `x` is in the domain (>= 0 for a log1p feature; `numeric_value` checks).
#[inline(always)]
fn num_contribution(p: &NumParam, x: f64) -> f64 {
    let t = if p.log1p { x.ln_1p() } else { x };
    let mut c = p.a * t + p.b;
    for &(knot, slope) in &p.hinges {
        c += slope * (t - knot).max(0.0);
    }
    c
}

/// Adds `w` times the tent on `[l, m, r]` to the hinges `max(0, t - knot)`
/// of `hinges`: the tent's slope rises by `w / (m - l)` at `l`, falls by
/// `w / (m - l) + w / (r - m)` at `m` and rises by `w / (r - m)` at `r`.
/// Hinges are branch-free, so scoring a shaped feature costs a few
/// multiply-adds (a tent's `if`s halved the throughput); neighbouring tents
/// share knots, which are merged.
fn tents_as_hinges(hinges: &mut Vec<(f64, f64)>, [l, m, r]: [f64; 3], w: f64) {
    let (up, down) = (w / (m - l), w / (r - m));
    for (knot, slope) in [(l, up), (m, -up - down), (r, down)] {
        match hinges.iter_mut().find(|h| h.0 == knot) {
            Some(h) => h.1 += slope,
            None => hinges.push((knot, slope)),
        }
    }
}

/// How a JSON value's type reads in an error message ("a string", "null", ...).
pub fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shape::tent;

    /// The branch-free top three equal a stable sort of the positive
    /// contributions (largest first, ties in feature order), ties and
    /// fewer than three positives included.
    #[test]
    fn top_reasons_are_the_stable_largest_three() {
        let mut state: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let n = (next() % 9) as usize;
            // Few distinct values, so ties are common; some <= 0.
            let contributions: Vec<f64> = (0..n).map(|_| (next() % 7) as f64 - 2.0).collect();
            let mut s = CompactScore::default();
            for (f, &c) in contributions.iter().enumerate() {
                push_top(&mut s, f, c);
            }
            let mut expected: Vec<(usize, f64)> = contributions
                .iter()
                .copied()
                .enumerate()
                .filter(|&(_, c)| c > 0.0)
                .collect();
            expected.sort_by(|a, b| b.1.total_cmp(&a.1));
            expected.truncate(TOP_REASONS);
            let got: Vec<(usize, f64)> = (0..s.n_reasons as usize)
                .map(|k| (s.reason_features[k] as usize, s.reason_contributions[k]))
                .collect();
            assert_eq!(got, expected, "{contributions:?}");
        }
    }

    /// Hinges folded from neighbouring tents give the tents' sum everywhere,
    /// including outside their range (0 there) and at shared knots.
    #[test]
    fn tents_as_hinges_is_the_same_function() {
        let tents = [([0.0, 1.0, 3.0], 0.7), ([1.0, 3.0, 4.5], -1.3)];
        let mut hinges = Vec::new();
        for &(lmr, w) in &tents {
            tents_as_hinges(&mut hinges, lmr, w);
        }
        assert_eq!(hinges.len(), 4, "shared knots merge: {hinges:?}");
        for i in -20..80 {
            let t = f64::from(i) / 10.0;
            let direct: f64 = tents
                .iter()
                .map(|&([l, m, r], w)| w * tent(t, l, m, r))
                .sum();
            let folded: f64 = hinges.iter().map(|&(k, c)| c * (t - k).max(0.0)).sum();
            assert!(
                (direct - folded).abs() < 1e-12,
                "t {t}: {direct} vs {folded}"
            );
        }
    }
}

//! The risk list's header figures (customers and value at risk per band)
//! and the owners and segments its filters offer.
//!
//! A summary reads every at-risk flag (every shard of the risk-list index
//! in DynamoDB, 300,000 rows for a 1M-customer SQLite store; the three
//! come from one read, [`FlagStore::summaries`]), too slow for every page
//! view. So the
//! figures are kept for [`MAX_AGE`] and refreshed in the background once
//! stale (the page shows when they were computed); only the very first
//! view, or one after a failed refresh, waits for them. `churn serve`
//! warms them at start.

use crate::error::Result;
use crate::flag_store::{FlagStore, Summary, SummaryBuilder, SummaryBy};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// How long the figures are shown before a refresh starts.
pub const MAX_AGE: Duration = Duration::from_secs(60);

/// One computation of the figures.
#[derive(Debug)]
pub struct Figures {
    pub by_band: Summary,
    /// Owners of at-risk accounts, by value at risk.
    pub owners: Vec<String>,
    /// Segments of at-risk accounts, by value at risk.
    pub segments: Vec<String>,
    pub computed_at: OffsetDateTime,
    /// When the computation finished.
    done: Instant,
}

/// The figures of one flag store, shared by the requests of a process.
#[derive(Debug, Default)]
pub struct Totals {
    figures: Mutex<Option<Arc<Figures>>>,
    refreshing: Arc<AtomicBool>,
    /// One computation at a time: a view arriving while one runs waits
    /// for it instead of starting a second read of every flag.
    computing: tokio::sync::Mutex<()>,
}

impl Totals {
    pub fn new() -> Totals {
        Totals::default()
    }

    /// The figures: the kept ones (refreshed in the background when
    /// stale), or computed now when there are none.
    ///
    /// # Errors
    /// The store's, when there are no figures yet.
    pub async fn get(self: &Arc<Self>, flags: &Arc<dyn FlagStore>) -> Result<Arc<Figures>> {
        let kept = self.kept();
        match kept {
            Some(f) if f.done.elapsed() < MAX_AGE => Ok(f),
            Some(f) => {
                self.refresh_in_background(flags.clone());
                Ok(f)
            }
            None => self.refresh(flags.as_ref()).await,
        }
    }

    fn kept(&self) -> Option<Arc<Figures>> {
        self.figures.lock().map(|g| g.clone()).unwrap_or(None)
    }

    /// Computes the figures now and keeps them.
    ///
    /// # Errors
    /// The store's.
    pub async fn refresh(&self, flags: &dyn FlagStore) -> Result<Arc<Figures>> {
        let asked = Instant::now();
        let _one = self.computing.lock().await;
        if let Some(f) = self.kept().filter(|f| f.done >= asked) {
            return Ok(f);
        }
        let figures = Arc::new(compute(flags).await?);
        if let Ok(mut g) = self.figures.lock() {
            *g = Some(figures.clone());
        }
        Ok(figures)
    }

    /// Starts one refresh unless one is running; a failure keeps the old
    /// figures (logged), and the next stale view tries again.
    pub fn refresh_in_background(self: &Arc<Self>, flags: Arc<dyn FlagStore>) {
        if self.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let totals = self.clone();
        tokio::spawn(async move {
            if let Err(e) = totals.refresh(flags.as_ref()).await {
                tracing::warn!(error = %crate::error::report(&e), "risk list totals not refreshed");
            }
            totals.refreshing.store(false, Ordering::Release);
        });
    }
}

async fn compute(flags: &dyn FlagStore) -> Result<Figures> {
    let computed_at = crate::timestamp::now();
    let mut all = flags
        .summaries(&[SummaryBy::Band, SummaryBy::Owner, SummaryBy::Segment])
        .await?
        .into_iter();
    let mut next = |by| {
        all.next()
            .unwrap_or_else(|| SummaryBuilder::new(by).finish())
    };
    let by_band = next(SummaryBy::Band);
    let keys = |s: Summary| s.rows.into_iter().filter_map(|r| r.key).collect();
    let owners = keys(next(SummaryBy::Owner));
    let segments = keys(next(SummaryBy::Segment));
    Ok(Figures {
        by_band,
        owners,
        segments,
        computed_at,
        done: Instant::now(),
    })
}

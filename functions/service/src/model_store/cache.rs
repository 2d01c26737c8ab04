//! The scoring process's view of the promoted model: loaded once, re-checked
//! at most every `refresh` interval, swapped without a restart.
//!
//! A re-check reads only `current.json`; the artifact is fetched (and its
//! sha256 verified) only when the pointer moved. If the store cannot be
//! reached during a re-check, the model already loaded keeps serving (a blip
//! in S3 must not take scoring down) and the next call after the interval
//! tries again.

use super::{ModelPointer, ModelStore};
use crate::error::Result;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// A model as loaded by a [`ModelCache`].
#[derive(Debug)]
pub struct LoadedModel<T> {
    /// The pointer it was loaded from.
    pub pointer: ModelPointer,
    /// What the loader made of the artifact bytes (artifact, scorer, ...).
    pub model: T,
}

type Loader<T> = Box<dyn Fn(&ModelPointer, &[u8]) -> Result<T> + Send + Sync>;

struct State<T> {
    loaded: Option<Arc<LoadedModel<T>>>,
    checked_at: Option<Instant>,
}

/// Caches the promoted model of a [`ModelStore`], generic over what the
/// artifact bytes are turned into (e.g. a `churn_model::Scorer`).
pub struct ModelCache<T> {
    store: Arc<dyn ModelStore>,
    refresh: Duration,
    loader: Loader<T>,
    state: Mutex<State<T>>,
}

impl<T> std::fmt::Debug for ModelCache<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelCache")
            .field("refresh", &self.refresh)
            .finish_non_exhaustive()
    }
}

impl<T: Send + Sync + 'static> ModelCache<T> {
    /// A cache over `store` re-checking the pointer at most every `refresh`;
    /// `loader` turns verified artifact bytes into the cached value.
    pub fn new(
        store: Arc<dyn ModelStore>,
        refresh: Duration,
        loader: impl Fn(&ModelPointer, &[u8]) -> Result<T> + Send + Sync + 'static,
    ) -> Self {
        ModelCache {
            store,
            refresh,
            loader: Box::new(loader),
            state: Mutex::new(State {
                loaded: None,
                checked_at: None,
            }),
        }
    }

    /// The current model, loading or refreshing it if the interval has passed.
    /// `None` when no model is promoted.
    ///
    /// # Errors
    /// The store's or loader's error when there is no model loaded yet to fall
    /// back on (a failed refresh with a model loaded keeps that model).
    pub async fn get(&self) -> Result<Option<Arc<LoadedModel<T>>>> {
        let mut state = self.state.lock().await;
        let due = state
            .checked_at
            .is_none_or(|at| at.elapsed() >= self.refresh);
        if due {
            self.check(&mut state).await?;
        }
        Ok(state.loaded.clone())
    }

    /// Re-checks the pointer now, whatever the interval.
    ///
    /// # Errors
    /// As [`ModelCache::get`].
    pub async fn refresh_now(&self) -> Result<Option<Arc<LoadedModel<T>>>> {
        let mut state = self.state.lock().await;
        self.check(&mut state).await?;
        Ok(state.loaded.clone())
    }

    async fn check(&self, state: &mut State<T>) -> Result<()> {
        let result = self.reload(state).await;
        // Count failed checks too: a broken store is retried once per
        // interval, not on every request.
        state.checked_at = Some(Instant::now());
        match result {
            Ok(()) => Ok(()),
            Err(e) if state.loaded.is_some() => {
                tracing::warn!(error = %e, "model pointer re-check failed; keeping the loaded model");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    async fn reload(&self, state: &mut State<T>) -> Result<()> {
        let Some(pointer) = self.store.current_pointer().await? else {
            state.loaded = None;
            return Ok(());
        };
        let unchanged = state.loaded.as_ref().is_some_and(|l| {
            l.pointer.model_id == pointer.model_id && l.pointer.sha256 == pointer.sha256
        });
        if unchanged {
            return Ok(());
        }
        let bytes = self.store.load(&pointer).await?;
        let model = (self.loader)(&pointer, &bytes)?;
        tracing::info!(model_id = %pointer.model_id, "loaded promoted model");
        state.loaded = Some(Arc::new(LoadedModel { pointer, model }));
        Ok(())
    }
}

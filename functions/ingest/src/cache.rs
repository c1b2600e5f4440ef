//! A copy of something small the ingest reads from PostgreSQL (the experiment registry, the
//! erasure tombstones), kept in the function and reloaded once it is older than its max age,
//! so that no request pays a database round trip for it except the one that finds the copy
//! stale. A failed reload keeps the last copy, is logged, and is retried after the same age;
//! it never fails a request.
//!
//! Before the first successful load there is no copy, which is not an empty one: every
//! request that needs it tries the load again (one at a time; a request that waited for an
//! attempt takes its outcome). What a request does without a copy is its user's to decide
//! (registry.rs, intake.rs).

use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use eis_store::{Db, StoreError};
use tokio::sync::Mutex;
use tokio::time::Instant;

/// What a [`Cache`] holds: loaded whole from the database.
pub trait Load: Sized + Send + Sync + 'static {
    /// What it is, for the log of a failed load ("the experiment registry").
    const WHAT: &'static str;

    fn load(db: &Arc<Db>) -> impl Future<Output = Result<Self, StoreError>> + Send;
}

pub struct Cache<T> {
    db: Arc<Db>,
    max_age: Duration,
    current: RwLock<Held<T>>,
    /// Held by the one request that loads; the others use the current copy meanwhile (or,
    /// before the first load, wait for the attempt's outcome).
    reloading: Mutex<()>,
}

struct Held<T> {
    /// None: never loaded.
    copy: Option<Arc<T>>,
    /// When the copy was loaded (or a load last failed); None: never tried.
    tried_at: Option<Instant>,
}

impl<T: Load> Cache<T> {
    pub fn new(db: Arc<Db>, max_age: Duration) -> Self {
        Self {
            db,
            max_age,
            current: RwLock::new(Held {
                copy: None,
                tried_at: None,
            }),
            reloading: Mutex::new(()),
        }
    }

    /// The copy to use, loaded or reloaded first when needed; None while it has never been
    /// loaded.
    pub async fn get(&self) -> Option<Arc<T>> {
        let arrived = Instant::now();
        let (copy, fresh) = self.read(arrived);
        if fresh {
            return copy;
        }
        let _loading = match &copy {
            // A stale copy: one request reloads, the others go on with the copy.
            Some(_) => match self.reloading.try_lock() {
                Ok(guard) => guard,
                Err(_) => return copy,
            },
            // No copy: wait for the attempt in flight rather than answer without one.
            None => self.reloading.lock().await,
        };
        // Another request may have loaded, or tried to, meanwhile: its outcome stands.
        let (copy, fresh) = self.read(Instant::now());
        let tried_since = self.current().tried_at.is_some_and(|at| at >= arrived);
        if fresh || (copy.is_none() && tried_since) {
            return copy;
        }
        let loaded = T::load(&self.db).await;
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        current.tried_at = Some(Instant::now());
        match loaded {
            Ok(copy) => current.copy = Some(Arc::new(copy)),
            Err(err) => tracing::warn!(
                error = %eis_runtime::telemetry::chain(&err),
                loaded_before = current.copy.is_some(),
                "{} could not be loaded; the last copy (if any) stays in use",
                T::WHAT
            ),
        }
        current.copy.clone()
    }

    /// The copy held now, without loading.
    pub fn held(&self) -> Option<Arc<T>> {
        self.current().copy.clone()
    }

    /// When a load was last tried (for tests of the retries).
    #[cfg(test)]
    pub(crate) fn tried_at(&self) -> Option<Instant> {
        self.current().tried_at
    }

    fn current(&self) -> std::sync::RwLockReadGuard<'_, Held<T>> {
        self.current.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The copy, and whether it is loaded and younger than the max age.
    fn read(&self, now: Instant) -> (Option<Arc<T>>, bool) {
        let current = self.current();
        let fresh = current.copy.is_some()
            && current
                .tried_at
                .is_some_and(|at| now.duration_since(at) < self.max_age);
        (current.copy.clone(), fresh)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use eis_store::DbConfig;

    /// A database that is never reached: the test's loads do not use it.
    fn nowhere() -> Arc<Db> {
        let config = DbConfig {
            url: "postgres://eis@127.0.0.1:1/eis?sslmode=disable".into(),
            ca_file: None,
            secret_arn: None,
            connect_timeout: Duration::from_millis(200),
            query_timeout: Duration::from_millis(200),
            idle_probe_after: Duration::from_secs(60),
        };
        Arc::new(Db::new(&config).expect("config"))
    }

    /// The scripted outcomes of [`Scripted`]'s loads: load `i` gives `SCRIPT[i]` (Some(n):
    /// loaded `n`; None: failed). One script, so one test uses it.
    const SCRIPT: [Option<u32>; 5] = [None, Some(1), None, Some(2), Some(3)];
    static LOADS: AtomicUsize = AtomicUsize::new(0);

    #[derive(Debug, PartialEq)]
    struct Scripted(u32);

    impl Load for Scripted {
        const WHAT: &'static str = "the scripted value";

        async fn load(_: &Arc<Db>) -> Result<Self, StoreError> {
            let i = LOADS.fetch_add(1, Ordering::SeqCst);
            match SCRIPT.get(i).copied().flatten() {
                Some(n) => Ok(Scripted(n)),
                None => Err(StoreError::other("scripted failure")),
            }
        }
    }

    #[tokio::test]
    async fn a_failed_reload_keeps_the_last_copy_and_an_expired_one_is_reloaded() {
        let cache: Cache<Scripted> = Cache::new(nowhere(), Duration::ZERO);
        let value = |got: Option<Arc<Scripted>>| got.map(|s| s.0);
        // Load 0 fails: no copy. Load 1 succeeds. With a max age of zero every request
        // reloads: load 2 fails and keeps 1, loads 3 and 4 replace it.
        let want = [None, Some(1), Some(1), Some(2), Some(3)];
        for (i, want) in want.into_iter().enumerate() {
            assert_eq!(value(cache.get().await), want, "request {i}");
            assert_eq!(value(cache.held()), want, "held after request {i}");
        }
        assert_eq!(LOADS.load(Ordering::SeqCst), SCRIPT.len());
    }
}

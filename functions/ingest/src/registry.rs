//! The experiment registry as the ingest sees it: a copy kept in the function and reloaded
//! once it is older than the configured age, so that no request pays a database round trip
//! for it except the one that finds the copy stale. A failed reload keeps the last copy
//! (before the first load: no checks) and is retried after the same age; it never fails a
//! request.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use eis_contract::{Registry, RegistryMode};
use eis_store::Db;
use tokio::sync::Mutex;
use tokio::time::Instant;

pub struct RegistryCache {
    db: Arc<Db>,
    max_age: Duration,
    pub mode: RegistryMode,
    current: RwLock<Copy>,
    /// Held by the one request that reloads; the others use the current copy meanwhile.
    reloading: Mutex<()>,
}

struct Copy {
    registry: Arc<Registry>,
    /// When the copy was loaded (or a load last failed); None: never tried.
    tried_at: Option<Instant>,
}

impl RegistryCache {
    pub fn new(db: Arc<Db>, max_age: Duration, mode: RegistryMode) -> Self {
        Self {
            db,
            max_age,
            mode,
            current: RwLock::new(Copy {
                registry: Arc::new(Registry::default()),
                tried_at: None,
            }),
            reloading: Mutex::new(()),
        }
    }

    /// The registry to check a request's events against.
    pub async fn get(&self) -> Arc<Registry> {
        let (registry, fresh) = self.read(Instant::now());
        if fresh {
            return registry;
        }
        let Ok(_reloading) = self.reloading.try_lock() else {
            return registry;
        };
        // Another request may have reloaded between the read and the lock.
        let (registry, fresh) = self.read(Instant::now());
        if fresh {
            return registry;
        }
        let loaded = eis_store::registry::load(&self.db).await;
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        current.tried_at = Some(Instant::now());
        match loaded {
            Ok(registry) => current.registry = Arc::new(registry),
            Err(err) => tracing::warn!(
                error = %eis_runtime::telemetry::chain(&err),
                "the experiment registry could not be reloaded; the last copy stays in use"
            ),
        }
        Arc::clone(&current.registry)
    }

    fn read(&self, now: Instant) -> (Arc<Registry>, bool) {
        let current = self.current.read().unwrap_or_else(|p| p.into_inner());
        let fresh = current
            .tried_at
            .is_some_and(|at| now.duration_since(at) < self.max_age);
        (Arc::clone(&current.registry), fresh)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eis_store::DbConfig;

    /// A database address that refuses connections: every load fails at once.
    fn unreachable(max_age: Duration) -> RegistryCache {
        let config = DbConfig {
            url: "postgres://eis@127.0.0.1:1/eis?sslmode=disable".into(),
            ca_file: None,
            secret_arn: None,
            connect_timeout: Duration::from_millis(200),
            query_timeout: Duration::from_millis(200),
        };
        let db = Arc::new(Db::new(&config).expect("config"));
        RegistryCache::new(db, max_age, RegistryMode::Flag)
    }

    #[tokio::test]
    async fn a_failed_load_leaves_no_checks_and_is_retried_after_the_max_age() {
        let cache = unreachable(Duration::from_millis(300));
        assert!(cache.get().await.is_empty());
        let tried = || cache.current.read().expect("lock").tried_at;
        let first = tried();
        assert!(first.is_some());
        // Within the age: no new attempt.
        assert!(cache.get().await.is_empty());
        assert_eq!(tried(), first);
        // Past it: tried again.
        tokio::time::sleep(Duration::from_millis(350)).await;
        cache.get().await;
        assert!(tried() > first);
    }
}

//! The experiment registry as the ingest sees it: a copy kept in the function and reloaded
//! once it is older than the configured age (cache.rs), so that no request pays a database
//! round trip for it except the one that finds the copy stale. A failed reload keeps the last
//! copy and is retried after the same age; it never fails a request.
//!
//! Before the first successful load there is no copy, which is not an empty registry (an
//! empty one checks nothing, by design): every request that needs the registry tries the load
//! again (one at a time; a request that waited for an attempt takes its outcome), and an event
//! naming experiments is never taken as checked meanwhile: refused with `registry_unavailable`
//! (503) in reject mode, stored with the flag `registry_unavailable` in flag mode.

use std::sync::Arc;
use std::time::Duration;

use eis_contract::{Event, Flag, Registry, RegistryMode, Rejection};
use eis_store::{Db, StoreError};

use crate::cache::{Cache, Load};

pub struct RegistryCache {
    registry: Cache<Registry>,
    pub mode: RegistryMode,
}

impl Load for Registry {
    const WHAT: &'static str = "the experiment registry";

    async fn load(db: &Arc<Db>) -> Result<Self, StoreError> {
        eis_store::registry::load(db).await
    }
}

/// The function holds no registry copy yet: its first load failed (answered 503
/// `registry_unavailable` in reject mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistryUnavailable;

impl RegistryCache {
    /// The registry's copy on `db`, reloaded once older than `max_age`.
    pub fn new(db: Arc<Db>, max_age: Duration, mode: RegistryMode) -> Self {
        Self {
            registry: Cache::new(db, max_age),
            mode,
        }
    }

    /// The registry to check a request's events against, loaded or reloaded first when
    /// needed; None while it has never been loaded.
    pub async fn get(&self) -> Option<Arc<Registry>> {
        self.registry.get().await
    }

    /// The copy held now, without loading (for metric dimensions: never a reason to load).
    pub fn held(&self) -> Option<Arc<Registry>> {
        self.registry.held()
    }

    /// A contract-valid event as the deployment takes it, given the copy `registry` (from
    /// [`RegistryCache::get`]). An event naming no experiment needs no registry. Without a
    /// copy, the others are refused (reject mode) or stored flagged `registry_unavailable`.
    pub fn admit(
        &self,
        registry: Option<&Registry>,
        mut event: Event,
    ) -> Result<Result<Event, Rejection>, RegistryUnavailable> {
        match (registry, self.mode) {
            (Some(registry), mode) => Ok(registry.admit(event, mode)),
            (None, _) if event.experiments.is_empty() => Ok(Ok(event)),
            (None, RegistryMode::Reject) => Err(RegistryUnavailable),
            (None, RegistryMode::Flag) => {
                event.flags.push(Flag::RegistryUnavailable);
                event.flags.sort();
                event.flags.dedup();
                Ok(Ok(event))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eis_store::DbConfig;

    /// A cache whose database is at `port` of 127.0.0.1.
    fn at_port(port: u16, max_age: Duration, mode: RegistryMode) -> RegistryCache {
        let config = DbConfig {
            url: format!("postgres://eis@127.0.0.1:{port}/eis?sslmode=disable"),
            ca_file: None,
            secret_arn: None,
            connect_timeout: Duration::from_millis(200),
            query_timeout: Duration::from_millis(200),
            idle_probe_after: Duration::from_secs(60),
        };
        let db = Arc::new(Db::new(&config).expect("config"));
        RegistryCache::new(db, max_age, mode)
    }

    /// A database address that refuses connections: every load fails at once.
    fn unreachable(max_age: Duration, mode: RegistryMode) -> RegistryCache {
        at_port(1, max_age, mode)
    }

    #[tokio::test]
    async fn requests_waiting_for_a_first_load_take_its_outcome() {
        // A "database" that accepts connections and never answers: each load attempt is one
        // connection, which fails at the connect timeout.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = Arc::clone(&accepted);
        let silent = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                open.push(socket);
            }
        });
        let cache = at_port(port, Duration::from_secs(3600), RegistryMode::Reject);
        // Four requests at once: the first loads, the others wait for its outcome.
        let got = tokio::join!(cache.get(), cache.get(), cache.get(), cache.get());
        assert!(got.0.is_none() && got.1.is_none() && got.2.is_none() && got.3.is_none());
        let attempts = || accepted.load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!(attempts(), 1, "one attempt for the four");
        // A later request tries again.
        assert!(cache.get().await.is_none());
        assert_eq!(attempts(), 2);
        silent.abort();
    }

    #[tokio::test]
    async fn a_failed_first_load_is_no_registry_and_is_retried_by_the_next_request() {
        let cache = unreachable(Duration::from_secs(3600), RegistryMode::Flag);
        assert!(cache.get().await.is_none());
        let tried = || cache.registry.tried_at();
        let first = tried();
        assert!(first.is_some());
        // Well within the max age, the next request tries again: there is no copy to use.
        assert!(cache.get().await.is_none());
        assert!(tried() > first);
        assert!(cache.held().is_none());
    }

    fn event(experiments: usize) -> Event {
        let now = chrono::Utc::now();
        let mut text = serde_json::json!({
            "event_type": "pantry_updated", "unit_type": "user", "unit_id": "u",
            "timestamp": now.to_rfc3339(),
        });
        let refs: Vec<_> = (0..experiments)
            .map(|i| {
                serde_json::json!({
                    "experiment_id": uuid::Uuid::from_u128(i as u128 + 1),
                    "variant_id": uuid::Uuid::from_u128(0xa),
                })
            })
            .collect();
        text["experiments"] = refs.into();
        let bytes = serde_json::to_vec(&text).expect("json");
        eis_contract::validate_event(&bytes, now, &Default::default()).expect("valid")
    }

    #[test]
    fn without_a_copy_no_event_naming_experiments_passes_as_checked() {
        let flag = unreachable(Duration::from_secs(60), RegistryMode::Flag);
        let reject = unreachable(Duration::from_secs(60), RegistryMode::Reject);
        let unavailable = Flag::RegistryUnavailable;
        // (cache, experiments named, the outcome: Some(has the flag) or None: refused)
        let cases = [
            (&flag, 0, Some(false)),
            (&flag, 2, Some(true)),
            (&reject, 0, Some(false)),
            (&reject, 1, None),
        ];
        for (i, (cache, experiments, want)) in cases.into_iter().enumerate() {
            let got = match cache.admit(None, event(experiments)) {
                Ok(Ok(e)) => Some(e.flags.contains(&unavailable)),
                Ok(Err(r)) => panic!("case {i}: rejected {}", r.code),
                Err(RegistryUnavailable) => None,
            };
            assert_eq!(got, want, "case {i}");
        }
        // A loaded registry, even empty, checks as before: no flag.
        let admitted = flag.admit(Some(&Registry::default()), event(1));
        assert!(matches!(admitted, Ok(Ok(e)) if !e.flags.contains(&unavailable)));
    }
}

//! PostgreSQL for the tests: a migrated database of each test's own, dropped when the test
//! ends (pass or fail), and plain clients and queries on it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use eis_store::{migrate, Db, DbConfig};

use crate::{clean_up, stack_var, unique};

/// DbConfig for `url` with the timeouts tests want: short enough to see faults quickly, long
/// enough for a connect on a loaded 2-core CI machine (2 s was seen to time out there).
pub fn db_config(url: String) -> DbConfig {
    DbConfig {
        url,
        ca_file: None,
        secret_arn: None,
        connect_timeout: Duration::from_secs(5),
        query_timeout: Duration::from_secs(5),
        idle_probe_after: Duration::from_secs(60),
    }
}

/// Replaces the database name of a postgres URL.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let prefix = match base.rfind('/') {
        Some(i) if i > "postgres://".len() => &base[..i],
        _ => base,
    };
    match query {
        Some(q) => format!("{prefix}/{name}?{q}"),
        None => format!("{prefix}/{name}"),
    }
}

/// A fresh, migrated database of its own, dropped with this value (also when the test
/// panics); databases left by killed runs are removed by later runs after an hour.
pub struct TestDb {
    pub name: String,
    pub url: String,
    admin_url: String,
}

impl TestDb {
    pub async fn create() -> TestDb {
        let admin_url = stack_var("DATABASE_URL");
        let name = unique("eis_t_");
        let admin = connect(&admin_url).await;
        remove_stale_databases(&admin).await;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create test database");
        let url = with_database(&admin_url, &name);
        let db = Db::new(&db_config(url.clone())).expect("db config");
        migrate::apply(&db).await.expect("migrations apply");
        TestDb {
            name,
            url,
            admin_url,
        }
    }

    pub fn config(&self) -> DbConfig {
        db_config(self.url.clone())
    }

    pub fn db(&self) -> Arc<Db> {
        Arc::new(Db::new(&self.config()).expect("db config"))
    }

    /// A plain client for the test's own queries.
    pub async fn client(&self) -> tokio_postgres::Client {
        connect(&self.url).await
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        clean_up(async move {
            if let Ok((admin, connection)) =
                tokio_postgres::connect(&admin_url, tokio_postgres::NoTls).await
            {
                tokio::spawn(connection);
                let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                if let Err(e) = admin.batch_execute(&drop).await {
                    eprintln!("could not drop test database {name}: {e}");
                }
            }
        });
    }
}

/// The rows of `sql` (no parameters) as pairs of its first two columns.
pub async fn pairs<A, B>(client: &tokio_postgres::Client, sql: &str) -> Vec<(A, B)>
where
    A: for<'a> tokio_postgres::types::FromSql<'a>,
    B: for<'a> tokio_postgres::types::FromSql<'a>,
{
    client
        .query(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
    tokio::spawn(connection);
    client
}

async fn remove_stale_databases(admin: &tokio_postgres::Client) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let rows = admin
        .query(
            "SELECT datname FROM pg_database WHERE datname LIKE 'eis\\_t\\_%'",
            &[],
        )
        .await
        .expect("list databases");
    for row in rows {
        let name: String = row.get(0);
        let created: u64 = name
            .trim_start_matches("eis_t_")
            .split('_')
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or(now);
        if now.saturating_sub(created) > 3600 {
            let _ = admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await;
        }
    }
}

/// The host:port of a postgres URL.
pub fn pg_addr(url: &str) -> SocketAddr {
    let config: tokio_postgres::Config = url.parse().expect("postgres url");
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "127.0.0.1".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let host = if host == "localhost" {
        "127.0.0.1".into()
    } else {
        host
    };
    format!("{host}:{port}").parse().expect("socket address")
}

/// Rows of exp.events and how many are not handed off yet (keys in exp.pending_handoffs).
pub async fn stored_counts(db: &TestDb) -> (i64, i64) {
    let row = db
        .client()
        .await
        .query_one(
            "SELECT (SELECT count(*) FROM exp.events),
                    (SELECT coalesce(sum(cardinality(event_ids)), 0)::bigint
                     FROM exp.pending_handoffs)",
            &[],
        )
        .await
        .expect("count");
    (row.get(0), row.get(1))
}

//! `make migrate`: applies the pending migrations to DATABASE_URL.

use anyhow::Context;
use eis_store::{migrate, Db, DbConfig};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let config = DbConfig::from_env()?;
    let db = Db::new(&config)?;
    let applied = migrate::run(&db).await.context("migrating")?;
    if applied.is_empty() {
        println!("migrations: database is up to date");
    }
    for name in applied {
        println!("migrations: applied {name}");
    }
    Ok(())
}

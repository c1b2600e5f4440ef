//! `make migrate`: applies the pending migrations to DATABASE_URL; with the role secrets
//! set, as the deploy does (eis_store::migrate::deploy).

use anyhow::Context;
use eis_store::{migrate, DbConfig, RoleSecrets};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let config = DbConfig::from_env()?;
    let secrets = RoleSecrets::from_env()?;
    let applied = migrate::deploy(&config, secrets.as_ref())
        .await
        .context("migrating")?;
    if applied.is_empty() {
        println!("migrations: database is up to date");
    }
    for name in applied {
        println!("migrations: applied {name}");
    }
    Ok(())
}

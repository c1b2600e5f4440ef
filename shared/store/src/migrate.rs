//! Schema migrations: the SQL files of `migrations/`, applied in order by refinery and
//! recorded in its history table. refinery itself does not lock, so the run holds a
//! session-level advisory lock: two processes migrating at once apply each file once.

use crate::config::{DbConfig, RoleSecrets};
use crate::db::{read_secret, Db};
use crate::error::StoreError;
use crate::roles::{self, LoginUsers};

mod embedded {
    refinery::embed_migrations!("../../migrations");
}

/// Arbitrary but fixed: the advisory lock key that serialises migration runs.
const MIGRATION_LOCK: i64 = 0x0045_4953_5f6d_6967; // "EIS_mig"

/// The deploy's migration step. With role secrets (in AWS) the master user creates the login
/// users from their secrets, the application user logs in once, then the migrator applies the
/// migrations; the master user does nothing else. A refused login names its user and secret
/// (`StoreError::LoginRefused`). Without them (locally) DATABASE_URL's user applies the migrations.
pub async fn deploy(
    db: &DbConfig,
    secrets: Option<&RoleSecrets>,
) -> Result<Vec<String>, StoreError> {
    let Some(secrets) = secrets else {
        return apply(&Db::new(db)?).await;
    };
    let with_secret = |arn: &str| DbConfig {
        secret_arn: Some(arn.to_string()),
        ..db.clone()
    };
    // Each secret is read once: the migrator's credentials serve both its provisioning and
    // its connection.
    let users = LoginUsers {
        app: read_secret(&secrets.app_arn).await?,
        migrator: read_secret(&secrets.migrator_arn).await?,
    };
    let admin = Db::new(&with_secret(&secrets.admin_arn))?;
    roles::provision(&admin.connect().await?, &users).await?;
    // The application's login is tried too, before anything changes: behind RDS Proxy its
    // secret must be registered as well, and a refusal here (naming the secret) fails the
    // deploy instead of every request after it.
    Db::with_credentials(&with_secret(&secrets.app_arn), users.app)?
        .connect()
        .await?;
    let migrator = Db::with_credentials(&with_secret(&secrets.migrator_arn), users.migrator)?;
    apply(&migrator).await
}

/// Applies the pending migrations; returns the names of those applied by this call.
pub async fn apply(db: &Db) -> Result<Vec<String>, StoreError> {
    // A connection of its own: refinery needs `&mut Client` and the lock belongs to a session.
    let mut client = db.connect().await?;
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(StoreError::from_pg)?;
    // A rolled-back deploy runs older code against a newer schema: migrations are
    // additive, so history entries this build does not know are not an error.
    let mut runner = embedded::migrations::runner().set_abort_missing(false);
    let report = runner
        .set_migration_table_name("eis_schema_history")
        .run_async(&mut client)
        .await;
    // Unlock even when the run failed; closing the connection would release it too.
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(StoreError::from_pg);
    let report = report.map_err(|e| StoreError::other("migration failed").caused_by(e))?;
    unlocked?;
    Ok(report
        .applied_migrations()
        .iter()
        .map(|m| m.to_string())
        .collect())
}

//! The migrator's settings, read once at start from the environment; every error names the
//! variable at fault. It reads what the migrations and registry loads need, nothing else.

use eis_runtime::EnvError;
use eis_store::{DbConfig, RoleSecrets};

#[derive(Debug, Clone)]
pub struct Config {
    /// How to reach PostgreSQL (`DATABASE_URL`, `EIS_PG_CA_FILE`, `EIS_DB_SECRET_ARN`, the
    /// `EIS_DB_*` timeouts).
    pub db: DbConfig,
    /// The master user's and the migrator user's secrets (`EIS_DB_ADMIN_SECRET_ARN`,
    /// `EIS_DB_MIGRATOR_SECRET_ARN`): set in AWS; unset locally, where DATABASE_URL's user
    /// migrates.
    pub roles: Option<RoleSecrets>,
}

impl Config {
    pub fn from_env() -> Result<Self, EnvError> {
        Ok(Self {
            db: DbConfig::from_env()?,
            roles: RoleSecrets::from_env()?,
        })
    }
}

//! The login users of the group roles of migrations/V4__roles.sql (eis_app, eis_migrator),
//! made from their secrets by the RDS master user before the migrations run as the migrator.
//! Passwords reach the server only as SCRAM verifiers, so no statement log can hold one.

use tokio_postgres::Client;

use crate::db::Credentials;
use crate::error::StoreError;

/// The application's and the migrator's credentials, from their secrets.
pub struct LoginUsers {
    pub app: Credentials,
    pub migrator: Credentials,
}

/// Creates the group roles and the two login users when absent, sets the users' passwords
/// from their secrets (a rotated secret takes effect on the next deploy) and grants what the
/// migrator needs to create the schema and the migration history. Idempotent.
pub async fn provision(admin: &Client, users: &LoginUsers) -> Result<(), StoreError> {
    admin
        .batch_execute(&provision_sql(users)?)
        .await
        .map_err(StoreError::from_pg)
}

/// The statements of [`provision`]: pure, so that the quoting is tested without a server.
fn provision_sql(users: &LoginUsers) -> Result<String, StoreError> {
    let app = user_name(&users.app.username)?;
    let migrator = user_name(&users.migrator.username)?;
    if app == migrator {
        return Err(StoreError::config(format!(
            "the application and migrator secrets name the same user {app:?}"
        )));
    }
    let app_verifier = verifier(&users.app.password);
    let migrator_verifier = verifier(&users.migrator.password);
    // One simple-query batch runs as one transaction: all of it or none.
    Ok(format!(
        r#"DO $$
BEGIN
    IF current_user IN ('{app}', '{migrator}') THEN
        RAISE EXCEPTION 'the login users must not be the user that provisions them (%)', current_user;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'eis_migrator') THEN
        CREATE ROLE eis_migrator NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'eis_app') THEN
        CREATE ROLE eis_app NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{migrator}') THEN
        CREATE ROLE "{migrator}" LOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{app}') THEN
        CREATE ROLE "{app}" LOGIN;
    END IF;
    EXECUTE format('GRANT CREATE ON DATABASE %I TO eis_migrator', current_database());
END $$;
ALTER ROLE "{migrator}" WITH LOGIN PASSWORD '{migrator_verifier}';
ALTER ROLE "{app}" WITH LOGIN PASSWORD '{app_verifier}';
GRANT eis_migrator TO "{migrator}";
GRANT eis_app TO "{app}";
-- The migrator's sessions act as eis_migrator, so that everything they create (and the
-- migration history in public) is owned by the group role, whoever logs in.
ALTER ROLE "{migrator}" SET role = 'eis_migrator';
GRANT CREATE ON SCHEMA public TO eis_migrator;
"#
    ))
}

/// A user name that needs no escaping anywhere in the statements above; the group roles
/// themselves are refused (they must stay NOLOGIN).
fn user_name(name: &str) -> Result<&str, StoreError> {
    let mut chars = name.chars();
    let well_formed = name.len() <= 63
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !well_formed || name == "eis_app" || name == "eis_migrator" {
        return Err(StoreError::config(format!(
            "database user name {name:?} in a secret must match [a-z_][a-z0-9_]{{0,62}} and not be eis_app or eis_migrator"
        )));
    }
    Ok(name)
}

/// The SCRAM-SHA-256 verifier PostgreSQL stores; its characters (base64, `$`, `:`) need no
/// escaping inside a string literal.
fn verifier(password: &str) -> String {
    postgres_protocol::password::scram_sha_256(password.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users(app: &str, migrator: &str) -> LoginUsers {
        let credentials = |name: &str| Credentials {
            username: name.to_string(),
            password: "it's a 'quoted' secret".to_string(),
        };
        LoginUsers {
            app: credentials(app),
            migrator: credentials(migrator),
        }
    }

    #[test]
    fn passwords_reach_the_server_only_as_verifiers() {
        let sql = provision_sql(&users("eis_ingest", "eis_deploy")).expect("valid names");
        assert!(!sql.contains("quoted"), "{sql}");
        assert_eq!(sql.matches("PASSWORD 'SCRAM-SHA-256$4096:").count(), 2);
        assert!(sql.contains("GRANT eis_app TO \"eis_ingest\";"));
        assert!(sql.contains("GRANT eis_migrator TO \"eis_deploy\";"));
    }

    #[test]
    fn user_names_are_checked_before_any_statement() {
        for (app, migrator) in [
            ("eis_ingest", "eis_ingest"),
            ("eis_app", "eis_deploy"),
            ("eis_ingest", "eis_migrator"),
            ("Ingest", "eis_deploy"),
            ("eis\"; DROP ROLE x; --", "eis_deploy"),
            ("", "eis_deploy"),
            ("9lives", "eis_deploy"),
        ] {
            assert!(
                matches!(
                    provision_sql(&users(app, migrator)),
                    Err(StoreError::Config(..))
                ),
                "{app} / {migrator}"
            );
        }
    }
}

//! A login the server refuses (here a user it does not know; in AWS typically RDS Proxy
//! without the user's secret in its auth list) names the user, the secret it came from and
//! the command that registers the secret, with a stable code at the archiver's boundary: the
//! deploy's migrator connects through this same `Db::connect`.

use super::*;
use archiver::error::ArchiveError;
use eis_store::db::Credentials;
use eis_store::DbConfig;

#[tokio::test]
async fn a_refused_login_names_the_user_the_secret_and_the_fix() {
    let arn = "arn:aws:secretsmanager:us-east-1:000000000000:secret:eis/eis_deploy-AbCdEf";
    let cfg = DbConfig {
        secret_arn: Some(arn.into()),
        ..db_config(stack_var("DATABASE_URL"))
    };
    let user = format!("eis_unregistered_{}", std::process::id());
    let credentials = Credentials {
        username: user.clone(),
        password: "not-the-secret".into(),
    };
    let db = Db::with_credentials(&cfg, credentials).expect("config");
    let err = db
        .connect()
        .await
        .expect_err("the server refuses a user it does not know");
    let text = err.to_string();
    assert!(matches!(err, StoreError::LoginRefused(..)), "{text}");
    for needed in [&user, arn, "28000", "aws rds modify-db-proxy", "--auth"] {
        assert!(text.contains(needed), "{text:?} lacks {needed:?}");
    }
    let at_the_boundary = ArchiveError::from(err);
    assert_eq!(at_the_boundary.code(), "database_login_refused");
    assert!(
        !at_the_boundary.is_retryable(),
        "a retry cannot register a secret"
    );
}

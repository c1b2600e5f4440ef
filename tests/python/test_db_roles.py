"""The database roles of migrations/V4__roles.sql (and V5's pending hand-offs), on the local
PostgreSQL.

The migrations run through the project's own runner (the migrator binary), both ways the fixture
`migrated` describes. A login user in eis_app must then be able to do what ingest and the
archiver do, and nothing that changes or destroys the schema: no DROP, TRUNCATE, ALTER, DELETE,
CREATE, and no UPDATE of exp.events at all (the hand-off lives in exp.pending_handoffs).
"""

import json
import os
import subprocess
import urllib.parse as u
import uuid
from pathlib import Path

import boto3
import pytest

from conftest import ROOT

DENIED = ("permission denied", "must be owner")


def url_for(base: str, user: str, db: str) -> str:
    p = u.urlsplit(base)
    netloc = f"{user}@{p.hostname}:{p.port}"
    return u.urlunsplit(p._replace(netloc=netloc, path=f"/{db}"))


def psql(url: str, sql: str) -> subprocess.CompletedProcess:
    return subprocess.run(["psql", url, "-X", "-Atq", "-v", "ON_ERROR_STOP=1", "-c", sql],
                          capture_output=True, text=True, timeout=60)


def ok(url: str, sql: str) -> str:
    r = psql(url, sql)
    assert r.returncode == 0, f"{sql}\n{r.stderr}"
    return r.stdout.strip()


def secret(env: dict, name: str, user: str, password: str) -> str:
    """A secret on moto shaped like RDS's (username, password); returns its ARN."""
    client = boto3.client("secretsmanager", endpoint_url=env["AWS_ENDPOINT_URL"],
                          region_name=env.get("AWS_REGION", "us-east-1"),
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    answer = client.create_secret(Name=name, SecretString=json.dumps(
        {"username": user, "password": password}))
    return answer["ARN"]


def run_migrator(env: dict, url: str, extra: dict) -> str:
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    migrate = target / "debug" / "migrator"
    assert migrate.exists(), f"{migrate} missing: `make up` builds it"
    run = subprocess.run([str(migrate)], env={**env, "DATABASE_URL": url, **extra},
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return run.stdout


@pytest.fixture(params=["as-master", "deploy"])
def migrated(env, request):
    """A database migrated the two ways EIS does it; yields (admin url, db, app user url).

    as-master: `make migrate` as an RDS-master-like user (LOGIN CREATEROLE, owner of its
    database, not a superuser), then a login user joins eis_app by hand.
    deploy: what the deploy's migrator function does (eis_store::migrate::deploy), with three
    secrets on moto: the master user's creates the application and migrator login users, and
    the migrator applies the migrations.
    """
    suffix = uuid.uuid4().hex[:10]
    db, master, app = f"eis_roles_{suffix}", f"eis_master_{suffix}", f"eis_app_{suffix}"
    migrator = f"eis_deploy_{suffix}"
    admin = url_for(env["DATABASE_URL"], "postgres", "postgres")
    ok(admin, f"CREATE ROLE {master} LOGIN CREATEROLE")
    try:
        ok(admin, f"CREATE DATABASE {db} OWNER {master}")
        if request.param == "as-master":
            run_migrator(env, url_for(env["DATABASE_URL"], master, db), {})
            ok(admin, f"CREATE ROLE {app} LOGIN IN ROLE eis_app")
        else:
            secrets = {
                "EIS_DB_ADMIN_SECRET_ARN": secret(env, f"master-{suffix}", master, "m-pw"),
                "EIS_DB_MIGRATOR_SECRET_ARN": secret(env, f"migrator-{suffix}", migrator, "d-pw"),
                "EIS_DB_SECRET_ARN": secret(env, f"app-{suffix}", app, "a-pw"),
            }
            # As in the template: the URL names no user; each step's secret does.
            p = u.urlsplit(env["DATABASE_URL"])
            url = u.urlunsplit(p._replace(netloc=f"{p.hostname}:{p.port}", path=f"/{db}"))
            run_migrator(env, url, secrets)
            request.node.deploy = (url, secrets, migrator)
        yield admin, db, url_for(env["DATABASE_URL"], app, db)
    finally:
        psql(admin, f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        for role in (app, migrator, master):
            psql(admin, f"DROP ROLE IF EXISTS {role}")


INSERT = """INSERT INTO exp.events (event_id, event_type, unit_type, unit_id, "timestamp")
            VALUES (gen_random_uuid(), 'exposure', 'user', 'u1', now() - interval '1 day')
            ON CONFLICT DO NOTHING RETURNING event_id"""


def test_the_application_role_does_what_ingest_and_the_archiver_do(migrated):
    _, _, app = migrated
    assert ok(app, INSERT)
    # The hand-off: the insert's pending row, the sweep's claim and settle, the ingest's delete.
    pending = ok(app, """INSERT INTO exp.pending_handoffs (event_ids, timestamps)
                         SELECT array_agg(event_id), array_agg("timestamp") FROM exp.events
                         RETURNING id""")
    ok(app, f"UPDATE exp.pending_handoffs SET claimed_until = now() WHERE id = {pending}")
    assert ok(app, f"DELETE FROM exp.pending_handoffs WHERE id = {pending} RETURNING id") == pending
    # Maintenance through the SECURITY DEFINER functions: a partition appears, the row moves in.
    assert ok(app, "SELECT exp.ensure_day_partition((now() - interval '1 day')::date)") == "t"
    ok(app, "SELECT * FROM exp.drop_expired_partitions(90)")
    assert ok(app, "SELECT count(*) FROM exp.events") == "1"
    ok(app, "INSERT INTO exp.event_ids VALUES (gen_random_uuid(), now(), '\\x00')")
    assert ok(app, "SELECT count(*) FROM exp.event_ids") == "1"
    # The archiver's bookkeeping of hours: record (upsert), then clear.
    upsert = """INSERT INTO exp.archive_hours (hour) VALUES (date_trunc('hour', now()))
                ON CONFLICT (hour) DO UPDATE SET version = exp.archive_hours.version + 1"""
    ok(app, upsert)
    ok(app, upsert)
    assert ok(app, "SELECT version FROM exp.archive_hours") == "2"
    ok(app, "DELETE FROM exp.archive_hours")


@pytest.mark.parametrize("sql", [
    "DROP TABLE exp.events",
    "DROP TABLE exp.events_default",
    "DROP SCHEMA exp CASCADE",
    "DROP FUNCTION exp.ensure_day_partition(date)",
    "TRUNCATE exp.events",
    "TRUNCATE exp.events_default",
    "ALTER TABLE exp.events ADD COLUMN x integer",
    "ALTER TABLE exp.events DETACH PARTITION exp.events_default",
    "ALTER FUNCTION exp.drop_expired_partitions(integer, timestamptz, integer) SECURITY INVOKER",
    "DELETE FROM exp.events",
    "DELETE FROM exp.event_ids",
    "UPDATE exp.event_ids SET digest = ''",
    "UPDATE exp.events SET event_type = 'x'",
    "UPDATE exp.events SET received_at = now()",
    "TRUNCATE exp.pending_handoffs",
    "DROP TABLE exp.pending_handoffs",
    "CREATE TABLE exp.scratch (x integer)",
    "CREATE INDEX ON exp.events (unit_id)",
])
def test_the_application_role_cannot_change_or_destroy_the_schema(migrated, sql):
    _, _, app = migrated
    ok(app, INSERT)
    r = psql(app, sql)
    assert r.returncode != 0, f"{sql} was allowed"
    assert any(d in r.stderr for d in DENIED), r.stderr
    assert ok(app, "SELECT count(*) FROM exp.events") == "1"


def test_the_migrator_owns_everything_and_later_tables_are_covered(migrated):
    admin, db, app = migrated
    db_admin = url_for(admin, "postgres", db)
    owners = ok(db_admin, """SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class
                             WHERE relnamespace = 'exp'::regnamespace AND relkind IN ('r', 'p')""")
    assert owners == "eis_migrator"
    assert ok(db_admin, "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'exp'") == "eis_migrator"
    definer = ok(db_admin, """SELECT string_agg(proname || ':' || prosecdef, ',' ORDER BY proname)
                              FROM pg_proc WHERE pronamespace = 'exp'::regnamespace""")
    assert definer == ("drop_expired_partitions:true,earliest:false,ensure_day_partition:true,"
                       "erase_unit:true,health_add_counted:false,health_update_quantiles:false,"
                       "load_event_schemas:true,load_experiments:false,metric_bucket:false,"
                       "metric_bucket_value:false")
    # A table a later migration creates (as the migrator) is readable and writable by the app.
    ok(db_admin, "SET ROLE eis_migrator; CREATE TABLE exp.later (x integer)")
    ok(app, "INSERT INTO exp.later VALUES (1)")
    assert ok(app, "SELECT count(*) FROM exp.later") == "1"
    assert psql(app, "DROP TABLE exp.later").returncode != 0


def test_the_registry_is_the_operators_and_the_reader_only_reads(migrated):
    admin, db, app = migrated
    db_admin = url_for(admin, "postgres", db)
    # The functions read the registry and rewrite the health job's tables (V6)...
    assert ok(app, "SELECT count(*) FROM exp.experiments") == "0"
    ok(app, "DELETE FROM exp.assignments; UPDATE exp.health_progress SET processed_to = NULL; "
            "DELETE FROM exp.variant_health; DELETE FROM exp.experiment_health")
    # ...but never change the registry, not even through its loader.
    for sql in ["INSERT INTO exp.experiments (experiment_id, name, unit_type, status, starts_at) "
                "VALUES (gen_random_uuid()::text, 'x', 'user', 'running', now())",
                "SELECT exp.load_experiments('[]')"]:
        r = psql(app, sql)
        assert r.returncode != 0 and any(d in r.stderr for d in DENIED), (sql, r.stderr)
    # eis_reader (Metabase, docs/metabase.md) reads everything in exp and writes nothing.
    ok(db_admin, "GRANT eis_reader TO CURRENT_USER")
    assert ok(db_admin, "SET ROLE eis_reader; SELECT count(*) FROM exp.experiment_health") == "0"
    assert ok(db_admin, "SET ROLE eis_reader; SELECT count(*) FROM exp.events") != ""
    for sql in ["INSERT INTO exp.context_hourly VALUES (now(), 1, 1)", "DELETE FROM exp.assignments",
                "SELECT exp.load_experiments('[]')"]:
        r = psql(db_admin, f"SET ROLE eis_reader; {sql}")
        assert r.returncode != 0 and any(d in r.stderr for d in DENIED), (sql, r.stderr)


PLAN = ('{"types": [{"event_type": "pantry_updated", "mode": "flag", '
        '"versions": [{"version": "1-0-0", "payload": true}]}]}')


def test_the_plan_is_loaded_only_through_its_loader_and_its_health_is_the_jobs(migrated):
    admin, db, app = migrated
    db_admin = url_for(admin, "postgres", db)
    # The archiver loads a plan ({"action":"plan"}) through the SECURITY DEFINER loader (V13)...
    assert ok(app, f"SELECT exp.load_event_schemas('{PLAN}')") == "1"
    assert ok(app, "SELECT count(*) FROM exp.event_schemas") == "1"
    assert ok(app, "SELECT unplanned FROM exp.event_plan") == "allow"
    # ...and never writes the plan's tables itself.
    for sql in ["INSERT INTO exp.event_types VALUES ('x', 'flag')",
                "UPDATE exp.event_schemas SET payload_schema = 'false'",
                "DELETE FROM exp.event_schemas",
                "UPDATE exp.event_plan SET unplanned = 'reject'"]:
        r = psql(app, sql)
        assert r.returncode != 0 and any(d in r.stderr for d in DENIED), (sql, r.stderr)
    # The health job counts and ages the plan's health.
    ok(app, "INSERT INTO exp.plan_daily VALUES (current_date, 'pantry_updated', '1-0-0', 2, 1); "
            "UPDATE exp.plan_daily SET events = 3; "
            "INSERT INTO exp.plan_daily_paths VALUES (current_date, 'pantry_updated', '1-0-0', '/payload', 1); "
            "DELETE FROM exp.plan_daily_paths")
    # eis_reader reads the plan and its health, and cannot load one.
    ok(db_admin, "GRANT eis_reader TO CURRENT_USER")
    assert ok(db_admin, "SET ROLE eis_reader; SELECT count(*) FROM exp.event_schemas") == "1"
    assert ok(db_admin, "SET ROLE eis_reader; SELECT events FROM exp.plan_daily") == "3"
    r = psql(db_admin, f"SET ROLE eis_reader; SELECT exp.load_event_schemas('{PLAN}')")
    assert r.returncode != 0 and any(d in r.stderr for d in DENIED), r.stderr


@pytest.mark.parametrize("migrated", ["deploy"], indirect=True)
def test_the_deploy_runs_the_migrations_as_the_migrator_and_is_repeatable(migrated, env, request):
    admin, db, app = migrated
    url, secrets, migrator = request.node.deploy
    db_admin = url_for(admin, "postgres", db)
    # The migration history, like the schema, belongs to the group role, not to the login
    # user or the master; the master user owns nothing the migrations made.
    assert ok(db_admin, "SELECT pg_get_userbyid(relowner) FROM pg_class "
                        "WHERE oid = 'public.eis_schema_history'::regclass") == "eis_migrator"
    app_user = u.urlsplit(app).username
    members = ok(db_admin, f"""SELECT string_agg(r.rolname || '>' || m.rolname, ',' ORDER BY r.rolname)
                              FROM pg_auth_members am JOIN pg_roles r ON r.oid = am.member
                              JOIN pg_roles m ON m.oid = am.roleid
                              WHERE r.rolname IN ('{app_user}', '{migrator}')""")
    assert members == f"{app_user}>eis_app,{migrator}>eis_migrator"
    before = ok(db_admin, f"SELECT rolpassword FROM pg_authid WHERE rolname = '{app_user}'")
    assert before.startswith("SCRAM-SHA-256$")
    # A second deploy applies nothing and sets the passwords afresh (a rotated secret).
    assert "up to date" in run_migrator(env, url, secrets)
    after = ok(db_admin, f"SELECT rolpassword FROM pg_authid WHERE rolname = '{app_user}'")
    assert after.startswith("SCRAM-SHA-256$") and after != before
    ok(app, INSERT)

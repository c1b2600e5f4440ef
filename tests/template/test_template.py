"""The deployment contract of template.yaml, so that a careless edit fails CI.

Every check is a function of the parsed template. `test_check_holds` runs each on the real
template; `test_check_catches` runs each on a copy broken on purpose (MUTATIONS) and expects it
to fail, which proves that the assertion can actually go red.
"""

import copy
import json
import re

import pytest

from conftest import EMF_NAMESPACE, ROOT, TOPICS, delete_at, load_cfn, mutation_tests, notifies, set_at

# Each function its own binary (functions/<binary>).
FUNCTIONS = {"IngestFunction": "ingest", "ArchiverFunction": "archiver", "MigratorFunction": "migrator"}
COMMON_ENV = {"DATABASE_URL", "EIS_DB_SECRET_ARN", "EIS_PG_CA_FILE", "RUST_LOG"}
ARCHIVER_ENV = {
    "EIS_QUEUE_URL",
    "EIS_BUCKET",
    "EIS_ARCHIVE_PREFIX",
    "EIS_SAFETY_MARGIN_MS",
    "EIS_RETENTION_DAYS",
    "EIS_SWEEP_GRACE_SECS",
    "EIS_MAX_ARCHIVER_CONCURRENCY",
    "EIS_FANOUT_QUALIFIER",
}
INGEST_ENV = {"EIS_QUEUE_URL", "EIS_MAX_BODY_BYTES", "EIS_MAX_BATCH_EVENTS", "EIS_MAX_EVENT_BYTES"}
# Only the migrator holds the master user's and the migrator user's secrets.
DEPLOY_SECRETS_ENV = {"EIS_DB_ADMIN_SECRET_ARN": "DbAdminSecretArn",
                      "EIS_DB_MIGRATOR_SECRET_ARN": "DbMigratorSecretArn"}
# Exactly what the migrator's Config reads: no queue, no bucket, no placeholder.
MIGRATOR_ENV = set(DEPLOY_SECRETS_ENV)
FUNCTION_ENV = {"IngestFunction": INGEST_ENV, "ArchiverFunction": ARCHIVER_ENV,
                "MigratorFunction": MIGRATOR_ENV}
ROUTES = {("post", "/events"), ("post", "/events/batch"), ("post", "/events/validate"),
          ("get", "/health")}
# The only actions allowed on Resource "*": IAM cannot scope these Describe calls, which Lambda
# needs to manage the functions' network interfaces in the VPC, nor X-Ray's segment uploads.
STAR_RESOURCE_ACTIONS = {"ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets",
                         "xray:PutTraceSegments", "xray:PutTelemetryRecords"}
# What erasure (docs/privacy.md) does in S3, the archiver only: delete quarantine files (and, as
# compaction does, archive files), delete old versions and delete markers, list versions, read
# the bucket's Object Lock configuration.
ERASURE_S3_ACTIONS = {"s3:DeleteObject", "s3:DeleteObjectVersion", "s3:ListBucketVersions",
                      "s3:GetBucketObjectLockConfiguration"}
# The archiver's S3 actions, all of them.
ARCHIVER_S3_ACTIONS = {"s3:PutObject", "s3:AbortMultipartUpload", "s3:GetObject",
                       "s3:ListBucket"} | ERASURE_S3_ACTIONS
# The only key prefixes the archiver may list (ListBucket, ListBucketVersions) under.
LIST_PREFIXES = [{"Fn::Sub": "${ArchivePrefix}*"}, {"Fn::Sub": "${RejectedPrefix}*"}]
GLUE_COLUMNS = [
    ("event_id", "string"),
    ("event_type", "string"),
    ("unit_type", "string"),
    ("unit_id", "string"),
    ("experiments", "array<struct<experiment_id:string,variant_id:string>>"),
    ("timestamp", "timestamp"),
    ("received_at", "timestamp"),
    ("flags", "array<string>"),
    ("sent_at", "timestamp"),
    ("adjusted_timestamp", "timestamp"),
    ("schema_version", "string"),
    ("schema_violation", "string"),
    # Format 4: the remainders, then one typed column per shredded key (archiver::archive::shred).
    ("context_rest", "string"),
    ("payload_rest", "string"),
    ("metrics_rest", "map<string,double>"),
    ("context_policy_version_id", "string"),
    ("context_app_version", "string"),
    ("context_platform", "string"),
    ("context_locale", "string"),
    ("context_session_id", "string"),
    ("context_model", "string"),
    ("context_rejection_reason", "string"),
    ("context_meal_id", "string"),
    ("context_new_meal_id", "string"),
    ("context_edit_type", "string"),
    ("context_edit_details", "string"),
    ("context_intervention_type", "string"),
    ("context_plan_id", "string"),
    ("payload_plan_id", "string"),
    ("payload_week_start", "string"),
    ("payload_days", "bigint"),
    ("payload_meals_per_day", "bigint"),
    ("payload_dietary_tags", "array<string>"),
    ("payload_excluded_ingredients", "array<string>"),
    ("payload_pantry_items_used", "bigint"),
    ("payload_retry", "boolean"),
    ("payload_summary", "string"),
    ("payload_policy_version_id", "string"),
    ("payload_rejection_reason", "string"),
    ("payload_meal_id", "string"),
    ("payload_new_meal_id", "string"),
    ("payload_edit_type", "string"),
    ("payload_edit_details", "string"),
    ("payload_intervention_type", "string"),
    ("metrics_latency_ms", "double"),
    ("metrics_token_count", "double"),
    ("metrics_meal_count", "double"),
    ("metrics_kcal_target", "double"),
    ("metrics_budget_gbp", "double"),
    ("metrics_edit_count", "double"),
    # Formats 1 to 3: the whole objects, null in format 4 files.
    ("context", "string"),
    ("metrics", "map<string,double>"),
    ("payload", "string"),
]


# --- helpers ------------------------------------------------------------------------------------


def resources(t, rtype=None):
    return {k: v for k, v in t["Resources"].items() if rtype is None or v["Type"] == rtype}


def props(t, name):
    return t["Resources"][name].get("Properties", {})


def as_list(value):
    return value if isinstance(value, list) else [value]


def ref_target(value):
    """'X' for {"Ref": "X"} or {"Fn::GetAtt": ["X", ...]}, else None."""
    if isinstance(value, dict):
        if "Ref" in value:
            return value["Ref"]
        if "Fn::GetAtt" in value:
            return value["Fn::GetAtt"][0]
    return None


def statements(document):
    """Statements of a policy document, with Fn::If branches (minus AWS::NoValue) expanded."""
    out = []
    for st in as_list(document.get("Statement", [])):
        if isinstance(st, dict) and "Fn::If" in st:
            for branch in st["Fn::If"][1:]:
                if not (isinstance(branch, dict) and branch.get("Ref") == "AWS::NoValue"):
                    out.append(branch)
        else:
            out.append(st)
    return out


def identity_statements(t):
    """(resource name, statement) of every IAM identity policy in the template."""
    found = []
    for name, res in t["Resources"].items():
        p = res.get("Properties", {})
        if res["Type"] == "AWS::IAM::Role":
            for pol in p.get("Policies", []):
                found += [(name, s) for s in statements(pol["PolicyDocument"])]
        elif res["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            found += [(name, s) for s in statements(p["PolicyDocument"])]
        elif res["Type"] == "AWS::Serverless::Function":
            for pol in as_list(p.get("Policies", [])):
                if isinstance(pol, dict) and "Statement" in pol:
                    found += [(name, s) for s in statements(pol)]
    return found


def role_statements(t, function):
    """The statements of the function's role: its inline policies and the policies attached."""
    role = ref_target(props(t, function)["Role"])
    assert role in t["Resources"], f"{function} must use a role of this template"
    attached = {name for name, res in resources(t, "AWS::IAM::Policy").items()
                if {"Ref": role} in res["Properties"].get("Roles", [])}
    return [s for _, s in identity_statements(t) if _ == role or _ in attached]


def allowed(stmts, action):
    """Resources on which `action` is allowed by these statements."""
    res = []
    for s in stmts:
        if s.get("Effect") == "Allow" and action in as_list(s["Action"]):
            res += as_list(s["Resource"])
    return res


def sub_text(value):
    """The template string of a !Sub (either form)."""
    assert isinstance(value, dict) and "Fn::Sub" in value, value
    sub = value["Fn::Sub"]
    return sub[0] if isinstance(sub, list) else sub


def api_operations(t):
    body = props(t, "IngestApi")["DefinitionBody"]
    return {
        (method, path): op for path, item in body["paths"].items() for method, op in item.items()
    }


# --- checks -------------------------------------------------------------------------------------


def check_functions(t):
    functions = resources(t, "AWS::Serverless::Function")
    assert set(FUNCTIONS) <= set(functions)
    binaries = []
    for name, binary in FUNCTIONS.items():
        res = t["Resources"][name]
        p = res["Properties"]
        assert p["Runtime"] == "provided.al2023", name
        assert p["Architectures"] == ["arm64"], name
        assert p["Handler"] == "bootstrap", name
        assert p["CodeUri"] == ".", f"{name}: cargo-lambda builds from the workspace root"
        assert res["Metadata"]["BuildMethod"] == "rust-cargolambda", name
        assert res["Metadata"]["BuildProperties"]["Binary"] == binary, name
        cargo = (ROOT / "functions" / binary / "Cargo.toml").read_text()
        assert f'[[bin]]\nname = "{binary}"' in cargo, f"{name}: functions/{binary} builds {binary}"
        binaries.append(binary)
    assert len(set(binaries)) == len(binaries), f"a binary of its own each: {binaries}"


def check_environment(t):
    for name in FUNCTIONS:
        env = props(t, name)["Environment"]["Variables"]
        expected = COMMON_ENV | FUNCTION_ENV[name]
        missing = expected - set(env)
        assert not missing, f"{name} lacks {sorted(missing)}"
        for key, param in DEPLOY_SECRETS_ENV.items():
            if name == "MigratorFunction":
                assert env[key] == {"Ref": param}, key
            else:
                assert key not in env, f"{name} must not hold {key}"
        if name == "MigratorFunction":
            assert set(env) == expected, f"{name} reads only {sorted(expected)}"
        for key, value in env.items():
            assert "PASSWORD" not in key.upper(), f"{name}.{key}: no password in the environment"
            assert "password" not in json.dumps(value).lower(), f"{name}.{key}"
        url = sub_text(env["DATABASE_URL"])
        assert url.startswith("postgres://"), url
        assert "sslmode=verify-full" in url, "TLS to the database must verify the server"
        assert "@" not in url, "DATABASE_URL names no user: each function's secret does"
        assert env["EIS_DB_SECRET_ARN"] == {"Ref": "DbSecretArn"}
        if "EIS_QUEUE_URL" in expected:
            assert env["EIS_QUEUE_URL"] == {"Ref": "EventsQueue"}
    ingest = props(t, "IngestFunction")["Environment"]["Variables"]
    assert ingest["EIS_MAX_BODY_BYTES"] == "5242880"
    assert ingest["EIS_MAX_BATCH_EVENTS"] == "1000"
    assert ingest["EIS_MAX_EVENT_BYTES"] == "65536"
    archiver = props(t, "ArchiverFunction")["Environment"]["Variables"]
    for limit in ("EIS_MAX_BATCH_EVENTS", "EIS_MAX_EVENT_BYTES"):
        assert archiver[limit] == ingest[limit], f"a replay judges with the API's {limit}"
    assert archiver["EIS_BUCKET"] == {"Ref": "ArchiveBucket"}
    assert archiver["EIS_ARCHIVE_PREFIX"] == {"Ref": "ArchivePrefix"}
    assert t["Parameters"]["ArchivePrefix"]["Default"] == ""
    assert t["Parameters"]["RetentionDays"]["Default"] == 90


def check_ca_bundle(t):
    layer = props(t, "CaBundleLayer")
    assert layer["ContentUri"].rstrip("/") == "infra/ca-layer"
    for name in FUNCTIONS:
        p = props(t, name)
        assert {"Ref": "CaBundleLayer"} in p["Layers"], f"{name} needs the CA bundle layer"
        # Layers are extracted under /opt.
        ca = p["Environment"]["Variables"]["EIS_PG_CA_FILE"]
        assert ca == "/opt/rds-global-bundle.pem", ca


def check_no_star_actions(t):
    for name, s in identity_statements(t):
        for action in as_list(s["Action"]):
            assert "*" not in action, f"{name}: wildcard action {action}"
    # Resource policies may Deny broadly (TLS only) but never Allow a wildcard action.
    for name, res in t["Resources"].items():
        doc = res.get("Properties", {}).get("PolicyDocument")
        if doc and res["Type"] != "AWS::IAM::Role":
            for s in statements(doc):
                if s.get("Effect") == "Allow":
                    for action in as_list(s["Action"]):
                        assert "*" not in action, f"{name}: resource policy allows {action}"


def check_star_resources(t):
    for name, s in identity_statements(t):
        if "*" in as_list(s.get("Resource", [])):
            extra = set(as_list(s["Action"])) - STAR_RESOURCE_ACTIONS
            assert not extra, f'{name}: Resource "*" only for the VPC Describe calls, not {extra}'


def check_roles_are_explicit(t):
    for name in FUNCTIONS:
        p = props(t, name)
        assert "Role" in p, f"{name}: explicit least-privilege role"
        assert "Policies" not in p, f"{name}: SAM policies would add managed policies"
    for name, res in resources(t, "AWS::IAM::Role").items():
        assert not res["Properties"].get("ManagedPolicyArns"), f"{name}: no managed policies"


def check_ingest_permissions(t):
    stmts = role_statements(t, "IngestFunction")
    assert allowed(stmts, "sqs:SendMessage") == [{"Fn::GetAtt": ["EventsQueue", "Arn"]}]
    assert allowed(stmts, "secretsmanager:GetSecretValue") == [{"Ref": "DbSecretArn"}]
    assert not [a for s in stmts for a in as_list(s["Action"]) if a.startswith("s3:")]
    assert not allowed(stmts, "sqs:ReceiveMessage")
    assert allowed(stmts, "ec2:CreateNetworkInterface"), "VPC access"


def check_archiver_permissions(t):
    stmts = role_statements(t, "ArchiverFunction")
    queue = {"Fn::GetAtt": ["EventsQueue", "Arn"]}
    for action in (
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:ChangeMessageVisibility",
        "sqs:GetQueueAttributes",
    ):
        assert allowed(stmts, action) == [queue], action
    # A replay hands its events to the queue as the ingest does (docs/quarantine.md).
    assert allowed(stmts, "sqs:SendMessage") == [queue]
    # The archive and the quarantine of rejected events (test_quarantine.py), each under its prefix.
    archive = {"Fn::Sub": "${ArchiveBucket.Arn}/${ArchivePrefix}*"}
    rejected = {"Fn::Sub": "${ArchiveBucket.Arn}/${RejectedPrefix}*"}
    bucket = {"Fn::GetAtt": ["ArchiveBucket", "Arn"]}
    put = allowed(stmts, "s3:PutObject")
    assert put == [archive, rejected], put
    assert allowed(stmts, "s3:AbortMultipartUpload") == put
    assert allowed(stmts, "secretsmanager:GetSecretValue") == [{"Ref": "DbSecretArn"}]
    # Compaction reads and deletes archive objects, only under the prefix; quarantined events
    # are read back (replay). Erasure (docs/privacy.md) is the one path that deletes quarantine
    # files and object versions (old versions and delete markers), under the two prefixes only,
    # after checking the bucket's Object Lock and listing one folder's versions.
    assert allowed(stmts, "s3:GetObject") == put
    for action, scope in (("s3:DeleteObject", [archive, rejected]),
                          ("s3:DeleteObjectVersion", [archive, rejected]),
                          ("s3:ListBucket", [bucket]),
                          ("s3:ListBucketVersions", [bucket]),
                          ("s3:GetBucketObjectLockConfiguration", [bucket])):
        assert allowed(stmts, action) == scope, (action, allowed(stmts, action))
    # Never the bucket itself, its policy, lifecycle, versioning or locks: erasure refuses a
    # locked bucket rather than bypass it.
    for forbidden in ("s3:DeleteBucket", "s3:DeleteBucketPolicy", "s3:PutBucketPolicy",
                      "s3:PutLifecycleConfiguration", "s3:PutBucketVersioning",
                      "s3:PutBucketObjectLockConfiguration", "s3:BypassGovernanceRetention",
                      "s3:PutObjectRetention", "s3:PutObjectLegalHold", "sqs:DeleteQueue"):
        assert not allowed(stmts, forbidden), forbidden
    # Exactly these S3 actions: anything more (GetObjectVersion, ...) is a change of this contract.
    s3 = {a for s in stmts if s["Effect"] == "Allow" for a in as_list(s["Action"]) if a.startswith("s3:")}
    assert s3 == ARCHIVER_S3_ACTIONS, sorted(s3 ^ ARCHIVER_S3_ACTIONS)
    # Listing, versions included, only under the two prefixes.
    for action in ("s3:ListBucket", "s3:ListBucketVersions"):
        for s in stmts:
            if s["Effect"] == "Allow" and action in as_list(s["Action"]):
                assert set(s.get("Condition", {})) == {"StringLike"}, (action, s.get("Condition"))
                prefixes = as_list(s["Condition"]["StringLike"].get("s3:prefix", []))
                assert sorted(map(json.dumps, prefixes)) == sorted(map(json.dumps, LIST_PREFIXES)), (action, prefixes)
    # No Deny stands in erasure's way (it would make the erasure fail, not the archive safer).
    for s in stmts:
        if s["Effect"] == "Deny":
            assert not set(as_list(s["Action"])) & ERASURE_S3_ACTIONS, s
    # The erasure's rights are the archiver's alone: no other role or policy of the template
    # (the ingest's above all) may delete an object or a version, list versions or read the
    # lock configuration.
    role = ref_target(props(t, "ArchiverFunction")["Role"])
    archiver = {role} | {name for name, res in resources(t, "AWS::IAM::Policy").items()
                         if {"Ref": role} in res["Properties"].get("Roles", [])}
    for name, s in identity_statements(t):
        if name not in archiver and s.get("Effect") == "Allow":
            granted = set(as_list(s["Action"])) & ERASURE_S3_ACTIONS
            assert not granted, f"{name} may {sorted(granted)}: erasure is the archiver's"
    # The fan-out invokes this function (and its alias) only.
    assert allowed(stmts, "lambda:InvokeFunction") == [
        {"Fn::GetAtt": ["ArchiverFunction", "Arn"]}, {"Fn::Sub": "${ArchiverFunction.Arn}:*"}]


def check_vpc_permissions(t):
    """Network interfaces: this account's, in this region. The subnets and security groups they
    are created in may be another account's (a VPC shared through AWS RAM): no account there."""
    eni = {"Fn::Sub": "arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:network-interface/*"}
    for name in FUNCTIONS:
        stmts = role_statements(t, name)
        for action in ("ec2:DeleteNetworkInterface", "ec2:AssignPrivateIpAddresses",
                       "ec2:UnassignPrivateIpAddresses"):
            assert allowed(stmts, action) == [eni], (name, action)
        create = [sub_text(r) for r in allowed(stmts, "ec2:CreateNetworkInterface")]
        assert sub_text(eni) in create, name
        for kind in ("subnet", "security-group"):
            assert f"arn:${{AWS::Partition}}:ec2:${{AWS::Region}}:*:{kind}/*" in create, (name, kind)
        assert all(r.startswith("arn:${AWS::Partition}:ec2:${AWS::Region}:") for r in create), create


def check_fanout(t):
    """Drain workers: bounded by MaxArchiverConcurrency, invoked on the scheduled alias, and
    the reservation (when asked for) is that bound plus one."""
    param = t["Parameters"]["MaxArchiverConcurrency"]
    assert param["Type"] == "Number" and param["MinValue"] == 1 and param["Default"] == 4
    fn = t["Resources"]["ArchiverFunction"]["Properties"]
    env = fn["Environment"]["Variables"]
    assert env["EIS_MAX_ARCHIVER_CONCURRENCY"] == {"Ref": "MaxArchiverConcurrency"}
    assert env["EIS_FANOUT_QUALIFIER"] == fn["AutoPublishAlias"], "workers run the live alias"
    # The reservation: the fan-out at its maximum plus one run of every other schedule of the
    # archiver (health, audit), which can start while the fan-out runs.
    others = [e for e in fn["Events"].values() if e["Type"] == "Schedule" and "Input" in e["Properties"]]
    mapping = t["Mappings"]["ArchiverConcurrency"]
    assert sorted(int(k) for k in mapping) == sorted(param["AllowedValues"])
    for key, row in mapping.items():
        assert row["Reserved"] == int(key) + len(others), (key, row, len(others))
    assert fn["ReservedConcurrentExecutions"] == {"Fn::If": [
        "ReservesArchiverConcurrency",
        {"Fn::FindInMap": ["ArchiverConcurrency", {"Ref": "MaxArchiverConcurrency"}, "Reserved"]},
        {"Ref": "AWS::NoValue"}]}


def check_migrator_permissions(t):
    """The migrator reads the three database secrets and touches nothing else; no other role
    may read the master's or the migrator's secret."""
    stmts = role_statements(t, "MigratorFunction")
    secrets = [{"Ref": "DbAdminSecretArn"}, {"Ref": "DbMigratorSecretArn"}, {"Ref": "DbSecretArn"}]
    assert allowed(stmts, "secretsmanager:GetSecretValue") == secrets
    actions = {a for s in stmts for a in as_list(s["Action"])}
    assert not {a for a in actions if a.split(":")[0] in ("s3", "sqs", "lambda", "glue")}, actions
    role = ref_target(props(t, "MigratorFunction")["Role"])
    for name, s in identity_statements(t):
        if name != role:
            for resource in as_list(s.get("Resource", [])):
                assert resource not in secrets[:2], f"{name} may read {resource}"


def check_schedule(t):
    events = props(t, "ArchiverFunction")["Events"]
    schedules = [e for e in events.values() if e["Type"] == "Schedule"]
    runs = [e for e in schedules if "Input" not in e["Properties"]]
    audits = [e for e in schedules if "Input" in e["Properties"]
              and json.loads(e["Properties"]["Input"]).get("action") == "audit"]
    assert len(runs) == 1, "the archiver runs on an EventBridge schedule"
    assert len(audits) == 1, "the audit runs on a schedule of its own"
    audit = audits[0]["Properties"]
    assert json.loads(audit["Input"]) == {"action": "audit"}
    assert audit["Schedule"] == {"Ref": "AuditSchedule"}
    assert audit.get("State", "ENABLED") == "ENABLED"
    sched = runs[0]["Properties"]
    assert sched["Schedule"] == {"Ref": "ArchiverSchedule"}
    assert sched.get("State", "ENABLED") == "ENABLED" and sched.get("Enabled", True) is True
    assert re.match(r"^(rate|cron)\(", t["Parameters"]["ArchiverSchedule"]["Default"])


def check_queues(t):
    q = props(t, "EventsQueue")
    dlq = props(t, "EventsDeadLetterQueue")
    assert q["RedrivePolicy"]["deadLetterTargetArn"] == {
        "Fn::GetAtt": ["EventsDeadLetterQueue", "Arn"]
    }
    assert q["RedrivePolicy"]["maxReceiveCount"] == 5
    weekend = 3 * 24 * 3600
    assert q["MessageRetentionPeriod"] >= weekend, "a weekend outage must not lose events"
    assert dlq["MessageRetentionPeriod"] == 14 * 24 * 3600
    assert dlq["MessageRetentionPeriod"] > q["MessageRetentionPeriod"]
    assert q.get("SqsManagedSseEnabled") is True and dlq.get("SqsManagedSseEnabled") is True


def check_timeouts(t):
    archiver = props(t, "ArchiverFunction")
    timeout = archiver["Timeout"]
    margin_ms = int(archiver["Environment"]["Variables"]["EIS_SAFETY_MARGIN_MS"])
    assert 0 < margin_ms < timeout * 1000 / 2, "the margin must leave most of the run for work"
    assert props(t, "EventsQueue")["VisibilityTimeout"] > timeout, (
        "a message must stay invisible for longer than the run that received it"
    )
    migrator = props(t, "MigratorFunction")["Timeout"]
    service_timeout = props(t, "SchemaMigrations")["ServiceTimeout"]
    assert migrator < service_timeout <= 3600, "CloudFormation outwaits one migrator run"
    # The HTTP API gives up on an integration after 30 s.
    assert props(t, "IngestFunction")["Timeout"] < 30
    for op in api_operations(t).values():
        assert op["x-amazon-apigateway-integration"]["timeoutInMillis"] <= 30000


def check_bucket(t):
    bucket = t["Resources"]["ArchiveBucket"]
    p = bucket["Properties"]
    block = p["PublicAccessBlockConfiguration"]
    for key in ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"):
        assert block.get(key) is True, key
    assert p["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert p["VersioningConfiguration"]["Status"] == "Enabled"
    assert bucket.get("DeletionPolicy") == "Retain", "the archive outlives the stack"
    rules = p["LifecycleConfiguration"]["Rules"]
    for rule in rules:
        # Current objects expire in the quarantine only (check_lifecycle).
        if rule.get("Prefix") != {"Ref": "RejectedPrefix"}:
            for key in ("ExpirationInDays", "ExpirationDate"):
                assert key not in rule, f"the archive is kept indefinitely ({rule['Id']}: {key})"
    transitions = [tr for r in rules for tr in r.get("Transitions", [])]
    assert {tr["StorageClass"] for tr in transitions} >= {"STANDARD_IA"}
    assert all("Ref" in tr["TransitionInDays"] for tr in transitions), "ages are parameters"
    lock = p["ObjectLockConfiguration"]["Fn::If"]
    assert lock[0] == "UseObjectLock" and lock[1]["ObjectLockEnabled"] == "Enabled"
    assert set(t["Parameters"]["ArchiveProtection"]["AllowedValues"]) == {"Versioning", "ObjectLock"}


def check_lifecycle(t):
    """Old versions go after ArchiveNoncurrentVersionDays (30 by default), never moved to a class
    with a minimum duration first; the quarantine expires after RejectedRetentionDays."""
    rules = props(t, "ArchiveBucket")["LifecycleConfiguration"]["Rules"]
    enabled = [r for r in rules if r["Status"] == "Enabled"]
    noncurrent = [r for r in enabled if "NoncurrentVersionExpiration" in r]
    assert len(noncurrent) == 1 and "Prefix" not in noncurrent[0] and "Filter" not in noncurrent[0], \
        "every old version of the bucket expires"
    assert noncurrent[0]["NoncurrentVersionExpiration"] == {
        "NoncurrentDays": {"Ref": "ArchiveNoncurrentVersionDays"}}
    assert noncurrent[0].get("ExpiredObjectDeleteMarker") is True
    assert not [r for r in rules if r.get("NoncurrentVersionTransitions")], \
        "no transition of versions about to expire (Standard-IA bills 30 days at least)"
    assert t["Parameters"]["ArchiveNoncurrentVersionDays"]["Default"] == 30
    rejected = [r for r in enabled if "ExpirationInDays" in r]
    assert len(rejected) == 1 and rejected[0]["Prefix"] == {"Ref": "RejectedPrefix"}
    assert rejected[0]["ExpirationInDays"] == {"Ref": "RejectedRetentionDays"}
    assert t["Parameters"]["RejectedRetentionDays"]["Default"] >= t["Parameters"]["RetentionDays"]["Default"], \
        "a replay reaches back RetentionDays: keep the quarantine as long"
    text = " ".join(t["Parameters"]["ArchiveNoncurrentVersionDays"]["Description"].split())
    assert "ObjectLock" in text, "say how it combines with Object Lock"


def check_bucket_tls_policy(t):
    policies = [
        r["Properties"]
        for r in resources(t, "AWS::S3::BucketPolicy").values()
        if r["Properties"]["Bucket"] == {"Ref": "ArchiveBucket"}
    ]
    assert len(policies) == 1, "the archive bucket needs a bucket policy"
    denies = [
        s
        for s in statements(policies[0]["PolicyDocument"])
        if s["Effect"] == "Deny"
        and s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") in ("false", False)
    ]
    assert denies, "deny every request that does not use TLS"
    s = denies[0]
    assert s["Principal"] == "*" and s["Action"] in ("s3:*", ["s3:*"])
    resources_ = as_list(s["Resource"])
    assert {"Fn::GetAtt": ["ArchiveBucket", "Arn"]} in resources_
    assert any(isinstance(r, dict) and "Fn::Sub" in r and sub_text(r).endswith("/*") for r in resources_)


def check_glue(t):
    table = props(t, "ArchiveGlueTable")["TableInput"]
    params = table["Parameters"]
    assert params["projection.enabled"] == "true"
    assert sub_text(params["storage.location.template"]) == (
        "s3://${ArchiveBucket}/${ArchivePrefix}${!year}/${!month}/${!day}/${!hour}/"
    )
    for key in ("year", "month", "day", "hour"):
        assert params[f"projection.{key}.type"] == "integer", key
    for key, lo, hi in (("month", 1, 12), ("day", 1, 31), ("hour", 0, 23)):
        assert params[f"projection.{key}.digits"] == "2", f"{key} is zero-padded to 2 digits"
        assert params[f"projection.{key}.range"] == f"{lo},{hi}", key
    assert [(k["Name"], k["Type"]) for k in table["PartitionKeys"]] == [
        ("year", "string"),
        ("month", "string"),
        ("day", "string"),
        ("hour", "string"),
    ]
    sd = table["StorageDescriptor"]
    assert [(c["Name"], c["Type"]) for c in sd["Columns"]] == GLUE_COLUMNS
    assert sd["SerdeInfo"]["SerializationLibrary"].endswith("ParquetHiveSerDe")
    assert "Parquet" in sd["InputFormat"] and "Parquet" in sd["OutputFormat"]
    assert table["TableType"] == "EXTERNAL_TABLE"


def check_api_auth(t):
    """Each mode of ApiAuthType: AWS_IAM (the default), JWT (an authorizer of the deployer's
    issuer and audiences, required together) and NONE, on every route alike."""
    param = t["Parameters"]["ApiAuthType"]
    assert param["Default"] == "AWS_IAM", "IAM authorization by default"
    assert set(param["AllowedValues"]) == {"AWS_IAM", "JWT", "NONE"}
    assert t["Conditions"]["UseIamAuth"] == {"Fn::Equals": [{"Ref": "ApiAuthType"}, "AWS_IAM"]}
    assert t["Conditions"]["UseJwtAuth"] == {"Fn::Equals": [{"Ref": "ApiAuthType"}, "JWT"]}
    body = props(t, "IngestApi")["DefinitionBody"]
    schemes = body["components"]["securitySchemes"]
    assert schemes["AWS_IAM"]["x-amazon-apigateway-authtype"] == "awsSigv4"
    when_jwt, otherwise = schemes["Jwt"]["Fn::If"][1:]
    assert schemes["Jwt"]["Fn::If"][0] == "UseJwtAuth" and otherwise == {"Ref": "AWS::NoValue"}
    authorizer = when_jwt["x-amazon-apigateway-authorizer"]
    assert authorizer["type"] == "jwt"
    assert authorizer["identitySource"] == "$request.header.Authorization"
    assert authorizer["jwtConfiguration"] == {"issuer": {"Ref": "JwtIssuer"},
                                              "audience": {"Ref": "JwtAudience"}}
    rule = t["Rules"]["JwtNeedsIssuerAndAudience"]
    assert rule["RuleCondition"] == {"Fn::Equals": [{"Ref": "ApiAuthType"}, "JWT"]}
    asserted = json.dumps(rule["Assertions"])
    assert '"JwtIssuer"' in asserted and '"JwtAudience"' in asserted
    ops = api_operations(t)
    assert set(ops) == ROUTES
    for route, op in ops.items():
        assert op["security"] == {
            "Fn::If": ["UseIamAuth", [{"AWS_IAM": []}],
                       {"Fn::If": ["UseJwtAuth", [{"Jwt": []}], {"Ref": "AWS::NoValue"}]}]
        }, f"{route}: authorization follows ApiAuthType"
        integration = op["x-amazon-apigateway-integration"]
        assert integration["type"] == "aws_proxy" and integration["payloadFormatVersion"] == "2.0"
        assert integration["uri"] == {"Ref": "IngestFunction.Alias"}, route


def check_cors_and_unit_binding(t):
    """CORS only for the deployer's origins (none by default), allowing the headers the SDKs
    send; the unit binding reaches the function only behind the JWT authorizer."""
    assert t["Parameters"]["CorsAllowedOrigins"]["Default"] == ""
    assert t["Conditions"]["HasCorsOrigins"] == {
        "Fn::Not": [{"Fn::Equals": [{"Fn::Join": ["", {"Ref": "CorsAllowedOrigins"}]}, ""]}]}
    cors = props(t, "IngestApi")["DefinitionBody"]["x-amazon-apigateway-cors"]["Fn::If"]
    assert cors[0] == "HasCorsOrigins" and cors[2] == {"Ref": "AWS::NoValue"}
    assert cors[1]["allowOrigins"] == {"Ref": "CorsAllowedOrigins"}
    assert {"authorization", "content-type", "content-encoding", "eis-sent-at"} <= set(
        cors[1]["allowHeaders"])
    assert set(cors[1]["allowMethods"]) == {"GET", "POST", "OPTIONS"}
    env = props(t, "IngestFunction")["Environment"]["Variables"]
    assert t["Conditions"]["BindsUnits"] == {"Fn::And": [
        {"Condition": "UseJwtAuth"}, {"Fn::Not": [{"Fn::Equals": [{"Ref": "JwtUnitType"}, ""]}]}]}
    assert env["EIS_BIND_UNIT_TYPE"] == {"Fn::If": ["BindsUnits", {"Ref": "JwtUnitType"}, ""]}
    assert env["EIS_BIND_UNIT_CLAIM"] == {"Ref": "JwtUnitClaim"}
    assert t["Parameters"]["JwtUnitClaim"]["Default"] == "sub"
    assert t["Parameters"]["JwtUnitType"]["Default"] == "", "no binding unless asked for"


def check_api_stage_and_throttling(t):
    api = t["Resources"]["IngestApi"]
    assert api["Type"] == "AWS::Serverless::HttpApi"
    p = api["Properties"]
    # lambda_http would see a named stage as a path prefix: only $default works.
    assert p.get("StageName", "$default") == "$default"
    assert p["DefaultRouteSettings"]["ThrottlingRateLimit"] == {"Ref": "ApiThrottlingRateLimit"}
    assert p["DefaultRouteSettings"]["ThrottlingBurstLimit"] == {"Ref": "ApiThrottlingBurstLimit"}
    perm = props(t, "IngestApiPermission")
    assert perm["Principal"] == "apigateway.amazonaws.com"
    assert "${IngestApi}" in sub_text(perm["SourceArn"])


def check_migrations(t):
    """The SchemaMigrations custom resource is served by the migrator's own alias (no function in
    between), re-runs on each new migrator version, and the service's functions wait for it;
    the migrator answers CloudFormation from inside the VPC (through the S3 gateway endpoint)
    and no schedule or reservation can hold it."""
    cr = t["Resources"]["SchemaMigrations"]
    assert cr["Type"].startswith("Custom::")
    p = cr["Properties"]
    assert p["ServiceToken"] == {"Ref": "MigratorFunction.Alias"}
    assert p["MigratorVersion"] == {"Ref": "MigratorFunction.Version"}, "re-run on each new version"
    assert p["RunId"] == {"Ref": "MigrationsRunId"}
    for name in ("IngestFunction", "ArchiverFunction"):
        assert "SchemaMigrations" in as_list(t["Resources"][name].get("DependsOn", [])), name
    python = [n for n, r in t["Resources"].items()
              if str(r.get("Properties", {}).get("Runtime", "")).startswith("python")]
    assert python == [], f"no shim between CloudFormation and the migrator: {python}"
    migrator = props(t, "MigratorFunction")
    assert migrator["VpcConfig"]["SubnetIds"] == {"Ref": "DbSubnetIds"}
    assert not migrator.get("Events") and "ReservedConcurrentExecutions" not in migrator
    source = (ROOT / "functions" / "migrator" / "src" / "custom_resource.rs").read_text()
    reserve = int(re.search(r"ANSWER_RESERVE: Duration = Duration::from_secs\((\d+)\)", source)[1])
    assert 0 < reserve < migrator["Timeout"] / 4, "the answer's reserve leaves most of the run"


def check_alarms(t):
    alarms = resources(t, "AWS::CloudWatch::Alarm")

    def metric_alarms(metric, dimension_target=None):
        found = []
        for name, a in alarms.items():
            p = a["Properties"]
            metrics = [p] + [m["MetricStat"]["Metric"] for m in p.get("Metrics", []) if "MetricStat" in m]
            for m in metrics:
                if m.get("MetricName") == metric and (
                    dimension_target is None
                    or any(ref_target(d["Value"]) == dimension_target for d in m.get("Dimensions", []))
                ):
                    found.append(name)
        return found

    dlq = metric_alarms("ApproximateNumberOfMessagesVisible", "EventsDeadLetterQueue")
    assert dlq and props(t, dlq[0])["Threshold"] == 0, "alarm when the DLQ is not empty"
    age = metric_alarms("ApproximateAgeOfOldestMessage", "EventsQueue")
    assert age and props(t, age[0])["Threshold"] == {"Ref": "QueueAgeAlarmSeconds"}
    assert metric_alarms("Errors", "ArchiverFunction"), "archiver errors"
    assert metric_alarms("Api5xx"), "ingest 5xx (from the access log: test_operations_alerts.py)"
    throttles = metric_alarms("Throttles", "ArchiverFunction")
    assert throttles and props(t, throttles[0])["Threshold"] == 0, "archiver throttled"
    at_max = metric_alarms("ConcurrentExecutions", "ArchiverFunction")
    assert at_max and props(t, at_max[0])["Threshold"] == {"Ref": "MaxArchiverConcurrency"}
    saturated = props(t, "ArchiverFanoutSaturatedAlarm")
    rule = sub_text(saturated["AlarmRule"])
    assert f'ALARM("${{{at_max[0]}}}")' in rule and 'ALARM("${QueueBacklogAgeAlarm}")' in rule
    assert " AND " in rule and " OR " not in rule, "both at once"
    # Alarms that only feed a composite alarm notify through it.
    composite = {fed for a in resources(t, "AWS::CloudWatch::CompositeAlarm").values()
                 for fed in re.findall(r'ALARM\("\$\{(\w+)\}"\)', sub_text(a["Properties"]["AlarmRule"]))}
    audit = props(t, "AuditFindingsAlarm")
    assert (audit["Namespace"], audit["MetricName"]) == ({"Fn::Sub": EMF_NAMESPACE}, "AuditFindings")
    assert audit["Threshold"] == 0 and audit["ComparisonOperator"] == "GreaterThanThreshold"
    for name, a in {**alarms, **resources(t, "AWS::CloudWatch::CompositeAlarm")}.items():
        if name in composite - {"QueueBacklogAgeAlarm"}:
            assert not a["Properties"].get("AlarmActions"), f"{name} notifies through its composite"
        else:
            assert notifies(a["Properties"]) in TOPICS, name
    assert t["Resources"]["AlarmEmailSubscription"]["Condition"] == "HasAlarmEmail"


def check_outputs(t):
    outputs = t["Outputs"]
    assert "execute-api" in sub_text(outputs["ApiUrl"]["Value"])
    assert outputs["ArchiveBucketName"]["Value"] == {"Ref": "ArchiveBucket"}
    assert outputs["QueueUrl"]["Value"] == {"Ref": "EventsQueue"}


CHECKS = {f.__name__[len("check_") :]: f for f in [
    check_functions,
    check_environment,
    check_ca_bundle,
    check_no_star_actions,
    check_star_resources,
    check_roles_are_explicit,
    check_ingest_permissions,
    check_archiver_permissions,
    check_fanout,
    check_vpc_permissions,
    check_migrator_permissions,
    check_schedule,
    check_queues,
    check_timeouts,
    check_bucket,
    check_lifecycle,
    check_bucket_tls_policy,
    check_glue,
    check_api_auth,
    check_cors_and_unit_binding,
    check_api_stage_and_throttling,
    check_migrations,
    check_alarms,
    check_outputs,
]}


# --- mutations: each breaks the template in one careless way -------------------------------------


def _role_statement(role, sid):
    def find(t):
        for s in t["Resources"][role]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]:
            if isinstance(s, dict) and s.get("Sid") == sid:
                return s
        raise KeyError(sid)

    return find


def _edit_statement(role, sid, **changes):
    def mutate(t):
        _role_statement(role, sid)(t).update(changes)

    return mutate


def _add_statement(resource, statement):
    """Appends a statement to the first policy of a role, or to an AWS::IAM::Policy."""
    def mutate(t):
        p = t["Resources"][resource]["Properties"]
        doc = p["Policies"][0]["PolicyDocument"] if "Policies" in p else p["PolicyDocument"]
        doc["Statement"].append(statement)

    return mutate


def _drop_key(role, sid, key):
    def mutate(t):
        del _role_statement(role, sid)(t)[key]

    return mutate


def _edit_ops(key, value):
    def mutate(t):
        for op in api_operations(t).values():
            op[key] = value

    return mutate


def _first_op(key, value):
    def mutate(t):
        op = api_operations(t)[("post", "/events")]
        op[key] = value

    return mutate


R = "Resources"
P = "Properties"
MUTATIONS = [
    ("functions", set_at([R, "IngestFunction", P, "Runtime"], "provided.al2")),
    ("functions", set_at([R, "ArchiverFunction", P, "Architectures"], ["x86_64"])),
    ("functions", set_at([R, "ArchiverFunction", "Metadata", "BuildProperties", "Binary"], "ingest")),
    ("functions", set_at([R, "IngestFunction", "Metadata", "BuildMethod"], "makefile")),
    ("environment", delete_at([R, "ArchiverFunction", P, "Environment", "Variables", "EIS_SAFETY_MARGIN_MS"])),
    ("environment", set_at([R, "IngestFunction", P, "Environment", "Variables", "DATABASE_URL"],
                         {"Fn::Sub": "postgres://eis:hunter2@${DbHost}:5432/eis?sslmode=verify-full"})),
    ("environment", set_at([R, "IngestFunction", P, "Environment", "Variables", "DATABASE_URL"],
                         {"Fn::Sub": "postgres://eis@${DbHost}:5432/eis?sslmode=require"})),
    ("environment", set_at([R, "ArchiverFunction", P, "Environment", "Variables", "DB_PASSWORD"], "x")),
    ("ca_bundle", set_at([R, "IngestFunction", P, "Layers"], [])),
    ("ca_bundle", set_at([R, "ArchiverFunction", P, "Environment", "Variables", "EIS_PG_CA_FILE"],
                       "/var/task/rds-global-bundle.pem")),
    ("no_star_actions", _edit_statement("IngestRole", "PublishEvents", Action="sqs:*")),
    ("no_star_actions", _edit_statement("ArchiverRole", "WriteArchive", Action=["s3:Put*"])),
    ("star_resources", _edit_statement("ArchiverRole", "DrainQueue", Resource="*")),
    ("star_resources", _edit_statement("IngestRole", "VpcNetworkInterfaces", Resource="*")),
    ("roles_are_explicit", set_at([R, "IngestRole", P, "ManagedPolicyArns"],
                                ["arn:aws:iam::aws:policy/AdministratorAccess"])),
    ("roles_are_explicit", set_at([R, "ArchiverFunction", P, "Policies"], ["AmazonS3FullAccess"])),
    ("ingest_permissions", _edit_statement("IngestRole", "DatabaseSecret", Resource="*")),
    ("ingest_permissions", _edit_statement("IngestRole", "PublishEvents",
                                           Action=["sqs:SendMessage", "sqs:ReceiveMessage"])),
    ("archiver_permissions", _edit_statement("ArchiverRole", "WriteArchive",
                                             Action=["s3:PutObject", "s3:AbortMultipartUpload",
                                                     "s3:DeleteBucket"])),
    ("archiver_permissions", _edit_statement("ArchiverRole", "ReplayHandOff", Resource="*")),
    ("archiver_permissions", _edit_statement("ArchiverRole", "DrainQueue",
                                             Action=["sqs:ReceiveMessage", "sqs:GetQueueAttributes"])),
    ("schedule", set_at([R, "ArchiverFunction", P, "Events"], {})),
    ("schedule", set_at([R, "ArchiverFunction", P, "Events", "Schedule", P, "State"], "DISABLED")),
    ("queues", set_at([R, "EventsQueue", P, "RedrivePolicy", "maxReceiveCount"], 3)),
    ("queues", delete_at([R, "EventsQueue", P, "RedrivePolicy"])),
    ("queues", set_at([R, "EventsQueue", P, "MessageRetentionPeriod"], 86400)),
    ("queues", delete_at([R, "EventsDeadLetterQueue", P, "SqsManagedSseEnabled"])),
    ("timeouts", set_at([R, "EventsQueue", P, "VisibilityTimeout"], 300)),
    ("timeouts", set_at([R, "ArchiverFunction", P, "Timeout"], 900)),
    ("timeouts", set_at([R, "ArchiverFunction", P, "Environment", "Variables", "EIS_SAFETY_MARGIN_MS"],
                      "300000")),
    ("timeouts", set_at([R, "IngestFunction", P, "Timeout"], 60)),
    ("bucket", set_at([R, "ArchiveBucket", P, "PublicAccessBlockConfiguration", "BlockPublicPolicy"], False)),
    ("bucket", delete_at([R, "ArchiveBucket", "DeletionPolicy"])),
    ("bucket", lambda t: t[R]["ArchiveBucket"][P]["LifecycleConfiguration"]["Rules"][0].update(
        {"ExpirationInDays": 365})),
    ("lifecycle", lambda t: t[R]["ArchiveBucket"][P]["LifecycleConfiguration"]["Rules"].pop(1)),
    ("lifecycle", lambda t: t[R]["ArchiveBucket"][P]["LifecycleConfiguration"]["Rules"][1].__setitem__(
        "Prefix", {"Ref": "ArchivePrefix"})),
    ("lifecycle", lambda t: t[R]["ArchiveBucket"][P]["LifecycleConfiguration"]["Rules"].pop(2)),
    ("lifecycle", lambda t: t[R]["ArchiveBucket"][P]["LifecycleConfiguration"]["Rules"][0].__setitem__(
        "NoncurrentVersionTransitions", [{"StorageClass": "STANDARD_IA", "TransitionInDays": 30}])),
    ("lifecycle", set_at(["Parameters", "RejectedRetentionDays", "Default"], 30)),
    ("bucket", lambda t: t[R]["ArchiveBucket"][P]["LifecycleConfiguration"]["Rules"][2].__setitem__(
        "Prefix", {"Ref": "ArchivePrefix"})),
    ("bucket_tls_policy", delete_at([R, "ArchiveBucketPolicy"])),
    ("bucket_tls_policy", lambda t: t[R]["ArchiveBucketPolicy"][P]["PolicyDocument"]["Statement"][0][
        "Condition"]["Bool"].update({"aws:SecureTransport": "true"})),
    ("glue", set_at([R, "ArchiveGlueTable", P, "TableInput", "Parameters", "projection.enabled"], "false")),
    ("glue", delete_at([R, "ArchiveGlueTable", P, "TableInput", "Parameters", "projection.hour.digits"])),
    ("glue", set_at([R, "ArchiveGlueTable", P, "TableInput", "Parameters", "storage.location.template"],
                  {"Fn::Sub": "s3://${ArchiveBucket}/${!year}/${!month}/${!day}/"})),
    ("glue", lambda t: t[R]["ArchiveGlueTable"][P]["TableInput"]["StorageDescriptor"]["Columns"].pop()),
    ("api_auth", set_at(["Parameters", "ApiAuthType", "Default"], "NONE")),
    ("api_auth", _first_op("security", [])),
    ("api_auth", lambda t: api_operations(t)[("get", "/health")].pop("security")),
    ("api_auth", lambda t: api_operations(t)[("post", "/events/validate")].__setitem__(
        "security", {"Fn::If": ["UseIamAuth", [{"AWS_IAM": []}], {"Ref": "AWS::NoValue"}]})),
    ("api_auth", set_at(["Parameters", "ApiAuthType", "AllowedValues"], ["AWS_IAM", "NONE"])),
    ("api_auth", delete_at(["Rules", "JwtNeedsIssuerAndAudience"])),
    ("api_auth", lambda t: props(t, "IngestApi")["DefinitionBody"]["components"]["securitySchemes"][
        "Jwt"]["Fn::If"][1]["x-amazon-apigateway-authorizer"]["jwtConfiguration"].pop("audience")),
    ("cors_and_unit_binding", set_at(["Parameters", "CorsAllowedOrigins", "Default"], "*")),
    ("cors_and_unit_binding", lambda t: props(t, "IngestApi")["DefinitionBody"][
        "x-amazon-apigateway-cors"]["Fn::If"][1]["allowHeaders"].remove("eis-sent-at")),
    ("cors_and_unit_binding", set_at([R, "IngestFunction", P, "Environment", "Variables",
                                    "EIS_BIND_UNIT_TYPE"], {"Ref": "JwtUnitType"})),
    ("api_stage_and_throttling", set_at([R, "IngestApi", P, "StageName"], "prod")),
    ("api_stage_and_throttling", set_at([R, "IngestApi", P, "DefaultRouteSettings", "ThrottlingRateLimit"],
                                      10000)),
    ("migrations", set_at([R, "SchemaMigrations", P, "MigratorVersion"], "1")),
    ("migrations", set_at([R, "SchemaMigrations", P, "ServiceToken"], {"Fn::GetAtt": ["MigratorFunction", "Arn"]})),
    ("migrations", set_at([R, "SchemaMigrations", P, "RunId"], "1")),
    ("migrations", set_at([R, "MigratorFunction", P, "VpcConfig", "SubnetIds"], [])),
    ("migrations", set_at([R, "MigratorFunction", P, "Runtime"], "python3.13")),
    ("timeouts", set_at([R, "SchemaMigrations", P, "ServiceTimeout"], 300)),
    ("functions", set_at([R, "MigratorFunction", "Metadata", "BuildProperties", "Binary"], "archiver")),
    ("environment", set_at([R, "MigratorFunction", P, "Environment", "Variables", "EIS_BUCKET"], "unused")),
    ("migrations", delete_at([R, "IngestFunction", "DependsOn"])),
    ("migrations", delete_at([R, "ArchiverFunction", "DependsOn"])),
    ("migrator_permissions", _edit_statement("ArchiverRole", "DatabaseSecret",
                                             Resource={"Ref": "DbAdminSecretArn"})),
    ("migrator_permissions", _edit_statement("MigratorRole", "DatabaseSecrets",
                                             Action=["secretsmanager:GetSecretValue", "sqs:SendMessage"])),
    ("environment", set_at([R, "IngestFunction", P, "Environment", "Variables",
                          "EIS_DB_ADMIN_SECRET_ARN"], {"Ref": "DbAdminSecretArn"})),
    ("environment", delete_at([R, "MigratorFunction", P, "Environment", "Variables",
                             "EIS_DB_MIGRATOR_SECRET_ARN"])),
    ("alarms", delete_at([R, "DeadLetterQueueNotEmptyAlarm"])),
    ("alarms", set_at([R, "QueueBacklogAgeAlarm", P, "Threshold"], 3600)),
    ("alarms", set_at([R, "ArchiverErrorsAlarm", P, "AlarmActions"], [])),
    ("alarms", delete_at([R, "Ingest5xxRateAlarm"])),
    ("alarms", set_at([R, "AuditFindingsAlarm", P, "MetricName"], "AuditMissing")),
    ("schedule", delete_at([R, "ArchiverFunction", P, "Events", "Audit"])),
    ("archiver_permissions", set_at([R, "ArchiverFanoutPolicy", P, "PolicyDocument", "Statement", 0,
                                   "Resource"], {"Fn::Sub": "arn:${AWS::Partition}:lambda:*"})),
    # Erasure's rights (docs/privacy.md), widened, moved or handed to another role.
    ("archiver_permissions", _edit_statement("ArchiverRole", "EraseVersions", Resource="*")),
    ("archiver_permissions", _edit_statement("ArchiverRole", "EraseVersions",
                                             Resource={"Fn::Sub": "${ArchiveBucket.Arn}/*"})),
    ("archiver_permissions", _edit_statement("ArchiverRole", "EraseVersions",
                                             Resource={"Fn::GetAtt": ["ArchiveBucket", "Arn"]})),
    ("archiver_permissions", _edit_statement("ArchiverRole", "EraseVersions",
                                             Resource={"Fn::Sub": "${ArchiveBucket.Arn}/${ArchivePrefix}*"})),
    ("archiver_permissions", _edit_statement("ArchiverRole", "EraseQuarantine",
                                             Resource={"Fn::Sub": "${ArchiveBucket.Arn}/*"})),
    ("archiver_permissions", _drop_key("ArchiverRole", "EraseListVersions", "Condition")),
    ("archiver_permissions", _edit_statement("ArchiverRole", "EraseListVersions", Condition={
        "StringLike": {"s3:prefix": [{"Fn::Sub": "${ArchivePrefix}*"}, {"Fn::Sub": "${RejectedPrefix}*"},
                                     "*"]}})),
    ("archiver_permissions", _edit_statement("ArchiverRole", "EraseLockCheck",
                                             Action=["s3:GetBucketObjectLockConfiguration",
                                                     "s3:PutBucketObjectLockConfiguration"])),
    ("archiver_permissions", _edit_statement("ArchiverRole", "CompactArchive",
                                             Action=["s3:GetObject", "s3:GetObjectVersion",
                                                     "s3:DeleteObject"])),
    ("archiver_permissions", _edit_statement("ArchiverRole", "EraseLockCheck",
                                             Action=["s3:GetBucketObjectLockConfiguration",
                                                     "s3:PutBucketVersioning"])),
    # The former rule back: a Deny on deletes under the quarantine would make erasure fail.
    ("archiver_permissions", _add_statement("ArchiverRole", {
        "Sid": "KeepRejected", "Effect": "Deny", "Action": "s3:DeleteObject",
        "Resource": {"Fn::Sub": "${ArchiveBucket.Arn}/${RejectedPrefix}*"}})),
    ("archiver_permissions", _add_statement("IngestRole", {
        "Effect": "Allow", "Action": "s3:DeleteObjectVersion",
        "Resource": {"Fn::Sub": "${ArchiveBucket.Arn}/${RejectedPrefix}*"}})),
    ("archiver_permissions", _add_statement("MigratorRole", {
        "Effect": "Allow", "Action": ["s3:ListBucketVersions", "s3:GetBucketObjectLockConfiguration"],
        "Resource": {"Fn::GetAtt": ["ArchiveBucket", "Arn"]}})),
    ("archiver_permissions", _add_statement("ArchiveReplicationPolicy", {
        "Effect": "Allow", "Action": "s3:DeleteObject",
        "Resource": {"Fn::Sub": "${ArchiveBucket.Arn}/${ArchivePrefix}*"}})),
    ("ingest_permissions", _add_statement("IngestRole", {
        "Effect": "Allow", "Action": "s3:DeleteObjectVersion",
        "Resource": {"Fn::Sub": "${ArchiveBucket.Arn}/${RejectedPrefix}*"}})),
    ("fanout", set_at([R, "ArchiverFunction", P, "Environment", "Variables", "EIS_FANOUT_QUALIFIER"],
                    "$LATEST")),
    ("fanout", set_at(["Mappings", "ArchiverConcurrency", "4", "Reserved"], 5)),  # the state before
    ("fanout", lambda t: t[R]["ArchiverFunction"][P]["Events"].__setitem__("Replay", {
        "Type": "Schedule", P: {"Schedule": "rate(1 hour)", "Input": '{"action": "replay"}'}})),
    ("fanout", set_at(["Parameters", "MaxArchiverConcurrency", "MinValue"], 0)),
    ("alarms", delete_at([R, "ArchiverThrottlesAlarm"])),
    ("alarms", set_at([R, "ArchiverFanoutSaturatedAlarm", P, "AlarmRule"],
                    {"Fn::Sub": 'ALARM("${ArchiverAtMaxConcurrencyAlarm}") OR ALARM("${QueueBacklogAgeAlarm}")'})),
    ("outputs", delete_at(["Outputs", "QueueUrl"])),
    # The state before: every ec2 resource of the own account (fails on a shared VPC's subnets).
    ("vpc_permissions", _edit_statement("IngestRole", "VpcSharedSubnets", Resource={
        "Fn::Sub": "arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:subnet/*"})),
    ("vpc_permissions", _edit_statement("MigratorRole", "VpcNetworkInterfaces", Resource={
        "Fn::Sub": "arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:*"})),
]


test_check_holds, test_check_catches, test_every_check_has_a_mutation = mutation_tests(CHECKS, MUTATIONS, (AssertionError, KeyError))


# --- beyond template.yaml --------------------------------------------------------------------------


def test_routes_match_openapi(template):
    """template.yaml's routes are those of openapi.yaml, the API's contract."""
    spec_path = ROOT / "openapi.yaml"
    if not spec_path.exists():
        pytest.skip("openapi.yaml not written yet")
    spec = load_cfn(spec_path)
    methods = {"get", "put", "post", "delete", "patch", "head", "options"}
    spec_routes = {
        (m.lower(), path) for path, item in spec["paths"].items() for m in item if m.lower() in methods
    }
    assert spec_routes == set(api_operations(template))


def test_no_account_specific_values(root):
    """No account id, bucket name or machine path is committed with the deployment files."""
    for rel in ("template.yaml", "samconfig.toml", "infra/database.yaml"):
        text = (root / rel).read_text(encoding="utf-8")
        assert not re.search(r"(?<![0-9])[0-9]{12}(?![0-9])", text), f"{rel}: account id?"
        assert "/home/" not in text and "/root/" not in text and "/work/" not in text, rel
    samconfig = (root / "samconfig.toml").read_text(encoding="utf-8")
    assert re.search(r"^\s*resolve_s3\s*=\s*true", samconfig, re.M)
    assert not re.search(r"^\s*s3_bucket\s*=", samconfig, re.M)
    assert "password" not in samconfig.lower()


def test_samconfig_environments(root):
    import tomllib

    config = tomllib.loads((root / "samconfig.toml").read_text(encoding="utf-8"))
    for env in ("default", "prod"):
        assert config[env]["deploy"]["parameters"]["resolve_s3"] is True, env
        caps = config[env]["deploy"]["parameters"]["capabilities"]
        assert "CAPABILITY_IAM" in caps and "CAPABILITY_AUTO_EXPAND" in caps, env
    assert config["default"]["global"]["parameters"]["stack_name"] != (
        config["prod"]["global"]["parameters"]["stack_name"]
    )


def test_function_fixtures(root):
    scheduled = json.loads((root / "events" / "archiver-scheduled.json").read_text())
    assert scheduled["detail-type"] == "Scheduled Event"
    assert scheduled["source"] == "aws.events"
    assert "action" not in scheduled
    drain = json.loads((root / "events" / "archiver-drain.json").read_text())
    assert drain == {"action": "drain"}
    migrate = json.loads((root / "events" / "migrator-migrate.json").read_text())
    assert migrate == {"action": "migrate"}
    request = json.loads((root / "events" / "migrator-custom-resource.json").read_text())
    assert request["RequestType"] == "Create" and request["LogicalResourceId"] == "SchemaMigrations"


def test_database_stack(database_template):
    t = database_template
    db = props(t, "Database")
    assert db["StorageEncrypted"] is True
    assert db["PubliclyAccessible"] is False
    assert db["ManageMasterUserPassword"] is True
    assert "MasterUserPassword" not in db
    assert props(t, "DatabaseParameterGroup")["Parameters"]["rds.force_ssl"] == "1"
    assert props(t, "Proxy")["RequireTLS"] is True
    endpoints = {
        sub_text(r["Properties"]["ServiceName"]).rsplit(".", 1)[-1]: r["Properties"]["VpcEndpointType"]
        for r in resources(t, "AWS::EC2::VPCEndpoint").values()
    }
    # Which services the functions call is derived from the code in test_reachability.py.
    assert endpoints == {"s3": "Gateway", "sqs": "Interface", "secretsmanager": "Interface",
                         "lambda": "Interface"}
    types = {r["Type"] for r in t["Resources"].values()}
    assert not types & {"AWS::EC2::NatGateway", "AWS::EC2::InternetGateway"}, "private only"


def test_database_outputs_feed_the_main_template(database_template, template):
    """Every database output but VpcId is a parameter of template.yaml of the same name."""
    outputs = set(database_template["Outputs"]) - {"VpcId"}
    db_params = {
        "DbSubnetIds", "LambdaSecurityGroupId", "DbSecretArn", "DbMigratorSecretArn",
        "DbAdminSecretArn", "DbHost", "DbProxyEndpoint", "DbPort", "DbName", "DbInstanceIdentifier",
        "DbProxyName",
    }
    assert outputs == db_params
    assert db_params <= set(template["Parameters"])

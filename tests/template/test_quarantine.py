"""The quarantine of rejected events (docs/quarantine.md) in template.yaml: the archiver writes
them as Parquet under RejectedPrefix, hour-partitioned as the events are; the rejected_events
Glue table reads them with the events table's projection; the alarm on the ingest's EMF metric
VariantRejected (namespace EIS, dimensions Experiment, Variant) watches every variant. Of the
functions, only erasure (docs/privacy.md) deletes quarantined records and their old versions.

As in test_template.py: every check runs on the real template and on copies broken on purpose,
where it must fail.
"""

import re

from conftest import delete_at, expression_text, mutation_tests, set_at

R = "Resources"
P = "Properties"

REJECTED_PATTERN = r"^[A-Za-z0-9!_.*'()=-]+(/[A-Za-z0-9!_.*'()=-]+)*/$"
REJECTED_OBJECTS = {"Fn::Sub": "${ArchiveBucket.Arn}/${RejectedPrefix}*"}
ARCHIVE_OBJECTS = {"Fn::Sub": "${ArchiveBucket.Arn}/${ArchivePrefix}*"}
BUCKET = {"Fn::GetAtt": ["ArchiveBucket", "Arn"]}
LIST_PREFIXES = [{"Fn::Sub": "${ArchivePrefix}*"}, {"Fn::Sub": "${RejectedPrefix}*"}]
# What erasure does in S3 (test_template.py checks that no other role may).
ERASURE_ACTIONS = {"s3:DeleteObject", "s3:DeleteObjectVersion", "s3:ListBucketVersions",
                   "s3:GetBucketObjectLockConfiguration"}
# The quarantine record, in the order the archiver writes it.
REJECTED_COLUMNS = [
    ("record_id", "string"),
    ("request_id", "string"),
    ("route", "string"),
    ("scope", "string"),
    ("batch_index", "int"),
    ("received_at", "timestamp"),
    ("code", "string"),
    ("message", "string"),
    ("raw", "string"),
    ("raw_bytes", "bigint"),
    ("raw_truncated", "boolean"),
    ("raw_lossy", "boolean"),
    ("experiments", "array<struct<experiment_id:string,variant_id:string>>"),
    ("violations", "string"),
]
REJECTED_QUERY = re.compile(
    r'^SELECT\s+AVG\(VariantRejected\)\s+FROM\s+SCHEMA\("EIS/\$\{AWS::StackName\}",\s*Experiment,\s*Variant\)'
    r"\s+GROUP\s+BY\s+Experiment,\s*Variant$")


def param(t, name):
    return t["Parameters"][name]


def as_list(value):
    return value if isinstance(value, list) else [value]


def sub_text(value):
    """The template string of a !Sub (either form)."""
    assert isinstance(value, dict) and "Fn::Sub" in value, value
    sub = value["Fn::Sub"]
    return sub[0] if isinstance(sub, list) else sub


def archiver_statements(t):
    """The statements of the archiver's role (inline and attached), Fn::If branches expanded."""
    role = t[R]["ArchiverFunction"][P]["Role"]["Fn::GetAtt"][0]
    docs = [pol["PolicyDocument"] for pol in t[R][role][P].get("Policies", [])]
    docs += [res[P]["PolicyDocument"] for res in t[R].values()
             if res["Type"] == "AWS::IAM::Policy" and {"Ref": role} in res[P].get("Roles", [])]
    out = []
    for doc in docs:
        for st in as_list(doc["Statement"]):
            if "Fn::If" in st:
                out += [b for b in st["Fn::If"][1:] if b != {"Ref": "AWS::NoValue"}]
            else:
                out.append(st)
    return out


def resources_for(stmts, effect, action):
    return [r for s in stmts if s["Effect"] == effect and action in as_list(s["Action"])
            for r in as_list(s["Resource"])]


def table_input(t, name):
    return t[R][name][P]["TableInput"]


# --- checks -------------------------------------------------------------------------------------


def check_rejected_prefix_parameter(t):
    p = param(t, "RejectedPrefix")
    assert p["Type"] == "String" and p["Default"] == "rejected/"
    assert p["MinLength"] >= 1, "the quarantine needs a prefix of its own"
    assert p["AllowedPattern"] == REJECTED_PATTERN
    # The archive's pattern minus its empty case: the same keys are safe in both.
    assert param(t, "ArchivePrefix")["AllowedPattern"] == "^$|" + REJECTED_PATTERN
    pattern = re.compile(p["AllowedPattern"])
    for ok in ("rejected/", "quarantine/rejected/", "eis-rejected/v1/"):
        assert pattern.search(ok), ok
    for bad in ("", "rejected", "/rejected/", "a//b/", "rej ected/"):
        assert not pattern.search(bad), bad
    assert pattern.search(p["Default"])
    # Under the default (empty) ArchivePrefix, the events table projects YYYY/MM/DD/HH/: a
    # default quarantine there would be read as events.
    assert not re.match(r"^\d{4}/", p["Default"]), "RejectedPrefix must not be an hour folder"
    assert "ArchivePrefix" in " ".join(p["Description"].split())


def check_rejected_share_parameter(t):
    p = param(t, "RejectedShareAlarmThreshold")
    assert p["Type"] == "Number"
    assert (p["Default"], p["MinValue"], p["MaxValue"]) == (0.05, 0, 1), "a share, 0..1"
    assert "VariantRejected" in p["Description"]


def check_parameter_groups(t):
    groups = [g["Parameters"] for g in
              t["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]]
    with_archive = [g for g in groups if "ArchivePrefix" in g]
    assert len(with_archive) == 1 and "RejectedPrefix" in with_archive[0]
    with_thresholds = [g for g in groups if "UnknownVariantShareThreshold" in g]
    assert len(with_thresholds) == 1 and "RejectedShareAlarmThreshold" in with_thresholds[0]


def check_archiver_env(t):
    env = t[R]["ArchiverFunction"][P]["Environment"]["Variables"]
    assert env["EIS_REJECTED_PREFIX"] == {"Ref": "RejectedPrefix"}
    assert env["EIS_BUCKET"] == {"Ref": "ArchiveBucket"}, "the quarantine is in the archive bucket"
    # A replay judges events against the registry as the ingest does.
    ingest = t[R]["IngestFunction"][P]["Environment"]["Variables"]
    assert env["EIS_REGISTRY_MODE"] == ingest["EIS_REGISTRY_MODE"] == {"Ref": "RegistryMode"}


def check_rejected_permissions(t):
    stmts = archiver_statements(t)
    for action in ("s3:PutObject", "s3:AbortMultipartUpload", "s3:GetObject"):
        assert REJECTED_OBJECTS in resources_for(stmts, "Allow", action), action
    # Quarantined records are deleted by erasure only (docs/privacy.md): it overwrites a file
    # without the unit's records (PutObject, above) or deletes it, then deletes the old versions
    # and delete markers of the files it touched, under the two prefixes and nowhere else. No
    # Deny may stand in its way (the former KeepRejected made the quarantine undeletable).
    assert REJECTED_OBJECTS in resources_for(stmts, "Allow", "s3:DeleteObject"), "erasure deletes quarantine files"
    for action in ("s3:DeleteObject", "s3:DeleteObjectVersion"):
        scope = resources_for(stmts, "Allow", action)
        assert sorted(map(repr, scope)) == sorted(map(repr, [ARCHIVE_OBJECTS, REJECTED_OBJECTS])), (action, scope)
    for s in stmts:
        if s["Effect"] == "Deny":
            assert not set(as_list(s["Action"])) & ERASURE_ACTIONS, f"{s.get('Sid')} blocks erasure"
    # A locked version is refused, never bypassed (archive_locked): no retention rights.
    for forbidden in ("s3:BypassGovernanceRetention", "s3:PutObjectRetention", "s3:PutObjectLegalHold"):
        assert not resources_for(stmts, "Allow", forbidden), forbidden
    lock = resources_for(stmts, "Allow", "s3:GetBucketObjectLockConfiguration")
    assert lock == [BUCKET], f"erasure checks the bucket's Object Lock first: {lock}"
    # Listing, with or without versions: the bucket, under the archive's and the quarantine's
    # prefixes only.
    for action in ("s3:ListBucket", "s3:ListBucketVersions"):
        lists = [s for s in stmts if s["Effect"] == "Allow" and action in as_list(s["Action"])]
        assert len(lists) == 1, f"one {action} statement"
        assert lists[0]["Resource"] == BUCKET, (action, lists[0]["Resource"])
        assert list(lists[0]["Condition"]) == ["StringLike"], (action, lists[0]["Condition"])
        prefixes = as_list(lists[0]["Condition"]["StringLike"]["s3:prefix"])
        assert sorted(map(repr, prefixes)) == sorted(map(repr, LIST_PREFIXES)), (action, prefixes)


def check_rejected_glue_table(t):
    res = t[R]["RejectedGlueTable"]
    events = t[R]["ArchiveGlueTable"][P]
    assert res["Type"] == "AWS::Glue::Table"
    assert res[P]["DatabaseName"] == events["DatabaseName"], "same Glue database as events"
    assert res[P]["CatalogId"] == events["CatalogId"]
    table, ev = table_input(t, "RejectedGlueTable"), table_input(t, "ArchiveGlueTable")
    assert table["Name"] == "rejected_events"
    assert table["TableType"] == "EXTERNAL_TABLE"
    sd, ev_sd = table["StorageDescriptor"], ev["StorageDescriptor"]
    assert [(c["Name"], c["Type"]) for c in sd["Columns"]] == REJECTED_COLUMNS
    for key in ("InputFormat", "OutputFormat", "SerdeInfo"):
        assert sd[key] == ev_sd[key], f"{key} as the events table's"
    assert sd["SerdeInfo"]["SerializationLibrary"].endswith("ParquetHiveSerDe")
    assert table["PartitionKeys"] == ev["PartitionKeys"]
    assert [k["Name"] for k in table["PartitionKeys"]] == ["year", "month", "day", "hour"]
    assert not {k["Name"] for k in table["PartitionKeys"]} & {c for c, _ in REJECTED_COLUMNS}
    # The events table's projection, table parameters and layout, under the other prefix.
    location = "storage.location.template"
    params = {k: v for k, v in table["Parameters"].items() if k != location}
    assert params == {k: v for k, v in ev["Parameters"].items() if k != location}, (
        "the events table's projection and table parameters")
    assert params["projection.enabled"] == "true"
    template = table["Parameters"][location]
    assert sub_text(template) == sub_text(ev["Parameters"][location]).replace(
        "${ArchivePrefix}", "${RejectedPrefix}")
    assert sub_text(template) == "s3://${ArchiveBucket}/${RejectedPrefix}${!year}/${!month}/${!day}/${!hour}/"
    assert sub_text(sd["Location"]) == "s3://${ArchiveBucket}/${RejectedPrefix}"


def check_rejected_output(t):
    assert t["Outputs"]["RejectedGlueTable"]["Value"] == {"Fn::Sub": "${GlueDatabaseName}.rejected_events"}


def check_rejected_share_alarm(t):
    found = [name for name, a in t[R].items() if a["Type"] == "AWS::CloudWatch::Alarm"
             and any(REJECTED_QUERY.match(expression_text(m.get("Expression")))
                     for m in a[P].get("Metrics", []))]
    assert found == ["VariantRejectedShareAlarm"], f"one alarm on every variant's rejected share: {found}"
    p = t[R]["VariantRejectedShareAlarm"][P]
    assert len(p["Metrics"]) == 1, p["Metrics"]
    m = p["Metrics"][0]
    assert m["Id"] == "rejected" and m["ReturnData"] is True
    assert m["Label"] == "highest rejected share of any variant"
    assert m["Period"] == 900, "15-minute windows, as the parameter says"
    assert p["EvaluationPeriods"] == 1
    assert p["Threshold"] == {"Ref": "RejectedShareAlarmThreshold"}
    assert p["ComparisonOperator"] == "GreaterThanThreshold"
    assert p["TreatMissingData"] == "notBreaching", "no variant reporting is no alarm"
    assert p["AlarmActions"] == [{"Ref": "QualityAlarmTopic"}] == p["OKActions"]
    text = " ".join(p["AlarmDescription"].split())
    assert "rejected_events" in text and "docs/quarantine.md" in text, "say where to look"


def check_dashboard(t):
    dash = [d[P] for d in t[R].values() if d["Type"] == "AWS::CloudWatch::Dashboard"]
    assert len(dash) == 1, "one dashboard"
    assert "${VariantRejectedShareAlarm.Arn}" in sub_text(dash[0]["DashboardBody"])


CHECKS = {f.__name__[len("check_"):]: f for f in [
    check_rejected_prefix_parameter, check_rejected_share_parameter, check_parameter_groups,
    check_archiver_env, check_rejected_permissions, check_rejected_glue_table,
    check_rejected_output, check_rejected_share_alarm, check_dashboard,
]}


PREFIX = ["Parameters", "RejectedPrefix"]
SHARE = ["Parameters", "RejectedShareAlarmThreshold"]
AENV = [R, "ArchiverFunction", P, "Environment", "Variables"]
TABLE = [R, "RejectedGlueTable", P, "TableInput"]
COLUMNS = TABLE + ["StorageDescriptor", "Columns"]
ALARM = [R, "VariantRejectedShareAlarm", P]


def _ungroup(name):
    def mutate(t):
        for g in t["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]:
            if name in g["Parameters"]:
                g["Parameters"].remove(name)
    return mutate


def _statement(sid, **changes):
    def mutate(t):
        for s in t[R]["ArchiverRole"][P]["Policies"][0]["PolicyDocument"]["Statement"]:
            if isinstance(s, dict) and s.get("Sid") == sid:
                s.update(changes)
                return
        raise AssertionError(f"no statement {sid}")
    return mutate


def _drop_statement(sid):
    def mutate(t):
        doc = t[R]["ArchiverRole"][P]["Policies"][0]["PolicyDocument"]
        doc["Statement"] = [s for s in doc["Statement"] if not (isinstance(s, dict) and s.get("Sid") == sid)]
    return mutate


def _undash(t):
    body = t[R]["OperationsDashboard"][P]["DashboardBody"]["Fn::Sub"]
    body[0] = re.sub(r',\s*"\$\{VariantRejectedShareAlarm\.Arn\}"', "", body[0])


MUTATIONS = [
    ("rejected_prefix_parameter", set_at(PREFIX + ["Default"], "rejected")),
    ("rejected_prefix_parameter", set_at(PREFIX + ["Default"], "2026/")),
    ("rejected_prefix_parameter", set_at(PREFIX + ["AllowedPattern"], "^$|" + REJECTED_PATTERN)),
    ("rejected_prefix_parameter", set_at(PREFIX + ["AllowedPattern"], r"^[A-Za-z0-9/]+$")),
    ("rejected_prefix_parameter", delete_at(PREFIX + ["MinLength"])),
    ("rejected_share_parameter", set_at(SHARE + ["Default"], 5)),
    ("rejected_share_parameter", set_at(SHARE + ["MaxValue"], 100)),
    ("rejected_share_parameter", delete_at(SHARE)),
    ("parameter_groups", _ungroup("RejectedPrefix")),
    ("parameter_groups", _ungroup("RejectedShareAlarmThreshold")),
    ("archiver_env", delete_at(AENV + ["EIS_REJECTED_PREFIX"])),
    ("archiver_env", delete_at(AENV + ["EIS_REGISTRY_MODE"])),
    ("archiver_env", set_at(AENV + ["EIS_REJECTED_PREFIX"], {"Ref": "ArchivePrefix"})),
    # Missing IAM resource: the quarantine statement scoped to the archive instead.
    ("rejected_permissions", _statement("QuarantineRejected",
                                        Resource={"Fn::Sub": "${ArchiveBucket.Arn}/${ArchivePrefix}*"})),
    ("rejected_permissions", _statement("QuarantineRejected", Action=["s3:PutObject", "s3:AbortMultipartUpload"])),
    ("rejected_permissions", _drop_statement("QuarantineRejected")),
    ("rejected_permissions", _statement("ListArchive", Condition={
        "StringLike": {"s3:prefix": {"Fn::Sub": "${ArchivePrefix}*"}}})),
    # Erasure's rights: missing, widened, or blocked by the former Deny.
    ("rejected_permissions", _drop_statement("EraseQuarantine")),
    ("rejected_permissions", _statement("EraseQuarantine", Resource={"Fn::Sub": "${ArchiveBucket.Arn}/*"})),
    ("rejected_permissions", _statement("EraseVersions", Resource=ARCHIVE_OBJECTS)),
    ("rejected_permissions", _statement("EraseVersions", Resource={"Fn::Sub": "${ArchiveBucket.Arn}/*"})),
    ("rejected_permissions", _statement("EraseVersions", Resource=[ARCHIVE_OBJECTS, REJECTED_OBJECTS, "*"])),
    ("rejected_permissions", _statement("EraseListVersions", Condition={
        "StringLike": {"s3:prefix": {"Fn::Sub": "${ArchivePrefix}*"}}})),
    ("rejected_permissions", _statement("EraseListVersions", Condition={
        "StringLike": {"s3:prefix": LIST_PREFIXES + ["*"]}})),
    ("rejected_permissions", _statement("EraseListVersions", Condition={
        "StringNotLike": {"s3:prefix": LIST_PREFIXES}})),
    ("rejected_permissions", _statement("EraseListVersions", Action=["s3:ListBucket", "s3:ListBucketVersions"])),
    ("rejected_permissions", _drop_statement("EraseLockCheck")),
    ("rejected_permissions", _statement("EraseLockCheck", Action=["s3:GetBucketObjectLockConfiguration",
                                                                  "s3:BypassGovernanceRetention"])),
    ("rejected_permissions", lambda t: t[R]["ArchiverRole"][P]["Policies"][0]["PolicyDocument"][
        "Statement"].append({"Sid": "KeepRejected", "Effect": "Deny", "Action": "s3:DeleteObject",
                             "Resource": REJECTED_OBJECTS})),
    ("rejected_glue_table", set_at(COLUMNS + [4, "Type"], "bigint")),
    ("rejected_glue_table", lambda t: t[R]["RejectedGlueTable"][P]["TableInput"]["StorageDescriptor"][
        "Columns"].pop()),
    ("rejected_glue_table", lambda t: t[R]["RejectedGlueTable"][P]["TableInput"]["StorageDescriptor"][
        "Columns"].reverse()),
    ("rejected_glue_table", set_at(TABLE + ["Parameters", "storage.location.template"], {
        "Fn::Sub": "s3://${ArchiveBucket}/${ArchivePrefix}${!year}/${!month}/${!day}/${!hour}/"})),
    ("rejected_glue_table", set_at(TABLE + ["StorageDescriptor", "Location"],
                                   {"Fn::Sub": "s3://${ArchiveBucket}/${ArchivePrefix}"})),
    ("rejected_glue_table", delete_at(TABLE + ["Parameters", "projection.hour.digits"])),
    ("rejected_glue_table", set_at(TABLE + ["Parameters", "projection.year.range"], "2000,2099")),
    # The events table's projection moves on: the quarantine's must follow.
    ("rejected_glue_table", set_at([R, "ArchiveGlueTable", P, "TableInput", "Parameters",
                                    "projection.day.range"], "1,30")),
    ("rejected_glue_table", delete_at(TABLE + ["PartitionKeys", 3])),
    ("rejected_glue_table", set_at(TABLE + ["Name"], "rejected")),
    ("rejected_glue_table", set_at([R, "RejectedGlueTable", P, "DatabaseName"], "other")),
    ("rejected_glue_table", set_at(TABLE + ["StorageDescriptor", "SerdeInfo", "SerializationLibrary"],
                                   "org.openx.data.jsonserde.JsonSerDe")),
    ("rejected_output", delete_at(["Outputs", "RejectedGlueTable"])),
    ("rejected_output", set_at(["Outputs", "RejectedGlueTable", "Value"],
                               {"Fn::Sub": "${GlueDatabaseName}.events"})),
    ("rejected_share_alarm", delete_at([R, "VariantRejectedShareAlarm"])),
    ("rejected_share_alarm", set_at(ALARM + ["ComparisonOperator"], "LessThanThreshold")),
    ("rejected_share_alarm", set_at(ALARM + ["Metrics", 0, "Expression"],
                                    {"Fn::Sub": 'SELECT AVG(VariantRejected) FROM SCHEMA("EIS/${AWS::StackName}", '
                                                'Experiment, Variant)'})),
    ("rejected_share_alarm", set_at(ALARM + ["Metrics", 0, "Expression"],
                                    'SELECT AVG(VariantRejected) FROM SCHEMA("EIS", Experiment, Variant) '
                                    "GROUP BY Experiment, Variant")),
    ("rejected_share_alarm", set_at(ALARM + ["Metrics", 0, "Expression"],
                                    'SELECT MAX(VariantRejected) FROM SCHEMA("EIS", Experiment, Variant) '
                                    "GROUP BY Experiment, Variant")),
    ("rejected_share_alarm", set_at(ALARM + ["Metrics", 0, "Period"], 300)),
    ("rejected_share_alarm", set_at(ALARM + ["Threshold"], 0.05)),
    ("rejected_share_alarm", set_at(ALARM + ["TreatMissingData"], "breaching")),
    ("rejected_share_alarm", set_at(ALARM + ["AlarmActions"], [])),
    ("rejected_share_alarm", set_at(ALARM + ["AlarmDescription"], "Rejected events.")),
    ("dashboard", _undash),
]


test_check_holds, test_check_catches, test_every_check_has_a_mutation = mutation_tests(CHECKS, MUTATIONS)

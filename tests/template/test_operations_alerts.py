"""Operations in template.yaml beyond the first alarms (test_operations.py): the EMF namespace
per stack, the alarms on ingest errors and latency, the quarantine, the fan-out, RDS Proxy and
database memory, the two topics, X-Ray, the ingest canary and the archive's replica.

As in test_template.py: every check runs on the real template and on copies broken on purpose,
where it must fail.
"""

import re

from conftest import EMF_NAMESPACE, TOPICS, delete_at, expression_text, mutation_tests, notifies, set_at
from test_operations import alarms, alarms_on, metrics_of, text
from test_template import allowed, role_statements

R = "Resources"
P = "Properties"
# The functions that write EMF metrics (the migrator writes none).
RUST_FUNCTIONS = ("IngestFunction", "ArchiverFunction")


def alarm(t, name):
    a = t[R][name]
    assert a["Type"] == "AWS::CloudWatch::Alarm", name
    return a[P]


def refs_in(value):
    """Every resource name a value refers to (Ref, GetAtt, ${Name} in a Sub)."""
    found = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref":
                found.add(inner)
            elif key == "Fn::GetAtt":
                found.add(inner[0] if isinstance(inner, list) else inner.split(".")[0])
            elif key == "Fn::Sub":
                body = inner[0] if isinstance(inner, list) else inner
                found |= {m.split(".")[0] for m in re.findall(r"\$\{([^}!]+)\}", body)}
                if isinstance(inner, list):
                    found |= refs_in(inner[1])
            else:
                found |= refs_in(inner)
    elif isinstance(value, list):
        for inner in value:
            found |= refs_in(inner)
    return found


def depends_on(t, name, seen=None):
    """Resources `name` depends on, transitively (references and DependsOn)."""
    seen = set() if seen is None else seen
    res = t[R].get(name)
    if res is None or name in seen:
        return seen
    seen.add(name)
    explicit = res.get("DependsOn", [])
    for other in refs_in(res.get(P, {})) | set([explicit] if isinstance(explicit, str) else explicit):
        depends_on(t, other, seen)
    return seen


# --- checks -------------------------------------------------------------------------------------


def check_metrics_namespace(t):
    """Every function writes EMF under the stack's namespace, and every alarm, metric filter and
    dashboard line on a metric that is not AWS's reads that namespace."""
    for name in RUST_FUNCTIONS:
        env = t[R][name][P]["Environment"]["Variables"]
        assert env.get("EIS_METRICS_NAMESPACE") == {"Fn::Sub": EMF_NAMESPACE}, name
    for name, a in alarms(t).items():
        for ns, metric, _ in metrics_of(a[P]):
            assert ns.startswith("AWS/") or ns == EMF_NAMESPACE, f"{name}: {metric} in {ns}"
        for m in a[P].get("Metrics", []):
            for schema in re.findall(r'SCHEMA\("([^"]+)"', expression_text(m.get("Expression"))):
                assert schema == EMF_NAMESPACE, f"{name}: SCHEMA({schema})"
    for name, f in t[R].items():
        if f["Type"] == "AWS::Logs::MetricFilter":
            for mt in f[P]["MetricTransformations"]:
                assert text(mt["MetricNamespace"]) == EMF_NAMESPACE, name
    body = t[R]["OperationsDashboard"][P]["DashboardBody"]["Fn::Sub"][0]
    for ns in re.findall(r'^\s*\["([^"]+)", "', body, re.M):
        assert ns.startswith("AWS/") or ns == EMF_NAMESPACE, f"dashboard: {ns}"


def check_api_latency(t):
    names = alarms_on(t, "AWS/ApiGateway", "Latency", ApiId="IngestApi")
    assert len(names) == 1, names
    p = alarm(t, names[0])
    assert p["ExtendedStatistic"] == "p99" and p["Threshold"] == {"Ref": "ApiLatencyP99AlarmMs"}
    assert p["ComparisonOperator"] == "GreaterThanThreshold"


def check_ingest_errors_and_duration(t):
    errors = alarms_on(t, "AWS/Lambda", "Errors", FunctionName="IngestFunction")
    assert len(errors) == 1, errors
    p = alarm(t, errors[0])
    assert p["Threshold"] == 0 and p["Period"] <= 60, "a canary's rollback alarm must react within its 5 minutes"
    duration = alarms_on(t, "AWS/Lambda", "Duration", FunctionName="IngestFunction")
    assert len(duration) == 1, duration
    p = alarm(t, duration[0])
    timeout_ms = t[R]["IngestFunction"][P]["Timeout"] * 1000
    assert p["Statistic"] == "Maximum" and p["Threshold"] == 0.8 * timeout_ms, "near the timeout: 80% of it"


def check_quarantine_failures(t):
    p = alarm(t, "QuarantineFailuresAlarm")
    query = expression_text(p["Metrics"][0]["Expression"])
    # Every route, so a route added to the ingest is watched too.
    assert re.fullmatch(r'SELECT SUM\(QuarantineFailures\) FROM SCHEMA\("[^"]+", Function, Route\) '
                        r"WHERE Function = 'ingest'", query), query
    assert p["Threshold"] == 0 and p["ComparisonOperator"] == "GreaterThanThreshold"


def check_fanout_alarms(t):
    workers = alarms_on(t, EMF_NAMESPACE, "WorkersFailed", Function="archiver")
    assert len(workers) == 1, workers
    dropped = alarms_on(t, "AWS/Lambda", "AsyncEventsDropped", FunctionName="ArchiverFunction")
    assert len(dropped) == 1, dropped
    for name in workers + dropped:
        assert alarm(t, name)["Threshold"] == 0, name


def check_proxy_and_memory(t):
    for metric, op in (("DatabaseConnectionsBorrowLatency", "GreaterThanThreshold"),
                       ("DatabaseConnectionsCurrentlySessionPinned", "GreaterThanThreshold")):
        names = alarms_on(t, "AWS/RDS", metric, ProxyName="DbProxyName")
        assert len(names) == 1, metric
        assert t[R][names[0]].get("Condition") == "HasDbProxyName", "no proxy, no proxy alarm"
        assert alarm(t, names[0])["ComparisonOperator"] == op
    assert t["Conditions"]["HasDbProxyName"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "DbProxyName"}, ""]}]}
    memory = alarms_on(t, "AWS/RDS", "FreeableMemory", DBInstanceIdentifier="DbInstanceIdentifier")
    assert len(memory) == 1
    assert t[R][memory[0]].get("Condition") == "HasDbInstance"
    p = alarm(t, memory[0])
    assert p["ComparisonOperator"] == "LessThanThreshold" and p["Threshold"] == {"Ref": "DbFreeableMemoryAlarmMb"}
    assert "free / 1048576" in [m.get("Expression") for m in p["Metrics"]], "MiB, as the parameter says"


def check_topics(t):
    """Two topics; every alarm that notifies names exactly one of them for both ALARM and OK
    (which one: test_runbooks.py, against docs/operations.md)."""
    for topic in TOPICS:
        assert t[R][topic]["Type"] == "AWS::SNS::Topic", topic
    policy = t[R]["AlarmTopicTlsOnlyPolicy"][P]
    assert sorted(x["Ref"] for x in policy["Topics"]) == sorted(TOPICS)
    for st in policy["PolicyDocument"]["Statement"]:
        assert sorted(x["Ref"] for x in st["Resource"]) == sorted(TOPICS), st["Sid"]
    subs = {s[P]["TopicArn"]["Ref"]: s.get("Condition") for s in t[R].values()
            if s["Type"] == "AWS::SNS::Subscription"}
    assert subs == {"AlarmTopic": "HasAlarmEmail", "QualityAlarmTopic": "HasQualityAlarmEmail"}
    for name, a in t[R].items():
        if a["Type"] in ("AWS::CloudWatch::Alarm", "AWS::CloudWatch::CompositeAlarm") and a[P].get("AlarmActions"):
            assert notifies(a[P]) in TOPICS, name
            assert a[P].get("OKActions") == a[P]["AlarmActions"], f"{name}: OK goes where ALARM went"


def check_tracing(t):
    for name in ("IngestFunction", "ArchiverFunction"):
        assert t[R][name][P].get("Tracing") == "Active", name
        stmts = role_statements(t, name)
        for action in ("xray:PutTraceSegments", "xray:PutTelemetryRecords"):
            assert allowed(stmts, action) == ["*"], (name, action)


def check_canary(t):
    """A canary on the ingest alias, rolled back by the 5xx-rate and the errors alarms. No
    rollback alarm may depend on the API or the alias: the alias's update depends on its
    alarms, and the API refers to the alias (CloudFormation refuses the cycle)."""
    fn = t[R]["IngestFunction"][P]
    assert fn["AutoPublishAlias"] == "live"
    pref = fn["DeploymentPreference"]
    assert pref["Type"].startswith("Canary"), pref["Type"]
    assert pref.get("Enabled", True) is True
    rollback = [a["Ref"] for a in pref["Alarms"]]
    assert set(rollback) == {"Ingest5xxRateAlarm", "IngestErrorsAlarm"}, rollback
    for name in rollback:
        deps = depends_on(t, name)
        assert "IngestApi" not in deps, f"{name} depends on the API: a dependency cycle"
    five = [m for m in metrics_of(alarm(t, "Ingest5xxRateAlarm")) if m[1] == "Api5xx"]
    assert five, "the 5xx rate"
    filters = {f[P]["MetricTransformations"][0]["MetricName"]: f[P]["FilterPattern"] for f in t[R].values()
               if f["Type"] == "AWS::Logs::MetricFilter" and f[P]["LogGroupName"] == {"Ref": "ApiAccessLogGroup"}}
    assert filters["Api5xx"] == '{ $.status = "5*" }' and filters["ApiRequests"] == '{ $.status = "*" }'


def check_replication(t):
    param = t["Parameters"]["ArchiveReplicaBucketArn"]
    assert param["Default"] == "", "off by default"
    assert t["Conditions"]["HasArchiveReplica"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "ArchiveReplicaBucketArn"}, ""]}]}
    cond, config, off = t[R]["ArchiveBucket"][P]["ReplicationConfiguration"]["Fn::If"]
    assert cond == "HasArchiveReplica" and off == {"Ref": "AWS::NoValue"}
    assert config["Role"] == {"Fn::GetAtt": ["ArchiveReplicationRole", "Arn"]}
    (rule,) = config["Rules"]
    assert rule["Status"] == "Enabled" and rule["Filter"] == {"Prefix": ""}, "the whole bucket, quarantine too"
    assert rule["DeleteMarkerReplication"] == {"Status": "Enabled"}
    assert rule["Destination"]["Bucket"] == {"Ref": "ArchiveReplicaBucketArn"}
    for name in ("ArchiveReplicationRole", "ArchiveReplicationPolicy"):
        assert t[R][name].get("Condition") == "HasArchiveReplica", name
    assert "ArchiveBucket" not in refs_in(t[R]["ArchiveReplicationRole"][P]), "bucket -> role -> bucket: a cycle"
    policy = t[R]["ArchiveReplicationPolicy"][P]
    assert policy["Roles"] == [{"Ref": "ArchiveReplicationRole"}]
    stmts = policy["PolicyDocument"]["Statement"]
    assert allowed(stmts, "s3:ReplicateObject") == [{"Fn::Sub": "${ArchiveReplicaBucketArn}/*"}]
    assert allowed(stmts, "s3:ReplicateDelete") == [{"Fn::Sub": "${ArchiveReplicaBucketArn}/*"}]
    assert allowed(stmts, "s3:GetObjectVersionForReplication") == [{"Fn::Sub": "${ArchiveBucket.Arn}/*"}]
    assert allowed(stmts, "s3:GetReplicationConfiguration") == [{"Fn::GetAtt": ["ArchiveBucket", "Arn"]}]


CHECKS = {f.__name__[len("check_"):]: f for f in [
    check_metrics_namespace, check_api_latency, check_ingest_errors_and_duration,
    check_quarantine_failures, check_fanout_alarms, check_proxy_and_memory, check_topics,
    check_tracing, check_canary, check_replication,
]}

IENV = [R, "IngestFunction", P, "Environment", "Variables"]
REPL = [R, "ArchiveBucket", P, "ReplicationConfiguration", "Fn::If", 1, "Rules", 0]


def _statement(role, sid, **changes):
    def mutate(t):
        for s in t[R][role][P]["Policies"][0]["PolicyDocument"]["Statement"]:
            if isinstance(s, dict) and s.get("Sid") == sid:
                s.update(changes)
    return mutate


MUTATIONS = [
    ("metrics_namespace", delete_at(IENV + ["EIS_METRICS_NAMESPACE"])),
    ("metrics_namespace", set_at([R, "ArchiverFunction", P, "Environment", "Variables", "EIS_METRICS_NAMESPACE"], "EIS")),
    ("metrics_namespace", set_at([R, "ArchiveLagAlarm", P, "Namespace"], "EIS")),   # the shared namespace of before
    ("metrics_namespace", set_at([R, "ExperimentCrossoverAlarm", P, "Metrics", 0, "Expression"],
                                 'SELECT MAX(CrossoverShare) FROM SCHEMA("EIS", Experiment)')),
    ("metrics_namespace", set_at([R, "ApiThrottledMetricFilter", P, "MetricTransformations", 0, "MetricNamespace"], "EIS")),
    ("api_latency", delete_at([R, "ApiLatencyP99Alarm"])),
    ("api_latency", set_at([R, "ApiLatencyP99Alarm", P, "ExtendedStatistic"], "p50")),
    ("ingest_errors_and_duration", delete_at([R, "IngestErrorsAlarm"])),
    ("ingest_errors_and_duration", delete_at([R, "IngestDurationNearTimeoutAlarm"])),
    ("ingest_errors_and_duration", set_at([R, "IngestFunction", P, "Timeout"], 20)),
    ("quarantine_failures", delete_at([R, "QuarantineFailuresAlarm"])),
    ("quarantine_failures", set_at([R, "QuarantineFailuresAlarm", P, "Metrics", 0, "Expression"], {
        "Fn::Sub": 'SELECT SUM(QuarantineFailures) FROM SCHEMA("EIS/${AWS::StackName}", Function, Route) '
                   "WHERE Route = 'POST /events'"})),
    ("fanout_alarms", delete_at([R, "ArchiverWorkersFailedAlarm"])),
    ("fanout_alarms", delete_at([R, "ArchiverAsyncEventsDroppedAlarm"])),
    ("proxy_and_memory", delete_at([R, "DbProxyPinningAlarm"])),
    ("proxy_and_memory", delete_at([R, "DbProxyBorrowLatencyAlarm", "Condition"])),
    ("proxy_and_memory", delete_at([R, "DbFreeableMemoryAlarm"])),
    ("topics", delete_at([R, "QualityAlarmTopic"])),
    ("topics", set_at([R, "ApiLatencyP99Alarm", P, "OKActions"], [{"Ref": "AlarmTopic"}])),
    ("topics", set_at([R, "DbCpuAlarm", P, "AlarmActions"], [{"Ref": "AlarmTopic"}, {"Ref": "QualityAlarmTopic"}])),
    ("topics", set_at([R, "AlarmTopicTlsOnlyPolicy", P, "Topics"], [{"Ref": "AlarmTopic"}])),
    ("tracing", delete_at([R, "ArchiverFunction", P, "Tracing"])),
    ("tracing", _statement("IngestRole", "Tracing", Action=["xray:PutTelemetryRecords"])),
    ("canary", delete_at([R, "IngestFunction", P, "DeploymentPreference"])),
    ("canary", set_at([R, "IngestFunction", P, "DeploymentPreference", "Type"], "AllAtOnce")),
    ("canary", set_at([R, "IngestFunction", P, "DeploymentPreference", "Alarms"], [{"Ref": "IngestErrorsAlarm"}])),
    # The 5xx rate as it was, on AWS/ApiGateway: the alias would depend on the API.
    ("canary", set_at([R, "Ingest5xxRateAlarm", P, "Metrics", 0, "MetricStat", "Metric"], {
        "Namespace": "AWS/ApiGateway", "MetricName": "5xx",
        "Dimensions": [{"Name": "ApiId", "Value": {"Ref": "IngestApi"}}]})),
    ("replication", delete_at([R, "ArchiveBucket", P, "ReplicationConfiguration"])),
    ("replication", set_at(["Parameters", "ArchiveReplicaBucketArn", "Default"], "arn:aws:s3:::replica")),
    ("replication", set_at(REPL + ["DeleteMarkerReplication", "Status"], "Disabled")),
    ("replication", set_at(REPL + ["Filter"], {"Prefix": "2026/"})),
    ("replication", set_at([R, "ArchiveReplicationPolicy", P, "PolicyDocument", "Statement", 2, "Resource"], "*")),
]


test_check_holds, test_check_catches, test_every_check_has_a_mutation = mutation_tests(CHECKS, MUTATIONS)

"""Erasure (issue 27) and the privacy settings of the deployment (docs/deploy.md, "Erasure
(issue 27)"): the erasure schedule on the archiver and its fixture, the two alarms on the erasure
runs' EMF metrics (a request older than 24 hours; no run at all), the access log's source IP
behind AccessLogSourceIp, the archive bucket's expiry of old versions and of the quarantine,
and in infra/database.yaml the PostgreSQL log without bind parameters and with a retention.

As in test_template.py and test_runbooks.py: every check runs on the real files and on copies
broken on purpose, where it must fail.
"""

import copy
import json
import re
import sys
import types
import urllib.request

import pytest

from conftest import EMF_NAMESPACE, ROOT, load_cfn

R = "Resources"
P = "Properties"
ERASE_INPUT = {"action": "erase"}
ERASURE_METRIC = "ErasureOldestPendingSeconds"
DAY = 86400
RDS_LOG = "/aws/rds/instance/${Database}/postgresql"
# What CloudWatch Logs accepts as a retention (template.yaml's LogRetentionDays lists the same).
RETENTIONS = [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192,
              2557, 2922, 3288, 3653]


# --- reading -------------------------------------------------------------------------------------


def as_list(value):
    return value if isinstance(value, list) else [value]


def sub_parts(value):
    """(text, variables) of a !Sub, either form."""
    assert isinstance(value, dict) and "Fn::Sub" in value, value
    sub = value["Fn::Sub"]
    return (sub[0], sub[1]) if isinstance(sub, list) else (sub, {})


def erase_schedules(t):
    events = t[R]["ArchiverFunction"][P]["Events"]
    return {name: e[P] for name, e in events.items() if e["Type"] == "Schedule"
            and "Input" in e[P] and json.loads(e[P]["Input"]) == ERASE_INPUT}


def erasure_alarms(t, statistic):
    """Alarms on the erasure runs' EMF metric with this statistic."""
    return {name: a[P] for name, a in t[R].items() if a["Type"] == "AWS::CloudWatch::Alarm"
            and a[P].get("MetricName") == ERASURE_METRIC and a[P].get("Statistic") == statistic}


def one(found, what):
    assert len(found) == 1, f"one {what}: {sorted(found)}"
    return next(iter(found.values()))


def check_alarm_basics(p):
    """The erasure runs' EMF document: the stack's namespace, no dimensions; the working-hours
    topic for ALARM and OK."""
    assert p["Namespace"] == {"Fn::Sub": EMF_NAMESPACE}, p["Namespace"]
    assert not p.get("Dimensions"), "the EMF document has no dimensions: an alarm with one watches nothing"
    assert p["AlarmActions"] == [{"Ref": "QualityAlarmTopic"}] == p["OKActions"]


def access_log(t, source_ip):
    """The access log line's format as deployed with AccessLogSourceIp = source_ip."""
    text, variables = sub_parts(t[R]["IngestApi"][P]["AccessLogSettings"]["Format"])
    values = {}
    for name, value in variables.items():
        if isinstance(value, dict) and "Fn::If" in value:
            condition, when_true, when_false = value["Fn::If"]
            assert t["Conditions"][condition] == {"Fn::Equals": [{"Ref": "AccessLogSourceIp"}, "true"]}
            value = when_true if source_ip == "true" else when_false
        values[name] = value
    line = re.sub(r"\$\{([^}!]+)\}", lambda m: values[m.group(1)], text)
    return json.loads(line)


def retention_code(db):
    """The custom resource's inline code (the function's index.py)."""
    return db[R]["LogRetentionFunction"][P]["Code"]["ZipFile"]


# --- checks ----------------------------------------------------------------------------------------


def check_erasure_schedule(f):
    t = f["template"]
    sched = one(erase_schedules(t), 'schedule with the input {"action":"erase"}')
    assert sched["Schedule"] == {"Ref": "ErasureSchedule"}
    assert sched.get("State", "ENABLED") == "ENABLED" and sched.get("Enabled", True) is True
    p = t["Parameters"]["ErasureSchedule"]
    assert p["Default"] == "rate(1 hour)"
    assert p["AllowedPattern"] == t["Parameters"]["AuditSchedule"]["AllowedPattern"]
    grouped = [g["Parameters"] for g in t["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
               if "HealthSchedule" in g["Parameters"]]
    assert grouped and "ErasureSchedule" in grouped[0], "grouped with the archiver's other schedules"
    # The reservation covers an erasure run beside the fan-out (test_template.check_fanout).
    inputs = [e for e in t[R]["ArchiverFunction"][P]["Events"].values()
              if e["Type"] == "Schedule" and "Input" in e[P]]
    for key, row in t["Mappings"]["ArchiverConcurrency"].items():
        assert row["Reserved"] == int(key) + len(inputs), (key, row)
    assert json.loads(f["fixture"]) == ERASE_INPUT, "events/archiver-erase.json"


def check_backlog_alarm(f):
    t = f["template"]
    p = one(erasure_alarms(t, "Maximum"), f"alarm on the Maximum of {ERASURE_METRIC}")
    check_alarm_basics(p)
    assert p["Threshold"] == DAY and p["ComparisonOperator"] == "GreaterThanThreshold", "older than 24 h"
    assert p["Period"] == 3600, "the default schedule's hour"
    assert p.get("DatapointsToAlarm", p["EvaluationPeriods"]) == 1 < p["EvaluationPeriods"], \
        "one late hour fires; one hour without a run in between does not clear it"
    # Missing data is no news: neither an overdue request (breaching) nor a clean bill (OK).
    assert p["TreatMissingData"] == "missing", p["TreatMissingData"]


def check_runs_missing_alarm(f):
    """The job not running at all is noticed: an alarm on the runs' SampleCount, breaching when
    no run reports, over the window the ErasureSchedule's description promises."""
    t = f["template"]
    p = one(erasure_alarms(t, "SampleCount"), f"alarm on the SampleCount of {ERASURE_METRIC}")
    check_alarm_basics(p)
    assert p["TreatMissingData"] == "breaching", "no run, no data: that is what it must see"
    assert p["ComparisonOperator"] == "LessThanThreshold" and p["Threshold"] == 1
    periods = p["EvaluationPeriods"]
    assert p.get("DatapointsToAlarm", periods) == periods, "every hour of the window without a run"
    hours = p["Period"] * periods / 3600
    assert hours == int(hours) and 1 < hours < 24, hours
    described = " ".join(t["Parameters"]["ErasureSchedule"]["Description"].split())
    assert f"a run in every {int(hours)} hours" in described, (hours, described)
    for name in erasure_alarms(t, "Maximum"):
        assert t[R][name][P]["Period"] <= p["Period"] * periods


def check_dashboard(f):
    t = f["template"]
    body, _ = sub_parts(t[R]["OperationsDashboard"][P]["DashboardBody"])
    for name in list(erasure_alarms(t, "Maximum")) + list(erasure_alarms(t, "SampleCount")):
        assert "${%s.Arn}" % name in body, f"{name} is not in the dashboard's alarm widget"
    for metric in (ERASURE_METRIC, "ErasureRequestsCompleted"):
        assert f'["EIS/${{AWS::StackName}}", "{metric}"' in body, metric


def check_access_log_source_ip(f):
    t = f["template"]
    p = t["Parameters"]["AccessLogSourceIp"]
    assert p["Default"] == "true", "today's access log by default (the 429 runbook reads the ip)"
    assert sorted(p["AllowedValues"]) == ["false", "true"]
    on, off = access_log(t, "true"), access_log(t, "false")
    assert on["ip"] == "$context.identity.sourceIp"
    assert "ip" not in off and "sourceIp" not in json.dumps(off), off
    assert set(on) - set(off) == {"ip"}, "only the source IP goes"
    # The metric filters read the access log: nothing of theirs may go with the IP.
    for name, res in t[R].items():
        if res["Type"] == "AWS::Logs::MetricFilter" and res[P]["LogGroupName"] == {"Ref": "ApiAccessLogGroup"}:
            for field in re.findall(r"\$\.(\w+)", res[P]["FilterPattern"]):
                assert field in off, f"{name} reads {field}, which AccessLogSourceIp=false drops"


def check_bucket_expiry(f):
    """Old versions go within the month an erasure is owed in; the quarantine, under the very
    prefix the archiver writes it to, after RejectedRetentionDays."""
    t = f["template"]
    rules = [r for r in t[R]["ArchiveBucket"][P]["LifecycleConfiguration"]["Rules"] if r["Status"] == "Enabled"]
    noncurrent = [r for r in rules if "NoncurrentVersionExpiration" in r]
    assert len(noncurrent) == 1 and "Prefix" not in noncurrent[0] and "Filter" not in noncurrent[0]
    assert noncurrent[0]["NoncurrentVersionExpiration"]["NoncurrentDays"] == {"Ref": "ArchiveNoncurrentVersionDays"}
    assert t["Parameters"]["ArchiveNoncurrentVersionDays"]["Default"] <= 30, "within a month"
    quarantine = [r for r in rules if "ExpirationInDays" in r]
    assert len(quarantine) == 1, quarantine
    archiver = t[R]["ArchiverFunction"][P]["Environment"]["Variables"]
    assert quarantine[0]["Prefix"] == archiver["EIS_REJECTED_PREFIX"] == {"Ref": "RejectedPrefix"}
    assert t["Parameters"]["RejectedPrefix"]["Default"] == "rejected/"
    assert quarantine[0]["ExpirationInDays"] == {"Ref": "RejectedRetentionDays"}
    assert t["Parameters"]["RejectedRetentionDays"]["Default"] == 90


def check_object_lock_comment(f):
    """Object Lock stays an option; the template says that erasure refuses it."""
    text = f["template_text"]
    comment = re.search(r"((?:^  #[^\n]*\n)+)  ArchiveProtection:\n", text, re.M)
    assert comment, "no comment above ArchiveProtection"
    assert "archive_locked" in comment.group(1) and "rasure" in comment.group(1)
    assert set(f["template"]["Parameters"]["ArchiveProtection"]["AllowedValues"]) == {"Versioning", "ObjectLock"}


def check_postgres_log_parameters(f):
    group = f["database"][R]["DatabaseParameterGroup"][P]
    params = group["Parameters"]
    assert params["log_min_duration_statement"] == "1000", "slow statements are still logged"
    assert params["log_parameter_max_length"] == "0", "... without their bind parameters"
    assert params["log_parameter_max_length_on_error"] == "0", "... nor a failed statement's"
    # A new Description replaces the parameter group (and its instance's association).
    assert group["Description"] == "EIS PostgreSQL (TLS required, slow statements logged)"


def check_postgres_log_retention(f):
    """Every log the instance exports gets a retention, set by a custom resource (RDS creates the
    group itself, so no AWS::Logs::LogGroup of the stack may claim its name)."""
    db = f["database"]
    exports = db[R]["Database"][P]["EnableCloudwatchLogsExports"]
    assert "postgresql" in exports
    customs = {sub_parts(r[P]["LogGroupName"])[0]: r[P] for r in db[R].values()
               if r["Type"].startswith("Custom::") and "LogGroupName" in r.get(P, {})}
    for export in exports:
        name = f"/aws/rds/instance/${{Database}}/{export}"
        assert name in customs, f"no retention for the exported {export} log"
        custom = customs[name]
        assert custom["RetentionInDays"] == {"Ref": "PostgresLogRetentionDays"}
        assert custom["ServiceToken"] == {"Fn::GetAtt": ["LogRetentionFunction", "Arn"]}
    for res in db[R].values():
        if res["Type"] == "AWS::Logs::LogGroup":
            name = res[P]["LogGroupName"]
            text = sub_parts(name)[0] if isinstance(name, dict) else name
            assert not text.startswith("/aws/rds/"), f"RDS creates {text} itself: 'already exists'"
            assert res[P].get("RetentionInDays"), text
    p = db["Parameters"]["PostgresLogRetentionDays"]
    assert p["Default"] == 30 and p["AllowedValues"] == RETENTIONS
    grouped = {x for g in db["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
               for x in g["Parameters"]}
    assert "PostgresLogRetentionDays" in grouped
    # Its function may touch that log group only.
    fn = db[R]["LogRetentionFunction"][P]
    assert "VpcConfig" not in fn, "the private subnets have no route to CloudWatch Logs"
    role = db[R][fn["Role"]["Fn::GetAtt"][0]][P]
    stmts = [s for pol in role["Policies"] for s in as_list(pol["PolicyDocument"]["Statement"])]
    logs = [s for s in stmts if {"logs:CreateLogGroup", "logs:PutRetentionPolicy"} & set(as_list(s["Action"]))]
    assert logs, "the function needs logs:CreateLogGroup and logs:PutRetentionPolicy"
    for s in logs:
        assert set(as_list(s["Action"])) == {"logs:CreateLogGroup", "logs:PutRetentionPolicy"}, s["Action"]
        for resource in as_list(s["Resource"]):
            assert sub_parts(resource)[0].split(":log-group:", 1)[1] in (RDS_LOG, RDS_LOG + ":*"), resource
    for s in stmts:
        assert "*" not in as_list(s["Resource"]), s


class _AlreadyExists(Exception):
    pass


def run_handler(code, request_type, fail_with=None):
    """Runs the custom resource's code with a stand-in CloudWatch Logs client and response URL:
    (the Logs calls, the answers PUT to the response URL, what the handler raised)."""
    calls, answers, raised = [], [], []

    class Logs:
        exceptions = types.SimpleNamespace(ResourceAlreadyExistsException=_AlreadyExists)

        def create_log_group(self, **kw):
            calls.append(("create_log_group", kw))
            raise _AlreadyExists("RDS made it first")

        def put_retention_policy(self, **kw):
            calls.append(("put_retention_policy", kw))
            if fail_with:
                raise fail_with

    boto3 = types.ModuleType("boto3")
    boto3.client = lambda service: Logs() if service == "logs" else pytest.fail(service)

    def urlopen(request, timeout):
        answers.append((request.get_method(), request.full_url, request.get_header("Content-type"),
                        json.loads(request.data)))
        return types.SimpleNamespace(read=lambda: b"")

    event = {"RequestType": request_type, "ResponseURL": "https://cloudformation-custom-resource-response/x",
             "StackId": "stack", "RequestId": "request", "LogicalResourceId": "PostgresLogRetention",
             "ResourceProperties": {"LogGroupName": "/aws/rds/instance/db-1/postgresql", "RetentionInDays": "30"}}
    if request_type != "Create":
        event["PhysicalResourceId"] = "/aws/rds/instance/db-1/postgresql"
    saved = sys.modules.get("boto3")
    sys.modules["boto3"] = boto3
    original = urllib.request.urlopen
    urllib.request.urlopen = urlopen
    try:
        module = types.ModuleType("index")
        exec(compile(code, "index.py", "exec"), module.__dict__)  # noqa: S102 - the template's own code
        module.handler(event, types.SimpleNamespace(log_group_name="/eis/x/log-retention"))
    except Exception as e:  # noqa: BLE001 - what Lambda would see: the check judges it
        raised.append(e)
    finally:
        urllib.request.urlopen = original
        if saved is None:
            sys.modules.pop("boto3")
        else:
            sys.modules["boto3"] = saved
    return calls, answers, raised


def check_retention_handler(f):
    """The inline code: the group made if RDS has not made it, its retention put, CloudFormation
    always answered (FAILED with the reason on an error), Delete leaves the log alone."""
    code = retention_code(f["database"])
    calls, answers, raised = run_handler(code, "Create")
    assert not raised, raised
    assert calls == [("create_log_group", {"logGroupName": "/aws/rds/instance/db-1/postgresql"}),
                     ("put_retention_policy", {"logGroupName": "/aws/rds/instance/db-1/postgresql",
                                               "retentionInDays": 30})], calls
    (method, url, content_type, body), = answers
    assert method == "PUT" and url.startswith("https://cloudformation-custom-resource-response")
    assert content_type == "", "the pre-signed URL is signed for no content type"
    assert body["Status"] == "SUCCESS" and body["PhysicalResourceId"] == "/aws/rds/instance/db-1/postgresql"
    assert (body["StackId"], body["RequestId"], body["LogicalResourceId"]) == (
        "stack", "request", "PostgresLogRetention")
    # A failure is answered, not raised: CloudFormation would otherwise wait for ServiceTimeout.
    calls, answers, raised = run_handler(code, "Update", fail_with=RuntimeError("AccessDenied"))
    assert not raised, raised
    assert [a[3]["Status"] for a in answers] == ["FAILED"] and "AccessDenied" in answers[0][3]["Reason"]
    calls, answers, raised = run_handler(code, "Delete")
    assert not raised and calls == [] and [a[3]["Status"] for a in answers] == ["SUCCESS"]


def check_deploy_doc(f):
    """docs/deploy.md's erasure section: the schedule, the alarms, the privacy parameters with
    their defaults, the operator's invoke (IAM only, not the API), and privacy.md."""
    doc, t, db = f["deploy"], f["template"], f["database"]
    section = doc.split("\n## Erasure (issue 27)\n", 1)[1].split("\n## ", 1)[0]
    for name in list(erasure_alarms(t, "Maximum")) + list(erasure_alarms(t, "SampleCount")):
        assert f"`{name}`" in section, name
    for phrase in ("`ErasureSchedule`", "`rate(1 hour)`", "events/archiver-erase.json",
                   "aws lambda invoke", '{"action":"erase","requests":[', "lambda:InvokeFunction",
                   "not part of the public API", "receipt", "](privacy.md)", "archive_locked",
                   "`log_parameter_max_length`", "`log_parameter_max_length_on_error`"):
        assert phrase in section, phrase
    # The privacy parameters, each with its default in the section's table.
    defaults = {"AccessLogSourceIp": f"`{t['Parameters']['AccessLogSourceIp']['Default']}`",
                "ArchiveNoncurrentVersionDays": str(t["Parameters"]["ArchiveNoncurrentVersionDays"]["Default"]),
                "RejectedRetentionDays": str(t["Parameters"]["RejectedRetentionDays"]["Default"]),
                "PostgresLogRetentionDays": str(db["Parameters"]["PostgresLogRetentionDays"]["Default"])}
    for name, default in defaults.items():
        assert re.search(rf"^\| `{name}`[^|]*\| {re.escape(default)} \|", section, re.M), (name, default)
    # The parameter table of "Deploy" lists the template's new parameters with their defaults.
    for name in ("ErasureSchedule", "AccessLogSourceIp"):
        default = t["Parameters"][name]["Default"]
        assert f"| `{name}` | `{default}` |" in doc, name
    # The operator's command runs the archiver's request, and the fixture the schedule's input.
    invoke = re.search(r"aws lambda invoke --function-name \"\$ARCHIVER:live\"[^\n]*\\\n\s*--payload fileb://(\S+)",
                       section)
    assert invoke, "the invoke of the archiver's live alias"
    heredoc = re.search(r"cat > (\S+) <<'(\w+)'\n(.*?)\n\2\n", section, re.S)
    assert heredoc and heredoc.group(1) == invoke.group(1), "the payload is the file written before"
    payload = json.loads(heredoc.group(3))
    assert payload["action"] == "erase" and {"unit_type", "unit_id", "suppress"} == set(payload["requests"][0])


CHECKS = {f.__name__[len("check_"):]: f for f in [
    check_erasure_schedule, check_backlog_alarm, check_runs_missing_alarm, check_dashboard,
    check_access_log_source_ip, check_bucket_expiry, check_object_lock_comment,
    check_postgres_log_parameters, check_postgres_log_retention, check_retention_handler,
    check_deploy_doc,
]}


# --- mutations -------------------------------------------------------------------------------------


ERASE = ["template", R, "ArchiverFunction", P, "Events", "Erase", P]
BACKLOG = ["template", R, "ErasureBacklogAlarm", P]
MISSING = ["template", R, "ErasureRunsMissingAlarm", P]
FORMAT = ["template", R, "IngestApi", P, "AccessLogSettings", "Format"]
LIFECYCLE = ["template", R, "ArchiveBucket", P, "LifecycleConfiguration", "Rules"]
PGROUP = ["database", R, "DatabaseParameterGroup", P]
RETENTION = ["database", R, "PostgresLogRetention", P]
CODE = ["database", R, "LogRetentionFunction", P, "Code", "ZipFile"]


def at(path):
    def get(f):
        node = f
        for key in path:
            node = node[key]
        return node
    return get


def set_to(path, value):
    def mutate(f):
        at(path[:-1])(f)[path[-1]] = value
    return mutate


def drop(path):
    def mutate(f):
        del at(path[:-1])(f)[path[-1]]
    return mutate


def edit(path, old, new, count=1):
    """Replaces text in the string at `path` (a file's text, or the inline code): the first
    `count` times, every time with -1."""
    def mutate(f):
        text = at(path)(f)
        assert old in text, old
        set_to(path, text.replace(old, new, count))(f)
    return mutate


def _mapping_back(f):
    """The reservation of before: the fan-out plus health and audit only."""
    for key, row in f["template"]["Mappings"]["ArchiverConcurrency"].items():
        row["Reserved"] = int(key) + 2


def _fixed_format(f):
    """The access log as it was: the source IP always in it."""
    set_to(FORMAT, '{"requestId":"$context.requestId","ip":"$context.identity.sourceIp",'
                   '"caller":"$context.identity.caller","status":"$context.status"}')(f)


def _swap_ip_branches(f):
    branches = at(FORMAT)(f)["Fn::Sub"][1]["SourceIp"]["Fn::If"]
    branches[1], branches[2] = branches[2], branches[1]


def _ip_filter(f):
    f["template"][R]["ApiThrottledMetricFilter"][P]["FilterPattern"] = '{ $.ip = "10.*" }'


def _rds_log_group(f):
    f["database"][R]["PostgresLogGroup"] = {"Type": "AWS::Logs::LogGroup", P: {
        "LogGroupName": {"Fn::Sub": RDS_LOG}, "RetentionInDays": {"Ref": "PostgresLogRetentionDays"}}}


def _export_upgrade_log(f):
    f["database"][R]["Database"][P]["EnableCloudwatchLogsExports"].append("upgrade")


def _role_everywhere(f):
    stmts = f["database"][R]["LogRetentionRole"][P]["Policies"][0]["PolicyDocument"]["Statement"]
    stmts[1]["Resource"] = "*"


MUTATIONS = [
    ("erasure_schedule", drop(ERASE[:-1])),
    ("erasure_schedule", set_to(ERASE + ["Input"], '{"action": "audit"}')),
    ("erasure_schedule", set_to(ERASE + ["State"], "DISABLED")),
    ("erasure_schedule", set_to(ERASE + ["Schedule"], "rate(1 hour)")),
    ("erasure_schedule", set_to(["template", "Parameters", "ErasureSchedule", "Default"], "rate(1 day)")),
    ("erasure_schedule", _mapping_back),
    ("erasure_schedule", set_to(["fixture"], '{"action": "erase", "requests": []}')),
    ("backlog_alarm", drop(BACKLOG[:-1])),
    ("backlog_alarm", set_to(BACKLOG + ["Threshold"], 3600)),
    ("backlog_alarm", set_to(BACKLOG + ["Statistic"], "Average")),
    ("backlog_alarm", set_to(BACKLOG + ["TreatMissingData"], "notBreaching")),
    ("backlog_alarm", set_to(BACKLOG + ["TreatMissingData"], "breaching")),
    ("backlog_alarm", set_to(BACKLOG + ["DatapointsToAlarm"], 3)),
    ("backlog_alarm", set_to(BACKLOG + ["Namespace"], "EIS")),
    ("backlog_alarm", set_to(BACKLOG + ["Dimensions"], [{"Name": "Function", "Value": "archiver"}])),
    ("backlog_alarm", set_to(BACKLOG + ["AlarmActions"], [])),
    ("backlog_alarm", set_to(BACKLOG + ["OKActions"], [{"Ref": "AlarmTopic"}])),
    ("runs_missing_alarm", drop(MISSING[:-1])),
    ("runs_missing_alarm", set_to(MISSING + ["TreatMissingData"], "notBreaching")),
    ("runs_missing_alarm", set_to(MISSING + ["ComparisonOperator"], "GreaterThanThreshold")),
    ("runs_missing_alarm", set_to(MISSING + ["EvaluationPeriods"], 6)),  # the schedule says 3 hours
    ("runs_missing_alarm", set_to(MISSING + ["DatapointsToAlarm"], 1)),
    ("runs_missing_alarm", set_to(MISSING + ["MetricName"], "ErasureRequestsCompleted")),
    ("dashboard", edit(["template", R, "OperationsDashboard", P, "DashboardBody", "Fn::Sub", 0],
                       '"${ErasureRunsMissingAlarm.Arn}"', '"${ArchiverErrorsAlarm.Arn}"')),
    ("dashboard", edit(["template", R, "OperationsDashboard", P, "DashboardBody", "Fn::Sub", 0],
                       '"ErasureRequestsCompleted"', '"RequestsCompleted"')),
    ("access_log_source_ip", _fixed_format),
    ("access_log_source_ip", _swap_ip_branches),
    ("access_log_source_ip", set_to(["template", "Parameters", "AccessLogSourceIp", "Default"], "false")),
    ("access_log_source_ip", _ip_filter),
    ("access_log_source_ip", edit(FORMAT + ["Fn::Sub", 0], '"status":"$context.status",', "")),
    ("bucket_expiry", lambda f: at(LIFECYCLE)(f).pop(1)),
    ("bucket_expiry", set_to(["template", "Parameters", "ArchiveNoncurrentVersionDays", "Default"], 90)),
    ("bucket_expiry", lambda f: at(LIFECYCLE)(f)[2].__setitem__("Prefix", "quarantine/")),
    ("bucket_expiry", set_to(["template", R, "ArchiverFunction", P, "Environment", "Variables",
                              "EIS_REJECTED_PREFIX"], "quarantine/")),
    ("bucket_expiry", lambda f: at(LIFECYCLE)(f).pop(2)),
    ("object_lock_comment", edit(["template_text"], "the error code archive_locked", "an error")),
    ("postgres_log_parameters", drop(PGROUP + ["Parameters", "log_parameter_max_length"])),
    ("postgres_log_parameters", set_to(PGROUP + ["Parameters", "log_parameter_max_length_on_error"], "-1")),
    ("postgres_log_parameters", set_to(PGROUP + ["Description"], "EIS PostgreSQL (TLS, no parameters logged)")),
    ("postgres_log_retention", drop(RETENTION[:-1])),
    ("postgres_log_retention", set_to(RETENTION + ["LogGroupName"], {"Fn::Sub": "/aws/rds/instance/${Database}/error"})),
    ("postgres_log_retention", set_to(RETENTION + ["RetentionInDays"], 3653)),
    ("postgres_log_retention", _rds_log_group),
    ("postgres_log_retention", _export_upgrade_log),
    ("postgres_log_retention", _role_everywhere),
    ("postgres_log_retention", set_to(["database", "Parameters", "PostgresLogRetentionDays", "Default"], 0)),
    ("retention_handler", edit(CODE, "except logs.exceptions.ResourceAlreadyExistsException:",
                               "except KeyError:")),
    ("retention_handler", edit(CODE, 'if event["RequestType"] in ("Create", "Update"):',
                               'if event["RequestType"] in ("Create", "Update", "Delete"):')),
    ("retention_handler", edit(CODE, 'answer(event, "FAILED", f"{type(e).__name__}: {e}")\n', "raise\n")),
    ("retention_handler", edit(CODE, 'headers={"Content-Type": ""}', 'headers={"Content-Type": "application/json"}')),
    ("deploy_doc", edit(["deploy"], "## Erasure (issue 27)", "## Erasure")),
    ("deploy_doc", edit(["deploy"], "--payload fileb://erase-request.json", "--payload fileb://request.json")),
    ("deploy_doc", edit(["deploy"], "| `PostgresLogRetentionDays` (infra/database.yaml) | 30 |",
                        "| `PostgresLogRetentionDays` (infra/database.yaml) | 90 |")),
    ("deploy_doc", edit(["deploy"], "| `ErasureSchedule` | `rate(1 hour)` |", "| `ErasureSchedule` | `rate(1 day)` |")),
    ("deploy_doc", edit(["deploy"], "](privacy.md)", "](privacy)", -1)),
    ("deploy_doc", set_to(["template", "Parameters", "AccessLogSourceIp", "Default"], "false")),
]


@pytest.fixture(scope="module")
def _files():
    return {
        "template": load_cfn(ROOT / "template.yaml"),
        "template_text": (ROOT / "template.yaml").read_text(encoding="utf-8"),
        "database": load_cfn(ROOT / "infra" / "database.yaml"),
        "deploy": (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8"),
        "fixture": (ROOT / "events" / "archiver-erase.json").read_text(encoding="utf-8"),
    }


@pytest.fixture()
def files(_files):
    return copy.deepcopy(_files)


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_check_holds(name, files):
    CHECKS[name](files)


@pytest.mark.parametrize("name,mutate", MUTATIONS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(MUTATIONS)])
def test_check_catches(name, mutate, files):
    original = copy.deepcopy(files)
    mutate(files)
    assert files != original, "the mutation changed nothing"
    with pytest.raises((AssertionError, KeyError, IndexError, StopIteration)):
        CHECKS[name](files)


def test_every_check_has_a_mutation():
    assert {n for n, _ in MUTATIONS} == set(CHECKS)


def test_the_fixture_is_exactly_the_schedules_input(root):
    """events/archiver-erase.json is what the schedule sends, byte for byte but the newline."""
    assert (root / "events" / "archiver-erase.json").read_text() == '{"action":"erase"}\n'

"""Alarms on what loses data or money, the dashboard of the same signals, and the bound on
direct database connections (template.yaml).

As in test_template.py: every check runs on the real template and on copies broken on purpose,
where it must fail.
"""

import json
import re

from conftest import EMF_NAMESPACE, TOPICS, mutation_tests, notifies

R = "Resources"
P = "Properties"


# --- reading alarms -----------------------------------------------------------------------------


def text(value):
    """A comparable form of a template value: Ref/GetAtt -> the resource name, Sub -> its text."""
    if isinstance(value, dict):
        if "Ref" in value:
            return value["Ref"]
        if "Fn::GetAtt" in value:
            return ".".join(value["Fn::GetAtt"])
        if "Fn::Sub" in value:
            sub = value["Fn::Sub"]
            return sub[0] if isinstance(sub, list) else sub
    return value


def branches(value):
    """Both branches of an Fn::If, or the value itself."""
    if isinstance(value, dict) and "Fn::If" in value:
        return [b for b in value["Fn::If"][1:] if b != {"Ref": "AWS::NoValue"}]
    return [value]


def metrics_of(alarm_props):
    """(namespace, metric, {dimension: value}) of an alarm, metric math included."""
    found = []
    candidates = [alarm_props] if "MetricName" in alarm_props else []
    for m in alarm_props.get("Metrics", []):
        if "MetricStat" in m:
            candidates += branches(m["MetricStat"]["Metric"])
    for c in candidates:
        dims = {d["Name"]: text(d["Value"]) for d in c.get("Dimensions", [])}
        found.append((text(c["Namespace"]), c["MetricName"], dims))
    return found


def expression(alarm_props):
    out = [text(m["Expression"]) for m in alarm_props.get("Metrics", []) if "Expression" in m]
    return " ".join(out)


def alarms(t):
    return {k: v for k, v in t[R].items() if v["Type"] == "AWS::CloudWatch::Alarm"}


def alarms_on(t, namespace, metric, **dims):
    """Names of the alarms that watch this metric with (at least) these dimensions."""
    names = []
    for name, a in alarms(t).items():
        for ns, m, d in metrics_of(a[P]):
            if ns == namespace and m == metric and all(d.get(k) == v for k, v in dims.items()):
                names.append(name)
    return names


def one_alarm(t, namespace, metric, **dims):
    names = alarms_on(t, namespace, metric, **dims)
    assert names, f"no alarm on {namespace} {metric} {dims}"
    a = t[R][names[0]]
    assert notifies(a[P]) in TOPICS, f"{names[0]} notifies nobody"
    return a[P]


def archiver_deadline_ms(t):
    fn = t[R]["ArchiverFunction"][P]
    return fn["Timeout"] * 1000 - int(fn["Environment"]["Variables"]["EIS_SAFETY_MARGIN_MS"])


# --- checks -------------------------------------------------------------------------------------


def check_ingest_throttles(t):
    p = one_alarm(t, "AWS/Lambda", "Throttles", FunctionName="IngestFunction")
    assert p["Threshold"] == 0 and p["ComparisonOperator"] == "GreaterThanThreshold"


def check_ingest_concurrency(t):
    names = alarms_on(t, "AWS/Lambda", "ConcurrentExecutions", FunctionName="IngestFunction")
    assert names, "no alarm on the ingest function's concurrency"
    p = t[R][names[0]][P]
    assert ("AWS/Lambda", "ClaimedAccountConcurrency", {}) in metrics_of(p), "unreserved: the account pool"
    assert "${Cap}" in expression(p)
    cap = [m["Expression"]["Fn::Sub"][1]["Cap"] for m in p["Metrics"] if "Expression" in m][0]
    assert cap == {"Fn::If": ["HasIngestReservedConcurrency", {"Ref": "IngestReservedConcurrency"},
                              {"Ref": "AccountConcurrencyLimit"}]}
    assert 50 <= p["Threshold"] < 100, "percent of the cap, before throttling starts"


def check_publish_failures(t):
    routes = set()
    for name in alarms_on(t, EMF_NAMESPACE, "PublishFailures", Function="ingest"):
        routes |= {d.get("Route") for _, m, d in metrics_of(t[R][name][P]) if m == "PublishFailures"}
        one_alarm(t, EMF_NAMESPACE, "PublishFailures", Function="ingest")
    # The EMF document's dimensions are [Function, Route]: every route must be watched.
    assert routes == {"POST /events", "POST /events/batch"}, routes


def check_unarchived_backlog(t):
    lag = one_alarm(t, EMF_NAMESPACE, "OldestEventAge", Function="archiver")
    assert lag["Threshold"] == {"Ref": "ArchiveLagAlarmSeconds"}
    sweep = one_alarm(t, EMF_NAMESPACE, "Swept", Function="archiver")
    assert sweep["Threshold"] == 0 and sweep["EvaluationPeriods"] >= 3, "persistent sweeping"


def check_archiver_deadline(t):
    names = set(alarms_on(t, "AWS/Lambda", "Duration", FunctionName="ArchiverFunction")) & set(
        alarms_on(t, "AWS/SQS", "ApproximateNumberOfMessagesVisible", QueueName="EventsQueue.QueueName"))
    assert names, "no alarm on runs that reach the deadline while messages wait"
    p = t[R][sorted(names)[0]][P]
    assert notifies(p) in TOPICS
    assert f"duration >= {archiver_deadline_ms(t)}" in expression(p), "the deadline follows Timeout - margin"


def check_database(t):
    for metric, op in (("CPUUtilization", "GreaterThanThreshold"),
                       ("FreeStorageSpace", "LessThanThreshold"),
                       ("DatabaseConnections", "GreaterThanThreshold")):
        names = alarms_on(t, "AWS/RDS", metric, DBInstanceIdentifier="DbInstanceIdentifier")
        assert names, metric
        a = t[R][names[0]]
        assert a.get("Condition") == "HasDbInstance", metric
        assert a[P]["ComparisonOperator"] == op, metric
        assert notifies(a[P]) in TOPICS, metric


def check_api_rates(t):
    p4 = one_alarm(t, "AWS/ApiGateway", "4xx", ApiId="IngestApi")
    assert ("AWS/ApiGateway", "Count", {"ApiId": "IngestApi"}) in metrics_of(p4), "a rate, not a count"
    assert p4["Threshold"] == {"Ref": "Api4xxRateAlarmPercent"}
    filters = [f[P] for f in t[R].values() if f["Type"] == "AWS::Logs::MetricFilter"
               and f[P]["LogGroupName"] == {"Ref": "ApiAccessLogGroup"}
               and re.search(r"\$\.status\s*=\s*\"?429", f[P]["FilterPattern"])]
    assert filters, "429s are counted from the access log (HTTP APIs publish no 429 metric)"
    mt = filters[0]["MetricTransformations"][0]
    p429 = one_alarm(t, text(mt["MetricNamespace"]), mt["MetricName"])
    assert ("AWS/ApiGateway", "Count", {"ApiId": "IngestApi"}) in metrics_of(p429)
    assert p429["Threshold"] == {"Ref": "Api429RateAlarmPercent"}


def dashboard_metrics(t):
    dash = [d[P] for d in t[R].values() if d["Type"] == "AWS::CloudWatch::Dashboard"]
    assert len(dash) == 1, "one dashboard"
    body = dash[0]["DashboardBody"]["Fn::Sub"]
    template_text, variables = (body[0], body[1]) if isinstance(body, list) else (body, {})
    parts = [template_text] + [text(b) for v in variables.values() for b in branches(v) if b]
    found = set()
    widgets = []
    for part in parts:
        filled = re.sub(r"\$\{([^}]+)\}", lambda m: m.group(1), part).strip().rstrip(",")
        filled = filled.replace("DatabaseWidget", "")
        doc = json.loads(filled if filled.startswith('{"widgets"') or filled.startswith("{\n") else
                         '{"widgets": [' + filled + "]}")
        widgets += doc["widgets"]
    for w in widgets:
        for m in w["properties"].get("metrics", []):
            names = [x for x in m if isinstance(x, str)]
            found.add((names[0], names[1]))
    alarm_list = {a for w in widgets if w["type"] == "alarm" for a in w["properties"]["alarms"]}
    return found, alarm_list


# Alarms whose signals the dashboard shows (those of this file and the original four).
DASHBOARD_ALARMS = [
    "IngestThrottlesAlarm", "IngestConcurrencyNearCapAlarm", "IngestPublishFailuresAlarm",
    "ArchiveLagAlarm", "SweepBacklogAlarm", "ArchiverDeadlineWithWorkLeftAlarm", "Api4xxRateAlarm",
    "Api429RateAlarm", "DbCpuAlarm", "DbFreeStorageAlarm", "DbConnectionsAlarm",
    "Ingest5xxRateAlarm", "QueueBacklogAgeAlarm", "DeadLetterQueueNotEmptyAlarm", "ArchiverErrorsAlarm",
]


def check_dashboard(t):
    shown, listed = dashboard_metrics(t)
    for name in DASHBOARD_ALARMS:
        for ns, metric, _ in metrics_of(t[R][name][P]):
            ns = re.sub(r"\$\{([^}]+)\}", lambda m: m.group(1), ns)
            assert (ns, metric) in shown, f"{name}: {ns} {metric} is not on the dashboard"
        if t[R][name].get("Condition") is None:
            assert f"{name}.Arn" in listed, f"{name} is not in the dashboard's alarm widget"


def check_connection_budget(t):
    rule = t["Rules"]["DirectConnectionsAreBounded"]
    assert rule["RuleCondition"] == {"Fn::Equals": [{"Ref": "DbProxyEndpoint"}, ""]}
    asserts = [a["Assert"] for a in rule["Assertions"]]
    assert {"Fn::Not": [{"Fn::Equals": [{"Ref": "IngestReservedConcurrency"}, "0"]}]} in asserts
    assert t[R]["IngestFunction"][P]["ReservedConcurrentExecutions"] == {
        "Fn::If": ["HasIngestReservedConcurrency", {"Ref": "IngestReservedConcurrency"},
                   {"Ref": "AWS::NoValue"}]}


CHECKS = {f.__name__[len("check_"):]: f for f in [
    check_ingest_throttles, check_ingest_concurrency, check_publish_failures,
    check_unarchived_backlog, check_archiver_deadline, check_database, check_api_rates,
    check_dashboard, check_connection_budget,
]}


def _del(name):
    return lambda t: t[R].pop(name)


def _set(name, key, value):
    return lambda t: t[R][name][P].__setitem__(key, value)


def _drop_metric(name, metric_id):
    def mutate(t):
        t[R][name][P]["Metrics"] = [m for m in t[R][name][P]["Metrics"] if m["Id"] != metric_id]
    return mutate


def _dashboard_without(metric):
    def mutate(t):
        body = t[R]["OperationsDashboard"][P]["DashboardBody"]["Fn::Sub"]
        lines = body[0].split("\n")
        body[0] = "\n".join(l for l in lines if f'"{metric}"' not in l or "alarm" in l.lower())
    return mutate


def _fix_trailing_commas(t):
    body = t[R]["OperationsDashboard"][P]["DashboardBody"]["Fn::Sub"]
    body[0] = re.sub(r",(\s*\])", r"\1", body[0])


MUTATIONS = [
    ("ingest_throttles", _del("IngestThrottlesAlarm")),
    ("ingest_throttles", _set("IngestThrottlesAlarm", "Threshold", 100)),
    ("ingest_concurrency", _del("IngestConcurrencyNearCapAlarm")),
    ("ingest_concurrency", _set("IngestConcurrencyNearCapAlarm", "Threshold", 100)),
    ("publish_failures", _del("IngestPublishFailuresAlarm")),
    ("publish_failures", _drop_metric("IngestPublishFailuresAlarm", "batch")),
    ("unarchived_backlog", _del("ArchiveLagAlarm")),
    ("unarchived_backlog", _del("SweepBacklogAlarm")),
    ("archiver_deadline", _del("ArchiverDeadlineWithWorkLeftAlarm")),
    ("archiver_deadline", lambda t: t[R]["ArchiverFunction"][P].__setitem__("Timeout", 200)),
    ("database", _del("DbFreeStorageAlarm")),
    ("database", lambda t: t[R]["DbCpuAlarm"].pop("Condition")),
    ("api_rates", _del("Api429RateAlarm")),
    ("api_rates", _drop_metric("Api4xxRateAlarm", "requests")),
    ("api_rates", _del("ApiThrottledMetricFilter")),
    ("dashboard", _del("OperationsDashboard")),
    ("dashboard", lambda t: (_dashboard_without("Throttles")(t), _fix_trailing_commas(t))),
    ("connection_budget", lambda t: t.pop("Rules")),
    ("connection_budget", lambda t: t[R]["IngestFunction"][P].pop("ReservedConcurrentExecutions")),
]


test_check_holds, test_check_catches, test_every_check_has_a_mutation = mutation_tests(CHECKS, MUTATIONS)

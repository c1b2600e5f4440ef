"""The experiment-health job (docs/health.md) in template.yaml: its schedule on the archiver, the
settings it and the ingest's registry read, and the alarms on its EMF metrics (namespace EIS,
dimension Experiment) written as Metrics Insights queries covering every experiment, and the
tracking plan's (dimension EventType) covering every planned event type.

As in test_template.py: every check runs on the real template and on copies broken on purpose,
where it must fail.
"""

import json
import re

from conftest import delete_at, expression_text, mutation_tests, set_at

R = "Resources"
P = "Properties"


def env(t, name):
    return t[R][name][P]["Environment"]["Variables"]


def param(t, name):
    return t["Parameters"][name]


def insights_alarm(t, function, metric, dimension="Experiment", table="exp.experiment_health"):
    """The one alarm whose only metric is `SELECT <function>(<metric>) FROM SCHEMA("EIS/<stack>",
    <dimension>)` (the stack's EMF namespace), with `GROUP BY <dimension>` for any dimension but
    Experiment (each value its own series: one broken type is not diluted by the others)."""
    group = "" if dimension == "Experiment" else rf"\s+GROUP\s+BY\s+{dimension}"
    pattern = re.compile(
        rf'^SELECT\s+{function}\({metric}\)\s+FROM\s+SCHEMA\("EIS/\$\{{AWS::StackName\}}",\s*{dimension}\){group}$')
    found = []
    for name, a in t[R].items():
        if a["Type"] != "AWS::CloudWatch::Alarm":
            continue
        for m in a[P].get("Metrics", []):
            if pattern.match(expression_text(m.get("Expression"))):
                found.append(name)
    assert len(found) == 1, f"one alarm on {function}({metric}) by {dimension}: {found}"
    p = t[R][found[0]][P]
    assert len(p["Metrics"]) == 1 and p["Metrics"][0].get("ReturnData", True) is True
    period = p["Metrics"][0]["Period"]
    assert period % 60 == 0 and period >= 300, "a Metrics Insights alarm needs a Period"
    assert p["TreatMissingData"] == "notBreaching", "nothing reporting is no alarm"
    # Experiment quality: the working-hours topic, not the pager.
    assert p["AlarmActions"] == [{"Ref": "QualityAlarmTopic"}] == p["OKActions"]
    text = " ".join(p["AlarmDescription"].split())
    assert table in text and "docs/health.md" in text, "say where to look"
    return p


# --- checks -------------------------------------------------------------------------------------


def check_health_schedule(t):
    events = t[R]["ArchiverFunction"][P]["Events"]
    health = [e[P] for e in events.values() if e["Type"] == "Schedule" and "Input" in e[P]
              and json.loads(e[P]["Input"]) == {"action": "health"}]
    assert len(health) == 1, "the health job runs on a schedule of its own"
    assert health[0]["Schedule"] == {"Ref": "HealthSchedule"}
    assert health[0].get("State", "ENABLED") == "ENABLED" and health[0].get("Enabled", True) is True
    assert param(t, "HealthSchedule")["Default"] == "rate(5 minutes)"


def check_health_settings(t):
    archiver = env(t, "ArchiverFunction")
    assert archiver["EIS_SRM_MIN_UNITS"] == {"Ref": "SrmMinUnitsPerVariant"}
    p = param(t, "SrmMinUnitsPerVariant")
    assert p["Type"] == "Number" and p["Default"] == 100 and p["MinValue"] == 1
    # The job reads events received at least this long ago; an insert can commit up to the
    # ingest function's Timeout after its received_at.
    lag = int(archiver["EIS_HEALTH_LAG_SECS"])
    assert lag > t[R]["IngestFunction"][P]["Timeout"], "EIS_HEALTH_LAG_SECS must exceed the ingest Timeout"
    assert lag <= 3600, "the archiver accepts 0..3600"


def check_registry_settings(t):
    ingest = env(t, "IngestFunction")
    assert ingest["EIS_REGISTRY_MODE"] == {"Ref": "RegistryMode"}
    assert ingest["EIS_REGISTRY_MAX_AGE_SECS"] == {"Ref": "RegistryMaxAgeSeconds"}
    mode = param(t, "RegistryMode")
    assert mode["Default"] == "flag" and sorted(mode["AllowedValues"]) == ["flag", "reject"]
    age = param(t, "RegistryMaxAgeSeconds")
    assert (age["Default"], age["MinValue"], age["MaxValue"]) == (60, 1, 3600)


def check_srm_alarm(t):
    p = insights_alarm(t, "MIN", "SrmPValue")
    assert p["Threshold"] == {"Ref": "SrmPValueThreshold"}
    assert p["ComparisonOperator"] == "LessThanThreshold"
    assert param(t, "SrmPValueThreshold")["Default"] == 0.001


def check_crossover_alarm(t):
    p = insights_alarm(t, "MAX", "CrossoverShare")
    assert p["Threshold"] == {"Ref": "CrossoverShareThreshold"}
    assert p["ComparisonOperator"] == "GreaterThanThreshold"
    assert param(t, "CrossoverShareThreshold")["Default"] == 0.01


def check_unknown_variants_alarm(t):
    p = insights_alarm(t, "MAX", "UnknownVariantShare")
    assert p["Threshold"] == {"Ref": "UnknownVariantShareThreshold"}
    assert p["ComparisonOperator"] == "GreaterThanThreshold"
    assert param(t, "UnknownVariantShareThreshold")["Default"] == 0.01


def check_plan_violation_alarm(t):
    """One alarm over every planned event type, on the health job's PlanViolationShare."""
    p = insights_alarm(t, "MAX", "PlanViolationShare", "EventType", "exp.plan_daily")
    assert p["Threshold"] == {"Ref": "PlanViolationThreshold"}
    assert p["ComparisonOperator"] == "GreaterThanThreshold"
    threshold = param(t, "PlanViolationThreshold")
    # The metric is a percent.
    assert (threshold["Default"], threshold["MinValue"], threshold["MaxValue"]) == (5, 0, 100)


def check_parameter_groups(t):
    grouped = {p for g in t["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
               for p in g["Parameters"]}
    for name in ("HealthSchedule", "SrmMinUnitsPerVariant", "SrmPValueThreshold",
                 "CrossoverShareThreshold", "UnknownVariantShareThreshold", "RegistryMode",
                 "RegistryMaxAgeSeconds", "PlanViolationThreshold"):
        assert name in t["Parameters"] and name in grouped, name


CHECKS = {f.__name__[len("check_"):]: f for f in [
    check_health_schedule, check_health_settings, check_registry_settings, check_srm_alarm,
    check_crossover_alarm, check_unknown_variants_alarm, check_plan_violation_alarm,
    check_parameter_groups,
]}


HEALTH = [R, "ArchiverFunction", P, "Events", "Health", P]
AENV = [R, "ArchiverFunction", P, "Environment", "Variables"]
IENV = [R, "IngestFunction", P, "Environment", "Variables"]


def _query(alarm, expression):
    return set_at([R, alarm, P, "Metrics", 0, "Expression"], expression)


MUTATIONS = [
    ("health_schedule", delete_at([R, "ArchiverFunction", P, "Events", "Health"])),
    ("health_schedule", set_at(HEALTH + ["Input"], '{"action": "audit"}')),
    ("health_schedule", set_at(HEALTH + ["State"], "DISABLED")),
    ("health_schedule", set_at(HEALTH + ["Schedule"], "rate(5 minutes)")),
    ("health_settings", delete_at(AENV + ["EIS_SRM_MIN_UNITS"])),
    ("health_settings", set_at(AENV + ["EIS_HEALTH_LAG_SECS"], "10")),
    ("health_settings", set_at([R, "IngestFunction", P, "Timeout"], 120)),
    ("health_settings", set_at(["Parameters", "SrmMinUnitsPerVariant", "MinValue"], 0)),
    ("registry_settings", delete_at(IENV + ["EIS_REGISTRY_MODE"])),
    ("registry_settings", set_at(IENV + ["EIS_REGISTRY_MAX_AGE_SECS"], "60")),
    ("registry_settings", set_at(["Parameters", "RegistryMode", "Default"], "reject")),
    ("srm_alarm", delete_at([R, "ExperimentSrmAlarm"])),
    ("srm_alarm", set_at([R, "ExperimentSrmAlarm", P, "ComparisonOperator"], "GreaterThanThreshold")),
    ("srm_alarm", _query("ExperimentSrmAlarm", {"Fn::Sub": 'SELECT MAX(SrmPValue) FROM SCHEMA("EIS/${AWS::StackName}", Experiment)'})),
    ("srm_alarm", _query("ExperimentSrmAlarm", {"Fn::Sub": 'SELECT MIN(SrmPValue) FROM SCHEMA("EIS/${AWS::StackName}", Function)'})),
    # The shared namespace of before: another stack's experiments would set this one off.
    ("srm_alarm", _query("ExperimentSrmAlarm", 'SELECT MIN(SrmPValue) FROM SCHEMA("EIS", Experiment)')),
    ("srm_alarm", set_at([R, "ExperimentSrmAlarm", P, "TreatMissingData"], "breaching")),
    ("srm_alarm", delete_at([R, "ExperimentSrmAlarm", P, "Metrics", 0, "Period"])),
    ("crossover_alarm", delete_at([R, "ExperimentCrossoverAlarm"])),
    ("crossover_alarm", set_at([R, "ExperimentCrossoverAlarm", P, "Threshold"], 0.5)),
    ("crossover_alarm", set_at([R, "ExperimentCrossoverAlarm", P, "AlarmActions"], [])),
    ("unknown_variants_alarm", delete_at([R, "ExperimentUnknownVariantsAlarm"])),
    ("unknown_variants_alarm", set_at([R, "ExperimentUnknownVariantsAlarm", P, "AlarmDescription"],
                                    "Unknown variants.")),
    ("plan_violation_alarm", delete_at([R, "PlanViolationAlarm"])),
    ("plan_violation_alarm", _query("PlanViolationAlarm", {"Fn::Sub": 'SELECT MAX(PlanViolationShare) FROM SCHEMA("EIS/${AWS::StackName}", EventType)'})),
    ("plan_violation_alarm", _query("PlanViolationAlarm", {"Fn::Sub": 'SELECT AVG(PlanViolationShare) FROM SCHEMA("EIS/${AWS::StackName}", EventType) GROUP BY EventType'})),
    ("plan_violation_alarm", set_at([R, "PlanViolationAlarm", P, "Threshold"], 5)),
    ("plan_violation_alarm", set_at([R, "PlanViolationAlarm", P, "AlarmActions"], [{"Ref": "AlarmTopic"}])),
    ("plan_violation_alarm", set_at(["Parameters", "PlanViolationThreshold", "MaxValue"], 1)),
    ("parameter_groups", delete_at(["Parameters", "HealthSchedule"])),
    ("parameter_groups", lambda t: t["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"].pop()),
]


test_check_holds, test_check_catches, test_every_check_has_a_mutation = mutation_tests(CHECKS, MUTATIONS)

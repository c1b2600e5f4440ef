"""docs/operations.md has a runbook section for every alarm of template.yaml, naming the topic
the template routes it to, and the procedures the sections point to.

A section is `### `AlarmName`` under `## Alarms`, with a `**Topic:** `AlarmTopic`` line (or
`none` for an alarm without actions) and the three parts: what it means, what to check first,
how to recover. Each check runs on the real files and on copies broken on purpose.
"""

import copy
import re

import pytest

from conftest import ROOT, notifies

DOC = ROOT / "docs" / "operations.md"
PARTS = ("**What it means:**", "**Check first:**", "**Recover:**")
# Procedure heading -> what it must tell the reader to run.
PROCEDURES = {
    "UPDATE_ROLLBACK_FAILED": ["aws cloudformation continue-update-rollback",
                               "--resources-to-skip SchemaMigrations", "describe-stack-events"],
    "Redriving the dead-letter queue": ["aws sqs start-message-move-task"],
    "Restoring the database to a point in time": ["restore-db-instance-to-point-in-time",
                                                  "extra", '{"action":"restore"'],
    "Rotating the database CA": ["infra/tools/ca-bundle.sh", "--ca-certificate-identifier"],
}


def sections(text, level):
    """{heading: body} of the headings of this level (`##`, `###`)."""
    marker = "#" * level + " "
    out = {}
    parts = re.split(rf"^{marker}(.+)$", text, flags=re.M)
    for heading, body in zip(parts[1::2], parts[2::2]):
        # A body ends at the next heading of this level or above.
        out[heading.strip()] = re.split(r"^#{1,%d} " % level, body, flags=re.M)[0]
    return out


def alarm_sections(text):
    alarms = sections(text, 2).get("Alarms")
    assert alarms is not None, "docs/operations.md has no '## Alarms' section"
    out = {}
    for heading, body in sections("## Alarms" + alarms, 3).items():
        m = re.fullmatch(r"`(\w+)`", heading)
        assert m, f"an alarm section is headed by the alarm's name in backquotes: {heading}"
        out[m.group(1)] = body
    return out


def template_alarms(t):
    return {k: v for k, v in t["Resources"].items()
            if v["Type"] in ("AWS::CloudWatch::Alarm", "AWS::CloudWatch::CompositeAlarm")}


def check_runbooks(t, text):
    docs = alarm_sections(text)
    alarms = template_alarms(t)
    assert set(alarms) - set(docs) == set(), f"alarms without a runbook: {sorted(set(alarms) - set(docs))}"
    assert set(docs) - set(alarms) == set(), f"runbooks of no alarm: {sorted(set(docs) - set(alarms))}"
    for name, body in docs.items():
        topic = re.search(r"^\*\*Topic:\*\* `(\w+)`", body, re.M)
        assert topic, f"{name}: no **Topic:** line"
        routed = notifies(alarms[name]["Properties"]) or "none"
        assert topic.group(1) == routed, f"{name}: the runbook says {topic.group(1)}, the template {routed}"
        for part in PARTS:
            assert part in body, f"{name}: missing {part}"


def check_procedures(t, text):
    procedures = sections("## Procedures" + sections(text, 2)["Procedures"], 3)
    for heading, needed in PROCEDURES.items():
        assert heading in procedures, f"no procedure '{heading}'"
        for phrase in needed:
            assert phrase in procedures[heading], f"{heading}: does not say {phrase}"


CHECKS = {"runbooks": check_runbooks, "procedures": check_procedures}


def _drop_section(name):
    def mutate(t, text):
        return t, re.sub(rf"^### `{name}`\n.*?(?=^### )", "", text, flags=re.M | re.S)
    return mutate


def _new_alarm(t, text):
    t["Resources"]["NewAlarm"] = copy.deepcopy(t["Resources"]["ArchiverErrorsAlarm"])
    return t, text


def _reroute(name, topic):
    def mutate(t, text):
        t["Resources"][name]["Properties"]["AlarmActions"] = [{"Ref": topic}]
        return t, text
    return mutate


def _edit_doc(old, new):
    def mutate(t, text):
        assert old in text, old
        return t, text.replace(old, new, 1)
    return mutate


MUTATIONS = [
    ("runbooks", _drop_section("IngestErrorsAlarm")),
    ("runbooks", _drop_section("DbProxyPinningAlarm")),
    ("runbooks", _new_alarm),
    ("runbooks", _reroute("ExperimentSrmAlarm", "AlarmTopic")),
    ("runbooks", _reroute("DeadLetterQueueNotEmptyAlarm", "QualityAlarmTopic")),
    ("runbooks", _edit_doc("### `ArchiverErrorsAlarm`\n\n**Topic:** `AlarmTopic`",
                           "### `ArchiverErrorsAlarm`\n\n**Topic:** `QualityAlarmTopic`")),
    ("runbooks", _edit_doc("- **Recover:** fix the cause (S3 permissions", "- fix the cause (S3 permissions")),
    ("procedures", _edit_doc("### UPDATE_ROLLBACK_FAILED", "### A failed rollback")),
    ("procedures", _edit_doc("--resources-to-skip SchemaMigrations", "--resources-to-skip")),
    ("procedures", _edit_doc("### Rotating the database CA", "### Certificates")),
]


@pytest.fixture()
def files(template):
    return template, DOC.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_check_holds(name, files):
    CHECKS[name](*files)


@pytest.mark.parametrize("name,mutate", MUTATIONS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(MUTATIONS)])
def test_check_catches(name, mutate, files):
    template, text = files
    original = copy.deepcopy(template), text
    broken = mutate(template, text)
    assert broken != original, "the mutation changed nothing"
    with pytest.raises((AssertionError, KeyError)):
        CHECKS[name](*broken)


def test_every_check_has_a_mutation():
    assert {n for n, _ in MUTATIONS} == set(CHECKS)

"""Fixtures for the template tests: the CloudFormation templates read with a YAML loader that
understands the short intrinsic-function tags (!Ref, !Sub, !GetAtt, ...)."""

import copy
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


class CfnLoader(yaml.SafeLoader):
    """SafeLoader plus CloudFormation's short tags, turned into their long forms."""


def _intrinsic(loader, tag_suffix, node):
    name = tag_suffix
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if name == "Ref":
        return {"Ref": value}
    if name == "Condition":
        return {"Condition": value}
    if name == "GetAtt" and isinstance(value, str):
        resource, _, attribute = value.partition(".")
        value = [resource, attribute]
    return {f"Fn::{name}": value}


CfnLoader.add_multi_constructor("!", _intrinsic)


# The namespace of the functions' EMF metrics (EIS_METRICS_NAMESPACE): one per stack.
EMF_NAMESPACE = "EIS/${AWS::StackName}"
# The alarms' two topics, by severity (docs/operations.md).
TOPICS = ("AlarmTopic", "QualityAlarmTopic")


def expression_text(value):
    """The text of a metric-math or Metrics Insights expression, plain or in a !Sub."""
    if isinstance(value, dict) and "Fn::Sub" in value:
        sub = value["Fn::Sub"]
        return " ".join((sub[0] if isinstance(sub, list) else sub).split())
    return " ".join(value.split()) if isinstance(value, str) else ""


def notifies(props):
    """The topic an alarm's AlarmActions name (None when it has none)."""
    actions = props.get("AlarmActions", [])
    topics = [a["Ref"] for a in actions if isinstance(a, dict) and a.get("Ref") in TOPICS]
    return topics[0] if len(topics) == 1 and len(actions) == 1 else None


def load_cfn(path: Path) -> dict:
    with path.open(encoding="utf-8") as f:
        return yaml.load(f, Loader=CfnLoader)  # noqa: S506 - SafeLoader subclass


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def _template() -> dict:
    return load_cfn(ROOT / "template.yaml")


@pytest.fixture()
def template(_template) -> dict:
    # A copy per test: a test may not leak changes into another.
    return copy.deepcopy(_template)


@pytest.fixture(scope="session")
def database_template() -> dict:
    return load_cfn(ROOT / "infra" / "database.yaml")


# --- checks and the mutations that must make them fail (test_template, test_operations,
# test_health): each check runs on the real template and on copies broken on purpose.

def set_at(path, value):
    """A mutation: sets the value at `path` (keys from the template's root)."""
    def mutate(t):
        node = t
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return mutate


def delete_at(path):
    """A mutation: deletes the key at `path`."""
    def mutate(t):
        node = t
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]

    return mutate


def mutation_tests(checks, mutations, errors=(AssertionError, KeyError, IndexError)):
    """The three tests of a checks module: every check holds on the template, fails on each of
    its mutations, and has at least one mutation."""
    @pytest.mark.parametrize("name", sorted(checks))
    def test_check_holds(name, template):
        checks[name](template)

    @pytest.mark.parametrize("name,mutate", mutations, ids=[f"{n}-{i}" for i, (n, _) in enumerate(mutations)])
    def test_check_catches(name, mutate, template):
        broken = copy.deepcopy(template)
        mutate(broken)
        assert broken != template, "the mutation changed nothing"
        with pytest.raises(errors):
            checks[name](broken)

    def test_every_check_has_a_mutation():
        assert {n for n, _ in mutations} == set(checks)

    return test_check_holds, test_check_catches, test_every_check_has_a_mutation

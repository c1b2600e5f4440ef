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

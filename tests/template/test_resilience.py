"""Copies outside the running system: the database's standby and AWS Backup plan (infra/database.yaml,
turned on by samconfig.toml's prod-db environment) and the archive's optional replication
(template.yaml).

Each check runs on the real files and on copies broken on purpose, where it must fail.
"""

import copy
import tomllib

import pytest

from conftest import ROOT

R = "Resources"
P = "Properties"


def samconfig():
    return tomllib.loads((ROOT / "samconfig.toml").read_text(encoding="utf-8"))


def overrides(text):
    """`Key="value" Key2="value"` of parameter_overrides as a dict."""
    out = {}
    for item in text.split():
        key, _, value = item.partition("=")
        out[key] = value.strip('"')
    return out


# --- checks ---------------------------------------------------------------------------------------


def check_backup_plan(db, config):
    r = db[R]
    assert db["Conditions"]["UseBackupPlan"] == {"Fn::Equals": [{"Ref": "EnableBackupPlan"}, "true"]}
    assert db["Parameters"]["EnableBackupPlan"]["Default"] == "false", "off for a trial database"
    for name in ("BackupVault", "BackupRole", "BackupPlan", "BackupSelection"):
        assert r[name].get("Condition") == "UseBackupPlan", name
    assert r["BackupVault"].get("DeletionPolicy") == "Retain", "recovery points outlive the stack"
    rule = r["BackupPlan"][P]["BackupPlan"]["BackupPlanRule"][0]
    assert rule["TargetBackupVault"] == {"Ref": "BackupVault"}
    assert rule["Lifecycle"]["DeleteAfterDays"] == {"Ref": "BackupPlanRetentionDays"}
    assert rule["ScheduleExpression"] == {"Ref": "BackupPlanSchedule"}
    selection = r["BackupSelection"][P]["BackupSelection"]
    assert r["BackupSelection"][P]["BackupPlanId"] == {"Ref": "BackupPlan"}
    assert selection["IamRoleArn"] == {"Fn::GetAtt": ["BackupRole", "Arn"]}
    assert [x["Fn::Sub"] for x in selection["Resources"]] == [
        "arn:${AWS::Partition}:rds:${AWS::Region}:${AWS::AccountId}:db:${Database}"]


def check_prod_database(db, config):
    """`sam deploy --config-env prod-db` deploys infra/database.yaml with the standby and the plan."""
    env = config["prod-db"]
    deploy = env["deploy"]["parameters"]
    assert deploy["template_file"] == "infra/database.yaml"
    assert env["global"]["parameters"]["stack_name"] != config["prod"]["global"]["parameters"]["stack_name"]
    assert "CAPABILITY_IAM" in deploy["capabilities"]
    values = overrides(deploy["parameter_overrides"])
    assert set(values) <= set(db["Parameters"]), set(values) - set(db["Parameters"])
    assert values["MultiAz"] == "true" and values["EnableBackupPlan"] == "true"
    assert values["DeletionProtection"] == "true"
    assert int(values["BackupRetentionDays"]) == db["Parameters"]["BackupRetentionDays"]["MaxValue"]
    assert db[R]["Database"][P]["MultiAZ"] == {"Ref": "MultiAz"}


CHECKS = {"backup_plan": check_backup_plan, "prod_database": check_prod_database}


def _config_override(key, value):
    def mutate(db, config):
        deploy = config["prod-db"]["deploy"]["parameters"]
        values = overrides(deploy["parameter_overrides"])
        values[key] = value
        deploy["parameter_overrides"] = " ".join(f'{k}="{v}"' for k, v in values.items())
    return mutate


MUTATIONS = [
    ("backup_plan", lambda db, c: db[R]["BackupSelection"][P]["BackupSelection"].__setitem__("Resources", [])),
    ("backup_plan", lambda db, c: db[R]["BackupVault"].pop("DeletionPolicy")),
    ("backup_plan", lambda db, c: db[R].pop("BackupPlan")),
    ("prod_database", _config_override("MultiAz", "false")),
    ("prod_database", _config_override("EnableBackupPlan", "false")),
    ("prod_database", lambda db, c: c.pop("prod-db")),
    ("prod_database", lambda db, c: db[R]["Database"][P].__setitem__("MultiAZ", "false")),
]


@pytest.fixture()
def files(database_template):
    return copy.deepcopy(database_template), samconfig()


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_check_holds(name, files):
    CHECKS[name](*files)


@pytest.mark.parametrize("name,mutate", MUTATIONS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(MUTATIONS)])
def test_check_catches(name, mutate, files):
    mutate(*files)
    with pytest.raises((AssertionError, KeyError, IndexError)):
        CHECKS[name](*files)


def test_every_check_has_a_mutation():
    assert {n for n, _ in MUTATIONS} == set(CHECKS)


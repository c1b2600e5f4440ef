"""docs/deploy.md's first deploy can be followed literally from a fresh clone: every file its
commands name is in the repository or made by an earlier command, and the configuration step
keeps the committed `prod` overrides (samconfig-local.py, read back through SAM CLI's own
configuration reader).

The commands are the shell block and the inline code of the table of "First deploy, step by
step", in document order. What the repository's own scripts create is listed in CREATES (each
script documents it); a redirection (`> FILE`) and `aws lambda invoke`'s output file create
theirs.
"""

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import PurePath

import pytest

from conftest import ROOT

SECTION = "## First deploy, step by step"
CREATES = {
    # infra/tools/sam-build.sh: the tool venv (EIS_TOOLS_DIR defaults to .local/tools when the
    # script runs on its own), the build, and the CA bundle that the build assembles.
    "infra/tools/sam-build.sh": {".local/tools/sam/bin", ".aws-sam/build",
                                 "infra/certs/rds-global-bundle.pem"},
    "infra/tools/ca-bundle.sh": {"infra/certs/rds-global-bundle.pem"},
    "infra/tools/samconfig-local.py": {"samconfig.local.toml"},  # tested below
}
PATH_LIKE = re.compile(r"[\w.-]*(?:/[\w.-]+)+|[\w.-]+\.(?:toml|ya?ml|json|sh|py|pem)\b")


def first_deploy_commands(doc: str) -> list[str]:
    """The section's shell lines and inline-code commands, in order."""
    section = doc.split(SECTION, 1)[1].split("\n## ", 1)[0]
    commands, in_block = [], False
    for line in section.splitlines():
        if line.startswith("```"):
            in_block = not in_block
        elif in_block:
            if line.strip() and not line.lstrip().startswith("#"):
                commands.append(line)
        elif line.startswith("|"):
            commands += re.findall(r"`([^`]+)`", line.split("|")[2] if line.count("|") > 2 else "")
    return commands


def named_files(argv: list[str]) -> tuple[list[str], set[str]]:
    """(paths the command reads or runs, paths it creates itself)."""
    named, created = [], set()
    if argv[:3] == ["aws", "lambda", "invoke"]:
        created.add(argv[-1])
    for prev, token in zip([""] + argv, argv):
        if prev == "-H":  # a header value (application/json), not a path
            continue
        if prev == ">":
            created.add(token)
            continue
        token = re.sub(r"^(fileb?://|@)", "", token)
        for part in re.split(r"[=:]", token):
            part = part.removeprefix("$PWD/")
            if part.startswith("$") or part.startswith("/") or not part:
                continue
            named += PATH_LIKE.findall(part)
    return named, created


def unmet(doc: str) -> list[str]:
    """Every file a first-deploy command names that nothing before it provides."""
    tracked = subprocess.run(["git", "-C", str(ROOT), "ls-files"], check=True,
                             capture_output=True, text=True).stdout.split()
    available = set(tracked) | {str(p) for f in tracked for p in PurePath(f).parents}
    problems = []
    for command in first_deploy_commands(doc):
        argv = shlex.split(command.replace("$(", " $(").replace(")", " ) "), comments=True)
        if not argv:
            continue
        named, created = named_files(argv)
        for path in named:
            if path.rstrip("/") not in available and path not in created:
                problems.append(f"{path!r} in `{command.strip()}`")
        if argv[0] in tracked and not os.access(ROOT / argv[0], os.X_OK):
            problems.append(f"{argv[0]} is run as a command but is not executable")
        available |= created
        for script, made in CREATES.items():
            if script in argv:
                available |= made
    return problems


def test_every_file_a_first_deploy_command_names_exists_or_is_made_before():
    doc = (ROOT / "docs" / "deploy.md").read_text()
    assert len(first_deploy_commands(doc)) >= 8, "the section's commands were not found"
    assert unmet(doc) == []


@pytest.mark.parametrize("line", [
    # A step that once named a file a first deploy does not have yet.
    "sam deploy --guided --config-file samconfig.local.toml --parameter-overrides \"$overrides\"",
    "awscurl --service execute-api -X POST -d @event.json \"$API_URL/events\"",
])
def test_a_missing_file_is_reported(line):
    doc = f"{SECTION}\n\n```sh\n{line}\n```\n"
    assert unmet(doc), f"the check must flag {line}"


def run_samconfig_local(tmp_path, *args):
    (tmp_path / "infra" / "tools").mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "infra" / "tools" / "samconfig-local.py", tmp_path / "infra" / "tools")
    shutil.copy(ROOT / "samconfig.toml", tmp_path)
    return subprocess.run([sys.executable, str(tmp_path / "infra" / "tools" / "samconfig-local.py"),
                           *args], capture_output=True, text=True)


def sam_overrides(config_dir, env):
    samconfig = pytest.importorskip("samcli.lib.config.samconfig")
    config = samconfig.SamConfig(str(config_dir), "samconfig.local.toml")
    return config.get_all(["deploy"], "parameters", env=env)["parameter_overrides"]


def test_the_local_configuration_keeps_the_committed_prod_overrides(tmp_path):
    db = ("DbHost=eis-db.abc.us-east-1.rds.amazonaws.com "
          "DbSecretArn=arn:aws:secretsmanager:us-east-1:111111111111:secret:eis/eis_service-Ab12")
    r = run_samconfig_local(tmp_path, "prod", db)
    assert r.returncode == 0, r.stderr
    overrides = sam_overrides(tmp_path, "prod")
    for committed in ('ArchiveProtection="ObjectLock"', 'LogRetentionDays="90"',
                      'GlueDatabaseName="eis_archive_prod"'):
        assert committed in overrides
    assert 'DbHost="eis-db.abc.us-east-1.rds.amazonaws.com"' in overrides
    assert "DbSecretArn=" in overrides
    # Everything else is the committed file's.
    committed = (ROOT / "samconfig.toml").read_text().splitlines()
    local = (tmp_path / "samconfig.local.toml").read_text().splitlines()
    assert [line for line in local if not line.startswith("parameter_overrides")] == \
        [line for line in committed if not line.startswith("parameter_overrides")]


def test_the_default_environment_gets_the_database_parameters(tmp_path):
    r = run_samconfig_local(tmp_path, "default", "DbHost=h DbName=eis")
    assert r.returncode == 0, r.stderr
    assert sam_overrides(tmp_path, "default") == 'DbHost="h" DbName="eis"'


def test_saved_answers_are_never_overwritten(tmp_path):
    assert run_samconfig_local(tmp_path, "default", "DbHost=h").returncode == 0
    (tmp_path / "samconfig.local.toml").write_text("# the deployer's saved answers\n")
    again = run_samconfig_local(tmp_path, "default", "DbHost=other")
    assert again.returncode != 0 and "exists" in again.stderr
    assert (tmp_path / "samconfig.local.toml").read_text() == "# the deployer's saved answers\n"

"""The migrations custom resource's handler (infra/migrations-resource/index.py, template.yaml's
MigrationsFunction), run against stand-ins for boto3 and CloudFormation's response URL: it must
always answer CloudFormation, invoke the migrator with {"action": "migrate"} on Create and
Update, and do nothing on Delete."""

import importlib.util
import io
import json
import sys
import types

import pytest

from conftest import ROOT

SUCCESS, FAILED = "SUCCESS", "FAILED"


class FakeLambda:
    def __init__(self, answer=None, error=None, function_error=None):
        self.calls = []
        self.answer = answer if answer is not None else {"applied": ["V1__events"]}
        self.error = error
        self.function_error = function_error

    def invoke(self, **kwargs):
        self.calls.append(kwargs)
        if self.error:
            raise self.error
        out = {"StatusCode": 200, "Payload": io.BytesIO(json.dumps(self.answer).encode())}
        if self.function_error:
            out["FunctionError"] = self.function_error
        return out


class FakeAnswer:
    status = 200

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.fixture()
def handler_env(template, monkeypatch):
    """Loads infra/migrations-resource/index.py with a fake boto3 and a response URL that
    records what is PUT to it; returns (module, sent responses, fake client)."""
    fn = template["Resources"]["MigrationsFunction"]["Properties"]
    sent = []
    client = FakeLambda()

    boto3 = types.ModuleType("boto3")
    boto3.client = lambda service, config=None: client if service == "lambda" else None
    botocore = types.ModuleType("botocore")
    botocore_config = types.ModuleType("botocore.config")
    botocore_config.Config = lambda **kwargs: kwargs
    botocore.config = botocore_config
    for name, module in {"boto3": boto3, "botocore": botocore, "botocore.config": botocore_config}.items():
        monkeypatch.setitem(sys.modules, name, module)
    for key, value in fn["Environment"]["Variables"].items():
        monkeypatch.setenv(key, value if isinstance(value, str) else "arn:aws:lambda:migrator:live")
    path = ROOT / fn["CodeUri"] / "index.py"
    spec = importlib.util.spec_from_file_location("migrations_resource", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def urlopen(request, timeout):
        assert request.method == "PUT" and request.full_url == "https://example.invalid/response"
        assert request.get_header("Content-type") == "", "the presigned URL is signed for no type"
        body = json.loads(request.data)
        assert {body["StackId"], body["RequestId"], body["LogicalResourceId"]} == {
            "stack", "request", "Migrations"}
        sent.append({"status": body["Status"], "physical_id": body["PhysicalResourceId"],
                     "reason": body["Reason"]})
        return FakeAnswer()

    monkeypatch.setattr(module.urllib.request, "urlopen", urlopen)
    return module, sent, client


def event(request_type):
    return {
        "RequestType": request_type,
        "ResponseURL": "https://example.invalid/response",
        "StackId": "stack",
        "RequestId": "request",
        "LogicalResourceId": "Migrations",
        "ResourceProperties": {"MigratorVersion": "arn:aws:lambda:migrator:7"},
    }


@pytest.mark.parametrize("request_type", ["Create", "Update"])
def test_create_and_update_migrate(handler_env, request_type):
    module, sent, client = handler_env
    module.handler(event(request_type), None)
    assert len(client.calls) == 1
    call = client.calls[0]
    assert call["InvocationType"] == "RequestResponse", "wait for the migrations"
    assert json.loads(call["Payload"]) == {"action": "migrate"}
    assert [s["status"] for s in sent] == [SUCCESS]


def test_delete_is_a_no_op(handler_env):
    module, sent, client = handler_env
    module.handler(event("Delete"), None)
    assert client.calls == []
    assert [s["status"] for s in sent] == [SUCCESS]


def test_archiver_error_fails_the_deploy(handler_env):
    module, sent, client = handler_env
    client.function_error = "Unhandled"
    client.answer = {"errorMessage": "cannot read CA file /opt/rds-global-bundle.pem"}
    module.handler(event("Create"), None)
    assert [s["status"] for s in sent] == [FAILED]
    assert "CA file" in sent[0]["reason"]


def test_invoke_exception_is_reported(handler_env):
    module, sent, client = handler_env
    client.error = TimeoutError("read timeout")
    module.handler(event("Update"), None)
    assert [s["status"] for s in sent] == [FAILED]
    assert "read timeout" in sent[0]["reason"]


def test_physical_id_is_stable(handler_env):
    """A changing physical id would make CloudFormation delete the 'old' resource."""
    module, sent, _ = handler_env
    module.handler(event("Create"), None)
    module.handler(event("Update"), None)
    assert len({s["physical_id"] for s in sent}) == 1


class Throttled(Exception):
    """What botocore raises when the account's concurrency is exhausted."""

    def __init__(self, code="TooManyRequestsException"):
        super().__init__(f"An error occurred ({code}) when calling the Invoke operation: Rate Exceeded.")
        self.response = {"Error": {"Code": code}}


class ThrottledThen(FakeLambda):
    def __init__(self, times, code="TooManyRequestsException"):
        super().__init__()
        self.times, self.code = times, code

    def invoke(self, **kwargs):
        if self.times > 0:
            self.times -= 1
            self.calls.append(kwargs)
            raise Throttled(self.code)
        return super().invoke(**kwargs)


@pytest.fixture()
def fake_clock(monkeypatch, handler_env):
    """time.sleep advances time.monotonic instead of waiting."""
    module, _, _ = handler_env
    now = [1000.0]
    slept = []
    monkeypatch.setattr(module.time, "monotonic", lambda: now[0])

    def sleep(seconds):
        slept.append(seconds)
        now[0] += seconds

    monkeypatch.setattr(module.time, "sleep", sleep)
    return slept


def test_throttled_invoke_is_retried_for_minutes(handler_env, fake_clock, monkeypatch):
    """A burst of ingest traffic can hold the account's concurrency for a few minutes."""
    module, sent, _ = handler_env
    client = ThrottledThen(times=12)
    monkeypatch.setattr(module.boto3, "client", lambda service, config=None: client)
    module.handler(event("Update"), None)
    assert [s["status"] for s in sent] == [SUCCESS]
    assert len(client.calls) == 13
    assert sum(fake_clock) >= 300, "waits out a burst of five minutes"
    assert max(fake_clock) <= 30


def test_throttling_beyond_the_retry_window_fails_the_deploy(handler_env, fake_clock, monkeypatch):
    module, sent, _ = handler_env
    client = ThrottledThen(times=10_000)
    monkeypatch.setattr(module.boto3, "client", lambda service, config=None: client)
    module.handler(event("Create"), None)
    assert [s["status"] for s in sent] == [FAILED]
    assert "TooManyRequests" in sent[0]["reason"]
    assert sum(fake_clock) <= int(module.os.environ["RETRY_THROTTLED_SECONDS"])


def test_other_errors_are_not_retried(handler_env, fake_clock, monkeypatch):
    module, sent, _ = handler_env
    client = ThrottledThen(times=1, code="ResourceNotFoundException")
    monkeypatch.setattr(module.boto3, "client", lambda service, config=None: client)
    module.handler(event("Create"), None)
    assert [s["status"] for s in sent] == [FAILED]
    assert len(client.calls) == 1 and fake_clock == []


def test_timeouts_leave_room_for_retries_and_one_run(template):
    """Retry window + one migrator run + a margin fit in the function's and the resource's timeouts."""
    r = template["Resources"]
    fn = r["MigrationsFunction"]["Properties"]
    env = fn["Environment"]["Variables"]
    retry, read = int(env["RETRY_THROTTLED_SECONDS"]), int(env["READ_TIMEOUT_SECONDS"])
    migrator_timeout = r["MigratorFunction"]["Properties"]["Timeout"]
    assert retry >= 300
    assert read > migrator_timeout
    assert retry + read + 20 <= fn["Timeout"] <= 900
    assert r["Migrations"]["Properties"]["ServiceTimeout"] > fn["Timeout"]


def test_no_scheduled_run_can_hold_the_migrator(template):
    """The deploy's invoke goes to a function of its own: no schedule, no reserved slot that
    an archiver run could take (with ReserveArchiverConcurrency its runs can fill the archiver's slots)."""
    r = template["Resources"]
    migrator = r["MigratorFunction"]["Properties"]
    assert not migrator.get("Events")
    assert "ReservedConcurrentExecutions" not in migrator
    env = r["MigrationsFunction"]["Properties"]["Environment"]["Variables"]
    assert env["MIGRATOR_FUNCTION"] == {"Ref": "MigratorFunction.Alias"}

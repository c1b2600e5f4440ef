"""Authorization headers: a bearer token from a provider called per request, and SigV4 for
execute-api (botocore, the "aws" extra)."""

import pytest

from eis_client.auth import BearerAuth, SigV4Auth


def test_bearer_calls_the_provider_every_time():
    tokens = iter(["one", "two"])
    auth = BearerAuth(lambda: next(tokens))
    assert auth.headers("POST", "https://x/events/batch", b"{}", {}) == {"Authorization": "Bearer one"}
    assert auth.headers("POST", "https://x/events/batch", b"{}", {}) == {"Authorization": "Bearer two"}
    assert BearerAuth("static").headers("POST", "u", b"", {}) == {"Authorization": "Bearer static"}


def test_sigv4_signs_for_execute_api_in_the_region():
    credentials = pytest.importorskip("botocore.credentials")
    auth = SigV4Auth("eu-west-1", credentials=credentials.Credentials("AKIDEXAMPLE", "secret", "session"))
    headers = auth.headers("POST", "https://abc.execute-api.eu-west-1.amazonaws.com/events/batch",
                           b'{"events":[]}', {"Content-Type": "application/json",
                                              "EIS-Sent-At": "2026-12-03T21:00:00.123000Z"})
    authorization = headers["Authorization"]
    assert authorization.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/eu-west-1/execute-api/aws4_request" in authorization
    assert "eis-sent-at" in authorization
    assert headers["X-Amz-Security-Token"] == "session"
    assert "X-Amz-Date" in headers

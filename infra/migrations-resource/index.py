"""The `Migrations` custom resource of template.yaml (MigrationsFunction): Create and Update
invoke the migrator function with {"action": "migrate"} and wait for it; Delete does nothing
(the schema outlives the stack). Every outcome is reported to CloudFormation, so a failed
migration rolls the deploy back instead of leaving it waiting for an hour.

Standard library and boto3 only (both in the Lambda Python runtime): nothing to install.
tests/template/test_migrations_handler.py runs it against stand-ins for boto3 and the
response URL.
"""

import json
import os
import time
import urllib.request

import boto3
from botocore.config import Config

PHYSICAL_ID = "eis-database-migrations"
SUCCESS, FAILED = "SUCCESS", "FAILED"


def respond(event, context, status, reason=None):
    """PUTs the custom resource's answer to CloudFormation's presigned response URL."""
    log_stream = getattr(context, "log_stream_name", "local")
    body = json.dumps({
        "Status": status,
        "Reason": reason or f"see CloudWatch log stream {log_stream}",
        "PhysicalResourceId": PHYSICAL_ID,
        "StackId": event["StackId"],
        "RequestId": event["RequestId"],
        "LogicalResourceId": event["LogicalResourceId"],
        "NoEcho": False,
        "Data": {},
    }).encode()
    request = urllib.request.Request(
        event["ResponseURL"], data=body, method="PUT",
        # The presigned URL is signed for an empty content type.
        headers={"Content-Type": "", "Content-Length": str(len(body))},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 - CloudFormation's URL
        print("CloudFormation answered", answer.status)


def throttled(exc):
    code = getattr(exc, "response", {}).get("Error", {}).get("Code")
    return code == "TooManyRequestsException"


def invoke_when_free(client):
    """Invokes the migrator; while the account's concurrency is exhausted the invoke is
    throttled, so it is retried (5 s, doubling to 30 s) for a while."""
    give_up = time.monotonic() + int(os.environ["RETRY_THROTTLED_SECONDS"])
    pause = 5
    while True:
        try:
            return client.invoke(
                FunctionName=os.environ["MIGRATOR_FUNCTION"],
                InvocationType="RequestResponse",
                Payload=json.dumps({"action": "migrate"}).encode(),
            )
        except Exception as exc:
            if not throttled(exc) or time.monotonic() + pause > give_up:
                raise
            print(f"migrator throttled (TooManyRequests); retrying in {pause} s")
            time.sleep(pause)
            pause = min(pause * 2, 30)


def handler(event, context):
    request = event.get("RequestType")
    print(json.dumps({"request": request, "properties": event.get("ResourceProperties")}))
    if request == "Delete":
        respond(event, context, SUCCESS)
        return
    try:
        client = boto3.client(
            "lambda",
            config=Config(
                read_timeout=int(os.environ["READ_TIMEOUT_SECONDS"]),
                connect_timeout=10,
                retries={"max_attempts": 0},
            ),
        )
        response = invoke_when_free(client)
        body = response["Payload"].read().decode("utf-8", "replace")
        print("migrator answered:", body)
        if response.get("FunctionError"):
            raise RuntimeError("migrate failed: " + body[:700])
        respond(event, context, SUCCESS)
    except Exception as exc:  # every failure must reach CloudFormation
        print("migration failed:", repr(exc))
        respond(event, context, FAILED, reason=str(exc)[:900])

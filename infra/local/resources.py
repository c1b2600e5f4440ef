"""Creates the local queue, its dead-letter queue and the archive bucket on moto (idempotent).

Prints "<queue_url> <dlq_url>". Endpoint and credentials come from the standard AWS_* variables.
"""

import argparse
import json

import boto3


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--queue", required=True)
    parser.add_argument("--bucket", required=True)
    args = parser.parse_args()

    sqs = boto3.client("sqs")
    dlq_url = sqs.create_queue(
        QueueName=f"{args.queue}-dlq",
        Attributes={"MessageRetentionPeriod": "1209600"},
    )["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"})
    queue_url = sqs.create_queue(
        QueueName=args.queue,
        Attributes={"VisibilityTimeout": "120", "MessageRetentionPeriod": "345600"},
    )["QueueUrl"]
    # Set separately so that re-running against an existing queue still (re)applies it.
    sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"RedrivePolicy": redrive})

    s3 = boto3.client("s3")
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    if args.bucket not in existing:
        s3.create_bucket(Bucket=args.bucket)

    print(queue_url, dlq_url)


if __name__ == "__main__":
    main()

"""Creates the local queue, its dead-letter queue and the archive bucket on moto (idempotent).

Prints "<queue_url> <dlq_url>". With --remove, deletes them instead (the bucket with its
objects): the benchmarks' scratch resources. Endpoint and credentials come from the standard
AWS_* variables.
"""

import argparse
import json

import boto3


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--queue", required=True)
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--remove", action="store_true")
    args = parser.parse_args()
    if args.remove:
        remove(args.queue, args.bucket)
    else:
        create(args.queue, args.bucket)


def create(queue: str, bucket: str) -> None:
    sqs = boto3.client("sqs")
    dlq_url = sqs.create_queue(
        QueueName=f"{queue}-dlq",
        Attributes={"MessageRetentionPeriod": "1209600"},
    )["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"})
    queue_url = sqs.create_queue(
        QueueName=queue,
        Attributes={"VisibilityTimeout": "120", "MessageRetentionPeriod": "345600"},
    )["QueueUrl"]
    # Set separately so that re-running against an existing queue still (re)applies it.
    sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"RedrivePolicy": redrive})

    s3 = boto3.client("s3")
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    if bucket not in existing:
        s3.create_bucket(Bucket=bucket)

    print(queue_url, dlq_url)


def remove(queue: str, bucket: str) -> None:
    sqs = boto3.client("sqs")
    for name in (queue, f"{queue}-dlq"):
        try:
            sqs.delete_queue(QueueUrl=sqs.get_queue_url(QueueName=name)["QueueUrl"])
        except sqs.exceptions.QueueDoesNotExist:
            pass
    b = boto3.resource("s3").Bucket(bucket)
    if b.creation_date is not None:
        b.objects.all().delete()
        b.delete()


if __name__ == "__main__":
    main()

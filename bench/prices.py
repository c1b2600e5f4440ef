"""AWS list prices: the inputs of every cost figure in BENCHMARKS.md (bench/report.py) and
docs/capacity.md (bench/capacity.py), stated once. Prices cannot be measured here: each is an
input with the page it comes from and the date it was written into the project, typed in
from those pages, not fetched by the bench, and not checked since. Check them on the pages
before relying on a figure; change them here and generate both documents again.

us-east-1, on demand, free tiers ignored. RDS prices are single-AZ: a Multi-AZ deployment
pays RDS_MULTI_AZ_FACTOR times the instance and its storage.
"""

LAMBDA = "https://aws.amazon.com/lambda/pricing/"
API_GATEWAY = "https://aws.amazon.com/api-gateway/pricing/"
SQS = "https://aws.amazon.com/sqs/pricing/"
S3 = "https://aws.amazon.com/s3/pricing/"
FIREHOSE = "https://aws.amazon.com/firehose/pricing/"
RDS = "https://aws.amazon.com/rds/postgresql/pricing/"
RDS_PROXY = "https://aws.amazon.com/rds/proxy/pricing/"
PRIVATELINK = "https://aws.amazon.com/privatelink/pricing/"
SECRETS_MANAGER = "https://aws.amazon.com/secrets-manager/pricing/"
CLOUDWATCH = "https://aws.amazon.com/cloudwatch/pricing/"

# name: (USD, what it is charged for, source page, date written into the project)
PRICES = {
    "lambda_arm64_gb_s": (0.0000133334, "Lambda arm64, per GB-second", LAMBDA, "2026-11-29"),
    "lambda_requests_per_million": (0.20, "Lambda, per million requests", LAMBDA, "2026-11-29"),
    "http_api_per_million": (1.00, "HTTP API, per million requests (first 300 M a month), each metered "
                             "per 512 KiB of request", API_GATEWAY, "2026-11-29"),
    "sqs_standard_per_million": (0.40, "SQS standard, per million requests, each 64 KiB chunk of a "
                                 "call's payload billed as one request", SQS, "2026-11-29"),
    "s3_put_per_thousand": (0.005, "S3 PUT, per 1 000 requests", S3, "2026-11-29"),
    "s3_standard_gb_month": (0.023, "S3 Standard, per GB-month", S3, "2026-11-29"),
    "s3_standard_ia_gb_month": (0.0125, "S3 Standard-IA, per GB-month", S3, "2026-11-29"),
    "s3_glacier_ir_gb_month": (0.004, "S3 Glacier Instant Retrieval, per GB-month", S3, "2026-11-29"),
    "firehose_direct_put_per_gb": (0.029, "Firehose Direct PUT, per GB (first 500 TB a month), each "
                                   "record rounded up to 5 KiB", FIREHOSE, "2026-11-29"),
    "firehose_format_conversion_per_gb": (0.018, "Firehose record format conversion, per GB", FIREHOSE,
                                          "2026-11-29"),
    "rds_gp3_gb_month": (0.115, "RDS for PostgreSQL gp3 storage, per GB-month", RDS, "2026-11-29"),
    "rds_proxy_vcpu_hour": (0.015, "RDS Proxy, per vCPU-hour of the instance (2 vCPUs at least)",
                            RDS_PROXY, "2026-11-29"),
    "interface_endpoint_az_hour": (0.01, "VPC interface endpoint, per AZ-hour (plus per GB processed)",
                                   PRIVATELINK, "2026-11-29"),
    "secret_month": (0.40, "Secrets Manager, per secret-month", SECRETS_MANAGER, "2026-11-29"),
    "alarm_metric_month": (0.10, "CloudWatch, per standard-resolution alarm metric-month", CLOUDWATCH,
                           "2026-11-29"),
    "logs_ingested_gb": (0.50, "CloudWatch Logs, per GB ingested", CLOUDWATCH, "2026-11-29"),
}

# RDS for PostgreSQL instance classes: (name, vCPUs, USD per hour single-AZ, date written in).
RDS_CLASSES = [
    ("db.t4g.micro", 2, 0.016, "2026-11-29"),
    ("db.r6g.large", 2, 0.225, "2026-12-02"), ("db.r6g.xlarge", 4, 0.45, "2026-12-02"),
    ("db.r6g.2xlarge", 8, 0.90, "2026-12-02"), ("db.r6g.4xlarge", 16, 1.80, "2026-12-02"),
    ("db.r6g.8xlarge", 32, 3.595, "2026-12-02"), ("db.r6g.12xlarge", 48, 5.395, "2026-12-02"),
    ("db.r6g.16xlarge", 64, 7.195, "2026-12-02"),
]
RDS_MULTI_AZ_FACTOR = 2

# How the services meter, from the same pages.
HTTP_API_METER_BYTES = 512 * 1024
SQS_BILLED_CHUNK_BYTES = 64 * 1024
FIREHOSE_RECORD_ROUND_BYTES = 5 * 1024
HOURS_PER_MONTH = 730  # AWS's monthly estimates


def price(name):
    return PRICES[name][0]


def usd(value):
    """Dollars as written on the pricing pages: every digit given, at least cents."""
    digits = f"{value:.10f}".rstrip("0")
    return "$" + digits + "0" * max(0, 2 - len(digits.split(".")[1]))


def table_md():
    """The prices as a Markdown table: the one place a document lists them."""
    rows = [f"| {what} | {usd(value)} | [{page.split('/')[3]}]({page}) | {date} |"
            for value, what, page, date in PRICES.values()]
    rows += [f"| RDS for PostgreSQL {name} ({vcpus} vCPU), per hour, single-AZ | {usd(hourly)} | "
             f"[rds]({RDS}) | {date} |" for name, vcpus, hourly, date in RDS_CLASSES]
    return "\n".join(["| price | USD | source | written in |", "|---|---|---|---|"] + rows)

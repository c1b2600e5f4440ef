# The two commands of the README: `make dev` serves the API on the local stack, `make test`
# runs every test. Everything else here is a step of those two or a convenience.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# A target directory and tool virtualenvs outside the clone survive between runs (and fresh
# clones) on one machine; a fresh machine simply builds into them.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/eis/target
export EIS_TOOLS_DIR ?= $(HOME)/.cache/eis/tools

.PHONY: help dev test up down migrate archive audit health registry plan replay restore erase check-templates sam-build bench smoke

help:
	@echo "make dev              local stack + ingest API on http://127.0.0.1:$${EIS_PORT:-3000} (Ctrl-C stops)"
	@echo "make test             fmt, clippy, every test, template checks and sam build (starts what it needs)"
	@echo "make up               start the local stack (PostgreSQL, moto) and write .local/env"
	@echo "make down             stop what make up started"
	@echo "make migrate          apply migrations to the local database"
	@echo "make archive          one archiver run now against the local stack; prints the summary"
	@echo "make audit            compare the local archive with PostgreSQL; prints the audit's summary"
	@echo "make health           one experiment-health run now (assignments, rollups, SRM); prints its summary"
	@echo "make registry         load REGISTRY (default: the example) into the experiment registry (docs/health.md)"
	@echo "make plan             load PLAN (default: infra/local/plan.json) into the tracking plan (docs/plan.md)"
	@echo "make replay FROM= TO= [CODE=]  judge the quarantined input of [FROM, TO) again (docs/quarantine.md)"
	@echo "make restore FROM= TO=         archived events of [FROM, TO) back into PostgreSQL (docs/quarantine.md)"
	@echo "make erase UNIT_TYPE= UNIT_ID= [SUPPRESS=1]  erase one unit's data from every store; prints the receipt (docs/privacy.md)"
	@echo "make check-templates  cfn-lint, sam validate --lint, checkov and the template tests"
	@echo "make sam-build        sam build for arm64 and the bootstrap binaries' sizes"
	@echo "make bench            benchmarks (see BENCHMARKS.md)"
	@echo "make smoke URL= [AUTH=iam|jwt]  after a deploy: events sent, stored, archived, read back (docs/smoke.md)"

test:
	infra/local/test.sh

up:
	infra/local/up.sh

down:
	infra/local/down.sh

# The migrator's {"action":"migrate"}, its default input outside Lambda.
migrate: up
	source .local/env && cargo run --quiet --locked --bin migrator

# The same input EventBridge sends; the same build as `make dev` and `cargo lambda watch`.
archive: up
	source .local/env && cargo run --quiet --locked --bin archiver -- events/archiver-scheduled.json

# The same input as the audit's schedule in AWS.
audit: up
	source .local/env && cargo run --quiet --locked --bin archiver -- events/archiver-audit.json

# The same input as the health job's schedule in AWS.
health: up
	source .local/env && cargo run --quiet --locked --bin archiver -- events/archiver-health.json

# Registry entries (docs/health.md, "The registry"); each replaces the experiment of its id.
# The same input `aws lambda invoke` sends the migrator function in AWS: REGISTRY's array
# (a file) as {"action":"registry","experiments":[…]}; without REGISTRY, the example fixture.
registry: migrate
	source .local/env && if [ -z '$(REGISTRY)' ]; then input=events/migrator-registry.json; \
	  else input=.local/registry-input.json; \
	  printf '{"action":"registry","experiments":%s}\n' "$$(cat '$(REGISTRY)')" > "$$input"; fi && \
	  cargo run --quiet --locked --bin migrator -- "$$input"

# The tracking plan (docs/plan.md): PLAN's document (a file; without PLAN, the example
# infra/local/plan.json) added to the plan, as the archiver's {"action":"plan","plan":{…}},
# the input `aws lambda invoke` sends it in AWS. A schema that does not compile refuses the
# whole document (plan_invalid). The ingest's copy follows within EIS_REGISTRY_MAX_AGE.
plan: migrate
	source .local/env && PLAN='$(or $(PLAN),infra/local/plan.json)' python3 -c \
	  'import json, os; print(json.dumps({"action": "plan", "plan": json.load(open(os.environ["PLAN"]))}))' \
	  > .local/plan-input.json && \
	  cargo run --quiet --locked --bin archiver -- .local/plan-input.json

# One erasure request (docs/privacy.md), recorded and carried through every store now: the
# archiver's {"action":"erase","requests":[…]}, as `aws lambda invoke` sends it in AWS.
# Prints the answer, with the request's receipt. Without the grace of AWS: locally nothing
# else runs while it does.
erase: migrate
	@test -n "$(UNIT_TYPE)" -a -n "$(UNIT_ID)" || { echo "usage: make erase UNIT_TYPE=user UNIT_ID=u-1 [SUPPRESS=1]" >&2; exit 2; }
	source .local/env && UNIT_TYPE='$(UNIT_TYPE)' UNIT_ID='$(UNIT_ID)' SUPPRESS='$(SUPPRESS)' python3 -c \
	  'import json, os; print(json.dumps({"action": "erase", "requests": [{"unit_type": os.environ["UNIT_TYPE"], "unit_id": os.environ["UNIT_ID"], "suppress": os.environ["SUPPRESS"] not in ("", "0")}]}))' \
	  > .local/erase-input.json && \
	  EIS_ERASURE_GRACE_SECS=0 cargo run --quiet --locked --bin archiver -- .local/erase-input.json

# The operator's inputs of docs/quarantine.md, as `aws lambda invoke` sends them in AWS:
# FROM and TO are RFC 3339 instants (TO excluded), CODE one rejection code. range.sh invokes
# again from `unfinished_from` with `resume` until the range is done.
replay restore: up
	@test -n "$(FROM)" -a -n "$(TO)" || { echo "usage: make $@ FROM=2026-12-02T10:00:00Z TO=2026-12-02T12:00:00Z$(if $(filter replay,$@), [CODE=future_timestamp])" >&2; exit 2; }
	source .local/env && cargo build --quiet --locked --bin archiver && \
	  infra/local/range.sh $@ "$(FROM)" "$(TO)" "$(CODE)"

dev:
	infra/local/dev.sh

check-templates:
	infra/tools/check-templates.sh

sam-build:
	infra/tools/sam-build.sh

bench:
	bench/run.sh

# After a deploy, or against `make dev` (docs/smoke.md). BUCKET and PREFIX default to
# $EIS_BUCKET and $EIS_ARCHIVE_PREFIX; AUTH=jwt reads the token from $SMOKE_TOKEN.
smoke:
	@test -n "$(URL)" || { echo "usage: make smoke URL=https://… [AUTH=none|iam|jwt] [BUCKET=…] [PREFIX=…] [REGION=…] [WAIT=900]" >&2; exit 2; }
	@infra/tools/smoke.sh '$(URL)' --auth '$(or $(AUTH),none)' $(if $(BUCKET),--bucket '$(BUCKET)') \
	  $(if $(PREFIX),--prefix '$(PREFIX)') $(if $(REGION),--region '$(REGION)') $(if $(WAIT),--wait '$(WAIT)')

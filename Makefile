# The two commands of the README: `make dev` serves the API on the local stack, `make test`
# runs every test. Everything else here is a step of those two or a convenience.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# A target directory outside the clone survives between runs (and fresh clones) on one
# machine; a fresh machine simply builds into it.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/eis/target

.PHONY: help dev test up down migrate archive bench

help:
	@echo "make dev      local stack + ingest API on http://127.0.0.1:$${EIS_PORT:-3000} (Ctrl-C stops)"
	@echo "make test     fmt, clippy and every test (starts what it needs)"
	@echo "make up       start the local stack (PostgreSQL, moto) and write .local/env"
	@echo "make down     stop what make up started"
	@echo "make migrate  apply migrations to the local database"

test:
	infra/local/test.sh

up:
	infra/local/up.sh

down:
	infra/local/down.sh

migrate: up
	source .local/env && cargo run --quiet --locked --bin eis-migrate

dev:
	infra/local/dev.sh

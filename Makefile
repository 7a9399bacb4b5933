# Gravity BFF — every day-to-day command. `make` (or `make help`) lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

MUSL_TARGET := x86_64-unknown-linux-musl
MUSL_BIN    := target/$(MUSL_TARGET)/release/gravity-bff
COMPOSE     := scripts/compose.sh
# The test services' project, named on the command line: COMPOSE_PROJECT_NAME (which names the
# main stack) must not make them part of it.
TEST_PROJECT ?= gravity-bff-test

.PHONY: help up down down-volumes logs ps dev test test-fast test-up test-down test-containers bench image lint build build-musl run migrate
.PHONY: swarm-up swarm-down swarm-down-volumes swarm-ps

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[1m%-20s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

## --- the stack in Docker ---------------------------------------------------

up: ## build the image, check .env with it, run the whole stack (lb, api, db, cache, migrate) in the background; API_REPLICAS=N for N replicas
	@scripts/stack.sh up

# The monitoring profile's prometheus goes too, whether or not it was started.
down: ## stop the stack (data volumes are kept; `make down-volumes` drops them)
	$(COMPOSE) --profile monitoring down --remove-orphans

down-volumes: ## stop the stack and delete its data: the pgdata volume (and make dev's cargo volumes, Prometheus's data)
	$(COMPOSE) -f docker-compose.yml -f docker-compose.dev.yml --profile monitoring down --volumes --remove-orphans

# Compose ends a followed log with 130 on Ctrl-C: the normal way out, not an error for make to report.
logs: ## follow the stack's logs (Ctrl-C ends it)
	@$(COMPOSE) logs -f || [ $$? -eq 130 ]

ps: ## show every service of the stack, exited ones too, and its health
	$(COMPOSE) ps -a

dev: ## run the stack with the API hot-reloading from the bind-mounted source (Postgres/Redis on 127.0.0.1:15432/16379)
	@scripts/stack.sh dev

image: ## build the runtime image only (gravity-bff:latest; with buildx, or else through Compose v2)
	@scripts/image.sh

# A new .env gets a random DB_PASSWORD (never the example's) and is readable by its owner only.
.env:
	@umask 077 && password=$$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n') \
		&& sed "s/^DB_PASSWORD=.*/DB_PASSWORD=$$password/" .env.example > .env
	@echo "created .env from .env.example with a random DB_PASSWORD and AUTH_DISABLED=true: authentication is off until AUTH_ISSUER and AUTH_AUDIENCE are set (README, Authentication); review it before exposing anything"

## --- the stack on Docker Swarm (docs/DEPLOY.md) ------------------------------

swarm-up: ## deploy the stack to this Swarm (deploy/swarm/stack.yml): migrations first, then the api one replica at a time
	@scripts/swarm.sh up

swarm-down: ## remove the Swarm stack (its volumes and secrets are kept)
	@scripts/swarm.sh down

swarm-down-volumes: ## remove the Swarm stack, its volumes and its secrets (deletes the data)
	@scripts/swarm.sh down-volumes

swarm-ps: ## the Swarm stack's services and their tasks
	@scripts/swarm.sh ps

## --- tests -----------------------------------------------------------------

test: ## run every test (uses Postgres/Redis if reachable, else throwaway containers; the chroot suite needs root or sudo; CONTRIBUTING.md says how long)
	scripts/test.sh

test-fast: ## the quick path: fmt --check, clippy -D warnings, cargo test
	@echo "make test-fast: cargo fmt --check, clippy -D warnings, cargo test (unit and tests/api); CONTRIBUTING.md says how long"
	cargo fmt --all -- --check
	cargo clippy --locked --workspace --all-targets -- -D warnings
	cargo test --locked --workspace

test-up: ## start the throwaway test Postgres (5433) and Redis (6380)
	$(COMPOSE) -p $(TEST_PROJECT) -f docker-compose.test.yml up -d --wait

test-down: ## stop and remove the test services and their data
	$(COMPOSE) -p $(TEST_PROJECT) -f docker-compose.test.yml down -v --remove-orphans

test-containers: ## the container stack end to end on a real Docker engine (tests/containers_e2e)
	scripts/test-containers.sh

bench: ## load-test the service with oha and print a table (see docs/BENCHMARKS.md)
	scripts/bench.sh

## --- local development without Docker ----------------------------------------

lint: ## cargo fmt --check, clippy with warnings as errors, shellcheck and ruff (scripts/check-tooling.sh)
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	scripts/check-tooling.sh

build: ## debug build
	cargo build

build-musl: ## the static release binary, as the image ships it on an x86_64 host (target/x86_64-unknown-linux-musl/release/gravity-bff)
	cargo build --release --locked --target $(MUSL_TARGET)
	@ls -l $(MUSL_BIN)

run: ## run the service against a local Postgres and Redis (settings from .env or the environment)
	scripts/run-local.sh

migrate: ## apply migrations to the database named by the environment
	scripts/run-local.sh migrate up

## --- reliability: chaos and fuzzing (see docs/RELIABILITY.md) ------------------

.PHONY: chaos fuzz

chaos: ## the chaos scenarios against the release binary (2 min soak; CHAOS_SOAK_SECONDS, CHAOS_ONLY)
	scripts/chaos.sh

fuzz: ## the fuzz targets of tests/fuzz at 100,000 cases each (FUZZ_CASES), corpus replayed first
	FUZZ_CASES=$${FUZZ_CASES:-100000} cargo test --locked --test fuzz

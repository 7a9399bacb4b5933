#!/usr/bin/env bash
# `make test-containers`: the container stack end to end on a real Docker engine (tests/containers_e2e).
# On a scratch copy of the repository, with a fresh .env and a Compose project, image tags and host
# ports of its own: `make up` (health, migrate first, CRUD, hardening, a drained stop, a stale
# volume explained, data kept, Redis killed), `API_REPLICAS=3 make up` (three replicas behind the
# load balancer, Prometheus, what it retries), `make dev` (hot reload, clean stop),
# `make test-up`/`make test-down`, and `make swarm-up` on a one-node Docker Swarm (made one for the
# run when the engine is not, and left again) under load: rolling update, SIGKILL, scaling, Redis
# killed. Everything it started is removed at the end, pass or fail; the BuildKit cache stays, so a
# second run builds nothing.
# Needs Docker Engine + Compose v2 (any: pulled base images or local stand-ins) and python3.
# pytest comes from the project's virtualenv (scripts/python.sh, tools/requirements.txt).
# Arguments go to pytest (e.g. `-k dev`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

venv_bin=$(scripts/python.sh --bin)

echo "==> engine: $(docker version --format 'server {{.Server.Version}}, client {{.Client.Version}}'), $(docker compose version --short 2>/dev/null | sed 's/^/compose /')"
exec "$venv_bin/python" -m pytest -p no:cacheprovider -v -rA --durations=0 tests/containers_e2e "$@"

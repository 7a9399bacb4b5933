#!/usr/bin/env bash
# `make swarm-up`, `-down`, `-down-volumes`, `-ps`: the stack on Docker Swarm (deploy/swarm/stack.yml;
# docs/DEPLOY.md is the guide, and lists the environment it reads).
#   up    build the image (unless IMAGE names one), tag it by its content, create the two secrets when
#         missing, deploy the migrations with it, then the api one replica at a time; wait for /ready
#   down  remove the stack (its volumes and secrets stay); down-volumes: them too; ps: show it
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

mode="${1:-}"
stack="${STACK_NAME:-gravity}"
export STACK_NAME="$stack" API_PORT="${API_PORT:-8080}"

die() { echo "make swarm-$mode: $*" >&2 && exit 1; }

command -v docker >/dev/null 2>&1 || die "Docker is not installed (no docker command)"
docker info >/dev/null 2>&1 || die "the Docker engine does not answer ('docker info' failed)"
[[ "$(docker info --format '{{.Swarm.ControlAvailable}}')" == true ]] ||
    die "this engine is not a Swarm manager: \`docker swarm init\` makes it one (with --advertise-addr ADDRESS where it has several)"

remove() {
    docker stack rm "$stack" >/dev/null 2>&1 || true
    # `docker stack rm` returns at once; volumes can go only once no container uses them.
    for _ in $(seq 120); do
        [[ -z "$(docker ps -aq --filter "label=com.docker.stack.namespace=$stack")$(docker network ls -q --filter "label=com.docker.stack.namespace=$stack")" ]] && break
        sleep 1
    done
    [[ "${1:-}" == volumes ]] || return 0
    docker volume ls -q --filter "label=com.docker.stack.namespace=$stack" | xargs -r docker volume rm >/dev/null
    docker secret ls -q --filter "label=gravity-bff.stack=$stack" | xargs -r docker secret rm >/dev/null
}

# Until the newest migrate task that ran MIGRATE_IMAGE is Complete; fails once none is left to try.
wait_for_migrations() {
    local state=""
    for _ in $(seq 300); do
        state="$(docker service ps "${stack}_migrate" --no-trunc --format '{{.Image}}|{{.CurrentState}}' 2>/dev/null |
            awk -F'|' -v image="$MIGRATE_IMAGE" '$1 == image || index($1, image "@") == 1 {print $2; exit}')"
        case "$state" in
            Complete*) return 0 ;;
            Rejected* | Failed*) [[ "$(docker service ps "${stack}_migrate" -q --filter desired-state=running)" ]] || break ;;
        esac
        sleep 1
    done
    echo "make swarm-up: the migrations did not complete (last state: ${state:-none}); the last lines of their log:" >&2
    docker service logs --raw --tail 20 "${stack}_migrate" 2>&1 | sed 's/^/    /' >&2
    die "the api was left as it was; fix what the log names and run \`make swarm-up\` again"
}

# Whether the load balancer answers GET /ready with 200 on API_PORT (a replica takes requests).
lb_ready() {
    local status=""
    exec 3<>"/dev/tcp/127.0.0.1/$API_PORT" || return 1
    printf 'GET /ready HTTP/1.0\r\n\r\n' >&3
    read -r -t 3 _ status _ <&3 || true
    exec 3<&-
    [[ "$status" == 200 ]]
}

# The state of each service's latest update (the api's first, with when it began).
update_states() {
    local services
    mapfile -t services < <(docker stack services -q "$stack")
    docker service inspect "${stack}_api" "${services[@]}" 2>/dev/null \
        --format '{{if .UpdateStatus}}{{.UpdateStatus.State}} {{.UpdateStatus.StartedAt}}{{end}}' || true
}

# Until every replica of the api runs, no service is updating, and lb answers /ready.
# $1: the api's update state before the deploy, which says nothing about this one.
wait_for_rollout() {
    local replicas="" states api
    for _ in $(seq 300); do
        replicas="$(docker service ls --filter "name=${stack}_api" --format '{{.Name}} {{.Replicas}}' | awk -v n="${stack}_api" '$1 == n {print $2}')"
        states="$(update_states)"
        api="$(head -n 1 <<<"$states")"
        [[ "$api" == "$1" ]] || case "$api" in
            rollback_* | paused*) die "the rollout of the api failed (${api%% *}): \`make swarm-ps\` and \`docker service logs ${stack}_api\` say why" ;;
        esac
        if [[ "$replicas" == "$API_REPLICAS/$API_REPLICAS" ]] && ! grep -q '^updating' <<<"$states" && lb_ready 2>/dev/null; then
            return 0
        fi
        sleep 1
    done
    die "not ready within 300 s (api replicas ${replicas:-none}; lb's /ready on port $API_PORT is not 200); see \`make swarm-ps\`"
}

deploy() {
    local files=(-c deploy/swarm/stack.yml)
    [[ -z "${AUTH_JWKS_FILE:-}" ]] || files+=(-c deploy/swarm/jwks.yml)
    local detach=() # CLI 26+ waits unless told not to; older ones know no --detach, and never wait
    docker stack deploy --help 2>/dev/null | grep -q -- '--detach' && detach=(--detach=true)
    docker stack deploy "${detach[@]}" --prune --resolve-image "${resolve:-${RESOLVE_IMAGE:-always}}" "${files[@]}" "$stack" >/dev/null
}

up() {
    # The service refuses to start with neither, or with AUTH_DISABLED=true beside an issuer's settings; say so before anything is deployed.
    [[ -n "${AUTH_ISSUER:-}" || "${AUTH_DISABLED:-}" == true ]] || die "set AUTH_ISSUER and AUTH_AUDIENCE (the OpenID Connect issuer whose tokens the api accepts), or AUTH_DISABLED=true"
    [[ "${AUTH_DISABLED:-}" != true || -z "${AUTH_ISSUER:-}${AUTH_AUDIENCE:-}${AUTH_JWKS_FILE:-}" ]] || die "AUTH_DISABLED=true is refused beside AUTH_ISSUER, AUTH_AUDIENCE or AUTH_JWKS_FILE: unset one side, so that it is clear whether tokens are checked"
    if [[ -n "${AUTH_JWKS_FILE:-}" ]]; then
        [[ -r "$AUTH_JWKS_FILE" ]] || die "AUTH_JWKS_FILE names $AUTH_JWKS_FILE, which cannot be read"
        AUTH_JWKS_FILE="$(realpath "$AUTH_JWKS_FILE")" JWKS_CONFIG="$(sha256sum "$AUTH_JWKS_FILE" | cut -c1-12)"
        export AUTH_JWKS_FILE JWKS_CONFIG
    fi
    if [[ -z "${IMAGE:-}" ]]; then
        scripts/image.sh >/dev/null
        local built="gravity-bff:${IMAGE_TAG:-latest}" id
        id="$(docker image inspect --format '{{.Id}}' "$built")" id="${id#sha256:}"
        IMAGE="$built-${id:0:12}"
        docker tag "$built" "$IMAGE"
        resolve=never # built here and on no registry: the node runs the local image
    fi
    for name in db_password redis_password; do
        docker secret inspect "${stack}_$name" >/dev/null 2>&1 ||
            od -An -N16 -tx1 /dev/urandom | tr -d ' \n' |
            docker secret create --label "gravity-bff.stack=$stack" "${stack}_$name" - >/dev/null
    done
    # Configs are immutable: each file's digest is part of its config's name, so a changed file
    # makes a new config, and only the services that use it roll over to it.
    digest() { sha256sum "$1" | cut -c1-12; }
    HAPROXY_CONFIG="$(digest deploy/haproxy/haproxy.cfg)" PROMETHEUS_CONFIG="$(digest deploy/swarm/prometheus.yml)"
    ALERTS_CONFIG="$(digest deploy/prometheus/alerts.yml)"
    export HAPROXY_CONFIG PROMETHEUS_CONFIG ALERTS_CONFIG MIGRATE_IMAGE="$IMAGE"
    local replicas="${API_REPLICAS:-3}" current before
    # Step 1: the migrations with the new image; the api as it is (none on a first deploy).
    if current="$(docker service inspect "${stack}_api" --format '{{.Spec.TaskTemplate.ContainerSpec.Image}} {{.Spec.Mode.Replicated.Replicas}}' 2>/dev/null)"; then
        export API_IMAGE="${current% *}" API_REPLICAS="${current#* }"
    else
        export API_IMAGE="$IMAGE" API_REPLICAS=0
    fi
    echo "==> $stack: migrations with $IMAGE"
    deploy
    wait_for_migrations
    # Step 2: the api, one replica at a time, each new one started (and healthy) first.
    export API_IMAGE="$IMAGE" API_REPLICAS="$replicas"
    echo "==> $stack: api $IMAGE x $API_REPLICAS"
    before="$(update_states | head -n 1)"
    deploy
    wait_for_rollout "$before"
    # Configs no task uses any more (earlier versions) go; those in use are refused, and stay.
    docker config ls -q --filter "label=com.docker.stack.namespace=$stack" | xargs -r docker config rm >/dev/null 2>&1 || true
    echo "make swarm-up: $stack serves on port $API_PORT of every node ($API_REPLICAS replicas of $IMAGE)"
}

case "$mode" in
    up) up ;;
    down) remove ;;
    down-volumes) remove volumes ;;
    ps) docker stack services "$stack" && docker stack ps "$stack" --format 'table {{.Name}}\t{{.Image}}\t{{.CurrentState}}\t{{.Error}}' ;;
    *) echo "usage: scripts/swarm.sh up|down|down-volumes|ps" >&2 && exit 2 ;;
esac

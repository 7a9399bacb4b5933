#!/usr/bin/env bash
# Runs Docker Compose v2 with the given arguments: the `docker compose` plugin, or a standalone
# `docker-compose` binary if that is v2. Compose v1 (the Python docker-compose 1.x) is refused:
# it does not know `name:`, `--wait` or the current Compose Specification these files use.
# Fails with one line on stderr when no Compose v2 exists, or when the Docker engine does not
# answer (for commands that need it), instead of a wall of connection errors.
# Every image it builds is stamped with the source revision: REVISION (the build argument of
# docker-compose.yml's api, read by build.rs for `--version` and gravity_build_info) is the
# checked-out commit unless the environment sets it; VERSION, Cargo.toml's version. Without the buildx plugin, Compose builds
# with its own BuildKit client (COMPOSE_BAKE=false) instead of warning on every build that Bake
# needs buildx.
# Used by the Makefile as $(COMPOSE); usage: scripts/compose.sh [compose options] COMMAND [args]
set -euo pipefail

die() {
    echo "compose.sh: $*" >&2
    exit 1
}

if command -v docker >/dev/null 2>&1 && docker compose version >/dev/null 2>&1; then
    compose=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
    # `version --short` prints e.g. 2.29.7 (v2) or 1.29.2 (v1).
    standalone_version="$(docker-compose version --short 2>/dev/null || true)"
    if [[ "$standalone_version" != 2.* && "$standalone_version" != v2.* ]]; then
        die "docker-compose ${standalone_version:-of unknown version} is not Compose v2; install the Docker Compose v2 plugin (https://docs.docker.com/compose/install/)"
    fi
    compose=(docker-compose)
else
    die "Docker Compose v2 is not installed (neither 'docker compose' nor 'docker-compose' works); install it: https://docs.docker.com/compose/install/"
fi

REVISION="${REVISION:-$(git -C "${BASH_SOURCE[0]%/*}" rev-parse --short HEAD 2>/dev/null || echo unknown)}"
# And with the package's version (the image's org.opencontainers.image.version label), as
# scripts/image.sh does.
if [[ -z "${VERSION:-}" ]]; then
    VERSION=dev
    while IFS= read -r line; do
        if [[ "$line" =~ ^version\ =\ \"(.*)\"$ ]]; then
            VERSION="${BASH_REMATCH[1]}"
            break
        fi
    done <"${BASH_SOURCE[0]%/*}/../Cargo.toml"
fi
export REVISION VERSION

# The compose command is the first argument that is neither a global option nor an option's value.
command_name=""
arguments=("$@")
for ((i = 0; i < ${#arguments[@]}; i++)); do
    case "${arguments[i]}" in
        -f | --file | -p | --project-name | --profile | --env-file | --project-directory | --ansi | --parallel | --progress)
            i=$((i + 1))
            ;;
        -*) ;;
        *)
            command_name="${arguments[i]}"
            break
            ;;
    esac
done

# These only read files; everything else talks to the engine.
case "$command_name" in
    "" | config | convert | version | help) ;;
    *)
        # `timeout` bounds a hung socket; macOS has no timeout(1) unless coreutils is installed.
        probe=(docker info)
        if command -v timeout >/dev/null 2>&1; then
            probe=(timeout 20 docker info)
        fi
        if command -v docker >/dev/null 2>&1 && ! "${probe[@]}" >/dev/null 2>&1; then
            die "the Docker engine does not answer ('docker info' failed): start Docker, or check DOCKER_HOST and your permissions on its socket"
        fi
        if [[ -z "${COMPOSE_BAKE:-}" ]] && ! docker buildx version >/dev/null 2>&1; then
            export COMPOSE_BAKE=false
        fi
        ;;
esac

exec "${compose[@]}" "$@"

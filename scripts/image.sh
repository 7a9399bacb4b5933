#!/usr/bin/env bash
# `make image`: builds the runtime stage alone as gravity-bff:${IMAGE_TAG:-latest}, with the
# version and source revision (REVISION, else the checked-out commit) as build arguments. The
# Dockerfile needs BuildKit (cache mounts, COPY --chmod), which a docker CLI reaches in one of two ways:
#   1. the buildx plugin (`docker buildx build --load`);
#   2. Docker Compose v2, which carries a BuildKit client of its own: the same build, described
#      to `docker compose build` on stdin (CLIs without buildx, e.g. a bare docker CLI 25+).
# With neither, one line says what is missing. Extra arguments go to the build (e.g. --no-cache).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

tag="gravity-bff:${IMAGE_TAG:-latest}"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)"
revision="${REVISION:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}"

command -v docker >/dev/null 2>&1 || {
    echo "make image: Docker is not installed (no docker command); \`make build-musl\` builds the same static binary without it" >&2
    exit 1
}

if docker buildx version >/dev/null 2>&1; then
    echo "==> docker buildx build --target runtime -t $tag"
    docker buildx build --load --target runtime -t "$tag" \
        --build-arg VERSION="$version" --build-arg REVISION="$revision" "$@" .
elif docker compose version >/dev/null 2>&1; then
    echo "==> no buildx plugin; building with Docker Compose's BuildKit client: $tag"
    # A one-service project of its own, so no .env and none of the stack's services are involved;
    # through scripts/compose.sh, which builds without Bake when buildx is missing (no warning).
    scripts/compose.sh --project-name gravity-bff-image --project-directory . -f - build "$@" <<YAML
services:
  image:
    image: "$tag"
    build:
      context: .
      dockerfile: Dockerfile
      target: runtime
      args:
        VERSION: "$version"
        REVISION: "$revision"
YAML
else
    echo "make image: the Dockerfile needs BuildKit, and this docker CLI has neither the buildx plugin nor Docker Compose v2: install either (https://docs.docker.com/build/ or https://docs.docker.com/compose/install/)" >&2
    exit 1
fi
docker image ls "$tag"

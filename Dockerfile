# The gravity-bff image, in stages:
#   toolchain  pinned Rust + musl-gcc (the base of every build stage)
#   chef       toolchain + cargo-chef
#   planner    turns the manifests into recipe.json (a dependency-only description)
#   builder    builds the dependencies from the recipe (a cached layer), then the real binary
#   dev        chef + cargo-watch + the dependencies' debug build, for docker-compose.dev.yml
#              (source bind-mounted, hot reload)
#   runtime    distroless static + the one static binary: what ships (`make image`, docker-compose.yml)
# `runtime` is last so that a plain `docker build .` also produces the shipping image.
# Needs BuildKit (cache mounts, COPY --chmod), and nothing beyond the engine's built-in Dockerfile
# frontend: no `# syntax=` line, so no frontend image is fetched and a build works wherever only
# the base images below can be pulled (or are mirrored).

# ---------------------------------------------------------------------------------------------
# Rust >= 1.93 is Cargo.toml's rust-version; the tag is pinned so a rebuild months later uses the
# same compiler. musl-tools gives musl-gcc: mimalloc and ring compile C for the musl target. The
# target is the build machine's own architecture (x86_64 or aarch64, as the multi-arch base image
# is pulled for it): musl-gcc compiles for that one, so a build on an arm64 host (Apple silicon,
# Graviton) makes an arm64 image rather than failing to link an x86_64 binary.
FROM rust:1.93-slim-bookworm AS toolchain
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/* \
 && echo "$(uname -m)-unknown-linux-musl" > /etc/musl-target \
 && rustup target add "$(cat /etc/musl-target)"
WORKDIR /app

# ---------------------------------------------------------------------------------------------
FROM toolchain AS chef
# The registry is a cache mount so downloaded crate sources never land in a layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    cargo install cargo-chef --version 0.1.78 --locked

# ---------------------------------------------------------------------------------------------
FROM chef AS planner
COPY . .
# recipe.json only changes when a manifest or the lock file does, so the cook layer below stays
# cached across ordinary source edits.
RUN cargo chef prepare --recipe-path recipe.json

# ---------------------------------------------------------------------------------------------
FROM chef AS builder
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
COPY --from=planner /app/recipe.json recipe.json
# Dependencies only, in their own layer. target/ deliberately stays in the layer (not a cache
# mount): the layer *is* the dependency cache, and the next stage needs those artifacts.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    cargo chef cook --release --locked --target "$(cat /etc/musl-target)" --recipe-path recipe.json
COPY . .
# The source revision for `--version` and gravity_build_info (build.rs reads REVISION; the build
# context has no .git to ask). Declared after the dependency layer, so a new revision reuses it.
ARG REVISION=unknown
# The real build. cargo-chef removes its dummy artifacts of this crate after cooking, but cargo
# decides freshness by mtime and COPY keeps the context's (possibly older) mtimes, so the sources
# are touched first: this crate and its build script always rebuild. The checks after the build
# make sure a skeleton binary can never be shipped anyway: the dummy main prints nothing, the real
# one names itself. A dynamically linked result (an interpreter in the program headers) would not
# start on the distroless static base, so it fails here instead.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    find . -path ./target -prune -o -type f -name '*.rs' -exec touch {} + \
 && musl_target="$(cat /etc/musl-target)" \
 && REVISION="$REVISION" cargo build --release --locked --target "$musl_target" --bin gravity-bff \
 && install -D -m 0555 "target/$musl_target/release/gravity-bff" /out/gravity-bff \
 && version="$(/out/gravity-bff --version)" \
 && case "$version" in *gravity-bff*) ;; *) echo "refusing to ship: --version printed '$version'" >&2; exit 1 ;; esac \
 && if readelf --program-headers /out/gravity-bff | grep INTERP >&2; then echo "refusing to ship: binary is dynamically linked" >&2; exit 1; fi \
 && echo "built $version"

# ---------------------------------------------------------------------------------------------
# docker-compose.dev.yml runs this with the source bind-mounted on /app, the target dir and the
# registry in named volumes (so the host's target/ is never touched), and polling, because file
# events often do not cross bind mounts on macOS and Windows. The command is scripts/dev-watch.sh
# from that bind mount: cargo watch with these arguments, plus a stop that lets the server drain
# and exit 0 (cargo-watch itself does not pass SIGTERM on to the server it runs).
FROM chef AS dev
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    cargo install cargo-watch --version 8.5.3 --locked
ENV CARGO_TARGET_DIR=/cargo-target \
    API_PORT=8080
# The debug build of every dependency, and the crates' sources, in the image (no cache mount for
# the registry here): an empty named volume starts as a copy of what the image holds at its mount
# point, so the first `make dev` (and every one after `make down-volumes`) compiles only this
# crate. cook leaves its skeleton in /app; the bind mount hides it, the last command removes it.
COPY --from=planner /app/recipe.json /tmp/recipe.json
RUN cargo chef cook --recipe-path /tmp/recipe.json --bin gravity-bff \
 && rm -rf /tmp/recipe.json /app/* /app/.[!.]*
EXPOSE 8080
CMD ["scripts/dev-watch.sh", "--poll", "-w", "src", "-w", "migrations", "-w", "build.rs", "-w", "openapi.yaml", "-w", "Cargo.toml", "-w", "Cargo.lock", "-x", "run"]

# ---------------------------------------------------------------------------------------------
# No shell, no package manager, no libc: only CA certificates, /etc/passwd (uid 65532 "nonroot")
# and tzdata come with the base. Migrations are embedded in the binary, and configuration comes
# from the environment at run time, so nothing else is copied (never an .env file).
FROM gcr.io/distroless/static-debian12:nonroot AS runtime
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="gravity-bff" \
      org.opencontainers.image.description="Gravity BFF: a backend-for-frontend on hyper, tokio-postgres and Redis" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="gcr.io/distroless/static-debian12:nonroot"
# Root-owned and read/execute only: the process (uid 65532) cannot modify its own binary.
COPY --from=builder --chmod=0555 /out/gravity-bff /gravity-bff
# Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 65532:65532
# The container always listens on 8080; compose and Kubernetes map other ports onto it.
ENV API_PORT=8080
EXPOSE 8080
# Exec form: there is no shell here. --health GETs 127.0.0.1:$API_PORT/health with a 2 s timeout.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/gravity-bff", "--health"]
ENTRYPOINT ["/gravity-bff"]
CMD ["serve"]

"""The Dockerfile's promises that hadolint does not check."""

from __future__ import annotations

import re
import tomllib

import dockerfile_model
from containers_support import REPO

RUNTIME_BASES = {"gcr.io/distroless/static-debian12:nonroot", "scratch"}


def test_the_engines_built_in_frontend_is_used_so_no_frontend_image_is_fetched(dockerfile) -> None:
    # `# syntax=docker/dockerfile:1` would make every BuildKit build pull a frontend image from
    # Docker Hub; the built-in one handles the cache mounts and COPY --chmod used here.
    assert "syntax" not in dockerfile.directives


def test_stages_are_the_documented_ones_and_runtime_is_last(dockerfile) -> None:
    names = [stage.name for stage in dockerfile.stages]
    assert names == ["toolchain", "chef", "planner", "builder", "dev", "runtime"]
    # A plain `docker build .` builds the last stage: it must be the shipping one.
    assert names[-1] == "runtime"


def test_builder_uses_a_pinned_official_rust_image_at_least_the_crates_rust_version(dockerfile) -> None:
    base = dockerfile.stage("toolchain").base
    match = re.fullmatch(r"rust:(\d+)\.(\d+)(?:\.\d+)?-[a-z-]+", base)
    assert match, f"the Rust base must be an official rust:X.Y-variant tag, got {base}"
    manifest = tomllib.loads((REPO / "Cargo.toml").read_text(encoding="utf-8"))
    required = tuple(int(part) for part in manifest["package"]["rust-version"].split(".")[:2])
    assert (int(match.group(1)), int(match.group(2))) >= required


def test_the_dependency_build_is_its_own_cached_layer_before_the_source_is_copied(dockerfile) -> None:
    builder = dockerfile.stage("builder")
    keywords = [(i.keyword, i.arguments) for i in builder.instructions]
    cook = next(n for n, (k, a) in enumerate(keywords) if k == "RUN" and "cargo chef cook" in a)
    copy_source = next(n for n, (k, a) in enumerate(keywords) if k == "COPY" and a.split()[-2:] == [".", "."])
    build = next(n for n, (k, a) in enumerate(keywords) if k == "RUN" and "cargo build" in a)
    assert cook < copy_source < build
    for index in (cook, build):
        arguments = keywords[index][1]
        assert (
            "--release" in arguments
            and "--locked" in arguments
            and '--target "$(cat /etc/musl-target)"' in arguments.replace("$musl_target", "$(cat /etc/musl-target)")
        )
    # The musl target is the build machine's architecture, so an arm64 host builds an arm64 image.
    toolchain = " ".join(i.arguments for i in dockerfile.stage("toolchain").all("RUN"))
    assert "uname -m" in toolchain and 'rustup target add "$(cat /etc/musl-target)"' in toolchain
    # The build refuses to hand on a dummy (cargo-chef skeleton) or a dynamically linked binary.
    assert "--version" in keywords[build][1] and "INTERP" in keywords[build][1]


def test_runtime_stage_is_distroless_static_running_as_a_numeric_non_root_user(dockerfile) -> None:
    runtime = dockerfile.stage("runtime")
    assert runtime.base in RUNTIME_BASES
    users = runtime.all("USER")
    assert len(users) == 1
    uid, _, gid = users[0].arguments.partition(":")
    assert uid.isdigit() and int(uid) != 0, "USER must be a numeric, non-zero uid"
    assert gid.isdigit() and int(gid) != 0, "and a numeric, non-zero gid"


def test_runtime_stage_copies_only_the_binary_and_runs_nothing(dockerfile) -> None:
    runtime = dockerfile.stage("runtime")
    copies = runtime.all("COPY")
    assert len(copies) == 1 and not runtime.all("ADD") and not runtime.all("RUN")
    flags, words = copies[0].flags_and_words()
    assert flags.get("from") == "builder"
    assert words == ["/out/gravity-bff", "/gravity-bff"]
    # The binary the builder checked is the one copied.
    assert any("/out/gravity-bff" in run.arguments for run in dockerfile.stage("builder").all("RUN"))


def test_runtime_stage_entrypoint_and_healthcheck_are_exec_form(dockerfile) -> None:
    runtime = dockerfile.stage("runtime")
    (entrypoint,) = runtime.all("ENTRYPOINT")
    assert entrypoint.exec_form() == ["/gravity-bff"]
    (healthcheck,) = runtime.all("HEALTHCHECK")
    command = healthcheck.arguments.split(" CMD ", 1)
    assert len(command) == 2, "HEALTHCHECK must be `... CMD [...]`"
    instruction = dockerfile_model.Instruction("CMD", command[1], healthcheck.line)
    assert instruction.exec_form() == ["/gravity-bff", "--health"]
    timeout = re.search(r"--timeout=(\d+)s", healthcheck.arguments)
    # --health gives up after 2 s; the check's own timeout must leave it that long.
    assert timeout and int(timeout.group(1)) > 2
    (cmd,) = runtime.all("CMD")
    assert cmd.exec_form() == ["serve"]


def test_runtime_stage_listens_on_8080_and_says_what_it_is(dockerfile) -> None:
    runtime = dockerfile.stage("runtime")
    assert [e.arguments for e in runtime.all("EXPOSE")] == ["8080"]
    assert runtime.env().get("API_PORT") == "8080"
    labels = " ".join(label.arguments for label in runtime.all("LABEL"))
    for key in ("title", "description", "licenses", "version", "revision"):
        assert f"org.opencontainers.image.{key}=" in labels


def test_no_stage_copies_an_env_file_into_the_image(dockerfile) -> None:
    for stage in dockerfile.stages:
        for instruction in stage.all("COPY") + stage.all("ADD"):
            _, words = instruction.flags_and_words()
            for source in words[:-1]:
                assert ".env" not in source, f"line {instruction.line}: copies {source}"


def test_dev_stage_runs_cargo_watch_with_polling(dockerfile) -> None:
    dev = dockerfile.stage("dev")
    assert any(re.search(r"cargo install cargo-watch --version \S+ --locked", r.arguments) for r in dev.all("RUN"))
    (cmd,) = dev.all("CMD")
    command = cmd.exec_form()
    assert command[0] == "scripts/dev-watch.sh" and "--poll" in command
    assert dev.env()["CARGO_TARGET_DIR"].startswith("/") and not dev.env()["CARGO_TARGET_DIR"].startswith("/app")


def test_every_tool_installed_with_cargo_is_pinned_and_locked(dockerfile) -> None:
    for stage in dockerfile.stages:
        for run in stage.all("RUN"):
            for match in re.finditer(r"cargo install (\S+)([^&]*)", run.arguments):
                assert "--version" in match.group(2) and "--locked" in match.group(2), match.group(0)


def test_the_parser_sees_continuations_comments_and_exec_form() -> None:
    parsed = dockerfile_model.parse(
        "# syntax=docker/dockerfile:1\n"
        "FROM a:1 AS first\n"
        "RUN one \\\n"
        "    # a comment inside\n"
        "    two\n"
        'ENTRYPOINT ["/x", "y"]\n'
        "CMD /x y\n"
    )
    stage = parsed.stage("first")
    assert parsed.directives == {"syntax": "docker/dockerfile:1"}
    assert stage.all("RUN")[0].arguments.split() == ["one", "two"]
    assert stage.all("ENTRYPOINT")[0].exec_form() == ["/x", "y"]
    assert stage.all("CMD")[0].exec_form() is None

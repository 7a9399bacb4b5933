"""Paths and helpers shared by the container-system tests (a uniquely named module, so that
running these tests together with another folder's conftest.py cannot mix the two up)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
PRODUCTION = REPO / "docker-compose.yml"
DEVELOPMENT = REPO / "docker-compose.dev.yml"
TESTING = REPO / "docker-compose.test.yml"
ALL_COMPOSE_FILES = [PRODUCTION, DEVELOPMENT, TESTING]
# The image that api and migrate run; anything else is a third-party image.
APP_IMAGE_NAME = "gravity-bff"


# The settings are those of the contract's "Settings" table (docs/API.md): its first column.
API_MD = REPO / "docs" / "API.md"
SETTING_NAME = re.compile(r"`([A-Z][A-Z0-9_]{2,})`")


def contract_settings() -> set[str]:
    text = API_MD.read_text(encoding="utf-8")
    section = text.split("\n## Settings", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    names = {name for row in rows for name in SETTING_NAME.findall(row.split("|")[1])}
    assert "API_PORT" in names and "DB_HOST" in names, "docs/API.md's Settings table was not found"
    return names


def compose_spec_path() -> Path:
    """shared/ beside the repo (CI), else the vendored copy; COMPOSE_SPEC overrides both."""
    if os.environ.get("COMPOSE_SPEC"):
        return Path(os.environ["COMPOSE_SPEC"])
    shared = REPO.parent / "shared" / "compose-spec.json"
    return shared if shared.is_file() else REPO / "tools" / "compose-spec.json"


def is_app_service(service: dict[str, Any]) -> bool:
    """Runs this repo's image (built from the Dockerfile), which has no shell."""
    return "build" in service or str(service.get("image", "")).startswith(APP_IMAGE_NAME + ":")


def embedded_files() -> list[Path]:
    """Files the binary is built from at compile time: include_str!/include_bytes! literals in
    src/ outside its `#[cfg(test)]` modules (a unit test may read .env.example or a manifest to
    hold it to the code; that file is not part of the binary), and build.rs itself with every
    repo path it opens from CARGO_MANIFEST_DIR (`.join("...")`)."""
    found: list[Path] = []
    for source in (REPO / "src").rglob("*.rs"):
        text = re.split(r"#\[cfg\(test\)\]\s*mod ", source.read_text(encoding="utf-8"), maxsplit=1)[0]
        for match in re.finditer(r"include_(?:str|bytes)!\(\s*\"([^\"]+)\"\s*\)", text):
            found.append((source.parent / match.group(1)).resolve())
    build_script = REPO / "build.rs"
    if build_script.is_file():
        found.append(build_script)
        for match in re.finditer(r"\.join\(\s*\"([^\"]+)\"\s*\)", build_script.read_text(encoding="utf-8")):
            path = REPO / match.group(1)
            if path.is_dir():
                found += sorted(p for p in path.rglob("*") if p.is_file())
            elif path.is_file():
                found.append(path)
    return found


# --- the stack's scripts in a scratch directory, with stand-in commands ----------------------------------

# What the scripts and `make .env` call, besides docker.
TOOLS = ("bash", "cat", "cmp", "dirname", "grep", "head", "make", "od", "sed", "timeout", "tr", "env", "sleep")


def scratch(tmp_path: Path, docker: str | None) -> tuple[Path, dict[str, str]]:
    """A copy of the files the scripts need, and an environment whose PATH has only TOOLS and
    the stand-in docker (none at all when `docker` is None)."""
    work = tmp_path / "repo"
    (work / "scripts").mkdir(parents=True)
    for name in ("Makefile", ".env.example", "Cargo.toml"):
        shutil.copy(REPO / name, work / name)
    for name in ("stack.sh", "stack-explain.sh", "compose.sh", "image.sh"):
        shutil.copy2(REPO / "scripts" / name, work / "scripts" / name)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in TOOLS:
        if shutil.which(tool):
            (bin_dir / tool).symlink_to(shutil.which(tool))
    if docker is not None:
        script = bin_dir / "docker"
        script.write_text("#!" + shutil.which("bash") + "\n" + docker)
        script.chmod(0o755)
    environment = {"PATH": str(bin_dir), "HOME": os.environ.get("HOME", "/"), "CALLS": str(tmp_path / "calls")}
    return work, environment


def run(work: Path, environment: dict[str, str], *command: str, stdin: str | None = None):
    return subprocess.run(
        [shutil.which("bash"), *command],
        cwd=work,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        input=stdin,
    )


def calls(environment: dict[str, str]) -> str:
    path = Path(environment["CALLS"])
    return path.read_text() if path.exists() else ""


def kill_group(process: subprocess.Popen) -> None:
    """Whatever is left of a process group started with start_new_session dies with it."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()

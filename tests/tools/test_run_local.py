"""scripts/run-local.sh (`make run`, `make migrate`) with a stand-in `cargo` and no Postgres client
tools on the PATH: the database is created and migrated by the binary itself, so a machine without
`psql` runs `make run` to a ready service, and a bad setting is reported by the binary's own line."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Records every call; `cargo run … -- ARGS` plays the binary, failing like it on a bad DB_PORT.
FAKE_CARGO = """
echo "cargo $*" >>"$CALLS"
echo "DB_PASSWORD=${DB_PASSWORD-} DB_NAME=${DB_NAME-}" >"$CALLS.settings"
if [[ "$1" == run && ! "${DB_PORT:-5432}" =~ ^[0-9]+$ ]]; then
    echo "gravity-bff: DB_PORT must be a port number from 1 to 65535, got \\"$DB_PORT\\"" >&2
    exit 2
fi
"""


def run_local(
    tmp_path: Path, *arguments: str, dotenv: str | None = None, **settings: str
) -> tuple[subprocess.CompletedProcess, list[str]]:
    work = tmp_path / "repo"
    (work / "scripts").mkdir(parents=True)
    if dotenv is not None:
        (work / ".env").write_text(dotenv)
    shutil.copy2(REPO / "scripts" / "run-local.sh", work / "scripts" / "run-local.sh")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # Only what the script needs besides cargo: no psql, createdb or pg_isready.
    for tool in ("grep", "cat", "env", "dirname"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    (bin_dir / "cargo").write_text("#!" + shutil.which("bash") + "\n" + FAKE_CARGO)
    (bin_dir / "cargo").chmod(0o755)
    calls = tmp_path / "calls"
    environment = {"PATH": str(bin_dir), "HOME": os.environ.get("HOME", "/"), "CALLS": str(calls), **settings}
    finished = subprocess.run(
        [shutil.which("bash"), "scripts/run-local.sh", *arguments],
        cwd=work,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return finished, calls.read_text().splitlines() if calls.exists() else []


def test_make_run_without_psql_creates_and_migrates_the_database_with_the_binary_then_serves(tmp_path) -> None:
    finished, calls = run_local(tmp_path)
    assert finished.returncode == 0, finished.stderr
    assert calls == [
        "cargo build --release --locked --bin gravity-bff",
        "cargo run --release --quiet -- migrate up --create-database",
        "cargo run --release --quiet --",
    ]


def test_a_bad_setting_under_make_run_is_the_binarys_line_naming_it(tmp_path) -> None:
    finished, calls = run_local(tmp_path, DB_PORT="abc")
    assert finished.returncode == 2
    assert "DB_PORT" in finished.stderr and "psql" not in finished.stderr, finished.stderr
    assert calls[-1] == "cargo run --release --quiet -- migrate up --create-database", "nothing served after it"


def test_make_migrate_passes_its_command_and_creates_nothing_else(tmp_path) -> None:
    finished, calls = run_local(tmp_path, "migrate", "up")
    assert finished.returncode == 0, finished.stderr
    assert calls[1:] == ["cargo run --release --quiet -- migrate up"]


def test_a_dotenv_value_is_taken_literally_with_every_equals_sign_and_the_environment_wins(tmp_path) -> None:
    finished, _ = run_local(tmp_path, dotenv="DB_PASSWORD=c2VjcmV0=\nDB_NAME=ignored\n", DB_NAME="mine")
    assert finished.returncode == 0, finished.stderr
    assert (tmp_path / "calls.settings").read_text() == "DB_PASSWORD=c2VjcmV0= DB_NAME=mine\n"
    finished, _ = run_local(tmp_path / "again", dotenv="DB_PASSWORD=a=b==\n")
    assert (tmp_path / "again" / "calls.settings").read_text() == "DB_PASSWORD=a=b== DB_NAME=gravity_db\n"

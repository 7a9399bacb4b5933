""".env.example (every setting, documented) and .dockerignore (small context, nothing secret, nothing the build needs left out)."""

from __future__ import annotations

import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

import compose_model
from containers_support import REPO, contract_settings, embedded_files

SETTING_LINE = re.compile(r"^(#\s*)?([A-Z][A-Z0-9_]+)=(.*)$")


def example_settings() -> dict[str, tuple[str, bool, str]]:
    """name -> (value, commented out, the comment line above it)."""
    lines = (REPO / ".env.example").read_text(encoding="utf-8").splitlines()
    settings: dict[str, tuple[str, bool, str]] = {}
    for index, line in enumerate(lines):
        match = SETTING_LINE.match(line)
        if not match:
            continue
        name = match.group(2)
        assert name not in settings, f"{name} appears twice in .env.example"
        above = lines[index - 1] if index else ""
        settings[name] = (match.group(3), bool(match.group(1)), above)
    return settings


def test_env_example_lists_every_setting_of_the_contract() -> None:
    missing = contract_settings() - set(example_settings())
    assert not missing, f".env.example lacks {sorted(missing)}"


def test_every_setting_in_env_example_has_a_comment_line_above_it() -> None:
    for name, (_, _, above) in example_settings().items():
        assert above.startswith("# ") and not SETTING_LINE.match(above), f"{name} has no comment of its own above it"


def test_env_example_values_are_valid_settings() -> None:
    values = {name: value for name, (value, commented, _) in example_settings().items() if not commented}
    for name in ("API_PORT", "DB_PORT", "REDIS_PORT"):
        assert 1 <= int(values[name]) <= 65535, name
    for name in ("DB_POOL_SIZE", "CACHE_TTL_SECONDS", "SHUTDOWN_GRACE_SECONDS"):
        assert int(values[name]) >= 0, name
    assert values["DB_SSL_MODE"] in {"disable", "require", "verify-full"}
    assert values["LOG_LEVEL"] in {"debug", "info", "warn", "error"}
    for name in ("DB_HOST", "DB_USER", "DB_NAME"):  # required by the service
        assert values[name], name
    # compose parses the file too; it must read the same values back.
    parsed = compose_model.parse_env_file(REPO / ".env.example")
    assert {k: v for k, v in parsed.items()} == values


def test_a_new_env_turns_authentication_off_and_warns_right_above_it() -> None:
    settings = example_settings()
    value, commented, _ = settings["AUTH_DISABLED"]
    assert (value, commented) == ("true", False), "make up must work on a fresh clone"
    paragraph = (
        (REPO / ".env.example").read_text(encoding="utf-8").split("\nAUTH_DISABLED=true")[0].rsplit("\n\n", 1)[-1]
    )
    assert "WARNING" in paragraph and "anyone" in paragraph, paragraph
    # The service refuses AUTH_ISSUER together with AUTH_DISABLED=true.
    assert settings["AUTH_ISSUER"][1], "AUTH_ISSUER stays commented out"


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_env_creates_a_private_env_with_a_random_password(tmp_path: Path) -> None:
    for name in ("Makefile", ".env.example"):
        shutil.copy(REPO / name, tmp_path / name)
    passwords = []
    for _ in range(2):
        (tmp_path / ".env").unlink(missing_ok=True)
        subprocess.run(["make", "-s", ".env"], cwd=tmp_path, check=True, capture_output=True, timeout=30)
        created = compose_model.parse_env_file(tmp_path / ".env")
        example = compose_model.parse_env_file(tmp_path / ".env.example")
        assert stat.S_IMODE((tmp_path / ".env").stat().st_mode) == 0o600
        assert {k: v for k, v in created.items() if k != "DB_PASSWORD"} == {
            k: v for k, v in example.items() if k != "DB_PASSWORD"
        }
        assert re.fullmatch(r"[0-9a-f]{32}", created["DB_PASSWORD"])
        passwords.append(created["DB_PASSWORD"])
    assert passwords[0] != passwords[1]
    # An existing .env is never overwritten.
    (tmp_path / ".env").write_text("DB_PASSWORD=mine\n")
    subprocess.run(["make", "-s", ".env"], cwd=tmp_path, check=True, capture_output=True, timeout=30)
    assert (tmp_path / ".env").read_text() == "DB_PASSWORD=mine\n"


# --- .dockerignore -------------------------------------------------------------------------------


def dockerignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    """(is an exception "!", pattern) pairs in file order, as Docker's pattern matcher reads them."""
    rules = []
    for line in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        exception = line.startswith("!")
        pattern = line[1:] if exception else line
        pattern = pattern.strip().strip("/")
        rules.append((exception, re.compile(glob_to_regex(pattern))))
    return rules


def glob_to_regex(pattern: str) -> str:
    """Go filepath.Match syntax plus `**` (any number of directories), as Docker uses."""
    regex = ""
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if pattern.startswith("**/", index):
            regex += "(?:.*/)?"
            index += 3
            continue
        if pattern.startswith("**", index):
            regex += ".*"
            index += 2
            continue
        regex += {"*": "[^/]*", "?": "[^/]"}.get(char, re.escape(char))
        index += 1
    return f"^{regex}$"


def is_excluded(relative_path: str) -> bool:
    """Whether the path (or a directory above it) is left out of the build context."""
    parts = relative_path.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for exception, regex in dockerignore_rules():
        if any(regex.match(candidate) for candidate in candidates):
            excluded = not exception
    return excluded


@pytest.mark.parametrize(
    "path",
    [
        "target/release/gravity-bff",
        "target",
        ".git/HEAD",
        ".env",
        ".env.local",
        ".idea/workspace.xml",
        "tests/containers/conftest.py",
    ],
)
def test_dockerignore_keeps_build_outputs_vcs_and_secrets_out_of_the_context(path: str) -> None:
    assert is_excluded(path)


def test_dockerignore_keeps_everything_cargo_reads_in_the_context() -> None:
    needed = [
        "Cargo.toml",
        "Cargo.lock",
        "src/main.rs",
        "src/lib.rs",
        "build.rs",
        "migrations/0001_initial_schema.up.sql",
    ]
    needed += [path.relative_to(REPO).as_posix() for path in embedded_files()]
    needed += [path.relative_to(REPO).as_posix() for path in (REPO / "src").rglob("*.rs")]
    needed += [path.relative_to(REPO).as_posix() for path in (REPO / "tests").rglob("*.rs")]
    needed += [path.relative_to(REPO).as_posix() for path in (REPO / "benches").rglob("*.rs")]
    needed += [path.relative_to(REPO).as_posix() for path in (REPO / "examples").rglob("*.rs")]
    left_out = [path for path in needed if is_excluded(path)]
    assert not left_out, f".dockerignore leaves out files the build reads: {left_out}"


def test_dockerignore_matcher_handles_exceptions_and_double_star() -> None:
    assert re.match(glob_to_regex("**/target"), "a/b/target")
    assert re.match(glob_to_regex("**/target"), "target")
    assert not re.match(glob_to_regex(".env.*"), "x.env.example")
    assert not is_excluded(".env.example")  # the "!.env.example" exception

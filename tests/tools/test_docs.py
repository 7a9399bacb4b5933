"""The documents' structure: a README of one page that routes, links that land, one home per fact.

Each fact has one home and is linked from elsewhere (CONTRIBUTING.md, "Commits"): the settings'
names in docs/API.md's table, the test timings in CONTRIBUTING.md, the commands in the README.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
CONTRIBUTING = ROOT / "CONTRIBUTING.md"
API = ROOT / "docs" / "API.md"
DOCUMENTS = sorted(
    [README, ROOT / "ARCHITECTURE.md", CONTRIBUTING, ROOT / "CHANGELOG.md", *(ROOT / "docs").rglob("*.md")]
)
MAX_README_LINES = 150

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")
# A duration in minutes: "about 7 min", "13 min 12 s", "2 minutes".
MINUTES = re.compile(r"\b\d+(?:[.,]\d+)?\s*(?:min|minutes?)\b")
# `make test` or `make test-fast`, not `make test-containers`, `make test-up` or `make test-down`.
MAKE_TEST = re.compile(r"\bmake test(?:-fast)?(?![-\w])|\btest-fast\b")


def prose_lines(text: str) -> list[str]:
    """The lines of a Markdown text outside fenced code blocks."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).lower()
    kept = "".join(c for c in text if c in " -_" or unicodedata.category(c)[0] in "LN")
    return kept.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    for line in prose_lines(path.read_text(encoding="utf-8")):
        m = HEADING.match(line)
        if not m:
            continue
        base = slug(m.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def relative_links(path: Path) -> list[str]:
    links = []
    for line in prose_lines(path.read_text(encoding="utf-8")):
        for target in LINK.findall(line):
            if not re.match(r"[a-z][a-z0-9+.-]*:", target):
                links.append(target)
    return links


def settings_of_the_contract() -> set[str]:
    """The first column of docs/API.md's Settings table: the one table of the settings' names."""
    section = API.read_text(encoding="utf-8").split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    names = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            names.update(name.strip().strip("`") for name in line.split("|")[1].split(","))
    assert {"API_PORT", "DB_HOST"} <= names, "docs/API.md's Settings table was not found"
    return names


def section(text: str, title: str) -> str:
    m = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert m, f"no section '## {title}'"
    return m.group(1)


def test_the_readme_is_one_page():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_README_LINES, (
        f"README.md has {len(lines)} lines, over {MAX_README_LINES}: move the detail to its home and link it"
    )


def test_the_readme_routes_to_the_architecture_and_every_document():
    where_next = section(README.read_text(encoding="utf-8"), "Where next")
    linked = {target.split("#")[0] for target in LINK.findall(where_next)}
    documents = {"ARCHITECTURE.md", "CONTRIBUTING.md", *(f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md"))}
    missing = sorted(documents - linked)
    assert not missing, f"README.md's 'Where next' does not link {missing}"


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_lands_on_a_file_and_its_heading(document: Path):
    broken = []
    for target in relative_links(document):
        file_part, _, anchor = target.partition("#")
        destination = (document.parent / file_part).resolve() if file_part else document
        if not destination.exists():
            broken.append(f"{target}: no such file")
        elif anchor and destination.suffix == ".md" and anchor not in anchors(destination):
            broken.append(f"{target}: no heading with the anchor #{anchor}")
    assert not broken, f"{document.relative_to(ROOT)}:\n" + "\n".join(broken)


def test_the_license_is_the_mit_license_cargo_toml_declares():
    cargo = (ROOT / "Cargo.toml").read_text(encoding="utf-8")
    assert re.search(r'^license\s*=\s*"MIT"\s*$', cargo, re.M), 'Cargo.toml should say license = "MIT"'
    license_text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert license_text.startswith("MIT License\n"), "LICENSE should be the MIT license"
    assert "Copyright (c) 2026 Gravity BFF contributors" in license_text


def test_the_settings_table_lives_only_in_the_contract():
    settings = settings_of_the_contract()
    offenders = []
    for document in DOCUMENTS:
        if document == API:
            continue
        rows = [
            line
            for line in prose_lines(document.read_text(encoding="utf-8"))
            if line.startswith("|") and line.split("|")[1].strip().strip("`") in settings
        ]
        if len(rows) >= 3:
            offenders.append(f"{document.relative_to(ROOT)}: {len(rows)} rows, e.g. {rows[0][:80]}")
    assert not offenders, (
        "a table of settings outside docs/API.md (link to docs/API.md#settings instead):\n" + "\n".join(offenders)
    )


def test_the_readme_lists_every_command_of_the_binary():
    cli = (ROOT / "src" / "cli.rs").read_text(encoding="utf-8")
    usage = cli.split("Usage:\n", 1)[1].split('";', 1)[0]
    words = set()
    for line in usage.splitlines():
        invocation = re.split(r"\s{2,}", line.strip())[0]
        words.update(w for w in re.findall(r"--?[a-z][a-z-]*|\b[a-z][a-z-]+\b", invocation) if w != "gravity-bff")
    command_line = section(README.read_text(encoding="utf-8"), "Command line")
    missing = sorted(w for w in words if w not in command_line)
    assert words and not missing, f"README.md's 'Command line' misses {missing} of src/cli.rs's usage"


def time_figure_units(path: Path) -> list[str]:
    """The pieces of a file in which a duration and `make test` may be said together: sentences of
    prose, table rows, and for the Makefile the test targets' lines."""
    text = path.read_text(encoding="utf-8")
    if path.name == "Makefile":
        return [
            line
            for line in text.splitlines()
            if MAKE_TEST.search(line) or re.match(r"(test|test-fast):", line) or "make test-fast:" in line
        ]
    if path.suffix != ".md":
        return text.splitlines()
    units = []
    for paragraph in "\n".join(prose_lines(text)).split("\n\n"):
        table = [line for line in paragraph.splitlines() if line.startswith("|")]
        prose = " ".join(line.strip() for line in paragraph.splitlines() if not line.startswith("|"))
        units.extend(table)
        units.extend(re.split(r"(?<=[.;])\s+", prose))
    return units


def files_that_may_not_time_the_tests() -> list[Path]:
    scripts = [p for p in (ROOT / "scripts").iterdir() if p.is_file()]
    return sorted(p for p in [*DOCUMENTS, ROOT / "Makefile", ROOT / ".ci" / "run", *scripts] if p != CONTRIBUTING)


def test_test_durations_are_stated_only_in_contributing():
    offenders = []
    for path in files_that_may_not_time_the_tests():
        if not path.exists():
            continue
        for unit in time_figure_units(path):
            if MINUTES.search(unit) and (MAKE_TEST.search(unit) or path.name in {"Makefile", "test.sh"}):
                offenders.append(f"{path.relative_to(ROOT)}: {unit.strip()[:120]}")
    assert not offenders, "test durations belong in CONTRIBUTING.md only (link to it):\n" + "\n".join(offenders)


def test_contributing_states_the_test_durations():
    text = CONTRIBUTING.read_text(encoding="utf-8")
    assert any(MINUTES.search(unit) and MAKE_TEST.search(unit) for unit in time_figure_units(CONTRIBUTING)), (
        "CONTRIBUTING.md should say how long make test takes"
    )
    assert "make test-fast" in text and "root" in text, (
        "CONTRIBUTING.md: make test-fast, and that the chroot suite needs root"
    )


def test_the_duration_check_finds_what_it_is_for(tmp_path):
    makefile = tmp_path / "Makefile"
    makefile.write_text("test: ## run every test, about 7 min on 2 cores\n\tscripts/test.sh\n")
    assert any(MINUTES.search(unit) for unit in time_figure_units(makefile))
    doc = tmp_path / "doc.md"
    doc.write_text("Fast.\n\nOn a fresh clone `make test`\ntook 12 min 30 s. `make test-containers` took 6 min.\n")
    flagged = [u for u in time_figure_units(doc) if MINUTES.search(u) and MAKE_TEST.search(u)]
    assert flagged == ["On a fresh clone `make test` took 12 min 30 s."]
    assert slug("On a real engine: `make test-containers`") == "on-a-real-engine-make-test-containers"
    assert slug("Test services (`docker-compose.test.yml`)") == "test-services-docker-composetestyml"

"""Production lines of the crate: each file of src/ up to its unit-test module.

    python tools/code_size.py [--files] [REVISION]

A file counts up to the `#[cfg(test)]` that opens its `mod tests` (unit tests are not production
code), without trailing blank lines; comment and blank lines count, and are also shown apart. With
a git revision, the files are read from it (e.g. to measure a change before and after); with
--files, every file's figures are listed, largest first.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

TEST_MODULE = re.compile(r"\s*(pub(\([^)]*\))? )?mod tests\b")


class Size(NamedTuple):
    lines: int
    comments: int
    blank: int

    @property
    def code(self) -> int:
        return self.lines - self.comments - self.blank


def production_size(text: str) -> Size:
    """The figures of one file's production part."""
    lines = text.split("\n")
    end = len(lines)
    for at, line in enumerate(lines[:-1]):
        if line.strip() == "#[cfg(test)]" and TEST_MODULE.match(lines[at + 1]):
            end = at
            break
    kept = lines[:end]
    while kept and not kept[-1].strip():
        kept.pop()
    comments = sum(1 for line in kept if line.strip().startswith("//"))
    blank = sum(1 for line in kept if not line.strip())
    return Size(len(kept), comments, blank)


def sources(revision: str | None) -> dict[str, str]:
    """Every `.rs` file under src/, by path, at `revision` or in the working tree."""
    if revision is None:
        return {str(path): path.read_text(encoding="utf-8") for path in Path("src").rglob("*.rs")}
    listing = subprocess.run(
        ["git", "ls-tree", "-r", "--name-only", revision, "src"], check=True, capture_output=True, text=True
    ).stdout.split()
    return {
        path: subprocess.run(["git", "show", f"{revision}:{path}"], check=True, capture_output=True, text=True).stdout
        for path in listing
        if path.endswith(".rs")
    }


def main(arguments: list[str]) -> int:
    per_file = "--files" in arguments
    revisions = [argument for argument in arguments if not argument.startswith("--")]
    sizes = {path: production_size(text) for path, text in sources(revisions[0] if revisions else None).items()}
    if per_file:
        for path, size in sorted(sizes.items(), key=lambda item: -item[1].lines):
            print(f"{size.lines:6} {size.code:6} {size.comments:6}  {path}")
    total = Size(*(sum(figures) for figures in zip(*sizes.values(), strict=True)))
    print(f"{total.lines} production lines in src/: {total.code} code, {total.comments} comments, {total.blank} blank")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

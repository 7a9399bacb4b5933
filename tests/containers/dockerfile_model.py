"""A Dockerfile reader just deep enough for the tests: instructions grouped into stages.

Follows the Dockerfile syntax rules that matter here: `\\` continues a line, comment lines
(also inside a continued instruction) are dropped, a `# syntax=` parser directive may lead,
and JSON-array arguments are exec form while anything else is shell form.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field


@dataclass
class Instruction:
    keyword: str  # upper case: FROM, RUN, COPY, ...
    arguments: str  # the raw text after the keyword, continuation lines joined
    line: int  # 1-based line where the instruction starts

    def exec_form(self) -> list[str] | None:
        """The JSON array of an exec-form argument, or None for shell form."""
        text = self.arguments.strip()
        if not text.startswith("["):
            return None
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            return None
        return value if isinstance(value, list) and all(isinstance(v, str) for v in value) else None

    def flags_and_words(self) -> tuple[dict[str, str], list[str]]:
        """`--name=value` flags (COPY --from=..., RUN --mount=...) and the remaining words."""
        flags: dict[str, str] = {}
        words: list[str] = []
        for word in shlex.split(self.arguments, posix=True):
            if not words and word.startswith("--"):
                name, _, value = word[2:].partition("=")
                flags[name] = value
            else:
                words.append(word)
        return flags, words


@dataclass
class Stage:
    base: str  # the FROM image or an earlier stage's name
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for instruction in self.all("ENV"):
            for word in shlex.split(instruction.arguments):
                key, separator, value = word.partition("=")
                if separator:
                    values[key] = value
        return values


@dataclass
class Dockerfile:
    directives: dict[str, str]
    stages: list[Stage]

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(f"no stage named {name!r}")


def parse(text: str) -> Dockerfile:
    directives: dict[str, str] = {}
    lines = text.splitlines()
    index = 0
    # Parser directives: `# key=value` lines at the very top, before any other comment.
    while index < len(lines) and lines[index].startswith("#") and "=" in lines[index]:
        key, _, value = lines[index][1:].partition("=")
        if " " in key.strip():
            break
        directives[key.strip().lower()] = value.strip()
        index += 1

    stages: list[Stage] = []
    while index < len(lines):
        start = index
        line = lines[index].strip()
        index += 1
        if not line or line.startswith("#"):
            continue
        parts = [line]
        while parts[-1].endswith("\\") and index < len(lines):
            parts[-1] = parts[-1][:-1]
            following = lines[index].strip()
            index += 1
            if following.startswith("#"):
                parts.append("\\")  # a comment inside a continuation keeps it going
                continue
            parts.append(following)
        joined = " ".join(part for part in parts if part != "\\")
        keyword, _, arguments = joined.partition(" ")
        instruction = Instruction(keyword.upper(), arguments.strip(), start + 1)
        if instruction.keyword == "FROM":
            _, words = instruction.flags_and_words()
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=words[0], name=name))
        elif not stages:
            if instruction.keyword != "ARG":
                raise ValueError(f"line {start + 1}: {instruction.keyword} before the first FROM")
        else:
            stages[-1].instructions.append(instruction)
    return Dockerfile(directives, stages)

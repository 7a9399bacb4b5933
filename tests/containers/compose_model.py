"""A small, faithful-enough model of how Docker Compose v2 reads this repo's compose files.

No Docker engine (and often no compose binary) exists where the checks run, so this module does
the three things `docker compose -f A -f B config` would do, for the keys these files use:

* load YAML, with anchors and `<<` merge keys (PyYAML's safe loader resolves both; compose's
  `!reset` / `!override` tags are not used here and make the loader fail loudly if they appear);
* interpolate `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?error}`, `${VAR?error}`,
  `${VAR:+alt}`, `${VAR+alt}`, `$VAR` and `$$`, from an env file parsed like compose parses `.env`;
* merge files by the Compose Specification's merge rules: mappings merge key by key, sequences
  append, `command` / `entrypoint` / `healthcheck.test` are replaced, `ports` and `volumes` are
  unique by their key (ports by ip+published+target+protocol, volumes by target), and the
  list-or-mapping forms of `environment`, `labels` and `depends_on` are normalised to mappings first.

Run as a script it prints the merged, interpolated model as JSON for check-jsonschema:
    python3 tests/containers/compose_model.py --env-file .env.example docker-compose.yml docker-compose.dev.yml
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

# Attributes whose sequence value is replaced, not appended, by a later file.
REPLACED_SEQUENCES = {"command", "entrypoint"}
# Attributes written either as a list of KEY=VALUE strings or as a mapping.
KEY_VALUE_ATTRIBUTES = {"environment", "labels", "annotations", "sysctls", "extra_hosts"}


class InterpolationError(ValueError):
    """A `${VAR:?message}` whose variable is missing, or malformed `${...}` syntax."""


def load_yaml(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        document = yaml.safe_load(handle)
    if not isinstance(document, dict):
        raise ValueError(f"{path}: a compose file must be a mapping at the top level")
    return document


def parse_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines as compose's dotenv reader takes them: comments, `export`, quotes."""
    values: dict[str, str] = {}
    for number, raw_line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, separator, value = line.partition("=")
        key = key.strip()
        if not separator or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise ValueError(f"{path}:{number}: not a KEY=VALUE line: {raw_line!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        else:
            # An unquoted value ends at an inline comment (" #").
            value = re.split(r"\s+#", value, maxsplit=1)[0].rstrip()
        values[key] = value
    return values


def interpolate_string(text: str, env: dict[str, str]) -> str:
    output: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char != "$":
            output.append(char)
            index += 1
            continue
        following = text[index + 1 : index + 2]
        if following == "$":
            output.append("$")
            index += 2
        elif following == "{":
            end = _matching_brace(text, index + 1)
            output.append(_expand_braced(text[index + 2 : end], env))
            index = end + 1
        else:
            match = re.match(r"[A-Za-z_][A-Za-z0-9_]*", text[index + 1 :])
            if match is None:
                output.append("$")
                index += 1
            else:
                output.append(env.get(match.group(0), ""))
                index += 1 + match.end()
    return "".join(output)


def _matching_brace(text: str, open_index: int) -> int:
    depth = 0
    for index in range(open_index, len(text)):
        if text[index] == "{":
            depth += 1
        elif text[index] == "}":
            depth -= 1
            if depth == 0:
                return index
    raise InterpolationError(f"unterminated ${{ in {text!r}")


def _expand_braced(expression: str, env: dict[str, str]) -> str:
    match = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])(.*))?", expression, re.DOTALL)
    if match is None:
        raise InterpolationError(f"invalid interpolation ${{{expression}}}")
    name, operator, argument = match.group(1), match.group(2), match.group(3) or ""
    value = env.get(name)
    is_set = value is not None
    is_non_empty = bool(value)
    if operator is None:
        return value or ""
    present = is_non_empty if operator.startswith(":") else is_set
    kind = operator[-1]
    if kind == "-":
        return value if present else interpolate_string(argument, env)
    if kind == "+":
        return interpolate_string(argument, env) if present else ""
    if not present:  # kind == "?"
        raise InterpolationError(f"required variable {name} is missing a value: {argument}")
    return value or ""


def interpolate(node: Any, env: dict[str, str]) -> Any:
    """Interpolates every string value (never a key), as compose does."""
    if isinstance(node, dict):
        return {key: interpolate(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate(item, env) for item in node]
    if isinstance(node, str):
        return interpolate_string(node, env)
    return node


def normalise_service(service: dict[str, Any]) -> dict[str, Any]:
    service = copy.deepcopy(service)
    for attribute in KEY_VALUE_ATTRIBUTES & service.keys():
        value = service[attribute]
        if isinstance(value, list):
            mapping: dict[str, Any] = {}
            for item in value:
                key, separator, item_value = str(item).partition("=")
                mapping[key] = item_value if separator else None
            service[attribute] = mapping
    if isinstance(service.get("depends_on"), list):
        service["depends_on"] = {name: {"condition": "service_started"} for name in service["depends_on"]}
    if isinstance(service.get("env_file"), str):
        service["env_file"] = [service["env_file"]]
    if isinstance(service.get("build"), str):
        service["build"] = {"context": service["build"]}
    return service


def port_key(port: Any) -> tuple[str, str, str, str]:
    """(host ip, published, target, protocol) of a short- or long-syntax port."""
    if isinstance(port, dict):
        return (
            str(port.get("host_ip", "")),
            str(port.get("published", "")),
            str(port.get("target", "")),
            str(port.get("protocol", "tcp")),
        )
    text = str(port)
    text, _, protocol = text.partition("/")
    parts = text.rsplit(":", 2)
    target = parts[-1]
    published = parts[-2] if len(parts) >= 2 else ""
    host_ip = parts[-3] if len(parts) == 3 else ""
    return (host_ip, published, target, protocol or "tcp")


def volume_target(volume: Any) -> str:
    if isinstance(volume, dict):
        return str(volume["target"])
    parts = str(volume).split(":")
    # "source:target[:mode]" or a bare "target" (an anonymous volume).
    return parts[1] if len(parts) >= 2 else parts[0]


def _merge_unique(base: list[Any], override: list[Any], key: Any) -> list[Any]:
    merged = list(base)
    positions = {key(item): index for index, item in enumerate(merged)}
    for item in override:
        item_key = key(item)
        if item_key in positions:
            merged[positions[item_key]] = item
        else:
            positions[item_key] = len(merged)
            merged.append(item)
    return merged


def merge_service(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = normalise_service(base)
    for attribute, value in normalise_service(override).items():
        current = merged.get(attribute)
        if attribute in REPLACED_SEQUENCES or current is None:
            merged[attribute] = copy.deepcopy(value)
        elif attribute == "ports":
            merged[attribute] = _merge_unique(current, value, port_key)
        elif attribute == "volumes":
            merged[attribute] = _merge_unique(current, value, volume_target)
        elif attribute == "healthcheck":
            healthcheck = dict(current)
            healthcheck.update(copy.deepcopy(value))  # `test` is replaced, not appended
            merged[attribute] = healthcheck
        elif isinstance(current, dict) and isinstance(value, dict):
            merged[attribute] = merge_mappings(current, value)
        elif isinstance(current, list) and isinstance(value, list):
            merged[attribute] = current + [item for item in value if item not in current]
        else:
            merged[attribute] = copy.deepcopy(value)
    return merged


def merge_mappings(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(merged.get(key), dict) and isinstance(value, dict):
            merged[key] = merge_mappings(merged[key], value)
        elif isinstance(merged.get(key), list) and isinstance(value, list):
            merged[key] = merged[key] + [item for item in value if item not in merged[key]]
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def merge_files(documents: list[dict[str, Any]]) -> dict[str, Any]:
    """Merges already-loaded compose documents in `-f` order."""
    merged: dict[str, Any] = {}
    for document in documents:
        for key, value in document.items():
            if key == "services":
                services = merged.setdefault("services", {})
                for name, service in (value or {}).items():
                    service = service or {}
                    services[name] = (
                        merge_service(services[name], service) if name in services else normalise_service(service)
                    )
            elif isinstance(merged.get(key), dict) and isinstance(value, dict):
                merged[key] = merge_mappings(merged[key], value)
            else:
                merged[key] = copy.deepcopy(value)
    return merged


def load_model(paths: list[Path], env: dict[str, str] | None = None) -> dict[str, Any]:
    """The merged model of `docker compose -f paths[0] -f paths[1] ...`, interpolated from env."""
    documents = [load_yaml(path) for path in paths]
    if env is not None:
        documents = [interpolate(document, env) for document in documents]
    return merge_files(documents)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env-file", type=Path, help="interpolate ${...} from this file")
    parser.add_argument("files", nargs="+", type=Path)
    arguments = parser.parse_args(argv)
    env = parse_env_file(arguments.env_file) if arguments.env_file else None
    try:
        model = load_model(arguments.files, env)
    except (InterpolationError, ValueError, yaml.YAMLError) as error:
        print(f"compose_model: {error}", file=sys.stderr)
        return 1
    json.dump(model, sys.stdout, indent=2, sort_keys=True)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

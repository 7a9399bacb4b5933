"""The stand-in for `docker compose config` must merge and interpolate as Compose does, or the
other tests would check a model that Compose never builds. Expected results follow the Compose
Specification's merge and interpolation rules."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import compose_model


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_mappings_merge_key_by_key_and_scalars_are_replaced(tmp_path) -> None:
    base = write(
        tmp_path,
        "a.yml",
        """
        services:
          web: {image: a, environment: {A: "1", B: "2"}, build: {context: ., target: runtime}}
    """,
    )
    override = write(
        tmp_path,
        "b.yml",
        """
        services:
          web: {image: b, environment: [B=3, C=4], build: {target: dev}}
    """,
    )
    web = compose_model.load_model([base, override])["services"]["web"]
    assert web["image"] == "b"
    assert web["environment"] == {"A": "1", "B": "3", "C": "4"}
    assert web["build"] == {"context": ".", "target": "dev"}


def test_command_entrypoint_and_healthcheck_test_are_replaced_not_appended(tmp_path) -> None:
    base = write(
        tmp_path,
        "a.yml",
        """
        services:
          web:
            command: [serve]
            entrypoint: [/a]
            healthcheck: {test: [CMD, /a, --health], interval: 10s}
    """,
    )
    override = write(
        tmp_path,
        "b.yml",
        """
        services:
          web:
            command: [cargo, watch]
            entrypoint: [/b]
            healthcheck: {test: [CMD, /b], start_period: 5m}
    """,
    )
    web = compose_model.load_model([base, override])["services"]["web"]
    assert web["command"] == ["cargo", "watch"]
    assert web["entrypoint"] == ["/b"]
    assert web["healthcheck"] == {"test": ["CMD", "/b"], "interval": "10s", "start_period": "5m"}


def test_ports_and_volumes_are_unique_by_their_keys_other_sequences_append(tmp_path) -> None:
    base = write(
        tmp_path,
        "a.yml",
        """
        services:
          web:
            ports: ["8080:8080"]
            volumes: ["data:/work", "logs:/logs"]
            cap_drop: [ALL]
            env_file: .env
            depends_on: [db]
    """,
    )
    override = write(
        tmp_path,
        "b.yml",
        """
        services:
          web:
            ports: ["8080:8080", "127.0.0.1:9000:9000"]
            volumes: ["other:/work", {type: bind, source: ., target: /app}]
            cap_drop: [ALL, NET_RAW]
            env_file: [dev.env]
            depends_on: {cache: {condition: service_healthy}}
    """,
    )
    web = compose_model.load_model([base, override])["services"]["web"]
    assert web["ports"] == ["8080:8080", "127.0.0.1:9000:9000"]
    assert web["volumes"] == ["other:/work", "logs:/logs", {"type": "bind", "source": ".", "target": "/app"}]
    assert web["cap_drop"] == ["ALL", "NET_RAW"]
    assert web["env_file"] == [".env", "dev.env"]
    assert web["depends_on"] == {"db": {"condition": "service_started"}, "cache": {"condition": "service_healthy"}}


def test_top_level_volumes_and_new_services_are_added(tmp_path) -> None:
    base = write(tmp_path, "a.yml", "services: {web: {image: a}}\nvolumes: {pgdata: }\n")
    override = write(tmp_path, "b.yml", "services: {tool: {image: t}}\nvolumes: {cache: }\n")
    model = compose_model.load_model([base, override])
    assert set(model["services"]) == {"web", "tool"}
    assert set(model["volumes"]) == {"pgdata", "cache"}


def test_anchors_and_merge_keys_resolve_like_compose(tmp_path) -> None:
    path = write(
        tmp_path,
        "a.yml",
        """
        x-common: &common {read_only: true, restart: always}
        x-more: &more {cap_drop: [ALL]}
        services:
          web:
            <<: [*common, *more]
            restart: "no"
    """,
    )
    web = compose_model.load_model([path])["services"]["web"]
    assert web == {"read_only": True, "restart": "no", "cap_drop": ["ALL"]}


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("${A}", {"A": "x"}, "x"),
        ("${A}", {}, ""),
        ("$A/$B", {"A": "x", "B": "y"}, "x/y"),
        ("${A:-d}", {"A": ""}, "d"),
        ("${A-d}", {"A": ""}, ""),
        ("${A-d}", {}, "d"),
        ("${A:+alt}", {"A": "x"}, "alt"),
        ("${A:+alt}", {"A": ""}, ""),
        ("${A:-${B}}", {"B": "inner"}, "inner"),
        ("$$HOME and $${X}", {"HOME": "no"}, "$HOME and ${X}"),
        ("127.0.0.1:${P:-5432}:5432", {}, "127.0.0.1:5432:5432"),
    ],
)
def test_interpolation_follows_compose_rules(text: str, env: dict[str, str], expected: str) -> None:
    assert compose_model.interpolate_string(text, env) == expected


@pytest.mark.parametrize(("text", "env"), [("${A:?need A}", {}), ("${A:?need A}", {"A": ""}), ("${A?need A}", {})])
def test_required_variables_fail_with_their_message(text: str, env: dict[str, str]) -> None:
    with pytest.raises(compose_model.InterpolationError, match="need A"):
        compose_model.interpolate_string(text, env)


def test_env_files_parse_like_compose_dotenv(tmp_path) -> None:
    path = write(
        tmp_path,
        "x.env",
        """
        # comment
        A=1
        export B=two words
        C='single $quoted'
        D="double"
        E=value # trailing comment
        F=
        # G=commented out
    """,
    )
    assert compose_model.parse_env_file(path) == {
        "A": "1", "B": "two words", "C": "single $quoted", "D": "double", "E": "value", "F": "",
    }  # fmt: skip


def test_the_command_line_prints_the_merged_model_and_fails_on_a_missing_required_variable(tmp_path, capsys) -> None:
    base = write(tmp_path, "a.yml", "services: {web: {image: 'app:${TAG:?set TAG}'}}\n")
    env = write(tmp_path, "e.env", "TAG=1.2\n")
    assert compose_model.main(["--env-file", str(env), str(base)]) == 0
    assert '"image": "app:1.2"' in capsys.readouterr().out
    assert compose_model.main(["--env-file", str(write(tmp_path, "empty.env", "")), str(base)]) == 1
    assert "set TAG" in capsys.readouterr().err

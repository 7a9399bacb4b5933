"""`make test-up` / `make test-down`: the throwaway Postgres (5433) and Redis (6380) of the test
suite answer on their ports, and nothing of them is left afterwards."""

from __future__ import annotations

import pytest

from e2e_support import FINDINGS, Project, Timer, answers, port_is_free, postgres_answers, redis_ping

POSTGRES, REDIS = 5433, 6380


def test_test_services_answer_and_leave_nothing_behind(project: Project) -> None:
    if not (port_is_free(POSTGRES) and port_is_free(REDIS)):
        pytest.fail(f"ports {POSTGRES}/{REDIS} are taken on this host: the test services cannot be published")
    name = f"{project.name}-test"
    with Timer("make test-up"):
        project.make("test-up", COMPOSE_PROJECT_NAME=name)
    assert postgres_answers(POSTGRES)
    assert redis_ping(REDIS)
    assert project.run("docker", "compose", "-f", "docker-compose.test.yml", "exec", "-T", "db_test",
                       "psql", "-U", "test", "-d", "test", "-Atc", "SELECT 1",
                       COMPOSE_PROJECT_NAME=name).stdout.strip() == "1"  # fmt: skip
    with Timer("make test-down"):
        project.make("test-down", COMPOSE_PROJECT_NAME=name)
    assert project.leftovers(name) == {}
    assert not answers(POSTGRES) and not answers(REDIS)
    FINDINGS["make test-up/test-down"] = "both answered; nothing left after test-down"

"""`make test-up` / `make test-down`: the throwaway Postgres (5433) and Redis (6380) of the test
suite answer on their ports, and nothing of them is left afterwards."""

from __future__ import annotations

import pytest

from e2e_support import FINDINGS, Project, Timer, answers, docker, port_is_free, postgres_answers, redis_ping

POSTGRES, REDIS = 5433, 6380


def test_test_services_answer_and_leave_nothing_behind(project: Project) -> None:
    if not (port_is_free(POSTGRES) and port_is_free(REDIS)):
        pytest.fail(f"ports {POSTGRES}/{REDIS} are taken on this host: the test services cannot be published")
    name = f"{project.name}-test"
    # COMPOSE_PROJECT_NAME names the main stack (in the environment, as an operator may set it):
    # the test services keep a project of their own, whose down never removes the stack's.
    with Timer("make test-up"):
        project.make("test-up", TEST_PROJECT=name, COMPOSE_PROJECT_NAME=project.name)
    assert project.leftovers(name).get("containers"), "the test services run in their own project"
    in_main = docker("ps", "-aq", "--filter", f"label=com.docker.compose.project={project.name}",
                     "--filter", "label=com.docker.compose.service=db_test")  # fmt: skip
    assert not in_main.split(), "nothing of them in the main stack's project"
    assert postgres_answers(POSTGRES)
    assert redis_ping(REDIS)
    assert project.run("docker", "compose", "-f", "docker-compose.test.yml", "exec", "-T", "db_test",
                       "psql", "-U", "test", "-d", "test", "-Atc", "SELECT 1",
                       COMPOSE_PROJECT_NAME=name).stdout.strip() == "1"  # fmt: skip
    with Timer("make test-down"):
        project.make("test-down", TEST_PROJECT=name, COMPOSE_PROJECT_NAME=project.name)
    assert project.leftovers(name) == {}
    assert not answers(POSTGRES) and not answers(REDIS)
    FINDINGS["make test-up/test-down"] = "both answered; nothing left after test-down"

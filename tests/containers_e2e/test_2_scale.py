"""Scale-out as the README documents it: `API_PORT` a range in .env, `docker compose up -d --scale
api=3`. Three healthy replicas share Postgres and Redis; a write through one is never followed by
the old user on a read through the others."""

from __future__ import annotations

from e2e_support import FINDINGS, PRODUCTION, Project, Timer, free_ports, health, request

REPLICAS = 3
WRITES = 200


def test_three_replicas_behind_a_port_range_never_serve_the_old_user(project: Project) -> None:
    project.make("down")
    ports = free_ports(REPLICAS, project.ports)
    # The range lives in .env, as the README says; nothing in the environment overrides it.
    project.variables.pop("API_PORT", None)
    project.set_env("API_PORT", f"{ports[0]}-{ports[-1]}")
    with Timer(f"docker compose up -d --wait --scale api={REPLICAS} (API_PORT a range)"):
        project.compose(PRODUCTION, "up", "-d", "--wait", "--scale", f"api={REPLICAS}")

    migrate = project.container("migrate")
    assert (migrate["State"]["Status"], migrate["State"]["ExitCode"]) == ("exited", 0)
    replicas = project.containers("api")
    assert len(replicas) == REPLICAS
    published = []
    for replica in replicas:
        assert health(replica) == "healthy", replica["Name"]
        bindings = replica["NetworkSettings"]["Ports"]["8080/tcp"]
        published.append(int(bindings[0]["HostPort"]))
    assert sorted(published) == ports

    writer, readers = published[0], published[1:]
    user = request(writer, "POST", "/v1/users", {"name": "v0"}).json()
    path = f"/v1/users/{user['id']}"
    for reader in readers:  # both replicas have the body cached (and, where enabled, in memory)
        request(reader, "GET", path)
        request(reader, "GET", path)
    stale, reads, hits = 0, 0, 0
    with Timer(f"{WRITES} writes through replica 1, each followed by reads through replicas 2 and 3"):
        for version in range(1, WRITES + 1):
            written = request(writer, "PATCH", path, {"name": f"v{version}"})
            assert written.status == 200, written.body
            for reader in readers:
                read = request(reader, "GET", path)
                assert read.status == 200
                reads += 1
                hits += read.headers.get("x-cache") == "HIT"
                stale += read.json()["name"] != f"v{version}"
    assert stale == 0, f"{stale} of {reads} reads returned the old user"
    FINDINGS["scale-out"] = f"{REPLICAS} healthy replicas; {WRITES} writes, {reads} reads through the others, 0 stale"
    project.make("down")

"""Docker Swarm for the fleet tests (test_5_swarm.py): the engine made a one-node swarm when it is
not one, and left again afterwards (a swarm it was already part of stays as it was); the stack that
`make swarm-up` deploys, what the tests read from it, and what it leaves behind."""

from __future__ import annotations

import json
import re
import socket
from dataclasses import dataclass

from e2e_support import Project, docker, docker_ok, wait_for
from fleet_support import lb_counter

LB_METRICS = 'exec 3<>/dev/tcp/127.0.0.1/8404 && printf "GET /metrics HTTP/1.0\\r\\n\\r\\n" >&3 && cat <&3'


def own_address() -> str:
    """The address this machine reaches others from: what a swarm node must advertise (with
    127.0.0.1 the overlay network carries nothing). A UDP connect sends no packet."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))
        except OSError as error:
            raise AssertionError(
                f"no route to pick an address to advertise for `docker swarm init`: {error}"
            ) from error
        return probe.getsockname()[0]


@dataclass
class Swarm:
    """The engine as a swarm manager; `joined`: these tests made it one, and leave it again."""

    joined: bool
    made_gwbridge: bool = False

    @classmethod
    def ensure(cls) -> Swarm:
        state = docker("info", "--format", "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}").split()
        if state[0] == "active":
            assert state[1] == "true", "this engine is a swarm worker: the stack can only be deployed from a manager"
            return cls(joined=False)
        assert state[0] == "inactive", f"the engine's swarm state is {state[0]!r}: neither part of one nor free to init"
        had_gwbridge = docker_ok("network", "inspect", "docker_gwbridge")
        docker("swarm", "init", "--advertise-addr", own_address())
        return cls(joined=True, made_gwbridge=not had_gwbridge)

    def leave(self) -> None:
        if not self.joined:
            return
        docker("swarm", "leave", "--force")
        if self.made_gwbridge:  # made by `swarm init` for the node's containers; free once it left
            docker_ok("network", "rm", "docker_gwbridge")


@dataclass
class Stack:
    project: Project
    name: str
    port: int

    def containers(self, service: str) -> list[str]:
        """The running containers of one of the stack's services."""
        return docker(
            "ps", "-q", "--filter", f"label=com.docker.swarm.service.name={self.name}_{service}",
            "--filter", "status=running",
        ).split()  # fmt: skip

    def one(self, service: str) -> str:
        found = self.containers(service)
        assert found, f"{self.name}_{service} has no running container"
        return found[0]

    def service(self, service: str) -> dict:
        return json.loads(docker("service", "inspect", f"{self.name}_{service}"))[0]

    def replicas(self, service: str = "api") -> str:
        """`running/desired`, as `docker service ls` shows them."""
        return docker("service", "ls", "--filter", f"name={self.name}_{service}", "--format", "{{.Replicas}}").split()[
            0
        ]

    def psql(self, sql: str) -> str:
        return docker(
            "exec", self.one("db"), "psql", "-v", "ON_ERROR_STOP=1", "-U", "gravity", "-d", "gravity", "-Atc", sql
        )

    def lb_metrics(self) -> str:
        return docker("exec", self.one("lb"), "bash", "-c", LB_METRICS)

    def wait_for_fleet(self, replicas: int, timeout: float = 120) -> float:
        """Until `replicas` api tasks run and the load balancer has as many replicas up."""

        def settled() -> bool:
            up = lb_counter(self.lb_metrics(), "haproxy_backend_active_servers")
            return self.replicas() == f"{replicas}/{replicas}" and up == replicas

        return wait_for(f"{replicas} replicas running and up in the load balancer", settled, timeout, interval=0.5)

    def leftovers(self) -> dict[str, list[str]]:
        label = f"label=com.docker.stack.namespace={self.name}"
        left = {
            "services": docker("service", "ls", "-q", "--filter", label).split(),
            "containers": docker("ps", "-aq", "--filter", label).split(),
            "networks": docker("network", "ls", "-q", "--filter", label).split(),
            "volumes": docker("volume", "ls", "-q", "--filter", label).split(),
            "configs": docker("config", "ls", "-q", "--filter", label).split(),
            "secrets": docker("secret", "ls", "-q", "--filter", f"label=gravity-bff.stack={self.name}").split(),
            "images": [
                f"gravity-bff:{tag}"
                for tag in docker("image", "ls", "gravity-bff", "--format", "{{.Tag}}").split()
                if re.fullmatch(rf"{re.escape(self.project.tag)}-[0-9a-f]{{12}}", tag)
            ],
        }
        return {kind: names for kind, names in left.items() if names}

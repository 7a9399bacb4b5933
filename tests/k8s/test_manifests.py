"""What the Kubernetes schema cannot see: that the manifests agree with the service
(docs/API.md), with the image (Dockerfile) and with each other.

Run: scripts/check-k8s.sh (installs the tools), or `python -m pytest tests/k8s`.
"""

from __future__ import annotations

import math
import re

import pytest

import k8slib
from k8slib import find, find_all, only_container, pod_spec, resolve_container_port

COMPONENT = "app.kubernetes.io/component"


def api_port(config: dict[str, str]) -> int:
    return int(config["API_PORT"])


# --------------------------------------------------------------------------- ports and probes


def test_probes_use_the_service_routes_on_api_port(deployment, config):
    c = only_container(deployment)
    port = api_port(config)
    assert port == 8080, "docs/API.md: the container listens on 8080"
    assert {p["containerPort"] for p in c["ports"]} == {port}

    expected = {"livenessProbe": "/health", "readinessProbe": "/ready", "startupProbe": "/health"}
    for probe, path in expected.items():
        assert probe in c, f"{probe} missing"
        get = c[probe].get("httpGet")
        assert get, f"{probe} must be an httpGet probe (the image has no shell for exec)"
        assert get["path"] == path, f"{probe} must GET {path}, not {get['path']}"
        assert resolve_container_port(c, get["port"]) == port, f"{probe} probes another port"
        assert get.get("scheme", "HTTP") == "HTTP", f"{probe}: the service speaks plain HTTP"

    # Liveness must not depend on Postgres (/ready does): an outage would restart every pod.
    assert c["livenessProbe"]["httpGet"]["path"] != "/ready"


def test_service_networkpolicy_and_scrape_port_match_api_port(docs, deployment, config):
    c = only_container(deployment)
    port = api_port(config)

    svc = find(docs, "Service", "gravity-bff")
    for p in svc["spec"]["ports"]:
        assert resolve_container_port(c, p["targetPort"]) == port, "Service targets another port"

    np = find(docs, "NetworkPolicy", "gravity-bff")
    assert "Ingress" in np["spec"]["policyTypes"]
    rules = np["spec"]["ingress"]
    assert rules, "no ingress rule: nothing could reach the API"
    for rule in rules:
        ports = rule.get("ports")
        assert ports, "an ingress rule without ports opens every port"
        for p in ports:
            assert p.get("protocol", "TCP") == "TCP"
            assert resolve_container_port(c, p["port"]) == port, "ingress opens a non-API port"

    ann = deployment["spec"]["template"]["metadata"].get("annotations", {})
    assert ann.get("prometheus.io/scrape") == "true"
    assert int(ann["prometheus.io/port"]) == port
    assert ann.get("prometheus.io/path") == "/metrics"


def _egress_ports(np: dict) -> set[tuple[str, int]]:
    ports: set[tuple[str, int]] = set()
    for rule in np["spec"].get("egress", []):
        assert rule.get("ports"), "an egress rule without ports opens every port"
        for p in rule["ports"]:
            ports.add((p.get("protocol", "TCP"), int(p["port"])))
    return ports


def test_egress_is_dns_postgres_redis_and_the_token_issuer_only(docs, config):
    db, redis = int(config["DB_PORT"]), int(config["REDIS_PORT"])
    dns = {("UDP", 53), ("TCP", 53)}
    issuer = {("TCP", 443)}  # AUTH_ISSUER's discovery and key set, over https

    server = find(docs, "NetworkPolicy", "gravity-bff")
    assert "Egress" in server["spec"]["policyTypes"]
    assert _egress_ports(server) == dns | {("TCP", db), ("TCP", redis)} | issuer

    migrate = find(docs, "NetworkPolicy", "gravity-bff-migrate")
    assert set(migrate["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    assert migrate["spec"].get("ingress", []) == [], "nothing needs to reach the migration Job"
    assert _egress_ports(migrate) == dns | {("TCP", db)}


def test_network_policies_select_the_pods(docs, deployment, job):
    server_labels = deployment["spec"]["template"]["metadata"]["labels"]
    job_labels = job["spec"]["template"]["metadata"]["labels"]
    server = find(docs, "NetworkPolicy", "gravity-bff")["spec"]["podSelector"]["matchLabels"]
    migrate = find(docs, "NetworkPolicy", "gravity-bff-migrate")["spec"]["podSelector"]["matchLabels"]
    assert k8slib.selector_matches(server, server_labels)
    assert not k8slib.selector_matches(server, job_labels)
    assert k8slib.selector_matches(migrate, job_labels)
    assert not k8slib.selector_matches(migrate, server_labels)


# --------------------------------------------------------------------------- the image


def test_pod_uid_and_gid_match_the_dockerfile_user(deployment, job, dockerfile_stage):
    uid, gid = k8slib.numeric_user(dockerfile_stage.user)
    assert uid != 0, "the image must not run as root"
    for wl in (deployment, job):
        spec = pod_spec(wl)
        name = wl["metadata"]["name"]
        assert spec["securityContext"]["runAsUser"] == uid, f"{name}: runAsUser != Dockerfile USER"
        if gid is not None:
            assert spec["securityContext"]["runAsGroup"] == gid, f"{name}: runAsGroup != USER gid"
        for c in spec["containers"]:
            sc = c.get("securityContext", {})
            assert sc.get("runAsUser", uid) == uid, f"{name}/{c['name']}: runAsUser differs"
            if gid is not None:
                assert sc.get("runAsGroup", gid) == gid, f"{name}/{c['name']}: runAsGroup differs"


def test_dockerfile_port_matches_api_port(config, dockerfile_stage):
    port = api_port(config)
    if "API_PORT" in dockerfile_stage.env:
        assert int(dockerfile_stage.env["API_PORT"]) == port
    assert any(e.split("/")[0] == str(port) for e in dockerfile_stage.expose), (
        f"the runtime stage does not EXPOSE {port}"
    )


def _argv(container: dict, stage: k8slib.Stage) -> list[str]:
    """The process a container runs: Kubernetes' command replaces ENTRYPOINT (and
    drops CMD); args replaces CMD."""
    if "command" in container:
        return [*container["command"], *container.get("args", [])]
    entry = stage.entrypoint or []
    args = container["args"] if "args" in container else (stage.cmd or [])
    return [*entry, *args]


def test_job_runs_migrate_up_from_the_server_image(deployment, job, dockerfile_stage):
    mig = only_container(job)
    srv = only_container(deployment)
    assert mig["image"] == srv["image"], "the Job must run the same image as the server"
    argv = _argv(mig, dockerfile_stage)
    assert argv[1:] == ["migrate", "up"], f"the Job runs {argv}"
    assert argv[0].rsplit("/", 1)[-1] == "gravity-bff"


def test_job_args_are_migrate_up(job):
    # Independent of the Dockerfile: the Job passes exactly `migrate up`.
    mig = only_container(job)
    assert mig.get("args") == ["migrate", "up"]
    if "command" in mig:
        assert mig["command"] == ["/gravity-bff"]


def test_server_runs_the_default_serve(deployment, dockerfile_stage):
    argv = _argv(only_container(deployment), dockerfile_stage)
    assert argv[0].rsplit("/", 1)[-1] == "gravity-bff"
    assert argv[1:] in ([], ["serve"]), f"the server runs {argv}"


def test_job_shape(job, deployment):
    spec = job["spec"]
    ps = pod_spec(job)
    assert ps["restartPolicy"] == "Never"
    assert 0 < spec["backoffLimit"] <= 6
    assert spec["activeDeadlineSeconds"] > 0, "a Job stuck on the lock must end"
    assert spec["ttlSecondsAfterFinished"] > 0
    # It reads the same settings and database password as the server.
    mig, srv = only_container(job), only_container(deployment)
    assert mig["envFrom"] == srv["envFrom"]
    db_pw = [e for e in mig["env"] if e["name"] == "DB_PASSWORD_FILE"]
    assert db_pw and db_pw[0] in srv["env"]


# --------------------------------------------------------------------------- shutdown


def test_grace_period_covers_prestop_and_drain(deployment, config):
    spec = pod_spec(deployment)
    c = only_container(deployment)
    pre = c["lifecycle"]["preStop"]
    assert "exec" not in pre, "the distroless image has no shell or sleep binary"
    assert "sleep" in pre, "use the kubelet's sleep action for the endpoint-drain pause"
    pause = int(pre["sleep"]["seconds"])
    drain = int(config["SHUTDOWN_GRACE_SECONDS"])
    assert pause > 0
    # After the drain: up to 2.5 s to end the writes still running and answer them, 1 s for the
    # last log lines (docs/API.md, Operations: Shutdown).
    ending = 3.5
    assert spec["terminationGracePeriodSeconds"] > drain + pause + ending, (
        f"terminationGracePeriodSeconds {spec['terminationGracePeriodSeconds']} must exceed "
        f"SHUTDOWN_GRACE_SECONDS {drain} + preStop sleep {pause} + {ending} s to end writes and logs"
    )


# --------------------------------------------------------------------------- hardening


@pytest.mark.parametrize("kind", ["Deployment", "Job"])
def test_pod_and_container_hardening(docs, kind):
    for wl in find_all(docs, kind):
        spec = pod_spec(wl)
        name = wl["metadata"]["name"]
        psc = spec["securityContext"]
        assert psc["runAsNonRoot"] is True, name
        assert psc["seccompProfile"]["type"] == "RuntimeDefault", name
        assert spec.get("automountServiceAccountToken") is False, name
        assert spec.get("serviceAccountName") == "gravity-bff", name
        assert spec.get("enableServiceLinks") is False, name
        assert not spec.get("hostNetwork") and not spec.get("hostPID") and not spec.get("hostIPC")
        for c in spec["containers"]:
            sc = c["securityContext"]
            where = f"{name}/{c['name']}"
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc.get("privileged", False) is False, where
            assert sc["capabilities"]["drop"] == ["ALL"], where
            assert not sc["capabilities"].get("add"), where
            assert sc.get("runAsNonRoot", True) is True, where
            assert sc["seccompProfile"]["type"] == "RuntimeDefault", where
            res = c["resources"]
            assert res["requests"]["cpu"] and res["requests"]["memory"], where
            assert res["limits"]["memory"], where
            ref = c["image"]
            last = ref.rsplit("/", 1)[-1]
            assert "@sha256:" in ref or (":" in last and not last.endswith(":latest")), (
                f"{where}: pin a release tag or digest, not {ref}"
            )


# --------------------------------------------------------------------------- rollout and scaling


def test_rolling_update_never_drops_capacity(deployment):
    strategy = deployment["spec"]["strategy"]
    assert strategy["type"] == "RollingUpdate"
    assert strategy["rollingUpdate"]["maxUnavailable"] == 0
    assert int(strategy["rollingUpdate"]["maxSurge"]) >= 1


def test_hpa_owns_the_replica_count(docs, deployment):
    hpa = find(docs, "HorizontalPodAutoscaler", "gravity-bff")
    assert "replicas" not in deployment["spec"], (
        "with an HPA, spec.replicas makes every `kubectl apply` reset the scaled count"
    )
    ref = hpa["spec"]["scaleTargetRef"]
    assert (ref["apiVersion"], ref["kind"], ref["name"]) == ("apps/v1", "Deployment", "gravity-bff")
    assert hpa["spec"]["minReplicas"] == 3, "the issue asks for 3 replicas"
    assert hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    cpu = [m for m in hpa["spec"]["metrics"] if m["type"] == "Resource" and m["resource"]["name"] == "cpu"]
    assert cpu, "the HPA scales on CPU"
    assert 0 < cpu[0]["resource"]["target"]["averageUtilization"] < 100


def test_pdb_and_service_select_only_server_pods(docs, deployment, job):
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    job_labels = job["spec"]["template"]["metadata"]["labels"]
    assert k8slib.selector_matches(deployment["spec"]["selector"]["matchLabels"], labels)

    pdb = find(docs, "PodDisruptionBudget", "gravity-bff")
    assert k8slib.selector_matches(pdb["spec"]["selector"]["matchLabels"], labels)
    assert not k8slib.selector_matches(pdb["spec"]["selector"]["matchLabels"], job_labels)
    hpa = find(docs, "HorizontalPodAutoscaler", "gravity-bff")
    assert pdb["spec"]["maxUnavailable"] < hpa["spec"]["minReplicas"], "a drain must leave replicas"

    svc = find(docs, "Service", "gravity-bff")
    assert k8slib.selector_matches(svc["spec"]["selector"], labels)
    assert not k8slib.selector_matches(svc["spec"]["selector"], job_labels), (
        "the Service must never route to the migration pod"
    )


def test_connection_budget_fits_postgres(docs, deployment, config):
    """(maxReplicas + maxSurge + pods still stopping) x (DB_POOL_SIZE +
    DB_EXTRA_WRITE_CONNECTIONS) + 1 migrate Job must fit the budget recorded on the HPA, which
    must fit under Postgres max_connections. A stopping pod holds its pool up to
    terminationGracePeriodSeconds, and rollout steps are at least minReadySeconds apart, so
    ceil(grace / minReadySeconds) of them can overlap. The extra write connections default to 4
    when the ConfigMap omits them."""
    hpa = find(docs, "HorizontalPodAutoscaler", "gravity-bff")
    ann = hpa["metadata"]["annotations"]
    max_conn = int(ann["gravity-bff/postgres-max-connections"])
    budget = int(ann["gravity-bff/postgres-connection-budget"])
    pool = int(config["DB_POOL_SIZE"])
    per_replica = pool + int(config.get("DB_EXTRA_WRITE_CONNECTIONS", "4"))
    surge = int(deployment["spec"]["strategy"]["rollingUpdate"]["maxSurge"])
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    stopping = math.ceil(grace / deployment["spec"]["minReadySeconds"])
    assert stopping <= 2, "hpa.yaml and docs/KUBERNETES.md count at most 2 pods still stopping"
    worst = (hpa["spec"]["maxReplicas"] + surge + stopping) * per_replica + 1
    superuser_reserved = 3  # PostgreSQL's default superuser_reserved_connections
    assert budget <= max_conn - superuser_reserved
    assert worst <= budget, (
        f"worst case {worst} Postgres connections exceeds the budget {budget}: lower "
        f"maxReplicas, DB_POOL_SIZE or DB_EXTRA_WRITE_CONNECTIONS, or raise max_connections "
        f"and the annotations"
    )
    assert pool >= 1


def test_rollout_phases_by_component_label(docs):
    """docs/KUBERNETES.md: phase 1 `-l component!=server` (config + migration), phase 2
    `-l component!=migrate` (config + server)."""
    for d in docs:
        comp = d["metadata"].get("labels", {}).get(COMPONENT)
        assert comp in {"config", "migrate", "server"}, f"{d['kind']}/{d['metadata']['name']}: {comp}"
        assert d["metadata"]["labels"].get("app.kubernetes.io/name") == "gravity-bff"

    phase1 = {(d["kind"], d["metadata"]["name"]) for d in docs if k8slib.label_selector_excludes(d, COMPONENT, "server")}
    phase2 = {(d["kind"], d["metadata"]["name"]) for d in docs if k8slib.label_selector_excludes(d, COMPONENT, "migrate")}
    needed_by_both = {("ServiceAccount", "gravity-bff"), ("ConfigMap", "gravity-bff-config")}
    assert needed_by_both | {("Job", "gravity-bff-migrate"), ("NetworkPolicy", "gravity-bff-migrate")} <= phase1
    assert ("Deployment", "gravity-bff") not in phase1, "the server must not start before the migration"
    assert needed_by_both | {
        ("Deployment", "gravity-bff"),
        ("Service", "gravity-bff"),
        ("HorizontalPodAutoscaler", "gravity-bff"),
        ("PodDisruptionBudget", "gravity-bff"),
        ("NetworkPolicy", "gravity-bff"),
    } <= phase2
    assert ("Job", "gravity-bff-migrate") not in phase2, "phase 2 must not re-create the Job"
    assert phase1 | phase2 == {(d["kind"], d["metadata"]["name"]) for d in docs}


# --------------------------------------------------------------------------- config and secrets


def test_config_values_are_valid(config, variant, deployment, job):
    # The service ignores names it does not know, so a typo here would silently
    # fall back to a default: every key must be one of its settings (docs/API.md).
    unknown = set(config) - k8slib.SERVICE_SETTINGS
    assert not unknown, f"ConfigMap keys the service does not read: {sorted(unknown)}"
    for key in ("DB_HOST", "DB_USER", "DB_NAME"):
        assert config.get(key, "").strip(), f"{key} is required by the service"
    assert config["DB_SSL_MODE"] in k8slib.SSL_MODES
    if variant != "base":
        assert config["DB_SSL_MODE"] != "disable", "a managed Postgres is reached over the network: use TLS"
    for key in ("API_PORT", "DB_PORT", "REDIS_PORT"):
        assert 1 <= int(config[key]) <= 65535, key
    # The ranges the service accepts (src/config.rs); outside them it exits with code 2.
    assert 1 <= int(config["DB_POOL_SIZE"]) <= 64
    assert 0 <= int(config["CACHE_TTL_SECONDS"]) <= 7 * 24 * 3600
    assert 1 <= int(config["SHUTDOWN_GRACE_SECONDS"]) <= 3600
    assert config["LOG_LEVEL"].lower() in {"trace", "debug", "info", "warn", "warning", "error"}
    assert re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", config["CACHE_KEY_PREFIX"])
    for key in config:
        assert not k8slib.SECRETISH_KEY.search(key), f"{key} belongs in the Secret, not the ConfigMap"

    # A CA bundle path must be inside the CA volume of every pod that reads it.
    ca = config.get("DB_SSL_ROOT_CERT")
    if ca:
        assert config.get("DB_SSL_MODE") == "verify-full", "the service refuses DB_SSL_ROOT_CERT with any other mode"
        for wl in (deployment, job):
            c = only_container(wl)
            mounts = {m["name"]: m["mountPath"] for m in c.get("volumeMounts", [])}
            vols = {v["name"]: v for v in pod_spec(wl).get("volumes", [])}
            ok = [
                name
                for name, path in mounts.items()
                if ca.startswith(path.rstrip("/") + "/")
                and ({"configMap", "secret"} & set(vols.get(name, {})))
            ]
            assert ok, f"{wl['metadata']['name']}: DB_SSL_ROOT_CERT {ca} is not on a mounted volume"


def test_authentication_is_on_with_an_https_issuer_in_every_variant(config, variant):
    # The service refuses to start without AUTH_ISSUER unless AUTH_DISABLED=true; a cluster
    # never turns it off, and fetches the issuer's keys over https only (networkpolicy.yaml).
    assert config.get("AUTH_DISABLED", "false") == "false", f"{variant}: authentication is off"
    assert re.fullmatch(r"https://[a-z0-9.-]+(:[0-9]+)?(/\S*)?", config.get("AUTH_ISSUER", "")), config.get("AUTH_ISSUER")
    assert config.get("AUTH_AUDIENCE", "").strip(), "AUTH_AUDIENCE is required with AUTH_ISSUER"
    jwks = config.get("AUTH_JWKS_URL", "")
    assert not jwks or jwks.startswith(("https://", "file:///")), "keys over plain http in a cluster"
    for origin in filter(None, (part.strip() for part in config.get("CORS_ALLOWED_ORIGINS", "").split(","))):
        assert re.fullmatch(r"https://[a-z0-9.-]+(:[0-9]+)?", origin), f"{origin}: an exact https origin"


def test_passwords_are_files_of_the_example_secret_never_environment_values(deployment, job):
    example = k8slib.load_files([k8slib.BASE_DIR / "secret.example.yaml"])
    secret = find(example, "Secret")
    keys = set(secret.get("stringData", {})) | set(secret.get("data", {}))
    assert keys <= k8slib.SERVICE_SETTINGS, f"Secret keys the service does not read: {keys - k8slib.SERVICE_SETTINGS}"
    for wl in (deployment, job):
        c = only_container(wl)
        # The file each *_FILE setting names: a key of the Secret, mounted where it points.
        files = {}
        for v in pod_spec(wl).get("volumes", []):
            if v.get("secret"):
                assert v["secret"]["secretName"] == secret["metadata"]["name"], v
                (mount,) = [m["mountPath"] for m in c["volumeMounts"] if m["name"] == v["name"]]
                items = v["secret"].get("items") or [{"key": k, "path": k} for k in keys]
                files.update({f"{mount}/{i['path']}": i["key"] for i in items})
        for e in c.get("env", []):
            known = k8slib.SERVICE_SETTINGS | k8slib.RUNTIME_SETTINGS
            assert e["name"] in known, f"{e['name']} is not a setting of the service or its runtime"
            assert "secretKeyRef" not in e.get("valueFrom", {}), f"{e['name']}: a password belongs in a file"
            if e["name"].endswith("_FILE"):
                assert files.get(e["value"]) == e["name"].removesuffix("_FILE"), f"{e['name']}={e['value']}"
            else:
                assert not k8slib.SECRETISH_KEY.search(e["name"]), f"{e['name']} looks secret but is a literal"
    env = {e["name"] for e in only_container(deployment)["env"]} - k8slib.RUNTIME_SETTINGS
    assert env == {"DB_PASSWORD_FILE", "REDIS_PASSWORD_FILE"}


def test_rendered_output_ships_no_secret(docs):
    assert not find_all(docs, "Secret"), (
        "kustomizations must not create the Secret: an apply would overwrite real credentials"
    )


def test_committed_secrets_are_placeholders():
    files = sorted(k8slib.K8S_DIR.rglob("*.y*ml"))
    assert files
    secrets = 0
    for path in files:
        for doc in k8slib.load_files([path]):
            if doc.get("kind") == "Secret":
                secrets += 1
                bad = k8slib.non_placeholder_values(doc)
                assert not bad, f"{path}: Secret keys {bad} hold something other than a placeholder"
            if doc.get("kind") == "Kustomization":
                for gen in doc.get("secretGenerator", []) or []:
                    assert not gen.get("literals"), f"{path}: secretGenerator literals commit secrets"
            if doc.get("kind") == "ConfigMap":
                for key in doc.get("data", {}) or {}:
                    assert not k8slib.SECRETISH_KEY.search(key), f"{path}: {key} in a ConfigMap"
    assert secrets >= 1, "the example Secret went missing"


# --------------------------------------------------------------------------- reasons and docs


def test_every_number_has_a_reason_beside_it():
    files = sorted(k8slib.K8S_DIR.rglob("*.y*ml"))
    offenders = [
        f"{p.relative_to(k8slib.ROOT)}:{n}: {line.strip()}"
        for p in files
        for n, line in k8slib.numbers_without_reason(p.read_text())
    ]
    assert not offenders, "numbers without a comment beside or above them:\n" + "\n".join(offenders)


def _kubernetes_docs() -> str:
    guide = k8slib.ROOT / "docs" / "KUBERNETES.md"
    assert guide.is_file(), "docs/KUBERNETES.md is missing"
    text = guide.read_text()
    assert "## A rollout from scratch" in text, "docs/KUBERNETES.md has no 'A rollout from scratch' section"
    return text


def test_documented_commands_name_real_objects():
    """The rollout commands in docs/KUBERNETES.md must name objects and labels
    that exist in the manifests."""
    text = _kubernetes_docs()
    docs = [*k8slib.load_files(k8slib.kustomization_resources(k8slib.BASE_DIR))]
    names = {(d["kind"].lower(), d["metadata"]["name"]) for d in docs}
    secret = find(k8slib.load_files([k8slib.BASE_DIR / "secret.example.yaml"]), "Secret")

    for kind, name in re.findall(r"\b(job|deployment|service|hpa|configmap)/([a-z0-9-]+)", text):
        kind = {"hpa": "horizontalpodautoscaler"}.get(kind, kind)
        assert (kind, name) in names, f"docs name {kind}/{name}, which the manifests do not define"
    for name in re.findall(r"create secret generic ([a-z0-9-]+)", text):
        assert name == secret["metadata"]["name"], f"docs create Secret {name}"
    for key in re.findall(r"--from-literal=([A-Z_]+)=", text):
        assert key in secret["stringData"], f"docs set Secret key {key}, which nothing reads"
    for name in re.findall(r"create configmap ([a-z0-9-]+)", text):
        vols = [v for d in docs if d["kind"] in {"Deployment", "Job"} for v in pod_spec(d).get("volumes", [])]
        assert any(v.get("configMap", {}).get("name") == name for v in vols), f"docs create ConfigMap {name}, unused"
    selectors = re.findall(r"-l '?app\.kubernetes\.io/component!=([a-z]+)'?", text)
    assert set(selectors) == {"server", "migrate"}, f"rollout phases in docs: {selectors}"
    assert "wait --for=condition=complete" in text, "docs must wait for the Job before the server"

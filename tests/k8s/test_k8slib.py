"""The helpers behind test_manifests.py reject what they are meant to reject."""

from __future__ import annotations

import base64

import pytest

import k8slib

MULTI_STAGE = """\
# syntax=docker/dockerfile:1
FROM rust:1.93-slim AS builder
USER root
RUN cargo build \\
    --release
FROM gcr.io/distroless/static-debian12:nonroot AS runtime
COPY --from=builder /out/gravity-bff /gravity-bff
USER 65532:65532
ENV API_PORT=8080 OTHER="a b"
EXPOSE 8080
HEALTHCHECK --interval=10s CMD ["/gravity-bff", "--health"]
ENTRYPOINT ["/gravity-bff"]
CMD ["serve"]
"""


def test_dockerfile_runtime_stage_is_parsed():
    st = k8slib.runtime_stage(k8slib.parse_dockerfile(MULTI_STAGE))
    assert st.name == "runtime"
    assert k8slib.numeric_user(st.user) == (65532, 65532)
    assert st.entrypoint == ["/gravity-bff"]
    assert st.cmd == ["serve"]
    assert st.env == {"API_PORT": "8080", "OTHER": "a b"}
    assert st.expose == ["8080"]


def test_dockerfile_runtime_is_named_stage_not_last():
    text = MULTI_STAGE + "FROM rust:1.93-slim AS dev\nUSER 0\n"
    st = k8slib.runtime_stage(k8slib.parse_dockerfile(text))
    assert st.name == "runtime" and st.user == "65532:65532"


def test_dockerfile_last_stage_when_unnamed():
    st = k8slib.runtime_stage(k8slib.parse_dockerfile("FROM a AS b\nUSER 1\nFROM c\nUSER 1000\n"))
    assert st.base == "c" and k8slib.numeric_user(st.user) == (1000, None)


def test_dockerfile_shell_form_and_legacy_env():
    st = k8slib.parse_dockerfile("FROM x\nENV API_PORT 9090\nENTRYPOINT /bin/app --x\n")[0]
    assert st.env == {"API_PORT": "9090"}
    assert st.entrypoint == ["/bin/sh", "-c", "/bin/app --x"]


@pytest.mark.parametrize("user", [None, "nonroot", "nonroot:nonroot", "65532:staff"])
def test_non_numeric_or_missing_user_is_rejected(user):
    with pytest.raises(ValueError):
        k8slib.numeric_user(user)


@pytest.mark.parametrize("value", ["", "CHANGE_ME", "change-me", "<the postgres password>", "${DB_PASSWORD}"])
def test_placeholders_pass(value):
    assert k8slib.non_placeholder_values({"stringData": {"K": value}}) == []
    encoded = base64.b64encode(value.encode()).decode()
    assert k8slib.non_placeholder_values({"data": {"K": encoded}}) == []


@pytest.mark.parametrize("value", ["hunter2", "s3cr3t-CHANGE_ME", "postgres", "p@ss"])
def test_real_looking_secrets_fail(value):
    assert k8slib.non_placeholder_values({"stringData": {"K": value}}) == ["K"]
    encoded = base64.b64encode(value.encode()).decode()
    assert k8slib.non_placeholder_values({"data": {"K": encoded}}) == ["K"]


def test_undecodable_data_fails():
    assert k8slib.non_placeholder_values({"data": {"K": "not base64!!"}}) == ["K"]


def test_numbers_need_a_reason():
    text = """\
spec:
  # the floor
  minReplicas: 3
  maxReplicas: 10 # the budget
  other: 5
  memory: 32Mi
  quoted: "8080"
  name: gravity-bff
  version: "0.1.0"
  cidr: 10.0.0.0/16
"""
    bad = [line.strip() for _, line in k8slib.numbers_without_reason(text)]
    assert bad == ["other: 5", "memory: 32Mi", 'quoted: "8080"']


def test_port_resolution_by_name_and_number():
    c = {"name": "x", "ports": [{"name": "http", "containerPort": 8080}]}
    assert k8slib.resolve_container_port(c, "http") == 8080
    assert k8slib.resolve_container_port(c, 9090) == 9090
    with pytest.raises(AssertionError):
        k8slib.resolve_container_port(c, "metrics")


def test_selector_helpers():
    assert k8slib.selector_matches({"a": "1"}, {"a": "1", "b": "2"})
    assert not k8slib.selector_matches({"a": "1", "c": "3"}, {"a": "1"})
    assert not k8slib.selector_matches({}, {"a": "1"}), "an empty selector is never what we mean"
    obj = {"metadata": {"labels": {"app.kubernetes.io/component": "server"}}}
    assert not k8slib.label_selector_excludes(obj, "app.kubernetes.io/component", "server")
    assert k8slib.label_selector_excludes(obj, "app.kubernetes.io/component", "migrate")

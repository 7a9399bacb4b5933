"""tools/openapi_rules.py: each rule on a small document, and the project's openapi.yaml."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

import openapi_rules

REPO = Path(__file__).resolve().parents[2]

REQUEST_ID = {"name": "X-Request-Id", "in": "header", "schema": {"type": "string"}}
HEADERS = {"X-Request-Id": {"required": True, "schema": {"type": "string"}}}
PROBLEM = {"application/problem+json": {"schema": {"type": "object"}}}


def response(content: dict | None = None, **headers: dict) -> dict:
    r: dict = {"description": "x", "headers": {**HEADERS, **headers}}
    if content:
        r["content"] = content
    return r


def operation(oid: str, **extra: dict) -> dict:
    responses = {
        "200": response({"application/json": {"schema": {"$ref": "#/components/schemas/Thing"}}}),
        "500": response(PROBLEM),
        "503": response(PROBLEM, **{"Retry-After": {"schema": {"type": "integer"}}}),
    }
    return {"operationId": oid, "parameters": [REQUEST_ID], "responses": responses, **extra}


def head(oid: str) -> dict:
    op = operation(oid)
    op["responses"] = {code: {k: v for k, v in r.items() if k != "content"} for code, r in op["responses"].items()}
    return op


VALID = {
    "openapi": "3.1.0",
    "info": {"title": "t", "version": "1"},
    "paths": {"/things": {"get": operation("listThings"), "head": head("headThings")}},
    "components": {
        "schemas": {"Thing": {"type": "string", "pattern": "^[a-z]+$", "examples": ["abc"]}},
    },
}


def problems(doc: dict) -> list[str]:
    return openapi_rules.Rules(doc).check()


def changed(edit) -> dict:
    doc = copy.deepcopy(VALID)
    edit(doc)
    return doc


def test_a_document_that_keeps_every_rule_has_no_problems():
    assert problems(VALID) == []


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda d: d.update(openapi="3.0.3"), "openapi must be '3.1.0', not '3.0.3'"),
        (lambda d: d["info"].update(title=True), "#/info/title: boolean True where text was probably meant"),
        (lambda d: d["paths"]["/things"]["get"]["responses"].pop("503"), "GET /things: does not document 503"),
        (lambda d: d["paths"]["/things"].pop("head"), "/things: GET without the HEAD operation"),
        (lambda d: d["paths"]["/things"]["get"].update(parameters=[]), "does not take the X-Request-Id"),
        (lambda d: d["paths"]["/things"]["head"].update(operationId="listThings"), "also used by GET /things"),
        (lambda d: d["components"]["schemas"]["Thing"].update(pattern=r"^[a-z]+\Z"), "does not compile in both"),
        (lambda d: d["components"]["schemas"]["Thing"].update(examples=["ABC"]), "example does not match"),
        (
            lambda d: d["paths"]["/things"]["get"]["responses"]["500"].update(content={"text/plain": {}}),
            "500: errors are application/problem+json, not text/plain",
        ),
        (
            lambda d: d["paths"]["/things"]["get"].update(requestBody={"content": {}}),
            "takes a body but does not document 413",
        ),
    ],
)
def test_each_broken_rule_is_reported(edit, expected):
    found = problems(changed(edit))
    assert any(expected in p for p in found), found


def test_a_query_parameter_with_values_to_refuse_needs_a_400_and_a_flag_does_not():
    def with_query(schema: dict) -> dict:
        def edit(d: dict) -> None:
            d["paths"]["/things"]["get"]["parameters"].append({"name": "q", "in": "query", "schema": schema})

        return changed(edit)

    assert any("has query parameters but does not document 400" in p for p in problems(with_query({"type": "integer"})))
    assert problems(with_query({"type": "string"})) == []


def test_an_operation_that_needs_a_token_names_its_scheme_and_documents_401_and_403():
    challenge = {"WWW-Authenticate": {"required": True, "schema": {"type": "string"}}}

    def secured(d, scheme="bearer", with_challenge=True):
        d["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        get = d["paths"]["/things"]["get"]
        get["security"] = [{scheme: ["things:read"]}]
        extra = challenge if with_challenge else {}
        get["responses"]["401"] = response(PROBLEM, **extra)

    assert problems(changed(secured)) == ["GET /things: needs a token but does not document 403"]
    found = problems(changed(lambda d: secured(d, scheme="oauth")))
    assert "GET /things: security names the undeclared scheme 'oauth'" in found
    found = problems(changed(lambda d: secured(d, with_challenge=False)))
    assert "GET /things 401: no WWW-Authenticate header (RFC 6750)" in found


def test_links_must_name_a_real_operation_and_its_parameters():
    def link(d):
        d["paths"]["/things"]["get"]["responses"]["200"]["links"] = {
            "Gone": {"operationId": "nothing"},
            "Head": {"operationId": "headThings", "parameters": {"id": "not-an-expression"}},
        }

    found = problems(changed(link))
    assert "GET /things 200 link Gone: unknown operationId 'nothing'" in found
    assert "GET /things 200 link Head: /things has no parameter 'id'" in found
    assert "GET /things 200 link Head: parameter 'id' is not a runtime expression" in found


def test_refs_are_followed_and_loops_and_external_refs_reported():
    rules = openapi_rules.Rules({"a": {"$ref": "#/b"}, "b": {"$ref": "#/a"}, "c": {"x": 1}})
    assert rules.deref({"$ref": "#/c"}) == {"x": 1}
    assert rules.deref({"$ref": "#/a"}) == {}
    assert rules.deref({"$ref": "other.yaml#/c"}) == {}
    assert rules.problems == ["$ref loop at #/a", "external $ref 'other.yaml#/c'"]


def test_the_projects_document_keeps_every_rule():
    doc = yaml.safe_load((REPO / "openapi.yaml").read_text(encoding="utf-8"))
    rules = openapi_rules.Rules(doc)
    assert rules.check() == []
    assert openapi_rules.check_schemathesis_loads(doc, len(rules.operations)) == []


def test_a_key_named_twice_in_one_mapping_is_refused_not_overwritten(tmp_path, capsys):
    document = tmp_path / "openapi.yaml"
    document.write_text("openapi: 3.1.0\ninfo:\n  title: t\n  title: u\n  version: '1'\npaths: {}\n", encoding="utf-8")
    assert openapi_rules.main(["openapi_rules.py", str(document)]) == 1
    assert "duplicate key 'title'" in capsys.readouterr().err

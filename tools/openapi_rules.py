"""The project's own rules for openapi.yaml, beyond what OpenAPI 3.1 itself requires.

    python tools/openapi_rules.py openapi.yaml     (scripts/check-openapi.sh runs it)

Exit 0 and one line when the rules hold; otherwise one line per problem on stderr and exit 1.
The rules: no mapping repeats a key (YAML keeps the last silently; build.rs refuses it too); the
document is plain JSON data (the served /openapi.json is this file converted);
every pattern compiles in both Python's and Rust's regex; every operation has a unique
operationId, takes X-Request-Id and documents the statuses any route may answer (500, 503 with
Retry-After, and 400/404/413/415/422 where its parameters and body call for them (a query flag
taking any string calls for no 400); an operation
that needs a token names a declared security scheme and documents 401 and 403, each with
WWW-Authenticate), with
application/problem+json errors and a required X-Request-Id on every response; GET routes
answer HEAD; links name real operations and their parameters; examples match their schemas
(formats too); and schemathesis loads every operation.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

import jsonschema
import jsonschema_rs
import referencing
import referencing.jsonschema
import yaml

METHODS = ("get", "head", "post", "put", "patch", "delete", "options", "trace")
# Keys whose values are booleans by the specification; a boolean anywhere else is most likely a
# YAML 1.1 reading of an unquoted on/off/yes/no.
BOOL_KEYS = {
    "required",
    "additionalProperties",
    "unevaluatedProperties",
    "deprecated",
    "explode",
    "allowReserved",
    "allowEmptyValue",
    "uniqueItems",
    "nullable",
}
MAX_REF_HOPS = 20


class UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses a mapping naming one key twice, instead of keeping the last."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


class Rules:
    """Checks one document; every broken rule is appended to `problems`."""

    def __init__(self, doc: Any) -> None:
        self.doc = doc
        self.problems: list[str] = []
        # operationId -> (method, path, operation, path item)
        self.operations: dict[str, tuple[str, str, dict, dict]] = {}

    def fail(self, msg: str) -> None:
        self.problems.append(msg)

    def check(self) -> list[str]:
        """Every rule but schemathesis's loading (see `check_schemathesis_loads`)."""
        self.check_plain_data()
        if not isinstance(self.doc, dict):
            self.fail("the document is not a mapping")
            return self.problems
        self.walk(self.doc, "#")
        if self.doc.get("openapi") != "3.1.0":
            self.fail(f"openapi must be '3.1.0', not {self.doc.get('openapi')!r}")
        self.check_operations()
        self.check_links()
        self.check_examples()
        return self.problems

    # --- the document as data --------------------------------------------------------------------
    def check_plain_data(self) -> None:
        # YAML 1.1 readers turn unquoted on/off/yes/no into booleans and timestamps into dates;
        # catch either before a client does.
        try:
            json.dumps(self.doc, allow_nan=False)
        except (TypeError, ValueError) as exc:
            self.fail(f"not convertible to JSON: {exc}")

    def walk(self, node: Any, where: str, key: str | None = None) -> None:
        if isinstance(node, bool) and key not in BOOL_KEYS:
            self.fail(f"{where}: boolean {node!r} where text was probably meant (quote it)")
        if isinstance(node, dict):
            for k, v in node.items():
                self.walk(v, f"{where}/{k}", k)
                if k == "pattern" and isinstance(v, str):
                    try:
                        re.compile(v)
                        jsonschema_rs.validator_for({"pattern": v})
                    except Exception as exc:  # noqa: BLE001 - either library's error will do
                        self.fail(f"{where}/pattern: does not compile in both Python and Rust regex: {exc}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                self.walk(v, f"{where}/{i}")

    def deref(self, node: Any) -> Any:
        """The node a local `$ref` chain ends at ({} for an external, broken or looping one)."""
        hops = 0
        while isinstance(node, dict) and "$ref" in node:
            ref = node["$ref"]
            if not ref.startswith("#/"):
                self.fail(f"external $ref {ref!r}")
                return {}
            target: Any = self.doc
            for part in ref[2:].split("/"):
                part = part.replace("~1", "/").replace("~0", "~")
                target = target.get(part, {}) if isinstance(target, dict) else {}
            node = target
            hops += 1
            if hops > MAX_REF_HOPS:
                self.fail(f"$ref loop at {ref}")
                return {}
        return node

    # --- operations: ids, required responses and headers -----------------------------------------
    def check_operations(self) -> None:
        for path, item in (self.doc.get("paths") or {}).items():
            for method in METHODS:
                op = item.get(method)
                if op is not None:
                    self.check_operation(method, path, op, item)
            if "get" in item and "head" not in item:
                self.fail(f"{path}: GET without the HEAD operation every GET route answers")

    def check_operation(self, method: str, path: str, op: dict, item: dict) -> None:
        where = f"{method.upper()} {path}"
        oid = op.get("operationId")
        if not oid:
            self.fail(f"{where}: no operationId")
        elif oid in self.operations:
            other = self.operations[oid]
            self.fail(f"{where}: operationId {oid!r} also used by {other[0].upper()} {other[1]}")
        else:
            self.operations[oid] = (method, path, op, item)
        responses = op.get("responses") or {}

        def require(codes: tuple[str, ...], why: str, because: str = "") -> None:
            for code in codes:
                if code not in responses:
                    self.fail(f"{where}: {why} {code}{because}")

        require(("500", "503"), "does not document", " (any route may answer it)")
        if "requestBody" in op:
            require(("400", "413", "415", "422"), "takes a body but does not document")
        parameters = self.parameters(op, item)
        names = {(p.get("in"), p.get("name")) for p in parameters}
        if ("path", "id") in names:
            require(("400", "404"), "has a path id but does not document")
        # A query parameter whose schema takes any string (a flag) has no value to refuse.
        refusable = [
            p for p in parameters if p.get("in") == "query" and self.deref(p.get("schema", {})) != {"type": "string"}
        ]
        if refusable and "400" not in responses:
            self.fail(f"{where}: has query parameters but does not document 400")
        if ("header", "X-Request-Id") not in names:
            self.fail(f"{where}: does not take the X-Request-Id request header")
        if op.get("security"):
            self.check_security(where, op["security"], responses)
        for code, resp in responses.items():
            self.check_response(where, method, code, self.deref(resp))

    def check_response(self, where: str, method: str, code: str, r: dict) -> None:
        headers = r.get("headers") or {}
        if self.deref(headers.get("X-Request-Id", {})).get("required") is not True:
            self.fail(f"{where} {code}: no required X-Request-Id response header")
        if code == "503" and "Retry-After" not in headers:
            self.fail(f"{where} 503: no Retry-After header")
        if method == "head" and r.get("content"):
            self.fail(f"{where} {code}: a HEAD response has no body")
        if method != "head" and code != "204" and not r.get("content"):
            self.fail(f"{where} {code}: documents no body")
        for media in r.get("content") or {}:
            if code.startswith(("4", "5")) and media != "application/problem+json":
                self.fail(f"{where} {code}: errors are application/problem+json, not {media}")

    def check_security(self, where: str, security: list, responses: dict) -> None:
        declared = (self.doc.get("components") or {}).get("securitySchemes") or {}
        for requirement in security:
            for scheme in requirement:
                if scheme not in declared:
                    self.fail(f"{where}: security names the undeclared scheme {scheme!r}")
        for code in ("401", "403"):
            if code not in responses:
                self.fail(f"{where}: needs a token but does not document {code}")
            elif "WWW-Authenticate" not in (self.deref(responses[code]).get("headers") or {}):
                self.fail(f"{where} {code}: no WWW-Authenticate header (RFC 6750)")

    def parameters(self, op: dict, item: dict) -> list[dict]:
        return [self.deref(p) for p in (item.get("parameters") or []) + (op.get("parameters") or [])]

    # --- links point at real operations and at their parameters ----------------------------------
    def check_links(self) -> None:
        for method, path, op, _item in list(self.operations.values()):
            for code, resp in (op.get("responses") or {}).items():
                for name, link in (self.deref(resp).get("links") or {}).items():
                    self.check_link(f"{method.upper()} {path} {code} link {name}", self.deref(link))

    def check_link(self, where: str, link: dict) -> None:
        target = self.operations.get(link.get("operationId"))
        if target is None:
            self.fail(f"{where}: unknown operationId {link.get('operationId')!r}")
            return
        _method, t_path, t_op, t_item = target
        t_names = {p.get("name") for p in self.parameters(t_op, t_item)}
        for pname, expr in (link.get("parameters") or {}).items():
            if pname.split(".")[-1] not in t_names:
                self.fail(f"{where}: {t_path} has no parameter {pname!r}")
            if not isinstance(expr, str) or not expr.startswith("$"):
                self.fail(f"{where}: parameter {pname!r} is not a runtime expression")

    # --- examples agree with their schemas (formats checked too) ---------------------------------
    def check_examples(self) -> None:
        self.registry = referencing.Registry().with_resource(
            "urn:gravity-openapi", referencing.jsonschema.DRAFT202012.create_resource(self.doc)
        )
        self.collect_examples(self.doc, "")

    def check_example(self, pointer: str, value: Any, where: str) -> None:
        validator = jsonschema.Draft202012Validator(
            {"$ref": "urn:gravity-openapi#" + pointer},
            registry=self.registry,
            format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
        )
        for err in validator.iter_errors(value):
            self.fail(f"{where}: example does not match its schema: {err.message}")

    def collect_examples(self, node: Any, pointer: str) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("schema"), dict):
                # A parameter, header or media type: `example` and `examples/*/value` follow `schema`.
                values = [node["example"]] if "example" in node else []
                examples = [self.deref(ex) for ex in (node.get("examples") or {}).values()]
                values += [ex["value"] for ex in examples if "value" in ex]
                for i, value in enumerate(values):
                    self.check_example(pointer + "/schema", value, f"#{pointer} example {i}")
            if pointer.startswith("/components/schemas/") and pointer.count("/") == 3:
                for i, value in enumerate(node.get("examples") or []):
                    self.check_example(pointer, value, f"#{pointer}/examples/{i}")
            for k, v in node.items():
                self.collect_examples(v, f"{pointer}/{k.replace('~', '~0').replace('/', '~1')}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                self.collect_examples(v, f"{pointer}/{i}")


def check_schemathesis_loads(doc: dict, operations: int) -> list[str]:
    """schemathesis reads every operation (imported here: it is slow to import)."""
    import schemathesis

    try:
        schema = schemathesis.openapi.from_dict(doc)
        loaded = [result.ok().label for result in schema.get_all_operations()]
    except Exception as exc:  # noqa: BLE001 - whatever schemathesis raises is the finding
        return [f"schemathesis could not load the document: {exc}"]
    if len(loaded) != operations:
        return [f"schemathesis loaded {len(loaded)} operations, the document has {operations}"]
    return []


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: openapi_rules.py OPENAPI.yaml", file=sys.stderr)
        return 2
    path = argv[1]
    with open(path, encoding="utf-8") as f:
        try:
            doc = yaml.load(f, Loader=UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
        except yaml.YAMLError as exc:
            print(f"check-openapi: {path}: {exc}", file=sys.stderr)
            return 1
    rules = Rules(doc)
    problems = rules.check()
    if isinstance(doc, dict):
        problems += check_schemathesis_loads(doc, len(rules.operations))
    if problems:
        for msg in problems:
            print(f"check-openapi: {msg}", file=sys.stderr)
        print(f"check-openapi: {len(problems)} problem(s) in {path}", file=sys.stderr)
        return 1
    print(f"check-openapi: {path}: valid OpenAPI 3.1, {len(rules.operations)} operations, project rules hold")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""tools/dev_issuer.py: its key set holds the key it signs with, and its tokens verify with
openssl and carry the claims asked for."""

from __future__ import annotations

import base64
import json
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

import dev_issuer


@pytest.fixture(autouse=True, scope="module")
def openssl() -> None:
    """The tool needs openssl; without it these tests fail, saying so, rather than skip."""
    if shutil.which("openssl") is None:
        pytest.fail("openssl is not installed; tools/dev_issuer.py needs it (apt-get install openssl)")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("issuer")
    dev_issuer.make_keys(directory)
    return directory


def test_the_key_set_holds_the_public_half_of_the_private_key(keys: Path) -> None:
    assert stat.S_IMODE((keys / "key.pem").stat().st_mode) == 0o600
    (jwk,) = json.loads((keys / "jwks.json").read_text())["keys"]
    assert {k: jwk[k] for k in ("kty", "use", "alg", "kid", "e")} == {
        "kty": "RSA",
        "use": "sig",
        "alg": "RS256",
        "kid": dev_issuer.KEY_ID,
        "e": "AQAB",
    }
    modulus = subprocess.run(
        ["openssl", "rsa", "-in", str(keys / "key.pem"), "-noout", "-modulus"],
        capture_output=True,
        check=True,
        text=True,
    ).stdout.strip()
    assert unb64url(jwk["n"]) == bytes.fromhex(modulus.removeprefix("Modulus="))
    assert len(unb64url(jwk["n"])) == 256


def test_a_token_verifies_with_openssl_and_carries_the_claims_asked_for(keys: Path, tmp_path: Path) -> None:
    body = dev_issuer.claims("https://issuer.test", "api", "users:read", "alice", 60, now=1_000)
    token = dev_issuer.token(keys, body)
    header, payload, signature = token.split(".")
    assert json.loads(unb64url(header)) == {"alg": "RS256", "typ": "JWT", "kid": dev_issuer.KEY_ID}
    assert json.loads(unb64url(payload)) == {
        "iss": "https://issuer.test",
        "aud": "api",
        "sub": "alice",
        "scope": "users:read",
        "iat": 1_000,
        "exp": 1_060,
    }
    public = tmp_path / "public.pem"
    subprocess.run(["openssl", "pkey", "-in", str(keys / "key.pem"), "-pubout", "-out", str(public)], check=True)
    (tmp_path / "signature").write_bytes(unb64url(signature))
    verified = subprocess.run(
        ["openssl", "dgst", "-sha256", "-verify", str(public), "-signature", str(tmp_path / "signature")],
        input=f"{header}.{payload}".encode(),
        capture_output=True,
        check=False,
    )
    assert verified.returncode == 0, verified.stderr
    tampered = f"{header}.{payload}x".encode()
    refused = subprocess.run(
        ["openssl", "dgst", "-sha256", "-verify", str(public), "-signature", str(tmp_path / "signature")],
        input=tampered,
        capture_output=True,
        check=False,
    )
    assert refused.returncode != 0


def test_a_wrong_invocation_prints_the_usage_and_exits_2(capsys) -> None:
    assert dev_issuer.main(["mint"]) == 2
    assert "keys DIR" in capsys.readouterr().err

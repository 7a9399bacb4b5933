"""A token issuer for running the service with authentication on and no identity provider: an
RSA key made by openssl, its JSON Web Key Set in a file (for AUTH_JWKS_URL=file://...), and RS256
access tokens signed with it. scripts/check-api-contract.sh runs schemathesis with one; a
developer can try the service with one (docs/OPERATIONS.md, "Turning authentication on").

    python tools/dev_issuer.py keys DIR
        writes DIR/key.pem (the private key, mode 600) and DIR/jwks.json (its public key)
    python tools/dev_issuer.py token DIR ISSUER AUDIENCE SCOPE [SUBJECT] [SECONDS]
        prints a token of DIR's key for `sub` SUBJECT (default dev-user), valid SECONDS
        (default 3600), with `iss` ISSUER, `aud` AUDIENCE and `scope` SCOPE

Standard library only; the cryptography is the `openssl` command's. Never for production: the
key sits in a plain file and anyone who can read it can mint any token.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import time
from pathlib import Path

KEY_ID = "dev-issuer"


def b64url(data: bytes) -> str:
    """Base64url without padding, as JOSE writes every binary value."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def openssl(*args: str, data: bytes | None = None) -> bytes:
    completed = subprocess.run(["openssl", *args], input=data, capture_output=True, check=False)
    if completed.returncode != 0:
        raise SystemExit(f"dev_issuer: openssl {args[0]} failed: {completed.stderr.decode(errors='replace').strip()}")
    return completed.stdout


def public_numbers(key: Path) -> tuple[bytes, bytes]:
    """The RSA modulus and public exponent of a private key, big-endian."""
    text = openssl("rsa", "-in", str(key), "-noout", "-text").decode()
    modulus = re.search(r"^modulus:\n((?:\s+[0-9a-f:]+\n)+)", text, re.M)
    exponent = re.search(r"^publicExponent: (\d+)", text, re.M)
    if not modulus or not exponent:
        raise SystemExit(f"dev_issuer: cannot read the public key of {key}")
    digits = re.sub(r"[\s:]", "", modulus.group(1)).lstrip("0")
    number = int(exponent.group(1))
    return bytes.fromhex(digits.zfill(len(digits) + len(digits) % 2)), number.to_bytes(
        (number.bit_length() + 7) // 8, "big"
    )


def key_set(key: Path) -> dict:
    """The JSON Web Key Set of `key`'s public half."""
    modulus, exponent = public_numbers(key)
    jwk = {"kty": "RSA", "use": "sig", "alg": "RS256", "kid": KEY_ID, "n": b64url(modulus), "e": b64url(exponent)}
    return {"keys": [jwk]}


def make_keys(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    key = directory / "key.pem"
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(key))
    key.chmod(0o600)
    (directory / "jwks.json").write_text(json.dumps(key_set(key)) + "\n", encoding="utf-8")


def claims(issuer: str, audience: str, scope: str, subject: str, seconds: int, now: int) -> dict:
    return {"iss": issuer, "aud": audience, "sub": subject, "scope": scope, "iat": now, "exp": now + seconds}


def token(directory: Path, body: dict) -> str:
    """A compact JWS of `body`, RS256 with the key in `directory`."""
    header = {"alg": "RS256", "typ": "JWT", "kid": KEY_ID}
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(body).encode())}"
    signature = openssl("dgst", "-sha256", "-sign", str(directory / "key.pem"), data=signing_input.encode())
    return f"{signing_input}.{b64url(signature)}"


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "keys":
        make_keys(Path(argv[1]))
        return 0
    if 5 <= len(argv) <= 7 and argv[0] == "token":
        directory, issuer, audience, scope = Path(argv[1]), argv[2], argv[3], argv[4]
        subject = argv[5] if len(argv) > 5 else "dev-user"
        seconds = int(argv[6]) if len(argv) > 6 else 3600
        print(token(directory, claims(issuer, audience, scope, subject, seconds, int(time.time()))))
        return 0
    print(__doc__.split("\n\n")[1], file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

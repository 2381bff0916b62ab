"""NATS JWTs: decode and verify ``ed25519-nkey`` tokens, and issue them.

The wire format is ``shared/reference/nats-jwt.md`` section 2: three base64url
segments without padding, a header ``{"typ":"JWT","alg":"ed25519-nkey"}``, and
an Ed25519 signature by the key in the payload's ``iss`` over
``header.payload`` (v2) or over the payload segment alone (v1 claims, which
carry a top-level ``type``). ``decode`` checks the header, the signature and
the issuer's role for the claim kind; the time checks (``exp``, ``nbf``) are
``check_times``, apart, because the server applies them at chosen moments.

``encode`` writes tokens the way the Go library does (same header bytes, same
compact JSON, ``jti`` as its hash), so Go-issued vectors are reproduced byte
for byte when given the same payload.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.auth.nkeys import KeyPair, NKeyError, Role, decode_public_key, verify

HEADER = {"typ": "JWT", "alg": "ed25519-nkey"}
MAX_TOKEN_SIZE = 1 << 20
_ALGORITHMS = frozenset({"ed25519-nkey", "ed25519"})
_STANDARD_ORDER = ("aud", "exp", "jti", "iat", "iss", "name", "nbf", "sub")
_HASHED = ("aud", "exp", "iat", "iss", "name", "nbf", "sub")
_KINDS = frozenset(
    {"operator", "account", "user", "activation", "authorization_request", "authorization_response"}
)
#: The issuer roles each claim kind accepts (section 2, "Issuer prefix check").
_ISSUERS: dict[str, tuple[Role, ...]] = {
    "user": (Role.ACCOUNT,),
    "account": (Role.ACCOUNT, Role.OPERATOR),
    "operator": (Role.OPERATOR,),
    "activation": (Role.ACCOUNT, Role.OPERATOR),
    "authorization_request": (Role.SERVER,),
    "authorization_response": (Role.ACCOUNT,),
}


class JWTError(ValueError):
    """A token that is malformed, badly signed, of the wrong kind, or no longer valid."""


@dataclass(frozen=True, slots=True)
class Claims:
    """A verified JWT: its standard claims and the type-specific ``nats`` object."""

    token: str = field(repr=False)
    payload: Mapping[str, Any] = field(repr=False)
    kind: str
    version: int
    issuer: str
    subject: str
    issued_at: int = 0
    expires: int = 0
    not_before: int = 0
    name: str = ""

    @property
    def nats(self) -> Mapping[str, Any]:
        """The type-specific claims (v1 tokens too keep them in ``nats``, their type outside)."""
        value = self.payload.get("nats")
        return value if isinstance(value, Mapping) else {}


def is_jwt(text: str | None) -> bool:
    """Whether ``text`` looks like a JWT (three segments, the first an encoded JSON object)."""
    return bool(text) and text.startswith("eyJ") and text.count(".") == 2  # type: ignore[union-attr]


def b64url_decode(segment: str) -> bytes:
    """Decode base64url without padding (padding tolerated); raises ``JWTError``."""
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise JWTError("segment is not base64url") from None


def b64url_encode(data: bytes) -> str:
    """base64url without padding."""
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise JWTError(f"{what} is not JSON") from None
    if not isinstance(value, dict):
        raise JWTError(f"{what} is not a JSON object")
    # Go decodes field names case-insensitively: normalise the standard claims.
    out: dict[str, Any] = {}
    for key, item in value.items():
        lower = key.lower() if isinstance(key, str) else key
        out[lower if lower in _STANDARD_ORDER or lower in ("nats", "type") else key] = item
    return out


def _int_claim(payload: Mapping[str, Any], name: str) -> int:
    value = payload.get(name, 0)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise JWTError(f'claim "{name}" is not a number')
    return int(value)


def decode(token: str, kind: str | None = None) -> Claims:
    """Parse and verify ``token``; with ``kind``, it must be a claim of that kind.

    Checks the segments, the header (``typ`` JWT, ``alg`` ed25519-nkey or
    ed25519), the version, the signature by ``iss`` and the issuer's role.
    Time validity is ``check_times``.
    """
    token = token.strip()
    if len(token) > MAX_TOKEN_SIZE:
        raise JWTError("token is larger than 1 MiB")
    parts = token.split(".")
    if len(parts) != 3:
        raise JWTError("expected 3 segments")
    header = _json_object(b64url_decode(parts[0]), "header")
    typ, alg = header.get("typ"), header.get("alg")
    if not isinstance(typ, str) or typ.upper() != "JWT":
        raise JWTError(f"not a JWT: typ {typ!r}")
    if not isinstance(alg, str) or alg.lower() not in _ALGORITHMS:
        raise JWTError(f"unsupported algorithm {alg!r}")
    payload = _json_object(b64url_decode(parts[1]), "payload")
    signature = b64url_decode(parts[2])
    if "type" in payload:
        version, found = 1, payload["type"]
    else:
        nats = payload.get("nats")
        nats = nats if isinstance(nats, dict) else {}
        found, version = nats.get("type"), nats.get("version", 0)
        if not isinstance(version, int) or isinstance(version, bool):
            raise JWTError("nats.version is not a number")
    if not isinstance(found, str):
        raise JWTError("claim has no type")
    if version > 2:
        raise JWTError("JWT was generated by a newer version")
    if found in ("cluster", "server"):
        raise JWTError(f"{found} claims are not supported")
    if found in _KINDS and version == 0:
        raise JWTError("library supports version 2 or less - received 0")
    if kind is not None and found != kind:
        raise JWTError(f"expected {kind} claims, got {found}")
    issuer = payload.get("iss")
    if not isinstance(issuer, str) or not issuer:
        raise JWTError("claim has no issuer")
    signed = parts[1] if version == 1 else f"{parts[0]}.{parts[1]}"
    try:
        verify(issuer, signed.encode("ascii"), signature)
    except (NKeyError, UnicodeEncodeError) as exc:
        raise JWTError(f"signature verification failed: {exc}") from None
    roles = _ISSUERS.get(found)
    if roles is not None and not any(_has_role(issuer, role) for role in roles):
        raise JWTError(f"{found} claims issued by a key of the wrong kind ({issuer[:1]})")
    subject = payload.get("sub")
    name = payload.get("name")
    return Claims(
        token=token,
        payload=payload,
        kind=found,
        version=version,
        issuer=issuer,
        subject=subject if isinstance(subject, str) else "",
        issued_at=_int_claim(payload, "iat"),
        expires=_int_claim(payload, "exp"),
        not_before=_int_claim(payload, "nbf"),
        name=name if isinstance(name, str) else "",
    )


def _has_role(key: str, role: Role) -> bool:
    try:
        decode_public_key(key, role)
    except NKeyError:
        return False
    return True


def check_times(claims: Claims, now: float | None = None) -> None:
    """Raise ``JWTError`` if ``claims`` are expired (now > exp) or not yet valid (nbf > now)."""
    now = time.time() if now is None else now
    if claims.expires and int(now) > claims.expires:
        raise JWTError("claim is expired")
    if claims.not_before and claims.not_before > int(now):
        raise JWTError("claim is not yet valid")


def go_json(value: Any) -> str:
    """Compact JSON as Go's encoder writes it (``<``, ``>``, ``&`` escaped)."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def claims_hash(payload: Mapping[str, Any]) -> str:
    """The ``jti`` the Go library computes: SHA-512/256 of the standard claims, base32."""
    standard = {k: payload[k] for k in _HASHED if payload.get(k) not in (None, "", 0)}
    digest = hashlib.new("sha512_256", go_json(standard).encode()).digest()
    return base64.b32encode(digest).decode().rstrip("=")


def encode(payload: Mapping[str, Any], signer: KeyPair, *, set_jti: bool = True) -> str:
    """Sign ``payload`` with ``signer`` as a v2 token; ``iss`` is set to the signer.

    Standard claims are written first in the Go library's order, then ``nats``;
    ``jti`` is computed as Go does unless ``set_jti`` is false (keeps the given one).
    """
    claims = dict(payload)
    claims["iss"] = signer.public_key
    claims.setdefault("iat", int(time.time()))
    if set_jti or not claims.get("jti"):
        claims["jti"] = claims_hash(claims)
    ordered: dict[str, Any] = {
        k: claims[k] for k in _STANDARD_ORDER if claims.get(k) not in (None, "", 0)
    }
    ordered.update((k, v) for k, v in claims.items() if k not in _STANDARD_ORDER)
    head = b64url_encode(go_json(HEADER).encode())
    body = b64url_encode(go_json(ordered).encode())
    signature = signer.sign(f"{head}.{body}".encode("ascii"))
    return f"{head}.{body}.{b64url_encode(signature)}"


# -- creds files ------------------------------------------------------------------

_CREDS = """-----BEGIN NATS USER JWT-----
{jwt}
------END NATS USER JWT------

************************* IMPORTANT *************************
NKEY Seed printed below can be used to sign and prove identity.
NKEYs are sensitive and should be treated as secrets.

-----BEGIN USER NKEY SEED-----
{seed}
------END USER NKEY SEED------

*************************************************************
"""


def format_creds(jwt: str, seed: str) -> str:
    """A creds file (decorated user JWT and seed), as ``nsc`` writes it."""
    return _CREDS.format(jwt=jwt, seed=seed)


def parse_decorated(text: str) -> list[str]:
    """The tokens inside ``-----...-----`` blocks of a decorated file; the whole text if none."""
    lines = [line.strip() for line in text.splitlines()]
    tokens: list[str] = []
    i = 0
    while i + 2 < len(lines):
        if _is_dashes(lines[i]) and lines[i + 1] and _is_dashes(lines[i + 2]):
            tokens.append(lines[i + 1])
            i += 3
        else:
            i += 1
    return tokens or ["".join(text.split())]


def _is_dashes(line: str) -> bool:
    return line.startswith("---") and line.endswith("---") and len(line) >= 6


@dataclass(frozen=True, slots=True)
class UserGrant:
    """What a validated user JWT granted a connection, kept for later checks.

    ``expires`` is a UNIX time (user or account expiry, or the end of the
    ``times`` window, whichever comes first) with ``expiry_reason`` the
    ``-ERR`` text for it; ``issued_at`` is checked against later revocations.
    """

    user: str
    account: str
    issued_at: int
    bearer: bool = False
    expires: float | None = None
    expiry_reason: str = "User Authentication Expired"

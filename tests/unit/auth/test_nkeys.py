"""NKeys against the vectors produced by the reference Go libraries (shared/vectors)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from gateway.auth.nkeys import (
    KeyPair,
    NKeyError,
    Role,
    crc16,
    decode_public_key,
    decode_seed,
    decode_signature,
    encode_seed,
    is_public_key,
    verify,
)

VECTORS_FILE = Path(__file__).resolve().parents[4] / "shared" / "vectors" / "nats_jwt_vectors.json"
ROLES = {"operator": Role.OPERATOR, "account": Role.ACCOUNT, "user": Role.USER}


@pytest.fixture(scope="module")
def vectors() -> dict[str, Any]:
    if not VECTORS_FILE.exists():
        pytest.skip(f"{VECTORS_FILE} not present")
    data: dict[str, Any] = json.loads(VECTORS_FILE.read_text())
    return data


def test_crc16_check_value() -> None:
    assert crc16(b"123456789") == 0x31C3


def test_seeds_give_the_go_public_keys(vectors: dict[str, Any]) -> None:
    for key in vectors["keys"]:
        pair = KeyPair(key["seed"])
        assert pair.public_key == key["public"]
        role, raw = decode_seed(key["seed"])
        assert encode_seed(raw, role) == key["seed"]


def test_roles_are_read_from_the_prefix(vectors: dict[str, Any]) -> None:
    first = {k["role"].split()[0]: k["public"] for k in vectors["keys"]}
    for name, role in ROLES.items():
        assert is_public_key(first[name], role)
    assert not is_public_key(first["user"], Role.ACCOUNT)


def test_nonce_signature_verifies_and_is_reproduced(vectors: dict[str, Any]) -> None:
    user = next(k for k in vectors["keys"] if k["role"].startswith("user"))
    case = vectors["nonce_signature"]
    signature = decode_signature(case["sig_base64url_nopad"])
    verify(user["public"], case["nonce"].encode(), signature, Role.USER)
    ours = KeyPair(user["seed"]).sign(case["nonce"].encode())
    assert base64.urlsafe_b64encode(ours).decode().rstrip("=") == case["sig_base64url_nopad"]


def test_wrong_nonce_does_not_verify(vectors: dict[str, Any]) -> None:
    user = next(k for k in vectors["keys"] if k["role"].startswith("user"))
    signature = decode_signature(vectors["nonce_signature"]["sig_base64url_nopad"])
    with pytest.raises(NKeyError):
        verify(user["public"], b"another nonce", signature)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "UDFJHLAXAUMHA4OWPOB4P7YO72AQR2HMIUYFOXLXE2DZGM633K7HYREW",  # checksum off by one
        "UDFJHLAXAUMHA4OWPOB4P7YO72AQR2HMIUYFOXLXE2DZGM633K7HYRE",  # truncated
        "udfjhlaxaumha4owpob4p7yo72aqr2hmiuyfoxlxe2dzgm633k7hyrev",  # lower case
        "not base32 at all!",
        "SUAAIBAEAQCAIBAEAQCAIBAEAQCAIBAEAQCAIBAEAQCAIBAEAQCAIBH4FY",  # a seed, not a public key
    ],
)
def test_bad_public_keys_are_refused(text: str) -> None:
    with pytest.raises(NKeyError):
        decode_public_key(text)

"""NKeys: NATS Ed25519 keys in their typed, checksummed base32 text form.

Public keys are ``base32(prefix || key32 || crc16le)`` (56 characters), seeds
``base32(b1 || b2 || seed32 || crc16le)`` (58 characters), with CRC-16/XMODEM
over the preceding bytes, as ``shared/reference/nats-jwt.md`` section 1 sets
out. Built on ``cryptography``'s Ed25519; PyPI's ``nkeys`` cannot verify
against a bare public key.
"""

from __future__ import annotations

import base64
import binascii
import enum

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

SEED_PREFIX = 18 << 3
PUBLIC_KEY_LENGTH = 35
SEED_LENGTH = 36


class Role(enum.IntEnum):
    """The prefix byte of each public key role."""

    ACCOUNT = 0
    CLUSTER = 2 << 3
    SERVER = 13 << 3
    OPERATOR = 14 << 3
    USER = 20 << 3
    CURVE = 23 << 3


class NKeyError(ValueError):
    """Text that is not a valid nkey of the expected role, or a signature that does not verify."""


def crc16(data: bytes) -> int:
    """CRC-16/XMODEM (polynomial 0x1021, initial 0)."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def _b32decode(text: str) -> bytes:
    if not text or text != text.strip() or not text.isascii():
        raise NKeyError("not an nkey")
    try:
        raw = base64.b32decode(text + "=" * (-len(text) % 8))
    except (binascii.Error, ValueError):
        raise NKeyError("not base32") from None
    if len(raw) < 4:
        raise NKeyError("too short")
    body, check = raw[:-2], int.from_bytes(raw[-2:], "little")
    if crc16(body) != check:
        raise NKeyError("invalid checksum")
    return body


def _b32encode(body: bytes) -> str:
    raw = body + crc16(body).to_bytes(2, "little")
    return base64.b32encode(raw).decode().rstrip("=")


def decode_public_key(text: str, role: Role | None = None) -> bytes:
    """The 32 raw Ed25519 bytes of a public nkey; ``role`` if given must match."""
    body = _b32decode(text)
    if len(body) + 2 != PUBLIC_KEY_LENGTH:
        raise NKeyError("wrong length for a public key")
    prefix = body[0] & 0xF8
    try:
        found = Role(prefix)
    except ValueError:
        raise NKeyError("not a public key") from None
    if role is not None and found is not role:
        raise NKeyError(f"a {found.name.lower()} key where a {role.name.lower()} key is expected")
    return body[1:]


def is_public_key(text: str, role: Role) -> bool:
    """Whether ``text`` is a valid public nkey of ``role``."""
    try:
        decode_public_key(text, role)
    except NKeyError:
        return False
    return True


def encode_public_key(raw: bytes, role: Role) -> str:
    """The text form of a 32-byte Ed25519 public key for ``role``."""
    return _b32encode(bytes([role]) + raw)


def decode_seed(text: str) -> tuple[Role, bytes]:
    """The role and the 32-byte Ed25519 private seed of a seed nkey (``SU...``, ``SA...``)."""
    body = _b32decode(text)
    if len(body) + 2 != SEED_LENGTH:
        raise NKeyError("wrong length for a seed")
    b1, b2 = body[0], body[1]
    if b1 & 0xF8 != SEED_PREFIX:
        raise NKeyError("not a seed")
    try:
        role = Role(((b1 & 7) << 5) | ((b2 & 0xF8) >> 3))
    except ValueError:
        raise NKeyError("seed of an unknown role") from None
    return role, body[2:]


def encode_seed(raw_seed: bytes, role: Role) -> str:
    """The text form of a 32-byte Ed25519 private seed for ``role``."""
    b1 = SEED_PREFIX | (role >> 5)
    b2 = (role & 31) << 3
    return _b32encode(bytes([b1, b2]) + raw_seed)


class KeyPair:
    """A signing key pair from a seed: its public nkey, and Ed25519 signatures."""

    def __init__(self, seed: str) -> None:
        self.role, raw = decode_seed(seed)
        self._private = Ed25519PrivateKey.from_private_bytes(raw)
        public = self._private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.public_key = encode_public_key(public, self.role)

    def sign(self, data: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``data``."""
        return self._private.sign(data)


def verify(public_key: str, data: bytes, signature: bytes, role: Role | None = None) -> None:
    """Check an Ed25519 ``signature`` of ``data`` by ``public_key``; raises ``NKeyError``."""
    raw = decode_public_key(public_key, role)
    try:
        Ed25519PublicKey.from_public_bytes(raw).verify(signature, data)
    except InvalidSignature:
        raise NKeyError("signature does not verify") from None


def decode_signature(text: str) -> bytes:
    """A nonce signature as NATS clients send it: base64url without padding, or standard base64."""
    padded = text + "=" * (-len(text) % 4)
    for decoder in (base64.urlsafe_b64decode, base64.standard_b64decode):
        try:
            return decoder(padded)
        except (binascii.Error, ValueError):
            continue
    raise NKeyError("signature is not base64")

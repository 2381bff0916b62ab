"""``jetgate -t`` verifies operator-mode JWTs: the real command line, errors at FILE:LINE:COL."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.auth.jwt_cli import issue_account, issue_operator
from gateway.auth.nkeys import Role
from tests.integration.operator.conftest import Identities, keypair

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]


def check(path: Path) -> subprocess.CompletedProcess[str]:
    """``jetgate -t -c path`` as a process."""
    return subprocess.run(
        [sys.executable, "-m", "gateway", "-t", "-c", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


class Config:
    """A configuration file written line by line, remembering the line of each named line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines: list[str] = []
        self.line_of: dict[str, int] = {}

    def add(self, text: str, name: str | None = None) -> None:
        self.lines.append(text)
        if name is not None:
            self.line_of[name] = len(self.lines)

    def write(self) -> Path:
        self.path.write_text("\n".join(self.lines) + "\n")
        return self.path

    def at(self, name: str, column: int = 1) -> str:
        return f"{self.path}:{self.line_of[name]}:{column}: "


def tamper(token: str) -> str:
    """``token`` with a changed payload (its signature no longer matches)."""
    head, body, sig = token.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload["name"] = "changed"
    changed = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")
    return f"{head}.{changed}.{sig}"


def base(ids: Identities, config: Config, operator: str | None = None) -> None:
    config.add("listen: 127.0.0.1:-1")
    config.add('jetstream { store_dir: "%s" }' % (ids.tmp / "store"))
    op_file = ids.tmp / "op.jwt"
    op_file.write_text(operator or ids.operator_jwt)
    config.add(f'operator: "{op_file}"', "operator")
    config.add(f"system_account: {ids.key('SYS')}", "system_account")
    config.add("resolver: MEMORY")


def test_good_operator_config_is_ok(ids: Identities) -> None:
    config = Config(ids.tmp / "good.conf")
    base(ids, config)
    config.add("resolver_preload {")
    config.add(f'  {ids.key("SYS")}: "{ids.account_jwt("SYS")}"')
    # Signed by the operator's signing key: trusted too.
    config.add(f'  {ids.key("A")}: "{ids.account_jwt("A", signer=ids.operator_signing)}"')
    config.add("}")
    result = check(config.write())
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "configuration OK"


def test_every_bad_jwt_is_reported_at_its_line(ids: Identities) -> None:
    config = Config(ids.tmp / "bad.conf")
    base(ids, config)
    stranger = keypair(Role.OPERATOR)
    extra = {name: keypair(Role.ACCOUNT).public_key for name in ("X", "Y", "Z", "W")}
    config.add("resolver_preload {")
    config.add(f'  {ids.key("SYS")}: "{ids.account_jwt("SYS")}"')
    config.add(f'  {ids.key("A")}: "{ids.account_jwt("A", signer=stranger)}"', "untrusted")
    config.add(f'  {ids.key("B")}: "{ids.account_jwt("B", expires_in=-60)}"', "expired")
    config.add(f'  {extra["X"]}: "{tamper(issue_account(ids.operator, extra["X"], "X"))}"', "sig")
    late = issue_account(ids.operator, extra["Y"], "Y", not_before_in=3600)
    config.add(f'  {extra["Y"]}: "{late}"', "nbf")
    # A JWT stored under another account's key.
    config.add(f'  {extra["Z"]}: "{issue_account(ids.operator, extra["W"], "W")}"', "subject")
    config.add("}")
    result = check(config.write())
    assert result.returncode == 1, result.stdout
    errors = result.stderr.splitlines()
    assert errors[-1] == "configuration has errors"
    expected = [
        (config.at("untrusted", 3), "not a configured operator or one of its signing keys"),
        (config.at("expired", 3), 'account JWT "B"'),
        (config.at("sig", 3), f"invalid account JWT for {extra['X']}"),
        (config.at("nbf", 3), "claim is not yet valid"),
        (config.at("subject", 3), f"account JWT subject {extra['W']} is not its key"),
    ]
    assert len(errors) == len(expected) + 1, result.stderr
    for line, (prefix, text) in zip(errors, expected, strict=False):
        assert line.startswith(prefix), (line, prefix)
        assert text in line, line
    assert "claim is expired" in errors[1]


def test_bad_operator_jwts_are_reported(ids: Identities) -> None:
    # Tampered operator file.
    config = Config(ids.tmp / "tampered.conf")
    base(ids, config, operator=tamper(ids.operator_jwt))
    config.add(f'resolver_preload {{ {ids.key("SYS")}: "{ids.account_jwt("SYS")}" }}')
    result = check(config.write())
    assert result.returncode == 1
    first = result.stderr.splitlines()[0]
    assert first.startswith(config.at("operator")), first
    assert "error parsing operator JWT" in first and str(ids.tmp / "op.jwt") in first
    assert len(result.stderr.splitlines()) == 2  # no cascade of "untrusted account" errors
    # An expired operator, inline in a list, and a system account not preloaded.
    config = Config(ids.tmp / "expired.conf")
    config.add("listen: 127.0.0.1:-1")
    old = issue_operator(ids.operator, "OLD", expires_in=-5)
    config.add("operator: [")
    config.add(f'  "{old}"', "inline")
    config.add("]")
    config.add(f"system_account: {ids.key('SYS')}", "system_account")
    config.add("resolver: MEMORY")
    config.add(f'resolver_preload {{ {ids.key("A")}: "{ids.account_jwt("A")}" }}')
    result = check(config.write())
    assert result.returncode == 1
    errors = result.stderr.splitlines()
    assert errors[0].startswith(config.at("inline", 3)), errors
    assert 'operator "OLD"' in errors[0] and "claim is expired" in errors[0]
    assert errors[1].startswith(config.at("system_account")), errors
    assert "Can't set system account" in errors[1]


def test_strict_operator_does_not_trust_its_own_key(ids: Identities) -> None:
    strict = issue_operator(
        ids.operator,
        "OP",
        signing_keys=[ids.operator_signing.public_key],
        system_account=ids.key("SYS"),
        strict_signing_key_usage=True,
    )
    config = Config(ids.tmp / "strict.conf")
    base(ids, config, operator=strict)
    config.add("resolver_preload {")
    sys_jwt = ids.account_jwt("SYS", signer=ids.operator_signing)
    config.add(f'  {ids.key("SYS")}: "{sys_jwt}"')
    config.add(f'  {ids.key("A")}: "{ids.account_jwt("A")}"', "own-key")
    config.add("}")
    result = check(config.write())
    assert result.returncode == 1
    errors = result.stderr.splitlines()
    assert len(errors) == 2 and errors[0].startswith(config.at("own-key", 3)), errors
    assert f"issued by {ids.operator.public_key}" in errors[0]

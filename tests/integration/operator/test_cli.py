"""``jetgate jwt ...`` makes identities a gateway accepts: nats-py with the creds, MQTT with the bearer JWT."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.auth.jwt import decode
from gateway.cli import main
from gateway.options import build_options
from gateway.server import Gateway
from tests.confmerge import load_merged
from tests.integration.auth.conftest import gateway_config
from tests.integration.auth.helpers import (
    NOT_AUTHORIZED,
    SUCCESS,
    mqtt_connack,
    nats_accepted,
    nats_refusal,
)

pytestmark = pytest.mark.integration


def jwt(*args: str) -> None:
    """Run ``jetgate jwt ARGS`` in-process; it must succeed."""
    assert main(["jwt", *args]) == 0


async def test_cli_identities_work_end_to_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = tmp_path / "ids"
    out = ["--out", str(ids)]
    jwt("operator", "--name", "OP", *out)
    jwt("account", "--name", "SYS", "--operator", str(ids / "OP.nk"), *out)
    sys_key = (ids / "SYS.jwt").read_text().strip()
    sys_pub = decode(sys_key).subject
    jwt("operator", "--name", "OP", "--system-account", sys_pub, *out)  # re-issued, same key
    jwt("account", "--name", "APP", "--operator", str(ids / "OP.nk"), "--signing-key", *out)
    jwt(
        "user",
        "--name",
        "svc",
        "--account",
        str(ids / "APP.nk"),
        "--pub-allow",
        "app.>",
        "--sub-allow",
        "app.>",
        "--sub-allow",
        "_INBOX.>",
        *out,
    )
    jwt(
        "user",
        "--name",
        "dev",
        "--account",
        str(ids / "APP.nk"),
        "--signer",
        str(ids / "APP-sk.nk"),
        "--bearer",
        "--conn-type",
        "MQTT",
        "--expiry",
        "1h",
        *out,
    )
    jwt("user", "--name", "nosig", "--account", str(ids / "APP.nk"), *out)
    capsys.readouterr()

    assert (ids / "svc.creds").stat().st_mode & 0o777 == 0o600
    dev = decode((ids / "dev.jwt").read_text(), "user")
    assert dev.nats["bearer_token"] is True
    assert dev.nats["allowed_connection_types"] == ["MQTT"]
    assert dev.nats["issuer_account"] == decode((ids / "APP.jwt").read_text()).subject
    assert dev.expires > 0

    app = decode((ids / "APP.jwt").read_text())
    store = tmp_path / "store"
    store.mkdir()
    config = (
        f'operator: "{ids / "OP.jwt"}"\n'
        f"system_account: {sys_pub}\n"
        "resolver: MEMORY\n"
        f'resolver_preload {{\n  {sys_pub}: "{sys_key}"\n'
        f'  {app.subject}: "{(ids / "APP.jwt").read_text().strip()}"\n}}\n'
    )
    gateway = Gateway(build_options(load_merged(gateway_config(store), config)))
    await gateway.start()
    try:
        assert await nats_accepted(gateway, user_credentials=str(ids / "svc.creds"))
        assert (
            await mqtt_connack(gateway, 5, "dev", (ids / "dev.jwt").read_text().strip()) == SUCCESS
        )
        # MQTT-only: refused over NATS; not bearer: refused over MQTT.
        assert "Authorization Violation" in await nats_refusal(
            gateway, user_credentials=str(ids / "dev.creds")
        )
        nosig = (ids / "nosig.jwt").read_text().strip()
        assert await mqtt_connack(gateway, 5, "dev", nosig) == NOT_AUTHORIZED
    finally:
        await gateway.stop()


def test_revoke_reissues_the_account_under_the_same_key(tmp_path: Path) -> None:
    out = ["--out", str(tmp_path)]
    jwt("operator", "--name", "OP", *out)
    jwt("account", "--name", "A", "--operator", str(tmp_path / "OP.nk"), *out)
    before = decode((tmp_path / "A.jwt").read_text())
    jwt("user", "--name", "u", "--account", str(tmp_path / "A.nk"), *out)
    user = decode((tmp_path / "u.jwt").read_text())
    jwt(
        "account",
        "--name",
        "A",
        "--operator",
        str(tmp_path / "OP.nk"),
        "--revoke",
        f"{user.subject}@{user.issued_at}",
        *out,
    )
    after = decode((tmp_path / "A.jwt").read_text())
    assert after.subject == before.subject
    assert after.nats["revocations"] == {user.subject: user.issued_at}


def test_decode_and_errors_through_the_entry_point(tmp_path: Path) -> None:
    run = [sys.executable, "-m", "gateway", "jwt"]
    made = subprocess.run(
        [*run, "operator", "--name", "OP", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert made.returncode == 0, made.stderr
    assert "operator OP: O" in made.stdout
    shown = subprocess.run(
        [*run, "decode", str(tmp_path / "OP.jwt")],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["nats"]["type"] == "operator"
    (tmp_path / "bad.jwt").write_text("eyJhbGciOiJub25lIn0.e30.")
    bad = subprocess.run(
        [*run, "decode", str(tmp_path / "bad.jwt")],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert bad.returncode == 1
    assert "jetgate jwt:" in bad.stderr
    wrong = subprocess.run(
        [
            *run,
            "account",
            "--name",
            "X",
            "--operator",
            str(tmp_path / "OP.jwt"),
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert wrong.returncode == 1


def test_limit_flags_write_the_jwt_limits(tmp_path: Path) -> None:
    out = ["--out", str(tmp_path)]
    jwt("operator", "--name", "OP", *out)
    jwt("account", "--name", "A", "--operator", str(tmp_path / "OP.nk"), "--max-subs", "7", *out)
    jwt("user", "--name", "u", "--account", str(tmp_path / "A.nk"), "--max-payload", "512", *out)
    account = decode((tmp_path / "A.jwt").read_text().strip())
    assert account.nats["limits"]["subs"] == 7 and account.nats["limits"]["payload"] == -1
    user = decode((tmp_path / "u.jwt").read_text().strip())
    assert (user.nats["subs"], user.nats["payload"], user.nats["data"]) == (-1, 512, -1)

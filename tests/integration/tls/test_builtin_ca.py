"""The built-in CA end to end: ``jetgate ca`` init/client/list/revoke, the auto broker certificate."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.tls.ca import SERVER_CERT, SERVER_KEY
from tests.integration.mqtt.helpers import PahoClient
from tests.integration.tls.conftest import StartGateway

pytestmark = pytest.mark.integration


def owner_only(path: Path) -> bool:
    return stat.S_IMODE(path.stat().st_mode) == 0o600


async def test_init_issue_connect_and_revoke(
    start_gateway: StartGateway, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca_dir, bundle = tmp_path / "ca", tmp_path / "bundle"
    assert main(["ca", "--dir", str(ca_dir), "init"]) == 0
    assert main(["ca", "--dir", str(ca_dir), "client", "dev-42", "--bundle", str(bundle)]) == 0
    assert owner_only(ca_dir / "ca-key.pem") and owner_only(bundle / "client.key")
    capsys.readouterr()

    mqtt = f'tls {{ verify: true, map_field: cn, ca_dir: "{ca_dir}" }}'
    gateway = await start_gateway(mqtt=mqtt, extra='authorization { users = [{user: "dev-42"}] }')
    # The broker certificate was issued on this first start, its key owner-only.
    assert (ca_dir / SERVER_CERT).exists() and owner_only(ca_dir / SERVER_KEY)
    first_cert = (ca_dir / SERVER_CERT).read_bytes()

    client = PahoClient(gateway.mqtt.port, 5)  # type: ignore[union-attr]
    client.client.tls_set(
        ca_certs=str(bundle / "ca.crt"),
        certfile=str(bundle / "client.crt"),
        keyfile=str(bundle / "client.key"),
    )
    try:
        _, rc, _ = await client.connect()
        assert rc == 0
        assert main(["ca", "--dir", str(ca_dir), "list"]) == 0
        listing = capsys.readouterr().out
        assert "dev-42" in listing and "valid" in listing
        assert main(["ca", "--dir", str(ca_dir), "revoke", "dev-42"]) == 0
        # The running gateway re-reads revoked.txt and ends the session.
        await client.disconnected
        assert "REVOKED" in (main(["ca", "--dir", str(ca_dir), "list"]), capsys.readouterr().out)[1]
    finally:
        await client.stop()
    await gateway.stop()

    # A second start reuses the broker certificate.
    await start_gateway(mqtt=mqtt)
    assert (ca_dir / SERVER_CERT).read_bytes() == first_cert


async def test_a_tls_block_without_files_creates_the_ca_under_the_store_dir(
    start_gateway: StartGateway, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="jetgate.tls")
    gateway = await start_gateway(mqtt="tls { }")
    ca_cert = tmp_path / "store0" / "ca" / "ca-cert.pem"
    assert ca_cert.exists()
    assert any(str(ca_cert) in r.getMessage() for r in caplog.records)  # the log says where
    assert all("PRIVATE KEY" not in r.getMessage() for r in caplog.records)
    client = PahoClient(gateway.mqtt.port, 4)  # type: ignore[union-attr]
    client.client.tls_set(ca_certs=str(ca_cert))  # no client certificate needed: verify is off
    try:
        _, rc, _ = await client.connect()
        assert rc == 0
    finally:
        await client.stop()


def test_ca_commands_refuse_what_they_cannot_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca_dir = str(tmp_path / "ca")
    assert main(["ca", "--dir", ca_dir, "client", "x"]) == 1  # no CA yet
    assert "jetgate ca init" in capsys.readouterr().err
    assert main(["ca", "--dir", ca_dir, "init"]) == 0
    assert main(["ca", "--dir", ca_dir, "init"]) == 1  # never overwrites a CA
    assert main(["ca", "--dir", ca_dir, "revoke", "nobody"]) == 1
    assert main(["ca", "--dir", ca_dir, "server", "broker.example", "10.0.0.7"]) == 0
    assert "broker certificate" in capsys.readouterr().out

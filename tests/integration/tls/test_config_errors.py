"""Certificate files are read at configuration time: each mistake is a ConfigError at its key."""

from __future__ import annotations

from pathlib import Path

import pytest

from conf import ConfigErrors, loads
from gateway.cli import main
from gateway.options import build_options
from gateway.tls.context import check_options
from tests.integration.tls.pki import Pki


def errors_of(text: str) -> list[str]:
    with pytest.raises(ConfigErrors) as info:
        check_options(build_options(loads(text, "t.conf")))
    return [str(e) for e in info.value.errors]


def test_a_key_that_does_not_match_its_certificate(pki: Pki) -> None:
    text = f'mqtt {{\n  tls {{\n    cert_file: "{pki.server.cert}"\n    key_file: "{pki.stray_key}"\n  }}\n}}'
    assert errors_of(text) == [
        f't.conf:4:5: key_file "{pki.stray_key}" does not match the certificate in '
        f'"{pki.server.cert}"'
    ]


def test_an_expired_broker_certificate(pki: Pki) -> None:
    cert, key = pki.expired_server.cert, pki.expired_server.key
    (message,) = errors_of(f'tls {{ cert_file: "{cert}", key_file: "{key}" }}')
    assert message.startswith(f't.conf:1:7: the certificate in cert_file "{cert}" expired on ')


def test_files_without_pem_content(pki: Pki, tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    text = (
        f'websocket {{ port: 8443, tls {{ cert_file: "{junk}", key_file: "{pki.server.key}", '
        f'ca_file: "{junk}" }} }}'
    )
    ca_column = text.index("ca_file") + 1
    assert errors_of(text) == [
        f't.conf:1:31: cert_file "{junk}" holds no PEM certificate',
        f't.conf:1:{ca_column}: ca_file "{junk}" holds no PEM certificate',
    ]


def test_jetgate_check_reports_the_position(
    pki: Pki, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "gw.conf"
    conf.write_text(
        f'mqtt {{ tls {{ cert_file: "{pki.server.cert}", key_file: "{pki.stray_key}" }} }}'
    )
    assert main(["-t", "-c", str(conf)]) == 1
    err = capsys.readouterr().err
    assert f"{conf}:1:" in err and "does not match" in err
    conf.write_text(
        f'mqtt {{ tls {{ cert_file: "{pki.server.cert}", key_file: "{pki.server.key}" }} }}'
    )
    assert main(["-t", "-c", str(conf)]) == 0

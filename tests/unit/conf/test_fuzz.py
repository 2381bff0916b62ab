"""Fuzzing ``conf.loads``: any text is accepted, or rejected with a positioned ``ConfigError``.

Includes are resolved in an empty directory and the environment is empty,
so the fuzzer reads no real files or variables.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import conf

VALID = """\
# A realistic configuration with every construct.
port: 4222
listen = 0.0.0.0:4222
max_payload = 1MB
ping_interval = "2m"
debug = yes
ratio = 0.75
since = 2016-05-04T18:53:41Z
mqtt_perms = { publish = { allow = ["sensors.>", 'cmd.*'] }, subscribe = [a, b,] }
authorization {
  timeout: 1.5
  users = [
    { user: dev1, password: $2a$11$ooo, permissions: $mqtt_perms }  // bcrypt
    { user: "dev 2", password: "p\\x41ss\\n", permissions: $mqtt_perms }
  ]
}
banner (
  hello ( world )
)
"quoted key": [1, 2k, -3, [4], {x: 5}]
"""

# Characters that matter to the grammar, so mutations hit the interesting paths.
SIGNIFICANT = st.sampled_from([*"{}[]()'\"\\$#/=:;, \t\n\r-.0123456789kKmBiexTZ", "include "])


@pytest.fixture(scope="module")
def empty_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def accepted_or_config_error(text: str, where: Path) -> None:
    try:
        result = conf.loads(text, path=str(where / "fuzz.conf"), env={})
    except conf.ConfigError as err:
        assert err.line >= 1 and err.column >= 1
        assert str(err).startswith(f"{err.file}:{err.line}:{err.column}: ")
    else:
        assert isinstance(result, conf.ConfMap)


def test_valid_config_parses(empty_dir: Path) -> None:
    result = conf.loads(VALID, path=str(empty_dir / "fuzz.conf"), env={})
    users = result["authorization"]["users"]
    assert [u["user"] for u in users] == ["dev1", "dev 2"]
    assert users[1]["password"] == "pAss\n"
    assert result["banner"] == "\n  hello ( world )\n"
    assert result["quoted key"] == [1, 2000, -3, [4], {"x": 5}]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters()))
def test_random_text(empty_dir: Path, text: str) -> None:
    accepted_or_config_error(text, empty_dir)


@settings(max_examples=300, deadline=None)
@given(st.lists(SIGNIFICANT, max_size=40).map("".join))
def test_random_significant_characters(empty_dir: Path, text: str) -> None:
    accepted_or_config_error(text, empty_dir)


EDITS = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=len(VALID)),
        st.integers(min_value=0, max_value=3),
        st.one_of(SIGNIFICANT, st.characters()),
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=300, deadline=None)
@given(EDITS)
def test_mutated_valid_config(empty_dir: Path, edits: list[tuple[int, int, str]]) -> None:
    text = VALID
    for at, removed, inserted in edits:
        at = min(at, len(text))
        text = text[:at] + inserted + text[at + removed :]
    accepted_or_config_error(text, empty_dir)

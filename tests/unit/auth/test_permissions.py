"""Permissions on NATS subjects, as the NATS server checks them (nats-mqtt.md section 6)."""

from __future__ import annotations

import pytest

from gateway.auth.permissions import Permissions, ResponsePermits, is_subset
from gateway.options.model import Permissions as PermissionOptions
from gateway.options.model import ResponsePermission, SubjectPermission


def perms(
    pub_allow: tuple[str, ...] | None = None,
    pub_deny: tuple[str, ...] = (),
    sub_allow: tuple[str, ...] | None = None,
    sub_deny: tuple[str, ...] = (),
) -> Permissions:
    return Permissions(
        PermissionOptions(
            publish=SubjectPermission(pub_allow, pub_deny),
            subscribe=SubjectPermission(sub_allow, sub_deny),
        )
    )


@pytest.mark.parametrize(
    "filter_, of, expected",
    [
        ("foo.bar", "foo.bar", True),
        ("foo.*", "foo.>", True),
        ("foo.*.*", "foo.>", True),
        ("foo.>", "foo.>", True),
        ("foo", "foo.>", False),
        ("foo.>", "foo.*", False),
        ("foo.*.*", "foo.*", False),
        ("foo.*", "foo.*", True),
        ("foo.bar", "foo.*", True),
        ("foo.*", "foo.bar", False),
        (">", ">", True),
        ("a.b.c", ">", True),
        ("a.b", "a.b.c", False),
    ],
)
def test_subset(filter_: str, of: str, expected: bool) -> None:
    assert is_subset(filter_, of) is expected


def test_no_permissions_allow_everything() -> None:
    p = Permissions(None)
    assert p.may_publish("anything.at.all")
    assert p.may_subscribe(">")
    assert p.may_deliver("x")
    assert not p.restricted


def test_publish_allow_and_deny() -> None:
    p = perms(pub_allow=("sensors.>", "baz"), pub_deny=("sensors.secret",))
    assert p.may_publish("sensors.a.b")
    assert p.may_publish("baz")
    assert not p.may_publish("sensors.secret")
    assert not p.may_publish("other")
    # Cached results stay right.
    assert not p.may_publish("sensors.secret")
    assert p.may_publish("sensors.a.b")


def test_publish_deny_only() -> None:
    p = perms(pub_deny=("admin.>",))
    assert p.may_publish("x.y")
    assert not p.may_publish("admin.reboot")


def test_subscribe_wildcards_follow_the_nats_server() -> None:
    # With allow foo.*: foo/+ is allowed, foo/*/* and foo/> are denied.
    p = perms(sub_allow=("foo.*",))
    assert p.may_subscribe("foo.*")
    assert p.may_subscribe("foo.bar")
    assert not p.may_subscribe("foo.*.*")
    assert not p.may_subscribe("foo.>")
    # x/# needs x.> and x: with only foo.> allowed, foo itself is refused.
    q = perms(sub_allow=("foo.>",))
    assert q.may_subscribe("foo.>")
    assert not q.may_subscribe("foo")


def test_wildcard_overlapping_a_deny_is_allowed_then_filtered_at_delivery() -> None:
    p = perms(sub_deny=("foo.secret",))
    assert p.may_subscribe("foo.*")
    assert not p.may_subscribe("foo.secret")
    assert not p.may_deliver("foo.secret")
    assert p.may_deliver("foo.public")


def test_wider_deny_refuses_narrower_wildcards() -> None:
    p = perms(sub_deny=("foo.>",))
    assert not p.may_subscribe("foo.*")
    assert not p.may_subscribe("foo.>")
    assert p.may_subscribe("bar.>")


def test_queue_entries_apply_to_their_group_only() -> None:
    p = perms(sub_allow=("jobs.* workers",))
    assert p.may_subscribe("jobs.x", "workers")
    assert not p.may_subscribe("jobs.x", "others")
    assert not p.may_subscribe("jobs.x")


def test_response_permits_count_and_expire() -> None:
    permits = ResponsePermits(max_msgs=2, expires=10)
    permits.grant("_INBOX.a", now=100.0)
    assert not permits.use("_INBOX.other", now=100.0)
    assert permits.use("_INBOX.a", now=101.0)
    assert permits.use("_INBOX.a", now=102.0)
    assert not permits.use("_INBOX.a", now=103.0)
    permits.grant("_INBOX.b", now=100.0)
    assert not permits.use("_INBOX.b", now=111.0)


def test_permissions_make_response_permits_only_when_configured() -> None:
    assert perms().new_response_permits() is None
    with_responses = Permissions(PermissionOptions(allow_responses=ResponsePermission(1, 5.0)))
    assert with_responses.new_response_permits() is not None

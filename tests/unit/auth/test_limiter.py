"""Rate limiting of authentication failures per address."""

from __future__ import annotations

from gateway.auth.limiter import FailureLimiter


def test_blocks_after_max_failures_within_the_window() -> None:
    limiter = FailureLimiter(max_failures=3, window=10, block=5)
    for t in (0.0, 1.0):
        limiter.failed("1.2.3.4", now=t)
        assert not limiter.blocked("1.2.3.4", now=t)
    limiter.failed("1.2.3.4", now=2.0)
    assert limiter.blocked("1.2.3.4", now=2.5)
    assert not limiter.blocked("5.6.7.8", now=2.5)  # per address
    assert limiter.total_failures == 3
    assert limiter.total_blocked == 1


def test_block_ends_after_the_block_time() -> None:
    limiter = FailureLimiter(max_failures=2, window=10, block=5)
    limiter.failed("a", now=0.0)
    limiter.failed("a", now=1.0)
    assert limiter.blocked("a", now=5.9)
    assert not limiter.blocked("a", now=6.1)


def test_old_failures_fall_out_of_the_window() -> None:
    limiter = FailureLimiter(max_failures=2, window=10, block=5)
    limiter.failed("a", now=0.0)
    limiter.failed("a", now=20.0)  # the first one is older than the window
    assert len(limiter._failures["a"]) == 1
    assert not limiter.blocked("a", now=20.5)


def test_success_resets_the_count() -> None:
    limiter = FailureLimiter(max_failures=2, window=10, block=5)
    limiter.failed("a", now=0.0)
    limiter.succeeded("a")
    limiter.failed("a", now=1.0)
    assert not limiter.blocked("a", now=1.5)

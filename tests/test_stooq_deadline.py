"""Stooq downloads: ``timeout`` bounds each attempt and ``deadline`` all retries and pauses together (the
scripted server of tests/test_cli.py on 127.0.0.1, whose ``busy.us`` always answers 503 and ``late.us`` too late)."""

from __future__ import annotations

import time

import pytest
from test_cli import _Stooq, stooq_url  # noqa: F401  (the module-scoped server fixture)

from rnnjax.data import stooq


def _hits(ticker: str) -> int:
    return sum(t == ticker for t, _ in _Stooq.hits)


def test_the_deadline_bounds_every_retry_and_pause(stooq_url):  # noqa: F811
    t0 = time.monotonic()
    with pytest.raises(stooq.StooqServerError, match=r"HTTP 503"):
        # without a deadline: 10 retries with pauses 0.2, 0.4, ..., capped at 120 s -- minutes
        stooq.download("busy.us", base_url=stooq_url, timeout=5, retries=10, backoff=0.2, deadline=1.0)
    took = time.monotonic() - t0
    assert took < 1.0 + 0.5  # the deadline, plus one request's round trip
    assert 3 <= _hits("busy.us") <= 4  # attempts at 0, 0.2, 0.6 s; the next pause (0.8 s) would pass 1 s


def test_each_attempt_is_bounded_by_the_timeout_and_the_message_states_both(stooq_url):  # noqa: F811
    t0 = time.monotonic()
    with pytest.raises(stooq.StooqTimeoutError) as err:
        stooq.download("late.us", base_url=stooq_url, timeout=0.3, retries=10, backoff=0.05, deadline=1.2)
    took = time.monotonic() - t0
    assert took < 1.2 + 0.3
    assert _hits("late.us") >= 2  # retried within the deadline
    assert "--timeout 0.3 s for each attempt" in str(err.value) and "--deadline 1.2 s" in str(err.value)

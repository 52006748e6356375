"""retry_wait: how long the archive asks to wait before a refused request is tried again."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from crawler.archive import retry_wait

NOW = datetime(2026, 12, 6, 3, 0, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    "retry_after, tries, wait",
    [
        ("1", 0, 1.0),
        ("120", 2, 120.0),
        (" 7 ", 0, 7.0),
        ("Sun, 06 Dec 2026 03:00:30 GMT", 0, 30.0),
        ("Sun, 06 Dec 2026 02:59:00 GMT", 0, 0.0),  # a date gone by: at once
        # None, or nothing sensible: a doubling backoff from 2 s.
        (None, 0, 2.0),
        (None, 2, 8.0),
        ("soon", 1, 4.0),
        ("-5", 0, 2.0),
    ],
)
def test_retry_wait(retry_after, tries, wait):
    assert retry_wait(retry_after, tries, now=NOW) == wait

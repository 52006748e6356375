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


@pytest.mark.parametrize("delay, expected", [(None, 1.0), ("0", 0.0), ("2.5", 2.5)])
def test_the_archive_has_a_download_slot_of_its_own(delay, expected):
    """One request at a time, THEORY_ARCHIVE_DELAY apart, whatever DOWNLOAD_DELAY and AutoThrottle do."""
    from scrapy.settings import Settings

    from crawler import settings as project_settings
    from crawler.archive import ARCHIVE_META, ARCHIVE_SLOT
    from crawler.spiders.theory import TheorySpider

    settings = Settings()
    settings.setmodule(project_settings)
    if delay is not None:
        settings.set("THEORY_ARCHIVE_DELAY", delay, priority="cmdline")
    TheorySpider.update_settings(settings)
    assert settings.getdict("DOWNLOAD_SLOTS")[ARCHIVE_SLOT] == {"concurrency": 1, "delay": expected, "jitter": 0}
    assert ARCHIVE_META["download_slot"] == ARCHIVE_SLOT and ARCHIVE_META["autothrottle_dont_adjust_delay"] is True

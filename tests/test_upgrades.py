"""Upgrades and clocks: a data dir written by an earlier release keeps working, and times in the state that
lie ahead of the clock are treated as now, with a warning."""

from __future__ import annotations

import shutil
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from jsonschema import Draft7Validator

from conftest import load_expected
from crawl_helpers import (
    ARTICLES,
    LISTING_PAGES,
    SECTIONS,
    assert_complete_once,
    assert_duplicates_recorded_once,
    crawl,
    whole_lines,
)
from crawler.pipelines import load_schema
from crawler.state import CrawlState

# articles.jsonl and state.sqlite3 as theory-crawler 38df66f (the release before the current-CMS work) left
# them after crawling a small copy of the legacy mirror; make.py beside them says how they were made.
OLD_DATA_DIR = Path(__file__).parent / "fixtures" / "old-data-dir"
CLOCK_WARNING = "ahead of this machine's clock"


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_a_data_dir_of_the_release_before_the_current_cms_keeps_working(serve_mirror, shared_site, tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    for name in ("articles.jsonl", "state.sqlite3"):
        shutil.copy(OLD_DATA_DIR / name, data_dir / name)
    old_lines = whole_lines(data_dir / ARTICLES)
    assert old_lines and not any("warc" in row for row in old_lines), "the fixture is not as the old release wrote it"
    expected = load_expected(shared_site)

    run = crawl(serve_mirror().url, data_dir)
    assert run.returncode == 0, run.stderr[-3000:]
    rows = whole_lines(data_dir / ARTICLES)
    assert rows[: len(old_lines)] == old_lines, "the old lines were changed"
    validator = Draft7Validator(load_schema())
    assert [row["article_id"] for row in rows if not validator.is_valid(row)] == []
    assert_complete_once(data_dir, expected)  # nothing written twice, nothing missing
    # The old release's dropped duplicates are in the state only: fetched again and recorded once.
    records = assert_duplicates_recorded_once(data_dir, expected)
    old_duplicates = {"141004073637222", "151005093458739", "151114095434739"}  # state.sqlite3 of the fixture
    assert old_duplicates <= {record["article_id"] for record in records}
    with sqlite3.connect(data_dir / "state.sqlite3") as db:
        dates = dict(db.execute("SELECT article_id, published_date FROM revisions"))
    db.close()
    assert {row["article_id"]: dates.get(row["article_id"]) for row in old_lines} == {
        row["article_id"]: row["published_date"] for row in old_lines
    }
    assert run.report["recovery"]["first_versions"] == len(old_lines)


def shift_state_times(data_dir: Path, delta: timedelta) -> None:
    """Move the times of the state by ``delta``: what a clock that ran ahead wrote, or the days that passed."""
    db = sqlite3.connect(data_dir / "state.sqlite3")
    with db:
        (walk,) = db.execute("SELECT value FROM meta WHERE key = 'last_full_walk'").fetchone()
        db.execute("UPDATE meta SET value = ? WHERE key = 'last_full_walk'", ((utc(walk) + delta).isoformat(),))
        rows = db.execute("SELECT article_id, updated_at FROM articles").fetchall()
        db.executemany("UPDATE articles SET updated_at = ? WHERE article_id = ?",
                       [((utc(at) + delta).isoformat(), article_id) for article_id, at in rows])
    db.close()


def last_full_walk(data_dir: Path) -> datetime:
    db = sqlite3.connect(data_dir / "state.sqlite3")
    try:
        return utc(db.execute("SELECT value FROM meta WHERE key = 'last_full_walk'").fetchone()[0])
    finally:
        db.close()


def test_a_last_full_walk_ahead_of_the_clock_warns_once_and_later_full_walks_come_when_due(serve_mirror, tmp_path):
    server = serve_mirror()
    data_dir = tmp_path / "data"
    assert crawl(server.url, data_dir, "revisit=0").returncode == 0
    shift_state_times(data_dir, timedelta(days=400))  # the first run's clock was 400 days ahead
    ahead = last_full_walk(data_dir)

    run = crawl(server.url, data_dir, "revisit=0")
    assert run.returncode == 0, run.stderr[-3000:]
    warnings = [line for line in run.stderr.splitlines() if CLOCK_WARNING in line]
    assert len(warnings) == 1 and " WARNING: " in warnings[0] and ahead.isoformat(timespec="seconds") in warnings[0], warnings
    assert set(run.report["future_times"]) == {"last_full_walk", "updated_at"}
    assert run.report["listing_pages"] == len(SECTIONS)  # the walk is taken as done now: not due yet
    assert last_full_walk(data_dir) <= datetime.now(timezone.utc)

    again = crawl(server.url, data_dir, "revisit=0")
    assert CLOCK_WARNING not in again.stderr and again.report["future_times"] == {}
    assert again.report["listing_pages"] == len(SECTIONS)

    shift_state_times(data_dir, timedelta(days=-8))  # THEORY_FULL_WALK_DAYS (7) have passed
    due = crawl(server.url, data_dir, "revisit=0")
    assert due.returncode == 0, due.stderr[-3000:]
    assert "a full walk is due every 7 days" in due.stderr and due.report["listing_pages"] == LISTING_PAGES
    assert CLOCK_WARNING not in due.stderr


@pytest.mark.parametrize("ahead", [timedelta(seconds=1), timedelta(days=400)])
def test_the_state_treats_times_ahead_of_now_as_now_and_leaves_the_others(tmp_path, ahead):
    now = datetime(2026, 12, 6, 3, 0, tzinfo=timezone.utc)
    state = CrawlState(tmp_path)
    try:
        for number, at in enumerate((now - timedelta(days=1), now, now + ahead)):
            state.db.execute(
                "INSERT INTO articles (article_id, url, section_id, status, updated_at) VALUES (?, ?, '241', 'written', ?)",
                (str(number), f"u{number}", at.isoformat()),
            )
            state.update_revision(str(number), checked_at=at.isoformat())
        state.set_meta("last_full_walk", (now + ahead).isoformat())
        assert state.distrust_future_times(now) == {
            "last_full_walk": (now + ahead).isoformat(), "updated_at": 1, "checked_at": 1,
        }
        assert state.last_full_walk() == now
        expected = [(now - timedelta(days=1)).isoformat(), now.isoformat(), now.isoformat()]
        assert [at for (at,) in state.db.execute("SELECT updated_at FROM articles ORDER BY article_id")] == expected
        assert [at for (at,) in state.db.execute("SELECT checked_at FROM revisions ORDER BY article_id")] == expected
        assert state.distrust_future_times(now) == {}
    finally:
        state.close()

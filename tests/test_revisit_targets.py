"""CrawlState.revisit_targets: which written articles a run revisits, on a real state in a temporary dir."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from crawler.state import CrawlState

def ago(hours: float) -> str:
    return (datetime.now(timezone.utc) - timedelta(hours=hours)).isoformat(timespec="seconds")


@pytest.fixture
def state(tmp_path):
    state = CrawlState(tmp_path)
    yield state
    state.close()


def written(
    state: CrawlState, number: int, written_hours_ago: float, checked_hours_ago: float | None = None, source: str = "live",
    **revision,
):
    article_id = f"19010100000000{number}"
    state.mark_written(article_id, f"http://theory.example/241/201901/01/{article_id}.shtml", "241", f"hash{number}", source)
    state.db.execute("UPDATE articles SET updated_at = ? WHERE article_id = ?", (ago(written_hours_ago), article_id))
    state.record_first_version(article_id, "2019-01-01", 1, f"hash{number}")
    if checked_hours_ago is not None:
        revision["checked_at"] = ago(checked_hours_ago)
    if revision:
        state.update_revision(article_id, **revision)
    return article_id


def targets(
    state: CrawlState, min_hours: float | None, recent_since: str = "2000-01-01", budget: int = 100, archived: bool = True,
) -> set[str]:
    seen_before = None if min_hours is None else ago(min_hours)
    return {
        article_id
        for article_id, _, _ in state.revisit_targets(recent_since, budget, seen_before=seen_before, archived=archived)
    }


@pytest.mark.parametrize("recent_since", ["2000-01-01", "2100-01-01"], ids=["recent", "budget"])
def test_articles_written_or_checked_within_the_minimum_hours_are_left_for_later(state, recent_since):
    fresh = written(state, 1, written_hours_ago=1)
    checked = written(state, 2, written_hours_ago=100, checked_hours_ago=3)
    due = written(state, 3, written_hours_ago=100, checked_hours_ago=30)
    never_checked = written(state, 4, written_hours_ago=21)
    assert targets(state, 20, recent_since) == {due, never_checked}
    assert targets(state, 0, recent_since) == {fresh, checked, due, never_checked}
    assert targets(state, None, recent_since) == {fresh, checked, due, never_checked}


def test_an_article_on_its_way_to_a_removal_is_revisited_however_recent(state):
    failing = written(state, 1, written_hours_ago=100, checked_hours_ago=1, failing_runs=1, failing_since=ago(1))
    removed = written(state, 2, written_hours_ago=100, checked_hours_ago=1, failing_runs=2, removed=1)
    assert targets(state, 20) == {failing}
    assert removed not in targets(state, 20)


@pytest.mark.parametrize("recent_since", ["2000-01-01", "2100-01-01"], ids=["recent", "budget"])
def test_articles_read_from_an_archive_are_left_out_when_asked_and_take_no_part_of_the_budget(state, recent_since):
    archived = written(state, 1, written_hours_ago=100, source="archive")  # never checked, first written: first in line
    failing = written(state, 2, written_hours_ago=100, checked_hours_ago=1, source="archive", failing_runs=1)
    live = written(state, 3, written_hours_ago=100, checked_hours_ago=50)
    before_sources = written(state, 4, written_hours_ago=100, checked_hours_ago=60)
    state.db.execute("UPDATE articles SET written_from = NULL WHERE article_id = ?", (before_sources,))
    assert targets(state, 20, recent_since) == {archived, failing, live, before_sources}
    # Not even one on its way to a removal: that way was set by a host that may never have served it.
    assert targets(state, 20, recent_since, archived=False) == {live, before_sources}
    if recent_since == "2100-01-01":  # none is recent: the budget decides, and the archive's take none of it
        assert targets(state, 20, recent_since, budget=1) == {failing, archived}
        assert targets(state, 20, recent_since, budget=1, archived=False) == {before_sources}
    assert state.written_from_archive() == [
        f"http://theory.example/241/201901/01/{article_id}.shtml" for article_id in (archived, failing)
    ]
    assert state.written_from_archive(["242"]) == []

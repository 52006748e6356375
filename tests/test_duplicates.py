"""Content duplicates are recorded in duplicates.jsonl, exactly once, with the article kept: on both sites
(each mirror served by its own serve.py), across reruns and after a SIGKILL."""

from __future__ import annotations

import pytest

from conftest import load_expected
from crawl_helpers import (
    DUPLICATES,
    SLOW_CRAWL,
    SLOW_SERVER,
    assert_duplicates_recorded_once,
    crawl,
    line_count,
    report_files,
    start_crawl,
    wait_for_lines,
)


@pytest.fixture
def expected(shared_site, shared_current_site) -> list[dict]:
    rows = load_expected(shared_site) + load_expected(shared_current_site)
    return rows


def content_duplicates(expected: list[dict]) -> int:
    # Both mirrors' rows with a duplicate_of: the in-site copies and the current site's republished legacy articles.
    return sum(1 for row in expected if row["duplicate_of"])


def test_every_content_duplicate_of_both_sites_is_recorded_once_and_a_rerun_adds_none(
    serve_mirror, shared_site, shared_current_site, expected, tmp_path
):
    legacy = serve_mirror(shared_site / "www")
    current = serve_mirror(shared_current_site / "www")
    data_dir = tmp_path / "data"
    first = crawl(legacy.url, data_dir, THEORY_CHANNEL_URL=current.url + "theory/")
    assert first.returncode == 0, first.stderr[-3000:]
    records = assert_duplicates_recorded_once(data_dir, expected)
    assert len(records) == content_duplicates(expected) == first.report["duplicates_recorded"]
    by_site = {site: sum(1 for record in records if ("/c/" in record["url"]) == (site == "current")) for site in ("legacy", "current")}
    print(f"duplicates recorded: {len(records)} ({by_site})")
    before = (data_dir / DUPLICATES).read_bytes()

    rerun = crawl(legacy.url, data_dir, "full=1", THEORY_CHANNEL_URL=current.url + "theory/")
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert (data_dir / DUPLICATES).read_bytes() == before
    assert rerun.report["duplicates_recorded"] == 0


def test_a_killed_run_then_a_rerun_records_every_content_duplicate_once(
    serve_mirror, shared_site, shared_current_site, expected, tmp_path
):
    legacy = serve_mirror(shared_site / "www", *SLOW_SERVER)
    current = serve_mirror(shared_current_site / "www", *SLOW_SERVER)
    data_dir = tmp_path / "data"
    # Syncs every 40 items: the kill leaves records the state has committed, and records only the file knows.
    settings = {**SLOW_CRAWL, "THEORY_SYNC_ITEMS": "40", "THEORY_CHANNEL_URL": current.url + "theory/"}
    process = start_crawl(legacy.url, data_dir, **settings)
    wait_for_lines(process, data_dir / DUPLICATES, 2, timeout=60)
    process.kill()
    process.wait(timeout=10)
    killed_with = line_count(data_dir / DUPLICATES)
    assert killed_with < content_duplicates(expected), "the crawl recorded every duplicate before the kill"
    assert report_files(data_dir) == [], "a killed run cannot have written its report"

    rerun = crawl(legacy.url, data_dir, **settings)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    records = assert_duplicates_recorded_once(data_dir, expected)
    print(
        f"killed with {killed_with} duplicates recorded; the rerun replayed"
        f" {rerun.report['recovery'].get('replayed_duplicates', 0)} and recorded {rerun.report['duplicates_recorded']}"
    )
    assert killed_with + rerun.report["duplicates_recorded"] == len(records) == content_duplicates(expected)

"""End to end, as cron runs it: incremental reruns, crashes, the lock, alarms and faults.

Every test crawls its own copy of the shared mirror's ``www`` (so it may change pages), served by the
mirror's ``serve.py``, with the real ``python -m scrapy crawl theory`` in a subprocess.

A test that reruns the crawl keeps one server, on one port, for all its runs, as the live host would
(what a changed base URL does is the subject of test_owed_articles_are_fetched_from_the_current_base_url).
"""

from __future__ import annotations

import json
import signal
import sqlite3
import time
import urllib.request

import pytest

from conftest import load_expected, run_crawl
from crawl_helpers import (
    ARTICLES,
    LISTING_PAGES,
    REPORT_KEYS,
    SECTIONS,
    SLOW_CRAWL,
    SLOW_SERVER,
    UNIQUE_ARTICLES,
    add_article,
    assert_complete_once,
    crawl,
    empty_listing,
    groups_of,
    line_count,
    log_of,
    own_report_path,
    report_files,
    single_page_originals,
    start_crawl,
    state_rows,
    wait_for_lines,
    whole_lines,
)

# --- fixtures --------------------------------------------------------------------------------



@pytest.fixture
def expected(shared_site) -> list[dict]:
    rows = load_expected(shared_site)
    assert len(set(groups_of(rows).values())) == UNIQUE_ARTICLES
    return rows



# --- 1. incremental ----------------------------------------------------------------------------


def test_unchanged_site_second_run_fetches_first_listing_pages_only(serve_mirror, www, expected, tmp_path):
    data_dir = tmp_path / "data"
    server = serve_mirror(www)
    first = crawl(server.url, data_dir)
    assert first.returncode == 0, first.stderr[-3000:]
    assert_complete_once(data_dir, expected)
    before = (data_dir / ARTICLES).read_bytes()
    server.stop()

    server = serve_mirror(www)
    # The incremental run alone: revisits of written articles are measured in test_revisits.py.
    second = crawl(server.url, data_dir, "revisit=0")
    served = server.stop()
    assert second.returncode == 0, second.stderr[-3000:]
    assert (data_dir / ARTICLES).read_bytes() == before, "the unchanged site's second run wrote something"
    report = second.report
    print(
        f"unchanged second run: {served['requests']} requests served, report {report['requests']} requests,"
        f" {report['listing_pages']} listing pages, {second.seconds:.2f} s wall, {report['duration_seconds']} s crawl"
    )
    # robots.txt, the home page and the first listing page of each section.
    assert served["requests"] <= len(SECTIONS) + 2, served
    assert report["requests"] <= len(SECTIONS) + 2
    assert report["listing_pages"] == len(SECTIONS)
    assert report["article_pages"] == 0 and report["written"] == 0
    assert report["exit_status"] == 0 and report["finish_reason"] == "finished"

    server = serve_mirror(www)
    full = crawl(server.url, data_dir, "full=1", "revisit=0")
    served = server.stop()
    assert full.returncode == 0, full.stderr[-3000:]
    assert (data_dir / ARTICLES).read_bytes() == before, "full=1 on the unchanged site wrote something"
    assert full.report["listing_pages"] == LISTING_PAGES
    assert full.report["written"] == 0
    assert served["requests"] == LISTING_PAGES + 2, served


# --- 2. new articles ---------------------------------------------------------------------------


def test_next_run_writes_exactly_the_new_articles(serve_mirror, www, expected, tmp_path):
    data_dir = tmp_path / "data"
    server = serve_mirror(www)
    first = crawl(server.url, data_dir)
    assert first.returncode == 0, first.stderr[-3000:]
    before = (data_dir / ARTICLES).read_bytes()
    known_ids = {row["article_id"] for row in expected}

    added = []
    for number, section in enumerate(["241", "253"], 1):
        original = single_page_originals(expected, section)[0]
        new_id = original["article_id"][:6] + f"23595{number}999"
        assert new_id not in known_ids
        added.append(add_article(www, original, new_id, f"新增测试文章{number}："))

    second = crawl(server.url, data_dir)
    served = server.stop()
    assert second.returncode == 0, second.stderr[-3000:]
    after = (data_dir / ARTICLES).read_bytes()
    assert after.startswith(before), "earlier lines changed"
    new_rows = [json.loads(line) for line in after[len(before):].splitlines()]
    assert sorted(row["article_id"] for row in new_rows) == sorted(a["article_id"] for a in added)
    for row in new_rows:
        wanted = next(a for a in added if a["article_id"] == row["article_id"])
        assert row["url"].endswith(wanted["url"])
        assert row["title"] == wanted["title"]
        assert row["body"].split("\n")[0] == wanted["first_paragraph"]
    report = second.report
    assert report["written"] == 2 and report["duplicates"] == {"url": 0, "content": 0}
    print(f"run with 2 new articles: {report['requests']} requests, {report['listing_pages']} listing pages")


def test_an_article_inserted_deep_in_a_listing_is_found_by_the_periodic_full_walk(serve_mirror, www, expected, tmp_path):
    data_dir = tmp_path / "data"
    server = serve_mirror(www)
    assert crawl(server.url, data_dir).returncode == 0
    original = single_page_originals(expected, "241")[-1]
    added = add_article(www, original, original["article_id"][:6] + "235959888", "补录：", listing_page=3)

    incremental = crawl(server.url, data_dir, "revisit=0")  # stops at the first listing page: all known there
    assert incremental.returncode == 0 and incremental.report["written"] == 0
    assert incremental.report["requests"] <= len(SECTIONS) + 2

    with sqlite3.connect(data_dir / "state.sqlite3") as db:  # THEORY_FULL_WALK_DAYS (7) have passed
        db.execute("UPDATE meta SET value = '2000-01-01T00:00:00+00:00' WHERE key = 'last_full_walk'")
    full = crawl(server.url, data_dir, "revisit=0")
    assert full.returncode == 0, full.stderr[-3000:]
    assert full.report["listing_pages"] == LISTING_PAGES and full.report["written"] == 1
    assert "a full walk is due every 7 days" in full.stderr
    assert whole_lines(data_dir / ARTICLES)[-1]["article_id"] == added["article_id"]

    after = crawl(server.url, data_dir, "revisit=0")  # the full walk was recorded: back to incremental runs
    assert after.report["requests"] <= len(SECTIONS) + 2


# --- 3. crash (SIGKILL) and rerun ------------------------------------------------------------


@pytest.mark.parametrize(
    "kill_after_lines, sync_items",
    # Default syncs (200 items or 2 s) and frequent ones: a kill leaves lines the state has
    # committed and lines only the file knows, in various proportions.
    [(1, None), (120, "40"), (250, None)],
    ids=["very-early", "mid-way", "late"],
)
def test_killed_run_then_rerun_writes_every_article_once(
    serve_mirror, www, expected, tmp_path, kill_after_lines, sync_items
):
    data_dir = tmp_path / "data"
    server = serve_mirror(www, *SLOW_SERVER)
    settings = {**SLOW_CRAWL, **({"THEORY_SYNC_ITEMS": sync_items} if sync_items else {})}
    process = start_crawl(server.url, data_dir, **settings)
    lines = wait_for_lines(process, data_dir / ARTICLES, kill_after_lines)
    process.kill()
    process.wait(timeout=10)
    killed_with = line_count(data_dir / ARTICLES)
    assert killed_with < UNIQUE_ARTICLES, "the crawl finished before the kill"
    whole_lines(data_dir / ARTICLES)
    assert report_files(data_dir) == [], "a killed run cannot have written its report"
    db = sqlite3.connect(data_dir / "state.sqlite3")
    try:  # discovered by the killed run and not written: owed to the rerun, which counts them apart
        (owed,) = db.execute("SELECT COUNT(*) FROM articles WHERE status IN ('pending', 'claimed')").fetchone()
    finally:
        db.close()

    rerun = crawl(server.url, data_dir, **settings)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    rows = assert_complete_once(data_dir, expected)
    report = rerun.report
    print(
        f"killed at {lines}+ lines (file had {killed_with}); rerun wrote {report['written']},"
        f" recovered {report['recovered_lines']} lines, total {len(rows)} articles"
    )
    assert killed_with + report["written"] == len(rows) == UNIQUE_ARTICLES
    assert report["exit_status"] == 0
    # "discovered" is new this run, "owed" what earlier runs left: together they cover what was written.
    assert report["articles_owed"] <= owed  # less the lines the rerun recovered: written, only not recorded
    assert report["articles_discovered"] + report["articles_owed"] >= report["written"]


# --- 4. the lock -------------------------------------------------------------------------------


def test_second_crawl_on_the_same_data_dir_exits_at_once(serve_mirror, www, expected, tmp_path):
    data_dir = tmp_path / "data"
    server = serve_mirror(www, *SLOW_SERVER)
    running = start_crawl(server.url, data_dir, **SLOW_CRAWL)
    wait_for_lines(running, data_dir / ARTICLES, 1)

    started = time.monotonic()
    second = run_crawl(server.url, data_dir, timeout=60, **SLOW_CRAWL)
    seconds = time.monotonic() - started
    assert running.poll() is None, "the first crawl ended before the second one was refused"
    print(f"locked out after {seconds:.2f} s: {second.stderr.strip().splitlines()[-1:]}")
    assert second.returncode == 3, second.stderr[-3000:]
    # "At once" is that it stops before the spider opens (no timed assertion: a loaded machine is slow).
    assert "another crawl is running" in second.stderr
    assert second.stderr.strip().splitlines()[-1].startswith("theory-crawler: another crawl is running")
    assert f"pid {running.pid}, started 20" in second.stderr  # the holder, so that an operator can find it
    assert "Spider opened" not in second.stderr
    assert own_report_path(second.stderr) is None
    assert report_files(data_dir) == [], "the refused run wrote a run report"

    assert running.wait(timeout=60) == 0, log_of(running)[-3000:]
    assert len(report_files(data_dir)) == 1
    assert_complete_once(data_dir, expected)


# --- 5. alarms -----------------------------------------------------------------------------------


@pytest.mark.parametrize("when", ["first-run", "after-a-good-run"])
def test_listing_page_without_article_links_is_a_layout_alarm(serve_mirror, www, tmp_path, when):
    data_dir = tmp_path / "data"
    server = serve_mirror(www)
    if when == "after-a-good-run":
        good = crawl(server.url, data_dir)
        assert good.returncode == 0, good.stderr[-3000:]
    empty_listing(www, "/242/242.shtml")
    run = crawl(server.url, data_dir)
    assert run.returncode == 5, run.stderr[-3000:]
    report = run.report
    assert report["exit_status"] == 5
    assert report["layout_alarms"] == {"listing_without_links": 1}
    assert "layout changed" in run.stderr


def test_nothing_fetched_exits_4(serve_mirror, tmp_path):
    server = serve_mirror()
    url = server.url
    urllib.request.urlopen(url + "robots.txt", timeout=10).read()  # it serves; now stop it
    server.stop()  # the port is closed now
    data_dir = tmp_path / "data"
    run = crawl(url, data_dir)
    assert run.returncode == 4, run.stderr[-3000:]
    report = run.report
    assert report["exit_status"] == 4 and report["start_failures"] == {"legacy": "connection_refused"}
    assert report["responses"] == 0 and report["written"] == 0
    assert line_count(data_dir / ARTICLES) == 0


# --- 6. faults -----------------------------------------------------------------------------------


def test_transient_500s_are_retried(serve_mirror, www, expected, tmp_path):
    multi_page = next(row for row in expected if row["page_count"] >= 3 and row["duplicate_of"] is None)
    singles = single_page_originals(expected, "251")
    faults = [
        "/",
        "/242/242_2.shtml",
        singles[0]["url"],
        singles[5]["url"],
        multi_page["url"][: -len(".shtml")] + "_2.shtml",
    ]
    fail_file = tmp_path / "fail-first.txt"
    fail_file.write_text("\n".join(faults) + "\n")
    data_dir = tmp_path / "data"
    server = serve_mirror(www, "--fail-first", str(fail_file))
    run = crawl(server.url, data_dir)
    served = server.stop()
    assert run.returncode == 0, run.stderr[-3000:]
    assert served["fail_first_unconsumed"] == [], served
    assert served["by_status"].get("500") == len(faults)
    assert_complete_once(data_dir, expected)
    report = run.report
    assert report["retries"] == len(faults)
    assert report["http_errors_by_status"] == {"500": len(faults)}
    assert report["article_failures"] == {} and report["listing_failures"] == {}
    assert report["exit_status"] == 0


def test_persistent_404_is_reported_retried_and_given_up(serve_mirror, www, expected, tmp_path):
    gone = single_page_originals(expected, "252")[3]
    (www / gone["url"].lstrip("/")).unlink()
    data_dir = tmp_path / "data"
    server = serve_mirror(www)
    max_attempts = 2  # THEORY_MAX_ATTEMPTS (default 3): one run fewer

    for attempt in range(1, max_attempts + 1):
        run = crawl(server.url, data_dir, THEORY_MAX_ATTEMPTS=str(max_attempts))
        assert run.returncode == 0, run.stderr[-3000:]
        report = run.report
        assert report["article_failures"] == {"http_404": 1}, (attempt, report)
        assert report["http_errors_by_status"] == {"404": 1}, (attempt, report)
        assert gone["url"] in run.stderr
        status, attempts, error = state_rows(data_dir, gone["article_id"])
        assert attempts == attempt and error == "http_404"
        assert status == ("failed" if attempt == max_attempts else "pending"), (attempt, status)
        assert_complete_once(data_dir, expected, missing={gone["article_id"]})

    after = crawl(server.url, data_dir, "revisit=0", THEORY_MAX_ATTEMPTS=str(max_attempts))
    served = server.stop()
    assert after.returncode == 0
    assert after.report["article_failures"] == {} and after.report["requests"] <= len(SECTIONS) + 2
    assert served["repeated_paths"].get(gone["url"]) == max_attempts, served["repeated_paths"]
    assert state_rows(data_dir, gone["article_id"])[:2] == ("failed", max_attempts)


def test_timeout_is_reported_and_the_article_stays_owed(serve_mirror, www, expected, tmp_path):
    slow = single_page_originals(expected, "241")[2]
    data_dir = tmp_path / "data"
    server = serve_mirror(www, "--slow", f"{slow['url']}:5")
    run = crawl(server.url, data_dir, DOWNLOAD_TIMEOUT="1", RETRY_TIMES="1")
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.report["article_failures"] == {"timeout": 1}, run.report
    assert run.report["retries"] >= 1
    assert slow["url"] in run.stderr
    assert state_rows(data_dir, slow["article_id"]) == ("pending", 1, "timeout")
    assert_complete_once(data_dir, expected, missing={slow["article_id"]})


# --- 7. SIGTERM -------------------------------------------------------------------------------


def test_sigterm_stops_cleanly_and_the_next_run_completes(serve_mirror, www, expected, tmp_path):
    data_dir = tmp_path / "data"
    server = serve_mirror(www, *SLOW_SERVER)
    process = start_crawl(server.url, data_dir, **SLOW_CRAWL)
    wait_for_lines(process, data_dir / ARTICLES, 80)
    process.send_signal(signal.SIGTERM)
    status = process.wait(timeout=30)
    stderr = log_of(process)
    stopped_with = line_count(data_dir / ARTICLES)
    assert stopped_with < UNIQUE_ARTICLES, "the crawl finished before SIGTERM"
    whole_lines(data_dir / ARTICLES)
    report_path = own_report_path(stderr)
    assert report_path is not None, stderr[-3000:]
    report = json.loads(report_path.read_text("utf-8"))
    assert report["finish_reason"] == "shutdown"
    assert report["exit_status"] == 6
    assert status == 6, stderr[-3000:]

    rerun = crawl(server.url, data_dir, **SLOW_CRAWL)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    rows = assert_complete_once(data_dir, expected)
    print(f"SIGTERM at {stopped_with} lines; rerun wrote {rerun.report['written']}, total {len(rows)}")


# --- a changed base URL ------------------------------------------------------------------------


def test_owed_articles_are_fetched_from_the_current_base_url(serve_mirror, www, expected, tmp_path):
    """README: "The whole crawl follows from THEORY_BASE_URL, so a mirror of the channel works with only
    that changed." An article that failed in one run is owed; when the next run has another base URL (the
    mirror on another port here; a new host or scheme in life), the owed article is fetched there."""
    owed = single_page_originals(expected, "239")[2]
    fail_file = tmp_path / "fail-first.txt"
    fail_file.write_text(f"{owed['url']} 3\n")  # 500 to the request and both retries (RETRY_TIMES=2)
    data_dir = tmp_path / "data"
    old = serve_mirror(www, "--fail-first", str(fail_file))
    first = crawl(old.url, data_dir)
    old.stop()
    assert first.returncode == 0, first.stderr[-3000:]
    assert first.report["article_failures"] == {"http_500": 1}
    assert state_rows(data_dir, owed["article_id"])[:2] == ("pending", 1)

    new = serve_mirror(www)
    assert new.url != old.url
    second = crawl(new.url, data_dir)
    new.stop()
    assert second.returncode == 0, second.stderr[-3000:]
    assert second.report["article_failures"] == {}, (second.report["article_failures"], state_rows(data_dir, owed["article_id"]))
    assert state_rows(data_dir, owed["article_id"])[0] == "written"
    assert_complete_once(data_dir, expected)


# --- run reports ---------------------------------------------------------------------------------


def test_every_run_leaves_a_report_with_the_documented_keys(serve_mirror, www, tmp_path):
    """A full run, a no-op rerun and a run that fetches nothing: each logs its report's path, and the
    report there (read right after the run) has the documented keys and the run's exit status."""
    data_dir = tmp_path / "data"
    server = serve_mirror(www)
    runs = []
    for closed in (False, False, True):
        if closed:
            server.stop()  # the port is closed now
        run = crawl(server.url, data_dir, "revisit=0")  # the second run's requests: the incremental run alone
        report = run.report
        assert REPORT_KEYS <= set(report), REPORT_KEYS - set(report)
        assert set(report["duplicates"]) == {"url", "content"}
        assert report["exit_status"] == run.returncode
        assert report["finish_reason"] == "finished"
        assert report["started_at"] <= report["finished_at"]
        runs.append((run.returncode, report["requests"], report["written"]))
    # The first run: 375 pages, and the 76 images of the written articles, fetched to be captured.
    assert runs == [(0, 375 + 76, UNIQUE_ARTICLES), (0, len(SECTIONS) + 2, 0), (4, runs[2][1], 0)], runs


# --- the state can be rebuilt from the output --------------------------------------------------


def test_lost_state_is_rebuilt_from_the_output(serve_mirror, www, expected, tmp_path):
    """README: if state.sqlite3 is lost, the next run indexes articles.jsonl again (nothing in it is
    written twice) and walks every listing page once."""
    data_dir = tmp_path / "data"
    server = serve_mirror(www)
    first = crawl(server.url, data_dir)
    assert first.returncode == 0, first.stderr[-3000:]
    before = (data_dir / ARTICLES).read_bytes()
    for path in data_dir.glob("state.sqlite3*"):
        path.unlink()

    rebuilt = crawl(server.url, data_dir)
    assert rebuilt.returncode == 0, rebuilt.stderr[-3000:]
    assert (data_dir / ARTICLES).read_bytes() == before
    report = rebuilt.report
    assert report["recovered_lines"] == UNIQUE_ARTICLES
    assert report["listing_pages"] == LISTING_PAGES
    assert report["written"] == 0

    again = crawl(server.url, data_dir, "revisit=0")
    assert again.returncode == 0 and again.report["requests"] <= len(SECTIONS) + 2
    assert (data_dir / ARTICLES).read_bytes() == before

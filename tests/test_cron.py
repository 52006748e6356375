"""End to end, as cron runs it: incremental reruns, crashes, the lock, alarms and faults.

Every test crawls its own copy of the shared mirror's ``www`` (so it may change pages), served by the
mirror's ``serve.py``, with the real ``python -m scrapy crawl theory`` in a subprocess.

A test that reruns the crawl keeps one server, on one port, for all its runs, as the live host would
(what a changed base URL does is the subject of test_owed_articles_are_fetched_from_the_current_base_url).
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import sqlite3
import subprocess
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import PROJECT_ROOT, crawl_command, load_expected, run_crawl

ARTICLES = "articles.jsonl"
SECTIONS = ["239", "241", "242", "251", "252", "253"]
LISTING_PAGES = 21  # manifest.json: counts.listing_pages
UNIQUE_ARTICLES = 291  # manifest.json: counts.unique (one per content-duplicate group)
# Documented keys of a run report (crawler.extensions.summarize).
REPORT_KEYS = {
    "started_at", "finished_at", "finish_reason", "requests", "listing_pages", "article_pages",
    "written", "duplicates", "rejected", "http_errors_by_status", "retries", "exit_status",
}
# Throttles a crawl of the mirror to a few seconds, so that it can be stopped half-way.
SLOW_SERVER = ("--latency-ms", "30")
SLOW_CRAWL = {"CONCURRENT_REQUESTS": "4"}
REPORT_PATH = re.compile(r"run summary \((.+?\.json)\)")


# --- helpers ---------------------------------------------------------------------------------


@dataclass
class Run:
    returncode: int
    stderr: str
    seconds: float
    report_path: Path | None

    @property
    def report(self) -> dict:
        assert self.report_path is not None, f"the run logged no run report:\n{self.stderr[-3000:]}"
        return json.loads(self.report_path.read_text("utf-8"))


def own_report_path(stderr: str) -> Path | None:
    """The report this run wrote, as its log names it."""
    found = REPORT_PATH.findall(stderr)
    return Path(found[-1]) if found else None


def crawl(base_url: str, data_dir: Path, *spider_args: str, **settings: str) -> Run:
    started = time.monotonic()
    result = run_crawl(base_url, data_dir, *spider_args, timeout=120, **settings)
    return Run(result.returncode, result.stderr, time.monotonic() - started, own_report_path(result.stderr))


def start_crawl(base_url: str, data_dir: Path, *spider_args: str, **settings: str) -> subprocess.Popen:
    """A crawl in the background; its log goes to a file (a pipe nobody reads could fill up and block it)."""
    log_path = data_dir.parent / f"crawl-{time.monotonic_ns()}.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            crawl_command(base_url, data_dir, *spider_args, **settings),
            cwd=PROJECT_ROOT,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    process.log_path = log_path
    return process


def log_of(process: subprocess.Popen) -> str:
    return process.log_path.read_text("utf-8", errors="replace")


def line_count(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def wait_for_lines(process: subprocess.Popen, path: Path, lines: int, timeout: float = 30) -> int:
    """Poll until ``path`` has ``lines`` lines; the crawl must still be running then."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        count = line_count(path)
        if count >= lines:
            assert process.poll() is None, f"the crawl ended (status {process.returncode}) before it could be stopped"
            return count
        if process.poll() is not None:
            pytest.fail(f"the crawl ended (status {process.returncode}) with {count} lines, before {lines}")
        time.sleep(0.01)
    process.kill()
    pytest.fail(f"no {lines} lines in {path} after {timeout} s")


def whole_lines(path: Path) -> list[dict]:
    """Every line of an output file, which must be complete JSON lines only."""
    data = path.read_bytes()
    assert data == b"" or data.endswith(b"\n"), f"{path.name} ends with a torn line: {data[-200:]!r}"
    rows = []
    for number, line in enumerate(data.splitlines(), 1):
        try:
            rows.append(json.loads(line))
        except ValueError:
            pytest.fail(f"{path.name} line {number} is not JSON: {line[:200]!r}")
    return rows


def groups_of(expected: list[dict]) -> dict[str, str]:
    """article_id -> its content-duplicate group (the earliest copy's id)."""
    return {row["article_id"]: row["duplicate_of"] or row["article_id"] for row in expected}


def assert_complete_once(data_dir: Path, expected: list[dict], missing: set[str] = frozenset()) -> list[dict]:
    """articles.jsonl has one article of every duplicate group (but the ``missing`` groups), once each."""
    rows = whole_lines(data_dir / ARTICLES)
    group_of = groups_of(expected)
    ids = Counter(row["article_id"] for row in rows)
    assert not [i for i, n in ids.items() if n > 1], f"articles written twice: {[i for i, n in ids.items() if n > 1]}"
    assert set(ids) <= set(group_of), f"articles outside the ground truth: {set(ids) - set(group_of)}"
    groups = Counter(group_of[i] for i in ids)
    assert not [g for g, n in groups.items() if n > 1], (
        f"content duplicates written twice: {[g for g, n in groups.items() if n > 1]}"
    )
    wanted = set(group_of.values()) - set(missing)
    assert set(groups) == wanted, (
        f"missing groups: {sorted(wanted - set(groups))[:10]}, unexpected: {sorted(set(groups) - wanted)[:10]}"
    )
    return rows


def report_files(data_dir: Path) -> list[Path]:
    return sorted((data_dir / "runs").glob("*.json"))


def state_rows(data_dir: Path, article_id: str) -> tuple | None:
    db = sqlite3.connect(data_dir / "state.sqlite3")
    try:
        return db.execute(
            "SELECT status, attempts, last_error FROM articles WHERE article_id = ?", (article_id,)
        ).fetchone()
    finally:
        db.close()


def read_gbk(path: Path) -> str:
    return path.read_bytes().decode("gbk")


def write_gbk(path: Path, text: str) -> None:
    path.write_bytes(text.encode("gbk"))  # raises if a character is not GBK: the site is GBK only


def single_page_originals(expected: list[dict], section: str) -> list[dict]:
    """Articles of ``section`` with one page, no content duplicate, listed in that section only."""
    copied = {row["duplicate_of"] for row in expected if row["duplicate_of"]}
    return [
        row for row in expected
        if row["section_id"] == section and row["listed_in"] == [section] and row["page_count"] == 1
        and row["duplicate_of"] is None and row["article_id"] not in copied
    ]


def add_article(www: Path, original: dict, new_id: str, marker: str) -> dict:
    """A new article page made from ``original`` (new id, title and first paragraph), linked first in its
    section's first listing page. Returns what the crawl should write for it."""
    source = www / original["url"].lstrip("/")
    target = source.with_name(f"{new_id}.shtml")
    assert not target.exists()
    title = f"{marker}{original['title']}"
    paragraph = f"本文是{marker}，用于检验增量抓取只写新文章。"
    page = read_gbk(source)
    assert page.count(original["title"]) >= 2 and page.count('<div class="ccontent">') == 1
    page = page.replace(original["title"], title)
    page = page.replace('<div class="ccontent">', f'<div class="ccontent">\n<p>　　{paragraph}</p>', 1)
    write_gbk(target, page)

    section = original["section_id"]
    listing = www / section / f"{section}.shtml"
    day = f"20{new_id[0:2]}-{new_id[2:4]}-{new_id[4:6]}"
    href = "/" + str(target.relative_to(www))
    text = read_gbk(listing)
    assert text.count('<ul id="leftList">') == 1
    text = text.replace(
        '<ul id="leftList">',
        f'<ul id="leftList">\n<li><a href="{href}" target="_blank">{title}</a><span>{day}</span></li>',
    )
    write_gbk(listing, text)
    return {"article_id": new_id, "url": href, "title": title, "first_paragraph": paragraph}


def empty_listing(www: Path, path: str) -> None:
    page = www / path.lstrip("/")
    text, replaced = re.subn(r'(<ul id="leftList">).*?(</ul>)', r"\1\2", read_gbk(page), count=1, flags=re.S)
    assert replaced == 1
    write_gbk(page, text)


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture
def www(shared_site, tmp_path) -> Path:
    """A private copy of the mirror's site root, free to change."""
    return Path(shutil.copytree(shared_site / "www", tmp_path / "www"))


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
    second = crawl(server.url, data_dir)
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
    full = crawl(server.url, data_dir, "full=1")
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
    assert seconds < 5
    assert "another crawl is running" in second.stderr
    assert second.stderr.strip().splitlines()[-1].startswith("theory-crawler: another crawl is running")
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

    after = crawl(server.url, data_dir, THEORY_MAX_ATTEMPTS=str(max_attempts))
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
        run = crawl(server.url, data_dir)
        report = run.report
        assert REPORT_KEYS <= set(report), REPORT_KEYS - set(report)
        assert set(report["duplicates"]) == {"url", "content"}
        assert report["exit_status"] == run.returncode
        assert report["finish_reason"] == "finished"
        assert report["started_at"] <= report["finished_at"]
        runs.append((run.returncode, report["requests"], report["written"]))
    assert runs == [(0, 375, UNIQUE_ARTICLES), (0, len(SECTIONS) + 2, 0), (4, runs[2][1], 0)], runs


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

    again = crawl(server.url, data_dir)
    assert again.returncode == 0 and again.report["requests"] <= len(SECTIONS) + 2
    assert (data_dir / ARTICLES).read_bytes() == before

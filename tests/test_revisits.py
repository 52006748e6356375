"""End to end: revisits of written articles on altered copies of the mirrors, as cron reruns the crawl.

Between runs the test edits some article pages (the server's ETag follows size and mtime), replaces
some with a "页面不存在" page served with 200, and deletes some (404); changes.jsonl must then hold
exactly one revised event per edited article at once, and one removed event per replaced or deleted
article only after THEORY_REMOVAL_CONFIRMATIONS (2) runs in a row.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
from jsonschema import Draft7Validator
from referencing import Registry, Resource

from crawl_helpers import (
    ARTICLES,
    SECTIONS,
    SLOW_CRAWL,
    SLOW_SERVER,
    UNIQUE_ARTICLES,
    assert_complete_once,
    crawl,
    line_count,
    log_of,
    read_gbk,
    reextract,
    single_page_originals,
    start_crawl,
    wait_for_lines,
    whole_lines,
    write_gbk,
)
from crawler.pipelines import load_schema

CHANGES = "changes.jsonl"
NOT_FOUND_PAGE = Path(__file__).parent / "fixtures" / "revisions" / "legacy_not_found.html"
# Every article of the mirror (2014-2020) counts as recent: every one is revisited in every run, even
# right after the run that wrote it, and two runs in a row confirm a removal however close they are.
IMMEDIATE = {"THEORY_REVISIT_MIN_HOURS": "0", "THEORY_REMOVAL_MIN_HOURS": "0"}
ALL_RECENT = {"THEORY_REVISIT_DAYS": "100000", **IMMEDIATE}




def validate_change(event: dict) -> None:
    """Against crawler/schema/change.schema.json, whose item refers to article.schema.json."""
    article = load_schema("article")
    registry = Registry().with_resource(article["$id"], Resource.from_contents(article))
    Draft7Validator(load_schema("change"), registry=registry).validate(event)


def touch_later(path: Path) -> None:
    """The server's ETag is size and mtime: make sure the mtime moves even within the same second."""
    later = path.stat().st_mtime + 1000
    os.utime(path, (later, later))


def edit(www: Path, url: str, marker: str) -> None:
    path = www / url.lstrip("/")
    page = read_gbk(path)
    assert page.count('<div class="ccontent">') == 1
    write_gbk(path, page.replace('<div class="ccontent">', f'<div class="ccontent">\n<p>　　{marker}</p>', 1))
    touch_later(path)


def replace_with_not_found(www: Path, url: str) -> None:
    path = www / url.lstrip("/")
    path.write_bytes(NOT_FOUND_PAGE.read_bytes())
    touch_later(path)


def path_of(url: str) -> str:
    return "/" + url.split("/", 3)[3]


def events(data_dir: Path) -> list[dict]:
    path = data_dir / CHANGES
    return whole_lines(path) if path.exists() else []


def pick(expected: list[dict]) -> dict[str, list[dict]]:
    """Single-page articles of different sections for each alteration, and a multi-page one to edit."""
    originals = [row for section in SECTIONS for row in single_page_originals(expected, section)[:4]]
    copied = {row["duplicate_of"] for row in expected if row["duplicate_of"]}
    multipage = next(
        row for row in expected
        if row["page_count"] > 1 and row["duplicate_of"] is None and row["article_id"] not in copied
        and len(row["listed_in"]) == 1
    )
    return {"edited": originals[0:4] + [multipage], "replaced": originals[4:6], "deleted": originals[6:9]}


def test_revisits_record_revisions_at_once_and_removals_after_confirmation(serve_mirror, shared_site, www, expected, tmp_path):
    data_dir = tmp_path / "data"
    server = serve_mirror(www)
    first = crawl(server.url, data_dir, **ALL_RECENT)
    assert first.returncode == 0, first.stderr[-3000:]
    assert_complete_once(data_dir, expected)
    assert events(data_dir) == []
    articles_before = (data_dir / ARTICLES).read_bytes()

    chosen = pick(expected)
    edited = {row["article_id"] for row in chosen["edited"]}
    gone = {row["article_id"] for row in chosen["replaced"] + chosen["deleted"]}
    for number, row in enumerate(chosen["edited"]):
        # The multi-page article is edited on its last page only: page 1 answers 304.
        url = row["url"] if row["page_count"] == 1 else row["url"].replace(".shtml", f"_{row['page_count']}.shtml")
        edit(www, url, f"修订测试段落{number}：本段为修订后新增的内容。")
    for row in chosen["replaced"]:
        replace_with_not_found(www, row["url"])
    for row in chosen["deleted"]:
        (www / row["url"].lstrip("/")).unlink()

    second = crawl(server.url, data_dir, **ALL_RECENT)
    assert second.returncode == 0, second.stderr[-3000:]
    after_second = events(data_dir)
    revisits = second.report["revisits"]
    print(f"run 2 (altered): {revisits}")
    assert revisits["revisited"] == UNIQUE_ARTICLES
    assert revisits["revised"] == len(edited) and revisits["removed"] == 0, "a removal needs a second run"
    assert revisits["failing"] == len(gone)
    assert Counter(e["article_id"] for e in after_second) == Counter(edited), after_second
    assert {e["event"] for e in after_second} == {"revised"}
    for event in after_second:
        validate_change(event)
        assert event["version"] == 2
        assert "修订测试段落" in event["item"]["body"]
        assert event["previous_content_hash"] != event["item"]["content_hash"]
    multipage = next(e for e in after_second if e["item"]["page_count"] > 1)
    assert multipage["article_id"] == chosen["edited"][-1]["article_id"]

    third = crawl(server.url, data_dir, **ALL_RECENT)
    assert third.returncode == 0, third.stderr[-3000:]
    new = events(data_dir)[len(after_second):]
    revisits = third.report["revisits"]
    print(f"run 3 (confirming): {revisits}")
    assert Counter(e["article_id"] for e in new) == Counter(gone), new
    assert {e["event"] for e in new} == {"removed"}
    for event in new:
        validate_change(event)
        row = next(row for row in expected if row["article_id"] == event["article_id"])
        assert event["url"].endswith(row["url"])
        assert event["evidence"]["status"] == (404 if row in chosen["deleted"] else 200)
        assert event["evidence"]["first_seen_failing"] < event["evidence"]["confirmed_at"]
    # Unchanged pages (the edited ones included: their new validators were stored) cost a 304.
    unchanged = revisits["revisited"] - len(gone)
    share = revisits["not_modified"] / unchanged
    print(f"run 3: {revisits['not_modified']} of {unchanged} unchanged revisits answered 304 ({share:.0%})")
    assert share >= 0.9

    fourth = crawl(server.url, data_dir, **ALL_RECENT)
    assert fourth.returncode == 0, fourth.stderr[-3000:]
    assert len(events(data_dir)) == len(after_second) + len(gone), "an unchanged run wrote an event"
    assert fourth.report["revisits"]["revised"] == fourth.report["revisits"]["removed"] == 0
    assert (data_dir / ARTICLES).read_bytes() == articles_before, "articles.jsonl changed"

    # A deleted article that comes back is restored, once.
    back = chosen["deleted"][0]
    shutil.copy(shared_site / "www" / back["url"].lstrip("/"), www / back["url"].lstrip("/"))
    fifth = crawl(server.url, data_dir, **ALL_RECENT)
    assert fifth.returncode == 0, fifth.stderr[-3000:]
    restored = events(data_dir)[len(after_second) + len(gone):]
    assert [(e["event"], e["article_id"]) for e in restored] == [("restored", back["article_id"])]
    validate_change(restored[0])
    assert crawl(server.url, data_dir, **ALL_RECENT).report["revisits"]["restored"] == 0

    # Offline re-extraction from the WARC files of all these runs (304s, not-found pages, the lone changed
    # page of the multi-page article among them) still gives articles.jsonl as first seen, and judges the
    # captured revisits into the same changes.jsonl, under the same removal rule.
    out = tmp_path / "reextracted"
    again = reextract(data_dir / "warc", out, *(f"{name}={value}" for name, value in IMMEDIATE.items()))
    assert again.returncode == 0, again.stderr[-3000:]
    strip = lambda rows: [{k: v for k, v in row.items() if k not in ("crawled_at", "warc")} for row in rows]  # noqa: E731
    assert strip(whole_lines(out / ARTICLES)) == strip(whole_lines(data_dir / ARTICLES))
    assert without_detection_times(events(out)) == without_detection_times(events(data_dir))
    assert f"{len(events(data_dir))} events" in again.stdout, again.stdout


def without_detection_times(changes: list[dict]) -> list[dict]:
    """Events but for when they were written: detected_at, and the crawled_at of a revised item."""
    return [
        {k: ({**v, "crawled_at": None} if k == "item" else v) for k, v in event.items() if k != "detected_at"}
        for event in changes
    ]


def test_revisit_0_skips_revisits_and_an_unchanged_rerun_revisits_within_the_budget(serve_mirror, www, expected, tmp_path):
    data_dir = tmp_path / "data"
    server = serve_mirror(www)
    assert crawl(server.url, data_dir).returncode == 0
    skipped = crawl(server.url, data_dir, "revisit=0")
    assert skipped.report["revisits"]["revisited"] == 0
    assert skipped.report["requests"] <= len(SECTIONS) + 2
    server.stop()

    # Default settings but for the hours between revisits: no article of the mirror is recent (30 days), so
    # the budget (100) decides.
    server = serve_mirror(www)
    rerun = crawl(server.url, data_dir, **IMMEDIATE)
    served = server.stop()
    revisits = rerun.report["revisits"]
    print(f"unchanged rerun with revisits: {served['requests']} requests served ({served['by_status']}), {revisits}")
    assert revisits["revisited"] == 100 and revisits["not_modified"] == 100
    assert revisits["revised"] == revisits["removed"] == 0
    # robots.txt, the home, a listing page per section, then one 304 per page of each revisited article.
    assert served["by_status"]["304"] == served["requests"] - (len(SECTIONS) + 2)
    assert served["requests"] >= len(SECTIONS) + 2 + 100
    # The WARC capture keeps revisits too: each 304 as a revisit record without HTTP headers, so without a status
    # in the run's CDXJ index (identical-payload revisits have their 200).
    newest = sorted((data_dir / "warc").glob("*.cdxj"))[-1].read_text("utf-8")
    entries = [json.loads(line.split(" ", 2)[2]) for line in newest.splitlines()]
    assert sum(entry["mime"] == "warc/revisit" and "status" not in entry for entry in entries) == served["by_status"]["304"]
    with sqlite3.connect(data_dir / "state.sqlite3") as db:
        checked = db.execute("SELECT COUNT(*) FROM revisions WHERE checked_at IS NOT NULL").fetchone()[0]
    assert checked == 100

    server = serve_mirror(www)
    crawl(server.url, data_dir, **IMMEDIATE)
    server.stop()
    with sqlite3.connect(data_dir / "state.sqlite3") as db:
        checked = db.execute("SELECT COUNT(*) FROM revisions WHERE checked_at IS NOT NULL").fetchone()[0]
    assert checked == 200, "the next run revisits the least recently checked articles"


def touch_articles(www: Path, expected: list[dict]) -> None:
    """Every article page gets a new ETag and the same content: every revisit reads the article whole."""
    for row in expected:
        for number in range(1, row["page_count"] + 1):
            touch_later(www / (row["url"] if number == 1 else row["url"].replace(".shtml", f"_{number}.shtml")).lstrip("/"))


def wait_for_progress(process: subprocess.Popen, pages: int, timeout: float = 60) -> None:
    """Poll the crawl's progress lines (LOGSTATS_INTERVAL) until it has had ``pages`` responses."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = [int(n) for n in re.findall(r"progress: (\d+) responses", log_of(process))]
        if done and done[-1] >= pages:
            assert process.poll() is None, "the crawl ended before it could be stopped"
            return
        if process.poll() is not None:
            pytest.fail(f"the crawl ended (status {process.returncode}) before {pages} pages")
        time.sleep(0.05)
    process.kill()
    pytest.fail(f"no {pages} pages after {timeout} s")


@pytest.mark.parametrize("killed", ["while-writing-held-revisions", "before-the-end"])
def test_a_killed_revisit_run_then_a_rerun_loses_or_repeats_no_event(serve_mirror, www, expected, tmp_path, killed):
    """Revisions are held to the end of the run (the share of whole revisits they are decides whether they
    are written): a run killed before then wrote none, one killed while writing them wrote some; either
    way the rerun leaves exactly one event per edited article."""
    data_dir = tmp_path / "data"
    server = serve_mirror(www, *SLOW_SERVER)
    settings = {**ALL_RECENT, **SLOW_CRAWL, "THEORY_SYNC_ITEMS": "1"}
    assert crawl(server.url, data_dir, **settings).returncode == 0
    touch_articles(www, expected)
    edited = [row for section in SECTIONS for row in single_page_originals(expected, section)[:17]]
    assert 10 <= len(edited) < UNIQUE_ARTICLES / 2, "fewer than half of the whole revisits revised: no alarm"
    for number, row in enumerate(edited):
        edit(www, row["url"], f"修订测试段落{number}。")
    edited_ids = {row["article_id"] for row in edited}

    if killed == "before-the-end":
        # One page that answers only after a minute keeps the run from its end, where held revisions are written.
        server.stop()
        server = serve_mirror(www, *SLOW_SERVER, "--slow", f"{path_of(edited[0]['url'])}:60")
        process = start_crawl(server.url, data_dir, **settings, LOGSTATS_INTERVAL="0.2")
        wait_for_progress(process, UNIQUE_ARTICLES - 20)
    else:
        process = start_crawl(server.url, data_dir, **settings)
        wait_for_lines(process, data_dir / CHANGES, 5, timeout=60)
    process.kill()
    process.wait(timeout=10)
    killed_with = line_count(data_dir / CHANGES)
    assert killed_with < len(edited), "the run finished before the kill"
    if killed == "before-the-end":
        assert killed_with == 0, "a revision was written before the run knew their share"
    whole_lines(data_dir / CHANGES) if killed_with else None
    server.stop()

    server = serve_mirror(www)
    rerun = crawl(server.url, data_dir, **settings)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    rows = events(data_dir)
    counts = Counter((e["event"], e["article_id"]) for e in rows)
    print(f"killed {killed} with {killed_with} events; rerun wrote {rerun.report['revisits']['revised']},"
          f" replayed {rerun.report['recovery'].get('replayed_events', 0)}")
    assert [key for key, n in counts.items() if n > 1] == [], "an event was repeated"
    assert {article for _, article in counts} == edited_ids, "an event was lost"
    assert {event for event, _ in counts} == {"revised"}
    assert killed_with + rerun.report["revisits"]["revised"] == len(rows)
    again = crawl(server.url, data_dir, **settings)
    assert len(events(data_dir)) == len(rows) and again.report["revisits"]["revised"] == 0
    assert_complete_once(data_dir, expected)


def test_current_site_articles_are_revisited_alike_gzip_and_all(serve_mirror, shared_current_site, tmp_path):
    """The current CMS's copy, served gzip-compressed (its ETag then ends in -gzip): the same events."""
    www = Path(shutil.copytree(shared_current_site / "www", tmp_path / "www"))
    server = serve_mirror(www, "--gzip")
    data_dir = tmp_path / "data"
    settings = {**ALL_RECENT, "THEORY_CHANNEL_URL": server.url + "theory/"}
    first = crawl("", data_dir, **settings)
    assert first.returncode == 0, first.stderr[-3000:]
    written = whole_lines(data_dir / ARTICLES)
    articles_before = (data_dir / ARTICLES).read_bytes()
    rows = [row for row in written if row["page_count"] == 1][:6]
    paths = [www / path_of(row["url"]).lstrip("/") for row in rows]
    for number, path in enumerate(paths[:2]):
        page = path.read_text("utf-8")
        assert page.count('<div class="ccontent">') == 1
        path.write_text(page.replace('<div class="ccontent">', f'<div class="ccontent">\n<p>修订测试段落{number}。</p>', 1), "utf-8")
        touch_later(path)
    paths[2].write_bytes((NOT_FOUND_PAGE.parent / "current_not_found.html").read_bytes())
    touch_later(paths[2])
    paths[3].unlink()
    edited = {row["article_id"] for row in rows[:2]}
    gone = {row["article_id"] for row in rows[2:4]}

    second = crawl("", data_dir, **settings)
    assert second.returncode == 0, second.stderr[-3000:]
    print(f"current site, run 2: {second.report['revisits']}")
    assert Counter((e["event"], e["article_id"]) for e in events(data_dir)) == Counter(("revised", i) for i in edited)
    third = crawl("", data_dir, **settings)
    revisits = third.report["revisits"]
    print(f"current site, run 3: {revisits}")
    assert Counter((e["event"], e["article_id"]) for e in events(data_dir)[len(edited):]) == Counter(("removed", i) for i in gone)
    assert revisits["not_modified"] == revisits["revisited"] - len(gone)
    for event in events(data_dir):
        validate_change(event)
    fourth = crawl("", data_dir, **settings)
    assert len(events(data_dir)) == len(edited) + len(gone) and fourth.report["revisits"]["revised"] == 0
    assert (data_dir / ARTICLES).read_bytes() == articles_before


def test_a_site_that_fixes_an_author_name_gives_one_corrected_event(serve_mirror, www, expected, tmp_path):
    data_dir = tmp_path / "data"
    server = serve_mirror(www)
    assert crawl(server.url, data_dir, **ALL_RECENT).returncode == 0
    row = next(r for r in expected if len(r["authors"]) == 1 and r["page_count"] == 1 and not r["duplicate_of"])
    path = www / row["url"].lstrip("/")
    page = read_gbk(path)
    assert page.count(f"作者：{row['authors'][0]}") == 1
    write_gbk(path, page.replace(f"作者：{row['authors'][0]}", "作者：苏强平"))
    touch_later(path)

    first = crawl(server.url, data_dir, **ALL_RECENT)
    again = crawl(server.url, data_dir, **ALL_RECENT)
    assert first.returncode == 0 == again.returncode, first.stderr[-3000:]
    (event,) = events(data_dir)
    assert (event["event"], event["article_id"]) == ("corrected", row["article_id"])
    assert event["fields"] == {"authors": {"old": row["authors"], "new": ["苏强平"]}}
    assert event["evidence"]["warc"] and event["evidence"]["status"] == 200
    validate_change(event)
    assert first.report["revisits"]["corrected"] == 1 and again.report["revisits"]["corrected"] == 0

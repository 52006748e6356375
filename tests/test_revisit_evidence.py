"""End to end: a removal or a revision is derived from positive evidence only (issue 13, items 5-8).

Each test copies the legacy mirror, crawls it once, then serves it altered the way a real site misbehaves
(a new template, bot checks, a "please wait" page, boilerplate leaking into every body, a rerun right
after a run), and checks that changes.jsonl gets no event it has no evidence for.
"""

from __future__ import annotations

import os
import re
import sqlite3
import time
from pathlib import Path

from crawl_helpers import (
    SECTIONS,
    SLOW_CRAWL,
    SLOW_SERVER,
    UNIQUE_ARTICLES,
    crawl,
    read_gbk,
    single_page_originals,
    start_crawl,
    whole_lines,
    write_gbk,
)

CHANGES = "changes.jsonl"
ALL_RECENT = {"THEORY_REVISIT_DAYS": "100000"}
IMMEDIATE = {"THEORY_REVISIT_MIN_HOURS": "0", "THEORY_REMOVAL_MIN_HOURS": "0"}
# The frame's blocks under class names no selector of the legacy reader knows; the rest of the page as it was.
NEW_TEMPLATE = {'class="ctitle"': 'class="art-hd"', 'class="signdate"': 'class="art-info"',
                'class="ccontent"': 'class="art-bd"', 'class="TRS_Editor"': 'class="art-text"'}
BOT_CHECK = """<!DOCTYPE html>
<html>
<head>
<meta http-equiv="Content-Type" content="text/html; charset=gb2312" />
{refresh}<title>安全验证</title>
<script type="text/javascript">document.cookie = "__jsl_clearance={serial}; path=/"; {reload}</script>
</head>
<body><p>正在进行安全验证，请稍候……</p></body>
</html>
"""
PLEASE_WAIT = """<!DOCTYPE html>
<html>
<head>
<meta http-equiv="Content-Type" content="text/html; charset=gb2312" />
<title>请稍候</title>
</head>
<body><div class="wait"><h2>请稍候</h2><p>访问人数较多，页面正在加载，请稍候再试。</p></div></body>
</html>
"""
BOILERPLATE = "　　本文转载自其他媒体，转载目的在于传递更多信息，并不代表本网赞同其观点和对其真实性负责。"




def article_files(www: Path) -> list[Path]:
    """Every page of every article of the mirror (pages 2.. of multi-page articles included)."""
    return sorted(www.glob("2*/2*/*/*.shtml"))


def touch_later(path: Path) -> None:
    """The server's ETag is size and mtime: make sure the mtime moves even within the same second."""
    later = path.stat().st_mtime + 1000
    os.utime(path, (later, later))


def rewrite(path: Path, change) -> None:
    write_gbk(path, change(read_gbk(path)))
    touch_later(path)


def events(data_dir: Path) -> list[dict]:
    path = data_dir / CHANGES
    return whole_lines(path) if path.exists() else []


def first_run(server, data_dir: Path, **settings: str) -> None:
    run = crawl(server.url, data_dir, **settings)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.report["written"] == UNIQUE_ARTICLES


def test_an_unknown_template_raises_the_layout_alarm_and_removes_nothing(serve_mirror, www, tmp_path):
    """Every article page served in a template the readers do not know, for two revisit runs."""
    data_dir = tmp_path / "data"
    server = serve_mirror(www)
    settings = {**ALL_RECENT, **IMMEDIATE}
    first_run(server, data_dir, **settings)

    def new_template(page: str) -> str:
        for old, new in NEW_TEMPLATE.items():
            page = page.replace(old, new)
        return page

    for path in article_files(www):
        rewrite(path, new_template)
    for number in (2, 3):
        run = crawl(server.url, data_dir, **settings)
        revisits = run.report["revisits"]
        print(f"unknown template, run {number}: exit {run.returncode}, {revisits}, parse failures"
              f" {run.report['parse_failures']} of {run.report.get('revisit_pages_read')} revisit pages read")
        assert events(data_dir) == []
        assert run.returncode == 5, run.stderr[-3000:]
        assert revisits["removed"] == revisits["revised"] == revisits["failing"] == 0
        assert run.report["revisit_unknown"] == {"not_an_article": UNIQUE_ARTICLES}
        assert run.report["parse_failures"] == UNIQUE_ARTICLES
    assert events(data_dir) == []


def test_bot_checks_on_a_third_of_the_pages_remove_and_revise_nothing(serve_mirror, www, tmp_path):
    """A third of the article pages (later pages of multi-page articles among them) answer with a bot
    check, a reload script or a meta refresh, for two revisit runs."""
    data_dir = tmp_path / "data"
    server = serve_mirror(www)
    settings = {**ALL_RECENT, **IMMEDIATE}
    first_run(server, data_dir, **settings)
    checked = article_files(www)[::3]
    assert any(re.search(r"_\d+\.shtml$", path.name) for path in checked), "no later page among them"
    for serial, path in enumerate(checked):
        refresh = '<meta http-equiv="refresh" content="2" />\n' if serial % 2 else ""
        reload = "" if serial % 2 else "location.reload();"
        write_gbk(path, BOT_CHECK.format(refresh=refresh, reload=reload, serial=serial))
        touch_later(path)
    for number in (2, 3):
        run = crawl(server.url, data_dir, **settings)
        revisits, bot_checks = run.report["revisits"], run.report.get("bot_checks", {})
        print(f"bot checks on {len(checked)} of {len(article_files(www))} pages, run {number}: exit {run.returncode},"
              f" {revisits}, bot checks {bot_checks.get('count')}, unknown {run.report['revisit_unknown']}")
        assert events(data_dir) == []
        assert revisits["removed"] == revisits["revised"] == revisits["failing"] == 0
        assert bot_checks["count"] >= len([path for path in checked if not re.search(r"_\d+\.shtml$", path.name)])
        assert bot_checks["examples"] and {example["title"] for example in bot_checks["examples"]} == {"安全验证"}
        assert all(example["url"].startswith(server.url) for example in bot_checks["examples"])
    assert events(data_dir) == []


def test_a_multipage_article_whose_page_2_says_please_wait_makes_no_event(serve_mirror, www, expected, tmp_path):
    """Page 2 answers 200 "请稍候" (no article frame) for two runs, then comes back as it was."""
    data_dir = tmp_path / "data"
    server = serve_mirror(www)
    settings = {**ALL_RECENT, **IMMEDIATE}
    first_run(server, data_dir, **settings)
    copied = {row["duplicate_of"] for row in expected if row["duplicate_of"]}
    article = next(row for row in expected if row["page_count"] >= 3 and row["duplicate_of"] is None
                   and row["article_id"] not in copied)
    page_2 = www / article["url"].lstrip("/").replace(".shtml", "_2.shtml")
    original = page_2.read_bytes()
    write_gbk(page_2, PLEASE_WAIT)
    touch_later(page_2)
    for number in (2, 3):
        run = crawl(server.url, data_dir, **settings)
        print(f"page 2 says please wait, run {number}: {run.report['revisits']}, unknown {run.report['revisit_unknown']}")
        assert events(data_dir) == []
        assert run.report["revisit_unknown"] == {"page_2_bot_check": 1}
    page_2.write_bytes(original)
    touch_later(page_2)
    back = crawl(server.url, data_dir, **settings)
    assert back.returncode == 0, back.stderr[-3000:]
    assert back.report["revisits"]["not_modified"] == UNIQUE_ARTICLES - 1, "the article is read whole again"
    assert events(data_dir) == [], "an event for an article that never changed"


def test_a_rerun_right_after_a_run_revisits_nothing_it_just_wrote(serve_mirror, www, expected, tmp_path):
    """Default settings: an article written less than THEORY_REVISIT_MIN_HOURS (20) ago is not revisited,
    unless it is on its way to a removal."""
    data_dir = tmp_path / "data"
    server = serve_mirror(www)
    first_run(server, data_dir)
    rerun = crawl(server.url, data_dir)
    print(f"rerun right after the first run: {rerun.report['requests']} requests, {rerun.report['revisits']}")
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert rerun.report["revisits"]["revisited"] == 0
    assert rerun.report["requests"] == len(SECTIONS) + 2  # robots.txt, the home, a listing page per section

    gone = single_page_originals(expected, "241")[0]
    (www / gone["url"].lstrip("/")).unlink()
    # As if the hours had passed, every article revisited: the deleted one gives removal evidence.
    later = crawl(server.url, data_dir, **ALL_RECENT, THEORY_REVISIT_MIN_HOURS="0")
    assert later.report["revisits"]["revisited"] == UNIQUE_ARTICLES and later.report["revisits"]["failing"] == 1
    again = crawl(server.url, data_dir, **ALL_RECENT)
    print(f"rerun with removal evidence pending for one article: {again.report['revisits']}")
    assert again.report["revisits"]["revisited"] == 1, "only the article on its way to a removal"
    assert again.report["revisits"]["failing"] == 1


def test_a_rerun_one_second_after_a_killed_run_confirms_no_removal(serve_mirror, www, expected, tmp_path):
    """Removal evidence in a run that is killed, then in its rerun a second later: both runs saw the
    same hour of the site, which is not THEORY_REMOVAL_MIN_HOURS (12) of evidence."""
    data_dir = tmp_path / "data"
    server = serve_mirror(www)
    settings = {**ALL_RECENT, "THEORY_REVISIT_MIN_HOURS": "0"}
    first_run(server, data_dir, **settings)
    originals = [row for section in SECTIONS for row in single_page_originals(expected, section)]
    deleted, slow = originals[:3], originals[3]
    for row in deleted:
        (www / row["url"].lstrip("/")).unlink()
    server.stop()

    # A page that answers only after a minute keeps the run going until it is killed.
    server = serve_mirror(www, *SLOW_SERVER, "--slow", f"{slow['url']}:60")
    process = start_crawl(server.url, data_dir, **settings, **SLOW_CRAWL, THEORY_SYNC_ITEMS="1")
    deadline = time.monotonic() + 60
    while failing_articles(data_dir) < len(deleted):
        assert process.poll() is None, "the crawl ended before it could be killed"
        assert time.monotonic() < deadline, "the removal evidence was not recorded within 60 s"
        time.sleep(0.05)
    process.kill()
    process.wait(timeout=10)
    server.stop()

    server = serve_mirror(www)
    rerun = crawl(server.url, data_dir, **settings)
    revisits = rerun.report["revisits"]
    print(f"rerun after the killed run: {revisits}")
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert revisits["removed"] == 0 and events(data_dir) == []
    assert revisits["failing"] == len(deleted) and revisits["removal_too_soon"] == len(deleted)
    # The same evidence once the hours are allowed to be 0 confirms them: only the time was missing.
    confirmed = crawl(server.url, data_dir, **settings, THEORY_REMOVAL_MIN_HOURS="0")
    assert {(e["event"], e["article_id"]) for e in events(data_dir)} == {("removed", row["article_id"]) for row in deleted}
    assert confirmed.report["revisits"]["removed"] == len(deleted)


def failing_articles(data_dir: Path) -> int:
    """Articles whose removal evidence a (running) crawl has committed to its state."""
    path = data_dir / "state.sqlite3"
    if not path.exists():
        return 0
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return db.execute("SELECT COUNT(*) FROM revisions WHERE failing_runs > 0").fetchone()[0]
    except sqlite3.OperationalError:  # the schema not made yet
        return 0
    finally:
        db.close()


def test_boilerplate_leaking_into_every_body_is_a_layout_alarm_and_revises_nothing(serve_mirror, www, tmp_path):
    """A template change that adds a paragraph of boilerplate inside every article's body: every revisit
    finds a "new version". More than half of them (and at least 10) is a layout alarm, and none is written."""
    data_dir = tmp_path / "data"
    server = serve_mirror(www)
    settings = {**ALL_RECENT, **IMMEDIATE}
    first_run(server, data_dir, **settings)
    for path in article_files(www):
        rewrite(path, lambda page: page.replace('<div class="ccontent">', f'<div class="ccontent">\n<p>{BOILERPLATE}</p>', 1))
    run = crawl(server.url, data_dir, **settings)
    revisits = run.report["revisits"]
    print(f"boilerplate in every body: exit {run.returncode}, {revisits}, layout alarms {run.report['layout_alarms']}")
    assert events(data_dir) == []
    assert run.returncode == 5, run.stderr[-3000:]
    assert revisits["revised"] == 0 and revisits["revisions_withheld"] == UNIQUE_ARTICLES
    assert run.report["layout_alarms"] == {"revisions_over_half": UNIQUE_ARTICLES}
    assert events(data_dir) == []
    # Nothing of them was kept: the next run reads them whole again and raises the alarm again.
    again = crawl(server.url, data_dir, **settings)
    assert again.returncode == 5 and again.report["revisits"]["revisions_withheld"] == UNIQUE_ARTICLES
    assert events(data_dir) == []

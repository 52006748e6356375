"""`scrapy reextract`: the crawl's articles again from the capture alone, whatever else the capture holds
(refetches, a killed run's half articles, damage), and from captures made by other tools."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from warcio.capture_http import capture_http

from conftest import load_expected, read_jsonl, run_crawl
from crawl_helpers import ARTICLES, reextract

MIRROR_ONLY = {"THEORY_CHANNEL_URL": ""}
# Every written article revisited in every run, however recent, and a removal confirmed by two runs in a row.
REVISIT_ALL_AT_ONCE = {"THEORY_REVISIT_DAYS": "100000", "THEORY_REVISIT_MIN_HOURS": "0", "THEORY_REMOVAL_MIN_HOURS": "0"}


def without(rows: list[dict], *fields: str) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in fields} for row in rows]


def test_pages_fetched_again_in_a_later_run_are_not_glued_to_the_earlier_fetch(serve_mirror, shared_site, tmp_path):
    # Page 2 of a multi-page article fails through all retries in the first run (its page 1 is captured), so
    # the article is fetched whole again in the second run: the capture holds page 1 twice.
    multi_page = next(row for row in load_expected(shared_site) if row["page_count"] >= 2 and row["duplicate_of"] is None)
    fail_file = tmp_path / "fail-first.txt"
    fail_file.write_text(multi_page["url"][: -len(".shtml")] + "_2.shtml 3\n")
    server = serve_mirror(shared_site / "www", "--fail-first", str(fail_file))
    data_dir = tmp_path / "data"
    first = run_crawl(server.url, data_dir, RETRY_TIMES="2", **MIRROR_ONLY)
    assert multi_page["article_id"] not in {row["article_id"] for row in read_jsonl(data_dir / ARTICLES)}, first.stderr[-2000:]
    second = run_crawl(server.url, data_dir, **MIRROR_ONLY)
    assert second.returncode == 0, second.stderr[-3000:]
    rows = read_jsonl(data_dir / ARTICLES)
    assert multi_page["article_id"] in {row["article_id"] for row in rows}

    again = reextract(data_dir / "warc", tmp_path / "out")
    assert again.returncode == 0, again.stderr[-3000:]
    assert without(read_jsonl(tmp_path / "out" / ARTICLES), "crawled_at") == without(rows, "crawled_at")


def test_a_capture_made_by_another_tool_reextracts(serve_mirror, shared_current_site, tmp_path):
    """warcio's capture_http, as a user would capture a few pages: no warcinfo of ours, no article records."""
    server = serve_mirror(shared_current_site / "www")
    channel_url = server.url + "theory/"
    crawled_dir = tmp_path / "crawled"
    crawl = run_crawl("", crawled_dir, THEORY_CHANNEL_URL=channel_url)
    crawled = {row["article_id"]: row for row in read_jsonl(crawled_dir / ARTICLES)}
    assert crawled, crawl.stderr[-3000:]
    chosen = sorted(crawled.values(), key=lambda row: (-row["page_count"], row["article_id"]))[:5]

    warc_dir = tmp_path / "other-tool"
    warc_dir.mkdir()
    with capture_http(str(warc_dir / "capture.warc.gz")):
        for url in [channel_url] + [row["url"] for row in chosen]:
            with urllib.request.urlopen(url, timeout=30) as answer:
                answer.read()

    again = reextract(warc_dir, tmp_path / "out", f"THEORY_CHANNEL_URL={channel_url}")
    assert again.returncode == 0, again.stderr[-3000:]
    rows = read_jsonl(tmp_path / "out" / ARTICLES)
    assert without(rows, "crawled_at", "warc") == without(chosen, "crawled_at", "warc")


def crawled_legacy_mirror(serve_mirror, shared_site, tmp_path) -> tuple[Path, list[dict]]:
    server = serve_mirror(shared_site / "www")
    data_dir = tmp_path / "data"
    crawl = run_crawl(server.url, data_dir, **MIRROR_ONLY)
    assert crawl.returncode == 0, crawl.stderr[-3000:]
    (warc_file,) = sorted((data_dir / "warc").glob("*.warc.gz"))
    return warc_file, read_jsonl(data_dir / ARTICLES)


def assert_one_damage_line(result: subprocess.CompletedProcess, warc_file: Path, offset_from: int, offset_to: int) -> None:
    assert result.returncode == 8, result.stdout + result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"reextract: {warc_file}: damaged"), line
    offset = int(line.split(" at byte ", 1)[1].split(";")[0])
    assert offset_from <= offset <= offset_to, line


def test_a_truncated_warc_gives_one_line_a_non_zero_exit_and_only_whole_articles(serve_mirror, shared_site, tmp_path):
    warc_file, rows = crawled_legacy_mirror(serve_mirror, shared_site, tmp_path)
    size = warc_file.stat().st_size
    with open(warc_file, "r+b") as cut:
        cut.truncate(size // 2)

    result = reextract(warc_file.parent, tmp_path / "out")
    assert_one_damage_line(result, warc_file, 0, size // 2)
    again = read_jsonl(tmp_path / "out" / ARTICLES)
    assert 0 < len(again) < len(rows)
    by_id = {row["article_id"]: row for row in without(rows, "crawled_at")}
    for row in without(again, "crawled_at"):  # every page of each, none from another article's fetch
        assert row == by_id[row["article_id"]]


def test_garbage_in_the_middle_is_skipped_and_reading_resumes_after_it(serve_mirror, shared_site, tmp_path):
    warc_file, rows = crawled_legacy_mirror(serve_mirror, shared_site, tmp_path)
    data = warc_file.read_bytes()
    middle = len(data) // 2
    garbage = bytes((i * 7 + 3) % 256 for i in range(4096))
    warc_file.write_bytes(data[:middle] + garbage + data[middle:])

    result = reextract(warc_file.parent, tmp_path / "out")
    assert_one_damage_line(result, warc_file, 0, middle)
    assert "resumed at byte" in result.stderr
    again = read_jsonl(tmp_path / "out" / ARTICLES)
    assert len(again) >= 0.9 * len(rows)
    by_id = {row["article_id"]: row for row in without(rows, "crawled_at", "warc")}
    for row in without(again, "crawled_at", "warc"):
        assert row == by_id[row["article_id"]]


def test_correct_appends_a_corrected_event_per_article_an_older_parser_read_otherwise(serve_mirror, shared_site, tmp_path):
    """Lines written by an older parser (here: the state's record of them made wrong by hand, as a parser
    that kept 文 as an author would have written them): the data dir's own capture read with today's
    readers corrects each of them once, and a second run finds nothing more."""
    import sqlite3

    server = serve_mirror(shared_site / "www")
    data_dir = tmp_path / "data"
    assert run_crawl(server.url, data_dir, "sections=241").returncode == 0
    rows = [row for row in read_jsonl(data_dir / ARTICLES) if row["authors"]][:4]
    db = sqlite3.connect(data_dir / "state.sqlite3")
    with db:
        for row in rows:
            (fields,) = db.execute("SELECT fields FROM revisions WHERE article_id = ?", (row["article_id"],)).fetchone()
            old = json.loads(fields) | {"authors": ["文", *row["authors"]]}
            db.execute("UPDATE revisions SET fields = ? WHERE article_id = ?", (json.dumps(old, ensure_ascii=False), row["article_id"]))
    db.close()

    first = reextract(data_dir / "warc", data_dir, arguments=("correct=1",))
    assert first.returncode == 0, first.stderr[-3000:]
    events = read_jsonl(data_dir / "changes.jsonl")
    assert sorted(event["article_id"] for event in events) == sorted(row["article_id"] for row in rows)
    for event in events:
        row = next(row for row in rows if row["article_id"] == event["article_id"])
        assert event["event"] == "corrected" and event["evidence"]["source"] == "reextract"
        assert event["fields"] == {"authors": {"old": ["文", *row["authors"]], "new": row["authors"]}}
    assert f"{len(rows)} corrected events" in first.stdout

    again = reextract(data_dir / "warc", data_dir, arguments=("correct=1",))
    assert again.returncode == 0 and len(read_jsonl(data_dir / "changes.jsonl")) == len(rows)
    assert "0 corrected events" in again.stdout


def test_a_removal_whose_evidence_is_damaged_is_not_judged_again(serve_mirror, shared_site, tmp_path):
    """The 404 that confirmed a removal is damaged in the capture: re-extraction makes no removed event from
    the one earlier 404 left, and says what it left out."""
    www = Path(shutil.copytree(shared_site / "www", tmp_path / "www"))
    server = serve_mirror(www)
    data_dir = tmp_path / "data"
    assert run_crawl(server.url, data_dir, **MIRROR_ONLY).returncode == 0
    gone = next(row for row in read_jsonl(data_dir / ARTICLES) if row["page_count"] == 1)
    (www / urlsplit(gone["url"]).path.lstrip("/")).unlink()
    for _ in range(2):  # the first revisit finds it failing, the second confirms the removal
        revisit = run_crawl(server.url, data_dir, **MIRROR_ONLY, **REVISIT_ALL_AT_ONCE)
        assert revisit.returncode == 0, revisit.stderr[-3000:]
    changes = read_jsonl(data_dir / "changes.jsonl")
    assert [(event["event"], event["article_id"]) for event in changes] == [("removed", gone["article_id"])]

    rule = [f"{name}={value}" for name, value in REVISIT_ALL_AT_ONCE.items()]
    whole = reextract(data_dir / "warc", tmp_path / "whole", *rule)
    assert whole.returncode == 0, whole.stderr[-3000:]
    assert without(read_jsonl(tmp_path / "whole" / "changes.jsonl"), "detected_at") == without(changes, "detected_at")

    last = sorted((data_dir / "warc").glob("*.warc.gz"))[-1]
    confirming = next(
        json.loads(line.split(" ", 2)[2]) for line in Path(f"{last}.cdxj").read_text().splitlines()
        if json.loads(line.split(" ", 2)[2])["url"] == gone["url"]
    )
    assert confirming["status"] == "404"
    offset, length = int(confirming["offset"]), int(confirming["length"])
    data = bytearray(last.read_bytes())
    data[offset + length // 2: offset + length // 2 + 16] = b"\xff" * 16
    last.write_bytes(bytes(data))
    damaged = reextract(data_dir / "warc", tmp_path / "damaged", *rule)
    assert_one_damage_line(damaged, last, offset, offset)
    assert "1 left out (answers or pages not in the capture)" in damaged.stdout, damaged.stdout
    assert read_jsonl(tmp_path / "damaged" / "changes.jsonl") == []
    assert without(read_jsonl(tmp_path / "damaged" / ARTICLES), "crawled_at") == without(read_jsonl(data_dir / ARTICLES), "crawled_at")


def test_a_304_revisit_record_reads_back_as_the_bare_304_in_the_new_form_the_old_form_and_another_tools(tmp_path):
    """A 304 is now a block-less revisit record and a warc-fields metadata record after it; earlier releases wrote
    it as a revisit record holding the 304's headers; another tool's block-less revisit may have no evidence
    record at all. Each comes back as a 304 (what a revisit's judgement reads), with the headers where known."""
    from scrapy.http import Request, Response
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    from crawler.capture import Capture
    from crawler.commands.reextract import read_response, scan
    from crawler.warc import NOT_MODIFIED_PROFILE

    url = "http://theory.example/241/201901/01/190101000000001.shtml"
    not_modified = [("ETag", '"5f-abc"'), ("Date", "Mon, 06 May 2024 07:08:09 GMT")]
    warc_dir = tmp_path / "warc"
    with open(tmp_path.joinpath("old.warc.gz"), "wb") as fh:  # an earlier release's, and another tool's
        writer = WARCWriter(fh, gzip=True, warc_version="WARC/1.1")
        refers = {"WARC-Profile": NOT_MODIFIED_PROFILE, "WARC-Refers-To-Target-URI": url}
        writer.write_record(writer.create_warc_record(
            url, "revisit", warc_headers_dict=dict(refers),
            http_headers=StatusAndHeaders("304 Not Modified", not_modified, protocol="HTTP/1.1")))
        writer.write_record(writer.create_warc_record(url, "revisit", warc_headers_dict=dict(refers)))
    capture = Capture(tmp_path, 10**8, {})
    request = Request(url)
    capture.record(request, Response(url, status=200, headers={"Content-Type": "text/html"}, body=b"<html></html>", request=request))
    new = capture.record(request, Response(url, status=304, headers=not_modified, request=request))
    capture.writer.close()
    shutil.move(tmp_path / "old.warc.gz", warc_dir / "a-20190101T000000Z-00000.warc.gz")

    found = scan(warc_dir, lambda info: ("", ""))
    old_form, another_tools = [place for place in found.responses.values() if place.file.startswith("a-")]
    answers = {name: read_response(warc_dir, found.responses[place.record_id])
               for name, place in [("new", new), ("old", old_form), ("another tool's", another_tools)]}
    assert {name: (response.url, response.status, response.body) for name, response in answers.items()} == {
        name: (url, 304, b"") for name in answers}
    for name in ("new", "old"):
        assert answers[name].headers.to_unicode_dict() == {"Etag": '"5f-abc"', "Date": "Mon, 06 May 2024 07:08:09 GMT"}, name
    assert not answers["another tool's"].headers

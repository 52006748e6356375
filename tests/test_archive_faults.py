"""Faults of a public web archive, against a small fake archive on 127.0.0.1 that answers CDX queries in
pywb's format and replays the legacy mirror's pages in raw mode: a 429 with Retry-After, an archive that
keeps refusing, a CDX answer cut mid-line, a capture whose replay answers 404, and page 2 archived years
after page 1. The legacy host itself is never contacted (port 9, nothing listens)."""

from __future__ import annotations

import json
import shutil
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from conftest import latest_run_report, load_expected, read_jsonl, run_crawl
from crawl_helpers import state_rows
from fixture_server import FixtureServer
from crawler.urls import article_page_url

LEGACY_URL = "http://127.0.0.1:9/"
CAPTURED = "20151107083012"
YEARS_LATER = "20190302110455"


class FakeArchive:
    """CDX at /coll/cdx (JSON lines), replays at /coll/<timestamp>id_/<original URL>, from the mirror's files."""

    def __init__(self, www: Path, captures: list[tuple[str, str]]):
        self.www = www
        self.captures = captures  # (timestamp, original URL)
        self.refusals: list[tuple[int, dict[str, str]]] = []  # answered to the next CDX queries, in order
        self.refuse_always: tuple[int, dict[str, str]] | None = None
        self.cut = False
        self.missing: set[str] = set()  # original URLs whose replay answers 404
        self.requests: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.archive = self
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/coll/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FakeArchive:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    def settings(self) -> dict[str, str]:
        return {
            "THEORY_LEGACY_SOURCE": "archive", "THEORY_ARCHIVE_CDX_URL": self.url + "cdx",
            "THEORY_ARCHIVE_REPLAY_URL": self.url, "THEORY_ARCHIVE_DELAY": "0",
        }

    def answer(self, path: str, query: str) -> tuple[int, dict[str, str], bytes]:
        if path == "/coll/cdx":
            with self.lock:
                self.requests["cdx"] += 1
                refusal = self.refusals.pop(0) if self.refusals else self.refuse_always
            if refusal:
                return refusal[0], refusal[1], b"refused"
            asked = parse_qs(query)["url"][0]
            prefix = asked.removesuffix("*")
            lines = [
                json.dumps({"urlkey": "", "timestamp": stamp, "url": url, "mime": "text/html", "status": "200"}) + "\n"
                for stamp, url in self.captures
                if (url.split("://", 1)[1].startswith(prefix) if asked.endswith("*") else url.split("://", 1)[1] == asked)
            ]
            body = "".join(lines).encode()
            return 200, {"Content-Type": "text/x-ndjson"}, body[: len(body) * 2 // 3] if self.cut else body
        if not path.startswith("/coll/"):  # robots.txt
            return 404, {"Content-Type": "text/plain"}, b""
        stamp, _, original = path.removeprefix("/coll/").partition("id_/")
        with self.lock:
            self.requests["replay"] += 1
        file = self.www / urlsplit(original).path.lstrip("/")
        if original in self.missing or not stamp.isdigit() or not file.is_file():
            return 404, {"Content-Type": "text/html"}, b"<html><body>not in the archive</body></html>"
        return 200, {"Content-Type": "text/html"}, file.read_bytes()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        status, headers, body = self.server.archive.answer(unquote(parts.path), parts.query)
        self.send_response(status)
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args) -> None:  # noqa: A002
        pass


@pytest.fixture
def section_241(shared_site) -> list[dict]:
    return [row for row in load_expected(shared_site) if row["url"].startswith("/241/")]


def captures_of(rows: list[dict], stamp: str = CAPTURED) -> list[tuple[str, str]]:
    base = LEGACY_URL.rstrip("/")
    return [(stamp, article_page_url(base + row["url"], page)) for row in rows for page in range(1, row["page_count"] + 1)]


def crawl(archive: FakeArchive, data_dir: Path, *arguments: str):
    return run_crawl(LEGACY_URL, data_dir, *arguments, **archive.settings())


def written_ids(data_dir: Path) -> set[str]:
    return {row["article_id"] for row in read_jsonl(data_dir / "articles.jsonl")}


def test_a_429_with_retry_after_is_waited_out_and_asked_again(shared_site, section_241, tmp_path):
    with FakeArchive(shared_site / "www", captures_of(section_241)) as archive:
        archive.refusals = [(429, {"Retry-After": "1"})]
        result = crawl(archive, tmp_path / "data", "sections=241")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "the archive answered 429" in result.stderr and "trying again in 1.0 s" in result.stderr
    # The home's two forms (the first refused once, then asked again), then the section.
    assert archive.requests["cdx"] == 4
    assert written_ids(tmp_path / "data") == {row["article_id"] for row in section_241}
    report = latest_run_report(tmp_path / "data")
    assert report["archive"]["retries"] == 1


def test_an_archive_that_keeps_refusing_stops_the_walk_with_one_clear_line(shared_site, section_241, tmp_path):
    with FakeArchive(shared_site / "www", captures_of(section_241)) as archive:
        archive.refuse_always = (503, {"Retry-After": "0"})
        result = crawl(archive, tmp_path / "data", "sections=241,252")
    assert result.returncode == 4, result.stderr[-3000:]
    assert result.stderr.count("the archive keeps refusing: HTTP 503") == 1
    # The first query and its 3 retries; the walk stops there: section 252 is not asked.
    assert archive.requests["cdx"] == 4 and archive.requests["replay"] == 0
    report = latest_run_report(tmp_path / "data")
    assert report["incomplete_walks"] == {"archive": ["stopped (refused)"]}
    assert report["archive"]["refused"] == 503
    assert written_ids(tmp_path / "data") == set()


def test_a_cdx_answer_cut_mid_line_keeps_its_whole_lines_and_the_walk_is_incomplete(shared_site, section_241, tmp_path):
    with FakeArchive(shared_site / "www", captures_of(section_241)) as archive:
        archive.cut = True
        result = crawl(archive, tmp_path / "data", "sections=241")
    assert result.returncode == 4, result.stderr[-3000:]
    assert "the CDX answer for 127.0.0.1:9/241/* was cut short" in result.stderr
    report = latest_run_report(tmp_path / "data")
    assert report["incomplete_walks"] == {"archive": ["127.0.0.1:9/241/ (cut_answer)"]}
    written = written_ids(tmp_path / "data")
    # The articles whose page 1 stood on a whole line (a cut multi-page article may have lost a later page).
    assert 0 < len(written) < len(section_241) and written <= {row["article_id"] for row in section_241}


def test_a_capture_whose_replay_answers_404_is_owed_never_a_removal(shared_site, section_241, tmp_path):
    lost = section_241[0]
    with FakeArchive(shared_site / "www", captures_of(section_241)) as archive:
        archive.missing = {LEGACY_URL.rstrip("/") + lost["url"]}
        result = crawl(archive, tmp_path / "data", "sections=241")
    assert result.returncode == 0, result.stderr[-3000:]
    assert written_ids(tmp_path / "data") == {row["article_id"] for row in section_241} - {lost["article_id"]}
    report = latest_run_report(tmp_path / "data")
    assert report["article_failures"] == {"archive_http_404": 1}
    assert state_rows(tmp_path / "data", lost["article_id"]) == ("pending", 1, "archive_http_404")
    assert read_jsonl(tmp_path / "data" / "changes.jsonl") == []


def test_a_written_article_whose_captures_are_gone_from_the_archive_is_never_removed(shared_site, section_241, tmp_path):
    """archive mode, with every revisit and removal due at once: the archive losing the captures of an article
    already written says nothing about the site. It is neither replayed again nor revisited, and no event."""
    gone = next(row for row in section_241 if row["page_count"] == 2)
    data_dir = tmp_path / "data"
    due = {"THEORY_REVISIT_MIN_HOURS": "0", "THEORY_REMOVAL_MIN_HOURS": "0"}
    with FakeArchive(shared_site / "www", captures_of(section_241)) as archive:
        first = run_crawl(LEGACY_URL, data_dir, "sections=241", **archive.settings(), **due)
        assert first.returncode == 0, first.stderr[-3000:]
        assert gone["article_id"] in written_ids(data_dir)
        replays = archive.requests["replay"]
        archive.missing = {original for _, original in captures_of([gone])}
        for _ in range(2):  # THEORY_REMOVAL_CONFIRMATIONS runs in a row, each walking the whole index again
            run = run_crawl(LEGACY_URL, data_dir, "sections=241", "full=1", **archive.settings(), **due)
            assert run.returncode == 0, run.stderr[-3000:]
            assert latest_run_report(data_dir)["revisits"]["revisited"] == 0
        assert archive.requests["replay"] == replays
    assert read_jsonl(data_dir / "changes.jsonl") == []
    assert state_rows(data_dir, gone["article_id"])[0] == "written"


def test_page_2_archived_years_after_page_1_leaves_the_article_owed_not_short(shared_site, section_241, tmp_path):
    split = next(row for row in section_241 if row["page_count"] == 2)
    others = [row for row in section_241 if row is not split]
    page1, page2 = captures_of([split])
    with FakeArchive(shared_site / "www", [*captures_of(others), page1, (YEARS_LATER, page2[1])]) as archive:
        result = crawl(archive, tmp_path / "data", "sections=241")
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"page 2 has no capture within 30 days of page 1's ({CAPTURED}); it stays owed" in result.stderr
    assert written_ids(tmp_path / "data") == {row["article_id"] for row in others}
    assert state_rows(tmp_path / "data", split["article_id"]) == ("pending", 1, "archive_no_close_capture")
    report = latest_run_report(tmp_path / "data")
    assert report["archive"]["owed/no_close_capture"] == 1

    # With a wider window the same capture is close enough, and the article is written whole.
    with FakeArchive(shared_site / "www", [*captures_of(others), page1, (YEARS_LATER, page2[1])]) as archive:
        again = run_crawl(
            LEGACY_URL, tmp_path / "data", "sections=241", "revisit=0",
            **{**archive.settings(), "THEORY_ARCHIVE_MAX_SKEW_DAYS": "2000"},
        )
    assert again.returncode == 0, again.stderr[-3000:]
    (row,) = [row for row in read_jsonl(tmp_path / "data" / "articles.jsonl") if row["article_id"] == split["article_id"]]
    assert row["page_count"] == 2 and [page["timestamp"] for page in row["archived_from"]] == [CAPTURED, YEARS_LATER]


def test_live_then_archive_reads_an_article_the_live_host_no_longer_has(shared_site, section_241, tmp_path):
    """live,archive with the legacy host up: an article it answers 404 for is looked up in the archive's
    index and read from its capture; the rest comes from the live host."""
    www = Path(shutil.copytree(shared_site / "www", tmp_path / "www"))
    gone = next(row for row in section_241 if row["page_count"] == 1)
    (www / gone["url"].lstrip("/")).unlink()
    with FixtureServer(www) as live:
        base = live.url.rstrip("/")
        captures = [(CAPTURED, article_page_url(base + row["url"], 1)) for row in section_241 if row["page_count"] == 1]
        with FakeArchive(shared_site / "www", captures) as archive:
            result = run_crawl(live.url, tmp_path / "data", "sections=241", **{**archive.settings(), "THEORY_LEGACY_SOURCE": "live,archive"})
    assert result.returncode == 0, result.stderr[-3000:]
    rows = read_jsonl(tmp_path / "data" / "articles.jsonl")
    expected = load_expected(shared_site)
    group = {row["article_id"]: row["duplicate_of"] or row["article_id"] for row in expected}
    assert sorted(group[row["article_id"]] for row in rows) == sorted({group[row["article_id"]] for row in expected if "241" in row["listed_in"]})
    (archived,) = [row for row in rows if "archived_from" in row]
    assert archived["article_id"] == gone["article_id"] and archived["url"] == base + gone["url"]
    assert archived["archived_from"] == [{"url": f"{archive.url}{CAPTURED}id_/{base}{gone['url']}", "timestamp": CAPTURED}]
    # One lookup of that article's prefix, one replay; nothing else asked of the archive.
    assert archive.requests == {"cdx": 1, "replay": 1}
    report = latest_run_report(tmp_path / "data")
    assert report["article_failures"] == {"http_404": 1}
    assert report["archive"]["article_lookups"] == 1


def test_after_an_incomplete_walk_the_next_run_walks_the_index_in_full(shared_site, section_241, tmp_path):
    data_dir = tmp_path / "data"
    with FakeArchive(shared_site / "www", captures_of(section_241)) as archive:
        first = crawl(archive, data_dir, "revisit=0")  # a full walk: the home's two forms, one query per section
        assert first.returncode == 0, first.stderr[-3000:]
        assert archive.requests["cdx"] == 8
        archive.cut = True
        cut = crawl(archive, data_dir, "revisit=0")  # incremental: one query for the host, cut short
        assert cut.returncode == 4, cut.stderr[-3000:]
        assert archive.requests["cdx"] == 9
        archive.cut = False
        again = crawl(archive, data_dir, "revisit=0")
        assert again.returncode == 0, again.stderr[-3000:]
        assert archive.requests["cdx"] == 17
        assert latest_run_report(data_dir)["incomplete_walks"] == {}
        whole = crawl(archive, data_dir, "revisit=0")  # complete again: incremental again
        assert whole.returncode == 0 and archive.requests["cdx"] == 18
    assert written_ids(data_dir) == {row["article_id"] for row in section_241}


def test_a_removed_event_names_the_latest_archived_copy_in_live_archive_mode(shared_site, section_241, tmp_path):
    www = Path(shutil.copytree(shared_site / "www", tmp_path / "www"))
    gone = next(row for row in section_241 if row["page_count"] == 1)
    kept = next(row for row in section_241 if row["page_count"] == 1 and row is not gone)
    data_dir = tmp_path / "data"
    with FixtureServer(www) as live:
        base = live.url.rstrip("/")
        captures = [
            (CAPTURED, base + gone["url"]), (YEARS_LATER, base + gone["url"]), (CAPTURED, base + kept["url"]),
        ]
        with FakeArchive(shared_site / "www", captures) as archive:
            # Revisits in every run, and a removal confirmed by runs minutes apart.
            settings = {**archive.settings(), "THEORY_LEGACY_SOURCE": "live,archive", "THEORY_REVISIT_MIN_HOURS": "0", "THEORY_REMOVAL_MIN_HOURS": "0"}
            first = run_crawl(live.url, data_dir, "sections=241", **settings)
            assert first.returncode == 0, first.stderr[-3000:]
            assert archive.requests["cdx"] == 0  # the live host had everything
            (www / gone["url"].lstrip("/")).unlink()
            for _ in range(2):  # THEORY_REMOVAL_CONFIRMATIONS runs in a row
                run = run_crawl(live.url, data_dir, "sections=241", **settings)
                assert run.returncode == 0, run.stderr[-3000:]
    (event,) = read_jsonl(data_dir / "changes.jsonl")
    assert event["event"] == "removed" and event["article_id"] == gone["article_id"]
    assert event["archived_copy"] == f"{archive.url}{YEARS_LATER}id_/{base}{gone['url']}"
    assert archive.requests["cdx"] == 2 and archive.requests["replay"] == 0


def test_an_archive_without_a_capture_of_the_home_walks_the_known_sections_and_is_complete(shared_site, section_241, tmp_path):
    """Nothing more can be learned from the archive: a warning, a stat, the known list, exit 0."""
    with FakeArchive(shared_site / "www", captures_of(section_241)) as archive:
        result = crawl(archive, tmp_path / "data", "sections=241")
    assert result.returncode == 0, result.stderr[-3000:]
    assert (
        "archive: no section read from a capture of the legacy home (no_home_capture); falling back to the sections the site"
        " is known to have had: 239, 241, 242, 251, 252, 253"
    ) in result.stderr
    report = latest_run_report(tmp_path / "data")
    assert report["archive"]["sections_from"] == "known_list (no_home_capture)"
    assert report["archive"]["sections_fallback/no_home_capture"] == 1
    assert report["incomplete_walks"] == {}
    assert written_ids(tmp_path / "data") == {row["article_id"] for row in section_241}


def test_a_home_capture_whose_replay_fails_leaves_the_walk_incomplete(shared_site, section_241, tmp_path):
    """The index lists a capture of the home that does not replay: the known sections are walked, and the
    walk is incomplete (exit 4), so that the next run asks for the home again."""
    home = LEGACY_URL  # the fake replays files of the mirror: "/" is none, a 404
    data_dir = tmp_path / "data"
    with FakeArchive(shared_site / "www", [(CAPTURED, home), *captures_of(section_241)]) as archive:
        result = crawl(archive, data_dir, "sections=241")
        assert result.returncode == 4, result.stderr[-3000:]
        assert f"archive: the replay of the home's capture {archive.url}{CAPTURED}id_/{home} failed: http_404" in result.stderr
        assert "(archive_http_404); falling back to the sections the site is known to have had" in result.stderr
        report = latest_run_report(data_dir)
        assert report["incomplete_walks"] == {"archive": [f"home {CAPTURED}id_/{home} (archive_http_404)"]}
        assert report["archive"]["sections_from"] == "known_list (archive_http_404)"
        assert written_ids(data_dir) == {row["article_id"] for row in section_241}

        # Now the home replays (as /index.shtml): its sections are read, the walk completes.
        archive.captures = [(YEARS_LATER, home + "index.shtml"), *captures_of(section_241)]
        again = crawl(archive, data_dir, "sections=241", "revisit=0")
    assert again.returncode == 0, again.stderr[-3000:]
    report = latest_run_report(data_dir)
    assert report["archive"]["sections_from"] == "home" and report["incomplete_walks"] == {}

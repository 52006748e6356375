"""The legacy articles from a public web archive (THEORY_LEGACY_SOURCE), end to end against pywb.

pywb, in a venv of its own (see tests/test_replay.py), serves a collection built from this crawler's own
WARC capture of the legacy mirror served on 127.0.0.1; the mirror's server is then stopped, so that the
legacy host is gone and only the archive has its articles."""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from jsonschema import Draft7Validator
from warcio.archiveiterator import ArchiveIterator

from conftest import SHARED_SITE, SHARED_CURRENT_SITE, MirrorServer, latest_run_report, load_expected, read_jsonl, run_crawl
from crawl_helpers import assert_complete_once
from fixture_server import FixtureServer
from crawler.pipelines import load_schema
from crawler.urls import article_page_url
from test_replay import PYWB_BIN, free_port
from test_two_sites import as_expected, group_resolver

COMPARED_FIELDS = [
    "url", "article_id", "section_id", "section_name", "title", "authors", "source",
    "published_date", "published_time", "editor", "body", "images", "page_count",
]


def assert_every_field_exact(rows: list[dict], expected: list[dict]) -> None:
    truth = {row["url"]: row for row in expected}
    wrong = Counter(
        field for row in map(as_expected, rows) for field in COMPARED_FIELDS if row[field] != truth[row["url"]][field]
    )
    assert not wrong, f"fields that differ from the ground truth: {dict(wrong)}"


class Archive:
    """pywb's `wayback` serving one collection, on a free port of 127.0.0.1."""

    def __init__(self, pywb_bin: Path, root: Path, packages: list[Path]):
        root.mkdir()
        # The crawl's WACZ, with its own index (the answers only, never a metadata record of an article).
        adds = [["wb-manager", "add", "--unpack-wacz", "coll", str(package)] for package in packages]
        for command in (["wb-manager", "init", "coll"], *adds):
            done = subprocess.run([str(pywb_bin / command[0]), *command[1:]], cwd=root, capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stdout + done.stderr
        port = free_port()
        # Its log goes to a file: a pipe nobody reads fills up and blocks it, one line per request.
        self.log = open(root / "wayback.log", "w")
        self.process = subprocess.Popen(
            [str(pywb_bin / "wayback"), "--bind", "127.0.0.1", "-p", str(port)],
            cwd=root, stdout=self.log, stderr=subprocess.STDOUT, text=True,
        )
        self.cdx_url = f"http://127.0.0.1:{port}/coll/cdx"
        self.replay_url = f"http://127.0.0.1:{port}/coll/"
        self.wait_until_up(f"http://127.0.0.1:{port}/", root / "wayback.log")

    def wait_until_up(self, url: str, log: Path, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"wayback exited with {self.process.returncode}: {log.read_text()[-2000:]}")
            try:
                urllib.request.urlopen(url, timeout=2).close()
                return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.2)
        raise TimeoutError(f"wayback did not answer {url} within {timeout} s")

    def settings(self, source: str) -> dict[str, str]:
        return {
            "THEORY_LEGACY_SOURCE": source, "THEORY_ARCHIVE_CDX_URL": self.cdx_url,
            "THEORY_ARCHIVE_REPLAY_URL": self.replay_url, "THEORY_ARCHIVE_DELAY": "0",
        }

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


def require_pywb_and_mirror() -> None:
    if PYWB_BIN is None or not (PYWB_BIN / "wayback").exists():
        reason = "pywb is not installed: set THEORY_PYWB_BIN to the bin directory of a venv with pywb"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {reason}")
        pytest.skip(reason)
    if not (SHARED_SITE / "serve.py").exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but the shared mirror is missing at {SHARED_SITE}")
        pytest.skip(f"the shared mirror is not at {SHARED_SITE}")


@contextmanager
def archived_mirror(www: Path, tmp: Path):
    """A legacy mirror (``www``) captured by a crawl, put into pywb, and its server stopped: (its URL, the archive)."""
    require_pywb_and_mirror()
    mirror = MirrorServer(SHARED_SITE / "serve.py", www)
    try:
        captured = run_crawl(mirror.url, tmp / "capture")
    finally:
        mirror.stop()  # the legacy host is gone from here on
    assert captured.returncode == 0, captured.stderr[-3000:]
    archive = Archive(PYWB_BIN, tmp / "pywb", sorted((tmp / "capture" / "wacz").glob("*.wacz")))
    try:
        yield mirror.url, archive
    finally:
        archive.stop()


@pytest.fixture(scope="module")
def archived_legacy_host(tmp_path_factory):
    with archived_mirror(SHARED_SITE / "www", tmp_path_factory.mktemp("archive")) as host:
        yield host


# A section the mirror lacks, and so does the list of sections the site is known to have had: a copy of 253
# (读书) under a new id, each article under a new id (the same URL date, other milliseconds) and title, so that
# neither the dedupe by id nor the one by content drops the copies.
NEW_SECTION, COPIED_SECTION = "254", "253"
NEW_SECTION_NAME = "理论新篇"


def new_article_id(article_id: str) -> str:
    return article_id[:-3] + f"{(int(article_id[-3:]) + 500) % 1000:03d}"


def mirror_with_new_section(www: Path, expected: list[dict]) -> dict[str, str]:
    """Adds the section to a copy of the mirror's www (its directory, and a link in the home's channel nav);
    returns the new article ids and the ids they are copies of."""
    copied = {row["article_id"] for row in expected if row["url"].startswith(f"/{COPIED_SECTION}/")}
    renamed = {original: new_article_id(original) for original in copied}
    assert not set(renamed.values()) & {row["article_id"] for row in expected}

    def moved(data: bytes) -> bytes:  # ASCII in GBK pages: digits and "/" are never part of a double byte
        data = data.replace(f"/{COPIED_SECTION}/".encode(), f"/{NEW_SECTION}/".encode())
        data = data.replace(f"{COPIED_SECTION}_".encode(), f"{NEW_SECTION}_".encode())
        data = data.replace(f"{COPIED_SECTION}.shtml".encode(), f"{NEW_SECTION}.shtml".encode())
        for original, new in renamed.items():
            data = data.replace(original.encode(), new.encode())
        return data.replace(b'<div class="ctitle"><span>', f'<div class="ctitle"><span>{NEW_SECTION} '.encode())

    for source in sorted((www / COPIED_SECTION).rglob("*")):
        if source.is_file():
            target = www / moved(f"/{source.relative_to(www)}".encode()).decode().lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            page = moved(source.read_bytes())
            if target.parent != www / NEW_SECTION:
                # An article page that links its section nowhere: its section's name is the home's (the fallback).
                page = page.replace(f'/{NEW_SECTION}/{NEW_SECTION}.shtml"'.encode(), f'/{NEW_SECTION}/"'.encode())
            target.write_bytes(page)
    home = www / "index.shtml"
    nav_end = b'</ul></div>'
    page = home.read_bytes()
    link = f'<li><a href="/{NEW_SECTION}/{NEW_SECTION}.shtml">{NEW_SECTION_NAME}</a></li>'.encode("gbk")
    assert page.count(nav_end) >= 1 and b'class="channel_nav"' in page
    start = page.index(b'class="channel_nav"')
    end = page.index(nav_end, start)
    home.write_bytes(page[:end] + link + page[end:])
    return {new: original for original, new in renamed.items()}


@pytest.fixture(scope="module")
def archived_host_with_a_new_section(tmp_path_factory):
    """As ``archived_legacy_host``, from a copy of the mirror with a section the known list lacks:
    (its URL, the archive, new article id -> the id of the article it copies)."""
    require_pywb_and_mirror()
    tmp = tmp_path_factory.mktemp("archive_new_section")
    www = Path(shutil.copytree(SHARED_SITE / "www", tmp / "www"))
    copies = mirror_with_new_section(www, load_expected(SHARED_SITE))
    with archived_mirror(www, tmp) as (url, archive):
        yield url, archive, copies


def assert_replays_name_their_capture(data_dir: Path, rows: list[dict], replay_url: str) -> None:
    """Each replay's response record has the replay URL as its target, and a metadata record concurrent with
    it names the original URL and the capture's timestamp."""
    responses, origins = {}, {}
    for path in sorted((data_dir / "warc").glob("*.warc.gz")):
        with open(path, "rb") as stream:
            for record in ArchiveIterator(stream):
                headers = record.rec_headers
                if record.rec_type == "response":
                    responses[headers.get_header("WARC-Record-ID")] = headers.get_header("WARC-Target-URI")
                elif record.rec_type == "metadata" and headers.get_header("Content-Type") == "application/warc-fields":
                    # (the others are the crawl's article records, application/json)
                    fields = dict(
                        line.split(": ", 1) for line in record.content_stream().read().decode("utf-8").splitlines() if line
                    )
                    origins[headers.get_header("WARC-Concurrent-To")] = (headers.get_header("WARC-Target-URI"), fields)
    for row in rows:
        for number, (page, ref) in enumerate(zip(row["archived_from"], row["warc"]), 1):
            assert responses[ref["record_id"]] == page["url"]
            target, fields = origins[ref["record_id"]]
            assert target == page["url"]
            assert fields == {"original-url": article_page_url(row["url"], number), "capture-timestamp": page["timestamp"]}


def test_archive_mode_rebuilds_every_legacy_article_from_the_archive_alone(archived_legacy_host, tmp_path):
    legacy_url, archive = archived_legacy_host
    expected = load_expected(SHARED_SITE)
    data_dir = tmp_path / "data"
    result = run_crawl(legacy_url, data_dir, **archive.settings("archive"))
    assert result.returncode == 0, result.stderr[-3000:]

    rows = assert_complete_once(data_dir, expected)
    assert len(rows) == 291
    assert_every_field_exact(rows, expected)
    validator = Draft7Validator(load_schema())
    assert not [row for row in rows if not validator.is_valid(row)]
    for row in rows:
        # Each page from its capture, in raw mode: <replay prefix><14-digit timestamp>id_/<original page URL>.
        assert len(row["archived_from"]) == row["page_count"]
        for number, page in enumerate(row["archived_from"], 1):
            assert re.fullmatch(r"\d{14}", page["timestamp"])
            assert page["url"] == f"{archive.replay_url}{page['timestamp']}id_/{article_page_url(row['url'], number)}"
        assert len(row["warc"]) == row["page_count"]

    assert_replays_name_their_capture(data_dir, rows, archive.replay_url)

    report = latest_run_report(data_dir)
    assert report["exit_status"] == 0
    assert report["legacy_source"] == "archive"
    assert report["archive"]["articles_read"] == 291 + report["duplicates"]["content"]
    # The legacy host was never contacted: it is down, and not one connection failed.
    assert report["download_errors"] == 0 and not report["hosts_down"]
    assert report["listing_pages"] == 0

    # An incremental run asks the archive once (captures since the last one seen, less 30 days), writes nothing.
    again = run_crawl(legacy_url, data_dir, "revisit=0", **archive.settings("archive"))
    assert again.returncode == 0, again.stderr[-3000:]
    report = latest_run_report(data_dir)
    assert report["archive"]["cdx_queries"] == 1
    assert report["written"] == 0
    assert len(read_jsonl(data_dir / "articles.jsonl")) == 291


def test_live_then_archive_with_the_legacy_host_down(archived_legacy_host, tmp_path):
    """live,archive: the legacy start page fails (the host is down), so its articles come from the archive,
    exit 4 tells the operator; the current site is crawled as usual."""
    legacy_url, archive = archived_legacy_host
    if not (SHARED_CURRENT_SITE / "serve.py").exists():
        pytest.skip(f"the shared current mirror is not at {SHARED_CURRENT_SITE}")
    current = MirrorServer(SHARED_CURRENT_SITE / "serve.py", SHARED_CURRENT_SITE / "www")
    data_dir = tmp_path / "data"
    try:
        result = run_crawl(
            legacy_url, data_dir, THEORY_CHANNEL_URL=current.url + "theory/", **archive.settings("live,archive")
        )
    finally:
        current.stop()
    assert result.returncode == 4, result.stderr[-3000:]
    report = latest_run_report(data_dir)
    assert report["start_failures"] == {"legacy": "connection_refused"}
    assert report["legacy_source"] == "live,archive"

    rows = read_jsonl(data_dir / "articles.jsonl")
    legacy_rows = [row for row in rows if len(row["article_id"]) == 15]
    current_rows = [row for row in rows if len(row["article_id"]) != 15]
    expected, current_expected = load_expected(SHARED_SITE), load_expected(SHARED_CURRENT_SITE)
    assert_every_field_exact(legacy_rows, expected)
    assert_every_field_exact(current_rows, current_expected)
    assert all("archived_from" in row for row in legacy_rows)
    assert not any("archived_from" in row for row in current_rows)
    # Every content-duplicate group of both sites once: the 291 legacy and 145 current articles of a live crawl
    # of both (which copy of the 3 legacy articles republished on the current site comes first may differ).
    group = group_resolver(expected + current_expected)
    groups = Counter(group(row["article_id"]) for row in rows)
    assert set(groups) == {group(row["article_id"]) for row in expected + current_expected}
    assert max(groups.values()) == 1 and len(rows) == 436


def archived_paths(rows: list[dict]) -> set[str]:
    """The paths of every page of the articles read from the archive, as the live host would serve them."""
    return {urlsplit(article_page_url(row["url"], number)).path for row in rows for number in range(1, row["page_count"] + 1)}


def test_articles_read_from_the_archive_are_revisited_on_the_live_host_only_in_live_archive_mode(
    archived_legacy_host, tmp_path
):
    """Written in archive mode; then the legacy host is back (an in-process copy of the mirror that counts its
    requests), and every run revisits at once: in live mode the live host, which may never have served them to
    us, gets no revisit of them (its 404 would count toward a removal), and in live,archive mode it does."""
    legacy_url, archive = archived_legacy_host
    data_dir = tmp_path / "data"
    first = run_crawl(legacy_url, data_dir, "sections=241", **archive.settings("archive"))
    assert first.returncode == 0, first.stderr[-3000:]
    archived = read_jsonl(data_dir / "articles.jsonl")
    assert archived and all("archived_from" in row for row in archived)
    pages = archived_paths(archived)
    revisit_now = {"THEORY_REVISIT_MIN_HOURS": "0"}

    with FixtureServer(SHARED_SITE / "www") as live:
        run = run_crawl(live.url, data_dir, "sections=241", **archive.settings("live"), **revisit_now)
        assert run.returncode == 0, run.stderr[-3000:]
        report = latest_run_report(data_dir)
        assert report["revisits"]["revisited"] == 0 and report["revisits"]["skipped_archived"] == len(archived)
        assert live.requests["/241/241.shtml"] == 1  # the live host did answer: its listing was walked
        assert not pages & set(live.requests)

        # A data dir of the release before sources were kept: its lines say which articles came from the archive.
        with sqlite3.connect(data_dir / "state.sqlite3") as db:
            db.execute("ALTER TABLE articles DROP COLUMN written_from")
        db.close()
        live.requests.clear()
        upgraded = run_crawl(live.url, data_dir, "sections=241", **archive.settings("live"), **revisit_now)
        assert upgraded.returncode == 0, upgraded.stderr[-3000:]
        assert not pages & set(live.requests)
        report = latest_run_report(data_dir)
        assert report["revisits"]["revisited"] == 0 and report["revisits"]["skipped_archived"] == len(archived)
        assert report["recovery"]["sources_archived"] == len(archived)

        live.requests.clear()
        both = run_crawl(live.url, data_dir, "sections=241", **archive.settings("live,archive"), **revisit_now)
        assert both.returncode == 0, both.stderr[-3000:]
        report = latest_run_report(data_dir)
        assert report["revisits"]["revisited"] == len(archived) and report["revisits"]["skipped_archived"] == 0
        assert {urlsplit(article_page_url(row["url"], 1)).path for row in archived} <= set(live.requests)

        # archive mode: the legacy host gets nothing, though it is up and every article is due for a revisit.
        live.requests.clear()
        alone = run_crawl(live.url, data_dir, "sections=241", **archive.settings("archive"), **revisit_now)
        assert alone.returncode == 0, alone.stderr[-3000:]
        assert latest_run_report(data_dir)["revisits"]["revisited"] == 0
        assert not live.requests
    assert read_jsonl(data_dir / "changes.jsonl") == []


def test_a_full_archive_walk_reads_the_sections_from_the_archived_home(archived_host_with_a_new_section, tmp_path):
    """The archive's latest capture of the home names a section the known list lacks: its articles are read."""
    legacy_url, archive, copies = archived_host_with_a_new_section
    expected = load_expected(SHARED_SITE)
    data_dir = tmp_path / "data"
    result = run_crawl(legacy_url, data_dir, **archive.settings("archive"))
    assert result.returncode == 0, result.stderr[-3000:]
    rows = read_jsonl(data_dir / "articles.jsonl")
    new = [row for row in rows if row["section_id"] == NEW_SECTION]
    assert new, f"no article of section {NEW_SECTION} (not in the known list) was read"
    assert all(row["url"].startswith(f"{legacy_url}{NEW_SECTION}/") and "archived_from" in row for row in new)
    # Named as the archived home's navigation names the section, as live mode names it from the live home.
    assert {row["section_name"] for row in new} == {NEW_SECTION_NAME}
    # One copy of each content group of the copied section (two copies of one content are duplicates too).
    group = {row["article_id"]: row["duplicate_of"] or row["article_id"] for row in expected}
    copied_groups = Counter(group[copies[row["article_id"]]] for row in new)
    assert max(copied_groups.values()) == 1 and set(copied_groups) == {group[original] for original in copies.values()}
    # The rest of the site exactly as from the mirror's own capture.
    old = [row for row in rows if row["section_id"] != NEW_SECTION]
    assert len(old) == 291
    assert_every_field_exact(old, expected)

    assert re.search(rf"the home's capture \S+id_/{re.escape(legacy_url)} names the sections 239 理论要闻, .*, {NEW_SECTION} {NEW_SECTION_NAME}", result.stderr)
    report = latest_run_report(data_dir)
    assert report["archive"]["sections_from"] == "home"
    assert report["exit_status"] == 0 and report["incomplete_walks"] == {}

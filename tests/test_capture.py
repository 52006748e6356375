"""End to end: the crawl of both mirrors as a web archive. Every exchange in WARC files that pass
`warcio check`, a WACZ that `wacz validate` accepts, every item pointing at the bytes the site served,
whole records after a SIGKILL, and the same items again from the WARC files alone."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from conftest import read_jsonl, run_crawl
from crawl_helpers import ARTICLES, reextract, start_crawl, wait_for_lines, whole_lines
from crawler.urls import article_page_url
from crawler.warc import RecordRef, read_record

BIN = Path(sys.executable).parent


def channel_url(server) -> str:
    return server.url + "theory/"


@pytest.fixture
def mirrors(serve_mirror, shared_site, shared_current_site):
    """Both mirrors, the current one compressing its pages (gzip) as a live server may."""
    return serve_mirror(shared_site / "www"), serve_mirror(shared_current_site / "www", "--gzip"), shared_site, shared_current_site


def served_bytes(row: dict, page: int, shared_site: Path, shared_current_site: Path) -> bytes:
    path = urlsplit(article_page_url(row["url"], page)).path
    root = shared_current_site if path.startswith("/c/") else shared_site
    return (root / "www" / path.lstrip("/")).read_bytes()


def as_served(payload: bytes) -> bytes:
    """The page as the mirror holds it: the WARC keeps a gzip-compressed answer compressed."""
    return gzip.decompress(payload) if payload[:2] == b"\x1f\x8b" else payload


def assert_every_reference_resolves(data_dir: Path, rows: list[dict], shared_site: Path, shared_current_site: Path) -> None:
    for row in rows:
        assert len(row["warc"]) == row["page_count"], row["url"]
        for page, place in enumerate(row["warc"], 1):
            record_id, payload = read_record(data_dir / "warc", RecordRef(**place))
            assert record_id == place["record_id"]
            assert as_served(payload) == served_bytes(row, page, shared_site, shared_current_site), (row["url"], page)


def warcio_check(path: Path) -> None:
    result = subprocess.run([str(BIN / "warcio"), "check", "-v", str(path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "digest pass" in result.stdout, result.stdout[-2000:] + result.stderr[-2000:]
    assert "digest fail" not in result.stdout


def assert_every_referenced_file_is_in_a_valid_package(data_dir: Path) -> None:
    """Every WARC file a line points at is inside a WACZ that `wacz validate` accepts, and the collection
    file lists every WACZ with its size and digest."""
    import hashlib
    import zipfile

    referenced = {place["file"] for row in whole_lines(data_dir / ARTICLES) for place in row["warc"]}
    packaged = set()
    packages = sorted((data_dir / "wacz").glob("*.wacz"))
    for package in packages:
        validation = subprocess.run([str(BIN / "wacz"), "validate", "-f", str(package)], capture_output=True, text=True, timeout=300)
        assert validation.returncode == 0 and "valid" in validation.stdout, validation.stdout + validation.stderr
        with zipfile.ZipFile(package) as wacz:
            packaged |= {name.removeprefix("archive/") for name in wacz.namelist() if name.startswith("archive/")}
    assert referenced and referenced <= packaged
    collection = json.loads((data_dir / "wacz" / "collection.json").read_text())
    assert collection["profile"] == "multi-wacz-package"
    assert [(r["path"], r["bytes"], r["hash"]) for r in collection["resources"]] == [
        (p.name, p.stat().st_size, "sha256:" + hashlib.sha256(p.read_bytes()).hexdigest()) for p in packages
    ]


def test_the_crawl_of_both_mirrors_is_a_valid_web_archive_its_items_point_into(mirrors, tmp_path):
    legacy, current, shared_site, shared_current_site = mirrors
    data_dir = tmp_path / "data"
    result = run_crawl(legacy.url, data_dir, THEORY_CHANNEL_URL=channel_url(current))
    assert result.returncode == 0, result.stderr[-3000:]
    rows = read_jsonl(data_dir / ARTICLES)
    assert len(rows) == 436

    (warc_file,) = sorted((data_dir / "warc").glob("*.warc.gz"))
    warcio_check(warc_file)
    assert_every_reference_resolves(data_dir, rows, shared_site, shared_current_site)

    # The CDXJ index replays a page: its line gives the record's place, the record the served bytes.
    index = [json.loads(line.split(" ", 2)[2]) for line in Path(f"{warc_file}.cdxj").read_text().splitlines()]
    by_url = {}
    for entry in index:
        by_url.setdefault(entry["url"], []).append(entry)
    row = next(row for row in rows if row["url"].startswith(current.url))
    (entry,) = by_url[row["url"]]
    place = RecordRef(warc_file.name, int(entry["offset"]), int(entry["length"]), row["warc"][0]["record_id"])
    assert as_served(read_record(data_dir / "warc", place)[1]) == served_bytes(row, 1, shared_site, shared_current_site)

    # Everything the crawl fetched is there: robots.txt of both hosts, start pages, feed pages, images.
    urls = set(by_url)
    assert {legacy.url + "robots.txt", current.url + "robots.txt", legacy.url, channel_url(current)} <= urls
    assert any(url.endswith("/json/theory/index_7.json") for url in urls)  # the 404 that ended the feed
    images = {image for row in rows for image in row["images"]}
    assert images and images <= urls
    assert all(len(by_url[image]) == 1 for image in images)  # each image fetched once

    (package,) = (data_dir / "wacz").glob("*.wacz")
    validation = subprocess.run([str(BIN / "wacz"), "validate", "-f", str(package)], capture_output=True, text=True, timeout=300)
    assert validation.returncode == 0 and "valid" in validation.stdout, validation.stdout + validation.stderr

    # Offline, from the WARC files alone, the same items again, line for line.
    out = tmp_path / "reextracted"
    again = reextract(data_dir / "warc", out)
    assert again.returncode == 0, again.stderr[-3000:]
    strip = lambda rows: [{k: v for k, v in row.items() if k != "crawled_at"} for row in rows]  # noqa: E731
    assert strip(read_jsonl(out / ARTICLES)) == strip(rows)


def test_a_killed_run_leaves_only_whole_records_and_the_rerun_points_at_whole_ones(mirrors, tmp_path):
    legacy, current, shared_site, shared_current_site = mirrors
    data_dir = tmp_path / "data"
    process = start_crawl(legacy.url, data_dir, THEORY_CHANNEL_URL=channel_url(current), CONCURRENT_REQUESTS="2",
                          CONCURRENT_REQUESTS_PER_DOMAIN="1", DOWNLOAD_DELAY="0.005")
    wait_for_lines(process, data_dir / ARTICLES, 60)
    process.kill()
    process.wait(timeout=10)
    (torn,) = sorted((data_dir / "warc").glob("*.warc.gz"))
    with open(torn, "ab") as tail:  # what a kill in the middle of a write leaves: half a record
        member = gzip.compress(b"WARC/1.1\r\nWARC-Type: response\r\n" + os.urandom(4000))
        tail.write(member[: len(member) // 2])

    # What a kill while indexing or packaging leaves (the crawl above was killed before it got there).
    (data_dir / "wacz").mkdir(exist_ok=True)
    (data_dir / "wacz" / "theory-20260101T000000Z.wacz.tmp").write_bytes(b"PK\x03\x04 half a package")
    Path(f"{torn}.cdxj.tmp").write_text("half an index\n")

    rerun = run_crawl(legacy.url, data_dir, THEORY_CHANNEL_URL=channel_url(current))
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "cut a torn record" in rerun.stderr
    assert not list(data_dir.rglob("*.tmp"))
    assert_every_referenced_file_is_in_a_valid_package(data_dir)
    for path in sorted((data_dir / "warc").glob("*.warc.gz")):
        warcio_check(path)
    rows = whole_lines(data_dir / ARTICLES)
    assert len(rows) == 436 and len({row["article_id"] for row in rows}) == 436
    assert_every_reference_resolves(data_dir, rows, shared_site, shared_current_site)

    # The killed run's half articles and the rerun's fetches of the same articles are both in the capture:
    # re-extraction still gives exactly the lines written.
    out = tmp_path / "reextracted"
    again = reextract(data_dir / "warc", out)
    assert again.returncode == 0, again.stderr[-3000:]
    strip = lambda rows: [{k: v for k, v in row.items() if k != "crawled_at"} for row in rows]  # noqa: E731
    assert strip(read_jsonl(out / ARTICLES)) == strip(rows)


def test_capture_can_be_turned_off(mirrors, tmp_path):
    legacy, current, _, _ = mirrors
    data_dir = tmp_path / "data"
    result = run_crawl(legacy.url, data_dir, THEORY_CHANNEL_URL=channel_url(current), THEORY_WARC="0")
    assert result.returncode == 0, result.stderr[-3000:]
    assert not (data_dir / "warc").exists() and not (data_dir / "wacz").exists()
    assert all(row["warc"] == [] for row in read_jsonl(data_dir / ARTICLES))


def test_a_revisit_run_stores_not_modified_and_unchanged_answers_as_revisit_records(serve_mirror, shared_site, tmp_path):
    server = serve_mirror(shared_site / "www")
    data_dir = tmp_path / "data"
    for run in range(2):  # the second run revisits articles (304s) and fetches the unchanged home and listings
        result = run_crawl(server.url, data_dir, THEORY_REVISIT_MIN_HOURS="0")  # revisit what was just written
        assert result.returncode == 0, result.stderr[-3000:]
    first, second = sorted((data_dir / "warc").glob("*.warc.gz"))
    warcio_check(second)
    package = sorted((data_dir / "wacz").glob("*.wacz"))[-1]
    validation = subprocess.run([str(BIN / "wacz"), "validate", "-f", str(package)], capture_output=True, text=True, timeout=300)
    assert validation.returncode == 0 and "valid" in validation.stdout, validation.stdout + validation.stderr
    from warcio.archiveiterator import ArchiveIterator

    kinds = []
    # The status of each answer: its own HTTP headers', or for a revisit record without a block (a 304's) the
    # status line in the evidence record concurrent to it.
    evidence = {}
    with open(second, "rb") as stream:
        for record in ArchiveIterator(stream):
            if record.rec_type in ("response", "revisit"):
                status = record.http_headers.get_statuscode() if record.http_headers else None
                kinds.append((record.rec_type, status, record.rec_headers.get_header("WARC-Profile"),
                              record.rec_headers.get_header("WARC-Record-ID")))
            elif record.rec_type == "metadata" and record.rec_headers.get_header("Content-Type") == "application/warc-fields":
                first_field = record.content_stream().read().split(b"\r\n", 1)[0].decode()
                evidence[record.rec_headers.get_header("WARC-Concurrent-To")] = first_field.split(" ")[2]
    kinds = [(kind, status or evidence.get(record_id), profile, status is None) for kind, status, profile, record_id in kinds]
    not_modified = "http://netpreserve.org/warc/1.1/revisit/server-not-modified"
    identical = "http://netpreserve.org/warc/1.1/revisit/identical-payload-digest"
    assert ("revisit", "304", not_modified, True) in kinds
    # Every 304 is a block-less server-not-modified revisit record, and every such record is a 304's.
    assert all(kind == ("revisit", "304", not_modified, True) for kind in kinds if kind[1] == "304" or kind[3])
    assert ("revisit", "200", identical, False) in kinds  # robots.txt, the home and the listings did not change
    assert not any(kind[0] == "response" and kind[1] == "200" for kind in kinds), kinds
    index = [json.loads(line.split(" ", 2)[2]) for line in Path(f"{second}.cdxj").read_text().splitlines()]
    assert sum(entry.get("mime") == "warc/revisit" for entry in index) == sum(kind[0] == "revisit" for kind in kinds)


def disk_usage(directory: Path) -> int:
    return sum(-(-path.stat().st_size // 4096) * 4096 for path in directory.rglob("*") if path.is_file())


def test_a_full_disk_while_indexing_or_packaging_is_exit_7_with_one_line_and_no_temporary_file(serve_mirror, shared_site, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    server = serve_mirror(shared_site / "www")
    measured = tmp_path / "measured"
    assert run_crawl(server.url, measured).returncode == 0
    package = disk_usage(measured / "wacz")
    # Room for everything but the package, and 256 KiB to spare for the SQLite journals: the crawl fits,
    # its WACZ (about 1.7 MB) does not.
    assert package > 1024 * 1024
    size = disk_usage(measured) - package + 256 * 1024
    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(small)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {mounted.stderr}")
    try:
        result = run_crawl(server.url, small / "data")
        assert result.returncode == 7, result.stderr[-3000:]
        assert "Traceback" not in result.stderr
        failures = [line for line in result.stderr.splitlines() if "cannot write" in line and "stopping the run" in line]
        assert len(failures) == 1, result.stderr[-3000:]
        # In the capture's close: its index of earlier captures, or the WACZ package.
        assert f"cannot write {small / 'data' / 'wacz'}" in failures[0], failures[0]
        assert "No space left on device" in failures[0] or "database or disk is full" in failures[0], failures[0]
        assert not list((small / "data").rglob("*.tmp"))
        assert read_jsonl(small / "data" / ARTICLES) == whole_lines(small / "data" / ARTICLES)
    finally:
        subprocess.run(["umount", str(small)], check=True)


@pytest.mark.parametrize("indexed", [True, False], ids=["closed whole", "left unindexed by a killed run"])
def test_a_warc_file_damaged_in_the_middle_is_never_cut_by_the_next_run(serve_mirror, shared_site, tmp_path, indexed):
    """Garbage in the middle of an earlier run's WARC file (a disk's, a copy's) is no torn tail: the next run
    keeps every byte after it. A file its run indexed is not even read; one a killed run left unindexed gets
    one error line naming the place, and its index holds the records on both sides of the damage."""
    server = serve_mirror(shared_site / "www")
    data_dir = tmp_path / "data"
    assert run_crawl(server.url, data_dir, THEORY_CHANNEL_URL="").returncode == 0
    (warc_file,) = sorted((data_dir / "warc").glob("*.warc.gz"))
    index = Path(f"{warc_file}.cdxj")
    whole_index = index.read_text().splitlines()
    data = warc_file.read_bytes()
    middle = len(data) // 2
    warc_file.write_bytes(data[:middle] + bytes((i * 7 + 3) % 256 for i in range(4096)) + data[middle:])
    damaged = warc_file.read_bytes()
    if not indexed:
        index.unlink()

    rerun = run_crawl(server.url, data_dir, THEORY_CHANNEL_URL="")
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert warc_file.read_bytes() == damaged
    assert "Traceback" not in rerun.stderr
    lines = [line for line in rerun.stderr.splitlines() if "damaged in the middle" in line]
    if indexed:
        assert lines == []
        assert index.read_text().splitlines() == whole_index
        return
    (line,) = lines
    offset = int(line.split("at byte ", 1)[1].split(";")[0])
    assert 0 < offset <= middle, line
    entries = [json.loads(entry.split(" ", 2)[2]) for entry in index.read_text().splitlines()]
    assert any(int(entry["offset"]) > middle for entry in entries) and any(int(entry["offset"]) < offset for entry in entries)
    assert len(entries) >= 0.9 * len(whole_index)
    for entry in entries:  # every line points at a whole record
        gzip.decompress(damaged[int(entry["offset"]): int(entry["offset"]) + int(entry["length"])])

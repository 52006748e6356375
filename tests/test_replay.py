"""A WACZ made by the crawler loads into pywb, which replays an article page with the served bytes.

pywb cannot share the project's venv (it requires brotlipy, whose `brotli` package shadows Brotli and
breaks Scrapy's `br` decoding, and pins pyOpenSSL<26.2). It lives in a venv of its own:
    python3 -m venv .pywb && .pywb/bin/pip install 'pywb>=2.10,<2.11'
and THEORY_PYWB_BIN points at its bin directory (.ci/run does both; elsewhere the test is skipped without it)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from email.message import Message
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from warcio.archiveiterator import ArchiveIterator
from warcio.timeutils import iso_date_to_timestamp

from conftest import read_jsonl, run_crawl

PYWB_BIN = Path(os.environ.get("THEORY_PYWB_BIN", "")) if os.environ.get("THEORY_PYWB_BIN") else None


@pytest.fixture
def pywb_bin() -> Path:
    """pywb's own venv; skipped on a user's machine without it, but never in CI (.ci/run makes it)."""
    if PYWB_BIN is None or not (PYWB_BIN / "wayback").exists():
        reason = "pywb is not installed: set THEORY_PYWB_BIN to the bin directory of a venv with pywb"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {reason}")
        pytest.skip(reason)
    return PYWB_BIN


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, process: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"wayback exited with {process.returncode}: {process.stdout.read()[-2000:]}")
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except (urllib.error.URLError, ConnectionError, OSError):
            time.sleep(0.2)
    raise TimeoutError(f"wayback did not answer {url} within {timeout} s")


@pytest.fixture
def pywb_replay(pywb_bin, tmp_path):
    """pywb serving WACZ packages as one collection (each added with `wb-manager add --unpack-wacz`, as a user
    would): ``start(packages)`` returns the collection's URL, and the server is stopped after the test."""
    servers: list[subprocess.Popen] = []

    def start(packages: list[Path]) -> str:
        pywb_dir = tmp_path / "pywb"
        pywb_dir.mkdir()
        commands = [["wb-manager", "init", "coll"]] + [["wb-manager", "add", "--unpack-wacz", "coll", str(p)] for p in packages]
        for command in commands:
            done = subprocess.run([str(pywb_bin / command[0]), *command[1:]], cwd=pywb_dir, capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, done.stdout + done.stderr
        assert list((pywb_dir / "collections" / "coll" / "archive").glob("*.warc.gz"))
        port = free_port()
        wayback = subprocess.Popen(
            [str(pywb_bin / "wayback"), "--bind", "127.0.0.1", "-p", str(port)],
            cwd=pywb_dir,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        servers.append(wayback)
        wait_until_up(f"http://127.0.0.1:{port}/", wayback)
        return f"http://127.0.0.1:{port}/coll"

    yield start
    for wayback in servers:
        wayback.terminate()
        try:
            wayback.wait(timeout=10)
        except subprocess.TimeoutExpired:
            wayback.kill()
            wayback.wait()


def replay(url: str) -> tuple[int, Message, bytes]:
    """pywb's answer as it is (status, headers, body), also when urllib would raise it as an error (a 304)."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as answer:
        with answer:
            return answer.code, answer.headers, answer.read()


def index_entries(cdxj: Path) -> list[dict]:
    """The lines of a CDXJ file, each its JSON with its 14-digit ``timestamp``."""
    return [json.loads(entry) | {"timestamp": stamp}
            for _, stamp, entry in (line.split(" ", 2) for line in cdxj.read_text().splitlines())]


def test_pywb_replays_an_article_from_the_crawls_wacz_with_the_served_bytes(serve_mirror, shared_site, tmp_path, pywb_replay):
    server = serve_mirror(shared_site / "www")
    data_dir = tmp_path / "data"
    result = run_crawl(server.url, data_dir, "sections=241")
    assert result.returncode == 0, result.stderr[-3000:]
    (wacz,) = sorted((data_dir / "wacz").glob("*.wacz"))
    row = read_jsonl(data_dir / "articles.jsonl")[0]

    # The capture's 14-digit timestamp, from the CDXJ line of the article's first page.
    (cdxj,) = sorted((data_dir / "warc").glob("*.cdxj"))
    (timestamp,) = {entry["timestamp"] for entry in index_entries(cdxj) if entry["url"] == row["url"]}
    assert len(timestamp) == 14

    collection = pywb_replay([wacz])
    status, _, body = replay(f"{collection}/{timestamp}id_/{row['url']}")
    assert status == 200
    assert body == (shared_site / "www" / urlsplit(row["url"]).path.lstrip("/")).read_bytes()


def test_pywb_replays_a_revisit_record_with_the_original_captures_bytes(serve_mirror, shared_site, tmp_path, pywb_replay):
    server = serve_mirror(shared_site / "www")
    data_dir = tmp_path / "data"
    for run in range(2):  # the second run finds the home unchanged: an identical-payload-digest revisit
        result = run_crawl(server.url, data_dir, "sections=241")
        assert result.returncode == 0, result.stderr[-3000:]
    packages = sorted((data_dir / "wacz").glob("*.wacz"))
    assert len(packages) == 2

    # The home's capture in the second run: a revisit record, its 14-digit timestamp from the CDXJ.
    second_index = sorted((data_dir / "warc").glob("*.cdxj"))[-1]
    (home,) = [entry for entry in index_entries(second_index) if entry["url"] == server.url]
    assert home["mime"] == "warc/revisit"

    collection = pywb_replay(packages)
    status, headers, body = replay(f"{collection}/{home['timestamp']}id_/{server.url}")
    assert status == 200
    assert headers.get("Memento-Datetime")  # the revisit's own capture time
    assert body == (shared_site / "www" / "index.shtml").read_bytes()


@pytest.fixture
def not_modified_revisit(serve_mirror, shared_site, tmp_path, pywb_replay) -> dict:
    """Two runs, the second revisiting every article at once: the mirror answers its conditional requests
    with 304, each stored as a server-not-modified revisit record without a block. Returns one article page's
    revisit (its CDXJ entry, its WARC headers) and the mirror file it was served from, with pywb serving both
    runs' WACZ."""
    server = serve_mirror(shared_site / "www")
    data_dir = tmp_path / "data"
    for run in range(2):
        result = run_crawl(server.url, data_dir, "sections=241", THEORY_REVISIT_MIN_HOURS="0")
        assert result.returncode == 0, result.stderr[-3000:]
    packages = sorted((data_dir / "wacz").glob("*.wacz"))
    assert len(packages) == 2

    first_page = read_jsonl(data_dir / "articles.jsonl")[0]["url"]
    second_index = sorted((data_dir / "warc").glob("*.cdxj"))[-1]
    (entry,) = [entry for entry in index_entries(second_index) if entry["url"] == first_page]
    assert entry["mime"] == "warc/revisit" and "status" not in entry
    with open(data_dir / "warc" / entry["filename"], "rb") as warc:
        warc.seek(int(entry["offset"]))
        records = iter(ArchiveIterator(warc))
        record = next(records)
        assert record.http_headers is None  # no block: the 304 is in the metadata record after it
        warc_headers = dict(record.rec_headers.headers)
        evidence = next(records)
        assert evidence.rec_headers.get_header("WARC-Concurrent-To") == warc_headers["WARC-Record-ID"]
        assert evidence.content_stream().read().startswith(b"HTTP-Status-Line: HTTP/1.1 304 Not Modified\r\n")
    assert warc_headers["WARC-Profile"] == "http://netpreserve.org/warc/1.1/revisit/server-not-modified"
    return {
        "url": first_page,
        "timestamp": entry["timestamp"],
        "warc_headers": warc_headers,
        "served": (shared_site / "www" / urlsplit(first_page).path.lstrip("/")).read_bytes(),
        "collection": pywb_replay(packages),
    }


def test_pywb_replays_the_capture_a_server_not_modified_revisit_refers_to_with_the_original_bytes(not_modified_revisit):
    revisit = not_modified_revisit
    refers_to_date = revisit["warc_headers"]["WARC-Refers-To-Date"]
    assert revisit["warc_headers"]["WARC-Refers-To-Target-URI"] == revisit["url"]

    status, headers, body = replay(f"{revisit['collection']}/{iso_date_to_timestamp(refers_to_date)}id_/{revisit['url']}")
    assert status == 200
    # The very capture the revisit names (to the second, as pywb's Memento-Datetime has it), not a neighbour.
    assert iso_date_to_timestamp(refers_to_date) == time.strftime("%Y%m%d%H%M%S", time.strptime(
        headers["Memento-Datetime"], "%a, %d %b %Y %H:%M:%S GMT"))
    assert body == revisit["served"]


def test_pywb_replays_a_server_not_modified_revisit_with_the_original_captures_bytes(not_modified_revisit):
    """At the revisit's own timestamp, pywb resolves the block-less revisit record to the capture it refers to
    (a revisit holding the 304's headers would be served as that 304, with no body)."""
    revisit = not_modified_revisit
    assert revisit["timestamp"] != iso_date_to_timestamp(revisit["warc_headers"]["WARC-Refers-To-Date"])
    status, headers, body = replay(f"{revisit['collection']}/{revisit['timestamp']}id_/{revisit['url']}")
    assert (status, body) == (200, revisit["served"])
    # The revisit's own time, not the earlier capture's (to the second, as pywb's Memento-Datetime has it).
    assert revisit["timestamp"] == time.strftime("%Y%m%d%H%M%S", time.strptime(
        headers["Memento-Datetime"], "%a, %d %b %Y %H:%M:%S GMT"))

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
from pathlib import Path
from urllib.parse import urlsplit

import pytest

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


def test_pywb_replays_an_article_from_the_crawls_wacz_with_the_served_bytes(serve_mirror, shared_site, tmp_path, pywb_bin):
    server = serve_mirror(shared_site / "www")
    data_dir = tmp_path / "data"
    result = run_crawl(server.url, data_dir, "sections=241")
    assert result.returncode == 0, result.stderr[-3000:]
    (wacz,) = sorted((data_dir / "wacz").glob("*.wacz"))
    row = read_jsonl(data_dir / "articles.jsonl")[0]

    # The capture's 14-digit timestamp, from the CDXJ line of the article's first page.
    (cdxj,) = sorted((data_dir / "warc").glob("*.cdxj"))
    entries = [line.split(" ", 2) for line in cdxj.read_text().splitlines()]
    (timestamp,) = {stamp for _, stamp, entry in entries if json.loads(entry)["url"] == row["url"]}
    assert len(timestamp) == 14

    pywb_dir = tmp_path / "pywb"
    pywb_dir.mkdir()
    for command in (["wb-manager", "init", "coll"], ["wb-manager", "add", "--unpack-wacz", "coll", str(wacz)]):
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
    try:
        wait_until_up(f"http://127.0.0.1:{port}/", wayback)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/coll/{timestamp}id_/{row['url']}", timeout=10) as response:
            assert response.status == 200
            body = response.read()
    finally:
        wayback.terminate()
        try:
            wayback.wait(timeout=10)
        except subprocess.TimeoutExpired:
            wayback.kill()
            wayback.wait()

    assert body == (shared_site / "www" / urlsplit(row["url"]).path.lstrip("/")).read_bytes()


def test_pywb_replays_a_revisit_record_with_the_original_captures_bytes(serve_mirror, shared_site, tmp_path, pywb_bin):
    server = serve_mirror(shared_site / "www")
    data_dir = tmp_path / "data"
    for run in range(2):  # the second run finds the home unchanged: an identical-payload-digest revisit
        result = run_crawl(server.url, data_dir, "sections=241")
        assert result.returncode == 0, result.stderr[-3000:]
    packages = sorted((data_dir / "wacz").glob("*.wacz"))
    assert len(packages) == 2

    # The home's capture in the second run: a revisit record, its 14-digit timestamp from the CDXJ.
    second_index = sorted((data_dir / "warc").glob("*.cdxj"))[-1]
    entries = [json.loads(entry) | {"timestamp": stamp} for _, stamp, entry in
               (line.split(" ", 2) for line in second_index.read_text().splitlines())]
    (home,) = [entry for entry in entries if entry["url"] == server.url]
    assert home["mime"] == "warc/revisit"

    pywb_dir = tmp_path / "pywb"
    pywb_dir.mkdir()
    commands = [["wb-manager", "init", "coll"]] + [["wb-manager", "add", "--unpack-wacz", "coll", str(p)] for p in packages]
    for command in commands:
        done = subprocess.run([str(pywb_bin / command[0]), *command[1:]], cwd=pywb_dir, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr

    port = free_port()
    wayback = subprocess.Popen(
        [str(pywb_bin / "wayback"), "--bind", "127.0.0.1", "-p", str(port)],
        cwd=pywb_dir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until_up(f"http://127.0.0.1:{port}/", wayback)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/coll/{home['timestamp']}id_/{server.url}", timeout=10) as response:
            assert response.status == 200
            assert response.headers.get("Memento-Datetime")  # the revisit's own capture time
            body = response.read()
    finally:
        wayback.terminate()
        try:
            wayback.wait(timeout=10)
        except subprocess.TimeoutExpired:
            wayback.kill()
            wayback.wait()

    assert body == (shared_site / "www" / "index.shtml").read_bytes()

"""Helpers of the end-to-end tests that run the real `scrapy crawl theory` against the legacy mirror."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import PROJECT_ROOT, crawl_command, run_crawl

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


def reextract(warc_dir: Path, out: Path, *settings: str, arguments: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """`scrapy reextract WARC_DIR -s THEORY_DATA_DIR=OUT`, with ``-s NAME=VALUE`` settings and ``-a`` arguments."""
    command = [sys.executable, "-m", "scrapy", "reextract", str(warc_dir), "-s", f"THEORY_DATA_DIR={out}"]
    for setting in settings:
        command += ["-s", setting]
    for argument in arguments:
        command += ["-a", argument]
    return subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)


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


def add_article(www: Path, original: dict, new_id: str, marker: str, listing_page: int = 1) -> dict:
    """A new article page made from ``original`` (new id, title and first paragraph), linked first in its
    section's listing page ``listing_page``. Returns what the crawl should write for it."""
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
    listing = www / section / (f"{section}.shtml" if listing_page == 1 else f"{section}_{listing_page}.shtml")
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


DUPLICATES = "duplicates.jsonl"


def assert_duplicates_recorded_once(data_dir: Path, expected: list[dict]) -> list[dict]:
    """duplicates.jsonl records every content duplicate of ``expected`` that articles.jsonl lacks, once each,
    with the copy articles.jsonl has as the kept one; every record is valid under the published schema."""
    from datetime import datetime

    from jsonschema import Draft7Validator

    from crawler.pipelines import load_schema

    duplicate_of = {row["article_id"]: row["duplicate_of"] for row in expected}

    def group(article_id: str) -> str:  # the earliest copy, followed across the two sites
        for _ in range(len(duplicate_of) + 1):
            if not duplicate_of.get(article_id):
                return article_id
            article_id = duplicate_of[article_id]
        raise AssertionError(f"duplicate_of loops at {article_id}")

    written = {row["article_id"]: row for row in whole_lines(data_dir / ARTICLES)}
    kept = {group(article_id): article_id for article_id in written}
    records = whole_lines(data_dir / DUPLICATES) if (data_dir / DUPLICATES).exists() else []
    validator = Draft7Validator(load_schema("duplicate"))
    assert not [record for record in records if not validator.is_valid(record)], "a record breaks the published schema"
    for record in records:
        datetime.fromisoformat(record["detected_at"])  # jsonschema checks date-time only with an extra package
    recorded = Counter(record["article_id"] for record in records)
    assert not [i for i, n in recorded.items() if n > 1], f"duplicates recorded twice: {[i for i, n in recorded.items() if n > 1]}"
    wanted = {row["article_id"] for row in expected if group(row["article_id"]) in kept} - set(written)
    assert set(recorded) == wanted, f"missing: {sorted(wanted - set(recorded))}, unexpected: {sorted(set(recorded) - wanted)}"
    for record in records:
        original = kept[group(record["article_id"])]
        assert record["kept_article_id"] == original, record
        assert record["content_hash"] == written[original]["content_hash"], record
    return records

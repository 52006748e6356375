"""`scrapy coverage` and coverage.html on a data dir built here, with known months: an empty month, a hole
of owed and given-up articles, a revision and a removal."""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from conftest import PROJECT_ROOT
from crawler.state import CrawlState

LEGACY_URL = "http://theory.workercn.cn/241/2015{month:02d}/{day:02d}/15{month:02d}{day:02d}0000000{n:02d}.shtml"
CURRENT_URL = "https://www.workercn.cn/c/2021-{month:02d}-{day:02d}/68000{n:02d}.shtml"


def article(url: str, article_id: str, section: str, date: str, body: str, title: str = "标题") -> dict:
    return {
        "url": url, "article_id": article_id, "section_id": section,
        "section_name": "实践与思考" if section == "241" else "理论", "title": title, "authors": [], "source": None,
        "published_date": date, "published_time": None, "published_at": date, "editor": None, "body": body,
        "images": [], "page_count": 1, "content_hash": "0" * 64, "crawled_at": "2026-01-01T00:00:00+00:00", "warc": [],
    }


def build_data_dir(data_dir: Path) -> dict:
    """Legacy: 2 articles in 2015-01, none in 2015-02, 1 in 2015-03 with 1 owed and 1 given up beside it,
    1 in 2015-04. Current: 1 in 2021-05. One revision (its body's second paragraph edited) and one removal."""
    written = [
        ("legacy", 1, 5, 1), ("legacy", 1, 9, 2), ("legacy", 3, 2, 3), ("legacy", 4, 7, 4), ("current", 5, 3, 5),
    ]
    rows = []
    state = CrawlState(data_dir)
    for site, month, day, n in written:
        if site == "legacy":
            url, id_, section, date = LEGACY_URL.format(month=month, day=day, n=n), f"15{month:02d}{day:02d}0000000{n:02d}", "241", f"2015-{month:02d}-{day:02d}"
        else:
            url, id_, section, date = CURRENT_URL.format(month=month, day=day, n=n), f"68000{n:02d}", "theory", f"2021-{month:02d}-{day:02d}"
        rows.append(article(url, id_, section, date, f"第一段{n}\n第二段 old <b>{n}</b>\n第三段{n}"))
        state.add_pending([(id_, url, section)])
        state.mark_written(id_, url, section, "0" * 64)
        state.record_first_version(id_, date, 1, "0" * 64)
    owed = LEGACY_URL.format(month=3, day=20, n=6)
    given_up = LEGACY_URL.format(month=3, day=21, n=7)
    state.record_failure("150320000000006", owed, "http_500", 3)
    for _ in range(3):
        state.record_failure("150321000000007", given_up, "http_404", 3)
    state.close()
    (data_dir / "articles.jsonl").write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), "utf-8")
    revised = dict(rows[0], body="第一段1\n第二段 new & improved\n第三段1", title="<script>alert(1)</script>")
    events = [
        {"event": "revised", "article_id": rows[0]["article_id"], "url": rows[0]["url"], "version": 2,
         "previous_content_hash": "0" * 64, "detected_at": "2026-02-01T00:00:00+00:00", "item": revised},
        {"event": "removed", "article_id": rows[3]["article_id"], "url": rows[3]["url"],
         "detected_at": "2026-02-02T00:00:00+00:00",
         "evidence": {"status": 404, "redirect_target": None, "not_found_phrase": "页面不存在",
                      "first_seen_failing": "2026-02-01T00:00:00+00:00", "confirmed_at": "2026-02-02T00:00:00+00:00", "runs": 2}},
    ]
    (data_dir / "changes.jsonl").write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events), "utf-8")
    (data_dir / "runs").mkdir()
    for stamp, status in (("20260201T000000.000000Z", 0), ("20260202T000000.000000Z", 4)):
        report = {"started_at": stamp, "duration_seconds": 3.5, "written": 5, "requests": 20, "exit_status": status,
                  "exit_meaning": "completed" if status == 0 else "a site could not be crawled completely",
                  "incomplete_walks": {"241": ["http://theory.workercn.cn/241/241_2.shtml (http_500)"]} if status else {}}
        (data_dir / "runs" / f"{stamp}.json").write_text(json.dumps(report), "utf-8")
    return {"revised": rows[0], "removed": rows[3]}


def run_coverage(data_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "scrapy", "coverage", "-s", f"THEORY_DATA_DIR={data_dir}"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
    )


def months_of(html: str, site: str) -> dict[str, str]:
    """month -> the classes of its bar group, in the site's chart."""
    chart = re.search(rf'<svg[^>]*aria-label="{site} articles by month">(.*?)</svg>', html, re.S)
    assert chart, f"no chart of the {site} site"
    return dict((month, classes) for classes, month in re.findall(r'<g class="([^"]*)" data-month="([^"]*)">', chart[1]))


def test_coverage_summary_and_page_show_the_months_the_holes_and_the_changes(tmp_path):
    data_dir = tmp_path / "data"
    build_data_dir(data_dir)
    result = run_coverage(data_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert "  2015  legacy           4  2015-03 (1 owed, 1 given up)" in lines, result.stdout
    assert "  2021  current          1  -" in lines, result.stdout
    assert any("legacy walk page failed in the last run: 241: http://theory.workercn.cn/241/241_2.shtml (http_500)" in line for line in lines)
    assert "  1 owed, 1 given up; last 2 events: 1 revised, 1 removed, 0 restored" in lines

    html = (data_dir / "coverage.html").read_text("utf-8")
    legacy = months_of(html, "legacy")
    assert list(legacy) == ["2015-01", "2015-02", "2015-03", "2015-04"]  # one bar per month, none left out
    assert legacy["2015-03"] == "month hole"
    assert legacy["2015-02"] == "month empty"  # no article, no hole: empty, not marked
    assert legacy["2015-01"] == legacy["2015-04"] == "month"
    assert html.count('class="hole-mark"') == 1
    assert list(months_of(html, "current")) == ["2021-05"]
    # Owed and given up, by reason; the runs with their statuses.
    assert "<td>owed</td><td>http_500</td>" in html and "<td>given up</td><td>http_404</td>" in html
    assert "4 a site could not be crawled completely" in html
    # The revision's paragraph diff, escaped; the removal's evidence.
    assert '<div class="del">- 第二段 old &lt;b&gt;1&lt;/b&gt;</div><div class="ins">+ 第二段 new &amp; improved</div>' in html
    assert '<div class="same">  第一段1</div>' in html
    assert "页面不存在" in html and "first_seen_failing" in html
    # Self-contained and nothing unescaped: no script, no external asset.
    assert "<script" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert not re.search(r'(src|href)="https?://(?!theory\.workercn\.cn|www\.workercn\.cn)', html)
    assert " src=" not in html and "<link" not in html


def test_coverage_of_a_directory_that_is_not_there_is_a_usage_error(tmp_path):
    result = run_coverage(tmp_path / "nothing")
    assert result.returncode == 2 and "is not a directory" in result.stderr


# --- the page as a browser shows it ---------------------------------------------------------------


def png_colours(data: bytes, limit: int = 16) -> set[bytes]:
    """The distinct pixel values of an 8-bit RGB or RGBA PNG (up to ``limit`` of them): enough to tell a
    blank page from a drawn one without an image library."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    position, idat, header = 8, b"", None
    while position < len(data):
        (length,) = struct.unpack(">I", data[position:position + 4])
        kind, body = data[position + 4:position + 8], data[position + 8:position + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        position += 12 + length
    width, height, depth, colour_type, _, _, interlace = header
    assert depth == 8 and colour_type in (2, 6) and interlace == 0, f"unexpected PNG format {header}"
    channels = 3 if colour_type == 2 else 4
    raw, stride, previous, colours = zlib.decompress(idat), width * channels, bytearray(width * channels), set()
    for row in range(height):
        start = row * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up, up_left = previous[i], previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 255
            elif kind == 2:
                line[i] = (line[i] + up) & 255
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 255
            elif kind == 4:
                p = left + up - up_left
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - up_left)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else up_left)) & 255
        colours.update(bytes(line[i:i + 3]) for i in range(0, stride, channels * 7))
        if len(colours) >= limit:
            break
        previous = line
    return colours


def chromium() -> str:
    found = next((shutil.which(name) for name in ("chromium", "chromium-browser") if shutil.which(name)), None)
    if not found:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but no chromium found (.ci/run installs Debian's chromium package)")
        pytest.skip("no chromium on PATH (Debian: apt-get install chromium) to render coverage.html")
    return found


def test_headless_chromium_renders_the_coverage_page_as_more_than_a_blank_screen(tmp_path):
    browser = chromium()
    data_dir = tmp_path / "data"
    build_data_dir(data_dir)
    assert run_coverage(data_dir).returncode == 0
    screenshot = tmp_path / "coverage.png"
    result = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--screenshot={screenshot}",
         "--window-size=900,700", (data_dir / "coverage.html").resolve().as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert screenshot.exists(), result.stderr[-3000:]
    colours = png_colours(screenshot.read_bytes())
    # White page, dark text, the blue bars, the red hole mark: a blank (or unstyled, barless) page has 1 or 2.
    assert len(colours) > 3, colours


def test_every_run_rewrites_the_coverage_page(serve_mirror, tmp_path):
    from crawl_helpers import crawl

    data_dir = tmp_path / "data"
    server = serve_mirror()
    run = crawl(server.url, data_dir, "sections=253")
    assert run.returncode == 0, run.stderr[-3000:]
    html = (data_dir / "coverage.html").read_text("utf-8")
    written = sum(1 for _ in (data_dir / "articles.jsonl").open())
    assert f"<p>{written} articles, " in html and months_of(html, "legacy")
    assert f"coverage page: {data_dir / 'coverage.html'}" in run.stderr


def test_without_the_state_the_output_tells_the_months(tmp_path):
    data_dir = tmp_path / "data"
    build_data_dir(data_dir)
    (data_dir / "state.sqlite3").unlink()
    result = run_coverage(data_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    # The same articles by month; what is owed is known to the state alone.
    assert "  2015  legacy           4  -" in result.stdout.splitlines(), result.stdout
    assert "(from articles.jsonl, runs/ (2 last), changes.jsonl)" in result.stdout

"""End to end on drifted copies of the mirrors: the template changed the way Chinese news sites commonly
change it. Known forms (lazy images, 文/ bylines, 编辑：) are read exactly and the run exits 0; a field
the template no longer fills in a known place is a layout alarm (exit 5) that names it, and the articles
are written all the same.

The drifts are applied to a copy of each mirror's www/ and served by the mirror's own serve.py.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from conftest import latest_run_report, load_expected, run_crawl
from test_two_sites import (
    COMPARED_FIELDS,
    as_expected,
    assert_exactly_the_ground_truth,
    group_resolver,
    read_jsonl,
    without_legacy_originals,
)

BODY_IMAGE = re.compile(r'<img src="(/upload/resources/image/[^"]+)" />')
PIXEL = "data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7"


def lazy_data_src(page: str) -> str:
    """Body images loaded by a script from data-src, a blank.gif in their src."""
    return BODY_IMAGE.sub(r'<img class="lazy" src="/images/blank.gif" data-src="\1" />', page)


def lazy_data_uri(page: str) -> str:
    """Body images loaded from data-original, an inline pixel in their src."""
    return BODY_IMAGE.sub(rf'<img class="lazy" src="{PIXEL}" data-original="\1" />', page)


def byline_wen_slash(page: str) -> str:
    return page.replace('<span class="author">作者：', '<span class="author">文/')


def editor_label(page: str) -> str:
    return page.replace('<div class="editor">责任编辑：', '<div class="editor">编辑：')


def editor_unlabelled(page: str) -> str:
    """The editor in an element of another class, without its label: nothing says it is the editor."""
    return re.sub(r'<div class="editor">责任编辑：(.*?)</div>', r'<div class="bj">\1</div>', page)


SIGNDATE_SOURCE = re.compile(r'(<div class="signdate">.*?)(?: |&nbsp;&nbsp;)?<span>(来源：.*?)</span></div>')


def legacy_source_moved(page: str) -> str:
    """The legacy source out of the signdate line, into an element of its own below it."""
    return SIGNDATE_SOURCE.sub(r'\1</div>\n<div class="laiyuan">\2</div>', page)


CURRENT_DRIFTS = {
    "lazy_data_src": lazy_data_src,
    "lazy_data_uri": lazy_data_uri,
    "byline_wen_slash": byline_wen_slash,
    "editor_label": editor_label,
    "editor_unlabelled": editor_unlabelled,
}
LEGACY_DRIFTS = {"legacy_source_moved": legacy_source_moved}


def drifted_copy(site: Path, target: Path, drift, encoding: str) -> int:
    """A copy of ``site``'s www/ with ``drift`` applied to every article page; returns how many it changed."""
    shutil.copytree(site / "www", target)
    article_pages = target.glob("c/*/*.shtml") if encoding == "utf-8" else target.glob("[0-9]*/[0-9]*/[0-9]*/*.shtml")
    changed = 0
    for path in article_pages:
        page = path.read_bytes().decode(encoding)
        drifted = drift(page)
        if drifted != page:
            path.write_bytes(drifted.encode(encoding))
            changed += 1
    return changed


def match_rates(rows: list[dict], expected: list[dict]) -> dict[str, float]:
    """Per field, the share of the articles the crawl owes (one per duplicate group, whichever copy it
    wrote) that it wrote with that field exact; an article not written counts as wrong in every field."""
    group = group_resolver(expected)
    truth = {row["url"]: row for row in expected}
    written = {group(row["article_id"]): row for row in map(as_expected, rows)}
    owed = {group(row["article_id"]) for row in expected}
    return {
        field: round(sum(
            key in written and written[key][field] == truth[written[key]["url"]][field] for key in owed
        ) / len(owed), 4)
        for field in COMPARED_FIELDS
    }


@pytest.mark.parametrize("drift", ["lazy_data_src", "lazy_data_uri", "byline_wen_slash", "editor_label"])
def test_known_forms_are_read_exactly_and_the_run_exits_0(drift, serve_mirror, shared_current_site, tmp_path):
    assert drifted_copy(shared_current_site, tmp_path / "www", CURRENT_DRIFTS[drift], "utf-8") > 0
    server = serve_mirror(tmp_path / "www")
    data_dir = tmp_path / "data"
    result = run_crawl("", data_dir, THEORY_CHANNEL_URL=server.url + "theory/")
    assert result.returncode == 0, result.stderr[-3000:]
    rates = assert_exactly_the_ground_truth(data_dir, without_legacy_originals(load_expected(shared_current_site)))
    assert rates == {"current": {field: 1.0 for field in COMPARED_FIELDS}}
    report = latest_run_report(data_dir)
    assert report["layout_alarms"] == {} and report["rejected"] == 0


def test_an_editor_in_an_unlabelled_element_is_an_alarm_naming_editor(serve_mirror, shared_current_site, tmp_path):
    assert drifted_copy(shared_current_site, tmp_path / "www", editor_unlabelled, "utf-8") > 0
    server = serve_mirror(tmp_path / "www")
    data_dir = tmp_path / "data"
    result = run_crawl("", data_dir, THEORY_CHANNEL_URL=server.url + "theory/")
    assert result.returncode == 5, result.stderr[-3000:]
    report = latest_run_report(data_dir)
    assert list(report["layout_alarms"]) == ["field/current/editor"]
    message = report["layout_alarms"]["field/current/editor"]
    assert "editor is on 0% of the last 20 articles written, against 87% before" in message
    assert re.search(r"run `scrapy probe URL` on http://127\.0\.0\.1:\d+/c/\S+\.shtml and http://127\.0\.0\.1:\d+/c/\S+\.shtml", message)
    assert f"layout alarm: {message}" in result.stderr
    assert report["field_shares"]["current"]["editor"] == 0
    # every article is still written, every other field exact
    expected = without_legacy_originals(load_expected(shared_current_site))
    rows = read_jsonl(data_dir / "articles.jsonl")
    rates = match_rates(rows, expected)
    assert len(rows) == len({group_resolver(expected)(row["article_id"]) for row in expected})
    assert {field: rate for field, rate in rates.items() if field != "editor"} == {field: 1.0 for field in COMPARED_FIELDS if field != "editor"}
    assert all(row["editor"] is None for row in rows)


def test_the_legacy_source_moved_out_of_its_line_is_an_alarm_naming_source(serve_mirror, shared_site, tmp_path):
    assert drifted_copy(shared_site, tmp_path / "www", legacy_source_moved, "gbk") > 0
    server = serve_mirror(tmp_path / "www")
    data_dir = tmp_path / "data"
    result = run_crawl(server.url, data_dir)
    assert result.returncode == 5, result.stderr[-3000:]
    report = latest_run_report(data_dir)
    assert list(report["layout_alarms"]) == ["field/legacy/source"]
    assert "source is on 0% of the last 20 articles written, against 100% before" in report["layout_alarms"]["field/legacy/source"]
    rows = read_jsonl(data_dir / "articles.jsonl")
    rates = match_rates(rows, load_expected(shared_site))
    assert rates["source"] == 0 and rates["title"] == rates["body"] == rates["authors"] == 1.0

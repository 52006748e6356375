"""End to end: listing and feed pages that fail or repeat during a walk lose no article silently.

Each case serves a copy of a mirror with its own serve.py; the crawl is the real `scrapy crawl theory`.
"""

from __future__ import annotations

import shutil

from conftest import latest_run_report, load_expected, run_crawl
from test_two_sites import assert_exactly_the_ground_truth, channel_url, without_legacy_originals

# serve.py's --fail-first: the path answers 500 to its first N requests, far more than the crawl's retries.
ALWAYS = 1000


def failing_paths(tmp_path, *paths: str) -> list[str]:
    listed = tmp_path / "fail-first.txt"
    listed.write_text("".join(f"{path} {ALWAYS}\n" for path in paths))
    return ["--fail-first", str(listed)]


def test_a_failing_feed_page_is_passed_named_and_walked_again_next_run(serve_mirror, shared_current_site, tmp_path):
    www = tmp_path / "www"
    shutil.copytree(shared_current_site / "www", www)
    good_page_2 = (www / "json/theory/index_2.json").read_bytes()
    (www / "json/theory/index_2.json").write_text("<html><body><h1>502 Bad Gateway</h1></body></html>")
    server = serve_mirror(www, *failing_paths(tmp_path, "/json/theory/index_4.json"))
    data_dir = tmp_path / "data"

    first = run_crawl("", data_dir, THEORY_CHANNEL_URL=channel_url(server))
    assert first.returncode == 4, first.stderr[-3000:]
    assert "Traceback" not in first.stderr
    report = latest_run_report(data_dir)
    assert report["incomplete_walks"] == {"theory": [
        f"{server.url}json/theory/index_2.json (not_json)", f"{server.url}json/theory/index_4.json (http_500)",
    ]}
    assert report["feed_pages"] == 5  # 1, 2 (HTML), 3, 5, 6; page 4 never answered, page 7 is the 404 at the end
    assert report["exit_meaning"] == "a site could not be crawled completely"

    # The next day the pages are fine: the walk goes past the articles known by now, and completes.
    (www / "json/theory/index_2.json").write_bytes(good_page_2)
    server.stop()
    server = serve_mirror(www)
    second = run_crawl("", data_dir, "revisit=0", THEORY_CHANNEL_URL=channel_url(server))
    assert second.returncode == 0, second.stderr[-3000:]
    assert latest_run_report(data_dir)["incomplete_walks"] == {}
    rates = assert_exactly_the_ground_truth(data_dir, without_legacy_originals(load_expected(shared_current_site)))
    assert rates == {"current": {field: 1.0 for field in rates["current"]}}


def test_a_feed_page_repeated_later_in_the_feed_loses_nothing(serve_mirror, shared_current_site, tmp_path):
    www = tmp_path / "www"
    shutil.copytree(shared_current_site / "www", www)
    feed = www / "json/theory"
    pages = sorted(feed.glob("index_*.json"), key=lambda path: int(path.stem.split("_")[1]))
    # Page 1 comes again as page 3: every later page moves one down, as when the feed shifts under a walk.
    contents = [page.read_bytes() for page in pages]
    shifted = [*contents[:2], contents[0], *contents[2:]]
    for number, content in enumerate(shifted, 1):
        (feed / f"index_{number}.json").write_bytes(content)
    server = serve_mirror(www)
    data_dir = tmp_path / "data"

    result = run_crawl("", data_dir, THEORY_CHANNEL_URL=channel_url(server))
    assert result.returncode == 0, result.stderr[-3000:]
    report = latest_run_report(data_dir)
    assert report["incomplete_walks"] == {} and report["feed_pages"] == len(shifted)
    assert "index_3.json" in next(line for line in result.stderr.splitlines() if "on an earlier page of this walk" in line)
    assert_exactly_the_ground_truth(data_dir, without_legacy_originals(load_expected(shared_current_site)))


def test_a_failing_legacy_listing_page_is_passed_and_walked_again_next_run(serve_mirror, shared_site, tmp_path):
    server = serve_mirror(shared_site / "www", *failing_paths(tmp_path, "/241/241_2.shtml"))
    data_dir = tmp_path / "data"
    first = run_crawl(server.url, data_dir)
    assert first.returncode == 4, first.stderr[-3000:]
    report = latest_run_report(data_dir)
    assert report["incomplete_walks"] == {"241": [f"{server.url}241/241_2.shtml (http_500)"]}
    assert report["listing_failures"] == {"http_500": 1}

    server.stop()
    server = serve_mirror(shared_site / "www")
    second = run_crawl(server.url, data_dir, "revisit=0")
    assert second.returncode == 0, second.stderr[-3000:]
    rates = assert_exactly_the_ground_truth(data_dir, load_expected(shared_site))
    assert rates == {"legacy": {field: 1.0 for field in rates["legacy"]}}

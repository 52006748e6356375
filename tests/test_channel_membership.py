"""End to end on copies of the current mirror: the feed lists articles of another channel, or of another
host; the crawl writes the channel's own articles, exactly, and says what it left out."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
from urllib.parse import urlsplit

from conftest import latest_run_report, load_expected, read_jsonl, run_crawl
from test_two_sites import assert_exactly_the_ground_truth, channel_url, closed_port_url, without_legacy_originals


def copy_mirror(shared_current_site, tmp_path):
    www = tmp_path / "www"
    shutil.copytree(shared_current_site / "www", www)
    return www


def test_articles_of_another_channel_in_the_feed_are_not_written(serve_mirror, shared_current_site, tmp_path):
    www = copy_mirror(shared_current_site, tmp_path)
    character = json.loads((www / "json/character/index_1.json").read_text("utf-8"))
    page_2 = www / "json/theory/index_2.json"
    page_2.write_text(json.dumps(json.loads(page_2.read_text("utf-8")) + character, ensure_ascii=False), "utf-8")
    server = serve_mirror(www)
    data_dir = tmp_path / "data"

    result = run_crawl("", data_dir, THEORY_CHANNEL_URL=channel_url(server))
    assert result.returncode == 0, result.stderr[-3000:]
    assert_exactly_the_ground_truth(data_dir, without_legacy_originals(load_expected(shared_current_site)))
    written = {row["article_id"] for row in read_jsonl(data_dir / "articles.jsonl")}
    assert not written & {entry["id"] for entry in character}
    assert latest_run_report(data_dir)["other_channel"] == len(character)

    # They are not owed: the next run neither fetches nor writes them.
    db = sqlite3.connect(data_dir / "state.sqlite3")
    statuses = {row[0] for row in db.execute(
        f"SELECT status FROM articles WHERE article_id IN ({','.join('?' * len(character))})", [e["id"] for e in character]
    )}
    db.close()
    assert statuses == {"other_channel"}


def test_a_renamed_channel_is_a_layout_alarm_not_a_channel_of_strangers(serve_mirror, shared_current_site, tmp_path):
    www = copy_mirror(shared_current_site, tmp_path)
    for page in (www / "c").rglob("*.shtml"):
        text = page.read_text("utf-8")
        page.write_text(text.replace(" - 理论 - 中工网</title>", " - 理论频道 - 中工网</title>"), "utf-8")
    server = serve_mirror(www)
    data_dir = tmp_path / "data"

    result = run_crawl("", data_dir, THEORY_CHANNEL_URL=channel_url(server))
    assert result.returncode == 5, result.stderr[-3000:]
    report = latest_run_report(data_dir)
    assert report["layout_alarms"] == {"articles_of_another_channel": report["other_channel"]}
    assert report["other_channel"] > 100
    db = sqlite3.connect(data_dir / "state.sqlite3")
    (skipped,) = db.execute("SELECT COUNT(*) FROM articles WHERE status = 'other_channel'").fetchone()
    db.close()
    assert skipped == 0  # they stay owed


def test_article_links_to_other_hosts(serve_mirror, shared_current_site, tmp_path):
    www = copy_mirror(shared_current_site, tmp_path)
    channel = serve_mirror(www)
    news = serve_mirror(www)  # the same articles on a second host, as news.workercn.cn serves /c/ pages
    stranger = closed_port_url()
    feed = www / "json/theory/index_3.json"
    entries = json.loads(feed.read_text("utf-8"))
    entries[0]["href"] = news.url.rstrip("/") + entries[0]["href"]
    entries[1]["href"] = stranger.rstrip("/") + entries[1]["href"]
    feed.write_text(json.dumps(entries, ensure_ascii=False), "utf-8")
    data_dir = tmp_path / "data"

    result = run_crawl("", data_dir, THEORY_CHANNEL_URL=channel_url(channel), THEORY_ARTICLE_HOSTS=urlsplit(news.url).netloc)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {row["article_id"]: row for row in read_jsonl(data_dir / "articles.jsonl")}
    assert rows[entries[0]["id"]]["url"].startswith(news.url)
    assert entries[1]["id"] not in rows
    assert latest_run_report(data_dir)["offsite_links"] == 1
    assert re.search(r"WARNING: .*index_3\.json: 1 article links to other hosts", result.stderr)
    expected = [row for row in without_legacy_originals(load_expected(shared_current_site)) if row["article_id"] != entries[1]["id"]]
    assert_exactly_the_ground_truth(data_dir, expected)

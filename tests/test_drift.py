"""Template drift (crawler/drift.py): the judgement of a window on tables, then the window as the storage
pipeline and the crawl state keep it across runs, and its share in the metrics file."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import pytest
from scrapy.utils.test import get_crawler

from crawler.drift import FIELDS, LEARN_AFTER, FieldWatch, Row, Share, at_most_by_chance, baseline, judge
from crawler.extensions import summarize
from crawler.items import ArticleItem
from crawler.pipelines import StoragePipeline
from crawler.processors import content_hash
from crawler.readers import current
from crawler.state import CrawlState

CURRENT_DECLARED = {field: Share(share, "declared in crawler.readers.current") for field, share in current.EXPECTED_SHARES.items()}


def rows(count: int, start: int = 0, missing=(), authors=None, images=None) -> list[Row]:
    """``count`` rows numbered from ``start``, carrying every field but the ``missing`` ones; each has an
    author and an image of its own unless ``authors`` or ``images`` are given."""
    made = []
    for number in range(start, start + count):
        made.append(Row(
            f"http://www.workercn.cn/c/2026-01-01/{8000000 + number}.shtml", {field: field not in missing for field in FIELDS},
            () if "authors" in missing else tuple(authors or [f"作者{number}"]),
            () if "images" in missing else tuple(images or [f"http://www.workercn.cn/upload/{number}.jpg"]),
        ))
    return made


def names(alarms) -> list[tuple[str, str]]:
    return [(alarm.kind, alarm.field) for alarm in alarms]


# --- the judgement ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "window, expected",
    [
        # the editor gone: judged once the window is full, not before
        (rows(20, missing=("editor",)), [("empty", "editor")]),
        (rows(19, missing=("editor",)), []),
        (rows(5, missing=("editor",)), []),
        # under half of the baseline (87%): 8 of 20 is, 9 of 20 is not
        (rows(12, missing=("editor",)) + rows(8, 12), [("empty", "editor")]),
        (rows(11, missing=("editor",)) + rows(9, 11), []),
        # the source (expected on every article): 9 of 20 is under half, 10 is not
        (rows(11, missing=("source",)) + rows(9, 11), [("empty", "source")]),
        (rows(10, missing=("source",)) + rows(10, 10), []),
        # images are expected on 11%: none in 20 articles happens by chance (12% of windows), no alarm
        (rows(20, missing=("images",)), []),
        # authors (69%): none in 20 is no chance
        (rows(20, missing=("authors",)), [("empty", "authors")]),
        (rows(20, missing=("source", "editor")), [("empty", "source"), ("empty", "editor")]),
        # a longer window than the setting (the setting was lowered) is judged as it is
        (rows(25, missing=("editor",)), [("empty", "editor")]),
        (rows(20), []),
    ],
)
def test_a_field_that_empties_is_an_alarm_once_the_window_is_full(window, expected):
    assert names(judge("current", window, CURRENT_DECLARED, 20)) == expected


PLACEHOLDER = "http://www.workercn.cn/images/blank.gif"
QR_CODE = "http://www.workercn.cn/images/qrcode.png"


@pytest.mark.parametrize(
    "window, allow, expected",
    [
        # the same image on half of the window's articles, and at least 5 of them
        (rows(10, images=[PLACEHOLDER]) + rows(10, 10), (), [("odd_value", "images")]),
        (rows(9, images=[PLACEHOLDER]) + rows(11, 9), (), []),
        (rows(5, images=[PLACEHOLDER]), (), [("odd_value", "images")]),  # a partial window, 5 articles
        (rows(4, images=[PLACEHOLDER]), (), []),
        (rows(6, images=[PLACEHOLDER]) + rows(5, 6), (), [("odd_value", "images")]),
        # twice in one article counts once
        (rows(4, images=[PLACEHOLDER, PLACEHOLDER]) + rows(6, 4), (), []),
        # exempt: by URL, or by path (the same on any host, a mirror included)
        (rows(20, images=[QR_CODE]), (QR_CODE,), []),
        (rows(20, images=[QR_CODE]), ("/images/qrcode.png",), []),
        # one author name on 80% of the articles
        (rows(16, authors=["文"]) + rows(4, 16, authors=["张三"]), (), [("odd_value", "authors")]),
        (rows(15, authors=["文"]) + rows(5, 15, authors=["李四"]), (), []),
        (rows(20, authors=["本报评论员"]), ("本报评论员",), []),
        (rows(4, authors=["文"]), (), []),
    ],
)
def test_one_value_on_too_many_articles_is_an_alarm(window, allow, expected):
    # Every row carries every field: only the odd values can raise anything here (rows() names one author).
    assert names(judge("current", window, CURRENT_DECLARED, 20, frozenset(allow))) == expected


def test_the_alarm_names_the_field_its_shares_two_examples_and_the_probe():
    window = rows(20, 0) + rows(20, 20, missing=("editor",))
    (alarm,) = judge("current", window[-20:], CURRENT_DECLARED, 20)
    message = alarm.message()
    assert alarm.key == "field/current/editor"
    assert "editor is on 0% of the last 20 articles written, against 87% before (declared in crawler.readers.current)" in message
    # the two most recent articles without the field
    assert alarm.examples == (window[-1].url, window[-2].url)
    assert f"run `scrapy probe URL` on {window[-1].url} and {window[-2].url}" in message


def test_an_odd_value_alarm_names_the_value_and_the_setting_that_exempts_it():
    (alarm,) = judge("current", rows(20, images=[PLACEHOLDER]), CURRENT_DECLARED, 20)
    assert alarm.key == "odd_value/current/images" and alarm.value == PLACEHOLDER
    assert f"one image value '{PLACEHOLDER}' is on 100% of the last 20 articles" in alarm.message()
    assert "THEORY_FIELD_ALLOW" in alarm.message() and "scrapy probe" in alarm.message()


@pytest.mark.parametrize(
    "learned, learned_total, expected_editor",
    [
        ({}, 0, Share(0.87, "declared in crawler.readers.current")),
        ({"editor": 150}, LEARN_AFTER - 1, Share(0.87, "declared in crawler.readers.current")),
        ({"editor": 50}, LEARN_AFTER, Share(0.25, f"learned from {LEARN_AFTER} articles of this site")),
        ({}, 400, Share(0.0, "learned from 400 articles of this site")),
    ],
)
def test_the_site_own_shares_take_over_after_enough_learned_articles(learned, learned_total, expected_editor):
    shares = baseline(current.EXPECTED_SHARES, learned, learned_total, "crawler.readers.current")
    assert shares["editor"] == expected_editor


@pytest.mark.parametrize(
    "present, total, share, expected",
    [
        (0, 20, 0.5, 0.5**20),
        (20, 20, 0.3, 1.0),
        (0, 20, 1.0, 0.0),
        (20, 20, 1.0, 1.0),
        (0, 1, 0.25, 0.75),
        (1, 2, 0.5, 0.75),
    ],
)
def test_at_most_by_chance_is_the_binomial_tail(present, total, share, expected):
    assert at_most_by_chance(present, total, share) == pytest.approx(expected)


def test_every_layout_declares_a_share_for_every_field():
    from crawler.readers import legacy

    for declared in (legacy.EXPECTED_SHARES, current.EXPECTED_SHARES):
        assert set(declared) == set(FIELDS) and all(0 <= share <= 1 for share in declared.values())


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({}, {}),
        ({"editor": None}, {"editor": "empty, where crawler.readers.current expects it on 87% of articles"}),
        ({"images": []}, {}),  # expected on 11%: an article without is no news
        ({"authors": []}, {}),  # on 69% of the articles: an article without is as likely right as wrong
        ({"published_time": None, "source": None}, {
            "source": "empty, where crawler.readers.current expects it on 100% of articles",
            "published_time": "empty, where crawler.readers.current expects it on 100% of articles",
        }),
        ({"authors": ["文", "张三"]}, {"authors": '"文" looks like a label, not a value'}),
        ({"editor": "责任编辑：王五"}, {"editor": '"责任编辑：王五" looks like a label, not a value'}),
        ({"source": "来源"}, {"source": '"来源" looks like a label, not a value'}),
        ({"images": ["http://x/images/blank.gif"]}, {"images": "http://x/images/blank.gif looks like a placeholder, not an article image"}),
        ({"images": ["data:image/gif;base64,R0l"]}, {"images": "data:image/gif;base64,R0l looks like a placeholder, not an article image"}),
        ({"images": ["http://x/a.jpg", "http://x/b.jpg", "http://x/a.jpg"]}, {"images": "http://x/a.jpg looks like a placeholder, not an article image"}),
    ],
)
def test_the_probe_marks_empty_expected_fields_and_label_or_placeholder_values(changes, expected):
    from crawler.drift import suspect_fields

    record = {"source": "工人日报", "authors": ["张三"], "editor": "王五", "images": ["http://x/upload/1.jpg"],
              "published_time": "08:00:00", **changes}
    assert suspect_fields(record, current.EXPECTED_SHARES, "crawler.readers.current") == expected


# --- the window across runs: the storage pipeline feeds it, the state keeps it -----------------------


def item(number: int, **changes) -> ArticleItem:
    article_id = str(8_100_000 + number)
    article = ArticleItem(
        url=f"http://www.workercn.cn/c/2026-01-01/{article_id}.shtml", article_id=article_id, section_id="theory",
        section_name="理论", title=f"题目{number}", authors=[f"作者{number}"], source="工人日报",
        published_date="2026-01-01", published_time="08:00:00", published_at="2026-01-01T08:00:00+08:00",
        editor=f"编辑{number}", body=f"正文{number}", images=[], page_count=1, crawled_at="2026-01-01T00:00:00+00:00",
    )
    article = replace(article, **changes)
    article.content_hash = content_hash(article.title, article.body)
    return article


class Runs:
    """Runs of the storage pipeline on one data dir, each with its own crawler, stats and state, as cron's are."""

    def __init__(self, data_dir, learn_after: int = LEARN_AFTER):
        self.data_dir = data_dir
        self.learn_after = learn_after
        self.next_number = 0

    def run(self, count: int, **changes) -> dict:
        crawler = get_crawler(settings_dict={"THEORY_DATA_DIR": str(self.data_dir), "THEORY_WARC": False})
        state = CrawlState(self.data_dir)
        crawler.spider = SimpleNamespace(state=state)
        try:
            pipeline = StoragePipeline.from_crawler(crawler)
            pipeline.field_watch.learn_after = self.learn_after
            pipeline.open_spider()
            for _ in range(count):
                self.next_number += 1
                pipeline.process_item(item(self.next_number, **changes))
            pipeline.close_spider()
            self.learned = state.field_learned("current")
        finally:
            state.close()
        return crawler.stats.get_stats()


def alarms_of(stats: dict) -> dict:
    return {key: value for key, value in stats.items() if key.startswith("theory/layout/")}


def test_daily_runs_of_five_articles_alarm_when_the_window_reaches_twenty(tmp_path):
    runs = Runs(tmp_path)
    for day in (1, 2, 3):
        stats = runs.run(5, editor=None)
        assert alarms_of(stats) == {}, f"run {day}"
        assert stats["theory/field_share/current/editor"] == 0
    stats = runs.run(5, editor=None)
    (message,) = alarms_of(stats).values()
    assert list(alarms_of(stats)) == ["theory/layout/field/current/editor"]
    assert "editor is on 0% of the last 20 articles written, against 87% before" in message
    assert "8100020.shtml and http://www.workercn.cn/c/2026-01-01/8100019.shtml" in message
    # the articles are written all the same
    assert stats["theory/written"] == 5 and len((tmp_path / "articles.jsonl").read_text("utf-8").splitlines()) == 20
    # and the run report says it: exit 5 follows from layout_alarms
    report = summarize(stats, "finished", *[__import__("datetime").datetime.now()] * 2)
    assert report["layout_alarms"] == {"field/current/editor": message}
    assert report["field_shares"]["current"]["editor"] == 0 and report["field_shares"]["current"]["source"] == 1


def test_a_run_that_writes_nothing_on_a_site_raises_nothing_new(tmp_path):
    runs = Runs(tmp_path)
    assert alarms_of(runs.run(20, editor=None))
    stats = runs.run(0)
    assert alarms_of(stats) == {}
    assert stats["theory/field_share/current/editor"] == 0  # the share is still reported


def test_the_window_keeps_the_last_articles_only(tmp_path):
    runs = Runs(tmp_path)
    runs.run(20, editor=None)
    stats = runs.run(20)  # a fixed template: the window holds only fixed articles now
    assert alarms_of(stats) == {} and stats["theory/field_share/current/editor"] == 1


def test_the_baseline_never_learns_from_an_alarmed_window(tmp_path):
    runs = Runs(tmp_path, learn_after=40)
    runs.run(10)
    runs.run(10)
    # a full window without alarm teaches (these articles have no images, which 20 cannot tell from chance)
    assert runs.learned == ({**{field: 20 for field in FIELDS}, "images": 0}, 20)
    runs.run(20)
    assert runs.learned[1] == 40  # enough learned: the site's own shares (editor on 100%) are the baseline now
    stats = runs.run(20, editor=None)
    assert "learned from 40 articles of this site" in stats["theory/layout/field/current/editor"]
    assert runs.learned[1] == 40  # the alarmed window taught nothing
    # Fixed: 12 good articles make the window (8 without editor, 12 with) clean again, at 60%. It teaches
    # its 12 new articles, never the 8 that were in the alarmed window.
    stats = runs.run(12)
    assert alarms_of(stats) == {}
    learned, total = runs.learned
    assert total == 52 and learned["editor"] == 52


def test_a_partial_window_teaches_nothing_until_it_is_judged_full(tmp_path):
    runs = Runs(tmp_path, learn_after=20)
    runs.run(15, editor=None)
    assert runs.learned == ({}, 0)
    runs.run(5, editor=None)  # full now, and alarmed: the first 15 never teach either
    runs.run(20)
    assert runs.learned == ({**{field: 20 for field in FIELDS}, "images": 0}, 20)


def test_the_window_follows_the_setting_and_the_allow_list(tmp_path):
    crawler = get_crawler(settings_dict={"THEORY_DATA_DIR": str(tmp_path), "THEORY_FIELD_WINDOW": 7,
                                         "THEORY_FIELD_ALLOW": "本报评论员,/images/qrcode.png"})
    state = CrawlState(tmp_path)
    try:
        watch = FieldWatch.from_crawler(crawler, state)
        assert watch.window == 7 and watch.allow == {"本报评论员", "/images/qrcode.png"}
        for number in range(10):
            watch.record({**item(number).__dict__, "images": [QR_CODE]})
        assert len(state.field_window("current")) == 7
        assert watch.judge() == []
    finally:
        state.close()


def test_lines_recovered_after_a_crash_join_the_window(tmp_path):
    runs = Runs(tmp_path)
    runs.run(5)
    # a crash after the lines were written, before the state was committed: the next run finds them
    state = CrawlState(tmp_path)
    synced = state.synced_size("articles.jsonl")
    state.close()
    with open(tmp_path / "articles.jsonl", "ab") as out:
        from crawler.pipelines import to_json_line

        for number in (101, 102):
            out.write(to_json_line(item(number, editor=None).__dict__))
    assert synced > 0
    stats = runs.run(0)
    assert stats["theory/field_share/current/editor"] == pytest.approx(5 / 7, abs=1e-4)


def test_the_metrics_file_carries_the_window_share_of_every_field(tmp_path):
    from prometheus_client.parser import text_string_to_metric_families

    from crawler.metrics import MetricsFile

    crawler = get_crawler(settings_dict={"THEORY_METRICS_FILE": str(tmp_path / "theory.prom"), "THEORY_MAX_PARSE_FAILURE_RATIO": 0.2})
    for key, value in {"downloader/response_count": 3, "theory/field_share/current/editor": 0.25,
                       "theory/field_share/current/source": 1.0, "theory/field_share/legacy/images": 0.1}.items():
        crawler.stats.set_value(key, value)
    MetricsFile.from_crawler(crawler).write("finished", 1_000_000.0)
    shares = {
        (sample.labels["site"], sample.labels["field"]): sample.value
        for family in text_string_to_metric_families((tmp_path / "theory.prom").read_text("utf-8"))
        for sample in family.samples if sample.name == "theory_crawler_field_share"
    }
    assert shares == {("current", "editor"): 0.25, ("current", "source"): 1.0, ("legacy", "images"): 0.1}

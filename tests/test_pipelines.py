"""Validation, dedupe and storage on plain items, with a real crawl state in a temporary data dir."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from types import SimpleNamespace

import pytest
from jsonschema import Draft7Validator, FormatChecker
from scrapy.exceptions import DropItem
from scrapy.utils.test import get_crawler

from crawler.items import ArchivedArticleItem, ArticleItem
from crawler.processors import content_hash
from crawler.pipelines import DedupePipeline, StoragePipeline, ValidationPipeline
from crawler.revisions import RevisitResult, corrections
from crawler.state import CrawlState, written_from
from crawler.pipelines import load_schema

DUPLICATE_SCHEMA = Draft7Validator(load_schema("duplicate"), format_checker=FormatChecker())


def article(number: int = 1, **changes) -> ArticleItem:
    article_id = f"19010100000000{number}"
    item = ArticleItem(
        url=f"http://theory.example/241/201901/01/{article_id}.shtml",
        article_id=article_id,
        section_id="241",
        section_name="实践与思考",
        title=f"题目{number}",
        authors=["金述华"],
        source="工人日报",
        published_date="2019-01-01",
        published_time=None,
        published_at="2019-01-01",
        editor=None,
        body=f"正文{number}",
        images=[],
        page_count=1,
        crawled_at="2026-11-24T03:17:00+00:00",
    )
    item = replace(item, **changes)
    item.content_hash = content_hash(item.title, item.body)
    return item


@pytest.fixture
def crawler(tmp_path):
    crawler = get_crawler(
        settings_dict={"THEORY_DATA_DIR": str(tmp_path), "THEORY_MAX_ATTEMPTS": 3, "THEORY_SYNC_ITEMS": 1000,
                       "THEORY_SYNC_SECONDS": 1000}
    )
    crawler.spider = SimpleNamespace(state=CrawlState(tmp_path))
    yield crawler
    crawler.spider.state.close()


def lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()] if path.exists() else []


@pytest.mark.parametrize(
    "changes, reason",
    [
        ({"title": None}, "missing title"),
        ({"body": None}, "missing body"),
        ({"published_date": None}, "missing published_date"),
        ({"published_date": "2019-02-30"}, "unparseable published_date"),
        ({"section_name": None}, "schema: data.section_name must be string"),
        ({"url": "http://theory.example/241/241.shtml"}, "schema: data.url must match pattern"),
    ],
)
def test_an_item_breaking_the_contract_is_rejected_with_its_reason(crawler, tmp_path, changes, reason):
    pipeline = ValidationPipeline.from_crawler(crawler)
    with pytest.raises(DropItem, match="rejected"):
        pipeline.process_item(article(**changes))
    pipeline.close_spider()
    (reject,) = lines(tmp_path / "rejects.jsonl")
    assert reason in reject["reason"]
    assert reject["item"]["article_id"] == article().article_id
    assert crawler.stats.get_value("theory/rejected") == 1
    assert crawler.spider.state.pending() == [reject["item"]["url"]]  # owed: tried again next run


def test_a_valid_item_passes_validation_untouched(crawler, tmp_path):
    item = article()
    assert ValidationPipeline.from_crawler(crawler).process_item(item) is item
    assert not (tmp_path / "rejects.jsonl").exists()


def test_the_same_article_is_passed_once(crawler):
    pipeline = DedupePipeline.from_crawler(crawler)
    assert pipeline.process_item(article()) is not None
    with pytest.raises(DropItem, match="already written"):
        pipeline.process_item(article())
    assert crawler.stats.get_value("theory/duplicates/url") == 1


def through_dedupe_and_storage(dedupe: DedupePipeline, storage: StoragePipeline, item: ArticleItem):
    """What Scrapy does with an item after validation: each pipeline's output is the next one's input."""
    return storage.process_item(dedupe.process_item(item))


def test_a_republished_copy_is_dropped_as_a_content_duplicate_and_recorded(crawler, tmp_path):
    dedupe, storage = DedupePipeline.from_crawler(crawler), StoragePipeline.from_crawler(crawler)
    storage.open_spider()
    through_dedupe_and_storage(dedupe, storage, article(1))
    copy = article(2, title=article(1).title, body=article(1).body)
    with pytest.raises(DropItem, match="same title and body as article 190101000000001"):
        through_dedupe_and_storage(dedupe, storage, copy)
    with pytest.raises(DropItem, match="already written"):  # seen again: recorded once only
        through_dedupe_and_storage(dedupe, storage, copy)
    storage.close_spider()
    assert crawler.stats.get_value("theory/duplicates/content") == 1
    assert crawler.stats.get_value("theory/duplicates/recorded") == 1
    assert crawler.spider.state.known([copy.article_id]) == {copy.article_id}  # not fetched again
    assert [row["article_id"] for row in lines(tmp_path / "articles.jsonl")] == [article(1).article_id]
    (record,) = lines(tmp_path / "duplicates.jsonl")
    DUPLICATE_SCHEMA.validate(record)
    assert {key: value for key, value in record.items() if key != "detected_at"} == {
        "url": copy.url, "article_id": copy.article_id, "section_id": "241",
        "kept_article_id": article(1).article_id, "content_hash": article(1).content_hash,
    }
    assert crawler.spider.state.synced_size("duplicates.jsonl") == (tmp_path / "duplicates.jsonl").stat().st_size


def test_duplicates_after_the_last_sync_are_replayed_on_the_state_and_a_torn_record_is_cut(crawler, tmp_path):
    storage = StoragePipeline.from_crawler(crawler)
    storage.open_spider()
    storage.process_item(article(1))
    storage.close_spider()
    copies = [article(number, title=article(1).title, body=article(1).body) for number in (2, 3)]
    record = {"url": copies[0].url, "article_id": copies[0].article_id, "section_id": "241",
              "kept_article_id": article(1).article_id, "content_hash": article(1).content_hash,
              "detected_at": "2026-12-06T00:00:00+00:00"}
    whole = json.dumps(record) + "\n"
    # A crash after the first record was appended, before the state that counts it was committed, mid-way in the next.
    (tmp_path / "duplicates.jsonl").write_text(whole + '{"url": "http://theory.example/241/2019', encoding="utf-8")

    dedupe, storage = DedupePipeline.from_crawler(crawler), StoragePipeline.from_crawler(crawler)
    storage.open_spider()
    assert (tmp_path / "duplicates.jsonl").read_text("utf-8") == whole
    assert crawler.stats.get_value("theory/recovery/replayed_duplicates") == 1
    for copy in copies:  # the one recorded before the crash is not recorded again; the torn one is
        with pytest.raises(DropItem):
            through_dedupe_and_storage(dedupe, storage, copy)
    storage.close_spider()
    assert [row["article_id"] for row in lines(tmp_path / "duplicates.jsonl")] == [copy.article_id for copy in copies]


def test_duplicates_the_state_knows_and_the_file_lacks_are_owed_again(crawler, tmp_path):
    """A data dir of a release that kept no duplicates.jsonl: its duplicates are fetched again to be recorded."""
    state = crawler.spider.state
    copy = article(2, title=article(1).title, body=article(1).body)
    state.mark_written(article(1).article_id, article(1).url, "241", article(1).content_hash)
    state.db.execute(
        "INSERT INTO articles (article_id, url, section_id, status, content_hash, updated_at)"
        " VALUES (?, ?, '241', 'duplicate', ?, '2026-11-24T00:00:00+00:00')",
        (copy.article_id, copy.url, copy.content_hash),
    )
    (tmp_path / "articles.jsonl").write_text(json.dumps(vars(article(1)), ensure_ascii=False) + "\n", encoding="utf-8")
    storage = StoragePipeline.from_crawler(crawler)
    storage.open_spider()
    assert state.pending() == [copy.url]
    assert crawler.stats.get_value("theory/recovery/missing_duplicates") == 1
    storage.close_spider()


def test_storage_appends_one_utf8_line_per_item(crawler, tmp_path):
    pipeline = StoragePipeline.from_crawler(crawler)
    pipeline.open_spider()
    for number in (1, 2):
        pipeline.process_item(article(number))
    pipeline.close_spider()
    raw = (tmp_path / "articles.jsonl").read_bytes()
    assert "实践与思考".encode("utf-8") in raw  # not ASCII-escaped
    assert [row["article_id"] for row in lines(tmp_path / "articles.jsonl")] == [
        article(1).article_id, article(2).article_id]
    assert crawler.spider.state.synced_size("articles.jsonl") == len(raw)


def test_lines_written_after_the_last_sync_are_recovered_and_a_torn_line_is_cut(crawler, tmp_path):
    output = tmp_path / "articles.jsonl"
    first = json.dumps(vars(article(1)), ensure_ascii=False) + "\n"
    output.write_text(first + '{"url": "http://theory.example/241/2019', encoding="utf-8")  # a crash mid-line
    pipeline = StoragePipeline.from_crawler(crawler)
    pipeline.open_spider()
    assert output.read_text("utf-8") == first
    assert crawler.spider.state.known([article(1).article_id]) == {article(1).article_id}
    with pytest.raises(DropItem):  # written before the crash: not written again
        DedupePipeline.from_crawler(crawler).process_item(article(1))
    pipeline.close_spider()


# --- where each written article was read: its host, or a web archive's capture ----------------------


def archived(number: int) -> ArchivedArticleItem:
    item = article(number)
    capture = {"url": f"http://archive.example/coll/20151107083012id_/{item.url}", "timestamp": "20151107083012"}
    return ArchivedArticleItem(**vars(item), archived_from=[capture])


@pytest.mark.parametrize(
    "record, source",
    [
        ({"article_id": "1"}, "live"),
        ({"article_id": "1", "archived_from": []}, "live"),
        ({"article_id": "1", "archived_from": [{"url": "http://a/coll/20151107083012id_/x", "timestamp": "20151107083012"}]}, "archive"),
    ],
    ids=["no archived_from", "empty archived_from", "archived_from"],
)
def test_written_from(record, source):
    assert written_from(record) == source


def sources(state: CrawlState) -> dict[str, str | None]:
    return dict(state.db.execute("SELECT article_id, written_from FROM articles WHERE status = 'written'"))


def test_each_written_line_records_its_source_and_a_killed_run_keeps_it(crawler, tmp_path):
    storage = StoragePipeline.from_crawler(crawler)
    storage.open_spider()
    storage.process_item(article(1))
    storage.process_item(archived(2))
    storage.close_spider()
    assert sources(crawler.spider.state) == {article(1).article_id: "live", article(2).article_id: "archive"}

    # A run killed after its line was appended, before the state that counts it was committed.
    with open(tmp_path / "articles.jsonl", "a", encoding="utf-8") as output:
        output.write(json.dumps(vars(archived(3)), ensure_ascii=False) + "\n")
    storage = StoragePipeline.from_crawler(crawler)
    storage.open_spider()
    assert sources(crawler.spider.state)[article(3).article_id] == "archive"
    storage.close_spider()


def test_a_state_of_the_release_before_sources_gets_them_from_the_lines_once(crawler, tmp_path):
    storage = StoragePipeline.from_crawler(crawler)
    storage.open_spider()
    storage.process_item(article(1))
    storage.process_item(archived(2))
    storage.close_spider()
    # Recorded as written, but its line is not in the file: nothing says where it came from.
    crawler.spider.state.mark_written(article(3).article_id, article(3).url, "241", article(3).content_hash)
    crawler.spider.state.close()
    with sqlite3.connect(tmp_path / "state.sqlite3") as db:  # as the release before sources left it
        db.execute("ALTER TABLE articles DROP COLUMN written_from")
    db.close()

    state = crawler.spider.state = CrawlState(tmp_path)
    assert state.written_without_source() == 3
    storage = StoragePipeline.from_crawler(crawler)
    storage.open_spider()
    assert sources(state) == {article(1).article_id: "live", article(2).article_id: "archive", article(3).article_id: "live"}
    assert crawler.stats.get_value("theory/recovery/sources") == 3
    assert crawler.stats.get_value("theory/recovery/sources_archived") == 1
    storage.close_spider()
    assert state.written_without_source() == 0  # the next run reads no line for it
    ids = {article_id for article_id, _, _ in state.revisit_targets("2000-01-01", 100, archived=False)}
    assert ids == {article(1).article_id, article(3).article_id}


# --- revisits: the events of changes.jsonl --------------------------------------------------------


def revisit(of: ArticleItem, verdict: str = "present", **fields):
    """What the spider hands the pipeline after revisiting the article ``of``."""
    return RevisitResult(of.article_id, of.url, verdict, **{"status": 200, **fields})


def revised(of: ArticleItem, body: str) -> ArticleItem:
    changed = replace(of, body=body)
    changed.content_hash = content_hash(changed.title, changed.body)
    return changed


def run(crawler, *results, removal_min_hours: float = 0):
    """One run of the storage pipeline: its revisit results, then its end (where held revisions are decided)."""
    pipeline = StoragePipeline.from_crawler(crawler)
    pipeline.removal_min_hours = removal_min_hours  # THEORY_REMOVAL_MIN_HOURS
    pipeline.open_spider()
    for result in results:
        pipeline.process_item(result)
    pipeline.close_spider()
    return pipeline


def test_revisits_make_one_event_per_change_and_a_removal_only_when_confirmed(crawler, tmp_path):
    run(crawler, article(1))
    changed = revised(article(1), "正文1，修订后")
    run(crawler, revisit(article(1), item=changed), revisit(article(1), item=changed))  # the same content twice: one event
    run(crawler, revisit(article(1), status=304, not_modified=True), revisit(article(1), "removed", status=404))  # first failing run
    run(crawler, revisit(article(1), "unknown", status=None, reason="timeout"))  # neither counts nor resets
    run(crawler, revisit(article(1), "removed", status=404))  # confirmed
    run(crawler, revisit(article(1), "removed", status=404), revisit(article(1), status=304, not_modified=True))
    events = lines(tmp_path / "changes.jsonl")
    assert [event["event"] for event in events] == ["revised", "removed", "restored"]
    assert events[0]["version"] == 2 and events[0]["previous_content_hash"] == article(1).content_hash
    assert events[0]["item"]["body"] == "正文1，修订后"
    assert events[1]["evidence"]["status"] == 404 and events[1]["evidence"]["runs"] == 2
    assert lines(tmp_path / "articles.jsonl") == [json.loads(json.dumps(vars(article(1)), ensure_ascii=False))]
    state = crawler.spider.state
    assert state.synced_size("changes.jsonl") == (tmp_path / "changes.jsonl").stat().st_size
    assert state.revision(article(1).article_id)["removed"] == 0


def test_a_removal_needs_its_runs_to_span_the_minimum_hours(crawler, tmp_path):
    """Two failing runs a second apart (a rerun after a crash) confirm nothing; once the first failing
    run lies THEORY_REMOVAL_MIN_HOURS back, the next failing run does."""
    run(crawler, article(1))
    run(crawler, revisit(article(1), "removed", status=404), removal_min_hours=12)
    run(crawler, revisit(article(1), "removed", status=404), removal_min_hours=12)
    assert lines(tmp_path / "changes.jsonl") == []
    assert crawler.stats.get_value("theory/revisit/removal_too_soon") == 1
    state = crawler.spider.state
    assert state.revision(article(1).article_id)["failing_runs"] == 2
    state.update_revision(article(1).article_id, failing_since="2000-01-01T00:00:00+00:00")
    run(crawler, revisit(article(1), "removed", status=404), removal_min_hours=12)
    (event,) = lines(tmp_path / "changes.jsonl")
    assert event["event"] == "removed" and event["evidence"]["first_seen_failing"] == "2000-01-01T00:00:00+00:00"
    assert event["evidence"]["runs"] == 3


def test_a_first_failing_run_in_the_future_counts_as_now(crawler, tmp_path):
    run(crawler, article(1))
    run(crawler, revisit(article(1), "removed", status=404), removal_min_hours=12)
    crawler.spider.state.update_revision(article(1).article_id, failing_since="2999-01-01T00:00:00+00:00")
    run(crawler, revisit(article(1), "removed", status=404), removal_min_hours=12)
    assert lines(tmp_path / "changes.jsonl") == []


def whole_revisits(count: int, changed: int):
    """``count`` articles revisited whole, the first ``changed`` of them with a new version."""
    return [
        revisit(article(number), item=revised(article(number), f"正文{number}，修订后") if number <= changed else article(number),
                validators={f"/page/{number}": ["etag-new", None]})
        for number in range(1, count + 1)
    ]


def test_more_than_half_of_the_whole_revisits_revised_is_a_layout_alarm_and_writes_none(crawler, tmp_path):
    run(crawler, *[article(number) for number in range(1, 19)])
    run(crawler, *whole_revisits(18, changed=10))
    assert lines(tmp_path / "changes.jsonl") == []
    assert crawler.stats.get_value("theory/layout/revisions_over_half") == 10
    assert crawler.stats.get_value("theory/revisit/revised") is None
    state = crawler.spider.state
    # Nothing of the withheld revisits is kept: next run reads them whole again and decides again.
    assert state.revision(article(1).article_id)["version"] == 1
    assert state.validators("/page/1") == (None, None)
    assert state.validators("/page/18") == ("etag-new", None)  # an unchanged one is recorded as usual


@pytest.mark.parametrize("count, changed", [(20, 10), (9, 9)], ids=["half", "fewer-than-10"])
def test_half_of_the_whole_revisits_or_fewer_than_10_are_recorded(crawler, tmp_path, count, changed):
    run(crawler, *[article(number) for number in range(1, count + 1)])
    run(crawler, *whole_revisits(count, changed))
    assert len(lines(tmp_path / "changes.jsonl")) == changed
    assert crawler.stats.get_value("theory/layout/revisions_over_half") is None
    assert crawler.spider.state.validators("/page/1") == ("etag-new", None)


def test_events_after_the_last_sync_are_replayed_on_the_state_and_a_torn_event_is_cut(crawler, tmp_path):
    pipeline = StoragePipeline.from_crawler(crawler)
    pipeline.open_spider()
    pipeline.process_item(article(1))
    pipeline.close_spider()
    changed = replace(article(1), body="正文1，修订后")
    changed.content_hash = content_hash(changed.title, changed.body)
    event = {"event": "revised", "article_id": changed.article_id, "url": changed.url, "version": 2,
             "previous_content_hash": article(1).content_hash, "detected_at": "2026-11-30T00:00:00+00:00",
             "item": vars(changed)}
    whole = json.dumps(event, ensure_ascii=False) + "\n"
    # A crash after the event was appended, before the state that counts it was committed, mid-way in the next.
    (tmp_path / "changes.jsonl").write_text(whole + '{"event": "removed", "arti', encoding="utf-8")

    pipeline = StoragePipeline.from_crawler(crawler)
    pipeline.open_spider()
    assert (tmp_path / "changes.jsonl").read_text("utf-8") == whole
    assert crawler.stats.get_value("theory/recovery/replayed_events") == 1
    known = crawler.spider.state.revision(changed.article_id)
    assert known["version"] == 2 and known["content_hash"] == changed.content_hash
    pipeline.process_item(revisit(article(1), item=changed))  # the replayed version: no second event
    pipeline.close_spider()
    assert len(lines(tmp_path / "changes.jsonl")) == 1


# --- corrections: the same title and body, other field values -------------------------------------


def change_validator() -> Draft7Validator:
    from referencing import Registry, Resource

    article_schema = load_schema()
    registry = Registry().with_resource(article_schema["$id"], Resource.from_contents(article_schema))
    return Draft7Validator(load_schema("change"), registry=registry, format_checker=FormatChecker())


def test_a_revisit_reading_other_field_values_makes_one_corrected_event(crawler, tmp_path):
    run(crawler, article(1))
    fixed = replace(article(1), authors=["张三", "李四"], editor="王五")  # same title and body: same content_hash
    run(crawler, revisit(article(1), item=fixed, validators={"/p/1": ["etag-2", None]}))
    run(crawler, revisit(article(1), item=fixed))  # read the same again: nothing new
    (event,) = lines(tmp_path / "changes.jsonl")
    assert event["event"] == "corrected"
    assert event["fields"] == {
        "authors": {"old": article(1).authors, "new": ["张三", "李四"]},
        "editor": {"old": article(1).editor, "new": "王五"},
    }
    assert event["evidence"]["status"] == 200 and event["evidence"]["parser_version"] == fixed.parser_version
    change_validator().validate(event)
    assert crawler.stats.get_value("theory/revisit/corrected") == 1


def test_a_field_that_came_out_empty_is_no_correction(crawler, tmp_path):
    run(crawler, replace(article(1), editor="王五"))
    run(crawler, revisit(article(1), item=replace(article(1), editor=None)))
    assert lines(tmp_path / "changes.jsonl") == []


@pytest.mark.parametrize(
    "recorded, now, changed",
    [
        (None, {"editor": "王五"}, {}),  # a line written before fields were kept: nothing to compare with
        ({"editor": "王五"}, {"editor": "王五"}, {}),
        ({"editor": None}, {"editor": "王五"}, {"editor": {"old": None, "new": "王五"}}),
        ({"editor": "王五"}, {"editor": None}, {}),  # came out empty: the drift alarm's business
        ({"authors": ["文", "苏强平"]}, {"authors": ["苏强平"]}, {"authors": {"old": ["文", "苏强平"], "new": ["苏强平"]}}),
        # the same image from another host (a mirror, https) is no correction; another image is
        ({"images": ["http://a.example/i/1.jpg?r=1"]}, {"images": ["https://b.example/i/1.jpg?r=1"]}, {}),
        ({"images": ["http://a.example/i/1.jpg"]}, {"images": ["http://a.example/i/2.jpg"]},
         {"images": {"old": ["http://a.example/i/1.jpg"], "new": ["http://a.example/i/2.jpg"]}}),
    ],
)
def test_corrections(recorded, now, changed):
    assert corrections(recorded, now) == changed

"""What each run appended (the run report's ranges) and its delivery as BagIt bags, exactly once."""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace

import bagit
import pytest
from scrapy.utils.test import get_crawler

from crawler.delivery import LEDGER, DeliveryFailed, deliver_runs
from crawler.extensions import RunReport
from crawler.pipelines import StoragePipeline
from crawler.state import CrawlState
from test_pipelines import article

SETTINGS = {"THEORY_MAX_ATTEMPTS": 3, "THEORY_SYNC_ITEMS": 1000, "THEORY_SYNC_SECONDS": 1000, "THEORY_WARC": False,
            "THEORY_BASE_URL": "http://theory.example/", "THEORY_CHANNEL_URL": ""}


@pytest.fixture
def state(tmp_path):
    state = CrawlState(tmp_path)
    yield state
    state.close()


def new_run(tmp_path, state):
    """A run's crawler (its own stats, as a new process has) and its storage pipeline, opened."""
    crawler = get_crawler(settings_dict={"THEORY_DATA_DIR": str(tmp_path), **SETTINGS})
    crawler.spider = SimpleNamespace(state=state)
    pipeline = StoragePipeline.from_crawler(crawler)
    pipeline.open_spider()
    return crawler, pipeline


def end_run(crawler, pipeline) -> dict:
    """Close the pipeline and write the run report, as the end of a crawl does; return the report."""
    pipeline.close_spider()
    reporter = RunReport(crawler, crawler.settings.get("THEORY_DATA_DIR"), 0.2)
    report = {"finish_reason": "finished", **reporter.appended()}
    reporter.write(report)
    return report


def whole_run(tmp_path, state, *numbers: int) -> dict:
    """A run that writes these articles and ends; returns its report."""
    crawler, pipeline = new_run(tmp_path, state)
    for number in numbers:
        pipeline.process_item(article(number))
    return end_run(crawler, pipeline)


def article_ids(data: bytes) -> list[str]:
    return [json.loads(line)["article_id"] for line in data.splitlines()]


def test_a_killed_runs_synced_lines_fall_in_the_next_reports_range_once(tmp_path, state):
    output = tmp_path / "articles.jsonl"
    first = whole_run(tmp_path, state, 1, 2)["appended"]["articles.jsonl"]
    assert (first["start"], first["end"], first["lines"]) == (0, output.stat().st_size, 2)

    # A run killed (SIGKILL) after a sync: 3 and 4 are synced, 5 was written after the sync. No report.
    crawler, pipeline = new_run(tmp_path, state)
    pipeline.process_item(article(3))
    pipeline.process_item(article(4))
    pipeline.sync()
    pipeline.process_item(article(5))
    for file in (pipeline.out, pipeline.changes, pipeline.duplicates):
        file.close()

    second = whole_run(tmp_path, state, 6)["appended"]["articles.jsonl"]  # its recovery records 5 as written
    assert second["start"] == first["end"] and second["end"] == output.stat().st_size
    assert second["lines"] == 4
    assert article_ids(output.read_bytes()[second["start"] : second["end"]]) == [article(n).article_id for n in (3, 4, 5, 6)]

    # The file cut below the last end (a shorter copy put back): the next range starts again at 0.
    data = output.read_bytes()
    output.write_bytes(data[: data.index(b"\n") + 1])
    third = whole_run(tmp_path, state, 7)["appended"]["articles.jsonl"]
    assert third["start"] == 0 and third["rewritten_below"] == second["end"] and third["lines"] == 2


def test_a_file_rewritten_below_the_delivered_end_delivers_only_lines_no_bag_holds(tmp_path, state, caplog):
    output, dest = tmp_path / "articles.jsonl", tmp_path / "dest"
    dest.mkdir()
    whole_run(tmp_path, state, 1, 2, 3)
    (bag, lines), = deliver_runs(tmp_path, dest, [])
    assert lines["articles.jsonl"] == 3

    # Truncated to its first line; the recovery owes 2 and 3 again, and the crawl writes them again with 4.
    data = output.read_bytes()
    output.write_bytes(data[: data.index(b"\n") + 1])
    whole_run(tmp_path, state, 2, 4)
    with caplog.at_level(logging.WARNING, logger="crawler.delivery"):
        (second, _), = deliver_runs(tmp_path, dest, [])
    assert "shorter than what was delivered, or was rewritten below it" in caplog.text
    delivered = [article_ids((b / "data" / "articles.jsonl").read_bytes()) for b in (bag, second)]
    assert delivered == [[article(n).article_id for n in (1, 2, 3)], [article(4).article_id]]
    for made in (bag, second):
        bagit.Bag(str(made)).validate()


def test_a_bag_renamed_by_a_killed_delivery_is_recorded_not_made_again_and_a_partial_one_is_removed(tmp_path, state):
    dest = tmp_path / "dest"
    dest.mkdir()
    whole_run(tmp_path, state, 1)
    (bag, _), = deliver_runs(tmp_path, dest, [])
    (tmp_path / LEDGER).unlink()  # killed between the rename and the ledger
    partial = dest / ".theory-run-20260101T000000.000000Z.partial"
    (partial / "data").mkdir(parents=True)  # killed while it built a bag
    whole_run(tmp_path, state, 2)
    (second, _), = deliver_runs(tmp_path, dest, [])
    assert not partial.exists()
    assert sorted(path.name for path in dest.iterdir()) == [bag.name, second.name]
    assert article_ids((second / "data" / "articles.jsonl").read_bytes()) == [article(2).article_id]
    assert deliver_runs(tmp_path, dest, []) == []


def test_a_damaged_ledger_stops_the_delivery_and_once_moved_aside_the_bags_in_dest_are_recorded_again(tmp_path, state):
    dest = tmp_path / "dest"
    dest.mkdir()
    whole_run(tmp_path, state, 1)
    (bag, _), = deliver_runs(tmp_path, dest, [])
    (tmp_path / LEDGER).write_text('{"runs": {', encoding="utf-8")
    with pytest.raises(DeliveryFailed, match="move it aside") as failed:
        deliver_runs(tmp_path, dest, [])
    assert failed.value.status == 1
    (tmp_path / LEDGER).rename(tmp_path / "delivered.json.damaged")
    assert deliver_runs(tmp_path, dest, []) == []  # recorded from DEST, not made again
    assert [path.name for path in dest.iterdir()] == [bag.name]
    assert json.loads((tmp_path / LEDGER).read_text())["keys"]["articles.jsonl"] == [article(1).article_id]

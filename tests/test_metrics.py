"""THEORY_METRICS_FILE: the run's outcome as a Prometheus text file for node_exporter's textfile collector."""

from __future__ import annotations

import logging
import socket

import pytest
from prometheus_client.parser import text_string_to_metric_families
from scrapy import signals
from scrapy.exceptions import NotConfigured
from scrapy.utils.test import get_crawler

from conftest import latest_run_report, run_crawl
from crawler import settings as project_settings
from crawler.extensions import EXIT_INCOMPLETE, EXIT_OK, RunReport
from crawler.metrics import MetricsFile

HEALTHY = {
    "downloader/request_count": 40,
    "downloader/response_count": 40,
    "theory/listing/pages": 6,
    "theory/article/pages": 32,
    "theory/written": 28,
    "theory/article/failed/http_404": 1,
    "theory/article/failed/too_large": 2,
    "theory/listing/failed/timeout": 1,
    "theory/duplicates/content": 2,
    "theory/rejected": 1,
    "theory/rejected/missing_field": 1,
    "theory/revisit/revisited": 12,
    "theory/revisit/not_modified": 10,
    "theory/revisit/revised": 1,
}


def read_metrics(path) -> dict[tuple[str, tuple], float]:
    """(name, sorted labels) -> value, for every sample of the file."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(path.read_text("utf-8"))
        for sample in family.samples
    }


def value(metrics: dict, name: str, **labels: str) -> float | None:
    return metrics.get((f"theory_crawler_{name}", tuple(sorted(labels.items()))))


def extension_for(path, stats: dict | None = None, **settings) -> tuple[MetricsFile, object]:
    crawler = get_crawler(
        settings_dict={"THEORY_METRICS_FILE": str(path), "THEORY_MAX_PARSE_FAILURE_RATIO": 0.2, **settings}
    )
    for key, count in (stats or {}).items():
        crawler.stats.set_value(key, count)
    return MetricsFile.from_crawler(crawler), crawler


# --- the extension on its own ------------------------------------------------------------------


def test_off_unless_a_file_is_set():
    assert project_settings.THEORY_METRICS_FILE == ""
    with pytest.raises(NotConfigured):
        MetricsFile.from_crawler(get_crawler(settings_dict={"THEORY_METRICS_FILE": ""}))


def test_enabled_after_the_run_report_that_sets_the_exit_status():
    extensions = project_settings.EXTENSIONS
    assert extensions["crawler.metrics.MetricsFile"] > extensions["crawler.extensions.RunReport"]


def test_a_successful_run(tmp_path):
    path = tmp_path / "theory.prom"
    extension, _ = extension_for(path, {**HEALTHY, "theory/exit_status": EXIT_OK})
    extension.started = 1_000_000.0
    extension.write("finished", 1_000_042.5)

    metrics = read_metrics(path)
    assert value(metrics, "last_run_exit_status") == 0
    assert value(metrics, "last_run_timestamp_seconds") == 1_000_042.5
    assert value(metrics, "last_run_duration_seconds") == 42.5
    assert value(metrics, "last_success_timestamp_seconds") == 1_000_042.5
    assert value(metrics, "last_run_written") == 28
    assert value(metrics, "last_run_requests") == 40
    failures = {labels: v for (name, labels), v in metrics.items() if name == "theory_crawler_last_run_failures"}
    assert failures == {
        (("kind", "article"), ("reason", "http_404")): 1,
        (("kind", "article"), ("reason", "too_large")): 2,
        (("kind", "listing"), ("reason", "timeout")): 1,
        (("kind", "duplicate"), ("reason", "url")): 0,
        (("kind", "duplicate"), ("reason", "content")): 2,
        (("kind", "rejected"), ("reason", "")): 1,
        (("kind", "parse"), ("reason", "")): 1,
    }
    assert value(metrics, "last_run_revisits", outcome="revisited") == 12
    assert value(metrics, "last_run_revisits", outcome="not_modified") == 10
    assert value(metrics, "last_run_revisits", outcome="revised") == 1
    assert value(metrics, "last_run_revisits", outcome="removed") == 0
    # write_to_textfile writes a temporary file beside it and renames it: nothing is left over
    assert [p.name for p in tmp_path.iterdir()] == ["theory.prom"]


def test_a_failed_run_keeps_the_last_success_of_the_file(tmp_path):
    path = tmp_path / "theory.prom"
    good, _ = extension_for(path, {**HEALTHY, "theory/exit_status": EXIT_OK})
    good.write("finished", 1_000_000.0)

    bad, _ = extension_for(path, {"theory/exit_status": EXIT_INCOMPLETE, "theory/start_failed/legacy": "connection_refused"})
    bad.write("finished", 1_090_000.0)
    metrics = read_metrics(path)
    assert value(metrics, "last_run_exit_status") == EXIT_INCOMPLETE
    assert value(metrics, "last_run_timestamp_seconds") == 1_090_000.0
    assert value(metrics, "last_success_timestamp_seconds") == 1_000_000.0
    assert value(metrics, "last_run_failures", kind="start", reason="connection_refused") == 1
    assert value(metrics, "last_run_written") == 0

    # ... and so does the next failure, read back from what the first failure wrote
    bad.write("shutdown", 1_100_000.0)
    assert value(read_metrics(path), "last_success_timestamp_seconds") == 1_000_000.0


def test_no_last_success_until_a_run_succeeds(tmp_path):
    path = tmp_path / "theory.prom"
    extension, _ = extension_for(path, {"theory/exit_status": EXIT_INCOMPLETE})
    extension.write("finished", 1_000_000.0)
    metrics = read_metrics(path)
    assert value(metrics, "last_run_exit_status") == EXIT_INCOMPLETE
    assert value(metrics, "last_success_timestamp_seconds") is None


def test_a_garbled_file_loses_the_last_success_with_a_warning(tmp_path, caplog):
    path = tmp_path / "theory.prom"
    path.write_bytes(b"\xff\xfe not { a metrics file")
    extension, _ = extension_for(path, {"theory/exit_status": EXIT_INCOMPLETE})
    with caplog.at_level(logging.WARNING, logger="crawler.metrics"):
        extension.write("finished", 1_000_000.0)
    assert "the last success is not carried over" in caplog.text
    assert value(read_metrics(path), "last_success_timestamp_seconds") is None


def test_without_the_run_report_the_status_follows_the_same_rule(tmp_path):
    path = tmp_path / "theory.prom"
    extension, _ = extension_for(path, {})  # nothing fetched, and no theory/exit_status
    extension.write("finished", 1_000_000.0)
    assert value(read_metrics(path), "last_run_exit_status") == EXIT_INCOMPLETE


def test_the_file_gets_the_exit_status_the_run_report_set(tmp_path):
    """Extensions are built in EXTENSIONS order, so RunReport's spider_closed runs first."""
    path = tmp_path / "theory.prom"
    extension, crawler = extension_for(path, dict(HEALTHY), THEORY_DATA_DIR=str(tmp_path / "data"))
    crawler.signals.disconnect_all(signals.spider_closed)
    report = RunReport.from_crawler(crawler)
    crawler.signals.connect(extension.spider_closed, signal=signals.spider_closed)
    crawler.stats.set_value("theory/layout/no_sections", 1)  # a layout alarm: exit 5
    crawler.signals.send_catch_log(signals.spider_closed, reason="finished")
    assert report.crawler.stats.get_value("theory/exit_status") == 5
    assert value(read_metrics(path), "last_run_exit_status") == 5


def test_a_write_failure_is_one_error_line_and_changes_nothing(tmp_path, caplog):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    path = blocker / "theory.prom"
    extension, crawler = extension_for(path, {**HEALTHY, "theory/exit_status": EXIT_OK})
    with caplog.at_level(logging.INFO):
        extension.spider_closed("finished")
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert errors[0].getMessage().startswith(f"metrics file {path} not written: ")
    assert errors[0].exc_info is None
    assert crawler.stats.get_value("theory/exit_status") == EXIT_OK


# --- end to end --------------------------------------------------------------------------------


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def test_a_run_writes_the_file_and_a_failed_run_keeps_the_last_success(serve_mirror, tmp_path):
    path = tmp_path / "textfile" / "theory.prom"
    data_dir = tmp_path / "data"
    server = serve_mirror()
    result = run_crawl(server.url, data_dir, THEORY_METRICS_FILE=str(path), timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"metrics written to {path}" in result.stderr
    metrics = read_metrics(path)
    report = latest_run_report(data_dir)
    assert value(metrics, "last_run_exit_status") == 0
    assert value(metrics, "last_run_written") == report["written"] == 291
    assert value(metrics, "last_run_requests") == report["requests"]
    success = value(metrics, "last_success_timestamp_seconds")
    assert success == value(metrics, "last_run_timestamp_seconds")
    assert value(metrics, "last_run_duration_seconds") == pytest.approx(report["duration_seconds"], abs=1)

    result = run_crawl(closed_port_url(), data_dir, THEORY_METRICS_FILE=str(path), timeout=120)
    assert result.returncode == EXIT_INCOMPLETE, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    metrics = read_metrics(path)
    assert value(metrics, "last_run_exit_status") == EXIT_INCOMPLETE
    assert value(metrics, "last_run_written") == 0
    assert value(metrics, "last_run_failures", kind="start", reason="connection_refused") == 1
    assert value(metrics, "last_run_timestamp_seconds") > success
    assert value(metrics, "last_success_timestamp_seconds") == success


def test_the_archive_source_is_named_with_what_it_gave(tmp_path):
    path = tmp_path / "theory.prom"
    stats = {
        **HEALTHY, "theory/exit_status": EXIT_OK, "theory/legacy_source": "live,archive",
        "theory/archive/cdx_queries": 7, "theory/archive/captures": 352, "theory/archive/replays": 352,
        "theory/archive/articles_read": 300, "theory/archive/retries": 1,
    }
    extension, _ = extension_for(path, stats)
    extension.started = 1_000_000.0
    extension.write("finished", 1_000_042.5)
    archive = {labels: v for (name, labels), v in read_metrics(path).items() if name == "theory_crawler_last_run_archive"}
    assert archive == {
        (("count", count), ("source", "live,archive")): number
        for count, number in (("cdx_queries", 7), ("captures", 352), ("replays", 352), ("articles_read", 300), ("retries", 1))
    }


def test_no_archive_series_when_the_legacy_site_is_crawled_live(tmp_path):
    path = tmp_path / "theory.prom"
    extension, _ = extension_for(path, {**HEALTHY, "theory/exit_status": EXIT_OK})
    extension.started = 1_000_000.0
    extension.write("finished", 1_000_042.5)
    assert not [name for name, _ in read_metrics(path) if name == "theory_crawler_last_run_archive"]

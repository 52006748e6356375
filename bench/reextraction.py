"""Capture figures (capture on against off, the capture's size) and re-extraction figures (`scrapy reextract` of
that capture: its speed against the crawl's, its peak RSS, and whether its output equals the crawl's)."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

from common import REPO, fastest, files_size, log, run_measured, settings_args

REEXTRACT_SUMMARY = re.compile(
    r"reextract: (\d+) article pages read, (\d+) articles written, (\d+) rejected, (\d+) duplicates"
)


def without_crawled_at(line: bytes) -> dict:
    record = json.loads(line)
    record.pop("crawled_at", None)
    return record


def compare_articles(crawled: Path, reextracted: Path) -> dict:
    """Line by line, crawled_at left out: how many lines differ (a missing or extra line counts as one)."""
    with open(crawled, "rb") as a, open(reextracted, "rb") as b:
        left = [line for line in a if line.strip()]
        right = [line for line in b if line.strip()]
    mismatched = sum(without_crawled_at(x) != without_crawled_at(y) for x, y in zip(left, right))
    mismatched += abs(len(left) - len(right))
    result = {"crawl_lines": len(left), "reextract_lines": len(right), "mismatched_lines": mismatched}
    if mismatched:  # order aside, do the same records come out?
        by_url = {}
        for line in left:
            record = without_crawled_at(line)
            by_url[record["url"]] = record
        result["mismatched_by_url"] = sum(by_url.pop(record["url"], None) != record for record in map(without_crawled_at, right)) + len(by_url)
    return result


def reextract(warc_dir: Path, out_dir: Path, run_dir: Path, label: str) -> dict:
    """`scrapy reextract WARC_DIR` into a fresh data dir, measured like the crawl (wait4 of its process)."""
    shutil.rmtree(out_dir, ignore_errors=True)
    command = [sys.executable, "-m", "scrapy", "reextract", str(warc_dir), *settings_args({"THEORY_DATA_DIR": str(out_dir)})]
    measured = run_measured(command, REPO, run_dir / f"{label}.log")
    said = Path(measured["log"]).read_text("utf-8", "replace")
    summary = REEXTRACT_SUMMARY.search(said)
    if measured["exit_status"] != 0 or summary is None:
        raise RuntimeError(f"scrapy reextract failed (exit {measured['exit_status']}), see {measured['log']}")
    pages, written, rejected, duplicates = map(int, summary.groups())
    return {
        **measured,
        "summary": summary[0],
        "article_pages_read": pages,
        "written": written,
        "rejected": rejected,
        "duplicates": duplicates,
        "articles_per_second": round(written / measured["wall_seconds"], 1),
        "pages_per_second": round(pages / measured["wall_seconds"], 1),
        "data_dir": str(out_dir),
    }


def capture_bench(off: dict, ons: list[dict], capture_dir: Path, run_dir: Path, label: str, repeat: int, bare: dict) -> dict:
    """Capture on against off (same invocation, alternating), sizes of the capture, and its re-extraction."""
    on = fastest(ons)
    on["complete"] = all(run["complete"] for run in ons)
    on["same_requests_as_bare"] = all(run["server"]["requests"] == bare["server"]["requests"] for run in ons)
    warc_files, warc_bytes = files_size(capture_dir / "warc", "*.warc.gz")
    wacz_files, wacz_bytes = files_size(capture_dir / "wacz", "*.wacz")
    written = ons[-1]["written"]  # the capture on disk is the last run's
    result = {
        "note": "capture on = THEORY_WARC=1, off = THEORY_WARC=0, THEORY_CAPTURE_IMAGES=0 in both (the same pages);"
        " off is the crawl of the crawl section, each on run right after its off run; fastest of each kept",
        "off": {key: off[key] for key in ("wall_seconds", "report_duration_seconds", "pages", "written", "pages_per_second",
                                          "articles_per_second", "engine_pages_per_second", "peak_rss_mib", "cpu_seconds")},
        "on": on,
        "on_over_off": round(on["pages_per_second"] / off["pages_per_second"], 3),
        # The run report's duration leaves out start-up (the CDXJ index and the WACZ package are made in
        # the storage pipeline's close, inside it): the ratio without start-up, and the time outside the report.
        "on_over_off_engine": round(on["engine_pages_per_second"] / off["engine_pages_per_second"], 3),
        "off_seconds_outside_report": round(off["wall_seconds"] - off["report_duration_seconds"], 2),
        "on_seconds_outside_report": round(on["wall_seconds"] - on["report_duration_seconds"], 2),
        "on_over_bare": round(on["pages_per_second"] / bare["pages_per_second"], 3),
        "warc_files": warc_files,
        "warc_bytes": warc_bytes,
        "warc_bytes_per_article": round(warc_bytes / written) if written else None,
        "warc_bytes_per_page": round(warc_bytes / ons[-1]["pages"]) if ons[-1]["pages"] else None,
        "wacz_files": wacz_files,
        "wacz_bytes": wacz_bytes,
        "data_dir": str(capture_dir),
    }
    runs = []
    for attempt in range(1, repeat + 1):
        log(f"{label} [{attempt}/{repeat}]: scrapy reextract of {warc_files} WARC files ({warc_bytes / 2**20:.1f} MiB)")
        runs.append(reextract(capture_dir / "warc", run_dir / f"{label}-reextract-data", run_dir, f"{label}-reextract"))
        log(f"{label}: {runs[-1]['summary']} in {runs[-1]['wall_seconds']} s = {runs[-1]['articles_per_second']} articles/s,"
            f" peak RSS {runs[-1]['peak_rss_mib']} MiB")
    again = fastest(runs)
    again["over_crawl_on_articles_per_second"] = round(again["articles_per_second"] / on["articles_per_second"], 2)
    again["over_crawl_off_articles_per_second"] = round(again["articles_per_second"] / off["articles_per_second"], 2)
    again["comparison"] = compare_articles(capture_dir / "articles.jsonl", Path(runs[-1]["data_dir"]) / "articles.jsonl")
    log(f"{label}: re-extracted articles.jsonl against the crawl's (crawled_at aside): "
        f"{again['comparison']['mismatched_lines']} mismatching lines")
    result["reextract"] = again
    return result

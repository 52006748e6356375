"""Crawl figures: the bare-fetch reference and the project's crawl, on a served mirror."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from common import BENCH, FAST, REPO, Server, bare_settings, run_measured, settings_args


def bare_fetch(site: Path, mirror: Path, paths_file: Path, run_dir: Path, label: str) -> dict:
    server = Server(site, mirror / "www", run_dir / f"{label}-bare-server.json")
    stats_path = run_dir / f"{label}-bare-stats.json"
    command = [
        sys.executable, "-m", "scrapy", "runspider", str(BENCH / "bare_spider.py"),
        "-a", f"base={server.url}", "-a", f"urls={paths_file}", "-a", f"out={stats_path}",
        *settings_args(bare_settings()),
    ]
    try:
        # From outside the project, so that scrapy.cfg (the project's pipelines and extensions) is not loaded.
        measured = run_measured(command, run_dir, run_dir / f"{label}-bare.log")
    finally:
        served = server.stop()
    if measured["exit_status"] != 0 or not stats_path.exists():
        raise RuntimeError(f"bare fetch failed, see {measured['log']}")
    spider = json.loads(stats_path.read_text())
    pages = spider["requests"]
    return {
        **measured,
        "pages": pages,
        "responses_200": spider["status_200"],
        "pages_per_second": round(pages / measured["wall_seconds"], 1),
        "engine_seconds": spider["engine_seconds"],
        "engine_pages_per_second": round(pages / spider["engine_seconds"], 1),
        "server": served,
    }


def crawl(
    site: Path, mirror: Path, data_dir: Path, run_dir: Path, label: str, capture: dict[str, str], spider_args: tuple[str, ...] = ()
) -> dict:
    server = Server(site, mirror / "www", run_dir / f"{label}-server.json")
    runs = data_dir / "runs"
    before = set(runs.glob("*.json")) if runs.exists() else set()
    command = [
        sys.executable, "-m", "scrapy", "crawl", "theory",
        *settings_args({**FAST, **capture, "THEORY_BASE_URL": server.url, "THEORY_CHANNEL_URL": "", "THEORY_DATA_DIR": str(data_dir)}),
        *(part for argument in spider_args for part in ("-a", argument)),
    ]
    try:
        measured = run_measured(command, REPO, run_dir / f"{label}.log")
    finally:
        served = server.stop()
    reports = sorted(set(runs.glob("*.json")) - before) or sorted(runs.glob("*.json"), key=os.path.getmtime)
    if not reports:
        raise RuntimeError(f"the crawl wrote no run report, see {measured['log']}")
    report = json.loads(reports[-1].read_text("utf-8"))
    wall = measured["wall_seconds"]
    articles_file = data_dir / "articles.jsonl"
    lines = sum(1 for _ in open(articles_file, "rb")) if articles_file.exists() else 0
    return {
        **measured,
        "capture_settings": capture,
        "base_url": server.url,
        "pages": report["requests"],
        "listing_pages": report["listing_pages"],
        "article_pages": report["article_pages"],
        "written": report["written"],
        "report_duration_seconds": report["duration_seconds"],
        "report_exit_status": report.get("exit_status"),
        "pages_per_second": round(report["requests"] / wall, 1),
        "articles_per_second": round(report["written"] / wall, 1),
        "engine_pages_per_second": round(report["requests"] / max(report["duration_seconds"], 1e-3), 1),
        "articles_jsonl_lines": lines,
        "server": served,
        "run_report": str(reports[-1]),
    }

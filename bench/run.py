#!/usr/bin/env python
"""Benchmark of theory-crawler against generated mirrors of the channel. One command:

    python bench/run.py                 # 2000 and 20000 articles, parse sample of 200
    python bench/run.py --quick         # 300 and 1000 articles, for a smoke run
    python bench/run.py --repeat 3      # three bare/crawl pairs per mirror, fastest of each kept

For each mirror size (small, large) it
  1. generates the mirror with <shared>/site/generate.py (cached under --work) and serves it with serve.py;
  2. fetches exactly the pages the crawl fetches with a do-nothing Scrapy spider (bench/bare_spider.py):
     the bare-fetch reference;
  3. runs the real `scrapy crawl theory` into a fresh data dir (politeness off, same concurrency; WARC
     capture and image capture off, so the figures compare with those of earlier versions) and
     measures wall time, pages/s, articles/s and the crawl process's peak RSS (wait4 rusage of that
     process alone, forked from a small launcher so that this script's own RSS does not count), and checks
     that articles.jsonl holds every unique article;
  4. crawls again with WARC capture on (THEORY_WARC=1) into another fresh data dir, right after the
     capture-off crawl of step 3 (THEORY_WARC=0; images off in both, THEORY_CAPTURE_IMAGES=0, so both
     fetch exactly the bare fetch's pages), and sizes the .warc.gz files and the WACZ;
  5. re-extracts that capture offline (`scrapy reextract WARC_DIR` into a fresh data dir): wall time,
     articles/s, peak RSS, and whether its articles.jsonl equals the crawl's but for crawled_at;
and, on the large mirror, times an incremental run (second crawl, same data dir). Then it times parsing
alone on a sample of article pages: the project's reader + loader against trafilatura and GNE, with
accuracy against expected.jsonl. It prints a table of targets and writes every figure to --out as JSON.

stdlib + the project's own dependencies + the `bench` extras (trafilatura, gne, lxml_html_clean).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from difflib import SequenceMatcher
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
SEED = 7
# Politeness off, same concurrency for the bare fetch and the crawl.
FAST = {
    "AUTOTHROTTLE_ENABLED": "0",
    "DOWNLOAD_DELAY": "0",
    "CONCURRENT_REQUESTS": "16",
    "CONCURRENT_REQUESTS_PER_DOMAIN": "16",
    "LOG_LEVEL": "INFO",
}
FIELDS = ("title", "published_date", "authors", "body")
# The crawl figures (against the bare fetch, RSS, incremental) are taken with capture off: the same work
# as before WARC capture existed. Capture on keeps images off, so that the same pages are fetched.
CAPTURE_OFF = {"THEORY_WARC": "0", "THEORY_CAPTURE_IMAGES": "0"}
CAPTURE_ON = {"THEORY_WARC": "1", "THEORY_CAPTURE_IMAGES": "0"}
REEXTRACT_SUMMARY = re.compile(
    r"reextract: (\d+) article pages read, (\d+) articles written, (\d+) rejected, (\d+) duplicates"
)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def bare_settings() -> dict[str, str]:
    """FAST plus the project's own robots.txt and per-response item concurrency, read from crawler.settings."""
    import crawler.settings as project

    settings = {**FAST, "ROBOTSTXT_OBEY": str(getattr(project, "ROBOTSTXT_OBEY", True))}
    if hasattr(project, "CONCURRENT_ITEMS"):
        settings["CONCURRENT_ITEMS"] = str(project.CONCURRENT_ITEMS)
    return settings


def git_state() -> dict:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    return {"commit": git("rev-parse", "HEAD"), "crawler_changes_uncommitted": bool(git("status", "--porcelain", "crawler"))}


def settings_args(settings: dict[str, str]) -> list[str]:
    return [arg for name, value in settings.items() for arg in ("-s", f"{name}={value}")]


# --- mirrors and server -------------------------------------------------------------------------


def shared_site() -> Path:
    site = Path(os.environ.get("THEORY_SHARED_SITE") or REPO.parent / "shared" / "site")
    missing = [name for name in ("generate.py", "serve.py") if not (site / name).is_file()]
    if missing:
        sys.exit(
            f"bench: {', '.join(missing)} not found in {site}; the shared mirror tools are needed"
            " (set THEORY_SHARED_SITE to the folder holding generate.py and serve.py)"
        )
    return site


def ensure_mirror(site: Path, work: Path, articles: int, seed: int) -> Path:
    out = work / f"mirror-seed{seed}-n{articles}"
    manifest = out / "manifest.json"  # generate.py writes it last: present and matching = complete
    if manifest.exists() and (out / "expected.jsonl").exists() and (out / "www" / "index.shtml").exists():
        found = json.loads(manifest.read_text("utf-8"))
        if found.get("seed") == seed and found.get("articles_requested") == articles:
            log(f"mirror {out}: cached")
            return out
    out.mkdir(parents=True, exist_ok=True)
    manifest.unlink(missing_ok=True)
    log(f"generating mirror {out} ({articles} articles, seed {seed})")
    subprocess.run(
        [sys.executable, str(site / "generate.py"), "--out", str(out), "--seed", str(seed), "--articles", str(articles)],
        check=True,
    )
    return out


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def article_page_paths(row: dict) -> list[str]:
    page1 = row["url"]
    return [page1] + [page1[: -len(".shtml")] + f"_{n}.shtml" for n in range(2, row["page_count"] + 1)]


def crawl_paths(manifest: dict, rows: list[dict]) -> list[str]:
    """Every page a first crawl fetches (robots.txt aside): home, all listing pages, all article pages."""
    paths = ["/"]
    for section in manifest["sections"]:
        sid = section["id"]
        paths += [f"/{sid}/{sid}.shtml"] + [f"/{sid}/{sid}_{n}.shtml" for n in range(2, section["listing_pages"] + 1)]
    for row in rows:
        paths += article_page_paths(row)
    return paths


def wait_rusage(process: subprocess.Popen) -> resource.struct_rusage:
    """Reap ``process`` and return its own resource usage (not the other children's)."""
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return usage


class Server:
    """<shared>/site/serve.py on 127.0.0.1, one per measured run so its request counts are that run's."""

    def __init__(self, site: Path, www: Path, stats_path: Path):
        self.stats_path = stats_path
        stats_path.unlink(missing_ok=True)
        self.process = subprocess.Popen(
            [sys.executable, str(site / "serve.py"), "--root", str(www), "--port", "0", "--stats-json", str(stats_path)],
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self.process.stdout.readline()
        if not line.startswith("READY "):
            self.process.kill()
            raise RuntimeError(f"serve.py did not start: {line!r}")
        self.url = line.split()[1].rstrip("/") + "/"

    def stop(self) -> dict:
        self.process.send_signal(signal.SIGTERM)
        usage = wait_rusage(self.process)
        stats = json.loads(self.stats_path.read_text()) if self.stats_path.exists() else {}
        return {
            "requests": stats.get("requests"),
            "by_status": stats.get("by_status"),
            "max_inflight": stats.get("max_inflight"),
            "repeated_paths": len(stats.get("repeated_paths") or {}),
            "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
        }


# Forks the measured command, waits for it (wait4) and writes its wall time, exit status and rusage to argv[1].
# Linux carries the peak RSS of the process that execs into the new program's ru_maxrss: a command started
# straight from this script would report at least this script's own peak (over 100 MiB once the large
# mirror's expected.jsonl was read). Forked from this small launcher instead, it starts from ~10 MiB.
LAUNCHER = r"""
import json, os, signal, sys, time
started = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C reaches the command too, which ends as it would alone
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - started
with open(sys.argv[1], "w") as out:
    json.dump({"exit_status": os.waitstatus_to_exitcode(status), "wall_seconds": wall, "ru_maxrss_kib": usage.ru_maxrss,
               "cpu_seconds": usage.ru_utime + usage.ru_stime}, out)
"""


def run_measured(command: list[str], cwd: Path, log_path: Path) -> dict:
    """Run a command to completion; wall time, exit status, and its own peak RSS and CPU time (see LAUNCHER)."""
    usage_path = log_path.with_name(log_path.name + ".usage.json")
    usage_path.unlink(missing_ok=True)
    own_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with open(log_path, "wb") as output:
        process = subprocess.Popen([sys.executable, "-c", LAUNCHER, str(usage_path), *command], cwd=cwd, stdout=output, stderr=subprocess.STDOUT)
        process.wait()
    if not usage_path.exists():
        raise RuntimeError(f"the measuring launcher failed (exit {process.returncode}), see {log_path}")
    usage = json.loads(usage_path.read_text())
    return {
        "exit_status": usage["exit_status"],
        "wall_seconds": round(usage["wall_seconds"], 3),
        "peak_rss_mib": round(usage["ru_maxrss_kib"] / 1024, 1),  # Linux: ru_maxrss is in KiB
        "cpu_seconds": round(usage["cpu_seconds"], 2),
        "bench_peak_rss_mib_at_start": round(own_peak / 1024, 1),  # what a direct child's ru_maxrss would have included
        "log": str(log_path),
    }


def warm_page_cache(www: Path, paths: list[str]) -> None:
    """Read every page once, so neither measured run pays for cold disk reads."""
    for path in ["/robots.txt", "/index.shtml", *paths[1:]]:
        (www / path.lstrip("/")).read_bytes()


# --- the measured runs --------------------------------------------------------------------------


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


def files_size(directory: Path, pattern: str) -> tuple[int, int]:
    """(number, total bytes) of the files matching pattern in directory."""
    found = sorted(directory.glob(pattern)) if directory.is_dir() else []
    return len(found), sum(path.stat().st_size for path in found)


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
    on = dict(min(ons, key=lambda run: run["wall_seconds"]))
    on["complete"] = all(run["complete"] for run in ons)
    on["peak_rss_mib"] = max(run["peak_rss_mib"] for run in ons)
    on["all_wall_seconds"] = [run["wall_seconds"] for run in ons]
    on["all_peak_rss_mib"] = [run["peak_rss_mib"] for run in ons]
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
    again = dict(min(runs, key=lambda run: run["wall_seconds"]))
    again["peak_rss_mib"] = max(run["peak_rss_mib"] for run in runs)
    again["all_wall_seconds"] = [run["wall_seconds"] for run in runs]
    again["all_peak_rss_mib"] = [run["peak_rss_mib"] for run in runs]
    again["over_crawl_on_articles_per_second"] = round(again["articles_per_second"] / on["articles_per_second"], 2)
    again["over_crawl_off_articles_per_second"] = round(again["articles_per_second"] / off["articles_per_second"], 2)
    again["comparison"] = compare_articles(capture_dir / "articles.jsonl", Path(runs[-1]["data_dir"]) / "articles.jsonl")
    log(f"{label}: re-extracted articles.jsonl against the crawl's (crawled_at aside): "
        f"{again['comparison']['mismatched_lines']} mismatching lines")
    result["reextract"] = again
    return result


def bench_mirror(site: Path, work: Path, articles: int, label: str, incremental: bool, repeat: int) -> dict:
    mirror = ensure_mirror(site, work, articles, SEED)
    manifest = json.loads((mirror / "manifest.json").read_text("utf-8"))
    rows = read_jsonl(mirror / "expected.jsonl")
    unique = sum(1 for row in rows if row["duplicate_of"] is None)
    paths = crawl_paths(manifest, rows)
    run_dir = work / "runs"
    run_dir.mkdir(parents=True, exist_ok=True)
    paths_file = run_dir / f"{label}-paths.txt"
    paths_file.write_text("\n".join(paths) + "\n", encoding="utf-8")
    del rows
    warm_page_cache(mirror / "www", paths)

    # Bare fetch and crawl alternate; with --repeat N the fastest of each is kept (all walls are recorded).
    data_dir = run_dir / f"{label}-data"
    capture_dir = run_dir / f"{label}-capture-data"
    bares, crawls, captured = [], [], []
    for attempt in range(1, repeat + 1):
        log(f"{label} [{attempt}/{repeat}]: bare fetch of {len(paths)} pages (+ robots.txt)")
        bare = bare_fetch(site, mirror, paths_file, run_dir, label)
        log(f"{label}: bare {bare['pages']} pages in {bare['wall_seconds']} s = {bare['pages_per_second']} pages/s")
        bares.append(bare)
        for runs, directory, kind, capture in ((crawls, data_dir, "crawl", CAPTURE_OFF), (captured, capture_dir, "capture", CAPTURE_ON)):
            # A fresh data dir for each: a full crawl, capture off (compared with the bare fetch), then on.
            shutil.rmtree(directory, ignore_errors=True)
            log(f"{label} [{attempt}/{repeat}]: {kind} crawl into {directory}")
            run = crawl(site, mirror, directory, run_dir, f"{label}-{kind}", capture)
            run["complete"] = run["articles_jsonl_lines"] == unique and run["exit_status"] == 0
            log(
                f"{label}: {kind} crawl {run['pages']} pages, {run['written']} articles in {run['wall_seconds']} s ="
                f" {run['pages_per_second']} pages/s, peak RSS {run['peak_rss_mib']} MiB, exit {run['exit_status']}"
            )
            runs.append(run)
    bare = min(bares, key=lambda run: run["wall_seconds"])
    full = dict(min(crawls, key=lambda run: run["wall_seconds"]))
    full["complete"] = all(run["complete"] for run in crawls)
    full["peak_rss_mib"] = max(run["peak_rss_mib"] for run in crawls)
    bare["all_wall_seconds"] = [run["wall_seconds"] for run in bares]
    full["all_wall_seconds"] = [run["wall_seconds"] for run in crawls]
    full["all_peak_rss_mib"] = [run["peak_rss_mib"] for run in crawls]
    full["crawl_over_bare"] = round(full["pages_per_second"] / bare["pages_per_second"], 3)
    full["same_requests_as_bare"] = all(run["server"]["requests"] == bare["server"]["requests"] for run in crawls)
    result = {
        "mirror": str(mirror),
        "counts": manifest["counts"],
        "pages_expected": len(paths) + 1,  # + robots.txt
        "unique_articles_expected": unique,
        "bare": bare,
        "crawl": full,
        "capture": capture_bench(full, captured, capture_dir, run_dir, label, repeat, bare),
    }
    log(f"{label}: scrapy coverage of {data_dir}")
    result["coverage"] = run_measured(
        [sys.executable, "-m", "scrapy", "coverage", *settings_args({"THEORY_DATA_DIR": str(data_dir)})],
        REPO, run_dir / f"{label}-coverage.log",
    )
    if result["coverage"]["exit_status"] != 0:
        raise RuntimeError(f"scrapy coverage failed, see {result['coverage']['log']}")
    log(f"{label}: coverage in {result['coverage']['wall_seconds']} s, peak RSS {result['coverage']['peak_rss_mib']} MiB")
    if incremental:
        log(f"{label}: incremental crawl, same data dir, unchanged mirror")
        # The walk of the listings alone: the revisits of written articles (on by default) are another matter.
        again = crawl(site, mirror, data_dir, run_dir, f"{label}-incremental", CAPTURE_OFF, ("revisit=0",))
        again["lines_unchanged"] = again["articles_jsonl_lines"] == crawls[-1]["articles_jsonl_lines"]
        log(f"{label}: incremental {again['pages']} requests in {again['wall_seconds']} s")
        result["incremental"] = again
    return result


# --- parsing alone ------------------------------------------------------------------------------

DATE = re.compile(r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})")
NAME_SEPARATORS = re.compile(r"[\s;；,，、/]+")
AUTHOR_LABEL = re.compile(r"^\s*作者\s*[：:]\s*")


def norm_date(value) -> str:
    match = DATE.search(value or "")
    return f"{int(match[1]):04d}-{int(match[2]):02d}-{int(match[3]):02d}" if match else (value or "").strip()


def norm_authors(value) -> str:
    names = value if isinstance(value, list) else NAME_SEPARATORS.split(AUTHOR_LABEL.sub("", value or ""))
    return " ".join(name.strip() for name in names if name and name.strip())


def norm_body(value) -> str:
    return "\n".join(line.strip() for line in (value or "").splitlines() if line.strip())


def normalize(title, published, authors, body) -> dict[str, str]:
    """The same lenient normalisation for every extractor and the truth."""
    return {
        "title": (title or "").strip(),
        "published_date": norm_date(published),
        "authors": norm_authors(authors),
        "body": norm_body(body),
    }


def similarity(a: str, b: str) -> float:
    if a == b:
        return 1.0
    if not a or not b:
        return 0.0
    return SequenceMatcher(None, a, b, autojunk=False).ratio()


def accuracy(pairs: list[tuple[dict, dict]]) -> dict:
    out = {"articles": len(pairs)}
    for name in FIELDS:
        if not pairs:
            break
        out[name] = {
            "exact": round(sum(got[name] == want[name] for got, want in pairs) / len(pairs), 4),
            "similarity": round(sum(similarity(got[name], want[name]) for got, want in pairs) / len(pairs), 4),
        }
    out["all_fields_exact"] = bool(pairs) and all(out[name]["exact"] == 1.0 for name in FIELDS)
    return out


def parse_bench(mirror: Path, base_url: str, sample: int, rounds: int) -> dict:
    from scrapy.http import HtmlResponse

    import gne
    import trafilatura
    from crawler.loaders import load_article
    from crawler.readers.legacy import read_article_page

    for name in ("trafilatura", "htmldate", "courlan", "justext", "readability"):
        logging.getLogger(name).setLevel(logging.CRITICAL)

    rows = read_jsonl(mirror / "expected.jsonl")
    rng = random.Random(SEED)
    multi = [row for row in rows if row["page_count"] > 1]
    single = [row for row in rows if row["page_count"] == 1]
    n_multi = min(len(multi), max(1, sample // 5))
    chosen = rng.sample(single, min(len(single), sample - n_multi)) + rng.sample(multi, n_multi)
    del rows
    www = mirror / "www"
    base = base_url.rstrip("/")
    files = [[(base + path, (www / path.lstrip("/")).read_bytes()) for path in article_page_paths(row)] for row in chosen]
    n_pages = sum(len(pages) for pages in files)
    truth = [normalize(row["title"], row["published_date"], row["authors"], row["body"]) for row in chosen]

    def fresh_responses() -> list[list[HtmlResponse]]:
        # New responses every round: parsel caches the parsed tree on the response. The text is
        # decoded here, outside the timing, since the generic extractors are handed decoded text too.
        articles = [[HtmlResponse(url, body=body) for url, body in pages] for pages in files]
        for pages in articles:
            for response in pages:
                response.text  # noqa: B018
        return articles

    extractor = gne.GeneralNewsExtractor()
    warm = HtmlResponse(files[0][0][0], body=files[0][0][1])  # first calls load models, caches and lazy imports: keep them out of the timing
    load_article([read_article_page(warm)])
    trafilatura.extract(warm.text, with_metadata=True, output_format="json")
    extractor.extract(warm.text)
    timings = {"project": [], "project_read": [], "project_load": [], "trafilatura": [], "gne": []}
    for _ in range(rounds):
        project, raw, read_s, load_s = [], [], 0.0, 0.0
        for pages in fresh_responses():
            t0 = time.perf_counter()
            read = [read_article_page(response) for response in pages]
            t1 = time.perf_counter()
            item = load_article(read)
            t2 = time.perf_counter()
            read_s, load_s = read_s + t1 - t0, load_s + t2 - t1
            project.append(normalize(item.title, item.published_date, item.authors, item.body))
            raw.append({"title": item.title, "published_date": item.published_date, "authors": item.authors, "body": item.body})
        timings["project"].append(read_s + load_s)
        timings["project_read"].append(read_s)
        timings["project_load"].append(load_s)

        generic = {"trafilatura": [], "gne": []}
        for name in generic:
            elapsed = 0.0
            for pages in fresh_responses():
                for number, response in enumerate(pages):
                    html = response.text
                    t0 = time.perf_counter()
                    if name == "trafilatura":
                        found = json.loads(trafilatura.extract(html, with_metadata=True, output_format="json") or "{}")
                        fields = (found.get("title"), found.get("date"), found.get("author"), found.get("text"))
                    else:
                        found = extractor.extract(html)
                        fields = (found.get("title"), found.get("publish_time"), found.get("author"), found.get("content"))
                    elapsed += time.perf_counter() - t0
                    if number == 0:
                        generic[name].append(normalize(*fields))
            timings[name].append(elapsed)

    def ms_per_page(name: str) -> float:
        return round(min(timings[name]) * 1000 / n_pages, 3)

    is_single = [row["page_count"] == 1 for row in chosen]
    project_single = [(got, want) for got, want, one in zip(project, truth, is_single) if one]
    results = {
        "articles": len(chosen),
        "single_page_articles": sum(is_single),
        "multi_page_articles": n_multi,
        "pages_timed": n_pages,
        "rounds": rounds,
        "timing_note": "every extractor is timed on the same page files (all pages of every sampled article),"
        " from decoded text to fields, best of the rounds; project = read_article_page on each page + load_article",
        "accuracy_note": "accuracy of trafilatura and GNE is on the single-page articles only (their page-1 result"
        " is the whole article there); the project is scored on all sampled articles, multi-page ones joined"
        " over all pages, and on the single-page subset. Dates are reduced to YYYY-MM-DD, authors stripped of a leading"
        " 作者： label, split on separators and joined with a space, bodies stripped line by line, for every extractor.",
        "ms_per_page": {name: ms_per_page(name) for name in ("project", "trafilatura", "gne")},
        "project_ms_per_page_split": {"read_article_page": ms_per_page("project_read"), "load_article": ms_per_page("project_load")},
        "accuracy": {
            "project_all": accuracy(list(zip(project, truth))),
            # No normalisation at all: the item's own values against the expected.jsonl values.
            "project_all_strict_exact": {
                name: round(sum(got[name] == row[name] for got, row in zip(raw, chosen)) / len(chosen), 4) for name in FIELDS
            },
            "project_single_page": accuracy(project_single),
            "trafilatura_single_page": accuracy([(got, want) for got, want, one in zip(generic["trafilatura"], truth, is_single) if one]),
            "gne_single_page": accuracy([(got, want) for got, want, one in zip(generic["gne"], truth, is_single) if one]),
        },
    }
    results["project_over_trafilatura"] = round(results["ms_per_page"]["project"] / results["ms_per_page"]["trafilatura"], 4)
    results["project_over_gne"] = round(results["ms_per_page"]["project"] / results["ms_per_page"]["gne"], 4)
    return results


# --- report -------------------------------------------------------------------------------------


def targets(results: dict) -> list[dict]:
    small, large, parse = results["small"], results["large"], results["parse"]
    incremental = large["incremental"]
    sections = large["counts"]["sections"]
    rss_ratio = large["crawl"]["peak_rss_mib"] / small["crawl"]["peak_rss_mib"]
    results["rss_large_over_small"] = round(rss_ratio, 3)
    results["time_large_over_small"] = round(large["crawl"]["wall_seconds"] / small["crawl"]["wall_seconds"], 3)
    strict = parse["accuracy"]["project_all_strict_exact"]
    rows = []
    for label, run in (("small", small), ("large", large)):
        rows.append(("crawl/bare pages/s (%s, %d articles)" % (label, run["counts"]["articles"]),
                     f"{run['crawl']['crawl_over_bare']:.3f} ({run['crawl']['pages_per_second']} / {run['bare']['pages_per_second']})",
                     ">= 0.75", run["crawl"]["crawl_over_bare"] >= 0.75))
    for label, run in (("small", small), ("large", large)):
        rows.append((f"crawl output complete ({label})",
                     f"{run['crawl']['articles_jsonl_lines']} lines / {run['unique_articles_expected']} unique, exit {run['crawl']['exit_status']}",
                     "lines = unique, exit 0", run["crawl"]["complete"]))
    rows.append(("parse ms/page project / trafilatura",
                 f"{parse['project_over_trafilatura']:.4f} ({parse['ms_per_page']['project']} / {parse['ms_per_page']['trafilatura']} ms)",
                 "<= 0.05", parse["project_over_trafilatura"] <= 0.05))
    rows.append(("parse: every field exact (project, all sampled)",
                 "/".join(f"{strict[name]:.3f}" for name in FIELDS) + " (title/date/authors/body)",
                 "1.000 each", all(strict[name] == 1.0 for name in FIELDS)))
    rows.append(("peak RSS, large crawl", f"{large['crawl']['peak_rss_mib']} MiB", "< 150 MiB", large["crawl"]["peak_rss_mib"] < 150))
    rows.append(("peak RSS large / small", f"{rss_ratio:.3f} ({large['crawl']['peak_rss_mib']} / {small['crawl']['peak_rss_mib']} MiB)",
                 "<= 1.3", rss_ratio <= 1.3))
    rows.append(("incremental run wall time", f"{incremental['wall_seconds']:.2f} s", "< 3 s", incremental["wall_seconds"] < 3))
    rows.append(("incremental run requests", f"{incremental['pages']} (sections = {sections})", f"<= {sections + 3}",
                 incremental["pages"] <= sections + 3))
    for label, run in (("small", small), ("large", large)):
        cap = run["capture"]
        rows.append((f"capture on/off pages/s ({label})",
                     f"{cap['on_over_off']:.3f} ({cap['on']['pages_per_second']} / {cap['off']['pages_per_second']})",
                     ">= 0.85", cap["on_over_off"] >= 0.85))
    for label, run in (("small", small), ("large", large)):
        again, on = run["capture"]["reextract"], run["capture"]["on"]
        rows.append((f"reextract / crawl articles/s ({label})",
                     f"{again['over_crawl_on_articles_per_second']:.2f}x ({again['articles_per_second']} / {on['articles_per_second']})",
                     ">= 4x", again["over_crawl_on_articles_per_second"] >= 4))
    small_rx, large_rx = small["capture"]["reextract"], large["capture"]["reextract"]
    rx_ratio = large_rx["peak_rss_mib"] / small_rx["peak_rss_mib"]
    results["reextract_rss_large_over_small"] = round(rx_ratio, 3)
    rows.append(("reextract peak RSS large / small", f"{rx_ratio:.3f} ({large_rx['peak_rss_mib']} / {small_rx['peak_rss_mib']} MiB)",
                 "<= 1.3", rx_ratio <= 1.3))
    for label, run in (("small", small), ("large", large)):
        compared = run["capture"]["reextract"]["comparison"]
        rows.append((f"reextract = crawl but crawled_at ({label})",
                     f"{compared['mismatched_lines']} mismatching of {compared['crawl_lines']} / {compared['reextract_lines']} lines",
                     "0 mismatching", compared["mismatched_lines"] == 0 and compared["crawl_lines"] > 0))
    return [{"metric": m, "value": v, "target": t, "met": bool(ok)} for m, v, t, ok in rows]


def print_table(results: dict) -> None:
    small, large, parse = results["small"], results["large"], results["parse"]
    git = results["git"]
    print()
    print(f"project commit {git['commit'][:12]}{' + uncommitted crawler/ changes' if git['crawler_changes_uncommitted'] else ''};"
          f" {results['machine']['cpus']} CPUs; bare settings {results['settings']['bare']}")
    print("Crawl (politeness off, concurrency 16; WARC capture off and images off: THEORY_WARC=0, THEORY_CAPTURE_IMAGES=0;"
          " wall time of the whole process)")
    header = f"  {'':<7}{'articles':>9}{'pages':>8}{'bare s':>8}{'bare p/s':>10}{'crawl s':>9}{'crawl p/s':>10}{'art/s':>8}{'ratio':>7}{'RSS MiB':>9}{'CPU s':>7}"
    print(header)
    for label, run in (("small", small), ("large", large)):
        bare, full = run["bare"], run["crawl"]
        print(f"  {label:<7}{run['counts']['articles']:>9}{full['pages']:>8}{bare['wall_seconds']:>8.1f}{bare['pages_per_second']:>10.1f}"
              f"{full['wall_seconds']:>9.1f}{full['pages_per_second']:>10.1f}{full['articles_per_second']:>8.1f}"
              f"{full['crawl_over_bare']:>7.3f}{full['peak_rss_mib']:>9.1f}{full['cpu_seconds']:>7.1f}")
    inc = large["incremental"]
    print(f"  growth large/small: time x{results['time_large_over_small']}, peak RSS x{results['rss_large_over_small']};"
          f" incremental: {inc['wall_seconds']:.2f} s, {inc['pages']} requests, {inc['written']} written")
    print()
    print("Capture (on: THEORY_WARC=1, off: THEORY_WARC=0; THEORY_CAPTURE_IMAGES=0 in both, so the same pages; each on run right after its off run)")
    print(f"  {'':<7}{'articles':>9}{'pages':>8}{'off s':>8}{'off p/s':>9}{'on s':>8}{'on p/s':>9}{'on/off':>8}"
          f"{'on RSS':>8}{'on CPU':>8}{'WARC MiB':>10}{'files':>6}{'B/article':>10}{'WACZ MiB':>10}")
    for label, run in (("small", small), ("large", large)):
        cap = run["capture"]
        off, on = cap["off"], cap["on"]
        print(f"  {label:<7}{on['written']:>9}{on['pages']:>8}{off['wall_seconds']:>8.1f}{off['pages_per_second']:>9.1f}"
              f"{on['wall_seconds']:>8.1f}{on['pages_per_second']:>9.1f}{cap['on_over_off']:>8.3f}{on['peak_rss_mib']:>8.1f}"
              f"{on['cpu_seconds']:>8.1f}{cap['warc_bytes'] / 2**20:>10.1f}{cap['warc_files']:>6}{cap['warc_bytes_per_article']:>10}"
              f"{cap['wacz_bytes'] / 2**20:>10.1f}")
    print("  by the run report's duration alone (no start-up, no CDXJ index or WACZ packaging at the end): on/off "
          + ", ".join(f"{label} {run['capture']['on_over_off_engine']:.3f}" for label, run in (("small", small), ("large", large)))
          + "; wall time outside the report, off/on: "
          + ", ".join(f"{label} {run['capture']['off_seconds_outside_report']:.1f}/{run['capture']['on_seconds_outside_report']:.1f} s"
                      for label, run in (("small", small), ("large", large))))
    print("Re-extraction (`scrapy reextract <capture>/warc` into a fresh data dir; ratio to the capture-on crawl's articles/s,"
          " and to the capture-off one's)")
    print(f"  {'':<7}{'pages':>8}{'articles':>9}{'wall s':>8}{'art/s':>8}{'x on':>7}{'x off':>7}{'RSS MiB':>9}{'CPU s':>7}"
          f"{'mismatching lines':>19}")
    for label, run in (("small", small), ("large", large)):
        again = run["capture"]["reextract"]
        print(f"  {label:<7}{again['article_pages_read']:>8}{again['written']:>9}{again['wall_seconds']:>8.1f}"
              f"{again['articles_per_second']:>8.1f}{again['over_crawl_on_articles_per_second']:>7.2f}"
              f"{again['over_crawl_off_articles_per_second']:>7.2f}{again['peak_rss_mib']:>9.1f}{again['cpu_seconds']:>7.1f}"
              f"{again['comparison']['mismatched_lines']:>12} of {again['comparison']['crawl_lines']}")
    print(f"  reextract peak RSS large/small x{results['reextract_rss_large_over_small']}")
    print("Coverage (`scrapy coverage` of the capture-off crawl's data dir: the summary and coverage.html)")
    for label, run in (("small", small), ("large", large)):
        cov = run["coverage"]
        print(f"  {label:<7}{run['crawl']['written']:>9} articles: {cov['wall_seconds']:.2f} s, peak RSS {cov['peak_rss_mib']} MiB,"
              f" CPU {cov['cpu_seconds']} s")
    print()
    print(f"Parsing alone ({parse['articles']} articles: {parse['single_page_articles']} single-page, "
          f"{parse['multi_page_articles']} multi-page; {parse['pages_timed']} pages)")
    print(f"  {'extractor':<28}{'ms/page':>9}{'title':>14}{'date':>14}{'authors':>14}{'body':>14}   (exact / similarity)")
    for name, key in (("project (all sampled)", "project_all"), ("project (single-page)", "project_single_page"),
                      ("trafilatura (single-page)", "trafilatura_single_page"), ("gne (single-page)", "gne_single_page")):
        acc = parse["accuracy"][key]
        ms = parse["ms_per_page"][key.split("_")[0]]
        cells = "".join(f"{acc[f]['exact']:>7.3f}/{acc[f]['similarity']:.3f}" for f in FIELDS)
        print(f"  {name:<28}{ms:>9.3f}{cells}")
    split = parse["project_ms_per_page_split"]
    print(f"  project split: read_article_page {split['read_article_page']} ms/page, load_article {split['load_article']} ms/page")
    print()
    print("Targets")
    width = max(len(row["metric"]) for row in results["targets"])
    for row in results["targets"]:
        print(f"  {row['metric']:<{width}}  {row['value']:<48} {row['target']:<22} {'met' if row['met'] else 'NOT MET'}")


def versions() -> dict:
    from importlib.metadata import version

    found = {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()}
    for package in ("scrapy", "parsel", "lxml", "itemloaders", "trafilatura", "gne"):
        try:
            found[package] = version(package)
        except Exception:  # noqa: BLE001
            found[package] = None
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--articles-small", type=int, help="articles in the small mirror (default 2000; --quick 300)")
    parser.add_argument("--articles-large", type=int, help="articles in the large mirror (default 20000; --quick 1000)")
    parser.add_argument("--sample", type=int, help="articles in the parse sample (default 200; --quick 50)")
    parser.add_argument("--rounds", type=int, help="timing rounds of the parse sample, best kept (default 3; --quick 1)")
    parser.add_argument("--out", type=Path, help="results JSON (default bench/out/results.json; --quick results-quick.json)")
    parser.add_argument("--repeat", type=int, default=1, help="bare fetch + crawl pairs per mirror; fastest of each kept (default 1)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/theory-bench"), help="mirrors, logs and data dirs")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = parser.parse_args()
    quick = args.quick
    small_n = args.articles_small or (300 if quick else 2000)
    large_n = args.articles_large or (1000 if quick else 20000)
    sample = args.sample or (50 if quick else 200)
    rounds = args.rounds or (1 if quick else 3)
    out = args.out or BENCH / "out" / ("results-quick.json" if quick else "results.json")
    work = args.work.resolve()
    if work == REPO or REPO in work.parents:
        sys.exit("bench: --work must be outside the project (the bare spider must not load the project's scrapy.cfg)")

    site = shared_site()
    work.mkdir(parents=True, exist_ok=True)
    started = datetime.now(timezone.utc)
    results: dict = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "started_at": started.isoformat(timespec="seconds"),
        "machine": versions(),
        "seed": SEED,
        "git": git_state(),
        "settings": {"crawl": {**FAST, **CAPTURE_OFF}, "capture_on": {**FAST, **CAPTURE_ON}, "bare": bare_settings()},
        "work": str(work),
        "peak_rss_note": "ru_maxrss of the crawl (or reextract) process alone (os.wait4 on its pid), in MiB; with --repeat, the highest."
        " Since this version the process is forked from a small launcher (LAUNCHER): started straight from the benchmark"
        " it reported at least the benchmark's own peak RSS (bench_peak_rss_mib_at_start), which Linux carries across exec",
    }
    results["repeat"] = args.repeat
    results["small"] = bench_mirror(site, work, small_n, "small", incremental=False, repeat=args.repeat)
    results["large"] = bench_mirror(site, work, large_n, "large", incremental=True, repeat=args.repeat)
    log(f"parsing alone: sample of {sample} articles from the large mirror, {rounds} round(s)")
    results["parse"] = parse_bench(Path(results["large"]["mirror"]), results["large"]["crawl"]["base_url"], sample, rounds)
    results["targets"] = targets(results)
    results["finished_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    print_table(results)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"\nresults: {out.resolve()}")


if __name__ == "__main__":
    main()

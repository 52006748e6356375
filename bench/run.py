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
  6. (small mirror) crawls that capture's data dir again with every written article due for a revisit
     (bench/growth.py): the WARC and WACZ bytes an unchanged site's revisits add, per revisited article and
     per day of the default revisit policy;
and, on the large mirror, times an incremental run (second crawl, same data dir). Then it times parsing
alone on a sample of article pages: the project's reader + loader against trafilatura and GNE, with
accuracy against expected.jsonl. It prints a table of targets and writes every figure to --out as JSON.

The parts: bench/common.py (settings, mirrors, server, measured commands), crawling.py (crawl figures),
reextraction.py (capture and re-extraction figures), growth.py (growth by revisits), parsing.py (parsing alone);
this file runs them and prints the table.

stdlib + the project's own dependencies + the `bench` extras (trafilatura, gne, lxml_html_clean).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
from datetime import datetime, timezone
from pathlib import Path

from common import (
    BENCH, CAPTURE_OFF, CAPTURE_ON, FAST, REPO, SEED, bare_settings, crawl_paths, ensure_mirror, fastest, git_state, log,
    read_jsonl, run_measured, settings_args, shared_site, warm_page_cache,
)
from crawling import bare_fetch, crawl
from parsing import FIELDS, parse_bench
from growth import revisit_growth
from reextraction import capture_bench


def bench_mirror(site: Path, work: Path, articles: int, label: str, incremental: bool, repeat: int, growth: bool = False) -> dict:
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
    full = fastest(crawls)
    full["complete"] = all(run["complete"] for run in crawls)
    bare["all_wall_seconds"] = [run["wall_seconds"] for run in bares]
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
    if growth:
        log(f"{label}: revisit run of the unchanged mirror into {capture_dir}, every written article due")
        result["revisit_growth"] = revisit_growth(site, mirror, capture_dir, run_dir, label)
        grown = result["revisit_growth"]
        log(f"{label}: {grown['revisited']} articles revisited ({grown['not_modified']} not modified) in {grown['wall_seconds']} s,"
            f" WARC +{grown['warc_bytes_added']} bytes, WACZ +{grown['wacz_bytes_added']} bytes")
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
    grown = small["revisit_growth"]
    print("Growth by revisits (the small capture crawled again, unchanged mirror, every written article due:"
          " THEORY_REVISIT_MIN_HOURS=0, THEORY_REVISIT_BUDGET=10**9; bytes the run added)")
    print(f"  {grown['revisited']} articles revisited ({grown['not_modified']} not modified, {grown['revised']} revised),"
          f" {grown['requests']} requests, {grown['wall_seconds']:.1f} s: WARC +{grown['warc_bytes_added']:,} bytes,"
          f" WACZ +{grown['wacz_bytes_added']:,} bytes = {grown['warc_bytes_per_revisited_article']:,} WARC bytes and"
          f" {grown['wacz_bytes_per_revisited_article']:,} WACZ bytes per revisited article")
    policy = grown["default_policy"]
    print(f"  a day under the default policy ({grown['mirror_articles_of_last_days']} articles of the mirror's last"
          f" {policy['days']:g} days + {policy['budget']} older = {grown['articles_revisited_per_day']} revisited):"
          f" WARC +{grown['warc_bytes_per_day']:,} bytes, WACZ +{grown['wacz_bytes_per_day']:,} bytes;"
          f" a new article: WARC +{small['capture']['warc_bytes_per_article']:,} bytes")
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
    results["small"] = bench_mirror(site, work, small_n, "small", incremental=False, repeat=args.repeat, growth=True)
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

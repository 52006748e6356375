"""What the benchmark's parts share: settings, the mirrors and their server, and measured commands (wall time,
peak RSS and CPU time of the command's own process)."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
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
# The crawl figures (against the bare fetch, RSS, incremental) are taken with capture off: the same work
# as before WARC capture existed. Capture on keeps images off, so that the same pages are fetched.
CAPTURE_OFF = {"THEORY_WARC": "0", "THEORY_CAPTURE_IMAGES": "0"}
CAPTURE_ON = {"THEORY_WARC": "1", "THEORY_CAPTURE_IMAGES": "0"}


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




def fastest(runs: list[dict]) -> dict:
    """The fastest of repeated runs, with the highest peak RSS of them and every run's wall time and peak RSS."""
    best = dict(min(runs, key=lambda run: run["wall_seconds"]))
    best["peak_rss_mib"] = max(run["peak_rss_mib"] for run in runs)
    best["all_wall_seconds"] = [run["wall_seconds"] for run in runs]
    best["all_peak_rss_mib"] = [run["peak_rss_mib"] for run in runs]
    return best


def files_size(directory: Path, pattern: str) -> tuple[int, int]:
    """(number, total bytes) of the files matching pattern in directory."""
    found = sorted(directory.glob(pattern)) if directory.is_dir() else []
    return len(found), sum(path.stat().st_size for path in found)

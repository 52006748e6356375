"""Growth figures: what a revisit run of an unchanged site adds to the web archive.

After the capture-on crawl (and its re-extraction, which must read that crawl's WARC files alone), the same crawl
runs again into the same data dir with every written article due for a revisit (THEORY_REVISIT_MIN_HOURS=0 and a
budget larger than the archive): every article page is asked for conditionally, the unchanged site answers 304,
and each answer is stored as a server-not-modified revisit record (its request record beside it). The WARC and
WACZ bytes that run adds, per revisited article, times the articles the default policy revisits in a day, is what
a day of revisits adds.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

from common import CAPTURE_ON, files_size, read_jsonl
from crawling import crawl

EVERY_ARTICLE = str(10**9)  # a revisit budget no archive reaches: every written article is revisited


def default_policy() -> dict[str, float]:
    import crawler.settings as project

    return {"days": project.THEORY_REVISIT_DAYS, "budget": project.THEORY_REVISIT_BUDGET}


def articles_of_last_days(mirror: Path, days: float) -> int:
    """Unique articles published in the mirror's own last ``days`` days (its dates are in the past: the policy's
    "last 30 days" of a live site is taken as the mirror's newest 30 days)."""
    dates = [date.fromisoformat(row["published_date"]) for row in read_jsonl(mirror / "expected.jsonl") if row["duplicate_of"] is None]
    newest = max(dates)
    return sum(1 for day in dates if newest - day < timedelta(days=days))


def revisit_growth(site: Path, mirror: Path, capture_dir: Path, run_dir: Path, label: str) -> dict:
    warc_before, wacz_before = files_size(capture_dir / "warc", "*.warc.gz")[1], files_size(capture_dir / "wacz", "*.wacz")[1]
    settings = {**CAPTURE_ON, "THEORY_REVISIT_MIN_HOURS": "0", "THEORY_REVISIT_BUDGET": EVERY_ARTICLE}
    run = crawl(site, mirror, capture_dir, run_dir, f"{label}-revisit", settings)
    if run["exit_status"] != 0:
        raise RuntimeError(f"the revisit run failed (exit {run['exit_status']}), see {run['log']}")
    report = json.loads(Path(run["run_report"]).read_text("utf-8"))
    revisits = report["revisits"]
    warc_added = files_size(capture_dir / "warc", "*.warc.gz")[1] - warc_before
    wacz_added = files_size(capture_dir / "wacz", "*.wacz")[1] - wacz_before
    revisited = revisits["revisited"]
    policy = default_policy()
    recent = articles_of_last_days(mirror, policy["days"])
    per_day_articles = recent + policy["budget"]
    warc_per = warc_added / revisited if revisited else None
    wacz_per = wacz_added / revisited if revisited else None
    return {
        "note": "a second capture-on crawl of the unchanged mirror into the capture's data dir, every written article due"
        " (THEORY_REVISIT_MIN_HOURS=0, THEORY_REVISIT_BUDGET=10**9); bytes the run added, per revisited article"
        " (the run's few listing and home pages included); a day under the default policy = (the mirror's articles of"
        " its newest THEORY_REVISIT_DAYS days + THEORY_REVISIT_BUDGET) revisited articles",
        "settings": settings,
        "wall_seconds": run["wall_seconds"],
        "requests": run["pages"],
        "written": run["written"],
        "revisited": revisited,
        "not_modified": revisits["not_modified"],
        "revised": revisits["revised"],
        "warc_bytes_added": warc_added,
        "wacz_bytes_added": wacz_added,
        "warc_bytes_per_revisited_article": round(warc_per) if warc_per is not None else None,
        "wacz_bytes_per_revisited_article": round(wacz_per) if wacz_per is not None else None,
        "default_policy": policy,
        "mirror_articles_of_last_days": recent,
        "articles_revisited_per_day": per_day_articles,
        "warc_bytes_per_day": round(warc_per * per_day_articles) if warc_per is not None else None,
        "wacz_bytes_per_day": round(wacz_per * per_day_articles) if wacz_per is not None else None,
    }

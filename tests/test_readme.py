"""The README's examples, run: its commands against the served mirrors give what it prints (key lines, and
whole outputs where they do not depend on the time), its Python snippet validates, its alert rule loads."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys

import pytest

from conftest import PROJECT_ROOT, MirrorServer

README = (PROJECT_ROOT / "README.md").read_text("utf-8")
LEGACY_PORT, CURRENT_PORT = "127.0.0.1:8000", "127.0.0.1:8001"


@pytest.fixture(scope="module")
def mirrors(shared_site, shared_current_site):
    """Both mirrors, served as "Crawling the offline mirrors" serves them (the current one gzip-compressed)."""
    legacy = MirrorServer(shared_site / "serve.py", shared_site / "www")
    current = MirrorServer(shared_current_site / "serve.py", shared_current_site / "www", "--gzip")
    yield legacy, current
    legacy.stop()
    current.stop()


def on_mirrors(text: str, mirrors) -> str:
    legacy, current = mirrors
    return text.replace(LEGACY_PORT, legacy.url[len("http://"):].rstrip("/")).replace(
        CURRENT_PORT, current.url[len("http://"):].rstrip("/")
    )


def section(title: str) -> str:
    start = README.index(title)
    end = README.find("\n## ", start + len(title))
    return README[start:end if end > 0 else None]


def examples(text: str, command: str) -> list[tuple[str, list[str]]]:
    """Each ``    $ COMMAND …`` of ``text`` (continuation lines joined) with the output lines printed under it."""
    found = []
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if not line.startswith(f"    $ {command}"):
            continue
        parts = [line[6:]]
        while parts[-1].endswith("\\"):
            index += 1
            parts[-1] = parts[-1][:-1]
            parts.append(lines[index].strip())
        output = []
        for following in lines[index + 1:]:
            if following.startswith("    $ ") or (following and not following.startswith("    ")):
                break
            output.append(following[4:])
        while output and not output[-1]:
            output.pop()
        found.append((" ".join(parts), output))
    return found


def run(command: str, mirrors, **replacements: str) -> subprocess.CompletedProcess:
    command = on_mirrors(command, mirrors)
    for old, new in replacements.items():
        command = command.replace(old, new)
    argv = shlex.split(command)
    assert argv[0] == ".venv/bin/scrapy", argv
    return subprocess.run([sys.executable, "-m", "scrapy", *argv[1:]], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)


def comparable(lines: list[str]) -> list[str]:
    """Lines of a probe's output but the time of the fetch, with a shortened value cut where it was cut."""
    # A value is cut at a fixed length, so the port's digits shift where: compare its first 60 characters.
    return [re.sub(r'"([^"]{0,60})[^"]*…"', r'"\1…"', line) for line in lines if not line.lstrip().startswith("crawled_at")]


def test_the_mirror_crawl_and_the_coverage_summary_give_what_the_readme_prints(mirrors, tmp_path):
    crawl_text = section("### Crawling the offline mirrors")
    command = re.search(r"^    (\.venv/bin/scrapy crawl theory .*?)(?<!\\)$", crawl_text, re.M | re.S)[1]
    data_dir = tmp_path / "mirror-data"
    result = run(command.replace("\\\n", " "), mirrors, **{"THEORY_DATA_DIR=mirror-data": f"THEORY_DATA_DIR={data_dir}"})
    assert result.returncode == 0, result.stderr[-3000:]
    claim = re.search(r"This writes (\d+) lines .*?: (\d+) legacy and (\d+) current articles", crawl_text, re.S)
    rows = [json.loads(line) for line in (data_dir / "articles.jsonl").read_text("utf-8").splitlines()]
    legacy = sum(1 for row in rows if len(row["article_id"]) == 15)
    assert (len(rows), legacy, len(rows) - legacy) == tuple(map(int, claim.groups()))

    ((coverage_command, printed),) = examples(section("## The coverage page"), ".venv/bin/scrapy coverage")
    result = run(coverage_command, mirrors, **{"THEORY_DATA_DIR=mirror-data": f"THEORY_DATA_DIR={data_dir}"})
    assert result.returncode == 0, result.stderr[-3000:]
    got = result.stdout.replace(str(data_dir), "mirror-data").splitlines()
    # Which copy of a republished article is written depends on which is fetched first: the years may
    # trade an article, the totals per site may not.
    year_row = re.compile(r"^  (\d{4})  (legacy|current) +(\d+)  (.*)$")

    def per_site(lines):
        totals = {}
        for line in lines:
            if match := year_row.match(line):
                totals[match[2]] = totals.get(match[2], 0) + int(match[3])
                assert match[4] == "-", line  # no hole on the mirrors
        return totals

    assert per_site(got) == per_site(printed) == {"legacy": legacy, "current": len(rows) - legacy}
    assert [year_row.sub(r"\1 \2", line) for line in got if year_row.match(line)] == [
        year_row.sub(r"\1 \2", line) for line in printed if year_row.match(line)
    ]
    timeless = re.compile(r"last run \S+")
    assert [timeless.sub("last run", line) for line in got if not year_row.match(line)] == [
        timeless.sub("last run", line) for line in printed if not year_row.match(line)
    ]
    html = (data_dir / "coverage.html").read_text("utf-8")
    assert 'aria-label="legacy articles by month"' in html and 'aria-label="current articles by month"' in html


PROBES = examples(README[README.index("## When the live site differs"):README.index("### Template drift")], ".venv/bin/scrapy probe")


@pytest.mark.parametrize("command, printed", PROBES, ids=[command.split()[2] for command, _ in PROBES])
def test_the_probe_examples_print_what_the_readme_prints(mirrors, command, printed):
    assert len(PROBES) == 4
    result = run(command, mirrors)
    assert result.returncode == 0, result.stderr[-3000:]
    assert comparable(result.stdout.splitlines()) == comparable(on_mirrors("\n".join(printed), mirrors).splitlines())


def test_the_schema_snippet_validates_the_events_of_changes_jsonl(tmp_path):
    snippet = re.search(r"```python\n(.*?)```", README, re.S)[1]
    article = {
        "url": "http://theory.workercn.cn/241/201511/06/151106114633189.shtml", "article_id": "151106114633189",
        "section_id": "241", "section_name": "实践与思考", "title": "标题", "authors": [], "source": None,
        "published_date": "2015-11-05", "published_time": None, "published_at": "2015-11-05", "editor": None,
        "body": "正文", "images": [], "page_count": 1, "content_hash": "a" * 64, "crawled_at": "2026-01-01T00:00:00+00:00",
        "warc": [],
    }
    event = {"event": "revised", "article_id": article["article_id"], "url": article["url"], "version": 2,
             "previous_content_hash": "b" * 64, "detected_at": "2026-01-02T00:00:00+00:00", "item": article}
    changes = tmp_path / "changes.jsonl"
    changes.write_text(json.dumps(event, ensure_ascii=False) + "\n", "utf-8")
    code = snippet.replace('"data/changes.jsonl"', repr(str(changes)))
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    # and it does judge: an item that breaks the article schema fails it
    changes.write_text(json.dumps({**event, "item": {**article, "title": ""}}, ensure_ascii=False) + "\n", "utf-8")
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "ValidationError" in result.stderr


def test_the_alert_rule_loads_in_promtool(tmp_path):
    promtool = shutil.which("promtool")
    if not promtool:
        pytest.skip("no promtool on PATH (Debian: the prometheus package)")
    block = re.search(r"\n    groups:\n(?:    .*\n)+", README)[0]
    rules = tmp_path / "theory.rules.yml"
    rules.write_text("\n".join(line[4:] for line in block.strip("\n").splitlines()) + "\n")
    result = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "SUCCESS: 1 rules found" in result.stdout, result.stdout + result.stderr

"""End to end: real crawls of the mirrors, each followed by the real `scrapy deliver`; bags validated by
bagit-python (the library and its command line), every line delivered once, kills and a full disk."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from collections import Counter
from pathlib import Path

import bagit
import pytest

from conftest import PROJECT_ROOT, load_expected
from crawl_helpers import (
    ARTICLES, SLOW_CRAWL, SLOW_SERVER, UNIQUE_ARTICLES, add_article, crawl, line_count, single_page_originals,
    start_crawl, wait_for_lines,
)

LEDGER = "delivered.json"


def deliver_command(dest: Path, data_dir: Path, *options: str) -> list[str]:
    return [sys.executable, "-m", "scrapy", "deliver", str(dest), *options, "-s", f"THEORY_DATA_DIR={data_dir}"]


def deliver(dest: Path, data_dir: Path, *options: str) -> subprocess.CompletedProcess:
    return subprocess.run(deliver_command(dest, data_dir, *options), cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)


def bags(dest: Path) -> list[Path]:
    return sorted(path for path in dest.iterdir() if not path.name.startswith("."))


def assert_valid(bag: Path) -> None:
    bagit.Bag(str(bag)).validate()
    checked = subprocess.run(
        [sys.executable, "-m", "bagit", "--validate", str(bag)], capture_output=True, text=True, timeout=120
    )
    assert checked.returncode == 0, checked.stderr
    assert "is valid" in checked.stderr


def payload(bag: Path, name: str = ARTICLES) -> bytes:
    return (bag / "data" / name).read_bytes()


def ids(data: bytes) -> list[str]:
    return [json.loads(line)["article_id"] for line in data.splitlines()]


def reports(data_dir: Path) -> list[str]:
    return sorted(path.name for path in (data_dir / "runs").glob("*.json"))



def test_runs_of_both_sites_each_delivered_as_one_valid_bag_holding_every_line_once(
    serve_mirror, shared_site, shared_current_site, www, tmp_path
):
    legacy = serve_mirror(www, "--gzip")
    current = serve_mirror(shared_current_site / "www", "--gzip")
    data_dir, dest = tmp_path / "data", tmp_path / "dest"
    dest.mkdir()
    both = {"THEORY_CHANNEL_URL": current.url + "theory/"}
    assert crawl(legacy.url, data_dir, **both).returncode == 0
    assert crawl(legacy.url, data_dir, "revisit=0", **both).returncode == 0  # unchanged
    first = deliver(dest, data_dir)
    assert first.returncode == 0, first.stderr
    made = bags(dest)
    assert len(made) == 2 and len(first.stdout.splitlines()) == 2
    assert [len(ids(payload(bag))) for bag in made] == [436, 0]
    print(f"two runs of both mirrors: bags {[bag.name for bag in made]}, article lines 436 and 0")

    expected = load_expected(shared_site)
    original = single_page_originals(expected, "241")[0]
    add_article(www, original, original["article_id"][:6] + "235951999", "新增测试文章：")
    assert crawl(legacy.url, data_dir, "revisit=0", **both).returncode == 0
    again = deliver(dest, data_dir)
    assert again.returncode == 0, again.stderr
    made = bags(dest)
    assert len(made) == 3
    assert len(ids(payload(made[2]))) == 1
    for bag in made:
        assert_valid(bag)
        info = bagit.Bag(str(bag)).info
        assert info["Source-URL"] == [legacy.url, current.url + "theory/"]
        assert info["External-Identifier"].startswith("theory-crawler run ")
        assert "Payload-Oxum" in info and "Bagging-Date" in info and info["Run-Started"] and info["Run-Finished"]
        assert set(bagit.Bag(str(bag)).algorithms) == {"sha256", "sha512"}
    # every line of the data dir's articles.jsonl exactly once, in order
    assert b"".join(payload(bag) for bag in made) == (data_dir / ARTICLES).read_bytes()
    assert b"".join(payload(bag, "duplicates.jsonl") for bag in made) == (data_dir / "duplicates.jsonl").read_bytes()
    # each run's captures: its WACZ
    for bag, report in zip(made, reports(data_dir)):
        run = json.loads((bag / "data" / "runs" / report).read_text("utf-8"))
        assert [path.name for path in (bag / "data" / "wacz").iterdir()] == [Path(run["wacz"]).name]
    assert deliver(dest, data_dir).stdout.strip() == "deliver: every run with a report is delivered already"

    everything = deliver(dest, data_dir, "--all")
    assert everything.returncode == 0, everything.stderr
    (whole,) = [bag for bag in bags(dest) if bag.name.startswith("theory-all-")]
    assert_valid(whole)
    assert payload(whole) == (data_dir / ARTICLES).read_bytes()
    assert len(json.loads((data_dir / LEDGER).read_text())["runs"]) == 3  # --all recorded nothing


def test_a_killed_crawls_synced_lines_are_delivered_once_with_its_captures(serve_mirror, www, tmp_path):
    data_dir, dest = tmp_path / "data", tmp_path / "dest"
    dest.mkdir()
    server = serve_mirror(www, *SLOW_SERVER)
    process = start_crawl(server.url, data_dir, THEORY_SYNC_ITEMS="40", **SLOW_CRAWL)
    wait_for_lines(process, data_dir / ARTICLES, 120)
    process.kill()
    process.wait(timeout=10)
    assert line_count(data_dir / ARTICLES) < UNIQUE_ARTICLES and reports(data_dir) == []
    killed_warc = sorted(path.name for path in (data_dir / "warc").glob("*.warc.gz"))
    assert crawl(server.url, data_dir, **SLOW_CRAWL).returncode == 0
    delivered = deliver(dest, data_dir)
    assert delivered.returncode == 0, delivered.stderr
    (bag,) = bags(dest)
    assert_valid(bag)
    lines = ids(payload(bag))
    assert len(lines) == UNIQUE_ARTICLES and Counter(lines).most_common(1)[0][1] == 1
    assert payload(bag) == (data_dir / ARTICLES).read_bytes()
    # the killed run's WARC files were packaged by the rerun, with its own, in its WACZ: none goes bare
    assert not (bag / "data" / "warc").exists()
    (package,) = (bag / "data" / "wacz").iterdir()
    with zipfile.ZipFile(package) as wacz:
        packaged = {name.removeprefix("archive/") for name in wacz.namelist() if name.startswith("archive/")}
    assert set(killed_warc) <= packaged


def test_a_killed_delivery_leaves_no_partial_bag_and_the_next_delivers_every_run_once(serve_mirror, www, tmp_path):
    data_dir, dest = tmp_path / "data", tmp_path / "dest"
    dest.mkdir()
    server = serve_mirror(www)
    for _ in range(2):
        assert crawl(server.url, data_dir, "revisit=0").returncode == 0
    process = subprocess.Popen(deliver_command(dest, data_dir), cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    partial = []
    while time.monotonic() < deadline and process.poll() is None and not partial:
        partial = [name for name in os.listdir(dest) if name.endswith(".partial")]
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    assert partial, "the delivery ended before it could be killed while it built a bag"
    rerun = deliver(dest, data_dir)
    assert rerun.returncode == 0, rerun.stderr
    assert [name for name in os.listdir(dest) if name.startswith(".")] == []
    made = bags(dest)
    assert [bag.name for bag in made] == ["theory-run-" + name.removesuffix(".json") for name in reports(data_dir)]
    for bag in made:
        assert_valid(bag)
    assert b"".join(payload(bag) for bag in made) == (data_dir / ARTICLES).read_bytes()
    assert set(json.loads((data_dir / LEDGER).read_text())["runs"]) == set(reports(data_dir))


def test_with_theory_delivery_dir_every_run_ends_by_delivering_its_bag(serve_mirror, www, tmp_path):
    data_dir, dest = tmp_path / "data", tmp_path / "dest"
    dest.mkdir()
    server = serve_mirror(www)
    for _ in range(2):
        run = crawl(server.url, data_dir, "sections=253", "revisit=0", THEORY_DELIVERY_DIR=str(dest))
        assert run.returncode == 0, run.stderr[-3000:]
        assert len(bags(dest)) == len(reports(data_dir))
    first, second = bags(dest)
    assert_valid(first)
    assert payload(first) == (data_dir / ARTICLES).read_bytes() and payload(second) == b""


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs (root only), unmounted after the test."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)], check=True)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


def test_a_full_disk_is_exit_7_with_nothing_recorded_and_the_next_delivery_with_space_succeeds(
    serve_mirror, www, tmp_path, small_disk
):
    data_dir = tmp_path / "data"
    server = serve_mirror(www)
    assert crawl(server.url, data_dir).returncode == 0
    full = deliver(small_disk, data_dir)
    assert full.returncode == 7, full.stderr
    (line,) = full.stderr.strip().splitlines()
    assert "No space left on device" in line and "Traceback" not in full.stderr
    assert not (data_dir / LEDGER).exists() and os.listdir(small_disk) == []

    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    roomy = deliver(small_disk, data_dir)
    assert roomy.returncode == 0, roomy.stderr
    (bag,) = bags(small_disk)
    assert_valid(bag)
    assert payload(bag) == (data_dir / ARTICLES).read_bytes()


def test_a_missing_or_read_only_dest_is_exit_2_in_one_line(serve_mirror, www, tmp_path, small_disk):
    data_dir = tmp_path / "data"
    server = serve_mirror(www)
    assert crawl(server.url, data_dir, "sections=253").returncode == 0
    missing = deliver(tmp_path / "nowhere", data_dir)
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1, missing.stderr
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    read_only = deliver(small_disk, data_dir)
    assert read_only.returncode == 2 and "not writable" in read_only.stderr, read_only.stderr
    assert len(read_only.stderr.strip().splitlines()) == 1
    assert not (data_dir / LEDGER).exists()

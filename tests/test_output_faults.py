"""The output and the state under faults: failed writes (full disk, file size limit), torn and foreign
lines, a truncated output file, a damaged state. Whatever happens, articles.jsonl holds whole lines only, every article at most
once, and what is missing from it is owed to the next run."""

from __future__ import annotations

import errno
import json
import os
import resource
import subprocess
import uuid
from pathlib import Path

import pytest

from conftest import PROJECT_ROOT, crawl_command
from crawl_helpers import ARTICLES, UNIQUE_ARTICLES, Run, assert_complete_once, crawl, own_report_path, whole_lines
from crawler.pipelines import JsonLinesFile, OutputError
from test_cron import expected  # noqa: F401 - the fixture, with its check of the mirror

EXIT_OUTPUT_FAILED = 7


# --- JsonLinesFile on its own --------------------------------------------------------------------


def failing_write(fail_after: int, error: int):
    """os.write that writes ``fail_after`` bytes of the first call, then fails as a full disk does."""
    real_write = os.write
    calls = []

    def write(fd, data):
        calls.append(len(data))
        if len(calls) == 1:
            return real_write(fd, bytes(data[:fail_after]))
        raise OSError(error, os.strerror(error))

    return write


@pytest.mark.parametrize("error", [errno.ENOSPC, errno.EFBIG])
def test_a_write_failing_half_way_leaves_no_torn_line_behind(tmp_path, monkeypatch, error):
    output = JsonLinesFile(tmp_path / "out.jsonl")
    output.append({"n": 1})
    monkeypatch.setattr(os, "write", failing_write(5, error))
    with pytest.raises(OutputError, match=os.strerror(error)):
        output.append({"n": 2, "text": "正文" * 100})
    monkeypatch.undo()
    output.append({"n": 3})  # space came back: the next line starts on a line of its own
    output.close()
    assert [json.loads(line) for line in (tmp_path / "out.jsonl").read_bytes().splitlines()] == [{"n": 1}, {"n": 3}]


def test_when_a_torn_line_cannot_be_cut_nothing_more_is_appended(tmp_path, monkeypatch):
    output = JsonLinesFile(tmp_path / "out.jsonl")
    monkeypatch.setattr(os, "write", failing_write(5, errno.EIO))
    monkeypatch.setattr(os, "ftruncate", lambda fd, size: (_ for _ in ()).throw(OSError(errno.EIO, "I/O error")))
    with pytest.raises(OutputError):
        output.append({"n": 1})
    monkeypatch.undo()
    with pytest.raises(OutputError, match="torn line"):
        output.append({"n": 2})
    output.close()


# --- the whole crawl ---------------------------------------------------------------------------------


def crawl_limited(base_url: str, data_dir: Path, max_file_size: int) -> Run:
    """A crawl whose process may not grow any file past ``max_file_size`` bytes (EFBIG, as a quota would)."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_size, max_file_size))

    result = subprocess.run(
        crawl_command(base_url, data_dir), cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120, preexec_fn=limit
    )
    return Run(result.returncode, result.stderr, 0.0, own_report_path(result.stderr))


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if " ERROR: " in line and "run summary" not in line]


def test_a_file_size_limit_stops_the_run_with_its_own_status_and_the_next_run_completes(serve_mirror, www, expected, tmp_path):
    server = serve_mirror(www)
    data_dir = tmp_path / "data"
    limit = 300_000  # a fifth of the output; the state and the reports stay far below it
    run = crawl_limited(server.url, data_dir, limit)
    assert run.returncode == EXIT_OUTPUT_FAILED, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    (error,) = error_lines(run.stderr)  # the WARC file or the output, whichever grew past the limit first
    assert "cannot write" in error and "File too large" in error
    assert run.report["exit_status"] == EXIT_OUTPUT_FAILED and run.report["output_error"]
    rows = whole_lines(data_dir / ARTICLES)
    assert 0 < len(rows) < UNIQUE_ARTICLES and (data_dir / ARTICLES).stat().st_size <= limit

    rerun = crawl(server.url, data_dir)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert_complete_once(data_dir, expected)


@pytest.fixture
def small_disk(tmp_path):
    """A tmpfs of 400 KiB: the output fills it a quarter of the way through the crawl."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    disk = tmp_path / f"disk-{uuid.uuid4().hex[:8]}"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(disk)], check=True)
    yield disk
    subprocess.run(["umount", str(disk)], check=False)


def test_a_full_disk_stops_the_run_the_summary_is_logged_and_the_next_run_completes(serve_mirror, www, expected, small_disk):
    server = serve_mirror(www)
    data_dir = small_disk / "data"
    run = crawl(server.url, data_dir)
    assert run.returncode == EXIT_OUTPUT_FAILED, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    assert "run summary" in run.stderr and "No space left on device" in run.stderr
    errors = error_lines(run.stderr)
    assert errors and "cannot write" in errors[0], errors
    assert len(errors) <= 2, errors  # the output's failure, and perhaps the run report's own
    assert 0 < len(whole_lines(data_dir / ARTICLES)) < UNIQUE_ARTICLES

    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)  # space freed
    rerun = crawl(server.url, data_dir)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert_complete_once(data_dir, expected)


def test_lines_lost_from_the_output_are_fetched_again(serve_mirror, www, expected, tmp_path):
    server = serve_mirror(www)
    data_dir = tmp_path / "data"
    assert crawl(server.url, data_dir).returncode == 0
    output = data_dir / ARTICLES
    lines = output.read_bytes().splitlines(keepends=True)
    output.write_bytes(b"".join(lines[:100]))  # replaced by a shorter copy

    rerun = crawl(server.url, data_dir)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert rerun.report["recovery"]["missing_articles"] == UNIQUE_ARTICLES - 100
    assert rerun.report["written"] == UNIQUE_ARTICLES - 100
    assert_complete_once(data_dir, expected)


def test_a_torn_line_after_the_synced_size_is_cut_with_what_was_appended_onto_it(serve_mirror, www, expected, tmp_path):
    server = serve_mirror(www)
    data_dir = tmp_path / "data"
    assert crawl(server.url, data_dir).returncode == 0
    output = data_dir / ARTICLES
    lines = output.read_bytes().splitlines(keepends=True)
    with open(output, "ab") as tail:  # what a failed append used to leave: a whole line glued onto a torn one
        tail.write(lines[5][:40] + lines[6])

    rerun = crawl(server.url, data_dir)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert rerun.report["recovery"]["cut_bytes"] == 40 + len(lines[6])
    assert output.read_bytes() == b"".join(lines)
    assert_complete_once(data_dir, expected)


@pytest.mark.parametrize("foreign", [b"{}\n", b"[1, 2]\n", b'{"title": "no url"}\n', b"null\n"])
def test_foreign_json_lines_are_skipped_with_one_error_line(serve_mirror, www, expected, tmp_path, foreign):
    server = serve_mirror(www)
    data_dir = tmp_path / "data"
    assert crawl(server.url, data_dir).returncode == 0
    with open(data_dir / ARTICLES, "ab") as output:
        output.write(foreign)
    for _ in range(2):  # the line stays; no later run may trip over it
        rerun = crawl(server.url, data_dir)
        assert rerun.returncode == 0 == rerun.report["exit_status"], rerun.stderr[-3000:]
        assert "Traceback" not in rerun.stderr
    first_rerun_errors = [line for line in rerun.stderr.splitlines() if "not articles" in line]
    assert len(first_rerun_errors) <= 1


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_damaged_state_is_kept_aside_and_rebuilt_from_the_output(serve_mirror, www, expected, tmp_path, damage):
    server = serve_mirror(www)
    data_dir = tmp_path / "data"
    assert crawl(server.url, data_dir).returncode == 0
    before = (data_dir / ARTICLES).read_bytes()
    state = data_dir / "state.sqlite3"
    for companion in data_dir.glob("state.sqlite3-*"):
        companion.unlink()
    data = state.read_bytes()
    state.write_bytes(b"this is not a database" * 100 if damage == "garbage" else data[: len(data) // 2])

    for _ in range(2):  # the first run rebuilds; the second finds a sound state
        rerun = crawl(server.url, data_dir)
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        assert "Traceback" not in rerun.stderr
        assert (data_dir / ARTICLES).read_bytes() == before
    (kept,) = data_dir.glob("state.sqlite3.damaged-*")
    assert kept.read_bytes()[:22] == (b"this is not a database" if damage == "garbage" else data[:22])

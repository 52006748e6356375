"""Bad settings and spider arguments end the run at once: one line, the usage status 2, no traceback."""

from __future__ import annotations

import os
import re
import subprocess

import pytest
from scrapy.exceptions import UsageError
from scrapy.settings import Settings

from conftest import PROJECT_ROOT, crawl_command, latest_run_report, run_crawl
from crawler import configuration, settings as project_settings

GOOD = {"THEORY_BASE_URL": "http://127.0.0.1:9/", "THEORY_CHANNEL_URL": ""}


def settings(tmp_path, **changes) -> Settings:
    values = Settings()
    values.setmodule(project_settings)
    values.update({**GOOD, "THEORY_DATA_DIR": str(tmp_path / "data"), **changes})
    return values


@pytest.mark.parametrize(
    "changes, arguments, complaint",
    [
        ({"THEORY_BASE_URL": "ftp://theory.workercn.cn/"}, {}, "THEORY_BASE_URL='ftp://theory.workercn.cn/' is not an http(s) URL"),
        ({"THEORY_BASE_URL": "notaurl"}, {}, "is not an http(s) URL"),
        ({"THEORY_CHANNEL_URL": "www.workercn.cn/theory/"}, {}, "THEORY_CHANNEL_URL"),
        ({"THEORY_BASE_URL": ""}, {}, "both empty"),
        ({"THEORY_SYNC_ITEMS": "many"}, {}, "THEORY_SYNC_ITEMS='many' is not an integer"),
        ({"THEORY_SYNC_ITEMS": "0"}, {}, "must be at least 1"),
        ({"THEORY_SYNC_SECONDS": "soon"}, {}, "is not a number"),
        ({"THEORY_MAX_PARSE_FAILURE_RATIO": "1.5"}, {}, "between 0 and 1"),
        ({"THEORY_FEED_PATH": "/json/theory/index.json"}, {}, "has no {page}"),
        ({}, {"ful": "1"}, "unknown spider argument ful"),
        ({}, {"sections": "241;252"}, "is not a section id"),
        ({}, {"revisit": "maybe"}, "revisit='maybe' is not 0 or 1"),
        ({"THEORY_REVISIT_BUDGET": "-1"}, {}, "THEORY_REVISIT_BUDGET='-1' must be at least 0"),
        ({"THEORY_HOST_MAX_FAILURES_IN_A_ROW": "0"}, {}, "THEORY_HOST_MAX_FAILURES_IN_A_ROW='0' must be at least 1"),
        ({"THEORY_ARTICLE_HOSTS": "news.workercn.cn,https://x.example/"}, {}, "THEORY_ARTICLE_HOSTS: 'https://x.example/' is not a host name"),
        ({"THEORY_REVISIT_DAYS": "a month"}, {}, "THEORY_REVISIT_DAYS='a month' is not a number"),
        ({"THEORY_REMOVAL_CONFIRMATIONS": "0"}, {}, "must be at least 1"),
        ({"THEORY_FIELD_WINDOW": "0"}, {}, "THEORY_FIELD_WINDOW='0' must be at least 1"),
        ({"THEORY_FIELD_WINDOW": "x"}, {}, "THEORY_FIELD_WINDOW='x' is not an integer"),
        ({"THEORY_LEGACY_SOURCE": "wayback"}, {}, "THEORY_LEGACY_SOURCE='wayback' is not one of live, archive, live,archive"),
        ({"THEORY_LEGACY_SOURCE": ""}, {}, "THEORY_LEGACY_SOURCE='' is not one of"),
        ({"THEORY_ARCHIVE_CAPTURE": "first"}, {}, "THEORY_ARCHIVE_CAPTURE='first' is not earliest or latest"),
        ({"THEORY_ARCHIVE_MAX_SKEW_DAYS": "-1"}, {}, "THEORY_ARCHIVE_MAX_SKEW_DAYS='-1' must be at least 0"),
        ({"THEORY_ARCHIVE_DELAY": "slow"}, {}, "THEORY_ARCHIVE_DELAY='slow' is not a number"),
        ({"THEORY_LEGACY_SOURCE": "archive", "THEORY_ARCHIVE_CDX_URL": "web.archive.org/cdx"}, {}, "THEORY_ARCHIVE_CDX_URL='web.archive.org/cdx' is not an http(s) URL"),
        ({"THEORY_LEGACY_SOURCE": "live,archive", "THEORY_ARCHIVE_REPLAY_URL": "ftp://x/"}, {}, "THEORY_ARCHIVE_REPLAY_URL='ftp://x/' is not an http(s) URL"),
        ({"THEORY_LEGACY_SOURCE": "archive", "THEORY_ARCHIVE_REPLAY_URL": "http://127.0.0.1:9/coll"}, {}, "must end with /"),
        ({"THEORY_LEGACY_SOURCE": "archive", "THEORY_BASE_URL": "", "THEORY_CHANNEL_URL": "http://127.0.0.1:9/theory/"}, {}, "THEORY_BASE_URL (the legacy host it archived) is empty"),
        ({"THEORY_REMOVAL_MIN_HOURS": "-1"}, {}, "THEORY_REMOVAL_MIN_HOURS='-1' must be at least 0"),
        ({"THEORY_REVISIT_MIN_HOURS": "a day"}, {}, "THEORY_REVISIT_MIN_HOURS='a day' is not a number"),
        ({"THEORY_NOT_FOUND_PHRASES": "页面不存在,,已删除"}, {}, "THEORY_NOT_FOUND_PHRASES='页面不存在,,已删除' holds a blank"),
        ({"THEORY_NOT_FOUND_PHRASES": 404}, {}, "THEORY_NOT_FOUND_PHRASES=404 is not a list of phrases"),
        ({"THEORY_DELIVERY_DIR": "/nonexistent/bags"}, {}, "THEORY_DELIVERY_DIR='/nonexistent/bags' is not a writable directory"),
        ({"THEORY_WARC_MAX_SIZE": "abc"}, {}, "THEORY_WARC_MAX_SIZE='abc' is not an integer"),
        ({"THEORY_WARC_MAX_SIZE": "0"}, {}, "THEORY_WARC_MAX_SIZE='0' must be at least 1000000"),
        ({"THEORY_WARC": "maybe"}, {}, "THEORY_WARC='maybe' is not 0 or 1"),
        ({"THEORY_CAPTURE_IMAGES": "perhaps"}, {}, "THEORY_CAPTURE_IMAGES='perhaps' is not 0 or 1"),
        ({}, {"sections": "999x"}, "sections='999x': 999x is not a section id (legacy section ids (digits))"),
        ({"THEORY_CHANNEL_URL": "http://127.0.0.1:9/theory/"}, {"sections": "241,economy"},
         "economy is not a section id (legacy section ids (digits) or 'theory', the channel)"),
        ({}, {"sections": "241,theory"}, "theory is not a section id"),  # no current site to crawl
    ],
)
def test_a_bad_setting_or_argument_is_named(tmp_path, changes, arguments, complaint):
    with pytest.raises(UsageError, match=re.escape(complaint)):
        configuration.check(settings(tmp_path, **changes), arguments)


def test_good_settings_pass(tmp_path):
    configuration.check(settings(tmp_path, THEORY_CHANNEL_URL="http://127.0.0.1:9/theory/"), {"sections": "241,theory", "full": "1", "revisit": "0"})
    configuration.check(settings(tmp_path, THEORY_WARC="0", THEORY_CAPTURE_IMAGES="false", THEORY_WARC_MAX_SIZE="1000000"), {})
    immediate = {"THEORY_REMOVAL_MIN_HOURS": "0", "THEORY_REVISIT_MIN_HOURS": "0", "THEORY_NOT_FOUND_PHRASES": "页面不存在,已删除"}
    configuration.check(settings(tmp_path, **immediate), {})


@pytest.mark.parametrize("source", ["live", "archive", "live,archive", "archive, live"])
def test_archive_settings_pass(tmp_path, source):
    configuration.check(settings(
        tmp_path, THEORY_LEGACY_SOURCE=source, THEORY_ARCHIVE_CAPTURE="latest", THEORY_ARCHIVE_DELAY="0",
        THEORY_ARCHIVE_CDX_URL="http://127.0.0.1:9/coll/cdx", THEORY_ARCHIVE_REPLAY_URL="http://127.0.0.1:9/coll/",
    ), {})


def test_a_data_dir_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="is not a directory"):
        configuration.check(settings(tmp_path, THEORY_DATA_DIR=str(tmp_path / "file")), {})


@pytest.fixture
def read_only_dir(tmp_path):
    """A directory nobody may write to: a read-only tmpfs, since root ignores permission bits."""
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        yield locked
        return
    locked = tmp_path / "read-only"
    locked.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(locked)], check=True)
    yield locked
    subprocess.run(["umount", str(locked)], check=False)


def test_a_data_dir_that_is_not_writable_is_refused(tmp_path, read_only_dir):
    with pytest.raises(UsageError, match="is not writable"):
        configuration.check(settings(tmp_path, THEORY_DATA_DIR=str(read_only_dir / "data")), {})


@pytest.mark.parametrize(
    "setting",
    [("THEORY_BASE_URL", "ftp://127.0.0.1:9/"), ("THEORY_SYNC_ITEMS", "x"), ("THEORY_DATA_DIR", "/etc/hostname")],
)
def test_the_crawl_command_exits_2_with_one_line_and_touches_nothing(tmp_path, setting):
    name, value = setting
    command = crawl_command("http://127.0.0.1:9/", tmp_path / "data")
    command += ["-s", f"{name}={value}"]
    result = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    (error,) = [line for line in result.stderr.splitlines() if "error:" in line]
    assert f": error: {name}={value!r}" in error
    assert not (tmp_path / "data").exists()


def test_a_misspelt_argument_exits_2(tmp_path):
    result = subprocess.run(
        [*crawl_command("http://127.0.0.1:9/", tmp_path / "data"), "-a", "ful=1"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2 and "unknown spider argument ful" in result.stderr


# "999" alone leaves no section to walk: still a usage error, never a layout alarm (no_sections) that
# would trip monitoring.
@pytest.mark.parametrize("sections", ["241,999", "999"])
def test_sections_not_in_the_navigation_are_a_usage_error(serve_mirror, tmp_path, sections):
    server = serve_mirror()
    data_dir = tmp_path / "data"
    result = run_crawl(server.url, data_dir, f"sections={sections}")
    assert result.returncode == 2, result.stderr[-3000:]
    assert "sections 999 are not in the channel navigation (known: 239, 241, 242, 251, 252, 253)" in result.stderr
    report = latest_run_report(data_dir)
    assert report["exit_status"] == 2 and report["layout_alarms"] == {}

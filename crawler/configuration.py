"""The crawl's settings and spider arguments, checked before anything starts.

A wrong value must end the run at once with one line and the usage status (2), not with a traceback
from deep inside Scrapy, a hang (an ftp:// URL) or a report that blames the site.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlsplit

from scrapy.exceptions import UsageError

from crawler.urls import channel_of

SPIDER_ARGUMENTS = ("sections", "full", "revisit")
HOST = re.compile(r"^[0-9a-z]([0-9a-z.-]*[0-9a-z])?(:[0-9]{1,5})?$")


def _url(settings, name: str) -> str:
    value = (settings.get(name) or "").strip()
    if not value:
        return ""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"{name}={value!r} is not an http(s) URL (give '' to leave that site out)", print_help=False)
    return value


def _number(settings, name: str, kind: type, low: float, high: float | None = None) -> None:
    value = settings.get(name)
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise UsageError(f"{name}={value!r} is not {'an integer' if kind is int else 'a number'}", print_help=False) from None
    if number < low or (high is not None and number > high):
        bounds = f"at least {low}" if high is None else f"between {low} and {high}"
        raise UsageError(f"{name}={value!r} must be {bounds}", print_help=False)


def _phrases(settings, name: str) -> None:
    """A list of phrases (``-s NAME=a,b`` gives two); a blank one would match every page."""
    value = settings.get(name)
    try:
        phrases = settings.getlist(name)
    except (TypeError, ValueError):
        raise UsageError(f"{name}={value!r} is not a list of phrases", print_help=False) from None
    if not all(isinstance(phrase, str) and phrase.strip() for phrase in phrases):
        raise UsageError(f"{name}={value!r} holds a blank or non-text phrase", print_help=False)


WARC_MIN_SIZE = 1_000_000


def _boolean(settings, name: str) -> None:
    try:
        settings.getbool(name)
    except ValueError:
        raise UsageError(f"{name}={settings.get(name)!r} is not 0 or 1 (true/false)", print_help=False) from None


def _data_dir(settings) -> None:
    value = settings.get("THEORY_DATA_DIR") or ""
    path = Path(value)
    if not value:
        raise UsageError("THEORY_DATA_DIR is empty", print_help=False)
    if path.exists() and not path.is_dir():
        raise UsageError(f"THEORY_DATA_DIR={value!r} is not a directory", print_help=False)
    existing = next(parent for parent in (path, *path.absolute().parents) if parent.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"THEORY_DATA_DIR={value!r}: {existing} is not writable", print_help=False)


LEGACY_SOURCES = ("live", "archive", "live,archive")
ARCHIVE_CAPTURES = ("earliest", "latest")


def legacy_sources(settings) -> frozenset[str]:
    """THEORY_LEGACY_SOURCE as a set of sources: {"live"}, {"archive"} or both (spaces and order do not matter)."""
    return frozenset(part.strip().lower() for part in str(settings.get("THEORY_LEGACY_SOURCE") or "").split(",") if part.strip())


def _archive(settings) -> None:
    sources = legacy_sources(settings)
    if not sources or not sources <= {"live", "archive"}:
        raise UsageError(
            f"THEORY_LEGACY_SOURCE={settings.get('THEORY_LEGACY_SOURCE')!r} is not one of {', '.join(LEGACY_SOURCES)}",
            print_help=False,
        )
    capture = settings.get("THEORY_ARCHIVE_CAPTURE")
    if capture not in ARCHIVE_CAPTURES:
        raise UsageError(f"THEORY_ARCHIVE_CAPTURE={capture!r} is not earliest or latest", print_help=False)
    _number(settings, "THEORY_ARCHIVE_MAX_SKEW_DAYS", float, 0)
    _number(settings, "THEORY_ARCHIVE_DELAY", float, 0)
    if "archive" in sources:
        for name in ("THEORY_ARCHIVE_CDX_URL", "THEORY_ARCHIVE_REPLAY_URL"):
            value = (settings.get(name) or "").strip()
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise UsageError(f"{name}={value!r} is not an http(s) URL, and THEORY_LEGACY_SOURCE names the archive", print_help=False)
        if not (settings.get("THEORY_ARCHIVE_REPLAY_URL") or "").endswith("/"):
            raise UsageError(
                f"THEORY_ARCHIVE_REPLAY_URL={settings.get('THEORY_ARCHIVE_REPLAY_URL')!r} must end with / (the timestamp is appended to it)",
                print_help=False,
            )
        if not settings.get("THEORY_BASE_URL"):
            raise UsageError("THEORY_LEGACY_SOURCE names the archive but THEORY_BASE_URL (the legacy host it archived) is empty", print_help=False)


def check(settings, spider_arguments: dict[str, str]) -> None:
    """Raise UsageError, with one line that names the culprit, if the run cannot work as configured."""
    unknown = sorted(set(spider_arguments) - set(SPIDER_ARGUMENTS))
    if unknown:
        raise UsageError(
            f"unknown spider argument {', '.join(unknown)} (the arguments are: {', '.join(SPIDER_ARGUMENTS)})",
            print_help=False,
        )
    sections = [section.strip() for section in (spider_arguments.get("sections") or "").split(",") if section.strip()]
    sites = [_url(settings, name) for name in ("THEORY_BASE_URL", "THEORY_CHANNEL_URL")]
    # Legacy sections are numbered; the current site has one section, the channel (its directory).
    channel = channel_of(sites[1]) if sites[1] else None
    bad = [section for section in sections if not (section.isdigit() or section == channel)]
    if bad:
        known = "legacy section ids (digits)" + (f" or {channel!r}, the channel" if channel else "")
        raise UsageError(
            f"sections={spider_arguments['sections']!r}: {', '.join(bad)} is not a section id ({known})", print_help=False
        )
    if not any(sites):
        raise UsageError("THEORY_BASE_URL and THEORY_CHANNEL_URL are both empty: nothing to crawl", print_help=False)
    if "{page}" not in (settings.get("THEORY_FEED_PATH") or ""):
        raise UsageError(f"THEORY_FEED_PATH={settings.get('THEORY_FEED_PATH')!r} has no {{page}}", print_help=False)
    bad_hosts = [host for host in settings.getlist("THEORY_ARTICLE_HOSTS") if not HOST.match(host.strip().lower())]
    if bad_hosts:
        raise UsageError(
            f"THEORY_ARTICLE_HOSTS: {', '.join(map(repr, bad_hosts))} is not a host name (host or host:port, comma-separated)",
            print_help=False,
        )
    for name in ("THEORY_MAX_ATTEMPTS", "THEORY_MAX_LISTING_PAGES", "THEORY_SYNC_ITEMS", "THEORY_HOST_MAX_FAILURES_IN_A_ROW"):
        _number(settings, name, int, 1)
    _number(settings, "THEORY_SYNC_SECONDS", float, 0)
    _number(settings, "THEORY_REVISIT_DAYS", float, 0)
    _number(settings, "THEORY_REVISIT_BUDGET", int, 0)
    _number(settings, "THEORY_REMOVAL_CONFIRMATIONS", int, 1)
    _number(settings, "THEORY_REMOVAL_MIN_HOURS", float, 0)
    _number(settings, "THEORY_REVISIT_MIN_HOURS", float, 0)
    _phrases(settings, "THEORY_NOT_FOUND_PHRASES")
    revisit = (spider_arguments.get("revisit") or "1").strip().lower()
    if revisit not in ("0", "1", "true", "false", "yes", "no"):
        raise UsageError(f"revisit={spider_arguments['revisit']!r} is not 0 or 1", print_help=False)
    _number(settings, "THEORY_MAX_PARSE_FAILURE_RATIO", float, 0, 1)
    _number(settings, "THEORY_MIN_PARSE_FAILURES", int, 1)
    _number(settings, "THEORY_FIELD_WINDOW", int, 1)
    _archive(settings)
    for name in ("THEORY_WARC", "THEORY_CAPTURE_IMAGES"):
        _boolean(settings, name)
    # Below 1 MB, a file per handful of pages: thousands of files a run for nothing.
    _number(settings, "THEORY_WARC_MAX_SIZE", int, WARC_MIN_SIZE)
    _data_dir(settings)
    delivery = settings.get("THEORY_DELIVERY_DIR") or ""
    if delivery and not (os.path.isdir(delivery) and os.access(delivery, os.W_OK | os.X_OK)):
        raise UsageError(f"THEORY_DELIVERY_DIR={delivery!r} is not a writable directory", print_help=False)

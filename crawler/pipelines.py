"""Validation, dedupe and storage, in this order (see ITEM_PIPELINES).

Output is appended by hand rather than through a feed exporter: a line counts as written only once it
is fsynced and recorded in the crawl state, and that bookkeeping is what makes reruns exactly-once.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

from itemadapter import ItemAdapter
import fastjsonschema
from scrapy.exceptions import DropItem
from scrapy.utils.defer import deferred_from_coro

from crawler.middlewares import mojibake_problems

logger = logging.getLogger(__name__)

ARTICLES_FILE = "articles.jsonl"
REJECTS_FILE = "rejects.jsonl"


def load_schema() -> dict[str, Any]:
    return json.loads(resources.files("crawler").joinpath("schema/article.schema.json").read_text("utf-8"))


def to_json_line(record: dict[str, Any]) -> bytes:
    return (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


class OutputError(Exception):
    """An output file could not be written (full disk, file size limit, read-only file system, ...).

    What was written before is intact: the file holds whole lines only.
    """

    def __init__(self, path: Path, error: OSError | sqlite3.Error):
        self.path = path
        self.error = error
        super().__init__(f"cannot write {path}: {error}")


class JsonLinesFile:
    """An append-only JSON Lines file where each line goes out in a single write(2).

    O_APPEND plus one write per line means a killed process leaves whole lines only (the page
    cache keeps what write() accepted); ``sync`` makes them durable. A write that fails half-way
    (ENOSPC, EFBIG) is cut back off, so that no later line is ever appended onto a torn one.
    """

    def __init__(self, path: Path):
        self.path = path
        try:
            self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as error:
            raise OutputError(path, error) from None
        self.size = os.fstat(self.fd).st_size  # the end of the last whole line
        self.torn = False

    def append(self, record: dict[str, Any]) -> None:
        if self.torn:
            raise OutputError(self.path, OSError("a torn line could not be cut off; nothing more is appended"))
        data = to_json_line(record)
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self.fd, view) :]
        except OSError as error:
            try:
                os.ftruncate(self.fd, self.size)
            except OSError:
                self.torn = True  # the next run's recovery cuts it: it lies after the synced size
            raise OutputError(self.path, error) from None
        self.size += len(data)

    def sync(self) -> int:
        try:
            os.fsync(self.fd)
        except OSError as error:
            raise OutputError(self.path, error) from None
        return self.size

    def close(self) -> None:
        os.close(self.fd)


def stopper(crawler) -> Callable[[str], None]:
    """Stops the crawl with a close reason: what a pipeline does when it can no longer write."""

    def stop(reason: str) -> None:
        deferred_from_coro(crawler.engine.close_spider_async(reason=reason))

    return stop


class _StatePipeline:
    """Base for the pipelines that share the crawl state, which the spider opens (and locks) first."""

    def __init__(self, state, stats, data_dir: str, stop: Callable[[str], None] | None = None):
        self.state = state
        self.stats = stats
        self.data_dir = Path(data_dir)
        self.stop = stop or (lambda reason: None)
        self.output_failed = False

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler.spider.state, crawler.stats, crawler.settings.get("THEORY_DATA_DIR"), stopper(crawler))

    def output_failure(self, error: OutputError) -> None:
        """One clear line, a stat, and the run stops: writing on would only fail again, item after item."""
        if self.output_failed:
            return
        self.output_failed = True
        logger.error(
            "%s; stopping the run. What was written is whole lines; the rest stays owed to the next run.", error
        )
        self.stats.set_value("theory/output_error", str(error))
        self.stop("output_error")


class ValidationPipeline(_StatePipeline):
    """Rejects items that break the published contract; they go to rejects.jsonl with the reason."""

    def __init__(self, state, stats, data_dir: str, max_attempts: int, stop: Callable[[str], None] | None = None):
        super().__init__(state, stats, data_dir, stop)
        self.max_attempts = max_attempts
        # Compiled to Python once: an order of magnitude faster per item than an interpreting validator.
        self.validate_schema = fastjsonschema.compile(load_schema())
        self.rejects: JsonLinesFile | None = None

    @classmethod
    def from_crawler(cls, crawler):
        settings = crawler.settings
        return cls(
            crawler.spider.state,
            crawler.stats,
            settings.get("THEORY_DATA_DIR"),
            settings.getint("THEORY_MAX_ATTEMPTS"),
            stopper(crawler),
        )

    def close_spider(self) -> None:
        if self.rejects:
            try:
                self.rejects.sync()
            except OutputError as error:
                self.output_failure(error)
            self.rejects.close()

    def problems(self, record: dict[str, Any]) -> list[str]:
        problems = []
        for field in ("title", "published_date"):
            if not record.get(field):
                problems.append(f"missing {field}")
        if record.get("body") is None:  # "" is the body of a page with media and no text
            problems.append("missing body")
        if record.get("published_date"):
            try:
                date.fromisoformat(record["published_date"])
            except ValueError:
                problems.append(f"unparseable published_date {record['published_date']!r}")
        try:
            self.validate_schema(record)
        except fastjsonschema.JsonSchemaValueException as error:
            problems.append(f"schema: {error.message}")
        # A page the encoding middleware could not repair must not become a line of garbage.
        problems.extend(mojibake_problems(record))
        return problems

    def process_item(self, item):
        record = dict(ItemAdapter(item))  # shallow: the values are already JSON types
        problems = self.problems(record)
        if not problems:
            return item
        reason = "; ".join(dict.fromkeys(problems))
        try:
            if self.rejects is None:
                self.rejects = JsonLinesFile(self.data_dir / REJECTS_FILE)
            self.rejects.append({"reason": reason, "item": record})
        except OutputError as error:
            self.output_failure(error)
        self.stats.inc_value("theory/rejected")
        if any(problem.startswith("missing") for problem in problems):
            self.stats.inc_value("theory/rejected/missing_field")
        url = record.get("url")
        if url and record.get("article_id"):
            self.state.record_failure(record["article_id"], url, f"rejected: {reason}", self.max_attempts)
        raise DropItem(f"rejected {url}: {reason}", log_level="WARNING")


class DedupePipeline(_StatePipeline):
    """One item per article id, and one per content (title and body) across ids."""

    def process_item(self, item):
        adapter = ItemAdapter(item)
        duplicate = self.state.claim(
            adapter["article_id"], adapter["url"], adapter["section_id"], adapter["content_hash"]
        )
        if duplicate is None:
            return item
        why, original = duplicate
        self.stats.inc_value(f"theory/duplicates/{why}")
        if why == "url":
            raise DropItem(f"duplicate {adapter['url']}: article {original} is already written", log_level="DEBUG")
        raise DropItem(
            f"duplicate {adapter['url']}: same title and body as article {original}", log_level="INFO"
        )


class StoragePipeline(_StatePipeline):
    """Appends items to articles.jsonl; marks them written in the state at each durable sync."""

    def __init__(
        self, state, stats, data_dir: str, sync_items: int, sync_seconds: float, stop: Callable[[str], None] | None = None
    ):
        super().__init__(state, stats, data_dir, stop)
        self.sync_items = sync_items
        self.sync_seconds = sync_seconds
        self.unsynced = 0
        self.last_sync = time.monotonic()
        self.out: JsonLinesFile | None = None

    @classmethod
    def from_crawler(cls, crawler):
        settings = crawler.settings
        return cls(
            crawler.spider.state,
            crawler.stats,
            settings.get("THEORY_DATA_DIR"),
            settings.getint("THEORY_SYNC_ITEMS"),
            settings.getfloat("THEORY_SYNC_SECONDS"),
            stopper(crawler),
        )

    def open_spider(self) -> None:
        path = self.data_dir / ARTICLES_FILE
        try:
            self.recover(path)
            self.out = JsonLinesFile(path)
        except OutputError as error:
            self.output_failure(error)

    def recover(self, path: Path) -> None:
        """Bring the state in line with the file before anything is written.

        Lines a crash left after the last sync are recorded as written, and the file is cut at the first
        line there that is not whole JSON (a torn write): the articles of what is cut are still owed. A file
        shorter than the synced size was truncated or replaced: what it lacks is owed again.
        """
        synced = self.state.synced_size(ARTICLES_FILE)
        size = path.stat().st_size if path.exists() else 0
        if size < synced:
            logger.error("%s is shorter than recorded (%d < %d bytes): it was truncated or replaced", path, size, synced)
            synced = 0
        written: set[str] = set()
        if size > synced:
            try:
                with open(path, "r+b") as tail:
                    tail.seek(synced)
                    written = self.index_lines(path, tail, synced)
            except OSError as error:
                raise OutputError(path, error) from None
        if synced == 0:  # the whole file was read: whatever the state says is written and it lacks, is owed
            missing = self.state.reset_written(written)
            if missing:
                logger.error("%s lacks %d articles recorded as written; they are owed again", path, missing)
                self.stats.set_value("theory/recovery/missing_articles", missing)
        self.sync_state(path.stat().st_size if path.exists() else 0)

    def index_lines(self, path: Path, tail, start: int) -> set[str]:
        """Record the lines of ``tail`` (from ``start``) as written; cut it at the first torn line."""
        written: set[str] = set()
        foreign = 0
        offset = start
        for line in tail:
            if not line.endswith(b"\n"):
                record = None
            else:
                try:
                    record = json.loads(line)
                except ValueError:
                    record = None
            if record is None:
                cut = size_of(tail) - offset
                logger.warning("%s: cutting %d bytes from byte %d on, from a torn or garbled line", path, cut, offset)
                tail.truncate(offset)
                self.stats.set_value("theory/recovery/cut_bytes", cut)
                break
            offset += len(line)
            if not (isinstance(record, dict) and all(isinstance(record.get(key), str) for key in ("article_id", "url"))):
                foreign += 1
                continue
            self.state.mark_written(record["article_id"], record["url"], record.get("section_id"), record.get("content_hash"))
            written.add(record["article_id"])
        if foreign:
            logger.error("%s: %d lines are JSON but not articles (no article_id or url); left as they are", path, foreign)
            self.stats.set_value("theory/recovery/foreign_lines", foreign)
        if written:
            logger.info("%s: %d lines from byte %d on, which the state did not record, are recorded now", path, len(written), start)
            self.stats.set_value("theory/recovered_lines", len(written))
        return written

    def sync_state(self, size: int) -> None:
        try:
            self.state.set_synced_size(ARTICLES_FILE, size)
            self.state.commit()
        except sqlite3.Error as error:
            raise OutputError(self.state.path, error) from None
        self.unsynced = 0
        self.last_sync = time.monotonic()

    def process_item(self, item):
        if self.out is None or self.output_failed:
            raise DropItem(f"not written, the output failed: {ItemAdapter(item)['url']}", log_level="DEBUG")
        record = dict(ItemAdapter(item))  # shallow: the values are already JSON types
        try:
            self.out.append(record)
            self.state.mark_written(record["article_id"], record["url"], record["section_id"], record["content_hash"])
            self.stats.inc_value("theory/written")
            self.unsynced += 1
            if self.unsynced >= self.sync_items or time.monotonic() - self.last_sync >= self.sync_seconds:
                self.sync_state(self.out.sync())
        except OutputError as error:
            self.output_failure(error)
            raise DropItem(f"not written: {record['url']}", log_level="DEBUG") from None
        return item

    def close_spider(self) -> None:
        if self.out:
            try:
                if not self.out.torn:
                    self.sync_state(self.out.sync())
            except OutputError as error:
                self.output_failure(error)
            self.out.close()


def size_of(file) -> int:
    return os.fstat(file.fileno()).st_size

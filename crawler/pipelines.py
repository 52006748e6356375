"""Validation, dedupe and storage, in this order (see ITEM_PIPELINES).

Output is appended by hand rather than through a feed exporter: a line counts as written only once it
is fsynced and recorded in the crawl state, and that bookkeeping is what makes reruns exactly-once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sqlite3
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import date, datetime
from importlib import resources
from pathlib import Path
from typing import Any, Iterator

from itemadapter import ItemAdapter
import fastjsonschema
from scrapy.exceptions import DropItem
from scrapy.utils.defer import deferred_from_coro

from crawler.capture import Capture
from crawler.drift import FieldWatch
from crawler.items import ContentDuplicate
from crawler.processors import utc_now_iso
from crawler.revisions import EVENTS, PRESENT, REMOVED, RevisitResult, correctable_fields, corrections
from crawler.state import written_from


logger = logging.getLogger(__name__)

ARTICLES_FILE = "articles.jsonl"
REJECTS_FILE = "rejects.jsonl"
CHANGES_FILE = "changes.jsonl"
DUPLICATES_FILE = "duplicates.jsonl"
# Revisions held in a run (see StoragePipeline.record_held_revisions) from which more than half of the
# revisits finding a new version is a layout alarm: below it, a busy day of the editors.
MIN_REVISIONS_ALARM = 10


def load_schema(name: str = "article") -> dict[str, Any]:
    return json.loads(resources.files("crawler").joinpath(f"schema/{name}.schema.json").read_text("utf-8"))


def to_json_line(record: dict[str, Any]) -> bytes:
    return (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


# What a wrong decoding leaves in an item, for the validation pipeline: U+FFFD, or a run of Latin-1 letters and
# signs, which is how CJK text in UTF-8 or GBK bytes reads as Latin-1/cp1252 ("ä¸­æ–‡", "ÖÐÎÄ"). Bytes 0x80-0x9F
# (GBK lead bytes, UTF-8 continuation bytes) read as C1 controls in Latin-1 and as the signs listed here in cp1252,
# less the punctuation Chinese text uses too (‘’“”–—…). The channel's text has no such run (both mirrors' ground
# truth has only a lone "·" between names).
LATIN1_RUN = re.compile("[\u0080-\u009f\u00a1-\u00ff‚ƒ„†‡ˆ‰Š‹ŒŽ•˜™š›œžŸ]{3,}")
TEXT_FIELDS = ("title", "body", "source", "editor", "authors", "section_name")


def mojibake_problems(record: dict) -> list[str]:
    """One problem per text field of ``record`` that holds replacement characters or Latin-1 mojibake."""
    problems = []
    for field in TEXT_FIELDS:
        value = record.get(field)
        text = "\n".join(value) if isinstance(value, list) else value
        if not isinstance(text, str):
            continue
        if replaced := text.count("\ufffd"):
            problems.append(f"mojibake: {replaced} replacement characters in {field}")
        elif run := LATIN1_RUN.search(text):
            problems.append(f"mojibake: Latin-1 run {run.group()!r} in {field}")
    return problems


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


class OutputFailure:
    """What a writer of the run's files does when a write fails: one clear line, a stat, and the run
    stops, once; writing on would only fail again, item after item."""

    def __init__(self, stats, stop: Callable[[str], None] | None = None):
        self.stats = stats
        self.stop = stop or (lambda reason: None)
        self.happened = False

    @classmethod
    def of(cls, crawler) -> OutputFailure:
        """The crawl's one instance: after the WARC file failed, the output takes no more lines either."""
        failure = getattr(crawler, "theory_output_failure", None)
        if failure is None:
            failure = crawler.theory_output_failure = cls(crawler.stats, stopper(crawler))
        return failure

    def __call__(self, error: OutputError) -> None:
        if self.happened:
            return
        self.happened = True
        logger.error("%s; stopping the run. What was written is whole; the rest stays owed to the next run.", error)
        self.stats.set_value("theory/output_error", str(error))
        self.stop("output_error")


class _StatePipeline:
    """Base for the pipelines that share the crawl state, which the spider opens (and locks) first."""

    def __init__(self, state, stats, data_dir: str, output_failure: OutputFailure | None = None):
        self.state = state
        self.stats = stats
        self.data_dir = Path(data_dir)
        self.output_failure = output_failure or OutputFailure(stats)

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler.spider.state, crawler.stats, crawler.settings.get("THEORY_DATA_DIR"), OutputFailure.of(crawler))


class ValidationPipeline(_StatePipeline):
    """Rejects items that break the published contract; they go to rejects.jsonl with the reason."""

    def __init__(self, state, stats, data_dir: str, max_attempts: int, output_failure: OutputFailure | None = None):
        super().__init__(state, stats, data_dir, output_failure)
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
            OutputFailure.of(crawler),
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
        if isinstance(item, RevisitResult):
            return self.check_revisit(item)
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


    def check_revisit(self, result: RevisitResult) -> RevisitResult:
        """A revised article keeps the contract of articles.jsonl: one that breaks it makes no event (the
        page is read again next time), and tells nothing about removal either."""
        if result.item is not None:
            problems = self.problems(dict(ItemAdapter(result.item)))
            if problems:
                logger.warning("revisit of %s: the page no longer reads as a valid article: %s", result.url, "; ".join(problems))
                self.stats.inc_value("theory/revisit/rejected")
                result.item, result.verdict, result.reason = None, "unknown", "rejected"
        return result


class DedupePipeline(_StatePipeline):
    """One item per article id, and one per content (title and body) across ids.

    A content duplicate goes on to the storage pipeline as a ``ContentDuplicate`` in place of the article,
    rather than being dropped here: its record in duplicates.jsonl needs the bookkeeping that makes
    articles.jsonl exactly once (appended before the state change that counts it, synced with the other
    files, replayed after a crash), and that bookkeeping is the storage pipeline's. Storage then drops it.
    """

    def process_item(self, item):
        if isinstance(item, RevisitResult):
            return item  # a revision is the same article again: not a duplicate of anything
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
        return ContentDuplicate(
            url=adapter["url"], article_id=adapter["article_id"], section_id=adapter["section_id"],
            kept_article_id=original, content_hash=adapter["content_hash"], detected_at=utc_now_iso(),
        )


class StoragePipeline(_StatePipeline):
    """Appends items to articles.jsonl, revisit events to changes.jsonl and dropped content duplicates to
    duplicates.jsonl; commits the state that counts them at each durable sync of the three files."""

    def __init__(
        self,
        state,
        stats,
        data_dir: str,
        sync_items: int,
        sync_seconds: float,
        output_failure: OutputFailure | None = None,
        capture: Capture | None = None,
        removal_confirmations: int = 2,
        field_watch: FieldWatch | None = None,
        removal_min_hours: float = 12.0,
    ):
        super().__init__(state, stats, data_dir, output_failure)
        self.field_watch = field_watch
        self.capture = capture
        self.sync_items = sync_items
        self.sync_seconds = sync_seconds
        self.removal_confirmations = removal_confirmations
        self.removal_min_hours = removal_min_hours
        # Revisits that found a new version or corrected fields, held until the run knows what share of its
        # whole revisits they are (see record_held_revisions); a held one a crash loses is found again next run.
        self.held_revisions: list[RevisitResult] = []
        # Off for `scrapy reextract -a correct=1`: a parser fix rightly corrects most articles at once.
        self.revision_alarm = True
        # Revisits that found the article there: unchanged (304) or read whole, every page an article page.
        self.present_revisits = 0
        self.unsynced = 0
        self.last_sync = time.monotonic()
        self.out: JsonLinesFile | None = None
        self.changes: JsonLinesFile | None = None
        self.duplicates: JsonLinesFile | None = None

    @classmethod
    def from_crawler(cls, crawler):
        settings = crawler.settings
        return cls(
            crawler.spider.state,
            crawler.stats,
            settings.get("THEORY_DATA_DIR"),
            settings.getint("THEORY_SYNC_ITEMS"),
            settings.getfloat("THEORY_SYNC_SECONDS"),
            OutputFailure.of(crawler),
            Capture.of(crawler),
            settings.getint("THEORY_REMOVAL_CONFIRMATIONS", 2),
            FieldWatch.from_crawler(crawler, crawler.spider.state),
            settings.getfloat("THEORY_REMOVAL_MIN_HOURS", 12.0),
        )

    def open_spider(self) -> None:
        path = self.data_dir / ARTICLES_FILE
        changes = self.data_dir / CHANGES_FILE
        duplicates = self.data_dir / DUPLICATES_FILE
        try:
            self.recover(path)
            self.recover_changes(changes)
            self.recover_duplicates(duplicates)
            self.index_first_versions(path)
            self.index_sources(path)
            self.out = JsonLinesFile(path)
            self.changes = JsonLinesFile(changes)
            self.duplicates = JsonLinesFile(duplicates)
            self.sync_state(self.out.size, self.changes.size, self.duplicates.size)
        except OutputError as error:
            self.output_failure(error)

    def recover(self, path: Path) -> None:
        """Bring the state in line with the file before anything is written.

        Lines a crash left after the last sync are recorded as written, and the file is cut at the first
        line there that is not whole JSON (a torn write): the articles of what is cut are still owed. A file
        shorter than the synced size was truncated or replaced: what it lacks is owed again.
        """
        synced, size = self.synced_and_size(ARTICLES_FILE, path)
        written: set[str] = set()
        if size > synced:
            written = self.index_lines(path, synced)
        if synced == 0:  # the whole file was read: whatever the state says is written and it lacks, is owed
            missing = self.state.reset_written(written)
            if missing:
                logger.error("%s lacks %d articles recorded as written; they are owed again", path, missing)
                self.stats.set_value("theory/recovery/missing_articles", missing)

    def synced_and_size(self, name: str, path: Path) -> tuple[int, int]:
        """The size of ``path`` the state last counted as synced, and its size now; a file shorter than that
        was truncated or replaced, and is read again from its start (synced 0)."""
        synced = self.state.synced_size(name)
        size = path.stat().st_size if path.exists() else 0
        if size < synced:
            logger.error("%s is shorter than recorded (%d < %d bytes): it was truncated or replaced; it is read again from its start", path, size, synced)
            synced = 0
        return synced, size

    def read_tail(self, path: Path, start: int) -> Iterator:
        """The JSON values of the lines of ``path`` from ``start`` on; cuts the file at the first torn line."""
        try:
            with open(path, "r+b") as tail:
                tail.seek(start)
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
                        self.stats.inc_value("theory/recovery/cut_bytes", cut)
                        return
                    offset += len(line)
                    yield record
        except OSError as error:
            raise OutputError(path, error) from None

    def index_lines(self, path: Path, start: int) -> set[str]:
        """Record the lines of ``path`` from ``start`` on as written; cut it at the first torn line."""
        written: set[str] = set()
        foreign = 0
        for record in self.read_tail(path, start):
            if not names_an_article(record):
                foreign += 1
                continue
            self.state.mark_written(
                record["article_id"], record["url"], record.get("section_id"), record.get("content_hash"), written_from(record),
            )
            self.state.record_first_version(
                record["article_id"], record.get("published_date"), record.get("page_count"), record.get("content_hash"),
                correctable_fields(record),
            )
            if self.field_watch and isinstance(record.get("url"), str):
                self.field_watch.record(record)
            written.add(record["article_id"])
        if foreign:
            logger.error("%s: %d lines are JSON but not articles (no article_id or url); left as they are", path, foreign)
            self.stats.set_value("theory/recovery/foreign_lines", foreign)
        if written:
            logger.info("%s: %d lines from byte %d on, which the state did not record, are recorded now", path, len(written), start)
            self.stats.set_value("theory/recovered_lines", len(written))
        return written

    def recover_changes(self, path: Path) -> None:
        """Replay on the state the events a crash left after the last sync of changes.jsonl (the state
        change each records was not committed), and cut a torn tail: so an event is neither lost (its
        state says it happened) nor repeated (the state knows it did)."""
        synced, size = self.synced_and_size(CHANGES_FILE, path)
        if size <= synced:
            return
        replayed = 0
        for event in self.read_tail(path, synced):
            if isinstance(event, dict) and event.get("event") in EVENTS and event.get("article_id"):
                self.state.apply_event(event)
                replayed += 1
        if replayed:
            logger.info("%s: %d events from byte %d on, which the state did not record, are recorded now", path, replayed, synced)
            self.stats.set_value("theory/recovery/replayed_events", replayed)

    def recover_duplicates(self, path: Path) -> None:
        """As ``recover`` for articles.jsonl: records a crash left after the last sync are recorded on the
        state (so never written twice), a torn tail is cut, and when the whole file was read (a file shorter
        than synced, or a data dir of a release that kept no duplicates.jsonl) the duplicates the state knows
        and the file lacks are owed again: fetched, found to be duplicates again, and recorded."""
        synced, size = self.synced_and_size(DUPLICATES_FILE, path)
        present: set[str] = set()
        if size > synced:
            for record in self.read_tail(path, synced):
                if names_an_article(record):
                    self.state.mark_duplicate(record["article_id"], record["url"], record.get("section_id"), record.get("content_hash"))
                    present.add(record["article_id"])
            if present:
                logger.info("%s: %d records from byte %d on, which the state did not record, are recorded now", path, len(present), synced)
                self.stats.set_value("theory/recovery/replayed_duplicates", len(present))
        if synced == 0:
            missing = self.state.reset_duplicates(present)
            if missing:
                logger.warning(
                    "%s lacks %d content duplicates the state knows (a data dir of an earlier release, or a truncated"
                    " file); they are fetched again to be recorded", path, missing,
                )
                self.stats.set_value("theory/recovery/missing_duplicates", missing)

    @staticmethod
    def article_lines(path: Path) -> Iterator[dict]:
        """The lines of articles.jsonl that are articles (with an article_id), for an upgrade's one reading."""
        try:
            with open(path, "rb") as lines:
                for line in lines:
                    try:
                        record = json.loads(line)
                    except ValueError:
                        continue  # a torn line was cut by recover(); anything else is not an article
                    if isinstance(record, dict) and isinstance(record.get("article_id"), str):
                        yield record
        except FileNotFoundError:
            pass
        except OSError as error:
            raise OutputError(path, error) from None

    def index_first_versions(self, path: Path) -> None:
        """Articles written by a release before revisits have no version in the state, so no published date,
        and would never count as recent for revisits: their lines give them one, once."""
        undated = self.state.written_without_first_version()
        if not undated:
            return
        for record in self.article_lines(path):
            self.state.record_first_version(
                record["article_id"], record.get("published_date"), record.get("page_count"), record.get("content_hash")
            )
        # What the file lacks gets a version without a date, so that the file is read this once only.
        left = self.state.record_undated_first_versions()
        indexed = undated - left
        logger.info("%s: %d articles of an earlier release get their published dates in the state", path, indexed)
        self.stats.set_value("theory/recovery/first_versions", indexed)
        if left:
            logger.warning("%d articles recorded as written are not in %s; they get no published date", left, path)

    def index_sources(self, path: Path) -> None:
        """Articles written by a release before sources were kept have none in the state: their lines say
        it (``archived_from``: read from a web archive), once. Revisits need it (see revisit_targets)."""
        unknown = self.state.written_without_source()
        if not unknown:
            return
        archived = 0
        for record in self.article_lines(path):
            source = written_from(record)
            if self.state.record_source(record["article_id"], source) and source == "archive":
                archived += 1
        # What the file lacks is taken as live, as it was revisited until now, so that the file is read this once only.
        self.state.record_unknown_sources_live()
        logger.info("%s: %d articles of an earlier release get their source in the state, %d of them read from a web archive", path, unknown, archived)
        self.stats.set_value("theory/recovery/sources", unknown)
        self.stats.set_value("theory/recovery/sources_archived", archived)

    def sync(self) -> None:
        """Make what was written durable, in the order that keeps every durable line's evidence whole:
        the WARC records it points at, then the lines, then the state that counts them as written."""
        if self.capture:
            with self.capture_errors():
                self.capture.sync()
        self.sync_state(self.out.sync(), self.changes.sync(), self.duplicates.sync())

    def sync_state(self, size: int, changes_size: int, duplicates_size: int) -> None:
        try:
            self.state.set_synced_size(ARTICLES_FILE, size)
            self.state.set_synced_size(CHANGES_FILE, changes_size)
            self.state.set_synced_size(DUPLICATES_FILE, duplicates_size)
            self.state.commit()
        except sqlite3.Error as error:
            raise OutputError(self.state.path, error) from None
        # The run report's ranges end at these: only what the state counts is the run's (crawler/delivery.py).
        for name, synced in ((ARTICLES_FILE, size), (CHANGES_FILE, changes_size), (DUPLICATES_FILE, duplicates_size)):
            self.stats.set_value(f"theory/synced_size/{name}", synced)
        self.unsynced = 0
        self.last_sync = time.monotonic()

    def process_item(self, item):
        if self.out is None or self.changes is None or self.duplicates is None or self.output_failure.happened:
            raise DropItem(f"not written, the output failed: {ItemAdapter(item)['url']}", log_level="DEBUG")
        if isinstance(item, ContentDuplicate):
            self.record_duplicate(item)
        if isinstance(item, RevisitResult):
            try:
                self.revisit(item)
            except OutputError as error:
                self.output_failure(error)
                raise DropItem(f"revisit of {item.url} not recorded", log_level="DEBUG") from None
            return item
        record = dict(ItemAdapter(item))  # shallow: the values are already JSON types
        try:
            self.capture_article(record)
            self.out.append(record)
            self.state.mark_written(
                record["article_id"], record["url"], record["section_id"], record["content_hash"], written_from(record),
            )
            self.state.record_first_version(
                record["article_id"], record["published_date"], record["page_count"], record["content_hash"],
                correctable_fields(record),
            )
            self.stats.inc_value("theory/written")
            if self.field_watch:
                self.field_watch.record(record)  # in the window from the commit that counts the line as written
            self.written_one()
        except OutputError as error:
            self.output_failure(error)
            raise DropItem(f"not written: {record['url']}", log_level="DEBUG") from None
        return item

    def record_duplicate(self, duplicate: ContentDuplicate) -> None:
        """Append the record, then mark the state (committed at the next sync, replayed from the file if
        a crash comes first), then drop it: a duplicate is not an article of the run."""
        record = asdict(duplicate)
        try:
            self.duplicates.append(record)
            self.state.mark_duplicate(duplicate.article_id, duplicate.url, duplicate.section_id, duplicate.content_hash)
            self.stats.inc_value("theory/duplicates/recorded")
            self.written_one()
        except OutputError as error:
            self.output_failure(error)
            raise DropItem(f"duplicate {duplicate.url} not recorded", log_level="DEBUG") from None
        raise DropItem(
            f"duplicate {duplicate.url}: same title and body as article {duplicate.kept_article_id}", log_level="INFO"
        )

    def capture_article(self, record: dict, revision: bool = False) -> None:
        """Record in the capture which pages make this article, before its line is written."""
        if self.capture:
            with self.capture_errors():
                self.capture.article_written(record, revision)

    def capture_revisit(self, result: RevisitResult, now: str) -> None:
        """Record in the capture which answers this revisit read and when it was judged, before its events:
        re-extraction judges them again into the same events (a revisit without answers, a download
        error, makes none and has nothing to read again)."""
        if self.capture and result.answers and not result.via:
            with self.capture_errors():
                self.capture.revisit_judged(result, now)

    @contextlib.contextmanager
    def capture_errors(self) -> Iterator[None]:
        """A write of the capture that fails (a full disk) is an output failure like any other."""
        try:
            yield
        except OSError as error:
            raise OutputError(self.capture.warc_dir, error) from None

    def written_one(self) -> None:
        self.unsynced += 1
        if self.unsynced >= self.sync_items or time.monotonic() - self.last_sync >= self.sync_seconds:
            self.sync()

    def revisit(self, result: RevisitResult) -> None:
        """Count one revisit; record it at once, or hold it if it found a new version or corrected fields (see
        record_held_revisions)."""
        stats = self.stats
        stats.inc_value("theory/revisit/revisited")
        if result.not_modified:
            stats.inc_value("theory/revisit/not_modified")
        if result.verdict == PRESENT:
            self.present_revisits += 1
        if result.verdict == PRESENT and result.item is not None:
            known, item = self.state.revision(result.article_id), dict(ItemAdapter(result.item))
            if item["content_hash"] != known["content_hash"] or corrections(known["fields"], correctable_fields(item)):
                self.held_revisions.append(result)  # its events, state and validators wait alike
                return
        self.record_revisit(result)

    def record_revisit(self, result: RevisitResult) -> None:
        """The events one revisit makes, appended before the state change they record (both become
        durable at the next sync; a crash in between is replayed from the file by ``recover_changes``)."""
        stats = self.stats
        now = result.checked_at or utc_now_iso()
        known = self.state.revision(result.article_id)
        # result.url is the article's URL as articles.jsonl has it, whichever host the revisit went to.
        base = {"article_id": result.article_id, "url": result.url}
        events: list[dict] = []
        updates: dict[str, Any] = {"checked_at": now}
        if result.via:  # the capture read again: corrections only (see RevisitResult.via)
            item = dict(ItemAdapter(result.item))
            if changed := corrections(known["fields"], correctable_fields(item)):
                events.append(corrected_event(base, changed, now, item, status=None, source=result.via))
            updates = {}
        elif result.verdict == PRESENT:
            if known["removed"]:
                events.append({"event": "restored", **base, "detected_at": now, "status": result.status})
            item = dict(ItemAdapter(result.item)) if result.item is not None else None
            if item is not None and item["content_hash"] != known["content_hash"]:
                events.append({
                    "event": "revised", **base, "version": known["version"] + 1,
                    "previous_content_hash": known["content_hash"], "detected_at": now, "item": item,
                })
            elif item is not None and (changed := corrections(known["fields"], correctable_fields(item))):
                # The same title and body with other field values: the site fixed a name, or today's readers
                # read the page better than those that wrote the line.
                events.append(corrected_event(base, changed, now, item, status=result.status))
            if item is not None:
                updates["page_count"] = item["page_count"]
                if known["fields"] is None:  # a line written before fields were kept: what it reads now is the base
                    updates["fields"] = json.dumps(correctable_fields(item), ensure_ascii=False)
            updates.update(failing_runs=0, failing_since=None)
        elif result.verdict == REMOVED:
            failing_runs, failing_since = known["failing_runs"] + 1, known["failing_since"] or now
            stats.inc_value("theory/revisit/failing")
            if not known["removed"] and failing_runs >= self.removal_confirmations:
                if self.hours_since(failing_since, now) >= self.removal_min_hours:
                    events.append({
                        "event": "removed", **base, "detected_at": now,
                        "evidence": {
                            "status": result.status, "redirect_target": result.redirect_target,
                            "not_found_phrase": result.phrase, "first_seen_failing": failing_since,
                            "confirmed_at": now, "runs": failing_runs,
                        },
                        **({"archived_copy": result.archived_copy} if result.archived_copy else {}),
                    })
                else:
                    # Runs minutes apart (a rerun after a crash) see the same bad hour of the site twice.
                    stats.inc_value("theory/revisit/removal_too_soon")
            updates.update(failing_runs=failing_runs, failing_since=failing_since)
        else:
            stats.inc_value(f"theory/revisit/unknown/{result.reason or result.status}")
        self.capture_revisit(result, now)
        for event in events:
            if event["event"] in ("revised", "corrected") and result.item is not None:
                self.capture_article(dict(ItemAdapter(result.item)), revision=True)  # the pages the new version or values came from
            self.changes.append(event)
        try:
            for event in events:
                self.state.apply_event(event)
                stats.inc_value(f"theory/revisit/{event['event']}")
                logger.info("%s: %s%s", result.url, event["event"], f" (version {event['version']})" if "version" in event else "")
            if updates:
                self.state.update_revision(result.article_id, **updates)
            for key, (etag, last_modified) in result.validators.items():
                self.state.set_validators(key, etag, last_modified)
        except sqlite3.Error as error:
            raise OutputError(self.state.path, error) from None
        self.written_one()

    @staticmethod
    def hours_since(then: str, now: str) -> float:
        """Hours from ``then`` to ``now``; a ``then`` in the future (a clock that was ahead) counts as now."""
        try:
            seconds = (datetime.fromisoformat(now) - datetime.fromisoformat(then)).total_seconds()
        except (TypeError, ValueError):
            logger.warning("unreadable time %r in the state; counted as now", then)
            return 0.0
        if seconds < 0:
            logger.warning("time %s in the state is later than now (%s); counted as now", then, now)
            return 0.0
        return seconds / 3600

    def record_held_revisions(self) -> None:
        """A template change that leaks boilerplate into every body makes every revisit a revision: when
        more than half of the revisits that found their article (and at least MIN_REVISIONS_ALARM) found a
        new version of it, none is written and the run raises the layout alarm; their pages are read again
        next run. (Only changed pages come back whole, so the share is of all that were found, 304s too.)"""
        held, present = len(self.held_revisions), self.present_revisits
        if self.revision_alarm and held >= MIN_REVISIONS_ALARM and held * 2 > present:
            logger.error(
                "layout changed? %d of the %d revisits that found their article found a new version;"
                " none is recorded, they are read again next run", held, present,
            )
            self.stats.set_value("theory/layout/revisions_over_half", held)
            self.stats.set_value("theory/revisit/revisions_withheld", held)
            self.held_revisions.clear()
            return
        while self.held_revisions:
            self.record_revisit(self.held_revisions.pop(0))

    def run_ended(self) -> None:
        """Re-extraction met the end of one crawl run's captures: weigh its revisits as that run did."""
        if not (self.output_failure.happened or self.changes is None or self.changes.torn):
            self.record_held_revisions()
        self.present_revisits = 0

    def close_spider(self) -> None:
        if self.out and self.changes and self.duplicates:
            try:
                if self.field_watch and not self.output_failure.happened:
                    try:
                        self.field_watch.judge()  # committed by the sync below, with the lines it judged
                    except sqlite3.Error as error:
                        raise OutputError(self.state.path, error) from None
                if not (self.out.torn or self.changes.torn or self.output_failure.happened):
                    self.record_held_revisions()
                if not (self.out.torn or self.changes.torn or self.duplicates.torn):
                    self.sync()
            except OutputError as error:
                self.output_failure(error)
        if self.capture and self.output_failure.happened:
            self.capture.close("output_error")  # writes nothing more: the next run indexes and packages
        elif self.capture:
            try:  # here, not at spider_closed: a failure to index or package is the run's exit status 7
                self.capture.close()
            except OSError as error:
                self.output_failure(OutputError(self.capture.wacz_dir, error))
        for file in (self.out, self.changes, self.duplicates):
            if file:
                file.close()


def names_an_article(record) -> bool:
    """A line of articles.jsonl or duplicates.jsonl: an object naming an article by id and URL."""
    return isinstance(record, dict) and all(isinstance(record.get(key), str) for key in ("article_id", "url"))


def corrected_event(base: dict, changed: dict, now: str, item: dict, status: int | None, source: str | None = None) -> dict:
    """A ``corrected`` event: the fields that read otherwise, and the capture they were read from (with
    ``source`` when it was no revisit of the site but the capture read again)."""
    evidence = {"status": status, "warc": item.get("warc") or [], "parser_version": item.get("parser_version")}
    if source:
        evidence["source"] = source
    return {"event": "corrected", **base, "fields": changed, "detected_at": now, "evidence": evidence}


def size_of(file) -> int:
    return os.fstat(file.fileno()).st_size

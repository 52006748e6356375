"""The run's web archive: every HTTP exchange as WARC records, a CDXJ index beside each file, and at its
end a WACZ package of every WARC file no package holds yet, the killed runs' too
(``<THEORY_DATA_DIR>/warc/``, ``<THEORY_DATA_DIR>/wacz/``).

One ``Capture`` per crawl, shared by the capture middleware (which writes an exchange as it arrives)
and the storage pipeline (which syncs the WARC file before the lines that point into it, and tells
which articles were written); ``crawler.warc`` does the WARC work itself.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import zipfile
from datetime import datetime, timezone
from pathlib import Path

from scrapy import signals

from crawler.warc import (
    CDXJ_SUFFIX,
    IDENTICAL_PAYLOAD_PROFILE,
    NOT_MODIFIED_PROFILE,
    SUFFIX,
    RecordRef,
    Revisit,
    WarcWriter,
    index_around_damage,
    package_wacz,
    payload_digest,
    recover,
    run_of,
    scan_records,
    software,
    warc_date,
    write_cdxj,
)

logger = logging.getLogger(__name__)

# The crawl's settings that say how the pages were fetched, recorded in each file's warcinfo record.
WARCINFO_SETTINGS = (
    "THEORY_BASE_URL", "THEORY_CHANNEL_URL", "THEORY_FEED_PATH", "USER_AGENT", "ROBOTSTXT_OBEY",
    "DOWNLOAD_DELAY", "AUTOTHROTTLE_ENABLED", "CONCURRENT_REQUESTS_PER_DOMAIN", "DOWNLOAD_MAXSIZE",
)


def wire_headers(headers) -> list[tuple[str, str]]:
    """Scrapy's headers as (name, value) pairs, the bytes kept as they are (latin-1), one pair per value."""
    return [(name.decode("latin-1"), value.decode("latin-1")) for name, values in headers.items() for value in values]


class LatestCaptures:
    """The last full capture (a 200 ``response`` record) of each URL, across runs: what a revisit record
    refers to. Held in memory during the run and saved to ``warc/latest-captures.sqlite`` when the run's WARC
    files are closed whole (so it never names a record a crash could cut, and a full disk mid-run leaves the
    room to the crawl state); a killed run's captures are just not known to the next run, which stores
    those URLs in full again. Built from the WARC files when the file is missing (a data directory from
    before it existed)."""

    FILE = "latest-captures.sqlite"
    SCHEMA = ("CREATE TABLE IF NOT EXISTS latest (url TEXT PRIMARY KEY, record_id TEXT, date TEXT, digest TEXT,"
              " file TEXT, offset INTEGER, length INTEGER)")

    def __init__(self, warc_dir: Path):
        self.path = Path(warc_dir) / self.FILE
        self.latest: dict[str, tuple[RecordRef, str, str]] = {}
        self.changed: set[str] = set()
        if self.path.exists():
            db = sqlite3.connect(self.path)
            try:
                for url, record_id, date, digest, file, offset, length in db.execute(
                    "SELECT url, record_id, date, digest, file, offset, length FROM latest"
                ):
                    self.latest[url] = (RecordRef(file, offset, length, record_id), digest, date)
            finally:
                db.close()
        else:
            self.build(Path(warc_dir))

    def build(self, warc_dir: Path) -> None:
        def damaged(damage) -> None:
            logger.warning("%s: not read for the index of earlier captures", damage)

        for path in sorted(warc_dir.glob(f"*{SUFFIX}")):
            for record in scan_records(path, damaged):
                if record.type == "response" and record.http_status() == 200 and "warc-payload-digest" in record.headers:
                    ref = record.ref
                    self.put(record.url, ref, record.headers["warc-payload-digest"], record.headers.get("warc-date", ""))

    def get(self, url: str) -> tuple[RecordRef, str, str] | None:
        """(place, payload digest, WARC-Date) of the URL's last full capture."""
        return self.latest.get(url)

    def put(self, url: str, ref: RecordRef, digest: str, date: str) -> None:
        self.latest[url] = (ref, digest, date)
        self.changed.add(url)

    def save(self) -> None:
        """Write what changed, in one transaction (after the WARC files it names are synced)."""
        if not self.changed and self.path.exists():
            return
        db = sqlite3.connect(self.path)
        try:
            with db:
                db.execute(self.SCHEMA)
                db.executemany(
                    "INSERT OR REPLACE INTO latest VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(url, ref.record_id, date, digest, ref.file, ref.offset, ref.length)
                     for url in sorted(self.changed) for ref, digest, date in [self.latest[url]]],
                )
        finally:
            db.close()
        self.changed.clear()


class Capture:
    def __init__(self, data_dir: Path, max_size: int, warcinfo: dict[str, str]):
        self.warc_dir = Path(data_dir) / "warc"
        self.wacz_dir = Path(data_dir) / "wacz"
        self.warc_dir.mkdir(parents=True, exist_ok=True)
        # What a killed run left: a torn last record is cut (no line can point at it: a line is
        # appended only after its records are written), and files it never indexed are indexed now.
        damaged: dict[str, int] = {}
        for name, cut in recover(self.warc_dir, on_damage=damaged.__setitem__).items():
            logger.warning("%s: cut a torn record of %d bytes left by an interrupted run", name, cut)
        for name, offset in damaged.items():
            logger.error(
                "%s: damaged in the middle, at byte %d; left as it is (nothing after the damage is cut) and indexed"
                " around it; `scrapy reextract` reads around it too", name, offset,
            )
        for path in sorted(self.warc_dir.glob(f"*{SUFFIX}")):
            if path.name in damaged:
                index_around_damage(path)
            elif not path.with_name(path.name + CDXJ_SUFFIX).exists():
                write_cdxj(path)
        # Temporary files of a run killed while it indexed or packaged: made again from the whole files.
        for leftover in [*self.warc_dir.glob(f"*{CDXJ_SUFFIX}.tmp"), *self.wacz_dir.glob("*.tmp")]:
            logger.warning("%s: removed, left by an interrupted run", leftover)
            leftover.unlink()
        self.writer = WarcWriter(self.warc_dir, max_size, warcinfo)
        self.latest = LatestCaptures(self.warc_dir)
        self.pages: list[dict] = []
        self.packaged: Path | None = None  # the WACZ this run made, once it is made
        self._closed = False

    @classmethod
    def of(cls, crawler) -> Capture | None:
        """The crawl's capture, made at the first ask; None when THEORY_WARC is off."""
        settings = crawler.settings
        if not settings.getbool("THEORY_WARC"):
            return None
        capture = getattr(crawler, "theory_capture", None)
        if capture is None:
            warcinfo = {name.lower(): str(settings.get(name)) for name in WARCINFO_SETTINGS}
            warcinfo["robots"] = "obey" if settings.getbool("ROBOTSTXT_OBEY") else "ignore"
            capture = cls(Path(settings.get("THEORY_DATA_DIR")), settings.getint("THEORY_WARC_MAX_SIZE"), warcinfo)
            crawler.theory_capture = capture
            crawler.signals.connect(capture.close_on_signal, signal=signals.spider_closed)
        return capture

    def record(self, request, response) -> RecordRef:
        """The exchange as it came over the wire: ``response.body`` before any decompression.

        A 304 is a server-not-modified revisit record, a 200 whose payload is the URL's last full capture's
        an identical-payload-digest revisit; both refer to that capture. For the latter, the place returned
        is that capture's, which holds the very bytes served now (an item points at its evidence). For a 304,
        it is the revisit record's (block-less, so that replay serves the capture it refers to); the 304's
        status line and headers are in a metadata record concurrent to it (``WarcWriter.write_exchange``).
        """
        url = response.url
        known = self.latest.get(url)
        digest = payload_digest(response.body) if response.status == 200 else None
        revisit = None
        if response.status == 304 or (known and digest == known[1]):
            revisit = Revisit(
                profile=NOT_MODIFIED_PROFILE if response.status == 304 else IDENTICAL_PAYLOAD_PROFILE,
                refers_to_uri=url,
                refers_to_date=known[2] if known else None,
                refers_to=known[0].record_id if known else None,
                digest=digest if response.status == 200 else None,
            )
        date = datetime.now(timezone.utc)
        ref = self.writer.write_exchange(
            url=url,
            method=request.method,
            request_headers=wire_headers(request.headers),
            request_body=request.body,
            protocol=response.protocol,
            status=response.status,
            response_headers=wire_headers(response.headers),
            payload=response.body,
            ip_address=str(response.ip_address) if response.ip_address else None,
            date=date,
            revisit=revisit,
            digest=digest,
        )
        if revisit is not None:
            return known[0] if revisit.profile == IDENTICAL_PAYLOAD_PROFILE else ref
        if digest is not None:
            self.latest.put(url, ref, digest, warc_date(date))
        return ref

    def record_origin(self, ref: RecordRef, url: str, original_url: str, timestamp: str) -> None:
        """For a web archive's replay: a metadata record naming the page it captured and when."""
        self.writer.write_warc_fields(
            url=url, concurrent_to=ref.record_id, date=datetime.now(timezone.utc),
            fields={"original-url": original_url, "capture-timestamp": timestamp},
        )

    def sync(self) -> None:
        self.writer.sync()

    def article_written(self, record: dict, revision: bool = False) -> None:
        """An article (or a revised version of one) is about to be written: say which captures it is made of.

        A ``metadata`` record, concurrent to the article's last page's response, lists the record ids
        of its pages in order (``ARTICLE_RECORD`` format), so re-extraction assembles exactly these
        captures, whatever else was fetched (a refetch, a killed run's half article). It is written
        before the line: the line is never durable without it (the WARC is synced first). A revision's
        says so: re-extraction makes it from the revisit record, not as an article of its own.
        """
        pages = [place["record_id"] for place in record.get("warc") or []]
        if pages:
            self.writer.write_metadata(
                url=record["url"],
                concurrent_to=pages[-1],
                body={"article_id": record["article_id"], "url": record["url"], "pages": pages, **({"revision": True} if revision else {})},
                date=datetime.now(timezone.utc),
            )
        self.pages.append({"url": record["url"], "ts": record["crawled_at"], "title": record["title"]})

    def revisit_judged(self, result, checked_at: str) -> None:
        """A revisit's answers are about to be judged into events: a ``metadata`` record, concurrent to its
        last answer, lists their record ids in order, the page count it asked for while pages answered
        304, and the time it was judged at (the removal rule counts hours), so that re-extraction judges
        the same answers again (``REVISIT_RECORD`` format in crawler/commands/reextract.py)."""
        self.writer.write_metadata(
            url=result.url,
            concurrent_to=result.answers[-1],
            body={
                "revisit": result.article_id, "url": result.url, "page_count": result.page_count,
                "answers": result.answers, "checked_at": checked_at,
                **({"archived_copy": result.archived_copy} if result.archived_copy else {}),
            },
            date=datetime.now(timezone.utc),
        )

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self, reason: str | None = None) -> None:
        """Index this run's WARC files, and package every WARC file not in a WACZ yet (this run's, and
        those of runs killed before they packaged theirs) as this run's WACZ; keep the collection current.

        Raises OSError when a file cannot be written: the caller reports it as an output failure (exit 7).
        Only once; what it did not get to (after an output failure) the next run's close does.
        """
        if self._closed:
            return
        self._closed = True
        if reason == "output_error":
            # A write failed already (a full disk): write nothing more, so that what must still be saved (the
            # crawl state) has the room. The next run indexes and packages.
            self.writer.close(index=False)
            return
        self.writer.close()
        try:
            self.latest.save()
        except sqlite3.Error as error:
            raise OSError(f"{self.latest.path}: {error}") from None
        self.wacz_dir.mkdir(parents=True, exist_ok=True)
        files = unpackaged(self.warc_dir, self.wacz_dir)
        if files:
            out = self.wacz_dir / (run_of(files[0]) + ".wacz")
            while out.exists():  # a killed run's files packaged under the stamp of their run
                out = out.with_name(out.stem + "-1.wacz")
            self.packaged = out
            package_wacz(files, self.pages, out)
            logger.info("web archive of this run: %d WARC files, %s", len(files), out)
        write_collection(self.wacz_dir)

    def close_on_signal(self, reason: str) -> None:
        """The fallback when no storage pipeline closed the capture (it closes it, to report a failure)."""
        try:
            self.close(reason)
        except OSError as error:
            logger.error("the web archive could not be completed: %s (its WARC files are whole)", error)


def packaged_warc_files(wacz_dir: Path, on_unreadable) -> dict[str, Path]:
    """WARC file name -> the WACZ package of wacz_dir that holds it. A package that cannot be read holds
    none: ``on_unreadable(package, error)`` says what follows from that."""
    index: dict[str, Path] = {}
    for package in sorted(Path(wacz_dir).glob("*.wacz")):
        try:
            with zipfile.ZipFile(package) as wacz:
                index.update((name.removeprefix("archive/"), package) for name in wacz.namelist() if name.startswith("archive/"))
        except (OSError, zipfile.BadZipFile) as error:
            on_unreadable(package, error)
    return index


def unpackaged(warc_dir: Path, wacz_dir: Path) -> list[Path]:
    done = packaged_warc_files(
        wacz_dir, lambda package, error: logger.error("%s cannot be read (%s): its WARC files are packaged again", package, error),
    )
    return [path for path in sorted(warc_dir.glob(f"*{SUFFIX}")) if path.name not in done]


COLLECTION_FILE = "collection.json"


def write_collection(wacz_dir: Path) -> Path:
    """``wacz/collection.json``: every WACZ of the data dir as one multi-WACZ collection (the JSON that
    ReplayWeb.page opens as one archive, as Browsertrix serves its collections), so that revisit records
    resolve across the packages of all runs. Digests of packages already listed are kept, not recomputed."""
    path = wacz_dir / COLLECTION_FILE
    known: dict[tuple[str, int], str] = {}
    try:
        for resource in json.loads(path.read_text("utf-8")).get("resources", []):
            known[(resource["path"], resource["bytes"])] = resource["hash"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass  # none yet, or not ours: made anew
    resources = []
    for package in sorted(wacz_dir.glob("*.wacz")):
        size = package.stat().st_size
        digest = known.get((package.name, size))
        if digest is None:
            sha256 = hashlib.sha256()
            with open(package, "rb") as fh:
                while chunk := fh.read(1 << 20):
                    sha256.update(chunk)
            digest = "sha256:" + sha256.hexdigest()
        resources.append({"name": package.name, "path": package.name, "hash": digest, "bytes": size})
    collection = {"profile": "multi-wacz-package", "title": "theory-crawler web archive", "software": software(),
                  "resources": resources}
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(json.dumps(collection, indent=2) + "\n", "utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
